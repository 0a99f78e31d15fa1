//! A CSV file read whole, with columns by name: what claims and figures read back from a run.
//! Errors name the file and the column, so a claim on a run that lacks them says what is
//! missing.

use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct CsvTable {
    pub path: PathBuf,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl CsvTable {
    pub fn read(path: &Path) -> Result<Self> {
        if !path.exists() {
            bail!("{} is missing", path.display());
        }
        let mut r =
            csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
        let header = r
            .headers()
            .with_context(|| format!("reading the header of {}", path.display()))?
            .iter()
            .map(str::to_string)
            .collect();
        let rows = r
            .records()
            .map(|x| x.map(|x| x.iter().map(str::to_string).collect()))
            .collect::<Result<_, _>>()
            .with_context(|| format!("{} is corrupt", path.display()))?;
        Ok(CsvTable {
            path: path.to_path_buf(),
            header,
            rows,
        })
    }

    fn name(&self) -> String {
        self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |n| n.to_string_lossy().into(),
        )
    }

    pub fn has(&self, column: &str) -> bool {
        self.header.iter().any(|h| h == column)
    }

    pub fn col(&self, column: &str) -> Result<usize> {
        self.header
            .iter()
            .position(|h| h == column)
            .ok_or_else(|| anyhow!("{} has no column `{column}`", self.name()))
    }

    /// A quantity whose header names its unit (`I_XT_bits`, `true_mi_nats`): the column and the
    /// unit. Files written before units moved into headers have a plain `I_XT` and a `units`
    /// column; then the unit is the first row's.
    pub fn unit_column(&self, name: &str) -> Result<(String, String)> {
        unit_column(&self.header, self.rows.first().map(Vec::as_slice), name).ok_or_else(|| {
            anyhow!(
                "{} has no column `{name}_bits` or `{name}_nats`",
                self.name()
            )
        })
    }

    /// Rows whose named columns hold the given texts.
    pub fn select(&self, filters: &[(&str, &str)]) -> Result<Vec<&Vec<String>>> {
        let idx: Vec<(usize, &str)> = filters
            .iter()
            .map(|(c, v)| Ok((self.col(c)?, *v)))
            .collect::<Result<_>>()?;
        Ok(self
            .rows
            .iter()
            .filter(|r| {
                idx.iter()
                    .all(|(i, v)| r.get(*i).map(String::as_str) == Some(*v))
            })
            .collect())
    }

    /// A column of the selected rows as numbers (an empty cell is an error naming the file).
    pub fn numbers(&self, column: &str, filters: &[(&str, &str)]) -> Result<Vec<f64>> {
        let c = self.col(column)?;
        self.select(filters)?
            .iter()
            .map(|r| self.parse(&r[c], column))
            .collect()
    }

    /// The one number in `column` of the single row matching `filters`.
    pub fn number(&self, column: &str, filters: &[(&str, &str)]) -> Result<f64> {
        let v = self.numbers(column, filters)?;
        match v.as_slice() {
            [x] => Ok(*x),
            [] => bail!("{} has no row with {}", self.name(), show(filters)),
            _ => bail!(
                "{} has {} rows with {}, expected one",
                self.name(),
                v.len(),
                show(filters)
            ),
        }
    }

    /// Distinct texts of a column, in order of first appearance.
    pub fn distinct(&self, column: &str) -> Result<Vec<String>> {
        let c = self.col(column)?;
        let mut out: Vec<String> = vec![];
        for r in &self.rows {
            if !out.contains(&r[c]) {
                out.push(r[c].clone());
            }
        }
        Ok(out)
    }

    pub fn parse(&self, cell: &str, column: &str) -> Result<f64> {
        cell.trim().parse::<f64>().map_err(|_| {
            anyhow!(
                "{} column `{column}` holds `{cell}`, not a number",
                self.name()
            )
        })
    }
}

/// The column of a quantity with its unit: `<name>_bits` / `<name>_nats`, or (files written
/// before units moved into the header) `<name>` with the unit in a `units` column.
pub fn unit_column(
    header: &[String],
    first_row: Option<&[String]>,
    name: &str,
) -> Option<(String, String)> {
    let has = |c: &str| header.iter().any(|h| h == c);
    for u in ["bits", "nats"] {
        let c = format!("{name}_{u}");
        if has(&c) {
            return Some((c, u.to_string()));
        }
    }
    if has(name) {
        let unit = header
            .iter()
            .position(|h| h == "units")
            .and_then(|c| first_row.and_then(|r| r.get(c)).cloned())
            .unwrap_or_else(|| "nats".into());
        return Some((name.to_string(), unit));
    }
    None
}

fn show(filters: &[(&str, &str)]) -> String {
    if filters.is_empty() {
        return "no filter".into();
    }
    filters
        .iter()
        .map(|(c, v)| format!("{c}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_and_parses_by_column_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        std::fs::write(&p, "arm,seed,acc\na,0,0.5\na,1,0.7\nb,0,x\n").unwrap();
        let t = CsvTable::read(&p).unwrap();
        assert_eq!(t.numbers("acc", &[("arm", "a")]).unwrap(), vec![0.5, 0.7]);
        assert_eq!(
            t.number("acc", &[("arm", "a"), ("seed", "1")]).unwrap(),
            0.7
        );
        assert_eq!(t.distinct("arm").unwrap(), vec!["a", "b"]);
        let e = t.number("acc", &[("arm", "a")]).unwrap_err().to_string();
        assert!(e.contains("2 rows with arm=a"), "{e}");
        let e = t.numbers("acc", &[("arm", "b")]).unwrap_err().to_string();
        assert!(e.contains("`acc` holds `x`"), "{e}");
        let e = t.col("loss").unwrap_err().to_string();
        assert_eq!(e, "s.csv has no column `loss`");
        let e = CsvTable::read(&dir.path().join("none.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("none.csv is missing"), "{e}");
    }
}
