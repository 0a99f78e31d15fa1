//! `ib-lossy` (paper 2, Butakov et al.): the information plane of a noisy MNIST CNN measured
//! through lossy compression. The network is made a stochastic channel by Gaussian noise
//! injected after every layer (in training and evaluation) plus dropout, so I(X; L) is finite.
//! Every epoch, on a fixed held-out sample:
//!
//! - X is compressed by a conv autoencoder (fitted once, on training images) to `ib.x_dim`;
//! - each layer L is compressed by PCA (fitted on a training sample, that epoch) to at most
//!   `ib.layer_dim` dimensions;
//! - I(X; L) by KSG between the two compressed samples, I(L; Y) by the KSG-type estimator for a
//!   discrete label (Ross 2014), in `units`.
//!
//! Rows go to `ib.csv` (epoch, layer, name, width, estimator, I_XT_<units>, I_TY_<units>,
//! seconds); row `epoch = e` is the state after e epochs, epoch 0 the untrained network.
//! `stochlab plot <run>` draws the information plane.

use crate::config;
use crate::data::{self, DataConfig, Dataset};
use crate::experiments::{Entry, EvalInput, EvalRow};
use crate::info::compress::{AeConfig, Fitted, Pca};
use crate::info::mi::{self, MiEstimator, MiParams, Units, Var};
use crate::nn::GaussianNoise;
use crate::optim::{OptimConfig, Optimizer};
use crate::rng::{self, Stream};
use crate::run::metrics::{Cell, Keep, MetricsWriter};
use crate::run::{Outcome, RunContext};
use crate::train::{self, Classification, Hooks, TrainConfig};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};
use toml::Table;

pub const ENTRY: Entry = Entry {
    name: "ib-lossy",
    family: "information",
    description: "Information plane of a noisy MNIST CNN via autoencoder/PCA compression + KSG",
    paper: "Information Bottleneck Analysis of Deep Neural Networks via Lossy Compression",
    defaults: include_str!("../../../experiments/ib-lossy.toml"),
    normalize: config::normalize::<Config>,
    train,
    eval: Some(eval),
    information_plane: true,
    claims: CLAIMS,
    variants: &[],
    extendable: true,
    nested_runs: false,
};

/// `[model]`: the paper's network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// 3×3 conv layers, each followed by LeakyReLU, noise and 2×2 max-pool.
    pub channels: Vec<i64>,
    /// Dense hidden layers after global average pooling.
    pub dense: Vec<i64>,
    pub dropout: f64,
    /// Injected noise: std σ, absolute (N(0, σ²)) or relative (σ·|x|·N(0, 1)).
    pub noise_std: f64,
    pub noise_relative: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            channels: vec![8, 16, 32],
            dense: vec![32],
            dropout: 0.1,
            noise_std: 0.1,
            noise_relative: false,
        }
    }
}

/// `[ib]`: what is measured, and how.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IbConfig {
    /// Held-out test images the estimates are computed on.
    pub n_eval: i64,
    /// Training images the compressors are fitted on.
    pub n_fit: i64,
    /// Autoencoder bottleneck for X, and the PCA width cap for layers.
    pub x_dim: i64,
    pub layer_dim: i64,
    pub estimators: Vec<MiEstimator>,
}

impl Default for IbConfig {
    fn default() -> Self {
        IbConfig {
            n_eval: 5000,
            n_fit: 5000,
            x_dim: 4,
            layer_dim: 4,
            estimators: vec![MiEstimator::Ksg],
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub data: DataConfig,
    pub model: ModelConfig,
    pub optim: OptimConfig,
    pub train: TrainConfig,
    pub ib: IbConfig,
    pub mi: MiParams,
    pub ae: AeConfig,
    pub units: Units,
}

impl config::Check for Config {
    fn check(&self) -> Result<()> {
        self.data.check()?;
        self.optim.check()?;
        self.train.check()?;
        self.mi.check()?;
        self.ae.check()?;
        let m = &self.model;
        if m.channels.is_empty() || m.channels.iter().chain(&m.dense).any(|&c| c < 1) {
            bail!("model.channels needs at least one layer; widths must be positive");
        }
        if !(0.0..1.0).contains(&m.dropout) || m.noise_std < 0.0 {
            bail!("model.dropout must be in [0, 1) and model.noise_std >= 0");
        }
        let ib = &self.ib;
        if ib.n_eval < 20 || ib.n_fit < 20 || ib.x_dim < 1 || ib.layer_dim < 1 {
            bail!(
                "ib.n_eval and ib.n_fit must be at least 20, ib.x_dim and ib.layer_dim at least 1"
            );
        }
        if ib.estimators.is_empty() {
            bail!("ib.estimators must not be empty");
        }
        Ok(())
    }
    fn resolve(&mut self) {
        self.optim.resolve();
    }
}

/// The noisy CNN: conv blocks, global average pooling, dense layers, logits.
#[derive(Debug)]
pub struct NoisyCnn {
    convs: Vec<nn::Conv2D>,
    dense: Vec<nn::Linear>,
    noise: GaussianNoise,
    dropout: f64,
}

impl NoisyCnn {
    fn new(p: &nn::Path, in_channels: i64, cfg: &ModelConfig, n_out: i64) -> Self {
        let pad = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        let mut c = in_channels;
        let convs = cfg
            .channels
            .iter()
            .enumerate()
            .map(|(i, &out)| {
                let conv = nn::conv2d(p / format!("conv{i}"), c, out, 3, pad);
                c = out;
                conv
            })
            .collect();
        let widths: Vec<i64> = std::iter::once(c)
            .chain(cfg.dense.iter().copied())
            .chain([n_out])
            .collect();
        let dense = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| nn::linear(p / format!("fc{i}"), w[0], w[1], Default::default()))
            .collect();
        NoisyCnn {
            convs,
            dense,
            noise: GaussianNoise {
                std: cfg.noise_std,
                relative: cfg.noise_relative,
            },
            dropout: cfg.dropout,
        }
    }

    /// Every layer's output (after its noise), the logits last.
    fn layers(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        let mut out = vec![];
        let mut h = x.shallow_clone();
        for conv in &self.convs {
            h = self
                .noise
                .forward(&h.apply(conv).leaky_relu())
                .max_pool2d_default(2);
            out.push(h.shallow_clone());
        }
        h = h.mean_dim([2i64, 3].as_slice(), false, Kind::Float);
        let last = self.dense.len() - 1;
        for (i, fc) in self.dense.iter().enumerate() {
            h = h.apply(fc);
            if i < last {
                h = self
                    .noise
                    .forward(&h.leaky_relu())
                    .dropout(self.dropout, train);
            }
            out.push(h.shallow_clone());
        }
        out
    }

    fn names(&self) -> Vec<String> {
        (0..self.convs.len())
            .map(|i| format!("conv{}", i + 1))
            .chain((0..self.dense.len() - 1).map(|i| format!("dense{}", i + 1)))
            .chain(["output".to_string()])
            .collect()
    }
}

impl ModuleT for NoisyCnn {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.layers(xs, train)
            .pop()
            .expect("at least the output layer")
    }
}

/// ib.csv's columns; the information columns carry their unit (`I_XT_nats`).
fn ib_columns(units: Units) -> Vec<String> {
    let u = units.as_str();
    ["epoch", "layer", "name", "width", "estimator"]
        .iter()
        .map(|c| c.to_string())
        .chain([format!("I_XT_{u}"), format!("I_TY_{u}"), "seconds".into()])
        .collect()
}

/// Measures the information plane at the end of each epoch (and once before training).
struct Plane<'a> {
    cfg: &'a Config,
    net: &'a NoisyCnn,
    /// The held-out sample: compressed X, images, labels; and the compressor-fitting images.
    x_code: Tensor,
    eval_x: Tensor,
    eval_y: Tensor,
    fit_x: Tensor,
    seed: u64,
    out: MetricsWriter,
}

impl Plane<'_> {
    /// Layer outputs in evaluation mode (noise on, dropout off), reseeded per epoch.
    fn activations(&self, x: &Tensor, epoch: usize, which: u64) -> Vec<Tensor> {
        rng::reseed(self.seed, Stream::Step, epoch as u64, u64::MAX - which);
        tch::no_grad(|| {
            let parts: Vec<Vec<Tensor>> = x
                .split(1024, 0)
                .iter()
                .map(|b| self.net.layers(b, false))
                .collect();
            (0..parts[0].len())
                .map(|l| {
                    Tensor::cat(
                        &parts
                            .iter()
                            .map(|p| p[l].flatten(1, -1))
                            .collect::<Vec<_>>(),
                        0,
                    )
                })
                .collect()
        })
    }

    /// Writes every layer's rows of `epoch`; returns the output layer's (I_XT, I_TY) from the
    /// last estimator.
    fn measure(&mut self, epoch: usize) -> Result<(f64, f64)> {
        let fit = self.activations(&self.fit_x, epoch, 0);
        let eval = self.activations(&self.eval_x, epoch, 1);
        let names = self.net.names();
        let mut output = (f64::NAN, f64::NAN);
        for (l, (f, e)) in fit.iter().zip(&eval).enumerate() {
            let started = Instant::now();
            let width = e.size()[1];
            let code = if width > self.cfg.ib.layer_dim {
                Pca::fit(f, self.cfg.ib.layer_dim)?.apply(e)
            } else {
                e.to_kind(Kind::Double)
            };
            for &est in &self.cfg.ib.estimators {
                rng::reseed(self.seed, Stream::Step, epoch as u64, l as u64);
                let units = self.cfg.units;
                let ixt = mi::mutual_information(
                    est,
                    &self.cfg.mi,
                    &self.x_code,
                    Var::Continuous(&code),
                )?;
                let ity =
                    mi::mutual_information(est, &self.cfg.mi, &code, Var::Discrete(&self.eval_y))?;
                let (ixt, ity) = (units.from_nats(ixt), units.from_nats(ity));
                self.out.write(vec![
                    epoch.into(),
                    (l + 1).into(),
                    names[l].as_str().into(),
                    width.into(),
                    est.as_str().into(),
                    ixt.into(),
                    ity.into(),
                    started.elapsed().as_secs_f64().into(),
                ])?;
                output = (ixt, ity);
            }
        }
        Ok(output)
    }
}

impl Hooks for Plane<'_> {
    fn columns(&self) -> Vec<String> {
        let u = self.cfg.units.as_str();
        vec![format!("I_XT_output_{u}"), format!("I_TY_output_{u}")]
    }

    fn on_epoch_end(&mut self, epoch: usize, _model: &dyn ModuleT) -> Result<Vec<Cell>> {
        let (ixt, ity) = self.measure(epoch)?;
        Ok(vec![ixt.into(), ity.into()])
    }
}

/// The noisy CNN for a dataset (which must be images).
fn network(
    cfg: &Config,
    data: &Dataset,
    seed: u64,
    device: tch::Device,
) -> Result<(nn::VarStore, NoisyCnn)> {
    let &[channels, _, _] = data.input_shape.as_slice() else {
        bail!("ib-lossy needs image data (data.name = \"mnist\", \"fashion-mnist\", \"mnist5k\"), got inputs of shape {:?}", data.input_shape);
    };
    crate::nn::build_on(seed, device, |p| {
        Ok(NoisyCnn::new(p, channels, &cfg.model, data.n_classes))
    })
}

/// `stochlab eval`: the checkpoint's loss and accuracy on each split, with the noise on as in
/// training (overrides may change the data or the noise level, e.g. model.noise_std=0.2).
fn eval(table: &Table, input: &EvalInput<'_>) -> Result<Vec<EvalRow>> {
    let cfg: Config = config::typed(table)?;
    let data = data::load(&cfg.data, input.data_dir, input.device, input.seed)?;
    let (vs, net) = network(&cfg, &data, input.seed, input.device)?;
    train::load_weights(&vs, input.checkpoint, input.device)?;
    rng::reseed(input.seed, Stream::Step, u64::MAX, u64::MAX);
    Ok(train::evaluate_splits(
        &net,
        &data,
        cfg.train.eval_batch_size,
    ))
}

fn train(table: &Table, ctx: &mut RunContext) -> Result<Outcome> {
    let cfg: Config = config::typed(table)?;
    let data = data::load(&cfg.data, &ctx.data_dir, ctx.device, ctx.seed)?;
    let (vs, net) = network(&cfg, &data, ctx.seed, ctx.device)?;
    let mut opt = Optimizer::new(crate::optim::trainable(&vs), &cfg.optim)?;
    let mut plane = plane(&cfg, &net, &data, ctx)?;
    if ctx.resume_from.is_none() {
        plane.measure(0)?;
    }
    let task = Classification {
        schedule: &cfg.optim.schedule,
        vs: &vs,
        model: &net,
        opt: &mut opt,
        data: &data,
    };
    train::fit(ctx, task, &cfg.train, &mut plane)
}

/// Samples, the X autoencoder, and ib.csv (cut back to the checkpoint on resume).
fn plane<'a>(
    cfg: &'a Config,
    net: &'a NoisyCnn,
    data: &Dataset,
    ctx: &RunContext,
) -> Result<Plane<'a>> {
    let n_eval = cfg.ib.n_eval.min(data.test.len());
    let n_fit = cfg.ib.n_fit.min(data.train.len());
    let eval_x = data.test.x.narrow(0, 0, n_eval);
    let eval_y = data.test.y.narrow(0, 0, n_eval);
    let fit_x = data.train.x.narrow(0, 0, n_fit);
    let started = Instant::now();
    let ae = Fitted::fit(
        crate::info::compress::Compressor::Ae(cfg.ib.x_dim),
        &fit_x,
        &cfg.ae,
        rng::derive(ctx.seed, Stream::Init, 1, 0),
    )?;
    let x_code = ae.apply(&eval_x);
    if let Fitted::Ae(a) = &ae {
        if !ctx.quiet {
            eprintln!(
                "[ib-lossy] X autoencoder ({} dims) fitted in {:.1}s, reconstruction mse {:.4}",
                cfg.ib.x_dim,
                started.elapsed().as_secs_f64(),
                a.final_loss
            );
        }
    }
    let path = ctx.dir.join("ib.csv");
    let cols = ib_columns(cfg.units);
    let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
    let out = match &ctx.resume_from {
        Some(ck) => {
            let keep = Keep::AtMost {
                column: "epoch",
                value: ck.state()?.epoch as f64,
            };
            MetricsWriter::resume(&path, &cols, keep)?
        }
        None => MetricsWriter::create(&path, &cols)?,
    };
    Ok(Plane {
        cfg,
        net,
        x_code,
        eval_x,
        eval_y,
        fit_x,
        seed: ctx.seed,
        out,
    })
}

// ---- The paper's claims (Butakov et al., IB analysis via lossy compression) ---------------

use crate::claims::{self, Claim, Expect, Measured, RunFiles, Scale};

const CLAIMS: &[Claim] = &[
    Claim {
        id: "output-information",
        statement: "the output layer's final I(L;Y) approaches H(Y) = ln 10 ≈ 2.30 nats on MNIST (threshold 2.0 nats from the issue)",
        paper: "≈ 2.3 nats",
        expect: Expect::AtLeast(2.0),
        unit: "nats",
        scale: Scale::Both,
        variant: None,
        measure: output_information,
    },
    Claim {
        id: "dense-compression",
        statement: "a compression phase: a dense layer's I(X;L) falls after its peak; the largest fall over dense layers (threshold 0.1 nats: ours, about twice the epoch-to-epoch spread of the KSG estimates)",
        paper: "compression in the dense layers",
        expect: Expect::AtLeast(0.1),
        unit: "nats",
        scale: Scale::Both,
        variant: None,
        measure: dense_compression,
    },
];

fn output_information(f: &RunFiles) -> Result<Measured> {
    let ib = f.csv("ib.csv")?;
    let names = ib.distinct("name")?;
    let out = names
        .last()
        .ok_or_else(|| anyhow::anyhow!("ib.csv has no rows"))?;
    let (col, unit) = ib.unit_column("I_TY")?;
    let curve = claims::mean_by(&ib, "epoch", &col, &[("name", out)])?;
    claims::value(curve.last().map_or(f64::NAN, |p| p.1) * to_nats(&unit))
}

/// The factor from a file's information unit to nats (the claims' unit).
fn to_nats(unit: &str) -> f64 {
    if unit == "bits" {
        std::f64::consts::LN_2
    } else {
        1.0
    }
}

fn dense_compression(f: &RunFiles) -> Result<Measured> {
    let ib = f.csv("ib.csv")?;
    let dense: Vec<String> = ib
        .distinct("name")?
        .into_iter()
        .filter(|n| n.starts_with("dense") || n == "output")
        .collect();
    if dense.is_empty() {
        return Ok(Measured::NotApplicable("ib.csv has no dense layer".into()));
    }
    let (col, unit) = ib.unit_column("I_XT")?;
    let mut best = f64::NEG_INFINITY;
    for n in &dense {
        let curve = claims::mean_by(&ib, "epoch", &col, &[("name", n)])?;
        best = best.max(claims::fall_after_peak(&curve).unwrap_or(f64::NAN));
    }
    claims::value(best * to_nats(&unit))
}
