//! Bayesian figures: the prior of random wide networks against the t and Gaussian densities,
//! and GP vs t-process predictive bands (nngp-mixture); coverage, width and error against the
//! training-set size per method (sgmcmc-potential); simple-regret curves per objective and
//! surrogate (bnn-bo).

use super::figure::{Colour, Figure, Mark, Panel, Scale, Series};
use super::table::Table;
use anyhow::Result;
use std::path::Path;

/// nngp-mixture part (a): histogram densities of the network outputs with the t_{2α} and the
/// fitted Gaussian densities, on a linear and a log scale (the tails), per prior.
pub fn nngp_prior(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "prior_hist.csv")? else {
        return Ok(None);
    };
    let (cp, cf, cd, ct, cg) = (
        t.col("prior")?,
        t.col("f")?,
        t.col("density")?,
        t.col("t_density")?,
        t.col("gaussian_density")?,
    );
    let mut panels = vec![];
    for prior in t.distinct(cp) {
        let keep = |r: &[String]| r[cp] == prior;
        for (scale, note) in [(Scale::Linear, ""), (Scale::Log, ", log scale")] {
            let positive = |v: Vec<(f64, f64)>| -> Vec<(f64, f64)> {
                v.into_iter()
                    .filter(|p| scale == Scale::Linear || p.1 > 0.0)
                    .collect()
            };
            let series = vec![
                Series::new(
                    "network outputs",
                    Colour::Palette(0),
                    Mark::Points,
                    positive(t.xy(cf, cd, keep)),
                ),
                Series::new(
                    "t_{2α} (NNGP mixture)",
                    Colour::Palette(1),
                    Mark::Line,
                    positive(t.xy(cf, ct, keep)),
                ),
                Series::new(
                    "fitted Gaussian",
                    Colour::Palette(2),
                    Mark::Dashed,
                    positive(t.xy(cf, cg, keep)),
                ),
            ];
            panels.push(Panel::fitted(
                format!("{prior} prior{note}"),
                ("f(x0)", Scale::Linear),
                ("density", scale),
                series,
            ));
        }
    }
    Ok(Some(Figure::new(
        "prior",
        "Outputs of random wide networks: inverse-gamma last-layer variance vs fixed",
        panels,
    )))
}

/// nngp-mixture part (b): per dataset and model, the predictive mean with its central 95 %
/// band over x, and the observations of each split.
pub fn nngp_predictive(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "predictions.csv")? else {
        return Ok(None);
    };
    let c = |n: &str| t.col(n);
    let (cd, cm, cs, cx, cy, cmean, clo, chi) = (
        c("dataset")?,
        c("model")?,
        c("split")?,
        c("x")?,
        c("y")?,
        c("mean")?,
        c("lower")?,
        c("upper")?,
    );
    let mut panels = vec![];
    for ds in t.distinct(cd) {
        for model in t.distinct(cm) {
            let rows: Vec<&Vec<String>> = t
                .rows
                .iter()
                .filter(|r| r[cd] == ds && r[cm] == model)
                .collect();
            let mut pred: Vec<(f64, f64, f64, f64)> = rows
                .iter()
                .filter_map(|r| {
                    Some((
                        Table::num(r, cx)?,
                        Table::num(r, cmean)?,
                        Table::num(r, clo)?,
                        Table::num(r, chi)?,
                    ))
                })
                .collect();
            pred.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut series = vec![Series::new(
                "predictive mean, 95 % band",
                Colour::Palette(0),
                Mark::Line,
                pred.iter().map(|p| (p.0, p.1)).collect(),
            )
            .band(pred.iter().map(|p| (p.0, p.2, p.3)).collect())];
            for (i, split) in t.distinct(cs).iter().enumerate() {
                let pts: Vec<(f64, f64)> = rows
                    .iter()
                    .filter(|r| r[cs] == *split)
                    .filter_map(|r| Some((Table::num(r, cx)?, Table::num(r, cy)?)))
                    .collect();
                series.push(Series::new(
                    format!("{split} points"),
                    Colour::Palette(i + 1),
                    Mark::Points,
                    pts,
                ));
            }
            let mut p = Panel::fitted(
                format!("{ds}, {model}"),
                ("x", Scale::Linear),
                ("y", Scale::Linear),
                series,
            );
            // Cauchy outliers would squash the band: the y axis spans the band and the bulk of
            // the points (their 2nd–98th percentiles).
            let mut ys: Vec<f64> = rows.iter().filter_map(|r| Table::num(r, cy)).collect();
            ys.sort_by(f64::total_cmp);
            if ys.len() >= 10 {
                let q = |f: f64| ys[((ys.len() - 1) as f64 * f).round() as usize];
                let lo = pred.iter().map(|p| p.2).fold(q(0.02), f64::min);
                let hi = pred.iter().map(|p| p.3).fold(q(0.98), f64::max);
                p.y = super::figure::Axis::fit("y", Scale::Linear, [lo, hi]);
            }
            panels.push(p);
        }
    }
    Ok(Some(Figure::new(
        "predictive",
        "GP vs Student-t process (NNGP kernel): predictive bands",
        panels,
    )))
}

/// sgmcmc-potential: per method (pSGLD at each temperature with 1 and several chains, the
/// ensemble), the coverage of the true forces and of the path observable, and the force RMSE,
/// against the training-set size; the nominal level as a grey line.
pub fn sgmcmc_coverage(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "summary.csv")? else {
        return Ok(None);
    };
    if !t.has("obs_coverage") || !t.has("label") {
        return Ok(None);
    }
    let (cl, cn) = (t.col("label")?, t.col("size")?);
    let sizes: Vec<f64> = t.rows.iter().filter_map(|r| Table::num(r, cn)).collect();
    let (lo, hi) = sizes
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |a, v| {
            (a.0.min(*v), a.1.max(*v))
        });
    let mut panels = vec![];
    for (col, title, ylabel, yscale, nominal) in [
        (
            "force_coverage",
            "coverage of the true forces",
            "coverage",
            Scale::Linear,
            true,
        ),
        (
            "obs_coverage",
            "coverage of the path energy profile",
            "coverage",
            Scale::Linear,
            true,
        ),
        (
            "force_rmse",
            "force RMSE (predictive mean)",
            "RMSE (kT/length)",
            Scale::Log,
            false,
        ),
    ] {
        let cy = t.col(col)?;
        let mut series: Vec<Series> = t
            .distinct(cl)
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let mut pts = t.xy(cn, cy, |r| r[cl] == *l);
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                let mark = if l.contains("×1") {
                    Mark::Dashed
                } else {
                    Mark::Line
                };
                Series::new(l.clone(), Colour::Palette(i), mark, pts)
            })
            .collect();
        if nominal && lo.is_finite() {
            series.push(Series::new(
                "nominal 95 %",
                Colour::Grey,
                Mark::Dashed,
                vec![(lo, 0.95), (hi, 0.95)],
            ));
        }
        panels.push(Panel::fitted(
            title,
            ("training configurations", Scale::Log),
            (ylabel, yscale),
            series,
        ));
    }
    Ok(Some(Figure::new(
        "coverage",
        "NN potential on Müller–Brown: pSGLD (1 vs several chains, temperatures) vs deep ensemble",
        panels,
    )))
}

/// bnn-bo: one panel per objective, the log10 simple regret of the best value so far against
/// the number of evaluations, mean over trials, one line per surrogate.
pub fn bo_regret(dir: &Path) -> Result<Option<Figure>> {
    let Some(t) = Table::read_rows(dir, "metrics.csv")? else {
        return Ok(None);
    };
    if !t.has("log10_regret") || !t.has("surrogate") {
        return Ok(None);
    }
    let (co, cs, ce, cr) = (
        t.col("objective")?,
        t.col("surrogate")?,
        t.col("evaluations")?,
        t.col("log10_regret")?,
    );
    let mut panels = vec![];
    for obj in t.distinct(co) {
        let series: Vec<Series> = t
            .distinct(cs)
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut acc: std::collections::BTreeMap<i64, (f64, f64)> = Default::default();
                for (x, y) in t.xy(ce, cr, |r| r[co] == obj && r[cs] == *s) {
                    let e = acc.entry(x as i64).or_insert((0.0, 0.0));
                    e.0 += y;
                    e.1 += 1.0;
                }
                let pts = acc
                    .into_iter()
                    .map(|(x, (sum, n))| (x as f64, sum / n))
                    .collect();
                Series::new(s.clone(), Colour::Palette(i), Mark::Line, pts)
            })
            .collect();
        panels.push(Panel::fitted(
            &obj,
            ("evaluations", Scale::Linear),
            ("log10 simple regret (mean over trials)", Scale::Linear),
            series,
        ));
    }
    Ok(Some(Figure::new(
        "regret",
        "Bayesian optimisation with GP and BNN surrogates: simple regret",
        panels,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prior_and_predictive_figures_from_csvs() {
        let dir = tempfile::tempdir().unwrap();
        assert!(nngp_prior(dir.path()).unwrap().is_none());
        std::fs::write(
            dir.path().join("prior_hist.csv"),
            "prior,f,density,t_density,gaussian_density\nmixture,-1,0.1,0.12,0.1\nmixture,0,0.4,0.38,0.4\nmixture,1,0,0.12,0.1\n",
        )
        .unwrap();
        let f = nngp_prior(dir.path()).unwrap().unwrap();
        assert_eq!(f.panels.len(), 2);
        // The log panel drops the empty bin.
        assert_eq!(f.panels[0].series[0].points.len(), 3);
        assert_eq!(f.panels[1].series[0].points.len(), 2);
        std::fs::write(
            dir.path().join("predictions.csv"),
            "dataset,model,split,x,y,mean,lower,upper\nsyn-t,gp,train,1,0.5,0.4,0,1\nsyn-t,gp,test,0,0.1,0.2,-1,1.5\nsyn-t,tp,train,1,0.5,0.4,0,1\n",
        )
        .unwrap();
        let f = nngp_predictive(dir.path()).unwrap().unwrap();
        assert_eq!(f.panels.len(), 2);
        // Sorted by x, with the band.
        assert_eq!(f.panels[0].series[0].points, vec![(0.0, 0.2), (1.0, 0.4)]);
        assert_eq!(f.panels[0].series[0].band[0], (0.0, -1.0, 1.5));
    }

    #[test]
    fn sgmcmc_coverage_figure_from_summary() {
        let dir = tempfile::tempdir().unwrap();
        assert!(sgmcmc_coverage(dir.path()).unwrap().is_none());
        std::fs::write(
            dir.path().join("summary.csv"),
            "method,label,temperature,chains,size,force_rmse,force_coverage,obs_coverage\npsgld,pSGLD T=1 ×4,1.0,4,100,0.5,0.9,0.8\npsgld,pSGLD T=1 ×4,1.0,4,20,0.9,0.93,0.7\nensemble,ensemble ×4,,4,20,1.0,0.6,0.5\n",
        )
        .unwrap();
        let f = sgmcmc_coverage(dir.path()).unwrap().unwrap();
        assert_eq!(f.panels.len(), 3);
        // Sorted by size; the nominal line on the coverage panels only.
        assert_eq!(
            f.panels[0].series[0].points,
            vec![(20.0, 0.93), (100.0, 0.9)]
        );
        assert_eq!(f.panels[0].series.len(), 3);
        assert_eq!(f.panels[2].series.len(), 2);
    }

    #[test]
    fn bo_regret_figure_averages_trials() {
        let dir = tempfile::tempdir().unwrap();
        assert!(bo_regret(dir.path()).unwrap().is_none());
        std::fs::write(
            dir.path().join("metrics.csv"),
            "objective,surrogate,trial,evaluations,value,best,log10_regret,seconds\nbranin,gp,0,1,3,3,0.4,0\nbranin,gp,1,1,2,2,0.2,0\nbranin,gp,0,2,1,1,-1,0.1\nbranin,gp,1,2,1,1,-2,0.1\nhartmann6,hmc,0,1,0,0,0.1,0\n",
        )
        .unwrap();
        let f = bo_regret(dir.path()).unwrap().unwrap();
        assert_eq!(f.panels.len(), 2);
        let p = &f.panels[0].series[0].points;
        assert_eq!(p.len(), 2);
        assert!((p[0].1 - 0.3).abs() < 1e-12 && (p[1].1 - -1.5).abs() < 1e-12);
    }
}
