//! Training-time augmentations, applied to whole batches on the data's device (no per-sample
//! host loop): random shift with zero padding, horizontal flip, small rotations, additive
//! Gaussian noise; and the pixel-space colour blending that makes an MNIST-M-like domain.
//! Randomness comes from the global generators, which the loop reseeds every step.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// `[data.augment]`: all off by default; each is identity at strength 0.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentConfig {
    /// Random translation by up to this many pixels in each direction (zero padding).
    pub shift: i64,
    /// Flip each image left-right with probability 1/2.
    pub hflip: bool,
    /// Random rotation by an angle uniform in ±rotate degrees (bilinear, zero fill).
    pub rotate: f64,
    /// Standard deviation of additive Gaussian noise.
    pub noise: f64,
}

impl AugmentConfig {
    pub fn is_identity(&self) -> bool {
        self.shift == 0 && !self.hflip && self.rotate == 0.0 && self.noise == 0.0
    }

    /// Checks the settings against an input shape ([d] or [c, h, w]).
    pub fn check(&self, input_shape: &[i64]) -> Result<()> {
        let image = input_shape.len() == 3;
        if self.shift < 0 || self.rotate < 0.0 || self.noise < 0.0 {
            bail!("data.augment.shift, rotate and noise must be >= 0");
        }
        if !image && (self.shift > 0 || self.hflip || self.rotate > 0.0) {
            bail!("data.augment.shift/hflip/rotate need image data, this dataset has inputs of shape {input_shape:?}");
        }
        Ok(())
    }

    /// Augments a batch (images [b, c, h, w] or vectors [b, d]). Pixels moved in from outside
    /// the image take the value `background` (for normalised images: what a black pixel became,
    /// so shifting before or after normalising gives the same result).
    pub fn apply(&self, x: &Tensor, background: &Tensor) -> Tensor {
        let geometric = self.rotate > 0.0 || self.shift > 0;
        let mut x = if geometric {
            x - background
        } else {
            x.shallow_clone()
        };
        if self.rotate > 0.0 {
            x = random_rotate(&x, self.rotate);
        }
        if self.shift > 0 {
            x = random_shift(&x, self.shift);
        }
        if geometric {
            x += background;
        }
        if self.hflip {
            x = random_hflip(&x);
        }
        if self.noise > 0.0 {
            x = &x + x.randn_like() * self.noise;
        }
        x
    }
}

/// Translates each image by its own (dy, dx) ∈ [−pad, pad]², filling with zeros: pad once, then
/// gather each image's window with one advanced-indexing op.
pub fn random_shift(x: &Tensor, pad: i64) -> Tensor {
    let (b, h, w) = (x.size()[0], x.size()[2], x.size()[3]);
    let dev = x.device();
    let padded = x
        .constant_pad_nd([pad, pad, pad, pad])
        .permute([0, 2, 3, 1]);
    let offsets = Tensor::randint(2 * pad + 1, [2, b], (Kind::Int64, dev));
    let rows = offsets.get(0).unsqueeze(1) + Tensor::arange(h, (Kind::Int64, dev)).unsqueeze(0);
    let cols = offsets.get(1).unsqueeze(1) + Tensor::arange(w, (Kind::Int64, dev)).unsqueeze(0);
    let batch = Tensor::arange(b, (Kind::Int64, dev)).view([b, 1, 1]);
    padded
        .index(&[
            Some(batch),
            Some(rows.view([b, h, 1])),
            Some(cols.view([b, 1, w])),
        ])
        .permute([0, 3, 1, 2])
        .contiguous()
}

/// Flips each image left-right with probability 1/2.
pub fn random_hflip(x: &Tensor) -> Tensor {
    let b = x.size()[0];
    let flip = Tensor::rand([b, 1, 1, 1], (Kind::Float, x.device())).lt(0.5);
    x.flip([3]).where_self(&flip, x)
}

/// Rotates each image by an angle uniform in ±max_degrees about its centre.
pub fn random_rotate(x: &Tensor, max_degrees: f64) -> Tensor {
    let size = x.size();
    let b = size[0];
    let angle =
        (Tensor::rand([b], (Kind::Float, x.device())) * 2.0 - 1.0) * max_degrees.to_radians();
    let (c, s) = (angle.cos(), angle.sin());
    let zero = angle.zeros_like();
    let theta = Tensor::stack(&[&c, &(-&s), &zero, &s, &c, &zero], 1)
        .view([b, 2, 3])
        .to_kind(x.kind());
    let grid = Tensor::affine_grid_generator(&theta, size.as_slice(), false);
    // interpolation 0 = bilinear, padding 0 = zeros
    x.grid_sampler(&grid, 0, 0, false)
}

/// MNIST-M-style blending: |texture − digit| per colour channel, for grey images in [0, 1]
/// ([b, 1, h, w]) over colour textures in [0, 1] ([b, 3, h, w]).
pub fn colour_blend(grey: &Tensor, textures: &Tensor) -> Tensor {
    (textures - grey).abs()
}

/// Smooth random colour textures in [0, 1]: coarse random colour fields upsampled bilinearly.
pub fn colour_textures(b: i64, h: i64, w: i64, coarse: i64, dev: tch::Device) -> Tensor {
    Tensor::rand([b, 3, coarse, coarse], (Kind::Float, dev)).upsample_bilinear2d(
        [h, w],
        false,
        None,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn images(b: i64) -> Tensor {
        Tensor::rand([b, 2, 6, 5], (Kind::Float, Device::Cpu))
    }

    #[test]
    fn zero_strength_is_identity_and_shapes_are_kept() {
        let _rng = crate::rng::serial();
        let x = images(4);
        let zero = Tensor::from(0.0f32);
        assert!(AugmentConfig::default().apply(&x, &zero).equal(&x));
        assert!(random_rotate(&x, 1e-9).allclose(&x, 1e-5, 1e-5, false));
        assert!(random_shift(&x, 0).equal(&x));
        let all = AugmentConfig {
            shift: 2,
            hflip: true,
            rotate: 10.0,
            noise: 0.1,
        };
        assert_eq!(all.apply(&x, &zero).size(), x.size());
        // Shifted-in pixels take the background value.
        let flat = Tensor::zeros([1, 1, 3, 3], (Kind::Float, Device::Cpu)) + 5.0;
        let bg = Tensor::from(-1.0f32);
        let shifted = AugmentConfig {
            shift: 3,
            ..Default::default()
        }
        .apply(&flat, &bg);
        let values: Vec<f32> = Vec::try_from(shifted.flatten(0, -1)).unwrap();
        assert!(values.iter().all(|v| *v == 5.0 || *v == -1.0), "{values:?}");
        assert!(all.check(&[2]).is_err());
        assert!(all.check(&[2, 6, 5]).is_ok());
    }

    #[test]
    fn shifts_are_zero_filled_translations_within_the_pad() {
        let _rng = crate::rng::serial();
        tch::manual_seed(5);
        let x = images(16) + 1.0; // strictly positive so padding zeros are recognisable
        let y = random_shift(&x, 1);
        for i in 0..16 {
            let (xi, yi) = (x.get(i), y.get(i));
            let found = (-1i64..=1).any(|dy| {
                (-1i64..=1).any(|dx| {
                    let shifted = xi
                        .constant_pad_nd([1, 1, 1, 1])
                        .narrow(1, 1 + dy, 6)
                        .narrow(2, 1 + dx, 5);
                    shifted.equal(&yi)
                })
            });
            assert!(found, "image {i} is not a translation of its input");
        }
    }

    #[test]
    fn flips_and_blends() {
        let _rng = crate::rng::serial();
        tch::manual_seed(1);
        let x = images(32);
        let y = random_hflip(&x);
        let mut flipped = 0;
        for i in 0..32 {
            if y.get(i).equal(&x.get(i).flip([2])) {
                flipped += 1;
            } else {
                assert!(y.get(i).equal(&x.get(i)));
            }
        }
        assert!((4..=28).contains(&flipped), "{flipped}");
        let grey = Tensor::ones([2, 1, 4, 4], (Kind::Float, Device::Cpu));
        let tex = colour_textures(2, 4, 4, 2, Device::Cpu);
        let out = colour_blend(&grey, &tex);
        assert_eq!(out.size(), vec![2, 3, 4, 4]);
        assert!(out.allclose(&(1.0 - &tex), 1e-6, 1e-6, false));
    }
}
