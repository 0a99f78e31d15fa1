//! Forward SDEs with closed-form marginals (Song et al. 2021, "Score-based generative modelling
//! through stochastic differential equations", and the OU-VE SDE of StoRM / SGMSE+).
//!
//! With T = 1, β(t) = β_min + t(β_max − β_min) and B(t) = ∫₀ᵗ β = β_min t + ½t²(β_max − β_min):
//! - VP:     dx = −½β(t)x dt + √β(t) dw;  x_t | x₀ ~ N(e^{−B/2}x₀, (1 − e^{−B}) I).
//! - sub-VP: dx = −½β(t)x dt + √(β(t)(1 − e^{−2B(t)})) dw;  mean as VP, std 1 − e^{−B}
//!   (the standard deviation itself, not a variance).
//! - VE:     σ(t) = σ_min(σ_max/σ_min)^t, dx = σ(t)√(2 ln(σ_max/σ_min)) dw;
//!   x_t | x₀ ~ N(x₀, σ(t)² I) (the official code drops the σ(0)² term, as here); prior
//!   N(0, σ_max² I).
//! - OU-VE (StoRM): dx = γ(ȳ − x)dt + g(t)dw with g as VE's; mean e^{−γt}x₀ + (1 − e^{−γt})ȳ,
//!   variance σ_min²[(σ_max/σ_min)^{2t} − e^{−2γt}]·L/(γ + L), L = ln(σ_max/σ_min).
//!
//! Constants from the official code (yang-song/score_sde_pytorch `configs/default_*`, sp-uhh/storm
//! `sgmse/sdes.py`): β 0.1–20, σ 0.01–50, training eps 1e-5, sampling eps 1e-3 (VP, sub-VP) or
//! 1e-5 (VE); OU-VE γ = 1.5, σ 0.05–0.5.
//!
//! Every function takes the state x as [B, …] and the time as a [B] tensor (one time per row),
//! and runs on whatever device and float kind x has.

use serde::{Deserialize, Serialize};
use tch::Tensor;

/// The three SDEs of the paper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SdeKind {
    Vp,
    SubVp,
    Ve,
}

impl SdeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SdeKind::Vp => "vp",
            SdeKind::SubVp => "sub-vp",
            SdeKind::Ve => "ve",
        }
    }
}

/// What every forward SDE gives the samplers and the probability-flow ODE.
pub trait ForwardSde {
    /// Drift f(x, t) [B, …] and diffusion g(t) [B].
    fn drift_diffusion(&self, x: &Tensor, t: &Tensor) -> (Tensor, Tensor);
    /// The mean of x_t given x₀ (and the target, for OU-VE), shaped like x₀.
    fn marginal_mean(&self, x0: &Tensor, t: &Tensor) -> Tensor;
    /// The std of x_t given x₀ (and the target, for OU-VE), [B].
    fn marginal_std(&self, t: &Tensor) -> Tensor;
    /// Mean [B, …] and std [B] of x_t given x₀: the perturbation kernel of DSM.
    fn marginal(&self, x0: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
        (self.marginal_mean(x0, t), self.marginal_std(t))
    }
    /// A draw from the prior at T with x's shape.
    fn prior_sample(&self, like: &Tensor) -> Tensor;
    /// The discretised reverse-diffusion pieces (f_i, G_i) for an N-step grid: x_{i+1} =
    /// x_i + f_i + G_i z forwards. The default is Euler's, f·Δt and g√Δt with Δt = 1/N.
    fn discretize(&self, x: &Tensor, t: &Tensor, n: usize) -> (Tensor, Tensor) {
        let (f, g) = self.drift_diffusion(x, t);
        let dt = 1.0 / n as f64;
        (f * dt, g * dt.sqrt())
    }
    /// α of the annealed-Langevin corrector at t on an N-step grid (1 unless the SDE says).
    fn langevin_alpha(&self, t: &Tensor, _n: usize) -> Tensor {
        t.ones_like()
    }
}

/// Time horizon of every SDE here.
pub const T_END: f64 = 1.0;
/// The training time cut-off t ~ U[eps, T] of the official losses.
pub const TRAIN_EPS: f64 = 1e-5;

/// Reshapes a per-row [B] tensor to broadcast over x [B, …].
pub fn per_row(v: &Tensor, x: &Tensor) -> Tensor {
    let mut shape = vec![1i64; x.dim().max(1)];
    shape[0] = -1;
    v.reshape(shape.as_slice())
}

/// VP, sub-VP or VE with the paper's constants by default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sde {
    pub kind: SdeKind,
    pub beta_min: f64,
    pub beta_max: f64,
    pub sigma_min: f64,
    pub sigma_max: f64,
}

impl Sde {
    /// The official code's constants: β 0.1–20, σ 0.01–50.
    pub fn paper(kind: SdeKind) -> Sde {
        Sde {
            kind,
            beta_min: 0.1,
            beta_max: 20.0,
            sigma_min: 0.01,
            sigma_max: 50.0,
        }
    }

    /// The sampling cut-off of the official code: 1e-3 for VP and sub-VP, 1e-5 for VE.
    pub fn sample_eps(&self) -> f64 {
        match self.kind {
            SdeKind::Ve => 1e-5,
            _ => 1e-3,
        }
    }

    /// B(t) = ∫₀ᵗ β(s) ds.
    pub fn int_beta(&self, t: &Tensor) -> Tensor {
        t * self.beta_min + t.square() * (0.5 * (self.beta_max - self.beta_min))
    }

    pub fn beta(&self, t: &Tensor) -> Tensor {
        t * (self.beta_max - self.beta_min) + self.beta_min
    }

    /// VE's σ(t) = σ_min(σ_max/σ_min)^t.
    pub fn sigma(&self, t: &Tensor) -> Tensor {
        (t * (self.sigma_max / self.sigma_min).ln()).exp() * self.sigma_min
    }

    /// The mean's factor on x₀, [B].
    pub fn mean_coef(&self, t: &Tensor) -> Tensor {
        match self.kind {
            SdeKind::Vp | SdeKind::SubVp => (self.int_beta(t) * -0.5).exp(),
            SdeKind::Ve => t.ones_like(),
        }
    }

    /// The prior's std (VP, sub-VP: 1; VE: σ_max).
    pub fn prior_std(&self) -> f64 {
        match self.kind {
            SdeKind::Ve => self.sigma_max,
            _ => 1.0,
        }
    }

    /// log N(z; 0, prior_std² I) per row, [B].
    pub fn prior_logp(&self, z: &Tensor) -> Tensor {
        let b = z.size()[0];
        let flat = z.reshape([b, -1]);
        let d = flat.size()[1] as f64;
        let s2 = self.prior_std().powi(2);
        flat.square().sum_dim_intlist(1, false, z.kind()) * (-0.5 / s2)
            - 0.5 * d * (2.0 * std::f64::consts::PI * s2).ln()
    }

    /// Index i = ⌊t(N − 1)/T⌋ of the official discretisation, as floats [B].
    fn step_index(t: &Tensor, n: usize) -> Tensor {
        (t * ((n - 1) as f64 / T_END)).floor()
    }

    /// VP's discrete β_i = linspace(β_min/N, β_max/N, N)[i], [B].
    fn discrete_beta(&self, t: &Tensor, n: usize) -> Tensor {
        let i = Self::step_index(t, n);
        (i * ((self.beta_max - self.beta_min) / (n - 1) as f64) + self.beta_min) / n as f64
    }

    /// VE's discrete σ_i = exp(linspace(ln σ_min, ln σ_max, N))[i], [B].
    fn discrete_sigma(&self, i: &Tensor, n: usize) -> Tensor {
        let (lo, hi) = (self.sigma_min.ln(), self.sigma_max.ln());
        (i * ((hi - lo) / (n - 1) as f64) + lo).exp()
    }
}

impl ForwardSde for Sde {
    fn marginal_mean(&self, x0: &Tensor, t: &Tensor) -> Tensor {
        x0 * per_row(&self.mean_coef(t), x0)
    }

    fn drift_diffusion(&self, x: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
        match self.kind {
            SdeKind::Vp => {
                let b = self.beta(t);
                (x * per_row(&(&b * -0.5), x), b.sqrt())
            }
            SdeKind::SubVp => {
                let b = self.beta(t);
                let disc = -(self.int_beta(t) * -2.0).exp() + 1.0;
                (x * per_row(&(&b * -0.5), x), (b * disc).sqrt())
            }
            SdeKind::Ve => {
                let g = self.sigma(t) * (2.0 * (self.sigma_max / self.sigma_min).ln()).sqrt();
                (x.zeros_like(), g)
            }
        }
    }

    fn marginal_std(&self, t: &Tensor) -> Tensor {
        match self.kind {
            SdeKind::Vp => (-(self.int_beta(t) * -1.0).exp() + 1.0).sqrt(),
            SdeKind::SubVp => -(self.int_beta(t) * -1.0).exp() + 1.0,
            SdeKind::Ve => self.sigma(t),
        }
    }

    fn prior_sample(&self, like: &Tensor) -> Tensor {
        like.randn_like() * self.prior_std()
    }

    /// VP: f_i = (√(1 − β_i) − 1)x, G_i = √β_i; VE: f_i = 0, G_i = √(σ_i² − σ_{i−1}²) with
    /// σ_{−1} = 0; sub-VP: Euler's (as the official code).
    fn discretize(&self, x: &Tensor, t: &Tensor, n: usize) -> (Tensor, Tensor) {
        match self.kind {
            SdeKind::Vp => {
                let b = self.discrete_beta(t, n);
                let f = x * per_row(&((-&b + 1.0).sqrt() - 1.0), x);
                (f, b.sqrt())
            }
            SdeKind::Ve => {
                let i = Self::step_index(t, n);
                let s = self.discrete_sigma(&i, n);
                let prev = self
                    .discrete_sigma(&(&i - 1.0), n)
                    .where_self(&i.gt(0.0), &i.zeros_like());
                (x.zeros_like(), (s.square() - prev.square()).sqrt())
            }
            SdeKind::SubVp => {
                let (f, g) = self.drift_diffusion(x, t);
                let dt = 1.0 / n as f64;
                (f * dt, g * dt.sqrt())
            }
        }
    }

    /// VP: α_i = 1 − β_i (the code's, not the cumulative ᾱ the paper writes; score_sde_pytorch
    /// #73); 1 otherwise.
    fn langevin_alpha(&self, t: &Tensor, n: usize) -> Tensor {
        match self.kind {
            SdeKind::Vp => -self.discrete_beta(t, n) + 1.0,
            _ => t.ones_like(),
        }
    }
}

/// StoRM's Ornstein–Uhlenbeck variance-exploding SDE, pulling the mean towards a target ȳ
/// (shaped like x).
pub struct OuVe {
    pub gamma: f64,
    pub sigma_min: f64,
    pub sigma_max: f64,
    pub target: Tensor,
}

impl OuVe {
    /// StoRM's defaults: γ = 1.5, σ 0.05–0.5.
    pub fn storm(target: Tensor) -> OuVe {
        OuVe {
            gamma: 1.5,
            sigma_min: 0.05,
            sigma_max: 0.5,
            target,
        }
    }

    fn log_ratio(&self) -> f64 {
        (self.sigma_max / self.sigma_min).ln()
    }
}

impl ForwardSde for OuVe {
    /// e^{−γt}x₀ + (1 − e^{−γt})ȳ.
    fn marginal_mean(&self, x0: &Tensor, t: &Tensor) -> Tensor {
        let decay = per_row(&(t * -self.gamma).exp(), x0);
        x0 * &decay + &self.target * (-&decay + 1.0)
    }

    fn drift_diffusion(&self, x: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
        let l = self.log_ratio();
        let g = (t * l).exp() * (self.sigma_min * (2.0 * l).sqrt());
        ((&self.target - x) * self.gamma, g)
    }

    fn marginal_std(&self, t: &Tensor) -> Tensor {
        let l = self.log_ratio();
        let grow = (t * (2.0 * l)).exp();
        let shrink = (t * (-2.0 * self.gamma)).exp();
        ((grow - shrink) * (self.sigma_min.powi(2) * l / (self.gamma + l))).sqrt()
    }

    /// ȳ + std(T)·z, as sgmse's prior_sampling.
    fn prior_sample(&self, like: &Tensor) -> Tensor {
        let b = like.size()[0];
        let t = Tensor::full([b], T_END, (like.kind(), like.device()));
        &self.target + like.randn_like() * per_row(&self.marginal_std(&t), like)
    }
}

/// A time column [B] filled with t on x's device and kind.
pub fn time_like(x: &Tensor, t: f64) -> Tensor {
    Tensor::full([x.size()[0]], t, (x.kind(), x.device()))
}

/// Simulates the forward SDE from x₀ with `steps` Euler–Maruyama steps over [0, t_end] (for
/// checking marginals; the neural-SDE solver lives in `em`).
pub fn simulate_forward(sde: &dyn ForwardSde, x0: &Tensor, t_end: f64, steps: usize) -> Tensor {
    let dt = t_end / steps as f64;
    let mut x = x0.shallow_clone();
    for k in 0..steps {
        let t = time_like(&x, k as f64 * dt);
        let (f, g) = sde.drift_diffusion(&x, &t);
        x = &x + f * dt + x.randn_like() * per_row(&g, &x) * dt.sqrt();
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    const D: (Kind, Device) = (Kind::Double, Device::Cpu);

    /// Mean and std over rows of column 0 of a sample.
    fn moments(x: &Tensor) -> (f64, f64) {
        let c = x.select(1, 0);
        (
            c.mean(Kind::Double).double_value(&[]),
            c.std(true).double_value(&[]),
        )
    }

    #[test]
    fn vp_sub_vp_ve_and_ou_ve_marginals_match_simulation() {
        let _rng = crate::rng::serial();
        tch::manual_seed(11);
        let n = 20_000;
        let x0 = Tensor::full([n, 2], 1.5, D);
        for (kind, t) in [
            (SdeKind::Vp, 0.3),
            (SdeKind::SubVp, 0.3),
            // VE's closed form keeps σ(0)² = 1e-4 that the simulation from x₀ lacks: negligible.
            (SdeKind::Ve, 0.6),
        ] {
            let sde = Sde::paper(kind);
            let sim = simulate_forward(&sde, &x0, t, 4000);
            let (mean, std) = sde.marginal(&x0, &time_like(&x0, t));
            let (m, s) = (mean.double_value(&[0, 0]), std.double_value(&[0]));
            let (sm, ss) = moments(&sim);
            // Monte Carlo error of the mean is s/√n; a 4000-step Euler bias is far smaller.
            assert!(
                (sm - m).abs() < 4.0 * s / (n as f64).sqrt() + 2e-3,
                "{kind:?}: mean {sm} vs {m}"
            );
            assert!((ss - s).abs() < 0.02 * s, "{kind:?}: std {ss} vs {s}");
        }
        let target = Tensor::full([n, 2], -2.0, D);
        let ou = OuVe::storm(target);
        let sim = simulate_forward(&ou, &x0, 0.8, 4000);
        let (mean, std) = ou.marginal(&x0, &time_like(&x0, 0.8));
        let (sm, ss) = moments(&sim);
        let (m, s) = (mean.double_value(&[0, 0]), std.double_value(&[0]));
        // The closed form starts at variance 0 at t = 0 exactly like the simulation.
        assert!(
            (sm - m).abs() < 4.0 * s / (n as f64).sqrt() + 2e-3,
            "ou-ve mean {sm} vs {m}"
        );
        assert!((ss - s).abs() < 0.02 * s, "ou-ve std {ss} vs {s}");
        // Pulled towards the target: e^{−1.2}·1.5 + (1 − e^{−1.2})(−2).
        let want = (-1.2f64).exp() * 1.5 - 2.0 * (1.0 - (-1.2f64).exp());
        assert!((m - want).abs() < 1e-12);
    }

    #[test]
    fn closed_forms_at_the_ends_and_the_discretisation() {
        let sde = Sde::paper(SdeKind::Vp);
        let one = Tensor::ones([1], D);
        // B(1) = 0.1 + 0.5·19.9 = 10.05.
        assert!((sde.int_beta(&one).double_value(&[0]) - 10.05).abs() < 1e-12);
        let s = sde.marginal_std(&one).double_value(&[0]);
        assert!((s - (1.0 - (-10.05f64).exp()).sqrt()).abs() < 1e-12);
        let ve = Sde::paper(SdeKind::Ve);
        assert!((ve.marginal_std(&one).double_value(&[0]) - 50.0).abs() < 1e-9);
        // VE discretisation: G_i² = σ_i² − σ_{i−1}², with G_0 = σ_min.
        let n = 10;
        let t0 = Tensor::zeros([1], D);
        let x = Tensor::zeros([1, 2], D);
        assert!((ve.discretize(&x, &t0, n).1.double_value(&[0]) - 0.01).abs() < 1e-12);
        let (_, g) = ve.discretize(&x, &one, n);
        let r: f64 = 5000f64.powf(1.0 / 9.0);
        let want = (50f64.powi(2) - (50.0 / r).powi(2)).sqrt();
        assert!((g.double_value(&[0]) - want).abs() < 1e-9);
        // VP: β_{N−1} = β_max/N at t = 1 (0.2 for N = 100), f = (√(1 − β) − 1)x, α = 1 − β.
        let (f, g) = sde.discretize(&Tensor::ones([1, 1], D), &one, 100);
        assert!((g.double_value(&[0]).powi(2) - 0.2).abs() < 1e-12);
        assert!((f.double_value(&[0, 0]) - (0.8f64.sqrt() - 1.0)).abs() < 1e-12);
        assert!((sde.langevin_alpha(&one, 100).double_value(&[0]) - 0.8).abs() < 1e-12);
        // β_0 = β_min/N at t = 0.
        let (_, g0) = sde.discretize(&Tensor::ones([1, 1], D), &t0, 100);
        assert!((g0.double_value(&[0]).powi(2) - 0.001).abs() < 1e-12);
        // Prior log-density of the origin in 2-D: −ln(2π σ²).
        let z = Tensor::zeros([1, 2], D);
        let lp = ve.prior_logp(&z).double_value(&[0]);
        assert!((lp + (2.0 * std::f64::consts::PI * 2500.0).ln()).abs() < 1e-9);
    }
}
