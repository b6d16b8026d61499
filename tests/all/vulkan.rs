//! The Vulkan backend through the real binary, on whatever device this machine has
//! (lavapipe in CI: `scripts/test` installs mesa-vulkan-drivers). No device is a
//! failure that names the package, never a skip.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::PathBuf;

use datum_test_support::{bundled_registry, s, Sandbox};

fn workshop(sb: &Sandbox) -> PathBuf {
    let ws = sb.path("gpu-agent");
    sb.datum(&[
        "boot",
        "--workshop",
        s(&ws),
        "--name",
        "gpu-agent",
        "--registry",
        s(&bundled_registry()),
    ])
    .success();
    sb.datum_in(
        &ws,
        &[
            "plugin",
            "install",
            "vulkan-compute",
            "--registry",
            s(&bundled_registry()),
        ],
    )
    .success();
    ws
}

/// `datum ARGS --format json` in `ws`, which must succeed.
fn json(sb: &Sandbox, ws: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let mut args = args.to_vec();
    args.extend_from_slice(&["--format", "json"]);
    sb.datum_in(ws, &args).success().json()
}

#[test]
fn a_device_is_listed_and_runs_flux_programs() {
    let sb = Sandbox::new();
    let ws = workshop(&sb);
    let list = sb.datum_in(&ws, &["gpu", "list", "--format", "json"]);
    assert!(
        list.output.status.success(),
        "no Vulkan device: install mesa-vulkan-drivers (scripts/test does): {}",
        list.stderr()
    );
    let devices = list.json()["devices"].as_array().unwrap().clone();
    assert!(!devices.is_empty());
    assert!(devices[0]["name"].as_str().is_some_and(|n| !n.is_empty()));

    let run = sb
        .datum_in(&ws, &["flux", "run", "fibonacci", "--runtime", "vulkan"])
        .success();
    assert!(
        run.stdout().starts_with("ran on ") && run.stdout().trim_end().ends_with("[55]"),
        "{}",
        run.stdout()
    );
    let trap = json(
        &sb,
        &ws,
        &["flux", "run", "--bytecode", "10", "--runtime", "vulkan"],
    );
    assert_eq!(trap["error"], "STACK_UNDERFLOW");
    assert_eq!(trap["trap_pc"], 0);

    // The whole conformance run with GPU results is judged like any other runtime.
    let conf = json(&sb, &ws, &["flux", "conformance", "--runtime", "vulkan"]);
    assert_eq!(conf["ok"], true, "{conf}");
    // Not merely the words: a real share of the vectors must have run on the device.
    let runtime = conf["runtime"].as_str().unwrap();
    let on_device: usize = runtime
        .split(" vectors on the device")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no device count in {runtime:?}"));
    assert!(
        on_device >= 50,
        "only {on_device} vectors ran on the device: {runtime}"
    );

    // The batch API: every program with every stack (73 is FDIV: 1e-45/3e-45 = 0.5,
    // 1.0/0 = ∞).
    let batch = sb
        .datum_in(
            &ws,
            &[
                "flux",
                "batch",
                "--programs",
                r#"["550500000055070000001000", "10", "73"]"#,
                "--stacks",
                "[[1, 2], [1065353216, 0]]",
                "--cross",
                "--format",
                "json",
            ],
        )
        .success()
        .json();
    let stacks: Vec<_> = batch["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["stack"].clone())
        .collect();
    assert_eq!(
        serde_json::Value::Array(stacks),
        serde_json::json!([
            [1, 2, 12],
            [1065353216, 0, 12],
            [3],
            [1065353216],
            [1056964608],
            [2139095040]
        ])
    );
}

#[test]
fn a_batch_session_opens_the_device_once() {
    let sb = Sandbox::new();
    let ws = workshop(&sb);
    let call = r#"{"command": "flux batch", "args": {"programs": ["10"], "stacks": [[1, 2]]}}"#;
    let out = sb
        .datum_stdin(&ws, &["batch"], &format!("{call}\n{call}\n"))
        .success();
    let replies: Vec<serde_json::Value> = out
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(replies.len(), 2, "{}", out.stdout());
    assert_eq!(replies[0]["data"]["stats"]["reused_device"], false);
    assert_eq!(replies[1]["data"]["stats"]["reused_device"], true);
    assert_eq!(replies[1]["data"]["results"], replies[0]["data"]["results"]);
}

#[test]
fn no_device_is_an_error_naming_the_fix_and_cpu_fallback_only_when_asked() {
    let sb = Sandbox::new();
    let ws = workshop(&sb);
    let none = PathBuf::from("/nonexistent/icd.json");
    let env = [
        ("VK_DRIVER_FILES", none.as_path()),
        ("VK_ICD_FILENAMES", none.as_path()),
    ];
    // `flux batch` of one ADD on 1, 2 with no Vulkan driver visible, plus `extra` flags.
    let batch = |extra: &[&str]| {
        let mut args = vec![
            "flux",
            "batch",
            "--programs",
            r#"["10"]"#,
            "--stacks",
            "[[1,2]]",
        ];
        args.extend_from_slice(extra);
        sb.datum_env(&ws, &args, &env)
    };
    let r = batch(&[]);
    assert!(!r.output.status.success());
    assert!(r.stderr().contains("mesa-vulkan-drivers"), "{}", r.stderr());
    let r = batch(&["--fallback", "cpu", "--format", "json"]);
    assert!(r.output.status.success(), "{}", r.stderr());
    let v = r.json();
    assert_eq!(v["device"], "cpu (fallback)");
    assert_eq!(v["results"][0]["stack"], serde_json::json!([3]));
    assert!(v["ran"][0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("no GPU"));
    let r = sb
        .datum_in(
            &ws,
            &["flux", "batch", "--programs", r#"["10"]"#, "--device", "99"],
        )
        .failure();
    assert!(r.stderr().contains("datum gpu list"), "{}", r.stderr());
}

#[test]
fn think_verify_includes_the_gpu_when_vulkan_compute_is_installed() {
    let sb = Sandbox::new();
    let ws = workshop(&sb);
    sb.install(&ws, "think");
    let out = sb
        .datum_in(&ws, &["think", "is 97 prime", "--verify"])
        .success()
        .stdout();
    let line = out
        .lines()
        .find(|l| l.starts_with("Cross-verified: "))
        .unwrap();
    assert!(
        line.contains(", GPU (") && line.ends_with("— AGREE"),
        "{out}"
    );
    assert!(
        !line.contains("GPU (the CPU"),
        "the program ran on the device: {line}"
    );
}

#[test]
fn evolve_on_the_gpu_scores_every_generation_exactly_as_the_cpu() {
    let sb = Sandbox::new();
    let ws = workshop(&sb);
    sb.install(&ws, "evolve");
    let run = |runtime: &str| {
        json(
            &sb,
            &ws,
            &[
                "evolve",
                "--target",
                "max-of-three",
                "--population",
                "60",
                "--generations",
                "3",
                "--seed",
                "5",
                "--runtime",
                runtime,
            ],
        )
    };
    let (cpu, gpu) = (run("cpu"), run("vulkan"));
    assert_eq!(cpu["generations"].as_array().unwrap().len(), 3);
    // Fitness, size and instruction counts per generation, and the program: identical.
    assert_eq!(cpu["generations"], gpu["generations"]);
    assert_eq!(cpu["bytecode"], gpu["bytecode"]);
    assert!(gpu["device"].is_string(), "{gpu}");
}
