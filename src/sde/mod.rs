//! Shared machinery for diffusion models and neural SDEs: forward SDEs with closed-form
//! marginals (`forward`), reverse-time samplers (`sample`), the probability-flow ODE and its
//! likelihood (`flow`), score models and the denoising score-matching loss (`score`),
//! distances between samples (`distance`), Euler–Maruyama for neural SDEs on a time grid
//! (`em`), and truncated path signatures with the expected-signature distance (`signature`).

pub mod distance;
pub mod em;
pub mod flow;
pub mod forward;
pub mod sample;
pub mod score;
pub mod signature;
