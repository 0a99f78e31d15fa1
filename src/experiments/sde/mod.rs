//! Diffusion models and neural SDEs.

pub mod neural_sde;
