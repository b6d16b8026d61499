//! `datum registry publish`: add a built artifact to a folder registry.

use std::path::Path;

use datum_plugin_api::Manifest;

use super::{Artifact, IndexFile, IndexVersion, Kind, RegistryConfig, RegistryError};
use crate::fsutil::atomic_write;

/// Copy `artifact` into the registry at `root` and record it in the plugin's index
/// file (creating the registry if needed). Publishing the same version for another
/// target adds that target; republishing a target replaces it.
pub fn publish(
    root: &Path,
    manifest: &Manifest,
    kind: Kind,
    target: &str,
    artifact: &Path,
    readme: Option<&str>,
) -> Result<Artifact, RegistryError> {
    if readme.is_some_and(|r| r.len() > super::index::MAX_README) {
        return Err(RegistryError::Malformed {
            path: artifact.to_owned(),
            message: format!(
                "the README is over {} bytes; shorten it",
                super::index::MAX_README
            ),
        });
    }
    let bytes = std::fs::read(artifact).map_err(|e| RegistryError::io(artifact, e))?;
    let config_path = root.join("registry.json");
    if !config_path.exists() {
        let config = RegistryConfig {
            name: root
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("local")
                .to_owned(),
            ..RegistryConfig::default()
        };
        write_json(&config_path, &config)?;
    }
    let rel = format!(
        "artifacts/{}/{}/{}.{}",
        manifest.name,
        manifest.version,
        target,
        kind.file_extension()
    );
    let dest = root.join(&rel);
    atomic_write(&dest, &bytes).map_err(|e| RegistryError::io(&dest, e))?;
    let entry = Artifact {
        path: rel,
        size: bytes.len() as u64,
        sha256: super::snapshot::sha256_hex(&bytes),
    };

    let index_path = root.join("index").join(format!("{}.json", manifest.name));
    let mut index = if index_path.exists() {
        super::read_json::<IndexFile>(&index_path)?
    } else {
        IndexFile {
            name: manifest.name.clone(),
            versions: Vec::new(),
        }
    };
    match index
        .versions
        .iter_mut()
        .find(|v| v.version == manifest.version)
    {
        Some(v) => {
            v.manifest = manifest.clone();
            v.artifacts.insert(target.to_owned(), entry.clone());
            if let Some(r) = readme {
                v.readme = Some(r.to_owned());
            }
        }
        None => index.versions.push(IndexVersion {
            version: manifest.version.clone(),
            manifest: manifest.clone(),
            yanked: false,
            artifacts: [(target.to_owned(), entry.clone())].into(),
            readme: readme.map(str::to_owned),
        }),
    }
    index.versions.sort_by(|a, b| a.version.cmp(&b.version));
    write_json(&index_path, &index)?;
    super::snapshot::refresh(root, None)?;
    Ok(entry)
}

pub(crate) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), RegistryError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| RegistryError::Malformed {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    text.push('\n');
    atomic_write(path, text.as_bytes()).map_err(|e| RegistryError::io(path, e))
}
