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
    if g.data_dir.is_none() {
        // No folder named: ./data first, then the binary's repository's data/.
        crate::data::files::set_fallbacks(crate::data::files::repository_data_dirs());
    }
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
    let fresh = args.resume.is_none();
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
    if fresh && outcome.is_err() && !ctx.wrote_results() {
        // Failed while setting up (a config the data or model reject): nothing ran, so no run
        // directory is left behind; the error says why.
        if std::fs::remove_dir_all(&ctx.dir).is_ok() && !ctx.quiet {
            eprintln!(
                "[{}] removed {}: the run failed before it started",
                entry.name,
                ctx.dir.display()
            );
        }
        return outcome.map(|_| 1);
    }
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

/// The one override `--resume` accepts: `train.epochs=N`, to extend a run to N epochs.
const EXTEND_KEY: &str = "train.epochs";

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
    if args.name.is_some() || !args.tags.is_empty() {
        bail!("--resume keeps the run's name and tags; drop --name and --tag");
    }
    let mut overrides: Vec<&str> = args.overrides.iter().map(String::as_str).collect();
    let mut name = args.experiment.as_deref();
    if let Some(e) = name.filter(|e| e.contains('=')) {
        overrides.insert(0, e);
        name = None;
    }
    let mut extend_to = None;
    for o in &overrides {
        let (k, v) = config::parse_override(o)?;
        match (k.as_str(), v.as_integer()) {
            (EXTEND_KEY, Some(n)) if n > 0 => extend_to = Some(n as usize),
            _ => bail!("--resume continues a run with its saved config.toml and seed; drop the overrides other than {EXTEND_KEY}=N (which extends the run to N epochs), --seed, --config and --smoke"),
        }
    }
    if g.seed.is_some() || g.config.is_some() || g.smoke {
        bail!("--resume continues a run with its saved config.toml and seed; drop the overrides other than {EXTEND_KEY}=N (which extends the run to N epochs), --seed, --config and --smoke");
    }
    let info = run::read_info(dir)?;
    let entry = experiments::find(&info.experiment)?;
    if let Some(name) = name.filter(|n| *n != entry.name) {
        bail!(
            "{} is a run of `{}`, not `{name}`",
            dir.display(),
            entry.name
        );
    }
    if extend_to.is_some() && !entry.extendable {
        let with: Vec<&str> = experiments::REGISTRY
            .iter()
            .filter(|e| e.extendable)
            .map(|e| e.name)
            .collect();
        bail!(
            "`{}` cannot be extended with {EXTEND_KEY}=N; extending works for: {}",
            entry.name,
            with.join(", ")
        );
    }
    let cfg_path = dir.join(run::CONFIG_TOML);
    let origin = cfg_path.display().to_string();
    if let Some(n) = extend_to {
        // Check the longer config before touching the run.
        let text =
            std::fs::read_to_string(&cfg_path).with_context(|| format!("reading {origin}"))?;
        let mut table = config::parse_toml(&text, &origin)?;
        table.remove(config::SEED_KEY);
        table.remove(crate::claims::SECTION);
        config::set_dotted(&mut table, EXTEND_KEY, toml::Value::Integer(n as i64))?;
        (entry.normalize)(&table)?;
    }
    let (ctx, text) = RunContext::reopen(dir, opts, extend_to)?;
    let mut table = config::parse_toml(&text, &origin)?;
    table.remove(config::SEED_KEY);
    let section = match table.remove(crate::claims::SECTION) {
        Some(toml::Value::Table(t)) => Some(t),
        _ => None,
    };
    let thresholds = crate::claims::Thresholds::from_table(entry, section.as_ref(), false)?;
    if let Some(n) = extend_to {
        config::set_dotted(&mut table, EXTEND_KEY, toml::Value::Integer(n as i64))?;
        let r = Resolved {
            table: (entry.normalize)(&table)?,
            seed: ctx.seed,
            thresholds,
        };
        // config.toml is what ran: from now on, N epochs.
        fsutil::write_atomic(&cfg_path, r.text(entry)?.as_bytes())?;
        return Ok((ctx, r.table, r.thresholds, entry));
    }
    Ok((ctx, table, thresholds, entry))
}

/// A number for the summary line: integers as they are, others with four significant figures.
fn short(v: f64) -> String {
    let a = v.abs();
    if v == v.trunc() && a < 1e9 {
        format!("{v:.0}")
    } else if (1e-3..1e5).contains(&a) {
        let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
        let t = format!("{v:.decimals$}");
        if t.contains('.') {
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            t
        }
    } else {
        format!("{v:.3e}")
    }
}

/// The headline numbers of run.json's final metrics, as `key=value` words: `X_mean` and
/// `X_std` together as `X=mean±std`, integers as integers, text as it is.
pub fn headline(metrics: &serde_json::Map<String, serde_json::Value>) -> Vec<String> {
    let mut out = vec![];
    for (k, v) in metrics {
        if let Some(base) = k.strip_suffix("_std") {
            if metrics.contains_key(&format!("{base}_mean")) {
                continue;
            }
        }
        let shown = match (k.strip_suffix("_mean"), v) {
            (Some(base), serde_json::Value::Number(m)) => {
                match metrics.get(&format!("{base}_std")).and_then(|s| s.as_f64()) {
                    Some(sd) => {
                        let m = m.as_f64().unwrap_or(f64::NAN);
                        format!("{base}={}±{}", short(m), short(sd))
                    }
                    None => format!("{k}={}", short(m.as_f64().unwrap_or(f64::NAN))),
                }
            }
            (_, serde_json::Value::Number(n)) => match n.as_i64() {
                Some(i) => format!("{k}={i}"),
                None => format!("{k}={}", short(n.as_f64().unwrap_or(f64::NAN))),
            },
            (_, serde_json::Value::String(s)) => format!("{k}={s}"),
            (_, serde_json::Value::Null) => format!("{k}=NaN"),
            (_, other) => format!("{k}={other}"),
        };
        out.push(shown);
    }
    out
}

/// `0-4` for consecutive seeds, else the list.
fn seed_list(seeds: &[u64]) -> String {
    let consecutive = seeds.windows(2).all(|w| w[1] == w[0] + 1);
    match seeds {
        [one] => one.to_string(),
        [first, .., last] if consecutive => format!("{first}-{last}"),
        _ => seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(","),
    }
}

fn summary(ctx: &RunContext, outcome: Outcome) -> String {
    let secs = ctx.info.seconds.unwrap_or(0.0);
    let seeds = if ctx.info.seeds.len() > 1 {
        format!("seeds {}", seed_list(&ctx.info.seeds))
    } else {
        format!("seed {}", ctx.seed)
    };
    match outcome {
        Outcome::Completed => {
            // Point at metrics.csv when the run wrote one, else at the run directory.
            let csv = ctx.dir.join(run::METRICS_CSV);
            let target = if csv.exists() { csv } else { ctx.dir.clone() };
            format!(
                "completed {} ({seeds}) in {secs:.1}s: {} -> {}",
                ctx.info.experiment,
                headline(&ctx.info.final_metrics).join(" "),
                target.display()
            )
        }
        Outcome::Interrupted(sig) => format!(
            "interrupted {} by signal {sig} after {secs:.1}s; continue with: stochlab train --resume {}",
            ctx.info.experiment,
            ctx.dir.display()
        ),
    }
}

/// The experiments `eval` supports, for its error (and `--help`, checked by a test).
pub fn eval_support() -> String {
    let with: Vec<&str> = experiments::REGISTRY
        .iter()
        .filter(|e| e.eval.is_some())
        .map(|e| e.name)
        .collect();
    let nested: Vec<&str> = experiments::REGISTRY
        .iter()
        .filter(|e| e.nested_runs)
        .map(|e| e.name)
        .collect();
    format!(
        "eval supports {}, and the nested runs of {} (stochlab eval <run>/runs/<name>)",
        with.join(", "),
        nested.join(", ")
    )
}

fn eval(g: &GlobalOpts, args: EvalArgs) -> Result<i32> {
    let info = run::read_info(&args.run_dir)?;
    let entry = experiments::find(&info.experiment)?;
    let Some(eval) = entry.eval else {
        let mut msg = format!(
            "experiment `{}` has no eval: {}",
            entry.name,
            eval_support()
        );
        if entry.nested_runs {
            let runs: Vec<String> = std::fs::read_dir(args.run_dir.join("runs"))
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .filter_map(|e| e.file_name().into_string().ok())
                        .collect()
                })
                .unwrap_or_default();
            let mut runs = runs;
            runs.sort();
            if !runs.is_empty() {
                msg += &format!("; this run's nested runs: {}", runs.join(", "));
            }
        }
        bail!("{msg}");
    };
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
    let found = run::checkpoint::latest(&args.run_dir)?;
    if let Some(note) = &found.note {
        eprintln!("warning: {}: {note}", args.run_dir.display());
    }
    let input = EvalInput {
        run_dir: &args.run_dir,
        checkpoint: &found.checkpoint,
        device: opts.device,
        seed: info.seed,
        data_dir: &opts.data_dir,
    };
    let rows = eval(&table, &input)?;
    let epoch = found.checkpoint.state()?.epoch;
    let out = args.run_dir.join("eval.csv");
    append_eval(&out, epoch, &args.overrides.join(" "), &rows)?;
    println!(
        "eval {} at epoch {epoch}: {} -> {}",
        info.experiment,
        eval_line(&rows).join(" "),
        out.display()
    );
    Ok(0)
}

/// Appends rows to eval.csv (creating it), widening its header when these rows bring new
/// metrics, so evaluations under different overrides accumulate.
fn append_eval(
    path: &Path,
    epoch: usize,
    overrides: &str,
    rows: &[experiments::EvalRow],
) -> Result<()> {
    use crate::run::metrics::Cell;
    let (mut header, mut old) = if path.exists() {
        crate::run::metrics::read_table(path)?
    } else {
        (vec![], vec![])
    };
    for (i, fixed) in ["checkpoint_epoch", "split", "overrides", "evaluated_at"]
        .iter()
        .enumerate()
    {
        if !header.iter().any(|h| h == fixed) {
            let at = i.min(header.len());
            header.insert(at, fixed.to_string());
            for r in &mut old {
                r.insert(at.min(r.len()), String::new());
            }
        }
    }
    for (_, metrics) in rows {
        for (k, _) in metrics {
            if !header.contains(k) {
                header.push(k.clone());
            }
        }
    }
    for r in &mut old {
        r.resize(header.len(), String::new());
    }
    let at = chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    for (split, metrics) in rows {
        let rec: Vec<String> = header
            .iter()
            .map(|h| match h.as_str() {
                "checkpoint_epoch" => epoch.to_string(),
                "split" => split.clone(),
                "overrides" => overrides.to_string(),
                "evaluated_at" => at.clone(),
                k => metrics
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v): &(String, Cell)| v.render())
                    .unwrap_or_default(),
            })
            .collect();
        old.push(rec);
    }
    let refs: Vec<&str> = header.iter().map(String::as_str).collect();
    fsutil::write_atomic(path, &crate::experiments::children::csv_bytes(&refs, &old)?)
}

/// Per split: its metrics, as mean±std over rows when the split has several (seeds).
fn eval_line(rows: &[experiments::EvalRow]) -> Vec<String> {
    let mut splits: Vec<&str> = vec![];
    for (s, _) in rows {
        if !splits.contains(&s.as_str()) {
            splits.push(s);
        }
    }
    let mut out = vec![];
    for split in splits {
        let mine: Vec<&experiments::EvalRow> = rows.iter().filter(|r| r.0 == split).collect();
        for (k, _) in &mine[0].1 {
            if k == "seed" || k == "n" {
                continue;
            }
            let v: Vec<f64> = mine
                .iter()
                .filter_map(|r| r.1.iter().find(|(n, _)| n == k))
                .filter_map(|(_, c)| c.as_f64())
                .collect();
            if v.len() > 1 {
                let (m, sd) = crate::run::metrics::mean_std(&v);
                out.push(format!(
                    "{split}_{k}={}±{} ({} seeds)",
                    short(m),
                    short(sd),
                    v.len()
                ));
            } else if let Some(x) = v.first() {
                out.push(format!("{split}_{k}={}", short(*x)));
            }
        }
    }
    out
}

fn data_list(g: &GlobalOpts) -> Result<i32> {
    use crate::data::files::{self, FileState};
    let first = g.data_dir.clone().unwrap_or_else(|| PathBuf::from("data"));
    let folders: Vec<String> = files::search_path(&first)
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    println!("data folder: {}", folders.join(", then "));
    for name in crate::data::GENERATED {
        println!("{name:14} generated   always available");
    }
    for set in files::FILE_SETS {
        // Where a run would read it from: the first folder holding every file.
        let dir = files::locate(&first, set).unwrap_or_else(|| first.clone());
        let mut bytes = 0u64;
        let states: Vec<FileState> = set
            .files
            .iter()
            .map(|f| {
                bytes += std::fs::metadata(dir.join(set.dir).join(f)).map_or(0, |m| m.len());
                files::file_state(&dir, set.dir, f)
            })
            .collect();
        let place = if dir != first {
            format!(" (in {})", dir.display())
        } else {
            String::new()
        };
        let state = if states.iter().all(|s| *s == FileState::Verified) {
            format!("present     verified, {:.1} MB{place}", bytes as f64 / 1e6)
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
                "present     no published checksum, {:.1} MB{place}",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_help_names_exactly_the_experiments_that_support_it() {
        let help = Cli::command()
            .find_subcommand("eval")
            .and_then(|c| c.get_about().map(|a| a.to_string()))
            .unwrap_or_default();
        let support = eval_support();
        for e in experiments::REGISTRY {
            let supported = e.eval.is_some() || e.nested_runs;
            assert_eq!(help.contains(e.name), supported, "{}: {help}", e.name);
            assert_eq!(support.contains(e.name), supported, "{}: {support}", e.name);
        }
    }

    #[test]
    fn headline_pairs_means_with_stds_and_keeps_integers() {
        let m: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
            r#"{"test_acc_mean": 0.958, "test_acc_std": 0.0042, "seeds": 5, "lr": 0.003, "units": "nats", "x": 1.5e-7}"#,
        )
        .unwrap();
        assert_eq!(
            headline(&m),
            [
                "test_acc=0.958±0.0042",
                "seeds=5",
                "lr=0.003",
                "units=nats",
                "x=1.500e-7"
            ]
        );
        assert_eq!(seed_list(&[0, 1, 2, 3, 4]), "0-4");
        assert_eq!(seed_list(&[3, 7]), "3,7");
    }
}
