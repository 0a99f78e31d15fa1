//! Experiments made of nested `classifier` runs (`runs/<name>/` in the parent's directory, each
//! resumable on its own): training them in order, and merging their per-epoch rows into the
//! parent's metrics.csv with label columns in front.

use super::classifier;
use crate::config;
use crate::run::fsutil::write_atomic;
use crate::run::{Child, Outcome, RunContext, RunInfo, Status};
use anyhow::Result;
use toml::Table;

/// One nested run: its directory name, labels (values for the parent's label columns), config
/// and seed.
pub struct Job {
    pub name: String,
    pub labels: Vec<String>,
    pub config: classifier::Config,
    pub seed: u64,
}

/// Trains the jobs not completed yet; a failed job is reported and skipped. Returns the
/// outcome to stop with when a job was interrupted.
pub fn train(ctx: &mut RunContext, tag: &str, jobs: &[Job]) -> Result<Option<Outcome>> {
    for job in jobs {
        let table = Table::try_from(&job.config)?;
        let text = config::to_toml(&table, job.seed)?;
        let Child::Ready(mut child) =
            ctx.child(&job.name, classifier::ENTRY.name, &text, job.seed)?
        else {
            continue;
        };
        if !ctx.quiet {
            eprintln!("[{tag}] training {}", job.name);
        }
        let outcome = (classifier::ENTRY.train)(&table, &mut child);
        child.finish(&outcome)?;
        match outcome {
            Ok(Outcome::Interrupted(sig)) => return Ok(Some(Outcome::Interrupted(sig))),
            Ok(Outcome::Completed) => {}
            Err(e) if !ctx.quiet => {
                eprintln!("[{tag}] {} failed: {}", job.name, crate::app::one_line(&e))
            }
            Err(_) => {}
        }
    }
    Ok(None)
}

/// A finished job as read back: its run.json and metrics rows (header, rows).
pub struct Finished<'a> {
    pub job: &'a Job,
    pub info: RunInfo,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Finished<'_> {
    /// A final metric from run.json (NaN when absent).
    pub fn last(&self, key: &str) -> f64 {
        self.info
            .final_metrics
            .get(key)
            .and_then(|v| v.as_f64())
            .unwrap_or(f64::NAN)
    }

    /// A column of metrics.csv as numbers.
    pub fn column(&self, key: &str) -> Vec<f64> {
        match self.header.iter().position(|h| h == key) {
            Some(c) => self
                .rows
                .iter()
                .map(|r| r[c].parse().unwrap_or(f64::NAN))
                .collect(),
            None => vec![],
        }
    }
}

/// Reads every job's run (completed ones in `.0`, the count of failed ones per job in `.1`)
/// and rewrites the parent's metrics.csv: `label_names` then each child's columns.
pub fn collect<'a>(
    ctx: &RunContext,
    label_names: &[&str],
    jobs: &'a [Job],
) -> Result<(Vec<Finished<'a>>, Vec<bool>)> {
    let mut done = vec![];
    let mut failed = vec![];
    for job in jobs {
        let dir = ctx.dir.join("runs").join(&job.name);
        let info = crate::run::read_info(&dir).ok();
        failed.push(matches!(&info, Some(i) if i.status == Status::Failed));
        let Some(info) = info.filter(|i| i.status == Status::Completed) else {
            continue;
        };
        let mut rdr = csv::Reader::from_path(dir.join(crate::run::METRICS_CSV))?;
        let header: Vec<String> = rdr.headers()?.iter().map(str::to_string).collect();
        let rows = rdr
            .records()
            .map(|r| r.map(|r| r.iter().map(str::to_string).collect()))
            .collect::<Result<_, _>>()?;
        done.push(Finished {
            job,
            info,
            header,
            rows,
        });
    }
    if let Some(first) = done.first() {
        let header: Vec<&str> = label_names
            .iter()
            .copied()
            .chain(first.header.iter().map(String::as_str))
            .collect();
        let rows: Vec<Vec<String>> = done
            .iter()
            .flat_map(|f| {
                f.rows
                    .iter()
                    .map(|r| f.job.labels.iter().chain(r).cloned().collect())
            })
            .collect();
        write_atomic(
            &ctx.dir.join(crate::run::METRICS_CSV),
            &csv_bytes(&header, &rows)?,
        )?;
    }
    Ok((done, failed))
}

/// A CSV file's bytes.
pub fn csv_bytes(header: &[&str], rows: &[Vec<String>]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(vec![]);
    w.write_record(header)?;
    for r in rows {
        w.write_record(r)?;
    }
    Ok(w.into_inner()?)
}
