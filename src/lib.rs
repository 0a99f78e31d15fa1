//! stochlab: an experiment runner for research on the stochastic side of deep learning.
//!
//! The binary (`src/main.rs`) parses the command line (`cli`) and hands over to `app`, which
//! resolves the experiment's config (`config`), opens a run directory (`run`) and calls the
//! experiment's entry from the registry (`experiments`). Shared machinery lives in `data`,
//! `nn`, `optim` and `train`.

pub mod app;
pub mod bayes;
pub mod bench;
pub mod claims;
pub mod cli;
pub mod config;
pub mod data;
pub mod device;
pub mod envs;
pub mod experiments;
pub mod info;
pub mod nn;
pub mod optim;
pub mod plot;
pub mod rng;
pub mod run;
pub mod runs;
pub mod stats;
pub mod sweep;
pub mod train;
