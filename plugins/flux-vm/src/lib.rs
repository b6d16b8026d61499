//! The flux-vm plugin: FLUX programs for an agent — run, assemble, disassemble,
//! validate, and check conformance — over the `flux-core` library.

mod conformance;
pub mod examples;
mod program;
mod run;
mod tools;

use datum_plugin_api::{export_plugin, Host, Output, Plugin, PluginError, Request};

pub use examples::{Example, Expectation, EXAMPLES};

pub struct FluxVm;

impl Plugin for FluxVm {
    const MANIFEST: &'static str = include_str!("../datum-plugin.toml");

    fn invoke(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
        match request.command.as_str() {
            "flux run" => run::run(request, host),
            "flux asm" => tools::asm(request),
            "flux disasm" => tools::disasm(request),
            "flux validate" => tools::validate(request),
            "flux conformance" => conformance::conformance(request, host),
            "flux examples" => tools::examples(),
            other => Err(PluginError::unknown_command("flux-vm", other)),
        }
    }
}

/// Which build this is: the conformance runner compares the two.
pub fn this_runtime() -> &'static str {
    if cfg!(target_arch = "wasm32") {
        "wasm"
    } else {
        "native"
    }
}

export_plugin!(FluxVm);
