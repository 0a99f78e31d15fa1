//! Environments written in Rust for the reinforcement-learning experiments, batched over a
//! population or many episodes, and the counter-based random streams that let an evolved
//! network be rebuilt from its seed list.

pub mod cartpole;
pub mod maze;
pub mod population;
pub mod seeds;
