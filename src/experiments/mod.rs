//! The experiment registry: one module per paper, one entry each, in one table.

pub mod bayes;
pub mod children;
pub mod classifier;
pub mod compression;
pub mod estimators;
pub mod information;
pub mod rl;
pub mod science;
pub mod sde;
pub mod sgd;
pub mod shift;
pub mod spiking;
pub mod stability;
pub mod uncertainty;

use bayes::{bnn_bo, nngp_mixture, sgmcmc_potential};
use compression::trp;
use estimators::{stochastic_neurons, tpsgd, wta_crs};
use information::{ib_lossy, ib_tishby, mi_synthetic};
use rl::{effective_horizon, neuroevolution, twin_control};
use science::{graph_reweight, pinn_interface};
use sde::{neural_sde, score_sde, storm};
use sgd::{diffgrad, lr_batch, sgd_noise, train_longer};
use shift::{blackbox_test, dann, simplicity_bias};
use spiking::snn;
use stability::benign_oscillation;
use uncertainty::{latent_uncertainty, mpnp};

use crate::run::checkpoint::Checkpoint;
use crate::run::{Outcome, RunContext};
use anyhow::{bail, Result};
use tch::Device;
use toml::Table;

/// One evaluated split (per seed where a run trains several): its name and (metric, value)
/// pairs, in eval.csv's order.
pub type EvalRow = crate::run::metrics::NamedRow;

/// An experiment's evaluation of a run's checkpoint (its config possibly changed by
/// overrides): one row per split.
pub type EvalFn = fn(&Table, &EvalInput<'_>) -> Result<Vec<EvalRow>>;

/// What `eval` needs besides the config.
pub struct EvalInput<'a> {
    pub run_dir: &'a std::path::Path,
    /// The checkpoint to evaluate (the latest readable one).
    pub checkpoint: &'a Checkpoint,
    pub device: Device,
    pub seed: u64,
    pub data_dir: &'a std::path::Path,
}

pub struct Entry {
    pub name: &'static str,
    /// The family folder it lives in (`information`, `sgd`, …; `runner` for infrastructure).
    pub family: &'static str,
    pub description: &'static str,
    /// Title of the paper the experiment reproduces (or "—" for infrastructure experiments).
    pub paper: &'static str,
    /// `experiments/<name>.toml` as compiled in, used when the file is not next to the user.
    pub defaults: &'static str,
    /// Resolves a config table into its complete typed form (all defaults filled in).
    pub normalize: fn(&Table) -> Result<Table>,
    pub train: fn(&Table, &mut RunContext) -> Result<Outcome>,
    /// `stochlab eval`: reload the checkpoint and recompute the test metrics (None where the
    /// run keeps no single trained model).
    pub eval: Option<EvalFn>,
    /// Whether `stochlab ib-analyze` applies: the experiment records ib.csv.
    pub information_plane: bool,
    /// The paper's headline claims, checked at the end of every run (`claims.csv`).
    pub claims: &'static [crate::claims::Claim],
    /// Built-in configs besides `<name>` that `reproduce` runs as targets of their own
    /// (a paper's control, e.g. `ib-tishby-relu`).
    pub variants: &'static [&'static str],
    /// Whether `train --resume RUN train.epochs=N` can extend a finished run to more epochs.
    pub extendable: bool,
    /// Whether its models are nested classifier runs (`runs/<name>/`), each evaluable itself.
    pub nested_runs: bool,
}

/// Family folders in the order `list` shows them, with a one-line title.
pub const FAMILIES: &[(&str, &str)] = &[
    ("information", "information theory of deep learning"),
    ("sgd", "SGD noise, batch size and learning rate"),
    ("estimators", "gradient estimators and local learning"),
    ("bayes", "Bayesian neural networks and Gaussian processes"),
    ("uncertainty", "uncertainty from stochastic latents"),
    ("shift", "distribution shift and robustness"),
    ("compression", "low-rank compression during training"),
    (
        "stability",
        "large learning rates and the edge of stability",
    ),
    ("sde", "diffusion models and neural SDEs"),
    ("rl", "reinforcement learning and control"),
    ("science", "scientific models"),
    ("spiking", "spiking neural networks"),
    ("runner", "runner baselines"),
];

pub static REGISTRY: &[Entry] = &[
    classifier::ENTRY,
    diffgrad::ENTRY,
    ib_tishby::ENTRY,
    ib_lossy::ENTRY,
    mi_synthetic::ENTRY,
    train_longer::ENTRY,
    lr_batch::ENTRY,
    sgd_noise::ENTRY,
    stochastic_neurons::ENTRY,
    wta_crs::ENTRY,
    tpsgd::ENTRY,
    nngp_mixture::ENTRY,
    sgmcmc_potential::ENTRY,
    bnn_bo::ENTRY,
    mpnp::ENTRY,
    latent_uncertainty::ENTRY,
    dann::ENTRY,
    simplicity_bias::ENTRY,
    blackbox_test::ENTRY,
    trp::ENTRY,
    benign_oscillation::ENTRY,
    score_sde::ENTRY,
    neural_sde::ENTRY,
    storm::ENTRY,
    effective_horizon::ENTRY,
    pinn_interface::ENTRY,
    graph_reweight::ENTRY,
    neuroevolution::ENTRY,
    twin_control::ENTRY,
    snn::ENTRY,
];

/// One experiment run by `reproduce`: an experiment with one of its built-in configs.
#[derive(Clone, Copy)]
pub struct Target {
    /// The config name (`ib-tishby`, `ib-tishby-relu`); also the target's name.
    pub name: &'static str,
    pub entry: &'static Entry,
}

/// Every reproduction target: each experiment that reproduces a paper, and its variants.
pub fn targets() -> Vec<Target> {
    REGISTRY
        .iter()
        .filter(|e| !e.claims.is_empty())
        .flat_map(|e| {
            std::iter::once(e.name)
                .chain(e.variants.iter().copied())
                .map(move |name| Target { name, entry: e })
        })
        .collect()
}

pub fn find(name: &str) -> Result<&'static Entry> {
    if let Some(e) = REGISTRY.iter().find(|e| e.name == name) {
        return Ok(e);
    }
    if crate::config::builtin(name).is_some() {
        if let Some(e) = REGISTRY
            .iter()
            .filter(|e| name.starts_with(e.name))
            .max_by_key(|e| e.name.len())
        {
            bail!(
                "`{name}` is a config of `{}`: stochlab train {} --config {name} (or stochlab reproduce {name})",
                e.name,
                e.name
            );
        }
    }
    let names: Vec<&str> = REGISTRY.iter().map(|e| e.name).collect();
    match crate::config::closest(name, names.iter().copied()) {
        Some(c) => bail!("unknown experiment `{name}`: did you mean `{c}`? (see `stochlab list`)"),
        None => bail!(
            "unknown experiment `{name}`; available: {} (see `stochlab list`)",
            names.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_has_valid_defaults_and_smoke_sizes() {
        for e in REGISTRY {
            for smoke in [false, true] {
                let src = crate::config::Source::Embedded {
                    name: e.name,
                    text: e.defaults,
                };
                let r = crate::config::resolve(src, &[], smoke, None).unwrap();
                let mut table = r.table;
                crate::claims::split(e, &mut table).unwrap();
                (e.normalize)(&table).unwrap_or_else(|err| panic!("{}: {err}", e.name));
            }
        }
        // Every built-in config (variants, paper-scale configs) resolves for its experiment,
        // and the -full ones say so in [claims].
        for (name, text) in crate::config::BUILTIN_CONFIGS {
            let e = REGISTRY
                .iter()
                .filter(|e| name.starts_with(e.name))
                .max_by_key(|e| e.name.len())
                .unwrap_or_else(|| panic!("experiments/{name}.toml belongs to no experiment"));
            for smoke in [false, true] {
                let src = crate::config::Source::Embedded { name, text };
                let r = crate::config::resolve(src, &[], smoke, None).unwrap();
                let mut table = r.table;
                let th = crate::claims::split(e, &mut table)
                    .unwrap_or_else(|err| panic!("{name}: {err}"));
                (e.normalize)(&table).unwrap_or_else(|err| panic!("{name}: {err}"));
                let full = th.scale == crate::claims::RunScale::Full;
                assert_eq!(full, name.ends_with("-full"), "{name}: claims.scale");
            }
        }
        for t in targets() {
            assert!(
                crate::config::builtin(t.name).is_some(),
                "{}: no experiments/{}.toml",
                t.entry.name,
                t.name
            );
            let ids: Vec<&str> = t.entry.claims.iter().map(|c| c.id).collect();
            for (i, id) in ids.iter().enumerate() {
                assert!(!ids[..i].contains(id), "{}: claim {id} twice", t.entry.name);
            }
        }
        for e in REGISTRY {
            for c in e.claims {
                if let Some(v) = c.variant {
                    assert!(e.variants.contains(&v), "{}/{}: {v}", e.name, c.id);
                }
            }
            for v in e.variants {
                assert!(
                    e.claims.iter().any(|c| c.variant == Some(v)),
                    "{}: variant {v} has no claim",
                    e.name
                );
            }
            assert!(
                FAMILIES.iter().any(|(f, _)| *f == e.family),
                "{}: family {} not in FAMILIES",
                e.name,
                e.family
            );
        }
        let e = find("ib-tishby-relu").err().unwrap().to_string();
        assert!(e.contains("--config ib-tishby-relu"), "{e}");
        assert!(find("clasifier")
            .err()
            .unwrap()
            .to_string()
            .contains("did you mean `classifier`"));
    }
}
