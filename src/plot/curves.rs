//! Learning curves: losses and accuracies (or errors) against epoch, the mean over seeds with
//! a ± std band, train solid and test dashed; also what `plot --compare` overlays.

use super::figure::{mean_series, Colour, Figure, Mark, Panel, Scale};
use super::table::Table;
use anyhow::Result;
use std::path::Path;

/// Panels and the columns each may draw.
const PANELS: [(&str, [&str; 3]); 3] = [
    ("loss", ["train_loss", "val_loss", "test_loss"]),
    ("accuracy", ["train_acc", "val_acc", "test_acc"]),
    ("error", ["train_err", "val_err", "test_err"]),
];

fn mark(split: &str) -> Mark {
    match split {
        "train" => Mark::Line,
        "val" => Mark::DashedPoints,
        _ => Mark::Dashed,
    }
}

/// `curves` of a run's metrics.csv, when it has epochs and losses or accuracies.
pub fn run_curves(dir: &Path) -> Result<Option<Figure>> {
    match Table::read_rows(dir, crate::run::METRICS_CSV)? {
        Some(t) => Ok(curves(&t, "curves", "Learning curves", &[])),
        None => Ok(None),
    }
}

/// Curves of `t`: rows grouped by the columns before `epoch` other than `seed` (optimizer,
/// arm, run, …), seeds averaged. `only` keeps just those metric columns (all when empty).
pub fn curves(t: &Table, name: &str, title: &str, only: &[String]) -> Option<Figure> {
    let ce = t.col("epoch").ok()?;
    let group_cols: Vec<usize> = (0..ce).filter(|&i| t.header[i] != "seed").collect();
    let group = |r: &[String]| {
        group_cols
            .iter()
            .map(|&i| match t.header[i].as_str() {
                "run" => r[i].clone(),
                h => format!("{h}={}", r[i]),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut groups: Vec<String> = vec![];
    for r in &t.rows {
        let g = group(r);
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    let mut panels = vec![];
    for (metric, cols) in PANELS {
        let cols: Vec<(usize, &str)> = cols
            .iter()
            .filter(|c| only.is_empty() || only.iter().any(|o| o == *c))
            .filter_map(|c| Some((t.col(c).ok()?, c.split('_').next()?)))
            .collect();
        if cols.is_empty() {
            continue;
        }
        let mut series = vec![];
        for (gi, g) in groups.iter().enumerate() {
            for (si, &(c, split)) in cols.iter().enumerate() {
                let pts = t.xy(ce, c, |r| group(r) == *g);
                if pts.is_empty() {
                    continue;
                }
                let (label, colour) = if groups.len() == 1 {
                    (split.to_string(), Colour::Palette(si))
                } else {
                    (format!("{g} {split}"), Colour::Palette(gi))
                };
                series.push(mean_series(label, colour, mark(split), &pts));
            }
        }
        if series.is_empty() {
            continue;
        }
        let mut p = Panel::fitted(
            metric,
            ("epoch", Scale::Linear),
            (metric, Scale::Linear),
            series,
        );
        p.x = p.x.integer();
        panels.push(p);
    }
    if panels.is_empty() {
        return None;
    }
    // Seeds averaged into one curve: the most any group has.
    let seeds = t.col("seed").map_or(1, |cs| {
        groups
            .iter()
            .map(|g| {
                let mut v: Vec<&str> = t
                    .rows
                    .iter()
                    .filter(|r| group(r) == *g)
                    .map(|r| r[cs].as_str())
                    .collect();
                v.sort();
                v.dedup();
                v.len()
            })
            .max()
            .unwrap_or(1)
    });
    let title = if seeds > 1 {
        format!("{title} (mean ± std over {seeds} seeds)")
    } else {
        title.to_string()
    };
    Some(Figure::new(name, title, panels))
}
