//! The Slurm backend: an ordinary sbatch job array, one task per job, each task running
//! `stochlab sweep run-task <sweep-dir> --index $SLURM_ARRAY_TASK_ID`. stochlab never schedules
//! anything itself; Slurm does.

use super::SweepDir;
use anyhow::{bail, Context, Result};
use std::path::Path;

#[derive(Debug, Clone, Default)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    pub time: Option<String>,
    pub gpus_per_task: Option<String>,
    pub cpus_per_task: Option<String>,
    pub mem: Option<String>,
    pub max_concurrent: Option<usize>,
    pub extra: Vec<String>,
    /// Requeue preempted tasks; a task stopped by SIGTERM checkpoints and resumes when rerun.
    pub requeue: bool,
}

/// The sbatch script for a sweep. `flags` go to every job (--device, --data-dir).
pub fn script(sd: &SweepDir, exe: &Path, o: &SlurmOptions, flags: &[String]) -> String {
    let n = sd.jobs.len();
    let dir = sd.dir.canonicalize().unwrap_or_else(|_| sd.dir.clone());
    let mut s = String::from("#!/bin/bash\n");
    s += &format!("#SBATCH --job-name=stochlab-{}\n", sd.spec.name);
    let limit = o
        .max_concurrent
        .map(|k| format!("%{k}"))
        .unwrap_or_default();
    s += &format!("#SBATCH --array=0-{}{limit}\n", n.saturating_sub(1));
    s += &format!("#SBATCH --output={}/logs/slurm-%A_%a.out\n", dir.display());
    for (flag, value) in [
        ("partition", &o.partition),
        ("time", &o.time),
        ("gpus-per-task", &o.gpus_per_task),
        ("cpus-per-task", &o.cpus_per_task),
        ("mem", &o.mem),
    ] {
        if let Some(v) = value {
            s += &format!("#SBATCH --{flag}={v}\n");
        }
    }
    if o.requeue {
        s += "#SBATCH --requeue\n";
    }
    for a in &o.extra {
        s += &format!("#SBATCH {a}\n");
    }
    s += "\n# One array task = one job of the sweep; a rerun (requeue) resumes it from its checkpoint.\n";
    s += &format!(
        "exec {} sweep run-task {} --index \"$SLURM_ARRAY_TASK_ID\"",
        shell_quote(&exe.display().to_string()),
        shell_quote(&dir.display().to_string())
    );
    for f in flags {
        s += &format!(" {}", shell_quote(f));
    }
    s += "\n";
    s
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_alphanumeric() || "-_./=:,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Writes `sweep.sbatch` and submits it (unless `dry_run`); returns the script and job id.
pub fn submit(
    sd: &SweepDir,
    o: &SlurmOptions,
    flags: &[String],
    dry_run: bool,
) -> Result<(String, Option<String>)> {
    let exe = std::env::current_exe().context("locating the stochlab binary")?;
    let text = script(sd, &exe, o, flags);
    let path = sd.dir.join("sweep.sbatch");
    crate::run::fsutil::write_atomic(&path, text.as_bytes())?;
    if dry_run {
        return Ok((text, None));
    }
    let out = std::process::Command::new("sbatch")
        .arg("--parsable")
        .arg(&path)
        .output()
        .map_err(|e| {
            anyhow::anyhow!(
                "running sbatch: {e}; is Slurm installed here? (use --dry-run to only write {})",
                path.display()
            )
        })?;
    if !out.status.success() {
        bail!(
            "sbatch refused {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let id = String::from_utf8_lossy(&out.stdout)
        .trim()
        .split(';')
        .next()
        .unwrap_or("")
        .to_string();
    crate::run::fsutil::write_atomic(&sd.dir.join("slurm_job_id"), id.as_bytes())?;
    Ok((text, Some(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_is_an_array_with_the_requested_resources() {
        let tmp = tempfile::tempdir().unwrap();
        let spec =
            crate::sweep::spec::SweepSpec::from_cli("classifier", &["optim.lr=0.1,0.2,0.3".into()])
                .unwrap();
        let spec = crate::sweep::spec::SweepSpec {
            name: "t".into(),
            ..spec
        };
        let sd = SweepDir::prepare(tmp.path(), spec, "experiment = \"classifier\"\n").unwrap();
        let o = SlurmOptions {
            partition: Some("gpu".into()),
            time: Some("01:00:00".into()),
            gpus_per_task: Some("1".into()),
            max_concurrent: Some(2),
            requeue: true,
            extra: vec!["--account=lab".into()],
            ..Default::default()
        };
        let s = script(
            &sd,
            Path::new("/opt/stochlab"),
            &o,
            &["--device".into(), "cuda".into()],
        );
        for line in [
            "#SBATCH --array=0-2%2",
            "#SBATCH --partition=gpu",
            "#SBATCH --time=01:00:00",
            "#SBATCH --gpus-per-task=1",
            "#SBATCH --requeue",
            "#SBATCH --account=lab",
        ] {
            assert!(s.contains(line), "{line} missing:\n{s}");
        }
        assert!(
            s.contains("exec /opt/stochlab sweep run-task ")
                && s.contains("--index \"$SLURM_ARRAY_TASK_ID\" --device cuda"),
            "{s}"
        );
    }
}
