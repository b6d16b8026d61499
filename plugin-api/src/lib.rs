//! `datum-plugin-api`: the only crate a datum plugin author needs.
//!
//! A plugin is a crate that implements [`Plugin`] and calls [`export_plugin!`]. The same
//! source then builds as a native `cdylib` (an abi_stable root module; the trusted tier)
//! and, for `wasm32-unknown-unknown`, as an Extism module (the sandboxed tier).
//!
//! ```
//! use datum_plugin_api::{export_plugin, Host, Output, Plugin, PluginError, Request};
//!
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     const MANIFEST: &'static str = r#"
//!         name = "hello"
//!         description = "Says hello"
//!         api = "^1"
//!         [[commands]]
//!         path = "hello"
//!         summary = "Greet someone"
//!         [[commands.args]]
//!         name = "who"
//!         type = "string"
//!         help = "who to greet"
//!     "#;
//!
//!     fn invoke(request: &Request, _host: &Host<'_>) -> Result<Output, PluginError> {
//!         let who = request.arg_str("who").unwrap_or("world");
//!         Ok(Output::new(serde_json::json!({ "greeting": format!("hello, {who}") }))
//!             .with_text(format!("hello, {who}")))
//!     }
//! }
//!
//! export_plugin!(Hello);
//! ```
//!
//! Everything crossing the boundary is JSON text: the [`Request`] / [`Response`] envelope
//! and host-service calls ([`Host`]). That keeps the ABI surface to two functions and
//! lets both tiers share one codec.

mod envelope;
mod grant;
mod host;
mod manifest;
mod service;

pub mod abi;

/// The old name of [`abi`], kept so code written against 1.0–1.5 still builds.
#[doc(hidden)]
pub use abi as __private;

pub use envelope::{AgentInfo, ErrorKind, FileArg, Format, Output, PluginError, Request, Response};
pub use grant::Grant;
pub use host::{Host, InstallRequest, LogLevel};
pub use manifest::{
    valid_name, ArgSpec, ArgType, CommandSpec, Defaults, Example, Limits, Manifest, ManifestError,
    Permission, PermissionKind, Requirement, RESERVED_ARGS,
};
pub use service::ServiceCall;

/// The version of this API crate. Plugins record it at build time; the host compares
/// it with each manifest's `api` requirement.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The one trait a plugin implements.
///
/// Plugins are stateless between calls: the WASM tier may start every call on a fresh
/// instance, so anything that must persist goes through [`Host::kv_set`] or a granted
/// workshop file.
pub trait Plugin {
    /// The plugin's `datum-plugin.toml`, usually `include_str!("../datum-plugin.toml")`.
    /// `name`, `version`, `description` and `license` default to the crate's Cargo
    /// metadata when omitted.
    const MANIFEST: &'static str;

    /// Handle one command. `request.command` is the command path from the manifest
    /// (for example `"flux run"`); `request.args` holds the parsed arguments by name.
    fn invoke(request: &Request, host: &Host<'_>) -> Result<Output, PluginError>;
}

/// Export a [`Plugin`] implementation as this crate's plugin entry points.
///
/// On native targets this emits the abi_stable root module the host loads; on
/// `wasm32` it emits the Extism `manifest` and `invoke` functions. Panics are caught
/// (native) or reported before the trap (WASM) so the host always gets a typed error.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[doc(hidden)]
        fn __datum_cargo_meta() -> $crate::abi::CargoMeta {
            $crate::abi::CargoMeta {
                name: env!("CARGO_PKG_NAME"),
                version: env!("CARGO_PKG_VERSION"),
                description: env!("CARGO_PKG_DESCRIPTION"),
                license: env!("CARGO_PKG_LICENSE"),
            }
        }

        #[cfg(not(target_arch = "wasm32"))]
        extern "C" fn __datum_describe() -> $crate::abi::native::RString {
            $crate::abi::native::describe::<$plugin>(__datum_cargo_meta())
        }

        #[cfg(not(target_arch = "wasm32"))]
        extern "C" fn __datum_invoke(
            host: $crate::abi::native::HostCallbacks,
            request: $crate::abi::native::RStr<'_>,
        ) -> $crate::abi::native::RString {
            $crate::abi::native::invoke::<$plugin>(host, request)
        }

        #[cfg(not(target_arch = "wasm32"))]
        fn __datum_root_module() -> $crate::abi::native::PluginModuleRef {
            $crate::abi::native::module(__datum_describe, __datum_invoke)
        }

        #[cfg(not(target_arch = "wasm32"))]
        extern "C" fn __datum_root_module_erased() -> $crate::abi::native::RootModuleResult {
            $crate::abi::native::call_root_module_loader(__datum_root_module)
        }

        // The symbol is abi_stable's ROOT_MODULE_LOADER_NAME (an `export_name` must be a
        // literal); a unit test in datum-plugin-api keeps the two in step.
        #[cfg(not(target_arch = "wasm32"))]
        #[doc(hidden)]
        #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
        pub static __DATUM_ROOT_MODULE_LOADER: $crate::abi::native::LibHeader =
            $crate::abi::native::lib_header(__datum_root_module_erased);

        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        pub extern "C" fn manifest() -> i32 {
            $crate::abi::wasm::manifest::<$plugin>(__datum_cargo_meta)
        }

        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        pub extern "C" fn invoke() -> i32 {
            $crate::abi::wasm::invoke::<$plugin>(__datum_cargo_meta)
        }
    };
}
