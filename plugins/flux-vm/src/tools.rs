//! `datum flux asm`, `disasm`, `validate` and `examples`.

use datum_plugin_api::{Output, PluginError, Request};
use flux_core::validate::{Report, Severity};
use serde_json::json;

use crate::examples::{Expectation, EXAMPLES};
use crate::program::{self, Program};

pub fn asm(request: &Request) -> Result<Output, PluginError> {
    let file = request.arg_file("file")?.ok_or_else(|| {
        PluginError::invalid_args("name a .flux file (or an example) to assemble")
    })?;
    let program = program::from_file(&file, Some(flux_core::Profile::Stack))?;
    let bytes = if request.arg_bool("header") {
        flux_core::with_header(program.profile, &program.code)
    } else {
        program.code.clone()
    };
    let hex = flux_core::hex::encode(&bytes);
    Ok(Output::new(json!({ "program": program.name, "profile": program.profile, "bytes": bytes.len(), "hex": hex })).with_text(hex))
}

pub fn disasm(request: &Request) -> Result<Output, PluginError> {
    let program = program::from_request(request, "file")?;
    let text = flux_core::disasm::disassemble(&program.code, program.profile);
    Ok(Output::new(json!({ "program": program.name, "profile": program.profile, "bytes": program.code.len(), "assembly": text }))
        .with_text(text))
}

/// The fewest inputs any `; case: INPUTS -> STACK` line of a tool declares.
fn case_depth(source: &str) -> Option<usize> {
    source
        .lines()
        .filter_map(|l| l.trim().strip_prefix(';')?.trim().strip_prefix("case:"))
        .filter_map(|c| c.split_once("->").map(|(i, _)| i))
        .map(|i| i.split([' ', ',']).filter(|w| !w.trim().is_empty()).count())
        .min()
}

pub fn validate(request: &Request) -> Result<Output, PluginError> {
    let profile = program::profile_arg(request)?;
    let mut programs: Vec<Program> = Vec::new();
    // The stack depth each program starts with: `--depth`, else what a tool's
    // `; case: INPUTS -> …` lines put there (the fewest inputs), else 0.
    let mut depths: Vec<usize> = Vec::new();
    let depth_arg = match request.arg_i64("depth") {
        Some(d) => Some(
            usize::try_from(d)
                .map_err(|_| PluginError::invalid_args("--depth must be 0 or more"))?,
        ),
        None => None,
    };
    for file in request.arg_files("files")? {
        let declared = if file.exists && file.path.ends_with(".flux") {
            case_depth(&file.text())
        } else {
            None
        };
        depths.push(depth_arg.or(declared).unwrap_or(0));
        programs.push(program::from_file(&file, profile)?);
    }
    if request.arg_bool("all-examples") {
        for e in EXAMPLES {
            let code = flux_core::asm::assemble(e.source).map_err(|err| {
                PluginError::failed(format!("example {} does not assemble: {err}", e.name))
            })?;
            programs.push(Program {
                name: e.name.to_owned(),
                profile: flux_core::Profile::Stack,
                code,
            });
        }
    }
    if programs.is_empty() {
        return Err(PluginError::invalid_args("nothing to validate")
            .with_hint("name files or examples, or pass --all-examples"));
    }
    let full = request.arg_bool("report");
    let reports: Vec<(String, Report)> = programs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let depth = depths.get(i).copied().unwrap_or(depth_arg.unwrap_or(0));
            (
                p.name.clone(),
                flux_core::validate::validate(&p.code, p.profile, depth),
            )
        })
        .collect();
    let errors: usize = reports.iter().map(|(_, r)| r.errors()).sum();
    let mut text = String::new();
    for (name, r) in &reports {
        let verdict = if r.ok() { "ok" } else { "INVALID" };
        text.push_str(&format!(
            "{name}: {verdict} ({} bytes, {} instructions, {} errors, {} warnings)\n",
            r.bytes,
            r.instructions,
            r.errors(),
            r.warnings()
        ));
        for f in r
            .findings
            .iter()
            .filter(|f| full || f.severity == Severity::Error)
        {
            let sev = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Info => "info",
            };
            text.push_str(&format!(
                "  {:04x}  {sev:<7} {:<16} {}\n",
                f.offset, f.check, f.message
            ));
        }
    }
    let data = json!({
        "ok": errors == 0,
        "programs": reports.iter().map(|(name, r)| json!({"name": name, "ok": r.ok(), "report": r})).collect::<Vec<_>>(),
    });
    if errors > 0 {
        return Err(PluginError::failed(format!(
            "{errors} validation error(s):\n{}",
            text.trim_end()
        ))
        .with_hint("fix the findings listed, or run with --report for warnings too"));
    }
    Ok(Output::new(data).with_text(text))
}

pub fn examples() -> Result<Output, PluginError> {
    let list: Vec<_> = EXAMPLES
        .iter()
        .map(|e| {
            let expect = match e.expectation() {
                Expectation::Stack(s) => json!({ "stack": s }),
                Expectation::Trap(t) => json!({ "error": t }),
            };
            json!({ "name": e.name, "summary": e.summary(), "expect": expect })
        })
        .collect();
    let mut text = String::new();
    for e in EXAMPLES {
        let expect = match e.expectation() {
            Expectation::Stack(s) => format!("{s:?}"),
            Expectation::Trap(t) => format!("trap {t}"),
        };
        text.push_str(&format!("{:<12} {:<22} {}\n", e.name, expect, e.summary()));
    }
    text.push_str("run one with `datum flux run NAME`");
    Ok(Output::new(json!({ "examples": list })).with_text(text))
}
