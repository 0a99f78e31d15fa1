//! Curvature of a trained classifier: `stochlab curvature RUN` (top-k eigenpairs, trace and
//! spectral density of the Hessian or Gauss–Newton matrix of the training loss, for one
//! mini-batch or the full training set; `curvature.csv`, `density.csv`), and the
//! `train.sharpness` hook of the training loop (λ_max every N steps; `sharpness.csv` and a
//! `sharpness` column in metrics.csv). The operators are in `hessian.rs`, the methods in
//! `spectrum.rs`.

use super::hessian::{GaussNewton, Hessian, Layout, Operator};
use super::spectrum::{self, TopK};
use crate::cli::{CurvatureArgs, GlobalOpts};
use crate::data::{DataConfig, Split};
use crate::nn::ModelConfig;
use crate::rng::{self, Stream};
use crate::run::fsutil::write_atomic;
use crate::run::metrics::{float, MetricsWriter};
use crate::run::{self, checkpoint};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

/// Which curvature matrix of the mean cross-entropy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Matrix {
    #[default]
    Hessian,
    GaussNewton,
}

impl Matrix {
    pub fn as_str(self) -> &'static str {
        match self {
            Matrix::Hessian => "hessian",
            Matrix::GaussNewton => "gauss-newton",
        }
    }
}

/// What `stochlab curvature` computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum What {
    /// The k largest eigenvalues (and eigenvectors with --vectors).
    TopK,
    /// The trace by Hutchinson's estimator.
    Trace,
    /// The eigenvalue density by stochastic Lanczos quadrature (density.csv).
    Density,
}

/// How the top-k eigenpairs are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// Lanczos with full reorthogonalisation (largest algebraic eigenvalues).
    Lanczos,
    /// Deflated power iteration, as PyHessian (largest magnitude; one vector of memory each).
    Power,
}

/// The curvature operator of the mean cross-entropy of `model` (evaluation mode) over the rows
/// `rows` of `split` (all rows when None), built in chunks of at most `chunk` rows whose
/// losses are averaged with their sizes as weights.
pub fn operator(
    matrix: Matrix,
    model: &dyn ModuleT,
    vs: &VarStore,
    split: &Split,
    rows: Option<&Tensor>,
    chunk: i64,
) -> Box<dyn Operator> {
    let params: Vec<Tensor> = crate::optim::trainable(vs)
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    let all;
    let rows = match rows {
        Some(r) => r,
        None => {
            all = Tensor::arange(split.len(), (Kind::Int64, split.y.device()));
            &all
        }
    };
    let n = rows.size()[0] as f64;
    let chunks = rows.split(chunk.max(1), 0).into_iter().map(|idx| {
        let (x, y) = split.take(&idx);
        (model.forward_t(&x, false), y, idx.size()[0] as f64 / n)
    });
    match matrix {
        Matrix::Hessian => Box::new(Hessian::new(
            params,
            chunks
                .map(|(z, y, w)| (z.cross_entropy_for_logits(&y), w))
                .collect(),
        )),
        Matrix::GaussNewton => Box::new(GaussNewton::new(
            params,
            chunks.map(|(z, _, w)| (z, w)).collect(),
        )),
    }
}

/// A fixed random subset of `batch` rows of `split` (0 or ≥ its size: None, all rows), drawn
/// from the seed on the CPU and moved to the data's device.
fn fixed_rows(split: &Split, batch: i64, seed: u64) -> Option<Tensor> {
    let n = split.len();
    (batch > 0 && batch < n).then(|| {
        rng::reseed(seed, Stream::Probe, 0, 0);
        Tensor::randperm(n, (Kind::Int64, Device::Cpu))
            .narrow(0, 0, batch)
            .to_device(split.y.device())
    })
}

/// `[train.sharpness]`: λ_max of the training loss measured during training.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SharpnessConfig {
    /// Measure every N optimisation steps, and before the first; 0 = off.
    pub every: usize,
    /// Rows of the training set it is measured on: a fixed random subset drawn from the seed,
    /// the same at every measurement; 0 = the full training set.
    pub batch: i64,
    pub matrix: Matrix,
    /// Lanczos stops when ‖Hv − λv‖ ≤ tol·λ.
    pub tol: f64,
    /// Lanczos steps at most (Hessian-vector products).
    pub max_iter: usize,
}

impl Default for SharpnessConfig {
    fn default() -> Self {
        SharpnessConfig {
            every: 0,
            batch: 1000,
            matrix: Matrix::Hessian,
            tol: 1e-3,
            max_iter: 100,
        }
    }
}

impl crate::config::Check for SharpnessConfig {
    fn check(&self) -> Result<()> {
        if self.batch < 0 || self.tol.is_nan() || self.tol <= 0.0 || self.max_iter == 0 {
            bail!("train.sharpness needs batch >= 0 (0 = full training set), tol > 0 and max_iter >= 1");
        }
        Ok(())
    }
}

pub const SHARPNESS_CSV: &str = "sharpness.csv";
const SHARPNESS_COLUMNS: [&str; 7] = [
    "epoch",
    "step",
    "lr",
    "lambda_max",
    "residual",
    "products",
    "converged",
];

/// The sharpness hook of `train::fit`.
pub struct Sharpness {
    cfg: SharpnessConfig,
    rows: Option<Tensor>,
    writer: MetricsWriter,
    seed: u64,
    last: f64,
}

impl Sharpness {
    /// Opens sharpness.csv: new, or when resuming at `resume_step`, cut back to the
    /// measurements taken up to that step (one before the first step, then one every N).
    pub fn open(
        dir: &Path,
        cfg: &SharpnessConfig,
        train: &Split,
        seed: u64,
        resume_step: Option<u64>,
    ) -> Result<Sharpness> {
        crate::config::Check::check(cfg)?;
        let path = dir.join(SHARPNESS_CSV);
        let writer = match resume_step {
            None => MetricsWriter::create(&path, &SHARPNESS_COLUMNS)?,
            Some(step) => MetricsWriter::resume(
                &path,
                &SHARPNESS_COLUMNS,
                crate::run::metrics::Keep::Rows((step / cfg.every.max(1) as u64) as usize + 1),
            )?,
        };
        let last = writer
            .last_as_json()
            .get("lambda_max")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(f64::NAN);
        Ok(Sharpness {
            cfg: cfg.clone(),
            rows: fixed_rows(train, cfg.batch, seed),
            writer,
            seed,
            last,
        })
    }

    pub fn due(&self, global_step: u64) -> bool {
        global_step.is_multiple_of(self.cfg.every.max(1) as u64)
    }

    /// Measures λ_max now (`epoch`: fractional epochs done; `lr`: the learning rate of the
    /// step just taken, or of the first step) and writes a row.
    pub fn measure(
        &mut self,
        model: &dyn ModuleT,
        vs: &VarStore,
        train: &Split,
        (epoch, global_step, lr): (f64, u64, f64),
    ) -> Result<()> {
        rng::reseed(self.seed, Stream::Probe, global_step, 1);
        let op = operator(self.cfg.matrix, model, vs, train, self.rows.as_ref(), 4096);
        let top = spectrum::lanczos_top_k(op.as_ref(), 1, self.cfg.tol, self.cfg.max_iter);
        self.last = top.values[0];
        self.writer.write(vec![
            epoch.into(),
            (global_step as i64).into(),
            lr.into(),
            top.values[0].into(),
            top.residuals[0].into(),
            top.products.into(),
            top.converged.to_string().into(),
        ])
    }

    /// The latest measurement (NaN before the first).
    pub fn last(&self) -> f64 {
        self.last
    }
}

/// `--checkpoint`: a tag under checkpoints/ (e00005-s0000000) or an epoch number; default the
/// latest.
fn pick_checkpoint(run_dir: &Path, which: Option<&str>) -> Result<checkpoint::Checkpoint> {
    let Some(which) = which else {
        return checkpoint::latest(run_dir).map(|f| f.checkpoint);
    };
    let root = run_dir.join(checkpoint::DIR);
    let mut tags: Vec<String> = std::fs::read_dir(&root)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().join("state.json").exists())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with('e'))
                .collect()
        })
        .unwrap_or_default();
    tags.sort();
    let found = match which.parse::<usize>() {
        Ok(epoch) => {
            let prefix = format!("e{epoch:05}-");
            let at_boundary = format!("e{epoch:05}-s0000000");
            tags.iter()
                .find(|t| **t == at_boundary)
                .or_else(|| tags.iter().rev().find(|t| t.starts_with(&prefix)))
        }
        Err(_) => tags.iter().find(|t| *t == which),
    };
    match found {
        Some(tag) => Ok(checkpoint::Checkpoint {
            dir: root.join(tag),
        }),
        None if tags.is_empty() => bail!(
            "{} has no checkpoints; curvature needs a run that saved one",
            run_dir.display()
        ),
        None => bail!(
            "no checkpoint `{which}` in {}; it has: {} (an epoch number or a tag)",
            root.display(),
            tags.join(", ")
        ),
    }
}

/// Appends `rows` to the CSV at `path` (created with `header` when missing), rewriting it
/// atomically: a header that differs is an error and leaves the file as it was.
fn append_csv(path: &Path, header: &[&str], rows: &[Vec<String>]) -> Result<()> {
    let mut out = csv::Writer::from_writer(vec![]);
    if path.exists() {
        let mut r =
            csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
        let old: Vec<String> = r.headers()?.iter().map(str::to_string).collect();
        if old != header {
            bail!(
                "{} has columns [{}], not [{}]; move it away to start a new one",
                path.display(),
                old.join(","),
                header.join(",")
            );
        }
        out.write_record(header)?;
        for rec in r.records() {
            out.write_record(&rec.with_context(|| format!("{} is corrupt", path.display()))?)?;
        }
    } else {
        out.write_record(header)?;
    }
    for row in rows {
        out.write_record(row)?;
    }
    write_atomic(path, &out.into_inner()?)
}

pub const CURVATURE_CSV: &str = "curvature.csv";
pub const DENSITY_CSV: &str = "density.csv";
const CURVATURE_COLUMNS: [&str; 12] = [
    "checkpoint_epoch",
    "matrix",
    "batch",
    "seed",
    "method",
    "quantity",
    "index",
    "value",
    "error",
    "products",
    "seconds",
    "converged",
];
const DENSITY_COLUMNS: [&str; 6] = [
    "checkpoint_epoch",
    "matrix",
    "batch",
    "seed",
    "lambda",
    "density",
];

fn check_args(a: &CurvatureArgs) -> Result<()> {
    let bad = |what: &str| Err(anyhow!("{what}"));
    if a.batch < 0 {
        return bad("--batch must be >= 0 (0 = the full training set)");
    }
    if a.k == 0 || a.max_iter == 0 || a.tol.is_nan() || a.tol <= 0.0 {
        return bad("--k and --max-iter must be >= 1 and --tol > 0");
    }
    if a.rel_err.is_nan() || a.rel_err <= 0.0 || a.max_probes < 2 {
        return bad("--rel-err must be > 0 and --max-probes >= 2");
    }
    if a.probes == 0 || a.steps < 2 || a.points < 2 || a.sigma.is_nan() || a.sigma < 0.0 {
        return bad("--probes must be >= 1, --steps and --points >= 2, --sigma >= 0 (0 = 1% of the spectrum's span)");
    }
    if a.chunk < 1 {
        return bad("--chunk must be >= 1");
    }
    Ok(())
}

/// `stochlab curvature RUN ...`.
pub fn main(g: &GlobalOpts, a: &CurvatureArgs) -> Result<i32> {
    check_args(a)?;
    let info = run::read_info(&a.run_dir)?;
    let cfg_path = a.run_dir.join(run::CONFIG_TOML);
    let text = std::fs::read_to_string(&cfg_path)
        .with_context(|| format!("reading {}", cfg_path.display()))?;
    let table = crate::config::parse_toml(&text, &cfg_path.display().to_string())?;
    let section = |name: &str| {
        table.get(name).cloned().ok_or_else(|| {
            anyhow!(
                "{} is a run of `{}`, which has no [{name}] table: curvature works on classifier-style runs (a [data] and a [model] table, e.g. `classifier`)",
                a.run_dir.display(),
                info.experiment
            )
        })
    };
    let data_cfg: DataConfig = section("data")?.try_into().map_err(|e| {
        anyhow!(
            "{}: [data] is not a dataset config ({e}); curvature works on classifier-style runs",
            cfg_path.display()
        )
    })?;
    let model_cfg: ModelConfig = section("model")?.try_into().map_err(|e| {
        anyhow!(
            "{}: [model] is not a classifier model config ({e}); curvature works on classifier-style runs",
            cfg_path.display()
        )
    })?;
    let device = crate::device::parse(&g.device)?;
    let data_dir = g.data_dir.clone().unwrap_or_else(|| PathBuf::from("data"));
    let data = crate::data::load(&data_cfg, &data_dir, device, info.seed)?;
    let (vs, model) = crate::nn::build_classifier(
        &model_cfg,
        &data.input_shape,
        data.n_classes,
        device,
        info.seed,
    )?;
    let ck = pick_checkpoint(&a.run_dir, a.checkpoint.as_deref())?;
    super::load_weights(&vs, &ck, device)?;
    let epoch = ck.state()?.epoch;
    let n = data.train.len();
    if a.batch > n {
        bail!(
            "--batch {} is larger than the training set ({n} rows); use 0 for the full set",
            a.batch
        );
    }
    let seed = g.seed.unwrap_or(info.seed);
    let rows = fixed_rows(&data.train, a.batch, seed);
    let batch = rows.as_ref().map_or(n, |r| r.size()[0]);
    let op = operator(
        a.matrix,
        model.as_ref(),
        &vs,
        &data.train,
        rows.as_ref(),
        a.chunk,
    );
    let dim = Layout::of(op.params()).dim() as f64;

    let key = [
        epoch.to_string(),
        a.matrix.as_str().to_string(),
        batch.to_string(),
        seed.to_string(),
    ];
    let row = |method: &str,
               quantity: &str,
               index: usize,
               value: f64,
               error: f64,
               products: usize,
               secs: f64,
               converged: bool| {
        key.iter()
            .cloned()
            .chain([
                method.to_string(),
                quantity.to_string(),
                index.to_string(),
                float(value),
                float(error),
                products.to_string(),
                float(secs),
                converged.to_string(),
            ])
            .collect::<Vec<String>>()
    };
    let what_of = format!(
        "{} of the {} training rows at epoch {epoch}",
        a.matrix.as_str(),
        if rows.is_some() {
            format!("{batch} (of {n})")
        } else {
            format!("{n}")
        }
    );
    let mut out: Vec<Vec<String>> = vec![];
    let mut density_rows: Vec<Vec<String>> = vec![];
    let mut lines = vec![];
    let mut whats = a.what.clone();
    whats.dedup();
    for (i, what) in whats.iter().enumerate() {
        rng::reseed(seed, Stream::Probe, 1 + i as u64, *what as u64);
        let start = Instant::now();
        match what {
            What::TopK => {
                let (method, top): (&str, TopK) = match a.method {
                    Method::Lanczos => (
                        "lanczos",
                        spectrum::lanczos_top_k(op.as_ref(), a.k, a.tol, a.max_iter),
                    ),
                    Method::Power => (
                        "power",
                        spectrum::power_top_k(op.as_ref(), a.k, a.tol, a.max_iter),
                    ),
                };
                let secs = start.elapsed().as_secs_f64();
                for (j, (v, r)) in top.values.iter().zip(&top.residuals).enumerate() {
                    out.push(row(
                        method,
                        "eigenvalue",
                        j + 1,
                        *v,
                        *r,
                        top.products,
                        secs,
                        top.converged,
                    ));
                }
                let shown: Vec<String> = top.values.iter().map(|v| format!("{v:.6}")).collect();
                lines.push(format!(
                    "top-{} eigenvalues ({method}, {} products, {secs:.1}s{}): {}",
                    top.values.len(),
                    top.products,
                    if top.converged {
                        ""
                    } else {
                        ", NOT converged: raise --max-iter"
                    },
                    shown.join(" ")
                ));
                if a.vectors {
                    let layout = Layout::of(op.params());
                    let names: Vec<String> = crate::optim::trainable(&vs)
                        .into_iter()
                        .map(|(name, _)| name)
                        .collect();
                    let mut tensors = vec![];
                    for (j, v) in top.vectors.iter().enumerate() {
                        for (name, t) in names.iter().zip(layout.split(v)) {
                            tensors.push((
                                format!("v{}.{name}", j + 1),
                                t.to_device(Device::Cpu).contiguous(),
                            ));
                        }
                    }
                    let path = a.run_dir.join(format!(
                        "eigenvectors-e{epoch:05}-{}-b{batch}.safetensors",
                        a.matrix.as_str()
                    ));
                    Tensor::write_safetensors(&tensors, &path)
                        .with_context(|| format!("writing {}", path.display()))?;
                    lines.push(format!("eigenvectors -> {}", path.display()));
                }
            }
            What::Trace => {
                let t = spectrum::hutchinson(op.as_ref(), a.rel_err, 10, a.max_probes);
                let secs = start.elapsed().as_secs_f64();
                out.push(row(
                    "hutchinson",
                    "trace",
                    0,
                    t.value,
                    t.std_error,
                    t.probes,
                    secs,
                    t.converged,
                ));
                lines.push(format!(
                    "trace {:.6} ± {:.6} (Hutchinson, {} probes, {secs:.1}s{})",
                    t.value,
                    t.std_error,
                    t.probes,
                    if t.converged {
                        ""
                    } else {
                        ", NOT at --rel-err: raise --max-probes"
                    }
                ));
            }
            What::Density => {
                let (quads, products) = spectrum::slq(op.as_ref(), a.probes, a.steps);
                let d = spectrum::density(&quads, a.sigma, a.points);
                let secs = start.elapsed().as_secs_f64();
                let (m1, se1) = spectrum::moment(&quads, 1);
                let nodes = quads.iter().flat_map(|q| q.nodes.iter().copied());
                let (lo, hi) = nodes.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| {
                    (l.min(x), h.max(x))
                });
                out.push(row(
                    "slq",
                    "trace",
                    0,
                    m1 * dim,
                    se1 * dim,
                    products,
                    secs,
                    true,
                ));
                out.push(row(
                    "slq",
                    "lambda_max",
                    0,
                    hi,
                    f64::NAN,
                    products,
                    secs,
                    true,
                ));
                out.push(row(
                    "slq",
                    "lambda_min",
                    0,
                    lo,
                    f64::NAN,
                    products,
                    secs,
                    true,
                ));
                out.push(row(
                    "slq",
                    "sigma",
                    0,
                    d.sigma,
                    f64::NAN,
                    products,
                    secs,
                    true,
                ));
                for (x, y) in d.lambda.iter().zip(&d.density) {
                    density_rows.push(key.iter().cloned().chain([float(*x), float(*y)]).collect());
                }
                lines.push(format!(
                    "density by SLQ ({} probes × {} steps, σ = {:.3e}, {secs:.1}s): λ in [{lo:.4}, {hi:.4}], trace {:.4} ± {:.4} -> {}",
                    quads.len(),
                    a.steps,
                    d.sigma,
                    m1 * dim,
                    se1 * dim,
                    a.run_dir.join(DENSITY_CSV).display()
                ));
            }
        }
    }
    let path = a.run_dir.join(CURVATURE_CSV);
    append_csv(&path, &CURVATURE_COLUMNS, &out)?;
    if !density_rows.is_empty() {
        append_csv(
            &a.run_dir.join(DENSITY_CSV),
            &DENSITY_COLUMNS,
            &density_rows,
        )?;
    }
    println!(
        "curvature of {} ({} parameters, {what_of}):",
        a.run_dir.display(),
        dim as i64
    );
    for l in lines {
        println!("  {l}");
    }
    println!("-> {}", path.display());
    Ok(0)
}
