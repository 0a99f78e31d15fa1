//! A Gaussian-process reward model over (context, arm) for contextual bandits whose arms are
//! bit vectors, with METALIC's product kernel (Li et al., ICML 2023, official code
//! `models/kernels.py` `KernelHybrid`, `models/gp.py` `GPR`):
//!
//!   k((s, a), (s', a')) = exp(−‖s − s'‖² / e^{θ_s}) · exp(e^{θ_a} · mean_j (1 − |a_j − a'_j|)),
//!
//! an RBF on the (standardised) context times a categorical kernel on the raw bits, plus a
//! jitter of 1e-5 on the diagonal. Observations y = f + ε, ε ~ N(0, 1/τ), zero prior mean, and a
//! Gamma(100, 1) prior on the precision τ (the official code adds its log density to the
//! marginal likelihood). Hyperparameters θ_s, θ_a, log τ are fitted from zero (the official
//! initial values) by minimising the negative log marginal likelihood minus the log prior;
//! the official code uses L-BFGS with an Adam fallback, here Adam (libtorch's C++ API through tch
//! has no L-BFGS). The posterior is the official one: mean k*ᵀC⁻¹y and the latent variance
//! k** + jitter − k*ᵀC⁻¹k* (no observation noise), C = K + (1/τ)I.

use crate::bayes::gp::Factor;
use crate::optim::{OptimConfig, OptimName, Optimizer};
use anyhow::{bail, Result};
use tch::{Kind, Tensor};

/// The kernel's diagonal jitter (official `jitter=1e-5`).
pub const JITTER: f64 = 1e-5;

/// Fitted hyperparameters (logs, as the official code parametrises them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hyper {
    /// θ_s: log of the RBF length-scale parameter (divides the squared distance).
    pub log_ls_context: f64,
    /// θ_a: log of the categorical kernel's scale.
    pub log_ls_bits: f64,
    /// log τ, the log noise precision.
    pub log_tau: f64,
}

impl Default for Hyper {
    /// The official initial values: every log parameter 0.
    fn default() -> Self {
        Hyper {
            log_ls_context: 0.0,
            log_ls_bits: 0.0,
            log_tau: 0.0,
        }
    }
}

/// The product kernel between rows of (contexts `s1` [n, dc], bits `a1` [n, d]) and
/// (`s2` [m, dc], `a2` [m, d]) for hyperparameter tensors (differentiable in them): [n, m].
pub fn kernel(
    s1: &Tensor,
    a1: &Tensor,
    s2: &Tensor,
    a2: &Tensor,
    log_ls_context: &Tensor,
    log_ls_bits: &Tensor,
) -> Tensor {
    let d2 = (s1.unsqueeze(1) - s2.unsqueeze(0))
        .square()
        .sum_dim_intlist([-1i64].as_slice(), false, Kind::Double);
    let rbf = (-d2 / log_ls_context.exp()).exp();
    let diff: Tensor = (a1.unsqueeze(1) - a2.unsqueeze(0)).abs();
    let same = (-diff + 1.0).mean_dim([-1i64].as_slice(), false, Kind::Double);
    let cat = (same * log_ls_bits.exp()).exp();
    rbf * cat
}

/// Training data of the reward model: contexts [n, dc], bits [n, d], rewards [n], all double.
pub struct Data<'a> {
    pub s: &'a Tensor,
    pub a: &'a Tensor,
    pub y: &'a Tensor,
}

fn scalar(v: f64, like: &Tensor) -> Tensor {
    Tensor::from(v)
        .to_kind(Kind::Double)
        .to_device(like.device())
}

/// log Gamma(τ; shape 100, rate 1).
fn gamma_log_prob(tau: &Tensor) -> Tensor {
    let (k, rate) = (100.0f64, 1.0f64);
    tau.log() * (k - 1.0) - tau * rate + k * rate.ln() - crate::stats::ln_gamma(k)
}

/// The official objective: −(log N(y; 0, K + jitter·I + I/τ) + log Gamma(τ; 100, 1)).
pub fn objective(d: &Data<'_>, theta: &Tensor) -> Result<Tensor> {
    let (ls, lb, lt) = (theta.get(0), theta.get(1), theta.get(2));
    let n = d.y.size()[0];
    let eye = Tensor::eye(n, (Kind::Double, d.y.device()));
    let c = kernel(d.s, d.a, d.s, d.a, &ls, &lb) + &eye * JITTER + &eye / lt.exp();
    let f = Factor::new(&c, d.y, "the bandit GP's kernel matrix")?;
    Ok(-(f.gaussian_lml() + gamma_log_prob(&lt.exp())))
}

/// How `fit` runs Adam.
#[derive(Debug, Clone, Copy)]
pub struct FitOptions {
    pub steps: usize,
    pub lr: f64,
}

/// Fits the hyperparameters from `init` by Adam on `objective`.
pub fn fit(d: &Data<'_>, init: Hyper, o: FitOptions) -> Result<Hyper> {
    let theta = Tensor::from_slice(&[init.log_ls_context, init.log_ls_bits, init.log_tau])
        .to_device(d.y.device())
        .set_requires_grad(true);
    let cfg = OptimConfig {
        name: OptimName::Adam,
        lr: o.lr,
        ..Default::default()
    };
    let mut opt = Optimizer::new(vec![("theta".into(), theta.shallow_clone())], &cfg)?;
    for step in 1..=o.steps {
        opt.zero_grad();
        let loss = objective(d, &theta)?;
        loss.backward();
        opt.step();
        if step == o.steps || step % 50 == 0 {
            let v = loss.double_value(&[]);
            if !v.is_finite() {
                bail!("the bandit GP's marginal likelihood is {v} at step {step}: lower gp.lr");
            }
        }
    }
    let v = Vec::<f64>::try_from(theta.detach().to_device(tch::Device::Cpu))?;
    Ok(Hyper {
        log_ls_context: v[0],
        log_ls_bits: v[1],
        log_tau: v[2],
    })
}

/// Posterior mean and standard deviation of the latent reward at test rows (`s` [m, dc],
/// `a` [m, d]): ([m], [m]).
pub fn posterior(d: &Data<'_>, h: &Hyper, s: &Tensor, a: &Tensor) -> Result<(Tensor, Tensor)> {
    let (ls, lb) = (scalar(h.log_ls_context, d.y), scalar(h.log_ls_bits, d.y));
    let n = d.y.size()[0];
    let eye = Tensor::eye(n, (Kind::Double, d.y.device()));
    let c = kernel(d.s, d.a, d.s, d.a, &ls, &lb) + &eye * (JITTER + (-h.log_tau).exp());
    let f = Factor::new(&c, d.y, "the bandit GP's kernel matrix")?;
    let cross = kernel(d.s, d.a, s, a, &ls, &lb);
    // k** = rbf(0)·exp(e^{θ_a}·1) = exp(e^{θ_a}) for every test row, plus the jitter.
    let m = s.size()[0];
    let prior = Tensor::full(
        [m],
        h.log_ls_bits.exp().exp() + JITTER,
        (Kind::Double, d.y.device()),
    );
    let (mean, var) = f.predict(&cross, &prior);
    Ok((mean, var.sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    const D: (Kind, Device) = (Kind::Double, Device::Cpu);

    fn data() -> (Tensor, Tensor, Tensor) {
        let s = Tensor::from_slice(&[-1.2, 0.3, 0.3, 1.5, -0.4]).view([5, 1]);
        let a = Tensor::from_slice(&[1.0, 0., 1., 0., 0., 1., 1., 1., 0., 0., 0., 1., 0., 1., 1.])
            .view([5, 3]);
        let y = Tensor::from_slice(&[1.2, 2.3, 0.7, 1.9, 2.8]);
        (s, a, y)
    }

    /// The kernel entry by entry from its formula.
    #[test]
    fn kernel_matches_its_formula() {
        let (s, a, _) = data();
        let (ls, lb) = (0.4f64, -0.3f64);
        let k = kernel(&s, &a, &s, &a, &scalar(ls, &s), &scalar(lb, &s));
        for i in 0..5 {
            for j in 0..5 {
                let ds = s.double_value(&[i, 0]) - s.double_value(&[j, 0]);
                let mut same = 0.0;
                for b in 0..3 {
                    same += 1.0 - (a.double_value(&[i, b]) - a.double_value(&[j, b])).abs();
                }
                let want = (-ds * ds / ls.exp()).exp() * (lb.exp() * same / 3.0).exp();
                let got = k.double_value(&[i, j]);
                assert!((got - want).abs() < 1e-12, "{i},{j}: {got} vs {want}");
            }
        }
    }

    /// Posterior mean, latent variance and the objective against dense inverses.
    #[test]
    fn posterior_and_objective_match_dense_computations() {
        let (s, a, y) = data();
        let h = Hyper {
            log_ls_context: 0.2,
            log_ls_bits: 0.5,
            log_tau: 1.5,
        };
        let d = Data {
            s: &s,
            a: &a,
            y: &y,
        };
        let st = Tensor::from_slice(&[0.0, 0.0, 2.0]).view([3, 1]);
        let at = Tensor::from_slice(&[1.0, 1., 0., 0., 0., 0., 1., 0., 1.]).view([3, 3]);
        let (mean, std) = posterior(&d, &h, &st, &at).unwrap();
        let (ls, lb) = (scalar(h.log_ls_context, &y), scalar(h.log_ls_bits, &y));
        let c =
            kernel(&s, &a, &s, &a, &ls, &lb) + Tensor::eye(5, D) * (JITTER + (-h.log_tau).exp());
        let inv = c.inverse();
        let kx = kernel(&s, &a, &st, &at, &ls, &lb);
        let kss = kernel(&st, &at, &st, &at, &ls, &lb) + Tensor::eye(3, D) * JITTER;
        let want_mean = kx.tr().matmul(&inv).matmul(&y);
        let want_var = (kss - kx.tr().matmul(&inv).matmul(&kx)).diagonal(0, 0, 1);
        assert!((&mean - &want_mean).abs().max().double_value(&[]) < 1e-10);
        assert!(
            (std.square() - &want_var).abs().max().double_value(&[]) < 1e-10,
            "{std:?} vs {want_var:?}"
        );
        // Objective: dense Gaussian log density plus the Gamma(100, 1) log prior of τ.
        let theta = Tensor::from_slice(&[h.log_ls_context, h.log_ls_bits, h.log_tau]);
        let got = objective(&d, &theta).unwrap().double_value(&[]);
        let (_, logdet) = c.slogdet();
        let lml = -0.5
            * (y.dot(&inv.matmul(&y)).double_value(&[])
                + logdet.double_value(&[])
                + 5.0 * (2.0 * std::f64::consts::PI).ln());
        let tau = h.log_tau.exp();
        let prior = 99.0 * tau.ln() - tau - crate::stats::ln_gamma(100.0);
        assert!(
            (got + lml + prior).abs() < 1e-9,
            "{got} vs {}",
            -(lml + prior)
        );
    }

    /// Fitting lowers the objective and the posterior then ranks arms as the data do.
    #[test]
    fn fit_lowers_the_objective_and_learns_the_better_arm() {
        // Two arms (bits 0 and 1), reward 1 + s for arm 1 and 0 for arm 0, at 8 contexts.
        let s = Tensor::linspace(-1.5, 1.5, 8, D)
            .view([8, 1])
            .repeat([2, 1]);
        let a = Tensor::cat(&[Tensor::zeros([8, 1], D), Tensor::ones([8, 1], D)], 0);
        let y = Tensor::cat(
            &[Tensor::zeros([8], D), s.narrow(0, 0, 8).view([8]) + 1.0],
            0,
        );
        let d = Data {
            s: &s,
            a: &a,
            y: &y,
        };
        let before = objective(&d, &Tensor::from_slice(&[0.0, 0.0, 0.0]))
            .unwrap()
            .double_value(&[]);
        let h = fit(
            &d,
            Hyper::default(),
            FitOptions {
                steps: 300,
                lr: 0.05,
            },
        )
        .unwrap();
        let theta = Tensor::from_slice(&[h.log_ls_context, h.log_ls_bits, h.log_tau]);
        let after = objective(&d, &theta).unwrap().double_value(&[]);
        assert!(after < before, "{after} vs {before}");
        // Arms 0 and 1 at s = 0.5 (between data), then arm 0 far from the data (s = 6).
        let st = Tensor::from_slice(&[0.5, 0.5, 6.0]).view([3, 1]);
        let at = Tensor::from_slice(&[0.0, 1.0, 0.0]).view([3, 1]);
        let (mean, std) = posterior(&d, &h, &st, &at).unwrap();
        assert!((mean.double_value(&[1]) - 1.5).abs() < 0.25, "{mean:?}");
        assert!(mean.double_value(&[0]).abs() < 0.25, "{mean:?}");
        assert!(std.double_value(&[0]) < std.double_value(&[2]), "{std:?}");
    }
}
