//! Scientific models: learned sample weights for graph OOD generalisation (L2R-GNN).

pub mod graph_reweight;
