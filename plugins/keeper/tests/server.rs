//! The Keeper's HTTP API on a real loopback socket, with real vault and audit files.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use datum_plugin_keeper::agents::hash_token;
use datum_plugin_keeper::{bind, AgentRegistry, Keeper, Options, ServeError, COMPAT_TTL};
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
    start_with(false)
}

/// A Keeper whose policy lives in `policy.json` (re-read on change), serving the
/// prototype's endpoints too when `compat`.
fn start_with(compat: bool) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = Vault::create(
        &dir.path().join("vault.json"),
        b"pw",
        Kdf { iterations: 1_000 },
    )
    .unwrap();
    vault.put("github-token", SECRET.as_bytes()).unwrap();
    vault.put("db/main", b"pg://internal").unwrap();
    let policy_text = r#"{"blocked_destinations": ["*.evil.example", "*pastebin*"],
            "grants": [{"agent": "ada", "keys": ["github-token", "db/*", "missing"], "destinations": ["api.github.com"]}]}"#;
    let policy_file = dir.path().join("policy.json");
    std::fs::write(&policy_file, policy_text).unwrap();
    let policy = Policy::load(&policy_file).unwrap();
    let agents = AgentRegistry::load(&dir.path().join("agents.json")).unwrap();
    let audit = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
    let options = Options {
        compat,
        policy_file: Some(policy_file),
    };
    let keeper = Keeper::with_options(vault, policy, agents, audit, hash_token(ADMIN), options);
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

    /// The token of agent `name`, registered with the admin token (any name).
    fn token(&self, name: &str) -> String {
        self.token_as(name, Some(ADMIN))
    }

    /// The token of agent `name`, registered with `auth` (`None`: by itself, which
    /// works for a name no grant mentions).
    fn token_as(&self, name: &str, auth: Option<&str>) -> String {
        let (status, body) = self.register(name, auth);
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    fn policy_file(&self) -> std::path::PathBuf {
        self._dir.path().join("policy.json")
    }

    fn audit_len(&self) -> usize {
        self.call("GET", "/v1/admin/audit", Some(ADMIN), None).1["entries"]
            .as_array()
            .unwrap()
            .len()
    }

    fn register(&self, name: &str, token: Option<&str>) -> (u16, Value) {
        self.call("POST", "/v1/agents", token, Some(json!({ "name": name })))
    }

    fn keeper_put(&self, key: &str, value: &str) {
        let path = format!("/v1/admin/secrets/{key}");
        assert_eq!(
            self.call("PUT", &path, Some(ADMIN), Some(json!({ "value": value })))
                .0,
            200
        );
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
    let other = k.token_as("bob", None);

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

/// One request, as `/v1` and the prototype's `/api/request` each spell it.
struct Case {
    what: &'static str,
    token: Option<String>,
    /// The agent the compat body names (the token's own unless a case says otherwise).
    agent: &'static str,
    key: &'static str,
    purpose: &'static str,
    destination: Option<&'static str>,
}

impl Case {
    fn v1(&self, k: &Running) -> (u16, Value) {
        let mut body = json!({"key": self.key, "purpose": self.purpose});
        if let Some(d) = self.destination {
            body["destination"] = d.into();
        }
        k.call(
            "POST",
            "/v1/secrets/request",
            self.token.as_deref(),
            Some(body),
        )
    }

    fn compat(&self, k: &Running) -> (u16, Value) {
        let mut body = json!({"agent": self.agent, "key": self.key, "purpose": self.purpose});
        if let Some(d) = self.destination {
            body["destination"] = d.into();
        }
        k.call("POST", "/api/request", self.token.as_deref(), Some(body))
    }
}

#[test]
fn the_compat_endpoint_refuses_exactly_what_v1_refuses_and_audits_it_the_same() {
    let k = start_with(true);
    let ada = k.token("ada");
    let bob = k.token_as("bob", None);
    let case = |what, token: Option<&str>, key, destination| Case {
        what,
        token: token.map(str::to_owned),
        agent: "ada",
        key,
        purpose: "deploy",
        destination,
    };
    let mut cases = vec![
        case(
            "granted",
            Some(&ada),
            "github-token",
            Some("api.github.com"),
        ),
        case(
            "granted, common destination",
            Some(&ada),
            "db/main",
            Some("127.0.0.1"),
        ),
        case("no token", None, "github-token", Some("localhost")),
        case(
            "unknown token",
            Some("forged"),
            "github-token",
            Some("localhost"),
        ),
        case(
            "agent without grants",
            Some(&bob),
            "github-token",
            Some("localhost"),
        ),
        case("key not granted", Some(&ada), "aws-key", Some("localhost")),
        case(
            "destination not allowed",
            Some(&ada),
            "github-token",
            Some("example.org"),
        ),
        case(
            "blocked destination",
            Some(&ada),
            "github-token",
            Some("x.evil.example"),
        ),
        case(
            "paste site",
            Some(&ada),
            "github-token",
            Some("https://pastebin.com/api"),
        ),
        case(
            "no destination (the prototype sent none)",
            Some(&ada),
            "github-token",
            None,
        ),
        case(
            "granted, but no such secret",
            Some(&ada),
            "missing",
            Some("localhost"),
        ),
    ];
    cases[4].agent = "bob";
    cases.push(Case {
        purpose: " ",
        ..case("no purpose", Some(&ada), "github-token", Some("localhost"))
    });

    for c in &cases {
        let before = k.audit_len();
        let (v1_status, v1) = c.v1(&k);
        let after_v1 = k.audit_len();
        let (compat_status, compat) = c.compat(&k);
        let after_compat = k.audit_len();
        assert_eq!(v1_status, compat_status, "{}: {v1} vs {compat}", c.what);
        assert_eq!(
            (after_v1 - before, after_compat - after_v1),
            (1, 1),
            "{}: each request is one audit line",
            c.what
        );
        if v1_status == 200 {
            assert_eq!(compat["approved"], true, "{}", c.what);
            assert_eq!(compat["value"], v1["value"], "{}", c.what);
            assert_eq!(compat["ttl"], COMPAT_TTL, "{}: a grant with no end", c.what);
        } else {
            assert_eq!(
                (&compat["approved"], &compat["value"], &compat["ttl"]),
                (&json!(false), &Value::Null, &json!(0)),
                "{}",
                c.what
            );
            assert_eq!(
                compat["reason"], v1["error"]["message"],
                "{}: the same reason",
                c.what
            );
            for body in [&v1, &compat] {
                assert!(!body.to_string().contains(SECRET), "{}: {body}", c.what);
            }
        }
    }
    // The two granted cases and nothing else, on each path.
    let entries = k.call("GET", "/v1/admin/audit", Some(ADMIN), None).1["entries"].clone();
    let granted = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["decision"] == "granted")
        .count();
    assert_eq!(granted, 4);
}

#[test]
fn a_compat_request_naming_another_agent_is_refused_and_audited() {
    let k = start_with(true);
    let _ada = k.token("ada");
    let bob = k.token_as("bob", None);
    let before = k.audit_len();
    // bob's token, ada's name: ada's grants must not be borrowed.
    let (status, body) = Case {
        what: "borrowed name",
        token: Some(bob),
        agent: "ada",
        key: "github-token",
        purpose: "deploy",
        destination: Some("localhost"),
    }
    .compat(&k);
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["approved"], false);
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("belongs to `bob`"),
        "{body}"
    );
    let entries = k.call("GET", "/v1/admin/audit", Some(ADMIN), None).1["entries"].clone();
    let last = entries.as_array().unwrap().last().unwrap().clone();
    assert_eq!(k.audit_len(), before + 1);
    assert_eq!(
        (last["agent"].as_str(), last["decision"].as_str()),
        (Some("bob"), Some("refused"))
    );
}

#[test]
fn compat_endpoints_are_off_unless_asked_and_health_answers_when_on() {
    let off = start();
    assert_eq!(off.call("GET", "/api/health", None, None).0, 404);
    let ada = off.token("ada");
    let body =
        json!({"agent": "ada", "key": "github-token", "purpose": "p", "destination": "localhost"});
    assert_eq!(
        off.call("POST", "/api/request", Some(&ada), Some(body)).0,
        404
    );

    let on = start_with(true);
    let (status, health) = on.call("GET", "/api/health", None, None);
    assert_eq!(
        (status, health["status"].as_str()),
        (200, Some("ok")),
        "{health}"
    );
    assert_eq!(on.call("GET", "/v1/health", None, None).0, 200, "/v1 stays");
}

#[test]
fn a_ttl_never_outlives_the_grant() {
    let k = start_with(true);
    let ada = k.token("ada");
    let soon = keeper_core::now_secs() + 60;
    keeper_core::Policy::edit(&k.policy_file(), |p| {
        p.grant("ada", "db/*", &[], Some(soon));
        p.grants[0].keys.retain(|key| key != "db/*");
    })
    .unwrap();
    let body =
        json!({"agent": "ada", "key": "db/main", "purpose": "p", "destination": "localhost"});
    let (status, answer) = k.call("POST", "/api/request", Some(&ada), Some(body));
    assert_eq!(status, 200, "{answer}");
    let ttl = answer["ttl"].as_u64().unwrap();
    assert!((55..=60).contains(&ttl), "{answer}");
}

#[test]
fn policy_changes_reach_a_running_server_and_a_broken_policy_refuses_everything() {
    let k = start();
    let ada = k.token("ada");
    assert_eq!(k.ask(Some(&ada), "aws-key", "localhost").0, 403);

    keeper_core::Policy::edit(&k.policy_file(), |p| p.grant("ada", "aws-key", &[], None)).unwrap();
    k.keeper_put("aws-key", "AKIA-test");
    assert_eq!(
        k.ask(Some(&ada), "aws-key", "localhost").0,
        200,
        "granted without a restart"
    );

    keeper_core::Policy::edit(&k.policy_file(), |p| p.revoke("ada", "github-token", None)).unwrap();
    assert_eq!(
        k.ask(Some(&ada), "github-token", "localhost").0,
        403,
        "revoked without a restart"
    );

    // A half-typed hand edit: refuse all (audited), never fall back to the old grants.
    std::fs::write(k.policy_file(), r#"{"grants": [ {"agent": "ada", "#).unwrap();
    let before = k.audit_len();
    let (status, body) = k.ask(Some(&ada), "aws-key", "localhost");
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("policy file is invalid"),
        "{body}"
    );
    assert_eq!(k.audit_len(), before + 1);
    assert_eq!(
        k.ask(None, "aws-key", "localhost").0,
        401,
        "the unauthenticated stay unauthenticated"
    );

    std::fs::write(
        k.policy_file(),
        r#"{"grants": [{"agent": "ada", "keys": ["aws-key"]}]}"#,
    )
    .unwrap();
    assert_eq!(k.ask(Some(&ada), "aws-key", "localhost").0, 200, "mended");
}
