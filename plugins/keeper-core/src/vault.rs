//! The vault file: AES-256-GCM records under a key derived once per unlock.
//!
//! Layers, checked in this order when a vault is opened and unlocked:
//! 1. a SHA-256 checksum of the body (no key needed): any changed byte is reported
//!    as tampering before a password is even asked for;
//! 2. a verifier record: a wrong password is reported as a wrong password;
//! 3. a GCM tag over the whole body (a MAC only the key holder can make): a body
//!    rewritten with a fresh checksum is still caught;
//! 4. each record is sealed with its own nonce and its name as associated data, so
//!    swapping two records' ciphertexts fails to decrypt.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The floor for PBKDF2-HMAC-SHA256 rounds (OWASP 2023 guidance).
pub const MIN_ITERATIONS: u32 = 600_000;
const FORMAT: &str = "datum-keeper-vault/1";
const VERIFIER_PLAINTEXT: &[u8] = b"datum keeper verifier v1";

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("wrong master password for {0}")]
    WrongPassword(PathBuf),
    #[error(
        "the vault {path} has been tampered with or is corrupt ({what}); restore it from a backup"
    )]
    Tampered { path: PathBuf, what: String },
    #[error("no vault at {0}; create one with `datum keeper init`")]
    Missing(PathBuf),
    #[error("a vault already exists at {0}; it was left untouched")]
    Exists(PathBuf),
    #[error("the vault {path} asks for only {found} PBKDF2 rounds (at least {floor} required); it may have been weakened — restore it from a backup")]
    WeakKdf {
        path: PathBuf,
        found: u32,
        floor: u32,
    },
    #[error("`{0}` is not a valid secret name: use 1-128 characters of a-z, A-Z, 0-9, '-', '_', '.', '/'")]
    BadName(String),
    #[error("vault I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot get random bytes from the operating system: {0}")]
    Random(String),
    #[error("encryption failed")]
    Crypto,
    #[error("the vault {0} was re-sealed under another master password since it was unlocked; nothing was changed. Unlock it again with the new password")]
    Rekeyed(PathBuf),
}

/// Key-derivation parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kdf {
    pub iterations: u32,
}

impl Default for Kdf {
    fn default() -> Self {
        Kdf {
            iterations: MIN_ITERATIONS,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Sealed {
    nonce: String,
    ciphertext: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Record {
    sealed: Sealed,
    updated: String,
}

/// Everything the checksum and MAC cover.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Body {
    format: String,
    kdf: String,
    iterations: u32,
    salt: String,
    verifier: Sealed,
    records: BTreeMap<String, Record>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct File {
    body: Body,
    /// SHA-256 of the body's canonical JSON.
    checksum: String,
    /// GCM tag over the checksum (empty message, checksum as associated data).
    mac: Sealed,
}

/// A vault read from disk whose password has not been given yet.
#[derive(Debug)]
pub struct LockedVault {
    path: PathBuf,
    body: Body,
    mac: Sealed,
}

/// An unlocked vault: the key was derived once and is kept for every operation.
///
/// Several processes may hold the same vault (the CLI, a running `keeper serve`):
/// every write takes an exclusive lock on `vault.lock`, re-reads the file, applies
/// the one change and writes it back atomically, so no writer erases another's
/// secret; readers reload when the file changed under them ([`Vault::refresh`]).
pub struct Vault {
    path: PathBuf,
    body: Body,
    cipher: Aes256Gcm,
    /// The identity of the file this body was read from or written to.
    stamp: Option<String>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("path", &self.path)
            .field("secrets", &self.body.records.len())
            .finish_non_exhaustive()
    }
}

fn random<const N: usize>() -> Result<[u8; N], VaultError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| VaultError::Random(e.to_string()))?;
    Ok(buf)
}

fn canonical(body: &Body) -> Vec<u8> {
    serde_json::to_value(body)
        .map(|v| canonical_json(&v))
        .unwrap_or_default()
}

/// The bytes the checksum covers: compact JSON with every object's keys sorted, so
/// any tool can recompute it from the file (this is part of the file format).
pub fn canonical_json(value: &serde_json::Value) -> Vec<u8> {
    fn write(v: &serde_json::Value, out: &mut Vec<u8>) {
        match v {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push(b'{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend(serde_json::to_vec(k).unwrap_or_default());
                    out.push(b':');
                    write(&map[k], out);
                }
                out.push(b'}');
            }
            serde_json::Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(item, out);
                }
                out.push(b']');
            }
            scalar => out.extend(serde_json::to_vec(scalar).unwrap_or_default()),
        }
    }
    let mut out = Vec::new();
    write(value, &mut out);
    out
}

fn checksum(body: &Body) -> String {
    hex::encode(Sha256::digest(canonical(body)))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && !name.starts_with('/')
        && !name.contains("..")
}

/// The cipher for a password. The derived key is wiped from the stack once the
/// cipher holds it, and the cipher wipes its key schedule when dropped (aes-gcm's
/// `zeroize` feature).
fn derive(password: &[u8], salt: &[u8], iterations: u32) -> Aes256Gcm {
    let key = zeroize::Zeroizing::new(pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(
        password, salt, iterations,
    ));
    Aes256Gcm::new(&(*key).into())
}

fn seal(cipher: &Aes256Gcm, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, VaultError> {
    let nonce_bytes = random::<12>()?;
    let nonce = Nonce::from(nonce_bytes);
    let ciphertext = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| VaultError::Crypto)?;
    Ok(Sealed {
        nonce: hex::encode(nonce_bytes),
        ciphertext: hex::encode(ciphertext),
    })
}

/// Decrypt, or `None` when the tag does not verify (wrong key, changed bytes or AD).
fn open_sealed(cipher: &Aes256Gcm, sealed: &Sealed, aad: &[u8]) -> Option<Vec<u8>> {
    let nonce: [u8; 12] = hex::decode(&sealed.nonce).ok()?.try_into().ok()?;
    let ciphertext = hex::decode(&sealed.ciphertext).ok()?;
    cipher
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &ciphertext,
                aad,
            },
        )
        .ok()
}

fn record_aad(name: &str) -> Vec<u8> {
    format!("datum-keeper record {name}").into_bytes()
}

impl Vault {
    /// Create a new vault (refusing to overwrite one), owner-only, written atomically.
    pub fn create(path: &Path, password: &[u8], kdf: Kdf) -> Result<Vault, VaultError> {
        if path.exists() {
            return Err(VaultError::Exists(path.to_owned()));
        }
        let salt = random::<16>()?;
        let cipher = derive(password, &salt, kdf.iterations);
        let verifier = seal(&cipher, VERIFIER_PLAINTEXT, b"datum-keeper verifier")?;
        let body = Body {
            format: FORMAT.into(),
            kdf: "pbkdf2-hmac-sha256".into(),
            iterations: kdf.iterations,
            salt: hex::encode(salt),
            verifier,
            records: BTreeMap::new(),
        };
        let mut vault = Vault {
            path: path.to_owned(),
            body,
            cipher,
            stamp: None,
        };
        let _lock = lock_exclusive(path)?;
        if path.exists() {
            return Err(VaultError::Exists(path.to_owned()));
        }
        vault.save()?;
        Ok(vault)
    }

    /// Read a vault and check its checksum (no password needed yet).
    pub fn open(path: &Path) -> Result<LockedVault, VaultError> {
        let bytes = match crate::read_bounded(path, MAX_VAULT) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(VaultError::Missing(path.to_owned()))
            }
            Err(source) => {
                return Err(VaultError::Io {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let tampered = |what: &str| VaultError::Tampered {
            path: path.to_owned(),
            what: what.to_owned(),
        };
        let file: File = serde_json::from_slice(&bytes)
            .map_err(|e| tampered(&format!("not a vault file: {e}")))?;
        if file.body.format != FORMAT {
            return Err(tampered(&format!("unknown format `{}`", file.body.format)));
        }
        if checksum(&file.body) != file.checksum {
            return Err(tampered("checksum mismatch"));
        }
        Ok(LockedVault {
            path: path.to_owned(),
            body: file.body,
            mac: file.mac,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Secret names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.body.records.keys().cloned().collect()
    }

    /// Decrypt one secret. A record that fails to decrypt is tampering, never "absent".
    pub fn get(&self, name: &str) -> Result<Option<Vec<u8>>, VaultError> {
        let Some(record) = self.body.records.get(name) else {
            return Ok(None);
        };
        open_sealed(&self.cipher, &record.sealed, &record_aad(name))
            .map(Some)
            .ok_or_else(|| VaultError::Tampered {
                path: self.path.clone(),
                what: format!("record `{name}` does not authenticate"),
            })
    }

    /// Add or replace a secret and save.
    pub fn put(&mut self, name: &str, value: &[u8]) -> Result<(), VaultError> {
        if !valid_name(name) {
            return Err(VaultError::BadName(name.to_owned()));
        }
        self.update(|vault| {
            let sealed = seal(&vault.cipher, value, &record_aad(name))?;
            let updated =
                humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
            vault
                .body
                .records
                .insert(name.to_owned(), Record { sealed, updated });
            Ok(true)
        })
        .map(|_| ())
    }

    /// Remove a secret and save; `false` when there was none.
    pub fn remove(&mut self, name: &str) -> Result<bool, VaultError> {
        self.update(|vault| Ok(vault.body.records.remove(name).is_some()))
    }

    /// One read-modify-write under the vault's exclusive lock: the newest file is
    /// read (and authenticated) first, `change` applied, and the result written
    /// atomically when `change` says it changed something.
    fn update(
        &mut self,
        change: impl FnOnce(&mut Vault) -> Result<bool, VaultError>,
    ) -> Result<bool, VaultError> {
        let _lock = lock_exclusive(&self.path)?;
        self.reload()?;
        let changed = change(self)?;
        if changed {
            if let Err(e) = self.save() {
                // Keep memory equal to the disk: the next call reads it again anyway.
                let _ = self.reload();
                return Err(e);
            }
        }
        Ok(changed)
    }

    /// Read the file again if another process changed it since (for long-running
    /// readers such as the server). `true` when it was reloaded.
    pub fn refresh(&mut self) -> Result<bool, VaultError> {
        if !self.is_stale() {
            return Ok(false);
        }
        self.reload()?;
        Ok(true)
    }

    /// Has the file changed since this vault read or wrote it?
    pub fn is_stale(&self) -> bool {
        crate::file_stamp(&self.path) != self.stamp
    }

    /// Replace the body with the file's, checked with the key already derived.
    fn reload(&mut self) -> Result<(), VaultError> {
        let stamp = crate::file_stamp(&self.path);
        let locked = Vault::open(&self.path)?;
        if locked.body.salt != self.body.salt || locked.body.iterations != self.body.iterations {
            return Err(VaultError::Rekeyed(self.path.clone()));
        }
        if open_sealed(&self.cipher, &locked.mac, checksum(&locked.body).as_bytes()).is_none() {
            return Err(VaultError::Tampered {
                path: self.path.clone(),
                what: "the vault's MAC does not match its contents".into(),
            });
        }
        self.body = locked.body;
        self.stamp = stamp;
        Ok(())
    }

    /// Re-encrypt every record under a new password (new salt, new key), atomically.
    pub fn rotate_password(&mut self, new_password: &[u8], kdf: Kdf) -> Result<(), VaultError> {
        let _lock = lock_exclusive(&self.path)?;
        self.reload()?;
        let mut plain = Vec::new();
        for name in self.names() {
            let value = zeroize::Zeroizing::new(self.get(&name)?.unwrap_or_default());
            plain.push((name, value));
        }
        let salt = random::<16>()?;
        let cipher = derive(new_password, &salt, kdf.iterations);
        let mut records = BTreeMap::new();
        for (name, value) in plain {
            let sealed = seal(&cipher, &value, &record_aad(&name))?;
            let updated = self
                .body
                .records
                .get(&name)
                .map(|r| r.updated.clone())
                .unwrap_or_default();
            records.insert(name, Record { sealed, updated });
        }
        let body = Body {
            verifier: seal(&cipher, VERIFIER_PLAINTEXT, b"datum-keeper verifier")?,
            iterations: kdf.iterations,
            salt: hex::encode(salt),
            records,
            ..self.body.clone()
        };
        let mut next = Vault {
            path: self.path.clone(),
            body,
            cipher,
            stamp: None,
        };
        next.save()?;
        *self = next;
        Ok(())
    }

    /// Write the vault: temp file in the same folder (owner-only), fsync, rename, fsync
    /// the folder. A crash leaves the old vault or the new one, never a torn file.
    fn save(&mut self) -> Result<(), VaultError> {
        let io = |source| VaultError::Io {
            path: self.path.clone(),
            source,
        };
        let sum = checksum(&self.body);
        let mac = seal(&self.cipher, b"", sum.as_bytes())?;
        let file = File {
            body: self.body.clone(),
            checksum: sum,
            mac,
        };
        let mut text =
            serde_json::to_vec_pretty(&file).map_err(|e| io(std::io::Error::other(e)))?;
        text.push(b'\n');
        write_private(&self.path, &text).map_err(io)?;
        self.stamp = crate::file_stamp(&self.path);
        Ok(())
    }
}

/// A vault file larger than this is not read (it would be tens of thousands of secrets).
const MAX_VAULT: u64 = 64 * 1024 * 1024;

/// The vault's writer lock (`vault.lock` beside it), held until the file is dropped.
fn lock_exclusive(path: &Path) -> Result<std::fs::File, VaultError> {
    crate::lock_file(&path.with_extension("lock")).map_err(|source| VaultError::Io {
        path: path.with_extension("lock"),
        source,
    })
}

impl LockedVault {
    /// Derive the key (once) and check the password, then the whole-file MAC.
    /// `min_iterations` guards against a vault whose KDF was weakened on disk.
    pub fn unlock(self, password: &[u8], min_iterations: u32) -> Result<Vault, VaultError> {
        if self.body.iterations < min_iterations {
            return Err(VaultError::WeakKdf {
                path: self.path,
                found: self.body.iterations,
                floor: min_iterations,
            });
        }
        let salt = hex::decode(&self.body.salt).map_err(|_| VaultError::Tampered {
            path: self.path.clone(),
            what: "salt is not hex".into(),
        })?;
        let cipher = derive(password, &salt, self.body.iterations);
        match open_sealed(&cipher, &self.body.verifier, b"datum-keeper verifier") {
            Some(v) if v == VERIFIER_PLAINTEXT => {}
            _ => return Err(VaultError::WrongPassword(self.path)),
        }
        if open_sealed(&cipher, &self.mac, checksum(&self.body).as_bytes()).is_none() {
            return Err(VaultError::Tampered {
                path: self.path,
                what: "the vault's MAC does not match its contents".into(),
            });
        }
        Ok(Vault {
            stamp: crate::file_stamp(&self.path),
            path: self.path,
            body: self.body,
            cipher,
        })
    }

    pub fn iterations(&self) -> u32 {
        self.body.iterations
    }

    /// Secret names (not secret themselves), readable before unlocking.
    pub fn names(&self) -> Vec<String> {
        self.body.records.keys().cloned().collect()
    }
}

/// Atomic, owner-only write (a 0600 file; a missing folder is created 0700).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // A missing folder is created owner-only; an existing one is never re-moded.
    crate::create_private_dir(dir)?;
    // tempfile creates its file with mode 0600 on Unix.
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Below the whole-file MAC: a record sealed under one name does not open under
    /// another, so even a key holder cannot swap records unnoticed.
    #[test]
    fn records_are_bound_to_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let mut v =
            Vault::create(&dir.path().join("v.json"), b"pw", Kdf { iterations: 1_000 }).unwrap();
        v.put("a", b"alpha").unwrap();
        v.put("b", b"bravo").unwrap();
        let a = v.body.records["a"].clone();
        let b = v.body.records["b"].clone();
        v.body.records.insert("a".into(), b);
        v.body.records.insert("b".into(), a);
        assert!(matches!(v.get("a"), Err(VaultError::Tampered { .. })));
        assert!(matches!(v.get("b"), Err(VaultError::Tampered { .. })));
    }
}
