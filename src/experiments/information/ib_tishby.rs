//! `ib-tishby` — Shwartz-Ziv & Tishby, "Opening the Black Box of Deep Neural Networks via
//! Information" (paper 10), with the controls of Saxe et al. ("On the information bottleneck
//! theory of deep learning"). The 12-10-7-5-4-3-2 network learns the 12-bit icosahedron task;
//! at logged epochs every layer T gets I(X;T) and I(T;Y) (binning or KDE bounds, in bits), and
//! the per-layer statistics of the epoch's mini-batch gradients give the drift / diffusion
//! phases (‖mean‖, std = √tr Cov, SNR = ‖mean‖/std).
//!
//! `seeds = S` trains S independently initialised networks as one batched model: weights
//! [S, in, out], `baddbmm` layers, losses summed over seeds (so each seed gets exactly its own
//! gradient), one flat Adam over all of them. Each seed draws its own initial weights and batch
//! order from its seed alone, so seed k of a batched run equals a run with `seeds = 1` and
//! `--seed k` up to floating point.

use crate::config;
use crate::data::{split, tishby};
use crate::experiments::{Entry, EvalInput, EvalRow};
use crate::info::{self, Estimator};
use crate::nn::Activation;
use crate::optim::{OptimConfig, OptimName, Optimizer};
use crate::rng::{self, Stream};
use crate::run::checkpoint::{self, State};
use crate::run::metrics::{insert_mean_std, mean_std, Cell, Keep, MetricsWriter};
use crate::run::progress::Progress;
use crate::run::{Outcome, RunContext};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use toml::Table;

pub const ENTRY: Entry = Entry {
    name: "ib-tishby",
    family: "information",
    description: "information plane of the 12-bit task: binned / KDE MI per layer, gradient SNR phases, batched seeds",
    paper: "Opening the Black Box of Deep Neural Networks via Information (Shwartz-Ziv & Tishby, 2017)",
    defaults: include_str!("../../../experiments/ib-tishby.toml"),
    normalize: config::normalize::<Config>,
    train,
    eval: Some(eval),
    information_plane: true,
    claims: CLAIMS,
    variants: &["ib-tishby-relu"],
    extendable: true,
    nested_runs: false,
};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DataSection {
    /// Empty: generate the 4096 patterns; or IDNNs' var_u.mat, or a CSV (12 bits, label).
    pub path: String,
    pub test_fraction: f64,
    pub split_seed: u64,
}

impl Default for DataSection {
    fn default() -> Self {
        DataSection {
            path: String::new(),
            test_fraction: 0.2,
            split_seed: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// Layer widths, input first; the last layer is a softmax.
    pub widths: Vec<i64>,
    pub activation: Activation,
}

impl Default for ModelSection {
    fn default() -> Self {
        ModelSection {
            widths: vec![12, 10, 7, 5, 4, 3, 2],
            activation: Activation::Tanh,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    pub epochs: usize,
    pub batch_size: i64,
    /// Checkpoint every N epochs (interrupts always checkpoint).
    pub checkpoint_every: usize,
}

impl Default for TrainSection {
    fn default() -> Self {
        TrainSection {
            epochs: 8000,
            batch_size: 512,
            checkpoint_every: 500,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// IDNNs: unique(int(logspace(log2 1, log2 E, points, base 2))) − 1 (274 epochs for 8000).
    Idnns,
    /// Every `every`-th epoch.
    Every,
    /// Saxe et al.: every epoch below 20, every 5th to 100, every 20th to 2000, every 100th after.
    Saxe,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    pub schedule: Schedule,
    pub points: usize,
    pub every: usize,
    /// Record gradient statistics (one extra pass over each logged epoch's gradients).
    pub grads: bool,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            schedule: Schedule::Idnns,
            points: 400,
            every: 100,
            grads: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MiOn {
    All,
    Train,
    Test,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MiSection {
    pub on: MiOn,
    pub estimators: Vec<Estimator>,
    pub bins: i64,
    pub bin_width: f64,
    pub noise_var: f64,
}

impl Default for MiSection {
    fn default() -> Self {
        MiSection {
            on: MiOn::All,
            estimators: vec![Estimator::BinFixed],
            bins: 30,
            bin_width: 0.07,
            noise_var: 1e-3,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Networks trained at once; seed k uses run seed + k.
    pub seeds: usize,
    pub data: DataSection,
    pub model: ModelSection,
    pub optim: OptimConfig,
    pub train: TrainSection,
    pub log: LogSection,
    pub mi: MiSection,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seeds: 1,
            data: DataSection::default(),
            model: ModelSection::default(),
            optim: OptimConfig {
                name: OptimName::Adam,
                lr: 4e-4,
                ..Default::default()
            },
            train: TrainSection::default(),
            log: LogSection::default(),
            mi: MiSection::default(),
        }
    }
}

impl config::Check for Config {
    fn check(&self) -> Result<()> {
        if self.seeds == 0 || self.train.epochs == 0 || self.train.batch_size < 1 {
            bail!("seeds, train.epochs and train.batch_size must be at least 1");
        }
        let w = &self.model.widths;
        if w.len() < 2 || w[0] != 12 || *w.last().unwrap_or(&0) != 2 || w.iter().any(|&x| x < 1) {
            bail!("model.widths must start with 12 (the input bits) and end with 2 (the classes)");
        }
        if self.mi.estimators.is_empty()
            || self.mi.bins < 2
            || self.mi.bin_width <= 0.0
            || self.mi.noise_var <= 0.0
        {
            bail!("mi needs at least one estimator, bins >= 2, bin_width > 0 and noise_var > 0");
        }
        if !(0.0..1.0).contains(&self.data.test_fraction) || self.data.test_fraction == 0.0 {
            bail!("data.test_fraction must be in (0, 1)");
        }
        if self.log.schedule == Schedule::Every && self.log.every == 0 {
            bail!("log.every must be at least 1");
        }
        self.optim.check()
    }
    fn resolve(&mut self) {
        self.optim.resolve();
    }
}

/// Epochs at which to log: row `epoch = e` is the state after e epochs (0 = the initial
/// weights). The schedule's epochs, and always the final state (`epochs`).
pub fn logged_epochs(log: &LogSection, epochs: usize) -> Vec<usize> {
    let mut e: Vec<usize> = match log.schedule {
        Schedule::Idnns => {
            let top = (epochs as f64).log2();
            let n = log.points.max(2);
            (0..n)
                .map(|i| (2f64.powf(top * i as f64 / (n - 1) as f64)) as usize - 1)
                .collect()
        }
        Schedule::Every => (0..epochs).step_by(log.every).collect(),
        Schedule::Saxe => (0..epochs)
            .filter(|&e| {
                e < 20 || (e < 100 && e % 5 == 0) || (e < 2000 && e % 20 == 0) || e % 100 == 0
            })
            .collect(),
    };
    e.push(epochs);
    e.sort_unstable();
    e.dedup();
    e.retain(|&x| x <= epochs);
    e
}

/// Truncated normal (±2 std, resampled) of the given std: TensorFlow's initialiser, as IDNNs.
fn truncated_normal(shape: &[i64], std: f64) -> Tensor {
    let mut z = Tensor::randn(shape, (Kind::Float, Device::Cpu));
    loop {
        let bad = z.abs().gt(2.0);
        if bad.sum(Kind::Int64).int64_value(&[]) == 0 {
            return z * std;
        }
        z = Tensor::randn(shape, (Kind::Float, Device::Cpu)).where_self(&bad, &z);
    }
}

/// S networks with stacked weights [S, in, out] and biases [S, 1, out].
struct SeedNets {
    ws: Vec<Tensor>,
    bs: Vec<Tensor>,
    act: Activation,
}

impl SeedNets {
    /// Each seed's weights are drawn on the CPU from that seed alone, layer by layer.
    fn new(vs: &VarStore, widths: &[i64], seeds: &[u64], act: Activation) -> Self {
        let per_seed: Vec<Vec<Tensor>> = seeds
            .iter()
            .map(|&s| {
                rng::reseed(s, Stream::Init, 0, 0);
                widths
                    .windows(2)
                    .map(|w| truncated_normal(&[w[0], w[1]], 1.0 / (w[0] as f64).sqrt()))
                    .collect()
            })
            .collect();
        let s = seeds.len() as i64;
        let root = vs.root();
        let (mut ws, mut bs) = (vec![], vec![]);
        for (l, w) in widths.windows(2).enumerate() {
            let stacked = Tensor::stack(&per_seed.iter().map(|p| &p[l]).collect::<Vec<_>>(), 0)
                .to_device(vs.device());
            ws.push(root.var_copy(&format!("w{l}"), &stacked));
            bs.push(root.var_copy(
                &format!("b{l}"),
                &Tensor::zeros([s, 1, w[1]], (Kind::Float, vs.device())),
            ));
        }
        SeedNets { ws, bs, act }
    }

    /// Whether `backward` can differentiate this activation by hand (from its output alone).
    fn manual_backward(&self) -> bool {
        matches!(
            self.act,
            Activation::Tanh | Activation::Relu | Activation::Sigmoid | Activation::Identity
        )
    }

    /// The derivative of the activation at output `h` times the incoming gradient `d`.
    fn act_backward(&self, d: &Tensor, h: &Tensor) -> Tensor {
        match self.act {
            Activation::Tanh => d - d * h * h,
            Activation::Relu => d * h.gt(0.0),
            Activation::Sigmoid => d * h * (1.0 - h),
            _ => d.shallow_clone(),
        }
    }

    /// One training step's forward and backward by hand, for loss = Σ_seeds mean_batch CE:
    /// writes ∂L/∂W and ∂L/∂b straight into the parameters' `.grad` (the optimizer's flat
    /// buffer). Half the ops of autograd and no graph to build: this network is launch-bound.
    fn grad_step(&self, x: &Tensor, onehot: &Tensor) {
        tch::no_grad(|| {
            let mut inputs = vec![x.shallow_clone()];
            let last = self.ws.len() - 1;
            let mut h = x.shallow_clone();
            for (l, (w, b)) in self.ws.iter().zip(&self.bs).enumerate() {
                h = b.baddbmm(&h, w, 1.0, 1.0);
                if l < last {
                    h = self.act.apply(&h);
                    inputs.push(h.shallow_clone());
                }
            }
            let len = x.size()[1] as f64;
            // ∂/∂logits of the batch-mean cross-entropy: (softmax − onehot) / B.
            let mut delta = (h.softmax(-1, Kind::Float) - onehot) / len;
            for l in (0..=last).rev() {
                let _ = inputs[l]
                    .transpose(1, 2)
                    .bmm_out(&self.ws[l].grad(), &delta);
                let _ =
                    delta.sum_intlist_out(&self.bs[l].grad(), [1i64].as_slice(), true, Kind::Float);
                if l > 0 {
                    delta = self.act_backward(&delta.bmm(&self.ws[l].transpose(1, 2)), &inputs[l]);
                }
            }
        });
    }

    /// Logits [S, B, 2] and, when `keep`, every layer's activations (softmax for the last).
    fn forward(&self, x: &Tensor, keep: bool) -> (Tensor, Vec<Tensor>) {
        let mut h = x.shallow_clone();
        let mut layers = vec![];
        let last = self.ws.len() - 1;
        for (l, (w, b)) in self.ws.iter().zip(&self.bs).enumerate() {
            h = b.baddbmm(&h, w, 1.0, 1.0);
            if l < last {
                h = self.act.apply(&h);
                if keep {
                    layers.push(h.shallow_clone());
                }
            }
        }
        if keep {
            layers.push(h.softmax(-1, Kind::Float));
        }
        (h, layers)
    }
}

/// Per-seed batch orders for one epoch, [S, n], from integer hashing of (seed, epoch, row): no
/// generator state, identical on CPU and CUDA, and independent of which other seeds run.
fn permutations(seeds: &[u64], epoch: usize, n: i64, device: Device) -> Tensor {
    const P: i64 = 2_147_483_647; // 2^31 − 1: products of two residues stay below 2^62
    let mix: Vec<i64> = seeds
        .iter()
        .map(|&s| rng::derive(s, Stream::Shuffle, epoch as u64, 0) % P)
        .collect();
    let s = Tensor::from_slice(&mix).to_device(device).unsqueeze(1);
    let i = Tensor::arange(n, (Kind::Int64, device)).unsqueeze(0);
    let mut x = (s + i * 40_503).remainder(P);
    for (a, c) in [(48_271i64, 12_345i64), (69_621, 98_765), (39_373, 4_242)] {
        x = (&x * a + c).remainder(P);
        x = x.bitwise_xor_tensor(&x.bitwise_right_shift_tensor_scalar(11));
    }
    x.argsort_stable(true, 1, false)
}

/// The dataset on the device: all patterns, their labels, and the train/test rows.
struct Data {
    x: Tensor,
    y: Tensor,
    train: Tensor,
    test: Tensor,
}

fn load(cfg: &DataSection, device: Device) -> Result<Data> {
    let (x, y) = if cfg.path.is_empty() {
        tishby::generate()
    } else {
        tishby::read_file(Path::new(&cfg.path))?
    };
    let n = y.len() as i64;
    let (train, test) = split::stratified_split(&y, cfg.test_fraction, cfg.split_seed);
    let rows = |v: Vec<usize>| {
        Tensor::from_slice(&v.into_iter().map(|i| i as i64).collect::<Vec<_>>()).to_device(device)
    };
    Ok(Data {
        x: Tensor::from_slice(&x).view([n, 12]).to_device(device),
        y: Tensor::from_slice(&y).to_device(device),
        train: rows(train),
        test: rows(test),
    })
}

/// Mean cross-entropy (bits are not used here: nats, as training) and accuracy per seed on rows.
fn loss_acc(logits: &Tensor, y: &Tensor, rows: &Tensor) -> (Tensor, Tensor) {
    let l = logits.index_select(1, rows);
    let t = y.index_select(0, rows);
    let logp = l.log_softmax(-1, Kind::Float);
    let s = l.size()[0];
    let target = t.unsqueeze(0).expand([s, -1], false).unsqueeze(2);
    // Means in double: an accuracy is k/n exactly, not its nearest float32.
    let nll = -logp.gather(2, &target, false).squeeze_dim(2).mean_dim(
        [1i64].as_slice(),
        false,
        Kind::Double,
    );
    let acc = l
        .argmax(-1, false)
        .eq_tensor(&t.unsqueeze(0))
        .to_kind(Kind::Double)
        .mean_dim([1i64].as_slice(), false, Kind::Double);
    (nll, acc)
}

/// Per-layer sums of the weight gradients over an epoch's steps, for the phase statistics.
struct GradSums {
    sum: Vec<Tensor>,
    sumsq: Vec<Tensor>,
    steps: usize,
}

impl GradSums {
    fn new(nets: &SeedNets) -> Self {
        GradSums {
            sum: nets.ws.iter().map(|w| w.zeros_like()).collect(),
            sumsq: nets
                .ws
                .iter()
                .map(|w| Tensor::zeros([w.size()[0]], (Kind::Float, w.device())))
                .collect(),
            steps: 0,
        }
    }
    fn add(&mut self, nets: &SeedNets) {
        for (l, w) in nets.ws.iter().enumerate() {
            let g = w.grad();
            self.sum[l] += &g;
            self.sumsq[l] += g
                .square()
                .sum_dim_intlist([1i64, 2].as_slice(), false, Kind::Float);
        }
        self.steps += 1;
    }
    /// (‖mean‖, std, snr) per layer, each [S]: std = √(E‖g‖² − ‖E g‖²) = √tr Cov.
    fn stats(&self) -> Vec<(Tensor, Tensor, Tensor)> {
        let n = self.steps.max(1) as f64;
        self.sum
            .iter()
            .zip(&self.sumsq)
            .map(|(s, sq)| {
                let mean_sq =
                    (s / n)
                        .square()
                        .sum_dim_intlist([1i64, 2].as_slice(), false, Kind::Float);
                let std = (sq / n - &mean_sq).clamp_min(0.0).sqrt();
                let norm = mean_sq.sqrt();
                let snr = &norm / std.clamp_min(1e-30);
                (norm, std, snr)
            })
            .collect()
    }
}

/// The run's CSV outputs besides metrics.csv, reopened (cut back to the checkpoint) on resume.
struct Outputs {
    ib: MetricsWriter,
    summary: MetricsWriter,
    grads: MetricsWriter,
}

/// Long format (one row per seed, epoch, layer and estimator), sorted by seed then epoch.
const IB_COLS: &[&str] = &[
    "seed",
    "epoch",
    "layer",
    "estimator",
    "I_XT_bits",
    "I_TY_bits",
];
const SUMMARY_COLS: &[&str] = &[
    "epoch",
    "layer",
    "estimator",
    "seeds",
    "I_XT_bits_mean",
    "I_XT_bits_std",
    "I_TY_bits_mean",
    "I_TY_bits_std",
];
const GRAD_COLS: &[&str] = &["seed", "epoch", "layer", "grad_mean", "grad_std", "snr"];
const METRIC_COLS: &[&str] = &[
    "seed",
    "epoch",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
];

/// On resume from a checkpoint after `epoch` epochs: the rows of every epoch up to it.
fn keep_until(epoch: Option<usize>) -> Option<Keep<'static>> {
    epoch.map(|e| Keep::AtMost {
        column: "epoch",
        value: e as f64,
    })
}

impl Outputs {
    fn open(dir: &Path, resumed_at: Option<usize>) -> Result<Self> {
        let open = |name: &str, cols: &[&str]| match keep_until(resumed_at) {
            Some(k) => MetricsWriter::resume(&dir.join(name), cols, k),
            None => MetricsWriter::create(&dir.join(name), cols),
        };
        Ok(Outputs {
            ib: open("ib.csv", IB_COLS)?,
            summary: open("ib_summary.csv", SUMMARY_COLS)?,
            grads: open("grads.csv", GRAD_COLS)?,
        })
    }

    /// Long files read seed by seed, epoch by epoch (rows are written epoch by epoch).
    fn sort(&mut self) -> Result<()> {
        self.ib.sort_by(&["seed", "epoch"])?;
        self.grads.sort_by(&["seed", "epoch"])
    }
}

struct Run<'a> {
    cfg: &'a Config,
    seeds: Vec<u64>,
    nets: SeedNets,
    data: Data,
    mi_rows: Tensor,
    mi_y: Tensor,
    /// Row c is the one-hot vector of class c.
    onehot: Tensor,
}

impl Run<'_> {
    /// Logs the state after `epoch` epochs: losses and accuracies, and I(X;T), I(T;Y) per layer.
    /// Returns the seeds' mean accuracies for the progress line.
    fn log_state(&self, epoch: usize, ctx: &mut RunContext, out: &mut Outputs) -> Result<String> {
        let s = self.seeds.len() as i64;
        let (logits, layers) = tch::no_grad(|| {
            self.nets
                .forward(&self.data.x.unsqueeze(0).expand([s, -1, -1], false), true)
        });
        let scores = self.scores(&logits)?;
        let n = scores.len().max(1) as f64;
        let mean = |i: usize| scores.iter().map(|m| m[i]).sum::<f64>() / n;
        let summary = format!("train_acc {:.3} test_acc {:.3}", mean(1), mean(3));
        for (seed, m) in self.seeds.iter().zip(&scores) {
            let mut row: Vec<Cell> = vec![(*seed as i64).into(), epoch.into()];
            row.extend(m.iter().map(|&v| Cell::from(v)));
            ctx.log(row)?;
        }
        let mi = &self.cfg.mi;
        let params = info::Params {
            bins: mi.bins,
            bin_width: mi.bin_width,
            noise_var: mi.noise_var,
        };
        let mut values = vec![];
        for layer in &layers {
            let t = layer.index_select(1, &self.mi_rows);
            for &e in &mi.estimators {
                let (ixt, ity) = tch::no_grad(|| info::information(e, &params, &t, &self.mi_y, 2));
                values.push(ixt.to_kind(Kind::Double));
                values.push(ity.to_kind(Kind::Double));
            }
        }
        let v = Vec::<f64>::try_from(
            Tensor::stack(&values, 0)
                .to_device(Device::Cpu)
                .flatten(0, -1),
        )?;
        let n_s = self.seeds.len();
        let mut i = 0;
        for l in 0..layers.len() {
            for &e in &mi.estimators {
                let (ixt, ity) = (&v[i * n_s..(i + 1) * n_s], &v[(i + 1) * n_s..(i + 2) * n_s]);
                i += 2;
                for (k, seed) in self.seeds.iter().enumerate() {
                    out.ib.write(vec![
                        (*seed as i64).into(),
                        epoch.into(),
                        (l + 1).into(),
                        e.as_str().into(),
                        ixt[k].into(),
                        ity[k].into(),
                    ])?;
                }
                let ((xm, xs), (ym, ys)) = (mean_std(ixt), mean_std(ity));
                out.summary.write(vec![
                    epoch.into(),
                    (l + 1).into(),
                    e.as_str().into(),
                    n_s.into(),
                    xm.into(),
                    xs.into(),
                    ym.into(),
                    ys.into(),
                ])?;
            }
        }
        Ok(summary)
    }

    /// Per seed: train loss, train accuracy, test loss, test accuracy of these logits.
    fn scores(&self, logits: &Tensor) -> Result<Vec<[f64; 4]>> {
        let (tl, ta) = loss_acc(logits, &self.data.y, &self.data.train);
        let (vl, va) = loss_acc(logits, &self.data.y, &self.data.test);
        let m = Vec::<f64>::try_from(
            Tensor::stack(&[tl, ta, vl, va], 0)
                .to_device(Device::Cpu)
                .flatten(0, -1),
        )?;
        let n = self.seeds.len();
        Ok((0..n)
            .map(|k| [m[k], m[n + k], m[2 * n + k], m[3 * n + k]])
            .collect())
    }

    /// The headline numbers of the current weights: each score's mean and std over the seeds.
    fn final_metrics(&self, epochs: usize) -> Result<serde_json::Map<String, serde_json::Value>> {
        let s = self.seeds.len() as i64;
        let logits = tch::no_grad(|| {
            self.nets
                .forward(&self.data.x.unsqueeze(0).expand([s, -1, -1], false), false)
                .0
        });
        let scores = self.scores(&logits)?;
        let mut out = serde_json::Map::new();
        for (i, name) in ["train_loss", "train_acc", "test_loss", "test_acc"]
            .iter()
            .enumerate()
        {
            let v: Vec<f64> = scores.iter().map(|m| m[i]).collect();
            insert_mean_std(&mut out, name, &v);
        }
        out.insert("seeds".into(), self.seeds.len().into());
        out.insert("epochs".into(), epochs.into());
        Ok(out)
    }

    fn log_grads(&self, epoch: usize, sums: &GradSums, out: &mut Outputs) -> Result<()> {
        let stats = sums.stats();
        let flat: Vec<Tensor> = stats
            .iter()
            .flat_map(|(a, b, c)| [a.shallow_clone(), b.shallow_clone(), c.shallow_clone()])
            .collect();
        let v = Vec::<f32>::try_from(
            Tensor::stack(&flat, 0)
                .to_device(Device::Cpu)
                .flatten(0, -1),
        )?;
        let n_s = self.seeds.len();
        for l in 0..stats.len() {
            for (k, seed) in self.seeds.iter().enumerate() {
                let at = |j: usize| v[(3 * l + j) * n_s + k];
                out.grads.write(vec![
                    (*seed as i64).into(),
                    epoch.into(),
                    (l + 1).into(),
                    at(0).into(),
                    at(1).into(),
                    at(2).into(),
                ])?;
            }
        }
        Ok(())
    }
}

/// The networks, optimizer and data of a run (or of an evaluation) of `cfg`.
fn build<'a>(cfg: &'a Config, seed: u64, device: Device) -> Result<(VarStore, Optimizer, Run<'a>)> {
    let seeds: Vec<u64> = (0..cfg.seeds as u64).map(|k| seed + k).collect();
    let data = load(&cfg.data, device)?;
    let vs = VarStore::new(device);
    let nets = SeedNets::new(&vs, &cfg.model.widths, &seeds, cfg.model.activation);
    let opt = Optimizer::new(crate::optim::trainable(&vs), &cfg.optim)?;
    let (mi_rows, mi_y) = {
        let rows = match cfg.mi.on {
            MiOn::All => Tensor::arange(data.y.size()[0], (Kind::Int64, device)),
            MiOn::Train => data.train.shallow_clone(),
            MiOn::Test => data.test.shallow_clone(),
        };
        let y = data.y.index_select(0, &rows);
        (rows, y)
    };
    let onehot = Tensor::eye(2, (Kind::Float, device));
    let run = Run {
        cfg,
        seeds,
        nets,
        data,
        mi_rows,
        mi_y,
        onehot,
    };
    Ok((vs, opt, run))
}

fn train(table: &Table, ctx: &mut RunContext) -> Result<Outcome> {
    let cfg: Config = config::typed(table)?;
    let (vs, mut opt, run) = build(&cfg, ctx.seed, ctx.device)?;
    ctx.set_seeds(run.seeds.clone());
    let resumed_at = match &ctx.resume_from {
        Some(ck) => Some(ck.state()?.epoch),
        None => None,
    };
    ctx.open_metrics_keeping(METRIC_COLS, keep_until(resumed_at))?;
    let mut out = Outputs::open(&ctx.dir, resumed_at)?;
    let outcome = train_loop(&cfg, ctx, &vs, &mut opt, &run, &mut out);
    // Whatever happened, the long files read seed by seed, epoch by epoch.
    let sorted = out
        .sort()
        .and_then(|_| ctx.sort_metrics(&["seed", "epoch"]));
    let outcome = outcome?;
    sorted?;
    if outcome == Outcome::Completed {
        ctx.set_final_metrics(run.final_metrics(cfg.train.epochs)?);
    }
    Ok(outcome)
}

fn train_loop(
    cfg: &Config,
    ctx: &mut RunContext,
    vs: &VarStore,
    opt: &mut Optimizer,
    run: &Run<'_>,
    out: &mut Outputs,
) -> Result<Outcome> {
    let device = ctx.device;
    let logged = logged_epochs(&cfg.log, cfg.train.epochs);
    let mut epoch = 0;
    match &ctx.resume_from {
        Some(ck) => {
            let st = ck.state()?;
            crate::train::load_weights(vs, ck, device)?;
            opt.load_state(ck.optim_tensors(device)?, &st.optimizer)?;
            epoch = st.epoch;
        }
        None => {
            if logged.first() == Some(&0) {
                run.log_state(0, ctx, out)?;
            }
        }
    }
    let save = |ctx: &RunContext, opt: &Optimizer, epoch: usize| -> Result<()> {
        let state = State {
            epoch,
            step_in_epoch: 0,
            global_step: opt.steps_taken(),
            metrics_rows: ctx.metrics_rows(),
            seed: ctx.seed,
            optimizer: opt.state_scalars(),
            loop_state: serde_json::Value::Null,
        };
        checkpoint::save(
            &ctx.dir,
            &crate::train::named_variables(vs),
            &opt.state_tensors(),
            &state,
            2,
        )
        .map(|_| ())
    };

    let n_train = run.data.train.size()[0];
    let s = run.seeds.len() as i64;
    let b = cfg.train.batch_size.min(n_train);
    let mut progress = Progress::new(&ctx.info.experiment, cfg.train.epochs as u64, ctx.quiet);
    let mut latest = String::new();
    while epoch < cfg.train.epochs {
        // Gradient statistics of the epoch that leads to a logged state (row `epoch = e`: the
        // mini-batch gradients of epoch e, which ends in the state after e epochs).
        let logs_next = logged.binary_search(&(epoch + 1)).is_ok();
        let mut sums = (logs_next && cfg.log.grads).then(|| GradSums::new(&run.nets));
        let order = permutations(&run.seeds, epoch, n_train, device);
        let mut start = 0;
        while start < n_train {
            let len = b.min(n_train - start);
            let idx = run
                .data
                .train
                .index_select(0, &order.narrow(1, start, len).flatten(0, -1));
            let x = run.data.x.index_select(0, &idx).view([s, len, 12]);
            let y = run.data.y.index_select(0, &idx);
            if run.nets.manual_backward() {
                run.nets
                    .grad_step(&x, &run.onehot.index_select(0, &y).view([s, len, 2]));
            } else {
                opt.zero_grad();
                let (logits, _) = run.nets.forward(&x, false);
                // Mean over each seed's batch, summed over seeds: each seed gets its own gradient.
                let loss = logits.view([s * len, 2]).cross_entropy_for_logits(&y) * s as f64;
                loss.backward();
            }
            if let Some(g) = sums.as_mut() {
                g.add(&run.nets);
            }
            opt.step();
            start += len;
        }
        epoch += 1;
        if let Some(g) = &sums {
            run.log_grads(epoch, g, out)?;
        }
        if logs_next {
            latest = run.log_state(epoch, ctx, out)?;
        }
        let every = cfg.train.checkpoint_every.max(1);
        if let Some(sig) = ctx.interrupt.requested() {
            save(ctx, opt, epoch)?;
            progress.finish();
            return Ok(Outcome::Interrupted(sig));
        }
        if epoch % every == 0 || epoch == cfg.train.epochs {
            if !bool::try_from(opt.params().isfinite().all())? {
                bail!("diverged before epoch {epoch}: the weights are no longer finite; lower optim.lr");
            }
            save(ctx, opt, epoch)?;
            progress.update(epoch as u64, &latest);
        }
    }
    progress.finish();
    Ok(Outcome::Completed)
}

/// `stochlab eval`: every seed's loss and accuracy on the train and test rows, from the
/// checkpoint (overrides may change the data: another file, split or test fraction).
fn eval(table: &Table, input: &EvalInput<'_>) -> Result<Vec<EvalRow>> {
    let cfg: Config = config::typed(table)?;
    let (vs, _, run) = build(&cfg, input.seed, input.device)?;
    crate::train::load_weights(&vs, input.checkpoint, input.device)?;
    let s = run.seeds.len() as i64;
    let logits = tch::no_grad(|| {
        run.nets
            .forward(&run.data.x.unsqueeze(0).expand([s, -1, -1], false), false)
            .0
    });
    let scores = run.scores(&logits)?;
    let sizes = [run.data.train.size()[0], run.data.test.size()[0]];
    let mut rows = vec![];
    for (i, split) in ["train", "test"].iter().enumerate() {
        for (seed, m) in run.seeds.iter().zip(&scores) {
            rows.push((
                split.to_string(),
                vec![
                    ("seed".to_string(), Cell::from(*seed as i64)),
                    ("loss".to_string(), Cell::from(m[2 * i])),
                    ("acc".to_string(), Cell::from(m[2 * i + 1])),
                    ("n".to_string(), Cell::from(sizes[i])),
                ],
            ));
        }
    }
    Ok(rows)
}

use crate::claims::{self, Claim, Expect, Measured, RunFiles, Scale};

/// A hidden layer "compresses" when its seed-mean I(X;T) falls this far after its peak (bits).
const COMPRESSION_BITS: f64 = 0.5;

const CLAIMS: &[Claim] = &[
    Claim {
        id: "output-information",
        statement: "the output layer ends with I(T;Y) close to H(Y) = 1 bit (Fig. 3; threshold 0.9 bits from the issue, seed mean, first estimator)",
        paper: "≈ 1 bit",
        expect: Expect::AtLeast(0.9),
        unit: "bits",
        scale: Scale::Both,
        variant: None,
        measure: output_information,
    },
    Claim {
        id: "compression",
        statement: "after fitting, the hidden layers compress: count of the last four hidden layers whose seed-mean I(X;T) falls ≥ 0.5 bits after its peak (Fig. 3)",
        paper: "all layers compress",
        expect: Expect::AtLeast(2.0),
        unit: "layers",
        scale: Scale::Both,
        variant: None,
        measure: compressing_top_layers,
    },
    Claim {
        id: "snr-drop",
        statement: "gradient SNR drops from the drift phase to the diffusion phase: peak seed-mean SNR over the mean of the last 20 % of logged epochs, smaller of the top two layers (Fig. 4; factor 10 from the issue)",
        paper: "orders of magnitude",
        expect: Expect::AtLeast(10.0),
        unit: "×",
        scale: Scale::Both,
        variant: None,
        measure: snr_drop,
    },
    Claim {
        id: "relu-no-compression",
        statement: "Saxe et al.: with ReLU hidden layers no layer compresses: count of hidden layers whose seed-mean I(X;T) falls ≥ 0.5 bits after its peak (ib-tishby-relu)",
        paper: "0 layers",
        expect: Expect::AtMost(0.0),
        unit: "layers",
        scale: Scale::Both,
        variant: Some("ib-tishby-relu"),
        measure: compressing_relu_layers,
    },
];

fn activation(f: &RunFiles) -> String {
    f.cfg_str("model.activation").unwrap_or("tanh").to_string()
}

fn needs(f: &RunFiles, want: &str) -> Option<Measured> {
    let act = activation(f);
    (act != want).then(|| {
        Measured::NotApplicable(format!("claim of the {want} network; this run uses {act}"))
    })
}

/// The first estimator the run used (the one the claims read).
fn first_estimator(f: &RunFiles) -> Result<String> {
    let ib = f.csv("ib.csv")?;
    ib.distinct("estimator")?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("ib.csv has no rows"))
}

/// The factor from a file's information unit to bits.
fn to_bits(unit: &str) -> f64 {
    if unit == "nats" {
        std::f64::consts::LOG2_E
    } else {
        1.0
    }
}

/// Layers in ib.csv, the output layer last.
fn layers(f: &RunFiles) -> Result<Vec<String>> {
    let mut l = f.csv("ib.csv")?.distinct("layer")?;
    l.sort_by_key(|x| x.parse::<i64>().unwrap_or(0));
    Ok(l)
}

fn output_information(f: &RunFiles) -> Result<Measured> {
    if let Some(na) = needs(f, "tanh") {
        return Ok(na);
    }
    let (ib, est, layers) = (f.csv("ib.csv")?, first_estimator(f)?, layers(f)?);
    let out = layers.last().expect("layers");
    let (col, unit) = ib.unit_column("I_TY")?;
    let curve = claims::mean_by(&ib, "epoch", &col, &[("layer", out), ("estimator", &est)])?;
    claims::value(curve.last().map_or(f64::NAN, |p| p.1) * to_bits(&unit))
}

/// Hidden layers whose seed-mean I(X;T) falls at least COMPRESSION_BITS after its peak.
fn compressing(f: &RunFiles, hidden: &[String]) -> Result<f64> {
    let (ib, est) = (f.csv("ib.csv")?, first_estimator(f)?);
    let (col, unit) = ib.unit_column("I_XT")?;
    let mut n = 0;
    for l in hidden {
        let curve = claims::mean_by(&ib, "epoch", &col, &[("layer", l), ("estimator", &est)])?;
        if claims::fall_after_peak(&curve).is_some_and(|d| d * to_bits(&unit) >= COMPRESSION_BITS) {
            n += 1;
        }
    }
    Ok(n as f64)
}

fn compressing_top_layers(f: &RunFiles) -> Result<Measured> {
    if let Some(na) = needs(f, "tanh") {
        return Ok(na);
    }
    let l = layers(f)?;
    let hidden = &l[..l.len() - 1];
    claims::value(compressing(f, &hidden[hidden.len().saturating_sub(4)..])?)
}

fn compressing_relu_layers(f: &RunFiles) -> Result<Measured> {
    if let Some(na) = needs(f, "relu") {
        return Ok(na);
    }
    let l = layers(f)?;
    claims::value(compressing(f, &l[..l.len() - 1])?)
}

fn snr_drop(f: &RunFiles) -> Result<Measured> {
    if let Some(na) = needs(f, "tanh") {
        return Ok(na);
    }
    if f.cfg_bool("log.grads") == Some(false) {
        return Ok(Measured::NotApplicable(
            "gradient statistics switched off (log.grads = false)".into(),
        ));
    }
    let grads = f.csv("grads.csv")?;
    let mut l = grads.distinct("layer")?;
    l.sort_by_key(|x| x.parse::<i64>().unwrap_or(0));
    let mut worst = f64::INFINITY;
    for layer in &l[l.len().saturating_sub(2)..] {
        let curve = claims::mean_by(&grads, "epoch", "snr", &[("layer", layer)])?;
        let tail = (curve.len() / 5).max(1);
        let late = curve[curve.len() - tail..].iter().map(|p| p.1).sum::<f64>() / tail as f64;
        let peak = curve.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        worst = worst.min(peak / late);
    }
    claims::value(worst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idnns_schedule_has_274_epochs_for_8000() {
        let e = logged_epochs(&LogSection::default(), 8000);
        assert_eq!(e.len(), 274 + 1, "IDNNs' 274 epochs and the final state");
        assert_eq!((e[0], e[273], e[274]), (0, 7999, 8000));
        let saxe = logged_epochs(
            &LogSection {
                schedule: Schedule::Saxe,
                ..Default::default()
            },
            2500,
        );
        assert!(
            saxe.starts_with(&[0, 1, 2])
                && saxe.contains(&95)
                && !saxe.contains(&96)
                && saxe.contains(&2100)
                && !saxe.contains(&2120)
        );
        let every = logged_epochs(
            &LogSection {
                schedule: Schedule::Every,
                every: 10,
                ..Default::default()
            },
            35,
        );
        assert_eq!(every, vec![0, 10, 20, 30, 35]);
    }

    #[test]
    fn permutations_are_per_seed_and_device_independent_of_the_batch() {
        let p = permutations(&[3, 4], 7, 100, Device::Cpu);
        let mut row: Vec<i64> = Vec::try_from(p.get(0)).unwrap();
        let alone: Vec<i64> =
            Vec::try_from(permutations(&[3], 7, 100, Device::Cpu).get(0)).unwrap();
        assert_eq!(
            row, alone,
            "seed 3's order does not depend on the other seeds"
        );
        assert_ne!(Vec::<i64>::try_from(p.get(1)).unwrap(), row);
        assert_ne!(
            Vec::<i64>::try_from(permutations(&[3], 8, 100, Device::Cpu).get(0)).unwrap(),
            row
        );
        row.sort_unstable();
        assert_eq!(row, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn hand_written_backward_equals_autograd() {
        let _rng = crate::rng::serial();
        for act in [Activation::Tanh, Activation::Relu, Activation::Sigmoid] {
            let vs = VarStore::new(Device::Cpu);
            let nets = SeedNets::new(&vs, &[12, 10, 7, 5, 4, 3, 2], &[1, 2, 3], act);
            let mut opt =
                Optimizer::new(crate::optim::trainable(&vs), &OptimConfig::default()).unwrap();
            tch::manual_seed(9);
            let x = Tensor::randint(2, [3, 64, 12], (Kind::Float, Device::Cpu));
            let y = Tensor::randint(2, [3 * 64], (Kind::Int64, Device::Cpu));
            opt.zero_grad();
            let (logits, _) = nets.forward(&x, false);
            (logits.view([3 * 64, 2]).cross_entropy_for_logits(&y) * 3.0).backward();
            let autograd = opt.grads().copy();
            let _ = opt.grads().shallow_clone().fill_(f64::NAN);
            nets.grad_step(
                &x,
                &Tensor::eye(2, (Kind::Float, Device::Cpu))
                    .index_select(0, &y)
                    .view([3, 64, 2]),
            );
            let diff = (opt.grads() - &autograd).abs().max().double_value(&[]);
            assert!(
                diff < 1e-6,
                "{act:?}: hand-written gradient differs from autograd by {diff}"
            );
        }
    }

    #[test]
    fn truncated_normal_stays_within_two_std() {
        let _rng = crate::rng::serial();
        tch::manual_seed(0);
        let t = truncated_normal(&[10000], 0.5);
        assert!(t.abs().max().double_value(&[]) <= 1.0 + 1e-6);
        assert!(
            (t.std(true).double_value(&[]) - 0.5 * 0.88).abs() < 0.02,
            "std of a ±2σ truncated normal is 0.88σ"
        );
    }
}

// ---- The paper's claims (Shwartz-Ziv & Tishby; Saxe et al. for the ReLU control) ----------
