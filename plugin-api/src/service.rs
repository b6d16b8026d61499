//! The host services, as one typed enum: what a plugin may ask of the host, and the
//! grant each request needs, stated in one place ([`ServiceCall::needs`]).
//!
//! On the wire a call is `{"service": NAME, "args": {…}}` — the same JSON every 1.x
//! plugin has sent — and the reply is a [`crate::Response`]. Plugins normally use the
//! typed helpers on [`crate::Host`]; the host decodes with [`ServiceCall::from_wire`]
//! and dispatches with one `match`.
//!
//! ```
//! use datum_plugin_api::{PermissionKind, ServiceCall};
//!
//! let call = ServiceCall::FsRead { path: "journal/today.md".into() };
//! assert_eq!(call.name(), "fs.read");
//! assert_eq!(call.needs(), Some((PermissionKind::FsRead, Some("journal/today.md"))));
//! let wire = call.to_json();
//! assert_eq!(ServiceCall::from_wire(&wire).unwrap(), call);
//! ```
//!
//! Since API 1.6 (the services themselves date from the versions noted on each).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::envelope::{ErrorKind, PluginError};
use crate::host::LogLevel;
use crate::manifest::PermissionKind;

/// One request to the host. A new service is a new variant in a minor version of this
/// crate (the host matches on every variant, so it cannot forget to serve one); a
/// variant is never changed or removed within 1.x. Plugins build calls; only the host
/// matches on them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "service", content = "args")]
pub enum ServiceCall {
    /// A line in the host's log, tagged with the plugin's name. Always allowed.
    #[serde(rename = "log")]
    Log {
        #[serde(default)]
        level: LogLevel,
        #[serde(default)]
        message: String,
    },
    /// This plugin's key-value store: read a key (`kv`).
    #[serde(rename = "kv.get")]
    KvGet { key: String },
    /// Store a value (`null` deletes) (`kv`).
    #[serde(rename = "kv.set")]
    KvSet {
        key: String,
        #[serde(default)]
        value: Value,
    },
    /// Read a UTF-8 workshop file (`fs-read:PATH`).
    #[serde(rename = "fs.read")]
    FsRead { path: String },
    /// Replace a workshop file atomically (`fs-write:PATH`).
    #[serde(rename = "fs.write")]
    FsWrite { path: String, contents: String },
    /// Create a file only if nothing is there (`fs-write:PATH`). API 1.3.
    #[serde(rename = "fs.create")]
    FsCreate { path: String, contents: String },
    /// Append one entry to a file (`fs-write:PATH`). API 1.4.
    #[serde(rename = "fs.append")]
    FsAppend { path: String, contents: String },
    /// A folder's entries (`fs-read:PATH`). API 1.3.
    #[serde(rename = "fs.list")]
    FsList { path: String },
    /// Milliseconds since the Unix epoch. Always allowed. API 1.3.
    #[serde(rename = "clock.now")]
    ClockNow,
    /// Pause up to a minute. Always allowed. API 1.3.
    #[serde(rename = "clock.sleep")]
    ClockSleep {
        #[serde(default)]
        ms: u64,
    },
    /// Print a line to the user now. Always allowed. API 1.3.
    #[serde(rename = "emit")]
    Emit { line: String },
    /// Commit a folder, pull and push it (`git:PATH`). API 1.3.
    #[serde(rename = "git.sync")]
    GitSync {
        path: String,
        #[serde(default)]
        remote: Option<String>,
        #[serde(default = "sync_message")]
        message: String,
    },
    /// Commit a folder (`.`: the whole workshop) (`git:PATH`). API 1.4.
    #[serde(rename = "git.commit")]
    GitCommit {
        path: String,
        #[serde(default = "update_message")]
        message: String,
    },
    /// Commits touching a path, newest first (`git:PATH`). API 1.5.
    #[serde(rename = "git.log")]
    GitLog {
        path: String,
        #[serde(default = "log_limit")]
        limit: u64,
    },
    /// Move the agent's lifecycle forward. Always allowed. API 1.4.
    #[serde(rename = "agent.lifecycle")]
    AgentLifecycle { to: String },
    /// A secret from the Keeper (`secrets:PATTERN`). API 1.2; `optional` since 1.4.
    #[serde(rename = "secret.get")]
    SecretGet {
        key: String,
        #[serde(default)]
        purpose: String,
        #[serde(default)]
        destination: String,
        #[serde(default, skip_serializing_if = "is_false")]
        optional: bool,
    },
    /// Run another plugin's command (`call:PLUGIN`); `kind` picks a build. 1.0; `kind` 1.1.
    #[serde(rename = "plugin.call")]
    PluginCall {
        plugin: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<String>,
        command: String,
        #[serde(default)]
        args: Map<String, Value>,
    },
    /// The installed plugins. Always allowed. API 1.5.
    #[serde(rename = "plugin.list")]
    PluginList {},
    /// What the registry says about a plugin. Always allowed. API 1.5.
    #[serde(rename = "plugin.info")]
    PluginInfo { name: String },
    /// Registry plugins providing an ability. Always allowed. API 1.5.
    #[serde(rename = "plugin.providing")]
    PluginProviding { ability: String },
    /// Install a plugin (`install:NAME`). API 1.5.
    #[serde(rename = "plugin.install")]
    PluginInstall {
        spec: String,
        #[serde(default = "requested")]
        reason: String,
        #[serde(default)]
        sha256: Option<String>,
        #[serde(default)]
        dry_run: bool,
        #[serde(default = "yes")]
        commit: bool,
    },
    /// Remove a plugin this plugin installed (`install:NAME`). API 1.5.
    #[serde(rename = "plugin.remove")]
    PluginRemove { name: String },
    /// Run a plugin's golden examples in a scratch workshop (`call:PLUGIN`). API 1.5.
    #[serde(rename = "plugin.prove")]
    PluginProve { plugin: String },
}

fn sync_message() -> String {
    "sync".to_owned()
}
fn update_message() -> String {
    "update".to_owned()
}
fn requested() -> String {
    "requested".to_owned()
}
fn log_limit() -> u64 {
    100
}
fn yes() -> bool {
    true
}
fn is_false(b: &bool) -> bool {
    !*b
}

impl ServiceCall {
    /// Every service name this version of the API knows, for messages and docs.
    pub const NAMES: &'static [&'static str] = &[
        "log",
        "kv.get",
        "kv.set",
        "fs.read",
        "fs.write",
        "fs.create",
        "fs.append",
        "fs.list",
        "clock.now",
        "clock.sleep",
        "emit",
        "git.sync",
        "git.commit",
        "git.log",
        "agent.lifecycle",
        "secret.get",
        "plugin.call",
        "plugin.list",
        "plugin.info",
        "plugin.providing",
        "plugin.install",
        "plugin.remove",
        "plugin.prove",
    ];

    /// The service's wire name (`"fs.read"`).
    pub fn name(&self) -> &'static str {
        match self {
            ServiceCall::Log { .. } => "log",
            ServiceCall::KvGet { .. } => "kv.get",
            ServiceCall::KvSet { .. } => "kv.set",
            ServiceCall::FsRead { .. } => "fs.read",
            ServiceCall::FsWrite { .. } => "fs.write",
            ServiceCall::FsCreate { .. } => "fs.create",
            ServiceCall::FsAppend { .. } => "fs.append",
            ServiceCall::FsList { .. } => "fs.list",
            ServiceCall::ClockNow => "clock.now",
            ServiceCall::ClockSleep { .. } => "clock.sleep",
            ServiceCall::Emit { .. } => "emit",
            ServiceCall::GitSync { .. } => "git.sync",
            ServiceCall::GitCommit { .. } => "git.commit",
            ServiceCall::GitLog { .. } => "git.log",
            ServiceCall::AgentLifecycle { .. } => "agent.lifecycle",
            ServiceCall::SecretGet { .. } => "secret.get",
            ServiceCall::PluginCall { .. } => "plugin.call",
            ServiceCall::PluginList {} => "plugin.list",
            ServiceCall::PluginInfo { .. } => "plugin.info",
            ServiceCall::PluginProviding { .. } => "plugin.providing",
            ServiceCall::PluginInstall { .. } => "plugin.install",
            ServiceCall::PluginRemove { .. } => "plugin.remove",
            ServiceCall::PluginProve { .. } => "plugin.prove",
        }
    }

    /// The grant this call needs — its kind and the target the grant's scope must
    /// cover — or `None` for services every plugin may use. This is the only place the
    /// host learns which grant a service needs.
    pub fn needs(&self) -> Option<(PermissionKind, Option<&str>)> {
        use PermissionKind as P;
        match self {
            ServiceCall::Log { .. }
            | ServiceCall::ClockNow
            | ServiceCall::ClockSleep { .. }
            | ServiceCall::Emit { .. }
            | ServiceCall::AgentLifecycle { .. }
            | ServiceCall::PluginList {}
            | ServiceCall::PluginInfo { .. }
            | ServiceCall::PluginProviding { .. } => None,
            ServiceCall::KvGet { .. } | ServiceCall::KvSet { .. } => Some((P::Kv, None)),
            ServiceCall::FsRead { path } | ServiceCall::FsList { path } => {
                Some((P::FsRead, Some(path)))
            }
            ServiceCall::FsWrite { path, .. }
            | ServiceCall::FsCreate { path, .. }
            | ServiceCall::FsAppend { path, .. } => Some((P::FsWrite, Some(path))),
            ServiceCall::GitSync { path, .. }
            | ServiceCall::GitCommit { path, .. }
            | ServiceCall::GitLog { path, .. } => Some((P::Git, Some(path))),
            ServiceCall::SecretGet { key, .. } => Some((P::Secrets, Some(key))),
            ServiceCall::PluginCall { plugin, .. } | ServiceCall::PluginProve { plugin } => {
                Some((P::Call, Some(plugin)))
            }
            ServiceCall::PluginInstall { spec, .. } => {
                Some((P::Install, Some(spec.split('@').next().unwrap_or_default())))
            }
            ServiceCall::PluginRemove { name } => Some((P::Install, Some(name))),
        }
    }

    /// The wire JSON: `{"args": …, "service": NAME}` (a service without arguments
    /// sends `"args": null`, as every 1.x plugin has).
    pub fn to_json(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.entry("args").or_insert(Value::Null);
        }
        value.to_string()
    }

    /// Decode a request from a plugin. An unknown service and a known one with bad
    /// arguments are told apart, each with the fix. A missing or `null` `args` reads as
    /// no arguments, as the host has always taken it.
    pub fn from_wire(request: &str) -> Result<ServiceCall, PluginError> {
        #[derive(Deserialize)]
        struct Raw {
            service: String,
            #[serde(default)]
            args: Value,
        }
        let raw: Raw = serde_json::from_str(request).map_err(|e| {
            PluginError::new(
                ErrorKind::HostService,
                format!("unreadable service request: {e}"),
            )
            .with_hint(
                "a service request is {\"service\": NAME, \"args\": {…}}; use the Host helpers",
            )
        })?;
        if !Self::NAMES.contains(&raw.service.as_str()) {
            return Err(PluginError::new(
                ErrorKind::HostService,
                format!("unknown host service `{}`", raw.service.escape_debug()),
            )
            .with_hint("this datum does not offer it; upgrade datum or the plugin"));
        }
        let args = match raw.args {
            // The one service without arguments ignores whatever it was sent.
            _ if raw.service == "clock.now" => Value::Null,
            Value::Null => Value::Object(Map::new()),
            other => other,
        };
        let mut tagged = Map::new();
        tagged.insert("service".into(), Value::String(raw.service.clone()));
        tagged.insert("args".into(), args);
        serde_json::from_value(Value::Object(tagged)).map_err(|e| {
            PluginError::new(
                ErrorKind::HostService,
                format!("bad arguments to host service `{}`: {e}", raw.service),
            )
            .with_hint("see the datum-plugin-api docs for ServiceCall; use the Host helpers")
        })
    }
}

impl Serialize for LogLevel {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    /// Lenient on purpose: a level this host does not know is logged at `info` rather
    /// than failing the plugin's call (logging never fails a call).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let level = Option::<String>::deserialize(deserializer)?;
        Ok(match level.as_deref() {
            Some("error") => LogLevel::Error,
            Some("warn") => LogLevel::Warn,
            Some("debug") => LogLevel::Debug,
            _ => LogLevel::Info,
        })
    }
}
