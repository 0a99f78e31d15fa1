//! Datasets read from files: where they live under the data folder, how to get them, and their
//! checksums (the same list `make data` verifies, compiled in).

use anyhow::{bail, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Data folders searched after the one a run was given, when the user named none
/// (`--data-dir`, `STOCHLAB_DATA`): the `data/` of the repository the binary belongs to, so a
/// binary run from another folder still finds the sets `make data` fetched.
static FALLBACKS: OnceLock<Vec<PathBuf>> = OnceLock::new();

/// Sets the fallback folders (once per process; later calls are ignored).
pub fn set_fallbacks(dirs: Vec<PathBuf>) {
    let _ = FALLBACKS.set(dirs);
}

/// The `data/` folders of the binary's repository: found by walking up from the executable
/// (target/release/stochlab → the checkout) and the checkout it was built in.
pub fn repository_data_dirs() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = vec![];
    let from_exe = std::env::current_exe()
        .ok()
        .and_then(|e| e.canonicalize().ok())
        .and_then(|e| {
            e.ancestors()
                .skip(1)
                .find(|a| a.join("Cargo.toml").is_file() && a.join("data").is_dir())
                .map(|a| a.join("data"))
        });
    let built_in = Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("data"));
    for d in [from_exe, built_in].into_iter().flatten() {
        let d = d.canonicalize().unwrap_or(d);
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

/// The folders searched for datasets: `data_dir`, then the fallbacks (without repeats).
pub fn search_path(data_dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![data_dir.to_path_buf()];
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    for f in FALLBACKS.get().into_iter().flatten() {
        if !out.iter().any(|o| canon(o) == canon(f)) {
            out.push(f.clone());
        }
    }
    out
}

/// The first searched folder holding every file of `set`.
pub fn locate(data_dir: &Path, set: &FileSet) -> Option<PathBuf> {
    search_path(data_dir)
        .into_iter()
        .find(|d| set.files.iter().all(|f| d.join(set.dir).join(f).exists()))
}

pub struct FileSet {
    /// The `data.name` it serves.
    pub name: &'static str,
    /// Folder under the data folder.
    pub dir: &'static str,
    pub files: &'static [&'static str],
    /// How a user gets the files.
    pub fetch: &'static str,
}

pub const FILE_SETS: &[FileSet] = &[
    FileSet {
        name: "mnist",
        dir: "mnist",
        files: &["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"],
        fetch: "make data-mnist",
    },
    FileSet {
        name: "fashion-mnist",
        dir: "fashion-mnist",
        files: &[
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ],
        fetch: "make data-fashion-mnist",
    },
    FileSet { name: "digits", dir: "sklearn", files: &["digits.csv.gz"], fetch: "make data-sklearn" },
    FileSet { name: "iris", dir: "sklearn", files: &["iris.csv"], fetch: "make data-sklearn" },
    FileSet { name: "wine", dir: "sklearn", files: &["wine_data.csv"], fetch: "make data-sklearn" },
    FileSet { name: "breast-cancer", dir: "sklearn", files: &["breast_cancer.csv"], fetch: "make data-sklearn" },
    FileSet { name: "mnist5k", dir: "mnist5k", files: &["mnist_5k.csv.gz"], fetch: "make data-mnist5k" },
    FileSet {
        name: "cifar10",
        dir: "cifar10",
        files: &["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"],
        fetch: "not in any package registry: download the CIFAR-10 binary version (cifar-10-binary.tar.gz) and put the files of its cifar-10-batches-bin folder in",
    },
];

const CHECKSUMS: &str = include_str!("../../scripts/datasets.sha256");

/// The expected sha256 of a file, by its path relative to the data folder.
pub fn expected_sha256(rel: &str) -> Option<&'static str> {
    CHECKSUMS
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once("  "))
        .find(|(_, r)| r.trim() == rel)
        .map(|(s, _)| s)
}

pub fn file_set(name: &str) -> Option<&'static FileSet> {
    FILE_SETS.iter().find(|f| f.name == name)
}

/// The paths of a dataset's files, from the first searched folder that holds them all, or an
/// error naming the first missing file, every folder looked in, and the fix.
pub fn require(data_dir: &Path, set: &FileSet) -> Result<Vec<PathBuf>> {
    if let Some(dir) = locate(data_dir, set) {
        return Ok(set
            .files
            .iter()
            .map(|f| dir.join(set.dir).join(f))
            .collect());
    }
    let looked = search_path(data_dir);
    let missing = set
        .files
        .iter()
        .find(|f| !data_dir.join(set.dir).join(f).exists())
        .map_or_else(
            || data_dir.join(set.dir),
            |f| data_dir.join(set.dir).join(f),
        );
    let how = if set.fetch.starts_with("make") {
        format!("fetch it with `{}` (or `make data`), or point --data-dir / STOCHLAB_DATA at the folder holding {}/", set.fetch, set.dir)
    } else {
        format!("{} {}", set.fetch, data_dir.join(set.dir).display())
    };
    let places: Vec<String> = looked
        .iter()
        .map(|d| d.join(set.dir).display().to_string())
        .collect();
    bail!(
        "dataset `{}` is missing {} (looked in {}): {how}",
        set.name,
        missing.display(),
        places.join(", ")
    );
}

/// State of one file for `stochlab data list`.
#[derive(Debug, PartialEq, Eq)]
pub enum FileState {
    Missing,
    Verified,
    Mismatch,
    /// Present; no checksum is known (user-provided data such as CIFAR-10).
    Unchecked,
}

pub fn file_state(data_dir: &Path, dir: &str, file: &str) -> FileState {
    let path = data_dir.join(dir).join(file);
    let Ok(bytes) = std::fs::read(&path) else {
        return FileState::Missing;
    };
    match expected_sha256(&format!("{dir}/{file}")) {
        None => FileState::Unchecked,
        Some(want) => {
            let got = Sha256::digest(&bytes);
            let hex: String = got.iter().map(|b| format!("{b:02x}")).collect();
            if hex == want {
                FileState::Verified
            } else {
                FileState::Mismatch
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registry_file_has_a_checksum_and_missing_files_name_the_fix() {
        for set in FILE_SETS.iter().filter(|s| s.fetch.starts_with("make")) {
            for f in set.files {
                assert!(
                    expected_sha256(&format!("{}/{f}", set.dir)).is_some(),
                    "{f}"
                );
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let e = require(dir.path(), file_set("mnist").unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("make data-mnist") && e.contains("train-images-idx3-ubyte"),
            "{e}"
        );
        let e = require(dir.path(), file_set("cifar10").unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("cifar-10-batches-bin"), "{e}");
    }

    #[test]
    fn checksum_states() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            file_state(dir.path(), "sklearn", "iris.csv"),
            FileState::Missing
        );
        std::fs::create_dir_all(dir.path().join("sklearn")).unwrap();
        std::fs::write(dir.path().join("sklearn/iris.csv"), "1,2\n").unwrap();
        assert_eq!(
            file_state(dir.path(), "sklearn", "iris.csv"),
            FileState::Mismatch
        );
        std::fs::create_dir_all(dir.path().join("cifar10")).unwrap();
        std::fs::write(dir.path().join("cifar10/test_batch.bin"), "x").unwrap();
        assert_eq!(
            file_state(dir.path(), "cifar10", "test_batch.bin"),
            FileState::Unchecked
        );
    }
}
