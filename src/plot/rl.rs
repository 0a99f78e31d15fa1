//! Reinforcement-learning figures: SQIRL against Q-learning sample complexity and the greedy
//! return of Q^k against k (effective-horizon).

use super::figure::{Colour, Figure, Mark, Panel, Scale, Series};
use super::table::Table;
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
