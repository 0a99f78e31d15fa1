//! Euler–Maruyama for Itô SDEs with diagonal noise on a given time grid, batched: the state is
//! any tensor (e.g. [replicas, batch, hidden]) and the drift and diffusion act on all of it at
//! once, so many models, seeds or paths advance in one call per step.
//!
//!   dZ = f(t, Z) dt + g(t, Z) ⊙ dW,   Z_{k+1} = Z_k + f(t_k, Z_k) Δt_k + g(t_k, Z_k) ⊙ ΔW_k,
//!
//! with ΔW_k ~ N(0, Δt_k I) independent of Z_k (the Itô convention: both coefficients at the
//! left end of the step). This is torchsde's `euler` method for `sde_type = "ito"`,
//! `noise_type = "diagonal"`, the solver the official stable-neural-SDE runs use.

use anyhow::{bail, Result};
use tch::Tensor;

/// An Itô SDE with diagonal noise: g(t, z) has z's shape and multiplies dW elementwise.
pub trait DiagonalSde {
    /// f(t, z). `step` is the index of t on the solver grid, for inputs precomputed there
    /// (a control path evaluated at the solver times).
    fn drift(&self, t: f64, step: usize, z: &Tensor) -> Tensor;
    /// g(t, z), z's shape (or broadcastable to it).
    fn diffusion(&self, t: f64, step: usize, z: &Tensor) -> Tensor;
}

/// An SDE from two closures (tests, small scripts).
pub struct FnSde<F, G> {
    pub drift: F,
    pub diffusion: G,
}

impl<F, G> DiagonalSde for FnSde<F, G>
where
    F: Fn(f64, &Tensor) -> Tensor,
    G: Fn(f64, &Tensor) -> Tensor,
{
    fn drift(&self, t: f64, _step: usize, z: &Tensor) -> Tensor {
        (self.drift)(t, z)
    }
    fn diffusion(&self, t: f64, _step: usize, z: &Tensor) -> Tensor {
        (self.diffusion)(t, z)
    }
}

/// Where the Brownian increments come from.
pub enum Noise<'a> {
    /// Fresh N(0, Δt) draws from libtorch's global generator (the caller seeds it).
    Fresh,
    /// Given standard normals ξ_k, one per step shaped like the state: ΔW_k = √Δt_k ξ_k.
    Given(&'a [Tensor]),
    /// No noise: the Euler method for the ODE dZ = f dt.
    None,
}

/// `steps + 1` equally spaced times from `t0` to `t1`.
pub fn uniform_grid(t0: f64, t1: f64, steps: usize) -> Vec<f64> {
    (0..=steps)
        .map(|k| t0 + (t1 - t0) * k as f64 / steps as f64)
        .collect()
}

/// Each interval of `grid` cut into `parts` equal steps (the solver grid for a step size that
/// divides the observation spacing).
pub fn refine(grid: &[f64], parts: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity((grid.len().saturating_sub(1)) * parts + 1);
    for w in grid.windows(2) {
        for j in 0..parts {
            out.push(w[0] + (w[1] - w[0]) * j as f64 / parts as f64);
        }
    }
    if let Some(&last) = grid.last() {
        out.push(last);
    }
    out
}

/// Integrates from `z0` over `grid` (strictly increasing): the states at every grid time,
/// `grid.len()` tensors, the first being `z0`. Differentiable (for training neural SDEs by
/// backpropagating through the solver).
pub fn solve(
    sde: &impl DiagonalSde,
    z0: &Tensor,
    grid: &[f64],
    noise: Noise<'_>,
) -> Result<Vec<Tensor>> {
    if grid.len() < 2 {
        bail!("the Euler–Maruyama grid needs at least two times");
    }
    if grid
        .windows(2)
        .any(|w| w[1].partial_cmp(&w[0]) != Some(std::cmp::Ordering::Greater))
    {
        bail!("the Euler–Maruyama grid must be strictly increasing");
    }
    if let Noise::Given(xi) = &noise {
        if xi.len() < grid.len() - 1 {
            bail!(
                "Euler–Maruyama: {} noise tensors given for {} steps",
                xi.len(),
                grid.len() - 1
            );
        }
    }
    let mut out = Vec::with_capacity(grid.len());
    out.push(z0.shallow_clone());
    for k in 0..grid.len() - 1 {
        let (t, dt) = (grid[k], grid[k + 1] - grid[k]);
        let z = &out[k];
        let mut next = z + sde.drift(t, k, z) * dt;
        let dw = match &noise {
            Noise::Fresh => Some(z.randn_like() * dt.sqrt()),
            Noise::Given(xi) => Some(&xi[k] * dt.sqrt()),
            Noise::None => None,
        };
        if let Some(dw) = dw {
            next += sde.diffusion(t, k, z) * dw;
        }
        out.push(next);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    const D: (Kind, Device) = (Kind::Double, Device::Cpu);

    fn moments(x: &Tensor) -> (f64, f64) {
        (
            x.mean(Kind::Double).double_value(&[]),
            x.var(true).double_value(&[]),
        )
    }

    #[test]
    fn ornstein_uhlenbeck_mean_and_variance_match_the_closed_form() {
        let _rng = crate::rng::serial();
        tch::manual_seed(11);
        // dX = −θ X dt + σ dW, X0 = x0: E X_t = x0 e^{−θt}, Var X_t = σ²(1 − e^{−2θt})/(2θ).
        let (theta, sigma, x0, n) = (1.5, 0.8, 2.0, 50_000i64);
        let sde = FnSde {
            drift: move |_t: f64, z: &Tensor| z * -theta,
            diffusion: move |_t: f64, z: &Tensor| z.ones_like() * sigma,
        };
        let grid = uniform_grid(0.0, 2.0, 200);
        let dt = grid[1];
        let path = solve(&sde, &Tensor::full([n], x0, D), &grid, Noise::Fresh).unwrap();
        for &k in &[50usize, 200] {
            let t = grid[k];
            let (m, v) = moments(&path[k]);
            let want_m = x0 * (-theta * t).exp();
            let want_v = sigma * sigma * (1.0 - (-2.0 * theta * t).exp()) / (2.0 * theta);
            // Sampling error (5 standard errors) plus the scheme's O(Δt) bias: (1 − θΔt)^k
            // against e^{−θt} is off by about θt·θΔt/2 relative, the AR(1) variance
            // σ²/(θ(2 − θΔt)) by θΔt/2.
            let se_m = (want_v / n as f64).sqrt();
            assert!(
                (m - want_m).abs() < 5.0 * se_m + theta * t * theta * dt * want_m,
                "t={t}: mean {m} vs {want_m}"
            );
            let se_v = want_v * (2.0 / n as f64).sqrt();
            assert!(
                (v - want_v).abs() < 5.0 * se_v + theta * dt * want_v,
                "t={t}: var {v} vs {want_v}"
            );
        }
    }

    #[test]
    fn brownian_motion_has_variance_t_and_covariance_min_s_t() {
        let _rng = crate::rng::serial();
        tch::manual_seed(12);
        let n = 100_000i64;
        let sde = FnSde {
            drift: |_t: f64, z: &Tensor| z.zeros_like(),
            diffusion: |_t: f64, z: &Tensor| z.ones_like(),
        };
        // An irregular grid: the increments must scale with each step.
        let grid = [0.0, 0.1, 0.15, 0.5, 0.9, 1.0, 1.7];
        let path = solve(&sde, &Tensor::zeros([n], D), &grid, Noise::Fresh).unwrap();
        for (k, &t) in grid.iter().enumerate().skip(1) {
            let (m, v) = moments(&path[k]);
            assert!(m.abs() < 5.0 * (t / n as f64).sqrt(), "t={t}: mean {m}");
            assert!(
                (v - t).abs() < 5.0 * t * (2.0 / n as f64).sqrt(),
                "t={t}: {v}"
            );
        }
        let cov = (&path[3] * &path[6]).mean(Kind::Double).double_value(&[]);
        assert!((cov - 0.5).abs() < 5.0 * (0.5 * 1.7f64 + 0.25).sqrt() / (n as f64).sqrt());
    }

    #[test]
    fn geometric_brownian_motion_follows_the_ito_mean() {
        let _rng = crate::rng::serial();
        tch::manual_seed(13);
        // dX = μX dt + σX dW (Itô): E X_T = x0 e^{μT}; the Stratonovich reading would give
        // x0 e^{(μ + σ²/2)T}, 1.13× larger here.
        let (mu, sigma, n) = (0.3, 0.5, 200_000i64);
        let sde = FnSde {
            drift: move |_t: f64, z: &Tensor| z * mu,
            diffusion: move |_t: f64, z: &Tensor| z * sigma,
        };
        let grid = uniform_grid(0.0, 1.0, 200);
        let path = solve(&sde, &Tensor::ones([n], D), &grid, Noise::Fresh).unwrap();
        let (m, v) = moments(path.last().unwrap());
        let want = mu.exp();
        assert!(
            (m - want).abs() < 5.0 * (v / n as f64).sqrt() + 0.005,
            "{m} vs {want}"
        );
    }

    #[test]
    fn given_noise_reproduces_a_hand_computed_path_and_none_is_euler() {
        // dZ = −Z dt + Z dW on [0, 0.5, 1.5] with ξ = (1, −2): two explicit steps.
        let sde = FnSde {
            drift: |_t: f64, z: &Tensor| -z,
            diffusion: |_t: f64, z: &Tensor| z.shallow_clone(),
        };
        let xi = [
            Tensor::from_slice(&[1.0f64]),
            Tensor::from_slice(&[-2.0f64]),
        ];
        let grid = [0.0, 0.5, 1.5];
        let path = solve(
            &sde,
            &Tensor::from_slice(&[1.0f64]),
            &grid,
            Noise::Given(&xi),
        )
        .unwrap();
        let z1 = 1.0 - 0.5 + 0.5f64.sqrt();
        let z2 = z1 - z1 * 1.0 + z1 * (-2.0);
        assert!((path[1].double_value(&[0]) - z1).abs() < 1e-12);
        assert!((path[2].double_value(&[0]) - z2).abs() < 1e-12);
        let ode = solve(&sde, &Tensor::from_slice(&[1.0f64]), &grid, Noise::None).unwrap();
        // Euler: 1 → 0.5 → 0.5 − 0.5·1 = 0.
        assert!(ode[2].double_value(&[0]).abs() < 1e-12);
        assert!(solve(
            &sde,
            &Tensor::from_slice(&[1.0f64]),
            &[0.0, 0.0],
            Noise::None
        )
        .is_err());
        assert_eq!(refine(&[0.0, 1.0, 3.0], 2), vec![0.0, 0.5, 1.0, 2.0, 3.0]);
    }
}
