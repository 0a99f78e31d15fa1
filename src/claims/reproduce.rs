//! `stochlab reproduce`: each experiment's default config (or `--full`, the paper-scale one) as
//! a sweep of seeds in `results/reproduce/<name>/<target>/`, through the sweep machinery (so a
//! rerun skips finished jobs and resumes interrupted ones, and Slurm works as for sweeps), then
//! a scoreboard of every claim: `scoreboard.csv` and `scoreboard.md`.

use super::check::{self, Aggregated};
use crate::cli::{GlobalOpts, ReproduceArgs};
use crate::experiments::{self, Target};
use crate::run::fsutil::write_atomic;
use crate::sweep::spec::SweepSpec;
use crate::sweep::SweepDir;
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};

pub const SCOREBOARD_CSV: &str = "scoreboard.csv";
pub const SCOREBOARD_MD: &str = "scoreboard.md";

const COLUMNS: &[&str] = &[
    "experiment",
    "paper",
    "claim",
    "statement",
    "paper_value",
    "expected",
    "measured_mean",
    "measured_std",
    "unit",
    "seeds_judged",
    "seeds_passing",
    "verdict",
    "reason",
    "run_seconds",
    "run_dir",
    "figure",
];

/// The targets named on the command line (experiments or variants), or all of them.
fn select(args: &ReproduceArgs) -> Result<Vec<Target>> {
    let all = experiments::targets();
    if args.all {
        return Ok(all);
    }
    if args.names.is_empty() {
        bail!("name experiments to reproduce (see `stochlab list`) or pass --all");
    }
    args.names
        .iter()
        .map(|n| {
            all.iter().find(|t| t.name == n).copied().ok_or_else(|| {
                let names = all.iter().map(|t| t.name);
                match crate::config::closest(n, names) {
                    Some(c) => anyhow!("`{n}` has no claims to reproduce: did you mean `{c}`?"),
                    None => anyhow!(
                        "`{n}` has no claims to reproduce; targets: {}",
                        all.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
                    ),
                }
            })
        })
        .collect()
}

/// The built-in config a target runs at the asked scale, if it has one.
fn config_name(t: &Target, full: bool) -> Option<String> {
    let name = if full {
        format!("{}-full", t.name)
    } else {
        t.name.to_string()
    };
    crate::config::builtin(&name).map(|_| name)
}

pub fn main(g: &GlobalOpts, args: &ReproduceArgs) -> Result<i32> {
    if g.config.is_some() {
        bail!("reproduce runs each experiment's own config; drop --config (--full selects the paper-scale ones)");
    }
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let targets = select(args)?;
    let set = args.name.clone().unwrap_or_else(|| {
        if g.smoke {
            "smoke".into()
        } else if args.full {
            "full".into()
        } else {
            "cpu".into()
        }
    });
    let root = g.results.join("reproduce").join(&set);
    let mut sweeps: Vec<(Target, SweepDir)> = vec![];
    for t in &targets {
        let Some(config) = config_name(t, args.full) else {
            eprintln!(
                "[reproduce] {}: no paper-scale config (experiments/{}-full.toml); skipped",
                t.name, t.name
            );
            continue;
        };
        let spec = SweepSpec {
            name: format!("{set}-{}", t.name),
            experiment: t.entry.name.to_string(),
            command: if t.entry.information_plane {
                "ib-analyze".into()
            } else {
                "train".into()
            },
            config: config.clone(),
            seeds: Some(toml::Value::Integer(args.seeds as i64)),
            ..Default::default()
        };
        // Every job's config must resolve before anything runs.
        let mut resolving = g.clone();
        resolving.config = Some(PathBuf::from(&config));
        crate::app::resolve(&resolving, t.entry, &[])
            .with_context(|| format!("config {config} of {}", t.name))?;
        let text = toml::to_string_pretty(&spec)?;
        sweeps.push((*t, SweepDir::prepare_at(root.join(t.name), spec, &text)?));
    }
    if sweeps.is_empty() {
        bail!("nothing to reproduce at this scale");
    }
    let started = std::time::Instant::now();
    if !args.scoreboard {
        match args.backend.as_str() {
            "slurm" => {
                for (t, sd) in &sweeps {
                    let (script, id) = crate::sweep::slurm::submit(
                        sd,
                        &args.slurm.options(),
                        &crate::sweep::command::job_flags(g),
                        args.slurm.dry_run,
                    )?;
                    match id {
                        None => print!("{script}"),
                        Some(id) => println!(
                            "{}: submitted {} jobs as Slurm array {id}",
                            t.name,
                            sd.jobs.len()
                        ),
                    }
                }
                println!(
                    "when the arrays finish, write the scoreboard with the same command and --scoreboard"
                );
                return Ok(0);
            }
            "local" => {}
            other => bail!("--backend {other}: use local or slurm"),
        }
        let opts = crate::sweep::command::local_options(g, &args.pool);
        let stop = crate::sweep::command::stop_flag()?;
        for (i, (t, sd)) in sweeps.iter().enumerate() {
            if !g.quiet {
                eprintln!(
                    "[reproduce] {}/{}: {} ({} job(s)) in {}",
                    i + 1,
                    sweeps.len(),
                    t.name,
                    sd.jobs.len(),
                    sd.dir.display()
                );
            }
            if crate::sweep::run_local(sd, &opts, std::sync::Arc::clone(&stop))?.is_none() {
                eprintln!(
                    "[reproduce] interrupted; run the same command again to finish (finished jobs are kept)"
                );
                return Ok(130);
            }
        }
    }
    let rows = scoreboard_rows(&sweeps)?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let (csv, md) = write_scoreboard(&root, &rows, &command, started.elapsed().as_secs_f64())?;
    print!("{}", render(&rows));
    println!("{}\n{}", csv.display(), md.display());
    let failed_jobs = sweeps
        .iter()
        .map(|(_, sd)| sd.states())
        .collect::<Result<Vec<_>>>()?
        .iter()
        .flatten()
        .filter(|s| s.status == crate::sweep::JobStatus::Failed)
        .count();
    if failed_jobs > 0 {
        eprintln!("[reproduce] {failed_jobs} job(s) failed: see `stochlab sweep status <dir>` for each experiment under {}", root.display());
        return Ok(1);
    }
    Ok(0)
}

/// One scoreboard row: a claim of one target, over its seeds.
pub struct Row {
    pub target: String,
    pub paper: String,
    pub claim: Aggregated,
    pub seconds: Option<f64>,
    pub run_dir: PathBuf,
    pub figure: Option<PathBuf>,
}

fn scoreboard_rows(sweeps: &[(Target, SweepDir)]) -> Result<Vec<Row>> {
    let mut rows = vec![];
    for (t, sd) in sweeps {
        for group in check::sweep_groups(&sd.dir, &[])? {
            let run_dir = match group.runs.as_slice() {
                [one] => one.clone(),
                _ => sd.dir.clone(),
            };
            let figure = group.runs.first().and_then(|r| figure(r));
            let mine = |id: &str| {
                t.entry
                    .claims
                    .iter()
                    .find(|c| format!("{}/{}", t.entry.name, c.id) == id)
                    .is_some_and(|c| c.belongs_to(t.entry.name, t.name))
            };
            for claim in group.claims.into_iter().filter(|c| mine(&c.id)) {
                rows.push(Row {
                    target: t.name.to_string(),
                    paper: t.entry.paper.to_string(),
                    claim,
                    seconds: group.seconds_mean,
                    run_dir: run_dir.clone(),
                    figure: figure.clone(),
                });
            }
            if group.runs.is_empty() {
                // Nothing finished: one row per claim, n/a, so the board shows the gap.
                for c in t
                    .entry
                    .claims
                    .iter()
                    .filter(|c| c.belongs_to(t.entry.name, t.name))
                {
                    rows.push(Row {
                        target: t.name.to_string(),
                        paper: t.entry.paper.to_string(),
                        claim: Aggregated {
                            id: format!("{}/{}", t.entry.name, c.id),
                            statement: c.statement.into(),
                            paper: c.paper.into(),
                            expected: c.expect.text(),
                            unit: c.unit.into(),
                            mean: None,
                            std: None,
                            judged: 0,
                            passing: 0,
                            verdict: super::Verdict::NotApplicable,
                            reason: "no finished run".into(),
                        },
                        seconds: None,
                        run_dir: sd.dir.clone(),
                        figure: None,
                    });
                }
            }
        }
    }
    Ok(rows)
}

/// The run's headline figure (drawn now through `stochlab plot`), if it has one.
fn figure(run_dir: &Path) -> Option<PathBuf> {
    match crate::plot::plot(run_dir) {
        Ok(paths) => paths
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e == "png")),
        Err(e) => {
            eprintln!(
                "[reproduce] no figure for {}: {}",
                run_dir.display(),
                crate::run::one_line(&e)
            );
            None
        }
    }
}

fn opt_num(x: Option<f64>) -> String {
    x.map(crate::run::metrics::float).unwrap_or_default()
}

fn write_scoreboard(
    root: &Path,
    rows: &[Row],
    command: &str,
    seconds: f64,
) -> Result<(PathBuf, PathBuf)> {
    let mut w = csv::Writer::from_writer(vec![]);
    w.write_record(COLUMNS)?;
    for r in rows {
        let c = &r.claim;
        w.write_record([
            r.target.clone(),
            r.paper.clone(),
            c.id.clone(),
            c.statement.clone(),
            c.paper.clone(),
            c.expected.clone(),
            opt_num(c.mean),
            opt_num(c.std),
            c.unit.clone(),
            c.judged.to_string(),
            c.passing.to_string(),
            c.verdict.as_str().into(),
            c.reason.clone(),
            r.seconds.map(|s| format!("{s:.1}")).unwrap_or_default(),
            r.run_dir.display().to_string(),
            r.figure
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ])?;
    }
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let csv_path = root.join(SCOREBOARD_CSV);
    write_atomic(&csv_path, &w.into_inner()?)?;

    let counts = |v: super::Verdict| rows.iter().filter(|r| r.claim.verdict == v).count();
    let mut md = format!(
        "# Scoreboard\n\n{} claims: **{} pass, {} fail, {} n/a**.\n\n\
         Written {} on {} ({} CPU cores), {}; this invocation took {:.0} s.\n\n\
         Command: `{command}`\n\n\
         | experiment | claim | paper says | expected | measured (mean ± std) | seeds passing | verdict | run time |\n\
         |---|---|---|---|---|---|---|---|\n",
        rows.len(),
        counts(super::Verdict::Pass),
        counts(super::Verdict::Fail),
        counts(super::Verdict::NotApplicable),
        chrono::Local::now().format("%Y-%m-%d %H:%M %Z"),
        gethostname::gethostname().to_string_lossy(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        crate::device::describe(tch::Device::Cpu),
        seconds,
    );
    for r in rows {
        let c = &r.claim;
        md.push_str(&format!(
            "| {} | {}: {} | {} | {} {} | {} | {}/{} | {} | {} |\n",
            r.target,
            c.id,
            cell(&c.statement),
            cell(&c.paper),
            c.expected,
            c.unit,
            check::mean_text(c),
            c.passing,
            c.judged,
            cell(&super::verdict_text(c.verdict, &c.reason)),
            r.seconds.map(|s| format!("{s:.0} s")).unwrap_or_default(),
        ));
    }
    let md_path = root.join(SCOREBOARD_MD);
    write_atomic(&md_path, md.as_bytes())?;
    Ok((csv_path, md_path))
}

/// Text safe inside a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn render(rows: &[Row]) -> String {
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let c = &r.claim;
            vec![
                c.id.clone(),
                c.paper.clone(),
                c.expected.clone(),
                check::mean_text(c),
                format!("{}/{}", c.passing, c.judged),
                super::verdict_text(c.verdict, &c.reason),
            ]
        })
        .collect();
    super::columns(
        &[
            "claim",
            "paper",
            "expected",
            "measured",
            "seeds passing",
            "verdict",
        ],
        &table,
    )
}

/// The README's Papers table: one row per reproduction target, with the claims that held in
/// the scoreboard at `scoreboard` (a CPU `reproduce --all`).
pub fn papers_table(scoreboard: &Path) -> Result<String> {
    let board = if scoreboard.exists() {
        Some(crate::run::table::CsvTable::read(scoreboard)?)
    } else {
        eprintln!(
            "note: {} not found; the claims column says `not run`",
            scoreboard.display()
        );
        None
    };
    let mut out = String::from(
        "| experiment | paper | family | claims held at CPU scale | command |\n|---|---|---|---|---|\n",
    );
    for t in experiments::targets() {
        let held = match &board {
            Some(b) => {
                let rows = b.select(&[("experiment", t.name)])?;
                let v = b.col("verdict")?;
                let pass = rows.iter().filter(|r| r[v] == "pass").count();
                let judged = rows.iter().filter(|r| r[v] != "n/a").count();
                if rows.is_empty() {
                    "not run".to_string()
                } else {
                    format!("{pass} of {judged} ({} n/a)", rows.len() - judged)
                }
            }
            None => "not run".into(),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | `stochlab reproduce {}` |\n",
            t.name, t.entry.paper, t.entry.family, held, t.name
        ));
    }
    Ok(out)
}
