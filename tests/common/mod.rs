//! Helpers shared by the end-to-end test files: they drive the release binary as a user would.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stochlab"));
    c.env("STOCHLAB_PROGRESS_SECS", "0");
    // The harness runs tests side by side on a small machine: one torch thread per process
    // keeps them from spinning against each other (a 5× slowdown was seen without it).
    c.env("OMP_NUM_THREADS", "1");
    c
}

pub fn run(args: &[&str], results: &Path) -> Output {
    bin()
        .args(args)
        .arg("--results")
        .arg(results)
        .output()
        .expect("binary runs")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A CSV as one map (column → cell) per row.
pub fn csv_maps(path: &Path) -> Vec<BTreeMap<String, String>> {
    maps(csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Rows of any CSV reader as maps.
pub fn maps<R: std::io::Read>(mut r: csv::Reader<R>) -> Vec<BTreeMap<String, String>> {
    let h: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    r.records()
        .map(|x| {
            h.iter()
                .cloned()
                .zip(x.unwrap().iter().map(str::to_string))
                .collect()
        })
        .collect()
}

/// An experiment's run directories in the order they started. Directory names are
/// `<second>-<random id>`, so runs started within one second would sort by their random id:
/// order by the millisecond start stamp in run.json instead, as `stochlab runs` does.
pub fn run_dirs(results: &Path, exp: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(results.join(exp))
        .map(|r| r.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort_by_key(|d| {
        let start = std::fs::read_to_string(d.join("run.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|j| j["start"].as_str().map(String::from))
            .unwrap_or_default();
        (start, d.clone())
    });
    v
}

/// The experiment's one run directory (fails if there are none or several).
pub fn only_run(results: &Path, exp: &str) -> PathBuf {
    let dirs = run_dirs(results, exp);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

/// The experiment's most recently started run directory.
pub fn latest_run(results: &Path, exp: &str) -> PathBuf {
    run_dirs(results, exp)
        .pop()
        .unwrap_or_else(|| panic!("no {exp} run under {}", results.display()))
}

/// Runs `stochlab train <exp> --smoke --plot [extra…]` into `results`, asserts it succeeded
/// and completed, and returns its run directory (the experiment's only run).
pub fn smoke_run(exp: &str, extra: &[&str], results: &Path) -> PathBuf {
    let mut args = vec!["train", exp, "--smoke", "--plot"];
    args.extend(extra);
    let out = run(&args, results);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = only_run(results, exp);
    assert_eq!(json(&dir.join("run.json"))["status"], "completed");
    dir
}

/// Asserts that the run's claims.csv lists every one of `ids`.
pub fn assert_claims(dir: &Path, ids: &[&str]) {
    let claims = read(&dir.join("claims.csv"));
    for id in ids {
        assert!(claims.contains(id), "{id} missing from {claims}");
    }
}
