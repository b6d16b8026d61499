//! `datum flux conformance`: run vector files, judge each vector against the list of
//! failures the spec forces (an unexpected pass or fail is an error), and with
//! `--runtime all` compare the native and WASM builds vector by vector.

use std::collections::BTreeMap;

use datum_plugin_api::{Host, Output, PluginError, Request};
use flux_core::conformance::{VectorFile, Verdict};
use flux_core::Profile;
use serde_json::{json, Map, Value};

use crate::this_runtime;

use flux_core::conformance::PROJECT_VECTORS as OWN;

/// Failures FLUX.md §17.2 forces on the upstream suites, by suite file name.
static EXPECTED_FAILURES: &str = include_str!("../../../vectors/upstream-expected-failures.json");

/// Arguments only plugin-to-plugin calls use: return the results even when vectors
/// misbehave, so the caller can compare builds.
const REPORT_ONLY: &str = "_report_only";

pub fn conformance(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
    let runtime = request.arg_str("runtime").unwrap_or(this_runtime());
    match runtime {
        "all" => compare(request, host),
        r if r == this_runtime() => {
            let summary = run_here(request)?;
            finish(request, summary)
        }
        "native" | "wasm" => {
            let summary = run_there(request, host, runtime)?;
            finish(request, summary)
        }
        "vulkan" => {
            let summary = run_vulkan(request, host)?;
            finish(request, summary)
        }
        other => Err(PluginError::invalid_args(format!(
            "--runtime must be native, wasm, vulkan or all, not `{other}`"
        ))),
    }
}

fn expected_failures(request: &Request) -> Result<Map<String, Value>, PluginError> {
    let text = match request.arg_file("expect-failures")? {
        Some(f) if f.exists => f.text(),
        Some(f) => {
            return Err(PluginError::invalid_args(format!(
                "--expect-failures: no file `{}`",
                f.path
            )))
        }
        None => EXPECTED_FAILURES.to_owned(),
    };
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| PluginError::invalid_args(format!("expected-failures list: {e}")))?;
    Ok(v.as_object().cloned().unwrap_or_default())
}

fn suites(request: &Request) -> Result<Vec<(String, VectorFile)>, PluginError> {
    let mut out = Vec::new();
    match request.arg_file("vectors")? {
        Some(f) if !f.exists => {
            return Err(PluginError::invalid_args(format!(
                "--vectors: no file `{}`",
                f.path
            )))
        }
        Some(f) => {
            let file = VectorFile::parse(&f.text())
                .map_err(|e| PluginError::invalid_args(format!("{}: {e}", f.path)))?;
            let name = f.path.rsplit('/').next().unwrap_or(&f.path).to_owned();
            out.push((name, file));
        }
        None => {
            for (name, text) in OWN {
                let file = VectorFile::parse(text)
                    .map_err(|e| PluginError::failed(format!("built-in {name}: {e}")))?;
                out.push(((*name).to_owned(), file));
            }
        }
    }
    if request.arg_bool("v3") {
        out.retain(|(_, f)| f.profile().ok() == Some(Profile::Reg) || f.version.starts_with('3'));
    }
    Ok(out)
}

fn category_of(v: &flux_core::conformance::Vector) -> String {
    v.category
        .clone()
        .unwrap_or_else(|| v.name.split('_').next().unwrap_or_default().to_owned())
}

/// One name per category, whichever spelling a suite or a user used: the upstream
/// suites' prefixes (`arith`, `cmp`, `ctrl`, …), this project's vectors (`compare`,
/// `control`, …) and the Python prototype's `--category` names (`arithmetic`,
/// `comparison`, `control`, …) all select the same vectors.
fn canonical_category(name: &str) -> &str {
    match name {
        "arith" | "arithmetic" => "arith",
        "cmp" | "compare" | "comparison" => "cmp",
        "ctrl" | "control" | "control-flow" | "control_flow" => "ctrl",
        "mem" | "memory" => "mem",
        "conf" | "confidence" => "conf",
        "sys" | "system" => "sys",
        "int" | "integer" => "int",
        "float" | "floating" | "floating-point" => "float",
        "logic" | "logical" | "bitwise" => "logic",
        "a2a" | "agent" | "agents" => "a2a",
        other => other,
    }
}

/// Run here and produce the summary document.
fn run_here(request: &Request) -> Result<Value, PluginError> {
    let summary = run_with(request, &mut |_, _, vector, profile| {
        vector.check(profile, flux_core::DEFAULT_MAX_STEPS)
    })?;
    Ok(summary)
}

/// `--runtime vulkan`: every stack-profile vector that needs nothing but an initial
/// stack runs as one batch on the GPU through the vulkan-compute plugin (which hands
/// back what it cannot run exactly, e.g. escapes, to flux-core and says so); the rest
/// runs here. Verdicts are judged exactly as for the other runtimes.
fn run_vulkan(request: &Request, host: &Host<'_>) -> Result<Value, PluginError> {
    let mut programs = Vec::new();
    let mut stacks = Vec::new();
    let mut index = BTreeMap::new();
    for (name, file) in suites(request)? {
        if file.profile().ok() != Some(Profile::Stack) {
            continue;
        }
        for (i, v) in file.vectors.iter().enumerate() {
            let Some((code, stack)) = v.plain_run(Profile::Stack) else {
                continue;
            };
            index.insert((name.clone(), i), programs.len());
            programs.push(Value::from(flux_core::hex::encode(&code)));
            stacks.push(Value::from(stack));
        }
    }
    let mut args = Map::new();
    args.insert("programs".into(), Value::Array(programs));
    args.insert("stacks".into(), Value::Array(stacks));
    if let Some(d) = request.arg_i64("device") {
        args.insert("device".into(), Value::from(d));
    }
    let reply = host.call_plugin("vulkan-compute", "flux batch", args)?;
    let results: Vec<flux_core::RunResult> = serde_json::from_value(reply["results"].clone())
        .map_err(|e| PluginError::failed(format!("vulkan-compute sent unreadable results: {e}")))?;
    let on_device: Vec<bool> = reply["ran"]
        .as_array()
        .map(|r| r.iter().map(|x| x["on"] == "gpu").collect())
        .unwrap_or_default();
    let (mut gpu_runs, mut cpu_runs) = (0usize, 0usize);
    let mut summary = run_with(request, &mut |suite, i, vector, profile| match index
        .get(&(suite.to_owned(), i))
        .and_then(|&k| results.get(k).map(|r| (k, r)))
    {
        Some((k, result)) => {
            if on_device.get(k).copied().unwrap_or(false) {
                gpu_runs += 1;
            } else {
                cpu_runs += 1;
            }
            let judged = vector.judge(profile, result);
            Verdict {
                name: vector.name.clone(),
                pass: judged.is_ok(),
                reason: judged.err().unwrap_or_default(),
                result: Some(result.clone()),
            }
        }
        None => {
            cpu_runs += 1;
            vector.check(profile, flux_core::DEFAULT_MAX_STEPS)
        }
    })?;
    summary["runtime"] = Value::from(format!(
        "vulkan ({}: {gpu_runs} vectors on the device, {cpu_runs} on the CPU)",
        reply["device"].as_str().unwrap_or("?")
    ));
    Ok(summary)
}

/// Judge every selected vector with `verdict` and produce the summary document.
fn run_with(
    request: &Request,
    verdict: &mut dyn FnMut(&str, usize, &flux_core::conformance::Vector, Profile) -> Verdict,
) -> Result<Value, PluginError> {
    let expected = expected_failures(request)?;
    let category = request.arg_str("category");
    let mut suite_rows = Vec::new();
    let mut verdicts = Vec::new();
    let mut unexpected_total = 0;
    for (name, file) in suites(request)? {
        let profile = file
            .profile()
            .map_err(|e| PluginError::invalid_args(format!("{name}: {e}")))?;
        let listed = expected
            .get(&name)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let (mut passed, mut failed, mut expected_fail, mut unexpected) = (0, 0, 0, Vec::new());
        for (index, vector) in file.vectors.iter().enumerate().filter(|(_, v)| {
            category.is_none_or(|c| canonical_category(&category_of(v)) == canonical_category(c))
        }) {
            let Verdict {
                pass,
                reason,
                result,
                ..
            } = verdict(&name, index, vector, profile);
            let entry = listed.get(&vector.name);
            let expected_pass = entry.is_none();
            if pass {
                passed += 1
            } else {
                failed += 1
            }
            // An entry `{why, fails_with}` pins the failure itself: failing for another
            // reason (a different stack, another trap) is as unexpected as passing.
            let pinned = entry.and_then(|e| e["fails_with"].as_str());
            let wrong_reason = !pass && pinned.is_some_and(|p| p != reason);
            if !pass && !expected_pass && !wrong_reason {
                expected_fail += 1;
            }
            if pass != expected_pass {
                let why = entry
                    .map(|e| e.get("why").unwrap_or(e).clone())
                    .unwrap_or_default();
                unexpected.push(json!({"name": vector.name, "pass": pass, "reason": if pass { why } else { Value::from(reason.clone()) }}));
            } else if wrong_reason {
                unexpected.push(json!({
                    "name": vector.name,
                    "pass": false,
                    "reason": format!("fails with `{reason}`, but FLUX.md §17.2 says it fails with `{}`", pinned.unwrap_or_default()),
                }));
            }
            verdicts.push(json!({
                "suite": name,
                "name": vector.name,
                "pass": pass,
                "expected_pass": expected_pass,
                "reason": reason,
                "stack": result.as_ref().map(|r| json!(r.stack)),
                "flags": result.as_ref().map(|r| r.flags.0),
                "status": result.as_ref().map(|r| json!(r.status)),
                "error": result.as_ref().and_then(|r| r.error.map(|t| t.name())),
            }));
        }
        unexpected_total += unexpected.len();
        suite_rows.push(json!({
            "suite": name,
            "profile": profile,
            "total": passed + failed,
            "passed": passed,
            "failed": failed,
            "expected_failures": expected_fail,
            "unexpected": unexpected,
        }));
    }
    Ok(
        json!({ "runtime": this_runtime(), "ok": unexpected_total == 0, "suites": suite_rows, "verdicts": verdicts }),
    )
}

/// Ask the other build (through the host) to run the same vectors.
fn run_there(request: &Request, host: &Host<'_>, runtime: &str) -> Result<Value, PluginError> {
    let mut args = request.args.clone();
    args.insert("runtime".into(), Value::from(runtime));
    args.insert(REPORT_ONLY.into(), Value::Bool(true));
    host.call_plugin_kind("flux-vm", runtime, "flux conformance", args)
}

fn summary_text(summary: &Value) -> String {
    let mut s = format!("runtime {}\n", summary["runtime"].as_str().unwrap_or("?"));
    s.push_str(&format!(
        "{:<28} {:<7} {:>7} {:>7} {:>7} {:>9} {:>11}\n",
        "SUITE", "PROFILE", "VECTORS", "PASSED", "FAILED", "EXPECTED", "UNEXPECTED"
    ));
    for row in summary["suites"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "{:<28} {:<7} {:>7} {:>7} {:>7} {:>9} {:>11}\n",
            row["suite"].as_str().unwrap_or("?"),
            row["profile"].as_str().unwrap_or("?"),
            row["total"].as_u64().unwrap_or(0),
            row["passed"].as_u64().unwrap_or(0),
            row["failed"].as_u64().unwrap_or(0),
            row["expected_failures"].as_u64().unwrap_or(0),
            row["unexpected"].as_array().map_or(0, Vec::len),
        ));
        for u in row["unexpected"].as_array().into_iter().flatten() {
            let what = if u["pass"] == true {
                "passed, but the spec says it must fail"
            } else {
                "FAILED"
            };
            s.push_str(&format!(
                "  unexpected: {} {what}: {}\n",
                u["name"].as_str().unwrap_or("?"),
                u["reason"].as_str().unwrap_or("")
            ));
        }
    }
    s
}

fn verbose_text(summary: &Value) -> String {
    let mut s = String::new();
    for v in summary["verdicts"].as_array().into_iter().flatten() {
        let mark = match (v["pass"] == true, v["expected_pass"] == true) {
            (true, true) => "pass",
            (false, false) => "xfail",
            (true, false) => "XPASS",
            (false, true) => "FAIL",
        };
        s.push_str(&format!(
            "{mark:<6} {:<24} {:<44} {}\n",
            v["suite"].as_str().unwrap_or(""),
            v["name"].as_str().unwrap_or(""),
            v["reason"].as_str().unwrap_or("")
        ));
    }
    s
}

fn finish(request: &Request, summary: Value) -> Result<Output, PluginError> {
    let mut text = summary_text(&summary);
    if request.arg_bool("verbose") {
        text = format!("{}{text}", verbose_text(&summary));
    }
    if summary["ok"] != true && !request.arg_bool(REPORT_ONLY) {
        return Err(PluginError::failed(format!(
            "conformance differs from what the spec requires\n{}",
            text.trim_end()
        ))
        .with_hint(
            "see the unexpected vectors above; FLUX.md §17.2 lists the failures the spec forces",
        ));
    }
    Ok(Output::new(summary).with_text(text))
}

/// `--runtime all`: run here and in the other build, then compare every vector.
fn compare(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
    let here = run_here(request)?;
    let other = if this_runtime() == "wasm" {
        "native"
    } else {
        "wasm"
    };
    let there = run_there(request, host, other)?;
    let key = |v: &Value| {
        (
            v["suite"].as_str().unwrap_or("").to_owned(),
            v["name"].as_str().unwrap_or("").to_owned(),
        )
    };
    let fields = |v: &Value| json!([v["pass"], v["stack"], v["flags"], v["status"], v["error"]]);
    let theirs: BTreeMap<_, _> = there["verdicts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| (key(v), fields(v)))
        .collect();
    let mut rows = Vec::new();
    let (mut agree, mut disagree) = (0, 0);
    for v in here["verdicts"].as_array().into_iter().flatten() {
        let k = key(v);
        let same = theirs.get(&k) == Some(&fields(v));
        if same {
            agree += 1
        } else {
            disagree += 1
        }
        rows.push(json!({"suite": k.0, "name": k.1, "agree": same, this_runtime(): fields(v), other: theirs.get(&k)}));
    }
    let missing = theirs.len().saturating_sub(agree + disagree);
    let mut text = summary_text(&here);
    text.push('\n');
    text.push_str(&format!(
        "{:<24} {:<44} {:<8} {:<8} {}\n",
        "SUITE",
        "VECTOR",
        this_runtime().to_uppercase(),
        other.to_uppercase(),
        "COMPARE"
    ));
    for r in &rows {
        {
            let verdict = |v: &Value| if v[0] == true { "pass" } else { "fail" };
            text.push_str(&format!(
                "{:<24} {:<44} {:<8} {:<8} {}\n",
                r["suite"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or(""),
                verdict(&r[this_runtime()]),
                verdict(&r[other]),
                if r["agree"] == true {
                    "AGREE"
                } else {
                    "DISAGREE"
                }
            ));
        }
    }
    let all_agree = disagree == 0 && missing == 0;
    text.push_str(&format!(
        "{}: {agree} vectors agree, {disagree} disagree between {} and {other}\n",
        if all_agree { "AGREE" } else { "DISAGREE" },
        this_runtime()
    ));
    let ok = all_agree && here["ok"] == true && there["ok"] == true;
    let data = json!({"ok": ok, "agree": agree, "disagree": disagree, "runtimes": [this_runtime(), other], this_runtime(): here, other: there, "comparison": rows});
    if !ok && !request.arg_bool(REPORT_ONLY) {
        return Err(PluginError::failed(text.trim_end().to_owned())
            .with_hint("the builds disagree or a vector misbehaved; see above"));
    }
    Ok(Output::new(data).with_text(text))
}
