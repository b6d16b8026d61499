//! The index file formats.

use std::collections::BTreeMap;

use datum_plugin_api::Manifest;
use semver::Version;
use serde::{Deserialize, Serialize};

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
