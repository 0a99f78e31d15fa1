//! `metrics.csv`: a header fixed when the run starts, one RFC-4180 row per epoch or logging
//! step, flushed as written so a crash loses nothing already reported.

use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// One cell of a metrics row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Int(i64),
    Float(f64),
    Text(String),
}

impl From<i64> for Cell {
    fn from(v: i64) -> Self {
        Cell::Int(v)
    }
}
impl From<usize> for Cell {
    fn from(v: usize) -> Self {
        Cell::Int(v as i64)
    }
}
impl From<f64> for Cell {
    fn from(v: f64) -> Self {
        Cell::Float(v)
    }
}
impl From<&str> for Cell {
    fn from(v: &str) -> Self {
        Cell::Text(v.to_string())
    }
}
impl From<String> for Cell {
    fn from(v: String) -> Self {
        Cell::Text(v)
    }
}

/// Shortest text that reads back to the same f64, in exponent form for very small or large
/// magnitudes (what spreadsheets and pandas parse), e.g. 0.25, 1e-12, NaN.
pub fn float(v: f64) -> String {
    format!("{v:?}")
}

/// Mean and sample standard deviation (std 0 for one value; NaN for none): the summary over
/// seeds that experiments and sweeps report.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

impl Cell {
    /// Shortest text that reads back to the same value, so CSVs compare exactly.
    pub fn render(&self) -> String {
        match self {
            Cell::Int(v) => v.to_string(),
            Cell::Float(v) => float(*v),
            Cell::Text(s) => s.clone(),
        }
    }
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Cell::Int(v) => (*v).into(),
            Cell::Float(v) => {
                serde_json::Number::from_f64(*v).map_or(serde_json::Value::Null, Into::into)
            }
            Cell::Text(s) => s.clone().into(),
        }
    }
}

pub struct MetricsWriter {
    path: PathBuf,
    columns: Vec<String>,
    writer: csv::Writer<File>,
    rows: usize,
    last: Vec<Cell>,
}

impl MetricsWriter {
    /// Starts a new file with the header.
    pub fn create(path: &Path, columns: &[&str]) -> Result<Self> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = Self::wrap(path, columns, file, 0);
        w.writer
            .write_record(columns)
            .and_then(|_| Ok(w.writer.flush()?))
            .with_context(|| format!("writing the header of {}", path.display()))?;
        Ok(w)
    }

    /// Reopens a run's file to append: checks the header is the same and drops rows past
    /// `keep_rows` (written after the checkpoint being resumed), so no epoch appears twice.
    pub fn resume(path: &Path, columns: &[&str], keep_rows: usize) -> Result<Self> {
        let mut reader = csv::Reader::from_path(path)
            .with_context(|| format!("reading {} to resume", path.display()))?;
        let header: Vec<String> = reader.headers()?.iter().map(str::to_string).collect();
        if header != columns {
            bail!(
                "{} has columns [{}] but this run writes [{}]; resume with the same stochlab version",
                path.display(),
                header.join(","),
                columns.join(",")
            );
        }
        let rows: Vec<csv::StringRecord> = reader
            .records()
            .take(keep_rows)
            .collect::<Result<_, _>>()
            .with_context(|| format!("{} is corrupt", path.display()))?;
        if rows.len() < keep_rows {
            bail!(
                "{} has {} rows but the checkpoint expects {keep_rows}; the file was edited or truncated",
                path.display(),
                rows.len()
            );
        }
        let mut buf = csv::Writer::from_writer(vec![]);
        buf.write_record(columns)?;
        for r in &rows {
            buf.write_record(r)?;
        }
        super::fsutil::write_atomic(path, &buf.into_inner()?)?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .with_context(|| format!("opening {} to append", path.display()))?;
        let mut w = Self::wrap(path, columns, file, rows.len());
        if let Some(r) = rows.last() {
            w.last = r.iter().map(parse_cell).collect();
        }
        Ok(w)
    }

    fn wrap(path: &Path, columns: &[&str], file: File, rows: usize) -> Self {
        MetricsWriter {
            path: path.to_path_buf(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            writer: csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(file),
            rows,
            last: vec![],
        }
    }

    pub fn write(&mut self, row: Vec<Cell>) -> Result<()> {
        if row.len() != self.columns.len() {
            bail!(
                "internal: a metrics row has {} values for {} columns ({})",
                row.len(),
                self.columns.len(),
                self.columns.join(",")
            );
        }
        let text: Vec<String> = row.iter().map(Cell::render).collect();
        self.writer
            .write_record(&text)
            .and_then(|_| Ok(self.writer.flush()?))
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.rows += 1;
        self.last = row;
        Ok(())
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The last row as a JSON object (for run.json's final metrics).
    pub fn last_as_json(&self) -> serde_json::Map<String, serde_json::Value> {
        self.columns
            .iter()
            .zip(&self.last)
            .map(|(c, v)| (c.clone(), v.to_json()))
            .collect()
    }
}

fn parse_cell(s: &str) -> Cell {
    if let Ok(i) = s.parse::<i64>() {
        Cell::Int(i)
    } else if let Ok(f) = s.parse::<f64>() {
        Cell::Float(f)
    } else {
        Cell::Text(s.to_string())
    }
}

/// Up to `n` of a run's final metrics as `key=value`, accuracies first, then errors, then
/// losses, then the rest (for one-line listings: `stochlab runs`, sweep progress).
pub fn headline(m: &serde_json::Map<String, serde_json::Value>, n: usize) -> Vec<String> {
    let rank = |k: &str| {
        if k.ends_with("acc") {
            0
        } else if k.ends_with("err") || k.contains("error") {
            1
        } else if k.ends_with("loss") {
            2
        } else {
            3
        }
    };
    let mut keys: Vec<(&String, &serde_json::Number)> = m
        .iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::Number(x) => Some((k, x)),
            _ => None,
        })
        .collect();
    keys.sort_by_key(|(k, _)| rank(k));
    keys.iter()
        .take(n)
        .map(|(k, v)| match v.as_f64() {
            Some(f) if v.is_f64() => format!("{k}={f:.4}"),
            _ => format!("{k}={v}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_drops_rows_after_the_checkpoint_and_appends_without_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.csv");
        let cols = ["epoch", "loss", "note"];
        let mut w = MetricsWriter::create(&p, &cols).unwrap();
        for e in 1..=3i64 {
            w.write(vec![e.into(), (0.5 / e as f64).into(), "a,b".into()])
                .unwrap();
        }
        drop(w);
        let mut w = MetricsWriter::resume(&p, &cols, 2).unwrap();
        assert_eq!(w.last_as_json()["epoch"], 2);
        w.write(vec![3i64.into(), 0.1.into(), "x".into()]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "epoch,loss,note\n1,0.5,\"a,b\"\n2,0.25,\"a,b\"\n3,0.1,x\n"
        );
        assert!(MetricsWriter::resume(&p, &["epoch"], 1).is_err());
        assert!(MetricsWriter::resume(&p, &cols, 9).is_err());
        assert!(w.write(vec![1i64.into()]).is_err());
    }

    #[test]
    fn floats_round_trip_exactly() {
        let v = 0.1f64 + 0.2;
        assert_eq!(Cell::Float(v).render().parse::<f64>().unwrap(), v);
    }
}
