//! Neural-SDE figures: test accuracy against the missing rate per model (neural-sde), the seed
//! mean with a ± std band and the seeds as points.

use super::figure::{mean_series, Colour, Figure, Mark, Panel, Scale, Series};
use super::table::Table;
use anyhow::Result;
use std::path::Path;

/// neural-sde: test accuracy (best-validation weights) against the missing rate, one line per
/// model; the stable classes solid, the naive SDE and the ODEs dashed.
pub fn neural_sde_accuracy(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "final.csv")? else {
        return Ok(None);
    };
    let (Ok(cm), Ok(cr), Ok(ca)) = (t.col("model"), t.col("rate"), t.col("test_acc")) else {
        return Ok(None);
    };
    if !t.has("code") {
        return Ok(None);
    }
    let mut series = vec![];
    for (i, model) in t.distinct(cm).iter().enumerate() {
        let pts: Vec<(f64, f64)> = t
            .xy(cr, ca, |r| r[cm] == *model)
            .into_iter()
            .map(|(r, a)| (100.0 * r, a))
            .collect();
        let stable = ["lsde", "lnsde", "gsde"].contains(&model.as_str());
        let mark = if stable {
            Mark::LinePoints
        } else {
            Mark::DashedPoints
        };
        series.push(mean_series(model.clone(), Colour::Palette(i), mark, &pts));
        series.push(Series::new("", Colour::Palette(i), Mark::Points, pts));
    }
    let mut p = Panel::fitted(
        "test accuracy (mean ± std over seeds; seeds as points)",
        ("missing rate (%), every split", Scale::Linear),
        ("test accuracy", Scale::Linear),
        series,
    );
    p.y.range = (p.y.range.0.clamp(0.0, 0.3), 1.02);
    Ok(Some(Figure::new(
        "neural-sde",
        "Stable neural SDEs: accuracy against the share of missing observations",
        vec![p],
    )))
}
