//! Reinforcement learning and control: policies trained by evolution or by value methods on
//! environments written in Rust (`crate::envs`), with exact dynamic programming to compare
//! against.

pub mod effective_horizon;
pub mod neuroevolution;
