//! Sweeps: a sweep file (or a Hydra-style command line) expands into jobs, each an ordinary
//! `stochlab train` / `ib-analyze` run in its own process with a stable run directory
//! `results/sweeps/<name>/runs/<job id>/`. Locally a pool of workers runs them (optionally
//! pinned to GPUs); on a cluster a Slurm job array does, one `sweep run-task` per array task.
//! Each job's state lives in its own file (`jobs/<id>.json`, written atomically), so concurrent
//! tasks never share a file; `jobs.csv` is regenerated from them. A process claims a job
//! (`jobs/<id>.lock`, see `lock`) before running it, so the same sweep started twice, or a
//! Slurm array next to a local run, shares the jobs out instead of running any twice.

pub mod command;
pub mod lock;
pub mod slurm;
pub mod spec;

use crate::run::fsutil::write_atomic;
use crate::run::metrics::mean_std;
use crate::run::{self, Status};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use spec::{Job, SweepSpec};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SPEC: &str = "sweep.toml";
const MANIFEST: &str = "jobs.json";
const STATES: &str = "jobs";
const RUNS: &str = "runs";
const LOGS: &str = "logs";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Interrupted,
}

impl JobStatus {
    fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Interrupted => "interrupted",
        }
    }
}

/// What `jobs/<id>.json` records about one job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobState {
    pub id: String,
    pub index: usize,
    pub seed: u64,
    pub overrides: BTreeMap<String, toml::Value>,
    pub status: JobStatus,
    pub run_dir: String,
    pub start: Option<String>,
    pub end: Option<String>,
    pub exit_code: Option<i32>,
    pub attempts: u32,
    pub error: Option<String>,
    pub final_metrics: serde_json::Map<String, serde_json::Value>,
}

/// What `run_job` did.
pub enum JobRun {
    /// Ran it (or found it finished): its state now.
    Done(JobState),
    /// Another process holds the job (running it now).
    Busy(lock::Holder),
}

/// A sweep directory: the spec, the manifest of jobs (stable order), states, runs, logs.
pub struct SweepDir {
    pub dir: PathBuf,
    pub spec: SweepSpec,
    pub jobs: Vec<Job>,
}

impl SweepDir {
    /// Creates (or reopens, when the same sweep ran before) `<root>/sweeps/<name>/`. New jobs
    /// are added to the manifest; existing ones keep their index, state and run directory.
    pub fn prepare(root: &Path, spec: SweepSpec, spec_text: &str) -> Result<Self> {
        let dir = root.join("sweeps").join(&spec.name);
        Self::prepare_at(dir, spec, spec_text)
    }

    /// As `prepare`, in exactly `dir` (`reproduce` keeps one sweep per experiment together).
    pub fn prepare_at(dir: PathBuf, spec: SweepSpec, spec_text: &str) -> Result<Self> {
        for sub in [STATES, RUNS, LOGS] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("creating {}", dir.join(sub).display()))?;
        }
        let mut jobs: Vec<Job> = read_json(&dir.join(MANIFEST)).unwrap_or_default();
        for j in spec.expand()? {
            if !jobs.iter().any(|k| k.id == j.id) {
                jobs.push(j);
            }
        }
        write_atomic(&dir.join(SPEC), spec_text.as_bytes())?;
        write_atomic(
            &dir.join(MANIFEST),
            serde_json::to_string_pretty(&jobs)?.as_bytes(),
        )?;
        let sd = SweepDir { dir, spec, jobs };
        for (i, j) in sd.jobs.iter().enumerate() {
            if sd.state(j).is_err() {
                sd.write_state(&sd.fresh_state(i, j))?;
            }
        }
        Ok(sd)
    }

    pub fn open(dir: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(dir.join(SPEC))
            .map_err(|_| anyhow!("{} is not a sweep directory (no {SPEC})", dir.display()))?;
        let spec = SweepSpec::parse(&text, &dir.join(SPEC).display().to_string())?;
        let jobs = read_json(&dir.join(MANIFEST))?;
        Ok(SweepDir {
            dir: dir.to_path_buf(),
            spec,
            jobs,
        })
    }

    fn fresh_state(&self, index: usize, j: &Job) -> JobState {
        JobState {
            id: j.id.clone(),
            index,
            seed: j.seed,
            overrides: j.overrides.clone(),
            status: JobStatus::Pending,
            run_dir: self.run_dir(j).display().to_string(),
            start: None,
            end: None,
            exit_code: None,
            attempts: 0,
            error: None,
            final_metrics: Default::default(),
        }
    }

    pub fn run_dir(&self, j: &Job) -> PathBuf {
        self.dir.join(RUNS).join(&j.id)
    }

    pub fn state(&self, j: &Job) -> Result<JobState> {
        read_json(&self.dir.join(STATES).join(format!("{}.json", j.id)))
    }

    pub fn states(&self) -> Result<Vec<JobState>> {
        self.jobs.iter().map(|j| self.state(j)).collect()
    }

    fn write_state(&self, s: &JobState) -> Result<()> {
        write_atomic(
            &self.dir.join(STATES).join(format!("{}.json", s.id)),
            serde_json::to_string_pretty(s)?.as_bytes(),
        )
    }

    /// The command that runs (or resumes) a job: an ordinary stochlab run.
    fn command(&self, exe: &Path, j: &Job, flags: &[String]) -> Result<Command> {
        let run_dir = self.run_dir(j);
        let mut c = Command::new(exe);
        if run_dir.join(run::RUN_JSON).exists() {
            c.args(["train", "--resume"]).arg(&run_dir);
        } else {
            let command = if self.spec.command.is_empty() {
                "train"
            } else {
                self.spec.command.as_str()
            };
            c.arg(command).arg(&self.spec.experiment);
            if !self.spec.config.is_empty() {
                c.args(["--config", &self.spec.config]);
            }
            c.args(j.args())
                .args(["--seed", &j.seed.to_string()])
                .arg("--run-dir")
                .arg(&run_dir);
            c.args(flags);
        }
        c.arg("--quiet");
        Ok(c)
    }

    fn lock_path(&self, j: &Job) -> PathBuf {
        self.dir.join(STATES).join(format!("{}.lock", j.id))
    }

    /// Who else is running this job now, if anyone.
    pub fn running_elsewhere(&self, index: usize) -> Option<lock::Holder> {
        lock::holder(&self.lock_path(&self.jobs[index]))
    }

    /// Runs one job to the end in a child process (forwarding `stop` as SIGTERM) and records
    /// its state; `Busy` when another process holds the job. `retry_failed`: a failed job
    /// starts again from scratch.
    pub fn run_job(
        &self,
        index: usize,
        exe: &Path,
        flags: &[String],
        env: &[(String, String)],
        stop: &AtomicBool,
        retry_failed: bool,
    ) -> Result<JobRun> {
        let j = &self.jobs[index];
        let mut claim = match lock::try_claim(&self.lock_path(j))? {
            lock::Attempt::Claimed(c) => c,
            lock::Attempt::Held(h) => return Ok(JobRun::Busy(h)),
        };
        // Read after claiming: another process may have finished the job just before.
        let mut st = self.state(j).unwrap_or_else(|_| self.fresh_state(index, j));
        let run_dir = self.run_dir(j);
        if st.status == JobStatus::Completed {
            return Ok(JobRun::Done(st));
        }
        if run_dir.join(run::RUN_JSON).exists() {
            let info = run::read_info(&run_dir)?;
            match info.status {
                Status::Completed => return self.finish(st, Some(0), &run_dir).map(JobRun::Done),
                Status::Failed if retry_failed => std::fs::remove_dir_all(&run_dir)
                    .with_context(|| format!("removing {}", run_dir.display()))?,
                Status::Failed => return Ok(JobRun::Done(st)),
                _ => {}
            }
        } else if run_dir.exists() {
            // Stopped before its run.json was written: nothing to resume, start it afresh.
            std::fs::remove_dir_all(&run_dir)
                .with_context(|| format!("removing {}", run_dir.display()))?;
        }
        st.status = JobStatus::Running;
        st.attempts += 1;
        st.start = Some(chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false));
        st.end = None;
        self.write_state(&st)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(LOGS).join(format!("{}.log", j.id)))?;
        let mut cmd = self.command(exe, j, flags)?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting job {}", j.id))?;
        let mut signalled = false;
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            if stop.load(Ordering::Relaxed) && !signalled {
                // Let the run finish its step and checkpoint.
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                signalled = true;
            }
            claim.heartbeat();
            std::thread::sleep(Duration::from_millis(5));
        };
        // A job killed by a signal (e.g. the SIGTERM forwarded above, before it installed its
        // handlers) reports 128 + signal, as a shell would.
        use std::os::unix::process::ExitStatusExt;
        let st = self.finish(
            st,
            status.code().or_else(|| status.signal().map(|s| 128 + s)),
            &run_dir,
        )?;
        drop(claim);
        Ok(JobRun::Done(st))
    }

    /// Records how a job's run ended, from its exit code and run.json.
    fn finish(&self, mut st: JobState, code: Option<i32>, run_dir: &Path) -> Result<JobState> {
        st.exit_code = code;
        st.end = Some(chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false));
        let info = run::read_info(run_dir).ok();
        st.status = match info.as_ref().map(|i| i.status) {
            Some(Status::Completed) if code == Some(0) => JobStatus::Completed,
            Some(Status::Interrupted) => JobStatus::Interrupted,
            _ if code == Some(130) || code == Some(143) => JobStatus::Interrupted,
            _ => JobStatus::Failed,
        };
        st.error = match st.status {
            JobStatus::Failed => Some(
                info.as_ref()
                    .and_then(|i| i.error.clone())
                    .or_else(|| last_line(&self.dir.join(LOGS).join(format!("{}.log", st.id))))
                    .unwrap_or_else(|| format!("exit code {code:?}")),
            ),
            _ => None,
        };
        st.final_metrics = info.map(|i| i.final_metrics).unwrap_or_default();
        self.write_state(&st)?;
        Ok(st)
    }

    /// Regenerates jobs.csv: one row per job, a column per swept key, status, times, metrics.
    pub fn write_jobs_csv(&self) -> Result<PathBuf> {
        let states = self.states()?;
        let keys = swept_keys(&states);
        let metrics = metric_keys(&states);
        let mut w = csv::Writer::from_writer(vec![]);
        let mut header: Vec<String> = vec!["job_id".into()];
        header.extend(keys.iter().cloned());
        header.extend(
            [
                "seed",
                "status",
                "run_dir",
                "start",
                "end",
                "exit_code",
                "attempts",
                "error",
            ]
            .map(String::from),
        );
        // A metric named like one of the columns above (a run's `seed`) gets a prefix, so no
        // header appears twice.
        let fixed = header.clone();
        header.extend(metrics.iter().map(|m| {
            if fixed.contains(m) {
                format!("final_{m}")
            } else {
                m.clone()
            }
        }));
        w.write_record(&header)?;
        for s in &states {
            let mut row = vec![s.id.clone()];
            row.extend(
                keys.iter()
                    .map(|k| s.overrides.get(k).map(spec::value_text).unwrap_or_default()),
            );
            row.extend([
                s.seed.to_string(),
                s.status.as_str().into(),
                s.run_dir.clone(),
                s.start.clone().unwrap_or_default(),
                s.end.clone().unwrap_or_default(),
                s.exit_code.map(|c| c.to_string()).unwrap_or_default(),
                s.attempts.to_string(),
                s.error.clone().unwrap_or_default(),
            ]);
            row.extend(
                metrics
                    .iter()
                    .map(|m| s.final_metrics.get(m).map(json_text).unwrap_or_default()),
            );
            w.write_record(&row)?;
        }
        let path = self.dir.join("jobs.csv");
        write_atomic(&path, &w.into_inner()?)?;
        Ok(path)
    }

    /// Counts by status, and the failed jobs with their last error line.
    pub fn status_report(&self) -> Result<String> {
        let states = self.states()?;
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &states {
            *counts.entry(s.status.as_str()).or_default() += 1;
        }
        let mut out = format!(
            "sweep {} ({} jobs): {}\n",
            self.spec.name,
            states.len(),
            counts
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for s in states.iter().filter(|s| s.status == JobStatus::Failed) {
            out += &format!(
                "failed {} ({}): {}\n",
                s.id,
                overrides_text(s),
                s.error.clone().unwrap_or_default()
            );
        }
        for s in states.iter().filter(|s| s.status == JobStatus::Running) {
            if let Some(h) = self.running_elsewhere(s.index) {
                out += &format!(
                    "running {} ({}) in {}\n",
                    s.id,
                    overrides_text(s),
                    h.describe()
                );
            }
        }
        if let Ok(slurm) = std::fs::read_to_string(self.dir.join("slurm_job_id")) {
            out += &format!("slurm array job {}", slurm.trim());
            if let Ok(o) = Command::new("sacct")
                .args(["-n", "-P", "-X", "--format=JobID,State", "-j", slurm.trim()])
                .output()
            {
                let text = String::from_utf8_lossy(&o.stdout);
                let mut by: BTreeMap<String, usize> = BTreeMap::new();
                for l in text.lines().filter_map(|l| l.split('|').nth(1)) {
                    *by.entry(l.split_whitespace().next().unwrap_or("").to_string())
                        .or_default() += 1;
                }
                if !by.is_empty() {
                    out += &format!(
                        ": sacct {}",
                        by.iter()
                            .map(|(k, v)| format!("{v} {k}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
            }
            out += "\n";
        }
        Ok(out)
    }

    /// summary.csv, grouped by `group_by` (default: every swept key but the seed), with the
    /// number of jobs (`count`) and each numeric final metric's mean and std over the group's jobs. A
    /// job that already reports a mean and std over its own seeds (`X_mean`, `X_std`, with
    /// `seeds` or `<prefix>_seeds` saying how many) is pooled with the others seed by seed:
    /// the group's `X_mean`, `X_std` are over all their seeds, and `seeds_total` counts them.
    /// Returns the file and the table as aligned text.
    pub fn summary(&self, group_by: &[String]) -> Result<(PathBuf, String)> {
        let states: Vec<JobState> = self
            .states()?
            .into_iter()
            .filter(|s| s.status == JobStatus::Completed)
            .collect();
        let numeric = |m: &String| {
            states
                .iter()
                .any(|s| s.final_metrics.get(m).and_then(|v| v.as_f64()).is_some())
        };
        let metrics: Vec<String> = metric_keys(&states).into_iter().filter(numeric).collect();
        let all_keys = swept_keys(&states);
        let keys: Vec<String> = if group_by.is_empty() {
            all_keys.iter().filter(|k| *k != "seed").cloned().collect()
        } else {
            group_by.to_vec()
        };
        for k in &keys {
            if !all_keys.contains(k) && k != "seed" {
                bail!(
                    "--group-by {k}: not a swept key (swept: {})",
                    all_keys.join(", ")
                );
            }
        }
        let key_of = |s: &JobState| -> Vec<String> {
            keys.iter()
                .map(|k| {
                    if k == "seed" {
                        s.seed.to_string()
                    } else {
                        s.overrides.get(k).map(spec::value_text).unwrap_or_default()
                    }
                })
                .collect()
        };
        let mut groups: Vec<(Vec<String>, Vec<&JobState>)> = vec![];
        for s in &states {
            let k = key_of(s);
            match groups.iter_mut().find(|(g, _)| *g == k) {
                Some((_, v)) => v.push(s),
                None => groups.push((k, vec![s])),
            }
        }
        // Columns: pooled quantities (X from X_mean/X_std), then plain metrics.
        let pooled: Vec<String> = metrics
            .iter()
            .filter_map(|m| m.strip_suffix("_mean"))
            .filter(|b| metrics.contains(&format!("{b}_std")))
            .map(str::to_string)
            .collect();
        let is_pooled_part = |m: &str| {
            pooled
                .iter()
                .any(|b| m == format!("{b}_mean") || m == format!("{b}_std"))
        };
        let counts: Vec<String> = metrics
            .iter()
            .filter(|m| *m == "seeds" || m.ends_with("_seeds"))
            .cloned()
            .collect();
        let plain: Vec<String> = metrics
            .iter()
            .filter(|m| !is_pooled_part(m) && !counts.contains(m))
            .cloned()
            .collect();
        let mut header = keys.clone();
        header.push("count".into());
        // Seeds pooled over the group's jobs (`seeds` → `seeds_total`: a swept `seeds` key
        // keeps its own column).
        header.extend(counts.iter().map(|c| format!("{c}_total")));
        for b in &pooled {
            header.push(format!("{b}_mean"));
            header.push(format!("{b}_std"));
        }
        for m in &plain {
            header.push(format!("{m}_mean"));
            header.push(format!("{m}_std"));
        }
        let num = |s: &JobState, k: &str| s.final_metrics.get(k).and_then(|v| v.as_f64());
        let mut table: Vec<Vec<String>> = vec![];
        for (k, members) in &groups {
            let mut row = k.clone();
            row.push(members.len().to_string());
            for c in &counts {
                let n: f64 = members.iter().filter_map(|s| num(s, c)).sum();
                row.push(format!("{n:.0}"));
            }
            for b in &pooled {
                let parts: Vec<(f64, f64, f64)> = members
                    .iter()
                    .filter_map(|s| {
                        let m = num(s, &format!("{b}_mean"))?;
                        let sd = num(s, &format!("{b}_std")).unwrap_or(0.0);
                        Some((count_for(s, b, &counts), m, sd))
                    })
                    .collect();
                let (mean, std) = pooled_mean_std(&parts);
                row.push(crate::run::metrics::float(mean));
                row.push(crate::run::metrics::float(std));
            }
            for m in &plain {
                let v: Vec<f64> = members.iter().filter_map(|s| num(s, m)).collect();
                let (mean, std) = mean_std(&v);
                row.push(crate::run::metrics::float(mean));
                row.push(crate::run::metrics::float(std));
            }
            table.push(row);
        }
        let mut w = csv::Writer::from_writer(vec![]);
        w.write_record(&header)?;
        for r in &table {
            w.write_record(r)?;
        }
        let path = self.dir.join("summary.csv");
        write_atomic(&path, &w.into_inner()?)?;
        Ok((path, aligned(&header, &table)))
    }
}

/// How many seeds a job's `base_mean` is over: the nearest `<prefix>_seeds` of `base`, else
/// `seeds`, else 1.
fn count_for(s: &JobState, base: &str, counts: &[String]) -> f64 {
    let mut prefix = base;
    loop {
        let key = format!("{prefix}_seeds");
        if counts.contains(&key) {
            if let Some(n) = s.final_metrics.get(&key).and_then(|v| v.as_f64()) {
                return n;
            }
        }
        match prefix.rfind('_') {
            Some(i) => prefix = &prefix[..i],
            None => break,
        }
    }
    s.final_metrics
        .get("seeds")
        .and_then(|v| v.as_f64())
        .unwrap_or(1.0)
}

/// Mean and sample std of the union of groups given as (count, mean, std).
pub fn pooled_mean_std(parts: &[(f64, f64, f64)]) -> (f64, f64) {
    let n: f64 = parts.iter().map(|p| p.0).sum();
    if parts.is_empty() || n <= 0.0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = parts.iter().map(|p| p.0 * p.1).sum::<f64>() / n;
    if n <= 1.0 {
        return (mean, 0.0);
    }
    let ss: f64 = parts
        .iter()
        .map(|(k, m, sd)| (k - 1.0).max(0.0) * sd * sd + k * (m - mean).powi(2))
        .sum();
    (mean, (ss / (n - 1.0)).sqrt())
}

/// A table as aligned columns (numbers right-aligned, text left-aligned).
fn aligned(header: &[String], rows: &[Vec<String>]) -> String {
    let width: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([header[c].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .enumerate()
            .map(|(c, v)| {
                if v.parse::<f64>().is_ok() {
                    format!("{v:>w$}", w = width[c])
                } else {
                    format!("{v:<w$}", w = width[c])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(header) + "\n";
    for r in rows {
        out += &(line(r) + "\n");
    }
    out
}

/// Every key of the maps, in order of first appearance.
fn union_keys<'a, V: 'a>(
    maps: impl Iterator<Item = impl Iterator<Item = (&'a String, V)>>,
) -> Vec<String> {
    let mut keys: Vec<String> = vec![];
    for m in maps {
        for (k, _) in m {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    keys
}

fn swept_keys(states: &[JobState]) -> Vec<String> {
    union_keys(states.iter().map(|s| s.overrides.iter()))
}

fn metric_keys(states: &[JobState]) -> Vec<String> {
    union_keys(states.iter().map(|s| s.final_metrics.iter()))
}

fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        // Counts stay integers (`10`, not `10.0`).
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        serde_json::Value::Number(n) => n
            .as_f64()
            .map(crate::run::metrics::float)
            .unwrap_or_else(|| n.to_string()),
        other => other.to_string(),
    }
}

fn overrides_text(s: &JobState) -> String {
    let mut parts: Vec<String> = s
        .overrides
        .iter()
        .map(|(k, v)| format!("{k}={}", spec::value_text(v)))
        .collect();
    parts.push(format!("seed={}", s.seed));
    parts.join(" ")
}

fn last_line(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(str::to_string)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is corrupt", path.display()))
}

/// How the local pool runs jobs.
pub struct LocalOptions {
    pub workers: usize,
    /// GPU indices to pin jobs to (CUDA_VISIBLE_DEVICES), with this many jobs per GPU.
    pub gpus: Vec<String>,
    pub jobs_per_gpu: usize,
    pub fail_fast: bool,
    pub retries: u32,
    pub retry_failed: bool,
    /// Flags passed to every job (--device, --data-dir).
    pub flags: Vec<String>,
    pub quiet: bool,
}

/// Runs every unfinished job with a pool of worker threads, each driving one child process.
/// Returns the number of failed jobs, or None when the sweep was interrupted.
pub fn run_local(
    sd: &SweepDir,
    opts: &LocalOptions,
    stop: Arc<AtomicBool>,
) -> Result<Option<usize>> {
    let exe = std::env::current_exe().context("locating the stochlab binary")?;
    let slots: Vec<Option<String>> = if opts.gpus.is_empty() {
        vec![None; opts.workers.max(1)]
    } else {
        opts.gpus
            .iter()
            .flat_map(|g| std::iter::repeat_n(Some(g.clone()), opts.jobs_per_gpu.max(1)))
            .collect()
    };
    let todo: VecDeque<usize> = sd
        .jobs
        .iter()
        .enumerate()
        .filter(|(_, j)| {
            sd.state(j)
                .map(|s| s.status != JobStatus::Completed)
                .unwrap_or(true)
        })
        .map(|(i, _)| i)
        .collect();
    let total = sd.jobs.len();
    let done_before = total - todo.len();
    // Jobs running side by side share the cores instead of each taking all of them (torch's
    // default), which oversubscribes the CPU; a user's own OMP_NUM_THREADS wins.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) / slots.len().max(1);
    let thread_env: Vec<(String, String)> = match std::env::var("OMP_NUM_THREADS") {
        Ok(_) => vec![],
        Err(_) => vec![("OMP_NUM_THREADS".into(), threads.max(1).to_string())],
    };
    let asked: Vec<usize> = todo.iter().copied().collect();
    let queue = Mutex::new(todo);
    // Jobs another process holds: waited for (retried every WAIT) and never retried here.
    let deferred: Mutex<Vec<usize>> = Mutex::new(vec![]);
    let elsewhere: Mutex<Vec<usize>> = Mutex::new(vec![]);
    const WAIT: Duration = Duration::from_millis(200);
    let finished = Mutex::new(done_before);
    let error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let start = Instant::now();
    if !opts.quiet {
        eprintln!(
            "[sweep {}] {}: {total} jobs, {} to run ({done_before} already completed), {} at a time",
            sd.spec.name,
            sd.dir.display(),
            total - done_before,
            slots.len()
        );
    }
    std::thread::scope(|scope| {
        for gpu in &slots {
            let (queue, deferred, elsewhere, finished, error, stop) =
                (&queue, &deferred, &elsewhere, &finished, &error, &stop);
            let mut env: Vec<(String, String)> = gpu
                .iter()
                .map(|g| ("CUDA_VISIBLE_DEVICES".to_string(), g.clone()))
                .collect();
            env.extend(thread_env.iter().cloned());
            let exe = exe.clone();
            scope.spawn(move || loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let next = queue.lock().expect("queue").pop_front();
                let Some(index) = next else {
                    // Nothing left but jobs other processes run: wait for them (a job whose
                    // holder dies is taken over and run here).
                    let waiting = std::mem::take(&mut *deferred.lock().expect("deferred"));
                    if waiting.is_empty() {
                        return;
                    }
                    std::thread::sleep(WAIT);
                    queue.lock().expect("queue").extend(waiting);
                    continue;
                };
                let theirs = elsewhere.lock().expect("elsewhere").contains(&index);
                if !opts.quiet && !theirs {
                    let j = &sd.jobs[index];
                    let mut args = j.args();
                    args.push(format!("seed={}", j.seed));
                    eprintln!(
                        "[sweep {}] start job {}: {}",
                        sd.spec.name,
                        j.id,
                        args.join(" ")
                    );
                }
                let mut attempt = 0;
                let state = loop {
                    let retry_failed = (opts.retry_failed && !theirs) || attempt > 0;
                    match sd.run_job(index, &exe, &opts.flags, &env, stop, retry_failed) {
                        Ok(JobRun::Busy(h)) => {
                            let mut e = elsewhere.lock().expect("elsewhere");
                            if !e.contains(&index) {
                                e.push(index);
                                if !opts.quiet {
                                    eprintln!(
                                        "[sweep {}] job {} is running in {} (another stochlab on this sweep); waiting for it",
                                        sd.spec.name,
                                        sd.jobs[index].id,
                                        h.describe()
                                    );
                                }
                            }
                            deferred.lock().expect("deferred").push(index);
                            break None;
                        }
                        Ok(JobRun::Done(s))
                            if s.status == JobStatus::Failed
                                && !theirs
                                && attempt < opts.retries
                                && !stop.load(Ordering::Relaxed) =>
                        {
                            attempt += 1
                        }
                        Ok(JobRun::Done(s)) => break Some(s),
                        Err(e) => {
                            *error.lock().expect("error") = Some(e);
                            stop.store(true, Ordering::Relaxed);
                            return;
                        }
                    }
                };
                let Some(state) = state else {
                    continue;
                };
                let mut n = finished.lock().expect("finished");
                if state.status == JobStatus::Completed || state.status == JobStatus::Failed {
                    *n += 1;
                }
                if state.status == JobStatus::Failed && opts.fail_fast {
                    stop.store(true, Ordering::Relaxed);
                }
                if !opts.quiet {
                    eprintln!(
                        "[sweep {}] {}/{total} done: job {} {} ({:.0}s elapsed){}",
                        sd.spec.name,
                        *n,
                        state.id,
                        state.status.as_str(),
                        start.elapsed().as_secs_f64(),
                        match &state.error {
                            Some(e) => format!(": {e}"),
                            None => {
                                let h = crate::run::metrics::headline(&state.final_metrics, 3);
                                if h.is_empty() {
                                    String::new()
                                } else {
                                    format!(": {}", h.join(" "))
                                }
                            }
                        }
                    );
                }
            });
        }
    });
    sd.write_jobs_csv()?;
    if let Some(e) = error.into_inner().expect("error") {
        return Err(e);
    }
    // The jobs this invocation was asked to finish, however they ended (here or elsewhere).
    let states = sd.states()?;
    let failed = asked
        .iter()
        .filter(|&&i| states[i].status == JobStatus::Failed)
        .count();
    let unfinished = states
        .iter()
        .any(|s| s.status != JobStatus::Completed && s.status != JobStatus::Failed);
    Ok(
        if unfinished && stop.load(Ordering::Relaxed) && !(opts.fail_fast && failed > 0) {
            None
        } else {
            Some(failed)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_mean_and_std_equal_those_of_all_the_seeds() {
        let a = [0.90, 0.92, 0.94];
        let b = [0.80, 0.84];
        let all: Vec<f64> = a.iter().chain(&b).copied().collect();
        let (ma, sa) = mean_std(&a);
        let (mb, sb) = mean_std(&b);
        let (m, s) = pooled_mean_std(&[(3.0, ma, sa), (2.0, mb, sb)]);
        let (em, es) = mean_std(&all);
        assert!(
            (m - em).abs() < 1e-12 && (s - es).abs() < 1e-12,
            "{m} {s} vs {em} {es}"
        );
        assert_eq!(pooled_mean_std(&[(1.0, 0.5, 0.0)]), (0.5, 0.0));
        assert!(pooled_mean_std(&[]).0.is_nan());
    }
}
