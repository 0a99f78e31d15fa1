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
impl From<f32> for Cell {
    fn from(v: f32) -> Self {
        Cell::Float(from_f32(v))
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

/// A value rounded to 15 significant digits, the most a decimal keeps through an f64: drops
/// the representation noise of arithmetic (100 × 0.574 = 57.400000000000006 becomes 57.4).
pub fn clean(v: f64) -> f64 {
    if !v.is_finite() || v == 0.0 {
        return v;
    }
    format!("{v:.14e}").parse().unwrap_or(v)
}

/// An f32 (read back from a tensor) as the f64 of its shortest decimal text: 0.1f32 becomes
/// 0.1, not 0.10000000149011612.
pub fn from_f32(v: f32) -> f64 {
    if !v.is_finite() {
        return v as f64;
    }
    v.to_string().parse().unwrap_or(v as f64)
}

/// The shortest text that reads back to the cleaned value, in exponent form for very small or
/// large magnitudes (what spreadsheets and pandas parse), e.g. 0.25, 57.4, 1e-12, NaN. Every
/// float stochlab writes (CSV cells, run.json) goes through `clean` first, so both agree.
pub fn float(v: f64) -> String {
    format!("{:?}", clean(v))
}

/// A float for run.json: cleaned, and null when not finite (JSON has no NaN).
pub fn json_float(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(clean(v)).map_or(serde_json::Value::Null, Into::into)
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

/// Puts the mean and std (`mean_std`) of per-seed (or per-repeat) values into final metrics as
/// `{name}_mean` and `{name}_std`, the pair the completion line shows as `name=mean±std`.
pub fn insert_mean_std(
    map: &mut serde_json::Map<String, serde_json::Value>,
    name: &str,
    values: &[f64],
) {
    let (mean, std) = mean_std(values);
    map.insert(format!("{name}_mean"), json_float(mean));
    map.insert(format!("{name}_std"), json_float(std));
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
    /// The value as a number (None for text).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Cell::Int(v) => Some(*v as f64),
            Cell::Float(v) => Some(*v),
            Cell::Text(_) => None,
        }
    }
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Cell::Int(v) => (*v).into(),
            Cell::Float(v) => json_float(*v),
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

    /// Reopens a run's file to append: checks the header is the same and drops the rows `keep`
    /// rejects (written after the checkpoint being resumed), so no epoch appears twice.
    pub fn resume(path: &Path, columns: &[&str], keep: Keep<'_>) -> Result<Self> {
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
        let all: Vec<csv::StringRecord> = reader
            .records()
            .collect::<Result<_, _>>()
            .with_context(|| format!("{} is corrupt", path.display()))?;
        let rows: Vec<csv::StringRecord> = match keep {
            Keep::Rows(n) => {
                if all.len() < n {
                    bail!(
                        "{} has {} rows but the checkpoint expects {n}; the file was edited or truncated",
                        path.display(),
                        all.len()
                    );
                }
                all.into_iter().take(n).collect()
            }
            Keep::AtMost { column, value } => {
                let c = columns.iter().position(|h| *h == column).ok_or_else(|| {
                    anyhow::anyhow!("internal: {} has no column `{column}`", path.display())
                })?;
                all.into_iter()
                    .filter(|r| {
                        r.get(c)
                            .and_then(|v| v.parse::<f64>().ok())
                            .is_some_and(|v| v <= value)
                    })
                    .collect()
            }
        };
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

    /// Rewrites the file with its rows sorted by these columns (numbers as numbers; a stable
    /// sort, so rows that tie keep their order) and keeps appending after them: long files
    /// shared by several seeds read seed by seed, epoch by epoch.
    pub fn sort_by(&mut self, keys: &[&str]) -> Result<()> {
        self.writer.flush()?;
        sort_csv(&self.path, keys)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .with_context(|| format!("opening {} to append", self.path.display()))?;
        self.writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(file);
        Ok(())
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

/// A labelled row: a name (e.g. a split) and (column, value) pairs.
pub type NamedRow = (String, Vec<(String, Cell)>);

/// Which rows of a file survive a resume.
#[derive(Debug, Clone, Copy)]
pub enum Keep<'a> {
    /// The first N rows (files written in checkpoint order).
    Rows(usize),
    /// Rows whose `column` is at most `value` (e.g. every epoch up to the checkpoint's, in
    /// whatever order the rows were sorted).
    AtMost { column: &'a str, value: f64 },
}

/// A CSV file's header and rows as text.
pub fn read_table(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let header = r.headers()?.iter().map(str::to_string).collect();
    let rows = r
        .records()
        .map(|x| x.map(|x| x.iter().map(str::to_string).collect()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is corrupt", path.display()))?;
    Ok((header, rows))
}

/// Sorts a CSV file's rows by these columns (stable; numbers compared as numbers), in place.
pub fn sort_csv(path: &Path, keys: &[&str]) -> Result<()> {
    let (header, mut rows) = read_table(path)?;
    let idx: Vec<usize> = keys
        .iter()
        .filter_map(|k| header.iter().position(|h| h == k))
        .collect();
    rows.sort_by(|a, b| {
        for &i in &idx {
            let o = match (a[i].parse::<f64>(), b[i].parse::<f64>()) {
                (Ok(x), Ok(y)) => x.total_cmp(&y),
                _ => a[i].cmp(&b[i]),
            };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    let mut w = csv::Writer::from_writer(vec![]);
    w.write_record(&header)?;
    for r in &rows {
        w.write_record(r)?;
    }
    super::fsutil::write_atomic(path, &w.into_inner()?)
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
        let mut w = MetricsWriter::resume(&p, &cols, Keep::Rows(2)).unwrap();
        assert_eq!(w.last_as_json()["epoch"], 2);
        w.write(vec![3i64.into(), 0.1.into(), "x".into()]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "epoch,loss,note\n1,0.5,\"a,b\"\n2,0.25,\"a,b\"\n3,0.1,x\n"
        );
        assert!(MetricsWriter::resume(&p, &["epoch"], Keep::Rows(1)).is_err());
        assert!(MetricsWriter::resume(&p, &cols, Keep::Rows(9)).is_err());
        assert!(w.write(vec![1i64.into()]).is_err());
    }

    #[test]
    fn resume_by_epoch_and_sorting_by_seed_then_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.csv");
        let cols = ["seed", "epoch", "v"];
        let mut w = MetricsWriter::create(&p, &cols).unwrap();
        for e in [0i64, 10, 20] {
            for s in [0i64, 1] {
                w.write(vec![s.into(), e.into(), 0.5.into()]).unwrap();
            }
        }
        w.sort_by(&["seed", "epoch"]).unwrap();
        w.write(vec![9i64.into(), 1i64.into(), 0.25.into()])
            .unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "seed,epoch,v\n0,0,0.5\n0,10,0.5\n0,20,0.5\n1,0,0.5\n1,10,0.5\n1,20,0.5\n9,1,0.25\n"
        );
        drop(w);
        let keep = Keep::AtMost {
            column: "epoch",
            value: 10.0,
        };
        MetricsWriter::resume(&p, &cols, keep).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "seed,epoch,v\n0,0,0.5\n0,10,0.5\n1,0,0.5\n1,10,0.5\n9,1,0.25\n"
        );
    }

    #[test]
    fn floats_are_written_without_representation_noise() {
        assert_eq!(Cell::Float(0.1 + 0.2).render(), "0.3");
        assert_eq!(Cell::Float(100.0 * 0.574).render(), "57.4");
        assert_eq!(Cell::from(0.1f32).render(), "0.1");
        assert_eq!(Cell::Float(1e-12).render(), "1e-12");
        assert_eq!(Cell::Float(f64::NAN).render(), "NaN");
        assert_eq!(Cell::from(10usize).render(), "10");
        // 15 significant digits survive: a value read back is the value written.
        let v = 2.0f64 / 3.0;
        assert_eq!(float(float(v).parse().unwrap()), float(v));
        assert_eq!(
            Cell::Float(v).to_json(),
            serde_json::json!(0.666666666666667)
        );
    }

    #[test]
    fn insert_mean_std_puts_sample_mean_and_std_under_paired_keys() {
        let mut m = serde_json::Map::new();
        // 2, 4, 9: mean 5, sample variance ((-3)² + (-1)² + 4²) / 2 = 13.
        insert_mean_std(&mut m, "acc", &[2.0, 4.0, 9.0]);
        assert_eq!(m["acc_mean"], serde_json::json!(5.0));
        assert!((m["acc_std"].as_f64().unwrap() - 13f64.sqrt()).abs() < 1e-12);
        insert_mean_std(&mut m, "one", &[0.5]);
        assert_eq!(m["one_mean"], serde_json::json!(0.5));
        assert_eq!(m["one_std"], serde_json::json!(0.0));
        // No values: null (JSON has no NaN), never a made-up number.
        insert_mean_std(&mut m, "none", &[]);
        assert!(m["none_mean"].is_null() && m["none_std"].is_null());
        assert_eq!(
            m.keys().collect::<Vec<_>>(),
            [
                "acc_mean",
                "acc_std",
                "one_mean",
                "one_std",
                "none_mean",
                "none_std"
            ]
        );
    }
}
