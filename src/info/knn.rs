//! Exact k-nearest-neighbour search for the k-NN estimators: a k-d tree over f64 rows on the
//! CPU (queries spread over all cores), and chunked `cdist` + `topk` on an accelerator. Both
//! compute distances the same way (max-norm: max |a − b|; Euclidean: no matrix-product
//! shortcut), so they agree to the last bit on max-norm and to rounding on Euclidean.
//!
//! Queries are always "every indexed point against all the others": the point itself is never
//! its own neighbour, which is what the estimators need.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// The norm distances are measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// Chebyshev, max_j |a_j − b_j| (KSG's choice: marginal balls are intervals).
    Max,
    Euclidean,
}

/// Points indexed for neighbour queries, on the CPU as a tree or on a device as a matrix.
pub enum Index {
    Tree(KdTree),
    Brute { x: Tensor, metric: Metric },
}

impl Index {
    /// A k-d tree for CPU tensors, brute force on the tensor's device otherwise.
    pub fn new(x: &Tensor, metric: Metric) -> Index {
        match x.device() {
            Device::Cpu => Index::Tree(KdTree::new(x, metric)),
            _ => Index::brute(x, metric),
        }
    }

    /// Brute-force search on `x`'s device (used on accelerators, and to test the tree).
    pub fn brute(x: &Tensor, metric: Metric) -> Index {
        Index::Brute {
            x: x.to_kind(Kind::Double).contiguous(),
            metric,
        }
    }

    /// Distances from each point to its 1st..k-th nearest other point, row-major [N, k],
    /// ascending in each row.
    pub fn knn_distances(&self, k: usize) -> Vec<f64> {
        match self {
            Index::Tree(t) => t.knn_distances(k),
            Index::Brute { x, metric } => brute_knn(x, *metric, k),
        }
    }

    /// For each point i, how many other points lie strictly closer than `radius[i]`.
    pub fn count_within(&self, radius: &[f64]) -> Vec<u32> {
        match self {
            Index::Tree(t) => t.count_within(radius),
            Index::Brute { x, metric } => brute_count(x, *metric, radius),
        }
    }
}

/// Rows per chunk so that one chunk's distance matrix stays near 2^25 values (256 MiB in f64).
fn chunk_rows(n: i64) -> i64 {
    ((1i64 << 25) / n.max(1)).clamp(1, n.max(1))
}

fn pairwise(a: &Tensor, b: &Tensor, metric: Metric) -> Tensor {
    match metric {
        Metric::Max => Tensor::cdist(a, b, f64::INFINITY, None::<i64>),
        // compute_mode 2: direct differences, no |a|²+|b|²−2ab shortcut (exact small distances).
        Metric::Euclidean => Tensor::cdist(a, b, 2.0, Some(2)),
    }
}

/// Applies `f` to each chunk of rows' distances to all points, with self-distances set to +∞.
fn for_each_chunk(x: &Tensor, metric: Metric, mut f: impl FnMut(i64, Tensor)) {
    let n = x.size()[0];
    let step = chunk_rows(n);
    let mut start = 0;
    while start < n {
        let len = step.min(n - start);
        let rows = x.narrow(0, start, len);
        let mut d = pairwise(&rows, x, metric);
        let own = Tensor::arange_start(start, start + len, (Kind::Int64, x.device()));
        let _ = d.scatter_value_(1, &own.unsqueeze(1), f64::INFINITY);
        f(start, d);
        start += len;
    }
}

fn brute_knn(x: &Tensor, metric: Metric, k: usize) -> Vec<f64> {
    let mut parts = vec![];
    tch::no_grad(|| {
        for_each_chunk(x, metric, |_, d| {
            parts.push(d.topk(k as i64, 1, false, true).0);
        })
    });
    if parts.is_empty() {
        return vec![];
    }
    Vec::try_from(Tensor::cat(&parts, 0).to_device(Device::Cpu).flatten(0, -1)).unwrap_or_default()
}

fn brute_count(x: &Tensor, metric: Metric, radius: &[f64]) -> Vec<u32> {
    let r = Tensor::from_slice(radius).to_device(x.device());
    let mut parts = vec![];
    tch::no_grad(|| {
        for_each_chunk(x, metric, |start, d| {
            let rr = r.narrow(0, start, d.size()[0]).unsqueeze(1);
            parts.push(d.lt_tensor(&rr).sum_dim_intlist(1, false, Kind::Int64));
        })
    });
    if parts.is_empty() {
        return vec![];
    }
    let v: Vec<i64> =
        Vec::try_from(Tensor::cat(&parts, 0).to_device(Device::Cpu)).unwrap_or_default();
    v.into_iter().map(|c| c as u32).collect()
}

/// Leaf size: small enough to prune well, large enough that the scan is a tight loop.
const LEAF: usize = 16;
const NONE: u32 = u32::MAX;

struct Node {
    start: usize,
    end: usize,
    left: u32,
    right: u32,
}

/// A k-d tree over rows (split on the widest dimension at the median), with a bounding box
/// per node for pruning. Internally distances are "reduced": max |Δ| for max-norm, Σ Δ² for
/// Euclidean; both are monotone in the true distance.
pub struct KdTree {
    n: usize,
    d: usize,
    metric: Metric,
    /// Rows in tree order.
    pts: Vec<f64>,
    /// Original row → tree position.
    inv: Vec<usize>,
    nodes: Vec<Node>,
    /// Bounding boxes, `d` values per node.
    lo: Vec<f64>,
    hi: Vec<f64>,
}

impl KdTree {
    pub fn new(x: &Tensor, metric: Metric) -> KdTree {
        let (n, d) = (x.size()[0] as usize, x.size()[1] as usize);
        let data: Vec<f64> =
            Vec::try_from(x.to_kind(Kind::Double).contiguous().flatten(0, -1)).unwrap_or_default();
        let mut order: Vec<usize> = (0..n).collect();
        let mut t = KdTree {
            n,
            d,
            metric,
            pts: vec![],
            inv: vec![0; n],
            nodes: vec![],
            lo: vec![],
            hi: vec![],
        };
        if n > 0 {
            t.build(&data, &mut order, 0, n);
        }
        t.pts = order
            .iter()
            .flat_map(|&i| data[i * d..(i + 1) * d].iter().copied())
            .collect();
        for (pos, &i) in order.iter().enumerate() {
            t.inv[i] = pos;
        }
        t
    }

    fn build(&mut self, data: &[f64], order: &mut [usize], start: usize, end: usize) -> u32 {
        let d = self.d;
        let (mut lo, mut hi) = (vec![f64::INFINITY; d], vec![f64::NEG_INFINITY; d]);
        for &i in &order[start..end] {
            for j in 0..d {
                lo[j] = lo[j].min(data[i * d + j]);
                hi[j] = hi[j].max(data[i * d + j]);
            }
        }
        let id = self.nodes.len() as u32;
        self.nodes.push(Node {
            start,
            end,
            left: NONE,
            right: NONE,
        });
        let split = (0..d).max_by(|&a, &b| (hi[a] - lo[a]).total_cmp(&(hi[b] - lo[b])));
        self.lo.extend(lo);
        self.hi.extend(hi);
        if end - start > LEAF {
            let dim = split.unwrap_or(0);
            let mid = (start + end) / 2;
            order[start..end].select_nth_unstable_by(mid - start, |&a, &b| {
                data[a * d + dim].total_cmp(&data[b * d + dim])
            });
            let left = self.build(data, order, start, mid);
            let right = self.build(data, order, mid, end);
            self.nodes[id as usize].left = left;
            self.nodes[id as usize].right = right;
        }
        id
    }

    fn to_distance(&self, r: f64) -> f64 {
        match self.metric {
            Metric::Max => r,
            Metric::Euclidean => r.sqrt(),
        }
    }

    fn to_reduced(&self, r: f64) -> f64 {
        match self.metric {
            Metric::Max => r,
            Metric::Euclidean => r * r,
        }
    }

    /// Distances to the 1st..k-th nearest other point, [N, k] row-major (original row order).
    pub fn knn_distances(&self, k: usize) -> Vec<f64> {
        let mut out = vec![0.0; self.n * k];
        if k == 0 {
            return out;
        }
        let mut rows: Vec<(usize, &mut [f64])> = out
            .chunks_mut(k)
            .enumerate()
            .map(|(i, c)| (self.inv[i], c))
            .collect();
        // Queries in tree order: consecutive queries walk the same nodes (warm caches).
        rows.sort_unstable_by_key(|r| r.0);
        specialise!(self, Query::knn_all, rows);
        for b in out.iter_mut() {
            *b = self.to_distance(*b);
        }
        out
    }

    /// For each point, how many other points lie strictly within `radius`.
    pub fn count_within(&self, radius: &[f64]) -> Vec<u32> {
        assert_eq!(radius.len(), self.n, "one radius per indexed point");
        let mut out = vec![0u32; self.n];
        let mut rows: Vec<(usize, f64, &mut u32)> = out
            .iter_mut()
            .enumerate()
            .map(|(i, c)| (self.inv[i], radius[i], c))
            .collect();
        rows.sort_unstable_by_key(|r| r.0);
        specialise!(self, Query::count_all, rows);
        out
    }
}

/// Dispatches to a query compiled for the tree's dimension (1..=8) and metric, so the
/// per-coordinate loops unroll; other dimensions use the generic loop (D = 0).
macro_rules! specialise {
    ($tree:expr, $f:path, $arg:expr) => {{
        let t = $tree;
        macro_rules! go {
            ($d:literal) => {
                match t.metric {
                    Metric::Max => $f(&Query::<$d, true> { t }, $arg),
                    Metric::Euclidean => $f(&Query::<$d, false> { t }, $arg),
                }
            };
        }
        match t.d {
            1 => go!(1),
            2 => go!(2),
            3 => go!(3),
            4 => go!(4),
            5 => go!(5),
            6 => go!(6),
            7 => go!(7),
            8 => go!(8),
            _ => go!(0),
        }
    }};
}
use specialise;

/// Tree queries for dimension `D` (0 = read it from the tree) under the max-norm (`MAX`) or
/// the squared Euclidean distance.
struct Query<'a, const D: usize, const MAX: bool> {
    t: &'a KdTree,
}

impl<const D: usize, const MAX: bool> Query<'_, D, MAX> {
    #[inline(always)]
    fn d(&self) -> usize {
        if D == 0 {
            self.t.d
        } else {
            D
        }
    }

    #[inline(always)]
    fn point(&self, pos: usize) -> &[f64] {
        let d = self.d();
        &self.t.pts[pos * d..pos * d + d]
    }

    /// Reduced distance. Branch-free over the coordinates: in these low dimensions a
    /// straight (vectorised) loop beats stopping early.
    #[inline(always)]
    fn reduced(&self, a: &[f64], b: &[f64]) -> f64 {
        #[inline(always)]
        fn fold<const MAX: bool>(a: &[f64], b: &[f64]) -> f64 {
            a.iter().zip(b).fold(0.0f64, |acc, (x, y)| {
                let g = (x - y).abs();
                if MAX {
                    acc.max(g)
                } else {
                    acc + g * g
                }
            })
        }
        if D > 0 {
            // Fixed-size views: no bounds checks, the loop unrolls.
            let (a, b): (&[f64; D], &[f64; D]) = (a.try_into().unwrap(), b.try_into().unwrap());
            fold::<MAX>(a, b)
        } else {
            fold::<MAX>(a, b)
        }
    }

    /// Reduced distances from `q` to the nearest and the farthest point of a node's box.
    #[inline(always)]
    fn box_near_far(&self, node: usize, q: &[f64]) -> (f64, f64) {
        #[inline(always)]
        fn fold<const MAX: bool>(lo: &[f64], hi: &[f64], q: &[f64]) -> (f64, f64) {
            let (mut near, mut far) = (0.0f64, 0.0f64);
            for ((l, h), x) in lo.iter().zip(hi).zip(q) {
                let (a, b) = (l - x, x - h);
                let gn = a.max(b).max(0.0);
                let gf = (-a).max(-b);
                if MAX {
                    near = near.max(gn);
                    far = far.max(gf);
                } else {
                    near += gn * gn;
                    far += gf * gf;
                }
            }
            (near, far)
        }
        let d = self.d();
        let (lo, hi) = (
            &self.t.lo[node * d..node * d + d],
            &self.t.hi[node * d..node * d + d],
        );
        if D > 0 {
            let lo: &[f64; D] = lo.try_into().unwrap();
            let hi: &[f64; D] = hi.try_into().unwrap();
            let q: &[f64; D] = q.try_into().unwrap();
            fold::<MAX>(lo, hi, q)
        } else {
            fold::<MAX>(lo, hi, q)
        }
    }

    fn knn_all(&self, rows: Vec<(usize, &mut [f64])>) {
        parallel(rows, |(pos, best)| {
            best.fill(f64::INFINITY);
            let q = self.point(pos);
            let (near, _) = self.box_near_far(0, q);
            self.knn_visit(0, near, pos, q, best);
        });
    }

    /// Keeps `best` (ascending, length k) the k smallest reduced distances seen.
    fn knn_visit(&self, node: usize, near: f64, own: usize, q: &[f64], best: &mut [f64]) {
        let k = best.len();
        if near >= best[k - 1] {
            return;
        }
        let nd = &self.t.nodes[node];
        if nd.left == NONE {
            for pos in nd.start..nd.end {
                let dist = self.reduced(q, self.point(pos));
                if dist < best[k - 1] && pos != own {
                    let mut j = k - 1;
                    while j > 0 && best[j - 1] > dist {
                        best[j] = best[j - 1];
                        j -= 1;
                    }
                    best[j] = dist;
                }
            }
            return;
        }
        let (l, r) = (nd.left as usize, nd.right as usize);
        let (dl, dr) = (self.box_near_far(l, q).0, self.box_near_far(r, q).0);
        if dl <= dr {
            self.knn_visit(l, dl, own, q, best);
            self.knn_visit(r, dr, own, q, best);
        } else {
            self.knn_visit(r, dr, own, q, best);
            self.knn_visit(l, dl, own, q, best);
        }
    }

    fn count_all(&self, rows: Vec<(usize, f64, &mut u32)>) {
        parallel(rows, |(pos, radius, c)| {
            let r = self.t.to_reduced(radius);
            let all = self.count_visit(0, self.point(pos), r);
            // The point itself (distance 0) is inside any positive radius.
            *c = all - u32::from(radius > 0.0);
        });
    }

    fn count_visit(&self, node: usize, q: &[f64], r: f64) -> u32 {
        let (near, far) = self.box_near_far(node, q);
        if near >= r {
            return 0;
        }
        let nd = &self.t.nodes[node];
        if far < r {
            return (nd.end - nd.start) as u32;
        }
        if nd.left == NONE {
            return (nd.start..nd.end)
                .filter(|&pos| self.reduced(q, self.point(pos)) < r)
                .count() as u32;
        }
        self.count_visit(nd.left as usize, q, r) + self.count_visit(nd.right as usize, q, r)
    }
}

/// Threads for tree queries: `STOCHLAB_THREADS` when set (e.g. 1 per job when a sweep runs
/// many jobs on one machine), otherwise every available core.
pub fn threads() -> usize {
    std::env::var("STOCHLAB_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Runs `f` on every item, the items split evenly over `threads()`.
fn parallel<T: Send>(items: Vec<T>, f: impl Fn(T) + Sync) {
    let threads = threads().min(items.len().div_ceil(256).max(1));
    if threads <= 1 {
        items.into_iter().for_each(f);
        return;
    }
    let per = items.len().div_ceil(threads);
    let mut items = items;
    let mut chunks = vec![];
    while !items.is_empty() {
        let rest = items.split_off(per.min(items.len()));
        chunks.push(std::mem::replace(&mut items, rest));
    }
    std::thread::scope(|s| {
        for chunk in chunks {
            let f = &f;
            s.spawn(move || chunk.into_iter().for_each(f));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: i64, d: i64) -> Tensor {
        let _rng = crate::rng::serial();
        tch::manual_seed(7);
        // Heavy tails and a discrete column: uneven cells and many equal coordinates.
        let x = Tensor::randn([n, d], (Kind::Double, Device::Cpu));
        let t = &x * &x * &x;
        t.narrow(1, 0, 1).copy_(&(x.narrow(1, 0, 1) * 3.0).round());
        t
    }

    #[test]
    fn tree_matches_brute_force() {
        for (n, d) in [(1, 1), (2, 1), (17, 1), (700, 1), (900, 3), (500, 6)] {
            let x = sample(n, d);
            for metric in [Metric::Max, Metric::Euclidean] {
                let (tree, brute) = (Index::new(&x, metric), Index::brute(&x, metric));
                let k = 3.min(n as usize - 1).max(1);
                if n > 1 {
                    let (a, b) = (tree.knn_distances(k), brute.knn_distances(k));
                    for (p, q) in a.iter().zip(&b) {
                        assert!(
                            (p - q).abs() <= 1e-12 * q.abs().max(1.0),
                            "{n}x{d} {metric:?}: {p} vs {q}"
                        );
                    }
                    if metric == Metric::Max {
                        assert_eq!(a, b, "max-norm distances are exact");
                    }
                }
                let radius: Vec<f64> = (0..n).map(|i| (i % 5) as f64 * 0.4).collect();
                assert_eq!(
                    tree.count_within(&radius),
                    brute.count_within(&radius),
                    "{n}x{d} {metric:?}"
                );
            }
        }
    }

    #[test]
    fn neighbours_on_a_line() {
        let x = Tensor::from_slice(&[0.0f64, 1.0, 3.0, 7.0]).unsqueeze(1);
        let t = Index::new(&x, Metric::Euclidean);
        assert_eq!(
            t.knn_distances(2),
            vec![1.0, 3.0, 1.0, 2.0, 2.0, 3.0, 4.0, 6.0]
        );
        // Strictly inside: the point at exactly distance 2 from 3.0 (1.0) is not counted.
        assert_eq!(t.count_within(&[1.5, 1.0, 2.0, 4.5]), vec![1, 0, 0, 1]);
    }
}
