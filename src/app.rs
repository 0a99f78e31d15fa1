//! What each subcommand does. `main.rs` only parses and prints errors.

use crate::cli::{
    BenchArgs, Cli, Command, ConfigArgs, DataAction, EvalArgs, GlobalOpts, TrainArgs,
};
use crate::config::{self, Source};
use crate::experiments::{self, Entry, EvalInput};
use crate::run::{self, fsutil, Outcome, RunContext, RunOptions};
use anyhow::{anyhow, bail, Context, Result};
use clap::CommandFactory;
use std::path::{Path, PathBuf};

/// Runs a parsed command line; returns the process exit code.
pub fn main(cli: Cli) -> Result<i32> {
    let g = cli.global;
    refuse_unused(&g, &cli.command)?;
    match cli.command {
        Command::List {
            names,
            markdown,
            scoreboard,
        } => list(names, markdown, &scoreboard),
        Command::Train(args) => train(&g, args, "train"),
        Command::Eval(args) => eval(&g, args),
        Command::IbAnalyze(args) => train(&g, args, "ib-analyze"),
        Command::Sweep(args) => crate::sweep::command::main(&g, *args),
        Command::Check(args) => {
            let (overrides, paths): (Vec<String>, Vec<String>) =
                args.args.into_iter().partition(|a| a.contains('='));
            if paths.is_empty() {
                bail!("name a run or sweep directory to check, e.g. stochlab check results/ib-tishby/<run>");
            }
            let paths: Vec<PathBuf> = paths.into_iter().map(PathBuf::from).collect();
            crate::claims::check::main(&paths, &overrides, args.json)
        }
        Command::Reproduce(args) => crate::claims::reproduce::main(&g, &args),
        Command::Config(args) => show_config(&g, args),
        Command::Plot(args) => crate::plot::main(&args),
        Command::Runs(a) => {
            let q = crate::runs::RunsQuery {
                experiment: a.experiment.as_deref(),
                status: &a.status,
                filters: &a.filters,
                sort: a.sort.as_deref(),
                csv: a.csv,
            };
            let (header, rows) = crate::runs::runs_table(&g.results, &q)?;
            crate::runs::print_table(&header, &rows, a.csv)?;
            Ok(0)
        }
        Command::Compare(a) => {
            let (header, rows) = crate::runs::compare_table(&a.runs, &a.metric)?;
            crate::runs::print_table(&header, &rows, a.csv)?;
            Ok(0)
        }
        Command::Data {
            action: DataAction::List,
        } => data_list(&g),
        Command::Mi(args) => crate::info::command::main(&g, &args),
        Command::Curvature(args) => crate::train::curvature::main(&g, &args),
        Command::Bench(args) => bench(&g, args),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "stochlab",
                &mut std::io::stdout(),
            );
            Ok(0)
        }
    }
}

pub use crate::run::one_line;

/// Global flags a subcommand would silently ignore (`eval --smoke --seed 3`) are an error.
fn refuse_unused(g: &GlobalOpts, command: &Command) -> Result<()> {
    let (name, uses): (&str, &[&str]) = match command {
        Command::List { .. } => ("list", &[]),
        Command::Eval(_) => ("eval", &["--device"]),
        Command::Sweep(_) => ("sweep", &["--device", "--config", "--smoke"]),
        Command::Data { .. } => ("data", &[]),
        Command::Plot(_) => ("plot", &[]),
        Command::Runs(_) => ("runs", &[]),
        Command::Compare(_) => ("compare", &[]),
        Command::Config(_) => ("config", &["--seed", "--config", "--smoke"]),
        Command::Mi(_) => ("mi", &["--device", "--seed"]),
        Command::Completions { .. } => ("completions", &[]),
        _ => return Ok(()),
    };
    let given = [
        ("--seed", g.seed.is_some()),
        ("--smoke", g.smoke),
        ("--config", g.config.is_some()),
        ("--device", g.device != "auto"),
    ];
    for (flag, set) in given {
        if set && !uses.contains(&flag) {
            let hint = match (name, flag) {
                ("sweep", "--seed") => {
                    ": sweep seeds with seed=0..4 (or `seeds` in the sweep file)"
                }
                ("eval", _) => ": eval uses the run's own config and seed",
                _ => "",
            };
            bail!("{flag} does nothing for `stochlab {name}`; drop it{hint}");
        }
    }
    Ok(())
}

fn list(names_only: bool, markdown: bool, scoreboard: &Path) -> Result<i32> {
    if names_only {
        experiments::REGISTRY
            .iter()
            .for_each(|e| println!("{}", e.name));
        return Ok(0);
    }
    if markdown {
        print!("{}", crate::claims::reproduce::papers_table(scoreboard)?);
        return Ok(0);
    }
    let width = experiments::REGISTRY
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(0);
    for (family, title) in experiments::FAMILIES {
        let members: Vec<&Entry> = experiments::REGISTRY
            .iter()
            .filter(|e| e.family == *family)
            .collect();
        if members.is_empty() {
            continue;
        }
        println!("{family}/ — {title}");
        for e in members {
            println!("  {:width$}  {}", e.name, e.description);
            if e.paper != "—" {
                let variants = if e.variants.is_empty() {
                    String::new()
                } else {
                    format!("; variants: {}", e.variants.join(", "))
                };
                println!(
                    "  {:width$}  paper: {} ({} claims{variants})",
                    "",
                    e.paper,
                    e.claims.len()
                );
            }
        }
        println!();
    }
    println!(
        "check a run's claims: stochlab check <run-dir>; all papers: stochlab reproduce --all"
    );
    Ok(0)
}

fn options(g: &GlobalOpts) -> Result<RunOptions> {
    Ok(RunOptions {
        results_root: g.results.clone(),
        device: crate::device::parse(&g.device)?,
        quiet: g.quiet,
        smoke: g.smoke,
        data_dir: g.data_dir.clone().unwrap_or_else(|| PathBuf::from("data")),
        command_line: std::env::args().collect(),
    })
}

/// A resolved config: the experiment's complete table, the seed and the claims' thresholds.
pub struct Resolved {
    pub table: toml::Table,
    pub seed: u64,
    pub thresholds: crate::claims::Thresholds,
}

impl Resolved {
    /// config.toml as the run saves it: seed, the experiment's table and `[claims]`.
    pub fn text(&self, entry: &Entry) -> Result<String> {
        let mut t = self.table.clone();
        t.insert(
            crate::claims::SECTION.into(),
            toml::Value::Table(self.thresholds.to_table(entry)),
        );
        config::to_toml(&t, self.seed)
    }
}

/// Where an experiment's defaults come from: `--config` (a file, or a built-in config's name
/// such as `ib-tishby-relu`), else experiments/<name>.toml here, else the built-in copy.
fn source<'a>(g: &'a GlobalOpts, entry: &'a Entry, local: &'a Path) -> Result<Source<'a>> {
    match &g.config {
        Some(path) if path.is_file() => Ok(Source::File(path)),
        Some(path) => {
            let name = path.to_string_lossy();
            let name = name.strip_suffix(".toml").unwrap_or(&name);
            // A bare name (`ib-tishby-relu`), or experiments/<name>.toml run from elsewhere.
            let builtin = name.rsplit('/').next().and_then(config::builtin_named);
            match builtin {
                Some((name, text)) => Ok(Source::Embedded { name, text }),
                _ => bail!(
                    "cannot read config file {}: no such file, and no built-in config of that name; built-in: {}",
                    path.display(),
                    crate::config::BUILTIN_CONFIGS
                        .iter()
                        .map(|(n, _)| *n)
                        .filter(|n| n.starts_with(entry.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
        None if local.exists() => Ok(Source::File(local)),
        None => Ok(Source::Embedded {
            name: entry.name,
            text: entry.defaults,
        }),
    }
}

/// Defaults + smoke sizes + overrides for an experiment, completed and checked.
pub(crate) fn resolve(g: &GlobalOpts, entry: &Entry, overrides: &[String]) -> Result<Resolved> {
    let local = PathBuf::from("experiments").join(format!("{}.toml", entry.name));
    let r = config::resolve(source(g, entry, &local)?, overrides, g.smoke, g.seed)?;
    let mut table = r.table;
    let thresholds = crate::claims::split(entry, &mut table)?;
    Ok(Resolved {
        table: (entry.normalize)(&table)?,
        seed: r.seed,
        thresholds,
    })
}

fn show_config(g: &GlobalOpts, args: ConfigArgs) -> Result<i32> {
    let entry = experiments::find(&args.experiment)?;
    let r = resolve(g, entry, &args.overrides)?;
    print!("{}", r.text(entry)?);
    Ok(0)
}

fn train(g: &GlobalOpts, args: TrainArgs, command: &str) -> Result<i32> {
    let opts = options(g)?;
    let (mut ctx, table, thresholds, entry) = match &args.resume {
        Some(dir) => reopen(g, &args, dir, &opts)?,
        None => {
            let name = args.experiment.as_deref().ok_or_else(|| {
                anyhow!(
                    "name an experiment to train (see `stochlab list`), or pass --resume <run-dir>"
                )
            })?;
            let entry = experiments::find(name)?;
            if command == "ib-analyze" && !entry.information_plane {
                let with: Vec<&str> = experiments::REGISTRY
                    .iter()
                    .filter(|e| e.information_plane)
                    .map(|e| e.name)
                    .collect();
                bail!(
                    "`{}` records no information plane; ib-analyze works with: {}",
                    entry.name,
                    with.join(", ")
                );
            }
            let r = resolve(g, entry, &args.overrides)?;
            let text = r.text(entry)?;
            let seed = r.seed;
            let mut ctx = match &args.run_dir {
                Some(dir) => RunContext::create_at(dir, &opts, entry.name, command, &text, seed)?,
                None => RunContext::create(&opts, entry.name, command, &text, seed)?,
            };
            if args.name.is_some() || !args.tags.is_empty() {
                ctx.info.name = args.name.clone();
                ctx.info.tags = args.tags.clone();
                ctx.write_info()?;
            }
            (ctx, r.table, r.thresholds, entry)
        }
    };
    ctx.interrupt = run::signals::Interrupt::install().context("installing signal handlers")?;
    if !ctx.quiet {
        eprintln!(
            "[{}] run directory {} (device {}, seed {})",
            entry.name,
            ctx.dir.display(),
            ctx.info.device,
            ctx.seed
        );
    }
    let outcome = (entry.train)(&table, &mut ctx);
    // The paper's claims, from the files the run wrote (what `stochlab check` recomputes).
    let checked = match outcome {
        Ok(Outcome::Completed) if !entry.claims.is_empty() => {
            let c = crate::claims::evaluate(entry, &ctx.dir, &table, &thresholds, ctx.smoke);
            crate::claims::write_csv(&ctx.dir, &c)?;
            ctx.info.claims = Some(crate::claims::counts(&c));
            Some(c)
        }
        _ => None,
    };
    let code = ctx.finish(&outcome)?;
    let outcome = outcome?;
    println!("{}", summary(&ctx, outcome));
    if let Some(c) = checked.filter(|_| !ctx.quiet) {
        let n = crate::claims::counts(&c);
        println!(
            "claims of the paper ({} pass, {} fail, {} n/a) -> {}",
            n.pass,
            n.fail,
            n.na,
            ctx.dir.join(crate::claims::CLAIMS_CSV).display()
        );
        print!("{}", crate::claims::render(&c));
    }
    if args.plot && outcome == Outcome::Completed {
        let figures: Vec<String> = crate::plot::plot(&ctx.dir)?
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "png"))
            .map(|p| p.display().to_string())
            .collect();
        println!("figures: {}", figures.join(" "));
    }
    Ok(code)
}

fn reopen(
    g: &GlobalOpts,
    args: &TrainArgs,
    dir: &Path,
    opts: &RunOptions,
) -> Result<(
    RunContext,
    toml::Table,
    crate::claims::Thresholds,
    &'static Entry,
)> {
    // With --resume the experiment name is optional, so a lone override lands in its place.
    let stray = args.experiment.as_deref().is_some_and(|e| e.contains('='));
    if args.name.is_some() || !args.tags.is_empty() {
        bail!("--resume keeps the run's name and tags; drop --name and --tag");
    }
    if stray || !args.overrides.is_empty() || g.seed.is_some() || g.config.is_some() || g.smoke {
        bail!("--resume continues a run with its saved config.toml and seed; drop the overrides, --seed, --config and --smoke");
    }
    let (ctx, text) = RunContext::reopen(dir, opts)?;
    let entry = experiments::find(&ctx.info.experiment)?;
    if let Some(name) = args.experiment.as_deref().filter(|n| *n != entry.name) {
        bail!(
            "{} is a run of `{}`, not `{name}`",
            dir.display(),
            entry.name
        );
    }
    let mut table = config::parse_toml(&text, &dir.join(run::CONFIG_TOML).display().to_string())?;
    table.remove(config::SEED_KEY);
    let section = match table.remove(crate::claims::SECTION) {
        Some(toml::Value::Table(t)) => Some(t),
        _ => None,
    };
    let thresholds = crate::claims::Thresholds::from_table(entry, section.as_ref(), false)?;
    Ok((ctx, table, thresholds, entry))
}

fn summary(ctx: &RunContext, outcome: Outcome) -> String {
    let metrics: Vec<String> = ctx
        .info
        .final_metrics
        .iter()
        .filter(|(k, _)| k.ends_with("acc") || k.ends_with("loss"))
        .map(|(k, v)| match v.as_f64() {
            Some(f) => format!("{k}={f:.4}"),
            None => format!("{k}={v}"),
        })
        .collect();
    let secs = ctx.info.seconds.unwrap_or(0.0);
    match outcome {
        Outcome::Completed => format!(
            "completed {} (seed {}) in {secs:.1}s: {} -> {}",
            ctx.info.experiment,
            ctx.seed,
            metrics.join(" "),
            ctx.dir.join(run::METRICS_CSV).display()
        ),
        Outcome::Interrupted(sig) => format!(
            "interrupted {} by signal {sig} after {secs:.1}s; continue with: stochlab train --resume {}",
            ctx.info.experiment,
            ctx.dir.display()
        ),
    }
}

fn eval(g: &GlobalOpts, args: EvalArgs) -> Result<i32> {
    let info = run::read_info(&args.run_dir)?;
    let entry = experiments::find(&info.experiment)?;
    let eval = entry
        .eval
        .ok_or_else(|| anyhow!("experiment `{}` has no eval", entry.name))?;
    let cfg_path = args.run_dir.join(run::CONFIG_TOML);
    let text = std::fs::read_to_string(&cfg_path)
        .with_context(|| format!("reading {}", cfg_path.display()))?;
    let mut table = config::parse_toml(&text, &cfg_path.display().to_string())?;
    table.remove(config::SEED_KEY);
    table.remove(crate::claims::SECTION);
    for raw in &args.overrides {
        let (k, v) = config::parse_override(raw)?;
        config::set_dotted(&mut table, &k, v)?;
    }
    let table = (entry.normalize)(&table)?;
    let opts = options(g)?;
    let input = EvalInput {
        run_dir: &args.run_dir,
        device: opts.device,
        seed: info.seed,
        data_dir: &opts.data_dir,
    };
    let (epoch, rows) = eval(&table, &input)?;

    let mut names: Vec<String> = vec![];
    for (_, metrics) in &rows {
        for (k, _) in metrics {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    let mut w = csv::Writer::from_writer(vec![]);
    let header: Vec<String> = ["checkpoint_epoch", "split", "overrides"]
        .iter()
        .map(|s| s.to_string())
        .chain(names.iter().cloned())
        .collect();
    w.write_record(&header)?;
    let mut lines = vec![];
    for (split, metrics) in &rows {
        let mut rec = vec![epoch.to_string(), split.clone(), args.overrides.join(" ")];
        for k in &names {
            let v = metrics
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| crate::run::metrics::float(*v))
                .unwrap_or_default();
            rec.push(v);
        }
        w.write_record(&rec)?;
        let shown: Vec<String> = metrics
            .iter()
            .map(|(k, v)| format!("{split}_{k}={v:.4}"))
            .collect();
        lines.push(shown.join(" "));
    }
    let out = args.run_dir.join("eval.csv");
    fsutil::write_atomic(&out, &w.into_inner()?)?;
    println!(
        "eval {} at epoch {epoch}: {} -> {}",
        info.experiment,
        lines.join(" "),
        out.display()
    );
    Ok(0)
}

fn data_list(g: &GlobalOpts) -> Result<i32> {
    use crate::data::files::{self, FileState};
    let dir = g.data_dir.clone().unwrap_or_else(|| PathBuf::from("data"));
    println!("data folder: {}", dir.display());
    for name in crate::data::GENERATED {
        println!("{name:14} generated   always available");
    }
    for set in files::FILE_SETS {
        let mut bytes = 0u64;
        let states: Vec<FileState> = set
            .files
            .iter()
            .map(|f| {
                bytes += std::fs::metadata(dir.join(set.dir).join(f)).map_or(0, |m| m.len());
                files::file_state(&dir, set.dir, f)
            })
            .collect();
        let state = if states.iter().all(|s| *s == FileState::Verified) {
            format!("present     verified, {:.1} MB", bytes as f64 / 1e6)
        } else if states.contains(&FileState::Mismatch) {
            format!("CORRUPT     checksum mismatch: run `{}` again", set.fetch)
        } else if states.contains(&FileState::Missing) {
            if set.fetch.starts_with("make") {
                format!("missing     get it with `{}`", set.fetch)
            } else {
                format!("missing     {} {}/", set.fetch, dir.join(set.dir).display())
            }
        } else {
            format!(
                "present     no published checksum, {:.1} MB",
                bytes as f64 / 1e6
            )
        };
        println!("{:14} {state}", set.name);
    }
    println!(
        "{:14} derived     MNIST digits over generated colour textures (needs mnist)",
        "mnist-blend"
    );
    println!(
        "{:14} your file   data.name=csv data.path=FILE (numeric columns, integer label last)",
        "csv"
    );
    Ok(0)
}

fn bench(g: &GlobalOpts, args: BenchArgs) -> Result<i32> {
    let device = crate::device::parse(&g.device)?;
    let data_dir = g.data_dir.clone().unwrap_or_else(|| PathBuf::from("data"));
    let report = crate::bench::run(&args, device, &data_dir)?;
    println!("{report}");
    Ok(0)
}
