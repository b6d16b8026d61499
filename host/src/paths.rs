//! Where datum keeps machine-wide state: the shared artifact store and caches.

use std::path::{Path, PathBuf};

/// Machine-wide datum state (`DATUM_HOME`, default `~/.local/share/datum`).
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Home { root: root.into() }
    }

    /// `DATUM_HOME`, else `$XDG_DATA_HOME/datum`, else `$HOME/.local/share/datum`.
    pub fn from_env() -> anyhow::Result<Self> {
        if let Some(p) = std::env::var_os("DATUM_HOME").filter(|p| !p.is_empty()) {
            return Ok(Home::new(p));
        }
        if let Some(p) = std::env::var_os("XDG_DATA_HOME").filter(|p| !p.is_empty()) {
            return Ok(Home::new(PathBuf::from(p).join("datum")));
        }
        match std::env::var_os("HOME").filter(|p| !p.is_empty()) {
            Some(h) => Ok(Home::new(PathBuf::from(h).join(".local/share/datum"))),
            None => {
                anyhow::bail!("cannot tell where to keep datum's store: set DATUM_HOME or HOME")
            }
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Content-addressed artifacts shared by every workshop on the machine.
    pub fn store(&self) -> PathBuf {
        self.root.join("store")
    }

    /// Compiled WASM modules, precompiled by wasmtime, one file per module and engine.
    pub fn wasm_cache(&self) -> PathBuf {
        self.root.join("cache/wasm")
    }

    /// Local clones of git registries.
    pub fn git_registries(&self) -> PathBuf {
        self.root.join("registries")
    }

    /// Mirrors of registries on the web (`--registry https://…`).
    pub fn http_registries(&self) -> PathBuf {
        self.root.join("registries-http")
    }
}
