//! The generic supervised loop: epochs of shuffled mini-batches, evaluation, one metrics row
//! per epoch, checkpoints, interrupt handling and divergence detection. Experiments plug in
//! extra per-epoch columns through `Hooks`.
//!
//! Host syncs: none inside the step loop. Per-step losses and correct counts stay on the
//! device and are read once at the end of the epoch.

pub mod curvature;
pub mod distance;
pub mod hessian;
pub mod probe;
pub mod spectrum;

use crate::data::{Dataset, Split};
use crate::optim::{Optimizer, ScheduleConfig};
use crate::rng::{self, Stream};
use crate::run::checkpoint::{self, State};
use crate::run::metrics::Cell;
use crate::run::progress::Progress;
use crate::run::{Outcome, RunContext};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Reduction, Tensor};

/// `[train]` in an experiment config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub epochs: usize,
    /// Mini-batch size; 0 = full batch.
    pub batch_size: i64,
    /// Drop the last incomplete batch of each epoch.
    pub drop_last: bool,
    /// Batch size for evaluation passes (memory only; results do not depend on it).
    pub eval_batch_size: i64,
    /// Save a checkpoint every N epochs (the last epoch and interrupts always save).
    pub checkpoint_every: usize,
    /// How many checkpoints to keep (at least 2: the latest and the one to fall back to).
    pub keep_checkpoints: usize,
    /// Log ‖w − w_0‖ per layer (`dist_<layer>` columns) and in total (`dist_total`).
    pub distance_from_init: bool,
    /// λ_max of the training loss every N steps (`sharpness.csv`, `sharpness` column).
    pub sharpness: curvature::SharpnessConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 20,
            batch_size: 64,
            drop_last: false,
            eval_batch_size: 2048,
            checkpoint_every: 1,
            keep_checkpoints: 2,
            distance_from_init: false,
            sharpness: curvature::SharpnessConfig::default(),
        }
    }
}

impl crate::config::Check for TrainConfig {
    fn check(&self) -> Result<()> {
        if self.epochs == 0 {
            bail!("train.epochs must be at least 1");
        }
        if self.batch_size < 0 || self.eval_batch_size < 1 {
            bail!("train.batch_size must be >= 0 (0 = full batch) and train.eval_batch_size >= 1");
        }
        self.sharpness.check()
    }
}

/// Extra per-epoch metrics an experiment adds to the row.
pub trait Hooks {
    fn columns(&self) -> Vec<String> {
        vec![]
    }
    fn on_epoch_end(&mut self, _epoch: usize, _model: &dyn ModuleT) -> Result<Vec<Cell>> {
        Ok(vec![])
    }
}

/// No extra columns.
pub struct NoHooks;
impl Hooks for NoHooks {}

/// A classifier being trained: model, its variables, optimizer and data.
pub struct Classification<'a> {
    pub vs: &'a VarStore,
    pub model: &'a dyn ModuleT,
    pub opt: &'a mut Optimizer,
    pub data: &'a Dataset,
    /// Learning-rate schedule, evaluated before every step.
    pub schedule: &'a ScheduleConfig,
}

/// The loop's columns; validation columns only when the dataset has a validation split.
pub fn columns(has_val: bool) -> Vec<&'static str> {
    let mut c = vec!["epoch", "step", "lr", "train_loss", "train_acc"];
    if has_val {
        c.extend(["val_loss", "val_acc"]);
    }
    c.extend(["test_loss", "test_acc"]);
    c
}

/// One optimisation step on a batch; returns the batch's mean loss and its number of correct
/// predictions as device scalars (nothing read back to the host).
pub fn train_step(
    model: &dyn ModuleT,
    opt: &mut Optimizer,
    x: &Tensor,
    y: &Tensor,
) -> (Tensor, Tensor) {
    opt.zero_grad();
    let logits = model.forward_t(x, true);
    let loss = logits.cross_entropy_for_logits(y);
    loss.backward();
    opt.step();
    let correct = logits.argmax(-1, false).eq_tensor(y).sum(Kind::Int64);
    (loss.detach(), correct)
}

/// Mean cross-entropy and accuracy of `model` on a split, in evaluation mode.
pub fn evaluate(model: &dyn ModuleT, split: &Split, batch_size: i64) -> (f64, f64) {
    tch::no_grad(|| {
        let device = split.y.device();
        let mut loss = Tensor::zeros([], (Kind::Double, device));
        let mut correct = Tensor::zeros([], (Kind::Int64, device));
        for idx in split.batches(batch_size, false, false) {
            let (x, y) = split.take(&idx);
            let logits = model.forward_t(&x, false);
            let l = logits.log_softmax(-1, Kind::Float).g_nll_loss::<Tensor>(
                &y,
                None,
                Reduction::Sum,
                -100,
            );
            loss += l.to_kind(Kind::Double);
            correct += logits.argmax(-1, false).eq_tensor(&y).sum(Kind::Int64);
        }
        let n = split.len().max(1) as f64;
        (
            loss.double_value(&[]) / n,
            correct.int64_value(&[]) as f64 / n,
        )
    })
}

/// `eval` rows of a classifier: loss, accuracy and size of each split the dataset has.
pub fn evaluate_splits(
    model: &dyn ModuleT,
    data: &Dataset,
    batch_size: i64,
) -> Vec<crate::run::metrics::NamedRow> {
    [
        ("train", Some(&data.train)),
        ("val", data.val.as_ref()),
        ("test", Some(&data.test)),
    ]
    .into_iter()
    .filter_map(|(name, split)| split.map(|s| (name, s)))
    .map(|(name, split)| {
        let (loss, acc) = evaluate(model, split, batch_size);
        let metrics = vec![
            ("loss".to_string(), Cell::from(loss)),
            ("acc".to_string(), Cell::from(acc)),
            ("n".to_string(), Cell::from(split.len())),
        ];
        (name.to_string(), metrics)
    })
    .collect()
}

/// Named variables of a VarStore (weights and buffers), for checkpoints.
pub fn named_variables(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Loads a checkpoint's weights into a VarStore in place.
pub fn load_weights(vs: &VarStore, ck: &checkpoint::Checkpoint, device: Device) -> Result<()> {
    let vars: HashMap<String, Tensor> = vs.variables();
    checkpoint::copy_into(
        &vars,
        ck.model_tensors(device)?,
        &format!("checkpoint {}", ck.dir.display()),
    )
}

/// Per-epoch accumulators kept on the device; saved (as host numbers) when interrupted mid-epoch.
#[derive(Default, Serialize, Deserialize)]
struct EpochSums {
    losses: Vec<f32>,
    sizes: Vec<i64>,
    correct: i64,
}

struct Running {
    losses: Vec<Tensor>,
    sizes: Vec<i64>,
    correct: Vec<Tensor>,
}

impl Running {
    fn new(prev: EpochSums, device: Device) -> Self {
        let losses = prev
            .losses
            .iter()
            .map(|&l| Tensor::from(l).to_device(device))
            .collect();
        let correct = if prev.correct > 0 {
            vec![Tensor::from(prev.correct).to_device(device)]
        } else {
            vec![]
        };
        Running {
            losses,
            sizes: prev.sizes,
            correct,
        }
    }

    /// Reads the epoch back: (per-step losses on the host, mean loss, accuracy).
    fn read(&self) -> (Vec<f32>, f64, i64) {
        if self.losses.is_empty() {
            return (vec![], f64::NAN, 0);
        }
        let losses: Vec<f32> = Vec::try_from(Tensor::stack(&self.losses, 0).to_device(Device::Cpu))
            .unwrap_or_default();
        let n: i64 = self.sizes.iter().sum();
        let mean = losses
            .iter()
            .zip(&self.sizes)
            .map(|(&l, &s)| l as f64 * s as f64)
            .sum::<f64>()
            / n.max(1) as f64;
        let correct = if self.correct.is_empty() {
            0
        } else {
            Tensor::stack(&self.correct, 0)
                .sum(Kind::Int64)
                .int64_value(&[])
        };
        (losses, mean, correct)
    }

    fn save(&self) -> EpochSums {
        let (losses, _, correct) = self.read();
        EpochSums {
            losses,
            sizes: self.sizes.clone(),
            correct,
        }
    }
}

/// Trains `task` for `cfg.epochs`, resuming from `ctx.resume_from` when set.
pub fn fit(
    ctx: &mut RunContext,
    task: Classification<'_>,
    cfg: &TrainConfig,
    hooks: &mut dyn Hooks,
) -> Result<Outcome> {
    crate::config::Check::check(cfg)?;
    let Classification {
        vs,
        model,
        opt,
        data,
        schedule,
    } = task;
    let distance = if cfg.distance_from_init {
        Some(distance::InitDistance::open(&ctx.dir, vs)?)
    } else {
        None
    };
    let sharp_on = cfg.sharpness.every > 0;
    let extra: Vec<String> = distance
        .iter()
        .flat_map(|d| d.columns())
        .chain(sharp_on.then(|| "sharpness".to_string()))
        .chain(hooks.columns())
        .collect();
    let columns: Vec<&str> = columns(data.val.is_some())
        .into_iter()
        .chain(extra.iter().map(String::as_str))
        .collect();
    ctx.open_metrics(&columns)?;

    let (mut epoch, mut skip, mut global_step, mut carried) =
        (0usize, 0usize, 0u64, EpochSums::default());
    if let Some(ck) = &ctx.resume_from {
        let st = ck.state()?;
        load_weights(vs, ck, ctx.device)?;
        opt.load_state(ck.optim_tensors(ctx.device)?, &st.optimizer)?;
        (epoch, skip, global_step) = (st.epoch, st.step_in_epoch, st.global_step);
        carried = serde_json::from_value(st.loop_state).unwrap_or_default();
    }
    let resumed = ctx.resume_from.is_some().then_some(global_step);
    let mut sharpness = if sharp_on {
        let mut s =
            curvature::Sharpness::open(&ctx.dir, &cfg.sharpness, &data.train, ctx.seed, resumed)?;
        if resumed.is_none() {
            opt.set_lr_factor(schedule.factor(0, 0.0, cfg.epochs));
            s.measure(model, vs, &data.train, (0.0, 0, opt.lr()))?;
        }
        Some(s)
    } else {
        None
    };

    let mut progress = Progress::new(&ctx.info.experiment, cfg.epochs as u64, ctx.quiet);
    progress.update(epoch as u64, "");
    while epoch < cfg.epochs {
        rng::reseed(ctx.seed, Stream::Shuffle, epoch as u64, 0);
        let batches = data.train.batches(cfg.batch_size, true, cfg.drop_last);
        let per_epoch = batches.count_total().max(1);
        let mut run = Running::new(std::mem::take(&mut carried), ctx.device);
        for (i, idx) in batches.enumerate().skip(skip) {
            rng::reseed(ctx.seed, Stream::Step, epoch as u64, i as u64);
            opt.set_lr_factor(schedule.factor(epoch, i as f64 / per_epoch as f64, cfg.epochs));
            let (x, y) = data.train.take(&idx);
            let x = data.augmented(x);
            let (loss, correct) = train_step(model, opt, &x, &y);
            run.losses.push(loss);
            run.sizes.push(idx.size()[0]);
            run.correct.push(correct);
            global_step += 1;
            if let Some(s) = sharpness.as_mut().filter(|s| s.due(global_step)) {
                let at = epoch as f64 + (i + 1) as f64 / per_epoch as f64;
                s.measure(model, vs, &data.train, (at, global_step, opt.lr()))?;
            }
            if let Some(sig) = ctx.interrupt.requested() {
                let state = State {
                    epoch,
                    step_in_epoch: i + 1,
                    global_step,
                    metrics_rows: ctx.metrics_rows(),
                    seed: ctx.seed,
                    optimizer: opt.state_scalars(),
                    loop_state: serde_json::to_value(run.save())?,
                };
                save(ctx, vs, opt, &state, cfg)?;
                progress.finish();
                return Ok(Outcome::Interrupted(sig));
            }
        }
        skip = 0;
        let (losses, train_loss, correct) = run.read();
        if let Some(bad) = losses.iter().position(|l| !l.is_finite()) {
            progress.finish();
            bail!(
                "diverged at epoch {}, step {}: training loss is {}; lower optim.lr or check the data",
                epoch + 1,
                bad + 1,
                losses[bad]
            );
        }
        let train_acc = correct as f64 / run.sizes.iter().sum::<i64>().max(1) as f64;
        let (test_loss, test_acc) = evaluate(model, &data.test, cfg.eval_batch_size);
        epoch += 1;
        let mut row: Vec<Cell> = vec![
            epoch.into(),
            (global_step as i64).into(),
            opt.lr().into(),
            train_loss.into(),
            train_acc.into(),
        ];
        if let Some(val) = &data.val {
            let (val_loss, val_acc) = evaluate(model, val, cfg.eval_batch_size);
            row.extend([val_loss.into(), val_acc.into()]);
        }
        row.extend([test_loss.into(), test_acc.into()]);
        if let Some(d) = &distance {
            row.extend(d.measure().into_iter().map(Cell::from));
        }
        if let Some(s) = &sharpness {
            row.push(s.last().into());
        }
        row.extend(hooks.on_epoch_end(epoch, model)?);
        ctx.log(row)?;
        if epoch % cfg.checkpoint_every.max(1) == 0 || epoch == cfg.epochs {
            let state = State {
                epoch,
                step_in_epoch: 0,
                global_step,
                metrics_rows: ctx.metrics_rows(),
                seed: ctx.seed,
                optimizer: opt.state_scalars(),
                loop_state: serde_json::Value::Null,
            };
            save(ctx, vs, opt, &state, cfg)?;
        }
        progress.update(
            epoch as u64,
            &format!(
                "loss {train_loss:.4} acc {:.2}% test {:.2}%",
                100.0 * train_acc,
                100.0 * test_acc
            ),
        );
    }
    progress.finish();
    Ok(Outcome::Completed)
}

fn save(
    ctx: &RunContext,
    vs: &VarStore,
    opt: &Optimizer,
    state: &State,
    cfg: &TrainConfig,
) -> Result<()> {
    checkpoint::save(
        &ctx.dir,
        &named_variables(vs),
        &opt.state_tensors(),
        state,
        cfg.keep_checkpoints,
    )
    .map(|_| ())
    .with_context(|| anyhow!("epoch {}", state.epoch))
}
