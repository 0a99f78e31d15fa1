//! Seeded synthetic datasets, drawn from the global CPU generator (the caller seeds it).

use super::{DataConfig, Dataset, Split};
use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

const CPU: (Kind, Device) = (Kind::Float, Device::Cpu);

/// Two interleaving half circles (as in scikit-learn's make_moons) with Gaussian noise;
/// angles are drawn uniformly so train and test are independent samples.
pub fn two_moons(cfg: &DataConfig) -> Dataset {
    let draw = |n: usize| {
        let n = n as i64;
        let y = Tensor::randint(2, [n], (Kind::Int64, Device::Cpu));
        let t = Tensor::rand([n], CPU) * std::f64::consts::PI;
        let upper = y.eq(0).to_kind(Kind::Float);
        // Class 0: (cos t, sin t); class 1: (1 - cos t, 0.5 - sin t).
        let x0 = &upper * t.cos() + (1.0 - &upper) * (1.0 - t.cos());
        let x1 = &upper * t.sin() + (1.0 - &upper) * (0.5 - t.sin());
        let x = Tensor::stack(&[x0, x1], 1) + Tensor::randn([n, 2], CPU) * cfg.noise;
        Split { x, y }
    };
    let train = draw(cfg.n_train);
    let test = draw(cfg.n_test);
    Dataset {
        name: cfg.name.clone(),
        train,
        test,
        n_classes: 2,
        input_shape: vec![2],
    }
}

/// Isotropic Gaussian clusters around centres drawn uniformly in [-5, 5]^dim.
pub fn blobs(cfg: &DataConfig) -> Result<Dataset> {
    if cfg.n_classes < 2 || cfg.dim < 1 {
        bail!(
            "blobs needs data.n_classes >= 2 and data.dim >= 1 (got {} and {})",
            cfg.n_classes,
            cfg.dim
        );
    }
    let (k, d) = (cfg.n_classes as i64, cfg.dim as i64);
    let centres = Tensor::rand([k, d], CPU) * 10.0 - 5.0;
    let draw = |n: usize| {
        let y = Tensor::randint(k, [n as i64], (Kind::Int64, Device::Cpu));
        let x = centres.index_select(0, &y) + Tensor::randn([n as i64, d], CPU) * cfg.noise;
        Split { x, y }
    };
    let train = draw(cfg.n_train);
    let test = draw(cfg.n_test);
    Ok(Dataset {
        name: cfg.name.clone(),
        train,
        test,
        n_classes: k,
        input_shape: vec![d],
    })
}

/// Points uniform in [-1, 1]^2 labelled by the sign of x0·x1 (XOR of the signs), then noised.
pub fn xor(cfg: &DataConfig) -> Dataset {
    let draw = |n: usize| {
        let x = Tensor::rand([n as i64, 2], CPU) * 2.0 - 1.0;
        let y = (x.select(1, 0) * x.select(1, 1))
            .lt(0.0)
            .to_kind(Kind::Int64);
        let x = x + Tensor::randn([n as i64, 2], CPU) * cfg.noise;
        Split { x, y }
    };
    let train = draw(cfg.n_train);
    let test = draw(cfg.n_test);
    Dataset {
        name: cfg.name.clone(),
        train,
        test,
        n_classes: 2,
        input_shape: vec![2],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(name: &str) -> DataConfig {
        DataConfig {
            name: name.into(),
            n_train: 400,
            n_test: 100,
            noise: 0.0,
            ..Default::default()
        }
    }

    #[test]
    fn shapes_and_labels() {
        let _rng = crate::rng::serial();
        tch::manual_seed(0);
        for ds in [
            two_moons(&cfg("two-moons")),
            blobs(&cfg("blobs")).unwrap(),
            xor(&cfg("xor")),
        ] {
            assert_eq!(ds.train.x.size(), vec![400, ds.input_shape[0]]);
            assert_eq!(ds.test.len(), 100);
            let max = ds.train.y.max().int64_value(&[]);
            assert!(max < ds.n_classes && ds.train.y.min().int64_value(&[]) >= 0);
        }
    }

    #[test]
    fn noiseless_moons_lie_on_their_circles() {
        let _rng = crate::rng::serial();
        tch::manual_seed(1);
        let ds = two_moons(&cfg("two-moons"));
        let upper = ds.train.y.eq(0);
        let r = ds
            .train
            .x
            .square()
            .sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
            .sqrt();
        let r_upper = r.masked_select(&upper);
        assert!((r_upper - 1.0).abs().max().double_value(&[]) < 1e-5);
    }

    #[test]
    fn noiseless_xor_is_separable_by_sign() {
        let _rng = crate::rng::serial();
        tch::manual_seed(2);
        let ds = xor(&cfg("xor"));
        let pred = (ds.train.x.select(1, 0) * ds.train.x.select(1, 1))
            .lt(0.0)
            .to_kind(Kind::Int64);
        assert!(pred.equal(&ds.train.y));
        assert!(blobs(&DataConfig {
            n_classes: 1,
            ..cfg("blobs")
        })
        .is_err());
    }
}
