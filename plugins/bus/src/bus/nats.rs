//! The NATS bus: subjects under `datum.bus.`, every message stored in the JetStream
//! stream `DATUM_BUS` (publishes wait for the server's ack), live subscriptions on
//! core NATS and durable ones as JetStream pull consumers.

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
        js.get_or_create_stream(stream::Config {
            name: STREAM.into(),
            subjects: vec![format!("{PREFIX}>")],
            max_messages: 100_000,
            max_age: Duration::from_secs(7 * 24 * 3600),
            ..Default::default()
        })
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
        let bytes = serde_json::to_vec(&env).map_err(|e| BusError::Invalid(e.to_string()))?;
        let err = nats_err(&self.url);
        self.js
            .publish(format!("{PREFIX}{subject}"), bytes.into())
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
        let bytes = serde_json::to_vec(&env).map_err(|e| BusError::Invalid(e.to_string()))?;
        self.client
            .publish(format!("{PREFIX}{subject}"), bytes.into())
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

impl NatsSubscription {
    pub async fn next(&mut self) -> Result<Option<Envelope>, BusError> {
        let decode = |bytes: &[u8]| {
            serde_json::from_slice::<Envelope>(bytes).map_err(|e| {
                BusError::Invalid(format!("a message on the bus is not a datum envelope: {e}"))
            })
        };
        match self {
            NatsSubscription::Live(sub) => match sub.next().await {
                Some(msg) => decode(&msg.payload).map(Some),
                None => Ok(None),
            },
            NatsSubscription::Durable(stream, url) => match stream.next().await {
                Some(Ok(msg)) => {
                    let env = decode(&msg.payload)?;
                    msg.ack().await.map_err(|e| nats_err(url)(e.to_string()))?;
                    Ok(Some(env))
                }
                Some(Err(e)) => Err(nats_err(url)(e.to_string())),
                None => Ok(None),
            },
        }
    }
}
