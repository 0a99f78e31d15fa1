//! Reinforcement learning and control: policies trained by evolution or by value methods on
//! environments written in Rust (`crate::envs`), with exact dynamic programming to compare
//! against; a neural controller trained through an ODE surrogate of an agent-based model
//! (twin-control).

pub mod effective_horizon;
pub mod neuroevolution;
pub mod twin_control;
