//! Optimizers written over tensors so their whole state can be checkpointed (tch's built-in
//! `nn::Optimizer` cannot save state). Parameters and gradients live in flat buffers
//! (`flat::FlatParams`), so a step costs a few ops whatever the number of parameter tensors.
//! Update rules follow `torch.optim`'s definitions.

pub mod flat;
mod rules;

use anyhow::{bail, Result};
use flat::FlatParams;
use serde::{Deserialize, Serialize};
use tch::Tensor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimName {
    Sgd,
    Adam,
    AdamW,
}

/// `[optim]` in an experiment config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    pub name: OptimName,
    pub lr: f64,
    /// SGD momentum, dampening and Nesterov.
    pub momentum: f64,
    pub dampening: f64,
    pub nesterov: bool,
    /// L2 penalty (SGD, Adam) or decoupled decay (AdamW).
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
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
            eps: 1e-8,
        }
    }
}

impl crate::config::Check for OptimConfig {
    fn check(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            bail!("optim.lr must be a non-negative number, got {}", self.lr);
        }
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            bail!("optim.nesterov needs optim.momentum > 0 and optim.dampening = 0");
        }
        for (k, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                bail!("optim.{k} must be in [0, 1), got {b}");
            }
        }
        Ok(())
    }
}

/// One update rule over the flat buffers: `param` is updated in place from `grad`.
trait Rule {
    /// `step` counts from 1.
    fn update(&mut self, param: &mut Tensor, grad: &Tensor, step: u64, lr: f64);
    /// Named state buffers, for checkpoints.
    fn buffers(&self) -> Vec<(&'static str, &Tensor)>;
}

pub struct Optimizer {
    flat: FlatParams,
    rule: Box<dyn Rule>,
    name: OptimName,
    /// The learning rate used by the next step (schedules set it).
    pub lr: f64,
    step: u64,
}

impl Optimizer {
    pub fn new(vars: Vec<Tensor>, cfg: &OptimConfig) -> Result<Self> {
        crate::config::Check::check(cfg)?;
        let flat = FlatParams::new(vars)?;
        let rule: Box<dyn Rule> = match cfg.name {
            OptimName::Sgd => Box::new(rules::Sgd::new(&flat.params, cfg)),
            OptimName::Adam => Box::new(rules::Adam::new(&flat.params, cfg, false)),
            OptimName::AdamW => Box::new(rules::Adam::new(&flat.params, cfg, true)),
        };
        Ok(Optimizer {
            flat,
            rule,
            name: cfg.name,
            lr: cfg.lr,
            step: 0,
        })
    }

    pub fn zero_grad(&mut self) {
        self.flat.zero_grad();
    }

    /// Applies one update from the gradients accumulated since `zero_grad`.
    pub fn step(&mut self) {
        self.flat.ensure_bound();
        self.step += 1;
        let grads = self.flat.grads.shallow_clone();
        tch::no_grad(|| {
            self.rule
                .update(&mut self.flat.params, &grads, self.step, self.lr)
        });
    }

    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    pub fn params(&self) -> &Tensor {
        &self.flat.params
    }

    pub fn grads(&self) -> &Tensor {
        &self.flat.grads
    }

    /// State tensors for a checkpoint.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.rule
            .buffers()
            .into_iter()
            .map(|(n, t)| (n.to_string(), t.shallow_clone()))
            .collect()
    }

    /// Scalar state for a checkpoint's state.json.
    pub fn state_scalars(&self) -> serde_json::Value {
        serde_json::json!({ "name": self.name, "step": self.step, "lr": self.lr })
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
                "the checkpoint's optimizer is {saved_name:?}, the config asks for {:?}",
                self.name
            );
        }
        let mine: std::collections::HashMap<String, Tensor> =
            self.state_tensors().into_iter().collect();
        crate::run::checkpoint::copy_into(&mine, tensors, "optimizer state")?;
        self.step = scalars["step"].as_u64().unwrap_or(0);
        self.lr = scalars["lr"].as_f64().unwrap_or(self.lr);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn quadratic_run(cfg: &OptimConfig, steps: usize) -> Vec<f64> {
        let w = Tensor::from_slice(&[1.0f64, -2.0, 3.0]).set_requires_grad(true);
        let mut opt = Optimizer::new(vec![w.shallow_clone()], cfg).unwrap();
        for _ in 0..steps {
            opt.zero_grad();
            (&w * &w).sum(Kind::Double).backward();
            opt.step();
        }
        Vec::<f64>::try_from(&w.detach()).unwrap()
    }

    /// Hand-computed updates of torch.optim on f(w) = Σ w², gradient 2w.
    #[test]
    fn sgd_and_adam_match_torch_definitions() {
        let sgd = OptimConfig {
            name: OptimName::Sgd,
            lr: 0.1,
            ..Default::default()
        };
        // w ← w − 0.1·2w = 0.8w, twice.
        let got = quadratic_run(&sgd, 2);
        for (g, w0) in got.iter().zip([1.0, -2.0, 3.0]) {
            assert!((g - 0.64 * w0).abs() < 1e-12);
        }
        // Momentum 0.9: buf1 = g1; w1 = w0 − lr g1 = 0.8 w0; g2 = 1.6 w0; buf2 = 0.9·2w0 + 1.6w0.
        let mom = OptimConfig {
            momentum: 0.9,
            ..sgd.clone()
        };
        let got = quadratic_run(&mom, 2);
        assert!(
            (got[0] - (0.8 - 0.1 * (1.8 + 1.6))).abs() < 1e-12,
            "{got:?}"
        );
        // Adam's first step moves every coordinate by lr·sign(g) (up to eps).
        let adam = OptimConfig {
            lr: 0.01,
            ..Default::default()
        };
        let got = quadratic_run(&adam, 1);
        assert!(
            (got[0] - 0.99).abs() < 1e-7 && (got[1] + 1.99).abs() < 1e-7,
            "{got:?}"
        );
    }

    #[test]
    fn state_round_trip_continues_identically() {
        let cfg = OptimConfig {
            name: OptimName::AdamW,
            weight_decay: 0.1,
            ..Default::default()
        };
        let make = || {
            let w = Tensor::from_slice(&[0.5f32, -1.5]).set_requires_grad(true);
            let opt = Optimizer::new(vec![w.shallow_clone()], &cfg).unwrap();
            (w, opt)
        };
        let run = |w: &Tensor, opt: &mut Optimizer, n| {
            for _ in 0..n {
                opt.zero_grad();
                (w * w * w).sum(Kind::Float).backward();
                opt.step();
            }
        };
        let (w1, mut o1) = make();
        run(&w1, &mut o1, 6);
        let (w2, mut o2) = make();
        run(&w2, &mut o2, 3);
        let (t, s) = (o2.state_tensors(), o2.state_scalars());
        let saved_w = w2.detach().copy();
        let (w3, mut o3) = make();
        tch::no_grad(|| w3.shallow_clone().copy_(&saved_w));
        let t: Vec<(String, Tensor)> = t.into_iter().map(|(n, x)| (n, x.copy())).collect();
        o3.load_state(t, &s).unwrap();
        run(&w3, &mut o3, 3);
        assert!(
            w1.equal(&w3),
            "resumed optimizer diverged from the uninterrupted one"
        );
        assert_eq!(o3.steps_taken(), 6);
        let _ = Device::Cpu;
    }

    #[test]
    fn bad_hyperparameters_are_rejected() {
        let w = || vec![Tensor::zeros([2], (Kind::Float, Device::Cpu)).set_requires_grad(true)];
        let bad = OptimConfig {
            beta1: 1.0,
            ..Default::default()
        };
        assert!(Optimizer::new(w(), &bad)
            .err()
            .unwrap()
            .to_string()
            .contains("optim.beta1"));
        let bad = OptimConfig {
            name: OptimName::Sgd,
            nesterov: true,
            ..Default::default()
        };
        assert!(Optimizer::new(w(), &bad).is_err());
    }
}
