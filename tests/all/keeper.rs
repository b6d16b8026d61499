//! The Keeper through the real binary: install, init, secrets in and out without argv,
//! and a served Keeper answering an agent over loopback.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::time::{Duration, Instant};

use datum_test_support::{
    bundled_registry, fixture_registry, free_port, git_clean, s, Keeper, Sandbox,
};
use serde_json::{json, Value};

/// The stress fixture, whose `secret` command asks the host for a Keeper secret.
fn install_stress(sb: &Sandbox, ws: &Path) {
    let registry = fixture_registry();
    sb.datum_in(
        ws,
        &[
            "plugin",
            "install",
            "stress@=1.0.0",
            "--registry",
            s(&registry),
        ],
    )
    .success();
}

fn keeper_workshop(sb: &Sandbox) -> std::path::PathBuf {
    let ws = sb.empty_workshop("keep");
    let install = |extra: &[&str]| {
        let registry = bundled_registry();
        let mut args = vec!["plugin", "install", "keeper", "--registry", s(&registry)];
        args.extend_from_slice(extra);
        sb.datum_in(&ws, &args)
    };
    // The WASM tier has no keeper build: asking for it names the fix...
    let r = install(&["--kind", "wasm"]).failure();
    assert!(r.stderr().contains("--kind native"), "{}", r.stderr());
    // ...and naming no kind installs the only build there is (the bundled registry is trusted).
    let r = install(&["--format", "json"]).success();
    assert_eq!(r.json()["installed"][0]["kind"], "native", "{}", r.stdout());
    ws
}

#[test]
fn secrets_go_in_and_out_without_touching_argv() {
    let sb = Sandbox::new();
    let ws = keeper_workshop(&sb);
    let home = sb.path("keeper-home");
    let pw = sb.path("pw");
    std::fs::write(&pw, "correct horse battery\n").unwrap();
    let init = sb
        .datum_in(
            &ws,
            &[
                "keeper",
                "init",
                "--home",
                s(&home),
                "--password-file",
                s(&pw),
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    assert_eq!(init["admin_token"].as_str().unwrap().len(), 64);
    // Piped stdin: the password line, then the value line.
    sb.datum_stdin(
        &ws,
        &["keeper", "add-secret", "github-token", "--home", s(&home)],
        "correct horse battery\nghp_piped\n",
    )
    .success();
    let list = sb
        .datum_in(
            &ws,
            &["keeper", "list", "--home", s(&home), "--format", "json"],
        )
        .success()
        .json();
    assert_eq!(list["secrets"], json!(["github-token"]));
    let wrong = sb
        .datum_stdin(
            &ws,
            &["keeper", "remove", "github-token", "--home", s(&home)],
            "not the password\n",
        )
        .failure();
    assert!(
        wrong.stderr().contains("wrong master password"),
        "{}",
        wrong.stderr()
    );
    let vault = std::fs::read_to_string(home.join("vault.json")).unwrap();
    assert!(!vault.contains("ghp_piped"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(home.join("vault.json"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    assert!(
        !home.starts_with(&ws),
        "the vault lives outside the workshop"
    );
}

#[test]
fn a_served_keeper_answers_an_agent_and_audits() {
    let sb = Sandbox::new();
    let keeper = serve_keeper(&sb);
    let http: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let base = keeper.url();
    // The policy grants `ada`, so registering that name takes the admin token.
    let mut reg = http
        .post(&format!("{base}/v1/agents"))
        .header("Authorization", &format!("Bearer {}", keeper.admin))
        .send_json(json!({"name": "ada"}))
        .unwrap();
    let token = reg.body_mut().read_json::<Value>().unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let ask = |key: &str| {
        let mut r = http
            .post(&format!("{base}/v1/secrets/request"))
            .header("Authorization", &format!("Bearer {token}"))
            .send_json(json!({"key": key, "purpose": "migrate", "destination": "localhost"}))
            .unwrap();
        (
            r.status().as_u16(),
            r.body_mut().read_json::<Value>().unwrap(),
        )
    };
    assert_eq!(
        ask("db/main"),
        (
            200,
            json!({"ok": true, "key": "db/main", "encoding": "utf8", "value": "pg://secret"})
        )
    );
    assert_eq!(ask("other").0, 403);
    let mut audit = http
        .get(&format!("{base}/v1/admin/audit"))
        .header("Authorization", &format!("Bearer {}", keeper.admin))
        .call()
        .unwrap();
    assert_eq!(
        audit.body_mut().read_json::<Value>().unwrap()["entries"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // The CLI reads the same audit log and agent registry.
    let home = s(&keeper.home);
    let log = sb
        .datum_in(
            &keeper.workshop,
            &["keeper", "audit", "--home", home, "--format", "json"],
        )
        .success()
        .json();
    assert_eq!(log["entries"][1]["decision"], "refused");
    let agents = sb
        .datum_in(
            &keeper.workshop,
            &["keeper", "agents", "--home", home, "--format", "json"],
        )
        .success()
        .json();
    assert_eq!(agents["agents"], json!(["ada"]));
}

/// A served Keeper with `db/main` in its vault and a policy granting `ada` the `db/*` keys.
/// A served Keeper holding `db/main`, whose policy grants it to `ada`.
fn serve_keeper(sb: &Sandbox) -> Keeper {
    let ws = keeper_workshop(sb);
    let mut keeper = Keeper::init(sb, &ws);
    let value = sb.path("value");
    std::fs::write(&value, "pg://secret").unwrap();
    keeper.add_secret(sb, "db/main", &value).success();
    keeper.set_policy(r#"{"grants": [{"agent": "ada", "keys": ["db/*"]}]}"#);
    keeper.serve(sb);
    keeper
}

#[test]
fn plugins_get_secrets_through_the_host_only_when_both_grant_it() {
    let sb = Sandbox::new();
    let keeper = serve_keeper(&sb);
    let ws = sb.path("ada");
    // The policy grants `ada`: the operator hands out a one-time enrolment code.
    let code = sb
        .datum_in(
            &keeper.workshop,
            &[
                "keeper",
                "enroll",
                "ada",
                "--home",
                s(&keeper.home),
                "--format",
                "json",
            ],
        )
        .success()
        .json()["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = sb
        .datum(&[
            "boot",
            "--workshop",
            s(&ws),
            "--name",
            "ada",
            "--no-plugins",
            "--keeper",
            keeper.url(),
            "--enrol",
            &code,
            "--format",
            "json",
        ])
        .success()
        .json();
    assert_eq!(out["keeper"]["agent"], "ada");
    let config = ws.join(".superagent/keeper.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&config).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(git_clean(&ws), "the token file is ignored, not committed");
    let repo = git2::Repository::open(&ws).unwrap();
    assert!(repo
        .status_should_ignore(Path::new(".superagent/keeper.json"))
        .unwrap());

    install_stress(&sb, &ws);
    assert_eq!(
        sb.datum_in(&ws, &["stress", "secret", "--key", "db/main"])
            .success()
            .stdout()
            .trim(),
        "pg://secret"
    );

    let ask_github = || {
        sb.datum_in(
            &ws,
            &[
                "stress",
                "secret",
                "--key",
                "github-token",
                "--format",
                "json",
            ],
        )
        .failure()
        .json()
    };
    // The plugin's grant does not cover the key: the host refuses before asking.
    let denied = ask_github();
    assert_eq!(
        denied["error"]["hint"],
        "datum plugin grant stress secrets:github-token"
    );
    // Granted by the host, refused by the Keeper's policy: still an error, no value.
    sb.datum_in(&ws, &["plugin", "grant", "stress", "secrets:github-token"])
        .success();
    let refused = ask_github();
    assert_eq!(refused["error"]["kind"], "permission-denied");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the Keeper refused"),
        "{refused}"
    );

    // Booting again re-registers with the stored token.
    sb.datum(&[
        "boot",
        "--workshop",
        s(&ws),
        "--no-plugins",
        "--keeper",
        keeper.url(),
    ])
    .success();
    assert_eq!(
        sb.datum_in(&ws, &["stress", "secret", "--key", "db/main"])
            .success()
            .stdout()
            .trim(),
        "pg://secret"
    );
}

#[test]
fn an_unreachable_keeper_fails_boot_quickly_and_creates_nothing() {
    let sb = Sandbox::new();
    let ws = sb.path("nobody");
    let url = format!("http://127.0.0.1:{}", free_port());
    let started = Instant::now();
    let r = sb
        .datum(&[
            "boot",
            "--workshop",
            s(&ws),
            "--no-plugins",
            "--keeper",
            &url,
        ])
        .failure();
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(
        r.stderr().contains("unreachable") && r.stderr().contains("3 s"),
        "{}",
        r.stderr()
    );
    assert!(!ws.exists());
}

#[test]
fn a_standalone_vault_serves_plugins_without_a_server() {
    let sb = Sandbox::new();
    let kw = keeper_workshop(&sb);
    let home = sb.path("solo-keeper");
    let pw = sb.path("pw");
    std::fs::write(&pw, "correct horse battery\n").unwrap();
    sb.datum_in(
        &kw,
        &[
            "keeper",
            "init",
            "--home",
            s(&home),
            "--password-file",
            s(&pw),
        ],
    )
    .success();
    sb.datum_stdin(
        &kw,
        &["keeper", "add-secret", "db/main", "--home", s(&home)],
        "correct horse battery\npg://solo\n",
    )
    .success();
    std::fs::write(
        home.join("policy.json"),
        r#"{"grants": [{"agent": "solo", "keys": ["db/*"]}]}"#,
    )
    .unwrap();

    let ws = sb.path("solo");
    let out = sb
        .datum(&[
            "boot",
            "--workshop",
            s(&ws),
            "--name",
            "solo",
            "--no-plugins",
            "--keeper-home",
            s(&home),
            "--format",
            "json",
        ])
        .success()
        .json();
    assert_eq!(out["keeper"]["mode"], "standalone");
    install_stress(&sb, &ws);

    let ask = ["stress", "secret", "--key", "db/main"];
    let got = sb
        .datum_env(&ws, &ask, &[("DATUM_KEEPER_PASSWORD_FILE", &pw)])
        .success();
    assert_eq!(got.stdout().trim(), "pg://solo");
    // No password source: an error that names the fix, never a value from elsewhere.
    let none = sb.datum_in(&ws, &ask).failure();
    assert!(
        none.stderr().contains("DATUM_KEEPER_PASSWORD_FILE"),
        "{}",
        none.stderr()
    );
    let bad = sb.path("bad-pw");
    std::fs::write(&bad, "nope").unwrap();
    let wrong = sb
        .datum_env(&ws, &ask, &[("DATUM_KEEPER_PASSWORD_FILE", &bad)])
        .failure();
    assert!(
        wrong.stderr().contains("wrong master password"),
        "{}",
        wrong.stderr()
    );
    sb.datum_in(&ws, &["plugin", "grant", "stress", "secrets:github-token"])
        .success();
    let refused = sb
        .datum_env(
            &ws,
            &["stress", "secret", "--key", "github-token"],
            &[("DATUM_KEEPER_PASSWORD_FILE", &pw)],
        )
        .failure();
    assert!(
        refused.stderr().contains("the Keeper refused"),
        "{}",
        refused.stderr()
    );

    assert_eq!(audit_decisions(&sb, &kw, s(&home)), ["granted", "refused"]);

    let nowhere = sb.path("nowhere-ws");
    let r = sb
        .datum(&[
            "boot",
            "--workshop",
            s(&nowhere),
            "--no-plugins",
            "--keeper-home",
            s(&sb.path("no-such-keeper")),
        ])
        .failure();
    assert!(r.stderr().contains("datum keeper init"), "{}", r.stderr());
    assert!(!nowhere.exists());
}

/// What a prototype agent sends: HTTP/1.1 written by hand on a TCP socket (not datum's
/// client), `Connection: close`, and the JSON body it gets back.
fn prototype_http(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let status: u16 = reply.split(' ').nth(1).unwrap().parse().unwrap();
    let (_, payload) = reply.split_once("\r\n\r\n").unwrap();
    (status, serde_json::from_str(payload).unwrap_or(Value::Null))
}

#[test]
fn a_prototype_agent_uses_the_compat_endpoints_while_the_operator_grants_and_revokes() {
    let sb = Sandbox::new();
    let ws = keeper_workshop(&sb);
    let mut keeper = Keeper::init(&sb, &ws);
    let home = s(&keeper.home).to_owned();
    // A new policy blocks paste and chat services out of the box.
    let policy: Value =
        serde_json::from_str(&std::fs::read_to_string(keeper.home.join("policy.json")).unwrap())
            .unwrap();
    for blocked in [
        "*pastebin*",
        "*discord*",
        "*slack*",
        "*telegram*",
        "*webhook*",
    ] {
        assert!(
            policy["blocked_destinations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|b| b == blocked),
            "{policy}"
        );
    }
    let value = sb.path("value");
    std::fs::write(&value, "pg://secret").unwrap();
    keeper.add_secret(&sb, "db/main", &value).success();
    keeper.serve_with(&sb, &["--compat"]);
    let base = keeper.url().to_owned();

    let (status, health) = prototype_http(&base, "GET", "/api/health", None, None);
    assert_eq!(
        (status, health["status"].as_str()),
        (200, Some("ok")),
        "{health}"
    );

    // The agent registers (its name is not granted yet, so no enrolment is needed).
    let (_, reg) = prototype_http(
        &base,
        "POST",
        "/v1/agents",
        None,
        Some(json!({"name": "ada"})),
    );
    let token = reg["token"].as_str().unwrap().to_owned();
    let ask = |destination: &str| {
        prototype_http(
            &base,
            "POST",
            "/api/request",
            Some(&token),
            Some(
                json!({"agent": "ada", "key": "db/main", "purpose": "migrate", "destination": destination}),
            ),
        )
    };
    assert_eq!(ask("db.internal").0, 403, "nothing granted yet");

    // The operator grants while the server runs; the next request sees it.
    let granted = sb
        .datum_in(
            &ws,
            &[
                "keeper",
                "grant",
                "ada",
                "db/*",
                "--destination",
                "db.internal",
                "--destination",
                "hooks.slack.com",
                "--expires",
                "30d",
                "--home",
                &home,
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    assert_eq!(granted["added"], true);
    assert_eq!(
        granted["still_blocked"],
        json!(["*slack*"]),
        "the operator is told a blocked destination stays blocked"
    );
    let (status, answer) = ask("db.internal");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["approved"].as_bool(), answer["value"].as_str()),
        (Some(true), Some("pg://secret"))
    );
    assert!(
        answer["ttl"].as_u64().is_some_and(|t| t > 0 && t <= 300),
        "{answer}"
    );
    let (status, answer) = ask("hooks.slack.com");
    assert_eq!(
        (status, answer["approved"].as_bool()),
        (403, Some(false)),
        "{answer}"
    );

    let revoked = sb
        .datum_in(
            &ws,
            &[
                "keeper", "revoke", "ada", "db/*", "--home", &home, "--format", "json",
            ],
        )
        .success()
        .json();
    assert_eq!(revoked["revoked"], 1);
    assert_eq!(ask("db.internal").0, 403, "revoked without a restart");
    let again = sb
        .datum_in(&ws, &["keeper", "revoke", "ada", "db/*", "--home", &home])
        .failure();
    assert!(
        again.stderr().contains("no grant of `db/*`"),
        "{}",
        again.stderr()
    );

    // Every compat request is in the same audit log as /v1's.
    assert_eq!(
        audit_decisions(&sb, &ws, &home),
        ["refused", "granted", "refused", "refused"]
    );
}

/// The decisions in the Keeper's audit log, oldest first, as `datum keeper audit` reads them.
fn audit_decisions(sb: &Sandbox, ws: &Path, home: &str) -> Vec<String> {
    let log = sb
        .datum_in(ws, &["keeper", "audit", "--home", home, "--format", "json"])
        .success()
        .json();
    log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["decision"].as_str().unwrap().to_owned())
        .collect()
}
