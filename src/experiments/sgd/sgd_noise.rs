//! `sgd-noise` (paper 24, Sclocchi, Geiger & Wyart, "Dissecting the effects of SGD noise in
//! distinct regimes of deep learning", ICML 2023), set up as in the authors' official code
//! (AntonioScl/SGD_learning_regimes).
//!
//! **Model and loss.** The output is centred at initialisation, o(w, x) = f(w, x) − f(w₀, x),
//! and the per-sample loss is ℓ = hinge(α·o)/α = (1/α)·max(0, 1 − α·y·o). Its gradient,
//! −y ∇o·1[α y o < 1], does not depend on α: α only sets the margin, κ = 1/α in output units.
//! α ≫ 1 is the lazy (kernel) regime, α ≪ 1 the feature-learning one. SGD draws B distinct
//! training points per step (a fresh random subset every step, no epochs) and takes
//! w ← w − dt·∇(batch-mean loss). The temperature is T = dt/(B·h) (h = width; h = 1 for the
//! perceptron). Training stops when the training hinge loss is exactly zero
//! (α·min_i y_i o_i ≥ 1), or at a step cap: such runs are *censored* and reported as such.
//! t* = dt·steps is the training time.
//!
//! **(A) The perceptron power laws** (`perceptron.csv`). f = w·x/√d, y = sign(x₁), x₁ with
//! density ρ(x₁) ∝ |x₁|^χ e^{−x₁²/2} (drawn as ±√(2·Gamma((1+χ)/2))), the other d − 1
//! coordinates standard Gaussian; χ sets how many points lie near the decision boundary. B = 2,
//! α = 2^15. Because the model is linear and centred, Δw = w − w₀ evolves independently of w₀,
//! and u = α·Δw obeys u ← u + (αT)·Σ_b 1[y_b u·x_b/√d < 1]·y_b x_b/√d: the dynamics depend
//! only on αT = T/κ. stochlab integrates u (in double precision, so α = 2^15 costs no accuracy)
//! and reports Δw = u/α. Every (χ, seed, P, T) replica runs at once as one batched tensor
//! (P from nested training sets, padded to the largest P). Recorded per replica: ‖Δw‖, Δw_∥
//! (along x₁), ‖Δw_⊥‖, steps, t* and the test error on `n_test` fresh points. Fitted per χ over
//! the uncensored replicas: ‖Δw‖ ∝ T^δ P^γ and t* ∝ T^{e_T} P^b (`summary.csv`). In the noise
//! regime (αT ≫ 1) theory predicts δ = 1 and γ = 1/(1 + χ) (the follow-up paper, PNAS 2023).
//! T_c(P) is where ‖Δw‖ (mean of logs over seeds) crosses the fixed absolute level `tc_level`,
//! interpolated in log–log; then T_c ∝ P^{−γ/δ}.
//!
//! **(B) The headline on a lazy deep net** (`lazy.csv`). The paper's MLP (no biases, weights
//! N(0, 1), pre-activations divided by √fan_in, the activation rescaled to unit second moment
//! under a standard Gaussian input, the last layer divided by its fan-in h) on MNIST parity
//! (even → +1, odd → −1, pixels standardised), α = 2^15, B = 16, over several octaves of T
//! and P = 512…4096 (nested subsets). All temperatures and seeds of one P train as one batched
//! model (stacked weights, `bmm`). T_c(P) is where ‖Δw‖/‖w₀‖ (mean of logs over seeds) crosses
//! the fixed level `tc_level` (the model leaves the kernel regime); summary.csv also gives the
//! T where the test error leaves its low-T plateau (rises by `plateau_tol` above the mean of the
//! two lowest temperatures). The paper: T_c ∝ P^{−a}, a > 0.
//!
//! A replica stops when it fits, when its outputs blow up (`diverged`: |α·o| > 1e9 or not
//! finite) or when no weight moved while 20·P points were drawn (`stuck`: a ReLU net whose units
//! all died at large T has no gradient left); MLP steps are counted to the check that saw the fit.
//!
//! **(C) The (α, T) phase diagram** (`phase.csv`): the same MLP (GELU, as in the official phase
//! diagram) at one P over a grid of α and T, test error at the end (`phase` figure).
//!
//! **Deviations (CPU scale).** Official: perceptron d = 16…128, P = 1024…16384, αT = 2^-1…2^16,
//! 5 seeds, 32768 test points, wall-clock cap; MLP depth 5, width 128, P = 1024…16384, 5 seeds,
//! phase diagram at depth 5, width 128. Here (default config): perceptron d = 16,
//! P = 256…2048, αT = 2^4…2^10, 2 seeds, a 400k-step cap; MLP depth 2, width 64, one seed,
//! T = 2^-12…2^-3 (above that the ReLU net dies), the phase diagram at P = 512. The full config
//! (`sgd-noise-full.toml`) runs the official sweeps. Steps are drawn as B distinct indices per
//! step (Floyd's algorithm per replica), matching the official fresh-permutation draw.

use crate::config;
use crate::data::{self, DataConfig};
use crate::experiments::children::csv_bytes;
use crate::experiments::Entry;
use crate::nn::Activation;
use crate::rng::{self, Stream};
use crate::run::fsutil::write_atomic;
use crate::run::metrics::{float, json_float};
use crate::run::progress::Progress;
use crate::run::{Outcome, RunContext};
use crate::stats::{linear_fit, plane_fit};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};
use toml::Table;

pub const ENTRY: Entry = Entry {
    name: "sgd-noise",
    family: "sgd",
    description: "SGD temperature against training-set size: perceptron power laws, T_c(P) of a lazy MLP, (α, T) phase diagram",
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

const KIND: Kind = Kind::Double;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Perceptron {
    pub enabled: bool,
    pub dim: i64,
    /// Boundary-density exponents χ: ρ(x₁) ∝ |x₁|^χ e^{−x₁²/2}.
    pub chis: Vec<f64>,
    pub train_sizes: Vec<i64>,
    /// Temperatures in units of the margin κ = 1/α, i.e. the values of αT.
    pub temperatures: Vec<f64>,
    pub alpha: f64,
    pub batch_size: i64,
    /// Training sets (and so replicas) per (χ, P, T).
    pub seeds: usize,
    pub n_test: i64,
    /// Step cap: a replica not fitted by then is censored.
    pub max_steps: i64,
    /// Training margins are checked every this many steps.
    pub check_every: i64,
    /// T_c(P): where ‖Δw‖ (weight units) crosses this fixed level.
    pub tc_level: f64,
}

impl Default for Perceptron {
    fn default() -> Self {
        Perceptron {
            enabled: true,
            dim: 16,
            chis: vec![0.0, 1.0, 3.0],
            train_sizes: vec![256, 512, 1024, 2048],
            temperatures: (4..=10).map(|k| 2f64.powi(k)).collect(),
            alpha: 32768.0,
            batch_size: 2,
            seeds: 2,
            n_test: 10000,
            max_steps: 400_000,
            check_every: 100,
            tc_level: 0.04,
        }
    }
}

/// The lazy MLP's T_c(P) (part B).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Lazy {
    pub enabled: bool,
    /// A classification set; the label becomes its parity (even → +1, odd → −1).
    pub data: DataConfig,
    pub train_sizes: Vec<i64>,
    /// Hidden layers and their width h.
    pub depth: usize,
    pub width: i64,
    pub activation: Activation,
    pub alpha: f64,
    /// T = dt/(B·h).
    pub temperatures: Vec<f64>,
    pub batch_size: i64,
    pub seeds: usize,
    /// Step cap in passes over the training set (P/B steps each).
    pub max_epochs: f64,
    /// Training margins are checked every this many steps.
    pub check_every: i64,
    /// Test points evaluated (0 = the whole test split).
    pub n_test: i64,
    /// T_c(P): where ‖Δw‖/‖w₀‖ crosses this fixed level.
    pub tc_level: f64,
    /// The test-error T_c: where the error rises this much above its low-T plateau.
    pub plateau_tol: f64,
}

fn mnist_parity() -> DataConfig {
    DataConfig {
        name: "mnist".into(),
        normalize: data::Normalize::Feature,
        ..Default::default()
    }
}

impl Default for Lazy {
    fn default() -> Self {
        Lazy {
            enabled: true,
            data: mnist_parity(),
            train_sizes: vec![512, 1024, 2048, 4096],
            depth: 2,
            width: 64,
            activation: Activation::Relu,
            alpha: 32768.0,
            temperatures: (-12..=-1).map(|k| 2f64.powi(k)).collect(),
            batch_size: 16,
            seeds: 1,
            max_epochs: 200.0,
            check_every: 64,
            n_test: 0,
            tc_level: 0.01,
            plateau_tol: 0.02,
        }
    }
}

/// The (α, T) phase diagram (part C).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Phase {
    pub enabled: bool,
    pub data: DataConfig,
    pub train_size: i64,
    pub depth: usize,
    pub width: i64,
    pub activation: Activation,
    pub alphas: Vec<f64>,
    pub temperatures: Vec<f64>,
    pub batch_size: i64,
    pub max_epochs: f64,
    pub check_every: i64,
    pub n_test: i64,
}

impl Default for Phase {
    fn default() -> Self {
        Phase {
            enabled: true,
            data: mnist_parity(),
            train_size: 512,
            depth: 2,
            width: 64,
            activation: Activation::Gelu,
            alphas: [-6, -2, 2, 6, 10, 15]
                .iter()
                .map(|&k| 2f64.powi(k))
                .collect(),
            temperatures: [-12, -9, -6, -3].iter().map(|&k| 2f64.powi(k)).collect(),
            batch_size: 16,
            max_epochs: 40.0,
            check_every: 32,
            n_test: 0,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub perceptron: Perceptron,
    pub lazy: Lazy,
    pub phase: Phase,
}

fn positive(v: &[f64]) -> bool {
    !v.is_empty() && v.iter().all(|&t| t > 0.0 && t.is_finite())
}

impl config::Check for Config {
    fn check(&self) -> Result<()> {
        let p = &self.perceptron;
        if p.dim < 2 || p.chis.is_empty() || p.chis.iter().any(|&c| c <= -1.0) {
            bail!("perceptron: dim >= 2 and every chi > -1 (at least one)");
        }
        if p.batch_size < 1 || p.seeds < 1 || p.n_test < 1 || p.check_every < 1 || p.max_steps < 0 {
            bail!("perceptron: batch_size, seeds, n_test and check_every >= 1, max_steps >= 0");
        }
        if p.train_sizes.is_empty() || p.train_sizes.iter().any(|&n| n < p.batch_size.max(2)) {
            bail!("perceptron.train_sizes: at least one, each >= max(batch_size, 2)");
        }
        if !positive(&p.temperatures) || p.alpha <= 0.0 || p.tc_level <= 0.0 {
            bail!("perceptron: temperatures, alpha and tc_level must be positive");
        }
        let l = &self.lazy;
        net_check(
            "lazy",
            l.depth,
            l.width,
            l.batch_size,
            l.max_epochs,
            l.check_every,
        )?;
        if l.train_sizes.is_empty() || l.train_sizes.iter().any(|&n| n < l.batch_size) {
            bail!("lazy.train_sizes: at least one, each >= lazy.batch_size");
        }
        if !positive(&l.temperatures) || l.alpha <= 0.0 || l.tc_level <= 0.0 || l.seeds < 1 {
            bail!("lazy: temperatures, alpha and tc_level must be positive, seeds >= 1");
        }
        if l.plateau_tol <= 0.0 || l.n_test < 0 {
            bail!("lazy: plateau_tol > 0 and n_test >= 0");
        }
        l.data.check()?;
        let f = &self.phase;
        net_check(
            "phase",
            f.depth,
            f.width,
            f.batch_size,
            f.max_epochs,
            f.check_every,
        )?;
        if f.train_size < f.batch_size || !positive(&f.alphas) || !positive(&f.temperatures) {
            bail!("phase: train_size >= batch_size; alphas and temperatures positive");
        }
        if f.n_test < 0 {
            bail!("phase.n_test must be >= 0");
        }
        f.data.check()
    }
}

fn net_check(part: &str, depth: usize, width: i64, bs: i64, epochs: f64, check: i64) -> Result<()> {
    if depth < 1 || width < 1 || bs < 1 || check < 1 || epochs.is_nan() || epochs <= 0.0 {
        bail!("{part}: depth, width, batch_size and check_every >= 1, max_epochs > 0");
    }
    Ok(())
}

// ---- Data and sampling --------------------------------------------------------------------

/// x₁ with density ∝ |x₁|^χ e^{−x₁²/2}: x₁²/2 ~ Gamma((χ+1)/2), random sign.
pub fn boundary_coordinate(n: i64, chi: f64) -> Tensor {
    let shape = Tensor::full([n], (chi + 1.0) / 2.0, (KIND, Device::Cpu));
    let r = (shape.internal_standard_gamma() * 2.0).sqrt();
    let sign = Tensor::randint(2, [n], (KIND, Device::Cpu)) * 2.0 - 1.0;
    r * sign
}

/// n points of the perceptron task as y·x/√d [n, d] (x₁ first): the rows the hinge acts on.
fn perceptron_rows(n: i64, dim: i64, chi: f64) -> Tensor {
    let x = Tensor::randn([n, dim], (KIND, Device::Cpu));
    let x1 = boundary_coordinate(n, chi);
    let x = Tensor::cat(&[x1.unsqueeze(1), x.narrow(1, 1, dim - 1)], 1);
    x * x1.sign().unsqueeze(1) / (dim as f64).sqrt()
}

/// For each replica s, `k` batches of `bs` distinct indices drawn uniformly from 0..sizes[s]
/// (Floyd's algorithm, vectorised over replicas): [k, S, bs] Int64 on the CPU.
pub fn distinct_batches(sizes: &[i64], bs: i64, k: i64) -> Tensor {
    let s = sizes.len() as i64;
    let n = Tensor::from_slice(sizes).to_kind(KIND);
    let mut chosen: Vec<Tensor> = vec![];
    for j in 0..bs {
        // Draw t from 0..=top with top = n − bs + j; if t is taken, take top (not yet taken).
        let top = (&n - (bs - j) as f64)
            .to_kind(Kind::Int64)
            .expand([k, s], false);
        let t = (Tensor::rand([k, s], (KIND, Device::Cpu)) * (&n - (bs - j - 1) as f64))
            .floor()
            .to_kind(Kind::Int64)
            .minimum(&top);
        let mut taken = Tensor::zeros([k, s], (Kind::Bool, Device::Cpu));
        for c in &chosen {
            taken = taken.logical_or(&t.eq_tensor(c));
        }
        chosen.push(top.where_self(&taken, &t));
    }
    Tensor::stack(&chosen, 2)
}

/// The official per-sample loss, averaged over the batch: (1/α)·max(0, 1 − α·y·o), with o the
/// centred output. `alpha` is a scalar or broadcasts against `o` (one α per replica).
pub fn official_hinge(o: &Tensor, y: &Tensor, alpha: &Tensor) -> Tensor {
    ((-(o * y * alpha) + 1.0).relu() / alpha).mean_dim(-1, false, o.kind())
}

/// One SGD step of every perceptron replica in margin units u = α·Δw: xb [S, B, d] holds the
/// batch's y·x/√d rows, `coef` [S, 1, 1] is αT (0 freezes a replica). Returns how many of
/// each replica's batch points were inside the margin [S].
fn perceptron_step(u: &mut Tensor, xb: &Tensor, coef: &Tensor) -> Tensor {
    let margins = xb.bmm(&u.unsqueeze(2)); // [S, B, 1]
    let inside = margins.lt(1.0).to_kind(KIND);
    let hit = &inside * coef;
    *u += hit.transpose(1, 2).bmm(xb).squeeze_dim(1);
    inside.sum_dim_intlist([1i64, 2].as_slice(), false, KIND)
}

// ---- (A) the perceptron -------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct PerceptronRun {
    chi: f64,
    seed: usize,
    p: i64,
    alpha_t: f64,
    /// Steps to zero training loss (the cap when censored).
    steps: i64,
    fitted: bool,
    dw: f64,
    dw_par: f64,
    dw_perp: f64,
    test_err: f64,
}

/// Trains every (χ, seed, P, αT) replica as one batched tensor.
fn perceptron_sweep(
    cfg: &Perceptron,
    seed: u64,
    device: Device,
    progress: &mut Progress,
) -> Result<Vec<PerceptronRun>> {
    let (nc, ns) = (cfg.chis.len() as i64, cfg.seeds as i64);
    let g = nc * ns;
    let (np, nt) = (cfg.train_sizes.len() as i64, cfg.temperatures.len() as i64);
    let r = np * nt;
    let s = g * r;
    let pm = *cfg.train_sizes.iter().max().unwrap_or(&2);
    let d = cfg.dim;
    // Training rows per (χ, seed) group: nested sets (P uses the first P of Pmax); test rows
    // per χ.
    let mut rows = vec![];
    let mut test = vec![];
    for (ci, &chi) in cfg.chis.iter().enumerate() {
        for si in 0..cfg.seeds {
            rng::reseed(seed, Stream::Data, ci as u64, si as u64);
            rows.push(perceptron_rows(pm, d, chi));
        }
        rng::reseed(seed, Stream::Data, ci as u64, 1 << 20);
        test.push(perceptron_rows(cfg.n_test, d, chi));
    }
    let xy = Tensor::stack(&rows, 0).to_device(device); // [G, Pm, d]
    let xy_flat = xy.view([g * pm, d]);
    let xt = Tensor::stack(&test, 0).to_device(device); // [nc, n_test, d]
                                                        // Replica s = group·R + (P index)·nt + (T index).
    let sizes: Vec<i64> = (0..s)
        .map(|i| cfg.train_sizes[((i % r) / nt) as usize])
        .collect();
    let alpha_t: Vec<f64> = (0..s)
        .map(|i| cfg.temperatures[(i % nt) as usize])
        .collect();
    let offsets: Vec<i64> = (0..s).map(|i| i / r * pm).collect();
    let offsets = Tensor::from_slice(&offsets).view([1, s, 1]);
    let coef_full = Tensor::from_slice(&alpha_t)
        .to_device(device)
        .view([s, 1, 1]);
    let sizes_t = Tensor::from_slice(&sizes[..r as usize]).to_device(device);
    let padded = Tensor::arange(pm, (Kind::Int64, device))
        .unsqueeze(1)
        .ge_tensor(&sizes_t.unsqueeze(0)); // [Pm, R]
    let mut u = Tensor::zeros([s, d], (KIND, device));
    let mut fitted_at = vec![-1i64; s as usize];
    let mut active = vec![true; s as usize];
    let k = cfg.check_every;
    let mut done = 0i64;
    let mut block = 0u64;
    while done < cfg.max_steps && active.iter().any(|&a| a) {
        let k = k.min(cfg.max_steps - done);
        rng::reseed(seed, Stream::Step, 0, block);
        let idx = (distinct_batches(&sizes, cfg.batch_size, k) + &offsets).to_device(device);
        let xb = xy_flat
            .index_select(0, &idx.flatten(0, -1))
            .view([k, s, cfg.batch_size, d]);
        let mask: Vec<f64> = active.iter().map(|&a| f64::from(u8::from(a))).collect();
        let coef = &coef_full * Tensor::from_slice(&mask).to_device(device).view([s, 1, 1]);
        let mut hits = vec![];
        for step in 0..k {
            hits.push(perceptron_step(&mut u, &xb.get(step), &coef));
        }
        let hits = Tensor::stack(&hits, 0).to_device(Device::Cpu); // [k, S]
        let min_margin = xy
            .bmm(&u.view([g, r, d]).transpose(1, 2))
            .masked_fill(&padded, f64::INFINITY)
            .min_dim(1, false)
            .0
            .view([s]);
        let fitted: Vec<bool> = Vec::<bool>::try_from(min_margin.ge(1.0).to_device(Device::Cpu))?;
        let newly: Vec<usize> = (0..s as usize)
            .filter(|&i| fitted[i] && active[i])
            .collect();
        if !newly.is_empty() {
            let hits: Vec<f64> = Vec::<f64>::try_from(hits.flatten(0, -1))?;
            for i in newly {
                // The loss is zero from the step after the last update on.
                let last = (0..k)
                    .rev()
                    .find(|&st| hits[(st * s) as usize + i] > 0.0)
                    .map_or(0, |st| st + 1);
                fitted_at[i] = done + last;
                active[i] = false;
            }
        }
        done += k;
        block += 1;
        progress.update(
            done as u64,
            &format!(
                "perceptron: {} of {s} replicas fitted",
                active.iter().filter(|&&a| !a).count()
            ),
        );
    }
    let err: Vec<f64> = Vec::<f64>::try_from(
        xt.bmm(&u.view([nc, ns * r, d]).transpose(1, 2))
            .le(0.0)
            .to_kind(KIND)
            .mean_dim(1, false, KIND)
            .flatten(0, -1)
            .to_device(Device::Cpu),
    )?;
    let uv: Vec<f64> = Vec::<f64>::try_from(u.flatten(0, -1).to_device(Device::Cpu))?;
    let a = cfg.alpha;
    Ok((0..s as usize)
        .map(|i| {
            let ui = &uv[i * d as usize..(i + 1) * d as usize];
            let perp = ui[1..].iter().map(|v| v * v).sum::<f64>().sqrt();
            let grp = i / r as usize;
            PerceptronRun {
                chi: cfg.chis[grp / cfg.seeds],
                seed: grp % cfg.seeds,
                p: sizes[i],
                alpha_t: alpha_t[i],
                steps: if fitted_at[i] >= 0 {
                    fitted_at[i]
                } else {
                    done
                },
                fitted: fitted_at[i] >= 0,
                dw: ui.iter().map(|v| v * v).sum::<f64>().sqrt() / a,
                dw_par: ui[0] / a,
                dw_perp: perp / a,
                test_err: err[i],
            }
        })
        .collect())
}

/// Where a curve first crosses `level` going up, interpolated linearly in (log x, y); NaN when
/// it starts above the level (the crossing is below the range) or never reaches it. `pts` are
/// (x, y) in increasing x; non-finite y are skipped.
pub fn crossing(pts: &[(f64, f64)], level: f64) -> f64 {
    let pts: Vec<(f64, f64)> = pts.iter().copied().filter(|p| p.1.is_finite()).collect();
    if pts.first().is_none_or(|p| p.1 >= level) {
        return f64::NAN;
    }
    for w in pts.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if y1 >= level {
            let frac = (level - y0) / (y1 - y0);
            return (x0.ln() + frac * (x1.ln() - x0.ln())).exp();
        }
    }
    f64::NAN
}

/// Mean of `f` over the values at each distinct x (in increasing x), NaN where `ok` fails for
/// any of them.
fn mean_at<T>(
    items: &[&T],
    x: impl Fn(&T) -> f64,
    f: impl Fn(&T) -> f64,
    ok: impl Fn(&T) -> bool,
) -> Vec<(f64, f64)> {
    let mut xs: Vec<f64> = items.iter().map(|t| x(t)).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    xs.into_iter()
        .map(|xv| {
            let at: Vec<&&T> = items.iter().filter(|t| x(t) == xv).collect();
            let m = if at.iter().all(|t| ok(t)) {
                at.iter().map(|t| f(t)).sum::<f64>() / at.len() as f64
            } else {
                f64::NAN
            };
            (xv, m)
        })
        .collect()
}

/// log T_c against log P; R² is NaN (a failed claim, not a vacuous pass) with fewer than three
/// located T_c values, since two points always lie on a line.
fn power_law(x: &[f64], y: &[f64]) -> crate::stats::Line {
    let mut fit = linear_fit(x, y);
    if fit.n < 3 {
        fit.r2 = f64::NAN;
    }
    fit
}

const SUMMARY_COLS: [&str; 9] = [
    "part", "quantity", "chi", "P", "value", "exp_T", "exp_P", "r2", "n",
];

/// One summary.csv row; empty strings for cells that do not apply.
fn row(part: &str, quantity: &str, cells: [Option<f64>; 7]) -> Vec<String> {
    let mut v = vec![part.to_string(), quantity.to_string()];
    v.extend(cells.iter().map(|c| c.map(float).unwrap_or_default()));
    v
}

/// The summary row of a fit log y = c0 + c1·log T + c2·log P (exponents in exp_T, exp_P).
fn plane_row(part: &str, quantity: &str, chi: Option<f64>, f: &crate::stats::Plane) -> Vec<String> {
    let cells = [
        chi,
        None,
        Some(f.c0),
        Some(f.c1),
        Some(f.c2),
        Some(f.r2),
        Some(f.n as f64),
    ];
    row(part, quantity, cells)
}

/// The summary row of a power law log y = intercept + slope·log P (the slope in exp_P).
fn power_row(part: &str, quantity: &str, chi: Option<f64>, f: &crate::stats::Line) -> Vec<String> {
    let cells = [
        chi,
        None,
        Some(f.intercept),
        None,
        Some(f.slope),
        Some(f.r2),
        Some(f.n as f64),
    ];
    row(part, quantity, cells)
}

fn part_a(
    cfg: &Perceptron,
    ctx: &mut RunContext,
    summary: &mut Vec<Vec<String>>,
    head: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<()> {
    let mut progress = Progress::new("sgd-noise perceptron", cfg.max_steps as u64, ctx.quiet);
    let runs = perceptron_sweep(cfg, ctx.seed, ctx.device, &mut progress)?;
    progress.finish();
    let a = cfg.alpha;
    let bs = cfg.batch_size as f64;
    let mut csv_rows = vec![];
    for q in &runs {
        let t = q.alpha_t / a;
        let t_star = bs * t * q.steps as f64;
        csv_rows.push(vec![
            float(q.chi),
            q.seed.to_string(),
            q.p.to_string(),
            float(q.alpha_t),
            float(t),
            q.steps.to_string(),
            q.fitted.to_string(),
            float(t_star),
            float(q.dw),
            float(q.dw_par),
            float(q.dw_perp),
            float(q.test_err),
        ]);
        ctx.log(vec![
            "perceptron".into(),
            q.chi.into(),
            (q.seed as i64).into(),
            q.p.into(),
            a.into(),
            t.into(),
            q.steps.into(),
            q.fitted.to_string().into(),
            q.dw.into(),
            q.test_err.into(),
        ])?;
    }
    let cols = [
        "chi", "seed", "P", "alpha_T", "T", "steps", "fitted", "t_star", "dw_norm", "dw_par",
        "dw_perp", "test_err",
    ];
    write_atomic(
        &ctx.dir.join("perceptron.csv"),
        &csv_bytes(&cols, &csv_rows)?,
    )?;
    let mut censored_total = 0usize;
    for &chi in &cfg.chis {
        let of: Vec<&PerceptronRun> = runs.iter().filter(|q| q.chi == chi).collect();
        let ok: Vec<&&PerceptronRun> = of.iter().filter(|q| q.fitted).collect();
        let lt: Vec<f64> = ok.iter().map(|q| (q.alpha_t / a).ln()).collect();
        let lp: Vec<f64> = ok.iter().map(|q| (q.p as f64).ln()).collect();
        let ld: Vec<f64> = ok.iter().map(|q| q.dw.ln()).collect();
        let ls: Vec<f64> = ok
            .iter()
            .map(|q| (bs * q.alpha_t / a * q.steps as f64).ln())
            .collect();
        let dw = plane_fit(&lt, &lp, &ld);
        let ts = plane_fit(&lt, &lp, &ls);
        let c = Some(chi);
        summary.push(plane_row("perceptron", "dw fit", c, &dw));
        summary.push(plane_row("perceptron", "t* fit", c, &ts));
        let censored = of.len() - ok.len();
        censored_total += censored;
        summary.push(row(
            "perceptron",
            "censored",
            [
                c,
                None,
                Some(censored as f64),
                None,
                None,
                None,
                Some(of.len() as f64),
            ],
        ));
        let mut tc = vec![];
        for &p in &cfg.train_sizes {
            let at: Vec<&PerceptronRun> = of.iter().copied().filter(|q| q.p == p).collect();
            let curve = mean_at(&at, |q| q.alpha_t / a, |q| q.dw.ln(), |q| q.fitted);
            let t = crossing(&curve, cfg.tc_level.ln());
            summary.push(row(
                "perceptron",
                "T_c",
                [c, Some(p as f64), Some(t), None, None, None, None],
            ));
            tc.push(((p as f64).ln(), t.ln()));
        }
        let (x, y): (Vec<f64>, Vec<f64>) = tc.into_iter().unzip();
        let fit = power_law(&x, &y);
        summary.push(power_row("perceptron", "log T_c vs log P", c, &fit));
        head.insert(format!("perceptron_delta_chi{chi}"), json_float(dw.c1));
        head.insert(format!("perceptron_gamma_chi{chi}"), json_float(dw.c2));
        head.insert(
            format!("perceptron_tc_slope_chi{chi}"),
            json_float(fit.slope),
        );
    }
    head.insert("perceptron_censored".into(), censored_total.into());
    Ok(())
}

// ---- (B, C) the paper's MLP, many replicas at once ----------------------------------------

/// E[φ(z)²] for z ~ N(0, 1), by quadrature: the paper rescales φ by its inverse square root.
pub fn second_moment(act: Activation) -> f64 {
    let n = 200_001;
    let z = Tensor::linspace(-12.0, 12.0, n, (KIND, Device::Cpu));
    let dz = 24.0 / (n - 1) as f64;
    let w = (-z.square() / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt() * dz;
    (act.apply(&z).square() * w).sum(KIND).double_value(&[])
}

/// The paper's fully connected net without biases, S replicas stacked ([S, fan_in, fan_out]
/// weights): z_{l+1} = c·φ(z_l W_l/√fan_in), f = z_L W_L / h, with c = E[φ(z)²]^{-1/2}.
struct Population {
    ws: Vec<Tensor>,
    w0: Vec<Tensor>,
    act: Activation,
    gain: f64,
    width: i64,
}

impl Population {
    /// Replica s starts from the weights of init seed `inits[s]` (drawn on the CPU).
    fn new(
        d_in: i64,
        depth: usize,
        width: i64,
        act: Activation,
        inits: &[u64],
        seed: u64,
        device: Device,
    ) -> Self {
        let mut dims = vec![d_in];
        dims.extend(std::iter::repeat_n(width, depth));
        dims.push(1);
        let mut per_seed: Vec<(u64, Vec<Tensor>)> = vec![];
        for &i in inits {
            if per_seed.iter().all(|(k, _)| *k != i) {
                rng::reseed(seed, Stream::Init, i, 0);
                let w = dims
                    .windows(2)
                    .map(|p| Tensor::randn([p[0], p[1]], (KIND, Device::Cpu)))
                    .collect();
                per_seed.push((i, w));
            }
        }
        let w0: Vec<Tensor> = (0..dims.len() - 1)
            .map(|l| {
                let layer: Vec<&Tensor> = inits
                    .iter()
                    .map(|i| {
                        &per_seed
                            .iter()
                            .find(|(k, _)| k == i)
                            .expect("drawn above")
                            .1[l]
                    })
                    .collect();
                Tensor::stack(&layer, 0).to_device(device)
            })
            .collect();
        let ws = w0
            .iter()
            .map(|w| w.copy().set_requires_grad(true))
            .collect();
        Population {
            ws,
            w0,
            act,
            gain: 1.0 / second_moment(act).sqrt(),
            width,
        }
    }

    /// f for inputs x [S, n, d] (or [1, n, d], shared) with weights `ws`: [S, n].
    fn forward(&self, ws: &[Tensor], x: &Tensor) -> Tensor {
        let last = ws.len() - 1;
        let mut h = x.shallow_clone();
        for w in &ws[..last] {
            let fan_in = w.size()[1] as f64;
            let z = if h.size()[0] == 1 && w.size()[0] > 1 {
                h.expand([w.size()[0], -1, -1], false).bmm(w)
            } else {
                h.bmm(w)
            };
            h = self.act.apply(&(z / fan_in.sqrt())) * self.gain;
        }
        h.bmm(&ws[last]).squeeze_dim(2) / self.width as f64
    }

    /// f in chunks of rows, without a graph (evaluation of many points).
    fn eval(&self, ws: &[Tensor], x: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let n = x.size()[0];
            let chunks: Vec<Tensor> = (0..n)
                .step_by(2048)
                .map(|i| self.forward(ws, &x.narrow(0, i, 2048.min(n - i)).unsqueeze(0)))
                .collect();
            Tensor::cat(&chunks, 1)
        })
    }
}

/// Parity data on the device: inputs flattened, labels ±1 (even → +1); the training rows are
/// the first `max_p` of a seeded permutation, so the first P of them are the nested training
/// set of size P.
struct Parity {
    x: Tensor,
    y: Tensor,
    xt: Tensor,
    yt: Tensor,
}

fn parity_data(
    cfg: &DataConfig,
    n_test: i64,
    max_p: i64,
    part: &str,
    ctx: &RunContext,
) -> Result<Parity> {
    let data = data::load(cfg, &ctx.data_dir, ctx.device, ctx.seed)?;
    let n = data.train.len();
    if max_p > n {
        bail!(
            "{part}: P = {max_p} but {} has only {n} training examples; use smaller training sizes or a larger set ({part}.data.name)",
            cfg.name
        );
    }
    let flat = |x: &Tensor| x.flatten(1, -1).to_kind(KIND);
    let parity = |y: &Tensor| 1.0 - y.remainder(2).to_kind(KIND) * 2.0;
    rng::reseed(ctx.seed, Stream::Data, 7, 0);
    let order = Tensor::randperm(n, (Kind::Int64, Device::Cpu))
        .narrow(0, 0, max_p)
        .to_device(ctx.device);
    let nt = if n_test > 0 {
        n_test.min(data.test.len())
    } else {
        data.test.len()
    };
    Ok(Parity {
        x: flat(&data.train.x.index_select(0, &order)),
        y: parity(&data.train.y.index_select(0, &order)),
        xt: flat(&data.test.x.narrow(0, 0, nt)),
        yt: parity(&data.test.y.narrow(0, 0, nt)),
    })
}

/// One replica of an MLP population: its α, T and initialisation seed.
#[derive(Debug, Clone, Copy)]
struct Arm {
    alpha: f64,
    temp: f64,
    init: u64,
}

#[derive(Debug, Clone)]
struct ArmResult {
    steps: i64,
    fitted: bool,
    diverged: bool,
    /// Stopped moving (no weight changed while 20·P points were drawn) before fitting.
    stuck: bool,
    dw: f64,
    dw_rel: f64,
    test_err: f64,
}

struct NetSpec {
    depth: usize,
    width: i64,
    act: Activation,
    batch_size: i64,
    max_epochs: f64,
    check_every: i64,
}

/// Trains every arm on the first `p` training points (of `data.order`) until its training
/// hinge loss is zero, it diverges, or the step cap; one batched model.
fn train_arms(
    spec: &NetSpec,
    data: &Parity,
    p: i64,
    arms: &[Arm],
    ctx: &RunContext,
    tag: u64,
    label: &str,
) -> Result<Vec<ArmResult>> {
    let dev = ctx.device;
    let s = arms.len() as i64;
    let bs = spec.batch_size;
    let (x, y) = (data.x.narrow(0, 0, p), data.y.narrow(0, 0, p));
    let inits: Vec<u64> = arms.iter().map(|a| a.init).collect();
    let d_in = x.size()[1];
    let net = Population::new(
        d_in, spec.depth, spec.width, spec.act, &inits, ctx.seed, dev,
    );
    let f0 = net.eval(&net.w0, &x); // [S, p]
    let alpha = Tensor::from_slice(&arms.iter().map(|a| a.alpha).collect::<Vec<_>>())
        .to_device(dev)
        .view([s, 1]);
    let dt: Vec<f64> = arms
        .iter()
        .map(|a| a.temp * (bs * spec.width) as f64)
        .collect();
    let dt = Tensor::from_slice(&dt).to_device(dev).view([s, 1, 1]);
    let max_steps = (spec.max_epochs * p as f64 / bs as f64).ceil() as i64;
    let rows = Tensor::arange(s, (Kind::Int64, dev)).view([s, 1]);
    let mut fitted_at = vec![-1i64; s as usize];
    let mut diverged = vec![false; s as usize];
    let mut done = 0i64;
    let mut block = 0u64;
    let mut stuck = vec![false; s as usize];
    let mut still = vec![0i64; s as usize];
    let mut prev: Vec<Tensor> = net.ws.iter().map(|w| w.detach().copy()).collect();
    let is_active = |f: &[i64], d: &[bool], st: &[bool]| -> Vec<bool> {
        f.iter()
            .zip(d)
            .zip(st)
            .map(|((&f, &d), &st)| f < 0 && !d && !st)
            .collect()
    };
    let sizes = vec![p; s as usize];
    let mut progress = Progress::new(label, max_steps as u64, ctx.quiet);
    while done < max_steps && is_active(&fitted_at, &diverged, &stuck).iter().any(|&a| a) {
        let k = spec.check_every.min(max_steps - done);
        let act: Vec<f64> = is_active(&fitted_at, &diverged, &stuck)
            .iter()
            .map(|&a| f64::from(u8::from(a)))
            .collect();
        let step_size = &dt * Tensor::from_slice(&act).to_device(dev).view([s, 1, 1]);
        rng::reseed(ctx.seed, Stream::Step, tag, block);
        let batches = distinct_batches(&sizes, bs, k).to_device(dev);
        for st in 0..k {
            let b = batches.get(st); // [S, bs]
            let xb = x.index_select(0, &b.flatten(0, -1)).view([s, bs, d_in]);
            let yb = y.index_select(0, &b.flatten(0, -1)).view([s, bs]);
            let o = net.forward(&net.ws, &xb) - f0.index(&[Some(&rows), Some(&b)]);
            let loss = official_hinge(&o, &yb, &alpha).sum(KIND);
            let grads = Tensor::run_backward(&[loss], &net.ws, false, false);
            tch::no_grad(|| {
                for (w, gr) in net.ws.iter().zip(&grads) {
                    let _ = w.shallow_clone().g_sub_(&(gr * &step_size));
                }
            });
        }
        done += k;
        block += 1;
        let margins = (net.eval(&net.ws, &x) - &f0) * &y * &alpha;
        let min: Vec<f64> =
            Vec::<f64>::try_from(margins.min_dim(1, false).0.to_device(Device::Cpu))?;
        let max: Vec<f64> = Vec::<f64>::try_from(
            margins
                .abs()
                .amax([1i64].as_slice(), false)
                .to_device(Device::Cpu),
        )?;
        // How far each replica moved since the last check: a net whose units are all dead
        // (large T kills ReLU nets) has no gradient left and never fits.
        let moved = tch::no_grad(|| {
            let mut m = Tensor::zeros([s], (KIND, dev));
            for (w, q) in net.ws.iter().zip(&prev) {
                m += (w - q)
                    .square()
                    .sum_dim_intlist([1i64, 2].as_slice(), false, KIND);
            }
            m
        });
        let moved: Vec<f64> = Vec::<f64>::try_from(moved.to_device(Device::Cpu))?;
        prev = net.ws.iter().map(|w| w.detach().copy()).collect();
        for (i, m) in min.iter().enumerate() {
            if fitted_at[i] >= 0 || diverged[i] || stuck[i] {
                continue;
            }
            still[i] = if moved[i] == 0.0 { still[i] + k } else { 0 };
            // Diverged: outputs not finite, or blown up (|α·o| > 1e9 on a training point).
            if !m.is_finite() || max[i].is_nan() || max[i] > 1e9 {
                diverged[i] = true;
            } else if *m >= 1.0 {
                fitted_at[i] = done;
            } else if still[i] * bs >= 20 * p {
                // No weight moved while 20·P points were drawn: the chance that an unfitted
                // point with a gradient was never drawn is below e^-20.
                stuck[i] = true;
            }
        }
        let left = is_active(&fitted_at, &diverged, &stuck)
            .iter()
            .filter(|&&a| a)
            .count();
        progress.update(done as u64, &format!("{left} of {s} still training"));
    }
    progress.finish();
    let ft = net.eval(&net.w0, &data.xt);
    let out = net.eval(&net.ws, &data.xt) - ft;
    let err: Vec<f64> = Vec::<f64>::try_from(
        (out * &data.yt)
            .le(0.0)
            .to_kind(KIND)
            .mean_dim(1, false, KIND)
            .to_device(Device::Cpu),
    )?;
    let (dw2, w02) = tch::no_grad(|| {
        let mut dw2 = Tensor::zeros([s], (KIND, dev));
        let mut w02 = Tensor::zeros([s], (KIND, dev));
        for (w, w0) in net.ws.iter().zip(&net.w0) {
            dw2 += (w - w0)
                .square()
                .sum_dim_intlist([1i64, 2].as_slice(), false, KIND);
            w02 += w0
                .square()
                .sum_dim_intlist([1i64, 2].as_slice(), false, KIND);
        }
        (dw2, w02)
    });
    let dw2: Vec<f64> = Vec::<f64>::try_from(dw2.to_device(Device::Cpu))?;
    let w02: Vec<f64> = Vec::<f64>::try_from(w02.to_device(Device::Cpu))?;
    Ok((0..s as usize)
        .map(|i| ArmResult {
            steps: if fitted_at[i] >= 0 {
                fitted_at[i]
            } else {
                done
            },
            fitted: fitted_at[i] >= 0,
            diverged: diverged[i] || !dw2[i].is_finite(),
            stuck: stuck[i],
            dw: dw2[i].sqrt(),
            dw_rel: (dw2[i] / w02[i]).sqrt(),
            test_err: err[i],
        })
        .collect())
}

fn arm_row(r: &ArmResult) -> [String; 7] {
    [
        r.steps.to_string(),
        r.fitted.to_string(),
        r.diverged.to_string(),
        r.stuck.to_string(),
        float(r.dw),
        float(r.dw_rel),
        float(r.test_err),
    ]
}

/// Part B: T_c(P) of the lazy MLP. Returns Some(outcome) when interrupted.
fn part_b(
    cfg: &Lazy,
    ctx: &mut RunContext,
    summary: &mut Vec<Vec<String>>,
    head: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<Option<Outcome>> {
    let max_p = cfg.train_sizes.iter().copied().max().unwrap_or(1);
    let data = parity_data(&cfg.data, cfg.n_test, max_p, "lazy", ctx)?;
    let spec = NetSpec {
        depth: cfg.depth,
        width: cfg.width,
        act: cfg.activation,
        batch_size: cfg.batch_size,
        max_epochs: cfg.max_epochs,
        check_every: cfg.check_every,
    };
    let arms: Vec<Arm> = (0..cfg.seeds as u64)
        .flat_map(|init| {
            cfg.temperatures.iter().map(move |&temp| Arm {
                alpha: cfg.alpha,
                temp,
                init,
            })
        })
        .collect();
    let bs = cfg.batch_size as f64;
    let mut rows = vec![];
    // (P, T, seed, result)
    let mut all: Vec<(i64, f64, u64, ArmResult)> = vec![];
    for (pi, &p) in cfg.train_sizes.iter().enumerate() {
        let res = train_arms(
            &spec,
            &data,
            p,
            &arms,
            ctx,
            1 + pi as u64,
            &format!("sgd-noise lazy P={p}"),
        )?;
        for (a, r) in arms.iter().zip(res) {
            let t_star = a.temp * bs * cfg.width as f64 * r.steps as f64;
            let mut v = vec![
                p.to_string(),
                a.init.to_string(),
                float(a.alpha),
                float(a.temp),
            ];
            v.extend(arm_row(&r));
            v.push(float(t_star));
            rows.push(v);
            ctx.log(vec![
                "lazy".into(),
                f64::NAN.into(),
                (a.init as i64).into(),
                p.into(),
                a.alpha.into(),
                a.temp.into(),
                r.steps.into(),
                r.fitted.to_string().into(),
                r.dw.into(),
                r.test_err.into(),
            ])?;
            all.push((p, a.temp, a.init, r));
        }
        if let Some(sig) = ctx.interrupt.requested() {
            return Ok(Some(Outcome::Interrupted(sig)));
        }
    }
    let cols = [
        "P", "seed", "alpha", "T", "steps", "fitted", "diverged", "stuck", "dw_norm", "dw_rel",
        "test_err", "t_star",
    ];
    write_atomic(&ctx.dir.join("lazy.csv"), &csv_bytes(&cols, &rows)?)?;
    let (mut tc_dw, mut tc_err) = (vec![], vec![]);
    for &p in &cfg.train_sizes {
        let at: Vec<&(i64, f64, u64, ArmResult)> = all.iter().filter(|q| q.0 == p).collect();
        let ok = |q: &(i64, f64, u64, ArmResult)| q.3.fitted;
        let rel = mean_at(&at, |q| q.1, |q| q.3.dw_rel.ln(), ok);
        let t = crossing(&rel, cfg.tc_level.ln());
        summary.push(row(
            "lazy",
            "T_c (dw_rel)",
            [None, Some(p as f64), Some(t), None, None, None, None],
        ));
        tc_dw.push(((p as f64).ln(), t.ln()));
        let err = mean_at(&at, |q| q.1, |q| q.3.test_err, |q| !q.3.diverged);
        let plateau: Vec<f64> = err.iter().take(2).map(|e| e.1).collect();
        let plateau = plateau.iter().sum::<f64>() / plateau.len() as f64;
        let t = crossing(&err[1..], plateau + cfg.plateau_tol);
        summary.push(row(
            "lazy",
            "test error plateau",
            [None, Some(p as f64), Some(plateau), None, None, None, None],
        ));
        summary.push(row(
            "lazy",
            "T_c (test error)",
            [None, Some(p as f64), Some(t), None, None, None, None],
        ));
        tc_err.push(((p as f64).ln(), t.ln()));
    }
    for (name, tc, key) in [
        ("log T_c vs log P (dw_rel)", tc_dw, "lazy_tc"),
        ("log T_c vs log P (test error)", tc_err, "lazy_tc_err"),
    ] {
        let (x, y): (Vec<f64>, Vec<f64>) = tc.into_iter().unzip();
        let fit = power_law(&x, &y);
        summary.push(power_row("lazy", name, None, &fit));
        head.insert(format!("{key}_slope"), json_float(fit.slope));
        head.insert(format!("{key}_r2"), json_float(fit.r2));
    }
    let ok: Vec<&(i64, f64, u64, ArmResult)> = all.iter().filter(|q| q.3.fitted).collect();
    let lt: Vec<f64> = ok.iter().map(|q| q.1.ln()).collect();
    let lp: Vec<f64> = ok.iter().map(|q| (q.0 as f64).ln()).collect();
    let ld: Vec<f64> = ok.iter().map(|q| q.3.dw_rel.ln()).collect();
    let fit = plane_fit(&lt, &lp, &ld);
    summary.push(plane_row("lazy", "dw_rel fit", None, &fit));
    summary.push(row(
        "lazy",
        "censored",
        [
            None,
            None,
            Some((all.len() - ok.len()) as f64),
            None,
            None,
            None,
            Some(all.len() as f64),
        ],
    ));
    Ok(None)
}

/// Part C: the (α, T) phase diagram at one P.
fn part_c(
    cfg: &Phase,
    ctx: &mut RunContext,
    head: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<()> {
    let data = parity_data(&cfg.data, cfg.n_test, cfg.train_size, "phase", ctx)?;
    let spec = NetSpec {
        depth: cfg.depth,
        width: cfg.width,
        act: cfg.activation,
        batch_size: cfg.batch_size,
        max_epochs: cfg.max_epochs,
        check_every: cfg.check_every,
    };
    let arms: Vec<Arm> = cfg
        .alphas
        .iter()
        .flat_map(|&alpha| {
            cfg.temperatures.iter().map(move |&temp| Arm {
                alpha,
                temp,
                init: 0,
            })
        })
        .collect();
    let res = train_arms(
        &spec,
        &data,
        cfg.train_size,
        &arms,
        ctx,
        1 << 16,
        "sgd-noise phase",
    )?;
    let mut rows = vec![];
    for (a, r) in arms.iter().zip(&res) {
        let mut v = vec![float(a.alpha), float(a.temp)];
        v.extend(arm_row(r));
        rows.push(v);
        ctx.log(vec![
            "phase".into(),
            f64::NAN.into(),
            0i64.into(),
            cfg.train_size.into(),
            a.alpha.into(),
            a.temp.into(),
            r.steps.into(),
            r.fitted.to_string().into(),
            r.dw.into(),
            r.test_err.into(),
        ])?;
    }
    let cols = [
        "alpha", "T", "steps", "fitted", "diverged", "stuck", "dw_norm", "dw_rel", "test_err",
    ];
    write_atomic(&ctx.dir.join("phase.csv"), &csv_bytes(&cols, &rows)?)?;
    let errs: Vec<f64> = res
        .iter()
        .map(|r| r.test_err)
        .filter(|e| e.is_finite())
        .collect();
    head.insert(
        "phase_test_err_min".into(),
        json_float(errs.iter().copied().fold(f64::INFINITY, f64::min)),
    );
    head.insert(
        "phase_test_err_max".into(),
        json_float(errs.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
    );
    head.insert(
        "phase_points_fitted".into(),
        res.iter().filter(|r| r.fitted).count().into(),
    );
    head.insert("phase_points".into(), res.len().into());
    Ok(())
}

fn train(table: &Table, ctx: &mut RunContext) -> Result<Outcome> {
    let cfg: Config = config::typed(table)?;
    ctx.open_metrics(&[
        "part",
        "chi",
        "seed",
        "P",
        "alpha",
        "T",
        "steps",
        "fitted",
        "dist_from_init",
        "test_err",
    ])?;
    let mut summary = vec![];
    let mut head = serde_json::Map::new();
    let write = |ctx: &RunContext, summary: &Vec<Vec<String>>| {
        write_atomic(
            &ctx.dir.join("summary.csv"),
            &csv_bytes(&SUMMARY_COLS, summary)?,
        )
    };
    if cfg.perceptron.enabled {
        part_a(&cfg.perceptron, ctx, &mut summary, &mut head)?;
        write(ctx, &summary)?;
    }
    if let Some(sig) = ctx.interrupt.requested() {
        return Ok(Outcome::Interrupted(sig));
    }
    if cfg.lazy.enabled {
        let stopped = part_b(&cfg.lazy, ctx, &mut summary, &mut head)?;
        write(ctx, &summary)?;
        if let Some(stopped) = stopped {
            return Ok(stopped);
        }
    }
    if let Some(sig) = ctx.interrupt.requested() {
        return Ok(Outcome::Interrupted(sig));
    }
    if cfg.phase.enabled {
        part_c(&cfg.phase, ctx, &mut head)?;
    }
    write(ctx, &summary)?;
    ctx.set_final_metrics(head);
    Ok(Outcome::Completed)
}

// ---- The paper's claims -------------------------------------------------------------------

use crate::claims::{self, Claim, Expect, Measured, RunFiles, Scale};

const CLAIMS: &[Claim] = &[
    Claim {
        id: "perceptron-delta",
        statement: "perceptron, noise regime: ‖Δw‖ ∝ T^δ with δ = 1; measured: the largest |δ − 1| over χ (tolerance ±0.15 from the issue, [I])",
        paper: "δ = 1 (‖w‖ ~ T·P^γ, PNAS follow-up)",
        expect: Expect::AtMost(0.15),
        unit: "|δ − 1|",
        scale: Scale::Both,
        variant: None,
        measure: perceptron_delta,
    },
    Claim {
        id: "perceptron-gamma",
        statement: "perceptron, noise regime: ‖Δw‖ ∝ P^γ with γ = 1/(1 + χ); measured: the largest |γ − 1/(1+χ)| over χ (tolerance ±0.15 from the issue, [I])",
        paper: "γ = 1/(1 + χ)",
        expect: Expect::AtMost(0.15),
        unit: "|γ − 1/(1+χ)|",
        scale: Scale::Both,
        variant: None,
        measure: perceptron_gamma,
    },
    Claim {
        id: "perceptron-tc-r2",
        statement: "perceptron: T_c(P) at a fixed ‖Δw‖ level is a power of P; measured: the smallest R² of log T_c against log P over χ (threshold 0.9 from the issue)",
        paper: "T_c ∝ P^(−γ/δ)",
        expect: Expect::AtLeast(0.9),
        unit: "R²",
        scale: Scale::Both,
        variant: None,
        measure: perceptron_tc_r2,
    },
    Claim {
        id: "perceptron-tc-slope",
        statement: "perceptron: T_c falls with P; measured: the largest slope of log T_c against log P over χ",
        paper: "T_c ∝ P^(−a), a > 0",
        expect: Expect::Below(0.0),
        unit: "slope",
        scale: Scale::Both,
        variant: None,
        measure: perceptron_tc_slope,
    },
    Claim {
        id: "lazy-tc-r2",
        statement: "lazy MLP (α = 2^15) on MNIST parity: T_c(P) where ‖Δw‖/‖w₀‖ crosses a fixed level is a power law in P: R² of log T_c against log P (threshold 0.9 from the issue)",
        paper: "T_c ∝ P^(−a)",
        expect: Expect::AtLeast(0.9),
        unit: "R²",
        scale: Scale::Both,
        variant: None,
        measure: lazy_tc_r2,
    },
    Claim {
        id: "lazy-tc-slope",
        statement: "lazy MLP: T_c falls with P: slope of log T_c against log P",
        paper: "T_c ∝ P^(−a), a > 0",
        expect: Expect::Below(0.0),
        unit: "slope",
        scale: Scale::Both,
        variant: None,
        measure: lazy_tc_slope,
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

fn off(f: &RunFiles, part: &str) -> Option<Measured> {
    (f.cfg_bool(&format!("{part}.enabled")) == Some(false)).then(|| {
        Measured::NotApplicable(format!(
            "the {part} part is switched off ({part}.enabled = false)"
        ))
    })
}

/// One number per χ of a perceptron summary row: (χ, value of `column`); a missing or empty
/// cell is NaN (which fails the claim rather than skipping that χ).
fn per_chi(f: &RunFiles, quantity: &str, column: &str) -> Result<Vec<(f64, f64)>> {
    let t = f.csv("summary.csv")?;
    let (cc, cv) = (t.col("chi")?, t.col(column)?);
    let out: Vec<(f64, f64)> = t
        .select(&[("part", "perceptron"), ("quantity", quantity)])?
        .iter()
        .map(|r| {
            (
                r[cc].parse().unwrap_or(f64::NAN),
                r[cv].parse().unwrap_or(f64::NAN),
            )
        })
        .collect();
    if out.is_empty() {
        bail!("summary.csv has no perceptron `{quantity}` rows");
    }
    Ok(out)
}

/// The worst value over χ: the largest of `score`, NaN (a failure) if any is NaN.
fn worst(v: impl Iterator<Item = f64>) -> f64 {
    v.fold(f64::NEG_INFINITY, |a, x| {
        if a.is_nan() || x.is_nan() {
            f64::NAN
        } else {
            a.max(x)
        }
    })
}

fn perceptron_delta(f: &RunFiles) -> Result<Measured> {
    if let Some(m) = off(f, "perceptron") {
        return Ok(m);
    }
    claims::value(worst(
        per_chi(f, "dw fit", "exp_T")?
            .iter()
            .map(|(_, d)| (d - 1.0).abs()),
    ))
}

fn perceptron_gamma(f: &RunFiles) -> Result<Measured> {
    if let Some(m) = off(f, "perceptron") {
        return Ok(m);
    }
    let v = per_chi(f, "dw fit", "exp_P")?;
    claims::value(worst(
        v.iter().map(|(chi, g)| (g - 1.0 / (1.0 + chi)).abs()),
    ))
}

fn perceptron_tc_r2(f: &RunFiles) -> Result<Measured> {
    if let Some(m) = off(f, "perceptron") {
        return Ok(m);
    }
    let r2 = per_chi(f, "log T_c vs log P", "r2")?;
    let n = per_chi(f, "log T_c vs log P", "n")?;
    // Two located T_c always lie on a line: fewer than three is no evidence (NaN, a failure).
    let r2 = r2
        .iter()
        .zip(&n)
        .map(|((_, r), (_, n))| if *n >= 3.0 { *r } else { f64::NAN });
    // The smallest R² is minus the largest of −R².
    claims::value(-worst(r2.map(|r| -r)))
}

fn perceptron_tc_slope(f: &RunFiles) -> Result<Measured> {
    if let Some(m) = off(f, "perceptron") {
        return Ok(m);
    }
    claims::value(worst(
        per_chi(f, "log T_c vs log P", "exp_P")?
            .iter()
            .map(|(_, s)| *s),
    ))
}

fn lazy_fit(f: &RunFiles, column: &str) -> Result<Measured> {
    if let Some(m) = off(f, "lazy") {
        return Ok(m);
    }
    let t = f.csv("summary.csv")?;
    let v = t.select(&[("part", "lazy"), ("quantity", "log T_c vs log P (dw_rel)")])?;
    let c = t.col(column)?;
    claims::value(
        v.first()
            .and_then(|r| r[c].parse().ok())
            .unwrap_or(f64::NAN),
    )
}

fn lazy_tc_r2(f: &RunFiles) -> Result<Measured> {
    lazy_fit(f, "r2")
}

fn lazy_tc_slope(f: &RunFiles) -> Result<Measured> {
    lazy_fit(f, "exp_P")
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
    if let Some(m) = off(f, "phase") {
        return Ok(m);
    }
    let t = f.csv("phase.csv")?;
    let mut best: f64 = 0.0;
    for a in t.distinct("alpha")? {
        // Diverged runs are left out: their error says nothing about where SGD noise helps.
        let filter: &[(&str, &str)] = if t.has("diverged") {
            &[("alpha", &a), ("diverged", "false")]
        } else {
            &[("alpha", &a)]
        };
        let curve = claims::mean_by(&t, "T", "test_err", filter)?;
        let errs: Vec<f64> = curve
            .iter()
            .map(|p| p.1)
            .filter(|e| e.is_finite())
            .collect();
        best = best.max(interior_extremum(&errs));
    }
    claims::value(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interior_extremum_is_zero_for_monotonic_and_the_depth_of_a_dip() {
        assert_eq!(interior_extremum(&[1.0, 2.0, 3.0]), 0.0);
        assert_eq!(interior_extremum(&[3.0, 2.0, 2.0, 1.0]), 0.0);
        assert_eq!(interior_extremum(&[5.0, 1.0, 3.0]), 2.0);
        assert_eq!(interior_extremum(&[1.0, 4.0, 0.0]), 3.0);
        assert_eq!(interior_extremum(&[1.0]), 0.0);
    }

    /// The official loss hinge(α·o)/α: its value, and its gradient through a centred
    /// perceptron is −(1/B)·Σ_{α y o < 1} y x/√d whatever α is (autograd against the closed
    /// form), at α = 1 and α = 2^15; and stochlab's margin-unit step u = α·Δw is exactly one
    /// official SGD step w ← w − dt·∇L with dt = B·T.
    #[test]
    fn official_perceptron_loss_gradient_and_step_at_alpha_1_and_2_15() {
        let _rng = crate::rng::serial();
        tch::manual_seed(0);
        let one = |v: f64| Tensor::from(v).to_kind(KIND);
        // Value: α = 2, o = (0.1, 0.6), y = (1, 1): (1/2)·mean(max(0, 1 − 0.2), max(0, 1 − 1.2)) = 0.2.
        let o = Tensor::from_slice(&[0.1, 0.6]);
        let y = Tensor::from_slice(&[1.0, 1.0]);
        let v = official_hinge(&o, &y, &one(2.0)).double_value(&[]);
        assert!((v - 0.2).abs() < 1e-15, "{v}");
        let (d, b) = (8i64, 6i64);
        let x = Tensor::randn([b, d], (KIND, Device::Cpu));
        let y = Tensor::from_slice(&[1.0, -1.0, 1.0, -1.0, 1.0, -1.0]);
        let w0 = Tensor::randn([d], (KIND, Device::Cpu));
        for alpha in [1.0, 32768.0] {
            // Δw such that some points are inside the margin and some outside, at this α.
            let dw = Tensor::randn([d], (KIND, Device::Cpu)) * (1.0 / alpha);
            let w = (&w0 + &dw).set_requires_grad(true);
            let sd = (d as f64).sqrt();
            let o = (x.mv(&w) - x.mv(&w0)) / sd;
            let inside = (&o * &y * alpha).lt(1.0).to_kind(KIND);
            let n_in = inside.sum(KIND).double_value(&[]);
            assert!(
                n_in > 0.0 && n_in < b as f64,
                "mixed batch at α = {alpha}: {n_in}"
            );
            let loss = official_hinge(&o, &y, &one(alpha));
            let g = Tensor::run_backward(&[loss], &[&w], false, false)
                .pop()
                .unwrap();
            let closed = -(x.transpose(0, 1).mv(&(&inside * &y))) / (sd * b as f64);
            let gap = (&g - &closed).abs().max().double_value(&[]);
            assert!(gap < 1e-12, "α = {alpha}: gradient off by {gap}");
            // One official step at T (dt = B·T) against the margin-unit step with coef αT.
            let t = 0.37 / alpha;
            let w1 = w.detach() - g * (b as f64 * t);
            let mut u = (&dw * alpha).unsqueeze(0);
            let rows = (&x * y.unsqueeze(1) / sd).unsqueeze(0);
            let hits = perceptron_step(&mut u, &rows, &one(alpha * t).view([1, 1, 1]));
            assert_eq!(hits.double_value(&[0]), n_in);
            let gap = ((&w1 - &w0) * alpha - u.squeeze_dim(0))
                .abs()
                .max()
                .double_value(&[]);
            assert!(gap < 1e-9, "α = {alpha}: step off by {gap}");
        }
    }

    /// x₁ = ±√(2·Gamma((1+χ)/2)) has density ∝ |x₁|^χ e^{−x₁²/2}: E|x₁|^k =
    /// 2^{k/2} Γ((χ+1+k)/2)/Γ((χ+1)/2), symmetric signs, and for χ = 0 a standard normal.
    #[test]
    fn gamma_based_boundary_coordinate_has_the_density_asked() {
        let _rng = crate::rng::serial();
        tch::manual_seed(1);
        let n = 200_000;
        // Γ ratios in closed form for the cases used: E|x|, E x², E|x|³.
        let cases: [(f64, [f64; 3]); 3] = [
            // χ = 0: E|x| = √(2/π), E x² = 1, E|x|³ = 2√(2/π).
            (
                0.0,
                [
                    (2.0 / std::f64::consts::PI).sqrt(),
                    1.0,
                    2.0 * (2.0 / std::f64::consts::PI).sqrt(),
                ],
            ),
            // χ = 1: x²/2 ~ Exp(1): E|x| = √2·Γ(3/2) = √(π/2), E x² = 2, E|x|³ = 2^{3/2}Γ(5/2)/1 = 3√(π/2).
            (
                1.0,
                [
                    (std::f64::consts::PI / 2.0).sqrt(),
                    2.0,
                    3.0 * (std::f64::consts::PI / 2.0).sqrt(),
                ],
            ),
            // χ = 3: shape 2: E|x| = √2·Γ(5/2)/Γ(2) = 3√(2π)/4, E x² = 4, E|x|³ = 2^{3/2}·Γ(7/2) = 15√(2π)/4.
            (
                3.0,
                [
                    3.0 * (2.0 * std::f64::consts::PI).sqrt() / 4.0,
                    4.0,
                    15.0 * (2.0 * std::f64::consts::PI).sqrt() / 4.0,
                ],
            ),
        ];
        for (chi, moments) in cases {
            let x = boundary_coordinate(n, chi);
            for (k, want) in moments.iter().enumerate() {
                let m = x
                    .abs()
                    .pow_tensor_scalar((k + 1) as f64)
                    .mean(KIND)
                    .double_value(&[]);
                assert!(
                    (m / want - 1.0).abs() < 0.02,
                    "χ = {chi}, k = {}: {m} vs {want}",
                    k + 1
                );
            }
            let pos = x.gt(0.0).to_kind(KIND).mean(KIND).double_value(&[]);
            assert!((pos - 0.5).abs() < 0.01, "χ = {chi}: {pos}");
        }
        // χ = 0: P(|x| < 0.5) = erf(0.5/√2) = 0.38292; near the boundary the mass vanishes
        // like ε^{1+χ}: for χ = 3, P(|x| < 0.5) = γ(2, 1/8) = 1 − e^{−1/8}(1 + 1/8) = 0.0072.
        let frac = |chi: f64| {
            boundary_coordinate(n, chi)
                .abs()
                .lt(0.5)
                .to_kind(KIND)
                .mean(KIND)
                .double_value(&[])
        };
        assert!((frac(0.0) - 0.38292).abs() < 0.005);
        assert!((frac(3.0) - 0.0072).abs() < 0.001);
        // The task: y·x/√d rows have a positive first coordinate (y = sign x₁).
        let rows = perceptron_rows(1000, 4, 1.0);
        assert_eq!(rows.select(1, 0).gt(0.0).all().int64_value(&[]), 1);
    }

    #[test]
    fn batches_hold_distinct_indices_drawn_uniformly() {
        let _rng = crate::rng::serial();
        tch::manual_seed(2);
        let k = 30_000;
        let b = distinct_batches(&[5, 3, 1000], 2, k);
        assert_eq!(b.size(), [k, 3, 2]);
        let v: Vec<i64> = Vec::try_from(b.flatten(0, -1)).unwrap();
        let mut pairs = [[0usize; 5]; 5];
        for i in 0..k as usize {
            for (s, n) in [(0usize, 5i64), (1, 3), (2, 1000)] {
                let (a, c) = (v[i * 6 + 2 * s], v[i * 6 + 2 * s + 1]);
                assert!(a != c && (0..n).contains(&a) && (0..n).contains(&c));
                if s == 0 {
                    pairs[a.min(c) as usize][a.max(c) as usize] += 1;
                }
            }
        }
        // Each of the 10 unordered pairs of 5 has probability 1/10.
        for (i, row) in pairs.iter().enumerate() {
            for &c in &row[i + 1..] {
                assert!((c as f64 / k as f64 - 0.1).abs() < 0.01, "{pairs:?}");
            }
        }
        // B = 3 of 3: always a permutation.
        let all = distinct_batches(&[3], 3, 100).sort(2, false).0;
        let want = Tensor::from_slice(&[0i64, 1, 2])
            .view([1, 1, 3])
            .expand([100, 1, 3], false);
        assert!(all.equal(&want));
    }

    #[test]
    fn crossing_interpolates_in_log_x_and_reports_none_outside() {
        let pts = [(1.0, 0.0), (10.0, 1.0), (100.0, 3.0)];
        assert!((crossing(&pts, 2.0) - 10f64.powf(1.5)).abs() < 1e-9);
        assert!(crossing(&pts, 5.0).is_nan());
        assert!(
            crossing(&pts, -1.0).is_nan(),
            "already above at the lowest x"
        );
        let gap = [(1.0, 0.0), (10.0, f64::NAN), (100.0, 2.0)];
        assert!((crossing(&gap, 1.0) - 10.0).abs() < 1e-9);
    }

    #[test]
    fn rescaled_activations_have_unit_second_moment_and_the_net_matches_its_formula() {
        let _rng = crate::rng::serial();
        assert!((second_moment(Activation::Relu) - 0.5).abs() < 1e-9);
        assert!((second_moment(Activation::Identity) - 1.0).abs() < 1e-9);
        let g = second_moment(Activation::Gelu);
        assert!(g > 0.4 && g < 0.5, "{g}");
        // Two replicas from two init seeds; replica 1 by hand.
        let net = Population::new(5, 2, 7, Activation::Relu, &[0, 3, 0], 11, Device::Cpu);
        assert!(net.w0[0].get(0).equal(&net.w0[0].get(2)));
        assert!(!net.w0[0].get(0).equal(&net.w0[0].get(1)));
        tch::manual_seed(3);
        let x = Tensor::randn([4, 5], (KIND, Device::Cpu));
        let f = net.eval(&net.w0, &x);
        let w: Vec<Tensor> = net.w0.iter().map(|w| w.get(1)).collect();
        let h1 = (x.matmul(&w[0]) / 5f64.sqrt()).relu() * 2f64.sqrt();
        let h2 = (h1.matmul(&w[1]) / 7f64.sqrt()).relu() * 2f64.sqrt();
        let by_hand = h2.matmul(&w[2]).squeeze_dim(1) / 7.0;
        assert!((f.get(1) - by_hand).abs().max().double_value(&[]) < 1e-12);
        // Unit second moment of every hidden unit's input at initialisation (wide layer).
        let wide = Population::new(50, 1, 4000, Activation::Relu, &[0], 1, Device::Cpu);
        let xs = Tensor::randn([1, 200, 50], (KIND, Device::Cpu));
        let z = xs.bmm(&wide.w0[0]) / 50f64.sqrt();
        let h = wide.act.apply(&z) * wide.gain;
        let m2 = h.square().mean(KIND).double_value(&[]);
        assert!((m2 - 1.0).abs() < 0.05, "{m2}");
    }

    /// A tiny sweep: every replica fits its training set (censored ones are reported as
    /// such), deep in the noise regime ‖Δw‖ grows with T, and Δw points along x₁.
    #[test]
    fn perceptron_sweep_fits_and_noise_moves_the_weights_further() {
        let _rng = crate::rng::serial();
        let cfg = Perceptron {
            dim: 8,
            chis: vec![1.0],
            train_sizes: vec![64, 128],
            temperatures: vec![4.0, 256.0],
            seeds: 2,
            n_test: 4000,
            max_steps: 200_000,
            ..Default::default()
        };
        let mut progress = Progress::new("test", 1, true);
        let runs = perceptron_sweep(&cfg, 0, Device::Cpu, &mut progress).unwrap();
        assert_eq!(runs.len(), 2 * 2 * 2);
        for q in &runs {
            assert!(q.fitted && q.steps > 0, "{q:?}");
            assert!(q.dw_par > 0.0 && q.test_err < 0.25, "{q:?}");
            let norm = (q.dw_par.powi(2) + q.dw_perp.powi(2)).sqrt();
            assert!((norm / q.dw - 1.0).abs() < 1e-12);
        }
        let at = |p: i64, at: f64| {
            runs.iter()
                .filter(|q| q.p == p && q.alpha_t == at)
                .map(|q| q.dw)
                .sum::<f64>()
        };
        assert!(at(64, 256.0) > 10.0 * at(64, 4.0));
        assert!(at(128, 256.0) > 10.0 * at(128, 4.0));
        // A zero step cap leaves every replica censored at Δw = 0 (error: every margin is 0).
        let none = perceptron_sweep(
            &Perceptron {
                max_steps: 0,
                ..cfg
            },
            0,
            Device::Cpu,
            &mut progress,
        )
        .unwrap();
        assert!(none
            .iter()
            .all(|q| !q.fitted && q.dw == 0.0 && q.test_err == 1.0));
    }
}
