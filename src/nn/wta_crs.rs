//! Linear layers whose weight gradient is estimated from k of the N rows of the batch
//! (column-row sampling of GᵀX, Adelman et al.; winner-take-all CRS, Liu et al. 2023). The
//! forward pass and the input gradient stay exact; only the k sampled (rescaled) input rows and
//! their indices are kept for the backward pass, which is the memory saving. Rows are the
//! flattened batch × sequence tokens, with one index set for the whole batch, and
//! k = max(⌊N·ratio⌋, 10) capped at N, as in the official code.
//!
//! - `uniform`: k rows with replacement, q_i = 1/N, each scaled by 1/(k q_i).
//! - `crs`: the same with q_i ∝ p_i, the row's importance (below).
//! - `wta-crs`: with q sorted in decreasing order and q_c the mass of the c largest, the top set
//!   has |C| = c* = argmin_{1 ≤ c < k} (1 − q_c)/(k − c) rows when that minimum is at most 1/k
//!   (the value of plain CRS, c = 0), otherwise none (the official `deter_adaptive` rule). The
//!   rows of C are kept with weight 1; the other k − |C| are drawn with replacement from the
//!   rest with probabilities q_j/(1 − q_C) and scaled by (1 − q_C)/((k − |C|) q_j).
//! - `top-k`: the k largest rows, unscaled (biased; for comparison).
//!
//! Importance p_i = ‖x_i‖·ĝ_i, where ĝ_i is the output-gradient row norm ‖g_i‖ that this layer
//! saw for the same training example and token position on the example's previous visit (one
//! epoch stale): a `GradNormCache` keyed by the examples' dataset indices, refreshed after every
//! backward pass. While an example has no cached norms (its first visit) its rows are weighed by
//! ‖x_i‖ alone (times the batch's mean cached norm when other examples in the batch have one).
//! With `Importance::XNorm` every row is weighed by ‖x_i‖ alone.
//!
//! Unbiasedness. Every non-top row keeps a probability of at least 10⁻⁶/N of the total (so a
//! stale cache that says ‖g_i‖ = 0 cannot exclude a row whose gradient is not zero), every
//! sampled row is divided by (number of draws)·(its probability), and C is a deterministic
//! function of the importances; so E[Ĝ] = GᵀX in every epoch and for every |C|, including
//! |C| = 0. The official code differs in two places and is biased there: while the cache is all
//! zeros (the first epoch) it scales the sampled rows by (1 − q_C) without dividing by
//! (k − |C|)·q_j, and with `mix_replacement` and |C| = 0 it samples k rows without replacement
//! and does not reweight them. It also drops the sampled part when the top set holds more than
//! 1 − 10⁻³ of the mass; stochlab keeps it.

use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sampler {
    Exact,
    Uniform,
    Crs,
    WtaCrs,
    TopK,
}

impl Sampler {
    pub fn as_str(self) -> &'static str {
        match self {
            Sampler::Exact => "exact",
            Sampler::Uniform => "uniform",
            Sampler::Crs => "crs",
            Sampler::WtaCrs => "wta-crs",
            Sampler::TopK => "top-k",
        }
    }
}

/// Where a row's importance comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Importance {
    /// ‖x_i‖ alone.
    XNorm,
    /// ‖x_i‖ times the cached ‖g_i‖ of the same example, position and layer.
    Cached,
}

/// How a layer estimates its weight gradient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    pub sampler: Sampler,
    /// k/N before the minimum of `MIN_K` rows.
    pub k_fraction: f64,
    pub importance: Importance,
}

impl Sampling {
    pub fn exact() -> Self {
        Sampling {
            sampler: Sampler::Exact,
            k_fraction: 1.0,
            importance: Importance::XNorm,
        }
    }
}

/// The official code never keeps fewer rows than this (`minimal_k`).
pub const MIN_K: i64 = 10;

/// Rows kept of `n` at k/N = `ratio`: max(⌊n·ratio⌋, 10), at most n.
pub fn rows_kept(n: i64, ratio: f64) -> i64 {
    // The small epsilon keeps 0.3·10 = 2.9999… from flooring to 2.
    (((n as f64) * ratio + 1e-9).floor() as i64)
        .max(MIN_K)
        .min(n)
}

/// Share of the total importance every row keeps at least (divided by N).
const FLOOR: f64 = 1e-6;

/// Sampling probabilities from importances (N, non-negative, any scale): p/Σp mixed with a
/// floor of 10⁻⁶ of the mean, uniform when every importance is zero. Double precision.
pub fn probabilities(p: &Tensor) -> Tensor {
    let p = p.to_kind(Kind::Double).clamp_min(0.0);
    let n = p.size()[0] as f64;
    let total = p.sum(Kind::Double);
    let all_zero = total.eq(0.0).to_kind(Kind::Double);
    let q = &p + &total * (FLOOR / n) + all_zero;
    &q / q.sum(Kind::Double)
}

/// |C| by the official rule for probabilities sorted in decreasing order: c* minimises
/// (1 − q_c)/(k − c) over 1 ≤ c < k; |C| = c* if that minimum is at most 1/k, else 0.
pub fn top_set_size(sorted: &Tensor, k: i64) -> i64 {
    let k = k.min(sorted.size()[0]);
    if k < 2 {
        return 0;
    }
    let cum = sorted.narrow(0, 0, k - 1).cumsum(0, Kind::Double);
    let c = Tensor::arange_start(1, k, (Kind::Double, sorted.device()));
    let score = (cum.neg() + 1.0).clamp_min(0.0) / (k as f64 - c);
    let (min, arg) = score.min_dim(0, false);
    let both = Tensor::stack(&[min, arg.to_kind(Kind::Double)], 0).to_device(Device::Cpu);
    let v: Vec<f64> = Vec::try_from(&both).unwrap_or_default();
    match v.as_slice() {
        [m, a] if *m <= 1.0 / k as f64 => *a as i64 + 1,
        _ => 0,
    }
}

/// Rows chosen and their scale factors, for an estimate Σ_i s_i g_iᵀ x_i of GᵀX.
pub struct Selection {
    pub rows: Tensor,
    pub scale: Tensor,
    /// Rows kept deterministically (WTA-CRS's |C|; k for top-k, N for exact).
    pub top: i64,
}

/// Everything about a sampler that does not change between draws with the same importances:
/// built once, drawn from many times (`draw`).
pub struct Plan {
    sampler: Sampler,
    n: i64,
    k: i64,
    /// Rows kept deterministically and the rows drawn from, with their probabilities.
    top: Tensor,
    pool: Tensor,
    pool_q: Tensor,
    /// Mass of the pool (1 − q_C).
    mass: Tensor,
    /// |C|.
    pub top_size: i64,
}

impl Plan {
    /// A plan for keeping k of the N rows with importances `p` (N, non-negative, any scale).
    pub fn new(sampler: Sampler, p: &Tensor, k: i64) -> Plan {
        let n = p.size()[0];
        let dev = p.device();
        let k = k.clamp(1, n);
        let all = || Tensor::arange(n, (Kind::Int64, dev));
        let empty = || Tensor::zeros([0], (Kind::Int64, dev));
        let plan = |top: Tensor, pool: Tensor, pool_q: Tensor, top_size: i64| Plan {
            sampler,
            n,
            k,
            mass: pool_q.sum(Kind::Double),
            top,
            pool,
            pool_q,
            top_size,
        };
        // With k = N every sampler keeps every row: the exact product (as the official code).
        if sampler == Sampler::Exact || k >= n {
            let none = Tensor::zeros([0], (Kind::Double, dev));
            return plan(all(), empty(), none, n);
        }
        match sampler {
            Sampler::Exact => unreachable!("handled above"),
            Sampler::Uniform => plan(
                empty(),
                all(),
                Tensor::full([n], 1.0 / n as f64, (Kind::Double, dev)),
                0,
            ),
            Sampler::Crs => plan(empty(), all(), probabilities(p), 0),
            Sampler::TopK => {
                let top = p.to_kind(Kind::Double).topk(k, 0, true, false).1;
                let none = Tensor::zeros([0], (Kind::Double, dev));
                plan(top, empty(), none, k)
            }
            Sampler::WtaCrs => {
                let q = probabilities(p);
                let (sorted, order) = q.sort(0, true);
                let c = top_set_size(&sorted, k);
                plan(
                    order.narrow(0, 0, c),
                    order.narrow(0, c, n - c),
                    sorted.narrow(0, c, n - c),
                    c,
                )
            }
        }
    }

    /// One draw: the top set with weight 1 and k − |C| rows from the pool, each scaled by
    /// (1 − q_C)/((k − |C|) q_j). Draws from the global generator.
    pub fn draw(&self) -> Selection {
        let dev = self.top.device();
        let ones = |m: i64| Tensor::ones([m], (Kind::Double, dev));
        let draws = self.k - self.top_size;
        if self.sampler == Sampler::TopK
            || self.sampler == Sampler::Exact
            || self.k >= self.n
            || draws <= 0
        {
            return Selection {
                rows: self.top.shallow_clone(),
                scale: ones(self.top.size()[0]),
                top: self.top_size,
            };
        }
        let pick = (&self.pool_q / &self.mass).multinomial(draws, true);
        let rows = self.pool.index_select(0, &pick);
        let scale = &self.mass / (self.pool_q.index_select(0, &pick) * draws as f64);
        Selection {
            rows: Tensor::cat(&[self.top.shallow_clone(), rows], 0),
            scale: Tensor::cat(&[ones(self.top_size), scale], 0),
            top: self.top_size,
        }
    }
}

/// Chooses k of N rows with importance `p` (N, non-negative, any scale). Draws from the
/// global generator.
pub fn select(sampler: Sampler, p: &Tensor, k: i64) -> Selection {
    Plan::new(sampler, p, k).draw()
}

/// ‖g‖ of one layer's output rows per (training example, token position), from each example's
/// latest visit: the official code's per-example buffer, on the run's device.
pub struct GradNormCache {
    norms: Tensor,
    seen: Tensor,
}

impl GradNormCache {
    pub fn new(examples: i64, positions: i64, device: Device) -> Self {
        GradNormCache {
            norms: Tensor::zeros([examples, positions], (Kind::Float, device)),
            seen: Tensor::zeros([examples], (Kind::Bool, device)),
        }
    }

    pub fn positions(&self) -> i64 {
        self.norms.size()[1]
    }

    /// The cached norms of examples `ids` ([B] dataset indices): ([B, positions], seen [B]).
    pub fn fetch(&self, ids: &Tensor) -> (Tensor, Tensor) {
        (
            self.norms.index_select(0, ids),
            self.seen.index_select(0, ids),
        )
    }

    /// Stores the norms ([B, positions] or [B·positions]) of examples `ids`.
    pub fn store(&mut self, ids: &Tensor, norms: &Tensor) {
        let v = norms
            .detach()
            .to_kind(Kind::Float)
            .reshape([ids.size()[0], self.positions()]);
        let _ = self.norms.index_copy_(0, ids, &v);
        let _ = self.seen.index_fill_(0, ids, 1);
    }

    /// Importances ‖x_i‖·ĝ_i for the rows ([B·positions], example-major) of examples `ids`:
    /// ĝ from the cache; rows of examples without cached norms get the batch's mean cached norm
    /// (‖x_i‖ alone when no example in the batch has one).
    pub fn importance(&self, x_norms: &Tensor, ids: &Tensor) -> Tensor {
        let (g, seen) = self.fetch(ids);
        let l = self.positions();
        let seen_rows = seen
            .unsqueeze(1)
            .expand([ids.size()[0], l], false)
            .reshape([-1])
            .to_kind(Kind::Float);
        let g = g.reshape([-1]);
        let count = seen_rows.sum(Kind::Float);
        let mean = (&g * &seen_rows).sum(Kind::Float) / count.clamp_min(1.0);
        let fill = mean.where_self(&count.gt(0.0), &Tensor::ones_like(&mean));
        let ghat = &seen_rows * &g + (seen_rows.neg() + 1.0) * fill;
        x_norms.to_kind(Kind::Float) * ghat
    }
}

/// y = x Wᵀ + b with the weight gradient estimated from rows of x (the last dimension is the
/// feature; all others are rows: a [B, L, d] input has N = B·L rows, example-major).
#[derive(Debug)]
pub struct WtaCrsLinear {
    pub ws: Tensor,
    pub bs: Tensor,
    pub sampling: Sampling,
    cache: RefCell<Option<GradNormCacheBox>>,
    /// Dataset indices of the examples in the last training forward.
    ids: RefCell<Option<Tensor>>,
    /// A zero leaf added to the last output: its gradient is ∂L/∂y.
    probe: RefCell<Option<Tensor>>,
    /// Rows and bytes kept for the weight gradient in the last training forward.
    pub stored_rows: Cell<i64>,
    pub stored_bytes: Cell<i64>,
    /// Keep the last training input rows (for estimator studies; see `recorded`).
    pub record: Cell<bool>,
    last_input: RefCell<Option<Tensor>>,
}

/// `GradNormCache` behind Debug.
struct GradNormCacheBox(GradNormCache);

impl std::fmt::Debug for GradNormCacheBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GradNormCache({:?})", self.0.norms.size())
    }
}

impl WtaCrsLinear {
    pub fn new(p: &nn::Path, n_in: i64, n_out: i64, sampling: Sampling) -> Self {
        let lin = nn::linear(p, n_in, n_out, Default::default());
        WtaCrsLinear {
            ws: lin.ws,
            bs: lin.bs.expect("bias"),
            sampling,
            cache: RefCell::new(None),
            ids: RefCell::new(None),
            probe: RefCell::new(None),
            stored_rows: Cell::new(0),
            stored_bytes: Cell::new(0),
            record: Cell::new(false),
            last_input: RefCell::new(None),
        }
    }

    /// Gives the layer a ‖g‖ cache for `examples` training examples of `positions` rows each
    /// (1 for vectors). Filled after every backward pass (`after_backward`) whatever the
    /// sampler, and used by `Importance::Cached`.
    pub fn set_cache(&self, examples: i64, positions: i64) {
        *self.cache.borrow_mut() = Some(GradNormCacheBox(GradNormCache::new(
            examples,
            positions,
            self.ws.device(),
        )));
    }

    /// Importances of the rows of examples `ids` from this layer's cache (see
    /// `GradNormCache::importance`), or `None` without a cache.
    pub fn cached_importance(&self, x_norms: &Tensor, ids: &Tensor) -> Option<Tensor> {
        self.cache
            .borrow()
            .as_ref()
            .map(|c| c.0.importance(x_norms, ids))
    }

    /// The cached norms of examples `ids`, or `None` without a cache.
    pub fn cached_norms(&self, ids: &Tensor) -> Option<(Tensor, Tensor)> {
        self.cache.borrow().as_ref().map(|c| c.0.fetch(ids))
    }

    /// After backward: the layer's last training input rows X ([N, n_in]) and output
    /// gradient rows G ([N, n_out]), when `record` was set in that forward.
    pub fn recorded(&self) -> Option<(Tensor, Tensor)> {
        let x = self.last_input.borrow().as_ref()?.shallow_clone();
        let g = self.probe.borrow().as_ref()?.grad();
        g.defined().then(|| (x, g.detach()))
    }

    /// Reads ‖g_i‖ of the last output into the cache at the last examples' ids (call after
    /// backward).
    pub fn after_backward(&self) {
        let Some(probe) = self.probe.borrow_mut().take() else {
            return;
        };
        let g = probe.grad();
        let ids = self.ids.borrow_mut().take();
        if let (true, Some(ids), Some(cache)) = (g.defined(), ids, &mut *self.cache.borrow_mut()) {
            cache
                .0
                .store(&ids, &g.norm_scalaropt_dim(2, [1i64].as_slice(), false));
        }
    }

    /// The training forward: exact output and input gradient, weight gradient from the rows
    /// the sampler keeps. `ids` are the dataset indices of the batch's examples (needed by
    /// the cache; rows are example-major, `positions` per example).
    pub fn forward_train(&self, x: &Tensor, ids: Option<&Tensor>) -> Tensor {
        let d = self.ws.size()[1];
        let shape = x.size();
        let x2 = x.reshape([-1, d]);
        let n = x2.size()[0];
        let has_cache = self.cache.borrow().is_some();
        *self.ids.borrow_mut() = ids.map(Tensor::shallow_clone);
        *self.last_input.borrow_mut() = self.record.get().then(|| x2.detach());
        let elt = x.kind().elt_size_in_bytes() as i64;
        // A zero leaf added to the output: its .grad after backward is ∂L/∂y, whose row norms
        // go to the cache.
        let probe = (has_cache || self.record.get()).then(|| {
            Tensor::zeros([n, self.ws.size()[0]], (x.kind(), x.device())).set_requires_grad(true)
        });
        let k = rows_kept(n, self.sampling.k_fraction);
        let out = if self.sampling.sampler == Sampler::Exact || k >= n {
            self.stored_rows.set(n);
            self.stored_bytes.set(n * d * elt);
            x2.linear(&self.ws, Some(&self.bs))
        } else {
            let xn = x2.detach().norm_scalaropt_dim(2, [1i64].as_slice(), false);
            let p = match (self.sampling.importance, ids) {
                (Importance::Cached, Some(ids)) => self.cached_importance(&xn, ids).unwrap_or(xn),
                _ => xn,
            };
            let sel = select(self.sampling.sampler, &p, k);
            let kept = sel.rows.size()[0];
            self.stored_rows.set(kept);
            // The scaled rows and their indices (int64) are what backward keeps.
            self.stored_bytes.set(kept * d * elt + kept * 8);
            // Value: x Wᵀ + b. Gradient: exact for x (through a detached W), and for W only
            // from the selected rows, scaled: the added term is zero in value.
            let exact_x = x2.matmul(&self.ws.detach().tr()) + &self.bs;
            let xs =
                x2.detach().index_select(0, &sel.rows) * sel.scale.to_kind(x.kind()).unsqueeze(1);
            let term = xs.matmul(&self.ws.tr());
            let zero = &term - term.detach();
            exact_x.index_add(0, &sel.rows, &zero)
        };
        let out = match &probe {
            Some(p) => out + p,
            None => out,
        };
        *self.probe.borrow_mut() = probe;
        let mut out_shape = shape;
        *out_shape.last_mut().expect("input has a feature dimension") = self.ws.size()[0];
        out.reshape(out_shape)
    }
}

impl Module for WtaCrsLinear {
    /// Evaluation (no gradients needed): the plain linear map.
    fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.ws, Some(&self.bs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// Heavy-tailed rows: a few dominate GᵀX.
    fn heavy(n: i64, d: i64) -> Tensor {
        let norms = Tensor::randn([n, 1], (Kind::Double, Device::Cpu))
            .exp()
            .pow_tensor_scalar(2.0);
        Tensor::randn([n, d], (Kind::Double, Device::Cpu)) * norms
    }

    fn row_norms(t: &Tensor) -> Tensor {
        t.norm_scalaropt_dim(2, [1i64].as_slice(), false)
    }

    /// Relative bias of the mean of `draws` estimates of GᵀX, and the Monte-Carlo standard
    /// error of that mean (relative), from one plan.
    fn bias_and_se(plan: &Plan, g: &Tensor, x: &Tensor, draws: usize) -> (f64, f64) {
        let exact = g.tr().matmul(x);
        let (mut sum, mut sq) = (Tensor::zeros_like(&exact), Tensor::zeros_like(&exact));
        for _ in 0..draws {
            let sel = plan.draw();
            let est = (g.index_select(0, &sel.rows) * sel.scale.unsqueeze(1))
                .tr()
                .matmul(&x.index_select(0, &sel.rows));
            sq += est.square();
            sum += est;
        }
        summarise(&exact, &sum, &sq, draws)
    }

    /// (relative bias of the mean, relative Monte-Carlo standard error of the mean) from the
    /// sum and the sum of squares of `draws` estimates.
    fn summarise(exact: &Tensor, sum: &Tensor, sq: &Tensor, draws: usize) -> (f64, f64) {
        let mean = sum / draws as f64;
        let norm = exact.norm().double_value(&[]);
        let var = (sq / draws as f64 - mean.square())
            .sum(Kind::Double)
            .double_value(&[])
            .max(0.0);
        (
            (&mean - exact).norm().double_value(&[]) / norm,
            (var / draws as f64).sqrt() / norm,
        )
    }

    #[test]
    fn k_is_a_fraction_of_the_rows_but_at_least_ten() {
        assert_eq!(rows_kept(100, 0.3), 30);
        assert_eq!(rows_kept(1000, 0.1), 100);
        assert_eq!(rows_kept(64, 0.1), 10);
        assert_eq!(rows_kept(7, 0.3), 7);
        assert_eq!(rows_kept(10, 0.3), 10);
        assert_eq!(rows_kept(99, 0.3), 29);
    }

    #[test]
    fn top_set_follows_the_official_rule() {
        // q = (0.5, 0.2, 0.1, 0.1, 0.05, 0.05), k = 3: scores (1 − q_c)/(k − c) are 0.25 at
        // c = 1 and 0.3 at c = 2; 0.25 ≤ 1/3, so |C| = 1.
        let q = Tensor::from_slice(&[0.5, 0.2, 0.1, 0.1, 0.05, 0.05]);
        assert_eq!(top_set_size(&q, 3), 1);
        // Two dominant rows, k = 3: c = 1 scores 0.5/2 = 0.25, c = 2 scores 0.1/1 = 0.1: |C| = 2.
        let q = Tensor::from_slice(&[0.5, 0.4, 0.025, 0.025, 0.025, 0.025]);
        assert_eq!(top_set_size(&q, 3), 2);
        // Flat probabilities: every c > 0 is worse than plain CRS (1/k), so C is empty.
        let flat = Tensor::full([40], 1.0 / 40.0, (Kind::Double, Device::Cpu));
        assert_eq!(top_set_size(&flat, 10), 0);
    }

    #[test]
    fn samplers_are_unbiased_except_top_k_and_all_are_exact_at_k_n() {
        let _rng = crate::rng::serial();
        tch::manual_seed(3);
        let (g, x) = (heavy(64, 5), heavy(64, 4));
        let exact = g.tr().matmul(&x);
        let p = row_norms(&g) * row_norms(&x);
        for s in [
            Sampler::Uniform,
            Sampler::Crs,
            Sampler::WtaCrs,
            Sampler::TopK,
        ] {
            let sel = select(s, &p, 64);
            let est = (g.index_select(0, &sel.rows) * sel.scale.unsqueeze(1))
                .tr()
                .matmul(&x.index_select(0, &sel.rows));
            assert!(est.allclose(&exact, 1e-12, 1e-12, false), "{s:?} at k = N");
        }
        for s in [
            Sampler::Uniform,
            Sampler::Crs,
            Sampler::WtaCrs,
            Sampler::TopK,
        ] {
            let plan = Plan::new(s, &p, 16);
            if s == Sampler::WtaCrs {
                assert!(plan.top_size > 0, "heavy rows give a top set");
            }
            let (bias, se) = bias_and_se(&plan, &g, &x, 5000);
            if s == Sampler::TopK {
                assert!(bias > 0.01, "top-k is biased: {bias}");
            } else {
                assert!(
                    bias < 4.0 * se + 1e-9,
                    "{s:?}: relative bias {bias}, se {se}"
                );
            }
        }
    }

    #[test]
    fn wta_crs_is_unbiased_with_an_empty_top_set() {
        let _rng = crate::rng::serial();
        tch::manual_seed(5);
        // Nearly equal importances: the rule leaves C empty (plain CRS).
        let g = Tensor::randn([50, 3], (Kind::Double, Device::Cpu));
        let x = Tensor::randn([50, 4], (Kind::Double, Device::Cpu));
        let p = Tensor::rand([50], (Kind::Double, Device::Cpu)) * 0.2 + 1.0;
        let plan = Plan::new(Sampler::WtaCrs, &p, 12);
        assert_eq!(plan.top_size, 0);
        let (bias, se) = bias_and_se(&plan, &g, &x, 5000);
        assert!(bias < 4.0 * se, "relative bias {bias}, se {se}");
    }

    #[test]
    fn a_stale_zero_norm_does_not_exclude_a_row() {
        let q = probabilities(&Tensor::from_slice(&[0.0, 1.0, 3.0]));
        let v: Vec<f64> = Vec::try_from(&q).unwrap();
        assert!(v[0] > 0.0 && v[0] < 1e-6, "{v:?}");
        assert!((v.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let u: Vec<f64> = Vec::try_from(&probabilities(&Tensor::zeros(
            [4],
            (Kind::Double, Device::Cpu),
        )))
        .unwrap();
        assert_eq!(u, vec![0.25; 4]);
    }

    #[test]
    fn cache_returns_each_examples_norms_after_a_shuffled_epoch() {
        let _rng = crate::rng::serial();
        tch::manual_seed(6);
        let (examples, positions, batch) = (12i64, 3i64, 4i64);
        // The norm of (example e, position t) is 10e + t: known for every row.
        let truth = |ids: &Tensor| {
            (ids.unsqueeze(1).to_kind(Kind::Float) * 10.0
                + Tensor::arange(positions, (Kind::Float, Device::Cpu)).unsqueeze(0))
            .reshape([-1])
        };
        let mut cache = GradNormCache::new(examples, positions, Device::Cpu);
        let first = Tensor::randperm(examples, (Kind::Int64, Device::Cpu));
        for b in 0..examples / batch {
            let ids = first.narrow(0, b * batch, batch);
            let (_, seen) = cache.fetch(&ids);
            assert!(!bool::try_from(seen.any()).unwrap(), "first epoch: empty");
            cache.store(&ids, &truth(&ids));
        }
        let second = Tensor::randperm(examples, (Kind::Int64, Device::Cpu));
        assert!(!second.equal(&first));
        for b in 0..examples / batch {
            let ids = second.narrow(0, b * batch, batch);
            let (norms, seen) = cache.fetch(&ids);
            assert!(bool::try_from(seen.all()).unwrap());
            assert!(norms.reshape([-1]).equal(&truth(&ids)), "batch {b}");
        }
        // Mixed batch: unseen examples are weighed by ‖x‖ times the mean cached norm.
        let mut part = GradNormCache::new(4, 1, Device::Cpu);
        part.store(
            &Tensor::from_slice(&[0i64, 1]),
            &Tensor::from_slice(&[2.0f32, 4.0]),
        );
        let p = part.importance(
            &Tensor::ones([4], (Kind::Float, Device::Cpu)),
            &Tensor::from_slice(&[0i64, 1, 2, 3]),
        );
        assert_eq!(Vec::<f32>::try_from(&p).unwrap(), vec![2.0, 4.0, 3.0, 3.0]);
    }

    /// Mean over `draws` training steps of a layer's weight gradient, with its Monte-Carlo
    /// standard error, relative to the exact gradient.
    fn layer_bias(layer: &WtaCrsLinear, x: &Tensor, ids: &Tensor, draws: usize) -> (f64, f64) {
        let w = Tensor::randn([x.size()[0], 3], (Kind::Float, Device::Cpu));
        let grad = |out: &Tensor| {
            Tensor::run_backward(&[&(out * &w).sum(Kind::Float)], &[&layer.ws], false, false)
                .remove(0)
                .to_kind(Kind::Double)
        };
        let exact = grad(&layer.forward(x));
        let (mut sum, mut sq) = (Tensor::zeros_like(&exact), Tensor::zeros_like(&exact));
        for _ in 0..draws {
            let gw = grad(&layer.forward_train(x, Some(ids)));
            sq += gw.square();
            sum += gw;
        }
        summarise(&exact, &sum, &sq, draws)
    }

    #[test]
    fn layer_is_unbiased_in_the_first_epoch_and_with_a_filled_cache() {
        let _rng = crate::rng::serial();
        tch::manual_seed(7);
        let vs = nn::VarStore::new(Device::Cpu);
        let sampling = Sampling {
            sampler: Sampler::WtaCrs,
            k_fraction: 0.25,
            importance: Importance::Cached,
        };
        let layer = WtaCrsLinear::new(&(vs.root() / "a"), 6, 3, sampling);
        layer.set_cache(20, 4);
        // Heavy rows: 5 examples × 4 positions.
        let x = heavy(20, 6).to_kind(Kind::Float);
        let ids = Tensor::from_slice(&[3i64, 17, 0, 9, 11]);
        // First epoch: nothing cached (after_backward is not called, so it stays empty).
        let (bias, se) = layer_bias(&layer, &x, &ids, 1500);
        assert!(
            bias < 4.0 * se,
            "first epoch: relative bias {bias}, se {se}"
        );
        // A filled cache whose norms disagree with the true gradients: still unbiased.
        let out = layer.forward_train(&x, Some(&ids));
        (&out * Tensor::rand_like(&out)).sum(Kind::Float).backward();
        layer.after_backward();
        let (_, seen) = layer.cached_norms(&ids).unwrap();
        assert!(bool::try_from(seen.all()).unwrap());
        let (bias, se) = layer_bias(&layer, &x, &ids, 1500);
        assert!(bias < 4.0 * se, "cached: relative bias {bias}, se {se}");
    }

    #[test]
    fn layer_output_and_input_gradient_are_exact_weight_gradient_sampled() {
        let _rng = crate::rng::serial();
        tch::manual_seed(4);
        let vs = nn::VarStore::new(Device::Cpu);
        let sampling = Sampling {
            sampler: Sampler::WtaCrs,
            k_fraction: 0.25,
            importance: Importance::Cached,
        };
        let layer = WtaCrsLinear::new(&(vs.root() / "a"), 6, 3, sampling);
        layer.set_cache(16, 4);
        let x = Tensor::randn([8, 4, 6], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let ids = Tensor::arange_start(4, 12, (Kind::Int64, Device::Cpu));
        let out = layer.forward_train(&x, Some(&ids));
        assert_eq!(out.size(), vec![8, 4, 3]);
        assert!(out.allclose(&layer.forward(&x), 1e-6, 1e-6, false));
        let loss = out.square().sum(Kind::Float);
        let gx = Tensor::run_backward(&[&loss], &[&x], true, false);
        let exact_gx = (out.detach() * 2.0).matmul(&layer.ws.detach());
        assert!(gx[0].allclose(&exact_gx, 1e-5, 1e-5, false));
        assert_eq!(layer.stored_rows.get(), 10, "max(⌊32·0.25⌋, 10)");
        assert_eq!(layer.stored_bytes.get(), 10 * 6 * 4 + 10 * 8);
        loss.backward();
        layer.after_backward();
        let (norms, seen) = layer.cached_norms(&ids).unwrap();
        assert!(bool::try_from(seen.all()).unwrap());
        let g = out.detach() * 2.0;
        let want = g.norm_scalaropt_dim(2, [2i64].as_slice(), false);
        assert!(norms.allclose(&want, 1e-5, 1e-5, false));
    }
}
