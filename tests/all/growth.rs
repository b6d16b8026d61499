//! Growth through the real binary: onboarding with a bootcamp judged from evidence,
//! learning abilities (from the registry and from another agent's lock), a career
//! computed from the record, and `improve auto` keeping only what checks out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use datum_test_support::github::commit_files;
use datum_test_support::{bundled_registry, committed, fixture_registry, git_clean, s, Sandbox};

/// `datum onboard` for a new agent in its own folder, from the bundled registry.
fn onboard(sb: &Sandbox, name: &str, role: &str) -> (PathBuf, String) {
    let ws = sb.path(name);
    let registry = bundled_registry();
    let out = sb
        .datum(&[
            "onboard",
            "--agent",
            name,
            "--role",
            role,
            "--workshop",
            s(&ws),
            "--registry",
            s(&registry),
        ])
        .success()
        .stdout();
    (ws, out)
}

fn progress(sb: &Sandbox, ws: &Path) -> String {
    sb.datum_in(ws, &["onboard", "--progress"])
        .success()
        .stdout()
}

fn commits(ws: &Path) -> usize {
    datum_test_support::commit_count(ws)
}

fn write(ws: &Path, rel: &str, text: &str) {
    let p = ws.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn onboarding_then_exercises_done_for_real_show_as_done_until_the_evidence_goes() {
    let sb = Sandbox::new();
    let (ws, out) = onboard(&sb, "ada", "researcher");
    assert!(out.contains("Onboarding ada (researcher)"), "{out}");
    assert!(
        out.contains("4. bootcamp: 7 exercises in bootcamp/"),
        "{out}"
    );
    assert!(
        out.contains("5. first task: Read `context/OPERATING_MANUAL.md` (TASKBOARD.md)"),
        "{out}"
    );
    let agent = std::fs::read_to_string(ws.join(".superagent/agent.toml")).unwrap();
    assert!(
        agent.contains("role = \"researcher\"") && agent.contains("lifecycle = \"onboarded\""),
        "{agent}"
    );
    assert!(ws.join("bootcamp/01-hello-world/TASK.md").is_file());
    assert!(ws.join("recipes/bootcamp-first-recipe.md").is_file());
    assert!(git_clean(&ws), "onboarding commits what it writes");

    let fresh = progress(&sb, &ws);
    assert_eq!(
        fresh.lines().next(),
        Some("Bootcamp Progress: ada (researcher)")
    );
    assert_eq!(fresh.matches("[ ] Exercise").count(), 7, "{fresh}");

    // Do the exercises, for real.
    let run = |args: &[&str]| sb.datum_in(&ws, args).success().stdout();
    let hello = run(&["flux", "run", "hello"]);
    write(&ws, "bootcamp/01-hello-world/RESULT.md", &hello);
    write(
        &ws,
        "bootcamp/02-tool-manifest/RESULT.md",
        "- `datum flux run`\ndatum journal add\ndatum bottle drop\ndatum no-such thing\n",
    );
    let fib = run(&["flux", "run", "fibonacci"]);
    let fact = run(&["flux", "run", "factorial"]);
    write(
        &ws,
        "bootcamp/03-run-a-recipe/RESULT.md",
        &format!("fibonacci: {}\nfactorial: {}\n", fib.trim(), fact.trim()),
    );
    run(&[
        "journal",
        "add",
        "NOTE",
        "ran my first recipe",
        "--tag",
        "recipe",
    ]);
    write(
        &ws,
        "tools/double.flux",
        "; double\n; case: 3 -> 6\n; case: 10 -> 20\n        push 2\n        mul\n        halt\n",
    );
    let conformance = sb
        .datum_in(&ws, &["flux", "conformance", "--format", "json"])
        .success()
        .json();
    let sum = |k: &str| -> u64 {
        conformance["suites"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s[k].as_u64().unwrap())
            .sum()
    };
    write(
        &ws,
        "bootcamp/05-conformance/RESULT.md",
        &format!("conformance: {}/{}\n", sum("passed"), sum("total")),
    );
    run(&[
        "bottle",
        "drop",
        "bob",
        "Hello",
        "I am ada, just onboarded.",
        "--type",
        "check-in",
    ]);
    run(&[
        "journal", "add", "ANALYSIS",
        "The conformance run shows the runtime passes every vector in the stack, register and examples suites, so the FLUX implementation in this workshop agrees with its specification and can be trusted for the next tasks.",
        "--tag", "research",
    ]);

    let done = progress(&sb, &ws);
    for (n, title) in [
        (1, "Hello World"),
        (2, "Read tool manifest"),
        (3, "Run a recipe"),
        (4, "Write your first tool"),
        (5, "Pass conformance audit"),
        (6, "Drop your first bottle"),
        (7, "Write an analysis"),
    ] {
        assert!(
            done.contains(&format!("[✓] Exercise {n}: {title}\n")),
            "{done}"
        );
    }
    assert!(
        done.trim_end()
            .ends_with("bootcamp complete: 7/7 exercises"),
        "{done}"
    );

    // The evidence is the state: remove the tool and exercise 4 is open again; a tool
    // that fails its own case is started, not done; a wrong RESULT.md is caught.
    std::fs::remove_file(ws.join("tools/double.flux")).unwrap();
    let gone = progress(&sb, &ws);
    assert!(
        gone.contains("[ ] Exercise 4: Write your first tool"),
        "{gone}"
    );
    write(
        &ws,
        "tools/double.flux",
        "; case: 3 -> 7\n push 2\n mul\n halt\n",
    );
    let wrong = progress(&sb, &ws);
    assert!(
        wrong.contains("[○] Exercise 4: Write your first tool"),
        "{wrong}"
    );
    assert!(
        wrong.contains("next: exercise 4 — tools/double.flux: line 1: [3] gave [6], not [7]"),
        "{wrong}"
    );
    write(&ws, "bootcamp/01-hello-world/RESULT.md", "[1, 2, 3]\n");
    let json = sb
        .datum_in(&ws, &["onboard", "--progress", "ada", "--format", "json"])
        .success()
        .json();
    assert_eq!(json["exercises"][0]["state"], "started", "{json}");
    assert_eq!(json["done"], 5);

    // Progress is computed in the agent's own workshop.
    let other = sb
        .datum_in(&ws, &["onboard", "--progress", "bob"])
        .failure();
    assert!(
        other.stderr().contains("not this workshop's agent"),
        "{}",
        other.stderr()
    );

    let list = sb.datum_in(&ws, &["onboard", "--list"]).success().stdout();
    assert!(
        list.contains("ada") && list.contains("researcher") && list.contains("bootcamp 5/7"),
        "{list}"
    );
}

#[test]
fn onboarding_refuses_an_unknown_role_and_a_second_role() {
    let sb = Sandbox::new();
    let registry = bundled_registry();
    let ws = sb.path("cy");
    let bad = sb
        .datum(&[
            "onboard",
            "--agent",
            "cy",
            "--role",
            "wizard",
            "--workshop",
            s(&ws),
            "--registry",
            s(&registry),
        ])
        .failure();
    assert!(
        bad.stderr()
            .contains("no bootcamp curriculum for role `wizard`")
            && bad
                .stderr()
                .contains("generalist, researcher, quartermaster, engineer"),
        "{}",
        bad.stderr()
    );
    // Not onboarded yet, so the role can still be chosen.
    sb.datum(&[
        "onboard",
        "--agent",
        "cy",
        "--role",
        "engineer",
        "--workshop",
        s(&ws),
        "--registry",
        s(&registry),
    ])
    .success();
    let again = sb
        .datum(&[
            "onboard",
            "--agent",
            "cy",
            "--role",
            "researcher",
            "--workshop",
            s(&ws),
            "--registry",
            s(&registry),
        ])
        .failure();
    assert!(
        again.stderr().contains("a role is chosen once"),
        "{}",
        again.stderr()
    );
    let curricula = sb
        .datum_in(&ws, &["bootcamp", "curricula", "--format", "json"])
        .success()
        .json();
    let engineer = curricula["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "engineer")
        .unwrap();
    assert_eq!(engineer["exercises"][6]["id"], "tested-tool");
}

#[test]
fn onboarding_claims_the_first_open_task_of_the_fleet_board() {
    let sb = Sandbox::new();
    let work = sb.path("board-work");
    commit_files(
        &work,
        &[(
            "TASKBOARD.md".into(),
            "# Fleet tasks\n\n- [ ] TASK-001 [HIGH] Audit the runtimes — open\n".into(),
        )],
        1_800_000_000,
    );
    let bare = sb.path("board.git");
    git2::build::RepoBuilder::new()
        .bare(true)
        .clone(s(&work), &bare)
        .unwrap();
    // An agent booted earlier, with the fleet plugin and the board, is onboarded now.
    let ws = sb.agent("eve");
    sb.install(&ws, "fleet");
    sb.datum_in(&ws, &["fleet", "add-board", "fleet", s(&bare)])
        .success();
    // `onboard` works in sb.path("eve"): the workshop booted above.
    let (_, out) = onboard(&sb, "eve", "quartermaster");
    assert!(
        out.contains(
            "5. first task: TASK-001 Audit the runtimes (claimed on the fleet task board)"
        ),
        "{out}"
    );
    let mine = sb
        .datum_in(&ws, &["fleet", "tasks", "mine"])
        .success()
        .stdout();
    assert_eq!(
        mine.trim(),
        "TASK-001 [HIGH] Audit the runtimes — in progress"
    );
    // Onboarding again keeps the bootcamp and takes no second task.
    let (_, again) = onboard(&sb, "eve", "quartermaster");
    assert!(
        again.contains("5. first task: taken at the first onboarding"),
        "{again}"
    );
}

fn capability(ws: &Path) -> toml::Value {
    toml::from_str(&std::fs::read_to_string(ws.join("CAPABILITY.toml")).unwrap()).unwrap()
}

fn lock_entry(ws: &Path, name: &str) -> toml::Value {
    let lock: toml::Value =
        toml::from_str(&std::fs::read_to_string(ws.join("datum.lock")).unwrap()).unwrap();
    lock["plugin"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .cloned()
        .unwrap_or_else(|| panic!("{name} is not in the lock"))
}

fn subjects(ws: &Path) -> Vec<String> {
    let repo = git2::Repository::open(ws).unwrap();
    let mut walk = repo.revwalk().unwrap();
    walk.push_head().unwrap();
    walk.map(|id| {
        let commit = repo.find_commit(id.unwrap()).unwrap();
        let subject: String = commit
            .summary()
            .ok()
            .flatten()
            .unwrap_or_default()
            .to_owned();
        subject
    })
    .collect()
}

#[test]
fn learning_an_ability_installs_it_through_the_host_proves_it_and_records_it() {
    let sb = Sandbox::new();
    let ws = sb.agent("ada");
    let learned = sb
        .datum_in(&ws, &["learn", "--ability", "bus", "--format", "json"])
        .success()
        .json();
    assert_eq!(learned["plugin"], "bus");
    assert_eq!(learned["installed"], true);
    assert_eq!(learned["source"], "plugin:bus@0.1.0");
    // The evidence is the plugin's own golden example, run in a scratch workshop.
    assert_eq!(learned["proof"]["total"], 1, "{learned}");
    assert_eq!(learned["proof"]["passed"], 1, "{learned}");
    assert_eq!(learned["confidence"], 1.0);
    assert_eq!(learned["stars"], 5);
    // An install a plugin triggers is recorded as such.
    assert_eq!(
        lock_entry(&ws, "bus")["requested_by"].as_str(),
        Some("growth")
    );
    let journal = std::fs::read_to_string(ws.join("JOURNAL.md")).unwrap();
    assert!(
        journal.contains("learned bus 0.1.0 (native), installed by growth: learn bus"),
        "{journal}"
    );
    assert!(
        journal.contains("[LEARNED] bus from plugin:bus@0.1.0 — ★★★★★"),
        "{journal}"
    );
    let cap = capability(&ws);
    assert_eq!(
        cap["capabilities"]["bus"]["source"].as_str(),
        Some("plugin:bus@0.1.0")
    );
    assert_eq!(
        cap["capabilities"]["bus"]["confidence"].as_float(),
        Some(1.0)
    );
    assert!(subjects(&ws).contains(&"learned bus".to_owned()));
    assert!(git_clean(&ws));
    // Nothing the example wrote landed in the agent's workshop.
    assert!(!journal.contains("published on agent.bob"));

    let list = sb.datum_in(&ws, &["learn", "--list"]).success().stdout();
    assert!(list.contains("bus ★★★★★ (learned "), "{list}");
    assert!(list.contains("journal ★★★☆☆ (intrinsic)"), "{list}");
    assert!(
        list.contains("plugin-management ★★★★★ (intrinsic: datum itself)"),
        "{list}"
    );

    let none = sb
        .datum_in(&ws, &["learn", "--ability", "time-travel"])
        .failure();
    assert!(
        none.stderr().contains("nothing provides time-travel"),
        "{}",
        none.stderr()
    );
    assert!(
        none.stderr().contains("datum plugin search time-travel"),
        "{}",
        none.stderr()
    );

    // --full: three rounds, in the journal and in knowledge/.
    let full = sb
        .datum_in(&ws, &["learn", "--ability", "messaging", "--full"])
        .success()
        .stdout();
    assert!(
        full.contains("Round 1: Foundations — reading mib's README from the registry"),
        "{full}"
    );
    assert!(
        full.contains("Round 2: Critique") && full.contains("Round 3: Architecture"),
        "{full}"
    );
    let knowledge = std::fs::read_to_string(ws.join("knowledge/messaging.md")).unwrap();
    assert!(
        knowledge.contains("## Round 1: Foundations") && knowledge.contains("Message-in-a-Bottle"),
        "{knowledge}"
    );
    assert!(
        knowledge.contains("`git:message-in-a-bottle`"),
        "{knowledge}"
    );
    let studies = sb
        .datum_in(&ws, &["journal", "--kind", "STUDY", "--format", "json"])
        .success()
        .json();
    assert_eq!(studies["entries"].as_array().unwrap().len(), 3);
    assert!(git_clean(&ws));
}

#[test]
fn workflow_learn_copies_the_exact_plugin_version_another_agent_pins() {
    let sb = Sandbox::new();
    let fixtures = fixture_registry();
    // carol lives in a plain-git fleet folder and pins stress 1.0.0 (1.1.0 is newer).
    std::fs::create_dir_all(sb.path("fleet")).unwrap();
    let carol = sb.path("fleet/carol");
    sb.datum(&[
        "boot",
        "--workshop",
        s(&carol),
        "--name",
        "carol",
        "--no-plugins",
    ])
    .success();
    sb.datum_in(
        &carol,
        &[
            "plugin",
            "install",
            "stress@=1.0.0",
            "--registry",
            s(&fixtures),
        ],
    )
    .success();
    let mut text = std::fs::read_to_string(carol.join("CAPABILITY.toml")).unwrap();
    text.push_str("misbehaviour = { confidence = 0.9 }\n");
    std::fs::write(carol.join("CAPABILITY.toml"), text).unwrap();
    commit_files(&carol, &[], 1_800_000_000);

    let ada = sb.agent("ada");
    sb.install(&ada, "fleet");
    sb.datum_in(
        &ada,
        &[
            "fleet",
            "add-source",
            "lab",
            "--git-path",
            s(&sb.path("fleet")),
            "--default",
        ],
    )
    .success();
    let pins = sb
        .datum_in(
            &ada,
            &["fleet", "lock", "--agent", "carol", "--format", "json"],
        )
        .success()
        .json();
    assert_eq!(pins["plugins"][0]["name"], "stress");
    assert_eq!(pins["plugins"][0]["version"], "1.0.0");

    let out = sb
        .datum_in(
            &ada,
            &[
                "workflow",
                "learn",
                "--from",
                "carol",
                "--abilities",
                "misbehaviour",
                "--registry",
                s(&fixtures),
            ],
        )
        .success()
        .stdout();
    assert!(
        out.contains("Found: agent carol (confidence: 0.90)"),
        "{out}"
    );
    assert!(
        out.contains("Transfer complete. misbehaviour ability added to CAPABILITY.toml"),
        "{out}"
    );
    let mine = lock_entry(&ada, "stress");
    let theirs = lock_entry(&carol, "stress");
    assert_eq!(
        mine["version"].as_str(),
        Some("1.0.0"),
        "not the newest: carol's"
    );
    assert_eq!(
        mine["sha256"], theirs["sha256"],
        "the same bytes: one runtime, shared on purpose"
    );
    assert_eq!(
        capability(&ada)["capabilities"]["misbehaviour"]["source"].as_str(),
        Some("transfer:carol")
    );
    assert!(git_clean(&ada));

    // An ability carol's lock cannot give is refused with what it does pin.
    let no = sb
        .datum_in(
            &ada,
            &[
                "workflow",
                "learn",
                "--from",
                "carol",
                "--abilities",
                "bus",
                "--registry",
                s(&fixtures),
            ],
        )
        .failure();
    assert!(no.stderr().contains("pins no plugin"), "{}", no.stderr());
    assert!(no.stderr().contains("stress 1.0.0"), "{}", no.stderr());
}

#[test]
fn career_figures_are_counted_from_the_record() {
    let sb = Sandbox::new();
    let ws = sb.agent("ada");
    for _ in 0..2 {
        sb.datum_in(&ws, &["resume"]).success();
    }
    sb.datum_in(&ws, &["bottle", "drop", "bob", "Hi", "hello"])
        .success();
    sb.datum_in(&ws, &["bottle", "drop", "cy", "Hi", "hello"])
        .success();
    sb.datum_in(
        &ws,
        &[
            "career",
            "add",
            "FLUX VM Integration",
            "--stars",
            "4",
            "--notes",
            "Phase 2 deliverable",
        ],
    )
    .success();
    let c = sb
        .datum_in(&ws, &["career", "--format", "json"])
        .success()
        .json();
    let trail = std::fs::read_to_string(ws.join("TRAIL.md")).unwrap();
    let sessions = trail
        .lines()
        .filter(|l| l.ends_with(" start") && l.contains(" session "))
        .count();
    assert_eq!(c["sessions"].as_u64().unwrap() as usize, sessions);
    assert_eq!(sessions, 2);
    assert_eq!(c["commits"].as_u64().unwrap() as usize, commits(&ws));
    let sent = std::fs::read_dir(ws.join("message-in-a-bottle"))
        .unwrap()
        .flatten()
        .filter(|d| d.file_name().to_string_lossy().starts_with("for-"))
        .map(|d| std::fs::read_dir(d.path()).unwrap().count())
        .sum::<usize>();
    assert_eq!(c["bottles_sent"].as_u64().unwrap() as usize, sent);
    assert_eq!(c["entries"][0]["title"], "FLUX VM Integration");
    assert_eq!(c["entries"][0]["stars"], 4);
    let text = sb.datum_in(&ws, &["career"]).success().stdout();
    assert!(
        text.starts_with("Agent: ada (generalist)\nSessions: 2 | Total commits: "),
        "{text}"
    );
    assert!(
        text.contains("★★★★☆ FLUX VM Integration — Phase 2 deliverable"),
        "{text}"
    );

    let before = commits(&ws);
    sb.datum_in(&ws, &["career", "export", "--as", "toml"])
        .success();
    let cap = capability(&ws);
    assert_eq!(
        cap["career"]["commits"].as_integer().unwrap() as usize,
        before
    );
    assert_eq!(cap["career"]["entries"][0]["stars"].as_integer(), Some(4));
    sb.datum_in(&ws, &["career", "export", "--as", "md"])
        .success();
    let md = std::fs::read_to_string(ws.join("CAREER.md")).unwrap();
    assert!(md.contains("# Career — ada (generalist)"), "{md}");
    // Both exports are committed (the dropped bottles wait for `bottle sync`).
    for rel in ["CAREER.md", "CAPABILITY.toml"] {
        assert_eq!(
            committed(&ws, rel),
            std::fs::read_to_string(ws.join(rel)).unwrap()
        );
    }
    let bad = sb
        .datum_in(&ws, &["career", "add", "x", "--stars", "9"])
        .failure();
    assert!(
        bad.stderr().contains("--stars must be 1 to 5"),
        "{}",
        bad.stderr()
    );
}

#[test]
fn improve_auto_keeps_a_good_update_rolls_back_a_bad_one_and_then_rests() {
    let sb = Sandbox::new();
    let ws = sb.agent("ada");
    let fixtures = fixture_registry();
    let next = fixtures.with_file_name("fixture-registry-next");
    sb.datum_in(
        &ws,
        &[
            "plugin",
            "install",
            "stress@=1.0.0",
            "--registry",
            s(&fixtures),
        ],
    )
    .success();
    let audit = sb
        .datum_in(
            &ws,
            &[
                "improve",
                "audit",
                "--registry",
                s(&fixtures),
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    let findings = audit["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["id"] == "plugin-update"
            && f["message"] == "stress 1.0.0 → 1.1.0 is available (compatible)"
            && f["severity"] == "LOW"),
        "{audit}"
    );
    let suggest = sb
        .datum_in(&ws, &["improve", "suggest", "--registry", s(&fixtures)])
        .success()
        .stdout();
    assert!(
        suggest.contains("stress 1.0.0 → 1.1.0 is available (compatible) — `datum improve auto`"),
        "{suggest}"
    );

    let dry = sb
        .datum_in(
            &ws,
            &["improve", "auto", "--dry-run", "--registry", s(&fixtures)],
        )
        .success()
        .stdout();
    assert!(dry.contains("would update stress 1.0.0 → 1.1.0"), "{dry}");
    assert_eq!(lock_entry(&ws, "stress")["version"].as_str(), Some("1.0.0"));

    let n0 = commits(&ws);
    let kept = sb
        .datum_in(
            &ws,
            &[
                "improve",
                "auto",
                "--registry",
                s(&fixtures),
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    assert_eq!(kept["kept"][0]["to"], "1.1.0", "{kept}");
    assert_eq!(lock_entry(&ws, "stress")["version"].as_str(), Some("1.1.0"));
    let head = subjects(&ws);
    let feat = head
        .iter()
        .find(|s| s.starts_with("feat: auto-improve"))
        .unwrap();
    assert_eq!(feat, "feat: auto-improve: update stress 1.0.0 → 1.1.0");
    let repo = git2::Repository::open(&ws).unwrap();
    let mut walk = repo.revwalk().unwrap();
    walk.push_head().unwrap();
    let message = walk
        .map(|id| {
            repo.find_commit(id.unwrap())
                .unwrap()
                .message()
                .unwrap()
                .to_owned()
        })
        .find(|m| m.starts_with("feat: auto-improve"))
        .unwrap();
    let before = &kept["before"];
    assert!(
        message.contains(&format!(
            "self-checks {}/{} → ",
            before["passed"], before["total"]
        )),
        "{message}"
    );
    assert!(std::fs::read_to_string(ws.join("JOURNAL.md"))
        .unwrap()
        .contains("[IMPROVE] auto-improve: update stress 1.0.0 → 1.1.0"));
    assert!(git_clean(&ws));
    assert!(commits(&ws) > n0);

    // A compatible update that fails its own golden example is rolled back.
    let rolled = sb
        .datum_in(&ws, &["improve", "auto", "--registry", s(&next)])
        .success()
        .stdout();
    assert!(
        rolled.contains("rolled back stress 1.2.0 → 1.1.0: its checks got worse"),
        "{rolled}"
    );
    assert!(
        rolled.contains("printed `stress 1.2.0 (broken)`"),
        "{rolled}"
    );
    assert_eq!(lock_entry(&ws, "stress")["version"].as_str(), Some("1.1.0"));
    assert!(git_clean(&ws));

    // Twice in a row: the second run changes nothing.
    let n1 = commits(&ws);
    let lock = std::fs::read_to_string(ws.join("datum.lock")).unwrap();
    let rest = sb
        .datum_in(&ws, &["improve", "auto", "--registry", s(&next)])
        .success()
        .stdout();
    assert!(rest.contains("Nothing to improve"), "{rest}");
    assert_eq!(commits(&ws), n1);
    assert_eq!(
        std::fs::read_to_string(ws.join("datum.lock")).unwrap(),
        lock
    );
    assert!(git_clean(&ws));
}
