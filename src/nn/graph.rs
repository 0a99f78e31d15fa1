//! Spectral graph convolution with Chebyshev polynomials (Defferrard et al. 2016), the layer of
//! HybridGNet's landmark decoder: for node features X [batch, nodes, c] and the scaled
//! Laplacian L̂ = 2L/λ_max − I ≈ −D^{-1/2} A D^{-1/2} (normalised Laplacian, λ_max taken as 2),
//!
//!   T_0 = X, T_1 = L̂X, T_k = 2L̂T_{k−1} − T_{k−2},   out = Σ_{k<K} T_k W_k + b.

use tch::nn;
use tch::{Kind, Tensor};

/// L̂ = −D^{-1/2} A D^{-1/2} of a symmetric adjacency matrix without self-loops.
pub fn scaled_laplacian(adjacency: &Tensor) -> Tensor {
    let d = adjacency
        .sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
        .clamp_min(1e-12)
        .rsqrt();
    -(d.unsqueeze(1) * adjacency * d.unsqueeze(0))
}

#[derive(Debug)]
pub struct ChebConv {
    weights: Vec<Tensor>,
    bias: Tensor,
}

impl ChebConv {
    pub fn new(p: &nn::Path, c_in: i64, c_out: i64, k: usize) -> Self {
        let bound = 1.0 / ((c_in * k as i64) as f64).sqrt();
        ChebConv {
            weights: (0..k)
                .map(|i| p.uniform(&format!("w{i}"), &[c_in, c_out], -bound, bound))
                .collect(),
            bias: p.zeros("bias", &[c_out]),
        }
    }

    /// X [batch, nodes, c_in] with the scaled Laplacian `lap` [nodes, nodes].
    pub fn forward(&self, x: &Tensor, lap: &Tensor) -> Tensor {
        let mut out = x.matmul(&self.weights[0]) + &self.bias;
        let (mut prev, mut cur) = (x.shallow_clone(), x.shallow_clone());
        for (k, w) in self.weights.iter().enumerate().skip(1) {
            let next = if k == 1 {
                lap.matmul(x)
            } else {
                lap.matmul(&cur) * 2.0 - &prev
            };
            out += next.matmul(w);
            prev = cur;
            cur = next;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn chebyshev_terms_on_a_ring_by_hand() {
        let _rng = crate::rng::serial();
        tch::manual_seed(0);
        let a = crate::data::shapes::ring_adjacency(1, 6, Device::Cpu);
        let lap = scaled_laplacian(&a);
        // On a ring every degree is 2: (L̂x)_j = −(x_{j−1} + x_{j+1})/2.
        let x = Tensor::randn([1, 6, 1], (Kind::Float, Device::Cpu));
        let lx = lap.matmul(&x);
        let xv = Vec::<f32>::try_from(x.flatten(0, -1)).unwrap();
        for j in 0..6 {
            let want = -(xv[(j + 5) % 6] + xv[(j + 1) % 6]) / 2.0;
            assert!((lx.double_value(&[0, j as i64, 0]) as f32 - want).abs() < 1e-6);
        }
        // K = 3 with identity weights: T0 + T1 + T2, T2 = 2L̂T1 − T0.
        let vs = nn::VarStore::new(Device::Cpu);
        let conv = ChebConv::new(&vs.root(), 1, 1, 3);
        tch::no_grad(|| {
            for w in &conv.weights {
                let _ = w.shallow_clone().fill_(1.0);
            }
        });
        let t2 = lap.matmul(&lx) * 2.0 - &x;
        let want = &x + &lx + t2;
        assert!(conv.forward(&x, &lap).allclose(&want, 1e-5, 1e-6, false));
    }
}
