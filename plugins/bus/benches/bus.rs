//! `cargo bench -p datum-plugin-bus`: what each bus transport costs, each next to a
//! baseline measured in the same run, with the ratio.
//!
//! * in process: publishes/s (one synced append each) vs a bare append + fsync
//! * TCP: round trip (ping → pong) and publish → own subscriber, vs a raw TCP echo
//! * NATS: publishes/s acked by JetStream, and unconfirmed, vs core NATS publish
//!
//! The NATS part starts its own `nats-server -js` on 127.0.0.1 through the end-to-end
//! tests' fixture (needs the Debian package nats-server, which the scripts install).
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datum_plugin_bus::bus::{inproc::InProc, nats::NatsBus, tcp, Bus, BusUrl};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn row(what: &str, value: String, baseline: &str, base_value: String, ratio: f64) {
    let ratio = if ratio < 0.1 {
        format!("{ratio:.4}")
    } else {
        format!("{ratio:.2}")
    };
    println!("{what:<44} {value:>14}   {baseline:<34} {base_value:>14}   {ratio:>7}×");
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{:<44} {:>14}   {:<34} {:>14}   {:>7}",
        "measure", "datum", "baseline (same run)", "", "ratio"
    );
    inproc();
    rt.block_on(group_bench());
    rt.block_on(tcp_bench());
    rt.block_on(bridge_bench());
    rt.block_on(nats_bench());
}

fn inproc() {
    const N: usize = 2000;
    let dir = tempfile::tempdir().unwrap();
    let mut bus = InProc::open(dir.path(), "bench").unwrap();
    let start = Instant::now();
    for i in 0..N {
        bus.publish("agent.bob", json!({"i": i})).unwrap();
    }
    let ours = N as f64 / start.elapsed().as_secs_f64();
    let path = dir.path().join("bare.log");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    let line = format!(
        "{}\n",
        json!({"subject": "agent.bob", "from": "bench", "ts": 0, "seq": 0, "payload": {"i": 0}})
    );
    let start = Instant::now();
    for _ in 0..N {
        f.write_all(line.as_bytes()).unwrap();
        f.sync_data().unwrap();
    }
    let bare = N as f64 / start.elapsed().as_secs_f64();
    row(
        "in-process publish (synced append)",
        format!("{ours:.0} msg/s"),
        "bare append + fsync",
        format!("{bare:.0} /s"),
        ours / bare,
    );
}

/// Publishes per second through the in-process bus's group commit with `publishers`
/// concurrent tasks, each waiting until its message is synced.
async fn group_commit(publishers: usize, each: usize) -> f64 {
    use datum_plugin_bus::bus::{inproc::GroupCommit, Envelope};
    let dir = tempfile::tempdir().unwrap();
    let group = GroupCommit::start(InProc::open(dir.path(), "bench").unwrap());
    let start = Instant::now();
    let tasks: Vec<_> = (0..publishers)
        .map(|_| {
            let group = group.clone();
            tokio::spawn(async move {
                for i in 0..each {
                    group
                        .publish(Envelope::new("agent.bob", "bench", json!({"i": i})))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (publishers * each) as f64 / start.elapsed().as_secs_f64()
}

async fn group_bench() {
    // Baseline: one synced append per message, as a lone publisher must.
    let dir = tempfile::tempdir().unwrap();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("bare.jsonl"))
        .unwrap();
    let line = format!(
        "{}\n",
        json!({"subject": "agent.bob", "from": "bench", "ts": 0, "seq": 0, "payload": {"i": 0}})
    );
    let start = Instant::now();
    for _ in 0..2000 {
        f.write_all(line.as_bytes()).unwrap();
        f.sync_data().unwrap();
    }
    let bare = 2000.0 / start.elapsed().as_secs_f64();
    for publishers in [8, 64, 256] {
        let ours = group_commit(publishers, 40_000 / publishers).await;
        row(
            &format!("in-process group commit, {publishers} publishers"),
            format!("{ours:.0} msg/s"),
            "bare append + fsync each",
            format!("{bare:.0} /s"),
            ours / bare,
        );
    }
}

async fn tcp_bench() {
    const N: usize = 5000;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(tcp::serve(
        listener,
        tcp::ServerConfig::default(),
        Arc::new(tcp::Stats::default()),
    ));
    let mut client = tcp::Client::connect(&addr, "bench").await.unwrap();
    let start = Instant::now();
    for _ in 0..N {
        client.ping().await.unwrap();
    }
    let rtt = start.elapsed() / N as u32;

    // Publish and receive our own message through the server.
    let mut bus = Bus::connect(
        &BusUrl::Tcp(addr.clone()),
        std::path::Path::new("."),
        "bench",
    )
    .await
    .unwrap();
    let mut sub = bus.subscribe("bench.echo", None).await.unwrap();
    let start = Instant::now();
    for i in 0..N {
        bus.publish("bench.echo", json!(i)).await.unwrap();
        sub.next().await.unwrap().unwrap();
    }
    let pub_sub = start.elapsed() / N as u32;

    // Baseline: a raw line echo over loopback, no JSON, no server logic.
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = echo.local_addr().unwrap();
    tokio::spawn(async move {
        let (s, _) = echo.accept().await.unwrap();
        s.set_nodelay(true).unwrap();
        let (r, mut w) = s.into_split();
        let mut r = BufReader::new(r);
        let mut line = String::new();
        while r.read_line(&mut line).await.unwrap_or(0) > 0 {
            w.write_all(line.as_bytes()).await.unwrap();
            line.clear();
        }
    });
    let s = tokio::net::TcpStream::connect(echo_addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    let start = Instant::now();
    for _ in 0..N {
        w.write_all(b"{\"op\":\"ping\"}\n").await.unwrap();
        line.clear();
        r.read_line(&mut line).await.unwrap();
    }
    let raw = start.elapsed() / N as u32;
    row(
        "TCP round trip (ping → pong)",
        format!("{:.1} µs", micros(rtt)),
        "raw TCP line echo",
        format!("{:.1} µs", micros(raw)),
        micros(rtt) / micros(raw),
    );
    row(
        "TCP publish → own subscriber",
        format!("{:.1} µs", micros(pub_sub)),
        "raw TCP line echo",
        format!("{:.1} µs", micros(raw)),
        micros(pub_sub) / micros(raw),
    );
}

/// TCP publishes per second with `publishers` clients, each waiting for its `ok`, on a
/// server bridged to an in-process bus (each `ok` after the message is synced to the
/// log) or not.
async fn tcp_publishes(bridged: bool, publishers: usize, each: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (config, stats) = (
        tcp::ServerConfig::default(),
        Arc::new(tcp::Stats::default()),
    );
    if bridged {
        let inproc = InProc::open(dir.path(), "bench").unwrap();
        tokio::spawn(tcp::serve_bridged(listener, config, stats, inproc));
    } else {
        tokio::spawn(tcp::serve(listener, config, stats));
    }
    let mut clients = Vec::new();
    for _ in 0..publishers {
        clients.push(tcp::Client::connect(&addr, "bench").await.unwrap());
    }
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                for i in 0..each {
                    c.publish("bench.bridge", json!({"i": i})).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (publishers * each) as f64 / start.elapsed().as_secs_f64()
}

async fn bridge_bench() {
    for (publishers, each) in [(1, 1000), (8, 500)] {
        let plain = tcp_publishes(false, publishers, each).await;
        let bridged = tcp_publishes(true, publishers, each).await;
        row(
            &format!("TCP publish, bridged (synced), {publishers} client(s)"),
            format!("{bridged:.0} msg/s"),
            "the same server, not bridged",
            format!("{plain:.0} /s"),
            bridged / plain,
        );
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn nats_bench() {
    let server = datum_test_support::NatsServer::start();
    const CONFIRMED: usize = 2000;
    const FIRE: usize = 50_000;
    let mut bus = NatsBus::connect(&server.url, "bench").await.unwrap();
    // Baseline first (so the server is not still storing the other runs' messages):
    // core NATS publish of the same bytes on a subject no stream captures.
    let client = bus.client().clone();
    let body = serde_json::to_vec(
        &json!({"subject": "x", "from": "bench", "ts": 0, "seq": 0, "payload": {"i": 0}}),
    )
    .unwrap();
    let start = Instant::now();
    for _ in 0..FIRE {
        client
            .publish("bench.core", body.clone().into())
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    let core = FIRE as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    for i in 0..CONFIRMED {
        bus.publish("bench.acked", json!({"i": i})).await.unwrap();
    }
    let acked = CONFIRMED as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    for i in 0..FIRE {
        bus.publish_unconfirmed("bench.fire", json!({"i": i}))
            .await
            .unwrap();
    }
    bus.flush().await.unwrap();
    let unconfirmed = FIRE as f64 / start.elapsed().as_secs_f64();
    row(
        "NATS publish, JetStream-acked each",
        format!("{acked:.0} msg/s"),
        "core NATS publish (not stored)",
        format!("{core:.0} /s"),
        acked / core,
    );
    row(
        "NATS publish into JetStream, unconfirmed",
        format!("{unconfirmed:.0} msg/s"),
        "core NATS publish (not stored)",
        format!("{core:.0} /s"),
        unconfirmed / core,
    );
}
