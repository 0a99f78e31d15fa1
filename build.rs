//! Embeds the libtorch directory as an rpath so `target/release/stochlab` runs without
//! `LD_LIBRARY_PATH`, and keeps libtorch_cuda linked: rustc passes `--as-needed`, which would
//! otherwise drop it (nothing references its symbols directly) and CUDA would look absent.
use std::path::Path;

fn main() {
    embed_configs();
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
