//! Diagonal Gaussians as tensors, shared by the latent-variable and Bayesian experiments: the
//! log-density, log-mean-exp (Monte Carlo averages of likelihoods), the KL divergence of a
//! Gaussian latent, reparameterised samples, the normal CDF (coverage of predictive
//! mixtures). Everything broadcasts and stays on the tensors' device.

use tch::Tensor;

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// log N(y | μ, σ²), elementwise.
pub fn log_prob(y: &Tensor, mu: &Tensor, sigma: &Tensor) -> Tensor {
    let z = (y - mu) / sigma;
    z.square() * -0.5 - sigma.log() - 0.5 * LN_2PI
}

/// log (1/K) Σ_k exp(t_k) along `dim`, computed stably (max subtracted).
pub fn log_mean_exp(t: &Tensor, dim: i64) -> Tensor {
    let k = t.size()[dim.rem_euclid(t.dim() as i64) as usize];
    t.logsumexp([dim].as_slice(), false) - (k as f64).ln()
}

/// KL(N(μ_q, e^{lv_q}) ‖ N(μ_p, e^{lv_p})) elementwise (sum over the latent axis yourself).
pub fn kl(mu_q: &Tensor, logvar_q: &Tensor, mu_p: &Tensor, logvar_p: &Tensor) -> Tensor {
    ((logvar_q - logvar_p).exp() + (mu_q - mu_p).square() / logvar_p.exp() - 1.0 - logvar_q
        + logvar_p)
        * 0.5
}

/// KL(N(μ, e^{lv}) ‖ N(0, 1)) elementwise: ½(e^{lv} + μ² − 1 − lv).
pub fn kl_standard(mu: &Tensor, logvar: &Tensor) -> Tensor {
    (logvar.exp() + mu.square() - 1.0 - logvar) * 0.5
}

/// z = μ + σ·ε with ε ~ N(0, I) drawn from the global generator.
pub fn reparameterize(mu: &Tensor, logvar: &Tensor) -> Tensor {
    mu + (logvar * 0.5).exp() * mu.randn_like()
}

/// Φ(x), the standard normal CDF, elementwise.
pub fn normal_cdf(x: &Tensor) -> Tensor {
    ((x / std::f64::consts::SQRT_2).erf() + 1.0) * 0.5
}

/// Mean and standard deviation of an equally weighted mixture of Gaussians whose components
/// run along `dim`: E[y] = mean μ_k, Var[y] = mean(σ_k² + μ_k²) − E[y]².
pub fn mixture_moments(mu: &Tensor, sigma: &Tensor, dim: i64) -> (Tensor, Tensor) {
    let m = mu.mean_dim([dim].as_slice(), false, mu.kind());
    let second = (sigma.square() + mu.square()).mean_dim([dim].as_slice(), false, mu.kind());
    let var = (second - m.square()).clamp_min(0.0);
    (m, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn t(v: &[f64]) -> Tensor {
        Tensor::from_slice(v).to_kind(Kind::Double)
    }

    #[test]
    fn log_prob_matches_the_formula() {
        let (y, m, s) = (0.3f64, -0.2f64, 0.7f64);
        let want = -0.5 * ((y - m) / s).powi(2) - s.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln();
        let got = log_prob(&t(&[y]), &t(&[m]), &t(&[s])).double_value(&[0]);
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }

    #[test]
    fn log_mean_exp_is_the_log_of_the_mean_and_stable() {
        // log mean(e^0, e^{ln 3}) = log 2.
        let got = log_mean_exp(&t(&[0.0, 3f64.ln()]), 0).double_value(&[]);
        assert!((got - 2f64.ln()).abs() < 1e-12);
        // Huge equal values: the value itself (a naive exp would overflow).
        let big = log_mean_exp(&t(&[1000.0, 1000.0, 1000.0]), 0).double_value(&[]);
        assert!((big - 1000.0).abs() < 1e-9);
        let x = Tensor::randn([4, 7], (Kind::Double, Device::Cpu));
        let brute = x
            .exp()
            .mean_dim([1i64].as_slice(), false, Kind::Double)
            .log();
        assert!(log_mean_exp(&x, -1).allclose(&brute, 1e-12, 1e-12, false));
    }

    #[test]
    fn kl_matches_its_closed_form_and_a_monte_carlo_estimate() {
        let _rng = crate::rng::serial();
        tch::manual_seed(3);
        let (mq, lq, mp, lp) = (0.4f64, -0.6f64, -0.3f64, 0.5f64);
        let (sq, sp) = ((lq / 2.0).exp(), (lp / 2.0).exp());
        let closed = (sp / sq).ln() + (sq * sq + (mq - mp).powi(2)) / (2.0 * sp * sp) - 0.5;
        let got = kl(&t(&[mq]), &t(&[lq]), &t(&[mp]), &t(&[lp])).double_value(&[0]);
        assert!((got - closed).abs() < 1e-12, "{got} vs {closed}");
        // E_q[log q(z) − log p(z)] from 400k draws.
        let n = 400_000;
        let mu = Tensor::full([n], mq, (Kind::Double, Device::Cpu));
        let lv = Tensor::full([n], lq, (Kind::Double, Device::Cpu));
        let z = reparameterize(&mu, &lv);
        let mc = (log_prob(&z, &mu, &lv.exp().sqrt())
            - log_prob(&z, &z.full_like(mp), &z.full_like(sp)))
        .mean(Kind::Double)
        .double_value(&[]);
        assert!((mc - closed).abs() < 0.01, "MC {mc} vs {closed}");
        let std = kl_standard(&t(&[mq]), &t(&[lq])).double_value(&[0]);
        let zero = kl(&t(&[mq]), &t(&[lq]), &t(&[0.0]), &t(&[0.0])).double_value(&[0]);
        assert!((std - zero).abs() < 1e-12);
    }

    #[test]
    fn cdf_and_mixture_moments() {
        let c = normal_cdf(&t(&[0.0, 1.959_963_984_540_054])).to_kind(Kind::Double);
        assert!((c.double_value(&[0]) - 0.5).abs() < 1e-12);
        assert!((c.double_value(&[1]) - 0.975).abs() < 1e-9);
        // Two components at ±1 with σ = 1: mean 0, variance 1 + 1 = 2.
        let (m, s) = mixture_moments(
            &Tensor::from_slice(&[-1.0f32, 1.0]),
            &Tensor::from_slice(&[1.0f32, 1.0]),
            0,
        );
        assert!(m.double_value(&[]).abs() < 1e-6);
        assert!((s.double_value(&[]) - 2f64.sqrt()).abs() < 1e-6);
    }
}
