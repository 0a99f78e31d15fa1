//! Compression figures (trp): decomposed accuracy against the parameter reduction of the
//! decomposed layers per arm, and each layer's energy rank over training.

use super::figure::{Colour, Figure, Mark, Panel, Scale, Series};
use super::table::Table;
use anyhow::Result;
use std::path::Path;

/// trp: accuracy of the decomposed model (no fine-tuning) against its parameter reduction,
/// one panel per net, one colour per arm; the baseline's full accuracy as a grey line.
pub fn trp_accuracy(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "summary.csv")? else {
        return Ok(None);
    };
    let (Ok(cn), Ok(cr)) = (t.col("net"), t.col("param_reduction")) else {
        return Ok(None);
    };
    let (ca, cd, cb) = (
        t.col("arm")?,
        t.col("decomposed_acc")?,
        t.col("baseline_acc")?,
    );
    let arms = t.distinct(ca);
    let mut panels = vec![];
    for net in t.distinct(cn) {
        let mut series = vec![];
        for (i, arm) in arms.iter().enumerate() {
            let pts = t.xy(cr, cd, |r| r[cn] == net && r[ca] == *arm);
            if !pts.is_empty() {
                series.push(Series::new(
                    arm.clone(),
                    Colour::Palette(i),
                    Mark::Points,
                    pts,
                ));
            }
        }
        let xs: Vec<f64> = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .collect();
        let base = t
            .rows
            .iter()
            .find(|r| r[cn] == net && r[ca] == "baseline")
            .and_then(|r| Table::num(r, cb));
        if let (Some(b), false) = (base, xs.is_empty()) {
            let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            series.push(Series::new(
                "baseline, full",
                Colour::Grey,
                Mark::Dashed,
                vec![(lo, b), (hi, b)],
            ));
        }
        panels.push(Panel::fitted(
            net.clone(),
            (
                "parameter reduction of the decomposed layers [×]",
                Scale::Log,
            ),
            ("test accuracy, decomposed", Scale::Linear),
            series,
        ));
    }
    if panels.is_empty() {
        return Ok(None);
    }
    Ok(Some(Figure::new(
        "trp_accuracy",
        "Decomposed models without fine-tuning: accuracy against compression",
        panels,
    )))
}

/// trp: the energy rank of each decomposed layer at every epoch end, per arm and period.
pub fn trp_ranks(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "ranks.csv")? else {
        return Ok(None);
    };
    let (Ok(cn), Ok(cl), Ok(_)) = (t.col("net"), t.col("layer"), t.col("max_rank")) else {
        return Ok(None);
    };
    let (ca, cp, ce, ck) = (
        t.col("arm")?,
        t.col("period")?,
        t.col("epoch")?,
        t.col("rank")?,
    );
    let mut runs: Vec<(String, String)> = vec![];
    for r in &t.rows {
        let k = (r[ca].clone(), r[cp].clone());
        if !runs.contains(&k) {
            runs.push(k);
        }
    }
    let mut panels = vec![];
    for net in t.distinct(cn) {
        for layer in t.distinct(cl) {
            let mut series = vec![];
            for (i, (arm, m)) in runs.iter().enumerate() {
                let pts = t.xy(ce, ck, |r| {
                    r[cn] == net && r[cl] == layer && r[ca] == *arm && r[cp] == *m
                });
                if pts.is_empty() {
                    continue;
                }
                let label = if m == "0" {
                    arm.clone()
                } else {
                    format!("{arm} m={m}")
                };
                series.push(Series::new(
                    label,
                    Colour::Palette(i),
                    Mark::LinePoints,
                    pts,
                ));
            }
            if !series.is_empty() {
                panels.push(Panel::fitted(
                    format!("{net} {layer}"),
                    ("epoch", Scale::Linear),
                    ("energy rank", Scale::Linear),
                    series,
                ));
            }
        }
    }
    if panels.is_empty() {
        return Ok(None);
    }
    Ok(Some(Figure::new(
        "trp_ranks",
        "Rank per layer over training (energy criterion)",
        panels,
    )))
}
