//! Message-in-a-Bottle through the real binary and the WASM plugin: drops, inboxes,
//! hostile input, sync between workshops through a bare git remote, the I2I bridge.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use datum_test_support::{s, Sandbox};
use serde_json::Value;

/// A workshop for `name` with the default plugins (flux-vm and mib).
fn agent(sb: &Sandbox, name: &str) -> PathBuf {
    sb.agent(name)
}

fn inbox_ids(sb: &Sandbox, ws: &Path, all: bool) -> Vec<String> {
    let mut args = vec!["bottle", "check", "--format", "json"];
    if all {
        args.push("--all");
    }
    let out = sb.datum_in(ws, &args).success().json();
    out["bottles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect()
}

/// No uncommitted change under message-in-a-bottle/.
fn bottles_committed(ws: &Path) -> bool {
    let repo = git2::Repository::open(ws).unwrap();
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .pathspec("message-in-a-bottle");
    let clean = repo.statuses(Some(&mut opts)).unwrap().is_empty();
    clean
}

#[test]
fn a_bottle_goes_in_one_inbox_and_is_read_once() {
    let sb = Sandbox::new();
    let ws = agent(&sb, "alice");
    let dropped = sb
        .datum_in(
            &ws,
            &[
                "bottle",
                "drop",
                "alice",
                "Note to self",
                "remember the **milk**",
                "--type",
                "question",
                "--priority",
                "high",
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    let id = dropped["id"].as_str().unwrap();
    let path = ws.join(dropped["path"].as_str().unwrap());
    let file = std::fs::read_to_string(&path).unwrap();
    assert!(file.starts_with("---\nid: "), "{file}");
    assert!(file.contains("\ntype: question\n") && file.ends_with("remember the **milk**"));

    let check = sb.datum_in(&ws, &["bottle", "check"]).success().stdout();
    assert!(
        check.contains("1 new bottle for alice") && check.contains(id),
        "{check}"
    );
    let read = sb.datum_in(&ws, &["bottle", "read", id]).success().stdout();
    assert!(read.contains("Subject:  Note to self") && read.contains("remember the **milk**"));
    assert!(
        inbox_ids(&sb, &ws, false).is_empty(),
        "read bottles are not new"
    );
    assert_eq!(inbox_ids(&sb, &ws, true), vec![id.to_owned()]);

    // The body can come from standard input.
    let r = sb
        .datum_stdin(
            &ws,
            &["bottle", "drop", "bob", "Long report", "-"],
            "line one\nline two\n",
        )
        .success();
    let bottle = std::fs::read_dir(ws.join("message-in-a-bottle/for-bob"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(
        std::fs::read_to_string(bottle)
            .unwrap()
            .ends_with("\n\nline one\nline two\n"),
        "{}",
        r.stdout()
    );
}

#[test]
fn concurrent_drops_to_one_inbox_lose_nothing() {
    let sb = Sandbox::new();
    let ws = agent(&sb, "alice");
    // 12 processes × 5 bottles, all with the same subject in the same millisecond range.
    let handles: Vec<_> = (0..12)
        .map(|t| {
            let datum = datum_test_support::datum_bin();
            let (ws, home) = (ws.clone(), sb.home());
            std::thread::spawn(move || {
                for i in 0..5 {
                    let out = std::process::Command::new(&datum)
                        .args([
                            "bottle",
                            "drop",
                            "bob",
                            "status",
                            &format!("from task {t} bottle {i}"),
                        ])
                        .current_dir(&ws)
                        .env("DATUM_HOME", &home)
                        .output()
                        .unwrap();
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let dir = ws.join("message-in-a-bottle/for-bob");
    let mut bodies = BTreeSet::new();
    let mut names = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(
            !name.starts_with('.'),
            "a temp file was left behind: {name}"
        );
        names += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        bodies.insert(text.rsplit("\n\n").next().unwrap().to_owned());
    }
    assert_eq!(names, 60, "every drop made its own file");
    assert_eq!(bodies.len(), 60, "no bottle overwrote another");
}

#[test]
fn hostile_names_and_text_are_refused_or_neutralised() {
    let sb = Sandbox::new();
    let ws = agent(&sb, "alice");
    for to in ["../x", "/etc/passwd", "a/b", "Bob", "x\u{1b}[2J"] {
        let r = sb.datum_in(&ws, &["bottle", "drop", to, "hi"]).failure();
        assert!(
            r.stderr().contains("is not allowed"),
            "{to:?}: {}",
            r.stderr()
        );
    }
    for subject in ["\u{1b}[31mred", "two\nlines", "\u{202e}txt.exe"] {
        let r = sb
            .datum_in(&ws, &["bottle", "drop", "bob", subject])
            .failure();
        assert!(
            r.stderr().contains("control character"),
            "{subject:?}: {}",
            r.stderr()
        );
    }
    // Refused as ids, before any path is formed (not merely "not found").
    for id in ["../../agent", "/etc/passwd", "x.md", "a\u{1b}b", "x y"] {
        let r = sb.datum_in(&ws, &["bottle", "read", id]).failure();
        assert!(
            r.stderr().contains("is not a bottle id"),
            "{id:?}: {}",
            r.stderr()
        );
    }
    let mb = ws.join("message-in-a-bottle");
    let entries: Vec<_> = std::fs::read_dir(&mb)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        entries.len(),
        1,
        "nothing but the README was written: {entries:?}"
    );
    assert!(!ws.join("x").exists() && !sb.path("x").exists());

    // A peer's bottle carrying terminal escapes in its body is shown, not obeyed;
    // a broken bottle next to it is reported and skipped.
    let inbox = mb.join("for-alice");
    std::fs::create_dir_all(&inbox).unwrap();
    let id = "20261127T000000000Z-mallory-hi-00000000";
    std::fs::write(
        inbox.join(format!("{id}.md")),
        format!("---\nid: {id}\nfrom: mallory\nto: alice\nsubject: hi\ntype: message\npriority: normal\nsent: 2026-11-27T00:00:00.000Z\n---\n\n\u{1b}]0;owned\u{7}\u{1b}[2Jgotcha\n"),
    )
    .unwrap();
    std::fs::write(
        inbox.join("20261127T000000001Z-mallory-broken-00000000.md"),
        "no header at all",
    )
    .unwrap();
    let check = sb.datum_in(&ws, &["bottle", "check"]).success().stdout();
    assert!(check.contains(id), "{check}");
    assert!(
        check.contains("warning: skipped") && check.contains("broken"),
        "{check}"
    );
    let read = sb.datum_in(&ws, &["bottle", "read", id]).success().stdout();
    assert!(
        !read.contains('\u{1b}') && !read.contains('\u{7}'),
        "raw escapes reached the terminal: {read:?}"
    );
    assert!(read.contains("\\u{1b}[2Jgotcha"), "{read}");
}

#[test]
fn sync_through_a_bare_remote_delivers_every_bottle_exactly_once() {
    let sb = Sandbox::new();
    let alice = agent(&sb, "alice");
    let bob = agent(&sb, "bob");
    let remote = sb.path("bottles.git");
    git2::Repository::init_bare(&remote).unwrap();
    let sync = |ws: &Path| {
        sb.datum_in(
            ws,
            &["bottle", "sync", "--remote", s(&remote), "--format", "json"],
        )
        .success()
        .json()
    };
    for i in 0..3 {
        sb.datum_in(
            &alice,
            &["bottle", "drop", "bob", &format!("task {i}"), "please"],
        )
        .success();
    }
    sb.datum_in(&bob, &["bottle", "drop", "alice", "hello", "from bob"])
        .success();
    // Interleaved syncs, and each side syncs more than once.
    let first = sync(&alice);
    assert_eq!(first["pushed"], true);
    sync(&bob);
    sync(&bob);
    sync(&alice);
    sync(&alice);
    let bob_inbox = inbox_ids(&sb, &bob, false);
    assert_eq!(bob_inbox.len(), 3, "{bob_inbox:?}");
    assert_eq!(bob_inbox.iter().collect::<BTreeSet<_>>().len(), 3);
    assert_eq!(inbox_ids(&sb, &alice, false).len(), 1);

    // Bob answers; one more round delivers just the answer.
    let read = sb
        .datum_in(&bob, &["bottle", "read", &bob_inbox[0]])
        .success();
    assert!(read.stdout().contains("please"));
    sb.datum_in(
        &bob,
        &[
            "bottle",
            "drop",
            "alice",
            "Re: task 0",
            "done",
            "--reply-to",
            &bob_inbox[0],
        ],
    )
    .success();
    let sent = sync(&bob);
    assert_eq!(sent["sent"].as_array().unwrap().len(), 1, "{sent}");
    let got = sync(&alice);
    assert_eq!(got["received"].as_array().unwrap().len(), 1, "{got}");
    assert_eq!(got["for_me"], 1);
    let again = sync(&alice);
    assert!(
        again["received"].as_array().unwrap().is_empty()
            && again["sent"].as_array().unwrap().is_empty()
    );
    assert_eq!(inbox_ids(&sb, &alice, false).len(), 2);
    assert_eq!(
        inbox_ids(&sb, &bob, true).len(),
        3,
        "bob's own sent bottles are not in his inbox"
    );
    // Every bottle that was sent or arrived is committed; nothing is left dirty there.
    assert!(bottles_committed(&alice) && bottles_committed(&bob));

    let history = sb
        .datum_in(&alice, &["bottle", "history", "--format", "json"])
        .success()
        .json();
    assert_eq!(history["sent"], 3);
    assert_eq!(history["received"], 2);
    assert_eq!(history["replies_received"], 1);
    assert!(history["avg_their_response_s"].as_f64().unwrap() >= 0.0);
    let with_bob = sb
        .datum_in(
            &alice,
            &[
                "bottle", "history", "--agent", "bob", "--last", "1h", "--format", "json",
            ],
        )
        .success()
        .json();
    assert_eq!(with_bob["sent"], 3);
}

#[test]
fn i2i_messages_cross_workshops_unchanged() {
    let sb = Sandbox::new();
    let alice = agent(&sb, "alice");
    let bob = agent(&sb, "bob");
    let remote = sb.path("bottles.git");
    git2::Repository::init_bare(&remote).unwrap();
    let body = r#"{"task":"deploy","files":["a.rs","b.rs"],"retries":3,"ratio":0.25}"#;
    let sent = sb
        .datum_in(
            &alice,
            &[
                "fleet", "send", "--to", "bob", "--type", "HANDOFF", "--body", body, "--format",
                "json",
            ],
        )
        .success()
        .json();
    sb.datum_in(
        &alice,
        &[
            "fleet",
            "send",
            "--to",
            "all",
            "--type",
            "BROADCAST",
            "--body",
            r#""standup at 10""#,
        ],
    )
    .success();
    sb.datum_in(&alice, &["bottle", "sync", "--remote", s(&remote)])
        .success();
    sb.datum_in(&bob, &["bottle", "sync", "--remote", s(&remote)])
        .success();
    let received = sb
        .datum_in(&bob, &["fleet", "receive", "--format", "json"])
        .success()
        .json();
    let messages = received["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{received}");
    let handoff = messages.iter().find(|m| m["type"] == "HANDOFF").unwrap();
    assert_eq!(
        handoff, &sent["message"],
        "the message arrived exactly as sent"
    );
    assert_eq!(
        handoff["body"],
        serde_json::from_str::<Value>(body).unwrap()
    );
    let broadcast = messages.iter().find(|m| m["type"] == "BROADCAST").unwrap();
    assert_eq!(broadcast["body"], "standup at 10");
    // Received means read: a second receive is empty, --all shows them again.
    let again = sb
        .datum_in(&bob, &["fleet", "receive", "--format", "json"])
        .success()
        .json();
    assert!(again["messages"].as_array().unwrap().is_empty());
    let bad = sb
        .datum_in(&alice, &["fleet", "send", "--to", "bob", "--type", "SHOUT"])
        .failure();
    assert!(
        bad.stderr().contains("unknown I2I type"),
        "{}",
        bad.stderr()
    );
    let bad = sb
        .datum_in(
            &alice,
            &[
                "fleet",
                "send",
                "--to",
                "bob",
                "--type",
                "PING",
                "--body",
                "{not json",
            ],
        )
        .failure();
    assert!(bad.stderr().contains("not JSON"), "{}", bad.stderr());
}

#[test]
fn watch_prints_new_bottles_as_they_arrive() {
    let sb = Sandbox::new();
    let ws = agent(&sb, "alice");
    let mut watch = sb.spawn_in(&ws, &["bottle", "watch", "--interval", "1", "--count", "2"]);
    watch.wait_for("watching bottles for alice", Duration::from_secs(30));
    sb.datum_in(&ws, &["bottle", "drop", "alice", "first"])
        .success();
    watch.wait_for("first", Duration::from_secs(30));
    sb.datum_in(&ws, &["bottle", "broadcast", "second", "to everyone"])
        .success();
    sb.datum_in(&ws, &["bottle", "drop", "alice", "third"])
        .success();
    let status = watch.wait_exit(Duration::from_secs(30));
    assert!(status.success());
    let out = watch.output();
    // Alice's own broadcast is not news to her; the bottles she left herself are.
    assert!(
        out.contains("first") && out.contains("third") && !out.contains("second"),
        "{out}"
    );
    drop(watch);
}

/// Response times are computed from the bottles' own times, to the millisecond: a
/// reply sent 90.5 s after the question counts as exactly 90.5 s.
#[test]
fn response_times_are_the_difference_of_the_bottles_times() {
    let sb = Sandbox::new();
    let ws = agent(&sb, "alice");
    sb.datum_in(&ws, &["bottle", "drop", "bob", "question", "why?"])
        .success();
    let outbox = ws.join("message-in-a-bottle/for-bob");
    let file = std::fs::read_dir(&outbox)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let question = std::fs::read_to_string(&file).unwrap();
    let id = file.file_stem().unwrap().to_str().unwrap().to_owned();
    let sent_line = question.lines().find(|l| l.starts_with("sent: ")).unwrap();
    // Pin the question's time, then write bob's reply 90.5 s later into alice's inbox.
    std::fs::write(
        &file,
        question.replace(sent_line, "sent: 2026-01-01T00:00:00.000Z"),
    )
    .unwrap();
    let reply_id = id.replace("-alice-", "-bob-");
    let reply = question
        .replace(&id, &reply_id)
        .replace("from: alice", "from: bob")
        .replace("to: bob", "to: alice")
        .replace(
            sent_line,
            &format!("sent: 2026-01-01T00:01:30.500Z\nreply-to: {id}"),
        );
    let inbox = ws.join("message-in-a-bottle/for-alice");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join(format!("{reply_id}.md")), reply).unwrap();
    let history = sb
        .datum_in(&ws, &["bottle", "history", "--format", "json"])
        .success()
        .json();
    assert_eq!(
        history["malformed"].as_array().map_or(0, Vec::len),
        0,
        "{history}"
    );
    assert_eq!(history["replies_received"], 1, "{history}");
    assert_eq!(
        history["avg_their_response_s"].as_f64(),
        Some(90.5),
        "{history}"
    );
    assert_eq!(history["replies_sent"], 0, "{history}");
}

/// A prototype agent's bottles, written here byte by byte from the prototype's format
/// (not by datum's writers), in the shapes its writers produced.
fn prototype_agent_writes(ws: &Path) {
    let inbox = ws.join("message-in-a-bottle/for-bob");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(
        inbox.join("2026-11-20_deploy-ready.md"),
        "---\nfrom: oracle1\nto: bob\ndate: 2026-11-20T09:30:00Z\ntype: deliverable\nsubject: Deploy ready\n---\n\nStaging is green.\n",
    )
    .unwrap();
    // Unfenced header, CRLF, capitalised keys, a quoted subject, no type.
    std::fs::write(
        inbox.join("2026-11-21_weekly-check.md"),
        "From: Oracle1\r\nDate: 2026-11-21 08:00\r\nSubject: \"Weekly check\"\r\n\r\nAll fine.\r\n",
    )
    .unwrap();
    // A broadcast with a type datum does not know: kept, not lost.
    let all = ws.join("message-in-a-bottle/for-all");
    std::fs::create_dir_all(&all).unwrap();
    std::fs::write(
        all.join("2026-11-22_fleet-news.md"),
        "---\nfrom: oracle1\nto: all\ndate: 2026-11-22\ntype: newsletter\nsubject: Fleet news\n---\nthree new agents\n",
    )
    .unwrap();
}

#[test]
fn the_prototypes_bottles_are_read_like_datums() {
    let sb = Sandbox::new();
    let ws = agent(&sb, "bob");
    prototype_agent_writes(&ws);
    let out = sb
        .datum_in(&ws, &["bottle", "check", "--format", "json"])
        .success()
        .json();
    assert_eq!(out["malformed"], serde_json::json!([]), "{out}");
    let bottles = out["bottles"].as_array().unwrap();
    let ids: Vec<&str> = bottles.iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "2026-11-20_deploy-ready",
            "2026-11-21_weekly-check",
            "2026-11-22_fleet-news"
        ]
    );
    for b in bottles {
        assert_eq!(b["format"], "prototype", "{b}");
        assert_eq!(b["from"], "oracle1");
        assert_eq!(b["priority"], "normal");
    }
    assert_eq!(bottles[0]["type"], "deliverable");
    assert_eq!(bottles[0]["sent"], "2026-11-20T09:30:00.000Z");
    assert_eq!(bottles[1]["subject"], "Weekly check");
    assert_eq!(bottles[1]["type"], "message");
    assert_eq!(bottles[1]["to"], "bob");
    // Read by its id; the unknown type is kept.
    let news = sb
        .datum_in(
            &ws,
            &[
                "bottle",
                "read",
                "2026-11-22_fleet-news",
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    assert_eq!(news["body"], "three new agents\n");
    assert_eq!(news["extra"]["prototype-type"], "newsletter");
    let text = sb
        .datum_in(&ws, &["bottle", "read", "2026-11-20_deploy-ready"])
        .success()
        .stdout();
    assert!(text.contains("Staging is green."), "{text}");
    // And counted in the history.
    let history = sb
        .datum_in(&ws, &["bottle", "history", "--format", "json"])
        .success()
        .json();
    assert_eq!(history["received"], 3, "{history}");
}

/// The prototype's readers, as the test's own small parser: `---` header of
/// `key: value` lines, then the body. Independent of datum's code on purpose.
fn read_as_the_prototype(text: &str) -> (std::collections::BTreeMap<String, String>, String) {
    let rest = text.strip_prefix("---\n").expect("a fenced header");
    let (header, body) = rest.split_once("\n---\n").expect("a closing fence");
    let fields = header
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(": ").expect("key: value");
            (k.to_owned(), v.to_owned())
        })
        .collect();
    (fields, body.trim_start_matches('\n').to_owned())
}

#[test]
fn compat_bottles_are_in_the_prototypes_format_and_never_overwrite() {
    let sb = Sandbox::new();
    let ws = agent(&sb, "alice");
    let mut paths = Vec::new();
    for body in ["first", "second"] {
        let dropped = sb
            .datum_in(
                &ws,
                &[
                    "bottle",
                    "drop",
                    "oracle1",
                    "Status report",
                    body,
                    "--compat",
                    "--format",
                    "json",
                ],
            )
            .success()
            .json();
        paths.push(dropped["path"].as_str().unwrap().to_owned());
    }
    let day = &paths[0]["message-in-a-bottle/for-oracle1/".len()..][..10];
    assert_eq!(
        paths[0],
        format!("message-in-a-bottle/for-oracle1/{day}_status-report.md")
    );
    assert_eq!(
        paths[1],
        format!("message-in-a-bottle/for-oracle1/{day}_status-report-2.md")
    );
    for (path, body) in paths.iter().zip(["first", "second"]) {
        let (fields, got) = read_as_the_prototype(&std::fs::read_to_string(ws.join(path)).unwrap());
        assert_eq!(fields["from"], "alice");
        assert_eq!(fields["to"], "oracle1");
        assert_eq!(fields["type"], "message");
        assert_eq!(fields["subject"], "Status report");
        assert!(fields["date"].starts_with(day), "{fields:?}");
        assert_eq!(got, body);
    }
    // A broadcast too; and datum reads its own compat bottles back.
    sb.datum_in(
        &ws,
        &["bottle", "broadcast", "Hello fleet", "hi", "--compat"],
    )
    .success();
    let ws_b = agent(&sb, "bob");
    let from = ws.join("message-in-a-bottle/for-all");
    let to = ws_b.join("message-in-a-bottle/for-all");
    std::fs::create_dir_all(&to).unwrap();
    for e in std::fs::read_dir(&from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    let out = sb
        .datum_in(&ws_b, &["bottle", "check", "--format", "json"])
        .success()
        .json();
    assert_eq!(out["bottles"][0]["subject"], "Hello fleet", "{out}");
    assert_eq!(out["bottles"][0]["format"], "prototype");
}

#[test]
fn a_workshop_can_be_set_to_write_the_prototypes_format() {
    let sb = Sandbox::new();
    let ws = agent(&sb, "alice");
    let shown = sb
        .datum_in(&ws, &["bottle", "format", "--format", "json"])
        .success()
        .json();
    assert_eq!(shown["format"], "datum", "datum's own format by default");
    sb.datum_in(&ws, &["bottle", "format", "prototype"])
        .success();
    let drop = |subject: &str| {
        sb.datum_in(
            &ws,
            &[
                "bottle", "drop", "oracle1", subject, "body", "--format", "json",
            ],
        )
        .success()
        .json()["path"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let first = drop("Weekly status");
    let second = drop("Weekly status");
    assert!(first.ends_with("_weekly-status.md"), "{first}");
    assert!(
        second.ends_with("_weekly-status-2.md"),
        "no clobbering: {second}"
    );
    let (fields, body) = read_as_the_prototype(&std::fs::read_to_string(ws.join(&first)).unwrap());
    assert_eq!(
        (fields["subject"].as_str(), body.as_str()),
        ("Weekly status", "body")
    );

    sb.datum_in(&ws, &["bottle", "format", "datum"]).success();
    let third = drop("Weekly status");
    assert!(
        !third.contains("_weekly-status"),
        "back to datum's names: {third}"
    );
    let bad = sb.datum_in(&ws, &["bottle", "format", "yaml"]).failure();
    assert!(
        bad.stderr()
            .contains("use datum (the default) or prototype"),
        "{}",
        bad.stderr()
    );
}

/// `datum fleet receive EXTRA… --format json` in `ws`.
fn receive(sb: &Sandbox, ws: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["fleet", "receive"];
    args.extend_from_slice(extra);
    args.extend(["--format", "json"]);
    sb.datum_in(ws, &args).success().json()
}

/// `field` of every object in the JSON array `list`, as text.
fn pluck<'v>(list: &'v Value, field: &str) -> Vec<&'v str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| m[field].as_str().unwrap())
        .collect()
}

/// An I2I message as the prototype's bridge writes it (JSON written here by hand).
fn i2i(kind: &str, id: &str, from: &str, to: &str, body: Value) -> Value {
    serde_json::json!({"v": 2, "type": kind, "id": id, "from": from, "to": to,
        "timestamp": 1_795_000_000_000u64 + id.len() as u64, "body": body})
}

#[test]
fn i2i_files_dropped_in_a_folder_become_bottles_once_and_are_never_changed() {
    let sb = Sandbox::new();
    let ws = agent(&sb, "alice");
    let drop_dir = ws.join("i2i-inbox");
    std::fs::create_dir_all(&drop_dir).unwrap();
    let one = i2i(
        "DISCOVER",
        "d-1",
        "oracle1",
        "alice",
        serde_json::json!({"want": "flux-vm"}),
    );
    let many = serde_json::json!([
        i2i(
            "CLAIM",
            "c-22",
            "oracle1",
            "alice",
            serde_json::json!("TASK-042")
        ),
        i2i(
            "COMPLETE",
            "c-333",
            "oracle1",
            "alice",
            serde_json::json!({"task": "TASK-042", "report": "done"})
        ),
    ]);
    std::fs::write(drop_dir.join("discover.json"), one.to_string()).unwrap();
    std::fs::write(drop_dir.join("tasks.json"), many.to_string()).unwrap();
    std::fs::write(drop_dir.join("garbage.json"), "{ not json").unwrap();
    std::fs::write(
        drop_dir.join("shout.json"),
        i2i("SHOUT", "s-1", "oracle1", "alice", Value::Null).to_string(),
    )
    .unwrap();
    std::fs::write(drop_dir.join("notes.txt"), "not I2I").unwrap();
    let before: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&drop_dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();

    let got = receive(&sb, &ws, &[]);
    assert_eq!(got["ingested"].as_array().unwrap().len(), 3, "{got}");
    assert_eq!(
        pluck(&got["messages"], "type"),
        ["DISCOVER", "CLAIM", "COMPLETE"],
        "{got}"
    );
    assert_eq!(
        got["messages"][0]["body"],
        serde_json::json!({"want": "flux-vm"}),
        "nothing misread"
    );
    assert_eq!(got["messages"][0]["id"], "d-1");
    assert_eq!(
        pluck(&got["malformed"], "source"),
        ["i2i-inbox/garbage.json", "i2i-inbox/shout.json"],
        "{got}"
    );
    assert!(
        got["malformed"][1]["error"]
            .as_str()
            .unwrap()
            .contains("SHOUT"),
        "{got}"
    );

    // Again: the same files, no new bottles; and every file exactly as it was.
    let again = receive(&sb, &ws, &["--all"]);
    assert_eq!(again["ingested"], serde_json::json!([]), "{again}");
    assert_eq!(
        again["messages"].as_array().unwrap().len(),
        3,
        "one bottle per message"
    );
    for (path, bytes) in before {
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{} changed",
            path.display()
        );
    }
    // The bottles are ordinary ones: `bottle check` shows them as DISCOVER → question.
    let bottles = sb
        .datum_in(&ws, &["bottle", "check", "--all", "--format", "json"])
        .success()
        .json();
    assert_eq!(bottles["bottles"][0]["type"], "question", "{bottles}");
}

#[test]
fn i2i_published_by_a_prototype_on_tcp_reaches_the_inbox_through_the_bus() {
    use std::io::{BufRead, Write};
    let sb = Sandbox::new();
    let ws = agent(&sb, "alice");
    sb.install(&ws, "bus");
    let addr = format!("127.0.0.1:{}", datum_test_support::free_port());
    let server = sb.spawn_in(&ws, &["bus", "serve", "--addr", &addr]);
    server.wait_for("bridged both ways", Duration::from_secs(60));
    // The prototype agent publishes on the TCP bus, by hand.
    let stream = std::net::TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut publish = |payload: Value| {
        let frame = serde_json::json!({"op": "pub", "subject": "i2i.alice", "from": "oracle1", "payload": payload});
        writer.write_all(format!("{frame}\n").as_bytes()).unwrap();
        let mut ok = String::new();
        reader.read_line(&mut ok).unwrap();
        assert!(ok.contains("\"bridged\":true"), "{ok}");
    };
    let handoff = i2i(
        "HANDOFF",
        "h-7",
        "oracle1",
        "alice",
        serde_json::json!({"task": "deploy"}),
    );
    publish(handoff.clone());
    publish(Value::String(
        i2i("PING", "p-8", "oracle1", "alice", Value::Null).to_string(),
    ));
    publish(serde_json::json!({"hello": "not I2I"}));

    let got = receive(&sb, &ws, &["--subject", "i2i.>"]);
    assert_eq!(
        pluck(&got["messages"], "type"),
        ["HANDOFF", "PING"],
        "{got}"
    );
    assert_eq!(
        got["messages"][0]["body"],
        serde_json::json!({"task": "deploy"})
    );
    assert_eq!(got["malformed"].as_array().unwrap().len(), 1, "{got}");

    // The same message published again is not a second bottle; a new one is.
    publish(handoff);
    publish(i2i("ACK", "a-9", "oracle1", "alice", Value::Null));
    let next = receive(&sb, &ws, &["--subject", "i2i.>"]);
    assert_eq!(pluck(&next["messages"], "type"), ["ACK"], "{next}");
    assert_eq!(
        next["malformed"],
        serde_json::json!([]),
        "the bus is read from where it was left"
    );
    drop(server);
}

#[test]
fn a_workshop_without_the_drop_folder_grant_still_receives_its_bottles() {
    let sb = Sandbox::new();
    let ws = agent(&sb, "alice");
    sb.datum_in(&ws, &["plugin", "revoke", "mib", "fs-read:i2i-inbox"])
        .success();
    sb.datum_in(&ws, &["bottle", "drop", "alice", "Note", "hi"])
        .success();
    let got = receive(&sb, &ws, &[]);
    assert_eq!(got["messages"].as_array().unwrap().len(), 1, "{got}");
    assert!(
        got["notes"][0]
            .as_str()
            .unwrap()
            .contains("datum plugin grant mib fs-read:i2i-inbox"),
        "{got}"
    );
}
