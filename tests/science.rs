//! End-to-end runs of the science family (graph-reweight) at smoke size.

mod common;
use common::{csv_maps, json, read, run, text};

#[test]
fn graph_reweight_smoke_writes_per_model_and_per_arm_results_claims_and_figure() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        &["train", "graph-reweight", "--smoke", "--plot"],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = std::fs::read_dir(tmp.path().join("graph-reweight"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let info = json(&dir.join("run.json"));
    assert_eq!(info["status"], "completed");
    // Smoke: 1 bias × 1 seed × 3 arms × 2 epochs.
    let m = csv_maps(&dir.join("metrics.csv"));
    assert_eq!(m.len(), 6);
    for r in &m {
        let ess: f64 = r["ess"].parse().unwrap();
        assert!(ess > 0.0 && ess <= 1.0 + 1e-6, "{r:?}");
        if r["arm"] == "erm" {
            // ERM's weights stay uniform.
            assert!((ess - 1.0).abs() < 1e-4, "{r:?}");
        }
    }
    let finals = csv_maps(&dir.join("final.csv"));
    assert_eq!(finals.len(), 3);
    for r in &finals {
        let acc: f64 = r["test_acc"].parse().unwrap();
        assert!((0.0..=1.0).contains(&acc), "{r:?}");
    }
    let summary = csv_maps(&dir.join("summary.csv"));
    assert_eq!(summary.len(), 3);
    let claims = read(&dir.join("claims.csv"));
    for id in ["cluster-beats-erm", "cluster-ess-above-all-pairs"] {
        assert!(claims.contains(id), "{claims}");
    }
    assert!(dir.join("graph_reweight.svg").exists());
    // A bad key names the closest one.
    let bad = run(
        &["train", "graph-reweight", "--smoke", "reweight.lamda=3"],
        tmp.path(),
    );
    assert!(!bad.status.success());
    let err = text(&bad.stderr);
    assert!(
        err.contains("`reweight.lamda`") && err.contains("lambda"),
        "{err}"
    );
}
