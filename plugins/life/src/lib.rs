//! The life plugin: the agent's journal (JOURNAL.md, only ever appended to, every entry
//! committed) and `resume` — a session's start, recorded in TRAIL.md, with where the
//! agent left off and numbered suggestions for what to do next.

pub mod journal;

use datum_plugin_api::{export_plugin, ErrorKind, Host, Output, Plugin, PluginError, Request};
use serde_json::{json, Map, Value};

pub struct Life;

impl Plugin for Life {
    const MANIFEST: &'static str = include_str!("../datum-plugin.toml");

    fn invoke(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
        match request.command.as_str() {
            "journal add" => journal_add(request, host),
            "journal" => journal_read(request, host),
            "resume" => resume(request, host),
            other => Err(PluginError::unknown_command("life", other)),
        }
    }
}

export_plugin!(Life);

const TRAIL: &str = "TRAIL.md";
const TASKBOARD: &str = "TASKBOARD.md";

fn now(host: &Host<'_>) -> Result<(std::time::SystemTime, String), PluginError> {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(host.now_ms()?);
    Ok((t, humantime::format_rfc3339_seconds(t).to_string()))
}

/// A workshop file's text; a file that is not there reads as empty (the host names a
/// missing file by the system's "No such file" error).
fn read_or_empty(host: &Host<'_>, path: &str) -> Result<String, PluginError> {
    match host.read_file(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind != ErrorKind::PermissionDenied && e.message.contains("No such file") => {
            Ok(String::new())
        }
        Err(e) => Err(e),
    }
}

fn journal_add(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
    let raw_kind = request.require_str("kind")?;
    let kind = journal::parse_kind(raw_kind).ok_or_else(|| {
        PluginError::invalid_args(format!("`{raw_kind}` is not an entry kind"))
            .with_hint("a word in capitals, e.g. NOTE, ANALYSIS, DECISION")
    })?;
    let text = request.require_str("text")?;
    if text.trim().is_empty() {
        return Err(PluginError::invalid_args("the entry is empty").with_hint("say what happened"));
    }
    let mut tags = Vec::new();
    for t in request.arg_strs("tag") {
        tags.push(journal::parse_tag(&t).ok_or_else(|| {
            PluginError::invalid_args(format!("`{t}` is not a tag"))
                .with_hint("tags are a-z, 0-9 and '-'")
        })?);
    }
    let (_, when) = now(host)?;
    let entry = journal::render(&when, &kind, text, &tags);
    host.append_file(journal::FILE, &entry)?;
    let first = entry.lines().next().unwrap_or_default().to_owned();
    let summary: String = text
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(60)
        .collect();
    let committed = host.git_commit(journal::FILE, &format!("journal: {kind} {summary}"))?;
    let shown = first
        .split_once(" — ")
        .map_or(first.as_str(), |(_, b)| b)
        .replacen(['[', ']'], "", 2);
    Ok(Output::new(json!({ "when": when, "kind": kind, "text": text.trim_end(), "tags": tags, "committed": committed }))
        .with_text(format!("journal: {shown} (committed)")))
}

fn journal_read(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
    let text = read_or_empty(host, journal::FILE)?;
    let mut entries = journal::parse(&text);
    if let Some(k) = request.arg_str("kind") {
        let k = journal::parse_kind(k)
            .ok_or_else(|| PluginError::invalid_args(format!("`{k}` is not an entry kind")))?;
        entries.retain(|e| e.kind == k);
    }
    if let Some(t) = request.arg_str("tag") {
        let t = journal::parse_tag(t)
            .ok_or_else(|| PluginError::invalid_args(format!("`{t}` is not a tag")))?;
        entries.retain(|e| e.tags.contains(&t));
    }
    if let Some(span) = request.arg_str("since") {
        let d = humantime::parse_duration(span).map_err(|e| {
            PluginError::invalid_args(format!("--since {span}: {e}"))
                .with_hint("e.g. --since 7d or --since 12h")
        })?;
        let (now, _) = now(host)?;
        let from = now.checked_sub(d).unwrap_or(std::time::UNIX_EPOCH);
        entries.retain(|e| humantime::parse_rfc3339_weak(&e.when).is_ok_and(|t| t >= from));
    }
    if let Some(n) = request.arg_i64("last") {
        if n < 0 {
            return Err(PluginError::invalid_args(
                "--last needs a count of 0 or more",
            ));
        }
        let keep = (n as usize).min(entries.len());
        entries.drain(..entries.len() - keep);
    }
    let mut out = String::new();
    for e in &entries {
        let tags: String = e.tags.iter().map(|t| format!(" #{t}")).collect();
        let mut lines = e.text.lines();
        out.push_str(&format!(
            "{}  {:<9} {}{tags}\n",
            e.when,
            e.kind,
            lines.next().unwrap_or_default()
        ));
        for l in lines {
            out.push_str(&format!("{:31}{l}\n", ""));
        }
    }
    if entries.is_empty() {
        out.push_str("No journal entries match. Add one: datum journal add NOTE \"…\"\n");
    }
    Ok(Output::new(json!({ "entries": entries })).with_text(out.trim_end().to_owned()))
}

/// `- WHEN session N start` lines in TRAIL.md: `(N, WHEN)`.
fn sessions(trail: &str) -> Vec<(u64, String)> {
    trail
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("- ")?;
            let (when, what) = rest.split_once(' ')?;
            let n = what
                .strip_prefix("session ")?
                .strip_suffix(" start")?
                .parse()
                .ok()?;
            Some((n, when.to_owned()))
        })
        .collect()
}

fn ago(from: &str, now: std::time::SystemTime) -> String {
    let Ok(t) = humantime::parse_rfc3339_weak(from) else {
        return String::new();
    };
    let secs = now.duration_since(t).map(|d| d.as_secs()).unwrap_or(0);
    match secs {
        0..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

/// Ask another plugin; `None` when it is not installed, not granted, or fails (resume
/// shows what it can and says what it could not).
fn ask(host: &Host<'_>, plugin: &str, command: &str, notes: &mut Vec<String>) -> Option<Value> {
    match host.call_plugin(plugin, command, Map::new()) {
        Ok(v) => Some(v),
        Err(e) if e.message.contains("not installed") => None,
        Err(e) => {
            notes.push(format!(
                "{plugin}: {}",
                e.message.lines().next().unwrap_or_default()
            ));
            None
        }
    }
}

fn resume(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
    let (now_t, now_s) = now(host)?;
    let trail = read_or_empty(host, TRAIL)?;
    let past = sessions(&trail);
    let number = past.iter().map(|(n, _)| *n).max().unwrap_or(0) + 1;
    let last = past.last().cloned();
    let peek = request.arg_bool("peek");
    if !peek {
        host.append_file(TRAIL, &format!("- {now_s} session {number} start"))?;
        host.git_commit(TRAIL, &format!("session {number}"))?;
        // A session started: the agent is at work (forward only; a no-op after the first).
        host.advance_lifecycle("active")?;
    }
    let entries = journal::parse(&read_or_empty(host, journal::FILE)?);
    let recent: Vec<&journal::Entry> = entries
        .iter()
        .rev()
        .take(5)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let open_tasks: Vec<String> = read_or_empty(host, TASKBOARD)?
        .lines()
        .filter_map(|l| {
            l.trim_start()
                .strip_prefix("- [ ] ")
                .map(|t| t.trim().to_owned())
        })
        .take(20)
        .collect();
    let mut notes = Vec::new();
    let unread = ask(host, "mib", "bottle check", &mut notes);
    let unread_count = unread
        .as_ref()
        .and_then(|v| v["unread"].as_u64())
        .unwrap_or(0);
    let fleet = ask(host, "fleet", "fleet tasks mine", &mut notes);
    let fleet_tasks: Vec<Value> = fleet
        .as_ref()
        .and_then(|v| v["tasks"].as_array().cloned())
        .unwrap_or_default();

    let mut suggestions: Vec<(String, String)> = Vec::new();
    for t in &fleet_tasks {
        let title = format!(
            "Continue {} {}",
            t["id"].as_str().unwrap_or_default(),
            t["title"].as_str().unwrap_or_default()
        );
        suggestions.push((title, "datum fleet tasks mine".into()));
    }
    if unread_count > 0 {
        suggestions.push((
            format!("Read {unread_count} unread bottle(s)"),
            "datum bottle check".into(),
        ));
    }
    for t in open_tasks.iter().take(3) {
        suggestions.push((format!("Open task: {t}"), TASKBOARD.into()));
    }
    let quiet_days = entries
        .iter()
        .rev()
        .find(|e| e.kind != journal::LOG)
        .and_then(|e| humantime::parse_rfc3339_weak(&e.when).ok())
        .map(|t| {
            now_t
                .duration_since(t)
                .map(|d| d.as_secs() / 86_400)
                .unwrap_or(0)
        });
    match quiet_days {
        None => suggestions.push((
            "Write the first journal entry".into(),
            "datum journal add NOTE \"…\"".into(),
        )),
        Some(d) if d >= 3 => suggestions.push((
            format!("The journal has been quiet for {d} days: note where you are"),
            "datum journal add NOTE \"…\"".into(),
        )),
        _ => {}
    }
    if suggestions.is_empty() {
        suggestions.push((
            "All clear: pick up new work".into(),
            "datum fleet tasks list".into(),
        ));
    }

    let mut text = if peek {
        format!("Session {number} (not started: --peek)")
    } else {
        format!("Session {number} started")
    };
    match &last {
        Some((n, when)) => text.push_str(&format!(
            " — last session {n}: {when} ({})\n",
            ago(when, now_t)
        )),
        None => text.push_str(" — the first one\n"),
    }
    if !recent.is_empty() {
        text.push_str("\nRecent journal:\n");
        for e in &recent {
            let line = e.text.lines().next().unwrap_or_default();
            text.push_str(&format!(
                "  {}  {:<9} {line}\n",
                &e.when[..10.min(e.when.len())],
                e.kind
            ));
        }
    }
    text.push_str(&format!(
        "\nOpen tasks in {TASKBOARD}: {}\n",
        open_tasks.len()
    ));
    if unread.is_some() {
        text.push_str(&format!("Unread bottles: {unread_count}\n"));
    }
    if fleet.is_some() {
        text.push_str(&format!("Fleet tasks in progress: {}\n", fleet_tasks.len()));
    }
    text.push_str("\nNext:\n");
    for (i, (what, how)) in suggestions.iter().enumerate() {
        text.push_str(&format!("  {}. {what} — {how}\n", i + 1));
    }
    for n in &notes {
        text.push_str(&format!("note: {n}\n"));
    }
    let data = json!({
        "session": number,
        "started": !peek,
        "last_session": last.map(|(n, when)| json!({"number": n, "when": when})),
        "recent_journal": recent,
        "open_tasks": open_tasks,
        "unread_bottles": unread.as_ref().map(|_| unread_count),
        "fleet_tasks": fleet.as_ref().map(|_| fleet_tasks.clone()),
        "suggestions": suggestions.iter().map(|(w, h)| json!({"what": w, "command": h})).collect::<Vec<_>>(),
        "notes": notes,
    });
    Ok(Output::new(data).with_text(text.trim_end().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_counted_from_the_trail() {
        let trail = "# Trail\n- 2026-11-26T10:00:00Z boot ada\n- 2026-11-26T10:01:00Z session 1 start\n- 2026-11-27T09:00:00Z session 2 start\n";
        assert_eq!(
            sessions(trail),
            vec![
                (1, "2026-11-26T10:01:00Z".into()),
                (2, "2026-11-27T09:00:00Z".into())
            ]
        );
    }
}
