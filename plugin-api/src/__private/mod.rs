//! Support code for [`crate::export_plugin!`]. Not part of the stable API: only the
//! macro may use it, and it may change in any release.

use serde::Serialize;
use serde_json::json;

use crate::{Host, Plugin, PluginError, Request, Response};

#[cfg(not(target_arch = "wasm32"))]
pub mod native;
#[cfg(target_arch = "wasm32")]
pub mod wasm;

/// The exported symbol name of the native root module (must equal the literal in
/// `export_plugin!`).
pub const ROOT_MODULE_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

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
