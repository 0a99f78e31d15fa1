//! Bayesian neural networks: scale mixtures of NNGPs (Student-t processes), SG-MCMC for
//! neural-network potentials; BNN surrogates for Bayesian optimisation.

pub mod bnn_bo;
pub mod nngp_mixture;
pub mod sgmcmc_potential;
