//! `datum flux run`.

use datum_plugin_api::{Output, PluginError, Request};
use flux_core::{Config, Status};
use serde_json::json;

use crate::program;

const TRACE_LIMIT: usize = 10_000;

pub fn run(request: &Request) -> Result<Output, PluginError> {
    let program = program::from_request(request, "program")?;
    let mut config = Config {
        profile: program.profile,
        ..Config::default()
    };
    if let Some(n) = request.arg_i64("max-steps") {
        config.max_steps = u64::try_from(n).map_err(|_| {
            PluginError::invalid_args(format!("--max-steps must be zero or more, got {n}"))
        })?;
    }
    if let Some(n) = request.arg_i64("fuel") {
        let fuel = u32::try_from(n).ok().filter(|f| *f > 0).ok_or_else(|| {
            PluginError::invalid_args(format!("--fuel must be 1 ..= 4294967295, got {n}"))
        })?;
        config.fuel = Some(fuel);
    }
    if let Some(words) = request.arg_str("stack") {
        config.initial_stack = words
            .split(',')
            .filter(|w| !w.trim().is_empty())
            .map(|w| flux_core::asm::parse_number(w).map(|n| n as u32))
            .collect::<Result<_, _>>()
            .map_err(|e| PluginError::invalid_args(format!("--stack: {e}")))?;
    }
    if request.arg_bool("trace") {
        config.trace_limit = TRACE_LIMIT;
    }
    let result = flux_core::run(&program.code, &config);
    let stack = format!(
        "[{}]",
        result
            .stack
            .iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut text = String::new();
    for t in &result.trace {
        let top = t.top.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
        text.push_str(&format!(
            "{:>8}  {:04x}  op {:02x}  depth {:<4} top {top}\n",
            t.step, t.pc, t.opcode, t.depth
        ));
    }
    text.push_str(&match (result.status, result.error) {
        (Status::Trap, Some(trap)) => format!(
            "trap {trap} at {} after {} steps",
            result
                .trap_pc
                .map(|p| format!("{p:#06x}"))
                .unwrap_or_default(),
            result.steps
        ),
        _ => stack,
    });
    let data = json!({
        "program": program.name,
        "profile": result.profile,
        "stack": result.stack,
        "flags": result.flags,
        "status": result.status,
        "error": result.error,
        "trap_pc": result.trap_pc,
        "steps": result.steps,
        "registers": result.registers,
        "clock": result.clock,
        "fuel": result.fuel,
        "confidence": result.confidence,
        "trace": result.trace,
    });
    Ok(Output::new(data).with_text(text))
}
