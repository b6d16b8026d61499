//! The Python prototype's bottles (datum-runtime, `datum-rt`), read leniently and
//! written on request (`--compat`) for agents that read nothing else.
//!
//! ```text
//! message-in-a-bottle/for-bob/2026-11-27_deploy-ready.md
//!
//! ---
//! from: alice
//! to: bob
//! date: 2026-11-27T02:56:09Z
//! type: deliverable
//! subject: Deploy ready
//! ---
//!
//! The body, as written.
//! ```
//!
//! Reading follows what its writers did: the header may or may not be fenced by `---`
//! (unfenced, it ends at the first blank line), keys in any case, values optionally
//! quoted, `\r\n` line ends, `date` as a day, a time without zone or RFC 3339 with an
//! offset; no `priority` means normal; the id is the file name. Nothing is lost: a
//! value that cannot be represented (an unknown type, an unreadable date, unknown keys)
//! is kept among the bottle's `extra` fields and shown, not dropped. What would be
//! *misread* is refused instead (the file is reported as malformed and left alone): a
//! header field given twice, a `to` that disagrees with the folder, names that are not
//! agent names, subjects with control characters.
//!
//! Writing keeps the prototype's file names but not its bug: a second bottle for the
//! same recipient, day and subject gets `-2` (then `-3`, …) and never overwrites.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::bottle::{
    check_agent, check_id, check_subject, is_unsafe_char, neutralise, rfc3339, slug, Bottle,
    BottleError, BottleType, Dialect, Priority, ALL,
};

/// Longest header accepted, in lines (a header is a handful of fields).
const MAX_HEADER_LINES: usize = 64;

/// Whether `text` is a datum bottle (they always begin with `---` and an `id:` line);
/// anything else is read as the prototype's.
pub fn is_datum(text: &str) -> bool {
    text.starts_with("---\nid: ")
}

/// `YYYY-MM-DD_SLUG` (attempt 0), then `YYYY-MM-DD_SLUG-2`, … — the stem of the file.
pub fn file_id(bottle: &Bottle, attempt: u32) -> String {
    let day: String = rfc3339(bottle.sent_ms).chars().take(10).collect();
    let base = format!("{day}_{}", slug(&bottle.subject));
    if attempt == 0 {
        base
    } else {
        format!("{base}-{}", attempt + 1)
    }
}

/// The prototype's file: a fenced header of its five fields (plus `priority` and
/// `reply-to` when they carry something), then the body.
pub fn render(bottle: &Bottle) -> String {
    let mut out = String::from("---\n");
    let _ = writeln!(out, "from: {}", bottle.from);
    let _ = writeln!(out, "to: {}", bottle.to);
    let _ = writeln!(out, "date: {}", rfc3339(bottle.sent_ms));
    let _ = writeln!(out, "type: {}", bottle.kind.as_str());
    let _ = writeln!(out, "subject: {}", bottle.subject);
    if bottle.priority != Priority::Normal {
        let _ = writeln!(out, "priority: {}", bottle.priority.as_str());
    }
    if let Some(r) = &bottle.reply_to {
        let _ = writeln!(out, "reply-to: {r}");
    }
    out.push_str("---\n\n");
    out.push_str(&bottle.body);
    out
}

/// Read a prototype bottle named `file_name` found in `folder` (`for-AGENT`).
pub fn parse(text: &str, file_name: &str, folder: &str) -> Result<Bottle, BottleError> {
    let bad = |m: String| BottleError::Malformed(m);
    let id = file_name
        .strip_suffix(".md")
        .ok_or_else(|| bad("a bottle file ends in .md".into()))?;
    check_id(id).map_err(|e| bad(e.to_string()))?;
    let recipient = folder
        .strip_prefix("for-")
        .ok_or_else(|| bad(format!("`{}` is not an inbox folder", neutralise(folder))))?;
    let text = text.replace("\r\n", "\n");
    let (header, body) = split(&text).ok_or_else(|| {
        bad(
            "it has no header of `key: value` lines (neither a datum nor a prototype bottle)"
                .into(),
        )
    })?;
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    for line in header.lines().filter(|l| !l.trim().is_empty()) {
        let (k, v) = line.split_once(':').ok_or_else(|| {
            bad(format!(
                "header line `{}` is not `key: value`",
                neutralise(line)
            ))
        })?;
        let key = k.trim().to_ascii_lowercase().replace('_', "-");
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(bad(format!(
                "header key `{}` is not a word",
                neutralise(k.trim())
            )));
        }
        let value = unquote(v.trim());
        // Terminal escapes and bidirectional overrides are refused in every field (a
        // subject, a kept unknown type), not carried into what is shown.
        if value.chars().any(is_unsafe_char) {
            return Err(bad(format!(
                "header field `{key}` holds a control character"
            )));
        }
        if fields.insert(key.clone(), value.to_owned()).is_some() {
            return Err(bad(format!("header field `{key}` appears twice")));
        }
    }
    let invalid = |e: BottleError| bad(e.to_string());
    let mut extra = BTreeMap::new();
    let from = fields
        .remove("from")
        .ok_or_else(|| bad("the header has no `from` field".into()))?
        .to_ascii_lowercase();
    check_agent(&from).map_err(invalid)?;
    let to = match fields.remove("to") {
        Some(to) => {
            let to = to.to_ascii_lowercase();
            if to != recipient {
                return Err(bad(format!(
                    "its header says it is for `{}` but it lies in {folder}/",
                    neutralise(&to)
                )));
            }
            to
        }
        None => recipient.to_owned(),
    };
    if to != ALL {
        check_agent(&to).map_err(invalid)?;
    }
    let subject = match fields.remove("subject") {
        Some(s) => s,
        // The file name carries the subject's slug: better than no subject at all.
        None => id.split_once('_').map_or(id, |(_, s)| s).replace('-', " "),
    };
    check_subject(&subject).map_err(invalid)?;
    let kind = match fields.remove("type") {
        None => BottleType::Message,
        Some(t) => {
            let wanted = t.to_ascii_lowercase().replace(['_', ' '], "-");
            let wanted = if wanted == "checkin" {
                "check-in".to_owned()
            } else {
                wanted
            };
            BottleType::parse(&wanted).unwrap_or_else(|_| {
                extra.insert("prototype-type".to_owned(), t.clone());
                BottleType::Message
            })
        }
    };
    let priority = match fields.remove("priority") {
        None => Priority::Normal,
        Some(p) => Priority::parse(&p.to_ascii_lowercase()).unwrap_or_else(|_| {
            extra.insert("prototype-priority".to_owned(), p.clone());
            Priority::Normal
        }),
    };
    let day_of_file = id.get(..10).and_then(parse_date);
    let sent_ms = match fields.remove("date") {
        Some(d) => match parse_date(&d) {
            Some(ms) => ms,
            None => {
                extra.insert("prototype-date".to_owned(), d.clone());
                day_of_file.ok_or_else(|| {
                    bad(format!(
                        "`date: {}` is not a date, and the file name does not start with one",
                        neutralise(&d)
                    ))
                })?
            }
        },
        None => day_of_file.ok_or_else(|| {
            bad("the header has no `date` and the file name does not start with one".into())
        })?,
    };
    let reply_to = match fields
        .remove("reply-to")
        .or_else(|| fields.remove("in-reply-to"))
    {
        Some(r) => {
            check_id(&r).map_err(invalid)?;
            Some(r)
        }
        None => None,
    };
    extra.extend(fields);
    Ok(Bottle {
        id: id.to_owned(),
        from,
        to,
        subject,
        kind,
        priority,
        sent_ms,
        reply_to,
        extra,
        body: body.to_owned(),
        dialect: Dialect::Prototype,
    })
}

/// The header and the body: fenced by `---` lines, or unfenced up to the first blank
/// line. `None` when there is no header at all.
fn split(text: &str) -> Option<(&str, &str)> {
    if let Some(rest) = text.strip_prefix("---\n") {
        let end = rest
            .find("\n---\n")
            .map(|i| (i, i + 5))
            .or_else(|| rest.strip_suffix("\n---").map(|h| (h.len(), rest.len())))?;
        let header = &rest[..end.0];
        let body = &rest[end.1..];
        if header.lines().count() > MAX_HEADER_LINES {
            return None;
        }
        return Some((header, body.strip_prefix('\n').unwrap_or(body)));
    }
    let end = text.find("\n\n").unwrap_or(text.len());
    let header = &text[..end];
    let looks_like_header = header.lines().next().is_some_and(|l| {
        l.split_once(':')
            .is_some_and(|(k, _)| !k.trim().contains(' '))
    });
    if !looks_like_header || header.lines().count() > MAX_HEADER_LINES {
        return None;
    }
    let body = text.get(end + 2..).unwrap_or("");
    Some((header, body))
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

/// Milliseconds since the epoch for `2026-11-27`, `2026-11-27 02:56[:09]`,
/// `2026-11-27T02:56:09[.123]` (taken as UTC) and RFC 3339 with `Z` or an offset.
pub fn parse_date(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.len() < 10 || !s.is_char_boundary(10) {
        return None;
    }
    let (day, rest) = s.split_at(10);
    if rest.is_empty() {
        return to_ms(&format!("{day}T00:00:00Z"));
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    // A trailing zone: `Z`, or `+HH:MM` / `-HH:MM` (applied by hand: humantime reads
    // only UTC).
    let (clock, offset_s) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0i64)
    } else if rest.len() > 6 && rest.is_char_boundary(rest.len() - 6) {
        let (c, zone) = rest.split_at(rest.len() - 6);
        match (zone.as_bytes()[0], zone[1..].split_once(':')) {
            (sign @ (b'+' | b'-'), Some((h, m))) => {
                let h: i64 = h.parse().ok()?;
                let m: i64 = m.parse().ok()?;
                let secs = h * 3600 + m * 60;
                (c, if sign == b'+' { secs } else { -secs })
            }
            _ => (rest, 0),
        }
    } else {
        (rest, 0)
    };
    let clock = if clock.len() == 5 {
        format!("{clock}:00")
    } else {
        clock.to_owned()
    };
    let ms = to_ms(&format!("{day}T{clock}Z"))? as i64 - offset_s * 1000;
    u64::try_from(ms).ok()
}

fn to_ms(rfc: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(rfc.trim_end_matches('Z')).ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &str = "---\nfrom: alice\nto: bob\ndate: 2026-11-27\ntype: check-in\nsubject: Morning\n---\n\nAll well.\n";

    #[test]
    fn a_prototype_bottle_reads_with_its_file_name_as_id() {
        let b = parse(PLAIN, "2026-11-27_morning.md", "for-bob").unwrap();
        assert_eq!(b.id, "2026-11-27_morning");
        assert_eq!((b.from.as_str(), b.to.as_str()), ("alice", "bob"));
        assert_eq!(b.kind, BottleType::CheckIn);
        assert_eq!(b.priority, Priority::Normal);
        assert_eq!(rfc3339(b.sent_ms), "2026-11-27T00:00:00.000Z");
        assert_eq!(b.body, "All well.\n");
        assert_eq!(b.dialect, Dialect::Prototype);
    }

    #[test]
    fn what_its_writers_varied_is_read_leniently() {
        let text = "From: Alice\r\nSubject: \"Deploy: ready\"\r\nType: CheckIn\r\nDate: 2026-11-27 14:05\r\nmood: fine\r\n\r\nBody\r\n";
        let b = parse(text, "2026-11-27_deploy-ready-2.md", "for-bob").unwrap();
        assert_eq!(b.from, "alice");
        assert_eq!(b.to, "bob", "the folder says who it is for");
        assert_eq!(b.subject, "Deploy: ready");
        assert_eq!(b.kind, BottleType::CheckIn);
        assert_eq!(rfc3339(b.sent_ms), "2026-11-27T14:05:00.000Z");
        assert_eq!(b.extra.get("mood").map(String::as_str), Some("fine"));
        assert_eq!(b.body, "Body\n");
    }

    #[test]
    fn nothing_is_lost_when_a_value_does_not_fit() {
        let text = "---\nfrom: alice\ntype: telegram\ndate: last tuesday\npriority: urgent\nsubject: s\n---\nb";
        let b = parse(text, "2026-11-20_s.md", "for-bob").unwrap();
        assert_eq!(b.kind, BottleType::Message);
        assert_eq!(b.extra["prototype-type"], "telegram");
        assert_eq!(b.extra["prototype-date"], "last tuesday");
        assert_eq!(b.extra["prototype-priority"], "urgent");
        assert_eq!(rfc3339(b.sent_ms), "2026-11-20T00:00:00.000Z");
    }

    #[test]
    fn what_would_be_misread_is_refused() {
        for (text, name, why) in [
            (
                "---\nfrom: alice\nfrom: eve\nsubject: s\n---\n",
                "2026-11-27_s.md",
                "twice",
            ),
            (
                "---\nfrom: alice\nto: carol\nsubject: s\n---\n",
                "2026-11-27_s.md",
                "lies in",
            ),
            (
                "---\nfrom: ../../etc\nsubject: s\n---\n",
                "2026-11-27_s.md",
                "agent name",
            ),
            (
                "---\nfrom: alice\nsubject: a\u{1b}[2Jb\n---\n",
                "2026-11-27_s.md",
                "control",
            ),
            (
                "---\nfrom: alice\nsubject: s\n---\n",
                "../x.md",
                "bottle id",
            ),
            (
                "---\nfrom: alice\nsubject: s\n---\n",
                "no-date.md",
                "no `date`",
            ),
            ("just some text\n", "2026-11-27_s.md", "no header"),
        ] {
            let e = parse(text, name, "for-bob").unwrap_err().to_string();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn dates_in_every_form_the_prototype_wrote() {
        for (text, want) in [
            ("2026-11-27", "2026-11-27T00:00:00.000Z"),
            ("2026-11-27 02:56:09", "2026-11-27T02:56:09.000Z"),
            ("2026-11-27T02:56:09.5", "2026-11-27T02:56:09.500Z"),
            ("2026-11-27T02:56:09Z", "2026-11-27T02:56:09.000Z"),
            ("2026-11-27T04:56:09+02:00", "2026-11-27T02:56:09.000Z"),
            ("2026-11-26T21:56:09-05:00", "2026-11-27T02:56:09.000Z"),
        ] {
            assert_eq!(
                parse_date(text).map(rfc3339).as_deref(),
                Some(want),
                "{text}"
            );
        }
        for text in [
            "",
            "27/11/2026",
            "2026-13-40",
            "2026-11-27X",
            "2026-11-27T99:00",
        ] {
            assert_eq!(parse_date(text), None, "{text}");
        }
    }

    #[test]
    fn written_then_read_gives_the_same_bottle() {
        let mut b = Bottle::new(
            "alice",
            "bob",
            "Deploy ready",
            BottleType::Deliverable,
            Priority::High,
            1_795_000_000_123,
            None,
            "On staging.\n".into(),
        )
        .unwrap();
        b.dialect = Dialect::Prototype;
        b.id = file_id(&b, 0);
        assert_eq!(b.id, "2026-11-18_deploy-ready");
        assert_eq!(file_id(&b, 1), "2026-11-18_deploy-ready-2");
        let back = parse(&render(&b), &format!("{}.md", b.id), "for-bob").unwrap();
        assert_eq!(back, b);
    }
}
