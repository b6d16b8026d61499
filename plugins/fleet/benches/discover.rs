//! Discovery of a simulated 1,000-repository organisation on a local GitHub-compatible
//! server: the GraphQL source (one query per 100 repositories, capability files
//! inline) next to the same-run baseline of one REST call per repository, then a second
//! GraphQL run answered from the blob cache. Prints requests, capability downloads,
//! wall time and the ratio.
//!
//!   cargo bench -p datum-plugin-fleet --bench discover [-- REPOS]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use datum_plugin_fleet::source::github::GitHub;
use datum_plugin_fleet::source::{Listing, Source};
use datum_test_support::github::{FixtureRepo, GitHubFixture};

const TOKEN: &str = "ghp_bench";

fn org(n: usize) -> Vec<FixtureRepo> {
    let now = 1_795_000_000;
    (0..n)
        .map(|i| {
            let r = FixtureRepo::new(&format!("repo-{i:04}"), now - (i as i64 % 400) * 86_400).file("README.md", "# x\n");
            if i % 3 == 0 {
                r.file(
                    "CAPABILITY.toml",
                    &format!("[agent]\nname = \"agent-{i:04}\"\nrole = \"worker\"\n[capabilities]\nflux-execution = {{ confidence = 0.{} }}\n", i % 10),
                )
            } else {
                r
            }
        })
        .collect()
}

fn timed(gh: &mut GitHub) -> (Listing, f64) {
    let t = Instant::now();
    let l = gh.list().unwrap();
    (l, t.elapsed().as_secs_f64())
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let repos = org(n);
    let graphql = GitHubFixture::start("acme", repos.clone(), Some(TOKEN));
    let rest = GitHubFixture::start("acme", repos, None);

    let mut naive = GitHub::new("acme", &rest.url, None).unwrap();
    let (base, base_s) = timed(&mut naive);
    let mut gh = GitHub::new("acme", &graphql.url, Some(TOKEN.into())).unwrap();
    let (first, first_s) = timed(&mut gh);
    assert_eq!(first.repos.len(), base.repos.len());
    gh.remember(&first);
    graphql.reset_counts();
    let (second, second_s) = timed(&mut gh);

    println!("measure: discover of a {n}-repository organisation (local GitHub-compatible server)");
    println!(
        "  baseline  one REST call per repository: {:>5} requests, {:>4} capability downloads, {:>8.1} ms",
        rest.requests(),
        rest.capability_texts(),
        base_s * 1e3
    );
    println!(
        "  graphql   first run:                    {:>5} requests, {:>4} capability downloads, {:>8.1} ms  ({:.1}x fewer requests, {:.1}x faster)",
        first.requests,
        first.downloads,
        first_s * 1e3,
        rest.requests() as f64 / first.requests.max(1) as f64,
        base_s / first_s
    );
    println!(
        "  graphql   second run (blob cache):      {:>5} requests, {:>4} capability downloads, {:>8.1} ms  ({:.1}x faster than baseline)",
        graphql.requests(),
        graphql.capability_texts(),
        second_s * 1e3,
        base_s / second_s
    );
    assert_eq!(second.downloads, 0);
}
