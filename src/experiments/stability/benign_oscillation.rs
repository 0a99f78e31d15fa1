//! `benign-oscillation` (paper 16, Lu, Wu, Yang, Zou 2023, "Benign oscillation of stochastic
//! gradient descent with large learning rates"). Data with a weak feature present in every
//! example and a strong feature present in a fraction of them: a network trained by SGD whose
//! loss keeps oscillating (a large learning rate) learns the weak feature, one trained with a
//! small learning rate fits the data through the strong feature and the noise and fails on test
//! data that carry the weak feature alone.
//!
//! Data (the feature-noise patch model; the paper's exact sizes are not known, see
//! `/work/shared/papers/robustness-oscillation-trp.md` §5): labels y = ±1 (exactly half each),
//! an input of P = 3 patches in R^d,
//!   x₁ = y·v                         (weak feature, ‖v‖ = `data.weak_norm`, every example),
//!   x₂ = y·u  or  ξ′                 (strong feature, ‖u‖ = `data.strong_norm`, in exactly
//!                                      round(ρ·n) examples, ρ = `data.strong_fraction`;
//!                                      noise otherwise),
//!   x₃ = ξ,   ξ, ξ′ ~ N(0, σ_p²·P⊥)  (P⊥ projects out u and v; σ_p = `data.noise_std`),
//! with u ⟂ v drawn at random per seed. Weak-only test data have x₂ = noise in every example.
//!
//! Network: f(W; x) = F₊ − F₋, F_j = (1/m) Σ_{r≤m} Σ_p ReLU(⟨w_{j,r}, x_p⟩)² (ReLU² activation,
//! the second layer fixed to ±1/m), w ~ N(0, σ₀²I) with a small σ₀ = `model.init_std`.
//! Loss ℓ = (1 − y f)², minimised by single-sample SGD (one example per step, a fresh random
//! order each epoch) with the hand-written gradient
//!   ∇_{w_{j,r}} ℓ = −2y(1 − y f) · s_j (2/m) Σ_p ReLU(⟨w_{j,r}, x_p⟩) x_p,  s_± = ±1.
//! Every (learning rate, seed) pair is one slice of a batched model: the weights of all of them
//! are a [seeds, lrs·2m, d] tensor and a step is two `bmm`s, with no host sync per step; each
//! seed has its own data, initialisation and example order, shared by all its learning rates,
//! so learning rates are compared on the same draws.
//!
//! Measured (metrics.csv every `log_every` epochs per model, final.csv per model, summary.csv
//! per learning rate as the mean over seeds): the oscillation amplitude, the standard deviation
//! of the per-step loss over the last 20 % of steps (the definition; a model still
//! converging slowly also scores here, one that oscillated early and then settled does not);
//! training accuracy; accuracy on clean and on
//! weak-only test data; the alignments A_v = ½ Σ_j max_r ⟨w_{j,r}, s_j v⟩/‖v‖ and A_u (same for
//! u); noise memorisation, the mean over training examples of max_{j,r} |⟨w_{j,r}, ξ_i⟩|/‖ξ_i‖.
//! A model whose loss becomes non-finite or exceeds `divergence_loss` is marked diverged and
//! frozen; "the largest oscillating learning rate" is the largest with no diverged seed.
//!
//! Deviations: no official code exists and the paper's sizes are not known here; the data model
//! and sizes are the notes' proposal tuned so that (i) the smallest rate fits every training
//! example and (ii) the largest stable rate sits just below divergence (see the README for the
//! measured sweep). The proposal's "x₂ = noise" examples are kept (ρ < 1).

use crate::config;
use crate::experiments::children::csv_bytes;
use crate::experiments::Entry;
use crate::rng::{self, Stream};
use crate::run::fsutil::write_atomic;
use crate::run::metrics::{float, insert_mean_std, json_float, mean_std};
use crate::run::progress::Progress;
use crate::run::{Outcome, RunContext};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};
use toml::Table;

pub const ENTRY: Entry = Entry {
    name: "benign-oscillation",
    family: "stability",
    description: "Single-sample SGD on weak/strong-feature patch data: large oscillating learning rates learn the weak feature",
    paper: "Benign Oscillation of Stochastic Gradient Descent with Large Learning Rates",
    defaults: include_str!("../../../experiments/benign-oscillation.toml"),
    normalize: config::normalize::<Config>,
    train,
    eval: None,
    information_plane: false,
    claims: CLAIMS,
    variants: &[],
    extendable: false,
    nested_runs: false,
};

/// Patches per example: weak feature, strong feature or noise, noise.
const PATCHES: i64 = 3;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Patch dimension d.
    pub dim: i64,
    pub n_train: i64,
    pub n_test: i64,
    /// ‖v‖, the weak feature.
    pub weak_norm: f64,
    /// ‖u‖, the strong feature.
    pub strong_norm: f64,
    /// ρ: fraction of examples whose second patch is y·u (the rest: noise).
    pub strong_fraction: f64,
    /// σ_p of the noise patches.
    pub noise_std: f64,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dim: 200,
            n_train: 200,
            n_test: 1000,
            weak_norm: 1.0,
            strong_norm: 10.0,
            strong_fraction: 0.3,
            noise_std: 0.5,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// m, neurons per output sign.
    pub neurons: i64,
    /// σ₀ of the Gaussian initialisation.
    pub init_std: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            neurons: 20,
            init_std: 0.01,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The learning-rate sweep, small to just below divergence.
    pub lrs: Vec<f64>,
    /// Seeds per learning rate (run seed + 0, 1, …): data, initialisation and order.
    pub seeds: u64,
    pub epochs: usize,
    /// Epochs between metrics.csv rows (and the last epoch).
    pub log_every: usize,
    /// A loss above this (or not finite) marks the model diverged.
    pub divergence_loss: f64,
    pub data: DataConfig,
    pub model: ModelConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            lrs: vec![0.003, 0.01, 0.02, 0.03, 0.04, 0.05, 0.055, 0.06, 0.065],
            seeds: 5,
            epochs: 200,
            log_every: 10,
            divergence_loss: 1e6,
            data: DataConfig::default(),
            model: ModelConfig::default(),
        }
    }
}

impl config::Check for Config {
    fn check(&self) -> Result<()> {
        if self.lrs.is_empty() || self.lrs.iter().any(|&l| !(l > 0.0 && l.is_finite())) {
            bail!("lrs must be a non-empty list of positive learning rates");
        }
        if self.seeds == 0 || self.epochs == 0 || self.log_every == 0 {
            bail!("seeds, epochs and log_every must be >= 1");
        }
        if self.divergence_loss.is_nan() || self.divergence_loss <= 1.0 {
            bail!("divergence_loss must be > 1 (the loss at f = 0)");
        }
        let d = &self.data;
        if d.dim < 3 || d.n_train < 2 || d.n_test < 2 {
            bail!("data.dim >= 3, data.n_train and data.n_test >= 2");
        }
        if !(d.weak_norm > 0.0 && d.strong_norm > 0.0 && d.noise_std > 0.0) {
            bail!("data.weak_norm, data.strong_norm and data.noise_std must be positive");
        }
        if !(0.0..=1.0).contains(&d.strong_fraction) {
            bail!("data.strong_fraction must be in [0, 1]");
        }
        if self.model.neurons < 1 || self.model.init_std.is_nan() || self.model.init_std <= 0.0 {
            bail!("model.neurons >= 1 and model.init_std > 0");
        }
        Ok(())
    }
}

/// The two feature directions of one seed: v (weak) and u (strong), orthogonal.
pub struct Features {
    pub v: Tensor,
    pub u: Tensor,
}

impl Features {
    /// Random orthogonal v, u in R^d with the given norms (from the global generator, CPU).
    pub fn draw(d: i64, weak: f64, strong: f64, kind: Kind) -> Features {
        let (q, _) = Tensor::linalg_qr(
            &Tensor::randn([d, 2], (Kind::Double, Device::Cpu)),
            "reduced",
        );
        Features {
            v: (q.select(1, 0) * weak).to_kind(kind),
            u: (q.select(1, 1) * strong).to_kind(kind),
        }
    }

    /// σ·g projected orthogonally to u and v, for g ~ N(0, I), shaped [rows, d].
    fn noise(&self, rows: i64, sigma: f64) -> Tensor {
        let d = self.v.size()[0];
        let kind = self.v.kind();
        let g = Tensor::randn([rows, d], (kind, Device::Cpu)) * sigma;
        let mut out = g.shallow_clone();
        for f in [&self.v, &self.u] {
            let unit = f / f.norm();
            out = &out - unit.unsqueeze(0) * g.matmul(&unit).unsqueeze(1);
        }
        out
    }
}

/// Patch data: inputs [n, P, d], labels ±1 [n], which examples carry the strong feature [n].
pub struct Patches {
    pub x: Tensor,
    pub y: Tensor,
    pub strong: Tensor,
}

/// n examples of the patch model; `strong_fraction` of them (exactly round(ρ·n), at random)
/// carry y·u in patch 2. Labels are balanced (n/2 rounded down are −1).
pub fn patches(f: &Features, n: i64, strong_fraction: f64, noise_std: f64) -> Patches {
    let kind = f.v.kind();
    let opts = (Kind::Int64, Device::Cpu);
    let mut y = Tensor::ones([n], (kind, Device::Cpu));
    let _ = y.index_fill_(0, &Tensor::randperm(n, opts).narrow(0, 0, n / 2), -1.0);
    let k = (strong_fraction * n as f64).round() as i64;
    let mut strong = Tensor::zeros([n], (Kind::Bool, Device::Cpu));
    if k > 0 {
        let _ = strong.index_fill_(0, &Tensor::randperm(n, opts).narrow(0, 0, k), 1);
    }
    let yc = y.unsqueeze(1);
    let x1 = &yc * f.v.unsqueeze(0);
    let x2 = (&yc * f.u.unsqueeze(0)).where_self(&strong.unsqueeze(1), &f.noise(n, noise_std));
    let x3 = f.noise(n, noise_std);
    Patches {
        x: Tensor::stack(&[x1, x2, x3], 1),
        y,
        strong,
    }
}

/// The batched patch network: weights [S, L·2m, d] for S seeds × L learning rates, rows of
/// model (s, l) at [s, l·2m .. (l+1)·2m], the first m of each block feeding F₊.
pub struct PatchNet {
    pub w: Tensor,
    pub lrs: usize,
    pub m: i64,
    /// s_j per row of a block: +1 for the first m, −1 for the rest, [2m].
    sign: Tensor,
}

impl PatchNet {
    pub fn new(w: Tensor, lrs: usize, m: i64) -> PatchNet {
        let (kind, device) = (w.kind(), w.device());
        let sign = Tensor::cat(
            &[
                Tensor::ones([m], (kind, device)),
                -Tensor::ones([m], (kind, device)),
            ],
            0,
        );
        PatchNet { w, lrs, m, sign }
    }

    fn seeds(&self) -> i64 {
        self.w.size()[0]
    }

    /// Pre-activations ⟨w, x_p⟩ of every model on per-seed inputs x [S, N, P, d]:
    /// [S, N, P, L, 2m].
    fn pre(&self, x: &Tensor) -> Tensor {
        let s = x.size();
        let (n, p, d) = (s[1], s[2], s[3]);
        x.reshape([s[0], n * p, d])
            .bmm(&self.w.transpose(1, 2))
            .reshape([s[0], n, p, self.lrs as i64, 2 * self.m])
    }

    /// f of every model: [S, L, N].
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let r = self.pre(x).relu();
        (r.square() * &self.sign)
            .sum_dim_intlist([2i64, 4].as_slice(), false, r.kind())
            .permute([0, 2, 1])
            / self.m as f64
    }

    /// One SGD step on one example per seed (x [S, P, d], y [S]) with rates `lr` [S, L] or [L]:
    /// returns each model's loss (1 − y f)² before the step, [S, L].
    pub fn sgd_step(&mut self, x: &Tensor, y: &Tensor, lr: &Tensor) -> Tensor {
        let (s, l, m2) = (self.seeds(), self.lrs as i64, 2 * self.m);
        let p = x.size()[1];
        let r = x.bmm(&self.w.transpose(1, 2)).relu(); // [S, P, L·2m]
        let f = (r
            .square()
            .sum_dim_intlist(1, false, r.kind())
            .view([s, l, m2])
            * &self.sign)
            .sum_dim_intlist(-1, false, r.kind())
            / self.m as f64;
        let yc = y.unsqueeze(1);
        let resid = 1.0 - &yc * &f; // [S, L]
                                    // dℓ/df = −2y(1 − y f); df/dw_{j,r} = s_j (2/m) Σ_p ReLU(⟨w, x_p⟩) x_p.
        let coef = (&yc * &resid) * lr * (-4.0 / self.m as f64);
        let scale = (coef.unsqueeze(-1) * &self.sign).view([s, l * m2, 1]);
        let g = r.transpose(1, 2).bmm(x) * scale; // [S, L·2m, d]
        debug_assert_eq!(x.size()[1], p);
        let _ = self.w.g_sub_(&g);
        resid.square()
    }

    /// The mean loss over per-seed data x [S, N, P, d], y [S, N] as a differentiable function
    /// of `self.w` (for the gradient check): [S, L].
    pub fn loss(&self, x: &Tensor, y: &Tensor) -> Tensor {
        let yf: Tensor = y.unsqueeze(1) * self.forward(x);
        (1.0f64 - yf)
            .square()
            .mean_dim([-1i64].as_slice(), false, self.w.kind())
    }

    /// Accuracy of sign(f) against y on per-seed data: [S, L].
    pub fn accuracy(&self, x: &Tensor, y: &Tensor) -> Tensor {
        let f = self.forward(x);
        (f * y.unsqueeze(1)).gt(0.0).to_kind(Kind::Double).mean_dim(
            [-1i64].as_slice(),
            false,
            Kind::Double,
        )
    }

    /// A = ½ Σ_j max_r ⟨w_{j,r}, s_j f̂⟩ for one direction per seed (`dir` [S, d]): [S, L].
    pub fn alignment(&self, dir: &Tensor) -> Tensor {
        let (s, l) = (self.seeds(), self.lrs as i64);
        let unit = dir / dir.norm_scalaropt_dim(2, [1i64].as_slice(), true);
        let proj = self.w.bmm(&unit.unsqueeze(2)).view([s, l, 2, self.m]);
        let signed = proj * self.sign.view([2, self.m]);
        signed
            .amax([3i64].as_slice(), false)
            .mean_dim([2i64].as_slice(), false, dir.kind())
    }

    /// Mean over rows of max_{j,r} |⟨w_{j,r}, ξ̂_i⟩| for per-seed noise vectors ξ [S, N, d]:
    /// [S, L].
    pub fn memorisation(&self, noise: &Tensor) -> Tensor {
        let (s, l) = (self.seeds(), self.lrs as i64);
        let unit = noise / noise.norm_scalaropt_dim(2, [2i64].as_slice(), true);
        let n = noise.size()[1];
        self.w
            .bmm(&unit.transpose(1, 2))
            .abs()
            .view([s, l, 2 * self.m, n])
            .amax([2i64].as_slice(), false)
            .mean_dim([-1i64].as_slice(), false, noise.kind())
    }
}

/// Every seed's data, stacked [S, …] on the device.
struct Data {
    v: Tensor,
    u: Tensor,
    train: Patches,
    clean: Patches,
    weak: Patches,
}

fn stack(items: &[Patches], device: Device) -> Patches {
    let cat = |f: fn(&Patches) -> &Tensor| {
        Tensor::stack(&items.iter().map(f).collect::<Vec<_>>(), 0).to_device(device)
    };
    Patches {
        x: cat(|p| &p.x),
        y: cat(|p| &p.y),
        strong: cat(|p| &p.strong),
    }
}

fn data(cfg: &Config, seeds: &[u64], device: Device) -> Data {
    let d = &cfg.data;
    let (mut vs, mut us, mut tr, mut cl, mut wk) = (vec![], vec![], vec![], vec![], vec![]);
    for &s in seeds {
        rng::reseed(s, Stream::Data, 0, 0);
        let f = Features::draw(d.dim, d.weak_norm, d.strong_norm, Kind::Float);
        tr.push(patches(&f, d.n_train, d.strong_fraction, d.noise_std));
        cl.push(patches(&f, d.n_test, d.strong_fraction, d.noise_std));
        wk.push(patches(&f, d.n_test, 0.0, d.noise_std));
        vs.push(f.v);
        us.push(f.u);
    }
    Data {
        v: Tensor::stack(&vs, 0).to_device(device),
        u: Tensor::stack(&us, 0).to_device(device),
        train: stack(&tr, device),
        clean: stack(&cl, device),
        weak: stack(&wk, device),
    }
}

/// Per-model measurements at one point: [S, L] each, read to the host.
struct Snapshot {
    train_acc: Vec<f64>,
    clean_acc: Vec<f64>,
    weak_acc: Vec<f64>,
    v_align: Vec<f64>,
    u_align: Vec<f64>,
    noise_mem: Vec<f64>,
}

fn host(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).reshape([-1])).unwrap_or_default()
}

fn snapshot(net: &PatchNet, data: &Data) -> Snapshot {
    tch::no_grad(|| Snapshot {
        train_acc: host(&net.accuracy(&data.train.x, &data.train.y)),
        clean_acc: host(&net.accuracy(&data.clean.x, &data.clean.y)),
        weak_acc: host(&net.accuracy(&data.weak.x, &data.weak.y)),
        v_align: host(&net.alignment(&data.v)),
        u_align: host(&net.alignment(&data.u)),
        noise_mem: host(&net.memorisation(&data.train.x.select(2, 2))),
    })
}

const METRICS: [&str; 12] = [
    "lr",
    "seed",
    "epoch",
    "train_loss",
    "loss_std",
    "train_acc",
    "clean_test_acc",
    "weak_test_acc",
    "v_alignment",
    "u_alignment",
    "noise_memorisation",
    "diverged",
];

const PER_MODEL: [&str; 11] = [
    "lr",
    "seed",
    "diverged",
    "oscillation",
    "train_acc",
    "clean_test_acc",
    "weak_test_acc",
    "v_alignment",
    "u_alignment",
    "noise_memorisation",
    "final_loss",
];

fn train(table: &Table, ctx: &mut RunContext) -> Result<Outcome> {
    let cfg: Config = config::typed(table)?;
    let seeds: Vec<u64> = (0..cfg.seeds).map(|i| ctx.seed + i).collect();
    ctx.set_seeds(seeds.clone());
    let (nl, ns) = (cfg.lrs.len(), seeds.len());
    let (n, m, d) = (cfg.data.n_train, cfg.model.neurons, cfg.data.dim);
    let device = ctx.device;
    let data = data(&cfg, &seeds, device);
    // Every model of a seed starts from that seed's weights.
    let w0: Vec<Tensor> = seeds
        .iter()
        .map(|&s| {
            rng::reseed(s, Stream::Init, 0, 0);
            (Tensor::randn([2 * m, d], (Kind::Float, Device::Cpu)) * cfg.model.init_std)
                .repeat([nl as i64, 1])
        })
        .collect();
    let mut net = PatchNet::new(Tensor::stack(&w0, 0).to_device(device), nl, m);
    let lr_host: Vec<f32> = cfg.lrs.iter().map(|&l| l as f32).collect();
    // [S, L]: a diverged model's rate is zeroed in place.
    let mut lr = Tensor::from_slice(&lr_host)
        .repeat([ns as i64])
        .view([ns as i64, nl as i64])
        .to_device(device);
    let mut alive = vec![true; ns * nl];
    ctx.open_metrics(&METRICS)?;

    // Per-step losses of the last 20 % of steps (at least one epoch's worth).
    let total = cfg.epochs as i64 * n;
    let tail_from = ((0.8 * total as f64).floor() as i64).min(total - 1);
    let mut tail: Vec<Tensor> = vec![];
    let mut last_loss = vec![f64::NAN; ns * nl];
    let mut progress = Progress::new("benign-oscillation", cfg.epochs as u64, ctx.quiet);
    for e in 0..cfg.epochs {
        // One order per seed, the same for all its learning rates.
        let order: Vec<Tensor> = seeds
            .iter()
            .map(|&s| {
                rng::reseed(s, Stream::Shuffle, e as u64, 0);
                Tensor::randperm(n, (Kind::Int64, Device::Cpu))
            })
            .collect();
        let order = Tensor::stack(&order, 0).to_device(device); // [S, n]
        let xe = data.train.x.gather(
            1,
            &order
                .view([ns as i64, n, 1, 1])
                .expand([ns as i64, n, PATCHES, d], false),
            false,
        );
        let ye = data.train.y.gather(1, &order, false);
        let mut losses = Vec::with_capacity(n as usize);
        for t in 0..n {
            losses.push(net.sgd_step(&xe.select(1, t), &ye.select(1, t), &lr));
        }
        let losses = Tensor::stack(&losses, 0); // [n, S, L]
        let start = e as i64 * n;
        if start + n > tail_from {
            let skip = (tail_from - start).max(0);
            tail.push(losses.narrow(0, skip, n - skip));
        }
        let mean = host(&losses.mean_dim([0i64].as_slice(), false, Kind::Float));
        let std = host(&losses.to_kind(Kind::Double).std_dim(0, false, false));
        let worst = host(&losses.amax([0i64].as_slice(), false));
        // Diverged models are frozen: their weights and rate set to zero.
        let mut changed = false;
        for (i, a) in alive.iter_mut().enumerate() {
            if *a && !(worst[i].is_finite() && worst[i] <= cfg.divergence_loss) {
                *a = false;
                changed = true;
            }
        }
        if changed {
            let mask: Vec<f32> = alive.iter().map(|&a| if a { 1.0 } else { 0.0 }).collect();
            let mask = Tensor::from_slice(&mask)
                .to_device(device)
                .view([ns as i64, nl as i64, 1, 1]);
            let w = net
                .w
                .view([ns as i64, nl as i64, 2 * m, d])
                .nan_to_num(0.0, 0.0, 0.0)
                * &mask;
            net.w = w.view([ns as i64, nl as i64 * 2 * m, d]);
            lr *= mask.view([ns as i64, nl as i64]);
        }
        for (i, a) in alive.iter().enumerate() {
            if *a {
                last_loss[i] = mean[i];
            }
        }
        let epoch = e + 1;
        if epoch % cfg.log_every == 0 || epoch == cfg.epochs {
            let snap = snapshot(&net, &data);
            for (si, &seed) in seeds.iter().enumerate() {
                for li in 0..nl {
                    let i = si * nl + li;
                    let dead = !alive[i];
                    let val = |v: &[f64]| if dead { f64::NAN } else { v[i] };
                    ctx.log(vec![
                        cfg.lrs[li].into(),
                        (seed as i64).into(),
                        epoch.into(),
                        val(&mean).into(),
                        val(&std).into(),
                        val(&snap.train_acc).into(),
                        val(&snap.clean_acc).into(),
                        val(&snap.weak_acc).into(),
                        val(&snap.v_align).into(),
                        val(&snap.u_align).into(),
                        val(&snap.noise_mem).into(),
                        dead.to_string().into(),
                    ])?;
                }
            }
        }
        progress.update(epoch as u64, &format!("epoch {epoch}"));
        if let Some(sig) = ctx.interrupt.requested() {
            progress.finish();
            return Ok(Outcome::Interrupted(sig));
        }
    }
    progress.finish();
    let tail = Tensor::cat(&tail, 0).to_kind(Kind::Double);
    let oscillation = host(&tail.std_dim(0, false, false));
    let snap = snapshot(&net, &data);
    let mut rows = vec![];
    for (si, seed) in seeds.iter().enumerate() {
        for li in 0..nl {
            let i = si * nl + li;
            let dead = !alive[i];
            let val = |v: &[f64]| float(if dead { f64::NAN } else { v[i] });
            rows.push(vec![
                float(cfg.lrs[li]),
                seed.to_string(),
                dead.to_string(),
                val(&oscillation),
                val(&snap.train_acc),
                val(&snap.clean_acc),
                val(&snap.weak_acc),
                val(&snap.v_align),
                val(&snap.u_align),
                val(&snap.noise_mem),
                val(&last_loss),
            ]);
        }
    }
    write_atomic(&ctx.dir.join("final.csv"), &csv_bytes(&PER_MODEL, &rows)?)?;
    let summary = summarise(&cfg, &rows);
    write_atomic(
        &ctx.dir.join("summary.csv"),
        &csv_bytes(&SUMMARY, &summary)?,
    )?;
    ctx.set_final_metrics(headline(&summary, &rows, seeds.len()));
    Ok(Outcome::Completed)
}

const SUMMARY: [&str; 12] = [
    "lr",
    "seeds",
    "diverged",
    "oscillation",
    "train_acc",
    "clean_test_acc",
    "weak_test_acc",
    "weak_test_acc_std",
    "v_alignment",
    "u_alignment",
    "noise_memorisation",
    "final_loss",
];

/// Per learning rate: means over the seeds that did not diverge.
fn summarise(cfg: &Config, rows: &[Vec<String>]) -> Vec<Vec<String>> {
    let mut out = vec![];
    for &lr in &cfg.lrs {
        let mine: Vec<&Vec<String>> = rows.iter().filter(|r| r[0] == float(lr)).collect();
        let ok: Vec<&&Vec<String>> = mine.iter().filter(|r| r[2] == "false").collect();
        let col = |c: usize| -> (f64, f64) {
            let v: Vec<f64> = ok.iter().filter_map(|r| r[c].parse().ok()).collect();
            if v.is_empty() {
                (f64::NAN, f64::NAN)
            } else {
                mean_std(&v)
            }
        };
        let mut row = vec![
            float(lr),
            mine.len().to_string(),
            (mine.len() - ok.len()).to_string(),
        ];
        for c in 3..=10 {
            row.push(float(col(c).0));
            if c == 6 {
                row.push(float(col(c).1));
            }
        }
        out.push(row);
    }
    out
}

/// Smallest rate and largest rate without divergence: their oscillation, training accuracy,
/// weak-only accuracy and alignment, each as mean and std over the seeds that did not diverge
/// (the per-model rows of final.csv), and the number of seeds.
fn headline(
    summary: &[Vec<String>],
    rows: &[Vec<String>],
    seeds: usize,
) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    let stable: Vec<&Vec<String>> = summary.iter().filter(|r| r[2] == "0").collect();
    if let (Some(small), Some(large)) = (summary.first(), stable.last()) {
        for (tag, s) in [("small", small), ("large", *large)] {
            let ok: Vec<&Vec<String>> = rows
                .iter()
                .filter(|r| r[0] == s[0] && r[2] == "false")
                .collect();
            let col =
                |c: usize| -> Vec<f64> { ok.iter().filter_map(|r| r[c].parse().ok()).collect() };
            out.insert(
                format!("{tag}_lr"),
                json_float(s[0].parse().unwrap_or(f64::NAN)),
            );
            insert_mean_std(&mut out, &format!("{tag}_oscillation"), &col(3));
            insert_mean_std(&mut out, &format!("{tag}_train_acc"), &col(4));
            insert_mean_std(&mut out, &format!("{tag}_weak_test_acc"), &col(6));
            insert_mean_std(&mut out, &format!("{tag}_v_alignment"), &col(7));
        }
    }
    out.insert("seeds".into(), seeds.into());
    out
}

// ---- The paper's claims (Lu et al., benign oscillation) --------------------------------------

use crate::claims::{self, Claim, Expect, Measured, RunFiles, Scale};

const CLAIMS: &[Claim] = &[
    Claim {
        id: "both-fit-train",
        statement: "the smallest and the largest oscillating learning rate both fit the training set: the lower of their seed-mean training accuracies (≥ 0.99, the issue's \"~100 %\"; the comparison below is made at equal training accuracy)",
        paper: "100 % training accuracy",
        expect: Expect::AtLeast(0.99),
        unit: "fraction",
        scale: Scale::Both,
        variant: None,
        measure: both_fit,
    },
    Claim {
        id: "weak-accuracy-gain",
        statement: "on test data with the weak feature alone, the largest oscillating learning rate beats the smallest: difference of seed-mean accuracies (≥ 0.15 from the issue [I]; the paper gives no number)",
        paper: "large lr correct, small lr fails",
        expect: Expect::AtLeast(0.15),
        unit: "fraction",
        scale: Scale::Both,
        variant: None,
        measure: weak_gain,
    },
    Claim {
        id: "weak-alignment-ratio",
        statement: "the largest oscillating learning rate aligns the neurons with the weak feature v more: ratio of seed-mean max_r ⟨w_r, ±v⟩/‖v‖, large over small (≥ 3 from the issue [I])",
        paper: "weak feature learned only with a large lr",
        expect: Expect::AtLeast(3.0),
        unit: "ratio",
        scale: Scale::Both,
        variant: None,
        measure: alignment_ratio,
    },
];

/// (column, value at the smallest learning rate, value at the largest without divergence).
type Ends = Vec<(&'static str, f64, f64)>;

/// The summary rows of the smallest learning rate and of the largest without a diverged seed.
fn ends(f: &RunFiles) -> Result<Option<Ends>> {
    let t = f.csv("summary.csv")?;
    let (cl, cd) = (t.col("lr")?, t.col("diverged")?);
    let mut rows: Vec<&Vec<String>> = t.rows.iter().collect();
    rows.sort_by(|a, b| {
        let p = |r: &Vec<String>| r[cl].parse::<f64>().unwrap_or(f64::NAN);
        p(a).total_cmp(&p(b))
    });
    let small = rows.first();
    let large = rows.iter().rev().find(|r| r[cd] == "0");
    let (Some(small), Some(large)) = (small, large) else {
        return Ok(None);
    };
    if small[cl] == large[cl] {
        return Ok(None);
    }
    let mut cols = vec![];
    for c in ["train_acc", "weak_test_acc", "v_alignment"] {
        let i = t.col(c)?;
        cols.push((c, t.parse(&small[i], c)?, t.parse(&large[i], c)?));
    }
    Ok(Some(cols))
}

fn pick(f: &RunFiles, col: &str, combine: fn(f64, f64) -> f64) -> Result<Measured> {
    match ends(f)? {
        None => Ok(Measured::NotApplicable(
            "needs two learning rates, the largest without divergence above the smallest".into(),
        )),
        Some(cols) => {
            let (_, s, l) = cols.iter().find(|c| c.0 == col).expect("column read above");
            claims::value(combine(*s, *l))
        }
    }
}

fn both_fit(f: &RunFiles) -> Result<Measured> {
    pick(f, "train_acc", f64::min)
}
fn weak_gain(f: &RunFiles) -> Result<Measured> {
    pick(f, "weak_test_acc", |s, l| l - s)
}
fn alignment_ratio(f: &RunFiles) -> Result<Measured> {
    pick(f, "v_alignment", |s, l| l / s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: (Kind, Device) = (Kind::Double, Device::Cpu);

    #[test]
    fn patch_data_have_the_planned_norms_orthogonality_and_counts() {
        let _rng = crate::rng::serial();
        tch::manual_seed(3);
        let f = Features::draw(50, 1.0, 10.0, Kind::Double);
        let norm = |t: &Tensor| t.norm().double_value(&[]);
        assert!((norm(&f.v) - 1.0).abs() < 1e-9 && (norm(&f.u) - 10.0).abs() < 1e-9);
        assert!(f.v.dot(&f.u).double_value(&[]).abs() < 1e-9);
        let p = patches(&f, 400, 0.25, 2.0);
        assert_eq!(p.x.size(), [400, 3, 50]);
        assert_eq!(p.strong.sum(Kind::Int64).int64_value(&[]), 100);
        assert_eq!(p.y.eq(-1.0).sum(Kind::Int64).int64_value(&[]), 200);
        // Patch 1 is y·v everywhere; patch 2 is y·u exactly where strong.
        let x1 = p.x.select(1, 0);
        assert!(x1.allclose(&(p.y.unsqueeze(1) * f.v.unsqueeze(0)), 1e-12, 1e-12, false));
        let x2 = p.x.select(1, 1);
        let strong_rows = p.strong.nonzero().squeeze_dim(1);
        let want = p.y.index_select(0, &strong_rows).unsqueeze(1) * f.u.unsqueeze(0);
        assert!(x2
            .index_select(0, &strong_rows)
            .allclose(&want, 1e-12, 1e-12, false));
        // Noise patches are orthogonal to both features, with variance σ² per kept direction.
        let noise = p.x.select(1, 2);
        for dir in [&f.v, &f.u] {
            assert!(noise.matmul(dir).abs().max().double_value(&[]) < 1e-9);
        }
        let weak_rows = p.strong.logical_not().nonzero().squeeze_dim(1);
        assert!(
            x2.index_select(0, &weak_rows)
                .matmul(&f.u)
                .abs()
                .max()
                .double_value(&[])
                < 1e-9
        );
        let per_dim = noise.square().sum(Kind::Double).double_value(&[]) / (400.0 * 48.0);
        assert!((per_dim - 4.0).abs() < 0.2, "{per_dim}");
    }

    #[test]
    fn sgd_step_is_minus_lr_times_the_finite_difference_gradient() {
        let _rng = crate::rng::serial();
        tch::manual_seed(4);
        let (s, l, m, d) = (2i64, 2usize, 3i64, 5i64);
        let w = Tensor::randn([s, l as i64 * 2 * m, d], D) * 0.5;
        let x = Tensor::randn([s, 3, d], D);
        let y = Tensor::from_slice(&[1.0f64, -1.0]);
        let lr = Tensor::from_slice(&[0.01f64, 0.03]);
        let mut net = PatchNet::new(w.copy(), l, m);
        let before = net.sgd_step(&x, &y, &lr);
        let step = &w - &net.w; // = lr · ∇ℓ per model
        let loss_at = |w: &Tensor| {
            PatchNet::new(w.shallow_clone(), l, m).loss(&x.unsqueeze(1), &y.unsqueeze(1))
        };
        assert!(before.allclose(&loss_at(&w), 1e-12, 1e-12, false));
        let eps = 1e-6;
        let flat = w.reshape([-1]);
        for k in (0..flat.size()[0]).step_by(7) {
            let e = Tensor::zeros_like(&flat).index_fill(0, &Tensor::from_slice(&[k]), eps);
            let plus = loss_at(&(&flat + &e).view(w.size().as_slice()));
            let minus = loss_at(&(&flat - &e).view(w.size().as_slice()));
            let fd = (plus - minus) / (2.0 * eps); // [S, L]
            let row = k / (l as i64 * 2 * m * d);
            let model = (k / (2 * m * d)) % l as i64;
            let want = fd.double_value(&[row, model]) * lr.double_value(&[model]);
            let got = step.reshape([-1]).double_value(&[k]);
            assert!(
                (got - want).abs() < 1e-8 * (1.0 + want.abs()),
                "{k}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn forward_alignment_and_memorisation_match_direct_sums() {
        let (m, d) = (2i64, 4i64);
        // One seed, one learning rate: w₊ = [e0, 2e1], w₋ = [−3e0, e2].
        let w = Tensor::from_slice(&[
            1.0f64, 0., 0., 0., 0., 2., 0., 0., -3., 0., 0., 0., 0., 0., 1., 0.,
        ])
        .view([1, 2 * m, d]);
        let net = PatchNet::new(w, 1, m);
        let x = Tensor::from_slice(&[1.0f64, 1., 0., 0., -1., 0., 2., 0.]).view([1, 1, 2, d]);
        // F₊ = (1² + 2²)/2 + 0 = 2.5; F₋ = (0 + 0 + 3² + 2²)/2 = 6.5.
        let f = net.forward(&x).double_value(&[0, 0, 0]);
        assert!((f - (2.5 - 6.5)).abs() < 1e-12, "{f}");
        // Along e0: max(1, 0) for F₊ and max(−(−3), −0) = 3 for F₋ → mean 2.
        let v = Tensor::from_slice(&[2.0f64, 0., 0., 0.]).view([1, d]);
        assert!((net.alignment(&v).double_value(&[0, 0]) - 2.0).abs() < 1e-12);
        // Noise direction e2: |⟨w, e2⟩| max is 1.
        let xi = Tensor::from_slice(&[0.0f64, 0., 5., 0.]).view([1, 1, d]);
        assert!((net.memorisation(&xi).double_value(&[0, 0]) - 1.0).abs() < 1e-12);
    }
}
