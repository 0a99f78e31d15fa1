//! Seeded synthetic datasets, all in one place, drawn from the global CPU generator (the
//! caller seeds it): classification sets for `data.name`, and generators other experiments
//! call directly (teacher–student regression, correlated Gaussians with known MI).

use super::{DataConfig, Raw, SourceKind, Split};
use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

const CPU: (Kind, Device) = (Kind::Float, Device::Cpu);

fn generated(train: Split, test: Split, n_classes: i64) -> Raw {
    let d = train.x.size()[1];
    Raw {
        train,
        test: Some(test),
        n_classes,
        input_shape: vec![d],
        kind: SourceKind::Generated,
    }
}

/// Rotates 2-D points [n, 2] counter-clockwise by `degrees` about `centre`.
pub fn rotate(x: &Tensor, degrees: f64, centre: [f64; 2]) -> Tensor {
    if degrees == 0.0 {
        return x.shallow_clone();
    }
    let (s, c) = degrees.to_radians().sin_cos();
    let r = Tensor::from_slice(&[c as f32, s as f32, -s as f32, c as f32]).view([2, 2]);
    let o = Tensor::from_slice(&[centre[0] as f32, centre[1] as f32]);
    (x - &o).matmul(&r) + o
}

/// Two interleaving half circles (as in scikit-learn's make_moons) with Gaussian noise;
/// angles are drawn uniformly so train and test are independent samples. `rotation` turns the
/// whole set about its centre (a shifted domain for domain adaptation).
pub fn two_moons(cfg: &DataConfig) -> Raw {
    let draw = |n: usize| {
        let n = n as i64;
        let y = Tensor::randint(2, [n], (Kind::Int64, Device::Cpu));
        let t = Tensor::rand([n], CPU) * std::f64::consts::PI;
        let upper = y.eq(0).to_kind(Kind::Float);
        // Class 0: (cos t, sin t); class 1: (1 - cos t, 0.5 - sin t).
        let x0 = &upper * t.cos() + (1.0 - &upper) * (1.0 - t.cos());
        let x1 = &upper * t.sin() + (1.0 - &upper) * (0.5 - t.sin());
        let x = Tensor::stack(&[x0, x1], 1) + Tensor::randn([n, 2], CPU) * cfg.noise;
        Split {
            x: rotate(&x, cfg.rotation, [0.5, 0.25]),
            y,
        }
    };
    generated(draw(cfg.n_train), draw(cfg.n_test), 2)
}

/// scikit-learn's `make_moons(n, noise)` as DANN's official moons code draws it: ⌊n/2⌋ points
/// of the upper moon (label 0) at evenly spaced angles in [0, π], the rest on the lower moon
/// (label 1), shuffled, plus N(0, noise²) per coordinate.
pub fn make_moons(n: i64, noise: f64) -> Split {
    let (n_out, n_in) = (n / 2, n - n / 2);
    let angles = |k: i64| Tensor::linspace(0.0, std::f64::consts::PI, k, CPU);
    let (a, b) = (angles(n_out), angles(n_in));
    let outer = Tensor::stack(&[a.cos(), a.sin()], 1);
    let inner = Tensor::stack(&[1.0 - b.cos(), 0.5 - b.sin()], 1);
    let x = Tensor::cat(&[outer, inner], 0);
    let y = Tensor::cat(
        &[
            Tensor::zeros([n_out], (Kind::Int64, Device::Cpu)),
            Tensor::ones([n_in], (Kind::Int64, Device::Cpu)),
        ],
        0,
    );
    let order = Tensor::randperm(n, (Kind::Int64, Device::Cpu));
    let x = x.index_select(0, &order) + Tensor::randn([n, 2], CPU) * noise;
    Split {
        x,
        y: y.index_select(0, &order),
    }
}

/// Isotropic Gaussian clusters around centres drawn uniformly in [-5, 5]^dim.
pub fn blobs(cfg: &DataConfig) -> Result<Raw> {
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
    Ok(generated(draw(cfg.n_train), draw(cfg.n_test), k))
}

/// Points uniform in [-1, 1]^2 labelled by the sign of x0·x1 (XOR of the signs), then noised.
pub fn xor(cfg: &DataConfig) -> Raw {
    let draw = |n: usize| {
        let x = Tensor::rand([n as i64, 2], CPU) * 2.0 - 1.0;
        let y = (x.select(1, 0) * x.select(1, 1))
            .lt(0.0)
            .to_kind(Kind::Int64);
        let x = x + Tensor::randn([n as i64, 2], CPU) * cfg.noise;
        Split { x, y }
    };
    generated(draw(cfg.n_train), draw(cfg.n_test), 2)
}

/// The LMS-k dataset of the simplicity-bias paper (Shah et al. 2020): coordinate 0 separates the
/// classes linearly with margin m, x0 = (2y−1)(m + (1−m)u); every other coordinate is a k-slab
/// feature: k slabs centred at −1, …, 1 with alternating labels, each point uniform in a slab of
/// its class, slabs separated by gaps (also fully predictive, but only by a non-linear rule).
pub fn lms(cfg: &DataConfig) -> Result<Raw> {
    let k = cfg.slabs as i64;
    if k < 3 || k % 2 == 0 || cfg.dim < 2 || !(0.0..1.0).contains(&cfg.margin) {
        bail!("lms needs an odd data.slabs >= 3, data.dim >= 2 and data.margin in [0, 1)");
    }
    let d = cfg.dim as i64 - 1;
    let gap = 2.0 / (k - 1) as f64;
    let half = 0.5 * gap * (1.0 - cfg.margin);
    let draw = |n: usize| {
        let n = n as i64;
        let y = Tensor::randint(2, [n], (Kind::Int64, Device::Cpu));
        let sign = y.to_kind(Kind::Float) * 2.0 - 1.0;
        let linear = &sign * (cfg.margin + (1.0 - cfg.margin) * Tensor::rand([n], CPU));
        // Slab j has label j mod 2 (class 0 owns the (k+1)/2 even slabs, class 1 the odd ones).
        let n_even = (k + 1) / 2;
        let n_odd = k / 2;
        let yy = y.unsqueeze(1).expand([n, d], false);
        let r = Tensor::rand([n, d], CPU);
        let even = (&r * n_even as f64).floor() * 2.0;
        let odd = (&r * n_odd as f64).floor() * 2.0 + 1.0;
        let slab = even.where_self(&yy.eq(0), &odd);
        let centre = slab * gap - 1.0;
        let slabs = centre + (Tensor::rand([n, d], CPU) * 2.0 - 1.0) * half;
        let x = Tensor::cat(&[linear.unsqueeze(1), slabs], 1);
        Split {
            x: &x + Tensor::randn([n, d + 1], CPU) * cfg.noise,
            y,
        }
    };
    Ok(generated(draw(cfg.n_train), draw(cfg.n_test), 2))
}

/// One coordinate of the simplicity-bias datasets (Shah et al. 2020), drawn independently
/// given the label as the official generator (`generate_ub_linslab_data_diffmargin_v2`, width
/// B = 1) draws it. Every coordinate lies in [−1, 1]; gaps between slabs are 2m.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlabCoord {
    /// x = (2y − 1)(m + (1 − m)u): separable by its sign with margin m.
    Linear,
    /// Three slabs of width (2 − 4m)/3: class 0 in the centre, class 1 on both sides.
    Slab3,
    /// Five slabs of width w = (2 − 8m)/5: class 1 at ±[(1 + 6m)/5, … + w]; class 0 in the centre
    /// with probability 3/4, else at ±[(3 + 8m)/5, … + w].
    Slab5,
    /// Seven slabs of width w = (2 − 12m)/7: class 1 at ±[w/2 + 2m, … + w] with probability 7/8,
    /// else at ±[2.5w + 6m, … + w]; class 0 in the centre or at ±[1.5w + 4m, … + w], ½ each.
    Slab7,
}

impl SlabCoord {
    /// The coordinate for labels `y` [n] (int64) with margin `m`.
    pub fn draw(self, y: &Tensor, m: f64) -> Tensor {
        let n = y.size()[0];
        let u = || Tensor::rand([n], CPU);
        let sign = || Tensor::randint(2, [n], CPU) * 2.0 - 1.0;
        let pos = y.eq(1);
        // Uniform in the slab [lo, lo + w] on a random side, or in the centre [−w/2, w/2].
        let side = |lo: f64, w: f64| sign() * (u() * w + lo);
        let centre = |w: f64| sign() * u() * (0.5 * w);
        let with_p = |p: f64| Tensor::rand([n], CPU).lt(p);
        match self {
            SlabCoord::Linear => (y.to_kind(Kind::Float) * 2.0 - 1.0) * (u() * (1.0 - m) + m),
            SlabCoord::Slab3 => {
                let w = (2.0 - 4.0 * m) / 3.0;
                side(0.5 * w + 2.0 * m, w).where_self(&pos, &centre(w))
            }
            SlabCoord::Slab5 => {
                let w = (2.0 - 8.0 * m) / 5.0;
                let neg = centre(w).where_self(&with_p(0.75), &side((3.0 + 8.0 * m) / 5.0, w));
                side((1.0 + 6.0 * m) / 5.0, w).where_self(&pos, &neg)
            }
            SlabCoord::Slab7 => {
                let w = (2.0 - 12.0 * m) / 7.0;
                let p = side(0.5 * w + 2.0 * m, w)
                    .where_self(&with_p(7.0 / 8.0), &side(2.5 * w + 6.0 * m, w));
                let neg = centre(w).where_self(&with_p(0.5), &side(1.5 * w + 4.0 * m, w));
                p.where_self(&pos, &neg)
            }
        }
    }
}

/// A simplicity-bias dataset in its unrotated basis: labels uniform in {0, 1}, coordinate j
/// drawn by `coords[j]`; then the linear coordinate(s) of a `corrupt_lin` share of the rows
/// replaced by U(−m, m) (the official `corrupt_lin_margin`: caps linear-only accuracy near
/// 1 − corrupt_lin/2). Returns x [n, d], y [n].
pub fn linear_slabs(n: i64, coords: &[SlabCoord], m: f64, corrupt_lin: f64) -> Split {
    let y = Tensor::randint(2, [n], (Kind::Int64, Device::Cpu));
    let cols: Vec<Tensor> = coords.iter().map(|c| c.draw(&y, m)).collect();
    let mut x = Tensor::stack(&cols, 1);
    let k = (n as f64 * corrupt_lin).round() as i64;
    if k > 0 {
        let rows = Tensor::randperm(n, (Kind::Int64, Device::Cpu)).narrow(0, 0, k);
        for (j, _) in coords
            .iter()
            .enumerate()
            .filter(|(_, c)| **c == SlabCoord::Linear)
        {
            let noise = (Tensor::rand([k], CPU) * 2.0 - 1.0) * m;
            let col = x
                .select(1, j as i64)
                .index_put(&[Some(&rows)], &noise, false);
            x = x.index_copy(1, &Tensor::from_slice(&[j as i64]), &col.unsqueeze(1));
        }
    }
    Split { x, y }
}

/// A random orthonormal d×d matrix (Q of the QR decomposition of a Gaussian matrix), the
/// rotation the simplicity-bias datasets apply as X·W.
pub fn random_rotation(d: i64) -> Tensor {
    let (q, _) = Tensor::linalg_qr(
        &Tensor::randn([d, d], (Kind::Double, Device::Cpu)),
        "reduced",
    );
    q.to_kind(Kind::Float)
}

/// Teacher–student regression: inputs x ~ N(0, I_d), targets from a fixed random teacher
/// network y = v·tanh(W x / √d) / √h + noise·ε. Returns (x, y) with y of shape [n].
pub struct Teacher {
    w: Tensor,
    v: Tensor,
}

impl Teacher {
    pub fn new(dim: i64, hidden: i64) -> Self {
        Teacher {
            w: Tensor::randn([hidden, dim], CPU),
            v: Tensor::randn([hidden], CPU),
        }
    }
    pub fn sample(&self, n: i64, noise: f64) -> (Tensor, Tensor) {
        let (h, d) = (self.w.size()[0], self.w.size()[1]);
        let x = Tensor::randn([n, d], CPU);
        let y = (x.matmul(&self.w.tr()) / (d as f64).sqrt())
            .tanh()
            .matmul(&self.v)
            / (h as f64).sqrt();
        let y = y + Tensor::randn([n], CPU) * noise;
        (x, y)
    }
}

/// Pairs (X, Y) of d-dimensional Gaussians where only coordinates i are correlated, with
/// correlation ρ_i; their mutual information is −½ Σ ln(1 − ρ_i²) nats.
pub fn correlated_gaussians(n: i64, rho: &[f64]) -> (Tensor, Tensor) {
    let d = rho.len() as i64;
    let r = Tensor::from_slice(rho).to_kind(Kind::Float);
    let x = Tensor::randn([n, d], CPU);
    let noise = Tensor::randn([n, d], CPU);
    let y = &x * &r + noise * (-(&r * &r) + 1.0).sqrt();
    (x, y)
}

/// The mutual information of `correlated_gaussians` with these correlations, in nats.
pub fn gaussian_mi(rho: &[f64]) -> f64 {
    rho.iter().map(|r| -0.5 * (1.0 - r * r).ln()).sum()
}

/// Correlations giving `mi` nats spread evenly over `d` coordinates.
pub fn rho_for_mi(mi: f64, d: usize) -> Vec<f64> {
    let per = mi / d as f64;
    vec![(1.0 - (-2.0 * per).exp()).sqrt(); d]
}

/// `d` orthonormal columns in `ambient` dimensions: a random isometric embedding.
pub fn random_embedding(d: i64, ambient: i64) -> Tensor {
    let (q, _) = Tensor::linalg_qr(
        &Tensor::randn([ambient, d], (Kind::Double, Device::Cpu)),
        "reduced",
    );
    q
}

/// Standard normal coordinates mapped to (0, 1) by the normal CDF: a smooth, invertible map, so
/// images drawn from them carry exactly the information of the coordinates.
fn normal_cdf(u: &Tensor) -> Tensor {
    (u.to_kind(Kind::Double) / std::f64::consts::SQRT_2).erf() * 0.5 + 0.5
}

/// Images [N, 1, size, size] of a Gaussian bump of `width` pixels whose centre encodes the two
/// coordinates of each row of `u` [N, 2] (positions kept 2 widths from the border).
pub fn bump_images(u: &Tensor, size: i64, width: f64) -> Tensor {
    let margin = 2.0 * width;
    let pos = normal_cdf(u) * (size as f64 - 1.0 - 2.0 * margin) + margin;
    let grid = Tensor::arange(size, (Kind::Double, Device::Cpu));
    let axis = |j: i64| {
        let d = grid.unsqueeze(0) - pos.narrow(1, j, 1);
        (d.square() * (-0.5 / (width * width))).exp()
    };
    let img = axis(0).unsqueeze(2) * axis(1).unsqueeze(1);
    img.unsqueeze(1).to_kind(Kind::Float)
}

/// Images [N, 1, size, size] of an axis-aligned rectangle, anti-aliased (each pixel holds the
/// fraction it covers), whose centre (x, y) and width and height encode the four coordinates of
/// each row of `u` [N, 4]. Centres span the middle half of the image, sides 1/8..1/2 of it.
pub fn rectangle_images(u: &Tensor, size: i64) -> Tensor {
    let s = size as f64;
    let p = normal_cdf(u);
    let centre = p.narrow(1, 0, 2) * (s / 2.0) + s / 4.0;
    let half = (p.narrow(1, 2, 2) * (3.0 * s / 8.0) + s / 8.0) * 0.5;
    let (lo, hi) = (&centre - &half, &centre + &half);
    let grid = Tensor::arange(size, (Kind::Double, Device::Cpu)).unsqueeze(0);
    let cover = |j: i64| {
        let a = lo.narrow(1, j, 1);
        let b = hi.narrow(1, j, 1);
        ((&grid + 1.0).minimum(&b) - grid.maximum(&a)).clamp(0.0, 1.0)
    };
    let img = cover(1).unsqueeze(2) * cover(0).unsqueeze(1);
    img.unsqueeze(1).to_kind(Kind::Float)
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
    fn rendered_images_follow_their_coordinates() {
        let u = Tensor::from_slice(&[0.0f64, 0.0, -1.0, 2.0]).view([2, 2]);
        let img = bump_images(&u, 16, 1.5);
        assert_eq!(img.size(), vec![2, 1, 16, 16]);
        // u = 0 puts the bump in the middle; its peak is there and sums are equal per image.
        let peak = img.get(0).flatten(0, -1).argmax(0, false).int64_value(&[]);
        assert!(
            [7 * 16 + 7, 7 * 16 + 8, 8 * 16 + 7, 8 * 16 + 8].contains(&peak),
            "{peak}"
        );
        let r = rectangle_images(&Tensor::zeros([1, 4], (Kind::Double, Device::Cpu)), 32);
        // Centre 16, sides 0.5·(3/8·32)+4 = 10: area 100 pixels exactly (anti-aliased).
        assert!((r.sum(Kind::Double).double_value(&[]) - 100.0).abs() < 1e-4);
        let q = random_embedding(3, 20);
        let eye = q.tr().matmul(&q);
        assert!(eye.allclose(
            &Tensor::eye(3, (Kind::Double, Device::Cpu)),
            1e-10,
            1e-10,
            false
        ));
    }

    #[test]
    fn shapes_and_labels() {
        let _rng = crate::rng::serial();
        tch::manual_seed(0);
        let c = DataConfig {
            dim: 6,
            ..cfg("lms")
        };
        for ds in [
            two_moons(&cfg("two-moons")),
            blobs(&cfg("blobs")).unwrap(),
            xor(&cfg("xor")),
            lms(&c).unwrap(),
        ] {
            let test = ds.test.as_ref().unwrap();
            assert_eq!(ds.train.x.size(), vec![400, ds.input_shape[0]]);
            assert_eq!(test.len(), 100);
            let max = ds.train.y.max().int64_value(&[]);
            assert!(max < ds.n_classes && ds.train.y.min().int64_value(&[]) >= 0);
        }
    }

    #[test]
    fn noiseless_moons_lie_on_their_circles_and_rotation_keeps_radii() {
        let _rng = crate::rng::serial();
        for rotation in [0.0, 35.0] {
            tch::manual_seed(1);
            let ds = two_moons(&DataConfig {
                rotation,
                ..cfg("two-moons")
            });
            let upper = ds.train.y.eq(0);
            let centred = &ds.train.x - Tensor::from_slice(&[0.5f32, 0.25]);
            let r_upper = (ds
                .train
                .x
                .square()
                .sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
                .sqrt())
            .masked_select(&upper);
            let from_centre = centred.square().sum(Kind::Float);
            tch::manual_seed(1);
            let plain = two_moons(&cfg("two-moons"));
            let plain_centred = &plain.train.x - Tensor::from_slice(&[0.5f32, 0.25]);
            assert!(
                (from_centre - plain_centred.square().sum(Kind::Float))
                    .abs()
                    .double_value(&[])
                    < 1e-2
            );
            if rotation == 0.0 {
                assert!((r_upper - 1.0).abs().max().double_value(&[]) < 1e-5);
            }
        }
    }

    #[test]
    fn make_moons_puts_evenly_spaced_points_on_the_two_half_circles() {
        let _rng = crate::rng::serial();
        tch::manual_seed(3);
        let m = make_moons(151, 0.0);
        assert_eq!(m.x.size(), vec![151, 2]);
        let y: Vec<i64> = Vec::try_from(&m.y).unwrap();
        assert_eq!(y.iter().filter(|&&v| v == 0).count(), 75);
        // Upper moon on the unit circle about 0, lower moon on the unit circle about (1, 0.5).
        let centre = Tensor::from_slice(&[1.0f32, 0.5]);
        let r = (&m.x - m.y.unsqueeze(1).to_kind(Kind::Float) * centre)
            .square()
            .sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
            .sqrt();
        assert!((r - 1.0).abs().max().double_value(&[]) < 1e-5);
        // Mean (0.5, 0.25) up to the odd point: the centre rotations turn about.
        let mean = m.x.mean_dim([0i64].as_slice(), false, Kind::Float);
        assert!((mean.double_value(&[0]) - 0.5).abs() < 0.01);
        assert!((mean.double_value(&[1]) - 0.25).abs() < 0.01);
        let turned = rotate(
            &Tensor::from_slice(&[1.0f32, 0.0]).view([1, 2]),
            90.0,
            [0.0, 0.0],
        );
        assert!(
            (turned - Tensor::from_slice(&[0.0f32, 1.0]).view([1, 2]))
                .abs()
                .max()
                .double_value(&[])
                < 1e-6
        );
    }

    /// The paper's slab intervals and probabilities, checked on 100k samples per class.
    #[test]
    fn simplicity_bias_coordinates_have_the_papers_slabs_and_probabilities() {
        let _rng = crate::rng::serial();
        tch::manual_seed(11);
        let n = 100_000;
        let m = 0.1;
        // (coordinate, label, [(lo, hi, probability)] over x ≥ 0, mirrored on x < 0).
        type Slabs = Vec<(f64, f64, f64)>;
        let cases: [(SlabCoord, i64, Slabs); 6] = [
            (SlabCoord::Linear, 1, vec![(0.1, 1.0, 1.0)]),
            (SlabCoord::Slab5, 1, vec![(0.32, 0.56, 1.0)]),
            (
                SlabCoord::Slab5,
                0,
                vec![(0.0, 0.12, 0.75), (0.76, 1.0, 0.25)],
            ),
            (
                SlabCoord::Slab7,
                1,
                vec![(0.2571, 0.3714, 0.875), (0.8857, 1.0, 0.125)],
            ),
            (
                SlabCoord::Slab7,
                0,
                vec![(0.0, 0.0571, 0.5), (0.5714, 0.6857, 0.5)],
            ),
            (SlabCoord::Slab3, 0, vec![(0.0, (2.0 - 0.4) / 6.0, 1.0)]),
        ];
        for (c, label, slabs) in cases {
            let y = Tensor::full([n], label, (Kind::Int64, Device::Cpu));
            let x = c.draw(&y, m);
            let v: Vec<f32> = Vec::try_from(&x).unwrap();
            let mut inside = 0;
            for (lo, hi, p) in &slabs {
                let k = v
                    .iter()
                    .filter(|&&t| (t.abs() as f64) >= lo - 1e-4 && (t.abs() as f64) <= hi + 1e-4)
                    .count();
                inside += k;
                let freq = k as f64 / n as f64;
                assert!(
                    (freq - p).abs() < 0.006,
                    "{c:?} y={label} [{lo}, {hi}]: {freq} vs {p}"
                );
            }
            assert_eq!(inside, n as usize, "{c:?} y={label}: every point in a slab");
            if c != SlabCoord::Linear {
                // Symmetric about 0: each side holds half.
                let neg = v.iter().filter(|&&t| t < 0.0).count() as f64 / n as f64;
                assert!((neg - 0.5).abs() < 0.006, "{c:?}: {neg}");
            }
        }
        // The corrupted share of the linear coordinate falls inside the margin.
        let d = linear_slabs(20_000, &[SlabCoord::Linear, SlabCoord::Slab7], m, 0.1);
        let inside =
            d.x.select(1, 0)
                .abs()
                .lt(m)
                .to_kind(Kind::Float)
                .mean(Kind::Float);
        assert!((inside.double_value(&[]) - 0.1).abs() < 1e-6);
        let r = random_rotation(6);
        assert!(r
            .tr()
            .matmul(&r)
            .allclose(&Tensor::eye(6, CPU), 1e-5, 1e-5, false));
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

    #[test]
    fn lms_linear_coordinate_has_the_margin_and_slabs_predict_the_label() {
        let _rng = crate::rng::serial();
        tch::manual_seed(3);
        let ds = lms(&DataConfig {
            dim: 4,
            margin: 0.2,
            ..cfg("lms")
        })
        .unwrap();
        let x0 = ds.train.x.select(1, 0);
        let y = ds.train.y.to_kind(Kind::Float) * 2.0 - 1.0;
        assert!(
            (&x0 * &y).min().double_value(&[]) >= 0.2 - 1e-6,
            "linear margin"
        );
        // A slab coordinate's nearest centre (spacing 0.5 for k = 5) has the label's parity.
        let slab = (ds.train.x.select(1, 2) + 1.0) / 0.5;
        let parity = slab.round().remainder(2.0).to_kind(Kind::Int64);
        assert!(parity.equal(&ds.train.y));
        assert!(lms(&DataConfig {
            slabs: 4,
            ..cfg("lms")
        })
        .is_err());
    }

    #[test]
    fn correlated_gaussians_have_the_requested_correlation_and_mi() {
        let _rng = crate::rng::serial();
        tch::manual_seed(4);
        let rho = rho_for_mi(1.5, 3);
        assert!((gaussian_mi(&rho) - 1.5).abs() < 1e-12);
        let (x, y) = correlated_gaussians(200_000, &rho);
        let corr = (&x * &y).mean_dim([0i64].as_slice(), false, Kind::Float);
        for c in Vec::<f32>::try_from(&corr).unwrap() {
            assert!((c as f64 - rho[0]).abs() < 0.01, "{c} vs {}", rho[0]);
        }
        // Teacher targets: a fixed function of x (noise 0), noise adding the requested std.
        let t = Teacher::new(5, 8);
        let (tx, ty) = t.sample(4096, 0.0);
        assert_eq!((tx.size(), ty.size()), (vec![4096, 5], vec![4096]));
        let (h, d) = (8.0f64, 5.0f64);
        let again = (tx.matmul(&t.w.tr()) / d.sqrt()).tanh().matmul(&t.v) / h.sqrt();
        assert!(again.allclose(&ty, 1e-6, 1e-6, false));
        tch::manual_seed(5);
        let (_, clean) = t.sample(4096, 0.0);
        tch::manual_seed(5);
        let (_, noisy) = t.sample(4096, 0.3);
        let extra = (noisy - clean).std(true).double_value(&[]);
        assert!((extra - 0.3).abs() < 0.02, "{extra}");
    }
}
