//! A CSV as text cells addressed by column name, with number parsing for figures.

use anyhow::{anyhow, Context, Result};
use std::path::Path;

#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn read(path: &Path) -> Result<Self> {
        let mut r =
            csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
        let header = r.headers()?.iter().map(str::to_string).collect();
        let rows = r
            .records()
            .map(|x| x.map(|x| x.iter().map(str::to_string).collect()))
            .collect::<Result<_, _>>()
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(Table {
            name: path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            header,
            rows,
        })
    }
    /// `<dir>/<name>` when it exists and has at least one row.
    pub fn read_rows(dir: &Path, name: &str) -> Result<Option<Self>> {
        let path = dir.join(name);
        if !path.exists() {
            return Ok(None);
        }
        let t = Self::read(&path)?;
        Ok((!t.rows.is_empty()).then_some(t))
    }
    pub fn has(&self, name: &str) -> bool {
        self.header.iter().any(|h| h == name)
    }
    pub fn col(&self, name: &str) -> Result<usize> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| anyhow!("{} has no column `{name}`", self.name))
    }
    /// A cell as a number; empty or unparsable cells (e.g. `nan`) are `None`.
    pub fn num(row: &[String], c: usize) -> Option<f64> {
        row.get(c)
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite())
    }
    /// The distinct values of a column, in order of first appearance.
    pub fn distinct(&self, c: usize) -> Vec<String> {
        let mut out: Vec<String> = vec![];
        for r in &self.rows {
            if !out.contains(&r[c]) {
                out.push(r[c].clone());
            }
        }
        out
    }
    /// The first value of a text column, if the column exists (e.g. `units`).
    /// The column index and unit of a quantity (`I_XT_bits`, or `I_XT` + `units`).
    pub fn unit_col(&self, name: &str) -> Option<(usize, String)> {
        let (c, u) = crate::run::table::unit_column(
            &self.header,
            self.rows.first().map(Vec::as_slice),
            name,
        )?;
        Some((self.col(&c).ok()?, u))
    }
    pub fn first(&self, name: &str) -> Option<String> {
        let c = self.col(name).ok()?;
        self.rows.first().map(|r| r[c].clone())
    }
    /// Number of distinct seeds (1 without a `seed` column).
    pub fn seeds(&self) -> usize {
        self.col("seed").map_or(1, |c| self.distinct(c).len())
    }
    /// (x, y) of every row where both are numbers and `keep` holds.
    pub fn xy(&self, x: usize, y: usize, keep: impl Fn(&[String]) -> bool) -> Vec<(f64, f64)> {
        self.rows
            .iter()
            .filter(|r| keep(r))
            .filter_map(|r| Some((Self::num(r, x)?, Self::num(r, y)?)))
            .collect()
    }
}
