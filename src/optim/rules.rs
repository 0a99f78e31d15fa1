//! The update rules, each written as in the `torch.optim` documentation. They work in place on
//! the flat buffers with a persistent scratch buffer, so a step allocates nothing and makes no
//! more passes over memory than torch's own single-tensor implementation.

use super::{OptimConfig, Rule};
use tch::Tensor;

/// A 0-dim tensor on the parameters' device holding a scalar coefficient, refilled only when
/// the value changes. `x.addcmul_(y, c)` with it is a one-pass `x += c·y` (tch's `add_` has no
/// alpha argument).
struct Coef {
    value: f64,
    t: Tensor,
}

impl Coef {
    fn new(like: &Tensor, value: f64) -> Self {
        let t = Tensor::full([], value, (like.kind(), like.device()));
        Coef { value, t }
    }
    fn set(&mut self, value: f64) -> &Tensor {
        if value != self.value {
            self.value = value;
            let _ = self.t.fill_(value);
        }
        &self.t
    }
}

/// SGD with momentum, dampening, Nesterov and (coupled) weight decay.
pub struct Sgd {
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
    buf: Tensor,
    scratch: Tensor,
    neg_lr: Coef,
    undamped: Coef,
    momentum_t: Coef,
}

impl Sgd {
    pub fn new(params: &Tensor, cfg: &OptimConfig) -> Self {
        Sgd {
            momentum: cfg.momentum,
            nesterov: cfg.nesterov,
            weight_decay: cfg.weight_decay,
            buf: params.zeros_like(),
            scratch: params.zeros_like(),
            neg_lr: Coef::new(params, -cfg.lr),
            undamped: Coef::new(params, 1.0 - cfg.dampening),
            momentum_t: Coef::new(params, cfg.momentum),
        }
    }
}

impl Rule for Sgd {
    fn update(&mut self, param: &mut Tensor, grad: &Tensor, step: u64, lr: f64) {
        // d_p = grad + wd·param, in the scratch buffer when decay is on.
        let mut in_scratch = false;
        if self.weight_decay != 0.0 {
            let _ = param.mul_scalar_out(&self.scratch, self.weight_decay);
            let _ = self.scratch.g_add_(grad);
            in_scratch = true;
        }
        let d_p = if in_scratch {
            self.scratch.shallow_clone()
        } else {
            grad.shallow_clone()
        };
        let direction = if self.momentum == 0.0 {
            d_p
        } else {
            if step == 1 {
                // torch starts the buffer at the first gradient, without dampening.
                self.buf.copy_(&d_p);
            } else {
                let _ = self.buf.g_mul_scalar_(self.momentum);
                let _ = self.buf.addcmul_(&d_p, &self.undamped.t);
            }
            if self.nesterov {
                if !in_scratch {
                    self.scratch.copy_(&d_p);
                }
                let _ = self
                    .scratch
                    .addcmul_(&self.buf, self.momentum_t.set(self.momentum));
                self.scratch.shallow_clone()
            } else {
                self.buf.shallow_clone()
            }
        };
        let _ = param.addcmul_(&direction, self.neg_lr.set(-lr));
    }

    fn buffers(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("momentum_buffer", &self.buf)]
    }
}

/// Adam (L2 weight decay added to the gradient) and AdamW (decoupled decay).
pub struct Adam {
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    decoupled: bool,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    scratch: Tensor,
}

impl Adam {
    pub fn new(params: &Tensor, cfg: &OptimConfig, decoupled: bool) -> Self {
        Adam {
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.eps,
            weight_decay: cfg.weight_decay,
            decoupled,
            exp_avg: params.zeros_like(),
            exp_avg_sq: params.zeros_like(),
            scratch: params.zeros_like(),
        }
    }
}

impl Rule for Adam {
    fn update(&mut self, param: &mut Tensor, grad: &Tensor, step: u64, lr: f64) {
        let g = if self.weight_decay != 0.0 && !self.decoupled {
            grad + &*param * self.weight_decay
        } else {
            grad.shallow_clone()
        };
        if self.weight_decay != 0.0 && self.decoupled {
            let _ = param.g_mul_scalar_(1.0 - lr * self.weight_decay);
        }
        // m ← β1·m + (1−β1)·g ;  v ← β2·v + (1−β2)·g²  (both as lerps, as torch does for m).
        let _ = self.exp_avg.lerp_(&g, 1.0 - self.beta1);
        let _ = g.mul_out(&self.scratch, &g);
        let _ = self.exp_avg_sq.lerp_(&self.scratch, 1.0 - self.beta2);
        if lr == 0.0 {
            // The moments still advance, as in torch; the parameters stay.
            return;
        }
        let t = step as i32;
        let bias1 = 1.0 - self.beta1.powi(t);
        let c = (1.0 - self.beta2.powi(t)).sqrt();
        // torch: param −= (lr/bc1) · m / (√v/c + eps). Multiplying through by c:
        // param += m / ((√v + eps·c) · (−bc1 / (lr·c))), one scratch buffer, no allocation.
        let _ = self.exp_avg_sq.sqrt_out(&self.scratch);
        let _ = self.scratch.g_add_scalar_(self.eps * c);
        let _ = self.scratch.g_mul_scalar_(-bias1 / (lr * c));
        let _ = param.addcdiv_(&self.exp_avg, &self.scratch);
    }

    fn buffers(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("exp_avg", &self.exp_avg), ("exp_avg_sq", &self.exp_avg_sq)]
    }
}
