//! `diffgrad` — Dubey et al., "diffGrad: An Optimization Method for Convolutional Neural
//! Networks" (paper 4). diffGrad scales Adam's step per parameter by the friction
//! ξ = sigmoid(|g_{t−1} − g_t|): steps shrink where the gradient stops changing (near optima)
//! and stay Adam-like where it changes fast.
//!
//! Part 1, the paper's 1-D functions: every optimizer of the zoo from x0 = −1 for 300 steps at
//! lr 0.1 (Adam family: β1 = 0.95, β2 = 0.999), gradients by autograd on the closed forms. Adam
//! stalls in F1's local minimum at x = 0.2 and near x = 0 on F2; diffGrad, slowed less early
//! and more late, reaches x = −0.3 on F1 and x ≈ −0.643 on F2.
//!
//! Part 2, networks: a classifier trained with each optimizer and seed (each a nested
//! `classifier` run under `runs/<optimizer>-s<seed>/`, resumable on its own); per-epoch rows of
//! all of them in metrics.csv, final test accuracy mean ± std over seeds in summary.csv.

use crate::config;
use crate::data::DataConfig;
use crate::experiments::children::{self, csv_bytes};
use crate::experiments::{classifier, Entry};
use crate::nn::ModelConfig;
use crate::optim::{OptimConfig, OptimName, Optimizer};
use crate::run::fsutil::write_atomic;
use crate::run::metrics::{float, insert_mean_std, json_float, mean_std};
use crate::run::{Outcome, RunContext};
use crate::train::TrainConfig;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};
use toml::Table;

pub const ENTRY: Entry = Entry {
    name: "diffgrad",
    family: "sgd",
    description: "diffGrad vs the optimizer zoo: 1-D test functions and networks over seeds",
    paper:
        "diffGrad: An Optimization Method for Convolutional Neural Networks (Dubey et al., 2019)",
    defaults: include_str!("../../../experiments/diffgrad.toml"),
    normalize: config::normalize::<Config>,
    train,
    eval: None,
    information_plane: false,
    claims: CLAIMS,
    variants: &[],
    extendable: false,
    nested_runs: true,
};

/// Part 1 settings (the paper's).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Functions {
    pub enabled: bool,
    pub names: Vec<Function>,
    pub optimizers: Vec<OptimName>,
    pub x0: f64,
    pub steps: usize,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
}

impl Default for Functions {
    fn default() -> Self {
        Functions {
            enabled: true,
            names: vec![Function::F1, Function::F2, Function::F3],
            optimizers: OptimName::ALL.to_vec(),
            x0: -1.0,
            steps: 300,
            lr: 0.1,
            beta1: 0.95,
            beta2: 0.999,
        }
    }
}

/// Part 2 settings: which optimizers and seeds, and per-optimizer `[optim]` overrides.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Networks {
    pub enabled: bool,
    pub optimizers: Vec<OptimName>,
    pub seeds: Vec<u64>,
    /// e.g. `[networks.optim.sgd] lr = 0.01, momentum = 0.9`.
    pub optim: BTreeMap<String, Table>,
}

impl Default for Networks {
    fn default() -> Self {
        Networks {
            enabled: true,
            optimizers: OptimName::ALL.to_vec(),
            seeds: vec![0, 1, 2],
            optim: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub functions: Functions,
    pub networks: Networks,
    /// The classifier every optimizer trains (its `optim` is the base the overrides modify).
    pub data: DataConfig,
    pub model: ModelConfig,
    pub optim: OptimConfig,
    pub train: TrainConfig,
}

impl config::Check for Config {
    fn check(&self) -> Result<()> {
        for name in self.networks.optim.keys() {
            if !OptimName::ALL.iter().any(|o| o.as_str() == name) {
                bail!("networks.optim.{name}: not an optimizer (sgd, adam, adamw, amsgrad, rmsprop, adagrad, adadelta, diffgrad)");
            }
        }
        for o in &self.networks.optimizers {
            self.child_config(*o)?;
        }
        Ok(())
    }
}

impl Config {
    /// The classifier config of one optimizer: the base `[optim]`, its overrides, its name.
    fn child_config(&self, name: OptimName) -> Result<classifier::Config> {
        let mut optim = Table::try_from(&self.optim)?;
        if let Some(o) = self.networks.optim.get(name.as_str()) {
            config::deep_merge(&mut optim, o.clone());
        }
        optim.insert("name".into(), toml::Value::String(name.as_str().into()));
        let mut optim: OptimConfig =
            config::typed(&optim).with_context(|| format!("networks.optim.{}", name.as_str()))?;
        // The nested run's config.toml records the eps this optimizer uses.
        optim.resolve();
        let cfg = classifier::Config {
            data: self.data.clone(),
            model: self.model.clone(),
            optim,
            train: self.train.clone(),
        };
        config::Check::check(&cfg)?;
        Ok(cfg)
    }
}

/// The paper's 1-D test functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Function {
    F1,
    F2,
    F3,
}

impl Function {
    fn as_str(self) -> &'static str {
        match self {
            Function::F1 => "f1",
            Function::F2 => "f2",
            Function::F3 => "f3",
        }
    }

    /// F1 = (x+0.3)² for x ≤ 0, (x−0.2)² + 0.05 otherwise; F2 = −40x − 35.15 for x ≤ −0.9,
    /// x³ + x·sin(8x) + 0.85 otherwise; F3 = x² for |x| > 0.5, 0.75 − |x| for 0.4 < |x| ≤ 0.5,
    /// 7|x|/8 for |x| ≤ 0.4. `where` sends the gradient through the active branch only.
    pub fn eval(self, x: &Tensor) -> Tensor {
        match self {
            Function::F1 => (x + 0.3)
                .square()
                .where_self(&x.le(0.0), &((x - 0.2).square() + 0.05)),
            Function::F2 => (x * -40.0 - 35.15).where_self(
                &x.le(-0.9),
                &(x.pow_tensor_scalar(3) + x * (x * 8.0).sin() + 0.85),
            ),
            Function::F3 => {
                let a = x.abs();
                let inner = (&a * 0.875).where_self(&a.le(0.4), &(0.75 - &a));
                x.square().where_self(&a.gt(0.5), &inner)
            }
        }
    }
}

/// Where one optimizer stands on a function after a step.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    pub step: usize,
    pub x: f64,
    pub f: f64,
    /// diffGrad's mean friction ξ at this step.
    pub friction: Option<f64>,
}

/// One optimizer on one function, every step.
pub fn descend(
    f: Function,
    name: OptimName,
    part: &Functions,
    device: Device,
) -> Result<Vec<Point>> {
    let x = Tensor::from_slice(&[part.x0])
        .to_device(device)
        .set_requires_grad(true);
    let cfg = OptimConfig {
        name,
        lr: part.lr,
        beta1: part.beta1,
        beta2: part.beta2,
        ..Default::default()
    };
    let mut opt = Optimizer::new(vec![("x".into(), x.shallow_clone())], &cfg)?;
    let mut rows = Vec::with_capacity(part.steps);
    for step in 1..=part.steps {
        opt.zero_grad();
        f.eval(&x).sum(Kind::Double).backward();
        opt.step();
        let xv = x.double_value(&[0]);
        let fv = tch::no_grad(|| f.eval(&x).double_value(&[0]));
        let xi = opt.diagnostic_mean().map(|(_, t)| t.double_value(&[]));
        rows.push(Point {
            step,
            x: xv,
            f: fv,
            friction: xi,
        });
    }
    Ok(rows)
}

/// Part 1: functions.csv (every step) and functions_summary.csv (final x and f). Returns the
/// headline numbers: where Adam and diffGrad end on each function.
fn part1(cfg: &Config, ctx: &RunContext) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut headline = serde_json::Map::new();
    let (mut rows, mut finals) = (vec![], vec![]);
    for &f in &cfg.functions.names {
        for &o in &cfg.functions.optimizers {
            let trajectory = descend(f, o, &cfg.functions, ctx.device)?;
            for p in &trajectory {
                let xi = p.friction.map(float).unwrap_or_default();
                rows.push(vec![
                    f.as_str().into(),
                    o.as_str().into(),
                    p.step.to_string(),
                    float(p.x),
                    float(p.f),
                    xi,
                ]);
            }
            if let Some(end) = trajectory.last() {
                if matches!(o, OptimName::Adam | OptimName::DiffGrad) {
                    headline.insert(
                        format!("{}_{}_x_final", f.as_str(), o.as_str()),
                        json_float(end.x),
                    );
                }
                finals.push(vec![
                    f.as_str().into(),
                    o.as_str().into(),
                    float(end.x),
                    float(end.f),
                ]);
            }
        }
    }
    write_atomic(
        &ctx.dir.join("functions.csv"),
        &csv_bytes(
            &["function", "optimizer", "step", "x", "f", "friction_mean"],
            &rows,
        )?,
    )?;
    write_atomic(
        &ctx.dir.join("functions_summary.csv"),
        &csv_bytes(&["function", "optimizer", "x_final", "f_final"], &finals)?,
    )?;
    Ok(headline)
}

/// One nested classifier run per optimizer and seed.
fn jobs(cfg: &Config) -> Result<Vec<children::Job>> {
    let mut jobs = vec![];
    for &o in &cfg.networks.optimizers {
        let config = cfg.child_config(o)?;
        for &seed in &cfg.networks.seeds {
            jobs.push(children::Job {
                name: format!("{}-s{seed}", o.as_str()),
                labels: vec![o.as_str().to_string(), seed.to_string()],
                config: config.clone(),
                seed,
            });
        }
    }
    Ok(jobs)
}

/// Rebuilds metrics.csv (every epoch of every finished child) and summary.csv (per optimizer:
/// final test accuracy and loss, mean ± std over seeds) from the nested runs; adds each
/// optimizer's test accuracy (mean, std, seeds) to `finals`.
fn collect(
    cfg: &Config,
    ctx: &mut RunContext,
    jobs: &[children::Job],
    finals: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<()> {
    let (done, failed) = children::collect(ctx, &["optimizer", "seed"], jobs)?;
    let mut summary = vec![];
    for &o in &cfg.networks.optimizers {
        let mine = |f: &&children::Finished| f.job.labels[0] == o.as_str();
        let accs: Vec<f64> = done
            .iter()
            .filter(mine)
            .map(|f| f.last("test_acc"))
            .collect();
        let losses: Vec<f64> = done
            .iter()
            .filter(mine)
            .map(|f| f.last("test_loss"))
            .collect();
        let n_failed = jobs
            .iter()
            .zip(&failed)
            .filter(|(j, &bad)| bad && j.labels[0] == o.as_str())
            .count();
        let (am, asd) = mean_std(&accs);
        let (lm, lsd) = mean_std(&losses);
        summary.push(vec![
            o.as_str().into(),
            accs.len().to_string(),
            n_failed.to_string(),
            float(am),
            float(asd),
            float(lm),
            float(lsd),
        ]);
        if !accs.is_empty() {
            let o = o.as_str();
            insert_mean_std(finals, &format!("{o}_test_acc"), &accs);
            finals.insert(format!("{o}_seeds"), accs.len().into());
        }
    }
    let cols = [
        "optimizer",
        "seeds",
        "failed",
        "test_acc_mean",
        "test_acc_std",
        "test_loss_mean",
        "test_loss_std",
    ];
    write_atomic(&ctx.dir.join("summary.csv"), &csv_bytes(&cols, &summary)?)?;
    Ok(())
}

fn train(table: &Table, ctx: &mut RunContext) -> Result<Outcome> {
    let cfg: Config = config::typed(table)?;
    let mut finals = serde_json::Map::new();
    if cfg.functions.enabled {
        finals = part1(&cfg, ctx)?;
    }
    let mut outcome = Outcome::Completed;
    if cfg.networks.enabled {
        if cfg.networks.seeds.len() > 1 {
            ctx.set_seeds(cfg.networks.seeds.clone());
        }
        let jobs = jobs(&cfg)?;
        if let Some(stopped) = children::train(ctx, "diffgrad", &jobs)? {
            outcome = stopped;
        }
        collect(&cfg, ctx, &jobs, &mut finals)?;
    }
    ctx.set_final_metrics(finals);
    Ok(outcome)
}

use crate::claims::{self, Claim, Expect, Measured, RunFiles, Scale};

const CLAIMS: &[Claim] = &[
    Claim {
        id: "f1-diffgrad",
        statement: "on F1 diffGrad passes the local minimum and ends near the global one at x ≈ −0.3 (Fig. 2; ±0.05 band ours: the paper gives a plot)",
        paper: "x ≈ −0.3",
        expect: Expect::Within(-0.35, -0.25),
        unit: "x",
        scale: Scale::Cpu,
        variant: None,
        measure: f1_diffgrad,
    },
    Claim {
        id: "f1-adam",
        statement: "on F1 Adam overshoots into the local minimum at x ≈ 0.2 (Fig. 2; ±0.05 band ours)",
        paper: "x ≈ 0.2",
        expect: Expect::Within(0.15, 0.25),
        unit: "x",
        scale: Scale::Cpu,
        variant: None,
        measure: f1_adam,
    },
    Claim {
        id: "f2-diffgrad",
        statement: "on F2 diffGrad ends at the global minimum x ≈ −0.643 (Fig. 2; ±0.05 band ours)",
        paper: "x ≈ −0.643",
        expect: Expect::Within(-0.693, -0.593),
        unit: "x",
        scale: Scale::Cpu,
        variant: None,
        measure: f2_diffgrad,
    },
    Claim {
        id: "f2-adam",
        statement: "on F2 Adam stays near the local minimum at x ≈ 0 (Fig. 2; ±0.05 band ours)",
        paper: "x ≈ 0",
        expect: Expect::Within(-0.05, 0.05),
        unit: "x",
        scale: Scale::Cpu,
        variant: None,
        measure: f2_adam,
    },
    Claim {
        id: "accuracy",
        statement: "diffGrad's test accuracy is at least Adam's: seed-mean diffGrad − Adam (ResNet on CIFAR-10, Table 2)",
        paper: "diffGrad ahead",
        expect: Expect::AtLeast(0.0),
        unit: "fraction",
        scale: Scale::Full,
        variant: None,
        measure: accuracy_gap,
    },
];

fn final_x(f: &RunFiles, function: &str, optimizer: &str) -> Result<Measured> {
    if f.cfg_bool("functions.enabled") == Some(false) {
        return Ok(Measured::NotApplicable(
            "the functions part is switched off (functions.enabled = false)".into(),
        ));
    }
    let t = f.csv("functions_summary.csv")?;
    if t.select(&[("function", function), ("optimizer", optimizer)])?
        .is_empty()
    {
        return Ok(Measured::NotApplicable(format!(
            "{optimizer} on {function} was not run (functions.names / functions.optimizers)"
        )));
    }
    claims::value(t.number(
        "x_final",
        &[("function", function), ("optimizer", optimizer)],
    )?)
}

fn f1_diffgrad(f: &RunFiles) -> Result<Measured> {
    final_x(f, "f1", "diffgrad")
}
fn f1_adam(f: &RunFiles) -> Result<Measured> {
    final_x(f, "f1", "adam")
}
fn f2_diffgrad(f: &RunFiles) -> Result<Measured> {
    final_x(f, "f2", "diffgrad")
}
fn f2_adam(f: &RunFiles) -> Result<Measured> {
    final_x(f, "f2", "adam")
}

fn accuracy_gap(f: &RunFiles) -> Result<Measured> {
    if f.cfg_bool("networks.enabled") == Some(false) {
        return Ok(Measured::NotApplicable(
            "the networks part is switched off (networks.enabled = false)".into(),
        ));
    }
    let t = f.csv("summary.csv")?;
    let acc = |o: &str| -> Result<Option<f64>> {
        Ok(t.numbers("test_acc_mean", &[("optimizer", o)])?
            .first()
            .copied())
    };
    match (acc("diffgrad")?, acc("adam")?) {
        (Some(d), Some(a)) => claims::value(d - a),
        _ => Ok(Measured::NotApplicable(
            "summary.csv lacks diffgrad or adam (networks.optimizers)".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last(f: Function, o: OptimName) -> (f64, f64) {
        let rows = descend(f, o, &Functions::default(), Device::Cpu).unwrap();
        let end = rows.last().unwrap();
        (end.x, end.f)
    }

    #[test]
    fn functions_are_continuous_where_the_paper_says() {
        let at = |f: Function, x: f64| f.eval(&Tensor::from_slice(&[x])).double_value(&[0]);
        assert!(
            (at(Function::F3, 0.5) - 0.25).abs() < 1e-12
                && (at(Function::F3, 0.4) - 0.35).abs() < 1e-12
        );
        assert!(
            (at(Function::F3, 0.4000001) - 0.35).abs() < 1e-6
                && (at(Function::F3, -0.5) - 0.25).abs() < 1e-12
        );
        assert!(
            (at(Function::F1, 0.2) - 0.05).abs() < 1e-12 && at(Function::F1, -0.3).abs() < 1e-12
        );
        assert!((at(Function::F2, -0.9) - at(Function::F2, -0.9000001)).abs() < 1e-4);
    }

    /// The paper's headline 1-D result: Adam stalls in F1's local minimum and near 0 on F2;
    /// diffGrad reaches F1's global minimum and F2's minimum near −0.643.
    #[test]
    fn adam_stalls_where_diffgrad_reaches_the_minimum() {
        let (x, fx) = last(Function::F1, OptimName::Adam);
        assert!(
            (x - 0.2).abs() < 0.02 && (fx - 0.05).abs() < 1e-3,
            "adam on F1: x = {x}, f = {fx}"
        );
        let (x, fx) = last(Function::F1, OptimName::DiffGrad);
        assert!(
            (x + 0.3).abs() < 0.02 && fx < 1e-3,
            "diffgrad on F1: x = {x}, f = {fx}"
        );
        let (x, fx) = last(Function::F2, OptimName::Adam);
        assert!(
            x.abs() < 0.1 && (fx - 0.85).abs() < 0.05,
            "adam on F2: x = {x}, f = {fx}"
        );
        let (x, _) = last(Function::F2, OptimName::DiffGrad);
        assert!((x + 0.643).abs() < 0.02, "diffgrad on F2: x = {x}");
    }

    #[test]
    fn per_optimizer_overrides_apply_and_bad_names_are_caught() {
        let mut cfg = Config::default();
        let mut sgd = Table::new();
        sgd.insert("lr".into(), toml::Value::Float(0.05));
        sgd.insert("momentum".into(), toml::Value::Float(0.9));
        cfg.networks.optim.insert("sgd".into(), sgd);
        let c = cfg.child_config(OptimName::Sgd).unwrap();
        assert_eq!(
            (c.optim.name, c.optim.lr, c.optim.momentum),
            (OptimName::Sgd, 0.05, 0.9)
        );
        assert_eq!(
            cfg.child_config(OptimName::Adam).unwrap().optim.lr,
            cfg.optim.lr
        );
        cfg.networks.optim.insert("sdg".into(), Table::new());
        assert!(config::Check::check(&cfg)
            .unwrap_err()
            .to_string()
            .contains("networks.optim.sdg"));
        assert_eq!(mean_std(&[1.0, 3.0]), (2.0, 2f64.sqrt()));
    }
}

// ---- The paper's claims (Dubey et al., diffGrad) -------------------------------------------
