//! The bus plugin through the real binary: the three transports, the TCP server and
//! client talking to each other, NATS durability, nodes and distributed conformance.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::PathBuf;
use std::time::Duration;

use datum_test_support::{free_port, NatsServer, Sandbox};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

/// A workshop for `name` with the bus plugin (native: it ships no WASM build).
fn workshop(sb: &Sandbox, name: &str) -> PathBuf {
    let ws = sb.empty_workshop(name);
    let r = sb.install(&ws, "bus");
    assert_eq!(r["installed"][0]["kind"], "native");
    ws
}

/// A private NATS server and a workshop with the bus plugin.
fn on_nats() -> (NatsServer, Sandbox, PathBuf) {
    let nats = NatsServer::start();
    let sb = Sandbox::new();
    let ws = workshop(&sb, "alice");
    (nats, sb, ws)
}

/// `datum node list` as JSON, once `want` nodes answered (or, without, every node that
/// answers within 2 s).
fn node_list(sb: &Sandbox, ws: &std::path::Path, nats: &NatsServer, want: Option<usize>) -> Value {
    let want = want.map(|n| n.to_string());
    let mut args = vec!["node", "list", "--nats", &nats.url, "--format", "json"];
    match &want {
        Some(n) => args.extend(["--wait-for", n.as_str()]),
        None => args.extend(["--wait-ms", "2000"]),
    }
    sb.datum_in(ws, &args).success().json()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn in_process_bus_keeps_a_history_that_other_processes_follow() {
    let sb = Sandbox::new();
    let ws = workshop(&sb, "alice");
    let mut sub = sb.spawn_in(&ws, &["bus", "subscribe", "agent.*", "--count", "2"]);
    sub.wait_for("listening on agent.* (inproc)", WAIT);
    sb.datum_in(&ws, &["bus", "publish", "agent.bob", r#"{"n": 1}"#])
        .success();
    sb.datum_in(&ws, &["bus", "publish", "fleet.alerts", "disk full"])
        .success();
    sb.datum_in(&ws, &["bus", "publish", "agent.carol", "plain text"])
        .success();
    assert!(sub.wait_exit(WAIT).success());
    let out = sub.output();
    assert!(
        out.contains(r#"[agent.bob] alice"#) && out.contains(r#"{"n":1}"#),
        "{out}"
    );
    assert!(
        out.contains(r#""plain text""#) && !out.contains("disk full"),
        "{out}"
    );

    let history = sb
        .datum_in(&ws, &["bus", "history", "--format", "json"])
        .success()
        .json();
    let seqs: Vec<u64> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    let alerts = sb
        .datum_in(
            &ws,
            &["bus", "history", "--subject", "fleet.>", "--format", "json"],
        )
        .success()
        .json();
    assert_eq!(alerts["messages"][0]["payload"], "disk full");
    // One line per message, appended: the file is JSON lines, not a rewritten document.
    let log = std::fs::read_to_string(ws.join(".superagent/bus.json")).unwrap();
    assert_eq!(log.lines().count(), 3);

    let bad = sb
        .datum_in(&ws, &["bus", "publish", "agent.*", "x"])
        .failure();
    assert!(bad.stderr().contains("wildcard"), "{}", bad.stderr());

    // A hand-broken bus config is reported with the fix, not silently ignored.
    std::fs::write(ws.join(".superagent/bus.toml"), "url = [oops").unwrap();
    let broken = sb
        .datum_in(&ws, &["bus", "publish", "agent.bob", "x"])
        .failure();
    assert!(
        broken.stderr().contains("datum bus use URL"),
        "{}",
        broken.stderr()
    );
}

#[test]
fn tcp_client_and_server_interoperate() {
    let sb = Sandbox::new();
    let ws = workshop(&sb, "alice");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let url = format!("tcp://{addr}");
    let refused = sb
        .datum_in(&ws, &["bus", "publish", "agent.bob", "x", "--bus", &url])
        .failure();
    assert!(
        refused.stderr().contains("datum bus serve"),
        "unreachable bus names the fix: {}",
        refused.stderr()
    );

    let server = sb.spawn_in(
        &ws,
        &["bus", "serve", "--addr", &addr, "--max-frame", "4096"],
    );
    server.wait_for("TCP bus on", WAIT);
    let mut sub = sb.spawn_in(
        &ws,
        &["bus", "subscribe", "agent.>", "--count", "2", "--bus", &url],
    );
    sub.wait_for("listening on agent.>", WAIT);
    sb.datum_in(
        &ws,
        &[
            "bus",
            "publish",
            "agent.bob.inbox",
            r#"{"hello": "bob"}"#,
            "--bus",
            &url,
        ],
    )
    .success();
    sb.datum_in(
        &ws,
        &["bus", "publish", "fleet.noise", "not for us", "--bus", &url],
    )
    .success();
    sb.datum_in(
        &ws,
        &["bus", "publish", "agent.carol", "hi carol", "--bus", &url],
    )
    .success();
    assert!(sub.wait_exit(WAIT).success(), "{}", sub.output());
    let out = sub.output();
    let got: Vec<&str> = out.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(got.len(), 2, "{out}");
    assert!(
        got[0].starts_with("[agent.bob.inbox] alice <") && got[0].ends_with(r#"{"hello":"bob"}"#),
        "{out}"
    );
    assert!(
        got[1].starts_with("[agent.carol] alice <") && got[1].ends_with(r#""hi carol""#),
        "{out}"
    );

    // The frame cap holds from the CLI too.
    let big = "x".repeat(8000);
    let r = sb
        .datum_in(&ws, &["bus", "publish", "agent.bob", &big, "--bus", &url])
        .failure();
    assert!(r.stderr().contains("over 4096 bytes"), "{}", r.stderr());

    let r = sb
        .datum_in(&ws, &["bus", "serve", "--addr", "0.0.0.0:0"])
        .failure();
    assert!(r.stderr().contains("--allow-remote"), "{}", r.stderr());
    drop(server);
}

#[test]
fn nats_delivers_live_and_durably() {
    let (nats, sb, ws) = on_nats();
    sb.datum_in(&ws, &["bus", "use", &nats.url]).success();

    let mut live = sb.spawn_in(&ws, &["bus", "subscribe", "agent.*", "--count", "1"]);
    live.wait_for(&format!("listening on agent.* ({})", nats.url), WAIT);
    sb.datum_in(&ws, &["bus", "publish", "agent.bob", "live one"])
        .success();
    assert!(live.wait_exit(WAIT).success());
    assert!(live.output().contains("live one"));

    // Sent while dora is away: a durable subscription gets them later, once each.
    sb.datum_in(&ws, &["bus", "publish", "agent.dora", "first"])
        .success();
    sb.datum_in(&ws, &["bus", "publish", "agent.dora", "second"])
        .success();
    // A durable subscription's payloads, `count` of them.
    let durable = |count: &str| -> Vec<Value> {
        let got = sb
            .datum_in(
                &ws,
                &[
                    "bus",
                    "subscribe",
                    "agent.dora",
                    "--durable",
                    "dora",
                    "--count",
                    count,
                    "--timeout",
                    "30",
                    "--format",
                    "json",
                ],
            )
            .success();
        json_lines(&got.stdout())
            .into_iter()
            .map(|m| m["payload"].clone())
            .collect()
    };
    let payloads = durable("2");
    assert_eq!(payloads, vec![Value::from("first"), Value::from("second")]);
    sb.datum_in(&ws, &["bus", "publish", "agent.dora", "third"])
        .success();
    let payloads = durable("1");
    assert_eq!(
        payloads,
        vec![Value::from("third")],
        "nothing delivered twice"
    );

    let r = sb
        .datum_in(
            &ws,
            &[
                "bus",
                "publish",
                "agent.x",
                "y",
                "--bus",
                &format!("nats://127.0.0.1:{}", free_port()),
            ],
        )
        .failure();
    assert!(
        r.stderr().contains("nats-server"),
        "an unreachable NATS names the fix: {}",
        r.stderr()
    );
}

#[test]
fn distribute_splits_conformance_across_nodes_and_agrees_with_a_local_run() {
    let (nats, sb, ws) = on_nats();
    let none = sb
        .datum_in(&ws, &["distribute", "--nats", &nats.url])
        .failure();
    assert!(none.stderr().contains("no nodes"), "{}", none.stderr());

    let nodes: Vec<_> = (1..=3)
        .map(|i| {
            let name = format!("n{i}");
            let node = sb.spawn_in(
                &ws,
                &[
                    "node", "start", "--nats", &nats.url, "--name", &name, "--role", "tester",
                ],
            );
            node.wait_for("joined", WAIT);
            node
        })
        .collect();
    let list = node_list(&sb, &ws, &nats, Some(3));
    let ids: Vec<&str> = list["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["n1", "n2", "n3"]);
    assert_eq!(list["nodes"][0]["role"], "tester");

    let local = sb
        .datum_in(
            &ws,
            &[
                "distribute",
                "--nats",
                &nats.url,
                "--nodes",
                "3",
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    assert_eq!(local["total"], 177);
    assert_eq!(local["agree"], 177);
    assert_eq!(local["passed"], local["passed_locally"]);

    let rr = sb
        .datum_in(
            &ws,
            &[
                "distribute",
                "--nats",
                &nats.url,
                "--nodes",
                "3",
                "--strategy",
                "round-robin",
                "--chunk",
                "8",
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    assert_eq!(rr["agree"], 177);
    assert_eq!(
        rr["by_node"].as_object().unwrap().len(),
        3,
        "round-robin used every node: {rr}"
    );
    let text = sb
        .datum_in(&ws, &["distribute", "--nats", &nats.url, "--nodes", "3"])
        .success()
        .stdout();
    assert!(text.starts_with("AGREE 177/177"), "{text}");
    drop(nodes);
}

#[test]
fn a_killed_nodes_work_is_redelivered_and_the_result_is_complete() {
    let (nats, sb, ws) = on_nats();
    // The slow node takes a task first and dies holding it.
    let mut slow = sb.spawn_in(
        &ws,
        &[
            "node",
            "start",
            "--nats",
            &nats.url,
            "--name",
            "slow",
            "--delay-ms",
            "300",
        ],
    );
    slow.wait_for("joined", WAIT);
    let mut job = sb.spawn_in(
        &ws,
        &[
            "distribute",
            "--nats",
            &nats.url,
            "--nodes",
            "1",
            "--chunk",
            "4",
            "--ack-wait",
            "2",
            "--timeout",
            "60",
            "--format",
            "json",
        ],
    );
    slow.wait_for("task ", WAIT);
    slow.kill();
    let fast = sb.spawn_in(
        &ws,
        &["node", "start", "--nats", &nats.url, "--name", "fast"],
    );
    assert!(job.wait_exit(WAIT).success(), "{}", job.output());
    let report: Value = serde_json::from_str(&job.output()).unwrap();
    assert_eq!(report["total"], 177);
    assert_eq!(report["agree"], 177, "{report}");
    assert_eq!(
        report["by_node"]["fast"], 177,
        "the dead node's results never arrived: {report}"
    );
    assert!(fast.output().contains("(redelivered)"), "{}", fast.output());
    let list = node_list(&sb, &ws, &nats, None);
    assert_eq!(
        list["nodes"].as_array().unwrap().len(),
        1,
        "the killed node no longer answers"
    );
}

/// A NATS client that is not datum, speaking the NATS text protocol by hand (as
/// nats-py or the `nats` CLI would on the wire): CONNECT, PUB, SUB, PING.
struct RawNats {
    reader: std::io::BufReader<std::net::TcpStream>,
    writer: std::net::TcpStream,
}

impl RawNats {
    fn connect(url: &str) -> RawNats {
        use std::io::BufRead;
        let addr = url.trim_start_matches("nats://");
        let stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut raw = RawNats {
            reader: std::io::BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        let mut info = String::new();
        raw.reader.read_line(&mut info).unwrap();
        assert!(info.starts_with("INFO "), "{info}");
        raw.send("CONNECT {\"verbose\":false,\"headers\":true,\"name\":\"not-datum\"}\r\n");
        raw.ping();
        raw
    }

    fn send(&mut self, text: &str) {
        use std::io::Write;
        self.writer.write_all(text.as_bytes()).unwrap();
    }

    /// PING, then wait for the PONG: everything sent before it was processed.
    fn ping(&mut self) {
        use std::io::BufRead;
        self.send("PING\r\n");
        let mut line = String::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "PONG\r\n" {
                return;
            }
            assert!(!line.is_empty(), "the server hung up");
        }
    }

    /// The next HMSG/MSG: its header block (empty without headers) and body.
    fn next_message(&mut self) -> (String, Vec<u8>) {
        use std::io::{BufRead, Read};
        let mut line = String::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            assert!(!line.is_empty(), "the server hung up");
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.first().copied() {
                Some("PING") => self.send("PONG\r\n"),
                Some("HMSG") => {
                    let total: usize = parts[parts.len() - 1].parse().unwrap();
                    let head: usize = parts[parts.len() - 2].parse().unwrap();
                    let mut buf = vec![0; total + 2];
                    self.reader.read_exact(&mut buf).unwrap();
                    let headers = String::from_utf8(buf[..head].to_vec()).unwrap();
                    return (headers, buf[head..total].to_vec());
                }
                Some("MSG") => {
                    let total: usize = parts[parts.len() - 1].parse().unwrap();
                    let mut buf = vec![0; total + 2];
                    self.reader.read_exact(&mut buf).unwrap();
                    return (String::new(), buf[..total].to_vec());
                }
                _ => {}
            }
        }
    }
}

/// Any NATS client can take part: its plain messages reach a datum subscriber marked
/// foreign and do not end the subscription; datum's messages reach it with the payload
/// as the body and datum's metadata in headers.
#[test]
fn a_plain_nats_client_and_datum_see_each_others_messages() {
    let (nats, sb, ws) = on_nats();
    sb.datum_in(&ws, &["bus", "use", &nats.url]).success();
    let mut sub = sb.spawn_in(&ws, &["bus", "subscribe", "agent.*", "--count", "3"]);
    sub.wait_for(&format!("listening on agent.* ({})", nats.url), WAIT);
    let mut raw = RawNats::connect(&nats.url);
    // Plain text, then plain JSON, from a client that knows nothing of datum.
    raw.send("PUB datum.bus.agent.x 5\r\nhello\r\n");
    raw.send("PUB datum.bus.agent.x 8\r\n{\"k\": 1}\r\n");
    raw.ping();
    sb.datum_in(
        &ws,
        &["bus", "publish", "agent.bob", "after the foreign ones"],
    )
    .success();
    assert!(sub.wait_exit(WAIT).success(), "{}", sub.output());
    let out = sub.output();
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("[agent.x] ? (foreign) <") && lines[0].ends_with("> \"hello\""),
        "{out}"
    );
    assert!(
        lines[1].starts_with("[agent.x] ? (foreign) <") && lines[1].ends_with("> {\"k\":1}"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("[agent.bob] alice <")
            && lines[2].ends_with("> \"after the foreign ones\""),
        "{out}"
    );
    // A durable reader of the same stream gets them in JSON, foreign marked.
    let durable = sb
        .datum_in(
            &ws,
            &[
                "bus",
                "subscribe",
                "agent.x",
                "--durable",
                "late",
                "--count",
                "2",
                "--timeout",
                "30",
                "--format",
                "json",
            ],
        )
        .success();
    let got = json_lines(&durable.stdout());
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        (got[0]["payload"].clone(), got[0]["foreign"].clone()),
        (Value::from("hello"), Value::Bool(true))
    );
    assert_eq!(got[1]["payload"], serde_json::json!({"k": 1}));

    // The other way: a plain subscriber gets datum's payload as the body.
    raw.send("SUB datum.bus.agent.z 7\r\n");
    raw.ping();
    sb.datum_in(&ws, &["bus", "publish", "agent.z", "to anyone"])
        .success();
    let (headers, body) = raw.next_message();
    assert_eq!(body, br#""to anyone""#);
    assert!(headers.starts_with("NATS/1.0\r\n"), "{headers}");
    assert!(headers.contains("Datum-From: alice\r\n"), "{headers}");
    assert!(headers.contains("Nats-Msg-Id: "), "{headers}");
}

/// A prototype agent on the TCP bus, written by hand from the seed protocol: JSON lines
/// on a plain socket, not datum's client.
struct SeedClient {
    reader: std::io::BufReader<std::net::TcpStream>,
    writer: std::net::TcpStream,
}

impl SeedClient {
    fn connect(addr: &str) -> SeedClient {
        let stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        SeedClient {
            reader: std::io::BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    fn send(&mut self, frame: Value) {
        use std::io::Write;
        let mut line = frame.to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes()).unwrap();
    }

    fn frame(&mut self) -> Value {
        use std::io::BufRead;
        let mut line = String::new();
        assert!(
            self.reader.read_line(&mut line).unwrap() > 0,
            "the server closed"
        );
        serde_json::from_str(&line).unwrap()
    }

    /// Send a frame and read its `ok`.
    fn request(&mut self, frame: Value) -> Value {
        self.send(frame);
        let reply = self.frame();
        assert_eq!(reply["op"], "ok", "{reply}");
        reply
    }

    /// The next `msg` frame (pongs and oks skipped).
    fn message(&mut self) -> Value {
        loop {
            let f = self.frame();
            if f["op"] == "msg" {
                return f;
            }
        }
    }
}

#[test]
fn a_prototype_agent_on_tcp_and_a_datum_agent_in_process_exchange_a_thousand_messages_each_way() {
    const N: usize = 1000;
    let sb = Sandbox::new();
    let ws = workshop(&sb, "alice");
    let addr = format!("127.0.0.1:{}", free_port());
    let server = sb.spawn_in(&ws, &["bus", "serve", "--addr", &addr]);
    server.wait_for("bridged both ways", WAIT);

    // datum's side listens on the in-process bus (no --bus: the workshop's own).
    let mut datum_sub = sb.spawn_in(
        &ws,
        &["bus", "subscribe", "proto.>", "--count", &N.to_string()],
    );
    datum_sub.wait_for("listening on proto.>", WAIT);
    // The prototype's side listens on TCP, on its own thread.
    let mut proto_sub = SeedClient::connect(&addr);
    proto_sub.request(serde_json::json!({"op": "sub", "subject": "datum.>"}));
    let listener = std::thread::spawn(move || {
        (0..N + 1)
            .map(|_| proto_sub.message())
            .collect::<Vec<Value>>()
    });

    // The prototype publishes N messages over TCP; every `ok` says it reached the log.
    let mut proto = SeedClient::connect(&addr);
    for i in 0..N {
        let ok = proto.request(serde_json::json!({"op": "pub", "subject": "proto.say", "from": "proto-agent", "payload": {"i": i}}));
        assert_eq!(ok["bridged"], true, "{ok}");
    }
    // datum publishes N messages in process, in one `datum batch`.
    let batch = sb.path("publish.jsonl");
    let lines: String = (0..N)
        .map(|i| {
            format!(
                "{}\n",
                serde_json::json!({"command": "bus publish", "args": {"subject": "datum.say", "message": format!("{{\"i\": {i}}}")}})
            )
        })
        .collect();
    std::fs::write(&batch, lines).unwrap();
    sb.datum_in(&ws, &["batch", batch.to_str().unwrap()])
        .success();
    // A marker after the last one: nothing may arrive twice before it.
    proto.request(serde_json::json!({"op": "pub", "subject": "proto.end", "from": "proto-agent", "payload": null}));
    sb.datum_in(&ws, &["bus", "publish", "datum.end", "end"])
        .success();

    assert!(
        datum_sub.wait_exit(WAIT).success(),
        "{}",
        datum_sub.output()
    );
    let out = datum_sub.output();
    let got: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("[proto.say]"))
        .collect();
    assert_eq!(got.len(), N, "{out}");
    for (i, line) in got.iter().enumerate() {
        assert!(
            line.starts_with("[proto.say] proto-agent <")
                && line.ends_with(&format!("{{\"i\":{i}}}")),
            "message {i} lost, duplicated or out of order: {line}"
        );
    }
    let seen = listener.join().unwrap();
    for (i, msg) in seen.iter().take(N).enumerate() {
        assert_eq!(
            (
                msg["subject"].as_str(),
                msg["from"].as_str(),
                &msg["payload"]
            ),
            (
                Some("datum.say"),
                Some("alice"),
                &serde_json::json!({"i": i})
            ),
            "message {i} lost, duplicated or out of order"
        );
    }
    assert_eq!(seen[N]["subject"], "datum.end");
    drop(server);
}

#[test]
fn node_join_takes_one_members_address_and_the_fleet_hears_of_it() {
    let sb = Sandbox::new();
    let alice = workshop(&sb, "alice");
    let bob = workshop(&sb, "bob");

    // An unreachable seed changes nothing.
    let gone = format!("127.0.0.1:{}", free_port());
    let r = sb
        .datum_in(&bob, &["node", "join", "--seed", &gone])
        .failure();
    assert!(
        r.stderr().contains("cannot reach the bus"),
        "{}",
        r.stderr()
    );
    assert!(!bob.join(".superagent/bus.toml").exists());
    let r = sb
        .datum_in(&bob, &["node", "join", "--seed", "inproc"])
        .failure();
    assert!(
        r.stderr().contains("not a fleet member's address"),
        "{}",
        r.stderr()
    );

    // A seed on the TCP bus (the prototype's protocol), given as HOST:PORT.
    let addr = format!("127.0.0.1:{}", free_port());
    let server = sb.spawn_in(&alice, &["bus", "serve", "--addr", &addr]);
    server.wait_for("TCP bus on", WAIT);
    let mut watcher = SeedClient::connect(&addr);
    watcher.request(serde_json::json!({"op": "sub", "subject": "fleet.join"}));
    let joined = sb
        .datum_in(
            &bob,
            &[
                "node", "join", "--seed", &addr, "--role", "auditor", "--format", "json",
            ],
        )
        .success()
        .json();
    assert_eq!(joined["bus"], format!("tcp://{addr}"));
    assert_eq!(joined["started"], false, "the TCP bus has no workers");
    let hello = watcher.message();
    assert_eq!(
        (hello["from"].as_str(), hello["payload"]["role"].as_str()),
        (Some("bob"), Some("auditor")),
        "{hello}"
    );
    // From now on bob's bus is the fleet's: his publish reaches alice's in-process bus.
    sb.datum_in(&bob, &["bus", "publish", "agent.alice", "hello from bob"])
        .success();
    let history = sb
        .datum_in(
            &alice,
            &[
                "bus",
                "history",
                "--subject",
                "agent.alice",
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    assert_eq!(history["messages"][0]["from"], "bob", "{history}");
    assert_eq!(history["messages"][0]["payload"], "hello from bob");
    drop(server);

    // A NATS seed: bob joins as a worker and shows up in `node list`.
    let nats = NatsServer::start();
    let mut node = sb.spawn_in(
        &bob,
        &[
            "node", "join", "--seed", &nats.url, "--name", "bob-1", "--role", "auditor",
        ],
    );
    node.wait_for("joined the fleet", WAIT);
    let list = node_list(&sb, &alice, &nats, Some(1));
    assert_eq!(list["nodes"][0]["id"], "bob-1", "{list}");
    assert_eq!(list["nodes"][0]["role"], "auditor");
    let config = std::fs::read_to_string(bob.join(".superagent/bus.toml")).unwrap();
    assert!(config.contains(&nats.url), "{config}");
    node.kill();
}
