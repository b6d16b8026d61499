//! `datum think` through the real binary: questions compiled to FLUX, run, verified
//! across runtimes, compared as strategies, saved as tools the bootcamp accepts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use datum_test_support::{bundled_registry, git_clean, s, Sandbox};

fn thinker(sb: &Sandbox, name: &str) -> PathBuf {
    let ws = sb.agent(name);
    sb.install(&ws, "think");
    ws
}

#[test]
fn a_question_becomes_a_program_with_its_result_and_bytecode() {
    let sb = Sandbox::new();
    let ws = thinker(&sb, "ada");
    let out = sb
        .datum_in(&ws, &["think", "fibonacci 10"])
        .success()
        .stdout();
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("Compiling... Running FluxVM... Result: [55]")
    );
    let hex = lines
        .next()
        .unwrap()
        .strip_prefix("Bytecode: ")
        .unwrap()
        .to_owned();
    // The bytecode printed is the program: flux-vm runs it to the same answer.
    let again = sb
        .datum_in(&ws, &["flux", "run", "--bytecode", &hex])
        .success()
        .stdout();
    assert_eq!(again.trim(), "[55]");

    let json = sb
        .datum_in(
            &ws,
            &["think", "the 20th Fibonacci number", "--format", "json"],
        )
        .success()
        .json();
    assert_eq!(json["result"], 6765);
    assert_eq!(json["profile"], "stack");
    assert_eq!(json["pattern"], "fibonacci");
    assert!(json["steps"].as_u64().unwrap() > 20);
    assert!(json["program"]
        .as_str()
        .unwrap()
        .contains("; fibonacci(20)"));

    let shown = sb
        .datum_in(&ws, &["think", "sum the numbers 1 through 100", "--show"])
        .success()
        .stdout();
    assert!(
        shown.starts_with("Compiling... Running FluxVM... Result: [5050]\n"),
        "{shown}"
    );
    assert!(
        shown.contains("Program (stack profile,") && shown.contains("; total += term"),
        "{shown}"
    );
    let prime = sb
        .datum_in(&ws, &["think", "is 91 prime"])
        .success()
        .stdout();
    assert!(
        prime.starts_with("Compiling... Running FluxVM... Result: [0] (false)"),
        "{prime}"
    );
}

#[test]
fn verify_agrees_across_profiles_and_builds_and_refusals_exit_non_zero() {
    let sb = Sandbox::new();
    let ws = thinker(&sb, "ada");
    let out = sb
        .datum_in(&ws, &["think", "is 97 prime", "--verify"])
        .success()
        .stdout();
    assert!(out.contains("Result: [1] (true)"), "{out}");
    assert!(
        out.contains(
            "Cross-verified: stack VM, register VM, flux-vm (wasm), flux-vm (native) — AGREE"
        ),
        "{out}"
    );
    assert!(out.contains("Direct computation: 1 — matches"), "{out}");
    let json = sb
        .datum_in(
            &ws,
            &[
                "think",
                "gcd of 1071 and 462",
                "--verify",
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    assert_eq!(json["result"], 21);
    assert_eq!(json["verify"]["agree"], true);
    assert_eq!(json["verify"]["runs"].as_array().unwrap().len(), 4);
    assert!(json["verify"]["register_program"]
        .as_str()
        .unwrap()
        .contains("mod r3, r1, r2"));

    let unknown = sb
        .datum_in(&ws, &["think", "design a FLUX opcode for causal reasoning"])
        .failure();
    assert!(
        unknown
            .stderr()
            .contains("Cannot auto-compile: \"design a FLUX opcode for causal reasoning\""),
        "{}",
        unknown.stderr()
    );
    assert!(
        unknown.stderr().contains("Nearest: "),
        "{}",
        unknown.stderr()
    );
    let words = sb.datum_in(&ws, &["think", "fibonacci ten"]).failure();
    assert!(
        words.stderr().contains("write them in digits"),
        "{}",
        words.stderr()
    );
    let big = sb.datum_in(&ws, &["think", "factorial 13"]).failure();
    assert!(
        big.stderr().contains("overflows a 32-bit word"),
        "{}",
        big.stderr()
    );
    let examples = sb
        .datum_in(&ws, &["think", "f(1)=1, f(2)=4, f(3)=9, f(4)=16"])
        .failure();
    assert!(
        examples.stderr().contains("gives 4 examples")
            && examples.stderr().contains("datum plugin install evolve"),
        "{}",
        examples.stderr()
    );
    // With evolve installed, the examples are handed over.
    sb.install(&ws, "evolve");
    let evolved = sb
        .datum_in(&ws, &["think", "f(1)=2, f(2)=4, f(3)=6, f(4)=8, f(5)=10"])
        .success()
        .stdout();
    assert!(
        evolved.contains("it gives 5 examples, so evolve searched for a program"),
        "{evolved}"
    );
    assert!(
        evolved.contains("1/1 held-out examples — SOLVED"),
        "{evolved}"
    );
}

#[test]
fn strategies_run_side_by_side_and_the_best_is_kept_with_reasons() {
    let sb = Sandbox::new();
    let ws = thinker(&sb, "ada");
    let json = sb
        .datum_in(
            &ws,
            &[
                "think",
                "sum of squares 1 to 10",
                "--parallel",
                "4",
                "--synthesize",
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    let names: Vec<&str> = json["strategies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["strategy"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["stack-loop", "register", "closed-form", "unrolled"]);
    for s in json["strategies"].as_array().unwrap() {
        assert_eq!(s["stack"], serde_json::json!([385]), "{s}");
    }
    assert_eq!(json["synthesized"]["strategy"], "closed-form");
    let reasons = json["synthesized"]["reasons"].to_string();
    assert!(
        reasons.contains("(shortest)") && reasons.contains("(fastest)"),
        "{reasons}"
    );
    let two = sb
        .datum_in(&ws, &["think", "factorial 5", "--parallel", "2"])
        .success()
        .stdout();
    assert!(
        two.contains("(2 of 2 asked for)") && two.contains("register"),
        "{two}"
    );
}

#[test]
fn a_saved_program_is_a_tool_the_bootcamp_accepts() {
    let sb = Sandbox::new();
    let ws = sb.path("ada");
    let registry = bundled_registry();
    sb.datum(&[
        "onboard",
        "--agent",
        "ada",
        "--role",
        "generalist",
        "--workshop",
        s(&ws),
        "--registry",
        s(&registry),
    ])
    .success();
    sb.install(&ws, "think");
    let out = sb
        .datum_in(&ws, &["think", "gcd of 1071 and 462", "--save", "gcd-1071"])
        .success()
        .stdout();
    assert!(
        out.contains("Saved tools/gcd-1071.flux (validated, committed)"),
        "{out}"
    );
    let tool = std::fs::read_to_string(ws.join("tools/gcd-1071.flux")).unwrap();
    assert!(
        tool.starts_with(
            "; gcd-1071 — gcd(1071, 462)\n; question: gcd of 1071 and 462\n; case: -> 21\n"
        ),
        "{tool}"
    );
    assert!(git_clean(&ws));
    let ran = sb
        .datum_in(&ws, &["flux", "run", "tools/gcd-1071.flux"])
        .success()
        .stdout();
    assert_eq!(ran.trim(), "[21]");
    sb.datum_in(&ws, &["flux", "validate", "tools/gcd-1071.flux"])
        .success();
    let progress = sb
        .datum_in(&ws, &["onboard", "--progress"])
        .success()
        .stdout();
    assert!(
        progress.contains("[✓] Exercise 4: Write your first tool"),
        "{progress}"
    );
    let again = sb
        .datum_in(&ws, &["think", "fibonacci 3", "--save", "gcd-1071"])
        .failure();
    assert!(
        again.stderr().contains("already exists"),
        "{}",
        again.stderr()
    );
    let bad = sb
        .datum_in(&ws, &["think", "fibonacci 3", "--save", "../x"])
        .failure();
    assert!(
        bad.stderr().contains("is not a tool name"),
        "{}",
        bad.stderr()
    );
}
