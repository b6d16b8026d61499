//! The flux-vm commands called the way the host calls them (through `Plugin::invoke`).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use datum_plugin::{Expectation, FluxVm, EXAMPLES};
use datum_plugin_api::{ErrorKind, FileArg, Host, Output, Plugin, PluginError, Request};
use datum_plugin_flux_vm as datum_plugin;
use serde_json::{json, Value};

fn call(request: Request) -> Result<Output, PluginError> {
    let no_services = |_: &str| {
        r#"{"ok":false,"error":{"kind":"permission-denied","message":"no host in this test"}}"#
            .to_owned()
    };
    FluxVm::invoke(&request, &Host::new(&no_services))
}

fn file(path: &str, bytes: &[u8]) -> Value {
    FileArg::to_value(path, bytes)
}

#[test]
fn every_example_gives_the_result_its_source_promises() {
    for e in EXAMPLES {
        let out =
            call(Request::new("flux run").with_arg("program", FileArg::missing(e.name))).unwrap();
        match e.expectation() {
            Expectation::Stack(stack) => {
                assert_eq!(out.data["stack"], json!(stack), "{}", e.name);
                assert_ne!(out.data["status"], "trap", "{}", e.name);
            }
            Expectation::Trap(code) => assert_eq!(out.data["error"], code, "{}", e.name),
        }
    }
    let names: Vec<&str> = EXAMPLES.iter().map(|e| e.name).collect();
    for required in [
        "hello",
        "fibonacci",
        "factorial",
        "gcd",
        "sum",
        "sieve",
        "a2a-signal",
        "confidence",
        "subroutine",
        "fuel-loop",
    ] {
        assert!(names.contains(&required), "missing example {required}");
    }
}

#[test]
fn the_examples_vector_file_is_in_step_with_the_sources() {
    let text = include_str!("../../../vectors/examples.json");
    let file = flux_core::conformance::VectorFile::parse(text).unwrap();
    assert_eq!(file.vectors.len(), EXAMPLES.len());
    for (v, e) in file.vectors.iter().zip(EXAMPLES) {
        let code = flux_core::asm::assemble(e.source).unwrap();
        assert_eq!(
            v.code().unwrap(),
            code,
            "{} is stale: regenerate vectors/examples.json",
            v.name
        );
    }
}

#[test]
fn the_manifest_examples_hold() {
    let manifest: toml::Table = toml::from_str(FluxVm::MANIFEST).unwrap();
    let mut checked = 0;
    for command in manifest["commands"].as_array().unwrap() {
        for example in command
            .get("examples")
            .and_then(|e| e.as_array())
            .into_iter()
            .flatten()
        {
            let run = example["run"].as_str().unwrap();
            let words: Vec<&str> = run.split_whitespace().collect();
            let path = command["path"].as_str().unwrap();
            let rest = &words[1 + path.split_whitespace().count()..];
            let mut request = Request::new(path);
            let mut i = 0;
            while i < rest.len() {
                if let Some(flag) = rest[i].strip_prefix("--") {
                    request = request.with_arg(flag, rest[i + 1]);
                    i += 2;
                } else {
                    let positional = if path == "flux run" {
                        "program"
                    } else {
                        "file"
                    };
                    request = request.with_arg(positional, FileArg::missing(rest[i]));
                    i += 1;
                }
            }
            let out = call(request).unwrap();
            assert_eq!(out.text.as_deref(), example["output"].as_str(), "{run}");
            checked += 1;
        }
    }
    assert!(checked >= 3);
}

#[test]
fn run_reads_sources_images_and_hex() {
    let out = call(
        Request::new("flux run")
            .with_arg("program", file("/x/p.flux", b"push 2\npush 3\nmul\nhalt\n")),
    )
    .unwrap();
    assert_eq!(out.text.as_deref(), Some("[6]"));
    // A .bin image with a header naming the reg profile.
    let image = flux_core::with_header(
        flux_core::Profile::Reg,
        &[0x18, 0x01, 0x07, 0x00, 0x0c, 0x01, 0x00],
    );
    let out = call(Request::new("flux run").with_arg("program", file("/x/p.bin", &image))).unwrap();
    assert_eq!(
        (out.data["stack"].clone(), out.data["profile"].clone()),
        (json!([7]), json!("reg"))
    );
    // The header wins; contradicting it is an error.
    let err = call(
        Request::new("flux run")
            .with_arg("program", file("/x/p.bin", &image))
            .with_arg("profile", "stack"),
    )
    .unwrap_err();
    assert!(
        err.message.contains("header says profile reg"),
        "{}",
        err.message
    );
    // --bytecode, fuel, initial stack and trace.
    let out = call(
        Request::new("flux run")
            .with_arg("bytecode", "10 00")
            .with_arg("stack", "3,4")
            .with_arg("trace", true),
    )
    .unwrap();
    assert_eq!(out.data["stack"], json!([7]));
    assert_eq!(out.data["trace"].as_array().unwrap().len(), 2);
    let out = call(
        Request::new("flux run")
            .with_arg("bytecode", "50fdff")
            .with_arg("fuel", 10),
    )
    .unwrap();
    assert_eq!(out.data["error"], "FUEL_EXHAUSTED");
    let out = call(
        Request::new("flux run")
            .with_arg("bytecode", "50fdff")
            .with_arg("max-steps", 100),
    )
    .unwrap();
    assert_eq!(
        (out.data["error"].clone(), out.data["steps"].clone()),
        (json!("STEP_LIMIT"), json!(100))
    );
}

#[test]
fn bad_programs_are_argument_errors_that_say_where() {
    let err = call(
        Request::new("flux run").with_arg("program", file("/x/bad.flux", b"push 1\n  frob\n")),
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgs);
    assert!(err.message.contains("line 2, column 3"), "{}", err.message);
    let err =
        call(Request::new("flux run").with_arg("program", FileArg::missing("nosuch"))).unwrap_err();
    assert!(err.hint.unwrap().contains("fibonacci"));
    let err = call(Request::new("flux run")).unwrap_err();
    assert!(err.hint.unwrap().contains("--bytecode"));
}

#[test]
fn asm_and_disasm_round_trip_every_example() {
    for e in EXAMPLES {
        let hex = call(Request::new("flux asm").with_arg("file", FileArg::missing(e.name)))
            .unwrap()
            .text
            .unwrap();
        let listing = call(Request::new("flux disasm").with_arg("bytecode", hex.as_str()))
            .unwrap()
            .text
            .unwrap();
        let again = call(
            Request::new("flux asm").with_arg("file", file("/x/again.flux", listing.as_bytes())),
        )
        .unwrap()
        .text
        .unwrap();
        assert_eq!(again, hex, "{}", e.name);
    }
    let with_header = call(
        Request::new("flux asm")
            .with_arg("file", FileArg::missing("gcd"))
            .with_arg("header", true),
    )
    .unwrap();
    assert!(with_header.text.unwrap().starts_with("464c555803020000"));
}

#[test]
fn validate_passes_the_examples_and_fails_broken_code() {
    let out = call(Request::new("flux validate").with_arg("all-examples", true)).unwrap();
    assert_eq!(out.data["ok"], true);
    let err = call(
        Request::new("flux validate")
            .with_arg("files", json!([file("/x/u.flux", b"push 1\nadd\nhalt\n")])),
    )
    .unwrap_err();
    assert!(
        err.message.contains("stack-underflow") && err.message.contains("0005"),
        "{}",
        err.message
    );
}

#[test]
fn conformance_on_the_projects_own_vectors_is_clean() {
    let out = call(Request::new("flux conformance")).unwrap();
    assert_eq!(out.data["ok"], true);
    let total: u64 = out.data["suites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["passed"].as_u64().unwrap())
        .sum();
    assert!(total >= 150, "{total}");
    let v3 = call(Request::new("flux conformance").with_arg("v3", true)).unwrap();
    assert_eq!(v3.data["suites"].as_array().unwrap().len(), 1);
    let traps = call(Request::new("flux conformance").with_arg("category", "trap")).unwrap();
    let n: u64 = traps.data["suites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["total"].as_u64().unwrap())
        .sum();
    assert!(n >= 20, "{n}");
}

#[test]
fn an_unexpected_conformance_result_is_an_error() {
    // A vector that expects the wrong answer, with no expected-failure entry.
    let suite = json!({"version": "2.1", "vectors": [{"name": "wrong", "bytecode_hex": "5501000000 00", "expected_stack": [2]}]});
    let err = call(Request::new("flux conformance").with_arg(
        "vectors",
        file("/x/mine.json", suite.to_string().as_bytes()),
    ))
    .unwrap_err();
    assert!(
        err.message.contains("unexpected: wrong FAILED"),
        "{}",
        err.message
    );
    // Listed as an expected failure, it is fine; and then a pass would be unexpected.
    let expected = json!({"mine.json": {"wrong": "expects 2 on purpose"}});
    let out = call(
        Request::new("flux conformance")
            .with_arg(
                "vectors",
                file("/x/mine.json", suite.to_string().as_bytes()),
            )
            .with_arg(
                "expect-failures",
                file("/x/xf.json", expected.to_string().as_bytes()),
            ),
    )
    .unwrap();
    assert_eq!(out.data["suites"][0]["expected_failures"], 1);
    // Pinned by reason: failing as pinned is expected; failing otherwise is not.
    let run_with = |pin: &str| {
        let expected = json!({"mine.json": {"wrong": {"why": "on purpose", "fails_with": pin}}});
        call(
            Request::new("flux conformance")
                .with_arg(
                    "vectors",
                    file("/x/mine.json", suite.to_string().as_bytes()),
                )
                .with_arg(
                    "expect-failures",
                    file("/x/xf.json", expected.to_string().as_bytes()),
                ),
        )
    };
    let ok = run_with("expected stack [2], got [1]").unwrap();
    assert_eq!(ok.data["suites"][0]["expected_failures"], 1);
    let err = run_with("unexpected trap DIV_ZERO").unwrap_err();
    assert!(
        err.message.contains("fails with `expected stack [2], got [1]`, but FLUX.md §17.2 says it fails with `unexpected trap DIV_ZERO`"),
        "{}",
        err.message
    );
}

#[test]
fn examples_command_lists_names_and_expectations() {
    let out = call(Request::new("flux examples")).unwrap();
    let list = out.data["examples"].as_array().unwrap();
    assert_eq!(list.len(), EXAMPLES.len());
    assert_eq!(list[1]["name"], "fibonacci");
    assert_eq!(list[1]["expect"]["stack"], json!([55]));
}
