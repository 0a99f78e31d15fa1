//! Reinforcement-learning figures: neuroevolution's fitness curves per method (mean ± std over
//! seeds) and the hard maze's final positions of GA and GA-NS over the walls.

use super::figure::{mean_series, Colour, Figure, Mark, Panel, Scale, Series};
use super::table::Table;
use crate::envs::maze;
use anyhow::Result;
use std::path::Path;

/// neuroevolution: CartPole elite validation return and best fitness, maze closest distance
/// to the goal and coverage, against generation.
pub fn neuro_fitness(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, crate::run::METRICS_CSV)? else {
        return Ok(None);
    };
    if !t.has("elite_validation") || !t.has("generation") || !t.has("env") {
        return Ok(None);
    }
    let (ce, cm, cg) = (t.col("env")?, t.col("method")?, t.col("generation")?);
    let methods = t.distinct(cm);
    let mut panels = vec![];
    for (env, col, title, ylabel) in [
        (
            "cartpole",
            "elite_validation",
            "CartPole: elite validation return",
            "return",
        ),
        (
            "cartpole",
            "median_fitness",
            "CartPole: population median return",
            "return",
        ),
        (
            "maze",
            "min_distance",
            "Hard maze: closest final distance to the goal so far",
            "distance",
        ),
        (
            "maze",
            "coverage",
            "Hard maze: coverage of 20 × 20 cells",
            "fraction",
        ),
    ] {
        let cy = t.col(col)?;
        let mut series = vec![];
        for (i, m) in methods.iter().enumerate() {
            let pts = t.xy(cg, cy, |r| r[ce] == env && r[cm] == *m);
            if !pts.is_empty() {
                series.push(mean_series(
                    m.as_str(),
                    Colour::Palette(i),
                    Mark::Line,
                    &pts,
                ));
            }
        }
        if !series.is_empty() {
            panels.push(Panel::fitted(
                title,
                ("generation", Scale::Linear),
                (ylabel, Scale::Linear),
                series,
            ));
        }
    }
    if panels.is_empty() {
        return Ok(None);
    }
    Ok(Some(Figure::new(
        "fitness",
        "Deep neuroevolution: GA, random search, OpenAI-ES and GA-NS (mean ± std over seeds)",
        panels,
    )))
}

/// neuroevolution: final positions of the last maze population (all seeds) and each seed's
/// elite, one panel per method, over the walls, start and goal.
pub fn maze_ends(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "positions.csv")? else {
        return Ok(None);
    };
    let (cm, ck, cx, cy) = (t.col("method")?, t.col("kind")?, t.col("x")?, t.col("y")?);
    let mut panels = vec![];
    for m in t.distinct(cm) {
        let mut series: Vec<Series> = maze::WALLS
            .iter()
            .map(|w| {
                Series::new(
                    "",
                    Colour::Grey,
                    Mark::Line,
                    vec![(w.a.x as f64, w.a.y as f64), (w.b.x as f64, w.b.y as f64)],
                )
            })
            .collect();
        series.push(Series::new(
            "final positions",
            Colour::Palette(0),
            Mark::Points,
            t.xy(cx, cy, |r| r[cm] == m && r[ck] == "population"),
        ));
        series.push(Series::new(
            "elite per seed",
            Colour::Palette(1),
            Mark::Points,
            t.xy(cx, cy, |r| r[cm] == m && r[ck] == "elite"),
        ));
        series.push(Series::new(
            "start",
            Colour::Palette(2),
            Mark::Points,
            vec![(maze::START.x as f64, maze::START.y as f64)],
        ));
        series.push(Series::new(
            "goal",
            Colour::Palette(3),
            Mark::Points,
            vec![(maze::GOAL.x as f64, maze::GOAL.y as f64)],
        ));
        panels.push(Panel::fitted(
            format!("{m}: final positions"),
            ("x", Scale::Linear),
            ("y (maze coordinates)", Scale::Linear),
            series,
        ));
    }
    if panels.is_empty() {
        return Ok(None);
    }
    Ok(Some(Figure::new(
        "maze-ends",
        "Hard maze: where the last population ends, GA vs GA-NS",
        panels,
    )))
}
