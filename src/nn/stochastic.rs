//! Stochastic binary units h = 1[u < σ(a)], u ~ U(0, 1), and the ways of getting a gradient to
//! their pre-activation a (Bengio, Léonard & Courville 2013):
//!
//! - `reinforce`: unbiased. ∂/∂a ≈ (L − b)·(h − σ(a)), with the minimum-variance baseline
//!   b = E[L·(h − σ)²] / E[(h − σ)²] per unit, tracked by moving averages. The layer returns
//!   the sample and a surrogate whose gradient is that estimate once the per-example loss is
//!   known (`Reinforce::surrogate`).
//! - `straight-through`: the gradient with respect to h is passed to a unchanged.
//! - `straight-through-sigmoid`: … scaled by σ′(a) (the sigmoid's derivative).
//! - `stochastic-times-smooth`: h = 1[u < σ(a)]·σ(a), differentiated through the smooth factor.
//! - `noise`: a differentiable relaxation, h = σ(a + ε) with logistic noise ε (binary only in
//!   the limit; at evaluation h is thresholded).

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Estimator {
    Reinforce,
    StraightThrough,
    StraightThroughSigmoid,
    StochasticTimesSmooth,
    Noise,
}

impl Estimator {
    pub const ALL: [Estimator; 5] = [
        Estimator::Reinforce,
        Estimator::StraightThrough,
        Estimator::StraightThroughSigmoid,
        Estimator::StochasticTimesSmooth,
        Estimator::Noise,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Estimator::Reinforce => "reinforce",
            Estimator::StraightThrough => "straight-through",
            Estimator::StraightThroughSigmoid => "straight-through-sigmoid",
            Estimator::StochasticTimesSmooth => "stochastic-times-smooth",
            Estimator::Noise => "noise",
        }
    }
}

/// A binary sample drawn from pre-activations `a`, with what its estimator needs.
pub struct BinarySample {
    /// The forward value (0/1, or σ(a)-scaled / relaxed for those estimators).
    pub h: Tensor,
    /// The hard 0/1 sample.
    pub bits: Tensor,
    /// σ(a) with its graph (REINFORCE's score h − σ(a) is taken against it).
    pub prob: Tensor,
}

/// Draws h = 1[u < σ(a)] and wires the estimator's gradient path. `train` = false gives the
/// same draw with no gradient tricks (noise: the thresholded relaxation's mean, σ(a) > ½).
pub fn sample(a: &Tensor, est: Estimator, train: bool) -> BinarySample {
    let prob = a.sigmoid();
    let u = Tensor::rand_like(a);
    let bits = u.lt_tensor(&prob.detach()).to_kind(a.kind());
    let h = match (est, train) {
        (_, false) | (Estimator::Reinforce, true) => bits.shallow_clone(),
        (Estimator::StraightThrough, true) => &bits + a - a.detach(),
        (Estimator::StraightThroughSigmoid, true) => &bits + &prob - prob.detach(),
        (Estimator::StochasticTimesSmooth, true) => &bits * &prob,
        (Estimator::Noise, true) => {
            let logistic = (&u / (-&u + 1.0)).log();
            (a + logistic).sigmoid()
        }
    };
    BinarySample { h, bits, prob }
}

/// The minimum-variance baseline of REINFORCE per unit, as moving averages of
/// L·(h − σ)² and (h − σ)².
pub struct Reinforce {
    num: Option<Tensor>,
    den: Option<Tensor>,
    pub momentum: f64,
}

impl Default for Reinforce {
    fn default() -> Self {
        Reinforce {
            num: None,
            den: None,
            momentum: 0.9,
        }
    }
}

impl Reinforce {
    /// A scalar whose gradient with respect to a is Σ_examples (L − b)·(h − σ(a)) / batch:
    /// add it to the loss. `loss` is the per-example loss [batch] (detached inside).
    pub fn surrogate(&mut self, s: &BinarySample, loss: &Tensor) -> Tensor {
        let l = loss.detach().unsqueeze(-1);
        let score = &s.bits - s.prob.detach();
        let sq = score.square();
        let num = (&l * &sq).mean_dim(0, false, Kind::Float);
        let den = sq.mean_dim(0, false, Kind::Float);
        // The baseline comes from earlier batches only, so it is independent of this sample
        // and the estimate stays unbiased.
        let baseline = match (&self.num, &self.den) {
            (Some(n), Some(d)) => n / d.clamp_min(1e-8),
            _ => Tensor::zeros_like(&num),
        };
        let m = self.momentum;
        let (num, den) = match (&self.num, &self.den) {
            (Some(n), Some(d)) => (n * m + num * (1.0 - m), d * m + den * (1.0 - m)),
            _ => (num, den),
        };
        self.num = Some(num);
        self.den = Some(den);
        // d/da of (L − b)·log p(h | a) = (L − b)·(h − σ(a)).
        let log_p = &s.bits * s.prob.clamp_min(1e-7).log()
            + (-&s.bits + 1.0) * (-&s.prob + 1.0).clamp_min(1e-7).log();
        let centred = (l - baseline.unsqueeze(0)).detach();
        (centred * log_p)
            .sum_dim_intlist(-1, false, Kind::Float)
            .mean(Kind::Float)
    }
}

/// Rounds to the nearest integer in the forward pass and passes the gradient through unchanged
/// (straight-through rounding, y = x + (round(x) − x) with the bracket detached): integer
/// controls that still carry a gradient.
pub fn round_straight_through(x: &Tensor) -> Tensor {
    x + (x.round() - x).detach()
}

#[cfg(test)]
mod round_tests {
    use super::*;

    #[test]
    fn straight_through_rounding_is_round_forward_and_identity_backward() {
        let x = Tensor::from_slice(&[0.2f64, 1.5001, -2.7, 3.49]).set_requires_grad(true);
        let y = round_straight_through(&x);
        let v: Vec<f64> = Vec::try_from(&y.detach()).unwrap();
        assert_eq!(v, vec![0.0, 2.0, -3.0, 3.0]);
        // d(Σ w·y)/dx = w: the rounding is invisible to the gradient.
        let w = Tensor::from_slice(&[1.0f64, -2.0, 0.5, 3.0]);
        (&y * &w).sum(Kind::Double).backward();
        assert!(x.grad().allclose(&w, 0.0, 0.0, false));
    }
}
