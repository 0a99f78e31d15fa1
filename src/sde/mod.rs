//! Shared machinery for diffusion models and neural SDEs: forward SDEs with closed-form
//! marginals (`forward`), reverse-time samplers (`sample`), the probability-flow ODE and its
//! likelihood (`flow`), score models and the denoising score-matching loss (`score`), and
//! distances between samples (`distance`).

pub mod distance;
pub mod flow;
pub mod forward;
pub mod sample;
pub mod score;
