//! Diffusion models and neural SDEs: score-based generative models through SDEs and their
//! samplers and likelihoods.

pub mod score_sde;
