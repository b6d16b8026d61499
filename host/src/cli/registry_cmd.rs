//! `datum registry publish`: add built artifacts to a folder registry.

use std::path::PathBuf;

use anyhow::Context as _;
use serde_json::json;

use super::Context;
use crate::loader::{self, LoadOptions};
use crate::registry::{self, Kind};

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
        } => {
            let readme = match &readme {
                Some(p) => Some(
                    std::fs::read_to_string(p)
                        .with_context(|| format!("--readme {}: cannot read it", p.display()))?,
                ),
                None => None,
            };
            let kind = if artifact.extension().is_some_and(|e| e == "wasm") {
                Kind::Wasm
            } else {
                Kind::Native
            };
            let options = LoadOptions {
                limits: datum_plugin_api::Limits::default(),
                wasm_cache_config: None,
            };
            let mut instance = loader::load(kind, &artifact, &options, loader::no_services())
                .with_context(|| format!("cannot load {}", artifact.display()))?;
            let described = loader::describe(instance.as_mut())
                .with_context(|| format!("{} did not describe itself", artifact.display()))?;
            let target = target.unwrap_or_else(|| kind.target().to_owned());
            let entry = registry::publish(
                &into,
                &described.manifest,
                kind,
                &target,
                &artifact,
                readme.as_deref(),
            )?;
            let m = &described.manifest;
            ctx.reporter.emit(
                &json!({"name": m.name, "version": m.version.to_string(), "kind": kind, "target": target, "artifact": entry}),
                || format!("published {} {} ({kind}, {target}, {} bytes)", m.name, m.version, entry.size),
            )
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
            ctx.reporter
                .emit(&config, || format!("configured {}", path.display()))
        }
    }
}
