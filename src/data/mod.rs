//! Datasets by name. A `Dataset` holds its splits as tensors on the run's device (moved there
//! once); batches are `index_select`s on a shuffled index, never per-batch host copies.
//!
//! Loading goes: source (generated, or parsed from files under the data folder) → a test split
//! for sets without one → validation split → training subset (all seeded, stratified, from
//! `data.split_seed`) → normalisation with training-set statistics → device.

pub mod augment;
pub mod corrupt;
pub mod files;
pub mod formats;
pub mod gapped;
pub mod gp;
pub mod irregular;
pub mod keypoints;
pub mod real;
pub mod ring;
pub mod shapes;
pub mod spikes;
pub mod split;
pub mod spmotif;
pub mod synthetic;
pub mod tishby;
pub mod uea;

use crate::rng::{self, Stream};
use anyhow::{bail, Result};
pub use augment::AugmentConfig;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::{Device, Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Normalize {
    /// Per channel for images, per feature for real tables, none for generated sets.
    Auto,
    None,
    /// Zero mean, unit std per channel (images) using training statistics.
    Channel,
    /// Zero mean, unit std per input feature using training statistics.
    Feature,
}

/// `[data]` in an experiment config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Dataset name; `stochlab data list` shows them all.
    pub name: String,
    /// Samples generated for training / testing (generated sets).
    pub n_train: usize,
    pub n_test: usize,
    /// Standard deviation of the Gaussian noise added to the inputs (generated sets).
    pub noise: f64,
    /// Classes and input dimension (blobs, lms).
    pub n_classes: usize,
    pub dim: usize,
    /// Rotation of the generated set in degrees (two-moons: a shifted domain).
    pub rotation: f64,
    /// Slabs per coordinate and margin (lms, the simplicity-bias dataset).
    pub slabs: usize,
    pub margin: f64,
    /// File for `name = "csv"`: numeric columns, integer label last.
    pub path: String,
    /// Held-out test fraction for sets without a standard test split.
    pub test_fraction: f64,
    /// Fraction of the training set held out for validation (0 = none).
    pub val_fraction: f64,
    /// Train on a stratified subset of this many examples (0 = all).
    pub train_subset: usize,
    /// Seed of the test/validation/subset choices, kept apart from the run seed so that runs
    /// with different seeds are compared on the same examples.
    pub split_seed: u64,
    pub normalize: Normalize,
    pub augment: AugmentConfig,
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
            rotation: 0.0,
            slabs: 5,
            margin: 0.1,
            path: String::new(),
            test_fraction: 0.2,
            val_fraction: 0.0,
            train_subset: 0,
            split_seed: 0,
            normalize: Normalize::Auto,
            augment: AugmentConfig::default(),
        }
    }
}

/// Every dataset name `data.name` accepts: generated ones first.
pub const GENERATED: &[&str] = &["two-moons", "blobs", "xor", "lms"];
pub const FROM_FILES: &[&str] = &[
    "mnist",
    "fashion-mnist",
    "mnist-blend",
    "cifar10",
    "digits",
    "mnist5k",
    "iris",
    "wine",
    "breast-cancer",
    "csv",
];

pub fn names() -> impl Iterator<Item = &'static str> {
    GENERATED.iter().chain(FROM_FILES).copied()
}

impl crate::config::Check for DataConfig {
    fn check(&self) -> Result<()> {
        if !names().any(|n| n == self.name) {
            let hint = crate::config::closest(&self.name, names())
                .map(|c| format!("did you mean `{c}`? "))
                .unwrap_or_default();
            bail!(
                "unknown dataset `data.name = {}`: {hint}known datasets: {}",
                self.name,
                names().collect::<Vec<_>>().join(", ")
            );
        }
        if self.n_train == 0 || self.n_test == 0 {
            bail!("data.n_train and data.n_test must be at least 1");
        }
        for (key, f) in [
            ("test_fraction", self.test_fraction),
            ("val_fraction", self.val_fraction),
        ] {
            if !(0.0..1.0).contains(&f) {
                bail!("data.{key} must be in [0, 1), got {f}");
            }
        }
        if self.name == "csv" && self.path.is_empty() {
            bail!("data.name = \"csv\" needs data.path = \"file.csv\" (numeric columns, integer label last)");
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

    /// The rows `idx` (host indices) as a new split.
    pub fn select(&self, idx: &[usize]) -> Split {
        let i: Vec<i64> = idx.iter().map(|&v| v as i64).collect();
        let t = Tensor::from_slice(&i).to_device(self.y.device());
        Split {
            x: self.x.index_select(0, &t),
            y: self.y.index_select(0, &t),
        }
    }

    /// Labels on the host.
    pub fn labels(&self) -> Vec<i64> {
        Vec::try_from(&self.y.to_device(Device::Cpu)).unwrap_or_default()
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

/// Where a dataset's numbers come from (decides what `normalize = "auto"` does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Generated,
    Image,
    Tabular,
}

/// A dataset as its source gives it, on the host, before splitting and normalising.
pub struct Raw {
    pub train: Split,
    pub test: Option<Split>,
    pub n_classes: i64,
    pub input_shape: Vec<i64>,
    pub kind: SourceKind,
}

pub struct Dataset {
    pub name: String,
    pub train: Split,
    pub val: Option<Split>,
    pub test: Split,
    pub n_classes: i64,
    /// Shape of one input: [d] for vectors, [c, h, w] for images.
    pub input_shape: Vec<i64>,
    /// Applied to training batches.
    pub augment: AugmentConfig,
    /// What a zero input (a black pixel) became after normalisation, per channel: the fill for
    /// pixels that augmentation moves in from outside the image.
    pub background: Tensor,
}

impl Dataset {
    /// A training batch's inputs after augmentation (unchanged when augmentation is off).
    pub fn augmented(&self, x: Tensor) -> Tensor {
        if self.augment.is_identity() {
            x
        } else {
            self.augment.apply(&x, &self.background)
        }
    }
}

/// The source of a named dataset, on the host.
fn source(cfg: &DataConfig, data_dir: &Path, seed: u64) -> Result<Raw> {
    // Generated sets are drawn on the CPU from the run seed: CPU and CUDA runs see the same data.
    rng::reseed(seed, Stream::Data, 0, 0);
    Ok(match cfg.name.as_str() {
        "two-moons" => synthetic::two_moons(cfg),
        "blobs" => synthetic::blobs(cfg)?,
        "xor" => synthetic::xor(cfg),
        "lms" => synthetic::lms(cfg)?,
        "mnist" | "fashion-mnist" => real::idx_images(&cfg.name, data_dir)?,
        "mnist-blend" => real::mnist_blend(data_dir, cfg.split_seed)?,
        "cifar10" => real::cifar10(data_dir)?,
        "digits" => real::digits(data_dir)?,
        "mnist5k" => real::mnist5k(data_dir)?,
        "iris" | "wine" | "breast-cancer" => real::sklearn_table(&cfg.name, data_dir)?,
        "csv" => real::user_csv(&cfg.path)?,
        other => unreachable!("names are checked before loading: {other}"),
    })
}

/// Builds or loads the named dataset on `device`.
pub fn load(cfg: &DataConfig, data_dir: &Path, device: Device, seed: u64) -> Result<Dataset> {
    use crate::config::Check;
    cfg.check()?;
    let raw = source(cfg, data_dir, seed)?;
    cfg.augment.check(&raw.input_shape)?;
    let (train, test) = match raw.test {
        Some(test) => (raw.train, test),
        None => {
            let (rest, held) = split::stratified_split(
                &raw.train.labels(),
                cfg.test_fraction.max(1e-9),
                cfg.split_seed,
            );
            if held.is_empty() {
                bail!(
                    "data.test_fraction = {} leaves no test examples",
                    cfg.test_fraction
                );
            }
            (raw.train.select(&rest), raw.train.select(&held))
        }
    };
    let (mut train, val) = if cfg.val_fraction > 0.0 {
        let (rest, held) =
            split::stratified_split(&train.labels(), cfg.val_fraction, cfg.split_seed ^ 1);
        (train.select(&rest), Some(train.select(&held)))
    } else {
        (train, None)
    };
    if cfg.train_subset > 0 {
        if cfg.train_subset as i64 > train.len() {
            bail!(
                "data.train_subset = {} but only {} training examples remain",
                cfg.train_subset,
                train.len()
            );
        }
        train = train.select(&split::stratified_subset(
            &train.labels(),
            cfg.train_subset,
            cfg.split_seed ^ 2,
        ));
    }
    let mode = match (cfg.normalize, raw.kind) {
        (Normalize::Auto, SourceKind::Image) => Normalize::Channel,
        (Normalize::Auto, SourceKind::Tabular) => Normalize::Feature,
        (Normalize::Auto, SourceKind::Generated) => Normalize::None,
        (m, _) => m,
    };
    let (shift, scale) = statistics(&train.x, mode);
    let norm = |s: Split| Split {
        x: ((s.x - &shift) / &scale).to_device(device),
        y: s.y.to_device(device),
    };
    let background = (-&shift / &scale).to_device(device);
    Ok(Dataset {
        name: cfg.name.clone(),
        train: norm(train),
        val: val.map(norm),
        test: norm(test),
        n_classes: raw.n_classes,
        input_shape: raw.input_shape,
        augment: cfg.augment.clone(),
        background,
    })
}

/// (mean, std) to normalise with, broadcastable against the inputs; std 0 becomes 1.
fn statistics(x: &Tensor, mode: Normalize) -> (Tensor, Tensor) {
    let dims: Vec<i64> = match (mode, x.dim()) {
        (Normalize::Channel, 4) => vec![0, 2, 3],
        (Normalize::Channel | Normalize::Feature, _) => vec![0],
        _ => return (Tensor::from(0.0f32), Tensor::from(1.0f32)),
    };
    let mean = x.mean_dim(dims.as_slice(), true, Kind::Float);
    let std = x.std_dim(dims.as_slice(), false, true);
    let std = std.where_self(&std.gt(1e-8), &std.ones_like());
    (mean, std)
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

    /// A user CSV with 3 classes in proportions 5:3:2 and a constant column.
    fn csv_file(dir: &Path) -> String {
        let mut text = String::from("a,b,const,label\n");
        for i in 0..200 {
            let label = match i % 10 {
                0..=4 => 0,
                5..=7 => 1,
                _ => 2,
            };
            text += &format!(
                "{},{},7,{}\n",
                i as f32 * 0.5,
                (i % 7) as f32,
                label * 3 + 1
            );
        }
        let p = dir.join("t.csv");
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    fn class_counts(s: &Split) -> Vec<i64> {
        let mut c = vec![0; 3];
        s.labels().iter().for_each(|&y| c[y as usize] += 1);
        c
    }

    #[test]
    fn pipeline_splits_subsets_and_normalises_with_training_statistics() {
        let _rng = crate::rng::serial();
        let dir = tempfile::tempdir().unwrap();
        let cfg = DataConfig {
            name: "csv".into(),
            path: csv_file(dir.path()),
            test_fraction: 0.2,
            val_fraction: 0.25,
            train_subset: 60,
            ..Default::default()
        };
        let ds = load(&cfg, dir.path(), Device::Cpu, 0).unwrap();
        assert_eq!(ds.n_classes, 3, "labels 1, 4, 7 are remapped to 0, 1, 2");
        assert_eq!(ds.test.len(), 40);
        assert_eq!(ds.val.as_ref().unwrap().len(), 40);
        assert_eq!(ds.train.len(), 60);
        assert_eq!(class_counts(&ds.train), vec![30, 18, 12]);
        assert_eq!(class_counts(&ds.test), vec![20, 12, 8]);
        // Tabular data are standardised per feature with the training split's statistics.
        let mean = ds.train.x.mean_dim([0i64].as_slice(), false, Kind::Float);
        assert!(mean.abs().max().double_value(&[]) < 1e-5);
        let constant = ds.train.x.select(1, 2);
        assert_eq!(
            constant.abs().max().double_value(&[]),
            0.0,
            "zero-variance columns are centred, not divided"
        );
        // Same split seed: same examples, whatever the run seed.
        let again = load(&cfg, dir.path(), Device::Cpu, 99).unwrap();
        assert!(again.test.x.equal(&ds.test.x));
        let other = load(
            &DataConfig {
                split_seed: 1,
                ..cfg.clone()
            },
            dir.path(),
            Device::Cpu,
            0,
        )
        .unwrap();
        assert!(!other.test.x.equal(&ds.test.x));
        let e = load(
            &DataConfig {
                train_subset: 500,
                ..cfg
            },
            dir.path(),
            Device::Cpu,
            0,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("only 120 training examples"), "{e}");
    }

    #[test]
    fn missing_and_corrupt_files_are_named() {
        let _rng = crate::rng::serial();
        let dir = tempfile::tempdir().unwrap();
        let cfg = |name: &str| DataConfig {
            name: name.into(),
            ..Default::default()
        };
        let e = load(&cfg("mnist"), dir.path(), Device::Cpu, 0)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("make data-mnist"), "{e}");
        std::fs::create_dir_all(dir.path().join("mnist")).unwrap();
        for f in files::file_set("mnist").unwrap().files {
            std::fs::write(
                dir.path().join("mnist").join(f),
                [0u8, 0, 8, 1, 0, 0, 0, 9, 1],
            )
            .unwrap();
        }
        let e = load(&cfg("mnist"), dir.path(), Device::Cpu, 0)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("train-images-idx3-ubyte") && e.contains("truncated"),
            "{e}"
        );
        let e = load(
            &DataConfig {
                path: "/no/such.csv".into(),
                ..cfg("csv")
            },
            dir.path(),
            Device::Cpu,
            0,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("/no/such.csv"), "{e}");
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
