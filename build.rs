//! Embeds the libtorch directory as an rpath so `target/release/stochlab` runs without
//! `LD_LIBRARY_PATH`, and keeps libtorch_cuda linked: rustc passes `--as-needed`, which would
//! otherwise drop it (nothing references its symbols directly) and CUDA would look absent.
use std::path::Path;

fn main() {
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
