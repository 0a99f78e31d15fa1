//! Bayesian neural networks: scale mixtures of NNGPs (Student-t processes), SG-MCMC for
//! neural-network potentials.

pub mod nngp_mixture;
pub mod sgmcmc_potential;
