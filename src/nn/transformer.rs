//! A small pre-LayerNorm transformer encoder that classifies padded token sequences, with the
//! linear layers Liu et al. (WTA-CRS) sample in T5 and BERT replaced by `WtaCrsLinear`: the
//! attention output projection and both feed-forward linears of every block. The Q, K, V
//! projections, the attention matmuls, the embedding and the head stay exact.
//!
//! h₀ = E·x_t + P_t; per block h ← h + O(attn(LN h)), h ← h + F₂(GELU(F₁(LN h))); the logits come
//! from the mean of LN(h) over the real (unpadded) tokens. Padded tokens are masked as keys in
//! attention and left out of the mean, so their output rows receive exactly zero gradient, as
//! in a padded GLUE batch.

use super::wta_crs::{Sampling, WtaCrsLinear};
use tch::nn::{self, Module};
use tch::Tensor;

/// Sizes of a `SampledTransformer`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransformerSize {
    /// Features per input token.
    pub token_dim: i64,
    /// Maximum sequence length (learned positional embeddings).
    pub positions: i64,
    pub d_model: i64,
    pub heads: i64,
    pub layers: i64,
    /// Hidden width of the feed-forward block.
    pub ff: i64,
    pub classes: i64,
}

pub struct Block {
    ln1: nn::LayerNorm,
    qkv: nn::Linear,
    pub out: WtaCrsLinear,
    ln2: nn::LayerNorm,
    pub ff1: WtaCrsLinear,
    pub ff2: WtaCrsLinear,
}

pub struct SampledTransformer {
    size: TransformerSize,
    embed: nn::Linear,
    pos: Tensor,
    pub blocks: Vec<Block>,
    ln: nn::LayerNorm,
    head: nn::Linear,
}

impl SampledTransformer {
    pub fn new(p: &nn::Path, size: TransformerSize, sampling: Sampling) -> Self {
        let d = size.d_model;
        let ln = |p: nn::Path| nn::layer_norm(p, vec![d], Default::default());
        let blocks = (0..size.layers)
            .map(|i| {
                let b = p / format!("block{i}");
                Block {
                    ln1: ln(&b / "ln1"),
                    qkv: nn::linear(&b / "qkv", d, 3 * d, Default::default()),
                    out: WtaCrsLinear::new(&(&b / "out"), d, d, sampling),
                    ln2: ln(&b / "ln2"),
                    ff1: WtaCrsLinear::new(&(&b / "ff1"), d, size.ff, sampling),
                    ff2: WtaCrsLinear::new(&(&b / "ff2"), size.ff, d, sampling),
                }
            })
            .collect();
        SampledTransformer {
            size,
            embed: nn::linear(p / "embed", size.token_dim, d, Default::default()),
            pos: p.var(
                "pos",
                &[size.positions, d],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            ),
            blocks,
            ln: ln(p / "ln"),
            head: nn::linear(p / "head", d, size.classes, Default::default()),
        }
    }

    /// The sampled layers with their names (`block0.out`, `block0.ff1`, …), in order.
    pub fn sampled_layers(&self) -> Vec<(String, &WtaCrsLinear)> {
        self.blocks
            .iter()
            .enumerate()
            .flat_map(|(i, b)| {
                [("out", &b.out), ("ff1", &b.ff1), ("ff2", &b.ff2)]
                    .map(|(n, l)| (format!("block{i}.{n}"), l))
            })
            .collect()
    }

    /// Gives every sampled layer a per-(example, position) ‖g‖ cache over `examples`
    /// training examples.
    pub fn set_cache(&self, examples: i64) {
        for (_, l) in self.sampled_layers() {
            l.set_cache(examples, self.size.positions);
        }
    }

    /// Logits for tokens `x` [B, L, token_dim] with `mask` [B, L] (1 for a token, 0 for
    /// padding; every sequence has at least one token). `train`: sampled weight gradients, the
    /// caches keyed by the examples' dataset indices `ids` [B].
    pub fn forward(&self, x: &Tensor, mask: &Tensor, ids: Option<&Tensor>, train: bool) -> Tensor {
        let (b, l) = (x.size()[0], x.size()[1]);
        let (d, heads) = (self.size.d_model, self.size.heads);
        let dh = d / heads;
        let lin = |layer: &WtaCrsLinear, h: &Tensor| {
            if train {
                layer.forward_train(h, ids)
            } else {
                layer.forward(h)
            }
        };
        let mask = mask.to_kind(x.kind());
        // Padded keys get −1e9 before the softmax.
        let key_bias = ((mask.neg() + 1.0) * -1e9).view([b, 1, 1, l]);
        let mut h = x.apply(&self.embed) + self.pos.narrow(0, 0, l);
        for blk in &self.blocks {
            let a = h.apply(&blk.ln1);
            let qkv = a
                .apply(&blk.qkv)
                .view([b, l, 3, heads, dh])
                .permute([2, 0, 3, 1, 4]);
            let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
            let scores = q.matmul(&k.transpose(-2, -1)) / (dh as f64).sqrt() + &key_bias;
            let ctx = scores
                .softmax(-1, x.kind())
                .matmul(&v)
                .transpose(1, 2)
                .reshape([b, l, d]);
            h = &h + lin(&blk.out, &ctx);
            let f = lin(&blk.ff1, &h.apply(&blk.ln2)).gelu("none");
            h = &h + lin(&blk.ff2, &f);
        }
        let h = h.apply(&self.ln) * mask.unsqueeze(-1);
        let pooled =
            h.sum_dim_intlist(1, false, x.kind()) / mask.sum_dim_intlist(1, true, x.kind());
        pooled.apply(&self.head)
    }

    /// Refreshes every sampled layer's cache from the last backward pass.
    pub fn after_backward(&self) {
        for (_, l) in self.sampled_layers() {
            l.after_backward();
        }
    }

    /// Bytes the sampled layers kept for their weight gradients in the last training forward.
    pub fn stored_bytes(&self) -> i64 {
        self.sampled_layers()
            .iter()
            .map(|(_, l)| l.stored_bytes.get())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::wta_crs::{Importance, Sampler};
    use tch::{Device, Kind};

    #[test]
    fn sampled_layers_give_exact_outputs_and_exact_input_gradients() {
        let _rng = crate::rng::serial();
        let size = TransformerSize {
            token_dim: 5,
            positions: 6,
            d_model: 16,
            heads: 4,
            layers: 2,
            ff: 32,
            classes: 3,
        };
        let build = |sampling| {
            tch::manual_seed(11);
            let vs = nn::VarStore::new(Device::Cpu);
            let m = SampledTransformer::new(&vs.root(), size, sampling);
            (vs, m)
        };
        let (vs_exact, exact) = build(Sampling::exact());
        let (vs_wta, wta) = build(Sampling {
            sampler: Sampler::WtaCrs,
            k_fraction: 0.3,
            importance: Importance::Cached,
        });
        wta.set_cache(20);
        tch::manual_seed(12);
        let x = Tensor::randn([8, 6, 5], (Kind::Float, Device::Cpu));
        let lengths = Tensor::from_slice(&[6i64, 2, 3, 6, 1, 4, 5, 6]);
        let mask = Tensor::arange(6, (Kind::Int64, Device::Cpu))
            .unsqueeze(0)
            .lt_tensor(&lengths.unsqueeze(1))
            .to_kind(Kind::Float);
        let y = Tensor::from_slice(&[0i64, 1, 2, 0, 1, 2, 0, 1]);
        let ids = Tensor::arange_start(3, 11, (Kind::Int64, Device::Cpu));
        let grads = |m: &SampledTransformer, vs: &nn::VarStore, train: bool| {
            let xg = x.copy().set_requires_grad(true);
            let logits = m.forward(&xg, &mask, Some(&ids), train);
            let loss = logits.cross_entropy_for_logits(&y);
            let mut inputs = vec![xg.shallow_clone()];
            let names = [
                "block0.qkv.weight",
                "block1.qkv.weight",
                "block1.ff2.weight",
            ];
            let vars = vs.variables();
            inputs.extend(names.iter().map(|n| vars[*n].shallow_clone()));
            let g = Tensor::run_backward(&[&loss], &inputs, false, false);
            (logits.detach(), g)
        };
        let (le, ge) = grads(&exact, &vs_exact, true);
        let (lw, gw) = grads(&wta, &vs_wta, true);
        let (lt, _) = grads(&wta, &vs_wta, false);
        assert!(le.allclose(&lw, 1e-5, 1e-6, false), "outputs are exact");
        assert!(le.allclose(&lt, 1e-5, 1e-6, false), "train and eval agree");
        assert!(
            ge[0].allclose(&gw[0], 1e-4, 1e-6, false),
            "input gradient is exact"
        );
        // Q, K, V are upstream of every sampled layer and exact themselves: their gradients
        // are exact; a sampled layer's own weight gradient is not.
        assert!(ge[1].allclose(&gw[1], 1e-4, 1e-6, false));
        assert!(ge[2].allclose(&gw[2], 1e-4, 1e-6, false));
        assert!(!ge[3].allclose(&gw[3], 1e-3, 1e-5, false));
        // k = max(⌊48·0.3⌋, 10) = 14 of 48 rows per sampled layer.
        let kept: Vec<i64> = wta
            .sampled_layers()
            .iter()
            .map(|(_, l)| l.stored_rows.get())
            .collect();
        assert_eq!(kept, vec![14; 6]);
        // Padded positions get exactly zero output gradient, which the cache records.
        let xg = x.copy();
        let loss = wta
            .forward(&xg, &mask, Some(&ids), true)
            .cross_entropy_for_logits(&y);
        loss.backward();
        wta.after_backward();
        for (name, l) in wta.sampled_layers() {
            let (norms, seen) = l.cached_norms(&ids).unwrap();
            assert!(bool::try_from(seen.all()).unwrap());
            let pad = (&norms * (mask.neg() + 1.0)).abs().max().double_value(&[]);
            let real = (&norms * &mask).min().double_value(&[]);
            assert_eq!(pad, 0.0, "{name}: padding rows have zero gradient");
            assert!(real >= 0.0);
            assert!((&norms * &mask).sum(Kind::Float).double_value(&[]) > 0.0);
        }
    }
}
