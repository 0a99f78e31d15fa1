//! Spectra of curvature operators (`hessian.rs`) from matrix-vector products only: the top-k
//! eigenpairs by Lanczos with full reorthogonalisation (stopping on the Ritz residuals) or by
//! deflated power iteration (PyHessian's method, kept as the fallback and the reference), the
//! trace by Hutchinson's estimator with its standard error, and the eigenvalue density by
//! stochastic Lanczos quadrature (SLQ) with Gaussian broadening.
//!
//! Vectors are flat tensors in the parameters' kind and on their device; the small
//! tridiagonal eigenproblems are solved on the host in f64. Random starts and probes are drawn
//! on the CPU from the global generator (seed it first), so CPU and CUDA runs start alike.

use super::hessian::{apply_flat, Layout, Operator};
use crate::run::metrics::mean_std;
use tch::{Device, Kind, Tensor};

/// The top eigenpairs found, largest first.
#[derive(Debug)]
pub struct TopK {
    pub values: Vec<f64>,
    /// Unit eigenvectors as flat tensors (see `Layout::split`).
    pub vectors: Vec<Tensor>,
    /// ‖A y − λ y‖ for each pair: an upper bound on |λ − (the nearest true eigenvalue)|.
    pub residuals: Vec<f64>,
    /// Operator products used.
    pub products: usize,
    pub converged: bool,
}

/// Hutchinson's trace estimate.
#[derive(Debug, Clone, Copy)]
pub struct Trace {
    pub value: f64,
    /// Standard error of the mean over probes.
    pub std_error: f64,
    pub probes: usize,
    pub converged: bool,
}

/// A Gauss quadrature of one probe's spectral measure: nodes (Ritz values) and weights (the
/// squared first components of the Ritz vectors; they sum to 1).
#[derive(Debug, Clone)]
pub struct Quadrature {
    pub nodes: Vec<f64>,
    pub weights: Vec<f64>,
}

fn gaussian(layout: &Layout) -> Tensor {
    Tensor::randn([layout.dim()], (Kind::Float, Device::Cpu))
        .to_kind(layout.kind)
        .to_device(layout.device)
}

fn rademacher(layout: &Layout) -> Tensor {
    (Tensor::randint(2, [layout.dim()], (Kind::Int64, Device::Cpu)).to_kind(layout.kind) * 2.0
        - 1.0)
        .to_device(layout.device)
}

fn value(t: &Tensor) -> f64 {
    t.double_value(&[])
}

fn machine_eps(kind: Kind) -> f64 {
    if kind == Kind::Double {
        f64::EPSILON
    } else {
        f32::EPSILON as f64
    }
}

/// Eigen-decomposition of the symmetric tridiagonal matrix with diagonal `a` and off-diagonal
/// `b` (len a − 1): eigenvalues ascending, and the eigenvector matrix row-major (s[i][j] is
/// component i of eigenvector j).
fn tridiagonal_eig(a: &[f64], b: &[f64]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let m = a.len() as i64;
    let t = Tensor::zeros([m, m], (Kind::Double, Device::Cpu));
    for (i, &v) in a.iter().enumerate() {
        let _ = t.get(i as i64).get(i as i64).fill_(v);
    }
    for (i, &v) in b.iter().enumerate().take(a.len().saturating_sub(1)) {
        let (i, j) = (i as i64, i as i64 + 1);
        let _ = t.get(i).get(j).fill_(v);
        let _ = t.get(j).get(i).fill_(v);
    }
    let (values, vectors) = t.linalg_eigh("L");
    let values = Vec::<f64>::try_from(&values).expect("f64 eigenvalues");
    let flat = Vec::<f64>::try_from(&vectors.reshape([-1])).expect("f64 eigenvectors");
    let rows = flat.chunks(m as usize).map(<[f64]>::to_vec).collect();
    (values, rows)
}

/// A Lanczos run: the orthonormal basis (rows) and the tridiagonal coefficients.
struct Krylov {
    basis: Tensor,
    alphas: Vec<f64>,
    /// betas[j] = ‖w_j‖, the coupling of q_j to q_{j+1}; the last one gives the residuals.
    betas: Vec<f64>,
    /// Stopped because the Krylov space is invariant (the Ritz values are exact).
    invariant: bool,
}

impl Krylov {
    fn steps(&self) -> usize {
        self.alphas.len()
    }
    fn eig(&self) -> (Vec<f64>, Vec<Vec<f64>>) {
        tridiagonal_eig(&self.alphas, &self.betas)
    }
    /// Ritz residuals ‖A y_j − θ_j y_j‖ = β_m |s_{m,j}|.
    fn residual(&self, s: &[Vec<f64>], j: usize) -> f64 {
        if self.invariant {
            return 0.0;
        }
        let m = self.steps();
        self.betas[m - 1] * s[m - 1][j].abs()
    }
}

/// Up to `max_steps` Lanczos steps from `start`, each new vector orthogonalised against the
/// whole basis twice (classical Gram–Schmidt, repeated: the basis stays orthonormal to working
/// precision, so no ghost eigenvalues). `done` sees the coefficients after each step.
fn lanczos(
    op: &dyn Operator,
    layout: &Layout,
    start: &Tensor,
    max_steps: usize,
    mut done: impl FnMut(&Krylov) -> bool,
) -> Krylov {
    let cap = max_steps.clamp(1, layout.dim().max(1) as usize);
    // The basis grows by doubling: a solve that converges early never touches (or pays for
    // zeroing) the memory of `max_steps` vectors.
    let rows = |r: usize| Tensor::zeros([r as i64, layout.dim()], (layout.kind, layout.device));
    let mut k = Krylov {
        basis: rows(cap.min(16)),
        alphas: vec![],
        betas: vec![],
        invariant: false,
    };
    let q0 = start / start.norm().clamp_min(1e-30);
    k.basis.get(0).copy_(&q0);
    let eps = machine_eps(layout.kind);
    let mut scale = 0.0f64;
    for j in 0..cap {
        let q = k.basis.get(j as i64);
        let mut w = apply_flat(op, layout, &q);
        let alpha = value(&q.dot(&w));
        let done_basis = k.basis.narrow(0, 0, j as i64 + 1);
        for _ in 0..2 {
            let coef = done_basis.mv(&w);
            w = &w - done_basis.tr().mv(&coef);
        }
        let beta = value(&w.norm());
        scale = scale.max(alpha.abs() + beta);
        k.alphas.push(alpha);
        k.betas.push(beta);
        if beta <= 100.0 * eps * scale.max(1e-300) {
            k.invariant = true;
            break;
        }
        if done(&k) || j + 1 == cap {
            break;
        }
        let held = k.basis.size()[0] as usize;
        if j + 1 == held {
            let grown = rows((2 * held).min(cap));
            grown.narrow(0, 0, held as i64).copy_(&k.basis);
            k.basis = grown;
        }
        k.basis.get(j as i64 + 1).copy_(&(w / beta));
    }
    k
}

/// Ritz pairs below the k wanted ones that must converge too before Lanczos stops. A Krylov
/// space can hold a converged Ritz pair for λ₂ while λ₁, a little above it (the top of a
/// neural network's Hessian is a cluster of about one outlier per class), has not emerged yet
/// from a start vector that happened to be poor in its direction; requiring the next pairs to
/// converge as well runs the few more steps that let it emerge. Measured on the MNIST MLP
/// (bench/hessian_top.py, 20 starts): without guards one start in 20 stopped on λ₂ (1.3%
/// off); with two, none, for about a third more products.
const GUARD: usize = 2;

/// The `k` largest (algebraic) eigenvalues and their eigenvectors by Lanczos with full
/// reorthogonalisation from a random start. Stops when each of the k Ritz pairs has residual
/// ‖A y − θ y‖ ≤ `tol`·|θ| (so each eigenvalue is within that of a true one) and the `GUARD`
/// pairs below them have residual ≤ `tol`·‖A‖ (estimated), when the Krylov space is invariant,
/// or after `max_steps` products. Memory: `max_steps` vectors.
pub fn lanczos_top_k(op: &dyn Operator, k: usize, tol: f64, max_steps: usize) -> TopK {
    let layout = Layout::of(op.params());
    let k = k.max(1);
    let start = gaussian(&layout);
    let converged_at = |kr: &Krylov| {
        let m = kr.steps();
        if m < k {
            return false;
        }
        let (theta, s) = kr.eig();
        let scale = theta[0].abs().max(theta[m - 1].abs());
        let wanted = (m - k..m).all(|j| kr.residual(&s, j) <= tol * theta[j].abs());
        let guards =
            (m.saturating_sub(k + GUARD)..m - k).all(|j| kr.residual(&s, j) <= tol * scale);
        wanted && guards
    };
    let kr = lanczos(op, &layout, &start, max_steps.max(k), |kr| converged_at(kr));
    let m = kr.steps();
    let (theta, s) = kr.eig();
    let basis = kr.basis.narrow(0, 0, m as i64);
    let top: Vec<usize> = (m.saturating_sub(k)..m).rev().collect();
    let vectors = top
        .iter()
        .map(|&j| {
            let col: Vec<f64> = s.iter().map(|row| row[j]).collect();
            let c = Tensor::from_slice(&col)
                .to_kind(layout.kind)
                .to_device(layout.device);
            basis.tr().mv(&c)
        })
        .collect();
    TopK {
        values: top.iter().map(|&j| theta[j]).collect(),
        vectors,
        residuals: top.iter().map(|&j| kr.residual(&s, j)).collect(),
        products: m,
        converged: kr.invariant || converged_at(&kr),
    }
}

/// The `k` eigenvalues of largest magnitude by power iteration with deflation, as PyHessian
/// does: each vector is kept orthogonal to the ones already found; one stops when successive
/// Rayleigh quotients differ by at most `tol`·|λ| (a negative `tol` always runs `max_iter`),
/// or after `max_iter` products per eigenvalue.
pub fn power_top_k(op: &dyn Operator, k: usize, tol: f64, max_iter: usize) -> TopK {
    let layout = Layout::of(op.params());
    let mut out = TopK {
        values: vec![],
        vectors: vec![],
        residuals: vec![],
        products: 0,
        converged: true,
    };
    for _ in 0..k.max(1) {
        let mut v = gaussian(&layout);
        let mut last = f64::NAN;
        let mut found = None;
        for i in 1..=max_iter.max(1) {
            for u in &out.vectors {
                v = &v - u * u.dot(&v);
            }
            v = &v / v.norm().clamp_min(1e-30);
            let hv = apply_flat(op, &layout, &v);
            out.products += 1;
            let lambda = value(&v.dot(&hv));
            let stop = (lambda - last).abs() <= tol * lambda.abs();
            if stop || i == max_iter.max(1) {
                let residual = value(&(&hv - &v * lambda).norm());
                found = Some((lambda, v.shallow_clone(), residual, stop));
                break;
            }
            last = lambda;
            v = hv;
        }
        let (lambda, vector, residual, converged) = found.expect("at least one iteration");
        out.values.push(lambda);
        out.vectors.push(vector);
        out.residuals.push(residual);
        out.converged &= converged;
    }
    out
}

/// tr(A) by Hutchinson's estimator, E[zᵀAz] with Rademacher probes z. Draws probes until the
/// standard error of the mean is at most `rel_err`·|estimate| (after at least `min_probes`),
/// or `max_probes` were used.
pub fn hutchinson(op: &dyn Operator, rel_err: f64, min_probes: usize, max_probes: usize) -> Trace {
    let layout = Layout::of(op.params());
    let mut samples = vec![];
    let min_probes = min_probes.max(2);
    loop {
        let z = rademacher(&layout);
        samples.push(value(&z.dot(&apply_flat(op, &layout, &z))));
        let (mean, sd) = mean_std(&samples);
        let se = sd / (samples.len() as f64).sqrt();
        let converged = samples.len() >= min_probes && se <= rel_err * mean.abs();
        if converged || samples.len() >= max_probes.max(min_probes) {
            return Trace {
                value: mean,
                std_error: se,
                probes: samples.len(),
                converged,
            };
        }
    }
}

/// Stochastic Lanczos quadrature: for each of `probes` normalised Rademacher vectors v,
/// `steps` Lanczos steps give a Gauss quadrature of the measure Σ_i (vᵀu_i)² δ(λ − λ_i), whose
/// expectation is the spectral density (1/n) Σ_i δ(λ − λ_i); it integrates polynomials of
/// degree < 2·steps exactly. Returns the quadratures and the products used.
pub fn slq(op: &dyn Operator, probes: usize, steps: usize) -> (Vec<Quadrature>, usize) {
    let layout = Layout::of(op.params());
    let mut products = 0;
    let quads = (0..probes.max(1))
        .map(|_| {
            let kr = lanczos(op, &layout, &rademacher(&layout), steps, |_| false);
            products += kr.steps();
            let (nodes, s) = kr.eig();
            let weights = s[0].iter().map(|x| x * x).collect();
            Quadrature { nodes, weights }
        })
        .collect();
    (quads, products)
}

/// The p-th moment of the spectral density, (1/n) tr(Aᵖ), estimated from SLQ quadratures:
/// the mean over probes and its standard error.
pub fn moment(quads: &[Quadrature], p: i32) -> (f64, f64) {
    let per_probe: Vec<f64> = quads
        .iter()
        .map(|q| {
            q.nodes
                .iter()
                .zip(&q.weights)
                .map(|(x, w)| w * x.powi(p))
                .sum()
        })
        .collect();
    let (mean, sd) = mean_std(&per_probe);
    (mean, sd / (per_probe.len() as f64).sqrt())
}

/// A density on a grid.
#[derive(Debug, Clone)]
pub struct Density {
    pub lambda: Vec<f64>,
    pub density: Vec<f64>,
    /// The Gaussian broadening's standard deviation.
    pub sigma: f64,
}

/// The SLQ density broadened by a Gaussian of standard deviation `sigma` (≤ 0: 1% of the span
/// of the nodes), on `points` equally spaced λ from 4σ below the smallest node to 4σ above
/// the largest. It integrates to 1 over the real line.
pub fn density(quads: &[Quadrature], sigma: f64, points: usize) -> Density {
    let nodes = quads.iter().flat_map(|q| q.nodes.iter().copied());
    let (lo, hi) = nodes.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| {
        (l.min(x), h.max(x))
    });
    let sigma = if sigma > 0.0 {
        sigma
    } else {
        let span = hi - lo;
        if span > 0.0 {
            0.01 * span
        } else {
            1e-3 * hi.abs().max(1e-12)
        }
    };
    let (lo, hi) = (lo - 4.0 * sigma, hi + 4.0 * sigma);
    let points = points.max(2);
    let norm = 1.0 / (sigma * (2.0 * std::f64::consts::PI).sqrt() * quads.len().max(1) as f64);
    let lambda: Vec<f64> = (0..points)
        .map(|i| lo + (hi - lo) * i as f64 / (points - 1) as f64)
        .collect();
    let density = lambda
        .iter()
        .map(|&x| {
            quads
                .iter()
                .flat_map(|q| q.nodes.iter().zip(&q.weights))
                .map(|(t, w)| w * (-0.5 * ((x - t) / sigma).powi(2)).exp())
                .sum::<f64>()
                * norm
        })
        .collect();
    Density {
        lambda,
        density,
        sigma,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::hessian::{GaussNewton, Hessian};

    const D: (Kind, Device) = (Kind::Double, Device::Cpu);

    /// The Hessian of ½ xᵀAx, A = Q diag(spectrum) Qᵀ (Q = I when `rotate` is false).
    fn quadratic(spectrum: &[f64], rotate: bool) -> (Hessian, Tensor) {
        let n = spectrum.len() as i64;
        let q = if rotate {
            Tensor::linalg_qr(&Tensor::randn([n, n], D), "reduced").0
        } else {
            Tensor::eye(n, D)
        };
        let a = q
            .matmul(&Tensor::from_slice(spectrum).diag(0))
            .matmul(&q.tr());
        let x = Tensor::randn([n], D).set_requires_grad(true);
        let loss = x.dot(&a.mv(&x)) * 0.5;
        (Hessian::new(vec![x], vec![(loss, 1.0)]), q)
    }

    /// Four separated eigenvalues on top of a bulk in [−1, 2].
    fn spectrum(n: usize) -> Vec<f64> {
        let mut s = vec![10.0, 8.0, 6.5, 5.0];
        s.extend((0..n - 4).map(|i| -1.0 + 3.0 * i as f64 / (n - 5) as f64));
        s
    }

    #[test]
    fn lanczos_finds_the_top_k_of_a_known_spectrum() {
        let _rng = crate::rng::serial();
        tch::manual_seed(2);
        let s = spectrum(60);
        let (h, q) = quadratic(&s, true);
        let top = lanczos_top_k(&h, 4, 1e-8, 60);
        assert!(top.converged, "{top:?}");
        for (i, (&got, &want)) in top.values.iter().zip(&s).enumerate() {
            assert!((got - want).abs() <= 1e-8 * want, "λ{i}: {got} vs {want}");
            assert!(top.residuals[i] <= 1e-8 * want);
            // The eigenvector is ±the i-th column of Q.
            let overlap = top.vectors[i].dot(&q.select(1, i as i64)).double_value(&[]);
            assert!(
                (overlap.abs() - 1.0).abs() < 1e-8,
                "v{i}: overlap {overlap}"
            );
        }
        // Fewer products than the dimension: Lanczos does not need the whole space (here the
        // two guard pairs sit in a dense bulk and take most of the steps at this tolerance).
        assert!(top.products < 60, "{} products", top.products);
        // Deflated power iteration reaches the same top two.
        let pow = power_top_k(&h, 2, 1e-12, 2000);
        assert!((pow.values[0] - 10.0).abs() < 1e-6 && (pow.values[1] - 8.0).abs() < 1e-6);
        assert!(
            pow.products > top.products,
            "{} vs {}",
            pow.products,
            top.products
        );
    }

    #[test]
    fn lanczos_stops_exactly_on_a_small_space() {
        let _rng = crate::rng::serial();
        tch::manual_seed(3);
        let (h, _) = quadratic(&[3.0, 1.0, -2.0], true);
        let top = lanczos_top_k(&h, 3, 1e-10, 50);
        assert!(top.converged && top.products <= 3, "{top:?}");
        for (got, want) in top.values.iter().zip([3.0, 1.0, -2.0]) {
            assert!((got - want).abs() < 1e-10, "{:?}", top.values);
        }
    }

    #[test]
    fn hutchinson_trace_lies_within_its_error_bars() {
        let _rng = crate::rng::serial();
        tch::manual_seed(4);
        let s = spectrum(50);
        let truth: f64 = s.iter().sum();
        // Diagonal: every Rademacher probe gives the trace exactly.
        let (h, _) = quadratic(&s, false);
        let t = hutchinson(&h, 0.01, 5, 100);
        assert!(
            t.converged && t.probes == 5 && (t.value - truth).abs() < 1e-10,
            "{t:?}"
        );
        // Rotated: unbiased, with a standard error that meets the request.
        let (h, _) = quadratic(&s, true);
        let t = hutchinson(&h, 0.03, 10, 5000);
        assert!(t.converged && t.std_error <= 0.03 * t.value.abs(), "{t:?}");
        assert!(
            (t.value - truth).abs() <= 4.0 * t.std_error,
            "{t:?} vs {truth}"
        );
        assert!(t.probes > 10);
    }

    #[test]
    fn slq_moments_equal_the_spectrum() {
        let _rng = crate::rng::serial();
        tch::manual_seed(5);
        let s = spectrum(40);
        let n = s.len() as f64;
        let truth = |p: i32| s.iter().map(|x| x.powi(p)).sum::<f64>() / n;
        // Diagonal, Rademacher probes: vᵀAᵖv = tr(Aᵖ)/n exactly, and the 6-step quadrature
        // integrates degrees < 12 exactly.
        let (h, _) = quadratic(&s, false);
        let (quads, products) = slq(&h, 3, 6);
        assert_eq!(products, 18);
        for p in 0..12 {
            let (m, _) = moment(&quads, p);
            assert!(
                (m - truth(p)).abs() <= 1e-9 * truth(p).abs().max(1.0),
                "p={p}: {m} vs {}",
                truth(p)
            );
        }
        // Rotated: each probe is unbiased; the mean is within its error bars.
        let (h, _) = quadratic(&s, true);
        let (quads, _) = slq(&h, 200, 8);
        for p in 1..6 {
            let (m, se) = moment(&quads, p);
            assert!(
                (m - truth(p)).abs() <= 4.0 * se,
                "p={p}: {m} ± {se} vs {}",
                truth(p)
            );
        }
        // As many steps as dimensions: the nodes are the spectrum itself.
        let (quads, _) = slq(&h, 1, 40);
        let mut nodes = quads[0].nodes.clone();
        nodes.sort_by(|a, b| b.total_cmp(a));
        let mut sorted = s.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        for (a, b) in nodes.iter().zip(&sorted) {
            assert!((a - b).abs() < 1e-8, "{a} vs {b}");
        }
        // The broadened density integrates to 1, keeps the mean, and adds σ² to the second moment.
        let (quads, _) = slq(&h, 4, 10);
        let d = density(&quads, 0.3, 4000);
        let dx = d.lambda[1] - d.lambda[0];
        let integral = |f: &dyn Fn(f64) -> f64| {
            d.lambda
                .iter()
                .zip(&d.density)
                .map(|(&x, &y)| f(x) * y)
                .sum::<f64>()
                * dx
        };
        assert!((integral(&|_| 1.0) - 1.0).abs() < 1e-3);
        assert!((integral(&|x| x) - moment(&quads, 1).0).abs() < 1e-3);
        assert!((integral(&|x| x * x) - moment(&quads, 2).0 - 0.09).abs() < 1e-2);
    }

    /// A small tanh network in double precision, its parameters and logits on random data.
    fn network() -> (Vec<Tensor>, Tensor, Tensor) {
        let x = Tensor::randn([64, 5], D);
        let y = Tensor::randint(3, [64], (Kind::Int64, Device::Cpu));
        let w1 = (Tensor::randn([5, 6], D) * 0.8).set_requires_grad(true);
        let w2 = (Tensor::randn([6, 3], D) * 0.8).set_requires_grad(true);
        let logits = x.matmul(&w1).tanh().matmul(&w2);
        (vec![w1, w2], logits, y)
    }

    fn sc(v: &[Tensor]) -> Vec<Tensor> {
        v.iter().map(Tensor::shallow_clone).collect()
    }

    fn ce(logits: &Tensor, y: &Tensor) -> Tensor {
        logits.log_softmax(-1, Kind::Double).nll_loss(y)
    }

    /// The operator as an explicit matrix, one product per unit vector.
    fn explicit(op: &dyn Operator) -> Tensor {
        let layout = Layout::of(op.params());
        let n = layout.dim();
        let cols: Vec<Tensor> = (0..n)
            .map(|i| apply_flat(op, &layout, &Tensor::eye(n, D).get(i)))
            .collect();
        Tensor::stack(&cols, 1)
    }

    fn sorted_desc(t: &Tensor) -> Vec<f64> {
        let mut v = Vec::<f64>::try_from(t).unwrap();
        v.sort_by(|a, b| b.total_cmp(a));
        v
    }

    #[test]
    fn lanczos_and_power_iteration_agree_on_a_network() {
        let _rng = crate::rng::serial();
        tch::manual_seed(6);
        let (params, logits, y) = network();
        let h = Hessian::new(sc(&params), vec![(ce(&logits, &y), 1.0)]);
        let m = explicit(&h);
        assert!(
            m.allclose(&m.tr(), 1e-9, 1e-9, false),
            "the Hessian is symmetric"
        );
        let exact = sorted_desc(&m.linalg_eigvalsh("L"));
        let top = lanczos_top_k(&h, 3, 1e-9, 48);
        assert!(top.converged, "{top:?}");
        for i in 0..3 {
            assert!(
                (top.values[i] - exact[i]).abs() < 1e-7 * exact[0],
                "{:?} vs {:?}",
                top.values,
                &exact[..3]
            );
        }
        // Power iteration finds the eigenvalue of largest magnitude; here that is the top one.
        assert!(exact[0] > -exact[exact.len() - 1]);
        let pow = power_top_k(&h, 1, 1e-10, 5000);
        assert!(
            (pow.values[0] - top.values[0]).abs() < 1e-6 * exact[0],
            "{pow:?} vs {top:?}"
        );
        // The trace by Hutchinson agrees with the explicit one within its error bars.
        let trace = m.trace().double_value(&[]);
        let t = hutchinson(&h, 0.02, 10, 20000);
        assert!(
            (t.value - trace).abs() <= 4.0 * t.std_error,
            "{t:?} vs {trace}"
        );
    }

    #[test]
    fn gauss_newton_is_psd_chunks_add_up_and_it_is_the_hessian_of_a_linear_model() {
        let _rng = crate::rng::serial();
        tch::manual_seed(7);
        let (params, logits, _y) = network();
        let gn = GaussNewton::new(sc(&params), vec![(logits.shallow_clone(), 1.0)]);
        let g = explicit(&gn);
        assert!(g.allclose(&g.tr(), 1e-9, 1e-9, false));
        let eig = sorted_desc(&g.linalg_eigvalsh("L"));
        assert!(eig[eig.len() - 1] > -1e-10 * eig[0], "{eig:?}");
        let top = lanczos_top_k(&gn, 1, 1e-9, 48);
        assert!((top.values[0] - eig[0]).abs() < 1e-7 * eig[0]);
        // Two weighted chunks (the first 16 rows and the other 48) give the same matrix.
        let halves = GaussNewton::new(
            sc(&params),
            vec![
                (logits.narrow(0, 0, 16), 0.25),
                (logits.narrow(0, 16, 48), 0.75),
            ],
        );
        assert!(explicit(&halves).allclose(&g, 1e-10, 1e-12, false));
        // Softmax regression: logits linear in the weights, so G = H.
        let x = Tensor::randn([40, 4], D);
        let y = Tensor::randint(3, [40], (Kind::Int64, Device::Cpu));
        let w = Tensor::randn([4, 3], D).set_requires_grad(true);
        let z = x.matmul(&w);
        let h = Hessian::new(vec![w.shallow_clone()], vec![(ce(&z, &y), 1.0)]);
        let gn = GaussNewton::new(vec![w], vec![(z, 1.0)]);
        assert!(explicit(&gn).allclose(&explicit(&h), 1e-10, 1e-12, false));
    }
}
