//! Host services about plugins: calling another plugin (1.0), and (API 1.5) what is
//! installed, what the registry offers, installing through the host, proving a plugin
//! by its golden examples. These are what `datum learn` and `datum improve` are built
//! on; the policy (trust, consent) stays here.

use datum_plugin_api::{ErrorKind, PluginError};
use semver::VersionReq;
use serde_json::{json, Value};

use super::{host_err, Caller, MAX_CALL_DEPTH};
use crate::install::{InstallOptions, Installer, PluginSpec};
use crate::loader::Kind;
use crate::registry::{IndexVersion, Registry};
use crate::runtime::Runtime;

fn registry(runtime: &Runtime) -> Result<Registry, PluginError> {
    crate::registry::open_configured(runtime.registry_spec().as_deref(), &runtime.home)
        .map_err(|e| host_err(format!("{e:#}")).with_hint("pass --registry, or set DATUM_REGISTRY"))
}

/// `plugin.list`: the installed plugins, as `datum plugin list` shows them.
pub fn list(runtime: &Runtime) -> Value {
    Value::Array(
        runtime
            .installed()
            .iter()
            .map(|p| {
                json!({
                    "name": p.locked.name,
                    "version": p.locked.version.to_string(),
                    "kind": p.locked.kind,
                    "provides": p.manifest.provides,
                    "description": p.manifest.description,
                    "commands": p.manifest.commands.iter().map(|c| c.path.clone()).collect::<Vec<_>>(),
                    "grants": p.locked.grants,
                    "requested_by": p.locked.requested_by,
                })
            })
            .collect(),
    )
}

fn version_json(v: &IndexVersion) -> Value {
    let m = &v.manifest;
    json!({
        "version": v.version.to_string(),
        "yanked": v.yanked,
        "description": m.description,
        "provides": m.provides,
        "api": m.api.to_string(),
        "permissions": m.permissions.iter().map(|p| json!({"grant": p.grant(), "reason": p.reason})).collect::<Vec<_>>(),
        "commands": m.commands.iter().map(|c| json!({"path": c.path, "summary": c.summary})).collect::<Vec<_>>(),
        "requires": m.requires.iter().map(|(n, r)| (n.clone(), Value::from(r.to_string()))).collect::<serde_json::Map<_, _>>(),
        "kinds": v.artifacts.keys().cloned().collect::<Vec<_>>(),
    })
}

/// `plugin.info`: a plugin as the registry describes it, with the installed version
/// and the newest compatible one.
pub fn info(runtime: &Runtime, name: &str) -> Result<Value, PluginError> {
    let registry = registry(runtime)?;
    let index = registry.index(name).map_err(|e| {
        host_err(e.to_string()).with_hint("`datum plugin search` lists what the registry has")
    })?;
    let mut versions: Vec<&IndexVersion> = index.versions.iter().collect();
    versions.sort_by(|a, b| b.version.cmp(&a.version));
    let installed = runtime
        .installed()
        .into_iter()
        .find(|p| p.locked.name == name);
    let api = crate::loader::api_version();
    let runnable =
        |v: &&&IndexVersion| !v.yanked && v.manifest.api.matches(&api) && !v.artifacts.is_empty();
    let compatible = installed.as_ref().and_then(|p| {
        let req = VersionReq::parse(&format!("^{}", p.locked.version)).ok()?;
        versions
            .iter()
            .filter(runnable)
            .find(|v| req.matches(&v.version))
            .map(|v| v.version.to_string())
    });
    let newest = versions
        .iter()
        .find(runnable)
        .map(|v| v.version.to_string());
    // Registry text: a README over the size `registry publish` allows is not passed on.
    let readme = versions
        .iter()
        .find_map(|v| v.readme.clone())
        .filter(|r| r.len() <= crate::registry::MAX_README);
    Ok(json!({
        "name": name,
        "registry": registry.source_id,
        "current": installed.as_ref().map(|p| p.locked.version.to_string()),
        "compatible": compatible,
        "newest": newest,
        "versions": versions.iter().map(|v| version_json(v)).collect::<Vec<_>>(),
        "readme": readme,
    }))
}

/// `plugin.providing`: registry plugins whose newest runnable version provides `ability`.
pub fn providing(runtime: &Runtime, ability: &str) -> Result<Value, PluginError> {
    let registry = registry(runtime)?;
    let api = crate::loader::api_version();
    let mut out = Vec::new();
    for name in registry.names().map_err(host_err)? {
        // One unreadable index is skipped; it cannot hide the rest of the registry.
        let Ok(index) = registry.index(&name) else {
            continue;
        };
        let newest = index
            .versions
            .iter()
            .filter(|v| !v.yanked && v.manifest.api.matches(&api) && !v.artifacts.is_empty())
            .max_by(|a, b| a.version.cmp(&b.version));
        if let Some(v) = newest.filter(|v| v.manifest.provides.iter().any(|p| p == ability)) {
            let mut j = version_json(v);
            j["name"] = Value::from(name.clone());
            out.push(j);
        }
    }
    Ok(Value::Array(out))
}

/// The arguments of `plugin.install`.
pub struct InstallCall<'a> {
    pub spec: &'a str,
    pub reason: &'a str,
    pub sha256: Option<&'a str>,
    pub dry_run: bool,
    pub commit: bool,
}

/// `plugin.call`: run another installed plugin's command for the same agent in the
/// same workshop (the `call:` grant was checked by the caller).
pub fn call(
    caller: &Caller,
    target: &str,
    kind: Option<&str>,
    command: &str,
    args: serde_json::Map<String, Value>,
) -> Result<Value, PluginError> {
    if caller.depth >= MAX_CALL_DEPTH {
        return Err(host_err(format!(
            "plugin calls nested deeper than {MAX_CALL_DEPTH}; is there a cycle?"
        ))
        .with_hint(format!("check which plugins {target} calls in turn")));
    }
    let kind = match kind {
        None => None,
        Some("native") => Some(Kind::Native),
        Some("wasm") => Some(Kind::Wasm),
        Some(other) => {
            return Err(
                host_err(format!("unknown plugin kind `{}`", other.escape_debug()))
                    .with_hint("use native or wasm"),
            )
        }
    };
    let runtime = caller.runtime()?;
    // The callee runs for the same agent in the same workshop: the host fills in what
    // it owns, exactly as for a command typed by the user.
    let mut request = runtime.request(command);
    request.args = args;
    request.format = datum_plugin_api::Format::Json;
    runtime
        .invoke_at_depth(target, kind, request, caller.depth + 1)
        .map(|out| out.data)
        .map_err(|e| PluginError::new(ErrorKind::HostService, e.to_string()).with_hint(e.hint()))
}

/// `plugin.install`: the grant was checked by the caller; the trust rules are those of
/// `datum plugin install`. A plugin cannot consent to native code for the user: an
/// untrusted registry's native build is refused unless this plugin was already
/// installed native (consent given then, as `datum plugin update` assumes).
pub fn install(runtime: &Runtime, by: &str, call: &InstallCall<'_>) -> Result<Value, PluginError> {
    let spec_text = call.spec;
    let spec: PluginSpec = spec_text.parse().map_err(|e: String| {
        PluginError::invalid_args(format!("`{spec_text}`: {e}"))
            .with_hint("NAME or NAME@REQ, e.g. flux-vm@^0.1")
    })?;
    let reason = call.reason.trim();
    let reason: String = reason
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let registry = registry(runtime)?;
    let previous = runtime
        .workshop
        .lock()
        .map_err(|e| host_err(format!("{e:#}")))?
        .get(&spec.name)
        .cloned();
    let kind = previous.as_ref().map_or(Kind::Wasm, |p| p.kind);
    let wanted_sha = call.sha256;
    let dry_run = call.dry_run;
    let api = crate::loader::api_version();
    let resolved = match registry.resolve(&spec.name, &spec.req, kind, &api) {
        Err(crate::registry::RegistryError::NoArtifact { .. }) if previous.is_none() => {
            registry.resolve(&spec.name, &spec.req, Kind::Native, &api)
        }
        other => other,
    }
    .map_err(|e| host_err(e.to_string()))?;
    if let Some(want) = wanted_sha {
        if want != resolved.artifact.sha256 {
            return Err(PluginError::new(
                ErrorKind::HostService,
                format!(
                    "{} {} ({}) in this registry has sha256 {}, not the {want} asked for; the two registries published different bytes under one version",
                    spec.name, resolved.version.version, resolved.kind, resolved.artifact.sha256
                ),
            )
            .with_hint("install from the registry the other agent used (--registry), or drop the exact pin"));
        }
    }
    let summary = json!({
        "name": spec.name,
        "version": resolved.version.version.to_string(),
        "kind": resolved.kind,
        "previous": previous.as_ref().map(|p| p.version.to_string()),
        "sha256": resolved.artifact.sha256,
    });
    if dry_run {
        let mut s = summary;
        s["changed"] = Value::from(
            previous
                .as_ref()
                .is_none_or(|p| p.sha256 != resolved.artifact.sha256),
        );
        s["dry_run"] = Value::Bool(true);
        return Ok(s);
    }
    let exact = format!("={}", resolved.version.version);
    let options = InstallOptions {
        kind: resolved.kind,
        native_fallback: false,
        // Consent to native code was the user's, at the first install; never the
        // plugin's.
        trust_native: previous.as_ref().is_some_and(|p| p.kind == Kind::Native),
        force: previous.is_some(),
        commit: call.commit,
        requested: Some((by.to_owned(), reason)),
        ..InstallOptions::default()
    };
    let installer = Installer {
        home: &runtime.home,
        workshop: &runtime.workshop,
        registry: &registry,
    };
    let exact_spec = PluginSpec {
        name: spec.name.clone(),
        req: VersionReq::parse(&exact).map_err(host_err)?,
    };
    let outcome = installer.install(&exact_spec, &options).map_err(|e| {
        PluginError::new(ErrorKind::HostService, format!("{e:#}")).with_hint(format!(
            "install it yourself to see every step: datum plugin install {}",
            spec.name
        ))
    })?;
    runtime.refresh().map_err(|e| host_err(format!("{e:#}")))?;
    let mut s = summary;
    s["changed"] = Value::Bool(outcome.changed);
    s["commit"] = json!(outcome.commit);
    s["grants"] = json!(outcome.grants);
    Ok(s)
}

/// `plugin.remove`: only what `by` installed itself (the user's plugins are the
/// user's to remove).
pub fn remove(runtime: &Runtime, by: &str, name: &str) -> Result<Value, PluginError> {
    let lock = runtime
        .workshop
        .lock()
        .map_err(|e| host_err(format!("{e:#}")))?;
    let entry = lock
        .get(name)
        .ok_or_else(|| host_err(format!("`{name}` is not installed")))?;
    if entry.requested_by.as_deref() != Some(by) {
        return Err(PluginError::new(
            ErrorKind::PermissionDenied,
            format!("{by} may only remove plugins it installed; {name} was installed by the user"),
        )
        .with_hint(format!("datum plugin remove {name}")));
    }
    let (removed, commit) = crate::install::remove(&runtime.home, &runtime.workshop, name, false)
        .map_err(|e| host_err(format!("{e:#}")))?;
    runtime.refresh().map_err(|e| host_err(format!("{e:#}")))?;
    Ok(json!({ "removed": removed.name, "version": removed.version.to_string(), "commit": commit }))
}

/// `plugin.prove`: run an installed plugin's golden examples in a scratch workshop.
pub fn prove(runtime: &Runtime, name: &str) -> Result<Value, PluginError> {
    let plugin = runtime
        .installed()
        .into_iter()
        .find(|p| p.locked.name == name)
        .ok_or_else(|| {
            host_err(format!("`{name}` is not installed"))
                .with_hint(format!("datum plugin install {name}"))
        })?;
    let lock = runtime
        .workshop
        .lock()
        .map_err(|e| host_err(format!("{e:#}")))?;
    crate::prove::prove(&runtime.home, &lock, &plugin)
        .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
        .map_err(|e| host_err(format!("cannot prove {name}: {e:#}")))
}
