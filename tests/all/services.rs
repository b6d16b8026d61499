//! Host services seen from a plugin: each needs its grant, denials name the exact
//! `datum plugin grant` command, and paths cannot leave the workshop.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use datum_test_support::{fixture_registry, s, Sandbox};

#[test]
fn kv_store_persists_per_plugin_across_calls() {
    let sb = Sandbox::new();
    let reg = fixture_registry();
    let ws = sb.empty_workshop("kv");
    sb.datum_in(
        &ws,
        &["plugin", "install", "stress@=1.0.0", "--registry", s(&reg)],
    )
    .success();
    for expected in ["1", "2", "3"] {
        assert_eq!(
            sb.datum_in(&ws, &["stress", "count"])
                .success()
                .stdout()
                .trim(),
            expected
        );
    }
    let stored = std::fs::read_to_string(ws.join(".superagent/kv/stress.json")).unwrap();
    assert!(stored.contains("\"count\": 3"), "{stored}");

    sb.datum_in(&ws, &["plugin", "revoke", "stress", "kv"])
        .success();
    let r = sb
        .datum_in(&ws, &["stress", "count", "--format", "json"])
        .failure()
        .json();
    assert_eq!(r["error"]["kind"], "permission-denied");
    assert_eq!(r["error"]["hint"], "datum plugin grant stress kv");
}

#[test]
fn files_need_a_grant_covering_the_path() {
    let sb = Sandbox::new();
    let reg = fixture_registry();
    let ws = sb.empty_workshop("fs");
    sb.datum_in(
        &ws,
        &["plugin", "install", "stress@=1.0.0", "--registry", s(&reg)],
    )
    .success();
    sb.datum_in(
        &ws,
        &["stress", "write", "--path", "notes/a.md", "--text", "hello"],
    )
    .success();
    assert_eq!(
        std::fs::read_to_string(ws.join("notes/a.md")).unwrap(),
        "hello"
    );
    assert_eq!(
        sb.datum_in(&ws, &["stress", "read", "--path", "notes/a.md"])
            .success()
            .stdout()
            .trim(),
        "hello"
    );

    let journal = std::fs::read_to_string(ws.join("JOURNAL.md")).unwrap();
    let denied = sb
        .datum_in(
            &ws,
            &[
                "stress",
                "write",
                "--path",
                "JOURNAL.md",
                "--text",
                "x",
                "--format",
                "json",
            ],
        )
        .failure()
        .json();
    assert_eq!(denied["error"]["kind"], "permission-denied");
    assert_eq!(
        denied["error"]["hint"],
        "datum plugin grant stress fs-write:JOURNAL.md"
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("JOURNAL.md")).unwrap(),
        journal,
        "a denied write changes nothing"
    );

    let escape = sb
        .datum_in(
            &ws,
            &[
                "stress",
                "read",
                "--path",
                "../../etc/passwd",
                "--format",
                "json",
            ],
        )
        .failure()
        .json();
    assert_eq!(escape["error"]["kind"], "permission-denied");
    assert!(escape["error"]["message"]
        .as_str()
        .unwrap()
        .contains("leaves the workshop"));
}

#[test]
fn calling_another_plugin_needs_a_call_grant() {
    let sb = Sandbox::new();
    let reg = fixture_registry();
    let ws = sb.empty_workshop("call");
    sb.datum_in(
        &ws,
        &[
            "plugin",
            "install",
            "stress@=1.0.0",
            "flux-vm",
            "--registry",
            s(&reg),
        ],
    )
    .success();
    let denied = sb
        .datum_in(
            &ws,
            &[
                "stress",
                "call",
                "--bytecode",
                "550500000055070000001000",
                "--format",
                "json",
            ],
        )
        .failure()
        .json();
    assert_eq!(
        denied["error"]["hint"],
        "datum plugin grant stress call:flux-vm"
    );
    sb.datum_in(&ws, &["plugin", "grant", "stress", "call:flux-vm"])
        .success();
    let out = sb
        .datum_in(
            &ws,
            &["stress", "call", "--bytecode", "550500000055070000001000"],
        )
        .success();
    assert_eq!(out.stdout().trim(), "[12]");
}
