//! `datum.lock`: the exact, reproducible description of a workshop's plugin set.

use std::path::Path;

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

use crate::fsutil::atomic_write;
use crate::registry::Kind;

pub const LOCK_FILE: &str = "datum.lock";

/// A sha256 digest as datum writes it: exactly 64 lowercase hex digits.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

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

    pub fn empty() -> Lock {
        Lock {
            version: Lock::CURRENT_VERSION,
            plugins: Vec::new(),
        }
    }

    /// Read a lock file from an ambient path (bounded; a missing file is an empty lock).
    pub fn load(path: &Path) -> Result<Lock, LockError> {
        match crate::confined::read_text(path, crate::confined::MAX_FILE) {
            Ok(text) => Lock::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lock::empty()),
            Err(source) => Err(LockError::Read {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Parse and validate a lock. Every field that later becomes a path, a store key or
    /// a grant is checked here, so a cloned workshop cannot steer datum with it.
    pub fn parse(text: &str, label: &str) -> Result<Lock, LockError> {
        let lock: Lock = toml::from_str(text).map_err(|e| LockError::Parse {
            path: label.to_owned(),
            message: e.to_string(),
        })?;
        lock.validate().map_err(|message| LockError::Parse {
            path: label.to_owned(),
            message,
        })?;
        Ok(lock)
    }

    fn validate(&self) -> Result<(), String> {
        if self.version != Lock::CURRENT_VERSION {
            return Err(format!(
                "lock version {} is not {} (written by another datum?)",
                self.version,
                Lock::CURRENT_VERSION
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for p in &self.plugins {
            if !datum_plugin_api::valid_name(&p.name) {
                return Err(format!(
                    "plugin name `{}` is not a-z, 0-9 and '-' starting with a letter",
                    p.name.escape_debug()
                ));
            }
            if !seen.insert(p.name.as_str()) {
                return Err(format!("`{}` is pinned twice", p.name));
            }
            if !is_sha256(&p.sha256) {
                return Err(format!(
                    "{}'s sha256 `{}` is not 64 lowercase hex digits",
                    p.name,
                    p.sha256.escape_debug()
                ));
            }
            if !(p.source.starts_with("dir:") || p.source.starts_with("git:")) {
                return Err(format!(
                    "{}'s source `{}` is neither dir:PATH nor git:URL",
                    p.name,
                    p.source.escape_debug()
                ));
            }
            for g in &p.grants {
                crate::install::parse_grant(g)
                    .map_err(|e| format!("{}'s grant `{}`: {e}", p.name, g.escape_debug()))?;
            }
        }
        Ok(())
    }

    pub fn to_text(&self) -> Result<String, LockError> {
        let body = toml::to_string_pretty(self).map_err(|e| LockError::Parse {
            path: LOCK_FILE.to_owned(),
            message: e.to_string(),
        })?;
        Ok(format!("# Written by datum; change it with `datum plugin install|remove|update|grant`.\n{body}"))
    }

    pub fn save(&self, path: &Path) -> Result<(), LockError> {
        let text = self.to_text()?;
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
