//! `neural-sde` (paper 1, Oh, Lim, Kim, ICLR 2024, "Stable neural stochastic differential
//! equations in analyzing irregular time series data"). Classification of irregularly sampled
//! series by a latent SDE driven by a controlled path, comparing a naive neural SDE with the
//! paper's three stable classes and neural-ODE baselines as the share of missing observations
//! grows.
//!
//! Data. A series x ∈ R^{L×D} observed at t_i = i/(L−1) (the official grid); for every sample
//! and channel ⌊L·r⌋ points are dropped at random (missing rate r ∈ `rates`, the same rate for
//! the whole dataset before the 70/15/15 train/validation/test split — the official protocol
//! of torch-ists `preprocess`; the paper trains and tests at the same rate). Channels are
//! normalised with the training split's mean and std over observed values. The control path is
//! X(t) = Hermite cubic with backward differences through [t_i, x_i] (missing values linearly
//! filled first; the time channel t included, no intensity channel: `use_intensity = False` as
//! the official runs use for SDE models).
//!
//! Model (the official `Diffusion_model`, hidden width h = `model.hidden` for both the latent
//! and the MLP, as the official runs set them equal). z(0) = ℓ₀(X(0));
//!   dz = γ(t, z, X) dt + σ(t, z) ⊙ dW   (Itô, diagonal noise),
//! solved by Euler–Maruyama on the observation grid (dt = the grid spacing, the official
//! `max(min Δt, 1e-3)`; `model.substeps` > 1 refines it and then the Hermite path matters
//! between observations). The logits are a readout Linear–BatchNorm–ReLU–Dropout(0.1)–Linear
//! of z(T). The drift network, with ζ = ℓ_e(cat[ℓ_in(inp), ℓ_X(X(t))]) when the control is used
//! and ζ = ℓ_in(inp) otherwise, inp = [sin t, cos t, z] with the time embedding and z without:
//!   γ = tanh(MLP(ReLU ζ))            (MLP: `model.layers`−1 ReLU layers, then linear),
//!   γ = tanh(MLP(ReLU ζ) ⊙ tanh z)   (geometric: the official code's bounded stand-in for z·),
//! and the diffusion, with θ a learned scalar (init 1):
//!   σ = tanh(sigmoid(θ) · s),  s = ReLU(MLP₂([sin t, cos t]))         (code 16, additive),
//!                              s = ReLU(MLP₂([sin t, cos t])) ⊙ z     (code 17, linear noise),
//!                              s = ReLU(MLP₂([sin t, cos t, z]))      (code 18, naive),
//!                              s = 0                                  (code 00, ODE).
//! The models (official names `neuralsde_<input>_<noise>`):
//!   naive   `neuralsde_1_18`  latent-only drift, no control, state-dependent noise (the
//!                              repository README's naive neural SDE),
//!   naive-t `neuralsde_3_18`  the same with the time embedding,
//!   lsde    `neuralsde_2_16`  Langevin-type: controlled drift, additive noise σ(t),
//!   lnsde   `neuralsde_4_17`  linear noise σ(t)·z, controlled drift with time embedding,
//!   gsde    `neuralsde_6_17`  geometric: drift ⊙ tanh z, noise σ(t)·z,
//!   ode     `neuralsde_1_00`  the naive drift without noise (a latent neural ODE),
//!   cde     `neuralsde_4_00`  the LNSDE drift without noise (a controlled neural ODE).
//! The tanh bounds, sigmoid(θ) and the sin/cos time features are the official code's
//! "engineering stabilisers" (they are part of every model, the naive one included).
//!
//! Training (official `model_run.py`): cross-entropy, Adam with lr = 1e-3·batch/16 and weight
//! decay lr·0.01, StepLR(10 epochs, ×0.5), batch = the largest of 16…128 not above half the
//! dataset; the weights with the lowest validation loss are kept. All (rate, seed) replicas of a
//! model kind train at once as one batched model (weights [R, in, out], `baddbmm`), each on its
//! own data; one stochastic forward pass per evaluation, as the official code evaluates.
//!
//! Measured: test accuracy per (model, rate, seed) at the best-validation epoch; per (model,
//! rate) the seed mean and std and the paired drop from rate 0; non-finite or exploding
//! training losses (a replica whose epoch-mean loss is not finite or exceeds `divergence_loss`
//! is counted as diverged, and keeps its best weights from before).
//!
//! Deviations: the official runs stop early (patience 10 after epoch 20); here every replica
//! trains `epochs` epochs and the best-validation weights are restored, which can only pick a
//! later, better epoch. The official code fits the spline to un-normalised values (its
//! normalised copy feeds the non-SDE baselines); here the control is built from the
//! normalised series. The default data are synthetic (see `Synthetic`); `data.source = "ts"`
//! runs a UEA/UCR `.ts` dataset with the official train+test merge and stratified split.

use crate::config;
use crate::data::irregular::{self, ChannelStats, Hermite};
use crate::data::{split, uea};
use crate::experiments::children::csv_bytes;
use crate::experiments::Entry;
use crate::optim::{OptimConfig, OptimName, Optimizer};
use crate::rng::{self, Stream};
use crate::run::fsutil::write_atomic;
use crate::run::metrics::{float, insert_mean_std, mean_std};
use crate::run::progress::Progress;
use crate::run::{Outcome, RunContext};
use crate::sde::em::{self, DiagonalSde, Noise};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use tch::{nn, Device, Kind, Tensor};
use toml::Table;

pub const ENTRY: Entry = Entry {
    name: "neural-sde",
    family: "sde",
    description: "Naive vs stable neural SDEs (LSDE, LNSDE, GSDE) and neural ODEs on irregular series at 0-70 % missing",
    paper: "Stable Neural Stochastic Differential Equations in Analyzing Irregular Time Series Data",
    defaults: include_str!("../../../experiments/neural-sde.toml"),
    normalize: config::normalize::<Config>,
    train,
    eval: None,
    information_plane: false,
    claims: CLAIMS,
    variants: &[],
    extendable: false,
    nested_runs: false,
};

/// The model classes, by the official code's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    Naive,
    NaiveT,
    Lsde,
    Lnsde,
    Gsde,
    Ode,
    Cde,
}

impl ModelKind {
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Naive => "naive",
            ModelKind::NaiveT => "naive-t",
            ModelKind::Lsde => "lsde",
            ModelKind::Lnsde => "lnsde",
            ModelKind::Gsde => "gsde",
            ModelKind::Ode => "ode",
            ModelKind::Cde => "cde",
        }
    }
    /// (input option, noise option) of the official `neuralsde_<input>_<noise>`.
    pub fn options(self) -> (u8, u8) {
        match self {
            ModelKind::Naive => (1, 18),
            ModelKind::NaiveT => (3, 18),
            ModelKind::Lsde => (2, 16),
            ModelKind::Lnsde => (4, 17),
            ModelKind::Gsde => (6, 17),
            ModelKind::Ode => (1, 0),
            ModelKind::Cde => (4, 0),
        }
    }
    pub fn code(self) -> String {
        let (i, n) = self.options();
        format!("neuralsde_{i}_{n:02}")
    }
    fn time_embedding(self) -> bool {
        matches!(self.options().0, 3..=6)
    }
    fn controlled(self) -> bool {
        matches!(self.options().0, 2 | 4 | 6)
    }
    fn geometric(self) -> bool {
        matches!(self.options().0, 5 | 6)
    }
    /// The paper's stable classes.
    pub fn stable(self) -> bool {
        matches!(self, ModelKind::Lsde | ModelKind::Lnsde | ModelKind::Gsde)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Synthetic,
    Ts,
}

/// Synthetic classes: class c has a noisy sinusoid of frequency `freqs[c]` (cycles over
/// [0, 1], uniformly random phase, amplitude U[0.5, 1.5]) in channel 1 and an Ornstein–Uhlenbeck
/// process of rate `ou_thetas[c]` (unit stationary variance, started from it) in channel 2,
/// both with N(0, `noise`²) observation noise. No single time point tells the classes apart:
/// the class is in the dynamics.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    pub source: Source,
    /// `.ts` files (source = "ts"): absolute, or relative to the data folder or the working
    /// directory. Train and test are merged and re-split 70/15/15 per seed (official).
    pub train_file: String,
    pub test_file: String,
    /// Synthetic: time points per series and split sizes.
    pub length: i64,
    pub n_train: i64,
    pub n_val: i64,
    pub n_test: i64,
    pub freqs: Vec<f64>,
    pub ou_thetas: Vec<f64>,
    pub noise: f64,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            source: Source::Synthetic,
            train_file: String::new(),
            test_file: String::new(),
            length: 50,
            n_train: 700,
            n_val: 150,
            n_test: 150,
            freqs: vec![1.0, 2.0, 3.0],
            ou_thetas: vec![0.5, 2.0, 8.0],
            noise: 0.1,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Latent and MLP width (the official runs set hidden_hidden = hidden).
    pub hidden: i64,
    /// num_hidden_layers of the drift MLP (≥ 1).
    pub layers: i64,
    /// Euler–Maruyama steps per observation interval (1 = the official step).
    pub substeps: usize,
    /// Initial θ of the diffusion scale sigmoid(θ).
    pub theta: f64,
    pub dropout: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            hidden: 16,
            layers: 2,
            substeps: 1,
            theta: 1.0,
            dropout: 0.1,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub models: Vec<ModelKind>,
    /// Missing rates, applied to every split.
    pub rates: Vec<f64>,
    /// Seeds per (model, rate): run seed + 0, 1, … (data, split, masks, initialisation).
    pub seeds: u64,
    pub epochs: usize,
    /// 0 = the official rule: the largest of 16, 32, 64, 128 not above half the dataset.
    pub batch_size: i64,
    /// 0 = the official rule 1e-3 · batch / 16.
    pub lr: f64,
    /// Adam's weight decay as a multiple of lr (official 0.01).
    pub weight_decay_factor: f64,
    /// StepLR: ×`lr_gamma` every `lr_step` epochs (official 10, 0.5).
    pub lr_step: usize,
    pub lr_gamma: f64,
    /// An epoch-mean training loss above this (or not finite) marks a replica diverged.
    pub divergence_loss: f64,
    /// Samples per evaluation chunk.
    pub eval_batch: i64,
    pub data: DataConfig,
    pub model: ModelConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            models: vec![
                ModelKind::Naive,
                ModelKind::Lsde,
                ModelKind::Lnsde,
                ModelKind::Gsde,
                ModelKind::Ode,
                ModelKind::Cde,
            ],
            rates: vec![0.0, 0.3, 0.5, 0.7],
            seeds: 3,
            epochs: 50,
            batch_size: 0,
            lr: 0.0,
            weight_decay_factor: 0.01,
            lr_step: 10,
            lr_gamma: 0.5,
            divergence_loss: 1e3,
            eval_batch: 512,
            data: DataConfig::default(),
            model: ModelConfig::default(),
        }
    }
}

/// The official batch-size rule for a dataset of `n` samples (train + validation + test).
pub fn official_batch(n: i64) -> i64 {
    let mut b = 16;
    for i in 4..8 {
        if (1i64 << i) as f64 > n as f64 / 2.0 {
            break;
        }
        b = 1 << i;
    }
    b
}

impl config::Check for Config {
    fn check(&self) -> Result<()> {
        if self.models.is_empty() {
            bail!("models must name at least one of naive, naive-t, lsde, lnsde, gsde, ode, cde");
        }
        let mut seen = self.models.clone();
        seen.dedup();
        if seen.len() != self.models.len() {
            bail!("models lists a model twice");
        }
        if self.rates.is_empty() || self.rates.iter().any(|r| !(0.0..1.0).contains(r)) {
            bail!("rates must be missing rates in [0, 1), e.g. [0.0, 0.3, 0.5, 0.7]");
        }
        if self.rates.windows(2).any(|w| w[1] <= w[0]) {
            bail!("rates must be increasing (the drop is measured from the first to the last)");
        }
        if self.seeds == 0 || self.epochs == 0 {
            bail!("seeds and epochs must be >= 1");
        }
        if self.batch_size < 0 || self.batch_size == 1 || !(self.lr >= 0.0 && self.lr.is_finite()) {
            bail!("batch_size must be 0 (official rule) or >= 2, lr 0 (official rule) or positive");
        }
        if self.weight_decay_factor.is_nan()
            || self.weight_decay_factor < 0.0
            || self.lr_step == 0
            || self.lr_gamma.is_nan()
            || self.lr_gamma <= 0.0
        {
            bail!("weight_decay_factor >= 0, lr_step >= 1 and lr_gamma > 0");
        }
        if self.divergence_loss.is_nan() || self.divergence_loss <= 0.0 || self.eval_batch < 1 {
            bail!("divergence_loss must be positive and eval_batch >= 1");
        }
        let m = &self.model;
        if m.hidden < 1 || m.layers < 1 || m.substeps == 0 || !(0.0..1.0).contains(&m.dropout) {
            bail!("model.hidden, model.layers, model.substeps >= 1 and model.dropout in [0, 1)");
        }
        let d = &self.data;
        match d.source {
            Source::Synthetic => {
                if d.length < 3 || d.n_train < 2 || d.n_val < 1 || d.n_test < 1 {
                    bail!("data.length >= 3, data.n_train >= 2, data.n_val and data.n_test >= 1");
                }
                if d.freqs.len() < 2 || d.freqs.len() != d.ou_thetas.len() {
                    bail!("data.freqs and data.ou_thetas give one value per class (>= 2 classes), the same number");
                }
                if d.ou_thetas.iter().any(|&t| t.is_nan() || t <= 0.0)
                    || d.noise.is_nan()
                    || d.noise < 0.0
                {
                    bail!("data.ou_thetas must be positive and data.noise >= 0");
                }
            }
            Source::Ts => {
                if d.train_file.is_empty() || d.test_file.is_empty() {
                    bail!("data.source = \"ts\" needs data.train_file and data.test_file (the UEA/UCR <name>_TRAIN.ts and <name>_TEST.ts)");
                }
            }
        }
        Ok(())
    }

    fn resolve(&mut self) {
        if self.data.source == Source::Synthetic {
            let n = self.data.n_train + self.data.n_val + self.data.n_test;
            if self.batch_size == 0 {
                self.batch_size = official_batch(n);
            }
            if self.lr == 0.0 {
                self.lr = 1e-3 * self.batch_size as f64 / 16.0;
            }
        }
    }
}

// ---- Data ------------------------------------------------------------------------------------

/// One labelled set before missingness: x [N, L, D] (NaN where the source lacks values), y [N].
pub struct Labelled {
    pub x: Tensor,
    pub y: Tensor,
}

/// The synthetic classes (see `DataConfig`), balanced, in random order (global generator).
pub fn synthetic(d: &DataConfig, n: i64) -> Labelled {
    let (l, k) = (d.length, d.freqs.len() as i64);
    let opts = (Kind::Double, Device::Cpu);
    let y = Tensor::arange(n, (Kind::Int64, Device::Cpu)).remainder(k);
    let y = y.index_select(0, &Tensor::randperm(n, (Kind::Int64, Device::Cpu)));
    let t = Tensor::linspace(0.0, 1.0, l, opts).view([1, l]);
    let freqs = Tensor::from_slice(&d.freqs)
        .index_select(0, &y)
        .view([n, 1]);
    let phase = Tensor::rand([n, 1], opts) * (2.0 * std::f64::consts::PI);
    let amp = Tensor::rand([n, 1], opts) + 0.5;
    let sine = amp * (t * freqs * (2.0 * std::f64::consts::PI) + phase).sin();
    // OU with unit stationary variance, exact transitions on the grid.
    let dt = 1.0 / (l - 1) as f64;
    let theta = Tensor::from_slice(&d.ou_thetas).index_select(0, &y);
    let a = (-&theta * dt).exp();
    let s = (a.square().neg() + 1.0).sqrt();
    let mut cur = Tensor::randn([n], opts);
    let mut ou = vec![cur.shallow_clone()];
    for _ in 1..l {
        cur = &a * &cur + &s * Tensor::randn([n], opts);
        ou.push(cur.shallow_clone());
    }
    let ou = Tensor::stack(&ou, 1);
    let x = Tensor::stack(&[sine, ou], 2);
    let x = &x + Tensor::randn_like(&x) * d.noise;
    Labelled {
        x: x.to_kind(Kind::Float),
        y,
    }
}

fn resolve_path(ctx: &RunContext, p: &str) -> PathBuf {
    let path = PathBuf::from(p);
    if path.is_absolute() || path.exists() {
        return path;
    }
    let in_data = ctx.data_dir.join(&path);
    if in_data.exists() {
        in_data
    } else {
        path
    }
}

/// The three splits of one replica, as control paths on the solver grid.
struct Split {
    /// [N, K+1, C]
    ctrl: Tensor,
    y: Tensor,
}

/// Missingness at `rate` on the whole set, then the split, training-statistics normalisation,
/// and the Hermite control [t, x] evaluated on `grid`.
fn prepare(
    all: &Labelled,
    idx: [&Tensor; 3],
    rate: f64,
    times: &[f64],
    grid: &[f64],
) -> Result<[Split; 3]> {
    let s = all.x.size();
    let mask = irregular::missing_mask(s[0], s[1], s[2], rate)?;
    let x = irregular::with_missing(&all.x, &mask);
    let stats = ChannelStats::fit(&x.index_select(0, idx[0]))?;
    let x = stats.apply(&x).to_kind(Kind::Float);
    let l = s[1];
    let tcol = Tensor::from_slice(times)
        .to_kind(Kind::Float)
        .view([1, l, 1])
        .expand([s[0], l, 1], false);
    let path = Tensor::cat(&[tcol, x], 2);
    let ctrl = Hermite::backward_differences(times, &path)?.evaluate_all(grid);
    Ok(idx.map(|i| Split {
        ctrl: ctrl.index_select(0, i),
        y: all.y.index_select(0, i),
    }))
}

/// All replicas' splits stacked [R, N, …] on the device, replica r = rate_index·S + seed_index.
struct Data {
    train: Split,
    val: Split,
    test: Split,
    classes: i64,
    channels: i64,
    grid: Vec<f64>,
}

fn load(cfg: &Config, ctx: &RunContext, seeds: &[u64]) -> Result<Data> {
    let d = &cfg.data;
    // Per seed: the clean set and the split indices.
    let mut sets: Vec<(Labelled, [Tensor; 3])> = vec![];
    let mut classes = 0;
    let files = match d.source {
        Source::Ts => {
            let tr = uea::read_ts(&resolve_path(ctx, &d.train_file))?;
            let te = uea::read_ts(&resolve_path(ctx, &d.test_file))?;
            let (a, b) = uea::to_arrays(&tr, &te)?;
            Some(Labelled {
                x: Tensor::cat(&[a.x, b.x], 0),
                y: Tensor::cat(&[a.y, b.y], 0),
            })
        }
        Source::Synthetic => None,
    };
    for &seed in seeds {
        rng::reseed(seed, Stream::Data, 0, 0);
        let (set, idx) = match &files {
            Some(f) => {
                let labels: Vec<i64> = Vec::try_from(&f.y)?;
                let (train, rest) = split::stratified_split(&labels, 0.3, seed);
                let rest_labels: Vec<i64> = rest.iter().map(|&i| labels[i]).collect();
                let (val, test) = split::stratified_split(&rest_labels, 0.5, seed ^ 0x5eed);
                let pick = |v: &[usize]| {
                    Tensor::from_slice(&v.iter().map(|&i| rest[i] as i64).collect::<Vec<_>>())
                };
                let tr = Tensor::from_slice(&train.iter().map(|&i| i as i64).collect::<Vec<_>>());
                (
                    Labelled {
                        x: f.x.shallow_clone(),
                        y: f.y.shallow_clone(),
                    },
                    [tr, pick(&val), pick(&test)],
                )
            }
            None => {
                let n = d.n_train + d.n_val + d.n_test;
                let ar = |a: i64, b: i64| Tensor::arange_start(a, b, (Kind::Int64, Device::Cpu));
                (
                    synthetic(d, n),
                    [
                        ar(0, d.n_train),
                        ar(d.n_train, d.n_train + d.n_val),
                        ar(d.n_train + d.n_val, n),
                    ],
                )
            }
        };
        classes = classes.max(set.y.max().int64_value(&[]) + 1);
        sets.push((set, idx));
    }
    let l = sets[0].0.x.size()[1];
    if l < 2 {
        bail!("series need at least two time points");
    }
    let times = em::uniform_grid(0.0, 1.0, (l - 1) as usize);
    let grid = em::refine(&times, cfg.model.substeps);
    let (mut tr, mut va, mut te) = (vec![], vec![], vec![]);
    for (ri, &rate) in cfg.rates.iter().enumerate() {
        for (si, &seed) in seeds.iter().enumerate() {
            rng::reseed(seed, Stream::Data, 1 + ri as u64, 0);
            let (set, idx) = &sets[si];
            let [a, b, c] = prepare(set, [&idx[0], &idx[1], &idx[2]], rate, &times, &grid)
                .with_context(|| format!("rate {rate}, seed {seed}"))?;
            tr.push(a);
            va.push(b);
            te.push(c);
        }
    }
    let dev = ctx.device;
    let stack = |v: Vec<Split>| -> Split {
        Split {
            ctrl: Tensor::stack(&v.iter().map(|s| &s.ctrl).collect::<Vec<_>>(), 0).to_device(dev),
            y: Tensor::stack(&v.iter().map(|s| &s.y).collect::<Vec<_>>(), 0).to_device(dev),
        }
    };
    let channels = sets[0].0.x.size()[2] + 1;
    Ok(Data {
        train: stack(tr),
        val: stack(va),
        test: stack(te),
        classes,
        channels,
        grid,
    })
}

// ---- The batched model -----------------------------------------------------------------------

/// R independent linear layers: x [R, B, in] → [R, B, out].
struct Lin {
    w: Tensor,
    b: Tensor,
}

impl Lin {
    /// PyTorch's default initialisation U(±1/√in) for weight and bias, drawn per seed (the
    /// global generator, seeded by the caller) and repeated for every rate.
    fn new(p: &nn::Path, name: &str, inits: &[Tensor], rates: i64) -> Lin {
        let w = Tensor::stack(inits.iter().step_by(2).collect::<Vec<_>>().as_slice(), 0);
        let b = Tensor::stack(
            inits
                .iter()
                .skip(1)
                .step_by(2)
                .collect::<Vec<_>>()
                .as_slice(),
            0,
        );
        Lin {
            w: p.var_copy(
                &format!("{name}_w"),
                &w.repeat([rates, 1, 1]).to_device(p.device()),
            ),
            b: p.var_copy(
                &format!("{name}_b"),
                &b.repeat([rates, 1, 1]).to_device(p.device()),
            ),
        }
    }
    fn fwd(&self, x: &Tensor) -> Tensor {
        self.b.baddbmm(x, &self.w, 1.0, 1.0)
    }
}

/// Draws (weight [in, out], bias [1, out]) U(±1/√in) for each seed, one generator position
/// per layer.
struct Init<'a> {
    seeds: &'a [u64],
    layers: u64,
}

impl<'a> Init<'a> {
    fn new(seeds: &'a [u64]) -> Self {
        Init { seeds, layers: 0 }
    }
    /// Layer `(inp → out)`: its per-seed draws as [w0, b0, w1, b1, …].
    fn layer(&mut self, kind_index: u64, inp: i64, out: i64) -> Vec<Tensor> {
        let k = 1.0 / (inp as f64).sqrt();
        let mut v = vec![];
        let pos = self.layers;
        self.layers += 1;
        for &s in self.seeds {
            rng::reseed(s, Stream::Init, kind_index, pos);
            let u =
                |shape: [i64; 2]| (Tensor::rand(shape, (Kind::Float, Device::Cpu)) * 2.0 - 1.0) * k;
            v.push(u([inp, out]));
            v.push(u([1, out]));
        }
        v
    }
}

struct Net {
    kind: ModelKind,
    init0: Lin,
    ctrl_in: Option<Lin>,
    lin_in: Lin,
    emb: Option<Lin>,
    hidden: Vec<Lin>,
    lin_out: Lin,
    noise1: Option<Lin>,
    noise2: Option<Lin>,
    theta: Tensor,
    read1: Lin,
    bn_gamma: Tensor,
    bn_beta: Tensor,
    bn_mean: Tensor,
    bn_var: Tensor,
    read2: Lin,
    dropout: f64,
}

impl Net {
    #[allow(clippy::too_many_arguments)]
    fn new(
        vs: &nn::VarStore,
        kind: ModelKind,
        kind_index: u64,
        cfg: &ModelConfig,
        seeds: &[u64],
        rates: i64,
        channels: i64,
        classes: i64,
    ) -> Net {
        let p = vs.root();
        let h = cfg.hidden;
        let r = rates * seeds.len() as i64;
        let mut init = Init::new(seeds);
        let mut lin = |name: &str, inp: i64, out: i64| {
            let draws = init.layer(kind_index, inp, out);
            Lin::new(&p, name, &draws, rates)
        };
        let init0 = lin("init", channels, h);
        let ctrl_in = kind.controlled().then(|| lin("drift_control", channels, h));
        let tin = if kind.time_embedding() { 2 } else { 0 };
        let lin_in = lin("drift_in", h + tin, h);
        let emb = kind.controlled().then(|| lin("drift_emb", 2 * h, h));
        let hidden = (1..cfg.layers)
            .map(|i| lin(&format!("drift_hidden{i}"), h, h))
            .collect();
        let lin_out = lin("drift_out", h, h);
        let noise_in = match kind.options().1 {
            16 | 17 => Some(2),
            18 => Some(h + 2),
            _ => None,
        };
        let noise1 = noise_in.map(|i| lin("diffusion_1", i, h));
        let noise2 = noise_in.map(|_| lin("diffusion_2", h, h));
        let read1 = lin("readout_1", h, h);
        let read2 = lin("readout_2", h, classes);
        let dev = vs.device();
        let full = |v: f64, n: i64| Tensor::full([r, 1, n], v, (Kind::Float, dev));
        Net {
            kind,
            init0,
            ctrl_in,
            lin_in,
            emb,
            hidden,
            lin_out,
            noise1,
            noise2,
            theta: p.var_copy("diffusion_theta", &full(cfg.theta, 1)),
            read1,
            bn_gamma: p.var_copy("readout_bn_weight", &full(1.0, h)),
            bn_beta: p.var_copy("readout_bn_bias", &full(0.0, h)),
            bn_mean: full(0.0, h),
            bn_var: full(1.0, h),
            read2,
            dropout: cfg.dropout,
        }
    }

    /// Every tensor of the model state (weights and BatchNorm running statistics), [R, …] each.
    fn state(&self) -> Vec<&Tensor> {
        let mut v = vec![&self.init0.w, &self.init0.b];
        for l in [&self.ctrl_in, &self.emb, &self.noise1, &self.noise2]
            .into_iter()
            .flatten()
        {
            v.extend([&l.w, &l.b]);
        }
        for l in std::iter::once(&self.lin_in).chain(&self.hidden).chain([
            &self.lin_out,
            &self.read1,
            &self.read2,
        ]) {
            v.extend([&l.w, &l.b]);
        }
        v.extend([
            &self.theta,
            &self.bn_gamma,
            &self.bn_beta,
            &self.bn_mean,
            &self.bn_var,
        ]);
        v
    }

    fn time_features(t: f64, like: &Tensor) -> Tensor {
        let s = like.size();
        Tensor::from_slice(&[t.sin() as f32, t.cos() as f32])
            .to_device(like.device())
            .view([1, 1, 2])
            .expand([s[0], s[1], 2], false)
    }

    /// Logits [R, B, classes] for control paths `ctrl` [R, B, K+1, C].
    fn forward(&mut self, ctrl: &Tensor, grid: &[f64], train: bool) -> Result<Tensor> {
        let z0 = self.init0.fwd(&ctrl.select(2, 0));
        let noise = if self.kind.options().1 == 0 {
            Noise::None
        } else {
            Noise::Fresh
        };
        let zt = {
            let sde = Field { net: self, ctrl };
            let path = em::solve(&sde, &z0, grid, noise)?;
            path.last().expect("non-empty path").shallow_clone()
        };
        let h = self.read1.fwd(&zt);
        let h = self
            .batch_norm(&h, train)
            .relu()
            .dropout(self.dropout, train);
        Ok(self.read2.fwd(&h))
    }

    /// BatchNorm1d per replica over its batch (momentum 0.1, eps 1e-5).
    fn batch_norm(&mut self, x: &Tensor, train: bool) -> Tensor {
        let (mean, var) = if train {
            let mean = x.mean_dim([1i64].as_slice(), true, Kind::Float);
            let var = x.var_dim([1i64].as_slice(), false, true);
            tch::no_grad(|| {
                let n = x.size()[1] as f64;
                let unbiased = &var * (n / (n - 1.0));
                self.bn_mean = &self.bn_mean * 0.9 + &mean * 0.1;
                self.bn_var = &self.bn_var * 0.9 + unbiased * 0.1;
            });
            (mean, var)
        } else {
            (self.bn_mean.shallow_clone(), self.bn_var.shallow_clone())
        };
        (x - mean) / (var + 1e-5).sqrt() * &self.bn_gamma + &self.bn_beta
    }
}

/// The drift and diffusion of one batch: the net and the batch's control on the grid.
struct Field<'a> {
    net: &'a Net,
    ctrl: &'a Tensor,
}

impl DiagonalSde for Field<'_> {
    fn drift(&self, t: f64, step: usize, z: &Tensor) -> Tensor {
        let n = self.net;
        let inp = if n.kind.time_embedding() {
            Tensor::cat(&[Net::time_features(t, z), z.shallow_clone()], 2)
        } else {
            z.shallow_clone()
        };
        let mut u = n.lin_in.fwd(&inp);
        if let (Some(c), Some(e)) = (&n.ctrl_in, &n.emb) {
            let xt = c.fwd(&self.ctrl.select(2, step as i64));
            u = e.fwd(&Tensor::cat(&[u, xt], 2));
        }
        u = u.relu();
        for l in &n.hidden {
            u = l.fwd(&u).relu();
        }
        u = n.lin_out.fwd(&u);
        if n.kind.geometric() {
            u *= z.tanh();
        }
        u.tanh()
    }

    fn diffusion(&self, t: f64, _step: usize, z: &Tensor) -> Tensor {
        let n = self.net;
        let (Some(a), Some(b)) = (&n.noise1, &n.noise2) else {
            return z.zeros_like();
        };
        let tf = Net::time_features(t, z);
        let s = match n.kind.options().1 {
            18 => b
                .fwd(&a.fwd(&Tensor::cat(&[tf, z.shallow_clone()], 2)).relu())
                .relu(),
            16 => b.fwd(&a.fwd(&tf).relu()).relu(),
            _ => b.fwd(&a.fwd(&tf).relu()).relu() * z,
        };
        (n.theta.sigmoid() * s.nan_to_num(0.0, 0.0, 0.0)).tanh()
    }
}

// ---- Training --------------------------------------------------------------------------------

/// Per replica: mean cross-entropy and accuracy of `net` on a split (eval mode), [R] each.
fn evaluate(net: &mut Net, s: &Split, grid: &[f64], chunk: i64) -> Result<(Tensor, Tensor)> {
    tch::no_grad(|| {
        let n = s.y.size()[1];
        let (mut loss, mut correct) = (vec![], vec![]);
        let mut start = 0;
        while start < n {
            let len = chunk.min(n - start);
            let logits = net.forward(&s.ctrl.narrow(1, start, len), grid, false)?;
            let y = s.y.narrow(1, start, len);
            let lp = logits.log_softmax(-1, Kind::Float);
            loss.push(
                -lp.gather(2, &y.unsqueeze(-1), false)
                    .squeeze_dim(-1)
                    .sum_dim_intlist([1i64].as_slice(), false, Kind::Float),
            );
            correct.push(
                logits
                    .argmax(-1, false)
                    .eq_tensor(&y)
                    .to_kind(Kind::Float)
                    .sum_dim_intlist([1i64].as_slice(), false, Kind::Float),
            );
            start += len;
        }
        let sum = |v: Vec<Tensor>| {
            Tensor::stack(&v, 0).sum_dim_intlist([0i64].as_slice(), false, Kind::Float) / n as f64
        };
        Ok((sum(loss), sum(correct)))
    })
}

fn host(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).to_device(Device::Cpu).reshape([-1]))
        .unwrap_or_default()
}

/// Batch boundaries over n examples; a last batch of one joins the previous (BatchNorm needs
/// two).
fn batches(n: i64, b: i64) -> Vec<(i64, i64)> {
    let mut out = vec![];
    let mut s = 0;
    while s < n {
        let len = b.min(n - s);
        out.push((s, len));
        s += len;
    }
    if out.len() > 1 && out.last().is_some_and(|l| l.1 == 1) {
        let last = out.pop().unwrap();
        out.last_mut().unwrap().1 += last.1;
    }
    out
}

/// One finished replica.
struct Final {
    model: ModelKind,
    rate: f64,
    seed: u64,
    best_epoch: usize,
    val_loss: f64,
    test_loss: f64,
    test_acc: f64,
    diverged_epoch: Option<usize>,
}

const METRICS: [&str; 10] = [
    "model",
    "rate",
    "seed",
    "epoch",
    "lr",
    "train_loss",
    "val_loss",
    "val_acc",
    "test_acc",
    "diverged",
];

#[allow(clippy::too_many_arguments)]
fn train_kind(
    cfg: &Config,
    ctx: &mut RunContext,
    data: &Data,
    kind: ModelKind,
    kind_index: u64,
    seeds: &[u64],
    batch: i64,
    lr: f64,
) -> Result<Option<Vec<Final>>> {
    let dev = ctx.device;
    let (nr, ns) = (cfg.rates.len(), seeds.len());
    let r = (nr * ns) as i64;
    let vs = nn::VarStore::new(dev);
    let mut net = Net::new(
        &vs,
        kind,
        kind_index,
        &cfg.model,
        seeds,
        nr as i64,
        data.channels,
        data.classes,
    );
    let mut opt = Optimizer::new(
        crate::optim::trainable(&vs),
        &OptimConfig {
            name: OptimName::Adam,
            lr,
            weight_decay: lr * cfg.weight_decay_factor,
            ..Default::default()
        },
    )?;
    let mut best: Vec<Tensor> = net.state().iter().map(|t| t.detach().copy()).collect();
    let mut best_val = vec![f64::INFINITY; r as usize];
    let mut best_epoch = vec![0usize; r as usize];
    let mut diverged: Vec<Option<usize>> = vec![None; r as usize];
    let n = data.train.y.size()[1];
    let grid = &data.grid;
    let mut progress = Progress::new(
        &format!("neural-sde {}", kind.name()),
        cfg.epochs as u64,
        ctx.quiet,
    );
    for epoch in 0..cfg.epochs {
        let factor = cfg.lr_gamma.powi((epoch / cfg.lr_step) as i32);
        opt.set_lr_factor(factor);
        rng::reseed(ctx.seed, Stream::Shuffle, kind_index, epoch as u64);
        let perm = Tensor::randperm(n, (Kind::Int64, Device::Cpu)).to_device(dev);
        let mut loss_sum = Tensor::zeros([r], (Kind::Float, dev));
        for (bi, (s, len)) in batches(n, batch).into_iter().enumerate() {
            rng::reseed(
                ctx.seed,
                Stream::Step,
                kind_index * 1_000_000 + epoch as u64,
                bi as u64,
            );
            let idx = perm.narrow(0, s, len);
            let ctrl = data.train.ctrl.index_select(1, &idx);
            let y = data.train.y.index_select(1, &idx);
            let logits = net.forward(&ctrl, grid, true)?;
            let ce = -logits
                .log_softmax(-1, Kind::Float)
                .gather(2, &y.unsqueeze(-1), false)
                .squeeze_dim(-1)
                .mean_dim([1i64].as_slice(), false, Kind::Float); // [R]
            opt.zero_grad();
            ce.sum(Kind::Float).backward();
            opt.step();
            loss_sum += ce.detach() * len as f64;
        }
        let train_loss = host(&(loss_sum / n as f64));
        rng::reseed(ctx.seed, Stream::Probe, kind_index, epoch as u64);
        let (vl, va) = evaluate(&mut net, &data.val, grid, cfg.eval_batch)?;
        let (_, ta) = evaluate(&mut net, &data.test, grid, cfg.eval_batch)?;
        let (vl, va, ta) = (host(&vl), host(&va), host(&ta));
        let mut improved = vec![0f32; r as usize];
        for i in 0..r as usize {
            if diverged[i].is_none()
                && !(train_loss[i].is_finite() && train_loss[i] <= cfg.divergence_loss)
            {
                diverged[i] = Some(epoch + 1);
            }
            if diverged[i].is_none() && vl[i] < best_val[i] {
                best_val[i] = vl[i];
                best_epoch[i] = epoch + 1;
                improved[i] = 1.0;
            }
        }
        if improved.iter().any(|&v| v > 0.0) {
            let m = Tensor::from_slice(&improved)
                .to_device(dev)
                .view([r, 1, 1])
                .gt(0.5);
            tch::no_grad(|| {
                for (b, cur) in best.iter_mut().zip(net.state()) {
                    *b = cur.detach().where_self(&m, b);
                }
            });
        }
        for (ri, &rate) in cfg.rates.iter().enumerate() {
            for (si, &seed) in seeds.iter().enumerate() {
                let i = ri * ns + si;
                ctx.log(vec![
                    kind.name().into(),
                    rate.into(),
                    (seed as i64).into(),
                    (epoch + 1).into(),
                    (lr * factor).into(),
                    train_loss[i].into(),
                    vl[i].into(),
                    va[i].into(),
                    ta[i].into(),
                    diverged[i].is_some().to_string().into(),
                ])?;
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        progress.update(
            epoch as u64 + 1,
            &format!("{} val acc {:.3}", kind.name(), mean(&va)),
        );
        if ctx.interrupt.requested().is_some() {
            progress.finish();
            return Ok(None);
        }
    }
    progress.finish();
    // The best-validation weights and running statistics of every replica.
    tch::no_grad(|| {
        for (dst, src) in net.state().into_iter().zip(&best) {
            let mut d = dst.shallow_clone();
            d.copy_(src);
        }
    });
    rng::reseed(ctx.seed, Stream::Probe, kind_index, u64::MAX >> 1);
    let (tl, ta) = evaluate(&mut net, &data.test, grid, cfg.eval_batch)?;
    let (tl, ta) = (host(&tl), host(&ta));
    let mut out = vec![];
    for (ri, &rate) in cfg.rates.iter().enumerate() {
        for (si, &seed) in seeds.iter().enumerate() {
            let i = ri * ns + si;
            out.push(Final {
                model: kind,
                rate,
                seed,
                best_epoch: best_epoch[i],
                val_loss: best_val[i],
                test_loss: tl[i],
                test_acc: ta[i],
                diverged_epoch: diverged[i],
            });
        }
    }
    Ok(Some(out))
}

const PER_REPLICA: [&str; 10] = [
    "model",
    "code",
    "rate",
    "seed",
    "best_epoch",
    "val_loss",
    "test_loss",
    "test_acc",
    "diverged",
    "diverged_epoch",
];

const SUMMARY: [&str; 9] = [
    "model",
    "code",
    "rate",
    "seeds",
    "test_acc",
    "test_acc_std",
    "drop",
    "drop_std",
    "diverged",
];

fn train(table: &Table, ctx: &mut RunContext) -> Result<Outcome> {
    let cfg: Config = config::typed(table)?;
    let seeds: Vec<u64> = (0..cfg.seeds).map(|i| ctx.seed + i).collect();
    ctx.set_seeds(seeds.clone());
    let data = load(&cfg, ctx, &seeds)?;
    let total = data.train.y.size()[1] + data.val.y.size()[1] + data.test.y.size()[1];
    let batch = if cfg.batch_size > 0 {
        cfg.batch_size
    } else {
        official_batch(total)
    };
    let lr = if cfg.lr > 0.0 {
        cfg.lr
    } else {
        1e-3 * batch as f64 / 16.0
    };
    ctx.open_metrics(&METRICS)?;
    let mut finals: Vec<Final> = vec![];
    for (k, &kind) in cfg.models.iter().enumerate() {
        match train_kind(&cfg, ctx, &data, kind, k as u64, &seeds, batch, lr)? {
            Some(f) => finals.extend(f),
            None => {
                let sig = ctx.interrupt.requested().unwrap_or(2);
                return Ok(Outcome::Interrupted(sig));
            }
        }
    }
    let rows: Vec<Vec<String>> = finals
        .iter()
        .map(|f| {
            vec![
                f.model.name().to_string(),
                f.model.code(),
                float(f.rate),
                f.seed.to_string(),
                f.best_epoch.to_string(),
                float(f.val_loss),
                float(f.test_loss),
                float(f.test_acc),
                f.diverged_epoch.is_some().to_string(),
                f.diverged_epoch.map_or(String::new(), |e| e.to_string()),
            ]
        })
        .collect();
    write_atomic(&ctx.dir.join("final.csv"), &csv_bytes(&PER_REPLICA, &rows)?)?;
    let summary = summarise(&cfg, &finals);
    write_atomic(
        &ctx.dir.join("summary.csv"),
        &csv_bytes(&SUMMARY, &summary)?,
    )?;
    ctx.set_final_metrics(headline(&cfg, &finals, seeds.len()));
    Ok(Outcome::Completed)
}

/// Per (model, rate): seed mean and std of test accuracy, the paired drop from the first rate,
/// and the number of diverged replicas.
fn summarise(cfg: &Config, finals: &[Final]) -> Vec<Vec<String>> {
    let mut out = vec![];
    for &m in &cfg.models {
        let base: Vec<&Final> = finals
            .iter()
            .filter(|f| f.model == m && f.rate == cfg.rates[0])
            .collect();
        for &rate in &cfg.rates {
            let mine: Vec<&Final> = finals
                .iter()
                .filter(|f| f.model == m && f.rate == rate)
                .collect();
            let acc: Vec<f64> = mine.iter().map(|f| f.test_acc).collect();
            let drops: Vec<f64> = mine
                .iter()
                .filter_map(|f| {
                    base.iter()
                        .find(|b| b.seed == f.seed)
                        .map(|b| b.test_acc - f.test_acc)
                })
                .collect();
            let (a, sa) = mean_std(&acc);
            let (d, sd) = mean_std(&drops);
            out.push(vec![
                m.name().to_string(),
                m.code(),
                float(rate),
                mine.len().to_string(),
                float(a),
                float(sa),
                float(d),
                float(sd),
                mine.iter()
                    .filter(|f| f.diverged_epoch.is_some())
                    .count()
                    .to_string(),
            ]);
        }
    }
    out
}

/// Per model: test accuracy at the lowest and highest missing rate and the paired drop between
/// them, each as mean and std over the seeds, and the number of seeds.
fn headline(
    cfg: &Config,
    finals: &[Final],
    seeds: usize,
) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    let (lo, hi) = (
        cfg.rates[0],
        *cfg.rates.last().expect("rates checked non-empty"),
    );
    for &m in &cfg.models {
        let at = |rate: f64| -> Vec<&Final> {
            finals
                .iter()
                .filter(|f| f.model == m && f.rate == rate)
                .collect()
        };
        let (low, high) = (at(lo), at(hi));
        let acc = |v: &[&Final]| -> Vec<f64> { v.iter().map(|f| f.test_acc).collect() };
        let drops: Vec<f64> = low
            .iter()
            .filter_map(|b| {
                high.iter()
                    .find(|f| f.seed == b.seed)
                    .map(|f| b.test_acc - f.test_acc)
            })
            .collect();
        insert_mean_std(&mut out, &format!("{}_acc_lo", m.name()), &acc(&low));
        insert_mean_std(&mut out, &format!("{}_acc_hi", m.name()), &acc(&high));
        insert_mean_std(&mut out, &format!("{}_drop", m.name()), &drops);
    }
    out.insert("seeds".into(), seeds.into());
    out
}

// ---- The paper's claims ----------------------------------------------------------------------

use crate::claims::{self, Claim, Expect, Measured, RunFiles, Scale};

const CLAIMS: &[Claim] = &[
    Claim {
        id: "lsde-drops-less",
        statement: "Neural LSDE loses less test accuracy from the lowest to the highest missing rate (0 → 70 %) than the naive neural SDE: naive drop − LSDE drop, seed means (> 0: the issue's comparison; the paper's 30/50/70 % table gives no threshold here)",
        paper: "stable classes robust to missing data",
        expect: Expect::Above(0.0),
        unit: "accuracy",
        scale: Scale::Both,
        variant: None,
        measure: lsde_margin,
    },
    Claim {
        id: "lnsde-drops-less",
        statement: "Neural LNSDE loses less test accuracy from the lowest to the highest missing rate than the naive neural SDE: naive drop − LNSDE drop (> 0, as above)",
        paper: "stable classes robust to missing data",
        expect: Expect::Above(0.0),
        unit: "accuracy",
        scale: Scale::Both,
        variant: None,
        measure: lnsde_margin,
    },
    Claim {
        id: "gsde-drops-less",
        statement: "Neural GSDE loses less test accuracy from the lowest to the highest missing rate than the naive neural SDE: naive drop − GSDE drop (> 0, as above)",
        paper: "stable classes robust to missing data",
        expect: Expect::Above(0.0),
        unit: "accuracy",
        scale: Scale::Both,
        variant: None,
        measure: gsde_margin,
    },
    Claim {
        id: "stable-no-divergence",
        statement: "no stable-class replica (LSDE, LNSDE, GSDE; every rate and seed) has a non-finite or exploding training loss: their number (0, the issue's and the paper's stability claim)",
        paper: "stable classes do not diverge",
        expect: Expect::AtMost(0.0),
        unit: "replicas",
        scale: Scale::Both,
        variant: None,
        measure: stable_diverged,
    },
];

/// A model's seed-mean drop at the last (highest) rate of summary.csv.
fn drop_of(f: &RunFiles, model: &str) -> Result<Option<f64>> {
    let t = f.csv("summary.csv")?;
    let (cm, cr, cd) = (t.col("model")?, t.col("rate")?, t.col("drop")?);
    let mut rows: Vec<&Vec<String>> = t.rows.iter().filter(|r| r[cm] == model).collect();
    rows.sort_by(|a, b| {
        let p = |r: &Vec<String>| r[cr].parse::<f64>().unwrap_or(f64::NAN);
        p(a).total_cmp(&p(b))
    });
    match rows.last() {
        Some(r) if rows.len() >= 2 => Ok(Some(t.parse(&r[cd], "drop")?)),
        _ => Ok(None),
    }
}

fn margin(f: &RunFiles, model: &str) -> Result<Measured> {
    match (drop_of(f, "naive")?, drop_of(f, model)?) {
        (Some(n), Some(m)) => claims::value(n - m),
        _ => Ok(Measured::NotApplicable(format!(
            "needs the naive and {model} models at two or more missing rates"
        ))),
    }
}

fn lsde_margin(f: &RunFiles) -> Result<Measured> {
    margin(f, "lsde")
}
fn lnsde_margin(f: &RunFiles) -> Result<Measured> {
    margin(f, "lnsde")
}
fn gsde_margin(f: &RunFiles) -> Result<Measured> {
    margin(f, "gsde")
}

fn stable_diverged(f: &RunFiles) -> Result<Measured> {
    let t = f.csv("summary.csv")?;
    let (cm, cd) = (t.col("model")?, t.col("diverged")?);
    let mut any = false;
    let mut count = 0.0;
    for r in &t.rows {
        if ["lsde", "lnsde", "gsde"].contains(&r[cm].as_str()) {
            any = true;
            count += t.parse(&r[cd], "diverged")?;
        }
    }
    if any {
        claims::value(count)
    } else {
        Ok(Measured::NotApplicable(
            "no stable-class model in this run".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_batch_rule_and_batches() {
        assert_eq!(official_batch(20), 16);
        assert_eq!(official_batch(100), 32);
        assert_eq!(official_batch(1000), 128);
        assert_eq!(official_batch(100_000), 128);
        assert_eq!(batches(10, 4), vec![(0, 4), (4, 4), (8, 2)]);
        assert_eq!(batches(9, 4), vec![(0, 4), (4, 5)]);
        assert_eq!(ModelKind::Gsde.code(), "neuralsde_6_17");
        assert_eq!(ModelKind::Ode.code(), "neuralsde_1_00");
    }

    /// The batched drift and diffusion equal the official formulas written out for one
    /// replica with plain matrix products.
    #[test]
    fn batched_field_matches_the_official_formulas_per_replica() {
        let _rng = crate::rng::serial();
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = ModelConfig {
            hidden: 4,
            layers: 2,
            ..Default::default()
        };
        let seeds = [3u64, 4];
        let (rates, c, classes) = (2i64, 3i64, 3i64);
        for (k, kind) in [
            ModelKind::Naive,
            ModelKind::Lsde,
            ModelKind::Lnsde,
            ModelKind::Gsde,
        ]
        .into_iter()
        .enumerate()
        {
            let net = Net::new(&vs, kind, 10 + k as u64, &cfg, &seeds, rates, c, classes);
            tch::manual_seed(9);
            let r = rates * 2;
            let z = Tensor::randn([r, 5, 4], (Kind::Float, Device::Cpu));
            let ctrl = Tensor::randn([r, 5, 7, c], (Kind::Float, Device::Cpu));
            let field = Field {
                net: &net,
                ctrl: &ctrl,
            };
            let (t, step) = (0.3f64, 2usize);
            let f = field.drift(t, step, &z);
            let g = field.diffusion(t, step, &z);
            // Replicas r and r + S (same seed, other rate) share their initial weights.
            assert!(f.get(0).allclose(
                &net_drift_one(&net, 0, t, &z.get(0), &ctrl.get(0).select(1, 2)),
                1e-5,
                1e-6,
                false
            ));
            assert!(f.get(3).allclose(
                &net_drift_one(&net, 3, t, &z.get(3), &ctrl.get(3).select(1, 2)),
                1e-5,
                1e-6,
                false
            ));
            assert!(net.lin_in.w.get(1).equal(&net.lin_in.w.get(3)));
            assert!(!net.lin_in.w.get(0).equal(&net.lin_in.w.get(1)));
            let tf = Tensor::from_slice(&[t.sin() as f32, t.cos() as f32]).view([1, 2]);
            let (a, b) = (net.noise1.as_ref().unwrap(), net.noise2.as_ref().unwrap());
            let one = |l: &Lin, i: i64, x: &Tensor| x.matmul(&l.w.get(i)) + l.b.get(i);
            for i in [0i64, 2] {
                let zi = z.get(i);
                let s = match kind.options().1 {
                    18 => one(
                        b,
                        i,
                        &one(
                            a,
                            i,
                            &Tensor::cat(&[tf.expand([5, 2], false), zi.shallow_clone()], 1),
                        )
                        .relu(),
                    )
                    .relu(),
                    16 => one(b, i, &one(a, i, &tf).relu())
                        .relu()
                        .expand([5, 4], false),
                    _ => one(b, i, &one(a, i, &tf).relu()).relu() * &zi,
                };
                let want = (net.theta.get(i).sigmoid() * s).tanh();
                assert!(g.get(i).allclose(&want, 1e-5, 1e-6, false), "{kind:?}");
            }
        }
    }

    fn net_drift_one(net: &Net, i: i64, t: f64, z: &Tensor, x: &Tensor) -> Tensor {
        let one = |l: &Lin, v: &Tensor| v.matmul(&l.w.get(i)) + l.b.get(i);
        let b = z.size()[0];
        let inp = if net.kind.time_embedding() {
            let tf = Tensor::from_slice(&[t.sin() as f32, t.cos() as f32])
                .view([1, 2])
                .expand([b, 2], false);
            Tensor::cat(&[tf, z.shallow_clone()], 1)
        } else {
            z.shallow_clone()
        };
        let mut u = one(&net.lin_in, &inp);
        if net.kind.controlled() {
            let xt = one(net.ctrl_in.as_ref().unwrap(), x);
            u = one(net.emb.as_ref().unwrap(), &Tensor::cat(&[u, xt], 1));
        }
        u = u.relu();
        for l in &net.hidden {
            u = one(l, &u).relu();
        }
        u = one(&net.lin_out, &u);
        if net.kind.geometric() {
            u *= z.tanh();
        }
        u.tanh()
    }

    #[test]
    fn synthetic_classes_are_balanced_with_unit_scale_ou() {
        let _rng = crate::rng::serial();
        tch::manual_seed(1);
        let d = DataConfig {
            noise: 0.0,
            ..Default::default()
        };
        let s = synthetic(&d, 3000);
        assert_eq!(s.x.size(), [3000, 50, 2]);
        let counts = s.y.bincount::<Tensor>(None, 3);
        assert!(counts.eq(1000).all().int64_value(&[]) == 1);
        // The OU channel is stationary with unit variance at every time point.
        let v =
            s.x.select(2, 1)
                .to_kind(Kind::Double)
                .var_dim([0i64].as_slice(), true, false);
        let (lo, hi) = (v.min().double_value(&[]), v.max().double_value(&[]));
        assert!(lo > 0.85 && hi < 1.15, "{lo} {hi}");
        // Sinusoid amplitude within [0.5, 1.5].
        assert!(s.x.select(2, 0).abs().max().double_value(&[]) <= 1.5 + 1e-6);
    }
}
