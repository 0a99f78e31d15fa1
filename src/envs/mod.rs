//! Environments written in Rust for the reinforcement-learning experiments: small tabular
//! gridworlds with sticky actions and exact dynamic programming for finite-horizon tabular
//! MDPs (the effective horizon); CartPole and the hard maze, batched over a population or many
//! episodes, and the counter-based random streams that let an evolved network be rebuilt from
//! its seed list (neuroevolution); the wolf–sheep–grass agent-based lattice model with removal
//! controls (twin-control).

pub mod abm;
pub mod cartpole;
pub mod gridworld;
pub mod maze;
pub mod population;
pub mod seeds;
pub mod tabular;
