//! End-to-end runs of the reinforcement-learning family at smoke size.

mod common;
use common::{assert_claims, csv_maps, run, smoke_run, text};

#[test]
fn effective_horizon_smoke_writes_dp_analysis_runs_summary_claims_and_figure() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = smoke_run("effective-horizon", &[], tmp.path());
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
    assert_claims(
        &dir,
        &[
            "sqirl-k-ge-kstar-optimal",
            "sqirl-k-lt-kstar-plateau",
            "spearman-sqirl-qlearning",
        ],
    );
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

#[test]
fn neuroevolution_smoke_logs_generations_summaries_positions_claims_and_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = smoke_run("neuroevolution", &[], tmp.path());
    // Smoke: CartPole 3 methods × 2 seeds × 3 generations; maze 2 methods × 2 seeds × 3.
    let m = csv_maps(&dir.join("metrics.csv"));
    assert_eq!(m.len(), 3 * 2 * 3 + 2 * 2 * 3);
    for r in &m {
        let frames: f64 = r["frames"].parse().unwrap();
        assert!(frames > 0.0, "{r:?}");
        if r["env"] == "cartpole" {
            let v: f64 = r["elite_validation"].parse().unwrap();
            assert!((1.0..=100.0).contains(&v), "{r:?}");
        } else {
            let d: f64 = r["min_distance"].parse().unwrap();
            assert!((0.0..300.0).contains(&d), "{r:?}");
        }
    }
    let s = csv_maps(&dir.join("summary.csv"));
    assert_eq!(s.len(), 3 * 2 + 2 * 2);
    for r in &s {
        if r["method"] != "es" {
            assert_eq!(r["replay_exact"], "1", "{r:?}");
            let ratio: f64 = r["compression"].parse().unwrap();
            assert!(ratio > 1.0, "{r:?}");
        }
    }
    let p = csv_maps(&dir.join("positions.csv"));
    assert_eq!(
        p.iter().filter(|r| r["kind"] == "population").count(),
        2 * 2 * 20
    );
    assert_claims(
        &dir,
        &[
            "cartpole-ga-solves",
            "seed-list-replay-exact",
            "seed-list-compression",
            "maze-ga-trapped",
            "maze-ns-escapes",
        ],
    );
    assert!(dir.join("fitness.svg").exists());
    assert!(dir.join("maze-ends.svg").exists());
    // A bad method is named with the valid ones.
    let bad = run(
        &[
            "train",
            "neuroevolution",
            "--smoke",
            "maze.methods=[\"ns\"]",
        ],
        tmp.path(),
    );
    assert!(!bad.status.success());
    let err = text(&bad.stderr);
    assert!(err.contains("`ns`") && err.contains("\"ga-ns\""), "{err}");
}

#[test]
fn twin_control_smoke_fits_surrogate_trains_controller_evaluates_arms_claims_and_figure() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = smoke_run("twin-control", &[], tmp.path());
    // Smoke: 2 data sets, 60 ticks, 5 arms on 3 fresh replicates each.
    let s = csv_maps(&dir.join("summary.csv"));
    let arms: Vec<&str> = s.iter().map(|r| r["arm"].as_str()).collect();
    assert_eq!(
        arms,
        ["none", "nn", "open-loop", "constant-best", "constant-equal"]
    );
    for r in &s {
        let j: f64 = r["objective_mean"].parse().unwrap();
        assert!(j.is_finite() && j >= 0.0, "{r:?}");
        assert_eq!(r["replicates"], "3");
    }
    assert_eq!(s[0]["removed_total"].parse::<f64>().unwrap(), 0.0);
    let fit = csv_maps(&dir.join("fit.csv"));
    assert_eq!(fit.len(), 2 * 3);
    assert!(fit
        .iter()
        .all(|r| r["nrmse"].parse::<f64>().unwrap() >= 0.0));
    let traj = csv_maps(&dir.join("trajectories.csv"));
    assert_eq!(traj.len(), 5 * 61);
    let m = csv_maps(&dir.join("metrics.csv"));
    for phase in ["surrogate", "controller", "open-loop"] {
        assert!(m.iter().any(|r| r["phase"] == phase), "{phase}");
    }
    assert_eq!(csv_maps(&dir.join("surrogate.csv")).len(), 8);
    assert_claims(
        &dir,
        &[
            "nn-vs-no-control",
            "nn-beats-constant-equal-removal",
            "surrogate-predicts-abm",
        ],
    );
    assert!(dir.join("twin_trajectories.svg").exists());
    // A misspelt key names the right one.
    let bad = run(
        &["train", "twin-control", "--smoke", "controller.hiden=8"],
        tmp.path(),
    );
    assert!(!bad.status.success());
    let err = text(&bad.stderr);
    assert!(err.contains("hidden"), "{err}");
}
