//! SGD figures: the (α, T) phase diagram, the perceptron's power laws and the lazy MLP's T_c(P)
//! (sgd-noise), λ_max of the
//! mini-batch Hessian against B with its fit and the best learning rate against B (lr-batch),
//! distance from initialisation against updates (train-longer).

use super::figure::{
    by_x, mean_series, Axis, Cell, Colour, ColourBar, Figure, Mark, Panel, Scale, Series,
};
use super::render::number;
use super::table::Table;
use anyhow::Result;
use std::path::Path;

/// A fitted line from a summary.csv: (intercept, slope) of the row whose first cell is `name`.
fn fit(t: Option<&Table>, name: &str, a: &str, b: &str) -> Option<(f64, f64)> {
    let t = t?;
    let (ca, cb) = (t.col(a).ok()?, t.col(b).ok()?);
    let r = t.rows.iter().find(|r| r[0] == name)?;
    Some((Table::num(r, ca)?, Table::num(r, cb)?))
}

/// `n` points of `f` spaced evenly in log x over [lo, hi].
fn log_curve(lo: f64, hi: f64, f: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
    let n = 60;
    (0..=n)
        .map(|i| {
            let x = lo * (hi / lo).powf(i as f64 / n as f64);
            (x, f(x))
        })
        .collect()
}

/// Test error over the (α, T) grid: one cell per point with its value, darker is worse.
pub fn phase(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "phase.csv")? else {
        return Ok(None);
    };
    let (ca, ct, ce) = (t.col("alpha")?, t.col("T")?, t.col("test_err")?);
    let sorted = |c: usize| {
        let mut v: Vec<f64> = t.rows.iter().filter_map(|r| Table::num(r, c)).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    };
    let (alphas, temps) = (sorted(ca), sorted(ct));
    let mut cells = vec![];
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (i, a) in alphas.iter().enumerate() {
        for (j, tt) in temps.iter().enumerate() {
            let errs: Vec<f64> = t
                .rows
                .iter()
                .filter(|r| Table::num(r, ca) == Some(*a) && Table::num(r, ct) == Some(*tt))
                .filter_map(|r| Table::num(r, ce))
                .collect();
            if errs.is_empty() {
                continue;
            }
            let (m, _) = super::figure::mean_std(&errs);
            lo = lo.min(m);
            hi = hi.max(m);
            cells.push(Cell {
                x: (i as f64 - 0.5, i as f64 + 0.5),
                y: (j as f64 - 0.5, j as f64 + 0.5),
                value: m,
                text: format!("{:.1}%", 100.0 * m),
            });
        }
    }
    let panel = Panel {
        title: String::new(),
        x: Axis::categories(
            "α (scale of the output)",
            alphas.iter().map(|v| number(*v)).collect(),
        ),
        y: Axis::categories("T = η/B", temps.iter().map(|v| number(*v)).collect()),
        series: vec![],
        cells,
    };
    let seeds = t.seeds();
    let title = format!(
        "Test error over (α, T){}",
        if seeds > 1 {
            format!(", mean over {seeds} seeds")
        } else {
            String::new()
        }
    );
    let mut fig = Figure::new("phase", title, vec![panel]);
    fig.colour_bar = Some(ColourBar {
        label: "test error".into(),
        range: (lo.min(hi), hi),
        log: false,
        high_dark: true,
    });
    Ok(Some(fig))
}

/// The power-law fits of a summary.csv: rows of `part` and `quantity`, as (χ or "", cells by
/// column name).
fn summary_rows<'a>(s: &'a Table, part: &str, quantity: &str) -> Vec<&'a Vec<String>> {
    let (Ok(cp), Ok(cq)) = (s.col("part"), s.col("quantity")) else {
        return vec![];
    };
    s.rows
        .iter()
        .filter(|r| r[cp] == part && r[cq] == quantity)
        .collect()
}

/// T_c against P, one series per label with its fitted power law.
fn tc_series(
    s: &Table,
    part: &str,
    points: &str,
    fit_name: &str,
    keep: impl Fn(&[String]) -> Option<String>,
) -> Result<Vec<Series>> {
    let (cpp, cv, ce) = (s.col("P")?, s.col("value")?, s.col("exp_P")?);
    let mut labels: Vec<String> = vec![];
    for r in summary_rows(s, part, points) {
        if let Some(l) = keep(r) {
            if !labels.contains(&l) {
                labels.push(l);
            }
        }
    }
    let mut series = vec![];
    for (i, l) in labels.iter().enumerate() {
        let pts: Vec<(f64, f64)> = summary_rows(s, part, points)
            .into_iter()
            .filter(|r| keep(r).as_ref() == Some(l))
            .filter_map(|r| Some((Table::num(r, cpp)?, Table::num(r, cv)?)))
            .filter(|q| q.1 > 0.0)
            .collect();
        if pts.is_empty() {
            continue;
        }
        let fit = summary_rows(s, part, fit_name)
            .into_iter()
            .find(|r| keep(r).as_ref() == Some(l))
            .and_then(|r| Some((Table::num(r, cv)?, Table::num(r, ce)?)));
        let (lo, hi) = (pts[0].0, pts[pts.len() - 1].0);
        series.push(Series::new(
            l.clone(),
            Colour::Palette(i),
            Mark::Points,
            pts,
        ));
        if let Some((a, b)) = fit {
            series.push(Series::new(
                format!("{l}: T_c ∝ P^{b:.2}"),
                Colour::Palette(i),
                Mark::Dashed,
                log_curve(lo, hi.max(lo * 1.01), |p| (a + b * p.ln()).exp()),
            ));
        }
    }
    Ok(series)
}

/// The perceptron (sgd-noise part A): ‖Δw‖/T against P per χ (one curve if δ = 1, slope γ),
/// t*/T against P per χ, and T_c(P) at the fixed ‖Δw‖ level with its fitted power law.
pub fn perceptron(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "perceptron.csv")? else {
        return Ok(None);
    };
    let (cc, cp, ct, cd, cs, cf) = (
        t.col("chi")?,
        t.col("P")?,
        t.col("T")?,
        t.col("dw_norm")?,
        t.col("t_star")?,
        t.col("fitted")?,
    );
    let mut dw = vec![];
    let mut ts = vec![];
    for (i, chi) in t.distinct(cc).iter().enumerate() {
        let keep = |r: &[String]| r[cc] == *chi && r[cf] == "true";
        let per_t = |c: usize| -> Vec<(f64, f64)> {
            t.rows
                .iter()
                .filter(|r| keep(r))
                .filter_map(|r| Some((Table::num(r, cp)?, Table::num(r, c)? / Table::num(r, ct)?)))
                .collect()
        };
        let label = format!("χ = {chi}");
        dw.push(mean_series(
            label.clone(),
            Colour::Palette(i),
            Mark::LinePoints,
            &per_t(cd),
        ));
        ts.push(mean_series(
            label,
            Colour::Palette(i),
            Mark::LinePoints,
            &per_t(cs),
        ));
    }
    let mut panels = vec![
        Panel::fitted(
            "distance travelled",
            ("P", Scale::Log),
            ("‖Δw‖ / T", Scale::Log),
            dw,
        ),
        Panel::fitted(
            "training time",
            ("P", Scale::Log),
            ("t* / T", Scale::Log),
            ts,
        ),
    ];
    if let Some(s) = Table::read_rows(dir, "summary.csv")? {
        if s.has("chi") {
            let cc = s.col("chi")?;
            let series = tc_series(&s, "perceptron", "T_c", "log T_c vs log P", |r| {
                Some(format!("χ = {}", r[cc]))
            })?;
            if !series.is_empty() {
                panels.push(Panel::fitted(
                    "critical temperature (fixed ‖Δw‖)",
                    ("P", Scale::Log),
                    ("T_c", Scale::Log),
                    series,
                ));
            }
        }
    }
    Ok(Some(Figure::new(
        "perceptron",
        "Perceptron: SGD noise against training-set size (uncensored runs, mean over T and seeds)",
        panels,
    )))
}

/// The lazy MLP (sgd-noise part B): ‖Δw‖/‖w₀‖ and test error against T per P, and T_c(P)
/// with its fitted power law.
pub fn lazy(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "lazy.csv")? else {
        return Ok(None);
    };
    let (cp, ct, cd, ce) = (
        t.col("P")?,
        t.col("T")?,
        t.col("dw_rel")?,
        t.col("test_err")?,
    );
    let (mut dist, mut err) = (vec![], vec![]);
    for (i, p) in t.distinct(cp).iter().enumerate() {
        let keep = |r: &[String]| r[cp] == *p;
        let label = format!("P = {p}");
        dist.push(mean_series(
            label.clone(),
            Colour::Palette(i),
            Mark::LinePoints,
            &t.xy(ct, cd, keep),
        ));
        err.push(mean_series(
            label,
            Colour::Palette(i),
            Mark::LinePoints,
            &t.xy(ct, ce, keep),
        ));
    }
    let mut panels = vec![
        Panel::fitted(
            "leaving the kernel regime",
            ("T", Scale::Log),
            ("‖Δw‖ / ‖w₀‖", Scale::Log),
            dist,
        ),
        Panel::fitted(
            "generalisation",
            ("T", Scale::Log),
            ("test error", Scale::Linear),
            err,
        ),
    ];
    if let Some(s) = Table::read_rows(dir, "summary.csv")? {
        if s.has("part") {
            let mut series = tc_series(
                &s,
                "lazy",
                "T_c (dw_rel)",
                "log T_c vs log P (dw_rel)",
                |_| Some("T_c (‖Δw‖/‖w₀‖ level)".to_string()),
            )?;
            let more = tc_series(
                &s,
                "lazy",
                "T_c (test error)",
                "log T_c vs log P (test error)",
                |_| Some("T_c (test error leaves plateau)".to_string()),
            )?;
            for mut m in more {
                m.colour = Colour::Palette(4);
                series.push(m);
            }
            if !series.is_empty() {
                panels.push(Panel::fitted(
                    "critical temperature",
                    ("P", Scale::Log),
                    ("T_c", Scale::Log),
                    series,
                ));
            }
        }
    }
    Ok(Some(Figure::new(
        "lazy",
        "Lazy MLP (α = 2^15): SGD temperature against training-set size",
        panels,
    )))
}

/// λ_max of the mini-batch Hessian against B (mean ± std over batches) at each logged epoch,
/// with the fit λ_max = a + c/B from summary.csv.
pub fn lambda_max(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "hessian.csv")? else {
        return Ok(None);
    };
    let (ce, cb, cm) = (
        t.col("epoch")?,
        t.col("batch_size")?,
        t.col("lambda_max_mean")?,
    );
    let cs = t.col("lambda_max_std").ok();
    let summary = Table::read_rows(dir, "summary.csv")?;
    let mut series = vec![];
    for (i, e) in t.distinct(ce).iter().enumerate() {
        let pts = t.xy(cb, cm, |r| r[ce] == *e);
        let agg = by_x(&pts);
        let mean: Vec<(f64, f64)> = agg.iter().map(|a| (a.0, a.1)).collect();
        // The spread over batches (hessian.csv), averaged over seeds where there are several.
        let std: Vec<f64> = match cs {
            Some(cs) => by_x(&t.xy(cb, cs, |r| r[ce] == *e))
                .iter()
                .map(|a| a.1)
                .collect(),
            None => agg.iter().map(|a| a.2).collect(),
        };
        let s = Series::new(
            format!("epoch {e}"),
            Colour::Palette(i),
            Mark::Points,
            mean.clone(),
        )
        .y_errors(&std);
        series.push(s);
        let name = format!("lambda_max = a + c/B, epoch {e}");
        if let Some((a, c)) = fit(summary.as_ref(), &name, "intercept", "slope") {
            let lo = mean.iter().map(|q| q.0).fold(f64::INFINITY, f64::min);
            let hi = mean.iter().map(|q| q.0).fold(0.0, f64::max);
            series.push(Series::new(
                format!("epoch {e}: {} + {}/B", number(a), number(c)),
                Colour::Palette(i),
                Mark::Dashed,
                log_curve(lo, hi.max(lo * 1.01), |b| a + c / b),
            ));
        }
    }
    Ok(Some(Figure::new(
        "lambda_max",
        "Top Hessian eigenvalue against batch size (dashed: fit a + c/B)",
        vec![Panel::fitted(
            "",
            ("batch size B", Scale::Log),
            ("λ_max(H_B)", Scale::Log),
            series,
        )],
    )))
}

/// The best learning rate (lowest final training loss, not diverged) against B per optimizer,
/// log–log, with the slope fitted in summary.csv.
pub fn best_lr(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "grid.csv")? else {
        return Ok(None);
    };
    let (co, cb, cl, cf) = (
        t.col("optimizer")?,
        t.col("batch_size")?,
        t.col("lr")?,
        t.col("final_train_loss")?,
    );
    let cd = t.col("diverged").ok();
    let summary = Table::read_rows(dir, "summary.csv")?;
    let mut series = vec![];
    for (i, o) in t.distinct(co).iter().enumerate() {
        let mut best = vec![];
        for b in t.distinct(cb) {
            // Mean final loss per learning rate (over seeds where there are several).
            let pts = t.xy(cl, cf, |r| {
                r[co] == *o && r[cb] == b && cd.is_none_or(|c| r[c] != "true")
            });
            let top = by_x(&pts).into_iter().min_by(|x, y| x.1.total_cmp(&y.1));
            if let (Some(top), Ok(b)) = (top, b.parse::<f64>()) {
                best.push((b, top.0));
            }
        }
        if best.is_empty() {
            continue;
        }
        best.sort_by(|x, y| x.0.total_cmp(&y.0));
        let (lo, hi) = (best[0].0, best[best.len() - 1].0);
        series.push(Series::new(
            format!("{o} best lr"),
            Colour::Palette(i),
            Mark::LinePoints,
            best,
        ));
        if let Some((a, s)) = fit(
            summary.as_ref(),
            &format!("log best lr vs log B, {o}"),
            "intercept",
            "slope",
        ) {
            series.push(Series::new(
                format!("{o} fit: lr ∝ B^{s:.2}"),
                Colour::Palette(i),
                Mark::Dashed,
                log_curve(lo, hi.max(lo * 1.01), |b| (a + s * b.ln()).exp()),
            ));
        }
    }
    if series.is_empty() {
        return Ok(None);
    }
    Ok(Some(Figure::new(
        "best_lr",
        "Best learning rate against batch size",
        vec![Panel::fitted(
            "",
            ("batch size B", Scale::Log),
            ("learning rate", Scale::Log),
            series,
        )],
    )))
}

/// The measured stability edge (largest stable rate, mean ± std over seeds) against B per
/// optimizer, log–log, with the theory's 2/λ_max(H_B) from the epoch-0 fit (dashed) and the
/// bend B* = c/a (a vertical dotted line) (lr-batch edge_summary.csv).
pub fn stability_edge(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "edge_summary.csv")? else {
        return Ok(None);
    };
    let (co, cb, cm, cs, ct) = (
        t.col("optimizer")?,
        t.col("batch_size")?,
        t.col("lr_edge_mean")?,
        t.col("lr_edge_std")?,
        t.col("theory_fit_2_over_lambda")?,
    );
    let mut series = vec![];
    for (i, o) in t.distinct(co).iter().enumerate() {
        let mine = |r: &[String]| r[co] == *o;
        let pts: Vec<(f64, f64)> = t
            .xy(cb, cm, mine)
            .into_iter()
            .filter(|p| p.1.is_finite())
            .collect();
        if pts.is_empty() {
            continue;
        }
        let std: Vec<f64> = t
            .xy(cb, cs, mine)
            .into_iter()
            .zip(t.xy(cb, cm, mine))
            .filter(|(_, m)| m.1.is_finite())
            .map(|(s, _)| if s.1.is_finite() { s.1 } else { 0.0 })
            .collect();
        series.push(
            Series::new(
                format!("{o}: measured edge"),
                Colour::Palette(i),
                Mark::LinePoints,
                pts,
            )
            .y_errors(&std),
        );
    }
    if series.is_empty() {
        return Ok(None);
    }
    // The theory holds for (full-batch-like) gradient descent: one curve, from SGD's rows.
    let theory: Vec<(f64, f64)> = t
        .xy(cb, ct, |r| r[co] == "sgd")
        .into_iter()
        .filter(|p| p.1.is_finite())
        .collect();
    if !theory.is_empty() {
        series.push(Series::new(
            "2/λ_max(H_B), fit a + c/B at epoch 0",
            Colour::Palette(7),
            Mark::Dashed,
            theory,
        ));
    }
    Ok(Some(Figure::new(
        "stability_edge",
        "Largest stable learning rate against batch size (bisection; dashed: 2/λ_max(H_B))",
        vec![Panel::fitted(
            "",
            ("batch size B", Scale::Log),
            ("learning rate", Scale::Log),
            series,
        )],
    )))
}

/// ‖w − w₀‖ and test error against the number of updates per arm, log x (Hoffer et al.: the
/// distance grows like log t, and matching the updates closes the generalisation gap).
pub fn distance(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, crate::run::METRICS_CSV)? else {
        return Ok(None);
    };
    let (Ok(cs), Ok(cd)) = (t.col("step"), t.col("dist_total")) else {
        return Ok(None);
    };
    let ca = t.col("arm").ok();
    let arms = ca.map_or(vec![String::new()], |c| t.distinct(c));
    let (mut dist, mut err) = (vec![], vec![]);
    for (i, arm) in arms.iter().enumerate() {
        let keep = |r: &[String]| ca.is_none_or(|c| r[c] == *arm);
        let label = if arm.is_empty() {
            "run".to_string()
        } else {
            arm.clone()
        };
        dist.push(mean_series(
            label.clone(),
            Colour::Palette(i),
            Mark::Line,
            &t.xy(cs, cd, keep),
        ));
        if let Ok(cacc) = t.col("test_acc") {
            let e: Vec<(f64, f64)> = t
                .xy(cs, cacc, keep)
                .into_iter()
                .map(|(s, a)| (s, 1.0 - a))
                .collect();
            err.push(mean_series(label, Colour::Palette(i), Mark::Line, &e));
        }
    }
    let mut panels = vec![Panel::fitted(
        "distance from initialisation",
        ("updates", Scale::Log),
        ("‖w − w₀‖", Scale::Linear),
        dist,
    )];
    if !err.is_empty() {
        panels.push(Panel::fitted(
            "generalisation",
            ("updates", Scale::Log),
            ("test error", Scale::Linear),
            err,
        ));
    }
    let seeds = t.seeds();
    let title = format!(
        "Distance and error against updates{}",
        if seeds > 1 {
            format!(" (mean ± std over {seeds} seeds)")
        } else {
            String::new()
        }
    );
    Ok(Some(Figure::new("distance", title, panels)))
}
