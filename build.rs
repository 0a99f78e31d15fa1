//! Embeds the libtorch directory as an rpath so `target/release/stochlab` runs without
//! `LD_LIBRARY_PATH`, and keeps libtorch_cuda linked: rustc passes `--as-needed`, which would
//! otherwise drop it (nothing references its symbols directly) and CUDA would look absent.
//!
//! Also records the git commit the binary is built from (`STOCHLAB_BUILD_COMMIT`) and whether
//! its sources had uncommitted changes (`STOCHLAB_BUILD_DIRTY`), for run.json: the working
//! directory a run starts in says nothing about the code when the binary runs elsewhere.
use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn provenance() {
    // Rerun when the commit moves (HEAD, the branch ref, packed refs) or the sources change.
    for p in [
        "src",
        "experiments",
        "scripts",
        "build.rs",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={p}");
    }
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(r);
    }
    for w in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &w]) {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    let commit = git(&["rev-parse", "HEAD"]).unwrap_or_default();
    let dirty = if commit.is_empty() {
        String::new()
    } else {
        git(&["status", "--porcelain", "--untracked-files=no"])
            .map(|s| (!s.is_empty()).to_string())
            .unwrap_or_default()
    };
    println!("cargo:rustc-env=STOCHLAB_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=STOCHLAB_BUILD_DIRTY={dirty}");
}

fn main() {
    embed_configs();
    provenance();
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    if Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}

/// Writes `builtin_configs.rs`: every `experiments/*.toml` compiled in by name, so a binary run
/// from any folder has the defaults, the variants and the paper-scale configs.
fn embed_configs() {
    println!("cargo:rerun-if-changed=experiments");
    let dir = Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("experiments");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("experiments/ folder")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    let mut out = String::from("pub static BUILTIN_CONFIGS: &[(&str, &str)] = &[\n");
    for n in names {
        let path = dir.join(&n);
        println!("cargo:rerun-if-changed={}", path.display());
        out.push_str(&format!(
            "    ({:?}, include_str!({:?})),\n",
            n.trim_end_matches(".toml"),
            path.display().to_string()
        ));
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("builtin_configs.rs");
    std::fs::write(dest, out).expect("writing builtin_configs.rs");
}
