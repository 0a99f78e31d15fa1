//! Small statistics for experiment summaries.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_a_line_and_reports_r2() {
        let l = linear_fit(&[0.0, 1.0, 2.0, 3.0, f64::NAN], &[1.0, 3.0, 5.0, 7.0, 2.0]);
        assert!((l.slope - 2.0).abs() < 1e-12 && (l.intercept - 1.0).abs() < 1e-12);
        assert!((l.r2 - 1.0).abs() < 1e-12 && l.n == 4);
        let noisy = linear_fit(&[0.0, 1.0, 2.0, 3.0], &[0.0, 1.0, 0.0, 1.0]);
        assert!(noisy.r2 < 0.5);
        assert!(linear_fit(&[1.0], &[1.0]).slope.is_nan());
    }
}
