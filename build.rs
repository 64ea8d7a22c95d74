//! Link-time code placement for the static musl build: see link/shim-hot.ld.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link/shim-hot.ld");
    println!("cargo:rerun-if-env-changed=SKIFF_LINK_MAP");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    // GNU ld (what rustc's musl target links with) and lld both take an
    // INSERT script; the glibc build keeps its default layout.
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "musl" {
        return;
    }
    let script = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join("link/shim-hot.ld");
    println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
    // `link/regen` asks for the linker's map, to name the sections it traced.
    let map = var("SKIFF_LINK_MAP");
    if !map.is_empty() {
        println!("cargo:rustc-link-arg-bins=-Wl,-Map,{map}");
    }
}
