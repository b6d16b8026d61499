//! The evolve plugin: `datum evolve --target PRESET | --cases FILE` breeds FLUX
//! stack-profile programs by linear genetic programming with lexicase selection
//! (`gp`), against presets with held-out cases (`presets`), evaluating each generation
//! on every core or, with `--runtime vulkan`, as one batch on a GPU through the
//! vulkan-compute plugin. Deterministic: a seed gives the same best program.

pub mod gp;
pub mod presets;

use datum_plugin_api::{export_plugin, Host, Output, Plugin, PluginError, Request};
use flux_core::{Profile, RunResult, Status};
use gp::{Case, Evaluator, Params, Score};
use serde_json::{json, Map, Value};

pub struct Evolve;

impl Plugin for Evolve {
    const MANIFEST: &'static str = include_str!("../datum-plugin.toml");

    fn invoke(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
        match request.command.as_str() {
            "evolve" => evolve(request, host),
            "evolve presets" => Ok(presets_list()),
            other => Err(PluginError::unknown_command("evolve", other)),
        }
    }
}

export_plugin!(Evolve);

fn presets_list() -> Output {
    let mut text = String::new();
    for p in presets::PRESETS {
        text.push_str(&format!(
            "{:<16} {:<44} {} training, {} held-out cases\n",
            p.name,
            p.summary,
            p.train.len(),
            p.test.len()
        ));
    }
    Output::new(json!({
        "presets": presets::PRESETS.iter().map(|p| json!({
            "name": p.name, "summary": p.summary, "train": p.train(), "test": p.test(), "max_steps": p.max_steps,
        })).collect::<Vec<_>>()
    }))
    .with_text(text.trim_end().to_owned())
}

/// One generation as one batch on a GPU: every program × every case.
struct Vulkan<'h> {
    host: &'h Host<'h>,
    device: Option<String>,
}

impl Evaluator for Vulkan<'_> {
    fn evaluate(
        &mut self,
        programs: &[Vec<u8>],
        cases: &[Case],
        max_steps: u64,
    ) -> Result<Vec<Score>, String> {
        let mut args = Map::new();
        args.insert(
            "programs".into(),
            Value::Array(
                programs
                    .iter()
                    .map(|p| Value::from(flux_core::hex::encode(p)))
                    .collect(),
            ),
        );
        args.insert(
            "stacks".into(),
            json!(cases.iter().map(|c| c.input.clone()).collect::<Vec<_>>()),
        );
        args.insert("cross".into(), Value::Bool(true));
        args.insert("max-steps".into(), Value::from(max_steps));
        let reply = self
            .host
            .call_plugin("vulkan-compute", "flux batch", args)
            .map_err(|e| format!("vulkan-compute: {}", e.message))?;
        self.device = reply["device"].as_str().map(str::to_owned);
        let results = reply["results"]
            .as_array()
            .ok_or("vulkan-compute sent no results")?;
        if results.len() != programs.len() * cases.len() {
            return Err(format!(
                "vulkan-compute sent {} results for {} runs",
                results.len(),
                programs.len() * cases.len()
            ));
        }
        let mut out = Vec::with_capacity(programs.len());
        for chunk in results.chunks(cases.len().max(1)) {
            let mut passed = Vec::with_capacity(cases.len());
            let mut steps = 0;
            for (r, c) in chunk.iter().zip(cases) {
                let r: RunResult = serde_json::from_value(r.clone())
                    .map_err(|e| format!("an unreadable result: {e}"))?;
                steps += r.steps;
                passed.push(
                    matches!(r.status, Status::Halted | Status::End) && r.stack == [c.output],
                );
            }
            out.push(Score { passed, steps });
        }
        Ok(out)
    }
}

fn int_arg(
    request: &Request,
    name: &str,
    default: i64,
    lo: i64,
    hi: i64,
) -> Result<i64, PluginError> {
    let v = request.arg_i64(name).unwrap_or(default);
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(PluginError::invalid_args(format!(
            "--{name} must be {lo} to {hi}"
        )))
    }
}

fn evolve(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
    let (label, train, test, max_steps) =
        match (request.arg_str("target"), request.arg_file("cases")?) {
            (Some(t), None) => {
                let p = presets::find(t).ok_or_else(|| {
                    PluginError::invalid_args(format!("no preset `{}`", t.escape_debug()))
                        .with_hint(format!(
                            "presets: {} (datum evolve presets)",
                            presets::PRESETS
                                .iter()
                                .map(|p| p.name)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                })?;
                (p.name.to_owned(), p.train(), p.test(), p.max_steps)
            }
            (None, Some(file)) => {
                if !file.exists {
                    return Err(PluginError::invalid_args(format!(
                        "--cases {}: no such file",
                        file.path
                    )));
                }
                let (train, test) = presets::parse_cases(&file.text()).map_err(|e| {
                    PluginError::invalid_args(format!("--cases {}: {e}", file.path))
                })?;
                (format!("cases from {}", file.path), train, test, 5000)
            }
            _ => {
                return Err(
                    PluginError::invalid_args("give --target PRESET or --cases FILE")
                        .with_hint("datum evolve presets lists the presets"),
                )
            }
        };
    let params = Params {
        population: int_arg(request, "population", 500, 2, 100_000)? as usize,
        generations: int_arg(request, "generations", 50, 1, 100_000)? as usize,
        seed: int_arg(request, "seed", 1, 0, i64::MAX)? as u64,
        max_steps: int_arg(request, "max-steps", max_steps as i64, 1, 10_000_000)? as u64,
        downsample: match request.arg_str("downsample") {
            None => 1.0,
            Some(s) => s
                .parse::<f64>()
                .ok()
                .filter(|d| *d > 0.0 && *d <= 1.0)
                .ok_or_else(|| {
                    PluginError::invalid_args(
                        "--downsample is a share of the training cases, 0 < d ≤ 1",
                    )
                })?,
        },
    };
    let quiet = request.arg_bool("quiet") || request.format == datum_plugin_api::Format::Json;
    // `--save NAME`: the file is claimed before the search (never over an existing
    // tool) and holds the best program so far from the first generation on, so an
    // interrupted run (Ctrl-C) keeps its best; the finished one is committed.
    let save_path = match request.arg_str("save") {
        Some(name) => {
            if !datum_plugin_api::valid_name(name) {
                return Err(PluginError::invalid_args(format!(
                    "`{}` is not a tool name",
                    name.escape_debug()
                ))
                .with_hint("a-z, 0-9 and '-'"));
            }
            let path = format!("tools/{name}.flux");
            if !host.create_file(
                &path,
                &format!("; {name} — evolving for {label}; no generation finished yet\n"),
            )? {
                return Err(PluginError::invalid_args(format!("{path} already exists"))
                    .with_hint("choose another name"));
            }
            Some((name.to_owned(), path))
        }
        None => None,
    };
    let runtime = request.arg_str("runtime").unwrap_or("cpu");
    let started = host.now_ms()?;
    let mut last_fitness = -1.0;
    let mut on_generation = |r: &gp::GenerationReport, best: &gp::Individual| -> bool {
        let show = r.fitness > last_fitness
            || r.generation.is_multiple_of(10)
            || r.generation == 1
            || r.generation == params.generations;
        if show && !quiet {
            let ms = host
                .now_ms()
                .unwrap_or(started)
                .saturating_sub(started)
                .max(1);
            let _ = host.emit(&format!(
                "Generation {}: fitness={:.2} size={} evals/s={:.0}",
                r.generation,
                r.fitness,
                r.size,
                r.evals as f64 * 1000.0 / ms as f64
            ));
        }
        if r.fitness > last_fitness {
            if let Some((name, path)) = &save_path {
                let note = format!("best so far, generation {}", r.generation);
                let text = render(
                    name,
                    &label,
                    &params,
                    &train,
                    &test,
                    &gp::source(&best.genes),
                    &note,
                );
                let _ = host.write_file(path, &text);
            }
        }
        last_fitness = last_fitness.max(r.fitness);
        true
    };
    let mut vulkan = Vulkan { host, device: None };
    let run = match runtime {
        "cpu" => gp::evolve(&train, &params, &mut gp::Cpu, &mut on_generation),
        "vulkan" => gp::evolve(&train, &params, &mut vulkan, &mut on_generation),
        other => {
            return Err(PluginError::invalid_args(format!(
                "--runtime must be cpu or vulkan, not `{}`",
                other.escape_debug()
            )))
        }
    }
    .map_err(|e| {
        let hint = if runtime == "vulkan" {
            "check the device with `datum gpu list` (install vulkan-compute if it is missing), or use --runtime cpu"
        } else {
            "this is a bug in evolve: report it with the command line"
        };
        PluginError::failed(e).with_hint(hint)
    })?;
    let ms = host.now_ms()?.saturating_sub(started).max(1);
    let best = &run.best;
    let held_out = gp::score(&best.code, &test, params.max_steps);
    let test_passed = held_out.passed.iter().filter(|p| **p).count();
    let solved = best.score.fitness() >= 1.0 && test_passed == test.len();
    let source = gp::source(&best.genes);
    let mut text = vec![format!(
        "Best program: {} genes, fitness {:.2} on {} training cases, {}/{} held-out cases — {}",
        best.genes.len(),
        best.score.fitness(),
        train.len(),
        test_passed,
        test.len(),
        if solved { "SOLVED" } else { "not solved" }
    )];
    let gp_ops = run.instructions as f64 * 1000.0 / ms as f64;
    text.push(format!(
        "{} generations, {} evaluations, {:.0} GP ops/s ({} instructions in {} ms){}",
        run.log.len(),
        run.evals,
        gp_ops,
        run.instructions,
        ms,
        vulkan
            .device
            .as_ref()
            .map(|d| format!(", on {d}"))
            .unwrap_or_default()
    ));
    if request.arg_bool("show") {
        text.push(source.trim_end().to_owned());
    }
    let mut saved = None;
    if let Some((name, path)) = &save_path {
        save(host, name, path, &label, &params, &train, &test, &source)?;
        text.push(format!("Best program saved to {path}"));
        saved = Some(path.clone());
    }
    Ok(Output::new(json!({
        "target": label,
        "params": params,
        "solved": solved,
        "fitness": best.score.fitness(),
        "held_out": { "passed": test_passed, "total": test.len() },
        "program": source,
        "bytecode": flux_core::hex::encode(&best.code),
        "size": best.genes.len(),
        "generations": run.log,
        "evaluations": run.evals,
        "instructions": run.instructions,
        "ms": ms,
        "gp_ops_per_s": gp_ops,
        "runtime": runtime,
        "device": vulkan.device,
        "saved": saved,
    }))
    .with_text(text.join("\n")))
}

/// A tool file: the run in its first line, every case, the program.
fn render(
    name: &str,
    label: &str,
    params: &Params,
    train: &[Case],
    test: &[Case],
    source: &str,
    note: &str,
) -> String {
    let mut text = format!(
        "; {name} — evolved for {label} (seed {}, population {}, {} generations; {note})\n",
        params.seed, params.population, params.generations
    );
    for c in train.iter().chain(test) {
        let ins = c
            .input
            .iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        text.push_str(&format!("; case: {ins} -> {}\n", c.output));
    }
    text.push_str(source);
    text
}

#[allow(clippy::too_many_arguments)]
fn save(
    host: &Host<'_>,
    name: &str,
    path: &str,
    label: &str,
    params: &Params,
    train: &[Case],
    test: &[Case],
    source: &str,
) -> Result<(), PluginError> {
    let text = render(name, label, params, train, test, source, "finished");
    let code = flux_core::asm::assemble(&text)
        .map_err(|e| PluginError::failed(format!("the evolved program does not assemble: {e}")))?;
    let depth = train.iter().map(|c| c.input.len()).min().unwrap_or(0);
    let report = flux_core::validate::validate(&code, Profile::Stack, depth);
    if !report.ok() {
        // Evolution only keeps programs that validate; this would be a bug.
        return Err(PluginError::failed(format!(
            "the evolved program does not validate: {:?}",
            report.findings
        )));
    }
    host.write_file(path, &text)?;
    host.git_commit("tools", &format!("evolve: save {name} ({label})"))?;
    Ok(())
}
