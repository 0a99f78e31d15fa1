//! End-to-end runs of the science family (pinn-interface, graph-reweight) at smoke size.

mod common;
use common::{assert_claims, csv_maps, run, smoke_run, text};

#[test]
fn pinn_interface_smoke_writes_the_table_plays_summary_claims_and_figure() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = smoke_run("pinn-interface", &[], tmp.path());
    // Smoke: 3 play + 1 test contexts × 8 arms (3 terms) × 1 seed.
    let table = csv_maps(&dir.join("table.csv"));
    assert_eq!(table.len(), 32);
    for r in &table {
        let e: f64 = r["error"].parse().unwrap();
        assert!(e > 0.0 && e <= 100.0, "{r:?}");
        let reward: f64 = r["reward"].parse().unwrap();
        assert!((reward + e.log10()).abs() < 1e-9, "{r:?}");
    }
    // 2 repeats × 3 strategies × (3 warm-up + 8 plays).
    let m = csv_maps(&dir.join("metrics.csv"));
    assert_eq!(m.len(), 2 * 3 * 11);
    for r in m.iter().filter(|r| r["strategy"] == "gp-ucb") {
        let play: usize = r["play"].parse().unwrap();
        let sd: f64 = r["gp_std"].parse().unwrap_or(f64::NAN);
        assert_eq!(play > 3, sd.is_finite(), "{r:?}");
        let regret: f64 = r["regret"].parse().unwrap();
        assert!(regret >= -1e-12, "{r:?}");
    }
    let summary = csv_maps(&dir.join("summary.csv"));
    let names: Vec<&str> = summary.iter().map(|r| r["strategy"].as_str()).collect();
    for s in [
        "gp-ucb",
        "random",
        "best-fixed",
        "best-fixed-test",
        "oracle",
    ] {
        assert!(names.contains(&s), "{names:?}");
    }
    assert_eq!(csv_maps(&dir.join("fixed.csv")).len(), 8);
    assert_claims(
        &dir,
        &[
            "regret-below-random",
            "regret-sublinear",
            "test-error-vs-best-fixed",
        ],
    );
    assert!(dir.join("pinn-regret.svg").exists());
    // Unknown interface terms and keys name the closest valid one.
    let bad = run(
        &["train", "pinn-interface", "--smoke", "pinn.terms=[\"flx\"]"],
        tmp.path(),
    );
    assert!(!bad.status.success());
    let err = text(&bad.stderr);
    assert!(err.contains("`flx`") && err.contains("flux"), "{err}");
    let bad = run(
        &["train", "pinn-interface", "--smoke", "gp.ucb_c=2"],
        tmp.path(),
    );
    assert!(!bad.status.success());
    let err = text(&bad.stderr);
    assert!(err.contains("`gp.ucb_c`") && err.contains("ucb"), "{err}");
}

#[test]
fn graph_reweight_smoke_writes_per_model_and_per_arm_results_claims_and_figure() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = smoke_run("graph-reweight", &[], tmp.path());
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
    assert_claims(&dir, &["cluster-beats-erm", "cluster-ess-above-all-pairs"]);
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
