//! Edge-of-stability figures: weak-feature accuracy and alignment against the oscillation
//! amplitude across a learning-rate sweep (benign-oscillation).

use super::figure::{Colour, Figure, Mark, Panel, Scale, Series};
use super::table::Table;
use anyhow::Result;
use std::path::Path;

/// benign-oscillation: weak-only test accuracy and v-alignment against the oscillation
/// amplitude (std of the step losses over the last 20 % of steps), one point per (learning rate, seed)
/// and the seed mean per learning rate.
pub fn benign(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "final.csv")? else {
        return Ok(None);
    };
    if !t.has("v_alignment") || !t.has("oscillation") {
        return Ok(None);
    }
    let (cl, co, cd) = (t.col("lr")?, t.col("oscillation")?, t.col("diverged")?);
    let alive = |r: &[String]| r[cd] == "false";
    let lrs = t.distinct(cl);
    let mut panels = vec![];
    for (col, title, ylabel, yscale) in [
        (
            "weak_test_acc",
            "weak-only test accuracy",
            "accuracy",
            Scale::Linear,
        ),
        (
            "v_alignment",
            "alignment with the weak feature v",
            "max_r ⟨w_r, ±v⟩/‖v‖",
            Scale::Log,
        ),
    ] {
        let cy = t.col(col)?;
        let mut series = vec![];
        let mut means = vec![];
        for (i, lr) in lrs.iter().enumerate() {
            let pts = t.xy(co, cy, |r| alive(r) && r[cl] == *lr);
            if pts.is_empty() {
                continue;
            }
            let n = pts.len() as f64;
            means.push((
                pts.iter().map(|p| p.0).sum::<f64>() / n,
                pts.iter().map(|p| p.1).sum::<f64>() / n,
            ));
            series.push(Series::new(
                format!("η = {lr}"),
                Colour::Palette(i),
                Mark::Points,
                pts,
            ));
        }
        series.push(Series::new("", Colour::Grey, Mark::Dashed, means));
        panels.push(Panel::fitted(
            title,
            ("oscillation amplitude (loss std)", Scale::Log),
            (ylabel, yscale),
            series,
        ));
    }
    Ok(Some(Figure::new(
        "benign",
        "Benign oscillation: weak-feature learning against oscillation across the learning-rate sweep",
        panels,
    )))
}
