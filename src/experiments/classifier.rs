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
    description: "MLP, small CNN or ResNet with any optimizer (optim.name) on any dataset (data.name; see `stochlab data list`): the runner baseline",
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

#[cfg(test)]
mod comment_tests {
    /// The choices listed in the comments of experiments/classifier.toml are the registries'.
    #[test]
    fn config_comments_list_every_dataset_and_optimizer() {
        // The commented `name = ` lines: [data] first, then [optim].
        let lists: Vec<Vec<String>> = super::ENTRY
            .defaults
            .lines()
            .filter(|l| l.starts_with("name = ") && l.contains('#'))
            .map(|l| {
                let comment = l.split('#').nth(1).unwrap().split("  (").next().unwrap();
                comment.split('|').map(|s| s.trim().to_string()).collect()
            })
            .collect();
        assert_eq!(lists.len(), 2, "{lists:?}");
        assert_eq!(
            lists[0],
            crate::data::names().collect::<Vec<_>>(),
            "data.name"
        );
        let optim: Vec<&str> = crate::optim::OptimName::ALL
            .iter()
            .map(|o| o.as_str())
            .collect();
        assert_eq!(lists[1], optim, "optim.name");
    }
}
