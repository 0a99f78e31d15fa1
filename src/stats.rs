//! Small statistics for experiment summaries, and the special functions (ln Γ, erfc, the
//! incomplete beta, Student-t) and the Kolmogorov–Smirnov test that the Bayesian experiments use.

/// Least-squares line y = slope·x + intercept through the finite points, with R².
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    pub slope: f64,
    pub intercept: f64,
    pub r2: f64,
    pub n: usize,
}

pub fn linear_fit(x: &[f64], y: &[f64]) -> Line {
    let pts: Vec<(f64, f64)> = x
        .iter()
        .zip(y)
        .map(|(&a, &b)| (a, b))
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .collect();
    let n = pts.len();
    let nan = Line {
        slope: f64::NAN,
        intercept: f64::NAN,
        r2: f64::NAN,
        n,
    };
    if n < 2 {
        return nan;
    }
    let (mx, my) = (
        pts.iter().map(|p| p.0).sum::<f64>() / n as f64,
        pts.iter().map(|p| p.1).sum::<f64>() / n as f64,
    );
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let syy: f64 = pts.iter().map(|p| (p.1 - my).powi(2)).sum();
    if sxx == 0.0 {
        return nan;
    }
    let slope = sxy / sxx;
    let r2 = if syy == 0.0 {
        1.0
    } else {
        sxy * sxy / (sxx * syy)
    };
    Line {
        slope,
        intercept: my - slope * mx,
        r2,
        n,
    }
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; ~1e-15 relative).
pub fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let s = C[1..]
        .iter()
        .enumerate()
        .fold(C[0], |s, (i, c)| s + c / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + s.ln()
}

/// erfc(x) to about 1e-14 relative: the all-positive series of erf below 2.5, the continued
/// fraction e^{−x²}/√π · 1/(x + ½/(x + 1/(x + 3⁄2/(x + …)))) above.
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    let front = (-x * x).exp() / std::f64::consts::PI.sqrt();
    if x < 2.5 {
        // erf(x) = 2/√π · e^{−x²} · Σ_{n≥0} (2x²)ⁿ x / (1·3·…·(2n+1)).
        let (mut term, mut sum) = (x, x);
        for n in 1..400 {
            term *= 2.0 * x * x / (2 * n + 1) as f64;
            sum += term;
            if term < 1e-17 * sum {
                break;
            }
        }
        1.0 - 2.0 * front * sum
    } else {
        let mut f = x;
        for k in (1..=80).rev() {
            f = x + (k as f64 / 2.0) / f;
        }
        front / f
    }
}

/// The sample median (the mean of the two middle values for an even count; NaN for none).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

/// Φ(x), the standard normal distribution function.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// The regularized incomplete beta function I_x(a, b), by its continued fraction (modified
/// Lentz), using the symmetry I_x(a, b) = 1 − I_{1−x}(b, a) where that converges faster.
pub fn inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_fraction(b, a, 1.0 - x) / b
    }
}

fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let guard = |v: f64| if v.abs() < TINY { TINY } else { v };
    let mut c = 1.0;
    let mut d = 1.0 / guard(1.0 - (a + b) * x / (a + 1.0));
    let mut h = d;
    for m in 1..1000 {
        let m = m as f64;
        // Even step: m(b − m)x / ((a + 2m − 1)(a + 2m)).
        let num = m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m));
        d = 1.0 / guard(1.0 + num * d);
        c = guard(1.0 + num / c);
        h *= d * c;
        // Odd step: −(a + m)(a + b + m)x / ((a + 2m)(a + 2m + 1)).
        let num = -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0));
        d = 1.0 / guard(1.0 + num * d);
        c = guard(1.0 + num / c);
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// The distribution function of Student's t with `dof` degrees of freedom (standard location
/// and scale): 1 − ½ I_{ν/(ν+t²)}(ν/2, ½) for t ≥ 0, by symmetry below.
pub fn student_t_cdf(t: f64, dof: f64) -> f64 {
    if t.is_nan() {
        return f64::NAN;
    }
    let tail = 0.5 * inc_beta(dof / 2.0, 0.5, dof / (dof + t * t));
    if t >= 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// The p-quantile of a continuous distribution function, by bisection (the bracket grows
/// until it holds the quantile).
pub fn quantile(p: f64, cdf: impl Fn(f64) -> f64) -> f64 {
    let (mut lo, mut hi) = (-1.0, 1.0);
    while cdf(lo) > p && lo > -1e300 {
        lo *= 2.0;
    }
    while cdf(hi) < p && hi < 1e300 {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// One-sample Kolmogorov–Smirnov test of `sample` against the distribution function `cdf`:
/// the statistic D = sup |F_n − F| and its asymptotic p-value Q_KS((√n + 0.12 + 0.11/√n)·D),
/// Q_KS(λ) = 2 Σ_{k≥1} (−1)^{k−1} e^{−2k²λ²} (Stephens' small-sample correction).
pub fn ks_test(sample: &[f64], cdf: impl Fn(f64) -> f64) -> (f64, f64) {
    let mut x: Vec<f64> = sample.iter().copied().filter(|v| v.is_finite()).collect();
    if x.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    x.sort_by(f64::total_cmp);
    let n = x.len() as f64;
    let d = x
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let f = cdf(v);
            (f - i as f64 / n).max((i + 1) as f64 / n - f)
        })
        .fold(0.0, f64::max);
    let lambda = (n.sqrt() + 0.12 + 0.11 / n.sqrt()) * d;
    (d, kolmogorov_q(lambda))
}

/// Q_KS(λ) = P(K > λ) of the Kolmogorov distribution.
pub fn kolmogorov_q(lambda: f64) -> f64 {
    if lambda < 0.2 {
        return 1.0;
    }
    let mut sum = 0.0;
    for k in 1..=100 {
        let k = k as f64;
        let term = (-2.0 * k * k * lambda * lambda).exp();
        sum += if k as i64 % 2 == 1 { term } else { -term };
        if term < 1e-18 {
            break;
        }
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

/// Ranks 1..n of `v` with ties given their average rank.
pub fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let j = (i..idx.len())
            .find(|&j| v[idx[j]] != v[idx[i]])
            .unwrap_or(idx.len());
        let avg = (i + j + 1) as f64 / 2.0;
        for &k in &idx[i..j] {
            r[k] = avg;
        }
        i = j;
    }
    r
}

/// Pearson correlation of the finite pairs (NaN with fewer than 2 or no spread).
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let fit = linear_fit(x, y);
    if fit.n < 2 || !fit.slope.is_finite() {
        return f64::NAN;
    }
    fit.r2.sqrt().copysign(fit.slope)
}

/// Spearman rank correlation of the finite pairs.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    let (a, b): (Vec<f64>, Vec<f64>) = x
        .iter()
        .zip(y)
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .map(|(a, b)| (*a, *b))
        .unzip();
    pearson(&ranks(&a), &ranks(&b))
}

/// Area under the ROC curve of a score separating `positives` (expected higher) from
/// `negatives`: P(score⁺ > score⁻) + ½P(tie), by the rank-sum (Mann–Whitney) formula.
pub fn auroc(positives: &[f64], negatives: &[f64]) -> f64 {
    let (np, nn) = (positives.len() as f64, negatives.len() as f64);
    if np == 0.0 || nn == 0.0 {
        return f64::NAN;
    }
    let all: Vec<f64> = positives.iter().chain(negatives).copied().collect();
    let r = ranks(&all);
    let sum: f64 = r[..positives.len()].iter().sum();
    (sum - np * (np + 1.0) / 2.0) / (np * nn)
}

/// Least-squares plane y = c0 + c1·x1 + c2·x2 through the finite points, with R²
/// (a power law y ∝ a^c1 b^c2 fitted in logs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plane {
    pub c0: f64,
    pub c1: f64,
    pub c2: f64,
    pub r2: f64,
    pub n: usize,
}

pub fn plane_fit(x1: &[f64], x2: &[f64], y: &[f64]) -> Plane {
    let pts: Vec<[f64; 3]> = x1
        .iter()
        .zip(x2)
        .zip(y)
        .map(|((&a, &b), &c)| [a, b, c])
        .filter(|p| p.iter().all(|v| v.is_finite()))
        .collect();
    let n = pts.len();
    let nan = Plane {
        c0: f64::NAN,
        c1: f64::NAN,
        c2: f64::NAN,
        r2: f64::NAN,
        n,
    };
    if n < 3 {
        return nan;
    }
    let mean = |i: usize| pts.iter().map(|p| p[i]).sum::<f64>() / n as f64;
    let m = [mean(0), mean(1), mean(2)];
    let cov = |i: usize, j: usize| {
        pts.iter()
            .map(|p| (p[i] - m[i]) * (p[j] - m[j]))
            .sum::<f64>()
    };
    let (s11, s22, s12, s1y, s2y, syy) = (
        cov(0, 0),
        cov(1, 1),
        cov(0, 1),
        cov(0, 2),
        cov(1, 2),
        cov(2, 2),
    );
    let det = s11 * s22 - s12 * s12;
    // Collinear regressors (one of them constant, or one a multiple of the other).
    if det.abs() <= 1e-12 * (s11 * s22).max(f64::MIN_POSITIVE) {
        return nan;
    }
    let c1 = (s1y * s22 - s2y * s12) / det;
    let c2 = (s2y * s11 - s1y * s12) / det;
    let explained = c1 * s1y + c2 * s2y;
    Plane {
        c0: m[2] - c1 * m[0] - c2 * m[1],
        c1,
        c2,
        r2: if syy == 0.0 { 1.0 } else { explained / syy },
        n,
    }
}

/// Area under the ROC curve of `scores` for the positives `labels`: the probability that a
/// random positive scores above a random negative, ties counting ½ (Mann–Whitney U with
/// average ranks; scikit-learn's `roc_auc_score` for binary labels). NaN without both classes.
pub fn auc(scores: &[f64], labels: &[bool]) -> f64 {
    let pos: Vec<f64> = scores
        .iter()
        .zip(labels)
        .filter(|(_, &l)| l)
        .map(|(s, _)| *s)
        .collect();
    let neg: Vec<f64> = scores
        .iter()
        .zip(labels)
        .filter(|(_, &l)| !l)
        .map(|(s, _)| *s)
        .collect();
    auroc(&pos, &neg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty_samples() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn auc_equals_the_pairwise_count_with_ties_as_half() {
        let scores = [0.3, 0.1, 0.7, 0.3, 0.9, 0.3, -1.0, 0.7];
        let labels = [true, false, true, false, false, true, false, true];
        let mut brute = 0.0;
        let mut pairs = 0.0;
        for (i, &si) in scores.iter().enumerate() {
            for (j, &sj) in scores.iter().enumerate() {
                if labels[i] && !labels[j] {
                    pairs += 1.0;
                    brute += if si > sj {
                        1.0
                    } else if si == sj {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        assert!((auc(&scores, &labels) - brute / pairs).abs() < 1e-12);
        assert_eq!(auc(&[1.0, 2.0], &[false, true]), 1.0);
        assert!(auc(&[1.0, 2.0], &[true, true]).is_nan());
    }

    #[test]
    fn fits_a_line_and_reports_r2() {
        let l = linear_fit(&[0.0, 1.0, 2.0, 3.0, f64::NAN], &[1.0, 3.0, 5.0, 7.0, 2.0]);
        assert!((l.slope - 2.0).abs() < 1e-12 && (l.intercept - 1.0).abs() < 1e-12);
        assert!((l.r2 - 1.0).abs() < 1e-12 && l.n == 4);
        let noisy = linear_fit(&[0.0, 1.0, 2.0, 3.0], &[0.0, 1.0, 0.0, 1.0]);
        assert!(noisy.r2 < 0.5);
        assert!(linear_fit(&[1.0], &[1.0]).slope.is_nan());
    }

    #[test]
    fn special_functions_match_known_values() {
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-13);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-13);
        assert!((erfc(0.0) - 1.0).abs() < 1e-15);
        assert!((erfc(1.0) - 0.157_299_207_050_285_1).abs() < 1e-14);
        assert!((erfc(3.0) / 2.209_049_699_858_544e-5 - 1.0).abs() < 1e-10);
        assert!((erfc(-0.5) - 1.520_499_877_813_046_5).abs() < 1e-14);
        // Both sides of the switch at 2.5 agree with the reference value.
        assert!((erfc(2.5) / 4.069_520_174_449_59e-4 - 1.0).abs() < 1e-10);
        assert!((erfc(2.499_999_999) / 4.069_520_174_449_59e-4 - 1.0).abs() < 1e-7);
        assert!((normal_cdf(1.959_963_984_540_054) - 0.975).abs() < 1e-13);
        // I_x(1, 1) = x; I_x(a, 1) = x^a; Cauchy (t₁): F(1) = 3/4; t₂: F(t) = ½ + t/(2√(2+t²)).
        assert!((inc_beta(1.0, 1.0, 0.3) - 0.3).abs() < 1e-14);
        assert!((inc_beta(2.5, 1.0, 0.7) - 0.7f64.powf(2.5)).abs() < 1e-13);
        assert!((student_t_cdf(1.0, 1.0) - 0.75).abs() < 1e-13);
        for t in [-3.0f64, -0.4, 0.0, 0.8, 5.0] {
            let exact = 0.5 + t / (2.0 * (2.0 + t * t).sqrt());
            assert!((student_t_cdf(t, 2.0) - exact).abs() < 1e-13, "t = {t}");
        }
        assert!((student_t_cdf(1.3, 1e7) - normal_cdf(1.3)).abs() < 1e-7);
        // t₄'s 97.5 % point (tables: 2.776445).
        assert!((quantile(0.975, |t| student_t_cdf(t, 4.0)) - 2.776_445_105).abs() < 1e-8);
    }

    #[test]
    fn ks_test_accepts_the_right_distribution_and_rejects_a_wrong_one() {
        // Q_KS(1.36) ≈ 0.0495 (the 5 % point of the Kolmogorov distribution).
        assert!((kolmogorov_q(1.358) - 0.05).abs() < 1e-3);
        let n = 2000;
        let uniform: Vec<f64> = (1..=n).map(|i| i as f64 / (n + 1) as f64).collect();
        let (d, p) = ks_test(&uniform, |x| x.clamp(0.0, 1.0));
        assert!(d < 1.0 / n as f64 + 1e-12 && p > 0.99, "{d} {p}");
        let (d, p) = ks_test(&uniform, |x| x.clamp(0.0, 1.0).powf(1.2));
        assert!(d > 0.05 && p < 1e-6, "{d} {p}");
        // Normal quantiles tested against Φ and against t₂.
        let normal: Vec<f64> = uniform.iter().map(|&u| quantile(u, normal_cdf)).collect();
        assert!(ks_test(&normal, normal_cdf).1 > 0.99);
        assert!(ks_test(&normal, |t| student_t_cdf(t, 2.0)).1 < 0.01);
    }

    #[test]
    fn spearman_and_auroc_by_brute_force() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
        // Monotone but non-linear: rank correlation 1, reversed −1.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y: Vec<f64> = x.iter().map(|v: &f64| v.powi(3)).collect();
        assert!((spearman(&x, &y) - 1.0).abs() < 1e-12);
        let rev: Vec<f64> = y.iter().map(|v| -v).collect();
        assert!((spearman(&x, &rev) + 1.0).abs() < 1e-12);
        // Against the textbook formula 1 − 6Σd²/(n(n²−1)) without ties.
        let a = [0.3, 1.2, -0.5, 2.2, 0.9, 1.7];
        let b = [1.0, 0.2, -1.0, 3.0, 2.5, 0.1];
        let (ra, rb) = (ranks(&a), ranks(&b));
        let d2: f64 = ra.iter().zip(&rb).map(|(p, q)| (p - q).powi(2)).sum();
        let want = 1.0 - 6.0 * d2 / (6.0 * 35.0);
        assert!((spearman(&a, &b) - want).abs() < 1e-12);
        // AUROC: the fraction of (positive, negative) pairs ordered right, ties half.
        let (pos, neg) = ([0.9, 0.4, 0.7, 0.4], [0.1, 0.4, 0.5]);
        let mut pairs = 0.0;
        for p in pos {
            for n in neg {
                pairs += if p > n {
                    1.0
                } else if p == n {
                    0.5
                } else {
                    0.0
                };
            }
        }
        assert!((auroc(&pos, &neg) - pairs / 12.0).abs() < 1e-12);
        assert_eq!(auroc(&[2.0], &[1.0]), 1.0);
    }

    #[test]
    fn plane_fit_recovers_two_exponents() {
        // y = 0.5 + 1.0·a − 0.25·b exactly, and with a NaN row that is skipped.
        let a = [0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 5.0];
        let b = [0.0, 0.0, 0.0, 4.0, 4.0, 8.0, f64::NAN];
        let y: Vec<f64> = a.iter().zip(&b).map(|(a, b)| 0.5 + a - 0.25 * b).collect();
        let p = plane_fit(&a, &b, &y);
        assert!((p.c0 - 0.5).abs() < 1e-12 && (p.c1 - 1.0).abs() < 1e-12);
        assert!((p.c2 + 0.25).abs() < 1e-12 && (p.r2 - 1.0).abs() < 1e-12 && p.n == 6);
        // Noise lowers R² below 1; a constant regressor gives no fit.
        let noisy = plane_fit(&a[..6], &b[..6], &[0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
        assert!(noisy.r2 < 0.9);
        assert!(plane_fit(&a, &[1.0; 7], &y).c1.is_nan());
    }
}
