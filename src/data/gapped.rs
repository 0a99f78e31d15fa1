//! 1-D synthetic "speech-like" frames for speech-enhancement toys (StoRM): a clean signal that is
//! a sum of amplitude-modulated sinusoids with silent gaps, and a noisy observation with coloured
//! noise at a random SNR and mild clipping.
//!
//! Per frame of length L (time index n = 0…L−1):
//! - clean x[n] = m[n]·Σ_k a_k (1 + d_k sin(2πf_AM,k n/L + φ'_k)) sin(2πf_k n/L + φ_k), with
//!   K ∈ [k_min, k_max] components, f_k uniform in [f_min, f_max] cycles per frame, f_AM,k in
//!   [0.5, 2] cycles per frame, depth d_k in [0, 0.8], a_k in [0.5, 1]; m[n] ∈ {0, 1} zeroes
//!   `gaps` random intervals of `gap_min`–`gap_max` samples (exactly silent); the frame is then
//!   scaled so the active part has RMS `rms`.
//! - noise: white noise through an AR(1) filter e[n] = ρe[n−1] + w[n], ρ uniform in
//!   [0, rho_max] (pink-ish, low-pass coloured), scaled to an SNR uniform in
//!   [snr_min, snr_max] dB against the clean frame's energy.
//! - noisy y = clamp(x + e, ±c) with c = `clip`·max|x + e| (mild clipping of the peaks).
//!
//! Everything is drawn from the global generator on the given device (reseed before calling).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// The generator's settings; also the `[data]` table of experiments that use it (unknown keys
/// are errors, missing ones take the defaults below).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GappedSignals {
    pub length: i64,
    pub k_min: i64,
    pub k_max: i64,
    pub f_min: f64,
    pub f_max: f64,
    pub gaps: i64,
    pub gap_min: i64,
    pub gap_max: i64,
    pub rms: f64,
    pub snr_min: f64,
    pub snr_max: f64,
    pub rho_max: f64,
    pub clip: f64,
}

/// A batch of frames: clean [n, L], noisy [n, L], and the gap mask [n, L] (1 inside gaps).
pub struct Frames {
    pub clean: Tensor,
    pub noisy: Tensor,
    pub gap: Tensor,
}

impl Default for GappedSignals {
    /// 128-sample frames, 2–4 components, two gaps of 12–24 samples, SNR −5…5 dB.
    fn default() -> Self {
        GappedSignals {
            length: 128,
            k_min: 2,
            k_max: 4,
            f_min: 3.0,
            f_max: 20.0,
            gaps: 2,
            gap_min: 12,
            gap_max: 24,
            rms: 0.3,
            snr_min: -5.0,
            snr_max: 5.0,
            rho_max: 0.9,
            clip: 0.8,
        }
    }
}

impl GappedSignals {
    /// Rejects settings the generator cannot honour; `table` names the config table in errors.
    pub fn check(&self, table: &str) -> Result<()> {
        let d = self;
        if d.length < 32 || d.k_min < 1 || d.k_max < d.k_min {
            bail!("{table}.length >= 32 and 1 <= {table}.k_min <= {table}.k_max");
        }
        if d.gaps < 1 || d.gap_min < 1 || d.gap_max < d.gap_min || d.gap_max * d.gaps >= d.length {
            bail!("{table}: need gaps >= 1, 1 <= gap_min <= gap_max and gaps·gap_max < length");
        }
        if !(d.rms > 0.0 && d.snr_min <= d.snr_max && (0.0..1.0).contains(&d.rho_max)) {
            bail!("{table}: rms > 0, snr_min <= snr_max, rho_max in [0, 1)");
        }
        if !(d.clip > 0.0 && d.clip <= 1.0) || d.f_min <= 0.0 || d.f_max < d.f_min {
            bail!("{table}: clip in (0, 1], 0 < f_min <= f_max");
        }
        Ok(())
    }

    /// Uniform draws in [lo, hi], [n, k].
    fn uniform(n: i64, k: i64, lo: f64, hi: f64, opt: (Kind, Device)) -> Tensor {
        Tensor::rand([n, k], opt) * (hi - lo) + lo
    }

    /// n frames (Float on `device`).
    pub fn sample(&self, n: i64, device: Device) -> Frames {
        let opt = (Kind::Float, device);
        let l = self.length;
        let kmax = self.k_max;
        let pos = Tensor::arange(l, opt).unsqueeze(0).unsqueeze(0) / l as f64; // [1, 1, L]
        let tau = 2.0 * std::f64::consts::PI;
        let col = |v: Tensor| v.unsqueeze(2); // [n, K] → [n, K, 1]
        let f = col(Self::uniform(n, kmax, self.f_min, self.f_max, opt));
        let phase = col(Self::uniform(n, kmax, 0.0, tau, opt));
        let fam = col(Self::uniform(n, kmax, 0.5, 2.0, opt));
        let pam = col(Self::uniform(n, kmax, 0.0, tau, opt));
        let depth = col(Self::uniform(n, kmax, 0.0, 0.8, opt));
        let amp = col(Self::uniform(n, kmax, 0.5, 1.0, opt));
        // Components k < K are on; K uniform in [k_min, k_max].
        let count = Tensor::randint_low(self.k_min, self.k_max + 1, [n, 1], (Kind::Int64, device));
        let on = Tensor::arange(kmax, (Kind::Int64, device))
            .unsqueeze(0)
            .lt_tensor(&count)
            .to_kind(Kind::Float)
            .unsqueeze(2);
        let env = (&pos * &fam * tau + pam).sin() * depth + 1.0;
        let carrier = (&pos * &f * tau + phase).sin();
        let clean = (amp * env * carrier * on).sum_dim_intlist(1, false, Kind::Float); // [n, L]
        let gap = self.gap_mask(n, device);
        let active = -&gap + 1.0;
        let clean = clean * &active;
        let power = (clean.square().sum_dim_intlist(1, true, Kind::Float)
            / active.sum_dim_intlist(1, true, Kind::Float).clamp_min(1.0))
        .clamp_min(1e-12);
        let clean = &clean * (power.rsqrt() * self.rms);
        // Coloured noise by an AR(1) recursion over the frame.
        let rho = Self::uniform(n, 1, 0.0, self.rho_max, opt);
        let w = Tensor::randn([n, l], opt);
        let mut cols = Vec::with_capacity(l as usize);
        let mut e = w.select(1, 0).unsqueeze(1);
        cols.push(e.shallow_clone());
        for i in 1..l {
            e = &e * &rho + w.narrow(1, i, 1);
            cols.push(e.shallow_clone());
        }
        let e = Tensor::cat(&cols, 1);
        let snr = Self::uniform(n, 1, self.snr_min, self.snr_max, opt);
        let px = clean
            .square()
            .mean_dim([1i64].as_slice(), true, Kind::Float);
        let pe = e
            .square()
            .mean_dim([1i64].as_slice(), true, Kind::Float)
            .clamp_min(1e-12);
        let gain = (px / pe / (snr * (10f64.ln() / 10.0)).exp()).sqrt();
        let mix = &clean + e * gain;
        let c = mix.abs().amax([1i64].as_slice(), true) * self.clip;
        let noisy = mix.clamp_tensor(Some(&(-&c)), Some(&c));
        Frames { clean, noisy, gap }
    }

    /// `gaps` random silent intervals per frame, [n, L] with 1 inside a gap.
    pub fn gap_mask(&self, n: i64, device: Device) -> Tensor {
        let l = self.length;
        let idx = Tensor::arange(l, (Kind::Int64, device)).unsqueeze(0);
        let mut mask = Tensor::zeros([n, l], (Kind::Bool, device));
        for _ in 0..self.gaps {
            let len = Tensor::randint_low(
                self.gap_min,
                self.gap_max + 1,
                [n, 1],
                (Kind::Int64, device),
            );
            let start = (Tensor::rand([n, 1], (Kind::Float, device))
                * (&len.neg() + (l + 1)).to_kind(Kind::Float))
            .floor()
            .to_kind(Kind::Int64);
            let inside = idx
                .ge_tensor(&start)
                .logical_and(&idx.lt_tensor(&(&start + &len)));
            mask = mask.logical_or(&inside);
        }
        mask.to_kind(Kind::Float)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signals() -> GappedSignals {
        GappedSignals::default()
    }

    #[test]
    fn gaps_are_silent_and_the_snr_and_rms_are_as_asked() {
        let _rng = crate::rng::serial();
        tch::manual_seed(4);
        let g = signals();
        let fr = g.sample(500, Device::Cpu);
        assert_eq!(fr.clean.size(), [500, 128]);
        // The clean frame is exactly zero inside every gap, and each frame has a gap of at
        // least gap_min samples.
        let in_gap = (&fr.clean * &fr.gap).abs().max().double_value(&[]);
        assert_eq!(in_gap, 0.0);
        let per_frame = fr.gap.sum_dim_intlist(1, false, Kind::Float);
        assert!(per_frame.min().double_value(&[]) >= 12.0);
        assert!(per_frame.max().double_value(&[]) <= 48.0);
        // Active RMS = 0.3 per frame.
        let active = -&fr.gap + 1.0;
        let rms = (fr.clean.square().sum_dim_intlist(1, false, Kind::Float)
            / active.sum_dim_intlist(1, false, Kind::Float))
        .sqrt();
        assert!((rms - 0.3).abs().max().double_value(&[]) < 1e-4);
        // Clipping: |y| ≤ 0.8·max|x + e| < max|x + e|, and the noisy gap is not silent.
        let noisy_gap = (&fr.noisy * &fr.gap)
            .square()
            .sum(Kind::Float)
            .double_value(&[]);
        assert!(noisy_gap > 0.0);
        // The SNR before clipping lies in [−5, 5] dB; after mild clipping the mean stays near 0.
        let err = (&fr.noisy - &fr.clean)
            .square()
            .mean(Kind::Float)
            .double_value(&[]);
        let px = fr.clean.square().mean(Kind::Float).double_value(&[]);
        let snr = 10.0 * (px / err).log10();
        assert!((-7.0..5.0).contains(&snr), "{snr}");
    }
}
