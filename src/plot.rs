//! `stochlab plot <run-dir>`: figures from a run's CSVs, as SVG and PNG. Information-plane
//! runs get `information_plane` (I(T;Y) against I(X;T), one line per layer, points coloured by
//! epoch, mean over seeds) and `snr` (gradient mean and std per layer against epoch, log axes);
//! every run with per-epoch metrics gets `curves` (losses and accuracies against epoch);
//! `stochlab curvature` output gets `density` (the SLQ eigenvalue density, log scale, one line
//! per checkpoint/matrix/batch) and the `train.sharpness` hook `sharpness` (λ_max against step,
//! with 2/η when it is in range).

use anyhow::{anyhow, bail, Context, Result};
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Columns of a CSV by name, as strings.
struct Csv {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Csv {
    fn read(path: &Path) -> Result<Self> {
        let mut r =
            csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
        let header = r.headers()?.iter().map(str::to_string).collect();
        let rows = r
            .records()
            .map(|x| x.map(|x| x.iter().map(str::to_string).collect()))
            .collect::<Result<_, _>>()?;
        Ok(Csv { header, rows })
    }
    fn col(&self, name: &str) -> Result<usize> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| anyhow!("no column `{name}`"))
    }
    /// A quantity whose column carries its unit, `<name>_<unit><suffix>` (e.g. `I_XT_bits`,
    /// `I_XT_bits_mean`, `true_mi_nats`): the column and the unit.
    fn with_unit(&self, name: &str, suffix: &str) -> Result<(usize, String)> {
        ["bits", "nats"]
            .iter()
            .find_map(|u| {
                self.col(&format!("{name}_{u}{suffix}"))
                    .ok()
                    .map(|c| (c, u.to_string()))
            })
            .ok_or_else(|| anyhow!("no column `{name}_<bits|nats>{suffix}`"))
    }
}

/// Registers a TrueType font for text (plotters draws text itself for PNGs).
fn load_font() -> Result<()> {
    let candidates = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/Library/Fonts/Arial.ttf",
        "/System/Library/Fonts/Supplemental/Arial.ttf",
    ];
    let path = std::env::var("STOCHLAB_FONT")
        .ok()
        .map(PathBuf::from)
        .into_iter()
        .chain(candidates.iter().map(PathBuf::from))
        .find(|p| p.exists());
    let Some(path) = path else {
        bail!("stochlab plot needs a TrueType font: install one (e.g. apt-get install fonts-dejavu-core) or set STOCHLAB_FONT=/path/to/font.ttf");
    };
    let bytes: &'static [u8] = Box::leak(std::fs::read(&path)?.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{} is not a usable TrueType font", path.display()))?;
    Ok(())
}

/// Draws `f` into `<dir>/<name>.svg` and `<dir>/<name>.png`.
fn both(
    dir: &Path,
    name: &str,
    size: (u32, u32),
    f: impl Fn(DrawingArea<SVGBackend, plotters::coord::Shift>) -> Result<()> + Copy,
    g: impl Fn(DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<()>,
) -> Result<Vec<PathBuf>> {
    let svg = dir.join(format!("{name}.svg"));
    let png = dir.join(format!("{name}.png"));
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        f(root)?;
    }
    {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        g(root)?;
    }
    Ok(vec![svg, png])
}

pub fn plot(run_dir: &Path) -> Result<Vec<PathBuf>> {
    crate::run::read_info(run_dir)?;
    load_font()?;
    let mut made = vec![];
    // Draws `$draw(area, $csv)` into <run>/<$name>.{svg,png}.
    macro_rules! figure {
        ($name:expr, $size:expr, $draw:ident, $csv:expr) => {
            made.extend(both(
                run_dir,
                $name,
                $size,
                |a| $draw(a, $csv),
                |a| $draw(a, $csv),
            )?)
        };
    }
    // A CSV of the run with at least one row, if there is one.
    let rows_of = |name: &str| -> Result<Option<Csv>> {
        let path = run_dir.join(name);
        if !path.exists() {
            return Ok(None);
        }
        let csv = Csv::read(&path)?;
        Ok((!csv.rows.is_empty()).then_some(csv))
    };
    // Mean over seeds (ib_summary.csv), or a single-seed ib.csv.
    let plane = match rows_of("ib_summary.csv")? {
        Some(summary) => Some(summary),
        None => {
            rows_of("ib.csv")?.filter(|c| c.with_unit("I_XT", "").is_ok() && c.col("seed").is_err())
        }
    };
    if let Some(plane) = &plane {
        figure!("information_plane", (900, 700), information_plane, plane);
    }
    if let Some(grads) = &rows_of("grads.csv")? {
        figure!("snr", (900, 700), snr, grads);
    }
    if let Some(metrics) = &rows_of(crate::run::METRICS_CSV)? {
        if metrics.with_unit("true_mi", "").is_ok() && metrics.with_unit("estimate", "").is_ok() {
            figure!("mi_estimates", (1000, 750), mi_estimates, metrics);
        }
        if metrics.col("epoch").is_ok() && metrics.col("test_loss").is_ok() {
            figure!("curves", (1000, 450), curves, metrics);
        }
    }
    if let Some(phase) = &rows_of("phase.csv")? {
        figure!("phase", (800, 650), heatmap, phase);
    }
    if let Some(density) = &rows_of(crate::train::curvature::DENSITY_CSV)? {
        figure!("density", (900, 650), spectral_density, density);
    }
    if let Some(sharp) = &rows_of(crate::train::curvature::SHARPNESS_CSV)? {
        figure!("sharpness", (900, 600), sharpness, sharp);
    }
    if made.is_empty() {
        bail!("{} has nothing to plot yet", run_dir.display());
    }
    Ok(made)
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

/// A colour for position `t` in [0, 1] (viridis).
fn epoch_colour(t: f64) -> RGBColor {
    use plotters::style::colors::colormaps::{ColorMap, ViridisRGB};
    ViridisRGB.get_color(t.clamp(0.0, 1.0) as f32)
}

fn information_plane<DB: DrawingBackend>(
    area: DrawingArea<DB, plotters::coord::Shift>,
    csv: &Csv,
) -> Result<()> {
    let (ce, cl, cest) = (csv.col("epoch")?, csv.col("layer")?, csv.col("estimator")?);
    // ib_summary.csv (mean over seeds) or a single-seed ib.csv.
    let summary = csv.with_unit("I_XT", "_mean").is_ok();
    let suffix = if summary { "_mean" } else { "" };
    let ((cx, units), (cy, _)) = (
        csv.with_unit("I_XT", suffix)?,
        csv.with_unit("I_TY", suffix)?,
    );
    let estimator = csv
        .rows
        .first()
        .map(|r| r[cest].clone())
        .unwrap_or_default();
    let mut layers: BTreeMap<i64, Vec<(f64, f64, f64)>> = BTreeMap::new();
    let mut max_epoch: f64 = 1.0;
    for r in csv.rows.iter().filter(|r| r[cest] == estimator) {
        let e: f64 = r[ce].parse()?;
        max_epoch = max_epoch.max(e);
        layers
            .entry(r[cl].parse()?)
            .or_default()
            .push((e, r[cx].parse()?, r[cy].parse()?));
    }
    let xmax = layers.values().flatten().map(|p| p.1).fold(0.0, f64::max) * 1.05 + 1e-9;
    let ymax = layers.values().flatten().map(|p| p.2).fold(0.0, f64::max) * 1.05 + 1e-9;
    area.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&area)
        .caption(
            if summary {
                format!("Information plane ({estimator}, mean over seeds)")
            } else {
                format!("Information plane ({estimator})")
            },
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..xmax, 0.0..ymax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(format!("I(X;T) [{units}]"))
        .y_desc(format!("I(T;Y) [{units}]"))
        .draw()
        .map_err(err)?;
    let colour_of = |e: f64| epoch_colour((e + 1.0).ln() / (max_epoch + 1.0).ln());
    for (layer, pts) in &layers {
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.1, p.2)),
                BLACK.mix(0.25),
            ))
            .map_err(err)?;
        chart
            .draw_series(
                pts.iter()
                    .map(|p| Circle::new((p.1, p.2), 4, colour_of(p.0).filled())),
            )
            .map_err(err)?;
        if let Some(last) = pts.last() {
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("L{layer}"),
                    (last.1, last.2),
                    ("sans-serif", 14),
                )))
                .map_err(err)?;
        }
    }
    // Epoch colour key.
    for (i, e) in [0.0, (max_epoch + 1.0).sqrt() - 1.0, max_epoch]
        .iter()
        .enumerate()
    {
        let label = format!("epoch {}", *e as i64);
        let y = ymax * (0.12 + 0.06 * i as f64);
        chart
            .draw_series(std::iter::once(Circle::new(
                (xmax * 0.75, y),
                5,
                colour_of(*e).filled(),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                label,
                (xmax * 0.77, y),
                ("sans-serif", 14),
            )))
            .map_err(err)?;
    }
    area.present().map_err(err)?;
    Ok(())
}

/// Estimated against true mutual information, one line per (case, estimator, dimension), with
/// the diagonal where a perfect estimator would lie.
fn mi_estimates<DB: DrawingBackend>(
    area: DrawingArea<DB, plotters::coord::Shift>,
    csv: &Csv,
) -> Result<()> {
    let ((ct, units), (ce, _)) = (
        csv.with_unit("true_mi", "")?,
        csv.with_unit("estimate", "")?,
    );
    let keys: Vec<usize> = ["case", "estimator", "compressor", "dim", "latent_dim"]
        .iter()
        .filter_map(|c| csv.col(c).ok())
        .collect();
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in &csv.rows {
        let name: Vec<&str> = keys.iter().map(|&k| r[k].as_str()).collect();
        series
            .entry(name.join(" "))
            .or_default()
            .push((r[ct].parse()?, r[ce].parse()?));
    }
    let pts = || series.values().flatten();
    let hi = pts().map(|p| p.0.max(p.1)).fold(0.0, f64::max) * 1.05 + 1e-9;
    let lo = pts().map(|p| p.1).fold(0.0, f64::min).min(0.0);
    area.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&area)
        .caption("Estimated vs true mutual information", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..hi, lo..hi)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(format!("true I(X;Y) [{units}]"))
        .y_desc(format!("estimate [{units}]"))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new([(0.0, 0.0), (hi, hi)], BLACK.mix(0.4)))
        .map_err(err)?;
    for (i, (name, p)) in series.iter().enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(p.iter().copied(), colour.stroke_width(2)))
            .map_err(err)?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    area.present().map_err(err)?;
    Ok(())
}

/// Test error over the (α, T) grid of phase.csv, one cell per point, log axes, with values.
fn heatmap<DB: DrawingBackend>(
    area: DrawingArea<DB, plotters::coord::Shift>,
    csv: &Csv,
) -> Result<()> {
    let (ca, ct, ce) = (csv.col("alpha")?, csv.col("T")?, csv.col("test_err")?);
    let mut pts = vec![];
    for r in &csv.rows {
        pts.push((
            r[ca].parse::<f64>()?.log10(),
            r[ct].parse::<f64>()?.log10(),
            r[ce].parse::<f64>()?,
        ));
    }
    let axis = |k: fn(&(f64, f64, f64)) -> f64| {
        let mut v: Vec<f64> = pts.iter().map(k).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    };
    let (xs, ys) = (axis(|p| p.0), axis(|p| p.1));
    let step = |v: &[f64]| {
        if v.len() > 1 {
            (v[v.len() - 1] - v[0]) / (v.len() - 1) as f64
        } else {
            1.0
        }
    };
    let (dx, dy) = (step(&xs), step(&ys));
    let emax = pts.iter().map(|p| p.2).fold(1e-9, f64::max);
    area.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&area)
        .caption("Test error over (alpha, T)", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(
            xs[0] - dx / 2.0..xs[xs.len() - 1] + dx / 2.0,
            ys[0] - dy / 2.0..ys[ys.len() - 1] + dy / 2.0,
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("log10 alpha")
        .y_desc("log10 T")
        .draw()
        .map_err(err)?;
    for &(x, y, e) in &pts {
        let c = epoch_colour(1.0 - e / emax);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x - dx / 2.0, y - dy / 2.0), (x + dx / 2.0, y + dy / 2.0)],
                c.filled(),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{:.1}%", 100.0 * e),
                (x - dx / 4.0, y),
                ("sans-serif", 14),
            )))
            .map_err(err)?;
    }
    area.present().map_err(err)?;
    Ok(())
}

fn snr<DB: DrawingBackend>(area: DrawingArea<DB, plotters::coord::Shift>, csv: &Csv) -> Result<()> {
    let (ce, cl, cm, cs) = (
        csv.col("epoch")?,
        csv.col("layer")?,
        csv.col("grad_mean")?,
        csv.col("grad_std")?,
    );
    // Mean over seeds per (layer, epoch).
    let mut acc: BTreeMap<(i64, i64), (f64, f64, f64)> = BTreeMap::new();
    for r in &csv.rows {
        let e = acc.entry((r[cl].parse()?, r[ce].parse()?)).or_default();
        e.0 += r[cm].parse::<f64>()?;
        e.1 += r[cs].parse::<f64>()?;
        e.2 += 1.0;
    }
    let pos = |v: f64| v.max(1e-12);
    let all: Vec<f64> = acc
        .values()
        .flat_map(|v| [pos(v.0 / v.2), pos(v.1 / v.2)])
        .collect();
    let (lo, hi) = (
        all.iter().copied().fold(f64::INFINITY, f64::min),
        all.iter().copied().fold(0.0, f64::max),
    );
    let emax = acc.keys().map(|k| k.1).max().unwrap_or(1).max(1) as f64;
    area.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&area)
        .caption(
            "Gradient mean (solid) and std (dots) per layer",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(
            (1.0..emax * 1.1).log_scale(),
            (lo * 0.8..hi * 1.25).log_scale(),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("norm")
        .draw()
        .map_err(err)?;
    let layers: Vec<i64> = acc
        .keys()
        .map(|k| k.0)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for (i, layer) in layers.iter().enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64, f64)> = acc
            .iter()
            .filter(|(k, _)| k.0 == *layer)
            .map(|(k, v)| (k.1.max(1) as f64, pos(v.0 / v.2), pos(v.1 / v.2)))
            .collect();
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.0, p.1)),
                colour.stroke_width(2),
            ))
            .map_err(err)?
            .label(format!("layer {layer}"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(
                pts.iter()
                    .map(|p| Circle::new((p.0, p.2), 2, colour.filled())),
            )
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    area.present().map_err(err)?;
    Ok(())
}

fn curves<DB: DrawingBackend>(
    area: DrawingArea<DB, plotters::coord::Shift>,
    csv: &Csv,
) -> Result<()> {
    let ce = csv.col("epoch")?;
    // Group rows by the leading text/seed columns (e.g. optimizer, seed) when present.
    let group_cols: Vec<usize> = csv
        .header
        .iter()
        .take_while(|h| *h != "epoch")
        .enumerate()
        .map(|(i, _)| i)
        .collect();
    area.fill(&WHITE).map_err(err)?;
    let panels = area.split_evenly((1, 2));
    for (panel, (metric, title)) in panels.iter().zip([("loss", "loss"), ("acc", "accuracy")]) {
        let cols: Vec<(usize, &str)> = ["train", "test"]
            .iter()
            .filter_map(|s| csv.col(&format!("{s}_{metric}")).ok().map(|c| (c, *s)))
            .collect();
        let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for r in &csv.rows {
            let group: Vec<&str> = group_cols.iter().map(|&i| r[i].as_str()).collect();
            for &(c, split) in &cols {
                let key = if group.is_empty() {
                    split.to_string()
                } else {
                    format!("{} {split}", group.join("/"))
                };
                if let (Ok(e), Ok(v)) = (r[ce].parse::<f64>(), r[c].parse::<f64>()) {
                    series.entry(key).or_default().push((e, v));
                }
            }
        }
        let xmax = series.values().flatten().map(|p| p.0).fold(1.0, f64::max);
        let ymax = series
            .values()
            .flatten()
            .map(|p| p.1)
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max)
            * 1.05
            + 1e-9;
        let mut chart = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..xmax, 0.0..ymax)
            .map_err(err)?;
        chart.configure_mesh().x_desc("epoch").draw().map_err(err)?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), colour.stroke_width(2)))
                .map_err(err)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
        }
        if series.len() <= 16 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(err)?;
        }
    }
    area.present().map_err(err)?;
    Ok(())
}

/// The SLQ eigenvalue density (density.csv), log y, one line per (epoch, matrix, batch, seed).
fn spectral_density<DB: DrawingBackend>(
    area: DrawingArea<DB, plotters::coord::Shift>,
    csv: &Csv,
) -> Result<()> {
    let (cl, cd) = (csv.col("lambda")?, csv.col("density")?);
    let key_cols = ["checkpoint_epoch", "matrix", "batch", "seed"]
        .iter()
        .map(|c| csv.col(c))
        .collect::<Result<Vec<_>>>()?;
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in &csv.rows {
        let key = format!(
            "epoch {}, {}, {} rows, seed {}",
            r[key_cols[0]], r[key_cols[1]], r[key_cols[2]], r[key_cols[3]]
        );
        series
            .entry(key)
            .or_default()
            .push((r[cl].parse()?, r[cd].parse()?));
    }
    let pts = series.values().flatten();
    let (xlo, xhi) = pts
        .clone()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| {
            (l.min(p.0), h.max(p.0))
        });
    let ymax = pts.map(|p| p.1).fold(0.0, f64::max).max(1e-300);
    let ymin = ymax * 1e-8;
    area.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&area)
        .caption("Eigenvalue density (SLQ)", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(xlo..xhi.max(xlo + 1e-12), (ymin..ymax * 2.0).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("eigenvalue λ")
        .y_desc("density")
        .draw()
        .map_err(err)?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|&(x, y)| (x, y.max(ymin))),
                colour.stroke_width(2),
            ))
            .map_err(err)?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    area.present().map_err(err)?;
    Ok(())
}

/// λ_max against step (sharpness.csv), and 2/η (from its `lr` column) where it is in range.
fn sharpness<DB: DrawingBackend>(
    area: DrawingArea<DB, plotters::coord::Shift>,
    csv: &Csv,
) -> Result<()> {
    let (cs, cl, clr) = (csv.col("step")?, csv.col("lambda_max")?, csv.col("lr")?);
    let mut pts = vec![];
    let mut edge = vec![];
    for r in &csv.rows {
        let step: f64 = r[cs].parse()?;
        pts.push((step, r[cl].parse::<f64>()?));
        let lr: f64 = r[clr].parse()?;
        if lr > 0.0 {
            edge.push((step, 2.0 / lr));
        }
    }
    let top = pts.iter().map(|p| p.1).fold(0.0, f64::max);
    let show_edge = edge.iter().all(|p| p.1 <= 3.0 * top) && !edge.is_empty();
    let ymax = if show_edge {
        edge.iter().map(|p| p.1).fold(top, f64::max)
    } else {
        top
    } * 1.1
        + 1e-12;
    let ymin = pts.iter().map(|p| p.1).fold(0.0, f64::min);
    let xmax = pts.iter().map(|p| p.0).fold(1.0, f64::max);
    area.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&area)
        .caption(
            "Sharpness: top Hessian eigenvalue during training",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(0.0..xmax, ymin..ymax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("λ_max")
        .draw()
        .map_err(err)?;
    let colour = Palette99::pick(0).to_rgba();
    chart
        .draw_series(LineSeries::new(pts.iter().copied(), colour.stroke_width(2)))
        .map_err(err)?
        .label("λ_max")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2)));
    if show_edge {
        chart
            .draw_series(LineSeries::new(edge.iter().copied(), BLACK.stroke_width(1)))
            .map_err(err)?
            .label("2/η")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.stroke_width(1)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    area.present().map_err(err)?;
    Ok(())
}
