//! `datum plugin install|remove|update|grant`: resolve → fetch → verify → check API →
//! record grants → write the lock → commit to the workshop's history.

use std::path::Path;

use anyhow::{bail, Context};
use datum_plugin_api::{Grant, Manifest, Permission};
use semver::VersionReq;
use serde::Serialize;

use crate::loader::{self, api_version, wasm_cache, Kind, LoadOptions};
use crate::paths::Home;
use crate::registry::{Registry, RegistryError, Resolved};
use crate::store::Store;
use crate::workshop::{Lock, LockedPlugin, Workshop};

/// `NAME` or `NAME@REQ` (`flux-vm@^0.1`, `flux-vm@=0.1.0`, `flux-vm@0.1`).
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSpec {
    pub name: String,
    pub req: VersionReq,
}

impl std::str::FromStr for PluginSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, req) = match s.split_once('@') {
            Some((n, r)) => (n, r),
            None => (s, "*"),
        };
        if !datum_plugin_api::valid_name(name) {
            return Err(format!(
                "`{name}` is not a plugin name (a-z, 0-9 and '-', starting with a letter)"
            ));
        }
        let req = VersionReq::parse(req).map_err(|e| {
            format!("`{req}` is not a version requirement ({e}); try NAME@1.2 or NAME@=1.2.3")
        })?;
        Ok(PluginSpec {
            name: name.to_owned(),
            req,
        })
    }
}

#[derive(Debug, Clone)]
pub struct InstallOptions {
    pub kind: Kind,
    /// The user named no kind: a plugin that ships only a native build installs that
    /// (under the same consent rules as `--kind native`).
    pub native_fallback: bool,
    /// Consent to run native code in-process from an untrusted registry.
    pub trust_native: bool,
    /// Permissions not to grant.
    pub deny: Vec<Grant>,
    /// Refuse to change the lock file.
    pub locked: bool,
    /// Reinstall even when the lock already has this exact artifact.
    pub force: bool,
    /// Commit the change to the workshop's history.
    pub commit: bool,
    /// Set when an installed plugin asked for this install through the host
    /// (`plugin.install`): that plugin's name and its reason. Recorded in the lock, the
    /// journal and the commit message.
    pub requested: Option<(String, String)>,
    /// The user accepts an unsigned registry (`--allow-unsigned`); recorded in the lock.
    pub allow_unsigned: bool,
}

impl Default for InstallOptions {
    fn default() -> Self {
        InstallOptions {
            kind: Kind::Wasm,
            native_fallback: true,
            trust_native: false,
            deny: Vec::new(),
            locked: false,
            force: false,
            commit: true,
            requested: None,
            allow_unsigned: false,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    pub name: String,
    pub version: String,
    pub kind: Kind,
    pub sha256: String,
    pub source: String,
    pub grants: Vec<Grant>,
    pub permissions: Vec<Permission>,
    /// False when the lock already pinned exactly this and nothing changed.
    pub changed: bool,
    pub commit: Option<String>,
    /// Dependencies installed along the way.
    pub dependencies: Vec<Installed>,
    /// The fingerprint of the registry key that signed it; `None`: installed from an
    /// unsigned registry with --allow-unsigned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
}

impl Installed {
    /// Whether installing it (or a dependency it brought) changed datum.lock.
    fn changed_lock(&self) -> bool {
        self.changed || self.dependencies.iter().any(|d| d.changed)
    }
}

pub struct Installer<'a> {
    pub home: &'a Home,
    pub workshop: &'a Workshop,
    pub registry: &'a Registry,
}

impl Installer<'_> {
    pub fn install(
        &self,
        spec: &PluginSpec,
        options: &InstallOptions,
    ) -> anyhow::Result<Installed> {
        self.install_many(std::slice::from_ref(spec), options, &mut |_| {})?
            .pop()
            .context("the installer returned no outcome for one plugin")
    }

    /// Install several plugins as one change: the registry's signature is checked once,
    /// and datum.lock, the journal and the trail are written once for all of them
    /// (`datum boot` installs its default plugins this way). Either every plugin is
    /// recorded or, on the first failure, none is.
    pub fn install_many(
        &self,
        specs: &[PluginSpec],
        options: &InstallOptions,
        progress: &mut dyn FnMut(&PluginSpec),
    ) -> anyhow::Result<Vec<Installed>> {
        let mut lock = self.workshop.lock()?;
        // The registry's signature first: nothing is read from an index, fetched or
        // loaded before it checks out. Plugins the lock already records as unsigned
        // from this same source keep that consent for updates.
        let consented = !specs.is_empty()
            && specs.iter().all(|spec| {
                lock.get(&spec.name)
                    .is_some_and(|p| p.unsigned && p.source == self.registry.source_id)
            });
        let verdict = crate::registry::trust::check(
            self.registry,
            self.workshop.root(),
            options.allow_unsigned || consented,
        )?;
        let checked;
        let (installer, signed_by, pinned_now) = match &verdict {
            crate::registry::trust::Verdict::Signed {
                snapshot,
                fingerprint,
                pinned_now,
                rotated_from,
            } => {
                if let Some(old) = rotated_from {
                    self.workshop.journal(&format!(
                        "registry {} rotated its key from {old} to {fingerprint} (signed by both)",
                        self.registry.source_id
                    ))?;
                }
                checked = self.registry.with_snapshot(snapshot.clone());
                (
                    Installer {
                        registry: &checked,
                        ..*self
                    },
                    Some(fingerprint.clone()),
                    *pinned_now,
                )
            }
            crate::registry::trust::Verdict::Unsigned => (Installer { ..*self }, None, false),
        };
        let mut outcomes = Vec::with_capacity(specs.len());
        for spec in specs {
            progress(spec);
            outcomes.push(installer.install_into(&mut lock, spec, options, 0, &signed_by)?);
        }
        if pinned_now {
            if let Some(f) = &signed_by {
                self.workshop.journal(&format!(
                    "trusted registry {} (key {f}, pinned in {})",
                    self.registry.source_id,
                    crate::registry::trust::FILE
                ))?;
            }
        }
        let changed: Vec<&Installed> = outcomes.iter().filter(|o| o.changed_lock()).collect();
        if changed.is_empty() {
            return Ok(outcomes);
        }
        if options.locked {
            let o = changed[0];
            bail!(
                "--locked: installing {} {} would change datum.lock; run without --locked to allow it",
                o.name,
                o.version
            );
        }
        let mut journal = Vec::new();
        let mut trail = Vec::new();
        for o in &changed {
            let mut line = format!("learned {} {} ({})", o.name, o.version, o.kind);
            if let Some((by, why)) = &options.requested {
                line.push_str(&format!(", installed by {by}: {why}"));
            }
            journal.push(line);
            trail.push(format!(
                "plugin install {}@{} {}",
                o.name, o.version, o.kind
            ));
        }
        let message = journal.join("\n");
        let commit = self.workshop.record_lock_change(
            &lock,
            &crate::workshop::LockChange {
                journal,
                trail,
                commit: options.commit.then_some(message),
            },
        )?;
        for o in outcomes.iter_mut().filter(|o| o.changed_lock()) {
            o.commit = commit.clone();
        }
        Ok(outcomes)
    }

    fn install_into(
        &self,
        lock: &mut Lock,
        spec: &PluginSpec,
        options: &InstallOptions,
        depth: usize,
        signed_by: &Option<String>,
    ) -> anyhow::Result<Installed> {
        if depth > 16 {
            bail!(
                "plugin requirements nest deeper than 16 levels at `{}`; is there a cycle?",
                spec.name
            );
        }
        let store = Store::new(self.home.store());
        let api = api_version();
        // --locked installs exactly what the lock pins (fetching it into the store if needed).
        let pinned = lock
            .get(&spec.name)
            .filter(|p| {
                options.locked
                    || (!options.force && spec.req.matches(&p.version) && p.kind == options.kind)
            })
            .cloned();
        let resolved = match &pinned {
            Some(p) => {
                let exact = VersionReq::parse(&format!("={}", p.version))?;
                let r = self.registry.resolve(&spec.name, &exact, p.kind, &api)?;
                if r.artifact.sha256 != p.sha256 && options.locked {
                    bail!(
                        "--locked: {} {} in the registry has sha256 {}, but datum.lock pins {}; the registry changed a published artifact",
                        p.name, p.version, r.artifact.sha256, p.sha256
                    );
                }
                r
            }
            None => {
                if options.locked {
                    bail!(
                        "--locked: `{}` is not in datum.lock; run without --locked to add it",
                        spec.name
                    );
                }
                match self
                    .registry
                    .resolve(&spec.name, &spec.req, options.kind, &api)
                {
                    Err(RegistryError::NoArtifact { .. })
                        if options.native_fallback && options.kind == Kind::Wasm =>
                    {
                        self.registry
                            .resolve(&spec.name, &spec.req, Kind::Native, &api)?
                    }
                    other => other?,
                }
            }
        };
        let kind = resolved.kind;
        let already = lock.get(&spec.name).is_some_and(|p| {
            p.sha256 == resolved.artifact.sha256
                && p.kind == kind
                && store.contains(&p.sha256, kind)
        });
        if already && !options.force {
            let p = lock
                .get(&spec.name)
                .cloned()
                .context("lock entry vanished")?;
            let manifest = store.manifest(&p.sha256)?;
            return Ok(Installed {
                name: p.name,
                version: p.version.to_string(),
                kind,
                sha256: p.sha256,
                source: p.source,
                grants: p.grants,
                permissions: manifest.permissions,
                changed: false,
                commit: None,
                dependencies: Vec::new(),
                signed_by: signed_by.clone(),
            });
        }
        if kind == Kind::Native && !options.trust_native && !self.registry.config.trusted {
            return Err(crate::error::fail(
                "native-needs-consent",
                crate::error::Category::Denied,
                format!(
                    "{} is a native plugin: it runs inside datum with your full privileges, and registry {} is not marked trusted",
                    spec.name, self.registry.source_id
                ),
                "install the sandboxed build with `--kind wasm`, or consent with `--trust-native`",
            ));
        }
        let manifest = fetch_into_store(self.home, self.registry, &spec.name, &resolved)?;
        let previous = lock.get(&spec.name).cloned();
        let grants = grants_for(&manifest, previous.as_ref(), &options.deny)?;
        let mut dependencies = Vec::new();
        for (dep, req) in &manifest.requires {
            if lock.get(dep).is_some_and(|p| req.matches(&p.version)) {
                continue;
            }
            let dep_spec = PluginSpec {
                name: dep.clone(),
                req: req.clone(),
            };
            let dep_options = InstallOptions {
                force: false,
                ..options.clone()
            };
            dependencies.push(self.install_into(
                lock,
                &dep_spec,
                &dep_options,
                depth + 1,
                signed_by,
            )?);
        }
        lock.upsert(LockedPlugin {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            kind,
            source: self.registry.source_id.clone(),
            sha256: resolved.artifact.sha256.clone(),
            api: manifest.api.clone(),
            grants: grants.clone(),
            // Who first asked for it stays on record through later updates.
            requested_by: match &previous {
                Some(p) => p.requested_by.clone(),
                None => options.requested.as_ref().map(|(by, _)| by.clone()),
            },
            unsigned: signed_by.is_none(),
        });
        let changed = previous.as_ref().is_none_or(|p| {
            p.sha256 != resolved.artifact.sha256
                || p.kind != kind
                || p.grants != grants
                || p.source != self.registry.source_id
                || p.unsigned != signed_by.is_none()
        });
        Ok(Installed {
            name: manifest.name.clone(),
            version: manifest.version.to_string(),
            kind,
            sha256: resolved.artifact.sha256,
            source: self.registry.source_id.clone(),
            grants,
            permissions: manifest.permissions,
            changed,
            commit: None,
            dependencies,
            signed_by: signed_by.clone(),
        })
    }
}

/// Copy the artifact into the store after checking its size and hash, load it once
/// (compiling WASM into the cache), and cross-check what it says about itself
/// against the index. On any failure nothing is left in the store.
pub fn fetch_into_store(
    home: &Home,
    registry: &Registry,
    name: &str,
    resolved: &Resolved,
) -> anyhow::Result<Manifest> {
    let store = &Store::new(home.store());
    let artifact = &resolved.artifact;
    // Content-addressed: an entry already in the store under the digest the (verified)
    // index names holds exactly the promised bytes — checked against that digest here
    // (stamp-cached, so a changed file is hashed again) — and was loaded and
    // cross-checked when it arrived. Installing it is linking it; the registry's copy
    // is not read or hashed again.
    if store.contains(&artifact.sha256, resolved.kind) {
        if let (Ok(_), Ok(manifest)) = (
            store.verified_artifact(&artifact.sha256, resolved.kind),
            store.manifest(&artifact.sha256),
        ) {
            if manifest.name == name && manifest.version == resolved.version.version {
                return Ok(manifest);
            }
        }
    }
    let source = registry.artifact_path(artifact)?;
    // Never more than the index promised: a registry file that is a link to
    // /dev/zero, a FIFO or simply larger is refused before it can fill memory.
    let limit = artifact.size.min(crate::store::MAX_ARTIFACT);
    let bytes = crate::confined::read_file(&source, limit).with_context(|| {
        format!(
            "cannot read {name}'s artifact {} (the index says {} bytes); the registry is incomplete or damaged",
            source.display(),
            artifact.size
        )
    })?;
    let what = format!("{name} {} ({})", resolved.version.version, resolved.kind);
    let existed = store.contains(&artifact.sha256, resolved.kind);
    let path = store.stage(
        &what,
        &bytes,
        &artifact.sha256,
        artifact.size,
        resolved.kind,
    )?;
    if existed {
        // Verified bytes already in the store were loaded and checked when they first
        // arrived (and their WASM compiled into the cache); reuse that manifest.
        if let Ok(manifest) = store.manifest(&artifact.sha256) {
            if manifest.name == name && manifest.version == resolved.version.version {
                return Ok(manifest);
            }
        }
    }
    let checked = check_artifact(home, &path, name, resolved);
    if checked.is_err() && !existed {
        if let Some(entry) = path.parent() {
            let _ = std::fs::remove_dir_all(entry);
        }
    }
    let manifest = checked?;
    store.commit(&artifact.sha256, &manifest)?;
    Ok(manifest)
}

fn check_artifact(
    home: &Home,
    path: &Path,
    name: &str,
    resolved: &Resolved,
) -> anyhow::Result<Manifest> {
    let version = &resolved.version.version;
    let options = LoadOptions {
        limits: resolved.version.manifest.limits,
        wasm_cache: Some(wasm_cache(home)?),
        // The bytes at `path` were checked against this digest when staged.
        digest: Some(resolved.artifact.sha256.clone()),
    };
    let mut instance =
        loader::load(resolved.kind, path, &options, loader::no_services()).map_err(|e| {
            anyhow::anyhow!("{name} {version} cannot be loaded: {e}; nothing was installed")
        })?;
    let described = loader::describe(instance.as_mut())
        .map_err(|e| anyhow::anyhow!("{name} {version}: {e}; nothing was installed"))?;
    let m = described.manifest;
    if m.name != name || &m.version != version {
        bail!(
                "the registry lists {name} {version}, but the artifact says it is {} {}; nothing was installed (the registry index is wrong)",
                m.name,
                m.version
            );
    }
    let api = api_version();
    if !m.api.matches(&api) {
        bail!(
                "{name} {version} needs datum-plugin-api {}, but this datum provides {api}; nothing was installed. Install a version built for API {}.x, or upgrade datum",
                m.api,
                api.major
            );
    }
    Ok(m)
}

/// Remove a plugin from the workshop's lock (the shared store keeps the bytes).
pub fn remove(
    home: &Home,
    workshop: &Workshop,
    name: &str,
    force: bool,
) -> anyhow::Result<(LockedPlugin, Option<String>)> {
    let mut lock = workshop.lock()?;
    let store = Store::new(home.store());
    if !force {
        for other in lock.plugins.iter().filter(|p| p.name != name) {
            if let Ok(m) = store.manifest(&other.sha256) {
                if m.requires.contains_key(name) {
                    bail!(
                        "{} requires {name}; remove {} first, or pass --force",
                        other.name,
                        other.name
                    );
                }
            }
        }
    }
    let removed = lock.remove(name).ok_or_else(|| not_installed(name))?;
    let line = format!("forgot {} {}", removed.name, removed.version);
    let commit = workshop.record_lock_change(
        &lock,
        &crate::workshop::LockChange {
            journal: vec![line.clone()],
            trail: vec![format!("plugin remove {}", removed.name)],
            commit: Some(line),
        },
    )?;
    Ok((removed, commit))
}

/// Grants for a (re)installed plugin: everything its manifest asks for minus `deny`,
/// plus grants added by hand earlier (`datum plugin grant`) that are still meaningful.
fn grants_for(
    manifest: &Manifest,
    previous: Option<&LockedPlugin>,
    deny: &[Grant],
) -> anyhow::Result<Vec<Grant>> {
    let mut grants = Vec::new();
    for p in &manifest.permissions {
        // Validated with the manifest; checked again because the bytes came from a
        // registry.
        let g = p.as_grant().with_context(|| {
            format!(
                "{} {} asks for a permission that cannot be granted",
                manifest.name, manifest.version
            )
        })?;
        if !deny.contains(&g) {
            grants.push(g);
        }
    }
    if let Some(p) = previous {
        grants.extend(p.grants.iter().filter(|g| !deny.contains(g)).cloned());
    }
    grants.sort();
    grants.dedup();
    Ok(grants)
}

/// What `datum plugin grant|revoke` changed.
#[derive(Debug, Clone, Serialize)]
pub struct GrantChange {
    pub plugin: String,
    pub grants: Vec<Grant>,
    pub changed: bool,
    pub commit: Option<String>,
}

/// Add (or, with `add = false`, take away) one grant of an installed plugin, recorded
/// like every change to the plugin set.
pub fn set_grant(
    workshop: &Workshop,
    name: &str,
    grant: &Grant,
    add: bool,
) -> anyhow::Result<GrantChange> {
    let mut lock = workshop.lock()?;
    let plugin = lock.get_mut(name).ok_or_else(|| not_installed(name))?;
    let had = plugin.grants.contains(grant);
    if add && !had {
        plugin.grants.push(grant.clone());
        plugin.grants.sort();
    } else if !add {
        plugin.grants.retain(|g| g != grant);
    }
    let changed = add != had;
    let grants = plugin.grants.clone();
    let mut commit = None;
    if changed {
        let verb = if add { "grant" } else { "revoke" };
        let line = format!(
            "{} {name} `{grant}`",
            if add { "granted" } else { "revoked from" }
        );
        commit = workshop.record_lock_change(
            &lock,
            &crate::workshop::LockChange {
                journal: Vec::new(),
                trail: vec![format!("plugin {verb} {name} {grant}")],
                commit: Some(line),
            },
        )?;
    }
    Ok(GrantChange {
        plugin: name.to_owned(),
        grants,
        changed,
        commit,
    })
}

/// One plugin `datum plugin update` moved forward.
#[derive(Debug, Clone, Serialize)]
pub struct Updated {
    pub name: String,
    pub from: String,
    pub to: String,
}

/// Update installed plugins (all, or `name`) to the newest version in the registry
/// within their semver-compatible range, as `cargo update` does. Consent to native code
/// was given at first install and carries over.
pub fn update(
    installer: &Installer<'_>,
    name: Option<&str>,
    locked: bool,
) -> anyhow::Result<Vec<Updated>> {
    let lock = installer.workshop.lock()?;
    let targets: Vec<_> = lock
        .plugins
        .iter()
        .filter(|p| name.is_none_or(|n| n == p.name))
        .cloned()
        .collect();
    if let (Some(n), true) = (name, targets.is_empty()) {
        return Err(not_installed(n));
    }
    let mut updated = Vec::new();
    for p in targets {
        let req = VersionReq::parse(&format!("^{}", p.version))?;
        let newest = installer
            .registry
            .resolve(&p.name, &req, p.kind, &api_version())?;
        if newest.version.version == p.version && newest.artifact.sha256 == p.sha256 {
            continue;
        }
        let spec = PluginSpec {
            name: p.name.clone(),
            req: VersionReq::parse(&format!("={}", newest.version.version))?,
        };
        let options = InstallOptions {
            kind: p.kind,
            locked,
            trust_native: true,
            force: true,
            ..InstallOptions::default()
        };
        let outcome = installer.install(&spec, &options)?;
        updated.push(Updated {
            name: p.name,
            from: p.version.to_string(),
            to: outcome.version,
        });
    }
    Ok(updated)
}

fn not_installed(name: &str) -> anyhow::Error {
    crate::error::fail(
        "not-installed",
        crate::error::Category::NotFound,
        format!("`{name}` is not installed in this workshop"),
        "`datum plugin list` shows what is installed",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_name_and_requirement() {
        let s: PluginSpec = "flux-vm@^0.1".parse().unwrap();
        assert_eq!(s.name, "flux-vm");
        assert!(s.req.matches(&semver::Version::new(0, 1, 3)));
        let any: PluginSpec = "flux-vm".parse().unwrap();
        assert_eq!(any.req, VersionReq::STAR);
        assert!("Flux".parse::<PluginSpec>().is_err());
        assert!("flux-vm@banana"
            .parse::<PluginSpec>()
            .unwrap_err()
            .contains("NAME@1.2"));
    }
}
