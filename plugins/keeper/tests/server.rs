//! The Keeper's HTTP API on a real loopback socket, with real vault and audit files.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use datum_plugin_keeper::agents::hash_token;
use datum_plugin_keeper::{bind, AgentRegistry, Keeper, ServeError};
use keeper_core::{AuditLog, Kdf, Policy, Vault};
use serde_json::{json, Value};

const SECRET: &str = "ghp_s3cr3t-value";
const ADMIN: &str = "admin-token-for-tests";

struct Running {
    base: String,
    http: ureq::Agent,
    keeper: Arc<Keeper>,
    _dir: tempfile::TempDir,
}

fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = Vault::create(
        &dir.path().join("vault.json"),
        b"pw",
        Kdf { iterations: 1_000 },
    )
    .unwrap();
    vault.put("github-token", SECRET.as_bytes()).unwrap();
    vault.put("db/main", b"pg://internal").unwrap();
    let policy = Policy::parse(
        r#"{"blocked_destinations": ["*.evil.example"],
            "grants": [{"agent": "ada", "keys": ["github-token", "db/*", "missing"], "destinations": ["api.github.com"]}]}"#,
    )
    .unwrap();
    let agents = AgentRegistry::load(&dir.path().join("agents.json")).unwrap();
    let audit = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
    let keeper = Keeper::new(vault, policy, agents, audit, hash_token(ADMIN));
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
    let http: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into();
    Running {
        base,
        http,
        keeper,
        _dir: dir,
    }
}

impl Running {
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut response = match (method, body) {
            ("GET", _) => {
                let mut r = self.http.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call().unwrap()
            }
            ("DELETE", _) => {
                let mut r = self.http.delete(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call().unwrap()
            }
            (m, body) => {
                let mut r = if m == "PUT" {
                    self.http.put(&url)
                } else {
                    self.http.post(&url)
                };
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.send_json(body.unwrap_or(json!({}))).unwrap()
            }
        };
        let status = response.status().as_u16();
        let value = response
            .body_mut()
            .read_json::<Value>()
            .unwrap_or(Value::Null);
        (status, value)
    }

    fn register(&self, name: &str, token: Option<&str>) -> (u16, Value) {
        self.call("POST", "/v1/agents", token, Some(json!({ "name": name })))
    }

    fn ask(&self, token: Option<&str>, key: &str, destination: &str) -> (u16, Value) {
        self.call(
            "POST",
            "/v1/secrets/request",
            token,
            Some(json!({"key": key, "purpose": "test", "destination": destination})),
        )
    }
}

#[test]
fn health_and_registration() {
    let k = start();
    let (status, body) = k.call("GET", "/v1/health", None, None);
    assert_eq!((status, body["ok"].clone()), (200, json!(true)));
    // The policy grants `ada`: a stranger cannot claim the name, the admin can.
    let (status, body) = k.register("ada", None);
    assert_eq!(status, 403, "{body}");
    let (status, body) = k.register("ada", Some(ADMIN));
    assert_eq!(status, 200);
    let first = body["token"].as_str().unwrap().to_owned();
    // The name is taken: only its own token or the admin may register it again.
    assert_eq!(k.register("ada", None).0, 409);
    assert_eq!(k.register("ada", Some("not-a-token")).0, 409);
    let (status, body) = k.register("ada", Some(&first));
    assert_eq!(status, 200);
    let second = body["token"].as_str().unwrap().to_owned();
    assert_eq!(
        k.ask(Some(&first), "github-token", "localhost").0,
        401,
        "the old token is retired"
    );
    assert_eq!(k.ask(Some(&second), "github-token", "localhost").0, 200);
    assert_eq!(k.register("ada", Some(ADMIN)).0, 200);
    assert_eq!(k.register("Bad Name", None).0, 400);
    // A name no grant mentions is open to anyone, once.
    assert_eq!(k.register("visitor", None).0, 200);
    assert_eq!(k.register("visitor", None).0, 409);
}

#[test]
fn grants_return_the_value_and_everything_else_is_refused_without_it() {
    let k = start();
    let token = k.register("ada", Some(ADMIN)).1["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = k.register("bob", None).1["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, body) = k.ask(Some(&token), "github-token", "127.0.0.1");
    assert_eq!((status, body["value"].as_str()), (200, Some(SECRET)));
    assert_eq!(k.ask(Some(&token), "github-token", "api.github.com").0, 200);

    let refusals = [
        (k.ask(None, "github-token", "localhost"), 401),
        (k.ask(Some("wrong-token"), "github-token", "localhost"), 401),
        (k.ask(Some(&other), "github-token", "localhost"), 403),
        (k.ask(Some(&token), "github-token", "x.evil.example"), 403),
        (k.ask(Some(&token), "github-token", "example.org"), 403),
        (k.ask(Some(&token), "aws-key", "localhost"), 403),
        (k.ask(Some(&token), "missing", "localhost"), 404),
        (
            k.call(
                "POST",
                "/v1/secrets/request",
                Some(&token),
                Some(json!({"key": "github-token", "destination": "localhost"})),
            ),
            403,
        ),
    ];
    for ((status, body), expected) in refusals {
        assert_eq!(status, expected, "{body}");
        assert_eq!(body["ok"], false);
        assert!(
            !body.to_string().contains(SECRET),
            "a refusal leaked the value: {body}"
        );
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }

    // Every decision is in the audit log, with its reason.
    let (status, audit) = k.call("GET", "/v1/admin/audit", Some(ADMIN), None);
    assert_eq!(status, 200);
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 10);
    assert_eq!(
        entries
            .iter()
            .filter(|e| e["decision"] == "granted")
            .count(),
        2
    );
    assert!(entries.iter().any(|e| e["agent"] == "(unauthenticated)"));
    assert!(entries
        .iter()
        .any(|e| e["reason"].as_str().unwrap().contains("blocked")));
    assert!(
        !audit.to_string().contains(SECRET),
        "the audit log never holds values"
    );
}

#[test]
fn admin_endpoints_need_the_admin_token() {
    let k = start();
    let agent = k.register("ada", Some(ADMIN)).1["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for token in [None, Some(agent.as_str())] {
        assert_eq!(k.call("GET", "/v1/admin/secrets", token, None).0, 401);
        assert_eq!(
            k.call(
                "PUT",
                "/v1/admin/secrets/x",
                token,
                Some(json!({"value": "v"}))
            )
            .0,
            401
        );
        assert_eq!(k.call("GET", "/v1/admin/audit", token, None).0, 401);
    }
    assert_eq!(
        k.call(
            "PUT",
            "/v1/admin/secrets/db%2Freplica",
            Some(ADMIN),
            Some(json!({"value": "pg://r"}))
        )
        .0,
        200
    );
    let (_, list) = k.call("GET", "/v1/admin/secrets", Some(ADMIN), None);
    assert_eq!(
        list["secrets"],
        json!(["db/main", "db/replica", "github-token"])
    );
    assert_eq!(
        k.ask(Some(&agent), "db/replica", "localhost").1["value"],
        "pg://r"
    );
    assert_eq!(
        k.call(
            "DELETE",
            "/v1/admin/secrets/db%2Freplica",
            Some(ADMIN),
            None
        )
        .0,
        200
    );
    assert_eq!(
        k.call(
            "DELETE",
            "/v1/admin/secrets/db%2Freplica",
            Some(ADMIN),
            None
        )
        .0,
        404
    );
    assert_eq!(
        k.call("GET", "/v1/admin/agents", Some(ADMIN), None).1["agents"],
        json!(["ada"])
    );
}

#[test]
fn many_concurrent_clients_all_get_the_right_answer() {
    let k = Arc::new(start());
    let token = k.register("ada", Some(ADMIN)).1["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let clients = 8;
    let each = 100;
    let started = std::time::Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let k = k.clone();
            let token = token.clone();
            std::thread::spawn(move || {
                for i in 0..each {
                    if (c + i) % 3 == 0 {
                        let (status, body) = k.ask(Some(&token), "github-token", "x.evil.example");
                        assert_eq!(status, 403);
                        assert!(body.get("value").is_none());
                    } else {
                        let (status, body) = k.ask(Some(&token), "db/main", "localhost");
                        assert_eq!(
                            (status, body["value"].as_str()),
                            (200, Some("pg://internal"))
                        );
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let total = clients * each;
    eprintln!(
        "{total} requests from {clients} clients in {:?} ({:.0}/s)",
        started.elapsed(),
        total as f64 / started.elapsed().as_secs_f64()
    );
    let entries = k.keeper.clone();
    let (_, audit) = k.call("GET", "/v1/admin/audit", Some(ADMIN), None);
    assert_eq!(
        audit["entries"].as_array().unwrap().len(),
        total,
        "one audit entry per request"
    );
    drop(entries);
}

#[test]
fn only_loopback_unless_asked() {
    assert!(matches!(
        bind("0.0.0.0:0", false),
        Err(ServeError::NotLoopback(_))
    ));
    assert!(matches!(
        bind("nonsense", false),
        Err(ServeError::BadAddress(_))
    ));
    assert!(bind("127.0.0.1:0", false).is_ok());
}
