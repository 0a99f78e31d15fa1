//! Uncertainty figures: predictive bands of CNP, NP and MPNP on one task per kernel and their
//! training curves (mpnp).

use super::figure::{Colour, Figure, Mark, Panel, Scale, Series};
use super::table::Table;
use anyhow::Result;
use std::path::Path;

/// mpnp: one panel per kernel, each model's predictive mean and 95 % band on a grid, with the
/// task's context (black-ish points) and target points (grey).
pub fn mpnp_bands(dir: &Path) -> Result<Option<Figure>> {
    let Some(b) = Table::read_rows(dir, "bands.csv")? else {
        return Ok(None);
    };
    let (Ok(ck), Ok(cm)) = (b.col("kernel"), b.col("model")) else {
        return Ok(None);
    };
    let (cx, cmean, clo, chi) = (
        b.col("x")?,
        b.col("mean")?,
        b.col("lower")?,
        b.col("upper")?,
    );
    let pts = Table::read_rows(dir, "points.csv")?;
    let models = b.distinct(cm);
    let mut panels = vec![];
    for k in b.distinct(ck) {
        let mut series = vec![];
        for (i, m) in models.iter().enumerate() {
            let rows: Vec<&Vec<String>> = b
                .rows
                .iter()
                .filter(|r| r[ck] == k && r[cm] == *m)
                .collect();
            let line: Vec<(f64, f64)> = rows
                .iter()
                .filter_map(|r| Some((Table::num(r, cx)?, Table::num(r, cmean)?)))
                .collect();
            let band: Vec<(f64, f64, f64)> = rows
                .iter()
                .filter_map(|r| {
                    Some((Table::num(r, cx)?, Table::num(r, clo)?, Table::num(r, chi)?))
                })
                .collect();
            series.push(Series::new(m.clone(), Colour::Palette(i), Mark::Line, line).band(band));
        }
        if let Some(p) = &pts {
            if let (Ok(pk), Ok(pr), Ok(px), Ok(py)) =
                (p.col("kernel"), p.col("role"), p.col("x"), p.col("y"))
            {
                for (role, colour) in [
                    ("target", Colour::Grey),
                    ("context", Colour::Palette(models.len())),
                ] {
                    let xy = p.xy(px, py, |r| r[pk] == k && r[pr] == role);
                    series.push(Series::new(role, colour, Mark::Points, xy));
                }
            }
        }
        panels.push(Panel::fitted(
            k,
            ("x", Scale::Linear),
            ("y", Scale::Linear),
            series,
        ));
    }
    Ok(Some(Figure::new(
        "bands",
        "Predictive mean and 95 % band on one task per kernel (trained on RBF)",
        panels,
    )))
}

/// mpnp: training loss and validation target log-likelihood against step, per model.
pub fn mpnp_curves(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, crate::run::METRICS_CSV)? else {
        return Ok(None);
    };
    let (Ok(cm), Ok(cs), Ok(cv)) = (t.col("model"), t.col("step"), t.col("val_tar_ll")) else {
        return Ok(None);
    };
    let cl = t.col("train_loss")?;
    let (mut loss, mut val) = (vec![], vec![]);
    for (i, m) in t.distinct(cm).iter().enumerate() {
        let keep = |r: &[String]| r[cm] == *m;
        loss.push(Series::new(
            m.clone(),
            Colour::Palette(i),
            Mark::Line,
            t.xy(cs, cl, keep),
        ));
        val.push(Series::new(
            m.clone(),
            Colour::Palette(i),
            Mark::LinePoints,
            t.xy(cs, cv, keep),
        ));
    }
    Ok(Some(Figure::new(
        "curves",
        "Training on RBF tasks",
        vec![
            Panel::fitted(
                "training loss",
                ("step", Scale::Linear),
                ("loss", Scale::Linear),
                loss,
            ),
            Panel::fitted(
                "validation",
                ("step", Scale::Linear),
                ("target log-likelihood per point", Scale::Linear),
                val,
            ),
        ],
    )))
}

/// latent-uncertainty: landmark RMSE, mean latent variance and per-node sampled std against
/// corruption severity, one column of panels per corruption, a line per arm.
pub fn severity(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "severity.csv")? else {
        return Ok(None);
    };
    let (Ok(ca), Ok(cc), Ok(cl)) = (t.col("arm"), t.col("corruption"), t.col("level")) else {
        return Ok(None);
    };
    let arms = t.distinct(ca);
    let mut panels = vec![];
    for (col, label) in [
        ("latent_var", "mean latent variance"),
        ("node_std_px", "sampled node std [px]"),
        ("rmse_px", "landmark RMSE [px]"),
    ] {
        let cv = t.col(col)?;
        for c in t.distinct(cc) {
            let series = arms
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let dashed = a.ends_with("-skip");
                    Series::new(
                        a.clone(),
                        Colour::Palette(i),
                        if dashed {
                            Mark::DashedPoints
                        } else {
                            Mark::LinePoints
                        },
                        t.xy(cl, cv, |r| r[ca] == *a && r[cc] == c),
                    )
                })
                .collect();
            let x = match c.as_str() {
                "noise" => "noise std",
                "blur" => "blur s (kernel 2s+1)",
                _ => "occlusion side [px]",
            };
            panels.push(Panel::fitted(
                format!("{c}: {col}"),
                (x, Scale::Linear),
                (label, Scale::Linear),
                series,
            ));
        }
    }
    Ok(Some(Figure::new(
        "severity",
        "Uncertainty and error against corruption severity",
        panels,
    )))
}

/// latent-uncertainty: one test image clean and at the worst level of each corruption (pixels
/// as a heatmap), ten decoded landmark samples and the true landmarks.
pub fn landmark_samples(dir: &Path) -> Result<Option<Figure>> {
    let (Some(s), Some(im)) = (
        Table::read_rows(dir, "samples.csv")?,
        Table::read_rows(dir, "image.csv")?,
    ) else {
        return Ok(None);
    };
    let (cs, ck, cx, cy) = (s.col("setting")?, s.col("kind")?, s.col("x")?, s.col("y")?);
    let (is, ir, ic, iv) = (
        im.col("setting")?,
        im.col("row")?,
        im.col("col")?,
        im.col("value")?,
    );
    let side = im
        .rows
        .iter()
        .filter_map(|r| Table::num(r, ir))
        .fold(0.0, f64::max)
        + 1.0;
    // Pixels are 2×2 pools of the image: landmark pixel units / 2; y flipped (rows go down).
    let mut panels = vec![];
    for setting in s.distinct(cs) {
        let pts = |kind: &str| -> Vec<(f64, f64)> {
            s.xy(cx, cy, |r| r[cs] == setting && r[ck] == kind)
                .into_iter()
                .map(|(x, y)| (x / 2.0, side - y / 2.0))
                .collect()
        };
        let series = vec![
            Series::new("samples", Colour::Palette(1), Mark::Points, pts("sample")),
            Series::new("truth", Colour::Palette(3), Mark::Points, pts("truth")),
        ];
        let mut p = Panel::fitted(
            setting.clone(),
            ("x [px/2]", Scale::Linear),
            ("y [px/2]", Scale::Linear),
            series,
        );
        for r in im.rows.iter().filter(|r| r[is] == setting) {
            if let (Some(row), Some(col), Some(v)) =
                (Table::num(r, ir), Table::num(r, ic), Table::num(r, iv))
            {
                p.cells.push(super::figure::Cell {
                    x: (col, col + 1.0),
                    y: (side - row - 1.0, side - row),
                    value: v,
                    text: String::new(),
                });
            }
        }
        p.x = super::figure::Axis::fit("x [px/2]", Scale::Linear, [0.0, side]);
        p.y = super::figure::Axis::fit("y [px/2]", Scale::Linear, [0.0, side]);
        panels.push(p);
    }
    let mut f = Figure::new(
        "landmark-samples",
        "Decoded landmark samples on a test image, clean and at the worst corruption",
        panels,
    );
    f.colour_bar = Some(super::figure::ColourBar {
        label: "intensity".into(),
        range: (0.0, 1.0),
        log: false,
        high_dark: false,
    });
    Ok(Some(f))
}
