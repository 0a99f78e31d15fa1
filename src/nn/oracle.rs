//! Query-only ("black-box") access to a trained classifier, for attacks and tests that may
//! read nothing but output probabilities: no gradients, no logits, no weights.
//!
//! A [`QueryModel`] serves several independent attacks at once (attack `a` owns the rows it
//! submits), so the candidate images of many attacks go through the network as one batched
//! forward pass while each attack's budget is charged per image: a batch of B rows costs B
//! queries, split among their owners. A batch that would take any owner past its budget is
//! refused as a whole (nothing is evaluated or charged), so a budget can never be exceeded,
//! whatever the caller does.

use anyhow::{bail, Result};
use tch::nn::ModuleT;
use tch::{Kind, Tensor};

pub struct QueryModel<'a> {
    model: &'a dyn ModuleT,
    budget: u64,
    used: Vec<u64>,
    passes: u64,
}

impl<'a> QueryModel<'a> {
    /// `attacks` independent users of `model`, each allowed `budget` queried images.
    pub fn new(model: &'a dyn ModuleT, attacks: usize, budget: u64) -> Self {
        QueryModel {
            model,
            budget,
            used: vec![0; attacks],
            passes: 0,
        }
    }

    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Images attack `a` has had evaluated so far.
    pub fn used(&self, a: usize) -> u64 {
        self.used[a]
    }

    /// Queries attack `a` may still make.
    pub fn left(&self, a: usize) -> u64 {
        self.budget - self.used[a]
    }

    /// Forward passes made (one per accepted batch, whatever its size).
    pub fn passes(&self) -> u64 {
        self.passes
    }

    /// Softmax probabilities [B, classes] (in evaluation mode, without gradients) of `images`
    /// [B, …]; row b is charged to attack `owners[b]`.
    pub fn query(&mut self, owners: &[usize], images: &Tensor) -> Result<Tensor> {
        let b = images.size()[0];
        if owners.len() as i64 != b {
            bail!(
                "query: {} owners for a batch of {b} images (one owner per row)",
                owners.len()
            );
        }
        let mut need = vec![0u64; self.used.len()];
        for &a in owners {
            if a >= self.used.len() {
                bail!(
                    "query: attack {a} does not exist ({} attacks)",
                    self.used.len()
                );
            }
            need[a] += 1;
        }
        if let Some(a) = (0..need.len()).find(|&a| self.used[a] + need[a] > self.budget) {
            bail!(
                "query: attack {a} asked for {} more queries with {} of its budget of {} left",
                need[a],
                self.left(a),
                self.budget
            );
        }
        if b == 0 {
            return Ok(Tensor::zeros([0, 0], (Kind::Float, images.device())));
        }
        for (u, n) in self.used.iter_mut().zip(need) {
            *u += n;
        }
        self.passes += 1;
        Ok(tch::no_grad(|| {
            self.model.forward_t(images, false).softmax(-1, Kind::Float)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device};

    #[test]
    fn batched_queries_are_charged_per_image_and_owner_and_the_budget_holds() {
        let _rng = crate::rng::serial();
        let vs = nn::VarStore::new(Device::Cpu);
        let lin = nn::linear(vs.root() / "l", 4, 3, Default::default());
        let mut q = QueryModel::new(&lin, 3, 5);
        let x = Tensor::randn([4, 4], (Kind::Float, Device::Cpu));
        // One pass of 4 rows: 2 for attack 0, 1 each for attacks 1 and 2.
        let p = q.query(&[0, 1, 0, 2], &x).unwrap();
        assert_eq!(p.size(), vec![4, 3]);
        let sums = p.sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
        assert!(sums.allclose(
            &Tensor::ones([4], (Kind::Float, Device::Cpu)),
            1e-5,
            1e-6,
            false
        ));
        let direct = lin.forward_t(&x, false).softmax(-1, Kind::Float);
        assert!(p.allclose(&direct, 1e-6, 1e-6, false));
        assert_eq!((q.used(0), q.used(1), q.used(2), q.passes()), (2, 1, 1, 1));
        // Attack 0 has 3 left: a batch asking 4 of it is refused whole, nothing charged.
        let x5 = Tensor::randn([5, 4], (Kind::Float, Device::Cpu));
        let e = q.query(&[0, 0, 0, 0, 1], &x5).unwrap_err().to_string();
        assert!(
            e.contains("attack 0") && e.contains("3 of its budget of 5"),
            "{e}"
        );
        assert_eq!((q.used(0), q.used(1), q.passes()), (2, 1, 1));
        // Exactly the rest of the budget is allowed; after it, even one more query is refused.
        let _ = q.query(&[0, 0, 0], &x.narrow(0, 0, 3)).unwrap();
        assert_eq!((q.used(0), q.left(0), q.passes()), (5, 0, 2));
        assert!(q.query(&[0], &x.narrow(0, 0, 1)).is_err());
        assert!(
            q.query(&[0, 1], &x.narrow(0, 0, 1)).is_err(),
            "owners != rows"
        );
        assert!(q.query(&[7], &x.narrow(0, 0, 1)).is_err(), "unknown attack");
    }
}
