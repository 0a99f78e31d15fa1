//! The experiment registry: one module per paper, one entry each, in one table.

pub mod children;
pub mod classifier;
pub mod estimators;
pub mod information;
pub mod sgd;

use estimators::{stochastic_neurons, tpsgd, wta_crs};
use information::{ib_lossy, ib_tishby, mi_synthetic};
use sgd::{diffgrad, lr_batch, sgd_noise, train_longer};

use crate::run::{Outcome, RunContext};
use anyhow::{bail, Result};
use tch::Device;
use toml::Table;

/// One evaluated split: its name and (metric, value) pairs.
pub type EvalRow = (String, Vec<(String, f64)>);

/// An experiment's evaluation of a run: the checkpoint's epoch and one row per split.
pub type EvalFn = fn(&Table, &EvalInput<'_>) -> Result<(usize, Vec<EvalRow>)>;

/// What `eval` needs besides the config.
pub struct EvalInput<'a> {
    pub run_dir: &'a std::path::Path,
    pub device: Device,
    pub seed: u64,
    pub data_dir: &'a std::path::Path,
}

pub struct Entry {
    pub name: &'static str,
    pub description: &'static str,
    /// Title of the paper the experiment reproduces (or "—" for infrastructure experiments).
    pub paper: &'static str,
    /// `experiments/<name>.toml` as compiled in, used when the file is not next to the user.
    pub defaults: &'static str,
    /// Resolves a config table into its complete typed form (all defaults filled in).
    pub normalize: fn(&Table) -> Result<Table>,
    pub train: fn(&Table, &mut RunContext) -> Result<Outcome>,
    pub eval: Option<EvalFn>,
    /// Whether `stochlab ib-analyze` applies: the experiment records ib.csv.
    pub information_plane: bool,
}

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
];

pub fn find(name: &str) -> Result<&'static Entry> {
    if let Some(e) = REGISTRY.iter().find(|e| e.name == name) {
        return Ok(e);
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
                (e.normalize)(&r.table).unwrap_or_else(|err| panic!("{}: {err}", e.name));
            }
        }
        assert!(find("clasifier")
            .err()
            .unwrap()
            .to_string()
            .contains("did you mean `classifier`"));
    }
}
