//! Irregular time series: values on a time grid with missing entries (NaN), made continuous
//! paths for controlled differential equations.
//!
//! - `missing_mask`: the official stable-neural-SDE protocol (torch-ists `preprocess`): for
//!   every sample and every channel independently, ⌊L·rate⌋ of the L time points are dropped,
//!   chosen uniformly without replacement.
//! - `fill_linear`: missing entries replaced by linear interpolation in time between the
//!   nearest observed neighbours; before the first (after the last) observation the first
//!   (last) observed value; a channel with no observation is 0 (torchcde's rule).
//! - `Hermite`: piecewise cubic Hermite interpolation, exact for cubics when given the true
//!   node derivatives; `Hermite::backward_differences` is torchcde's
//!   `hermite_cubic_coefficients_with_backward_differences` (the interpolation the official
//!   runs use): node values are the linearly filled series, and on [t_i, t_{i+1}] the start
//!   slope is the previous interval's secant and the end slope this interval's secant, which
//!   makes the path C¹ and reproduces linear functions.
//! - `ChannelStats`: per-channel mean and standard deviation over the observed (non-NaN)
//!   training values, applied as (x − mean)/(std + 1e-5) to every split (the official
//!   normalisation).
//!
//! Tensors are [N, L, D]: samples, time points, channels.

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

/// Which entries are missing, [n, l, d] (true = missing): exactly ⌊l·rate⌋ of the l time points
/// of each (sample, channel), uniformly at random (libtorch's global generator, CPU).
pub fn missing_mask(n: i64, l: i64, d: i64, rate: f64) -> Result<Tensor> {
    if !(0.0..1.0).contains(&rate) {
        bail!("missing rate must be in [0, 1), got {rate}");
    }
    // int(L·rate) as the official code computes it.
    let k = (l as f64 * rate).floor() as i64;
    // The rank of each point under a uniform random order: the k lowest are dropped.
    let order = Tensor::rand([n, d, l], (Kind::Float, Device::Cpu)).argsort(-1, false);
    let rank = order.argsort(-1, false);
    Ok(rank.lt(k).permute([0, 2, 1]).contiguous())
}

/// `x` with the entries of `mask` set to NaN.
pub fn with_missing(x: &Tensor, mask: &Tensor) -> Tensor {
    x.masked_fill(&mask.to_device(x.device()), f64::NAN)
}

/// Linear interpolation of the NaN entries of `x` [N, L, D] in time `t` (L increasing times),
/// constant beyond the first and last observation, 0 for channels never observed.
pub fn fill_linear(t: &[f64], x: &Tensor) -> Result<Tensor> {
    let s = x.size();
    if s.len() != 3 || s[1] as usize != t.len() {
        bail!(
            "fill_linear: x must be [N, L, D] with L = {} times",
            t.len()
        );
    }
    let (l, dev, kind) = (s[1], x.device(), x.kind());
    let obs = x.isnan().logical_not();
    let idx = Tensor::arange(l, (Kind::Int64, dev))
        .view([1, l, 1])
        .expand_as(x);
    // Index of the previous (next) observed point, −1 (L) when there is none.
    let prev = idx.where_self(&obs, &idx.full_like(-1)).cummax(1).0;
    let next = idx
        .where_self(&obs, &idx.full_like(l))
        .flip([1])
        .cummin(1)
        .0
        .flip([1]);
    let none_before = prev.lt(0);
    let none_after = next.ge(l);
    let prev = prev.where_self(&none_before.logical_not(), &next);
    let next = next.where_self(&none_after.logical_not(), &prev);
    let never = none_before.logical_and(&none_after);
    let (prev, next) = (prev.clamp(0, l - 1), next.clamp(0, l - 1));
    let x0 = x.nan_to_num(0.0, 0.0, 0.0);
    let (vp, vn) = (x0.gather(1, &prev, false), x0.gather(1, &next, false));
    let tt = Tensor::from_slice(t).to_kind(kind).to_device(dev);
    let (tp, tn) = (tt.take(&prev), tt.take(&next));
    let here = tt.view([1, l, 1]);
    let span = &tn - &tp;
    let positive = span.gt(0.0);
    let w = ((&here - &tp) / span.where_self(&positive, &span.ones_like()))
        .where_self(&positive, &span.zeros_like());
    let filled = &vp + w * (&vn - &vp);
    Ok(filled.masked_fill(&never, 0.0))
}

/// A piecewise cubic on the intervals of `t`: on [t_i, t_{i+1}], with u = s − t_i,
/// X(s) = a_i + b_i u + c_i u² + d_i u³; coefficients [N, L−1, D].
pub struct Hermite {
    pub t: Vec<f64>,
    a: Tensor,
    b: Tensor,
    c: Tensor,
    d: Tensor,
}

impl Hermite {
    /// The cubic on each interval with the node values `x` [N, L, D] at both ends and the
    /// given slopes at its start (`m0`) and end (`m1`), both [N, L−1, D].
    pub fn new(t: &[f64], x: &Tensor, m0: &Tensor, m1: &Tensor) -> Result<Hermite> {
        let s = x.size();
        if t.len() < 2 || s.len() != 3 || s[1] as usize != t.len() {
            bail!(
                "Hermite: x must be [N, L, D] with L = {} ≥ 2 times",
                t.len()
            );
        }
        if t.windows(2)
            .any(|w| w[1].partial_cmp(&w[0]) != Some(std::cmp::Ordering::Greater))
        {
            bail!("Hermite: times must be strictly increasing");
        }
        let l = s[1];
        let h = Tensor::from_slice(&t.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>())
            .to_kind(x.kind())
            .to_device(x.device())
            .view([1, l - 1, 1]);
        let p0 = x.narrow(1, 0, l - 1);
        let secant = (x.narrow(1, 1, l - 1) - &p0) / &h;
        let c = (&secant * 3.0 - m0 * 2.0 - m1) / &h;
        let d = (m0 + m1 - &secant * 2.0) / h.square();
        Ok(Hermite {
            t: t.to_vec(),
            a: p0,
            b: m0.shallow_clone(),
            c,
            d,
        })
    }

    /// Hermite interpolation with one known derivative per node, `dx` [N, L, D] (exact for
    /// cubics).
    pub fn with_derivatives(t: &[f64], x: &Tensor, dx: &Tensor) -> Result<Hermite> {
        let l = x.size()[1];
        Hermite::new(t, x, &dx.narrow(1, 0, l - 1), &dx.narrow(1, 1, l - 1))
    }

    /// torchcde's Hermite cubic with backward differences of the series `x` (NaNs allowed:
    /// linearly filled first).
    pub fn backward_differences(t: &[f64], x: &Tensor) -> Result<Hermite> {
        let x = fill_linear(t, x)?;
        let l = x.size()[1];
        if l < 2 {
            bail!("Hermite: a series needs at least two time points");
        }
        let h = Tensor::from_slice(&t.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>())
            .to_kind(x.kind())
            .to_device(x.device())
            .view([1, l - 1, 1]);
        let secant = (x.narrow(1, 1, l - 1) - x.narrow(1, 0, l - 1)) / h;
        // The slope before the first interval is taken equal to the first interval's.
        let before = Tensor::cat(&[secant.narrow(1, 0, 1), secant.narrow(1, 0, l - 2)], 1);
        Hermite::new(t, &x, &before, &secant)
    }

    /// X(s) for every sample: [N, D]. Outside [t_0, t_{L−1}] the end cubics are extended.
    pub fn evaluate(&self, s: f64) -> Tensor {
        let n = self.t.len();
        // The interval whose start is the last time ≤ s (clamped to the first and last).
        let i = self.t[..n - 1].iter().rposition(|&ti| ti <= s).unwrap_or(0);
        let u = s - self.t[i];
        let pick = |c: &Tensor| c.select(1, i as i64);
        pick(&self.a) + (pick(&self.b) + (pick(&self.c) + pick(&self.d) * u) * u) * u
    }

    /// X at each of `times`: [N, K, D].
    pub fn evaluate_all(&self, times: &[f64]) -> Tensor {
        Tensor::stack(
            &times.iter().map(|&s| self.evaluate(s)).collect::<Vec<_>>(),
            1,
        )
    }
}

/// Per-channel statistics of the observed values of a training set.
#[derive(Debug, Clone)]
pub struct ChannelStats {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl ChannelStats {
    /// Mean and (unbiased) standard deviation per channel of `x` [N, L, D], NaNs ignored.
    pub fn fit(x: &Tensor) -> Result<ChannelStats> {
        let x = x.to_kind(Kind::Double).to_device(Device::Cpu);
        let d = x.size()[2];
        let flat = x.reshape([-1, d]);
        let (mut mean, mut std) = (vec![], vec![]);
        for c in 0..d {
            let col = flat.select(1, c);
            let v = col.masked_select(&col.isnan().logical_not());
            let n = v.size()[0];
            if n < 2 {
                bail!(
                    "channel {c} has fewer than two observed training values: cannot normalise it"
                );
            }
            mean.push(v.mean(Kind::Double).double_value(&[]));
            std.push(v.std(true).double_value(&[]));
        }
        Ok(ChannelStats { mean, std })
    }

    /// (x − mean)/(std + 1e-5) per channel (NaNs stay NaN).
    pub fn apply(&self, x: &Tensor) -> Tensor {
        let d = self.mean.len() as i64;
        let opts = (x.kind(), x.device());
        let m = Tensor::from_slice(&self.mean)
            .view([1, 1, d])
            .to_kind(opts.0)
            .to_device(opts.1);
        let s = Tensor::from_slice(&self.std)
            .view([1, 1, d])
            .to_kind(opts.0)
            .to_device(opts.1);
        (x - m) / (s + 1e-5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &Tensor, b: &Tensor, tol: f64) -> bool {
        (a - b).abs().max().double_value(&[]) < tol
    }

    #[test]
    fn hermite_with_true_derivatives_reproduces_cubics_between_irregular_nodes() {
        // p(s) = 1 − 2s + 0.5s² + 0.3s³ (channel 0) and its negative plus 4 (channel 1).
        let t = [0.0, 0.3, 0.45, 1.2, 2.0, 2.1];
        let p = |s: f64| 1.0 - 2.0 * s + 0.5 * s * s + 0.3 * s * s * s;
        let dp = |s: f64| -2.0 + s + 0.9 * s * s;
        let col = |f: &dyn Fn(f64) -> f64| Tensor::from_slice(&t.map(f));
        let x = Tensor::stack(&[col(&p), col(&|s| 4.0 - p(s))], 1).unsqueeze(0);
        let dx = Tensor::stack(&[col(&dp), col(&|s| -dp(s))], 1).unsqueeze(0);
        let h = Hermite::with_derivatives(&t, &x, &dx).unwrap();
        for s in [0.0, 0.1, 0.3, 0.41, 0.9, 1.99, 2.05, 2.1] {
            let got = h.evaluate(s);
            let want = Tensor::from_slice(&[p(s), 4.0 - p(s)]).unsqueeze(0);
            assert!(close(&got, &want, 1e-12), "s={s}: {got:?}");
        }
        assert_eq!(h.evaluate_all(&[0.2, 0.5, 1.0]).size(), [1, 3, 2]);
    }

    #[test]
    fn backward_difference_hermite_is_torchcdes_interpolant() {
        // Interpolates the nodes, is linear on linear data, and matches a hand computation:
        // x = (0, 1, 0) on t = (0, 1, 2). Interval 1 has start slope 1 (the previous secant)
        // and end slope −1: X(1.5) = a + b/2 + c/4 + d/8 with a=1, b=1, c=(−3−2+1)=−4, d=(1−1+2)=2.
        let t = [0.0, 1.0, 2.0];
        let x = Tensor::from_slice(&[0.0f64, 1.0, 0.0]).view([1, 3, 1]);
        let h = Hermite::backward_differences(&t, &x).unwrap();
        for (k, &s) in t.iter().enumerate() {
            assert!(
                (h.evaluate(s).double_value(&[0, 0]) - x.double_value(&[0, k as i64, 0])).abs()
                    < 1e-12
            );
        }
        let want = 1.0 + 0.5 - 4.0 / 4.0 + 2.0 / 8.0;
        assert!((h.evaluate(1.5).double_value(&[0, 0]) - want).abs() < 1e-12);
        // On the first interval both slopes are the first secant: linear, X(0.5) = 0.5.
        assert!((h.evaluate(0.5).double_value(&[0, 0]) - 0.5).abs() < 1e-12);
        // Linear data with gaps: exact everywhere.
        let t: Vec<f64> = (0..8).map(|i| i as f64 * 0.25).collect();
        let line: Vec<f64> = t.iter().map(|s| 3.0 * s - 1.0).collect();
        let x = Tensor::from_slice(&line).view([1, 8, 1]);
        let gappy = with_missing(
            &x,
            &Tensor::from_slice(&[false, false, true, true, false, true, false, false])
                .view([1, 8, 1]),
        );
        let h = Hermite::backward_differences(&t, &gappy).unwrap();
        for s in [0.1, 0.6, 0.8, 1.3, 1.7] {
            assert!((h.evaluate(s).double_value(&[0, 0]) - (3.0 * s - 1.0)).abs() < 1e-12);
        }
    }

    #[test]
    fn linear_fill_interpolates_gaps_and_holds_the_ends() {
        let t = [0.0, 1.0, 3.0, 4.0, 6.0];
        let nan = f64::NAN;
        // Channel 0 = (NaN, 2, NaN, 6, NaN): gaps at both ends and one inside; channel 1 is
        // never observed.
        let x =
            Tensor::from_slice(&[nan, nan, 2.0, nan, nan, nan, 6.0, nan, nan, nan]).view([1, 5, 2]);
        let f = fill_linear(&t, &x).unwrap();
        let ch0: Vec<f64> = Vec::try_from(f.select(2, 0).reshape([-1])).unwrap();
        let ch1: Vec<f64> = Vec::try_from(f.select(2, 1).reshape([-1])).unwrap();
        // t = 3 lies between (1, 2) and (4, 6): 2 + 4·2/3.
        let want0 = [2.0, 2.0, 2.0 + 8.0 / 3.0, 6.0, 6.0];
        for (g, w) in ch0.iter().zip(want0) {
            assert!((g - w).abs() < 1e-12, "{ch0:?}");
        }
        assert!(ch1.iter().all(|&v| v == 0.0), "{ch1:?}");
    }

    #[test]
    fn masks_drop_exactly_floor_l_rate_per_channel_and_stats_ignore_missing() {
        let _rng = crate::rng::serial();
        tch::manual_seed(5);
        let m = missing_mask(30, 50, 3, 0.7).unwrap();
        assert_eq!(m.size(), [30, 50, 3]);
        let per = m.sum_dim_intlist([1i64].as_slice(), false, Kind::Int64);
        assert!(per.eq(35).all().int64_value(&[]) == 1);
        // Channels are masked independently.
        assert!(!m.select(2, 0).equal(&m.select(2, 1)));
        assert_eq!(
            missing_mask(2, 10, 1, 0.0)
                .unwrap()
                .sum(Kind::Int64)
                .int64_value(&[]),
            0
        );
        assert!(missing_mask(2, 10, 1, 1.0).is_err());
        // Statistics skip NaNs: channel values 1, 3 (and a NaN) → mean 2, std √2.
        let x = Tensor::from_slice(&[1.0, 10.0, f64::NAN, 20.0, 3.0, 30.0]).view([1, 3, 2]);
        let st = ChannelStats::fit(&x).unwrap();
        assert!((st.mean[0] - 2.0).abs() < 1e-12 && (st.std[0] - 2f64.sqrt()).abs() < 1e-12);
        assert!((st.mean[1] - 20.0).abs() < 1e-12 && (st.std[1] - 10.0).abs() < 1e-12);
        let z = st.apply(&x);
        assert!((z.double_value(&[0, 2, 1]) - 10.0 / (10.0 + 1e-5)).abs() < 1e-12);
        assert!(z.double_value(&[0, 1, 0]).is_nan());
    }
}
