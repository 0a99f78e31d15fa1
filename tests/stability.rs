//! End-to-end runs of the stability family (benign-oscillation, opposing-signals) at smoke size.

mod common;
use common::{csv_maps, json, read, run, text};

#[test]
fn benign_oscillation_smoke_writes_per_model_and_per_lr_results_and_claims() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        &["train", "benign-oscillation", "--smoke", "--plot"],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = std::fs::read_dir(tmp.path().join("benign-oscillation"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let info = json(&dir.join("run.json"));
    assert_eq!(info["status"], "completed");
    // Smoke: 2 rates × 2 seeds × 3 epochs logged every epoch.
    let m = csv_maps(&dir.join("metrics.csv"));
    assert_eq!(m.len(), 12);
    let finals = csv_maps(&dir.join("final.csv"));
    assert_eq!(finals.len(), 4);
    let summary = csv_maps(&dir.join("summary.csv"));
    assert_eq!(summary.len(), 2);
    for r in &summary {
        assert_eq!(r["seeds"], "2");
        if r["diverged"] == "0" {
            let acc: f64 = r["train_acc"].parse().unwrap();
            assert!((0.0..=1.0).contains(&acc), "{r:?}");
        }
    }
    let claims = read(&dir.join("claims.csv"));
    for id in [
        "both-fit-train",
        "weak-accuracy-gain",
        "weak-alignment-ratio",
    ] {
        assert!(claims.contains(id), "{claims}");
    }
    assert!(dir.join("benign.svg").exists());
    // A bad key names the closest one.
    let bad = run(
        &[
            "train",
            "benign-oscillation",
            "--smoke",
            "data.strong_frac=0.5",
        ],
        tmp.path(),
    );
    assert!(!bad.status.success());
    let err = text(&bad.stderr);
    assert!(
        err.contains("`data.strong_frac`") && err.contains("strong_fraction"),
        "{err}"
    );
}
