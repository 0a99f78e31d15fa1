//! Synthetic organ images with contour landmarks (a stand-in for chest X-rays with lung and
//! heart contours, CheXmask): one or two filled ellipses on a textured background, each with
//! `per_organ` landmarks on its contour at fixed parameter angles t_j = 2πj/L, so landmark j
//! always means the same place on the organ:
//!
//!   p_j = c + R(φ) (a cos t_j, b sin t_j).
//!
//! Images are [n, 1, size, size] in [0, 1]; landmarks [n, organs·per_organ, 2] as (x, y) in
//! pixels (x = column, y = row). Every draw comes from the global generator (reseed first).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ShapesConfig {
    pub size: i64,
    /// 1 (one central organ) or 2 (left and right, lung-like).
    pub organs: i64,
    pub per_organ: i64,
    /// Amplitude of the smooth background texture and of the pixel noise.
    pub texture: f64,
    pub pixel_noise: f64,
}

impl Default for ShapesConfig {
    fn default() -> Self {
        ShapesConfig {
            size: 64,
            organs: 2,
            per_organ: 32,
            texture: 0.08,
            pixel_noise: 0.03,
        }
    }
}

impl crate::config::Check for ShapesConfig {
    fn check(&self) -> Result<()> {
        if self.size < 16 || !(1..=2).contains(&self.organs) || self.per_organ < 3 {
            bail!("shapes: size >= 16, organs 1 or 2, per_organ >= 3");
        }
        if self.texture < 0.0 || self.pixel_noise < 0.0 {
            bail!("shapes: texture and pixel_noise must be >= 0");
        }
        Ok(())
    }
}

/// Ellipse parameters [n, organs, 5]: cx, cy, a, b, φ (pixels, radians).
pub fn sample_ellipses(cfg: &ShapesConfig, n: i64) -> Tensor {
    let s = cfg.size as f64;
    let u = |lo: f64, hi: f64| Tensor::rand([n, 1], (Kind::Float, Device::Cpu)) * (hi - lo) + lo;
    let organs: Vec<Tensor> = if cfg.organs == 1 {
        vec![Tensor::cat(
            &[
                u(0.42, 0.58) * s,
                u(0.42, 0.58) * s,
                u(0.15, 0.3) * s,
                u(0.15, 0.3) * s,
                u(-0.6, 0.6),
            ],
            1,
        )]
    } else {
        [(0.3, 0.1), (0.7, -0.1)]
            .iter()
            .map(|&(cx, tilt)| {
                Tensor::cat(
                    &[
                        u(cx - 0.04, cx + 0.04) * s,
                        u(0.44, 0.56) * s,
                        u(0.1, 0.16) * s,
                        u(0.2, 0.3) * s,
                        u(tilt - 0.25, tilt + 0.25),
                    ],
                    1,
                )
            })
            .collect()
    };
    Tensor::stack(&organs, 1)
}

/// Landmarks [n, organs·per_organ, 2] of ellipse parameters [n, organs, 5].
pub fn landmarks(params: &Tensor, per_organ: i64) -> Tensor {
    let dev = params.device();
    let t = Tensor::arange(per_organ, (Kind::Float, dev))
        * (2.0 * std::f64::consts::PI / per_organ as f64);
    let p = |i: i64| params.narrow(2, i, 1); // [n, organs, 1]
    let (ca, sa) = (t.cos(), t.sin());
    let (u, v) = (p(2) * ca, p(3) * sa); // [n, organs, L]
    let (cphi, sphi) = (p(4).cos(), p(4).sin());
    let x = p(0) + &u * &cphi - &v * &sphi;
    let y = p(1) + &u * &sphi + &v * &cphi;
    let n = params.size()[0];
    Tensor::stack(&[x, y], -1).reshape([n, -1, 2])
}

/// Renders images [n, 1, size, size] of ellipse parameters [n, organs, 5]: background 0.2,
/// each organ a soft-edged ellipse of intensity U[0.6, 0.9], smooth texture (noise at 1/8
/// resolution, upsampled bilinearly) and pixel noise; clamped to [0, 1].
pub fn render(cfg: &ShapesConfig, params: &Tensor) -> Tensor {
    let (n, organs) = (params.size()[0], params.size()[1]);
    let s = cfg.size;
    let dev = params.device();
    let coords = Tensor::arange(s, (Kind::Float, dev)) + 0.5;
    let gx = coords.view([1, 1, 1, s]);
    let gy = coords.view([1, 1, s, 1]);
    let p = |i: i64| params.narrow(2, i, 1).unsqueeze(-1); // [n, organs, 1, 1]
    let (dx, dy) = (&gx - p(0), &gy - p(1));
    let (c, sn) = (p(4).cos(), p(4).sin());
    let u = &dx * &c + &dy * &sn;
    let v = -&dx * &sn + &dy * &c;
    let rho = ((u / p(2)).square() + (v / p(3)).square()).sqrt();
    let inside = ((-rho + 1.0) * 12.0).sigmoid(); // [n, organs, s, s]
    let intensity = Tensor::rand([n, organs, 1, 1], (Kind::Float, dev)) * 0.3 + 0.6;
    let bg = 0.2;
    let organ = (inside * (intensity - bg)).sum_dim_intlist([1i64].as_slice(), true, Kind::Float);
    let coarse = Tensor::randn([n, 1, s / 8, s / 8], (Kind::Float, dev));
    let texture = coarse.upsample_bilinear2d([s, s], false, None, None) * cfg.texture;
    let pixel = Tensor::randn([n, 1, s, s], (Kind::Float, dev)) * cfg.pixel_noise;
    (organ + bg + texture + pixel).clamp(0.0, 1.0)
}

/// `n` images and their landmarks, on `device`.
pub fn sample(cfg: &ShapesConfig, n: i64, device: Device) -> (Tensor, Tensor) {
    let params = sample_ellipses(cfg, n);
    let lm = landmarks(&params, cfg.per_organ);
    (render(cfg, &params).to_device(device), lm.to_device(device))
}

/// The ring graph of the contours: node j of an organ is adjacent to j ± 1 of the same organ.
pub fn ring_adjacency(organs: i64, per_organ: i64, device: Device) -> Tensor {
    let n = organs * per_organ;
    let a = Tensor::zeros([n, n], (Kind::Float, device));
    for o in 0..organs {
        for j in 0..per_organ {
            let (i, k) = (o * per_organ + j, o * per_organ + (j + 1) % per_organ);
            let _ = a.get(i).get(k).fill_(1.0);
            let _ = a.get(k).get(i).fill_(1.0);
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landmarks_lie_on_their_ellipses_and_the_organs_render_bright() {
        let _rng = crate::rng::serial();
        tch::manual_seed(2);
        for organs in [1, 2] {
            let cfg = ShapesConfig {
                organs,
                ..Default::default()
            };
            let params = sample_ellipses(&cfg, 5);
            let lm = landmarks(&params, cfg.per_organ).view([5, organs, cfg.per_organ, 2]);
            let pv = Vec::<f32>::try_from(params.flatten(0, -1)).unwrap();
            let lv = Vec::<f32>::try_from(lm.flatten(0, -1)).unwrap();
            for i in 0..5 {
                for o in 0..organs as usize {
                    let q = &pv[(i * organs as usize + o) * 5..][..5];
                    let (cx, cy, a, b, phi) = (q[0], q[1], q[2], q[3], q[4]);
                    for j in 0..cfg.per_organ as usize {
                        let base = ((i * organs as usize + o) * cfg.per_organ as usize + j) * 2;
                        let (dx, dy) = (lv[base] - cx, lv[base + 1] - cy);
                        let u = dx * phi.cos() + dy * phi.sin();
                        let v = -dx * phi.sin() + dy * phi.cos();
                        let r = (u / a).powi(2) + (v / b).powi(2);
                        assert!((r - 1.0).abs() < 1e-4, "organ {o} point {j}: {r}");
                    }
                }
            }
            let img = render(&cfg, &params);
            assert_eq!(img.size(), vec![5, 1, 64, 64]);
            // An organ's centre is brighter than the image corner.
            let (cx, cy) = (pv[0] as i64, pv[1] as i64);
            let centre = img.double_value(&[0, 0, cy, cx]);
            let corner = img.double_value(&[0, 0, 0, 0]);
            assert!(centre > corner + 0.2, "{centre} vs {corner}");
        }
        let a = ring_adjacency(2, 4, Device::Cpu);
        assert_eq!(a.sum(Kind::Float).double_value(&[]), 16.0);
        assert_eq!(a.double_value(&[0, 3]), 1.0);
        assert_eq!(a.double_value(&[3, 4]), 0.0, "organs are separate rings");
    }
}
