//! Reinforcement learning and control: environments written in Rust (`src/envs`), exact
//! dynamic programming, and learning algorithms compared against it.

pub mod effective_horizon;
