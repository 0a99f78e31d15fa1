//! Optimizers written over tensors so their whole state can be checkpointed (tch's built-in
//! `nn::Optimizer` cannot save state). Parameters and gradients live in flat buffers
//! (`flat::FlatParams`), so a step costs a few ops whatever the number of parameter tensors.
//! Parameter groups are contiguous slices of those buffers, each with its own learning rate,
//! weight decay and rule state. Update rules follow `torch.optim`'s definitions.

pub mod flat;
pub mod rules;
pub mod schedule;

use anyhow::{bail, Result};
use flat::FlatParams;
use rules::Rule;
pub use schedule::{ScheduleConfig, ScheduleName};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimName {
    Sgd,
    Adam,
    AdamW,
    AmsGrad,
    RmsProp,
    AdaGrad,
    AdaDelta,
    DiffGrad,
}

impl OptimName {
    pub const ALL: [OptimName; 8] = [
        OptimName::Sgd,
        OptimName::Adam,
        OptimName::AdamW,
        OptimName::AmsGrad,
        OptimName::RmsProp,
        OptimName::AdaGrad,
        OptimName::AdaDelta,
        OptimName::DiffGrad,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OptimName::Sgd => "sgd",
            OptimName::Adam => "adam",
            OptimName::AdamW => "adamw",
            OptimName::AmsGrad => "amsgrad",
            OptimName::RmsProp => "rmsprop",
            OptimName::AdaGrad => "adagrad",
            OptimName::AdaDelta => "adadelta",
            OptimName::DiffGrad => "diffgrad",
        }
    }

    /// torch.optim's default eps for this optimizer.
    fn default_eps(self) -> f64 {
        match self {
            OptimName::AdaGrad => 1e-10,
            OptimName::AdaDelta => 1e-6,
            _ => 1e-8,
        }
    }
}

/// A parameter group: parameters whose name contains `params` get their own learning rate
/// and/or weight decay (the first matching group wins; the rest form the default group).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GroupConfig {
    pub params: String,
    pub lr: Option<f64>,
    pub weight_decay: Option<f64>,
}

/// `[optim]` in an experiment config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// sgd | adam | adamw | amsgrad | rmsprop | adagrad | adadelta | diffgrad
    pub name: OptimName,
    pub lr: f64,
    /// SGD and RMSProp momentum; SGD dampening and Nesterov.
    pub momentum: f64,
    pub dampening: f64,
    pub nesterov: bool,
    /// L2 penalty added to the gradient; decoupled (p ← p(1 − lr·wd)) for adamw.
    pub weight_decay: f64,
    /// Adam-family moment decay rates.
    pub beta1: f64,
    pub beta2: f64,
    /// Denominator term; 0 means torch's default for the optimizer (1e-8, AdaGrad 1e-10,
    /// AdaDelta 1e-6), written as that value into a run's config.toml.
    pub eps: f64,
    /// RMSProp smoothing constant and centered variant.
    pub alpha: f64,
    pub centered: bool,
    /// AdaGrad learning-rate decay and initial accumulator value.
    pub lr_decay: f64,
    pub initial_accumulator: f64,
    /// AdaDelta decay rate.
    pub rho: f64,
    /// Clip the global gradient norm to this value (0 = off), as torch's clip_grad_norm_.
    pub clip_norm: f64,
    pub groups: Vec<GroupConfig>,
    pub schedule: ScheduleConfig,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            name: OptimName::Adam,
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 0.0,
            alpha: 0.99,
            centered: false,
            lr_decay: 0.0,
            initial_accumulator: 0.0,
            rho: 0.9,
            clip_norm: 0.0,
            groups: vec![],
            schedule: ScheduleConfig::default(),
        }
    }
}

impl OptimConfig {
    pub fn eps_or_default(&self) -> f64 {
        if self.eps > 0.0 {
            self.eps
        } else {
            self.name.default_eps()
        }
    }

    /// Fills in the placeholders with the values the optimizer uses (eps).
    pub fn resolve(&mut self) {
        self.eps = self.eps_or_default();
    }
}

impl crate::config::Check for OptimConfig {
    fn check(&self) -> Result<()> {
        let lrs = std::iter::once(self.lr).chain(self.groups.iter().filter_map(|g| g.lr));
        if lrs.into_iter().any(|lr| !(lr.is_finite() && lr >= 0.0)) {
            bail!("optim.lr (and every group's lr) must be a non-negative number");
        }
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            bail!("optim.nesterov needs optim.momentum > 0 and optim.dampening = 0");
        }
        for (k, b) in [
            ("beta1", self.beta1),
            ("beta2", self.beta2),
            ("alpha", self.alpha),
            ("rho", self.rho),
        ] {
            if !(0.0..1.0).contains(&b) {
                bail!("optim.{k} must be in [0, 1), got {b}");
            }
        }
        if self.eps < 0.0 || self.clip_norm < 0.0 || self.momentum < 0.0 {
            bail!("optim.eps, optim.clip_norm and optim.momentum must be >= 0");
        }
        if self.groups.iter().any(|g| g.params.is_empty()) {
            bail!("every [[optim.groups]] needs `params`, a substring of the parameter names it covers");
        }
        self.schedule.check()
    }
}

struct Group {
    offset: i64,
    len: i64,
    base_lr: f64,
    lr: f64,
    weight_decay: f64,
    rule: Box<dyn Rule>,
}

pub struct Optimizer {
    flat: FlatParams,
    groups: Vec<Group>,
    name: OptimName,
    decoupled: bool,
    clip_norm: f64,
    /// Gradient plus coupled weight decay (allocated only when some group decays).
    decayed: Option<Tensor>,
    step: u64,
}

impl Optimizer {
    /// Takes the trainable variables with their names (names decide parameter groups).
    pub fn new(named: Vec<(String, Tensor)>, cfg: &OptimConfig) -> Result<Self> {
        crate::config::Check::check(cfg)?;
        let group_of = |name: &str| {
            cfg.groups
                .iter()
                .position(|g| name.contains(&g.params))
                .map_or(0, |i| i + 1)
        };
        let mut named = named;
        // Stable: each group's variables stay in their given order, groups become contiguous.
        named.sort_by_key(|(n, _)| group_of(n));
        let sizes: Vec<(usize, i64)> = named
            .iter()
            .map(|(n, v)| (group_of(n), v.numel() as i64))
            .collect();
        let flat = FlatParams::new(named.into_iter().map(|(_, v)| v).collect())?;

        let mut groups = vec![];
        let mut offset = 0;
        for g in 0..=cfg.groups.len() {
            let len: i64 = sizes.iter().filter(|(i, _)| *i == g).map(|(_, n)| n).sum();
            if len == 0 {
                continue;
            }
            let gc = g.checked_sub(1).map(|i| &cfg.groups[i]);
            let lr = gc.and_then(|c| c.lr).unwrap_or(cfg.lr);
            let weight_decay = gc.and_then(|c| c.weight_decay).unwrap_or(cfg.weight_decay);
            let slice = flat.params.narrow(0, offset, len);
            let rule: Box<dyn Rule> = match cfg.name {
                OptimName::Sgd => Box::new(rules::Sgd::new(&slice, cfg)),
                OptimName::Adam | OptimName::AdamW => {
                    Box::new(rules::Adam::new(&slice, cfg, false))
                }
                OptimName::AmsGrad => Box::new(rules::Adam::new(&slice, cfg, true)),
                OptimName::RmsProp => Box::new(rules::RmsProp::new(&slice, cfg)),
                OptimName::AdaGrad => Box::new(rules::AdaGrad::new(&slice, cfg)),
                OptimName::AdaDelta => Box::new(rules::AdaDelta::new(&slice, cfg)),
                OptimName::DiffGrad => Box::new(rules::DiffGrad::new(&slice, cfg)),
            };
            groups.push(Group {
                offset,
                len,
                base_lr: lr,
                lr,
                weight_decay,
                rule,
            });
            offset += len;
        }
        let decoupled = cfg.name == OptimName::AdamW;
        let decayed = (!decoupled && groups.iter().any(|g| g.weight_decay != 0.0))
            .then(|| flat.params.zeros_like());
        Ok(Optimizer {
            flat,
            groups,
            name: cfg.name,
            decoupled,
            clip_norm: cfg.clip_norm,
            decayed,
            step: 0,
        })
    }

    pub fn zero_grad(&mut self) {
        self.flat.zero_grad();
    }

    /// Sets every group's learning rate to its base rate times `factor` (schedules).
    pub fn set_lr_factor(&mut self, factor: f64) {
        for g in &mut self.groups {
            g.lr = g.base_lr * factor;
        }
    }

    /// The learning rate of the first group (what metrics log as `lr`).
    pub fn lr(&self) -> f64 {
        self.groups.first().map_or(0.0, |g| g.lr)
    }

    /// Applies one update from the gradients accumulated since `zero_grad`.
    pub fn step(&mut self) {
        self.flat.ensure_bound();
        self.step += 1;
        let step = self.step;
        tch::no_grad(|| {
            if self.clip_norm > 0.0 {
                // As torch.nn.utils.clip_grad_norm_: scale by min(1, max_norm / (norm + 1e-6)),
                // without reading the norm back to the host.
                let norm = self.flat.grads.norm();
                let coef = (norm + 1e-6)
                    .reciprocal()
                    .g_mul_scalar(self.clip_norm)
                    .clamp_max(1.0);
                let _ = self.flat.grads.g_mul_(&coef);
            }
            for g in &mut self.groups {
                let mut param = self.flat.params.narrow(0, g.offset, g.len);
                let mut grad = self.flat.grads.narrow(0, g.offset, g.len);
                if g.weight_decay != 0.0 {
                    if self.decoupled {
                        let _ = param.g_mul_scalar_(1.0 - g.lr * g.weight_decay);
                    } else if let Some(buf) = &self.decayed {
                        let mut d = buf.narrow(0, g.offset, g.len);
                        let _ = param.mul_scalar_out(&d, g.weight_decay);
                        grad = d.g_add_(&grad);
                    }
                }
                g.rule.update(&mut param, &grad, step, g.lr);
            }
        });
    }

    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    pub fn params(&self) -> &Tensor {
        &self.flat.params
    }

    /// The flat gradient buffer (every parameter's `.grad` is a view into it).
    pub fn grads(&self) -> &Tensor {
        &self.flat.grads
    }

    /// The mean over all parameters of the rule's per-element diagnostic (diffGrad: friction ξ),
    /// as a device scalar.
    pub fn diagnostic_mean(&self) -> Option<(&'static str, Tensor)> {
        let parts: Vec<(&'static str, Tensor)> = self
            .groups
            .iter()
            .filter_map(|g| g.rule.diagnostic().map(|(n, t)| (n, t.sum(Kind::Double))))
            .collect();
        let name = parts.first()?.0;
        let total = parts.into_iter().map(|(_, t)| t).reduce(|a, b| a + b)?;
        Some((name, total / self.flat.numel() as f64))
    }

    /// State tensors for a checkpoint.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.groups
            .iter()
            .enumerate()
            .flat_map(|(i, g)| {
                g.rule
                    .buffers()
                    .into_iter()
                    .map(move |(n, t)| (format!("group{i}.{n}"), t.shallow_clone()))
            })
            .collect()
    }

    /// Scalar state for a checkpoint's state.json.
    pub fn state_scalars(&self) -> serde_json::Value {
        serde_json::json!({ "name": self.name, "step": self.step, "lr": self.lr() })
    }

    /// Restores what `state_tensors`/`state_scalars` saved, in place.
    pub fn load_state(
        &mut self,
        tensors: Vec<(String, Tensor)>,
        scalars: &serde_json::Value,
    ) -> Result<()> {
        let saved_name: OptimName = serde_json::from_value(scalars["name"].clone())?;
        if saved_name != self.name {
            bail!(
                "the checkpoint's optimizer is {}, the config asks for {}",
                saved_name.as_str(),
                self.name.as_str()
            );
        }
        let mine: std::collections::HashMap<String, Tensor> =
            self.state_tensors().into_iter().collect();
        crate::run::checkpoint::copy_into(&mine, tensors, "optimizer state")?;
        self.step = scalars["step"].as_u64().unwrap_or(0);
        Ok(())
    }
}

/// The trainable variables of a VarStore with their names, in a stable order.
/// Adam with PyTorch's defaults at learning rate `lr` over every trainable variable of `vs`.
pub fn adam(vs: &tch::nn::VarStore, lr: f64) -> Result<Optimizer> {
    let cfg = OptimConfig {
        name: OptimName::Adam,
        lr,
        ..Default::default()
    };
    Optimizer::new(trainable(vs), &cfg)
}

pub fn trainable(vs: &tch::nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[cfg(test)]
mod tests;
