//! Training without end-to-end backpropagation: every hidden layer learns from a local signal
//! and receives its input detached, so no gradient crosses layers.
//!
//! - `tp-l2`, `tp-l1`, `tp-ce` (target projection, tpSGD): hidden layer l's target is a fixed
//!   random projection of the one-hot label, t_l = onehot(y)·P_l; its local loss is ‖h_l − t_l‖²
//!   (mean over units), |h_l − t_l|, or the cross-entropy of the class scores h_l·P_lᵀ.
//! - `drtp` (direct random target projection, Frenkel et al. 2021): the error signal of layer l
//!   is the projected target itself, δa_l = −(onehot(y)·B_l) ⊙ f′(a_l), written as the
//!   surrogate −⟨h_l, onehot(y)·B_l⟩.
//! - `backprop`: the ordinary network (no detaching, task loss only), for comparison.
//!
//! The output layer always learns from the task loss (cross-entropy).

use super::Activation;
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    Backprop,
    Drtp,
    TpL2,
    TpL1,
    TpCe,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Backprop => "backprop",
            Rule::Drtp => "drtp",
            Rule::TpL2 => "tp-l2",
            Rule::TpL1 => "tp-l1",
            Rule::TpCe => "tp-ce",
        }
    }
    pub fn is_local(self) -> bool {
        self != Rule::Backprop
    }
}

#[derive(Debug)]
pub struct LocalMlp {
    layers: Vec<nn::Linear>,
    /// Fixed random projections [classes, width] of each hidden layer (not trained).
    projections: Vec<Tensor>,
    pub rule: Rule,
    activation: Activation,
    n_classes: i64,
}

/// The training losses of one batch: the sum to differentiate, the task loss and each hidden
/// layer's local loss (device scalars).
pub struct Losses {
    pub total: Tensor,
    pub task: Tensor,
    pub local: Vec<Tensor>,
    pub logits: Tensor,
}

impl LocalMlp {
    /// Projections are drawn from the global generator (seed it first), ±1/√classes entries.
    pub fn new(
        p: &nn::Path,
        n_in: i64,
        hidden: &[i64],
        n_classes: i64,
        rule: Rule,
        activation: Activation,
    ) -> Self {
        let widths: Vec<i64> = std::iter::once(n_in)
            .chain(hidden.iter().copied())
            .chain([n_classes])
            .collect();
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| nn::linear(p / format!("fc{i}"), w[0], w[1], Default::default()))
            .collect();
        let scale = 1.0 / (n_classes as f64).sqrt();
        let projections = hidden
            .iter()
            .map(|&w| {
                let signs =
                    Tensor::randint(2, [n_classes, w], (Kind::Float, tch::Device::Cpu)) * 2.0 - 1.0;
                (signs * scale).to_device(p.device())
            })
            .collect();
        LocalMlp {
            layers,
            projections,
            rule,
            activation,
            n_classes,
        }
    }

    /// Moves the fixed projections to `device` (after the VarStore has moved the weights).
    pub fn projections_to(mut self, device: tch::Device) -> Self {
        self.projections = self
            .projections
            .iter()
            .map(|p| p.to_device(device))
            .collect();
        self
    }

    /// Logits (evaluation).
    pub fn logits(&self, x: &Tensor) -> Tensor {
        let mut h = x.flatten(1, -1);
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate() {
            h = h.apply(l);
            if i < last {
                h = self.activation.apply(&h);
            }
        }
        h
    }

    /// The batch's losses under this rule. Local rules detach every layer's input.
    pub fn losses(&self, x: &Tensor, y: &Tensor) -> Losses {
        let onehot = y.one_hot(self.n_classes).to_kind(Kind::Float);
        let mut h = x.flatten(1, -1);
        let last = self.layers.len() - 1;
        let mut local = vec![];
        for (i, l) in self.layers.iter().enumerate() {
            let input = if self.rule.is_local() { h.detach() } else { h };
            let a = input.apply(l);
            if i == last {
                h = a;
                break;
            }
            h = self.activation.apply(&a);
            if self.rule.is_local() {
                local.push(self.local_loss(i, &h, &onehot, y));
            }
        }
        let task = h.cross_entropy_for_logits(y);
        let total = local.iter().fold(task.shallow_clone(), |s, l| s + l);
        Losses {
            total,
            task,
            local,
            logits: h,
        }
    }

    /// Backward passes for one batch, layer by layer for local rules (each layer's graph is
    /// freed before the next layer runs: only one layer's activations are alive), one pass
    /// for backprop. Returns the task loss and the local losses (host values).
    pub fn backward(&self, x: &Tensor, y: &Tensor) -> (f64, Vec<f64>) {
        if !self.rule.is_local() {
            let l = self.losses(x, y);
            l.total.backward();
            return (l.task.double_value(&[]), vec![]);
        }
        let onehot = y.one_hot(self.n_classes).to_kind(Kind::Float);
        let mut h = x.flatten(1, -1);
        let last = self.layers.len() - 1;
        let mut local = vec![];
        for (i, l) in self.layers.iter().enumerate() {
            let a = h.detach().apply(l);
            if i == last {
                let task = a.cross_entropy_for_logits(y);
                task.backward();
                return (task.double_value(&[]), local);
            }
            h = self.activation.apply(&a);
            let loss = self.local_loss(i, &h, &onehot, y);
            loss.backward();
            local.push(loss.double_value(&[]));
        }
        unreachable!("the last layer returns")
    }

    fn local_loss(&self, i: usize, h: &Tensor, onehot: &Tensor, y: &Tensor) -> Tensor {
        let proj = &self.projections[i];
        let target = onehot.matmul(proj);
        match self.rule {
            Rule::TpL2 => (h - &target).square().mean(Kind::Float),
            Rule::TpL1 => (h - &target).abs().mean(Kind::Float),
            Rule::TpCe => h.matmul(&proj.tr()).cross_entropy_for_logits(y),
            Rule::Drtp => -(h * &target)
                .sum_dim_intlist(-1, false, Kind::Float)
                .mean(Kind::Float),
            Rule::Backprop => unreachable!("backprop has no local loss"),
        }
    }

    /// Widths of every layer's input and output, for activation-memory accounting.
    pub fn widths(&self) -> Vec<(i64, i64)> {
        self.layers
            .iter()
            .map(|l| (l.ws.size()[1], l.ws.size()[0]))
            .collect()
    }

    pub fn depth(&self) -> usize {
        self.layers.len()
    }
}

impl Module for LocalMlp {
    fn forward(&self, xs: &Tensor) -> Tensor {
        self.logits(xs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn local_layers_get_gradients_from_their_own_loss_only() {
        let _rng = crate::rng::serial();
        tch::manual_seed(0);
        let x = Tensor::randn([16, 6], (Kind::Float, Device::Cpu));
        let y = Tensor::randint(3, [16], (Kind::Int64, Device::Cpu));
        for rule in [Rule::TpL2, Rule::TpL1, Rule::TpCe, Rule::Drtp] {
            let vs = nn::VarStore::new(Device::Cpu);
            let net = LocalMlp::new(&vs.root(), 6, &[8, 8], 3, rule, Activation::Tanh);
            let vars = vs.variables();
            let w0 = &vars["fc0.weight"];
            // Gradient of layer 0 from the whole loss ...
            let all = net.losses(&x, &y);
            let g_all = Tensor::run_backward(&[&all.total], &[w0], false, false);
            // ... equals its gradient from its own local loss ...
            let own = net.losses(&x, &y);
            let g_own = Tensor::run_backward(&[&own.local[0]], &[w0], false, false);
            assert!(g_all[0].allclose(&g_own[0], 1e-6, 1e-7, false), "{rule:?}");
            // ... and the layers above send it nothing.
            let above = net.losses(&x, &y);
            let upper = above.task + &above.local[1];
            let g_up = Tensor::run_backward(&[&upper], &[w0], false, true);
            assert!(
                !g_up[0].defined() || g_up[0].abs().max().double_value(&[]) == 0.0,
                "{rule:?}"
            );
        }
        // Backprop: the task loss reaches the first layer.
        let vs = nn::VarStore::new(Device::Cpu);
        let net = LocalMlp::new(&vs.root(), 6, &[8], 3, Rule::Backprop, Activation::Tanh);
        let l = net.losses(&x, &y);
        assert!(l.local.is_empty());
        let g = Tensor::run_backward(&[&l.total], &[&vs.variables()["fc0.weight"]], false, false);
        assert!(g[0].abs().max().double_value(&[]) > 0.0);
    }
}
