//! Host services offered to plugins, each checked against the caller's grants and logged.

use std::path::PathBuf;
use std::sync::Weak;

use datum_plugin_api::{ErrorKind, Output, PermissionKind, PluginError, Request, Response};
use serde_json::{Map, Value};

use super::Runtime;
use crate::fsutil::{atomic_create, atomic_write, confined_relative};

/// Who is calling, and what it may do.
pub struct Caller {
    pub plugin: String,
    pub version: String,
    pub grants: Vec<String>,
    pub workshop: PathBuf,
    pub kv_path: PathBuf,
    pub runtime: Weak<Runtime>,
    /// How deep in plugin-to-plugin calls this caller is.
    pub depth: usize,
}

/// Plugin-to-plugin calls deeper than this are refused (a cycle would never end).
pub const MAX_CALL_DEPTH: usize = 8;

impl Caller {
    /// Handle one JSON service request and produce the JSON reply.
    pub fn handle(&self, request: &str) -> String {
        let result = serde_json::from_str::<Value>(request)
            .map_err(|e| PluginError::new(ErrorKind::HostService, format!("unreadable service request: {e}")))
            .and_then(|req| {
                let service = req["service"].as_str().unwrap_or_default().to_owned();
                let args = req.get("args").cloned().unwrap_or(Value::Null);
                let outcome = self.dispatch(&service, &args);
                if service != "log" {
                    tracing::debug!(plugin = %self.plugin, %service, ok = outcome.is_ok(), "host service");
                }
                outcome
            });
        Response::from(result.map(Output::new)).to_json()
    }

    fn dispatch(&self, service: &str, args: &Value) -> Result<Value, PluginError> {
        match service {
            "log" => {
                let message = args["message"].as_str().unwrap_or_default();
                let plugin = &self.plugin;
                match args["level"].as_str().unwrap_or("info") {
                    "error" => tracing::error!(%plugin, "{message}"),
                    "warn" => tracing::warn!(%plugin, "{message}"),
                    "debug" => tracing::debug!(%plugin, "{message}"),
                    _ => tracing::info!(%plugin, "{message}"),
                }
                Ok(Value::Null)
            }
            "kv.get" => {
                self.require(PermissionKind::Kv, None)?;
                let key = str_arg(args, "key")?;
                Ok(self.kv_load()?.remove(key).unwrap_or(Value::Null))
            }
            "kv.set" => {
                self.require(PermissionKind::Kv, None)?;
                let key = str_arg(args, "key")?;
                let mut map = self.kv_load()?;
                match args.get("value").cloned().unwrap_or(Value::Null) {
                    Value::Null => map.remove(key),
                    v => map.insert(key.to_owned(), v),
                };
                let text = serde_json::to_vec_pretty(&map).map_err(host_err)?;
                atomic_write(&self.kv_path, &text).map_err(host_err)?;
                Ok(Value::Null)
            }
            "fs.read" => {
                let rel = self.path_arg(args)?;
                self.require(PermissionKind::FsRead, Some(&rel))?;
                let path = self.workshop.join(&rel);
                std::fs::read_to_string(&path)
                    .map(Value::String)
                    .map_err(|e| host_err(format!("cannot read {rel}: {e}")))
            }
            "fs.write" => {
                let rel = self.path_arg(args)?;
                self.require(PermissionKind::FsWrite, Some(&rel))?;
                let contents = str_arg(args, "contents")?;
                atomic_write(&self.workshop.join(&rel), contents.as_bytes())
                    .map_err(|e| host_err(format!("cannot write {rel}: {e}")))?;
                Ok(Value::Null)
            }
            "fs.create" => {
                let rel = self.path_arg(args)?;
                self.require(PermissionKind::FsWrite, Some(&rel))?;
                let contents = str_arg(args, "contents")?;
                atomic_create(&self.workshop.join(&rel), contents.as_bytes())
                    .map(Value::Bool)
                    .map_err(|e| host_err(format!("cannot create {rel}: {e}")))
            }
            "fs.list" => {
                let rel = self.path_arg(args)?;
                self.require(PermissionKind::FsRead, Some(&rel))?;
                list_dir(&self.workshop.join(&rel))
                    .map_err(|e| host_err(format!("cannot list {rel}: {e}")))
            }
            "clock.now" => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(host_err)?;
                Ok(Value::from(now.as_millis() as u64))
            }
            "clock.sleep" => {
                let ms = args["ms"].as_u64().unwrap_or(0).min(MAX_SLEEP_MS);
                std::thread::sleep(std::time::Duration::from_millis(ms));
                Ok(Value::Null)
            }
            "emit" => {
                use std::io::Write;
                let line = str_arg(args, "line")?;
                let mut out = std::io::stdout().lock();
                // A closed stdout (`| head`) fails the call, which ends a watch loop
                // instead of leaving it running with nowhere to print.
                writeln!(out, "{line}")
                    .and_then(|_| out.flush())
                    .map_err(|e| host_err(format!("cannot print: {e}")))?;
                Ok(Value::Null)
            }
            "git.sync" => {
                let rel = self.path_arg(args)?;
                self.require(PermissionKind::Git, Some(&rel))?;
                let remote = args["remote"].as_str();
                let message = args["message"].as_str().unwrap_or("sync");
                crate::workshop::sync::sync_folder(&self.workshop, &rel, remote, message)
                    .map(|report| serde_json::to_value(report).unwrap_or(Value::Null))
                    .map_err(|e| {
                        PluginError::new(ErrorKind::HostService, format!("{e:#}"))
                            .with_hint("check the remote with `git -C WORKSHOP remote -v`, or pass --remote PATH_OR_URL")
                    })
            }
            "plugin.call" => {
                let target = str_arg(args, "plugin")?;
                self.require(PermissionKind::Call, Some(target))?;
                if self.depth >= MAX_CALL_DEPTH {
                    return Err(PluginError::new(
                        ErrorKind::HostService,
                        format!(
                            "plugin calls nested deeper than {MAX_CALL_DEPTH}; is there a cycle?"
                        ),
                    ));
                }
                let runtime = self
                    .runtime
                    .upgrade()
                    .ok_or_else(|| host_err("the runtime is shutting down"))?;
                let mut request = Request::new(str_arg(args, "command")?);
                if let Some(Value::Object(a)) = args.get("args") {
                    request.args = a.clone();
                }
                request.format = datum_plugin_api::Format::Json;
                let kind = match args.get("kind").and_then(Value::as_str) {
                    None => None,
                    Some("native") => Some(crate::registry::Kind::Native),
                    Some("wasm") => Some(crate::registry::Kind::Wasm),
                    Some(other) => {
                        return Err(host_err(format!(
                            "unknown plugin kind `{other}`; use native or wasm"
                        )))
                    }
                };
                runtime
                    .invoke_at_depth(target, kind, request, self.depth + 1)
                    .map(|out| out.data)
                    .map_err(|e| PluginError::new(ErrorKind::HostService, e.to_string()))
            }
            "secret.get" => {
                let key = str_arg(args, "key")?;
                self.require(PermissionKind::Secrets, Some(key))?;
                let purpose = args["purpose"].as_str().unwrap_or_default();
                let destination = args["destination"].as_str().unwrap_or_default();
                let config = crate::keeper::load(&self.workshop)
                    .map_err(|e| PluginError::new(ErrorKind::HostService, e.to_string()))?;
                crate::keeper::request_secret(&config, key, purpose, destination)
                    .map(Value::String)
                    .map_err(|e| match e {
                        crate::keeper::KeeperError::Refused(reason) => PluginError::new(
                            ErrorKind::PermissionDenied,
                            format!("the Keeper refused `{key}` to {}: {reason}", self.plugin),
                        )
                        .with_hint("the Keeper's policy decides; ask its operator for a grant"),
                        other => PluginError::new(ErrorKind::HostService, other.to_string()),
                    })
            }
            other => Err(PluginError::new(
                ErrorKind::HostService,
                format!("unknown host service `{other}`"),
            )
            .with_hint("this datum does not offer it; upgrade datum or the plugin")),
        }
    }

    /// Check a grant. `kv` needs `kv`; `fs-*` need a grant whose scope is a prefix of
    /// the path; `call` needs `call:TARGET` (or `call:*`).
    fn require(&self, kind: PermissionKind, target: Option<&str>) -> Result<(), PluginError> {
        let allowed = self.grants.iter().any(|g| grant_allows(g, kind, target));
        if allowed {
            return Ok(());
        }
        let wanted = match target {
            Some(t) => format!("{kind}:{t}"),
            None => kind.to_string(),
        };
        tracing::warn!(plugin = %self.plugin, grant = %wanted, "host service denied");
        Err(PluginError::new(
            ErrorKind::PermissionDenied,
            format!("{} {} is not granted `{wanted}`", self.plugin, self.version),
        )
        .with_hint(format!("datum plugin grant {} {wanted}", self.plugin)))
    }

    fn path_arg(&self, args: &Value) -> Result<String, PluginError> {
        let raw = str_arg(args, "path")?;
        let rel = confined_relative(raw).ok_or_else(|| {
            PluginError::new(
                ErrorKind::PermissionDenied,
                format!("path `{raw}` leaves the workshop; use a relative path without `..`"),
            )
        })?;
        Ok(rel.to_string_lossy().into_owned())
    }

    fn kv_load(&self) -> Result<Map<String, Value>, PluginError> {
        match std::fs::read(&self.kv_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| host_err(format!("{} is corrupt: {e}", self.kv_path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
            Err(e) => Err(host_err(e)),
        }
    }
}

/// Does grant string `grant` allow `kind` on `target`?
pub fn grant_allows(grant: &str, kind: PermissionKind, target: Option<&str>) -> bool {
    let (g_kind, g_scope) = match grant.split_once(':') {
        Some((k, s)) => (k, Some(s)),
        None => (grant, None),
    };
    if g_kind != kind.to_string() {
        return false;
    }
    match (kind, g_scope, target) {
        (PermissionKind::Kv, _, _) => true,
        (PermissionKind::Secrets, Some(scope), Some(key)) => match scope.strip_suffix('*') {
            Some(prefix) => key.starts_with(prefix),
            None => scope == key,
        },
        (PermissionKind::Call, Some(scope), Some(t)) => scope == "*" || scope == t,
        (
            PermissionKind::FsRead | PermissionKind::FsWrite | PermissionKind::Git,
            Some(scope),
            Some(path),
        ) => {
            let scope = scope.trim_end_matches('/');
            scope.is_empty()
                || scope == "."
                || path == scope
                || path.starts_with(&format!("{scope}/"))
        }
        _ => false,
    }
}

/// One pause may not hold a call longer than this; watchers loop instead.
const MAX_SLEEP_MS: u64 = 60_000;

/// A folder's entries, sorted, folders marked with a trailing `/`. Missing is empty.
fn list_dir(dir: &std::path::Path) -> std::io::Result<Value> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Value::Array(vec![])),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue; // not UTF-8: no plugin could name it back anyway
        };
        if entry.file_type()?.is_dir() {
            names.push(format!("{name}/"));
        } else {
            names.push(name);
        }
    }
    names.sort();
    Ok(names.into_iter().map(Value::String).collect())
}

fn str_arg<'a>(args: &'a Value, name: &str) -> Result<&'a str, PluginError> {
    args[name].as_str().ok_or_else(|| {
        PluginError::new(
            ErrorKind::HostService,
            format!("service argument `{name}` is missing"),
        )
    })
}

fn host_err(e: impl std::fmt::Display) -> PluginError {
    PluginError::new(ErrorKind::HostService, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_match_by_kind_and_scope() {
        assert!(grant_allows("kv", PermissionKind::Kv, None));
        assert!(grant_allows(
            "fs-read:journal",
            PermissionKind::FsRead,
            Some("journal/a.md")
        ));
        assert!(grant_allows(
            "fs-read:journal/",
            PermissionKind::FsRead,
            Some("journal/a.md")
        ));
        assert!(!grant_allows(
            "fs-read:journal",
            PermissionKind::FsRead,
            Some("journalx/a.md")
        ));
        assert!(!grant_allows(
            "fs-read:journal",
            PermissionKind::FsWrite,
            Some("journal/a.md")
        ));
        assert!(grant_allows(
            "call:flux-vm",
            PermissionKind::Call,
            Some("flux-vm")
        ));
        assert!(!grant_allows(
            "call:flux-vm",
            PermissionKind::Call,
            Some("keeper")
        ));
        assert!(grant_allows("call:*", PermissionKind::Call, Some("keeper")));
    }
}
