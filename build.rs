//! Link flags for the static musl build (the product, `make build`), each
//! for the memory of the long-running shim (docs/benchmarks.md, shim):
//! - link/shim-hot.ld: the functions the shim runs, in one place (see there).
//! - DT_RELR (`-z pack-relative-relocs`): a static-pie relocates itself at
//!   start, reading every relocation once; packed, ~120 KB of them become
//!   ~2 KB, in the file and in every process's memory. Only with a musl
//!   that applies them (1.2.4 and later; rustc's own copy is what links).
//!
//! Other targets (a plain `cargo build` for the host) keep the defaults.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link/shim-hot.ld");
    println!("cargo:rerun-if-env-changed=SKIFF_LINK_MAP");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "musl" {
        return;
    }
    let script = Path::new(&var("CARGO_MANIFEST_DIR")).join("link/shim-hot.ld");
    println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
    if musl_version(&var("RUSTC"), &var("TARGET")).is_some_and(|v| v >= (1, 2, 4)) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    // link/regen asks for the linker's map, to name the sections it traced.
    let map = var("SKIFF_LINK_MAP");
    if !map.is_empty() {
        println!("cargo:rustc-link-arg-bins=-Wl,-Map,{map}");
    }
}

/// The version of the musl rustc links statically (its self-contained
/// libc.a holds it as a string, `__libc_version`).
fn musl_version(rustc: &str, target: &str) -> Option<(u32, u32, u32)> {
    let rustc = if rustc.is_empty() { "rustc" } else { rustc };
    let out = std::process::Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    let sysroot = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    let libc = sysroot.join(format!("lib/rustlib/{target}/lib/self-contained/libc.a"));
    println!("cargo:rerun-if-changed={}", libc.display());
    let bytes = std::fs::read(libc).ok()?;
    // "\0MAJOR.MINOR.PATCH\0": the only such string in musl's libc.a.
    bytes.split(|&b| b == 0).find_map(|s| {
        let s = std::str::from_utf8(s).ok()?;
        let mut parts = s.split('.').map(|p| p.parse::<u32>().ok());
        match (parts.next()?, parts.next()?, parts.next()?, parts.next()) {
            (Some(1), Some(minor), Some(patch), None) => Some((1, minor, patch)),
            _ => None,
        }
    })
}
