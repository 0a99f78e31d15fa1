//! `sgmcmc-potential` (paper 26, Thaler, Doehner & Zavadlav, "Scalable Bayesian uncertainty
//! quantification for neural network potentials: promise and pitfalls", JCTC 2023): SG-MCMC
//! (RMSprop-preconditioned SGLD) over the weights of a neural-network potential trained by force
//! matching, against a deep ensemble, on a system whose true potential is known.
//!
//! System. The 2-D Müller–Brown surface V(x) = Σ_k A_k exp(a_k(x−x⁰_k)² + b_k(x−x⁰_k)(y−y⁰_k) +
//! c_k(y−y⁰_k)²) in units of kT (U = V/kT, forces F = −∇U). Configurations are exact draws
//! from the Boltzmann density ∝ exp(−U) on the box [−1.5, 1.2] × [−0.5, 2] (rejection sampling
//! from the uniform box); a training label is the true force plus N(0, σ_F²) noise per
//! component (the noisy instantaneous forces of coarse-grained force matching). For each of
//! `repeats` draws one set of max(sizes) configurations is drawn and the training sets of
//! `sizes` are its nested prefixes; the test set is `test_points` further draws.
//!
//! Model. An MLP energy E_θ(x) (`model.layers` × `model.hidden`, tanh), forces F_θ = −∇ₓE_θ by
//! autograd. Force matching: the potential of the weights is
//! U(θ) = Σ_i |F_θ(x_i) − F_i|²/(2σ_F²) + |θ|²/(2σ_p²), estimated on a mini-batch of `batch`
//! configurations as (n/B)Σ_batch; its θ-gradient differentiates through ∇ₓE (double backward).
//!
//! Methods. pSGLD (`bayes::samplers`, the jax-sgmc update the paper's code uses) targets
//! exp(−U(θ)/T) at each temperature T of `temperatures`, with `chains` chains from independent
//! initialisations; the "1 chain" method uses the first chain's draws only, the "multi-chain"
//! method all chains' draws. The deep ensemble trains `ensemble.members` models from independent
//! initialisations to the MAP of the same U by Adam with exponential learning-rate decay. All
//! chains of all (size, repeat, T) and all members run as one batched model (`bayes::flatnet`).
//!
//! Measured on the test set per method, size and repeat (per_repeat.csv; summary.csv averages
//! the repeats): the RMSE of the predictive mean force against the true force; the NLL of the
//! noisy test labels under N(mean, s² + σ_F²) with s the spread of the draws; the coverage of
//! the true force by the central `level` interval mean ± z·s and its mean width; the same for a
//! derived observable, the energy profile along the straight path from minimum A (−0.558,
//! 1.442) to minimum B (0.623, 0.028), o_k = E(p_k) − E(A) at `path_points` points (it crosses
//! the sparsely sampled barrier region); split R̂ across chains of o_K = E(B) − E(A) and the
//! median R̂ of the test forces, and the ESS of o_K.
//!
//! Deviations. The paper's systems are coarse-grained water and alanine dipeptide with a graph
//! network (DimeNet++); here a 2-D toy potential with a known answer and a small MLP, so
//! coverage of the true forces can be measured. σ_F is known and fixed instead of fitted. The
//! paper keeps draws by random thinning; here every `thin`-th state after burn-in. Intervals are
//! Gaussian (mean ± z·s) for every method, so a 4-member ensemble and 30 draws are scored alike.

use crate::bayes::diagnostics::{ess, split_rhat};
use crate::bayes::flatnet::{Act, FlatMlp};
use crate::bayes::samplers::{self, chain_grad, SgOptions};
use crate::config;
use crate::experiments::children::csv_bytes;
use crate::experiments::Entry;
use crate::optim::rules::{Adam, Rule};
use crate::optim::OptimConfig;
use crate::rng::{self, Stream};
use crate::run::fsutil::write_atomic;
use crate::run::metrics::{float, insert_mean_std};
use crate::run::progress::Progress;
use crate::run::{Outcome, RunContext};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};
use toml::Table;

pub const ENTRY: Entry = Entry {
    name: "sgmcmc-potential",
    family: "bayes",
    description: "pSGLD (cold posteriors, 1 vs many chains) vs a deep ensemble for a force-matched MLP potential on Müller–Brown: force and observable coverage",
    paper: "Scalable Bayesian Uncertainty Quantification for Neural Network Potentials: Promise and Pitfalls (Thaler, Doehner & Zavadlav, JCTC 2023)",
    defaults: include_str!("../../../experiments/sgmcmc-potential.toml"),
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
pub struct System {
    /// kT in Müller–Brown energy units: U = V/kT.
    pub kt: f64,
    /// σ_F of the Gaussian noise on training (and NLL test) force labels, in kT per length.
    pub force_noise: f64,
    pub test_points: i64,
    /// Points along the path A → B where the observable is read.
    pub path_points: i64,
}

impl Default for System {
    fn default() -> Self {
        System {
            kt: 20.0,
            force_noise: 2.0,
            test_points: 500,
            path_points: 20,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelCfg {
    pub hidden: i64,
    pub layers: usize,
    pub activation: Act,
    /// σ_p of the Gaussian prior on every weight and bias.
    pub prior_std: f64,
}

impl Default for ModelCfg {
    fn default() -> Self {
        ModelCfg {
            hidden: 32,
            layers: 2,
            activation: Act::Tanh,
            prior_std: 1.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EnsembleCfg {
    pub members: i64,
    pub steps: usize,
    /// Adam's learning rate decays exponentially from `lr` to `lr_final`.
    pub lr: f64,
    pub lr_final: f64,
}

impl Default for EnsembleCfg {
    fn default() -> Self {
        EnsembleCfg {
            members: 4,
            steps: 2000,
            lr: 1e-2,
            lr_final: 1e-4,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Training-set sizes (nested prefixes of one draw per repeat).
    pub sizes: Vec<i64>,
    pub temperatures: Vec<f64>,
    /// Chains per (size, repeat, temperature); the 1-chain method reads the first.
    pub chains: i64,
    /// Independent training sets (and initialisations) per size.
    pub repeats: i64,
    /// Mini-batch size of pSGLD and of the ensemble's Adam.
    pub batch: i64,
    pub level: f64,
    /// Steps between metrics.csv rows.
    pub log_every: usize,
    pub system: System,
    pub model: ModelCfg,
    pub sampler: SgOptions,
    pub ensemble: EnsembleCfg,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sizes: vec![20, 100, 500],
            temperatures: vec![1.0, 0.3, 0.1],
            chains: 4,
            repeats: 3,
            batch: 32,
            level: 0.95,
            log_every: 50,
            system: System::default(),
            model: ModelCfg::default(),
            sampler: SgOptions {
                steps: 10000,
                burn_in: 4000,
                thin: 200,
                ..SgOptions::default()
            },
            ensemble: EnsembleCfg::default(),
        }
    }
}

impl config::Check for Config {
    fn check(&self) -> Result<()> {
        if self.sizes.is_empty() || self.sizes.iter().any(|n| *n < 2) {
            bail!("sizes: at least one training-set size, each >= 2");
        }
        if self.temperatures.is_empty() || self.temperatures.iter().any(|t| t.is_nan() || *t <= 0.0)
        {
            bail!("temperatures: at least one, each > 0");
        }
        if self.chains < 2 {
            bail!(
                "chains = {}: need >= 2 (the 1-chain method is the first of them)",
                self.chains
            );
        }
        if self.repeats < 1 || self.batch < 1 || self.log_every == 0 {
            bail!("repeats, batch and log_every must be >= 1");
        }
        if !(self.level > 0.0 && self.level < 1.0) {
            bail!("level must be in (0, 1), got {}", self.level);
        }
        let s = &self.system;
        if !(s.kt > 0.0 && s.force_noise > 0.0) || s.test_points < 10 || s.path_points < 2 {
            bail!("system: kt > 0, force_noise > 0, test_points >= 10, path_points >= 2");
        }
        let m = &self.model;
        if m.hidden < 1 || m.layers < 1 || m.prior_std.is_nan() || m.prior_std <= 0.0 {
            bail!("model: hidden >= 1, layers >= 1, prior_std > 0");
        }
        self.sampler.check()?;
        if self.sampler.kept() < 4 {
            bail!(
                "sampler keeps {} states per chain: need >= 4 for split R̂ (lower thin or burn_in)",
                self.sampler.kept()
            );
        }
        let e = &self.ensemble;
        if e.members < 2 || e.steps == 0 || !(e.lr > 0.0 && e.lr_final > 0.0) {
            bail!("ensemble: members >= 2, steps >= 1, lr and lr_final > 0");
        }
        Ok(())
    }
}

// ---- The system: Müller–Brown ---------------------------------------------------------------

const MB_A: [f64; 4] = [-200.0, -100.0, -170.0, 15.0];
const MB_SA: [f64; 4] = [-1.0, -1.0, -6.5, 0.7];
const MB_SB: [f64; 4] = [0.0, 0.0, 11.0, 0.6];
const MB_SC: [f64; 4] = [-10.0, -10.0, -6.5, 0.7];
const MB_X0: [f64; 4] = [1.0, 0.0, -0.5, -1.0];
const MB_Y0: [f64; 4] = [0.0, 0.5, 1.5, 1.0];
/// The deepest minimum (A) and its value, and minimum B.
pub const MIN_A: [f64; 2] = [-0.558_224, 1.441_726];
pub const MIN_B: [f64; 2] = [0.623_499, 0.028_038];
const V_MIN: f64 = -146.699_517;
const BOX_LO: [f64; 2] = [-1.5, -0.5];
const BOX_HI: [f64; 2] = [1.2, 2.0];

/// V(x) of points `[…, 2]` (Müller–Brown units).
pub fn muller_brown(x: &Tensor) -> Tensor {
    let (px, py) = (x.select(-1, 0), x.select(-1, 1));
    let mut v = px.zeros_like();
    for k in 0..4 {
        let dx = &px - MB_X0[k];
        let dy = &py - MB_Y0[k];
        let e = dx.square() * MB_SA[k] + &dx * &dy * MB_SB[k] + dy.square() * MB_SC[k];
        v += e.exp() * MB_A[k];
    }
    v
}

/// True forces −∇U = −∇V/kT at points `[…, 2]`.
pub fn true_forces(x: &Tensor, kt: f64) -> Tensor {
    let x = x.detach().set_requires_grad(true);
    let v = muller_brown(&x).sum(x.kind());
    let g = Tensor::run_backward(&[v], &[&x], false, false)
        .pop()
        .expect("one input");
    -g / kt
}

/// `n` exact draws from exp(−V/kT) on the box (rejection from the uniform box), `[n, 2]` double.
pub fn boltzmann_draws(n: i64, kt: f64) -> Tensor {
    let opts = (Kind::Double, Device::Cpu);
    let lo = Tensor::from_slice(&BOX_LO);
    let span = Tensor::from_slice(&BOX_HI) - &lo;
    let mut got: Vec<Tensor> = vec![];
    let mut have = 0;
    while have < n {
        let x = Tensor::rand([20_000, 2], opts) * &span + &lo;
        let p = (-(muller_brown(&x) - V_MIN) / kt).exp();
        let keep = Tensor::rand([20_000], opts).lt_tensor(&p);
        let a = x.index(&[Some(keep)]);
        have += a.size()[0];
        got.push(a);
    }
    Tensor::cat(&got, 0).narrow(0, 0, n)
}

/// The straight path from A to B, `path_points + 1` points including A, `[K + 1, 2]` double.
fn path(points: i64) -> Tensor {
    let t = Tensor::linspace(0.0, 1.0, points + 1, (Kind::Double, Device::Cpu)).reshape([-1, 1]);
    let a = Tensor::from_slice(&MIN_A).reshape([1, 2]);
    let b = Tensor::from_slice(&MIN_B).reshape([1, 2]);
    &a + t * (b - &a)
}

// ---- Data -----------------------------------------------------------------------------------

struct Data {
    /// Training inputs and noisy labels of every repeat, `[R·n_max, 2]`.
    x: Tensor,
    y: Tensor,
    n_max: i64,
    test_x: Tensor,
    test_f: Tensor,
    /// Noisy test labels (for the NLL).
    test_y: Tensor,
    path_x: Tensor,
    /// True o_k = U(p_k) − U(A), k = 1..K.
    path_o: Tensor,
}

fn make_data(cfg: &Config, seed: u64, device: Device) -> Data {
    let s = &cfg.system;
    let n_max = *cfg.sizes.iter().max().expect("checked non-empty");
    let mut xs = vec![];
    let mut ys = vec![];
    for r in 0..cfg.repeats {
        rng::reseed(seed, Stream::Data, r as u64, 0);
        let x = boltzmann_draws(n_max, s.kt);
        let f = true_forces(&x, s.kt);
        ys.push(&f + f.randn_like() * s.force_noise);
        xs.push(x);
    }
    rng::reseed(seed, Stream::Data, u64::MAX, 0);
    let test_x = boltzmann_draws(s.test_points, s.kt);
    let test_f = true_forces(&test_x, s.kt);
    let test_y = &test_f + test_f.randn_like() * s.force_noise;
    let path_x = path(s.path_points);
    let u = muller_brown(&path_x) / s.kt;
    let path_o = u.narrow(0, 1, s.path_points) - u.narrow(0, 0, 1);
    let dev = |t: Tensor| t.to_kind(Kind::Float).to_device(device);
    Data {
        x: dev(Tensor::cat(&xs, 0)),
        y: dev(Tensor::cat(&ys, 0)),
        n_max,
        test_x: dev(test_x),
        test_f: dev(test_f),
        test_y: dev(test_y),
        path_x: dev(path_x),
        path_o: dev(path_o),
    }
}

/// One batched training problem: C models, model c fitting the prefix of size `sizes[c]` of
/// repeat `repeats[c]`.
struct Problem<'a> {
    net: &'a FlatMlp,
    data: &'a Data,
    /// Per model: the first row of its training set in `data.x` and its size, `[C]` int64.
    offset: Tensor,
    size: Tensor,
    batch: i64,
    force_var: f64,
    prior_var: f64,
}

impl Problem<'_> {
    fn new<'a>(
        net: &'a FlatMlp,
        data: &'a Data,
        cfg: &Config,
        models: &[(i64, i64)],
    ) -> Problem<'a> {
        let dev = data.x.device();
        let off: Vec<i64> = models.iter().map(|(_, r)| r * data.n_max).collect();
        let n: Vec<i64> = models.iter().map(|(n, _)| *n).collect();
        Problem {
            net,
            data,
            offset: Tensor::from_slice(&off).to_device(dev),
            size: Tensor::from_slice(&n).to_device(dev),
            batch: cfg.batch,
            force_var: cfg.system.force_noise.powi(2),
            prior_var: cfg.model.prior_std.powi(2),
        }
    }

    /// U(θ) per model on a fresh mini-batch (the full-data estimate) and its gradient.
    fn potential(&self, theta: &Tensor) -> (Tensor, Tensor) {
        let c = theta.size()[0];
        let sizes = self.size.to_kind(Kind::Float).reshape([-1, 1]);
        let u = Tensor::rand([c, self.batch], (Kind::Float, theta.device()));
        let idx = (u * &sizes).floor().to_kind(Kind::Int64) + self.offset.reshape([-1, 1]);
        let idx = idx.minimum(&(&self.offset + &self.size - 1).reshape([-1, 1]));
        let flat = idx.reshape([-1]);
        let x = self.data.x.index_select(0, &flat).view([c, self.batch, 2]);
        let y = self.data.y.index_select(0, &flat).view([c, self.batch, 2]);
        let th = theta.detach().set_requires_grad(true);
        let f = self.net.neg_input_grad(&th, &x, true);
        let sq = (f - y)
            .square()
            .sum_dim_intlist([1, 2].as_slice(), false, Kind::Float);
        let lik =
            sq * (self.size.to_kind(Kind::Float) / (self.batch as f64 * 2.0 * self.force_var));
        let prior = th.square().sum_dim_intlist(1, false, Kind::Float) / (2.0 * self.prior_var);
        let total = lik + prior;
        let g = chain_grad(&total, &th);
        (total.detach(), g)
    }
}

// ---- Scoring ---------------------------------------------------------------------------------

/// One method's draws for one (size, repeat): forces `[D, M, 2]`, path observables `[D, K]`.
struct Scores {
    rmse: f64,
    nll: f64,
    coverage: f64,
    width: f64,
    obs_coverage: f64,
    obs_width: f64,
    obs_rmse: f64,
}

fn score(f: &Tensor, o: &Tensor, data: &Data, z: f64, force_var: f64) -> Result<Scores> {
    let m = f.mean_dim(0, false, Kind::Float);
    let s = f.std_dim(0, true, false);
    let err = &m - &data.test_f;
    let rmse = err.square().mean(Kind::Double).sqrt().double_value(&[]);
    let cov = err
        .abs()
        .le_tensor(&(&s * z))
        .to_kind(Kind::Double)
        .mean(Kind::Double);
    let var = s.square() + force_var;
    let nll = ((&var * (2.0 * std::f64::consts::PI)).log() * 0.5
        + (&data.test_y - &m).square() / (&var * 2.0))
        .mean(Kind::Double);
    let om = o.mean_dim(0, false, Kind::Float);
    let os = o.std_dim(0, true, false);
    let oerr = &om - &data.path_o;
    let ocov = oerr
        .abs()
        .le_tensor(&(&os * z))
        .to_kind(Kind::Double)
        .mean(Kind::Double);
    Ok(Scores {
        rmse,
        nll: nll.double_value(&[]),
        coverage: cov.double_value(&[]),
        width: (s * (2.0 * z)).mean(Kind::Double).double_value(&[]),
        obs_coverage: ocov.double_value(&[]),
        obs_width: (os * (2.0 * z)).mean(Kind::Double).double_value(&[]),
        obs_rmse: oerr.square().mean(Kind::Double).sqrt().double_value(&[]),
    })
}

/// Test forces `[S, C, M, 2]` and path observables `[S, C, K]` of draws `[S, C, P]`.
fn predict(net: &FlatMlp, draws: &Tensor, data: &Data) -> (Tensor, Tensor) {
    let size = draws.size();
    let (s, c, p) = (size[0], size[1], size[2]);
    let th = draws.reshape([s * c, p]);
    let m = data.test_x.size()[0];
    let x = data.test_x.unsqueeze(0).expand([s * c, m, 2], true);
    let f = net.neg_input_grad(&th, &x, false).detach();
    let k1 = data.path_x.size()[0];
    let px = data.path_x.unsqueeze(0).expand([s * c, k1, 2], true);
    let e = tch::no_grad(|| net.scalar(&th, &px));
    let o = e.narrow(1, 1, k1 - 1) - e.narrow(1, 0, 1);
    (f.view([s, c, m, 2]), o.view([s, c, k1 - 1]))
}

fn normal_quantile(level: f64) -> f64 {
    crate::stats::quantile(0.5 + level / 2.0, crate::stats::normal_cdf)
}

const PER_REPEAT: [&str; 17] = [
    "method",
    "label",
    "temperature",
    "chains",
    "size",
    "repeat",
    "force_rmse",
    "nll",
    "force_coverage",
    "force_width",
    "obs_coverage",
    "obs_width",
    "obs_rmse",
    "rhat_obs",
    "rhat_force_median",
    "ess_obs",
    "draws",
];

/// The median of the finite values (NaN when there are none).
fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    crate::stats::median(&v)
}

fn label(t: Option<f64>, chains: i64) -> String {
    match t {
        Some(t) => format!("pSGLD T={t} ×{chains}"),
        None => format!("ensemble ×{chains}"),
    }
}

#[allow(clippy::too_many_arguments)]
fn row(
    method: &str,
    t: Option<f64>,
    chains: i64,
    size: i64,
    repeat: i64,
    s: &Scores,
    rhat: (f64, f64, f64),
    draws: i64,
) -> Vec<String> {
    vec![
        method.into(),
        label(t, chains),
        t.map(float).unwrap_or_default(),
        chains.to_string(),
        size.to_string(),
        repeat.to_string(),
        float(s.rmse),
        float(s.nll),
        float(s.coverage),
        float(s.width),
        float(s.obs_coverage),
        float(s.obs_width),
        float(s.obs_rmse),
        float(rhat.0),
        float(rhat.1),
        float(rhat.2),
        draws.to_string(),
    ]
}

/// R̂ of o_K, median R̂ of the test forces, ESS of o_K, for chains `[S, C, …]`.
fn chain_diagnostics(f: &Tensor, o: &Tensor) -> Result<(f64, f64, f64)> {
    let k = o.size()[2];
    let last = o.select(2, k - 1);
    let r_obs = split_rhat(&last).double_value(&[]);
    let r_f = Vec::<f64>::try_from(split_rhat(f).reshape([-1]).to_device(Device::Cpu))?;
    let cols: Vec<Vec<f64>> = (0..last.size()[1])
        .map(|c| {
            Vec::<f64>::try_from(
                last.select(1, c)
                    .to_kind(Kind::Double)
                    .to_device(Device::Cpu),
            )
        })
        .collect::<Result<_, _>>()?;
    Ok((r_obs, median(r_f), ess(&cols)))
}

// ---- The run ---------------------------------------------------------------------------------

const METRICS: [&str; 6] = ["phase", "size", "temperature", "step", "step_size", "loss"];

fn train(table: &Table, ctx: &mut RunContext) -> Result<Outcome> {
    let cfg: Config = config::typed(table)?;
    let device = ctx.device;
    let data = make_data(&cfg, ctx.seed, device);
    let net = FlatMlp::new(
        2,
        cfg.model.hidden,
        cfg.model.layers,
        1,
        cfg.model.activation,
    );
    let (ni, nr, nj, nk) = (
        cfg.sizes.len() as i64,
        cfg.repeats,
        cfg.temperatures.len() as i64,
        cfg.chains,
    );
    let z = normal_quantile(cfg.level);
    let force_var = cfg.system.force_noise.powi(2);
    let opts = (Kind::Float, device);
    ctx.open_metrics(&METRICS)?;
    let total = (cfg.sampler.steps + cfg.ensemble.steps) as u64;
    let mut progress = Progress::new("sgmcmc-potential", total, ctx.quiet);

    // pSGLD: models ordered (size, repeat, temperature, chain).
    let mut models = vec![];
    let mut temps = vec![];
    for &n in &cfg.sizes {
        for r in 0..nr {
            for &t in &cfg.temperatures {
                for _ in 0..nk {
                    models.push((n, r));
                    temps.push(t);
                }
            }
        }
    }
    let problem = Problem::new(&net, &data, &cfg, &models);
    rng::reseed(ctx.seed, Stream::Init, 0, 0);
    let theta0 = net.init(models.len() as i64, opts);
    let temperature = Tensor::from_slice(&temps)
        .to_kind(Kind::Float)
        .to_device(device);
    rng::reseed(ctx.seed, Stream::Step, 0, 0);
    let mut interrupted = None;
    let draws = samplers::sg_sample(&cfg.sampler, &theta0, &temperature, |th, step| {
        if step % 50 == 0 {
            progress.update(step as u64, "pSGLD");
            if interrupted.is_none() {
                interrupted = ctx.interrupt.requested();
            }
        }
        if interrupted.is_some() {
            bail!("interrupted");
        }
        Ok(problem.potential(th))
    });
    if let Some(sig) = interrupted {
        progress.finish();
        return Ok(Outcome::Interrupted(sig));
    }
    let draws = draws?;
    // Loss per datum: U/n, averaged over repeats and chains per (size, temperature).
    let per_datum = &draws.potential / problem.size.to_kind(Kind::Float).unsqueeze(0);
    let steps = cfg.sampler.steps as i64;
    let grouped = per_datum
        .view([steps, ni, nr, nj, nk])
        .mean_dim([2, 4].as_slice(), false, Kind::Float)
        .to_device(Device::Cpu);
    for step in (0..cfg.sampler.steps).step_by(cfg.log_every) {
        for (i, &n) in cfg.sizes.iter().enumerate() {
            for (j, &t) in cfg.temperatures.iter().enumerate() {
                let v = grouped.double_value(&[step as i64, i as i64, j as i64]);
                ctx.log(vec![
                    cfg.sampler.method.as_str().into(),
                    (n as usize).into(),
                    t.into(),
                    step.into(),
                    cfg.sampler.step_size(step).into(),
                    v.into(),
                ])?;
            }
        }
    }

    // Deep ensemble: models ordered (size, repeat, member), MAP of the same U by Adam.
    let nm = cfg.ensemble.members;
    let mut ens_models = vec![];
    for &n in &cfg.sizes {
        for r in 0..nr {
            for _ in 0..nm {
                ens_models.push((n, r));
            }
        }
    }
    let ens_problem = Problem::new(&net, &data, &cfg, &ens_models);
    rng::reseed(ctx.seed, Stream::Init, 1, 0);
    let mut theta = net.init(ens_models.len() as i64, opts);
    let mut adam = Adam::new(&theta, &OptimConfig::default(), false);
    let e = &cfg.ensemble;
    let decay = (e.lr_final / e.lr).powf(1.0 / (e.steps.max(2) - 1) as f64);
    let ens_sizes = ens_problem.size.to_kind(Kind::Float);
    let mut ens_loss = vec![];
    rng::reseed(ctx.seed, Stream::Shuffle, 0, 0);
    for step in 0..e.steps {
        let (u, g) = ens_problem.potential(&theta);
        ens_loss.push(&u / &ens_sizes);
        let g = g / ens_sizes.reshape([-1, 1]);
        let lr = e.lr * decay.powi(step as i32);
        tch::no_grad(|| adam.update(&mut theta, &g, step as u64 + 1, lr));
        if step % 50 == 0 {
            progress.update((cfg.sampler.steps + step) as u64, "ensemble");
            if let Some(sig) = ctx.interrupt.requested() {
                progress.finish();
                return Ok(Outcome::Interrupted(sig));
            }
        }
    }
    let ens_loss = Tensor::stack(&ens_loss, 0)
        .view([e.steps as i64, ni, nr, nm])
        .mean_dim([2, 3].as_slice(), false, Kind::Float)
        .to_device(Device::Cpu);
    for step in (0..e.steps).step_by(cfg.log_every) {
        for (i, &n) in cfg.sizes.iter().enumerate() {
            ctx.log(vec![
                "ensemble".into(),
                (n as usize).into(),
                "".into(),
                step.into(),
                (e.lr * decay.powi(step as i32)).into(),
                ens_loss.double_value(&[step as i64, i as i64]).into(),
            ])?;
        }
    }
    progress.finish();

    // Scoring.
    let samples = &draws.samples; // [S, C, P]
    let ens = theta.view([ni, nr, nm, -1]);
    let mut rows = vec![];
    let method = cfg.sampler.method.as_str();
    for (i, &n) in cfg.sizes.iter().enumerate() {
        for r in 0..nr {
            for (j, &t) in cfg.temperatures.iter().enumerate() {
                let first = ((i as i64 * nr + r) * nj + j as i64) * nk;
                let d = samples.narrow(1, first, nk);
                let (f, o) = predict(&net, &d, &data); // [S, K, M, 2], [S, K, Kp]
                let s = f.size()[0];
                let flat_f = f.reshape([s * nk, -1, 2]);
                let flat_o = o.reshape([s * nk, -1]);
                let all = score(&flat_f, &flat_o, &data, z, force_var)?;
                let diag = chain_diagnostics(&f, &o)?;
                rows.push(row(method, Some(t), nk, n, r, &all, diag, s * nk));
                let (f1, o1) = (f.narrow(1, 0, 1), o.narrow(1, 0, 1));
                let one = score(&f1.select(1, 0), &o1.select(1, 0), &data, z, force_var)?;
                let diag1 = chain_diagnostics(&f1, &o1)?;
                rows.push(row(method, Some(t), 1, n, r, &one, diag1, s));
            }
            let members = ens.get(i as i64).get(r).unsqueeze(0); // [1, M, P]
            let (f, o) = predict(&net, &members, &data);
            let sc = score(&f.select(0, 0), &o.select(0, 0), &data, z, force_var)?;
            rows.push(row(
                "ensemble",
                None,
                nm,
                n,
                r,
                &sc,
                (f64::NAN, f64::NAN, f64::NAN),
                nm,
            ));
        }
    }
    write_atomic(
        &ctx.dir.join("per_repeat.csv"),
        &csv_bytes(&PER_REPEAT, &rows)?,
    )?;
    let summary = summarise(&rows, nr);
    write_atomic(
        &ctx.dir.join("summary.csv"),
        &csv_bytes(&SUMMARY, &summary)?,
    )?;
    ctx.set_final_metrics(headline(&summary, &rows, nr));
    Ok(Outcome::Completed)
}

const SUMMARY: [&str; 16] = [
    "method",
    "label",
    "temperature",
    "chains",
    "size",
    "repeats",
    "force_rmse",
    "nll",
    "force_coverage",
    "force_width",
    "obs_coverage",
    "obs_width",
    "obs_rmse",
    "rhat_obs",
    "rhat_force_median",
    "ess_obs",
];

/// Means over repeats of every per-repeat metric (columns 6..16), one row per (method, T,
/// chains, size), in first-seen order.
fn summarise(rows: &[Vec<String>], repeats: i64) -> Vec<Vec<String>> {
    let mut keys: Vec<Vec<String>> = vec![];
    for r in rows {
        let k = vec![
            r[0].clone(),
            r[1].clone(),
            r[2].clone(),
            r[3].clone(),
            r[4].clone(),
        ];
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .map(|k| {
            let group: Vec<&Vec<String>> = rows.iter().filter(|r| r[..5] == k[..]).collect();
            let mut out = k.clone();
            out.push(repeats.to_string());
            for col in 6..16 {
                let v: Vec<f64> = group
                    .iter()
                    .filter_map(|r| r[col].parse::<f64>().ok())
                    .filter(|v| v.is_finite())
                    .collect();
                out.push(if v.is_empty() {
                    String::new()
                } else {
                    float(v.iter().sum::<f64>() / v.len() as f64)
                });
            }
            out
        })
        .collect()
}

/// Per (method, T, chains, size): force coverage and force RMSE, each as mean and std over the
/// repeats (the finite per-repeat values), and the number of repeats.
fn headline(
    summary: &[Vec<String>],
    rows: &[Vec<String>],
    repeats: i64,
) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    for r in summary {
        let tag = if r[0] == "ensemble" {
            "ensemble".to_string()
        } else {
            format!("t{}_c{}", r[2].replace('.', "p"), r[3])
        };
        let n = &r[4];
        let group: Vec<&Vec<String>> = rows.iter().filter(|g| g[..5] == r[..5]).collect();
        let col = |c: usize| -> Vec<f64> {
            group
                .iter()
                .filter_map(|g| g[c].parse::<f64>().ok())
                .filter(|v| v.is_finite())
                .collect()
        };
        let (coverage, rmse) = (col(8), col(6));
        if !coverage.is_empty() {
            insert_mean_std(&mut out, &format!("coverage_{tag}_n{n}"), &coverage);
        }
        if !rmse.is_empty() {
            insert_mean_std(&mut out, &format!("rmse_{tag}_n{n}"), &rmse);
        }
    }
    out.insert("repeats".into(), repeats.into());
    out
}

// ---- The paper's claims (Thaler et al.) -----------------------------------------------------

use crate::claims::{self, Claim, Expect, Measured, RunFiles, Scale};

const CLAIMS: &[Claim] = &[
    Claim {
        id: "cold-helps-small-data",
        statement: "a cold posterior (T < 1) lowers the force error at the smallest training set: force RMSE of the best T < 1 over that of T = 1, multi-chain pSGLD (below 1: the abstract says cold posteriors reduce the required training data; it gives no number)",
        paper: "T < 1 better with little data",
        expect: Expect::Below(1.0),
        unit: "ratio",
        scale: Scale::Both,
        variant: None,
        measure: cold_ratio,
    },
    Claim {
        id: "one-chain-undercovers",
        statement: "one chain under-covers compared with several: coverage of the true forces, multi-chain minus 1-chain pSGLD, mean over sizes and temperatures (above 0: the abstract says multiple chains are needed for reliable UQ; no number)",
        paper: "multiple chains needed",
        expect: Expect::Above(0.0),
        unit: "coverage",
        scale: Scale::Both,
        variant: None,
        measure: chain_gap,
    },
    Claim {
        id: "ensemble-matches-sgmcmc",
        statement: "the deep ensemble's coverage of the true forces is close to multi-chain pSGLD at T = 1: mean over sizes of |difference| (at most 0.05, the issue's \"within 5 points\" [I]; the abstract says the two perform comparably)",
        paper: "ensemble ≈ SG-MCMC",
        expect: Expect::AtMost(0.05),
        unit: "coverage",
        scale: Scale::Both,
        variant: None,
        measure: ensemble_gap,
    },
];

struct SummaryRow {
    method: String,
    temperature: f64,
    chains: i64,
    size: i64,
    rmse: f64,
    coverage: f64,
}

fn summary_rows(f: &RunFiles) -> Result<Vec<SummaryRow>> {
    let t = f.csv("summary.csv")?;
    let c = |n: &str| t.col(n);
    let (cm, ct, cc, cs, cr, cv) = (
        c("method")?,
        c("temperature")?,
        c("chains")?,
        c("size")?,
        c("force_rmse")?,
        c("force_coverage")?,
    );
    Ok(t.rows
        .iter()
        .map(|r| SummaryRow {
            method: r[cm].clone(),
            temperature: r[ct].parse().unwrap_or(f64::NAN),
            chains: r[cc].parse().unwrap_or(0),
            size: r[cs].parse().unwrap_or(0),
            rmse: r[cr].parse().unwrap_or(f64::NAN),
            coverage: r[cv].parse().unwrap_or(f64::NAN),
        })
        .collect())
}

fn multi(rows: &[SummaryRow]) -> i64 {
    rows.iter()
        .filter(|r| r.method != "ensemble")
        .map(|r| r.chains)
        .max()
        .unwrap_or(0)
}

fn cold_ratio(f: &RunFiles) -> Result<Measured> {
    let rows = summary_rows(f)?;
    let k = multi(&rows);
    let sg: Vec<&SummaryRow> = rows
        .iter()
        .filter(|r| r.method != "ensemble" && r.chains == k)
        .collect();
    let Some(n) = sg.iter().map(|r| r.size).min() else {
        return Ok(Measured::NotApplicable(
            "summary.csv has no sampler rows".into(),
        ));
    };
    let at = |pred: &dyn Fn(f64) -> bool| {
        sg.iter()
            .filter(|r| r.size == n && pred(r.temperature))
            .map(|r| r.rmse)
            .fold(f64::INFINITY, f64::min)
    };
    let warm = at(&|t| (t - 1.0).abs() < 1e-12);
    let cold = at(&|t| t < 1.0);
    if warm.is_infinite() || cold.is_infinite() {
        return Ok(Measured::NotApplicable(
            "temperatures must include 1 and one below 1".into(),
        ));
    }
    claims::value(cold / warm)
}

fn chain_gap(f: &RunFiles) -> Result<Measured> {
    let rows = summary_rows(f)?;
    let k = multi(&rows);
    let mut diffs = vec![];
    for r in rows
        .iter()
        .filter(|r| r.method != "ensemble" && r.chains == k)
    {
        if let Some(one) = rows.iter().find(|o| {
            o.method == r.method
                && o.chains == 1
                && o.size == r.size
                && o.temperature == r.temperature
        }) {
            diffs.push(r.coverage - one.coverage);
        }
    }
    if diffs.is_empty() {
        return Ok(Measured::NotApplicable(
            "summary.csv has no 1-chain rows".into(),
        ));
    }
    claims::value(diffs.iter().sum::<f64>() / diffs.len() as f64)
}

fn ensemble_gap(f: &RunFiles) -> Result<Measured> {
    let rows = summary_rows(f)?;
    let k = multi(&rows);
    let mut diffs = vec![];
    for e in rows.iter().filter(|r| r.method == "ensemble") {
        if let Some(s) = rows.iter().find(|o| {
            o.method != "ensemble"
                && o.chains == k
                && o.size == e.size
                && (o.temperature - 1.0).abs() < 1e-12
        }) {
            diffs.push((e.coverage - s.coverage).abs());
        }
    }
    if diffs.is_empty() {
        return Ok(Measured::NotApplicable(
            "summary.csv has no T = 1 sampler rows to compare the ensemble with".into(),
        ));
    }
    claims::value(diffs.iter().sum::<f64>() / diffs.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Müller–Brown minima have their textbook values and zero force.
    #[test]
    fn muller_brown_minima() {
        for (p, v) in [
            (MIN_A, -146.6995),
            (MIN_B, -108.1667),
            ([-0.050_011, 0.466_694], -80.7678),
        ] {
            let x = Tensor::from_slice(&p).reshape([1, 2]);
            let got = muller_brown(&x).double_value(&[0]);
            assert!((got - v).abs() < 1e-3, "{p:?}: {got}");
            let f = true_forces(&x, 1.0).abs().max().double_value(&[]);
            assert!(f < 0.05, "{p:?}: |∇V| {f}");
        }
    }

    /// Rejection draws follow exp(−V/kT) on the box: the mass of the left half (x < −0.3, around
    /// minimum A) matches a quadrature of the density.
    #[test]
    fn boltzmann_draws_match_the_density() {
        let _g = crate::rng::serial();
        tch::manual_seed(0);
        let kt = 20.0;
        let x = boltzmann_draws(20_000, kt);
        let left = x
            .select(1, 0)
            .lt(-0.3)
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[]);
        let g = 400;
        let opts = (Kind::Double, Device::Cpu);
        let gx = Tensor::linspace(BOX_LO[0], BOX_HI[0], g, opts);
        let gy = Tensor::linspace(BOX_LO[1], BOX_HI[1], g, opts);
        let grid = Tensor::stack(&Tensor::meshgrid_indexing(&[&gx, &gy], "ij"), -1);
        let w = (-(muller_brown(&grid) - V_MIN) / kt).exp();
        let mask = grid.select(-1, 0).lt(-0.3).to_kind(Kind::Double);
        let exact = ((&w * mask).sum(Kind::Double) / w.sum(Kind::Double)).double_value(&[]);
        // Binomial standard error at 20k draws ≤ 0.0036; the grid error is far smaller.
        assert!(
            (left - exact).abs() < 0.015,
            "draws {left} vs quadrature {exact}"
        );
        assert!(exact > 0.2 && exact < 0.95, "{exact}");
    }

    #[test]
    fn path_observable_runs_from_a_to_b() {
        let p = path(4);
        assert_eq!(p.size(), vec![5, 2]);
        assert!((p.double_value(&[4, 0]) - MIN_B[0]).abs() < 1e-12);
        assert!((normal_quantile(0.95) - 1.959_964).abs() < 1e-4);
        assert_eq!(median(vec![3.0, 1.0, f64::NAN, 2.0]), 2.0);
    }
}
