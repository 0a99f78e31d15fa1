//! Lempel–Ziv (1976) complexity of binary sequences, by the Kaspar–Schuster scan (Phys. Rev. A
//! 36, 842, 1987): c(n) is the number of phrases when the sequence is parsed left to right,
//! each new phrase being the shortest piece that is not a copy of a substring starting earlier
//! (the copy may overlap the phrase itself). Normalised, C = c(n)·log₂n / n tends to the
//! entropy rate (bits per symbol) of a stationary ergodic binary source; for short sequences
//! the normalisation is biased upwards, so compare sequences of the same length.

/// The LZ76 phrase count c(n) of `s` (any byte values; equal bytes are equal symbols).
pub fn phrases(s: &[u8]) -> usize {
    let n = s.len();
    if n < 2 {
        return n;
    }
    // i: start of the earlier copy being tried; l: length parsed so far (the current phrase
    // starts at l); k: length of the current match; k_max: the longest match over i.
    let (mut c, mut l, mut i, mut k, mut k_max) = (1, 1, 0, 1, 1);
    loop {
        if s[i + k - 1] == s[l + k - 1] {
            k += 1;
            if l + k > n {
                c += 1;
                break;
            }
        } else {
            k_max = k_max.max(k);
            i += 1;
            if i == l {
                c += 1;
                l += k_max;
                if l + 1 > n {
                    break;
                }
                i = 0;
                k = 1;
                k_max = 1;
            } else {
                k = 1;
            }
        }
    }
    c
}

/// C = c(n)·log₂(n)/n (0 for sequences shorter than 2).
pub fn normalized(s: &[u8]) -> f64 {
    let n = s.len();
    if n < 2 {
        return 0.0;
    }
    phrases(s) as f64 * (n as f64).log2() / n as f64
}

/// Normalised complexity of each row of `bits` (rows of length `n`, concatenated).
pub fn normalized_rows(bits: &[u8], n: usize) -> Vec<f64> {
    bits.chunks(n.max(1)).map(normalized).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(s: &str) -> Vec<u8> {
        s.bytes().map(|b| b - b'0').collect()
    }

    #[test]
    fn phrase_counts_of_known_strings() {
        // Constant: 0 · 000…0.
        assert_eq!(phrases(&[0; 100]), 2);
        assert_eq!(phrases(&[1; 7]), 2);
        // Period 2: 0 · 1 · 0101…
        assert_eq!(phrases(&bits(&"01".repeat(50))), 3);
        // Period 3: 0 · 01 · 001001… (the rest copies the sequence from its start).
        assert_eq!(phrases(&bits(&"001".repeat(30))), 3);
        // Kaspar & Schuster's example: 0 · 001 · 10 · 100 · 1000 · 101.
        assert_eq!(phrases(&bits("0001101001000101")), 6);
        assert_eq!(phrases(&[]), 0);
        assert_eq!(phrases(&[1]), 1);
        assert_eq!(phrases(&[0, 1]), 2);
    }

    #[test]
    fn normalised_complexity_separates_random_from_regular() {
        // A fair-coin sequence from a fixed LCG has C near 1; a periodic one near 0.
        let mut x: u64 = 12345;
        let coin: Vec<u8> = (0..4000)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 63) as u8
            })
            .collect();
        let c = normalized(&coin);
        assert!((0.9..1.15).contains(&c), "{c}");
        assert!(normalized(&bits(&"0110".repeat(1000))) < 0.02);
        let rows = normalized_rows(&[0, 0, 0, 0, 0, 1, 1, 0], 4);
        assert_eq!(rows.len(), 2);
        assert!((rows[0] - 2.0 * 2.0 / 4.0).abs() < 1e-12);
    }
}
