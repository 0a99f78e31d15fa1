//! `stochlab mi <file.csv> --x COLS --y COLS`: the estimators on a user's own table.

use super::compress::{AeConfig, Compressor, Fitted};
use super::mi::{self, MiEstimator, MiParams, Var};
use crate::cli::{GlobalOpts, MiArgs, YType};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

/// A discrete label column has at most this many distinct values (in `--y-type auto`).
const MAX_AUTO_CLASSES: usize = 50;

pub fn main(g: &GlobalOpts, args: &MiArgs) -> Result<i32> {
    if args.bootstrap > 0 && !(0.5..1.0).contains(&args.confidence) {
        bail!("--confidence must be in [0.5, 1), e.g. 0.95");
    }
    let device = crate::device::parse(&g.device)?;
    let seed = g.seed.unwrap_or(0) as i64;
    let table = Table::read(&args.file)?;
    let xcols = table.select(&args.x, "--x")?;
    let ycols = table.select(&args.y, "--y")?;
    if let Some(c) = xcols.iter().find(|c| ycols.contains(c)) {
        bail!("column `{}` is in both --x and --y", table.header[*c]);
    }
    let x = table.numbers(&xcols)?;
    let y = Side::read(&table, &ycols, args.y_type)?;
    let params = MiParams {
        k: args.k,
        weighted: args.weighted,
        bins: args.bins,
        bandwidth: args.bandwidth,
        preprocess: args.preprocess,
        ..Default::default()
    };
    crate::config::Check::check(&params)?;
    let n = x.size()[0];
    tch::manual_seed(seed);
    let perm = Tensor::randperm(n, (Kind::Int64, Device::Cpu));
    let n_fit = (args.fit_fraction.clamp(0.0, 0.9) * n as f64) as i64;
    let (fit_rows, rows) = if n_fit > 0 {
        (perm.narrow(0, 0, n_fit), perm.narrow(0, n_fit, n - n_fit))
    } else {
        (perm.shallow_clone(), perm.shallow_clone())
    };
    let x = compress(args.compress, &x.to_device(device), &fit_rows, &rows, seed)?;
    let y = match &y {
        Side::Continuous(t) => Side::Continuous(compress(
            args.compress,
            &t.to_device(device),
            &fit_rows,
            &rows,
            seed + 1,
        )?),
        Side::Discrete(l, names) => Side::Discrete(l.index_select(0, &rows), names.clone()),
    };
    if args.estimator == MiEstimator::Binning {
        let dims = |t: &Tensor| t.size().get(1).copied().unwrap_or(1);
        let d = match &y {
            Side::Continuous(t) => dims(&x).max(dims(t)),
            Side::Discrete(..) => dims(&x),
        };
        if d > 3 {
            eprintln!("warning: binning in {d} dimensions leaves most bins with one point and overestimates MI badly; use --estimator ksg, or --compress pca:3");
        }
    }
    let estimate = |idx: Option<&Tensor>| -> Result<f64> {
        let pick = |t: &Tensor| match idx {
            Some(i) => t.index_select(0, &i.to_device(t.device())),
            None => t.shallow_clone(),
        };
        let xs = pick(&x);
        let nats = match &y {
            Side::Continuous(t) => {
                mi::mutual_information(args.estimator, &params, &xs, Var::Continuous(&pick(t)))?
            }
            Side::Discrete(l, _) => {
                mi::mutual_information(args.estimator, &params, &xs, Var::Discrete(&pick(l)))?
            }
        };
        Ok(args.units.from_nats(nats))
    };
    let value = estimate(None)?;
    let ci = if args.bootstrap > 0 {
        Some(subsample_interval(
            &estimate,
            value,
            x.size()[0],
            args.bootstrap,
            args.confidence,
        )?)
    } else {
        None
    };
    report(args, &table, (&xcols, &ycols), &y, x.size()[0], value, ci);
    Ok(0)
}

/// Fits `how` on `fit_rows` and returns the compressed `rows`; sides narrower than the target
/// are left as they are.
fn compress(
    how: Compressor,
    t: &Tensor,
    fit_rows: &Tensor,
    rows: &Tensor,
    seed: i64,
) -> Result<Tensor> {
    let width = t.size()[1];
    let target = match how {
        Compressor::None => return Ok(t.index_select(0, &rows.to_device(t.device()))),
        Compressor::Pca(d) | Compressor::Ae(d) => d,
    };
    if width <= target {
        return Ok(t.index_select(0, &rows.to_device(t.device())));
    }
    let fitted = Fitted::fit(
        how,
        &t.index_select(0, &fit_rows.to_device(t.device())),
        &AeConfig::default(),
        seed,
    )?;
    Ok(fitted.apply(&t.index_select(0, &rows.to_device(t.device()))))
}

/// Subsampling interval: `b` estimates on random halves drawn without replacement, their
/// spread around their mean placed around the full estimate `full`. Half-samples need no rescaling:
/// an estimate on m of n rows varies as σ²/m · (1 − m/n), which is σ²/n at m = n/2.
fn subsample_interval(
    estimate: &dyn Fn(Option<&Tensor>) -> Result<f64>,
    full: f64,
    n: i64,
    b: usize,
    confidence: f64,
) -> Result<(f64, f64, f64)> {
    let m = n / 2;
    let mut reps = Vec::with_capacity(b);
    for _ in 0..b {
        let idx = Tensor::randperm(n, (Kind::Int64, Device::Cpu)).narrow(0, 0, m);
        reps.push(estimate(Some(&idx))?);
    }
    let mean = reps.iter().sum::<f64>() / b as f64;
    let mut dev: Vec<f64> = reps.iter().map(|r| r - mean).collect();
    dev.sort_by(f64::total_cmp);
    let q = |p: f64| dev[((p * (b - 1) as f64).round() as usize).min(b - 1)];
    let alpha = 1.0 - confidence;
    Ok((
        full - q(1.0 - alpha / 2.0),
        full - q(alpha / 2.0),
        confidence,
    ))
}

fn report(
    args: &MiArgs,
    table: &Table,
    (xc, yc): (&[usize], &[usize]),
    y: &Side,
    n: i64,
    value: f64,
    ci: Option<(f64, f64, f64)>,
) {
    let names = |c: &[usize]| {
        c.iter()
            .map(|&i| table.header[i].clone())
            .collect::<Vec<_>>()
    };
    let ydesc = match y {
        Side::Continuous(_) => format!("{} continuous column(s)", yc.len()),
        Side::Discrete(_, classes) => format!(
            "discrete label `{}` with {} classes",
            table.header[yc[0]],
            classes.len()
        ),
    };
    let units = args.units.as_str();
    // k means something only to the k-nearest-neighbour estimators.
    let knn = matches!(args.estimator, MiEstimator::Ksg | MiEstimator::Kl);
    if args.json {
        let mut o = serde_json::json!({
            "mi": value, "units": units, "estimator": args.estimator.as_str(),
            "n": n, "x": names(xc), "y": names(yc), "y_type": if matches!(y, Side::Discrete(..)) { "discrete" } else { "continuous" },
            "compress": args.compress.to_string(),
        });
        if knn {
            o["k"] = args.k.into();
        }
        if let Some((lo, hi, c)) = ci {
            o["ci_low"] = lo.into();
            o["ci_high"] = hi.into();
            o["confidence"] = c.into();
            o["subsamples"] = args.bootstrap.into();
        }
        println!("{o}");
        return;
    }
    let k = if knn {
        format!(", k={}", args.k)
    } else {
        String::new()
    };
    let mut line = format!(
        "I(X;Y) = {value:.4} {units}  ({}{k}, n={n}; X: {} column(s), Y: {ydesc}",
        args.estimator.as_str(),
        xc.len()
    );
    if args.compress != Compressor::None {
        line.push_str(&format!(", compressed {}", args.compress));
    }
    line.push(')');
    if let Some((lo, hi, c)) = ci {
        line.push_str(&format!(
            "\n{:.0}% interval [{lo:.4}, {hi:.4}] {units} from {} half-size subsamples",
            c * 100.0,
            args.bootstrap
        ));
    }
    println!("{line}");
    if args.estimator == MiEstimator::Ksg && matches!(y, Side::Discrete(..)) {
        eprintln!("note: with a discrete label, ksg is Ross's (2014) mixed estimator");
    }
}

/// Y as read: continuous rows, or labels with their original names.
enum Side {
    Continuous(Tensor),
    Discrete(Tensor, Vec<String>),
}

impl Side {
    fn read(table: &Table, cols: &[usize], how: YType) -> Result<Side> {
        let single = cols.len() == 1;
        match how {
            YType::Continuous => Ok(Side::Continuous(table.numbers(cols)?)),
            YType::Discrete if !single => bail!("--y-type discrete needs exactly one --y column"),
            YType::Discrete => Ok(table.labels(cols[0])),
            YType::Auto => {
                if single {
                    let values = table.column(cols[0]);
                    let integer = values.iter().all(|v| v.parse::<i64>().is_ok());
                    let numeric = values.iter().all(|v| v.parse::<f64>().is_ok());
                    let distinct: std::collections::BTreeSet<&str> =
                        values.iter().map(|v| v.as_str()).collect();
                    if (!numeric || integer) && distinct.len() <= MAX_AUTO_CLASSES {
                        eprintln!(
                            "y: `{}` read as a discrete label ({} classes); --y-type continuous reads it as numbers",
                            table.header[cols[0]],
                            distinct.len()
                        );
                        return Ok(table.labels(cols[0]));
                    }
                }
                Ok(Side::Continuous(table.numbers(cols)?))
            }
        }
    }
}

/// A CSV as text cells.
struct Table {
    path: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn read(path: &std::path::Path) -> Result<Table> {
        let shown = path.display().to_string();
        let mut r = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_path(path)
            .with_context(|| format!("cannot read {shown}: check the path"))?;
        let header: Vec<String> = r
            .headers()
            .with_context(|| format!("{shown}: no header row"))?
            .iter()
            .map(str::to_string)
            .collect();
        let mut rows = vec![];
        for (i, rec) in r.records().enumerate() {
            let rec = rec.with_context(|| format!("{shown}, line {}: malformed CSV", i + 2))?;
            rows.push(rec.iter().map(str::to_string).collect());
        }
        if rows.is_empty() {
            bail!("{shown} has a header but no rows");
        }
        if header.iter().all(|h| h.parse::<f64>().is_ok()) {
            bail!("{shown}: the first row is numbers, not a header; add a header row of column names (stochlab mi would otherwise lose that row)");
        }
        Ok(Table {
            path: shown,
            header,
            rows,
        })
    }

    fn column(&self, c: usize) -> Vec<String> {
        self.rows.iter().map(|r| r[c].clone()).collect()
    }

    /// Column indices for a spec like `a,b,3,5-9,h*`.
    fn select(&self, spec: &str, flag: &str) -> Result<Vec<usize>> {
        let mut out = vec![];
        for tok in spec.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if let Some(i) = self.header.iter().position(|h| h == tok) {
                out.push(i);
            } else if let Some(prefix) = tok.strip_suffix('*') {
                let hits: Vec<usize> = (0..self.header.len())
                    .filter(|&i| self.header[i].starts_with(prefix))
                    .collect();
                if hits.is_empty() {
                    bail!(
                        "{flag} {tok}: no column of {} starts with `{prefix}`",
                        self.path
                    );
                }
                out.extend(hits);
            } else if let Ok(i) = tok.parse::<usize>() {
                out.push(self.index(i, flag)?);
            } else if let Some((a, b)) = tok
                .split_once('-')
                .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
            {
                for i in a..=b {
                    out.push(self.index(i, flag)?);
                }
            } else {
                let hint = crate::config::closest(tok, self.header.iter().map(String::as_str))
                    .map(|c| format!(": did you mean `{c}`?"))
                    .unwrap_or_else(|| format!("; columns are {}", self.header.join(", ")));
                bail!("{flag}: {} has no column `{tok}`{hint}", self.path);
            }
        }
        if out.is_empty() {
            bail!("{flag} selects no columns");
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|c| seen.insert(*c));
        Ok(out)
    }

    fn index(&self, i: usize, flag: &str) -> Result<usize> {
        if i >= self.header.len() {
            bail!(
                "{flag}: column index {i} is out of range ({} has {} columns, numbered from 0)",
                self.path,
                self.header.len()
            );
        }
        Ok(i)
    }

    /// The columns as an [N, d] double tensor.
    fn numbers(&self, cols: &[usize]) -> Result<Tensor> {
        let mut v = Vec::with_capacity(self.rows.len() * cols.len());
        for (r, row) in self.rows.iter().enumerate() {
            for &c in cols {
                let cell = row.get(c).map(String::as_str).unwrap_or("");
                let x: f64 = cell.parse().map_err(|_| {
                    anyhow::anyhow!(
                        "{}, line {}, column `{}`: `{cell}` is not a number",
                        self.path,
                        r + 2,
                        self.header[c]
                    )
                })?;
                if !x.is_finite() {
                    bail!(
                        "{}, line {}, column `{}`: {cell} is not finite; drop or fix that row",
                        self.path,
                        r + 2,
                        self.header[c]
                    );
                }
                v.push(x);
            }
        }
        Ok(Tensor::from_slice(&v).view([self.rows.len() as i64, cols.len() as i64]))
    }

    /// A column as class indices 0..C (in sorted order of its values).
    fn labels(&self, c: usize) -> Side {
        let mut ids: BTreeMap<String, i64> = BTreeMap::new();
        for r in &self.rows {
            ids.entry(r[c].clone()).or_insert(0);
        }
        for (i, v) in ids.values_mut().enumerate() {
            *v = i as i64;
        }
        let labels: Vec<i64> = self.rows.iter().map(|r| ids[&r[c]]).collect();
        Side::Discrete(Tensor::from_slice(&labels), ids.into_keys().collect())
    }
}
