//! One error shape, one exit code per kind of failure. Every failure datum reports has a
//! `kind`, a `category`, a `message` and a `hint` naming the fix (and the plugin,
//! version and call where there is one); the exit code says which category it was, as
//! the README's table promises. One case of each category here.

use std::path::Path;

use datum_test_support::{
    bundled_registry, copy_dir, fixture_registry, free_port, repo, s, Run, Sandbox,
};
use serde_json::Value;

/// Run a failing command with `--format json`: its exit code, and the error it printed,
/// checked to have the full shape.
fn failing(sb: &Sandbox, ws: &Path, args: &[&str]) -> (i32, Value) {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let run: Run = sb.datum_in(ws, &all).failure();
    let code = run
        .output
        .status
        .code()
        .expect("an exit code, not a signal");
    let v = run.json();
    assert_eq!(v["ok"], false, "{v}");
    let e = &v["error"];
    for field in ["kind", "category", "message", "hint"] {
        assert!(
            e[field].as_str().is_some_and(|t| !t.trim().is_empty()),
            "`{}` has no {field}: {v}",
            args.join(" ")
        );
    }
    (code, e.clone())
}

fn stress_workshop(sb: &Sandbox) -> std::path::PathBuf {
    let ws = sb.empty_workshop("stressed");
    let reg = fixture_registry();
    sb.datum_in(
        &ws,
        &["plugin", "install", "stress@=1.0.0", "--registry", s(&reg)],
    )
    .success();
    ws
}

#[test]
fn each_kind_of_failure_has_its_exit_code_and_a_hint() {
    let sb = Sandbox::new();
    let ws = stress_workshop(&sb);

    // 2 usage: a plugin command's arguments are wrong.
    let (code, e) = failing(&sb, &ws, &["stress", "write", "--path", "notes/a.md"]);
    assert_eq!((code, e["category"].as_str()), (2, Some("usage")), "{e}");
    assert_eq!(e["hint"], "datum stress write --help");
    // ...and so are datum's own (clap's code, with clap's message).
    let bad = sb.datum_in(&ws, &["--no-such-flag"]).failure();
    assert_eq!(bad.output.status.code(), Some(2));

    // 3 not-found: no such plugin in the registry.
    let reg = bundled_registry();
    let (code, e) = failing(
        &sb,
        &ws,
        &["plugin", "install", "no-such-plugin", "--registry", s(&reg)],
    );
    assert_eq!(
        (code, e["kind"].as_str()),
        (3, Some("no-such-plugin")),
        "{e}"
    );
    assert_eq!(e["hint"], "datum plugin search no-such-plugin");

    // 4 denied: a host service the plugin holds no grant for.
    let (code, e) = failing(
        &sb,
        &ws,
        &["stress", "write", "--path", "elsewhere/x.md", "--text", "t"],
    );
    assert_eq!((code, e["category"].as_str()), (4, Some("denied")), "{e}");
    assert_eq!(
        (e["plugin"].as_str(), e["call"].as_str()),
        (Some("stress"), Some("stress write"))
    );
    assert!(
        e["hint"]
            .as_str()
            .unwrap()
            .starts_with("datum plugin grant stress fs-write:"),
        "{e}"
    );

    // 6 plugin: it panicked.
    let (code, e) = failing(&sb, &ws, &["stress", "panic"]);
    assert_eq!((code, e["kind"].as_str()), (6, Some("panic")), "{e}");
    assert_eq!(e["version"], "1.0.0");

    // 7 limit: it replied with more than its output limit.
    let (code, e) = failing(&sb, &ws, &["stress", "flood"]);
    assert_eq!(
        (code, e["kind"].as_str()),
        (7, Some("output-too-large")),
        "{e}"
    );

    // 8 unavailable: a web registry nobody answers for.
    let nobody = format!("http://127.0.0.1:{}/", free_port());
    let (code, e) = failing(
        &sb,
        &ws,
        &["plugin", "install", "hello", "--registry", &nobody],
    );
    assert_eq!(
        (code, e["kind"].as_str()),
        (8, Some("http-registry")),
        "{e}"
    );

    // 9 corrupt: the workshop's lock is torn.
    std::fs::write(ws.join("datum.lock"), "[[plugin]\nname=").unwrap();
    let (code, e) = failing(&sb, &ws, &["plugin", "list"]);
    assert_eq!((code, e["kind"].as_str()), (9, Some("lock")), "{e}");
    assert!(e["hint"]
        .as_str()
        .unwrap()
        .contains("git checkout -- datum.lock"));
}

#[test]
fn a_registry_that_does_not_match_its_signed_snapshot_exits_5() {
    let sb = Sandbox::new();
    let ws = sb.empty_workshop("careful");
    let reg = sb.path("registry");
    copy_dir(&bundled_registry(), &reg);
    let index = reg.join("index/flux-vm.json");
    let mut text = std::fs::read_to_string(&index).unwrap();
    text.push(' ');
    std::fs::write(&index, text).unwrap();
    let (code, e) = failing(
        &sb,
        &ws,
        &["plugin", "install", "flux-vm", "--registry", s(&reg)],
    );
    assert_eq!(
        (code, e["category"].as_str()),
        (5, Some("untrusted")),
        "{e}"
    );
    assert_eq!(e["kind"], "signature");
    assert!(
        !ws.join("datum.lock").exists()
            || !std::fs::read_to_string(ws.join("datum.lock"))
                .unwrap()
                .contains("flux-vm")
    );
}

#[test]
fn batch_replies_carry_a_hint_for_every_failed_line() {
    let sb = Sandbox::new();
    let ws = stress_workshop(&sb);
    let input = sb.path("calls.jsonl");
    std::fs::write(
        &input,
        [
            r#"{"command": "stress ok"}"#,
            r#"not a call"#,
            r#"{"command": "no such thing"}"#,
            r#"{"command": "stress panic"}"#,
            r#"{"command": "stress read", "args": {"path": "elsewhere/x"}}"#,
            r#"{"command": "stress read", "args": {"path": "notes/missing.md"}}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let run = sb.datum_in(&ws, &["batch", s(&input)]).failure();
    let replies: Vec<Value> = run
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(replies.len(), 6);
    assert_eq!(replies[0]["ok"], true);
    for reply in &replies[1..] {
        assert_eq!(reply["ok"], false, "{reply}");
        assert!(
            reply["error"]["hint"]
                .as_str()
                .is_some_and(|h| !h.is_empty()),
            "no hint: {reply}"
        );
    }
}

#[test]
fn the_readme_lists_every_exit_code() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    for category in datum::error::Category::ALL {
        let row = format!("| {} | `{}` |", category.exit_code(), category.as_str());
        assert!(readme.contains(&row), "README.md lacks the row `{row}`");
    }
}
