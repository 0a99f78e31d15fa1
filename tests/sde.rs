//! End-to-end runs of the sde family (score-sde) at smoke size.

mod common;
use common::{csv_maps, json, read, run, text};

#[test]
fn score_sde_smoke_writes_samplers_nll_summary_claims_and_the_figure() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&["train", "score-sde", "--smoke", "--plot"], tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = std::fs::read_dir(tmp.path().join("score-sde"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let info = json(&dir.join("run.json"));
    assert_eq!(info["status"], "completed");
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
    let claims = read(&dir.join("claims.csv"));
    for id in [
        "mode-coverage",
        "ode-nll-gap",
        "pc-beats-em",
        "hutchinson-unbiased",
    ] {
        assert!(claims.contains(id), "{claims}");
    }
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
