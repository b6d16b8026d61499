//! The fleet plugin through the real `datum` binary: discovery of a plain-git fleet and
//! of a GitHub organisation (token from the Keeper, or none), the drawings, repository
//! hygiene, task boards raced by two agents, and the fleet audit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use datum_test_support::github::{
    commit_files, plain_git_fleet, FixtureRepo, GitHubFixture, FLEET,
};
use datum_test_support::{s, Sandbox};
use serde_json::Value;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An agent (flux-vm and mib by default) that has learned fleet.
fn fleet_agent(sb: &Sandbox, name: &str) -> PathBuf {
    let ws = sb.agent(name);
    sb.install(&ws, "fleet");
    ws
}

fn git_fleet(sb: &Sandbox) -> PathBuf {
    let dir = sb.path("fleet-repos");
    std::fs::create_dir_all(&dir).unwrap();
    plain_git_fleet(&dir, now());
    dir
}

#[test]
fn fleet_and_mib_answer_their_own_fleet_commands() {
    let sb = Sandbox::new();
    let ws = fleet_agent(&sb, "ada");
    let dir = git_fleet(&sb);
    // mib's `fleet send` and fleet's `fleet discover` live side by side.
    let sent = sb
        .datum_in(
            &ws,
            &[
                "fleet", "send", "--to", "bob", "--type", "PING", "--body", "\"hi\"", "--format",
                "json",
            ],
        )
        .success()
        .json();
    assert!(sent.to_string().contains("bob"), "{sent}");
    let received = sb
        .datum_in(&ws, &["fleet", "receive", "--format", "json"])
        .success()
        .json();
    assert!(
        received["messages"].is_array(),
        "mib answered its own command: {received}"
    );
    let found = sb
        .datum_in(
            &ws,
            &["fleet", "discover", "--git", s(&dir), "--format", "json"],
        )
        .success()
        .json();
    assert_eq!(found["agents"].as_array().unwrap().len(), 3);
}

#[test]
fn discover_a_plain_git_fleet() {
    let sb = Sandbox::new();
    let ws = fleet_agent(&sb, "ada");
    let dir = git_fleet(&sb);
    let run = sb
        .datum_in(&ws, &["fleet", "discover", "--git", s(&dir)])
        .success();
    let out = run.stdout();
    assert!(
        out.contains("found 3 agents (2 active) in 6 repositories (2 without CAPABILITY.toml)"),
        "{out}"
    );
    assert!(
        out.contains(
            "🔮 oracle1 (lighthouse, Managing Director) — active 2 days ago, 2 capabilities"
        ),
        "{out}"
    );
    assert!(
        out.contains("🟢 jetson (edge) — active 120 days ago, 1 capabilities [stale]"),
        "{out}"
    );
    assert!(
        out.contains("warning:") && out.contains("broken: CAPABILITY.toml line 3, column"),
        "{out}"
    );

    let recent = sb
        .datum_in(
            &ws,
            &[
                "fleet",
                "discover",
                "--git",
                s(&dir),
                "--active-within",
                "30d",
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    let names: Vec<&str> = recent["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["datum", "oracle1"]);

    // A fleet that is not there is an error naming it, never an empty fleet.
    let gone = sb
        .datum_in(&ws, &["fleet", "discover", "--git", s(&sb.path("nowhere"))])
        .failure();
    assert!(gone.stderr().contains("unreachable"), "{}", gone.stderr());
    // No source at all names the fix.
    let none = sb.datum_in(&ws, &["fleet", "discover"]).failure();
    assert!(none.stderr().contains("add-source"), "{}", none.stderr());
}

#[test]
fn a_configured_source_capabilities_who_and_topology() {
    let sb = Sandbox::new();
    let ws = fleet_agent(&sb, "ada");
    let dir = git_fleet(&sb);
    // Given relative to where the user stands; kept absolute for later calls elsewhere.
    let add = [
        "fleet",
        "add-source",
        "lab",
        "--git-path",
        "../fleet-repos",
        "--default",
    ];
    sb.datum_in(&ws, &add).success();
    let sources = sb
        .datum_in(
            &ws.join("context"),
            &["fleet", "sources", "--format", "json"],
        )
        .success()
        .json();
    assert_eq!(sources["default"], "lab");
    let kept = std::path::PathBuf::from(sources["sources"][0]["path"].as_str().unwrap());
    assert_eq!(kept, dir.canonicalize().unwrap());
    let missing = ["fleet", "add-source", "x", "--git-path", "no-such-folder"];
    sb.datum_in(&ws, &missing).failure();

    let caps = sb
        .datum_in(&ws, &["fleet", "capabilities", "--agent", "oracle1"])
        .success()
        .stdout();
    assert!(caps.contains("[capabilities]\narchitecture = { confidence = 0.95, stars = 5, source = \"intrinsic\" }"), "{caps}");
    let parsed: toml::Table = toml::from_str(&caps).expect("the capabilities print as TOML");
    assert_eq!(parsed["capabilities"].as_table().unwrap().len(), 2);
    sb.datum_in(&ws, &["fleet", "capabilities", "--agent", "nobody"])
        .failure();

    let who = sb
        .datum_in(
            &ws,
            &["fleet", "who", "--ability", "testing", "--format", "json"],
        )
        .success()
        .json();
    let order: Vec<&str> = who["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["agent"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["datum", "oracle1"], "best confidence first");

    let tree = sb.datum_in(&ws, &["fleet", "topology"]).success().stdout();
    assert!(tree.contains("🔮 oracle1 (lighthouse, Managing Director)\n├── 🔵 datum (quartermaster)\n└── 🟢 jetson (edge)"), "{tree}");
    assert!(tree.contains("jetson ──peer──▶ datum"), "{tree}");
    let dot = sb
        .datum_in(&ws, &["fleet", "topology", "--as", "dot"])
        .success()
        .stdout();
    assert!(
        dot.starts_with("digraph fleet {")
            && dot.contains("\"datum\" -> \"oracle1\" [label=\"reports-to\"]"),
        "{dot}"
    );
    let mermaid = sb
        .datum_in(&ws, &["fleet", "topology", "--as", "mermaid"])
        .success()
        .stdout();
    assert!(
        mermaid.starts_with("graph BT") && mermaid.contains("-->|\"reports-to\"|"),
        "{mermaid}"
    );
    sb.datum_in(&ws, &["fleet", "topology", "--as", "svg"])
        .failure();

    // Bottles this workshop sent show as traffic.
    sb.datum_in(&ws, &["bottle", "drop", "oracle1", "Hello", "Body"])
        .success();
    let tree = sb.datum_in(&ws, &["fleet", "topology"]).success().stdout();
    assert!(tree.contains("ada ──bottles ×1──▶ oracle1"), "{tree}");
}

/// A workshop registered with a standalone Keeper holding `github-token`.
fn keeper_agent(sb: &Sandbox, name: &str, token: &str) -> (PathBuf, PathBuf) {
    let admin = sb.empty_workshop("keeper-admin");
    sb.install(&admin, "keeper");
    let keeper = datum_test_support::Keeper::init(sb, &admin);
    let value = sb.path("token");
    std::fs::write(&value, token).unwrap();
    keeper.add_secret(sb, "github-token", &value).success();
    keeper.set_policy(&format!(
        r#"{{"grants": [{{"agent": "{name}", "keys": ["github-token"]}}]}}"#
    ));
    let ws = sb.path(name);
    sb.datum(&[
        "boot",
        "--workshop",
        s(&ws),
        "--name",
        name,
        "--registry",
        s(&datum_test_support::bundled_registry()),
        "--keeper-home",
        s(&keeper.home),
    ])
    .success();
    sb.install(&ws, "fleet");
    (ws, keeper.password_file.clone())
}

#[test]
fn github_with_the_keepers_token_and_without_a_keeper() {
    let sb = Sandbox::new();
    let dir = git_fleet(&sb);
    let repos: Vec<FixtureRepo> = FLEET
        .iter()
        .map(|n| FixtureRepo::from_git(&dir.join(n)))
        .collect();
    let fx = GitHubFixture::start("fleet", repos.clone(), Some("ghp_secret"));
    let (ws, pw) = keeper_agent(&sb, "ada", "ghp_secret");
    let args = [
        "fleet",
        "discover",
        "--org",
        "fleet",
        "--api-url",
        &fx.url,
        "--format",
        "json",
    ];
    let found = sb
        .datum_env(&ws, &args, &[("DATUM_KEEPER_PASSWORD_FILE", &pw)])
        .success()
        .json();
    assert_eq!(found["agents"].as_array().unwrap().len(), 3);
    assert_eq!(found["requests"], 1, "one GraphQL page");
    let git = sb
        .datum_in(
            &ws,
            &["fleet", "discover", "--git", s(&dir), "--format", "json"],
        )
        .success()
        .json();
    let strip = |v: &Value| {
        let mut v = v["agents"].clone();
        for a in v.as_array_mut().unwrap() {
            a.as_object_mut().unwrap().remove("url");
        }
        v
    };
    assert_eq!(
        strip(&found),
        strip(&git),
        "GitHub and plain git: the same agents"
    );
    // The second run downloads no capability file.
    let before = fx.capability_texts();
    let again = sb
        .datum_env(&ws, &args, &[("DATUM_KEEPER_PASSWORD_FILE", &pw)])
        .success()
        .json();
    assert_eq!(again["capability_downloads"], 0);
    assert_eq!(fx.capability_texts(), before);
    // The token never appears in argv or output.
    assert!(!again.to_string().contains("ghp_secret"));

    // No Keeper: unauthenticated, and it says so.
    let open = GitHubFixture::start("fleet", repos, None);
    let bob = fleet_agent(&sb, "bob");
    let discover = |url: &str| {
        sb.datum_in(
            &bob,
            &["fleet", "discover", "--org", "fleet", "--api-url", url],
        )
    };
    let run = discover(&open.url).success();
    assert!(
        run.stdout().contains("no Keeper is configured")
            && run.stdout().contains("60 requests an hour"),
        "{}",
        run.stdout()
    );
    assert!(run.stdout().contains("found 3 agents"), "{}", run.stdout());

    // A server that is down: non-zero, the reason and the fix.
    let port = datum_test_support::free_port();
    let down = discover(&format!("http://127.0.0.1:{port}")).failure();
    assert!(down.stderr().contains("unreachable"), "{}", down.stderr());
}

#[test]
fn scan_is_a_dry_run_until_yes() {
    let sb = Sandbox::new();
    let t = now();
    let day = 86_400;
    let repos = vec![
        FixtureRepo::new("fresh", t - day)
            .file("README.md", "# x")
            .file("LICENSE", "MIT")
            .file("CAPABILITY.toml", "[agent]\nname = \"fresh\"\n"),
        FixtureRepo::new("nolicense", t - day).file("README.md", "# x"),
        FixtureRepo::new("bare", t - day).file("main.rs", "fn main() {}"),
        FixtureRepo::new("old", t - 400 * day).file("README.md", "# x"),
        FixtureRepo {
            archived: true,
            ..FixtureRepo::new("attic", t - day).file("README.md", "# x")
        },
    ];
    let fx = GitHubFixture::start("acme", repos, Some("ghp_secret"));
    let (ws, pw) = keeper_agent(&sb, "ada", "ghp_secret");
    let env = [("DATUM_KEEPER_PASSWORD_FILE", pw.as_path())];
    let base = [
        "fleet",
        "scan",
        "--org",
        "acme",
        "--api-url",
        fx.url.as_str(),
    ];
    let dry = sb
        .datum_env(
            &ws,
            &[
                &base[..],
                &[
                    "--apply-topics",
                    "--apply-license",
                    "MIT",
                    "--format",
                    "json",
                ],
            ]
            .concat(),
            &env,
        )
        .success()
        .json();
    assert_eq!(
        dry["report"]["counts"],
        serde_json::json!({"green": 1, "yellow": 1, "red": 1, "dead": 2})
    );
    assert_eq!(dry["applied"], false);
    assert!(fx.writes().is_empty(), "a dry run changes nothing");
    let changes = dry["changes"].as_array().unwrap();
    assert!(
        changes.iter().any(|c| c["repo"] == "fresh"
            && c["add"] == serde_json::json!(["datum-agent", "health-green"])),
        "{changes:?}"
    );
    assert!(changes
        .iter()
        .any(|c| c["change"] == "license" && c["repo"] == "nolicense"));
    assert!(
        !changes.iter().any(|c| c["repo"] == "attic"),
        "archived repositories are read-only"
    );
    let text = sb
        .datum_env(
            &ws,
            &[&base[..], &["--apply-license", "MIT"]].concat(),
            &env,
        )
        .success()
        .stdout();
    assert!(
        text.contains("dry run — add --yes to apply")
            && text.contains("nolicense: commit LICENSE (MIT)"),
        "{text}"
    );

    sb.datum_env(
        &ws,
        &[
            &base[..],
            &["--apply-topics", "--apply-license", "MIT", "--yes"],
        ]
        .concat(),
        &env,
    )
    .success();
    let writes = fx.writes();
    assert_eq!(writes.len(), changes.len());
    assert!(writes
        .iter()
        .any(|(r, w)| r == "nolicense" && w["license"].is_string()));
}

/// Agents that have learned fleet and added the board at `remote`.
fn board_agents(sb: &Sandbox, names: &[&str], remote: &str) -> Vec<PathBuf> {
    names
        .iter()
        .map(|a| {
            let ws = fleet_agent(sb, a);
            sb.datum_in(&ws, &["fleet", "add-board", "fleet", remote])
                .success();
            ws
        })
        .collect()
}

/// Every workshop claims `id` at the same moment; their outputs, in order.
fn claim_at_once(sb: &Sandbox, workshops: &[PathBuf], id: &str) -> Vec<std::process::Output> {
    let children: Vec<std::process::Child> = workshops
        .iter()
        .map(|ws| {
            sb.command(ws, &["fleet", "tasks", "claim", id])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

/// A bare board repository whose TASKBOARD.md holds `n` open tasks.
fn board_remote(sb: &Sandbox, n: usize) -> PathBuf {
    let work = sb.path("board-work");
    let mut board = String::from("# Fleet tasks\n\nHand-written notes stay as they are.\n\n");
    for i in 1..=n {
        board.push_str(&format!(
            "- [ ] TASK-{i:03} [HIGH] Task number {i} — open\n"
        ));
    }
    commit_files(&work, &[("TASKBOARD.md".into(), board)], now());
    let bare = sb.path("board.git");
    git2::build::RepoBuilder::new()
        .bare(true)
        .clone(s(&work), &bare)
        .unwrap();
    bare
}

fn board_text(bare: &Path) -> String {
    let repo = git2::Repository::open_bare(bare).unwrap();
    let tree = repo.head().unwrap().peel_to_tree().unwrap();
    let blob = repo
        .find_blob(tree.get_name("TASKBOARD.md").unwrap().id())
        .unwrap();
    String::from_utf8(blob.content().to_vec()).unwrap()
}

#[test]
fn two_agents_claim_the_same_task_and_exactly_one_wins() {
    const ROUNDS: usize = 20;
    let sb = Sandbox::new();
    let remote = board_remote(&sb, ROUNDS);
    let agents = ["ada", "bob"];
    let workshops = board_agents(&sb, &agents, s(&remote));
    let mut winners = Vec::new();
    for round in 1..=ROUNDS {
        let id = format!("TASK-{round:03}");
        let outs = claim_at_once(&sb, &workshops, &id);
        let won: Vec<usize> = (0..2).filter(|i| outs[*i].status.success()).collect();
        assert_eq!(
            won.len(),
            1,
            "round {round}: exactly one winner: {:?}",
            outs.iter()
                .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                .collect::<Vec<_>>()
        );
        let (w, l) = (won[0], 1 - won[0]);
        let told = String::from_utf8_lossy(&outs[l].stderr);
        assert!(
            told.contains(&format!("{id} is already claimed by {}", agents[w])),
            "round {round}: the loser is told who has it: {told}"
        );
        winners.push(agents[w]);
    }
    // The board: every task claimed by its round's winner, nothing else changed.
    let text = board_text(&remote);
    assert!(text.starts_with("# Fleet tasks\n\nHand-written notes stay as they are.\n\n"));
    for (i, w) in winners.iter().enumerate() {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("TASK-{:03} ", i + 1)))
            .unwrap();
        assert!(
            line.starts_with(&format!(
                "- [~] TASK-{:03} [HIGH] Task number {} — claimed by {w} ",
                i + 1,
                i + 1
            )),
            "{line}"
        );
    }
    assert_eq!(text.lines().count(), 4 + ROUNDS);
    // One commit a claim, in a line: nothing was overwritten.
    let repo = git2::Repository::open_bare(&remote).unwrap();
    let mut walk = repo.revwalk().unwrap();
    walk.push_head().unwrap();
    assert_eq!(walk.count(), ROUNDS + 1);
}

/// `git daemon` serving `root` (pushes allowed) on a free loopback port; killed on drop.
struct GitDaemon(std::process::Child, u16);

impl GitDaemon {
    fn serve(root: &Path) -> GitDaemon {
        let port = datum_test_support::free_port();
        let child = std::process::Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--enable=receive-pack",
                "--listen=127.0.0.1",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", root.display()))
            .arg(root)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            // Its own process group: the per-connection children go with it.
            .process_group(0)
            .spawn()
            .expect("git-daemon runs (scripts/install-system-packages installs git)");
        datum_test_support::wait_for_port(port, "git daemon", 30);
        GitDaemon(child, port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = std::process::Command::new("kill")
            .args(["-TERM", "--", &group])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn over_the_git_protocol_the_servers_refusal_is_the_swap() {
    const ROUNDS: usize = 5;
    let sb = Sandbox::new();
    let bare = board_remote(&sb, ROUNDS);
    let served = sb.path("served");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::rename(&bare, served.join("board.git")).unwrap();
    let daemon = GitDaemon::serve(&served);
    let url = format!("git://127.0.0.1:{}/board.git", daemon.1);
    let workshops = board_agents(&sb, &["ada", "bob"], &url);
    for round in 1..=ROUNDS {
        let id = format!("TASK-{round:03}");
        let outs = claim_at_once(&sb, &workshops, &id);
        let winners = outs.iter().filter(|o| o.status.success()).count();
        assert_eq!(
            winners,
            1,
            "round {round}: {:?}",
            outs.iter()
                .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                .collect::<Vec<_>>()
        );
        let loser = outs.iter().find(|o| !o.status.success()).unwrap();
        assert!(String::from_utf8_lossy(&loser.stderr).contains("is already claimed by"));
    }
    let text = board_text(&served.join("board.git"));
    assert_eq!(text.matches("— claimed by ").count(), ROUNDS, "{text}");
}

#[test]
fn claim_mine_release_and_complete_with_a_report() {
    let sb = Sandbox::new();
    let remote = board_remote(&sb, 3);
    let ada = fleet_agent(&sb, "ada");
    let bob = fleet_agent(&sb, "bob");
    for ws in [&ada, &bob] {
        sb.datum_in(ws, &["fleet", "add-board", "fleet", s(&remote)])
            .success();
    }
    sb.datum_in(&ada, &["fleet", "tasks", "claim", "task-001"])
        .success();
    sb.datum_in(&ada, &["fleet", "tasks", "claim", "TASK-001"])
        .success(); // already hers: no change
    let mine = sb
        .datum_in(&ada, &["fleet", "tasks", "mine"])
        .success()
        .stdout();
    assert_eq!(mine.trim(), "TASK-001 [HIGH] Task number 1 — in progress");
    let theirs = sb
        .datum_in(&bob, &["fleet", "tasks", "release", "TASK-001"])
        .failure();
    assert!(
        theirs.stderr().contains("not yours to release"),
        "{}",
        theirs.stderr()
    );
    let early = sb
        .datum_in(
            &bob,
            &["fleet", "tasks", "complete", "TASK-002", "--report", "x.md"],
        )
        .failure();
    assert!(
        early.stderr().contains("report") || early.stderr().contains("claim it first"),
        "{}",
        early.stderr()
    );

    let report = sb.path("deliverable.md");
    std::fs::write(&report, "# Audit\nAll green.\n").unwrap();
    sb.datum_in(
        &ada,
        &[
            "fleet",
            "tasks",
            "complete",
            "TASK-001",
            "--report",
            s(&report),
        ],
    )
    .success();
    let text = board_text(&remote);
    assert!(
        text.contains("- [x] TASK-001 [HIGH] Task number 1 — done by ada "),
        "{text}"
    );
    assert!(text.contains("(reports/TASK-001.md)"), "{text}");
    let repo = git2::Repository::open_bare(&remote).unwrap();
    let tree = repo.head().unwrap().peel_to_tree().unwrap();
    let entry = tree.get_path(Path::new("reports/TASK-001.md")).unwrap();
    assert_eq!(
        repo.find_blob(entry.id()).unwrap().content(),
        b"# Audit\nAll green.\n"
    );

    sb.datum_in(&bob, &["fleet", "tasks", "claim", "TASK-002"])
        .success();
    sb.datum_in(&bob, &["fleet", "tasks", "release", "TASK-002"])
        .success();
    let list = sb
        .datum_in(&bob, &["fleet", "tasks", "list", "--format", "json"])
        .success()
        .json();
    let states: Vec<&str> = list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["done", "open", "open"]);
    sb.datum_in(&bob, &["fleet", "tasks", "claim", "TASK-999"])
        .failure();
}

#[test]
fn fleet_audit_runs_the_fleets_flux_and_commits_one_report() {
    let sb = Sandbox::new();
    let ws = fleet_agent(&sb, "ada");
    let dir = git_fleet(&sb);
    let programs = datum_test_support::repo().join("plugins/flux-vm/programs");
    let hello = std::fs::read_to_string(programs.join("hello.flux")).unwrap();
    let vectors = r#"{"version": "2.1-fleet", "description": "a runtime's own", "vectors": [
        {"name": "push_halt", "bytecode_hex": "55 07000000 00", "initial_stack": [], "expected_stack": [7], "expected_flags": 0},
        {"name": "wrong_on_purpose", "bytecode_hex": "55 07000000 00", "initial_stack": [], "expected_stack": [8], "expected_flags": 0}
    ]}"#;
    commit_files(
        &dir.join("oracle1"),
        &[
            ("vectors/own.json".into(), vectors.into()),
            ("programs/hello.flux".into(), hello),
        ],
        now(),
    );
    let out = sb
        .datum_in(
            &ws,
            &[
                "workflow",
                "fleet-audit",
                "--git",
                s(&dir),
                "--notify",
                "oracle1",
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    let path = out["report_path"].as_str().unwrap();
    assert!(
        path.starts_with("reports/fleet-audit-") && path.ends_with(".md"),
        "{path}"
    );
    let report = std::fs::read_to_string(ws.join(path)).unwrap();
    assert!(
        report.contains("| oracle1 | vectors/own.json | ❌ 1/2 vectors pass |"),
        "{report}"
    );
    assert!(
        report.contains("| oracle1 | programs/hello.flux | ✅ valid |"),
        "{report}"
    );
    assert!(
        report.contains("| red | 1 |"),
        "the broken capability file: {report}"
    );
    assert_eq!(out["committed"], true);
    let repo = git2::Repository::open(&ws).unwrap();
    let head = repo.head().unwrap().peel_to_tree().unwrap();
    assert!(
        head.get_path(Path::new(path)).is_ok(),
        "the report is committed"
    );
    let bottles = std::fs::read_dir(ws.join("message-in-a-bottle/for-oracle1"))
        .unwrap()
        .count();
    assert_eq!(bottles, 1, "the summary bottle");
    // A second audit the same day never overwrites the first.
    let again = sb
        .datum_in(
            &ws,
            &[
                "workflow",
                "fleet-audit",
                "--git",
                s(&dir),
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    assert_ne!(again["report_path"], out["report_path"]);
}
