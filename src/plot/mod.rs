//! `stochlab plot`: figures from a run's CSVs, as SVG and PNG. Each figure family has its
//! module; each builds a `Figure` (panels, axes, series: plain data the tests check) that
//! `render` draws with one palette, legend and colour-bar layout.
//!
//! | run file | figure |
//! |---|---|
//! | ib.csv | `information_plane`: one panel per estimator, a line per layer, epochs on a colour bar |
//! | grads.csv | `snr`: gradient mean and std per layer against epoch |
//! | metrics.csv | `curves` (losses, accuracies or errors by epoch), `mi_estimates` (mi-synthetic), `distance` (train-longer) |
//! | phase.csv, perceptron.csv, lazy.csv | `phase`, `perceptron`, `lazy` (sgd-noise) |
//! | hessian.csv, grid.csv, edge_summary.csv | `lambda_max`, `best_lr`, `stability_edge` (lr-batch) |
//! | estimators.csv, training.csv | `variance`, `training` (wta-crs); `estimators` (stochastic-neurons) |
//! | transformer_estimators.csv, transformer_training.csv | `transformer-estimators`, `transformer-training` (wta-crs) |
//! | gating.csv | `gating` (stochastic-neurons) |
//! | results.csv, depth.csv | `rules`, `depth` (tpsgd) |
//! | prior_hist.csv, predictions.csv | `prior` (wide-network outputs vs t and Gaussian densities), `predictive` (GP vs t-process bands) (nngp-mixture) |
//! | summary.csv (with obs_coverage) | `coverage`: force and path-observable coverage and force RMSE against training-set size per method (sgmcmc-potential) |
//! | boundary.csv, points.csv, metrics.csv | `dann-boundary`, `dann-accuracy` (dann) |
//! | summary.csv (simplicity-bias) | `sb-auc`: AUC as drawn, S- and S^c-randomised per dataset |
//! | pairs.csv | `bbox-pairs`: originals and adversarial images with the changed pixels marked (blackbox-test) |
//! | summary.csv (with param_reduction), ranks.csv | `trp_accuracy` (decomposed accuracy against compression), `trp_ranks` (rank per layer over training) (trp) |
//! | final.csv | `benign` (benign-oscillation) |
//! | lzc.csv, summary.csv (with acc_lzc) | `snn-lzc` (LZC histograms per class), `snn-accuracy` (accuracy per arm and decoder) (snn) |
//! | sde_density.csv, sde_samples.csv | `samples` (samples per SDE × sampler over the true log-density) (score-sde) |
//! | final.csv (with code) | `neural-sde`: test accuracy against the missing rate per model (neural-sde) |
//! | summary.csv (with gap_energy_db) | `storm`: SI-SDR, LSD and gap energy against reverse steps per arm (storm) |
//! | metrics.csv (with cum_regret), test.csv | `pinn-regret`: cumulative regret per strategy, test-context errors (pinn-interface) |
//! | metrics.csv (env, elite_validation), positions.csv | `fitness` (fitness curves per method), `maze-ends` (final maze positions, GA vs GA-NS) (neuroevolution) |
//! | trajectories.csv (with surrogate_sheep) | `twin_trajectories`: ABM sheep and wolves per control arm (twin-control) |
//! | density.csv, sharpness.csv | `density` (SLQ eigenvalue density), `sharpness` (λ_max and 2/η against step) |
//! | bands.csv, points.csv, metrics.csv | `bands` (predictive bands per kernel), `curves` (training loss and validation LL by step) (mpnp) |
//! | severity.csv, samples.csv, image.csv | `severity` (uncertainties and RMSE against severity), `landmark-samples` (latent-uncertainty) |

pub mod bayes;
pub mod compression;
pub mod curvature;
pub mod curves;
pub mod estimators;
pub mod figure;
pub mod info;
pub mod render;
pub mod rl;
pub mod science;
pub mod sde;
pub mod sgd;
pub mod shift;
pub mod spiking;
pub mod stability;
pub mod table;
pub mod uncertainty;

use crate::cli::PlotArgs;
use anyhow::{anyhow, bail, Result};
use figure::Figure;
use plotters::prelude::FontStyle;
use render::Format;
use std::path::{Path, PathBuf};
use table::Table;

/// What to draw of a run.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Information-plane estimators to draw (all when empty).
    pub estimators: Vec<String>,
    /// Layers by number or name (all when empty).
    pub layers: Vec<String>,
    /// ± std crosses on information-plane points.
    pub spread: bool,
}

/// The values of `available` that `wanted` names (all when it is empty); an unknown name is an
/// error listing what there is.
pub fn select(what: &str, available: &[String], wanted: &[String]) -> Result<Vec<String>> {
    for w in wanted {
        if !available.contains(w) {
            bail!(
                "this run has no {what} `{w}`; it has: {}",
                available.join(", ")
            );
        }
    }
    Ok(available
        .iter()
        .filter(|a| wanted.is_empty() || wanted.contains(a))
        .cloned()
        .collect())
}

/// Every figure a run directory's files give, the paper's headline figure first, learning
/// curves last.
pub fn figures(dir: &Path, o: &Options) -> Result<Vec<Figure>> {
    let mut out = vec![];
    out.extend(info::information_plane(dir, o)?);
    out.extend(info::snr(dir, o)?);
    out.extend(info::mi_estimates(dir)?);
    out.extend(sgd::phase(dir)?);
    out.extend(sgd::perceptron(dir)?);
    out.extend(sgd::lazy(dir)?);
    out.extend(sgd::lambda_max(dir)?);
    out.extend(sgd::best_lr(dir)?);
    out.extend(sgd::stability_edge(dir)?);
    out.extend(estimators::wta_variance(dir)?);
    out.extend(estimators::wta_training(dir)?);
    out.extend(estimators::wta_transformer_estimators(dir)?);
    out.extend(estimators::wta_transformer_training(dir)?);
    out.extend(estimators::neuron_estimators(dir)?);
    out.extend(estimators::gating(dir)?);
    out.extend(estimators::tpsgd(dir)?);
    out.extend(bayes::nngp_prior(dir)?);
    out.extend(bayes::nngp_predictive(dir)?);
    out.extend(bayes::sgmcmc_coverage(dir)?);
    out.extend(bayes::bo_regret(dir)?);
    out.extend(shift::dann_boundary(dir)?);
    out.extend(shift::dann_accuracy(dir)?);
    out.extend(shift::sb_auc(dir)?);
    out.extend(shift::bbox_pairs(dir)?);
    out.extend(compression::trp_accuracy(dir)?);
    out.extend(compression::trp_ranks(dir)?);
    out.extend(stability::benign(dir)?);
    out.extend(spiking::snn_lzc(dir)?);
    out.extend(spiking::snn_accuracy(dir)?);
    out.extend(sde::score_sde_samples(dir)?);
    out.extend(sde::neural_sde_accuracy(dir)?);
    out.extend(sde::storm_quality(dir)?);
    out.extend(rl::effective_horizon(dir)?);
    out.extend(science::pinn_regret(dir)?);
    out.extend(science::graph_reweight(dir)?);
    out.extend(rl::neuro_fitness(dir)?);
    out.extend(rl::maze_ends(dir)?);
    out.extend(rl::twin_trajectories(dir)?);
    out.extend(curvature::density(dir)?);
    out.extend(curvature::sharpness(dir)?);
    out.extend(sgd::distance(dir)?);
    out.extend(uncertainty::mpnp_bands(dir)?);
    out.extend(uncertainty::mpnp_curves(dir)?);
    out.extend(uncertainty::severity(dir)?);
    out.extend(uncertainty::landmark_samples(dir)?);
    out.extend(curves::run_curves(dir)?);
    Ok(out)
}

/// Every figure of a run, as SVG and PNG next to its CSVs (`train --plot`, `reproduce`).
pub fn plot(run_dir: &Path) -> Result<Vec<PathBuf>> {
    crate::run::read_info(run_dir)?;
    let figs = figures(run_dir, &Options::default())?;
    if figs.is_empty() {
        bail!("{} has nothing to plot yet", run_dir.display());
    }
    let stems: Vec<PathBuf> = figs.iter().map(|f| run_dir.join(&f.name)).collect();
    write(&figs, &stems, &[Format::Svg, Format::Png])
}

fn write(figs: &[Figure], stems: &[PathBuf], formats: &[Format]) -> Result<Vec<PathBuf>> {
    load_font()?;
    let mut out = vec![];
    for (fig, stem) in figs.iter().zip(stems) {
        out.extend(render::save(fig, stem, formats)?);
    }
    Ok(out)
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

/// Where each figure goes: `--out` as one file (one figure), as a folder, or the run folder.
fn destinations(
    figs: &[Figure],
    default_dir: &Path,
    out: Option<&Path>,
    format: Option<Format>,
) -> Result<(Vec<PathBuf>, Vec<Format>)> {
    let mut formats = match format {
        Some(f) => vec![f],
        None => vec![Format::Svg, Format::Png],
    };
    let stems = match out {
        Some(o) if !o.is_dir() && o.extension().is_some() => {
            let Some(f) = Format::from_ext(o) else {
                bail!(
                    "--out {}: name a .svg or .png file, or a folder",
                    o.display()
                );
            };
            if format.is_some_and(|g| g != f) {
                bail!(
                    "--out {} and --format {} disagree: drop one",
                    o.display(),
                    format.map_or("", |g| g.ext())
                );
            }
            if figs.len() != 1 {
                let names: Vec<&str> = figs.iter().map(|f| f.name.as_str()).collect();
                bail!(
                    "--out {} names one file but there are {} figures ({}): pick one with --figure, or give --out a folder",
                    o.display(),
                    figs.len(),
                    names.join(", ")
                );
            }
            formats = vec![f];
            vec![o.with_extension("")]
        }
        Some(o) => {
            std::fs::create_dir_all(o)
                .map_err(|e| anyhow!("creating --out {}: {e}", o.display()))?;
            figs.iter().map(|f| o.join(&f.name)).collect()
        }
        None => figs.iter().map(|f| default_dir.join(&f.name)).collect(),
    };
    if formats.contains(&Format::Pdf) {
        bail!("plotters, the plotting library, cannot write PDF: write SVG (--format svg) and convert it, e.g. `rsvg-convert -f pdf -o fig.pdf fig.svg`");
    }
    Ok((stems, formats))
}

pub fn main(a: &PlotArgs) -> Result<i32> {
    let opts = Options {
        estimators: a.estimator.clone(),
        layers: a.layers.clone(),
        spread: a.spread,
    };
    let (mut figs, dir) = if a.compare || a.runs.len() > 1 {
        if !a.compare {
            bail!("several directories given: add --compare to overlay their curves");
        }
        let fig = compare(&a.runs, &a.group_by, &a.metric)?;
        let dir = match a.runs.as_slice() {
            [one] if !one.join(crate::run::RUN_JSON).exists() => one.clone(),
            _ => PathBuf::from("."),
        };
        (vec![fig], dir)
    } else {
        let dir = &a.runs[0];
        if dir.join("sweep.toml").exists() {
            bail!(
                "{} is a sweep directory: overlay its runs with `stochlab plot --compare {}`",
                dir.display(),
                dir.display()
            );
        }
        crate::run::read_info(dir)?;
        let figs = figures(dir, &opts)?;
        if figs.is_empty() {
            bail!("{} has nothing to plot yet", dir.display());
        }
        let plane = figs
            .iter()
            .any(|f| f.name == "information_plane" || f.name == "snr");
        let picks = !opts.estimators.is_empty() || !opts.layers.is_empty();
        if picks && !plane {
            bail!("--estimator and --layers pick parts of an information plane, which {} does not have", dir.display());
        }
        (figs, dir.clone())
    };
    if !a.figure.is_empty() {
        let names: Vec<String> = figs.iter().map(|f| f.name.clone()).collect();
        select("figure", &names, &a.figure)?;
        figs.retain(|f| a.figure.contains(&f.name));
    }
    let (stems, formats) = destinations(&figs, &dir, a.out.as_deref(), a.format)?;
    for p in write(&figs, &stems, &formats)? {
        println!("{}", p.display());
    }
    Ok(0)
}

/// Curves of several runs (or a sweep's) overlaid: one group per run, or per value of the
/// `group_by` keys with mean ± std over the runs that share it (seeds).
pub fn compare(dirs: &[PathBuf], group_by: &[String], metric: &[String]) -> Result<Figure> {
    let records = crate::runs::expand(dirs)?;
    if records.len() < 2 {
        bail!("--compare needs at least two runs (or a sweep directory holding them)");
    }
    for k in group_by {
        if records.iter().all(|r| !r.config.contains_key(k)) {
            bail!("no run has the config key `{k}` to group by");
        }
    }
    let keys: Vec<String> = if group_by.is_empty() {
        crate::runs::differing_keys(&records)
            .into_iter()
            .filter(|k| k != crate::config::SEED_KEY)
            .collect()
    } else {
        group_by.to_vec()
    };
    let wanted = [
        "train_loss",
        "val_loss",
        "test_loss",
        "train_acc",
        "val_acc",
        "test_acc",
        "train_err",
        "val_err",
        "test_err",
    ];
    let mut cols: Vec<String> = vec![];
    let mut tables = vec![];
    for r in &records {
        let t = Table::read_rows(&r.dir, crate::run::METRICS_CSV)?
            .ok_or_else(|| anyhow!("{} has no metrics rows to compare", r.dir.display()))?;
        let ce = t.col("epoch").map_err(|_| {
            anyhow!(
                "{} has no per-epoch curves (no epoch column)",
                r.dir.display()
            )
        })?;
        if ce > 0 && t.header[..ce].iter().any(|h| h != "seed") {
            bail!(
                "{}'s metrics.csv holds several curves ({}): compare runs with one each, e.g. its runs/ children",
                r.dir.display(),
                t.header[..ce].join(", ")
            );
        }
        for w in wanted {
            if t.has(w) && !cols.iter().any(|c| c == w) {
                cols.push(w.to_string());
            }
        }
        let label = if keys.is_empty() {
            r.info.name.clone().unwrap_or_else(|| r.id())
        } else {
            keys.iter()
                .map(|k| format!("{k}={}", r.config.get(k).map_or("—", String::as_str)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        tables.push((label, r.info.seed, t));
    }
    for m in metric {
        if !cols.contains(m) {
            bail!(
                "the runs have no curve `{m}`; they have: {}",
                cols.join(", ")
            );
        }
    }
    let mut header = vec!["run".to_string(), "seed".into(), "epoch".into()];
    header.extend(cols.iter().cloned());
    let mut rows = vec![];
    for (label, seed, t) in &tables {
        let ce = t.col("epoch")?;
        let idx: Vec<Option<usize>> = cols.iter().map(|c| t.col(c).ok()).collect();
        for r in &t.rows {
            let mut row = vec![label.clone(), seed.to_string(), r[ce].clone()];
            row.extend(
                idx.iter()
                    .map(|i| i.map(|i| r[i].clone()).unwrap_or_default()),
            );
            rows.push(row);
        }
    }
    let table = Table {
        name: "compare".into(),
        header,
        rows,
    };
    let title = format!("{} runs compared", records.len());
    curves::curves(&table, "compare", &title, metric)
        .ok_or_else(|| anyhow!("the runs have no loss, accuracy or error curves to compare"))
}

#[cfg(test)]
mod tests;
