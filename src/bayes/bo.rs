//! Bayesian optimisation machinery: benchmark objectives with their known optima, expected
//! improvement (analytic for Gaussian predictives, Monte Carlo from posterior draws), a
//! Matérn-5/2 ARD Gaussian process fitted on its marginal likelihood, and a
//! candidate-then-local-refine acquisition optimiser over the unit cube.
//!
//! Everything minimises. Inputs live in the unit cube [0, 1]^d; each objective maps them to its
//! own box. Expected improvement over the incumbent y* for a predictive f(x):
//! EI(x) = E[max(y* − f(x), 0)]; for f ~ N(μ, σ²) with z = (y* − μ)/σ,
//! EI = σ·(z·Φ(z) + φ(z)); from draws f_1..f_S, EI ≈ (1/S) Σ_s max(y* − f_s, 0).

use crate::bayes::gp::Factor;
use crate::optim::rules::{Adam, Rule};
use crate::optim::OptimConfig;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::f64::consts::{E, PI};
use tch::{Kind, Tensor};

/// A benchmark objective (minimised).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Branin on [−5, 10] × [0, 15], minimum 0.397887 at three points.
    Branin,
    /// Hartmann-6 on [0, 1]^6, minimum −3.32237.
    Hartmann6,
    /// Ackley in 10 dimensions on [−32.768, 32.768]^10, minimum 0 at the origin.
    Ackley10,
}

const HART_ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
const HART_A: [[f64; 6]; 4] = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
];
const HART_P: [[f64; 6]; 4] = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
];
/// The Hartmann-6 minimiser (Surjanovic & Bingham's table).
pub const HARTMANN6_ARGMIN: [f64; 6] = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573];

impl Objective {
    pub fn as_str(self) -> &'static str {
        match self {
            Objective::Branin => "branin",
            Objective::Hartmann6 => "hartmann6",
            Objective::Ackley10 => "ackley10",
        }
    }

    pub fn dim(self) -> i64 {
        match self {
            Objective::Branin => 2,
            Objective::Hartmann6 => 6,
            Objective::Ackley10 => 10,
        }
    }

    /// The global minimum value.
    pub fn optimum(self) -> f64 {
        match self {
            Objective::Branin => 5.0 / (4.0 * PI),
            Objective::Hartmann6 => -3.322_368_011_415_515,
            Objective::Ackley10 => 0.0,
        }
    }

    /// Per-dimension box (lower, upper).
    fn bounds(self, j: i64) -> (f64, f64) {
        match self {
            Objective::Branin => {
                if j == 0 {
                    (-5.0, 10.0)
                } else {
                    (0.0, 15.0)
                }
            }
            Objective::Hartmann6 => (0.0, 1.0),
            Objective::Ackley10 => (-32.768, 32.768),
        }
    }

    /// Maps unit-cube points `[…, d]` to the objective's box.
    pub fn to_box(self, u: &Tensor) -> Tensor {
        let d = self.dim();
        let (lo, hi): (Vec<f64>, Vec<f64>) = (0..d).map(|j| self.bounds(j)).unzip();
        let opts = (u.kind(), u.device());
        let lo = Tensor::from_slice(&lo).to_kind(opts.0).to_device(opts.1);
        let hi = Tensor::from_slice(&hi).to_kind(opts.0).to_device(opts.1);
        &lo + u * (hi - &lo)
    }

    /// The objective at points `[…, d]` of its own box, `[…]`.
    pub fn eval(self, x: &Tensor) -> Tensor {
        let x = x.to_kind(Kind::Double);
        match self {
            Objective::Branin => {
                let (x1, x2) = (x.select(-1, 0), x.select(-1, 1));
                let b = 5.1 / (4.0 * PI * PI);
                let c = 5.0 / PI;
                let t = 1.0 / (8.0 * PI);
                let inner = &x2 - x1.square() * b + &x1 * c - 6.0;
                inner.square() + x1.cos() * (10.0 * (1.0 - t)) + 10.0
            }
            Objective::Hartmann6 => {
                let dev = x.device();
                let a = Tensor::from_slice(HART_A.as_flattened())
                    .view([4, 6])
                    .to_device(dev);
                let p = Tensor::from_slice(HART_P.as_flattened())
                    .view([4, 6])
                    .to_device(dev);
                let alpha = Tensor::from_slice(&HART_ALPHA).to_device(dev);
                let diff = x.unsqueeze(-2) - p; // […, 4, 6]
                let inner = (diff.square() * a).sum_dim_intlist(-1, false, Kind::Double);
                -((-inner).exp() * alpha).sum_dim_intlist(-1, false, Kind::Double)
            }
            Objective::Ackley10 => {
                let d = self.dim() as f64;
                let sq = x.square().sum_dim_intlist(-1, false, Kind::Double) / d;
                let cs = (&x * (2.0 * PI))
                    .cos()
                    .sum_dim_intlist(-1, false, Kind::Double)
                    / d;
                -(sq.sqrt() * -0.2).exp() * 20.0 - cs.exp() + 20.0 + E
            }
        }
    }

    /// The objective at unit-cube points.
    pub fn eval_unit(self, u: &Tensor) -> Tensor {
        self.eval(&self.to_box(u))
    }
}

fn normal_cdf(z: &Tensor) -> Tensor {
    ((z / 2f64.sqrt()).erf() + 1.0) * 0.5
}

fn normal_pdf(z: &Tensor) -> Tensor {
    (z.square() * -0.5).exp() / (2.0 * PI).sqrt()
}

/// Analytic EI for minimisation of f ~ N(mean, std²) below `best` (broadcast).
pub fn ei_gaussian(mean: &Tensor, std: &Tensor, best: &Tensor) -> Tensor {
    let s = std.clamp_min(1e-12);
    let z = (best - mean) / &s;
    s * (&z * normal_cdf(&z) + normal_pdf(&z))
}

/// Monte-Carlo EI from draws `[S, …]` of f (dimension 0 the draws) below `best` (broadcast
/// against the rest).
pub fn ei_draws(draws: &Tensor, best: &Tensor) -> Tensor {
    (best - draws).relu().mean_dim(0, false, draws.kind())
}

/// Settings of the acquisition optimiser.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AcqOptions {
    /// Uniform random candidates per problem.
    pub candidates: i64,
    /// Best candidates kept as incumbents for the local refinement.
    pub top: i64,
    /// Refinement rounds; each perturbs every incumbent and keeps the best `top`.
    pub rounds: usize,
    /// Gaussian perturbations per incumbent and round.
    pub perturbations: i64,
    /// Perturbation std (unit-cube units) in the first round.
    pub radius: f64,
    /// Factor on the radius after each round.
    pub shrink: f64,
}

impl Default for AcqOptions {
    fn default() -> Self {
        AcqOptions {
            candidates: 1000,
            top: 5,
            rounds: 15,
            perturbations: 16,
            radius: 0.1,
            shrink: 0.75,
        }
    }
}

impl AcqOptions {
    pub fn check(&self) -> Result<()> {
        if self.candidates < 1 || self.top < 1 || self.perturbations < 1 {
            bail!("acquisition: candidates, top and perturbations must be >= 1");
        }
        if self.top > self.candidates {
            bail!(
                "acquisition.top = {} exceeds acquisition.candidates = {}",
                self.top,
                self.candidates
            );
        }
        if !(self.radius > 0.0 && self.shrink > 0.0 && self.shrink <= 1.0) {
            bail!("acquisition: radius > 0 and shrink in (0, 1]");
        }
        Ok(())
    }
}

/// Maximises `acq` (points `[B, m, d]` → values `[B, m]`, B independent problems) over the unit
/// cube: `candidates` uniform points, then `rounds` of Gaussian perturbations around the best
/// `top` (clamped to the cube, radius shrinking geometrically), keeping the best `top` each
/// round. Returns the maximisers `[B, d]` and their values `[B]` (double precision).
pub fn maximize(
    b: i64,
    d: i64,
    o: &AcqOptions,
    device: tch::Device,
    mut acq: impl FnMut(&Tensor) -> Result<Tensor>,
) -> Result<(Tensor, Tensor)> {
    let opts = (Kind::Double, device);
    let x = Tensor::rand([b, o.candidates, d], opts);
    let v = acq(&x)?.to_kind(Kind::Double);
    let (mut top_v, idx) = v.topk(o.top, 1, true, true);
    let mut top_x = x.gather(1, &idx.unsqueeze(-1).expand([b, o.top, d], false), false);
    let mut radius = o.radius;
    for _ in 0..o.rounds {
        let p = o.perturbations;
        let noise = Tensor::randn([b, o.top, p, d], opts) * radius;
        let cand = (top_x.unsqueeze(2) + noise)
            .clamp(0.0, 1.0)
            .reshape([b, o.top * p, d]);
        let cv = acq(&cand)?.to_kind(Kind::Double);
        let all_x = Tensor::cat(&[&top_x, &cand], 1);
        let all_v = Tensor::cat(&[&top_v, &cv], 1);
        let (v, idx) = all_v.topk(o.top, 1, true, true);
        top_x = all_x.gather(1, &idx.unsqueeze(-1).expand([b, o.top, d], false), false);
        top_v = v;
        radius *= o.shrink;
    }
    Ok((top_x.select(1, 0), top_v.select(1, 0)))
}

/// Matérn-5/2 ARD kernel s²(1 + √5r + 5r²/3)exp(−√5r), r² = Σ_j ((x_j − x'_j)/ℓ_j)², between
/// `x1` `[n, d]` and `x2` `[m, d]` with length scales `ls` `[d]` and variance `scale` (tensors,
/// differentiable).
pub fn matern52(x1: &Tensor, x2: &Tensor, ls: &Tensor, scale: &Tensor) -> Tensor {
    let a = x1 / ls;
    let b = x2 / ls;
    let d2 = (a.unsqueeze(1) - b.unsqueeze(0))
        .square()
        .sum_dim_intlist(-1, false, Kind::Double);
    let r = d2.clamp_min(1e-12).sqrt() * 5f64.sqrt();
    (&r + 1.0 + r.square() / 3.0) * (-&r).exp() * scale
}

/// A Matérn-5/2 ARD GP posterior on one data set (inputs `[n, d]`, targets `[n]`, double).
pub struct MaternGp {
    pub x: Tensor,
    pub ls: Tensor,
    pub scale: f64,
    pub noise: f64,
    factor: Factor,
}

/// Settings of the marginal-likelihood fit of `MaternGp`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GpFit {
    pub steps: usize,
    pub lr: f64,
    /// Initial length scale (unit-cube units), output scale and noise variance.
    pub init_ls: f64,
    pub init_scale: f64,
    pub init_noise: f64,
    /// Floor on the noise variance.
    pub min_noise: f64,
}

impl Default for GpFit {
    fn default() -> Self {
        GpFit {
            steps: 60,
            lr: 0.1,
            init_ls: 0.3,
            init_scale: 1.0,
            init_noise: 1e-2,
            min_noise: 1e-6,
        }
    }
}

impl MaternGp {
    /// Fits log length scales, log output scale and log noise by Adam on the negative log
    /// marginal likelihood per point, then factorises the posterior.
    pub fn fit(x: &Tensor, y: &Tensor, o: &GpFit) -> Result<MaternGp> {
        let (x, y) = (x.to_kind(Kind::Double), y.to_kind(Kind::Double));
        let (n, d) = (x.size()[0], x.size()[1]);
        let dev = x.device();
        let mut start = vec![o.init_ls.ln(); d as usize];
        start.push(o.init_scale.ln());
        start.push(o.init_noise.ln());
        let mut theta = Tensor::from_slice(&start).to_device(dev);
        let mut adam = Adam::new(&theta, &OptimConfig::default(), false);
        let eye = Tensor::eye(n, (Kind::Double, dev));
        let cov = |t: &Tensor| {
            let e = t.exp();
            let k = matern52(&x, &x, &e.narrow(0, 0, d), &e.get(d));
            k + &eye * (e.get(d + 1) + o.min_noise)
        };
        for step in 1..=o.steps {
            let t = theta.detach().set_requires_grad(true);
            let f = Factor::new(&cov(&t), &y, "the Matérn GP kernel matrix")?;
            let loss = -f.gaussian_lml() / n as f64;
            let g = Tensor::run_backward(&[loss], &[&t], false, false)
                .pop()
                .expect("one input");
            let g = g.nan_to_num(0.0, 0.0, 0.0);
            tch::no_grad(|| adam.update(&mut theta, &g, step as u64, o.lr));
            // Keep the hyperparameters in a sane range (log space).
            theta = theta.clamp(-12.0, 8.0);
        }
        let factor = Factor::new(&cov(&theta), &y, "the Matérn GP kernel matrix")?;
        let e = theta.exp();
        Ok(MaternGp {
            ls: e.narrow(0, 0, d),
            scale: e.double_value(&[d]),
            noise: e.double_value(&[d + 1]) + o.min_noise,
            x,
            factor,
        })
    }

    /// Latent (noise-free) predictive mean and variance at `xs` `[m, d]`.
    pub fn predict(&self, xs: &Tensor) -> (Tensor, Tensor) {
        let xs = xs.to_kind(Kind::Double);
        let sc = Tensor::from(self.scale).to_device(xs.device());
        let cross = matern52(&self.x, &xs, &self.ls, &sc);
        let prior = Tensor::full([xs.size()[0]], self.scale, (Kind::Double, xs.device()));
        self.factor.predict(&cross, &prior)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn objectives_have_their_known_minima() {
        let opts = (Kind::Double, Device::Cpu);
        // Branin's three minimisers.
        let x = Tensor::from_slice(&[-PI, 12.275, PI, 2.275, 9.424_78, 2.475]).view([3, 2]);
        let v = Objective::Branin.eval(&x);
        for i in 0..3 {
            let got = v.double_value(&[i]);
            assert!((got - 0.397_887).abs() < 1e-5, "branin {i}: {got}");
        }
        assert!((Objective::Branin.optimum() - 0.397_887).abs() < 1e-6);
        let h = Objective::Hartmann6
            .eval(&Tensor::from_slice(&HARTMANN6_ARGMIN).view([1, 6]))
            .double_value(&[0]);
        assert!((h - -3.32237).abs() < 1e-4, "hartmann6 {h}");
        let a = Objective::Ackley10
            .eval(&Tensor::zeros([1, 10], opts))
            .double_value(&[0]);
        assert!(a.abs() < 1e-12, "ackley {a}");
        // No random point beats the optimum.
        tch::manual_seed(0);
        for obj in [Objective::Branin, Objective::Hartmann6, Objective::Ackley10] {
            let u = Tensor::rand([20_000, obj.dim()], opts);
            let m = obj.eval_unit(&u).min().double_value(&[]);
            assert!(m >= obj.optimum() - 1e-9, "{}: {m}", obj.as_str());
        }
        // The unit-cube map: the cube's corners go to the box's corners.
        let c = Objective::Branin.to_box(&Tensor::from_slice(&[0.0, 1.0]).view([1, 2]));
        assert_eq!(
            Vec::<f64>::try_from(c.view([-1])).unwrap(),
            vec![-5.0, 15.0]
        );
    }

    /// EI's closed form against a Monte-Carlo average over 400k normal draws.
    #[test]
    fn ei_closed_form_matches_monte_carlo() {
        let _g = crate::rng::serial();
        tch::manual_seed(1);
        let opts = (Kind::Double, Device::Cpu);
        let mean = Tensor::from_slice(&[0.0, 1.0, -0.5, 2.0]);
        let std = Tensor::from_slice(&[1.0, 0.5, 2.0, 0.3]);
        let best = Tensor::from(0.2);
        let exact = ei_gaussian(&mean, &std, &best);
        let z = Tensor::randn([400_000, 4], opts);
        let draws = &mean + z * &std;
        let mc = ei_draws(&draws, &best);
        for i in 0..4 {
            let (e, m) = (exact.double_value(&[i]), mc.double_value(&[i]));
            // MC standard error ≤ σ/√n·(a few) ≈ 0.005 at σ = 2.
            assert!((e - m).abs() < 0.01, "{i}: closed form {e} vs MC {m}");
        }
        // A point with mean far below the incumbent: EI ≈ best − mean.
        let far = ei_gaussian(&Tensor::from(-10.0), &Tensor::from(0.1), &best).double_value(&[]);
        assert!((far - 10.2).abs() < 1e-9, "{far}");
        // And far above: EI ≈ 0.
        let none = ei_gaussian(&Tensor::from(10.0), &Tensor::from(0.1), &best).double_value(&[]);
        assert!(none < 1e-12, "{none}");
    }

    #[test]
    fn maximize_finds_a_quadratic_peak() {
        let _g = crate::rng::serial();
        tch::manual_seed(2);
        let target = Tensor::from_slice(&[0.3, 0.7, 0.55]);
        let o = AcqOptions::default();
        let (x, v) = maximize(2, 3, &o, Device::Cpu, |x| {
            Ok(-(x - &target)
                .square()
                .sum_dim_intlist(-1, false, Kind::Double))
        })
        .unwrap();
        assert_eq!(x.size(), vec![2, 3]);
        let err = (x - target).abs().max().double_value(&[]);
        assert!(err < 0.02, "argmax off by {err}");
        assert!(v.max().double_value(&[]) <= 0.0);
    }

    /// The Matérn GP interpolates a smooth function and its latent variance shrinks at data.
    #[test]
    fn matern_gp_fits_a_smooth_function() {
        let _g = crate::rng::serial();
        tch::manual_seed(3);
        let x = Tensor::rand([30, 2], (Kind::Double, Device::Cpu));
        let f = |x: &Tensor| (x.select(1, 0) * 3.0).sin() + x.select(1, 1).square();
        let y = f(&x);
        let gp = MaternGp::fit(&x, &y, &GpFit::default()).unwrap();
        let xs = Tensor::rand([50, 2], (Kind::Double, Device::Cpu)) * 0.8 + 0.1;
        let (m, v) = gp.predict(&xs);
        let rmse = (m - f(&xs))
            .square()
            .mean(Kind::Double)
            .sqrt()
            .double_value(&[]);
        assert!(rmse < 0.05, "rmse {rmse}");
        let (_, v0) = gp.predict(&x);
        assert!(v0.max().double_value(&[]) < v.max().double_value(&[]));
        // Matérn at distance 0 is the scale.
        let k = matern52(
            &x.narrow(0, 0, 1),
            &x.narrow(0, 0, 1),
            &Tensor::ones([2], (Kind::Double, Device::Cpu)),
            &Tensor::from(2.0),
        );
        assert!((k.double_value(&[0, 0]) - 2.0).abs() < 1e-5);
    }
}
