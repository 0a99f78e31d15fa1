//! End-to-end tests of the compression family (trp) at smoke size.

mod common;
use common::{bin, csv_maps, latest_run, run, text};
use std::path::Path;

#[test]
fn trp_smoke_decomposes_every_arm_and_plots() {
    let data = std::env::var("STOCHLAB_DATA").unwrap_or_else(|_| "data".into());
    assert!(
        Path::new(&data).join("mnist5k").exists(),
        "this test needs data/mnist5k: run `make data-mnist5k` (make test does)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&["train", "trp", "--smoke"], tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("completed trp"),
        "{}",
        text(&out.stdout)
    );
    let dir = latest_run(tmp.path(), "trp");
    let summary = csv_maps(&dir.join("summary.csv"));
    // Two nets × (baseline, nuclear, trp m=5, trp-nuclear m=5, baseline-truncated m=5).
    assert_eq!(summary.len(), 2 * 5, "{summary:?}");
    for net in ["mlp", "cnn"] {
        let row = |arm: &str| {
            summary
                .iter()
                .find(|r| r["net"] == net && r["arm"] == arm)
                .unwrap_or_else(|| panic!("{net} {arm}"))
        };
        // The truncated baseline sits at exactly TRP + nuclear's ranks and reductions.
        let (t, b) = (row("trp-nuclear"), row("baseline-truncated"));
        assert_eq!(t["ranks"], b["ranks"]);
        assert_eq!(t["param_reduction"], b["param_reduction"]);
        assert!(t["param_reduction"].parse::<f64>().unwrap() > 1.0);
        // The loss is measured against the baseline's full accuracy.
        let base: f64 = row("baseline")["full_acc"].parse().unwrap();
        let loss: f64 = t["acc_loss"].parse().unwrap();
        let dec: f64 = t["decomposed_acc"].parse().unwrap();
        assert!((base - dec - loss).abs() < 1e-9);
        assert!(row("trp")["svd_seconds"].parse::<f64>().unwrap() > 0.0);
        assert_eq!(row("baseline")["svd_seconds"], "0.0");
    }
    let layers = csv_maps(&dir.join("layers.csv"));
    assert_eq!(
        layers.len(),
        2 * 4 * 2,
        "two layers per trained arm and net"
    );
    for l in &layers {
        let (rows, cols, k): (i64, i64, i64) = (
            l["rows"].parse().unwrap(),
            l["cols"].parse().unwrap(),
            l["rank"].parse().unwrap(),
        );
        assert!(k >= 1 && k <= rows.min(cols), "{l:?}");
        assert_eq!(
            l["decomposed_params"].parse::<i64>().unwrap(),
            k * (rows + cols)
        );
    }
    // Ranks at initialisation and after each epoch, two layers per net and arm.
    assert_eq!(csv_maps(&dir.join("ranks.csv")).len(), 2 * 4 * 2 * 2);
    let plot = bin().arg("plot").arg(&dir).output().unwrap();
    assert!(plot.status.success(), "{}", text(&plot.stderr));
    for f in ["trp_accuracy.png", "trp_ranks.png"] {
        let len = std::fs::metadata(dir.join(f)).map_or(0, |m| m.len());
        assert!(len > 1000, "{f}: {len} bytes");
    }
}

#[test]
fn trp_rejects_a_layer_the_model_does_not_have() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "train",
            "trp",
            "--smoke",
            "nets.mlp.layers=[\"fc9.weight\"]",
        ],
        tmp.path(),
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("no weight `fc9.weight`") && err.contains("fc0.weight"),
        "{err}"
    );
}
