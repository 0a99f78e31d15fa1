//! Diffusion models and neural SDEs: score-based generative models through SDEs (their
//! samplers and likelihoods) and neural SDEs for irregular time series.

pub mod neural_sde;
pub mod score_sde;
