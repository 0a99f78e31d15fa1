//! Distance from initialisation, ‖w_t − w_0‖ per layer and in total: the quantity "Train
//! longer, generalize better" tracks (it grows like log t) and that measures how far SGD noise
//! pushes the weights. Any experiment using `train::fit` turns it on with
//! `train.distance_from_init = true`; w_0 is saved in the run directory (`init.safetensors`)
//! so a resumed run measures from the same origin.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use tch::nn::VarStore;
use tch::{Kind, Tensor};

const FILE: &str = "init.safetensors";

pub struct InitDistance {
    /// Layer name → (current variables, their initial values).
    layers: BTreeMap<String, Vec<(Tensor, Tensor)>>,
}

/// "fc0.weight" → "fc0"; "head.fc1.bias" → "head.fc1".
fn layer_of(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(l, _)| l)
}

impl InitDistance {
    /// Records w_0 now, or reloads it from `run_dir` when the run is resuming.
    pub fn open(run_dir: &Path, vs: &VarStore) -> Result<Self> {
        let named = crate::optim::trainable(vs);
        let path = run_dir.join(FILE);
        let init: BTreeMap<String, Tensor> = if path.exists() {
            Tensor::read_safetensors(&path)
                .with_context(|| format!("reading {}", path.display()))?
                .into_iter()
                .collect()
        } else {
            let copies: Vec<(String, Tensor)> = named
                .iter()
                .map(|(n, t)| (n.clone(), t.detach().copy()))
                .collect();
            Tensor::write_safetensors(&copies, &path)
                .with_context(|| format!("writing {}; check free disk space", path.display()))?;
            copies.into_iter().collect()
        };
        let mut layers: BTreeMap<String, Vec<(Tensor, Tensor)>> = BTreeMap::new();
        for (name, t) in named {
            let w0 = init
                .get(&name)
                .with_context(|| format!("{} has no initial value for {name}", path.display()))?
                .to_device(t.device());
            layers
                .entry(layer_of(&name).to_string())
                .or_default()
                .push((t, w0));
        }
        Ok(InitDistance { layers })
    }

    pub fn columns(&self) -> Vec<String> {
        self.layers
            .keys()
            .map(|l| format!("dist_{l}"))
            .chain(["dist_total".to_string()])
            .collect()
    }

    /// ‖w − w_0‖ per layer, then over all layers (one host read for all of them).
    pub fn measure(&self) -> Vec<f64> {
        let sq: Vec<Tensor> = tch::no_grad(|| {
            self.layers
                .values()
                .map(|vars| {
                    vars.iter()
                        .map(|(w, w0)| (w - w0).square().sum(Kind::Double))
                        .fold(
                            Tensor::zeros([], (Kind::Double, w0_device(vars))),
                            |a, b| a + b,
                        )
                })
                .collect()
        });
        let sq: Vec<f64> =
            Vec::try_from(Tensor::stack(&sq, 0).to_device(tch::Device::Cpu)).unwrap_or_default();
        let total = sq.iter().sum::<f64>().sqrt();
        sq.into_iter().map(f64::sqrt).chain([total]).collect()
    }
}

fn w0_device(vars: &[(Tensor, Tensor)]) -> tch::Device {
    vars.first().map_or(tch::Device::Cpu, |v| v.0.device())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device};

    #[test]
    fn distance_per_layer_and_total_and_reload() {
        let _rng = crate::rng::serial();
        let dir = tempfile::tempdir().unwrap();
        let vs = VarStore::new(Device::Cpu);
        let _a = nn::linear(vs.root() / "fc0", 3, 2, Default::default());
        let _b = nn::linear(vs.root() / "fc1", 2, 1, Default::default());
        let d = InitDistance::open(dir.path(), &vs).unwrap();
        assert_eq!(d.columns(), vec!["dist_fc0", "dist_fc1", "dist_total"]);
        assert_eq!(d.measure(), vec![0.0, 0.0, 0.0]);
        tch::no_grad(|| {
            let v = vs.variables();
            let _ = v["fc0.weight"].shallow_clone().g_add_scalar_(1.0); // 6 entries: norm √6
            let _ = v["fc1.bias"].shallow_clone().g_add_scalar_(2.0);
        });
        let m = d.measure();
        assert!((m[0] - 6f64.sqrt()).abs() < 1e-6 && (m[1] - 2.0).abs() < 1e-6);
        assert!((m[2] - 10f64.sqrt()).abs() < 1e-6);
        // Reopening (a resume) measures from the saved w_0, not from the current weights.
        let again = InitDistance::open(dir.path(), &vs).unwrap();
        assert!((again.measure()[2] - 10f64.sqrt()).abs() < 1e-6);
    }
}
