//! Distribution-shift figures: DANN's decision function on the rotated moons (NN against DANN,
//! source points by class, target points in grey) and its accuracy curves (source and target
//! accuracy, domain classifier and linear probe per arm, mean ± std over seeds); simplicity
//! bias's randomised AUCs; black-box testing's original/adversarial image pairs.

use super::figure::{mean_series, Cell, Colour, ColourBar, Figure, Mark, Panel, Scale, Series};
use super::table::Table;
use anyhow::Result;
use std::path::Path;

/// dann part (a): P(class 1) on a grid for each arm, with the first seed's points.
pub fn dann_boundary(dir: &Path) -> Result<Option<Figure>> {
    let (Some(grid), Some(points)) = (
        Table::read_rows(dir, "boundary.csv")?,
        Table::read_rows(dir, "points.csv")?,
    ) else {
        return Ok(None);
    };
    let (ca, cx, cy, cp) = (
        grid.col("arm")?,
        grid.col("x")?,
        grid.col("y")?,
        grid.col("p_class1")?,
    );
    let (pd, px, py, pl) = (
        points.col("domain")?,
        points.col("x")?,
        points.col("y")?,
        points.col("label")?,
    );
    let sorted = |c: usize| {
        let mut v: Vec<f64> = grid.rows.iter().filter_map(|r| Table::num(r, c)).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    };
    let (xs, ys) = (sorted(cx), sorted(cy));
    let half = |v: &[f64]| {
        if v.len() > 1 {
            (v[1] - v[0]) / 2.0
        } else {
            0.5
        }
    };
    let (hx, hy) = (half(&xs), half(&ys));
    let point_series = |domain: &str, label: Option<&str>, name: &str, colour: Colour| {
        let pts = points.xy(px, py, |r| {
            r[pd] == domain && label.is_none_or(|l| r[pl] == l)
        });
        Series::new(name, colour, Mark::Points, pts)
    };
    let mut panels = vec![];
    for arm in grid.distinct(ca) {
        let cells: Vec<Cell> = grid
            .rows
            .iter()
            .filter(|r| r[ca] == arm)
            .filter_map(|r| {
                let (x, y, p) = (Table::num(r, cx)?, Table::num(r, cy)?, Table::num(r, cp)?);
                Some(Cell {
                    x: (x - hx, x + hx),
                    y: (y - hy, y + hy),
                    value: p,
                    text: String::new(),
                })
            })
            .collect();
        let series = vec![
            point_series("source", Some("0"), "source, class 0", Colour::Palette(1)),
            point_series("source", Some("1"), "source, class 1", Colour::Palette(3)),
            point_series("target", None, "target (unlabeled)", Colour::Grey),
        ];
        let mut p = Panel::fitted(
            arm.to_uppercase(),
            ("x₁", Scale::Linear),
            ("x₂", Scale::Linear),
            series,
        );
        p.x.range = (xs[0] - hx, xs[xs.len() - 1] + hx);
        p.y.range = (ys[0] - hy, ys[ys.len() - 1] + hy);
        p.cells = cells;
        panels.push(p);
    }
    let mut fig = Figure::new(
        "dann-boundary",
        "Two moons, target rotated by 35°: label predictions of the NN and of DANN",
        panels,
    );
    fig.colour_bar = Some(ColourBar {
        label: "P(class 1)".into(),
        range: (0.0, 1.0),
        log: false,
        high_dark: false,
    });
    Ok(Some(fig))
}

/// dann: per part, source (solid) and target (dashed) accuracy by epoch for each arm, and the
/// domain classifier's accuracy (solid) with the linear probe's (points).
pub fn dann_accuracy(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, crate::run::METRICS_CSV)? else {
        return Ok(None);
    };
    let (Ok(cpart), Ok(carm), Ok(cdom)) = (t.col("part"), t.col("arm"), t.col("domain_acc")) else {
        return Ok(None);
    };
    let (ce, cs, ct, cp) = (
        t.col("epoch")?,
        t.col("source_acc")?,
        t.col("target_acc")?,
        t.col("probe_acc")?,
    );
    let mut panels = vec![];
    for part in t.distinct(cpart) {
        let (mut acc, mut dom) = (vec![], vec![]);
        let arms: Vec<String> = t
            .rows
            .iter()
            .filter(|r| r[cpart] == part)
            .map(|r| r[carm].clone())
            .fold(vec![], |mut v, a| {
                if !v.contains(&a) {
                    v.push(a);
                }
                v
            });
        for (i, arm) in arms.iter().enumerate() {
            let keep = |r: &[String]| r[cpart] == part && r[carm] == *arm;
            let c = Colour::Palette(i);
            acc.push(mean_series(
                format!("{arm} source"),
                c,
                Mark::Line,
                &t.xy(ce, cs, keep),
            ));
            acc.push(mean_series(
                format!("{arm} target"),
                c,
                Mark::Dashed,
                &t.xy(ce, ct, keep),
            ));
            dom.push(mean_series(
                format!("{arm} domain classifier"),
                c,
                Mark::Line,
                &t.xy(ce, cdom, keep),
            ));
            dom.push(mean_series(
                format!("{arm} probe"),
                c,
                Mark::Points,
                &t.xy(ce, cp, keep),
            ));
        }
        for (title, series, y) in [
            (format!("{part}: label accuracy"), acc, "accuracy"),
            (
                format!("{part}: domain accuracy"),
                dom,
                "source vs target accuracy",
            ),
        ] {
            let mut p = Panel::fitted(title, ("epoch", Scale::Linear), (y, Scale::Linear), series);
            p.x = p.x.integer();
            panels.push(p);
        }
    }
    Ok(Some(Figure::new(
        "dann-accuracy",
        "DANN against its baseline: label accuracy per domain and domain accuracy",
        panels,
    )))
}

/// simplicity-bias: AUC on the test set as drawn, with S randomised and with S^c randomised,
/// per dataset (mean ± std over seeds) and for the LMS-5 ensemble.
pub fn sb_auc(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "summary.csv")? else {
        return Ok(None);
    };
    let (Ok(cd), Ok(cm), Ok(cs)) = (t.col("dataset"), t.col("model"), t.col("s_rand_auc")) else {
        return Ok(None);
    };
    let (ct, csc) = (t.col("test_auc")?, t.col("sc_rand_auc")?);
    let group = |r: &[String]| {
        if r[cm] == "ensemble" {
            format!("{} ensemble", r[cd])
        } else {
            r[cd].clone()
        }
    };
    let mut cats: Vec<String> = vec![];
    for r in t.rows.iter().filter(|r| !r[cm].starts_with("ensemble-")) {
        let g = group(r);
        if !cats.contains(&g) {
            cats.push(g);
        }
    }
    let mut series = vec![];
    for (i, (label, c)) in [
        ("as drawn", ct),
        ("S randomised", cs),
        ("S^c randomised", csc),
    ]
    .into_iter()
    .enumerate()
    {
        let offset = -0.2 + 0.2 * i as f64;
        let (mut pts, mut err) = (vec![], vec![]);
        for (k, cat) in cats.iter().enumerate() {
            let v: Vec<f64> = t
                .rows
                .iter()
                .filter(|r| !r[cm].starts_with("ensemble-") && group(r) == *cat)
                .filter_map(|r| Table::num(r, c))
                .collect();
            if !v.is_empty() {
                let (m, s) = super::figure::mean_std(&v);
                pts.push((k as f64 + offset, m));
                err.push(s);
            }
        }
        series.push(Series::new(label, Colour::Palette(i), Mark::Points, pts).y_errors(&err));
    }
    let mut p = Panel::fitted(
        "",
        ("", Scale::Linear),
        ("AUC of L₁ − L₀", Scale::Linear),
        series,
    );
    p.x = super::figure::Axis::categories("dataset", cats);
    p.y.range = (0.4, 1.05);
    Ok(Some(Figure::new(
        "sb-auc",
        "Simplicity bias: test AUC with the simple coordinate (S) or all the others (S^c) randomised",
        vec![p],
    )))
}

/// blackbox-test: a few test images, original and adversarial per method, as grey-level
/// heatmaps with the changed pixels marked.
pub fn bbox_pairs(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "pairs.csv")? else {
        return Ok(None);
    };
    let (ci, ck, cr, cc, cv, cx) = (
        t.col("image")?,
        t.col("kind")?,
        t.col("row")?,
        t.col("col")?,
        t.col("value")?,
        t.col("changed")?,
    );
    let side = t
        .rows
        .iter()
        .filter_map(|r| Table::num(r, cr))
        .fold(0.0, f64::max)
        + 1.0;
    let mut panels = vec![];
    for image in t.distinct(ci) {
        for kind in t.distinct(ck) {
            let rows: Vec<&Vec<String>> = t
                .rows
                .iter()
                .filter(|r| r[ci] == image && r[ck] == kind)
                .collect();
            if rows.is_empty() {
                continue;
            }
            let mut marks = vec![];
            let mut cells = vec![];
            for r in &rows {
                let (Some(row), Some(col), Some(v)) =
                    (Table::num(r, cr), Table::num(r, cc), Table::num(r, cv))
                else {
                    continue;
                };
                let y = side - row - 1.0;
                cells.push(Cell {
                    x: (col, col + 1.0),
                    y: (y, y + 1.0),
                    value: v,
                    text: String::new(),
                });
                if r[cx] == "1" {
                    marks.push((col + 0.5, y + 0.5));
                }
            }
            let n = marks.len();
            let series = vec![Series::new(
                "changed pixel",
                Colour::Palette(1),
                Mark::Points,
                marks,
            )];
            let title = if kind == "original" {
                format!("test image {image}")
            } else {
                format!("{kind}: L0 = {n}")
            };
            let mut p = Panel::fitted(title, ("", Scale::Linear), ("", Scale::Linear), series);
            p.x = super::figure::Axis::fit("", Scale::Linear, [0.0, side]);
            p.y = super::figure::Axis::fit("", Scale::Linear, [0.0, side]);
            p.cells = cells;
            panels.push(p);
        }
    }
    if panels.is_empty() {
        return Ok(None);
    }
    let mut f = Figure::new(
        "bbox-pairs",
        "Black-box testing: originals and adversarial images, changed pixels marked",
        panels,
    );
    f.colour_bar = Some(ColourBar {
        label: "intensity".into(),
        range: (0.0, 1.0),
        log: false,
        high_dark: false,
    });
    Ok(Some(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bbox_pairs_draws_each_image_per_kind_with_its_changed_pixels() {
        let dir = tempfile::tempdir().unwrap();
        assert!(bbox_pairs(dir.path()).unwrap().is_none());
        // A 2×2 "image" 7: original, and dfmcs with pixel (row 0, col 1) flipped.
        let mut csv = String::from("image,kind,row,col,value,changed\n");
        for (kind, flipped) in [("original", false), ("dfmcs", true)] {
            for p in 0..4 {
                let v = if flipped && p == 1 { 1.0 } else { 0.0 };
                let c = i32::from(flipped && p == 1);
                csv += &format!("7,{kind},{},{},{v},{c}\n", p / 2, p % 2);
            }
        }
        std::fs::write(dir.path().join("pairs.csv"), csv).unwrap();
        let f = bbox_pairs(dir.path()).unwrap().unwrap();
        assert_eq!(f.panels.len(), 2);
        assert_eq!(f.panels[0].title, "test image 7");
        assert_eq!(f.panels[1].title, "dfmcs: L0 = 1");
        assert!(f.panels.iter().all(|p| p.cells.len() == 4));
        assert!(f.panels[0].series[0].points.is_empty());
        // Row 0 is drawn at the top: y = side − row − 1/2.
        assert_eq!(f.panels[1].series[0].points, vec![(1.5, 1.5)]);
        let lit: Vec<f64> = f.panels[1].cells.iter().map(|c| c.value).collect();
        assert_eq!(lit, vec![0.0, 1.0, 0.0, 0.0]);
    }
}
