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
    /// List the experiments with their one-line description and paper.
    List {
        /// Print only the names, one per line (for scripts).
        #[arg(long)]
        names: bool,
    },
    /// Train an experiment: stochlab train <experiment> [key=value ...].
    Train(TrainArgs),
    /// Evaluate a finished (or interrupted) run from its latest checkpoint; writes eval.csv.
    Eval(EvalArgs),
    /// Train with information-plane tracking and write ib.csv.
    IbAnalyze(TrainArgs),
    /// Expand a sweep file into jobs and run them.
    Sweep(SweepArgs),
    /// Datasets: `stochlab data list` shows each one, whether it is present and verified.
    Data {
        #[command(subcommand)]
        action: DataAction,
    },
    /// Figures from a run's CSVs (SVG and PNG next to them): information plane, gradient SNR,
    /// learning curves.
    Plot {
        /// A run directory.
        run_dir: PathBuf,
    },
    /// Print the resolved config of an experiment (defaults + overrides) without running it.
    Config(ConfigArgs),
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
    /// Continue an interrupted run from its latest checkpoint (same config and seed).
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
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
pub struct SweepArgs {
    /// A sweep file (experiments/sweeps/*.toml) or an experiment name.
    pub target: String,
    /// Hydra-style overrides with comma-separated values.
    pub overrides: Vec<String>,
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
}
