//! Host services as seen from inside a plugin.
//!
//! Every service is one JSON request `{service, args}` answered by `{ok, data}` or
//! `{ok: false, error}`; the host checks each against the plugin's grants and logs it.
//! A denied service comes back as [`ErrorKind::PermissionDenied`] whose hint is the exact
//! `datum plugin grant …` command that would allow it.

use serde_json::{json, Value};

use crate::envelope::{ErrorKind, PluginError, Response};
use crate::service::ServiceCall;

/// Severity for [`Host::log`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    #[default]
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

type Transport<'a> = dyn Fn(&str) -> String + 'a;

/// A handle to the host's services for the duration of one call.
pub struct Host<'a> {
    transport: &'a Transport<'a>,
}

impl std::fmt::Debug for Host<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Host")
    }
}

impl<'a> Host<'a> {
    /// Wrap a transport that takes a JSON service request and returns the JSON reply.
    /// The export macro does this; tests can pass a closure that fakes the host.
    pub fn new(transport: &'a Transport<'a>) -> Self {
        Host { transport }
    }

    /// Call one host service by name. Prefer [`Host::call`] or the typed helpers below.
    pub fn call_service(&self, service: &str, args: Value) -> Result<Value, PluginError> {
        let request = json!({ "service": service, "args": args }).to_string();
        self.send(service, &request)
    }

    /// Make one typed service call and return the reply's `data`. Since API 1.6.
    pub fn call(&self, call: &ServiceCall) -> Result<Value, PluginError> {
        self.send(call.name(), &call.to_json())
    }

    fn send(&self, service: &str, request: &str) -> Result<Value, PluginError> {
        let reply = (self.transport)(request);
        let reply: Response = serde_json::from_str(&reply).map_err(|e| {
            PluginError::new(
                ErrorKind::HostService,
                format!("host sent an unreadable reply to `{service}`: {e}"),
            )
        })?;
        reply.into_result().map(|out| out.data)
    }

    /// Write a line to the host's log (always allowed; tagged with the plugin's name).
    pub fn log(&self, level: LogLevel, message: &str) {
        // Logging must never fail a call, so a transport error is dropped on purpose.
        let _ = self.call(&ServiceCall::Log {
            level,
            message: message.to_owned(),
        });
    }

    /// Read a value from this plugin's key-value store in the workshop (`kv` grant).
    pub fn kv_get(&self, key: &str) -> Result<Option<Value>, PluginError> {
        let v = self.call(&ServiceCall::KvGet { key: key.into() })?;
        Ok((!v.is_null()).then_some(v))
    }

    /// Store a value in this plugin's key-value store (`kv` grant). `null` deletes.
    pub fn kv_set(&self, key: &str, value: Value) -> Result<(), PluginError> {
        self.call(&ServiceCall::KvSet {
            key: key.into(),
            value,
        })
        .map(drop)
    }

    /// Read a UTF-8 file at a workshop-relative path (`fs-read:PREFIX` grant).
    pub fn read_file(&self, path: &str) -> Result<String, PluginError> {
        let v = self.call(&ServiceCall::FsRead { path: path.into() })?;
        v.as_str().map(str::to_owned).ok_or_else(|| {
            PluginError::new(ErrorKind::HostService, "host returned a non-text file body")
        })
    }

    /// Atomically write a UTF-8 file at a workshop-relative path (`fs-write:PREFIX` grant).
    pub fn write_file(&self, path: &str, contents: &str) -> Result<(), PluginError> {
        self.call(&ServiceCall::FsWrite {
            path: path.into(),
            contents: contents.into(),
        })
        .map(drop)
    }

    /// Create a new UTF-8 file at a workshop-relative path, atomically and only if
    /// nothing is there yet (`fs-write:PREFIX` grant). Returns `false` when the name is
    /// taken, so callers can pick another instead of overwriting. Since API 1.3.
    pub fn create_file(&self, path: &str, contents: &str) -> Result<bool, PluginError> {
        let v = self.call(&ServiceCall::FsCreate {
            path: path.into(),
            contents: contents.into(),
        })?;
        Ok(v.as_bool().unwrap_or(false))
    }

    /// Append text to a workshop file as one write, creating it if need be
    /// (`fs-write:PREFIX` grant); a newline is added when missing. Appends from several
    /// processes never interleave, and nothing already there is rewritten. At most 64 KiB
    /// at a time. Since API 1.4.
    pub fn append_file(&self, path: &str, contents: &str) -> Result<(), PluginError> {
        self.call(&ServiceCall::FsAppend {
            path: path.into(),
            contents: contents.into(),
        })
        .map(drop)
    }

    /// The entries of a workshop folder (`fs-read:PREFIX` grant), sorted; folders end
    /// in `/`. A missing folder is an empty list. Since API 1.3.
    pub fn list_dir(&self, path: &str) -> Result<Vec<String>, PluginError> {
        let v = self.call(&ServiceCall::FsList { path: path.into() })?;
        serde_json::from_value(v).map_err(|e| {
            PluginError::new(
                ErrorKind::HostService,
                format!("host sent a bad listing: {e}"),
            )
        })
    }

    /// Milliseconds since the Unix epoch (WASM plugins have no clock of their own).
    /// Since API 1.3.
    pub fn now_ms(&self) -> Result<u64, PluginError> {
        let v = self.call(&ServiceCall::ClockNow)?;
        v.as_u64().ok_or_else(|| {
            PluginError::new(ErrorKind::HostService, "host sent a non-numeric clock")
        })
    }

    /// Pause this call for up to `ms` milliseconds (the host caps one pause at a
    /// minute). Counts against the command's time limit. Since API 1.3.
    pub fn sleep_ms(&self, ms: u64) -> Result<(), PluginError> {
        self.call(&ServiceCall::ClockSleep { ms }).map(drop)
    }

    /// Print one line to the user now, before the call returns (for `watch`-style
    /// commands). Since API 1.3.
    pub fn emit(&self, line: &str) -> Result<(), PluginError> {
        self.call(&ServiceCall::Emit { line: line.into() })
            .map(drop)
    }

    /// Commit a workshop folder's changes, then pull from and push to a git remote
    /// (`git:PATH` grant). `remote` is a remote name or URL; `None` uses `origin`.
    /// Returns the host's report (`committed`, `fetched`, `merged`, `pushed`). Since API 1.3.
    pub fn git_sync(
        &self,
        path: &str,
        remote: Option<&str>,
        message: &str,
    ) -> Result<Value, PluginError> {
        self.call(&ServiceCall::GitSync {
            path: path.into(),
            remote: remote.map(str::to_owned),
            message: message.into(),
        })
    }

    /// Ask the Keeper for a secret (`secrets:PATTERN` grant). The purpose and
    /// destination are recorded in the Keeper's audit log; a refusal is an error, never
    /// a fallback. Since API 1.2.
    pub fn secret(
        &self,
        key: &str,
        purpose: &str,
        destination: &str,
    ) -> Result<String, PluginError> {
        let v = self.call(&ServiceCall::SecretGet {
            key: key.into(),
            purpose: purpose.into(),
            destination: destination.into(),
            optional: false,
        })?;
        v.as_str().map(str::to_owned).ok_or_else(|| {
            PluginError::new(
                ErrorKind::HostService,
                "the Keeper returned a non-text secret",
            )
        })
    }

    /// Like [`Host::secret`], but a workshop registered with no Keeper at all answers
    /// `None` instead of an error, for plugins that can work without the secret and
    /// say so (the fleet plugin runs unauthenticated). A Keeper that is configured but
    /// refuses, or cannot be reached, is still an error. Since API 1.4.
    pub fn secret_if_kept(
        &self,
        key: &str,
        purpose: &str,
        destination: &str,
    ) -> Result<Option<String>, PluginError> {
        let v = self.call(&ServiceCall::SecretGet {
            key: key.into(),
            purpose: purpose.into(),
            destination: destination.into(),
            optional: true,
        })?;
        match v {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            _ => Err(PluginError::new(
                ErrorKind::HostService,
                "the Keeper returned a non-text secret",
            )),
        }
    }

    /// Commit the changes under one workshop folder to the workshop's history, with no
    /// remote involved (`git:PATH` grant). Returns whether a commit was made (`false`
    /// when there was nothing to commit). Since API 1.4.
    pub fn git_commit(&self, path: &str, message: &str) -> Result<bool, PluginError> {
        let v = self.call(&ServiceCall::GitCommit {
            path: path.into(),
            message: message.into(),
        })?;
        Ok(v["committed"].as_bool().unwrap_or(false))
    }

    /// Move the agent's lifecycle forward (`"onboarded"`, `"active"`; never back) and
    /// return the state after. Always allowed; the host records it in agent.toml and
    /// commits it. Since API 1.4.
    pub fn advance_lifecycle(&self, to: &str) -> Result<String, PluginError> {
        let v = self.call(&ServiceCall::AgentLifecycle { to: to.into() })?;
        v.as_str().map(str::to_owned).ok_or_else(|| {
            PluginError::new(ErrorKind::HostService, "host sent a non-text lifecycle")
        })
    }

    /// The workshop's installed plugins as the host sees them: for each, `name`,
    /// `version`, `kind`, `provides`, `commands` (paths), `grants`, `requested_by`
    /// (the plugin whose install service added it, if one did). Always allowed: it is
    /// what `datum plugin list` shows. Since API 1.5.
    pub fn plugins(&self) -> Result<Vec<Value>, PluginError> {
        let v = self.call(&ServiceCall::PluginList {})?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// What the workshop's registry says about a plugin, installed or not: `versions`
    /// (newest first, each with `provides`, `description`, `permissions`, `commands`,
    /// `requires`), the installed `current` version and the newest `compatible` one, and
    /// its `readme` when the registry carries it. Always allowed (`datum plugin info`
    /// shows the same). Since API 1.5.
    pub fn plugin_info(&self, name: &str) -> Result<Value, PluginError> {
        self.call(&ServiceCall::PluginInfo { name: name.into() })
    }

    /// Registry plugins whose manifest `provides` the ability, newest version each.
    /// Always allowed. Since API 1.5.
    pub fn plugins_providing(&self, ability: &str) -> Result<Vec<Value>, PluginError> {
        let v = self.call(&ServiceCall::PluginProviding {
            ability: ability.into(),
        })?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// Install `spec` (`NAME` or `NAME@REQ`, e.g. `stress@=1.0.0`) into the workshop
    /// (`install:NAME` grant), with the trust and consent rules of `datum plugin
    /// install`: a native build from an untrusted registry is refused, never consented
    /// to on the user's behalf. `why` is recorded with the install (lock, journal,
    /// commit). Returns `name`, `version`, `kind`, `changed`, `previous` (the version it
    /// replaced) and `commit`. Since API 1.5.
    pub fn install_plugin(
        &self,
        spec: &str,
        why: &str,
        options: &InstallRequest<'_>,
    ) -> Result<Value, PluginError> {
        self.call(&ServiceCall::PluginInstall {
            spec: spec.into(),
            reason: why.into(),
            sha256: options.sha256.map(str::to_owned),
            dry_run: options.dry_run,
            commit: !options.no_commit,
        })
    }

    /// Remove a plugin this plugin installed (`install:NAME` grant; a plugin the user
    /// installed is the user's to remove). Since API 1.5.
    pub fn remove_plugin(&self, name: &str) -> Result<Value, PluginError> {
        self.call(&ServiceCall::PluginRemove { name: name.into() })
    }

    /// Run an installed plugin's golden manifest examples in a fresh scratch workshop
    /// (its real grants, the real loaders) and report each: `examples` (`run`,
    /// `expected`, `got`, `passed`), `passed`, `total`, `skipped` (illustrations).
    /// Needs `call:NAME`, since it runs that plugin. Since API 1.5.
    pub fn prove_plugin(&self, name: &str) -> Result<Value, PluginError> {
        self.call(&ServiceCall::PluginProve {
            plugin: name.into(),
        })
    }

    /// The workshop's history touching `path` (`"."` for all of it), newest first:
    /// `total` commits and the first `limit` of them (`id`, `when` in RFC 3339,
    /// `subject`). Needs `git:PATH`, like committing it. Since API 1.5.
    pub fn git_log(&self, path: &str, limit: usize) -> Result<Value, PluginError> {
        self.call(&ServiceCall::GitLog {
            path: path.into(),
            limit: limit as u64,
        })
    }

    /// Run a command in another build (`"native"` or `"wasm"`) of an installed plugin,
    /// e.g. a plugin comparing its own builds (`call:PLUGIN` grant). Since API 1.1.
    pub fn call_plugin_kind(
        &self,
        plugin: &str,
        kind: &str,
        command: &str,
        args: serde_json::Map<String, Value>,
    ) -> Result<Value, PluginError> {
        self.call(&ServiceCall::PluginCall {
            plugin: plugin.into(),
            kind: Some(kind.into()),
            command: command.into(),
            args,
        })
    }

    /// Run another installed plugin's command (`call:PLUGIN` grant) and return its `data`.
    pub fn call_plugin(
        &self,
        plugin: &str,
        command: &str,
        args: serde_json::Map<String, Value>,
    ) -> Result<Value, PluginError> {
        self.call(&ServiceCall::PluginCall {
            plugin: plugin.into(),
            kind: None,
            command: command.into(),
            args,
        })
    }
}

/// How [`Host::install_plugin`] installs. Since API 1.5.
#[derive(Debug, Clone, Default)]
pub struct InstallRequest<'a> {
    /// The exact artifact expected (another agent's lock): a different one is refused.
    pub sha256: Option<&'a str>,
    /// Only answer what would be installed.
    pub dry_run: bool,
    /// Leave the change uncommitted (the caller commits several changes as one).
    pub no_commit: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_helpers_speak_the_service_protocol() {
        let transport = |req: &str| {
            let req: Value = serde_json::from_str(req).unwrap();
            assert_eq!(req["service"], "kv.get");
            assert_eq!(req["args"]["key"], "runs");
            r#"{"ok":true,"data":41}"#.to_owned()
        };
        let host = Host::new(&transport);
        assert_eq!(host.kv_get("runs").unwrap(), Some(json!(41)));
    }

    #[test]
    fn denial_comes_back_as_a_typed_error() {
        let transport = |_: &str| {
            r#"{"ok":false,"error":{"kind":"permission-denied","message":"no kv grant","hint":"datum plugin grant x kv"}}"#
                .to_owned()
        };
        let err = Host::new(&transport).kv_set("k", json!(1)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::PermissionDenied);
        assert_eq!(err.hint.as_deref(), Some("datum plugin grant x kv"));
    }
}
