//! Gradient-estimator figures: variance and bias against k/N per sampler and accuracy against
//! memory (wta-crs), and the transformer's estimator errors and training arms (wta-crs), bias/variance/cosine per estimator and extra error against the fraction of
//! gates off (stochastic-neurons), accuracy per rule and model and against depth (tpsgd).

use super::figure::{mean_series, Axis, Colour, Figure, Mark, Panel, Scale, Series};
use super::table::Table;
use anyhow::Result;
use std::path::Path;

/// Cleveland dot plot: categories on y, read top to bottom, one coloured dot per (category,
/// group), groups set apart in the same order; the mean (± std) where there are several rows.
fn dots(
    t: &Table,
    cat: usize,
    group: Option<usize>,
    value: usize,
    title: &str,
    x: (&str, Scale),
) -> Panel {
    let cats = t.distinct(cat);
    let groups = group.map_or(vec![String::new()], |g| t.distinct(g));
    let step = 0.6 / groups.len().max(1) as f64;
    let mut series = vec![];
    for (gi, g) in groups.iter().enumerate() {
        let offset = if groups.len() > 1 {
            -0.3 + step * (gi as f64 + 0.5)
        } else {
            0.0
        };
        let mut pts = vec![];
        for (ci, c) in cats.iter().enumerate() {
            let v: Vec<f64> = t
                .rows
                .iter()
                .filter(|r| r[cat] == *c && group.is_none_or(|k| r[k] == *g))
                .filter_map(|r| Table::num(r, value))
                .collect();
            if !v.is_empty() {
                let (m, s) = super::figure::mean_std(&v);
                pts.push((m, (cats.len() - 1 - ci) as f64 + offset, s));
            }
        }
        let mut s = Series::new(
            g.clone(),
            Colour::Palette(gi),
            Mark::Points,
            pts.iter().map(|p| (p.0, p.1)).collect(),
        );
        if pts.iter().any(|p| p.2 > 0.0) {
            s.bars = pts
                .iter()
                .map(|p| (p.0 - p.2, p.0 + p.2, p.1, p.1))
                .collect();
        }
        series.push(s);
    }
    let mut p = Panel::fitted(title, x, ("", Scale::Linear), series);
    p.y = Axis::categories("", cats.into_iter().rev().collect());
    p
}

/// wta-crs part A: relative variance and bias of the weight gradient against k/N per sampler.
pub fn wta_variance(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "estimators.csv")? else {
        return Ok(None);
    };
    let (Ok(ck), Ok(cs)) = (t.col("k_fraction"), t.col("sampler")) else {
        return Ok(None);
    };
    let (cv, cb) = (t.col("rel_variance")?, t.col("rel_bias")?);
    let (mut var, mut bias) = (vec![], vec![]);
    for (i, s) in t.distinct(cs).iter().enumerate() {
        let keep = |r: &[String]| r[cs] == *s;
        var.push(mean_series(
            s.clone(),
            Colour::Palette(i),
            Mark::LinePoints,
            &t.xy(ck, cv, keep),
        ));
        bias.push(mean_series(
            s.clone(),
            Colour::Palette(i),
            Mark::LinePoints,
            &t.xy(ck, cb, keep),
        ));
    }
    Ok(Some(Figure::new(
        "variance",
        "Weight-gradient estimators from k of N rows",
        vec![
            Panel::fitted(
                "variance",
                ("k/N", Scale::Log),
                ("relative variance", Scale::Log),
                var,
            ),
            Panel::fitted(
                "bias",
                ("k/N", Scale::Log),
                ("relative bias", Scale::Linear),
                bias,
            ),
        ],
    )))
}

/// wta-crs part B: test accuracy against k/N and against stored activation memory per sampler,
/// with exact backpropagation as the reference.
pub fn wta_training(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "training.csv")? else {
        return Ok(None);
    };
    let (cs, ck, ca, cb) = (
        t.col("sampler")?,
        t.col("k_fraction")?,
        t.col("test_acc")?,
        t.col("stored_activation_bytes")?,
    );
    let (mut acc, mut mem) = (vec![], vec![]);
    let samplers = t.distinct(cs);
    for (i, s) in samplers.iter().enumerate() {
        let keep = |r: &[String]| r[cs] == *s;
        let bytes: Vec<(f64, f64)> = t
            .xy(cb, ca, keep)
            .into_iter()
            .map(|(b, a)| (b / 1e6, a))
            .collect();
        if s == "exact" {
            let (m, _) = super::figure::mean_std(
                &t.xy(ck, ca, keep).iter().map(|p| p.1).collect::<Vec<_>>(),
            );
            let ks: Vec<f64> = t.rows.iter().filter_map(|r| Table::num(r, ck)).collect();
            let lo = ks.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = ks.iter().copied().fold(0.0, f64::max);
            acc.push(Series::new(
                "exact backprop",
                Colour::Grey,
                Mark::Dashed,
                vec![(lo, m), (hi, m)],
            ));
            mem.push(mean_series(
                "exact backprop",
                Colour::Grey,
                Mark::Points,
                &bytes,
            ));
            continue;
        }
        acc.push(mean_series(
            s.clone(),
            Colour::Palette(i),
            Mark::LinePoints,
            &t.xy(ck, ca, keep),
        ));
        mem.push(mean_series(
            s.clone(),
            Colour::Palette(i),
            Mark::LinePoints,
            &bytes,
        ));
    }
    Ok(Some(Figure::new(
        "training",
        "MNIST MLP trained with sampled weight gradients",
        vec![
            Panel::fitted(
                "accuracy against k/N",
                ("k/N", Scale::Log),
                ("test accuracy", Scale::Linear),
                acc,
            ),
            Panel::fitted(
                "accuracy against memory",
                ("stored activations [MB]", Scale::Log),
                ("test accuracy", Scale::Linear),
                mem,
            ),
        ],
    )))
}

/// wta-crs transformer (a): relative error and bias of each estimator, pooled over the sampled
/// layers, one dot per k/N.
pub fn wta_transformer_estimators(dir: &Path) -> Result<Option<Figure>> {
    let Some(mut t) = Table::read_rows(dir, "transformer_estimators.csv")? else {
        return Ok(None);
    };
    let (cl, cs, ck) = (t.col("layer")?, t.col("sampler")?, t.col("k_fraction")?);
    let (ce, cb) = (t.col("rel_error")?, t.col("rel_bias")?);
    t.rows.retain(|r| r[cl] == "all");
    if t.rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(Figure::new(
        "transformer-estimators",
        "Transformer weight gradients from k of N tokens (pooled over sampled layers; dots: k/N)",
        vec![
            dots(
                &t,
                cs,
                Some(ck),
                ce,
                "relative error",
                ("√E‖Ĝ − ∇W‖² / ‖∇W‖", Scale::Log),
            ),
            dots(
                &t,
                cs,
                Some(ck),
                cb,
                "relative bias",
                ("‖E Ĝ − ∇W‖ / ‖∇W‖", Scale::Log),
            ),
        ],
    )))
}

/// wta-crs transformer (b): test accuracy (mean ± std over seeds) and the activation bytes the
/// sampled layers keep, per training arm.
pub fn wta_transformer_training(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "transformer_training.csv")? else {
        return Ok(None);
    };
    let (cs, ca, cb) = (
        t.col("sampler")?,
        t.col("test_acc")?,
        t.col("bytes_vs_exact")?,
    );
    Ok(Some(Figure::new(
        "transformer-training",
        "Transformer trained with sampled weight gradients",
        vec![
            dots(
                &t,
                cs,
                None,
                ca,
                "test accuracy",
                ("test accuracy", Scale::Linear),
            ),
            dots(
                &t,
                cs,
                None,
                cb,
                "stored activations",
                ("bytes / exact", Scale::Linear),
            ),
        ],
    )))
}

/// stochastic-neurons part A: bias, variance and cosine with the exact gradient per estimator.
pub fn neuron_estimators(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "estimators.csv")? else {
        return Ok(None);
    };
    let (Ok(ce), Ok(cc)) = (t.col("estimator"), t.col("cos_mean")) else {
        return Ok(None);
    };
    let (cb, cv) = (t.col("rel_bias")?, t.col("rel_variance")?);
    Ok(Some(Figure::new(
        "estimators",
        "Gradient estimators for binary stochastic units against the exact gradient",
        vec![
            dots(&t, ce, None, cb, "bias", ("relative bias", Scale::Log)),
            dots(
                &t,
                ce,
                None,
                cv,
                "variance",
                ("relative variance", Scale::Log),
            ),
            dots(
                &t,
                ce,
                None,
                cc,
                "direction",
                ("cosine with exact", Scale::Linear),
            ),
        ],
    )))
}

/// stochastic-neurons part B: extra test error (points over the ungated net) against the
/// fraction of gates switched off, per estimator.
pub fn gating(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "gating.csv")? else {
        return Ok(None);
    };
    // Fractions (extra_test_err); runs written before that have points.
    let (extra, unit) = if t.has("extra_test_err") {
        ("extra_test_err", "fraction")
    } else {
        ("extra_error_points", "points")
    };
    let (ce, co, cx) = (t.col("estimator")?, t.col("gates_off")?, t.col(extra)?);
    let mut series = vec![];
    let mut lo: f64 = 0.0;
    let mut hi: f64 = 0.0;
    for (i, e) in t
        .distinct(ce)
        .iter()
        .filter(|e| *e != "ungated")
        .enumerate()
    {
        let pts = t.xy(co, cx, |r| r[ce] == *e);
        for p in &pts {
            lo = lo.min(p.0);
            hi = hi.max(p.0);
        }
        series.push(mean_series(
            e.clone(),
            Colour::Palette(i),
            Mark::LinePoints,
            &pts,
        ));
    }
    series.insert(
        0,
        Series::new(
            "ungated",
            Colour::Grey,
            Mark::Dashed,
            vec![(lo, 0.0), (hi.max(lo + 1e-3), 0.0)],
        ),
    );
    Ok(Some(Figure::new(
        "gating",
        "Conditional computation: extra error against gates switched off",
        vec![Panel::fitted(
            "",
            ("fraction of gates off", Scale::Linear),
            (&format!("extra test error [{unit}]"), Scale::Linear),
            series,
        )],
    )))
}

/// tpsgd: test accuracy and peak activation memory per model and rule, and accuracy against
/// depth per rule.
pub fn tpsgd(dir: &Path) -> Result<Vec<Figure>> {
    let mut out = vec![];
    if let Some(t) = Table::read_rows(dir, "results.csv")? {
        if let (Ok(cm), Ok(cr)) = (t.col("model"), t.col("rule")) {
            let (ca, cp) = (t.col("test_acc")?, t.col("peak_activation_bytes")?);
            let mut mb = t.clone();
            for r in &mut mb.rows {
                if let Some(b) = Table::num(r, cp) {
                    r[cp] = (b / 1e6).to_string();
                }
            }
            out.push(Figure::new(
                "rules",
                "Local learning rules against backprop",
                vec![
                    dots(
                        &t,
                        cm,
                        Some(cr),
                        ca,
                        "accuracy",
                        ("test accuracy", Scale::Linear),
                    ),
                    dots(
                        &mb,
                        cm,
                        Some(cr),
                        cp,
                        "memory",
                        ("peak activations [MB]", Scale::Log),
                    ),
                ],
            ));
        }
    }
    if let Some(t) = Table::read_rows(dir, "depth.csv")? {
        let (cl, cr, ca) = (t.col("layers")?, t.col("rule")?, t.col("test_acc")?);
        let series = t
            .distinct(cr)
            .iter()
            .enumerate()
            .map(|(i, r)| {
                mean_series(
                    r.clone(),
                    Colour::Palette(i),
                    Mark::LinePoints,
                    &t.xy(cl, ca, |x| x[cr] == *r),
                )
            })
            .collect();
        let mut p = Panel::fitted(
            "",
            ("layers", Scale::Linear),
            ("test accuracy", Scale::Linear),
            series,
        );
        p.x = p.x.integer();
        out.push(Figure::new("depth", "Test accuracy against depth", vec![p]));
    }
    Ok(out)
}
