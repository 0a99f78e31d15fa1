//! Diffusion models and neural SDEs: score-based generative models through SDEs (their
//! samplers and likelihoods) and neural SDEs for irregular time series, and StoRM's stochastic regeneration for signal
//! enhancement.

pub mod neural_sde;
pub mod score_sde;
pub mod storm;
