//! Repository hygiene: every repository of a fleet source classified by documented
//! rules, with the reasons, and (GitHub, `--yes`) the topic and licence changes that
//! follow from it.
//!
//! | class  | when (the first rule that matches)                                              |
//! |--------|----------------------------------------------------------------------------------|
//! | dead   | archived; empty (nothing pushed); or no push for 365 days                        |
//! | red    | no push for 180 days; CAPABILITY.toml unreadable; or neither README nor LICENSE |
//! | yellow | no README; no LICENSE; no push for 90 days; or CAPABILITY.toml with warnings     |
//! | green  | everything else                                                                  |

use std::collections::BTreeMap;

use serde::Serialize;

use crate::fleet::{read_agent, CapabilityState};
use crate::source::{Listing, Repo};

pub const DEAD_DAYS: i64 = 365;
pub const RED_DAYS: i64 = 180;
pub const YELLOW_DAYS: i64 = 90;
/// The topic marking a repository that holds an agent.
pub const AGENT_TOPIC: &str = "datum-agent";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Green,
    Yellow,
    Red,
    Dead,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Green => "green",
            Health::Yellow => "yellow",
            Health::Red => "red",
            Health::Dead => "dead",
        }
    }
    pub fn topic(self) -> String {
        format!("health-{}", self.as_str())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Judged {
    pub repo: String,
    pub health: Health,
    pub reasons: Vec<String>,
    pub capability: CapabilityState,
    pub has_flux: bool,
    pub idle_days: Option<i64>,
}

pub fn classify(repo: &Repo, capability: CapabilityState, now: i64) -> Judged {
    let idle = repo.pushed_at.map(|t| ((now - t) / 86_400).max(0));
    let mut reasons = Vec::new();
    let days = |d: i64| format!("no push for {d} days");
    let health = if repo.archived || idle.is_none() || idle.is_some_and(|d| d >= DEAD_DAYS) {
        if repo.archived {
            reasons.push("archived".into());
        }
        match idle {
            None => reasons.push("empty: nothing pushed".into()),
            Some(d) if d >= DEAD_DAYS => reasons.push(days(d)),
            _ => {}
        }
        Health::Dead
    } else {
        let d = idle.unwrap_or_default();
        let mut red = Vec::new();
        if d >= RED_DAYS {
            red.push(days(d));
        }
        if capability == CapabilityState::Broken {
            red.push("CAPABILITY.toml unreadable".into());
        }
        if !repo.has_readme && repo.license.is_none() {
            red.push("neither README nor LICENSE".into());
        }
        if !red.is_empty() {
            reasons = red;
            Health::Red
        } else {
            if !repo.has_readme {
                reasons.push("no README".into());
            }
            if repo.license.is_none() {
                reasons.push("no LICENSE".into());
            }
            if d >= YELLOW_DAYS {
                reasons.push(days(d));
            }
            if capability == CapabilityState::Warnings {
                reasons.push("CAPABILITY.toml has warnings".into());
            }
            if reasons.is_empty() {
                Health::Green
            } else {
                Health::Yellow
            }
        }
    };
    Judged {
        repo: capability::shown(&repo.name),
        health,
        reasons,
        capability,
        has_flux: repo.has_flux,
        idle_days: idle,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub source: String,
    pub repositories: usize,
    pub counts: BTreeMap<Health, usize>,
    pub repos: Vec<Judged>,
    pub complete: bool,
    pub warnings: Vec<String>,
}

pub fn scan(source: String, listing: &Listing, now: i64) -> Report {
    let mut warnings = listing.warnings.clone();
    let place = source
        .split_once(':')
        .map_or(source.as_str(), |(_, p)| p)
        .to_owned();
    let mut repos = Vec::new();
    for repo in &listing.repos {
        let (_, state) = read_agent(repo, &place, now, i64::MAX, &mut warnings);
        repos.push(classify(repo, state, now));
    }
    let mut counts: BTreeMap<Health, usize> =
        [Health::Green, Health::Yellow, Health::Red, Health::Dead]
            .into_iter()
            .map(|h| (h, 0))
            .collect();
    for j in &repos {
        *counts.entry(j.health).or_default() += 1;
    }
    Report {
        source,
        repositories: repos.len(),
        counts,
        repos,
        complete: listing.incomplete.is_none(),
        warnings,
    }
}

/// A change `scan` would make to a repository.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum Change {
    /// Replace the repository's topics with `topics` (GitHub's API sets the whole list).
    Topics {
        repo: String,
        add: Vec<String>,
        remove: Vec<String>,
        topics: Vec<String>,
    },
    /// Commit a LICENSE file with this SPDX licence's text.
    License { repo: String, spdx: String },
}

/// Topics: `health-CLASS` (replacing an older `health-*`) on every repository, and
/// `datum-agent` on those with a readable CAPABILITY.toml. Archived repositories are
/// read-only on GitHub and are left alone.
pub fn topic_changes(listing: &Listing, report: &Report) -> Vec<Change> {
    let mut out = Vec::new();
    for (repo, judged) in listing.repos.iter().zip(&report.repos) {
        if repo.archived {
            continue;
        }
        let mut want: Vec<String> = repo
            .topics
            .iter()
            .filter(|t| !t.starts_with("health-"))
            .cloned()
            .collect();
        want.push(judged.health.topic());
        let agent = matches!(
            judged.capability,
            CapabilityState::Valid | CapabilityState::Warnings
        );
        if agent && !want.iter().any(|t| t == AGENT_TOPIC) {
            want.push(AGENT_TOPIC.into());
        }
        want.sort();
        want.dedup();
        let mut have = repo.topics.clone();
        have.sort();
        if want != have {
            out.push(Change::Topics {
                repo: repo.name.clone(),
                add: want.iter().filter(|t| !have.contains(t)).cloned().collect(),
                remove: have.iter().filter(|t| !want.contains(t)).cloned().collect(),
                topics: want,
            });
        }
    }
    out
}

pub fn license_changes(listing: &Listing, spdx: &str) -> Vec<Change> {
    listing
        .repos
        .iter()
        .filter(|r| !r.archived && r.license.is_none() && r.pushed_at.is_some())
        .map(|r| Change::License {
            repo: r.name.clone(),
            spdx: spdx.to_owned(),
        })
        .collect()
}

pub fn describe(change: &Change) -> String {
    match change {
        Change::Topics {
            repo, add, remove, ..
        } => {
            let mut parts = Vec::new();
            if !add.is_empty() {
                parts.push(format!("add topics {}", add.join(", ")));
            }
            if !remove.is_empty() {
                parts.push(format!("remove topics {}", remove.join(", ")));
            }
            format!("{}: {}", capability::shown(repo), parts.join("; "))
        }
        Change::License { repo, spdx } => {
            format!("{}: commit LICENSE ({spdx})", capability::shown(repo))
        }
    }
}

pub fn text(report: &Report) -> String {
    let c = |h| report.counts.get(&h).copied().unwrap_or(0);
    let mut out = format!(
        "Scanned {} repositories of {}\nHealth: green {}, yellow {}, red {}, dead {}\n",
        report.repositories,
        report.source,
        c(Health::Green),
        c(Health::Yellow),
        c(Health::Red),
        c(Health::Dead)
    );
    for j in report.repos.iter().filter(|j| j.health != Health::Green) {
        out.push_str(&format!(
            "  {:<6} {} — {}\n",
            j.health.as_str(),
            j.repo,
            j.reasons.join("; ")
        ));
    }
    for w in &report.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn repo(days: Option<i64>, readme: bool, license: bool) -> Repo {
        Repo {
            name: "r".into(),
            pushed_at: days.map(|d| 1000 * DAY - d * DAY),
            has_readme: readme,
            license: license.then(|| "MIT".into()),
            ..Repo::default()
        }
    }

    #[test]
    fn the_documented_rules() {
        let now = 1000 * DAY;
        let h = |r: &Repo, c| classify(r, c, now).health;
        assert_eq!(
            h(&repo(Some(1), true, true), CapabilityState::Missing),
            Health::Green
        );
        assert_eq!(
            h(&repo(Some(1), true, true), CapabilityState::Valid),
            Health::Green
        );
        assert_eq!(
            h(&repo(Some(1), true, true), CapabilityState::Warnings),
            Health::Yellow
        );
        assert_eq!(
            h(&repo(Some(1), false, true), CapabilityState::Missing),
            Health::Yellow
        );
        assert_eq!(
            h(
                &repo(Some(YELLOW_DAYS), true, true),
                CapabilityState::Missing
            ),
            Health::Yellow
        );
        assert_eq!(
            h(&repo(Some(1), false, false), CapabilityState::Missing),
            Health::Red
        );
        assert_eq!(
            h(&repo(Some(1), true, true), CapabilityState::Broken),
            Health::Red
        );
        assert_eq!(
            h(&repo(Some(RED_DAYS), true, true), CapabilityState::Valid),
            Health::Red
        );
        assert_eq!(
            h(&repo(Some(DEAD_DAYS), true, true), CapabilityState::Valid),
            Health::Dead
        );
        assert_eq!(
            h(&repo(None, true, true), CapabilityState::Missing),
            Health::Dead
        );
        let mut archived = repo(Some(1), true, true);
        archived.archived = true;
        assert_eq!(h(&archived, CapabilityState::Valid), Health::Dead);
    }
}
