//! Host services offered to plugins. A request is decoded into one typed
//! [`ServiceCall`], its grant (which the call itself names, [`ServiceCall::needs`]) is
//! checked here and only here, and one `match` hands it to the handler of its area:
//! [`basics`] (log, clock, emit, lifecycle), [`files`] (kv and workshop files),
//! [`git`], [`secrets`] and [`plugins`]. Each handler takes a [`Caller`] and plain
//! arguments, so it is tested without loading any plugin.

mod basics;
mod files;
mod git;
mod plugins;
mod secrets;

use std::path::PathBuf;
use std::sync::Weak;

use datum_plugin_api::{
    ErrorKind, Grant, Output, PermissionKind, PluginError, Response, ServiceCall,
};
use serde_json::Value;

use super::Runtime;
use crate::confined::Folder;
use crate::fsutil::confined_relative;

/// Who is calling, and what it may do.
pub struct Caller {
    pub plugin: String,
    pub version: String,
    pub grants: Vec<Grant>,
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
        let result = ServiceCall::from_wire(request).and_then(|call| {
            let service = call.name();
            let outcome = self.serve(call);
            if service != "log" {
                tracing::debug!(plugin = %self.plugin, %service, ok = outcome.is_ok(), "host service");
            }
            outcome
        });
        Response::from(result.map(Output::new)).to_json()
    }

    /// Check the call's grant, then run it.
    pub fn serve(&self, call: ServiceCall) -> Result<Value, PluginError> {
        let grant = match call.needs() {
            None => None,
            Some((kind, target)) => {
                let target = match kind {
                    PermissionKind::FsRead | PermissionKind::FsWrite | PermissionKind::Git => {
                        target.map(|t| self.confined(t)).transpose()?
                    }
                    _ => target.map(str::to_owned),
                };
                Some(self.granting(kind, target.as_deref())?.clone())
            }
        };
        self.dispatch(call, grant.as_ref())
    }

    /// The one typed match. `grant` is the grant that allowed the call (`None` for
    /// services every plugin may use); file handlers open its folder.
    fn dispatch(&self, call: ServiceCall, grant: Option<&Grant>) -> Result<Value, PluginError> {
        match call {
            ServiceCall::Log { level, message } => Ok(basics::log(self, level, &message)),
            ServiceCall::ClockNow => basics::now(),
            ServiceCall::ClockSleep { ms } => Ok(basics::sleep(ms)),
            ServiceCall::Emit { line } => basics::emit(&line),
            ServiceCall::AgentLifecycle { to } => basics::lifecycle(self, &to),
            ServiceCall::KvGet { key } => files::kv_get(self, &key),
            ServiceCall::KvSet { key, value } => files::kv_set(self, &key, value),
            ServiceCall::FsRead { path } => files::read(self, self.scope(grant)?, &path),
            ServiceCall::FsWrite { path, contents } => {
                files::write(self, self.scope(grant)?, &path, &contents)
            }
            ServiceCall::FsCreate { path, contents } => {
                files::create(self, self.scope(grant)?, &path, &contents)
            }
            ServiceCall::FsAppend { path, contents } => {
                files::append(self, self.scope(grant)?, &path, &contents)
            }
            ServiceCall::FsList { path } => files::list(self, self.scope(grant)?, &path),
            ServiceCall::GitSync {
                path,
                remote,
                message,
            } => git::sync(self, &self.confined(&path)?, remote.as_deref(), &message),
            ServiceCall::GitCommit { path, message } => {
                git::commit(self, &self.confined(&path)?, &message)
            }
            ServiceCall::GitLog { path, limit } => {
                git::log(&self.workshop, &self.confined(&path)?, limit)
            }
            ServiceCall::SecretGet {
                key,
                purpose,
                destination,
                optional,
            } => secrets::get(self, &key, &purpose, &destination, optional),
            ServiceCall::PluginCall {
                plugin,
                kind,
                command,
                args,
            } => plugins::call(self, &plugin, kind.as_deref(), &command, args),
            ServiceCall::PluginList {} => Ok(plugins::list(&*self.runtime()?)),
            ServiceCall::PluginInfo { name } => plugins::info(&*self.runtime()?, &name),
            ServiceCall::PluginProviding { ability } => {
                plugins::providing(&*self.runtime()?, &ability)
            }
            ServiceCall::PluginInstall {
                spec,
                reason,
                sha256,
                dry_run,
                commit,
            } => {
                let request = plugins::InstallCall {
                    spec: &spec,
                    reason: &reason,
                    sha256: sha256.as_deref(),
                    dry_run,
                    commit,
                };
                let outcome = plugins::install(&*self.runtime()?, &self.plugin, &request);
                tracing::info!(plugin = %self.plugin, %spec, ok = outcome.is_ok(), "plugin install requested");
                outcome
            }
            ServiceCall::PluginRemove { name } => {
                plugins::remove(&*self.runtime()?, &self.plugin, &name)
            }
            ServiceCall::PluginProve { plugin } => plugins::prove(&*self.runtime()?, &plugin),
        }
    }

    /// The grant that allows `kind` on `target` (the longest scope when several do).
    fn granting(&self, kind: PermissionKind, target: Option<&str>) -> Result<&Grant, PluginError> {
        let best = self
            .grants
            .iter()
            .filter(|g| g.allows(kind, target))
            .max_by_key(|g| g.scope().map_or(0, str::len));
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

    /// The granted path scope of a file service.
    fn scope<'g>(&self, grant: Option<&'g Grant>) -> Result<&'g str, PluginError> {
        grant
            .and_then(Grant::path_scope)
            .ok_or_else(|| host_err("a file service ran without its grant"))
    }

    fn runtime(&self) -> Result<std::sync::Arc<Runtime>, PluginError> {
        self.runtime
            .upgrade()
            .ok_or_else(|| host_err("the runtime is shutting down"))
    }

    /// A workshop path from a plugin, cleaned; `.` stays `.` (the whole workshop).
    fn confined(&self, raw: &str) -> Result<String, PluginError> {
        if raw == "." {
            return Ok(".".to_owned());
        }
        let rel = confined_relative(raw).ok_or_else(|| {
            PluginError::new(
                ErrorKind::PermissionDenied,
                format!(
                    "path `{}` leaves the workshop; use a relative path without `..`",
                    raw.escape_debug()
                ),
            )
            .with_hint("name a file inside the workshop, e.g. journal/today.md")
        })?;
        Ok(rel.to_string_lossy().into_owned())
    }

    fn workshop_folder(&self) -> Result<Folder, PluginError> {
        Folder::open(&self.workshop).map_err(|e| host_err(format!("cannot open the workshop: {e}")))
    }
}

fn host_err(e: impl std::fmt::Display) -> PluginError {
    PluginError::new(ErrorKind::HostService, e.to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A caller with these grants in a fresh workshop folder, no runtime behind it:
    /// enough for every service but those about plugins.
    pub(crate) fn caller(grants: &[&str]) -> (tempfile::TempDir, Caller) {
        let dir = tempfile::tempdir().unwrap();
        let caller = Caller {
            plugin: "probe".into(),
            version: "0.1.0".into(),
            grants: grants.iter().map(|g| g.parse().unwrap()).collect(),
            workshop: dir.path().to_owned(),
            runtime: Weak::new(),
            depth: 0,
        };
        (dir, caller)
    }

    fn call(caller: &Caller, wire: &str) -> Value {
        serde_json::from_str(&caller.handle(wire)).unwrap()
    }

    #[test]
    fn every_service_decodes_and_reaches_its_handler() {
        let (_dir, c) = caller(&[
            "kv",
            "fs-read:.",
            "fs-write:.",
            "git:.",
            "call:*",
            "install:*",
            "secrets:*",
        ]);
        // Every argument any service takes (a service ignores the ones it does not).
        let args = r#"{"key":"k","path":"p","contents":"c","line":"","to":"active","plugin":"x","command":"c","name":"x","ability":"a","spec":"x"}"#;
        for name in ServiceCall::NAMES {
            let reply = call(&c, &format!(r#"{{"service":"{name}","args":{args}}}"#));
            let message = reply["error"]["message"].as_str().unwrap_or_default();
            assert!(!message.contains("bad arguments"), "{name}: {message}");
            assert!(
                !message.contains("unknown host service"),
                "{name}: {message}"
            );
            assert_ne!(
                reply["error"]["kind"], "permission-denied",
                "{name}: {message}"
            );
        }
    }

    #[test]
    fn the_grant_is_checked_before_the_handler_runs() {
        let (dir, c) = caller(&["fs-read:journal"]);
        let reply = call(
            &c,
            r#"{"service":"fs.write","args":{"path":"journal/a.md","contents":"x"}}"#,
        );
        assert_eq!(reply["error"]["kind"], "permission-denied");
        assert_eq!(
            reply["error"]["hint"],
            "datum plugin grant probe fs-write:journal/a.md"
        );
        assert!(!dir.path().join("journal/a.md").exists());
        let reply = call(&c, r#"{"service":"kv.get","args":{"key":"k"}}"#);
        assert_eq!(reply["error"]["hint"], "datum plugin grant probe kv");
    }

    #[test]
    fn a_path_that_leaves_the_workshop_is_refused_under_any_grant() {
        let (_dir, c) = caller(&["fs-read:.", "git:."]);
        for wire in [
            r#"{"service":"fs.read","args":{"path":"../etc/passwd"}}"#,
            r#"{"service":"fs.read","args":{"path":"/etc/passwd"}}"#,
            r#"{"service":"git.commit","args":{"path":"../x","message":"m"}}"#,
            r#"{"service":"git.log","args":{"path":"a/../../b"}}"#,
        ] {
            let reply = call(&c, wire);
            assert_eq!(reply["error"]["kind"], "permission-denied", "{wire}");
            assert!(reply["error"]["message"]
                .as_str()
                .unwrap()
                .contains("leaves the workshop"));
        }
    }

    #[test]
    fn the_longest_matching_grant_scopes_a_file_service() {
        let (dir, c) = caller(&["fs-write:.", "fs-write:notes", "fs-read:notes"]);
        let reply = call(
            &c,
            r#"{"service":"fs.write","args":{"path":"notes/a.md","contents":"hi"}}"#,
        );
        assert_eq!(reply["ok"], true, "{reply}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("notes/a.md")).unwrap(),
            "hi"
        );
        let reply = call(&c, r#"{"service":"fs.read","args":{"path":"notes/a.md"}}"#);
        assert_eq!(reply["data"], "hi");
    }

    /// Reply snapshots: the JSON each service answers, byte for byte where it is
    /// deterministic and by shape where it holds a commit id or a time. Plugins parse
    /// these; changing one is a breaking change.
    #[test]
    fn replies_keep_their_wire_shape() {
        let (dir, c) = caller(&["kv", "fs-read:notes", "fs-write:notes", "git:notes"]);
        git2::Repository::init(dir.path()).unwrap();
        for (request, reply) in [
            (
                r#"{"service":"kv.set","args":{"key":"n","value":3}}"#,
                r#"{"ok":true,"data":null}"#,
            ),
            (
                r#"{"service":"kv.get","args":{"key":"n"}}"#,
                r#"{"ok":true,"data":3}"#,
            ),
            (
                r#"{"service":"kv.get","args":{"key":"none"}}"#,
                r#"{"ok":true,"data":null}"#,
            ),
            (
                r#"{"service":"fs.create","args":{"path":"notes/a.md","contents":"hi"}}"#,
                r#"{"ok":true,"data":true}"#,
            ),
            (
                r#"{"service":"fs.create","args":{"path":"notes/a.md","contents":"x"}}"#,
                r#"{"ok":true,"data":false}"#,
            ),
            (
                r#"{"service":"fs.read","args":{"path":"notes/a.md"}}"#,
                r#"{"ok":true,"data":"hi"}"#,
            ),
            (
                r#"{"service":"fs.list","args":{"path":"notes"}}"#,
                r#"{"ok":true,"data":["a.md"]}"#,
            ),
            (
                r#"{"service":"fs.write","args":{"path":"notes/b.md","contents":"b"}}"#,
                r#"{"ok":true,"data":null}"#,
            ),
            (
                r#"{"service":"fs.append","args":{"path":"notes/c.md","contents":"c"}}"#,
                r#"{"ok":true,"data":null}"#,
            ),
            (
                r#"{"service":"fs.read","args":{"path":"journal/x.md"}}"#,
                r#"{"ok":false,"error":{"kind":"permission-denied","message":"probe 0.1.0 is not granted `fs-read:journal/x.md`","hint":"datum plugin grant probe fs-read:journal/x.md"}}"#,
            ),
            (
                r#"{"service":"net.get","args":{}}"#,
                r#"{"ok":false,"error":{"kind":"host-service","message":"unknown host service `net.get`","hint":"this datum does not offer it; upgrade datum or the plugin"}}"#,
            ),
        ] {
            assert_eq!(c.handle(request), reply, "{request}");
        }
        let now = call(&c, r#"{"service":"clock.now","args":null}"#);
        assert!(now["data"].as_u64().is_some(), "{now}");
        let commit = call(
            &c,
            r#"{"service":"git.commit","args":{"path":"notes","message":"notes"}}"#,
        );
        let keys: Vec<&String> = commit["data"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["commit", "committed"], "{commit}");
        assert_eq!(commit["data"]["committed"], true);
        assert_eq!(commit["data"]["commit"].as_str().unwrap().len(), 40);
        let log = call(
            &c,
            r#"{"service":"git.log","args":{"path":"notes","limit":5}}"#,
        );
        assert_eq!(log["data"]["total"], 1, "{log}");
        let entry: Vec<&String> = log["data"]["commits"][0]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(entry, ["id", "subject", "when"], "{log}");
    }

    #[test]
    fn plugin_services_without_a_runtime_fail_cleanly() {
        let (_dir, c) = caller(&["call:*"]);
        let reply = call(&c, r#"{"service":"plugin.list","args":{}}"#);
        assert_eq!(reply["ok"], false);
        assert!(reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shutting down"));
    }
}
