//! The evolve plugin: `datum evolve --target PRESET | --cases FILE` breeds FLUX
//! stack-profile programs by linear genetic programming with lexicase selection
//! (`gp`), against presets with held-out cases (`presets`), evaluating each generation
//! on every core or, with `--runtime vulkan`, as one batch on a GPU through the
//! vulkan-compute plugin. Deterministic: a seed gives the same best program.

pub mod exec;
pub mod gene;
pub mod gp;
pub mod presets;

use datum_plugin_api::{export_plugin, Host, Output, Plugin, PluginError, Request};
use flux_core::{Profile, Status};
use gp::{Case, Evaluator, Params, Program, Score};
use serde::Deserialize;
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

/// One generation as one batch through another plugin: every program × every case on
/// a GPU (`vulkan-compute flux batch`) or on the fleet's nodes (`bus distribute batch`).
/// Both answer with the runs in order; each is judged here exactly as on the CPU.
struct Batch<'h> {
    host: &'h Host<'h>,
    plugin: &'static str,
    command: &'static str,
    extra: Map<String, Value>,
    /// Where the last batch ran (a GPU's name, or the nodes).
    ran_on: Option<String>,
}

/// The part of a run's result a score needs (a GPU sends whole flux-core results,
/// nodes a compact one; the rest is ignored).
#[derive(serde::Deserialize)]
struct Ran {
    status: Status,
    stack: Vec<i32>,
    steps: u64,
}

impl Evaluator for Batch<'_> {
    fn evaluate(
        &mut self,
        programs: &[&Program],
        cases: &[Case],
        max_steps: u64,
    ) -> Result<Vec<Score>, String> {
        if programs.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = self.extra.clone();
        args.insert(
            "programs".into(),
            Value::Array(
                programs
                    .iter()
                    .map(|p| Value::from(flux_core::hex::encode(&p.code)))
                    .collect(),
            ),
        );
        args.insert(
            "stacks".into(),
            json!(cases.iter().map(|c| c.input.clone()).collect::<Vec<_>>()),
        );
        args.insert("max-steps".into(), Value::from(max_steps));
        let reply = self
            .host
            .call_plugin(self.plugin, self.command, args)
            .map_err(|e| format!("{}: {}", self.plugin, e.message))?;
        self.ran_on = match reply["device"].as_str() {
            Some(d) => Some(d.to_owned()),
            None => reply["nodes"].as_array().map(|n| {
                format!(
                    "{} node(s): {}",
                    n.len(),
                    n.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }),
        };
        let results = reply["results"]
            .as_array()
            .ok_or_else(|| format!("{} sent no results", self.plugin))?;
        if results.len() != programs.len() * cases.len() {
            return Err(format!(
                "{} sent {} results for {} runs",
                self.plugin,
                results.len(),
                programs.len() * cases.len()
            ));
        }
        let mut out = Vec::with_capacity(programs.len());
        for chunk in results.chunks(cases.len().max(1)) {
            let mut errors = Vec::with_capacity(cases.len());
            let mut steps = 0;
            for (r, c) in chunk.iter().zip(cases) {
                let r = Ran::deserialize(r)
                    .map_err(|e| format!("an unreadable result from {}: {e}", self.plugin))?;
                steps += r.steps;
                let ok = matches!(r.status, Status::Halted | Status::End);
                errors.push(gp::error(ok.then_some(&r.stack[..]), c.output));
            }
            out.push(Score { errors, steps });
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
    let (label, train, test, max_steps, constants) =
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
                (
                    p.name.to_owned(),
                    p.train(),
                    p.test(),
                    p.max_steps,
                    p.constants.to_vec(),
                )
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
                (
                    format!("cases from {}", file.path),
                    train,
                    test,
                    5000,
                    vec![],
                )
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
        constants,
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
                let text = render(name, &label, &params, &train, &test, &best.source(), &note);
                let _ = host.write_file(path, &text);
            }
        }
        last_fitness = last_fitness.max(r.fitness);
        true
    };
    let nodes = request.arg_str("nodes");
    let (plugin, command, mut extra) = match (runtime, nodes) {
        (_, Some(url)) => {
            if runtime != "cpu" {
                return Err(PluginError::invalid_args(
                    "--nodes evaluates on the fleet: leave out --runtime",
                ));
            }
            let mut extra = Map::new();
            extra.insert("nats".into(), Value::from(url));
            ("bus", "distribute batch", extra)
        }
        ("vulkan", None) => {
            // Every program with every stack (the nodes always do that).
            let mut extra = Map::new();
            extra.insert("cross".into(), Value::Bool(true));
            ("vulkan-compute", "flux batch", extra)
        }
        ("cpu", None) => ("", "", Map::new()),
        (other, None) => {
            return Err(PluginError::invalid_args(format!(
                "--runtime must be cpu or vulkan, not `{}`",
                other.escape_debug()
            )))
        }
    };
    if let Some(n) = request.arg_i64("wait-for-nodes") {
        extra.insert("nodes".into(), Value::from(n));
    }
    let mut batch = Batch {
        host,
        plugin,
        command,
        extra,
        ran_on: None,
    };
    let run = if plugin.is_empty() {
        gp::evolve(&train, &params, &mut gp::Cpu, &mut on_generation)
    } else {
        gp::evolve(&train, &params, &mut batch, &mut on_generation)
    }
    .map_err(|e| {
        let hint = match plugin {
            "vulkan-compute" => "check the device with `datum gpu list` (install vulkan-compute if it is missing), or use --runtime cpu",
            "bus" => "check the fleet with `datum node list --nats URL` (install bus if it is missing; start nodes with `datum node start`), or leave out --nodes",
            _ => "this is a bug in evolve: report it with the command line",
        };
        PluginError::failed(e).with_hint(hint)
    })?;
    let ms = host.now_ms()?.saturating_sub(started).max(1);
    let best = &run.best;
    let held_out = gp::score(&best.program.code, &test, params.max_steps);
    let test_passed = held_out.passed();
    let solved = best.score.fitness() >= 1.0 && test_passed == test.len();
    let source = best.source();
    let mut text = vec![format!(
        "Best program: {} genes, fitness {:.2} on {} training cases, {}/{} held-out cases — {}",
        best.program.genes.len(),
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
        batch
            .ran_on
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
        "bytecode": flux_core::hex::encode(&best.program.code),
        "size": best.program.genes.len(),
        "generations": run.log,
        "evaluations": run.evals,
        "instructions": run.instructions,
        "ms": ms,
        "gp_ops_per_s": gp_ops,
        "runtime": if plugin == "bus" { "nodes" } else { runtime },
        "device": batch.ran_on,
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
