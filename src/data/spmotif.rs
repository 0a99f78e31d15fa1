//! Spurious-Motif graphs (Wu, Wang, Zhang, He, Chua 2022, "Discovering invariant rationales for
//! graph neural networks" (DIR); generator `spmotif_gen/` of Wuyxin/DIR-GNN, re-implemented).
//!
//! A graph is a base graph with one motif attached by a single edge from the motif's node 0 to
//! a uniformly chosen base node. The label is the motif: 0 cycle (a 5-cycle), 1 house (a square
//! with a roof), 2 crane (a 5-cycle with the two chords from node 0). The base is the spurious
//! part: 0 tree (balanced r-ary tree, r ∈ {2, 3} uniformly, height h), 1 ladder (`ladder_graph(w)`,
//! 2w nodes), 2 wheel (`wheel_graph(w)`, a hub and a (w−1)-cycle). In the biased training split
//! the base type equals the label with probability b and each other type has (1 − b)/2; the
//! validation and test splits draw the base uniformly. Training and validation graphs have
//! small bases (h ∈ {0, 1, 2}, ladder w ∈ 8..=11, wheel w ∈ 15..=19); test graphs large ones
//! (h ∈ {3, 4, 5}, w ∈ 30..=49, w ∈ 60..=79), so the test split shifts both the spurious
//! base and the graph size.
//!
//! Node features: the generator gives every node the constant feature 1 (`ConstFeatureGen`);
//! DIR's loader (`datasets/spmotif_dataset.py`) overwrites them with U(0, 1)⁴ noise. Both are
//! offered ([`Features`]). The edge lists here are undirected (both directions are used by
//! the GNN); DIR's pickles store each edge once.

use super::split::HostRng;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

pub const CLASSES: usize = 3;
pub const MOTIF_NAMES: [&str; 3] = ["cycle", "house", "crane"];
pub const BASE_NAMES: [&str; 3] = ["tree", "ladder", "wheel"];
/// Nodes of every motif.
pub const MOTIF_NODES: usize = 5;

/// One undirected graph: node count, edges (each once, i < j not required), label and base.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub nodes: usize,
    pub edges: Vec<(usize, usize)>,
    /// The motif, 0 cycle, 1 house, 2 crane.
    pub label: usize,
    /// The base type, 0 tree, 1 ladder, 2 wheel.
    pub base: usize,
}

/// Node features of the generated graphs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Features {
    /// The generator's constant 1 per node (one feature).
    Constant,
    /// DIR's loader: U(0, 1)⁴ per node, drawn once per graph.
    Random,
}

impl Features {
    pub fn dim(self) -> i64 {
        match self {
            Features::Constant => 1,
            Features::Random => 4,
        }
    }
}

/// Edges of a motif on nodes 0..5 (DIR's `dircycle`, `house`, `varcycle`).
pub fn motif_edges(label: usize) -> Vec<(usize, usize)> {
    let cycle = vec![(0, 1), (1, 2), (3, 2), (0, 4), (4, 3)];
    match label {
        0 => cycle,
        1 => vec![(1, 2), (4, 3), (3, 2), (4, 1), (0, 1), (0, 4)],
        _ => {
            let mut e = cycle;
            e.extend([(0, 2), (0, 3)]);
            e
        }
    }
}

/// networkx `balanced_tree(r, h)`: breadth-first numbering, node i's parent is (i − 1)/r.
pub fn tree(r: usize, h: usize) -> (usize, Vec<(usize, usize)>) {
    let n: usize = (0..=h).map(|k| r.pow(k as u32)).sum();
    (n, (1..n).map(|i| ((i - 1) / r, i)).collect())
}

/// networkx `ladder_graph(w)`: two paths 0..w and w..2w with rungs (i, w + i).
pub fn ladder(w: usize) -> (usize, Vec<(usize, usize)>) {
    let mut e = vec![];
    for i in 0..w {
        if i + 1 < w {
            e.push((i, i + 1));
            e.push((w + i, w + i + 1));
        }
        e.push((i, w + i));
    }
    (2 * w, e)
}

/// networkx `wheel_graph(w)`: hub 0 joined to the cycle 1..w.
pub fn wheel(w: usize) -> (usize, Vec<(usize, usize)>) {
    let mut e: Vec<(usize, usize)> = (1..w).map(|i| (0, i)).collect();
    for i in 1..w.saturating_sub(1) {
        e.push((i, i + 1));
    }
    if w > 3 {
        e.push((w - 1, 1));
    }
    (w, e)
}

/// Which base sizes: the training/validation ranges or the test ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Small,
    Large,
}

fn pick(rng: &mut HostRng, lo: usize, hi_inclusive: usize) -> usize {
    lo + rng.below(hi_inclusive - lo + 1)
}

/// One graph of a given motif and base type.
pub fn graph(label: usize, base: usize, size: Size, rng: &mut HostRng) -> Graph {
    let (n, mut edges) = match (base, size) {
        (0, s) => {
            let h = if s == Size::Small {
                pick(rng, 0, 2)
            } else {
                pick(rng, 3, 5)
            };
            tree(pick(rng, 2, 3), h)
        }
        (1, Size::Small) => ladder(pick(rng, 8, 11)),
        (1, Size::Large) => ladder(pick(rng, 30, 49)),
        (_, Size::Small) => wheel(pick(rng, 15, 19)),
        (_, Size::Large) => wheel(pick(rng, 60, 79)),
    };
    let anchor = rng.below(n);
    edges.extend(motif_edges(label).iter().map(|&(a, b)| (n + a, n + b)));
    edges.push((n, anchor));
    Graph {
        nodes: n + MOTIF_NODES,
        edges,
        label,
        base,
    }
}

fn uniform(rng: &mut HostRng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A split: `per_class` graphs of each motif, in class order. With `bias = Some(b)` the base
/// type equals the label with probability b (each other type (1 − b)/2, DIR's training split);
/// with `None` it is uniform (validation and test).
pub fn split(per_class: usize, bias: Option<f64>, size: Size, seed: u64) -> Result<Vec<Graph>> {
    if let Some(b) = bias {
        if !(0.0..=1.0).contains(&b) {
            bail!("spurious-motif bias must be in [0, 1], got {b}");
        }
    }
    let mut rng = HostRng::new(seed);
    let mut out = Vec::with_capacity(per_class * CLASSES);
    for label in 0..CLASSES {
        for _ in 0..per_class {
            let base = match bias {
                None => rng.below(CLASSES),
                Some(b) => {
                    let u = uniform(&mut rng);
                    if u < b {
                        label
                    } else if u < b + (1.0 - b) / 2.0 {
                        (label + 1) % CLASSES
                    } else {
                        (label + 2) % CLASSES
                    }
                }
            };
            out.push(graph(label, base, size, &mut rng));
        }
    }
    Ok(out)
}

/// Node features for each graph, [nodes, dim] each (constant or DIR's U(0, 1)⁴).
pub fn node_features(graphs: &[Graph], features: Features, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = HostRng::new(seed ^ 0xFEA7);
    graphs
        .iter()
        .map(|g| match features {
            Features::Constant => vec![1.0; g.nodes],
            Features::Random => (0..g.nodes * 4).map(|_| uniform(&mut rng) as f32).collect(),
        })
        .collect()
}

/// Graphs padded to a common node count: symmetric adjacency [n, N, N], node features
/// [n, N, F] (zero on padding), node mask [n, N], labels and base types [n] (Int64).
pub struct Dense {
    pub adj: Tensor,
    pub x: Tensor,
    pub mask: Tensor,
    pub y: Tensor,
    pub base: Tensor,
}

impl Dense {
    pub fn new(graphs: &[Graph], feats: &[Vec<f32>], fdim: i64, device: Device) -> Dense {
        let n = graphs.len();
        let nmax = graphs.iter().map(|g| g.nodes).max().unwrap_or(1);
        let f = fdim as usize;
        let mut adj = vec![0f32; n * nmax * nmax];
        let mut x = vec![0f32; n * nmax * f];
        let mut mask = vec![0f32; n * nmax];
        for (k, g) in graphs.iter().enumerate() {
            for &(a, b) in &g.edges {
                adj[k * nmax * nmax + a * nmax + b] = 1.0;
                adj[k * nmax * nmax + b * nmax + a] = 1.0;
            }
            for i in 0..g.nodes {
                mask[k * nmax + i] = 1.0;
                for c in 0..f {
                    x[(k * nmax + i) * f + c] = feats[k][i * f + c];
                }
            }
        }
        let (n, nm) = (n as i64, nmax as i64);
        Dense {
            adj: Tensor::from_slice(&adj).view([n, nm, nm]).to_device(device),
            x: Tensor::from_slice(&x).view([n, nm, fdim]).to_device(device),
            mask: Tensor::from_slice(&mask).view([n, nm]).to_device(device),
            y: labels(graphs, |g| g.label).to_device(device),
            base: labels(graphs, |g| g.base).to_device(device),
        }
    }

    /// The rows `idx` (Int64 on the same device).
    pub fn rows(&self, idx: &Tensor) -> Dense {
        Dense {
            adj: self.adj.index_select(0, idx),
            x: self.x.index_select(0, idx),
            mask: self.mask.index_select(0, idx),
            y: self.y.index_select(0, idx),
            base: self.base.index_select(0, idx),
        }
    }
}

fn labels(graphs: &[Graph], f: impl Fn(&Graph) -> usize) -> Tensor {
    let v: Vec<i64> = graphs.iter().map(|g| f(g) as i64).collect();
    Tensor::from_slice(&v)
}

/// Graphs concatenated without padding: node features [V, F], directed edge lists (both
/// directions) `src`, `dst` [E], the graph of each node [V], node counts [n] (Float), labels
/// and base types [n].
pub struct Packed {
    pub x: Tensor,
    pub src: Tensor,
    pub dst: Tensor,
    pub graph_of: Tensor,
    pub counts: Tensor,
    pub y: Tensor,
    pub base: Tensor,
    pub graphs: i64,
}

impl Packed {
    pub fn new(graphs: &[Graph], feats: &[Vec<f32>], device: Device) -> Packed {
        let (mut x, mut src, mut dst, mut of, mut counts) =
            (vec![], vec![], vec![], vec![], vec![]);
        let mut offset = 0i64;
        for (k, g) in graphs.iter().enumerate() {
            x.extend_from_slice(&feats[k]);
            for &(a, b) in &g.edges {
                let (a, b) = (offset + a as i64, offset + b as i64);
                src.extend([a, b]);
                dst.extend([b, a]);
            }
            of.extend(std::iter::repeat_n(k as i64, g.nodes));
            counts.push(g.nodes as f32);
            offset += g.nodes as i64;
        }
        let v = offset;
        let fdim = if v > 0 { x.len() as i64 / v } else { 1 };
        Packed {
            x: Tensor::from_slice(&x).view([v, fdim]).to_device(device),
            src: Tensor::from_slice(&src).to_device(device),
            dst: Tensor::from_slice(&dst).to_device(device),
            graph_of: Tensor::from_slice(&of).to_device(device),
            counts: Tensor::from_slice(&counts).to_device(device),
            y: labels(graphs, |g| g.label).to_device(device),
            base: labels(graphs, |g| g.base).to_device(device),
            graphs: graphs.len() as i64,
        }
    }
}

/// Mean node and edge counts of a split (for logs and the README).
pub fn mean_size(graphs: &[Graph]) -> (f64, f64) {
    let n = graphs.len().max(1) as f64;
    (
        graphs.iter().map(|g| g.nodes as f64).sum::<f64>() / n,
        graphs.iter().map(|g| g.edges.len() as f64).sum::<f64>() / n,
    )
}

/// Fraction of graphs whose base type equals the label.
pub fn matched_fraction(graphs: &[Graph]) -> f64 {
    graphs.iter().filter(|g| g.base == g.label).count() as f64 / graphs.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn degrees(n: usize, e: &[(usize, usize)]) -> Vec<usize> {
        let mut d = vec![0; n];
        for &(a, b) in e {
            d[a] += 1;
            d[b] += 1;
        }
        d
    }

    #[test]
    fn bases_and_motifs_have_the_networkx_shapes() {
        // balanced_tree(3, 2): 13 nodes, 12 edges; ladder(8): 16 nodes, 7+7+8 edges;
        // wheel(15): 15 nodes, hub degree 14, rim degree 3.
        let (n, e) = tree(3, 2);
        assert_eq!((n, e.len()), (13, 12));
        assert_eq!(tree(2, 0).0, 1);
        let (n, e) = ladder(8);
        assert_eq!((n, e.len()), (16, 22));
        assert!(degrees(n, &e).iter().all(|&d| d == 2 || d == 3));
        let (n, e) = wheel(15);
        let d = degrees(n, &e);
        assert_eq!((n, e.len(), d[0]), (15, 28, 14));
        assert!(d[1..].iter().all(|&x| x == 3));
        // Motifs: cycle 5 edges all degree 2; house 6; crane 7 with node 0 of degree 4.
        assert!(degrees(5, &motif_edges(0)).iter().all(|&x| x == 2));
        assert_eq!(degrees(5, &motif_edges(1)), vec![2, 3, 2, 2, 3]);
        assert_eq!(degrees(5, &motif_edges(2)), vec![4, 2, 3, 3, 2]);
    }

    #[test]
    fn labels_are_balanced_and_base_types_follow_the_bias() {
        let b = 0.7;
        let g = split(4000, Some(b), Size::Small, 11).unwrap();
        assert_eq!(g.len(), 12000);
        for label in 0..CLASSES {
            let mine: Vec<&Graph> = g.iter().filter(|x| x.label == label).collect();
            assert_eq!(mine.len(), 4000);
            for base in 0..CLASSES {
                let f = mine.iter().filter(|x| x.base == base).count() as f64 / 4000.0;
                let want = if base == label { b } else { (1.0 - b) / 2.0 };
                // 4 binomial standard errors at n = 4000.
                let se = (want * (1.0 - want) / 4000.0).sqrt();
                assert!((f - want).abs() < 4.0 * se, "{label} {base}: {f} vs {want}");
            }
        }
        let u = split(3000, None, Size::Large, 12).unwrap();
        for base in 0..CLASSES {
            let f = u.iter().filter(|x| x.base == base).count() as f64 / 9000.0;
            assert!(
                (f - 1.0 / 3.0).abs() < 4.0 * (2.0f64 / 9.0 / 9000.0).sqrt(),
                "{f}"
            );
        }
        // The motif is attached by one edge: edges = base + motif + 1; sizes in range.
        for x in g.iter().take(200).chain(u.iter().take(200)) {
            assert_eq!(
                x.edges
                    .iter()
                    .filter(|e| (e.0 >= x.nodes - 5) != (e.1 >= x.nodes - 5))
                    .count(),
                1
            );
        }
        let (small, _) = mean_size(&g);
        let (large, _) = mean_size(&u);
        assert!(
            small > 15.0 && small < 25.0 && large > 60.0,
            "{small} {large}"
        );
        assert!(split(1, Some(1.5), Size::Small, 0).is_err());
    }

    #[test]
    fn dense_and_packed_layouts_hold_the_same_graphs() {
        let g = split(2, Some(0.5), Size::Small, 3).unwrap();
        let f = node_features(&g, Features::Constant, 3);
        let d = Dense::new(&g, &f, 1, Device::Cpu);
        let p = Packed::new(&g, &f, Device::Cpu);
        let edges: usize = g.iter().map(|x| x.edges.len()).sum();
        assert_eq!(
            d.adj.sum(Kind::Double).double_value(&[]) as usize,
            2 * edges
        );
        assert_eq!(p.src.size()[0] as usize, 2 * edges);
        let nodes: usize = g.iter().map(|x| x.nodes).sum();
        assert_eq!(d.mask.sum(Kind::Double).double_value(&[]) as usize, nodes);
        assert_eq!(p.x.size()[0] as usize, nodes);
        assert!(d.adj.allclose(&d.adj.transpose(1, 2), 0.0, 0.0, false));
    }
}
