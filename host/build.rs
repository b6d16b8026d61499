// Build-time facts the host compiles in:
// - the target triple (the registry keys native artifacts by it);
// - the bundled registry's public key (registry/keys/bundled.pub, made by
//   scripts/build-registry on a checkout's first build), so the registry that ships
//   beside this binary is checked against a key the binary carries, not one it read.
use std::path::Path;

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=DATUM_HOST_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let key_file = Path::new(&dir).join("../registry/keys/bundled.pub");
    // Watched only once it exists (a missing path would rerun this on every build);
    // scripts/build-registry touches build.rs when it makes the key.
    if key_file.is_file() {
        println!("cargo:rerun-if-changed={}", key_file.display());
    }
    let key = std::fs::read_to_string(&key_file)
        .ok()
        .and_then(|t| {
            t.lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
                .map(str::to_owned)
        })
        .unwrap_or_default();
    println!("cargo:rustc-env=DATUM_BUNDLED_KEY={key}");
}
