//! Host services offered to plugins, each checked against the caller's grants and logged.

use std::path::{Path, PathBuf};
use std::sync::Weak;

use datum_plugin_api::{ErrorKind, Output, PermissionKind, PluginError, Response};
use serde_json::{json, Map, Value};

use super::Runtime;
use crate::confined::{EntryKind, Folder, MAX_FILE};
use crate::fsutil::confined_relative;

/// Who is calling, and what it may do.
pub struct Caller {
    pub plugin: String,
    pub version: String,
    pub grants: Vec<String>,
    pub workshop: PathBuf,
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
                if text.len() as u64 > MAX_KV_BYTES {
                    return Err(host_err(format!(
                        "{}'s key-value store would grow past {MAX_KV_BYTES} bytes; store less, or remove keys",
                        self.plugin
                    )));
                }
                self.workshop_folder()?
                    .write(&self.kv_file(), &text)
                    .map_err(|e| host_err(format!("cannot write the key-value store: {e}")))?;
                Ok(Value::Null)
            }
            "fs.read" => {
                let (folder, rel, shown) = self.granted(PermissionKind::FsRead, args, false)?;
                let bytes = folder
                    .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
                    .and_then(|f| f.read(&rel, MAX_FILE))
                    .map_err(|e| host_err(format!("cannot read {shown}: {e}")))?;
                String::from_utf8(bytes)
                    .map(Value::String)
                    .map_err(|_| host_err(format!("{shown} is not UTF-8 text")))
            }
            "fs.write" => {
                let (folder, rel, shown) = self.granted(PermissionKind::FsWrite, args, true)?;
                let contents = str_arg(args, "contents")?;
                folder
                    .ok_or_else(|| host_err(format!("cannot write {shown}: no folder")))?
                    .write(&rel, contents.as_bytes())
                    .map_err(|e| host_err(format!("cannot write {shown}: {e}")))?;
                Ok(Value::Null)
            }
            "fs.create" => {
                let (folder, rel, shown) = self.granted(PermissionKind::FsWrite, args, true)?;
                let contents = str_arg(args, "contents")?;
                folder
                    .ok_or_else(|| host_err(format!("cannot create {shown}: no folder")))?
                    .create(&rel, contents.as_bytes())
                    .map(Value::Bool)
                    .map_err(|e| host_err(format!("cannot create {shown}: {e}")))
            }
            "fs.append" => {
                // API 1.4: a log that is only ever added to (JOURNAL.md, TRAIL.md).
                let (folder, rel, shown) = self.granted(PermissionKind::FsWrite, args, true)?;
                let contents = str_arg(args, "contents")?;
                if contents.len() > MAX_APPEND {
                    return Err(host_err(format!(
                        "an append to {shown} is {} bytes, over the {MAX_APPEND}-byte limit",
                        contents.len()
                    )));
                }
                let folder = folder
                    .ok_or_else(|| host_err(format!("cannot append to {shown}: no folder")))?;
                // Under the workshop's write lock: a commit never stages a half-written
                // entry.
                crate::workshop::with_write_lock(&self.workshop, || {
                    folder
                        .append_line(&rel, contents)
                        .map_err(anyhow::Error::from)
                })
                .map(|()| Value::Null)
                .map_err(|e| host_err(format!("cannot append to {shown}: {e:#}")))
            }
            "fs.list" => {
                let (folder, rel, shown) = self.granted(PermissionKind::FsRead, args, false)?;
                let Some(folder) = folder else {
                    return Ok(Value::Array(Vec::new()));
                };
                let entries = match folder.list(&rel) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                    Err(e) => return Err(host_err(format!("cannot list {shown}: {e}"))),
                };
                Ok(entries
                    .into_iter()
                    .filter_map(|e| match e.kind {
                        EntryKind::Dir => Some(format!("{}/", e.name)),
                        EntryKind::File => Some(e.name),
                        // Links and special files are not offered: nothing may follow them.
                        EntryKind::Other => None,
                    })
                    .map(Value::String)
                    .collect())
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
                // Git may only write beneath the granted folder; sync_folder opens it as a
                // capability and refuses every remote name that could leave it.
                let remote = args["remote"].as_str();
                let message = args["message"].as_str().unwrap_or("sync");
                crate::workshop::sync::sync_folder(&self.workshop, &rel, remote, message)
                    .map(|report| serde_json::to_value(report).unwrap_or(Value::Null))
                    .map_err(|e| {
                        PluginError::new(ErrorKind::HostService, format!("{e:#}"))
                            .with_hint("check the remote with `git -C WORKSHOP remote -v`, or pass --remote PATH_OR_URL")
                    })
            }
            "agent.lifecycle" => {
                // API 1.4: always allowed (like the clock), forward only, logged.
                let to = str_arg(args, "to")?;
                let to = crate::workshop::Lifecycle::parse(to).ok_or_else(|| {
                    host_err(format!("`{to}` is not a lifecycle state"))
                        .with_hint("uninitialized, onboarded or active")
                })?;
                let ws = crate::workshop::Workshop::open(&self.workshop)
                    .map_err(|e| host_err(format!("{e:#}")))?;
                ws.advance_lifecycle(to)
                    .map(|now| Value::from(now.as_str()))
                    .map_err(|e| host_err(format!("{e:#}")))
            }
            "git.commit" => {
                let rel = self.path_or_root(args)?;
                self.require(PermissionKind::Git, Some(&rel))?;
                let message = args["message"].as_str().unwrap_or("update");
                // API 1.5: "." commits the whole workshop (needs `git:.`).
                let commit = if rel == "." {
                    crate::workshop::Workshop::open(&self.workshop).and_then(|w| w.commit(message))
                } else {
                    crate::workshop::commit_path(&self.workshop, &rel, message)
                };
                commit
                    .map(|id| json!({ "committed": id.is_some(), "commit": id }))
                    .map_err(|e| {
                        PluginError::new(ErrorKind::HostService, format!("{e:#}")).with_hint(
                            "check that the workshop is a git repository (`datum status`)",
                        )
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
                // The callee runs for the same agent in the same workshop: the host fills
                // in what it owns, exactly as for a command typed by the user.
                let mut request = runtime.request(str_arg(args, "command")?);
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
            // API 1.5: plugins that grow the agent (learn, improve).
            "plugin.list" => Ok(super::plugin_services::list(&*self.runtime()?)),
            "plugin.info" => {
                super::plugin_services::info(&*self.runtime()?, str_arg(args, "name")?)
            }
            "plugin.providing" => {
                super::plugin_services::providing(&*self.runtime()?, str_arg(args, "ability")?)
            }
            "plugin.install" => {
                let spec = str_arg(args, "spec")?;
                let name = spec.split('@').next().unwrap_or_default();
                self.require(PermissionKind::Install, Some(name))?;
                let outcome =
                    super::plugin_services::install(&*self.runtime()?, &self.plugin, args);
                tracing::info!(plugin = %self.plugin, %spec, ok = outcome.is_ok(), "plugin install requested");
                outcome
            }
            "plugin.remove" => {
                let name = str_arg(args, "name")?;
                self.require(PermissionKind::Install, Some(name))?;
                super::plugin_services::remove(&*self.runtime()?, &self.plugin, name)
            }
            "plugin.prove" => {
                let target = str_arg(args, "plugin")?;
                self.require(PermissionKind::Call, Some(target))?;
                super::plugin_services::prove(&*self.runtime()?, target)
            }
            "git.log" => {
                let rel = self.path_or_root(args)?;
                self.require(PermissionKind::Git, Some(&rel))?;
                let limit = args["limit"].as_u64().unwrap_or(100).min(10_000) as usize;
                super::plugin_services::git_log(&self.workshop, &rel, limit)
            }
            "secret.get" => {
                let key = str_arg(args, "key")?;
                self.require(PermissionKind::Secrets, Some(key))?;
                let purpose = args["purpose"].as_str().unwrap_or_default();
                let destination = args["destination"].as_str().unwrap_or_default();
                let config = match crate::keeper::load(&self.workshop) {
                    // API 1.4: a plugin that can do without the secret asks with
                    // `optional`, and learns that no Keeper is configured.
                    Err(crate::keeper::KeeperError::NotConfigured) if args["optional"] == true => {
                        return Ok(Value::Null)
                    }
                    other => other
                        .map_err(|e| PluginError::new(ErrorKind::HostService, e.to_string()))?,
                };
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
        self.granting(kind, target).map(|_| ())
    }

    /// The grant that allows `kind` on `target` (the longest scope when several do).
    fn granting(&self, kind: PermissionKind, target: Option<&str>) -> Result<&str, PluginError> {
        let best = self
            .grants
            .iter()
            .filter(|g| grant_allows(g, kind, target))
            .max_by_key(|g| g.len());
        if let Some(g) = best {
            return Ok(g);
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

    fn runtime(&self) -> Result<std::sync::Arc<Runtime>, PluginError> {
        self.runtime
            .upgrade()
            .ok_or_else(|| host_err("the runtime is shutting down"))
    }

    /// A workshop path, or `.` for the whole workshop.
    fn path_or_root(&self, args: &Value) -> Result<String, PluginError> {
        match args["path"].as_str() {
            Some(".") => Ok(".".to_owned()),
            _ => self.path_arg(args),
        }
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

    /// The granted folder that holds the request's `path`, opened as a capability
    /// (created first for writes), the path inside it, and the path as the plugin
    /// gave it (for messages). Nothing resolves out of the granted folder, not even
    /// through a symbolic link the workshop holds.
    fn granted(
        &self,
        kind: PermissionKind,
        args: &Value,
        create: bool,
    ) -> Result<(Option<Folder>, PathBuf, String), PluginError> {
        let rel = self.path_arg(args)?;
        let grant = self.granting(kind, Some(&rel))?;
        let scope = grant
            .split_once(':')
            .map(|(_, s)| s.trim_end_matches('/'))
            .filter(|s| !s.is_empty() && *s != ".")
            .unwrap_or("");
        let mut scope = Path::new(scope);
        let mut inside = Path::new(&rel)
            .strip_prefix(scope)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| PathBuf::from(&rel));
        // A grant naming one file (`fs-write:.superagent/bus.toml`): its folder is
        // opened, and only that name is used inside it.
        if inside.as_os_str().is_empty() {
            if let (Some(parent), Some(name)) = (scope.parent(), scope.file_name()) {
                inside = PathBuf::from(name);
                scope = parent;
            }
        }
        let root = self.workshop_folder()?;
        let folder = match root.sub(scope, create) {
            Ok(f) => Some(f),
            // A granted folder that does not exist yet: nothing in it to read or list.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(host_err(format!("cannot open {rel}: {e}"))),
        };
        Ok((folder, inside, rel))
    }

    fn workshop_folder(&self) -> Result<Folder, PluginError> {
        Folder::open(&self.workshop).map_err(|e| host_err(format!("cannot open the workshop: {e}")))
    }

    /// `.superagent/kv/<plugin>.json` (the name was validated when the lock was read).
    fn kv_file(&self) -> PathBuf {
        Path::new(crate::workshop::KV_DIR).join(format!("{}.json", self.plugin))
    }

    fn kv_load(&self) -> Result<Map<String, Value>, PluginError> {
        match self.workshop_folder()?.read(&self.kv_file(), MAX_KV_BYTES) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| host_err(format!("{} is corrupt: {e}", self.kv_file().display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
            Err(e) => Err(host_err(format!("cannot read the key-value store: {e}"))),
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
        (PermissionKind::Call | PermissionKind::Install, Some(scope), Some(t)) => {
            scope == "*" || scope == t
        }
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

/// A plugin's key-value store may not grow past this.
const MAX_KV_BYTES: u64 = 4 * 1024 * 1024;
/// One append: an entry, not a file.
const MAX_APPEND: usize = 64 * 1024;

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
        assert!(grant_allows(
            "install:*",
            PermissionKind::Install,
            Some("fleet")
        ));
        assert!(grant_allows(
            "install:fleet",
            PermissionKind::Install,
            Some("fleet")
        ));
        assert!(!grant_allows(
            "install:fleet",
            PermissionKind::Install,
            Some("keeper")
        ));
        assert!(!grant_allows(
            "call:*",
            PermissionKind::Install,
            Some("keeper")
        ));
    }
}
