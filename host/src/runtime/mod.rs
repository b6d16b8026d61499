//! Dispatch: route a command to the installed plugin that provides it, load that
//! plugin under its limits, hand it host services, and map every failure to a
//! [`RuntimeError`].

mod error;
pub mod services;

use std::path::PathBuf;
use std::sync::{Arc, Weak};

use datum_plugin_api::{AgentInfo, CommandSpec, Manifest, Output, Request, Response};

pub use error::RuntimeError;
use services::Caller;

use crate::loader::Kind;
use crate::loader::{self, api_version, wasm_cache, Instance, LoadOptions, Services};
use crate::paths::Home;
use crate::registry::Registry;
use crate::store::Store;
use crate::workshop::LockedPlugin;
use crate::workshop::Workshop;

/// An installed plugin ready to route to.
#[derive(Debug, Clone)]
pub struct Installed {
    pub locked: LockedPlugin,
    pub manifest: Manifest,
}

/// A command line matched to a plugin command.
#[derive(Debug, Clone)]
pub struct Route {
    pub plugin: Installed,
    pub command: CommandSpec,
    /// How many leading words the command path used.
    pub words: usize,
}

pub struct Runtime {
    pub home: Home,
    pub workshop: Workshop,
    store: Store,
    agent: AgentInfo,
    /// Re-read after a plugin installs another through the host (`plugin.install`), so
    /// the new plugin can be called in the same run.
    installed: std::sync::RwLock<Vec<Installed>>,
    /// The registry this run was pointed at (`--registry`), for `plugin.install`.
    registry_spec: std::sync::OnceLock<Option<String>>,
    /// Plugins in the lock that cannot run here, with the reason (shown by status).
    pub skipped: Vec<(LockedPlugin, String)>,
    /// wasmtime's cache config, written the first time a WASM plugin is loaded (not on
    /// every command: `status` and native calls never need it).
    wasm_cache: std::sync::OnceLock<PathBuf>,
    me: Weak<Runtime>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("workshop", &self.workshop.root())
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Open the runtime of a workshop. Plugins whose API requirement this host does not
    /// meet, or whose store entry is missing, are skipped (listed in `skipped`), never fatal.
    pub fn open(home: Home, workshop: Workshop) -> anyhow::Result<Arc<Runtime>> {
        let agent = workshop.agent()?;
        let store = Store::new(home.store());
        let (installed, skipped) = Self::read_lock(&workshop, &store)?;
        Ok(Arc::new_cyclic(|me| Runtime {
            home,
            workshop,
            store,
            agent: AgentInfo {
                name: agent.agent.name,
                role: agent.agent.role,
            },
            installed: std::sync::RwLock::new(installed),
            registry_spec: std::sync::OnceLock::new(),
            skipped,
            wasm_cache: std::sync::OnceLock::new(),
            me: me.clone(),
        }))
    }

    /// The lock's plugins that can run here, and those that cannot (with the reason).
    #[allow(clippy::type_complexity)]
    fn read_lock(
        workshop: &Workshop,
        store: &Store,
    ) -> anyhow::Result<(Vec<Installed>, Vec<(LockedPlugin, String)>)> {
        let lock = workshop.lock()?;
        let api = api_version();
        let mut installed = Vec::new();
        let mut skipped = Vec::new();
        for locked in lock.plugins {
            if !locked.api.matches(&api) {
                let why = format!(
                    "needs datum-plugin-api {}, this datum provides {api}; run `datum plugin update {}`",
                    locked.api, locked.name
                );
                skipped.push((locked, why));
                continue;
            }
            match store.manifest(&locked.sha256) {
                Ok(manifest) => installed.push(Installed { locked, manifest }),
                Err(e) => skipped.push((locked, e.to_string())),
            }
        }
        Ok((installed, skipped))
    }

    /// Read datum.lock again (after an install during this run).
    pub fn refresh(&self) -> anyhow::Result<()> {
        let (installed, _) = Self::read_lock(&self.workshop, &self.store)?;
        *self
            .installed
            .write()
            .map_err(|_| anyhow::anyhow!("the plugin list is poisoned"))? = installed;
        Ok(())
    }

    /// The registry `--registry` named for this run (None: DATUM_REGISTRY, then bundled).
    pub fn set_registry(&self, spec: Option<String>) {
        let _ = self.registry_spec.set(spec);
    }

    pub fn registry_spec(&self) -> Option<String> {
        self.registry_spec.get().cloned().flatten()
    }

    pub fn installed(&self) -> Vec<Installed> {
        // A poisoned lock only means another thread panicked mid-refresh; the list it
        // holds is still a whole list.
        match self.installed.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The plugin command whose path is the longest prefix of `words`.
    pub fn route(&self, words: &[&str]) -> Option<Route> {
        self.installed()
            .iter()
            .filter_map(|p| {
                p.manifest.match_command(words).map(|(c, n)| Route {
                    plugin: p.clone(),
                    command: c.clone(),
                    words: n,
                })
            })
            .max_by_key(|r| r.words)
    }

    /// Every installed command with its plugin's name, for help and completion.
    pub fn commands(&self) -> Vec<(String, CommandSpec)> {
        self.installed()
            .into_iter()
            .flat_map(|p| {
                let name = p.locked.name.clone();
                p.manifest
                    .commands
                    .into_iter()
                    .map(move |c| (name.clone(), c))
            })
            .collect()
    }

    fn find(&self, name: &str) -> Result<Installed, RuntimeError> {
        self.installed()
            .into_iter()
            .find(|p| p.locked.name == name)
            .ok_or_else(|| RuntimeError::NotInstalled {
                plugin: name.to_owned(),
            })
    }

    /// Fill in the request fields the host owns.
    pub fn request(&self, command: &str) -> Request {
        let mut request = Request::new(command);
        request.agent = self.agent.clone();
        request.workshop = Some(self.workshop.root().display().to_string());
        request
    }

    /// Call one command of an installed plugin.
    pub fn invoke(&self, plugin: &str, request: Request) -> Result<Output, RuntimeError> {
        self.invoke_at_depth(plugin, None, request, 0)
    }

    pub(crate) fn invoke_at_depth(
        &self,
        plugin: &str,
        kind: Option<Kind>,
        request: Request,
        depth: usize,
    ) -> Result<Output, RuntimeError> {
        let mut session = self.session_at_depth(plugin, kind, depth, Some(&request.command))?;
        session.invoke(request)
    }

    /// Load a plugin once and keep it for many calls (the batch form for hot loops).
    pub fn session(&self, plugin: &str) -> Result<Session, RuntimeError> {
        self.session_at_depth(plugin, None, 0, None)
    }

    fn wasm_cache_path(&self) -> Result<PathBuf, RuntimeError> {
        if let Some(p) = self.wasm_cache.get() {
            return Ok(p.clone());
        }
        let p = wasm_cache(&self.home).map_err(|e| {
            RuntimeError::Other(format!(
                "cannot prepare the WASM cache in {}: {e:#}",
                self.home.root().display()
            ))
        })?;
        Ok(self.wasm_cache.get_or_init(|| p).clone())
    }

    /// The same version of an installed plugin in its other build, fetched into the
    /// store from the registry it was installed from (verified like an install).
    fn twin(&self, locked: &LockedPlugin, kind: Kind) -> Result<(String, Manifest), RuntimeError> {
        let fail = |e: String| {
            RuntimeError::Other(format!(
                "cannot get the {kind} build of {} {}: {e}",
                locked.name, locked.version
            ))
        };
        let registry =
            Registry::open_source(&locked.source, &self.home).map_err(|e| fail(e.to_string()))?;
        if kind == Kind::Native && !registry.config.trusted {
            return Err(fail(format!(
                "native code needs consent; install it with `datum plugin install {} --kind native --trust-native`",
                locked.name
            )));
        }
        let exact = semver::VersionReq::parse(&format!("={}", locked.version))
            .map_err(|e| fail(e.to_string()))?;
        let resolved = registry
            .resolve(&locked.name, &exact, kind, &api_version())
            .map_err(|e| fail(e.to_string()))?;
        let sha = resolved.artifact.sha256.clone();
        let manifest = match self.store.manifest(&sha) {
            Ok(m) if self.store.contains(&sha, kind) => m,
            _ => crate::install::fetch_into_store(&self.home, &registry, &locked.name, &resolved)
                .map_err(|e| fail(format!("{e:#}")))?,
        };
        Ok((sha, manifest))
    }

    fn session_at_depth(
        &self,
        plugin: &str,
        kind: Option<Kind>,
        depth: usize,
        command: Option<&str>,
    ) -> Result<Session, RuntimeError> {
        let mut installed = self.find(plugin)?;
        if let Some(kind) = kind.filter(|k| *k != installed.locked.kind) {
            let (sha, manifest) = self.twin(&installed.locked, kind)?;
            installed.locked.sha256 = sha;
            installed.locked.kind = kind;
            installed.manifest = manifest;
        }
        let locked = &installed.locked;
        let caller = Caller {
            plugin: locked.name.clone(),
            version: locked.version.to_string(),
            grants: locked.grants.clone(),
            workshop: self.workshop.root().to_owned(),
            runtime: self.me.clone(),
            depth,
        };
        let services: Services = Arc::new(move |req: &str| caller.handle(req));
        let mut limits = installed.manifest.limits;
        // A single-command load takes that command's own time limit, if it sets one.
        if let Some(ms) = command
            .and_then(|c| {
                installed
                    .manifest
                    .commands
                    .iter()
                    .find(|spec| spec.path == c)
            })
            .and_then(|spec| spec.timeout_ms)
        {
            limits.timeout_ms = ms;
        }
        let options = LoadOptions {
            limits,
            wasm_cache: match locked.kind {
                Kind::Wasm => Some(self.wasm_cache_path()?),
                Kind::Native => None,
            },
            // Verified below (`verified_artifact`) before anything is loaded.
            digest: Some(locked.sha256.clone()),
        };
        let path = self
            .store
            .verified_artifact(&locked.sha256, locked.kind)
            .map_err(|e| RuntimeError::Other(format!("{} {}: {e}", locked.name, locked.version)))?;
        let instance = loader::load(locked.kind, &path, &options, services)
            .map_err(|e| RuntimeError::load(&locked.name, &locked.version.to_string(), e))?;
        // One line per load (`-vv`): how tests count that a batch loads each plugin once.
        tracing::debug!(plugin = %locked.name, version = %locked.version, kind = %locked.kind, "plugin loaded");
        Ok(Session {
            installed,
            instance,
        })
    }
}

/// A loaded plugin bound to its grants; calls reuse the loaded module.
pub struct Session {
    installed: Installed,
    instance: Box<dyn Instance>,
}

impl Session {
    pub fn invoke(&mut self, request: Request) -> Result<Output, RuntimeError> {
        let reply = self.invoke_raw(&request)?;
        let locked = &self.installed.locked;
        match reply {
            Response::Ok { data, text, .. } => Ok(Output { data, text }),
            // A native plugin catches its own panic and reports it; present it exactly
            // like a WASM panic so callers see one kind of failure.
            Response::Err { error, .. } if error.kind == datum_plugin_api::ErrorKind::Panic => {
                Err(RuntimeError::call(
                    &locked.name,
                    &locked.version.to_string(),
                    &request.command,
                    loader::CallFailure::Panic(error.message),
                ))
            }
            Response::Err { error, .. } => Err(RuntimeError::Plugin {
                plugin: locked.name.clone(),
                version: locked.version.to_string(),
                command: request.command.clone(),
                error,
            }),
        }
    }

    /// One call, returning the decoded envelope (failures of the call itself are errors).
    pub fn invoke_raw(&mut self, request: &Request) -> Result<Response, RuntimeError> {
        let locked = &self.installed.locked;
        let fail = |f| {
            RuntimeError::call(
                &locked.name,
                &locked.version.to_string(),
                &request.command,
                f,
            )
        };
        let wire =
            serde_json::to_string(request).map_err(|e| RuntimeError::Other(e.to_string()))?;
        let reply = self.instance.invoke(&wire).map_err(fail)?;
        let limit = (self.installed.manifest.limits.max_output_kb as usize).saturating_mul(1024);
        if reply.len() > limit {
            return Err(fail(loader::CallFailure::OutputTooLarge {
                size: reply.len(),
                limit,
            }));
        }
        serde_json::from_str::<Response>(&reply)
            .map_err(|e| fail(loader::CallFailure::BadReply(e.to_string())))
    }
}
