//! `secret.get`: a secret from the workshop's Keeper, with the purpose and destination
//! in its audit log. A refusal is an error, never a fallback.

use datum_plugin_api::{ErrorKind, PluginError};
use serde_json::Value;

use super::Caller;
use crate::keeper::KeeperError;

pub fn get(
    caller: &Caller,
    key: &str,
    purpose: &str,
    destination: &str,
    optional: bool,
) -> Result<Value, PluginError> {
    let config = match crate::keeper::load(&caller.workshop) {
        // API 1.4: a plugin that can do without the secret asks with `optional`, and
        // learns that no Keeper is configured.
        Err(KeeperError::NotConfigured) if optional => return Ok(Value::Null),
        other => other.map_err(|e| {
            PluginError::new(ErrorKind::HostService, e.to_string()).with_hint(e.hint())
        })?,
    };
    crate::keeper::request_secret(&config, key, purpose, destination)
        .map(Value::String)
        .map_err(|e| match e {
            KeeperError::Refused(reason) => PluginError::new(
                ErrorKind::PermissionDenied,
                format!("the Keeper refused `{key}` to {}: {reason}", caller.plugin),
            )
            .with_hint("the Keeper's policy decides; ask its operator for a grant"),
            other => {
                PluginError::new(ErrorKind::HostService, other.to_string()).with_hint(other.hint())
            }
        })
}

#[cfg(test)]
mod tests {
    use super::super::tests::caller;
    use super::*;

    #[test]
    fn no_keeper_is_null_only_when_asked_as_optional() {
        let (_dir, c) = caller(&["secrets:*"]);
        assert_eq!(get(&c, "db/pw", "p", "d", true).unwrap(), Value::Null);
        let e = get(&c, "db/pw", "p", "d", false).unwrap_err();
        assert_eq!(e.kind, ErrorKind::HostService);
        assert!(e.hint.is_some());
    }
}
