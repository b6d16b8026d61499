//! `CAPABILITY.toml`: an agent's public profile, at the root of its workshop.
//!
//! ```toml
//! [agent]
//! name = "ada"
//! emoji = "🔬"
//! role = "researcher"
//! title = "Conformance lead"
//! status = "active"                       # active | idle | retired
//!
//! [capabilities]
//! flux-execution = { confidence = 0.9, stars = 4, learned = "2026-11-27", source = "plugin:flux-vm@0.1.0" }
//! architecture = { confidence = 0.95 }    # the short form: the rest has defaults
//!
//! [[links]]
//! to = "oracle1"
//! kind = "reports-to"
//!
//! [endpoints]
//! bottles = "../bottles.git"
//! bus = "nats://127.0.0.1:4222"
//! ```
//!
//! Files come from other agents, so they are read **leniently and defensively**: a
//! syntax error is an error with its line and column; anything else that is wrong (a
//! wrong type, a confidence outside 0–1, a name with control characters) is a
//! [`Warning`] with its position, and the rest of the file still reads. Files are
//! **edited in place** ([`CapabilityFile::set_capability`]): comments, order and keys
//! this version does not know survive a rewrite.
//!
//! ```
//! use capability::{CapabilityFile, Capability, Source};
//! let mut file = CapabilityFile::parse("[agent]\nname = \"ada\" # me\n[capabilities]\narchitecture = { confidence = 0.95 }\n").unwrap();
//! let (profile, warnings) = file.profile();
//! assert!(warnings.is_empty());
//! assert_eq!(profile.capabilities["architecture"].stars, 5);
//! file.set_capability("flux-execution", &Capability::new(0.9, Source::Plugin { name: "flux-vm".into(), version: "0.1.0".into() }));
//! assert!(file.to_string().contains("name = \"ada\" # me"));
//! ```

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use toml_edit::{DocumentMut, Item, TableLike, Value};

/// The file name, at a workshop's root.
pub const FILE_NAME: &str = "CAPABILITY.toml";

/// Files larger than this are not read (a profile is a few KiB).
pub const MAX_BYTES: usize = 1024 * 1024;

/// Names and strings longer than this are refused with a warning.
const MAX_TEXT: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CapabilityError {
    #[error("{FILE_NAME} line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{FILE_NAME} is {0} bytes, over the {MAX_BYTES}-byte limit")]
    TooLarge(usize),
}

/// Something in the file that was skipped or replaced, with where it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Warning {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{FILE_NAME} line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// `[agent]`. Other keys are allowed (and kept when datum rewrites the file).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Agent {
    /// The agent's name (a-z, 0-9 and '-', starting with a letter).
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default)]
    pub status: Status,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Active,
    Idle,
    Retired,
}

impl Status {
    fn parse(s: &str) -> Option<Status> {
        match s {
            "active" => Some(Status::Active),
            "idle" => Some(Status::Idle),
            "retired" => Some(Status::Retired),
            _ => None,
        }
    }
}

/// Where an ability came from: `"intrinsic"`, `"plugin:NAME@VERSION"` or `"transfer:AGENT"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Source {
    #[default]
    Intrinsic,
    Plugin {
        name: String,
        version: String,
    },
    Transfer {
        agent: String,
    },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Intrinsic => f.write_str("intrinsic"),
            Source::Plugin { name, version } => write!(f, "plugin:{name}@{version}"),
            Source::Transfer { agent } => write!(f, "transfer:{agent}"),
        }
    }
}

impl std::str::FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Source, String> {
        let bad = || {
            format!(
                "`{}` is not a source (intrinsic, plugin:NAME@VERSION or transfer:AGENT)",
                shown(s)
            )
        };
        if s == "intrinsic" {
            return Ok(Source::Intrinsic);
        }
        if let Some(rest) = s.strip_prefix("plugin:") {
            let (name, version) = rest.split_once('@').ok_or_else(bad)?;
            if !plain_name(name) || version.is_empty() || !printable(version) {
                return Err(bad());
            }
            return Ok(Source::Plugin {
                name: name.into(),
                version: version.into(),
            });
        }
        if let Some(agent) = s.strip_prefix("transfer:") {
            if !plain_name(agent) {
                return Err(bad());
            }
            return Ok(Source::Transfer {
                agent: agent.into(),
            });
        }
        Err(bad())
    }
}

impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Source, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Source {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Source".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "Where the ability came from.",
            "pattern": "^(intrinsic|plugin:[a-z][a-z0-9-]*@[^\\s]+|transfer:[a-z][a-z0-9-]*)$"
        })
    }
}

/// One entry of `[capabilities]`; only `confidence` is required (the short form
/// `NAME = { confidence = 0.9 }`). Other keys are allowed and kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Capability {
    /// 0.0 (claimed) to 1.0 (proven).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub confidence: f64,
    /// 1 to 5; when absent, derived from the confidence.
    #[serde(default)]
    #[schemars(range(min = 1, max = 5))]
    pub stars: u8,
    /// The day it was learned (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^\d{4}-\d{2}-\d{2}$"))]
    pub learned: Option<String>,
    #[serde(default)]
    pub source: Source,
}

impl Capability {
    /// A capability with stars derived from `confidence` and no date.
    pub fn new(confidence: f64, source: Source) -> Capability {
        Capability {
            confidence,
            stars: stars_for(confidence),
            learned: None,
            source,
        }
    }
}

/// 0.0 → 1 star … 1.0 → 5 stars.
pub fn stars_for(confidence: f64) -> u8 {
    (1.0 + (confidence.clamp(0.0, 1.0) * 4.0).round()) as u8
}

/// One `[[links]]` entry: a relation to another agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Link {
    pub to: String,
    /// `reports-to`, `peer`, `mentor`, … (free text).
    pub kind: String,
}

/// `[endpoints]`: where to reach the agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Endpoints {
    /// The git remote its bottles travel through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bottles: Option<String>,
    /// Its bus (`nats://…`, `tcp://…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
}

/// `[career]`: the agent's record as `datum career export --as toml` computed it from
/// the workshop (sessions, commits, bottles) plus its career entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Career {
    #[serde(default)]
    pub sessions: u64,
    #[serde(default)]
    pub commits: u64,
    #[serde(default)]
    pub bottles_sent: u64,
    #[serde(default)]
    pub bottles_received: u64,
    #[serde(default)]
    pub entries: Vec<CareerEntry>,
}

/// One `[[career.entries]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CareerEntry {
    /// `YYYY-MM-DD`.
    pub date: String,
    #[schemars(range(min = 1, max = 5))]
    pub stars: u8,
    pub title: String,
    #[serde(default)]
    pub notes: String,
}

/// The typed view of a file: what datum understands of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(
    title = "CAPABILITY.toml",
    description = "An agent's public profile (datum)."
)]
pub struct Profile {
    pub agent: Agent,
    #[serde(default)]
    pub capabilities: BTreeMap<String, Capability>,
    #[serde(default)]
    pub links: Vec<Link>,
    #[serde(default)]
    pub endpoints: Endpoints,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub career: Option<Career>,
}

/// The JSON Schema of the file's structure (checked in as `schema.json`).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Profile)).unwrap_or_default()
}

/// A parsed file, kept as its document so that rewriting it loses nothing.
#[derive(Debug, Clone)]
pub struct CapabilityFile {
    doc: DocumentMut,
}

fn printable(s: &str) -> bool {
    !s.chars()
        .any(|c| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
}

fn plain_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && s.len() <= 64
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
}

/// Text from another agent, made safe to show on one terminal line.
pub fn shown(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().take(MAX_TEXT) {
        if printable(&c.to_string()) {
            out.push(c);
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    out
}

/// 1-based line and column of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl CapabilityFile {
    /// Parse a file. Only a syntax error (or an oversized file) fails; everything else
    /// is judged by [`CapabilityFile::profile`].
    pub fn parse(text: &str) -> Result<CapabilityFile, CapabilityError> {
        if text.len() > MAX_BYTES {
            return Err(CapabilityError::TooLarge(text.len()));
        }
        let doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
            let (line, column) = e.span().map_or((1, 1), |s| position(text, s.start));
            CapabilityError::Syntax {
                line,
                column,
                message: shown(e.message().trim()),
            }
        })?;
        Ok(CapabilityFile { doc })
    }

    /// A new file for an agent with its intrinsic abilities (what `datum boot` writes).
    pub fn new(agent: &Agent, abilities: &[(String, Capability)]) -> CapabilityFile {
        let mut file = CapabilityFile {
            doc: DocumentMut::new(),
        };
        file.set_agent(agent);
        let mut caps = toml_edit::Table::new();
        caps.set_implicit(false);
        file.doc["capabilities"] = Item::Table(caps);
        for (name, cap) in abilities {
            file.set_capability(name, cap);
        }
        file
    }

    /// The typed view, and a warning for everything skipped or replaced.
    pub fn profile(&self) -> (Profile, Vec<Warning>) {
        // An editable document drops source positions, so the current text is parsed
        // once more (it is small) to say where each problem is.
        let text = self.doc.to_string();
        let parsed = match toml_edit::Document::parse(text.as_str()) {
            Ok(p) => p,
            Err(_) => return (Profile::default(), Vec::new()),
        };
        let mut reader = Reader {
            text: &text,
            warnings: Vec::new(),
        };
        let profile = reader.profile(parsed.as_table());
        (profile, reader.warnings)
    }

    /// Set `[agent]`'s known keys, keeping any others.
    pub fn set_agent(&mut self, agent: &Agent) {
        let table = self.table("agent");
        table.insert("name", toml_edit::value(agent.name.as_str()));
        for (key, value) in [
            ("emoji", &agent.emoji),
            ("role", &agent.role),
            ("title", &agent.title),
        ] {
            match value {
                Some(v) => {
                    table.insert(key, toml_edit::value(v.as_str()));
                }
                None => {
                    table.remove(key);
                }
            }
        }
        let status = match agent.status {
            Status::Active => "active",
            Status::Idle => "idle",
            Status::Retired => "retired",
        };
        table.insert("status", toml_edit::value(status));
    }

    /// Add or update one capability in place: an existing entry keeps its form
    /// (inline or `[capabilities.NAME]`) and any keys this version does not know.
    pub fn set_capability(&mut self, name: &str, cap: &Capability) {
        let caps = self.table("capabilities");
        let fields: [(&str, Option<Value>); 4] = [
            ("confidence", Some(Value::from(cap.confidence))),
            ("stars", Some(Value::from(i64::from(cap.stars)))),
            ("learned", cap.learned.as_deref().map(Value::from)),
            ("source", Some(Value::from(cap.source.to_string()))),
        ];
        match caps.get_mut(name).and_then(Item::as_table_like_mut) {
            Some(entry) => {
                for (key, value) in fields {
                    match value {
                        Some(v) => {
                            entry.insert(key, Item::Value(v));
                        }
                        None => {
                            entry.remove(key);
                        }
                    }
                }
            }
            None => {
                let mut inline = toml_edit::InlineTable::new();
                for (key, value) in fields {
                    if let Some(v) = value {
                        inline.insert(key, v);
                    }
                }
                caps.insert(name, toml_edit::value(inline));
            }
        }
    }

    /// Replace `[career]` (computed figures and entries; nothing in it is hand-kept).
    pub fn set_career(&mut self, career: &Career) {
        let mut table = toml_edit::Table::new();
        for (key, n) in [
            ("sessions", career.sessions),
            ("commits", career.commits),
            ("bottles_sent", career.bottles_sent),
            ("bottles_received", career.bottles_received),
        ] {
            table.insert(key, toml_edit::value(i64::try_from(n).unwrap_or(i64::MAX)));
        }
        let mut entries = toml_edit::ArrayOfTables::new();
        for e in &career.entries {
            let mut t = toml_edit::Table::new();
            t.insert("date", toml_edit::value(e.date.as_str()));
            t.insert("stars", toml_edit::value(i64::from(e.stars)));
            t.insert("title", toml_edit::value(e.title.as_str()));
            if !e.notes.is_empty() {
                t.insert("notes", toml_edit::value(e.notes.as_str()));
            }
            entries.push(t);
        }
        if !entries.is_empty() {
            table.insert("entries", Item::ArrayOfTables(entries));
        }
        self.doc["career"] = Item::Table(table);
    }

    /// Remove a capability; `false` when there was none.
    pub fn remove_capability(&mut self, name: &str) -> bool {
        self.doc
            .get_mut("capabilities")
            .and_then(Item::as_table_like_mut)
            .is_some_and(|t| t.remove(name).is_some())
    }

    /// A top-level table, created when missing (or replacing a non-table value).
    fn table(&mut self, key: &str) -> &mut dyn TableLike {
        let item = self
            .doc
            .entry(key)
            .or_insert_with(|| Item::Table(toml_edit::Table::new()));
        if !matches!(item, Item::Table(_) | Item::Value(Value::InlineTable(_))) {
            *item = Item::Table(toml_edit::Table::new());
        }
        match item {
            Item::Value(Value::InlineTable(t)) => t,
            Item::Table(t) => t,
            _ => unreachable!("a table was just put here"),
        }
    }
}

impl std::fmt::Display for CapabilityFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.doc)
    }
}

/// Builds the typed view, collecting warnings with positions.
struct Reader<'t> {
    text: &'t str,
    warnings: Vec<Warning>,
}

impl Reader<'_> {
    fn warn(&mut self, item: Option<&Item>, message: String) {
        let offset = item.and_then(Item::span).map_or(0, |s| s.start);
        // Spans are only kept for parsed text; a built document points at the start.
        let (line, column) = position(self.text, offset);
        self.warnings.push(Warning {
            line,
            column,
            message,
        });
    }

    fn text(&mut self, table: &dyn TableLike, key: &str, what: &str) -> Option<String> {
        let item = table.get(key)?;
        match item.as_str() {
            Some(s) if s.len() > MAX_TEXT => {
                self.warn(
                    Some(item),
                    format!("{what} is longer than {MAX_TEXT} bytes; ignored"),
                );
                None
            }
            Some(s) if !printable(s) => {
                self.warn(
                    Some(item),
                    format!("{what} `{}` holds control characters; ignored", shown(s)),
                );
                None
            }
            Some(s) => Some(s.to_owned()),
            None => {
                self.warn(Some(item), format!("{what} must be a string; ignored"));
                None
            }
        }
    }

    fn profile(&mut self, doc: &toml_edit::Table) -> Profile {
        let mut profile = Profile::default();
        match doc.get("agent").and_then(Item::as_table_like) {
            Some(agent) => profile.agent = self.agent(agent),
            None => self.warn(doc.get("agent"), "no [agent] table".into()),
        }
        if let Some(item) = doc.get("capabilities") {
            match item.as_table_like() {
                Some(caps) => {
                    for (name, entry) in caps.iter() {
                        if let Some(cap) = self.capability(name, entry) {
                            profile.capabilities.insert(name.to_owned(), cap);
                        }
                    }
                }
                None => self.warn(Some(item), "[capabilities] must be a table; ignored".into()),
            }
        }
        if let Some(item) = doc.get("links") {
            match item.as_array_of_tables() {
                Some(links) => {
                    for link in links.iter() {
                        let to = self.text(link, "to", "a link's `to`");
                        let kind = self.text(link, "kind", "a link's `kind`");
                        match (to, kind) {
                            (Some(to), kind) if plain_name(&to) => profile.links.push(Link {
                                to,
                                kind: kind.unwrap_or_else(|| "peer".into()),
                            }),
                            _ => self.warn(
                                Some(item),
                                "a [[links]] entry needs `to` (an agent name); ignored".into(),
                            ),
                        }
                    }
                }
                None => self.warn(
                    Some(item),
                    "`links` must be [[links]] tables; ignored".into(),
                ),
            }
        }
        if let Some(item) = doc.get("endpoints") {
            match item.as_table_like() {
                Some(e) => {
                    profile.endpoints.bottles = self.text(e, "bottles", "endpoints.bottles");
                    profile.endpoints.bus = self.text(e, "bus", "endpoints.bus");
                }
                None => self.warn(Some(item), "[endpoints] must be a table; ignored".into()),
            }
        }
        if let Some(item) = doc.get("career") {
            match item.as_table_like() {
                Some(c) => profile.career = Some(self.career(c)),
                None => self.warn(Some(item), "[career] must be a table; ignored".into()),
            }
        }
        profile
    }

    fn career(&mut self, t: &dyn TableLike) -> Career {
        let mut career = Career::default();
        for (key, slot) in [
            ("sessions", &mut career.sessions),
            ("commits", &mut career.commits),
            ("bottles_sent", &mut career.bottles_sent),
            ("bottles_received", &mut career.bottles_received),
        ] {
            if let Some(item) = t.get(key) {
                match item.as_integer().and_then(|n| u64::try_from(n).ok()) {
                    Some(n) => *slot = n,
                    None => self.warn(Some(item), format!("career.{key} must be a count; ignored")),
                }
            }
        }
        if let Some(item) = t.get("entries") {
            match item.as_array_of_tables() {
                Some(entries) => {
                    for e in entries.iter() {
                        let title = self.text(e, "title", "a career entry's `title`");
                        let date = self.text(e, "date", "a career entry's `date`");
                        let notes = self.text(e, "notes", "a career entry's `notes`");
                        let stars = e
                            .get("stars")
                            .and_then(Item::as_integer)
                            .filter(|n| (1..=5).contains(n))
                            .map_or(0, |n| n as u8);
                        match title {
                            Some(title) => career.entries.push(CareerEntry {
                                date: date.unwrap_or_default(),
                                stars,
                                title,
                                notes: notes.unwrap_or_default(),
                            }),
                            None => self.warn(
                                Some(item),
                                "a [[career.entries]] entry needs a `title`; ignored".into(),
                            ),
                        }
                    }
                }
                None => self.warn(
                    Some(item),
                    "`career.entries` must be [[career.entries]] tables; ignored".into(),
                ),
            }
        }
        career
    }

    fn agent(&mut self, t: &dyn TableLike) -> Agent {
        let name = self.text(t, "name", "agent.name").unwrap_or_default();
        if !plain_name(&name) {
            self.warn(
                t.get("name"),
                format!(
                    "agent.name `{}` is not a-z, 0-9 and '-' starting with a letter",
                    shown(&name)
                ),
            );
        }
        let status = match self.text(t, "status", "agent.status") {
            None => Status::Active,
            Some(s) => Status::parse(&s).unwrap_or_else(|| {
                self.warn(
                    t.get("status"),
                    format!(
                        "agent.status `{}` is not active, idle or retired; taken as active",
                        shown(&s)
                    ),
                );
                Status::Active
            }),
        };
        Agent {
            name,
            emoji: self.text(t, "emoji", "agent.emoji"),
            role: self.text(t, "role", "agent.role"),
            title: self.text(t, "title", "agent.title"),
            status,
        }
    }

    fn capability(&mut self, name: &str, entry: &Item) -> Option<Capability> {
        if name.len() > 64 || !printable(name) || name.is_empty() {
            self.warn(
                Some(entry),
                format!("capability `{}` has an unusable name; ignored", shown(name)),
            );
            return None;
        }
        let Some(t) = entry.as_table_like() else {
            self.warn(
                Some(entry),
                format!("capability `{name}` must be a table like {{ confidence = 0.9 }}; ignored"),
            );
            return None;
        };
        let confidence = match t
            .get("confidence")
            .and_then(|i| i.as_float().or_else(|| i.as_integer().map(|n| n as f64)))
        {
            Some(c) if (0.0..=1.0).contains(&c) => c,
            _ => {
                self.warn(
                    Some(entry),
                    format!("capability `{name}` needs a confidence from 0.0 to 1.0; ignored"),
                );
                return None;
            }
        };
        let stars = match t.get("stars") {
            None => stars_for(confidence),
            Some(item) => match item.as_integer() {
                Some(s @ 1..=5) => s as u8,
                _ => {
                    self.warn(
                        Some(item),
                        format!("capability `{name}`: stars must be 1 to 5; derived from the confidence"),
                    );
                    stars_for(confidence)
                }
            },
        };
        let learned = self
            .text(t, "learned", &format!("capability `{name}`: learned"))
            .filter(|d| {
                let ok = d.len() == 10
                    && d.chars().enumerate().all(|(i, c)| {
                        if i == 4 || i == 7 {
                            c == '-'
                        } else {
                            c.is_ascii_digit()
                        }
                    });
                if !ok {
                    self.warn(
                        t.get("learned"),
                        format!(
                            "capability `{name}`: learned `{}` is not YYYY-MM-DD; ignored",
                            shown(d)
                        ),
                    );
                }
                ok
            });
        let source = match self.text(t, "source", &format!("capability `{name}`: source")) {
            None => Source::Intrinsic,
            Some(s) => s.parse().unwrap_or_else(|why: String| {
                self.warn(
                    t.get("source"),
                    format!("capability `{name}`: {why}; taken as intrinsic"),
                );
                Source::Intrinsic
            }),
        };
        Some(Capability {
            confidence,
            stars,
            learned,
            source,
        })
    }
}
