//! Information-theory figures: the information plane (ib-tishby, ib-lossy), gradient signal
//! and noise per layer (ib-tishby) and estimated against true MI (mi-synthetic).

use super::figure::{mean_series, Colour, ColourBar, Figure, Mark, Panel, Scale, Series};
use super::table::Table;
use super::{select, Options};
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// Layers of ib.csv as (number, name): the `name` column where there is one (ib-lossy's conv1,
/// dense1, …), otherwise `layer N`.
fn layers(t: &Table) -> Result<Vec<(String, String)>> {
    let cl = t.col("layer")?;
    let cn = t.col("name").ok();
    let mut out: Vec<(String, String)> = vec![];
    for r in &t.rows {
        if !out.iter().any(|l| l.0 == r[cl]) {
            let name = cn.map_or_else(|| format!("layer {}", r[cl]), |c| r[c].clone());
            out.push((r[cl].clone(), name));
        }
    }
    out.sort_by(|a, b| {
        let n = |s: &str| s.parse::<f64>().unwrap_or(f64::MAX);
        n(&a.0).total_cmp(&n(&b.0))
    });
    Ok(out)
}

/// The layers `--layers` picks (by number or name), all without it.
fn pick_layers(all: Vec<(String, String)>, wanted: &[String]) -> Result<Vec<(String, String)>> {
    if wanted.is_empty() {
        return Ok(all);
    }
    for w in wanted {
        if !all.iter().any(|l| &l.0 == w || &l.1 == w) {
            let have: Vec<String> = all.iter().map(|l| format!("{} ({})", l.0, l.1)).collect();
            bail!(
                "this run has no layer `{w}`; --layers takes numbers or names: {}",
                have.join(", ")
            );
        }
    }
    Ok(all
        .into_iter()
        .filter(|l| wanted.contains(&l.0) || wanted.contains(&l.1))
        .collect())
}

/// I(T;Y) against I(X;T): one panel per estimator, one line per layer, points coloured by
/// epoch on a log-scaled colour bar, the mean over seeds where ib.csv has several (with ± std
/// crosses under `--spread`).
pub fn information_plane(dir: &Path, o: &Options) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "ib.csv")? else {
        return Ok(None);
    };
    let (Some((cx, units)), Some((cy, _))) = (t.unit_col("I_XT"), t.unit_col("I_TY")) else {
        return Ok(None);
    };
    let (ce, cl) = (t.col("epoch")?, t.col("layer")?);
    let cest = t.col("estimator").ok();
    let estimators = match cest {
        Some(c) => select("estimator", &t.distinct(c), &o.estimators)?,
        None => vec![String::new()],
    };
    let layers = pick_layers(layers(&t)?, &o.layers)?;
    let seeds = t.seeds();
    let mut max_epoch: f64 = 1.0;
    let mut panels = vec![];
    for est in &estimators {
        let mut series = vec![];
        for (li, (num, name)) in layers.iter().enumerate() {
            // epoch → the seeds' (I_XT, I_TY)
            let mut at: BTreeMap<i64, Vec<(f64, f64)>> = BTreeMap::new();
            for r in &t.rows {
                if r[cl] != *num || cest.is_some_and(|c| r[c] != *est) {
                    continue;
                }
                let (Some(e), Some(x), Some(y)) =
                    (Table::num(r, ce), Table::num(r, cx), Table::num(r, cy))
                else {
                    continue;
                };
                at.entry(e as i64).or_default().push((x, y));
            }
            let mut pts = vec![];
            let (mut epochs, mut bars) = (vec![], vec![]);
            for (e, v) in &at {
                let (mx, sx) = super::figure::mean_std(&v.iter().map(|p| p.0).collect::<Vec<_>>());
                let (my, sy) = super::figure::mean_std(&v.iter().map(|p| p.1).collect::<Vec<_>>());
                pts.push((mx, my));
                epochs.push(*e as f64);
                bars.push((mx - sx, mx + sx, my - sy, my + sy));
                max_epoch = max_epoch.max(*e as f64);
            }
            let mut s = Series::new(name.clone(), Colour::Palette(li), Mark::LinePoints, pts);
            s.values = epochs;
            if o.spread && seeds > 1 {
                s.bars = bars;
            }
            series.push(s);
        }
        let title = if est.is_empty() {
            String::new()
        } else {
            est.clone()
        };
        panels.push(Panel::fitted(
            title,
            (&format!("I(X;T) [{units}]"), Scale::Linear),
            (&format!("I(T;Y) [{units}]"), Scale::Linear),
            series,
        ));
    }
    let mut title = "Information plane".to_string();
    if seeds > 1 {
        title += &format!(
            " (mean over {seeds} seeds{})",
            if o.spread { ", ± std" } else { "" }
        );
    }
    let mut fig = Figure::new("information_plane", title, panels);
    fig.colour_bar = Some(ColourBar {
        label: "epoch".into(),
        range: (0.0, max_epoch),
        log: true,
        high_dark: false,
    });
    Ok(Some(fig))
}

/// Mean (solid) and standard deviation (dashed) of the gradient per layer against epoch, log
/// axes, averaged over seeds (Shwartz-Ziv & Tishby's drift and diffusion phases).
pub fn snr(dir: &Path, o: &Options) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "grads.csv")? else {
        return Ok(None);
    };
    let (ce, cl, cm, cs) = (
        t.col("epoch")?,
        t.col("layer")?,
        t.col("grad_mean")?,
        t.col("grad_std")?,
    );
    let all: Vec<(String, String)> = t
        .distinct(cl)
        .into_iter()
        .map(|l| (l.clone(), format!("layer {l}")))
        .collect();
    let layers = pick_layers(all, &o.layers)?;
    let mut series = vec![];
    for (li, (num, name)) in layers.iter().enumerate() {
        for (c, mark) in [(cm, Mark::Line), (cs, Mark::Dashed)] {
            let pts: Vec<(f64, f64)> = t
                .xy(ce, c, |r| r[cl] == *num)
                .into_iter()
                .map(|(e, v)| (e.max(1.0), v))
                .collect();
            let mut s = mean_series(name.clone(), Colour::Palette(li), mark, &pts);
            s.band.clear();
            series.push(s);
        }
    }
    let seeds = t.seeds();
    let title = format!(
        "Gradient mean (solid) and std (dashed) per layer{}",
        if seeds > 1 {
            format!(", mean over {seeds} seeds")
        } else {
            String::new()
        }
    );
    Ok(Some(Figure::new(
        "snr",
        title,
        vec![Panel::fitted(
            "",
            ("epoch", Scale::Log),
            ("gradient norm", Scale::Log),
            series,
        )],
    )))
}

/// Estimated against true MI, one panel per case (raw, embedded, images), one line per
/// estimator and compressor, the diagonal where a perfect estimator would lie.
pub fn mi_estimates(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, crate::run::METRICS_CSV)? else {
        return Ok(None);
    };
    let (Some((ct, units)), Some((ce, _))) = (t.unit_col("true_mi"), t.unit_col("estimate")) else {
        return Ok(None);
    };
    let cases = match t.col("case") {
        Ok(c) => t.distinct(c),
        Err(_) => vec![String::new()],
    };
    let label = |r: &[String]| {
        let mut parts = vec![];
        for (k, prefix) in [
            ("estimator", ""),
            ("compressor", ""),
            ("dim", "d="),
            ("latent_dim", "→ "),
        ] {
            if let Ok(c) = t.col(k) {
                let v = &r[c];
                if !v.is_empty()
                    && v != "none"
                    && !(k == "latent_dim" && t.col("dim").is_ok_and(|d| r[d] == *v))
                {
                    parts.push(format!("{prefix}{v}"));
                }
            }
        }
        parts.join(" ")
    };
    // One colour per label across all panels, so the legend holds once.
    let mut labels: Vec<String> = vec![];
    for r in &t.rows {
        let l = label(r);
        if !labels.contains(&l) {
            labels.push(l);
        }
    }
    let mut panels = vec![];
    for case in &cases {
        let in_case = |r: &[String]| t.col("case").ok().is_none_or(|c| r[c] == *case);
        let mut series = vec![];
        let mut hi: f64 = 0.0;
        for (i, l) in labels.iter().enumerate() {
            let pts = t.xy(ct, ce, |r| in_case(r) && label(r) == *l);
            if pts.is_empty() {
                continue;
            }
            hi = pts.iter().fold(hi, |m, p| m.max(p.0));
            series.push(mean_series(
                l.clone(),
                Colour::Palette(i),
                Mark::LinePoints,
                &pts,
            ));
        }
        series.insert(
            0,
            Series::new("", Colour::Grey, Mark::Dashed, vec![(0.0, 0.0), (hi, hi)]),
        );
        panels.push(Panel::fitted(
            case.clone(),
            (&format!("true I(X;Y) [{units}]"), Scale::Linear),
            (&format!("estimate [{units}]"), Scale::Linear),
            series,
        ));
    }
    Ok(Some(Figure::new(
        "mi_estimates",
        "Estimated against true mutual information (dashed: exact)",
        panels,
    )))
}
