//! `sgd-noise` (paper 24, Sclocchi, Geiger & Wyart, "Dissecting the effects of SGD noise in
//! distinct regimes of deep learning"). The predictor is f = α[F(w, x) − F(w₀, x)] with the
//! hinge loss scaled by 1/α² (so the time scale does not depend on α); α ≫ 1 is the lazy
//! regime, α ≪ 1 the feature-learning one. SGD runs at temperature T = η/B until every
//! training point has margin y·f ≥ 1 (the hinge loss is zero: the data are fitted).
//!
//! Part 1, the perceptron: F(w, x) = w·x/√d, labels y = sign(x₁), and x₁ has density
//! ∝ |x₁|^χ e^{−x₁²/2} (χ sets how many points lie near the decision boundary). For each
//! training-set size P, all temperatures train at once (one replica per T, each drawing its
//! own batches). `perceptron.csv`: P, T, steps to fit, ‖w − w₀‖, test error. T_c(P) is where
//! the noise starts to matter: the first T at which ‖w − w₀‖ exceeds `tc_factor` times its
//! low-temperature value (interpolated in log T); summary: the power law T_c ∝ P^b (R²).
//!
//! Part 2, an MLP on a parity task (even vs odd digit): test error, ‖w − w₀‖ and steps to fit
//! over the (α, T) grid (`phase.csv`, and the `phase` heatmap figure via `stochlab plot`).

use crate::config;
use crate::data::{self, DataConfig, Dataset};
use crate::experiments::children::csv_bytes;
use crate::experiments::Entry;
use crate::nn::{Activation, Mlp};
use crate::rng::{self, Stream};
use crate::run::fsutil::write_atomic;
use crate::run::metrics::{float, json_float};
use crate::run::progress::Progress;
use crate::run::{Outcome, RunContext};
use crate::stats::linear_fit;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::nn::ModuleT;
use tch::{Device, Kind, Tensor};
use toml::Table;

pub const ENTRY: Entry = Entry {
    name: "sgd-noise",
    family: "sgd",
    description: "SGD temperature T = lr/B vs training-set size and init scale (lazy vs feature)",
    paper: "Dissecting the Effects of SGD Noise in Distinct Regimes of Deep Learning",
    defaults: include_str!("../../../experiments/sgd-noise.toml"),
    normalize: config::normalize::<Config>,
    train,
    eval: None,
    information_plane: false,
    claims: CLAIMS,
    variants: &[],
    extendable: false,
    nested_runs: false,
};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Perceptron {
    pub enabled: bool,
    pub dim: i64,
    pub chi: f64,
    pub train_sizes: Vec<i64>,
    pub temperatures: Vec<f64>,
    pub alpha: f64,
    pub batch_size: i64,
    pub n_test: i64,
    /// Give up on a replica after this many steps (reported as not fitted).
    pub max_steps: i64,
    /// Margins on the training set are checked every this many steps.
    pub check_every: i64,
    pub tc_factor: f64,
}

impl Default for Perceptron {
    fn default() -> Self {
        Perceptron {
            enabled: true,
            dim: 32,
            chi: 1.0,
            train_sizes: vec![64, 128, 256, 512, 1024],
            temperatures: (0..7).map(|i| 10f64.powf(-2.0 + 0.5 * i as f64)).collect(),
            alpha: 1.0,
            batch_size: 8,
            n_test: 10000,
            max_steps: 300_000,
            check_every: 50,
            tc_factor: 1.5,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MlpPhase {
    pub enabled: bool,
    /// A classification set; the label becomes its parity (even vs odd class index).
    pub data: DataConfig,
    pub hidden: Vec<i64>,
    pub alphas: Vec<f64>,
    pub temperatures: Vec<f64>,
    pub batch_size: i64,
    pub max_epochs: usize,
}

impl Default for MlpPhase {
    fn default() -> Self {
        MlpPhase {
            enabled: true,
            data: DataConfig {
                name: "digits".into(),
                ..Default::default()
            },
            hidden: vec![128],
            alphas: vec![0.01, 0.1, 1.0, 10.0, 100.0],
            temperatures: vec![1e-4, 1e-3, 1e-2, 1e-1, 1.0],
            batch_size: 32,
            max_epochs: 150,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub perceptron: Perceptron,
    pub mlp: MlpPhase,
}

impl config::Check for Config {
    fn check(&self) -> Result<()> {
        let p = &self.perceptron;
        if p.dim < 2 || p.chi <= -1.0 || p.batch_size < 1 || p.n_test < 1 || p.check_every < 1 {
            bail!("perceptron: dim >= 2, chi > -1, batch_size, n_test and check_every >= 1");
        }
        let m = &self.mlp;
        let positive = |v: &[f64]| v.iter().all(|&t| t > 0.0);
        if !positive(&p.temperatures)
            || !positive(&m.temperatures)
            || !positive(&m.alphas)
            || p.alpha <= 0.0
        {
            bail!("temperatures and alphas must be positive");
        }
        if p.train_sizes.iter().any(|&n| n < 2) || m.batch_size < 1 || m.max_epochs == 0 {
            bail!("perceptron.train_sizes >= 2, mlp.batch_size and mlp.max_epochs >= 1");
        }
        m.data.check()
    }
}

/// x₁ with density ∝ |x₁|^χ e^{−x₁²/2}: x₁²/2 ~ Gamma((χ+1)/2), random sign.
fn boundary_coordinate(n: i64, chi: f64) -> Tensor {
    let shape = Tensor::full([n], (chi + 1.0) / 2.0, (Kind::Double, Device::Cpu));
    let r = (shape.internal_standard_gamma() * 2.0).sqrt();
    let sign = Tensor::randint(2, [n], (Kind::Double, Device::Cpu)) * 2.0 - 1.0;
    r * sign
}

/// Samples (x [n, d], y [n] in ±1) of the perceptron task.
fn perceptron_data(n: i64, p: &Perceptron) -> (Tensor, Tensor) {
    let x = Tensor::randn([n, p.dim], (Kind::Double, Device::Cpu));
    let x1 = boundary_coordinate(n, p.chi);
    let x = Tensor::cat(&[x1.unsqueeze(1), x.narrow(1, 1, p.dim - 1)], 1);
    let y = x1.sign();
    (x, y)
}

/// Per replica: steps to fit (or -1), ‖w − w₀‖, test error.
struct Replica {
    steps: i64,
    dist: f64,
    test_err: f64,
}

/// Trains one perceptron replica per temperature on the same P points, all at once.
fn perceptron_replicas(p: &Perceptron, n: i64, device: Device) -> Vec<Replica> {
    let (x, y) = perceptron_data(n, p);
    let (xt, yt) = perceptron_data(p.n_test, p);
    let (x, y, xt, yt) = (
        x.to_device(device),
        y.to_device(device),
        xt.to_device(device),
        yt.to_device(device),
    );
    let s = p.temperatures.len() as i64;
    let sqrt_d = (p.dim as f64).sqrt();
    let w0 = Tensor::randn([p.dim], (Kind::Double, Device::Cpu)).to_device(device);
    let mut w = w0.unsqueeze(0).repeat([s, 1]);
    let lr: Vec<f64> = p
        .temperatures
        .iter()
        .map(|t| t * p.batch_size as f64)
        .collect();
    let lr = Tensor::from_slice(&lr).to_device(device).unsqueeze(1);
    let mut active = Tensor::ones([s, 1], (Kind::Double, device));
    let mut steps = vec![-1i64; s as usize];
    let margins =
        |w: &Tensor, x: &Tensor, y: &Tensor| (w - &w0).matmul(&x.tr()) * y * (p.alpha / sqrt_d);
    let mut t = 0;
    while t < p.max_steps {
        for _ in 0..p.check_every {
            let idx =
                Tensor::randint(n, [s, p.batch_size], (Kind::Int64, Device::Cpu)).to_device(device);
            let (xb, yb) = (
                x.index_select(0, &idx.flatten(0, -1))
                    .view([s, p.batch_size, p.dim]),
                y.index_select(0, &idx.flatten(0, -1))
                    .view([s, p.batch_size]),
            );
            let m = (&w - &w0)
                .unsqueeze(1)
                .matmul(&xb.transpose(1, 2))
                .squeeze_dim(1)
                * &yb
                * (p.alpha / sqrt_d);
            // d/dw of (1/α²)·mean max(0, 1 − m) = −(1/α)·mean over active points of y x/√d.
            let hit = m.lt(1.0).to_kind(Kind::Double) * yb;
            let grad = hit.unsqueeze(1).matmul(&xb).squeeze_dim(1)
                * (-1.0 / (p.alpha * sqrt_d * p.batch_size as f64));
            w -= grad * &lr * &active;
        }
        t += p.check_every;
        let fitted = margins(&w, &x, &y).min_dim(1, false).0.ge(1.0);
        let fitted: Vec<bool> = Vec::try_from(fitted.to_device(Device::Cpu)).unwrap_or_default();
        for (i, &f) in fitted.iter().enumerate() {
            if f && steps[i] < 0 {
                steps[i] = t;
            }
        }
        active = Tensor::from_slice(
            &fitted
                .iter()
                .map(|&f| if f { 0.0 } else { 1.0 })
                .collect::<Vec<f64>>(),
        )
        .to_device(device)
        .unsqueeze(1);
        if fitted.iter().all(|&f| f) {
            break;
        }
    }
    let dist: Vec<f64> = Vec::try_from(
        (&w - &w0)
            .norm_scalaropt_dim(2, [1i64].as_slice(), false)
            .to_device(Device::Cpu),
    )
    .unwrap_or_default();
    let err: Vec<f64> = Vec::try_from(
        margins(&w, &xt, &yt)
            .le(0.0)
            .to_kind(Kind::Double)
            .mean_dim(1, false, Kind::Double)
            .to_device(Device::Cpu),
    )
    .unwrap_or_default();
    (0..s as usize)
        .map(|i| Replica {
            steps: steps[i],
            dist: dist[i],
            test_err: err[i],
        })
        .collect()
}

/// The first temperature where `dist` exceeds `factor`× its value at the lowest temperature,
/// interpolated linearly in (log T, dist); NaN if it never does. Only replicas that fitted
/// their training set count (an unfinished run's ‖w − w₀‖ is not its final value).
fn critical_temperature(temps: &[f64], dist: &[f64], fitted: &[bool], factor: f64) -> f64 {
    let pts: Vec<(f64, f64)> = temps
        .iter()
        .zip(dist)
        .zip(fitted)
        .filter(|(_, &f)| f)
        .map(|((&t, &d), _)| (t, d))
        .collect();
    let Some(&(_, base)) = pts.first() else {
        return f64::NAN;
    };
    let target = factor * base;
    for w in pts.windows(2) {
        let ((t0, d0), (t1, d1)) = (w[0], w[1]);
        if d1 >= target {
            let frac = (target - d0) / (d1 - d0);
            return (t0.ln() + frac * (t1.ln() - t0.ln())).exp();
        }
    }
    f64::NAN
}

/// Part 1's summary rows and headline numbers (the power law T_c ∝ P^b).
fn part1(
    cfg: &Perceptron,
    ctx: &mut RunContext,
) -> Result<(Vec<Vec<String>>, crate::run::FinalMetrics)> {
    let mut rows = vec![];
    let mut tc = vec![];
    let mut progress = Progress::new(
        "sgd-noise perceptron",
        cfg.train_sizes.len() as u64,
        ctx.quiet,
    );
    for (pi, &n) in cfg.train_sizes.iter().enumerate() {
        rng::reseed(ctx.seed, Stream::Data, pi as u64, 0);
        let reps = perceptron_replicas(cfg, n, ctx.device);
        for (t, r) in cfg.temperatures.iter().zip(&reps) {
            rows.push(vec![
                n.to_string(),
                float(*t),
                r.steps.to_string(),
                float(r.dist),
                float(r.test_err),
            ]);
            ctx.log(vec![
                "perceptron".into(),
                n.into(),
                cfg.alpha.into(),
                (*t).into(),
                r.steps.into(),
                r.dist.into(),
                r.test_err.into(),
            ])?;
        }
        let dists: Vec<f64> = reps.iter().map(|r| r.dist).collect();
        let fitted: Vec<bool> = reps.iter().map(|r| r.steps > 0).collect();
        tc.push((
            n,
            critical_temperature(&cfg.temperatures, &dists, &fitted, cfg.tc_factor),
        ));
        progress.update(pi as u64 + 1, &format!("P={n}"));
    }
    progress.finish();
    let cols = ["P", "T", "steps_to_fit", "dist_from_init", "test_err"];
    write_atomic(&ctx.dir.join("perceptron.csv"), &csv_bytes(&cols, &rows)?)?;
    let (lp, lt): (Vec<f64>, Vec<f64>) = tc.iter().map(|(n, t)| ((*n as f64).ln(), t.ln())).unzip();
    let fit = linear_fit(&lp, &lt);
    let mut summary: Vec<Vec<String>> = tc
        .iter()
        .map(|(n, t)| {
            vec![
                format!("T_c at P={n}"),
                float(*t),
                String::new(),
                String::new(),
            ]
        })
        .collect();
    summary.push(vec![
        "log T_c vs log P".into(),
        float(fit.intercept),
        float(fit.slope),
        float(fit.r2),
    ]);
    let mut headline = serde_json::Map::new();
    headline.insert("tc_power".into(), json_float(fit.slope));
    headline.insert("tc_power_r2".into(), json_float(fit.r2));
    headline.insert("tc_points".into(), fit.n.into());
    Ok((summary, headline))
}

/// An MLP trained at (α, T): (steps to fit or -1, ‖w − w₀‖, test error).
fn phase_point(
    cfg: &MlpPhase,
    data: &Dataset,
    alpha: f64,
    temp: f64,
    ctx: &RunContext,
) -> Result<(i64, f64, f64)> {
    let d_in: i64 = data.input_shape.iter().product();
    let (vs, net) = crate::nn::build_on(ctx.seed, ctx.device, |p| {
        Ok(Mlp::new(p, d_in, &cfg.hidden, 1, Activation::Relu, 0.0))
    })?;
    let params: Vec<Tensor> = crate::optim::trainable(&vs)
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    let w0: Vec<Tensor> = params.iter().map(|t| t.detach().copy()).collect();
    let parity = |y: &Tensor| (y.remainder(2).to_kind(Kind::Float) * 2.0 - 1.0).view([-1]);
    let (ytr, yte) = (parity(&data.train.y), parity(&data.test.y));
    // F(w₀, x) is fixed: computed once.
    let (f0tr, f0te) = tch::no_grad(|| {
        (
            net.forward_t(&data.train.x, false).view([-1]),
            net.forward_t(&data.test.x, false).view([-1]),
        )
    });
    let f = |x: &Tensor, f0: &Tensor| (net.forward_t(x, false).view([-1]) - f0) * alpha;
    let lr = temp * cfg.batch_size as f64;
    let mut fitted_at = -1;
    let mut steps = 0i64;
    for epoch in 0..cfg.max_epochs {
        rng::reseed(ctx.seed, Stream::Shuffle, epoch as u64, 0);
        for idx in data.train.batches(cfg.batch_size, true, false) {
            let x = data.train.x.index_select(0, &idx);
            let margin = f(&x, &f0tr.index_select(0, &idx)) * ytr.index_select(0, &idx);
            let loss = (-margin + 1.0).relu().mean(Kind::Float) / (alpha * alpha);
            let grads = Tensor::run_backward(&[loss], &params, false, false);
            tch::no_grad(|| {
                for (p, g) in params.iter().zip(&grads) {
                    let _ = p.shallow_clone().g_sub_(&(g * lr));
                }
            });
            steps += 1;
        }
        let margins = tch::no_grad(|| f(&data.train.x, &f0tr) * &ytr);
        let min_margin = margins.min().double_value(&[]);
        // Blown up (too large a step for this α): stop and report it as not fitted.
        if !min_margin.is_finite() || margins.abs().max().double_value(&[]) > 1e6 {
            break;
        }
        if min_margin >= 1.0 {
            fitted_at = steps;
            break;
        }
    }
    let dist = tch::no_grad(|| {
        params
            .iter()
            .zip(&w0)
            .map(|(p, q)| (p - q).square().sum(Kind::Double).double_value(&[]))
            .sum::<f64>()
            .sqrt()
    });
    let err = tch::no_grad(|| {
        (f(&data.test.x, &f0te) * &yte)
            .le(0.0)
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[])
    });
    Ok((fitted_at, dist, err))
}

/// Part 2; adds its headline numbers (test error range over the grid, points fitted) to
/// `headline` when it finishes.
fn part2(
    cfg: &MlpPhase,
    ctx: &mut RunContext,
    headline: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<Option<Outcome>> {
    let data = data::load(&cfg.data, &ctx.data_dir, ctx.device, ctx.seed)?;
    let mut rows = vec![];
    let mut errs = vec![];
    let mut fitted = 0usize;
    let total = (cfg.alphas.len() * cfg.temperatures.len()) as u64;
    let mut progress = Progress::new("sgd-noise mlp", total, ctx.quiet);
    for &a in &cfg.alphas {
        for &t in &cfg.temperatures {
            let (steps, dist, err) = phase_point(cfg, &data, a, t, ctx)?;
            errs.push(err);
            fitted += usize::from(steps > 0);
            rows.push(vec![
                float(a),
                float(t),
                steps.to_string(),
                float(dist),
                float(err),
            ]);
            ctx.log(vec![
                "mlp".into(),
                data.train.len().into(),
                a.into(),
                t.into(),
                steps.into(),
                dist.into(),
                err.into(),
            ])?;
            progress.update(rows.len() as u64, &format!("alpha={a} T={t} err={err:.3}"));
            if let Some(sig) = ctx.interrupt.requested() {
                progress.finish();
                return Ok(Some(Outcome::Interrupted(sig)));
            }
        }
    }
    progress.finish();
    let cols = ["alpha", "T", "steps_to_fit", "dist_from_init", "test_err"];
    write_atomic(&ctx.dir.join("phase.csv"), &csv_bytes(&cols, &rows)?)?;
    let finite = errs.iter().copied().filter(|e| e.is_finite());
    headline.insert(
        "mlp_test_err_min".into(),
        json_float(finite.clone().fold(f64::INFINITY, f64::min)),
    );
    headline.insert(
        "mlp_test_err_max".into(),
        json_float(finite.fold(f64::NEG_INFINITY, f64::max)),
    );
    headline.insert("mlp_points_fitted".into(), fitted.into());
    headline.insert("mlp_points".into(), errs.len().into());
    Ok(None)
}

fn train(table: &Table, ctx: &mut RunContext) -> Result<Outcome> {
    let cfg: Config = config::typed(table)?;
    ctx.open_metrics(&[
        "part",
        "P",
        "alpha",
        "T",
        "steps_to_fit",
        "dist_from_init",
        "test_err",
    ])?;
    let mut summary = vec![];
    let mut headline = serde_json::Map::new();
    if cfg.perceptron.enabled {
        (summary, headline) = part1(&cfg.perceptron, ctx)?;
    }
    write_atomic(
        &ctx.dir.join("summary.csv"),
        &csv_bytes(&["quantity", "value_or_intercept", "slope", "r2"], &summary)?,
    )?;
    if cfg.mlp.enabled {
        if let Some(stopped) = part2(&cfg.mlp, ctx, &mut headline)? {
            return Ok(stopped);
        }
    }
    ctx.set_final_metrics(headline);
    Ok(Outcome::Completed)
}

use crate::claims::{self, Claim, Expect, Measured, RunFiles, Scale};

const CLAIMS: &[Claim] = &[
    Claim {
        id: "tc-power-law",
        statement: "the critical temperature follows a power law in the training-set size: R² of log T_c against log P (threshold 0.9 from the issue)",
        paper: "T_c ∝ P^(−a)",
        expect: Expect::AtLeast(0.9),
        unit: "R²",
        scale: Scale::Both,
        variant: None,
        measure: tc_power_law,
    },
    Claim {
        id: "non-monotonic",
        statement: "test error over (α, T) is non-monotonic in T for some α: largest interior dip or bump of test error along T (threshold 1 point = 0.01: ours, about the test-set noise)",
        paper: "non-monotonic in T",
        expect: Expect::AtLeast(0.01),
        unit: "fraction",
        scale: Scale::Both,
        variant: None,
        measure: non_monotonic,
    },
];

fn tc_power_law(f: &RunFiles) -> Result<Measured> {
    if f.cfg_bool("perceptron.enabled") == Some(false) {
        return Ok(Measured::NotApplicable(
            "the perceptron part is switched off (perceptron.enabled = false)".into(),
        ));
    }
    let t = f.csv("summary.csv")?;
    claims::value(t.number("r2", &[("quantity", "log T_c vs log P")])?)
}

/// The deepest interior extremum of a sequence: for each inner point, how far it sits below
/// (or above) the highest (lowest) values on both sides; 0 for a monotonic sequence.
pub fn interior_extremum(v: &[f64]) -> f64 {
    let mut best: f64 = 0.0;
    for i in 1..v.len().saturating_sub(1) {
        let (l, r) = (&v[..i], &v[i + 1..]);
        let max = |s: &[f64]| s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let min = |s: &[f64]| s.iter().copied().fold(f64::INFINITY, f64::min);
        let dip = (max(l) - v[i]).min(max(r) - v[i]);
        let bump = (v[i] - min(l)).min(v[i] - min(r));
        best = best.max(dip).max(bump);
    }
    best
}

fn non_monotonic(f: &RunFiles) -> Result<Measured> {
    if f.cfg_bool("mlp.enabled") == Some(false) {
        return Ok(Measured::NotApplicable(
            "the MLP part is switched off (mlp.enabled = false)".into(),
        ));
    }
    let t = f.csv("phase.csv")?;
    let mut best: f64 = 0.0;
    for a in t.distinct("alpha")? {
        let curve = claims::mean_by(&t, "T", "test_err", &[("alpha", &a)])?;
        let errs: Vec<f64> = curve.iter().map(|p| p.1).collect();
        best = best.max(interior_extremum(&errs));
    }
    claims::value(best)
}

#[cfg(test)]
mod claim_tests {
    use super::interior_extremum;

    #[test]
    fn interior_extremum_is_zero_for_monotonic_and_the_depth_of_a_dip() {
        assert_eq!(interior_extremum(&[1.0, 2.0, 3.0]), 0.0);
        assert_eq!(interior_extremum(&[3.0, 2.0, 2.0, 1.0]), 0.0);
        // A dip of 2 below the smaller of its two sides.
        assert_eq!(interior_extremum(&[5.0, 1.0, 3.0]), 2.0);
        // A bump: 4 sits 3 above the larger of the lows on both sides.
        assert_eq!(interior_extremum(&[1.0, 4.0, 0.0]), 3.0);
        assert_eq!(interior_extremum(&[1.0]), 0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_model_is_zero_at_initialisation_and_data_have_the_density_asked() {
        let _rng = crate::rng::serial();
        tch::manual_seed(0);
        let p = Perceptron {
            chi: 2.0,
            ..Default::default()
        };
        let (x, y) = perceptron_data(20000, &p);
        assert!(y.eq_tensor(&x.select(1, 0).sign()).all().int64_value(&[]) == 1);
        // E[x₁²] for density ∝ |x|^χ e^{−x²/2} is χ + 1.
        let m2 = x.select(1, 0).square().mean(Kind::Double).double_value(&[]);
        assert!((m2 - 3.0).abs() < 0.1, "{m2}");
        // A replica that never steps (max_steps 0) stays at w₀: f = 0, every margin 0, error ½.
        let q = Perceptron {
            max_steps: 0,
            temperatures: vec![0.1],
            n_test: 4000,
            ..p
        };
        let r = &perceptron_replicas(&q, 64, Device::Cpu)[0];
        assert_eq!((r.steps, r.dist), (-1, 0.0));
        assert!(
            (r.test_err - 1.0).abs() < 1e-12,
            "f = 0 everywhere: every margin is 0, counted as an error"
        );
        let all = [true; 3];
        let tc = critical_temperature(&[1.0, 10.0, 100.0], &[1.0, 1.0, 3.0], &all, 2.0);
        assert!((tc - 10f64.powf(1.5)).abs() < 1e-9);
        assert!(critical_temperature(&[1.0, 10.0], &[1.0, 1.2], &all[..2], 2.0).is_nan());
        // An unfitted low-temperature replica is not the reference.
        let tc = critical_temperature(
            &[0.1, 1.0, 10.0, 100.0],
            &[0.2, 1.0, 1.0, 3.0],
            &[false, true, true, true],
            2.0,
        );
        assert!((tc - 10f64.powf(1.5)).abs() < 1e-9);
    }

    #[test]
    fn perceptron_fits_its_training_set() {
        let _rng = crate::rng::serial();
        tch::manual_seed(1);
        let p = Perceptron {
            temperatures: vec![0.01, 0.1],
            ..Default::default()
        };
        for r in perceptron_replicas(&p, 64, Device::Cpu) {
            assert!(
                r.steps > 0 && r.dist > 0.0 && r.test_err < 0.3,
                "steps {} err {}",
                r.steps,
                r.test_err
            );
        }
    }
}

// ---- The paper's claims (Sclocchi et al., Dissecting the effects of SGD noise) -------------
