//! Low-rank truncation of weights by SVD, as in Trained Rank Pruning (Xu et al., IJCAI 2020).
//!
//! A weight is first laid out as a matrix M (`Reshape`): a linear layer's [out, in] as is; a
//! convolution [N, C, H, W] channel-wise as N × (C·H·W), or spatially as (C·H) × (N·W). With
//! M = U Σ Vᵀ, the energy criterion keeps the smallest k with Σ_{i≤k} σ_i² ≥ e·Σσ_i², and
//! T(M) = U_k Σ_k V_kᵀ. The nuclear norm's subgradient at the truncated weight is U_k V_kᵀ.
//! `truncate` does all of it on the device: the kept singular values are a 0/1 mask, so no
//! rank is read back to the host during training.
//!
//! A rank-k weight becomes two thinner layers (`Factored`): a linear layer W = B·A with
//! A = √Σ_k V_kᵀ [k, in] and B = U_k √Σ_k [out, k]; a channel-wise conv as a k-filter conv of
//! the original kernel followed by a 1×1 conv to N channels; a spatial conv as a (H×1) conv to
//! k channels followed by a (1×W) conv to N channels.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reshape {
    /// A linear layer's [out, in] weight, or a conv's [N, C·H·W] (channel-wise).
    Channel,
    /// A conv's [N, C, H, W] as (C·H) × (N·W) (TRP's "VH" scheme).
    Spatial,
}

impl Reshape {
    pub fn as_str(self) -> &'static str {
        match self {
            Reshape::Channel => "channel",
            Reshape::Spatial => "spatial",
        }
    }
}

/// The matrix a weight is truncated as.
pub fn to_matrix(w: &Tensor, r: Reshape) -> Result<Tensor> {
    let s = w.size();
    Ok(match (r, s.len()) {
        (Reshape::Channel, 2) => w.shallow_clone(),
        (Reshape::Channel, 4) => w.reshape([s[0], -1]),
        (Reshape::Spatial, 4) => w.permute([1, 2, 0, 3]).reshape([s[1] * s[2], s[0] * s[3]]),
        (Reshape::Spatial, _) => bail!("the spatial reshape needs a conv weight [N, C, H, W], got shape {s:?}; use reshape = \"channel\""),
        _ => bail!("low-rank truncation takes linear [out, in] or conv [N, C, H, W] weights, got shape {s:?}"),
    })
}

/// The weight of shape `shape` whose matrix layout is `m` (inverse of `to_matrix`).
pub fn from_matrix(m: &Tensor, shape: &[i64], r: Reshape) -> Tensor {
    match (r, shape.len()) {
        (Reshape::Spatial, 4) => m
            .reshape([shape[1], shape[2], shape[0], shape[3]])
            .permute([2, 0, 1, 3])
            .contiguous(),
        _ => m.reshape(shape),
    }
}

/// The 0/1 mask of the singular values (descending) the energy criterion keeps: the smallest
/// k with Σ_{i≤k} σ_i² ≥ e·Σσ_i² (index i is kept when the energy before it is below e·total).
pub fn energy_mask(sigma: &Tensor, energy: f64) -> Tensor {
    let e = sigma.to_kind(Kind::Double).square();
    let cum = e.cumsum(-1, Kind::Double);
    let total = cum.select(-1, -1).unsqueeze(-1);
    (cum - &e)
        .lt_tensor(&(total * energy))
        .to_kind(sigma.kind())
}

/// The energy criterion's rank, on the host.
pub fn energy_rank(sigma: &Tensor, energy: f64) -> i64 {
    energy_mask(sigma, energy).sum(Kind::Int64).int64_value(&[])
}

/// One SVD of a weight in its matrix layout: M = U diag(σ) Vᵀ (thin).
pub struct Svd {
    pub u: Tensor,
    pub s: Tensor,
    pub vt: Tensor,
    shape: Vec<i64>,
    reshape: Reshape,
}

impl Svd {
    pub fn new(w: &Tensor, r: Reshape) -> Result<Svd> {
        let m = to_matrix(&w.detach(), r)?;
        let (u, s, v) = m.f_svd(true, true)?;
        Ok(Svd {
            u,
            s,
            vt: v.tr(),
            shape: w.size(),
            reshape: r,
        })
    }

    /// (rows, cols) of the matrix layout.
    pub fn dims(&self) -> (i64, i64) {
        (self.u.size()[0], self.vt.size()[1])
    }

    /// U diag(σ ⊙ mask) Vᵀ back in the weight's shape.
    fn weight(&self, s: &Tensor) -> Tensor {
        from_matrix(&(&self.u * s).matmul(&self.vt), &self.shape, self.reshape)
    }

    /// T(W) at the energy criterion, the subgradient U_k V_kᵀ of the nuclear norm there, and
    /// k (a device scalar).
    pub fn truncate(&self, energy: f64) -> Truncation {
        let mask = energy_mask(&self.s, energy);
        Truncation {
            low_rank: self.weight(&(&self.s * &mask)),
            subgradient: self.weight(&mask),
            rank: mask.sum(Kind::Int64),
        }
    }

    /// The subgradient U Vᵀ of the nuclear norm at W itself (all singular values).
    pub fn nuclear_subgradient(&self) -> Tensor {
        self.weight(&self.s.ones_like())
    }

    /// ‖W‖_* = Σσ (device scalar).
    pub fn nuclear_norm(&self) -> Tensor {
        self.s.sum(Kind::Double)
    }

    /// The best rank-k approximation, in the weight's shape.
    pub fn at_rank(&self, k: i64) -> Tensor {
        let q = self.s.size()[0];
        let mask = Tensor::arange(q, (Kind::Int64, self.s.device()))
            .lt(k)
            .to_kind(self.s.kind());
        self.weight(&(&self.s * mask))
    }

    /// The rank-k weight as two thinner layers.
    pub fn factor(&self, k: i64) -> Factored {
        let k = k.clamp(1, self.s.size()[0]);
        let root = self.s.narrow(0, 0, k).sqrt();
        let b = self.u.narrow(1, 0, k) * root.unsqueeze(0);
        let a = self.vt.narrow(0, 0, k) * root.unsqueeze(1);
        let sh = &self.shape;
        let (first, second) = match (self.reshape, sh.len()) {
            (Reshape::Channel, 2) => (a, b),
            (Reshape::Channel, _) => (
                a.reshape([k, sh[1], sh[2], sh[3]]),
                b.reshape([sh[0], k, 1, 1]),
            ),
            // U [(C·H), k] → [k, C, H, 1]; Vᵀ [k, (N·W)] → [N, k, 1, W].
            (Reshape::Spatial, _) => (
                b.reshape([sh[1], sh[2], k])
                    .permute([2, 0, 1])
                    .unsqueeze(-1)
                    .contiguous(),
                a.reshape([k, sh[0], sh[3]])
                    .permute([1, 0, 2])
                    .unsqueeze(2)
                    .contiguous(),
            ),
        };
        Factored {
            first,
            second,
            reshape: self.reshape,
        }
    }
}

/// What one TRP step does to a weight.
pub struct Truncation {
    pub low_rank: Tensor,
    pub subgradient: Tensor,
    pub rank: Tensor,
}

/// A rank-k layer as two thinner ones: `first` applied to the input, then `second`.
pub struct Factored {
    pub first: Tensor,
    pub second: Tensor,
    pub reshape: Reshape,
}

impl Factored {
    pub fn params(&self) -> i64 {
        (self.first.numel() + self.second.numel()) as i64
    }

    /// The layer's output: for linear layers x [batch, in]; for convs x [batch, C, H, W] with
    /// the original conv's `stride` and `padding` (square).
    pub fn forward(&self, x: &Tensor, bias: Option<&Tensor>, stride: i64, padding: i64) -> Tensor {
        if self.first.dim() == 2 {
            return x
                .linear::<&Tensor>(&self.first, None)
                .linear(&self.second, bias);
        }
        let none: Option<&Tensor> = None;
        match self.reshape {
            Reshape::Channel => x
                .conv2d(&self.first, none, [stride], [padding], [1], 1)
                .conv2d(&self.second, bias, [1], [0], [1], 1),
            Reshape::Spatial => x
                .conv2d(&self.first, none, [stride, 1], [padding, 0], [1], 1)
                .conv2d(&self.second, bias, [1, stride], [0, padding], [1], 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn opts() -> (Kind, Device) {
        (Kind::Double, Device::Cpu)
    }

    /// A matrix with the given singular values and random orthonormal factors.
    fn with_singular_values(m: i64, n: i64, s: &[f64]) -> Tensor {
        let k = s.len() as i64;
        let (u, _) = Tensor::linalg_qr(&Tensor::randn([m, k], opts()), "reduced");
        let (v, _) = Tensor::linalg_qr(&Tensor::randn([n, k], opts()), "reduced");
        (u * Tensor::from_slice(s).unsqueeze(0)).matmul(&v.tr())
    }

    #[test]
    fn energy_criterion_picks_the_smallest_rank_reaching_the_energy() {
        // Energies 9, 4, 1 of 14: 9/14 = 0.64, 13/14 = 0.93, 14/14 = 1.
        let s = Tensor::from_slice(&[3.0f64, 2.0, 1.0, 0.0]);
        assert_eq!(energy_rank(&s, 0.5), 1);
        assert_eq!(energy_rank(&s, 0.64), 1);
        assert_eq!(energy_rank(&s, 0.9), 2);
        assert_eq!(energy_rank(&s, 13.0 / 14.0), 2);
        assert_eq!(energy_rank(&s, 0.95), 3);
        assert_eq!(energy_rank(&s, 1.0), 3);
    }

    #[test]
    fn truncation_reconstructs_a_low_rank_matrix_exactly_and_drops_the_tail() {
        let _rng = crate::rng::serial();
        tch::manual_seed(3);
        let w = with_singular_values(12, 9, &[5.0, 3.0, 2.0]);
        let svd = Svd::new(&w, Reshape::Channel).unwrap();
        let t = svd.truncate(0.999_999);
        assert_eq!(t.rank.int64_value(&[]), 3);
        assert!(t.low_rank.allclose(&w, 1e-10, 1e-10, false));
        // At e = 0.9 (energies 25, 9, 4 of 38: 34/38 = 0.895 < 0.9) all three stay; at 0.85
        // two, and the result is the best rank-2 approximation with U_2 V_2ᵀ as subgradient.
        assert_eq!(svd.truncate(0.9).rank.int64_value(&[]), 3);
        let t2 = svd.truncate(0.85);
        assert_eq!(t2.rank.int64_value(&[]), 2);
        let err = Svd::new(&(&w - &t2.low_rank), Reshape::Channel).unwrap().s;
        assert!((err.double_value(&[0]) - 2.0).abs() < 1e-9);
        assert!(t2.low_rank.allclose(&svd.at_rank(2), 1e-12, 1e-12, false));
        let g = &t2.subgradient;
        // U_2 V_2ᵀ has singular values 1, 1 and ⟨U_2V_2ᵀ, W⟩ = σ1 + σ2.
        let gs = Svd::new(g, Reshape::Channel).unwrap().s;
        let gs: Vec<f64> = Vec::try_from(gs.narrow(0, 0, 3)).unwrap();
        assert!((gs[0] - 1.0).abs() < 1e-9 && (gs[1] - 1.0).abs() < 1e-9 && gs[2] < 1e-9);
        assert!(((g * &w).sum(Kind::Double).double_value(&[]) - 8.0).abs() < 1e-9);
        assert!((svd.nuclear_norm().double_value(&[]) - 10.0).abs() < 1e-9);
    }

    #[test]
    fn reshapes_round_trip_and_the_spatial_layout_is_c_h_by_n_w() {
        let _rng = crate::rng::serial();
        let w = Tensor::randn([4, 3, 5, 2], opts());
        for r in [Reshape::Channel, Reshape::Spatial] {
            let m = to_matrix(&w, r).unwrap();
            assert!(from_matrix(&m, &w.size(), r).equal(&w));
        }
        let m = to_matrix(&w, Reshape::Spatial).unwrap();
        assert_eq!(m.size(), vec![15, 8]);
        // M[(c, h), (n, w)] = W[n, c, h, w].
        let (n, c, h, x) = (2, 1, 4, 1);
        assert_eq!(
            m.double_value(&[c * 5 + h, n * 2 + x]),
            w.double_value(&[n, c, h, x])
        );
        assert!(to_matrix(&Tensor::zeros([3], opts()), Reshape::Channel).is_err());
        assert!(to_matrix(&Tensor::zeros([3, 4], opts()), Reshape::Spatial).is_err());
    }

    #[test]
    fn factored_layers_compute_what_the_truncated_weight_computes() {
        let _rng = crate::rng::serial();
        tch::manual_seed(5);
        // Linear.
        let w = Tensor::randn([7, 10], opts());
        let b = Tensor::randn([7], opts());
        let x = Tensor::randn([4, 10], opts());
        let svd = Svd::new(&w, Reshape::Channel).unwrap();
        let f = svd.factor(3);
        assert_eq!(f.params(), 3 * (7 + 10));
        let want = x.linear(&svd.at_rank(3), Some(&b));
        assert!(f
            .forward(&x, Some(&b), 1, 0)
            .allclose(&want, 1e-10, 1e-10, false));
        // Convs, both layouts, with stride 1 and 2.
        let w = Tensor::randn([6, 4, 3, 3], opts());
        let b = Tensor::randn([6], opts());
        let x = Tensor::randn([2, 4, 9, 9], opts());
        for r in [Reshape::Channel, Reshape::Spatial] {
            let svd = Svd::new(&w, r).unwrap();
            for (k, stride) in [(2, 1), (4, 2)] {
                let f = svd.factor(k);
                let (rows, cols) = svd.dims();
                assert_eq!(f.params(), k * (rows + cols), "{r:?}");
                let want = x.conv2d(&svd.at_rank(k), Some(&b), [stride], [1], [1], 1);
                let got = f.forward(&x, Some(&b), stride, 1);
                assert!(got.allclose(&want, 1e-9, 1e-9, false), "{r:?} k={k}");
            }
            // Full rank: the factored pair is the original layer.
            let full = svd.factor(svd.s.size()[0]);
            let want = x.conv2d(&w, Some(&b), [1], [1], [1], 1);
            assert!(full
                .forward(&x, Some(&b), 1, 1)
                .allclose(&want, 1e-9, 1e-9, false));
        }
    }
}
