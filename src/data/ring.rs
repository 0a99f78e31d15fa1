//! A ring of equal Gaussians in the plane (the 2-D toy of score-based generative models):
//! K modes at radius r, μ_k = r(cos 2πk/K, sin 2πk/K), each N(μ_k, σ²I) with weight 1/K.
//! Samples, the exact log-density and mode assignment, all on the device.

use tch::{Device, Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaussianRing {
    pub modes: i64,
    pub radius: f64,
    pub std: f64,
}

impl GaussianRing {
    /// The mode centres [K, 2].
    pub fn centres(&self, kind: Kind, device: Device) -> Tensor {
        let k = Tensor::arange(self.modes, (Kind::Double, Device::Cpu))
            * (2.0 * std::f64::consts::PI / self.modes as f64);
        Tensor::stack(&[k.cos(), k.sin()], 1)
            .to_kind(kind)
            .to_device(device)
            * self.radius
    }

    /// n draws [n, 2] with uniformly random modes (global generator).
    pub fn sample(&self, n: i64, kind: Kind, device: Device) -> Tensor {
        let idx = Tensor::randint(self.modes, [n], (Kind::Int64, device));
        self.centres(kind, device).index_select(0, &idx)
            + Tensor::randn([n, 2], (kind, device)) * self.std
    }

    /// log p(x) per row, [n].
    pub fn log_prob(&self, x: &Tensor) -> Tensor {
        let c = self.centres(x.kind(), x.device());
        let d2 = (x.unsqueeze(1) - c.unsqueeze(0))
            .square()
            .sum_dim_intlist(2, false, x.kind());
        let s2 = self.std * self.std;
        (d2 * (-0.5 / s2)).logsumexp([1i64].as_slice(), false)
            - (self.modes as f64).ln()
            - (2.0 * std::f64::consts::PI * s2).ln()
    }

    /// The nearest mode of each row, or −1 when it is further than `within` standard
    /// deviations from it, [n] (Int64).
    pub fn assign(&self, x: &Tensor, within: f64) -> Tensor {
        let c = self.centres(x.kind(), x.device());
        let d2 = (x.unsqueeze(1) - c.unsqueeze(0))
            .square()
            .sum_dim_intlist(2, false, x.kind());
        let (best, idx) = d2.min_dim(1, false);
        let far = best.gt((within * self.std).powi(2));
        idx.masked_fill(&far, -1)
    }

    /// The fraction of rows assigned to each mode (within `within` σ), [K] on the host.
    pub fn mode_mass(&self, x: &Tensor, within: f64) -> Vec<f64> {
        let a = self.assign(x, within);
        let n = x.size()[0] as f64;
        let k = Tensor::arange(self.modes, (Kind::Int64, x.device()));
        let counts =
            a.unsqueeze(1)
                .eq_tensor(&k.unsqueeze(0))
                .sum_dim_intlist(0, false, Kind::Double);
        Vec::<f64>::try_from(counts / n).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_density_integrates_to_one_and_masses_are_uniform() {
        let _rng = crate::rng::serial();
        tch::manual_seed(4);
        let ring = GaussianRing {
            modes: 8,
            radius: 4.0,
            std: 0.2,
        };
        // Riemann sum of exp(log p) on a fine grid over [−6, 6]².
        let h = 0.02;
        let g = Tensor::arange_start_step(-6.0, 6.0, h, (Kind::Double, Device::Cpu));
        let n = g.size()[0];
        let xy = Tensor::stack(
            &[
                g.unsqueeze(1).expand([n, n], false).reshape([-1]),
                g.unsqueeze(0).expand([n, n], false).reshape([-1]),
            ],
            1,
        );
        let mass = ring.log_prob(&xy).exp().sum(Kind::Double).double_value(&[]) * h * h;
        assert!((mass - 1.0).abs() < 1e-3, "{mass}");
        let x = ring.sample(80_000, Kind::Double, Device::Cpu);
        let m = ring.mode_mass(&x, 3.0);
        assert_eq!(m.len(), 8);
        for v in &m {
            assert!((v - 0.125).abs() < 0.006, "{m:?}");
        }
        // Within 3σ in 2-D holds 1 − e^{−4.5} ≈ 98.9 % of each mode.
        let total: f64 = m.iter().sum();
        assert!((total - (1.0 - (-4.5f64).exp())).abs() < 0.003, "{total}");
        // A point between two modes is off-mode.
        let mid = Tensor::from_slice(&[4.0f64 * 0.9238795, 4.0 * 0.3826834]).view([1, 2]);
        assert_eq!(ring.assign(&mid, 3.0).int64_value(&[0]), -1);
    }
}
