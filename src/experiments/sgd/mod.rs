//! SGD's noise, batch size and learning rate: the generalisation gap of large batches, the
//! learning rate that batch curvature allows, the temperature of SGD noise, and diffGrad.

pub mod diffgrad;
pub mod lr_batch;
pub mod sgd_noise;
pub mod train_longer;
