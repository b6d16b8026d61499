//! `datum evolve` through the real binary: the same seed gives the same program, and a
//! saved program validates and passes its held-out cases through `datum flux run`;
//! a fleet of nodes on NATS evaluates the same search to the same program.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use datum_test_support::{git_clean, NatsServer, Sandbox};

#[test]
fn the_same_seed_gives_the_same_program_and_a_saved_one_passes_its_held_out_cases() {
    let sb = Sandbox::new();
    let ws = sb.agent("ada");
    sb.install(&ws, "evolve");
    let run = |seed: &str| {
        sb.datum_in(
            &ws,
            &[
                "evolve",
                "--target",
                "double",
                "--population",
                "300",
                "--generations",
                "8",
                "--seed",
                seed,
                "--format",
                "json",
            ],
        )
        .success()
        .json()
    };
    let (a, b) = (run("7"), run("7"));
    assert_eq!(a["bytecode"], b["bytecode"], "same seed, same program");
    assert_eq!(a["generations"], b["generations"], "and the same search");
    assert_eq!(a["params"]["seed"], 7);

    let out = sb
        .datum_in(
            &ws,
            &[
                "evolve",
                "--target",
                "double",
                "--population",
                "1000",
                "--generations",
                "20",
                "--save",
                "double",
            ],
        )
        .success()
        .stdout();
    assert!(out.contains("Generation 1: fitness="), "{out}");
    assert!(out.contains("held-out cases — SOLVED"), "{out}");
    assert!(
        out.contains("Best program saved to tools/double.flux"),
        "{out}"
    );
    assert!(git_clean(&ws));
    sb.datum_in(&ws, &["flux", "validate", "tools/double.flux"])
        .success();
    let tool = std::fs::read_to_string(ws.join("tools/double.flux")).unwrap();
    // Every held-out case of the preset, through flux-vm.
    for (x, want) in [
        (3, 6),
        (-8, -16),
        (41, 82),
        (999, 1998),
        (-250, -500),
        (10_000, 20_000),
    ] {
        assert!(tool.contains(&format!("; case: {x} -> {want}\n")), "{tool}");
        let got = sb
            .datum_in(
                &ws,
                &[
                    "flux",
                    "run",
                    "tools/double.flux",
                    "--stack",
                    &x.to_string(),
                ],
            )
            .success()
            .stdout();
        assert_eq!(got.trim(), format!("[{want}]"));
    }

    let unknown = sb
        .datum_in(&ws, &["evolve", "--target", "teleport"])
        .failure();
    assert!(
        unknown.stderr().contains("no preset `teleport`") && unknown.stderr().contains("gcd"),
        "{}",
        unknown.stderr()
    );
    let presets = sb
        .datum_in(&ws, &["evolve", "presets", "--format", "json"])
        .success()
        .json();
    assert!(presets["presets"].as_array().unwrap().len() >= 10);
}

#[test]
fn an_interrupted_run_keeps_its_best_program() {
    let sb = Sandbox::new();
    let ws = sb.agent("ada");
    sb.install(&ws, "evolve");
    // A hard target and a long run: it will not finish by itself in this test.
    let mut run = sb.spawn_in(
        &ws,
        &[
            "evolve",
            "--target",
            "count-primes",
            "--population",
            "2000",
            "--generations",
            "100000",
            "--save",
            "primes",
        ],
    );
    run.wait_for("Generation 2:", std::time::Duration::from_secs(60));
    // SIGTERM, not SIGINT: a job started in the background by a non-interactive shell
    // (a CI runner, `cmd &` in a script) inherits SIGINT as ignored, so SIGINT would
    // test the shell, not datum. For datum both mean the same: stop now, no clean-up.
    let pid = run.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = run.wait_exit(std::time::Duration::from_secs(30));
    assert!(!status.success());
    let tool = std::fs::read_to_string(ws.join("tools/primes.flux")).unwrap();
    assert!(
        tool.starts_with("; primes — evolved for count-primes"),
        "{tool}"
    );
    assert!(tool.contains("best so far, generation "), "{tool}");
    assert!(tool.contains("; case: 50 -> 15\n"), "{tool}");
    // The best so far is a whole, valid tool.
    sb.datum_in(&ws, &["flux", "validate", "tools/primes.flux"])
        .success();
    // A second run does not overwrite it.
    let again = sb
        .datum_in(&ws, &["evolve", "--target", "double", "--save", "primes"])
        .failure();
    assert!(
        again.stderr().contains("already exists"),
        "{}",
        again.stderr()
    );
}

/// `--nodes`: each generation goes to the fleet's work queue as one batch (two nodes on
/// a private NATS server) and the search is the same, byte for byte, as on this machine.
#[test]
fn a_fleet_of_nodes_evolves_the_same_program_as_this_machine() {
    let nats = NatsServer::start();
    let sb = Sandbox::new();
    let ws = sb.agent("ada");
    sb.install(&ws, "evolve");
    sb.install(&ws, "bus");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "evolve",
            "--target",
            "absolute",
            "--population",
            "120",
            "--generations",
            "4",
            "--seed",
            "3",
            "--format",
            "json",
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    fn as_refs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let none = sb
        .datum_in(&ws, &as_refs(&args(&["--nodes", &nats.url])))
        .failure();
    let error = format!("{}{}", none.stdout(), none.stderr());
    assert!(
        error.contains("no node answered") && error.contains("datum node start"),
        "no nodes: the error says how to start one\n{error}"
    );
    let nodes: Vec<_> = ["e1", "e2"]
        .iter()
        .map(|name| {
            let node = sb.spawn_in(&ws, &["node", "start", "--nats", &nats.url, "--name", name]);
            node.wait_for("joined", std::time::Duration::from_secs(60));
            node
        })
        .collect();
    let here = sb.datum_in(&ws, &as_refs(&args(&[]))).success().json();
    let fleet = sb
        .datum_in(
            &ws,
            &as_refs(&args(&["--nodes", &nats.url, "--wait-for-nodes", "2"])),
        )
        .success()
        .json();
    assert_eq!(fleet["runtime"], "nodes");
    assert!(
        fleet["device"].as_str().unwrap().starts_with("2 node(s)"),
        "{fleet}"
    );
    assert_eq!(fleet["bytecode"], here["bytecode"], "the same program");
    assert_eq!(fleet["generations"], here["generations"], "the same search");
    assert_eq!(fleet["instructions"], here["instructions"], "the same work");
    // The nodes did the work.
    let worked: usize = nodes
        .iter()
        .map(|n| n.output().matches(" runs").count())
        .sum();
    assert!(worked >= 4, "one batch per generation went to the nodes");
    drop(nodes);
}
