//! Exact Gaussian-process regression and its inverse-gamma scale mixture, the Student-t
//! process (Lee et al., "Scale mixtures of neural network Gaussian processes", ICLR 2022).
//!
//! Observations y = f + ε with covariance C = s²·K + η·I (K a kernel matrix, η the noise).
//! - GP: y ~ N(0, C). Predictive at x*: mean k*ᵀC⁻¹y, variance c** − k*ᵀC⁻¹k* (c** includes η,
//!   so it is the predictive of a new observation).
//! - t-process: σ² ~ InvGamma(a, b), y | σ² ~ N(0, σ²C), so y ~ MVT_{2a}(0, (b/a)·C). The
//!   posterior predictive is a Student t with ν' = 2a + n degrees of freedom, the GP's mean, and
//!   squared scale (2b + yᵀC⁻¹y)/(2a + n) · (c** − k*ᵀC⁻¹k*).
//! - Marginal likelihoods: log N(y; 0, C), and
//!   log MVT = lnΓ(a + n/2) − lnΓ(a) − (n/2)·ln(2πb) − ½ ln|C| − (a + n/2)·ln(1 + yᵀC⁻¹y/(2b)).
//!
//! Hyperparameters (η and s² for the GP; η, a, b for the t-process, whose s² is absorbed in b)
//! are fitted by Adam on their logarithms, minimising the negative log marginal likelihood per
//! point.

use crate::optim::{OptimConfig, OptimName, Optimizer};
use anyhow::{bail, Result};
use std::f64::consts::PI;
use tch::{Kind, Tensor};

/// The lower Cholesky factor of the symmetric matrix `a`. When it is not numerically positive
/// definite, jitter (from 1e-10 of the mean diagonal, ×10 each try, up to 1e-4 of it) is added
/// to the diagonal; past that the error names `what`. Returns the factor and the jitter used.
pub fn cholesky(a: &Tensor, what: &str) -> Result<(Tensor, f64)> {
    let n = a.size()[0];
    let (l, info) = a.linalg_cholesky_ex(false, false);
    if info.int64_value(&[]) == 0 {
        return Ok((l, 0.0));
    }
    let scale = a
        .diagonal(0, 0, 1)
        .mean(Kind::Double)
        .double_value(&[])
        .abs();
    if !scale.is_finite() {
        bail!("{what}: the matrix has non-finite entries (NaN or inf hyperparameters?)");
    }
    let eye = Tensor::eye(n, (a.kind(), a.device()));
    let mut jitter = 1e-10 * scale.max(f64::MIN_POSITIVE);
    while jitter <= 1e-4 * scale {
        let (l, info) = (a + &eye * jitter).linalg_cholesky_ex(false, false);
        if info.int64_value(&[]) == 0 {
            return Ok((l, jitter));
        }
        jitter *= 10.0;
    }
    bail!(
        "{what} is not positive definite even with jitter 1e-4 × its mean diagonal: raise the noise (or its initial value) or check the inputs for duplicates"
    )
}

/// The pieces every posterior and marginal likelihood is computed from, given C and y.
pub struct Factor {
    /// Lower Cholesky factor of C.
    pub l: Tensor,
    /// C⁻¹y [n].
    pub alpha: Tensor,
    /// yᵀC⁻¹y.
    pub quad: Tensor,
    /// ln|C|.
    pub logdet: Tensor,
    pub n: i64,
}

impl Factor {
    pub fn new(c: &Tensor, y: &Tensor, what: &str) -> Result<Factor> {
        let (l, _) = cholesky(c, what)?;
        let y1 = y.reshape([-1, 1]);
        let alpha = y1.cholesky_solve(&l, false).reshape([-1]);
        let quad = y.dot(&alpha);
        let logdet = l.diagonal(0, 0, 1).log().sum(Kind::Double) * 2.0;
        Ok(Factor {
            l,
            alpha,
            quad,
            logdet,
            n: y.size()[0],
        })
    }

    /// log N(y; 0, C).
    pub fn gaussian_lml(&self) -> Tensor {
        (&self.quad + &self.logdet + self.n as f64 * (2.0 * PI).ln()) * -0.5
    }

    /// log MVT_{2a}(y; 0, (b/a)·C) for tensors a, b (differentiable in them).
    pub fn student_t_lml(&self, a: &Tensor, b: &Tensor) -> Tensor {
        let half_n = self.n as f64 / 2.0;
        (a + half_n).lgamma()
            - a.lgamma()
            - (b * (2.0 * PI)).log() * half_n
            - &self.logdet * 0.5
            - (a + half_n) * (&self.quad / (b * 2.0)).log1p()
    }

    /// Predictive mean and variance at test points from the cross covariances `cross` [n, m]
    /// and the test points' prior variances `prior_var` [m] (with the noise for observations).
    pub fn predict(&self, cross: &Tensor, prior_var: &Tensor) -> (Tensor, Tensor) {
        let mean = cross.tr().matmul(&self.alpha.unsqueeze(1)).squeeze_dim(1);
        let v = self.l.linalg_solve_triangular(cross, false, true, false);
        let var = prior_var - v.square().sum_dim_intlist(0, false, Kind::Double);
        (mean, var.clamp_min(1e-300))
    }
}

/// Which likelihood a model puts on the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// Gaussian process (fixed output scale).
    Gp,
    /// Student-t process (inverse-gamma scale mixture).
    Tp,
}

impl Model {
    pub fn as_str(self) -> &'static str {
        match self {
            Model::Gp => "gp",
            Model::Tp => "tp",
        }
    }
}

/// Hyperparameters: noise η, output scale s² (the GP's; 1 for the t-process), and the
/// inverse-gamma a, b (the t-process's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hyper {
    pub noise: f64,
    pub scale: f64,
    pub a: f64,
    pub b: f64,
}

/// A predictive distribution per test point: mean, squared scale and degrees of freedom
/// (None: Gaussian, the squared scale is the variance).
pub struct Predictive {
    pub mean: Tensor,
    pub scale2: Tensor,
    pub dof: Option<f64>,
}

impl Predictive {
    /// −log p(y) per point.
    pub fn nll(&self, y: &Tensor) -> Tensor {
        let z2 = (y - &self.mean).square() / &self.scale2;
        match self.dof {
            None => (&self.scale2 * (2.0 * PI)).log() * 0.5 + z2 * 0.5,
            Some(nu) => {
                let c = crate::stats::ln_gamma((nu + 1.0) / 2.0)
                    - crate::stats::ln_gamma(nu / 2.0)
                    - 0.5 * (nu * PI).ln();
                self.scale2.log() * 0.5 - c + (z2 / nu).log1p() * ((nu + 1.0) / 2.0)
            }
        }
    }

    /// Half-width of the central `level` interval per point.
    pub fn half_width(&self, level: f64) -> Tensor {
        let p = 0.5 + level / 2.0;
        let z = match self.dof {
            None => crate::stats::quantile(p, crate::stats::normal_cdf),
            Some(nu) => crate::stats::quantile(p, |t| crate::stats::student_t_cdf(t, nu)),
        };
        self.scale2.sqrt() * z
    }
}

/// The noisy covariance C = s²K + ηI of training inputs.
pub fn noisy(k: &Tensor, scale: &Tensor, noise: &Tensor) -> Tensor {
    let n = k.size()[0];
    k * scale + Tensor::eye(n, (k.kind(), k.device())) * noise
}

/// The posterior predictive at test points: `k_train` [n, n] (kernel, no noise), `k_cross`
/// [n, m], `k_test_diag` [m], training targets `y` [n].
pub fn predictive(
    model: Model,
    h: &Hyper,
    k_train: &Tensor,
    k_cross: &Tensor,
    k_test_diag: &Tensor,
    y: &Tensor,
) -> Result<Predictive> {
    predictive_scored(model, h, k_train, k_cross, k_test_diag, y, false)
}

/// The official code's scoring of the same posterior (spax `SPR.test_nll` with neural_tangents'
/// predict): the latent f's predictive variance s²k** − k*ᵀC⁻¹k* without the noise, and for the
/// t-process the scale factor (2b + yᵀ(K + 10⁻⁶I)⁻¹y)/(2a + n) from the noise-free kernel (its
/// "TODO: check").
pub fn predictive_latent_official(
    model: Model,
    h: &Hyper,
    k_train: &Tensor,
    k_cross: &Tensor,
    k_test_diag: &Tensor,
    y: &Tensor,
) -> Result<Predictive> {
    predictive_scored(model, h, k_train, k_cross, k_test_diag, y, true)
}

fn predictive_scored(
    model: Model,
    h: &Hyper,
    k_train: &Tensor,
    k_cross: &Tensor,
    k_test_diag: &Tensor,
    y: &Tensor,
    latent_official: bool,
) -> Result<Predictive> {
    let scale = if model == Model::Gp { h.scale } else { 1.0 };
    let eye = Tensor::eye(k_train.size()[0], (Kind::Double, k_train.device()));
    let f = Factor::new(
        &(k_train * scale + &eye * h.noise),
        y,
        "the training kernel matrix",
    )?;
    let test_noise = if latent_official { 0.0 } else { h.noise };
    let (mean, var) = f.predict(&(k_cross * scale), &(k_test_diag * scale + test_noise));
    Ok(match model {
        Model::Gp => Predictive {
            mean,
            scale2: var,
            dof: None,
        },
        Model::Tp => {
            let n = f.n as f64;
            let quad = if latent_official {
                Factor::new(
                    &(k_train + &eye * 1e-6),
                    y,
                    "the noise-free training kernel",
                )?
                .quad
                .double_value(&[])
            } else {
                f.quad.double_value(&[])
            };
            let factor = (2.0 * h.b + quad) / (2.0 * h.a + n);
            Predictive {
                mean,
                scale2: var * factor,
                dof: Some(2.0 * h.a + n),
            }
        }
    })
}

/// How `fit` runs Adam: steps, learning rate, and how often it reports.
#[derive(Debug, Clone, Copy)]
pub struct FitOptions {
    pub steps: usize,
    pub lr: f64,
    pub log_every: usize,
}

/// Fits the hyperparameters of `model` by Adam on the negative log marginal likelihood per
/// point of `y` under kernel matrix `k`, starting from `init`. `log` receives (step, NLL per
/// point, hyperparameters) every `log_every` steps and at the last step.
pub fn fit(
    model: Model,
    k: &Tensor,
    y: &Tensor,
    init: Hyper,
    o: FitOptions,
    mut log: impl FnMut(usize, f64, &Hyper) -> Result<()>,
) -> Result<Hyper> {
    let (steps, lr, every) = (o.steps, o.lr, o.log_every);
    let start = match model {
        Model::Gp => vec![init.noise.ln(), init.scale.ln()],
        Model::Tp => vec![init.noise.ln(), init.a.ln(), init.b.ln()],
    };
    let theta = Tensor::from_slice(&start)
        .to_device(k.device())
        .set_requires_grad(true);
    let cfg = OptimConfig {
        name: OptimName::Adam,
        lr,
        ..Default::default()
    };
    let mut opt = Optimizer::new(vec![("log_hyper".into(), theta.shallow_clone())], &cfg)?;
    let n = y.size()[0] as f64;
    let read = |t: &Tensor| -> Hyper {
        let v: Vec<f64> = Vec::<f64>::try_from(t.detach().exp()).unwrap_or_default();
        match model {
            Model::Gp => Hyper {
                noise: v[0],
                scale: v[1],
                ..init
            },
            Model::Tp => Hyper {
                noise: v[0],
                scale: 1.0,
                a: v[1],
                b: v[2],
            },
        }
    };
    let nll = |theta: &Tensor| -> Result<Tensor> {
        let e = theta.exp();
        let noise = e.get(0);
        let lml = match model {
            Model::Gp => {
                let c = noisy(k, &e.get(1), &noise);
                Factor::new(&c, y, "the training kernel matrix")?.gaussian_lml()
            }
            Model::Tp => {
                let c = noisy(k, &Tensor::ones([], (Kind::Double, k.device())), &noise);
                Factor::new(&c, y, "the training kernel matrix")?
                    .student_t_lml(&e.get(1), &e.get(2))
            }
        };
        Ok(-lml / n)
    };
    for step in 1..=steps {
        opt.zero_grad();
        let loss = nll(&theta)?;
        loss.backward();
        let value = loss.double_value(&[]);
        if !value.is_finite() {
            bail!(
                "{} marginal likelihood is {value} at step {step}: lower regression.lr or change the initial hyperparameters",
                model.as_str()
            );
        }
        opt.step();
        if step % every.max(1) == 0 || step == steps {
            let h = read(&theta);
            let after = tch::no_grad(|| nll(&theta))?.double_value(&[]);
            log(step, after, &h)?;
        }
    }
    Ok(read(&theta))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem() -> (Tensor, Tensor, Tensor, Tensor) {
        let x = Tensor::from_slice(&[-1.5, -0.7, 0.1, 0.4, 1.3, 2.0]);
        let rbf =
            |a: &Tensor, b: &Tensor| (-(a.unsqueeze(1) - b.unsqueeze(0)).square() / 2.0).exp();
        let y = Tensor::from_slice(&[0.3, -0.5, 0.9, 1.1, -0.2, 2.5]);
        let xs = Tensor::from_slice(&[0.0, 3.0]);
        (rbf(&x, &x), rbf(&x, &xs), rbf(&xs, &xs), y)
    }

    /// Dense log density of MVT_ν(0, Σ) for a full matrix (inverse and slogdet).
    fn mvt_logpdf(y: &Tensor, sigma: &Tensor, nu: f64) -> f64 {
        let n = y.size()[0] as f64;
        let q = y.dot(&sigma.inverse().matmul(y)).double_value(&[]);
        let (_, logdet) = sigma.slogdet();
        crate::stats::ln_gamma((nu + n) / 2.0)
            - crate::stats::ln_gamma(nu / 2.0)
            - n / 2.0 * (nu * PI).ln()
            - 0.5 * logdet.double_value(&[])
            - (nu + n) / 2.0 * (1.0 + q / nu).ln()
    }

    #[test]
    fn posteriors_and_marginals_match_dense_computations() {
        let (k, kx, kss, y) = problem();
        let h = Hyper {
            noise: 0.1,
            scale: 1.7,
            a: 2.5,
            b: 1.5,
        };
        // GP: dense inverse.
        let c = &k * h.scale + Tensor::eye(6, (Kind::Double, tch::Device::Cpu)) * h.noise;
        let inv = c.inverse();
        let kxs = &kx * h.scale;
        let mean = kxs.tr().matmul(&inv).matmul(&y);
        let var = kss.diagonal(0, 0, 1) * h.scale + h.noise
            - kxs.tr().matmul(&inv).matmul(&kxs).diagonal(0, 0, 1);
        let p = predictive(Model::Gp, &h, &k, &kx, &kss.diagonal(0, 0, 1), &y).unwrap();
        assert!((&p.mean - &mean).abs().max().double_value(&[]) < 1e-12);
        assert!((&p.scale2 - &var).abs().max().double_value(&[]) < 1e-12);
        let f = Factor::new(&c, &y, "test").unwrap();
        let (_, logdet) = c.slogdet();
        let dense = -0.5
            * (y.dot(&inv.matmul(&y)).double_value(&[])
                + logdet.double_value(&[])
                + 6.0 * (2.0 * PI).ln());
        assert!((f.gaussian_lml().double_value(&[]) - dense).abs() < 1e-10);

        // t-process marginal: the dense multivariate t with ν = 2a, Σ = (b/a)C.
        let ct = &k + Tensor::eye(6, (Kind::Double, tch::Device::Cpu)) * h.noise;
        let ft = Factor::new(&ct, &y, "test").unwrap();
        let a = Tensor::from(h.a).to_kind(Kind::Double);
        let b = Tensor::from(h.b).to_kind(Kind::Double);
        let lml = ft.student_t_lml(&a, &b).double_value(&[]);
        let dense = mvt_logpdf(&y, &(&ct * (h.b / h.a)), 2.0 * h.a);
        assert!((lml - dense).abs() < 1e-10, "{lml} vs {dense}");

        // t-process predictive = joint density of (y, y*) minus that of y, by dense MVTs.
        let p = predictive(Model::Tp, &h, &k, &kx, &kss.diagonal(0, 0, 1), &y).unwrap();
        assert_eq!(p.dof, Some(2.0 * h.a + 6.0));
        for (j, ystar) in [(0i64, 0.7), (1, -1.9)] {
            let idx = Tensor::from_slice(&[0i64, 1, 2, 3, 4, 5]);
            let col = kx.narrow(1, j, 1);
            let top = Tensor::cat(&[ct.shallow_clone(), col.shallow_clone()], 1);
            let bottom = Tensor::cat(
                &[col.tr(), (kss.get(j).get(j) + h.noise).reshape([1, 1])],
                1,
            );
            let joint = Tensor::cat(&[top, bottom], 0) * (h.b / h.a);
            let yj = Tensor::cat(&[y.index_select(0, &idx), Tensor::from_slice(&[ystar])], 0);
            let cond = mvt_logpdf(&yj, &joint, 2.0 * h.a)
                - mvt_logpdf(&y, &(&ct * (h.b / h.a)), 2.0 * h.a);
            let ours = -p.nll(&Tensor::from_slice(&[ystar; 2])).double_value(&[j]);
            assert!((cond - ours).abs() < 1e-9, "point {j}: {cond} vs {ours}");
        }
    }

    /// Large a with b/a = 1 is a GP with output scale 1: the t marginal and predictive
    /// approach the Gaussian ones.
    #[test]
    fn t_process_tends_to_the_gp() {
        let (k, kx, kss, y) = problem();
        let h = Hyper {
            noise: 0.2,
            scale: 1.0,
            a: 1e7,
            b: 1e7,
        };
        let c = &k + Tensor::eye(6, (Kind::Double, tch::Device::Cpu)) * h.noise;
        let f = Factor::new(&c, &y, "test").unwrap();
        let a = Tensor::from(h.a).to_kind(Kind::Double);
        let t = f.student_t_lml(&a, &a).double_value(&[]);
        assert!((t - f.gaussian_lml().double_value(&[])).abs() < 1e-5);
        let d = kss.diagonal(0, 0, 1);
        let g = predictive(Model::Gp, &h, &k, &kx, &d, &y).unwrap();
        let tp = predictive(Model::Tp, &h, &k, &kx, &d, &y).unwrap();
        let ys = Tensor::from_slice(&[0.5, -1.0]);
        let gap = (g.nll(&ys) - tp.nll(&ys)).abs().max().double_value(&[]);
        assert!(gap < 1e-5, "{gap}");
        // 95 % half-widths: 1.96σ for the GP; the t's is wider for few degrees of freedom.
        let hw = g.half_width(0.95).double_value(&[0]) / g.scale2.sqrt().double_value(&[0]);
        assert!((hw - 1.959_963_985).abs() < 1e-6);
    }

    /// Adam on the marginal likelihood recovers the noise level of data drawn from the model.
    #[test]
    fn fit_recovers_the_noise_of_a_gp_sample() {
        let _g = crate::rng::serial();
        tch::manual_seed(3);
        let n = 200;
        let x = Tensor::linspace(-3.0, 3.0, n, (Kind::Double, tch::Device::Cpu));
        let k = (-(x.unsqueeze(1) - x.unsqueeze(0)).square() / 2.0).exp();
        let (l, _) = cholesky(&k, "rbf").unwrap();
        let f = l
            .matmul(&Tensor::randn([n, 1], (Kind::Double, tch::Device::Cpu)))
            .squeeze_dim(1);
        let y = f + Tensor::randn([n], (Kind::Double, tch::Device::Cpu)) * 0.3;
        let init = Hyper {
            noise: 1.0,
            scale: 0.5,
            a: 2.0,
            b: 2.0,
        };
        let mut logged = 0;
        let o = |log_every| FitOptions {
            steps: 400,
            lr: 0.05,
            log_every,
        };
        let h = fit(Model::Gp, &k, &y, init, o(100), |_, nll, _| {
            assert!(nll.is_finite());
            logged += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(logged, 4);
        assert!((h.noise.sqrt() - 0.3).abs() < 0.06, "{h:?}");
        assert!(h.scale > 0.3 && h.scale < 3.0, "{h:?}");
        let t = fit(Model::Tp, &k, &y, init, o(400), |_, _, _| Ok(())).unwrap();
        assert!(t.a > 0.0 && t.b > 0.0 && t.noise > 0.0, "{t:?}");
    }

    #[test]
    fn cholesky_adds_jitter_then_fails_clearly() {
        // Rank one: needs jitter.
        let v = Tensor::from_slice(&[1.0, 2.0, 3.0]).reshape([3, 1]);
        let (_, j) = cholesky(&v.matmul(&v.tr()), "rank-one").unwrap();
        assert!(j > 0.0);
        let bad = Tensor::from_slice(&[1.0, 0.0, 0.0, -1.0]).reshape([2, 2]);
        let e = cholesky(&bad, "the kernel").unwrap_err().to_string();
        assert!(e.contains("the kernel is not positive definite"), "{e}");
    }
}
