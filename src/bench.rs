//! Micro-benchmarks run by `make bench` against Python references in the same bench run
//! (bench/*.py). Each prints one JSON line.

use crate::cli::BenchArgs;
use crate::data::{AugmentConfig, DataConfig, Split};
use crate::nn::{Activation, Mlp};
use crate::optim::{OptimConfig, OptimName, Optimizer};
use crate::rng::{self, Stream};
use crate::train::train_step;
use anyhow::{bail, Result};
use std::path::Path;
use std::time::Instant;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

pub fn run(args: &BenchArgs, device: Device, data_dir: &Path) -> Result<String> {
    match args.what.as_str() {
        "classifier-step" => classifier_step(args, device),
        "data-epoch" => data_epoch(args, device, data_dir),
        "adam-step" => adam_step(args, device),
        "ksg" => ksg(args, device),
        "hessian" => hessian(args, device),
        "curvature" => curvature(args, device),
        "trp-step" => trp_step(args, device),
        "score-sampling" => score_sampling(args, device),
        "psgld" => psgld(args, device),
        "ga-generation" => ga_generation(args, device),
        other => {
            bail!("unknown benchmark `{other}`; available: classifier-step, data-epoch, adam-step, ksg, hessian, curvature, trp-step, score-sampling, psgld, ga-generation")
        }
    }
}

/// Seconds for the top Hessian eigenvalue of the MNIST MLP (784-256-256-10) on a batch of
/// `--batch-size` random inputs: the first gradients with their graph, then `--steps` power
/// iterations (Hessian-vector products by double backward), as `bench/hessian_power.py` does
/// with torch.autograd.grad. Median of 5 timed repeats after one warm-up.
fn hessian(args: &BenchArgs, device: Device) -> Result<String> {
    tch::manual_seed(0);
    let vs = VarStore::new(device);
    let model = Mlp::new(&vs.root(), 784, &[256, 256], 10, Activation::Relu, 0.0);
    let x = Tensor::randn([args.batch_size, 784], (Kind::Float, device));
    let y = Tensor::randint(10, [args.batch_size], (Kind::Int64, device));
    let params: Vec<Tensor> = crate::optim::trainable(&vs)
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    let mut times = vec![];
    let mut value = 0.0;
    for i in 0..6 {
        let start = Instant::now();
        let loss = tch::nn::ModuleT::forward_t(&model, &x, false).cross_entropy_for_logits(&y);
        let h = crate::train::hessian::Hessian::new(
            params.iter().map(Tensor::shallow_clone).collect(),
            vec![(loss, 1.0)],
        );
        // A negative tolerance never stops early: exactly `steps` iterations, like the reference.
        value = h.top_eigenvalue(args.steps, -1.0).value;
        if i > 0 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(serde_json::json!({
        "bench": "hessian",
        "impl": "stochlab",
        "device": crate::device::name(device),
        "batch_size": args.batch_size,
        "iterations": args.steps,
        "seconds": times[times.len() / 2],
        "lambda_max": value,
        "threads": tch::get_num_threads(),
    })
    .to_string())
}

/// Seconds, Hessian-vector products and value for the top Hessian eigenvalue of the MNIST MLP
/// (784-256-256-10, ReLU) at the weights and batch of `--input` (an .npz written by
/// `bench/hessian_top.py`: fc0.weight … fc2.bias, x, y), by Lanczos to relative tolerance
/// `--tol` (at most `--steps` products), timed from building the first gradients' graph;
/// median of 3 timed repeats after one warm-up, each from its own random start. Also a tight
/// solve (tolerance 1e-6) as the accurate value both sides are judged against.
fn curvature(args: &BenchArgs, device: Device) -> Result<String> {
    use crate::train::hessian::Hessian;
    use crate::train::spectrum::lanczos_top_k;
    let Some(path) = &args.input else {
        bail!("bench curvature needs --input PROBLEM.npz (written by bench/hessian_top.py)");
    };
    let (mut x, mut y, mut weights) = (None, None, vec![]);
    for (name, t) in
        Tensor::read_npz(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?
    {
        match name.as_str() {
            "x" => x = Some(t.to_device(device)),
            "y" => y = Some(t.to_kind(Kind::Int64).to_device(device)),
            _ => weights.push((name, t.to_device(device))),
        }
    }
    let (Some(x), Some(y)) = (x, y) else {
        bail!("{} has no `x` and `y` arrays", path.display());
    };
    let vs = VarStore::new(device);
    let model = Mlp::new(&vs.root(), 784, &[256, 256], 10, Activation::Relu, 0.0);
    crate::run::checkpoint::copy_into(&vs.variables(), weights, &path.display().to_string())?;
    let params: Vec<Tensor> = crate::optim::trainable(&vs)
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    let hessian = || {
        let loss = tch::nn::ModuleT::forward_t(&model, &x, false).cross_entropy_for_logits(&y);
        Hessian::new(
            params.iter().map(Tensor::shallow_clone).collect(),
            vec![(loss, 1.0)],
        )
    };
    let (mut times, mut products, mut values) = (vec![], vec![], vec![]);
    for i in 0..4 {
        tch::manual_seed(i);
        let start = Instant::now();
        let top = lanczos_top_k(&hessian(), 1, args.tol, args.steps);
        if let Device::Cuda(_) = device {
            tch::Cuda::synchronize(0);
        }
        if i > 0 {
            times.push(start.elapsed().as_secs_f64());
            products.push(top.products as f64);
            values.push(top.values[0]);
        }
    }
    tch::manual_seed(100);
    let tight = lanczos_top_k(&hessian(), 3, 1e-6, 300);
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let worst = values
        .iter()
        .map(|v| ((v - tight.values[0]) / tight.values[0]).abs())
        .fold(0.0, f64::max);
    Ok(serde_json::json!({
        "bench": "curvature",
        "impl": "stochlab",
        "device": crate::device::name(device),
        "batch_size": x.size()[0],
        "tol": args.tol,
        "seconds": median(&times),
        "products": median(&products),
        "lambda_max": median(&values),
        "max_rel_error": worst,
        "lambda_tight": tight.values[0],
        "tight_products": tight.products,
        "tight_top3": tight.values,
        "values": values,
        "tight_top3": tight.values,
        "values": values,
        "threads": tch::get_num_threads(),
    })
    .to_string())
}

/// Seconds per KSG estimate (`--steps` timed repeats after `--warmup`, median) on a user's
/// sample, as `bench/ksg_npeet.py` times npeet-plus's `mi()`: no standardisation, 1e-10 jitter.
fn ksg(args: &BenchArgs, device: Device) -> Result<String> {
    use crate::info::mi::{self, MiEstimator, MiParams, Preprocess, Var};
    let Some(path) = &args.input else {
        bail!("bench ksg needs --input FILE.csv (headerless numbers; X = first --dx columns)");
    };
    // Full f64 precision, as numpy hands the same numbers to npeet.
    let mut rows: Vec<Vec<f64>> = vec![];
    for rec in csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(path)?
        .records()
    {
        let rec = rec?;
        rows.push(
            rec.iter()
                .map(|v| v.trim().parse::<f64>())
                .collect::<Result<_, _>>()?,
        );
    }
    let n = rows.len() as i64;
    let d = rows.first().map_or(0, Vec::len);
    if args.dx == 0 || args.dx >= d {
        bail!(
            "--dx {} must leave columns for both X and Y ({} has {d})",
            args.dx,
            path.display()
        );
    }
    let flat: Vec<f64> = rows.into_iter().flatten().collect();
    let all = Tensor::from_slice(&flat)
        .view([n, d as i64])
        .to_device(device);
    let (x, y) = (
        all.narrow(1, 0, args.dx as i64),
        all.narrow(1, args.dx as i64, (d - args.dx) as i64),
    );
    let params = MiParams {
        k: args.k,
        preprocess: Preprocess::None,
        ..Default::default()
    };
    let mut times = vec![];
    let mut estimate = 0.0;
    for i in 0..args.warmup + args.steps {
        tch::manual_seed(i as i64);
        let start = Instant::now();
        estimate = mi::mutual_information(MiEstimator::Ksg, &params, &x, Var::Continuous(&y))?;
        if i >= args.warmup {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(serde_json::json!({
        "bench": "ksg",
        "impl": "stochlab",
        "device": crate::device::name(device),
        "n": n,
        "dx": args.dx,
        "dy": d - args.dx,
        "k": args.k,
        "seconds": times.get(times.len() / 2).copied().unwrap_or(f64::NAN),
        "mi_nats": estimate,
        "threads": crate::info::knn::threads(),
    })
    .to_string())
}

/// Seconds per Adam step over a ResNet-20's parameters (about 0.27M in 65 tensors), with
/// fixed random gradients: the optimizer alone, as `bench/adam_step.py` times torch.optim.Adam.
fn adam_step(args: &BenchArgs, device: Device) -> Result<String> {
    tch::manual_seed(0);
    let vs = VarStore::new(device);
    let _net = crate::nn::resnet::ResNet::new(&vs.root(), &[3, 32, 32], 20, 10, 0)?;
    let named = crate::optim::trainable(&vs);
    let tensors = named.len();
    let mut opt = Optimizer::new(
        named,
        &OptimConfig {
            name: OptimName::Adam,
            lr: 1e-3,
            ..Default::default()
        },
    )?;
    let _ = opt.grads().shallow_clone().normal_(0.0, 1.0);
    for _ in 0..args.warmup {
        opt.step();
    }
    let wait = || {
        if let Device::Cuda(_) = device {
            tch::Cuda::synchronize(0);
        }
    };
    wait();
    let start = Instant::now();
    for _ in 0..args.steps {
        opt.step();
    }
    wait();
    let secs = start.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "bench": "adam-step",
        "impl": "stochlab",
        "device": crate::device::name(device),
        "tensors": tensors,
        "params": opt.params().numel(),
        "seconds_per_step": secs / args.steps as f64,
        "threads": tch::get_num_threads(),
    })
    .to_string())
}

/// Seconds for one epoch of MNIST training batches (batch 128) with a random shift of up to 2
/// pixels: the batches `train::fit` draws (index_select on the device-resident set, batched
/// augmentation). `--steps` counts timed epochs (after one warm-up); the fastest is reported.
fn data_epoch(args: &BenchArgs, device: Device, data_dir: &Path) -> Result<String> {
    let cfg = DataConfig {
        name: "mnist".into(),
        augment: AugmentConfig {
            shift: 2,
            ..Default::default()
        },
        ..Default::default()
    };
    let data = crate::data::load(&cfg, data_dir, device, 0)?;
    let mut best = f64::INFINITY;
    let mut checksum = 0.0;
    for epoch in 0..=args.steps.max(1) {
        let start = Instant::now();
        rng::reseed(0, Stream::Shuffle, epoch as u64, 0);
        let mut total = Tensor::zeros([], (Kind::Float, device));
        for idx in data.train.batches(128, true, false) {
            let (x, _y) = data.train.take(&idx);
            total += data.augmented(x).sum(Kind::Float);
        }
        checksum = total.double_value(&[]);
        if epoch > 0 {
            best = best.min(start.elapsed().as_secs_f64());
        }
    }
    Ok(serde_json::json!({
        "bench": "data-epoch",
        "impl": "stochlab",
        "device": crate::device::name(device),
        "seconds": best,
        "checksum": checksum,
        "threads": tch::get_num_threads(),
    })
    .to_string())
}

/// Training steps per second of the `classifier` loop (MLP 784-256-256-10, Adam, random
/// inputs), start-up excluded: the same per-step work as `train::fit` (reseed, gather the batch,
/// forward, backward, step, keep loss and correct count on the device), read once per epoch.
fn classifier_step(args: &BenchArgs, device: Device) -> Result<String> {
    tch::manual_seed(0);
    let n = 8192;
    let split = Split {
        x: Tensor::randn([n, 784], (Kind::Float, device)),
        y: Tensor::randint(10, [n], (Kind::Int64, device)),
    };
    let vs = VarStore::new(device);
    let model = Mlp::new(&vs.root(), 784, &[256, 256], 10, Activation::Relu, 0.0);
    let cfg = OptimConfig {
        name: OptimName::Adam,
        lr: 1e-3,
        ..Default::default()
    };
    let mut opt = Optimizer::new(crate::optim::trainable(&vs), &cfg)?;

    let total = args.warmup + args.steps;
    let (mut done, mut epoch, mut checksum) = (0usize, 0u64, 0.0);
    let mut start = Instant::now();
    while done < total {
        rng::reseed(0, Stream::Shuffle, epoch, 0);
        let mut losses = vec![];
        let mut correct = vec![];
        for (i, idx) in split.batches(args.batch_size, true, true).enumerate() {
            if done == args.warmup {
                sync(device, &losses);
                start = Instant::now();
            }
            if done == total {
                break;
            }
            rng::reseed(0, Stream::Step, epoch, i as u64);
            let (x, y) = split.take(&idx);
            let (loss, c) = train_step(&model, &mut opt, &x, &y);
            losses.push(loss);
            correct.push(c);
            done += 1;
        }
        checksum += sync(device, &losses);
        let _ = Tensor::stack(&correct, 0).sum(Kind::Int64).int64_value(&[]);
        epoch += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "bench": "classifier-step",
        "impl": "stochlab",
        "device": crate::device::name(device),
        "batch_size": args.batch_size,
        "steps": args.steps,
        "seconds": secs,
        "steps_per_sec": args.steps as f64 / secs,
        "threads": tch::get_num_threads(),
        "loss_checksum": checksum,
    })
    .to_string())
}

/// Seconds for the SVD work of one TRP step on ResNet-20 (`trp`): for each of its 18 block
/// convs, the spatial (C·H) × (N·W) layout, a thin SVD, the energy-0.9 truncation and the
/// nuclear subgradient U_k V_kᵀ back in the conv's shape, as `bench/trp_step.py` does with
/// torch.linalg.svd. `--steps` timed steps after `--warmup`.
fn trp_step(args: &BenchArgs, device: Device) -> Result<String> {
    use crate::nn::lowrank::{Reshape, Svd};
    tch::manual_seed(0);
    let mut weights = vec![];
    let mut c_in = 16;
    for width in [16i64, 32, 64] {
        for _ in 0..3 {
            weights.push(Tensor::randn([width, c_in, 3, 3], (Kind::Float, device)) * 0.1);
            weights.push(Tensor::randn([width, width, 3, 3], (Kind::Float, device)) * 0.1);
            c_in = width;
        }
    }
    let step = || -> Result<Tensor> {
        let mut ranks = vec![];
        for w in &weights {
            let t = Svd::new(w, Reshape::Spatial)?.truncate(0.9);
            let _ = (t.low_rank, t.subgradient);
            ranks.push(t.rank);
        }
        Ok(Tensor::stack(&ranks, 0))
    };
    for _ in 0..args.warmup {
        let _ = step()?;
    }
    let wait = || {
        if let Device::Cuda(_) = device {
            tch::Cuda::synchronize(0);
        }
    };
    wait();
    let start = Instant::now();
    let mut last = None;
    for _ in 0..args.steps {
        last = Some(step()?);
    }
    wait();
    let secs = start.elapsed().as_secs_f64();
    let rank_sum = last.map_or(0, |r| r.sum(Kind::Int64).int64_value(&[]));
    Ok(serde_json::json!({
        "bench": "trp-step",
        "impl": "stochlab",
        "device": crate::device::name(device),
        "layers": weights.len(),
        "seconds_per_step": secs / args.steps.max(1) as f64,
        "rank_sum": rank_sum,
        "threads": tch::get_num_threads(),
    })
    .to_string())
}

/// Seconds to draw `--batch-size` points from a 2-D VP score model by `--steps` reverse-time
/// Euler–Maruyama steps (score-sde's network: [x, 16 Fourier features of t] → 3 × 128 SiLU →
/// 2; random weights, which the timing does not depend on), after an untimed warm-up sampling
/// of `--warmup` steps, without gradients — as `bench/score_sampling.py` does in PyTorch.
fn score_sampling(args: &BenchArgs, device: Device) -> Result<String> {
    use crate::sde::forward::{ForwardSde, Sde, SdeKind};
    use crate::sde::sample::{Corrector, Predictor, Sampler};
    use crate::sde::score::MlpScore;
    if args.steps < 2 || args.batch_size < 1 {
        bail!("score-sampling needs --steps >= 2 and --batch-size >= 1");
    }
    tch::manual_seed(0);
    let vs = VarStore::new(device);
    let sde = Sde::paper(SdeKind::Vp);
    let model = MlpScore::new(&vs.root(), sde, 2, &[128, 128, 128], 16, 1.0);
    let score = |x: &Tensor, t: &Tensor| model.score(x, t);
    let sampler = |steps: usize| Sampler {
        predictor: Predictor::EulerMaruyama,
        corrector: Corrector::None,
        corrector_steps: 0,
        steps,
        eps: sde.sample_eps(),
    };
    let wait = || {
        if let Device::Cuda(_) = device {
            tch::Cuda::synchronize(0);
        }
    };
    let (secs, mean) = tch::no_grad(|| {
        let x_t = sde.prior_sample(&Tensor::zeros([args.batch_size, 2], (Kind::Float, device)));
        if args.warmup >= 2 {
            let _ = sampler(args.warmup).run(&sde, &score, &x_t);
        }
        wait();
        let start = Instant::now();
        let x = sampler(args.steps).run(&sde, &score, &x_t);
        wait();
        let secs = start.elapsed().as_secs_f64();
        (secs, x.abs().mean(Kind::Double).double_value(&[]))
    });
    Ok(serde_json::json!({
        "bench": "score-sampling",
        "impl": "stochlab",
        "device": crate::device::name(device),
        "points": args.batch_size,
        "em_steps": args.steps,
        "seconds": secs,
        "mean_abs": mean,
        "threads": tch::get_num_threads(),
    })
    .to_string())
}

/// Seconds for `--steps` pSGLD steps of 4 chains of sgmcmc-potential's energy model (a 2-32-32-1
/// tanh MLP on 2-D configurations, force matching: the potential of a mini-batch of
/// `--batch-size` forces needs the forces −∇ₓE by a double backward), all chains as one `[4, P]`
/// batch through `bayes::samplers::sg_sample`, after an untimed run of `--warmup` steps; as
/// `bench/psgld.py` does with a loop over four PyTorch models.
fn psgld(args: &BenchArgs, device: Device) -> Result<String> {
    use crate::bayes::flatnet::{Act, FlatMlp};
    use crate::bayes::samplers::{chain_grad, sg_sample, SgMethod, SgOptions};
    const CHAINS: i64 = 4;
    const N: i64 = 500;
    const FORCE_VAR: f64 = 0.01;
    if args.steps < 2 || args.batch_size < 1 {
        bail!("psgld needs --steps >= 2 and --batch-size >= 1");
    }
    tch::manual_seed(0);
    let opt = (Kind::Float, device);
    let net = FlatMlp::new(2, 32, 2, 1, Act::Tanh);
    let x = Tensor::randn([N, 2], opt);
    let y = Tensor::randn([N, 2], opt);
    let b = args.batch_size;
    let potential = |theta: &Tensor, _step: usize| -> Result<(Tensor, Tensor)> {
        let idx = Tensor::randint(N, [CHAINS * b], (Kind::Int64, device));
        let xb = x.index_select(0, &idx).view([CHAINS, b, 2]);
        let yb = y.index_select(0, &idx).view([CHAINS, b, 2]);
        let th = theta.detach().set_requires_grad(true);
        let f = net.neg_input_grad(&th, &xb, true);
        let lik = (f - yb)
            .square()
            .sum_dim_intlist([1, 2].as_slice(), false, Kind::Float)
            * (N as f64 / (b as f64 * 2.0 * FORCE_VAR));
        let total = lik + th.square().sum_dim_intlist(1, false, Kind::Float) * 0.5;
        let g = chain_grad(&total, &th);
        Ok((total.detach(), g))
    };
    let options = |steps: usize| SgOptions {
        method: SgMethod::Psgld,
        steps,
        burn_in: steps - 1,
        thin: 1,
        ..SgOptions::default()
    };
    let theta0 = net.init(CHAINS, opt);
    let temperature = Tensor::ones([CHAINS], opt);
    let wait = || {
        if let Device::Cuda(_) = device {
            tch::Cuda::synchronize(0);
        }
    };
    if args.warmup >= 2 {
        let _ = sg_sample(&options(args.warmup), &theta0, &temperature, potential)?;
    }
    wait();
    let start = Instant::now();
    let draws = sg_sample(&options(args.steps), &theta0, &temperature, potential)?;
    wait();
    let secs = start.elapsed().as_secs_f64();
    let last = draws.potential.get(-1).mean(Kind::Double).double_value(&[]);
    Ok(serde_json::json!({
        "bench": "psgld",
        "impl": "stochlab",
        "device": crate::device::name(device),
        "chains": CHAINS,
        "steps": args.steps,
        "batch": b,
        "seconds": secs,
        "last_potential": last,
        "threads": tch::get_num_threads(),
    })
    .to_string())
}

/// Seconds to evaluate one generation of CartPole policies (neuroevolution's 4-16-16-2 tanh,
/// argmax action, 500 steps at most) read from `--input`: a headerless CSV, one row per
/// individual, the episode's initial state (4 numbers) then its parameters in
/// `envs::population`'s layout (W [in, out] row-major, then b, per layer), as
/// `bench/ga_generation.py` writes it. The whole population steps together
/// (`envs::population::cartpole_returns_from`: one batched forward per environment step).
/// Median of `--steps` timed evaluations after `--warmup` untimed ones; also the returns' sum,
/// which must equal the Python reference's.
fn ga_generation(args: &BenchArgs, device: Device) -> Result<String> {
    use crate::envs::cartpole::State;
    use crate::envs::population::{cartpole_returns_from, Layout};
    let Some(path) = &args.input else {
        bail!("bench ga-generation needs --input FILE.csv (bench/ga_generation.py writes one)");
    };
    let layout = Layout {
        sizes: vec![4, 16, 16, 2],
        out_std: 1.0,
    };
    let p = layout.params();
    let (mut starts, mut thetas) = (vec![], vec![]);
    for (i, rec) in csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        .records()
        .enumerate()
    {
        let v: Vec<f64> = rec?
            .iter()
            .map(|c| c.trim().parse::<f64>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("{} row {}: {e}", path.display(), i + 1))?;
        if v.len() != 4 + p {
            bail!(
                "{} row {}: {} numbers, expected 4 + {p} (state, then a 4-16-16-2 policy)",
                path.display(),
                i + 1,
                v.len()
            );
        }
        starts.push(State([v[0], v[1], v[2], v[3]]));
        thetas.push(v[4..].iter().map(|&x| x as f32).collect::<Vec<f32>>());
    }
    if thetas.is_empty() {
        bail!("{}: no individuals", path.display());
    }
    let refs: Vec<&[f32]> = thetas.iter().map(Vec::as_slice).collect();
    let eval = || cartpole_returns_from(&layout, &refs, &starts, 500, device);
    for _ in 0..args.warmup {
        let _ = eval();
    }
    let mut times = vec![];
    let mut returns = vec![];
    for _ in 0..args.steps.max(1) {
        let start = Instant::now();
        returns = eval();
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(serde_json::json!({
        "bench": "ga-generation",
        "impl": "stochlab",
        "device": crate::device::name(device),
        "population": thetas.len(),
        "seconds": times[times.len() / 2],
        "return_sum": returns.iter().sum::<f64>(),
        "threads": tch::get_num_threads(),
    })
    .to_string())
}

/// Reads the epoch's losses back (the once-per-epoch host sync the training loop does).
fn sync(device: Device, losses: &[Tensor]) -> f64 {
    if let Device::Cuda(_) = device {
        tch::Cuda::synchronize(0);
    }
    if losses.is_empty() {
        return 0.0;
    }
    Tensor::stack(losses, 0).sum(Kind::Double).double_value(&[])
}
