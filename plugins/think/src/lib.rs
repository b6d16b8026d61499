//! The think plugin: `datum think "QUESTION"` compiles a question from a documented
//! pattern library into readable FLUX (stack profile), runs it, and — with `--verify` —
//! cross-checks it against an independently built register-profile program, the other
//! flux-vm builds and a GPU when installed, and the answer computed directly in Rust.
//! `--parallel N` runs N strategies, `--synthesize` keeps the agreeing, shortest,
//! fastest one, `--save NAME` writes it to `tools/NAME.flux` with its case.

pub mod patterns;
pub mod question;
pub mod regasm;

use datum_plugin_api::{export_plugin, Host, Output, Plugin, PluginError, Request};
use flux_core::{Config, Profile, Status};
use serde::Serialize;
use serde_json::{json, Map, Value};

use patterns::{Question, Source, Strategy};
use question::Refusal;

/// The step budget of one run (the largest inputs the patterns accept stay well within).
pub const MAX_STEPS: u64 = 50_000_000;

pub struct Think;

impl Plugin for Think {
    const MANIFEST: &'static str = include_str!("../datum-plugin.toml");

    fn invoke(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
        match request.command.as_str() {
            "think" => think(request, host),
            other => Err(PluginError::unknown_command("think", other)),
        }
    }
}

export_plugin!(Think);

/// One strategy, assembled and run.
#[derive(Debug, Clone, Serialize)]
pub struct Ran {
    pub strategy: &'static str,
    pub why: &'static str,
    pub profile: &'static str,
    #[serde(skip)]
    pub code: Vec<u8>,
    pub bytecode: String,
    pub program: String,
    pub bytes: usize,
    pub steps: u64,
    pub stack: Vec<i32>,
    pub error: Option<String>,
}

fn run(s: &Strategy) -> Result<Ran, PluginError> {
    let (code, profile, program) = match &s.source {
        Source::Stack(text) => (
            flux_core::asm::assemble(text).map_err(|e| {
                PluginError::new(
                    datum_plugin_api::ErrorKind::Internal,
                    format!("the {} template does not assemble: {e}", s.name),
                )
            })?,
            Profile::Stack,
            text.clone(),
        ),
        Source::Reg(code, listing) => (code.clone(), Profile::Reg, listing.clone()),
    };
    let config = Config {
        profile,
        max_steps: MAX_STEPS,
        ..Config::default()
    };
    let r = flux_core::run(&code, &config);
    let finished = matches!(r.status, Status::Halted | Status::End);
    Ok(Ran {
        strategy: s.name,
        why: s.why,
        profile: if profile == Profile::Stack {
            "stack"
        } else {
            "reg"
        },
        bytecode: flux_core::hex::encode(&code),
        bytes: code.len(),
        code,
        program,
        steps: r.steps,
        stack: r.stack,
        error: (!finished).then(|| {
            r.error
                .map_or("did not finish".into(), |t| t.name().to_owned())
        }),
    })
}

/// Run strategies, on threads where the build has them (the WASM build runs them one
/// after another: same results, one core).
fn run_all(strategies: &[Strategy]) -> Result<Vec<Ran>, PluginError> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::thread::scope(|scope| {
            let handles: Vec<_> = strategies
                .iter()
                .map(|s| scope.spawn(move || run(s)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(PluginError::failed("a strategy's run panicked")))
                })
                .collect()
        })
    }
    #[cfg(target_arch = "wasm32")]
    {
        strategies.iter().map(run).collect()
    }
}

fn shown_stack(stack: &[i32]) -> String {
    format!(
        "[{}]",
        stack
            .iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn refuse(text: &str, refusal: Refusal) -> PluginError {
    match refusal {
        Refusal::Unknown { nearest } => PluginError::failed(format!(
            "Cannot auto-compile: \"{}\" matches no pattern I know. Nearest: {}",
            shown_text(text),
            nearest.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")
        ))
        .with_hint("ask in one of those forms; every pattern is listed in the think plugin's README"),
        Refusal::Inputs(m) => PluginError::invalid_args(format!("Cannot auto-compile: {m}")),
        Refusal::Examples(cases) => PluginError::failed(format!(
            "Cannot auto-compile: \"{}\" gives {} examples, not a question; that is a job for program evolution",
            shown_text(text),
            cases.len()
        ))
        .with_hint("install evolve (`datum plugin install evolve --kind native`) and ask again: the examples are handed to it"),
    }
}

/// Question text is the user's, but it is echoed (and may come from a script fed by
/// others).
fn shown_text(s: &str) -> String {
    s.chars()
        .take(200)
        .map(|c| {
            // Control characters and bidirectional overrides are shown, not obeyed.
            if c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}') {
                format!("\\u{{{:x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn think(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
    let text = request.require_str("question")?;
    let q = match question::parse(text) {
        Ok(q) => q,
        Err(Refusal::Examples(cases)) => return hand_over(request, host, text, cases),
        Err(r) => return Err(refuse(text, r)),
    };
    let want = q.direct().map_err(PluginError::invalid_args)?;
    let all = patterns::strategies(&q)
        .map_err(|e| PluginError::new(datum_plugin_api::ErrorKind::Internal, e))?;
    let main = run(&all[0])?;
    if main.error.is_some() || main.stack != [want as i32] {
        // A wrong template is a bug in this plugin; the tests compare every one.
        return Err(PluginError::new(
            datum_plugin_api::ErrorKind::Internal,
            format!(
                "the {} program gave {} (error: {:?}), but the answer is {want}",
                q.describe(),
                shown_stack(&main.stack),
                main.error
            ),
        ));
    }
    let mut lines = Vec::new();
    let truth = if q.boolean() {
        if want == 1 {
            " (true)"
        } else {
            " (false)"
        }
    } else {
        ""
    };
    let mut data = json!({
        "question": text,
        "pattern": q.kind,
        "inputs": q.args,
        "describe": q.describe(),
        "result": want,
        "stack": main.stack,
        "profile": "stack",
        "program": main.program,
        "bytecode": main.bytecode,
        "bytes": main.bytes,
        "steps": main.steps,
    });
    let mut chosen = main.clone();

    let parallel = request.arg_i64("parallel");
    if parallel.is_some() || request.arg_bool("synthesize") {
        let n = parallel.unwrap_or(all.len() as i64);
        if n < 1 {
            return Err(PluginError::invalid_args("--parallel needs 1 or more"));
        }
        let picked: Vec<Strategy> = all.iter().take(n as usize).cloned().collect();
        let ran = run_all(&picked)?;
        lines.push(format!(
            "Strategies for {} ({} of {} asked for):",
            q.describe(),
            ran.len(),
            n
        ));
        for r in &ran {
            let verdict = match (&r.error, r.stack == [want as i32]) {
                (Some(e), _) => format!("trapped {e}"),
                (None, true) => "agrees".into(),
                (None, false) => format!("DISAGREES: {}", shown_stack(&r.stack)),
            };
            lines.push(format!(
                "  {:<12} {:<5} {:>5} bytes {:>10} steps  {}  — {}",
                r.strategy, r.profile, r.bytes, r.steps, verdict, r.why
            ));
        }
        if request.arg_bool("synthesize") {
            let agreeing: Vec<&Ran> = ran
                .iter()
                .filter(|r| r.error.is_none() && r.stack == [want as i32])
                .collect();
            let best = agreeing
                .iter()
                .min_by_key(|r| (r.bytes, r.steps))
                .copied()
                .ok_or_else(|| PluginError::failed("no strategy agreed with the direct answer"))?;
            let shortest = agreeing.iter().all(|r| r.bytes >= best.bytes);
            let fastest = agreeing.iter().all(|r| r.steps >= best.steps);
            let mut reasons = vec![format!(
                "agrees with the direct answer and {} other strateg{}",
                agreeing.len() - 1,
                if agreeing.len() == 2 { "y" } else { "ies" }
            )];
            reasons.push(format!(
                "{} bytes{}",
                best.bytes,
                if shortest { " (shortest)" } else { "" }
            ));
            reasons.push(format!(
                "{} steps{}",
                best.steps,
                if fastest {
                    " (fastest)".to_owned()
                } else {
                    format!(
                        " ({} takes fewer, but is longer)",
                        agreeing
                            .iter()
                            .min_by_key(|r| r.steps)
                            .map_or("", |r| r.strategy)
                    )
                }
            ));
            lines.push(format!(
                "Synthesized: {} — {}",
                best.strategy,
                reasons.join(", ")
            ));
            data["synthesized"] = json!({ "strategy": best.strategy, "reasons": reasons });
            chosen = best.clone();
        }
        data["strategies"] = serde_json::to_value(&ran).unwrap_or(Value::Null);
    }

    lines.insert(
        0,
        format!(
            "Compiling... Running FluxVM... Result: {}{truth}",
            shown_stack(&chosen.stack)
        ),
    );
    lines.insert(1, format!("Bytecode: {}", chosen.bytecode));
    if request.arg_bool("show") {
        lines.push(format!(
            "Program ({} profile, {} bytes, {} steps):",
            chosen.profile, chosen.bytes, chosen.steps
        ));
        lines.push(chosen.program.trim_end().to_owned());
    }

    if request.arg_bool("verify") {
        let (ok, verify_lines, report) = verify(host, &q, &main, want)?;
        lines.extend(verify_lines);
        data["verify"] = report;
        if !ok {
            return Err(PluginError::failed(lines.join("\n")).with_hint(
                "a disagreement is a bug in a runtime or a template: report it with the question",
            ));
        }
    }

    if let Some(name) = request.arg_str("save") {
        let saved = save(host, name, text, &q, &chosen, &main, want)?;
        lines.push(format!("Saved {saved} (validated, committed)"));
        data["saved"] = Value::from(saved);
    }
    Ok(Output::new(data).with_text(lines.join("\n")))
}

/// A question made of examples (`f(1)=1, f(2)=4, …`) goes to the evolve plugin, when it
/// is installed: the examples become its cases (every fifth held out).
fn hand_over(
    request: &Request,
    host: &Host<'_>,
    text: &str,
    cases: Vec<(Vec<i64>, i64)>,
) -> Result<Output, PluginError> {
    let mut file = String::new();
    for (ins, out) in &cases {
        let ins: Vec<String> = ins.iter().map(i64::to_string).collect();
        file.push_str(&format!("{} -> {out}\n", ins.join(" ")));
    }
    let mut args = Map::new();
    args.insert(
        "cases".into(),
        datum_plugin_api::FileArg::to_value("the question's examples", file.as_bytes()),
    );
    args.insert("quiet".into(), Value::Bool(true));
    args.insert("population".into(), Value::from(1000));
    args.insert("generations".into(), Value::from(50));
    if let Some(name) = request.arg_str("save") {
        args.insert("save".into(), Value::from(name));
    }
    let evolved = match host.call_plugin("evolve", "evolve", args) {
        Ok(v) => v,
        Err(e) if e.message.contains("is not installed") => {
            return Err(refuse(text, Refusal::Examples(cases)))
        }
        Err(e) => return Err(e),
    };
    let held = &evolved["held_out"];
    let lines = [
        format!(
            "Cannot auto-compile \"{}\": it gives {} examples, so evolve searched for a program.",
            shown_text(text),
            cases.len()
        ),
        format!(
            "Evolved: {} genes, fitness {:.2}, {}/{} held-out examples — {}",
            evolved["size"],
            evolved["fitness"].as_f64().unwrap_or(0.0),
            held["passed"],
            held["total"],
            if evolved["solved"] == true {
                "SOLVED"
            } else {
                "not solved"
            }
        ),
        format!(
            "Bytecode: {}",
            evolved["bytecode"].as_str().unwrap_or_default()
        ),
    ];
    let mut lines = lines.to_vec();
    if let Some(path) = evolved["saved"].as_str() {
        lines.push(format!("Saved {path} (validated, committed)"));
    }
    Ok(
        Output::new(json!({ "question": text, "handed_to": "evolve", "evolve": evolved }))
            .with_text(lines.join("\n")),
    )
}

/// `--verify`: the register program, the other flux-vm builds, a GPU, and the direct
/// answer must all agree.
fn verify(
    host: &Host<'_>,
    q: &Question,
    main: &Ran,
    want: i64,
) -> Result<(bool, Vec<String>, Value), PluginError> {
    let (code, listing) = patterns::register(q)
        .map_err(|e| PluginError::new(datum_plugin_api::ErrorKind::Internal, e))?;
    let reg = run(&Strategy {
        name: "register",
        why: "",
        source: Source::Reg(code, listing),
    })?;
    let mut results: Vec<(String, Result<Vec<i32>, String>)> = vec![
        ("stack VM".into(), Ok(main.stack.clone())),
        (
            "register VM".into(),
            match &reg.error {
                Some(e) => Err(e.clone()),
                None => Ok(reg.stack.clone()),
            },
        ),
    ];
    let mut notes = Vec::new();
    let installed = host.plugins().unwrap_or_default();
    if let Some(vm) = installed.iter().find(|p| p["name"] == "flux-vm") {
        let kind = vm["kind"].as_str().unwrap_or("wasm").to_owned();
        let mut args = Map::new();
        args.insert("bytecode".into(), Value::from(main.bytecode.clone()));
        args.insert("max-steps".into(), Value::from(MAX_STEPS));
        let stack_of = |v: &Value| -> Result<Vec<i32>, String> {
            v["stack"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|w| w.as_i64())
                        .map(|w| w as i32)
                        .collect()
                })
                .ok_or_else(|| "no result".into())
        };
        match host.call_plugin("flux-vm", "flux run", args.clone()) {
            Ok(v) => results.push((format!("flux-vm ({kind})"), stack_of(&v))),
            Err(e) => notes.push(format!("flux-vm: {}", e.message)),
        }
        let other = if kind == "wasm" { "native" } else { "wasm" };
        match host.call_plugin_kind("flux-vm", other, "flux run", args.clone()) {
            Ok(v) => results.push((format!("flux-vm ({other})"), stack_of(&v))),
            Err(e) => notes.push(format!(
                "flux-vm ({other}) not compared: {}",
                e.message.lines().next().unwrap_or_default()
            )),
        }
        if installed.iter().any(|p| p["name"] == "vulkan-compute") {
            let mut gpu = args.clone();
            gpu.insert("runtime".into(), Value::from("vulkan"));
            match host.call_plugin("flux-vm", "flux run", gpu) {
                Ok(v) => {
                    // flux-vm says where it ran: the device, or why it came back.
                    let device = v["ran"]
                        .as_str()
                        .map(|r| r.strip_prefix("ran on ").unwrap_or(r))
                        .unwrap_or("device unknown")
                        .to_owned();
                    results.push((format!("GPU ({device})"), stack_of(&v)));
                }
                Err(e) => notes.push(format!(
                    "GPU not compared: {}",
                    e.message.lines().next().unwrap_or_default()
                )),
            }
        }
    } else {
        notes.push("flux-vm is not installed: only this plugin's own VM runs were compared".into());
    }
    let expected = vec![want as i32];
    let agree = all_agree(&results, want);
    let names: Vec<String> = results.iter().map(|(n, _)| n.clone()).collect();
    let mut lines = Vec::new();
    if agree {
        lines.push(format!("Cross-verified: {} — AGREE", names.join(", ")));
    } else {
        let each: Vec<String> = results
            .iter()
            .map(|(n, r)| match r {
                Ok(s) => format!("{n} {}", shown_stack(s)),
                Err(e) => format!("{n} trapped {e}"),
            })
            .collect();
        lines.push(format!("Cross-verified: {} — DISAGREE", each.join(", ")));
    }
    lines.push(format!(
        "Direct computation: {want} — {}",
        if main.stack == expected {
            "matches"
        } else {
            "DIFFERS"
        }
    ));
    for n in &notes {
        lines.push(format!("note: {n}"));
    }
    let report = json!({
        "agree": agree,
        "direct": want,
        "runs": results.iter().map(|(n, r)| match r {
            Ok(s) => json!({"runtime": n, "stack": s}),
            Err(e) => json!({"runtime": n, "error": e}),
        }).collect::<Vec<_>>(),
        "register_program": reg.program,
        "notes": notes,
    });
    Ok((agree, lines, report))
}

/// Every runtime finished with exactly the direct answer on its stack.
fn all_agree(results: &[(String, Result<Vec<i32>, String>)], want: i64) -> bool {
    let expected = [want as i32];
    !results.is_empty()
        && results
            .iter()
            .all(|(_, r)| r.as_ref().is_ok_and(|s| s[..] == expected))
}

/// `--save NAME`: `tools/NAME.flux`, the question and its case in the header, validated
/// and committed. A stack program is saved (the text assembler speaks that profile).
fn save(
    host: &Host<'_>,
    name: &str,
    text: &str,
    q: &Question,
    chosen: &Ran,
    main: &Ran,
    want: i64,
) -> Result<String, PluginError> {
    // A tool name is a plugin-style name: never a path.
    if !datum_plugin_api::valid_name(name) {
        return Err(PluginError::invalid_args(format!(
            "`{}` is not a tool name",
            shown_text(name)
        ))
        .with_hint("a-z, 0-9 and '-', e.g. fib-10"));
    }
    let program = if chosen.profile == "stack" {
        chosen
    } else {
        main
    };
    let source = format!(
        "; {name} — {}\n; question: {}\n; case: -> {want}\n{}",
        q.describe(),
        shown_text(text),
        program.program
    );
    let code = flux_core::asm::assemble(&source).map_err(|e| {
        PluginError::new(
            datum_plugin_api::ErrorKind::Internal,
            format!("the saved program does not assemble: {e}"),
        )
    })?;
    let report = flux_core::validate::validate(&code, Profile::Stack, 0);
    if !report.ok() {
        return Err(PluginError::new(
            datum_plugin_api::ErrorKind::Internal,
            format!("the saved program does not validate: {:?}", report.findings),
        ));
    }
    let path = format!("tools/{name}.flux");
    if !host.create_file(&path, &source)? {
        return Err(PluginError::invalid_args(format!("{path} already exists"))
            .with_hint("choose another name, or remove the old tool first"));
    }
    host.git_commit("tools", &format!("think: save {name} ({})", q.describe()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_dissenting_or_trapped_runtime_is_a_disagreement() {
        let ok = |n: &str, s: Vec<i32>| (n.to_owned(), Ok(s));
        assert!(all_agree(
            &[ok("stack VM", vec![55]), ok("register VM", vec![55])],
            55
        ));
        assert!(!all_agree(
            &[ok("stack VM", vec![55]), ok("register VM", vec![54])],
            55
        ));
        assert!(!all_agree(
            &[ok("stack VM", vec![55]), ok("GPU", vec![55, 0])],
            55
        ));
        assert!(!all_agree(
            &[
                ok("stack VM", vec![55]),
                ("GPU".into(), Err("STEP_LIMIT".into()))
            ],
            55
        ));
        assert!(
            !all_agree(&[ok("stack VM", vec![54]), ok("register VM", vec![54])], 55),
            "agreeing with each other is not enough"
        );
        assert!(!all_agree(&[], 55));
    }
}
