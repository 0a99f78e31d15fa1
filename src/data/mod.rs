//! Datasets by name. A `Dataset` holds its splits as tensors on the run's device (moved there
//! once); batches are `index_select`s on a shuffled index, never per-batch host copies.

pub mod synthetic;

use crate::rng::{self, Stream};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// `[data]` in an experiment config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Dataset name: two-moons, blobs, xor (see `stochlab data list` once real sets exist).
    pub name: String,
    /// Samples generated for training / testing (synthetic sets).
    pub n_train: usize,
    pub n_test: usize,
    /// Standard deviation of the Gaussian noise added to the inputs (synthetic sets).
    pub noise: f64,
    /// Classes and input dimension (blobs).
    pub n_classes: usize,
    pub dim: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            name: "two-moons".into(),
            n_train: 2000,
            n_test: 1000,
            noise: 0.2,
            n_classes: 3,
            dim: 2,
        }
    }
}

impl crate::config::Check for DataConfig {
    fn check(&self) -> Result<()> {
        if !NAMES.contains(&self.name.as_str()) {
            let hint = crate::config::closest(&self.name, NAMES.iter().copied())
                .map(|c| format!("did you mean `{c}`? "))
                .unwrap_or_default();
            bail!(
                "unknown dataset `data.name = {}`: {hint}known datasets: {}",
                self.name,
                NAMES.join(", ")
            );
        }
        if self.n_train == 0 || self.n_test == 0 {
            bail!("data.n_train and data.n_test must be at least 1");
        }
        Ok(())
    }
}

/// Inputs `x` (float) and integer labels `y`, on one device.
pub struct Split {
    pub x: Tensor,
    pub y: Tensor,
}

impl Split {
    pub fn len(&self) -> i64 {
        self.y.size()[0]
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn to(&self, device: Device) -> Split {
        Split {
            x: self.x.to_device(device),
            y: self.y.to_device(device),
        }
    }

    /// Mini-batch index tensors over this split. `batch_size = 0` means the full batch. The
    /// order is a permutation drawn from the global CPU generator (seed it first) when
    /// shuffling, then moved to the data's device once: CPU and CUDA runs see the same batches.
    pub fn batches(&self, batch_size: i64, shuffle: bool, drop_last: bool) -> Batches {
        let n = self.len();
        let device = self.y.device();
        let order = if shuffle {
            Tensor::randperm(n, (Kind::Int64, Device::Cpu)).to_device(device)
        } else {
            Tensor::arange(n, (Kind::Int64, device))
        };
        let batch = if batch_size <= 0 {
            n
        } else {
            batch_size.min(n)
        };
        Batches {
            order,
            batch,
            n,
            pos: 0,
            drop_last,
        }
    }

    /// The rows of a batch.
    pub fn take(&self, index: &Tensor) -> (Tensor, Tensor) {
        (self.x.index_select(0, index), self.y.index_select(0, index))
    }
}

pub struct Batches {
    order: Tensor,
    batch: i64,
    n: i64,
    pos: i64,
    drop_last: bool,
}

impl Batches {
    /// Number of batches this iterator yields in total.
    pub fn count_total(&self) -> usize {
        if self.batch == 0 {
            return 0;
        }
        let full = self.n / self.batch;
        (full + i64::from(!self.drop_last && self.n % self.batch != 0)) as usize
    }
}

impl Iterator for Batches {
    type Item = Tensor;
    fn next(&mut self) -> Option<Tensor> {
        let left = self.n - self.pos;
        if left <= 0 || (self.drop_last && left < self.batch) {
            return None;
        }
        let len = left.min(self.batch);
        let idx = self.order.narrow(0, self.pos, len);
        self.pos += len;
        Some(idx)
    }
}

pub struct Dataset {
    pub name: String,
    pub train: Split,
    pub test: Split,
    pub n_classes: i64,
    /// Shape of one input: [d] for vectors, [c, h, w] for images.
    pub input_shape: Vec<i64>,
}

impl Dataset {
    pub fn input_numel(&self) -> i64 {
        self.input_shape.iter().product()
    }
}

/// Every dataset name `data.name` accepts.
pub const NAMES: &[&str] = &["two-moons", "blobs", "xor"];

/// Builds or loads the named dataset on `device`. Synthetic sets are drawn on the CPU from the
/// run seed, so CPU and CUDA runs see the same data.
pub fn load(cfg: &DataConfig, _data_dir: &Path, device: Device, seed: u64) -> Result<Dataset> {
    use crate::config::Check;
    cfg.check()?;
    rng::reseed(seed, Stream::Data, 0, 0);
    let ds = match cfg.name.as_str() {
        "two-moons" => synthetic::two_moons(cfg),
        "blobs" => synthetic::blobs(cfg)?,
        "xor" => synthetic::xor(cfg),
        other => unreachable!("checked above: {other}"),
    };
    Ok(Dataset {
        train: ds.train.to(device),
        test: ds.test.to(device),
        ..ds
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(n: i64) -> Split {
        Split {
            x: Tensor::arange(n, (Kind::Float, Device::Cpu)).unsqueeze(1),
            y: Tensor::arange(n, (Kind::Int64, Device::Cpu)),
        }
    }

    #[test]
    fn batches_cover_every_row_once_and_respect_drop_last() {
        let _rng = crate::rng::serial();
        let s = split(10);
        tch::manual_seed(3);
        let mut seen: Vec<i64> = s
            .batches(4, true, false)
            .flat_map(|i| Vec::<i64>::try_from(&i).unwrap())
            .collect();
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        let b = s.batches(4, true, true);
        assert_eq!(b.count_total(), 2);
        assert_eq!(b.count(), 2);
        assert_eq!(s.batches(4, false, false).count_total(), 3);
        let full: Vec<Tensor> = s.batches(0, false, false).collect();
        assert_eq!(full.len(), 1);
        assert_eq!(full[0].size(), vec![10]);
    }

    #[test]
    fn same_seed_same_batches() {
        let _rng = crate::rng::serial();
        let s = split(50);
        let order = |seed| {
            tch::manual_seed(seed);
            s.batches(8, true, false)
                .map(|i| Vec::<i64>::try_from(&i).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(order(1), order(1));
        assert_ne!(order(1), order(2));
    }

    #[test]
    fn unknown_dataset_names_the_closest() {
        let _rng = crate::rng::serial();
        let cfg = DataConfig {
            name: "two-moon".into(),
            ..Default::default()
        };
        let e = load(&cfg, Path::new("data"), Device::Cpu, 0)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("did you mean `two-moons`"), "{e}");
    }
}
