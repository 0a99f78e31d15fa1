//! The CIFAR ResNets of He et al. (2016), depth 6n+2 (ResNet-20, -32, -44, -56): a 3×3 conv
//! with 16 channels, three stages of n basic blocks (16, 32, 64 channels; stride 2 entering
//! stages 2 and 3) with parameter-free "option A" shortcuts (subsample and zero-pad channels),
//! global average pooling and a linear classifier. Batch norm everywhere (weights 1, biases 0,
//! as in PyTorch), optionally over ghost batches.

use super::GhostBatchNorm;
use anyhow::{bail, Result};
use tch::nn::{self, ModuleT};
use tch::Tensor;

#[derive(Debug)]
struct Block {
    conv1: nn::Conv2D,
    bn1: GhostBatchNorm,
    conv2: nn::Conv2D,
    bn2: GhostBatchNorm,
    /// Extra channels to pad the shortcut with (0 when shapes match).
    pad_channels: i64,
    stride: i64,
}

fn conv3x3(p: nn::Path, c_in: i64, c_out: i64, stride: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        stride,
        padding: 1,
        bias: false,
        ..Default::default()
    };
    nn::conv2d(p, c_in, c_out, 3, cfg)
}

impl Block {
    fn new(p: &nn::Path, c_in: i64, c_out: i64, stride: i64, ghost: i64) -> Self {
        Block {
            conv1: conv3x3(p / "conv1", c_in, c_out, stride),
            bn1: GhostBatchNorm::new(&(p / "bn1"), c_out, ghost),
            conv2: conv3x3(p / "conv2", c_out, c_out, 1),
            bn2: GhostBatchNorm::new(&(p / "bn2"), c_out, ghost),
            pad_channels: c_out - c_in,
            stride,
        }
    }
}

impl ModuleT for Block {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let h = x.apply(&self.conv1).apply_t(&self.bn1, train).relu();
        let h = h.apply(&self.conv2).apply_t(&self.bn2, train);
        let shortcut = if self.stride == 1 && self.pad_channels == 0 {
            x.shallow_clone()
        } else {
            let sub = x
                .slice(2, 0, None, self.stride)
                .slice(3, 0, None, self.stride);
            let half = self.pad_channels / 2;
            sub.constant_pad_nd([0, 0, 0, 0, half, self.pad_channels - half])
        };
        (h + shortcut).relu()
    }
}

#[derive(Debug)]
pub struct ResNet {
    stem: nn::Conv2D,
    bn: GhostBatchNorm,
    blocks: Vec<Block>,
    fc: nn::Linear,
}

impl ResNet {
    /// `ghost`: ghost batch size for every batch norm (0 = the whole batch).
    pub fn new(p: &nn::Path, input: &[i64], depth: i64, n_out: i64, ghost: i64) -> Result<Self> {
        let &[c, _, _] = input else {
            bail!("model.arch = \"resnet\" needs image inputs [channels, height, width], got {input:?}");
        };
        if depth < 8 || (depth - 2) % 6 != 0 {
            bail!("model.depth = {depth}: CIFAR ResNets have depth 6n+2 (20, 32, 44, 56, 110)");
        }
        let n = (depth - 2) / 6;
        let mut blocks = vec![];
        let mut c_in = 16;
        for (stage, width) in [16, 32, 64].into_iter().enumerate() {
            for i in 0..n {
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                blocks.push(Block::new(
                    &(p / format!("stage{stage}") / format!("block{i}")),
                    c_in,
                    width,
                    stride,
                    ghost,
                ));
                c_in = width;
            }
        }
        Ok(ResNet {
            stem: conv3x3(p / "stem", c, 16, 1),
            bn: GhostBatchNorm::new(&(p / "bn"), 16, ghost),
            blocks,
            fc: nn::linear(p / "fc", 64, n_out, Default::default()),
        })
    }
}

impl ModuleT for ResNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = x.apply(&self.stem).apply_t(&self.bn, train).relu();
        for b in &self.blocks {
            h = b.forward_t(&h, train);
        }
        h.adaptive_avg_pool2d([1, 1]).flatten(1, -1).apply(&self.fc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn resnet20_has_the_papers_shape_and_size() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = ResNet::new(&vs.root(), &[3, 32, 32], 20, 10, 0).unwrap();
        let params: i64 = crate::optim::trainable(&vs)
            .iter()
            .map(|(_, t)| t.numel() as i64)
            .sum();
        // He et al. report 0.27M parameters for ResNet-20.
        assert!((260_000..280_000).contains(&params), "{params}");
        let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
        assert_eq!(net.forward_t(&x, true).size(), vec![2, 10]);
        assert!(ResNet::new(&vs.root(), &[3, 32, 32], 21, 10, 0).is_err());
        assert!(ResNet::new(&vs.root(), &[3], 20, 10, 0).is_err());
    }
}
