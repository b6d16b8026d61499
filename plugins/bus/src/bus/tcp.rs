//! The TCP bus: JSON lines on port 7743, a server (`datum bus serve`) and a client.
//!
//! Frames, one JSON object per line, client → server:
//! `{"op":"pub","subject":S,"from":A,"payload":P}`, `{"op":"sub","subject":PATTERN}`,
//! `{"op":"unsub","subject":PATTERN}`, `{"op":"ping"}`;
//! server → client: `{"op":"ok","ts":T}` (after pub/sub/unsub), `{"op":"pong"}`,
//! `{"op":"msg", …envelope}`, `{"op":"err","error":TEXT}`.
//!
//! The server caps frame size, closes connections idle past the read timeout (clients
//! ping), refuses connections beyond its limit with an `err` frame, and drops messages
//! for a subscriber that cannot keep up (telling it how many).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, Semaphore};

use super::{check_subject, subject_matches, BusError, Envelope};

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest frame accepted, in bytes.
    pub max_frame: usize,
    /// A connection that sends nothing for this long is closed.
    pub read_timeout: Duration,
    pub max_connections: usize,
    /// Messages buffered per subscriber before it is told it lagged.
    pub backlog: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_frame: 1024 * 1024,
            read_timeout: Duration::from_secs(60),
            max_connections: 256,
            backlog: 4096,
        }
    }
}

/// Counters the server keeps (shown when it stops).
#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicU64,
    pub refused: AtomicU64,
    pub published: AtomicU64,
}

/// Serve the bus on `listener` until the future is dropped.
pub async fn serve(
    listener: TcpListener,
    config: ServerConfig,
    stats: Arc<Stats>,
) -> Result<(), BusError> {
    let (tx, _) = broadcast::channel::<Arc<Envelope>>(config.backlog);
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let config = Arc::new(config);
    loop {
        let (stream, peer) = listener
            .accept()
            .await
            .map_err(BusError::io("cannot accept a connection"))?;
        let _ = stream.set_nodelay(true);
        match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                stats.connections.fetch_add(1, Ordering::Relaxed);
                let (tx, config, stats) = (tx.clone(), config.clone(), stats.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    let _ = connection(stream, peer, tx, &config, &stats).await;
                });
            }
            Err(_) => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                let limit = config.max_connections;
                tokio::spawn(async move {
                    let mut stream = stream;
                    let frame = json!({"op": "err", "error": format!("connection limit ({limit}) reached; try again later")});
                    let _ = write_frame(&mut stream, &frame).await;
                    // Drain what the client already sent before closing, so it reads
                    // the reason instead of a connection reset.
                    let _ = stream.shutdown().await;
                    let mut sink = Vec::new();
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut sink))
                            .await;
                });
            }
        }
    }
}

/// What a connection's reader task saw.
enum Event {
    Frame(Value),
    /// Nothing arrived within the read timeout.
    Idle,
    /// A frame was too big or not JSON.
    Bad(BusError),
    Closed,
}

/// Aborts a task when dropped (a connection's reader outlives nothing).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Read frames on their own task and hand them over a channel. Reading inside a
/// `select!` would lose a half-read frame whenever another branch won; a channel
/// receive is cancel-safe.
fn spawn_reader<R: AsyncRead + Unpin + Send + 'static>(
    read: R,
    max_frame: usize,
    read_timeout: Option<Duration>,
) -> (tokio::sync::mpsc::Receiver<Event>, AbortOnDrop) {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let task = tokio::spawn(async move {
        let mut reader = BufReader::new(read);
        loop {
            let frame = read_frame(&mut reader, max_frame);
            let outcome = match read_timeout {
                Some(t) => tokio::time::timeout(t, frame).await.ok(),
                None => Some(frame.await),
            };
            let (event, last) = match outcome {
                None => (Event::Idle, true),
                Some(Ok(Some(f))) => (Event::Frame(f), false),
                Some(Ok(None)) => (Event::Closed, true),
                Some(Err(e)) => (Event::Bad(e), true),
            };
            if tx.send(event).await.is_err() || last {
                return;
            }
        }
    });
    (rx, AbortOnDrop(task.abort_handle()))
}

async fn connection(
    stream: TcpStream,
    _peer: SocketAddr,
    tx: broadcast::Sender<Arc<Envelope>>,
    config: &ServerConfig,
    stats: &Stats,
) -> Result<(), BusError> {
    let (read, mut write) = stream.into_split();
    let (mut frames, _reader) = spawn_reader(read, config.max_frame, Some(config.read_timeout));
    let mut rx = tx.subscribe();
    let mut patterns: Vec<String> = Vec::new();
    loop {
        tokio::select! {
            event = frames.recv() => {
                let frame = match event {
                    Some(Event::Frame(f)) => f,
                    Some(Event::Idle) => {
                        let _ = write_frame(&mut write, &json!({"op": "err", "error": "idle too long; closing (send ping to stay connected)"})).await;
                        return Ok(());
                    }
                    Some(Event::Bad(e)) => {
                        let _ = write_frame(&mut write, &json!({"op": "err", "error": e.to_string()})).await;
                        return Ok(());
                    }
                    Some(Event::Closed) | None => return Ok(()),
                };
                let reply = handle(&frame, &tx, &mut patterns, stats);
                write_frame(&mut write, &reply).await?;
            }
            msg = rx.recv(), if !patterns.is_empty() => {
                match msg {
                    Ok(env) => {
                        if patterns.iter().any(|p| subject_matches(p, &env.subject)) {
                            let mut frame = serde_json::to_value(&*env).unwrap_or(Value::Null);
                            frame["op"] = json!("msg");
                            write_frame(&mut write, &frame).await?;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        write_frame(&mut write, &json!({"op": "err", "error": format!("you fell behind; {n} messages were dropped")})).await?;
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                }
            }
        }
    }
}

fn handle(
    frame: &Value,
    tx: &broadcast::Sender<Arc<Envelope>>,
    patterns: &mut Vec<String>,
    stats: &Stats,
) -> Value {
    let err = |e: String| json!({"op": "err", "error": e});
    let subject = frame["subject"].as_str().unwrap_or_default();
    match frame["op"].as_str().unwrap_or_default() {
        "ping" => json!({"op": "pong"}),
        "pub" => {
            if let Err(e) = check_subject(subject, false) {
                return err(e.to_string());
            }
            let from = frame["from"].as_str().unwrap_or("anonymous");
            let env = Envelope::new(
                subject,
                from,
                frame.get("payload").cloned().unwrap_or(Value::Null),
            );
            let ts = env.ts;
            // No subscribers is not an error: publishing is fire-and-forget.
            let _ = tx.send(Arc::new(env));
            stats.published.fetch_add(1, Ordering::Relaxed);
            json!({"op": "ok", "ts": ts})
        }
        "sub" => match check_subject(subject, true) {
            Ok(()) => {
                if !patterns.iter().any(|p| p == subject) {
                    patterns.push(subject.to_owned());
                }
                json!({"op": "ok"})
            }
            Err(e) => err(e.to_string()),
        },
        "unsub" => {
            patterns.retain(|p| p != subject);
            json!({"op": "ok"})
        }
        other => err(format!(
            "unknown op `{}`; use pub, sub, unsub or ping",
            other.escape_default()
        )),
    }
}

/// Read one line, refusing frames over `max` bytes. `None` at a clean end of stream.
async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    max: usize,
) -> Result<Option<Value>, BusError> {
    let mut buf = Vec::new();
    let n = (&mut *reader)
        .take(max as u64 + 1)
        .read_until(b'\n', &mut buf)
        .await
        .map_err(BusError::io("cannot read from the connection"))?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        if buf.len() > max {
            return Err(BusError::Invalid(format!(
                "frame over {max} bytes; closing"
            )));
        }
        return Ok(None); // the peer closed mid-frame
    }
    serde_json::from_slice(&buf)
        .map(Some)
        .map_err(|e| BusError::Invalid(format!("frame is not JSON: {e}")))
}

async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &Value) -> Result<(), BusError> {
    let mut line = frame.to_string();
    line.push('\n');
    tokio::time::timeout(WRITE_TIMEOUT, w.write_all(line.as_bytes()))
        .await
        .map_err(|_| BusError::Timeout(WRITE_TIMEOUT.as_millis() as u64))?
        .map_err(BusError::io("cannot write to the connection"))
}

const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Subscribers ping this often so the server's idle timeout never closes them.
const PING_EVERY: Duration = Duration::from_secs(20);
/// Client-side frame cap (what a client accepts from a server).
const CLIENT_MAX_FRAME: usize = 8 * 1024 * 1024;

/// A client connection used for publishing.
pub struct Client {
    addr: String,
    agent: String,
    conn: Conn,
}

struct Conn {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Conn {
    async fn open(addr: &str) -> Result<Conn, BusError> {
        let unreachable = |reason: String| BusError::Unreachable {
            url: format!("tcp://{addr}"),
            reason,
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| unreachable("no answer within 3 s".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (read, writer) = stream.into_split();
        Ok(Conn {
            reader: BufReader::new(read),
            writer,
        })
    }

    /// Send a frame and wait for its `ok`/`pong`, failing on `err`.
    async fn request(&mut self, addr: &str, frame: &Value) -> Result<Value, BusError> {
        write_frame(&mut self.writer, frame).await?;
        let reply = tokio::time::timeout(
            REPLY_TIMEOUT,
            read_frame(&mut self.reader, CLIENT_MAX_FRAME),
        )
        .await
        .map_err(|_| BusError::Timeout(REPLY_TIMEOUT.as_millis() as u64))??
        .ok_or_else(|| BusError::Unreachable {
            url: format!("tcp://{addr}"),
            reason: "the server closed the connection".into(),
        })?;
        match reply["op"].as_str() {
            Some("err") => Err(BusError::Refused {
                url: format!("tcp://{addr}"),
                reason: reply["error"].as_str().unwrap_or("unknown").to_owned(),
            }),
            _ => Ok(reply),
        }
    }
}

impl Client {
    pub async fn connect(addr: &str, agent: &str) -> Result<Client, BusError> {
        let mut conn = Conn::open(addr).await?;
        // A server at its connection limit answers with `err` at once: surface it now.
        conn.request(addr, &json!({"op": "ping"})).await?;
        Ok(Client {
            addr: addr.to_owned(),
            agent: agent.to_owned(),
            conn,
        })
    }

    pub async fn publish(&mut self, subject: &str, payload: Value) -> Result<Envelope, BusError> {
        let mut env = Envelope::new(subject, &self.agent, payload);
        let frame =
            json!({"op": "pub", "subject": subject, "from": self.agent, "payload": env.payload});
        let reply = self.conn.request(&self.addr, &frame).await?;
        if let Some(ts) = reply["ts"].as_u64() {
            env.ts = ts;
        }
        Ok(env)
    }

    /// One round trip (ping → pong), for latency measurements.
    pub async fn ping(&mut self) -> Result<(), BusError> {
        self.conn
            .request(&self.addr, &json!({"op": "ping"}))
            .await
            .map(drop)
    }

    /// Subscriptions get their own connection, so publishing on this one never
    /// interleaves with incoming messages.
    pub async fn subscribe(&mut self, pattern: &str) -> Result<ClientSubscription, BusError> {
        let mut conn = Conn::open(&self.addr).await?;
        conn.request(&self.addr, &json!({"op": "sub", "subject": pattern}))
            .await?;
        let (frames, reader) = spawn_reader(conn.reader, CLIENT_MAX_FRAME, None);
        let first = tokio::time::Instant::now() + PING_EVERY;
        Ok(ClientSubscription {
            addr: self.addr.clone(),
            writer: conn.writer,
            frames,
            ping: tokio::time::interval_at(first, PING_EVERY),
            _reader: reader,
        })
    }
}

pub struct ClientSubscription {
    addr: String,
    writer: tokio::net::tcp::OwnedWriteHalf,
    frames: tokio::sync::mpsc::Receiver<Event>,
    ping: tokio::time::Interval,
    _reader: AbortOnDrop,
}

impl ClientSubscription {
    pub async fn next(&mut self) -> Result<Option<Envelope>, BusError> {
        loop {
            tokio::select! {
                event = self.frames.recv() => {
                    let frame = match event {
                        Some(Event::Frame(f)) => f,
                        Some(Event::Bad(e)) => return Err(e),
                        Some(Event::Idle | Event::Closed) | None => return Ok(None),
                    };
                    match frame["op"].as_str() {
                        Some("msg") => {
                            // A message in another shape (a prototype's server, a
                            // foreign publisher) is delivered as it came, marked
                            // foreign: one odd message never ends a subscription.
                            return Ok(Some(serde_json::from_value(frame.clone()).unwrap_or_else(|_| Envelope {
                                subject: frame["subject"].as_str().unwrap_or("?").to_owned(),
                                from: "?".to_owned(),
                                ts: super::now_ms(),
                                seq: 0,
                                payload: frame.get("payload").cloned().unwrap_or(frame),
                                foreign: true,
                            })));
                        }
                        Some("err") => {
                            return Err(BusError::Refused {
                                url: format!("tcp://{}", self.addr),
                                reason: frame["error"].as_str().unwrap_or("unknown").to_owned(),
                            })
                        }
                        _ => {} // pong
                    }
                }
                _ = self.ping.tick() => write_frame(&mut self.writer, &json!({"op": "ping"})).await?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn server(config: ServerConfig) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(serve(listener, config, Arc::new(Stats::default())));
        addr
    }

    #[tokio::test]
    async fn client_and_server_talk() {
        let addr = server(ServerConfig::default()).await;
        let mut bob = Client::connect(&addr, "bob").await.unwrap();
        let mut sub = bob.subscribe("agent.*").await.unwrap();
        let mut alice = Client::connect(&addr, "alice").await.unwrap();
        alice.publish("fleet.other", json!(0)).await.unwrap();
        alice.publish("agent.bob", json!({"hi": 1})).await.unwrap();
        let got = sub.next().await.unwrap().unwrap();
        assert_eq!(
            (got.subject.as_str(), got.from.as_str()),
            ("agent.bob", "alice")
        );
        assert_eq!(got.payload, json!({"hi": 1}));
    }

    /// A server that is not datum's (the prototype's, say) sends a message in another
    /// shape: the subscriber gets it marked foreign, and the next one too.
    #[tokio::test]
    async fn an_odd_message_is_foreign_not_the_end_of_the_subscription() {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = tokio::io::BufReader::new(read).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let _ = write.write_all(b"{\"op\":\"ok\"}\n").await;
                        if line.contains("\"sub\"") {
                            let odd = "{\"op\":\"msg\",\"topic\":\"agent.bob\",\"payload\":\"old style\"}\n";
                            let good = serde_json::to_string(&json!({"op": "msg", "subject": "agent.bob", "from": "carol", "ts": 1, "payload": 2})).unwrap();
                            let _ = write.write_all(odd.as_bytes()).await;
                            let _ = write.write_all(format!("{good}\n").as_bytes()).await;
                        }
                    }
                });
            }
        });
        let mut bob = Client::connect(&addr, "bob").await.unwrap();
        let mut sub = bob.subscribe("agent.*").await.unwrap();
        let odd = sub.next().await.unwrap().unwrap();
        assert!(odd.foreign);
        assert_eq!(
            (odd.from.as_str(), odd.payload.clone()),
            ("?", json!("old style"))
        );
        let good = sub.next().await.unwrap().unwrap();
        assert!(!good.foreign);
        assert_eq!((good.from.as_str(), good.payload), ("carol", json!(2)));
    }

    #[tokio::test]
    async fn oversized_frames_and_idle_clients_are_cut_off() {
        let addr = server(ServerConfig {
            max_frame: 100,
            read_timeout: Duration::from_millis(200),
            ..ServerConfig::default()
        })
        .await;
        let mut c = Client::connect(&addr, "a").await.unwrap();
        let err = c.publish("x", json!("y".repeat(200))).await.unwrap_err();
        assert!(err.to_string().contains("over 100 bytes"), "{err}");
        let mut idle = Conn::open(&addr).await.unwrap();
        let frame =
            tokio::time::timeout(Duration::from_secs(5), read_frame(&mut idle.reader, 1000))
                .await
                .unwrap()
                .unwrap()
                .unwrap();
        assert!(frame["error"].as_str().unwrap().contains("idle"));
    }

    #[tokio::test]
    async fn connections_past_the_limit_are_refused_with_a_reason() {
        let addr = server(ServerConfig {
            max_connections: 1,
            ..ServerConfig::default()
        })
        .await;
        let _first = Client::connect(&addr, "a").await.unwrap();
        let err = Client::connect(&addr, "b").await.err().unwrap();
        assert!(err.to_string().contains("connection limit"), "{err}");
    }
}
