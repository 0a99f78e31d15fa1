//! End-to-end runs of the reinforcement-learning family at smoke size.

mod common;
use common::{csv_maps, json, read, run, text};

#[test]
fn effective_horizon_smoke_writes_dp_analysis_runs_summary_claims_and_figure() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        &["train", "effective-horizon", "--smoke", "--plot"],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = std::fs::read_dir(tmp.path().join("effective-horizon"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(json(&dir.join("run.json"))["status"], "completed");
    // Smoke: 3 environments, SQIRL k = 1, 2, 3 and Q-learning, 2 seeds.
    let envs = csv_maps(&dir.join("envs.csv"));
    assert_eq!(envs.len(), 3);
    for e in &envs {
        let opt: f64 = e["optimal_return"].parse().unwrap();
        let rand: f64 = e["random_return"].parse().unwrap();
        assert!(opt > rand && opt <= 1.0, "{e:?}");
        for k in 1..=5 {
            let g: f64 = e[&format!("greedy_k{k}")].parse().unwrap();
            let b: f64 = e[&format!("greedy_best_k{k}")].parse().unwrap();
            assert!(g <= b + 1e-12 && b <= opt + 1e-12, "{e:?}");
        }
    }
    assert_eq!(csv_maps(&dir.join("runs.csv")).len(), 3 * 4 * 2);
    let summary = csv_maps(&dir.join("summary.csv"));
    assert_eq!(summary.len(), 3 * 4);
    assert!(!csv_maps(&dir.join("metrics.csv")).is_empty());
    let claims = read(&dir.join("claims.csv"));
    for id in [
        "sqirl-k-ge-kstar-optimal",
        "sqirl-k-lt-kstar-plateau",
        "spearman-sqirl-qlearning",
    ] {
        assert!(claims.contains(id), "{claims}");
    }
    assert!(dir.join("effective_horizon.svg").exists());
    // A bad layout name names the closest one.
    let bad = run(
        &[
            "train",
            "effective-horizon",
            "--smoke",
            "envs=[\"key-dor\"]",
        ],
        tmp.path(),
    );
    assert!(!bad.status.success());
    let err = text(&bad.stderr);
    assert!(err.contains("key-door"), "{err}");
}
