//! The content-addressed artifact store shared by every workshop on the machine
//! (each workshop's `datum.lock` names entries in it; see `workshop::Lock`).
//!
//! `store/<sha256>/plugin.{wasm,so}` holds the bytes; `store/<sha256>/manifest.json`
//! the manifest the artifact reported about itself at install. An entry is only
//! created after its hash has been verified, and is written atomically.

use std::path::{Path, PathBuf};

use datum_plugin_api::Manifest;
use sha2::{Digest, Sha256};

/// A sha256 digest as datum writes it: exactly 64 lowercase hex digits.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

use crate::fsutil::atomic_write;
use crate::loader::Kind;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sha256 mismatch for {what}: the registry says {expected}, the file is {actual}; nothing was installed. The registry or download is corrupt or tampered with: republish the artifact, or use another registry")]
    HashMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("size mismatch for {what}: the registry says {expected} bytes, the file has {actual}; nothing was installed")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("store entry {0} is missing; reinstall it with `datum plugin install --locked`")]
    Missing(String),
    #[error("store I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("store entry {path} is corrupt: {message}; remove it and run `datum plugin install --locked`")]
    Corrupt { path: PathBuf, message: String },
    #[error("`{0}` is not a sha256 digest (64 lowercase hex digits); datum.lock or the registry index is damaged or hostile")]
    BadDigest(String),
    #[error("the stored artifact {path} no longer hashes to {expected} (it is {actual}): it was changed after install, so it is not loaded. Remove {entry} and run `datum plugin install --locked`")]
    Tampered {
        path: PathBuf,
        entry: PathBuf,
        expected: String,
        actual: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// The largest plugin artifact datum reads (native libraries with debug info are big).
pub const MAX_ARTIFACT: u64 = 512 * 1024 * 1024;

/// What identifies one version of a file on disk, for the verification stamp.
pub(crate) fn identity(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!(
        "v1 dev={} ino={} size={} mtime={}.{} ctime={}.{}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    )
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store { root: root.into() }
    }

    /// The folder of an entry: only ever a validated digest joined to the store root.
    fn entry(&self, sha: &str) -> Result<PathBuf, StoreError> {
        if !is_sha256(sha) {
            return Err(StoreError::BadDigest(sha.escape_debug().to_string()));
        }
        Ok(self.root.join(sha))
    }

    /// The artifact file of a stored entry.
    pub fn artifact(&self, sha: &str, kind: Kind) -> Result<PathBuf, StoreError> {
        Ok(self
            .entry(sha)?
            .join(format!("plugin.{}", kind.file_extension())))
    }

    pub fn contains(&self, sha: &str, kind: Kind) -> bool {
        match (self.artifact(sha, kind), self.entry(sha)) {
            (Ok(a), Ok(e)) => a.is_file() && e.join("manifest.json").is_file(),
            _ => false,
        }
    }

    /// The artifact of an entry, checked against its digest before it is loaded.
    ///
    /// Hashing costs a few milliseconds per megabyte, on every command, so a check that
    /// passed is remembered in `verified` beside the artifact as the file's identity
    /// (device, inode, size, modification and change times). Any write to the file
    /// changes its change time, which no user can set back, so a changed artifact is
    /// hashed again and refused.
    pub fn verified_artifact(&self, sha: &str, kind: Kind) -> Result<PathBuf, StoreError> {
        let path = self.artifact(sha, kind)?;
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::Missing(sha.to_owned()))
            }
            Err(e) => return Err(io(&path)(e)),
        };
        let stamp_path = self.entry(sha)?.join("verified");
        let stamp = identity(&meta);
        if std::fs::read_to_string(&stamp_path).ok().as_deref() == Some(stamp.as_str()) {
            return Ok(path);
        }
        let bytes = crate::confined::read_file(&path, MAX_ARTIFACT).map_err(io(&path))?;
        let actual = sha256_hex(&bytes);
        if actual != sha {
            return Err(StoreError::Tampered {
                entry: self.entry(sha)?,
                path,
                expected: sha.to_owned(),
                actual,
            });
        }
        // Best effort: without the stamp the next load hashes again.
        let _ = atomic_write(&stamp_path, stamp.as_bytes());
        Ok(path)
    }

    /// Verify `bytes` against the expected hash and size, then stage them in the store
    /// (no manifest yet: that is written by [`Store::commit`] once the plugin loaded).
    pub fn stage(
        &self,
        what: &str,
        bytes: &[u8],
        sha: &str,
        size: u64,
        kind: Kind,
    ) -> Result<PathBuf, StoreError> {
        if bytes.len() as u64 != size {
            return Err(StoreError::SizeMismatch {
                what: what.to_owned(),
                expected: size,
                actual: bytes.len() as u64,
            });
        }
        let actual = sha256_hex(bytes);
        if actual != sha {
            return Err(StoreError::HashMismatch {
                what: what.to_owned(),
                expected: sha.to_owned(),
                actual,
            });
        }
        let path = self.artifact(&actual, kind)?;
        let already = std::fs::read(&path)
            .map(|b| sha256_hex(&b) == actual)
            .unwrap_or(false);
        if !already {
            atomic_write(&path, bytes).map_err(io(&path))?;
        }
        Ok(path)
    }

    /// Record the verified manifest, making the entry complete.
    pub fn commit(&self, sha: &str, manifest: &Manifest) -> Result<(), StoreError> {
        let path = self.entry(sha)?.join("manifest.json");
        let text = serde_json::to_vec_pretty(manifest).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        atomic_write(&path, &text).map_err(io(&path))
    }

    /// The manifest of an installed entry.
    pub fn manifest(&self, sha: &str) -> Result<Manifest, StoreError> {
        let path = self.entry(sha)?.join("manifest.json");
        let text = match crate::confined::read_file(&path, crate::confined::MAX_FILE) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::Missing(sha.to_owned()))
            }
            Err(e) => return Err(io(&path)(e)),
        };
        serde_json::from_slice(&text).map_err(|e| StoreError::Corrupt {
            path,
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_mismatch_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let err = store
            .stage("x", b"abc", &"0".repeat(64), 3, Kind::Wasm)
            .unwrap_err();
        assert!(matches!(err, StoreError::HashMismatch { .. }), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn entries_are_keyed_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let sha = sha256_hex(b"abc");
        let path = store.stage("x", b"abc", &sha, 3, Kind::Wasm).unwrap();
        assert!(path.starts_with(dir.path().join(&sha)));
        assert!(
            !store.contains(&sha, Kind::Wasm),
            "incomplete until the manifest is committed"
        );
    }
}
