//! The sandboxed tier: Extism modules with memory and time limits always set.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datum_plugin_api::abi;
use extism::{CurrentPlugin, Function, Manifest, PluginBuilder, UserData, Val, Wasm, PTR};

use super::{CallFailure, LoadError, LoadOptions, Services};

/// Per-plugin state the host function sees.
struct HostState {
    services: Services,
    /// A panic message the plugin reported just before trapping.
    panic: Arc<Mutex<Option<String>>>,
}

pub struct WasmInstance {
    plugin: extism::Plugin,
    panic: Arc<Mutex<Option<String>>>,
    timeout_ms: u64,
    memory_mb: u32,
}

const WASM_PAGE: u32 = 64 * 1024;

impl WasmInstance {
    pub fn load(path: &Path, options: &LoadOptions, services: Services) -> Result<Self, LoadError> {
        let limits = options.limits;
        let manifest = Manifest::new([Wasm::file(path)])
            .with_memory_max(limits.memory_mb.saturating_mul(1024 * 1024 / WASM_PAGE))
            .with_timeout(Duration::from_millis(limits.timeout_ms));
        let panic = Arc::new(Mutex::new(None));
        let state = HostState {
            services,
            panic: panic.clone(),
        };
        let function = Function::new(
            abi::WASM_HOST_IMPORT,
            [PTR],
            [PTR],
            UserData::new(state),
            datum_host,
        );
        let mut builder = PluginBuilder::new(manifest)
            .with_wasi(false)
            .with_functions([function]);
        builder = match &options.wasm_cache_config {
            Some(config) => builder.with_cache_config(config),
            None => builder.with_cache_disabled(),
        };
        let plugin = builder
            .build()
            .map_err(|e| LoadError::Wasm(format!("not a loadable datum WASM plugin: {e:#}")))?;
        Ok(WasmInstance {
            plugin,
            panic,
            timeout_ms: limits.timeout_ms,
            memory_mb: limits.memory_mb,
        })
    }

    fn call(&mut self, function: &str, input: &str) -> Result<String, CallFailure> {
        if let Ok(mut p) = self.panic.lock() {
            *p = None;
        }
        match self.plugin.call::<&str, String>(function, input) {
            Ok(reply) => Ok(reply),
            Err(e) => {
                let root = e.root_cause().to_string();
                if root == "timeout" {
                    return Err(CallFailure::Timeout(self.timeout_ms));
                }
                if root == "oom" {
                    return Err(CallFailure::OutOfMemory(self.memory_mb));
                }
                if let Some(message) = self.panic.lock().ok().and_then(|mut p| p.take()) {
                    return Err(CallFailure::Panic(message));
                }
                Err(CallFailure::Trap(
                    format!("{e:#}").lines().next().unwrap_or("trap").to_owned(),
                ))
            }
        }
    }
}

impl super::Instance for WasmInstance {
    fn describe(&mut self) -> Result<String, CallFailure> {
        self.call(abi::WASM_MANIFEST_EXPORT, "")
    }

    fn invoke(&mut self, request: &str) -> Result<String, CallFailure> {
        self.call(abi::WASM_INVOKE_EXPORT, request)
    }
}

/// The one host import every datum WASM plugin declares (`extism:host/user::datum_host`).
fn datum_host(
    plugin: &mut CurrentPlugin,
    inputs: &[Val],
    outputs: &mut [Val],
    user_data: UserData<HostState>,
) -> Result<(), extism::Error> {
    let request: String = plugin.memory_get_val(&inputs[0])?;
    let state = user_data.get()?;
    let state = state
        .lock()
        .map_err(|_| extism::Error::msg("host state poisoned"))?;
    let reply = match panic_report(&request) {
        Some(message) => {
            if let Ok(mut p) = state.panic.lock() {
                *p = Some(message);
            }
            r#"{"ok":true,"data":null}"#.to_owned()
        }
        None => (state.services)(&request),
    };
    let handle = plugin.memory_new(&reply)?;
    if let Some(out) = outputs.first_mut() {
        *out = plugin.memory_to_val(handle);
    }
    Ok(())
}

/// The `panic` pseudo-service the plugin's panic hook calls before aborting.
fn panic_report(request: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(request).ok()?;
    (v["service"] == "panic").then(|| v["args"]["message"].as_str().unwrap_or("panic").to_owned())
}
