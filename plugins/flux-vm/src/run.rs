//! `datum flux run`.

use datum_plugin_api::{Host, Output, PluginError, Request};
use flux_core::{Config, Status};
use serde_json::json;

use crate::program;

const TRACE_LIMIT: usize = 10_000;

pub fn run(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
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
            .map(|w| {
                // A stack word is 32 bits: signed or unsigned spellings fit, nothing wraps.
                let n = flux_core::asm::parse_number(w)?;
                if !(i64::from(i32::MIN)..=i64::from(u32::MAX)).contains(&n) {
                    return Err(format!(
                        "`{}` does not fit a 32-bit stack word ({} to {})",
                        w.trim(),
                        i32::MIN,
                        u32::MAX
                    ));
                }
                Ok(n as u32)
            })
            .collect::<Result<_, _>>()
            .map_err(|e| PluginError::invalid_args(format!("--stack: {e}")))?;
    }
    if request.arg_bool("trace") {
        config.trace_limit = TRACE_LIMIT;
    }
    let (result, ran) = match request.arg_str("runtime").unwrap_or("cpu") {
        "cpu" => (flux_core::run(&program.code, &config), None),
        "vulkan" => on_gpu(request, host, &program.code, &config)?,
        other => {
            return Err(PluginError::invalid_args(format!(
                "--runtime must be cpu or vulkan, not `{other}`"
            )))
        }
    };
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
    if let Some(ran) = &ran {
        text.push_str(&format!("{ran}\n"));
    }
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
        // The prototype's field (its scripts test it): HALT was executed.
        "halted": result.status == Status::Halted,
        "error": result.error,
        "trap_pc": result.trap_pc,
        "steps": result.steps,
        "registers": result.registers,
        "clock": result.clock,
        "fuel": result.fuel,
        "confidence": result.confidence,
        "trace": result.trace,
        // Where a `--runtime vulkan` run went (the device, or why it came back to the CPU).
        "ran": ran,
    });
    Ok(Output::new(data).with_text(text))
}

/// Run one program through the vulkan-compute plugin's batch API.
fn on_gpu(
    request: &Request,
    host: &Host<'_>,
    code: &[u8],
    config: &Config,
) -> Result<(flux_core::RunResult, Option<String>), PluginError> {
    if config.profile != flux_core::Profile::Stack {
        return Err(PluginError::invalid_args(
            "the Vulkan backend runs the stack profile; use --runtime cpu for register programs",
        ));
    }
    if config.fuel.is_some() || config.trace_limit > 0 {
        return Err(PluginError::invalid_args(
            "--fuel and --trace are not available on the GPU; drop them or use --runtime cpu",
        ));
    }
    let mut args = serde_json::Map::new();
    args.insert("programs".into(), json!([flux_core::hex::encode(code)]));
    args.insert("stacks".into(), json!([config.initial_stack]));
    args.insert("max-steps".into(), json!(config.max_steps));
    if let Some(d) = request.arg_i64("device") {
        args.insert("device".into(), json!(d));
    }
    let reply = host.call_plugin("vulkan-compute", "flux batch", args)?;
    let result: flux_core::RunResult = serde_json::from_value(reply["results"][0].clone())
        .map_err(|e| {
            PluginError::failed(format!("vulkan-compute sent an unreadable result: {e}"))
        })?;
    let device = reply["device"].as_str().unwrap_or("?");
    let ran = &reply["ran"][0];
    let note = if ran["on"] == "gpu" {
        format!("ran on {device}")
    } else {
        format!(
            "ran on the CPU (the GPU handed it back: {})",
            ran["reason"].as_str().unwrap_or("?")
        )
    };
    Ok((result, Some(note)))
}
