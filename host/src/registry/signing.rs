//! Signed registries: a registry's owner signs its `snapshot.json` (minisign, ed25519)
//! — the registry's name, a version that only grows, an expiry, and the sha256 of
//! registry.json and every index file, which in turn hold every artifact's sha256. One
//! signature so covers the whole registry. `minisign` makes keys and signatures;
//! `minisign-verify` (small, no secret-key code) checks them.
//!
//! Files at the registry root: `snapshot.json`, `snapshot.json.minisig`, and
//! `registry.pub` (the public key, read only on first use: after that the workshop's
//! pinned key decides).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::snapshot::{self, Snapshot};
use super::RegistryError;
use crate::fsutil::atomic_write;

pub const SIG_FILE: &str = "snapshot.json.minisig";
pub const PUB_FILE: &str = "registry.pub";

/// A key pair written by `datum registry keygen`.
#[derive(Debug, Serialize)]
pub struct KeyFiles {
    pub secret: PathBuf,
    pub public: PathBuf,
    /// The public key (minisign base64), as pinned in workshops.
    pub key: String,
    pub fingerprint: String,
}

fn bad(path: &Path, message: impl Into<String>) -> RegistryError {
    RegistryError::Malformed {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// The key id minisign prints: the 8-byte key number, hex.
pub fn fingerprint(key_b64: &str) -> Option<String> {
    minisign::PublicKey::from_base64(key_b64)
        .ok()
        .map(|k| hex::encode(k.keynum()).to_uppercase())
}

/// Write `OUT.key` (secret, mode 0600, never over an existing file) and `OUT.pub`.
pub fn keygen(out: &Path) -> Result<KeyFiles, RegistryError> {
    let secret = out.with_extension("key");
    let public = out.with_extension("pub");
    for p in [&secret, &public] {
        if p.exists() {
            return Err(bad(p, "already exists; keys are never overwritten (move it away, or choose another --out)"));
        }
    }
    let pair = minisign::KeyPair::generate_unencrypted_keypair()
        .map_err(|e| bad(out, format!("cannot make a key pair: {e}")))?;
    let sk = pair
        .sk
        .to_box(Some("datum registry secret key"))
        .map_err(|e| bad(&secret, e.to_string()))?
        .into_string();
    let pk_box = pair.pk.to_box().map_err(|e| bad(&public, e.to_string()))?;
    let key = pair.pk.to_base64();
    if let Some(dir) = secret.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| RegistryError::io(dir, e))?;
    }
    {
        // Owner-only, and never over another key (create_new).
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&secret)
            .map_err(|e| RegistryError::io(&secret, e))?;
        f.write_all(sk.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| RegistryError::io(&secret, e))?;
    }
    atomic_write(&public, pk_box.into_string().as_bytes())
        .map_err(|e| RegistryError::io(&public, e))?;
    Ok(KeyFiles {
        fingerprint: fingerprint(&key).unwrap_or_default(),
        secret,
        public,
        key,
    })
}

/// A secret key file and its public key. datum's keys are unencrypted (CI signs without
/// a prompt); the file is owner-only.
fn load_secret(path: &Path) -> Result<(minisign::SecretKey, minisign::PublicKey), RegistryError> {
    let text = crate::confined::read_text(path, 4096).map_err(|e| RegistryError::io(path, e))?;
    let sk = minisign::SecretKeyBox::from_string(&text)
        .and_then(minisign::SecretKey::from_unencrypted_box)
        .map_err(|e| {
            bad(
                path,
                format!("not a usable secret key ({e}); make one with `datum registry keygen`"),
            )
        })?;
    let pk = minisign::PublicKey::from_secret_key(&sk).map_err(|e| bad(path, e.to_string()))?;
    Ok((sk, pk))
}

pub const ROTATION_FILE: &str = "rotation.json";
pub const ROTATION_OLD_SIG: &str = "rotation.json.old.minisig";
pub const ROTATION_NEW_SIG: &str = "rotation.json.new.minisig";

/// A key change, signed by both keys: `{registry, old, new}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Rotation {
    pub registry: String,
    pub old: String,
    pub new: String,
}

/// `datum registry rotate`: move the registry at `root` from the `old` key to the
/// `new` one. rotation.json names both and is signed by both, so a workshop that pinned
/// the old key accepts the new one; then the snapshot is signed with the new key.
pub fn rotate(root: &Path, old: &Path, new: &Path, days: u64) -> Result<Rotation, RegistryError> {
    let (old_sk, old_pk) = load_secret(old)?;
    let (new_sk, new_pk) = load_secret(new)?;
    let config: super::RegistryConfig = super::read_json(&root.join("registry.json"))?;
    let rotation = Rotation {
        registry: config.name,
        old: old_pk.to_base64(),
        new: new_pk.to_base64(),
    };
    let path = root.join(ROTATION_FILE);
    super::publish::write_json(&path, &rotation)?;
    let bytes = std::fs::read(&path).map_err(|e| RegistryError::io(&path, e))?;
    for (sk, pk, file) in [
        (&old_sk, &old_pk, ROTATION_OLD_SIG),
        (&new_sk, &new_pk, ROTATION_NEW_SIG),
    ] {
        let comment = format!("datum registry {} key rotation", rotation.registry);
        let sig = minisign::sign(Some(pk), sk, bytes.as_slice(), Some(&comment), None)
            .map_err(|e| bad(&path, format!("cannot sign: {e}")))?;
        let sig_path = root.join(file);
        atomic_write(&sig_path, sig.into_string().as_bytes())
            .map_err(|e| RegistryError::io(&sig_path, e))?;
    }
    sign(root, new, days)?;
    Ok(rotation)
}

/// The registry's rotation from `pinned` to `offered`, if it carries one signed by both.
pub fn rotation_to(root: &Path, pinned: &str, offered: &str) -> Option<Rotation> {
    let path = root.join(ROTATION_FILE);
    let bytes = crate::confined::read_file(&path, 64 * 1024).ok()?;
    let rotation: Rotation = serde_json::from_slice(&bytes).ok()?;
    if rotation.old != pinned || rotation.new != offered {
        return None;
    }
    for (key, file) in [(pinned, ROTATION_OLD_SIG), (offered, ROTATION_NEW_SIG)] {
        let pk = minisign_verify::PublicKey::from_base64(key).ok()?;
        let text = crate::confined::read_text(&root.join(file), 4096).ok()?;
        let sig = minisign_verify::Signature::decode(&text).ok()?;
        pk.verify(&bytes, &sig, false).ok()?;
    }
    Some(rotation)
}

/// Sign the registry at `root` with `secret_key`: snapshot.json (refreshed, with an
/// expiry `days` from now), its signature, and the public key beside them.
pub fn sign(root: &Path, secret_key: &Path, days: u64) -> Result<Snapshot, RegistryError> {
    let (sk, pk) = load_secret(secret_key)?;
    let snap = snapshot::refresh(root, Some(snapshot::now() + days.saturating_mul(86_400)))?;
    let path = root.join(snapshot::FILE);
    let bytes = std::fs::read(&path).map_err(|e| RegistryError::io(&path, e))?;
    let comment = format!("datum registry {} snapshot {}", snap.registry, snap.version);
    let sig = minisign::sign(Some(&pk), &sk, bytes.as_slice(), Some(&comment), None)
        .map_err(|e| bad(&path, format!("cannot sign: {e}")))?;
    let sig_path = root.join(SIG_FILE);
    atomic_write(&sig_path, sig.into_string().as_bytes())
        .map_err(|e| RegistryError::io(&sig_path, e))?;
    let pub_path = root.join(PUB_FILE);
    let pk_box = pk.to_box().map_err(|e| bad(&pub_path, e.to_string()))?;
    atomic_write(&pub_path, pk_box.into_string().as_bytes())
        .map_err(|e| RegistryError::io(&pub_path, e))?;
    Ok(snap)
}

/// Does the registry at `root` carry a signature?
pub fn is_signed(root: &Path) -> bool {
    root.join(SIG_FILE).is_file()
}

/// The public key the registry offers (base64), read from registry.pub.
pub fn offered_key(root: &Path) -> Result<String, RegistryError> {
    let path = root.join(PUB_FILE);
    let text = crate::confined::read_text(&path, 4096).map_err(|e| RegistryError::io(&path, e))?;
    minisign::PublicKeyBox::from_string(&text)
        .and_then(minisign::PublicKey::from_box)
        .map(|k| k.to_base64())
        .map_err(|e| bad(&path, format!("not a minisign public key ({e})")))
}

/// Check the signature on the registry's snapshot with `key` (base64), then return the
/// snapshot as signed.
pub fn verify(root: &Path, key: &str) -> Result<Snapshot, RegistryError> {
    let path = root.join(snapshot::FILE);
    let bytes = crate::confined::read_file(&path, crate::confined::MAX_FILE)
        .map_err(|e| RegistryError::io(&path, e))?;
    let sig_path = root.join(SIG_FILE);
    let sig_text =
        crate::confined::read_text(&sig_path, 4096).map_err(|e| RegistryError::io(&sig_path, e))?;
    let pk = minisign_verify::PublicKey::from_base64(key)
        .map_err(|e| bad(&path, format!("the pinned key is not a minisign key: {e}")))?;
    let sig = minisign_verify::Signature::decode(&sig_text)
        .map_err(|e| bad(&sig_path, format!("not a minisign signature: {e}")))?;
    pk.verify(&bytes, &sig, false)
        .map_err(|e| RegistryError::Signature {
            path: sig_path.clone(),
            message: format!("{e}: snapshot.json was not signed by the registry's key"),
        })?;
    let snap: Snapshot = serde_json::from_slice(&bytes).map_err(|e| bad(&path, e.to_string()))?;
    // The name and version are also in the signed comment: a signature cannot be
    // replayed onto another registry's or another version's snapshot.
    let want = format!("datum registry {} snapshot {}", snap.registry, snap.version);
    if sig.trusted_comment() != want {
        return Err(RegistryError::Signature {
            path: sig_path,
            message: format!(
                "the signature is for `{}`, not for this snapshot",
                sig.trusted_comment().escape_debug()
            ),
        });
    }
    Ok(snap)
}
