//! Curvature figures (`stochlab curvature`, the `train.sharpness` hook): the SLQ eigenvalue
//! density and λ_max against step with the 2/η stability edge.

use super::figure::{Colour, Figure, Mark, Panel, Scale, Series};
use super::table::Table;
use anyhow::Result;
use std::path::Path;

/// The SLQ eigenvalue density, log y (floored at 1e-8 of its peak), one line per checkpoint,
/// matrix, batch and seed.
pub fn density(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, crate::train::curvature::DENSITY_CSV)? else {
        return Ok(None);
    };
    // Another experiment's density.csv (not an eigenvalue density) is not this figure's.
    if !(t.has("lambda") && t.has("density")) {
        return Ok(None);
    }
    let (cl, cd) = (t.col("lambda")?, t.col("density")?);
    let keys: Vec<usize> = ["checkpoint_epoch", "matrix", "batch", "seed"]
        .iter()
        .map(|c| t.col(c))
        .collect::<Result<_>>()?;
    let label = |r: &[String]| {
        format!(
            "epoch {}, {}, {} rows, seed {}",
            r[keys[0]], r[keys[1]], r[keys[2]], r[keys[3]]
        )
    };
    let peak = t
        .rows
        .iter()
        .filter_map(|r| Table::num(r, cd))
        .fold(0.0, f64::max)
        .max(1e-300);
    let floor = peak * 1e-8;
    let mut labels: Vec<String> = vec![];
    for r in &t.rows {
        let l = label(r);
        if !labels.contains(&l) {
            labels.push(l);
        }
    }
    let series = labels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let pts = t
                .xy(cl, cd, |r| label(r) == *l)
                .into_iter()
                .map(|(x, y)| (x, y.max(floor)))
                .collect();
            Series::new(l.clone(), Colour::Palette(i), Mark::Line, pts)
        })
        .collect();
    Ok(Some(Figure::new(
        "density",
        "Eigenvalue density (SLQ)",
        vec![Panel::fitted(
            "",
            ("eigenvalue λ", Scale::Linear),
            ("density", Scale::Log),
            series,
        )],
    )))
}

/// λ_max against step, and 2/η (from the `lr` column) when it is within 3× of λ_max.
pub fn sharpness(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, crate::train::curvature::SHARPNESS_CSV)? else {
        return Ok(None);
    };
    let (cs, cl, clr) = (t.col("step")?, t.col("lambda_max")?, t.col("lr")?);
    let pts = t.xy(cs, cl, |_| true);
    let edge: Vec<(f64, f64)> = t
        .xy(cs, clr, |_| true)
        .into_iter()
        .filter(|p| p.1 > 0.0)
        .map(|(s, lr)| (s, 2.0 / lr))
        .collect();
    let top = pts.iter().map(|p| p.1).fold(0.0, f64::max);
    let mut series = vec![Series::new("λ_max", Colour::Palette(0), Mark::Line, pts)];
    if !edge.is_empty() && edge.iter().all(|p| p.1 <= 3.0 * top) {
        series.push(Series::new("2/η", Colour::Grey, Mark::Dashed, edge));
    }
    Ok(Some(Figure::new(
        "sharpness",
        "Sharpness: top Hessian eigenvalue during training",
        vec![Panel::fitted(
            "",
            ("step", Scale::Linear),
            ("λ_max", Scale::Linear),
            series,
        )],
    )))
}
