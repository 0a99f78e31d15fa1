//! Reusable models. Built from an `nn::Path` so their weights live in the run's VarStore (and so
//! in checkpoints); the same code runs on CPU and CUDA.

pub mod gaussian;
pub mod graph;
pub mod local;
pub mod lowrank;
pub mod oracle;
pub mod resnet;
pub mod reversal;
pub mod set_attention;
pub mod spiking;
pub mod stochastic;
pub mod transformer;
pub mod wta_crs;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::Tensor;

pub use reversal::GradientReversal;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// Fully connected layers `hidden`, inputs flattened.
    Mlp,
    /// 3×3 conv blocks (`channels`, each conv + activation + 2×2 max-pool), then `hidden`.
    Cnn,
    /// CIFAR ResNet of depth `depth` (6n+2: 20, 32, 44, 56).
    Resnet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    Relu,
    Tanh,
    Sigmoid,
    LeakyRelu,
    Elu,
    Gelu,
    Identity,
}

impl Activation {
    pub fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Activation::Relu => x.relu(),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => x.sigmoid(),
            Activation::LeakyRelu => x.leaky_relu(),
            Activation::Elu => x.elu(),
            Activation::Gelu => x.gelu("none"),
            Activation::Identity => x.shallow_clone(),
        }
    }
}

/// `[model]` in an experiment config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    pub arch: Arch,
    /// Widths of the fully connected hidden layers.
    pub hidden: Vec<i64>,
    /// Output channels of the conv blocks (cnn only).
    pub channels: Vec<i64>,
    pub activation: Activation,
    /// Dropout probability after each hidden activation (0 = none).
    pub dropout: f64,
    /// ResNet depth (resnet only).
    pub depth: i64,
    /// Batch norm after each hidden linear layer (mlp only).
    pub batch_norm: bool,
    /// Ghost batch norm: statistics over virtual batches of this size (0 = the whole batch).
    pub ghost_batch: i64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            arch: Arch::Mlp,
            hidden: vec![64, 64],
            channels: vec![32, 64],
            activation: Activation::Relu,
            dropout: 0.0,
            depth: 20,
            batch_norm: false,
            ghost_batch: 0,
        }
    }
}

impl crate::config::Check for ModelConfig {
    fn check(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.dropout) {
            bail!("model.dropout must be in [0, 1), got {}", self.dropout);
        }
        if self.hidden.iter().chain(&self.channels).any(|&w| w < 1) {
            bail!("model.hidden and model.channels need positive widths");
        }
        let has_bn = self.batch_norm || self.arch == Arch::Resnet;
        if self.ghost_batch < 0 || (self.ghost_batch > 0 && !has_bn) {
            bail!("model.ghost_batch needs batch norm (model.batch_norm = true, or arch = \"resnet\") and a size >= 1 (0 = off)");
        }
        if self.batch_norm && self.arch != Arch::Mlp {
            bail!("model.batch_norm applies to model.arch = \"mlp\" (the resnet has its own)");
        }
        Ok(())
    }
}

/// Batch norm whose training statistics come from virtual ("ghost") batches of `ghost_size`
/// rows inside the batch (Hoffer et al. 2017): each ghost batch is normalised by its own mean
/// and variance and updates the running statistics in turn. `ghost_size` 0 (or ≥ the batch)
/// is ordinary batch norm. Evaluation uses the running statistics.
#[derive(Debug)]
pub struct GhostBatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    pub ghost_size: i64,
    momentum: f64,
    eps: f64,
}

impl GhostBatchNorm {
    pub fn new(p: &nn::Path, features: i64, ghost_size: i64) -> Self {
        GhostBatchNorm {
            weight: p.ones("weight", &[features]),
            bias: p.zeros("bias", &[features]),
            running_mean: p.zeros_no_train("running_mean", &[features]),
            running_var: p.ones_no_train("running_var", &[features]),
            ghost_size,
            momentum: 0.1,
            eps: 1e-5,
        }
    }
}

impl ModuleT for GhostBatchNorm {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let norm = |x: &Tensor| {
            x.batch_norm(
                Some(&self.weight),
                Some(&self.bias),
                Some(&self.running_mean),
                Some(&self.running_var),
                train,
                self.momentum,
                self.eps,
                false,
            )
        };
        let n = xs.size()[0];
        if !train || self.ghost_size <= 0 || self.ghost_size >= n {
            return norm(xs);
        }
        let parts: Vec<Tensor> = xs.split(self.ghost_size, 0).iter().map(norm).collect();
        Tensor::cat(&parts, 0)
    }
}

/// Multi-layer perceptron; the last layer is linear (logits). Optionally (ghost) batch norm
/// between each hidden linear layer and its activation.
#[derive(Debug)]
pub struct Mlp {
    layers: Vec<nn::Linear>,
    norms: Vec<GhostBatchNorm>,
    activation: Activation,
    dropout: f64,
}

impl Mlp {
    pub fn new(
        p: &nn::Path,
        n_in: i64,
        hidden: &[i64],
        n_out: i64,
        activation: Activation,
        dropout: f64,
    ) -> Self {
        let widths: Vec<i64> = std::iter::once(n_in)
            .chain(hidden.iter().copied())
            .chain([n_out])
            .collect();
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| nn::linear(p / format!("fc{i}"), w[0], w[1], Default::default()))
            .collect();
        Mlp {
            layers,
            norms: vec![],
            activation,
            dropout,
        }
    }

    /// Adds batch norm (ghost batches of `ghost_size`; 0 = the whole batch) to every hidden layer.
    pub fn with_batch_norm(mut self, p: &nn::Path, ghost_size: i64) -> Self {
        let hidden = self.layers.len() - 1;
        self.norms = (0..hidden)
            .map(|i| {
                let width = self.layers[i].ws.size()[0];
                GhostBatchNorm::new(&(p / format!("bn{i}")), width, ghost_size)
            })
            .collect();
        self
    }
}

impl ModuleT for Mlp {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut h = xs.flatten(1, -1);
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            h = h.apply(layer);
            if i < last {
                if let Some(bn) = self.norms.get(i) {
                    h = bn.forward_t(&h, train);
                }
                h = self.activation.apply(&h);
                if self.dropout > 0.0 {
                    h = h.dropout(self.dropout, train);
                }
            }
        }
        h
    }
}

/// Small CNN for image inputs [c, h, w].
#[derive(Debug)]
pub struct SmallCnn {
    convs: Vec<nn::Conv2D>,
    head: Mlp,
    activation: Activation,
}

impl SmallCnn {
    pub fn new(p: &nn::Path, input: &[i64], cfg: &ModelConfig, n_out: i64) -> Result<Self> {
        let &[c, h, w] = input else {
            bail!("model.arch = \"cnn\" needs image inputs [channels, height, width], got shape {input:?}; use model.arch = \"mlp\"");
        };
        let pad = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        let (mut ch, mut hh, mut ww) = (c, h, w);
        let mut convs = vec![];
        for (i, &out) in cfg.channels.iter().enumerate() {
            convs.push(nn::conv2d(p / format!("conv{i}"), ch, out, 3, pad));
            (ch, hh, ww) = (out, hh / 2, ww / 2);
        }
        if hh < 1 || ww < 1 {
            bail!(
                "model.channels has {} pooling blocks, too many for {h}x{w} images",
                cfg.channels.len()
            );
        }
        let head = Mlp::new(
            &(p / "head"),
            ch * hh * ww,
            &cfg.hidden,
            n_out,
            cfg.activation,
            cfg.dropout,
        );
        Ok(SmallCnn {
            convs,
            head,
            activation: cfg.activation,
        })
    }
}

impl ModuleT for SmallCnn {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut h = xs.shallow_clone();
        for conv in &self.convs {
            h = self.activation.apply(&h.apply(conv)).max_pool2d_default(2);
        }
        self.head.forward_t(&h, train)
    }
}

/// Gaussian noise injection that makes a layer a stochastic channel, so I(X; layer) is finite.
/// Active in training *and* evaluation: the noisy network is the object being measured.
/// `relative` = false adds N(0, σ²) (Goldfeld et al.); true adds σ·|x|·N(0, 1) (Butakov et al.).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaussianNoise {
    pub std: f64,
    pub relative: bool,
}

impl GaussianNoise {
    pub fn forward(&self, x: &Tensor) -> Tensor {
        if self.std == 0.0 {
            return x.shallow_clone();
        }
        let eps = x.randn_like() * self.std;
        if self.relative {
            x + eps * x.abs().detach()
        } else {
            x + eps
        }
    }
}

impl ModuleT for GaussianNoise {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        self.forward(xs)
    }
}

/// The classifier network a config asks for, for inputs of `input_shape` and `n_out` classes.
pub fn classifier(
    p: &nn::Path,
    cfg: &ModelConfig,
    input_shape: &[i64],
    n_out: i64,
) -> Result<Box<dyn ModuleT>> {
    use crate::config::Check;
    cfg.check()?;
    Ok(match cfg.arch {
        Arch::Mlp => {
            let mlp = Mlp::new(
                p,
                input_shape.iter().product(),
                &cfg.hidden,
                n_out,
                cfg.activation,
                cfg.dropout,
            );
            Box::new(if cfg.batch_norm {
                mlp.with_batch_norm(p, cfg.ghost_batch)
            } else {
                mlp
            })
        }
        Arch::Cnn => Box::new(SmallCnn::new(p, input_shape, cfg, n_out)?),
        Arch::Resnet => Box::new(resnet::ResNet::new(
            p,
            input_shape,
            cfg.depth,
            n_out,
            cfg.ghost_batch,
        )?),
    })
}

/// A model initialised from the run seed on the CPU (so CPU and CUDA runs start from the
/// same weights), then moved to `device`.
pub fn build_on<T>(
    seed: u64,
    device: tch::Device,
    build: impl FnOnce(&nn::Path) -> Result<T>,
) -> Result<(nn::VarStore, T)> {
    crate::rng::reseed(seed, crate::rng::Stream::Init, 0, 0);
    let mut vs = nn::VarStore::new(tch::Device::Cpu);
    let model = build(&vs.root())?;
    vs.set_device(device);
    Ok((vs, model))
}

/// The classifier a config asks for, built with `build_on`.
pub fn build_classifier(
    cfg: &ModelConfig,
    input_shape: &[i64],
    n_out: i64,
    device: tch::Device,
    seed: u64,
) -> Result<(nn::VarStore, Box<dyn ModuleT>)> {
    build_on(seed, device, |p| classifier(p, cfg, input_shape, n_out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn mlp_and_cnn_shapes() {
        let _rng = crate::rng::serial();
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = ModelConfig::default();
        let mlp = classifier(&vs.root().sub("a"), &cfg, &[1, 8, 8], 10).unwrap();
        let x = Tensor::randn([5, 1, 8, 8], (Kind::Float, Device::Cpu));
        assert_eq!(mlp.forward_t(&x, true).size(), vec![5, 10]);
        let cnn_cfg = ModelConfig {
            arch: Arch::Cnn,
            channels: vec![4, 8],
            ..cfg.clone()
        };
        let cnn = classifier(&vs.root().sub("b"), &cnn_cfg, &[1, 8, 8], 10).unwrap();
        assert_eq!(cnn.forward_t(&x, false).size(), vec![5, 10]);
        let e = classifier(&vs.root().sub("c"), &cnn_cfg, &[2], 2)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("needs image inputs"), "{e}");
    }

    #[test]
    fn ghost_batch_norm_is_batch_norm_at_full_ghost_size_and_per_ghost_otherwise() {
        let _rng = crate::rng::serial();
        tch::manual_seed(4);
        let x = Tensor::randn([64, 5], (Kind::Float, Device::Cpu)) * 3.0 + 1.0;
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = nn::BatchNormConfig {
            ws_init: nn::Init::Const(1.0),
            ..Default::default()
        };
        let bn = nn::batch_norm1d(vs.root() / "bn", 5, cfg);
        let ghost = GhostBatchNorm::new(&(vs.root() / "ghost"), 5, 64);
        let (a, b) = (x.apply_t(&bn, true), ghost.forward_t(&x, true));
        assert!(a.allclose(&b, 1e-5, 1e-6, false));
        assert!(bn
            .running_mean
            .allclose(&ghost.running_mean, 1e-6, 1e-7, false));
        assert!(bn
            .running_var
            .allclose(&ghost.running_var, 1e-6, 1e-7, false));
        assert!(x
            .apply_t(&bn, false)
            .allclose(&ghost.forward_t(&x, false), 1e-5, 1e-6, false));
        // Ghost batches of 16: each quarter is standardised on its own.
        let g16 = GhostBatchNorm::new(&(vs.root() / "g16"), 5, 16);
        let y = g16.forward_t(&x, true);
        for q in 0..4 {
            let part = y.narrow(0, q * 16, 16);
            let mean = part
                .mean_dim(0, false, Kind::Float)
                .abs()
                .max()
                .double_value(&[]);
            assert!(mean < 1e-5, "ghost batch {q} mean {mean}");
        }
        assert!(!y.allclose(&a, 1e-3, 1e-3, false));
    }

    #[test]
    fn gaussian_noise_scales_and_stays_on_in_evaluation() {
        let _rng = crate::rng::serial();
        tch::manual_seed(1);
        let x = Tensor::full([200_000], 2.0, (Kind::Double, Device::Cpu));
        let abs = GaussianNoise {
            std: 0.5,
            relative: false,
        };
        let rel = GaussianNoise {
            std: 0.5,
            relative: true,
        };
        let std = |t: Tensor| (t - 2.0).std(true).double_value(&[]);
        assert!((std(abs.forward_t(&x, false)) - 0.5).abs() < 0.01);
        assert!((std(rel.forward_t(&x, false)) - 1.0).abs() < 0.01);
        let zero = x.zeros_like();
        assert!(
            rel.forward(&zero).equal(&zero),
            "relative noise vanishes at 0"
        );
        let off = GaussianNoise {
            std: 0.0,
            relative: false,
        };
        assert!(off.forward(&x).equal(&x));
    }

    #[test]
    fn dropout_only_in_training() {
        let _rng = crate::rng::serial();
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = ModelConfig {
            dropout: 0.5,
            ..Default::default()
        };
        let m = classifier(&vs.root(), &cfg, &[3], 2).unwrap();
        let x = Tensor::randn([64, 3], (Kind::Float, Device::Cpu));
        assert!(m.forward_t(&x, false).equal(&m.forward_t(&x, false)));
        assert!(!m.forward_t(&x, true).equal(&m.forward_t(&x, true)));
    }
}
