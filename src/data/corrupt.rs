//! Test-time image corruptions at a severity, as the CheXmask-U code applies them to chest
//! X-rays (Utils/corruption.py there): additive Gaussian noise of std σ, Gaussian blur with a
//! (2s + 1)-pixel kernel (σ_blur as OpenCV picks it for that kernel), and occlusion: squares
//! of side `size` blacked out around chosen landmarks. Severity 0 is the identity for each.
//! Images are [n, c, h, w] in [0, 1]; results are clamped to [0, 1].

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Corruption {
    Noise,
    Blur,
    Occlusion,
}

impl Corruption {
    pub fn as_str(self) -> &'static str {
        match self {
            Corruption::Noise => "noise",
            Corruption::Blur => "blur",
            Corruption::Occlusion => "occlusion",
        }
    }
}

/// x + σ·ε, clamped (draws from the global generator).
pub fn gaussian_noise(x: &Tensor, sigma: f64) -> Tensor {
    if sigma == 0.0 {
        return x.shallow_clone();
    }
    (x + x.randn_like() * sigma).clamp(0.0, 1.0)
}

/// The normalised 1-D Gaussian kernel of size 2s + 1 with OpenCV's default σ for that size,
/// 0.3·((k − 1)/2 − 1) + 0.8.
pub fn blur_kernel(s: i64) -> Vec<f64> {
    let k = 2 * s + 1;
    let sigma = 0.3 * ((k as f64 - 1.0) / 2.0 - 1.0) + 0.8;
    let w: Vec<f64> = (-s..=s)
        .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f64 = w.iter().sum();
    w.into_iter().map(|v| v / total).collect()
}

/// Separable Gaussian blur with a (2s + 1) kernel, borders reflected.
pub fn blur(x: &Tensor, s: i64) -> Tensor {
    if s <= 0 {
        return x.shallow_clone();
    }
    let (n, c, h, w) = x.size4().expect("blur: images are [n, c, h, w]");
    let k = Tensor::from_slice(&blur_kernel(s))
        .to_kind(x.kind())
        .to_device(x.device());
    let flat = x.reshape([n * c, 1, h, w]);
    let pad = flat.reflection_pad2d([s, s, s, s]);
    let kx = k.view([1, 1, 1, 2 * s + 1]);
    let ky = k.view([1, 1, 2 * s + 1, 1]);
    let out = pad
        .conv2d(&kx, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1)
        .conv2d(&ky, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1);
    out.reshape([n, c, h, w])
}

/// Blacks out squares of side `size` (pixels) centred on `points` [n, p, 2] (x, y in pixels).
pub fn occlude(x: &Tensor, points: &Tensor, size: i64) -> Tensor {
    if size <= 0 {
        return x.shallow_clone();
    }
    let (_, _, h, w) = x.size4().expect("occlude: images are [n, c, h, w]");
    let half = size as f64 / 2.0;
    let dev = x.device();
    let cols = (Tensor::arange(w, (Kind::Float, dev)) + 0.5).view([1, 1, 1, w]);
    let rows = (Tensor::arange(h, (Kind::Float, dev)) + 0.5).view([1, 1, h, 1]);
    let px = points.narrow(2, 0, 1).unsqueeze(-1); // [n, p, 1, 1]
    let py = points.narrow(2, 1, 1).unsqueeze(-1);
    let inside = (cols - px)
        .abs()
        .le(half)
        .logical_and(&(rows - py).abs().le(half));
    let mask = inside.any_dim(1, true).to_kind(x.kind()); // [n, 1, h, w]
    x * (mask.neg() + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn severity_zero_is_the_identity_and_the_others_act() {
        let _rng = crate::rng::serial();
        tch::manual_seed(5);
        let x = Tensor::rand([2, 1, 16, 16], (Kind::Float, Device::Cpu));
        let pts =
            Tensor::from_slice(&[8.0f32, 8.0, 3.0, 12.0, 8.0, 8.0, 3.0, 12.0]).view([2, 2, 2]);
        assert!(gaussian_noise(&x, 0.0).equal(&x));
        assert!(blur(&x, 0).equal(&x));
        assert!(occlude(&x, &pts, 0).equal(&x));
        assert!(!gaussian_noise(&x, 0.1).equal(&x));
        // Occlusion of side 4 around (8, 8): pixels with centres within 2 px are 0.
        let o = occlude(&x, &pts, 4);
        assert_eq!(o.double_value(&[0, 0, 8, 8]), 0.0);
        assert_eq!(o.double_value(&[0, 0, 6, 6]), 0.0);
        assert_eq!(
            o.double_value(&[0, 0, 8, 11]),
            x.double_value(&[0, 0, 8, 11])
        );
        let zeros = o.eq(0.0).sum(Kind::Int64).int64_value(&[]);
        assert_eq!(zeros, 2 * (16 + 16), "two 4x4 squares per image");
    }

    #[test]
    fn blur_matches_direct_convolution_and_keeps_constants() {
        let _rng = crate::rng::serial();
        let k = blur_kernel(2);
        assert_eq!(k.len(), 5);
        assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // OpenCV's σ for ksize 5 is 1.1.
        let s = 1.1f64;
        assert!((k[1] / k[2] - (-1.0 / (2.0 * s * s)).exp()).abs() < 1e-12);
        let c = Tensor::full([1, 1, 8, 8], 0.4, (Kind::Float, Device::Cpu));
        assert!(blur(&c, 2).allclose(&c, 1e-6, 1e-6, false));
        // An interior pixel by brute force: Σ_ij k_i k_j x[r+i, c+j].
        let x = Tensor::rand([1, 1, 12, 12], (Kind::Double, Device::Cpu));
        let b = blur(&x, 2);
        let mut want = 0.0;
        for i in -2i64..=2 {
            for j in -2i64..=2 {
                want += k[(i + 2) as usize]
                    * k[(j + 2) as usize]
                    * x.double_value(&[0, 0, 6 + i, 5 + j]);
            }
        }
        assert!((b.double_value(&[0, 0, 6, 5]) - want).abs() < 1e-12);
    }
}
