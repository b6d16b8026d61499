//! The hostile-input suite: every byte from a remote, a cloned workshop, a registry,
//! a symbolic link, a peer or the network treated as an attack, through the real
//! binary. One place, one command: `cargo test -p datum --test all hostile::`.
//!
//! Each test holds a case that was reproduced against datum before it was fixed
//! (issue 10), plus the variants of its class. The property tests at the end are the
//! bounded fuzz targets for the git-tree reader, the lock parser, the bottle parser and
//! the CAPABILITY.toml reader.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use datum_test_support::{bundled_registry, datum_bin, lock_field, s, Keeper, Sandbox};
use serde_json::{json, Value};

/// A workshop with the default plugins (flux-vm, mib) from the bundled registry.
fn agent(sb: &Sandbox, name: &str) -> PathBuf {
    sb.agent(name)
}

/// Every file under `dir`, except inside git's own folders and bare remotes (a fetch
/// stores objects there, which is not a write into the workshop).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let t = e.file_type().unwrap();
            let name = e.file_name();
            if t.is_dir() && (name == ".git" || name.to_string_lossy().ends_with(".git")) {
                continue;
            }
            if t.is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// 1. A bottles remote may not write outside the synced folder.

/// A raw git tree object (`mode name\0oid` entries), bypassing libgit2's own name
/// checks exactly as an attacker's tool would.
fn raw_tree(repo: &git2::Repository, entries: &[(&str, &[u8], git2::Oid)]) -> git2::Oid {
    let mut sorted: Vec<_> = entries.to_vec();
    sorted.sort_by(|a, b| a.1.cmp(b.1));
    let mut bytes = Vec::new();
    for (mode, name, oid) in sorted {
        bytes.extend_from_slice(mode.as_bytes());
        bytes.push(b' ');
        bytes.extend_from_slice(name);
        bytes.push(0);
        bytes.extend_from_slice(oid.as_bytes());
    }
    repo.odb()
        .unwrap()
        .write(git2::ObjectType::Tree, &bytes)
        .unwrap()
}

/// A bare remote whose `sync/message-in-a-bottle` branch holds the entry `name` with
/// `mode` (its content written by the attacker) beside one honest bottle.
fn hostile_remote(remote: &Path, mode: &str, name: &[u8]) -> PathBuf {
    let repo = git2::Repository::init_bare(remote).unwrap();
    let victim = repo.blob(b"pwned").unwrap();
    let entry = match mode {
        // `..` → `..` → `..` → victim.txt: message-in-a-bottle/../../../victim.txt
        "40000" if name == b".." => {
            let leaf = raw_tree(&repo, &[("100644", b"victim.txt", victim)]);
            let up = raw_tree(&repo, &[("40000", b"..", leaf)]);
            raw_tree(&repo, &[("40000", b"..", up)])
        }
        "40000" => {
            let hooks = raw_tree(&repo, &[("100755", b"post-checkout", victim)]);
            raw_tree(&repo, &[("40000", b"hooks", hooks)])
        }
        "160000" => git2::Oid::from_str("1111111111111111111111111111111111111111").unwrap(),
        _ => victim,
    };
    let honest = repo.blob(b"---\nid: x\n---\nhello\n").unwrap();
    let honest_dir = raw_tree(&repo, &[("100644", b"honest.md", honest)]);
    let folder = raw_tree(
        &repo,
        &[(mode, name, entry), ("40000", b"for-ada", honest_dir)],
    );
    let root = raw_tree(&repo, &[("40000", b"message-in-a-bottle", folder)]);
    let tree = repo.find_tree(root).unwrap();
    let sig = git2::Signature::now("mallory", "m@example.invalid").unwrap();
    let commit = repo.commit(None, &sig, &sig, "evil", &tree, &[]).unwrap();
    repo.reference("refs/heads/sync/message-in-a-bottle", commit, true, "evil")
        .unwrap();
    remote.to_owned()
}

#[test]
fn a_bottles_remote_cannot_write_outside_the_folder_and_one_bad_name_writes_nothing() {
    let sb = Sandbox::new();
    let ws = agent(&sb, "ada");
    // Every way a tree entry could become a path outside message-in-a-bottle/.
    let cases: Vec<(&str, &[u8], &str)> = vec![
        ("dotdot chain", b"..", "40000"),
        ("slashes in a name", b"../../../victim.txt", "100644"),
        ("absolute name", b"/tmp/victim.txt", "100644"),
        ("git folder", b".git", "40000"),
        ("git folder, NTFS alias", b".GIT.", "40000"),
        ("git short name", b"GIT~1", "40000"),
        ("backslash", b"..\\victim.txt", "100644"),
        ("control character", b"a\x1b[2Jb.md", "100644"),
        ("symbolic link", b"link.md", "120000"),
        ("submodule", b"sub", "160000"),
    ];
    for (i, (what, name, mode)) in cases.into_iter().enumerate() {
        let remote = hostile_remote(&sb.path(&format!("evil-{i}.git")), mode, name);
        let before = files_under(sb.dir.path());
        let run = sb
            .datum_in(&ws, &["bottle", "sync", "--remote", s(&remote)])
            .failure();
        assert!(
            run.stderr().contains("refusing the remote"),
            "{what}: {}",
            run.stderr()
        );
        // Nothing arrived: not the hostile entry, not even the honest bottle beside it.
        assert!(
            !ws.join("message-in-a-bottle/for-ada/honest.md").exists(),
            "{what}: the honest bottle was written although the tree was refused"
        );
        assert!(!Path::new("/tmp/victim.txt").exists());
        let after = files_under(sb.dir.path());
        // (The store's verification stamp of the plugin that ran is datum's own.)
        let new: Vec<_> = after
            .iter()
            .filter(|p| !before.contains(p) && !p.starts_with(sb.home()))
            .collect();
        assert!(
            new.is_empty(),
            "{what}: a sync that was refused wrote {new:?}"
        );
    }
}

#[test]
fn git_tree_names_are_checked_one_by_one() {
    use datum::workshop::sync::unsafe_tree_name;
    for bad in [
        &b""[..],
        b".",
        b"..",
        b".git",
        b".Git",
        b".git.",
        b"git~1",
        b"GIT~1",
        b"a/b",
        b"a\\b",
        b"a\0b",
        b"a\nb",
        b"\x1b[31m",
        b"x.md.",
        b"x.md ",
        b".hidden",
        b"\xff\xfe",
    ] {
        assert!(
            unsafe_tree_name(bad).is_some(),
            "{:?} passed",
            String::from_utf8_lossy(bad)
        );
    }
    for good in [
        &b"for-ada"[..],
        b"2026-11-27T10-00-00Z-ada-hi-abcd1234.md",
        b"git",
        b"a.b",
    ] {
        assert_eq!(
            unsafe_tree_name(good),
            None,
            "{:?}",
            String::from_utf8_lossy(good)
        );
    }
}

// ---------------------------------------------------------------------------
// 2. datum.lock fields are validated before they become paths.

fn write_lock(ws: &Path, name: &str, sha: &str, kind: &str) {
    std::fs::write(
        ws.join("datum.lock"),
        format!(
            "version = 1\n[[plugin]]\nname = {name:?}\nversion = \"0.1.0\"\nkind = {kind:?}\nsource = \"dir:/nowhere\"\nsha256 = {sha:?}\napi = \"^1\"\ngrants = [\"kv\"]\n"
        ),
    )
    .unwrap();
}

#[test]
fn a_hostile_lock_is_refused_before_anything_is_loaded_or_written() {
    let sb = Sandbox::new();
    let ws = sb.empty_workshop("ada");
    // A "store entry" outside the store holding a native library, as in the report.
    let evil = sb.path("ws3/evil");
    std::fs::create_dir_all(&evil).unwrap();
    std::fs::write(evil.join("plugin.so"), b"\x7fELF not really").unwrap();
    std::fs::write(evil.join("manifest.json"), b"{}").unwrap();
    let traversal = format!("../../{}", "ws3/evil");
    let kv_target = sb.path("x.json");
    let cases = [
        (
            "sha256 as a path",
            "flux-vm".to_owned(),
            traversal,
            "native",
            "sha256",
        ),
        (
            "name as a path",
            "../../../x".to_owned(),
            "ab".repeat(32),
            "wasm",
            "plugin name",
        ),
        (
            "uppercase digest",
            "flux-vm".to_owned(),
            "AB".repeat(32),
            "wasm",
            "lowercase hex",
        ),
        (
            "short digest",
            "flux-vm".to_owned(),
            "abc".to_owned(),
            "wasm",
            "sha256",
        ),
        (
            "unknown kind",
            "flux-vm".to_owned(),
            "ab".repeat(32),
            "elf",
            "kind",
        ),
    ];
    for (what, name, sha, kind, expect) in cases {
        write_lock(&ws, &name, &sha, kind);
        let run = sb.datum_in(&ws, &["status"]).failure();
        assert!(
            run.stderr().contains("datum.lock") && run.stderr().contains(expect),
            "{what}: {}",
            run.stderr()
        );
        let run = sb.datum_in(&ws, &["flux", "run", "fibonacci"]).failure();
        assert!(
            run.stderr().contains("datum.lock"),
            "{what}: {}",
            run.stderr()
        );
    }
    assert!(!kv_target.exists());
    // A grant that leaves the workshop is refused too.
    std::fs::write(
        ws.join("datum.lock"),
        format!("version = 1\n[[plugin]]\nname = \"mib\"\nversion = \"0.1.0\"\nkind = \"wasm\"\nsource = \"dir:/r\"\nsha256 = \"{}\"\napi = \"^1\"\ngrants = [\"fs-write:../../etc\"]\n", "ab".repeat(32)),
    )
    .unwrap();
    let run = sb.datum_in(&ws, &["status"]).failure();
    assert!(run.stderr().contains("grant"), "{}", run.stderr());
}

#[test]
fn a_store_artifact_changed_after_install_is_not_loaded() {
    let sb = Sandbox::new();
    let ws = agent(&sb, "ada");
    sb.datum_in(&ws, &["flux", "run", "fibonacci"]).success();
    let sha = lock_field(&ws, "flux-vm", "sha256");
    let artifact = sb.home().join("store").join(&sha).join("plugin.wasm");
    let original = std::fs::read(&artifact).unwrap();
    // Same size, one byte flipped: only the hash can tell.
    let mut tampered = original.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0xff;
    std::fs::write(&artifact, &tampered).unwrap();
    let run = sb.datum_in(&ws, &["flux", "run", "fibonacci"]).failure();
    assert!(
        run.stderr().contains("changed after install"),
        "{}",
        run.stderr()
    );
    // Put back, it is verified again (the cached check is invalidated) and runs.
    std::fs::write(&artifact, &original).unwrap();
    sb.datum_in(&ws, &["flux", "run", "fibonacci"]).success();
}

/// The compiled-module cache is disk too: garbage, another module's code, links to
/// devices or to elsewhere, and folders where files should be are never run — the
/// plugin is compiled again and answers the same.
#[test]
fn a_hostile_compiled_module_cache_is_never_run() {
    let sb = Sandbox::new();
    let ws = agent(&sb, "ada");
    let expected = sb
        .datum_in(&ws, &["flux", "run", "fibonacci", "--format", "json"])
        .success()
        .json()["stack"]
        .clone();
    let cache = sb.home().join("cache/wasm");
    let mut compiled: Vec<PathBuf> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    // Another plugin's compiled code is the donor: valid for wasmtime, wrong module.
    let sha = lock_field(&ws, "flux-vm", "sha256");
    let (target, others): (Vec<PathBuf>, Vec<PathBuf>) = compiled
        .drain(..)
        .partition(|p| p.file_name().unwrap().to_str().unwrap().starts_with(&sha));
    assert_eq!(target.len(), 1, "{target:?}");
    let donor_path = others
        .first()
        .expect("another plugin's compiled module")
        .clone();
    let donor = std::fs::read(&donor_path).unwrap();
    let compiled = target;
    type Plant<'a> = &'a dyn Fn(&Path);
    let cases: [(&str, Plant<'_>); 5] = [
        ("garbage", &|p| {
            std::fs::write(p, b"\x7fELF not a module").unwrap()
        }),
        ("another module's code", &|p| {
            std::fs::write(p, &donor).unwrap()
        }),
        ("a link to a device", &|p| {
            std::os::unix::fs::symlink("/dev/zero", p).unwrap()
        }),
        ("a link to another module", &|p| {
            std::os::unix::fs::symlink(&donor_path, p).unwrap()
        }),
        ("a folder", &|p| std::fs::create_dir(p).unwrap()),
    ];
    for (what, plant) in cases {
        for file in &compiled {
            let _ = std::fs::remove_file(file);
            let _ = std::fs::remove_dir(file);
            plant(file);
        }
        let run = sb.datum_in(&ws, &["flux", "run", "fibonacci", "--format", "json"]);
        assert_eq!(run.success().json()["stack"], expected, "{what}");
    }
}

// ---------------------------------------------------------------------------
// 3. Symbolic links never lead a host service out of its grant.

#[test]
fn links_in_the_workshop_do_not_lead_plugins_outside() {
    let sb = Sandbox::new();
    let ws = agent(&sb, "ada");
    let outside = sb.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.md"), "TOP SECRET CONTENT").unwrap();

    // A recipient folder that is a link: drop must not create the bottle outside.
    symlink(&outside, ws.join("message-in-a-bottle/for-bob")).unwrap();
    let run = sb
        .datum_in(&ws, &["bottle", "drop", "bob", "hello", "body"])
        .failure();
    assert!(run.stderr().contains("outside"), "{}", run.stderr());
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);

    // A link to another folder of the same workshop leaves the grant all the same.
    symlink("../wiki", ws.join("message-in-a-bottle/for-carol")).unwrap();
    let wiki_before = std::fs::read_dir(ws.join("wiki")).unwrap().count();
    let run = sb
        .datum_in(&ws, &["bottle", "drop", "carol", "hello", "body"])
        .failure();
    assert!(run.stderr().contains("outside"), "{}", run.stderr());
    assert_eq!(
        std::fs::read_dir(ws.join("wiki")).unwrap().count(),
        wiki_before
    );

    // A linked bottle in the inbox is not read or echoed.
    std::fs::create_dir_all(ws.join("message-in-a-bottle/for-ada")).unwrap();
    symlink(
        outside.join("secret.md"),
        ws.join("message-in-a-bottle/for-ada/2026-01-01T00-00-00Z-eve-x-00000000.md"),
    )
    .unwrap();
    let run = sb.datum_in(&ws, &["bottle", "check", "--all", "--format", "json"]);
    assert!(!run.stdout().contains("TOP SECRET"), "{}", run.stdout());
    assert!(!run.stderr().contains("TOP SECRET"), "{}", run.stderr());

    // A linked key-value folder: the read marks are neither read nor written outside.
    sb.datum_in(&ws, &["bottle", "drop", "ada", "note", "to self"])
        .success();
    let id = sb
        .datum_in(&ws, &["bottle", "check", "--format", "json"])
        .json()["bottles"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::remove_dir_all(ws.join(".superagent/kv")).ok();
    symlink(&outside, ws.join(".superagent/kv")).unwrap();
    let run = sb.datum_in(&ws, &["bottle", "read", &id]).failure();
    assert!(run.stderr().contains("outside"), "{}", run.stderr());
    assert!(
        !outside.join("mib.json").exists(),
        "kv written through the link"
    );

    // The host's own appends (JOURNAL.md) do not follow a link out either.
    std::fs::remove_file(ws.join("JOURNAL.md")).unwrap();
    symlink(outside.join("secret.md"), ws.join("JOURNAL.md")).unwrap();
    let _ = sb.datum_in(&ws, &["plugin", "remove", "flux-vm"]);
    assert_eq!(
        std::fs::read_to_string(outside.join("secret.md")).unwrap(),
        "TOP SECRET CONTENT"
    );
}

// ---------------------------------------------------------------------------
// Keeper helpers.

/// An initialised (not yet served) Keeper with `policy`.
fn keeper(sb: &Sandbox, policy: &str) -> Keeper {
    let ws = sb.empty_workshop("keep");
    sb.install(&ws, "keeper");
    let k = Keeper::init(sb, &ws);
    k.set_policy(policy);
    k
}

fn secret_names(sb: &Sandbox, k: &Keeper) -> Vec<String> {
    let out = sb
        .datum_in(
            &k.workshop,
            &["keeper", "list", "--home", s(&k.home), "--format", "json"],
        )
        .success()
        .json();
    out["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn post(url: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = ureq::post(url).config().http_status_as_error(false).build();
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut resp = req.send_json(body).unwrap();
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_json().unwrap_or(Value::Null))
}

// ---------------------------------------------------------------------------
// 4. The Keeper loses no secret to concurrent writers.

#[test]
fn concurrent_writers_and_a_serving_keeper_lose_no_secret() {
    let sb = Sandbox::new();
    let mut k = keeper(&sb, r#"{"grants": []}"#);
    k.serve(&sb);
    let value = sb.path("value");
    std::fs::write(&value, "v").unwrap();
    let (writers, each) = (4, 50);
    let k = &k;
    let value = &value;
    let sb_ref = &sb;
    std::thread::scope(|scope| {
        for w in 0..writers {
            scope.spawn(move || {
                for i in 0..each {
                    k.add_secret(sb_ref, &format!("cli-{w}-{i}"), value)
                        .success();
                }
            });
        }
        // The server takes admin PUTs at the same time.
        scope.spawn(move || {
            for i in 0..each {
                let mut resp = ureq::put(&k.endpoint(&format!("/v1/admin/secrets/http-{i}")))
                    .header("Authorization", &format!("Bearer {}", k.admin))
                    .send_json(json!({ "value": "v" }))
                    .unwrap();
                assert_eq!(resp.status(), 200, "{:?}", resp.body_mut().read_to_string());
            }
        });
    });
    let names = secret_names(&sb, k);
    let expected = writers * each + each;
    assert_eq!(
        names.len(),
        expected,
        "secrets lost: {} of {expected} kept",
        names.len()
    );
    // The running server sees the CLI's secrets too (it reloads a changed vault).
    let mut resp = ureq::get(&k.endpoint("/v1/admin/secrets"))
        .header("Authorization", &format!("Bearer {}", k.admin))
        .call()
        .unwrap();
    let listed: Value = resp.body_mut().read_json().unwrap();
    assert_eq!(listed["secrets"].as_array().unwrap().len(), expected);
}

// ---------------------------------------------------------------------------
// 3c. I2I files dropped for `fleet receive` are read, judged and never followed.

#[test]
fn hostile_i2i_drops_are_reported_and_write_nowhere_else() {
    let sb = Sandbox::new();
    let ws = agent(&sb, "alice");
    let outside = sb.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.json"), "{}").unwrap();
    let drop_dir = ws.join("i2i-inbox");
    std::fs::create_dir_all(&drop_dir).unwrap();
    let message = |from: &str, to: &str, id: &str| json!({"type": "SIGNAL", "id": id, "from": from, "to": to, "timestamp": 1, "body": "x"});
    let files: Vec<(&str, Vec<u8>)> = vec![
        (
            "from-up.json",
            message("../evil", "alice", "a").to_string().into_bytes(),
        ),
        (
            "to-up.json",
            message("oracle1", "../../outside", "b")
                .to_string()
                .into_bytes(),
        ),
        (
            "to-abs.json",
            message("oracle1", "/tmp/x", "c").to_string().into_bytes(),
        ),
        (
            "id-path.json",
            message("oracle1", "alice", "../../../outside/owned")
                .to_string()
                .into_bytes(),
        ),
        (
            "id-control.json",
            message("oracle1", "alice", "\u{1b}[2J\n")
                .to_string()
                .into_bytes(),
        ),
        (
            "deep.json",
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
        ),
        ("huge.json", vec![b' '; 2 * 1024 * 1024]),
        ("binary.json", vec![0xff, 0xfe, 0x00, 0x7b]),
        (
            "fine.json",
            message("oracle1", "alice", "ok-1").to_string().into_bytes(),
        ),
    ];
    for (name, bytes) in &files {
        std::fs::write(drop_dir.join(name), bytes).unwrap();
    }
    symlink(outside.join("secret.json"), drop_dir.join("link.json")).unwrap();
    let before = files_under(&ws);

    let got = sb
        .datum_in(&ws, &["fleet", "receive", "--format", "json"])
        .success()
        .json();
    let ingested: Vec<&str> = got["ingested"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["source"].as_str().unwrap())
        .collect();
    // A hostile id is kept in the bottle's x-i2i-id header, never used as a file name.
    assert_eq!(
        ingested,
        [
            "i2i-inbox/fine.json",
            "i2i-inbox/id-control.json",
            "i2i-inbox/id-path.json"
        ],
        "{got}"
    );
    let reported: BTreeSet<&str> = got["malformed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["source"].as_str())
        .collect();
    // A link is not even listed: the host lists the folder through its capability,
    // which does not follow links out of the workshop.
    assert!(!got.to_string().contains("link.json"), "{got}");
    for name in ["from-up", "to-up", "to-abs", "deep", "huge", "binary"] {
        assert!(
            reported.contains(format!("i2i-inbox/{name}.json").as_str()),
            "{name} not reported: {got}"
        );
    }
    // What reaches a terminal: the hostile id (ESC, a newline) is shown escaped, on
    // its own line, never obeyed.
    let text = sb
        .datum_in(&ws, &["fleet", "receive", "--all"])
        .success()
        .stdout();
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("SIGNAL \\u{1b}[2J\\u{a} from oracle1")),
        "{text}"
    );
    // Only new bottles appeared, all under message-in-a-bottle/; nothing outside the workshop.
    let after = files_under(&ws);
    for new in after.iter().filter(|p| !before.contains(p)) {
        assert!(
            new.starts_with(ws.join("message-in-a-bottle"))
                || new.starts_with(ws.join(".superagent")),
            "wrote {}",
            new.display()
        );
    }
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
}

// ---------------------------------------------------------------------------
// 4b. The prototype's endpoint (`keeper serve --compat`) is no way around /v1's rules.

#[test]
fn hostile_compat_requests_get_no_value_and_never_break_the_keeper() {
    let sb = Sandbox::new();
    let mut k = keeper(
        &sb,
        r#"{"blocked_destinations": ["*pastebin*"], "grants": [{"agent": "ada", "keys": ["db/*"]}]}"#,
    );
    let value = sb.path("value");
    std::fs::write(&value, "pg://hostile-secret").unwrap();
    k.add_secret(&sb, "db/main", &value).success();
    k.serve_with(&sb, &["--compat"]);
    let (_, reg) = post(
        &k.endpoint("/v1/agents"),
        Some(&k.admin),
        json!({"name": "ada"}),
    );
    let ada = reg["token"].as_str().unwrap().to_owned();
    let (_, reg) = post(&k.endpoint("/v1/agents"), None, json!({"name": "mallory"}));
    let mallory = reg["token"].as_str().unwrap().to_owned();
    let long = "x".repeat(100_000);
    let url = k.endpoint("/api/request");
    let cases: Vec<(Option<&str>, Value)> = vec![
        // Another agent's name with one's own token, in every spelling.
        (
            Some(&mallory),
            json!({"agent": "ada", "key": "db/main", "purpose": "p", "destination": "localhost"}),
        ),
        (
            Some(&mallory),
            json!({"agent": "ADA", "key": "db/main", "purpose": "p", "destination": "localhost"}),
        ),
        (
            Some(&mallory),
            json!({"agent": "ada\u{0}", "key": "db/main", "purpose": "p", "destination": "localhost"}),
        ),
        (
            None,
            json!({"agent": "ada", "key": "db/main", "purpose": "p", "destination": "localhost"}),
        ),
        // Blocked or missing destinations, hidden in URLs and case.
        (
            Some(&ada),
            json!({"agent": "ada", "key": "db/main", "purpose": "p", "destination": "HTTPS://PasteBin.com/raw"}),
        ),
        (
            Some(&ada),
            json!({"agent": "ada", "key": "db/main", "purpose": "p", "destination": ""}),
        ),
        (
            Some(&ada),
            json!({"agent": "ada", "key": "db/main", "purpose": "p"}),
        ),
        (
            Some(&ada),
            json!({"agent": "ada", "key": "db/main", "destination": "localhost"}),
        ),
        // Keys that are not granted, or try to look like they are.
        (
            Some(&ada),
            json!({"agent": "ada", "key": "db", "purpose": "p", "destination": "localhost"}),
        ),
        (
            Some(&ada),
            json!({"agent": "ada", "key": "../db/main", "purpose": "p", "destination": "localhost"}),
        ),
        (
            Some(&ada),
            json!({"agent": "ada", "key": "*", "purpose": "p", "destination": "localhost"}),
        ),
        // Wrong types, missing fields, huge fields, not an object.
        (
            Some(&ada),
            json!({"agent": 7, "key": "db/main", "purpose": "p", "destination": "localhost"}),
        ),
        (
            Some(&ada),
            json!({"agent": "ada", "key": ["db/main"], "purpose": "p", "destination": "localhost"}),
        ),
        (
            Some(&ada),
            json!({"key": "db/main", "purpose": "p", "destination": "localhost"}),
        ),
        (
            Some(&ada),
            json!({"agent": "ada", "key": long, "purpose": long, "destination": long}),
        ),
        (Some(&ada), json!(["ada", "db/main"])),
        (Some(&ada), json!(null)),
    ];
    for (token, body) in &cases {
        let (status, answer) = post(&url, *token, body.clone());
        assert!(
            (400..500).contains(&status),
            "{body}: a refusal is a 4xx, never a grant or a crash: {status} {answer}"
        );
        assert!(
            !answer.to_string().contains("hostile-secret"),
            "{body}: {answer}"
        );
    }
    // The Keeper still serves the legitimate request, and the audit log never holds a value.
    let (status, answer) = post(
        &url,
        Some(&ada),
        json!({"agent": "ada", "key": "db/main", "purpose": "p", "destination": "localhost"}),
    );
    assert_eq!(
        (status, answer["value"].as_str()),
        (200, Some("pg://hostile-secret"))
    );
    let audit = std::fs::read_to_string(k.home.join("audit.jsonl")).unwrap();
    assert!(!audit.contains("hostile-secret"));
    assert!(
        audit.lines().all(|l| l.len() < 4096),
        "audited fields stay capped"
    );
}

// ---------------------------------------------------------------------------
// 5. Names the policy grants cannot be registered by just anyone.

#[test]
fn a_granted_agent_name_needs_the_admin_token_or_a_one_time_enrolment_code() {
    let sb = Sandbox::new();
    let mut k = keeper(&sb, r#"{"grants": [{"agent": "ada", "keys": ["db/*"]}]}"#);
    k.serve(&sb);
    let register = k.endpoint("/v1/agents");
    let (status, body) = post(&register, None, json!({ "name": "ada" }));
    assert_eq!(status, 403, "{body}");
    assert!(body.to_string().contains("keeper enroll"), "{body}");
    // A name no grant mentions is still open, but not a malformed one.
    assert_eq!(post(&register, None, json!({ "name": "visitor" })).0, 200);
    for bad in ["-", "0abc", "Ada", "a b", "ada-"] {
        assert_eq!(
            post(&register, None, json!({ "name": bad })).0,
            400,
            "{bad}"
        );
    }
    // An enrolment code works once, through `datum boot --keeper URL --enrol CODE`.
    let code = sb
        .datum_in(
            &k.workshop,
            &[
                "keeper",
                "enroll",
                "ada",
                "--home",
                s(&k.home),
                "--format",
                "json",
            ],
        )
        .success()
        .json()["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = post(
        &register,
        None,
        json!({ "name": "ada", "enrolment": "0".repeat(64) }),
    );
    assert_eq!(status, 403, "a wrong code must not work");
    let url = k.url().to_owned();
    let ada = sb.path("ada");
    sb.datum(&[
        "boot",
        "--workshop",
        s(&ada),
        "--name",
        "ada",
        "--no-plugins",
        "--keeper",
        &url,
        "--enrol",
        &code,
    ])
    .success();
    // The agent's token is owner-only from the moment it exists, and never committed.
    let token_file = ada.join(".superagent/keeper.json");
    assert_eq!(
        std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(std::fs::read_to_string(ada.join(".gitignore"))
        .unwrap()
        .contains("/.superagent/keeper.json"));
    let eve = sb.path("eve-as-ada");
    let run = sb
        .datum(&[
            "boot",
            "--workshop",
            s(&eve),
            "--name",
            "ada",
            "--no-plugins",
            "--keeper",
            &url,
            "--enrol",
            &code,
        ])
        .failure();
    assert!(
        run.stderr().contains("already registered") || run.stderr().contains("enrol"),
        "{}",
        run.stderr()
    );
    // The admin token still registers any name.
    assert_eq!(
        post(&register, Some(&k.admin), json!({ "name": "ada" })).0,
        200
    );
}

// ---------------------------------------------------------------------------
// 6. Unauthenticated floods cannot fill or break the audit log; escapes are shown.

#[test]
fn unauthenticated_floods_are_capped_and_the_audit_tail_still_reads() {
    let sb = Sandbox::new();
    let mut k = keeper(&sb, r#"{"grants": []}"#);
    k.serve(&sb);
    let big = "A".repeat(1_000_000);
    let started = Instant::now();
    let mut limited = 0;
    for i in 0..300 {
        let (status, _) = post(
            &k.endpoint("/v1/secrets/request"),
            Some("not-a-token"),
            json!({ "key": format!("k{i}\u{1b}[2J\u{1b}]0;pwned\u{7}"), "purpose": big, "destination": "x" }),
        );
        assert!(status == 401 || status == 429, "{status}");
        limited += usize::from(status == 429);
    }
    let log = std::fs::metadata(k.home.join("audit.jsonl")).unwrap().len();
    assert!(
        log < 300 * 2048,
        "300 requests of 1 MB made a {log}-byte audit log (fields must be capped)"
    );
    // 300 in a burst is over the limit (100 then 20/s) unless the loop took > 10 s.
    if started.elapsed() < Duration::from_secs(10) {
        assert!(limited > 0, "no request was rate-limited");
    }
    let run = sb
        .datum_in(
            &k.workshop,
            &["keeper", "audit", "--home", s(&k.home), "--limit", "3"],
        )
        .success();
    let text = run.stdout();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "raw escapes: {text:?}"
    );
    assert!(text.contains("\\u{1b}"), "{text}");
}

// ---------------------------------------------------------------------------
// 7. Every read is bounded and only regular files are read.

#[test]
fn endless_and_special_files_are_refused_not_read() {
    let sb = Sandbox::new();
    let ws = agent(&sb, "ada");
    // flux run on /dev/zero and on a FIFO (which would block for ever if opened).
    let run = sb.datum_in(&ws, &["flux", "run", "/dev/zero"]).failure();
    assert!(
        run.stderr().contains("not a regular file"),
        "{}",
        run.stderr()
    );
    let fifo = sb.path("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let started = Instant::now();
    let run = sb.datum_in(&ws, &["flux", "run", s(&fifo)]).failure();
    assert!(
        run.stderr().contains("not a regular file"),
        "{}",
        run.stderr()
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    // batch on an endless line stops with an error (no abort, no memory blow-up).
    let run = sb.datum_in(&ws, &["batch", "/dev/zero"]).failure();
    assert_eq!(run.output.status.code(), Some(1), "{}", run.stderr());
    assert!(run.stderr().contains("longer than"), "{}", run.stderr());
}

/// A copy of the bundled registry that can be tampered with.
fn registry_copy(sb: &Sandbox) -> PathBuf {
    let reg = sb.path("registry");
    datum_test_support::copy_dir(&bundled_registry(), &reg);
    reg
}

fn index_of(reg: &Path, name: &str) -> (PathBuf, Value) {
    let path = reg.join(format!("index/{name}.json"));
    let v = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    (path, v)
}

fn wasm_artifact(index: &mut Value) -> &mut Value {
    let versions = index["versions"].as_array_mut().unwrap();
    versions.last_mut().unwrap()["artifacts"]["wasm32-unknown-unknown"].take();
    &mut index["versions"]
        .as_array_mut()
        .unwrap()
        .last_mut()
        .unwrap()["artifacts"]
}

#[test]
fn registry_artifacts_are_read_no_further_than_the_index_says() {
    let sb = Sandbox::new();
    let ws = sb.empty_workshop("ada");
    let reg = registry_copy(&sb);
    let (path, index) = index_of(&reg, "flux-vm");
    let artifact = index["versions"].as_array().unwrap().last().unwrap()["artifacts"]
        ["wasm32-unknown-unknown"]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    // The artifact replaced by a link to /dev/zero.
    std::fs::remove_file(reg.join(&artifact)).unwrap();
    symlink("/dev/zero", reg.join(&artifact)).unwrap();
    let run = sb
        .datum_in(
            &ws,
            &["plugin", "install", "flux-vm", "--registry", s(&reg)],
        )
        .failure();
    assert!(
        run.stderr().contains("not a regular file"),
        "{}",
        run.stderr()
    );
    // ...by a larger file than the index says: read up to the size, then refused.
    std::fs::remove_file(reg.join(&artifact)).unwrap();
    std::fs::write(reg.join(&artifact), vec![0u8; 64 * 1024 * 1024]).unwrap();
    let run = sb
        .datum_in(
            &ws,
            &["plugin", "install", "flux-vm", "--registry", s(&reg)],
        )
        .failure();
    assert!(run.stderr().contains("limit"), "{}", run.stderr());
    let _ = (path, wasm_artifact);
}

// ---------------------------------------------------------------------------
// 8. One task cannot stall a fleet node; who may publish is the NATS server's call.

/// A workshop with the bus plugin (native, from the trusted bundled registry).
fn bus_agent(sb: &Sandbox, name: &str) -> PathBuf {
    let ws = agent(sb, name);
    sb.install(&ws, "bus");
    ws
}

fn node_ids(sb: &Sandbox, ws: &Path, url: &str) -> Vec<String> {
    let list = sb
        .datum_in(
            ws,
            &[
                "node",
                "list",
                "--nats",
                url,
                "--wait-for",
                "1",
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    list["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `distribute batch` (what evolve sends each generation) checks its programs, stacks and
/// step limit before anything goes on the wire, and says which one is wrong.
#[test]
fn a_batch_is_checked_before_it_is_sent() {
    let sb = Sandbox::new();
    let ws = bus_agent(&sb, "ada");
    for (programs, stacks, steps, says) in [
        ("not json", "[[1]]", "10", "--programs is not JSON"),
        ("{\"a\": 1}", "[[1]]", "10", "a JSON array of hex strings"),
        ("[\"55zz\"]", "[[1]]", "10", "program 0"),
        ("[\"00\"]", "[[99999999999]]", "10", "32-bit integers"),
        ("[\"00\"]", "[\"\\u001b[31m\"]", "10", "32-bit integers"),
        ("[\"00\"]", "[[1]]", "100000001", "100000000"),
    ] {
        let run = sb
            .datum_in(
                &ws,
                &[
                    "distribute",
                    "batch",
                    "--programs",
                    programs,
                    "--stacks",
                    stacks,
                    "--max-steps",
                    steps,
                    "--nats",
                    "nats://127.0.0.1:9",
                ],
            )
            .failure();
        assert!(
            run.stderr().contains(says),
            "{programs} {stacks}: {}",
            run.stderr()
        );
        assert!(!run.stderr().contains('\u{1b}'), "{}", run.stderr());
    }
}

#[test]
fn a_node_busy_with_long_vectors_still_answers_and_wire_limits_are_capped() {
    const WAIT: Duration = Duration::from_secs(120);
    let nats = datum_test_support::NatsServer::start();
    let sb = Sandbox::new();
    let ws = bus_agent(&sb, "ada");
    let node = sb.spawn_in(
        &ws,
        &["node", "start", "--nats", &nats.url, "--name", "busy"],
    );
    node.wait_for("joined", WAIT);
    // 16 loops that never end, each stopped by the step limit: seconds of work in one task.
    let forever: Vec<Value> = (0..16)
        .map(|i| json!({"name": format!("forever-{i}"), "bytecode_hex": "50fdff", "expected_error": "STEP_LIMIT"}))
        .collect();
    let file = sb.path("forever.json");
    std::fs::write(
        &file,
        json!({"version": "2.1-datum", "vectors": forever}).to_string(),
    )
    .unwrap();
    // Above the cap nodes accept, the distributor refuses before sending anything.
    let run = sb
        .datum_in(
            &ws,
            &[
                "distribute",
                "--nats",
                &nats.url,
                "--vectors",
                s(&file),
                "--max-steps",
                "100000001",
            ],
        )
        .failure();
    assert!(run.stderr().contains("100000000"), "{}", run.stderr());
    let mut job = sb.spawn_in(
        &ws,
        &[
            "distribute",
            "--nats",
            &nats.url,
            "--vectors",
            s(&file),
            "--max-steps",
            "100000000",
            "--nodes",
            "1",
            "--chunk",
            "16",
            "--format",
            "json",
        ],
    );
    node.wait_for("task 0", WAIT);
    // While the node works through the task (seconds), it keeps answering pings.
    for _ in 0..3 {
        if job.child.try_wait().unwrap().is_some() {
            break;
        }
        assert_eq!(
            node_ids(&sb, &ws, &nats.url),
            vec!["busy"],
            "the busy node left the fleet"
        );
    }
    let status = job.wait_exit(WAIT);
    assert!(status.success(), "{}", job.output());
    let out: Value = serde_json::from_str(job.output().trim()).unwrap();
    assert_eq!(out["agree"], 16, "{out}");
}

#[test]
fn a_nats_server_with_a_token_admits_only_nodes_that_hold_it() {
    let nats = datum_test_support::NatsServer::start_with(&["--auth", "s3cret-token"]);
    let sb = Sandbox::new();
    let ws = bus_agent(&sb, "ada");
    let run = sb
        .datum_in(&ws, &["node", "list", "--nats", &nats.url])
        .failure();
    assert!(
        run.stderr().to_lowercase().contains("authori"),
        "{}",
        run.stderr()
    );
    let out = std::process::Command::new(datum_bin())
        .args(["node", "list", "--nats", &nats.url, "--format", "json"])
        .current_dir(&ws)
        .env("DATUM_HOME", sb.home())
        .env("DATUM_NATS_TOKEN", "s3cret-token")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------
// 9. An uppercase digest in an index is refused, not half-installed.

#[test]
fn an_uppercase_digest_in_an_index_is_refused_and_search_survives_a_broken_index() {
    let sb = Sandbox::new();
    let ws = sb.empty_workshop("ada");
    let reg = registry_copy(&sb);
    let (path, mut index) = index_of(&reg, "flux-vm");
    for v in index["versions"].as_array_mut().unwrap() {
        for (_, a) in v["artifacts"].as_object_mut().unwrap() {
            let upper = a["sha256"].as_str().unwrap().to_uppercase();
            a["sha256"] = Value::from(upper);
        }
    }
    std::fs::write(&path, index.to_string()).unwrap();
    // Signed as it is (its owner published it so): the digest itself is refused.
    datum_test_support::resign(&reg);
    let run = sb
        .datum_in(
            &ws,
            &["plugin", "install", "flux-vm", "--registry", s(&reg)],
        )
        .failure();
    assert!(run.stderr().contains("lowercase hex"), "{}", run.stderr());
    assert!(!std::fs::read_to_string(ws.join("datum.lock"))
        .unwrap_or_default()
        .contains("flux-vm"));
    // One broken index file: search reports it and still lists the rest.
    std::fs::write(reg.join("index/mib.json"), "{ not json").unwrap();
    let run = sb
        .datum_in(
            &ws,
            &[
                "plugin",
                "search",
                "--registry",
                s(&reg),
                "--format",
                "json",
            ],
        )
        .success();
    let out = run.json();
    let names: Vec<&str> = out["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"keeper"), "{names:?}");
    let skipped: Vec<&str> = out["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        skipped.contains(&"mib") && skipped.contains(&"flux-vm"),
        "{skipped:?}"
    );
}

// ---------------------------------------------------------------------------
// 10. keeper init never takes over a shared folder.

#[test]
fn keeper_init_refuses_an_existing_shared_folder() {
    let sb = Sandbox::new();
    let k = keeper(&sb, r#"{"grants": []}"#);
    let shared = sb.path("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    let init = |extra: &[&str]| {
        let mut args = vec![
            "keeper",
            "init",
            "--home",
            s(&shared),
            "--password-file",
            s(&k.password_file),
        ];
        args.extend_from_slice(extra);
        sb.datum_in(&k.workshop, &args)
    };
    let run = init(&[]).failure();
    assert!(run.stderr().contains("--force"), "{}", run.stderr());
    let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755, "the folder's mode was changed");
    assert!(!shared.join("vault.json").exists());
    init(&["--force"]).success();
    let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    // A new folder is created owner-only.
    let fresh = sb.path("fresh/keeper");
    sb.datum_in(
        &k.workshop,
        &[
            "keeper",
            "init",
            "--home",
            s(&fresh),
            "--password-file",
            s(&k.password_file),
        ],
    )
    .success();
    assert_eq!(
        std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

// ---------------------------------------------------------------------------
// Low: each small, each a test.

#[test]
fn an_agent_role_cannot_inject_keys_and_a_reboot_keeps_the_name() {
    let sb = Sandbox::new();
    let ws = sb.path("ada");
    let role = "the \"best\" one\n[plugins]\ndefault = [\"evil\"]";
    sb.datum(&[
        "boot",
        "--workshop",
        s(&ws),
        "--name",
        "ada",
        "--role",
        role,
        "--no-plugins",
        "--format",
        "json",
    ])
    .success();
    let status = sb
        .datum_in(&ws, &["status", "--format", "json"])
        .success()
        .json();
    assert_eq!(status["agent"]["role"], role);
    let text = std::fs::read_to_string(ws.join(".superagent/agent.toml")).unwrap();
    let parsed: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(parsed["agent"]["role"].as_str(), Some(role), "{text}");
    assert_eq!(
        parsed["plugins"]["default"],
        toml::Value::Array(vec![
            "flux-vm".into(),
            "mib".into(),
            "life".into(),
            "growth".into()
        ]),
        "{text}"
    );
    // Re-boot works, and a different name is refused rather than ignored.
    sb.datum(&["boot", "--workshop", s(&ws), "--no-plugins"])
        .success();
    let run = sb
        .datum(&[
            "boot",
            "--workshop",
            s(&ws),
            "--name",
            "bob",
            "--no-plugins",
        ])
        .failure();
    assert!(run.stderr().contains("keeps its name"), "{}", run.stderr());
}

#[test]
fn the_command_line_holds_up() {
    let sb = Sandbox::new();
    let ws = agent(&sb, "ada");
    // A closed stdout is no panic.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' status | true; '{}' flux examples | head -c 1 >/dev/null",
            datum_bin().display(),
            datum_bin().display()
        ))
        .current_dir(&ws)
        .env("DATUM_HOME", sb.home())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
    // Text after `--` belongs to the plugin, not to the host.
    let run = sb.datum_in(
        &ws,
        &["flux", "run", "fibonacci", "--", "--workshop=/nonexistent"],
    );
    assert!(
        !run.stderr().contains("/nonexistent is not a workshop"),
        "{}",
        run.stderr()
    );
    // A stack word that does not fit 32 bits is refused, not wrapped.
    let run = sb
        .datum_in(
            &ws,
            &["flux", "run", "--bytecode", "00", "--stack", "4294967296"],
        )
        .failure();
    assert!(run.stderr().contains("32-bit"), "{}", run.stderr());
    // Errors are not prefixed twice (clap's own message already starts with "error:").
    let run = sb.datum_in(&ws, &["flux", "run", "--frobnicate"]).failure();
    assert!(
        run.stderr().starts_with("error: unexpected argument"),
        "{}",
        run.stderr()
    );
    assert!(!run.stderr().contains("error: error:"), "{}", run.stderr());
    // `bottle drop all` is not a silent broadcast.
    let run = sb
        .datum_in(&ws, &["bottle", "drop", "all", "hi", "body"])
        .failure();
    assert!(
        run.stderr().contains("bottle broadcast"),
        "{}",
        run.stderr()
    );
    // A missing remote folder is named as such.
    let run = sb
        .datum_in(
            &ws,
            &["bottle", "sync", "--remote", s(&sb.path("nope.git"))],
        )
        .failure();
    assert!(
        run.stderr().contains("no git repository"),
        "{}",
        run.stderr()
    );
    // status exits non-zero when it reports that the workshop needs attention.
    std::fs::remove_file(ws.join("TASKBOARD.md")).unwrap();
    let run = sb.datum_in(&ws, &["status"]).failure();
    assert!(run.stdout().contains("needs attention"), "{}", run.stdout());
}

#[test]
fn files_get_ordinary_modes_and_tokens_stay_private() {
    let sb = Sandbox::new();
    let ws = agent(&sb, "ada");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // The test process's umask decides the group/other read bits; nothing is 0600.
    for f in ["datum.lock", "JOURNAL.md", ".superagent/agent.toml"] {
        assert_ne!(mode(&ws.join(f)) & 0o044, 0, "{f} is private");
    }
    let reg = sb.path("published");
    let lib = datum_test_support::repo()
        .join("target/wasm32-unknown-unknown/plugin/datum_plugin_flux_vm.wasm");
    sb.datum(&["registry", "publish", s(&lib), "--into", s(&reg)])
        .success();
    assert_ne!(mode(&reg.join("index/flux-vm.json")) & 0o044, 0);
    assert_ne!(mode(&reg.join("registry.json")) & 0o044, 0);
    // A relative library name is never looked up on the system library path.
    let run = sb
        .datum(&["registry", "publish", "libc.so.6", "--into", s(&reg)])
        .failure();
    assert!(run.stderr().contains("No such file"), "{}", run.stderr());
}

#[test]
fn bus_history_survives_bytes_that_are_not_utf8() {
    let sb = Sandbox::new();
    let ws = agent(&sb, "ada");
    sb.datum_in(
        &ws,
        &[
            "plugin",
            "install",
            "bus",
            "--registry",
            s(&bundled_registry()),
        ],
    )
    .success();
    sb.datum_in(&ws, &["bus", "publish", "agent.bob", r#"{"n": 1}"#])
        .success();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(ws.join(".superagent/bus.json"))
        .unwrap();
    f.write_all(b"\xff\xfe\x00garbage\n").unwrap();
    drop(f);
    sb.datum_in(&ws, &["bus", "publish", "agent.bob", r#"{"n": 2}"#])
        .success();
    let out = sb
        .datum_in(&ws, &["bus", "history", "--format", "json"])
        .success();
    assert!(
        out.stdout().contains("\"n\": 2") || out.stdout().contains("\"n\":2"),
        "{}",
        out.stdout()
    );
}

// ---------------------------------------------------------------------------
// Fleet (issue 12): task boards, fleet.toml and GitHub's answers are other parties'
// bytes. They are shown escaped, checked before use, and never become paths.

fn fleet_agent(sb: &Sandbox, name: &str) -> PathBuf {
    let ws = agent(sb, name);
    sb.install(&ws, "fleet");
    ws
}

/// A bare board repository whose HEAD tree holds exactly `entries` (raw, so a link or
/// an oversized file gets through as an attacker would send it).
fn hostile_board(sb: &Sandbox, name: &str, entries: &[(&str, &[u8], &[u8])]) -> PathBuf {
    let path = sb.path(name);
    let repo = git2::Repository::init_bare(&path).unwrap();
    let blobs: Vec<(&str, &[u8], git2::Oid)> = entries
        .iter()
        .map(|(mode, file, body)| (*mode, *file, repo.blob(body).unwrap()))
        .collect();
    let tree = repo.find_tree(raw_tree(&repo, &blobs)).unwrap();
    let sig = git2::Signature::now("eve", "eve@example.invalid").unwrap();
    repo.commit(Some("HEAD"), &sig, &sig, "board", &tree, &[])
        .unwrap();
    path
}

// ---------------------------------------------------------------------------
// Growth (issue 13): the bootcamp judges files the agent (or a clone) put in the
// workshop, `workflow learn` reads another agent's datum.lock, and a lock names the
// plugin that asked for an install. All of it is judged, checked or refused.

#[test]
fn bootcamp_evidence_is_judged_never_followed_and_never_fatal() {
    let sb = Sandbox::new();
    let ws = sb.path("ada");
    let registry = bundled_registry();
    sb.datum(&[
        "onboard",
        "--agent",
        "ada",
        "--role",
        "generalist",
        "--workshop",
        s(&ws),
        "--registry",
        s(&registry),
    ])
    .success();
    // The right answer, outside the workshop, reached through a link: not evidence.
    let outside = sb.path("outside.md");
    std::fs::write(&outside, "[104, 101, 108, 108, 111]\n").unwrap();
    symlink(&outside, ws.join("bootcamp/01-hello-world/RESULT.md")).unwrap();
    symlink("/etc/passwd", ws.join("tools/passwd.flux")).unwrap();
    // A tool that never halts, and one whose case line carries terminal escapes.
    std::fs::write(ws.join("tools/loop.flux"), "; case: 1 -> 1\nl: jmp l\n").unwrap();
    std::fs::write(
        ws.join("tools/escape.flux"),
        "; case: 1\u{1b}[2J -> 1\n halt\n",
    )
    .unwrap();
    let run = sb
        .datum_in(&ws, &["onboard", "--progress", "--format", "json"])
        .success();
    let json = run.json();
    assert_eq!(json["exercises"][0]["state"], "todo", "{json}");
    assert_eq!(json["exercises"][3]["state"], "started", "{json}");
    assert_eq!(json["done"], 0);
    let text = sb
        .datum_in(&ws, &["onboard", "--progress"])
        .success()
        .stdout();
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(
        text.contains("[○] Exercise 4: Write your first tool"),
        "{text}"
    );
}

#[test]
fn another_agents_lock_is_checked_before_anything_is_installed_from_it() {
    let sb = Sandbox::new();
    let fixtures = datum_test_support::fixture_registry();
    let fleet = sb.path("fleet");
    std::fs::create_dir_all(&fleet).unwrap();
    let cap: &[u8] =
        b"[agent]\nname = \"mallory\"\n[capabilities]\nmisbehaviour = { confidence = 1.0 }\n";
    let bad_lock = format!(
        "version = 1\n[[plugin]]\nname = \"../evil\"\nversion = \"1.0.0\"\nkind = \"wasm\"\nsha256 = \"{}\"\n[[plugin]]\nname = \"stress\"\nversion = \"1.0.0\"\nkind = \"exe\"\nsha256 = \"XYZ\"\n",
        "ab".repeat(32)
    );
    hostile_board(
        &sb,
        "fleet/mallory",
        &[
            ("100644", b"CAPABILITY.toml", cap),
            ("100644", b"datum.lock", bad_lock.as_bytes()),
        ],
    );
    // A lock that is a link in the tree is not read at all.
    hostile_board(
        &sb,
        "fleet/linky",
        &[
            ("100644", b"CAPABILITY.toml", b"[agent]\nname = \"linky\"\n"),
            ("120000", b"datum.lock", b"/etc/passwd"),
        ],
    );
    // A well-formed pin whose bytes differ from the registry's.
    let wrong = format!(
        "version = 1\n[[plugin]]\nname = \"stress\"\nversion = \"1.0.0\"\nkind = \"wasm\"\nsha256 = \"{}\"\n",
        "cd".repeat(32)
    );
    hostile_board(
        &sb,
        "fleet/trudy",
        &[
            (
                "100644",
                b"CAPABILITY.toml",
                b"[agent]\nname = \"trudy\"\n[capabilities]\nmisbehaviour = { confidence = 1.0 }\n",
            ),
            ("100644", b"datum.lock", wrong.as_bytes()),
        ],
    );

    let ws = fleet_agent(&sb, "ada");
    sb.datum_in(
        &ws,
        &[
            "fleet",
            "add-source",
            "lab",
            "--git-path",
            s(&fleet),
            "--default",
        ],
    )
    .success();
    let lock_before = std::fs::read_to_string(ws.join("datum.lock")).unwrap();
    let pins = sb
        .datum_in(
            &ws,
            &["fleet", "lock", "--agent", "mallory", "--format", "json"],
        )
        .success()
        .json();
    assert_eq!(pins["plugins"], json!([]), "{pins}");
    assert_eq!(pins["warnings"].as_array().unwrap().len(), 2, "{pins}");
    let linky = sb
        .datum_in(&ws, &["fleet", "lock", "--agent", "linky"])
        .failure();
    assert!(
        linky.stderr().contains("has no datum.lock"),
        "{}",
        linky.stderr()
    );
    let learn = [
        "workflow",
        "learn",
        "--abilities",
        "misbehaviour",
        "--registry",
        s(&fixtures),
    ];
    let refused = sb
        .datum_in(&ws, &[&learn[..], &["--from", "mallory"]].concat())
        .failure();
    assert!(
        refused.stderr().contains("pins no plugin"),
        "{}",
        refused.stderr()
    );
    let different = sb
        .datum_in(&ws, &[&learn[..], &["--from", "trudy"]].concat())
        .failure();
    assert!(
        different
            .stderr()
            .contains("published different bytes under one version"),
        "{}",
        different.stderr()
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("datum.lock")).unwrap(),
        lock_before
    );
}

#[test]
fn a_lock_cannot_name_a_path_as_the_plugin_that_installed_another() {
    let sb = Sandbox::new();
    let ws = agent(&sb, "ada");
    let lock = std::fs::read_to_string(ws.join("datum.lock")).unwrap();
    let evil = lock.replacen(
        "[[plugin]]\n",
        "[[plugin]]\nrequested_by = \"../../etc\"\n",
        1,
    );
    std::fs::write(ws.join("datum.lock"), evil).unwrap();
    let run = sb.datum_in(&ws, &["plugin", "list"]).failure();
    assert!(run.stderr().contains("requested_by"), "{}", run.stderr());
}

#[test]
fn a_question_is_echoed_escaped_and_a_save_name_is_never_a_path() {
    let sb = Sandbox::new();
    let ws = agent(&sb, "ada");
    sb.install(&ws, "think");
    let run = sb
        .datum_in(&ws, &["think", "clear \u{1b}[2J the \u{202e}screen"])
        .failure();
    assert!(
        !run.stderr().contains('\u{1b}') && !run.stderr().contains('\u{202e}'),
        "{:?}",
        run.stderr()
    );
    assert!(run.stderr().contains("\\u{1b}"), "{:?}", run.stderr());
    for name in ["../escape", "/etc/x", "a/b", "Big"] {
        let bad = sb
            .datum_in(&ws, &["think", "fibonacci 3", "--save", name])
            .failure();
        assert!(
            bad.stderr().contains("is not a tool name"),
            "{name}: {}",
            bad.stderr()
        );
    }
    assert!(!sb.path("escape.flux").exists());
}

#[test]
fn a_hostile_task_board_is_shown_escaped_and_refused_when_it_is_not_a_plain_file() {
    let sb = Sandbox::new();
    let ws = fleet_agent(&sb, "ada");
    let evil = "- [ ] TASK-001 [HIGH] Clear \u{1b}[2J\u{1b}]8;;http://x\u{7}screen \u{202e}txt.exe — open\n- [~] TASK-002 Two — claimed by \u{1b}[31meve\n";
    let board = hostile_board(
        &sb,
        "evil.git",
        &[("100644", b"TASKBOARD.md", evil.as_bytes())],
    );
    sb.datum_in(&ws, &["fleet", "add-board", "evil", s(&board)])
        .success();
    let list = sb.datum_in(&ws, &["fleet", "tasks", "list"]).success();
    let out = list.stdout();
    assert!(
        !out.contains('\u{1b}') && !out.contains('\u{7}') && !out.contains('\u{202e}'),
        "{out:?}"
    );
    assert!(out.contains("TASK-001 [HIGH] Clear"), "{out}");
    let taken = sb
        .datum_in(&ws, &["fleet", "tasks", "claim", "TASK-002"])
        .failure();
    assert!(!taken.stderr().contains('\u{1b}'), "{:?}", taken.stderr());

    // A TASKBOARD.md that is a symbolic link, or too big to be a board, is refused.
    let link = hostile_board(
        &sb,
        "link.git",
        &[("120000", b"TASKBOARD.md", b"/etc/passwd")],
    );
    let r = sb
        .datum_in(&ws, &["fleet", "add-board", "link", s(&link)])
        .failure();
    assert!(r.stderr().contains("not a regular file"), "{}", r.stderr());
    let huge = vec![b'x'; 5 * 1024 * 1024];
    let big = hostile_board(&sb, "big.git", &[("100644", b"TASKBOARD.md", &huge)]);
    let r = sb
        .datum_in(&ws, &["fleet", "add-board", "big", s(&big)])
        .failure();
    assert!(r.stderr().contains("limit"), "{}", r.stderr());
    // None of them got into the configuration.
    let config = std::fs::read_to_string(ws.join(".superagent/fleet.toml")).unwrap();
    assert!(
        !config.contains("link") && !config.contains("big"),
        "{config}"
    );
}

#[test]
fn a_hostile_fleet_toml_is_an_error_never_a_path() {
    let sb = Sandbox::new();
    let ws = fleet_agent(&sb, "ada");
    let config = ws.join(".superagent/fleet.toml");
    std::fs::write(
        &config,
        "[[boards]]\nname = \"../../../tmp/x\"\nremote = \"/nowhere\"\n",
    )
    .unwrap();
    let r = sb.datum_in(&ws, &["fleet", "tasks", "list"]).failure();
    assert!(r.stderr().contains("not a valid name"), "{}", r.stderr());
    assert!(!sb.path("tmp").exists());
    std::fs::write(&config, "default = 7\n[[sources]\n").unwrap();
    let r = sb.datum_in(&ws, &["fleet", "discover"]).failure();
    assert!(r.stderr().contains("fleet.toml"), "{}", r.stderr());
    // A link out of the workshop is not followed.
    std::fs::remove_file(&config).unwrap();
    symlink("/etc/passwd", &config).unwrap();
    let r = sb.datum_in(&ws, &["fleet", "sources"]).failure();
    assert!(!r.stdout().contains("root:"), "{}", r.stdout());
}

#[test]
fn hostile_github_answers_are_skipped_escaped_or_refused() {
    use datum_test_support::github::{FixtureRepo, GitHubFixture};
    let sb = Sandbox::new();
    let ws = fleet_agent(&sb, "ada");
    let t = 1_795_000_000;
    let repos = vec![
        FixtureRepo::new("../../escape", t).file("CAPABILITY.toml", "[agent]\nname = \"x\"\n"),
        FixtureRepo::new("ansi\u{1b}[2J", t).file("CAPABILITY.toml", "[agent]\nname = \"y\"\n"),
        FixtureRepo {
            description: Some("\u{1b}[31mred".into()),
            ..FixtureRepo::new("fine", t).file(
                "CAPABILITY.toml",
                "[agent]\nname = \"fine\"\nrole = \"\\u001b[2Jwipe\"\n",
            )
        },
    ];
    let fx = GitHubFixture::start("acme", repos, None);
    let run = sb
        .datum_in(
            &ws,
            &["fleet", "discover", "--org", "acme", "--api-url", &fx.url],
        )
        .success();
    let out = run.stdout();
    assert!(!out.contains('\u{1b}'), "{out:?}");
    assert!(
        out.contains("fine") && out.contains("skipped a repository named"),
        "{out}"
    );
    assert!(!out.contains("escape (") && !ws.join("escape").exists());

    // A server that answers garbage: a clear error, not a crash or an empty fleet.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten().take(8) {
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut conn, &mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\nconnection: close\r\n\r\n{garbage!",
            );
        }
    });
    let r = sb
        .datum_in(
            &ws,
            &["fleet", "discover", "--org", "acme", "--api-url", &url],
        )
        .failure();
    assert!(r.stderr().contains("not JSON"), "{}", r.stderr());
}

// ---------------------------------------------------------------------------
// Boot (issue 17): a folder booted in place is someone's, and so is the folder a new
// workshop is staged beside. Their entries are committed as what they are, never
// followed, never waited on.

#[test]
fn a_folder_booted_in_place_commits_links_as_links_and_never_waits_on_a_fifo() {
    let sb = Sandbox::new();
    let secret = sb.path("secret.txt");
    std::fs::write(&secret, "outside secret").unwrap();
    let ws = sb.path("kit");
    std::fs::create_dir_all(&ws).unwrap();
    symlink(&secret, ws.join("leak")).unwrap();
    std::fs::write(ws.join("notes.md"), "mine").unwrap();
    rustix::fs::mkfifoat(rustix::fs::CWD, ws.join("pipe"), 0o600.into()).unwrap();
    let reg = bundled_registry();
    let mut boot = sb.spawn_in(&ws, &["boot", "--registry", s(&reg)]);
    let status = boot.wait_exit(Duration::from_secs(120));
    assert!(status.success(), "{}", boot.output());
    let repo = git2::Repository::open(&ws).unwrap();
    let tree = repo.head().unwrap().peel_to_tree().unwrap();
    let leak = tree.get_path(Path::new("leak")).unwrap();
    assert_eq!(leak.filemode(), 0o120000, "a link is committed as a link");
    let blob = leak.to_object(&repo).unwrap();
    assert_eq!(blob.as_blob().unwrap().content(), s(&secret).as_bytes());
    assert!(
        tree.get_path(Path::new("pipe")).is_err(),
        "a FIFO is not content"
    );
    assert!(tree.get_path(Path::new("notes.md")).is_ok());
}

#[test]
fn a_link_named_like_a_crashed_boots_leftover_is_never_followed() {
    let sb = Sandbox::new();
    let precious = sb.path("precious");
    std::fs::create_dir_all(&precious).unwrap();
    std::fs::write(precious.join("keep.md"), "mine").unwrap();
    // Beside the new workshop `kit`, named as the staging folder of a crashed boot.
    let bait = sb.path(".kit.datum-boot-4000000000-0");
    symlink(&precious, &bait).unwrap();
    let ws = sb.path("kit");
    let reg = bundled_registry();
    sb.datum(&["boot", "--workshop", s(&ws), "--registry", s(&reg)])
        .success();
    assert_eq!(
        std::fs::read_to_string(precious.join("keep.md")).unwrap(),
        "mine"
    );
    assert!(bait.symlink_metadata().is_ok(), "not datum's to remove");
    assert!(ws.join(".superagent/agent.toml").is_file());
}

// ---------------------------------------------------------------------------
// Fuzz targets (bounded property tests): the git-tree reader, the lock parser and
// the bottle parser must never panic, and whatever they accept must be safe.

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn name_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"..".to_vec()),
            Just(b".".to_vec()),
            Just(b".git".to_vec()),
            Just(b"GIT~1".to_vec()),
            "[a-z0-9.-]{1,12}".prop_map(String::into_bytes),
            proptest::collection::vec(
                any::<u8>().prop_filter("git forbids NUL in names", |b| *b != 0),
                1..12
            ),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any tree an attacker can write: what the reader accepts is a set of plain
        /// relative paths; everything else is an error, never a panic.
        #[test]
        fn git_tree_reader_accepts_only_plain_paths(
            entries in proptest::collection::vec((name_bytes(), 0u8..4, name_bytes()), 1..8)
        ) {
            let dir = tempfile::tempdir().unwrap();
            let repo = git2::Repository::init_bare(dir.path()).unwrap();
            let blob = repo.blob(b"x").unwrap();
            let mut top: Vec<(&str, Vec<u8>, git2::Oid)> = Vec::new();
            for (name, kind, inner) in &entries {
                let (mode, oid) = match kind {
                    0 => ("100644", blob),
                    1 => ("120000", blob),
                    2 => ("40000", raw_tree(&repo, &[("100644", inner, blob)])),
                    _ => ("100755", blob),
                };
                if top.iter().all(|(_, n, _)| n != name) {
                    top.push((mode, name.clone(), oid));
                }
            }
            let refs: Vec<(&str, &[u8], git2::Oid)> = top.iter().map(|(m, n, o)| (*m, n.as_slice(), *o)).collect();
            let folder = raw_tree(&repo, &refs);
            let root = raw_tree(&repo, &[("40000", b"box", folder)]);
            let tree = repo.find_tree(root).unwrap();
            if let Ok(files) = datum::workshop::sync::files_in_tree(&repo, &tree, "box") {
                for path in files.keys() {
                    for part in path.split('/') {
                        prop_assert!(datum::workshop::sync::unsafe_tree_name(part.as_bytes()).is_none(), "{path}");
                    }
                    let p = Path::new(path);
                    prop_assert!(p.components().all(|c| matches!(c, std::path::Component::Normal(_))), "{path}");
                }
            }
        }

        /// A plugin's host-service requests are attacker-controlled bytes: any request —
        /// garbage, a known service with wrong types, paths that try to leave — is
        /// answered with a well-formed reply, never a panic, and nothing is written
        /// outside the granted folder.
        #[test]
        fn service_requests_from_a_plugin_are_answered_never_obeyed_blindly(
            service in prop_oneof![
                proptest::sample::select(datum_plugin_api::ServiceCall::NAMES.to_vec()).prop_map(str::to_owned),
                "[a-z.]{0,12}",
            ],
            path in prop_oneof![
                Just("../escape".to_owned()),
                Just("/etc/passwd".to_owned()),
                Just("notes/../../x".to_owned()),
                Just("notes\\..\\x".to_owned()),
                "[a-z./]{0,12}",
            ],
            noise in ".{0,24}",
            number in any::<i64>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let ws = dir.path().join("ws");
            std::fs::create_dir_all(ws.join("notes")).unwrap();
            let caller = datum::runtime::services::Caller {
                plugin: "probe".into(),
                version: "0.1.0".into(),
                grants: ["kv", "fs-write:notes", "fs-read:notes", "git:notes"]
                    .iter().map(|g| g.parse().unwrap()).collect(),
                workshop: ws.clone(),
                runtime: std::sync::Weak::new(),
                depth: 0,
            };
            for request in [
                json!({"service": service, "args": {"path": path, "contents": noise, "key": noise, "line": "", "ms": 0, "limit": number, "message": noise}}).to_string(),
                json!({"service": service, "args": {"path": number, "contents": [1], "key": {}}}).to_string(),
                json!({"service": service, "args": noise}).to_string(),
                format!("{{\"service\": {service:?}, \"args\": {noise}"),
                noise.clone(),
            ] {
                let reply: Value = serde_json::from_str(&caller.handle(&request)).unwrap();
                prop_assert!(reply["ok"].is_boolean(), "{reply}");
                if reply["ok"] == false {
                    prop_assert!(reply["error"]["message"].is_string(), "{reply}");
                }
            }
            // Nothing appeared beside the workshop.
            let beside: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
            prop_assert_eq!(beside.len(), 1);
        }

        /// Grant strings come from registries, locks and the command line: whatever
        /// parses has a path scope inside the workshop, prints back to itself, and
        /// never allows a path that leaves.
        #[test]
        fn grants_that_parse_stay_inside_the_workshop(
            text in prop_oneof![
                "(fs-read|fs-write|git):[a-z./\\\\:]{0,10}",
                "(call|install|secrets|kv|net):.{0,8}",
                ".{0,16}",
            ],
            target in "[a-z./]{0,12}",
        ) {
            if let Ok(grant) = text.parse::<datum_plugin_api::Grant>() {
                let shown = grant.to_string();
                prop_assert_eq!(shown.parse::<datum_plugin_api::Grant>().unwrap(), grant.clone());
                if let Some(scope) = grant.path_scope() {
                    prop_assert!(!scope.split('/').any(|p| p == ".."), "{shown}");
                    prop_assert!(!scope.starts_with('/') && !scope.contains('\\'), "{shown}");
                }
                if target.split('/').any(|p| p == "..") || target.starts_with('/') {
                    prop_assert!(!grant.allows(grant.kind(), Some(&target)), "{shown} allowed {target}");
                }
            }
        }

        /// Arbitrary text and mutations of a valid lock: parse never panics, and every
        /// lock it accepts has names, digests and grants that are safe to use.
        #[test]
        fn lock_parser_accepts_only_safe_fields(
            name in "[a-z./-]{0,12}|\\.\\./[a-z]{1,5}",
            sha in "[0-9a-fA-F./]{0,70}",
            grant in "(kv|fs-read:[a-z./]{0,8}|call:[a-z*]{0,5}|[a-z:]{0,8})",
            noise in ".{0,40}",
        ) {
            let text = format!(
                "version = 1\n[[plugin]]\nname = {name:?}\nversion = \"0.1.0\"\nkind = \"wasm\"\nsource = \"dir:/r\"\nsha256 = {sha:?}\napi = \"^1\"\ngrants = [{grant:?}]\n"
            );
            for candidate in [text.clone(), format!("{text}{noise}"), noise.clone()] {
                if let Ok(lock) = datum::workshop::Lock::parse(&candidate, "datum.lock") {
                    for p in &lock.plugins {
                        prop_assert!(datum_plugin_api::valid_name(&p.name));
                        prop_assert!(datum::store::is_sha256(&p.sha256));
                        for g in &p.grants {
                            prop_assert!(!g.to_string().contains(".."), "{g}");
                        }
                    }
                }
            }
        }

        /// Other agents' CAPABILITY.toml: any bytes are read or refused, never a panic;
        /// what is accepted has printable names, and every warning prints safely.
        #[test]
        fn capability_files_are_read_or_refused(
            raw in proptest::collection::vec(any::<u8>(), 0..300),
            entries in proptest::collection::vec(("[a-z\u{1b}\u{202e}-]{1,8}", ".{0,12}"), 0..6),
        ) {
            let mut text = String::from("[agent]\nname = \"eve\"\n[capabilities]\n");
            for (name, value) in &entries {
                // Quoted by the TOML serializer, so escapes reach the reader as characters.
                let key = toml::Value::String(name.clone()).to_string();
                let val = toml::Value::String(value.clone()).to_string();
                text.push_str(&format!("{key} = {{ confidence = 0.5, role = {val} }}\n"));
            }
            for candidate in [text, String::from_utf8_lossy(&raw).into_owned()] {
                if let Ok(file) = capability::CapabilityFile::parse(&candidate) {
                    let (profile, warnings) = file.profile();
                    for name in profile.capabilities.keys() {
                        prop_assert!(!name.chars().any(char::is_control), "{name:?}");
                    }
                    for w in warnings {
                        prop_assert!(!w.to_string().chars().any(char::is_control));
                    }
                }
            }
        }

        /// Bottles from peers: any bytes parse to a bottle or an error, never a panic,
        /// and an accepted bottle's addressing fields are plain names.
        #[test]
        fn bottle_parser_never_panics(
            header in proptest::collection::vec("[a-z-]{1,8}: .{0,20}", 0..8),
            body in ".{0,80}",
            raw in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let text = format!("---\n{}\n---\n{body}", header.join("\n"));
            for candidate in [text, String::from_utf8_lossy(&raw).into_owned()] {
                if let Ok(b) = datum_plugin_mib::bottle::Bottle::parse(&candidate) {
                    prop_assert!(!b.to.contains('/') && !b.from.contains('/'));
                    prop_assert!(!b.id.contains('/') && !b.id.contains(".."));
                }
            }
        }

        /// The prototype's bottles are read leniently, which is where a hostile peer
        /// would aim: any header (fenced or not, CRLF, quotes, odd keys, any dates),
        /// any file name and folder — read or reported, never a panic; what is read
        /// has agent names for sender and recipient, an id that is a plain file name,
        /// the recipient of the folder it lies in, and no control character in its
        /// subject or extra fields.
        #[test]
        fn prototype_bottles_are_read_or_refused_never_trusted(
            header in proptest::collection::vec(
                prop_oneof![
                    "(from|to|From|TO|subject|type|date|priority|reply-to|x)(: |:)(\"|')?[a-zA-Z0-9 ./:+\\-]{0,20}",
                    "(from|to|subject): (\\.\\./|/etc|all|bob|\u{1b}\\[2J|\u{202e})[a-z]{0,5}",
                    "date: (20[0-9]{2}-[01][0-9]-[0-3][0-9])([T ][0-9]{2}:[0-9]{2}(:[0-9]{2})?)?(Z|[+-][0-9]{2}:[0-9]{2})?",
                    ".{0,20}",
                ],
                0..8,
            ),
            fenced in any::<bool>(),
            crlf in any::<bool>(),
            name in prop_oneof![
                "20[0-9]{2}-[01][0-9]-[0-3][0-9]_[a-z-]{1,12}\\.md",
                "(\\.\\./|/|-)?[a-zA-Z0-9_./-]{0,16}(\\.md)?",
            ],
            folder in "(for-)?(bob|all|\\.\\.|Bob|)",
            body in ".{0,40}",
        ) {
            let lines = header.join("\n");
            let mut text = if fenced { format!("---\n{lines}\n---\n\n{body}") } else { format!("{lines}\n\n{body}") };
            if crlf {
                text = text.replace('\n', "\r\n");
            }
            if let Ok(b) = datum_plugin_mib::bottle::Bottle::read_file(&text, &name, &folder) {
                prop_assert!(datum_plugin_api::valid_name(&b.from), "{b:?}");
                prop_assert!(b.to == "all" || datum_plugin_api::valid_name(&b.to), "{b:?}");
                prop_assert_eq!(format!("for-{}", b.to), folder.clone());
                prop_assert_eq!(format!("{}.md", b.id), name.clone());
                prop_assert!(!b.id.contains('/') && !b.id.starts_with('-') && !b.id.contains(".."), "{b:?}");
                prop_assert!(!b.subject.chars().any(char::is_control), "{b:?}");
                for v in b.extra.values() {
                    prop_assert!(!v.chars().any(char::is_control), "{b:?}");
                }
            }
        }
    }
}

/// The authoring kit reads an author's crate: a name that is a path, a folder that is a
/// file, a malformed Cargo.toml, unknown kinds, a missing or invalid manifest — each is
/// refused naming the fix, before cargo runs.
#[test]
fn a_broken_plugin_crate_is_refused_before_anything_builds() {
    let sb = Sandbox::new();
    let work = sb.path("work");
    std::fs::create_dir_all(&work).unwrap();
    for name in ["../escape", "Hello", "a/b", "x y", "é"] {
        let r = sb.datum_in(&work, &["plugin", "new", name]).failure();
        assert!(
            r.stderr().contains("not a plugin name"),
            "{name}: {}",
            r.stderr()
        );
    }
    assert!(!sb.path("escape").exists());
    std::fs::write(work.join("file"), "x").unwrap();
    let r = sb
        .datum_in(&work, &["plugin", "new", "ok", "--dir", "file"])
        .failure();
    assert!(r.stderr().contains("file"), "{}", r.stderr());
    let r = sb
        .datum_in(
            &work,
            &["plugin", "new", "ok", "--api-path", "/nonexistent"],
        )
        .failure();
    assert!(
        r.stderr().contains("no datum-plugin-api crate there"),
        "{}",
        r.stderr()
    );

    let krate = work.join("crate");
    std::fs::create_dir_all(&krate).unwrap();
    for (cargo, manifest, says) in [
        ("[package", None, "is malformed"),
        ("[lib]\n", None, "has no [package]"),
        (
            "[package]\nname = \"datum-plugin-x\"\nversion = \"0.1.0\"\n[package.metadata.datum]\nkinds = [\"jar\"]\n",
            None,
            "kinds may hold",
        ),
        (
            "[package]\nname = \"datum-plugin-x\"\nversion = \"0.1.0\"\n",
            Some("api = \"^1.5\"\n[[permissions]]\nkind = \"kv\"\nreason = \" \"\n"),
            "manifest is valid ... FAILED",
        ),
    ] {
        std::fs::write(krate.join("Cargo.toml"), cargo).unwrap();
        match manifest {
            Some(m) => std::fs::write(krate.join("datum-plugin.toml"), m).unwrap(),
            None => {
                let _ = std::fs::remove_file(krate.join("datum-plugin.toml"));
            }
        }
        let r = sb.datum_in(&krate, &["plugin", "test"]).failure();
        let all = format!("{}{}", r.stdout(), r.stderr());
        assert!(all.contains(says), "{cargo}: {all}");
        assert!(!all.contains("Compiling"), "nothing was built: {all}");
    }
}

/// A registry on the web is a stranger: a missing registry.json, a snapshot that is not
/// JSON, one naming paths outside the index, an index whose artifact path climbs out —
/// each refused with the reason, nothing written outside the mirror.
#[test]
fn a_hostile_web_registry_is_refused_and_confined() {
    use datum_test_support::web::WebServer;
    let sb = Sandbox::new();
    let ws = agent(&sb, "ada");
    let served = sb.path("served");
    std::fs::create_dir_all(served.join("index")).unwrap();
    let web = WebServer::start(&served);
    let install = |what: &str| {
        sb.datum_in(
            &ws,
            &[
                "plugin",
                "install",
                what,
                "--registry",
                &web.url,
                "--allow-unsigned",
            ],
        )
        .failure()
        .stderr()
    };
    assert!(install("x").contains("HTTP 404"), "no registry.json");
    std::fs::write(served.join("registry.json"), r#"{"name": "evil"}"#).unwrap();
    std::fs::write(served.join("snapshot.json"), "\u{1b}[31mnot json").unwrap();
    let e = install("x");
    assert!(
        e.contains("snapshot.json is malformed") && !e.contains('\u{1b}'),
        "{e}"
    );
    // Paths that are not index files of valid names are never fetched.
    let index = r#"{"name": "x", "versions": [{"version": "1.0.0", "manifest": {"name": "x", "version": "1.0.0", "api": "^1.0"}, "artifacts": {"wasm32-unknown-unknown": {"path": "../../../../tmp/evil.wasm", "size": 1, "sha256": "0000000000000000000000000000000000000000000000000000000000000000"}}}]}"#;
    std::fs::write(served.join("index/x.json"), index).unwrap();
    let sha = |b: &[u8]| {
        use sha2::Digest;
        sha2::Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    };
    let snapshot = serde_json::json!({
        "registry": "evil", "version": 1,
        "files": {
            "registry.json": sha(br#"{"name": "evil"}"#),
            "index/x.json": sha(index.as_bytes()),
            "index/../../../../tmp/climb.json": sha(b"x"),
        }
    });
    std::fs::write(served.join("snapshot.json"), snapshot.to_string()).unwrap();
    let e = install("x");
    assert!(e.contains("escapes the registry"), "{e}");
    assert_eq!(web.count("/index/../../../../tmp/climb.json", 404), 0);
    assert_eq!(web.count("/index/../../../../tmp/climb.json", 200), 0);
    assert!(!std::path::Path::new("/tmp/evil.wasm").exists());
}

/// registries.toml is a workshop file a clone controls: malformed, or pinning a key
/// that is not a key, it stops the install with the fix — it never unpins silently.
#[test]
fn a_hostile_registries_toml_stops_installs_with_the_fix() {
    let sb = Sandbox::new();
    let ws = sb.empty_workshop("ada");
    // A copy: the registry beside the binary is checked against the compiled-in key,
    // whatever the workshop pinned.
    let reg = registry_copy(&sb);
    let source = format!("dir:{}", std::fs::canonicalize(&reg).unwrap().display());
    for (text, says) in [
        ("[[registry]\n\u{1b}[31m".to_owned(), "git checkout -- registries.toml"),
        (
            format!("[[registry]]\nsource = \"{source}\"\nkey = \"not a key\"\nfingerprint = \"X\"\nversion = 1\n"),
            "now offers key",
        ),
    ] {
        std::fs::write(ws.join("registries.toml"), &text).unwrap();
        let run = sb
            .datum_in(&ws, &["plugin", "install", "flux-vm", "--registry", s(&reg)])
            .failure();
        assert!(run.stderr().contains(says), "{says}: {}", run.stderr());
        assert!(!run.stderr().contains('\u{1b}'), "{}", run.stderr());
        assert!(!std::fs::read_to_string(ws.join("datum.lock"))
            .unwrap_or_default()
            .contains("flux-vm"));
    }
}
