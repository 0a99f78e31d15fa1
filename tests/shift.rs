//! End-to-end runs of the distribution-shift experiments at smoke size.

mod common;
use common::{assert_claims, csv_maps, json, only_run, read, run, smoke_run, text};
use std::path::Path;

fn require_data(set: &str, target: &str) {
    let data = std::env::var("STOCHLAB_DATA").unwrap_or_else(|_| "data".into());
    assert!(
        Path::new(&data).join(set).exists(),
        "this test needs data/{set}: run `make {target}` (make test does)"
    );
}

fn num(r: &std::collections::BTreeMap<String, String>, k: &str) -> f64 {
    r[k].parse()
        .unwrap_or_else(|_| panic!("{k} = {:?} is not a number", r[k]))
}

#[test]
fn dann_smoke_trains_both_parts_declares_claims_and_plots() {
    require_data("mnist5k", "data-mnist5k");
    let tmp = tempfile::tempdir().unwrap();
    let dir = smoke_run("dann", &[], tmp.path());
    let rows = csv_maps(&dir.join("metrics.csv"));
    // Moons: 2 arms × 2 seeds × 20 epochs; digits: 2 arms × 1 seed × 1 epoch.
    let count = |part: &str| rows.iter().filter(|r| r["part"] == part).count();
    assert_eq!((count("moons"), count("digits")), (80, 2));
    for r in &rows {
        for k in ["source_acc", "target_acc", "target_test_acc", "domain_acc"] {
            assert!((0.0..=1.0).contains(&num(r, k)), "{k}: {r:?}");
        }
    }
    // The probe runs every 10 epochs (and at the end) on the moons, every epoch on digits.
    let probed: Vec<&str> = rows
        .iter()
        .filter(|r| r["part"] == "moons" && r["probe_acc"] != "NaN")
        .map(|r| r["epoch"].as_str())
        .collect();
    assert_eq!(probed.len(), 8, "{probed:?}");
    assert!(probed.iter().all(|e| *e == "10" || *e == "20"));
    // The moons use a constant λ; digits' λ_p rises towards 1 for DANN and is 0 for source-only,
    // and μ_p decays from μ₀.
    let digits: Vec<_> = rows.iter().filter(|r| r["part"] == "digits").collect();
    assert_eq!(num(digits[0], "lambda"), 0.0);
    assert!(num(digits[1], "lambda") > 0.9 && num(digits[1], "lambda") < 1.0);
    assert!(num(digits[1], "lr") < 0.01 && num(digits[1], "lr") > 0.0015);
    let summary = csv_maps(&dir.join("summary.csv"));
    assert_eq!(summary.len(), 4 + 2);
    assert!(summary
        .iter()
        .all(|r| (num(r, "pad") - 2.0 * (2.0 * num(r, "probe_acc") - 1.0)).abs() < 1e-9));
    let claims = csv_maps(&dir.join("claims.csv"));
    let ids: Vec<&str> = claims.iter().map(|r| r["id"].as_str()).collect();
    assert_eq!(
        ids,
        [
            "dann/moons-gain",
            "dann/moons-probe",
            "dann/digits-gain",
            "dann/digits-probe"
        ]
    );
    assert!(claims.iter().all(|r| r["measured"].parse::<f64>().is_ok()));
    let info = json(&dir.join("run.json"));
    assert!(
        info["final_metrics"]["moons_dann_target_acc"].is_number(),
        "{info}"
    );
    // The decision function of both arms on the 8×8 grid, and the first seed's 300 points.
    assert_eq!(csv_maps(&dir.join("boundary.csv")).len(), 2 * 64);
    assert_eq!(read(&dir.join("points.csv")).lines().count(), 1 + 300);
    for f in ["dann-boundary.png", "dann-accuracy.png"] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    // Same seed, same numbers.
    let again = tempfile::tempdir().unwrap();
    let out = run(
        &["train", "dann", "--smoke", "digits.enabled=false"],
        again.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let moons = |p: &Path| -> Vec<String> {
        read(&p.join("metrics.csv"))
            .lines()
            .filter(|l| l.starts_with("moons"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(moons(&dir), moons(&only_run(again.path(), "dann")));
}

#[test]
fn dann_refuses_a_colour_source_and_an_unknown_key() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        &["train", "dann", "--smoke", "digits.source=cifar10"],
        tmp.path(),
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("digits.source") && err.contains("mnist5k"),
        "{err}"
    );
    let out = run(&["train", "dann", "--smoke", "moons.lamda=2"], tmp.path());
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("did you mean `moons.lambda`"));
}

#[test]
fn simplicity_bias_smoke_measures_randomised_aucs_and_plots() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = smoke_run("simplicity-bias", &[], tmp.path());
    let summary = csv_maps(&dir.join("summary.csv"));
    // 2 seeds per dataset, plus 2 ensemble members and the ensemble on LMS-5.
    let models: Vec<String> = summary
        .iter()
        .map(|r| format!("{}/{}", r["dataset"], r["model"]))
        .collect();
    assert_eq!(
        models,
        [
            "lms-5/0",
            "lms-5/1",
            "lms-5/ensemble-0",
            "lms-5/ensemble-1",
            "lms-5/ensemble",
            "ms-5-7/0",
            "ms-5-7/1",
            "lms-7-hat/0",
            "lms-7-hat/1",
            "ms-7/0",
            "ms-7/1"
        ]
    );
    for r in &summary {
        for k in ["test_acc", "test_auc", "s_rand_auc", "sc_rand_auc"] {
            assert!((0.0..=1.0).contains(&num(r, k)), "{k}: {r:?}");
        }
        assert!(num(r, "updates") <= 200.0);
    }
    // Each coordinate randomised alone, for every model: (4 + 2 + 2 + 2) models × 10 coords.
    assert_eq!(csv_maps(&dir.join("coords.csv")).len(), 100);
    let claims = csv_maps(&dir.join("claims.csv"));
    assert_eq!(claims.len(), 9);
    assert!(claims.iter().all(|r| r["measured"].parse::<f64>().is_ok()));
    let rows = csv_maps(&dir.join("metrics.csv"));
    assert!(rows
        .iter()
        .any(|r| r["dataset"] == "ms-7" && r["updates"] == "50"));
    assert!(dir.join("sb-auc.png").exists());
    // Same seed, same numbers.
    let again = tempfile::tempdir().unwrap();
    let out = run(&["train", "simplicity-bias", "--smoke"], again.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        read(&dir.join("summary.csv")),
        read(&only_run(again.path(), "simplicity-bias").join("summary.csv"))
    );
}

#[test]
fn blackbox_test_smoke_attacks_within_budget_declares_claims_and_plots() {
    require_data("mnist5k", "data-mnist5k");
    let tmp = tempfile::tempdir().unwrap();
    let dir = smoke_run("blackbox-test", &[], tmp.path());
    let rows = csv_maps(&dir.join("metrics.csv"));
    // 3 images × 2 methods, the same images for both.
    assert_eq!(rows.len(), 6);
    let images = |m: &str| -> Vec<String> {
        rows.iter()
            .filter(|r| r["method"] == m)
            .map(|r| r["image"].clone())
            .collect()
    };
    assert_eq!(images("dfmcs"), images("random"));
    for r in &rows {
        let q = num(r, "queries");
        assert!((1.0..=40.0).contains(&q), "budget 40: {r:?}");
        assert!(num(r, "search_queries") <= q);
        if r["success"] == "1" {
            let (before, after) = (num(r, "l0_before"), num(r, "l0_after"));
            assert!(after <= before && after >= 1.0, "{r:?}");
            assert_ne!(r["adv_class"], r["label"]);
            // Every flip moves a pixel by at least 1/2 and at most 1.
            let l2 = num(r, "l2");
            assert!(
                l2 >= 0.5 * after.sqrt() - 1e-9 && l2 <= after.sqrt() + 1e-9,
                "{r:?}"
            );
        } else {
            assert_eq!(r["l0_after"], "NaN");
        }
    }
    let summary = csv_maps(&dir.join("summary.csv"));
    assert_eq!(summary.len(), 2);
    assert!(summary
        .iter()
        .all(|r| (0.0..=1.0).contains(&num(r, "success_rate"))));
    assert_claims(
        &dir,
        &[
            "blackbox-test/l0-vs-random",
            "blackbox-test/success-vs-random",
            "blackbox-test/backtracking",
        ],
    );
    let info = json(&dir.join("run.json"));
    assert!(
        info["final_metrics"]["target_test_acc"].is_number(),
        "{info}"
    );
    assert!(dir.join("train.csv").exists());
    if read(&dir.join("pairs.csv")).lines().count() > 1 {
        assert!(dir.join("bbox-pairs.png").exists());
    }
    // Same seed, same numbers.
    let again = tempfile::tempdir().unwrap();
    let out = run(&["train", "blackbox-test", "--smoke"], again.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        read(&dir.join("metrics.csv")),
        read(&only_run(again.path(), "blackbox-test").join("metrics.csv"))
    );
}

#[test]
fn blackbox_test_refuses_a_colour_dataset_and_an_unknown_key() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "train",
            "blackbox-test",
            "--smoke",
            "target.dataset=cifar10",
        ],
        tmp.path(),
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("target.dataset") && err.contains("mnist5k"),
        "{err}"
    );
    let out = run(
        &["train", "blackbox-test", "--smoke", "attack.budjet=10"],
        tmp.path(),
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("did you mean `attack.budget`"));
}
