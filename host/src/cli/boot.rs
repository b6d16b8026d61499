//! `datum boot`: create or re-check a workshop and install its default plugins.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use serde_json::json;

use super::Context;
use crate::install::{InstallOptions, Installer, PluginSpec};
use crate::loader::Kind;
use crate::workshop::{Staged, Workshop};

#[derive(Debug, clap::Args)]
pub struct BootArgs {
    /// The agent's name (default: the workshop folder's name).
    #[arg(long)]
    pub name: Option<String>,
    /// The agent's role, recorded in .superagent/agent.toml.
    #[arg(long, default_value = "generalist")]
    pub role: String,
    /// Which build of the default plugins to install.
    #[arg(long, value_enum, default_value_t = Kind::Wasm)]
    pub kind: Kind,
    /// Create the workshop without installing any plugin.
    #[arg(long)]
    pub no_plugins: bool,
    /// Install the default plugins from an unsigned registry (recorded in datum.lock).
    #[arg(long)]
    pub allow_unsigned: bool,
    /// Register this agent with the Keeper at URL (e.g. http://127.0.0.1:7742); its
    /// token is stored owner-only in .superagent/keeper.json, never committed.
    #[arg(long, value_name = "URL", conflicts_with = "keeper_home")]
    pub keeper: Option<String>,
    /// A one-time enrolment code from the Keeper's operator (`datum keeper enroll NAME`),
    /// needed when the Keeper's policy grants this agent secrets.
    #[arg(long, value_name = "CODE", requires = "keeper")]
    pub enrol: Option<String>,
    /// Use the standalone Keeper vault in DIR (no server): secrets are read in process,
    /// with the master password from DATUM_KEEPER_PASSWORD_FILE or a prompt.
    #[arg(long, value_name = "DIR")]
    pub keeper_home: Option<PathBuf>,
}

pub fn run(ctx: &Context, args: BootArgs) -> anyhow::Result<()> {
    let (data, text) = boot(ctx, args)?;
    ctx.reporter.emit(&data, || text)
}

/// Boot and return the report (JSON data and its text), for `boot` and `onboard`.
pub fn boot(ctx: &Context, args: BootArgs) -> anyhow::Result<(serde_json::Value, String)> {
    let started = Instant::now();
    let dir = match &ctx.workshop {
        Some(d) => d.clone(),
        None => match std::env::var_os("DATUM_WORKSHOP").filter(|d| !d.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => std::env::current_dir().context("cannot read the current directory")?,
        },
    };
    let home = ctx.home()?;
    // Check everything outside the folder first, so a missing registry or an
    // unreachable Keeper creates nothing.
    let registry = if args.no_plugins {
        None
    } else {
        Some(ctx.open_registry(&home)?)
    };
    if let Some(url) = &args.keeper {
        crate::keeper::health(url)?;
    }
    let keeper_home = match &args.keeper_home {
        Some(h) => {
            let h = std::fs::canonicalize(h).with_context(|| format!("--keeper-home {}: no such folder; create it with `datum keeper init --home {}`", h.display(), h.display()))?;
            crate::keeper::check_standalone(&h)?;
            Some(h)
        }
        None => None,
    };
    let name = match &args.name {
        Some(n) => n.clone(),
        None => default_name(&dir),
    };
    if !datum_plugin_api::valid_name(&name) {
        anyhow::bail!(
            "agent name `{name}` must be a-z, 0-9 and '-', starting with a letter; pass --name"
        );
    }
    let existed = dir.join(crate::workshop::AGENT_FILE).is_file();
    if existed {
        // A workshop's agent keeps its name: a different --name is a mistake, not a rename.
        let current = Workshop::open(&dir)?.agent()?;
        if args.name.as_ref().is_some_and(|n| *n != current.agent.name) {
            anyhow::bail!(
                "{} is already the workshop of agent `{}`; an agent keeps its name. Drop --name to re-boot it, or boot a new folder for `{}`",
                dir.display(),
                current.agent.name,
                name
            );
        }
    }
    // A new folder is built beside its place and moved in whole when everything below
    // has worked (one flush for all of it); an existing one is booted in place.
    let staged = if existed { None } else { Staged::begin(&dir)? };
    let build_dir = staged.as_ref().map_or(dir.as_path(), |s| s.path());
    let (workshop, created) = Workshop::create(build_dir, &name, &args.role)?;
    let agent = workshop.agent()?;

    let mut installed = Vec::new();
    if let Some(registry) = &registry {
        let mut wanted = agent.plugins.default.clone();
        if wanted.is_empty() {
            wanted = registry.config.default_plugins.clone();
        }
        let lock = workshop.lock()?;
        let bar = ctx
            .reporter
            .progress(wanted.len() as u64, "installing default plugins");
        let installer = Installer {
            home: &home,
            workshop: &workshop,
            registry,
        };
        // What the lock already pins stays; the rest is installed as one change.
        // `installed` keeps the order of `wanted`: a slot per plugin, filled below.
        let mut missing = Vec::new();
        let mut slots = Vec::new();
        for plugin in &wanted {
            let spec: PluginSpec = plugin.parse().map_err(anyhow::Error::msg)?;
            match lock.get(&spec.name) {
                Some(p) => {
                    slots.push(Some(json!({"name": p.name, "version": p.version.to_string(), "kind": p.kind, "changed": false})));
                    bar.inc(1);
                }
                None => {
                    slots.push(None);
                    missing.push(spec);
                }
            }
        }
        if !missing.is_empty() {
            let options = InstallOptions {
                kind: args.kind,
                commit: false,
                allow_unsigned: args.allow_unsigned,
                ..InstallOptions::default()
            };
            let mut started = false;
            let outcomes = installer
                .install_many(&missing, &options, &mut |spec| {
                    if std::mem::replace(&mut started, true) {
                        bar.inc(1);
                    }
                    bar.set_message(format!("installing {}", spec.name));
                })
                .with_context(|| {
                    let names: Vec<&str> = missing.iter().map(|s| s.name.as_str()).collect();
                    format!("installing the default plugins {}", names.join(", "))
                })?;
            let mut outcomes = outcomes.into_iter();
            for slot in slots.iter_mut().filter(|s| s.is_none()) {
                *slot = outcomes.next().map(|o| json!({"name": o.name, "version": o.version, "kind": o.kind, "changed": o.changed}));
            }
            bar.inc(1);
        }
        installed.extend(slots.into_iter().flatten());
        bar.finish_and_clear();
    }
    let mut keeper = None;
    if let Some(url) = &args.keeper {
        let previous = match crate::keeper::load(workshop.root()) {
            Ok(crate::keeper::KeeperConfig::Served {
                url: u,
                agent: a,
                token,
            }) if &u == url && a == agent.agent.name => Some(token),
            _ => None,
        };
        let token = crate::keeper::register(
            url,
            &agent.agent.name,
            previous.as_deref(),
            args.enrol.as_deref(),
        )
        .with_context(|| format!("registering {} with the Keeper at {url}", agent.agent.name))?;
        let config = crate::keeper::KeeperConfig::Served {
            url: url.clone(),
            agent: agent.agent.name.clone(),
            token,
        };
        crate::keeper::save(workshop.root(), &config)?;
        workshop.journal(&format!("registered with the Keeper at {url}"))?;
        keeper = Some(json!({ "mode": "served", "url": url, "agent": agent.agent.name }));
    }
    if let Some(home) = keeper_home {
        let config = crate::keeper::KeeperConfig::Standalone {
            home: home.clone(),
            agent: agent.agent.name.clone(),
        };
        crate::keeper::save(workshop.root(), &config)?;
        workshop.journal(&format!(
            "uses the standalone Keeper vault in {}",
            home.display()
        ))?;
        keeper = Some(json!({ "mode": "standalone", "home": home, "agent": agent.agent.name }));
    }
    let profile = write_capability_file(&ctx.home()?, &workshop, &agent)?;
    let verb = if existed { "re-booted" } else { "booted" };
    workshop.journal(&format!(
        "{verb} {} ({}) with datum {}",
        agent.agent.name,
        agent.agent.role,
        env!("CARGO_PKG_VERSION")
    ))?;
    workshop.trail(&format!("boot {}", agent.agent.name))?;
    let commit = workshop.commit(&format!("boot {}", agent.agent.name))?;
    let root = match staged {
        Some(staged) => staged.finish()?,
        None => workshop.root().to_owned(),
    };
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;

    let data = json!({
        "workshop": root,
        "agent": agent.agent.name,
        "role": agent.agent.role,
        "created": !existed,
        "written": created.written,
        "kept": created.kept.len(),
        "plugins": installed,
        "commit": commit,
        "keeper": keeper,
        "capability_file": profile,
        "elapsed_ms": elapsed_ms,
    });
    let text = {
        let mut s = format!(
            "{verb} {} ({}) in {}\n",
            agent.agent.name,
            agent.agent.role,
            root.display()
        );
        if existed {
            s.push_str(&format!(
                "kept {} existing files, added {}\n",
                created.kept.len(),
                created.written.len()
            ));
        }
        for p in &installed {
            s.push_str(&format!(
                "  plugin {} {} ({})\n",
                p["name"].as_str().unwrap_or("?"),
                p["version"].as_str().unwrap_or("?"),
                p["kind"].as_str().unwrap_or("?")
            ));
        }
        s.push_str("next: `datum status`, `datum flux run --bytecode 550500000055070000001000`");
        s
    };
    Ok((data, text))
}

/// Write a minimal CAPABILITY.toml for a new agent: its name and role, and what its
/// installed plugins provide as intrinsic abilities, claimed but not yet proven
/// (confidence 0.5; `learn` raises it with evidence). An existing file is the agent's
/// own and is never touched. Returns whether it was written.
fn write_capability_file(
    home: &crate::paths::Home,
    workshop: &Workshop,
    agent: &crate::workshop::AgentFile,
) -> anyhow::Result<bool> {
    let folder = workshop.folder()?;
    if folder.exists(std::path::Path::new(capability::FILE_NAME)) {
        return Ok(false);
    }
    let runtime = crate::runtime::Runtime::open(home.clone(), workshop.clone())?;
    let mut abilities = Vec::new();
    for installed in runtime.installed() {
        for ability in &installed.manifest.provides {
            abilities.push((
                ability.clone(),
                capability::Capability::new(0.5, capability::Source::Intrinsic),
            ));
        }
    }
    let role = Some(agent.agent.role.clone()).filter(|r| !r.is_empty());
    let file = capability::CapabilityFile::new(
        &capability::Agent {
            name: agent.agent.name.clone(),
            role,
            ..capability::Agent::default()
        },
        &abilities,
    );
    folder
        .write(
            std::path::Path::new(capability::FILE_NAME),
            file.to_string().as_bytes(),
        )
        .with_context(|| format!("cannot write {}", capability::FILE_NAME))?;
    Ok(true)
}

/// A valid agent name from a folder name: lower-cased, other characters become '-'.
fn default_name(dir: &std::path::Path) -> String {
    let base = std::fs::canonicalize(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let mut name: String = base
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    name = name.trim_matches('-').to_owned();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name = format!("agent-{name}");
    }
    name.truncate(64);
    name.trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_become_agent_names() {
        assert_eq!(
            default_name(std::path::Path::new("/x/My Agent_2")),
            "my-agent-2"
        );
        assert_eq!(default_name(std::path::Path::new("/x/42")), "agent-42");
    }
}
