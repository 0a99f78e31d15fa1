//! The update rules, each following its `torch.optim` definition (diffGrad: the authors'
//! corrected diffGrad_v2). They work in place on one parameter group's slice of the flat
//! buffers with persistent scratch buffers: a step allocates nothing. Weight decay is applied
//! by `Optimizer` before the rule sees the gradient (coupled) or to the parameters (decoupled).

use super::OptimConfig;
use tch::Tensor;

/// One update rule over a parameter group's flat slice.
pub trait Rule {
    /// `step` counts from 1; `grad` already includes coupled weight decay.
    fn update(&mut self, param: &mut Tensor, grad: &Tensor, step: u64, lr: f64);
    /// Named state buffers, for checkpoints.
    fn buffers(&self) -> Vec<(&'static str, &Tensor)>;
    /// A per-element diagnostic of the last step, when the rule has one (diffGrad's friction).
    fn diagnostic(&self) -> Option<(&'static str, &Tensor)> {
        None
    }
}

/// A 0-dim tensor on the parameters' device holding a scalar coefficient, refilled only when
/// the value changes. `x.addcmul_(y, c)` with it is a one-pass `x += c·y` (tch's `add_` has no
/// alpha argument).
struct Coef {
    value: f64,
    t: Tensor,
}

impl Coef {
    fn new(like: &Tensor) -> Self {
        Coef {
            value: 0.0,
            t: Tensor::zeros([], (like.kind(), like.device())),
        }
    }
    fn set(&mut self, value: f64) -> &Tensor {
        if value != self.value {
            self.value = value;
            let _ = self.t.fill_(value);
        }
        &self.t
    }
}

/// SGD with momentum, dampening and Nesterov.
pub struct Sgd {
    momentum: f64,
    dampening: f64,
    nesterov: bool,
    buf: Tensor,
    scratch: Tensor,
    coef: Coef,
}

impl Sgd {
    pub fn new(params: &Tensor, cfg: &OptimConfig) -> Self {
        Sgd {
            momentum: cfg.momentum,
            dampening: cfg.dampening,
            nesterov: cfg.nesterov,
            buf: params.zeros_like(),
            scratch: params.zeros_like(),
            coef: Coef::new(params),
        }
    }
}

impl Rule for Sgd {
    fn update(&mut self, param: &mut Tensor, grad: &Tensor, step: u64, lr: f64) {
        let direction = if self.momentum == 0.0 {
            grad.shallow_clone()
        } else {
            if step == 1 {
                // torch starts the buffer at the first gradient, without dampening.
                self.buf.copy_(grad);
            } else {
                let _ = self.buf.g_mul_scalar_(self.momentum);
                let _ = self.buf.addcmul_(grad, self.coef.set(1.0 - self.dampening));
            }
            if self.nesterov {
                self.scratch.copy_(grad);
                let _ = self
                    .scratch
                    .addcmul_(&self.buf, self.coef.set(self.momentum));
                self.scratch.shallow_clone()
            } else {
                self.buf.shallow_clone()
            }
        };
        let _ = param.addcmul_(&direction, self.coef.set(-lr));
    }

    fn buffers(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("momentum_buffer", &self.buf)]
    }
}

/// Adam, and AMSGrad when `amsgrad` (AdamW is Adam with decoupled decay, done by Optimizer).
pub struct Adam {
    beta1: f64,
    beta2: f64,
    eps: f64,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    max_exp_avg_sq: Option<Tensor>,
    scratch: Tensor,
}

impl Adam {
    pub fn new(params: &Tensor, cfg: &OptimConfig, amsgrad: bool) -> Self {
        Adam {
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.eps_or_default(),
            exp_avg: params.zeros_like(),
            exp_avg_sq: params.zeros_like(),
            max_exp_avg_sq: amsgrad.then(|| params.zeros_like()),
            scratch: params.zeros_like(),
        }
    }
}

impl Rule for Adam {
    fn update(&mut self, param: &mut Tensor, g: &Tensor, step: u64, lr: f64) {
        // m ← β1·m + (1−β1)·g ;  v ← β2·v + (1−β2)·g²  (both as lerps, as torch does for m).
        let _ = self.exp_avg.lerp_(g, 1.0 - self.beta1);
        let _ = g.mul_out(&self.scratch, g);
        let _ = self.exp_avg_sq.lerp_(&self.scratch, 1.0 - self.beta2);
        let second = match &self.max_exp_avg_sq {
            Some(max) => {
                let _ = max.maximum_out(max, &self.exp_avg_sq);
                max
            }
            None => &self.exp_avg_sq,
        };
        if lr == 0.0 {
            // The moments still advance, as in torch; the parameters stay.
            return;
        }
        let t = step as i32;
        let bias1 = 1.0 - self.beta1.powi(t);
        let c = (1.0 - self.beta2.powi(t)).sqrt();
        // torch: param −= (lr/bc1) · m / (√v/c + eps). Multiplying through by c:
        // param += m / ((√v + eps·c) · (−bc1 / (lr·c))), one scratch buffer, no allocation.
        let _ = second.sqrt_out(&self.scratch);
        let _ = self.scratch.g_add_scalar_(self.eps * c);
        let _ = self.scratch.g_mul_scalar_(-bias1 / (lr * c));
        let _ = param.addcdiv_(&self.exp_avg, &self.scratch);
    }

    fn buffers(&self) -> Vec<(&'static str, &Tensor)> {
        let mut b = vec![("exp_avg", &self.exp_avg), ("exp_avg_sq", &self.exp_avg_sq)];
        if let Some(m) = &self.max_exp_avg_sq {
            b.push(("max_exp_avg_sq", m));
        }
        b
    }
}

/// RMSProp, optionally centered and with momentum.
pub struct RmsProp {
    alpha: f64,
    eps: f64,
    momentum: f64,
    square_avg: Tensor,
    grad_avg: Option<Tensor>,
    buf: Tensor,
    scratch: Tensor,
    coef: Coef,
}

impl RmsProp {
    pub fn new(params: &Tensor, cfg: &OptimConfig) -> Self {
        RmsProp {
            alpha: cfg.alpha,
            eps: cfg.eps_or_default(),
            momentum: cfg.momentum,
            square_avg: params.zeros_like(),
            grad_avg: cfg.centered.then(|| params.zeros_like()),
            buf: params.zeros_like(),
            scratch: params.zeros_like(),
            coef: Coef::new(params),
        }
    }
}

impl Rule for RmsProp {
    fn update(&mut self, param: &mut Tensor, g: &Tensor, _step: u64, lr: f64) {
        let _ = g.mul_out(&self.scratch, g);
        let _ = self.square_avg.lerp_(&self.scratch, 1.0 - self.alpha);
        match &mut self.grad_avg {
            Some(ga) => {
                // avg = √(v − ḡ²) + eps
                let _ = ga.lerp_(g, 1.0 - self.alpha);
                let _ = ga.mul_out(&self.scratch, ga);
                let _ = self.scratch.neg_();
                let _ = self.scratch.g_add_(&self.square_avg);
                let _ = self.scratch.sqrt_();
            }
            None => {
                let _ = self.square_avg.sqrt_out(&self.scratch);
            }
        }
        let _ = self.scratch.g_add_scalar_(self.eps);
        if self.momentum > 0.0 {
            let _ = self.buf.g_mul_scalar_(self.momentum);
            let _ = self.buf.addcdiv_(g, &self.scratch);
            let _ = param.addcmul_(&self.buf, self.coef.set(-lr));
        } else if lr != 0.0 {
            let _ = self.scratch.g_mul_scalar_(-1.0 / lr);
            let _ = param.addcdiv_(g, &self.scratch);
        }
    }

    fn buffers(&self) -> Vec<(&'static str, &Tensor)> {
        let mut b = vec![
            ("square_avg", &self.square_avg),
            ("momentum_buffer", &self.buf),
        ];
        if let Some(ga) = &self.grad_avg {
            b.push(("grad_avg", ga));
        }
        b
    }
}

/// AdaGrad with learning-rate decay and an initial accumulator value.
pub struct AdaGrad {
    lr_decay: f64,
    eps: f64,
    sum: Tensor,
    scratch: Tensor,
}

impl AdaGrad {
    pub fn new(params: &Tensor, cfg: &OptimConfig) -> Self {
        AdaGrad {
            lr_decay: cfg.lr_decay,
            eps: cfg.eps_or_default(),
            sum: params.full_like(cfg.initial_accumulator),
            scratch: params.zeros_like(),
        }
    }
}

impl Rule for AdaGrad {
    fn update(&mut self, param: &mut Tensor, g: &Tensor, step: u64, lr: f64) {
        let clr = lr / (1.0 + (step - 1) as f64 * self.lr_decay);
        let _ = self.sum.addcmul_(g, g);
        if clr == 0.0 {
            return;
        }
        let _ = self.sum.sqrt_out(&self.scratch);
        let _ = self.scratch.g_add_scalar_(self.eps);
        let _ = self.scratch.g_mul_scalar_(-1.0 / clr);
        let _ = param.addcdiv_(g, &self.scratch);
    }

    fn buffers(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("sum", &self.sum)]
    }
}

/// AdaDelta.
pub struct AdaDelta {
    rho: f64,
    eps: f64,
    square_avg: Tensor,
    acc_delta: Tensor,
    std: Tensor,
    delta: Tensor,
    coef: Coef,
}

impl AdaDelta {
    pub fn new(params: &Tensor, cfg: &OptimConfig) -> Self {
        AdaDelta {
            rho: cfg.rho,
            eps: cfg.eps_or_default(),
            square_avg: params.zeros_like(),
            acc_delta: params.zeros_like(),
            std: params.zeros_like(),
            delta: params.zeros_like(),
            coef: Coef::new(params),
        }
    }
}

impl Rule for AdaDelta {
    fn update(&mut self, param: &mut Tensor, g: &Tensor, _step: u64, lr: f64) {
        let _ = g.mul_out(&self.std, g);
        let _ = self.square_avg.lerp_(&self.std, 1.0 - self.rho);
        // std = √(v + eps); delta = √(u + eps) / std · g; u ← ρu + (1−ρ)·delta²
        let _ = self.square_avg.add_scalar_out(&self.std, self.eps);
        let _ = self.std.sqrt_();
        let _ = self.acc_delta.add_scalar_out(&self.delta, self.eps);
        let _ = self.delta.sqrt_();
        let _ = self.delta.g_div_(&self.std);
        let _ = self.delta.g_mul_(g);
        let _ = self.delta.mul_out(&self.std, &self.delta);
        let _ = self.acc_delta.lerp_(&self.std, 1.0 - self.rho);
        let _ = param.addcmul_(&self.delta, self.coef.set(-lr));
    }

    fn buffers(&self) -> Vec<(&'static str, &Tensor)> {
        vec![
            ("square_avg", &self.square_avg),
            ("acc_delta", &self.acc_delta),
        ]
    }
}

/// diffGrad (Dubey et al.): Adam whose first moment is scaled per element by the friction
/// ξ = sigmoid(|g_{t−1} − g_t|). The previous gradient is a copy: keeping a reference to the
/// live gradient (the bug of the original diffGrad.py) makes ξ ≡ 0.5.
pub struct DiffGrad {
    beta1: f64,
    beta2: f64,
    eps: f64,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    previous_grad: Tensor,
    friction: Tensor,
    scratch: Tensor,
}

impl DiffGrad {
    pub fn new(params: &Tensor, cfg: &OptimConfig) -> Self {
        DiffGrad {
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.eps_or_default(),
            exp_avg: params.zeros_like(),
            exp_avg_sq: params.zeros_like(),
            previous_grad: params.zeros_like(),
            friction: params.zeros_like(),
            scratch: params.zeros_like(),
        }
    }
}

impl Rule for DiffGrad {
    fn update(&mut self, param: &mut Tensor, g: &Tensor, step: u64, lr: f64) {
        let _ = self.exp_avg.lerp_(g, 1.0 - self.beta1);
        let _ = g.mul_out(&self.scratch, g);
        let _ = self.exp_avg_sq.lerp_(&self.scratch, 1.0 - self.beta2);
        self.friction.copy_(&self.previous_grad);
        let _ = self.friction.g_sub_(g);
        let _ = self.friction.abs_();
        let _ = self.friction.sigmoid_();
        self.previous_grad.copy_(g);
        if lr == 0.0 {
            return;
        }
        let t = step as i32;
        let step_size = lr * (1.0 - self.beta2.powi(t)).sqrt() / (1.0 - self.beta1.powi(t));
        // param −= step_size · m·ξ / (√v + eps), written as param += m / ((√v + eps) / ξ · (−1/step_size)).
        let _ = self.exp_avg_sq.sqrt_out(&self.scratch);
        let _ = self.scratch.g_add_scalar_(self.eps);
        let _ = self.scratch.g_div_(&self.friction);
        let _ = self.scratch.g_mul_scalar_(-1.0 / step_size);
        let _ = param.addcdiv_(&self.exp_avg, &self.scratch);
    }

    fn buffers(&self) -> Vec<(&'static str, &Tensor)> {
        vec![
            ("exp_avg", &self.exp_avg),
            ("exp_avg_sq", &self.exp_avg_sq),
            ("previous_grad", &self.previous_grad),
        ]
    }

    fn diagnostic(&self) -> Option<(&'static str, &Tensor)> {
        Some(("friction", &self.friction))
    }
}
