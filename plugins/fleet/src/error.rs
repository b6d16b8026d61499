//! The fleet plugin's errors: each says what failed and what to do about it, and maps
//! onto the plugin API's error kinds (and so onto datum's exit codes).

use datum_plugin_api::{ErrorKind, PluginError};

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("{what} is unreachable: {reason}")]
    Unreachable {
        what: String,
        reason: String,
        hint: String,
    },
    #[error("{what} refused the request: {reason}")]
    Refused {
        what: String,
        reason: String,
        hint: String,
    },
    #[error("{what} answered something datum cannot read: {reason}")]
    Protocol { what: String, reason: String },
    #[error("{0}")]
    Invalid(String, String),
    #[error("{0}")]
    Failed(String, String),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("{0}")]
    Host(#[from] PluginError),
}

impl FleetError {
    pub fn invalid(message: impl Into<String>, hint: impl Into<String>) -> Self {
        FleetError::Invalid(message.into(), hint.into())
    }
    pub fn failed(message: impl Into<String>, hint: impl Into<String>) -> Self {
        FleetError::Failed(message.into(), hint.into())
    }
}

impl From<FleetError> for PluginError {
    fn from(e: FleetError) -> PluginError {
        let message = e.to_string();
        match e {
            FleetError::Host(inner) => inner,
            FleetError::Invalid(_, hint) => {
                PluginError::new(ErrorKind::InvalidArgs, message).with_hint(hint)
            }
            FleetError::Unreachable { hint, .. }
            | FleetError::Refused { hint, .. }
            | FleetError::Failed(_, hint) => {
                PluginError::new(ErrorKind::Failed, message).with_hint(hint)
            }
            FleetError::Protocol { .. } => PluginError::new(ErrorKind::Failed, message)
                .with_hint("check that --api-url points at a GitHub-compatible API"),
            FleetError::Git(_) => PluginError::new(ErrorKind::Failed, message)
                .with_hint("check the repository's path or URL, and that it is a git repository"),
        }
    }
}
