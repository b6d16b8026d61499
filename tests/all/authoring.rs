//! The authoring kit as a third-party author meets it: `datum plugin new` outside any
//! repository, `cargo test`, `datum plugin test` (golden examples through the real
//! loaders, probes), a broken example caught, `datum plugin pack`, and the packed
//! plugin installed and run in a fresh workshop.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use datum_test_support::{repo, s, Sandbox};

/// Builds share one target folder, so only the first test run on a machine is cold.
fn target_dir() -> PathBuf {
    repo().join("target/authoring")
}

fn datum(sb: &Sandbox, cwd: &Path, args: &[&str]) -> datum_test_support::Run {
    let target = target_dir();
    sb.datum_env(cwd, args, &[("CARGO_TARGET_DIR", &target)])
}

#[test]
fn an_author_goes_from_plugin_new_to_an_installed_plugin() {
    let sb = Sandbox::new();
    let outside = sb.path("work");
    std::fs::create_dir_all(&outside).unwrap();
    let api = repo().join("plugin-api");

    let refused = sb
        .datum_in(&outside, &["plugin", "new", "Hello World"])
        .failure();
    assert!(
        refused.stderr().contains("not a plugin name"),
        "{}",
        refused.stderr()
    );

    let made = sb
        .datum_in(
            &outside,
            &[
                "plugin",
                "new",
                "hello",
                "--kind",
                "both",
                "--api-path",
                s(&api),
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    let dir = outside.join("hello");
    assert_eq!(made["dir"], "hello");
    for f in [
        "Cargo.toml",
        "datum-plugin.toml",
        "src/lib.rs",
        "README.md",
        "Cargo.lock",
    ] {
        assert!(dir.join(f).is_file(), "{f} was written");
    }
    let again = sb.datum_in(&outside, &["plugin", "new", "hello"]).failure();
    assert!(
        again.stderr().contains("is not empty"),
        "{}",
        again.stderr()
    );

    // The crate's own tests pass as written.
    let cargo = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
        .args(["test", "--quiet"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap();
    assert!(
        cargo.status.success(),
        "cargo test: {}",
        String::from_utf8_lossy(&cargo.stderr)
    );

    // Both builds, through the real loaders: golden example, unknown command, no grants.
    let report = datum(&sb, &dir, &["plugin", "test", "--format", "json"])
        .success()
        .json();
    assert_eq!(report["failed"], 0, "{report}");
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for kind in ["wasm", "native"] {
        for check in [
            "builds and loads",
            "installs with its grants",
            "example `datum hello --who ada`",
            "an unknown command is refused cleanly",
            "without grants, calls are denied cleanly",
        ] {
            let want = format!("{kind}: {check}");
            assert!(names.contains(&want.as_str()), "{want} in {names:?}");
        }
        let within = format!("{kind}: output within limits (largest reply 1 of 64 KiB)");
        assert!(names.contains(&within.as_str()), "{within} in {names:?}");
    }

    // An example whose output no longer matches fails the run, with both texts.
    let manifest = dir.join("datum-plugin.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("hello, ada (1)", "hello, ada (2)")).unwrap();
    let broken = datum(&sb, &dir, &["plugin", "test", "--kind", "wasm"]).failure();
    let out = broken.stdout();
    assert!(
        out.contains("check wasm: example `datum hello --who ada` ... FAILED"),
        "{out}"
    );
    assert!(
        out.contains("hello, ada (2)") && out.contains("hello, ada (1)"),
        "{out}"
    );
    assert!(out.contains("test result: FAILED. "), "{out}");

    // An example whose reply outgrows the manifest's output limit is named, with the
    // size and the limit.
    let long = "a".repeat(1500);
    std::fs::write(
        &manifest,
        text.replace("max_output_kb = 64", "max_output_kb = 1")
            .replace("--who ada", &format!("--who {long}"))
            .replace("hello, ada (1)", &format!("hello, {long} (1)")),
    )
    .unwrap();
    let big = datum(
        &sb,
        &dir,
        &["plugin", "test", "--kind", "wasm", "--format", "json"],
    )
    .failure()
    .json();
    let probe = big["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["name"]
                .as_str()
                .unwrap()
                .starts_with("wasm: output within limits")
        })
        .unwrap();
    assert_eq!(probe["passed"], false, "{big}");
    assert!(
        probe["detail"]
            .as_str()
            .unwrap()
            .contains("over limits.max_output_kb (1024 bytes)"),
        "{probe}"
    );
    std::fs::write(&manifest, &text).unwrap();

    // Pack unsigned: installing it needs the user's explicit --allow-unsigned, and the
    // lock says so.
    let packed = datum(&sb, &dir, &["plugin", "pack", "--format", "json"])
        .success()
        .json();
    assert_eq!(packed["published"].as_array().unwrap().len(), 2, "{packed}");
    let ws = sb.empty_workshop("bob");
    let registry = dir.join("registry");
    let refused = sb
        .datum_in(
            &ws,
            &["plugin", "install", "hello", "--registry", s(&registry)],
        )
        .failure();
    assert!(
        refused.stderr().contains("--allow-unsigned"),
        "{}",
        refused.stderr()
    );
    sb.datum_in(
        &ws,
        &[
            "plugin",
            "install",
            "hello",
            "--registry",
            s(&registry),
            "--allow-unsigned",
        ],
    )
    .success();
    assert!(std::fs::read_to_string(ws.join("datum.lock"))
        .unwrap()
        .contains("unsigned = true"));
    // Signed with the author's key: a fresh workshop pins the key and installs.
    let key = sb.path("keys/hello");
    sb.datum_in(&outside, &["registry", "keygen", "--out", s(&key)])
        .success();
    let secret = format!("{}.key", key.display());
    datum(&sb, &dir, &["plugin", "pack", "--sign", &secret]).success();
    let ws = sb.empty_workshop("carol");
    let installed = sb
        .datum_in(
            &ws,
            &[
                "plugin",
                "install",
                "hello",
                "--registry",
                s(&registry),
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    assert!(
        installed["installed"][0]["signed_by"].is_string(),
        "{installed}"
    );
    assert!(ws.join("registries.toml").is_file());
    let hi = sb
        .datum_in(&ws, &["hello", "--who", "carol"])
        .success()
        .stdout();
    assert_eq!(hi.trim(), "hello, carol (1)");
}
