//! Spectral graph convolution with Chebyshev polynomials (Defferrard et al. 2016), the layer of
//! HybridGNet's landmark decoder: for node features X [batch, nodes, c] and the scaled
//! Laplacian L̂ = 2L/λ_max − I ≈ −D^{-1/2} A D^{-1/2} (normalised Laplacian, λ_max taken as 2),
//!
//!   T_0 = X, T_1 = L̂X, T_k = 2L̂T_{k−1} − T_{k−2},   out = Σ_{k<K} T_k W_k + b.
//!
//! Also a GIN stack (Xu, Hu, Leskovec, Jegelka 2019, GIN-0) for many models at once: [`Gin`].

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

/// The graphs a [`Gin`] reads, batched for P data groups (models m = p·Q + q, Q per group).
pub enum GraphBatch<'a> {
    /// Padded dense batches: adjacency [P, B, N, N], node features [P, B, N, F], mask [P, B, N].
    Dense {
        adj: &'a Tensor,
        x: &'a Tensor,
        mask: &'a Tensor,
    },
    /// One group (P = 1) of concatenated graphs: features [V, F], directed edges `src → dst`
    /// [E] (each undirected edge both ways), the graph of each node [V], node counts [n].
    Packed {
        x: &'a Tensor,
        src: &'a Tensor,
        dst: &'a Tensor,
        graph_of: &'a Tensor,
        counts: &'a Tensor,
        graphs: i64,
    },
}

/// Graph readout over the nodes of each graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pool {
    Sum,
    Mean,
}

/// M independent GIN-0 networks with stacked weights: per layer
///   h' = ReLU(MLP(h_v + Σ_{u ∈ N(v)} h_u)),  MLP = Linear → ReLU → Linear,
/// then a sum or mean readout z = pool_v h_v (the graph representation) and a linear head.
/// Node states are [P, Q, X, H] (X = B·N padded nodes, or V packed nodes); every matmul is
/// batched over the M = P·Q models.
pub struct Gin {
    /// Per layer: w1 [M, in, H], b1 [M, 1, H], w2 [M, H, H], b2 [M, 1, H].
    pub layers: Vec<[Tensor; 4]>,
    /// Head: [M, H, C], [M, 1, C].
    pub head: [Tensor; 2],
    pub models: i64,
    pub pool: Pool,
}

/// What a forward pass gives: the graph representation [P, Q, B, H] and logits [P, Q, B, C].
pub struct GinOut {
    pub z: Tensor,
    pub logits: Tensor,
}

impl Gin {
    /// PyTorch's Linear initialisation, U(±1/√fan_in) for weights and biases.
    pub fn new(
        p: &nn::Path,
        models: i64,
        input: i64,
        hidden: i64,
        layers: usize,
        classes: i64,
        pool: Pool,
    ) -> Gin {
        let lin = |name: &str, i: i64, o: i64| {
            let b = 1.0 / (i as f64).sqrt();
            [
                p.uniform(&format!("{name}_w"), &[models, i, o], -b, b),
                p.uniform(&format!("{name}_b"), &[models, 1, o], -b, b),
            ]
        };
        let layers = (0..layers)
            .map(|l| {
                let [w1, b1] = lin(
                    &format!("gin{l}_a"),
                    if l == 0 { input } else { hidden },
                    hidden,
                );
                let [w2, b2] = lin(&format!("gin{l}_b"), hidden, hidden);
                [w1, b1, w2, b2]
            })
            .collect();
        Gin {
            layers,
            head: lin("head", hidden, classes),
            models,
            pool,
        }
    }

    /// x [P, Q, X, in] times a stacked weight [M, in, out] plus bias: [P, Q, X, out].
    fn affine(x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
        let s = x.size();
        let (p, q) = (s[0], s[1]);
        let ws = w.size();
        x.matmul(&w.view([p, q, ws[1], ws[2]])) + b.view([p, q, 1, ws[2]])
    }

    /// Σ over neighbours of every node: [P, Q, X, H].
    pub fn aggregate(batch: &GraphBatch<'_>, h: &Tensor) -> Tensor {
        let s = h.size();
        match batch {
            GraphBatch::Dense { adj, .. } => {
                let a = adj.size();
                let hv = h.reshape([s[0], s[1], a[1], a[2], s[3]]);
                adj.unsqueeze(1)
                    .matmul(&hv)
                    .reshape([s[0], s[1], s[2], s[3]])
            }
            GraphBatch::Packed { src, dst, .. } => {
                h.zeros_like().index_add(2, dst, &h.index_select(2, src))
            }
        }
    }

    pub fn forward(&self, batch: &GraphBatch<'_>) -> GinOut {
        let q = self.models / self.groups(batch);
        let (mut h, mask) = match batch {
            GraphBatch::Dense { x, mask, .. } => {
                let s = x.size();
                let h = x
                    .view([s[0], 1, s[1] * s[2], s[3]])
                    .expand([s[0], q, s[1] * s[2], s[3]], false);
                (h, Some(mask.view([s[0], 1, s[1] * s[2], 1])))
            }
            GraphBatch::Packed { x, .. } => {
                let s = x.size();
                (
                    x.view([1, 1, s[0], s[1]]).expand([1, q, s[0], s[1]], false),
                    None,
                )
            }
        };
        for [w1, b1, w2, b2] in &self.layers {
            let u = &h + Self::aggregate(batch, &h);
            let u = Self::affine(&u, w1, b1).relu();
            h = Self::affine(&u, w2, b2).relu();
            if let Some(m) = &mask {
                // Not `*=`: the ReLU output is saved for backward.
                h = h.multiply(m);
            }
        }
        let hs = h.size();
        let z = match batch {
            GraphBatch::Dense { adj, mask, .. } => {
                let a = adj.size();
                let sum = h.view([hs[0], hs[1], a[1], a[2], hs[3]]).sum_dim_intlist(
                    [3i64].as_slice(),
                    false,
                    h.kind(),
                );
                match self.pool {
                    Pool::Sum => sum,
                    Pool::Mean => {
                        let n = mask
                            .sum_dim_intlist([2i64].as_slice(), false, h.kind())
                            .clamp_min(1.0)
                            .view([hs[0], 1, a[1], 1]);
                        sum / n
                    }
                }
            }
            GraphBatch::Packed {
                graph_of,
                counts,
                graphs,
                ..
            } => {
                let sum = Tensor::zeros([hs[0], hs[1], *graphs, hs[3]], (h.kind(), h.device()))
                    .index_add(2, graph_of, &h);
                match self.pool {
                    Pool::Sum => sum,
                    Pool::Mean => sum / counts.view([1, 1, *graphs, 1]),
                }
            }
        };
        let logits = Self::affine(&z, &self.head[0], &self.head[1]);
        GinOut { z, logits }
    }

    /// P: data groups in the batch.
    fn groups(&self, batch: &GraphBatch<'_>) -> i64 {
        match batch {
            GraphBatch::Dense { adj, .. } => adj.size()[0],
            GraphBatch::Packed { .. } => 1,
        }
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

    #[test]
    fn gin_layer_and_readouts_match_a_hand_computation_in_both_layouts() {
        let _rng = crate::rng::serial();
        tch::manual_seed(1);
        // A path 0 – 1 – 2 (and a padded fourth node), constant features 1, one layer, H = 1,
        // identity MLP weights, zero biases: u = 1 + deg, h = u.
        let vs = nn::VarStore::new(Device::Cpu);
        let gin = Gin::new(&vs.root(), 2, 1, 1, 1, 1, Pool::Mean);
        tch::no_grad(|| {
            for t in gin.layers[0].iter().chain(gin.head.iter()) {
                let _ = t.shallow_clone().fill_(0.0);
            }
            let _ = gin.layers[0][0].shallow_clone().fill_(1.0);
            let _ = gin.layers[0][2].shallow_clone().fill_(1.0);
            let _ = gin.head[0].shallow_clone().fill_(1.0);
            // Model 1: second MLP weight 2 and bias −3: h = ReLU(2(1 + deg) − 3).
            let _ = gin.layers[0][2].get(1).fill_(2.0);
            let _ = gin.layers[0][3].get(1).fill_(-3.0);
        });
        let adj = Tensor::from_slice(&[
            0f32, 1., 0., 0., 1., 0., 1., 0., 0., 1., 0., 0., 0., 0., 0., 0.,
        ])
        .view([1, 1, 4, 4]);
        let x = Tensor::from_slice(&[1f32, 1., 1., 0.]).view([1, 1, 4, 1]);
        let mask = Tensor::from_slice(&[1f32, 1., 1., 0.]).view([1, 1, 4]);
        let dense = gin.forward(&GraphBatch::Dense {
            adj: &adj,
            x: &x,
            mask: &mask,
        });
        // Model 0: h = (2, 3, 2) → mean 7/3. Model 1: h = (1, 3, 1) → mean 5/3.
        let z = Vec::<f32>::try_from(dense.z.flatten(0, -1)).unwrap();
        assert!(
            (z[0] - 7.0 / 3.0).abs() < 1e-6 && (z[1] - 5.0 / 3.0).abs() < 1e-6,
            "{z:?}"
        );
        assert!(dense.logits.allclose(&dense.z, 1e-6, 1e-6, false));
        let (src, dst) = (
            Tensor::from_slice(&[0i64, 1, 1, 2]),
            Tensor::from_slice(&[1i64, 0, 2, 1]),
        );
        let packed = gin.forward(&GraphBatch::Packed {
            x: &Tensor::ones([3, 1], (Kind::Float, Device::Cpu)),
            src: &src,
            dst: &dst,
            graph_of: &Tensor::zeros([3], (Kind::Int64, Device::Cpu)),
            counts: &Tensor::from_slice(&[3f32]),
            graphs: 1,
        });
        assert!(packed.z.allclose(&dense.z, 1e-6, 1e-6, false));
    }

    #[test]
    fn dense_and_packed_forward_agree_on_random_graphs() {
        let _rng = crate::rng::serial();
        tch::manual_seed(2);
        let g = crate::data::spmotif::split(3, Some(0.5), crate::data::spmotif::Size::Small, 5)
            .unwrap();
        let f = crate::data::spmotif::node_features(&g, crate::data::spmotif::Features::Random, 5);
        let d = crate::data::spmotif::Dense::new(&g, &f, 4, Device::Cpu);
        let p = crate::data::spmotif::Packed::new(&g, &f, Device::Cpu);
        let vs = nn::VarStore::new(Device::Cpu);
        for pool in [Pool::Sum, Pool::Mean] {
            let gin = Gin::new(&vs.root().sub(format!("{pool:?}")), 3, 4, 8, 3, 3, pool);
            let a = gin.forward(&GraphBatch::Dense {
                adj: &d.adj.unsqueeze(0),
                x: &d.x.unsqueeze(0),
                mask: &d.mask.unsqueeze(0),
            });
            let b = gin.forward(&GraphBatch::Packed {
                x: &p.x,
                src: &p.src,
                dst: &p.dst,
                graph_of: &p.graph_of,
                counts: &p.counts,
                graphs: p.graphs,
            });
            assert!(a.logits.allclose(&b.logits, 1e-4, 1e-5, false), "{pool:?}");
        }
    }
}
