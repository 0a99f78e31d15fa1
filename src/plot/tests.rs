//! Figures built from small CSVs: the series drawn match the data (estimators, layers, groups,
//! seeds) and every drawn value lies inside its panel's axes.

use super::figure::{Figure, Mark, Scale, Ticks};
use super::*;
use std::path::Path;

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// Every point, band and error bar of every series (and every cell) lies on the axes.
fn assert_fits(fig: &Figure) {
    for p in &fig.panels {
        for s in &p.series {
            for (x, y) in s.extent() {
                let logged = |a: &figure::Axis, v: f64| a.scale == Scale::Log && v <= 0.0;
                if logged(&p.x, x) || logged(&p.y, y) {
                    continue;
                }
                assert!(
                    p.x.contains(x),
                    "{}: x {x} outside {:?} ({})",
                    fig.name,
                    p.x.range,
                    s.label
                );
                assert!(
                    p.y.contains(y),
                    "{}: y {y} outside {:?} ({})",
                    fig.name,
                    p.y.range,
                    s.label
                );
            }
        }
        for c in &p.cells {
            assert!(
                p.x.contains(c.x.0)
                    && p.x.contains(c.x.1)
                    && p.y.contains(c.y.0)
                    && p.y.contains(c.y.1)
            );
        }
    }
}

fn one(figs: Vec<Figure>, name: &str) -> Figure {
    figs.into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no figure {name}"))
}

fn labels(fig: &Figure, panel: usize) -> Vec<String> {
    fig.panels[panel]
        .series
        .iter()
        .map(|s| s.label.clone())
        .collect()
}

/// ib.csv with `seeds` seeds, estimators ksg and kde, layers 1..3 named conv1, dense1, output,
/// epochs 0, 1, 9; I_XT = layer + epoch/10 + seed/100.
fn ib_csv(dir: &Path, seeds: usize) {
    let mut s = String::from("seed,epoch,layer,name,estimator,I_XT,I_TY,units\n");
    for seed in 0..seeds {
        for e in [0, 1, 9] {
            for (l, n) in [(1, "conv1"), (2, "dense1"), (3, "output")] {
                for est in ["ksg", "kde"] {
                    let x = l as f64 + e as f64 / 10.0 + seed as f64 / 100.0;
                    s += &format!("{seed},{e},{l},{n},{est},{x},{},nats\n", 0.5 * x);
                }
            }
        }
    }
    write(dir, "ib.csv", &s);
}

#[test]
fn information_plane_draws_every_estimator_and_named_layer_averaged_over_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    ib_csv(tmp.path(), 2);
    let o = Options::default();
    let fig = info::information_plane(tmp.path(), &o).unwrap().unwrap();
    assert_eq!(fig.panels.len(), 2, "one panel per estimator");
    assert_eq!(fig.panels[0].title, "ksg");
    assert_eq!(labels(&fig, 0), ["conv1", "dense1", "output"]);
    assert!(fig.title.contains("mean over 2 seeds"), "{}", fig.title);
    // Seeds 0 and 1 at layer 1, epoch 9: I_XT 1.9 and 1.91 → mean 1.905.
    let p = fig.panels[0].series[0].points[2];
    assert!((p.0 - 1.905).abs() < 1e-9, "{p:?}");
    assert_eq!(fig.panels[0].series[0].values, [0.0, 1.0, 9.0]);
    let cb = fig.colour_bar.as_ref().unwrap();
    assert_eq!(cb.range, (0.0, 9.0));
    assert!(cb.log);
    // Fitted to the data: I_XT spans 1…3.01, not 0…3.
    assert!(fig.panels[0].x.range.0 > 0.8, "{:?}", fig.panels[0].x.range);
    assert_fits(&fig);

    let o = Options {
        estimators: vec!["kde".into()],
        layers: vec!["dense1".into(), "3".into()],
        spread: true,
    };
    let fig = info::information_plane(tmp.path(), &o).unwrap().unwrap();
    assert_eq!(fig.panels.len(), 1);
    assert_eq!(fig.panels[0].title, "kde");
    assert_eq!(labels(&fig, 0), ["dense1", "output"]);
    assert_eq!(fig.panels[0].series[0].bars.len(), 3, "± std crosses");
    assert_fits(&fig);

    let bad = Options {
        estimators: vec!["binning".into()],
        ..Default::default()
    };
    let e = info::information_plane(tmp.path(), &bad)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no estimator `binning`") && e.contains("ksg, kde"),
        "{e}"
    );
    let bad = Options {
        layers: vec!["conv9".into()],
        ..Default::default()
    };
    let e = info::information_plane(tmp.path(), &bad)
        .unwrap_err()
        .to_string();
    assert!(e.contains("conv9") && e.contains("1 (conv1)"), "{e}");
}

#[test]
fn curves_average_seeds_into_a_band_and_fit_the_axes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = String::from("seed,epoch,train_loss,train_acc,test_loss,test_acc\n");
    for seed in 0..3 {
        for e in 0..5 {
            let a = 0.96 + 0.002 * e as f64 + 0.001 * seed as f64;
            s += &format!(
                "{seed},{e},{},{a},{},{}\n",
                1.0 / (e + 1) as f64,
                1.1 / (e + 1) as f64,
                a - 0.001
            );
        }
    }
    write(tmp.path(), "metrics.csv", &s);
    let fig = curves::run_curves(tmp.path()).unwrap().unwrap();
    assert_eq!(fig.panels.len(), 2);
    assert!(fig.title.contains("over 3 seeds"), "{}", fig.title);
    let acc = &fig.panels[1];
    assert_eq!(labels(&fig, 1), ["train", "test"]);
    assert_eq!(acc.series[0].mark, Mark::Line);
    assert_eq!(acc.series[1].mark, Mark::Dashed);
    assert_eq!(acc.series[0].points.len(), 5, "one mean point per epoch");
    assert_eq!(acc.series[0].band.len(), 5);
    // 0.96–0.97 is not drawn on 0–1.
    assert!(
        acc.y.range.0 > 0.95 && acc.y.range.1 < 0.98,
        "{:?}",
        acc.y.range
    );
    assert_eq!(acc.x.ticks, Ticks::Integer);
    assert_fits(&fig);
}

#[test]
fn curves_draw_one_pair_per_group() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s =
        String::from("optimizer,seed,epoch,step,lr,train_loss,train_acc,test_loss,test_acc\n");
    for o in ["adam", "sgd", "diffgrad"] {
        for seed in 0..2 {
            for e in 1..4 {
                s += &format!("{o},{seed},{e},{},0.001,0.5,0.8,0.6,0.7\n", e * 10);
            }
        }
    }
    write(tmp.path(), "metrics.csv", &s);
    let fig = curves::run_curves(tmp.path()).unwrap().unwrap();
    assert_eq!(fig.panels[0].series.len(), 3 * 2);
    assert_eq!(fig.panels[0].series[1].label, "optimizer=adam test");
    assert_eq!(fig.legend().len(), 6);
    assert_fits(&fig);
}

#[test]
fn sgd_figures_hold_every_grid_point_and_fit() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "phase.csv", "alpha,T,steps_to_fit,dist_from_init,test_err\n0.1,0.001,5,1,0.1\n0.1,0.01,5,1,0.2\n10,0.001,5,1,0.3\n10,0.01,5,1,0.4\n100,0.01,5,1,0.5\n");
    let fig = sgd::phase(d).unwrap().unwrap();
    assert_eq!(fig.panels[0].cells.len(), 5);
    assert_eq!(
        fig.panels[0].x.ticks,
        Ticks::Categories(vec!["0.1".into(), "10".into(), "100".into()])
    );
    let cb = fig.colour_bar.as_ref().unwrap();
    assert!(cb.high_dark && cb.range == (0.1, 0.5));
    assert!(cb.position(0.5) < cb.position(0.1), "worse is darker");
    assert_fits(&fig);

    write(d, "hessian.csv", "epoch,batch_size,batches,lambda_max_mean,lambda_max_std\n0,8,4,10,1\n0,64,4,4,0.5\n0,1000,1,3,0\n2,8,4,20,2\n2,64,4,8,1\n2,1000,1,6,0\n");
    write(d, "summary.csv", "fit,intercept,slope,r2,points\n\"lambda_max = a + c/B, epoch 0\",3,56,0.99,3\n\"lambda_max = a + c/B, epoch 2\",6,110,0.99,3\n\"log best lr vs log B, sgd\",-9,0.9,0.9,2\n");
    let fig = sgd::lambda_max(d).unwrap().unwrap();
    assert_eq!(labels(&fig, 0).len(), 2 * 2, "points and fit per epoch");
    assert_eq!(fig.panels[0].series[0].bars.len(), 3);
    assert_eq!(fig.panels[0].x.scale, Scale::Log);
    // The fit at B = 8: 3 + 56/8 = 10.
    assert!((fig.panels[0].series[1].points[0].1 - 10.0).abs() < 1e-9);
    assert_fits(&fig);

    write(d, "grid.csv", "optimizer,batch_size,lr,final_train_loss,test_loss,test_acc,diverged\nsgd,8,0.01,0.5,0.5,0.9,false\nsgd,8,0.1,0.2,0.5,0.9,false\nsgd,64,0.1,0.6,0.5,0.9,false\nsgd,64,1,0.1,nan,nan,true\nsgd,64,0.5,0.3,0.5,0.9,false\n");
    let fig = sgd::best_lr(d).unwrap().unwrap();
    assert_eq!(
        fig.panels[0].series[0].points,
        [(8.0, 0.1), (64.0, 0.5)],
        "diverged runs are not best"
    );
    assert_eq!(fig.panels[0].series.len(), 2);
    assert_fits(&fig);

    write(d, "edge_summary.csv", "optimizer,batch_size,seeds,lr_edge_mean,lr_edge_std,theory_fit_2_over_lambda,theory_measured_2_over_lambda,edge_over_theory_fit,regime\nsgd,1,3,0.02,0.005,0.019,0.02,1.05,c/B>a\nsgd,8,3,0.15,0.01,0.14,0.15,1.07,c/B>a\nsgd,64,3,nan,nan,0.3,nan,nan,c/B<=a\nadam,1,3,0.001,0.0002,0.019,nan,0.05,c/B>a\nadam,8,3,0.003,0.0001,0.14,nan,0.02,c/B>a\n");
    let fig = sgd::stability_edge(d).unwrap().unwrap();
    let s = &fig.panels[0].series;
    assert_eq!(s.len(), 3, "an edge per optimizer and one theory curve");
    assert_eq!(
        s[0].points,
        [(1.0, 0.02), (8.0, 0.15)],
        "unbracketed edges are left out"
    );
    assert_eq!(s[0].bars.len(), 2);
    assert_eq!(s[2].points.len(), 3);
    assert_fits(&fig);
}

#[test]
fn estimator_figures_draw_one_series_per_sampler_estimator_and_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "estimators.csv", "k_fraction,k,sampler,rel_bias,rel_variance\n0.1,10,uniform,0.01,5\n0.1,10,wta-crs,0.02,0.5\n0.3,30,uniform,0.01,1\n0.3,30,wta-crs,0.01,0.1\n0.1,10,top-k,0.4,0.001\n0.3,30,top-k,0.2,0.0005\n");
    let fig = estimators::wta_variance(d).unwrap().unwrap();
    assert_eq!(labels(&fig, 0), ["uniform", "wta-crs", "top-k"]);
    assert_fits(&fig);
    write(d, "training.csv", "sampler,k_fraction,test_acc,points_below_exact,stored_activation_bytes\nexact,1.0,0.95,0,1000000\nuniform,0.1,0.9,5,100000\nwta-crs,0.1,0.93,2,100000\n");
    let fig = estimators::wta_training(d).unwrap().unwrap();
    assert_eq!(fig.panels[0].data_series(), 2);
    assert_eq!(fig.panels[0].series[0].label, "exact backprop");
    assert_fits(&fig);

    write(d, "transformer_estimators.csv", "k_fraction,k,layer,sampler,rel_bias,rel_error,rel_bias_se,top_set_fraction,padding_mass\n0.1,179,block0.out,uniform,0.2,0.7,0.07,0,0.3\n0.1,179,all,uniform,0.1,0.6,0.06,0,0.3\n0.1,179,all,wta-crs,0.01,0.2,0.02,0.4,0\n0.3,537,all,uniform,0.05,0.3,0.03,0,0.3\n0.3,537,all,wta-crs,0.005,0.1,0.01,0.5,0\n");
    let fig = estimators::wta_transformer_estimators(d).unwrap().unwrap();
    assert_eq!(labels(&fig, 0), ["0.1", "0.3"]);
    assert_eq!(
        fig.panels[0].y.ticks,
        Ticks::Categories(vec!["wta-crs".into(), "uniform".into()])
    );
    // The per-layer row is left out: uniform at k/N = 0.1 is the pooled 0.6.
    assert_eq!(fig.panels[0].series[0].points[0].0, 0.6);
    assert_fits(&fig);
    write(d, "transformer_training.csv", "sampler,k_fraction,seed,test_acc,acc_below_exact,stored_activation_bytes,bytes_vs_exact\nexact,1.0,0,0.9,0,1000,1\nwta-crs,0.3,0,0.89,0.01,310,0.31\nexact,1.0,1,0.92,0,1000,1\nwta-crs,0.3,1,0.9,0.02,310,0.31\n");
    let fig = estimators::wta_transformer_training(d).unwrap().unwrap();
    let acc = fig.panels[0].series[0].points[0].0;
    assert!((acc - 0.91).abs() < 1e-12, "mean over seeds: {acc}");
    assert_fits(&fig);

    write(d, "gating.csv", "estimator,target_on,test_err,gates_off,extra_error_points\nungated,1,0.05,0,0\nreinforce,0.5,0.07,0.4,2\nreinforce,0.25,0.09,0.7,4\nnoise,0.5,0.06,0.5,1\n");
    let fig = estimators::gating(d).unwrap().unwrap();
    assert_eq!(labels(&fig, 0), ["ungated", "reinforce", "noise"]);
    assert_eq!(fig.panels[0].series[1].points, [(0.4, 2.0), (0.7, 4.0)]);
    assert_fits(&fig);

    write(d, "results.csv", "model,rule,test_acc,final_local_losses,seconds_per_epoch,peak_activation_bytes\nmlp,backprop,0.97,,1,2000000\nmlp,tp-l2,0.95,0.1 0.2,1,500000\ncnn,backprop,0.98,,2,4000000\ncnn,tp-l2,0.96,0.1,2,800000\n");
    write(d, "depth.csv", "layers,rule,test_acc,seconds_per_epoch\n2,backprop,0.9,1\n3,backprop,0.92,1\n2,tp-l2,0.88,1\n3,tp-l2,0.85,1\n");
    let figs = estimators::tpsgd(d).unwrap();
    let rules = one(figs.clone(), "rules");
    assert_eq!(labels(&rules, 0), ["backprop", "tp-l2"]);
    assert_eq!(
        rules.panels[0].y.ticks,
        Ticks::Categories(vec!["cnn".into(), "mlp".into()])
    );
    // Peak memory in MB: 2 MB for the MLP with backprop.
    assert_eq!(rules.panels[1].series[0].points[0].0, 2.0);
    assert_fits(&rules);
    let depth = one(figs, "depth");
    assert_eq!(depth.panels[0].series.len(), 2);
    assert_eq!(depth.panels[0].x.ticks, Ticks::Integer);
    assert_fits(&depth);
}

#[test]
fn axes_fit_their_data() {
    let a = figure::Axis::fit("x", Scale::Linear, [0.96, 0.97]);
    assert!(a.range.0 > 0.95 && a.range.1 < 0.98 && a.contains(0.96) && a.contains(0.97));
    let a = figure::Axis::fit("x", Scale::Log, [1e-3, 10.0, -1.0]);
    assert!(a.contains(1e-3) && a.contains(10.0) && !a.contains(-1.0));
    let a = figure::Axis::fit("x", Scale::Linear, [5.0, 5.0]);
    assert!(a.range.0 < 5.0 && a.range.1 > 5.0);
}

#[test]
fn out_names_one_file_or_a_folder_and_pdf_is_refused_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let f = |n: &str| Figure::new(n, "", vec![]);
    let (stems, formats) =
        destinations(&[f("a")], tmp.path(), Some(&tmp.path().join("x.png")), None).unwrap();
    assert_eq!(stems, [tmp.path().join("x")]);
    assert_eq!(formats, [Format::Png]);
    let e = destinations(
        &[f("a"), f("b")],
        tmp.path(),
        Some(&tmp.path().join("x.svg")),
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("--figure"), "{e}");
    let (stems, _) = destinations(
        &[f("a"), f("b")],
        tmp.path(),
        Some(&tmp.path().join("figs")),
        None,
    )
    .unwrap();
    assert_eq!(stems[1], tmp.path().join("figs/b"));
    let e = destinations(&[f("a")], tmp.path(), None, Some(Format::Pdf)).unwrap_err();
    assert!(e.to_string().contains("cannot write PDF"), "{e}");
}

#[test]
fn sgd_noise_power_law_figures_read_their_csvs_and_fits() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut p =
        String::from("chi,seed,P,alpha_T,T,steps,fitted,t_star,dw_norm,dw_par,dw_perp,test_err\n");
    for chi in ["0", "1"] {
        for n in [256, 512] {
            p += &format!("{chi},0,{n},16,0.0005,100,true,0.1,0.01,0.009,0.001,0.1\n");
        }
        // A censored run is left out of the figure.
        p += &format!("{chi},0,1024,16,0.0005,100,false,0.1,99,0.009,0.001,0.1\n");
    }
    write(d, "perceptron.csv", &p);
    write(d, "summary.csv", "part,quantity,chi,P,value,exp_T,exp_P,r2,n\nperceptron,T_c,0,256,0.01,,,,\nperceptron,T_c,0,512,0.005,,,,\nperceptron,log T_c vs log P,0,,0.5,,-1,1,2\nlazy,T_c (dw_rel),,512,0.01,,,,\nlazy,T_c (dw_rel),,1024,0.004,,,,\nlazy,log T_c vs log P (dw_rel),,,1,,-1.3,1,2\n");
    write(d, "lazy.csv", "P,seed,alpha,T,steps,fitted,diverged,stuck,dw_norm,dw_rel,test_err,t_star\n512,0,32768,0.01,10,true,false,false,1,0.01,0.1,5\n512,0,32768,0.1,10,true,false,false,1,0.1,0.2,5\n");
    let fig = sgd::perceptron(d).unwrap().unwrap();
    assert_eq!(fig.panels.len(), 3);
    assert_eq!(fig.panels[0].series.len(), 2, "one curve per χ");
    assert_eq!(
        fig.panels[0].series[0].points,
        vec![(256.0, 20.0), (512.0, 20.0)]
    );
    // χ = 0: points and the fitted line.
    assert_eq!(fig.panels[2].series.len(), 2);
    assert!(fig.panels[2].series[1].label.contains("P^-1.00"));
    assert_fits(&fig);
    let fig = sgd::lazy(d).unwrap().unwrap();
    assert_eq!(fig.panels.len(), 3);
    assert_eq!(
        fig.panels[0].series[0].points,
        vec![(0.01, 0.01), (0.1, 0.1)]
    );
    assert!(fig.panels[2].series[1].label.contains("P^-1.30"));
    assert_fits(&fig);
}
