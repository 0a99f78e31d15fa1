//! Scientific-model figures: bandit regret curves and test picks (pinn-interface); accuracy
//! against the spurious bias b per arm (graph-reweight).

use super::figure::{mean_series, Colour, Figure, Mark, Panel, Scale, Series};
use super::table::Table;
use anyhow::Result;
use std::path::Path;

/// One colour per strategy in both panels.
fn colour(strategy: &str) -> Colour {
    match strategy {
        "gp-ucb" => Colour::Palette(0),
        "random" => Colour::Palette(1),
        "best-fixed" => Colour::Palette(2),
        "oracle" => Colour::Grey,
        _ => Colour::Palette(3),
    }
}

/// pinn-interface: cumulative regret against the play for GP-UCB, random arms and the best
/// fixed arm (mean ± std over bandit repeats), and the relative L2 error at every test context
/// of GP-UCB's picks, the best fixed arm and the oracle.
pub fn pinn_regret(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, crate::run::METRICS_CSV)? else {
        return Ok(None);
    };
    if !t.has("cum_regret") || !t.has("strategy") || !t.has("gp_std") {
        return Ok(None);
    }
    let (cs, cp, cr) = (t.col("strategy")?, t.col("play")?, t.col("cum_regret")?);
    let mut series = vec![];
    for s in t.distinct(cs) {
        let pts = t.xy(cp, cr, |r| r[cs] == s);
        series.push(mean_series(s.clone(), colour(&s), Mark::Line, &pts));
    }
    let mut panels = vec![Panel::fitted(
        "cumulative regret (oracle reward − reward, seed means)",
        ("play", Scale::Linear),
        ("cumulative regret (log10 error units)", Scale::Linear),
        series,
    )];
    if let Some(tt) = Table::read_rows(dir, "test.csv")? {
        let (cs, cc, ce) = (tt.col("strategy")?, tt.col("context")?, tt.col("error")?);
        let mut series = vec![];
        for s in tt.distinct(cs) {
            let pts = tt.xy(cc, ce, |r| r[cs] == s);
            let mark = if s == "oracle" {
                Mark::DashedPoints
            } else {
                Mark::LinePoints
            };
            series.push(mean_series(s.clone(), colour(&s), mark, &pts));
        }
        panels.push(Panel::fitted(
            "test contexts: error of the picked arm",
            ("sharpness s", Scale::Linear),
            ("relative L2 error", Scale::Log),
            series,
        ));
    }
    Ok(Some(Figure::new(
        "pinn-regret",
        "METALIC: GP-UCB over (sharpness, interface-term mask) against random and fixed arms",
        panels,
    )))
}

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
