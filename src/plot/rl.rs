//! Reinforcement-learning figures: SQIRL against Q-learning sample complexity and the greedy
//! return of Q^k against k (effective-horizon); neuroevolution's fitness curves per method
//! (mean ± std over seeds) and the hard maze's final positions of GA and GA-NS over the walls;
//! twin-control's ABM populations per control arm.

use super::figure::{mean_series, Colour, Figure, Mark, Panel, Scale, Series};
use super::table::Table;
use crate::envs::maze;
use anyhow::Result;
use std::path::Path;

/// effective-horizon: (left) per environment, Q-learning's median steps to solve against
/// SQIRL's (best k), log-log, with the diagonal; (right) the worst-case greedy return of Q^k
/// (normalised) against k per environment, with SQIRL's final return at each k run as points.
pub fn effective_horizon(dir: &Path) -> Result<Option<Figure>> {
    let (Some(s), Some(e)) = (
        Table::read_rows(dir, "summary.csv")?,
        Table::read_rows(dir, "envs.csv")?,
    ) else {
        return Ok(None);
    };
    if !s.has("median_steps") || !e.has("greedy_k1") {
        return Ok(None);
    }
    let (ce, ca, ck, cm, cf) = (
        s.col("env")?,
        s.col("algorithm")?,
        s.col("k")?,
        s.col("median_steps")?,
        s.col("final_normalized")?,
    );
    let envs = e.distinct(e.col("env")?);
    let mut pts = vec![];
    let mut unsolved = 0;
    for env in &envs {
        let rows: Vec<&Vec<String>> = s.rows.iter().filter(|r| r[ce] == *env).collect();
        let sq = rows
            .iter()
            .filter(|r| r[ca] == "sqirl")
            .filter_map(|r| Table::num(r, cm))
            .fold(f64::INFINITY, f64::min);
        let ql = rows
            .iter()
            .find(|r| r[ca] == "qlearning")
            .and_then(|r| Table::num(r, cm))
            .unwrap_or(f64::NAN);
        if sq.is_finite() && ql.is_finite() {
            pts.push((sq, ql));
        } else {
            unsolved += 1;
        }
    }
    let mut left = vec![];
    if let (Some(lo), Some(hi)) = (
        pts.iter().map(|p| p.0.min(p.1)).reduce(f64::min),
        pts.iter().map(|p| p.0.max(p.1)).reduce(f64::max),
    ) {
        left.push(Series::new(
            "",
            Colour::Grey,
            Mark::Dashed,
            vec![(lo, lo), (hi, hi)],
        ));
    }
    left.push(Series::new(
        "environments solved by both",
        Colour::Palette(0),
        Mark::Points,
        pts,
    ));
    let title = if unsolved > 0 {
        format!(
            "sample complexity (median over seeds; {unsolved} env(s) unsolved by one, left out)"
        )
    } else {
        "sample complexity (median over seeds)".to_string()
    };
    let mut right = vec![];
    let (cenv, copt, crand) = (
        e.col("env")?,
        e.col("optimal_return")?,
        e.col("random_return")?,
    );
    for (i, r) in e.rows.iter().enumerate() {
        let (Some(opt), Some(rand)) = (Table::num(r, copt), Table::num(r, crand)) else {
            continue;
        };
        let gap = opt - rand;
        let norm = |x: f64| if gap > 1e-6 { (x - rand) / gap } else { 1.0 };
        let mut line = vec![];
        for k in 1.. {
            let Ok(c) = e.col(&format!("greedy_k{k}")) else {
                break;
            };
            if let Some(g) = Table::num(r, c) {
                line.push((k as f64, norm(g)));
            }
        }
        right.push(Series::new(
            r[cenv].clone(),
            Colour::Palette(i),
            Mark::Line,
            line,
        ));
        let learned: Vec<(f64, f64)> = s
            .rows
            .iter()
            .filter(|x| x[ce] == r[cenv] && x[ca] == "sqirl")
            .filter_map(|x| Some((Table::num(x, ck)?, Table::num(x, cf)?)))
            .collect();
        right.push(Series::new("", Colour::Palette(i), Mark::Points, learned));
    }
    Ok(Some(Figure::new(
        "effective_horizon",
        "Effective horizon: SQIRL vs Q-learning sample complexity; greedy return of Q^k (lines) and SQIRL's final return (points) against k",
        vec![
            Panel::fitted(
                title,
                ("SQIRL steps to solve (best k)", Scale::Log),
                ("Q-learning steps to solve", Scale::Log),
                left,
            ),
            {
                let mut p = Panel::fitted(
                    "greedy return of Q^k, worst-case ties",
                    ("k", Scale::Linear),
                    ("normalised return (R − R_rand)/(R* − R_rand)", Scale::Linear),
                    right,
                );
                p.x = p.x.integer();
                p
            },
        ],
    )))
}

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

/// twin-control: ABM sheep and wolves (mean ± std over fresh replicates) against tick per
/// control arm, the sheep target dashed; the surrogate's prediction for the NN arm dotted.
pub fn twin_trajectories(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "trajectories.csv")? else {
        return Ok(None);
    };
    if !t.has("surrogate_sheep") || !t.has("sheep_mean") {
        return Ok(None);
    }
    let (ca, ct) = (t.col("arm")?, t.col("tick")?);
    let arms = t.distinct(ca);
    let target = match t.col("target_sheep") {
        Ok(c) => t.rows.first().and_then(|r| Table::num(r, c)),
        Err(_) => None,
    };
    let mut panels = vec![];
    for (species, title) in [
        ("sheep", "sheep on the ABM"),
        ("wolves", "wolves on the ABM"),
    ] {
        let (cm, cs, cp) = (
            t.col(&format!("{species}_mean"))?,
            t.col(&format!("{species}_std"))?,
            t.col(&format!("surrogate_{species}"))?,
        );
        let mut series = vec![];
        for (i, arm) in arms.iter().enumerate() {
            let rows: Vec<&Vec<String>> = t.rows.iter().filter(|r| r[ca] == *arm).collect();
            let mut pts = vec![];
            let mut band = vec![];
            let mut sur = vec![];
            for r in &rows {
                let (Some(x), Some(m), Some(s)) =
                    (Table::num(r, ct), Table::num(r, cm), Table::num(r, cs))
                else {
                    continue;
                };
                pts.push((x, m));
                band.push((x, m - s, m + s));
                if let Some(p) = Table::num(r, cp) {
                    sur.push((x, p));
                }
            }
            let shaded = matches!(arm.as_str(), "none" | "nn");
            let mut s = Series::new(arm.clone(), Colour::Palette(i), Mark::Line, pts);
            if shaded {
                s = s.band(band);
            }
            series.push(s);
            if arm == "nn" {
                series.push(Series::new(
                    "nn on the surrogate",
                    Colour::Palette(i),
                    Mark::Dashed,
                    sur,
                ));
            }
        }
        if let (Some(target), "sheep") = (target, species) {
            let last = t
                .rows
                .iter()
                .filter_map(|r| Table::num(r, ct))
                .fold(0.0, f64::max);
            series.push(Series::new(
                "",
                Colour::Grey,
                Mark::Dashed,
                vec![(0.0, target), (last, target)],
            ));
        }
        panels.push(Panel::fitted(
            title,
            ("tick", Scale::Linear),
            (species, Scale::Linear),
            series,
        ));
    }
    Ok(Some(Figure::new(
        "twin_trajectories",
        "twin-control: ABM populations (mean ± std over fresh replicates; bands for none and nn) per control arm, sheep target dashed grey",
        panels,
    )))
}
