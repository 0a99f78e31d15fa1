//! Reinforcement learning and control: policies trained by evolution or by value methods on
//! environments written in Rust (`crate::envs`).

pub mod neuroevolution;
