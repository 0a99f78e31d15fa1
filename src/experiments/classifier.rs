//! `classifier`: an MLP or small CNN trained with SGD/Adam on a dataset chosen by name. The
//! end-to-end check of the runner (data → model → optimizer → loop → metrics → checkpoints),
//! and the baseline other experiments compare against.

use super::{Entry, EvalInput, EvalRow};
use crate::config;
use crate::data::{self, DataConfig};
use crate::nn::{self as models, ModelConfig};
use crate::optim::{OptimConfig, Optimizer};
use crate::run::{Outcome, RunContext};
use crate::train::{self, Classification, NoHooks, TrainConfig};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use toml::Table;

pub const ENTRY: Entry = Entry {
    name: "classifier",
    family: "runner",
    description: "MLP or small CNN with SGD/Adam on a named dataset (runner baseline)",
    paper: "—",
    defaults: include_str!("../../experiments/classifier.toml"),
    normalize: config::normalize::<Config>,
    train,
    eval: Some(eval),
    information_plane: false,
    claims: &[],
    variants: &[],
    extendable: true,
    nested_runs: false,
};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub data: DataConfig,
    pub model: ModelConfig,
    pub optim: OptimConfig,
    pub train: TrainConfig,
}

impl config::Check for Config {
    fn check(&self) -> Result<()> {
        self.data.check()?;
        self.model.check()?;
        self.optim.check()?;
        self.train.check()
    }
    fn resolve(&mut self) {
        self.optim.resolve();
    }
}

fn train(table: &Table, ctx: &mut RunContext) -> Result<Outcome> {
    let cfg: Config = config::typed(table)?;
    let data = data::load(&cfg.data, &ctx.data_dir, ctx.device, ctx.seed)?;
    let (vs, model) = models::build_classifier(
        &cfg.model,
        &data.input_shape,
        data.n_classes,
        ctx.device,
        ctx.seed,
    )?;
    let mut opt = Optimizer::new(crate::optim::trainable(&vs), &cfg.optim)?;
    let task = Classification {
        schedule: &cfg.optim.schedule,
        vs: &vs,
        model: model.as_ref(),
        opt: &mut opt,
        data: &data,
    };
    train::fit(ctx, task, &cfg.train, &mut NoHooks)
}

fn eval(table: &Table, input: &EvalInput<'_>) -> Result<Vec<EvalRow>> {
    let cfg: Config = config::typed(table)?;
    let data = data::load(&cfg.data, input.data_dir, input.device, input.seed)?;
    let (vs, model) = models::build_classifier(
        &cfg.model,
        &data.input_shape,
        data.n_classes,
        input.device,
        input.seed,
    )?;
    train::load_weights(&vs, input.checkpoint, input.device)?;
    Ok(train::evaluate_splits(
        model.as_ref(),
        &data,
        cfg.train.eval_batch_size,
    ))
}
