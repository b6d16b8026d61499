//! One publish/subscribe interface over three transports.
//!
//! * `inproc` — this machine only: the history lives in the workshop's
//!   `.superagent/bus.json` (JSON lines, appended; compacted to a bounded tail), and
//!   subscribers follow that file, so separate `datum` processes see each other.
//! * `tcp://HOST:PORT` — the seed's JSON-lines protocol on port 7743 (`bus serve`).
//! * `nats://HOST:PORT` — NATS, with a JetStream stream for durable delivery.
//!
//! Subjects are dot-separated tokens (`agent.bob`, `fleet.alerts`); subscriptions may
//! use NATS wildcards (`*` one token, `>` the rest) on every transport.

pub mod inproc;
pub mod nats;
pub mod tcp;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One message on the bus, identical on every transport.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub subject: String,
    pub from: String,
    /// Milliseconds since the Unix epoch, stamped by the publisher.
    pub ts: u64,
    /// Position in the in-process log (0 on other transports).
    #[serde(default)]
    pub seq: u64,
    pub payload: Value,
    /// Published by something that is not datum (a plain NATS client): delivered as it
    /// came, `from` unknown (`?`) and `ts` the time it was received.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub foreign: bool,
    /// The bridge it crossed, when it came into the in-process bus from the TCP bus
    /// (`tcp://ADDR`): that bridge does not send it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

impl Envelope {
    pub fn new(subject: &str, from: &str, payload: Value) -> Envelope {
        Envelope {
            subject: subject.to_owned(),
            from: from.to_owned(),
            ts: now_ms(),
            seq: 0,
            payload,
            foreign: false,
            via: None,
        }
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("{0}")]
    Invalid(String),
    #[error("cannot reach the bus at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the bus at {url} refused: {reason}")]
    Refused { url: String, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("timed out after {0} ms waiting for the bus")]
    Timeout(u64),
    #[error(
        "the message is {bytes} bytes; the in-process bus takes at most {} bytes",
        inproc::MAX_MESSAGE
    )]
    TooBig { bytes: usize },
}

impl BusError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BusError {
        let context = context.into();
        move |source| BusError::Io { context, source }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            BusError::Unreachable { url, .. } if url.starts_with("nats") => Some(
                "start NATS with `nats-server -js -a 127.0.0.1` (Debian package nats-server), or pick another bus with --bus"
                    .into(),
            ),
            BusError::Unreachable { .. } => Some(
                "start a TCP bus with `datum bus serve`, or pick another bus with --bus".into(),
            ),
            BusError::TooBig { .. } => Some(
                "send a smaller message (a reference to a file or a bottle), or publish on NATS (--bus nats://…), which takes up to 1 MiB".into(),
            ),
            _ => None,
        }
    }
}

/// Where the bus is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusUrl {
    InProc,
    Tcp(String),
    Nats(String),
}

/// The TCP bus's port in the seed protocol.
pub const TCP_PORT: u16 = 7743;

impl BusUrl {
    pub fn parse(s: &str) -> Result<BusUrl, BusError> {
        let s = s.trim();
        if s == "inproc" {
            return Ok(BusUrl::InProc);
        }
        if let Some(addr) = s.strip_prefix("tcp://") {
            let addr = if addr.contains(':') {
                addr.to_owned()
            } else {
                format!("{addr}:{TCP_PORT}")
            };
            return Ok(BusUrl::Tcp(addr));
        }
        if s.starts_with("nats://") {
            return Ok(BusUrl::Nats(s.to_owned()));
        }
        if s == "tcp" {
            return Ok(BusUrl::Tcp(format!("127.0.0.1:{TCP_PORT}")));
        }
        Err(BusError::Invalid(format!(
            "`{s}` is not a bus; use inproc, tcp://HOST[:PORT] or nats://HOST[:PORT]"
        )))
    }
}

/// A fleet member's address as `node join --seed` takes it: `nats://HOST:PORT`,
/// `tcp://HOST[:PORT]`, or `HOST:PORT` / `HOST` for the seed protocol's TCP bus.
pub fn seed_url(seed: &str) -> Result<BusUrl, BusError> {
    let seed = seed.trim();
    let url = if seed.contains("://") {
        BusUrl::parse(seed)?
    } else if seed.is_empty() || seed == "inproc" || seed.contains(char::is_whitespace) {
        return Err(BusError::Invalid(format!(
            "`{}` is not a fleet member's address; use HOST:PORT, tcp://HOST:PORT or nats://HOST:PORT",
            seed.escape_default()
        )));
    } else {
        BusUrl::parse(&format!("tcp://{seed}"))?
    };
    Ok(url)
}

impl std::fmt::Display for BusUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BusUrl::InProc => f.write_str("inproc"),
            BusUrl::Tcp(a) => write!(f, "tcp://{a}"),
            BusUrl::Nats(u) => f.write_str(u),
        }
    }
}

/// Longest subject accepted.
const MAX_SUBJECT: usize = 256;

/// Check a subject (or, with `pattern`, a subscription with wildcards).
pub fn check_subject(subject: &str, pattern: bool) -> Result<(), BusError> {
    let bad = |why: &str| {
        Err(BusError::Invalid(format!(
            "subject `{}` {why}; subjects are dot-separated tokens of A-Z a-z 0-9 _ - (e.g. agent.bob){}",
            subject.escape_default(),
            if pattern { ", with * or a final > as wildcards" } else { "" }
        )))
    };
    if subject.is_empty() || subject.len() > MAX_SUBJECT {
        return bad("is empty or too long");
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, t) in tokens.iter().enumerate() {
        let wildcard = *t == "*" || (*t == ">" && i == tokens.len() - 1);
        if wildcard && !pattern {
            return bad("has a wildcard where a plain subject is needed");
        }
        let plain = !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !wildcard && !plain {
            return bad("has an empty or invalid token");
        }
    }
    Ok(())
}

/// Does `subject` match the subscription `pattern` (NATS rules)?
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// A connected bus.
pub enum Bus {
    InProc(inproc::InProc),
    Tcp(tcp::Client),
    Nats(Box<nats::NatsBus>),
}

/// A stream of messages matching one subscription.
pub enum Subscription {
    InProc(inproc::Follower),
    Tcp(tcp::ClientSubscription),
    Nats(nats::NatsSubscription),
}

impl Bus {
    /// Connect as `agent`. `workshop` holds the in-process log.
    pub async fn connect(url: &BusUrl, workshop: &Path, agent: &str) -> Result<Bus, BusError> {
        Ok(match url {
            BusUrl::InProc => Bus::InProc(inproc::InProc::open(workshop, agent)?),
            BusUrl::Tcp(addr) => Bus::Tcp(tcp::Client::connect(addr, agent).await?),
            BusUrl::Nats(u) => Bus::Nats(Box::new(nats::NatsBus::connect(u, agent).await?)),
        })
    }

    pub async fn publish(&mut self, subject: &str, payload: Value) -> Result<Envelope, BusError> {
        check_subject(subject, false)?;
        match self {
            Bus::InProc(b) => b.publish(subject, payload),
            Bus::Tcp(b) => b.publish(subject, payload).await,
            Bus::Nats(b) => b.publish(subject, payload).await,
        }
    }

    /// Subscribe to `pattern`. `durable` (NATS only) names a JetStream consumer that
    /// remembers what it has delivered, so messages sent while away arrive later.
    pub async fn subscribe(
        &mut self,
        pattern: &str,
        durable: Option<&str>,
    ) -> Result<Subscription, BusError> {
        check_subject(pattern, true)?;
        if durable.is_some() && !matches!(self, Bus::Nats(_)) {
            return Err(BusError::Invalid(
                "--durable needs a NATS bus (JetStream); use --bus nats://HOST:PORT".into(),
            ));
        }
        Ok(match self {
            Bus::InProc(b) => Subscription::InProc(b.follow(pattern)?),
            Bus::Tcp(b) => Subscription::Tcp(b.subscribe(pattern).await?),
            Bus::Nats(b) => Subscription::Nats(b.subscribe(pattern, durable).await?),
        })
    }
}

impl Subscription {
    /// The next message; `None` when the transport closed.
    pub async fn next(&mut self) -> Result<Option<Envelope>, BusError> {
        match self {
            Subscription::InProc(s) => s.next().await,
            Subscription::Tcp(s) => s.next().await,
            Subscription::Nats(s) => s.next().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_follow_nats_rules() {
        assert!(subject_matches("agent.*", "agent.bob"));
        assert!(!subject_matches("agent.*", "agent.bob.inbox"));
        assert!(subject_matches("agent.>", "agent.bob.inbox"));
        assert!(!subject_matches("agent.>", "agent"));
        assert!(subject_matches("fleet.alerts", "fleet.alerts"));
        assert!(!subject_matches("fleet.alerts", "fleet.alert"));
    }

    #[test]
    fn subjects_are_checked() {
        assert!(check_subject("agent.bob", false).is_ok());
        assert!(check_subject("agent.*", false).is_err());
        assert!(check_subject("agent.*", true).is_ok());
        assert!(check_subject("a.>.b", true).is_err());
        for bad in ["", "a..b", "a b", "a.\u{1b}[2J", ".a"] {
            assert!(check_subject(bad, true).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn urls_name_their_transport() {
        assert_eq!(BusUrl::parse("inproc").unwrap(), BusUrl::InProc);
        assert_eq!(
            BusUrl::parse("tcp://127.0.0.1").unwrap(),
            BusUrl::Tcp("127.0.0.1:7743".into())
        );
        assert!(matches!(
            BusUrl::parse("nats://127.0.0.1:4222").unwrap(),
            BusUrl::Nats(_)
        ));
        assert!(BusUrl::parse("http://x").is_err());
    }
}
