//! `datum.lock`: the exact, reproducible description of a workshop's plugin set.

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

use datum_plugin_api::Grant;

use crate::loader::Kind;
use crate::store::is_sha256;

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
    /// Permissions granted to it (`kv`, `fs-read:journal`, …), each checked as it is
    /// read: a scope that could leave the workshop makes the whole lock invalid.
    #[serde(default)]
    pub grants: Vec<Grant>,
    /// The installed plugin whose `plugin.install` call added this one (e.g. `growth`
    /// learning an ability); absent when the user installed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Installed from an unsigned registry, with the user's `--allow-unsigned`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsigned: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{path} is not a valid lock file ({message}); restore it from the workshop's git history (`git checkout -- datum.lock`)")]
    Parse { path: String, message: String },
}

impl Lock {
    pub const CURRENT_VERSION: u32 = 1;

    pub fn empty() -> Lock {
        Lock {
            version: Lock::CURRENT_VERSION,
            plugins: Vec::new(),
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
            if crate::registry::Source::from_id(&p.source).is_none() {
                return Err(format!(
                    "{}'s source `{}` is none of dir:PATH, git:URL, http:URL",
                    p.name,
                    p.source.escape_debug()
                ));
            }
            if let Some(by) = &p.requested_by {
                if !datum_plugin_api::valid_name(by) {
                    return Err(format!(
                        "{}'s requested_by `{}` is not a plugin name",
                        p.name,
                        by.escape_debug()
                    ));
                }
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
        let mut lock = Lock::empty();
        lock.upsert(LockedPlugin {
            name: "flux-vm".into(),
            version: Version::new(0, 1, 0),
            kind: Kind::Wasm,
            source: "dir:/r".into(),
            sha256: "ab".repeat(32),
            api: VersionReq::parse("^1.0").unwrap(),
            grants: vec!["kv".parse().unwrap()],
            requested_by: None,
            unsigned: false,
        });
        let text = lock.to_text().unwrap();
        assert_eq!(Lock::parse(&text, LOCK_FILE).unwrap(), lock);
        assert!(text.contains("[[plugin]]"));
    }

    #[test]
    fn a_torn_lock_names_the_fix() {
        let err = Lock::parse("[[plugin]\nname=", LOCK_FILE)
            .unwrap_err()
            .to_string();
        assert!(err.contains("git checkout"), "{err}");
    }
}
