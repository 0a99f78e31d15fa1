//! Neural-network Gaussian process (NNGP) kernels by their closed recursions, and the random
//! wide networks they are the limit of.
//!
//! A fully connected network with `hidden_layers` layers of activation φ, weights
//! W ~ N(0, w_std²/fan_in), biases b ~ N(0, b_std²) and a readout of weight std `last_w_std`
//! (no readout bias, as neural_tangents' `Dense(W_std=last_w_std)`) has, as its width grows, a
//! Gaussian-process output with kernel
//!
//!   K⁰(x, x') = w_std²·x·x'/d + b_std²,
//!   Kˡ⁺¹(x, x') = w_std²·E[φ(u)φ(v)] + b_std²,  (u, v) ~ N(0, [[Kˡ(x,x), Kˡ(x,x')], [·, Kˡ(x',x')]]),
//!
//! the last step with `last_w_std²` and no bias. The expectations are closed forms:
//! ReLU (arc-cosine kernel of degree 1): √(K₁₁K₂₂)/(2π)·(sin θ + (π − θ) cos θ), cos θ = K₁₂/√(K₁₁K₂₂);
//! erf: (2/π)·arcsin(2K₁₂/√((1 + 2K₁₁)(1 + 2K₂₂))).

use serde::{Deserialize, Serialize};
use std::f64::consts::PI;
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Relu,
    Erf,
}

impl Activation {
    pub fn as_str(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Erf => "erf",
        }
    }

    pub fn apply(self, h: &Tensor) -> Tensor {
        match self {
            Activation::Relu => h.relu(),
            Activation::Erf => h.erf(),
        }
    }

    /// E[φ(u)φ(v)] for the cross covariance `k12` [n1, n2] and variances `k11` [n1], `k22` [n2];
    /// also E[φ(u)²] for each variance vector.
    fn expect(self, k12: &Tensor, k11: &Tensor, k22: &Tensor) -> (Tensor, Tensor, Tensor) {
        match self {
            Activation::Relu => {
                let norms = (k11.unsqueeze(1) * k22.unsqueeze(0)).sqrt();
                let cos = (k12 / &norms).clamp(-1.0, 1.0);
                let theta = cos.acos();
                let sin = (-cos.square() + 1.0).clamp_min(0.0).sqrt();
                let e12 = norms / (2.0 * PI) * (sin + (PI - theta) * cos);
                (e12, k11 / 2.0, k22 / 2.0)
            }
            Activation::Erf => {
                let d1 = k11 * 2.0 + 1.0;
                let d2 = k22 * 2.0 + 1.0;
                let arg = (k12 * 2.0 / (d1.unsqueeze(1) * d2.unsqueeze(0)).sqrt()).clamp(-1.0, 1.0);
                let diag = |k: &Tensor, d: &Tensor| -> Tensor { (k * 2.0 / d).asin() * (2.0 / PI) };
                (arg.asin() * (2.0 / PI), diag(k11, &d1), diag(k22, &d2))
            }
        }
    }
}

/// A fully connected architecture and its weight and bias scales.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Nngp {
    pub activation: Activation,
    pub hidden_layers: usize,
    pub w_std: f64,
    pub b_std: f64,
    pub last_w_std: f64,
}

impl Nngp {
    /// The output kernel K(x1, x2) [n1, n2] for inputs [n1, d] and [n2, d] (double precision,
    /// on x1's device).
    pub fn kernel(&self, x1: &Tensor, x2: &Tensor) -> Tensor {
        self.kernel_parts(x1, x2).0
    }

    /// The prior variances K(x, x) [n] of inputs [n, d] (the recursion's diagonal, O(n)).
    pub fn diag(&self, x: &Tensor) -> Tensor {
        self.kernel_parts(x, &x.narrow(0, 0, 1)).1
    }

    /// K(x1, x2) with the diagonals K(x1, x1) [n1] and K(x2, x2) [n2].
    fn kernel_parts(&self, x1: &Tensor, x2: &Tensor) -> (Tensor, Tensor, Tensor) {
        let (x1, x2) = (x1.to_kind(Kind::Double), x2.to_kind(Kind::Double));
        let d = x1.size()[1] as f64;
        let (wv, bv) = (self.w_std * self.w_std, self.b_std * self.b_std);
        let lv = self.last_w_std * self.last_w_std;
        let (in_w, in_b) = if self.hidden_layers == 0 {
            (lv, 0.0)
        } else {
            (wv, bv)
        };
        let mut k12 = x1.matmul(&x2.tr()) * (in_w / d) + in_b;
        let mut k11 = x1.square().sum_dim_intlist(1, false, Kind::Double) * (in_w / d) + in_b;
        let mut k22 = x2.square().sum_dim_intlist(1, false, Kind::Double) * (in_w / d) + in_b;
        for l in 1..=self.hidden_layers {
            let (e12, e11, e22) = self.activation.expect(&k12, &k11, &k22);
            let (w, b) = if l == self.hidden_layers {
                (lv, 0.0)
            } else {
                (wv, bv)
            };
            k12 = e12 * w + b;
            k11 = e11 * w + b;
            k22 = e22 * w + b;
        }
        (k12, k11, k22)
    }

    /// The last hidden layer's activations φ(h_L) [nets, n, width] of `nets` random networks of
    /// this architecture and the given width at the inputs `x` [n, d], drawn in chunks of nets
    /// with stacked weights (one `bmm` per layer and chunk).
    pub fn wide_features(&self, x: &Tensor, nets: i64, width: i64) -> Tensor {
        assert!(
            self.hidden_layers >= 1,
            "a wide network needs a hidden layer"
        );
        let x = x.to_kind(Kind::Double);
        let (n, d) = (x.size()[0], x.size()[1]);
        let opts = (Kind::Double, x.device());
        // About 2^23 weights (64 MB) per chunk and layer.
        let chunk = ((1i64 << 23) / (width * width)).clamp(1, nets);
        let mut out = vec![];
        let mut done = 0;
        while done < nets {
            let c = chunk.min(nets - done);
            let w = Tensor::randn([c, d, width], opts) * (self.w_std / (d as f64).sqrt());
            let b = Tensor::randn([c, 1, width], opts) * self.b_std;
            let mut h = self
                .activation
                .apply(&(x.unsqueeze(0).expand([c, n, d], false).bmm(&w) + b));
            for _ in 1..self.hidden_layers {
                let w =
                    Tensor::randn([c, width, width], opts) * (self.w_std / (width as f64).sqrt());
                let b = Tensor::randn([c, 1, width], opts) * self.b_std;
                h = self.activation.apply(&(h.bmm(&w) + b));
            }
            out.push(h);
            done += c;
        }
        Tensor::cat(&out, 0)
    }

    /// Outputs f(x) [nets, n] of `nets` random networks of the given width: the readout
    /// last_w_std/√width · φ(h_L)·w with w ~ N(0, I).
    pub fn wide_outputs(&self, x: &Tensor, nets: i64, width: i64) -> Tensor {
        let h = self.wide_features(x, nets, width);
        let w = Tensor::randn([nets, width, 1], (Kind::Double, x.device()));
        h.bmm(&w).squeeze_dim(-1) * (self.last_w_std / (width as f64).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// The recursion against the empirical kernel of random wide networks: the readout kernel
    /// last_w_std²/width · φ(h_L)φ(h_L)ᵀ averaged over 4096 networks of width 128 is within 2 %
    /// (of √(K₁₁K₂₂)) of the closed form, for ReLU and erf. (Each network's kernel carries a
    /// common random scale of relative std ≈ √(5·layers/width) for ReLU, so the average runs
    /// over many networks: ≈ 0.5 % Monte-Carlo error; the finite-width bias is O(1/width),
    /// ≈ −0.7 % here.)
    #[test]
    fn diag_is_the_kernel_matrix_diagonal() {
        let x = Tensor::from_slice(&[0.1, 0.9, 0.5, 0.5, 0.0, 0.2, -1.0, 3.0]).view([4, 2]);
        for activation in [Activation::Relu, Activation::Erf] {
            let k = Nngp {
                activation,
                hidden_layers: 3,
                w_std: 1.5,
                b_std: 0.3,
                last_w_std: 2.0,
            };
            let full = k.kernel(&x, &x).diagonal(0, 0, 1);
            let err = (full - k.diag(&x)).abs().max().double_value(&[]);
            assert!(err < 1e-9, "{}: {err}", activation.as_str());
        }
    }

    #[test]
    fn recursions_match_monte_carlo_wide_networks() {
        let _g = crate::rng::serial();
        tch::manual_seed(11);
        let x = Tensor::from_slice(&[
            1.0, 0.0, 0.5, -0.3, 1.2, 0.0, -1.0, -1.0, 0.4, 0.2, 0.1, 0.9,
        ])
        .reshape([4, 3]);
        for (activation, w_std) in [(Activation::Relu, 1.4), (Activation::Erf, 1.5)] {
            let spec = Nngp {
                activation,
                hidden_layers: 3,
                w_std,
                b_std: 0.3,
                last_w_std: 1.3,
            };
            let k = spec.kernel(&x, &x);
            let (nets, width) = (4096, 128);
            let h = spec.wide_features(&x, nets, width);
            let emp = h.bmm(&h.transpose(1, 2)).mean_dim(0, false, Kind::Double)
                * (spec.last_w_std * spec.last_w_std / width as f64);
            let diag = k.diagonal(0, 0, 1);
            let norm = (diag.unsqueeze(1) * diag.unsqueeze(0)).sqrt();
            let err = ((&emp - &k).abs() / norm).max().double_value(&[]);
            assert!(
                err < 0.02,
                "{}: relative error {err}\n{k}\n{emp}",
                activation.as_str()
            );
            // The diagonal the recursion carries equals the matrix's own diagonal.
            let one = spec.kernel(&x.narrow(0, 1, 1), &x.narrow(0, 1, 1));
            assert!((one.double_value(&[0, 0]) - k.double_value(&[1, 1])).abs() < 1e-12);
        }
    }

    /// Closed forms by hand: one ReLU layer on orthogonal unit inputs (θ = π/2) gives
    /// K = last²·K⁰/(2π) with K⁰ = w²/d; one erf layer gives (2/π)·arcsin(2K/(1 + 2K)) on the
    /// diagonal.
    #[test]
    fn one_layer_closed_forms() {
        let x = Tensor::from_slice(&[1.0, 0.0, 0.0, 1.0]).reshape([2, 2]);
        let relu = Nngp {
            activation: Activation::Relu,
            hidden_layers: 1,
            w_std: 2.0,
            b_std: 0.0,
            last_w_std: 1.0,
        };
        let k = relu.kernel(&x, &x);
        // K⁰ = 4/2 = 2 on the diagonal, 0 off it: E[relu²] = 1, E[relu(u)relu(v)] = 2/(2π).
        assert!((k.double_value(&[0, 0]) - 1.0).abs() < 1e-12);
        assert!((k.double_value(&[0, 1]) - 1.0 / PI).abs() < 1e-12);
        let erf = Nngp {
            activation: Activation::Erf,
            ..relu
        };
        let k = erf.kernel(&x, &x);
        assert!((k.double_value(&[0, 0]) - 2.0 / PI * (4.0f64 / 5.0).asin()).abs() < 1e-12);
        assert!(k.double_value(&[0, 1]).abs() < 1e-12);
        assert_eq!(k.device(), Device::Cpu);
    }
}
