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

/// Area under the ROC curve of `scores` for the positives `labels`: the probability that a
/// random positive scores above a random negative, ties counting ½ (Mann–Whitney U with
/// average ranks; scikit-learn's `roc_auc_score` for binary labels). NaN without both classes.
pub fn auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < order.len() {
        let j = (i..order.len())
            .find(|&j| scores[order[j]] != scores[order[i]])
            .unwrap_or(order.len());
        // Ranks i+1 ..= j share their mean.
        let mean_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += mean_rank * order[i..j].iter().filter(|&&k| labels[k]).count() as f64;
        i = j;
    }
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return f64::NAN;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
