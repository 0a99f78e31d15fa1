//! Mutual-information estimators for the information plane. For a deterministic network and
//! inputs drawn uniformly from a finite set, I(X;T) = H(T) and I(T;Y) = H(T) − Σ_y p(y) H(T|y),
//! with T discretised (binning) or made stochastic by Gaussian noise (KDE bounds).
//!
//! The general estimators for samples of continuous vectors (KSG, Kozachenko–Leonenko, KDE,
//! binning) live in `mi`, on top of exact neighbour search in `knn`; `compress` holds the PCA
//! and autoencoder compressors of the lossy-compression pipeline.
//!
//! The ib-tishby estimators below take a batch of layers, one per network seed: activations `[S, N, d]`, and
//! returns one value per seed, so 50 seeds cost a handful of batched ops.

pub mod binning;
pub mod command;
pub mod compress;
pub mod kde;
pub mod knn;
pub mod lz;
pub mod mi;

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// The estimators `mi.estimators` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Estimator {
    /// IDNNs' fixed edges linspace(-1, 1, bins) (values outside clamped to the end bins).
    BinFixed,
    /// Saxe et al.'s unbounded bins of width `bin_width`.
    BinWidth,
    /// Per-layer edges spanning that layer's min..max at that epoch, `bins` bins.
    BinAdaptive,
    /// Kolchinsky–Tracey / Saxe et al. pairwise-KL upper bound, noise variance `noise_var`.
    KdeUpper,
    /// The Bhattacharyya lower bound, same noise.
    KdeLower,
}

impl Estimator {
    pub fn as_str(self) -> &'static str {
        match self {
            Estimator::BinFixed => "bin-fixed",
            Estimator::BinWidth => "bin-width",
            Estimator::BinAdaptive => "bin-adaptive",
            Estimator::KdeUpper => "kde-upper",
            Estimator::KdeLower => "kde-lower",
        }
    }
}

/// Estimator settings (`[mi]` minus the choice of estimators and sample).
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub bins: i64,
    pub bin_width: f64,
    pub noise_var: f64,
}

/// I(X;T) and I(T;Y) in bits, one per seed, for activations `t` [S, N, d] of N distinct,
/// equally likely inputs with labels `y` [N] (values 0..k).
pub fn information(
    est: Estimator,
    p: &Params,
    t: &Tensor,
    y: &Tensor,
    n_classes: i64,
) -> (Tensor, Tensor) {
    match est {
        Estimator::KdeUpper | Estimator::KdeLower => {
            kde::information(t, y, n_classes, p.noise_var, est == Estimator::KdeUpper)
        }
        _ => {
            // I(T;Y) = H(T) + H(Y) − H(T,Y) = H(T) − Σ_y p(y) H(T|y), from one sort.
            let keys = binning::keys(est, p, t);
            let (h_t, h_ty) = binning::joint_entropies_bits(&keys, y, n_classes);
            let i_ty = &h_t - h_ty + label_entropy_bits(y);
            (h_t, i_ty)
        }
    }
}

/// Entropy in bits of a discrete label vector (for H(Y)).
pub fn label_entropy_bits(y: &Tensor) -> f64 {
    binning::entropy_bits(&y.to_kind(Kind::Int64).unsqueeze(0)).double_value(&[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn patterns() -> (Tensor, Tensor) {
        let (x, y) = crate::data::tishby::generate();
        (
            Tensor::from_slice(&x).view([4096, 12]),
            Tensor::from_slice(&y),
        )
    }

    fn est(e: Estimator, t: &Tensor, y: &Tensor) -> (f64, f64) {
        let p = Params {
            bins: 30,
            bin_width: 0.07,
            noise_var: 1e-3,
        };
        let (a, b) = information(e, &p, &t.unsqueeze(0), y, 2);
        (a.double_value(&[0]), b.double_value(&[0]))
    }

    const BINNINGS: [Estimator; 3] = [
        Estimator::BinFixed,
        Estimator::BinWidth,
        Estimator::BinAdaptive,
    ];

    #[test]
    fn exact_answers_on_known_layers() {
        let (x, y) = patterns();
        let hy = label_entropy_bits(&y);
        assert!((hy - 0.99916).abs() < 1e-5);
        for e in BINNINGS {
            let (ixt, ity) = est(e, &x, &y);
            assert!(
                (ixt - 12.0).abs() < 1e-9 && (ity - hy).abs() < 1e-9,
                "{e:?}: layer = X gives {ixt}, {ity}"
            );
            let (ixt, _) = est(e, &x.narrow(1, 0, 6), &y);
            assert!((ixt - 6.0).abs() < 1e-9, "{e:?}: first 6 bits give {ixt}");
            let (ixt, ity) = est(
                e,
                &Tensor::full([4096, 3], 0.3, (Kind::Float, Device::Cpu)),
                &y,
            );
            assert!(
                ixt.abs() < 1e-12 && ity.abs() < 1e-12,
                "{e:?}: constant layer gives {ixt}, {ity}"
            );
        }
    }

    #[test]
    fn binning_is_invariant_to_unit_order_and_bin_relabelling() {
        let (_, y) = patterns();
        tch::manual_seed(0);
        let _rng = crate::rng::serial();
        let t = (Tensor::randn([4096, 4], (Kind::Float, Device::Cpu)) * 0.5).tanh();
        for e in BINNINGS {
            let base = est(e, &t, &y);
            let permuted = est(
                e,
                &t.index_select(1, &Tensor::from_slice(&[2i64, 0, 3, 1])),
                &y,
            );
            assert!(
                (base.0 - permuted.0).abs() < 1e-9 && (base.1 - permuted.1).abs() < 1e-9,
                "{e:?}"
            );
        }
        // Shifting every value by whole bins relabels the bins and changes nothing.
        let a = est(Estimator::BinWidth, &t, &y);
        let b = est(Estimator::BinWidth, &(&t + 0.07 * 5.0), &y);
        assert!((a.0 - b.0).abs() < 0.05, "{a:?} vs {b:?}");
        let a = est(Estimator::BinAdaptive, &t, &y);
        let b = est(Estimator::BinAdaptive, &(&t * 3.0 - 1.0), &y);
        assert!(
            (a.0 - b.0).abs() < 1e-9,
            "adaptive bins follow the layer's range"
        );
    }

    #[test]
    fn kde_bounds_bracket_the_binned_value_on_separated_clusters() {
        let (x, y) = patterns();
        // Four well separated points (2 bits of X), far apart compared with the noise.
        let t = x.narrow(1, 0, 2) * 0.9 - 0.45;
        let (bin, bin_y) = est(Estimator::BinFixed, &t, &y);
        let (up, up_y) = est(Estimator::KdeUpper, &t, &y);
        let (low, low_y) = est(Estimator::KdeLower, &t, &y);
        assert!((bin - 2.0).abs() < 1e-9);
        assert!(
            low <= bin + 1e-6 && bin <= up + 1e-6,
            "{low} <= {bin} <= {up}"
        );
        assert!(
            low_y <= bin_y + 1e-3 && bin_y <= up_y + 1e-3,
            "{low_y} <= {bin_y} <= {up_y}"
        );
        assert!(
            up - low < 0.05,
            "separated clusters: bounds are tight, {low}..{up}"
        );
    }
}
