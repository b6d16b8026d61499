//! `datum.lock`: the exact, reproducible description of a workshop's plugin set.

use std::path::Path;

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

use crate::fsutil::atomic_write;
use crate::registry::Kind;

pub const LOCK_FILE: &str = "datum.lock";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lock {
    pub version: u32,
    #[serde(default, rename = "plugin")]
    pub plugins: Vec<LockedPlugin>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockedPlugin {
    pub name: String,
    pub version: Version,
    pub kind: Kind,
    /// The registry it came from (`dir:/path` or `git:URL`).
    pub source: String,
    pub sha256: String,
    /// The datum-plugin-api requirement it declared.
    pub api: VersionReq,
    /// Permissions granted to it, as grant strings (`kv`, `fs-read:journal/`, …).
    #[serde(default)]
    pub grants: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid lock file ({message}); restore it from the workshop's git history (`git checkout -- datum.lock`)")]
    Parse { path: String, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Lock {
    pub const CURRENT_VERSION: u32 = 1;

    pub fn load(path: &Path) -> Result<Lock, LockError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Lock {
                    version: Lock::CURRENT_VERSION,
                    plugins: Vec::new(),
                })
            }
            Err(source) => {
                return Err(LockError::Read {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        toml::from_str(&text).map_err(|e| LockError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    pub fn save(&self, path: &Path) -> Result<(), LockError> {
        let body = toml::to_string_pretty(self).map_err(|e| LockError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let text = format!("# Written by datum; change it with `datum plugin install|remove|update|grant`.\n{body}");
        atomic_write(path, text.as_bytes()).map_err(|source| LockError::Write {
            path: path.display().to_string(),
            source,
        })
    }

    pub fn get(&self, name: &str) -> Option<&LockedPlugin> {
        self.plugins.iter().find(|p| p.name == name)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut LockedPlugin> {
        self.plugins.iter_mut().find(|p| p.name == name)
    }

    /// Insert or replace by name, keeping the list sorted for stable diffs.
    pub fn upsert(&mut self, plugin: LockedPlugin) {
        self.plugins.retain(|p| p.name != plugin.name);
        self.plugins.push(plugin);
        self.plugins.sort_by(|a, b| a.name.cmp(&b.name));
    }

    pub fn remove(&mut self, name: &str) -> Option<LockedPlugin> {
        let i = self.plugins.iter().position(|p| p.name == name)?;
        Some(self.plugins.remove(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_round_trips_through_toml() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        let mut lock = Lock::load(&path).unwrap();
        lock.upsert(LockedPlugin {
            name: "flux-vm".into(),
            version: Version::new(0, 1, 0),
            kind: Kind::Wasm,
            source: "dir:/r".into(),
            sha256: "ab".repeat(32),
            api: VersionReq::parse("^1.0").unwrap(),
            grants: vec!["kv".into()],
        });
        lock.save(&path).unwrap();
        assert_eq!(Lock::load(&path).unwrap(), lock);
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("[[plugin]]"));
    }

    #[test]
    fn a_torn_lock_names_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        std::fs::write(&path, "[[plugin]\nname=").unwrap();
        let err = Lock::load(&path).unwrap_err().to_string();
        assert!(err.contains("git checkout"), "{err}");
    }
}
