//! Checkpoints: `checkpoints/<tag>/{model.safetensors, optim.safetensors, state.json}` and a
//! `checkpoints/latest` pointer. A checkpoint is written into a temp folder and renamed into
//! place before the pointer moves, so an interrupted or failed save (disk full) leaves the
//! previous checkpoint intact and the pointer never names a half-written one. At least two
//! checkpoints are kept, the latest and the one before it: when the latest cannot be read (a
//! disk error, a file truncated by hand), resuming falls back to the previous one and says so.

use super::fsutil::write_atomic;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

pub const DIR: &str = "checkpoints";
const LATEST: &str = "latest";
const MODEL: &str = "model.safetensors";
const OPTIM: &str = "optim.safetensors";
const STATE: &str = "state.json";

/// Where a training loop stands, and what it needs to continue exactly. Randomness needs no
/// saved generator state: loops reseed from (seed, epoch, step), see `train::rng`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct State {
    /// Completed epochs.
    pub epoch: usize,
    /// Steps already taken in the epoch in progress (0 at an epoch boundary).
    pub step_in_epoch: usize,
    pub global_step: u64,
    /// Rows of metrics.csv that belong to this checkpoint; later rows are dropped on resume.
    pub metrics_rows: usize,
    pub seed: u64,
    /// Optimizer scalars (step counts, name): its tensors are in optim.safetensors.
    pub optimizer: serde_json::Value,
    /// The loop's partial-epoch accumulators.
    pub loop_state: serde_json::Value,
}

pub struct Checkpoint {
    pub dir: PathBuf,
}

impl Checkpoint {
    pub fn state(&self) -> Result<State> {
        let p = self.dir.join(STATE);
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is corrupt", p.display()))
    }
    pub fn model_tensors(&self, device: Device) -> Result<Vec<(String, Tensor)>> {
        read_tensors(&self.dir.join(MODEL), device)
    }
    pub fn optim_tensors(&self, device: Device) -> Result<Vec<(String, Tensor)>> {
        read_tensors(&self.dir.join(OPTIM), device)
    }
}

/// Saves a checkpoint and keeps the newest `keep` of them (never fewer than two).
pub fn save(
    run_dir: &Path,
    model: &[(String, Tensor)],
    optim: &[(String, Tensor)],
    state: &State,
    keep: usize,
) -> Result<PathBuf> {
    let root = run_dir.join(DIR);
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let tag = format!("e{:05}-s{:07}", state.epoch, state.step_in_epoch);
    let tmp = root.join(format!(".tmp-{tag}"));
    let dest = root.join(&tag);
    let _ = std::fs::remove_dir_all(&tmp);
    let written = (|| -> Result<()> {
        std::fs::create_dir_all(&tmp)?;
        write_tensors(&tmp.join(MODEL), model)?;
        write_tensors(&tmp.join(OPTIM), optim)?;
        write_atomic(
            &tmp.join(STATE),
            serde_json::to_string_pretty(state)?.as_bytes(),
        )?;
        if dest.exists() {
            std::fs::remove_dir_all(&dest)?;
        }
        std::fs::rename(&tmp, &dest)?;
        write_atomic(&root.join(LATEST), tag.as_bytes())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.context(format!("saving checkpoint {}", dest.display())));
    }
    prune(&root, keep.max(2))?;
    Ok(dest)
}

/// The newest readable checkpoint, or None when the run never wrote one. `note` says which
/// newer checkpoints could not be read and were passed over.
pub struct Found {
    pub checkpoint: Checkpoint,
    pub tag: String,
    pub note: Option<String>,
}

/// Whether a checkpoint folder can be resumed from: its state parses and its tensor files read.
fn readable(dir: &Path) -> Result<()> {
    let ck = Checkpoint {
        dir: dir.to_path_buf(),
    };
    ck.state()?;
    for f in [MODEL, OPTIM] {
        Tensor::read_safetensors(dir.join(f))
            .map_err(|e| anyhow!("{} is missing or corrupt: {e}", dir.join(f).display()))?;
    }
    Ok(())
}

/// The checkpoint to resume from: the one `checkpoints/latest` names when it reads, otherwise
/// the newest one before it that does. With `repair`, unreadable ones are moved aside
/// (`checkpoints/corrupt-<tag>`, kept for inspection, never picked again) and the pointer is
/// set to the one found. None when the run never wrote a checkpoint; an error when none reads.
pub fn find(run_dir: &Path, repair: bool) -> Result<Option<Found>> {
    let root = run_dir.join(DIR);
    let pointed = std::fs::read_to_string(root.join(LATEST))
        .ok()
        .map(|t| t.trim().to_string());
    let mut tags: Vec<String> = std::fs::read_dir(&root)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with('e'))
                .collect()
        })
        .unwrap_or_default();
    tags.sort();
    tags.reverse();
    // The pointer's tag first (it is the latest by construction), then newest to oldest.
    if let Some(p) = &pointed {
        tags.retain(|t| t != p);
        tags.insert(0, p.clone());
    }
    if tags.is_empty() {
        return Ok(None);
    }
    let mut skipped: Vec<(String, String)> = vec![];
    for tag in &tags {
        let dir = root.join(tag);
        let ok = if dir.is_dir() {
            readable(&dir)
        } else {
            Err(anyhow!("{} is missing", dir.display()))
        };
        match ok {
            Ok(()) => {
                let note = (!skipped.is_empty()).then(|| {
                    let bad: Vec<String> = skipped
                        .iter()
                        .map(|(t, why)| format!("checkpoint {t} cannot be read ({why})"))
                        .collect();
                    format!(
                        "{}; falling back to the previous checkpoint {tag}",
                        bad.join("; ")
                    )
                });
                if repair && !skipped.is_empty() {
                    for (t, _) in &skipped {
                        let from = root.join(t);
                        if from.is_dir() {
                            let _ = std::fs::rename(&from, root.join(format!("corrupt-{t}")));
                        }
                    }
                    write_atomic(&root.join(LATEST), tag.as_bytes())?;
                }
                return Ok(Some(Found {
                    checkpoint: Checkpoint { dir },
                    tag: tag.clone(),
                    note,
                }));
            }
            Err(e) => skipped.push((tag.clone(), crate::run::one_line(&e))),
        }
    }
    bail!(
        "{} has no readable checkpoint: {}; start the run again",
        run_dir.display(),
        skipped
            .iter()
            .map(|(t, why)| format!("{t}: {why}"))
            .collect::<Vec<_>>()
            .join("; ")
    )
}

/// The checkpoint to evaluate or resume from (see `find`), or an error when there is none.
pub fn latest(run_dir: &Path) -> Result<Found> {
    find(run_dir, false)?.ok_or_else(|| {
        anyhow!(
            "{} has no checkpoint yet (no {}); the run stopped before its first checkpoint, start it again",
            run_dir.display(),
            run_dir.join(DIR).join(LATEST).display()
        )
    })
}

fn prune(root: &Path, keep: usize) -> Result<()> {
    let mut tags: Vec<String> = std::fs::read_dir(root)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with('e'))
        .collect();
    tags.sort();
    let n = tags.len();
    for old in tags.into_iter().take(n.saturating_sub(keep)) {
        std::fs::remove_dir_all(root.join(&old))
            .with_context(|| format!("removing old checkpoint {old}"))?;
    }
    Ok(())
}

fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let cpu: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.detach().to_device(Device::Cpu).contiguous()))
        .collect();
    Tensor::write_safetensors(&cpu, path).with_context(|| format!("writing {}", path.display()))
}

pub fn read_tensors(path: &Path, device: Device) -> Result<Vec<(String, Tensor)>> {
    let tensors = Tensor::read_safetensors(path)
        .map_err(|e| anyhow!("{} is missing or corrupt: {e}", path.display()))?;
    Ok(tensors
        .into_iter()
        .map(|(n, t)| (n, t.to_device(device)))
        .collect())
}

/// Copies saved values into existing variables in place (keeping any views onto them, such as
/// an optimizer's flat parameter buffer), checking that names and shapes match.
pub fn copy_into(
    vars: &HashMap<String, Tensor>,
    saved: Vec<(String, Tensor)>,
    what: &str,
) -> Result<()> {
    let saved: HashMap<String, Tensor> = saved.into_iter().collect();
    for (name, var) in vars {
        let src = saved.get(name).ok_or_else(|| {
            anyhow!("{what} has no tensor `{name}`: it was saved by a different model config")
        })?;
        if src.size() != var.size() {
            bail!(
                "{what}: `{name}` has shape {:?}, the model expects {:?}",
                src.size(),
                var.size()
            );
        }
        tch::no_grad(|| var.shallow_clone().copy_(src));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(epoch: usize) -> State {
        State {
            epoch,
            step_in_epoch: 0,
            global_step: 10 * epoch as u64,
            metrics_rows: epoch,
            seed: 1,
            optimizer: serde_json::json!({"step": 3}),
            loop_state: serde_json::Value::Null,
        }
    }

    #[test]
    fn save_load_prune_and_copy_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let w = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
        let model = vec![("w".to_string(), w.shallow_clone())];
        for e in 1..=3 {
            save(dir.path(), &model, &[], &state(e), 2).unwrap();
        }
        let ck = latest(dir.path()).unwrap().checkpoint;
        assert_eq!(ck.state().unwrap(), state(3));
        let kept = std::fs::read_dir(dir.path().join(DIR)).unwrap().count();
        assert_eq!(kept, 3, "two checkpoints and the pointer");
        save(dir.path(), &model, &[], &state(4), 1).unwrap();
        let kept = std::fs::read_dir(dir.path().join(DIR)).unwrap().count();
        assert_eq!(kept, 3, "keep = 1 still keeps the previous checkpoint");

        let target = Tensor::zeros([3], (tch::Kind::Float, Device::Cpu));
        let view = target.shallow_clone();
        let vars: HashMap<String, Tensor> = [("w".to_string(), target)].into();
        copy_into(&vars, ck.model_tensors(Device::Cpu).unwrap(), "model").unwrap();
        assert_eq!(Vec::<f32>::try_from(&view).unwrap(), vec![1.0, 2.0, 3.0]);

        let wrong: HashMap<String, Tensor> = [(
            "v".to_string(),
            Tensor::zeros([3], (tch::Kind::Float, Device::Cpu)),
        )]
        .into();
        let e = copy_into(&wrong, ck.model_tensors(Device::Cpu).unwrap(), "model").unwrap_err();
        assert!(e.to_string().contains("no tensor `v`"));
    }

    #[test]
    fn missing_or_corrupt_checkpoints_are_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(latest(dir.path())
            .err()
            .unwrap()
            .to_string()
            .contains("no checkpoint yet"));
        assert!(find(dir.path(), true).unwrap().is_none());
        let p = dir.path().join("bad.safetensors");
        std::fs::write(&p, b"not a tensor file").unwrap();
        assert!(read_tensors(&p, Device::Cpu)
            .unwrap_err()
            .to_string()
            .contains("missing or corrupt"));
    }

    #[test]
    fn a_corrupt_latest_checkpoint_falls_back_to_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let model = vec![("w".to_string(), Tensor::from_slice(&[1.0f32]))];
        for e in 1..=2 {
            save(dir.path(), &model, &[], &state(e), 1).unwrap();
        }
        let latest_dir = dir.path().join(DIR).join("e00002-s0000000");
        std::fs::write(latest_dir.join(MODEL), b"truncated").unwrap();
        let found = find(dir.path(), false).unwrap().unwrap();
        assert_eq!(found.tag, "e00001-s0000000");
        let note = found.note.unwrap();
        assert!(
            note.contains("checkpoint e00002-s0000000 cannot be read")
                && note.contains("falling back to the previous checkpoint e00001-s0000000"),
            "{note}"
        );
        assert!(latest_dir.exists(), "without repair nothing moves");
        let found = find(dir.path(), true).unwrap().unwrap();
        assert_eq!(found.checkpoint.state().unwrap(), state(1));
        assert!(!latest_dir.exists());
        assert!(dir
            .path()
            .join(DIR)
            .join("corrupt-e00002-s0000000")
            .exists());
        let again = find(dir.path(), false).unwrap().unwrap();
        assert!(again.note.is_none() && again.tag == "e00001-s0000000");
        // No readable checkpoint at all: an error naming each.
        std::fs::write(found.checkpoint.dir.join(STATE), b"{").unwrap();
        let e = find(dir.path(), false).err().unwrap().to_string();
        assert!(
            e.contains("no readable checkpoint") && e.contains("e00001"),
            "{e}"
        );
    }
}
