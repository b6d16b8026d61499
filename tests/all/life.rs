//! The life plugin through the real binary: a journal that is only appended to (and
//! loses nothing when ten processes write at once), and sessions started by `resume`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use datum_test_support::Sandbox;

/// JOURNAL.md as the workshop's HEAD commit has it.
fn committed_journal(ws: &Path) -> String {
    datum_test_support::committed(ws, "JOURNAL.md")
}

#[test]
fn the_journal_is_appended_committed_and_read_back() {
    let sb = Sandbox::new();
    let ws = sb.agent("ada");
    let before = std::fs::read_to_string(ws.join("JOURNAL.md")).unwrap();
    let out = sb
        .datum_in(
            &ws,
            &[
                "journal",
                "add",
                "decision",
                "Use NATS for the fleet bus",
                "--tag",
                "bus",
                "--tag",
                "infra",
            ],
        )
        .success()
        .stdout();
    assert_eq!(
        out.trim(),
        "journal: DECISION Use NATS for the fleet bus #bus #infra (committed)"
    );
    sb.datum_stdin(
        &ws,
        &["journal", "add", "ANALYSIS", "-"],
        "line one\nline two\n",
    )
    .success();
    let after = std::fs::read_to_string(ws.join("JOURNAL.md")).unwrap();
    assert!(
        after.starts_with(&before),
        "nothing already there is rewritten"
    );
    assert_eq!(committed_journal(&ws), after, "every entry is committed");
    assert!(datum_test_support::git_clean(&ws));

    let all = sb
        .datum_in(&ws, &["journal", "--format", "json"])
        .success()
        .json();
    let kinds: Vec<&str> = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"LOG"),
        "the host's own entries read as LOG: {kinds:?}"
    );
    assert_eq!(&kinds[kinds.len() - 2..], ["DECISION", "ANALYSIS"]);
    let last = sb
        .datum_in(&ws, &["journal", "--last", "1", "--format", "json"])
        .success()
        .json();
    assert_eq!(last["entries"][0]["text"], "line one\nline two");
    let tagged = sb
        .datum_in(
            &ws,
            &[
                "journal", "--tag", "bus", "--kind", "decision", "--since", "1h",
            ],
        )
        .success()
        .stdout();
    assert!(
        tagged.contains("DECISION  Use NATS for the fleet bus #bus #infra"),
        "{tagged}"
    );
    let none = sb
        .datum_in(&ws, &["journal", "--kind", "IDEA"])
        .success()
        .stdout();
    assert!(none.contains("No journal entries match"), "{none}");

    sb.datum_in(&ws, &["journal", "add", "not a kind", "x"])
        .failure();
    sb.datum_in(&ws, &["journal", "add", "NOTE", "x", "--tag", "a b"])
        .failure();
    sb.datum_in(&ws, &["journal", "add", "NOTE", "   "])
        .failure();
    assert_eq!(
        std::fs::read_to_string(ws.join("JOURNAL.md")).unwrap(),
        after,
        "refused entries write nothing"
    );
}

#[test]
fn ten_processes_writing_at_once_lose_no_entry() {
    let sb = Sandbox::new();
    let ws = sb.agent("ada");
    let children: Vec<std::process::Child> = (0..10)
        .map(|i| {
            sb.command(
                &ws,
                &["journal", "add", "NOTE", &format!("entry number {i}")],
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(ws.join("JOURNAL.md")).unwrap();
    for i in 0..10 {
        assert_eq!(
            text.matches(&format!("[NOTE] entry number {i}\n")).count(),
            1,
            "entry {i} once:\n{text}"
        );
    }
    assert_eq!(committed_journal(&ws), text, "all ten are in the history");
}

#[test]
fn resume_starts_sessions_and_says_what_to_do_next() {
    let sb = Sandbox::new();
    let ws = sb.agent("ada");
    let lifecycle = |ws: &Path| {
        sb.datum_in(ws, &["status", "--format", "json"])
            .success()
            .json()["agent"]["lifecycle"]
            .clone()
    };
    assert_eq!(lifecycle(&ws), "uninitialized");
    let first = sb.datum_in(&ws, &["resume"]).success().stdout();
    assert_eq!(
        lifecycle(&ws),
        "active",
        "a started session makes the agent active"
    );
    assert!(
        first.starts_with("Session 1 started — the first one"),
        "{first}"
    );
    assert!(first.contains("Open tasks in TASKBOARD.md: 2"), "{first}");
    assert!(
        !first.contains("unread bottle(s)"),
        "nothing unread, nothing suggested: {first}"
    );
    assert!(first.contains("Write the first journal entry"), "{first}");
    let trail = std::fs::read_to_string(ws.join("TRAIL.md")).unwrap();
    assert_eq!(trail.matches(" session 1 start").count(), 1);
    assert!(
        datum_test_support::git_clean(&ws),
        "the session's start is committed"
    );

    sb.datum_in(
        &ws,
        &["bottle", "drop", "ada", "Reminder", "Check the vectors"],
    )
    .success();
    sb.datum_in(
        &ws,
        &["journal", "add", "NOTE", "Halfway through the audit"],
    )
    .success();
    let text = sb.datum_in(&ws, &["status"]).success().stdout();
    assert!(
        text.starts_with("agent     ada (generalist, active)"),
        "{text}"
    );
    let peek = sb
        .datum_in(&ws, &["resume", "--peek", "--format", "json"])
        .success()
        .json();
    assert_eq!(peek["session"], 2);
    assert_eq!(peek["started"], false);
    assert_eq!(peek["unread_bottles"], 1);
    assert_eq!(peek["suggestions"][0]["what"], "Read 1 unread bottle(s)");
    assert_eq!(peek["suggestions"][0]["command"], "datum bottle check");
    assert_eq!(
        peek["recent_journal"].as_array().unwrap().last().unwrap()["text"],
        "Halfway through the audit"
    );
    let second = sb.datum_in(&ws, &["resume"]).success().stdout();
    assert!(
        second.starts_with("Session 2 started — last session 1: "),
        "{second}"
    );
    let trail = std::fs::read_to_string(ws.join("TRAIL.md")).unwrap();
    assert_eq!(
        trail.matches(" session 2 start").count(),
        1,
        "--peek started nothing"
    );
}

/// The ids of an audit's findings, in order.
fn ids(audit: &serde_json::Value) -> Vec<String> {
    audit["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn audit_reports_what_is_wrong_with_the_fix_and_fails_on_errors() {
    let sb = Sandbox::new();
    let ws = sb.agent("ada");
    let reg = datum_test_support::bundled_registry();
    let audit = [
        "audit",
        "--registry",
        datum_test_support::s(&reg),
        "--format",
        "json",
    ];
    let clean = sb.datum_in(&ws, &audit).success().json();
    assert_eq!(clean["title"], "Workshop Audit");
    assert_eq!(ids(&clean), Vec::<String>::new(), "{clean}");
    assert_eq!(clean["summary"]["ok"], true);

    // A grant the manifest never asked for, and a compatible update waiting.
    sb.datum_in(&ws, &["plugin", "grant", "mib", "call:flux-vm"])
        .success();
    let fixtures = datum_test_support::fixture_registry();
    sb.datum_in(
        &ws,
        &[
            "plugin",
            "install",
            "stress@=1.0.0",
            "--registry",
            datum_test_support::s(&fixtures),
        ],
    )
    .success();
    let warned = sb
        .datum_in(
            &ws,
            &[
                "audit",
                "--registry",
                datum_test_support::s(&fixtures),
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    let found = ids(&warned);
    assert!(found.contains(&"grant-wider".to_owned()), "{warned}");
    let update = warned["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "plugin-update")
        .unwrap();
    assert_eq!(
        update["message"],
        "stress 1.0.0 → 1.1.0 is available (compatible)"
    );
    assert_eq!(update["fix"], "datum plugin update stress");

    // Errors: a broken CAPABILITY.toml and an artifact changed in the store.
    std::fs::write(ws.join("CAPABILITY.toml"), "[agent\nname = 1\n").unwrap();
    let lock = std::fs::read_to_string(ws.join("datum.lock")).unwrap();
    let mib = lock
        .split("[[plugin]]")
        .find(|p| p.contains("\"mib\""))
        .unwrap();
    let sha = mib
        .lines()
        .find_map(|l| l.strip_prefix("sha256 = \""))
        .unwrap()
        .trim_end_matches('"');
    let artifact = sb.home().join("store").join(sha).join("plugin.wasm");
    let mut bytes = std::fs::read(&artifact).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&artifact, &bytes).unwrap();
    let md = sb.path("audit.md");
    let broken = sb
        .datum_in(
            &ws,
            &[&audit[..], &["--markdown", datum_test_support::s(&md)]].concat(),
        )
        .failure();
    let report: serde_json::Value = serde_json::from_str(&broken.stdout()).unwrap();
    let errors: Vec<&serde_json::Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .collect();
    let error_ids: Vec<&str> = errors.iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert_eq!(
        error_ids,
        ["capability-invalid", "plugin-unavailable"],
        "{report}"
    );
    assert!(
        errors[1]["message"]
            .as_str()
            .unwrap()
            .contains("changed after install"),
        "{report}"
    );
    assert_eq!(errors[1]["fix"], "datum plugin install mib --force");
    assert!(report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["id"] == "git-uncommitted"));
    let written = std::fs::read_to_string(&md).unwrap();
    assert!(
        written.starts_with("# Workshop Audit")
            && written.contains("| ERROR | plugin-unavailable |"),
        "{written}"
    );
}
