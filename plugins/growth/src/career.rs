//! `career`, `career add`, `career export`: the agent's record, computed from what the
//! workshop holds — sessions from TRAIL.md, commits from git, bottles from mib,
//! abilities from CAPABILITY.toml — never typed in. Entries (`career add`) are journal
//! entries of kind CAREER (appended, committed, never rewritten), stars as a tag.

use datum_plugin_api::{Host, Output, PluginError, Request};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::profile;
use crate::util::{call_opt, journal, journal_entries, read_opt, shown, stars};

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub date: String,
    pub stars: u8,
    pub title: String,
    pub notes: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub agent: String,
    pub role: String,
    pub sessions: usize,
    pub commits: u64,
    pub bottles_sent: u64,
    pub bottles_received: u64,
    pub journal_entries: usize,
    pub abilities: usize,
    pub entries: Vec<Entry>,
}

/// `session N start` lines in TRAIL.md (what `datum resume` writes).
pub fn count_sessions(trail: &str) -> usize {
    trail
        .lines()
        .filter(|l| {
            l.strip_prefix("- ")
                .and_then(|r| r.split_once(' '))
                .is_some_and(|(_, what)| {
                    what.strip_prefix("session ")
                        .and_then(|w| w.strip_suffix(" start"))
                        .is_some_and(|n| n.parse::<u64>().is_ok())
                })
        })
        .count()
}

pub fn stats(request: &Request, host: &Host<'_>) -> Result<Stats, PluginError> {
    let trail = read_opt(host, "TRAIL.md")?.unwrap_or_default();
    let commits = host.git_log(".", 0)?["total"].as_u64().unwrap_or(0);
    let bottles = call_opt(host, "mib", "bottle history", Map::new())?.unwrap_or(Value::Null);
    let journal = journal_entries(host)?;
    let profile = profile::profile(request, host)?;
    let entries = journal
        .iter()
        .filter(|e| e["kind"] == "CAREER")
        .map(|e| {
            let text = e["text"].as_str().unwrap_or_default();
            let (title, notes) = text.split_once('\n').unwrap_or((text, ""));
            let stars = e["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .find_map(|t| t.as_str()?.strip_prefix("stars-")?.parse::<u8>().ok())
                .unwrap_or(0)
                .min(5);
            Entry {
                date: e["when"]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(10)
                    .collect(),
                stars,
                title: title.trim().to_owned(),
                notes: notes.trim().to_owned(),
            }
        })
        .collect();
    Ok(Stats {
        agent: request.agent.name.clone(),
        role: request.agent.role.clone(),
        sessions: count_sessions(&trail),
        commits,
        bottles_sent: bottles["sent"].as_u64().unwrap_or(0),
        bottles_received: bottles["received"].as_u64().unwrap_or(0),
        journal_entries: journal.iter().filter(|e| e["kind"] != "LOG").count(),
        abilities: profile.capabilities.len(),
        entries,
    })
}

fn view(s: &Stats) -> String {
    let mut t = format!(
        "Agent: {} ({})\nSessions: {} | Total commits: {} | Bottles exchanged: {} ({} sent, {} received) | Abilities: {} | Journal entries: {}\n",
        s.agent,
        s.role,
        s.sessions,
        s.commits,
        s.bottles_sent + s.bottles_received,
        s.bottles_sent,
        s.bottles_received,
        s.abilities,
        s.journal_entries
    );
    t.push_str("Career Entries:\n");
    if s.entries.is_empty() {
        t.push_str("  none yet — datum career add TITLE --stars N\n");
    }
    for e in s.entries.iter().rev() {
        t.push_str(&format!(
            "  [{}] {} {}",
            e.date,
            stars(e.stars),
            shown(&e.title)
        ));
        if !e.notes.is_empty() {
            t.push_str(&format!(
                " — {}",
                shown(e.notes.lines().next().unwrap_or_default())
            ));
        }
        t.push('\n');
    }
    t.trim_end().to_owned()
}

pub fn career(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
    let s = stats(request, host)?;
    let text = view(&s);
    Ok(Output::new(serde_json::to_value(&s).unwrap_or(Value::Null)).with_text(text))
}

pub fn add(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
    let title = request.require_str("title")?.trim();
    if title.is_empty() || title.contains('\n') || title.chars().count() > 120 {
        return Err(PluginError::invalid_args(
            "a career title is one line of at most 120 characters",
        ));
    }
    let n = request.arg_i64("stars").unwrap_or(3);
    if !(1..=5).contains(&n) {
        return Err(PluginError::invalid_args("--stars must be 1 to 5"));
    }
    let notes = request.arg_str("notes").unwrap_or_default().trim();
    let text = if notes.is_empty() {
        title.to_owned()
    } else {
        format!("{title}\n{notes}")
    };
    if !journal(host, "CAREER", &text, &[&format!("stars-{n}")])? {
        return Err(PluginError::failed(
            "career entries are kept in the journal, and the life plugin is not installed",
        )
        .with_hint("datum plugin install life"));
    }
    Ok(
        Output::new(json!({ "title": title, "stars": n, "notes": notes })).with_text(format!(
            "career: {} {} (journal, committed)",
            stars(n as u8),
            title
        )),
    )
}

/// `career export --as toml|md`: `[career]` in CAPABILITY.toml, or CAREER.md; written,
/// committed, and printed.
pub fn export(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
    let s = stats(request, host)?;
    let how = request.arg_str("as").unwrap_or("toml");
    match how {
        "md" => {
            let mut md = format!("# Career — {} ({})\n\n", s.agent, s.role);
            md.push_str(&format!(
                "Computed by `datum career export --as md` from the workshop's record.\n\n| sessions | commits | bottles sent | bottles received | abilities | journal entries |\n|---|---|---|---|---|---|\n| {} | {} | {} | {} | {} | {} |\n\n## Entries\n\n",
                s.sessions, s.commits, s.bottles_sent, s.bottles_received, s.abilities, s.journal_entries
            ));
            for e in s.entries.iter().rev() {
                md.push_str(&format!(
                    "- [{}] {} {}",
                    e.date,
                    stars(e.stars),
                    shown(&e.title)
                ));
                if !e.notes.is_empty() {
                    md.push_str(&format!(
                        " — {}",
                        e.notes.lines().map(shown).collect::<Vec<_>>().join(" ")
                    ));
                }
                md.push('\n');
            }
            host.write_file("CAREER.md", &md)?;
            let committed = host.git_commit("CAREER.md", "career: export CAREER.md")?;
            Ok(
                Output::new(json!({ "file": "CAREER.md", "committed": committed, "career": s }))
                    .with_text(md.trim_end().to_owned()),
            )
        }
        "toml" => {
            let mut file = profile::load(request, host)?;
            let entries: Vec<capability::CareerEntry> = s
                .entries
                .iter()
                .map(|e| capability::CareerEntry {
                    date: e.date.clone(),
                    stars: e.stars,
                    title: e.title.clone(),
                    notes: e.notes.clone(),
                })
                .collect();
            file.set_career(&capability::Career {
                sessions: s.sessions as u64,
                commits: s.commits,
                bottles_sent: s.bottles_sent,
                bottles_received: s.bottles_received,
                entries,
            });
            let text = file.to_string();
            host.write_file(profile::FILE, &text)?;
            let committed = host.git_commit(profile::FILE, "career: export to CAPABILITY.toml")?;
            let part: String = text
                .split("\n[")
                .filter(|sec| sec.starts_with("career") || sec.starts_with("[career"))
                .map(|sec| format!("[{sec}"))
                .collect::<Vec<_>>()
                .join("\n");
            Ok(
                Output::new(json!({ "file": profile::FILE, "committed": committed, "career": s }))
                    .with_text(part.trim_end().to_owned()),
            )
        }
        other => Err(PluginError::invalid_args(format!(
            "--as must be toml or md, not `{}`",
            shown(other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_the_trails_session_lines() {
        let trail = "# Trail\n- 2026-11-26T10:00:00Z boot ada\n- 2026-11-26T10:01:00Z session 1 start\n- x session 2 start\n- 2026-11-27T09:00:00Z session two start\n  - 2026-11-27T09:00:00Z session 3 start\n";
        assert_eq!(count_sessions(trail), 2);
    }
}
