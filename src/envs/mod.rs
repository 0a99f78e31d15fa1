//! Environments for the reinforcement-learning family, written in Rust: small tabular
//! gridworlds with sticky actions and exact dynamic programming for finite-horizon tabular
//! MDPs (the effective horizon).

pub mod gridworld;
pub mod tabular;
