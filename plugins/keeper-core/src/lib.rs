//! The Keeper's core: an encrypted, authenticated vault file, the fail-closed policy
//! that decides who may read which secret for which destination, and the audit log.
//!
//! ```
//! # fn main() -> Result<(), keeper_core::VaultError> {
//! use keeper_core::{Kdf, Vault};
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("vault.json");
//! // Tests use few PBKDF2 rounds; real vaults use Kdf::default() (600 000).
//! let kdf = Kdf { iterations: 1_000 };
//! let mut vault = Vault::create(&path, b"correct horse", kdf)?;
//! vault.put("github-token", b"ghp_example")?;
//! let vault = Vault::open(&path)?.unlock(b"correct horse", 1_000)?;
//! assert_eq!(vault.get("github-token")?.as_deref(), Some(&b"ghp_example"[..]));
//! # Ok(()) }
//! ```

mod audit;
mod files;
mod gate;
mod policy;
mod vault;

pub use audit::{AuditEntry, AuditLog};
pub use files::{create_private_dir, file_stamp, is_private_dir, lock_file, read_bounded};
pub use gate::{now_secs, request_secret, Granted, Refusal};
pub use policy::{
    matches, Decision, Policy, PolicyError, Request, DEFAULT_BLOCKED, MAX_POLICY_BYTES,
};
pub use vault::{
    canonical_json, write_private, Kdf, LockedVault, Vault, VaultError, MIN_ITERATIONS,
};
