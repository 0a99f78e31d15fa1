//! End-to-end tests: they drive the release binary as a user would.

mod common;

use common::{bin, csv_maps, json, read, run, run_dirs, text};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The single classifier run directory under results/classifier/.
fn only_run(results: &Path) -> PathBuf {
    common::only_run(results, "classifier")
}

#[test]
fn list_names_the_experiments() {
    let out = bin().arg("list").output().unwrap();
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("classifier"));
}

#[test]
fn smoke_train_writes_a_complete_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        &["train", "classifier", "--smoke", "--device", "cpu"],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = only_run(tmp.path());
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.len() == "20260101-120000-abcdef".len() && name.as_bytes()[8] == b'-',
        "{name}"
    );

    let info = json(&dir.join("run.json"));
    assert_eq!(info["status"], "completed");
    assert_eq!(info["experiment"], "classifier");
    assert_eq!(info["device"], "cpu");
    assert_eq!(info["seed"], 0);
    assert!(info["torch_version"]
        .as_str()
        .unwrap()
        .starts_with("2.11.0"));
    assert!(info["command_line"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "--smoke"));
    assert!(info["final_metrics"]["test_acc"].as_f64().unwrap() > 0.5);

    let csv = read(&dir.join("metrics.csv"));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "epoch,step,lr,train_loss,train_acc,test_loss,test_acc"
    );
    assert_eq!(lines.len(), 4, "header + 3 smoke epochs:\n{csv}");
    let config = read(&dir.join("config.toml"));
    assert!(
        config.starts_with("seed = 0") && config.contains("epochs = 3"),
        "{config}"
    );
    // What ran, not placeholders: Adam's eps is 1e-8, not "0 = default".
    let cfg: toml::Table = config.parse().unwrap();
    assert_eq!(cfg["optim"]["eps"].as_float(), Some(1e-8), "{config}");
    assert!(dir.join("checkpoints/latest").exists());
    // The commit the binary was built from, and the binary.
    let commit = info["build_git_commit"].as_str().unwrap_or_default();
    assert!(
        commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()),
        "{info}"
    );
    assert!(info["build_git_dirty"].is_boolean(), "{info}");
    assert!(info["binary"].as_str().unwrap().ends_with("stochlab"));
    // The summary names the CSV and states the numbers.
    let line = text(&out.stdout);
    assert!(
        line.contains("metrics.csv") && line.contains("test_acc=") && line.contains("epoch=3"),
        "{line}"
    );
}

#[test]
fn same_seed_gives_identical_metrics_and_another_seed_differs() {
    let tmp = tempfile::tempdir().unwrap();
    let csv_of = |seed: &str| {
        let r = tmp
            .path()
            .join(format!("r{seed}-{}", run_dirs(tmp.path(), "").len()));
        let out = run(
            &[
                "train",
                "classifier",
                "--smoke",
                "--device",
                "cpu",
                "--seed",
                seed,
                "model.dropout=0.2",
            ],
            &r,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        read(&only_run(&r).join("metrics.csv"))
    };
    let a = csv_of("7");
    let b = csv_of("7");
    assert_eq!(a, b);
    assert_ne!(a, csv_of("8"));
}

#[test]
fn eval_reproduces_the_recorded_test_accuracy() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        &["train", "classifier", "--smoke", "model.dropout=0.3"],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = only_run(tmp.path());
    let recorded = json(&dir.join("run.json"))["final_metrics"]["test_acc"]
        .as_f64()
        .unwrap();

    let out = bin().arg("eval").arg(&dir).arg("--quiet").output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = read(&dir.join("eval.csv"));
    let mut rdr = csv::Reader::from_reader(csv.as_bytes());
    let headers = rdr.headers().unwrap().clone();
    let col = headers.iter().position(|h| h == "acc").unwrap();
    let test = rdr
        .records()
        .map(|r| r.unwrap())
        .find(|r| &r[1] == "test")
        .unwrap();
    assert_eq!(test[col].parse::<f64>().unwrap(), recorded, "{csv}");
}

#[test]
fn eval_rejects_a_directory_that_is_not_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = bin().arg("eval").arg(tmp.path()).output().unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("is not a run directory"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn bad_overrides_fail_with_one_line_and_no_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["optim.lrr=0.1"],
            "unknown config key `optim.lrr`: did you mean `optim.lr`?",
        ),
        (
            &["optim.lr=fast"],
            "config key `optim.lr` has the wrong type",
        ),
        (
            &["model.hidden=3"],
            "config key `model.hidden` has the wrong type",
        ),
        (&["optim.name=adm"], "did you mean `adam`"),
        (&["data.name=two-moon"], "did you mean `two-moons`"),
        (&["lr"], "is not key=value"),
        (
            &["--config", "no/such/file.toml"],
            "cannot read config file no/such/file.toml",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["train", "classifier", "--smoke"];
        args.extend_from_slice(extra);
        let out = run(&args, tmp.path());
        assert!(!out.status.success(), "{extra:?} should fail");
        let err = text(&out.stderr);
        assert!(err.contains(expected), "{extra:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{extra:?}: {err}");
    }
    // Rejected once the data are known (a CNN on a table): no run directory either.
    let out = run(
        &["train", "classifier", "--smoke", "model.arch=cnn", "-q"],
        tmp.path(),
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("needs image inputs"));
    assert!(
        run_dirs(tmp.path(), "classifier").is_empty(),
        "a rejected config made a run directory"
    );
}

#[test]
fn a_config_file_can_be_partial() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("mine.toml");
    std::fs::write(
        &cfg,
        "seed = 5\n[train]\nepochs = 2\n[data]\nname = \"xor\"\nn_train = 64\nn_test = 32\n",
    )
    .unwrap();
    let out = run(
        &[
            "train",
            "classifier",
            "--config",
            cfg.to_str().unwrap(),
            "train.batch_size=16",
        ],
        &tmp.path().join("r"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = only_run(&tmp.path().join("r"));
    let config = read(&dir.join("config.toml"));
    assert!(
        config.starts_with("seed = 5")
            && config.contains("name = \"xor\"")
            && config.contains("batch_size = 16"),
        "{config}"
    );
    assert_eq!(read(&dir.join("metrics.csv")).lines().count(), 3);
}

#[test]
fn diverging_loss_fails_the_run_without_nan_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "train",
            "classifier",
            "--smoke",
            "optim.name=sgd",
            "optim.lr=1e30",
        ],
        tmp.path(),
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("diverged at epoch 1, step"), "{err}");
    let dir = only_run(tmp.path());
    let info = json(&dir.join("run.json"));
    assert_eq!(info["status"], "failed");
    assert!(info["error"].as_str().unwrap().contains("diverged"));
    let csv = read(&dir.join("metrics.csv"));
    assert!(!csv.to_lowercase().contains("nan"), "{csv}");
}

/// Arguments for a run long enough to interrupt (a second or two on a CPU).
const LONG: &[&str] = &[
    "train",
    "classifier",
    "--device",
    "cpu",
    "data.n_train=40000",
    "train.epochs=6",
    "model.dropout=0.1",
];

/// Runs `args` into `results`; once a stderr line contains `marker` (and `delay_ms` later),
/// sends `signal`; returns how the process ended.
fn signal_after(
    args: &[&str],
    results: &Path,
    marker: &str,
    delay_ms: u64,
    signal: &str,
) -> std::process::ExitStatus {
    let mut child = bin()
        .args(args)
        .arg("--results")
        .arg(results)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains(marker) {
            break;
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(delay_ms));
    let ok = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    for _ in lines {}
    child.wait().unwrap()
}

/// Starts a long run, waits until it has finished `epochs` epochs, sends `signal`.
fn start_and_signal(results: &Path, epochs: usize, signal: &str) -> std::process::ExitStatus {
    signal_after(LONG, results, &format!("epoch {epochs}/6"), 0, signal)
}

fn uninterrupted(results: &Path) -> String {
    let out = run(LONG, results);
    assert!(out.status.success(), "{}", text(&out.stderr));
    read(&only_run(results).join("metrics.csv"))
}

#[test]
fn sigterm_checkpoints_and_resume_matches_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let expected = uninterrupted(&tmp.path().join("a"));

    let results = tmp.path().join("b");
    let status = start_and_signal(&results, 1, "-TERM");
    assert_eq!(status.code(), Some(128 + 15));
    let dir = only_run(&results);
    let info = json(&dir.join("run.json"));
    assert_eq!(info["status"], "interrupted");
    let partial = read(&dir.join("metrics.csv"));
    assert!(partial.lines().count() < 7, "stopped early:\n{partial}");

    let out = bin()
        .args(["train", "--resume"])
        .arg(&dir)
        .arg("-q")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(read(&dir.join("metrics.csv")), expected);
    let info = json(&dir.join("run.json"));
    assert_eq!(info["status"], "completed");
    assert_eq!(info["resumes"].as_array().unwrap().len(), 1);

    let again = bin()
        .args(["train", "--resume"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("already completed"));
}

#[test]
fn resume_after_sigkill_drops_rows_past_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let expected = uninterrupted(&tmp.path().join("a"));

    let results = tmp.path().join("b");
    let status = start_and_signal(&results, 2, "-KILL");
    assert!(!status.success());
    let dir = only_run(&results);
    assert_eq!(
        json(&dir.join("run.json"))["status"],
        "running",
        "a killed run cannot record its end"
    );

    let out = bin()
        .args(["train", "classifier", "--resume"])
        .arg(&dir)
        .arg("-q")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(read(&dir.join("metrics.csv")), expected);
}

#[test]
fn resume_refuses_overrides() {
    let tmp = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["train", "--resume", "x", "optim.lr=1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("drop the overrides"));
    let out = bin()
        .args(["train", "--resume"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(text(&out.stderr).contains("is not a run directory"));
}

#[test]
fn quiet_prints_only_the_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&["train", "classifier", "--smoke", "--quiet"], tmp.path());
    assert!(out.status.success());
    assert_eq!(text(&out.stderr), "");
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("completed classifier"));
}

#[test]
fn missing_sweep_files_and_wrong_commands_say_so_and_fail() {
    let out = bin().args(["sweep", "x.toml"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot read sweep file x.toml"),
        "{}",
        text(&out.stderr)
    );
    let out = bin().args(["ib-analyze", "classifier"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("ib-analyze works with: ib-tishby"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn config_completions_and_devices() {
    let out = bin()
        .args(["config", "classifier", "optim.lr=0.5", "--seed", "3"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let cfg = text(&out.stdout);
    assert!(
        cfg.starts_with("seed = 3") && cfg.contains("lr = 0.5"),
        "{cfg}"
    );
    let out = bin().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success() && text(&out.stdout).contains("stochlab"));
    let out = bin()
        .args(["train", "classifier", "--device", "tpu"])
        .output()
        .unwrap();
    assert!(text(&out.stderr).contains("use auto, cpu, cuda or cuda:N"));
}

/// `make test` fetches these small sets first (make data-sklearn data-mnist5k).
fn require_data(set: &str, target: &str) {
    let data = std::env::var("STOCHLAB_DATA").unwrap_or_else(|_| "data".into());
    assert!(
        Path::new(&data).join(set).exists(),
        "this test needs data/{set}: run `make {target}` (make test does)"
    );
}

#[test]
fn classifier_trains_on_registry_datasets_by_name() {
    require_data("sklearn", "data-sklearn");
    require_data("mnist5k", "data-mnist5k");
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "train",
            "classifier",
            "--smoke",
            "data.name=digits",
            "data.val_fraction=0.1",
            "train.epochs=5",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = only_run(tmp.path());
    let csv = read(&dir.join("metrics.csv"));
    assert!(
        csv.starts_with("epoch,step,lr,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc\n"),
        "{csv}"
    );
    assert!(
        json(&dir.join("run.json"))["final_metrics"]["test_acc"]
            .as_f64()
            .unwrap()
            > 0.5,
        "{csv}"
    );

    let r = tmp.path().join("cnn");
    let args = [
        "train",
        "classifier",
        "--smoke",
        "data.name=mnist5k",
        "model.arch=cnn",
        "model.channels=[4,8]",
        "data.augment.shift=2",
        "data.augment.rotate=10",
    ];
    let out = run(&args, &r);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let info = json(&only_run(&r).join("run.json"));
    assert!(
        info["final_metrics"]["test_acc"].as_f64().unwrap() > 0.3,
        "{info}"
    );
}

#[test]
fn data_list_reports_presence_and_missing_sets_name_their_make_target() {
    let tmp = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["data", "list", "--data-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let listing = text(&out.stdout);
    assert!(
        listing.contains("mnist          missing     get it with `make data-mnist`"),
        "{listing}"
    );
    assert!(listing.contains("two-moons      generated"), "{listing}");
    let out = run(
        &[
            "train",
            "classifier",
            "data.name=fashion-mnist",
            "--data-dir",
            tmp.path().to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("make data-fashion-mnist"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn diffgrad_smoke_writes_both_parts_and_resumes_only_unfinished_optimizers() {
    require_data("sklearn", "data-sklearn");
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&["train", "diffgrad", "--smoke"], tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = run_dirs(tmp.path(), "diffgrad").pop().unwrap();
    let functions = read(&dir.join("functions_summary.csv"));
    assert!(
        functions.starts_with("function,optimizer,x_final,f_final\n"),
        "{functions}"
    );
    assert_eq!(
        functions.lines().count(),
        1 + 3 * 8,
        "3 functions x 8 optimizers"
    );
    let summary = read(&dir.join("summary.csv"));
    assert!(
        summary.contains("\nsgd,1,0,") && summary.contains("\ndiffgrad,1,0,"),
        "{summary}"
    );
    let metrics = read(&dir.join("metrics.csv"));
    assert!(metrics.starts_with("optimizer,seed,epoch,"), "{metrics}");
    assert_eq!(
        metrics.lines().count(),
        1 + 2 * 2,
        "two optimizers x two epochs"
    );

    // Pretend the run was interrupted before diffgrad-s0 finished: resuming retrains only it.
    let sgd_info = read(&dir.join("runs/sgd-s0/run.json"));
    std::fs::remove_dir_all(dir.join("runs/diffgrad-s0")).unwrap();
    let mut info = json(&dir.join("run.json"));
    info["status"] = "interrupted".into();
    std::fs::write(dir.join("run.json"), info.to_string()).unwrap();
    let out = bin()
        .args(["train", "--resume"])
        .arg(&dir)
        .arg("-q")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        read(&dir.join("runs/sgd-s0/run.json")),
        sgd_info,
        "a completed child was touched"
    );
    assert_eq!(
        read(&dir.join("metrics.csv")),
        metrics,
        "same seeds, same rows"
    );
    assert_eq!(json(&dir.join("run.json"))["status"], "completed");
    assert_plots(&dir, &["curves.svg", "curves.png"]);
    let line = text(&out.stdout);
    assert!(
        line.contains("sgd_test_acc=") && line.contains("±"),
        "{line}"
    );

    // Only the functions part: the line states where Adam and diffGrad end, and points at the
    // run directory, not at a metrics.csv that was never written.
    let out = run(
        &[
            "train",
            "diffgrad",
            "--smoke",
            "networks.enabled=false",
            "-q",
        ],
        &tmp.path().join("f"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    assert!(
        line.contains("f1_adam_x_final=")
            && line.contains("f1_diffgrad_x_final=")
            && !line.contains("metrics.csv"),
        "{line}"
    );
}

/// The completion line states an experiment's headline numbers (not an empty list).
fn assert_headline(exp: &str, line: &str) {
    let numbers = line
        .split_once(": ")
        .map(|(_, rest)| rest.split(" -> ").next().unwrap_or(""))
        .unwrap_or("");
    assert!(
        line.starts_with(&format!("completed {exp}")) && numbers.matches('=').count() >= 2,
        "{line}"
    );
}

fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    r.records()
        .map(|x| x.unwrap().iter().map(str::to_string).collect())
        .collect()
}

#[test]
fn ib_tishby_batched_seeds_equal_sequential_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let common = [
        "ib-analyze",
        "ib-tishby",
        "--smoke",
        "train.epochs=25",
        "log.every=8",
    ];
    let mut args: Vec<&str> = common.to_vec();
    args.push("seeds=3");
    let out = run(&args, &tmp.path().join("batched"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let batched = run_dirs(&tmp.path().join("batched"), "ib-tishby")
        .pop()
        .unwrap();
    let b_metrics = csv_rows(&batched.join("metrics.csv"));
    let b_ib = csv_rows(&batched.join("ib.csv"));
    for seed in ["0", "1", "2"] {
        let r = tmp.path().join(format!("s{seed}"));
        let mut args: Vec<&str> = common.to_vec();
        args.extend(["seeds=1", "--seed", seed]);
        let out = run(&args, &r);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let single = run_dirs(&r, "ib-tishby").pop().unwrap();
        let mine = |rows: &[Vec<String>]| {
            rows.iter()
                .filter(|row| row[0] == seed)
                .cloned()
                .collect::<Vec<_>>()
        };
        let (m, bm) = (csv_rows(&single.join("metrics.csv")), mine(&b_metrics));
        assert_eq!(m.len(), bm.len());
        for (a, b) in m.iter().zip(&bm) {
            for (x, y) in a.iter().zip(b).skip(1) {
                let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
                assert!(
                    (x - y).abs() <= 1e-5 * x.abs().max(1.0),
                    "seed {seed}: {a:?} vs {b:?}"
                );
            }
        }
        let (i, bi) = (csv_rows(&single.join("ib.csv")), mine(&b_ib));
        assert_eq!(i.len(), bi.len());
        // Binning turns float-level differences (bmm over 3 vs 1 networks) into whole-bin moves;
        // one of 4096 patterns changing bin moves H(T) by at most ~(2/N)·log2 N ≈ 0.006 bits.
        let dist = |a: &Vec<String>, b: &Vec<String>, k: usize| {
            (a[k].parse::<f64>().unwrap() - b[k].parse::<f64>().unwrap()).abs()
        };
        let worst = i
            .iter()
            .zip(&bi)
            .map(|(a, b)| dist(a, b, 4).max(dist(a, b, 5)))
            .fold(0.0, f64::max);
        assert!(
            worst < 0.01,
            "seed {seed}: batched and sequential information differ by {worst} bits"
        );
        let exact = i
            .iter()
            .zip(&bi)
            .filter(|(a, b)| dist(a, b, 4) == 0.0 && dist(a, b, 5) == 0.0)
            .count();
        assert!(
            exact * 10 >= i.len() * 9,
            "seed {seed}: only {exact} of {} rows identical",
            i.len()
        );
    }
}

#[test]
fn ib_tishby_resumes_after_sigterm_and_plots() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "ib-analyze",
        "ib-tishby",
        "train.epochs=1500",
        "train.checkpoint_every=50",
        "log.schedule=every",
        "log.every=100",
    ];
    let out = run(&args, &tmp.path().join("a"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let whole = run_dirs(&tmp.path().join("a"), "ib-tishby").pop().unwrap();

    let results = tmp.path().join("b");
    let status = signal_after(&args, &results, "epoch 50/1500", 0, "-TERM");
    assert_eq!(status.code(), Some(143));
    let dir = run_dirs(&results, "ib-tishby").pop().unwrap();
    assert_eq!(json(&dir.join("run.json"))["status"], "interrupted");
    let out = bin()
        .args(["train", "--resume"])
        .arg(&dir)
        .arg("-q")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    for f in ["metrics.csv", "ib.csv", "ib_summary.csv", "grads.csv"] {
        assert_eq!(
            read(&dir.join(f)),
            read(&whole.join(f)),
            "{f} differs after resume"
        );
    }

    assert_plots(
        &dir,
        &[
            "information_plane.svg",
            "information_plane.png",
            "snr.svg",
            "snr.png",
        ],
    );
}

/// Runs `stochlab plot` on a run directory and checks each figure was drawn.
fn assert_plots(dir: &Path, figures: &[&str]) {
    let out = bin().arg("plot").arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    for f in figures {
        let len = std::fs::metadata(dir.join(f)).map_or(0, |m| m.len());
        assert!(len > 1000, "{f}: {len} bytes");
    }
}

fn jobs_csv(sweep: &Path) -> Vec<BTreeMap<String, String>> {
    csv_maps(&sweep.join("jobs.csv"))
}

/// The rows of a CSV file as maps (header → cell).

#[test]
fn sweep_runs_every_job_once_and_skips_them_when_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "sweep",
        "classifier",
        "optim.lr=0.01,0.02",
        "seed=0..1",
        "--smoke",
        "--workers",
        "2",
        "--name",
        "grid",
    ];
    let out = run(&args, tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Progress: the directory and job count, each job's overrides at its start, its
    // headline metrics at its end.
    let err = text(&out.stderr);
    assert!(
        err.contains("sweeps/grid: 4 jobs, 4 to run (0 already completed)"),
        "{err}"
    );
    assert!(err.contains(": optim.lr=0.02 seed=1\n"), "{err}");
    assert_eq!(err.matches("completed (").count(), 4, "{err}");
    assert!(err.contains("test_acc="), "{err}");
    let dir = tmp.path().join("sweeps/grid");
    assert!(read(&dir.join("sweep.toml")).contains("command = \"train\""));
    let jobs = jobs_csv(&dir);
    assert_eq!(jobs.len(), 4);
    assert!(
        jobs.iter().all(|j| j["status"] == "completed"
            && j["attempts"] == "1"
            && !j["test_acc"].is_empty()),
        "{jobs:?}"
    );
    for j in &jobs {
        assert_eq!(
            read(&Path::new(&j["run_dir"]).join("metrics.csv"))
                .lines()
                .count(),
            4
        );
    }
    let again = run(&args, tmp.path());
    assert!(again.status.success());
    assert!(
        text(&again.stderr).contains("4 jobs, 0 to run (4 already completed)"),
        "{}",
        text(&again.stderr)
    );
    assert!(
        jobs_csv(&dir).iter().all(|j| j["attempts"] == "1"),
        "completed jobs ran again"
    );

    let out = bin()
        .args(["sweep", "summary"])
        .arg(&dir)
        .args(["--group-by", "optim.lr"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = read(&dir.join("summary.csv"));
    assert!(summary.starts_with("optim.lr,count,"), "{summary}");
    assert_eq!(summary.lines().count(), 3, "{summary}");
    assert!(
        summary
            .lines()
            .skip(1)
            .all(|l| l.split(',').nth(1) == Some("2")),
        "{summary}"
    );
}

#[test]
fn a_failing_job_is_recorded_and_the_rest_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "sweep",
            "classifier",
            "optim.name=sgd",
            "optim.lr=0.01,1e30,0.02",
            "--smoke",
            "--name",
            "f",
            "-q",
        ],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let dir = tmp.path().join("sweeps/f");
    let jobs = jobs_csv(&dir);
    let failed: Vec<_> = jobs.iter().filter(|j| j["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{jobs:?}");
    assert_eq!(failed[0]["optim.lr"], "1e30");
    assert!(failed[0]["error"].contains("diverged"), "{:?}", failed[0]);
    assert_eq!(
        jobs.iter().filter(|j| j["status"] == "completed").count(),
        2
    );
    let status = bin().args(["sweep", "status"]).arg(&dir).output().unwrap();
    let report = text(&status.stdout);
    assert!(
        report.contains("2 completed")
            && report.contains("1 failed")
            && report.contains("diverged"),
        "{report}"
    );
    // A bad override is caught before any job runs.
    let out = run(
        &["sweep", "classifier", "optim.lrr=0.1,0.2", "--smoke"],
        tmp.path(),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("did you mean `optim.lr`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_interrupted_sweep_resumes_and_completes_each_job_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "sweep",
        "classifier",
        "data.n_train=20000",
        "train.epochs=4",
        "optim.lr=0.001,0.002,0.003",
        "--name",
        "long",
        "--workers",
        "1",
    ];
    let status = signal_after(&args, tmp.path(), "1/3 done", 300, "-TERM");
    assert_eq!(status.code(), Some(130));
    let dir = tmp.path().join("sweeps/long");
    let states: Vec<String> = jobs_csv(&dir).iter().map(|j| j["status"].clone()).collect();
    assert!(
        states.contains(&"completed".to_string()) && !states.iter().all(|s| s == "completed"),
        "{states:?}"
    );

    let out = run(&args, tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let jobs = jobs_csv(&dir);
    assert!(jobs.iter().all(|j| j["status"] == "completed"), "{jobs:?}");
    for j in &jobs {
        let csv = read(&Path::new(&j["run_dir"]).join("metrics.csv"));
        let epochs: Vec<&str> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap())
            .collect();
        assert_eq!(
            epochs,
            vec!["1", "2", "3", "4"],
            "job {}: {csv}",
            j["job_id"]
        );
    }
}

#[test]
fn slurm_dry_run_writes_an_array_script_and_run_task_runs_one_job() {
    let tmp = tempfile::tempdir().unwrap();
    let sweep_file = tmp.path().join("s.toml");
    std::fs::write(
        &sweep_file,
        "experiment = \"classifier\"\nseeds = 2\n[grid]\n\"optim.lr\" = [0.01, 0.02]\n",
    )
    .unwrap();
    let out = run(
        &[
            "sweep",
            sweep_file.to_str().unwrap(),
            "--smoke",
            "--backend",
            "slurm",
            "--dry-run",
            "--partition",
            "gpu",
            "--max-concurrent",
            "2",
            "--requeue",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let script = text(&out.stdout);
    assert!(
        script.contains("#SBATCH --array=0-3%2")
            && script.contains("#SBATCH --partition=gpu")
            && script.contains("#SBATCH --requeue"),
        "{script}"
    );
    assert!(
        script.contains("sweep run-task") && script.contains("--smoke"),
        "{script}"
    );
    let dir = tmp.path().join("sweeps/s");
    assert!(dir.join("sweep.sbatch").exists());
    let out = bin()
        .args(["sweep", "run-task"])
        .arg(&dir)
        .args(["--index", "2", "--smoke"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let jobs = jobs_csv(&dir);
    assert_eq!(
        jobs.iter().filter(|j| j["status"] == "completed").count(),
        1
    );
    assert_eq!(jobs.iter().filter(|j| j["status"] == "pending").count(), 3);
}

#[test]
fn a_sweep_stopped_while_its_job_starts_up_recovers_on_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "sweep",
        "classifier",
        "optim.lr=0.01,0.02",
        "--smoke",
        "--name",
        "early",
        "-q",
    ];
    let mut child = bin()
        .args(args)
        .arg("--results")
        .arg(tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Give the sweep time to start its first job, but not for the job to install its handlers.
    let dir = tmp.path().join("sweeps/early");
    for _ in 0..400 {
        if std::fs::read_dir(dir.join("logs"))
            .map(|d| d.count() > 0)
            .unwrap_or(false)
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let code = child.wait().unwrap().code();
    assert!(code == Some(130) || code == Some(0), "{code:?}");
    let out = run(&args, tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        jobs_csv(&dir).iter().all(|j| j["status"] == "completed"),
        "{:?}",
        jobs_csv(&dir)
    );
}

/// A CSV of correlated Gaussian pairs (a, b) with I(a;b) = 1 nat, a 3-class label that shifts
/// `h_0`, and an independent column; drawn with a fixed LCG + Box–Muller.
fn mi_table(path: &Path, n: usize) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let mut gauss =
        || (-2.0 * uniform().ln()).sqrt() * (2.0 * std::f64::consts::PI * uniform()).cos();
    let rho = (1.0 - (-2.0f64).exp()).sqrt();
    let mut s = String::from("a,b,label,h_0,h_1\n");
    for i in 0..n {
        let a = gauss();
        let b = rho * a + (1.0 - rho * rho).sqrt() * gauss();
        let l = i % 3;
        s.push_str(&format!(
            "{a},{b},{l},{},{}\n",
            l as f64 * 6.0 + gauss(),
            gauss()
        ));
    }
    std::fs::write(path, s).unwrap();
}

#[test]
fn mi_estimates_column_groups_of_a_users_csv() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("acts.csv");
    mi_table(&f, 4000);
    let mi = |args: &[&str]| {
        let out = bin()
            .arg("mi")
            .arg(&f)
            .args(args)
            .arg("--json")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
        (v, text(&out.stderr))
    };
    let (v, _) = mi(&["--x", "a", "--y", "b"]);
    assert!((v["mi"].as_f64().unwrap() - 1.0).abs() < 0.06, "{v}");
    let (v, _) = mi(&[
        "--x",
        "0",
        "--y",
        "1",
        "--estimator",
        "kl",
        "--units",
        "bits",
    ]);
    assert!(
        (v["mi"].as_f64().unwrap() - std::f64::consts::LOG2_E).abs() < 0.15,
        "{v}"
    );
    // An integer column is a label: three separated classes give ln 3 through h_0 (h_1 is noise).
    let (v, err) = mi(&["--x", "h*", "--y", "label", "--bootstrap", "20"]);
    assert!(
        err.contains("read as a discrete label (3 classes)"),
        "{err}"
    );
    let est = v["mi"].as_f64().unwrap();
    assert!((est - 3f64.ln()).abs() < 0.05, "{v}");
    let (lo, hi) = (
        v["ci_low"].as_f64().unwrap(),
        v["ci_high"].as_f64().unwrap(),
    );
    assert!(lo < est && est < hi && hi - lo < 0.2, "{v}");
    let (v, _) = mi(&[
        "--x",
        "3-4",
        "--y",
        "a,b",
        "--compress",
        "pca:1",
        "--fit-fraction",
        "0.5",
    ]);
    assert!(
        v["mi"].as_f64().unwrap().abs() < 0.06 && v["n"] == 2000,
        "{v}"
    );

    for (args, expect) in [
        (
            vec!["--x", "hh_0", "--y", "b"],
            "has no column `hh_0`: did you mean `h_0`?",
        ),
        (
            vec!["--x", "a", "--y", "9"],
            "column index 9 is out of range",
        ),
        (vec!["--x", "a", "--y", "a"], "in both --x and --y"),
        (
            vec!["--x", "a", "--y", "b", "--k", "0"],
            "mi.k must be at least 1",
        ),
    ] {
        let out = bin().arg("mi").arg(&f).args(&args).output().unwrap();
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains(expect),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    std::fs::write(&f, "a,b\n1,2\n3,x\n").unwrap();
    let out = bin()
        .arg("mi")
        .arg(&f)
        .args(["--x", "a", "--y", "b", "--y-type", "continuous"])
        .output()
        .unwrap();
    assert!(
        text(&out.stderr).contains("line 3, column `b`: `x` is not a number"),
        "{}",
        text(&out.stderr)
    );
}

/// Every column but the timing one.
fn without_column(csv: &str, name: &str) -> Vec<String> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let skip = header.iter().position(|h| *h == name).unwrap();
    csv.lines()
        .map(|l| {
            l.split(',')
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, c)| c)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

#[test]
fn mi_synthetic_smoke_estimates_resumes_and_plots() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&["train", "mi-synthetic", "--smoke"], &tmp.path().join("a"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let whole = run_dirs(&tmp.path().join("a"), "mi-synthetic")
        .pop()
        .unwrap();
    let csv = read(&whole.join("metrics.csv"));
    assert!(
        csv.starts_with(
            "case,estimator,compressor,n,dim,latent_dim,true_mi_nats,estimate_nats,error_nats,seconds\n"
        ),
        "{csv}"
    );
    // raw d=1,2 + embedded (2 in 64) + bump + rectangles, 2 grid points, 2 estimators.
    assert_eq!(csv.lines().count(), 1 + 5 * 2 * 2, "{csv}");
    for line in csv.lines().filter(|l| l.starts_with("raw,ksg")) {
        let err: f64 = line.split(',').nth(8).unwrap().parse().unwrap();
        assert!(err.abs() < 0.3, "{line}");
    }

    // Stopped after its first units, resumed: the same rows (timings aside).
    let results = tmp.path().join("b");
    let args = ["train", "mi-synthetic", "--smoke"];
    let status = signal_after(&args, &results, "epoch 3/10", 0, "-TERM");
    let dir = run_dirs(&results, "mi-synthetic").pop().unwrap();
    // Stopped after 3 of 10 units (the autoencoder fits still ahead take longer than a signal).
    assert_eq!(status.code(), Some(143));
    assert_eq!(json(&dir.join("run.json"))["status"], "interrupted");
    let out = bin()
        .args(["train", "--resume"])
        .arg(&dir)
        .arg("-q")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        without_column(&read(&dir.join("metrics.csv")), "seconds"),
        without_column(&csv, "seconds")
    );
    assert_plots(&whole, &["mi_estimates.png"]);
}

#[test]
fn ib_lossy_smoke_records_a_reproducible_information_plane() {
    require_data("mnist5k", "data-mnist5k");
    let tmp = tempfile::tempdir().unwrap();
    let mut planes = vec![];
    for r in ["a", "b"] {
        let out = run(&["ib-analyze", "ib-lossy", "--smoke"], &tmp.path().join(r));
        assert!(out.status.success(), "{}", text(&out.stderr));
        let dir = run_dirs(&tmp.path().join(r), "ib-lossy").pop().unwrap();
        planes.push((
            dir.clone(),
            without_column(&read(&dir.join("ib.csv")), "seconds"),
        ));
    }
    let (dir, plane) = &planes[0];
    assert_eq!(
        plane[0],
        "epoch,layer,name,width,estimator,I_XT_nats,I_TY_nats"
    );
    // Epoch 0 (untrained) and epoch 1, five layers each: conv1..3, dense1, output.
    assert_eq!(plane.len(), 1 + 2 * 5, "{plane:?}");
    assert!(plane[5].starts_with("0,5,output,10,ksg,"), "{}", plane[5]);
    assert_eq!(plane, &planes[1].1, "same seed, same information plane");
    assert_plots(dir, &["information_plane.png"]);
}

#[test]
fn sgd_noise_experiments_run_end_to_end_at_smoke_size() {
    require_data("mnist5k", "data-mnist5k");
    require_data("sklearn", "data-sklearn");
    let tmp = tempfile::tempdir().unwrap();
    for exp in ["train-longer", "lr-batch"] {
        let out = run(&["train", exp, "--smoke"], tmp.path());
        assert!(out.status.success(), "{exp}: {}", text(&out.stderr));
        assert_headline(exp, &text(&out.stdout));
    }
    let dir = |exp: &str| run_dirs(tmp.path(), exp).pop().unwrap();

    let tl = dir("train-longer");
    let summary = csv_maps(&tl.join("summary.csv"));
    let arms: Vec<&str> = summary.iter().map(|r| r["arm"].as_str()).collect();
    assert_eq!(
        arms,
        [
            "small",
            "large",
            "large-sqrt-lr",
            "large-ghost-bn",
            "large-regime"
        ]
    );
    // The regime-adapted arm makes as many updates as the small batch (B_L/B_S = 4 here).
    assert_eq!(summary[4]["epochs"], "8");
    assert_eq!(summary[0]["updates"], summary[4]["updates"]);
    assert!(
        summary[0]["updates"].parse::<i64>().is_ok(),
        "a count: {summary:?}"
    );
    // Errors are fractions, as accuracies are, everywhere.
    assert!(summary
        .iter()
        .all(|r| (0.0..=1.0).contains(&r["test_err_mean"].parse::<f64>().unwrap())));
    let info = json(&tl.join("run.json"));
    assert!(
        info["final_metrics"]["large_gap_to_small"].is_number(),
        "{info}"
    );
    let rows = csv_maps(&tl.join("metrics.csv"));
    assert!(rows
        .iter()
        .all(|r| r["dist_total"].parse::<f64>().unwrap() > 0.0));
    assert!(tl.join("runs/large-ghost-bn-s0/init.safetensors").exists());

    let lb = dir("lr-batch");
    let h = csv_maps(&lb.join("hessian.csv"));
    // Two epochs × (B = 8, 64, full batch).
    assert_eq!(h.len(), 6);
    assert!(h
        .iter()
        .all(|r| r["lambda_max_mean"].parse::<f64>().unwrap() > 0.0));
    assert_eq!(csv_maps(&lb.join("grid.csv")).len(), 2 * 2 * 3);
    assert!(read(&lb.join("summary.csv")).contains("log best lr vs log B, adam"));
    // The stability edge: 2 optimizers × B ∈ {1, 16, full} × 1 seed, each a bisection whose
    // bracket is ordered; the summary sets it next to the theory's 2/λ_max(H_B).
    let edge = csv_maps(&lb.join("edge.csv"));
    assert_eq!(edge.len(), 2 * 3);
    for r in &edge {
        let lo: f64 = r["lr_stable"].parse().unwrap();
        let hi: f64 = r["lr_unstable"].parse().unwrap();
        assert!(lo < hi, "{r:?}");
    }
    let es = csv_maps(&lb.join("edge_summary.csv"));
    assert_eq!(es.len(), 2 * 3);
    assert!(es
        .iter()
        .all(|r| r["theory_fit_2_over_lambda"].parse::<f64>().unwrap() > 0.0));
    assert!(read(&lb.join("summary.csv")).contains("log stability edge vs log B, sgd, B < c/a"));
    assert!(read(&lb.join("claims.csv")).contains("sgd-edge-slope"));

    assert_plots(&lb, &["lambda_max.png", "best_lr.png"]);
    assert_plots(&tl, &["curves.png", "distance.png"]);
}

#[test]
fn gradient_estimator_experiments_run_end_to_end_at_smoke_size() {
    require_data("mnist5k", "data-mnist5k");
    let tmp = tempfile::tempdir().unwrap();
    for exp in ["stochastic-neurons", "wta-crs", "tpsgd"] {
        let out = run(&["train", exp, "--smoke"], tmp.path());
        assert!(out.status.success(), "{exp}: {}", text(&out.stderr));
        assert_headline(exp, &text(&out.stdout));
    }
    let dir = |exp: &str| run_dirs(tmp.path(), exp).pop().unwrap();

    let sn = dir("stochastic-neurons");
    let est = csv_maps(&sn.join("estimators.csv"));
    assert_eq!(est.len(), 5);
    assert!(
        est.iter()
            .all(|r| r["cos_mean"].parse::<f64>().unwrap() > 0.0),
        "{est:?}"
    );
    let gating = csv_maps(&sn.join("gating.csv"));
    assert_eq!(gating[0]["estimator"], "ungated");
    assert_eq!(gating.len(), 1 + 5);
    assert!(gating
        .iter()
        .all(|r| r["extra_test_err"].parse::<f64>().unwrap().abs() <= 1.0));

    let wc = dir("wta-crs");
    assert_eq!(csv_maps(&wc.join("estimators.csv")).len(), 2 * 4);
    let training = csv_maps(&wc.join("training.csv"));
    let bytes = |s: &str, k: &str| {
        training
            .iter()
            .find(|r| r["sampler"] == s && r["k_fraction"] == k)
            .unwrap()["stored_activation_bytes"]
            .parse::<f64>()
            .unwrap()
    };
    // k/N = 0.1 keeps about a tenth of the rows of exact backprop.
    let ratio = bytes("wta-crs", "0.1") / bytes("exact", "1.0");
    assert!((ratio - 0.1).abs() < 0.02, "{ratio}");

    let tp = dir("tpsgd");
    let results = csv_maps(&tp.join("results.csv"));
    assert_eq!(
        results.len(),
        3 * 5,
        "the MLP, the CNN and the RNN, five rules each"
    );
    let peak = |rule: &str| {
        results
            .iter()
            .find(|r| r["rule"] == rule && r["model"] == "mlp")
            .unwrap()["peak_activation_bytes"]
            .parse::<i64>()
            .unwrap()
    };
    assert!(peak("tp-l2") < peak("backprop"));
    // One value per cell: a column per layer's final local loss, and local_losses.csv long.
    assert!(
        results[0].contains_key("final_local_loss_layer1"),
        "{results:?}"
    );
    let locals = csv_maps(&tp.join("local_losses.csv"));
    assert!(!locals.is_empty());
    assert!(
        locals
            .iter()
            .all(|r| r["local_loss"].parse::<f64>().is_ok()),
        "{locals:?}"
    );
    for f in [
        "metrics.csv",
        "results.csv",
        "local_losses.csv",
        "depth.csv",
    ] {
        assert_clean_numbers(&tp.join(f));
    }
    assert_eq!(csv_maps(&tp.join("depth.csv")).len(), 2 * 5);

    assert_plots(&sn, &["estimators.png", "gating.png"]);
    assert_plots(&wc, &["variance.png", "training.png"]);
    assert_plots(&tp, &["rules.png", "depth.png"]);
}

/// Lines of `stochlab runs`/`compare` output split into cells (CSV).
fn csv_out(out: &Output) -> Vec<BTreeMap<String, String>> {
    assert!(out.status.success(), "{}", text(&out.stderr));
    common::maps(csv::Reader::from_reader(out.stdout.as_slice()))
}

#[test]
fn runs_lists_filters_and_sorts_and_compare_shows_what_differs() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path();
    for (lr, seed, name) in [
        ("0.01", "0", "slow"),
        ("0.05", "0", "fast"),
        ("0.05", "1", "fast"),
    ] {
        let out = run(
            &[
                "train",
                "classifier",
                "--smoke",
                "-q",
                &format!("optim.lr={lr}"),
                "--seed",
                seed,
                "--name",
                name,
                "--tag",
                "lr-study",
            ],
            res,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let dirs = run_dirs(res, "classifier");
    assert_eq!(json(&dirs[0].join("run.json"))["tags"][0], "lr-study");

    let all = csv_out(&run(&["runs", "--csv"], res));
    assert_eq!(all.len(), 3);
    assert!(all
        .iter()
        .all(|r| r["status"] == "completed" && r["tags"] == "lr-study"));
    assert_eq!(all[0]["overrides"], "optim.lr=0.01");
    assert!(all[0]["test_acc"].parse::<f64>().unwrap() > 0.0);

    let fast = csv_out(&run(
        &["runs", "classifier", "--csv", "--where", "optim.lr=5e-2"],
        res,
    ));
    assert_eq!(fast.len(), 2, "0.05 and 5e-2 are the same number");
    assert!(fast.iter().all(|r| r["name"] == "fast"));
    let sorted = csv_out(&run(&["runs", "--csv", "--sort=-test_acc"], res));
    let accs: Vec<f64> = sorted
        .iter()
        .map(|r| r["test_acc"].parse().unwrap())
        .collect();
    assert!(accs.windows(2).all(|w| w[0] >= w[1]), "{accs:?}");
    assert!(csv_out(&run(&["runs", "--csv", "--status", "failed"], res)).is_empty());
    // The table on a terminal: a header and a line per run.
    let table = run(&["runs"], res);
    assert_eq!(text(&table.stdout).lines().count(), 1 + 3);

    for (args, says) in [
        (
            vec!["runs", "--where", "optim.lrr=1"],
            "no run has `optim.lrr`",
        ),
        (
            vec!["runs", "--sort", "accuracy"],
            "no run has the metric `accuracy`",
        ),
        (vec!["runs", "--status", "done"], "unknown --status `done`"),
        (vec!["runs", "classifer"], "classifer"),
    ] {
        let out = run(&args, res);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }

    let mut cmp = bin();
    cmp.args(["compare", "--csv", "--metric", "test_acc"])
        .args(&dirs);
    let rows = csv_out(&cmp.output().unwrap());
    assert_eq!(rows.len(), 3);
    // Only what differs: the learning rate and the seed, next to the chosen metric.
    let keys: Vec<&String> = rows[0].keys().collect();
    assert_eq!(
        keys,
        [
            "experiment",
            "optim.lr",
            "run",
            "seed",
            "status",
            "test_acc"
        ]
    );
    assert_eq!(rows[1]["run"], "fast");

    // Curves overlaid, grouped by the differing key with mean ± std over seeds.
    let fig = tmp.path().join("cmp.png");
    let out = bin()
        .args(["plot", "--compare", "--out"])
        .arg(&fig)
        .args(&dirs)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(std::fs::metadata(&fig).unwrap().len() > 1000);
    let out = bin().arg("plot").args(&dirs).output().unwrap();
    assert!(
        text(&out.stderr).contains("add --compare"),
        "{}",
        text(&out.stderr)
    );

    let out = bin()
        .args(["train", "--resume"])
        .arg(&dirs[0])
        .args(["--name", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("drop --name"));
}

#[test]
fn plot_options_pick_figures_and_refuse_what_they_cannot_do() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&["train", "classifier", "--smoke", "-q"], tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = only_run(tmp.path());
    let plot = |args: &[&str]| bin().arg("plot").arg(&dir).args(args).output().unwrap();

    let out = plot(&["--format", "png"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.join("curves.png").exists() && !dir.join("curves.svg").exists());
    let out = plot(&["--out", tmp.path().join("fig.svg").to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(read(&tmp.path().join("fig.svg")).starts_with("<svg"));
    for (args, says) in [
        (vec!["--format", "pdf"], "cannot write PDF"),
        (vec!["--estimator", "ksg"], "does not have"),
        (
            vec!["--figure", "phase"],
            "no figure `phase`; it has: curves",
        ),
        (vec!["--out", "x.jpg"], "name a .svg or .png file"),
    ] {
        let out = plot(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    assert!(
        !dir.join("curves.svg").exists(),
        "a refused plot writes nothing"
    );
}

/// Issue 14: a run with several seeds summarises as mean ± std over them, in the completion
/// line and in run.json; per-seed rows stay in metrics.csv, sorted by seed then epoch, with
/// the final state logged (row `epoch = e` is the state after e epochs).
#[test]
fn a_five_seed_ib_tishby_run_reports_mean_and_std_over_its_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "ib-analyze",
            "ib-tishby",
            "--smoke",
            "seeds=5",
            "train.epochs=25",
            "-q",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = run_dirs(tmp.path(), "ib-tishby").pop().unwrap();
    let info = json(&dir.join("run.json"));
    let fm = &info["final_metrics"];
    assert_eq!(fm["seeds"], 5, "{info}");
    assert_eq!(info["seeds"], serde_json::json!([0, 1, 2, 3, 4]));
    let rows = csv_maps(&dir.join("metrics.csv"));
    let finals: Vec<f64> = rows
        .iter()
        .filter(|r| r["epoch"] == "25")
        .map(|r| r["test_acc"].parse().unwrap())
        .collect();
    assert_eq!(finals.len(), 5, "the final state of each seed is logged");
    let mean = finals.iter().sum::<f64>() / 5.0;
    let std = (finals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0).sqrt();
    let got_mean = fm["test_acc_mean"].as_f64().unwrap();
    let got_std = fm["test_acc_std"].as_f64().unwrap();
    assert!(
        (got_mean - mean).abs() < 1e-12 && (got_std - std).abs() < 1e-12,
        "{fm}"
    );
    assert!(
        fm.get("seed").is_none() && fm.get("test_acc").is_none(),
        "{fm}"
    );
    let line = text(&out.stdout);
    assert!(
        line.starts_with("completed ib-tishby (seeds 0-4)")
            && line.contains("test_acc=")
            && line.contains('±')
            && line.contains("seeds=5"),
        "{line}"
    );
    // Long format: seed, then epoch; epochs are counts (integers); 0, every 10th, the final.
    let keys: Vec<(u64, u64)> = rows
        .iter()
        .map(|r| (r["seed"].parse().unwrap(), r["epoch"].parse().unwrap()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "rows sorted by seed then epoch");
    let epochs: Vec<u64> = keys.iter().filter(|k| k.0 == 0).map(|k| k.1).collect();
    assert_eq!(epochs, [0, 10, 20, 25]);
    let grads = csv_maps(&dir.join("grads.csv"));
    assert_eq!(
        grads[0]["epoch"], "10",
        "gradients of epoch 10 (the first 10 epochs' last)"
    );
    assert!(csv_maps(&dir.join("ib.csv"))[0].contains_key("I_XT_bits"));
    for f in ["metrics.csv", "ib.csv", "grads.csv", "ib_summary.csv"] {
        assert_clean_numbers(&dir.join(f));
    }
}

/// Every number in a CSV has at most 15 significant digits (no 0.30000000000000004, no
/// float32 read back as 0.10000000149011612) and counts have no decimal point.
fn assert_clean_numbers(path: &Path) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    for rec in r.records() {
        for (h, cell) in header.iter().zip(rec.unwrap().iter()) {
            if cell.parse::<f64>().is_err() {
                continue;
            }
            let mantissa = cell.split(['e', 'E']).next().unwrap();
            let digits = mantissa
                .chars()
                .filter(char::is_ascii_digit)
                .collect::<String>()
                .trim_start_matches('0')
                .trim_end_matches('0')
                .len();
            assert!(digits <= 15, "{}: {h} = {cell}", path.display());
            if ["seed", "epoch", "layer", "seeds", "step", "n"].contains(&h.as_str()) {
                assert!(
                    cell.parse::<i64>().is_ok(),
                    "{}: count {h} = {cell}",
                    path.display()
                );
            }
        }
    }
}

/// The same run extended to more epochs appends exactly the new epochs, and equals a run that
/// trained that long at once.
#[test]
fn extending_a_finished_run_appends_exactly_the_new_epochs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        &["train", "classifier", "--smoke", "-q"],
        &tmp.path().join("a"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = only_run(&tmp.path().join("a"));
    let before = read(&dir.join("metrics.csv"));
    let out = bin()
        .args(["train", "--resume"])
        .arg(&dir)
        .args(["train.epochs=5", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let after = read(&dir.join("metrics.csv"));
    assert!(after.starts_with(&before), "earlier rows kept:\n{after}");
    let epochs: Vec<&str> = after
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(epochs, ["1", "2", "3", "4", "5"]);
    let once = run(
        &["train", "classifier", "--smoke", "train.epochs=5", "-q"],
        &tmp.path().join("b"),
    );
    assert!(once.status.success());
    assert_eq!(
        after,
        read(&only_run(&tmp.path().join("b")).join("metrics.csv"))
    );
    assert!(read(&dir.join("config.toml")).contains("epochs = 5"));
    let info = json(&dir.join("run.json"));
    assert_eq!(info["status"], "completed");
    assert_eq!(info["final_metrics"]["epoch"], 5);
    // Not shorter, and only train.epochs.
    let out = bin()
        .args(["train", "--resume"])
        .arg(&dir)
        .arg("train.epochs=4")
        .output()
        .unwrap();
    assert!(
        text(&out.stderr).contains("has already trained 5 epochs"),
        "{}",
        text(&out.stderr)
    );
}

/// A latest checkpoint that cannot be read: resume falls back to the previous one and says so.
#[test]
fn a_corrupt_latest_checkpoint_falls_back_to_the_previous_one() {
    let tmp = tempfile::tempdir().unwrap();
    let expected = {
        let out = run(
            &["train", "classifier", "--smoke", "train.epochs=4", "-q"],
            &tmp.path().join("a"),
        );
        assert!(out.status.success());
        read(&only_run(&tmp.path().join("a")).join("metrics.csv"))
    };
    let out = run(
        &["train", "classifier", "--smoke", "-q"],
        &tmp.path().join("b"),
    );
    assert!(out.status.success());
    let dir = only_run(&tmp.path().join("b"));
    let ck = dir.join("checkpoints");
    assert!(
        ck.join("e00002-s0000000").exists(),
        "the previous checkpoint is kept"
    );
    std::fs::write(ck.join("e00003-s0000000/model.safetensors"), b"truncated").unwrap();
    let out = bin()
        .args(["train", "--resume"])
        .arg(&dir)
        .args(["train.epochs=4", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("checkpoint e00003-s0000000 cannot be read")
            && err.contains("falling back to the previous checkpoint e00002-s0000000"),
        "{err}"
    );
    assert_eq!(
        read(&dir.join("metrics.csv")),
        expected,
        "epoch 3 retrained from epoch 2"
    );
    let info = json(&dir.join("run.json"));
    let resume = &info["resumes"][0];
    assert_eq!(resume["from_epoch"], 2);
    assert!(
        resume["notes"][0]
            .as_str()
            .unwrap()
            .contains("cannot be read"),
        "{info}"
    );
    assert!(ck.join("corrupt-e00003-s0000000").exists());
}

/// eval appends: two evaluations under different overrides keep both; an experiment without an
/// eval says which have one.
#[test]
fn eval_twice_with_different_overrides_keeps_both_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&["train", "classifier", "--smoke", "-q"], tmp.path());
    assert!(out.status.success());
    let dir = only_run(tmp.path());
    for extra in [None, Some("data.noise=0.5")] {
        let out = bin().arg("eval").arg(&dir).args(extra).output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let rows = csv_maps(&dir.join("eval.csv"));
    let tests: Vec<&BTreeMap<String, String>> =
        rows.iter().filter(|r| r["split"] == "test").collect();
    assert_eq!(tests.len(), 2, "{rows:?}");
    assert_eq!(tests[0]["overrides"], "");
    assert_eq!(tests[1]["overrides"], "data.noise=0.5");
    assert_eq!(tests[0]["n"], "128", "counts are integers");
    assert_ne!(
        tests[0]["acc"], tests[1]["acc"],
        "the override changed the data"
    );

    let out = run(&["train", "mi-synthetic", "--smoke", "-q"], tmp.path());
    assert!(out.status.success());
    let mi = run_dirs(tmp.path(), "mi-synthetic").pop().unwrap();
    let out = bin().arg("eval").arg(&mi).output().unwrap();
    let err = text(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("eval supports classifier, ib-tishby, ib-lossy, and the nested runs of diffgrad, train-longer"),
        "{err}"
    );
}

/// ib-tishby's eval: every seed's scores from the checkpoint, matching the run's final rows.
#[test]
fn ib_tishby_eval_reproduces_each_seeds_final_accuracy() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        &["ib-analyze", "ib-tishby", "--smoke", "seeds=3", "-q"],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = run_dirs(tmp.path(), "ib-tishby").pop().unwrap();
    let out = bin().arg("eval").arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("(3 seeds)"),
        "{}",
        text(&out.stdout)
    );
    let evals = csv_maps(&dir.join("eval.csv"));
    let finals = csv_maps(&dir.join("metrics.csv"));
    for seed in ["0", "1", "2"] {
        let e = evals
            .iter()
            .find(|r| r["split"] == "test" && r["seed"] == seed)
            .unwrap();
        let f = finals.iter().rfind(|r| r["seed"] == seed).unwrap();
        assert_eq!(e["acc"], f["test_acc"], "seed {seed}");
        assert_eq!(e["checkpoint_epoch"], f["epoch"]);
    }
}

/// A sweep of jobs that each train several seeds: jobs.csv has one seed column and the jobs'
/// means; the summary groups by the swept keys (not the seed) and pools the seeds.
#[test]
fn a_sweep_of_multi_seed_jobs_summarises_by_swept_keys_over_all_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    let sweep = tmp.path().join("ms.toml");
    std::fs::write(
        &sweep,
        "experiment = \"ib-tishby\"\ncommand = \"ib-analyze\"\nseeds = [0, 10]\n[base]\nseeds = 3\n\"train.epochs\" = 20\n[grid]\n\"optim.lr\" = [0.001, 0.01]\n",
    )
    .unwrap();
    let out = run(
        &[
            "sweep",
            sweep.to_str().unwrap(),
            "--smoke",
            "--workers",
            "2",
            "-q",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = tmp.path().join("sweeps/ms");
    let header = read(&dir.join("jobs.csv"))
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        header.split(',').filter(|h| *h == "seed").count(),
        1,
        "{header}"
    );
    let jobs = jobs_csv(&dir);
    assert!(
        jobs.iter()
            .all(|j| j["seeds"] == "3" && !j["test_acc_mean"].is_empty()),
        "{jobs:?}"
    );
    let out = bin().args(["sweep", "summary"]).arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(
        printed.contains("optim.lr") && printed.contains("test_acc_mean"),
        "{printed}"
    );
    let summary = csv_maps(&dir.join("summary.csv"));
    assert_eq!(summary.len(), 2, "one group per learning rate: {summary:?}");
    for g in &summary {
        assert_eq!(
            (
                g["count"].as_str(),
                g["seeds"].as_str(),
                g["seeds_total"].as_str()
            ),
            ("2", "3", "6"),
            "{g:?}"
        );
        assert!(!g.contains_key("seed"), "{g:?}");
        // The pooled mean over 6 seeds = the mean of the two jobs' 3-seed means.
        let lr = &g["optim.lr"];
        let means: Vec<f64> = jobs
            .iter()
            .filter(|j| &j["optim.lr"] == lr)
            .map(|j| j["test_acc_mean"].parse().unwrap())
            .collect();
        let pooled: f64 = g["test_acc_mean"].parse().unwrap();
        assert!(
            (pooled - (means[0] + means[1]) / 2.0).abs() < 1e-9,
            "{g:?} {means:?}"
        );
        assert!(g["test_acc_std"].parse::<f64>().unwrap() > 0.0);
    }
}

/// The same sweep started twice at once: the two processes share the jobs out; every job is
/// completed exactly once (one attempt, one set of rows), and both exit 0.
#[test]
fn the_same_sweep_started_twice_at_once_runs_every_job_once() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "sweep",
        "classifier",
        "optim.lr=0.01,0.02,0.03",
        "seed=0..1",
        "train.epochs=4",
        "--smoke",
        "--name",
        "twice",
    ];
    let spawn = || {
        bin()
            .args(args)
            .arg("--results")
            .arg(tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn();
    let b = spawn();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    for o in [&a, &b] {
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert!(
            text(&o.stdout).contains("6 completed"),
            "{}",
            text(&o.stdout)
        );
    }
    let dir = tmp.path().join("sweeps/twice");
    let jobs = jobs_csv(&dir);
    assert_eq!(jobs.len(), 6);
    for j in &jobs {
        assert_eq!(
            (j["status"].as_str(), j["attempts"].as_str()),
            ("completed", "1"),
            "{j:?}"
        );
        let run_dir = Path::new(&j["run_dir"]);
        let csv = read(&run_dir.join("metrics.csv"));
        let epochs: Vec<&str> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap())
            .collect();
        assert_eq!(epochs, ["1", "2", "3", "4"], "job {}", j["job_id"]);
        let info = json(&run_dir.join("run.json"));
        assert_eq!(info["resumes"].as_array().unwrap().len(), 0, "{info}");
    }
    assert!(!std::fs::read_dir(dir.join("jobs")).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".lock")));
}

/// A Slurm array task and a local run on the same sweep: the task waits for the job the local
/// run holds instead of starting it again.
#[test]
fn a_slurm_task_waits_for_the_job_a_local_run_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "sweep",
        "classifier",
        "data.n_train=40000",
        "train.epochs=4",
        "--name",
        "mixed",
    ];
    let mut local = bin()
        .args(args)
        .arg("--results")
        .arg(tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let dir = tmp.path().join("sweeps/mixed");
    for _ in 0..2000 {
        let locked = std::fs::read_dir(dir.join("jobs"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .any(|e| e.file_name().to_string_lossy().ends_with(".lock"))
            })
            .unwrap_or(false);
        if locked {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let task = bin()
        .args(["sweep", "run-task"])
        .arg(&dir)
        .args(["--index", "0"])
        .output()
        .unwrap();
    assert!(local.wait().unwrap().success());
    assert!(task.status.success(), "{}", text(&task.stderr));
    assert!(
        text(&task.stderr).contains("is running in pid"),
        "{}",
        text(&task.stderr)
    );
    let jobs = jobs_csv(&dir);
    assert_eq!(
        (jobs[0]["status"].as_str(), jobs[0]["attempts"].as_str()),
        ("completed", "1")
    );
    let csv = read(&Path::new(&jobs[0]["run_dir"]).join("metrics.csv"));
    assert_eq!(csv.lines().count(), 5, "{csv}");
}

/// Outside the repository, datasets are found in the binary's repository's data/; a missing
/// set names every folder looked in.
#[test]
fn datasets_are_found_next_to_the_binary_from_another_folder() {
    require_data("sklearn", "data-sklearn");
    let tmp = tempfile::tempdir().unwrap();
    let out = bin()
        .current_dir(tmp.path())
        .env_remove("STOCHLAB_DATA")
        .args([
            "train",
            "classifier",
            "--smoke",
            "data.name=digits",
            "-q",
            "--results",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = bin()
        .current_dir(tmp.path())
        .env_remove("STOCHLAB_DATA")
        .args([
            "train",
            "classifier",
            "--smoke",
            "data.name=cifar10",
            "-q",
            "--results",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    let err = text(&out.stderr);
    let repo_data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/cifar10");
    assert!(
        err.contains("looked in data/cifar10") && err.contains(&repo_data.display().to_string()),
        "{err}"
    );
}

/// The curvature subcommand on a finished classifier run: top-k by Lanczos and by power
/// iteration agree, the trace and the SLQ density are written, results append, bad input is
/// one clear line with nothing lost, and `plot` draws the density.
#[test]
fn curvature_of_a_finished_run_appends_rows_and_plots_the_density() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        &["train", "classifier", "--smoke", "--device", "cpu", "-q"],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = only_run(tmp.path());
    let curv = |extra: &[&str]| {
        let out = bin()
            .arg("curvature")
            .arg(&dir)
            .args(["--device", "cpu"])
            .args(extra)
            .output()
            .unwrap();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };
    let (ok, stdout, stderr) = curv(&[
        "--what",
        "top-k,trace,density",
        "--k",
        "2",
        "--tol",
        "1e-5",
        "--steps",
        "20",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("top-2 eigenvalues (lanczos"), "{stdout}");
    let (ok, _, stderr) = curv(&[
        "--method",
        "power",
        "--k",
        "1",
        "--tol",
        "1e-7",
        "--max-iter",
        "3000",
    ]);
    assert!(ok, "{stderr}");
    let rows = csv_maps(&dir.join("curvature.csv"));
    let value = |method: &str, quantity: &str, index: &str| -> f64 {
        rows.iter()
            .find(|r| r["method"] == method && r["quantity"] == quantity && r["index"] == index)
            .unwrap_or_else(|| panic!("no {method} {quantity} {index} in {rows:?}"))["value"]
            .parse()
            .unwrap()
    };
    let (lanczos, power) = (
        value("lanczos", "eigenvalue", "1"),
        value("power", "eigenvalue", "1"),
    );
    assert!(
        lanczos > 0.0 && (lanczos - power).abs() <= 1e-3 * lanczos,
        "{lanczos} vs {power}"
    );
    assert!(value("lanczos", "eigenvalue", "2") <= lanczos);
    // The SLQ trace and Hutchinson's estimate the same number.
    let hutch = rows.iter().find(|r| r["method"] == "hutchinson").unwrap();
    let slq = rows
        .iter()
        .find(|r| r["method"] == "slq" && r["quantity"] == "trace")
        .unwrap();
    let (t1, e1): (f64, f64) = (
        hutch["value"].parse().unwrap(),
        hutch["error"].parse().unwrap(),
    );
    let (t2, e2): (f64, f64) = (slq["value"].parse().unwrap(), slq["error"].parse().unwrap());
    assert!(
        (t1 - t2).abs() <= 4.0 * (e1 * e1 + e2 * e2).sqrt(),
        "{t1} ± {e1} vs {t2} ± {e2}"
    );
    assert!(rows
        .iter()
        .all(|r| r["checkpoint_epoch"] == "3" && r["batch"] == "256"));
    let density = csv_maps(&dir.join("density.csv"));
    assert_eq!(density.len(), 400);
    assert!(density
        .iter()
        .all(|r| r["density"].parse::<f64>().unwrap() >= 0.0));

    // Mistakes: one line, non-zero exit, curvature.csv untouched.
    let before = read(&dir.join("curvature.csv"));
    for (args, says) in [
        (vec!["--batch", "100000"], "larger than the training set"),
        (vec!["--checkpoint", "7"], "no checkpoint `7`"),
        (vec!["--tol", "0"], "--tol > 0"),
    ] {
        let (ok, _, stderr) = curv(&args);
        assert!(
            !ok && stderr.contains(says) && stderr.trim().lines().count() == 1,
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(read(&dir.join("curvature.csv")), before);
    // A mini-batch Gauss–Newton matrix, from the checkpoint named by its epoch: appended.
    let (ok, _, stderr) = curv(&[
        "--matrix",
        "gauss-newton",
        "--batch",
        "64",
        "--checkpoint",
        "3",
        "--k",
        "1",
    ]);
    assert!(ok, "{stderr}");
    let rows = csv_maps(&dir.join("curvature.csv"));
    assert!(read(&dir.join("curvature.csv")).starts_with(&before));
    let gn = rows.iter().find(|r| r["matrix"] == "gauss-newton").unwrap();
    assert_eq!(gn["batch"], "64");
    assert!(gn["value"].parse::<f64>().unwrap() > 0.0);
    assert_plots(&dir, &["density.svg", "density.png"]);

    // A run whose config is not a classifier's.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    for f in ["run.json", "config.toml"] {
        std::fs::copy(dir.join(f), other.join(f)).unwrap();
    }
    let cfg = read(&other.join("config.toml")).replace("[model]", "[network]");
    std::fs::write(other.join("config.toml"), cfg).unwrap();
    let out = bin()
        .arg("curvature")
        .arg(&other)
        .args(["--device", "cpu"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("has no [model] table"),
        "{}",
        text(&out.stderr)
    );
}

/// The sharpness hook: a row before the first step and every N steps, the per-epoch column,
/// and a run stopped by SIGTERM and resumed writes the same sharpness.csv and metrics.csv as
/// one that was not.
#[test]
fn sharpness_hook_measures_every_n_steps_and_resumes_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let args: Vec<&str> = LONG
        .iter()
        .copied()
        .chain(["train.sharpness.every=250", "train.sharpness.batch=200"])
        .collect();
    let out = run(&args, &tmp.path().join("a"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let a = only_run(&tmp.path().join("a"));
    let sharp = csv_maps(&a.join("sharpness.csv"));
    // 40000 rows of batch 64: 625 steps an epoch, 3750 in 6 epochs -> steps 0, 250, ..., 3750.
    assert_eq!(sharp.len(), 16);
    assert_eq!(sharp[0]["step"], "0");
    assert_eq!(sharp[15]["step"], "3750");
    assert!(sharp
        .iter()
        .all(|r| r["converged"] == "true" && r["lambda_max"].parse::<f64>().unwrap() > 0.0));
    let metrics = csv_maps(&a.join("metrics.csv"));
    // Epoch 2 ends at step 1250, where a measurement was taken.
    assert_eq!(metrics[1]["sharpness"], sharp[5]["lambda_max"]);

    let results = tmp.path().join("b");
    let status = signal_after(&args, &results, "epoch 1/6", 0, "-TERM");
    assert_eq!(status.code(), Some(128 + 15));
    let b = only_run(&results);
    let out = bin()
        .args(["train", "--resume"])
        .arg(&b)
        .arg("-q")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        read(&b.join("sharpness.csv")),
        read(&a.join("sharpness.csv"))
    );
    assert_eq!(read(&b.join("metrics.csv")), read(&a.join("metrics.csv")));
    assert_plots(&b, &["sharpness.svg", "sharpness.png"]);
}

#[test]
fn command_line_mistakes_say_what_to_write_instead() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("r");
    for (args, says) in [
        (
            vec!["train", "classifier", "epochs=5"],
            "did you mean `train.epochs`?",
        ),
        (vec!["train", "classifier", "--device", "gpu"], "write cuda"),
        (
            vec!["eval", "somewhere", "--smoke"],
            "--smoke does nothing for `stochlab eval`",
        ),
        (
            vec!["eval", "somewhere", "--seed", "3"],
            "--seed does nothing for `stochlab eval`",
        ),
        (
            vec!["plot", "somewhere", "--device", "cpu"],
            "--device does nothing for `stochlab plot`",
        ),
        (
            vec!["list", "--seed", "1"],
            "--seed does nothing for `stochlab list`",
        ),
        (
            vec!["sweep", "classifier", "optim.lr=0.1,0.2", "--seed", "1"],
            "seed=0..4",
        ),
    ] {
        let out = run(&args, &res);
        assert!(!out.status.success(), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
    }
    assert!(!res.exists(), "a refused command writes nothing");

    // stochlab mi: k only for k-NN estimators, a warning for binning in many dimensions, and a
    // CSV without a header refused instead of losing its first row.
    let csv = tmp.path().join("acts.csv");
    mi_table(&csv, 400);
    let mi = |args: &[&str]| bin().arg("mi").arg(&csv).args(args).output().unwrap();
    let out = mi(&["--x", "a", "--y", "b"]);
    assert!(
        text(&out.stdout).contains("(ksg, k=5, n=400"),
        "{}",
        text(&out.stdout)
    );
    let out = mi(&["--x", "a", "--y", "b", "--estimator", "kde"]);
    assert!(!text(&out.stdout).contains("k="), "{}", text(&out.stdout));
    let out = mi(&[
        "--x",
        "a,b,h_0,h_1",
        "--y",
        "label",
        "--estimator",
        "binning",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("binning in 4 dimensions"),
        "{}",
        text(&out.stderr)
    );
    let headless = tmp.path().join("headless.csv");
    std::fs::write(&headless, "0.1,0.2\n0.3,0.5\n0.2,0.1\n").unwrap();
    let out = bin()
        .args(["mi", headless.to_str().unwrap(), "--x", "0", "--y", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("add a header row"),
        "{}",
        text(&out.stderr)
    );
}
