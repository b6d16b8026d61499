//! `datum-plugin.toml`: what a plugin is, what it offers and what it asks for.
//!
//! The same manifest is embedded in the artifact and published in the registry index,
//! so `datum plugin info` can show it before download and `install` can cross-check it.

use std::collections::BTreeMap;
use std::fmt;

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

use crate::grant::Grant;

/// A parsed, validated plugin manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: Version,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub license: String,
    /// Requirement on `datum-plugin-api` (not on the host's version).
    pub api: VersionReq,
    /// Abilities this plugin gives an agent (e.g. `flux-execution`).
    #[serde(default)]
    pub provides: Vec<String>,
    #[serde(default)]
    pub commands: Vec<CommandSpec>,
    #[serde(default)]
    pub permissions: Vec<Permission>,
    #[serde(default)]
    pub limits: Limits,
    /// Other plugins this one needs, by name and semver requirement.
    #[serde(default)]
    pub requires: BTreeMap<String, VersionReq>,
}

/// One command path a plugin contributes to the `datum` CLI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// Words separated by single spaces, e.g. `flux run`.
    pub path: String,
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub args: Vec<ArgSpec>,
    #[serde(default)]
    pub examples: Vec<Example>,
    /// This command's own time limit, replacing `limits.timeout_ms` for calls to it
    /// (e.g. a `watch` that runs until stopped). Since API 1.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl CommandSpec {
    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.path.split_whitespace()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgSpec {
    pub name: String,
    #[serde(rename = "type", default)]
    pub ty: ArgType,
    #[serde(default)]
    pub help: String,
    #[serde(default)]
    pub required: bool,
    /// Positional instead of `--name VALUE`.
    #[serde(default)]
    pub positional: bool,
    /// May be given more than once (collected into a JSON array).
    #[serde(default)]
    pub multiple: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArgType {
    #[default]
    String,
    Int,
    Bool,
    /// A path; the host resolves it against the caller's current directory.
    Path,
    /// A file the user names on the command line: the host reads it (the user's
    /// consent) and passes its contents, so sandboxed plugins need no file grant.
    /// Read it with [`crate::Request::arg_file`]. Since API 1.1.
    File,
    /// Text given on the command line, or `-` for the host to read standard input
    /// (a message body, say). Arrives as a string. Since API 1.3.
    Text,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    /// The full command line, starting with `datum`.
    pub run: String,
    /// What the text rendering prints (checked by the plugin's tests).
    #[serde(default)]
    pub output: String,
    /// Whether `output` is exactly what the command prints in a fresh workshop, so the
    /// host can run the example as a golden test (`plugin.prove`, `datum learn`). Set
    /// `golden = false` for an illustration (it needs a network, a GPU, or prints the
    /// time). Since API 1.5.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub golden: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// A host service the plugin asks for, with the reason shown at install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permission {
    pub kind: PermissionKind,
    /// A workshop-relative path prefix for `fs-read`/`fs-write`, a plugin name for `call`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub reason: String,
}

impl Permission {
    /// This permission as a checked [`Grant`] (what `validate` requires it to be).
    /// Since API 1.6.
    pub fn as_grant(&self) -> Result<Grant, ManifestError> {
        Grant::new(self.kind, self.scope.as_deref())
    }

    /// The grant string recorded in the lock file and accepted by `datum plugin grant`.
    pub fn grant(&self) -> String {
        match &self.scope {
            Some(scope) => format!("{}:{scope}", self.kind),
            None => self.kind.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PermissionKind {
    /// The plugin's own key-value store in the workshop.
    Kv,
    /// Read files under a workshop path.
    FsRead,
    /// Write files under a workshop path.
    FsWrite,
    /// Call another installed plugin's commands.
    Call,
    /// Ask the Keeper for secrets whose names match the scope (`db/*`). Since API 1.2.
    Secrets,
    /// Commit, pull and push a workshop path through git (`git:message-in-a-bottle`).
    /// Since API 1.3.
    Git,
    /// Install (and update) plugins into the workshop through the host, under the same
    /// trust and consent rules as `datum plugin install` (`install:NAME` or
    /// `install:*`). Since API 1.5.
    Install,
}

impl PermissionKind {
    pub const ALL: [PermissionKind; 7] = [
        PermissionKind::Kv,
        PermissionKind::FsRead,
        PermissionKind::FsWrite,
        PermissionKind::Call,
        PermissionKind::Secrets,
        PermissionKind::Git,
        PermissionKind::Install,
    ];
}

impl PermissionKind {
    /// What follows the colon in a grant of this kind, for messages.
    pub fn scope_shape(self) -> &'static str {
        match self {
            PermissionKind::Kv => "",
            PermissionKind::FsRead | PermissionKind::FsWrite | PermissionKind::Git => "PATH",
            PermissionKind::Call | PermissionKind::Install => "PLUGIN",
            PermissionKind::Secrets => "PATTERN",
        }
    }
}

impl fmt::Display for PermissionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PermissionKind::Kv => "kv",
            PermissionKind::FsRead => "fs-read",
            PermissionKind::FsWrite => "fs-write",
            PermissionKind::Call => "call",
            PermissionKind::Secrets => "secrets",
            PermissionKind::Git => "git",
            PermissionKind::Install => "install",
        })
    }
}

impl std::str::FromStr for PermissionKind {
    type Err = ManifestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PermissionKind::ALL
            .into_iter()
            .find(|k| k.to_string() == s)
            .ok_or_else(|| {
                ManifestError::Invalid(format!(
                    "unknown permission kind `{s}`; expected one of kv, fs-read, fs-write, call, secrets, git, install"
                ))
            })
    }
}

/// Resource limits the host enforces on the WASM tier (and on output size for both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub memory_mb: u32,
    pub timeout_ms: u64,
    pub max_output_kb: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mb: 64,
            timeout_ms: 10_000,
            max_output_kb: 4096,
        }
    }
}

/// A dependency on another plugin; same shape as `requires` entries.
pub type Requirement = (String, VersionReq);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("datum-plugin.toml is not valid TOML for a manifest: {0}")]
    Parse(String),
    #[error("datum-plugin.toml: {0}")]
    Invalid(String),
}

/// Cargo metadata used to fill manifest fields the author left out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Defaults<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub description: &'a str,
    pub license: &'a str,
}

impl Manifest {
    /// Parse a manifest written by a plugin author, filling `name`, `version`,
    /// `description` and `license` from `defaults` when they are absent.
    #[cfg(feature = "toml")]
    pub fn from_toml_with_defaults(
        text: &str,
        defaults: Defaults<'_>,
    ) -> Result<Self, ManifestError> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| ManifestError::Parse(e.to_string()))?;
        for (key, value) in [
            ("name", defaults.name),
            ("version", defaults.version),
            ("description", defaults.description),
            ("license", defaults.license),
        ] {
            if !value.is_empty() && !table.contains_key(key) {
                table.insert(key.to_owned(), toml::Value::String(value.to_owned()));
            }
        }
        let manifest: Manifest = table
            .try_into()
            .map_err(|e: toml::de::Error| ManifestError::Parse(e.to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Parse a complete manifest (as published in an index).
    #[cfg(feature = "toml")]
    pub fn from_toml(text: &str) -> Result<Self, ManifestError> {
        Manifest::from_toml_with_defaults(text, Defaults::default())
    }

    /// Render back to TOML (for `datum plugin info` and scaffolds).
    #[cfg(feature = "toml")]
    pub fn to_toml(&self) -> Result<String, ManifestError> {
        toml::to_string_pretty(self).map_err(|e| ManifestError::Invalid(e.to_string()))
    }

    /// Structural checks that serde cannot express.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if !valid_name(&self.name) {
            return Err(ManifestError::Invalid(format!(
                "plugin name `{}` must be 1-64 characters of a-z, 0-9 and '-', starting with a letter",
                self.name
            )));
        }
        for p in &self.permissions {
            if p.reason.trim().is_empty() {
                return Err(ManifestError::Invalid(format!(
                    "permission `{}` needs a `reason` the user can read at install",
                    p.grant()
                )));
            }
            // The same check as every grant: a scope that could leave the workshop
            // is refused here, before anyone is asked to grant it.
            p.as_grant()?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.commands {
            if c.words().next().is_none() {
                return Err(ManifestError::Invalid(
                    "a command has an empty `path`".into(),
                ));
            }
            if !seen.insert(c.path.clone()) {
                return Err(ManifestError::Invalid(format!(
                    "command `{}` is declared twice",
                    c.path
                )));
            }
            if c.words().any(|w| w.starts_with('-')) {
                return Err(ManifestError::Invalid(format!(
                    "command path `{}` may not contain flags",
                    c.path
                )));
            }
            let mut arg_names = std::collections::BTreeSet::new();
            for a in &c.args {
                if !arg_names.insert(a.name.as_str()) {
                    return Err(ManifestError::Invalid(format!(
                        "argument `{}` of `{}` is declared twice",
                        a.name, c.path
                    )));
                }
                if RESERVED_ARGS.contains(&a.name.as_str()) {
                    return Err(ManifestError::Invalid(format!(
                        "argument `{}` of `{}` is reserved by the host",
                        a.name, c.path
                    )));
                }
            }
        }
        if self.limits.memory_mb == 0
            || self.limits.timeout_ms == 0
            || self.limits.max_output_kb == 0
        {
            return Err(ManifestError::Invalid(
                "limits must all be greater than zero".into(),
            ));
        }
        Ok(())
    }

    /// The command whose path is the longest prefix of `words`, with the number of words it used.
    pub fn match_command<'a>(&'a self, words: &[&str]) -> Option<(&'a CommandSpec, usize)> {
        self.commands
            .iter()
            .filter_map(|c| {
                let path: Vec<&str> = c.words().collect();
                (words.len() >= path.len() && words[..path.len()] == path[..])
                    .then_some((c, path.len()))
            })
            .max_by_key(|(_, n)| *n)
    }
}

/// Flags every command gets from the host; plugins may not redefine them.
pub const RESERVED_ARGS: &[&str] = &["format", "workshop", "registry", "help"];

/// Plugin and agent names: also used as path components, so kept to a safe alphabet.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 64
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
}
