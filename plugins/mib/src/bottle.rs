//! The bottle file: a small header between `---` lines, then a markdown body.
//!
//! ```text
//! ---
//! id: 20261127T025609123Z-alice-deploy-ready-3f9c2a1b
//! from: alice
//! to: bob
//! subject: Deploy ready
//! type: message
//! priority: normal
//! sent: 2026-11-27T02:56:09.123Z
//! reply-to: 20261126T…            (optional)
//! ---
//!
//! The body, exactly as written.
//! ```
//!
//! Header values are single lines; every name that becomes part of a path is checked
//! here, so nothing from another agent can reach outside its inbox.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The folder (workshop-relative) every inbox lives in.
pub const ROOT: &str = "message-in-a-bottle";
/// The inbox every agent reads besides its own (`bottle broadcast`).
pub const ALL: &str = "all";
/// Longest subject accepted, in characters.
pub const MAX_SUBJECT: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BottleType {
    Message,
    Signal,
    CheckIn,
    Alert,
    Deliverable,
    Handoff,
    Question,
}

impl BottleType {
    pub const ALL: [BottleType; 7] = [
        BottleType::Message,
        BottleType::Signal,
        BottleType::CheckIn,
        BottleType::Alert,
        BottleType::Deliverable,
        BottleType::Handoff,
        BottleType::Question,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BottleType::Message => "message",
            BottleType::Signal => "signal",
            BottleType::CheckIn => "check-in",
            BottleType::Alert => "alert",
            BottleType::Deliverable => "deliverable",
            BottleType::Handoff => "handoff",
            BottleType::Question => "question",
        }
    }

    pub fn parse(s: &str) -> Result<Self, BottleError> {
        BottleType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| BottleError::Invalid(format!(
                "unknown bottle type `{}`; use one of message, signal, check-in, alert, deliverable, handoff, question",
                neutralise(s)
            )))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Normal,
    High,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }

    pub fn parse(s: &str) -> Result<Self, BottleError> {
        match s {
            "low" => Ok(Priority::Low),
            "normal" => Ok(Priority::Normal),
            "high" => Ok(Priority::High),
            other => Err(BottleError::Invalid(format!(
                "unknown priority `{}`; use low, normal or high",
                neutralise(other)
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BottleError {
    /// Input a user or agent gave that cannot become a bottle.
    #[error("{0}")]
    Invalid(String),
    /// A bottle file that does not parse.
    #[error("{0}")]
    Malformed(String),
}

/// Which format a bottle file is in: datum's own, or the Python prototype's (read
/// leniently, written with `--compat`; see `prototype.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    #[default]
    Datum,
    Prototype,
}

impl Dialect {
    pub fn is_datum(&self) -> bool {
        *self == Dialect::Datum
    }
}

/// One bottle, as written and as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bottle {
    pub id: String,
    pub from: String,
    pub to: String,
    pub subject: String,
    #[serde(rename = "type")]
    pub kind: BottleType,
    pub priority: Priority,
    /// Milliseconds since the Unix epoch.
    pub sent_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Extra `x-…` header fields (the I2I bridge keeps its own fields here).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
    pub body: String,
    /// The file's format (datum's unless it was read from, or is to be written as, the
    /// prototype's).
    #[serde(default, skip_serializing_if = "Dialect::is_datum")]
    pub dialect: Dialect,
}

/// Agent names become folder names: the plugin-name alphabet, or `all` for broadcasts.
pub fn check_agent(name: &str) -> Result<(), BottleError> {
    if datum_plugin_api::valid_name(name) {
        Ok(())
    } else {
        Err(BottleError::Invalid(format!(
            "agent name `{}` is not allowed: use 1-64 characters of a-z, 0-9 and '-', starting with a letter",
            neutralise(name)
        )))
    }
}

/// Subjects are one printable line: control characters (terminal escapes, newlines)
/// are refused rather than silently changed, so what was sent is what arrives.
pub fn check_subject(subject: &str) -> Result<(), BottleError> {
    if subject.trim().is_empty() {
        return Err(BottleError::Invalid(
            "the subject is empty; give a few words".into(),
        ));
    }
    if subject.chars().count() > MAX_SUBJECT {
        return Err(BottleError::Invalid(format!(
            "the subject is over {MAX_SUBJECT} characters; put the detail in the body"
        )));
    }
    if let Some(c) = subject.chars().find(|c| is_unsafe_char(*c)) {
        return Err(BottleError::Invalid(format!(
            "the subject contains the control character U+{:04X}; subjects are one printable line",
            c as u32
        )));
    }
    Ok(())
}

/// Ids name files: the characters the id generator produces, nothing else.
pub fn check_id(id: &str) -> Result<(), BottleError> {
    let ok = !id.is_empty()
        && id.len() <= 160
        // `_`: the prototype's file names (`2026-11-27_subject`).
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !id.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(BottleError::Invalid(format!(
            "`{}` is not a bottle id (ids look like 20261127T025609123Z-alice-hello-3f9c2a1b); see `datum bottle check`",
            neutralise(id)
        )))
    }
}

/// Control characters (C0, DEL, C1) and the bidirectional overrides that can make text
/// display differently from what it is.
pub(crate) fn is_unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Text from other agents made safe to print on a terminal: newlines and tabs stay,
/// every other control character (ESC above all) is shown as `\u{..}` instead.
pub fn neutralise(text: &str) -> String {
    shown(text, true)
}

/// [`neutralise`] for a field shown on one line (an id, a name, a path): newlines and
/// tabs are escaped too, so peer text cannot start a line of its own.
pub fn neutralise_line(text: &str) -> String {
    shown(text, false)
}

fn shown(text: &str, keep_lines: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if (keep_lines && (c == '\n' || c == '\t')) || !is_unsafe_char(c) {
            out.push(c);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    out
}

/// The subject as a file-name fragment: lower-case ASCII letters and digits joined by
/// single dashes, at most 40 characters.
pub fn slug(subject: &str) -> String {
    let mut out = String::new();
    for c in subject.chars() {
        if c.is_ascii_alphanumeric() {
            if out.len() >= 40 {
                break;
            }
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() {
        "bottle".into()
    } else {
        out
    }
}

/// `2026-11-27T02:56:09.123Z` for a millisecond timestamp.
pub fn rfc3339(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

fn parse_rfc3339(s: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339(s).ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
}

impl Bottle {
    /// A new bottle with a fresh id. Validates every field a path or a terminal sees.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        from: &str,
        to: &str,
        subject: &str,
        kind: BottleType,
        priority: Priority,
        sent_ms: u64,
        reply_to: Option<String>,
        body: String,
    ) -> Result<Bottle, BottleError> {
        check_agent(from)?;
        if to != ALL {
            check_agent(to)?;
        }
        check_subject(subject)?;
        if let Some(r) = &reply_to {
            check_id(r)?;
        }
        let mut bottle = Bottle {
            id: String::new(),
            from: from.into(),
            to: to.into(),
            subject: subject.into(),
            kind,
            priority,
            sent_ms,
            reply_to,
            extra: BTreeMap::new(),
            body,
            dialect: Dialect::Datum,
        };
        bottle.id = bottle.fresh_id(0);
        Ok(bottle)
    }

    /// `TIME-FROM-SLUG-HASH[-N]`: sortable by time, readable, and unique across agents
    /// and workshops (the hash covers the whole content); `attempt` > 0 resolves the
    /// rare same-millisecond collision of identical bottles.
    pub fn fresh_id(&self, attempt: u32) -> String {
        if self.dialect == Dialect::Prototype {
            return crate::prototype::file_id(self, attempt);
        }
        let stamp: String = rfc3339(self.sent_ms)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let mut h = Sha256::new();
        for part in [&self.from, &self.to, &self.subject, &self.body] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        h.update(self.sent_ms.to_le_bytes());
        let digest = hex::encode(&h.finalize()[..4]);
        let base = format!("{stamp}-{}-{}-{digest}", self.from, slug(&self.subject));
        if attempt == 0 {
            base
        } else {
            format!("{base}-{}", attempt + 1)
        }
    }

    /// Inbox folder of the recipient, workshop-relative.
    pub fn inbox(agent: &str) -> String {
        format!("{ROOT}/for-{agent}")
    }

    pub fn path(&self) -> String {
        format!("{}/{}.md", Bottle::inbox(&self.to), self.id)
    }

    pub fn render(&self) -> String {
        if self.dialect == Dialect::Prototype {
            return crate::prototype::render(self);
        }
        let mut out = String::from("---\n");
        let _ = writeln!(out, "id: {}", self.id);
        let _ = writeln!(out, "from: {}", self.from);
        let _ = writeln!(out, "to: {}", self.to);
        let _ = writeln!(out, "subject: {}", self.subject);
        let _ = writeln!(out, "type: {}", self.kind.as_str());
        let _ = writeln!(out, "priority: {}", self.priority.as_str());
        let _ = writeln!(out, "sent: {}", rfc3339(self.sent_ms));
        if let Some(r) = &self.reply_to {
            let _ = writeln!(out, "reply-to: {r}");
        }
        for (k, v) in &self.extra {
            let _ = writeln!(out, "x-{k}: {v}");
        }
        out.push_str("---\n\n");
        out.push_str(&self.body);
        out
    }

    /// Parse a bottle file. Anything missing or out of place is reported by name.
    pub fn parse(text: &str) -> Result<Bottle, BottleError> {
        let bad = |m: String| BottleError::Malformed(m);
        let rest = text
            .strip_prefix("---\n")
            .ok_or_else(|| bad("does not start with a `---` header line".into()))?;
        let end = rest
            .find("\n---\n")
            .ok_or_else(|| bad("the header has no closing `---` line".into()))?;
        let header = &rest[..end];
        let after = &rest[end + 5..];
        let body = after.strip_prefix('\n').unwrap_or(after).to_owned();
        let mut fields = BTreeMap::new();
        let mut extra = BTreeMap::new();
        for line in header.lines() {
            let (k, v) = line
                .split_once(": ")
                .or_else(|| line.strip_suffix(':').map(|k| (k, "")))
                .ok_or_else(|| {
                    bad(format!(
                        "header line `{}` is not `key: value`",
                        neutralise(line)
                    ))
                })?;
            if let Some(x) = k.strip_prefix("x-") {
                extra.insert(x.to_owned(), v.to_owned());
            } else if fields.insert(k.to_owned(), v.to_owned()).is_some() {
                return Err(bad(format!(
                    "header field `{}` appears twice",
                    neutralise(k)
                )));
            }
        }
        let mut take = |k: &str| {
            fields
                .remove(k)
                .ok_or_else(|| bad(format!("the header has no `{k}` field")))
        };
        let id = take("id")?;
        let from = take("from")?;
        let to = take("to")?;
        let subject = take("subject")?;
        let kind = take("type")?;
        let priority = take("priority")?;
        let sent = take("sent")?;
        let reply_to = fields.remove("reply-to");
        let invalid = |e: BottleError| bad(e.to_string());
        check_id(&id).map_err(invalid)?;
        check_agent(&from).map_err(invalid)?;
        if to != ALL {
            check_agent(&to).map_err(invalid)?;
        }
        check_subject(&subject).map_err(invalid)?;
        if let Some(r) = &reply_to {
            check_id(r).map_err(invalid)?;
        }
        let sent_ms = parse_rfc3339(&sent).ok_or_else(|| {
            bad(format!(
                "`sent: {}` is not an RFC 3339 time",
                neutralise(&sent)
            ))
        })?;
        Ok(Bottle {
            id,
            from,
            to,
            subject,
            kind: BottleType::parse(&kind).map_err(invalid)?,
            priority: Priority::parse(&priority).map_err(invalid)?,
            sent_ms,
            reply_to,
            extra,
            body,
            dialect: Dialect::Datum,
        })
    }

    /// Read the bottle file `name` found in the inbox folder `folder` (`for-AGENT`), in
    /// whichever format it is. A datum bottle's header must agree with where it lies
    /// (anything else is a copy or a forgery, and reading it could mislead); a
    /// prototype bottle takes its id from the file name and its recipient from the
    /// folder.
    pub fn read_file(text: &str, name: &str, folder: &str) -> Result<Bottle, BottleError> {
        if !crate::prototype::is_datum(text) {
            return crate::prototype::parse(text, name, folder);
        }
        let b = Bottle::parse(text)?;
        if format!("{}.md", b.id) != name || format!("for-{}", b.to) != folder {
            return Err(BottleError::Malformed(format!(
                "its header (id {}, to {}) does not match where it lies",
                b.id, b.to
            )));
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Bottle {
        Bottle::new(
            "alice",
            "bob",
            "Deploy ready",
            BottleType::Deliverable,
            Priority::High,
            1_795_000_000_123,
            None,
            "It is on staging.\n".into(),
        )
        .unwrap()
    }

    #[test]
    fn a_bottle_reads_back_as_written() {
        let b = sample();
        assert!(b.id.starts_with("20261118T"), "{}", b.id);
        assert!(b.id.contains("-alice-deploy-ready-"));
        assert_eq!(Bottle::parse(&b.render()).unwrap(), b);
        assert_eq!(b.path(), format!("message-in-a-bottle/for-bob/{}.md", b.id));
    }

    #[test]
    fn hostile_names_never_become_paths() {
        for name in ["../x", "/etc", "a/b", "Bob", "", "x\u{1b}[2J", "a b", "-x"] {
            assert!(check_agent(name).is_err(), "{name:?} accepted");
        }
        for id in ["../x", "a/b", "x.md", "", "-rf"] {
            assert!(check_id(id).is_err(), "{id:?} accepted");
        }
    }

    #[test]
    fn control_characters_in_subjects_are_refused() {
        for s in [
            "\u{1b}[31mred",
            "two\nlines",
            "bell\u{7}",
            "\u{202e}gnp.exe",
            "  ",
        ] {
            assert!(check_subject(s).is_err(), "{s:?} accepted");
        }
        assert!(check_subject("Größe → ok ✓").is_ok());
    }

    #[test]
    fn terminal_escapes_are_shown_not_obeyed() {
        assert_eq!(neutralise("a\u{1b}[2Jb\nc"), "a\\u{1b}[2Jb\nc");
    }

    #[test]
    fn malformed_headers_say_what_is_wrong() {
        let err = Bottle::parse("no header").unwrap_err().to_string();
        assert!(err.contains("---"), "{err}");
        let text = sample().render().replace("from: alice\n", "");
        let err = Bottle::parse(&text).unwrap_err().to_string();
        assert!(err.contains("`from`"), "{err}");
        let text = sample().render().replace("to: bob", "to: ../../etc");
        assert!(Bottle::parse(&text).is_err());
    }

    #[test]
    fn slugs_are_short_and_safe() {
        assert_eq!(slug("Deploy ready!"), "deploy-ready");
        assert_eq!(slug("../../etc/passwd"), "etc-passwd");
        assert_eq!(slug("✓✓"), "bottle");
        assert!(slug(&"x".repeat(100)).len() <= 40);
    }
}
