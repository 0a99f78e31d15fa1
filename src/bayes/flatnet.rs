//! A multilayer perceptron whose parameters are one flat vector per model, so that C models
//! (chains, ensemble members, posterior draws) are a `[C, P]` tensor and their forward pass is
//! one `baddbmm` per layer. Layout per layer: W `[fan_in, fan_out]` row-major, then b `[fan_out]`.
//! Samplers (`bayes::samplers`) move the flat rows directly.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Act {
    Tanh,
    Relu,
    /// softplus: smooth, so forces and their parameter gradients exist everywhere.
    Softplus,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FlatMlp {
    /// Layer widths, input first, output last.
    pub sizes: Vec<i64>,
    pub act: Act,
}

impl FlatMlp {
    pub fn new(input: i64, hidden: i64, layers: usize, output: i64, act: Act) -> Self {
        let mut sizes = vec![input];
        sizes.extend(std::iter::repeat_n(hidden, layers));
        sizes.push(output);
        FlatMlp { sizes, act }
    }

    /// Parameters per model.
    pub fn numel(&self) -> i64 {
        self.sizes.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
    }

    /// `c` models with W ~ N(0, 1/fan_in) (LeCun normal) and b = 0, `[c, P]`.
    pub fn init(&self, c: i64, opts: (Kind, tch::Device)) -> Tensor {
        let parts: Vec<Tensor> = self
            .sizes
            .windows(2)
            .flat_map(|w| {
                [
                    Tensor::randn([c, w[0] * w[1]], opts) / (w[0] as f64).sqrt(),
                    Tensor::zeros([c, w[1]], opts),
                ]
            })
            .collect();
        Tensor::cat(&parts, 1)
    }

    /// Outputs `[C, B, out]` of the C models `theta` `[C, P]` at inputs `x` `[C, B, in]`.
    pub fn forward(&self, theta: &Tensor, x: &Tensor) -> Tensor {
        let c = theta.size()[0];
        let mut h = x.shallow_clone();
        let mut off = 0;
        let last = self.sizes.len() - 2;
        for (i, w) in self.sizes.windows(2).enumerate() {
            let (fi, fo) = (w[0], w[1]);
            let wt = theta.narrow(1, off, fi * fo).reshape([c, fi, fo]);
            off += fi * fo;
            let b = theta.narrow(1, off, fo).reshape([c, 1, fo]);
            off += fo;
            h = b.baddbmm(&h, &wt, 1.0, 1.0);
            if i < last {
                h = match self.act {
                    Act::Tanh => h.tanh(),
                    Act::Relu => h.relu(),
                    Act::Softplus => h.softplus(),
                };
            }
        }
        h
    }

    /// Scalar outputs `[C, B]` (the last width must be 1).
    pub fn scalar(&self, theta: &Tensor, x: &Tensor) -> Tensor {
        self.forward(theta, x).squeeze_dim(-1)
    }

    /// Minus the input gradient of the scalar output, `[C, B, in]`: the forces −∇ₓE of an energy
    /// model. With `create_graph` the result stays differentiable in `theta` (force matching
    /// needs this double backward).
    pub fn neg_input_grad(&self, theta: &Tensor, x: &Tensor, create_graph: bool) -> Tensor {
        let x = x.detach().set_requires_grad(true);
        let e = self.scalar(theta, &x).sum(x.kind());
        let g = Tensor::run_backward(&[e], &[&x], create_graph, create_graph)
            .pop()
            .expect("one input");
        -g
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// Forces equal minus the finite-difference slope of the energy, and the force-matching
    /// loss's parameter gradient (double backward) equals its finite difference.
    #[test]
    fn forces_and_double_backward_match_finite_differences() {
        let _g = crate::rng::serial();
        tch::manual_seed(1);
        let opts = (Kind::Double, Device::Cpu);
        let net = FlatMlp::new(2, 8, 2, 1, Act::Tanh);
        assert_eq!(net.numel(), 2 * 8 + 8 + 8 * 8 + 8 + 8 + 1);
        let theta = net.init(3, opts);
        let x = Tensor::randn([3, 5, 2], opts);
        let f = net.neg_input_grad(&theta, &x, false);
        let h = 1e-6;
        for k in 0..2 {
            let dx = Tensor::zeros([3, 5, 2], opts);
            let _ = dx.narrow(2, k, 1).fill_(h);
            let fd =
                (net.scalar(&theta, &(&x + &dx)) - net.scalar(&theta, &(&x - &dx))) / (2.0 * h);
            let err = (f.select(2, k) + fd).abs().max().double_value(&[]);
            assert!(err < 1e-7, "force component {k}: {err}");
        }
        // L(θ) = Σ |F_θ(x) − y|², gradient in θ by double backward vs central differences.
        let y = Tensor::randn([3, 5, 2], opts);
        let loss = |th: &Tensor| {
            (net.neg_input_grad(th, &x, true) - &y)
                .square()
                .sum_dim_intlist([1, 2].as_slice(), false, Kind::Double)
        };
        let th = theta.detach().set_requires_grad(true);
        let g = crate::bayes::samplers::chain_grad(&loss(&th), &th);
        for j in [0i64, 5, 17, 30, 90, net.numel() - 1] {
            let e = Tensor::zeros_like(&theta);
            let _ = e.narrow(1, j, 1).fill_(h);
            let fd = (loss(&(&theta + &e)) - loss(&(&theta - &e))) / (2.0 * h);
            let err = (g.select(1, j) - &fd).abs().max().double_value(&[]);
            let scale = fd.abs().max().double_value(&[]).max(1.0);
            assert!(err / scale < 1e-6, "parameter {j}: {err}");
        }
    }

    /// Model c of a batch equals the same parameters run alone.
    #[test]
    fn models_in_a_batch_are_independent() {
        let _g = crate::rng::serial();
        tch::manual_seed(2);
        let opts = (Kind::Float, Device::Cpu);
        let net = FlatMlp::new(3, 4, 1, 2, Act::Relu);
        let theta = net.init(4, opts);
        let x = Tensor::randn([4, 6, 3], opts);
        let all = net.forward(&theta, &x);
        let one = net.forward(&theta.narrow(0, 2, 1), &x.narrow(0, 2, 1));
        assert!(all.narrow(0, 2, 1).allclose(&one, 1e-6, 1e-6, false));
    }
}
