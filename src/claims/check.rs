//! `stochlab check PATH... [claims.<id>=…] [--json]`: recomputes the claims of finished runs from
//! their files. A run directory gives its claims; a sweep (or a `reproduce` folder of sweeps)
//! gives, per group of jobs that differ only in the seed, each claim's mean ± std over seeds,
//! the verdict on the mean, and how many seeds pass on their own.

use super::{Checked, Expect, Verdict};
use crate::run::metrics::mean_std;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// One claim over the seeds of a group.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Aggregated {
    pub id: String,
    pub statement: String,
    pub paper: String,
    pub expected: String,
    pub unit: String,
    pub mean: Option<f64>,
    pub std: Option<f64>,
    /// Runs with a measured value that were judged (not n/a).
    pub judged: usize,
    /// Of those, how many pass on their own.
    pub passing: usize,
    pub verdict: Verdict,
    pub reason: String,
}

/// The runs of a sweep that share every override but the seed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Group {
    pub experiment: String,
    /// The shared overrides as `key=value` text (empty for a plain replicate set).
    pub overrides: String,
    pub runs: Vec<PathBuf>,
    /// Runs that are not finished (pending, running, failed, interrupted).
    pub unfinished: usize,
    pub seconds_mean: Option<f64>,
    pub claims: Vec<Aggregated>,
}

/// Aggregates the claims of several runs of one experiment and config (different seeds).
pub fn aggregate(per_run: &[Vec<Checked>]) -> Vec<Aggregated> {
    let Some(first) = per_run.first() else {
        return vec![];
    };
    first
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let all: Vec<&Checked> = per_run.iter().filter_map(|r| r.get(i)).collect();
            let judged: Vec<&Checked> = all
                .iter()
                .copied()
                .filter(|x| x.verdict != Verdict::NotApplicable)
                .collect();
            let measured: Vec<f64> = if judged.is_empty() {
                all.iter().filter_map(|x| x.measured).collect()
            } else {
                judged.iter().filter_map(|x| x.measured).collect()
            };
            let (mean, std) = if measured.is_empty() {
                (None, None)
            } else {
                let (m, s) = mean_std(&measured);
                (Some(m), Some(s))
            };
            let passing = judged.iter().filter(|x| x.verdict == Verdict::Pass).count();
            let (verdict, reason) = match (judged.is_empty(), mean) {
                (true, _) => (
                    Verdict::NotApplicable,
                    all.iter()
                        .map(|x| x.reason.clone())
                        .find(|r| !r.is_empty())
                        .unwrap_or_default(),
                ),
                (false, Some(m)) if m.is_nan() => {
                    (Verdict::Fail, "mean over seeds is NaN".to_string())
                }
                (false, Some(m)) => (verdict_of(&c.expect, m), String::new()),
                (false, None) => (Verdict::NotApplicable, "nothing measured".into()),
            };
            Aggregated {
                id: c.id.clone(),
                statement: c.statement.clone(),
                paper: c.paper.clone(),
                expected: c.expected.clone(),
                unit: c.unit.clone(),
                mean,
                std,
                judged: judged.len(),
                passing,
                verdict,
                reason,
            }
        })
        .collect()
}

fn verdict_of(e: &Expect, x: f64) -> Verdict {
    if e.holds(x) {
        Verdict::Pass
    } else {
        Verdict::Fail
    }
}

/// Groups a sweep's jobs by their overrides without the seed and checks each finished run.
pub fn sweep_groups(dir: &Path, overrides: &[String]) -> Result<Vec<Group>> {
    let sd = crate::sweep::SweepDir::open(dir)?;
    let states = sd.states()?;
    let mut keys: Vec<String> = vec![];
    let mut members: Vec<Vec<&crate::sweep::JobState>> = vec![];
    for s in &states {
        let key: Vec<String> = s
            .overrides
            .iter()
            .filter(|(k, _)| k.as_str() != crate::config::SEED_KEY)
            .map(|(k, v)| format!("{k}={}", crate::sweep::spec::value_text(v)))
            .collect();
        let key = key.join(" ");
        match keys.iter().position(|k| *k == key) {
            Some(i) => members[i].push(s),
            None => {
                keys.push(key);
                members.push(vec![s]);
            }
        }
    }
    let mut groups = vec![];
    for (key, jobs) in keys.into_iter().zip(members) {
        let mut per_run = vec![];
        let mut runs = vec![];
        let mut seconds = vec![];
        let mut unfinished = 0;
        for s in jobs {
            let run_dir = PathBuf::from(&s.run_dir);
            let info = match crate::run::read_info(&run_dir) {
                Ok(i) if i.status == crate::run::Status::Completed => i,
                _ => {
                    unfinished += 1;
                    continue;
                }
            };
            let (_, checked) = super::check_info(&run_dir, &info, overrides)?;
            seconds.extend(info.seconds);
            per_run.push(checked);
            runs.push(run_dir);
        }
        groups.push(Group {
            experiment: sd.spec.experiment.clone(),
            overrides: key,
            runs,
            unfinished,
            seconds_mean: (!seconds.is_empty()).then(|| mean_std(&seconds).0),
            claims: aggregate(&per_run),
        });
    }
    Ok(groups)
}

/// What a path given to `check` is.
enum Target {
    Run(PathBuf),
    Sweep(PathBuf),
}

/// Run directories and sweeps under `path`: the path itself, or its children (a reproduce
/// folder of sweeps, or an experiment's folder of runs).
fn targets(path: &Path) -> Result<Vec<Target>> {
    let is_run = |p: &Path| p.join(crate::run::RUN_JSON).is_file();
    let is_sweep = |p: &Path| p.join("sweep.toml").is_file();
    if is_run(path) {
        return Ok(vec![Target::Run(path.to_path_buf())]);
    }
    if is_sweep(path) {
        return Ok(vec![Target::Sweep(path.to_path_buf())]);
    }
    if !path.is_dir() {
        bail!(
            "{} does not exist; pass a run directory (results/<experiment>/<run>) or a sweep directory",
            path.display()
        );
    }
    let mut children: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    children.sort();
    let out: Vec<Target> = children
        .into_iter()
        .filter_map(|p| {
            if is_sweep(&p) {
                Some(Target::Sweep(p))
            } else if is_run(&p) {
                Some(Target::Run(p))
            } else {
                None
            }
        })
        .collect();
    if out.is_empty() {
        bail!(
            "{} is not a run or sweep directory (no run.json or sweep.toml in it or its subfolders); pass one like results/<experiment>/<timestamp>-<id>",
            path.display()
        );
    }
    Ok(out)
}

/// `stochlab check`: prints the claims of each path; returns the exit code.
pub fn main(paths: &[PathBuf], overrides: &[String], json: bool) -> Result<i32> {
    let mut out_json = vec![];
    let mut text = String::new();
    for path in paths {
        for t in targets(path)? {
            match t {
                Target::Run(dir) => {
                    let (entry, checked) = super::check_run(&dir, overrides)?;
                    if json {
                        out_json.push(serde_json::json!({
                            "run": dir.display().to_string(),
                            "experiment": entry.name,
                            "claims": checked.iter().map(to_json).collect::<Vec<_>>(),
                        }));
                    } else {
                        let c = super::counts(&checked);
                        text.push_str(&format!(
                            "{} ({}: {} pass, {} fail, {} n/a)\n{}\n",
                            dir.display(),
                            entry.name,
                            c.pass,
                            c.fail,
                            c.na,
                            super::render(&checked)
                        ));
                    }
                }
                Target::Sweep(dir) => {
                    let groups = sweep_groups(&dir, overrides)?;
                    if json {
                        out_json.push(serde_json::json!({
                            "sweep": dir.display().to_string(),
                            "groups": groups,
                        }));
                    } else {
                        for g in &groups {
                            text.push_str(&format!(
                                "{} ({}{}): {} finished run(s){}\n{}\n",
                                dir.display(),
                                g.experiment,
                                if g.overrides.is_empty() {
                                    String::new()
                                } else {
                                    format!(" {}", g.overrides)
                                },
                                g.runs.len(),
                                if g.unfinished > 0 {
                                    format!(", {} not finished", g.unfinished)
                                } else {
                                    String::new()
                                },
                                render_aggregated(&g.claims)
                            ));
                        }
                    }
                }
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out_json)?);
    } else {
        print!("{text}");
    }
    Ok(0)
}

fn to_json(c: &Checked) -> serde_json::Value {
    serde_json::json!({
        "id": c.id,
        "statement": c.statement,
        "paper": c.paper,
        "expected": c.expected,
        "measured": c.measured,
        "unit": c.unit,
        "verdict": c.verdict,
        "reason": c.reason,
    })
}

/// mean ± std as tables show it.
pub fn mean_text(a: &Aggregated) -> String {
    match (a.mean, a.std) {
        (Some(m), Some(s)) if a.judged > 1 || s > 0.0 => {
            format!("{} ± {}", super::num(m), super::num(s))
        }
        (Some(m), _) => super::num(m),
        _ => "—".into(),
    }
}

pub fn render_aggregated(claims: &[Aggregated]) -> String {
    let rows: Vec<Vec<String>> = claims
        .iter()
        .map(|a| {
            vec![
                a.id.clone(),
                a.paper.clone(),
                a.expected.clone(),
                mean_text(a),
                format!("{}/{}", a.passing, a.judged),
                super::verdict_text(a.verdict, &a.reason),
            ]
        })
        .collect();
    super::columns(
        &[
            "claim",
            "paper",
            "expected",
            "measured (mean ± std)",
            "seeds passing",
            "verdict on the mean",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(x: Option<f64>, v: Verdict, reason: &str) -> Checked {
        Checked {
            id: "e/c".into(),
            statement: "s".into(),
            paper: "p".into(),
            expected: "≥ 1".into(),
            measured: x,
            unit: String::new(),
            verdict: v,
            reason: reason.into(),
            expect: Expect::AtLeast(1.0),
        }
    }

    #[test]
    fn verdict_is_on_the_mean_and_seeds_passing_are_counted() {
        let runs = vec![
            vec![checked(Some(0.8), Verdict::Fail, "")],
            vec![checked(Some(1.4), Verdict::Pass, "")],
            vec![checked(Some(1.1), Verdict::Pass, "")],
        ];
        let a = &aggregate(&runs)[0];
        assert!((a.mean.unwrap() - 1.1).abs() < 1e-12);
        assert!((a.std.unwrap() - 0.3).abs() < 1e-12);
        assert_eq!((a.passing, a.judged, a.verdict), (2, 3, Verdict::Pass));
        // A mean below the threshold fails even when one seed passes.
        let runs = vec![
            vec![checked(Some(0.5), Verdict::Fail, "")],
            vec![checked(Some(1.2), Verdict::Pass, "")],
        ];
        let a = &aggregate(&runs)[0];
        assert_eq!((a.passing, a.verdict), (1, Verdict::Fail));
        // All n/a: n/a with the reason, the measured mean still shown.
        let runs = vec![
            vec![checked(Some(2.0), Verdict::NotApplicable, "smoke run")],
            vec![checked(Some(4.0), Verdict::NotApplicable, "smoke run")],
        ];
        let a = &aggregate(&runs)[0];
        assert_eq!(a.verdict, Verdict::NotApplicable);
        assert_eq!(a.reason, "smoke run");
        assert_eq!(a.mean, Some(3.0));
    }
}
