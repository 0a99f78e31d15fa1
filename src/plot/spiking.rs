//! Spiking-network figures (snn): the per-class distributions of the hidden trains' LZ
//! complexity, and test accuracy per arm and decoder.

use super::figure::{Axis, Colour, Figure, Mark, Panel, Scale, Series};
use super::table::Table;
use anyhow::Result;
use std::path::Path;

/// Histogram of `v` over `bins` equal bins on [lo, hi] as a density step line (x at bin
/// edges, the density held across each bin).
pub fn density_steps(v: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<(f64, f64)> {
    let width = (hi - lo) / bins as f64;
    if v.is_empty() || width.is_nan() || width <= 0.0 {
        return vec![];
    }
    let mut counts = vec![0usize; bins];
    for &x in v {
        let i = (((x - lo) / width).floor().max(0.0) as usize).min(bins - 1);
        counts[i] += 1;
    }
    let n = v.len() as f64;
    let mut out = vec![];
    for (i, c) in counts.iter().enumerate() {
        let d = *c as f64 / (n * width);
        out.push((lo + i as f64 * width, d));
        out.push((lo + (i + 1) as f64 * width, d));
    }
    out
}

/// snn: per task, the test LZC of the learnable LIF arm (first seed) per class.
pub fn snn_lzc(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "lzc.csv")? else {
        return Ok(None);
    };
    if !t.has("lzc") || !t.has("label") {
        return Ok(None);
    }
    let (ct, cn, ca, cl, cz) = (
        t.col("task")?,
        t.col("neuron")?,
        t.col("arm")?,
        t.col("label")?,
        t.col("lzc")?,
    );
    let mut panels = vec![];
    for task in t.distinct(ct) {
        let neuron = if t.rows.iter().any(|r| r[ct] == task && r[cn] == "lif") {
            "lif".to_string()
        } else {
            t.rows
                .iter()
                .find(|r| r[ct] == task)
                .map(|r| r[cn].clone())
                .unwrap_or_default()
        };
        let keep = |r: &[String]| r[ct] == task && r[cn] == neuron && r[ca] == "learnable";
        let all: Vec<f64> = t
            .rows
            .iter()
            .filter(|r| keep(r))
            .filter_map(|r| Table::num(r, cz))
            .collect();
        if all.is_empty() {
            continue;
        }
        let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = if hi > lo {
            (lo, hi)
        } else {
            (lo - 0.5, lo + 0.5)
        };
        let mut series = vec![];
        for (i, class) in ["0", "1"].iter().enumerate() {
            let v: Vec<f64> = t
                .rows
                .iter()
                .filter(|r| keep(r) && r[cl] == *class)
                .filter_map(|r| Table::num(r, cz))
                .collect();
            let name = match (task.as_str(), i) {
                ("rate", 0) => "class 0 (low rate)",
                ("rate", _) => "class 1 (high rate)",
                (_, 0) => "class 0 (Poisson)",
                _ => "class 1 (bursty)",
            };
            series.push(Series::new(
                name,
                Colour::Palette(i),
                Mark::Line,
                density_steps(&v, lo, hi, 25),
            ));
        }
        panels.push(Panel::fitted(
            format!("task {task}, {neuron}, learnable β/θ"),
            (
                "mean normalised LZ76 complexity of hidden trains",
                Scale::Linear,
            ),
            ("density", Scale::Linear),
            series,
        ));
    }
    if panels.is_empty() {
        return Ok(None);
    }
    Ok(Some(Figure::new(
        "snn-lzc",
        "SNN-LZC: complexity of the hidden spike trains per class (test split, first seed)",
        panels,
    )))
}

/// snn: per task, seed-mean test accuracy of every (neuron, arm) for each decoder.
pub fn snn_accuracy(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "summary.csv")? else {
        return Ok(None);
    };
    if !t.has("acc_lzc") || !t.has("acc_readout") {
        return Ok(None);
    }
    let (ct, cn, ca) = (t.col("task")?, t.col("neuron")?, t.col("arm")?);
    let arms: Vec<String> = {
        let mut a: Vec<String> = vec![];
        for r in &t.rows {
            let k = format!("{} {}", r[cn], r[ca]);
            if !a.contains(&k) {
                a.push(k);
            }
        }
        a
    };
    let mut panels = vec![];
    for task in t.distinct(ct) {
        let mut series = vec![];
        for (i, (col, name)) in [
            ("acc_readout", "readout"),
            ("acc_count", "spike count"),
            ("acc_lzc", "SNN-LZC"),
        ]
        .iter()
        .enumerate()
        {
            let c = t.col(col)?;
            let pts: Vec<(f64, f64)> = t
                .rows
                .iter()
                .filter(|r| r[ct] == task)
                .filter_map(|r| {
                    let k = format!("{} {}", r[cn], r[ca]);
                    let x = arms.iter().position(|a| *a == k)? as f64;
                    Some((x, Table::num(r, c)?))
                })
                .collect();
            series.push(Series::new(*name, Colour::Palette(i), Mark::Points, pts));
        }
        let mut p = Panel::fitted(
            format!("task {task}"),
            ("", Scale::Linear),
            ("test accuracy", Scale::Linear),
            series,
        );
        p.x = Axis::categories("neuron, arm", arms.clone());
        panels.push(p);
    }
    if panels.is_empty() {
        return Ok(None);
    }
    Ok(Some(Figure::new(
        "snn-accuracy",
        "SNN: test accuracy per arm and decoder (seed means)",
        panels,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn density_steps_integrate_to_one() {
        let d = density_steps(&[0.0, 0.1, 0.5, 1.0], 0.0, 1.0, 4);
        assert_eq!(d.len(), 8);
        let area: f64 = d.chunks(2).map(|c| (c[1].0 - c[0].0) * c[0].1).sum();
        assert!((area - 1.0).abs() < 1e-12);
        // Bin [0, 0.25) holds two of four points: density 0.5/0.25 = 2.
        assert_eq!(d[0], (0.0, 2.0));
        assert!(density_steps(&[], 0.0, 1.0, 4).is_empty());
    }
}
