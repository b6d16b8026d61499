//! The commands, over the host's file, key-value, clock and git services.

use std::collections::{BTreeMap, BTreeSet};

use datum_plugin_api::{Format, Host, Output, PluginError, Request};
use serde_json::{json, Value};

use crate::bottle::{
    check_agent, check_id, neutralise, neutralise_line, Bottle, BottleError, BottleType, Dialect,
    Priority, ALL, ROOT,
};
use crate::i2i::{I2iType, Message};

/// Attempts at a fresh name before giving up (each one is a no-clobber create).
const MAX_NAME_ATTEMPTS: u32 = 64;
/// Key in the plugin's key-value store holding the ids this agent has read.
const READ_KEY: &str = "read";
/// Key holding the format this workshop writes bottles in (`datum` or `prototype`).
const FORMAT_KEY: &str = "format";
/// Key holding the identities of I2I messages already turned into bottles.
const INGESTED_KEY: &str = "i2i-ingested";
/// How many ingested identities are remembered (the newest): enough for any drop
/// folder or bus history, bounded so the key stays small.
const INGESTED_KEEP: usize = 10_000;
/// Where the prototype's bridge (or an operator) drops I2I JSON files.
pub const DROP_DIR: &str = "i2i-inbox";
/// An I2I file larger than this is not read (reported instead).
const MAX_I2I_FILE: usize = 1024 * 1024;
/// Newest bus messages looked at per `fleet receive --subject` (the in-process bus
/// keeps at most 1000).
const BUS_WINDOW: i64 = 1000;

pub struct Mailbox<'r, 'h> {
    req: &'r Request,
    host: &'r Host<'h>,
    me: String,
}

/// A bottle found in a folder, or why it could not be read.
struct Found {
    bottles: Vec<Bottle>,
    malformed: Vec<Value>,
}

fn invalid(e: BottleError) -> PluginError {
    PluginError::invalid_args(e.to_string())
}

impl<'r, 'h> Mailbox<'r, 'h> {
    pub fn new(req: &'r Request, host: &'r Host<'h>) -> Result<Self, PluginError> {
        let me = req.agent.name.clone();
        check_agent(&me).map_err(|e| {
            PluginError::failed(format!(
                "this workshop's agent name cannot have an inbox: {e}"
            ))
            .with_hint("set a valid `name` in agent.toml")
        })?;
        Ok(Mailbox { req, host, me })
    }

    fn json(&self) -> bool {
        self.req.format == Format::Json
    }

    // ---- writing ------------------------------------------------------------------

    /// Create the bottle's file under a name nobody has taken: never overwrites.
    fn deliver(&self, mut bottle: Bottle) -> Result<Bottle, PluginError> {
        for attempt in 0..MAX_NAME_ATTEMPTS {
            if attempt > 0 {
                bottle.id = bottle.fresh_id(attempt);
            }
            if self.host.create_file(&bottle.path(), &bottle.render())? {
                return Ok(bottle);
            }
        }
        Err(PluginError::failed(format!(
            "could not find a free name for the bottle in {} after {MAX_NAME_ATTEMPTS} tries",
            Bottle::inbox(&bottle.to)
        )))
    }

    fn compose(&self, to: &str) -> Result<Bottle, PluginError> {
        let subject = self.req.require_str("subject")?;
        let body = self.req.arg_str("body").unwrap_or_default().to_owned();
        let kind =
            BottleType::parse(self.req.arg_str("type").unwrap_or("message")).map_err(invalid)?;
        let priority =
            Priority::parse(self.req.arg_str("priority").unwrap_or("normal")).map_err(invalid)?;
        let reply_to = self.req.arg_str("reply-to").map(str::to_owned);
        let now = self.host.now_ms()?;
        let mut bottle = Bottle::new(&self.me, to, subject, kind, priority, now, reply_to, body)
            .map_err(invalid)?;
        if self.req.arg_bool("compat") || self.writes_prototype()? {
            // For agents that read only the prototype's format.
            bottle.dialect = Dialect::Prototype;
            bottle.id = bottle.fresh_id(0);
        }
        Ok(bottle)
    }

    /// Has this workshop been set to write the prototype's format (`bottle format`)?
    fn writes_prototype(&self) -> Result<bool, PluginError> {
        Ok(self
            .host
            .kv_get(FORMAT_KEY)?
            .and_then(|v| v.as_str().map(str::to_owned))
            == Some("prototype".to_owned()))
    }

    /// `bottle format [datum|prototype]`.
    pub fn format(&self) -> Result<Output, PluginError> {
        if let Some(wanted) = self.req.arg_str("dialect") {
            let wanted = match wanted.trim().to_ascii_lowercase().as_str() {
                "datum" => "datum",
                "prototype" | "compat" => "prototype",
                other => {
                    return Err(PluginError::invalid_args(format!(
                        "`{}` is not a bottle format",
                        neutralise(other)
                    ))
                    .with_hint("use datum (the default) or prototype"))
                }
            };
            self.host.kv_set(FORMAT_KEY, json!(wanted))?;
        }
        let current = if self.writes_prototype()? {
            "prototype"
        } else {
            "datum"
        };
        let text = match current {
            "prototype" => "this workshop writes bottles in the prototype's format (for-AGENT/DATE_SLUG.md, no-clobber); `datum bottle format datum` goes back",
            _ => "this workshop writes bottles in datum's format; `datum bottle format prototype` (or --compat on one bottle) writes the prototype's",
        };
        Ok(Output::new(json!({ "format": current })).with_text(text))
    }

    fn dropped(&self, bottle: &Bottle) -> Output {
        let to = if bottle.to == ALL {
            "everyone".to_owned()
        } else {
            bottle.to.clone()
        };
        Output::new(json!({
            "id": bottle.id, "path": bottle.path(), "to": bottle.to, "from": bottle.from,
            "type": bottle.kind, "priority": bottle.priority, "sent": crate::bottle::rfc3339(bottle.sent_ms),
        }))
        .with_text(format!("dropped {} for {to}", bottle.id))
    }

    pub fn drop_bottle(&self) -> Result<Output, PluginError> {
        let to = self.req.require_str("agent")?;
        check_agent(to).map_err(invalid)?;
        // `all` names every agent: a broadcast must be asked for by name.
        if to == ALL {
            return Err(PluginError::invalid_args(
                "`all` is not an agent: a bottle for everyone is a broadcast",
            )
            .with_hint("use `datum bottle broadcast SUBJECT [BODY]`"));
        }
        let bottle = self.deliver(self.compose(to)?)?;
        Ok(self.dropped(&bottle))
    }

    pub fn broadcast(&self) -> Result<Output, PluginError> {
        let bottle = self.deliver(self.compose(ALL)?)?;
        Ok(self.dropped(&bottle))
    }

    // ---- reading ------------------------------------------------------------------

    /// Every bottle in one folder (`for-NAME/`); unreadable ones are reported, not fatal.
    fn folder(&self, folder: &str, found: &mut Found) -> Result<(), PluginError> {
        let dir = format!("{ROOT}/{folder}");
        for name in self.host.list_dir(&dir)? {
            if name.starts_with('.') || !name.ends_with(".md") {
                continue; // writes in flight and anything that is not a bottle
            }
            let path = format!("{dir}/{name}");
            let parsed = self
                .host
                .read_file(&path)
                .map_err(|e| e.message)
                .and_then(|text| {
                    Bottle::read_file(&text, &name, folder).map_err(|e| e.to_string())
                });
            match parsed {
                Ok(b) => found.bottles.push(b),
                Err(e) => found
                    .malformed
                    .push(json!({ "path": path, "error": neutralise(&e) })),
            }
        }
        Ok(())
    }

    /// My inbox: `for-me/` and broadcasts from others, oldest first.
    fn inbox(&self) -> Result<Found, PluginError> {
        let mut found = Found {
            bottles: vec![],
            malformed: vec![],
        };
        self.folder(&format!("for-{ALL}"), &mut found)?;
        found.bottles.retain(|b| b.from != self.me); // my own broadcasts are not news
        self.folder(&format!("for-{}", self.me), &mut found)?;
        found
            .bottles
            .sort_by(|a, b| (a.sent_ms, &a.id).cmp(&(b.sent_ms, &b.id)));
        Ok(found)
    }

    fn read_ids(&self) -> Result<BTreeSet<String>, PluginError> {
        Ok(match self.host.kv_get(READ_KEY)? {
            Some(v) => serde_json::from_value(v).unwrap_or_default(),
            None => BTreeSet::new(),
        })
    }

    fn mark_read<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> Result<(), PluginError> {
        let mut read = self.read_ids()?;
        let before = read.len();
        read.extend(ids.into_iter().map(str::to_owned));
        if read.len() != before {
            self.host.kv_set(READ_KEY, json!(read))?;
        }
        Ok(())
    }

    fn summary(b: &Bottle, read: bool) -> Value {
        json!({
            "id": b.id, "from": b.from, "to": b.to, "subject": b.subject, "type": b.kind,
            "priority": b.priority, "sent": crate::bottle::rfc3339(b.sent_ms), "read": read,
            "reply_to": b.reply_to, "format": b.dialect,
        })
    }

    fn line(b: &Bottle) -> String {
        let mark = match b.priority {
            Priority::High => "!",
            _ => " ",
        };
        format!(
            "{mark} {}  {:<12} {:<11} {}",
            b.id,
            b.from,
            b.kind.as_str(),
            neutralise(&b.subject)
        )
    }

    pub fn check(&self) -> Result<Output, PluginError> {
        let all = self.req.arg_bool("all");
        let found = self.inbox()?;
        let read = self.read_ids()?;
        let shown: Vec<&Bottle> = found
            .bottles
            .iter()
            .filter(|b| all || !read.contains(&b.id))
            .collect();
        let unread = found
            .bottles
            .iter()
            .filter(|b| !read.contains(&b.id))
            .count();
        let mut text = match (shown.len(), all) {
            (0, _) => format!("no new bottles for {}", self.me),
            (n, false) => format!(
                "{n} new bottle{} for {}:",
                if n == 1 { "" } else { "s" },
                self.me
            ),
            (n, true) => format!("{n} bottles for {} ({unread} unread):", self.me),
        };
        for b in &shown {
            text.push('\n');
            text.push_str(&Self::line(b));
        }
        for m in &found.malformed {
            text.push_str(&format!(
                "\nwarning: skipped {}: {}",
                m["path"].as_str().unwrap_or_default(),
                m["error"].as_str().unwrap_or_default()
            ));
        }
        let list: Vec<Value> = shown
            .iter()
            .map(|b| Self::summary(b, read.contains(&b.id)))
            .collect();
        Ok(Output::new(json!({
            "agent": self.me, "unread": unread, "bottles": list, "malformed": found.malformed,
        }))
        .with_text(text))
    }

    fn find(&self, id: &str) -> Result<Bottle, PluginError> {
        check_id(id).map_err(invalid)?;
        for folder in [format!("for-{}", self.me), format!("for-{ALL}")] {
            let path = format!("{ROOT}/{folder}/{id}.md");
            if let Ok(text) = self.host.read_file(&path) {
                return Bottle::read_file(&text, &format!("{id}.md"), &folder).map_err(|e| {
                    PluginError::failed(format!("{path} is not a readable bottle: {e}"))
                });
            }
        }
        Err(
            PluginError::invalid_args(format!("no bottle `{id}` for {}", self.me))
                .with_hint("list your bottles with `datum bottle check --all`"),
        )
    }

    pub fn read(&self) -> Result<Output, PluginError> {
        let b = self.find(self.req.require_str("id")?)?;
        self.mark_read([b.id.as_str()])?;
        let mut text = format!(
            "From:     {}\nTo:       {}\nSubject:  {}\nType:     {}\nPriority: {}\nSent:     {}\n",
            b.from,
            b.to,
            neutralise(&b.subject),
            b.kind.as_str(),
            b.priority.as_str(),
            crate::bottle::rfc3339(b.sent_ms)
        );
        if let Some(r) = &b.reply_to {
            text.push_str(&format!("Reply-To: {r}\n"));
        }
        text.push('\n');
        text.push_str(&neutralise(&b.body));
        let mut data = Self::summary(&b, true);
        data["body"] = json!(b.body);
        data["extra"] = json!(b.extra);
        Ok(Output::new(data).with_text(text))
    }

    pub fn watch(&self) -> Result<Output, PluginError> {
        let interval = self.req.arg_i64("interval").unwrap_or(5);
        if interval < 1 {
            return Err(PluginError::invalid_args(
                "--interval is in seconds and at least 1",
            ));
        }
        let stop_after = self.req.arg_i64("count").map(|n| n.max(1) as usize);
        let mut announced: BTreeSet<String> = self.read_ids()?;
        let mut seen = 0usize;
        if !self.json() {
            self.host.emit(&format!(
                "watching bottles for {} every {interval} s (Ctrl-C stops)",
                self.me
            ))?;
        }
        loop {
            for b in self.inbox()?.bottles {
                if announced.insert(b.id.clone()) {
                    let line = if self.json() {
                        Self::summary(&b, false).to_string()
                    } else {
                        Self::line(&b)
                    };
                    self.host.emit(&line)?;
                    seen += 1;
                    if stop_after.is_some_and(|n| seen >= n) {
                        return Ok(Output::new(json!({ "seen": seen })).with_text(String::new()));
                    }
                }
            }
            self.host.sleep_ms(interval as u64 * 1000)?;
        }
    }

    // ---- history ------------------------------------------------------------------

    /// Every bottle in every folder (sent and received alike).
    fn everything(&self) -> Result<Found, PluginError> {
        let mut found = Found {
            bottles: vec![],
            malformed: vec![],
        };
        for entry in self.host.list_dir(ROOT)? {
            if let Some(folder) = entry.strip_suffix('/').filter(|f| f.starts_with("for-")) {
                self.folder(folder, &mut found)?;
            }
        }
        Ok(found)
    }

    pub fn history(&self) -> Result<Output, PluginError> {
        let peer = self.req.arg_str("agent");
        if let Some(p) = peer {
            check_agent(p).map_err(invalid)?;
        }
        let since = match self.req.arg_str("last") {
            Some(span) => {
                let d = humantime::parse_duration(span).map_err(|e| {
                    PluginError::invalid_args(format!(
                        "--last `{}`: {e}; try 7d or 12h",
                        neutralise(span)
                    ))
                })?;
                self.host.now_ms()?.saturating_sub(d.as_millis() as u64)
            }
            None => 0,
        };
        let found = self.everything()?;
        let by_id: BTreeMap<&str, &Bottle> =
            found.bottles.iter().map(|b| (b.id.as_str(), b)).collect();
        let me = self.me.as_str();
        let in_window = |b: &&Bottle| b.sent_ms >= since;
        let sent: Vec<&Bottle> = found
            .bottles
            .iter()
            .filter(in_window)
            .filter(|b| b.from == me && peer.is_none_or(|p| b.to == p || b.to == ALL))
            .collect();
        let received: Vec<&Bottle> = found
            .bottles
            .iter()
            .filter(in_window)
            .filter(|b| {
                b.from != me && (b.to == me || b.to == ALL) && peer.is_none_or(|p| b.from == p)
            })
            .collect();
        // Response time: a reply's send time minus the time of the bottle it answers.
        let delays = |replies: &[&Bottle]| -> Vec<u64> {
            replies
                .iter()
                .filter_map(|r| {
                    let original = by_id.get(r.reply_to.as_deref()?)?;
                    (original.from != r.from).then(|| r.sent_ms.saturating_sub(original.sent_ms))
                })
                .collect()
        };
        let mine = delays(&sent);
        let theirs = delays(&received);
        let avg = |d: &[u64]| {
            (!d.is_empty()).then(|| d.iter().sum::<u64>() as f64 / d.len() as f64 / 1000.0)
        };
        let mut by_type: BTreeMap<&str, [usize; 2]> = BTreeMap::new();
        for b in &sent {
            by_type.entry(b.kind.as_str()).or_default()[0] += 1;
        }
        for b in &received {
            by_type.entry(b.kind.as_str()).or_default()[1] += 1;
        }
        let fmt_avg = |a: Option<f64>| a.map_or("–".to_owned(), |s| format!("{s:.1} s"));
        let mut text = format!(
            "{}{}: sent {}, received {}\nyour average response time: {} ({} replies)\ntheir average response time: {} ({} replies)",
            me,
            peer.map(|p| format!(" with {p}")).unwrap_or_default(),
            sent.len(),
            received.len(),
            fmt_avg(avg(&mine)),
            mine.len(),
            fmt_avg(avg(&theirs)),
            theirs.len(),
        );
        for (kind, [s, r]) in &by_type {
            text.push_str(&format!("\n  {kind:<12} sent {s:>4}  received {r:>4}"));
        }
        Ok(Output::new(json!({
            "agent": me, "peer": peer, "since": (since > 0).then(|| crate::bottle::rfc3339(since)),
            "sent": sent.len(), "received": received.len(),
            "avg_response_s": avg(&mine), "replies_sent": mine.len(),
            "avg_their_response_s": avg(&theirs), "replies_received": theirs.len(),
            "by_type": by_type.iter().map(|(k, [s, r])| (k.to_string(), json!({"sent": s, "received": r}))).collect::<serde_json::Map<_, _>>(),
            "malformed": found.malformed,
        }))
        .with_text(text))
    }

    // ---- sync ---------------------------------------------------------------------

    pub fn sync(&self) -> Result<Output, PluginError> {
        let remote = self.req.arg_str("remote");
        let report = self
            .host
            .git_sync(ROOT, remote, &format!("bottles: sync ({})", self.me))?;
        let count = |k: &str| report[k].as_array().map_or(0, Vec::len);
        let inbox = [format!("for-{}/", self.me), format!("for-{ALL}/")];
        let for_me = report["received"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|p| inbox.iter().any(|i| p.starts_with(i.as_str())))
            .count();
        let mut text = format!(
            "synced with {}: sent {}, received {} ({for_me} for {})",
            report["remote"].as_str().unwrap_or("the remote"),
            count("sent"),
            count("received"),
            self.me
        );
        if count("conflicts") > 0 {
            text.push_str(&format!(
                "\nwarning: {} bottles differ between here and the remote; kept the local copies: {}",
                count("conflicts"),
                report["conflicts"]
            ));
        }
        let mut data = report;
        data["for_me"] = json!(for_me);
        Ok(Output::new(data).with_text(text))
    }

    // ---- I2I bridge ---------------------------------------------------------------

    pub fn fleet_send(&self) -> Result<Output, PluginError> {
        let to = self.req.require_str("to")?;
        if to != ALL {
            check_agent(to).map_err(invalid)?;
        }
        let kind = I2iType::parse(self.req.require_str("type")?).map_err(invalid)?;
        let body = match self.req.arg_str("body") {
            Some(text) => serde_json::from_str(text).map_err(|e| {
                PluginError::invalid_args(format!("--body is not JSON ({e})"))
                    .with_hint("quote it for the shell: --body '{\"task\": \"deploy\"}' or --body '\"plain text\"'")
            })?,
            None => Value::Null,
        };
        let priority =
            Priority::parse(self.req.arg_str("priority").unwrap_or("normal")).map_err(invalid)?;
        let now = self.host.now_ms()?;
        let mut message = Message {
            v: Some(kind.version()),
            kind,
            id: String::new(),
            from: self.me.clone(),
            to: to.to_owned(),
            timestamp: now,
            subject: self.req.arg_str("subject").map(str::to_owned),
            priority,
            reply_to: self.req.arg_str("reply-to").map(str::to_owned),
            body,
        };
        // The message id is the bottle's id, so replies can name either.
        let draft = message.to_bottle().map_err(invalid)?;
        message.id = draft.id.clone();
        let bottle = self.deliver(message.to_bottle().map_err(invalid)?)?;
        message.id = bottle.id.clone();
        let mut out = self.dropped(&bottle);
        out.data = json!({ "message": message, "bottle": bottle.path() });
        out.text = Some(format!("sent {} {} to {to}", kind.name(), bottle.id));
        Ok(out)
    }

    /// The I2I messages already turned into bottles, oldest first.
    fn ingested(&self) -> Result<Vec<String>, PluginError> {
        Ok(match self.host.kv_get(INGESTED_KEY)? {
            Some(v) => serde_json::from_value(v).unwrap_or_default(),
            None => Vec::new(),
        })
    }

    /// Turn I2I messages into bottles, each once: one already ingested (by identity)
    /// is skipped, so a file read again or a message both dropped and published makes
    /// one bottle. Returns the bottles made.
    fn ingest(
        &self,
        incoming: Vec<(String, Message)>,
        malformed: &mut Vec<Value>,
    ) -> Result<Vec<Value>, PluginError> {
        let mut seen = self.ingested()?;
        let mut known: BTreeSet<String> = seen.iter().cloned().collect();
        let mut made = Vec::new();
        for (source, message) in incoming {
            if known.contains(&message.identity()) {
                continue;
            }
            let bottle = match message.to_bottle() {
                Ok(b) => b,
                Err(e) => {
                    malformed
                        .push(json!({ "source": source, "error": neutralise(&e.to_string()) }));
                    continue;
                }
            };
            let bottle = self.deliver(bottle)?;
            known.insert(message.identity());
            seen.push(message.identity());
            made.push(
                json!({ "source": source, "bottle": bottle.path(), "type": message.kind.name() }),
            );
        }
        if !made.is_empty() {
            let skip = seen.len().saturating_sub(INGESTED_KEEP);
            self.host.kv_set(INGESTED_KEY, json!(seen[skip..]))?;
        }
        Ok(made)
    }

    /// The I2I messages in a folder's `*.json` files (one message or an array of them
    /// per file). Files are only read: one that does not parse stays where it is and
    /// is reported, never deleted or half-taken.
    fn dropped_messages(
        &self,
        dir: &str,
        malformed: &mut Vec<Value>,
    ) -> Result<Vec<(String, Message)>, PluginError> {
        let mut out = Vec::new();
        for name in self.host.list_dir(dir)? {
            if name.ends_with('/') || !name.ends_with(".json") {
                continue;
            }
            let path = format!("{dir}/{name}");
            let text = match self.host.read_file(&path) {
                Ok(t) if t.len() <= MAX_I2I_FILE => t,
                Ok(_) => {
                    malformed.push(json!({ "source": path, "error": format!("over {MAX_I2I_FILE} bytes; not read") }));
                    continue;
                }
                Err(e) => {
                    malformed.push(json!({ "source": path, "error": neutralise(&e.message) }));
                    continue;
                }
            };
            match parse_i2i(&text) {
                Ok(messages) => out.extend(messages.into_iter().map(|m| (path.clone(), m))),
                Err(e) => malformed.push(json!({ "source": path, "error": neutralise(&e) })),
            }
        }
        Ok(out)
    }

    /// I2I messages published on `subject` of the in-process bus since the last look
    /// (through the bus plugin: `call:bus`).
    fn published_messages(
        &self,
        subject: &str,
        malformed: &mut Vec<Value>,
    ) -> Result<Vec<(String, Message)>, PluginError> {
        let mut args = serde_json::Map::new();
        args.insert("subject".into(), json!(subject));
        args.insert("last".into(), json!(BUS_WINDOW));
        let history = self.host.call_plugin("bus", "bus history", args).map_err(|e| {
            let hint = "install the bus plugin (`datum plugin install bus`); mib asks for `call:bus` when installed — if it was denied, `datum plugin grant mib call:bus`";
            PluginError::new(e.kind, format!("cannot read the bus subject {subject}: {}", e.message)).with_hint(hint)
        })?;
        let cursor_key = format!("i2i-bus-seq:{subject}");
        let after = self
            .host
            .kv_get(&cursor_key)?
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        let mut last = after;
        let mut out = Vec::new();
        for env in history["messages"].as_array().into_iter().flatten() {
            let seq = env["seq"].as_u64().unwrap_or(0);
            if seq <= after {
                continue;
            }
            last = last.max(seq);
            let source = format!("bus:{}#{seq}", env["subject"].as_str().unwrap_or(subject));
            // A payload is the message itself, or its JSON as text.
            let payload = match &env["payload"] {
                Value::String(text) => serde_json::from_str(text).unwrap_or(Value::Null),
                other => other.clone(),
            };
            match serde_json::from_value::<Message>(payload) {
                Ok(m) => out.push((source, m)),
                Err(e) => malformed.push(json!({ "source": source, "error": neutralise(&format!("not an I2I message: {e}")) })),
            }
        }
        if last != after {
            self.host.kv_set(&cursor_key, json!(last))?;
        }
        Ok(out)
    }

    pub fn fleet_receive(&self) -> Result<Output, PluginError> {
        let all = self.req.arg_bool("all");
        let peek = self.req.arg_bool("peek");
        let mut malformed = Vec::new();
        let mut notes = Vec::new();
        // The default folder is looked at only when granted: a workshop whose lock
        // predates the grant keeps receiving bottles as before.
        let mut incoming = match self.dropped_messages(DROP_DIR, &mut malformed) {
            Ok(found) => found,
            Err(e) if e.kind == datum_plugin_api::ErrorKind::PermissionDenied => {
                notes.push(format!(
                    "{DROP_DIR}/ was not read: not granted (datum plugin grant mib fs-read:{DROP_DIR})"
                ));
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        if let Some(dir) = self
            .req
            .arg_str("dir")
            .filter(|d| d.trim_end_matches('/') != DROP_DIR)
        {
            incoming.extend(self.dropped_messages(dir.trim_end_matches('/'), &mut malformed)?);
        }
        if let Some(subject) = self.req.arg_str("subject") {
            incoming.extend(self.published_messages(subject, &mut malformed)?);
        }
        let ingested = self.ingest(incoming, &mut malformed)?;
        let found = self.inbox()?;
        let read = self.read_ids()?;
        let mut messages = Vec::new();
        malformed.extend(found.malformed);
        let mut taken = Vec::new();
        for b in found
            .bottles
            .iter()
            .filter(|b| all || !read.contains(&b.id))
        {
            match Message::from_bottle(b) {
                Ok(m) => {
                    messages.push(m);
                    taken.push(b.id.as_str());
                }
                Err(e) => malformed.push(json!({ "path": b.path(), "error": e.to_string() })),
            }
        }
        if !peek {
            self.mark_read(taken)?;
        }
        let mut text = format!(
            "{} message{}",
            messages.len(),
            if messages.len() == 1 { "" } else { "s" }
        );
        if !ingested.is_empty() {
            text.push_str(&format!(" ({} ingested as bottles)", ingested.len()));
        }
        for n in &notes {
            text.push_str(&format!("\nnote: {n}"));
        }
        for m in &malformed {
            text.push_str(&format!(
                "\nnot read: {} ({})",
                neutralise_line(m["source"].as_str().or(m["path"].as_str()).unwrap_or("?")),
                neutralise_line(m["error"].as_str().unwrap_or("?"))
            ));
        }
        for m in &messages {
            text.push_str(&format!(
                "\n{} {} from {}: {}",
                m.kind.name(),
                neutralise_line(&m.id),
                neutralise_line(&m.from),
                neutralise(&m.body.to_string())
            ));
        }
        Ok(Output::new(
            json!({ "messages": messages, "ingested": ingested, "malformed": malformed, "notes": notes }),
        )
        .with_text(text))
    }
}

/// One I2I message, or a JSON array of them.
fn parse_i2i(text: &str) -> Result<Vec<Message>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let items = match value {
        Value::Array(items) => items,
        one => vec![one],
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_value(v).map_err(|e| format!("message {i} is not an I2I message: {e}"))
        })
        .collect()
}
