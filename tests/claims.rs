//! Paper claims end to end: claims.csv at the end of a run, `stochlab check` on runs, sweeps
//! and hand-written files, and `stochlab reproduce` with its scoreboard.

mod common;

use common::{bin, csv_maps, json, run as stochlab};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A smoke ib-tishby run (under a second); returns its directory.
fn smoke_run(results: &Path, extra: &[&str]) -> PathBuf {
    let mut args = vec!["ib-analyze", "ib-tishby", "--smoke"];
    args.extend(extra);
    let out = stochlab(&args, results);
    let stdout = ok(&out);
    assert!(stdout.contains("claims of the paper"), "{stdout}");
    assert!(stdout.contains("ib-tishby/output-information"), "{stdout}");
    common::latest_run(results, "ib-tishby")
}

#[test]
fn a_run_writes_claims_csv_and_check_recomputes_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let run = smoke_run(tmp.path(), &[]);
    let written = csv_maps(&run.join("claims.csv"));
    assert_eq!(written.len(), 4);
    // A smoke run is measured but never judged.
    assert!(written.iter().all(|c| c["verdict"] == "n/a"), "{written:?}");
    assert!(written[0]["reason"].contains("smoke"), "{written:?}");
    assert!(!written[0]["measured"].is_empty());
    let info = json(&run.join("run.json"));
    assert_eq!(info["claims"]["n/a"], 4);
    // config.toml records the thresholds that applied.
    let cfg = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(cfg.contains("[claims]") && cfg.contains("output-information = 0.9"));

    let out = stochlab(&["check", run.to_str().unwrap(), "--json"], tmp.path());
    let checked: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    let claims = checked[0]["claims"].as_array().unwrap();
    assert_eq!(claims.len(), written.len());
    for (c, w) in claims.iter().zip(&written) {
        assert_eq!(c["id"], w["id"].as_str());
        assert_eq!(c["verdict"], w["verdict"].as_str());
        assert_eq!(c["reason"], w["reason"].as_str());
        match c["measured"].as_f64() {
            Some(x) => assert_eq!(x, w["measured"].parse::<f64>().unwrap()),
            None => assert!(w["measured"].is_empty()),
        }
    }
}

/// ib-tishby files written by hand: the output layer ends at 0.95 bits, two of the last four
/// hidden layers compress (by 1 and 0.6 bits), and there is no grads.csv.
fn hand_written_run(results: &Path) -> PathBuf {
    let run = smoke_run(results, &[]);
    let mut info = json(&run.join("run.json"));
    info["smoke"] = serde_json::Value::Bool(false);
    std::fs::write(run.join("run.json"), info.to_string()).unwrap();
    let mut ib = String::from("seed,epoch,layer,estimator,I_XT,I_TY,units\n");
    for (epoch, xt) in [
        (0, [3.0, 3.0, 3.0]),
        (10, [5.0, 5.0, 3.0]),
        (20, [4.0, 4.4, 3.0]),
    ] {
        for layer in 1..=6 {
            let i_xt = match layer {
                2 => xt[0],
                3 => xt[1],
                _ => xt[2],
            };
            let i_ty = if layer == 6 && epoch == 20 { 0.95 } else { 0.5 };
            ib.push_str(&format!("0,{epoch},{layer},bin-fixed,{i_xt},{i_ty},bits\n"));
        }
    }
    std::fs::write(run.join("ib.csv"), ib).unwrap();
    std::fs::remove_file(run.join("grads.csv")).unwrap();
    run
}

#[test]
fn check_judges_hand_written_files_and_overrides_flip_verdicts() {
    let tmp = tempfile::tempdir().unwrap();
    let run = hand_written_run(tmp.path());
    let dir = run.to_str().unwrap();
    let verdicts = |args: &[&str]| -> BTreeMap<String, (String, String)> {
        let mut a = vec!["check", dir, "--json"];
        a.extend(args);
        let v: serde_json::Value = serde_json::from_str(&ok(&stochlab(&a, tmp.path()))).unwrap();
        v[0]["claims"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["id"].as_str().unwrap().to_string(),
                    (
                        c["verdict"].as_str().unwrap().to_string(),
                        c["reason"].as_str().unwrap().to_string(),
                    ),
                )
            })
            .collect()
    };
    let v = verdicts(&[]);
    assert_eq!(v["ib-tishby/output-information"].0, "pass");
    assert_eq!(v["ib-tishby/compression"].0, "pass");
    assert_eq!(
        v["ib-tishby/snr-drop"],
        (
            "n/a".to_string(),
            "grads.csv missing in the run directory".to_string()
        )
    );
    assert!(v["ib-tishby/relu-no-compression"].1.contains("relu"));
    let v = verdicts(&["claims.output-information=0.99", "claims.compression=3"]);
    assert_eq!(v["ib-tishby/output-information"].0, "fail");
    assert_eq!(v["ib-tishby/compression"].0, "fail");
    // The table form says the same and exits 0: a failed claim is a result.
    let out = stochlab(&["check", dir, "claims.compression=3"], tmp.path());
    let text = ok(&out);
    assert!(text.contains("1 pass, 1 fail, 2 n/a"), "{text}");
}

#[test]
fn bad_claim_input_gets_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = stochlab(
        &["ib-analyze", "ib-tishby", "--smoke", "claims.compresion=1"],
        tmp.path(),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "unknown claim `claims.compresion` of ib-tishby: did you mean `claims.compression`?"
        ),
        "{err}"
    );
    assert!(
        !tmp.path().join("ib-tishby").exists(),
        "no run directory left behind"
    );

    let run = smoke_run(tmp.path(), &[]);
    let out = stochlab(
        &["check", run.to_str().unwrap(), "claims.nope=1"],
        tmp.path(),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown claim `claims.nope`"));

    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = stochlab(&["check", empty.to_str().unwrap()], tmp.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a run or sweep directory"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn check_on_a_sweep_aggregates_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    let out = stochlab(
        &[
            "sweep",
            "ib-tishby",
            "seed=0..2",
            "--smoke",
            "--name",
            "seeds",
            "--quiet",
        ],
        tmp.path(),
    );
    ok(&out);
    let sweep = tmp.path().join("sweeps/seeds");
    let out = stochlab(&["check", sweep.to_str().unwrap(), "--json"], tmp.path());
    let v: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    let group = &v[0]["groups"][0];
    let runs = group["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    // The mean is the mean of the runs' own measured values.
    let id = "ib-tishby/output-information";
    let per_run: Vec<f64> = runs
        .iter()
        .map(|r| {
            let rows = csv_maps(&Path::new(r.as_str().unwrap()).join("claims.csv"));
            rows.iter().find(|c| c["id"] == id).unwrap()["measured"]
                .parse()
                .unwrap()
        })
        .collect();
    let claim = group["claims"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap();
    let mean = per_run.iter().sum::<f64>() / 3.0;
    assert!((claim["mean"].as_f64().unwrap() - mean).abs() < 1e-12);
    assert!(claim["std"].as_f64().unwrap() > 0.0, "seeds differ");
    assert_eq!(claim["verdict"], "n/a");
    let text = ok(&stochlab(&["check", sweep.to_str().unwrap()], tmp.path()));
    assert!(
        text.contains("3 finished run(s)") && text.contains(" ± "),
        "{text}"
    );
}

#[test]
fn reproduce_stopped_with_sigterm_completes_each_job_once_on_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "reproduce",
        "ib-tishby",
        "ib-tishby-relu",
        "--smoke",
        "--seeds",
        "3",
        "--results",
        tmp.path().to_str().unwrap(),
    ];
    let mut child = bin()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("1/3 done") {
            break;
        }
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    for _ in lines {}
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let root = tmp.path().join("reproduce/smoke");
    assert!(!root.join("scoreboard.csv").exists());
    let started = |target: &str| -> BTreeMap<String, String> {
        std::fs::read_dir(root.join(target).join("runs"))
            .map(|d| {
                d.map(|e| e.unwrap().path())
                    .filter(|p| p.join("run.json").exists())
                    .map(|p| {
                        let info = json(&p.join("run.json"));
                        (
                            p.display().to_string(),
                            format!("{} {}", info["start"], info["status"]),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = started("ib-tishby");
    let done_before: Vec<&String> = before
        .iter()
        .filter(|(_, s)| s.ends_with("\"completed\""))
        .map(|(p, _)| p)
        .collect();
    assert!(!done_before.is_empty(), "{before:?}");

    let out = bin().args(args).output().unwrap();
    let stdout = ok(&out);
    assert!(stdout.contains("scoreboard.csv"), "{stdout}");
    let after = started("ib-tishby");
    for p in done_before {
        assert_eq!(before[p], after[p], "a finished job ran again: {p}");
    }
    for target in ["ib-tishby", "ib-tishby-relu"] {
        let runs = started(target);
        assert_eq!(runs.len(), 3, "{target}: {runs:?}");
        assert!(
            runs.values().all(|s| s.ends_with("\"completed\"")),
            "{runs:?}"
        );
    }
    // One row per claim of each target: 3 for the tanh network, 1 for the ReLU control.
    let board = csv_maps(&root.join("scoreboard.csv"));
    let rows = |t: &str| board.iter().filter(|r| r["experiment"] == t).count();
    assert_eq!(
        (rows("ib-tishby"), rows("ib-tishby-relu")),
        (3, 1),
        "{board:?}"
    );
    assert!(board
        .iter()
        .all(|r| r["verdict"] == "n/a" && r["seeds_judged"] == "0"));
    assert!(
        board.iter().all(|r| !r["measured_mean"].is_empty()),
        "{board:?}"
    );
    let md = std::fs::read_to_string(root.join("scoreboard.md")).unwrap();
    assert!(
        md.contains("| ib-tishby-relu | ib-tishby/relu-no-compression"),
        "{md}"
    );
}

#[test]
fn list_groups_by_family_and_prints_the_papers_table() {
    let tmp = tempfile::tempdir().unwrap();
    let text = ok(&stochlab(&["list"], tmp.path()));
    assert!(text.contains("information/ — "), "{text}");
    assert!(
        text.contains("(4 claims; variants: ib-tishby-relu)"),
        "{text}"
    );
    let board = tmp.path().join("board.csv");
    std::fs::write(
        &board,
        "experiment,claim,verdict\nib-tishby,a,pass\nib-tishby,b,fail\nib-tishby,c,n/a\n",
    )
    .unwrap();
    let md = ok(&stochlab(
        &[
            "list",
            "--markdown",
            "--scoreboard",
            board.to_str().unwrap(),
        ],
        tmp.path(),
    ));
    assert!(md.starts_with("| experiment | paper | family |"), "{md}");
    assert!(
        md.contains("| `ib-tishby` | Opening the Black Box") && md.contains("| 1 of 2 (1 n/a) |"),
        "{md}"
    );
    assert!(
        md.contains("| `ib-tishby-relu` |") && md.contains("not run"),
        "{md}"
    );
}

#[test]
fn the_make_run_command_prints_claims_and_its_figure() {
    // `make run` is `ib-analyze ib-tishby --plot` at paper settings; the same at smoke size.
    let tmp = tempfile::tempdir().unwrap();
    let stdout = ok(&stochlab(
        &["ib-analyze", "ib-tishby", "--plot", "--smoke"],
        tmp.path(),
    ));
    assert!(
        stdout.contains("claim ") && stdout.contains("verdict"),
        "{stdout}"
    );
    let figures = stdout
        .lines()
        .find_map(|l| l.strip_prefix("figures: "))
        .unwrap_or_else(|| panic!("no figures line: {stdout}"));
    let plane = figures
        .split(' ')
        .find(|p| p.ends_with("information_plane.png"))
        .unwrap_or_else(|| panic!("{figures}"));
    assert!(Path::new(plane).is_file(), "{plane}");
}
