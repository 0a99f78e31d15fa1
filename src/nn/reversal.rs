//! The gradient reversal layer of domain-adversarial training (Ganin et al. 2016, §4): the
//! identity in the forward pass, −λ times the incoming gradient in the backward pass. Placed
//! between a feature extractor and a domain classifier, plain gradient descent on
//! `label loss + domain loss` then trains the domain classifier to tell the domains apart and
//! the features to make them indistinguishable.
//!
//! Written as `x̄ + (x − x̄)·(−λ)` with x̄ = x detached: the forward value is `x` exactly (the
//! second term is an exact zero) and the only path for the gradient is through `x·(−λ)`.
//! λ = 0 blocks the gradient entirely (the features ignore the domain classifier).

use tch::Tensor;

/// `R_λ`: identity forward, −λ·gradient backward.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradientReversal {
    pub lambda: f64,
}

impl GradientReversal {
    pub fn new(lambda: f64) -> Self {
        GradientReversal { lambda }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let held = x.detach();
        if self.lambda == 0.0 {
            return held;
        }
        &held + (x - &held) * (-self.lambda)
    }
}

/// The reversal with a factor per leading index (`lambda` broadcasts against `x`, e.g. [S, 1, 1]
/// for S stacked models, each with its own λ).
pub fn reverse_each(x: &Tensor, lambda: &Tensor) -> Tensor {
    let held = x.detach();
    &held - (x - &held) * lambda
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn forward_is_identity_and_gradient_is_minus_lambda_times_the_incoming_one() {
        let _rng = crate::rng::serial();
        tch::manual_seed(0);
        let opts = (Kind::Double, Device::Cpu);
        for lambda in [0.0, 0.37, 1.0, 6.0] {
            let x = Tensor::randn([4, 3], opts).set_requires_grad(true);
            let y = GradientReversal::new(lambda).forward(&x);
            assert!(y.equal(&x.detach()), "forward is x exactly (λ = {lambda})");
            if lambda == 0.0 {
                assert!(!y.requires_grad(), "λ = 0 lets no gradient through");
                continue;
            }
            let upstream = Tensor::randn([4, 3], opts);
            // d/dx <y, g> = −λ g.
            let g =
                Tensor::run_backward(&[(&y * &upstream).sum(Kind::Double)], &[&x], false, false);
            assert!(g[0].equal(&(&upstream * (-lambda))), "λ = {lambda}");
        }
        // Per-model factors: row s of the gradient is −λ_s times the incoming one.
        let x = Tensor::randn([3, 2, 5], opts).set_requires_grad(true);
        let lam = Tensor::from_slice(&[0.0f64, 1.0, 6.0]).view([3, 1, 1]);
        let y = reverse_each(&x, &lam);
        assert!(y.equal(&x.detach()));
        let upstream = Tensor::randn([3, 2, 5], opts);
        let g = Tensor::run_backward(&[(&y * &upstream).sum(Kind::Double)], &[&x], false, false);
        assert!(g[0].equal(&(-(&upstream * &lam))));
    }
}
