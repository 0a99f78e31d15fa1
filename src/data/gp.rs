//! Gaussian-process meta-regression tasks, the 1-D benchmark of the neural-process papers
//! (Kim et al. 2019; Lee et al. 2020 "bootstrapping neural processes", whose data settings the
//! MPNP paper reuses). One task: x ~ U[−2, 2], y ~ GP(0, k) at those x plus jitter; the first
//! `n_ctx` points are the context, all `n_ctx + n_tar` points the targets (the NP convention:
//! the context is part of the target set). Kernels with d = |x − x′|:
//! - RBF: s² exp(−d²/(2ℓ²));
//! - Matérn-5/2: s² (1 + √5 d/ℓ + 5d²/(3ℓ²)) exp(−√5 d/ℓ);
//! - periodic: s² exp(−2 sin²(π d/p)/ℓ²);
//!
//! with ℓ ~ U[0.1, 0.6], s ~ U[0.1, 1], p ~ U[0.1, 0.5] per task, σ_ε = 0.02 added on the
//! diagonal. `t-noise` is RBF with heavy-tailed observation noise 0.15·u·t_{2.1}, u ~ U[0, 1]
//! per task. Every draw comes from the global generator (reseed first) and lives on `device`.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GpKernel {
    Rbf,
    Matern,
    Periodic,
    /// RBF with Student-t observation noise.
    TNoise,
}

impl GpKernel {
    pub fn as_str(self) -> &'static str {
        match self {
            GpKernel::Rbf => "rbf",
            GpKernel::Matern => "matern",
            GpKernel::Periodic => "periodic",
            GpKernel::TNoise => "t-noise",
        }
    }
}

/// The task distribution's settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GpConfig {
    /// Largest number of points per task (context + target).
    pub max_points: i64,
    pub min_ctx: i64,
    pub min_tar: i64,
    pub x_range: f64,
    pub length: [f64; 2],
    pub scale: [f64; 2],
    pub period: [f64; 2],
    pub jitter: f64,
    /// Scale of the Student-t noise of `t-noise` tasks.
    pub t_noise: f64,
    pub t_dof: f64,
}

impl Default for GpConfig {
    fn default() -> Self {
        GpConfig {
            max_points: 50,
            min_ctx: 3,
            min_tar: 3,
            x_range: 2.0,
            length: [0.1, 0.6],
            scale: [0.1, 1.0],
            period: [0.1, 0.5],
            jitter: 0.02,
            t_noise: 0.15,
            t_dof: 2.1,
        }
    }
}

impl crate::config::Check for GpConfig {
    fn check(&self) -> Result<()> {
        if self.min_ctx < 1 || self.min_tar < 1 || self.min_ctx + self.min_tar > self.max_points {
            bail!("gp: min_ctx, min_tar >= 1 and min_ctx + min_tar <= max_points");
        }
        for (n, r) in [
            ("length", self.length),
            ("scale", self.scale),
            ("period", self.period),
        ] {
            if !(r[0] > 0.0 && r[0] <= r[1]) {
                bail!("gp.{n} must be [low, high] with 0 < low <= high, got {r:?}");
            }
        }
        if self.x_range <= 0.0 || self.jitter < 0.0 || self.t_noise < 0.0 || self.t_dof <= 2.0 {
            bail!("gp: x_range > 0, jitter and t_noise >= 0, t_dof > 2 (finite variance)");
        }
        Ok(())
    }
}

/// A batch of tasks sharing their point counts.
#[derive(Debug)]
pub struct GpBatch {
    /// [batch, n, 1], the context first.
    pub x: Tensor,
    pub y: Tensor,
    pub n_ctx: i64,
}

impl GpBatch {
    pub fn n(&self) -> i64 {
        self.x.size()[1]
    }
    pub fn context(&self) -> (Tensor, Tensor) {
        (
            self.x.narrow(1, 0, self.n_ctx),
            self.y.narrow(1, 0, self.n_ctx),
        )
    }
}

fn uniform(shape: &[i64], range: [f64; 2], device: Device) -> Tensor {
    Tensor::rand(shape, (Kind::Double, device)) * (range[1] - range[0]) + range[0]
}

/// The kernel matrix k(x_i, x′_j) for x [b, n, 1] and x′ [b, m, 1]; `length`, `scale` and
/// `period` are [b, 1, 1]. `TNoise` uses RBF.
pub fn kernel_matrix(
    kind: GpKernel,
    x: &Tensor,
    x2: &Tensor,
    length: &Tensor,
    scale: &Tensor,
    period: &Tensor,
) -> Tensor {
    let d = (x - x2.transpose(1, 2)).abs();
    let s2 = scale.square();
    match kind {
        GpKernel::Rbf | GpKernel::TNoise => s2 * (-(d / length).square() * 0.5).exp(),
        GpKernel::Matern => {
            let r = d / length * 5f64.sqrt();
            s2 * (r.square() / 3.0 + &r + 1.0) * (-r).exp()
        }
        GpKernel::Periodic => {
            let s = (d * std::f64::consts::PI / period).sin();
            s2 * (-(s.square() * 2.0) / length.square()).exp()
        }
    }
}

/// Student-t draws with `dof` degrees of freedom: z / √(χ²_ν/ν), χ²_ν = 2·Gamma(ν/2).
pub fn student_t(shape: &[i64], dof: f64, device: Device) -> Tensor {
    let z = Tensor::randn(shape, (Kind::Double, device));
    let g = Tensor::full(shape, dof / 2.0, (Kind::Double, device)).internal_standard_gamma();
    z / (g * 2.0 / dof).sqrt()
}

/// `batch` tasks of `kind` with `n_ctx` context and `n_tar` further target points.
pub fn sample_tasks(
    cfg: &GpConfig,
    kind: GpKernel,
    batch: i64,
    n_ctx: i64,
    n_tar: i64,
    device: Device,
) -> GpBatch {
    let n = n_ctx + n_tar;
    let x = uniform(&[batch, n, 1], [-cfg.x_range, cfg.x_range], device);
    let length = uniform(&[batch, 1, 1], cfg.length, device);
    let scale = uniform(&[batch, 1, 1], cfg.scale, device);
    let period = uniform(&[batch, 1, 1], cfg.period, device);
    let eye = Tensor::eye(n, (Kind::Double, device));
    let cov = kernel_matrix(kind, &x, &x, &length, &scale, &period) + eye * cfg.jitter.powi(2);
    let l = cov.linalg_cholesky(false);
    let mut y = l.matmul(&Tensor::randn([batch, n, 1], (Kind::Double, device)));
    if kind == GpKernel::TNoise {
        let u = Tensor::rand([batch, 1, 1], (Kind::Double, device));
        y += student_t(&[batch, n, 1], cfg.t_dof, device) * u * cfg.t_noise;
    }
    GpBatch {
        x: x.to_kind(Kind::Float),
        y: y.to_kind(Kind::Float),
        n_ctx,
    }
}

/// Point counts as the benchmark draws them: n_ctx ~ U{min_ctx .. max − min_tar},
/// n_tar ~ U{min_tar .. max − n_ctx} (from the global generator, on the CPU).
pub fn sample_counts(cfg: &GpConfig) -> (i64, i64) {
    let draw = |lo: i64, hi: i64| {
        Tensor::randint_low(lo, hi + 1, [1], (Kind::Int64, Device::Cpu)).int64_value(&[0])
    };
    let n_ctx = draw(cfg.min_ctx, cfg.max_points - cfg.min_tar);
    let n_tar = draw(cfg.min_tar, cfg.max_points - n_ctx);
    (n_ctx, n_tar)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(v: f64) -> Tensor {
        Tensor::from_slice(&[v])
            .to_kind(Kind::Double)
            .view([1, 1, 1])
    }

    #[test]
    fn kernels_match_their_formulas() {
        let x = Tensor::from_slice(&[0.0f64, 0.3, -1.1]).view([1, 3, 1]);
        let (l, s, p) = (0.4, 0.7, 0.35);
        let pts = [0.0f64, 0.3, -1.1];
        for kind in [GpKernel::Rbf, GpKernel::Matern, GpKernel::Periodic] {
            let k = kernel_matrix(kind, &x, &x, &scalar(l), &scalar(s), &scalar(p));
            for i in 0..3 {
                for j in 0..3 {
                    let d = (pts[i] - pts[j]).abs();
                    let want = match kind {
                        GpKernel::Rbf | GpKernel::TNoise => s * s * (-d * d / (2.0 * l * l)).exp(),
                        GpKernel::Matern => {
                            let r = 5f64.sqrt() * d / l;
                            s * s * (1.0 + r + 5.0 * d * d / (3.0 * l * l)) * (-r).exp()
                        }
                        GpKernel::Periodic => {
                            let sn = (std::f64::consts::PI * d / p).sin();
                            s * s * (-2.0 * sn * sn / (l * l)).exp()
                        }
                    };
                    let got = k.double_value(&[0, i as i64, j as i64]);
                    assert!(
                        (got - want).abs() < 1e-12,
                        "{kind:?} ({i},{j}): {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn samples_have_the_kernel_covariance_and_counts_their_ranges() {
        let _rng = crate::rng::serial();
        tch::manual_seed(7);
        let cfg = GpConfig {
            length: [0.5, 0.5],
            scale: [0.8, 0.8],
            ..Default::default()
        };
        // Empirical covariance of y at two points over 20k tasks against s² k(d) + σ_ε².
        let b = sample_tasks(&cfg, GpKernel::Rbf, 20_000, 2, 0, Device::Cpu);
        let (x, y) = (b.x.to_kind(Kind::Double), b.y.to_kind(Kind::Double));
        let d = (x.select(1, 0) - x.select(1, 1)).abs().squeeze();
        let want = (d.square() / (-2.0 * 0.25)).exp() * 0.64;
        let prod = (y.select(1, 0) * y.select(1, 1)).squeeze();
        let resid = (prod - want).mean(Kind::Double).double_value(&[]);
        assert!(resid.abs() < 0.02, "cross-covariance off by {resid}");
        let var = y.select(1, 0).square().mean(Kind::Double).double_value(&[]);
        assert!((var - 0.64 - 0.0004).abs() < 0.03, "variance {var}");
        for _ in 0..200 {
            let (c, t) = sample_counts(&GpConfig::default());
            assert!((3..=47).contains(&c) && t >= 3 && c + t <= 50, "{c} {t}");
        }
        // Student-t: variance ν/(ν−2) for ν = 5.
        let st = student_t(&[200_000], 5.0, Device::Cpu);
        let v = st.var(true).double_value(&[]);
        assert!((v - 5.0 / 3.0).abs() < 0.08, "t variance {v}");
    }
}
