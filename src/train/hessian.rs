//! Curvature of a loss as linear operators on the parameters, never formed as matrices: the
//! Hessian by double backward (Hessian-vector products), and the Gauss–Newton matrix JᵀH_L J
//! of a cross-entropy classifier (a Jacobian-vector product by the double-backward trick, the
//! closed-form softmax Hessian, then a vector-Jacobian product). Either can be of one
//! mini-batch or of the full training set, given as chunks whose losses are averaged with their
//! weights. The spectral methods over these operators (Lanczos, Hutchinson, SLQ) are in
//! `spectrum.rs`.

use tch::{Kind, Tensor};

/// A symmetric linear operator on the parameters (a list of tensors shaped like them).
pub trait Operator {
    /// The parameters the operator acts on (their shapes, kind and device).
    fn params(&self) -> &[Tensor];
    /// A v.
    fn apply(&self, v: &[Tensor]) -> Vec<Tensor>;
}

/// The parameters' shapes, to move between a list of tensors and one flat vector (what the
/// spectral methods work on).
pub struct Layout {
    shapes: Vec<Vec<i64>>,
    sizes: Vec<i64>,
    pub kind: Kind,
    pub device: tch::Device,
}

impl Layout {
    pub fn of(params: &[Tensor]) -> Layout {
        let first = params.first().expect("at least one parameter");
        Layout {
            shapes: params.iter().map(Tensor::size).collect(),
            sizes: params.iter().map(Tensor::numel).map(|n| n as i64).collect(),
            kind: first.kind(),
            device: first.device(),
        }
    }
    /// Number of parameters.
    pub fn dim(&self) -> i64 {
        self.sizes.iter().sum()
    }
    pub fn flatten(&self, v: &[Tensor]) -> Tensor {
        let flat: Vec<Tensor> = v.iter().map(|t| t.reshape([-1])).collect();
        Tensor::cat(&flat, 0)
    }
    pub fn split(&self, flat: &Tensor) -> Vec<Tensor> {
        flat.split_with_sizes(&self.sizes, 0)
            .into_iter()
            .zip(&self.shapes)
            .map(|(t, s)| t.view(s.as_slice()))
            .collect()
    }
}

/// A v for flat vectors.
pub fn apply_flat(op: &dyn Operator, layout: &Layout, v: &Tensor) -> Tensor {
    layout.flatten(&op.apply(&layout.split(v)))
}

/// The Hessian of Σ_c w_c L_c with respect to `params`, ready for products: the first
/// gradients are built once with their graph, each product differentiates ⟨g, v⟩ again.
pub struct Hessian {
    params: Vec<Tensor>,
    /// ∇L_c (with graph) and weight w_c for each chunk.
    grads: Vec<(Vec<Tensor>, f64)>,
}

/// The outcome of power iteration.
#[derive(Debug, Clone, Copy)]
pub struct Eigen {
    pub value: f64,
    pub iterations: usize,
    pub converged: bool,
}

/// Σ ⟨a_i, b_i⟩ as a device scalar, in the parameters' precision (as torch.autograd users do;
/// a per-tensor cast to f64 costs more ops than the whole product on small models).
fn dot(a: &[Tensor], b: &[Tensor]) -> Tensor {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.reshape([-1]).dot(&y.reshape([-1])))
        .reduce(|s, t| s + t)
        .expect("at least one parameter")
}

/// Σ_c w_c · (product of chunk c), the weighted sum over chunks.
fn weighted_sum(parts: impl Iterator<Item = (Vec<Tensor>, f64)>) -> Vec<Tensor> {
    let mut out: Option<Vec<Tensor>> = None;
    for (part, w) in parts {
        let part: Vec<Tensor> = if w == 1.0 {
            part
        } else {
            part.into_iter().map(|t| t * w).collect()
        };
        out = Some(match out {
            None => part,
            Some(acc) => acc.into_iter().zip(part).map(|(a, t)| a + t).collect(),
        });
    }
    out.expect("at least one chunk")
}

impl Hessian {
    /// `losses`: scalar losses built from `params` (with graph), each with its weight.
    pub fn new(params: Vec<Tensor>, losses: Vec<(Tensor, f64)>) -> Hessian {
        let grads = losses
            .into_iter()
            .map(|(loss, w)| (Tensor::run_backward(&[loss], &params, true, true), w))
            .collect();
        Hessian { params, grads }
    }

    /// The eigenvalue of largest magnitude, by power iteration from a random start (drawn on
    /// the CPU from the global generator, so CPU and CUDA start alike). Stops when successive
    /// Rayleigh quotients differ by at most `tol`·|λ|, or after `max_iter` products (a negative
    /// `tol` always runs `max_iter`).
    pub fn top_eigenvalue(&self, max_iter: usize, tol: f64) -> Eigen {
        let top = super::spectrum::power_top_k(self, 1, tol, max_iter);
        Eigen {
            value: top.values[0],
            iterations: top.products,
            converged: top.converged,
        }
    }
}

impl Operator for Hessian {
    fn params(&self) -> &[Tensor] {
        &self.params
    }
    fn apply(&self, v: &[Tensor]) -> Vec<Tensor> {
        weighted_sum(self.grads.iter().map(|(g, w)| {
            let hv = Tensor::run_backward(&[dot(g, v)], &self.params, true, false);
            (hv, *w)
        }))
    }
}

/// The Gauss–Newton matrix G = Σ_c w_c J_cᵀ H_c J_c of a mean cross-entropy over logits, where
/// J_c is the Jacobian of chunk c's logits with respect to the parameters and H_c the Hessian
/// of the loss in the logits (per row (diag p − p pᵀ)/rows, p the softmax). Positive
/// semi-definite; equal to the Hessian when the logits are linear in the parameters.
pub struct GaussNewton {
    params: Vec<Tensor>,
    chunks: Vec<GnChunk>,
}

struct GnChunk {
    /// rows × classes, with graph.
    logits: Tensor,
    /// A dummy cotangent: Jᵀu is built once with its graph, and J v = ∂⟨Jᵀu, v⟩/∂u.
    u: Tensor,
    jt_u: Vec<Tensor>,
    /// Softmax of the logits, detached.
    probs: Tensor,
    /// w_c / rows.
    scale: f64,
}

impl GaussNewton {
    /// `chunks`: the logits of each chunk (built from `params` with graph) and its weight.
    pub fn new(params: Vec<Tensor>, chunks: Vec<(Tensor, f64)>) -> GaussNewton {
        let chunks = chunks
            .into_iter()
            .map(|(logits, w)| {
                let kind = logits.kind();
                let u = logits.zeros_like().detach().set_requires_grad(true);
                let jt_u = Tensor::run_backward(&[(&logits * &u).sum(kind)], &params, true, true);
                let probs = logits.detach().softmax(-1, kind);
                let rows = logits.size()[0].max(1) as f64;
                GnChunk {
                    logits,
                    u,
                    jt_u,
                    probs,
                    scale: w / rows,
                }
            })
            .collect();
        GaussNewton { params, chunks }
    }
}

impl Operator for GaussNewton {
    fn params(&self) -> &[Tensor] {
        &self.params
    }
    fn apply(&self, v: &[Tensor]) -> Vec<Tensor> {
        weighted_sum(self.chunks.iter().map(|c| {
            let jv = Tensor::run_backward(&[dot(&c.jt_u, v)], &[&c.u], true, false)
                .pop()
                .expect("one input");
            let pj = &c.probs * &jv;
            let h_jv = &pj - &c.probs * pj.sum_dim_intlist(-1, true, pj.kind());
            let kind = c.logits.kind();
            let g =
                Tensor::run_backward(&[(&c.logits * &h_jv).sum(kind)], &self.params, true, false);
            (g, c.scale)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    const D: (Kind, Device) = (Kind::Double, Device::Cpu);

    #[test]
    fn power_iteration_finds_the_top_of_a_known_spectrum() {
        let _rng = crate::rng::serial();
        tch::manual_seed(0);
        let (q, _) = Tensor::linalg_qr(&Tensor::randn([6, 6], D), "reduced");
        let spectrum = Tensor::from_slice(&[5.0f64, 2.0, 1.0, 0.5, -0.5, 0.1]);
        let a = q.matmul(&spectrum.diag(0)).matmul(&q.tr());
        let x = Tensor::randn([6], D).set_requires_grad(true);
        let loss = x.dot(&a.mv(&x)) * 0.5;
        let h = Hessian::new(vec![x.shallow_clone()], vec![(loss, 1.0)]);
        let e = h.top_eigenvalue(200, 1e-10);
        assert!(e.converged && (e.value - 5.0).abs() < 1e-6, "{e:?}");
        // The product itself is A v.
        let v = Tensor::randn([6], D);
        assert!(h.apply(&[v.shallow_clone()])[0].allclose(&a.mv(&v), 1e-10, 1e-10, false));
        // Chunk weights add up: 0.25·H + 0.75·H = H.
        let l1 = x.dot(&a.mv(&x)) * 0.5;
        let l2 = x.dot(&a.mv(&x)) * 0.5;
        let h2 = Hessian::new(vec![x.shallow_clone()], vec![(l1, 0.25), (l2, 0.75)]);
        assert!(h2.apply(&[v.shallow_clone()])[0].allclose(&a.mv(&v), 1e-10, 1e-10, false));
    }

    #[test]
    fn hvp_matches_finite_differences_of_gradients() {
        let _rng = crate::rng::serial();
        tch::manual_seed(1);
        let x = Tensor::randn([32, 4], D);
        let y = Tensor::randint(3, [32], (Kind::Int64, Device::Cpu));
        let w1 = Tensor::randn([4, 8], D).set_requires_grad(true);
        let w2 = Tensor::randn([8, 3], D).set_requires_grad(true);
        // In double precision throughout (cross_entropy_for_logits would compute in f32).
        let loss_at = |a: &Tensor, b: &Tensor| {
            x.matmul(a)
                .tanh()
                .matmul(b)
                .log_softmax(-1, Kind::Double)
                .nll_loss(&y)
        };
        let h = Hessian::new(
            vec![w1.shallow_clone(), w2.shallow_clone()],
            vec![(loss_at(&w1, &w2), 1.0)],
        );
        let v = [Tensor::randn([4, 8], D), Tensor::randn([8, 3], D)];
        let hv = h.apply(&v);
        let grad_at = |s: f64| {
            let a = (&w1 + &v[0] * s).detach().set_requires_grad(true);
            let b = (&w2 + &v[1] * s).detach().set_requires_grad(true);
            Tensor::run_backward(&[loss_at(&a, &b)], &[a, b], false, false)
        };
        let eps = 1e-5;
        let (plus, minus) = (grad_at(eps), grad_at(-eps));
        for i in 0..2 {
            let fd = (&plus[i] - &minus[i]) / (2.0 * eps);
            assert!(fd.allclose(&hv[i], 1e-6, 1e-7, false), "block {i}");
        }
    }
}
