//! Distances between two samples of points, for comparing generated with true samples:
//! sliced 2-Wasserstein (random directions, sorted projections) and the unbiased squared MMD
//! with a sum of Gaussian kernels. Both run on the samples' device.

use tch::{Device, Kind, Tensor};

/// P random unit directions in R^d (from the current generator, drawn on the CPU so that CPU
/// and CUDA runs use the same directions).
pub fn directions(p: i64, d: i64, device: Device) -> Tensor {
    let v = Tensor::randn([p, d], (Kind::Float, Device::Cpu));
    (&v / v.norm_scalaropt_dim(2, [1i64].as_slice(), true)).to_device(device)
}

/// Sliced 2-Wasserstein distance between two equal-size samples [n, d] along the unit
/// directions `dirs` [P, d]: √(mean over directions of the 1-D W₂² of the projections).
pub fn sliced_wasserstein(a: &Tensor, b: &Tensor, dirs: &Tensor) -> f64 {
    assert_eq!(
        a.size()[0],
        b.size()[0],
        "sliced W2 needs equal sample sizes"
    );
    let dirs = dirs.to_kind(a.kind());
    let pa = a.matmul(&dirs.tr()).sort(0, false).0;
    let pb = b.matmul(&dirs.tr()).sort(0, false).0;
    (pa - pb)
        .square()
        .mean(Kind::Double)
        .sqrt()
        .double_value(&[])
}

/// Σ over row pairs of Σ_h exp(−‖x − y‖²/(2h²)), in row blocks (memory O(block·m)).
fn kernel_sum(x: &Tensor, y: &Tensor, bandwidths: &[f64]) -> f64 {
    let n = x.size()[0];
    let yd = y.to_kind(Kind::Double);
    let block = 2048;
    let mut total = 0.0;
    let mut start = 0;
    while start < n {
        let len = block.min(n - start);
        let xb = x.narrow(0, start, len).to_kind(Kind::Double);
        let d2 = (xb.square().sum_dim_intlist(1, true, Kind::Double)
            + yd.square()
                .sum_dim_intlist(1, false, Kind::Double)
                .unsqueeze(0)
            - xb.matmul(&yd.tr()) * 2.0)
            .clamp_min(0.0);
        for h in bandwidths {
            total += (&d2 * (-0.5 / (h * h)))
                .exp()
                .sum(Kind::Double)
                .double_value(&[]);
        }
        start += len;
    }
    total
}

/// The unbiased estimate of MMD² between samples a [n, d] and b [m, d] with the kernel
/// Σ_h exp(−‖x − y‖²/(2h²)): within-sample sums exclude the diagonal.
pub fn mmd2(a: &Tensor, b: &Tensor, bandwidths: &[f64]) -> f64 {
    let (n, m) = (a.size()[0] as f64, b.size()[0] as f64);
    assert!(n >= 2.0 && m >= 2.0, "MMD needs two points per sample");
    let diag = bandwidths.len() as f64;
    let kaa = (kernel_sum(a, a, bandwidths) - n * diag) / (n * (n - 1.0));
    let kbb = (kernel_sum(b, b, bandwidths) - m * diag) / (m * (m - 1.0));
    let kab = kernel_sum(a, b, bandwidths) / (n * m);
    kaa + kbb - 2.0 * kab
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliced_wasserstein_of_a_shift_is_the_projected_shift() {
        let _rng = crate::rng::serial();
        tch::manual_seed(12);
        let a = Tensor::randn([3000, 2], (Kind::Float, Device::Cpu));
        let shift = Tensor::from_slice(&[0.3f32, -0.4]);
        let b = &a + &shift;
        let dirs = directions(64, 2, Device::Cpu);
        // W₂ of a shifted copy along u is |⟨shift, u⟩|: SW₂² = mean_u ⟨shift, u⟩².
        let want = dirs
            .matmul(&shift)
            .square()
            .mean(Kind::Double)
            .sqrt()
            .double_value(&[]);
        let got = sliced_wasserstein(&a, &b, &dirs);
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
        assert!(sliced_wasserstein(&a, &a, &dirs) < 1e-7);
    }

    #[test]
    fn mmd_of_point_masses_is_the_closed_form_and_unbiased_for_equal_laws() {
        let _rng = crate::rng::serial();
        tch::manual_seed(13);
        // All of a at 0, all of b at δ = (0.3, 0.4): MMD² = Σ_h 2(1 − e^{−‖δ‖²/(2h²)}).
        let a = Tensor::zeros([5, 2], (Kind::Double, Device::Cpu));
        let b = Tensor::from_slice(&[0.3f64, 0.4])
            .view([1, 2])
            .repeat([7, 1]);
        let hs = [0.2f64, 1.0];
        let want: f64 = hs
            .iter()
            .map(|h| 2.0 * (1.0 - (-0.25 / (2.0 * h * h)).exp()))
            .sum();
        assert!((mmd2(&a, &b, &hs) - want).abs() < 1e-12);
        // Equal laws: the estimate scatters around 0 (mean of 20 pairs within 4 SE); a unit
        // shift (MMD² ≈ 0.1 here) is far above that.
        let mut v = vec![];
        for _ in 0..20 {
            let x = Tensor::randn([300, 2], (Kind::Double, Device::Cpu));
            let y = Tensor::randn([300, 2], (Kind::Double, Device::Cpu));
            v.push(mmd2(&x, &y, &hs));
        }
        let (m, s) = crate::run::metrics::mean_std(&v);
        assert!(m.abs() < 4.0 * s / (20f64).sqrt(), "{m} ± {s}");
        let x = Tensor::randn([300, 2], (Kind::Double, Device::Cpu));
        let y = Tensor::randn([300, 2], (Kind::Double, Device::Cpu)) + 1.0;
        assert!(mmd2(&x, &y, &hs) > 10.0 * s, "{s}");
    }
}
