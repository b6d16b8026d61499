//! The binary interface between the host and a plugin, for both tiers. Plugin authors
//! never touch it: [`crate::export_plugin!`] emits it. It is documented because a
//! host (or a tool that inspects artifacts) must match it exactly.
//!
//! **Versioning.** [`ABI_VERSION`] changes only with a new major version of this crate.
//! Within 1.x the ABI is frozen: two entry points carrying JSON text, whose contents
//! (manifest, request, response, host service calls) evolve additively.
//!
//! **Native tier** (a `cdylib`, loaded with abi_stable): the library exports the static
//! [`ROOT_MODULE_SYMBOL`], abi_stable's root-module loader for
//! [`native::PluginModule`] — `describe() -> RString` (the JSON of [`describe`]) and
//! `invoke(HostCallbacks, RStr) -> RString` (a [`crate::Request`] in, a
//! [`crate::Response`] out). Host services are calls through
//! [`native::HostCallbacks`]: a [`crate::ServiceCall`] in, a response out. abi_stable
//! checks the layout of these types when the library is loaded.
//!
//! **WASM tier** (`wasm32-unknown-unknown`, an Extism module): the exports
//! [`WASM_MANIFEST_EXPORT`] (no input; the JSON of [`describe`]) and
//! [`WASM_INVOKE_EXPORT`] (a request in, a response out), and one import in Extism's
//! host namespace, [`WASM_HOST_IMPORT`] (a service call in, a response out).
//!
//! The helper functions below are for the macro; their signatures may change in any
//! release (only the names and shapes above are the contract).

use serde::Serialize;
use serde_json::json;

use crate::{Host, Plugin, PluginError, Request, Response};

#[cfg(not(target_arch = "wasm32"))]
pub mod native;
#[cfg(target_arch = "wasm32")]
pub mod wasm;

/// The ABI generation; changes only with a major version of this crate.
pub const ABI_VERSION: u32 = 1;

/// The exported symbol name of the native root module (must equal the literal in
/// `export_plugin!`).
pub const ROOT_MODULE_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

/// The WASM export that returns the plugin's self-description.
pub const WASM_MANIFEST_EXPORT: &str = "manifest";

/// The WASM export that runs one command.
pub const WASM_INVOKE_EXPORT: &str = "invoke";

/// The one host function a WASM plugin imports (Extism's host namespace).
pub const WASM_HOST_IMPORT: &str = "datum_host";

/// The plugin crate's Cargo metadata, captured by the macro with `env!`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CargoMeta {
    pub name: &'static str,
    pub version: &'static str,
    pub description: &'static str,
    pub license: &'static str,
}

/// What the `manifest`/`describe` entry point returns: the author's TOML, Cargo's
/// defaults for omitted fields, and the API version the plugin was built against.
/// The host parses and validates (plugins carry no TOML parser).
pub fn describe<P: Plugin>(meta: CargoMeta) -> String {
    json!({
        "api_version": crate::API_VERSION,
        "manifest_toml": P::MANIFEST,
        "defaults": meta,
    })
    .to_string()
}

/// Decode a request, run the plugin, encode the reply.
pub fn dispatch<P: Plugin>(request: &str, host: &Host<'_>) -> String {
    let result = match serde_json::from_str::<Request>(request) {
        Ok(request) => P::invoke(&request, host),
        Err(e) => Err(PluginError::new(
            crate::ErrorKind::Internal,
            format!("the host sent a request this plugin cannot read: {e}"),
        )
        .with_hint("the host and plugin disagree on the wire format; update datum or the plugin")),
    };
    Response::from(result).to_json()
}

/// Render a caught panic payload as text.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names in the contract, pinned: `export_plugin!` and the WASM import use
    /// them as literals (an export's name is its function's name), and hosts in the
    /// field look them up. Changing one is a new ABI_VERSION and a major release.
    #[test]
    fn the_abi_names_are_pinned() {
        assert_eq!(ABI_VERSION, 1);
        assert_eq!(
            (WASM_MANIFEST_EXPORT, WASM_INVOKE_EXPORT, WASM_HOST_IMPORT),
            ("manifest", "invoke", "datum_host")
        );
        assert_eq!(
            ROOT_MODULE_SYMBOL,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }
}
