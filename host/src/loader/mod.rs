//! Loading plugin artifacts and calling into them, for both tiers.
//!
//! Both tiers expose the same two JSON calls (`describe`, `invoke`) through
//! [`Instance`]; what differs is isolation. Every way a call can go wrong comes back
//! as a [`CallFailure`], never as a host crash.

mod kind;
pub mod native;
pub mod wasm;

pub use kind::{native_target, Kind, WASM_TARGET};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datum_plugin_api::{Defaults, Limits, Manifest};
use semver::Version;

use crate::paths::Home;
use serde::Deserialize;

/// The host-service handler a loaded plugin talks to: JSON request in, JSON reply out.
pub type Services = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// Services for calls that must not use any (describe at install, publishing).
pub fn no_services() -> Services {
    Arc::new(|_req: &str| {
        datum_plugin_api::Response::from(Err(datum_plugin_api::PluginError::new(
            datum_plugin_api::ErrorKind::PermissionDenied,
            "host services are not available while describing a plugin",
        )))
        .to_json()
    })
}

/// How a call into a plugin failed, before any reply could be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallFailure {
    #[error("it trapped: {0}")]
    Trap(String),
    #[error("it ran past its {0} ms time limit")]
    Timeout(u64),
    #[error("it ran out of its {0} MiB memory limit")]
    OutOfMemory(u32),
    #[error("it panicked: {0}")]
    Panic(String),
    #[error("it replied with {size} bytes, over its {limit}-byte output limit")]
    OutputTooLarge { size: usize, limit: usize },
    #[error("its reply is not a valid response envelope: {0}")]
    BadReply(String),
}

/// A loaded plugin, ready for calls.
pub trait Instance {
    fn describe(&mut self) -> Result<String, CallFailure>;
    fn invoke(&mut self, request: &str) -> Result<String, CallFailure>;
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the artifact {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Native(String),
    #[error("{0}")]
    Wasm(String),
    #[error("the plugin's describe call failed: {0}")]
    Describe(CallFailure),
    #[error("the plugin's embedded manifest is invalid: {0}")]
    Manifest(String),
}

/// The datum-plugin-api version this host implements.
pub fn api_version() -> Version {
    // The constant comes from the crate's own Cargo version, which is always valid semver.
    Version::parse(datum_plugin_api::API_VERSION).unwrap_or_else(|_| Version::new(1, 0, 0))
}

/// Where compiled WASM modules are kept (created on first use).
pub fn wasm_cache(home: &Home) -> anyhow::Result<PathBuf> {
    let dir = home.wasm_cache();
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// What to load and under which limits.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub limits: Limits,
    /// Where compiled WASM modules are kept between runs (`None`: compile each load).
    pub wasm_cache: Option<PathBuf>,
    /// The artifact's sha256 when the caller has verified it (the store's digest):
    /// names its compiled module without hashing the artifact again.
    pub digest: Option<String>,
}

pub fn load(
    kind: Kind,
    path: &Path,
    options: &LoadOptions,
    services: Services,
) -> Result<Box<dyn Instance>, LoadError> {
    match kind {
        Kind::Native => Ok(Box::new(native::NativeInstance::load(
            path, options, services,
        )?)),
        Kind::Wasm => Ok(Box::new(wasm::WasmInstance::load(path, options, services)?)),
    }
}

/// The reply of `describe`, as emitted by `datum_plugin_api::abi::describe`.
#[derive(Debug, Deserialize)]
struct Description {
    api_version: Version,
    manifest_toml: String,
    defaults: DescriptionDefaults,
}

#[derive(Debug, Deserialize)]
struct DescriptionDefaults {
    name: String,
    version: String,
    description: String,
    license: String,
}

/// What a plugin says about itself: its manifest and the API version it was built with.
#[derive(Debug, Clone)]
pub struct Described {
    pub manifest: Manifest,
    pub built_with_api: Version,
}

/// Ask a loaded plugin for its manifest and validate it.
pub fn describe(instance: &mut dyn Instance) -> Result<Described, LoadError> {
    let text = instance.describe().map_err(LoadError::Describe)?;
    if let Ok(datum_plugin_api::Response::Err { error, .. }) = serde_json::from_str(&text) {
        return Err(LoadError::Describe(CallFailure::Panic(error.message)));
    }
    let d: Description =
        serde_json::from_str(&text).map_err(|e| LoadError::Manifest(e.to_string()))?;
    let defaults = Defaults {
        name: &d.defaults.name,
        version: &d.defaults.version,
        description: &d.defaults.description,
        license: &d.defaults.license,
    };
    // Cargo package names are usually `datum-plugin-NAME`; the plugin's name is NAME.
    let cargo_name = defaults
        .name
        .strip_prefix("datum-plugin-")
        .unwrap_or(defaults.name);
    let defaults = Defaults {
        name: cargo_name,
        ..defaults
    };
    let manifest = Manifest::from_toml_with_defaults(&d.manifest_toml, defaults)
        .map_err(|e| LoadError::Manifest(e.to_string()))?;
    Ok(Described {
        manifest,
        built_with_api: d.api_version,
    })
}
