//! The update rules, each written as in the `torch.optim` documentation.

use super::{OptimConfig, Rule};
use tch::Tensor;

/// SGD with momentum, dampening, Nesterov and (coupled) weight decay.
pub struct Sgd {
    momentum: f64,
    dampening: f64,
    nesterov: bool,
    weight_decay: f64,
    buf: Tensor,
}

impl Sgd {
    pub fn new(params: &Tensor, cfg: &OptimConfig) -> Self {
        Sgd {
            momentum: cfg.momentum,
            dampening: cfg.dampening,
            nesterov: cfg.nesterov,
            weight_decay: cfg.weight_decay,
            buf: params.zeros_like(),
        }
    }
}

impl Rule for Sgd {
    fn update(&mut self, param: &mut Tensor, grad: &Tensor, step: u64, lr: f64) {
        let mut d_p = if self.weight_decay != 0.0 {
            grad + &*param * self.weight_decay
        } else {
            grad.shallow_clone()
        };
        if self.momentum != 0.0 {
            if step == 1 {
                // torch starts the buffer at the first gradient, without dampening.
                self.buf.copy_(&d_p);
            } else {
                let _ = self.buf.g_mul_scalar_(self.momentum);
                let _ = self.buf.g_add_(&(&d_p * (1.0 - self.dampening)));
            }
            d_p = if self.nesterov {
                d_p + &self.buf * self.momentum
            } else {
                self.buf.shallow_clone()
            };
        }
        let _ = param.g_sub_(&(d_p * lr));
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
        let _ = self.exp_avg.lerp_(&g, 1.0 - self.beta1);
        let _ = self.exp_avg_sq.g_mul_scalar_(self.beta2);
        let _ = self.exp_avg_sq.addcmul_(&g, &(&g * (1.0 - self.beta2)));
        if lr == 0.0 {
            // The moments still advance, as in torch; the parameters stay.
            return;
        }
        let t = step as i32;
        let bias1 = 1.0 - self.beta1.powi(t);
        let bias2_sqrt = (1.0 - self.beta2.powi(t)).sqrt();
        // denom = (√v / √bc2 + eps) · (−bc1 / lr), so param += m / denom is torch's
        // param −= (lr / bc1) · m / (√v / √bc2 + eps).
        let mut denom = self.exp_avg_sq.sqrt();
        let _ = denom.g_div_scalar_(bias2_sqrt);
        let _ = denom.g_add_scalar_(self.eps);
        let _ = denom.g_mul_scalar_(-bias1 / lr);
        let _ = param.addcdiv_(&self.exp_avg, &denom);
    }

    fn buffers(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("exp_avg", &self.exp_avg), ("exp_avg_sq", &self.exp_avg_sq)]
    }
}
