//! Discrete-time spiking neurons trained by backpropagation through time, for a population of
//! P independent networks at once (stacked weights [P, in, out]).
//!
//! Leaky integrate-and-fire (LIF) with soft reset: v_t = β v_{t−1} + W x_t + b − θ s_{t−1},
//! s_t = H(v_t − θ). H has no useful derivative; the surrogate gradient replaces it in the
//! backward pass by ∂s/∂v = 1/(1 + k|v − θ|)² (the fast-sigmoid surrogate). The reset term is
//! detached (gradients do not flow through the reset), as is common practice.
//!
//! Intrinsic parameters per neuron: β = clamp(σ(a), 0.5, 0.999) and θ = clamp(softplus(b),
//! 0.1, 5), learnable or fixed. The clamps keep a learnable threshold from growing until the
//! network falls silent.
//!
//! The probabilistic ("meta") neuron fires s_t ~ Bernoulli(σ((v_t − θ)/T)), with the
//! straight-through-sigmoid gradient of `nn::stochastic` (∂s/∂v = σ′((v − θ)/T)/T); it stays
//! stochastic at evaluation.

use super::stochastic::{self, Estimator};
use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

pub const BETA_RANGE: (f64, f64) = (0.5, 0.999);
pub const THETA_RANGE: (f64, f64) = (0.1, 5.0);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Neuron {
    /// Deterministic LIF with a surrogate gradient.
    Lif,
    /// Probabilistic neuron: Bernoulli(σ((v − θ)/T)), straight-through gradient.
    Meta,
}

impl Neuron {
    pub fn as_str(self) -> &'static str {
        match self {
            Neuron::Lif => "lif",
            Neuron::Meta => "meta",
        }
    }
}

/// H(x) in the forward pass, gradient 1/(1 + k|x|)² in the backward pass: x/(1 + k|x|) has
/// exactly that derivative, so it carries the gradient while the step function is added as a
/// constant.
pub fn surrogate_spike(x: &Tensor, k: f64) -> Tensor {
    let smooth = x / (x.abs() * k + 1.0);
    let step = x.gt(0.0).to_kind(x.kind());
    &smooth + (step - smooth.detach())
}

/// σ⁻¹(β).
pub fn beta_raw(beta: f64) -> f64 {
    (beta / (1.0 - beta)).ln()
}

/// softplus⁻¹(θ).
pub fn theta_raw(theta: f64) -> f64 {
    theta.exp_m1().ln()
}

/// The T time slices of currents [P, B, T, out], each contiguous. `unbind` has one backward
/// for all slices (a stack of their gradients); `select(2, t)` per step would allocate a
/// zero gradient of the whole [P, B, T, out] tensor for every step, quadratic in T.
fn time_major(current: &Tensor) -> Vec<Tensor> {
    current.permute([2, 0, 1, 3]).contiguous().unbind(0)
}

/// A layer of `out` spiking neurons for each of P networks.
pub struct SpikingLayer {
    /// [P, in, out] and [P, 1, out].
    pub w: Tensor,
    pub b: Tensor,
    /// Unconstrained β and θ, [P, 1, out].
    pub beta_raw: Tensor,
    pub theta_raw: Tensor,
}

impl SpikingLayer {
    /// Weights N(0, (gain/√in)²) and zero biases; β and θ start at `beta[p]`, `theta[p]` for
    /// network p. β and θ are variables of `p` (trainable) when `learnable`, constants
    /// otherwise.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        path: &nn::Path,
        inputs: i64,
        out: i64,
        gain: f64,
        beta: &[f64],
        theta: &[f64],
        learnable: bool,
    ) -> SpikingLayer {
        let pop = beta.len() as i64;
        let std = gain / (inputs as f64).sqrt();
        let w = path.var(
            "w",
            &[pop, inputs, out],
            nn::Init::Randn {
                mean: 0.0,
                stdev: std,
            },
        );
        let b = path.zeros("b", &[pop, 1, out]);
        let per_net = |v: &[f64], f: fn(f64) -> f64| {
            let raw: Vec<f32> = v.iter().map(|&x| f(x) as f32).collect();
            Tensor::from_slice(&raw)
                .view([pop, 1, 1])
                .expand([pop, 1, out], false)
                .contiguous()
                .to_device(path.device())
        };
        let (br, tr) = (per_net(beta, beta_raw), per_net(theta, theta_raw));
        let (beta_raw, theta_raw) = if learnable {
            (
                path.var_copy("beta_raw", &br),
                path.var_copy("theta_raw", &tr),
            )
        } else {
            (br, tr)
        };
        SpikingLayer {
            w,
            b,
            beta_raw,
            theta_raw,
        }
    }

    pub fn beta(&self) -> Tensor {
        self.beta_raw.sigmoid().clamp(BETA_RANGE.0, BETA_RANGE.1)
    }

    pub fn theta(&self) -> Tensor {
        self.theta_raw
            .softplus()
            .clamp(THETA_RANGE.0, THETA_RANGE.1)
    }

    /// Spike trains [P, B, T, out] for inputs [B, T, in] (shared by the P networks) or
    /// [P, B, T, in]. `slope` is the surrogate's k, `temperature` the meta neuron's T.
    pub fn forward(
        &self,
        x: &Tensor,
        neuron: Neuron,
        slope: f64,
        temperature: f64,
        train: bool,
    ) -> Tensor {
        let x = if x.dim() == 3 {
            x.unsqueeze(0)
        } else {
            x.shallow_clone()
        };
        // All input currents at once: [P, B, T, out].
        let current = time_major(&(x.matmul(&self.w.unsqueeze(1)) + self.b.unsqueeze(1)));
        let (beta, theta) = (self.beta(), self.theta());
        let mut v = current[0].zeros_like();
        let mut s = v.zeros_like();
        let mut out = Vec::with_capacity(current.len());
        for c in &current {
            v = &beta * &v + c - &theta * s.detach();
            let drive = &v - &theta;
            s = match neuron {
                Neuron::Lif => surrogate_spike(&drive, slope),
                Neuron::Meta => {
                    stochastic::sample(
                        &(drive / temperature),
                        Estimator::StraightThroughSigmoid,
                        train,
                    )
                    .h
                }
            };
            out.push(s.shallow_clone());
        }
        Tensor::stack(&out, 2)
    }
}

impl SpikingLayer {
    /// Membrane potentials [P, B, T, out] of the layer used as a non-spiking leaky integrator
    /// (a readout): v_t = β v_{t−1} + W x_t + b with no threshold and no reset, so it never
    /// falls silent and its gradient reaches every step. θ is unused.
    pub fn membrane(&self, x: &Tensor) -> Tensor {
        let x = if x.dim() == 3 {
            x.unsqueeze(0)
        } else {
            x.shallow_clone()
        };
        let current = time_major(&(x.matmul(&self.w.unsqueeze(1)) + self.b.unsqueeze(1)));
        let beta = self.beta();
        let mut v = current[0].zeros_like();
        let mut out = Vec::with_capacity(current.len());
        for c in &current {
            v = &beta * &v + c;
            out.push(v.shallow_clone());
        }
        Tensor::stack(&out, 2)
    }

    /// Logits [P, B, out]: the membrane potential averaged over the time bins.
    pub fn membrane_readout(&self, x: &Tensor) -> Tensor {
        let v = self.membrane(x);
        let kind = v.kind();
        v.mean_dim([2i64].as_slice(), false, kind)
    }
}

/// Mean over the last dimension's neurons of β and θ per network: ([P], [P]).
pub fn mean_intrinsics(layer: &SpikingLayer) -> (Tensor, Tensor) {
    let m = |t: Tensor| t.mean_dim([1i64, 2].as_slice(), false, Kind::Float);
    (m(layer.beta()), m(layer.theta()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn surrogate_is_a_step_forward_and_a_fast_sigmoid_derivative_backward() {
        let x = Tensor::from_slice(&[-1.0f64, -0.1, 0.0, 0.1, 1.0]).set_requires_grad(true);
        let s = surrogate_spike(&x, 25.0);
        let fwd: Vec<f64> = Vec::try_from(&s.detach()).unwrap();
        assert_eq!(fwd, vec![0.0, 0.0, 0.0, 1.0, 1.0]);
        s.sum(Kind::Double).backward();
        let g: Vec<f64> = Vec::try_from(&x.grad()).unwrap();
        for (xi, gi) in [-1.0f64, -0.1, 0.0, 0.1, 1.0].iter().zip(&g) {
            let want = 1.0 / (1.0 + 25.0 * xi.abs()).powi(2);
            assert!((gi - want).abs() < 1e-12, "{xi}: {gi} vs {want}");
        }
        // Peak 1 at the threshold, symmetric, 1/36 at |x| = 0.2.
        assert_eq!(g[2], 1.0);
        assert_eq!(g[0], g[4]);
        assert_eq!(g[1], g[3]);
    }

    #[test]
    fn lif_layer_matches_a_hand_computed_trace() {
        let vs = nn::VarStore::new(Device::Cpu);
        let layer = SpikingLayer::new(&vs.root(), 1, 1, 1.0, &[0.5], &[1.0], false);
        tch::no_grad(|| {
            let _ = layer.w.shallow_clone().fill_(1.0);
        });
        assert!((layer.beta().double_value(&[0, 0, 0]) - 0.5).abs() < 1e-6);
        assert!((layer.theta().double_value(&[0, 0, 0]) - 1.0).abs() < 1e-6);
        // Input 0.6 at every step, β = 0.5, θ = 1, soft reset:
        // v1 = 0.6 (no spike); v2 = 0.3 + 0.6 = 0.9 (no); v3 = 0.45 + 0.6 = 1.05 (spike);
        // v4 = 0.525 + 0.6 − 1 = 0.125 (no); v5 = 0.0625 + 0.6 = 0.6625 (no);
        // v6 = 0.33125 + 0.6 = 0.93125 (no); v7 = 0.465625 + 0.6 = 1.065625 (spike).
        let x = Tensor::full([1, 7, 1], 0.6, (Kind::Float, Device::Cpu));
        let s = layer.forward(&x, Neuron::Lif, 25.0, 1.0, false);
        assert_eq!(s.size(), vec![1, 1, 7, 1]);
        let got: Vec<f32> = Vec::try_from(&s.flatten(0, -1)).unwrap();
        assert_eq!(got, vec![0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn membrane_readout_integrates_without_reset_and_averages_over_time() {
        let vs = nn::VarStore::new(Device::Cpu);
        let layer = SpikingLayer::new(&vs.root(), 2, 1, 1.0, &[0.5], &[1.0], false);
        tch::no_grad(|| {
            layer
                .w
                .shallow_clone()
                .copy_(&Tensor::from_slice(&[1.0f32, -2.0]).view([1, 2, 1]));
            let _ = layer.b.shallow_clone().fill_(0.1);
        });
        // Inputs (1, 0), (0, 1), (1, 1): currents 1.1, −1.9, −0.9; β = 0.5, no reset even
        // above θ: v = 1.1, 0.55 − 1.9 = −1.35, −0.675 − 0.9 = −1.575.
        let x = Tensor::from_slice(&[1.0f32, 0., 0., 1., 1., 1.]).view([1, 3, 2]);
        let v: Vec<f32> = Vec::try_from(&layer.membrane(&x).flatten(0, -1)).unwrap();
        for (g, w) in v.iter().zip([1.1f32, -1.35, -1.575]) {
            assert!((g - w).abs() < 1e-6, "{v:?}");
        }
        let r = layer.membrane_readout(&x);
        assert_eq!(r.size(), vec![1, 1, 1]);
        let want = (1.1 - 1.35 - 1.575) / 3.0;
        assert!((r.double_value(&[0, 0, 0]) - want).abs() < 1e-6);
        // The gradient reaches the weights through every step: ∂mean(v)/∂w₀ = (1 + 0.5 + 1)/3
        // (input 1 at t = 1 contributes 1 + 0.5 + 0.25, at t = 3 contributes 1; /3).
        let vs2 = nn::VarStore::new(Device::Cpu);
        let l2 = SpikingLayer::new(&vs2.root(), 2, 1, 1.0, &[0.5], &[1.0], false);
        l2.membrane_readout(&x).sum(Kind::Float).backward();
        let g0 = l2.w.grad().double_value(&[0, 0, 0]);
        assert!((g0 - (1.75 + 1.0) / 3.0).abs() < 1e-6, "{g0}");
    }

    #[test]
    fn intrinsics_are_clamped_and_learnable_only_when_asked() {
        let vs = nn::VarStore::new(Device::Cpu);
        let fixed = SpikingLayer::new(
            &(vs.root() / "a"),
            2,
            3,
            1.0,
            &[0.9, 0.99],
            &[1.0, 2.0],
            false,
        );
        assert_eq!(vs.trainable_variables().len(), 2);
        let b = fixed.beta();
        assert_eq!(b.size(), vec![2, 1, 3]);
        assert!((b.double_value(&[1, 0, 2]) - 0.99).abs() < 1e-5);
        assert!((fixed.theta().double_value(&[1, 0, 0]) - 2.0).abs() < 1e-5);
        let learn = SpikingLayer::new(&(vs.root() / "b"), 2, 3, 1.0, &[0.9], &[1.0], true);
        assert_eq!(vs.trainable_variables().len(), 6);
        tch::no_grad(|| {
            let _ = learn.beta_raw.shallow_clone().fill_(-20.0);
            let _ = learn.theta_raw.shallow_clone().fill_(20.0);
        });
        assert!((learn.beta().double_value(&[0, 0, 0]) - BETA_RANGE.0).abs() < 1e-6);
        assert!((learn.theta().double_value(&[0, 0, 0]) - THETA_RANGE.1).abs() < 1e-6);
    }

    #[test]
    fn meta_neurons_fire_with_the_sigmoid_probability() {
        let _rng = crate::rng::serial();
        tch::manual_seed(2);
        let vs = nn::VarStore::new(Device::Cpu);
        let layer = SpikingLayer::new(&vs.root(), 1, 1, 1.0, &[0.5], &[1.0], false);
        tch::no_grad(|| {
            let _ = layer.w.shallow_clone().fill_(0.0);
            let _ = layer.b.shallow_clone().fill_(1.0);
        });
        // No spikes: v_t = 0.5 v_{t-1} + 1 → v_1 = 1 = θ, P(spike) = σ(0) = ½ at the first
        // step for every train.
        let x = Tensor::zeros([20000, 1, 1], (Kind::Float, Device::Cpu));
        let s = layer.forward(&x, Neuron::Meta, 25.0, 0.5, false);
        let p = s.mean(Kind::Double).double_value(&[]);
        assert!((p - 0.5).abs() < 0.015, "{p}");
    }
}
