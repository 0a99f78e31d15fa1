//! Reverse-time samplers of Song et al. 2021 (official code `sampling.py`), for any forward SDE
//! and any score function s(x, t) ≈ ∇ₓ log p_t(x).
//!
//! - Euler–Maruyama predictor: Δt = −1/N, x̄ = x − [f − g²s]Δt, x = x̄ + g√|Δt| z.
//! - Reverse-diffusion predictor, on the SDE's own discretisation (f_i, G_i):
//!   x̄ = x − f_i + G_i² s, x = x̄ + G_i z.
//! - Annealed-Langevin corrector (Song's): ε = 2α(snr·‖z‖/‖s‖)² with both norms averaged over
//!   the batch, x̄ = x + εs, x = x̄ + √(2ε) z; α = 1 − β_i for VP, 1 otherwise.
//! - SGMSE's annealed-Langevin corrector (StoRM): ε = 2(snr·σ_t)² with σ_t the marginal std.
//! - Predictor–corrector in the code's order: on the grid t_i = linspace(T, eps, N), the
//!   corrector runs first at each t_i, then the predictor; the result is the last x̄ (the
//!   final denoising step).
//!
//! Score evaluations (NFE) per sample: N·(1 + corrector steps) for PC.

use super::forward::{per_row, time_like, ForwardSde, T_END};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// A score function s(x, t): x [B, …], t [B] → [B, …].
pub type ScoreFn<'a> = dyn Fn(&Tensor, &Tensor) -> Tensor + 'a;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Predictor {
    EulerMaruyama,
    ReverseDiffusion,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Corrector {
    /// Song's Langevin corrector with this signal-to-noise ratio.
    Langevin {
        snr: f64,
    },
    /// SGMSE's annealed Langevin dynamics: step 2(snr·σ_t)².
    AnnealedLangevin {
        snr: f64,
    },
    None,
}

/// A reverse-time sampler: predictor, corrector (with `corrector_steps` per time), N steps and
/// the last time eps of the grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    pub predictor: Predictor,
    pub corrector: Corrector,
    pub corrector_steps: usize,
    pub steps: usize,
    pub eps: f64,
}

impl Sampler {
    /// Score evaluations per sample.
    pub fn nfe(&self) -> usize {
        let p = usize::from(self.predictor != Predictor::None);
        let c = if self.corrector == Corrector::None {
            0
        } else {
            self.corrector_steps
        };
        self.steps * (p + c)
    }

    /// Runs the sampler from x_T (a prior draw) and returns the final x̄.
    pub fn run(&self, sde: &dyn ForwardSde, score: &ScoreFn<'_>, x_t: &Tensor) -> Tensor {
        assert!(self.steps >= 2, "a sampler needs at least 2 steps");
        let n = self.steps;
        let mut x = x_t.shallow_clone();
        let mut x_mean = x.shallow_clone();
        for i in 0..n {
            // linspace(T, eps, N)[i], computed as torch does in double then rounded to x's kind.
            let ti = T_END + (self.eps - T_END) * i as f64 / (n - 1) as f64;
            let t = time_like(&x, ti);
            if self.corrector != Corrector::None {
                for _ in 0..self.corrector_steps {
                    (x, x_mean) = corrector_step(self.corrector, sde, score, &x, &t, n);
                }
            }
            match self.predictor {
                Predictor::EulerMaruyama => {
                    (x, x_mean) = em_step(sde, score, &x, &t, n);
                }
                Predictor::ReverseDiffusion => {
                    (x, x_mean) = reverse_diffusion_step(sde, score, &x, &t, n);
                }
                Predictor::None => {}
            }
        }
        x_mean
    }
}

/// One Euler–Maruyama step of the reverse SDE dx = [f − g²s]dt + g dw̄ with Δt = −1/N:
/// (x, x̄).
pub fn em_step(
    sde: &dyn ForwardSde,
    score: &ScoreFn<'_>,
    x: &Tensor,
    t: &Tensor,
    n: usize,
) -> (Tensor, Tensor) {
    let dt = -1.0 / n as f64;
    let (f, g) = sde.drift_diffusion(x, t);
    let g = per_row(&g, x);
    let drift = f - g.square() * score(x, t);
    let x_mean = x + drift * dt;
    let x = &x_mean + g * (-dt).sqrt() * x.randn_like();
    (x, x_mean)
}

/// One reverse-diffusion step on the SDE's discretisation: (x, x̄).
pub fn reverse_diffusion_step(
    sde: &dyn ForwardSde,
    score: &ScoreFn<'_>,
    x: &Tensor,
    t: &Tensor,
    n: usize,
) -> (Tensor, Tensor) {
    let (f, g) = sde.discretize(x, t, n);
    let g = per_row(&g, x);
    let rev_f = f - g.square() * score(x, t);
    let x_mean = x - rev_f;
    let x = &x_mean + g * x.randn_like();
    (x, x_mean)
}

/// One corrector step at time t: (x, x̄).
pub fn corrector_step(
    corrector: Corrector,
    sde: &dyn ForwardSde,
    score: &ScoreFn<'_>,
    x: &Tensor,
    t: &Tensor,
    n: usize,
) -> (Tensor, Tensor) {
    let grad = score(x, t);
    let noise = x.randn_like();
    let step = match corrector {
        Corrector::Langevin { snr } => {
            let b = x.size()[0];
            let norm = |v: &Tensor| {
                v.reshape([b, -1])
                    .norm_scalaropt_dim(2, [-1i64].as_slice(), false)
                    .mean(x.kind())
            };
            let ratio = norm(&noise) / norm(&grad) * snr;
            per_row(&(ratio.square() * 2.0 * sde.langevin_alpha(t, n)), x)
        }
        Corrector::AnnealedLangevin { snr } => {
            per_row(&((sde.marginal_std(t) * snr).square() * 2.0), x)
        }
        Corrector::None => return (x.shallow_clone(), x.shallow_clone()),
    };
    let x_mean = x + &step * grad;
    let x = &x_mean + (step * 2.0).sqrt() * noise;
    (x, x_mean)
}

/// Mean and per-dimension std of a sample [B, D] as host vectors (for checks and logs).
pub fn sample_moments(x: &Tensor) -> (Vec<f64>, Vec<f64>) {
    let x = x.to_kind(Kind::Double);
    let m = x.mean_dim([0i64].as_slice(), false, Kind::Double);
    let s = x.std_dim(0, true, false);
    (
        Vec::<f64>::try_from(m).unwrap_or_default(),
        Vec::<f64>::try_from(s).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::super::forward::{Sde, SdeKind};
    use super::*;
    use tch::Device;

    const D: (Kind, Device) = (Kind::Double, Device::Cpu);

    /// The exact score of data N(μ, s²I) diffused by a VP/sub-VP/VE SDE:
    /// x_t ~ N(m_t μ, (m_t² s² + σ_t²) I).
    pub fn gaussian_score(sde: Sde, mu: f64, s: f64) -> impl Fn(&Tensor, &Tensor) -> Tensor {
        move |x: &Tensor, t: &Tensor| {
            let m = sde.mean_coef(t);
            let var = m.square() * (s * s) + sde.marginal_std(t).square();
            -(x - per_row(&(m * mu), x)) / per_row(&var, x)
        }
    }

    #[test]
    fn reverse_samplers_with_the_exact_score_recover_the_gaussian() {
        let _rng = crate::rng::serial();
        tch::manual_seed(5);
        let (mu, s) = (2.0, 0.5);
        let n = 20_000;
        for kind in [SdeKind::Vp, SdeKind::SubVp, SdeKind::Ve] {
            let sde = Sde::paper(kind);
            let score = gaussian_score(sde, mu, s);
            for (predictor, corrector) in [
                (Predictor::EulerMaruyama, Corrector::None),
                (
                    Predictor::ReverseDiffusion,
                    Corrector::Langevin { snr: 0.16 },
                ),
            ] {
                let sampler = Sampler {
                    predictor,
                    corrector,
                    corrector_steps: 1,
                    steps: 500,
                    eps: sde.sample_eps(),
                };
                let x_t = sde.prior_sample(&Tensor::zeros([n, 2], D));
                let x = sampler.run(&sde, &score, &x_t);
                let (m, sd) = sample_moments(&x);
                for d in 0..2 {
                    assert!(
                        (m[d] - mu).abs() < 0.03,
                        "{kind:?} {predictor:?}: mean {m:?}"
                    );
                    assert!(
                        (sd[d] - s).abs() < 0.03 * s,
                        "{kind:?} {predictor:?}: std {sd:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn nfe_counts_predictor_and_corrector_evaluations() {
        let mut s = Sampler {
            predictor: Predictor::ReverseDiffusion,
            corrector: Corrector::Langevin { snr: 0.16 },
            corrector_steps: 1,
            steps: 250,
            eps: 1e-3,
        };
        assert_eq!(s.nfe(), 500);
        s.corrector = Corrector::None;
        assert_eq!(s.nfe(), 250);
    }

    #[test]
    fn sampling_with_a_wrong_score_misses_the_gaussian() {
        // The recovery test above can fail: a score for s = 1 gives std ≈ 1, not 0.5.
        let _rng = crate::rng::serial();
        tch::manual_seed(6);
        let sde = Sde::paper(SdeKind::Vp);
        let score = gaussian_score(sde, 2.0, 1.0);
        let sampler = Sampler {
            predictor: Predictor::EulerMaruyama,
            corrector: Corrector::None,
            corrector_steps: 0,
            steps: 200,
            eps: 1e-3,
        };
        let x = sampler.run(
            &sde,
            &score,
            &sde.prior_sample(&Tensor::zeros([5000, 1], D)),
        );
        let (_, sd) = sample_moments(&x);
        assert!((sd[0] - 1.0).abs() < 0.05, "{sd:?}");
    }
}
