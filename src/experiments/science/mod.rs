//! Scientific models: machine learning inside physics and other sciences (physics-informed
//! networks and how their parts are chosen; learned sample weights for graph OOD
//! generalisation).

pub mod graph_reweight;
pub mod pinn_interface;
