//! The index file formats.

use std::collections::BTreeMap;

use datum_plugin_api::Manifest;
use semver::Version;
use serde::{Deserialize, Serialize};

/// The two tiers a plugin can be installed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// In-process shared library (trusted tier).
    Native,
    /// Sandboxed WebAssembly module via Extism.
    Wasm,
}

impl Kind {
    pub fn target(self) -> &'static str {
        match self {
            Kind::Native => super::native_target(),
            Kind::Wasm => super::WASM_TARGET,
        }
    }

    pub fn other(self) -> Kind {
        match self {
            Kind::Native => Kind::Wasm,
            Kind::Wasm => Kind::Native,
        }
    }

    pub fn file_extension(self) -> &'static str {
        match self {
            Kind::Native => std::env::consts::DLL_EXTENSION,
            Kind::Wasm => "wasm",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Native => "native",
            Kind::Wasm => "wasm",
        })
    }
}

/// `registry.json` at the registry root.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RegistryConfig {
    pub name: String,
    /// Plugins `datum boot` installs into a new workshop.
    #[serde(default)]
    pub default_plugins: Vec<String>,
    /// Native plugins from a trusted registry install without `--trust-native`.
    #[serde(default)]
    pub trusted: bool,
}

/// `index/<name>.json`: every published version of one plugin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexFile {
    pub name: String,
    pub versions: Vec<IndexVersion>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexVersion {
    pub version: Version,
    pub manifest: Manifest,
    #[serde(default)]
    pub yanked: bool,
    /// By target triple.
    pub artifacts: BTreeMap<String, Artifact>,
    /// The plugin's README (`registry publish --readme`), so what a plugin does can be
    /// read before any of its code runs (`datum learn --full`). Registry text: shown
    /// escaped, never trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readme: Option<String>,
}

/// The most README text a registry entry carries.
pub const MAX_README: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Relative to the registry root.
    pub path: String,
    pub size: u64,
    pub sha256: String,
}
