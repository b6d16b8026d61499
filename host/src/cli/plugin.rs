//! `datum plugin …`: search, info, install, remove, list, update, grant, revoke; and
//! for authors new, test, pack (`crate::author`).

use anyhow::Context as _;
use serde_json::json;

use super::output::table;
use super::Context;
use crate::install::{InstallOptions, Installed, Installer, PluginSpec};
use crate::loader::api_version;
use crate::loader::Kind;
use datum_plugin_api::Grant;

#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// Search the registry by name, description or ability.
    Search {
        /// Words to look for (all plugins when omitted).
        query: Option<String>,
    },
    /// Show a plugin's manifest from the registry: versions, commands, permissions.
    Info {
        /// NAME or NAME@VERSION-REQ.
        spec: PluginSpec,
    },
    /// Install plugins into the workshop (resolve, verify, grant, lock, commit).
    Install {
        /// NAME or NAME@VERSION-REQ; none with --locked installs everything the lock pins.
        specs: Vec<PluginSpec>,
        /// Which build to install: sandboxed WASM (default; native when a plugin ships
        /// only a native build) or trusted native.
        #[arg(long, value_enum)]
        kind: Option<Kind>,
        /// Refuse to change datum.lock; fetch exactly what it pins.
        #[arg(long)]
        locked: bool,
        /// Consent to run a native plugin from an untrusted registry in-process.
        #[arg(long)]
        trust_native: bool,
        /// Do not grant this permission (repeatable), e.g. `--deny kv`.
        #[arg(long, value_name = "GRANT")]
        deny: Vec<Grant>,
        /// Reinstall even if the lock already pins this exact artifact.
        #[arg(long)]
        force: bool,
        /// Use a registry that is not signed (nothing proves its plugins are its
        /// owner's); recorded in datum.lock.
        #[arg(long)]
        allow_unsigned: bool,
    },
    /// Remove a plugin from the workshop.
    Remove {
        name: String,
        /// Remove even if another installed plugin requires it.
        #[arg(long)]
        force: bool,
    },
    /// List the workshop's installed plugins.
    List,
    /// Move plugins to the newest semver-compatible version.
    Update {
        /// Only this plugin (default: all).
        name: Option<String>,
        #[arg(long)]
        locked: bool,
    },
    /// Grant a permission to an installed plugin (`kv`, `fs-read:PATH`, `fs-write:PATH`, `call:PLUGIN`).
    Grant { name: String, grant: Grant },
    /// Take a permission back.
    Revoke { name: String, grant: Grant },
    /// Start a plugin: a crate (outside any workshop) that builds and passes its tests at once.
    New {
        /// The plugin's name (a-z, 0-9, '-'); its commands start with it.
        name: String,
        /// Which builds it ships: wasm (sandboxed, the default), native, or both.
        #[arg(long, value_enum, default_value = "wasm")]
        kind: crate::author::Kinds,
        /// Where to write it (default ./NAME; must be missing or empty).
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
        /// Depend on a local datum-plugin-api checkout (default: the one this datum
        /// carries, else crates.io).
        #[arg(long, value_name = "DIR")]
        api_path: Option<std::path::PathBuf>,
    },
    /// Build a plugin crate, load it through the real loaders with real grants, and run
    /// every manifest example as a golden test (plus probes every plugin must survive).
    Test {
        /// The plugin crate (default: the current directory).
        dir: Option<std::path::PathBuf>,
        /// Only this build (default: the kinds its Cargo.toml declares).
        #[arg(long, value_enum)]
        kind: Option<Kind>,
    },
    /// Release builds of a plugin crate, published with its README into a folder
    /// registry ready to serve (`datum plugin install NAME --registry DIR`).
    Pack {
        /// The plugin crate (default: the current directory).
        dir: Option<std::path::PathBuf>,
        /// The registry folder (default: DIR/registry).
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
        /// Only this build (default: the kinds its Cargo.toml declares).
        #[arg(long, value_enum)]
        kind: Option<Kind>,
        /// Sign the registry with this secret key (`datum registry keygen`).
        #[arg(long, value_name = "KEY")]
        sign: Option<std::path::PathBuf>,
    },
}

pub fn run(ctx: &Context, cmd: PluginCommand) -> anyhow::Result<()> {
    match cmd {
        PluginCommand::Search { query } => search(ctx, query.as_deref()),
        PluginCommand::Info { spec } => info(ctx, &spec),
        PluginCommand::Install {
            specs,
            kind,
            locked,
            trust_native,
            deny,
            force,
            allow_unsigned,
        } => {
            let options = InstallOptions {
                kind: kind.unwrap_or(Kind::Wasm),
                native_fallback: kind.is_none(),
                trust_native,
                deny,
                locked,
                force,
                commit: true,
                requested: None,
                allow_unsigned,
            };
            install(ctx, specs, &options)
        }
        PluginCommand::Remove { name, force } => remove(ctx, &name, force),
        PluginCommand::List => list(ctx),
        PluginCommand::Update { name, locked } => update(ctx, name.as_deref(), locked),
        PluginCommand::Grant { name, grant } => change_grant(ctx, &name, &grant, true),
        PluginCommand::Revoke { name, grant } => change_grant(ctx, &name, &grant, false),
        PluginCommand::New {
            name,
            kind,
            dir,
            api_path,
        } => new_plugin(ctx, &name, kind, dir.as_deref(), api_path.as_deref()),
        PluginCommand::Test { dir, kind } => test_plugin(ctx, dir, kind),
        PluginCommand::Pack {
            dir,
            out,
            kind,
            sign,
        } => pack_plugin(ctx, dir, out, kind, sign),
    }
}

fn new_plugin(
    ctx: &Context,
    name: &str,
    kind: crate::author::Kinds,
    dir: Option<&std::path::Path>,
    api_path: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let made = crate::author::scaffold(name, kind, dir, api_path)?;
    ctx.reporter.emit(&made, || {
        format!(
            "created plugin `{}` in {} (datum-plugin-api: {})\n  {}\nnext: cd {} && cargo test && datum plugin test",
            made.name,
            made.dir.display(),
            made.api,
            made.files.join("\n  "),
            made.dir.display()
        )
    })
}

fn test_plugin(
    ctx: &Context,
    dir: Option<std::path::PathBuf>,
    kind: Option<Kind>,
) -> anyhow::Result<()> {
    let krate = crate::author::Crate::open(&dir.unwrap_or_else(|| ".".into()))?;
    let kinds = kind.map_or_else(|| krate.kinds.clone(), |k| vec![k]);
    let home = ctx.home()?;
    let say = |line: &str| ctx.reporter.note(line);
    let report = crate::author::test(&home, &krate, &kinds, &say)?;
    let failed = report.failed;
    ctx.reporter.emit(&report, || {
        let mut s = format!(
            "running {} checks for {} {}\n",
            report.checks.len(),
            report.plugin,
            report.version
        );
        for c in &report.checks {
            s.push_str(&format!(
                "check {} ... {}\n",
                c.name,
                if c.passed { "ok" } else { "FAILED" }
            ));
        }
        for c in report.checks.iter().filter(|c| !c.passed) {
            s.push_str(&format!(
                "\n---- {} ----\n{}\n",
                c.name,
                c.detail.as_deref().unwrap_or("")
            ));
        }
        s.push_str(&format!(
            "\ntest result: {}. {} passed; {} failed; {} skipped; built in {:.1}s, ran in {:.1}s",
            if report.failed == 0 { "ok" } else { "FAILED" },
            report.passed,
            report.failed,
            report.skipped,
            report.build_ms as f64 / 1000.0,
            report.run_ms as f64 / 1000.0
        ));
        s
    })?;
    if failed > 0 {
        return Err(super::Reported(format!("{failed} check(s) failed")).into());
    }
    Ok(())
}

fn pack_plugin(
    ctx: &Context,
    dir: Option<std::path::PathBuf>,
    out: Option<std::path::PathBuf>,
    kind: Option<Kind>,
    sign: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let dir = dir.unwrap_or_else(|| ".".into());
    let krate = crate::author::Crate::open(&dir)?;
    let kinds = kind.map_or_else(|| krate.kinds.clone(), |k| vec![k]);
    let out = out.unwrap_or_else(|| dir.join("registry"));
    let packed = crate::author::pack(&krate, &kinds, &out)?;
    let signed = match &sign {
        Some(key) => Some(crate::registry::signing::sign(&out, key, 90)?),
        None => None,
    };
    ctx.reporter.emit(&packed, || {
        let mut s = String::new();
        for p in &packed.published {
            s.push_str(&format!(
                "packed {} {} ({}, {}, {} bytes, sha256 {})\n",
                p.name, p.version, p.kind, p.target, p.artifact.size, p.artifact.sha256
            ));
        }
        match &signed {
            Some(snap) => s.push_str(&format!(
                "signed snapshot {} of registry `{}`\n",
                snap.version, snap.registry
            )),
            None => {
                s.push_str("not signed: installing needs --allow-unsigned (sign with --sign KEY)\n")
            }
        }
        s.push_str(&format!(
            "registry: {} — install with `datum plugin install {} --registry {}`",
            packed.registry.display(),
            packed.published.first().map_or("NAME", |p| p.name.as_str()),
            packed.registry.display()
        ));
        s
    })
}

fn search(ctx: &Context, query: Option<&str>) -> anyhow::Result<()> {
    let home = ctx.home()?;
    let registry = ctx.open_registry(&home)?;
    let words: Vec<String> = query
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    let mut hits = Vec::new();
    // One broken index file is reported and skipped; the rest of the registry is searched.
    let mut broken = Vec::new();
    for name in registry.names()? {
        let index = match registry.index(&name) {
            Ok(i) => i,
            Err(e) => {
                ctx.reporter.note(&format!("warning: skipped {name}: {e}"));
                broken.push(json!({ "name": name, "error": e.to_string() }));
                continue;
            }
        };
        let Some(latest) = index
            .versions
            .iter()
            .filter(|v| !v.yanked)
            .max_by(|a, b| a.version.cmp(&b.version))
        else {
            continue;
        };
        let m = &latest.manifest;
        let haystack =
            format!("{} {} {}", m.name, m.description, m.provides.join(" ")).to_lowercase();
        if words.iter().all(|w| haystack.contains(w)) {
            let kinds: Vec<&str> = [Kind::Wasm, Kind::Native]
                .into_iter()
                .filter(|k| latest.artifacts.contains_key(k.target()))
                .map(|k| if k == Kind::Wasm { "wasm" } else { "native" })
                .collect();
            hits.push(json!({
                "name": m.name,
                "version": m.version.to_string(),
                "description": m.description,
                "provides": m.provides,
                "kinds": kinds,
                "compatible": m.api.matches(&api_version()),
            }));
        }
    }
    let data = json!({ "registry": registry.source_id, "plugins": hits, "skipped": broken });
    ctx.reporter.emit(&data, || {
        if hits.is_empty() {
            return format!(
                "no plugin matches `{}` in {}",
                query.unwrap_or_default(),
                registry.source_id
            );
        }
        let rows = hits
            .iter()
            .map(|h| {
                vec![
                    h["name"].as_str().unwrap_or_default().to_owned(),
                    h["version"].as_str().unwrap_or_default().to_owned(),
                    h["kinds"]
                        .as_array()
                        .map(|k| {
                            k.iter()
                                .filter_map(|x| x.as_str())
                                .collect::<Vec<_>>()
                                .join("+")
                        })
                        .unwrap_or_default(),
                    h["description"].as_str().unwrap_or_default().to_owned(),
                ]
            })
            .collect();
        table(&["name", "version", "kinds", "description"], rows)
    })
}

fn info(ctx: &Context, spec: &PluginSpec) -> anyhow::Result<()> {
    let home = ctx.home()?;
    let registry = ctx.open_registry(&home)?;
    let index = registry.index(&spec.name)?;
    let mut versions: Vec<_> = index
        .versions
        .iter()
        .filter(|v| spec.req.matches(&v.version))
        .collect();
    versions.sort_by(|a, b| b.version.cmp(&a.version));
    let latest = versions
        .first()
        .with_context(|| format!("`{}` has no version matching `{}`", spec.name, spec.req))?;
    let m = &latest.manifest;
    let data = json!({
        "manifest": m,
        "versions": versions.iter().map(|v| json!({
            "version": v.version.to_string(),
            "yanked": v.yanked,
            "api": v.manifest.api.to_string(),
            "artifacts": v.artifacts,
        })).collect::<Vec<_>>(),
        "registry": registry.source_id,
    });
    ctx.reporter.emit(&data, || {
        let mut s = format!("{} {} — {}\n", m.name, m.version, m.description);
        s.push_str(&format!(
            "license   {}\napi       datum-plugin-api {} (this datum: {})\n",
            m.license,
            m.api,
            api_version()
        ));
        if !m.provides.is_empty() {
            s.push_str(&format!("provides  {}\n", m.provides.join(", ")));
        }
        s.push_str(&format!(
            "limits    {} MiB memory, {} ms per call, {} KiB output\n",
            m.limits.memory_mb, m.limits.timeout_ms, m.limits.max_output_kb
        ));
        s.push_str(&format!(
            "versions  {}\n",
            versions
                .iter()
                .map(|v| v.version.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        s.push_str(&format!(
            "builds    {}\n",
            latest
                .artifacts
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
        if m.permissions.is_empty() {
            s.push_str("permissions none\n");
        } else {
            s.push_str("permissions\n");
            for p in &m.permissions {
                s.push_str(&format!("  {:<24} {}\n", p.grant(), p.reason));
            }
        }
        s.push_str("commands\n");
        for c in &m.commands {
            s.push_str(&format!("  datum {:<20} {}\n", c.path, c.summary));
            for a in &c.args {
                let flag = if a.positional {
                    a.name.to_uppercase()
                } else {
                    format!("--{}", a.name)
                };
                s.push_str(&format!("      {flag:<18} {}\n", a.help));
            }
            for e in &c.examples {
                s.push_str(&format!("    e.g. {}  →  {}\n", e.run, e.output));
            }
        }
        s
    })
}

fn install(ctx: &Context, specs: Vec<PluginSpec>, options: &InstallOptions) -> anyhow::Result<()> {
    let home = ctx.home()?;
    let workshop = ctx.workshop()?;
    let registry = ctx.open_registry(&home)?;
    let installer = Installer {
        home: &home,
        workshop: &workshop,
        registry: &registry,
    };
    let specs = if specs.is_empty() {
        if !options.locked {
            anyhow::bail!("name a plugin to install (e.g. `datum plugin install flux-vm`), or pass --locked to install everything datum.lock pins");
        }
        workshop
            .lock()?
            .plugins
            .iter()
            .map(|p| PluginSpec {
                name: p.name.clone(),
                req: semver::VersionReq::STAR,
            })
            .collect()
    } else {
        specs
    };
    let bar = ctx.reporter.progress(specs.len() as u64, "installing");
    let mut done: Vec<Installed> = Vec::new();
    for spec in &specs {
        bar.set_message(format!("installing {}", spec.name));
        let mut opts = options.clone();
        if options.locked {
            if let Some(p) = workshop.lock()?.get(&spec.name) {
                opts.kind = p.kind;
            }
        }
        done.push(installer.install(spec, &opts)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    ctx.reporter.emit(&json!({ "installed": done }), || {
        let mut s = String::new();
        for i in &done {
            if !i.changed {
                s.push_str(&format!(
                    "{} {} ({}) is already installed\n",
                    i.name, i.version, i.kind
                ));
                continue;
            }
            s.push_str(&format!(
                "learned {} {} ({}) from {}\n",
                i.name, i.version, i.kind, i.source
            ));
            for p in &i.permissions {
                let granted = if p.as_grant().is_ok_and(|g| i.grants.contains(&g)) {
                    "granted"
                } else {
                    "denied"
                };
                s.push_str(&format!("  {granted} {:<22} {}\n", p.grant(), p.reason));
            }
            for d in &i.dependencies {
                s.push_str(&format!(
                    "  + dependency {} {} ({})\n",
                    d.name, d.version, d.kind
                ));
            }
            if let Some(c) = &i.commit {
                s.push_str(&format!("  committed {}\n", &c[..c.len().min(12)]));
            }
        }
        s
    })
}

fn remove(ctx: &Context, name: &str, force: bool) -> anyhow::Result<()> {
    let home = ctx.home()?;
    let workshop = ctx.workshop()?;
    let (removed, commit) = crate::install::remove(&home, &workshop, name, force)?;
    ctx.reporter.emit(
        &json!({ "removed": removed.name, "version": removed.version.to_string(), "commit": commit }),
        || format!("forgot {} {}", removed.name, removed.version),
    )
}

fn list(ctx: &Context) -> anyhow::Result<()> {
    let workshop = ctx.workshop()?;
    let lock = workshop.lock()?;
    ctx.reporter.emit(&json!({ "plugins": lock.plugins }), || {
        if lock.plugins.is_empty() {
            return "no plugins installed; try `datum plugin search`".to_owned();
        }
        let rows = lock
            .plugins
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    p.version.to_string(),
                    p.kind.to_string(),
                    if p.grants.is_empty() {
                        "-".into()
                    } else {
                        p.grants
                            .iter()
                            .map(Grant::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                    p.source.clone(),
                ]
            })
            .collect();
        table(&["name", "version", "kind", "grants", "source"], rows)
    })
}

fn update(ctx: &Context, name: Option<&str>, locked: bool) -> anyhow::Result<()> {
    let home = ctx.home()?;
    let workshop = ctx.workshop()?;
    let registry = ctx.open_registry(&home)?;
    let installer = Installer {
        home: &home,
        workshop: &workshop,
        registry: &registry,
    };
    let updated = crate::install::update(&installer, name, locked)?;
    ctx.reporter.emit(&json!({ "updated": updated }), || {
        if updated.is_empty() {
            "everything is up to date".to_owned()
        } else {
            updated
                .iter()
                .map(|u| format!("updated {} {} → {}", u.name, u.from, u.to))
                .collect::<Vec<_>>()
                .join("\n")
        }
    })
}

fn change_grant(ctx: &Context, name: &str, grant: &Grant, add: bool) -> anyhow::Result<()> {
    let workshop = ctx.workshop()?;
    let change = crate::install::set_grant(&workshop, name, grant, add)?;
    ctx.reporter.emit(&change, || match (add, change.changed) {
        (true, true) => format!("granted {name} `{grant}`"),
        (true, false) => format!("{name} already has `{grant}`"),
        (false, true) => format!("revoked `{grant}` from {name}"),
        (false, false) => format!("{name} did not have `{grant}`"),
    })
}
