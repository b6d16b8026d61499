//! Wire snapshots: the exact JSON each host-service helper sends, and the replies it
//! reads. These strings are what every 1.x plugin already puts on the wire; a change
//! here breaks plugins in the field, so it is a new major version, never an edit.

use std::cell::RefCell;

use datum_plugin_api::{ErrorKind, Host, InstallRequest, LogLevel, PermissionKind, ServiceCall};
use serde_json::{json, Map, Value};

/// Run `f` against a fake host that records the request and answers `reply`.
fn sent(reply: &str, f: impl FnOnce(&Host<'_>)) -> String {
    let seen = RefCell::new(String::new());
    let transport = |req: &str| {
        *seen.borrow_mut() = req.to_owned();
        reply.to_owned()
    };
    f(&Host::new(&transport));
    seen.into_inner()
}

const OK_NULL: &str = r#"{"ok":true,"data":null}"#;

fn args() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("bytecode".into(), json!("00"));
    m
}

/// (what the helper sends, byte for byte) for every service a helper speaks.
#[allow(clippy::type_complexity)]
fn snapshots() -> Vec<(&'static str, Box<dyn Fn(&Host<'_>)>)> {
    vec![
        (
            r#"{"args":{"level":"warn","message":"careful"},"service":"log"}"#,
            Box::new(|h| h.log(LogLevel::Warn, "careful")),
        ),
        (
            r#"{"args":{"key":"runs"},"service":"kv.get"}"#,
            Box::new(|h| drop(h.kv_get("runs"))),
        ),
        (
            r#"{"args":{"key":"runs","value":42},"service":"kv.set"}"#,
            Box::new(|h| drop(h.kv_set("runs", json!(42)))),
        ),
        (
            r#"{"args":{"path":"journal/a.md"},"service":"fs.read"}"#,
            Box::new(|h| drop(h.read_file("journal/a.md"))),
        ),
        (
            r#"{"args":{"contents":"hi","path":"a.md"},"service":"fs.write"}"#,
            Box::new(|h| drop(h.write_file("a.md", "hi"))),
        ),
        (
            r#"{"args":{"contents":"hi","path":"a.md"},"service":"fs.create"}"#,
            Box::new(|h| drop(h.create_file("a.md", "hi"))),
        ),
        (
            r#"{"args":{"contents":"- one","path":"JOURNAL.md"},"service":"fs.append"}"#,
            Box::new(|h| drop(h.append_file("JOURNAL.md", "- one"))),
        ),
        (
            r#"{"args":{"path":"tools"},"service":"fs.list"}"#,
            Box::new(|h| drop(h.list_dir("tools"))),
        ),
        (
            r#"{"args":null,"service":"clock.now"}"#,
            Box::new(|h| drop(h.now_ms())),
        ),
        (
            r#"{"args":{"ms":250},"service":"clock.sleep"}"#,
            Box::new(|h| drop(h.sleep_ms(250))),
        ),
        (
            r#"{"args":{"line":"tick"},"service":"emit"}"#,
            Box::new(|h| drop(h.emit("tick"))),
        ),
        (
            r#"{"args":{"message":"sync bottles","path":"message-in-a-bottle","remote":null},"service":"git.sync"}"#,
            Box::new(|h| drop(h.git_sync("message-in-a-bottle", None, "sync bottles"))),
        ),
        (
            r#"{"args":{"message":"m","path":"x","remote":"origin"},"service":"git.sync"}"#,
            Box::new(|h| drop(h.git_sync("x", Some("origin"), "m"))),
        ),
        (
            r#"{"args":{"message":"journal","path":"JOURNAL.md"},"service":"git.commit"}"#,
            Box::new(|h| drop(h.git_commit("JOURNAL.md", "journal"))),
        ),
        (
            r#"{"args":{"limit":5,"path":"."},"service":"git.log"}"#,
            Box::new(|h| drop(h.git_log(".", 5))),
        ),
        (
            r#"{"args":{"to":"active"},"service":"agent.lifecycle"}"#,
            Box::new(|h| drop(h.advance_lifecycle("active"))),
        ),
        (
            r#"{"args":{"destination":"api.example","key":"db/pw","purpose":"backup"},"service":"secret.get"}"#,
            Box::new(|h| drop(h.secret("db/pw", "backup", "api.example"))),
        ),
        (
            r#"{"args":{"destination":"d","key":"k","optional":true,"purpose":"p"},"service":"secret.get"}"#,
            Box::new(|h| drop(h.secret_if_kept("k", "p", "d"))),
        ),
        (
            r#"{"args":{"args":{"bytecode":"00"},"command":"flux run","plugin":"flux-vm"},"service":"plugin.call"}"#,
            Box::new(|h| drop(h.call_plugin("flux-vm", "flux run", args()))),
        ),
        (
            r#"{"args":{"args":{"bytecode":"00"},"command":"flux run","kind":"wasm","plugin":"flux-vm"},"service":"plugin.call"}"#,
            Box::new(|h| drop(h.call_plugin_kind("flux-vm", "wasm", "flux run", args()))),
        ),
        (
            r#"{"args":{},"service":"plugin.list"}"#,
            Box::new(|h| drop(h.plugins())),
        ),
        (
            r#"{"args":{"name":"fleet"},"service":"plugin.info"}"#,
            Box::new(|h| drop(h.plugin_info("fleet"))),
        ),
        (
            r#"{"args":{"ability":"flux-execution"},"service":"plugin.providing"}"#,
            Box::new(|h| drop(h.plugins_providing("flux-execution"))),
        ),
        (
            r#"{"args":{"commit":true,"dry_run":false,"reason":"needed","sha256":null,"spec":"fleet@^0.1"},"service":"plugin.install"}"#,
            Box::new(|h| {
                drop(h.install_plugin("fleet@^0.1", "needed", &InstallRequest::default()))
            }),
        ),
        (
            r#"{"args":{"commit":false,"dry_run":true,"reason":"r","sha256":"ab","spec":"x"},"service":"plugin.install"}"#,
            Box::new(|h| {
                let o = InstallRequest {
                    sha256: Some("ab"),
                    dry_run: true,
                    no_commit: true,
                };
                drop(h.install_plugin("x", "r", &o))
            }),
        ),
        (
            r#"{"args":{"name":"fleet"},"service":"plugin.remove"}"#,
            Box::new(|h| drop(h.remove_plugin("fleet"))),
        ),
        (
            r#"{"args":{"plugin":"hello"},"service":"plugin.prove"}"#,
            Box::new(|h| drop(h.prove_plugin("hello"))),
        ),
    ]
}

#[test]
fn every_helper_sends_exactly_the_1x_wire_json() {
    let mut services = std::collections::BTreeSet::new();
    for (want, call) in snapshots() {
        let got = sent(OK_NULL, call);
        assert_eq!(got, want);
        // And the host reads back the same typed call.
        let decoded = ServiceCall::from_wire(&got).unwrap();
        assert_eq!(decoded.to_json(), want);
        services.insert(decoded.name());
    }
    let all: std::collections::BTreeSet<_> = ServiceCall::NAMES.iter().copied().collect();
    assert_eq!(services, all, "every service has a snapshot");
}

#[test]
fn what_older_plugins_sent_still_decodes() {
    // Hand-built requests as plugins built before the typed enum wrote them: missing
    // `args`, `null` args, arguments left out that have defaults, fields this host
    // does not know (a newer plugin's additions), an unknown log level.
    for (wire, want) in [
        (r#"{"service":"clock.now"}"#, ServiceCall::ClockNow),
        (
            r#"{"service":"clock.now","args":{}}"#,
            ServiceCall::ClockNow,
        ),
        (
            r#"{"service":"plugin.list","args":null}"#,
            ServiceCall::PluginList {},
        ),
        (
            r#"{"service":"log","args":{"level":"trace","message":"m"}}"#,
            ServiceCall::Log {
                level: LogLevel::Info,
                message: "m".into(),
            },
        ),
        (
            r#"{"service":"git.commit","args":{"path":"x"}}"#,
            ServiceCall::GitCommit {
                path: "x".into(),
                message: "update".into(),
            },
        ),
        (
            r#"{"service":"kv.get","args":{"key":"k","since":"1.9"}}"#,
            ServiceCall::KvGet { key: "k".into() },
        ),
        (
            r#"{"service":"clock.sleep","args":null}"#,
            ServiceCall::ClockSleep { ms: 0 },
        ),
    ] {
        assert_eq!(ServiceCall::from_wire(wire).unwrap(), want, "{wire}");
    }
}

#[test]
fn bad_requests_say_which_part_is_wrong() {
    let unknown = ServiceCall::from_wire(r#"{"service":"net.get","args":{}}"#).unwrap_err();
    assert_eq!(unknown.kind, ErrorKind::HostService);
    assert!(unknown.message.contains("unknown host service `net.get`"));
    assert!(unknown.hint.unwrap().contains("upgrade"));
    let missing = ServiceCall::from_wire(r#"{"service":"fs.read","args":{}}"#).unwrap_err();
    assert!(missing.message.contains("`fs.read`"), "{}", missing.message);
    assert!(missing.message.contains("path"), "{}", missing.message);
    let typed = ServiceCall::from_wire(r#"{"service":"kv.get","args":{"key":7}}"#).unwrap_err();
    assert!(typed.message.contains("bad arguments"), "{}", typed.message);
    assert!(ServiceCall::from_wire("[]").is_err());
    assert!(ServiceCall::from_wire(r#"{"args":{}}"#).is_err());
}

#[test]
fn each_service_names_the_grant_it_needs() {
    use PermissionKind::*;
    type Need<'a> = Option<(PermissionKind, Option<&'a str>)>;
    let cases: Vec<(ServiceCall, Need<'_>)> = vec![
        (ServiceCall::ClockNow, None),
        (ServiceCall::PluginList {}, None),
        (
            ServiceCall::KvSet {
                key: "a".into(),
                value: Value::Null,
            },
            Some((Kv, None)),
        ),
        (
            ServiceCall::FsList {
                path: "tools".into(),
            },
            Some((FsRead, Some("tools"))),
        ),
        (
            ServiceCall::FsAppend {
                path: "J.md".into(),
                contents: String::new(),
            },
            Some((FsWrite, Some("J.md"))),
        ),
        (
            ServiceCall::GitLog {
                path: ".".into(),
                limit: 1,
            },
            Some((Git, Some("."))),
        ),
        (
            ServiceCall::PluginInstall {
                spec: "fleet@^0.1".into(),
                reason: String::new(),
                sha256: None,
                dry_run: false,
                commit: true,
            },
            Some((Install, Some("fleet"))),
        ),
        (
            ServiceCall::PluginRemove {
                name: "fleet".into(),
            },
            Some((Install, Some("fleet"))),
        ),
        (
            ServiceCall::PluginProve { plugin: "x".into() },
            Some((Call, Some("x"))),
        ),
        (
            ServiceCall::SecretGet {
                key: "db/pw".into(),
                purpose: String::new(),
                destination: String::new(),
                optional: false,
            },
            Some((Secrets, Some("db/pw"))),
        ),
    ];
    for (call, want) in cases {
        assert_eq!(call.needs(), want, "{}", call.name());
    }
}

#[test]
fn replies_keep_their_1x_shape() {
    // The reply envelope a helper reads: data on success, a typed error with its hint.
    let seen = sent(r#"{"ok":true,"data":1764288000000}"#, |h| {
        assert_eq!(h.now_ms().unwrap(), 1_764_288_000_000)
    });
    assert!(seen.contains("clock.now"));
    let transport = |_: &str| {
        r#"{"ok":false,"error":{"kind":"permission-denied","message":"x 0.1.0 is not granted `kv`","hint":"datum plugin grant x kv"}}"#.to_owned()
    };
    let err = Host::new(&transport).kv_get("k").unwrap_err();
    assert_eq!(err.kind, ErrorKind::PermissionDenied);
    assert_eq!(err.hint.as_deref(), Some("datum plugin grant x kv"));
    let garbage = |_: &str| "not json".to_owned();
    let err = Host::new(&garbage).kv_get("k").unwrap_err();
    assert!(err.message.contains("unreadable reply to `kv.get`"));
}
