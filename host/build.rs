// The registry keys native artifacts by target triple; record ours at build time.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=DATUM_HOST_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
