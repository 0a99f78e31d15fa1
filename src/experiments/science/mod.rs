//! Scientific models: machine learning inside physics and other sciences (physics-informed
//! networks and how their parts are chosen).

pub mod pinn_interface;
