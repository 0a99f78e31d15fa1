//! `--device auto|cpu|cuda|cuda:N`. Nothing falls back silently: asking for CUDA where there is
//! none is an error, and `auto` says which device it picked in run.json.

use anyhow::{bail, Result};
use tch::Device;

pub fn parse(spec: &str) -> Result<Device> {
    let spec = spec.trim().to_ascii_lowercase();
    let cuda_count = || tch::Cuda::device_count() as usize;
    match spec.as_str() {
        "auto" => Ok(if tch::Cuda::is_available() {
            Device::Cuda(0)
        } else {
            Device::Cpu
        }),
        "cpu" => Ok(Device::Cpu),
        "gpu" => bail!("--device gpu: write cuda (or cuda:N for the N-th GPU)"),
        "cuda" => {
            if cuda_count() == 0 {
                bail!("--device cuda: libtorch sees no CUDA device on this machine; use --device cpu (or auto)");
            }
            Ok(Device::Cuda(0))
        }
        s => {
            let Some(index) = s
                .strip_prefix("cuda:")
                .and_then(|i| i.parse::<usize>().ok())
            else {
                bail!("--device {spec}: not a device; use auto, cpu, cuda or cuda:N");
            };
            let n = cuda_count();
            if index >= n {
                bail!("--device {spec}: this machine has {n} CUDA device(s); use cuda:0..cuda:{} or cpu", n.saturating_sub(1));
            }
            Ok(Device::Cuda(index))
        }
    }
}

/// "cpu" or "cuda:N", the spelling `--device` accepts.
pub fn name(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".to_string(),
    }
}

/// A human description of the hardware: the GPU's name (from nvidia-smi when present) or the
/// CPU model, for run.json.
pub fn describe(device: Device) -> String {
    match device {
        Device::Cuda(i) => std::process::Command::new("nvidia-smi")
            .args([
                "--query-gpu=name",
                "--format=csv,noheader",
                "-i",
                &i.to_string(),
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("CUDA device {i}")),
        _ => std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .map(|m| format!("{m} ({} threads for torch)", tch::get_num_threads()))
            .unwrap_or_else(|| "CPU".to_string()),
    }
}

/// The version of the libtorch actually loaded: read next to the mapped libtorch_cpu.so (the
/// wheel's torch/version.py), so an LD_LIBRARY_PATH pointing elsewhere is reported truthfully.
pub fn torch_version() -> String {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    maps.lines()
        .filter_map(|l| l.split_whitespace().last())
        .find(|p| p.ends_with("libtorch_cpu.so"))
        .and_then(|lib| {
            let dir = std::path::Path::new(lib).parent()?.parent()?;
            let text = std::fs::read_to_string(dir.join("version.py")).ok()?;
            let line = text.lines().find(|l| l.starts_with("__version__"))?;
            Some(line.split(['\'', '"']).nth(1)?.to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_rejects_nonsense() {
        assert_eq!(parse("cpu").unwrap(), Device::Cpu);
        assert_eq!(parse("CPU").unwrap(), Device::Cpu);
        assert!(parse("tpu")
            .unwrap_err()
            .to_string()
            .contains("use auto, cpu"));
        assert!(parse("cuda:x").is_err());
        if !tch::Cuda::is_available() {
            assert_eq!(parse("auto").unwrap(), Device::Cpu);
            assert!(parse("cuda")
                .unwrap_err()
                .to_string()
                .contains("no CUDA device"));
        }
    }

    #[test]
    fn reports_the_loaded_torch_version() {
        assert!(torch_version().starts_with("2.11.0"), "{}", torch_version());
    }
}
