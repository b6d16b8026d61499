//! From a source's listing to the fleet: every repository with a CAPABILITY.toml is an
//! agent. Capability files are other agents' words: read leniently (a broken one is a
//! warning naming the repository, file, line and column, and the rest of the fleet
//! still shows) and only ever displayed through [`capability::shown`].

use std::collections::BTreeMap;

use capability::{shown, Capability, CapabilityFile, Link, Status};
use serde::Serialize;

use crate::source::{Listing, Repo};

/// Agents idle longer than this are marked stale unless `--active-within` says otherwise.
pub const DEFAULT_STALE_DAYS: i64 = 90;

#[derive(Debug, Clone, Serialize)]
pub struct Agent {
    pub repo: String,
    pub url: String,
    pub name: String,
    pub emoji: Option<String>,
    pub role: Option<String>,
    pub title: Option<String>,
    pub status: Status,
    /// RFC 3339, from the last push (GitHub) or HEAD commit (git).
    pub last_activity: Option<String>,
    pub idle_days: Option<i64>,
    pub archived: bool,
    pub stale: bool,
    pub capability_count: usize,
    pub capabilities: BTreeMap<String, Capability>,
    pub links: Vec<Link>,
    pub endpoints: capability::Endpoints,
}

/// The state of one repository's CAPABILITY.toml, for `scan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapabilityState {
    Missing,
    Valid,
    /// Read, with warnings.
    Warnings,
    /// Could not be read at all (syntax, size, not text).
    Broken,
}

#[derive(Debug, Clone, Serialize)]
pub struct Fleet {
    pub source: String,
    pub repositories: usize,
    pub agents: Vec<Agent>,
    pub without_capability: usize,
    pub complete: bool,
    pub missing: Option<usize>,
    pub warnings: Vec<String>,
    pub requests: u64,
    pub capability_downloads: u64,
}

/// Read one repository's capability file: the agent (if any), its state, and warnings
/// prefixed with where they are (`acme/ada: CAPABILITY.toml line 3, column 5: …`).
pub fn read_agent(
    repo: &Repo,
    place: &str,
    now: i64,
    stale_days: i64,
    warnings: &mut Vec<String>,
) -> (Option<Agent>, CapabilityState) {
    let Some(blob) = &repo.capability else {
        return (None, CapabilityState::Missing);
    };
    let at = format!("{}/{}", shown(place), shown(&repo.name));
    let Some(text) = &blob.text else {
        warnings.push(format!(
            "{at}: {} not read ({} bytes, over the limit or not text)",
            capability::FILE_NAME,
            blob.size
        ));
        return (None, CapabilityState::Broken);
    };
    let file = match CapabilityFile::parse(text) {
        Ok(f) => f,
        Err(e) => {
            warnings.push(format!("{at}: {e}"));
            return (None, CapabilityState::Broken);
        }
    };
    let (profile, problems) = file.profile();
    let state = if problems.is_empty() {
        CapabilityState::Valid
    } else {
        CapabilityState::Warnings
    };
    for w in problems.iter().take(20) {
        warnings.push(format!("{at}: {w}"));
    }
    if problems.len() > 20 {
        warnings.push(format!("{at}: … and {} more warnings", problems.len() - 20));
    }
    let idle_days = repo.pushed_at.map(|t| ((now - t) / 86_400).max(0));
    let name = if profile.agent.name.is_empty() {
        shown(&repo.name)
    } else {
        shown(&profile.agent.name)
    };
    let agent = Agent {
        repo: shown(&repo.name),
        url: shown(&repo.url),
        name,
        emoji: profile.agent.emoji.as_deref().map(shown),
        role: profile.agent.role.as_deref().map(shown),
        title: profile.agent.title.as_deref().map(shown),
        status: profile.agent.status,
        last_activity: repo.pushed_at.map(rfc3339),
        idle_days,
        archived: repo.archived,
        stale: idle_days.is_none_or(|d| d > stale_days),
        capability_count: profile.capabilities.len(),
        capabilities: profile.capabilities,
        links: profile.links,
        endpoints: profile.endpoints,
    };
    (Some(agent), state)
}

pub fn rfc3339(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Build the fleet view of a listing.
pub fn assemble(source: String, listing: Listing, now: i64, stale_days: i64) -> Fleet {
    let mut warnings = listing.warnings.clone();
    let place = source
        .split_once(':')
        .map_or(source.as_str(), |(_, p)| p)
        .to_owned();
    let mut agents = Vec::new();
    let mut without = 0;
    for repo in &listing.repos {
        match read_agent(repo, &place, now, stale_days, &mut warnings) {
            (Some(agent), _) => agents.push(agent),
            (None, CapabilityState::Missing) => without += 1,
            (None, _) => {}
        }
    }
    agents.sort_by(|a, b| a.name.cmp(&b.name).then(a.repo.cmp(&b.repo)));
    let missing = match (&listing.incomplete, listing.total) {
        (Some(_), Some(total)) => Some(total.saturating_sub(listing.repos.len())),
        _ => None,
    };
    Fleet {
        source,
        repositories: listing.repos.len(),
        agents,
        without_capability: without,
        complete: listing.incomplete.is_none(),
        missing,
        warnings,
        requests: listing.requests,
        capability_downloads: listing.downloads,
    }
}

impl Fleet {
    /// The agent named `who` (its CAPABILITY.toml name, or its repository's).
    pub fn agent(&self, who: &str) -> Option<&Agent> {
        let who = who.to_lowercase();
        self.agents
            .iter()
            .find(|a| a.name.to_lowercase() == who)
            .or_else(|| self.agents.iter().find(|a| a.repo.to_lowercase() == who))
    }

    /// Agents that claim `ability`, best confidence first.
    pub fn who(&self, ability: &str) -> Vec<(&Agent, &Capability)> {
        let mut found: Vec<(&Agent, &Capability)> = self
            .agents
            .iter()
            .filter_map(|a| a.capabilities.get(ability).map(|c| (a, c)))
            .collect();
        found.sort_by(|(a, x), (b, y)| {
            y.confidence
                .total_cmp(&x.confidence)
                .then(a.name.cmp(&b.name))
        });
        found
    }
}

/// `🔮 oracle1 (lighthouse, Managing Director)`.
pub fn headline(a: &Agent) -> String {
    let emoji = a.emoji.clone().unwrap_or_else(|| "•".into());
    let detail: Vec<&str> = [a.role.as_deref(), a.title.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    if detail.is_empty() {
        format!("{emoji} {}", a.name)
    } else {
        format!("{emoji} {} ({})", a.name, detail.join(", "))
    }
}

pub fn ago(days: Option<i64>) -> String {
    match days {
        None => "never pushed".into(),
        Some(0) => "active today".into(),
        Some(1) => "active 1 day ago".into(),
        Some(d) => format!("active {d} days ago"),
    }
}

pub fn stars(n: u8) -> String {
    let n = n.min(5) as usize;
    format!("{}{}", "★".repeat(n), "☆".repeat(5 - n))
}

/// The `discover` report for a terminal.
pub fn discover_text(fleet: &Fleet, shown_agents: &[&Agent]) -> String {
    let active = shown_agents
        .iter()
        .filter(|a| !a.archived && !a.stale)
        .count();
    let mut out = format!(
        "Scanning {}... found {} agents ({active} active) in {} repositories ({} without {})\n",
        fleet.source,
        shown_agents.len(),
        fleet.repositories,
        fleet.without_capability,
        capability::FILE_NAME
    );
    for a in shown_agents {
        let mut marks = Vec::new();
        if a.archived {
            marks.push("archived");
        }
        if a.stale && !a.archived {
            marks.push("stale");
        }
        if a.status != Status::Active {
            marks.push(match a.status {
                Status::Idle => "idle",
                Status::Retired => "retired",
                Status::Active => "",
            });
        }
        let marks = if marks.is_empty() {
            String::new()
        } else {
            format!(" [{}]", marks.join(", "))
        };
        out.push_str(&format!(
            "  {} — {}, {} capabilities{marks}\n",
            headline(a),
            ago(a.idle_days),
            a.capability_count
        ));
    }
    for w in &fleet.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}

/// An agent's capabilities as TOML, the way the original plan shows them.
pub fn capabilities_toml(a: &Agent) -> String {
    let mut out = format!("# {} — from {}\n[capabilities]\n", headline(a), a.repo);
    for (name, c) in &a.capabilities {
        let mut fields = vec![
            format!("confidence = {:.2}", c.confidence),
            format!("stars = {}", c.stars),
        ];
        if let Some(l) = &c.learned {
            fields.push(format!("learned = {:?}", shown(l)));
        }
        fields.push(format!("source = \"{}\"", c.source));
        out.push_str(&format!(
            "{} = {{ {} }}\n",
            toml_key(name),
            fields.join(", ")
        ));
    }
    out
}

/// A capability name as a TOML key: bare when it can be, quoted otherwise.
fn toml_key(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        name.to_owned()
    } else {
        format!("{:?}", shown(name))
    }
}
