//! `stochlab runs` (every run under the results folder, filtered and sorted) and `stochlab
//! compare` (the config keys that differ between runs, next to their final metrics). Both read
//! only run.json and config.toml; `plot --compare` uses the same records.

use crate::run::{self, RunInfo};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One run directory as read back.
#[derive(Debug, Clone)]
pub struct Record {
    pub dir: PathBuf,
    pub info: RunInfo,
    /// config.toml flattened to dotted keys, values as TOML text (strings bare).
    pub config: BTreeMap<String, String>,
}

impl Record {
    pub fn load(dir: &Path) -> Result<Self> {
        let info = run::read_info(dir)?;
        let path = dir.join(run::CONFIG_TOML);
        let mut config = BTreeMap::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            let table: toml::Table = toml::from_str(&text)
                .with_context(|| format!("{} is not valid TOML", path.display()))?;
            flatten("", &table, &mut config);
        }
        Ok(Record {
            dir: dir.to_path_buf(),
            info,
            config,
        })
    }
    /// The directory name (timestamp-id, or the sweep job id).
    pub fn id(&self) -> String {
        self.dir
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
    /// `key=value` arguments of the command line that made the run.
    pub fn overrides(&self) -> Vec<String> {
        self.info
            .command_line
            .iter()
            .skip(1)
            .filter(|a| a.contains('=') && !a.starts_with('-'))
            .cloned()
            .collect()
    }
    /// A field for `--where`: run.json's name/tag/status/experiment/seed/device, else a config
    /// key, else a final metric.
    pub fn field(&self, key: &str) -> Option<Vec<String>> {
        let i = &self.info;
        let one = |s: String| Some(vec![s]);
        match key {
            "name" => i.name.clone().map(|n| vec![n]),
            "tag" | "tags" => Some(i.tags.clone()),
            "status" => one(i.status.as_str().into()),
            "experiment" => one(i.experiment.clone()),
            "seed" => one(i.seed.to_string()),
            "device" => one(i.device.clone()),
            _ => self
                .config
                .get(key)
                .cloned()
                .or_else(|| i.final_metrics.get(key).map(json_text))
                .map(|v| vec![v]),
        }
    }
    pub fn metric(&self, key: &str) -> Option<f64> {
        match key {
            "duration" | "seconds" => self.info.seconds,
            _ => self.info.final_metrics.get(key)?.as_f64(),
        }
    }
}

fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.4}"),
            _ => n.to_string(),
        },
        v => v.to_string(),
    }
}

fn flatten(prefix: &str, t: &toml::Table, out: &mut BTreeMap<String, String>) {
    for (k, v) in t {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            toml::Value::String(s) => {
                out.insert(key, s.clone());
            }
            v => {
                out.insert(key, v.to_string());
            }
        }
    }
}

/// Every run directory under `root` (not descending into a run: its nested child runs belong
/// to it), sorted by start time.
pub fn find(root: &Path) -> Result<Vec<Record>> {
    fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
        if dir.join(run::RUN_JSON).is_file() {
            out.push(dir.to_path_buf());
            return;
        }
        if depth == 0 {
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for d in dirs {
            walk(&d, depth - 1, out);
        }
    }
    if !root.is_dir() {
        bail!(
            "no results folder at {}: train something first, or point --results at one",
            root.display()
        );
    }
    let mut dirs = vec![];
    walk(root, 5, &mut dirs);
    let mut out = vec![];
    for d in dirs {
        // A run.json being written right now, or from another version: skip it, say so.
        match Record::load(&d) {
            Ok(r) => out.push(r),
            Err(e) => eprintln!("skipping {}: {e:#}", d.display()),
        }
    }
    // Start time, then the directory (timestamp-id) for runs started at the same instant, so
    // the order never depends on the order the file system lists folders in.
    out.sort_by(|a, b| {
        a.info
            .start
            .cmp(&b.info.start)
            .then_with(|| a.dir.cmp(&b.dir))
    });
    Ok(out)
}

/// Run directories named on the command line; a sweep directory (or any folder that is not a
/// run) stands for the runs under it.
pub fn expand(dirs: &[PathBuf]) -> Result<Vec<Record>> {
    let mut out = vec![];
    for d in dirs {
        if d.join(run::RUN_JSON).is_file() {
            out.push(Record::load(d)?);
        } else if d.is_dir() {
            let found = find(d)?;
            if found.is_empty() {
                bail!("{} holds no run directories", d.display());
            }
            out.extend(found);
        } else {
            bail!("{} is not a run or sweep directory", d.display());
        }
    }
    Ok(out)
}

/// Config keys whose values are not the same in every record (a key missing from some counts).
pub fn differing_keys(records: &[Record]) -> Vec<String> {
    let mut keys: Vec<&String> = records.iter().flat_map(|r| r.config.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| {
            let first = records[0].config.get(*k);
            records.iter().any(|r| r.config.get(*k) != first)
        })
        .cloned()
        .collect()
}

/// Numbers compare as numbers (`0.01` = `1e-2`), everything else as text.
fn same(a: &str, b: &str) -> bool {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.trim_matches('"') == b.trim_matches('"'),
    }
}

fn duration(secs: Option<f64>) -> String {
    let Some(s) = secs else {
        return String::new();
    };
    let s = s.round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// Prints rows as aligned columns (long cells cut, the last column whole), or as CSV. A closed
/// pipe (`| head`) ends the output quietly.
pub fn print_table(header: &[String], rows: &[Vec<String>], csv: bool) -> Result<()> {
    use std::io::Write;
    let quiet_pipe = |r: std::io::Result<()>| match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    };
    let mut out = std::io::stdout().lock();
    if csv {
        let mut w = csv::Writer::from_writer(vec![]);
        w.write_record(header)?;
        for r in rows {
            w.write_record(r)?;
        }
        quiet_pipe(out.write_all(&w.into_inner()?))?;
        return Ok(());
    }
    let last = header.len().saturating_sub(1);
    let cut = |i: usize, s: &str| {
        if i < last && s.chars().count() > 40 {
            format!("{}…", s.chars().take(39).collect::<String>())
        } else {
            s.to_string()
        }
    };
    let cells: Vec<Vec<String>> = std::iter::once(header.to_vec())
        .chain(rows.iter().cloned())
        .map(|r| r.iter().enumerate().map(|(i, c)| cut(i, c)).collect())
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for r in &cells {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:w$}"))
            .collect();
        text += line.join("  ").trim_end();
        text.push('\n');
    }
    quiet_pipe(out.write_all(text.as_bytes()))?;
    Ok(())
}

pub struct RunsQuery<'a> {
    pub experiment: Option<&'a str>,
    pub status: &'a [String],
    pub filters: &'a [String],
    pub sort: Option<&'a str>,
    pub csv: bool,
}

/// Runs under `root` matching the query, as rows (header, rows).
pub fn runs_table(root: &Path, q: &RunsQuery) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let mut records = find(root)?;
    if let Some(e) = q.experiment {
        crate::experiments::find(e)?;
        records.retain(|r| r.info.experiment == e);
    }
    for s in q.status {
        if !["running", "completed", "failed", "interrupted"].contains(&s.as_str()) {
            bail!("unknown --status `{s}`: use running, completed, failed or interrupted");
        }
    }
    if !q.status.is_empty() {
        records.retain(|r| q.status.iter().any(|s| s == r.info.status.as_str()));
    }
    for f in q.filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow!("--where `{f}` needs the form key=value, e.g. optim.lr=0.01"))?;
        if !records.is_empty() && records.iter().all(|r| r.field(k).is_none()) {
            bail!("no run has `{k}` (a config key such as optim.lr, a final metric, or name, tag, status, seed, device)");
        }
        records.retain(|r| {
            r.field(k)
                .is_some_and(|vals| vals.iter().any(|x| same(x, v)))
        });
    }
    if let Some(key) = q.sort {
        let (key, desc) = match key.strip_prefix('-') {
            Some(k) => (k, true),
            None => (key, false),
        };
        if !records.is_empty()
            && !matches!(key, "date" | "start")
            && records.iter().all(|r| r.metric(key).is_none())
        {
            bail!("no run has the metric `{key}` to sort by (a final metric in run.json, date or duration)");
        }
        // Runs without the metric go last either way.
        records.sort_by(|a, b| {
            if matches!(key, "date" | "start") {
                let o = a.info.start.cmp(&b.info.start);
                return if desc { o.reverse() } else { o };
            }
            match (a.metric(key), b.metric(key)) {
                (Some(x), Some(y)) => {
                    let o = x.total_cmp(&y);
                    if desc {
                        o.reverse()
                    } else {
                        o
                    }
                }
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            }
        });
    }
    let mut header: Vec<String> = [
        "id",
        "experiment",
        "name",
        "tags",
        "status",
        "date",
        "duration",
        "seed",
        "overrides",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // CSV: every final metric its own column (and the directory); terminal: a headline.
    let mut metric_keys: Vec<String> = vec![];
    if q.csv {
        for r in &records {
            for (k, v) in &r.info.final_metrics {
                if v.is_number() && !metric_keys.contains(k) && !header.contains(k) {
                    metric_keys.push(k.clone());
                }
            }
        }
        header.extend(metric_keys.iter().cloned());
        header.push("dir".into());
    } else {
        header.push("metrics".into());
    }
    if records.is_empty() {
        eprintln!("no runs match under {}", root.display());
    }
    let rows = records
        .iter()
        .map(|r| {
            let i = &r.info;
            let mut row = vec![
                r.id(),
                i.experiment.clone(),
                i.name.clone().unwrap_or_default(),
                i.tags.join(","),
                i.status.as_str().into(),
                i.start.get(..16).unwrap_or(&i.start).replace('T', " "),
                duration(i.seconds),
                i.seed.to_string(),
                r.overrides().join(" "),
            ];
            if q.csv {
                for k in &metric_keys {
                    row.push(i.final_metrics.get(k).map(json_text).unwrap_or_default());
                }
                row.push(r.dir.display().to_string());
            } else {
                row.push(crate::run::metrics::headline(&i.final_metrics, 3).join(" "));
            }
            row
        })
        .collect();
    Ok((header, rows))
}

/// `compare`: one row per run with the config keys that differ and the final metrics (or
/// just `metrics`).
pub fn compare_table(
    dirs: &[PathBuf],
    metrics: &[String],
) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let records = expand(dirs)?;
    if records.len() < 2 {
        bail!("compare needs at least two runs (or a sweep directory holding them)");
    }
    let keys = differing_keys(&records);
    let mut all: Vec<String> = vec![];
    for r in &records {
        for (k, v) in &r.info.final_metrics {
            if v.is_number() && !all.contains(k) {
                all.push(k.clone());
            }
        }
    }
    for m in metrics {
        if !all.contains(m) {
            bail!(
                "no run has the final metric `{m}`; they have: {}",
                all.join(", ")
            );
        }
    }
    let shown: Vec<String> = if metrics.is_empty() {
        all
    } else {
        metrics.to_vec()
    };
    let mut header = vec!["run".to_string(), "experiment".into(), "status".into()];
    header.extend(keys.iter().cloned());
    header.extend(shown.iter().cloned());
    let rows = records
        .iter()
        .map(|r| {
            let mut row = vec![
                r.info.name.clone().unwrap_or_else(|| r.id()),
                r.info.experiment.clone(),
                r.info.status.as_str().into(),
            ];
            row.extend(
                keys.iter()
                    .map(|k| r.config.get(k).cloned().unwrap_or_else(|| "—".into())),
            );
            row.extend(shown.iter().map(|k| {
                r.info
                    .final_metrics
                    .get(k)
                    .map(json_text)
                    .unwrap_or_default()
            }));
            row
        })
        .collect();
    Ok((header, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_compare_as_numbers_when_they_are() {
        assert!(same("0.01", "1e-2"));
        assert!(same("adam", "\"adam\""));
        assert!(!same("0.01", "0.02"));
        assert_eq!(duration(Some(75.0)), "1m15s");
        assert_eq!(duration(Some(7260.0)), "2h01m");
    }
}
