//! End-to-end runs of the `bayes` family (synthetic data only).

mod common;
use common::{assert_claims, bin, csv_maps, json, latest_run, run, smoke_run, text};

fn num(r: &std::collections::BTreeMap<String, String>, k: &str) -> f64 {
    r[k].parse().unwrap_or_else(|_| panic!("{k} = {}", r[k]))
}

#[test]
fn nngp_mixture_runs_end_to_end_at_smoke_size() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&["train", "nngp-mixture", "--smoke"], tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = latest_run(tmp.path(), "nngp-mixture");
    assert_eq!(json(&dir.join("run.json"))["status"], "completed");

    let ks = csv_maps(&dir.join("prior_ks.csv"));
    assert_eq!(ks.len(), 4, "mixture and fixed against t and Gaussian");
    for r in &ks {
        let (d, p) = (num(r, "ks_stat"), num(r, "p_value"));
        assert!(
            (0.0..=1.0).contains(&d) && (0.0..=1.0).contains(&p),
            "{r:?}"
        );
        assert_eq!(r["n"], "200");
    }
    assert_eq!(csv_maps(&dir.join("prior.csv")).len(), 400);

    // Two datasets × two models × (valid, test, shift), NLL finite, coverage a fraction.
    let summary = csv_maps(&dir.join("summary.csv"));
    assert_eq!(summary.len(), 2 * 2 * 3, "{summary:?}");
    for r in &summary {
        assert!(num(r, "nll").is_finite(), "{r:?}");
        assert!((0.0..=1.0).contains(&num(r, "coverage")), "{r:?}");
        assert!(num(r, "interval_width") > 0.0, "{r:?}");
    }
    let grid = csv_maps(&dir.join("kernel_grid.csv"));
    assert_eq!(grid.len(), 4);
    assert!(grid.iter().all(|r| r["selected"] == "true"));
    let tp = grid.iter().find(|r| r["model"] == "tp").unwrap();
    assert!(num(tp, "a") > 0.0 && num(tp, "b") > 0.0);
    // 20 Adam steps logged every 10: two rows per fit.
    assert_eq!(csv_maps(&dir.join("metrics.csv")).len(), 4 * 2);
    let preds = csv_maps(&dir.join("predictions.csv"));
    assert_eq!(preds.len(), 2 * (60 + 40));
    assert!(preds.iter().all(|r| num(r, "lower") <= num(r, "upper")));

    assert_claims(
        &dir,
        &[
            "prior-t-fits",
            "prior-gaussian-fails",
            "tp-beats-gp-syn-t",
            "tp-beats-gp-shift",
            "tp-equals-gp-syn-normal",
        ],
    );
    let out = bin().arg("plot").arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    for f in ["prior.png", "predictive.png"] {
        let len = std::fs::metadata(dir.join(f)).map_or(0, |m| m.len());
        assert!(len > 1000, "{f}: {len} bytes");
    }
}

#[test]
fn nngp_mixture_refuses_a_missing_csv_and_unknown_datasets() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "train",
            "nngp-mixture",
            "--smoke",
            "regression.datasets=[\"csv\"]",
        ],
        tmp.path(),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("regression.csv_path"),
        "{}",
        text(&out.stderr)
    );
    let out = run(
        &[
            "train",
            "nngp-mixture",
            "--smoke",
            "regression.datasets=[\"syn-x\"]",
        ],
        tmp.path(),
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("syn-x"), "{}", text(&out.stderr));
}

#[test]
fn sgmcmc_potential_runs_end_to_end_at_smoke_size() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&["train", "sgmcmc-potential", "--smoke"], tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = latest_run(tmp.path(), "sgmcmc-potential");
    assert_eq!(json(&dir.join("run.json"))["status"], "completed");

    // Smoke: 2 sizes × (2 temperatures × {2 chains, 1 chain} + ensemble) = 10 rows, 1 repeat.
    let summary = csv_maps(&dir.join("summary.csv"));
    assert_eq!(summary.len(), 2 * (2 * 2 + 1), "{summary:?}");
    for r in &summary {
        for k in ["force_coverage", "obs_coverage"] {
            assert!((0.0..=1.0).contains(&num(r, k)), "{r:?}");
        }
        assert!(
            num(r, "force_rmse") > 0.0 && num(r, "nll").is_finite(),
            "{r:?}"
        );
        assert!(num(r, "force_width") > 0.0, "{r:?}");
        if r["method"] == "psgld" {
            // Split R̂ of 8 draws per chain: positive, not necessarily ≥ 1.
            assert!(num(r, "rhat_obs") > 0.0, "{r:?}");
        } else {
            assert_eq!(r["rhat_obs"], "", "the ensemble has no chains: {r:?}");
        }
    }
    let per = csv_maps(&dir.join("per_repeat.csv"));
    assert_eq!(per.len(), summary.len());
    // 60 pSGLD steps: 20 burn-in, every 5th kept = 8 draws per chain.
    let two = per
        .iter()
        .find(|r| r["method"] == "psgld" && r["chains"] == "2")
        .unwrap();
    assert_eq!(two["draws"], "16");
    // metrics.csv: pSGLD every 10 of 60 steps per (size, T), ensemble every 10 of 30 per size.
    let m = csv_maps(&dir.join("metrics.csv"));
    assert_eq!(m.len(), 6 * 2 * 2 + 3 * 2, "{}", m.len());
    assert!(m.iter().all(|r| num(r, "loss").is_finite()));

    assert_claims(
        &dir,
        &[
            "cold-helps-small-data",
            "one-chain-undercovers",
            "ensemble-matches-sgmcmc",
        ],
    );
    let out = bin().arg("plot").arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let len = std::fs::metadata(dir.join("coverage.png")).map_or(0, |m| m.len());
    assert!(len > 1000, "coverage.png: {len} bytes");
}

#[test]
fn sgmcmc_potential_refuses_bad_sampler_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        &["train", "sgmcmc-potential", "--smoke", "sampler.thin=100"],
        tmp.path(),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no state is kept"),
        "{}",
        text(&out.stderr)
    );
    let out = run(
        &[
            "train",
            "sgmcmc-potential",
            "--smoke",
            "sampler.method=\"nuts\"",
        ],
        tmp.path(),
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("nuts"), "{}", text(&out.stderr));
}

#[test]
fn bnn_bo_runs_end_to_end_at_smoke_size() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = smoke_run("bnn-bo", &[], tmp.path());
    // Smoke: 2 objectives × 5 surrogates × 2 trials × (5 initial + 3 steps).
    let m = csv_maps(&dir.join("metrics.csv"));
    assert_eq!(m.len(), 2 * 5 * 2 * 8, "{}", m.len());
    for r in &m {
        assert!(num(r, "best") <= num(r, "value") + 1e-12, "{r:?}");
        let opt = if r["objective"] == "branin" {
            0.397_887
        } else {
            -3.322_37
        };
        assert!(num(r, "best") >= opt - 1e-4, "{r:?}");
        assert!(num(r, "log10_regret").is_finite(), "{r:?}");
    }
    // The best value never increases along a trial.
    for w in m.windows(2) {
        let same = ["objective", "surrogate", "trial"]
            .iter()
            .all(|k| w[0][*k] == w[1][*k]);
        if same {
            assert!(num(&w[1], "best") <= num(&w[0], "best"), "{w:?}");
        }
    }
    let summary = csv_maps(&dir.join("summary.csv"));
    assert_eq!(summary.len(), 2 * 5, "{summary:?}");
    for r in &summary {
        assert_eq!(r["evaluations"], "8");
        assert!(
            num(r, "final_log10_regret") <= num(r, "mean_log10_regret") + 1e-9,
            "{r:?}"
        );
        assert!(num(r, "seconds_per_step") > 0.0, "{r:?}");
    }
    assert_claims(
        &dir,
        &[
            "ranking-problem-dependent",
            "hmc-beats-sghmc",
            "hmc-beats-ensemble",
        ],
    );
    let len = std::fs::metadata(dir.join("regret.png")).map_or(0, |m| m.len());
    assert!(len > 1000, "regret.png: {len} bytes");
}

#[test]
fn bnn_bo_refuses_unknown_surrogates() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        &["train", "bnn-bo", "--smoke", "surrogates=[\"dkl\"]"],
        tmp.path(),
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("dkl"), "{}", text(&out.stderr));
}
