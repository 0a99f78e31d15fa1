//! End-to-end runs of the sde family (score-sde, neural-sde, storm) at smoke size.

mod common;
use common::{assert_claims, csv_maps, only_run, run, smoke_run, text};

#[test]
fn score_sde_smoke_writes_samplers_nll_summary_claims_and_the_figure() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = smoke_run("score-sde", &[], tmp.path());
    // Smoke: 30 steps logged every 10, for VP and VE.
    let m = csv_maps(&dir.join("metrics.csv"));
    assert_eq!(m.len(), 6);
    let samplers = csv_maps(&dir.join("samplers.csv"));
    assert_eq!(samplers.len(), 6);
    for r in &samplers {
        assert_eq!(r["nfe"], "16");
        let steps: usize = r["steps"].parse().unwrap();
        let want = match r["sampler"].as_str() {
            "em" => 16,
            "pc" => 8,
            "ode" => 4,
            s => panic!("sampler {s}"),
        };
        assert_eq!(steps, want, "{r:?}");
        let sw: f64 = r["sliced_w2"].parse().unwrap();
        assert!(sw.is_finite() && sw >= 0.0, "{r:?}");
        let mmd: f64 = r["mmd2"].parse().unwrap();
        assert!(mmd.is_finite(), "{r:?}");
    }
    let modes = csv_maps(&dir.join("modes.csv"));
    assert_eq!(modes.len(), 6 * 8);
    let nll = csv_maps(&dir.join("nll.csv"));
    assert_eq!(nll.len(), 2);
    for r in &nll {
        let t: f64 = r["true_nll"].parse().unwrap();
        // Entropy of the ring ≈ ln 8 + ln(2πe·0.04) ≈ 1.70 nats; 50 points scatter around it.
        assert!((t - 1.70).abs() < 0.5, "{r:?}");
        let e: f64 = r["nll_exact"].parse().unwrap();
        assert!(e.is_finite(), "{r:?}");
    }
    assert_eq!(csv_maps(&dir.join("summary.csv")).len(), 6);
    assert_claims(
        &dir,
        &[
            "mode-coverage",
            "ode-nll-gap",
            "pc-beats-em",
            "hutchinson-unbiased",
        ],
    );
    assert!(dir.join("samples.svg").exists());
    // A bad key names the closest one; a bad NFE says what it must be.
    let bad = run(
        &["train", "score-sde", "--smoke", "sample.nfes=8"],
        tmp.path(),
    );
    assert!(!bad.status.success());
    let err = text(&bad.stderr);
    assert!(
        err.contains("`sample.nfes`") && err.contains("nfe"),
        "{err}"
    );
    let bad = run(
        &["train", "score-sde", "--smoke", "sample.nfe=10"],
        tmp.path(),
    );
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("multiple of 4"));
}

#[test]
fn neural_sde_smoke_writes_per_replica_and_per_rate_results_claims_and_figure() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = smoke_run("neural-sde", &[], tmp.path());
    // Smoke: 3 models × 2 rates × 2 seeds × 2 epochs.
    assert_eq!(csv_maps(&dir.join("metrics.csv")).len(), 24);
    let finals = csv_maps(&dir.join("final.csv"));
    assert_eq!(finals.len(), 12);
    for r in &finals {
        let acc: f64 = r["test_acc"].parse().unwrap();
        assert!((0.0..=1.0).contains(&acc), "{r:?}");
    }
    let summary = csv_maps(&dir.join("summary.csv"));
    assert_eq!(summary.len(), 6);
    for r in summary.iter().filter(|r| r["rate"] == "0") {
        assert_eq!(r["drop"], "0", "{r:?}");
    }
    assert_claims(
        &dir,
        &["lsde-drops-less", "gsde-drops-less", "stable-no-divergence"],
    );
    assert!(dir.join("neural-sde.svg").exists());
    // A bad model name lists the valid ones; a bad key names the closest.
    let bad = run(
        &["train", "neural-sde", "--smoke", "models=[\"lsd\"]"],
        tmp.path(),
    );
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("lsde"), "{}", text(&bad.stderr));
    let bad = run(
        &["train", "neural-sde", "--smoke", "model.hiden=4"],
        tmp.path(),
    );
    assert!(
        text(&bad.stderr).contains("hidden"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn neural_sde_runs_a_ucr_ts_file() {
    let tmp = tempfile::tempdir().unwrap();
    // Two classes of 24 univariate series of length 10: rising and falling ramps.
    let mut body = String::from("@problemName Ramps\n@timeStamps false\n@univariate true\n@classLabel true up down\n@data\n");
    for i in 0..24 {
        let (label, sign) = if i % 2 == 0 {
            ("up", 1.0)
        } else {
            ("down", -1.0)
        };
        let v: Vec<String> = (0..10)
            .map(|k| format!("{}", sign * k as f64 * 0.1 + 0.01 * i as f64))
            .collect();
        body.push_str(&format!("{}:{label}\n", v.join(",")));
    }
    let path = tmp.path().join("Ramps_TRAIN.ts");
    std::fs::write(&path, &body).unwrap();
    let p = path.to_str().unwrap();
    let out = run(
        &[
            "train",
            "neural-sde",
            "--smoke",
            "data.source=\"ts\"",
            &format!("data.train_file=\"{p}\""),
            &format!("data.test_file=\"{p}\""),
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = only_run(tmp.path(), "neural-sde");
    assert_eq!(csv_maps(&dir.join("final.csv")).len(), 12);
    // A missing file is one clear line naming it.
    let bad = run(
        &[
            "train",
            "neural-sde",
            "--smoke",
            "data.source=\"ts\"",
            "data.train_file=\"nope.ts\"",
            "data.test_file=\"nope.ts\"",
        ],
        tmp.path(),
    );
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("nope.ts"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn storm_smoke_writes_quality_per_arm_and_n_claims_and_the_figure() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = smoke_run("storm", &[], tmp.path());
    // Smoke: 20 steps logged every 10, for 3 arms.
    let m = csv_maps(&dir.join("metrics.csv"));
    assert_eq!(m.len(), 6);
    // 4 rows (noisy + 3 arms) × N ∈ {5, 20, 50}.
    let s = csv_maps(&dir.join("summary.csv"));
    assert_eq!(s.len(), 12);
    for r in &s {
        for c in ["si_sdr", "lsd", "gap_energy_db"] {
            let v: f64 = r[c].parse().unwrap();
            assert!(v.is_finite(), "{r:?}");
        }
        let n: usize = r["n"].parse().unwrap();
        let nfe: usize = r["nfe"].parse().unwrap();
        let want = match r["arm"].as_str() {
            "noisy" => 0,
            "denoiser" => 1,
            "score-only" => 2 * n,
            "storm" => 2 * n + 1,
            a => panic!("arm {a}"),
        };
        assert_eq!(nfe, want, "{r:?}");
    }
    // The noisy input's SNR is −5..5 dB, so its SI-SDR lies near 0 dB.
    let noisy: f64 = s[0]["si_sdr"].parse().unwrap();
    assert!((-8.0..8.0).contains(&noisy), "{noisy}");
    assert_claims(
        &dir,
        &[
            "storm-beats-score-only",
            "storm-flat-to-20",
            "score-only-drops-more",
            "storm-less-hallucination",
        ],
    );
    assert!(dir.join("storm.svg").exists());
    let bad = run(
        &["train", "storm", "--smoke", "arms=[\"sgmse\"]"],
        tmp.path(),
    );
    assert!(!bad.status.success());
    let bad = run(
        &["train", "storm", "--smoke", "reverse_steps=[1]"],
        tmp.path(),
    );
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("reverse_steps"));
}
