//! `snapshot.json`: the registry's table of contents — every index file and
//! registry.json with its sha256, and a version that only grows. A registry served over
//! HTTP is listed and checked through it (there is no directory listing on the web),
//! and it is the part a registry signs (issue 15 §3).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::publish::write_json;
use super::RegistryError;

pub const FILE: &str = "snapshot.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The registry's name (registry.json).
    pub registry: String,
    /// Grows by one at every publish.
    pub version: u64,
    /// Path relative to the registry root → sha256 (lowercase hex).
    pub files: BTreeMap<String, String>,
    /// Unix seconds after which a signed snapshot is refused (set when signing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
}

/// Unix seconds now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Snapshot {
    /// The index files it lists, as (plugin name, path, sha256).
    pub fn index_files(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.files.iter().filter_map(|(path, sha)| {
            let name = path.strip_prefix("index/")?.strip_suffix(".json")?;
            datum_plugin_api::valid_name(name).then_some((name, path.as_str(), sha.as_str()))
        })
    }
}

/// Rewrite `root/snapshot.json` from the files as they are now (version + 1), expiring
/// at `expires` (unix seconds; `None` for an unsigned snapshot).
pub fn refresh(root: &Path, expires: Option<u64>) -> Result<Snapshot, RegistryError> {
    let path = root.join(FILE);
    let previous: Snapshot = if path.is_file() {
        super::read_json(&path)?
    } else {
        Snapshot::default()
    };
    let config: super::RegistryConfig = super::read_json(&root.join("registry.json"))?;
    let mut files = BTreeMap::new();
    files.insert(
        "registry.json".to_owned(),
        sha256_of(&root.join("registry.json"))?,
    );
    let index = root.join("index");
    if let Ok(entries) = std::fs::read_dir(&index) {
        for entry in entries.flatten() {
            let file = entry.file_name();
            let Some(name) = file.to_str().and_then(|f| f.strip_suffix(".json")) else {
                continue;
            };
            if datum_plugin_api::valid_name(name) {
                files.insert(format!("index/{name}.json"), sha256_of(&entry.path())?);
            }
        }
    }
    let snapshot = Snapshot {
        registry: config.name,
        version: previous.version + 1,
        files,
        expires,
    };
    write_json(&path, &snapshot)?;
    Ok(snapshot)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn sha256_of(path: &Path) -> Result<String, RegistryError> {
    let bytes = std::fs::read(path).map_err(|e| RegistryError::io(path, e))?;
    Ok(sha256_hex(&bytes))
}
