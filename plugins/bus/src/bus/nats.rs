//! The NATS bus: subjects under `datum.bus.`, every message stored in the JetStream
//! stream `DATUM_BUS` (publishes wait for the server's ack), live subscriptions on
//! core NATS and durable ones as JetStream pull consumers.
//!
//! NATS conventions, so any NATS client can take part: the subject is the subject,
//! the body is the payload (its JSON), and datum's metadata travels in headers —
//! `Datum-From`, `Datum-Ts` and `Nats-Msg-Id` (JetStream drops a retried publish with
//! the same id). A message without datum's headers is delivered as it came, marked
//! `foreign`; nothing a foreign client sends ends a subscription. A body that is a whole
//! datum envelope without headers (datum before this change) still reads as datum's.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream};
use futures_util::StreamExt;
use serde_json::Value;

use super::{BusError, Envelope};

/// NATS subjects the bus uses are the user's subject under this prefix.
pub const PREFIX: &str = "datum.bus.";
pub const STREAM: &str = "DATUM_BUS";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

pub struct NatsBus {
    url: String,
    agent: String,
    client: async_nats::Client,
    js: jetstream::Context,
}

/// Connect to a NATS server, naming the agent in the connection (visible in monitoring).
/// The token a NATS server started with `--auth TOKEN` requires, if any.
pub const TOKEN_ENV: &str = "DATUM_NATS_TOKEN";

/// Connect as `name`. Credentials: `nats://USER:PASSWORD@host` in the URL, or a token
/// in `DATUM_NATS_TOKEN` — with either, only clients that hold them can publish
/// tasks or results (see the bus README on trust).
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client, BusError> {
    let mut options = async_nats::ConnectOptions::new();
    if let Some(token) = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()) {
        options = options.token(token);
    }
    options
        .name(name)
        .connection_timeout(CONNECT_TIMEOUT)
        // Callers put their own deadlines on requests (a task may run for minutes).
        .request_timeout(Some(Duration::from_secs(3600)))
        .connect(url)
        .await
        .map_err(|e| BusError::Unreachable {
            url: url.to_owned(),
            reason: e.to_string(),
        })
}

/// Open a JetStream stream, creating it if it does not exist. Nodes and agents start
/// together and each creates what it needs: when two creations of the same stream
/// race, the server may refuse the loser (seen: "subjects overlap with an existing
/// stream", 10065) although the stream now exists — so a refused creation is retried,
/// a few times, as an open. A stream that really cannot be made keeps failing and its
/// last error is returned.
pub async fn open_stream(
    js: &jetstream::Context,
    config: stream::Config,
) -> Result<stream::Stream, jetstream::context::CreateStreamError> {
    let mut attempt = 0;
    loop {
        match js.get_or_create_stream(config.clone()).await {
            Ok(stream) => return Ok(stream),
            Err(_) if attempt < 4 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

pub fn nats_err(url: &str) -> impl Fn(String) -> BusError + '_ {
    move |reason| BusError::Refused {
        url: url.to_owned(),
        reason,
    }
}

impl NatsBus {
    pub async fn connect(url: &str, agent: &str) -> Result<NatsBus, BusError> {
        let client = connect(url, agent).await?;
        let js = jetstream::new(client.clone());
        open_stream(
            &js,
            stream::Config {
                name: STREAM.into(),
                subjects: vec![format!("{PREFIX}>")],
                max_messages: 100_000,
                max_age: Duration::from_secs(7 * 24 * 3600),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| BusError::Refused {
            url: url.to_owned(),
            reason: format!(
                "cannot open the JetStream stream {STREAM} ({e}); is the server started with -js?"
            ),
        })?;
        Ok(NatsBus {
            url: url.to_owned(),
            agent: agent.to_owned(),
            client,
            js,
        })
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub async fn publish(&mut self, subject: &str, payload: Value) -> Result<Envelope, BusError> {
        let env = Envelope::new(subject, &self.agent, payload);
        let (headers, bytes) = wire(&env)?;
        let err = nats_err(&self.url);
        self.js
            .publish_with_headers(format!("{PREFIX}{subject}"), headers, bytes.into())
            .await
            .map_err(|e| err(e.to_string()))?
            .await
            .map_err(|e| err(format!("JetStream did not store the message: {e}")))?;
        Ok(env)
    }

    /// Publish without waiting for JetStream's ack (throughput measurements; the
    /// message is still stored, just not confirmed one by one).
    pub async fn publish_unconfirmed(&self, subject: &str, payload: Value) -> Result<(), BusError> {
        let env = Envelope::new(subject, &self.agent, payload);
        let (headers, bytes) = wire(&env)?;
        self.client
            .publish_with_headers(format!("{PREFIX}{subject}"), headers, bytes.into())
            .await
            .map_err(|e| nats_err(&self.url)(e.to_string()))
    }

    pub async fn flush(&self) -> Result<(), BusError> {
        self.client
            .flush()
            .await
            .map_err(|e| nats_err(&self.url)(e.to_string()))
    }

    pub async fn subscribe(
        &mut self,
        pattern: &str,
        durable: Option<&str>,
    ) -> Result<NatsSubscription, BusError> {
        let err = nats_err(&self.url);
        let subject = format!("{PREFIX}{pattern}");
        match durable {
            None => {
                let sub = self
                    .client
                    .subscribe(subject)
                    .await
                    .map_err(|e| err(e.to_string()))?;
                // Make sure the server has the interest before anyone publishes.
                self.flush().await?;
                Ok(NatsSubscription::Live(sub))
            }
            Some(name) => {
                if !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return Err(BusError::Invalid(format!(
                        "durable name `{}` may only use A-Z a-z 0-9 - _",
                        name.escape_default()
                    )));
                }
                let stream = self
                    .js
                    .get_stream(STREAM)
                    .await
                    .map_err(|e| err(e.to_string()))?;
                let consumer: pull::Stream = stream
                    .get_or_create_consumer(
                        name,
                        pull::Config {
                            durable_name: Some(name.to_owned()),
                            filter_subject: subject,
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(|e| err(e.to_string()))?
                    .messages()
                    .await
                    .map_err(|e| err(e.to_string()))?;
                Ok(NatsSubscription::Durable(
                    Box::new(consumer),
                    self.url.clone(),
                ))
            }
        }
    }
}

pub enum NatsSubscription {
    Live(async_nats::Subscriber),
    Durable(Box<pull::Stream>, String),
}

/// Header names datum writes (NATS headers are case-insensitive on the wire).
pub const FROM_HEADER: &str = "Datum-From";
pub const TS_HEADER: &str = "Datum-Ts";

/// A message as NATS carries it: datum's headers, the payload's JSON as the body.
fn wire(env: &Envelope) -> Result<(async_nats::HeaderMap, Vec<u8>), BusError> {
    let body = serde_json::to_vec(&env.payload).map_err(|e| BusError::Invalid(e.to_string()))?;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(FROM_HEADER, env.from.as_str());
    headers.insert(TS_HEADER, env.ts.to_string().as_str());
    // Unique per message: the sender, its clock, and a process-wide counter.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = format!("{}-{}-{}-{n}", env.from, env.ts, std::process::id());
    headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
    Ok((headers, body))
}

/// Read any message on a bus subject. Never fails: what is not datum's is delivered as
/// a foreign message, its body as JSON when it is JSON and as text otherwise.
pub fn decode(subject: &str, headers: Option<&async_nats::HeaderMap>, body: &[u8]) -> Envelope {
    let subject = subject.strip_prefix(PREFIX).unwrap_or(subject).to_owned();
    let header = |name: &str| {
        headers
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    };
    let json = serde_json::from_slice::<Value>(body).ok();
    if let (Some(from), Some(payload)) = (header(FROM_HEADER), json.clone()) {
        return Envelope {
            subject,
            from,
            ts: header(TS_HEADER)
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(super::now_ms),
            seq: 0,
            payload,
            foreign: false,
            via: None,
        };
    }
    // datum before the headers: the whole envelope in the body, for this subject.
    if let Ok(env) = serde_json::from_slice::<Envelope>(body) {
        if env.subject == subject && !env.foreign {
            return env;
        }
    }
    Envelope {
        subject,
        from: "?".to_owned(),
        ts: super::now_ms(),
        seq: 0,
        payload: json.unwrap_or_else(|| Value::String(String::from_utf8_lossy(body).into_owned())),
        foreign: true,
        via: None,
    }
}

impl NatsSubscription {
    pub async fn next(&mut self) -> Result<Option<Envelope>, BusError> {
        match self {
            NatsSubscription::Live(sub) => match sub.next().await {
                Some(msg) => Ok(Some(decode(
                    &msg.subject,
                    msg.headers.as_ref(),
                    &msg.payload,
                ))),
                None => Ok(None),
            },
            NatsSubscription::Durable(stream, url) => match stream.next().await {
                Some(Ok(msg)) => {
                    let env = decode(&msg.subject, msg.headers.as_ref(), &msg.payload);
                    msg.ack().await.map_err(|e| nats_err(url)(e.to_string()))?;
                    Ok(Some(env))
                }
                Some(Err(e)) => Err(nats_err(url)(e.to_string())),
                None => Ok(None),
            },
        }
    }
}

#[cfg(test)]
mod wire_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn datum_messages_carry_metadata_in_headers_and_the_payload_as_body() {
        let env = Envelope::new("agent.bob", "alice", json!({"n": 1}));
        let (headers, body) = wire(&env).unwrap();
        assert_eq!(body, br#"{"n":1}"#);
        assert_eq!(headers.get(FROM_HEADER).unwrap().as_str(), "alice");
        assert!(headers.get(async_nats::header::NATS_MESSAGE_ID).is_some());
        let back = decode("datum.bus.agent.bob", Some(&headers), &body);
        assert_eq!(back, env);
    }

    #[test]
    fn anything_else_is_delivered_as_foreign_never_an_error() {
        for (body, payload) in [
            (&b"{\"x\": 1}"[..], json!({"x": 1})),
            (b"plain text", json!("plain text")),
            (b"\xff\xfe", json!("\u{fffd}\u{fffd}")),
            (b"", json!("")),
        ] {
            let env = decode("datum.bus.agent.bob", None, body);
            assert!(env.foreign);
            assert_eq!(
                (env.subject.as_str(), env.from.as_str()),
                ("agent.bob", "?")
            );
            assert_eq!(env.payload, payload);
        }
        // An envelope of datum before headers reads as datum's.
        let old = Envelope::new("agent.bob", "alice", json!("hi"));
        let env = decode(
            "datum.bus.agent.bob",
            None,
            &serde_json::to_vec(&old).unwrap(),
        );
        assert_eq!(env, old);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, failure_persistence: None, ..Default::default() })]

        /// Hostile input (part of the hostile-input suite, kept here because it needs
        /// NATS's header type): any body, any `Datum-*` header values, any subject —
        /// decoded without a panic, on the subject it came on; what is not datum's
        /// (no sender header, or a body that is not JSON) is foreign with no sender.
        #[test]
        fn any_message_on_a_bus_subject_is_decoded_never_trusted(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            json_body in "\\{\"subject\":\"[a-z.]{0,8}\",\"from\":\"[a-z]{0,6}\",\"ts\":[0-9]{1,5},\"payload\":1\\}",
            from in proptest::option::of("[ -~]{0,12}"),
            ts in proptest::option::of("[ -~]{0,12}"),
            subject in "(datum\\.bus\\.)?[a-z.*>]{0,12}",
        ) {
            let mut headers = async_nats::HeaderMap::new();
            if let Some(f) = &from {
                headers.insert(FROM_HEADER, f.as_str());
            }
            if let Some(t) = &ts {
                headers.insert(TS_HEADER, t.as_str());
            }
            let on = subject.strip_prefix(PREFIX).unwrap_or(&subject);
            for b in [body.as_slice(), json_body.as_bytes()] {
                let env = decode(&subject, Some(&headers), b);
                proptest::prop_assert_eq!(env.subject.as_str(), on);
                let is_json = serde_json::from_slice::<Value>(b).is_ok();
                if from.is_none() && !is_json {
                    proptest::prop_assert!(env.foreign);
                }
                if env.foreign {
                    proptest::prop_assert_eq!(env.from.as_str(), "?");
                }
            }
        }
    }
}
