//! Command-line definitions (clap derive). No logic lives here: `app` dispatches.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "stochlab",
    version,
    about = "Experiment runner for the stochastic side of deep learning",
    long_about = "Experiment runner for the stochastic side of deep learning.\n\n\
        Usage pattern: stochlab <cmd> <experiment> [key=value ...]\n\
        Defaults come from experiments/<name>.toml; dotted keys override nested fields."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalOpts {
    /// Device to run on: auto (CUDA when present), cpu, cuda, cuda:N.
    #[arg(long, global = true, default_value = "auto")]
    pub device: String,
    /// Random seed (overrides a `seed` key in the config).
    #[arg(long, global = true)]
    pub seed: Option<u64>,
    /// Root folder for run directories.
    #[arg(
        long,
        global = true,
        default_value = "results",
        env = "STOCHLAB_RESULTS"
    )]
    pub results: PathBuf,
    /// Config file to use instead of experiments/<name>.toml.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Folder holding datasets (default: data/).
    #[arg(long, global = true, env = "STOCHLAB_DATA")]
    pub data_dir: Option<PathBuf>,
    /// Print only the final summary line.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Tiny sizes (the config's [smoke] table): seconds per run, for tests and trying things.
    #[arg(long, global = true)]
    pub smoke: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the experiments by family with their paper and number of claims.
    List {
        /// Print only the names, one per line (for scripts).
        #[arg(long)]
        names: bool,
        /// Print the README's Papers table (Markdown), with the claims held at CPU scale taken
        /// from the committed scoreboard.
        #[arg(long, conflicts_with = "names")]
        markdown: bool,
        /// Scoreboard CSV that --markdown reads the verdicts from.
        #[arg(long, default_value = "docs/scoreboard-cpu.csv")]
        scoreboard: PathBuf,
    },
    /// Train an experiment: stochlab train <experiment> [key=value ...].
    Train(TrainArgs),
    /// Evaluate a finished (or interrupted) run from its latest checkpoint, optionally under
    /// overrides; appends to eval.csv. Supports classifier, ib-tishby, ib-lossy, and the
    /// nested runs of diffgrad and train-longer (stochlab eval <run>/runs/<name>).
    Eval(EvalArgs),
    /// Train with information-plane tracking and write ib.csv.
    IbAnalyze(TrainArgs),
    /// Expand a sweep file into jobs and run them.
    Sweep(Box<SweepArgs>),
    /// Recompute the paper claims of finished runs from their files: a run directory, a sweep
    /// (mean ± std over seeds, verdict on the mean, seeds passing) or a reproduce folder.
    Check(CheckArgs),
    /// Run experiments' default configs (or --full paper-scale ones) as sweep jobs and write a
    /// scoreboard of their paper claims: stochlab reproduce --all, stochlab reproduce ib-tishby.
    Reproduce(Box<ReproduceArgs>),
    /// Datasets: `stochlab data list` shows each one, whether it is present and verified.
    Data {
        #[command(subcommand)]
        action: DataAction,
    },
    /// Figures from a run's CSVs (SVG and PNG next to them), or several runs' curves overlaid
    /// with --compare.
    Plot(PlotArgs),
    /// Runs under the results folder, one line each: id, name, tags, status, date, duration,
    /// seed, overrides, headline metrics.
    Runs(RunsArgs),
    /// The config keys that differ between runs (or a sweep's jobs) next to their final metrics.
    Compare(CompareArgs),
    /// Print the resolved config of an experiment (defaults + overrides) without running it.
    Config(ConfigArgs),
    /// Mutual information between column groups of your own CSV (e.g. dumped activations):
    /// stochlab mi acts.csv --x 'h*' --y label --estimator ksg --k 5 --bootstrap 200.
    Mi(Box<MiArgs>),
    /// Curvature of a finished classifier-style run's training loss (Hessian or Gauss–Newton,
    /// one batch or the full set): top-k eigenvalues (Lanczos), trace (Hutchinson), spectral
    /// density (SLQ); appends to curvature.csv (and density.csv) in the run directory.
    Curvature(Box<CurvatureArgs>),
    /// Micro-benchmarks used by `make bench` (prints one JSON line).
    Bench(BenchArgs),
    /// Print shell completions: stochlab completions bash > /etc/bash_completion.d/stochlab.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Experiment name (see `stochlab list`); optional with --resume.
    pub experiment: Option<String>,
    /// Overrides as dotted key=value pairs, e.g. optim.lr=0.01 model.hidden=[256,256].
    pub overrides: Vec<String>,
    /// Continue an interrupted run from its latest checkpoint (same config and seed); with
    /// train.epochs=N, extend a run (finished or not) to N epochs.
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// A name for the run, shown by `stochlab runs` and `compare`.
    #[arg(long)]
    pub name: Option<String>,
    /// A tag for the run (repeatable): `stochlab runs --where tag=T` finds it.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Create the run exactly here instead of results/<experiment>/<timestamp>-<id> (sweeps).
    #[arg(long, hide = true)]
    pub run_dir: Option<PathBuf>,
    /// When the run completes, draw its figures (as `stochlab plot`) and print their paths.
    #[arg(long)]
    pub plot: bool,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Run directories, sweep directories or reproduce folders, and optionally thresholds to
    /// use instead of the runs' own: claims.<id>=VALUE (e.g. claims.compression=3).
    #[arg(required = true, value_name = "PATH|claims.ID=VALUE")]
    pub args: Vec<String>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ReproduceArgs {
    /// Experiments or variants to reproduce (see `stochlab list`); --all for every one.
    pub names: Vec<String>,
    /// Every experiment that reproduces a paper, with its variants.
    #[arg(long, conflicts_with = "names")]
    pub all: bool,
    /// The paper-scale configs (experiments/<name>-full.toml), for a GPU box or a cluster.
    #[arg(long)]
    pub full: bool,
    /// Seeds per experiment (0..N); each seed is one job.
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// Name of the folder results/reproduce/<name>/ (default: cpu, full or smoke).
    #[arg(long)]
    pub name: Option<String>,
    /// Only (re)write the scoreboard from the jobs that have finished; run nothing.
    #[arg(long)]
    pub scoreboard: bool,
    #[command(flatten)]
    pub pool: PoolArgs,
    /// local (worker processes here) or slurm (one sbatch job array per experiment).
    #[arg(long, default_value = "local")]
    pub backend: String,
    #[command(flatten)]
    pub slurm: SlurmArgs,
}

/// The local worker pool of sweeps and reproduce.
#[derive(Args, Debug, Clone)]
pub struct PoolArgs {
    /// Jobs run at once on this machine.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Pin each job to one GPU (CUDA_VISIBLE_DEVICES): a list like 0,1,2 or `all`.
    #[arg(long)]
    pub gpus: Option<String>,
    /// Jobs sharing one GPU at a time (with --gpus).
    #[arg(long, default_value_t = 1)]
    pub jobs_per_gpu: usize,
    /// Run again the jobs that failed in an earlier invocation (otherwise they are skipped).
    #[arg(long)]
    pub retry_failed: bool,
}

#[derive(Args, Debug, Clone)]
pub struct SlurmArgs {
    /// Slurm: partition to submit to.
    #[arg(long)]
    pub partition: Option<String>,
    /// Slurm: time limit per task, e.g. 02:00:00.
    #[arg(long)]
    pub time: Option<String>,
    /// Slurm: GPUs per task (--gpus-per-task).
    #[arg(long)]
    pub gpus_per_task: Option<String>,
    /// Slurm: CPUs per task (--cpus-per-task).
    #[arg(long)]
    pub cpus_per_task: Option<String>,
    /// Slurm: memory per task, e.g. 16G.
    #[arg(long)]
    pub mem: Option<String>,
    /// Slurm: most array tasks running at once (%N).
    #[arg(long)]
    pub max_concurrent: Option<usize>,
    /// Slurm: any other #SBATCH line, e.g. --sbatch-arg=--account=lab (repeatable).
    #[arg(long)]
    pub sbatch_arg: Vec<String>,
    /// Slurm: requeue preempted tasks; they checkpoint on SIGTERM and resume.
    #[arg(long)]
    pub requeue: bool,
    /// Slurm: write and print the sbatch script without submitting it.
    #[arg(long)]
    pub dry_run: bool,
}

impl SlurmArgs {
    pub fn options(&self) -> crate::sweep::slurm::SlurmOptions {
        crate::sweep::slurm::SlurmOptions {
            partition: self.partition.clone(),
            time: self.time.clone(),
            gpus_per_task: self.gpus_per_task.clone(),
            cpus_per_task: self.cpus_per_task.clone(),
            mem: self.mem.clone(),
            max_concurrent: self.max_concurrent,
            extra: self.sbatch_arg.clone(),
            requeue: self.requeue,
        }
    }
}

#[derive(Args, Debug)]
pub struct MiArgs {
    /// A CSV file with a header row.
    pub file: PathBuf,
    /// Columns of X: names, 0-based indices, ranges `2-9`, or prefixes `h*`, comma-separated.
    #[arg(long)]
    pub x: String,
    /// Columns of Y, the same way. One integer or text column is read as a discrete label.
    #[arg(long)]
    pub y: String,
    /// ksg (Kraskov et al.), kl (Kozachenko–Leonenko), kde (leave-one-out Gaussian KDE) or
    /// binning.
    #[arg(long, value_enum, default_value = "ksg")]
    pub estimator: crate::info::mi::MiEstimator,
    /// Neighbours (ksg, kl).
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    /// Compress each continuous side wider than D first: none, pca:D or ae:D.
    #[arg(long, default_value = "none")]
    pub compress: crate::info::compress::Compressor,
    /// Fit the compressor on this fraction of the rows and estimate on the rest (0: fit and
    /// estimate on all rows).
    #[arg(long, default_value_t = 0.0)]
    pub fit_fraction: f64,
    /// nats or bits.
    #[arg(long, value_enum, default_value = "nats")]
    pub units: crate::info::mi::Units,
    /// How to read Y: auto (a single integer or text column with at most 50 values is a label).
    #[arg(long, value_enum, default_value = "auto")]
    pub y_type: YType,
    /// Scaling of each continuous side first: none, standardize (per column) or whiten.
    #[arg(long, value_enum, default_value = "standardize")]
    pub preprocess: crate::info::mi::Preprocess,
    /// kl: Berrett–Samworth–Yuan weighted estimator.
    #[arg(long)]
    pub weighted: bool,
    /// binning: bins per column.
    #[arg(long, default_value_t = 10)]
    pub bins: i64,
    /// kde: kernel width in standard deviations (0: Silverman's rule).
    #[arg(long, default_value_t = 0.0)]
    pub bandwidth: f64,
    /// Confidence interval from N subsamples of half the rows, drawn without replacement
    /// (resampling with replacement would put duplicate points at distance 0 and bias k-NN
    /// estimates upward). It reflects sampling variability, not estimator bias.
    #[arg(long, default_value_t = 0)]
    pub bootstrap: usize,
    /// Coverage of the --bootstrap interval, in [0.5, 1).
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// Print one JSON object instead of a sentence.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum YType {
    Auto,
    Continuous,
    Discrete,
}

#[derive(Subcommand, Debug)]
pub enum DataAction {
    /// Each dataset: where it comes from, whether its files are present, their checksum state.
    List,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A run directory: results/<experiment>/<timestamp>-<id>.
    pub run_dir: PathBuf,
    /// Overrides applied to the run's config before evaluating (e.g. another dataset variant).
    pub overrides: Vec<String>,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SweepArgs {
    #[command(subcommand)]
    pub action: Option<SweepAction>,
    /// A sweep file (experiments/sweeps/*.toml), or an experiment name followed by Hydra-style
    /// overrides: optim.lr=1e-3,1e-2 optim.name=adam,diffgrad seed=0..4.
    #[arg(required = true)]
    pub target: Option<String>,
    /// Overrides; comma-separated values are swept (a grid), seed=A..B sweeps seeds.
    pub overrides: Vec<String>,
    /// Sweep name (default: the file's `name`, its file name, or one derived from the command line).
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Stop launching jobs after the first failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// Retry a failed job this many times.
    #[arg(long, default_value_t = 0)]
    pub retries: u32,
    /// local (worker processes here) or slurm (an sbatch job array).
    #[arg(long, default_value = "local")]
    pub backend: String,
    #[command(flatten)]
    pub slurm: SlurmArgs,
}

#[derive(Subcommand, Debug)]
pub enum SweepAction {
    /// Counts of jobs by status (plus sacct for Slurm sweeps) and the failed jobs' errors.
    Status {
        /// A sweep directory: results/sweeps/<name>.
        dir: PathBuf,
    },
    /// summary.csv (printed as a table): per group of swept keys (all but the seed unless
    /// --group-by), the number of jobs and each final metric's mean and std over them; jobs
    /// that report mean ± std over their own seeds are pooled seed by seed.
    Summary {
        /// A sweep directory: results/sweeps/<name>.
        dir: PathBuf,
        /// Keys to group by, comma-separated (e.g. optim.lr,optim.name; `seed` is allowed).
        #[arg(long, value_delimiter = ',')]
        group_by: Vec<String>,
    },
    /// Runs one job of a sweep (what each Slurm array task calls).
    RunTask {
        /// A sweep directory: results/sweeps/<name>.
        dir: PathBuf,
        /// The job's index in the sweep (Slurm's $SLURM_ARRAY_TASK_ID).
        #[arg(long)]
        index: usize,
    },
}

#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// Experiment name.
    pub experiment: String,
    /// Overrides as dotted key=value pairs.
    pub overrides: Vec<String>,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// What to measure: `classifier-step` (MLP 784-256-256-10, Adam, random inputs).
    pub what: String,
    /// Mini-batch size.
    #[arg(long, default_value_t = 256)]
    pub batch_size: i64,
    /// Timed steps.
    #[arg(long, default_value_t = 300)]
    pub steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 30)]
    pub warmup: usize,
    /// `ksg`: a headerless numeric CSV, X in the first `--dx` columns, Y in the rest.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// `ksg`: columns of X in --input.
    #[arg(long, default_value_t = 2)]
    pub dx: usize,
    /// `ksg`: neighbours.
    #[arg(long, default_value_t = 3)]
    pub k: usize,
    /// `curvature`: relative tolerance on the top eigenvalue.
    #[arg(long, default_value_t = 1e-3)]
    pub tol: f64,
}

#[derive(Args, Debug)]
pub struct CurvatureArgs {
    /// A run directory whose config has [data] and [model] tables (e.g. a `classifier` run).
    pub run_dir: PathBuf,
    /// Checkpoint: an epoch number or a tag under checkpoints/ (default: the latest).
    #[arg(long)]
    pub checkpoint: Option<String>,
    /// Training rows: a fixed random batch of B rows drawn from --seed (default the run's), or
    /// 0 for the full training set.
    #[arg(long, default_value_t = 0)]
    pub batch: i64,
    /// The curvature matrix: hessian or gauss-newton.
    #[arg(long, value_enum, default_value = "hessian")]
    pub matrix: crate::train::curvature::Matrix,
    /// What to compute, comma-separated: top-k, trace, density.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "top-k")]
    pub what: Vec<crate::train::curvature::What>,
    /// top-k: how many eigenvalues.
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    /// Top-k eigenvalues by lanczos (full reorthogonalisation) or power (deflated power
    /// iteration, as PyHessian).
    #[arg(long, value_enum, default_value = "lanczos")]
    pub method: crate::train::curvature::Method,
    /// top-k: relative tolerance (Lanczos: Ritz residual <= tol*|λ|; power: change of λ).
    #[arg(long, default_value_t = 1e-3)]
    pub tol: f64,
    /// top-k: most products (Lanczos steps; per eigenvalue for power iteration).
    #[arg(long, default_value_t = 200)]
    pub max_iter: usize,
    /// trace: stop when the standard error is at most this fraction of the estimate.
    #[arg(long, default_value_t = 0.05)]
    pub rel_err: f64,
    /// trace: most probes.
    #[arg(long, default_value_t = 1000)]
    pub max_probes: usize,
    /// density: SLQ probes.
    #[arg(long, default_value_t = 10)]
    pub probes: usize,
    /// density: Lanczos steps per probe.
    #[arg(long, default_value_t = 80)]
    pub steps: usize,
    /// density: Gaussian broadening (standard deviation; 0 = 1% of the spectrum's span).
    #[arg(long, default_value_t = 0.0)]
    pub sigma: f64,
    /// density: grid points in density.csv.
    #[arg(long, default_value_t = 400)]
    pub points: usize,
    /// Rows per forward pass (memory only; results do not depend on it beyond rounding).
    #[arg(long, default_value_t = 2048)]
    pub chunk: i64,
    /// top-k: also write the eigenvectors (eigenvectors-*.safetensors, one tensor per
    /// parameter and vector).
    #[arg(long)]
    pub vectors: bool,
}

#[derive(Args, Debug)]
pub struct PlotArgs {
    /// A run directory; with --compare, several runs or a sweep directory.
    #[arg(required = true, value_name = "RUN")]
    pub runs: Vec<PathBuf>,
    /// Information plane: only these estimators, one panel each (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub estimator: Vec<String>,
    /// Information plane and gradient SNR: only these layers, by number or name (conv1,dense1).
    #[arg(long, value_delimiter = ',')]
    pub layers: Vec<String>,
    /// Only these figures (e.g. curves,information_plane); the others are not written.
    #[arg(long, value_delimiter = ',')]
    pub figure: Vec<String>,
    /// Write here instead of next to the CSVs: a .svg/.png file (one figure) or a folder.
    #[arg(long, value_name = "FILE|DIR")]
    pub out: Option<PathBuf>,
    /// svg or png (default: both). pdf is refused: plotters cannot write it; convert the SVG.
    #[arg(long, value_enum)]
    pub format: Option<crate::plot::render::Format>,
    /// Information plane: ± std over seeds as crosses on each point.
    #[arg(long)]
    pub spread: bool,
    /// Overlay the learning curves of several runs (or of a sweep's runs) in one figure.
    #[arg(long)]
    pub compare: bool,
    /// With --compare: group runs by these config keys (mean ± std over the rest, e.g. seeds);
    /// default: the keys that differ, seed aside.
    #[arg(long, value_delimiter = ',', value_name = "KEY")]
    pub group_by: Vec<String>,
    /// With --compare: only these curves (e.g. test_acc).
    #[arg(long, value_delimiter = ',')]
    pub metric: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RunsArgs {
    /// Only runs of this experiment.
    pub experiment: Option<String>,
    /// Only runs with this status: running, completed, failed, interrupted (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub status: Vec<String>,
    /// Only runs where KEY=VALUE: a config key (optim.lr=0.01), a final metric, or name, tag,
    /// seed, device (repeatable; all must hold).
    #[arg(long = "where", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// Sort by a final metric, `date` or `duration`; a leading `-` sorts descending
    /// (--sort=-test_acc).
    #[arg(long, allow_hyphen_values = true, value_name = "METRIC")]
    pub sort: Option<String>,
    /// CSV on stdout (every final metric its own column) instead of a table.
    #[arg(long)]
    pub csv: bool,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Run directories, or a sweep directory (its runs).
    #[arg(required = true, value_name = "RUN")]
    pub runs: Vec<PathBuf>,
    /// Only these final metrics (comma-separated; default: all).
    #[arg(long, value_delimiter = ',')]
    pub metric: Vec<String>,
    /// CSV on stdout instead of a table.
    #[arg(long)]
    pub csv: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every option and argument of every subcommand says what it is for in --help.
    #[test]
    fn every_option_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if a.get_help().is_none() && !a.is_hide_set() && !["help", "version"].contains(&id)
                {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = vec![];
        walk(&super::Cli::command(), "stochlab", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }
}
