//! The stress fixture misbehaves in every way we know; each time the host reports a
//! typed error naming the plugin, version and call, and keeps working.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use datum_test_support::{copy_dir, fixture_registry, s, Sandbox};

fn workshop_with_stress(sb: &Sandbox, kind: &str) -> PathBuf {
    let reg = fixture_registry();
    let ws = sb.empty_workshop(&format!("stress-{kind}"));
    sb.datum_in(
        &ws,
        &[
            "plugin",
            "install",
            "stress@=1.0.0",
            "--kind",
            kind,
            "--trust-native",
            "--registry",
            s(&reg),
        ],
    )
    .success();
    ws
}

/// Run a misbehaving command; check the JSON error and that the host still works.
fn expect_error(sb: &Sandbox, ws: &Path, command: &str, kind: &str) -> serde_json::Value {
    let r = sb
        .datum_in(ws, &["stress", command, "--format", "json"])
        .failure();
    let v = r.json();
    assert_eq!(v["ok"], false);
    let e = &v["error"];
    assert_eq!(e["kind"], kind, "{v}");
    assert_eq!(e["plugin"], "stress");
    assert_eq!(e["version"], "1.0.0");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains(&format!("stress {command}")),
        "names the call: {v}"
    );
    // The host survived: the next call in the same workshop works.
    assert_eq!(
        sb.datum_in(ws, &["stress", "ok"]).success().stdout().trim(),
        "stress 1.0.0"
    );
    v
}

#[test]
fn a_panic_is_a_typed_error_in_both_kinds() {
    let sb = Sandbox::new();
    for kind in ["wasm", "native"] {
        let ws = workshop_with_stress(&sb, kind);
        let v = expect_error(&sb, &ws, "panic", "panic");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("stress plugin panics on request"),
            "{v}"
        );
        // Text mode: one readable line on stderr with the fix.
        let text = sb.datum_in(&ws, &["stress", "panic"]).failure().stderr();
        assert!(
            text.starts_with("error: stress 1.0.0 failed on `stress panic`"),
            "{text}"
        );
    }
}

#[test]
fn an_infinite_loop_hits_the_time_limit_in_both_kinds() {
    let sb = Sandbox::new();
    for kind in ["wasm", "native"] {
        let ws = workshop_with_stress(&sb, kind);
        // The call alone is timed: it must run for its 1.5 s limit and then stop — a
        // limit of 50 s (or none) would make it take far longer than the bound below.
        let started = std::time::Instant::now();
        sb.datum_in(&ws, &["stress", "hang"]).failure();
        let took = started.elapsed();
        assert!(
            took >= std::time::Duration::from_millis(1_500),
            "{kind}: stopped after {took:?}, before its 1.5 s limit"
        );
        assert!(
            took < std::time::Duration::from_secs(15),
            "{kind}: ran {took:?}; the limit is 1.5 s"
        );
        let v = expect_error(&sb, &ws, "hang", "timeout");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("1500 ms"),
            "{v}"
        );
    }
}

#[test]
fn a_memory_blow_up_is_stopped_by_the_cap() {
    let sb = Sandbox::new();
    let ws = workshop_with_stress(&sb, "wasm");
    let v = expect_error(&sb, &ws, "oom", "out-of-memory");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("32 MiB"),
        "{v}"
    );
}

#[test]
fn oversized_output_is_refused_in_both_kinds() {
    let sb = Sandbox::new();
    for kind in ["wasm", "native"] {
        let ws = workshop_with_stress(&sb, kind);
        let v = expect_error(&sb, &ws, "flood", "output-too-large");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("262144-byte"),
            "{v}"
        );
    }
}

#[test]
fn a_wrong_api_version_is_refused_and_nothing_is_installed() {
    let sb = Sandbox::new();
    let reg = fixture_registry();
    let ws = sb.empty_workshop("api");
    let r = sb
        .datum_in(
            &ws,
            &[
                "plugin",
                "install",
                "stress@=2.0.0",
                "--registry",
                s(&reg),
                "--format",
                "json",
            ],
        )
        .failure();
    let msg = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        msg.contains("needs datum-plugin-api ^2.0")
            && msg.contains(&format!("provides {}", datum_plugin_api::API_VERSION)),
        "{msg}"
    );
    assert!(!ws.join("datum.lock").exists(), "nothing installed");
    assert!(
        !sb.home().join("store").exists()
            || std::fs::read_dir(sb.home().join("store")).unwrap().count() == 0
    );
}

#[test]
fn an_artifact_whose_hash_does_not_match_is_refused_and_nothing_is_installed() {
    let sb = Sandbox::new();
    // A tampered copy of the fixture registry: same index, one byte of the artifact flipped.
    let reg = sb.path("tampered");
    copy_dir(&fixture_registry(), &reg);
    let artifact = reg.join("artifacts/stress/1.0.0/wasm32-unknown-unknown.wasm");
    let mut bytes = std::fs::read(&artifact).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&artifact, bytes).unwrap();

    let ws = sb.empty_workshop("hash");
    let r = sb
        .datum_in(
            &ws,
            &["plugin", "install", "stress@=1.0.0", "--registry", s(&reg)],
        )
        .failure();
    let err = r.stderr();
    assert!(
        err.contains("sha256 mismatch") && err.contains("nothing was installed"),
        "{err}"
    );
    assert!(!ws.join("datum.lock").exists());
    assert!(
        !sb.home().join("store").exists()
            || std::fs::read_dir(sb.home().join("store")).unwrap().count() == 0
    );
    // The host still runs.
    sb.datum_in(&ws, &["status"]).success();
}
