//! Scientific-model figures: accuracy against the spurious bias b per arm (graph-reweight).

use super::figure::{Colour, Figure, Mark, Panel, Scale, Series};
use super::table::Table;
use anyhow::Result;
use std::path::Path;

/// graph-reweight: test accuracy (uniform, large bases), validation accuracy (uniform bases,
/// training sizes) and effective sample size against the training bias b, one line per arm
/// (mean ± std over seeds from summary.csv; ESS without bars).
pub fn graph_reweight(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "summary.csv")? else {
        return Ok(None);
    };
    if !t.has("ldec_between") || !t.has("bias") || !t.has("arm") {
        return Ok(None);
    }
    let (cb, ca) = (t.col("bias")?, t.col("arm")?);
    let arms = t.distinct(ca);
    let mut panels = vec![];
    for (col, std, title, ylabel) in [
        (
            "test_acc",
            Some("test_acc_std"),
            "test: uniform bases, ~5× larger graphs",
            "accuracy",
        ),
        (
            "val_acc",
            Some("val_acc_std"),
            "validation: uniform bases, training sizes",
            "accuracy",
        ),
        (
            "ess",
            None,
            "effective sample size of the weights",
            "(Σw)²/Σw² / B",
        ),
    ] {
        let cy = t.col(col)?;
        let mut series = vec![];
        for (i, arm) in arms.iter().enumerate() {
            let mut rows: Vec<&Vec<String>> = t.rows.iter().filter(|r| r[ca] == *arm).collect();
            rows.sort_by(|a, b| {
                let x = |r: &Vec<String>| Table::num(r, cb).unwrap_or(f64::NAN);
                x(a).total_cmp(&x(b))
            });
            let pts: Vec<(f64, f64)> = rows
                .iter()
                .filter_map(|r| Some((Table::num(r, cb)?, Table::num(r, cy)?)))
                .collect();
            let mut s = Series::new(arm.clone(), Colour::Palette(i), Mark::LinePoints, pts);
            if let Some(sc) = std.map(|c| t.col(c)).transpose()? {
                let err: Vec<f64> = rows
                    .iter()
                    .filter(|r| Table::num(r, cb).is_some() && Table::num(r, cy).is_some())
                    .map(|r| Table::num(r, sc).unwrap_or(0.0))
                    .collect();
                s = s.y_errors(&err);
            }
            series.push(s);
        }
        panels.push(Panel::fitted(
            title,
            ("training bias b", Scale::Linear),
            (ylabel, Scale::Linear),
            series,
        ));
    }
    Ok(Some(Figure::new(
        "graph_reweight",
        "Spurious-Motif: accuracy against the spurious bias b per arm (mean ± std over seeds)",
        panels,
    )))
}
