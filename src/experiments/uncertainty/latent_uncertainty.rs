//! `latent-uncertainty` (paper 32, Cosarinsky, Gaggion, Echeveste & Ferrante, MIDL 2026,
//! "CheXmask-U: quantifying uncertainty in landmark-based anatomical segmentation"). A
//! HybridGNet-style model segments organs as landmark graphs: a CNN encoder maps the image to
//! a Gaussian latent q(z | x) = N(μ(x), diag σ²(x)), a decoder maps z to the landmark
//! coordinates. Trained as a VAE-like regressor,
//!
//!   L = MSE(ŷ(z), y) + β_t · mean_d KL(N(μ_d, σ_d²) ‖ N(0, 1)),   z = μ + σ ⊙ ε,
//!
//! (coordinates normalised to [0, 1], KL averaged over latent dimensions and images, β_t
//! annealed linearly from 1e-5 to 1e-2 over the first fifth of training, as the official
//! trainer anneals it over 200 of 1000 epochs). Two uncertainties come for free at test time:
//!
//! - the **latent uncertainty** mean_d σ_d²(x), and
//! - the **predictive uncertainty**: the per-node standard deviation of the decoded
//!   landmarks over N = 50 samples z_s = μ + σ ⊙ ε_s decoded in one batch (mean of the x and y
//!   stds, averaged over nodes, in pixels).
//!
//! Decoders (`arms`): an MLP on z, and a Chebyshev graph convolution (K = 3, `nn::graph`) over
//! the contour rings, each with or without image-to-decoder skip features. The graph skip is
//! HybridGNet's image-to-graph skip connection: an intermediate layer predicts landmark
//! positions (supervised by the same MSE), encoder features are sampled there (bilinear
//! `grid_sample` of the 16×16 conv map) and concatenated to the node features. The MLP skip
//! concatenates a projection of the last conv map to z. Skip features are deterministic,
//! computed once per image and shared by the 50 samples, so a decoder that leans on them
//! ignores z and its sampled spread shrinks — the official code's own caveat.
//!
//! Data (`data::shapes`): 64×64 images of two lung-like ellipses (32 contour landmarks each)
//! with texture noise; a fixed training set of 2000, 100 fixed test images. Test-time corruptions
//! (`data::corrupt`, as the official Utils/corruption.py): Gaussian noise σ ∈ noise_levels,
//! blur with a (2s + 1) kernel, s ∈ blur_levels, and occlusion of squares of the given side
//! around `occluded_points` landmarks. Measured per image (images.csv): landmark RMSE (decoded
//! at μ), both uncertainties; severity.csv their means per (arm, corruption, severity);
//! summary.csv per arm and measure: Spearman(uncertainty, RMSE) over all corrupted and clean
//! images, AUROC separating clean from severity ≥ `severe_from`, and how many corruptions
//! raise the measure at every step of severity.
//!
//! Deviations: synthetic images instead of chest X-rays (no data download), 64² instead of
//! 1024², latent 16 instead of 64, 2k steps of Adam at 1e-3 instead of 1000 epochs at 1e-4;
//! no augmentation; no image blends.

use crate::config;
use crate::data::corrupt::{self, Corruption};
use crate::data::shapes::{self, ShapesConfig};
use crate::experiments::children::csv_bytes;
use crate::experiments::Entry;
use crate::nn::gaussian::{kl_standard, reparameterize};
use crate::nn::graph::{scaled_laplacian, ChebConv};
use crate::optim::{OptimConfig, OptimName, Optimizer};
use crate::rng::{self, Stream};
use crate::run::fsutil::write_atomic;
use crate::run::metrics::{float, json_float};
use crate::run::progress::Progress;
use crate::run::{Outcome, RunContext};
use crate::stats::{auroc, spearman};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};
use toml::Table;

pub const ENTRY: Entry = Entry {
    name: "latent-uncertainty",
    family: "uncertainty",
    description: "Latent and sampled-landmark uncertainty of a HybridGNet-style model under image corruptions",
    paper: "CheXmask-U: Quantifying Uncertainty in Landmark-Based Anatomical Segmentation",
    defaults: include_str!("../../../experiments/latent-uncertainty.toml"),
    normalize: config::normalize::<Config>,
    train,
    eval: None,
    information_plane: false,
    claims: CLAIMS,
    variants: &[],
    extendable: false,
    nested_runs: false,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arm {
    Mlp,
    MlpSkip,
    Graph,
    GraphSkip,
}

impl Arm {
    pub fn as_str(self) -> &'static str {
        match self {
            Arm::Mlp => "mlp",
            Arm::MlpSkip => "mlp-skip",
            Arm::Graph => "graph",
            Arm::GraphSkip => "graph-skip",
        }
    }
    fn graph(self) -> bool {
        matches!(self, Arm::Graph | Arm::GraphSkip)
    }
    fn skip(self) -> bool {
        matches!(self, Arm::MlpSkip | Arm::GraphSkip)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub shapes: ShapesConfig,
    pub train_images: i64,
    pub test_images: i64,
    pub arms: Vec<Arm>,
    pub latent: i64,
    /// Output channels of the stride-2 conv layers of the encoder.
    pub channels: Vec<i64>,
    /// Hidden width of the MLP decoder.
    pub hidden: i64,
    /// Node features of the graph decoder.
    pub graph_channels: i64,
    /// Chebyshev polynomial order K.
    pub cheb_k: usize,
    pub steps: usize,
    pub batch_size: i64,
    pub lr: f64,
    pub weight_decay: f64,
    /// KL weight annealed linearly from kl_start to kl_end over the first anneal_fraction of
    /// the steps, then kept.
    pub kl_start: f64,
    pub kl_end: f64,
    pub anneal_fraction: f64,
    /// Latent samples per image for the predictive uncertainty.
    pub samples: i64,
    pub noise_levels: Vec<f64>,
    pub blur_levels: Vec<i64>,
    /// Side in pixels of the occluding squares.
    pub occlusion_levels: Vec<i64>,
    pub occluded_points: i64,
    /// Severity index from which an input counts as severe for the AUROC.
    pub severe_from: usize,
    pub log_every: usize,
    /// Test images per evaluation batch (each decoded `samples` times at once).
    pub eval_batch: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            shapes: ShapesConfig::default(),
            train_images: 2000,
            test_images: 100,
            arms: vec![Arm::Mlp, Arm::MlpSkip, Arm::Graph, Arm::GraphSkip],
            latent: 16,
            channels: vec![16, 32, 64, 64],
            hidden: 256,
            graph_channels: 32,
            cheb_k: 3,
            steps: 2000,
            batch_size: 32,
            lr: 1e-3,
            weight_decay: 1e-5,
            kl_start: 1e-5,
            kl_end: 1e-2,
            anneal_fraction: 0.2,
            samples: 50,
            noise_levels: vec![0.0, 0.05, 0.1, 0.2, 0.4],
            blur_levels: vec![0, 1, 2, 3, 4],
            occlusion_levels: vec![0, 4, 8, 12, 16],
            occluded_points: 4,
            severe_from: 2,
            log_every: 100,
            eval_batch: 25,
        }
    }
}

impl config::Check for Config {
    fn check(&self) -> Result<()> {
        self.shapes.check()?;
        if self.arms.is_empty() || self.steps == 0 || self.batch_size < 1 || self.log_every == 0 {
            bail!("arms must not be empty; steps, batch_size and log_every >= 1");
        }
        if self.train_images < self.batch_size || self.test_images < 2 || self.eval_batch < 1 {
            bail!("train_images >= batch_size, test_images >= 2, eval_batch >= 1");
        }
        if self.latent < 1 || self.hidden < 1 || self.graph_channels < 1 || self.cheb_k == 0 {
            bail!("latent, hidden, graph_channels and cheb_k must be >= 1");
        }
        if self.channels.len() != 4 || self.channels.iter().any(|&c| c < 1) {
            bail!("channels: four positive widths (the encoder's stride-2 conv layers)");
        }
        if self.shapes.size % 16 != 0 {
            bail!("shapes.size must be a multiple of 16 (four stride-2 layers)");
        }
        if self.samples < 2 || !(0.0..=1.0).contains(&self.anneal_fraction) {
            bail!("samples >= 2 and anneal_fraction in [0, 1]");
        }
        let levels = [
            self.noise_levels.len(),
            self.blur_levels.len(),
            self.occlusion_levels.len(),
        ];
        if levels.iter().any(|&n| n < 2)
            || self.noise_levels[0] != 0.0
            || self.blur_levels[0] != 0
            || self.occlusion_levels[0] != 0
        {
            bail!("noise_levels, blur_levels and occlusion_levels start at 0 (clean) and have >= 2 levels");
        }
        if self.severe_from == 0 || levels.iter().any(|&n| self.severe_from >= n) {
            bail!("severe_from must be a severity index in 1..levels");
        }
        if self.occluded_points < 1
            || self.occluded_points > self.shapes.organs * self.shapes.per_organ
        {
            bail!("occluded_points must be in 1..=landmarks");
        }
        Ok(())
    }
}

/// The stride-2 CNN encoder to (μ, log σ²), keeping its feature maps for skip connections.
struct Encoder {
    convs: Vec<nn::Conv2D>,
    mu: nn::Linear,
    logvar: nn::Linear,
}

struct Encoded {
    mu: Tensor,
    logvar: Tensor,
    /// Conv feature maps, finest first.
    maps: Vec<Tensor>,
}

impl Encoder {
    fn new(p: &nn::Path, cfg: &Config) -> Self {
        let conv = nn::ConvConfig {
            stride: 2,
            padding: 1,
            ..Default::default()
        };
        let mut c_in = 1;
        let convs = cfg
            .channels
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let l = nn::conv2d(p / format!("conv{i}"), c_in, c, 3, conv);
                c_in = c;
                l
            })
            .collect();
        let side = cfg.shapes.size / 16;
        let flat = c_in * side * side;
        Encoder {
            convs,
            mu: nn::linear(p / "mu", flat, cfg.latent, Default::default()),
            logvar: nn::linear(p / "logvar", flat, cfg.latent, Default::default()),
        }
    }

    fn forward(&self, x: &Tensor) -> Encoded {
        let mut h = x.shallow_clone();
        let mut maps = vec![];
        for c in &self.convs {
            h = h.apply(c).relu();
            maps.push(h.shallow_clone());
        }
        let flat = h.flatten(1, -1);
        Encoded {
            mu: flat.apply(&self.mu),
            logvar: flat.apply(&self.logvar),
            maps,
        }
    }
}

/// The decoder of one arm.
struct Decoder {
    arm: Arm,
    nodes: i64,
    // MLP.
    mlp: Vec<nn::Linear>,
    // Graph.
    to_nodes: Option<nn::Linear>,
    cheb: Vec<ChebConv>,
    position: Option<ChebConv>,
    lap: Tensor,
    // Skip features (MLP: the last conv map; graph: sampled from the second).
    skip_proj: Option<nn::Linear>,
}

/// What the decoder gives: final coordinates [b, nodes, 2] and, with graph skips, the
/// intermediate positions the features were sampled at.
struct Decoded {
    coords: Tensor,
    intermediate: Option<Tensor>,
}

const SKIP_DIM: i64 = 32;

impl Decoder {
    fn new(p: &nn::Path, arm: Arm, cfg: &Config, device: Device) -> Self {
        let nodes = cfg.shapes.organs * cfg.shapes.per_organ;
        let lin = |n: &str, a: i64, b: i64| nn::linear(p / n, a, b, Default::default());
        let lap = scaled_laplacian(&shapes::ring_adjacency(
            cfg.shapes.organs,
            cfg.shapes.per_organ,
            Device::Cpu,
        ))
        .to_device(device);
        let side = cfg.shapes.size / 16;
        let last = cfg.channels[3] * side * side;
        let gc = cfg.graph_channels;
        let mut d = Decoder {
            arm,
            nodes,
            mlp: vec![],
            to_nodes: None,
            cheb: vec![],
            position: None,
            lap,
            skip_proj: None,
        };
        if arm.graph() {
            d.to_nodes = Some(lin("to_nodes", cfg.latent, nodes * gc));
            let k = cfg.cheb_k;
            let after = if arm.skip() { gc + cfg.channels[1] } else { gc };
            d.cheb = vec![
                ChebConv::new(&(p / "cheb0"), gc, gc, k),
                ChebConv::new(&(p / "cheb1"), gc, gc, k),
                ChebConv::new(&(p / "cheb2"), after, gc, k),
                ChebConv::new(&(p / "cheb3"), gc, 2, k),
            ];
            if arm.skip() {
                d.position = Some(ChebConv::new(&(p / "position"), gc, 2, k));
            }
        } else {
            let z_in = cfg.latent + if arm.skip() { SKIP_DIM } else { 0 };
            d.mlp = vec![
                lin("fc0", z_in, cfg.hidden),
                lin("fc1", cfg.hidden, cfg.hidden),
                lin("fc2", cfg.hidden, nodes * 2),
            ];
            if arm.skip() {
                d.skip_proj = Some(lin("skip", last, SKIP_DIM));
            }
        }
        d
    }

    /// Decodes latents z [b·s, latent] for images whose encoder maps are `maps` (batch b);
    /// each image's latents are consecutive (`s` per image).
    fn forward(&self, z: &Tensor, maps: &[Tensor], s: i64) -> Decoded {
        let rows = z.size()[0];
        let per_image = |t: &Tensor| {
            if s == 1 {
                t.shallow_clone()
            } else {
                t.repeat_interleave_self_int(s, 0, None)
            }
        };
        if !self.arm.graph() {
            let mut h = z.shallow_clone();
            if let Some(proj) = &self.skip_proj {
                let f = proj.forward(&maps[3].flatten(1, -1)).relu();
                h = Tensor::cat(&[h, per_image(&f)], 1);
            }
            let last = self.mlp.len() - 1;
            for (i, l) in self.mlp.iter().enumerate() {
                h = l.forward(&h);
                if i < last {
                    h = h.relu();
                }
            }
            return Decoded {
                coords: h.view([rows, self.nodes, 2]),
                intermediate: None,
            };
        }
        let to_nodes = self.to_nodes.as_ref().expect("graph decoder");
        let mut h = to_nodes.forward(z).view([rows, self.nodes, -1]).relu();
        h = self.cheb[0].forward(&h, &self.lap).relu();
        h = self.cheb[1].forward(&h, &self.lap).relu();
        let mut intermediate = None;
        if let Some(pos) = &self.position {
            let p = pos.forward(&h, &self.lap); // [rows, nodes, 2] in [0, 1] image units
            let fmap = per_image(&maps[1]); // [rows, c, h, w]
            let grid = (&p * 2.0 - 1.0).unsqueeze(2); // [rows, nodes, 1, 2]
            let feats = fmap
                .grid_sampler(&grid, 0, 0, false)
                .squeeze_dim(-1)
                .transpose(1, 2); // [rows, nodes, c]
            h = Tensor::cat(&[h, feats], -1);
            intermediate = Some(p);
        }
        h = self.cheb[2].forward(&h, &self.lap).relu();
        Decoded {
            coords: self.cheb[3].forward(&h, &self.lap),
            intermediate,
        }
    }
}

struct Model {
    encoder: Encoder,
    decoder: Decoder,
}

impl Model {
    /// Training loss: (total, MSE) for images x and normalised landmarks y.
    fn loss(&self, x: &Tensor, y: &Tensor, beta: f64) -> (Tensor, Tensor) {
        let e = self.encoder.forward(x);
        let z = reparameterize(&e.mu, &e.logvar);
        let d = self.decoder.forward(&z, &e.maps, 1);
        let mse = d.coords.mse_loss(y, tch::Reduction::Mean);
        let mut total = &mse + kl_standard(&e.mu, &e.logvar).mean(Kind::Float) * beta;
        if let Some(p) = &d.intermediate {
            total += p.mse_loss(y, tch::Reduction::Mean);
        }
        (total, mse)
    }

    /// Per image: (RMSE in pixels at z = μ, mean latent variance, mean node std over
    /// `samples` latent draws in pixels), and the sampled coordinates [b, s, nodes, 2].
    fn measure(&self, x: &Tensor, y: &Tensor, samples: i64, size: f64) -> [Tensor; 4] {
        let e = self.encoder.forward(x);
        let b = x.size()[0];
        let at_mu = self.decoder.forward(&e.mu, &e.maps, 1).coords;
        let rmse = (at_mu - y)
            .square()
            .sum_dim_intlist([2i64].as_slice(), false, Kind::Float)
            .mean_dim([1i64].as_slice(), false, Kind::Float)
            .sqrt()
            * size;
        let latent_var = e
            .logvar
            .exp()
            .mean_dim([1i64].as_slice(), false, Kind::Float);
        let mu = e.mu.repeat_interleave_self_int(samples, 0, None);
        let lv = e.logvar.repeat_interleave_self_int(samples, 0, None);
        let z = reparameterize(&mu, &lv);
        let coords = self.decoder.forward(&z, &e.maps, samples).coords.view([
            b,
            samples,
            self.decoder.nodes,
            2,
        ]);
        let node_std = coords.std_dim([1i64].as_slice(), true, false).mean_dim(
            [1i64, 2].as_slice(),
            false,
            Kind::Float,
        ) * size;
        [rmse, latent_var, node_std, coords]
    }
}

fn kl_weight(cfg: &Config, step: usize) -> f64 {
    let ramp = (cfg.anneal_fraction * cfg.steps as f64).max(1.0);
    let t = (step as f64 / ramp).min(1.0);
    cfg.kl_start + t * (cfg.kl_end - cfg.kl_start)
}

fn corruption_levels(cfg: &Config, c: Corruption) -> Vec<f64> {
    match c {
        Corruption::Noise => cfg.noise_levels.clone(),
        Corruption::Blur => cfg.blur_levels.iter().map(|&v| v as f64).collect(),
        Corruption::Occlusion => cfg.occlusion_levels.iter().map(|&v| v as f64).collect(),
    }
}

const CORRUPTIONS: [Corruption; 3] = [Corruption::Noise, Corruption::Blur, Corruption::Occlusion];

fn apply_corruption(c: Corruption, level: f64, x: &Tensor, points: &Tensor) -> Tensor {
    match c {
        Corruption::Noise => corrupt::gaussian_noise(x, level),
        Corruption::Blur => corrupt::blur(x, level as i64),
        Corruption::Occlusion => corrupt::occlude(x, points, level as i64),
    }
}

/// The test set: images, normalised landmarks, and the occluded landmark positions (pixels).
struct TestSet {
    x: Tensor,
    y: Tensor,
    occluded: Tensor,
}

fn train_arm(
    cfg: &Config,
    arm: Arm,
    train_x: &Tensor,
    train_y: &Tensor,
    ctx: &mut RunContext,
    progress: &mut Progress,
    offset: u64,
) -> Result<(nn::VarStore, Model, Option<i32>)> {
    let device = ctx.device;
    let (vs, model) = crate::nn::build_on(ctx.seed, device, |p| {
        Ok(Model {
            encoder: Encoder::new(&(p / "encoder"), cfg),
            decoder: Decoder::new(&(p / "decoder"), arm, cfg, device),
        })
    })?;
    let mut opt = Optimizer::new(
        crate::optim::trainable(&vs),
        &OptimConfig {
            name: OptimName::Adam,
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            ..Default::default()
        },
    )?;
    let n = train_x.size()[0];
    let (mut acc, mut acc_mse) = (
        Tensor::zeros([], (Kind::Float, device)),
        Tensor::zeros([], (Kind::Float, device)),
    );
    let mut since = 0;
    for step in 1..=cfg.steps {
        rng::reseed(ctx.seed, Stream::Shuffle, arm as u64, step as u64);
        let idx =
            Tensor::randint(n, [cfg.batch_size], (Kind::Int64, Device::Cpu)).to_device(device);
        let (x, y) = (train_x.index_select(0, &idx), train_y.index_select(0, &idx));
        let beta = kl_weight(cfg, step);
        opt.zero_grad();
        let (loss, mse) = model.loss(&x, &y, beta);
        loss.backward();
        opt.step();
        acc += loss.detach();
        acc_mse += mse.detach();
        since += 1;
        if step % cfg.log_every == 0 || step == cfg.steps {
            let l = acc.double_value(&[]) / since as f64;
            let rmse_px =
                (acc_mse.double_value(&[]) / since as f64 * 2.0).sqrt() * cfg.shapes.size as f64;
            if !l.is_finite() {
                bail!(
                    "{} diverged (loss {l}) by step {step}: lower lr",
                    arm.as_str()
                );
            }
            ctx.log(vec![
                arm.as_str().into(),
                step.into(),
                beta.into(),
                l.into(),
                rmse_px.into(),
            ])?;
            acc = Tensor::zeros([], (Kind::Float, device));
            acc_mse = Tensor::zeros([], (Kind::Float, device));
            since = 0;
            progress.update(
                offset + step as u64,
                &format!("{} step {step}: train RMSE {rmse_px:.2} px", arm.as_str()),
            );
            if let Some(sig) = ctx.interrupt.requested() {
                return Ok((vs, model, Some(sig)));
            }
        }
    }
    Ok((vs, model, None))
}

/// Per-image measurements of one arm under one corruption level: (rmse, latent var, node std)
/// per test image.
type PerImage = Vec<[f64; 3]>;

/// One arm's measurements: (corruption, severity index, level, per image) per setting.
type ArmResults = Vec<(Corruption, usize, f64, PerImage)>;

fn evaluate(
    cfg: &Config,
    model: &Model,
    test: &TestSet,
    c: Corruption,
    li: usize,
    level: f64,
    seed: u64,
) -> PerImage {
    let size = cfg.shapes.size as f64;
    let n = test.x.size()[0];
    let mut out = vec![];
    tch::no_grad(|| {
        // The same corrupted images for every arm: noise drawn from (corruption, level).
        rng::reseed(seed, Stream::Probe, c as u64, li as u64);
        let xc = apply_corruption(c, level, &test.x, &test.occluded);
        let mut start = 0;
        while start < n {
            let len = cfg.eval_batch.min(n - start);
            let [rmse, lv, ns, _] = model.measure(
                &xc.narrow(0, start, len),
                &test.y.narrow(0, start, len),
                cfg.samples,
                size,
            );
            let v = |t: Tensor| Vec::<f32>::try_from(t).unwrap_or_default();
            let (r, l, s) = (v(rmse), v(lv), v(ns));
            for i in 0..len as usize {
                out.push([r[i] as f64, l[i] as f64, s[i] as f64]);
            }
            start += len;
        }
    });
    out
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    s / n as f64
}

fn train(table: &Table, ctx: &mut RunContext) -> Result<Outcome> {
    let cfg: Config = config::typed(table)?;
    let size = cfg.shapes.size as f64;
    rng::reseed(ctx.seed, Stream::Data, 0, 0);
    let (train_x, train_lm) = shapes::sample(&cfg.shapes, cfg.train_images, ctx.device);
    rng::reseed(ctx.seed, Stream::Data, 1, 0);
    let (test_x, test_lm) = shapes::sample(&cfg.shapes, cfg.test_images, ctx.device);
    let nodes = cfg.shapes.organs * cfg.shapes.per_organ;
    let pick = Tensor::randint(
        nodes,
        [cfg.test_images, cfg.occluded_points],
        (Kind::Int64, Device::Cpu),
    )
    .to_device(ctx.device);
    let occluded = test_lm.gather(1, &pick.unsqueeze(-1).expand([-1, -1, 2], false), false);
    let test = TestSet {
        x: test_x,
        y: &test_lm / size,
        occluded,
    };
    let train_y = &train_lm / size;

    ctx.open_metrics(&["arm", "step", "kl_weight", "train_loss", "train_rmse_px"])?;
    let mut progress = Progress::new(
        "latent-uncertainty",
        (cfg.steps * cfg.arms.len()) as u64,
        ctx.quiet,
    );
    let mut per_arm: Vec<(Arm, ArmResults)> = vec![];
    let mut sample_rows = vec![];
    let mut image_rows = vec![];
    for (ai, &arm) in cfg.arms.iter().enumerate() {
        let offset = (ai * cfg.steps) as u64;
        let (_vs, model, stopped) =
            train_arm(&cfg, arm, &train_x, &train_y, ctx, &mut progress, offset)?;
        if let Some(sig) = stopped {
            progress.finish();
            return Ok(Outcome::Interrupted(sig));
        }
        let mut results = vec![];
        for c in CORRUPTIONS {
            for (li, &level) in corruption_levels(&cfg, c).iter().enumerate() {
                results.push((
                    c,
                    li,
                    level,
                    evaluate(&cfg, &model, &test, c, li, level, ctx.seed),
                ));
            }
        }
        if ai == cfg.arms.iter().position(|a| a.graph()).unwrap_or(0) {
            samples_figure_data(
                &cfg,
                &model,
                &test,
                ctx.seed,
                arm,
                &mut sample_rows,
                &mut image_rows,
            );
        }
        per_arm.push((arm, results));
    }
    progress.finish();

    // images.csv and severity.csv.
    let mut img_rows = vec![];
    let mut sev_rows = vec![];
    for (arm, results) in &per_arm {
        for (c, li, level, v) in results {
            for (i, m) in v.iter().enumerate() {
                img_rows.push(vec![
                    arm.as_str().into(),
                    c.as_str().into(),
                    li.to_string(),
                    float(*level),
                    i.to_string(),
                    float(m[0]),
                    float(m[1]),
                    float(m[2]),
                ]);
            }
            sev_rows.push(vec![
                arm.as_str().into(),
                c.as_str().into(),
                li.to_string(),
                float(*level),
                float(mean(v.iter().map(|m| m[0]))),
                float(mean(v.iter().map(|m| m[1]))),
                float(mean(v.iter().map(|m| m[2]))),
            ]);
        }
    }
    let icols = [
        "arm",
        "corruption",
        "severity",
        "level",
        "image",
        "rmse_px",
        "latent_var",
        "node_std_px",
    ];
    write_atomic(&ctx.dir.join("images.csv"), &csv_bytes(&icols, &img_rows)?)?;
    let scols = [
        "arm",
        "corruption",
        "severity",
        "level",
        "rmse_px",
        "latent_var",
        "node_std_px",
    ];
    write_atomic(
        &ctx.dir.join("severity.csv"),
        &csv_bytes(&scols, &sev_rows)?,
    )?;
    let sc = ["setting", "kind", "sample", "node", "x", "y"];
    write_atomic(&ctx.dir.join("samples.csv"), &csv_bytes(&sc, &sample_rows)?)?;
    let ic = ["setting", "row", "col", "value"];
    write_atomic(&ctx.dir.join("image.csv"), &csv_bytes(&ic, &image_rows)?)?;

    summarise(&cfg, ctx, &per_arm)?;
    Ok(Outcome::Completed)
}

/// summary.csv: per arm and measure, Spearman with the RMSE over every (image, corruption,
/// severity), AUROC clean vs severe per corruption, corruptions with a strictly rising mean,
/// the clean mean.
fn summarise(cfg: &Config, ctx: &mut RunContext, per_arm: &[(Arm, ArmResults)]) -> Result<()> {
    let mut rows = vec![];
    let mut finals = serde_json::Map::new();
    for (arm, results) in per_arm {
        for (mi, measure) in [(1usize, "latent_var"), (2, "node_std_px")] {
            let (mut u, mut e) = (vec![], vec![]);
            for (_, _, _, v) in results {
                for m in v {
                    u.push(m[mi]);
                    e.push(m[0]);
                }
            }
            let rho = spearman(&u, &e);
            let mut aucs = vec![];
            let mut monotone = 0;
            let mut clean = f64::NAN;
            for c in CORRUPTIONS {
                let series: Vec<&(Corruption, usize, f64, PerImage)> =
                    results.iter().filter(|r| r.0 == c).collect();
                let at = |li: usize| -> Vec<f64> {
                    series
                        .iter()
                        .filter(|r| r.1 == li)
                        .flat_map(|r| r.3.iter().map(|m| m[mi]))
                        .collect()
                };
                let neg = at(0);
                let pos: Vec<f64> = (cfg.severe_from..series.len()).flat_map(at).collect();
                aucs.push(auroc(&pos, &neg));
                let means: Vec<f64> = (0..series.len())
                    .map(|li| mean(at(li).into_iter()))
                    .collect();
                if means.windows(2).all(|w| w[1] > w[0]) {
                    monotone += 1;
                }
                clean = means[0];
            }
            rows.push(vec![
                arm.as_str().into(),
                measure.into(),
                float(rho),
                float(aucs[0]),
                float(aucs[1]),
                float(aucs[2]),
                monotone.to_string(),
                float(clean),
            ]);
            let key = format!("{}_{measure}", arm.as_str().replace('-', "_"));
            finals.insert(format!("{key}_spearman"), json_float(rho));
            finals.insert(format!("{key}_clean"), json_float(clean));
        }
    }
    let cols = [
        "arm",
        "measure",
        "spearman_rmse",
        "auroc_noise",
        "auroc_blur",
        "auroc_occlusion",
        "monotone_corruptions",
        "clean_mean",
    ];
    write_atomic(&ctx.dir.join("summary.csv"), &csv_bytes(&cols, &rows)?)?;
    ctx.set_final_metrics(finals);
    Ok(())
}

/// For the figure of landmark samples: one test image clean and at the worst level of each
/// corruption, its 32×32 average-pooled pixels, ten decoded samples and the truth.
fn samples_figure_data(
    cfg: &Config,
    model: &Model,
    test: &TestSet,
    seed: u64,
    arm: Arm,
    samples: &mut Vec<Vec<String>>,
    pixels: &mut Vec<Vec<String>>,
) {
    let size = cfg.shapes.size as f64;
    let x0 = test.x.narrow(0, 0, 1);
    let y0 = test.y.narrow(0, 0, 1);
    let occ = test.occluded.narrow(0, 0, 1);
    let mut settings = vec![("clean".to_string(), x0.shallow_clone())];
    for c in CORRUPTIONS {
        let levels = corruption_levels(cfg, c);
        let (li, level) = (levels.len() - 1, levels[levels.len() - 1]);
        rng::reseed(seed, Stream::Probe, 10 + c as u64, li as u64);
        settings.push((
            format!("{} {level}", c.as_str()),
            apply_corruption(c, level, &x0, &occ),
        ));
    }
    tch::no_grad(|| {
        for (name, x) in &settings {
            rng::reseed(seed, Stream::Probe, 20, arm as u64);
            let coords = model.measure(x, &y0, 10, size)[3].shallow_clone() * size;
            let cv = Vec::<f32>::try_from(coords.flatten(0, -1)).unwrap_or_default();
            let nodes = model.decoder.nodes as usize;
            for s in 0..10usize {
                for j in 0..nodes {
                    let b = (s * nodes + j) * 2;
                    samples.push(vec![
                        name.clone(),
                        "sample".into(),
                        s.to_string(),
                        j.to_string(),
                        float(cv[b] as f64),
                        float(cv[b + 1] as f64),
                    ]);
                }
            }
            let yv = Vec::<f32>::try_from((&y0 * size).flatten(0, -1)).unwrap_or_default();
            for j in 0..nodes {
                samples.push(vec![
                    name.clone(),
                    "truth".into(),
                    "0".into(),
                    j.to_string(),
                    float(yv[2 * j] as f64),
                    float(yv[2 * j + 1] as f64),
                ]);
            }
            let pooled = x.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>);
            let side = pooled.size()[3];
            let pv = Vec::<f32>::try_from(pooled.flatten(0, -1)).unwrap_or_default();
            for r in 0..side as usize {
                for c in 0..side as usize {
                    pixels.push(vec![
                        name.clone(),
                        r.to_string(),
                        c.to_string(),
                        float(pv[r * side as usize + c] as f64),
                    ]);
                }
            }
        }
    });
}

// ---- The paper's claims (Cosarinsky et al., CheXmask-U) --------------------------------------

use crate::claims::{self, Claim, Expect, Measured, RunFiles, Scale};

const CLAIMS: &[Claim] = &[
    Claim {
        id: "latent-var-monotone",
        statement: "the latent variance rises with corruption severity: share of (arm without skips, corruption) whose mean rises at every severity step (all, from the issue; the paper shows it rising)",
        paper: "both measures increase with severity",
        expect: Expect::AtLeast(1.0),
        unit: "fraction",
        scale: Scale::Both,
        variant: None,
        measure: monotone_latent,
    },
    Claim {
        id: "node-std-monotone",
        statement: "the sampled per-node std rises with corruption severity: share of (arm without skips, corruption) whose mean rises at every severity step (all, from the issue)",
        paper: "both measures increase with severity",
        expect: Expect::AtLeast(1.0),
        unit: "fraction",
        scale: Scale::Both,
        variant: None,
        measure: monotone_std,
    },
    Claim {
        id: "latent-var-spearman",
        statement: "the latent variance ranks images by landmark error: smallest Spearman(latent variance, RMSE) over arms without skips (> 0.4, from the issue)",
        paper: "flags unreliable predictions",
        expect: Expect::Above(0.4),
        unit: "rho",
        scale: Scale::Both,
        variant: None,
        measure: spearman_latent,
    },
    Claim {
        id: "node-std-spearman",
        statement: "the sampled per-node std ranks images by landmark error: smallest Spearman(node std, RMSE) over arms without skips (> 0.4, from the issue)",
        paper: "flags unreliable predictions",
        expect: Expect::Above(0.4),
        unit: "rho",
        scale: Scale::Both,
        variant: None,
        measure: spearman_std,
    },
    Claim {
        id: "skip-shrinks-spread",
        statement: "image-to-decoder skips shrink the sampled spread: largest ratio of clean node std with skips to without, over decoders (< 1, the official code's Skip vs NoSkip caveat)",
        paper: "skip connections reduce predictive std",
        expect: Expect::Below(1.0),
        unit: "ratio",
        scale: Scale::Both,
        variant: None,
        measure: skip_ratio,
    },
];

const NO_SKIP: [&str; 2] = ["mlp", "graph"];

fn monotone_share(f: &RunFiles, measure: &str) -> Result<Measured> {
    let t = f.csv("summary.csv")?;
    let (mut hit, mut total) = (0.0, 0.0);
    for arm in NO_SKIP {
        for v in t.numbers(
            "monotone_corruptions",
            &[("arm", arm), ("measure", measure)],
        )? {
            hit += v;
            total += 3.0;
        }
    }
    if total == 0.0 {
        return Ok(Measured::NotApplicable(
            "no arm without skips in the run".into(),
        ));
    }
    claims::value(hit / total)
}

fn monotone_latent(f: &RunFiles) -> Result<Measured> {
    monotone_share(f, "latent_var")
}
fn monotone_std(f: &RunFiles) -> Result<Measured> {
    monotone_share(f, "node_std_px")
}

fn smallest_spearman(f: &RunFiles, measure: &str) -> Result<Measured> {
    let t = f.csv("summary.csv")?;
    let mut v = vec![];
    for arm in NO_SKIP {
        v.extend(t.numbers("spearman_rmse", &[("arm", arm), ("measure", measure)])?);
    }
    if v.is_empty() {
        return Ok(Measured::NotApplicable(
            "no arm without skips in the run".into(),
        ));
    }
    claims::value(v.into_iter().fold(f64::INFINITY, f64::min))
}

fn spearman_latent(f: &RunFiles) -> Result<Measured> {
    smallest_spearman(f, "latent_var")
}
fn spearman_std(f: &RunFiles) -> Result<Measured> {
    smallest_spearman(f, "node_std_px")
}

fn skip_ratio(f: &RunFiles) -> Result<Measured> {
    let t = f.csv("summary.csv")?;
    let mut worst = f64::NEG_INFINITY;
    for base in NO_SKIP {
        let skip = format!("{base}-skip");
        let a = t.numbers("clean_mean", &[("arm", &skip), ("measure", "node_std_px")])?;
        let b = t.numbers("clean_mean", &[("arm", base), ("measure", "node_std_px")])?;
        if let (Some(a), Some(b)) = (a.first(), b.first()) {
            worst = worst.max(a / b);
        }
    }
    if worst.is_infinite() {
        return Ok(Measured::NotApplicable(
            "the run has no decoder both with and without skips".into(),
        ));
    }
    claims::value(worst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_weight_anneals_linearly_then_holds() {
        let cfg = Config {
            steps: 1000,
            anneal_fraction: 0.2,
            ..Default::default()
        };
        assert!((kl_weight(&cfg, 0) - 1e-5).abs() < 1e-15);
        assert!((kl_weight(&cfg, 100) - (1e-5 + 0.5 * (1e-2 - 1e-5))).abs() < 1e-12);
        assert!((kl_weight(&cfg, 200) - 1e-2).abs() < 1e-15);
        assert!((kl_weight(&cfg, 900) - 1e-2).abs() < 1e-15);
    }

    #[test]
    fn every_arm_decodes_samples_per_image_and_skips_are_shared() {
        let _rng = crate::rng::serial();
        tch::manual_seed(0);
        let cfg = Config {
            channels: vec![4, 8, 8, 8],
            hidden: 16,
            graph_channels: 8,
            ..Default::default()
        };
        let (x, lm) = shapes::sample(&cfg.shapes, 3, Device::Cpu);
        let y = lm / 64.0;
        for arm in [Arm::Mlp, Arm::MlpSkip, Arm::Graph, Arm::GraphSkip] {
            let vs = nn::VarStore::new(Device::Cpu);
            let m = Model {
                encoder: Encoder::new(&(vs.root() / "e"), &cfg),
                decoder: Decoder::new(&(vs.root() / "d"), arm, &cfg, Device::Cpu),
            };
            let [rmse, lv, ns, coords] = tch::no_grad(|| m.measure(&x, &y, 5, 64.0));
            assert_eq!(coords.size(), vec![3, 5, 64, 2], "{arm:?}");
            assert_eq!(
                (rmse.size(), lv.size(), ns.size()),
                (vec![3], vec![3], vec![3])
            );
            assert!(ns.min().double_value(&[]) > 0.0, "{arm:?}: samples differ");
            // With σ → 0 every sample decodes to the prediction at μ: zero spread.
            let e = m.encoder.forward(&x);
            let z = e.mu.repeat_interleave_self_int(4, 0, None);
            let d = tch::no_grad(|| m.decoder.forward(&z, &e.maps, 4).coords);
            let spread = d
                .view([3, 4, 64, 2])
                .std_dim([1i64].as_slice(), true, false)
                .max();
            assert!(spread.double_value(&[]) < 1e-6, "{arm:?}");
            let (loss, _) = m.loss(&x, &y, 1e-2);
            assert!(loss.double_value(&[]).is_finite());
        }
    }
}
