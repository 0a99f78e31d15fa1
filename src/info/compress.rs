//! Compressors for the lossy-compression route to mutual information (Butakov et al.): a
//! high-dimensional variable is mapped to a few dimensions before a k-NN estimator sees it.
//! Both are fitted on a training sample and applied to the evaluation sample; both run on the
//! sample's device.
//!
//! - PCA: the top principal directions from an SVD of the centred sample.
//! - Autoencoder: an MLP (vectors) or a small convolutional network (images [C, H, W]) with a
//!   linear bottleneck of the target width, trained with Adam on mean squared reconstruction
//!   error. Its encoder is the compressor.

use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

/// How a variable is compressed: `none`, `pca:D` or `ae:D`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(try_from = "String", into = "String")]
pub enum Compressor {
    #[default]
    None,
    Pca(i64),
    Ae(i64),
}

impl std::str::FromStr for Compressor {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            anyhow!(
                "compressor `{s}` is not none, pca:D or ae:D (D = target dimension, e.g. pca:4)"
            )
        };
        if s == "none" {
            return Ok(Compressor::None);
        }
        let (kind, dim) = s.split_once(':').ok_or_else(bad)?;
        let dim: i64 = dim.trim().parse().map_err(|_| bad())?;
        if dim < 1 {
            return Err(bad());
        }
        match kind.trim() {
            "pca" => Ok(Compressor::Pca(dim)),
            "ae" => Ok(Compressor::Ae(dim)),
            _ => Err(bad()),
        }
    }
}

impl TryFrom<String> for Compressor {
    type Error = anyhow::Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Compressor> for String {
    fn from(c: Compressor) -> String {
        c.to_string()
    }
}

impl std::fmt::Display for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Compressor::None => write!(f, "none"),
            Compressor::Pca(d) => write!(f, "pca:{d}"),
            Compressor::Ae(d) => write!(f, "ae:{d}"),
        }
    }
}

/// Autoencoder training settings (`[ae]` in configs).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AeConfig {
    /// Hidden widths of the MLP encoder (mirrored in the decoder).
    pub hidden: Vec<i64>,
    /// Channels of the stride-2 conv layers (image inputs); then one dense layer of `hidden[0]`.
    pub channels: Vec<i64>,
    pub epochs: usize,
    pub batch_size: i64,
    pub lr: f64,
}

impl Default for AeConfig {
    fn default() -> Self {
        AeConfig {
            hidden: vec![256, 64],
            channels: vec![16, 32],
            epochs: 20,
            batch_size: 128,
            lr: 1e-3,
        }
    }
}

impl crate::config::Check for AeConfig {
    fn check(&self) -> Result<()> {
        if self.hidden.is_empty() || self.hidden.iter().any(|&h| h < 1) {
            bail!("ae.hidden needs at least one positive width");
        }
        if self.channels.iter().any(|&c| c < 1) || self.epochs == 0 || self.batch_size < 1 {
            bail!("ae.channels must be positive, ae.epochs and ae.batch_size at least 1");
        }
        if self.lr.is_nan() || self.lr <= 0.0 {
            bail!("ae.lr must be positive");
        }
        Ok(())
    }
}

/// A compressor fitted to a sample.
pub enum Fitted {
    Identity,
    Pca(Pca),
    Ae(Autoencoder),
}

impl Fitted {
    /// Fits `how` on `x` ([N, d] or images [N, C, H, W]); `seed` drives the autoencoder.
    pub fn fit(how: Compressor, x: &Tensor, ae: &AeConfig, seed: i64) -> Result<Fitted> {
        Ok(match how {
            Compressor::None => Fitted::Identity,
            Compressor::Pca(d) => Fitted::Pca(Pca::fit(x, d)?),
            Compressor::Ae(d) => Fitted::Ae(Autoencoder::fit(x, d, ae, seed)?),
        })
    }

    /// The compressed rows [N, D] (inputs flattened for `none`).
    pub fn apply(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| match self {
            Fitted::Identity => x.flatten(1, -1).to_kind(Kind::Double),
            Fitted::Pca(p) => p.apply(x),
            Fitted::Ae(a) => a.encode(x),
        })
    }
}

/// The top `dim` principal directions of a centred sample.
pub struct Pca {
    mean: Tensor,
    /// [d, dim], orthonormal columns.
    components: Tensor,
    /// Fraction of the variance the kept directions explain.
    pub explained: f64,
}

impl Pca {
    pub fn fit(x: &Tensor, dim: i64) -> Result<Pca> {
        let x = x.flatten(1, -1).to_kind(Kind::Double);
        let (n, d) = (x.size()[0], x.size()[1]);
        if dim > d.min(n) {
            bail!("pca:{dim} asks for more dimensions than the {n}×{d} sample has");
        }
        let mean = x.mean_dim(0, true, Kind::Double);
        let (_, s, v) = tch::no_grad(|| (&x - &mean).svd(true, true));
        let mut components = v.narrow(1, 0, dim);
        // Fix each direction's sign (largest |entry| positive) so the result does not depend
        // on the SVD implementation, e.g. CPU vs CUDA.
        let pivot = components.abs().argmax(0, true);
        let sign = components.gather(0, &pivot, false).sign();
        components *= sign.where_scalarother(&sign.ne(0), 1.0);
        let var = s.square();
        let explained = (var.narrow(0, 0, dim).sum(Kind::Double)
            / var.sum(Kind::Double).clamp_min(1e-300))
        .double_value(&[]);
        Ok(Pca {
            mean,
            components,
            explained,
        })
    }

    pub fn apply(&self, x: &Tensor) -> Tensor {
        (x.flatten(1, -1).to_kind(Kind::Double) - &self.mean).matmul(&self.components)
    }
}

/// An autoencoder whose encoder compresses to `dim` numbers.
pub struct Autoencoder {
    _vs: nn::VarStore,
    encoder: nn::Sequential,
    /// Input scaling learned from the training sample (so any input range trains alike).
    mean: Tensor,
    scale: Tensor,
    /// Mean squared reconstruction error (standardised units) in the last epoch.
    pub final_loss: f64,
}

impl Autoencoder {
    pub fn fit(x: &Tensor, dim: i64, cfg: &AeConfig, seed: i64) -> Result<Autoencoder> {
        crate::config::Check::check(cfg)?;
        let device = x.device();
        let x = x.to_kind(Kind::Float);
        let mean = x.mean(Kind::Float);
        let scale = x.std(true).clamp_min(1e-8);
        let xs = (&x - &mean) / &scale;
        tch::manual_seed(seed);
        let mut vs = nn::VarStore::new(Device::Cpu);
        let (encoder, decoder) = build(&vs.root(), &x.size()[1..], dim, cfg)?;
        vs.set_device(device);
        let mut opt = crate::optim::adam(&vs, cfg.lr)?;
        let n = xs.size()[0];
        let mut final_loss = f64::NAN;
        for epoch in 0..cfg.epochs {
            tch::manual_seed(seed.wrapping_add(epoch as i64 + 1));
            let perm = Tensor::randperm(n, (Kind::Int64, Device::Cpu)).to_device(device);
            let mut total = Tensor::zeros([], (Kind::Double, device));
            for idx in perm.split(cfg.batch_size, 0) {
                let b = xs.index_select(0, &idx);
                opt.zero_grad();
                let loss = decoder
                    .forward(&encoder.forward(&b))
                    .mse_loss(&b, tch::Reduction::Mean);
                loss.backward();
                opt.step();
                total += loss.detach().to_kind(Kind::Double) * idx.size()[0] as f64;
            }
            final_loss = total.double_value(&[]) / n as f64;
            if !final_loss.is_finite() {
                bail!(
                    "the autoencoder diverged in epoch {}: lower ae.lr",
                    epoch + 1
                );
            }
        }
        Ok(Autoencoder {
            _vs: vs,
            encoder,
            mean,
            scale,
            final_loss,
        })
    }

    pub fn encode(&self, x: &Tensor) -> Tensor {
        let xs = (x.to_kind(Kind::Float) - &self.mean) / &self.scale;
        let parts: Vec<Tensor> = xs
            .split(4096, 0)
            .iter()
            .map(|b| self.encoder.forward(b))
            .collect();
        Tensor::cat(&parts, 0).to_kind(Kind::Double)
    }
}

/// Encoder and decoder for inputs of `shape` (without the batch dimension).
fn build(
    p: &nn::Path,
    shape: &[i64],
    dim: i64,
    cfg: &AeConfig,
) -> Result<(nn::Sequential, nn::Sequential)> {
    let act = |x: &Tensor| x.leaky_relu();
    match *shape {
        [c, h, w] if !cfg.channels.is_empty() => {
            let levels = cfg.channels.len() as u32;
            let f = 2i64.pow(levels);
            if h % f != 0 || w % f != 0 {
                bail!("a conv autoencoder with {levels} stride-2 layers needs height and width divisible by {f}, got {h}x{w}; change ae.channels");
            }
            let s2 = nn::ConvConfig {
                stride: 2,
                padding: 1,
                ..Default::default()
            };
            let t2 = nn::ConvTransposeConfig {
                stride: 2,
                padding: 1,
                output_padding: 1,
                ..Default::default()
            };
            let (e, dpath) = (p / "encoder", p / "decoder");
            let mut enc = nn::seq();
            let mut ch = c;
            for (i, &out) in cfg.channels.iter().enumerate() {
                enc = enc
                    .add(nn::conv2d(&e / format!("conv{i}"), ch, out, 3, s2))
                    .add_fn(act);
                ch = out;
            }
            let (hh, ww) = (h / f, w / f);
            let flat = ch * hh * ww;
            let hidden = cfg.hidden[0];
            enc = enc
                .add_fn(|x| x.flatten(1, -1))
                .add(nn::linear(&e / "fc", flat, hidden, Default::default()))
                .add_fn(act)
                .add(nn::linear(
                    &e / "bottleneck",
                    hidden,
                    dim,
                    Default::default(),
                ));
            let mut dec = nn::seq()
                .add(nn::linear(&dpath / "fc0", dim, hidden, Default::default()))
                .add_fn(act)
                .add(nn::linear(&dpath / "fc1", hidden, flat, Default::default()))
                .add_fn(act)
                .add_fn(move |x| x.view([-1, ch, hh, ww]));
            let outs: Vec<i64> = cfg
                .channels
                .iter()
                .rev()
                .skip(1)
                .copied()
                .chain([c])
                .collect();
            for (i, &out) in outs.iter().enumerate() {
                dec = dec.add(nn::conv_transpose2d(
                    &dpath / format!("deconv{i}"),
                    ch,
                    out,
                    3,
                    t2,
                ));
                if i + 1 < outs.len() {
                    dec = dec.add_fn(act);
                }
                ch = out;
            }
            Ok((enc, dec))
        }
        _ => {
            let d_in: i64 = shape.iter().product();
            let widths: Vec<i64> = std::iter::once(d_in)
                .chain(cfg.hidden.iter().copied())
                .collect();
            let (e, dpath) = (p / "encoder", p / "decoder");
            let mut enc = nn::seq().add_fn(|x| x.flatten(1, -1));
            for (i, w) in widths.windows(2).enumerate() {
                enc = enc
                    .add(nn::linear(
                        &e / format!("fc{i}"),
                        w[0],
                        w[1],
                        Default::default(),
                    ))
                    .add_fn(act);
            }
            enc = enc.add(nn::linear(
                &e / "bottleneck",
                *widths.last().unwrap_or(&d_in),
                dim,
                Default::default(),
            ));
            let back: Vec<i64> = std::iter::once(dim)
                .chain(widths.iter().rev().copied())
                .collect();
            let mut dec = nn::seq();
            for (i, w) in back.windows(2).enumerate() {
                dec = dec.add(nn::linear(
                    &dpath / format!("fc{i}"),
                    w[0],
                    w[1],
                    Default::default(),
                ));
                if i + 2 < back.len() {
                    dec = dec.add_fn(act);
                }
            }
            let shape = shape.to_vec();
            Ok((
                enc,
                dec.add_fn(move |x| {
                    x.view(
                        [-1].iter()
                            .chain(&shape)
                            .copied()
                            .collect::<Vec<i64>>()
                            .as_slice(),
                    )
                }),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::{bump_images, correlated_gaussians, random_embedding, rho_for_mi};
    use crate::info::mi::{mutual_information, MiEstimator, MiParams, Var};

    fn ksg(x: &Tensor, y: &Tensor) -> f64 {
        mutual_information(
            MiEstimator::Ksg,
            &MiParams::default(),
            x,
            Var::Continuous(y),
        )
        .unwrap()
    }

    /// The acceptance for the lossy pipeline: Gaussian MI up to 4 nats embedded in 256
    /// dimensions, PCA back to the true dimension (fitted on its own sample), within 10% + 0.05.
    #[test]
    fn pca_recovers_embedded_gaussians() {
        let _rng = crate::rng::serial();
        tch::manual_seed(11);
        let (qx, qy) = (random_embedding(2, 256), random_embedding(2, 256));
        let embed = |u: &Tensor, q: &Tensor| u.to_kind(Kind::Double).matmul(&q.tr());
        let fit = Tensor::randn([2000, 2], (Kind::Double, Device::Cpu));
        let (px, py) = (
            Pca::fit(&embed(&fit, &qx), 2).unwrap(),
            Pca::fit(&embed(&fit, &qy), 2).unwrap(),
        );
        assert!(px.explained > 0.999999, "{}", px.explained);
        for mi in [1.0, 2.0, 4.0] {
            let (u, w) = correlated_gaussians(5000, &rho_for_mi(mi, 2));
            let e = ksg(&px.apply(&embed(&u, &qx)), &py.apply(&embed(&w, &qy)));
            assert!((e - mi).abs() <= 0.1 * mi + 0.05, "true {mi}: {e}");
        }
        assert!(Pca::fit(&fit, 3).is_err(), "more components than columns");
    }

    #[test]
    fn autoencoder_keeps_the_information_of_bump_images() {
        let _rng = crate::rng::serial();
        tch::manual_seed(12);
        let fit = bump_images(
            &Tensor::randn([4000, 2], (Kind::Double, Device::Cpu)),
            16,
            1.5,
        );
        let cfg = AeConfig {
            epochs: 20,
            ..Default::default()
        };
        let ae = Fitted::fit(Compressor::Ae(2), &fit, &cfg, 3).unwrap();
        let (u, w) = correlated_gaussians(3000, &rho_for_mi(2.0, 2));
        let (x, y) = (bump_images(&u, 16, 1.5), bump_images(&w, 16, 1.5));
        let e = ksg(&ae.apply(&x), &ae.apply(&y));
        assert!(
            (e - 2.0).abs() < 0.4,
            "2 nats through a 2-d autoencoder code: {e}"
        );
        assert_eq!("ae:3".parse::<Compressor>().unwrap(), Compressor::Ae(3));
        assert!("pca:0".parse::<Compressor>().is_err() && "svd:2".parse::<Compressor>().is_err());
    }
}
