//! Bayesian neural networks: scale mixtures of NNGPs (Student-t processes).

pub mod nngp_mixture;
