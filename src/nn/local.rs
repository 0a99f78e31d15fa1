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

/// What the tpSGD experiment needs of a locally (or end-to-end) trained model.
pub trait LocalModel {
    /// One batch's backward passes. Returns the detached losses as one device vector, the task
    /// loss first and then each local loss, so a training loop reads them once per epoch.
    fn backward(&self, x: &Tensor, y: &Tensor) -> Tensor;
    fn logits(&self, x: &Tensor) -> Tensor;
    /// Values per example alive at the peak of a training step.
    fn peak_values(&self) -> i64;
    /// Number of layers (for reports).
    fn depth(&self) -> usize;
}

/// The local loss of features `h` [batch, width] under `rule`, against the projected label
/// onehot(y)·P.
fn local_loss(rule: Rule, h: &Tensor, onehot: &Tensor, proj: &Tensor, y: &Tensor) -> Tensor {
    let target = onehot.matmul(proj);
    match rule {
        Rule::TpL2 => (h - &target).square().mean(Kind::Float),
        Rule::TpL1 => (h - &target).abs().mean(Kind::Float),
        Rule::TpCe => h.matmul(&proj.tr()).cross_entropy_for_logits(y),
        Rule::Drtp => -(h * &target)
            .sum_dim_intlist(-1, false, Kind::Float)
            .mean(Kind::Float),
        Rule::Backprop => unreachable!("backprop has no local loss"),
    }
}

/// A layer of a locally trained network: fully connected, or a 3×3 conv block (conv,
/// activation, 2×2 max-pool) whose local losses see its channel means.
#[derive(Debug)]
enum Layer {
    Linear(nn::Linear),
    Conv(nn::Conv2D),
}

#[derive(Debug)]
pub struct LocalNet {
    layers: Vec<Layer>,
    /// Per layer: numbers of input and output values per example (memory accounting).
    sizes: Vec<(i64, i64)>,
    /// Fixed random projections [classes, width or channels] of each hidden layer (not
    /// trained).
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

/// ±1/√classes random projections of the label to each of `widths`, from the global generator.
/// They are fixed (untrained) variables of the VarStore, so they move with it to a device.
fn projections(p: &nn::Path, n_classes: i64, widths: &[i64]) -> Vec<Tensor> {
    let scale = 1.0 / (n_classes as f64).sqrt();
    widths
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let signs = Tensor::randint(2, [n_classes, w], (Kind::Float, p.device())) * 2.0 - 1.0;
            let mut proj = p.zeros_no_train(&format!("projection{i}"), &[n_classes, w]);
            tch::no_grad(|| proj.copy_(&(signs * scale)));
            proj
        })
        .collect()
}

impl LocalNet {
    /// An MLP. Projections are drawn from the global generator (seed it first).
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
            .map(|(i, w)| {
                Layer::Linear(nn::linear(
                    p / format!("fc{i}"),
                    w[0],
                    w[1],
                    Default::default(),
                ))
            })
            .collect();
        LocalNet {
            layers,
            sizes: widths.windows(2).map(|w| (w[0], w[1])).collect(),
            projections: projections(p, n_classes, hidden),
            rule,
            activation,
            n_classes,
        }
    }

    /// A small CNN for images [c, h, w]: conv blocks of `channels`, then a linear classifier.
    pub fn cnn(
        p: &nn::Path,
        input: &[i64],
        channels: &[i64],
        n_classes: i64,
        rule: Rule,
        activation: Activation,
    ) -> anyhow::Result<Self> {
        let &[c, mut h, mut w] = input else {
            anyhow::bail!("a CNN needs image inputs [channels, height, width], got {input:?}");
        };
        let pad = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        let (mut layers, mut sizes, mut ch) = (vec![], vec![], c);
        for (i, &out) in channels.iter().enumerate() {
            layers.push(Layer::Conv(nn::conv2d(
                p / format!("conv{i}"),
                ch,
                out,
                3,
                pad,
            )));
            sizes.push((ch * h * w, out * h * w));
            (ch, h, w) = (out, h / 2, w / 2);
        }
        if h < 1 || w < 1 {
            anyhow::bail!(
                "{} pooling blocks are too many for {input:?} images",
                channels.len()
            );
        }
        layers.push(Layer::Linear(nn::linear(
            p / "fc",
            ch * h * w,
            n_classes,
            Default::default(),
        )));
        sizes.push((ch * h * w, n_classes));
        Ok(LocalNet {
            layers,
            sizes,
            projections: projections(p, n_classes, channels),
            rule,
            activation,
            n_classes,
        })
    }

    /// Pre-activation of layer `i` from its input.
    fn pre(&self, i: usize, h: &Tensor) -> Tensor {
        match &self.layers[i] {
            Layer::Linear(l) => h.flatten(1, -1).apply(l),
            Layer::Conv(c) => h.apply(c),
        }
    }

    /// Output of hidden layer `i` from its pre-activation (conv blocks also pool).
    fn post(&self, i: usize, a: &Tensor) -> Tensor {
        let h = self.activation.apply(a);
        match self.layers[i] {
            Layer::Linear(_) => h,
            Layer::Conv(_) => h.max_pool2d_default(2),
        }
    }

    /// Logits (evaluation).
    pub fn logits(&self, x: &Tensor) -> Tensor {
        let mut h = x.shallow_clone();
        let last = self.layers.len() - 1;
        for i in 0..=last {
            let a = self.pre(i, &h);
            h = if i < last { self.post(i, &a) } else { a };
        }
        h
    }

    /// The batch's losses under this rule. Local rules detach every layer's input.
    pub fn losses(&self, x: &Tensor, y: &Tensor) -> Losses {
        let onehot = y.one_hot(self.n_classes).to_kind(Kind::Float);
        let mut h = x.shallow_clone();
        let last = self.layers.len() - 1;
        let mut local = vec![];
        for i in 0..=last {
            let input = if self.rule.is_local() { h.detach() } else { h };
            let a = self.pre(i, &input);
            if i == last {
                h = a;
                break;
            }
            h = self.post(i, &a);
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
    /// for backprop. Returns [task loss, local losses...] on the device.
    pub fn backward(&self, x: &Tensor, y: &Tensor) -> Tensor {
        if !self.rule.is_local() {
            let l = self.losses(x, y);
            l.total.backward();
            return l.task.detach().unsqueeze(0);
        }
        let onehot = y.one_hot(self.n_classes).to_kind(Kind::Float);
        let mut h = x.shallow_clone();
        let last = self.layers.len() - 1;
        let mut local = vec![];
        for i in 0..=last {
            let a = self.pre(i, &h.detach());
            if i == last {
                let task = a.cross_entropy_for_logits(y);
                task.backward();
                local.insert(0, task.detach());
                return Tensor::stack(&local, 0);
            }
            h = self.post(i, &a);
            let loss = self.local_loss(i, &h, &onehot, y);
            loss.backward();
            local.push(loss.detach());
        }
        unreachable!("the last layer returns")
    }

    fn local_loss(&self, i: usize, h: &Tensor, onehot: &Tensor, y: &Tensor) -> Tensor {
        // Conv blocks are judged on their channel means.
        let h = &if h.dim() == 4 {
            h.mean_dim([2i64, 3].as_slice(), false, Kind::Float)
        } else {
            h.shallow_clone()
        };
        local_loss(self.rule, h, onehot, &self.projections[i], y)
    }

    /// Values per example in every layer's input and output, for activation-memory accounting.
    pub fn widths(&self) -> Vec<(i64, i64)> {
        self.sizes.clone()
    }
}

impl LocalModel for LocalNet {
    fn backward(&self, x: &Tensor, y: &Tensor) -> Tensor {
        LocalNet::backward(self, x, y)
    }
    fn logits(&self, x: &Tensor) -> Tensor {
        LocalNet::logits(self, x)
    }
    /// Every layer's input and output for backprop; the largest single layer's for local
    /// rules, whose graphs are freed layer by layer.
    fn peak_values(&self) -> i64 {
        let per: Vec<i64> = self.sizes.iter().map(|(i, o)| i + o).collect();
        if self.rule.is_local() {
            per.into_iter().max().unwrap_or(0)
        } else {
            per.into_iter().sum()
        }
    }
    fn depth(&self) -> usize {
        self.layers.len()
    }
}

impl Module for LocalNet {
    fn forward(&self, xs: &Tensor) -> Tensor {
        LocalNet::logits(self, xs)
    }
}

/// An Elman RNN over the rows of an image (sequential MNIST: 28 steps of 28 pixels),
/// h_t = act(W_x x_t + W_h h_{t−1} + b), classified from the last state. Backprop is
/// backpropagation through time; local rules detach h_{t−1} and x_t (no gradient through time
/// or from the classifier) and give every step's state the projected-label target.
#[derive(Debug)]
pub struct LocalRnn {
    wx: nn::Linear,
    wh: nn::Linear,
    out: nn::Linear,
    projection: Tensor,
    pub rule: Rule,
    activation: Activation,
    n_classes: i64,
    hidden: i64,
    steps: i64,
}

impl LocalRnn {
    /// Input images [c, h, w] are read as h steps of c·w values.
    pub fn new(
        p: &nn::Path,
        input: &[i64],
        hidden: i64,
        n_classes: i64,
        rule: Rule,
        activation: Activation,
    ) -> anyhow::Result<Self> {
        let &[c, steps, w] = input else {
            anyhow::bail!(
                "the Elman RNN reads images [channels, height, width] row by row, got {input:?}"
            );
        };
        let no_bias = nn::LinearConfig {
            bias: false,
            ..Default::default()
        };
        Ok(LocalRnn {
            wx: nn::linear(p / "wx", c * w, hidden, Default::default()),
            wh: nn::linear(p / "wh", hidden, hidden, no_bias),
            out: nn::linear(p / "out", hidden, n_classes, Default::default()),
            projection: projections(p, n_classes, &[hidden]).remove(0),
            rule,
            activation,
            n_classes,
            hidden,
            steps,
        })
    }

    /// The steps [T, B, c·w] of a batch of images.
    fn steps(x: &Tensor) -> Tensor {
        let s = x.size();
        x.permute([2, 0, 1, 3]).reshape([s[2], s[0], s[1] * s[3]])
    }

    /// Final-state logits (with the graph through time).
    fn run(&self, x: &Tensor) -> Tensor {
        let xs = Self::steps(x);
        let mut h = Tensor::zeros([xs.size()[1], self.hidden], (x.kind(), x.device()));
        for t in 0..xs.size()[0] {
            h = self
                .activation
                .apply(&(xs.get(t).apply(&self.wx) + h.apply(&self.wh)));
        }
        h.apply(&self.out)
    }

    /// One batch's backward passes: BPTT for backprop; for local rules one backward per step
    /// (its local loss, weighted 1/T, trains W_x and W_h; the step's graph is freed before the
    /// next step), then the task loss on the detached last state trains the classifier.
    pub fn backward(&self, x: &Tensor, y: &Tensor) -> Tensor {
        if !self.rule.is_local() {
            let task = self.run(x).cross_entropy_for_logits(y);
            task.backward();
            return task.detach().unsqueeze(0);
        }
        let onehot = y.one_hot(self.n_classes).to_kind(Kind::Float);
        let xs = Self::steps(x);
        let steps = xs.size()[0];
        let mut h = Tensor::zeros([xs.size()[1], self.hidden], (x.kind(), x.device()));
        let mut local = Tensor::zeros([], (Kind::Float, x.device()));
        for t in 0..steps {
            h = self
                .activation
                .apply(&(xs.get(t).apply(&self.wx) + h.detach().apply(&self.wh)));
            let loss = local_loss(self.rule, &h, &onehot, &self.projection, y) / steps as f64;
            loss.backward();
            local += loss.detach();
        }
        let task = h.detach().apply(&self.out).cross_entropy_for_logits(y);
        task.backward();
        Tensor::stack(&[task.detach(), local], 0)
    }
}

impl LocalModel for LocalRnn {
    fn backward(&self, x: &Tensor, y: &Tensor) -> Tensor {
        LocalRnn::backward(self, x, y)
    }
    fn logits(&self, x: &Tensor) -> Tensor {
        self.run(x)
    }
    /// Every step's input and state for BPTT; one step's for the local rules.
    fn peak_values(&self) -> i64 {
        let one = self.wx.ws.size()[1] + self.hidden;
        if self.rule.is_local() {
            one
        } else {
            self.steps * one
        }
    }
    fn depth(&self) -> usize {
        2
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
            let net = LocalNet::new(&vs.root(), 6, &[8, 8], 3, rule, Activation::Tanh);
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
        // The same for a CNN's first conv block.
        let img = Tensor::randn([16, 1, 8, 8], (Kind::Float, Device::Cpu));
        let vs = nn::VarStore::new(Device::Cpu);
        let net = LocalNet::cnn(
            &vs.root(),
            &[1, 8, 8],
            &[4, 4],
            3,
            Rule::TpCe,
            Activation::Relu,
        )
        .unwrap();
        let w0 = &vs.variables()["conv0.weight"];
        let all = net.losses(&img, &y);
        let g_all = Tensor::run_backward(&[&all.total], &[w0], false, false);
        let own = net.losses(&img, &y);
        let g_own = Tensor::run_backward(&[&own.local[0]], &[w0], false, false);
        assert!(g_all[0].allclose(&g_own[0], 1e-6, 1e-7, false));
        assert_eq!(net.widths(), vec![(64, 256), (64, 64), (16, 3)]);
        // The Elman RNN: with a local rule W_x's gradient does not depend on the classifier
        // above it (changing the output weights changes nothing); with BPTT it does.
        let seq = Tensor::randn([16, 1, 5, 4], (Kind::Float, Device::Cpu));
        for (rule, independent) in [(Rule::TpL2, true), (Rule::Backprop, false)] {
            let vs = nn::VarStore::new(Device::Cpu);
            let rnn = LocalRnn::new(&vs.root(), &[1, 5, 4], 6, 3, rule, Activation::Tanh).unwrap();
            let grad_wx = |scale: f64| {
                tch::no_grad(|| {
                    let _ = vs.variables()["out.weight"]
                        .shallow_clone()
                        .g_mul_scalar_(scale);
                });
                for (_, v) in vs.variables() {
                    let mut g = v.grad();
                    if g.defined() {
                        let _ = g.zero_();
                    }
                }
                let _losses = LocalModel::backward(&rnn, &seq, &y);
                vs.variables()["wx.weight"].grad().copy()
            };
            let (a, b) = (grad_wx(1.0), grad_wx(10.0));
            assert_eq!(a.allclose(&b, 1e-6, 1e-7, false), independent, "{rule:?}");
        }
        // Backprop: the task loss reaches the first layer.
        let vs = nn::VarStore::new(Device::Cpu);
        let net = LocalNet::new(&vs.root(), 6, &[8], 3, Rule::Backprop, Activation::Tanh);
        let l = net.losses(&x, &y);
        assert!(l.local.is_empty());
        let g = Tensor::run_backward(&[&l.total], &[&vs.variables()["fc0.weight"]], false, false);
        assert!(g[0].abs().max().double_value(&[]) > 0.0);
    }
}
