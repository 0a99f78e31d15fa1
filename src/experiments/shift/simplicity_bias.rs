//! `simplicity-bias` (paper 9, Shah et al. 2020, "The pitfalls of simplicity bias in neural
//! networks").
//!
//! Data (the official generator, width B = 1, margin m = 0.1, d = 50): labels y ∈ {0, 1}
//! uniform; every coordinate drawn independently given y, either *linear*,
//! x = (2y − 1)(m + (1 − m)u), or a *k-slab* coordinate (k = 5: class 1 at ±[0.32, 0.56], class
//! 0 in the centre [−0.12, 0.12] with probability 3/4, else at ±[0.76, 1]; k = 7: class 1 at
//! ±[0.257, 0.371] w.p. 7/8, else ±[0.886, 1]; class 0 in the centre or at ±[0.571, 0.686], ½
//! each; `data::synthetic::SlabCoord`). Every coordinate alone predicts y perfectly, the
//! linear one by the simplest rule. Then a random rotation X ← X·W (W orthonormal, from the QR
//! of a Gaussian matrix), so no coordinate is visible in the input basis.
//! - LMS-5: one linear coordinate and 49 5-slabs; MS-(5,7): one 5-slab and 49 7-slabs;
//! - LMS-7-hat: one linear coordinate, its value replaced by U(−m, m) on 10 % of the rows
//!   (linear-only accuracy ≈ 0.95), and 49 7-slabs; MS-7: fifty 7-slabs.
//!
//! Model: Linear(50, h)–ReLU–Linear(h, h)–ReLU–Linear(h, 2), PyTorch's default initialisation,
//! cross-entropy, SGD with batches of 256 (h = 100, lr 0.1, weight decay 5e-5 for LMS-5 and
//! MS-(5,7); h = 300, lr 0.1 (0.3 for MS-7), momentum 0.9, weight decay 5e-4 for LMS-7-hat and
//! MS-7). Training stops once the training accuracy, checked every `eval_every` updates,
//! reaches `stop_acc` (1 − 10⁻⁴, or 0.995 for the 7-slab sets), after `patience` more updates;
//! the MS-(5,7) plateau near 0.5 lasts ~10k updates in the paper, so `max_updates` must not end
//! it (a run that hits `max_updates` is marked not converged). The `seeds` seeds of a dataset
//! train together as one batched model (stacked weights, `baddbmm`), each on its own draw of
//! the data and rotation; LMS-5 adds an ensemble of `ensemble` models on the first seed's data
//! with their own initial weights (averaged probabilities).
//!
//! Measured (summary.csv): test accuracy and the AUC of the logit difference L₁ − L₀ on the
//! test set as drawn, S-randomised (the simple coordinate S = {0} shuffled across test rows in
//! the unrotated basis, X·Wᵀ → permute → ·W, labels kept) and S^c-randomised (coordinates
//! 1..d−1 shuffled with one permutation shared by all of them, so their joint distribution is
//! kept); coords.csv has the accuracy and AUC with each coordinate randomised alone (on the
//! first `coord_rows` test rows).
//! metrics.csv logs training and test accuracy at every check.
//!
//! Deviations: the paper's LMS-7-hat/MS-7 runs keep the best model on a validation split; here
//! the model at the stopping point is measured. The CPU config checks training accuracy every
//! 1000 updates on 10k training rows (the paper: every 5000 on all), uses 10k test rows for
//! MS-(5,7) (the paper: 50k), and width 100 with at most 10k updates for the 7-slab sets (the
//! paper: 300); `simplicity-bias-full.toml` has the paper's settings. The MNIST-over-CIFAR
//! image analogue is not built here.

use crate::config;
use crate::data::synthetic::{linear_slabs, random_rotation, SlabCoord};
use crate::experiments::children::csv_bytes;
use crate::experiments::Entry;
use crate::rng::{self, Stream};
use crate::run::fsutil::write_atomic;
use crate::run::metrics::{float, json_float, mean_std};
use crate::run::progress::Progress;
use crate::run::{Outcome, RunContext};
use crate::stats::auc;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};
use toml::Table;

pub const ENTRY: Entry = Entry {
    name: "simplicity-bias",
    family: "shift",
    description:
        "Simplicity bias on LMS-5, MS-(5,7), LMS-7-hat and MS-7: randomised-coordinate AUCs",
    paper: "The Pitfalls of Simplicity Bias in Neural Networks",
    defaults: include_str!("../../../experiments/simplicity-bias.toml"),
    normalize: config::normalize::<Config>,
    train,
    eval: None,
    information_plane: false,
    claims: CLAIMS,
    variants: &[],
    extendable: false,
    nested_runs: false,
};

/// One dataset's sizes and training settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Setting {
    pub enabled: bool,
    pub n_train: i64,
    pub n_test: i64,
    pub hidden: i64,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    /// Training accuracy that ends training (after `patience` more updates).
    pub stop_acc: f64,
    pub patience: usize,
    pub max_updates: usize,
    /// Share of rows whose linear coordinate is replaced by U(−m, m).
    pub corrupt_lin: f64,
}

impl Setting {
    fn paper(n_train: i64, n_test: i64, wide: bool, lr: f64, patience: usize) -> Self {
        Setting {
            enabled: true,
            n_train,
            n_test,
            hidden: if wide { 300 } else { 100 },
            lr,
            momentum: if wide { 0.9 } else { 0.0 },
            weight_decay: if wide { 5e-4 } else { 5e-5 },
            stop_acc: if wide { 0.995 } else { 1.0 - 1e-4 },
            patience,
            max_updates: 40_000,
            corrupt_lin: 0.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Seeds per dataset (run seed, run seed + 1, …), trained as one batched model.
    pub seeds: usize,
    pub dim: i64,
    pub margin: f64,
    pub batch_size: i64,
    /// Updates between training-accuracy checks (the paper: 5000).
    pub eval_every: usize,
    /// Training rows the check reads (0 = all; the paper reads half while the loss is high).
    pub train_eval: i64,
    /// Test rows for the one-coordinate-at-a-time randomisation (0 = all).
    pub coord_rows: i64,
    /// Models in the LMS-5 ensemble (0 = none).
    pub ensemble: usize,
    #[serde(rename = "lms-5")]
    pub lms5: Setting,
    #[serde(rename = "ms-5-7")]
    pub ms57: Setting,
    #[serde(rename = "lms-7-hat")]
    pub lms7hat: Setting,
    #[serde(rename = "ms-7")]
    pub ms7: Setting,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seeds: 3,
            dim: 50,
            margin: 0.1,
            batch_size: 256,
            eval_every: 1000,
            train_eval: 20_000,
            coord_rows: 2000,
            ensemble: 3,
            lms5: Setting::paper(100_000, 10_000, false, 0.1, 1),
            ms57: Setting::paper(100_000, 50_000, false, 0.1, 1000),
            lms7hat: Setting {
                corrupt_lin: 0.1,
                ..Setting::paper(40_000, 10_000, true, 0.1, 1)
            },
            ms7: Setting::paper(40_000, 10_000, true, 0.3, 1),
        }
    }
}

impl config::Check for Config {
    fn check(&self) -> Result<()> {
        if self.seeds == 0 || self.dim < 2 || self.batch_size < 1 || self.eval_every == 0 {
            bail!("seeds and eval_every must be >= 1, dim >= 2, batch_size >= 1");
        }
        if self.train_eval < 0 || self.coord_rows < 0 {
            bail!("train_eval and coord_rows must be >= 0 (0 = every row)");
        }
        if !(0.0..0.25).contains(&self.margin) || self.margin <= 0.0 {
            bail!("margin must be in (0, 0.25) (7 slabs and their gaps must fit in [-1, 1])");
        }
        for (name, s) in self.datasets() {
            if s.n_train < self.batch_size || s.n_test < 2 || s.hidden < 1 || s.lr <= 0.0 {
                bail!("{name}: n_train >= batch_size, n_test >= 2, hidden >= 1, lr > 0");
            }
            if !(0.0..1.0).contains(&s.momentum) || !(0.0..=1.0).contains(&s.corrupt_lin) {
                bail!("{name}: momentum in [0, 1), corrupt_lin in [0, 1]");
            }
            if s.max_updates == 0 || !(0.0..=1.0).contains(&s.stop_acc) {
                bail!("{name}: max_updates >= 1, stop_acc in [0, 1]");
            }
        }
        if self.datasets().iter().all(|(_, s)| !s.enabled) {
            bail!("every dataset is off: enable one of lms-5, ms-5-7, lms-7-hat, ms-7");
        }
        Ok(())
    }
}

impl Config {
    fn datasets(&self) -> [(&'static str, &Setting); 4] {
        [
            ("lms-5", &self.lms5),
            ("ms-5-7", &self.ms57),
            ("lms-7-hat", &self.lms7hat),
            ("ms-7", &self.ms7),
        ]
    }

    /// Coordinate kinds of a dataset, coordinate 0 first (the simple one, S = {0}).
    fn coords(&self, name: &str) -> Vec<SlabCoord> {
        let rest = self.dim as usize - 1;
        let (first, other) = match name {
            "lms-5" => (SlabCoord::Linear, SlabCoord::Slab5),
            "ms-5-7" => (SlabCoord::Slab5, SlabCoord::Slab7),
            "lms-7-hat" => (SlabCoord::Linear, SlabCoord::Slab7),
            _ => (SlabCoord::Slab7, SlabCoord::Slab7),
        };
        std::iter::once(first)
            .chain(std::iter::repeat_n(other, rest))
            .collect()
    }
}

/// One model's data: rotated train and test inputs, labels, the unrotated test inputs and W.
struct Draw {
    x: Tensor,
    y: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    plain_test: Tensor,
    w: Tensor,
}

fn draw(cfg: &Config, name: &str, s: &Setting, seed: u64, index: u64) -> Draw {
    rng::reseed(seed, Stream::Data, index, 0);
    let all = linear_slabs(
        s.n_train + s.n_test,
        &cfg.coords(name),
        cfg.margin,
        s.corrupt_lin,
    );
    let w = random_rotation(cfg.dim);
    let x = all.x.matmul(&w);
    let test = |t: &Tensor| t.narrow(0, 0, s.n_test);
    let train = |t: &Tensor| t.narrow(0, s.n_test, s.n_train);
    Draw {
        x: train(&x),
        y: train(&all.y),
        x_test: test(&x),
        y_test: test(&all.y),
        plain_test: test(&all.x),
        w,
    }
}

/// M stacked MLPs d–h–h–2.
struct Mlps {
    ws: Vec<Tensor>,
    bs: Vec<Tensor>,
    bufs: Vec<Tensor>,
}

impl Mlps {
    /// PyTorch's default Linear initialisation, U(±1/√fan_in) for weights and biases, per model
    /// from `inits[m]`.
    fn new(inits: &[u64], d: i64, h: i64, dev: Device) -> Self {
        let widths = [d, h, h, 2];
        let (mut ws, mut bs) = (vec![], vec![]);
        for l in 0..3 {
            let (i, o) = (widths[l], widths[l + 1]);
            let bound = 1.0 / (i as f64).sqrt();
            let (mut wl, mut bl) = (vec![], vec![]);
            for &s in inits {
                rng::reseed(s, Stream::Init, l as u64, 0);
                let u = |shape: &[i64]| {
                    Tensor::rand(shape, (Kind::Float, Device::Cpu)) * (2.0 * bound) - bound
                };
                wl.push(u(&[i, o]));
                bl.push(u(&[1, o]));
            }
            ws.push(Tensor::stack(&wl, 0).to_device(dev).set_requires_grad(true));
            bs.push(Tensor::stack(&bl, 0).to_device(dev).set_requires_grad(true));
        }
        let bufs = ws.iter().chain(&bs).map(Tensor::zeros_like).collect();
        Mlps { ws, bs, bufs }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.shallow_clone();
        for (l, (w, b)) in self.ws.iter().zip(&self.bs).enumerate() {
            h = b.baddbmm(&h, w, 1.0, 1.0);
            if l < 2 {
                h = h.relu();
            }
        }
        h
    }

    /// Logits [M, N, 2] in chunks of rows, without gradients.
    fn logits(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let parts: Vec<Tensor> = x.split(8192, 1).iter().map(|c| self.forward(c)).collect();
            Tensor::cat(&parts, 1)
        })
    }

    /// SGD (momentum and coupled weight decay as torch.optim.SGD) on the models whose `active`
    /// entry [M, 1, 1] is 1.
    fn step(&mut self, s: &Setting, active: &Tensor) {
        tch::no_grad(|| {
            let params: Vec<Tensor> = self
                .ws
                .iter()
                .chain(&self.bs)
                .map(Tensor::shallow_clone)
                .collect();
            for (p, buf) in params.iter().zip(self.bufs.iter_mut()) {
                let mut g = p.grad();
                if s.weight_decay != 0.0 {
                    g += p * s.weight_decay;
                }
                let dir = if s.momentum > 0.0 {
                    *buf = &*buf * s.momentum + &g;
                    buf.shallow_clone()
                } else {
                    g
                };
                let mut p = p.shallow_clone();
                let _ = p.g_sub_(&(dir * active * s.lr));
                let _ = p.grad().zero_();
            }
        });
    }
}

/// Accuracy [M] of logits [M, N, 2] against labels [M, N].
fn accuracy(logits: &Tensor, y: &Tensor) -> Tensor {
    logits
        .argmax(-1, false)
        .eq_tensor(y)
        .to_kind(Kind::Double)
        .mean_dim([1i64].as_slice(), false, Kind::Double)
}

/// (accuracy, AUC of L₁ − L₀) per model.
fn scores(logits: &Tensor, y: &Tensor) -> Result<Vec<(f64, f64)>> {
    let acc: Vec<f64> = Vec::try_from(accuracy(logits, y).to_device(Device::Cpu))?;
    let diff = (logits.select(2, 1) - logits.select(2, 0)).to_kind(Kind::Double);
    let diff: Vec<Vec<f64>> = Vec::try_from(diff.to_device(Device::Cpu))?;
    let y: Vec<Vec<i64>> = Vec::try_from(y.to_device(Device::Cpu))?;
    Ok(acc
        .iter()
        .zip(diff.iter().zip(&y))
        .map(|(&a, (d, y))| {
            let l: Vec<bool> = y.iter().map(|&v| v == 1).collect();
            (a, auc(d, &l))
        })
        .collect())
}

/// Test inputs with `cols` shuffled across rows by one permutation, in the unrotated basis,
/// then rotated back: plain [M, N, d] → [M, N, d].
fn randomised(plain: &Tensor, w: &Tensor, cols: &[i64], perm: &Tensor) -> Tensor {
    let idx = Tensor::from_slice(cols).to_device(plain.device());
    let shuffled = plain.index_select(1, perm).index_select(2, &idx);
    plain.index_copy(2, &idx, &shuffled).matmul(w)
}

/// The result of one dataset, for summary.csv.
struct Outcome1 {
    rows: Vec<Vec<String>>,
}

fn run_dataset(
    cfg: &Config,
    name: &'static str,
    index: u64,
    ctx: &mut RunContext,
    coords_rows: &mut Vec<Vec<String>>,
) -> Result<Option<(Outcome1, Option<i32>)>> {
    let s = match name {
        "lms-5" => &cfg.lms5,
        "ms-5-7" => &cfg.ms57,
        "lms-7-hat" => &cfg.lms7hat,
        _ => &cfg.ms7,
    };
    if !s.enabled {
        return Ok(None);
    }
    let dev = ctx.device;
    let seeds: Vec<u64> = (0..cfg.seeds as u64).map(|i| ctx.seed + i).collect();
    let n_ens = if name == "lms-5" { cfg.ensemble } else { 0 };
    // Models: one per seed, then the ensemble members on the first seed's data.
    let mut labels: Vec<String> = seeds.iter().map(|s| s.to_string()).collect();
    labels.extend((0..n_ens).map(|j| format!("ensemble-{j}")));
    let draws: Vec<Draw> = seeds
        .iter()
        .map(|&sd| draw(cfg, name, s, sd, index))
        .collect();
    let data_of = |m: usize| &draws[if m < seeds.len() { m } else { 0 }];
    let m_all = labels.len();
    let stack = |f: &dyn Fn(&Draw) -> &Tensor| {
        let v: Vec<&Tensor> = (0..m_all).map(|m| f(data_of(m))).collect();
        Tensor::stack(&v, 0).to_device(dev)
    };
    let (x, y) = (stack(&|d| &d.x), stack(&|d| &d.y));
    let (x_test, y_test) = (stack(&|d| &d.x_test), stack(&|d| &d.y_test));
    let (plain, w) = (stack(&|d| &d.plain_test), stack(&|d| &d.w));
    let inits: Vec<u64> = (0..m_all as u64)
        .map(|m| {
            if (m as usize) < seeds.len() {
                seeds[m as usize]
            } else {
                ctx.seed + 1000 + m
            }
        })
        .collect();
    let mut net = Mlps::new(&inits, cfg.dim, s.hidden, dev);
    let n = s.n_train;
    let b = cfg.batch_size;
    let per_epoch = n / b;
    let mut active = vec![1.0f32; m_all];
    let mut converged_at: Vec<Option<usize>> = vec![None; m_all];
    let mut stopped_at = vec![s.max_updates; m_all];
    let mut mask = Tensor::ones([m_all as i64, 1, 1], (Kind::Float, dev));
    let mut progress = Progress::new(
        &format!("simplicity-bias {name}"),
        s.max_updates as u64,
        ctx.quiet,
    );
    let mut perm = Tensor::zeros([0], (Kind::Int64, dev));
    let mut loss_sum = Tensor::zeros([m_all as i64], (Kind::Float, dev));
    let mut since = 0usize;
    let mut u = 0usize;
    let mut last_train = vec![f64::NAN; m_all];
    while u < s.max_updates && active.iter().any(|&a| a > 0.0) {
        let i = (u as i64) % per_epoch;
        if i == 0 {
            rng::reseed(
                ctx.seed,
                Stream::Shuffle,
                index,
                (u as i64 / per_epoch) as u64,
            );
            perm = Tensor::rand([m_all as i64, n], (Kind::Float, Device::Cpu))
                .argsort(1, false)
                .to_device(dev);
        }
        let idx = perm.narrow(1, i * b, b);
        let xb = x.gather(
            1,
            &idx.unsqueeze(-1).expand([-1, -1, cfg.dim], false),
            false,
        );
        let yb = y.gather(1, &idx, false);
        let logits = net.forward(&xb);
        let per_model = logits
            .log_softmax(-1, Kind::Float)
            .gather(2, &yb.unsqueeze(-1), false)
            .neg()
            .mean_dim([1i64, 2].as_slice(), false, Kind::Float);
        per_model.sum(Kind::Float).backward();
        net.step(s, &mask);
        loss_sum += per_model.detach();
        since += 1;
        u += 1;
        if u.is_multiple_of(cfg.eval_every) || u == s.max_updates {
            let k = if cfg.train_eval > 0 {
                cfg.train_eval.min(n)
            } else {
                n
            };
            let (xk, yk) = (x.narrow(1, 0, k), y.narrow(1, 0, k));
            let train_acc: Vec<f64> =
                Vec::try_from(accuracy(&net.logits(&xk), &yk).to_device(Device::Cpu))?;
            let test_acc: Vec<f64> =
                Vec::try_from(accuracy(&net.logits(&x_test), &y_test).to_device(Device::Cpu))?;
            let loss: Vec<f32> = Vec::try_from((&loss_sum / since as f64).to_device(Device::Cpu))?;
            loss_sum = loss_sum.zeros_like();
            since = 0;
            for m in 0..m_all {
                if active[m] == 0.0 {
                    continue;
                }
                if !loss[m].is_finite() {
                    bail!(
                        "{name}: model {} diverged after {u} updates: lower {name}.lr",
                        labels[m]
                    );
                }
                last_train[m] = train_acc[m];
                ctx.log(vec![
                    name.into(),
                    labels[m].clone().into(),
                    u.into(),
                    loss[m].into(),
                    train_acc[m].into(),
                    test_acc[m].into(),
                ])?;
                if converged_at[m].is_none() && train_acc[m] >= s.stop_acc {
                    converged_at[m] = Some(u);
                }
            }
            let mean = train_acc.iter().sum::<f64>() / m_all as f64;
            progress.update(u as u64, &format!("train acc {mean:.4}"));
            if let Some(sig) = ctx.interrupt.requested() {
                progress.finish();
                return Ok(Some((Outcome1 { rows: vec![] }, Some(sig))));
            }
        }
        // Patience: a converged model keeps training `patience` more updates, then stops.
        for m in 0..m_all {
            if active[m] > 0.0 && converged_at[m].is_some_and(|c| u >= c + s.patience) {
                active[m] = 0.0;
                stopped_at[m] = u;
            }
        }
        mask = Tensor::from_slice(&active)
            .view([m_all as i64, 1, 1])
            .to_device(dev);
    }
    progress.finish();

    // Measurements on the test set as drawn and with coordinates randomised.
    rng::reseed(ctx.seed, Stream::Probe, index, 0);
    let test_perm = Tensor::randperm(s.n_test, (Kind::Int64, Device::Cpu)).to_device(dev);
    let d = cfg.dim;
    let rest: Vec<i64> = (1..d).collect();
    let logits_std = net.logits(&x_test);
    let logits_s = net.logits(&randomised(&plain, &w, &[0], &test_perm));
    let logits_sc = net.logits(&randomised(&plain, &w, &rest, &test_perm));
    let (std_, s_rand, sc_rand) = (
        scores(&logits_std, &y_test)?,
        scores(&logits_s, &y_test)?,
        scores(&logits_sc, &y_test)?,
    );
    let k = if cfg.coord_rows > 0 {
        cfg.coord_rows.min(s.n_test)
    } else {
        s.n_test
    };
    let (plain_k, y_k) = (plain.narrow(1, 0, k), y_test.narrow(1, 0, k));
    let perm_k = Tensor::randperm(k, (Kind::Int64, Device::Cpu)).to_device(dev);
    for j in 0..d {
        let l = net.logits(&randomised(&plain_k, &w, &[j], &perm_k));
        for (m, (acc, a)) in scores(&l, &y_k)?.into_iter().enumerate() {
            coords_rows.push(vec![
                name.into(),
                labels[m].clone(),
                j.to_string(),
                float(acc),
                float(a),
            ]);
        }
    }
    let mut rows = vec![];
    for m in 0..m_all {
        rows.push(vec![
            name.into(),
            labels[m].clone(),
            stopped_at[m].to_string(),
            converged_at[m].is_some().to_string(),
            float(last_train[m]),
            float(std_[m].0),
            float(std_[m].1),
            float(s_rand[m].0),
            float(s_rand[m].1),
            float(sc_rand[m].0),
            float(sc_rand[m].1),
        ]);
    }
    if n_ens > 0 {
        // The ensemble: mean probabilities of its members, scored by log p₁ − log p₀.
        let members = Tensor::arange_start(seeds.len() as i64, m_all as i64, (Kind::Int64, dev));
        let ens = |l: &Tensor| {
            let p = l
                .index_select(0, &members)
                .softmax(-1, Kind::Double)
                .mean_dim([0i64].as_slice(), true, Kind::Double);
            (p.clamp_min(1e-300)).log()
        };
        let y0 = y_test.narrow(0, seeds.len() as i64, 1);
        let (a, b_, c) = (
            scores(&ens(&logits_std), &y0)?[0],
            scores(&ens(&logits_s), &y0)?[0],
            scores(&ens(&logits_sc), &y0)?[0],
        );
        rows.push(vec![
            name.into(),
            "ensemble".into(),
            stopped_at[seeds.len()..]
                .iter()
                .max()
                .copied()
                .unwrap_or(0)
                .to_string(),
            converged_at[seeds.len()..]
                .iter()
                .all(Option::is_some)
                .to_string(),
            float(f64::NAN),
            float(a.0),
            float(a.1),
            float(b_.0),
            float(b_.1),
            float(c.0),
            float(c.1),
        ]);
    }
    Ok(Some((Outcome1 { rows }, None)))
}

const SUMMARY: [&str; 11] = [
    "dataset",
    "model",
    "updates",
    "converged",
    "train_acc",
    "test_acc",
    "test_auc",
    "s_rand_acc",
    "s_rand_auc",
    "sc_rand_acc",
    "sc_rand_auc",
];

fn train(table: &Table, ctx: &mut RunContext) -> Result<Outcome> {
    let cfg: Config = config::typed(table)?;
    ctx.open_metrics(&[
        "dataset",
        "model",
        "updates",
        "train_loss",
        "train_acc",
        "test_acc",
    ])?;
    let (mut rows, mut coords) = (vec![], vec![]);
    let mut stopped = None;
    for (i, (name, _)) in cfg.datasets().iter().enumerate() {
        if let Some((out, stop)) = run_dataset(&cfg, name, i as u64, ctx, &mut coords)? {
            rows.extend(out.rows);
            if stop.is_some() {
                stopped = stop;
                break;
            }
        }
    }
    write_atomic(&ctx.dir.join("summary.csv"), &csv_bytes(&SUMMARY, &rows)?)?;
    write_atomic(
        &ctx.dir.join("coords.csv"),
        &csv_bytes(
            &["dataset", "model", "coord", "rand_acc", "rand_auc"],
            &coords,
        )?,
    )?;
    if let Some(sig) = stopped {
        return Ok(Outcome::Interrupted(sig));
    }
    ctx.set_seeds((0..cfg.seeds as u64).map(|i| ctx.seed + i).collect());
    ctx.set_final_metrics(headline(&rows));
    Ok(Outcome::Completed)
}

/// Seed means of test accuracy and the randomised AUCs per dataset (ensemble apart).
fn headline(rows: &[Vec<String>]) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    let mut names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    names.dedup();
    for name in names {
        let key = name.replace('-', "_");
        let col = |c: usize| -> f64 {
            let v: Vec<f64> = rows
                .iter()
                .filter(|r| r[0] == name && r[1] != "ensemble" && !r[1].starts_with("ensemble-"))
                .filter_map(|r| r[c].parse().ok())
                .collect();
            mean_std(&v).0
        };
        out.insert(format!("{key}_test_acc"), json_float(col(5)));
        out.insert(format!("{key}_s_rand_auc"), json_float(col(8)));
        out.insert(format!("{key}_sc_rand_auc"), json_float(col(10)));
    }
    out
}

// ---- The paper's claims (Shah et al. 2020) ---------------------------------------------------

use crate::claims::{self, Claim, Expect, Measured, RunFiles, Scale};

macro_rules! seed_mean {
    ($f:ident, $dataset:literal, $col:literal) => {
        fn $f(f: &RunFiles) -> Result<Measured> {
            seed_mean(f, $dataset, $col)
        }
    };
}

/// Mean over the seeds' models (not the ensemble) of `column` for `dataset`.
fn seed_mean(f: &RunFiles, dataset: &str, column: &str) -> Result<Measured> {
    let t = f.csv("summary.csv")?;
    let (cd, cm, cc) = (t.col("dataset")?, t.col("model")?, t.col(column)?);
    let v: Vec<f64> = t
        .rows
        .iter()
        .filter(|r| r[cd] == dataset && !r[cm].starts_with("ensemble"))
        .map(|r| t.parse(&r[cc], column))
        .collect::<Result<_>>()?;
    if v.is_empty() {
        return Ok(Measured::NotApplicable(format!("{dataset} was not run")));
    }
    claims::value(mean_std(&v).0)
}

seed_mean!(lms5_test, "lms-5", "test_acc");
seed_mean!(lms5_s, "lms-5", "s_rand_auc");
seed_mean!(lms5_sc, "lms-5", "sc_rand_auc");
seed_mean!(ms57_test, "ms-5-7", "test_acc");
seed_mean!(ms57_s, "ms-5-7", "s_rand_auc");
seed_mean!(ms57_sc, "ms-5-7", "sc_rand_auc");
seed_mean!(lms7hat_test, "lms-7-hat", "test_acc");
seed_mean!(ms7_test, "ms-7", "test_acc");

fn ensemble_s(f: &RunFiles) -> Result<Measured> {
    let t = f.csv("summary.csv")?;
    match t
        .numbers("s_rand_auc", &[("dataset", "lms-5"), ("model", "ensemble")])?
        .first()
    {
        Some(&v) => claims::value(v),
        None => Ok(Measured::NotApplicable(
            "no LMS-5 ensemble in this run".into(),
        )),
    }
}

const CLAIMS: &[Claim] = &[
    Claim {
        id: "lms5-test",
        statement: "LMS-5: test accuracy at least 0.99 (seed mean; the notebook: 1.000)",
        paper: "1.000",
        expect: Expect::AtLeast(0.99),
        unit: "fraction",
        scale: Scale::Both,
        variant: None,
        measure: lms5_test,
    },
    Claim {
        id: "lms5-s-randomised",
        statement: "LMS-5: randomising the linear coordinate S destroys the prediction: S-randomised AUC at most 0.55 (seed mean; the notebook: 0.507)",
        paper: "0.507",
        expect: Expect::AtMost(0.55),
        unit: "AUC",
        scale: Scale::Both,
        variant: None,
        measure: lms5_s,
    },
    Claim {
        id: "lms5-sc-randomised",
        statement: "LMS-5: randomising the 49 slab coordinates S^c changes nothing: S^c-randomised AUC at least 0.98 (seed mean; the notebook: 1.000)",
        paper: "1.000",
        expect: Expect::AtLeast(0.98),
        unit: "AUC",
        scale: Scale::Both,
        variant: None,
        measure: lms5_sc,
    },
    Claim {
        id: "ms57-test",
        statement: "MS-(5,7): test accuracy at least 0.99 after the plateau (seed mean; the notebook: 1.000)",
        paper: "1.000",
        expect: Expect::AtLeast(0.99),
        unit: "fraction",
        scale: Scale::Both,
        variant: None,
        measure: ms57_test,
    },
    Claim {
        id: "ms57-s-randomised",
        statement: "MS-(5,7): randomising the 5-slab coordinate S: AUC at most 0.55 (seed mean; the notebook: 0.502)",
        paper: "0.502",
        expect: Expect::AtMost(0.55),
        unit: "AUC",
        scale: Scale::Both,
        variant: None,
        measure: ms57_s,
    },
    Claim {
        id: "ms57-sc-randomised",
        statement: "MS-(5,7): randomising the 49 7-slab coordinates: AUC at least 0.98 (seed mean; the notebook: 1.000)",
        paper: "1.000",
        expect: Expect::AtLeast(0.98),
        unit: "AUC",
        scale: Scale::Both,
        variant: None,
        measure: ms57_sc,
    },
    Claim {
        id: "lms7hat-test",
        statement: "LMS-7-hat: simplicity bias hurts in distribution: test accuracy in [0.93, 0.96] though the 7-slabs allow 1.0 (seed mean; the notebook: 0.949)",
        paper: "0.949",
        expect: Expect::Within(0.93, 0.96),
        unit: "fraction",
        scale: Scale::Both,
        variant: None,
        measure: lms7hat_test,
    },
    Claim {
        id: "ms7-test",
        statement: "MS-7 trained the same way reaches test accuracy at least 0.99 (seed mean; the notebook: 1.000)",
        paper: "1.000",
        expect: Expect::AtLeast(0.99),
        unit: "fraction",
        scale: Scale::Both,
        variant: None,
        measure: ms7_test,
    },
    Claim {
        id: "ensemble-s-randomised",
        statement: "an ensemble of independently trained models on LMS-5 still relies on S alone: S-randomised AUC at most 0.55 (the notebook: 0.507)",
        paper: "0.507",
        expect: Expect::AtMost(0.55),
        unit: "AUC",
        scale: Scale::Both,
        variant: None,
        measure: ensemble_s,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    /// S-randomisation permutes coordinate 0 only: the other coordinates of every row are
    /// unchanged (their joint distribution kept), coordinate 0 keeps its values as a multiset;
    /// S^c-randomisation moves whole rows of coordinates 1..d together.
    #[test]
    fn randomisation_keeps_the_other_coordinates_joint_distribution() {
        let _rng = crate::rng::serial();
        tch::manual_seed(5);
        let plain = Tensor::randn([1, 100, 4], (Kind::Float, Device::Cpu));
        let w = random_rotation(4).unsqueeze(0);
        let perm = Tensor::randperm(100, (Kind::Int64, Device::Cpu));
        let back = |x: Tensor| x.matmul(&w.transpose(1, 2));
        let s = back(randomised(&plain, &w, &[0], &perm));
        let close = |a: &Tensor, b: &Tensor| a.allclose(b, 1e-5, 1e-5, false);
        assert!(close(&s.narrow(2, 1, 3), &plain.narrow(2, 1, 3)));
        assert!(close(
            &s.select(2, 0),
            &plain.select(2, 0).index_select(1, &perm)
        ));
        let sc = back(randomised(&plain, &w, &[1, 2, 3], &perm));
        assert!(close(&sc.select(2, 0), &plain.select(2, 0)));
        // One permutation for all of S^c: row i's coordinates 1..3 come from one row, perm[i].
        assert!(close(
            &sc.narrow(2, 1, 3),
            &plain.narrow(2, 1, 3).index_select(1, &perm)
        ));
    }
}
