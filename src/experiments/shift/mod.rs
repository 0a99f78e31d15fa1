//! Distribution shift and robustness: what a network learns and how it fails when the data
//! shift (domain-adversarial training, simplicity bias) and black-box safety testing.

pub mod blackbox_test;
pub mod dann;
pub mod simplicity_bias;
