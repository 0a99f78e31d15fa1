//! Counter-based random streams keyed by a seed, and the seed-list encoding of a network
//! (Such et al. 2017, §3): an individual is the list of seeds (τ₀, τ₁, …, τₙ) and its weights
//! are θ⁰ = φ(τ₀), θᵏ = θᵏ⁻¹ + σ·ε(τₖ), with ε(τ) the standard normal vector of stream τ.
//!
//! The i-th draw of a stream is a pure function of (key, i): no generator state, no global
//! seed, no dependence on the order or the device the draws are made on. A network rebuilt
//! from its seed list therefore equals the one that was evolved bit for bit, provided both
//! apply the same f32 operations in the same order (`Encoding::rebuild` and
//! `Encoding::mutate` share one code path). The official code draws ε as a slice of a shared
//! 250M-float noise table at a random offset; a keyed stream gives the same property without
//! the table.

/// splitmix64's finaliser: a bijective mix of 64 bits.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A key derived from a key and a path of integers (generation, index, …).
pub fn derive(key: u64, path: &[u64]) -> u64 {
    path.iter().fold(mix(key), |h, &p| mix(h ^ mix(p)))
}

/// The i-th 64 random bits of stream `key`.
pub fn bits(key: u64, i: u64) -> u64 {
    mix(mix(key) ^ i.wrapping_mul(0xD1B5_4A32_D192_ED03))
}

/// The i-th uniform of stream `key`, in (0, 1] (53-bit resolution).
pub fn uniform(key: u64, i: u64) -> f64 {
    ((bits(key, i) >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// The i-th standard normal of stream `key` (Box–Muller on the uniforms 2i and 2i + 1).
pub fn normal(key: u64, i: u64) -> f64 {
    let u1 = uniform(key, 2 * i);
    let u2 = uniform(key, 2 * i + 1);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A uniform integer in 0..n (n ≥ 1) from draw i of stream `key`.
pub fn below(key: u64, i: u64, n: usize) -> usize {
    (((bits(key, i) >> 11) as u128 * n as u128) >> 53) as usize
}

/// A sequential reader of one stream (for host-side choices: parents, tie-breaks, archive).
pub struct Stream {
    key: u64,
    next: u64,
}

impl Stream {
    pub fn new(key: u64) -> Stream {
        Stream { key, next: 0 }
    }
    pub fn bits(&mut self) -> u64 {
        self.next += 1;
        bits(self.key, self.next - 1)
    }
    pub fn uniform(&mut self) -> f64 {
        self.next += 1;
        uniform(self.key, self.next - 1)
    }
    pub fn below(&mut self, n: usize) -> usize {
        self.next += 1;
        below(self.key, self.next - 1, n)
    }
}

/// How a flat parameter vector is drawn and mutated: the per-parameter scale of φ (the
/// initialisation, θ⁰ᵢ = scaleᵢ·εᵢ(τ₀); 0 for biases) and the mutation power σ.
#[derive(Debug, Clone)]
pub struct Encoding {
    pub init_scale: Vec<f32>,
    pub sigma: f32,
}

/// An individual as the paper encodes it: the initialisation seed and one seed per mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedList(pub Vec<u64>);

impl SeedList {
    /// Bytes of the encoding: 8 per seed and 4 for σ (one mutation power per run).
    pub fn bytes(&self) -> usize {
        8 * self.0.len() + 4
    }
    /// The list with one more mutation.
    pub fn child(&self, seed: u64) -> SeedList {
        let mut v = self.0.clone();
        v.push(seed);
        SeedList(v)
    }
}

impl Encoding {
    pub fn params(&self) -> usize {
        self.init_scale.len()
    }

    /// θ⁰ = φ(τ₀).
    pub fn init(&self, seed: u64) -> Vec<f32> {
        self.init_scale
            .iter()
            .enumerate()
            .map(|(i, &s)| normal(seed, i as u64) as f32 * s)
            .collect()
    }

    /// θ ← θ + σ·ε(τ), in place, one f32 multiply and one f32 add per parameter.
    pub fn mutate(&self, theta: &mut [f32], seed: u64) {
        for (i, t) in theta.iter_mut().enumerate() {
            let e = normal(seed, i as u64) as f32;
            *t += self.sigma * e;
        }
    }

    /// The weights of a seed list, replayed from scratch.
    pub fn rebuild(&self, list: &SeedList) -> Vec<f32> {
        let mut theta = self.init(list.0[0]);
        for &s in &list.0[1..] {
            self.mutate(&mut theta, s);
        }
        theta
    }

    /// Bytes of the live weights (f32).
    pub fn weight_bytes(&self) -> usize {
        4 * self.params()
    }
}

/// Whether two weight vectors are equal bit for bit.
pub fn bit_equal(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_pure_functions_of_key_and_counter() {
        assert_eq!(normal(7, 3), normal(7, 3));
        assert_ne!(normal(7, 3), normal(8, 3));
        assert_ne!(normal(7, 3), normal(7, 4));
        let mut s = Stream::new(5);
        let a: Vec<u64> = (0..4).map(|_| s.bits()).collect();
        let b: Vec<u64> = (0..4).map(|i| bits(5, i)).collect();
        assert_eq!(a, b);
        assert_ne!(derive(1, &[2, 3]), derive(1, &[3, 2]));
    }

    #[test]
    fn normal_stream_has_unit_moments_and_uniform_below_is_fair() {
        let n = 200_000u64;
        let z: Vec<f64> = (0..n).map(|i| normal(11, i)).collect();
        let m = z.iter().sum::<f64>() / n as f64;
        let v = z.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n as f64;
        let k4 = z.iter().map(|x| (x - m).powi(4)).sum::<f64>() / n as f64 / (v * v);
        // Standard errors: 1/√n ≈ 0.0022 for the mean, √(2/n) ≈ 0.0032 for the variance.
        assert!(m.abs() < 0.01 && (v - 1.0).abs() < 0.015, "{m} {v}");
        assert!((k4 - 3.0).abs() < 0.05, "kurtosis {k4}");
        let mut counts = [0usize; 5];
        for i in 0..50_000 {
            counts[below(3, i, 5)] += 1;
        }
        for c in counts {
            assert!((c as f64 - 10_000.0).abs() < 400.0, "{counts:?}");
        }
    }

    #[test]
    fn seed_list_replay_equals_the_incrementally_evolved_weights_bit_for_bit() {
        let enc = Encoding {
            init_scale: (0..300)
                .map(|i| if i % 7 == 0 { 0.0 } else { 0.3 })
                .collect(),
            sigma: 0.05,
        };
        // Evolve along one lineage, keeping live weights as the GA does (parent + σε).
        let mut list = SeedList(vec![42]);
        let mut live = enc.init(42);
        for g in 0..40u64 {
            let s = derive(9, &[g]);
            enc.mutate(&mut live, s);
            list = list.child(s);
        }
        let rebuilt = enc.rebuild(&list);
        assert!(bit_equal(&live, &rebuilt));
        assert_eq!(list.bytes(), 8 * 41 + 4);
        // A different seed anywhere in the list changes the weights.
        let mut other = list.clone();
        other.0[17] ^= 1;
        assert!(!bit_equal(&enc.rebuild(&other), &live));
        // Biases (scale 0) start at exactly zero and then move by σ·ε.
        assert!(enc.init(42).iter().step_by(7).all(|&b| b == 0.0));
    }
}
