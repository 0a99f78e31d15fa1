//! sde-family figures: samples of each SDE × sampler over the true log-density (score-sde);
//! test accuracy against the missing rate per model, the seed mean with a ± std band and the
//! seeds as points (neural-sde).

use super::figure::{mean_series, Cell, Colour, ColourBar, Figure, Mark, Panel, Scale, Series};
use super::table::Table;
use anyhow::Result;
use std::path::Path;

/// score-sde: one panel per (SDE, sampler), the true log-density as a heatmap (clipped 12 nats
/// below its peak) and the samples as points.
pub fn score_sde_samples(dir: &Path) -> Result<Option<Figure>> {
    let (Some(grid), Some(samples)) = (
        Table::read_rows(dir, "sde_density.csv")?,
        Table::read_rows(dir, "sde_samples.csv")?,
    ) else {
        return Ok(None);
    };
    if !grid.has("log_density") || !samples.has("sampler") {
        return Ok(None);
    }
    let (gx, gy, gl) = (grid.col("x")?, grid.col("y")?, grid.col("log_density")?);
    let (cs, cp, cx, cy) = (
        samples.col("sde")?,
        samples.col("sampler")?,
        samples.col("x")?,
        samples.col("y")?,
    );
    let sorted = |c: usize| {
        let mut v: Vec<f64> = grid.rows.iter().filter_map(|r| Table::num(r, c)).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    };
    let (xs, ys) = (sorted(gx), sorted(gy));
    if xs.len() < 2 || ys.len() < 2 {
        return Ok(None);
    }
    let (hx, hy) = ((xs[1] - xs[0]) / 2.0, (ys[1] - ys[0]) / 2.0);
    let peak = grid
        .rows
        .iter()
        .filter_map(|r| Table::num(r, gl))
        .fold(f64::NEG_INFINITY, f64::max);
    let low = peak - 12.0;
    let cells: Vec<Cell> = grid
        .rows
        .iter()
        .filter_map(|r| {
            let (x, y, l) = (Table::num(r, gx)?, Table::num(r, gy)?, Table::num(r, gl)?);
            Some(Cell {
                x: (x - hx, x + hx),
                y: (y - hy, y + hy),
                value: l.max(low),
                text: String::new(),
            })
        })
        .collect();
    let mut panels = vec![];
    for sde in samples.distinct(cs) {
        for sampler in samples.distinct(cp) {
            let pts = samples.xy(cx, cy, |r| r[cs] == sde && r[cp] == sampler);
            if pts.is_empty() {
                continue;
            }
            // Points outside the grid would stretch the axes: the panel keeps the grid's.
            let mut p = Panel::fitted(
                format!("{} · {}", sde.to_uppercase(), sampler.to_uppercase()),
                ("x₁", Scale::Linear),
                ("x₂", Scale::Linear),
                vec![Series::new(
                    "samples",
                    Colour::Palette(3),
                    Mark::Points,
                    pts,
                )],
            );
            p.x.range = (xs[0] - hx, xs[xs.len() - 1] + hx);
            p.y.range = (ys[0] - hy, ys[ys.len() - 1] + hy);
            p.cells = cells.clone();
            panels.push(p);
        }
    }
    if panels.is_empty() {
        return Ok(None);
    }
    let mut fig = Figure::new(
        "samples",
        "Score SDEs on a ring of 8 Gaussians: samples at equal NFE over the true log-density",
        panels,
    );
    fig.colour_bar = Some(ColourBar {
        label: "true log-density (nats)".into(),
        range: (low, peak),
        log: false,
        high_dark: false,
    });
    Ok(Some(fig))
}

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

/// storm: SI-SDR, log-spectral distance and gap energy against the number of reverse steps N,
/// one line per arm (the denoiser and the noisy input are flat, dashed).
pub fn storm_quality(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "summary.csv")? else {
        return Ok(None);
    };
    let (Ok(ca), Ok(cn)) = (t.col("arm"), t.col("n")) else {
        return Ok(None);
    };
    if !t.has("gap_energy_db") || !t.has("lsd") {
        return Ok(None);
    }
    let arms = t.distinct(ca);
    let panel = |col: &str, title: &str, label: &str| -> Result<Panel> {
        let cy = t.col(col)?;
        let series = arms
            .iter()
            .enumerate()
            .map(|(i, arm)| {
                let mark = if arm == "storm" || arm == "score-only" {
                    Mark::LinePoints
                } else {
                    Mark::DashedPoints
                };
                Series::new(
                    arm.clone(),
                    Colour::Palette(i),
                    mark,
                    t.xy(cn, cy, |r| r[ca] == *arm),
                )
            })
            .collect();
        Ok(Panel::fitted(
            title,
            ("reverse steps N", Scale::Log),
            (label, Scale::Linear),
            series,
        ))
    };
    Ok(Some(Figure::new(
        "storm",
        "StoRM vs score-only diffusion and the predictive denoiser: quality against reverse steps",
        vec![
            panel("si_sdr", "SI-SDR (higher is better)", "SI-SDR (dB)")?,
            panel("lsd", "log-spectral distance (lower is better)", "LSD (dB)")?,
            panel(
                "gap_energy_db",
                "energy in the silent gaps (lower is better)",
                "gap energy / active energy (dB)",
            )?,
        ],
    )))
}
