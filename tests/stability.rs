//! End-to-end runs of the stability family (benign-oscillation, opposing-signals) at smoke size.

mod common;
use common::{assert_claims, csv_maps, run, smoke_run, text};

#[test]
fn benign_oscillation_smoke_writes_per_model_and_per_lr_results_and_claims() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = smoke_run("benign-oscillation", &[], tmp.path());
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
    assert_claims(
        &dir,
        &[
            "both-fit-train",
            "weak-accuracy-gain",
            "weak-alignment-ratio",
        ],
    );
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
