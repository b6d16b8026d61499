//! The TCP bus: JSON lines on port 7743, a server (`datum bus serve`) and a client.
//!
//! Frames, one JSON object per line, client → server:
//! `{"op":"pub","subject":S,"from":A,"payload":P}`, `{"op":"sub","subject":PATTERN}`,
//! `{"op":"unsub","subject":PATTERN}`, `{"op":"ping"}`;
//! server → client: `{"op":"ok","ts":T}` (after pub/sub/unsub; a bridged server adds
//! `"bridged": true|false` to a pub's, once the message is in the in-process log), `{"op":"pong"}`,
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
    /// Messages from TCP written to the in-process bus.
    pub bridged_in: AtomicU64,
    /// Messages from the in-process bus sent to TCP subscribers.
    pub bridged_out: AtomicU64,
    /// Messages from TCP the in-process bus could not take (too big, or a write failed).
    pub not_bridged: AtomicU64,
}

/// Serve the bus on `listener` until the future is dropped.
pub async fn serve(
    listener: TcpListener,
    config: ServerConfig,
    stats: Arc<Stats>,
) -> Result<(), BusError> {
    let (tx, _) = broadcast::channel::<Arc<Envelope>>(config.backlog);
    run(listener, config, stats, tx, None).await
}

/// Serve the bus on `listener` and bridge it, both ways, to the in-process bus of one
/// workshop (`inproc`): what TCP clients publish is appended to the workshop's log (its
/// sender and time kept, marked `via`), and what is appended there by anyone else is
/// sent to the TCP subscribers. A message crosses once: the bridge skips, in the log,
/// what it wrote itself.
pub async fn serve_bridged(
    listener: TcpListener,
    config: ServerConfig,
    stats: Arc<Stats>,
    inproc: super::inproc::InProc,
) -> Result<(), BusError> {
    let via = format!(
        "tcp://{}",
        listener
            .local_addr()
            .map_err(BusError::io("cannot read the listening address"))?
    );
    let (tx, _) = broadcast::channel::<Arc<Envelope>>(config.backlog);

    // In-process → TCP: follow the log from now on (before accepting anyone, so
    // nothing published after the server is up is missed).
    let mut follower = inproc.follow(">")?;
    let (out_tx, out_stats, out_via) = (tx.clone(), stats.clone(), via.clone());
    let outward = tokio::spawn(async move {
        loop {
            match follower.next().await {
                Ok(Some(env)) if env.via.as_deref() == Some(out_via.as_str()) => {}
                Ok(Some(env)) => {
                    out_stats.bridged_out.fetch_add(1, Ordering::Relaxed);
                    let _ = out_tx.send(Arc::new(env));
                }
                Ok(None) => return,
                Err(e) => {
                    eprintln!("bus bridge: cannot read the in-process bus: {e}; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    let _outward = AbortOnDrop(outward.abort_handle());

    // TCP → in-process: group-committed, so each publisher hears `ok` only once its
    // message is synced to the log (a server stopped or killed after answering has
    // lost nothing it acknowledged), while concurrent publishers share the syncs.
    let group = super::inproc::GroupCommit::start(inproc);
    run(listener, config, stats, tx, Some(Inward { group, via })).await
}

/// Where a bridged server sends what TCP clients publish.
#[derive(Clone)]
struct Inward {
    group: super::inproc::GroupCommit,
    via: String,
}

impl Inward {
    /// Append `env` to the in-process log and wait until it is synced; false when it
    /// could not be (too big, or the write failed).
    async fn write(&self, env: &Envelope, stats: &Stats) -> bool {
        let mut env = env.clone();
        env.via = Some(self.via.clone());
        match self.group.publish(env).await {
            Ok(_) => {
                stats.bridged_in.fetch_add(1, Ordering::Relaxed);
                true
            }
            // Too big for the log: its `ok` says `bridged: false`; nothing failed.
            Err(BusError::TooBig { .. }) => {
                stats.not_bridged.fetch_add(1, Ordering::Relaxed);
                false
            }
            Err(e) => {
                eprintln!("bus bridge: a message was not written to the in-process bus: {e}");
                stats.not_bridged.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

async fn run(
    listener: TcpListener,
    config: ServerConfig,
    stats: Arc<Stats>,
    tx: broadcast::Sender<Arc<Envelope>>,
    inward: Option<Inward>,
) -> Result<(), BusError> {
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
                let inward = inward.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let _ = connection(stream, peer, tx, inward, &config, &stats).await;
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
    inward: Option<Inward>,
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
                let (mut reply, published) = handle(&frame, &tx, &mut patterns, stats);
                if let (Some(inward), Some(env)) = (&inward, published) {
                    reply["bridged"] = json!(inward.write(&env, stats).await);
                }
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

/// Answer one frame; a `pub` also returns the message it published.
fn handle(
    frame: &Value,
    tx: &broadcast::Sender<Arc<Envelope>>,
    patterns: &mut Vec<String>,
    stats: &Stats,
) -> (Value, Option<Arc<Envelope>>) {
    let err = |e: String| json!({"op": "err", "error": e});
    let subject = frame["subject"].as_str().unwrap_or_default();
    let reply = match frame["op"].as_str().unwrap_or_default() {
        "ping" => json!({"op": "pong"}),
        "pub" => {
            if let Err(e) = check_subject(subject, false) {
                return (err(e.to_string()), None);
            }
            let from = frame["from"].as_str().unwrap_or("anonymous");
            let env = Envelope::new(
                subject,
                from,
                frame.get("payload").cloned().unwrap_or(Value::Null),
            );
            let ts = env.ts;
            let env = Arc::new(env);
            // No subscribers is not an error: publishing is fire-and-forget.
            let _ = tx.send(env.clone());
            stats.published.fetch_add(1, Ordering::Relaxed);
            return (json!({"op": "ok", "ts": ts}), Some(env));
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
    };
    (reply, None)
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
                                via: None,
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

    /// A TCP client and the workshop's in-process bus, 1,000 messages each way through
    /// a bridged server: every one arrives once, in order, and nothing echoes back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bridged_server_carries_every_message_once_each_way() {
        use crate::bus::inproc::InProc;
        const N: usize = 1000;
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stats = Arc::new(Stats::default());
        let inproc = InProc::open(dir.path(), "server").unwrap();
        tokio::spawn(serve_bridged(
            listener,
            ServerConfig::default(),
            stats.clone(),
            inproc,
        ));

        let mut datum = InProc::open(dir.path(), "ada").unwrap();
        let mut follower = datum.follow("fleet.>").unwrap();
        let mut proto = Client::connect(&addr, "proto").await.unwrap();
        let mut proto_sub = proto.subscribe("fleet.>").await.unwrap();

        // TCP → in-process.
        for i in 0..N {
            proto.publish("fleet.to-datum", json!(i)).await.unwrap();
        }
        for i in 0..N {
            let env = tokio::time::timeout(Duration::from_secs(10), follower.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(
                (env.from.as_str(), env.payload.clone()),
                ("proto", json!(i))
            );
            assert_eq!(env.via.as_deref(), Some(format!("tcp://{addr}").as_str()));
        }
        // The TCP subscriber saw its own side's messages once (straight from the server).
        for i in 0..N {
            let env = proto_sub.next().await.unwrap().unwrap();
            assert_eq!(
                (env.subject.as_str(), env.payload),
                ("fleet.to-datum", json!(i))
            );
        }

        // In-process → TCP.
        for i in 0..N {
            datum.publish("fleet.to-proto", json!(i)).unwrap();
        }
        for i in 0..N {
            let env = tokio::time::timeout(Duration::from_secs(10), proto_sub.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(
                (env.subject.as_str(), env.from.as_str(), env.payload),
                ("fleet.to-proto", "ada", json!(i)),
                "in order, none lost, none echoed back from the log"
            );
        }
        // ...and nothing more on either side.
        proto.publish("fleet.end", json!("end")).await.unwrap();
        let last = proto_sub.next().await.unwrap().unwrap();
        assert_eq!(
            last.subject, "fleet.end",
            "no duplicate arrived before the marker"
        );
        let mut datum_side = Vec::new();
        while datum_side
            .last()
            .is_none_or(|e: &Envelope| e.subject != "fleet.end")
        {
            datum_side.push(follower.next().await.unwrap().unwrap());
        }
        assert_eq!(
            datum_side.len(),
            N + 1,
            "the follower saw ada's own messages and the marker, once each"
        );
        assert_eq!(
            (
                stats.bridged_in.load(Ordering::Relaxed),
                stats.bridged_out.load(Ordering::Relaxed),
                stats.not_bridged.load(Ordering::Relaxed)
            ),
            (N as u64 + 1, N as u64, 0)
        );
    }

    /// Hostile input through the bridge: a forged `via` or `seq` is ignored, a payload
    /// too big for the log is refused by it (and said so), and the log stays readable.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_tcp_clients_send_cannot_steer_the_bridge() {
        use crate::bus::inproc::{InProc, MAX_MESSAGE};
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let inproc = InProc::open(dir.path(), "server").unwrap();
        let stats = Arc::new(Stats::default());
        tokio::spawn(serve_bridged(
            listener,
            ServerConfig::default(),
            stats.clone(),
            inproc,
        ));
        let mut conn = Conn::open(&addr).await.unwrap();
        let big = "x".repeat(MAX_MESSAGE + 1);
        let frames = [
            json!({"op": "pub", "subject": "a.b", "from": "eve", "via": format!("tcp://{addr}"), "seq": 1, "payload": 1}),
            json!({"op": "pub", "subject": "a.b", "from": "eve\n\u{1b}[2J", "payload": big}),
            json!({"op": "pub", "subject": "a.b", "from": 7, "payload": {"nested": [1, 2]}}),
        ];
        let mut bridged = Vec::new();
        for f in &frames {
            bridged.push(conn.request(&addr, f).await.unwrap()["bridged"].clone());
        }
        assert_eq!(bridged, [json!(true), json!(false), json!(true)]);
        let log = InProc::open(dir.path(), "reader").unwrap();
        let all = log.history(">", 10).unwrap();
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!(
            all[0].via,
            Some(format!("tcp://{addr}")),
            "the server's own mark"
        );
        assert_eq!(
            all.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2],
            "numbered by the log"
        );
        assert_eq!(all[1].from, "anonymous");
        assert_eq!(stats.not_bridged.load(Ordering::Relaxed), 1);
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
