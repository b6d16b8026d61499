//! `datum plugin search|info|install|remove|list|update` against the bundled and
//! fixture registries, in both kinds, from a folder and from git.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use datum_test_support::{
    bundled_registry, commit_count, copy_dir, fixture_registry, git_clean, s, Sandbox,
};

const ADD: &str = "550500000055070000001000";

#[test]
fn search_and_info_show_the_manifest_before_download() {
    let sb = Sandbox::new();
    let reg = bundled_registry();
    let found = sb
        .datum(&[
            "plugin",
            "search",
            "flux",
            "--registry",
            s(&reg),
            "--format",
            "json",
        ])
        .success()
        .json();
    // Several plugins mention FLUX; flux-vm is among them.
    let hit = found["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "flux-vm")
        .unwrap();
    assert_eq!(hit["name"], "flux-vm");
    assert_eq!(hit["kinds"], serde_json::json!(["wasm", "native"]));
    assert_eq!(hit["compatible"], true);

    let info = sb
        .datum(&[
            "plugin",
            "info",
            "flux-vm",
            "--registry",
            s(&reg),
            "--format",
            "json",
        ])
        .success()
        .json();
    assert_eq!(info["manifest"]["commands"][0]["path"], "flux run");
    let artifacts = info["versions"][0]["artifacts"].as_object().unwrap();
    assert!(artifacts.contains_key("wasm32-unknown-unknown"));
    for a in artifacts.values() {
        assert_eq!(a["sha256"].as_str().unwrap().len(), 64);
        assert!(a["size"].as_u64().unwrap() > 0);
    }
    let text = sb
        .datum(&["plugin", "info", "flux-vm", "--registry", s(&reg)])
        .success()
        .stdout();
    assert!(text.contains("datum flux run"), "{text}");

    let none = sb
        .datum(&["plugin", "info", "no-such", "--registry", s(&reg)])
        .failure();
    assert!(
        none.stderr().contains("datum plugin search no-such"),
        "{}",
        none.stderr()
    );
}

#[test]
fn flux_run_gives_twelve_from_both_kinds() {
    let sb = Sandbox::new();
    let reg = bundled_registry();
    for kind in ["wasm", "native"] {
        let ws = sb.empty_workshop(&format!("k-{kind}"));
        let out = sb
            .datum_in(
                &ws,
                &[
                    "plugin",
                    "install",
                    "flux-vm",
                    "--kind",
                    kind,
                    "--registry",
                    s(&reg),
                    "--format",
                    "json",
                ],
            )
            .success()
            .json();
        assert_eq!(out["installed"][0]["kind"], kind);
        let lock = std::fs::read_to_string(ws.join("datum.lock")).unwrap();
        assert!(lock.contains(&format!("kind = \"{kind}\"")), "{lock}");
        assert_eq!(
            sb.datum_in(&ws, &["flux", "run", "--bytecode", ADD])
                .success()
                .stdout()
                .trim(),
            "[12]"
        );
        let json = sb
            .datum_in(&ws, &["flux", "run", "--bytecode", ADD, "--format", "json"])
            .success()
            .json();
        assert_eq!(json["stack"], serde_json::json!([12]));
        assert_eq!(json["status"], "halted");
        assert_eq!(json["steps"], 4);
    }
}

#[test]
fn install_records_the_lock_and_commits_learned() {
    let sb = Sandbox::new();
    let reg = fixture_registry();
    let ws = sb.empty_workshop("hal");
    let before = commit_count(&ws);
    let out = sb
        .datum_in(
            &ws,
            &[
                "plugin",
                "install",
                "stress@=1.0.0",
                "--registry",
                s(&reg),
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    let i = &out["installed"][0];
    assert_eq!(i["version"], "1.0.0");
    assert_eq!(
        i["grants"],
        serde_json::json!(["fs-read:notes", "fs-write:notes", "kv", "secrets:db/*"])
    );
    assert_eq!(commit_count(&ws), before + 1);
    assert!(git_clean(&ws));
    let repo = git2::Repository::open(&ws).unwrap();
    let head = repo.head().unwrap().peel_to_commit().unwrap();
    assert_eq!(head.message().unwrap(), "learned stress 1.0.0 (wasm)");
    let lock = std::fs::read_to_string(ws.join("datum.lock")).unwrap();
    for needle in [
        "name = \"stress\"",
        "version = \"1.0.0\"",
        "kind = \"wasm\"",
        "sha256 = ",
        "source = \"dir:",
        "grants = [",
    ] {
        assert!(lock.contains(needle), "lock lacks {needle}:\n{lock}");
    }

    // Installing the same thing again changes nothing and makes no commit.
    let again = sb
        .datum_in(
            &ws,
            &[
                "plugin",
                "install",
                "stress@=1.0.0",
                "--registry",
                s(&reg),
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    assert_eq!(again["installed"][0]["changed"], false);
    assert_eq!(commit_count(&ws), before + 1);

    // --deny keeps a permission back.
    let ws2 = sb.empty_workshop("ian");
    let out = sb
        .datum_in(
            &ws2,
            &[
                "plugin",
                "install",
                "stress@=1.0.0",
                "--deny",
                "kv",
                "--registry",
                s(&reg),
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    assert_eq!(
        out["installed"][0]["grants"],
        serde_json::json!(["fs-read:notes", "fs-write:notes", "secrets:db/*"])
    );
}

#[test]
fn update_list_and_remove() {
    let sb = Sandbox::new();
    let reg = fixture_registry();
    let ws = sb.empty_workshop("jo");
    sb.datum_in(
        &ws,
        &["plugin", "install", "stress@=1.0.0", "--registry", s(&reg)],
    )
    .success();
    // 2.0.0 needs API ^2, so the newest compatible is 1.1.0.
    let up = sb
        .datum_in(
            &ws,
            &[
                "plugin",
                "update",
                "--registry",
                s(&reg),
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    assert_eq!(up["updated"][0]["to"], "1.1.0");
    assert_eq!(
        sb.datum_in(&ws, &["stress", "ok"])
            .success()
            .stdout()
            .trim(),
        "stress 1.1.0"
    );
    let list = sb
        .datum_in(&ws, &["plugin", "list", "--format", "json"])
        .success()
        .json();
    assert_eq!(list["plugins"][0]["version"], "1.1.0");
    let up = sb
        .datum_in(
            &ws,
            &[
                "plugin",
                "update",
                "--registry",
                s(&reg),
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    assert!(
        up["updated"].as_array().unwrap().is_empty(),
        "second update is a no-op"
    );

    sb.datum_in(&ws, &["plugin", "remove", "stress"]).success();
    let list = sb
        .datum_in(&ws, &["plugin", "list", "--format", "json"])
        .success()
        .json();
    assert!(list["plugins"].as_array().unwrap().is_empty());
    let gone = sb.datum_in(&ws, &["stress", "ok"]).failure();
    assert!(
        gone.stderr().contains("datum plugin search stress"),
        "{}",
        gone.stderr()
    );
    assert!(git_clean(&ws));
}

#[test]
fn two_workshops_pin_different_versions_and_both_run() {
    let sb = Sandbox::new();
    let reg = fixture_registry();
    let old = sb.empty_workshop("old");
    let new = sb.empty_workshop("new");
    sb.datum_in(
        &old,
        &["plugin", "install", "stress@=1.0.0", "--registry", s(&reg)],
    )
    .success();
    sb.datum_in(
        &new,
        &["plugin", "install", "stress@1.1", "--registry", s(&reg)],
    )
    .success();
    assert_eq!(
        sb.datum_in(&old, &["stress", "ok"])
            .success()
            .stdout()
            .trim(),
        "stress 1.0.0"
    );
    assert_eq!(
        sb.datum_in(&new, &["stress", "ok"])
            .success()
            .stdout()
            .trim(),
        "stress 1.1.0"
    );
    // One shared content-addressed store holds both.
    let entries = std::fs::read_dir(sb.home().join("store")).unwrap().count();
    assert_eq!(entries, 2);
}

#[test]
fn an_incompatible_api_is_refused_naming_both_versions() {
    let sb = Sandbox::new();
    let reg = fixture_registry();
    let ws = sb.empty_workshop("kim");
    let r = sb
        .datum_in(
            &ws,
            &["plugin", "install", "stress@2", "--registry", s(&reg)],
        )
        .failure();
    let err = r.stderr();
    assert!(
        err.contains("^2.0")
            && err.contains(&format!("provides {}", datum_plugin_api::API_VERSION)),
        "names both API versions: {err}"
    );
    assert!(
        err.contains("datum plugin install stress@=1.1.0"),
        "names the fix: {err}"
    );
    assert!(!ws.join("datum.lock").exists(), "nothing installed");
}

#[test]
fn native_plugins_from_an_untrusted_registry_need_consent() {
    let sb = Sandbox::new();
    let reg = fixture_registry();
    let ws = sb.empty_workshop("lee");
    let r = sb
        .datum_in(
            &ws,
            &[
                "plugin",
                "install",
                "stress@=1.0.0",
                "--kind",
                "native",
                "--registry",
                s(&reg),
            ],
        )
        .failure();
    assert!(r.stderr().contains("--trust-native"), "{}", r.stderr());
    sb.datum_in(
        &ws,
        &[
            "plugin",
            "install",
            "stress@=1.0.0",
            "--kind",
            "native",
            "--trust-native",
            "--registry",
            s(&reg),
        ],
    )
    .success();
    assert_eq!(
        sb.datum_in(&ws, &["stress", "ok"])
            .success()
            .stdout()
            .trim(),
        "stress 1.0.0"
    );
}

#[test]
fn locked_installs_exactly_what_the_lock_pins() {
    let sb = Sandbox::new();
    let reg = bundled_registry();
    let ws = sb.empty_workshop("max");
    sb.datum_in(
        &ws,
        &["plugin", "install", "flux-vm", "--registry", s(&reg)],
    )
    .success();
    let refused = sb.datum_in(
        &ws,
        &[
            "plugin",
            "install",
            "flux-vm",
            "--kind",
            "native",
            "--locked",
            "--registry",
            s(&reg),
        ],
    );
    // --locked keeps the pinned kind rather than switching.
    let refused = refused.success();
    assert!(std::fs::read_to_string(ws.join("datum.lock"))
        .unwrap()
        .contains("kind = \"wasm\""));
    drop(refused);

    // A fresh machine (empty store) restores the pinned set from the lock.
    let fresh = Sandbox::new();
    let copy = fresh.path("copy");
    git2::Repository::clone(ws.to_str().unwrap(), &copy).unwrap();
    // Unavailable plugins: reported, and the exit code says so.
    let before = fresh
        .datum_in(&copy, &["status", "--format", "json"])
        .failure()
        .json();
    assert_eq!(before["plugins"][0]["available"], false);
    fresh
        .datum_in(
            &copy,
            &["plugin", "install", "--locked", "--registry", s(&reg)],
        )
        .success();
    assert_eq!(
        fresh
            .datum_in(&copy, &["flux", "run", "--bytecode", ADD])
            .success()
            .stdout()
            .trim(),
        "[12]"
    );
    let err = fresh
        .datum_in(
            &copy,
            &[
                "plugin",
                "install",
                "stress",
                "--locked",
                "--registry",
                s(&reg),
            ],
        )
        .failure();
    assert!(err.stderr().contains("--locked"), "{}", err.stderr());
}

#[test]
fn a_git_repository_is_a_registry() {
    let sb = Sandbox::new();
    let src = fixture_registry();
    // Make a local git remote holding the fixture registry.
    let remote = sb.path("remote-registry");
    copy_dir(&src, &remote);
    datum_test_support::github::commit_files(&remote, &[], 1_795_000_000);

    let url = format!("git+file://{}", remote.display());
    let ws = sb.empty_workshop("ned");
    let out = sb
        .datum_in(
            &ws,
            &[
                "plugin",
                "install",
                "stress@=1.0.0",
                "--registry",
                &url,
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    assert!(out["installed"][0]["source"]
        .as_str()
        .unwrap()
        .starts_with("git:file://"));
    assert_eq!(
        sb.datum_in(&ws, &["stress", "ok"])
            .success()
            .stdout()
            .trim(),
        "stress 1.0.0"
    );
    // A second open fetches instead of cloning again.
    sb.datum_in(&ws, &["plugin", "search", "--registry", &url])
        .success();
}

#[test]
fn batch_runs_many_calls_with_one_load_per_plugin() {
    let sb = Sandbox::new();
    let reg = bundled_registry();
    let ws = sb.empty_workshop("batch");
    sb.datum_in(
        &ws,
        &["plugin", "install", "flux-vm", "--registry", s(&reg)],
    )
    .success();
    let input = ws.join("calls.jsonl");
    let call = r#"{"command": "flux run", "args": {"bytecode": "550500000055070000001000"}}"#;
    std::fs::write(
        &input,
        format!(
            "{call}\n{call}\n\n{{\"command\": \"flux run\", \"args\": {{\"bytecode\": \"10\"}}}}\n"
        ),
    )
    .unwrap();
    let out = sb.datum_in(&ws, &["batch", s(&input)]).success().stdout();
    let replies: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(replies.len(), 3, "one reply per call, blank lines skipped");
    assert_eq!(replies[0]["data"]["stack"], serde_json::json!([12]));
    assert_eq!(replies[1]["ok"], true);
    assert_eq!(replies[2]["data"]["error"], "STACK_UNDERFLOW");

    std::fs::write(&input, "{\"command\": \"no such\"}\nnot json\n").unwrap();
    let r = sb.datum_in(&ws, &["batch", s(&input)]).failure();
    let replies: Vec<serde_json::Value> = r
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(replies.len(), 2, "every line gets a reply, even a bad one");
    assert!(replies[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("datum plugin search"));
    assert!(replies[1]["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("line 2"));
}

/// A registry on a web server: install over HTTP (mirrored, checked against
/// snapshot.json, ETags answered with 304 on the next open), and a tampered index file
/// or artifact refused with nothing installed.
#[test]
fn a_registry_over_http_installs_verified_and_refuses_tampering() {
    use datum_test_support::web::WebServer;
    let sb = Sandbox::new();
    let served = sb.path("served");
    copy_dir(&bundled_registry(), &served);
    let web = WebServer::start(&served);
    let ws = sb.empty_workshop("ada");
    let out = sb
        .datum_in(
            &ws,
            &[
                "plugin",
                "install",
                "flux-vm",
                "--registry",
                &web.url,
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    assert_eq!(out["installed"][0]["source"], format!("http:{}", web.url));
    let run = sb
        .datum_in(
            &ws,
            &["flux", "run", "--bytecode", "550500000055070000001000"],
        )
        .success();
    assert_eq!(run.stdout().trim(), "[12]");
    // The next open asks again and gets "not modified"; index files it holds with the
    // snapshot's sha256 are not asked for at all.
    sb.datum_in(&ws, &["plugin", "search", "--registry", &web.url])
        .success();
    assert!(web.count("/snapshot.json", 304) >= 1, "{:?}", web.log);
    assert_eq!(web.count("/snapshot.json", 200), 1, "{:?}", web.log);
    assert_eq!(web.count("/index/flux-vm.json", 200), 1, "{:?}", web.log);

    // A second machine (its own datum home, no mirror yet) meets a tampered server.
    let (sb, ws) = {
        let other = Sandbox::new();
        let ws = other.empty_workshop("eve");
        (other, ws)
    };
    let lock_before = std::fs::read_to_string(ws.join("datum.lock")).unwrap_or_default();
    // An index file changed behind snapshot.json's back.
    let index = served.join("index/mib.json");
    let original = std::fs::read_to_string(&index).unwrap();
    std::fs::write(&index, format!("{original} ")).unwrap();
    let r = sb
        .datum_in(&ws, &["plugin", "install", "mib", "--registry", &web.url])
        .failure();
    assert!(
        r.stderr()
            .contains("index/mib.json does not match the sha256 snapshot.json gives it"),
        "{}",
        r.stderr()
    );
    std::fs::write(&index, &original).unwrap();
    // An artifact changed (index and snapshot intact): the download is refused.
    let listing: serde_json::Value = serde_json::from_str(&original).unwrap();
    let wasm = listing["versions"][0]["artifacts"]["wasm32-unknown-unknown"]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut bytes = std::fs::read(served.join(&wasm)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(served.join(&wasm), bytes).unwrap();
    let r = sb
        .datum_in(&ws, &["plugin", "install", "mib", "--registry", &web.url])
        .failure();
    assert!(
        r.stderr()
            .contains("does not match the sha256 in the index"),
        "{}",
        r.stderr()
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("datum.lock")).unwrap_or_default(),
        lock_before,
        "nothing was installed"
    );
    // A folder without snapshot.json cannot be served as a registry.
    std::fs::remove_file(served.join("snapshot.json")).unwrap();
    let r = sb
        .datum_in(&ws, &["plugin", "search", "--registry", &web.url])
        .failure();
    assert!(r.stderr().contains("snapshot.json"), "{}", r.stderr());
}

/// HTTPS with a private CA: refused without it, installed with `--ca-file`.
#[test]
fn an_https_registry_with_a_private_ca_needs_its_certificate() {
    use datum_test_support::web::WebServer;
    let sb = Sandbox::new();
    let served = sb.path("served");
    copy_dir(&bundled_registry(), &served);
    // A private CA and a server certificate it signed.
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(sb.path(""))
            .output()
            .expect("openssl is installed (scripts/install-system-packages)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-days",
                "2",
                "-subj",
                "/CN=datum test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "key.pem",
                "-out",
                "leaf.csr",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        sb.path("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
        "-out",
        "cert.pem",
    ]);
    let (cert, key, ca) = (sb.path("cert.pem"), sb.path("key.pem"), sb.path("ca.pem"));
    let web = WebServer::start_tls(
        &served,
        &std::fs::read(&cert).unwrap(),
        &std::fs::read(&key).unwrap(),
    );
    assert!(web.url.starts_with("https://"));
    let ws = sb.empty_workshop("ada");
    let r = sb
        .datum_in(
            &ws,
            &["plugin", "install", "flux-vm", "--registry", &web.url],
        )
        .failure();
    assert!(
        r.stderr().to_lowercase().contains("certificate"),
        "{}",
        r.stderr()
    );
    sb.datum_in(
        &ws,
        &[
            "plugin",
            "install",
            "flux-vm",
            "--registry",
            &web.url,
            "--ca-file",
            s(&ca),
        ],
    )
    .success();
}
