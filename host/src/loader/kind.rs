//! The two tiers a plugin runs as, and the build targets each loads.

use serde::{Deserialize, Serialize};

/// The target triple WASM artifacts are built for.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// The target triple native artifacts must be built for to load in this host.
pub fn native_target() -> &'static str {
    env!("DATUM_HOST_TARGET")
}

/// The two tiers a plugin can be installed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// In-process shared library (trusted tier).
    Native,
    /// Sandboxed WebAssembly module via Extism.
    Wasm,
}

impl Kind {
    pub fn target(self) -> &'static str {
        match self {
            Kind::Native => native_target(),
            Kind::Wasm => WASM_TARGET,
        }
    }

    pub fn other(self) -> Kind {
        match self {
            Kind::Native => Kind::Wasm,
            Kind::Wasm => Kind::Native,
        }
    }

    pub fn file_extension(self) -> &'static str {
        match self {
            Kind::Native => std::env::consts::DLL_EXTENSION,
            Kind::Wasm => "wasm",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Native => "native",
            Kind::Wasm => "wasm",
        })
    }
}
