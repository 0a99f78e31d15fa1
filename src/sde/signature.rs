//! Truncated path signatures and the expected-signature distance between two distributions of
//! paths (the loss of signature-based generators such as directed-chain SDEs).
//!
//! The signature of a path x: [0, T] → R^d is the sequence of iterated integrals
//! S^k = ∫_{t₁<…<t_k} dx_{t₁} ⊗ … ⊗ dx_{t_k} ∈ (R^d)^{⊗k}. A linear segment with increment Δ
//! has S = exp(Δ) = (1, Δ, Δ^{⊗2}/2!, …), and Chen's relation gives the signature of a
//! concatenation as the truncated tensor product S(x ⋆ y)^k = Σ_{i+j=k} S(x)^i ⊗ S(y)^j, so a
//! piecewise-linear path's signature is the product of its segments' exponentials. Levels are
//! stored flattened, level k as [B, d^k] with index (i₁, …, i_k) in row-major order.

use anyhow::{bail, Result};
use tch::Tensor;

/// (a ⊗ b) flattened: a [B, p], b [B, q] → [B, p·q].
fn outer(a: &Tensor, b: &Tensor) -> Tensor {
    let n = a.size()[0];
    (a.unsqueeze(2) * b.unsqueeze(1)).reshape([n, -1])
}

/// Levels 1..=depth of the signature of the piecewise-linear paths `path` [B, n, d] (n ≥ 1
/// points; one point gives the trivial signature, zeros): a vector of [B, d^k].
pub fn signature(path: &Tensor, depth: usize) -> Result<Vec<Tensor>> {
    let s = path.size();
    if s.len() != 3 || s[1] < 1 || depth == 0 {
        bail!("signature: path must be [batch, points, channels] and depth >= 1");
    }
    let (b, n, d) = (s[0], s[1], s[2]);
    let mut levels: Vec<Tensor> = (1..=depth as u32)
        .map(|k| Tensor::zeros([b, d.pow(k)], (path.kind(), path.device())))
        .collect();
    for i in 0..n - 1 {
        let delta = path.select(1, i + 1) - path.select(1, i);
        // exp(Δ): Δ^{⊗k}/k!, levels 1..depth.
        let mut ex = vec![delta.shallow_clone()];
        for k in 2..=depth {
            let next = outer(&ex[k - 2], &delta) / k as f64;
            ex.push(next);
        }
        // S ← S ⊗ exp(Δ), highest level first so lower levels are still the old ones.
        for k in (1..=depth).rev() {
            let mut acc = &levels[k - 1] + &ex[k - 1];
            for i in 1..k {
                acc += outer(&levels[i - 1], &ex[k - i - 1]);
            }
            levels[k - 1] = acc;
        }
    }
    Ok(levels)
}

/// The levels concatenated: [B, d + d² + … + d^depth].
pub fn flatten(levels: &[Tensor]) -> Tensor {
    Tensor::cat(levels, 1)
}

/// Paths with time as their first channel: `times` [n] broadcast over the batch.
pub fn time_augment(path: &Tensor, times: &Tensor) -> Tensor {
    let s = path.size();
    let t = times
        .to_kind(path.kind())
        .to_device(path.device())
        .view([1, s[1], 1])
        .expand([s[0], s[1], 1], false);
    Tensor::cat(&[t, path.shallow_clone()], 2)
}

/// Paths with a zero point prepended (the basepoint augmentation: the signature then sees the
/// starting value).
pub fn with_basepoint(path: &Tensor) -> Tensor {
    let s = path.size();
    Tensor::cat(
        &[
            Tensor::zeros([s[0], 1, s[2]], (path.kind(), path.device())),
            path.shallow_clone(),
        ],
        1,
    )
}

/// ‖E S(a) − E S(b)‖₂ over levels 1..=depth, the expectations being batch means: a
/// differentiable scalar.
pub fn expected_signature_distance(a: &Tensor, b: &Tensor, depth: usize) -> Result<Tensor> {
    if a.size()[2] != b.size()[2] {
        bail!("expected-signature distance: the two sets of paths have different channels");
    }
    let ea = flatten(&signature(a, depth)?).mean_dim([0i64].as_slice(), false, a.kind());
    let eb = flatten(&signature(b, depth)?).mean_dim([0i64].as_slice(), false, b.kind());
    Ok((ea - eb).square().sum(a.kind()).sqrt())
}

/// How many terms levels 1..=depth hold for `channels` channels.
pub fn terms(channels: i64, depth: usize) -> i64 {
    (1..=depth as u32).map(|k| channels.pow(k)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    const D: (Kind, Device) = (Kind::Double, Device::Cpu);

    fn factorial(k: usize) -> f64 {
        (1..=k).map(|i| i as f64).product()
    }

    #[test]
    fn a_straight_line_has_increment_powers_over_factorials_at_every_level() {
        // A line through 7 unevenly spaced collinear points: Chen's products of the segments must
        // equal the single exponential Δ^{⊗k}/k!.
        let delta = Tensor::from_slice(&[0.7f64, -1.3, 0.4]);
        let fractions = [0.0, 0.1, 0.15, 0.5, 0.55, 0.9, 1.0];
        let pts: Vec<Tensor> = fractions.iter().map(|&f| &delta * f + 2.0).collect();
        let path = Tensor::stack(&pts, 0).unsqueeze(0);
        let depth = 4;
        let sig = signature(&path, depth).unwrap();
        let mut power = delta.unsqueeze(0);
        for k in 1..=depth {
            if k > 1 {
                power = outer(&power, &delta.unsqueeze(0));
            }
            let want = &power / factorial(k);
            assert_eq!(sig[k - 1].size(), [1, 3i64.pow(k as u32)]);
            assert!(sig[k - 1].allclose(&want, 1e-12, 1e-12, false), "level {k}");
        }
        assert_eq!(flatten(&sig).size(), [1, terms(3, 4)]);
        assert_eq!(terms(2, 4), 30);
    }

    #[test]
    fn an_l_shaped_path_has_the_hand_computed_second_level_and_distances_behave() {
        // (0,0) → (1,0) → (1,1): S¹ = (1, 1); S² = [[1/2, 1], [0, 1/2]] (x₁ moves before x₂).
        let path = Tensor::from_slice(&[0.0f64, 0.0, 1.0, 0.0, 1.0, 1.0]).view([1, 3, 2]);
        let sig = signature(&path, 2).unwrap();
        let want = Tensor::from_slice(&[0.5f64, 1.0, 0.0, 0.5]).view([1, 4]);
        assert!(sig[1].allclose(&want, 1e-12, 1e-12, false));
        // The reversed path (1,1) → (1,0) → (0,0) has the inverse signature, so the product is 1.
        let back = path.flip([1]);
        let both = Tensor::cat(&[path.shallow_clone(), back.narrow(1, 1, 2)], 1);
        for l in signature(&both, 3).unwrap() {
            assert!(l.abs().max().double_value(&[]) < 1e-12);
        }
        // Expected-signature distance: 0 between a set and itself, > 0 after a shift of one path.
        let _rng = crate::rng::serial();
        tch::manual_seed(2);
        let a = Tensor::randn([16, 5, 2], D).cumsum(1, Kind::Double);
        assert!(
            expected_signature_distance(&a, &a, 3)
                .unwrap()
                .double_value(&[])
                < 1e-12
        );
        let b = &a * 1.1;
        assert!(
            expected_signature_distance(&a, &b, 3)
                .unwrap()
                .double_value(&[])
                > 1e-3
        );
        // Augmentations: time is channel 0, the basepoint adds a zero first point.
        let t = Tensor::from_slice(&[0.0f64, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(time_augment(&a, &t).size(), [16, 5, 3]);
        let bp = with_basepoint(&a);
        assert_eq!(bp.size(), [16, 6, 2]);
        assert!(bp.select(1, 0).abs().max().double_value(&[]) == 0.0);
    }
}
