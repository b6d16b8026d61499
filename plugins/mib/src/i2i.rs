//! The I2I bridge: the seed's agent-to-agent message types as JSON, carried as bottles.
//!
//! Every I2I field has a home in the bottle so the translation loses nothing: the
//! type, timestamp, sender, recipient, priority and subject map to header fields,
//! the body goes in the bottle body (plain text for a JSON string, a fenced `json`
//! block otherwise), and whatever a bottle header cannot hold verbatim (an id that is
//! not a safe file name, a missing subject) is kept in `x-i2i-…` fields.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bottle::{check_id, Bottle, BottleError, BottleType, Priority, ALL};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum I2iType {
    // v1
    #[serde(rename = "SIGNAL")]
    Signal,
    #[serde(rename = "PING")]
    Ping,
    #[serde(rename = "CHECK-IN")]
    CheckIn,
    #[serde(rename = "DELIVERABLE")]
    Deliverable,
    #[serde(rename = "HANDOFF")]
    Handoff,
    #[serde(rename = "QUESTION")]
    Question,
    #[serde(rename = "ALERT")]
    Alert,
    // v2
    #[serde(rename = "ACK")]
    Ack,
    #[serde(rename = "LOG")]
    Log,
    #[serde(rename = "BROADCAST")]
    Broadcast,
    #[serde(rename = "REQUEST")]
    Request,
    #[serde(rename = "RESPONSE")]
    Response,
    #[serde(rename = "COORDINATE")]
    Coordinate,
    #[serde(rename = "NOMINATE")]
    Nominate,
    #[serde(rename = "ESCALATE")]
    Escalate,
    #[serde(rename = "REVOKE")]
    Revoke,
    // What the prototype's bridge adds (its 20 types): the fleet commands' messages.
    /// `fleet discover`: who is out there, and what can you do?
    #[serde(rename = "DISCOVER")]
    Discover,
    /// An agent's abilities (its CAPABILITY.toml), the answer to DISCOVER.
    #[serde(rename = "CAPABILITY")]
    Capability,
    /// `fleet tasks claim TASK`: this agent takes the task.
    #[serde(rename = "CLAIM")]
    Claim,
    /// `fleet tasks complete TASK --report …`: the task is done, with its report.
    #[serde(rename = "COMPLETE")]
    Complete,
}

impl I2iType {
    pub const ALL: [I2iType; 20] = [
        I2iType::Signal,
        I2iType::Ping,
        I2iType::CheckIn,
        I2iType::Deliverable,
        I2iType::Handoff,
        I2iType::Question,
        I2iType::Alert,
        I2iType::Ack,
        I2iType::Log,
        I2iType::Broadcast,
        I2iType::Request,
        I2iType::Response,
        I2iType::Coordinate,
        I2iType::Nominate,
        I2iType::Escalate,
        I2iType::Revoke,
        I2iType::Discover,
        I2iType::Capability,
        I2iType::Claim,
        I2iType::Complete,
    ];

    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    pub fn parse(s: &str) -> Result<Self, BottleError> {
        I2iType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let all: Vec<String> = I2iType::ALL.iter().map(|t| t.name()).collect();
                BottleError::Invalid(format!(
                    "unknown I2I type `{}`; use one of {}",
                    crate::bottle::neutralise(s),
                    all.join(", ")
                ))
            })
    }

    /// The protocol version that introduced the type.
    pub fn version(self) -> u8 {
        if (self as u8) <= I2iType::Alert as u8 {
            1
        } else {
            2
        }
    }

    /// The closest bottle type, for agents reading the bottle by hand.
    pub fn bottle_type(self) -> BottleType {
        match self {
            I2iType::Signal | I2iType::Ping => BottleType::Signal,
            I2iType::CheckIn => BottleType::CheckIn,
            I2iType::Deliverable | I2iType::Response | I2iType::Complete => BottleType::Deliverable,
            I2iType::Handoff => BottleType::Handoff,
            I2iType::Question | I2iType::Request | I2iType::Discover => BottleType::Question,
            I2iType::Alert | I2iType::Escalate | I2iType::Revoke => BottleType::Alert,
            I2iType::Claim => BottleType::Signal,
            I2iType::Ack
            | I2iType::Log
            | I2iType::Broadcast
            | I2iType::Coordinate
            | I2iType::Nominate
            | I2iType::Capability => BottleType::Message,
        }
    }

    /// The I2I type of a bottle that was not written by the bridge.
    pub fn of_bottle(kind: BottleType) -> I2iType {
        match kind {
            BottleType::Message | BottleType::Signal => I2iType::Signal,
            BottleType::CheckIn => I2iType::CheckIn,
            BottleType::Alert => I2iType::Alert,
            BottleType::Deliverable => I2iType::Deliverable,
            BottleType::Handoff => I2iType::Handoff,
            BottleType::Question => I2iType::Question,
        }
    }
}

/// One I2I message on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// Protocol version: 1 or 2 (defaults to the version of `type`).
    #[serde(default)]
    pub v: Option<u8>,
    #[serde(rename = "type")]
    pub kind: I2iType,
    pub id: String,
    pub from: String,
    /// An agent, or `all` for everyone.
    pub to: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default = "normal")]
    pub priority: Priority,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(default)]
    pub body: Value,
}

fn normal() -> Priority {
    Priority::Normal
}

const X_TYPE: &str = "i2i-type";
const X_VERSION: &str = "i2i-v";
const X_ID: &str = "i2i-id";
const X_REPLY: &str = "i2i-reply-to";
const X_SUBJECT: &str = "i2i-subject";
const X_BODY: &str = "i2i-body";
const FENCE_OPEN: &str = "```json\n";
const FENCE_CLOSE: &str = "\n```\n";

/// JSON-encode a string for a one-line header value (control characters escaped).
fn one_line(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

fn from_one_line(s: &str, field: &str) -> Result<String, BottleError> {
    serde_json::from_str(s).map_err(|e| {
        BottleError::Malformed(format!("header `x-{field}` is not a JSON string: {e}"))
    })
}

impl Message {
    /// What makes a message the same message wherever it arrives from (a dropped file,
    /// a bus subject, twice): its sender, id and time.
    pub fn identity(&self) -> String {
        format!("{}\u{1f}{}\u{1f}{}", self.from, self.id, self.timestamp)
    }

    /// The bottle carrying this message. Agent names are checked as for any bottle.
    pub fn to_bottle(&self) -> Result<Bottle, BottleError> {
        let subject = self
            .subject
            .clone()
            .unwrap_or_else(|| format!("{} from {}", self.kind.name(), self.from));
        let (body, body_kind) = match &self.body {
            Value::String(s) => (s.clone(), "text"),
            other => {
                let pretty = serde_json::to_string_pretty(other)
                    .map_err(|e| BottleError::Invalid(e.to_string()))?;
                (format!("{FENCE_OPEN}{pretty}{FENCE_CLOSE}"), "json")
            }
        };
        let safe_reply = self.reply_to.clone().filter(|r| check_id(r).is_ok());
        let mut bottle = Bottle::new(
            &self.from,
            &self.to,
            &subject,
            self.kind.bottle_type(),
            self.priority,
            self.timestamp,
            safe_reply.clone(),
            body,
        )?;
        let x = &mut bottle.extra;
        x.insert(X_TYPE.into(), self.kind.name());
        if let Some(v) = self.v {
            x.insert(X_VERSION.into(), v.to_string());
        }
        x.insert(X_BODY.into(), body_kind.into());
        if self.subject.is_none() {
            x.insert(X_SUBJECT.into(), "none".into());
        }
        if check_id(&self.id).is_ok() {
            bottle.id = self.id.clone();
        } else {
            x.insert(X_ID.into(), one_line(&self.id));
        }
        if let (Some(r), None) = (&self.reply_to, &safe_reply) {
            x.insert(X_REPLY.into(), one_line(r));
        }
        Ok(bottle)
    }

    /// The message a bottle carries. Bottles written by hand (no `x-i2i-type`) get
    /// the closest I2I type and their text as a string body.
    pub fn from_bottle(bottle: &Bottle) -> Result<Message, BottleError> {
        let x = &bottle.extra;
        let kind = match x.get(X_TYPE) {
            Some(t) => I2iType::parse(t)?,
            None if bottle.to == ALL => I2iType::Broadcast,
            None => I2iType::of_bottle(bottle.kind),
        };
        let v = match x.get(X_VERSION) {
            Some(v) => Some(v.parse().map_err(|_| {
                BottleError::Malformed(format!("header `x-{X_VERSION}: {v}` is not a number"))
            })?),
            None => None,
        };
        let body = match x.get(X_BODY).map(String::as_str) {
            Some("json") => {
                let inner = bottle
                    .body
                    .strip_prefix(FENCE_OPEN)
                    .and_then(|b| b.strip_suffix(FENCE_CLOSE))
                    .ok_or_else(|| {
                        BottleError::Malformed("the JSON body is not one ```json block".into())
                    })?;
                serde_json::from_str(inner).map_err(|e| {
                    BottleError::Malformed(format!("the JSON body does not parse: {e}"))
                })?
            }
            _ => Value::String(bottle.body.clone()),
        };
        let id = match x.get(X_ID) {
            Some(raw) => from_one_line(raw, X_ID)?,
            None => bottle.id.clone(),
        };
        let reply_to = match x.get(X_REPLY) {
            Some(raw) => Some(from_one_line(raw, X_REPLY)?),
            None => bottle.reply_to.clone(),
        };
        let subject = match x.get(X_SUBJECT).map(String::as_str) {
            Some("none") => None,
            _ => Some(bottle.subject.clone()),
        };
        Ok(Message {
            v,
            kind,
            id,
            from: bottle.from.clone(),
            to: bottle.to.clone(),
            timestamp: bottle.sent_ms,
            subject,
            priority: bottle.priority,
            reply_to,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn a_handoff_travels_as_a_readable_bottle() {
        let m: Message = serde_json::from_value(serde_json::json!({
            "type": "HANDOFF", "id": "h-1", "from": "alice", "to": "bob",
            "timestamp": 1_795_000_000_000u64, "body": {"task": "deploy", "files": ["a.rs"]}
        }))
        .unwrap();
        let bottle = m.to_bottle().unwrap();
        assert_eq!(bottle.kind, BottleType::Handoff);
        assert_eq!(bottle.id, "h-1");
        assert!(bottle.body.starts_with("```json\n{"));
        let text = bottle.render();
        let back = Message::from_bottle(&Bottle::parse(&text).unwrap()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn every_type_has_a_version_and_a_bottle_type() {
        let v1 = I2iType::ALL.iter().filter(|t| t.version() == 1).count();
        assert_eq!(v1, 7);
        assert_eq!(
            I2iType::ALL.len(),
            20,
            "the prototype's bridge has 20 types"
        );
        let names: BTreeSet<String> = I2iType::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(names.len(), 20, "each type has its own wire name");
        assert_eq!(I2iType::parse("discover").unwrap(), I2iType::Discover);
        assert_eq!(I2iType::Discover.bottle_type(), BottleType::Question);
        assert_eq!(I2iType::parse("check-in").unwrap(), I2iType::CheckIn);
        assert!(I2iType::parse("SHOUT").is_err());
    }
}
