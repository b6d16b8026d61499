//! `datum evolve` through the real binary: the same seed gives the same program, and a
//! saved program validates and passes its held-out cases through `datum flux run`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use datum_e2e::{git_clean, Sandbox};

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
