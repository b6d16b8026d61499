//! One shape for every failure datum reports: a `kind` (stable, machine-readable), a
//! `category` that decides the exit code, a `message`, a `hint` naming the fix, and the
//! plugin, version and call where there is one. Every error type of the host
//! implements [`Explain`]; [`Problem::of`] finds the first typed error in a chain, so
//! context added on the way up (`anyhow::Context`) never hides what kind it was.
//!
//! The exit codes are part of datum's interface (scripts branch on them) and are
//! listed in the README; `tests/all/exit_codes.rs` pins one case of each.

use serde::Serialize;
use serde_json::{json, Value};

use crate::keeper::KeeperError;
use crate::loader::{CallFailure, LoadError};
use crate::registry::RegistryError;
use crate::runtime::RuntimeError;
use crate::store::StoreError;
use crate::workshop::LockError;

/// What went wrong, broadly; each has its own exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// Anything not listed below.
    Failed,
    /// The command line or a command's arguments are wrong (clap uses 2 as well).
    Usage,
    /// No workshop, no such plugin, version or file.
    NotFound,
    /// A grant, the Keeper's policy or a consent is missing.
    Denied,
    /// A signature, key pin, snapshot or digest does not check out: refused.
    Untrusted,
    /// The plugin itself failed: it trapped, panicked, replied garbage or said no.
    Plugin,
    /// A limit stopped it: time, memory or output size.
    Limit,
    /// A remote (registry, Keeper, git remote) could not be reached.
    Unavailable,
    /// A file datum keeps (lock, store entry, registration) is damaged.
    Corrupt,
}

impl Category {
    pub const ALL: [Category; 9] = [
        Category::Failed,
        Category::Usage,
        Category::NotFound,
        Category::Denied,
        Category::Untrusted,
        Category::Plugin,
        Category::Limit,
        Category::Unavailable,
        Category::Corrupt,
    ];

    /// The process exit code for this category.
    pub fn exit_code(self) -> u8 {
        match self {
            Category::Failed => 1,
            Category::Usage => 2,
            Category::NotFound => 3,
            Category::Denied => 4,
            Category::Untrusted => 5,
            Category::Plugin => 6,
            Category::Limit => 7,
            Category::Unavailable => 8,
            Category::Corrupt => 9,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Failed => "failed",
            Category::Usage => "usage",
            Category::NotFound => "not-found",
            Category::Denied => "denied",
            Category::Untrusted => "untrusted",
            Category::Plugin => "plugin",
            Category::Limit => "limit",
            Category::Unavailable => "unavailable",
            Category::Corrupt => "corrupt",
        }
    }
}

/// What every host error type says about itself.
pub trait Explain: std::error::Error {
    /// A stable kebab-case name (`trap`, `signature`, `not-installed`, …).
    fn kind(&self) -> &'static str;
    fn category(&self) -> Category;
    /// The fix, as a command or an action.
    fn hint(&self) -> String;
}

/// A failure raised where no richer type fits, in the one shape.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub kind: &'static str,
    pub category: Category,
    pub message: String,
    pub hint: String,
}

impl Explain for Failure {
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn category(&self) -> Category {
        self.category
    }
    fn hint(&self) -> String {
        self.hint.clone()
    }
}

/// Build a [`Failure`] as an `anyhow::Error` (`return Err(fail(…))`).
pub fn fail(
    kind: &'static str,
    category: Category,
    message: impl Into<String>,
    hint: impl Into<String>,
) -> anyhow::Error {
    anyhow::Error::new(Failure {
        kind,
        category,
        message: message.into(),
        hint: hint.into(),
    })
}

/// A failure, ready to print or send.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub kind: String,
    pub category: Category,
    pub message: String,
    pub hint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The plugin command that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
}

/// The hint when nothing more specific is known.
const GENERAL_HINT: &str =
    "run it again with -v for details; `datum COMMAND --help` shows how it is used";

impl Problem {
    /// Explain an error from anywhere in datum: the first typed error in its chain
    /// decides kind, category and hint; the message keeps the whole chain.
    pub fn of(e: &anyhow::Error) -> Problem {
        let mut problem = Problem {
            kind: "error".into(),
            category: Category::Failed,
            message: format!("{e:#}"),
            hint: GENERAL_HINT.into(),
            plugin: None,
            version: None,
            call: None,
        };
        for cause in e.chain() {
            let explained: Option<&dyn Explain> = if let Some(x) = cause.downcast_ref::<Failure>() {
                Some(x)
            } else if let Some(x) = cause.downcast_ref::<RuntimeError>() {
                problem.add_plugin_context(x);
                Some(x)
            } else if let Some(x) = cause.downcast_ref::<RegistryError>() {
                Some(x)
            } else if let Some(x) = cause.downcast_ref::<StoreError>() {
                Some(x)
            } else if let Some(x) = cause.downcast_ref::<LockError>() {
                Some(x)
            } else if let Some(x) = cause.downcast_ref::<KeeperError>() {
                Some(x)
            } else if let Some(x) = cause.downcast_ref::<LoadError>() {
                Some(x)
            } else {
                None
            };
            if let Some(x) = explained {
                problem.kind = x.kind().into();
                problem.category = x.category();
                problem.hint = x.hint();
                break;
            }
        }
        problem
    }

    /// A plugin failure: name the plugin, its version and the call, and say it as
    /// "PLUGIN VERSION failed on `CALL`: what it said" (its own hint apart).
    fn add_plugin_context(&mut self, e: &RuntimeError) {
        if let Some((plugin, version)) = e.plugin() {
            self.plugin = Some(plugin.to_owned());
            self.version = Some(version.to_owned());
        }
        self.call = e.command().map(str::to_owned);
        if let RuntimeError::Plugin {
            plugin,
            version,
            command,
            error,
        } = e
        {
            self.message = format!(
                "{plugin} {version} failed on `{command}`: {}",
                error.message
            );
        }
    }

    /// The exit code of the process that reports this.
    pub fn exit_code(&self) -> u8 {
        self.category.exit_code()
    }

    /// `{"ok": false, "error": {…}}`: what `--format json` prints and `datum batch`
    /// answers.
    pub fn to_json(&self) -> Value {
        json!({ "ok": false, "error": self })
    }

    /// For people: the message, then the fix on its own line (unless the message
    /// already ends with it).
    pub fn to_text(&self) -> String {
        let message = self
            .message
            .strip_prefix("error: ")
            .unwrap_or(&self.message);
        if message.contains(&self.hint) {
            format!("error: {message}")
        } else {
            format!("error: {message}\n  help: {}", self.hint)
        }
    }
}

impl Explain for RuntimeError {
    fn kind(&self) -> &'static str {
        RuntimeError::kind(self)
    }
    fn category(&self) -> Category {
        use datum_plugin_api::ErrorKind as K;
        match self {
            RuntimeError::Call { failure, .. } => match failure {
                CallFailure::Timeout(_)
                | CallFailure::OutOfMemory(_)
                | CallFailure::OutputTooLarge { .. } => Category::Limit,
                _ => Category::Plugin,
            },
            RuntimeError::Load { .. } => Category::Plugin,
            RuntimeError::Plugin { error, .. } => match error.kind {
                K::InvalidArgs | K::UnknownCommand => Category::Usage,
                K::PermissionDenied => Category::Denied,
                _ => Category::Plugin,
            },
            RuntimeError::NotInstalled { .. } => Category::NotFound,
            RuntimeError::Other(_) => Category::Failed,
        }
    }
    fn hint(&self) -> String {
        RuntimeError::hint(self)
    }
}

impl Explain for RegistryError {
    fn kind(&self) -> &'static str {
        match self {
            RegistryError::Missing(_) => "registry-missing",
            RegistryError::NotARegistry(_) => "not-a-registry",
            RegistryError::Io { .. } => "registry-io",
            RegistryError::Malformed { .. } => "registry-malformed",
            RegistryError::NotFound { .. } => "no-such-plugin",
            RegistryError::NoMatchingVersion { .. } => "no-matching-version",
            RegistryError::ApiIncompatible { .. } => "api-incompatible",
            RegistryError::NoArtifact { .. } => "no-artifact",
            RegistryError::Git { .. } => "git-registry",
            RegistryError::Http { .. } => "http-registry",
            RegistryError::Signature { .. } => "signature",
            RegistryError::BadName(_) => "bad-name",
        }
    }
    fn category(&self) -> Category {
        match self {
            RegistryError::Missing(_)
            | RegistryError::NotFound { .. }
            | RegistryError::NoMatchingVersion { .. }
            | RegistryError::NoArtifact { .. }
            | RegistryError::ApiIncompatible { .. } => Category::NotFound,
            RegistryError::NotARegistry(_) | RegistryError::BadName(_) => Category::Usage,
            RegistryError::Malformed { .. } => Category::Corrupt,
            RegistryError::Signature { .. } => Category::Untrusted,
            RegistryError::Git { .. } | RegistryError::Http { .. } => Category::Unavailable,
            RegistryError::Io { .. } => Category::Failed,
        }
    }
    fn hint(&self) -> String {
        match self {
            RegistryError::Missing(_) | RegistryError::NotARegistry(_) => {
                "pass --registry DIR|URL (a folder with registry.json), or build the bundled one with scripts/build-registry".into()
            }
            RegistryError::Io { .. } => "check the registry folder's permissions".into(),
            RegistryError::Malformed { .. } => {
                "the registry is damaged; ask its publisher to republish, or use another registry".into()
            }
            RegistryError::NotFound { name, .. } => format!("datum plugin search {name}"),
            RegistryError::NoMatchingVersion { name, newest, .. } => {
                format!("datum plugin install {name}@{newest}")
            }
            RegistryError::ApiIncompatible { fix, .. } => fix.clone(),
            RegistryError::NoArtifact { alternative, .. } => {
                format!("install with --kind {alternative}")
            }
            RegistryError::Git { .. } => {
                "check the URL and that git can reach it (`git ls-remote URL`)".into()
            }
            RegistryError::Http { .. } => {
                "check the URL and your network; a private CA goes in --ca-file or DATUM_CA_FILE".into()
            }
            RegistryError::Signature { .. } => {
                "do not install from it until its publisher explains; `datum registry` commands show the key and snapshot".into()
            }
            RegistryError::BadName(_) => {
                "plugin names are a-z, 0-9 and '-', starting with a letter".into()
            }
        }
    }
}

impl Explain for StoreError {
    fn kind(&self) -> &'static str {
        match self {
            StoreError::HashMismatch { .. } => "hash-mismatch",
            StoreError::SizeMismatch { .. } => "size-mismatch",
            StoreError::Missing(_) => "store-missing",
            StoreError::Io { .. } => "store-io",
            StoreError::Corrupt { .. } => "store-corrupt",
            StoreError::BadDigest(_) => "bad-digest",
            StoreError::Tampered { .. } => "tampered",
        }
    }
    fn category(&self) -> Category {
        match self {
            StoreError::HashMismatch { .. }
            | StoreError::SizeMismatch { .. }
            | StoreError::Tampered { .. } => Category::Untrusted,
            StoreError::Missing(_) => Category::NotFound,
            StoreError::Corrupt { .. } | StoreError::BadDigest(_) => Category::Corrupt,
            StoreError::Io { .. } => Category::Failed,
        }
    }
    fn hint(&self) -> String {
        match self {
            StoreError::HashMismatch { .. } | StoreError::SizeMismatch { .. } => {
                "republish the artifact, or install from another registry".into()
            }
            StoreError::Io { .. } => "check that DATUM_HOME is writable and has space".into(),
            _ => "datum plugin install --locked".into(),
        }
    }
}

impl Explain for LockError {
    fn kind(&self) -> &'static str {
        "lock"
    }
    fn category(&self) -> Category {
        Category::Corrupt
    }
    fn hint(&self) -> String {
        "restore it from the workshop's history: git checkout -- datum.lock".into()
    }
}

impl Explain for KeeperError {
    fn kind(&self) -> &'static str {
        match self {
            KeeperError::Unreachable { .. } => "keeper-unreachable",
            KeeperError::Refused(_) => "keeper-refused",
            KeeperError::Protocol { .. } => "keeper-protocol",
            KeeperError::NotConfigured => "keeper-not-configured",
            KeeperError::Standalone { .. } => "keeper-standalone",
            KeeperError::Corrupt(_) => "keeper-registration",
            KeeperError::Io(_) => "keeper-io",
        }
    }
    fn category(&self) -> Category {
        match self {
            KeeperError::Unreachable { .. } => Category::Unavailable,
            KeeperError::Refused(_) => Category::Denied,
            KeeperError::NotConfigured => Category::NotFound,
            KeeperError::Corrupt(_) => Category::Corrupt,
            _ => Category::Failed,
        }
    }
    fn hint(&self) -> String {
        KeeperError::hint(self)
    }
}

impl Explain for LoadError {
    fn kind(&self) -> &'static str {
        "load"
    }
    fn category(&self) -> Category {
        Category::Plugin
    }
    fn hint(&self) -> String {
        "reinstall it with `datum plugin install NAME --force`, or check `datum plugin test` if you wrote it".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn context_on_the_way_up_keeps_the_kind_and_the_fix() {
        let e = anyhow::Error::new(RegistryError::NotFound {
            name: "hello".into(),
            registry: "dir:/r".into(),
        })
        .context("cannot install hello");
        let p = Problem::of(&e);
        assert_eq!(p.kind, "no-such-plugin");
        assert_eq!(p.category, Category::NotFound);
        assert_eq!(p.exit_code(), 3);
        assert_eq!(p.hint, "datum plugin search hello");
        assert!(p
            .message
            .starts_with("cannot install hello: no plugin named `hello`"));
        let json = p.to_json();
        assert_eq!(json["ok"], false);
        assert_eq!(json["error"]["category"], "not-found");
        assert_eq!(json["error"]["hint"], "datum plugin search hello");
    }

    #[test]
    fn an_untyped_error_still_has_a_hint_and_exits_1() {
        let e: anyhow::Result<()> = Err(anyhow::anyhow!("boom")).context("while testing");
        let p = Problem::of(&e.unwrap_err());
        assert_eq!((p.kind.as_str(), p.exit_code()), ("error", 1));
        assert!(!p.hint.is_empty());
        assert!(p.to_text().contains("help: "));
    }

    #[test]
    fn exit_codes_are_distinct_and_never_0() {
        let codes: std::collections::BTreeSet<u8> =
            Category::ALL.iter().map(|c| c.exit_code()).collect();
        assert_eq!(codes.len(), Category::ALL.len());
        assert!(!codes.contains(&0));
    }

    #[test]
    fn a_plugin_failure_names_plugin_version_and_call() {
        let e = anyhow::Error::new(RuntimeError::call(
            "flux-vm",
            "0.1.0",
            "flux run",
            CallFailure::Timeout(10),
        ));
        let p = Problem::of(&e);
        assert_eq!(p.kind, "timeout");
        assert_eq!(p.category, Category::Limit);
        assert_eq!(p.plugin.as_deref(), Some("flux-vm"));
        assert_eq!(p.version.as_deref(), Some("0.1.0"));
        assert_eq!(p.call.as_deref(), Some("flux run"));
        assert!(p.hint.contains("limits.timeout_ms"));
    }
}
