//! The fleet sources against real components: octocrab against a local
//! GitHub-compatible server (GraphQL pages, blob cache, rate limits, bad tokens, a
//! server that is down, the unauthenticated REST path) and plain git repositories in a
//! temporary folder — and the two giving the same fleet.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use datum_plugin_fleet::error::FleetError;
use datum_plugin_fleet::fleet;
use datum_plugin_fleet::source::git::GitFleet;
use datum_plugin_fleet::source::github::GitHub;
use datum_plugin_fleet::source::Source;
use datum_test_support::github::{plain_git_fleet, FixtureRepo, GitHubFixture, FLEET};

const TOKEN: &str = "ghp_fixture";
const NOW: i64 = 1_795_000_000;
const DAY: i64 = 86_400;

fn capability(name: &str, role: &str) -> String {
    format!(
        "[agent]\nname = \"{name}\"\nemoji = \"🔬\"\nrole = \"{role}\"\n\n[capabilities]\nflux-execution = {{ confidence = 0.9 }}\ntesting = {{ confidence = 0.5 }}\n\n[[links]]\nto = \"oracle1\"\nkind = \"reports-to\"\n"
    )
}

/// `n` repositories; every third holds an agent.
fn org(n: usize) -> Vec<FixtureRepo> {
    (0..n)
        .map(|i| {
            let r = FixtureRepo::new(&format!("repo-{i:04}"), NOW - (i as i64 % 200) * DAY)
                .file("README.md", "# hi\n");
            if i % 3 == 0 {
                r.file(
                    "CAPABILITY.toml",
                    &capability(&format!("agent-{i:04}"), "worker"),
                )
            } else {
                r
            }
        })
        .collect()
}

fn github(fx: &GitHubFixture, token: Option<&str>) -> GitHub {
    GitHub::new("acme", &fx.url, token.map(str::to_owned)).unwrap()
}

#[test]
fn three_pages_then_nothing_downloaded_again() {
    let fx = GitHubFixture::start("acme", org(250), Some(TOKEN));
    let mut gh = github(&fx, Some(TOKEN));
    let first = gh.list().unwrap();
    assert_eq!(first.repos.len(), 250);
    assert_eq!(first.total, Some(250));
    assert!(first.incomplete.is_none());
    // One GraphQL query a page of 100, capability texts inline.
    assert_eq!(fx.requests(), 3);
    assert_eq!(first.requests, 3);
    assert_eq!(fx.capability_texts(), 84);
    assert_eq!(first.downloads, 84);
    let agents = fleet::assemble("github:acme".into(), first.clone(), NOW, 90).agents;
    assert_eq!(agents.len(), 84);

    // The second listing of an unchanged organisation: the same three pages, ids
    // only, every text from the cache.
    gh.remember(&first);
    fx.reset_counts();
    let second = gh.list().unwrap();
    assert_eq!(fx.requests(), 3);
    assert_eq!(
        fx.capability_texts(),
        0,
        "no capability file downloaded again"
    );
    assert_eq!(second.downloads, 0);
    let again = fleet::assemble("github:acme".into(), second, NOW, 90).agents;
    assert_eq!(
        serde_json::to_value(&again).unwrap(),
        serde_json::to_value(&agents).unwrap()
    );
}

#[test]
fn a_changed_capability_file_is_fetched_by_its_blob_id() {
    let mut repos = org(30);
    let fx = GitHubFixture::start("acme", repos.clone(), Some(TOKEN));
    let mut gh = github(&fx, Some(TOKEN));
    let first = gh.list().unwrap();
    gh.remember(&first);
    drop(fx);
    // One agent edits its file; a new one appears.
    repos[3] = repos[3]
        .clone()
        .file("CAPABILITY.toml", &capability("agent-0003", "lead"));
    repos[4] = repos[4]
        .clone()
        .file("CAPABILITY.toml", &capability("newcomer", "intern"));
    let fx = GitHubFixture::start("acme", repos, Some(TOKEN));
    let mut gh2 = github(&fx, Some(TOKEN));
    gh2.cache = gh.cache.clone();
    let second = gh2.list().unwrap();
    // One page, then one query for the two new blobs.
    assert_eq!(fx.requests(), 2);
    assert_eq!(fx.capability_texts(), 2);
    let f = fleet::assemble("github:acme".into(), second, NOW, 90);
    assert_eq!(f.agent("agent-0003").unwrap().role.as_deref(), Some("lead"));
    assert!(f.agent("newcomer").is_some());
    assert_eq!(f.agents.len(), 11);
}

#[test]
fn a_secondary_rate_limit_is_waited_out() {
    let fx = GitHubFixture::start("acme", org(150), Some(TOKEN));
    fx.counters.secondary_limits.store(1, Ordering::SeqCst);
    let started = Instant::now();
    let listing = github(&fx, Some(TOKEN)).list().unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retry-after: 1 was honoured"
    );
    assert!(listing.incomplete.is_none());
    assert_eq!(listing.repos.len(), 150);
    assert_eq!(fx.requests(), 3, "the refused request, then two pages");
}

#[test]
fn a_spent_primary_limit_shows_what_was_found_and_when_to_retry() {
    let fx = GitHubFixture::start("acme", org(250), Some(TOKEN));
    fx.counters.primary_after.store(2, Ordering::SeqCst);
    let listing = github(&fx, Some(TOKEN)).list().unwrap();
    assert_eq!(listing.repos.len(), 100, "the first page arrived");
    assert!(listing.incomplete.is_some());
    let warning = listing.warnings.join("\n");
    assert!(
        warning.contains("after 100 of 250 repositories (150 missing)"),
        "{warning}"
    );
    assert!(
        warning.contains("resets at") && warning.contains("in 30 min"),
        "{warning}"
    );
    let f = fleet::assemble("github:acme".into(), listing, NOW, 90);
    assert!(!f.complete);
    assert_eq!(f.missing, Some(150));
}

#[test]
fn a_bad_token_is_a_clear_error() {
    let fx = GitHubFixture::start("acme", org(5), Some(TOKEN));
    let err = github(&fx, Some("ghp_wrong")).list().unwrap_err();
    assert!(matches!(err, FleetError::Refused { .. }), "{err:?}");
    let e = datum_plugin_api::PluginError::from(err);
    assert!(
        e.message.contains("401") && e.message.contains("Bad credentials"),
        "{}",
        e.message
    );
    assert!(e.hint.unwrap().contains("github-token"));
}

#[test]
fn a_server_that_is_down_is_unreachable_not_empty() {
    let port = datum_test_support::free_port();
    let err = GitHub::new(
        "acme",
        &format!("http://127.0.0.1:{port}"),
        Some(TOKEN.into()),
    )
    .unwrap()
    .list()
    .unwrap_err();
    assert!(matches!(err, FleetError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("unreachable"));
}

#[test]
fn an_unknown_organisation_is_refused() {
    let fx = GitHubFixture::start("acme", org(3), Some(TOKEN));
    let err = GitHub::new("nobody", &fx.url, Some(TOKEN.into()))
        .unwrap()
        .list()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Could not resolve to an Organization"),
        "{err}"
    );
}

#[test]
fn without_a_token_rest_and_etags_keep_a_second_listing_free() {
    let fx = GitHubFixture::start("acme", org(12), None);
    let mut gh = github(&fx, None);
    let first = gh.list().unwrap();
    assert_eq!(first.repos.len(), 12);
    // One page, twelve root listings, four capability blobs.
    assert_eq!(fx.requests(), 1 + 12 + 4);
    assert_eq!(fx.counters.graphql.load(Ordering::SeqCst), 0);
    gh.remember(&first);
    fx.reset_counts();
    let second = gh.list().unwrap();
    assert_eq!(fx.capability_texts(), 0);
    assert_eq!(
        fx.counters.not_modified.load(Ordering::SeqCst),
        12,
        "answered by ETag"
    );
    let a = fleet::assemble("x".into(), first, NOW, 90);
    let b = fleet::assemble("x".into(), second, NOW, 90);
    assert_eq!(
        serde_json::to_value(&a.agents).unwrap(),
        serde_json::to_value(&b.agents).unwrap()
    );
    assert_eq!(a.agents.len(), 4);
}

#[test]
fn plain_git_and_github_give_the_same_fleet() {
    let tmp = tempfile::tempdir().unwrap();
    plain_git_fleet(tmp.path(), NOW);
    let from_git = GitFleet::folder(tmp.path()).list().unwrap();
    assert_eq!(from_git.repos.len(), 6);
    let git = fleet::assemble("git:fleet".into(), from_git, NOW, 90);

    let repos: Vec<FixtureRepo> = FLEET
        .iter()
        .map(|n| FixtureRepo::from_git(&tmp.path().join(n)))
        .collect();
    let fx = GitHubFixture::start("fleet", repos, Some(TOKEN));
    let gh = fleet::assemble(
        "github:fleet".into(),
        GitHub::new("fleet", &fx.url, Some(TOKEN.into()))
            .unwrap()
            .list()
            .unwrap(),
        NOW,
        90,
    );
    let rest = GitHubFixture::start(
        "fleet",
        FLEET
            .iter()
            .map(|n| FixtureRepo::from_git(&tmp.path().join(n)))
            .collect(),
        None,
    );
    let via_rest = fleet::assemble(
        "github:fleet".into(),
        GitHub::new("fleet", &rest.url, None)
            .unwrap()
            .list()
            .unwrap(),
        NOW,
        90,
    );

    // Everything but where the repositories live.
    let view = |f: &fleet::Fleet| {
        let mut v = serde_json::to_value(&f.agents).unwrap();
        for a in v.as_array_mut().unwrap() {
            a.as_object_mut().unwrap().remove("url");
        }
        (
            v,
            f.repositories,
            f.without_capability,
            f.warnings
                .iter()
                .map(|w| w.split_once(": ").unwrap().1.to_owned())
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(view(&git), view(&gh));
    assert_eq!(view(&git), view(&via_rest));

    let names: Vec<&str> = git.agents.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["datum", "jetson", "oracle1"]);
    assert!(git.agent("jetson").unwrap().stale, "120 days idle");
    assert_eq!(git.agent("oracle1").unwrap().capability_count, 2);
    // The broken file is a warning naming repository, file, line and column.
    assert_eq!(git.warnings.len(), 1);
    assert!(
        git.warnings[0].contains("broken: CAPABILITY.toml line 3, column"),
        "{}",
        git.warnings[0]
    );
    assert_eq!(git.without_capability, 2, "notes and the empty repository");
    let best: Vec<&str> = git
        .who("testing")
        .iter()
        .map(|(a, _)| a.name.as_str())
        .collect();
    assert_eq!(best, ["datum", "oracle1"], "best confidence first");
}

#[test]
fn hostile_capability_files_are_warnings_never_raw_text() {
    let huge = format!(
        "[agent]\nname = \"huge\"\n# {}\n",
        "x".repeat(2 * 1024 * 1024)
    );
    let nested = format!(
        "[agent]\nname = \"deep\"\n[capabilities]\nx = {}1{}\n",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let ansi = "[agent]\nname = \"evil\\u001b[2J\"\nrole = \"\\u001b]8;;http://x\\u0007click\"\n[capabilities]\n\"a\\u001b[31mb\" = { confidence = 0.5 }\n";
    let types = "[agent]\nname = 7\nstatus = \"dancing\"\n[capabilities]\nx = { confidence = \"high\", stars = 99 }\ny = 3\n[[links]]\nto = []\n";
    let repos = vec![
        FixtureRepo::new("huge", NOW).file("CAPABILITY.toml", &huge),
        FixtureRepo::new("deep", NOW).file("CAPABILITY.toml", &nested),
        FixtureRepo::new("ansi", NOW).file("CAPABILITY.toml", ansi),
        FixtureRepo::new("types", NOW).file("CAPABILITY.toml", types),
        FixtureRepo::new("fine", NOW).file("CAPABILITY.toml", "[agent]\nname = \"fine\"\n"),
    ];
    let fx = GitHubFixture::start("acme", repos, Some(TOKEN));
    let listing = github(&fx, Some(TOKEN)).list().unwrap();
    let f = fleet::assemble("github:acme".into(), listing, NOW, 90);
    let shown: Vec<&fleet::Agent> = f.agents.iter().collect();
    let text = fleet::discover_text(&f, &shown);
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "no control characters reach the terminal: {text:?}"
    );
    assert!(
        f.agent("fine").is_some(),
        "the rest of the fleet still shows"
    );
    assert!(
        f.warnings
            .iter()
            .any(|w| w.contains("huge") && w.contains("not read")),
        "{:?}",
        f.warnings
    );
    assert!(
        f.warnings.iter().any(|w| w.contains("deep")),
        "{:?}",
        f.warnings
    );
    assert!(
        f.warnings.iter().any(|w| w.contains("types")),
        "{:?}",
        f.warnings
    );
    let json = serde_json::to_string(&f).unwrap();
    assert!(!json.contains('\u{1b}'), "escaped in JSON too");
}

#[test]
fn git_urls_are_mirrored_and_read_like_a_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet_dir = tmp.path().join("fleet");
    std::fs::create_dir_all(&fleet_dir).unwrap();
    plain_git_fleet(&fleet_dir, NOW);
    let folder = fleet::assemble(
        "git:x".into(),
        GitFleet::folder(&fleet_dir).list().unwrap(),
        NOW,
        90,
    );
    let urls: Vec<String> = FLEET
        .iter()
        .map(|n| format!("file://{}", fleet_dir.join(n).display()))
        .collect();
    let cache = tmp.path().join("cache");
    let mut source = GitFleet::urls(urls.clone(), &cache);
    let mirrored = fleet::assemble("git:x".into(), source.list().unwrap(), NOW, 90);
    let names = |f: &fleet::Fleet| {
        f.agents
            .iter()
            .map(|a| (a.name.clone(), a.last_activity.clone(), a.capability_count))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&mirrored), names(&folder));
    assert_eq!(mirrored.without_capability, folder.without_capability);
    // A later commit arrives on the next listing (the mirror is fetched, not frozen).
    datum_test_support::github::commit_files(
        &fleet_dir.join("notes"),
        &[(
            "CAPABILITY.toml".into(),
            "[agent]\nname = \"notes\"\n".into(),
        )],
        NOW,
    );
    let again = fleet::assemble("git:x".into(), source.list().unwrap(), NOW, 90);
    assert!(again.agent("notes").is_some());
    // An unreachable URL is an error, not an empty fleet.
    let err = GitFleet::urls(
        vec![format!("file://{}", tmp.path().join("gone").display())],
        &cache,
    )
    .list()
    .unwrap_err();
    assert!(matches!(err, FleetError::Unreachable { .. }), "{err:?}");
}

/// A bare repository whose HEAD holds one CAPABILITY.toml entry of `mode`.
fn raw_capability(dir: &std::path::Path, name: &str, mode: i32, body: &[u8]) {
    let repo = git2::Repository::init_bare(dir.join(name)).unwrap();
    let blob = repo.blob(body).unwrap();
    let mut tree = repo.treebuilder(None).unwrap();
    tree.insert("CAPABILITY.toml", blob, mode).unwrap();
    let tree = repo.find_tree(tree.write().unwrap()).unwrap();
    let sig = git2::Signature::new("eve", "eve@example.invalid", &git2::Time::new(NOW, 0)).unwrap();
    repo.commit(Some("HEAD"), &sig, &sig, "x", &tree, &[])
        .unwrap();
}

#[test]
fn hostile_plain_git_repositories_are_not_followed_or_read_whole() {
    let tmp = tempfile::tempdir().unwrap();
    // A link named CAPABILITY.toml is not a capability file: /etc/passwd is never read.
    raw_capability(tmp.path(), "link.git", 0o120000, b"/etc/passwd");
    let huge = format!(
        "[agent]\nname = \"huge\"\n# {}\n",
        "x".repeat(2 * 1024 * 1024)
    );
    raw_capability(tmp.path(), "huge.git", 0o100644, huge.as_bytes());
    raw_capability(
        tmp.path(),
        "fine.git",
        0o100644,
        b"[agent]\nname = \"fine\"\n",
    );
    let listing = GitFleet::folder(tmp.path()).list().unwrap();
    let link = listing.repos.iter().find(|r| r.name == "link").unwrap();
    assert!(link.capability.is_none(), "a symbolic link is not read");
    let big = listing.repos.iter().find(|r| r.name == "huge").unwrap();
    assert!(
        big.capability.as_ref().unwrap().text.is_none(),
        "over the limit: not read"
    );
    let f = fleet::assemble("git:x".into(), listing, NOW, 90);
    assert_eq!(
        f.agents.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["fine"]
    );
    assert!(
        f.warnings
            .iter()
            .any(|w| w.contains("huge") && w.contains("not read")),
        "{:?}",
        f.warnings
    );
}
