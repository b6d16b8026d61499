//! The fleet plugin: find the agents of an organisation (GitHub, or plain git), read
//! their CAPABILITY.toml, draw who is linked to whom, judge repository hygiene, share
//! task boards through git, and audit the fleet's FLUX runtimes.
//!
//! Native tier: it speaks to GitHub and clones repositories itself. What it keeps —
//! mirrors of fleet repositories and board repositories, the capability-file cache —
//! lives under the workshop's `.superagent/cache/fleet/` (never committed); its
//! settings are `.superagent/fleet.toml`, read and written through the host.

mod audit;
pub mod board;
pub mod config;
pub mod error;
pub mod fleet;
pub mod pins;
pub mod scan;
pub mod source;
pub mod tasks;
pub mod topology;

use std::collections::BTreeMap;
use std::path::PathBuf;

use datum_plugin_api::{export_plugin, Format, Host, Output, Plugin, PluginError, Request};
use serde_json::{json, Value};

use config::{BoardConfig, Config, SourceConfig, SourceKind};
use error::FleetError;
use source::github::{GitHub, DEFAULT_API};
use source::{git::GitFleet, Listing, Source};

pub struct FleetPlugin;

impl Plugin for FleetPlugin {
    const MANIFEST: &'static str = include_str!("../datum-plugin.toml");

    fn invoke(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
        let cx = Cx { request, host };
        let out = match request.command.as_str() {
            "fleet discover" => cx.discover(),
            "fleet capabilities" => cx.capabilities(),
            "fleet who" => cx.who(),
            "fleet lock" => cx.lock(),
            "fleet topology" => cx.topology(),
            "fleet scan" => cx.scan(),
            "fleet sources" => cx.sources(),
            "fleet add-source" => cx.add_source(),
            "fleet remove-source" => cx.remove_source(),
            "fleet add-board" => cx.add_board(),
            "fleet tasks sync" => cx.tasks_sync(),
            "fleet tasks list" => cx.tasks_list(false),
            "fleet tasks mine" => cx.tasks_list(true),
            "fleet tasks claim" => cx.tasks_change(Change::Claim),
            "fleet tasks release" => cx.tasks_change(Change::Release),
            "fleet tasks complete" => cx.tasks_change(Change::Complete),
            "workflow fleet-audit" => audit::fleet_audit(&cx),
            other => return Err(PluginError::unknown_command("fleet", other)),
        };
        out.map_err(PluginError::from)
    }
}

export_plugin!(FleetPlugin);

#[derive(Clone, Copy)]
enum Change {
    Claim,
    Release,
    Complete,
}

/// One call: the request and the host, with the helpers every command shares.
pub(crate) struct Cx<'a> {
    request: &'a Request,
    host: &'a Host<'a>,
}

/// A source chosen for this call.
pub(crate) enum Chosen {
    /// A GitHub organisation, with the file its blob cache is saved in.
    GitHub {
        gh: GitHub,
        cache_file: PathBuf,
    },
    Git(Box<dyn Source>),
}

impl Chosen {
    pub fn source(&mut self) -> &mut dyn Source {
        match self {
            Chosen::GitHub { gh, .. } => gh,
            Chosen::Git(s) => s.as_mut(),
        }
    }

    fn unauthenticated(&self) -> bool {
        matches!(self, Chosen::GitHub { gh, .. } if !gh.authenticated())
    }
}

impl Cx<'_> {
    fn arg(&self, name: &str) -> Option<&str> {
        self.request.arg_str(name).filter(|s| !s.is_empty())
    }

    fn json(&self) -> bool {
        self.request.format == Format::Json
    }

    fn now(&self) -> Result<i64, FleetError> {
        Ok((self.host.now_ms()? / 1000) as i64)
    }

    fn today(&self) -> Result<String, FleetError> {
        Ok(fleet::rfc3339(self.now()?)[..10].to_owned())
    }

    fn agent_name(&self) -> Result<String, FleetError> {
        let name = &self.request.agent.name;
        if !config::valid_name(name) {
            return Err(FleetError::invalid(
                "this workshop's agent has no valid name",
                "run the command inside a workshop booted with `datum boot NAME`",
            ));
        }
        Ok(name.clone())
    }

    /// `.superagent/cache/fleet/` in the workshop (native plugins keep their own cache).
    fn cache(&self) -> Result<PathBuf, FleetError> {
        let root = self.request.workshop.as_deref().ok_or_else(|| {
            FleetError::invalid(
                "no workshop for this call",
                "run the command inside a workshop (or pass --workshop DIR)",
            )
        })?;
        Ok(PathBuf::from(root).join(".superagent/cache/fleet"))
    }

    fn config_text(&self) -> Result<String, FleetError> {
        // No file is an empty configuration; a file that cannot be read is an error
        // (the read itself goes through the host and its grant).
        let root = self.request.workshop.as_deref().unwrap_or(".");
        match std::fs::symlink_metadata(std::path::Path::new(root).join(config::FILE)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            _ => Ok(self.host.read_file(config::FILE)?),
        }
    }

    fn config(&self) -> Result<Config, FleetError> {
        Config::parse(&self.config_text()?)
    }

    /// The source for this call: `--org` (GitHub), `--git` (plain git), `--source NAME`,
    /// else the configured default, else the only configured source.
    pub(crate) fn choose(&self) -> Result<Chosen, FleetError> {
        if let Some(org) = self.arg("org") {
            let api = self.arg("api-url").unwrap_or(DEFAULT_API).to_owned();
            return self.github(org, &api);
        }
        let gits = self.request.arg_strs("git");
        if !gits.is_empty() {
            return self.git(None, &gits);
        }
        let config = self.config()?;
        let name = match self.arg("source") {
            Some(n) => n.to_owned(),
            None => match (&config.default, config.sources.as_slice()) {
                (Some(d), _) => d.clone(),
                (None, [only]) => only.name.clone(),
                (None, []) => {
                    return Err(FleetError::invalid(
                        "no fleet source is configured",
                        "add one (`datum fleet add-source acme --org acme`, or `--git-path DIR`), or pass --org ORG / --git PATH",
                    ))
                }
                (None, _) => {
                    return Err(FleetError::invalid(
                        "several fleet sources are configured and none is the default",
                        "pass --source NAME (`datum fleet sources` lists them), or add one with --default",
                    ))
                }
            },
        };
        let Some(sc) = config.source(&name).cloned() else {
            return Err(FleetError::invalid(
                format!("no fleet source named `{}`", capability::shown(&name)),
                "`datum fleet sources` lists them; `datum fleet add-source` adds one",
            ));
        };
        match sc.kind {
            SourceKind::Github => {
                let org = sc.org.clone().ok_or_else(|| {
                    FleetError::invalid(
                        format!("source `{name}` has no org"),
                        "fix .superagent/fleet.toml",
                    )
                })?;
                self.github(&org, sc.api_url.as_deref().unwrap_or(DEFAULT_API))
            }
            SourceKind::Git => self.git(sc.path.as_deref(), &sc.urls),
        }
    }

    fn git(&self, path: Option<&str>, urls: &[String]) -> Result<Chosen, FleetError> {
        // One existing folder that is not itself a repository is a folder of them.
        let (folder, urls): (Option<String>, Vec<String>) = match (path, urls) {
            (Some(p), u) => (Some(p.to_owned()), u.to_vec()),
            (None, [one])
                if std::path::Path::new(one).is_dir() && git2::Repository::open(one).is_err() =>
            {
                (Some(one.clone()), Vec::new())
            }
            (None, u) => (None, u.to_vec()),
        };
        let source: Box<dyn Source> = match (folder, urls.is_empty()) {
            (Some(f), true) => Box::new(GitFleet::folder(f)),
            (None, false) => Box::new(GitFleet::urls(urls, self.cache()?.join("repos"))),
            (Some(f), false) => Box::new(source::Both(
                GitFleet::folder(f),
                GitFleet::urls(urls, self.cache()?.join("repos")),
            )),
            (None, true) => {
                return Err(FleetError::invalid(
                    "a git source needs a folder or URLs",
                    "pass --git-path DIR or --git-url URL",
                ))
            }
        };
        Ok(Chosen::Git(source))
    }

    fn github(&self, org: &str, api: &str) -> Result<Chosen, FleetError> {
        // The Keeper's policy judges destinations by host name.
        let host = api
            .parse::<http::Uri>()
            .ok()
            .and_then(|u| u.host().map(str::to_owned))
            .unwrap_or_else(|| api.to_owned());
        let token = self.host.secret_if_kept(
            "github-token",
            &format!("fleet discovery of the GitHub organisation {org}"),
            &host,
        )?;
        let mut gh = GitHub::new(org, api, token)?;
        let cache_file = self
            .cache()?
            .join(format!("github-{}.json", cache_key(api, org)));
        if let Ok(text) = std::fs::read_to_string(&cache_file) {
            // A cache that does not read is a miss, never an error.
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                if let Ok(blobs) = serde_json::from_value(v["blobs"].clone()) {
                    gh.cache = blobs;
                }
                if let Ok(etags) = serde_json::from_value(v["etags"].clone()) {
                    gh.etags = etags;
                }
            }
        }
        Ok(Chosen::GitHub { gh, cache_file })
    }

    /// List the chosen source and save what the next listing can reuse.
    pub(crate) fn list(&self, chosen: &mut Chosen) -> Result<Listing, FleetError> {
        let mut listing = chosen.source().list()?;
        if chosen.unauthenticated() {
            listing.warnings.insert(
                0,
                "no Keeper is configured, so GitHub is asked without a token: 60 requests an hour, REST only (register with a Keeper holding `github-token` for more)".into(),
            );
        }
        if let Chosen::GitHub { gh, cache_file } = chosen {
            gh.remember(&listing);
            let v = json!({ "blobs": gh.cache, "etags": gh.etags });
            if let Err(e) = write_atomic(cache_file, v.to_string().as_bytes()) {
                listing
                    .warnings
                    .push(format!("the capability cache was not saved: {e}"));
            }
        }
        Ok(listing)
    }

    fn fleet(&self) -> Result<(fleet::Fleet, i64), FleetError> {
        let mut chosen = self.choose()?;
        let label = chosen.source().label();
        let listing = self.list(&mut chosen)?;
        let now = self.now()?;
        let stale = match self.arg("active-within") {
            Some(span) => parse_days(span)?,
            None => fleet::DEFAULT_STALE_DAYS,
        };
        Ok((fleet::assemble(label, listing, now, stale), now))
    }

    fn discover(&self) -> Result<Output, FleetError> {
        let (fleet, _) = self.fleet()?;
        let filter = self.arg("active-within").is_some();
        let shown: Vec<&fleet::Agent> = fleet
            .agents
            .iter()
            .filter(|a| !filter || (!a.stale && !a.archived))
            .collect();
        let text = fleet::discover_text(&fleet, &shown);
        let mut data = serde_json::to_value(&fleet).unwrap_or(Value::Null);
        data["agents"] = serde_json::to_value(&shown).unwrap_or(Value::Null);
        Ok(Output::new(data).with_text(text.trim_end().to_owned()))
    }

    fn capabilities(&self) -> Result<Output, FleetError> {
        let who = self
            .arg("agent")
            .ok_or_else(|| FleetError::invalid("which agent?", "pass --agent NAME"))?
            .to_owned();
        let (fleet, _) = self.fleet()?;
        let agent = fleet.agent(&who).ok_or_else(|| {
            FleetError::invalid(
                format!("no agent `{}` in {}", capability::shown(&who), fleet.source),
                "`datum fleet discover` lists the agents",
            )
        })?;
        let mut text = fleet::capabilities_toml(agent);
        for w in fleet
            .warnings
            .iter()
            .filter(|w| w.contains(&format!("/{}:", agent.repo)))
        {
            text.push_str(&format!("warning: {w}\n"));
        }
        Ok(
            Output::new(json!({ "agent": agent, "warnings": fleet.warnings }))
                .with_text(text.trim_end().to_owned()),
        )
    }

    /// `fleet lock --agent A`: the exact plugin versions A's datum.lock pins.
    fn lock(&self) -> Result<Output, FleetError> {
        let who = self
            .arg("agent")
            .ok_or_else(|| FleetError::invalid("which agent?", "pass --agent NAME"))?
            .to_owned();
        let mut chosen = self.choose()?;
        let label = chosen.source().label();
        let listing = self.list(&mut chosen)?;
        let now = self.now()?;
        let fleet = fleet::assemble(label, listing.clone(), now, fleet::DEFAULT_STALE_DAYS);
        let agent = fleet.agent(&who).ok_or_else(|| {
            FleetError::invalid(
                format!("no agent `{}` in {}", capability::shown(&who), fleet.source),
                "`datum fleet discover` lists the agents",
            )
        })?;
        let repo = listing
            .repos
            .iter()
            .find(|r| r.name == agent.repo)
            .ok_or_else(|| {
                FleetError::failed(
                    format!("{}'s repository vanished during the listing", agent.name),
                    "run it again",
                )
            })?;
        let text = chosen
            .source()
            .root_file(repo, "datum.lock")?
            .ok_or_else(|| {
                FleetError::invalid(
                    format!(
                        "{}'s repository ({}) has no datum.lock",
                        agent.name,
                        capability::shown(&repo.name)
                    ),
                    "that agent has no pinned plugins to share; learn from the registry instead",
                )
            })?;
        let (pins, warnings) = pins::parse(&text).map_err(|e| {
            FleetError::invalid(
                format!("{}'s datum.lock: {e}", agent.name),
                "ask that agent to fix its lock (`datum plugin install --locked`)",
            )
        })?;
        let mut out = format!(
            "{} ({}) pins {} plugin(s):\n",
            agent.name,
            capability::shown(&repo.name),
            pins.len()
        );
        for p in &pins {
            out.push_str(&format!(
                "  {} {} ({}) sha256:{}\n",
                p.name,
                p.version,
                p.kind,
                &p.sha256[..12]
            ));
        }
        for w in &warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        Ok(Output::new(json!({ "agent": agent.name, "repo": repo.name, "plugins": pins, "warnings": warnings }))
            .with_text(out.trim_end().to_owned()))
    }

    fn who(&self) -> Result<Output, FleetError> {
        let ability = self
            .arg("ability")
            .ok_or_else(|| FleetError::invalid("which ability?", "pass --ability NAME"))?
            .to_owned();
        let (fleet, _) = self.fleet()?;
        let found = fleet.who(&ability);
        let mut text = if found.is_empty() {
            format!(
                "No agent in {} claims {}\n",
                fleet.source,
                capability::shown(&ability)
            )
        } else {
            format!(
                "Agents claiming {} in {}:\n",
                capability::shown(&ability),
                fleet.source
            )
        };
        for (a, c) in &found {
            text.push_str(&format!(
                "  {:.2} {} {} — {}{}\n",
                c.confidence,
                fleet::stars(c.stars),
                fleet::headline(a),
                c.source,
                c.learned
                    .as_deref()
                    .map(|l| format!(", learned {}", capability::shown(l)))
                    .unwrap_or_default()
            ));
        }
        for w in &fleet.warnings {
            text.push_str(&format!("warning: {w}\n"));
        }
        let rows: Vec<Value> = found
            .iter()
            .map(|(a, c)| json!({ "agent": a.name, "repo": a.repo, "role": a.role, "confidence": c.confidence, "stars": c.stars, "learned": c.learned, "source": c.source, "archived": a.archived, "stale": a.stale }))
            .collect();
        Ok(Output::new(json!({ "ability": ability, "source": fleet.source, "agents": rows, "warnings": fleet.warnings }))
            .with_text(text.trim_end().to_owned()))
    }

    fn topology(&self) -> Result<Output, FleetError> {
        let style = self.arg("as").unwrap_or("text").to_owned();
        if !matches!(style.as_str(), "text" | "dot" | "mermaid") {
            return Err(FleetError::invalid(
                format!("--as {} is not a drawing", capability::shown(&style)),
                "use --as text, dot or mermaid",
            ));
        }
        let (fleet, _) = self.fleet()?;
        let traffic = self.bottle_traffic();
        let topo = topology::build(&fleet.agents, &traffic);
        let mut text = match style.as_str() {
            "dot" => topo.dot(),
            "mermaid" => topo.mermaid(),
            _ => topo.text(),
        };
        if style == "text" {
            for w in &fleet.warnings {
                text.push_str(&format!("warning: {w}\n"));
            }
        }
        let mut data = serde_json::to_value(&topo).unwrap_or(Value::Null);
        data["source"] = json!(fleet.source);
        data["warnings"] = json!(fleet.warnings);
        if style != "text" {
            data[style.as_str()] = json!(text);
        }
        Ok(Output::new(data).with_text(text.trim_end().to_owned()))
    }

    /// `(from, to) → bottles` in this workshop's message-in-a-bottle folder. Best
    /// effort: without the grant or the folder there is simply no traffic to draw.
    fn bottle_traffic(&self) -> BTreeMap<(String, String), usize> {
        const MAX_BOTTLES: usize = 2_000;
        let mut traffic = BTreeMap::new();
        let Ok(boxes) = self.host.list_dir("message-in-a-bottle") else {
            return traffic;
        };
        let mut read = 0;
        for b in boxes {
            let Some(to) = b.strip_prefix("for-").and_then(|r| r.strip_suffix('/')) else {
                continue;
            };
            if to == "all" || !config::valid_name(to) {
                continue;
            }
            let Ok(files) = self.host.list_dir(&format!("message-in-a-bottle/{b}")) else {
                continue;
            };
            for f in files.iter().filter(|f| f.ends_with(".md")) {
                if read >= MAX_BOTTLES {
                    return traffic;
                }
                read += 1;
                let Ok(text) = self.host.read_file(&format!("message-in-a-bottle/{b}{f}")) else {
                    continue;
                };
                let from = text
                    .lines()
                    .take(20)
                    .find_map(|l| l.strip_prefix("from:").map(|v| v.trim().to_owned()));
                if let Some(from) = from.filter(|f| config::valid_name(f)) {
                    *traffic.entry((from, to.to_owned())).or_insert(0) += 1;
                }
            }
        }
        traffic
    }

    fn scan(&self) -> Result<Output, FleetError> {
        let mut chosen = self.choose()?;
        let label = chosen.source().label();
        let listing = self.list(&mut chosen)?;
        let now = self.now()?;
        let report = scan::scan(label, &listing, now);
        let mut changes = Vec::new();
        if self.request.arg_bool("apply-topics") {
            changes.extend(scan::topic_changes(&listing, &report));
        }
        if let Some(spdx) = self.arg("apply-license") {
            if spdx.is_empty()
                || spdx.len() > 40
                || !spdx
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '+'))
            {
                return Err(FleetError::invalid(
                    format!("`{}` is not an SPDX licence id", capability::shown(spdx)),
                    "e.g. --apply-license MIT or Apache-2.0",
                ));
            }
            changes.extend(scan::license_changes(&listing, spdx));
        }
        let mut text = scan::text(&report);
        let mut results = Vec::new();
        let apply = self.request.arg_bool("yes");
        if !changes.is_empty()
            || self.request.arg_bool("apply-topics")
            || self.arg("apply-license").is_some()
        {
            if apply {
                let Chosen::GitHub { gh, .. } = &chosen else {
                    return Err(FleetError::invalid("--apply-topics and --apply-license change GitHub repositories; this source is plain git", "pass --org ORG (or a GitHub --source)"));
                };
                let year = &fleet::rfc3339(now)[..4];
                results = gh.apply(&changes, year)?;
                text.push_str(&format!("\nChanges made ({}):\n", changes.len()));
            } else {
                text.push_str(&format!(
                    "\nWould change ({}; dry run — add --yes to apply):\n",
                    changes.len()
                ));
            }
            for (i, c) in changes.iter().enumerate() {
                let status = match results.get(i) {
                    None if apply => " — not made",
                    None => "",
                    Some(Ok(())) => " — done",
                    Some(Err(_)) => " — FAILED",
                };
                text.push_str(&format!("  {}{status}\n", scan::describe(c)));
                if let Some(Err(e)) = results.get(i) {
                    text.push_str(&format!("      {e}\n"));
                }
            }
        }
        let failed = results.iter().filter(|r| r.is_err()).count();
        let data = json!({
            "report": report,
            "changes": changes,
            "applied": apply,
            "results": results.iter().map(|r| match r { Ok(()) => json!({"ok": true}), Err(e) => json!({"ok": false, "error": e}) }).collect::<Vec<_>>(),
        });
        if failed > 0 {
            return Err(FleetError::failed(
                format!("{failed} of {} changes failed:\n{}", changes.len(), text.trim_end()),
                "the token may lack write access (Administration: write for topics, Contents: write for LICENSE)",
            ));
        }
        Ok(Output::new(data).with_text(text.trim_end().to_owned()))
    }

    fn sources(&self) -> Result<Output, FleetError> {
        let config = self.config()?;
        let mut text = String::new();
        if config.sources.is_empty() {
            text.push_str("No fleet sources. Add one: datum fleet add-source acme --org acme (GitHub) or --git-path DIR (plain git)\n");
        }
        for s in &config.sources {
            let default = if config.default.as_deref() == Some(&s.name) {
                " (default)"
            } else {
                ""
            };
            let place = match s.kind {
                SourceKind::Github => format!(
                    "github org {} at {}",
                    s.org.as_deref().unwrap_or("?"),
                    s.api_url.as_deref().unwrap_or(DEFAULT_API)
                ),
                SourceKind::Git => {
                    let mut p: Vec<String> = s.path.iter().cloned().collect();
                    p.extend(s.urls.iter().cloned());
                    format!("git {}", p.join(", "))
                }
            };
            text.push_str(&format!("{}{default}: {place}\n", s.name));
        }
        for b in &config.boards {
            text.push_str(&format!("board {}: {}\n", b.name, b.remote));
        }
        Ok(Output::new(json!({ "default": config.default, "sources": config.sources, "boards": config.boards })).with_text(text.trim_end().to_owned()))
    }

    fn add_source(&self) -> Result<Output, FleetError> {
        let name = self.request.require_str("name")?.to_owned();
        if !config::valid_name(&name) {
            return Err(FleetError::invalid(
                format!("`{}` is not a valid source name", capability::shown(&name)),
                "use a-z, 0-9 and '-', starting with a letter",
            ));
        }
        let urls: Vec<String> = self
            .request
            .arg_strs("git-url")
            .iter()
            .map(|u| absolute(u))
            .collect();
        let path = self.arg("git-path").map(absolute);
        if let Some(p) = &path {
            if !std::path::Path::new(p).is_dir() {
                return Err(FleetError::invalid(
                    format!("--git-path {p} is not a folder"),
                    "name the folder that holds the fleet's repositories",
                ));
            }
        }
        let entry = match (self.arg("org"), path.as_deref(), urls.is_empty()) {
            (Some(org), None, true) => {
                GitHub::new(org, DEFAULT_API, None)?;
                SourceConfig { name: name.clone(), kind: SourceKind::Github, org: Some(org.to_owned()), api_url: self.arg("api-url").map(str::to_owned), path: None, urls: vec![] }
            }
            (None, path, _) if path.is_some() || !urls.is_empty() => {
                SourceConfig { name: name.clone(), kind: SourceKind::Git, org: None, api_url: None, path: path.map(str::to_owned), urls }
            }
            _ => {
                return Err(FleetError::invalid(
                    "say where the fleet is: --org ORG (GitHub), or --git-path DIR and/or --git-url URL (plain git)",
                    "e.g. datum fleet add-source acme --org acme",
                ))
            }
        };
        let text = self.config_text()?;
        let mut out = config::upsert(&text, "sources", &entry, &name)?;
        if self.request.arg_bool("default") {
            out = config::set_default(&out, &name)?;
        }
        Config::parse(&out)?;
        self.host.write_file(config::FILE, &out)?;
        Ok(
            Output::new(json!({ "added": entry, "default": self.request.arg_bool("default") }))
                .with_text(format!("fleet source {name} saved in {}", config::FILE)),
        )
    }

    fn remove_source(&self) -> Result<Output, FleetError> {
        let name = self.request.require_str("name")?.to_owned();
        let text = self.config_text()?;
        let out = config::remove(&text, "sources", &name)?.ok_or_else(|| {
            FleetError::invalid(
                format!("no fleet source named `{}`", capability::shown(&name)),
                "`datum fleet sources` lists them",
            )
        })?;
        self.host.write_file(config::FILE, &out)?;
        Ok(Output::new(json!({ "removed": name }))
            .with_text(format!("fleet source {name} removed")))
    }

    fn add_board(&self) -> Result<Output, FleetError> {
        let name = self.request.require_str("name")?.to_owned();
        let remote = absolute(self.request.require_str("remote")?);
        if !config::valid_name(&name) {
            return Err(FleetError::invalid(
                format!("`{}` is not a valid board name", capability::shown(&name)),
                "use a-z, 0-9 and '-', starting with a letter",
            ));
        }
        // Check it now rather than at the first claim.
        let repo = tasks::BoardRepo::open(&name, &remote, &self.cache()?.join("boards"))?;
        let (_, tip) = repo.fetch()?;
        let board = repo.board_at(tip)?;
        let entry = BoardConfig {
            name: name.clone(),
            remote: remote.clone(),
        };
        let out = config::upsert(&self.config_text()?, "boards", &entry, &name)?;
        self.host.write_file(config::FILE, &out)?;
        Ok(
            Output::new(json!({ "added": entry, "tasks": board.tasks.len() })).with_text(format!(
                "board {name} ({remote}) saved: {} tasks",
                board.tasks.len()
            )),
        )
    }

    fn boards(&self) -> Result<Vec<tasks::BoardRepo>, FleetError> {
        let config = self.config()?;
        let wanted = self.arg("board");
        let chosen: Vec<&BoardConfig> = config
            .boards
            .iter()
            .filter(|b| wanted.is_none_or(|w| w == b.name))
            .collect();
        if chosen.is_empty() {
            return Err(match wanted {
                Some(w) => FleetError::invalid(
                    format!("no board named `{}`", capability::shown(w)),
                    "`datum fleet sources` lists the boards",
                ),
                None => FleetError::invalid(
                    "no task boards are configured",
                    "add one: datum fleet add-board fleet /path/or/url/of/tasks.git",
                ),
            });
        }
        let cache = self.cache()?.join("boards");
        chosen
            .into_iter()
            .map(|b| tasks::BoardRepo::open(&b.name, &b.remote, &cache))
            .collect()
    }

    fn tasks_sync(&self) -> Result<Output, FleetError> {
        let mut rows = Vec::new();
        let mut text = String::new();
        for repo in self.boards()? {
            let (_, tip) = repo.fetch()?;
            let board = repo.board_at(tip)?;
            let open = board
                .tasks
                .iter()
                .filter(|t| t.state == board::State::Open)
                .count();
            text.push_str(&format!(
                "{}: {} tasks ({open} open) from {}\n",
                repo.name,
                board.tasks.len(),
                repo.remote
            ));
            rows.push(json!({ "board": repo.name, "remote": repo.remote, "tasks": board.tasks.len(), "open": open, "commit": tip.map(|t| t.to_string()) }));
        }
        Ok(Output::new(json!({ "boards": rows })).with_text(text.trim_end().to_owned()))
    }

    fn tasks_list(&self, mine: bool) -> Result<Output, FleetError> {
        let me = if mine { Some(self.agent_name()?) } else { None };
        let mut rows = Vec::new();
        let mut text = String::new();
        for repo in self.boards()? {
            // Always from the remote's latest: a list that is stale misleads.
            let (_, tip) = repo.fetch()?;
            let board = repo.board_at(tip)?;
            for t in &board.tasks {
                let keep = match (&me, &t.state) {
                    (None, _) => true,
                    (Some(me), board::State::Claimed { by, .. }) => by == me,
                    (Some(me), board::State::Done { by: Some(by), .. }) => {
                        by == me && self.request.arg_bool("all")
                    }
                    _ => false,
                };
                if !keep {
                    continue;
                }
                let state = match (&me, &t.state) {
                    (Some(_), board::State::Claimed { .. }) => "in progress".to_owned(),
                    _ => t.state_words(),
                };
                let priority = t
                    .priority
                    .as_ref()
                    .map(|p| format!(" [{}]", capability::shown(p)))
                    .unwrap_or_default();
                text.push_str(&format!(
                    "{}{priority} {} — {state}\n",
                    t.id,
                    capability::shown(&t.title)
                ));
                let mut row = serde_json::to_value(t).unwrap_or(Value::Null);
                row["board"] = json!(repo.name);
                rows.push(row);
            }
        }
        if rows.is_empty() {
            text.push_str(if mine {
                "No tasks claimed by this agent. `datum fleet tasks list` shows the open ones.\n"
            } else {
                "The boards have no tasks.\n"
            });
        }
        Ok(Output::new(json!({ "tasks": rows })).with_text(text.trim_end().to_owned()))
    }

    fn tasks_change(&self, change: Change) -> Result<Output, FleetError> {
        let id = self.request.require_str("id")?.to_ascii_uppercase();
        if !board::valid_id(&id) {
            return Err(FleetError::invalid(
                format!("`{}` is not a task id", capability::shown(&id)),
                "task ids look like TASK-042",
            ));
        }
        let me = self.agent_name()?;
        let today = self.today()?;
        let report = match change {
            Change::Complete => {
                let file = self.request.arg_file("report")?.filter(|f| f.exists).ok_or_else(|| {
                    FleetError::invalid("complete needs the report", format!("pass --report FILE (it is committed as reports/{id}.md beside the board)"))
                })?;
                Some(file.bytes)
            }
            _ => None,
        };
        let report_name = format!("{id}.md");
        // The board holding the task: the one named, else the first that has it.
        let boards = self.boards()?;
        let mut last_missing = None;
        for repo in &boards {
            let (_, tip) = repo.fetch()?;
            if repo.board_at(tip)?.task(&id).is_none() {
                last_missing = Some(repo.name.clone());
                continue;
            }
            let (verb, message) = match change {
                Change::Claim => ("claimed", format!("{me} claims {id}")),
                Change::Release => ("released", format!("{me} releases {id}")),
                Change::Complete => ("completed", format!("{me} completes {id}")),
            };
            let report_ref = format!("reports/{report_name}");
            let done = repo.change(
                &id,
                &me,
                &message,
                report.as_deref().map(|b| (report_name.as_str(), b)),
                |t| match change {
                    Change::Claim => tasks::claim(t, &me, &today),
                    Change::Release => tasks::release(t, &me),
                    Change::Complete => tasks::complete(t, &me, &today, &report_ref),
                },
            )?;
            let text = format!(
                "{verb} {} [{}] {} on board {} (commit {})",
                done.task.id,
                done.task.priority.as_deref().unwrap_or("-"),
                capability::shown(&done.task.title),
                done.board,
                &done.commit[..12.min(done.commit.len())]
            );
            return Ok(
                Output::new(serde_json::to_value(&done).unwrap_or(Value::Null)).with_text(text),
            );
        }
        Err(FleetError::invalid(
            format!(
                "no task {id} on {}",
                if boards.len() == 1 {
                    format!("the board `{}`", last_missing.unwrap_or_default())
                } else {
                    format!("any of the {} boards", boards.len())
                }
            ),
            "`datum fleet tasks list` shows the tasks",
        ))
    }
}

/// A relative path that exists, made absolute: the configuration is read from other
/// folders later. URLs and everything else stay as given.
fn absolute(given: &str) -> String {
    let path = std::path::Path::new(given);
    if given.contains("://") || path.is_absolute() || !path.exists() {
        return given.to_owned();
    }
    std::fs::canonicalize(path).map_or_else(|_| given.to_owned(), |p| p.display().to_string())
}

/// `30d`, `12w`, `90` (days) → days.
fn parse_days(span: &str) -> Result<i64, FleetError> {
    let bad = || {
        FleetError::invalid(
            format!("`{}` is not a span of days", capability::shown(span)),
            "e.g. --active-within 30d (or 6w, or 90)",
        )
    };
    let (num, unit) = match span.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => span.split_at(i),
        None => (span, "d"),
    };
    let n: i64 = num.parse().map_err(|_| bad())?;
    let days = match unit {
        "d" => n,
        "w" => n.checked_mul(7).ok_or_else(bad)?,
        "y" => n.checked_mul(365).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    if !(0..=36_500).contains(&days) {
        return Err(bad());
    }
    Ok(days)
}

fn cache_key(api: &str, org: &str) -> String {
    use sha2::Digest;
    let d = hex::encode(sha2::Sha256::digest(format!("{api}\n{org}").as_bytes()));
    format!("{}-{}", org.to_lowercase(), &d[..12])
}

fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    // The rename is durable once the folder is.
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_of_days() {
        assert_eq!(parse_days("30d").unwrap(), 30);
        assert_eq!(parse_days("2w").unwrap(), 14);
        assert_eq!(parse_days("90").unwrap(), 90);
        for bad in ["", "d", "-1d", "3m", "99999999999999999999d", "1000000y"] {
            assert!(parse_days(bad).is_err(), "{bad}");
        }
    }
}
