//! Score models and their training loss (Song et al. 2021, official `losses.py`,
//! `models/layerspp.py`).
//!
//! - Gaussian Fourier time features: with W ~ N(0, scale²) fixed at initialisation,
//!   e(c) = [sin(2πcW), cos(2πcW)].
//! - Denoising score matching: t ~ U[eps, T], z ~ N(0, I), x_t = mean(x₀, t) + σ_t z;
//!   - λ(t) = σ_t² (the default, likelihood_weighting=False): ‖s(x_t, t)·σ_t + z‖²;
//!   - likelihood weighting λ(t) = g(t)²: g(t)²·‖s(x_t, t) + z/σ_t‖²;
//!
//!   Each is reduced per example by the mean over dimensions (reduce_mean=True, the VP
//!   configs) or by ½·sum (reduce_mean=False), then averaged over the batch.
//! - Parameterisation (the official NCSN++/DDPM++ wrappers): VP and sub-VP predict the noise,
//!   s = −net(x, c(t))/σ_t; VE scales by σ, s = net(x, c(t))/σ_t; the time input c(t) is t for
//!   VP/sub-VP and log σ_t for VE (the code's Fourier embedding of log σ).

use super::forward::{per_row, ForwardSde, Sde, SdeKind, T_END};
use super::sample::ScoreFn;
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// Fixed random Fourier features of a scalar time input.
#[derive(Debug)]
pub struct FourierFeatures {
    w: Tensor,
}

impl FourierFeatures {
    /// `half` frequencies W ~ N(0, scale²), kept in the VarStore (checkpointed) but not trained.
    pub fn new(p: &nn::Path, half: i64, scale: f64) -> FourierFeatures {
        let mut w = p.zeros_no_train("W", &[half]);
        tch::no_grad(|| {
            w.copy_(&(Tensor::randn([half], (Kind::Float, w.device())) * scale));
        });
        FourierFeatures { w }
    }

    /// [B] → [B, 2·half].
    pub fn forward(&self, c: &Tensor) -> Tensor {
        let proj =
            c.unsqueeze(1) * self.w.unsqueeze(0).to_kind(c.kind()) * (2.0 * std::f64::consts::PI);
        Tensor::cat(&[proj.sin(), proj.cos()], 1)
    }

    pub fn dim(&self) -> i64 {
        2 * self.w.size()[0]
    }
}

/// The DSM weighting λ(t).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Weighting {
    /// λ = σ_t² (the official default).
    Sigma2,
    /// λ = g(t)² (likelihood weighting).
    Likelihood,
}

/// Per-example DSM losses [B] at given times t [B] and noise z (shaped like x₀), for any
/// forward SDE with a Gaussian perturbation kernel (VP, sub-VP, VE, StoRM's OU-VE).
pub fn dsm_loss_at(
    sde: &dyn ForwardSde,
    score: &ScoreFn<'_>,
    x0: &Tensor,
    t: &Tensor,
    z: &Tensor,
    weighting: Weighting,
    reduce_mean: bool,
) -> Tensor {
    let (mean, std) = sde.marginal(x0, t);
    let std_b = per_row(&std, x0);
    let xt = mean + &std_b * z;
    let s = score(&xt, t);
    let b = x0.size()[0];
    let reduce = |v: Tensor| {
        let flat = v.reshape([b, -1]);
        if reduce_mean {
            flat.mean_dim([1i64].as_slice(), false, x0.kind())
        } else {
            flat.sum_dim_intlist(1, false, x0.kind()) * 0.5
        }
    };
    match weighting {
        Weighting::Sigma2 => reduce((s * std_b + z).square()),
        Weighting::Likelihood => {
            let (_, g) = sde.drift_diffusion(&xt, t);
            reduce((s + z / std_b).square()) * g.square()
        }
    }
}

/// Checks a score model's training settings (the `[…]` keys every score experiment shares):
/// steps, batch size and logging interval ≥ 1, a positive finite learning rate, gradient
/// clipping ≥ 0 and an EMA decay in [0, 1) (0 = off).
pub fn check_training(
    steps: usize,
    batch_size: i64,
    log_every: usize,
    lr: f64,
    grad_clip: f64,
    ema: f64,
) -> anyhow::Result<()> {
    if steps == 0 || batch_size < 1 || log_every == 0 {
        anyhow::bail!("steps, batch_size and log_every must be >= 1");
    }
    if !(lr > 0.0 && lr.is_finite() && grad_clip >= 0.0) {
        anyhow::bail!("lr must be positive and grad_clip >= 0");
    }
    if !(0.0..1.0).contains(&ema) {
        anyhow::bail!("ema must be in [0, 1) (0 = off)");
    }
    Ok(())
}

/// The DSM loss of a batch: t ~ U[eps, T], z ~ N(0, I), mean over the batch.
pub fn dsm_loss(
    sde: &dyn ForwardSde,
    score: &ScoreFn<'_>,
    x0: &Tensor,
    eps: f64,
    weighting: Weighting,
    reduce_mean: bool,
) -> Tensor {
    let b = x0.size()[0];
    let t = Tensor::rand([b], (x0.kind(), x0.device())) * (T_END - eps) + eps;
    let z = x0.randn_like();
    dsm_loss_at(sde, score, x0, &t, &z, weighting, reduce_mean).mean(x0.kind())
}

/// A fully connected score network on flat inputs: [x, e(c(t))] → SiLU layers → D outputs,
/// with the paper's parameterisation for its SDE.
#[derive(Debug)]
pub struct MlpScore {
    pub sde: Sde,
    embed: FourierFeatures,
    layers: Vec<nn::Linear>,
}

impl MlpScore {
    /// `dim` inputs, hidden widths, `features` Fourier frequencies with `scale`.
    pub fn new(
        p: &nn::Path,
        sde: Sde,
        dim: i64,
        hidden: &[i64],
        features: i64,
        scale: f64,
    ) -> MlpScore {
        let embed = FourierFeatures::new(&(p / "embed"), features, scale);
        let mut layers = vec![];
        let mut width = dim + embed.dim();
        for (i, &h) in hidden.iter().chain(std::iter::once(&dim)).enumerate() {
            layers.push(nn::linear(
                p / format!("l{i}"),
                width,
                h,
                Default::default(),
            ));
            width = h;
        }
        MlpScore { sde, embed, layers }
    }

    /// The time input of the embedding: t (VP, sub-VP) or log σ_t (VE).
    fn time_input(&self, t: &Tensor) -> Tensor {
        match self.sde.kind {
            SdeKind::Ve => self.sde.marginal_std(t).log(),
            _ => t.shallow_clone(),
        }
    }

    /// The raw network output net(x, c(t)), [B, D].
    pub fn net(&self, x: &Tensor, t: &Tensor) -> Tensor {
        let mut h = Tensor::cat(
            &[x.shallow_clone(), self.embed.forward(&self.time_input(t))],
            1,
        );
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate() {
            h = l.forward(&h);
            if i < last {
                h = h.silu();
            }
        }
        h
    }

    /// The score s(x, t).
    pub fn score(&self, x: &Tensor, t: &Tensor) -> Tensor {
        let std = per_row(&self.sde.marginal_std(t), x);
        match self.sde.kind {
            SdeKind::Ve => self.net(x, t) / std,
            _ => -self.net(x, t) / std,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    const D: (Kind, Device) = (Kind::Double, Device::Cpu);

    #[test]
    fn fourier_features_are_sin_and_cos_of_fixed_frequencies() {
        let _rng = crate::rng::serial();
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let f = FourierFeatures::new(&vs.root(), 4, 16.0);
        assert!(vs.trainable_variables().is_empty());
        let c = Tensor::from_slice(&[0.0f64, 0.25]);
        let e = f.forward(&c);
        assert_eq!(e.size(), [2, 8]);
        let w = f.w.to_kind(Kind::Double);
        let want = (&w * (0.25 * 2.0 * std::f64::consts::PI)).sin();
        assert!(e.get(1).narrow(0, 0, 4).allclose(&want, 1e-6, 1e-6, false));
        // At c = 0: sin 0 = 0, cos 0 = 1.
        assert!(e
            .get(0)
            .narrow(0, 4, 4)
            .allclose(&Tensor::ones([4], D), 1e-12, 1e-12, false));
        // Frequencies drawn with std ≈ scale.
        let vs2 = nn::VarStore::new(Device::Cpu);
        let big = FourierFeatures::new(&vs2.root(), 4000, 16.0);
        let sd = big.w.std(true).double_value(&[]);
        assert!((sd - 16.0).abs() < 0.8, "{sd}");
    }

    #[test]
    fn dsm_loss_at_the_exact_score_of_a_gaussian_is_the_closed_form() {
        // Data N(0, s²) diffused by VE: x_t = x₀ + σz, exact score −x_t/(s² + σ²). Then
        // s·σ + z = (s²z − σx₀)/(s² + σ²), so E‖·‖² = s²/(s² + σ²) per dimension, and the
        // likelihood weighting gives g²/σ² times that.
        let _rng = crate::rng::serial();
        tch::manual_seed(2);
        let sde = Sde::paper(SdeKind::Ve);
        let s = 0.8;
        let score = |x: &Tensor, t: &Tensor| {
            let var = sde.marginal_std(t).square() + s * s;
            -x / per_row(&var, x)
        };
        let n = 100_000;
        let x0 = Tensor::randn([n, 2], D) * s;
        let z = Tensor::randn([n, 2], D);
        let tv = 0.5;
        let t = Tensor::full([n], tv, D);
        let sigma = 0.01 * 5000f64.powf(tv);
        let per_dim = s * s / (s * s + sigma * sigma);
        let got = dsm_loss_at(&sde, &score, &x0, &t, &z, Weighting::Sigma2, true)
            .mean(Kind::Double)
            .double_value(&[]);
        assert!((got - per_dim).abs() < 0.01 * per_dim, "{got} vs {per_dim}");
        // ½·sum over 2 dimensions = the per-dimension value.
        let half_sum = dsm_loss_at(&sde, &score, &x0, &t, &z, Weighting::Sigma2, false)
            .mean(Kind::Double)
            .double_value(&[]);
        assert!((half_sum - got).abs() < 1e-12);
        let g2 = sigma * sigma * 2.0 * 5000f64.ln();
        let lik = dsm_loss_at(&sde, &score, &x0, &t, &z, Weighting::Likelihood, true)
            .mean(Kind::Double)
            .double_value(&[]);
        let want = g2 / (sigma * sigma) * per_dim;
        assert!((lik - want).abs() < 0.01 * want, "{lik} vs {want}");
        // A wrong score costs more.
        let wrong = |x: &Tensor, t: &Tensor| score(x, t) * 1.5;
        let worse = dsm_loss_at(&sde, &wrong, &x0, &t, &z, Weighting::Sigma2, true)
            .mean(Kind::Double)
            .double_value(&[]);
        assert!(worse > got * 1.05, "{worse} vs {got}");
    }

    #[test]
    fn mlp_score_follows_the_paper_parameterisation() {
        let _rng = crate::rng::serial();
        tch::manual_seed(3);
        for kind in [SdeKind::Vp, SdeKind::Ve] {
            let vs = nn::VarStore::new(Device::Cpu);
            let sde = Sde::paper(kind);
            let m = MlpScore::new(&vs.root(), sde, 2, &[16, 16], 8, 1.0);
            let x = Tensor::randn([5, 2], (Kind::Float, Device::Cpu));
            let t = Tensor::rand([5], (Kind::Float, Device::Cpu));
            let s = m.score(&x, &t);
            let std = per_row(&sde.marginal_std(&t), &x);
            let sign = if kind == SdeKind::Ve { 1.0 } else { -1.0 };
            assert!(s.allclose(&(m.net(&x, &t) * sign / std), 1e-5, 1e-6, false));
            assert_eq!(s.size(), [5, 2]);
        }
    }
}
