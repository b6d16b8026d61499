//! `cargo bench -p datum-plugin-keeper`: secret requests per second after unlock, over
//! HTTP with several concurrent clients and in process, each decided by policy and
//! audited (synced) before answering. Baseline in the same run: a bare vault read.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Instant;

use datum_plugin_keeper::agents::hash_token;
use datum_plugin_keeper::server::SecretRequest;
use datum_plugin_keeper::{bind, AgentRegistry, Keeper, Options};
use keeper_core::{AuditLog, Kdf, Policy, Vault};
use serde_json::json;

const CLIENTS: usize = 8;
const EACH: usize = 500;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = Vault::create(
        &dir.path().join("vault.json"),
        b"pw",
        Kdf { iterations: 1_000 },
    )
    .unwrap();
    vault.put("db/main", b"pg://internal").unwrap();
    let bare_vault = Vault::open(&dir.path().join("vault.json"))
        .unwrap()
        .unlock(b"pw", 1_000)
        .unwrap();
    let policy_text = r#"{"grants": [{"agent": "ada", "keys": ["db/*"]}]}"#;
    let policy_file = dir.path().join("policy.json");
    std::fs::write(&policy_file, policy_text).unwrap();
    let policy = Policy::parse(policy_text).unwrap();
    let mut agents = AgentRegistry::load(&dir.path().join("agents.json")).unwrap();
    let token = agents.register("ada", true, true, None).unwrap().0;
    // As `keeper serve --compat` runs: both APIs, the policy file watched.
    let keeper = Keeper::with_options(
        vault,
        policy.clone(),
        agents,
        AuditLog::open(&dir.path().join("audit.jsonl")).unwrap(),
        hash_token("admin"),
        Options {
            compat: true,
            policy_file: Some(policy_file),
        },
    );
    // The same with a fixed policy: the baseline for the cost of watching the file.
    let fixed = Keeper::new(
        Vault::open(&dir.path().join("vault.json"))
            .unwrap()
            .unlock(b"pw", 1_000)
            .unwrap(),
        policy,
        AgentRegistry::load(&dir.path().join("agents.json")).unwrap(),
        AuditLog::open(&dir.path().join("audit-fixed.jsonl")).unwrap(),
        hash_token("admin"),
    );

    let listener = bind("127.0.0.1:0", false).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = keeper.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(server.serve(listener)).unwrap();
    });
    let http: ureq::Agent = ureq::Agent::config_builder().build().into();
    while http.get(&format!("{base}/v1/health")).call().is_err() {}

    let run = |f: Arc<dyn Fn() + Send + Sync>| {
        let t = Instant::now();
        let handles: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let f = f.clone();
                std::thread::spawn(move || (0..EACH).for_each(|_| f()))
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        (CLIENTS * EACH) as f64 / t.elapsed().as_secs_f64()
    };
    let url = format!("{base}/v1/secrets/request");
    let bearer = format!("Bearer {token}");
    let (compat_url, compat_bearer, compat_http) =
        (format!("{base}/api/request"), bearer.clone(), http.clone());
    let over_compat = run(Arc::new(move || {
        let mut r = compat_http
            .post(&compat_url)
            .header("Authorization", &compat_bearer)
            .send_json(json!({"agent": "ada", "key": "db/main", "purpose": "bench", "destination": "localhost"}))
            .unwrap();
        assert_eq!(
            r.body_mut().read_json::<serde_json::Value>().unwrap()["value"],
            "pg://internal"
        );
    }));
    let over_http = run(Arc::new(move || {
        let mut r = http
            .post(&url)
            .header("Authorization", &bearer)
            .send_json(json!({"key": "db/main", "purpose": "bench", "destination": "localhost"}))
            .unwrap();
        assert_eq!(
            r.body_mut().read_json::<serde_json::Value>().unwrap()["value"],
            "pg://internal"
        );
    }));
    let k = keeper.clone();
    let t2 = token.clone();
    let in_process = run(Arc::new(move || {
        let ask = SecretRequest {
            key: "db/main".into(),
            purpose: "bench".into(),
            destination: "localhost".into(),
        };
        assert_eq!(
            k.request_secret(Some(&t2), &ask).unwrap().value,
            b"pg://internal"
        );
    }));
    let t3 = token.clone();
    let fixed_policy = run(Arc::new(move || {
        let ask = SecretRequest {
            key: "db/main".into(),
            purpose: "bench".into(),
            destination: "localhost".into(),
        };
        assert_eq!(
            fixed.request_secret(Some(&t3), &ask).unwrap().value,
            b"pg://internal"
        );
    }));
    // Many waiting requests make bigger groups: the same in-process path, 32 clients.
    let k32 = keeper.clone();
    let t32 = token.clone();
    let many_clients = {
        let t = Instant::now();
        let handles: Vec<_> = (0..32)
            .map(|_| {
                let (k, tok) = (k32.clone(), t32.clone());
                std::thread::spawn(move || {
                    for _ in 0..EACH {
                        let ask = SecretRequest {
                            key: "db/main".into(),
                            purpose: "bench".into(),
                            destination: "localhost".into(),
                        };
                        assert!(k.request_secret(Some(&tok), &ask).is_ok());
                    }
                })
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        (32 * EACH) as f64 / t.elapsed().as_secs_f64()
    };
    // Baseline: what one fsync per request allows — a bare append + fsync per line.
    let one_sync_each = {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("bare.jsonl"))
            .unwrap();
        let line = [b'x'; 200];
        let t = Instant::now();
        for _ in 0..2000 {
            f.write_all(&line).unwrap();
            f.sync_data().unwrap();
        }
        2000.0 / t.elapsed().as_secs_f64()
    };
    let bare = Arc::new(bare_vault);
    let b = bare.clone();
    let bare_reads = run(Arc::new(move || {
        assert!(b.get("db/main").unwrap().is_some());
    }));
    println!("secret requests, {CLIENTS} concurrent clients x {EACH}:");
    println!("  over HTTP (policy + synced audit)   {over_http:>10.0}/s");
    println!(
        "  compat /api/request over HTTP       {over_compat:>10.0}/s   compat/v1 {:.2}x",
        over_compat / over_http
    );
    println!(
        "  in process (policy + synced audit)  {in_process:>10.0}/s   HTTP/in-process {:.2}x",
        over_http / in_process
    );
    println!(
        "  in process, policy never re-read    {fixed_policy:>10.0}/s   watched/fixed {:.2}x",
        in_process / fixed_policy
    );
    println!(
        "  in process, 32 clients              {many_clients:>10.0}/s   vs one fsync each {:.2}x",
        many_clients / one_sync_each
    );
    println!(
        "  baseline: one append + fsync each   {one_sync_each:>10.0}/s   8 clients/one-each {:.2}x",
        in_process / one_sync_each
    );
    println!(
        "  baseline: bare vault reads          {bare_reads:>10.0}/s   in-process/bare {:.4}x",
        in_process / bare_reads
    );
}
