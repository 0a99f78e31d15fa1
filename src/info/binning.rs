//! Binning estimators: each activation is replaced by its bin index, each row of indices by
//! one integer key, and entropies are those of the keys' empirical distribution.

use super::{Estimator, Params};
use tch::{Kind, Tensor};

/// Bin indices [S, N, d] (non-negative) and the number of distinct indices per unit, per seed.
fn indices(est: Estimator, p: &Params, t: &Tensor) -> (Tensor, Tensor) {
    let s = t.size()[0];
    let dev = t.device();
    match est {
        Estimator::BinFixed => {
            // np.digitize(x, linspace(-1, 1, bins)) − 1, clamped to [0, bins − 1] (IDNNs wraps
            // values below −1 into the top bin; clamping puts them in the bottom one). The
            // edges are uniform, so the index is arithmetic (a search is several times slower).
            let step = 2.0 / (p.bins - 1) as f64;
            let idx = ((t + 1.0) / step).floor().to_kind(Kind::Int64);
            (
                idx.clamp(0, p.bins - 1),
                Tensor::full([s], p.bins, (Kind::Int64, dev)),
            )
        }
        Estimator::BinWidth => {
            let idx = (t / p.bin_width).floor().to_kind(Kind::Int64);
            let flat = idx.reshape([s, -1]);
            let lo = flat.amin([1i64].as_slice(), true).unsqueeze(2);
            let hi = flat.amax([1i64].as_slice(), false);
            let idx = idx - &lo;
            let range = hi - lo.view([s]) + 1;
            (idx, range)
        }
        Estimator::BinAdaptive => {
            let flat = t.reshape([s, -1]);
            let lo = flat.amin([1i64].as_slice(), true).unsqueeze(2);
            let hi = flat.amax([1i64].as_slice(), true).unsqueeze(2);
            let width = ((hi - &lo) / p.bins as f64).clamp_min(1e-12);
            let idx = ((t - lo) / width)
                .floor()
                .to_kind(Kind::Int64)
                .clamp(0, p.bins - 1);
            (idx, Tensor::full([s], p.bins, (Kind::Int64, dev)))
        }
        Estimator::KdeUpper | Estimator::KdeLower => unreachable!("not a binning estimator"),
    }
}

/// Keys stay below 2⁵⁶ so that labels can be packed next to them without overflow.
const KEY_BITS: u32 = 56;

/// One non-negative integer per row of bin indices: exact mixed-radix packing when the index
/// space fits in 56 bits; otherwise a multiplicative hash (distinct rows collide with
/// probability ~N²/2⁵⁷, about 1e-10 for 4096 rows).
pub fn keys(est: Estimator, p: &Params, t: &Tensor) -> Tensor {
    let (idx, range) = indices(est, p, t);
    let d = idx.size()[2];
    let max_range = range.max().int64_value(&[]).max(1) as f64;
    let fits = (d as f64) * max_range.log2() < KEY_BITS as f64;
    let weights: Vec<i64> = if fits {
        let r = max_range as i64;
        (0..d).map(|j| r.pow(j as u32)).collect()
    } else {
        // Odd 64-bit constants from splitmix64; the products wrap, as intended.
        let mut z = 0x9E37_79B9_7F4A_7C15u64;
        (0..d)
            .map(|_| {
                z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut m = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                m = (m ^ (m >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                ((m ^ (m >> 31)) | 1) as i64
            })
            .collect()
    };
    let w = Tensor::from_slice(&weights).to_device(t.device());
    let k = (idx * w).sum_dim_intlist([2i64].as_slice(), false, Kind::Int64);
    if fits {
        k
    } else {
        k.bitwise_and((1i64 << KEY_BITS) - 1)
    }
}

/// H(T) and H(T, Y) in bits per seed from a single sort: keys [S, N], labels y [N] in 0..k.
/// Sorting key·k + y puts equal keys together, label by label.
pub fn joint_entropies_bits(keys: &Tensor, y: &Tensor, k: i64) -> (Tensor, Tensor) {
    let (s, n) = (keys.size()[0], keys.size()[1]);
    if n < 2 {
        let z = Tensor::zeros([s], (Kind::Double, keys.device()));
        return (z.shallow_clone(), z);
    }
    let (sorted, _) = (keys * k + y.unsqueeze(0)).sort(1, false);
    let t = sorted.floor_divide_scalar(k);
    let changed = |v: &Tensor| v.narrow(1, 1, n - 1).ne_tensor(&v.narrow(1, 0, n - 1));
    (
        entropy_from_changes(&changed(&t)),
        entropy_from_changes(&changed(&sorted)),
    )
}

/// Entropy in bits of each row's empirical distribution of keys: [S, N] → [S].
pub fn entropy_bits(keys: &Tensor) -> Tensor {
    let (s, n) = (keys.size()[0], keys.size()[1]);
    if n < 2 {
        return Tensor::zeros([s], (Kind::Double, keys.device()));
    }
    let (sorted, _) = keys.sort(1, false);
    entropy_from_changes(
        &sorted
            .narrow(1, 1, n - 1)
            .ne_tensor(&sorted.narrow(1, 0, n - 1)),
    )
}

/// Entropy in bits of the groups of sorted rows, given where consecutive values differ.
fn entropy_from_changes(changed: &Tensor) -> Tensor {
    let (s, n) = (changed.size()[0], changed.size()[1] + 1);
    let dev = changed.device();
    let first = Tensor::ones([s, 1], (Kind::Bool, dev));
    let group = Tensor::cat(&[first, changed.shallow_clone()], 1).cumsum(1, Kind::Int64) - 1;
    let ones = Tensor::ones([s, n], (Kind::Double, dev));
    let counts = Tensor::zeros([s, n], (Kind::Double, dev)).scatter_add(1, &group, &ones);
    let p = counts / n as f64;
    -(&p * p.clamp_min(1e-300).log2()).sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
}
