//! `datum registry publish`: add built artifacts to a folder registry.

use std::path::PathBuf;

use anyhow::Context as _;

use super::Context;
use crate::registry;

#[derive(Debug, clap::Subcommand)]
pub enum RegistryCommand {
    /// Load an artifact, read its manifest, and record it in a folder registry.
    Publish {
        /// The built plugin: a .wasm module or a native shared library.
        artifact: PathBuf,
        /// The registry folder to publish into (created when missing).
        #[arg(long = "into", value_name = "DIR")]
        into: PathBuf,
        /// Override the target triple recorded for the artifact.
        #[arg(long)]
        target: Option<String>,
        /// The plugin's README, carried by the registry so `datum plugin info` and
        /// `datum learn --full` can read it before installing.
        #[arg(long, value_name = "FILE")]
        readme: Option<PathBuf>,
        /// Sign the registry afterwards with this secret key (`datum registry sign`).
        #[arg(long, value_name = "KEY")]
        sign: Option<PathBuf>,
    },
    /// Make a registry signing key pair: OUT.key (secret, owner-only) and OUT.pub.
    Keygen {
        #[arg(long, value_name = "OUT")]
        out: PathBuf,
    },
    /// Sign a folder registry: snapshot.json (every index file's sha256, a version
    /// that only grows, an expiry), its minisign signature, and the public key beside.
    Sign {
        /// The registry folder.
        dir: PathBuf,
        /// The secret key (`datum registry keygen`).
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// Days until the signed snapshot expires and must be signed again.
        #[arg(long, default_value_t = 90)]
        expires_days: u64,
    },
    /// Move a registry to a new key: rotation.json signed by the old and the new key
    /// (workshops that pinned the old one accept the new), then the snapshot signed anew.
    Rotate {
        dir: PathBuf,
        #[arg(long, value_name = "KEY")]
        old: PathBuf,
        #[arg(long, value_name = "KEY")]
        new: PathBuf,
        #[arg(long, default_value_t = 90)]
        expires_days: u64,
    },
    /// Set registry.json fields: the default plugin set and whether it is trusted.
    Configure {
        #[arg(long = "into", value_name = "DIR")]
        into: PathBuf,
        #[arg(long)]
        name: Option<String>,
        /// Plugins `datum boot` installs (comma-separated).
        #[arg(long, value_delimiter = ',')]
        default_plugins: Option<Vec<String>>,
        /// Mark the registry trusted (native plugins install without --trust-native).
        #[arg(long)]
        trusted: Option<bool>,
    },
}

pub fn run(ctx: &Context, cmd: RegistryCommand) -> anyhow::Result<()> {
    match cmd {
        RegistryCommand::Publish {
            artifact,
            into,
            target,
            readme,
            sign,
        } => {
            let readme = match &readme {
                Some(p) => Some(
                    std::fs::read_to_string(p)
                        .with_context(|| format!("--readme {}: cannot read it", p.display()))?,
                ),
                None => None,
            };
            let p = crate::author::publish(&into, &artifact, target, readme.as_deref())?;
            if let Some(key) = &sign {
                registry::signing::sign(&into, key, 90)?;
            }
            ctx.reporter.emit(&p, || {
                format!(
                    "published {} {} ({}, {}, {} bytes)",
                    p.name, p.version, p.kind, p.target, p.artifact.size
                )
            })
        }
        RegistryCommand::Keygen { out } => {
            let keys = registry::signing::keygen(&out)?;
            ctx.reporter.emit(&keys, || {
                format!(
                    "secret key: {} (keep it private; it signs your registry)\npublic key: {} (fingerprint {})",
                    keys.secret.display(),
                    keys.public.display(),
                    keys.fingerprint
                )
            })
        }
        RegistryCommand::Sign {
            dir,
            key,
            expires_days,
        } => {
            let snap = registry::signing::sign(&dir, &key, expires_days)?;
            ctx.reporter.emit(&snap, || {
                format!(
                    "signed snapshot {} of registry `{}` ({} files), valid for {expires_days} days",
                    snap.version,
                    snap.registry,
                    snap.files.len()
                )
            })
        }
        RegistryCommand::Rotate {
            dir,
            old,
            new,
            expires_days,
        } => {
            let r = registry::signing::rotate(&dir, &old, &new, expires_days)?;
            ctx.reporter.emit(&r, || {
                format!(
                    "registry `{}` rotated from key {} to {} (rotation.json signed by both; the snapshot signed with the new key)",
                    r.registry,
                    registry::signing::fingerprint(&r.old).unwrap_or_default(),
                    registry::signing::fingerprint(&r.new).unwrap_or_default()
                )
            })
        }
        RegistryCommand::Configure {
            into,
            name,
            default_plugins,
            trusted,
        } => {
            let path = into.join("registry.json");
            let mut config: registry::RegistryConfig = match std::fs::read_to_string(&path) {
                Ok(t) => serde_json::from_str(&t)
                    .with_context(|| format!("{} is malformed", path.display()))?,
                Err(_) => registry::RegistryConfig::default(),
            };
            if let Some(n) = name {
                config.name = n;
            }
            if let Some(d) = default_plugins {
                config.default_plugins = d;
            }
            if let Some(t) = trusted {
                config.trusted = t;
            }
            let mut text = serde_json::to_string_pretty(&config)?;
            text.push('\n');
            crate::fsutil::atomic_write(&path, text.as_bytes())?;
            registry::refresh_snapshot(&into, None)?;
            ctx.reporter
                .emit(&config, || format!("configured {}", path.display()))
        }
    }
}
