//! End-to-end runs of the SGD-family experiments at smoke size (sgd-noise; the others are in
//! tests/cli.rs).

mod common;
use common::{csv_maps, json, only_run, read, run, text};
use std::path::Path;

fn require_data(set: &str, target: &str) {
    let data = std::env::var("STOCHLAB_DATA").unwrap_or_else(|_| "data".into());
    assert!(
        Path::new(&data).join(set).exists(),
        "this test needs data/{set}: run `make {target}` (make test does)"
    );
}

#[test]
fn sgd_noise_runs_its_three_parts_end_to_end_at_smoke_size() {
    require_data("mnist5k", "data-mnist5k");
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&["train", "sgd-noise", "--smoke"], tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = only_run(tmp.path(), "sgd-noise");
    // (A) 2 χ × 2 seeds × 2 P × 2 T replicas, each fitted or reported censored.
    let p = csv_maps(&dir.join("perceptron.csv"));
    assert_eq!(p.len(), 16);
    for r in &p {
        let steps: i64 = r["steps"].parse().unwrap();
        assert!(
            steps > 0 && ["true", "false"].contains(&r["fitted"].as_str()),
            "{r:?}"
        );
        // t* = dt·steps with dt = B·T (B = 2).
        let t: f64 = r["T"].parse().unwrap();
        let t_star: f64 = r["t_star"].parse().unwrap();
        assert!(
            (t_star / (2.0 * t * steps as f64) - 1.0).abs() < 1e-9,
            "{r:?}"
        );
        let at: f64 = r["alpha_T"].parse().unwrap();
        assert!((at / (t * 32768.0) - 1.0).abs() < 1e-9);
    }
    // (B) 2 P × 3 T, (C) 2 α × 3 T.
    assert_eq!(csv_maps(&dir.join("lazy.csv")).len(), 6);
    assert_eq!(csv_maps(&dir.join("phase.csv")).len(), 6);
    let summary = read(&dir.join("summary.csv"));
    for q in [
        "dw fit",
        "t* fit",
        "log T_c vs log P",
        "log T_c vs log P (dw_rel)",
        "censored",
    ] {
        assert!(summary.contains(q), "{q}: {summary}");
    }
    let claims = csv_maps(&dir.join("claims.csv"));
    let ids: Vec<&str> = claims.iter().map(|r| r["id"].as_str()).collect();
    for id in [
        "perceptron-delta",
        "perceptron-gamma",
        "perceptron-tc-r2",
        "lazy-tc-r2",
        "lazy-tc-slope",
        "non-monotonic",
    ] {
        assert!(ids.iter().any(|i| i.ends_with(id)), "{id}: {ids:?}");
    }
    let info = json(&dir.join("run.json"));
    assert!(
        info["final_metrics"]["perceptron_censored"].is_number(),
        "{info}"
    );
    let plot = common::bin().arg("plot").arg(&dir).output().unwrap();
    assert!(plot.status.success(), "{}", text(&plot.stderr));
    for f in ["perceptron.png", "lazy.png", "phase.png"] {
        let len = std::fs::metadata(dir.join(f)).map_or(0, |m| m.len());
        assert!(len > 1000, "{f}: {len} bytes");
    }
    // A training size the data set does not have is a clear error naming the key.
    let out = run(
        &[
            "train",
            "sgd-noise",
            "--smoke",
            "perceptron.enabled=false",
            "lazy.train_sizes=[64,100000]",
        ],
        tmp.path(),
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("lazy") && err.contains("100000"), "{err}");
}
