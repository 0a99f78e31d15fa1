//! `wta-crs` (paper 23, Liu et al. 2023, "Winner-take-all column row sampling for memory
//! efficient adaptation of language models"): the weight gradient GᵀX of a linear layer
//! estimated from k of its N rows, keeping only those rows' activations for the backward pass.
//!
//! Part (a), `estimators.csv`: on matrices with heavy-tailed row norms (log-normal, so a few
//! rows dominate), the relative bias ‖E[Ĝ] − GᵀX‖/‖GᵀX‖ and relative variance
//! E‖Ĝ − E[Ĝ]‖²/‖GᵀX‖² of uniform sampling, CRS (p ∝ ‖x_i‖‖g_i‖), WTA-CRS and top-k, at each
//! k/N in `k_fractions`.
//! Part (b), `training.csv` and metrics.csv: an MLP on MNIST whose linear layers use each
//! sampler (exact backprop for reference): test accuracy and the activation bytes the layers
//! keep for the backward pass (k rows instead of N per layer). The transformer block the issue
//! mentions is not built here.

use crate::config;
use crate::data::{self, DataConfig, Dataset};
use crate::experiments::children::csv_bytes;
use crate::experiments::Entry;
use crate::nn::wta_crs::{select, Sampler, WtaCrsLinear};
use crate::rng::{self, Stream};
use crate::run::fsutil::write_atomic;
use crate::run::metrics::{float, json_float};
use crate::run::progress::Progress;
use crate::run::{Outcome, RunContext};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::nn::Module;
use tch::{Device, Kind, Tensor};
use toml::Table;

pub const ENTRY: Entry = Entry {
    name: "wta-crs",
    family: "estimators",
    description: "Sampled weight gradients (uniform, CRS, WTA-CRS, top-k): variance and training",
    paper: "Winner-Take-All Column Row Sampling for Memory Efficient Adaptation of Language Model",
    defaults: include_str!("../../../experiments/wta-crs.toml"),
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
pub struct Study {
    pub enabled: bool,
    pub rows: i64,
    pub in_dim: i64,
    pub out_dim: i64,
    /// σ of the log-normal row norms (larger: heavier tail).
    pub tail: f64,
    pub draws: usize,
}

impl Default for Study {
    fn default() -> Self {
        Study {
            enabled: true,
            rows: 512,
            in_dim: 64,
            out_dim: 32,
            tail: 1.5,
            draws: 2000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Training {
    pub enabled: bool,
    pub data: DataConfig,
    pub hidden: Vec<i64>,
    pub samplers: Vec<Sampler>,
    pub epochs: usize,
    pub batch_size: i64,
    pub lr: f64,
    /// CRS/WTA-CRS importance ‖x_i‖·‖g_i‖ with ‖g_i‖ from the previous step's same row
    /// position (true, as the paper), or ‖x_i‖ alone (false).
    pub cached_grad_norms: bool,
}

impl Default for Training {
    fn default() -> Self {
        Training {
            enabled: true,
            data: DataConfig {
                name: "mnist".into(),
                train_subset: 10000,
                ..Default::default()
            },
            hidden: vec![512, 512],
            samplers: vec![
                Sampler::Exact,
                Sampler::Uniform,
                Sampler::Crs,
                Sampler::WtaCrs,
            ],
            epochs: 5,
            batch_size: 128,
            lr: 1e-3,
            cached_grad_norms: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub k_fractions: Vec<f64>,
    /// WTA-CRS: share of the k rows kept deterministically (the winners).
    pub top_fraction: f64,
    pub study: Study,
    pub training: Training,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            k_fractions: vec![0.1, 0.3],
            top_fraction: 0.5,
            study: Study::default(),
            training: Training::default(),
        }
    }
}

impl config::Check for Config {
    fn check(&self) -> Result<()> {
        if self.k_fractions.is_empty() || self.k_fractions.iter().any(|&k| !(k > 0.0 && k <= 1.0)) {
            bail!("k_fractions must be in (0, 1]");
        }
        if !(0.0..=1.0).contains(&self.top_fraction) {
            bail!("top_fraction must be in [0, 1]");
        }
        let s = &self.study;
        if s.rows < 2 || s.in_dim < 1 || s.out_dim < 1 || s.draws < 2 {
            bail!("study: rows >= 2, in_dim and out_dim >= 1, draws >= 2");
        }
        let t = &self.training;
        if t.epochs == 0 || t.batch_size < 1 || t.samplers.is_empty() {
            bail!("training: epochs and batch_size >= 1, samplers not empty");
        }
        t.data.check()
    }
}

fn heavy_rows(n: i64, d: i64, tail: f64) -> Tensor {
    let norms = (Tensor::randn([n, 1], (Kind::Double, Device::Cpu)) * tail).exp();
    Tensor::randn([n, d], (Kind::Double, Device::Cpu)) * norms
}

fn part_a(cfg: &Config, ctx: &RunContext) -> Result<Vec<Vec<String>>> {
    let s = &cfg.study;
    rng::reseed(ctx.seed, Stream::Data, 0, 0);
    let (g, x) = (
        heavy_rows(s.rows, s.out_dim, s.tail),
        heavy_rows(s.rows, s.in_dim, s.tail),
    );
    let exact = g.tr().matmul(&x);
    let norm = exact.norm().double_value(&[]);
    let p = g.norm_scalaropt_dim(2, [1i64].as_slice(), false)
        * x.norm_scalaropt_dim(2, [1i64].as_slice(), false);
    let mut rows = vec![];
    for &kf in &cfg.k_fractions {
        let k = ((kf * s.rows as f64).round() as i64).max(1);
        for sampler in [
            Sampler::Uniform,
            Sampler::Crs,
            Sampler::WtaCrs,
            Sampler::TopK,
        ] {
            rng::reseed(ctx.seed, Stream::Step, k as u64, sampler as u64);
            let (mut sum, mut sq) = (Tensor::zeros_like(&exact), 0.0);
            for _ in 0..s.draws {
                let sel = select(sampler, &p, k, cfg.top_fraction);
                let est = (g.index_select(0, &sel.rows) * sel.scale.unsqueeze(1))
                    .tr()
                    .matmul(&x.index_select(0, &sel.rows));
                sq += est.square().sum(Kind::Double).double_value(&[]);
                sum += est;
            }
            let mean = sum / s.draws as f64;
            let bias = (&mean - &exact).norm().double_value(&[]) / norm;
            // E‖Ĝ − E[Ĝ]‖² = E‖Ĝ‖² − ‖E[Ĝ]‖², relative to ‖GᵀX‖².
            let var = (sq / s.draws as f64 - mean.square().sum(Kind::Double).double_value(&[]))
                .max(0.0)
                / (norm * norm);
            rows.push(vec![
                float(kf),
                k.to_string(),
                sampler.as_str().into(),
                float(bias),
                float(var),
            ]);
        }
    }
    Ok(rows)
}

/// An MLP of sampled-gradient linear layers.
struct SampledMlp {
    layers: Vec<WtaCrsLinear>,
}

impl SampledMlp {
    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = x.flatten(1, -1);
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate() {
            h = if train {
                l.forward_train(&h)
            } else {
                l.forward(&h)
            };
            if i < last {
                h = h.relu();
            }
        }
        h
    }

    /// Bytes of layer inputs kept for the weight gradients in the last training step.
    fn stored_bytes(&self) -> i64 {
        self.layers
            .iter()
            .map(|l| *l.stored_rows.borrow() * l.ws.size()[1] * 4)
            .sum()
    }
}

/// Trains one MLP with `sampler` at `kf`; returns (test accuracy, stored bytes per step).
fn training_run(
    cfg: &Config,
    data: &Dataset,
    sampler: Sampler,
    kf: f64,
    ctx: &mut RunContext,
) -> Result<(f64, i64)> {
    let t = &cfg.training;
    let widths: Vec<i64> = std::iter::once(data.input_shape.iter().product())
        .chain(t.hidden.iter().copied())
        .chain([data.n_classes])
        .collect();
    let (vs, net) = crate::nn::build_on(ctx.seed, ctx.device, |p| {
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                let mut l = WtaCrsLinear::new(
                    &(p / format!("fc{i}")),
                    w[0],
                    w[1],
                    sampler,
                    kf,
                    cfg.top_fraction,
                );
                l.cached_grad_norms = t.cached_grad_norms;
                l
            })
            .collect();
        Ok(SampledMlp { layers })
    })?;
    let mut opt = crate::optim::adam(&vs, t.lr)?;
    let mut acc = f64::NAN;
    for epoch in 0..t.epochs {
        rng::reseed(ctx.seed, Stream::Shuffle, epoch as u64, 0);
        let mut losses = vec![];
        for idx in data.train.batches(t.batch_size, true, true) {
            let (x, y) = data.train.take(&idx);
            opt.zero_grad();
            let loss = net.forward(&x, true).cross_entropy_for_logits(&y);
            loss.backward();
            net.layers.iter().for_each(WtaCrsLinear::after_backward);
            opt.step();
            losses.push(loss.detach());
        }
        let train_loss = Tensor::stack(&losses, 0)
            .mean(Kind::Float)
            .double_value(&[]);
        if !train_loss.is_finite() {
            bail!(
                "{} at k/N {kf} diverged in epoch {}: lower training.lr",
                sampler.as_str(),
                epoch + 1
            );
        }
        acc = tch::no_grad(|| {
            net.forward(&data.test.x, false)
                .argmax(-1, false)
                .eq_tensor(&data.test.y)
                .to_kind(Kind::Double)
                .mean(Kind::Double)
                .double_value(&[])
        });
        ctx.log(vec![
            sampler.as_str().into(),
            kf.into(),
            (epoch + 1).into(),
            train_loss.into(),
            acc.into(),
        ])?;
    }
    Ok((acc, net.stored_bytes()))
}

/// The summary rows finished so far, and the signal that stopped the part early, if any.
fn part_b(cfg: &Config, ctx: &mut RunContext) -> Result<(Vec<Vec<String>>, Option<i32>)> {
    let t = &cfg.training;
    let data = data::load(&t.data, &ctx.data_dir, ctx.device, ctx.seed)?;
    let mut runs: Vec<(Sampler, f64)> = vec![];
    for &s in &t.samplers {
        if s == Sampler::Exact {
            runs.push((s, 1.0));
        } else {
            runs.extend(cfg.k_fractions.iter().map(|&k| (s, k)));
        }
    }
    let mut progress = Progress::new("wta-crs training", runs.len() as u64, ctx.quiet);
    let mut rows = vec![];
    let mut exact_acc = f64::NAN;
    for (i, &(s, kf)) in runs.iter().enumerate() {
        let (acc, bytes) = training_run(cfg, &data, s, kf, ctx)?;
        if s == Sampler::Exact {
            exact_acc = acc;
        }
        rows.push(vec![
            s.as_str().into(),
            float(kf),
            float(acc),
            float(exact_acc - acc),
            bytes.to_string(),
        ]);
        progress.update(
            i as u64 + 1,
            &format!("{} k/N={kf}: {:.2}%", s.as_str(), 100.0 * acc),
        );
        if let Some(sig) = ctx.interrupt.requested() {
            progress.finish();
            return Ok((rows, Some(sig)));
        }
    }
    progress.finish();
    Ok((rows, None))
}

/// Headline numbers at the smallest k/N: each sampler's relative bias and variance (part a)
/// and test accuracy (part b, with exact backprop's).
fn headline(
    cfg: &Config,
    est_rows: &[Vec<String>],
    train_rows: &[Vec<String>],
) -> serde_json::Map<String, serde_json::Value> {
    let key = |s: &str| s.replace('-', "_");
    let num = |s: &str| json_float(s.parse::<f64>().unwrap_or(f64::NAN));
    let k = cfg
        .k_fractions
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    let at_k = |r: &&Vec<String>| r[0].parse::<f64>().ok() == Some(k);
    let mut out = serde_json::Map::new();
    out.insert("k_fraction".into(), json_float(k));
    for r in est_rows.iter().filter(at_k) {
        out.insert(format!("{}_rel_bias", key(&r[2])), num(&r[3]));
        out.insert(format!("{}_rel_variance", key(&r[2])), num(&r[4]));
    }
    for r in train_rows {
        let kf = r[1].parse::<f64>().ok();
        if r[0] == "exact" || kf == Some(k) {
            out.insert(format!("{}_test_acc", key(&r[0])), num(&r[2]));
        }
    }
    out
}

fn train(table: &Table, ctx: &mut RunContext) -> Result<Outcome> {
    let cfg: Config = config::typed(table)?;
    let (mut est_rows, mut train_rows) = (vec![], vec![]);
    if cfg.study.enabled {
        let rows = part_a(&cfg, ctx)?;
        est_rows = rows.clone();
        let cols = ["k_fraction", "k", "sampler", "rel_bias", "rel_variance"];
        write_atomic(&ctx.dir.join("estimators.csv"), &csv_bytes(&cols, &rows)?)?;
    }
    if cfg.training.enabled {
        ctx.open_metrics(&["sampler", "k_fraction", "epoch", "train_loss", "test_acc"])?;
        let (rows, stopped) = part_b(&cfg, ctx)?;
        let cols = [
            "sampler",
            "k_fraction",
            "test_acc",
            "acc_below_exact",
            "stored_activation_bytes",
        ];
        // Written also when stopped early: the rows of the runs that finished are kept.
        write_atomic(&ctx.dir.join("training.csv"), &csv_bytes(&cols, &rows)?)?;
        if let Some(sig) = stopped {
            return Ok(Outcome::Interrupted(sig));
        }
        train_rows = rows;
    }
    ctx.set_final_metrics(headline(&cfg, &est_rows, &train_rows));
    Ok(Outcome::Completed)
}

// ---- The paper's claims (Liu et al., winner-take-all column row sampling) -------------------

use crate::claims::{self, Claim, Expect, Measured, RunFiles, Scale};

const CLAIMS: &[Claim] = &[
    Claim {
        id: "unbiased",
        statement: "uniform, CRS and WTA-CRS estimate the weight gradient without bias: largest relative bias over those samplers and k/N (below 2 % from the issue)",
        paper: "unbiased",
        expect: Expect::Below(0.02),
        unit: "fraction",
        scale: Scale::Both,
        variant: None,
        measure: max_bias,
    },
    Claim {
        id: "variance-wta-below-crs",
        statement: "WTA-CRS has lower variance than CRS: largest ratio of their relative variances over k/N (below 1)",
        paper: "WTA-CRS < CRS",
        expect: Expect::Below(1.0),
        unit: "ratio",
        scale: Scale::Both,
        variant: None,
        measure: wta_over_crs,
    },
    Claim {
        id: "variance-crs-below-uniform",
        statement: "CRS has lower variance than uniform sampling: largest ratio of their relative variances over k/N (below 1)",
        paper: "CRS < uniform",
        expect: Expect::Below(1.0),
        unit: "ratio",
        scale: Scale::Both,
        variant: None,
        measure: crs_over_uniform,
    },
    Claim {
        id: "accuracy-at-0.3",
        statement: "training with WTA-CRS at k/N = 0.3 stays within 1 point (0.01) of exact training's test accuracy (from the issue; the paper reports ≤ 1 point on GLUE)",
        paper: "≤ 1 point lost",
        expect: Expect::AtMost(0.01),
        unit: "fraction",
        scale: Scale::Both,
        variant: None,
        measure: accuracy_gap,
    },
];

fn max_bias(f: &RunFiles) -> Result<Measured> {
    let t = f.csv("estimators.csv")?;
    let mut v = vec![];
    for s in ["uniform", "crs", "wta-crs"] {
        v.extend(t.numbers("rel_bias", &[("sampler", s)])?);
    }
    if v.is_empty() {
        return Ok(Measured::NotApplicable(
            "estimators.csv has none of uniform, crs, wta-crs".into(),
        ));
    }
    claims::value(v.into_iter().fold(f64::NEG_INFINITY, f64::max))
}

fn variance_ratio(f: &RunFiles, num: &str, den: &str) -> Result<Measured> {
    let t = f.csv("estimators.csv")?;
    let mut worst = f64::NEG_INFINITY;
    for k in t.distinct("k_fraction")? {
        let a = t.numbers("rel_variance", &[("k_fraction", &k), ("sampler", num)])?;
        let b = t.numbers("rel_variance", &[("k_fraction", &k), ("sampler", den)])?;
        if let (Some(a), Some(b)) = (a.first(), b.first()) {
            worst = worst.max(a / b);
        }
    }
    if worst.is_infinite() {
        return Ok(Measured::NotApplicable(format!(
            "estimators.csv lacks {num} or {den}"
        )));
    }
    claims::value(worst)
}

fn wta_over_crs(f: &RunFiles) -> Result<Measured> {
    variance_ratio(f, "wta-crs", "crs")
}
fn crs_over_uniform(f: &RunFiles) -> Result<Measured> {
    variance_ratio(f, "crs", "uniform")
}

fn accuracy_gap(f: &RunFiles) -> Result<Measured> {
    let t = f.csv("training.csv")?;
    let (s, k) = (t.col("sampler")?, t.col("k_fraction")?);
    let row = t.rows.iter().find(|r| {
        r[s] == "wta-crs"
            && t.parse(&r[k], "k_fraction")
                .is_ok_and(|x| (x - 0.3).abs() < 1e-9)
    });
    match row {
        // Files from before fractions everywhere had the gap in points.
        Some(r) if t.has("acc_below_exact") => {
            claims::value(t.parse(&r[t.col("acc_below_exact")?], "acc_below_exact")?)
        }
        Some(r) => {
            claims::value(t.parse(&r[t.col("points_below_exact")?], "points_below_exact")? / 100.0)
        }
        None => Ok(Measured::NotApplicable(
            "training.csv has no wta-crs row at k/N = 0.3".into(),
        )),
    }
}
