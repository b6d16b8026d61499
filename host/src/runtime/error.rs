//! Typed failures of a plugin call: each names the plugin, its version, the call, and
//! what to do next.

use datum_plugin_api::{ErrorKind, PluginError};

use crate::loader::{CallFailure, LoadError};

/// Plugin failures are rare and carry everything needed to explain them, so the
/// variants are deliberately rich; returning them by value is fine on this cold path.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{plugin} {version} failed on `{command}`: {failure}; {hint}")]
    Call {
        plugin: String,
        version: String,
        command: String,
        failure: CallFailure,
        hint: String,
    },
    #[error("{plugin} {version} could not be loaded: {error}; {hint}")]
    Load {
        plugin: String,
        version: String,
        error: LoadError,
        hint: String,
    },
    #[error("{plugin} {version} failed on `{command}`: {}{}", error.message, error.hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default())]
    Plugin {
        plugin: String,
        version: String,
        command: String,
        error: PluginError,
    },
    #[error("plugin `{plugin}` is not installed in this workshop; install it with `datum plugin install {plugin}`")]
    NotInstalled { plugin: String },
    #[error("{0}")]
    Other(String),
}

impl RuntimeError {
    pub fn call(plugin: &str, version: &str, command: &str, failure: CallFailure) -> Self {
        let hint = match &failure {
            CallFailure::Timeout(_) => format!(
                "the plugin may be stuck; if the work is legitimately long, ask its author to raise limits.timeout_ms, or check `datum plugin info {plugin}`"
            ),
            CallFailure::OutOfMemory(_) => format!(
                "the input may be too large for it; its memory cap comes from limits.memory_mb (see `datum plugin info {plugin}`)"
            ),
            CallFailure::OutputTooLarge { .. } => {
                "ask for less output (narrower arguments), or report it to the plugin's author".to_owned()
            }
            CallFailure::Panic(_) | CallFailure::Trap(_) | CallFailure::BadReply(_) => format!(
                "this is a bug in the plugin; try another version (`datum plugin install {plugin}@VERSION`) or report it to its author"
            ),
        };
        RuntimeError::Call {
            plugin: plugin.to_owned(),
            version: version.to_owned(),
            command: command.to_owned(),
            failure,
            hint,
        }
    }

    pub fn load(plugin: &str, version: &str, error: LoadError) -> Self {
        let hint = format!("reinstall it with `datum plugin install {plugin} --force`, or remove it with `datum plugin remove {plugin}`");
        RuntimeError::Load {
            plugin: plugin.to_owned(),
            version: version.to_owned(),
            error,
            hint,
        }
    }

    /// A stable machine-readable kind for `--format json` and exit codes.
    pub fn kind(&self) -> &'static str {
        match self {
            RuntimeError::Call { failure, .. } => match failure {
                CallFailure::Trap(_) => "trap",
                CallFailure::Timeout(_) => "timeout",
                CallFailure::OutOfMemory(_) => "out-of-memory",
                CallFailure::Panic(_) => "panic",
                CallFailure::OutputTooLarge { .. } => "output-too-large",
                CallFailure::BadReply(_) => "bad-reply",
            },
            RuntimeError::Load { .. } => "load",
            RuntimeError::NotInstalled { .. } => "not-installed",
            RuntimeError::Plugin { error, .. } => match error.kind {
                ErrorKind::InvalidArgs => "invalid-args",
                ErrorKind::UnknownCommand => "unknown-command",
                ErrorKind::PermissionDenied => "permission-denied",
                ErrorKind::HostService => "host-service",
                ErrorKind::Panic => "panic",
                ErrorKind::Failed => "failed",
                ErrorKind::Internal => "internal",
            },
            RuntimeError::Other(_) => "error",
        }
    }

    pub fn plugin(&self) -> Option<(&str, &str)> {
        match self {
            RuntimeError::Call {
                plugin, version, ..
            }
            | RuntimeError::Load {
                plugin, version, ..
            }
            | RuntimeError::Plugin {
                plugin, version, ..
            } => Some((plugin, version)),
            RuntimeError::NotInstalled { .. } | RuntimeError::Other(_) => None,
        }
    }

    /// The plugin command that failed, where one did.
    pub fn command(&self) -> Option<&str> {
        match self {
            RuntimeError::Call { command, .. } | RuntimeError::Plugin { command, .. } => {
                Some(command)
            }
            _ => None,
        }
    }

    /// The fix: the plugin's own hint when it gave one, else the host's.
    pub fn hint(&self) -> String {
        match self {
            RuntimeError::Call { hint, .. } | RuntimeError::Load { hint, .. } => hint.clone(),
            RuntimeError::Plugin { plugin, error, .. } => error.hint.clone().unwrap_or_else(|| {
                format!(
                    "`datum {plugin} --help` or `datum plugin info {plugin}` shows how it is used"
                )
            }),
            RuntimeError::NotInstalled { plugin } => format!("datum plugin install {plugin}"),
            RuntimeError::Other(_) => {
                "run it again with -v for details, or check `datum status`".to_owned()
            }
        }
    }
}
