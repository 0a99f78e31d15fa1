//! Gradient estimators for what backpropagation cannot differentiate or store: stochastic binary
//! units, sampled matrix products (WTA-CRS) and layer-local learning rules (tpSGD, DRTP).

pub mod stochastic_neurons;
pub mod tpsgd;
pub mod wta_crs;
