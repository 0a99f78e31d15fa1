//! End-to-end runs of the `uncertainty` family at smoke size.

mod common;
use common::{bin, csv_maps, json, only_run, run, text};
use std::path::Path;

fn plots(dir: &Path, figures: &[&str]) {
    let out = bin().arg("plot").arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    for f in figures {
        let len = std::fs::metadata(dir.join(f)).map_or(0, |m| m.len());
        assert!(len > 1000, "{f}: {len} bytes");
    }
}

fn num(s: &str) -> f64 {
    s.parse().unwrap_or_else(|_| panic!("not a number: {s:?}"))
}

#[test]
fn mpnp_smoke_writes_scores_bands_and_claims() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&["train", "mpnp", "--smoke"], tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = only_run(tmp.path(), "mpnp");
    assert_eq!(json(&dir.join("run.json"))["status"], "completed");

    let eval = csv_maps(&dir.join("evaluation.csv"));
    assert_eq!(eval.len(), 3 * 4, "three models on four kernels");
    for r in &eval {
        let cov = num(&r["tar_coverage_95"]);
        assert!((0.0..=1.0).contains(&cov), "{r:?}");
        assert!(num(&r["tar_ll"]).is_finite() && num(&r["ctx_ll"]).is_finite());
    }
    let summary = csv_maps(&dir.join("summary.csv"));
    let mean = summary.iter().find(|r| r["kernel"] == "mean").unwrap();
    let gain = num(&mean["mpnp_minus_cnp_tar_ll"]);
    assert!(
        (gain - (num(&mean["mpnp_tar_ll"]) - num(&mean["cnp_tar_ll"]))).abs() < 1e-9,
        "{mean:?}"
    );
    let metrics = csv_maps(&dir.join("metrics.csv"));
    assert_eq!(metrics.len(), 3 * 3, "3 logging steps of 10 per model");
    let bands = csv_maps(&dir.join("bands.csv"));
    assert_eq!(bands.len(), 4 * 3 * 101);
    assert!(bands
        .iter()
        .all(|r| num(&r["lower"]) <= num(&r["mean"]) && num(&r["mean"]) <= num(&r["upper"])));
    let claims = csv_maps(&dir.join("claims.csv"));
    assert_eq!(claims.len(), 3);
    assert!(
        claims.iter().all(|c| c["measured"].parse::<f64>().is_ok()),
        "{claims:?}"
    );
    plots(&dir, &["bands.png", "curves.png"]);

    // A wrong key is refused with the closest name.
    let bad = run(&["train", "mpnp", "--smoke", "mpnp.k_trian=3"], tmp.path());
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("k_train"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn latent_uncertainty_smoke_writes_per_severity_measures_and_claims() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&["train", "latent-uncertainty", "--smoke"], tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = only_run(tmp.path(), "latent-uncertainty");
    assert_eq!(json(&dir.join("run.json"))["status"], "completed");

    let sev = csv_maps(&dir.join("severity.csv"));
    assert_eq!(
        sev.len(),
        4 * 3 * 5,
        "four arms, three corruptions, five severities"
    );
    // Severity 0 is the clean image for every corruption: identical measurements.
    for arm in ["mlp", "graph-skip"] {
        let clean: Vec<&str> = sev
            .iter()
            .filter(|r| r["arm"] == arm && r["severity"] == "0")
            .map(|r| r["latent_var"].as_str())
            .collect();
        assert_eq!(clean.len(), 3);
        assert!(clean.iter().all(|v| *v == clean[0]), "{clean:?}");
    }
    assert!(sev
        .iter()
        .all(|r| num(&r["node_std_px"]) > 0.0 && num(&r["rmse_px"]) > 0.0));
    let images = csv_maps(&dir.join("images.csv"));
    assert_eq!(images.len(), 4 * 3 * 5 * 8);
    let summary = csv_maps(&dir.join("summary.csv"));
    assert_eq!(summary.len(), 4 * 2);
    for r in &summary {
        let rho = num(&r["spearman_rmse"]);
        assert!((-1.0..=1.0).contains(&rho), "{r:?}");
        for c in ["auroc_noise", "auroc_blur", "auroc_occlusion"] {
            assert!((0.0..=1.0).contains(&num(&r[c])), "{r:?}");
        }
    }
    let claims = csv_maps(&dir.join("claims.csv"));
    assert_eq!(claims.len(), 5);
    assert!(
        claims.iter().all(|c| c["measured"].parse::<f64>().is_ok()),
        "{claims:?}"
    );
    plots(&dir, &["severity.png", "landmark-samples.png"]);
}
