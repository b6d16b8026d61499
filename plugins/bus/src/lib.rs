//! The bus plugin: one publish/subscribe interface over three transports (in process,
//! TCP JSON lines, NATS), the TCP bus server, and workers that share FLUX work over
//! NATS (`node start`, `node list`, `distribute`).

pub mod bus;
pub mod distribute;
pub mod node;
pub mod work;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use datum_plugin_api::{
    export_plugin, ErrorKind, Format, Host, Output, Plugin, PluginError, Request,
};
use serde_json::{json, Value};

use bus::{Bus, BusError, BusUrl};

pub struct BusPlugin;

/// Where `bus use` records the workshop's bus.
const CONFIG: &str = ".superagent/bus.toml";
const DEFAULT_NATS: &str = "nats://127.0.0.1:4222";
/// Where `node join` announces a new member.
const JOIN_SUBJECT: &str = "fleet.join";

impl Plugin for BusPlugin {
    const MANIFEST: &'static str = include_str!("../datum-plugin.toml");

    fn invoke(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
        let cx = Cx { req: request, host };
        match request.command.as_str() {
            "bus publish" => cx.block_on(cx.publish()),
            "bus subscribe" => cx.block_on(cx.subscribe()),
            "bus history" => cx.history(),
            "bus serve" => cx.block_on(cx.serve()),
            "bus use" => cx.use_bus(),
            "node start" => cx.block_on(cx.node_start()),
            "node join" => cx.block_on(cx.node_join()),
            "node list" => cx.block_on(cx.node_list()),
            "distribute" => cx.block_on(cx.distribute()),
            "distribute batch" => cx.block_on(cx.distribute_batch()),
            other => Err(PluginError::unknown_command("bus", other)),
        }
    }
}

export_plugin!(BusPlugin);

fn bus_err(e: BusError) -> PluginError {
    let kind = match e {
        BusError::Invalid(_) | BusError::TooBig { .. } => ErrorKind::InvalidArgs,
        _ => ErrorKind::Failed,
    };
    let hint = e.hint();
    let err = PluginError::new(kind, e.to_string());
    match hint {
        Some(h) => err.with_hint(h),
        None => err,
    }
}

struct Cx<'r, 'h> {
    req: &'r Request,
    host: &'r Host<'h>,
}

impl Cx<'_, '_> {
    fn block_on<F: std::future::Future<Output = Result<Output, PluginError>>>(
        &self,
        fut: F,
    ) -> Result<Output, PluginError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| PluginError::failed(format!("cannot start the async runtime: {e}")))?;
        runtime.block_on(fut)
    }

    fn json(&self) -> bool {
        self.req.format == Format::Json
    }

    fn agent(&self) -> &str {
        &self.req.agent.name
    }

    fn workshop(&self) -> Result<PathBuf, PluginError> {
        self.req
            .workshop
            .as_deref()
            .map(PathBuf::from)
            .ok_or_else(|| PluginError::failed("the host did not say which workshop this is"))
    }

    /// `--bus`, then `DATUM_BUS`, then `.superagent/bus.toml`, then in-process.
    fn bus_url(&self) -> Result<BusUrl, PluginError> {
        if let Some(u) = self.req.arg_str("bus") {
            return BusUrl::parse(u).map_err(bus_err);
        }
        if let Ok(u) = std::env::var("DATUM_BUS") {
            return BusUrl::parse(&u).map_err(|e| bus_err(e).with_hint("fix or unset DATUM_BUS"));
        }
        match self.configured()? {
            Some(u) => BusUrl::parse(&u).map_err(|e| {
                bus_err(e).with_hint(format!("fix it with `datum bus use URL` ({CONFIG})"))
            }),
            None => Ok(BusUrl::InProc),
        }
    }

    fn configured(&self) -> Result<Option<String>, PluginError> {
        #[derive(serde::Deserialize)]
        struct BusConfig {
            url: String,
        }
        match self.host.read_file(CONFIG) {
            Ok(text) => toml::from_str::<BusConfig>(&text)
                .map(|c| Some(c.url))
                .map_err(|e| {
                    PluginError::failed(format!("{CONFIG} is not a bus config: {e}"))
                        .with_hint("rewrite it with `datum bus use URL`")
                }),
            Err(e) if e.kind == ErrorKind::PermissionDenied => Err(e),
            Err(_) => Ok(None), // no config file: the default bus
        }
    }

    /// `--nats`, then a NATS `--bus`/config, then `DATUM_NATS`, then the local default.
    fn nats_url(&self) -> Result<String, PluginError> {
        if let Some(u) = self.req.arg_str("nats") {
            return match BusUrl::parse(u).map_err(bus_err)? {
                BusUrl::Nats(u) => Ok(u),
                other => Err(PluginError::invalid_args(format!(
                    "--nats needs a nats:// URL, not {other}"
                ))),
            };
        }
        if let Ok(BusUrl::Nats(u)) = self.bus_url() {
            return Ok(u);
        }
        Ok(std::env::var("DATUM_NATS").unwrap_or_else(|_| DEFAULT_NATS.to_owned()))
    }

    fn secs(&self, name: &str, default: u64) -> Result<Duration, PluginError> {
        match self.req.arg_i64(name) {
            None => Ok(Duration::from_secs(default)),
            Some(n) if n > 0 => Ok(Duration::from_secs(n as u64)),
            Some(_) => Err(PluginError::invalid_args(format!(
                "--{name} is in seconds and at least 1"
            ))),
        }
    }

    async fn connect(&self) -> Result<(Bus, BusUrl), PluginError> {
        let url = self.bus_url()?;
        let bus = Bus::connect(&url, &self.workshop()?, self.agent())
            .await
            .map_err(bus_err)?;
        Ok((bus, url))
    }

    async fn publish(&self) -> Result<Output, PluginError> {
        let subject = self.req.require_str("subject")?;
        // A message that parses as JSON travels as JSON; anything else as a string.
        let payload = match self.req.arg_str("message") {
            Some(text) => {
                serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
            }
            None => Value::Null,
        };
        let (mut bus, url) = self.connect().await?;
        let env = bus.publish(subject, payload).await.map_err(bus_err)?;
        Ok(
            Output::new(json!({ "bus": url.to_string(), "message": env }))
                .with_text(format!("published on {subject} ({url})")),
        )
    }

    async fn subscribe(&self) -> Result<Output, PluginError> {
        let pattern = self.req.require_str("subject")?;
        let count = self.req.arg_i64("count").map(|n| n.max(1) as usize);
        let wait = self
            .req
            .arg_i64("timeout")
            .map(|s| Duration::from_secs(s.max(1) as u64));
        let (mut bus, url) = self.connect().await?;
        let mut sub = bus
            .subscribe(pattern, self.req.arg_str("durable"))
            .await
            .map_err(bus_err)?;
        if !self.json() {
            self.host
                .emit(&format!("listening on {pattern} ({url}); Ctrl-C stops"))?;
        }
        let deadline = wait.map(|w| tokio::time::Instant::now() + w);
        let mut received = 0usize;
        loop {
            let next = async {
                match deadline {
                    Some(d) => tokio::time::timeout_at(d, sub.next()).await.ok(),
                    None => Some(sub.next().await),
                }
            };
            let env = tokio::select! {
                got = next => match got {
                    None => break, // --timeout reached
                    Some(r) => match r.map_err(bus_err)? {
                        Some(env) => env,
                        None => return Err(PluginError::failed(format!("the bus at {url} closed the subscription"))),
                    },
                },
                _ = tokio::signal::ctrl_c() => break,
            };
            let line = if self.json() {
                serde_json::to_string(&env).unwrap_or_default()
            } else {
                format!(
                    "[{}] {}{} <{}> {}",
                    env.subject,
                    env.from,
                    if env.foreign { " (foreign)" } else { "" },
                    env.ts,
                    env.payload
                )
            };
            self.host.emit(&line)?;
            received += 1;
            if count.is_some_and(|c| received >= c) {
                break;
            }
        }
        Ok(Output::new(json!({ "received": received })).with_text(String::new()))
    }

    fn history(&self) -> Result<Output, PluginError> {
        let pattern = self.req.arg_str("subject").unwrap_or(">");
        bus::check_subject(pattern, true).map_err(bus_err)?;
        let last = self.req.arg_i64("last").unwrap_or(20).max(1) as usize;
        let inproc = bus::inproc::InProc::open(&self.workshop()?, self.agent()).map_err(bus_err)?;
        let messages = inproc.history(pattern, last).map_err(bus_err)?;
        let mut text = format!("{} message(s) on {pattern} (newest last)", messages.len());
        for m in &messages {
            text.push_str(&format!(
                "\n#{} [{}] {} {}",
                m.seq, m.subject, m.from, m.payload
            ));
        }
        Ok(Output::new(json!({ "messages": messages })).with_text(text))
    }

    fn use_bus(&self) -> Result<Output, PluginError> {
        let url = BusUrl::parse(self.req.require_str("url")?).map_err(bus_err)?;
        self.save_bus(&url, "datum bus use")?;
        Ok(Output::new(json!({ "bus": url.to_string() }))
            .with_text(format!("this workshop now uses the bus {url}")))
    }

    /// Make `url` this workshop's bus (`.superagent/bus.toml`).
    fn save_bus(&self, url: &BusUrl, by: &str) -> Result<(), PluginError> {
        self.host
            .write_file(CONFIG, &format!("# Written by `{by}`.\nurl = \"{url}\"\n"))
    }

    /// `--name`, else AGENT-PID; a single subject token.
    fn node_id(&self) -> Result<String, PluginError> {
        let id = match self.req.arg_str("name") {
            Some(n) => n.to_owned(),
            None => format!("{}-{}", self.agent(), std::process::id()),
        };
        bus::check_subject(&id, false)
            .ok()
            .filter(|_| !id.contains('.'))
            .ok_or_else(|| {
                PluginError::invalid_args(format!(
                    "node name `{}` may only use A-Z a-z 0-9 - _",
                    id.escape_default()
                ))
            })?;
        Ok(id)
    }

    /// `node join --seed SEED`: join the fleet that SEED (one member's bus) belongs to.
    /// The seed is checked first (nothing is written when it does not answer); then it
    /// becomes this workshop's bus, the agent announces itself on `fleet.join`, and on
    /// NATS it works as a node until stopped (`--no-start`: only join).
    async fn node_join(&self) -> Result<Output, PluginError> {
        let seed = self.req.require_str("seed")?;
        let url = bus::seed_url(seed).map_err(bus_err)?;
        let id = self.node_id()?;
        let role = self.req.arg_str("role").unwrap_or("worker").to_owned();
        // Reach the seed before changing anything.
        let members = match &url {
            BusUrl::Nats(u) => {
                let client = bus::nats::connect(u, "datum-node-join")
                    .await
                    .map_err(bus_err)?;
                node::list(&client, u, Duration::from_millis(500), None)
                    .await
                    .map_err(bus_err)?
            }
            _ => Vec::new(),
        };
        let mut bus = Bus::connect(&url, &self.workshop()?, self.agent())
            .await
            .map_err(bus_err)?;
        let announcement = json!({
            "agent": self.agent(), "node": id, "role": role, "bus": url.to_string(),
        });
        bus.publish(JOIN_SUBJECT, announcement.clone())
            .await
            .map_err(bus_err)?;
        drop(bus);
        self.save_bus(&url, "datum node join")?;
        let names: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
        let mut text = format!(
            "joined the fleet on {url} as {id}: this workshop's bus is now {url}; announced on {JOIN_SUBJECT}"
        );
        if let BusUrl::Nats(_) = url {
            text.push_str(&format!(
                "\n{} node(s) already there: {}",
                names.len(),
                names.join(", ")
            ));
        }
        let start_on = match &url {
            BusUrl::Nats(u) if !self.req.arg_bool("no-start") => Some(u.clone()),
            _ => None,
        };
        let data = json!({
            "seed": seed, "bus": url.to_string(), "node": id, "role": role,
            "members": members, "announced": announcement, "started": start_on.is_some(),
        });
        let Some(nats) = start_on else {
            if let BusUrl::Tcp(_) = url {
                text.push_str(
                    "\n(the TCP bus carries messages; distributed work needs a NATS seed)",
                );
            }
            return Ok(Output::new(data).with_text(text));
        };
        self.host.emit(&text)?;
        let opts = node::NodeOptions {
            url: nats,
            id,
            agent: self.agent().to_owned(),
            role,
            delay: Duration::ZERO,
        };
        let say = |line: &str| {
            let _ = self.host.emit(line);
        };
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let report = node::run(&opts, stop, &say).await.map_err(bus_err)?;
        let mut data = data;
        data["tasks"] = json!(report.tasks);
        data["vectors"] = json!(report.vectors);
        Ok(Output::new(data).with_text(format!(
            "node {} left after {} tasks ({} vectors)",
            opts.id, report.tasks, report.vectors
        )))
    }

    async fn serve(&self) -> Result<Output, PluginError> {
        let addr = self.req.arg_str("addr").unwrap_or("127.0.0.1:7743");
        let sock: std::net::SocketAddr = addr.parse().map_err(|e| {
            PluginError::invalid_args(format!(
                "--addr `{addr}`: {e}; use HOST:PORT like 127.0.0.1:7743"
            ))
        })?;
        if !sock.ip().is_loopback() && !self.req.arg_bool("allow-remote") {
            return Err(PluginError::invalid_args(format!(
                "{addr} is reachable from other machines and the TCP bus has no authentication"
            ))
            .with_hint("bind 127.0.0.1, or pass --allow-remote on a trusted network"));
        }
        let mut config = bus::tcp::ServerConfig::default();
        if let Some(n) = self.req.arg_i64("max-connections") {
            config.max_connections = n.max(1) as usize;
        }
        config.read_timeout = self.secs("idle-timeout", config.read_timeout.as_secs())?;
        if let Some(n) = self.req.arg_i64("max-frame") {
            config.max_frame = n.max(64) as usize;
        }
        let listener = tokio::net::TcpListener::bind(sock).await.map_err(|e| {
            PluginError::failed(format!("cannot listen on {addr}: {e}"))
                .with_hint("is another bus already running there? pick another --addr")
        })?;
        let bound = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or(addr.to_owned());
        if !sock.ip().is_loopback() {
            self.host.emit(&format!(
                "warning: serving on {bound}, open to the network without authentication"
            ))?;
        }
        let bridge = !self.req.arg_bool("no-bridge");
        self.host.emit(&format!(
            "TCP bus on tcp://{bound} (max {} connections, {} s idle timeout, {} KiB frames){}; Ctrl-C stops",
            config.max_connections,
            config.read_timeout.as_secs(),
            config.max_frame / 1024,
            if bridge { ", bridged both ways to this workshop's in-process bus" } else { "" }
        ))?;
        let stats = Arc::new(bus::tcp::Stats::default());
        let served = async {
            if bridge {
                let inproc =
                    bus::inproc::InProc::open(&self.workshop()?, self.agent()).map_err(bus_err)?;
                bus::tcp::serve_bridged(listener, config, stats.clone(), inproc).await
            } else {
                bus::tcp::serve(listener, config, stats.clone()).await
            }
            .map_err(bus_err)
        };
        tokio::select! {
            served = served => served?,
            _ = tokio::signal::ctrl_c() => {}
        }
        let count = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let (c, r, p) = (
            count(&stats.connections),
            count(&stats.refused),
            count(&stats.published),
        );
        let (bridged_in, bridged_out, not_bridged) = (
            count(&stats.bridged_in),
            count(&stats.bridged_out),
            count(&stats.not_bridged),
        );
        let mut text = format!("stopped: {c} connections, {r} refused, {p} messages");
        if bridge {
            text.push_str(&format!(
                "; bridged {bridged_in} in, {bridged_out} out, {not_bridged} not bridged"
            ));
        }
        Ok(Output::new(json!({
            "connections": c, "refused": r, "published": p,
            "bridged": bridge, "bridged_in": bridged_in, "bridged_out": bridged_out, "not_bridged": not_bridged,
        }))
        .with_text(text))
    }

    async fn node_start(&self) -> Result<Output, PluginError> {
        let url = self.nats_url()?;
        let id = self.node_id()?;
        let opts = node::NodeOptions {
            url,
            id,
            agent: self.agent().to_owned(),
            role: self.req.arg_str("role").unwrap_or("worker").to_owned(),
            delay: Duration::from_millis(self.req.arg_i64("delay-ms").unwrap_or(0).max(0) as u64),
        };
        let say = |line: &str| {
            let _ = self.host.emit(line);
        };
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let report = node::run(&opts, stop, &say).await.map_err(bus_err)?;
        Ok(Output::new(
            json!({ "node": opts.id, "tasks": report.tasks, "vectors": report.vectors }),
        )
        .with_text(format!(
            "node {} stopped after {} tasks ({} vectors)",
            opts.id, report.tasks, report.vectors
        )))
    }

    async fn node_list(&self) -> Result<Output, PluginError> {
        let url = self.nats_url()?;
        let want = self.req.arg_i64("wait-for").map(|n| n.max(1) as usize);
        let default_ms = if want.is_some() { 30_000 } else { 500 };
        let wait =
            Duration::from_millis(self.req.arg_i64("wait-ms").unwrap_or(default_ms).max(1) as u64);
        let client = bus::nats::connect(&url, "datum-node-list")
            .await
            .map_err(bus_err)?;
        let nodes = node::list(&client, &url, wait, want)
            .await
            .map_err(bus_err)?;
        if let Some(n) = want.filter(|n| nodes.len() < *n) {
            return Err(PluginError::failed(format!(
                "only {} of {n} nodes answered on {url} within {} ms",
                nodes.len(),
                wait.as_millis()
            ))
            .with_hint(
                "start more with `datum node start --nats URL`, or wait longer with --wait-ms",
            ));
        }
        let mut text = format!("{} node(s) on {url}", nodes.len());
        let now = bus::now_ms();
        for n in &nodes {
            text.push_str(&format!(
                "\n  {:<24} {:<12} {:<10} up {:>6} s, {} vectors run",
                n.id,
                n.agent,
                n.role,
                now.saturating_sub(n.started) / 1000,
                n.processed
            ));
        }
        Ok(Output::new(json!({ "nats": url, "nodes": nodes })).with_text(text))
    }

    /// A JSON argument: an array from a plugin call, or JSON text from the command line.
    fn json_arg(&self, name: &str) -> Result<Option<Value>, PluginError> {
        match self.req.arg(name) {
            None => Ok(None),
            Some(Value::String(text)) => serde_json::from_str(text)
                .map(Some)
                .map_err(|e| PluginError::invalid_args(format!("--{name} is not JSON: {e}"))),
            Some(v) => Ok(Some(v.clone())),
        }
    }

    /// `datum distribute batch`: every program × every stack on the fleet's work queue;
    /// the runs in order (program-major), as `flux batch` gives them on a GPU. This is
    /// what `datum evolve --nodes` sends each generation.
    async fn distribute_batch(&self) -> Result<Output, PluginError> {
        let programs: Vec<String> = match self.json_arg("programs")? {
            Some(v) => serde_json::from_value(v).map_err(|_| {
                PluginError::invalid_args("--programs must be a JSON array of hex strings")
            })?,
            None => {
                return Err(PluginError::invalid_args(
                    "--programs is required: a JSON array of hex strings",
                ))
            }
        };
        for (i, p) in programs.iter().enumerate() {
            flux_core::hex::decode(p)
                .map_err(|e| PluginError::invalid_args(format!("program {i}: {e}")))?;
        }
        let stacks: Vec<Vec<i32>> = match self.json_arg("stacks")? {
            Some(v) => serde_json::from_value(v).map_err(|_| {
                PluginError::invalid_args(
                    "--stacks must be a JSON array of arrays of 32-bit integers",
                )
            })?,
            None => vec![Vec::new()],
        };
        if programs.is_empty() || stacks.is_empty() {
            return Ok(
                Output::new(json!({ "results": [], "nodes": [], "tasks": 0 }))
                    .with_text("nothing to run".to_owned()),
            );
        }
        let want_nodes = self.req.arg_i64("nodes").map(|n| n.max(1) as usize);
        let max_steps = self.req.arg_i64("max-steps").unwrap_or(1_000_000).max(1) as u64;
        if max_steps > work::MAX_STEPS {
            return Err(PluginError::invalid_args(format!(
                "--max-steps {max_steps} is over the {} nodes accept from the wire",
                work::MAX_STEPS
            )));
        }
        let opts = distribute::Options {
            url: self.nats_url()?,
            strategy: distribute::Strategy::Queue,
            chunk: self.req.arg_i64("chunk").unwrap_or(50).max(1) as usize,
            max_steps,
            timeout: self.secs("timeout", 120)?,
            ack_wait: self.secs("ack-wait", 10)?,
            discover: Duration::from_millis(if want_nodes.is_some() { 30_000 } else { 500 }),
            want_nodes,
        };
        let job = format!("{}-{}-{}", self.agent(), std::process::id(), bus::now_ms());
        let report = distribute::batch(&programs, &stacks, &opts, &job)
            .await
            .map_err(bus_err)?;
        let text = format!(
            "{} runs ({} programs × {} stacks) in {} tasks over {} node(s) in {} ms",
            report.results.len(),
            programs.len(),
            stacks.len(),
            report.tasks,
            report.nodes.len(),
            report.wall_ms
        );
        let data = serde_json::to_value(&report).unwrap_or(Value::Null);
        Ok(Output::new(data).with_text(text))
    }

    async fn distribute(&self) -> Result<Output, PluginError> {
        let problem = self.req.arg_str("problem").unwrap_or("conformance");
        if problem != "conformance" {
            return Err(PluginError::invalid_args(format!(
                "unknown problem `{}`; this datum distributes: conformance",
                problem.escape_default()
            )));
        }
        let strategy = match self.req.arg_str("strategy").unwrap_or("queue") {
            "queue" => distribute::Strategy::Queue,
            "round-robin" => distribute::Strategy::RoundRobin,
            other => {
                return Err(PluginError::invalid_args(format!(
                    "unknown strategy `{}`; use queue or round-robin",
                    other.escape_default()
                )))
            }
        };
        let files = self.vector_files()?;
        let items = work::items_of(&files).map_err(PluginError::invalid_args)?;
        let want_nodes = self.req.arg_i64("nodes").map(|n| n.max(1) as usize);
        let opts = distribute::Options {
            url: self.nats_url()?,
            strategy,
            chunk: self.req.arg_i64("chunk").unwrap_or(16).max(1) as usize,
            max_steps: {
                let steps = self.req.arg_i64("max-steps").unwrap_or(1_000_000).max(1) as u64;
                if steps > work::MAX_STEPS {
                    return Err(PluginError::invalid_args(format!(
                        "--max-steps {steps} is over the {} nodes accept from the wire",
                        work::MAX_STEPS
                    ))
                    .with_hint("run such long vectors locally with `datum flux conformance`"));
                }
                steps
            },
            timeout: self.secs("timeout", 120)?,
            ack_wait: self.secs("ack-wait", 10)?,
            discover: Duration::from_millis(if want_nodes.is_some() { 30_000 } else { 500 }),
            want_nodes,
        };
        let job = format!("{}-{}-{}", self.agent(), std::process::id(), bus::now_ms());
        let report = distribute::run(items, &opts, &job).await.map_err(bus_err)?;
        let verdict = if report.agree == report.total {
            "AGREE"
        } else {
            "DISAGREE"
        };
        let mut text = format!(
            "{verdict} {}/{} — {} vectors in {} tasks over {} node(s) ({}) in {} ms; passed {} (locally {})",
            report.agree,
            report.total,
            report.total,
            report.tasks,
            report.nodes.len(),
            strategy.name(),
            report.wall_ms,
            report.passed,
            report.passed_locally
        );
        for (node, n) in &report.by_node {
            text.push_str(&format!("\n  {node:<24} {n:>5} vectors"));
        }
        if report.duplicates > 0 || report.reassigned > 0 {
            text.push_str(&format!(
                "\n  {} duplicate results ignored (redelivered tasks), {} tasks reassigned",
                report.duplicates, report.reassigned
            ));
        }
        let data = serde_json::to_value(&report).unwrap_or(Value::Null);
        if report.agree != report.total {
            // The error is all a failed command prints, so it names the vectors itself.
            let names: Vec<&str> = report
                .disagreements
                .iter()
                .take(5)
                .map(|d| d["name"].as_str().unwrap_or("?"))
                .collect();
            return Err(PluginError::failed(format!(
                "{} of {} distributed verdicts differ from a local run (first: {}); nodes answered: {}",
                report.total - report.agree,
                report.total,
                names.join(", "),
                report.nodes.join(", ")
            ))
            .with_hint("a node computes FLUX differently from this datum: compare their versions (`datum node list`), then rerun `datum distribute`"));
        }
        Ok(Output::new(data).with_text(text))
    }

    /// `--vectors FILE…`, or the project's own vectors.
    fn vector_files(&self) -> Result<Vec<flux_core::conformance::VectorFile>, PluginError> {
        let given = self.req.arg_files("vectors")?;
        if given.is_empty() {
            return flux_core::conformance::PROJECT_VECTORS
                .iter()
                .map(|(name, text)| {
                    flux_core::conformance::VectorFile::parse(text)
                        .map_err(|e| PluginError::failed(format!("bundled {name}: {e}")))
                })
                .collect();
        }
        given
            .iter()
            .map(|f| {
                if !f.exists {
                    return Err(PluginError::invalid_args(format!(
                        "{}: no such file",
                        f.path
                    )));
                }
                let text = String::from_utf8_lossy(&f.bytes);
                flux_core::conformance::VectorFile::parse(&text)
                    .map_err(|e| PluginError::invalid_args(format!("{}: {e}", f.path)))
            })
            .collect()
    }
}
