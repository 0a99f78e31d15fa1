//! Seeding. libtorch's generator state is not saved in checkpoints; instead every source of
//! randomness reseeds the global generators from (run seed, stream, epoch, step). A resumed run
//! therefore draws exactly what an uninterrupted one would, on CPU and on CUDA.

/// Independent streams of one run.
#[derive(Debug, Clone, Copy)]
#[repr(u64)]
pub enum Stream {
    Data = 1,
    Init = 2,
    Shuffle = 3,
    Step = 4,
    /// Curvature probes, start vectors and measurement batches.
    Probe = 5,
}

/// splitmix64 finaliser: well-mixed 64-bit outputs from structured inputs.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub fn derive(seed: u64, stream: Stream, a: u64, b: u64) -> i64 {
    let h = mix(mix(mix(seed ^ mix(stream as u64)) ^ a) ^ b);
    // libtorch takes a signed seed; keep it positive so it prints the same everywhere.
    (h >> 1) as i64
}

/// Reseeds the CPU and CUDA generators for one stream position.
pub fn reseed(seed: u64, stream: Stream, a: u64, b: u64) {
    tch::manual_seed(derive(seed, stream, a, b));
}

/// A small host-side generator for loops that draw one number at a time (tabular RL,
/// agent-based models): splitmix64 over a counter, seeded through [`derive`], so a stream is a
/// pure function of (run seed, stream, position).
#[derive(Debug, Clone)]
pub struct SplitMix {
    state: u64,
}

impl SplitMix {
    pub fn new(seed: u64) -> SplitMix {
        SplitMix { state: mix(seed) }
    }

    /// The generator of one stream position of a run.
    pub fn stream(seed: u64, stream: Stream, a: u64, b: u64) -> SplitMix {
        SplitMix::new(derive(seed, stream, a, b) as u64)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in 0..n (n ≥ 1), by Lemire's multiply-shift (bias below 2^-64·n).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Standard normal by Box–Muller on two uniforms (the cosine branch; one normal per call).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// libtorch's generators are process-global and unit tests run on parallel threads: tests that
/// seed and draw hold this lock so they do not interleave.
#[cfg(test)]
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_and_positions_differ_and_repeat() {
        let a = derive(0, Stream::Step, 1, 2);
        assert_eq!(a, derive(0, Stream::Step, 1, 2));
        assert_ne!(a, derive(0, Stream::Step, 2, 1));
        assert_ne!(a, derive(1, Stream::Step, 1, 2));
        assert_ne!(a, derive(0, Stream::Shuffle, 1, 2));
        assert!(a >= 0);
    }

    #[test]
    fn splitmix_normal_has_unit_moments() {
        let mut g = SplitMix::new(3);
        let v: Vec<f64> = (0..200_000).map(|_| g.normal()).collect();
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64;
        assert!(
            m.abs() < 0.01 && (var - 1.0).abs() < 0.02,
            "mean {m}, var {var}"
        );
    }

    #[test]
    fn splitmix_is_uniform_and_repeatable() {
        let mut r = SplitMix::stream(3, Stream::Step, 1, 0);
        let mut again = SplitMix::stream(3, Stream::Step, 1, 0);
        let n = 100_000;
        let (mut sum, mut counts) = (0.0, [0usize; 4]);
        for _ in 0..n {
            let u = r.uniform();
            assert_eq!(u, again.uniform());
            assert!((0.0..1.0).contains(&u));
            sum += u;
            counts[r.below(4)] += 1;
            again.below(4);
        }
        assert!((sum / n as f64 - 0.5).abs() < 0.005);
        for c in counts {
            assert!((c as f64 / n as f64 - 0.25).abs() < 0.01, "{counts:?}");
        }
    }
}
