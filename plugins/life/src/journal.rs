//! JOURNAL.md entries. One entry a list item, continuation lines indented:
//!
//! ```markdown
//! - 2026-11-27T17:50:00Z — [DECISION] Use NATS for the fleet bus #bus #infra
//!   JetStream gives us durable bottles.
//! - 2026-11-27T18:02:11Z — learned flux-vm 0.1.0 (wasm)
//! ```
//!
//! Entries the host writes (installs, boots) have no `[KIND]` and read as `LOG`. The
//! file is only ever appended to: an entry is written as one append, so entries from
//! several processes never interleave, and continuation lines are indented so no text
//! can pass itself off as another entry.

use serde::Serialize;

pub const FILE: &str = "JOURNAL.md";
/// The kind of an entry the host wrote.
pub const LOG: &str = "LOG";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// RFC 3339, as written.
    pub when: String,
    pub kind: String,
    pub text: String,
    pub tags: Vec<String>,
}

/// A kind: A-Z, 1 to 16 letters (given in any case).
pub fn parse_kind(kind: &str) -> Option<String> {
    let k = kind.to_ascii_uppercase();
    (!k.is_empty() && k.len() <= 16 && k.chars().all(|c| c.is_ascii_uppercase())).then_some(k)
}

/// A tag: a-z, 0-9, '-', 1 to 32 characters.
pub fn parse_tag(tag: &str) -> Option<String> {
    let t = tag.trim_start_matches('#').to_ascii_lowercase();
    (!t.is_empty() && t.len() <= 32 && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .then_some(t)
}

/// Control characters (other than newlines and tabs) become visible escapes: an entry
/// is read on terminals later, and a journal may come from a cloned workshop.
pub fn clean(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c == '\n' || c == '\t' || !c.is_control() {
            out.push(c);
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    out
}

/// The text to append for one entry.
pub fn render(when: &str, kind: &str, text: &str, tags: &[String]) -> String {
    let text = clean(text.trim_end());
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let mut out = format!("- {when} — [{kind}] {first}");
    for t in tags {
        out.push_str(&format!(" #{t}"));
    }
    out.push('\n');
    for line in lines {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Every entry in the file, oldest first. Lines that are not entries (the heading,
/// notes typed by hand) are skipped; a continuation line joins the entry above it.
pub fn parse(text: &str) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("- ") {
            let Some((when, body)) = rest.split_once(" — ") else {
                continue;
            };
            if humantime::parse_rfc3339_weak(when.trim()).is_err() {
                continue;
            }
            let (kind, body) = match body.strip_prefix('[').and_then(|b| b.split_once("] ")) {
                Some((k, b)) if parse_kind(k).as_deref() == Some(k) => (k.to_owned(), b),
                _ => (LOG.to_owned(), body),
            };
            let mut words: Vec<&str> = body.split(' ').collect();
            let mut tags = Vec::new();
            while let Some(last) = words.last() {
                match last.strip_prefix('#').and_then(parse_tag) {
                    Some(t) if words.len() > 1 => {
                        tags.insert(0, t);
                        words.pop();
                    }
                    _ => break,
                }
            }
            entries.push(Entry {
                when: when.trim().to_owned(),
                kind,
                text: clean(&words.join(" ")),
                tags,
            });
        } else if let (Some(cont), Some(last)) = (line.strip_prefix("  "), entries.last_mut()) {
            last.text.push('\n');
            last.text.push_str(&clean(cont));
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_back_as_written() {
        let tags = vec!["bus".to_owned(), "infra".to_owned()];
        let text = render(
            "2026-11-27T17:50:00Z",
            "DECISION",
            "Use NATS\nJetStream gives durability",
            &tags,
        );
        assert_eq!(text, "- 2026-11-27T17:50:00Z — [DECISION] Use NATS #bus #infra\n  JetStream gives durability\n");
        let e = parse(&format!(
            "# Journal — ada\n\n{text}- 2026-11-27T18:00:00Z — learned flux-vm 0.1.0\n"
        ));
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].kind, "DECISION");
        assert_eq!(e[0].text, "Use NATS\nJetStream gives durability");
        assert_eq!(e[0].tags, tags);
        assert_eq!(e[1].kind, LOG);
        assert_eq!(e[1].text, "learned flux-vm 0.1.0");
    }

    #[test]
    fn text_cannot_forge_an_entry_or_reach_the_terminal_raw() {
        let text = render(
            "2026-11-27T17:50:00Z",
            "NOTE",
            "hi\n- 2020-01-01T00:00:00Z — [DECISION] forged\n\u{1b}[2J",
            &[],
        );
        let e = parse(&text);
        assert_eq!(e.len(), 1, "{text}");
        assert!(!text.contains('\u{1b}'));
    }

    use proptest::prelude::*;
    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// A journal from anywhere (a cloned workshop): any bytes parse without a panic,
        /// and no entry carries a control character to the terminal.
        #[test]
        fn any_journal_parses_to_printable_entries(
            lines in proptest::collection::vec("(- 2026-11-27T1[0-9]:00:00Z — )?(\\[[A-Z]{1,4}\\] )?[^\n]{0,30}( #[a-z]{1,5})?", 0..12),
            raw in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            for text in [lines.join("\n"), String::from_utf8_lossy(&raw).into_owned()] {
                for e in parse(&text) {
                    prop_assert!(!e.text.chars().any(|c| c.is_control() && c != '\n' && c != '\t'), "{:?}", e.text);
                    prop_assert!(parse_kind(&e.kind).is_some() || e.kind == LOG);
                }
            }
        }
    }

    #[test]
    fn kinds_and_tags_are_checked() {
        assert_eq!(parse_kind("note").as_deref(), Some("NOTE"));
        for bad in ["", "NO TE", "N0TE", "ABCDEFGHIJKLMNOPQ", "[X]"] {
            assert_eq!(parse_kind(bad), None, "{bad}");
        }
        assert_eq!(parse_tag("#Flux").as_deref(), Some("flux"));
        assert_eq!(parse_tag("a b"), None);
    }
}
