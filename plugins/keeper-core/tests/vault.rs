//! The vault on real files: passwords, tampering, swapping, atomic writes, permissions.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::Path;

use keeper_core::{AuditLog, Decision, Kdf, Request, Vault, VaultError};
use serde_json::Value;

const FAST: Kdf = Kdf { iterations: 1_000 };

fn vault_with(path: &Path, secrets: &[(&str, &str)]) -> Vault {
    let mut v = Vault::create(path, b"pw", FAST).unwrap();
    for (k, s) in secrets {
        v.put(k, s.as_bytes()).unwrap();
    }
    v
}

fn unlock(path: &Path, pw: &[u8]) -> Result<Vault, VaultError> {
    Vault::open(path)?.unlock(pw, FAST.iterations)
}

/// Rewrite the file through a JSON edit, fixing the keyless checksum so only the
/// keyed checks can notice.
fn edit(path: &Path, f: impl FnOnce(&mut Value)) {
    let mut file: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    f(&mut file["body"]);
    let body = keeper_core::canonical_json(&file["body"]);
    use sha2::Digest;
    file["checksum"] = Value::from(hex::encode(sha2::Sha256::digest(&body)));
    std::fs::write(path, serde_json::to_vec_pretty(&file).unwrap()).unwrap();
}

#[test]
fn secrets_round_trip_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keeper/vault.json");
    let mut v = vault_with(&path, &[("github-token", "ghp_1"), ("db/main", "pg://x")]);
    assert_eq!(v.names(), vec!["db/main", "github-token"]);
    assert!(v.remove("db/main").unwrap());
    assert!(!v.remove("db/main").unwrap());
    let v = unlock(&path, b"pw").unwrap();
    assert_eq!(
        v.get("github-token").unwrap().as_deref(),
        Some(&b"ghp_1"[..])
    );
    assert_eq!(v.get("db/main").unwrap(), None);
    assert!(
        !std::fs::read_to_string(&path).unwrap().contains("ghp_1"),
        "values are never stored in clear"
    );
}

#[test]
fn a_wrong_password_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.json");
    vault_with(&path, &[("k", "v")]);
    let err = unlock(&path, b"nope").unwrap_err();
    assert!(matches!(err, VaultError::WrongPassword(_)), "{err}");
}

#[test]
fn any_changed_byte_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.json");
    vault_with(&path, &[("k", "value")]);
    let original = std::fs::read(&path).unwrap();
    // Flip each hex digit of the record's ciphertext in turn: every change is caught
    // before the password is asked for.
    let text = String::from_utf8(original.clone()).unwrap();
    let at = text.find("\"ciphertext\"").unwrap() + 15;
    for i in at..at + 8 {
        let mut bytes = original.clone();
        bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
        std::fs::write(&path, &bytes).unwrap();
        let err = Vault::open(&path).unwrap_err();
        assert!(matches!(err, VaultError::Tampered { .. }), "{err}");
    }
    // A tamperer who also fixes the checksum is caught by the keyed MAC.
    std::fs::write(&path, &original).unwrap();
    edit(&path, |body| {
        body["records"]["k"]["updated"] = Value::from("2000-01-01T00:00:00Z")
    });
    Vault::open(&path).expect("the checksum was fixed up");
    let err = unlock(&path, b"pw").unwrap_err();
    assert!(err.to_string().contains("MAC"), "{err}");
}

#[test]
fn swapped_records_do_not_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.json");
    vault_with(&path, &[("a", "alpha"), ("b", "bravo")]);
    edit(&path, |body| {
        let records = body["records"].as_object_mut().unwrap();
        let a = records["a"]["sealed"].clone();
        let b = records["b"]["sealed"].clone();
        records.get_mut("a").unwrap()["sealed"] = b;
        records.get_mut("b").unwrap()["sealed"] = a;
    });
    Vault::open(&path).expect("the checksum was fixed up");
    let err = unlock(&path, b"pw").unwrap_err();
    assert!(matches!(err, VaultError::Tampered { .. }), "{err}");
}

#[test]
fn a_weakened_kdf_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.json");
    vault_with(&path, &[("k", "v")]);
    edit(&path, |body| body["iterations"] = Value::from(1));
    let err = unlock(&path, b"pw").unwrap_err();
    assert!(matches!(err, VaultError::WeakKdf { found: 1, .. }), "{err}");
}

#[test]
fn rotating_the_password_keeps_every_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.json");
    let mut v = vault_with(&path, &[("a", "alpha"), ("b", "bravo")]);
    v.rotate_password(b"new", FAST).unwrap();
    assert!(matches!(
        unlock(&path, b"pw").unwrap_err(),
        VaultError::WrongPassword(_)
    ));
    let v = unlock(&path, b"new").unwrap();
    assert_eq!(v.get("b").unwrap().as_deref(), Some(&b"bravo"[..]));
}

#[test]
fn create_never_overwrites_and_names_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.json");
    let mut v = vault_with(&path, &[]);
    assert!(matches!(
        Vault::create(&path, b"x", FAST).unwrap_err(),
        VaultError::Exists(_)
    ));
    for bad in ["", "../x", "/abs", "sp ace"] {
        assert!(
            matches!(v.put(bad, b"v").unwrap_err(), VaultError::BadName(_)),
            "{bad:?}"
        );
    }
    assert!(matches!(
        Vault::open(&dir.path().join("none.json")).unwrap_err(),
        VaultError::Missing(_)
    ));
}

#[cfg(unix)]
#[test]
fn the_vault_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keeper/vault.json");
    vault_with(&path, &[("k", "v")]);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
}

/// Not a test on its own: the child process of `a_writer_killed_mid_write_leaves_a_whole_vault`.
/// It says on stdout when each write starts and ends, so the parent knows where its
/// kill landed.
#[test]
fn writer_child() {
    let Ok(path) = std::env::var("KEEPER_TEST_WRITER") else {
        return;
    };
    let mut v = unlock(Path::new(&path), b"pw").unwrap();
    for i in 1u64.. {
        println!("writing {i}");
        // Large values make each write take long enough to be interrupted.
        v.put("counter", i.to_string().repeat(20_000).as_bytes())
            .unwrap();
        println!("wrote {i}");
    }
}

#[test]
fn a_writer_killed_mid_write_leaves_a_whole_vault() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.json");
    vault_with(&path, &[("counter", "0")]);
    let mut mid_write = 0;
    for round in 0..40u64 {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "writer_child", "--nocapture", "--test-threads=1"])
            .env("KEEPER_TEST_WRITER", &path)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let out = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if line.starts_with("writing") || line.starts_with("wrote") {
                    let _ = tx.send(line);
                }
            }
        });
        // Wait for the signal that a whole write went through (no fixed sleep)…
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut lines = Vec::new();
        while !lines.iter().any(|l: &String| l.starts_with("wrote")) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            lines.push(
                rx.recv_timeout(left)
                    .expect("the writer never finished a write"),
            );
        }
        // …then kill it a moment later, somewhere in the following writes.
        std::thread::sleep(std::time::Duration::from_millis(round % 7));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        let v = unlock(&path, b"pw").expect("the old or the new vault, never a torn one");
        let value = v.get("counter").unwrap().unwrap();
        assert!(value.iter().all(u8::is_ascii_digit));
        // The last word from the child tells where the kill landed.
        if lines.last().is_some_and(|l| l.starts_with("writing")) {
            mid_write += 1;
            if mid_write >= 3 {
                break;
            }
        }
    }
    assert!(
        mid_write >= 3,
        "only {mid_write} kills landed in the middle of a write; the test proves nothing otherwise"
    );
}

#[test]
fn every_decision_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
    let req = Request {
        agent: "ada".into(),
        key: "k".into(),
        purpose: "p".into(),
        destination: "localhost".into(),
    };
    log.record(
        &req,
        &Decision {
            allowed: true,
            reason: "granted by policy".into(),
            expires: None,
        },
    )
    .unwrap();
    log.record(
        &req,
        &Decision {
            allowed: false,
            reason: "no".into(),
            expires: None,
        },
    )
    .unwrap();
    let entries = log.entries().unwrap();
    assert_eq!(
        entries
            .iter()
            .map(|e| e.decision.as_str())
            .collect::<Vec<_>>(),
        ["granted", "refused"]
    );
    assert_eq!(entries[1].reason, "no");
}

/// Two holders of the same vault (a CLI and a server) writing in turn: each write
/// re-reads the file under the lock, so neither erases the other's secret.
#[test]
fn holders_of_one_vault_never_erase_each_others_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.json");
    let kdf = Kdf { iterations: 1_000 };
    Vault::create(&path, b"pw", kdf).unwrap();
    let open = || Vault::open(&path).unwrap().unlock(b"pw", 1_000).unwrap();
    let (mut cli, mut server) = (open(), open());
    cli.put("from-cli", b"1").unwrap();
    server.put("from-server", b"2").unwrap();
    cli.remove("nothing").unwrap();
    assert_eq!(open().names(), ["from-cli", "from-server"]);
    // Four threads, each with its own handle, 25 secrets each: all 100 kept.
    std::thread::scope(|scope| {
        for t in 0..4 {
            let mut v = open();
            scope.spawn(move || {
                for i in 0..25 {
                    v.put(&format!("t{t}-{i}"), b"x").unwrap();
                }
            });
        }
    });
    assert_eq!(open().names().len(), 102);
    // A holder whose key is stale after a password rotation is refused, not silently wrong.
    server.rotate_password(b"new password", kdf).unwrap();
    assert!(matches!(cli.put("late", b"x"), Err(VaultError::Rekeyed(_))));
    let v = Vault::open(&path)
        .unwrap()
        .unlock(b"new password", 1_000)
        .unwrap();
    assert_eq!(v.names().len(), 102);
    assert_eq!(v.get("from-cli").unwrap().as_deref(), Some(&b"1"[..]));
}
