//! Synthetic binary spike trains, [n, bins, channels] of 0/1 (float), drawn from the global
//! generator (seed it first) on the CPU.
//!
//! - Poisson (Bernoulli per bin): each bin fires with probability p, independently.
//! - Bursty two-state Markov: a hidden state switches quiet → burst with probability a and
//!   burst → quiet with probability 1/L (mean burst length L bins); bursts fire with
//!   probability q per bin, quiet periods never. The stationary burst fraction is
//!   π = a/(a + 1/L), so the mean rate πq equals p when a = (p/q)/(L(1 − p/q)): the same mean
//!   count as the Poisson train, very different temporal structure.

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

pub fn poisson(n: i64, bins: i64, channels: i64, p: f64) -> Tensor {
    Tensor::rand([n, bins, channels], (Kind::Float, Device::Cpu))
        .lt(p)
        .to_kind(Kind::Float)
}

/// Bursty trains with mean rate `p` per bin, burst firing probability `q` and mean burst
/// length `len` bins; the chain starts from its stationary distribution.
pub fn bursty(n: i64, bins: i64, channels: i64, p: f64, q: f64, len: f64) -> Result<Tensor> {
    if !(p > 0.0 && p < q && q <= 1.0 && len >= 1.0) {
        bail!("bursty trains need 0 < rate < burst_rate <= 1 and burst_len >= 1 (got rate {p}, burst_rate {q}, burst_len {len})");
    }
    let pi = p / q;
    let exit = 1.0 / len;
    let enter = pi * exit / (1.0 - pi);
    let opts = (Kind::Float, Device::Cpu);
    let mut state = Tensor::rand([n, channels], opts).lt(pi);
    let mut out = Vec::with_capacity(bins as usize);
    for _ in 0..bins {
        let u = Tensor::rand([n, channels], opts);
        // Stay in a burst with probability 1 − 1/L, enter one with probability a.
        state = u.lt(1.0 - exit).where_self(&state, &u.lt(enter));
        let fire = Tensor::rand([n, channels], opts).lt(q).logical_and(&state);
        out.push(fire.to_kind(Kind::Float));
    }
    Ok(Tensor::stack(&out, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_and_bursty_trains_have_the_same_rate_but_different_variance() {
        let _rng = crate::rng::serial();
        tch::manual_seed(7);
        let (n, bins, ch, p) = (4000, 200, 2, 0.02);
        let a = poisson(n, bins, ch, p);
        let b = bursty(n, bins, ch, p, 0.5, 10.0).unwrap();
        assert_eq!(b.size(), vec![n, bins, ch]);
        let rate = |t: &Tensor| t.mean(Kind::Double).double_value(&[]);
        assert!((rate(&a) - p).abs() < 0.001, "{}", rate(&a));
        assert!((rate(&b) - p).abs() < 0.002, "{}", rate(&b));
        // Count variance per train: binomial 200·p(1−p) ≈ 3.9 against far more for bursts.
        let var = |t: &Tensor| {
            t.sum_dim_intlist(1, false, Kind::Double)
                .var(true)
                .double_value(&[])
        };
        assert!((var(&a) - 3.92).abs() < 0.4, "{}", var(&a));
        assert!(var(&b) > 4.0 * var(&a), "{}", var(&b));
        assert!(bursty(1, 1, 1, 0.6, 0.5, 10.0).is_err());
    }
}
