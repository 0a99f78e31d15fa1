//! Curvature of a loss: Hessian-vector products by double backward (no Hessian is formed) and
//! the top eigenvalue by power iteration. The Hessian can be of one mini-batch (H_B) or of the
//! full training set, given as chunks whose losses are averaged with their weights.

use tch::{Kind, Tensor};

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

impl Hessian {
    /// `losses`: scalar losses built from `params` (with graph), each with its weight.
    pub fn new(params: Vec<Tensor>, losses: Vec<(Tensor, f64)>) -> Hessian {
        let grads = losses
            .into_iter()
            .map(|(loss, w)| (Tensor::run_backward(&[loss], &params, true, true), w))
            .collect();
        Hessian { params, grads }
    }

    /// H v.
    pub fn apply(&self, v: &[Tensor]) -> Vec<Tensor> {
        let mut out: Option<Vec<Tensor>> = None;
        for (g, w) in &self.grads {
            let hv = Tensor::run_backward(&[dot(g, v)], &self.params, true, false);
            let hv: Vec<Tensor> = if *w == 1.0 {
                hv
            } else {
                hv.into_iter().map(|t| t * *w).collect()
            };
            out = Some(match out {
                None => hv,
                Some(acc) => acc.into_iter().zip(hv).map(|(a, t)| a + t).collect(),
            });
        }
        out.expect("at least one chunk")
    }

    /// The eigenvalue of largest magnitude, by power iteration from a random start (drawn on
    /// the CPU from the global generator, so CPU and CUDA start alike). Stops when successive
    /// Rayleigh quotients differ by at most `tol`·|λ|, or after `max_iter` products (a negative
    /// `tol` always runs `max_iter`).
    pub fn top_eigenvalue(&self, max_iter: usize, tol: f64) -> Eigen {
        let mut v: Vec<Tensor> = self
            .params
            .iter()
            .map(|p| {
                Tensor::randn(p.size(), (Kind::Float, tch::Device::Cpu))
                    .to_kind(p.kind())
                    .to_device(p.device())
            })
            .collect();
        normalise(&mut v);
        let mut last = f64::NAN;
        for i in 1..=max_iter.max(1) {
            let hv = self.apply(&v);
            let value = dot(&v, &hv).double_value(&[]);
            v = hv;
            normalise(&mut v);
            if (value - last).abs() <= tol * value.abs() {
                return Eigen {
                    value,
                    iterations: i,
                    converged: true,
                };
            }
            last = value;
        }
        Eigen {
            value: last,
            iterations: max_iter.max(1),
            converged: false,
        }
    }
}

fn normalise(v: &mut [Tensor]) {
    let norm = dot(v, v).sqrt().clamp_min(1e-30);
    for t in v.iter_mut() {
        *t = &*t / &norm;
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
