//! Mutual information between samples of continuous vectors (and discrete labels), behind one
//! interface: `mutual_information(cfg, x, y)` in nats.
//!
//! - `ksg`: Kraskov–Stögbauer–Grassberger algorithm 1 (max-norm, k neighbours in the joint
//!   space, marginal counts strictly inside that radius). With discrete labels, Ross (2014):
//!   the radius is the k-th neighbour within the point's class, counted in the whole sample.
//! - `kl`: Kozachenko–Leonenko entropies, I = H(X) + H(Y) − H(X,Y), or H(X) − Σ p(y) H(X|y) for
//!   labels; optionally the weighted estimator of Berrett, Samworth & Yuan (2019), which cancels
//!   the leading bias terms in dimension ≥ 4.
//! - `kde`: leave-one-out Gaussian kernel density entropies (Silverman bandwidth per column unless
//!   set), combined like `kl`.
//! - `binning`: equal-width bins per column over the sample's range; plug-in discrete entropies.
//!
//! Ties: k-NN estimators assume distinct points. Like the reference implementations (NPEET adds
//! 1e-10 uniform noise), continuous inputs get a tiny jitter before the search: `jitter` times
//! each column's standard deviation times U(−1, 1), drawn from libtorch's CPU generator, so it
//! is reproducible under a fixed seed and identical on every device.

use super::knn::{Index, Metric};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum MiEstimator {
    Ksg,
    Kl,
    Kde,
    Binning,
}

impl MiEstimator {
    pub fn as_str(self) -> &'static str {
        match self {
            MiEstimator::Ksg => "ksg",
            MiEstimator::Kl => "kl",
            MiEstimator::Kde => "kde",
            MiEstimator::Binning => "binning",
        }
    }
}

/// Units estimates are reported in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Units {
    #[default]
    Nats,
    Bits,
}

impl Units {
    pub fn from_nats(self, v: f64) -> f64 {
        match self {
            Units::Nats => v,
            Units::Bits => v / std::f64::consts::LN_2,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Units::Nats => "nats",
            Units::Bits => "bits",
        }
    }
}

/// Transform applied to each continuous side before estimating (MI is invariant to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Preprocess {
    None,
    /// Zero mean, unit variance per column.
    #[default]
    Standardize,
    /// Zero mean, identity covariance (Σ^{-1/2}); makes the max-norm balls isotropic.
    Whiten,
}

/// Estimator settings (`[mi]` in experiment configs), shared by the CLI and experiments; which
/// estimator runs is chosen separately.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MiParams {
    /// Neighbours for `ksg` and `kl`.
    pub k: usize,
    /// `kl` only: Berrett–Samworth–Yuan weights over neighbours 1..k.
    pub weighted: bool,
    /// `binning` only: bins per column.
    pub bins: i64,
    /// `kde` only: kernel width in standardised units; 0 = Silverman's rule.
    pub bandwidth: f64,
    pub preprocess: Preprocess,
    /// Relative jitter against ties for the k-NN estimators (0 = none).
    pub jitter: f64,
}

impl Default for MiParams {
    fn default() -> Self {
        MiParams {
            k: 5,
            weighted: false,
            bins: 10,
            bandwidth: 0.0,
            preprocess: Preprocess::Standardize,
            jitter: 1e-10,
        }
    }
}

impl crate::config::Check for MiParams {
    fn check(&self) -> Result<()> {
        if self.k == 0 {
            bail!("mi.k must be at least 1");
        }
        if self.bins < 2 {
            bail!("mi.bins must be at least 2");
        }
        if self.bandwidth < 0.0 || self.jitter < 0.0 {
            bail!("mi.bandwidth and mi.jitter must be >= 0");
        }
        Ok(())
    }
}

/// The second variable: continuous rows [N, d] or integer labels [N].
pub enum Var<'a> {
    Continuous(&'a Tensor),
    Discrete(&'a Tensor),
}

/// I(X;Y) in nats between the rows of `x` [N, dx] and `y`.
pub fn mutual_information(est: MiEstimator, cfg: &MiParams, x: &Tensor, y: Var<'_>) -> Result<f64> {
    let n = x.size()[0];
    if n < 2 * cfg.k as i64 + 2 {
        bail!(
            "{n} samples are too few for mi.k = {}: use more samples or a smaller k",
            cfg.k
        );
    }
    let x = prepare(est, cfg, x)?;
    match y {
        Var::Continuous(y) => {
            if y.size()[0] != n {
                bail!("x has {n} rows but y has {}", y.size()[0]);
            }
            let y = prepare(est, cfg, y)?;
            match est {
                MiEstimator::Ksg => Ok(ksg(&x, &y, cfg.k)),
                _ => {
                    let xy = Tensor::cat(&[&x, &y], 1);
                    let h = |t: &Tensor| entropy_of(est, cfg, t);
                    Ok(h(&x)? + h(&y)? - h(&xy)?)
                }
            }
        }
        Var::Discrete(labels) => {
            let labels = labels.to_kind(Kind::Int64).to_device(Device::Cpu);
            if labels.size() != vec![n] {
                bail!("labels must be one value per row of x");
            }
            match est {
                MiEstimator::Ksg => Ok(ksg_discrete(&x, &labels, cfg.k)),
                MiEstimator::Binning => Ok(binned_label_information(&x, &labels, cfg.bins)),
                _ => conditional(est, cfg, &x, &labels),
            }
        }
    }
}

/// Differential entropy of `x` in nats (`ksg` uses Kozachenko–Leonenko).
pub fn entropy(est: MiEstimator, cfg: &MiParams, x: &Tensor) -> Result<f64> {
    let x = prepare(est, cfg, x)?;
    entropy_of(est, cfg, &x)
}

fn entropy_of(est: MiEstimator, cfg: &MiParams, x: &Tensor) -> Result<f64> {
    match est {
        MiEstimator::Ksg | MiEstimator::Kl => kl_entropy(x, cfg.k, cfg.weighted),
        MiEstimator::Kde => Ok(kde_entropy(x, cfg.bandwidth)),
        MiEstimator::Binning => Ok(binned_entropy(x, cfg.bins)),
    }
}

/// I(X;Y) = H(X) − Σ_y p(y) H(X | Y = y) for labels on the host.
fn conditional(est: MiEstimator, cfg: &MiParams, x: &Tensor, labels: &Tensor) -> Result<f64> {
    let n = x.size()[0] as f64;
    let mut h_cond = 0.0;
    for (rows, n_c) in classes(labels) {
        if n_c <= cfg.k as i64 + 1 {
            bail!("class with {n_c} samples is too small for mi.k = {}", cfg.k);
        }
        let xc = x.index_select(0, &rows.to_device(x.device()));
        h_cond += n_c as f64 / n * entropy_of(est, cfg, &xc)?;
    }
    Ok(entropy_of(est, cfg, x)? - h_cond)
}

/// Row indices and size of each label value present.
fn classes(labels: &Tensor) -> Vec<(Tensor, i64)> {
    let (values, _, _) = labels.unique_dim(0, true, false, false);
    let values: Vec<i64> = Vec::try_from(values).unwrap_or_default();
    values
        .into_iter()
        .map(|v| {
            let rows = labels.eq(v).nonzero().squeeze_dim(1);
            let n = rows.size()[0];
            (rows, n)
        })
        .collect()
}

/// Double precision, preprocessed, jittered (k-NN estimators), on `x`'s device.
fn prepare(est: MiEstimator, cfg: &MiParams, x: &Tensor) -> Result<Tensor> {
    let x = x.to_kind(Kind::Double);
    let x = if x.dim() == 1 { x.unsqueeze(1) } else { x };
    if x.dim() != 2 {
        bail!("expected samples as rows [N, d], got shape {:?}", x.size());
    }
    if !bool::try_from(x.isfinite().all())? {
        bail!("the sample contains NaN or infinite values");
    }
    let x = match cfg.preprocess {
        Preprocess::None => x,
        Preprocess::Standardize => standardize(&x),
        Preprocess::Whiten => whiten(&x),
    };
    let knn = matches!(est, MiEstimator::Ksg | MiEstimator::Kl);
    Ok(if knn && cfg.jitter > 0.0 {
        jitter(&x, cfg.jitter)
    } else {
        x
    })
}

fn column_std(x: &Tensor) -> Tensor {
    let sd = x.std_dim(0, false, true);
    // Constant columns keep their (zero) spread; dividing by 1 leaves them constant.
    sd.where_scalarother(&sd.gt(0.0), 1.0)
}

fn standardize(x: &Tensor) -> Tensor {
    (x - x.mean_dim(0, true, Kind::Double)) / column_std(x)
}

fn whiten(x: &Tensor) -> Tensor {
    let xc = x - x.mean_dim(0, true, Kind::Double);
    let n = x.size()[0] as f64;
    let cov = xc.tr().matmul(&xc) / (n - 1.0).max(1.0);
    let (evals, evecs) = cov.linalg_eigh("L");
    // Directions without variance are left unscaled rather than blown up.
    let top = evals.max().double_value(&[]).max(f64::MIN_POSITIVE);
    let scale = evals
        .clamp_min(top * 1e-12)
        .rsqrt()
        .where_scalarother(&evals.gt(top * 1e-12), 1.0);
    xc.matmul(&(evecs * scale.unsqueeze(0)))
}

fn jitter(x: &Tensor, scale: f64) -> Tensor {
    let u = Tensor::rand(x.size(), (Kind::Double, Device::Cpu)) * 2.0 - 1.0;
    x + u.to_device(x.device()) * column_std(x) * scale
}

/// KSG algorithm 1: ψ(k) + ψ(N) − ⟨ψ(n_x + 1) + ψ(n_y + 1)⟩.
fn ksg(x: &Tensor, y: &Tensor, k: usize) -> f64 {
    let n = x.size()[0] as usize;
    let joint = Tensor::cat(&[x, y], 1);
    let eps = kth(&Index::new(&joint, Metric::Max), k);
    let nx = Index::new(x, Metric::Max).count_within(&eps);
    let ny = Index::new(y, Metric::Max).count_within(&eps);
    let marg: f64 = nx
        .iter()
        .zip(&ny)
        .map(|(&a, &b)| digamma(a as f64 + 1.0) + digamma(b as f64 + 1.0))
        .sum::<f64>()
        / n as f64;
    digamma(k as f64) + digamma(n as f64) - marg
}

/// Distance to each point's k-th neighbour.
fn kth(index: &Index, k: usize) -> Vec<f64> {
    index.knn_distances(k).chunks(k).map(|r| r[k - 1]).collect()
}

/// Ross (2014): ψ(N) + ⟨ψ(k)⟩ − ⟨ψ(N_y)⟩ − ⟨ψ(m)⟩, with the radius the k-th neighbour inside
/// the point's class and m the points of any class within it (itself included). Classes with
/// a single sample carry no neighbour information and are left out, as scikit-learn does.
fn ksg_discrete(x: &Tensor, labels: &Tensor, k: usize) -> f64 {
    let n = x.size()[0] as usize;
    let mut radius = vec![0.0; n];
    let mut kept = vec![];
    for (rows, n_c) in classes(labels) {
        if n_c < 2 {
            continue;
        }
        let k_c = k.min(n_c as usize - 1);
        let xc = x.index_select(0, &rows.to_device(x.device()));
        let eps = kth(&Index::new(&xc, Metric::Max), k_c);
        let rows: Vec<i64> = Vec::try_from(rows).unwrap_or_default();
        for (r, e) in rows.into_iter().zip(eps) {
            radius[r as usize] = e;
            kept.push((r as usize, k_c, n_c));
        }
    }
    let m = Index::new(x, Metric::Max).count_within(&radius);
    let n_kept = kept.len() as f64;
    let avg: f64 = kept
        .iter()
        .map(|&(i, k_c, n_c)| {
            digamma(k_c as f64) - digamma(n_c as f64) - digamma(m[i] as f64 + 1.0)
        })
        .sum::<f64>()
        / n_kept;
    (digamma(n_kept) + avg).max(0.0)
}

/// ln of the unit ball's volume in `d` dimensions.
fn log_unit_ball(d: usize, metric: Metric) -> f64 {
    let d = d as f64;
    match metric {
        Metric::Max => d * std::f64::consts::LN_2,
        Metric::Euclidean => d / 2.0 * std::f64::consts::PI.ln() - ln_gamma(d / 2.0 + 1.0),
    }
}

/// Kozachenko–Leonenko (Euclidean): H_j = ψ(N) − ψ(j) + ln V_d + d ⟨ln ε_j⟩ for the j-th
/// neighbour; plain = H_k, weighted = Σ_j w_j H_j.
pub fn kl_entropy(x: &Tensor, k: usize, weighted: bool) -> Result<f64> {
    let (n, d) = (x.size()[0] as usize, x.size()[1] as usize);
    let dist = Index::new(x, Metric::Euclidean).knn_distances(k);
    let weights = if weighted {
        bsy_weights(k, d)?
    } else {
        let mut w = vec![0.0; k];
        w[k - 1] = 1.0;
        w
    };
    let base = digamma(n as f64) + log_unit_ball(d, Metric::Euclidean);
    let mut h = 0.0;
    for (j, &w) in weights.iter().enumerate().filter(|(_, w)| **w != 0.0) {
        let mut sum_log = 0.0;
        for i in 0..n {
            let e = dist[i * k + j];
            if e <= 0.0 {
                bail!("duplicate samples (zero neighbour distance): add jitter (mi.jitter > 0) or remove the duplicates");
            }
            sum_log += e.ln();
        }
        h += w * (base - digamma(j as f64 + 1.0) + d as f64 * sum_log / n as f64);
    }
    Ok(h)
}

/// Minimum-norm weights over neighbours 1..k with Σ w = 1 and
/// Σ_j w_j Γ(j + 2l/d)/Γ(j) = 0 for l = 1..⌊d/4⌋ (Berrett, Samworth & Yuan 2019, eq. 3).
pub fn bsy_weights(k: usize, d: usize) -> Result<Vec<f64>> {
    let l_max = d / 4;
    if k <= l_max {
        bail!("the weighted estimator in {d} dimensions needs mi.k > {l_max}");
    }
    let rows: Vec<Vec<f64>> = std::iter::once(vec![1.0; k])
        .chain((1..=l_max).map(|l| {
            (1..=k)
                .map(|j| {
                    let j = j as f64;
                    (ln_gamma(j + 2.0 * l as f64 / d as f64) - ln_gamma(j)).exp()
                })
                .collect()
        }))
        .collect();
    let m = rows.len();
    // w = Aᵀ (A Aᵀ)⁻¹ e₁.
    let gram: Vec<Vec<f64>> = (0..m)
        .map(|a| {
            (0..m)
                .map(|b| rows[a].iter().zip(&rows[b]).map(|(p, q)| p * q).sum())
                .collect()
        })
        .collect();
    let mut rhs = vec![0.0; m];
    rhs[0] = 1.0;
    let c = solve(gram, rhs)?;
    Ok((0..k)
        .map(|j| (0..m).map(|a| c[a] * rows[a][j]).sum())
        .collect())
}

/// Gaussian elimination with partial pivoting for a small dense system.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Result<Vec<f64>> {
    let m = b.len();
    for col in 0..m {
        let p = (col..m)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap_or(col);
        if a[p][col].abs() < 1e-300 {
            bail!("singular system for the estimator weights");
        }
        a.swap(col, p);
        b.swap(col, p);
        let (top, rest) = a.split_at_mut(col + 1);
        let pivot = &top[col];
        for (r, row) in rest.iter_mut().enumerate() {
            let f = row[col] / pivot[col];
            for (v, p) in row[col..].iter_mut().zip(&pivot[col..]) {
                *v -= f * p;
            }
            b[col + 1 + r] -= f * b[col];
        }
    }
    let mut x = vec![0.0; m];
    for r in (0..m).rev() {
        let s: f64 = (r + 1..m).map(|c| a[r][c] * x[c]).sum();
        x[r] = (b[r] - s) / a[r][r];
    }
    Ok(x)
}

/// Leave-one-out Gaussian KDE entropy: −⟨ln (1/(N−1)) Σ_{j≠i} N(x_i; x_j, diag h²)⟩, with
/// h_d = bandwidth·σ_d (Silverman's (4/((d+2)N))^{1/(d+4)} when bandwidth = 0).
pub fn kde_entropy(x: &Tensor, bandwidth: f64) -> f64 {
    let (n, d) = (x.size()[0], x.size()[1]);
    let rule = (4.0 / ((d as f64 + 2.0) * n as f64)).powf(1.0 / (d as f64 + 4.0));
    let h = column_std(x) * if bandwidth > 0.0 { bandwidth } else { rule };
    let z = x / &h;
    let log_norm = h.log().sum(Kind::Double).double_value(&[])
        + d as f64 / 2.0 * (2.0 * std::f64::consts::PI).ln()
        + ((n - 1) as f64).ln();
    let step = ((1i64 << 24) / n.max(1)).clamp(1, n.max(1));
    let mut total = 0.0;
    tch::no_grad(|| {
        let mut start = 0;
        while start < n {
            let len = step.min(n - start);
            let d2 = Tensor::cdist(&z.narrow(0, start, len), &z, 2.0, Some(2)).square() * -0.5;
            let own = Tensor::arange_start(start, start + len, (Kind::Int64, z.device()));
            let d2 = d2.scatter_value(1, &own.unsqueeze(1), f64::NEG_INFINITY);
            total += d2
                .logsumexp([1i64].as_slice(), false)
                .sum(Kind::Double)
                .double_value(&[]);
            start += len;
        }
    });
    log_norm - total / n as f64
}

/// Bin keys of each row: `bins` equal-width bins per column over the sample's range.
fn bin_keys(x: &Tensor, bins: i64) -> Tensor {
    let lo = x.amin(0, true);
    let width = (x.amax(0, true) - &lo).clamp_min(f64::MIN_POSITIVE);
    let idx = ((x - &lo) / width * bins as f64)
        .floor()
        .clamp(0.0, (bins - 1) as f64);
    // Bin indices + ½ binned at width 1 are the indices themselves: reuse the layer hashing.
    let p = super::Params {
        bins,
        bin_width: 1.0,
        noise_var: 0.0,
    };
    super::binning::keys(super::Estimator::BinWidth, &p, &(idx + 0.5).unsqueeze(0))
}

/// Plug-in I(X;Y) in nats for labels, the same bins for every class.
fn binned_label_information(x: &Tensor, labels: &Tensor, bins: i64) -> f64 {
    let labels = labels.to_device(x.device());
    let (_, inverse, _) = labels.unique_dim(0, true, true, false);
    let k = inverse.max().int64_value(&[]) + 1;
    let (h_t, h_ty) = super::binning::joint_entropies_bits(&bin_keys(x, bins), &inverse, k);
    let h_y = super::label_entropy_bits(&inverse);
    ((h_t - h_ty).double_value(&[0]) + h_y) * std::f64::consts::LN_2
}

/// Plug-in entropy in nats of the sample binned into `bins` equal-width bins per column.
pub fn binned_entropy(x: &Tensor, bins: i64) -> f64 {
    super::binning::entropy_bits(&bin_keys(x, bins)).double_value(&[0]) * std::f64::consts::LN_2
}

/// ψ(x) for x > 0: recurrence up to x ≥ 10, then the asymptotic series.
pub fn digamma(mut x: f64) -> f64 {
    let mut r = 0.0;
    while x < 10.0 {
        r -= 1.0 / x;
        x += 1.0;
    }
    let f = 1.0 / (x * x);
    r + x.ln()
        - 0.5 / x
        - f * (1.0 / 12.0 - f * (1.0 / 120.0 - f * (1.0 / 252.0 - f * (1.0 / 240.0 - f / 132.0))))
}

pub use crate::stats::ln_gamma;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::{correlated_gaussians, rho_for_mi};

    #[test]
    fn special_functions() {
        let euler = 0.577_215_664_901_532_9;
        assert!((digamma(1.0) + euler).abs() < 1e-12);
        assert!(
            (digamma(10.0) - (1..10).map(|k| 1.0 / k as f64).sum::<f64>() + euler).abs() < 1e-12
        );
        assert!((digamma(0.5) + euler + 2.0 * std::f64::consts::LN_2).abs() < 1e-12);
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
    }

    fn gaussians(n: i64, d: usize, mi: f64, seed: i64) -> (Tensor, Tensor) {
        tch::manual_seed(seed);
        correlated_gaussians(n, &rho_for_mi(mi, d))
    }

    fn estimate(est: MiEstimator, cfg: &MiParams, x: &Tensor, y: &Tensor) -> f64 {
        mutual_information(est, cfg, x, Var::Continuous(y)).unwrap()
    }

    /// The acceptance: n = 10 000, d = 1 and 2 per side, true MI 0..2 nats.
    #[test]
    fn ksg_and_kl_on_correlated_gaussians() {
        let _rng = crate::rng::serial();
        let p = MiParams::default();
        for d in [1, 2] {
            for (i, mi) in [0.0, 0.5, 1.0, 1.5, 2.0].into_iter().enumerate() {
                let (x, y) = gaussians(10_000, d, mi, 100 + i as i64);
                let e = estimate(MiEstimator::Ksg, &p, &x, &y);
                assert!((e - mi).abs() <= 0.05, "KSG d={d} true {mi}: {e}");
                let e = estimate(MiEstimator::Kl, &p, &x, &y);
                assert!((e - mi).abs() <= 0.1, "KL d={d} true {mi}: {e}");
            }
        }
    }

    #[test]
    fn entropies_of_a_standard_gaussian() {
        let _rng = crate::rng::serial();
        tch::manual_seed(3);
        let d = 3;
        let x = Tensor::randn([5000, d], (Kind::Double, Device::Cpu));
        let truth = d as f64 / 2.0 * (2.0 * std::f64::consts::PI * std::f64::consts::E).ln();
        let none = MiParams {
            preprocess: Preprocess::None,
            ..Default::default()
        };
        for (est, tol) in [(MiEstimator::Kl, 0.05), (MiEstimator::Kde, 0.15)] {
            let h = entropy(est, &none, &x).unwrap();
            assert!((h - truth).abs() < tol, "{est:?}: {h} vs {truth}");
        }
        let h = entropy(
            MiEstimator::Kl,
            &MiParams {
                weighted: true,
                ..none
            },
            &x,
        )
        .unwrap();
        assert!((h - truth).abs() < 0.05, "weighted KL: {h} vs {truth}");
    }

    #[test]
    fn weights_satisfy_their_constraints() {
        for (k, d) in [(5, 3), (8, 4), (10, 9)] {
            let w = bsy_weights(k, d).unwrap();
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-10);
            for l in 1..=d / 4 {
                let s: f64 = w
                    .iter()
                    .enumerate()
                    .map(|(j, w)| {
                        let j = j as f64 + 1.0;
                        w * (ln_gamma(j + 2.0 * l as f64 / d as f64) - ln_gamma(j)).exp()
                    })
                    .sum();
                assert!(s.abs() < 1e-9, "k={k} d={d} l={l}: {s}");
            }
        }
        assert!(bsy_weights(1, 4).is_err());
    }

    #[test]
    fn discrete_labels_and_invariances() {
        let _rng = crate::rng::serial();
        tch::manual_seed(5);
        // Three well separated classes: I(X;Y) = H(Y) = ln 3.
        let labels = Tensor::arange(3000, (Kind::Int64, Device::Cpu)).remainder(3);
        let x = Tensor::randn([3000, 2], (Kind::Double, Device::Cpu)) * 0.1
            + labels.unsqueeze(1) * 10.0;
        for est in [MiEstimator::Ksg, MiEstimator::Kl, MiEstimator::Binning] {
            let e =
                mutual_information(est, &MiParams::default(), &x, Var::Discrete(&labels)).unwrap();
            assert!((e - 3f64.ln()).abs() < 0.02, "{est:?}: {e}");
        }
        // Independent labels: close to 0.
        let shuffled = labels.index_select(0, &Tensor::randperm(3000, (Kind::Int64, Device::Cpu)));
        let e = mutual_information(
            MiEstimator::Ksg,
            &MiParams::default(),
            &x,
            Var::Discrete(&shuffled),
        )
        .unwrap();
        assert!(e.abs() < 0.02, "independent labels: {e}");
        // Whitening/standardising changes nothing essential (MI is invariant to it).
        let (x, y) = gaussians(4000, 2, 1.0, 9);
        let mixed = x.matmul(
            &Tensor::from_slice(&[3.0f64, 1.0, 0.5, 0.2])
                .view([2, 2])
                .to_kind(Kind::Float),
        );
        let white = MiParams {
            preprocess: Preprocess::Whiten,
            ..Default::default()
        };
        let a = estimate(MiEstimator::Ksg, &white, &mixed, &y);
        let b = estimate(MiEstimator::Ksg, &MiParams::default(), &x, &y);
        assert!((a - b).abs() < 0.05, "whitened {a} vs {b}");
    }

    #[test]
    fn ties_are_broken_by_jitter_and_refused_without_it() {
        let _rng = crate::rng::serial();
        tch::manual_seed(2);
        let x = Tensor::randint(4, [2000, 1], (Kind::Double, Device::Cpu));
        let p = MiParams::default();
        assert!(entropy(MiEstimator::Kl, &p, &x).unwrap().is_finite());
        let err = entropy(MiEstimator::Kl, &MiParams { jitter: 0.0, ..p }, &x)
            .unwrap_err()
            .to_string();
        assert!(err.contains("duplicate samples"), "{err}");
        let few = Tensor::randn([8, 1], (Kind::Double, Device::Cpu));
        let err = mutual_information(
            MiEstimator::Ksg,
            &MiParams::default(),
            &few,
            Var::Continuous(&few),
        )
        .unwrap_err();
        assert!(err.to_string().contains("too few"), "{err}");
    }
}
