//! Bayesian machinery shared by the `bayes` experiments: neural-network Gaussian-process
//! kernels by their closed recursions (and the random wide networks they describe), and exact
//! Gaussian- and Student-t-process regression with hyperparameters fitted on the marginal
//! likelihood.

pub mod contextual;
pub mod gp;
pub mod nngp;
