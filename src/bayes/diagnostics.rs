//! Convergence diagnostics across Markov chains (Gelman et al., BDA3 §11.4–11.5; Vehtari et al.
//! 2021 for the split form).
//!
//! Split R̂: every chain of n draws is cut into two halves, giving m = 2C chains of length
//! n' = ⌊n/2⌋; with W the mean within-chain variance and B/n' the variance of the chain means,
//! var⁺ = (n' − 1)/n'·W + B/n' and R̂ = √(var⁺/W). Chains that sample one distribution give
//! R̂ → 1; chains stuck in different modes give R̂ ≫ 1. `split_rhat` works on a tensor of draws
//! `[S, C, …]` (every trailing entry is its own scalar quantity), on any device.
//!
//! Effective sample size: ρ̂_t = 1 − (W − mean over chains of the lag-t autocovariance)/var⁺,
//! summed in Geyer's initial positive sequence (pairs ρ̂_{2k} + ρ̂_{2k+1} while positive, made
//! monotone), τ = −1 + 2·Σ pairs, ESS = mn/τ (BDA3 eq. 11.8–11.10).

use tch::{Kind, Tensor};

/// Split R̂ of draws `[S, C, …]` (S draws of C chains): a tensor of the trailing shape. NaN
/// where the within-chain variance is zero or fewer than 4 draws per chain.
pub fn split_rhat(draws: &Tensor) -> Tensor {
    let size = draws.size();
    let s = size[0];
    let half = s / 2;
    let d = draws.to_kind(Kind::Double);
    if half < 2 {
        return Tensor::full(&size[2..], f64::NAN, (Kind::Double, draws.device()));
    }
    // [n', 2C, …]: the first and the last half of each chain (the middle draw of an odd S dropped).
    let x = Tensor::cat(&[d.narrow(0, 0, half), d.narrow(0, s - half, half)], 1);
    let n = half as f64;
    let means = x.mean_dim(0, false, Kind::Double);
    let w = x.var_dim(0, true, false).mean_dim(0, false, Kind::Double);
    let b_over_n = means.var_dim(0, true, false);
    let var_plus = &w * ((n - 1.0) / n) + b_over_n;
    let r = (var_plus / &w).sqrt();
    r.where_self(&w.gt(0.0), &r.full_like(f64::NAN))
}

/// Split R̂ of one scalar quantity, one Vec per chain (equal lengths).
pub fn split_rhat_chains(chains: &[Vec<f64>]) -> f64 {
    match draws_tensor(chains) {
        Some(t) => split_rhat(&t).double_value(&[]),
        None => f64::NAN,
    }
}

fn draws_tensor(chains: &[Vec<f64>]) -> Option<Tensor> {
    let n = chains.first()?.len();
    if n == 0 || chains.iter().any(|c| c.len() != n) {
        return None;
    }
    let cols: Vec<Tensor> = chains.iter().map(|c| Tensor::from_slice(c)).collect();
    Some(Tensor::stack(&cols, 1))
}

/// Multi-chain effective sample size of one scalar quantity (one Vec per chain, equal lengths).
pub fn ess(chains: &[Vec<f64>]) -> f64 {
    let m = chains.len();
    let Some(n) = chains.first().map(Vec::len) else {
        return f64::NAN;
    };
    if n < 4 || chains.iter().any(|c| c.len() != n) {
        return f64::NAN;
    }
    let nf = n as f64;
    let means: Vec<f64> = chains.iter().map(|c| c.iter().sum::<f64>() / nf).collect();
    let var_within: Vec<f64> = chains
        .iter()
        .zip(&means)
        .map(|(c, mu)| c.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / (nf - 1.0))
        .collect();
    let w = var_within.iter().sum::<f64>() / m as f64;
    let grand = means.iter().sum::<f64>() / m as f64;
    let b_over_n = if m > 1 {
        means.iter().map(|mu| (mu - grand).powi(2)).sum::<f64>() / (m - 1) as f64
    } else {
        0.0
    };
    let var_plus = (nf - 1.0) / nf * w + b_over_n;
    if var_plus.is_nan() || var_plus <= 0.0 {
        return f64::NAN;
    }
    // Mean over chains of the lag-t autocovariance (biased 1/n estimator, as BDA3/Stan).
    let acov = |t: usize| -> f64 {
        chains
            .iter()
            .zip(&means)
            .map(|(c, mu)| {
                (0..n - t)
                    .map(|i| (c[i] - mu) * (c[i + t] - mu))
                    .sum::<f64>()
                    / nf
            })
            .sum::<f64>()
            / m as f64
    };
    let rho = |t: usize| 1.0 - (w - acov(t)) / var_plus;
    let mut tau = -1.0;
    let mut prev = f64::INFINITY;
    let mut t = 0;
    while t + 1 < n {
        let pair = rho(t) + rho(t + 1);
        if pair <= 0.0 {
            break;
        }
        let pair = pair.min(prev);
        tau += 2.0 * pair;
        prev = pair;
        t += 2;
    }
    (m as f64 * nf / tau).min(m as f64 * nf * nf.log10())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn ar1(chains: usize, n: usize, rho: f64, offsets: &[f64]) -> Vec<Vec<f64>> {
        let z = Vec::<f64>::try_from(Tensor::randn(
            [(chains * n) as i64],
            (Kind::Double, Device::Cpu),
        ))
        .unwrap();
        (0..chains)
            .map(|c| {
                let mut x = 0.0;
                let s = (1.0 - rho * rho).sqrt();
                (0..n)
                    .map(|i| {
                        x = rho * x + s * z[c * n + i];
                        x + offsets[c]
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn ess_of_iid_and_ar1_draws() {
        let _g = crate::rng::serial();
        tch::manual_seed(5);
        let iid = ar1(4, 2000, 0.0, &[0.0; 4]);
        let e = ess(&iid);
        assert!((e / 8000.0 - 1.0).abs() < 0.12, "iid ESS {e}");
        // AR(1): τ = (1 + ρ)/(1 − ρ) = 3 at ρ = 0.5.
        let a = ar1(4, 4000, 0.5, &[0.0; 4]);
        let e = ess(&a);
        assert!((e / (16000.0 / 3.0) - 1.0).abs() < 0.15, "AR(1) ESS {e}");
        let a = ar1(4, 4000, 0.9, &[0.0; 4]);
        let e = ess(&a);
        assert!(
            (e / (16000.0 / 19.0) - 1.0).abs() < 0.25,
            "AR(1) ρ=0.9 ESS {e}"
        );
    }

    #[test]
    fn rhat_is_one_on_one_distribution_and_large_across_modes() {
        let _g = crate::rng::serial();
        tch::manual_seed(9);
        let same = ar1(4, 500, 0.3, &[0.0; 4]);
        let r = split_rhat_chains(&same);
        assert!((r - 1.0).abs() < 0.02, "R̂ {r}");
        let stuck = ar1(4, 500, 0.3, &[-3.0, -3.0, 3.0, 3.0]);
        let r = split_rhat_chains(&stuck);
        assert!(r > 2.0, "R̂ {r}");
        // A drifting chain (not stationary) is caught by the split even with one chain.
        let drift: Vec<Vec<f64>> = vec![(0..400).map(|i| i as f64 / 40.0).collect()];
        assert!(split_rhat_chains(&drift) > 1.5);
        // The tensor form: one R̂ per trailing entry.
        let t = Tensor::randn([100, 4, 3], (Kind::Double, Device::Cpu));
        assert_eq!(split_rhat(&t).size(), vec![3]);
        assert!(split_rhat_chains(&[vec![1.0; 10], vec![1.0; 10]]).is_nan());
    }
}
