//! Set attention (Lee et al. 2019, Set Transformer): the multihead attention block
//! MAB(Q, S) = H + relu(W·H + b), H = Q + Multihead(Q, S, S), and the induced set attention
//! block ISAB(X) = MAB(X, MAB(I, X)) with m learned inducing points I, which costs O(n·m)
//! instead of O(n²). `Isab::forward_queries` lets another set (e.g. noise tokens) ask the
//! question instead of X itself: the output is permutation invariant in X and equivariant in
//! the queries, which is what an exchangeable generator of set elements needs (MPNP).
//! Sets are [batch, elements, dim].

use tch::nn::{self, Module};
use tch::Tensor;

#[derive(Debug)]
pub struct Mab {
    q: nn::Linear,
    k: nn::Linear,
    v: nn::Linear,
    o: nn::Linear,
    heads: i64,
}

impl Mab {
    pub fn new(p: &nn::Path, dim: i64, heads: i64) -> Self {
        assert!(
            dim % heads == 0,
            "set attention: dim {dim} not divisible by {heads} heads"
        );
        let l = |n: &str| nn::linear(p / n, dim, dim, Default::default());
        Mab {
            q: l("q"),
            k: l("k"),
            v: l("v"),
            o: l("o"),
            heads,
        }
    }

    /// Multihead(Q, S, S) with `heads` heads of dim/heads each.
    pub fn attention(&self, q: &Tensor, s: &Tensor) -> Tensor {
        let (b, nq, d) = q
            .size3()
            .expect("set attention: queries are [batch, n, dim]");
        let ns = s.size()[1];
        let h = self.heads;
        let split = |t: Tensor, n: i64| t.view([b, n, h, d / h]).transpose(1, 2);
        let (qh, kh, vh) = (
            split(q.apply(&self.q), nq),
            split(s.apply(&self.k), ns),
            split(s.apply(&self.v), ns),
        );
        let w = (qh.matmul(&kh.transpose(-2, -1)) / ((d / h) as f64).sqrt()).softmax(-1, q.kind());
        w.matmul(&vh).transpose(1, 2).contiguous().view([b, nq, d])
    }

    pub fn forward(&self, q: &Tensor, s: &Tensor) -> Tensor {
        let h = q + self.attention(q, s);
        &h + self.o.forward(&h).relu()
    }
}

#[derive(Debug)]
pub struct Isab {
    inducing: Tensor,
    to_inducing: Mab,
    from_inducing: Mab,
}

impl Isab {
    pub fn new(p: &nn::Path, dim: i64, inducing: i64, heads: i64) -> Self {
        Isab {
            inducing: p.randn(
                "inducing",
                &[1, inducing, dim],
                0.0,
                1.0 / (dim as f64).sqrt(),
            ),
            to_inducing: Mab::new(&(p / "mab_ix"), dim, heads),
            from_inducing: Mab::new(&(p / "mab_qh"), dim, heads),
        }
    }

    /// MAB(queries, MAB(I, X)).
    pub fn forward_queries(&self, queries: &Tensor, x: &Tensor) -> Tensor {
        let b = x.size()[0];
        let i = self.inducing.expand([b, -1, -1], false);
        let h = self.to_inducing.forward(&i, x);
        self.from_inducing.forward(queries, &h)
    }

    /// ISAB(X) = MAB(X, MAB(I, X)).
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_queries(x, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn attention_to_one_element_returns_its_value_projection() {
        let _rng = crate::rng::serial();
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let mab = Mab::new(&vs.root(), 8, 2);
        let q = Tensor::randn([3, 5, 8], (Kind::Float, Device::Cpu));
        let s = Tensor::randn([3, 1, 8], (Kind::Float, Device::Cpu));
        // Softmax over a single key is 1: every query receives V·s.
        let want = s.apply(&mab.v).expand([3, 5, 8], false);
        assert!(mab.attention(&q, &s).allclose(&want, 1e-5, 1e-6, false));
    }

    #[test]
    fn isab_is_invariant_in_the_set_and_equivariant_in_the_queries() {
        let _rng = crate::rng::serial();
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let isab = Isab::new(&vs.root(), 16, 4, 4);
        let x = Tensor::randn([2, 9, 16], (Kind::Float, Device::Cpu));
        let q = Tensor::randn([2, 5, 16], (Kind::Float, Device::Cpu));
        let px = Tensor::from_slice(&[3i64, 0, 8, 1, 5, 2, 7, 4, 6]);
        let pq = Tensor::from_slice(&[4i64, 2, 0, 3, 1]);
        let out = isab.forward_queries(&q, &x);
        let shuffled_set = isab.forward_queries(&q, &x.index_select(1, &px));
        assert!(out.allclose(&shuffled_set, 1e-5, 1e-5, false));
        let shuffled_q = isab.forward_queries(&q.index_select(1, &pq), &x);
        assert!(out
            .index_select(1, &pq)
            .allclose(&shuffled_q, 1e-5, 1e-5, false));
        assert_eq!(isab.forward(&x).size(), vec![2, 9, 16]);
    }
}
