//! Negative tests for promises the README makes: each one breaks the promise on
//! purpose and checks that datum refuses, reports, or times out as it says.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::time::{Duration, Instant};

use datum_test_support::{bundled_registry, copy_dir, fixture_registry, lock_field, s, Sandbox};
use serde_json::Value;

#[test]
fn locked_refuses_a_registry_that_changed_a_published_artifact() {
    let sb = Sandbox::new();
    let reg = sb.path("registry");
    copy_dir(&bundled_registry(), &reg);
    let ws = sb.empty_workshop("ada");
    sb.datum_in(
        &ws,
        &["plugin", "install", "flux-vm", "--registry", s(&reg)],
    )
    .success();
    let pinned = lock_field(&ws, "flux-vm", "sha256");
    // The registry now says the same version has other bytes.
    let index_path = reg.join("index/flux-vm.json");
    let index = std::fs::read_to_string(&index_path).unwrap();
    let changed = "0".repeat(64);
    std::fs::write(&index_path, index.replace(&pinned, &changed)).unwrap();
    // Changed behind the signature's back: refused before anything is read.
    let run = sb
        .datum_in(
            &ws,
            &["plugin", "install", "--locked", "--registry", s(&reg)],
        )
        .failure();
    assert!(
        run.stderr()
            .contains("not the file the signed snapshot lists"),
        "{}",
        run.stderr()
    );
    // Changed and signed again by its owner: --locked still refuses the new bytes.
    datum_test_support::resign(&reg);
    let lock_before = std::fs::read_to_string(ws.join("datum.lock")).unwrap();
    let run = sb
        .datum_in(
            &ws,
            &["plugin", "install", "--locked", "--registry", s(&reg)],
        )
        .failure();
    assert!(
        run.stderr().contains("changed a published artifact") && run.stderr().contains(&pinned),
        "{}",
        run.stderr()
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("datum.lock")).unwrap(),
        lock_before,
        "--locked changed the lock"
    );
}

#[test]
fn a_plugin_whose_api_the_host_no_longer_meets_is_skipped_with_the_fix() {
    let sb = Sandbox::new();
    let ws = sb.agent("ada");
    let lock = std::fs::read_to_string(ws.join("datum.lock")).unwrap();
    // As if flux-vm had been installed by a datum with API 2.
    let api = lock_field(&ws, "flux-vm", "api");
    let needle = "name = \"flux-vm\"";
    let start = lock.find(needle).unwrap();
    let edited = format!(
        "{}{}",
        &lock[..start],
        lock[start..].replacen(&format!("api = \"{api}\""), "api = \"^2\"", 1)
    );
    std::fs::write(ws.join("datum.lock"), edited).unwrap();
    // The host still starts; the other plugin still runs.
    let status = sb
        .datum_in(&ws, &["status", "--format", "json"])
        .failure()
        .json();
    let flux = status["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "flux-vm")
        .unwrap();
    assert_eq!(flux["available"], false);
    assert!(
        flux["problem"]
            .as_str()
            .unwrap()
            .contains("needs datum-plugin-api ^2"),
        "{flux}"
    );
    sb.datum_in(&ws, &["bottle", "check"]).success();
    let run = sb.datum_in(&ws, &["flux", "run", "fibonacci"]).failure();
    assert!(
        run.stderr().contains("datum plugin update flux-vm"),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_tampered_native_artifact_is_not_loaded() {
    let sb = Sandbox::new();
    let ws = sb.empty_workshop("ada");
    sb.datum_in(
        &ws,
        &[
            "plugin",
            "install",
            "flux-vm",
            "--kind",
            "native",
            "--registry",
            s(&bundled_registry()),
        ],
    )
    .success();
    sb.datum_in(&ws, &["flux", "run", "fibonacci"]).success();
    let sha = lock_field(&ws, "flux-vm", "sha256");
    let so = sb
        .home()
        .join("store")
        .join(&sha)
        .join(format!("plugin.{}", std::env::consts::DLL_EXTENSION));
    let mut bytes = std::fs::read(&so).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&so, &bytes).unwrap();
    let run = sb.datum_in(&ws, &["flux", "run", "fibonacci"]).failure();
    assert!(
        run.stderr().contains("changed after install"),
        "{}",
        run.stderr()
    );
}

/// The store is content-addressed: once verified bytes are in it, installing the same
/// digest elsewhere links the entry without reading the registry's copy — and an entry
/// changed since is hashed again and not trusted.
#[test]
fn an_install_from_the_store_links_the_entry_and_a_changed_entry_is_checked_again() {
    let sb = Sandbox::new();
    let reg = sb.path("registry");
    copy_dir(&bundled_registry(), &reg);
    let install = [
        "plugin",
        "install",
        "flux-vm",
        "--kind",
        "wasm",
        "--registry",
        s(&reg),
    ];
    let ada = sb.empty_workshop("ada");
    sb.datum_in(&ada, &install).success();
    let sha = lock_field(&ada, "flux-vm", "sha256");
    // The registry's copy goes bad after the store holds the verified bytes...
    let version_dir = std::fs::read_dir(reg.join("artifacts/flux-vm"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let artifact = version_dir.join("wasm32-unknown-unknown.wasm");
    let len = std::fs::metadata(&artifact).unwrap().len() as usize;
    std::fs::write(&artifact, vec![0u8; len]).unwrap();
    // ...and another workshop still installs the very same bytes, from the store.
    let bob = sb.empty_workshop("bob");
    sb.datum_in(&bob, &install).success();
    assert_eq!(lock_field(&bob, "flux-vm", "sha256"), sha);
    sb.datum_in(&bob, &["flux", "run", "fibonacci"]).success();
    // A stored entry changed since it was verified is hashed again: with the registry's
    // copy bad as well, nothing is installed.
    let stored = sb.home().join("store").join(&sha).join("plugin.wasm");
    let mut bytes = std::fs::read(&stored).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&stored, &bytes).unwrap();
    let cyd = sb.empty_workshop("cyd");
    let run = sb.datum_in(&cyd, &install).failure();
    assert!(run.stderr().contains("sha256 mismatch"), "{}", run.stderr());
    let lock = std::fs::read_to_string(cyd.join("datum.lock")).unwrap_or_default();
    assert!(!lock.contains("flux-vm"), "{lock}");
}

#[test]
fn a_bottle_whose_header_disagrees_with_where_it_lies_is_reported_not_read() {
    let sb = Sandbox::new();
    let ws = sb.agent("ada");
    sb.datum_in(&ws, &["bottle", "drop", "bob", "hello", "body"])
        .success();
    let bob = ws.join("message-in-a-bottle/for-bob");
    let file = std::fs::read_dir(&bob)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // The same bytes moved into ada's inbox: header says `to: bob`.
    let ada = ws.join("message-in-a-bottle/for-ada");
    std::fs::create_dir_all(&ada).unwrap();
    std::fs::rename(&file, ada.join(file.file_name().unwrap())).unwrap();
    let out = sb
        .datum_in(&ws, &["bottle", "check", "--all", "--format", "json"])
        .success()
        .json();
    assert_eq!(out["bottles"].as_array().unwrap().len(), 0, "{out}");
    let malformed = out["malformed"].as_array().unwrap();
    assert_eq!(malformed.len(), 1, "{out}");
    assert!(
        malformed[0]
            .to_string()
            .contains("does not match where it lies"),
        "{out}"
    );
}

#[test]
fn a_keeper_that_accepts_but_never_answers_fails_boot_within_its_timeout() {
    let sb = Sandbox::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // Accept connections and hold them open without a byte of answer.
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            if let Ok((stream, _)) = listener.accept() {
                open.push(stream);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        open.len()
    });
    let ws = sb.path("silent");
    let started = Instant::now();
    let run = sb
        .datum(&[
            "boot",
            "--workshop",
            s(&ws),
            "--no-plugins",
            "--keeper",
            &url,
        ])
        .failure();
    let took = started.elapsed();
    assert!(run.stderr().contains("3 s"), "{}", run.stderr());
    assert!(
        took >= Duration::from_millis(2_900) && took < Duration::from_secs(20),
        "boot gave up after {took:?}; the health check's limit is 3 s"
    );
    assert!(
        !ws.exists(),
        "a workshop was created although the Keeper never answered"
    );
    drop(held);
}

#[test]
fn a_batch_loads_each_plugin_once_counted_in_the_log() {
    let sb = Sandbox::new();
    let ws = sb.agent("ada");
    let call = r#"{"command": "flux run", "args": {"bytecode": "550500000055070000001000"}}"#;
    let check = r#"{"command": "bottle check", "args": {}}"#;
    let input = ws.join("calls.jsonl");
    std::fs::write(
        &input,
        format!("{call}\n{check}\n{call}\n{call}\n{check}\n{call}\n"),
    )
    .unwrap();
    let run = sb.datum_in(&ws, &["-vv", "batch", s(&input)]).success();
    let loads = |plugin: &str| {
        run.stderr()
            .lines()
            .filter(|l| l.contains("plugin loaded") && l.contains(&format!("plugin={plugin}")))
            .count()
    };
    assert_eq!(loads("flux-vm"), 1, "{}", run.stderr());
    assert_eq!(loads("mib"), 1, "{}", run.stderr());
    assert_eq!(run.stdout().lines().count(), 6);
    // One command, one load: the count means what it says.
    let single = sb
        .datum_in(&ws, &["-vv", "flux", "run", "fibonacci"])
        .success();
    let n = single
        .stderr()
        .lines()
        .filter(|l| l.contains("plugin loaded"))
        .count();
    assert_eq!(n, 1, "{}", single.stderr());
}

#[test]
fn the_log_service_reaches_the_host_log_tagged_with_the_plugin() {
    let sb = Sandbox::new();
    let ws = sb.empty_workshop("ada");
    sb.datum_in(
        &ws,
        &[
            "plugin",
            "install",
            "stress@=1.0.0",
            "--registry",
            s(&fixture_registry()),
        ],
    )
    .success();
    let quiet = sb.datum_in(&ws, &["stress", "ok"]).success();
    assert!(
        !quiet.stderr().contains("stress ok was called"),
        "{}",
        quiet.stderr()
    );
    let loud = sb.datum_in(&ws, &["-v", "stress", "ok"]).success();
    let line = loud
        .stderr()
        .lines()
        .find(|l| l.contains("stress ok was called"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no log line: {}", loud.stderr()));
    assert!(
        line.contains("INFO") && line.contains("plugin=stress"),
        "{line}"
    );
    let _: Value = sb
        .datum_in(&ws, &["stress", "ok", "--format", "json"])
        .success()
        .json();
}

/// Signed registries: the key is pinned on first use; then an artifact, an index file,
/// the snapshot, the signature or the key changed — or an older snapshot replayed, or an
/// expired one — is refused with the reason, and nothing reaches the lock.
#[test]
fn a_signed_registry_is_pinned_and_every_tampering_is_refused() {
    let sb = Sandbox::new();
    let copy = |name: &str| {
        let reg = sb.path(name);
        copy_dir(&bundled_registry(), &reg);
        reg
    };
    let install = |ws: &Path, reg: &Path| {
        sb.datum_in(ws, &["plugin", "install", "flux-vm", "--registry", s(reg)])
    };
    let refused = |ws: &Path, reg: &Path, says: &str| {
        let lock = std::fs::read_to_string(ws.join("datum.lock")).unwrap_or_default();
        let run = install(ws, reg).failure();
        assert!(run.stderr().contains(says), "{says}: {}", run.stderr());
        assert_eq!(
            std::fs::read_to_string(ws.join("datum.lock")).unwrap_or_default(),
            lock,
            "{says}: the lock did not change"
        );
    };

    // First use: pinned, shown in the journal, committed beside the lock.
    let reg = copy("good");
    let ws = sb.empty_workshop("ada");
    install(&ws, &reg).success();
    let trust = std::fs::read_to_string(ws.join("registries.toml")).unwrap();
    assert!(
        trust.contains("fingerprint = ") && trust.contains("version = "),
        "{trust}"
    );
    let journal = std::fs::read_to_string(ws.join("JOURNAL.md")).unwrap();
    assert!(journal.contains("trusted registry dir:"), "{journal}");
    assert!(datum_test_support::git_clean(&ws));

    // Each file changed behind the signature's back (a fresh workshop each time).
    let reg = copy("artifact");
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(reg.join("index/flux-vm.json")).unwrap())
            .unwrap();
    let wasm = reg.join(
        index["versions"][0]["artifacts"]["wasm32-unknown-unknown"]["path"]
            .as_str()
            .unwrap(),
    );
    let mut bytes = std::fs::read(&wasm).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&wasm, bytes).unwrap();
    // The registry's artifact is read only when the store lacks those bytes (a store
    // entry is linked, not fetched again: see the test above), so start from a cold one.
    std::fs::remove_dir_all(sb.home().join("store")).unwrap();
    refused(&sb.empty_workshop("a1"), &reg, "sha256");
    assert!(
        !sb.home().join("store").exists()
            || std::fs::read_dir(sb.home().join("store")).unwrap().count() == 0,
        "nothing reached the store"
    );

    let reg = copy("index");
    let text = std::fs::read_to_string(reg.join("index/flux-vm.json")).unwrap();
    std::fs::write(reg.join("index/flux-vm.json"), format!("{text} ")).unwrap();
    refused(
        &sb.empty_workshop("a2"),
        &reg,
        "not the file the signed snapshot lists",
    );

    let reg = copy("snapshot");
    let text = std::fs::read_to_string(reg.join("snapshot.json")).unwrap();
    std::fs::write(
        reg.join("snapshot.json"),
        text.replacen("\"version\": ", "\"version\": 9", 1),
    )
    .unwrap();
    refused(
        &sb.empty_workshop("a3"),
        &reg,
        "was not signed by the registry's key",
    );

    let reg = copy("signature");
    std::fs::write(
        reg.join("snapshot.json.minisig"),
        "untrusted comment: x\nnot a signature\n",
    )
    .unwrap();
    refused(&sb.empty_workshop("a4"), &reg, "not a minisign signature");

    // Another key: the pinned workshop refuses it even though it signs correctly.
    let other = sb.path("keys/other");
    sb.datum(&["registry", "keygen", "--out", s(&other)])
        .success();
    let key = format!("{}.key", other.display());
    let reg = sb.path("good");
    sb.datum(&["registry", "sign", s(&reg), "--key", &key])
        .success();
    refused(&ws, &reg, "now offers key");
    // Rotated by its owner (rotation.json signed by the old key and the new): accepted,
    // the pin moves to the new key, the journal says so.
    let bundled_key = datum_test_support::repo().join("registry/keys/bundled.key");
    sb.datum(&[
        "registry",
        "rotate",
        s(&reg),
        "--old",
        s(&bundled_key),
        "--new",
        &key,
    ])
    .success();
    sb.datum_in(&ws, &["plugin", "install", "mib", "--registry", s(&reg)])
        .success();
    let journal = std::fs::read_to_string(ws.join("JOURNAL.md")).unwrap();
    assert!(journal.contains("rotated its key"), "{journal}");
    // A rotation signed by a stranger's "old" key does not count.
    let third = sb.path("keys/third");
    sb.datum(&["registry", "keygen", "--out", s(&third)])
        .success();
    let third_key = format!("{}.key", third.display());
    sb.datum(&[
        "registry",
        "rotate",
        s(&reg),
        "--old",
        &third_key,
        "--new",
        &third_key,
    ])
    .success();
    refused(&ws, &reg, "no key rotation signed by both");

    // An older snapshot replayed after a newer one was installed from.
    let reg = copy("rollback");
    let (snap, sig) = (reg.join("snapshot.json"), reg.join("snapshot.json.minisig"));
    let (old_snap, old_sig) = (std::fs::read(&snap).unwrap(), std::fs::read(&sig).unwrap());
    datum_test_support::resign(&reg);
    let ws = sb.empty_workshop("b1");
    install(&ws, &reg).success();
    std::fs::write(&snap, old_snap).unwrap();
    std::fs::write(&sig, old_sig).unwrap();
    sb.datum_in(&ws, &["plugin", "remove", "flux-vm"]).success();
    refused(&ws, &reg, "rollback");

    // Expired: signed to expire now, refused once that second has passed.
    let reg = copy("expired");
    sb.datum(&[
        "registry",
        "sign",
        s(&reg),
        "--key",
        s(&bundled_key),
        "--expires-days",
        "0",
    ])
    .success();
    std::thread::sleep(Duration::from_millis(1100));
    refused(&sb.empty_workshop("b2"), &reg, "has expired");

    // Unsigned: only with --allow-unsigned, and the lock says so.
    let reg = copy("unsigned");
    std::fs::remove_file(reg.join("snapshot.json.minisig")).unwrap();
    let ws = sb.empty_workshop("b3");
    refused(&ws, &reg, "--allow-unsigned");
    sb.datum_in(
        &ws,
        &[
            "plugin",
            "install",
            "flux-vm",
            "--registry",
            s(&reg),
            "--allow-unsigned",
        ],
    )
    .success();
    assert!(std::fs::read_to_string(ws.join("datum.lock"))
        .unwrap()
        .contains("unsigned = true"));
}
