//! Network compression during training: low-rank weights (Trained Rank Pruning).

pub mod trp;
