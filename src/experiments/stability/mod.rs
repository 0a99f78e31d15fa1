//! Large learning rates and the edge of stability: what SGD and GD do when the learning rate
//! sits near 2/λ_max.

pub mod benign_oscillation;
