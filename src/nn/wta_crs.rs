//! Linear layers whose weight gradient is estimated from k of the N rows of the batch
//! (column-row sampling of GᵀX, Adelman et al.; winner-take-all CRS, Liu et al. 2023). The
//! input gradient stays exact; only the k sampled (rescaled) input rows are kept for the
//! backward pass, which is the memory saving.
//!
//! - `uniform`: k rows with replacement, p_i = 1/N, each scaled by 1/(k p_i).
//! - `crs`: the same with p_i ∝ ‖x_i‖·‖g_i‖ (the variance-optimal importance weights).
//! - `wta-crs`: the |C| = ⌊`top_fraction`·k⌋ rows of largest p_i are kept deterministically
//!   (weight 1); the other k − |C| are drawn from the rest with probabilities p_i/(1 − P_C) and
//!   scaled by (1 − P_C)/((k − |C|) p_i). Unbiased, and lower variance when a few rows dominate.
//! - `top-k`: the k largest rows, unscaled (biased; for comparison).
//!
//! ‖g_i‖ is not known in the forward pass: the layer uses the norms it saw for the same row
//! position in the previous step (all ones before the first), or, with
//! `cached_grad_norms = false`, weighs rows by ‖x_i‖ alone.

use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sampler {
    Exact,
    Uniform,
    Crs,
    WtaCrs,
    TopK,
}

impl Sampler {
    pub fn as_str(self) -> &'static str {
        match self {
            Sampler::Exact => "exact",
            Sampler::Uniform => "uniform",
            Sampler::Crs => "crs",
            Sampler::WtaCrs => "wta-crs",
            Sampler::TopK => "top-k",
        }
    }
}

/// Rows chosen and their scale factors, for an estimate Σ_i s_i g_iᵀ x_i of GᵀX.
pub struct Selection {
    pub rows: Tensor,
    pub scale: Tensor,
}

/// Chooses k of N rows with importance `p` (N, non-negative, any scale). Draws from the
/// global generator.
pub fn select(sampler: Sampler, p: &Tensor, k: i64, top_fraction: f64) -> Selection {
    let n = p.size()[0];
    let dev = p.device();
    let p = p.to_kind(Kind::Double);
    let normalised = |q: &Tensor| q / q.sum(Kind::Double).clamp_min(1e-300);
    match sampler {
        Sampler::Exact => Selection {
            rows: Tensor::arange(n, (Kind::Int64, dev)),
            scale: Tensor::ones([n], (Kind::Double, dev)),
        },
        Sampler::TopK => Selection {
            rows: p.topk(k.min(n), 0, true, false).1,
            scale: Tensor::ones([k.min(n)], (Kind::Double, dev)),
        },
        Sampler::Uniform | Sampler::Crs => {
            let q = if sampler == Sampler::Uniform {
                Tensor::full([n], 1.0 / n as f64, (Kind::Double, dev))
            } else {
                normalised(&p)
            };
            let rows = q.multinomial(k, true);
            let scale = (q.index_select(0, &rows) * k as f64).reciprocal();
            Selection { rows, scale }
        }
        // With k ≥ N every row is a winner: the exact product.
        Sampler::WtaCrs if k >= n => select(Sampler::Exact, &p, k, top_fraction),
        Sampler::WtaCrs => {
            let q = normalised(&p);
            let c = ((top_fraction * k as f64).floor() as i64).clamp(0, k.min(n));
            let (_, order) = q.sort(0, true);
            let top = order.narrow(0, 0, c);
            let rest = order.narrow(0, c, n - c);
            let rest_q = q.index_select(0, &rest);
            let mass = rest_q.sum(Kind::Double);
            let draws = k - c;
            if draws == 0 || n == c || mass.double_value(&[]) <= 0.0 {
                return Selection {
                    scale: Tensor::ones([c], (Kind::Double, dev)),
                    rows: top,
                };
            }
            let pick = (&rest_q / &mass).multinomial(draws, true);
            let rows = rest.index_select(0, &pick);
            let scale = &mass / (rest_q.index_select(0, &pick) * draws as f64);
            Selection {
                rows: Tensor::cat(&[top, rows], 0),
                scale: Tensor::cat(&[Tensor::ones([c], (Kind::Double, dev)), scale], 0),
            }
        }
    }
}

/// y = x Wᵀ + b with the weight gradient estimated from `k_fraction` of the rows.
#[derive(Debug)]
pub struct WtaCrsLinear {
    pub ws: Tensor,
    pub bs: Tensor,
    pub sampler: Sampler,
    pub k_fraction: f64,
    pub top_fraction: f64,
    /// Weigh rows by ‖x_i‖·‖g_i‖ with ‖g_i‖ cached from the previous step (true), or by ‖x_i‖
    /// alone (false).
    pub cached_grad_norms: bool,
    /// ‖g_i‖ per row position from the previous backward pass.
    grad_norms: RefCell<Option<Tensor>>,
    /// A zero leaf added to the last output: its gradient is ∂L/∂y.
    last_out: RefCell<Option<Tensor>>,
    /// Input rows kept for the backward pass in the last forward (for memory accounting).
    pub stored_rows: RefCell<i64>,
}

impl WtaCrsLinear {
    pub fn new(
        p: &nn::Path,
        n_in: i64,
        n_out: i64,
        sampler: Sampler,
        k_fraction: f64,
        top_fraction: f64,
    ) -> Self {
        let lin = nn::linear(p, n_in, n_out, Default::default());
        WtaCrsLinear {
            ws: lin.ws,
            bs: lin.bs.expect("bias"),
            sampler,
            k_fraction,
            top_fraction,
            cached_grad_norms: true,
            grad_norms: RefCell::new(None),
            last_out: RefCell::new(None),
            stored_rows: RefCell::new(0),
        }
    }

    /// Reads ‖g_i‖ of the last output (call after backward).
    pub fn after_backward(&self) {
        if let Some(out) = self.last_out.borrow_mut().take() {
            let g = out.grad();
            if g.defined() {
                *self.grad_norms.borrow_mut() =
                    Some(g.norm_scalaropt_dim(2, [1i64].as_slice(), false).detach());
            }
        }
    }

    /// The training forward: exact output and input gradient, sampled weight gradient.
    pub fn forward_train(&self, x: &Tensor) -> Tensor {
        let n = x.size()[0];
        if self.sampler == Sampler::Exact {
            *self.stored_rows.borrow_mut() = n;
            return x.linear(&self.ws, Some(&self.bs));
        }
        let k = ((self.k_fraction * n as f64).round() as i64).clamp(1, n);
        let xn = x.detach().norm_scalaropt_dim(2, [1i64].as_slice(), false);
        let gn = match &*self.grad_norms.borrow() {
            Some(g) if g.size()[0] == n && self.cached_grad_norms => g.shallow_clone(),
            _ => Tensor::ones([n], (Kind::Float, x.device())),
        };
        let sel = select(self.sampler, &(xn * gn), k, self.top_fraction);
        *self.stored_rows.borrow_mut() = sel.rows.size()[0];
        // Value: x Wᵀ + b. Gradient: exact for x (through a detached W), and for W only from
        // the selected rows, scaled: the added term is zero in value.
        let exact_x = x.matmul(&self.ws.detach().tr()) + &self.bs;
        let xs = x.detach().index_select(0, &sel.rows) * sel.scale.to_kind(x.kind()).unsqueeze(1);
        let term = xs.matmul(&self.ws.tr());
        let zero = &term - term.detach();
        // A zero leaf added to the output: its .grad after backward is ∂L/∂y, whose row norms
        // the next step samples with.
        let probe =
            Tensor::zeros([n, self.ws.size()[0]], (x.kind(), x.device())).set_requires_grad(true);
        let out = exact_x.index_add(0, &sel.rows, &zero) + &probe;
        *self.last_out.borrow_mut() = Some(probe);
        out
    }
}

impl Module for WtaCrsLinear {
    /// Evaluation (no gradients needed): the plain linear map.
    fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.ws, Some(&self.bs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// Heavy-tailed rows: a few dominate GᵀX.
    fn heavy(n: i64, d: i64) -> Tensor {
        let norms = Tensor::randn([n, 1], (Kind::Double, Device::Cpu))
            .exp()
            .pow_tensor_scalar(2.0);
        Tensor::randn([n, d], (Kind::Double, Device::Cpu)) * norms
    }

    fn estimate(s: Sampler, g: &Tensor, x: &Tensor, k: i64) -> Tensor {
        let p = g.norm_scalaropt_dim(2, [1i64].as_slice(), false)
            * x.norm_scalaropt_dim(2, [1i64].as_slice(), false);
        let sel = select(s, &p, k, 0.5);
        let gs = g.index_select(0, &sel.rows) * sel.scale.unsqueeze(1);
        gs.tr().matmul(&x.index_select(0, &sel.rows))
    }

    #[test]
    fn samplers_are_unbiased_except_top_k_and_wta_crs_at_k_n_is_exact() {
        let _rng = crate::rng::serial();
        tch::manual_seed(3);
        let (g, x) = (heavy(64, 5), heavy(64, 4));
        let exact = g.tr().matmul(&x);
        let norm = exact.norm().double_value(&[]);
        assert!(estimate(Sampler::WtaCrs, &g, &x, 64).allclose(&exact, 1e-12, 1e-12, false));
        let draws = 20000;
        for s in [
            Sampler::Uniform,
            Sampler::Crs,
            Sampler::WtaCrs,
            Sampler::TopK,
        ] {
            let mut sum = Tensor::zeros_like(&exact);
            for _ in 0..draws {
                sum += estimate(s, &g, &x, 16);
            }
            let bias = ((sum / draws as f64) - &exact).norm().double_value(&[]) / norm;
            if s == Sampler::TopK {
                assert!(bias > 0.01, "top-k is biased: {bias}");
            } else {
                assert!(bias < 0.03, "{s:?}: relative bias {bias}");
            }
        }
    }

    #[test]
    fn layer_output_and_input_gradient_are_exact_weight_gradient_sampled() {
        let _rng = crate::rng::serial();
        tch::manual_seed(4);
        let vs = nn::VarStore::new(Device::Cpu);
        let layer = WtaCrsLinear::new(&(vs.root() / "a"), 6, 3, Sampler::WtaCrs, 0.25, 0.5);
        let x = Tensor::randn([32, 6], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let out = layer.forward_train(&x);
        assert!(out.allclose(&layer.forward(&x), 1e-6, 1e-6, false));
        let loss = out.square().sum(Kind::Float);
        let gx = Tensor::run_backward(&[&loss], &[&x], true, false);
        let exact_gx = (out.detach() * 2.0).matmul(&layer.ws.detach());
        assert!(gx[0].allclose(&exact_gx, 1e-5, 1e-5, false));
        assert_eq!(*layer.stored_rows.borrow(), 8);
        loss.backward();
        layer.after_backward();
        assert!(layer.grad_norms.borrow().as_ref().unwrap().size() == vec![32]);
    }
}
