//! A run: its directory `results/<experiment>/<YYYYmmdd-HHMMSS>-<id>/`, provenance
//! (`run.json`), resolved config (`config.toml`), metrics (`metrics.csv`), checkpoints, progress
//! and the interrupt flag. Experiments receive a `RunContext` and never touch paths themselves.

pub mod checkpoint;
pub mod fsutil;
pub mod metrics;
pub mod progress;
pub mod signals;
pub mod table;

use anyhow::{anyhow, bail, Context, Result};
use metrics::{Cell, Keep, MetricsWriter};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::Device;

pub const RUN_JSON: &str = "run.json";
pub const CONFIG_TOML: &str = "config.toml";
pub const METRICS_CSV: &str = "metrics.csv";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Completed,
    Failed,
    Interrupted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
        }
    }
}

/// How a training loop ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    /// Stopped by this signal after checkpointing.
    Interrupted(i32),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resume {
    pub at: String,
    pub command_line: Vec<String>,
    pub device: String,
    pub from_epoch: usize,
    /// The checkpoint resumed from (`checkpoints/<tag>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// What else happened: a fallback past an unreadable checkpoint, an extension to more epochs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// run.json's `final_metrics`: headline numbers by name, in order.
pub type FinalMetrics = serde_json::Map<String, serde_json::Value>;

/// Everything `run.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    pub experiment: String,
    pub run_id: String,
    pub command: String,
    pub command_line: Vec<String>,
    pub cwd: String,
    /// The commit of the working directory's repository when the run started (None outside
    /// a git checkout), and whether tracked files differed from it.
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    /// The commit the binary was built from (recorded by build.rs), whether its sources had
    /// uncommitted changes then, and the binary's path.
    #[serde(default)]
    pub build_git_commit: Option<String>,
    #[serde(default)]
    pub build_git_dirty: Option<bool>,
    #[serde(default)]
    pub binary: Option<String>,
    pub host: String,
    pub device: String,
    pub device_name: String,
    pub torch_version: String,
    pub stochlab_version: String,
    pub seed: u64,
    /// Every seed the run trains when it trains several (replicates, batched networks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<u64>,
    pub smoke: bool,
    pub start: String,
    pub end: Option<String>,
    pub seconds: Option<f64>,
    pub status: Status,
    pub error: Option<String>,
    pub final_metrics: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub resumes: Vec<Resume>,
    /// How many of the paper's claims passed, failed or did not apply (claims.csv).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<crate::claims::Counts>,
    /// `train --name`: a label for `stochlab runs` and `compare`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `train --tag` (repeatable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// What the command line says about where and how to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub results_root: PathBuf,
    pub device: Device,
    pub quiet: bool,
    pub smoke: bool,
    pub data_dir: PathBuf,
    pub command_line: Vec<String>,
}

pub struct RunContext {
    pub dir: PathBuf,
    pub info: RunInfo,
    pub device: Device,
    pub seed: u64,
    pub quiet: bool,
    pub smoke: bool,
    pub data_dir: PathBuf,
    pub interrupt: signals::Interrupt,
    /// Set when this run continues an interrupted one.
    pub resume_from: Option<checkpoint::Checkpoint>,
    metrics: Option<MetricsWriter>,
    /// The experiment set run.json's final metrics itself (a summary), so they are not
    /// replaced by the last metrics.csv row.
    summary_set: bool,
    started: Instant,
    opts: RunOptions,
}

/// A nested run: already completed, or ready to train (fresh or resuming).
pub enum Child {
    /// Completed by an earlier session; nothing to do.
    Done,
    Ready(Box<RunContext>),
}

/// Start/end stamps to the millisecond: runs started within one second still list in order.
fn now() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

impl RunContext {
    /// Creates a fresh run directory with config.toml and run.json (status `running`).
    pub fn create(
        opts: &RunOptions,
        experiment: &str,
        command: &str,
        config_text: &str,
        seed: u64,
    ) -> Result<Self> {
        let parent = opts.results_root.join(experiment);
        std::fs::create_dir_all(&parent).with_context(|| {
            format!(
                "creating {}; check --results and free disk space",
                parent.display()
            )
        })?;
        let (dir, run_id) = new_run_dir(&parent)?;
        Self::create_in(dir, run_id, opts, experiment, command, config_text, seed)
    }

    /// Creates a run at exactly `dir` (which must not exist yet): sweeps give each job a stable
    /// directory.
    pub fn create_at(
        dir: &Path,
        opts: &RunOptions,
        experiment: &str,
        command: &str,
        config_text: &str,
        seed: u64,
    ) -> Result<Self> {
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::create_dir(dir).with_context(|| {
            format!(
                "creating run directory {} (it must not exist yet)",
                dir.display()
            )
        })?;
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self::create_in(
            dir.to_path_buf(),
            id,
            opts,
            experiment,
            command,
            config_text,
            seed,
        )
    }

    /// Creates a run in an existing, empty directory (fresh runs and child runs).
    fn create_in(
        dir: PathBuf,
        run_id: String,
        opts: &RunOptions,
        experiment: &str,
        command: &str,
        config_text: &str,
        seed: u64,
    ) -> Result<Self> {
        std::fs::write(dir.join(CONFIG_TOML), config_text)
            .with_context(|| format!("writing {}", dir.join(CONFIG_TOML).display()))?;
        let (git_commit, git_dirty) = git_state();
        let (build_git_commit, build_git_dirty) = build_git_state();
        let info = RunInfo {
            experiment: experiment.to_string(),
            run_id,
            command: command.to_string(),
            command_line: opts.command_line.clone(),
            cwd: std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            git_commit,
            git_dirty,
            build_git_commit,
            build_git_dirty,
            binary: std::env::current_exe()
                .ok()
                .map(|p| p.display().to_string()),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            device: crate::device::name(opts.device),
            device_name: crate::device::describe(opts.device),
            torch_version: crate::device::torch_version(),
            stochlab_version: env!("CARGO_PKG_VERSION").to_string(),
            seed,
            seeds: vec![],
            smoke: opts.smoke,
            start: now(),
            end: None,
            seconds: None,
            status: Status::Running,
            error: None,
            final_metrics: Default::default(),
            resumes: vec![],
            claims: None,
            name: None,
            tags: vec![],
        };
        let ctx = Self::with(dir, info, opts, seed, None);
        ctx.write_info()?;
        Ok(ctx)
    }

    /// Reopens an interrupted or failed run to continue it from its latest readable checkpoint
    /// (falling back past an unreadable latest one, with a note), or a completed one to extend
    /// it to `extend_to` epochs. Returns the context and the run's saved config.toml text.
    pub fn reopen(
        dir: &Path,
        opts: &RunOptions,
        extend_to: Option<usize>,
    ) -> Result<(Self, String)> {
        let mut info = read_info(dir)?;
        if extend_to.is_none() && info.status == Status::Completed {
            bail!(
                "{} already completed; nothing to resume (start a new run, or extend it with `--resume {} train.epochs=N`)",
                dir.display(),
                dir.display()
            );
        }
        let found = checkpoint::find(dir, true)?;
        let from_epoch = match &found {
            Some(f) => f.checkpoint.state()?.epoch,
            None => 0,
        };
        let mut notes = vec![];
        match extend_to {
            Some(n) if n <= from_epoch => bail!(
                "{} has already trained {from_epoch} epochs; to extend it pass train.epochs larger than {from_epoch}",
                dir.display()
            ),
            Some(n) => notes.push(format!("extended to train.epochs = {n} from {from_epoch}")),
            None => {}
        }
        if let Some(note) = found.as_ref().and_then(|f| f.note.clone()) {
            eprintln!("warning: {}: {note}", dir.display());
            notes.insert(0, note);
        }
        let config = std::fs::read_to_string(dir.join(CONFIG_TOML))
            .with_context(|| format!("reading {}", dir.join(CONFIG_TOML).display()))?;
        info.resumes.push(Resume {
            at: now(),
            command_line: opts.command_line.clone(),
            device: crate::device::name(opts.device),
            from_epoch,
            checkpoint: found.as_ref().map(|f| f.tag.clone()),
            notes,
        });
        info.status = Status::Running;
        info.error = None;
        info.end = None;
        let seed = info.seed;
        let ctx = Self::with(
            dir.to_path_buf(),
            info,
            opts,
            seed,
            found.map(|f| f.checkpoint),
        );
        ctx.write_info()?;
        Ok((ctx, config))
    }

    fn with(
        dir: PathBuf,
        info: RunInfo,
        opts: &RunOptions,
        seed: u64,
        resume_from: Option<checkpoint::Checkpoint>,
    ) -> Self {
        RunContext {
            dir,
            info,
            device: opts.device,
            seed,
            quiet: opts.quiet,
            smoke: opts.smoke,
            data_dir: opts.data_dir.clone(),
            interrupt: signals::Interrupt::none(),
            resume_from,
            metrics: None,
            summary_set: false,
            started: Instant::now(),
            opts: opts.clone(),
        }
    }

    /// A run nested in this one (`<dir>/runs/<name>/`), e.g. one optimizer and seed of a
    /// comparison: created on first call, reopened to continue when it exists unfinished,
    /// reported as done when it completed before. It shares this run's interrupt flag.
    pub fn child(
        &self,
        name: &str,
        experiment: &str,
        config_text: &str,
        seed: u64,
    ) -> Result<Child> {
        let dir = self.dir.join("runs").join(name);
        let mut opts = self.opts.clone();
        opts.quiet = true;
        let mut ctx = if dir.join(RUN_JSON).exists() {
            let info = read_info(&dir)?;
            if info.status == Status::Completed {
                return Ok(Child::Done);
            }
            Self::reopen(&dir, &opts, None)?.0
        } else {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            Self::create_in(
                dir,
                name.to_string(),
                &opts,
                experiment,
                "train",
                config_text,
                seed,
            )?
        };
        ctx.interrupt = self.interrupt.clone();
        Ok(Child::Ready(Box::new(ctx)))
    }

    /// For experiments whose work is a list of independent units, one metrics row each:
    /// records that every row written so far is complete, so a resume starts after them.
    pub fn save_progress(&self) -> Result<()> {
        let rows = self.metrics_rows();
        let state = checkpoint::State {
            epoch: rows,
            step_in_epoch: 0,
            global_step: rows as u64,
            metrics_rows: rows,
            seed: self.seed,
            optimizer: serde_json::Value::Null,
            loop_state: serde_json::Value::Null,
        };
        checkpoint::save(&self.dir, &[], &[], &state, 1).map(|_| ())
    }

    /// Units completed by the session this run resumes (0 for a fresh run).
    pub fn completed_units(&self) -> Result<usize> {
        match &self.resume_from {
            Some(ck) => Ok(ck.state()?.metrics_rows),
            None => Ok(0),
        }
    }

    /// Final metrics for run.json chosen by the experiment: its headline numbers (mean and
    /// std over seeds, with `seeds` saying how many, where it trains several). Without this
    /// call they are the last metrics.csv row.
    pub fn set_final_metrics(&mut self, metrics: serde_json::Map<String, serde_json::Value>) {
        self.info.final_metrics = metrics;
        self.summary_set = true;
    }

    /// Records the seeds of a run that trains several (run.json `seeds`, the summary line).
    pub fn set_seeds(&mut self, seeds: Vec<u64>) {
        self.info.seeds = seeds;
    }

    /// Opens metrics.csv with this header: a new file, or, when resuming, the run's file cut
    /// back to the rows its checkpoint covers.
    pub fn open_metrics(&mut self, columns: &[&str]) -> Result<()> {
        let keep = match &self.resume_from {
            Some(ck) => Some(ck.state()?.metrics_rows),
            None => None,
        };
        self.open_metrics_keeping(columns, keep.map(Keep::Rows))
    }

    /// Opens metrics.csv; on resume keeps the rows `keep` selects (None: a new file).
    pub fn open_metrics_keeping(&mut self, columns: &[&str], keep: Option<Keep<'_>>) -> Result<()> {
        let path = self.dir.join(METRICS_CSV);
        let writer = match keep.filter(|_| self.resume_from.is_some()) {
            Some(k) => MetricsWriter::resume(&path, columns, k)?,
            None => MetricsWriter::create(&path, columns)?,
        };
        self.metrics = Some(writer);
        Ok(())
    }

    /// Sorts metrics.csv's rows by these columns (e.g. seed, then epoch).
    pub fn sort_metrics(&mut self, keys: &[&str]) -> Result<()> {
        match self.metrics.as_mut() {
            Some(m) => m.sort_by(keys),
            None => Ok(()),
        }
    }

    /// Whether the run wrote anything besides config.toml and run.json: a run that failed
    /// before that (a config or data problem found while setting up) leaves nothing to keep.
    pub fn wrote_results(&self) -> bool {
        std::fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(|e| e.ok()).any(|e| {
                    let n = e.file_name();
                    n != CONFIG_TOML && n != RUN_JSON
                })
            })
            .unwrap_or(true)
    }

    pub fn log(&mut self, row: Vec<Cell>) -> Result<()> {
        self.metrics
            .as_mut()
            .ok_or_else(|| anyhow!("internal: metrics.csv written before open_metrics"))?
            .write(row)
    }

    pub fn metrics_rows(&self) -> usize {
        self.metrics.as_ref().map_or(0, MetricsWriter::rows)
    }

    /// Records how the run ended in run.json; returns the process exit code.
    pub fn finish(&mut self, outcome: &Result<Outcome>) -> Result<i32> {
        let (status, error, code) = match outcome {
            Ok(Outcome::Completed) => (Status::Completed, None, 0),
            Ok(Outcome::Interrupted(sig)) => (
                Status::Interrupted,
                Some(format!("stopped by signal {sig}")),
                128 + sig,
            ),
            Err(e) => (Status::Failed, Some(one_line(e)), 1),
        };
        self.info.status = status;
        self.info.error = error;
        self.info.end = Some(now());
        // A resumed run adds this session's time to what earlier sessions recorded.
        self.info.seconds =
            Some(self.started.elapsed().as_secs_f64() + self.info.seconds.unwrap_or(0.0));
        match self.metrics.as_ref().filter(|m| m.rows() > 0) {
            Some(m) if !self.summary_set => self.info.final_metrics = m.last_as_json(),
            _ => {}
        }
        self.write_info()?;
        Ok(code)
    }

    pub fn write_info(&self) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.info)?;
        fsutil::write_atomic(&self.dir.join(RUN_JSON), text.as_bytes())
    }
}

/// An error chain as one line: outermost context first.
pub fn one_line(err: &anyhow::Error) -> String {
    let parts: Vec<String> = err
        .chain()
        .map(|e| e.to_string().replace('\n', " "))
        .collect();
    parts.join(": ")
}

/// Reads a run directory's run.json, with an error that says what a run directory is.
pub fn read_info(dir: &Path) -> Result<RunInfo> {
    let p = dir.join(RUN_JSON);
    let text = std::fs::read_to_string(&p).map_err(|_| {
        anyhow!("{} is not a run directory (no {RUN_JSON}); pass one like results/<experiment>/<timestamp>-<id>", dir.display())
    })?;
    serde_json::from_str(&text).with_context(|| format!("{} is corrupt", p.display()))
}

fn new_run_dir(parent: &Path) -> Result<(PathBuf, String)> {
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    for attempt in 0..100u32 {
        let id = short_id(attempt);
        let dir = parent.join(format!("{stamp}-{id}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((dir, id)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("creating run directory {}", dir.display()))
            }
        }
    }
    bail!(
        "could not create a fresh run directory under {}",
        parent.display()
    )
}

/// Six hex digits that differ between runs started in the same second (pid, clock, attempt).
fn short_id(attempt: u32) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(attempt);
    format!("{:06x}", h.finish() & 0xff_ffff)
}

/// The commit the binary was built from and whether its sources were modified then
/// (build.rs; None when it was built outside a git checkout).
pub fn build_git_state() -> (Option<String>, Option<bool>) {
    let commit = option_env!("STOCHLAB_BUILD_COMMIT")
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    let dirty = option_env!("STOCHLAB_BUILD_DIRTY")
        .filter(|_| commit.is_some())
        .map(|d| d == "true");
    (commit, dirty)
}

fn git_state() -> (Option<String>, Option<bool>) {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "HEAD"]);
    let dirty = commit
        .as_ref()
        .and_then(|_| git(&["status", "--porcelain", "--untracked-files=no"]))
        .map(|s| !s.is_empty());
    (commit, dirty)
}
