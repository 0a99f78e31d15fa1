//! Bayesian machinery shared by the `bayes` experiments: neural-network Gaussian-process
//! kernels by their closed recursions (and the random wide networks they describe), and exact
//! Gaussian- and Student-t-process regression with hyperparameters fitted on the marginal
//! likelihood; MCMC over flat parameter vectors of many chains at once (SGLD, pSGLD, SGHMC,
//! HMC) with R̂ and effective sample size; a batched MLP over flat parameter rows; Bayesian
//! optimisation (test functions, expected improvement, a Matérn ARD GP, an acquisition optimiser).

pub mod bo;
pub mod contextual;
pub mod diagnostics;
pub mod flatnet;
pub mod gp;
pub mod nngp;
pub mod samplers;
