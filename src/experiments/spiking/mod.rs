//! Spiking neural networks: LIF and probabilistic neurons trained by BPTT with surrogate
//! gradients, learnable intrinsic parameters, and complexity-based decoding of spike trains.

pub mod snn;
