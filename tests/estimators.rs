//! End-to-end tests of the gradient-estimator family (issue 24: wta-crs in the paper's setting).

mod common;
use common::{bin, csv_maps, only_run, run, text};
use std::path::Path;

fn num(r: &std::collections::BTreeMap<String, String>, c: &str) -> f64 {
    r[c].parse().unwrap_or_else(|_| panic!("{c}: {r:?}"))
}

#[test]
fn wta_crs_transformer_compares_estimators_and_trains_with_the_example_cache() {
    let data = std::env::var("STOCHLAB_DATA").unwrap_or_else(|_| "data".into());
    assert!(
        Path::new(&data).join("mnist5k").exists(),
        "this test needs data/mnist5k: run `make data-mnist5k` (make test does)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "train",
        "wta-crs",
        "--smoke",
        "study.enabled=false",
        "training.enabled=false",
    ];
    let out = run(&args, tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = only_run(tmp.path(), "wta-crs");

    let est = csv_maps(&dir.join("transformer_estimators.csv"));
    // (6 sampled layers + pooled) × 8 estimators × 2 k/N.
    assert_eq!(est.len(), 7 * 8 * 2);
    let pooled = |s: &str, k: &str| {
        est.iter()
            .find(|r| r["layer"] == "all" && r["sampler"] == s && r["k_fraction"] == k)
            .unwrap_or_else(|| panic!("{s} at {k}"))
    };
    for k in ["0.1", "0.3"] {
        // Padded tokens have zero output gradient: with the exact ‖g‖ they get only the floor
        // probability, with ‖x‖ alone about their share of the rows.
        assert!(num(pooled("crs-exact-g", k), "padding_mass") < 1e-5);
        assert!(num(pooled("x-norm", k), "padding_mass") > 0.05);
        // The cache was filled by a warm-up epoch, so it also knows the padding.
        assert!(num(pooled("crs", k), "padding_mass") < 1e-5);
        // Top-k is deterministic: no spread, all of its error is bias.
        let top = pooled("top-k", k);
        assert!(
            num(top, "rel_bias_se") < 1e-6 * num(top, "rel_bias"),
            "{top:?}"
        );
        assert!(num(pooled("uniform", k), "top_set_fraction") == 0.0);
    }

    let training = csv_maps(&dir.join("transformer_training.csv"));
    assert_eq!(training.len(), 2, "{training:?}");
    assert_eq!(training[0]["sampler"], "exact");
    let wta = &training[1];
    assert_eq!(wta["sampler"], "wta-crs");
    let ratio = num(wta, "bytes_vs_exact");
    assert!(
        (0.3..0.36).contains(&ratio),
        "k/N = 0.3 plus int64 indices: {ratio}"
    );
    let summary = csv_maps(&dir.join("summary.csv"));
    assert_eq!(summary.len(), 2);

    let claims = csv_maps(&dir.join("claims.csv"));
    let claim = |id: &str| {
        claims
            .iter()
            .find(|r| r["id"].ends_with(id))
            .unwrap_or_else(|| panic!("{id}: {claims:?}"))
    };
    assert!(num(claim("transformer-bytes-at-0.3"), "measured") > 0.0);
    // The MLP part was off: its claim has no value rather than a wrong one.
    assert_eq!(claim("/accuracy-at-0.3")["measured"], "");

    let out = bin().arg("plot").arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    for f in ["transformer-estimators.png", "transformer-training.png"] {
        let len = std::fs::metadata(dir.join(f)).map_or(0, |m| m.len());
        assert!(len > 1000, "{f}: {len} bytes");
    }
}

#[test]
fn wta_crs_refuses_study_only_estimators_as_training_arms() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "train",
            "wta-crs",
            "--smoke",
            "transformer.arms=[\"exact\",\"wta-crs-exact-g\"]",
        ],
        tmp.path(),
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("wta-crs-exact-g") && err.contains("estimator study"),
        "{err}"
    );
}
