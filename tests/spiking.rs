//! End-to-end runs of the spiking family (snn) at smoke size.

mod common;
use common::{assert_claims, csv_maps, run, smoke_run, text};

#[test]
fn snn_smoke_writes_per_epoch_final_summary_grid_and_claims() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = smoke_run("snn", &[], tmp.path());
    // Smoke: 2 tasks × 2 neurons × 2 arms × 2 seeds × 2 epochs.
    let m = csv_maps(&dir.join("metrics.csv"));
    assert_eq!(m.len(), 32);
    for r in &m {
        for c in [
            "test_acc_readout",
            "test_acc_count",
            "test_acc_lzc",
            "silent_hidden",
        ] {
            let v: f64 = r[c].parse().unwrap();
            assert!((0.0..=1.0).contains(&v), "{c}: {r:?}");
        }
        let (b, t): (f64, f64) = (r["beta"].parse().unwrap(), r["theta"].parse().unwrap());
        assert!(
            (0.5..=0.999).contains(&b) && (0.1..=5.0).contains(&t),
            "{r:?}"
        );
        if r["arm"] == "fixed" {
            assert!(
                (b - 0.9).abs() < 1e-4,
                "the smoke grid has beta 0.9 only: {r:?}"
            );
        }
    }
    assert_eq!(csv_maps(&dir.join("final.csv")).len(), 16);
    // Grid: 2 tasks × 2 neurons × 2 points.
    assert_eq!(csv_maps(&dir.join("beta_theta_grid.csv")).len(), 8);
    let summary = csv_maps(&dir.join("summary.csv"));
    assert_eq!(summary.len(), 8);
    for r in &summary {
        assert_eq!(r["seeds"], "2");
        let c0: f64 = r["lzc_class0"].parse().unwrap();
        assert!(c0 >= 0.0, "{r:?}");
    }
    assert_claims(
        &dir,
        &[
            "learnable-gain-lif",
            "learnable-gain-meta",
            "lzc-structure",
            "count-near-chance",
        ],
    );
    assert!(dir.join("snn-lzc.svg").exists());
    assert!(dir.join("snn-accuracy.svg").exists());
    let bad = run(
        &["train", "snn", "--smoke", "data.burst_length=3"],
        tmp.path(),
    );
    assert!(!bad.status.success());
    let err = text(&bad.stderr);
    assert!(
        err.contains("`data.burst_length`") && err.contains("burst_len"),
        "{err}"
    );
    let bad = run(
        &["train", "snn", "--smoke", "data.burst_rate=0.05"],
        tmp.path(),
    );
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("data.burst_rate"),
        "{}",
        text(&bad.stderr)
    );
}
