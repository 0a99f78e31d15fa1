//! `lr-batch` (paper 22, Granziol et al., "Learning rates as a function of batch size: a
//! random matrix theory approach to neural network training"). The mini-batch Hessian is the
//! full Hessian plus a fluctuation whose spectral edge shrinks like 1/B, so its top eigenvalue
//! behaves as λ_max(H_B) ≈ a + c/B; the largest stable learning rate follows 1/λ_max. The
//! paper derives that the best learning rate grows linearly in B for SGD and like √B for
//! adaptive methods.
//!
//! Part 1, curvature: an MLP is trained with SGD; at each epoch in `hessian.epochs`,
//! λ_max(H_B) by power iteration on Hessian-vector products for each B in `hessian.batch_sizes`
//! (mean ± std over `hessian.batches` random batches) and for the full training set
//! (`hessian.csv`, also metrics.csv).
//! Part 2, learning rates: from the same initial weights, every (optimizer, B, learning rate)
//! of the grid is trained for `grid.epochs` epochs (`grid.csv`). Per (optimizer, B): the best
//! rate (lowest final training loss: the optimisation question the theory answers; test loss
//! is flat over a wide band of rates on small sets) and the largest stable rate (the largest
//! whose final training loss is finite and below its starting value).
//! summary.csv: the fit λ_max = a + c/B per epoch (R²), and the log–log slopes of the best and
//! the largest stable learning rate against B, per optimizer (R²).

use crate::config;
use crate::data::{self, DataConfig, Dataset};
use crate::experiments::children::csv_bytes;
use crate::experiments::Entry;
use crate::nn::{self as models, ModelConfig};
use crate::optim::{OptimConfig, OptimName, Optimizer};
use crate::rng::{self, Stream};
use crate::run::fsutil::write_atomic;
use crate::run::metrics::{float, json_float, mean_std};
use crate::run::{Outcome, RunContext};
use crate::stats::linear_fit;
use crate::train::curvature::{operator, Matrix};
use crate::train::spectrum::power_top_k;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{ModuleT, VarStore};
use tch::{Kind, Tensor};
use toml::Table;

pub const ENTRY: Entry = Entry {
    name: "lr-batch",
    family: "sgd",
    description: "Top Hessian eigenvalue vs batch size, and the best learning rate vs batch size",
    paper: "Learning Rates as a Function of Batch Size: A Random Matrix Theory Approach to Neural Network Training",
    defaults: include_str!("../../../experiments/lr-batch.toml"),
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
pub struct HessianConfig {
    /// Epochs (of the SGD run) at which the spectrum is measured; 0 = at initialisation.
    pub epochs: Vec<usize>,
    pub batch_sizes: Vec<i64>,
    /// Random batches per batch size.
    pub batches: usize,
    pub power_iters: usize,
    pub tol: f64,
    /// Learning rate, batch size and optimizer of the run the spectrum is measured on.
    pub lr: f64,
    pub batch_size: i64,
}

impl Default for HessianConfig {
    fn default() -> Self {
        HessianConfig {
            epochs: vec![0, 5, 20],
            batch_sizes: vec![8, 16, 32, 64, 128, 256, 512, 1024],
            batches: 10,
            power_iters: 50,
            tol: 1e-4,
            lr: 0.05,
            batch_size: 32,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GridConfig {
    pub optimizers: Vec<OptimName>,
    pub batch_sizes: Vec<i64>,
    pub sgd_lrs: Vec<f64>,
    pub adam_lrs: Vec<f64>,
    pub epochs: usize,
    /// SGD momentum in the grid (0 = plain SGD, as the theory assumes).
    pub momentum: f64,
}

impl Default for GridConfig {
    fn default() -> Self {
        let geometric = |lo: f64, hi: f64, n: usize| -> Vec<f64> {
            (0..n)
                .map(|i| lo * (hi / lo).powf(i as f64 / (n - 1) as f64))
                .collect()
        };
        GridConfig {
            optimizers: vec![OptimName::Sgd, OptimName::Adam],
            batch_sizes: vec![16, 32, 64, 128, 256, 512],
            sgd_lrs: geometric(1e-3, 10.0, 17),
            adam_lrs: geometric(1e-5, 1e-1, 17),
            epochs: 20,
            momentum: 0.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub data: DataConfig,
    pub model: ModelConfig,
    pub hessian: HessianConfig,
    pub grid: GridConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data: DataConfig {
                name: "digits".into(),
                ..Default::default()
            },
            model: ModelConfig {
                hidden: vec![64, 64],
                ..Default::default()
            },
            hessian: HessianConfig::default(),
            grid: GridConfig::default(),
        }
    }
}

impl config::Check for Config {
    fn check(&self) -> Result<()> {
        self.data.check()?;
        self.model.check()?;
        let (h, g) = (&self.hessian, &self.grid);
        if h.batch_sizes.iter().chain(&g.batch_sizes).any(|&b| b < 1) || h.batch_size < 1 {
            bail!("batch sizes must be positive");
        }
        if h.batches == 0 || h.power_iters == 0 || h.lr <= 0.0 {
            bail!("hessian.batches and hessian.power_iters must be >= 1, hessian.lr > 0");
        }
        if g.epochs == 0 || g.sgd_lrs.iter().chain(&g.adam_lrs).any(|&l| l <= 0.0) {
            bail!("grid.epochs must be >= 1 and every learning rate positive");
        }
        if g.optimizers
            .iter()
            .any(|o| !matches!(o, OptimName::Sgd | OptimName::Adam))
        {
            bail!("grid.optimizers takes sgd and adam");
        }
        Ok(())
    }
}

/// A fresh model from the run seed (every grid run starts from the same weights).
fn model(cfg: &Config, data: &Dataset, ctx: &RunContext) -> Result<(VarStore, Box<dyn ModuleT>)> {
    models::build_classifier(
        &cfg.model,
        &data.input_shape,
        data.n_classes,
        ctx.device,
        ctx.seed,
    )
}

fn optimizer(vs: &VarStore, name: OptimName, lr: f64, momentum: f64) -> Result<Optimizer> {
    Optimizer::new(
        crate::optim::trainable(vs),
        &OptimConfig {
            name,
            lr,
            momentum: if name == OptimName::Sgd {
                momentum
            } else {
                0.0
            },
            ..Default::default()
        },
    )
}

/// One epoch of shuffled mini-batches; returns the mean training loss (NaN if it diverged).
fn epoch(
    model: &dyn ModuleT,
    opt: &mut Optimizer,
    data: &Dataset,
    batch: i64,
    seed: u64,
    e: usize,
) -> f64 {
    rng::reseed(seed, Stream::Shuffle, e as u64, batch as u64);
    let mut losses = vec![];
    for idx in data.train.batches(batch, true, false) {
        let (x, y) = data.train.take(&idx);
        losses.push(crate::train::train_step(model, opt, &x, &y).0);
    }
    Tensor::stack(&losses, 0)
        .mean(Kind::Double)
        .double_value(&[])
}

/// λ_max of the Hessian of the mean loss over rows `idx` (chunks of at most 2048 rows), by
/// power iteration.
fn top_eigenvalue(
    model: &dyn ModuleT,
    vs: &VarStore,
    data: &Dataset,
    idx: &Tensor,
    cfg: &HessianConfig,
) -> f64 {
    let op = operator(Matrix::Hessian, model, vs, &data.train, Some(idx), 2048);
    power_top_k(op.as_ref(), 1, cfg.tol, cfg.power_iters).values[0]
}

/// Part 1: hessian.csv rows (epoch, batch, n, mean, std) while training the SGD model.
fn curvature(
    cfg: &Config,
    data: &Dataset,
    ctx: &mut RunContext,
) -> Result<Vec<(usize, i64, Vec<f64>)>> {
    let h = &cfg.hessian;
    let (vs, net) = model(cfg, data, ctx)?;
    let mut opt = optimizer(&vs, OptimName::Sgd, h.lr, 0.0)?;
    let n = data.train.len();
    let last = h.epochs.iter().copied().max().unwrap_or(0);
    let mut out = vec![];
    for e in 0..=last {
        if h.epochs.contains(&e) {
            for &b in h.batch_sizes.iter().filter(|&&b| b < n).chain([&n]) {
                let draws = if b == n { 1 } else { h.batches };
                let lams: Vec<f64> = (0..draws)
                    .map(|i| {
                        rng::reseed(ctx.seed, Stream::Data, (e * 1000 + i) as u64, b as u64);
                        let idx = Tensor::randperm(n, (Kind::Int64, tch::Device::Cpu))
                            .narrow(0, 0, b)
                            .to_device(ctx.device);
                        top_eigenvalue(net.as_ref(), &vs, data, &idx, h)
                    })
                    .collect();
                let (m, s) = mean_std(&lams);
                ctx.log(vec![
                    e.into(),
                    b.into(),
                    lams.len().into(),
                    m.into(),
                    s.into(),
                ])?;
                out.push((e, b, lams));
            }
        }
        if e < last {
            let loss = epoch(net.as_ref(), &mut opt, data, h.batch_size, ctx.seed, e);
            if !loss.is_finite() {
                bail!(
                    "the SGD run for the spectrum diverged at epoch {}: lower hessian.lr",
                    e + 1
                );
            }
        }
    }
    Ok(out)
}

/// One grid run: (final train loss, test loss, test accuracy, diverged).
fn grid_run(
    cfg: &Config,
    data: &Dataset,
    ctx: &RunContext,
    o: OptimName,
    b: i64,
    lr: f64,
) -> Result<(f64, f64, f64, bool)> {
    let (vs, net) = model(cfg, data, ctx)?;
    let mut opt = optimizer(&vs, o, lr, cfg.grid.momentum)?;
    let (start, _) = crate::train::evaluate(net.as_ref(), &data.train, 4096);
    let mut loss = start;
    for e in 0..cfg.grid.epochs {
        loss = epoch(net.as_ref(), &mut opt, data, b, ctx.seed, e);
        // Diverged: not finite, or far above where it started.
        if !loss.is_finite() || loss > 10.0 * start {
            return Ok((loss, f64::NAN, f64::NAN, true));
        }
    }
    let (test_loss, test_acc) = crate::train::evaluate(net.as_ref(), &data.test, 4096);
    Ok((loss, test_loss, test_acc, loss >= start))
}

fn train(table: &Table, ctx: &mut RunContext) -> Result<Outcome> {
    let cfg: Config = config::typed(table)?;
    let data = data::load(&cfg.data, &ctx.data_dir, ctx.device, ctx.seed)?;
    ctx.open_metrics(&[
        "epoch",
        "batch_size",
        "batches",
        "lambda_max_mean",
        "lambda_max_std",
    ])?;
    let spectrum = curvature(&cfg, &data, ctx)?;
    let hcsv: Vec<Vec<String>> = spectrum
        .iter()
        .map(|(e, b, l)| {
            let (m, s) = mean_std(l);
            vec![
                e.to_string(),
                b.to_string(),
                l.len().to_string(),
                float(m),
                float(s),
            ]
        })
        .collect();
    let hcols = [
        "epoch",
        "batch_size",
        "batches",
        "lambda_max_mean",
        "lambda_max_std",
    ];
    write_atomic(&ctx.dir.join("hessian.csv"), &csv_bytes(&hcols, &hcsv)?)?;

    let mut grid = vec![];
    let mut progress = crate::run::progress::Progress::new(
        "lr-batch grid",
        cfg.grid.optimizers.len() as u64,
        ctx.quiet,
    );
    for (oi, &o) in cfg.grid.optimizers.iter().enumerate() {
        let lrs = if o == OptimName::Sgd {
            &cfg.grid.sgd_lrs
        } else {
            &cfg.grid.adam_lrs
        };
        for &b in &cfg.grid.batch_sizes {
            for &lr in lrs {
                let r = grid_run(&cfg, &data, ctx, o, b, lr)?;
                grid.push((o, b, lr, r));
                if let Some(sig) = ctx.interrupt.requested() {
                    progress.finish();
                    return Ok(Outcome::Interrupted(sig));
                }
            }
        }
        progress.update(oi as u64 + 1, o.as_str());
    }
    progress.finish();
    let gcsv: Vec<Vec<String>> = grid
        .iter()
        .map(|(o, b, lr, (tl, l, a, div))| {
            vec![
                o.as_str().into(),
                b.to_string(),
                float(*lr),
                float(*tl),
                float(*l),
                float(*a),
                div.to_string(),
            ]
        })
        .collect();
    let gcols = [
        "optimizer",
        "batch_size",
        "lr",
        "final_train_loss",
        "test_loss",
        "test_acc",
        "diverged",
    ];
    write_atomic(&ctx.dir.join("grid.csv"), &csv_bytes(&gcols, &gcsv)?)?;
    summarise(&cfg, ctx, &spectrum, &grid)?;
    Ok(Outcome::Completed)
}

type GridRow = (OptimName, i64, f64, (f64, f64, f64, bool));

fn summarise(
    cfg: &Config,
    ctx: &mut RunContext,
    spectrum: &[(usize, i64, Vec<f64>)],
    grid: &[GridRow],
) -> Result<()> {
    let mut rows: Vec<Vec<String>> = vec![];
    let mut finals = serde_json::Map::new();
    for &e in &cfg.hessian.epochs {
        let pts: Vec<(f64, f64)> = spectrum
            .iter()
            .filter(|s| s.0 == e)
            .map(|(_, b, l)| (1.0 / *b as f64, mean_std(l).0))
            .collect();
        let fit = linear_fit(
            &pts.iter().map(|p| p.0).collect::<Vec<_>>(),
            &pts.iter().map(|p| p.1).collect::<Vec<_>>(),
        );
        rows.push(vec![
            format!("lambda_max = a + c/B, epoch {e}"),
            float(fit.intercept),
            float(fit.slope),
            float(fit.r2),
            fit.n.to_string(),
        ]);
        finals.insert(format!("lambda_fit_c_epoch{e}"), json_float(fit.slope));
        finals.insert(format!("lambda_fit_r2_epoch{e}"), json_float(fit.r2));
    }
    for &o in &cfg.grid.optimizers {
        let (mut logb, mut best, mut stable) = (vec![], vec![], vec![]);
        for &b in &cfg.grid.batch_sizes {
            let runs: Vec<&GridRow> = grid
                .iter()
                .filter(|g| g.0 == o && g.1 == b && !g.3 .3)
                .collect();
            let Some(top) = runs.iter().min_by(|x, y| x.3 .0.total_cmp(&y.3 .0)) else {
                continue;
            };
            logb.push((b as f64).ln());
            best.push(top.2.ln());
            stable.push(runs.iter().map(|g| g.2).fold(f64::MIN, f64::max).ln());
        }
        for (what, ys) in [("best lr", &best), ("largest stable lr", &stable)] {
            let fit = linear_fit(&logb, ys);
            rows.push(vec![
                format!("log {what} vs log B, {}", o.as_str()),
                float(fit.intercept),
                float(fit.slope),
                float(fit.r2),
                fit.n.to_string(),
            ]);
            if what == "best lr" {
                finals.insert(
                    format!("{}_best_lr_slope", o.as_str()),
                    json_float(fit.slope),
                );
            }
        }
    }
    let cols = ["fit", "intercept", "slope", "r2", "points"];
    write_atomic(&ctx.dir.join("summary.csv"), &csv_bytes(&cols, &rows)?)?;
    ctx.set_final_metrics(finals);
    Ok(())
}

// ---- The paper's claims (Granziol et al., learning rates as a function of batch size) -----

use crate::claims::{self, Claim, Expect, Measured, RunFiles, Scale};

const CLAIMS: &[Claim] = &[
    Claim {
        id: "curvature-fit",
        statement: "the mini-batch Hessian's top eigenvalue follows λ_max(H_B) = a + c/B: smallest R² of the fit over the logged epochs (threshold 0.9 from the issue)",
        paper: "λ_max(H_B) ≈ λ_max(H) + c/B",
        expect: Expect::AtLeast(0.9),
        unit: "R²",
        scale: Scale::Both,
        variant: None,
        measure: curvature_fit,
    },
    Claim {
        id: "sgd-best-lr-slope",
        statement: "SGD's best learning rate scales linearly with B: log–log slope of the lowest-train-loss lr against B (1 ± 0.25 from the issue)",
        paper: "slope 1",
        expect: Expect::Within(0.75, 1.25),
        unit: "slope",
        scale: Scale::Both,
        variant: None,
        measure: sgd_best,
    },
    Claim {
        id: "sgd-stable-lr-slope",
        statement: "SGD's largest stable learning rate scales linearly with B: log–log slope against B (1 ± 0.25 from the issue)",
        paper: "slope 1",
        expect: Expect::Within(0.75, 1.25),
        unit: "slope",
        scale: Scale::Both,
        variant: None,
        measure: sgd_stable,
    },
    Claim {
        id: "adam-best-lr-slope",
        statement: "Adam's best learning rate scales with √B: log–log slope of the lowest-train-loss lr against B (0.5 ± 0.25 from the issue)",
        paper: "slope 0.5",
        expect: Expect::Within(0.25, 0.75),
        unit: "slope",
        scale: Scale::Both,
        variant: None,
        measure: adam_best,
    },
    Claim {
        id: "adam-stable-lr-slope",
        statement: "Adam's largest stable learning rate scales with √B: log–log slope against B (0.5 ± 0.25 from the issue)",
        paper: "slope 0.5",
        expect: Expect::Within(0.25, 0.75),
        unit: "slope",
        scale: Scale::Both,
        variant: None,
        measure: adam_stable,
    },
];

fn curvature_fit(f: &RunFiles) -> Result<Measured> {
    let t = f.csv("summary.csv")?;
    let (fit, r2) = (t.col("fit")?, t.col("r2")?);
    let mut worst = f64::INFINITY;
    for r in t
        .rows
        .iter()
        .filter(|r| r[fit].starts_with("lambda_max = a + c/B"))
    {
        worst = worst.min(t.parse(&r[r2], "r2")?);
    }
    if worst.is_infinite() {
        return Ok(Measured::NotApplicable(
            "summary.csv has no λ_max fit (hessian part off?)".into(),
        ));
    }
    claims::value(worst)
}

fn slope(f: &RunFiles, what: &str, optimizer: &str) -> Result<Measured> {
    let t = f.csv("summary.csv")?;
    let label = format!("log {what} vs log B, {optimizer}");
    if t.select(&[("fit", &label)])?.is_empty() {
        return Ok(Measured::NotApplicable(format!(
            "{optimizer} was not in the grid (grid.optimizers)"
        )));
    }
    claims::value(t.number("slope", &[("fit", &label)])?)
}

fn sgd_best(f: &RunFiles) -> Result<Measured> {
    slope(f, "best lr", "sgd")
}
fn sgd_stable(f: &RunFiles) -> Result<Measured> {
    slope(f, "largest stable lr", "sgd")
}
fn adam_best(f: &RunFiles) -> Result<Measured> {
    slope(f, "best lr", "adam")
}
fn adam_stable(f: &RunFiles) -> Result<Measured> {
    slope(f, "largest stable lr", "adam")
}
