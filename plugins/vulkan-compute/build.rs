//! Compile the FLUX interpreter shader (WGSL) to SPIR-V with naga, a pure-Rust
//! compiler, so building needs no C++ toolchain (shaderc would). WGSL rather than GLSL
//! because naga's GLSL front end has no atomics, which the lanes share jobs with.
// A build script reports failure by panicking with the reason.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;

fn main() {
    let src = "shaders/flux_stack.wgsl";
    println!("cargo:rerun-if-changed={src}");
    let text = std::fs::read_to_string(src).unwrap_or_else(|e| panic!("cannot read {src}: {e}"));
    let module = match naga::front::wgsl::parse_str(&text) {
        Ok(m) => m,
        Err(e) => panic!("{src} does not compile:\n{}", e.emit_to_string(&text)),
    };
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::IMMEDIATES,
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{src} does not validate: {e:?}"));
    let words = naga::back::spv::write_vec(
        &module,
        &info,
        &naga::back::spv::Options::default(),
        Some(&naga::back::spv::PipelineOptions {
            shader_stage: naga::ShaderStage::Compute,
            entry_point: "main".into(),
        }),
    )
    .unwrap_or_else(|e| panic!("cannot write SPIR-V for {src}: {e}"));
    let out =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("flux_stack.spv");
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    std::fs::write(&out, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}
