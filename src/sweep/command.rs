//! The `sweep` subcommand: expands the target, checks every job's config, and hands the jobs
//! to the local pool or to Slurm; also `sweep status`, `summary` and `run-task`.

use super::spec::SweepSpec;
use super::{JobStatus, SweepDir};
use crate::cli::{GlobalOpts, PoolArgs, SweepAction, SweepArgs};
use anyhow::{anyhow, bail, Result};
use std::path::PathBuf;

/// Flags every job of a sweep inherits from the sweep's command line.
pub(crate) fn job_flags(g: &GlobalOpts) -> Vec<String> {
    let mut f = vec!["--device".to_string(), g.device.clone()];
    if let Some(d) = &g.data_dir {
        f.extend(["--data-dir".to_string(), d.display().to_string()]);
    }
    if let Some(c) = &g.config {
        f.extend(["--config".to_string(), c.display().to_string()]);
    }
    if g.smoke {
        f.push("--smoke".to_string());
    }
    f
}

/// The local pool's options from its flags (no fail-fast, no retries).
pub(crate) fn local_options(g: &GlobalOpts, pool: &PoolArgs) -> crate::sweep::LocalOptions {
    let gpus = match pool.gpus.as_deref() {
        None => vec![],
        Some("all") => (0..tch::Cuda::device_count())
            .map(|i| i.to_string())
            .collect(),
        Some(list) => list.split(',').map(|s| s.trim().to_string()).collect(),
    };
    crate::sweep::LocalOptions {
        workers: pool.workers,
        gpus,
        jobs_per_gpu: pool.jobs_per_gpu,
        fail_fast: false,
        retries: 0,
        retry_failed: pool.retry_failed,
        flags: job_flags(g),
        quiet: g.quiet,
    }
}

/// SIGINT/SIGTERM set this flag; a sweep stops launching jobs and forwards SIGTERM to its
/// running jobs, which checkpoint.
pub(crate) fn stop_flag() -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, std::sync::Arc::clone(&stop))?;
    }
    Ok(stop)
}

/// `stochlab sweep ...`: run a sweep here or on Slurm, or status / summary / run-task.
pub fn main(g: &GlobalOpts, args: SweepArgs) -> Result<i32> {
    match args.action {
        Some(SweepAction::Status { dir }) => {
            print!("{}", SweepDir::open(&dir)?.status_report()?);
            return Ok(0);
        }
        Some(SweepAction::Summary { dir, group_by }) => {
            let (path, table) = SweepDir::open(&dir)?.summary(&group_by)?;
            print!("{table}");
            println!("{}", path.display());
            return Ok(0);
        }
        Some(SweepAction::RunTask { dir, index }) => {
            let sd = SweepDir::open(&dir)?;
            if index >= sd.jobs.len() {
                bail!(
                    "--index {index}: the sweep has {} jobs (0..{})",
                    sd.jobs.len(),
                    sd.jobs.len().saturating_sub(1)
                );
            }
            let stop = stop_flag()?;
            let exe = std::env::current_exe()?;
            // Another process (a local sweep, another task) may hold this job: wait for it,
            // then take over if it stopped without finishing.
            let mut told = false;
            let st = loop {
                match sd.run_job(index, &exe, &job_flags(g), &[], &stop, false)? {
                    super::JobRun::Done(st) => break st,
                    super::JobRun::Busy(h) => {
                        if !told {
                            eprintln!(
                                "job {} is running in {}; waiting for it",
                                sd.jobs[index].id,
                                h.describe()
                            );
                            told = true;
                        }
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            return Ok(143);
                        }
                        std::thread::sleep(std::time::Duration::from_millis(500));
                    }
                }
            };
            sd.write_jobs_csv()?;
            println!("job {} {:?}", st.id, st.status);
            return Ok(match st.status {
                JobStatus::Completed => 0,
                JobStatus::Interrupted => 143,
                _ => 1,
            });
        }
        None => {}
    }
    let target = args.target.clone().unwrap_or_default();
    let path = PathBuf::from(&target);
    let mut spec = if path.is_file() || target.ends_with(".toml") {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow!("cannot read sweep file {target}: {e}"))?;
        let mut spec = SweepSpec::parse(&text, &target)?;
        if !args.overrides.is_empty() {
            let extra = SweepSpec::from_cli(&spec.experiment, &args.overrides)?;
            spec.base.extend(extra.base);
            spec.grid.extend(extra.grid);
            if extra.seeds.is_some() {
                spec.seeds = extra.seeds;
            }
        }
        if spec.name.is_empty() {
            spec.name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        spec
    } else {
        let mut spec = SweepSpec::from_cli(&target, &args.overrides)?;
        use sha2::Digest;
        let digest = sha2::Sha256::digest(args.overrides.join(" ").as_bytes());
        spec.name = readable_name(
            &target,
            &args.overrides,
            &digest
                .iter()
                .take(4)
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
        );
        spec
    };
    if spec.command.is_empty() {
        spec.command = "train".into();
    }
    if let Some(n) = args.name {
        spec.name = n;
    }
    // The sweep directory keeps the sweep as it ran: file, command-line additions and name.
    let text = toml::to_string_pretty(&spec)?;
    let entry = crate::experiments::find(&spec.experiment)?;
    // The jobs' own config: the sweep file's `config`, else --config.
    let mut resolving = g.clone();
    if !spec.config.is_empty() {
        if g.config.is_some() {
            bail!(
                "the sweep file names `config = {:?}`; drop --config",
                spec.config
            );
        }
        resolving.config = Some(PathBuf::from(&spec.config));
    }
    // Every job's config must resolve before anything runs.
    for job in spec.expand()? {
        crate::app::resolve(&resolving, entry, &job.args())
            .map_err(|e| anyhow!("job {} ({}): {e}", job.id, job.args().join(" ")))?;
    }
    let sd = SweepDir::prepare(&g.results, spec, &text)?;
    if args.backend == "slurm" {
        let o = args.slurm.options();
        let (script, id) = crate::sweep::slurm::submit(&sd, &o, &job_flags(g), args.slurm.dry_run)?;
        match id {
            None => print!("{script}"),
            Some(id) => println!(
                "submitted {} jobs as Slurm array {id}; follow with: stochlab sweep status {}",
                sd.jobs.len(),
                sd.dir.display()
            ),
        }
        return Ok(0);
    }
    if args.backend != "local" {
        bail!("--backend {}: use local or slurm", args.backend);
    }
    let mut opts = local_options(g, &args.pool);
    opts.fail_fast = args.fail_fast;
    opts.retries = args.retries;
    let outcome = crate::sweep::run_local(&sd, &opts, stop_flag()?)?;
    print!("{}", sd.status_report()?);
    println!("{}", sd.dir.join("jobs.csv").display());
    if outcome.is_none() {
        let again: Vec<String> = std::env::args().skip(1).collect();
        eprintln!(
            "sweep interrupted: finished jobs are kept; resume with the same command: stochlab {}",
            again.join(" ")
        );
    }
    Ok(match outcome {
        None => 130,
        Some(0) => 0,
        Some(_) => 1,
    })
}

/// A sweep name from the command line: the experiment, the swept keys (last part of each
/// dotted key) and the hash of the whole line, e.g. `classifier-lr-name-seed-3fa2c1d0`.
fn readable_name(experiment: &str, overrides: &[String], hash: &str) -> String {
    let mut parts = vec![experiment.to_string()];
    for o in overrides {
        if let Some((k, v)) = o.split_once('=') {
            if v.contains(',') || v.contains("..") {
                let short = k.rsplit('.').next().unwrap_or(k);
                let short: String = short
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '_' {
                            c
                        } else {
                            '-'
                        }
                    })
                    .collect();
                if !parts.contains(&short) {
                    parts.push(short);
                }
            }
        }
    }
    parts.push(hash.to_string());
    parts.join("-")
}

#[cfg(test)]
mod name_tests {
    #[test]
    fn sweep_names_show_the_experiment_and_swept_keys() {
        let o = ["optim.lr=1e-3,1e-2", "optim.name=adam", "seed=0..4"].map(String::from);
        assert_eq!(
            super::readable_name("classifier", &o, "3fa2c1d0"),
            "classifier-lr-seed-3fa2c1d0"
        );
        assert_eq!(
            super::readable_name("classifier", &[], "ab"),
            "classifier-ab"
        );
    }
}
