//! Linear probes on frozen features. `domain_probe` is the proxy A-distance of Ben-David et al.
//! as DANN (Ganin et al. 2016, §5.1) uses it: train a linear classifier to tell source
//! features from target features on one half of each, measure its error ε on the other half,
//! and report the accuracy 1 − ε and PAD = 2(1 − 2ε). Features that carry no domain
//! information give accuracy ≈ 0.5 (PAD ≈ 0); perfectly separable domains give 1 (PAD = 2).
//!
//! The probe is L2-regularised logistic regression on standardised features, fitted by
//! full-batch Adam with hand-written gradients, for S models at once ([S, N, d] features).

use tch::{Kind, Tensor};

/// Settings of the logistic probe.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pub steps: usize,
    pub lr: f64,
    pub l2: f64,
}

impl Default for Probe {
    fn default() -> Self {
        Probe {
            steps: 300,
            lr: 0.05,
            l2: 1e-3,
        }
    }
}

impl Probe {
    /// Fits w, b of p(y = 1 | x) = σ(x·w + b) on `x` [S, N, d] with labels `y` [S, N] (0/1, the
    /// same dtype as `x`); returns (w [S, d, 1], b [S, 1, 1]).
    pub fn fit(&self, x: &Tensor, y: &Tensor) -> (Tensor, Tensor) {
        tch::no_grad(|| {
            let s = x.size();
            let (m, n, d) = (s[0], s[1], s[2]);
            let opts = (x.kind(), x.device());
            let mut w = Tensor::zeros([m, d, 1], opts);
            let mut b = Tensor::zeros([m, 1, 1], opts);
            let (mut mw, mut vw) = (w.zeros_like(), w.zeros_like());
            let (mut mb, mut vb) = (b.zeros_like(), b.zeros_like());
            let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
            let y = y.unsqueeze(-1);
            let xt = x.transpose(1, 2);
            for t in 1..=self.steps {
                let r = (x.matmul(&w) + &b).sigmoid() - &y; // [S, N, 1]
                let gw = xt.matmul(&r) / n as f64 + &w * self.l2;
                let gb = r.mean_dim([1i64].as_slice(), true, x.kind());
                let c1 = 1.0 - b1.powi(t as i32);
                let c2 = 1.0 - b2.powi(t as i32);
                for (p, g, m1, m2) in [
                    (&mut w, gw, &mut mw, &mut vw),
                    (&mut b, gb, &mut mb, &mut vb),
                ] {
                    *m1 = &*m1 * b1 + &g * (1.0 - b1);
                    *m2 = &*m2 * b2 + g.square() * (1.0 - b2);
                    let step = (&*m1 / c1) / ((&*m2 / c2).sqrt() + eps) * self.lr;
                    *p = &*p - step;
                }
            }
            (w, b)
        })
    }

    /// Held-out accuracy [S] of telling `target` features [S, Nt, d] from `source` features
    /// [S, Ns, d]: fitted on the first half of each (standardised with that half's statistics),
    /// measured on the second half with both domains weighted equally.
    pub fn domain_accuracy(&self, source: &Tensor, target: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let x = |f: &Tensor| f.to_kind(Kind::Double).flatten(2, -1);
            let (src, tgt) = (x(source), x(target));
            let half = |f: &Tensor| {
                let n = f.size()[1];
                let k = n / 2;
                (f.narrow(1, 0, k), f.narrow(1, k, n - k))
            };
            let ((sa, sb), (ta, tb)) = (half(&src), half(&tgt));
            let train = Tensor::cat(&[&sa, &ta], 1);
            let mean = train.mean_dim([1i64].as_slice(), true, Kind::Double);
            let std = train.std_dim([1i64].as_slice(), false, true);
            let std = std.where_self(&std.gt(1e-8), &std.ones_like());
            let z = |f: &Tensor| (f - &mean) / &std;
            let labels = |a: &Tensor, b: &Tensor| {
                let m = a.size()[0];
                Tensor::cat(
                    &[
                        Tensor::zeros([m, a.size()[1]], (Kind::Double, a.device())),
                        Tensor::ones([m, b.size()[1]], (Kind::Double, a.device())),
                    ],
                    1,
                )
            };
            let (w, b) = self.fit(&z(&train), &labels(&sa, &ta));
            let correct = |f: &Tensor, target: bool| {
                let p = (z(f).matmul(&w) + &b).squeeze_dim(-1).gt(0.0);
                let hit = if target { p } else { p.logical_not() };
                hit.to_kind(Kind::Double)
                    .mean_dim([1i64].as_slice(), false, Kind::Double)
            };
            (correct(&sb, false) + correct(&tb, true)) / 2.0
        })
    }
}

/// Proxy A-distance 2(1 − 2ε) from a probe's accuracy 1 − ε.
pub fn proxy_a_distance(accuracy: f64) -> f64 {
    2.0 * (2.0 * accuracy - 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn probe_separates_shifted_gaussians_and_not_identical_ones() {
        let _rng = crate::rng::serial();
        tch::manual_seed(0);
        let opts = (Kind::Float, Device::Cpu);
        // Model 0: target shifted by 4 along one of 5 axes (Bayes accuracy Φ(2) = 0.977);
        // model 1: the same distribution in both domains (accuracy 0.5 in expectation).
        let src = Tensor::randn([2, 2000, 5], opts);
        let mut tgt = Tensor::randn([2, 2000, 5], opts);
        let shift = Tensor::zeros([2, 1, 5], opts);
        let _ = shift.get(0).get(0).get(2).fill_(4.0);
        tgt += shift;
        let acc = Vec::<f64>::try_from(Probe::default().domain_accuracy(&src, &tgt)).unwrap();
        assert!((acc[0] - 0.977).abs() < 0.01, "{acc:?}");
        assert!((acc[1] - 0.5).abs() < 0.03, "{acc:?}");
        assert!((proxy_a_distance(0.5)).abs() < 1e-12 && proxy_a_distance(1.0) == 2.0);
    }

    #[test]
    fn fit_matches_the_logistic_regression_optimum() {
        let _rng = crate::rng::serial();
        tch::manual_seed(1);
        // 1-D data with labels from σ(2x − 1): the unregularised MLE approaches (2, −1).
        let x = Tensor::randn([1, 20000, 1], (Kind::Double, Device::Cpu));
        let p = (&x * 2.0 - 1.0).sigmoid();
        let y = p.bernoulli().squeeze_dim(-1);
        let probe = Probe {
            steps: 2000,
            lr: 0.05,
            l2: 0.0,
        };
        let (w, b) = probe.fit(&x, &y);
        let (w, b) = (w.double_value(&[0, 0, 0]), b.double_value(&[0, 0, 0]));
        assert!((w - 2.0).abs() < 0.1 && (b + 1.0).abs() < 0.06, "{w} {b}");
    }
}
