//! Difference-of-Gaussians keypoints (the detector stage of SIFT, Lowe 2004) on tch tensors,
//! and the saliency distribution built from them (Wicker et al. 2018): no OpenCV.
//!
//! Grey images [N, 1, H, W] in [0, 1] are upsampled ×`upsample` (bilinear, half-pixel centres
//! as `cv2.resize`); all keypoint coordinates and sizes are in units of that upsampled image.
//! As SIFT does with any input, the upsampled image is taken to carry blur `input_blur` (0.5)
//! and the first level is blurred to σ_b = σ₀ (by √(σ₀² − input_blur²)); a larger
//! `input_blur` (u/2 describes bilinear upsampling better) moves the whole scale space up.
//! Each of `octaves` octaves holds S + 3 Gaussian
//! levels L_s = G(σ_b·2^(s/S)) ∗ I (each blurred from the previous one by the difference), the
//! S + 2 differences D_s = L_{s+1} − L_s, and the next octave starts from L_S subsampled by 2.
//! A keypoint is a sample of D_1..D_S that is the strict maximum (or minimum) of its 3×3×3
//! neighbourhood in (scale, y, x), with |D| > `contrast` and a principal-curvature ratio below
//! `edge_ratio` (tr(H)²/det(H) < (r + 1)²/r, det(H) > 0, H the 2×2 Hessian of D by central
//! differences). Its position is the sample's (x, y)·2^o, its size the SIFT diameter
//! 2σ_b·2^(o + s/S), its response |D|. Deviation from SIFT: no sub-pixel/sub-scale
//! refinement and no orientation or descriptor (the attack needs neither).
//!
//! Saliency (the paper's §5): a mixture of 2-D Gaussians, one per keypoint k, with weight ∝
//! response_k, mean (x_k, y_k) and standard deviation size_k + c (c = 15 upsampled pixels
//! in the official code, i.e. 1 pixel at ×15).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Detector settings (`[keypoints]` in a config).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DogConfig {
    /// Upsampling factor before detection (the official code: 15).
    pub upsample: i64,
    /// Blur of the first level (SIFT: 1.6).
    pub sigma0: f64,
    /// Blur the input is assumed to carry (SIFT: 0.5, whatever the input).
    pub input_blur: f64,
    /// Scales per octave S (SIFT: 3).
    pub scales: usize,
    pub octaves: usize,
    /// |DoG| threshold on [0, 1] intensities.
    pub contrast: f64,
    /// Largest ratio of principal curvatures r (SIFT: 10).
    pub edge_ratio: f64,
    /// Images per detection pass (memory only).
    pub chunk: i64,
}

impl Default for DogConfig {
    fn default() -> Self {
        DogConfig {
            upsample: 15,
            sigma0: 1.6,
            input_blur: 0.5,
            scales: 3,
            octaves: 5,
            contrast: 0.01,
            edge_ratio: 10.0,
            chunk: 8,
        }
    }
}

impl crate::config::Check for DogConfig {
    fn check(&self) -> Result<()> {
        if self.upsample < 1 || self.scales < 1 || self.octaves < 1 || self.chunk < 1 {
            bail!("keypoints.upsample, keypoints.scales, keypoints.octaves and keypoints.chunk must be >= 1");
        }
        if self.sigma0 <= 0.0 || self.contrast < 0.0 || self.edge_ratio < 1.0 {
            bail!("keypoints.sigma0 must be > 0, keypoints.contrast >= 0 and keypoints.edge_ratio >= 1");
        }
        if self.input_blur < 0.0 {
            bail!("keypoints.input_blur must be >= 0");
        }
        Ok(())
    }
}

/// One keypoint, in upsampled-image pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Keypoint {
    pub x: f64,
    pub y: f64,
    /// SIFT diameter 2σ.
    pub size: f64,
    pub response: f64,
}

impl DogConfig {
    /// Total blur of the first level, in upsampled pixels.
    pub fn base_sigma(&self) -> f64 {
        self.sigma0.max(self.input_blur)
    }
}

/// Normalised 1-D Gaussian of standard deviation `sigma`, radius ⌈3σ⌉.
fn kernel(sigma: f64, dev: Device) -> Tensor {
    let r = (3.0 * sigma).ceil().max(1.0) as i64;
    let x = Tensor::arange_start(-r, r + 1, (Kind::Float, dev));
    let k = (-(&x * &x) / (2.0 * sigma * sigma)).exp();
    &k / k.sum(Kind::Float)
}

/// Separable Gaussian blur of [N, 1, H, W] with mirrored borders (OpenCV's BORDER_REFLECT_101);
/// the radius is capped below the image side so the mirror stays defined.
fn blur(x: &Tensor, sigma: f64) -> Tensor {
    let k = kernel(sigma, x.device());
    let n = k.size()[0];
    let side = x.size()[2].min(x.size()[3]);
    let (k, r) = if n / 2 >= side {
        let r = side - 1;
        let k = k.narrow(0, n / 2 - r, 2 * r + 1);
        (&k / k.sum(Kind::Float), r)
    } else {
        (k, n / 2)
    };
    let len = 2 * r + 1;
    let h = x.reflection_pad2d([r, r, 0, 0]).conv2d(
        &k.view([1, 1, 1, len]),
        None::<Tensor>,
        1,
        0,
        1,
        1,
    );
    h.reflection_pad2d([0, 0, r, r])
        .conv2d(&k.view([1, 1, len, 1]), None::<Tensor>, 1, 0, 1, 1)
}

/// Keypoints of each image of [N, 1, H, W] (values in [0, 1]), strongest first.
pub fn detect(images: &Tensor, cfg: &DogConfig) -> Result<Vec<Vec<Keypoint>>> {
    crate::config::Check::check(cfg)?;
    let size = images.size();
    if size.len() != 4 || size[1] != 1 {
        bail!("keypoints: need grey images [N, 1, H, W], got {size:?}");
    }
    let mut out = Vec::with_capacity(size[0] as usize);
    tch::no_grad(|| -> Result<()> {
        for chunk in images.to_kind(Kind::Float).split(cfg.chunk, 0) {
            out.extend(detect_chunk(&chunk, cfg)?);
        }
        Ok(())
    })?;
    Ok(out)
}

fn detect_chunk(images: &Tensor, cfg: &DogConfig) -> Result<Vec<Vec<Keypoint>>> {
    let n = images.size()[0];
    let (h, w) = (images.size()[2], images.size()[3]);
    let u = cfg.upsample;
    let s = cfg.scales as i64;
    let mut base = if u > 1 {
        images.upsample_bilinear2d([h * u, w * u], false, None, None)
    } else {
        images.shallow_clone()
    };
    let first = (cfg.sigma0 * cfg.sigma0 - cfg.input_blur * cfg.input_blur).max(0.01);
    base = blur(&base, first.sqrt());
    let sb = cfg.base_sigma();
    let mut found: Vec<Vec<Keypoint>> = vec![vec![]; n as usize];
    let r = cfg.edge_ratio;
    let edge_bound = (r + 1.0) * (r + 1.0) / r;
    for o in 0..cfg.octaves {
        let scale = (1i64 << o) as f64;
        let (hh, ww) = (base.size()[2], base.size()[3]);
        if hh < 3 || ww < 3 {
            break;
        }
        // Gaussian levels L_0..L_{S+2}: blur from the previous level by the difference.
        let mut levels = vec![base.shallow_clone()];
        for i in 1..(s + 3) {
            let prev = sb * 2f64.powf((i - 1) as f64 / s as f64);
            let next = sb * 2f64.powf(i as f64 / s as f64);
            let d = (next * next - prev * prev).sqrt();
            let l = blur(&levels[(i - 1) as usize], d);
            levels.push(l);
        }
        let dogs: Vec<Tensor> = (0..(s + 2) as usize)
            .map(|i| &levels[i + 1] - &levels[i])
            .collect();
        let d = Tensor::stack(&dogs, 2); // [N, 1, S+2, H, W]
        let mx = d.max_pool3d([3, 3, 3], [1, 1, 1], [1, 1, 1], [1, 1, 1], false);
        let mn = -(-&d).max_pool3d([3, 3, 3], [1, 1, 1], [1, 1, 1], [1, 1, 1], false);
        // Extrema: equal to the 3×3×3 maximum (or minimum) with |D| > contrast, so the flat
        // background (D = 0) never counts; exact ties between neighbours would both count.
        let is_ext =
            (d.eq_tensor(&mx) * d.gt(cfg.contrast)) + (d.eq_tensor(&mn) * d.lt(-cfg.contrast));
        // Interior scales 1..S and pixels one away from the border.
        let mask = Tensor::zeros_like(&is_ext);
        let _ = mask
            .narrow(2, 1, s)
            .narrow(3, 1, hh - 2)
            .narrow(4, 1, ww - 2)
            .fill_(1.0);
        let mut cand = is_ext.to_kind(Kind::Float) * mask;
        // Edge test on the Hessian of D at each candidate.
        let c = d.narrow(3, 1, hh - 2).narrow(4, 1, ww - 2);
        let sh = |dy: i64, dx: i64| d.narrow(3, 1 + dy, hh - 2).narrow(4, 1 + dx, ww - 2);
        let dxx = sh(0, 1) + sh(0, -1) - &c * 2.0;
        let dyy = sh(1, 0) + sh(-1, 0) - &c * 2.0;
        let dxy = (sh(1, 1) - sh(1, -1) - sh(-1, 1) + sh(-1, -1)) / 4.0;
        let tr = &dxx + &dyy;
        let det = &dxx * &dyy - &dxy * &dxy;
        let ok = det.gt(0.0) * (&tr * &tr).lt_tensor(&(&det * edge_bound));
        let mut inner = cand.narrow(3, 1, hh - 2).narrow(4, 1, ww - 2);
        inner *= ok.to_kind(Kind::Float);
        cand = cand.gt(0.5);
        let idx = cand.nonzero(); // [M, 5]: n, 0, scale, y, x
        let m = idx.size()[0];
        if m > 0 {
            let vals = d.masked_select(&cand).abs().to_kind(Kind::Double);
            let idx: Vec<i64> = Vec::try_from(idx.to_device(Device::Cpu).flatten(0, -1))?;
            let vals: Vec<f64> = Vec::try_from(vals.to_device(Device::Cpu))?;
            for (j, v) in vals.into_iter().enumerate() {
                let row = &idx[j * 5..j * 5 + 5];
                let sigma = sb * scale * 2f64.powf(row[2] as f64 / s as f64);
                found[row[0] as usize].push(Keypoint {
                    x: row[4] as f64 * scale,
                    y: row[3] as f64 * scale,
                    size: 2.0 * sigma,
                    response: v,
                });
            }
        }
        // Next octave: L_S subsampled by 2.
        base = levels[s as usize]
            .slice(2, 0, None, 2)
            .slice(3, 0, None, 2)
            .contiguous();
    }
    for k in &mut found {
        k.sort_by(|a, b| b.response.total_cmp(&a.response));
    }
    Ok(found)
}

/// The saliency mixture of one image's keypoints: weights ∝ response (uniform when all are
/// 0), standard deviation size + `sigma_const`, all in upsampled pixels. An image without
/// keypoints gets one broad component over the whole image (mean at its centre, standard
/// deviation half its side), so sampling is always defined.
pub fn saliency(kps: &[Keypoint], side: f64, sigma_const: f64) -> Vec<(Keypoint, f64, f64)> {
    if kps.is_empty() {
        let c = Keypoint {
            x: side / 2.0,
            y: side / 2.0,
            size: side / 2.0,
            response: 1.0,
        };
        return vec![(c, 1.0, side / 2.0)];
    }
    let total: f64 = kps.iter().map(|k| k.response).sum();
    kps.iter()
        .map(|k| {
            let w = if total > 0.0 {
                k.response / total
            } else {
                1.0 / kps.len() as f64
            };
            (*k, w, k.size + sigma_const)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gaussian blobs of known centres and widths on a 28×28 image.
    fn blobs(centres: &[(f64, f64, f64)]) -> Tensor {
        let mut v = vec![0f32; 28 * 28];
        for (i, p) in v.iter_mut().enumerate() {
            let (y, x) = ((i / 28) as f64, (i % 28) as f64);
            for &(cx, cy, s) in centres {
                let d2 = (x - cx).powi(2) + (y - cy).powi(2);
                *p += (-d2 / (2.0 * s * s)).exp() as f32;
            }
        }
        Tensor::from_slice(&v).view([1, 1, 28, 28])
    }

    #[test]
    fn dog_finds_the_centres_and_scales_of_gaussian_blobs() {
        let centres = [(7.0, 8.0, 1.5), (20.0, 6.0, 2.0), (13.0, 20.0, 2.5)];
        let img = blobs(&centres);
        let cfg = DogConfig {
            upsample: 4,
            sigma0: 1.6,
            scales: 3,
            octaves: 4,
            ..Default::default()
        };
        let kps = &detect(&img, &cfg).unwrap()[0];
        assert!(kps.len() >= 3, "{kps:?}");
        let u = cfg.upsample as f64;
        // Upsampled coordinates of original pixel centre c: u·c + (u − 1)/2.
        let to_orig = |v: f64| (v - (u - 1.0) / 2.0) / u;
        // The three strongest keypoints are the three blobs (one each), within a pixel of the
        // centre, at a scale within a factor 1.6 of the blob's σ (SIFT's σ ≈ blob σ for a
        // Gaussian blob; the scale grid has steps of 2^(1/3) at the octave's resolution).
        let mut matched = [false; 3];
        for k in &kps[..3] {
            let (x, y) = (to_orig(k.x), to_orig(k.y));
            let j = centres
                .iter()
                .position(|&(cx, cy, _)| (x - cx).hypot(y - cy) < 1.0)
                .unwrap_or_else(|| panic!("keypoint at ({x:.2}, {y:.2}) is on no blob: {kps:?}"));
            assert!(!matched[j], "two top keypoints on blob {j}: {kps:?}");
            matched[j] = true;
            let sigma = k.size / 2.0 / u;
            let ratio = sigma / centres[j].2;
            assert!((1.0 / 1.6..1.6).contains(&ratio), "blob {j}: σ {sigma:.2}");
            assert!(k.response > 0.02);
        }
        // A blank image has none; the saliency of none is one broad component.
        let none = &detect(
            &Tensor::zeros([1, 1, 28, 28], (Kind::Float, Device::Cpu)),
            &cfg,
        )
        .unwrap()[0];
        assert!(none.is_empty());
        let s = saliency(none, 28.0 * u, 15.0);
        assert_eq!(s.len(), 1);
        // Weights ∝ response, sum to 1, σ = size + c.
        let s = saliency(kps, 28.0 * u, 15.0);
        let total: f64 = s.iter().map(|t| t.1).sum();
        assert!((total - 1.0).abs() < 1e-12);
        assert!((s[0].2 - (kps[0].size + 15.0)).abs() < 1e-12);
        assert!(s[0].1 >= s[s.len() - 1].1);
    }

    #[test]
    fn blur_keeps_mass_and_matches_the_gaussian_variance() {
        let x = Tensor::zeros([1, 1, 41, 41], (Kind::Float, Device::Cpu));
        let _ = x.narrow(2, 20, 1).narrow(3, 20, 1).fill_(1.0);
        let b = blur(&x, 2.5);
        assert!((b.sum(Kind::Double).double_value(&[]) - 1.0).abs() < 1e-5);
        let row: Vec<f32> = Vec::try_from(b.select(2, 20).sum_dim_intlist(
            [0i64, 1].as_slice(),
            false,
            Kind::Float,
        ))
        .unwrap();
        let col_mass: f64 = row.iter().map(|&v| v as f64).sum();
        let var: f64 = row
            .iter()
            .enumerate()
            .map(|(i, &v)| v as f64 * (i as f64 - 20.0).powi(2))
            .sum::<f64>()
            / col_mass;
        assert!((var - 6.25).abs() < 0.05, "variance {var}");
    }
}
