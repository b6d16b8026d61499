//! The commands: `datum gpu list` and `datum flux batch` (the batch API other plugins
//! call through the host, e.g. `datum flux run --runtime vulkan`).

use datum_plugin_api::{export_plugin, Host, Output, Plugin, PluginError, Request};
use serde_json::{json, Value};

use crate::batch::{run_cpu_all_cores, run_gpu, Job, Ran, OUT_STACK};
use std::sync::{Arc, Mutex, OnceLock};

use crate::gpu::{self, Gpu, GpuError};

pub struct VulkanCompute;

impl Plugin for VulkanCompute {
    const MANIFEST: &'static str = include_str!("../datum-plugin.toml");

    fn invoke(request: &Request, _host: &Host<'_>) -> Result<Output, PluginError> {
        match request.command.as_str() {
            "gpu list" => list(),
            "flux batch" => batch(request),
            other => Err(PluginError::unknown_command("vulkan-compute", other)),
        }
    }
}

export_plugin!(VulkanCompute);

fn gpu_err(e: GpuError) -> PluginError {
    PluginError::failed(e.to_string()).with_hint(e.hint())
}

/// The device for `index`, opened by an earlier call in this process when possible (a
/// `datum batch` session, or any host that keeps the plugin loaded): opening a device
/// and building the pipeline takes 100–400 ms, longer than a batch of thousands of
/// programs runs. Returns whether it was reused.
fn device(index: Option<usize>) -> Result<(Arc<Gpu>, bool), GpuError> {
    /// Devices by the `--device` they were asked for.
    type Opened = Vec<(Option<usize>, Arc<Gpu>)>;
    static OPEN: OnceLock<Mutex<Opened>> = OnceLock::new();
    let mut open = OPEN
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .map_err(|_| GpuError::Vulkan {
            doing: "reusing the open device",
            why: "an earlier call panicked while opening it".into(),
        })?;
    if let Some((_, gpu)) = open.iter().find(|(i, _)| *i == index) {
        return Ok((gpu.clone(), true));
    }
    let gpu = Arc::new(Gpu::open(index)?);
    open.push((index, gpu.clone()));
    Ok((gpu, false))
}

fn list() -> Result<Output, PluginError> {
    let devices = gpu::list().map_err(gpu_err)?;
    let mut text = format!(
        "{:<3} {:<40} {:<15} {:<10} {:>10}  DRIVER",
        "#", "NAME", "TYPE", "VULKAN", "MEMORY"
    );
    for d in &devices {
        text.push_str(&format!(
            "\n{:<3} {:<40} {:<15} {:<10} {:>7} MiB  {}{}",
            d.index,
            d.name,
            d.kind,
            d.api_version,
            d.memory_mb,
            d.driver,
            if d.compute {
                ""
            } else {
                "  (no compute queue)"
            }
        ));
    }
    Ok(Output::new(json!({ "devices": devices })).with_text(text))
}

/// A JSON argument given either as JSON text (the CLI) or as a value (plugin calls).
fn json_arg(request: &Request, name: &str) -> Result<Option<Value>, PluginError> {
    match request.arg(name) {
        None => Ok(None),
        Some(Value::String(text)) => serde_json::from_str(text)
            .map(Some)
            .map_err(|e| PluginError::invalid_args(format!("--{name} is not JSON: {e}"))),
        Some(v) => Ok(Some(v.clone())),
    }
}

fn programs(request: &Request) -> Result<Vec<Vec<u8>>, PluginError> {
    let list = json_arg(request, "programs")?.ok_or_else(|| {
        PluginError::invalid_args("--programs is required: a JSON array of hex strings")
    })?;
    let list = list.as_array().ok_or_else(|| {
        PluginError::invalid_args("--programs must be a JSON array of hex strings")
    })?;
    list.iter()
        .enumerate()
        .map(|(i, p)| {
            let hex = p.as_str().ok_or_else(|| {
                PluginError::invalid_args(format!("program {i} is not a hex string"))
            })?;
            flux_core::hex::decode(hex)
                .map_err(|e| PluginError::invalid_args(format!("program {i}: {e}")))
        })
        .collect()
}

fn stacks(request: &Request) -> Result<Vec<Vec<u32>>, PluginError> {
    let Some(list) = json_arg(request, "stacks")? else {
        return Ok(vec![Vec::new()]);
    };
    let list = list.as_array().ok_or_else(|| {
        PluginError::invalid_args("--stacks must be a JSON array of arrays of integers")
    })?;
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            s.as_array()
                .ok_or_else(|| PluginError::invalid_args(format!("stack {i} is not an array")))?
                .iter()
                .map(|w| {
                    flux_core::conformance::word_of(w).ok_or_else(|| {
                        PluginError::invalid_args(format!("stack {i}: `{w}` is not a word"))
                    })
                })
                .collect()
        })
        .collect()
}

fn batch(request: &Request) -> Result<Output, PluginError> {
    let programs = programs(request)?;
    let stacks = stacks(request)?;
    let max_steps = request
        .arg_i64("max-steps")
        .unwrap_or(flux_core::DEFAULT_MAX_STEPS as i64);
    let max_steps = u64::try_from(max_steps)
        .map_err(|_| PluginError::invalid_args("--max-steps must be zero or more"))?;
    // Every program with every stack, or program i with stack i (a single stack is
    // shared by all programs).
    let jobs: Vec<Job> = if request.arg_bool("cross") {
        (0..programs.len())
            .flat_map(|p| {
                stacks.iter().map(move |s| Job {
                    program: p,
                    stack: s.clone(),
                })
            })
            .collect()
    } else if stacks.len() == 1 {
        (0..programs.len())
            .map(|p| Job {
                program: p,
                stack: stacks[0].clone(),
            })
            .collect()
    } else if stacks.len() == programs.len() {
        (0..programs.len())
            .map(|p| Job {
                program: p,
                stack: stacks[p].clone(),
            })
            .collect()
    } else {
        return Err(PluginError::invalid_args(format!(
            "{} programs and {} stacks: give one stack, one per program, or --cross",
            programs.len(),
            stacks.len()
        )));
    };
    let device = match request.arg_i64("device") {
        Some(n) => Some(usize::try_from(n).map_err(|_| {
            PluginError::invalid_args("--device is an index from `datum gpu list`")
        })?),
        None => None,
    };
    let fallback = request.arg_str("fallback").unwrap_or("none");
    if !matches!(fallback, "none" | "cpu") {
        return Err(PluginError::invalid_args("--fallback is none or cpu"));
    }
    let out_stack = request
        .arg_i64("out-stack")
        .map_or(OUT_STACK, |n| n.clamp(0, OUT_STACK as i64) as usize);
    let (results, ran, device_name, stats) = match self::device(device) {
        Ok((gpu, reused)) => {
            let (batch, stats) =
                run_gpu(&gpu, &programs, &jobs, max_steps, out_stack).map_err(gpu_err)?;
            let (results, ran): (Vec<_>, Vec<_>) = batch.to_pairs().into_iter().unzip();
            let mut stats = json!(stats);
            stats["reused_device"] = json!(reused);
            stats["setup_ms"] = json!(if reused {
                0.0
            } else {
                gpu.setup.as_secs_f64() * 1e3
            });
            (results, ran, gpu.device_info.name.clone(), stats)
        }
        // Only when asked: the caller must know the answer did not come from a GPU.
        Err(e) if fallback == "cpu" => {
            let results = run_cpu_all_cores(&programs, &jobs, max_steps);
            let why = format!("no GPU: {e}");
            let ran = vec![Ran::Cpu(why.clone()); results.len()];
            (
                results,
                ran,
                "cpu (fallback)".to_owned(),
                json!({ "jobs": jobs.len(), "on_gpu": 0, "on_cpu": jobs.len(), "fallback": why }),
            )
        }
        Err(e) => return Err(gpu_err(e)),
    };
    let on_gpu = ran.iter().filter(|r| **r == Ran::Gpu).count();
    let text = format!(
        "{} runs on {device_name}: {on_gpu} on the device, {} on the CPU",
        results.len(),
        results.len() - on_gpu
    );
    Ok(Output::new(json!({
        "device": device_name,
        "results": results,
        "ran": ran,
        "stats": stats,
    }))
    .with_text(text))
}
