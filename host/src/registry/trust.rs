//! Which registry keys a workshop trusts: `registries.toml` beside datum.lock
//! (committed with it), one pin per registry source — its public key, the key's
//! fingerprint, and the highest snapshot version seen. A signed registry's key is pinned
//! on first use (shown to the user); after that a different key, an older snapshot
//! (rollback) or an expired one is refused with the reason and the fix. An unsigned
//! registry is used only when the user says `--allow-unsigned`, and the lock records it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::signing;
use super::snapshot::{self, Snapshot};
use super::{Registry, RegistryError};

pub const FILE: &str = "registries.toml";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrustFile {
    #[serde(default, rename = "registry")]
    pub pins: Vec<Pin>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// The registry source as datum.lock names it (`dir:…`, `git:…`, `http:…`).
    pub source: String,
    /// The registry's public key (minisign, base64).
    pub key: String,
    pub fingerprint: String,
    /// The highest snapshot version installed from.
    pub version: u64,
}

/// What the check found.
#[derive(Debug, Clone)]
pub enum Verdict {
    Signed {
        snapshot: Snapshot,
        fingerprint: String,
        /// The key was pinned by this check (first use).
        pinned_now: bool,
        /// The fingerprint of the key this check replaced through a rotation.
        rotated_from: Option<String>,
    },
    Unsigned,
}

fn refuse(registry: &Registry, message: String) -> RegistryError {
    RegistryError::Signature {
        path: registry.root().join(signing::SIG_FILE),
        message,
    }
}

pub fn load(workshop: &Path) -> Result<TrustFile, RegistryError> {
    let path = workshop.join(FILE);
    match crate::confined::read_text(&path, 1024 * 1024) {
        Ok(text) => toml::from_str(&text).map_err(|e| RegistryError::Malformed {
            path,
            message: format!(
                "{e}; restore it from the workshop's history (`git checkout -- {FILE}`)"
            ),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TrustFile::default()),
        Err(e) => Err(RegistryError::io(&path, e)),
    }
}

fn save(workshop: &Path, file: &TrustFile) -> Result<(), RegistryError> {
    let path = workshop.join(FILE);
    let mut text = String::from(
        "# Registry keys this workshop trusts (pinned on first use). Written by datum.\n",
    );
    text.push_str(
        &toml::to_string_pretty(file).map_err(|e| RegistryError::Malformed {
            path: path.clone(),
            message: e.to_string(),
        })?,
    );
    let folder =
        crate::confined::Folder::open(workshop).map_err(|e| RegistryError::io(workshop, e))?;
    folder
        .write(Path::new(FILE), text.as_bytes())
        .map_err(|e| RegistryError::io(&path, e))
}

/// Check `registry` for an install into the workshop at `workshop` (pinning its key on
/// first use). `allow_unsigned`: the user accepted an unsigned registry.
pub fn check(
    registry: &Registry,
    workshop: &Path,
    allow_unsigned: bool,
) -> Result<Verdict, RegistryError> {
    let root = registry.root();
    if !signing::is_signed(root) {
        if allow_unsigned {
            return Ok(Verdict::Unsigned);
        }
        return Err(refuse(
            registry,
            format!(
                "registry {} is not signed, so nothing proves its plugins are the ones its owner published; install with --allow-unsigned to use it anyway (recorded in datum.lock), or ask its owner to sign it (`datum registry sign`)",
                registry.source_id
            ),
        ));
    }
    let mut file = load(workshop)?;
    let pinned = file
        .pins
        .iter()
        .position(|p| p.source == registry.source_id);
    let offered = signing::offered_key(root)?;
    let mut rotated_from = None;
    // The registry that ships with this binary is checked against the key compiled
    // into it (host/build.rs), whatever a workshop pinned before.
    let compiled = env!("DATUM_BUNDLED_KEY");
    let is_bundled = !compiled.is_empty()
        && std::fs::canonicalize(super::bundled_registry()).is_ok_and(|b| b == root);
    let key = if is_bundled {
        if offered != compiled {
            return Err(refuse(
                registry,
                format!(
                    "the bundled registry is not signed by the key this datum was built with ({}); rebuild both with scripts/build-registry",
                    signing::fingerprint(compiled).unwrap_or_default()
                ),
            ));
        }
        compiled.to_owned()
    } else {
        match pinned {
            Some(i) => {
                let pin = &file.pins[i];
                if offered == pin.key {
                    pin.key.clone()
                } else if signing::rotation_to(root, &pin.key, &offered)
                    .is_some_and(|r| r.registry == registry.config.name)
                {
                    // A key change both keys signed (`datum registry rotate`).
                    rotated_from = Some(pin.fingerprint.clone());
                    offered
                } else {
                    return Err(refuse(
                        registry,
                        format!(
                            "registry {} now offers key {} but this workshop pinned {}, and it publishes no key rotation signed by both; if its owner changed keys they rotate with `datum registry rotate` (or remove its entry from {FILE} and install again) — otherwise someone else is serving it",
                            registry.source_id,
                            signing::fingerprint(&offered).unwrap_or_else(|| "(unreadable)".into()),
                            pin.fingerprint
                        ),
                    ));
                }
            }
            None => offered,
        }
    };
    let snap = signing::verify(root, &key)?;
    if snap.registry != registry.config.name {
        return Err(refuse(
            registry,
            format!(
                "the signed snapshot is for registry `{}`, not `{}`",
                snap.registry.escape_debug(),
                registry.config.name.escape_debug()
            ),
        ));
    }
    let config = root.join("registry.json");
    let bytes = std::fs::read(&config).map_err(|e| RegistryError::io(&config, e))?;
    if snap.files.get("registry.json").map(String::as_str) != Some(&snapshot::sha256_hex(&bytes)) {
        return Err(refuse(
            registry,
            "registry.json is not the one the signed snapshot lists".into(),
        ));
    }
    // Rollback and expiry guard against a server replaying or going stale; the bundled
    // registry is local files shipped with this binary, rebuilt at will.
    if let Some(i) = pinned.filter(|_| !is_bundled) {
        if snap.version < file.pins[i].version {
            return Err(refuse(
                registry,
                format!(
                    "registry {} serves snapshot {} but this workshop already installed from snapshot {}: an old copy is being replayed (rollback); try again later or use another mirror",
                    registry.source_id, snap.version, file.pins[i].version
                ),
            ));
        }
    }
    match snap.expires {
        _ if is_bundled => {}
        Some(t) if t >= snapshot::now() => {}
        Some(_) => {
            return Err(refuse(
                registry,
                format!(
                    "registry {}'s signed snapshot {} has expired; its owner must sign it again (`datum registry sign`)",
                    registry.source_id, snap.version
                ),
            ))
        }
        None => {
            return Err(refuse(
                registry,
                "the signed snapshot has no expiry; sign it with `datum registry sign`".into(),
            ))
        }
    }
    let fingerprint = signing::fingerprint(&key).unwrap_or_default();
    let pin = Pin {
        source: registry.source_id.clone(),
        key,
        fingerprint: fingerprint.clone(),
        version: snap.version,
    };
    match pinned {
        Some(i) if file.pins[i] == pin => {}
        Some(i) => {
            file.pins[i] = pin;
            save(workshop, &file)?;
        }
        None => {
            file.pins.push(pin);
            save(workshop, &file)?;
        }
    }
    Ok(Verdict::Signed {
        snapshot: snap,
        fingerprint,
        pinned_now: pinned.is_none(),
        rotated_from,
    })
}
