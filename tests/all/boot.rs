//! `datum boot` and `datum status`: a workshop from nothing, and back again.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use datum_test_support::{bundled_registry, commit_count, git_clean, Run, Sandbox};

const ADD: &str = "550500000055070000001000";

#[test]
fn boot_lays_out_the_workshop_in_one_clean_commit_with_default_plugins() {
    let sb = Sandbox::new();
    let ws = sb.path("ada");
    let reg = bundled_registry();
    let out = sb
        .datum(&[
            "boot",
            "--workshop",
            ws.to_str().unwrap(),
            "--name",
            "ada",
            "--role",
            "scout",
            "--registry",
            reg.to_str().unwrap(),
            "--format",
            "json",
        ])
        .success()
        .json();
    assert_eq!(out["agent"], "ada");
    assert_eq!(out["created"], true);
    assert_eq!(out["plugins"][0]["name"], "flux-vm");

    for path in [
        "bootcamp",
        "dojo",
        "tools/manifest.json",
        "recipes",
        "wiki",
        "context/OPERATING_MANUAL.md",
        "context/ARCHITECTURE.md",
        "context/PRINCIPLES.md",
        "prompts",
        "TASKBOARD.md",
        "JOURNAL.md",
        "TRAIL.md",
        ".superagent/agent.toml",
        "datum.lock",
    ] {
        assert!(ws.join(path).exists(), "boot did not create {path}");
    }
    let agent = std::fs::read_to_string(ws.join(".superagent/agent.toml")).unwrap();
    assert!(
        agent.contains("name = \"ada\"") && agent.contains("role = \"scout\""),
        "{agent}"
    );
    assert_eq!(commit_count(&ws), 1, "a fresh boot is one commit");
    assert!(git_clean(&ws), "boot leaves a clean working tree");
    assert!(std::fs::read_to_string(ws.join("JOURNAL.md"))
        .unwrap()
        .contains("booted ada"));

    // The default plugin works straight away.
    let run = sb
        .datum_in(&ws, &["flux", "run", "--bytecode", ADD])
        .success();
    assert_eq!(run.stdout().trim(), "[12]");
}

#[test]
fn booting_again_keeps_everything_and_appends_to_the_journal() {
    let sb = Sandbox::new();
    let ws = sb.path("bee");
    let reg = bundled_registry();
    let args = [
        "boot",
        "--workshop",
        ws.to_str().unwrap(),
        "--registry",
        reg.to_str().unwrap(),
    ];
    sb.datum(&args).success();
    std::fs::write(ws.join("TASKBOARD.md"), "# my own tasks\n").unwrap();
    std::fs::write(ws.join("wiki/notes.md"), "mine\n").unwrap();
    let journal_before = std::fs::read_to_string(ws.join("JOURNAL.md")).unwrap();
    let lock_before = std::fs::read_to_string(ws.join("datum.lock")).unwrap();

    let out = sb
        .datum(&[&args[..], &["--format", "json"]].concat())
        .success()
        .json();
    assert_eq!(out["created"], false);
    assert_eq!(
        out["written"].as_array().unwrap().len(),
        0,
        "nothing is rewritten"
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("TASKBOARD.md")).unwrap(),
        "# my own tasks\n"
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("wiki/notes.md")).unwrap(),
        "mine\n"
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("datum.lock")).unwrap(),
        lock_before
    );
    let journal = std::fs::read_to_string(ws.join("JOURNAL.md")).unwrap();
    assert!(
        journal.starts_with(&journal_before) && journal.len() > journal_before.len(),
        "journal is appended"
    );
    assert!(journal.contains("re-booted"));
    assert!(git_clean(&ws));
}

#[test]
fn boot_restores_missing_layout_and_names_the_agent_after_the_folder() {
    let sb = Sandbox::new();
    let ws = sb.empty_workshop("cyd");
    std::fs::remove_file(ws.join("context/PRINCIPLES.md")).unwrap();
    // The report is printed in full, and the exit code says it needs attention.
    let status = sb
        .datum_in(&ws, &["status", "--format", "json"])
        .failure()
        .json();
    assert_eq!(status["workshop"]["healthy"], false);
    assert_eq!(status["workshop"]["missing"][0], "context/PRINCIPLES.md");
    sb.datum_in(&ws, &["boot", "--no-plugins"]).success();
    assert!(ws.join("context/PRINCIPLES.md").is_file());
    let status = sb
        .datum_in(&ws, &["status", "--format", "json"])
        .success()
        .json();
    assert_eq!(status["workshop"]["healthy"], true);
    assert_eq!(status["agent"]["name"], "cyd");
}

#[test]
fn status_reports_agent_health_and_plugins() {
    let sb = Sandbox::new();
    let ws = sb.path("dee");
    let reg = bundled_registry();
    sb.datum(&[
        "boot",
        "--workshop",
        ws.to_str().unwrap(),
        "--registry",
        reg.to_str().unwrap(),
        "--name",
        "dee",
    ])
    .success();
    let s = sb
        .datum_in(&ws, &["status", "--format", "json"])
        .success()
        .json();
    assert_eq!(s["agent"]["name"], "dee");
    assert_eq!(s["workshop"]["healthy"], true);
    assert_eq!(s["workshop"]["git_clean"], true);
    assert_eq!(s["plugins"][0]["name"], "flux-vm");
    assert_eq!(s["plugins"][0]["commands"][0], "flux run");
    let text = sb.datum_in(&ws, &["status"]).success().stdout();
    assert!(
        text.contains("health    ok") && text.contains("flux-vm"),
        "{text}"
    );
}

#[test]
fn commands_find_their_workshop_like_git_does() {
    let sb = Sandbox::new();
    let ws = sb.empty_workshop("eve");
    let deep = ws.join("wiki/a/b");
    // From a subfolder.
    let s = sb
        .datum_in(&deep, &["status", "--format", "json"])
        .success()
        .json();
    assert_eq!(s["agent"]["name"], "eve");
    // --workshop beats the current directory.
    let other = sb.empty_workshop("fay");
    let s = sb
        .datum_in(
            &deep,
            &[
                "status",
                "--workshop",
                other.to_str().unwrap(),
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    assert_eq!(s["agent"]["name"], "fay");
    // DATUM_WORKSHOP, outside any workshop.
    let out = std::process::Command::new(datum_test_support::datum_bin())
        .args(["status", "--format", "json"])
        .current_dir(sb.dir.path())
        .env("DATUM_HOME", sb.home())
        .env("DATUM_WORKSHOP", &ws)
        .output()
        .unwrap();
    assert!(out.status.success());
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["agent"]["name"], "eve");
    // Nowhere: a clear error that names the fix.
    let r = sb.datum(&["status"]).failure();
    assert!(r.stderr().contains("datum boot"), "{}", r.stderr());
}

/// `datum boot --workshop WS --registry REGISTRY`, which must fail.
fn failed_boot(sb: &Sandbox, ws: &std::path::Path, registry: &std::path::Path) -> Run {
    sb.datum(&[
        "boot",
        "--workshop",
        ws.to_str().unwrap(),
        "--registry",
        registry.to_str().unwrap(),
    ])
    .failure()
}

#[test]
fn boot_without_a_registry_creates_nothing() {
    let sb = Sandbox::new();
    let ws = sb.path("gus");
    let r = failed_boot(&sb, &ws, &sb.path("nowhere"));
    assert!(r.stderr().contains("does not exist"), "{}", r.stderr());
    assert!(!ws.exists(), "a failed boot leaves no half-made workshop");
}

/// A new workshop is built out of sight and appears only when all of it worked: a boot
/// that fails half-way (here: a plugin whose bytes are not the ones the registry's
/// index names, found after the template and git are written) leaves no workshop and
/// no staging folder behind.
#[test]
fn a_boot_that_fails_half_way_leaves_nothing() {
    let sb = Sandbox::new();
    let reg = sb.path("registry");
    datum_test_support::copy_dir(&bundled_registry(), &reg);
    let artifact = reg.join("artifacts/growth/0.1.0/wasm32-unknown-unknown.wasm");
    let mut bytes = std::fs::read(&artifact).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&artifact, bytes).unwrap();
    let ws = sb.path("lee");
    let r = failed_boot(&sb, &ws, &reg);
    assert!(r.stderr().contains("growth"), "{}", r.stderr());
    assert!(!ws.exists(), "a failed boot leaves no half-made workshop");
    let litter: Vec<_> = std::fs::read_dir(ws.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".lee."))
        .collect();
    assert!(litter.is_empty(), "staging folder left behind: {litter:?}");
}

/// Boot writes the agent's CAPABILITY.toml (name, role, what its plugins provide,
/// claimed but unproven) in the boot commit; a re-boot never touches the agent's own file.
#[test]
fn boot_writes_a_capability_file_once_and_then_leaves_it_alone() {
    let sb = Sandbox::new();
    let ws = sb.path("ada");
    let reg = bundled_registry();
    let boot = |extra: &[&str]| {
        let mut args = vec![
            "boot",
            "--workshop",
            ws.to_str().unwrap(),
            "--registry",
            reg.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        sb.datum(&args).success()
    };
    boot(&["--name", "ada", "--role", "scout"]);
    let path = ws.join("CAPABILITY.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let file = capability::CapabilityFile::parse(&text).unwrap();
    let (profile, warnings) = file.profile();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(profile.agent.name, "ada");
    assert_eq!(profile.agent.role.as_deref(), Some("scout"));
    for ability in [
        "flux-execution",
        "flux-assembly",
        "flux-conformance",
        "messaging",
        "i2i",
    ] {
        let cap = &profile.capabilities[ability];
        assert_eq!(
            (cap.confidence, &cap.source),
            (0.5, &capability::Source::Intrinsic),
            "{ability}"
        );
    }
    assert!(git_clean(&ws), "the file is committed with the boot");
    // The agent edits its profile; booting again keeps every byte.
    let edited = format!("{text}\n# mine\n[capabilities.poetry]\nconfidence = 0.1\n");
    std::fs::write(&path, &edited).unwrap();
    boot(&[]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), edited);
}

/// An installed datum (scripts/install's layout: PREFIX/bin/datum beside
/// PREFIX/share/datum/registry) boots from the registry beside it, wherever it is; its
/// completions and man page include the workshop's plugin commands.
#[test]
fn an_installed_datum_finds_its_registry_beside_it() {
    let sb = Sandbox::new();
    let prefix = sb.path("prefix");
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    let datum = prefix.join("bin/datum");
    std::fs::copy(datum_test_support::datum_bin(), &datum).unwrap();
    datum_test_support::copy_dir(&bundled_registry(), &prefix.join("share/datum/registry"));
    let run_as = |bin: &std::path::Path, cwd: &std::path::Path, args: &[&str]| {
        let out = std::process::Command::new(bin)
            .args(args)
            .current_dir(cwd)
            .env("DATUM_HOME", sb.home())
            .env_remove("DATUM_REGISTRY")
            .env_remove("DATUM_WORKSHOP")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let run = |cwd: &std::path::Path, args: &[&str]| run_as(&datum, cwd, args);
    let ws = sb.path("ada");
    run(
        &sb.path(""),
        &["boot", "--workshop", ws.to_str().unwrap(), "--name", "ada"],
    );
    let lock = std::fs::read_to_string(ws.join("datum.lock")).unwrap();
    let beside = std::fs::canonicalize(prefix.join("share/datum/registry")).unwrap();
    assert!(
        lock.contains(&format!("source = \"dir:{}\"", beside.display())),
        "installed from the registry beside the binary:\n{lock}"
    );
    // `datum-rt`, the prototype's name, is the same datum (scripts/install links it),
    // scripts written for the prototype included: it finds the same registry.
    let rt = prefix.join("bin/datum-rt");
    std::os::unix::fs::symlink("datum", &rt).unwrap();
    let ws_rt = sb.path("rt");
    run_as(
        &rt,
        &sb.path(""),
        &[
            "boot",
            "--workshop",
            ws_rt.to_str().unwrap(),
            "--name",
            "rt",
        ],
    );
    let lock = std::fs::read_to_string(ws_rt.join("datum.lock")).unwrap();
    assert!(
        lock.contains(&format!("source = \"dir:{}\"", beside.display())),
        "{lock}"
    );
    // Completions: the host verbs everywhere, the plugins' commands in a workshop.
    let outside = run(&sb.path(""), &["completions", "bash"]);
    assert!(
        outside.contains("plugin") && !outside.contains("flux"),
        "no workshop, no plugin commands"
    );
    let inside = run(&ws, &["completions", "fish"]);
    assert!(
        inside.contains("flux") && inside.contains("journal"),
        "{inside}"
    );
    let man = run(&ws, &["man"]);
    assert!(
        man.starts_with(".ie") || man.contains(".TH datum 1"),
        "{man}"
    );
    assert!(man.contains("flux"), "the man page lists plugin commands");

    // The registry beside the binary is checked against the key compiled into it: the
    // same registry signed by anyone else is refused, even on first use.
    let beside = prefix.join("share/datum/registry");
    let other = sb.path("other");
    run(
        &sb.path(""),
        &["registry", "keygen", "--out", other.to_str().unwrap()],
    );
    let other_key = format!("{}.key", other.display());
    run(
        &sb.path(""),
        &[
            "registry",
            "sign",
            beside.to_str().unwrap(),
            "--key",
            &other_key,
        ],
    );
    let out = std::process::Command::new(&datum)
        .args([
            "boot",
            "--workshop",
            sb.path("eve").to_str().unwrap(),
            "--name",
            "eve",
        ])
        .env("DATUM_HOME", sb.home())
        .env_remove("DATUM_REGISTRY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the key this datum was built with"), "{err}");
}
