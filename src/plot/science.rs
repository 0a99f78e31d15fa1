//! Scientific-model figures: bandit regret curves and test picks (pinn-interface).

use super::figure::{mean_series, Colour, Figure, Mark, Panel, Scale};
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
