//! The sandboxed tier: WASM plugins built with extism-pdk, run on wasmtime with memory
//! and time limits always set.
//!
//! datum implements the host side of the Extism ABI itself (the `extism:host/env`
//! imports a plugin built with extism-pdk uses — its input, its output and a block
//! memory — plus datum's one `datum_host` import) rather than through the `extism`
//! crate, for load time: extism builds every module with `Module::new`, so even a
//! cached load reads the module, hashes it, then reads and decompresses wasmtime's
//! cache entry and copies it into executable memory (≈10 ms for a 660 KB plugin, most
//! of it zstd). Here a module is compiled once into an uncompressed precompiled file
//! beside the store and later loads map that file (`Module::deserialize_file`); one
//! engine serves the whole process. Plugins are unchanged: same imports, same exports.
//!
//! The ABI as used by extism-pdk 1.x: `alloc(len) -> offset` (0 when it cannot),
//! `free`, `length(offset)`, `load_u8/u64` and `store_u8/u64` at an offset,
//! `input_length`, `input_load_u8/u64`, `output_set(offset, len)`; exports return an
//! `i32` (0 = success). Offsets name blocks in a memory the host keeps per instance
//! (Extism's "kernel" memory); it is emptied before every call.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use datum_plugin_api::abi;
use wasmtime::{Caller, Engine, Instance, Linker, Module, ResourceLimiter, Store};

use super::{CallFailure, LoadError, LoadOptions, Services};

/// The import module of Extism's kernel functions.
const ENV: &str = "extism:host/env";
/// The import module of host functions (datum's `datum_host`).
const USER: &str = "extism:host/user";
/// How often the process-wide clock behind every time limit ticks.
const TICK: Duration = Duration::from_millis(5);
/// The largest module datum reads (the store's own artifact limit).
const MAX_MODULE: u64 = crate::store::MAX_ARTIFACT;

/// One engine for the process: compiled code, type registries and the epoch clock are
/// shared by every instance; each instance has its own store (memory, limits).
fn engine() -> Result<&'static Engine, LoadError> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    let engine = ENGINE.get_or_init(|| {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| format!("{e:#}"))?;
        // The clock time limits are counted in: one thread, ticking while the process
        // lives (a call's deadline is a number of ticks ahead of the clock).
        let clock = engine.clone();
        std::thread::Builder::new()
            .name("datum-wasm-clock".into())
            .spawn(move || loop {
                std::thread::sleep(TICK);
                clock.increment_epoch();
            })
            .map_err(|e| format!("cannot start the WASM time-limit clock: {e}"))?;
        Ok(engine)
    });
    engine
        .as_ref()
        .map_err(|e| LoadError::Wasm(format!("cannot start the WASM engine: {e}")))
}

/// Per-instance state the host functions see.
struct State {
    kernel: Kernel,
    services: Services,
    /// A panic message the plugin reported just before trapping.
    panic: Option<String>,
    limits: MemoryLimit,
}

/// The memory limit, and whether a call ran into it (to tell an out-of-memory trap
/// from any other).
struct MemoryLimit {
    bytes: usize,
    hit: bool,
}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.bytes;
        self.hit |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a million is far beyond any real plugin.
        Ok(desired <= 1 << 20)
    }
}

/// Extism's block memory, kept by the host: the call's input, the blocks the plugin
/// allocates (its output, its requests to datum, datum's replies) and the output.
#[derive(Default)]
struct Kernel {
    heap: Vec<u8>,
    /// Block start → length.
    blocks: BTreeMap<u64, u64>,
    input: Vec<u8>,
    output: Option<(u64, u64)>,
}

/// Offsets start here, so that 0 is never a block (it means "none" in the ABI).
const FIRST_BLOCK: usize = 8;

impl Kernel {
    fn reset(&mut self, input: &[u8]) {
        self.heap.clear();
        self.heap.resize(FIRST_BLOCK, 0);
        self.blocks.clear();
        self.input.clear();
        self.input.extend_from_slice(input);
        self.output = None;
    }

    /// A new zeroed block of `len` bytes, 8-aligned; `None` past `limit` bytes.
    fn alloc(&mut self, len: u64, limit: usize) -> Option<u64> {
        let start = self.heap.len().next_multiple_of(8);
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        if end > limit {
            return None;
        }
        self.heap.resize(end, 0);
        let offset = start as u64;
        self.blocks.insert(offset, len);
        Some(offset)
    }

    fn range(&self, offset: u64, len: u64) -> Option<std::ops::Range<usize>> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        (start >= FIRST_BLOCK && end <= self.heap.len()).then_some(start..end)
    }

    fn bytes(&self, offset: u64, len: u64) -> Option<&[u8]> {
        self.range(offset, len).map(|r| &self.heap[r])
    }

    fn bytes_mut(&mut self, offset: u64, len: u64) -> Option<&mut [u8]> {
        self.range(offset, len).map(|r| &mut self.heap[r])
    }

    /// The whole block starting at `offset`.
    fn block(&self, offset: u64) -> Option<&[u8]> {
        let len = *self.blocks.get(&offset)?;
        self.bytes(offset, len)
    }
}

fn out_of_bounds(what: &str, offset: u64) -> wasmtime::Error {
    wasmtime::Error::msg(format!(
        "{what} at offset {offset} is outside the plugin's Extism memory"
    ))
}

/// The host side of the ABI: Extism's kernel functions and `datum_host`.
fn linker(engine: &Engine) -> wasmtime::Result<Linker<State>> {
    let mut l = Linker::new(engine);
    l.func_wrap(ENV, "alloc", |mut c: Caller<'_, State>, len: u64| -> u64 {
        let state = c.data_mut();
        let limit = state.limits.bytes;
        match state.kernel.alloc(len, limit) {
            Some(offset) => offset,
            None => {
                state.limits.hit = true;
                0
            }
        }
    })?;
    l.func_wrap(ENV, "free", |mut c: Caller<'_, State>, offset: u64| {
        // Blocks are not reused within a call (the memory is emptied before the next).
        c.data_mut().kernel.blocks.remove(&offset);
    })?;
    l.func_wrap(ENV, "length", |c: Caller<'_, State>, offset: u64| -> u64 {
        c.data().kernel.blocks.get(&offset).copied().unwrap_or(0)
    })?;
    l.func_wrap(
        ENV,
        "length_unsafe",
        |c: Caller<'_, State>, offset: u64| -> u64 {
            c.data().kernel.blocks.get(&offset).copied().unwrap_or(0)
        },
    )?;
    l.func_wrap(
        ENV,
        "load_u8",
        |c: Caller<'_, State>, offset: u64| -> wasmtime::Result<u32> {
            let b = c.data().kernel.bytes(offset, 1);
            b.map(|b| u32::from(b[0]))
                .ok_or_else(|| out_of_bounds("load_u8", offset))
        },
    )?;
    l.func_wrap(
        ENV,
        "load_u64",
        |c: Caller<'_, State>, offset: u64| -> wasmtime::Result<u64> {
            let b = c.data().kernel.bytes(offset, 8);
            b.and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .ok_or_else(|| out_of_bounds("load_u64", offset))
        },
    )?;
    l.func_wrap(
        ENV,
        "store_u8",
        |mut c: Caller<'_, State>, offset: u64, v: u32| -> wasmtime::Result<()> {
            let b = c.data_mut().kernel.bytes_mut(offset, 1);
            let b = b.ok_or_else(|| out_of_bounds("store_u8", offset))?;
            b[0] = v as u8;
            Ok(())
        },
    )?;
    l.func_wrap(
        ENV,
        "store_u64",
        |mut c: Caller<'_, State>, offset: u64, v: u64| -> wasmtime::Result<()> {
            let b = c.data_mut().kernel.bytes_mut(offset, 8);
            let b = b.ok_or_else(|| out_of_bounds("store_u64", offset))?;
            b.copy_from_slice(&v.to_le_bytes());
            Ok(())
        },
    )?;
    l.func_wrap(ENV, "input_length", |c: Caller<'_, State>| -> u64 {
        c.data().kernel.input.len() as u64
    })?;
    l.func_wrap(
        ENV,
        "input_load_u8",
        |c: Caller<'_, State>, offset: u64| -> wasmtime::Result<u32> {
            let input = &c.data().kernel.input;
            usize::try_from(offset)
                .ok()
                .and_then(|i| input.get(i))
                .map(|b| u32::from(*b))
                .ok_or_else(|| wasmtime::Error::msg("input_load_u8 past the end of the input"))
        },
    )?;
    l.func_wrap(
        ENV,
        "input_load_u64",
        |c: Caller<'_, State>, offset: u64| -> wasmtime::Result<u64> {
            let input = &c.data().kernel.input;
            usize::try_from(offset)
                .ok()
                .and_then(|i| input.get(i..i.checked_add(8)?))
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .ok_or_else(|| wasmtime::Error::msg("input_load_u64 past the end of the input"))
        },
    )?;
    l.func_wrap(
        ENV,
        "output_set",
        |mut c: Caller<'_, State>, offset: u64, len: u64| -> wasmtime::Result<()> {
            let kernel = &mut c.data_mut().kernel;
            if len > 0 && kernel.bytes(offset, len).is_none() {
                return Err(out_of_bounds("output_set", offset));
            }
            kernel.output = Some((offset, len));
            Ok(())
        },
    )?;
    l.func_wrap(
        USER,
        abi::WASM_HOST_IMPORT,
        |mut c: Caller<'_, State>, offset: u64| -> wasmtime::Result<u64> {
            let state = c.data_mut();
            let request = state
                .kernel
                .block(offset)
                .ok_or_else(|| out_of_bounds("datum_host's request", offset))?;
            let request = String::from_utf8_lossy(request).into_owned();
            let reply = match panic_report(&request) {
                Some(message) => {
                    state.panic = Some(message);
                    r#"{"ok":true,"data":null}"#.to_owned()
                }
                None => (state.services)(&request),
            };
            let limit = state.limits.bytes;
            let Some(at) = state.kernel.alloc(reply.len() as u64, limit) else {
                state.limits.hit = true;
                return Err(wasmtime::Error::msg(
                    "no memory left for datum_host's reply",
                ));
            };
            if let Some(b) = state.kernel.bytes_mut(at, reply.len() as u64) {
                b.copy_from_slice(reply.as_bytes());
            }
            Ok(at)
        },
    )?;
    Ok(l)
}

/// The `panic` pseudo-service the plugin's panic hook calls before aborting.
fn panic_report(request: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(request).ok()?;
    (v["service"] == "panic").then(|| v["args"]["message"].as_str().unwrap_or("panic").to_owned())
}

/// The compiled module for `path`: mapped from the precompiled cache when it holds
/// this module for this engine, else compiled (and the cache filled).
fn module(engine: &Engine, path: &Path, options: &LoadOptions) -> Result<Module, LoadError> {
    let Some(dir) = &options.wasm_cache else {
        let bytes = read_module(path)?;
        return compile(engine, &bytes);
    };
    // A digest the caller verified names the module without reading it; otherwise the
    // bytes are read (once) and hashed here.
    let (digest, read) = match &options.digest {
        Some(d) if crate::store::is_sha256(d) => (d.clone(), None),
        _ => {
            let bytes = read_module(path)?;
            (crate::store::sha256_hex(&bytes), Some(bytes))
        }
    };
    let cached = precompiled_path(dir, engine, &digest);
    if let Some(module) = map_precompiled(engine, &cached) {
        return Ok(module);
    }
    let bytes = match read {
        Some(bytes) => bytes,
        None => {
            let bytes = read_module(path)?;
            if crate::store::sha256_hex(&bytes) != digest {
                return Err(LoadError::Wasm(format!(
                    "{} does not hash to {digest}; reinstall the plugin",
                    path.display()
                )));
            }
            bytes
        }
    };
    let module = compile(engine, &bytes)?;
    // Best effort: without the file the next load compiles again.
    if let Ok(serialized) = module.serialize() {
        let _ = write_precompiled(&cached, &serialized);
    }
    Ok(module)
}

fn read_module(path: &Path) -> Result<Vec<u8>, LoadError> {
    crate::confined::read_file(path, MAX_MODULE).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })
}

fn compile(engine: &Engine, bytes: &[u8]) -> Result<Module, LoadError> {
    Module::new(engine, bytes)
        .map_err(|e| LoadError::Wasm(format!("not a loadable datum WASM plugin: {e:#}")))
}

/// `DIR/<module sha256>-<engine>.cwasm`: one file per module and engine configuration
/// (a wasmtime upgrade or another CPU gets files of its own).
fn precompiled_path(dir: &Path, engine: &Engine, digest: &str) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    dir.join(format!("{digest}-{:016x}.cwasm", h.finish()))
}

/// The stamp beside a precompiled file: the identity of the file datum wrote.
fn stamp_path(cached: &Path) -> PathBuf {
    cached.with_extension("cwasm.ok")
}

/// Map a precompiled module, only if it is the very file datum wrote (its stamp
/// matches: device, inode, size, modification and change times — any write changes
/// the change time, which no user can set back).
fn map_precompiled(engine: &Engine, cached: &Path) -> Option<Module> {
    let meta = std::fs::symlink_metadata(cached).ok()?;
    if !meta.is_file() {
        return None;
    }
    let stamp = std::fs::read_to_string(stamp_path(cached)).ok()?;
    if stamp != crate::store::identity(&meta) {
        return None;
    }
    // SAFETY: `deserialize_file` maps the file and runs its machine code, so it must be
    // a module wasmtime serialized. It is: datum wrote it (write_precompiled) into its
    // own cache beside the store, and the stamp shows it has not been written since;
    // wasmtime itself checks the header (its version, this engine's configuration)
    // and refuses anything else. Someone able to rewrite both file and stamp owns the
    // store too (the native tier's libraries are trusted on the same terms).
    unsafe { Module::deserialize_file(engine, cached) }.ok()
}

/// Write the precompiled file atomically, then its stamp.
fn write_precompiled(cached: &Path, serialized: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = cached.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::fsutil::atomic_write(cached, serialized)?;
    let meta = std::fs::symlink_metadata(cached)?;
    crate::fsutil::atomic_write(
        &stamp_path(cached),
        crate::store::identity(&meta).as_bytes(),
    )
}

fn new_store(engine: &Engine, services: Services, memory_bytes: usize) -> Store<State> {
    let mut store = Store::new(
        engine,
        State {
            kernel: Kernel::default(),
            services,
            panic: None,
            limits: MemoryLimit {
                bytes: memory_bytes,
                hit: false,
            },
        },
    );
    store.limiter(|s| &mut s.limits);
    store
}

pub struct WasmInstance {
    store: Store<State>,
    linker: Linker<State>,
    module: Module,
    /// Instantiated on first call; dropped after a trap (the next call starts clean).
    instance: Option<Instance>,
    timeout_ms: u64,
    memory_mb: u32,
}

/// The Extism kernel functions datum provides (what extism-pdk's input, output and
/// memory need).
const KERNEL: [&str; 12] = [
    "alloc",
    "free",
    "length",
    "length_unsafe",
    "load_u8",
    "load_u64",
    "store_u8",
    "store_u64",
    "input_length",
    "input_load_u8",
    "input_load_u64",
    "output_set",
];

/// Every import must be one datum provides; say which is not, and what to use instead.
fn check_imports(module: &Module) -> Result<(), LoadError> {
    for import in module.imports() {
        let known = match import.module() {
            ENV => KERNEL.contains(&import.name()),
            USER => import.name() == abi::WASM_HOST_IMPORT,
            _ => false,
        };
        if !known {
            return Err(LoadError::Wasm(format!(
                "the module imports `{}::{}`, which datum does not provide: a datum plugin \
                 reaches the host only through datum-plugin-api's host services (logging, \
                 files, key-value, secrets, other plugins), not extism-pdk's config, vars, \
                 logs, HTTP or WASI",
                import.module(),
                import.name()
            )));
        }
    }
    Ok(())
}

impl WasmInstance {
    pub fn load(path: &Path, options: &LoadOptions, services: Services) -> Result<Self, LoadError> {
        let engine = engine()?;
        let module = module(engine, path, options)?;
        check_imports(&module)?;
        let linker = linker(engine)
            .map_err(|e| LoadError::Wasm(format!("cannot link the Extism ABI: {e:#}")))?;
        let limits = options.limits;
        let bytes = (limits.memory_mb as usize).saturating_mul(1024 * 1024);
        let mut instance = WasmInstance {
            store: new_store(engine, services, bytes),
            linker,
            module,
            instance: None,
            timeout_ms: limits.timeout_ms,
            memory_mb: limits.memory_mb,
        };
        // Link now, so a module that does not fit the ABI fails at load, not at its
        // first call.
        instance
            .instantiate()
            .map_err(|e| LoadError::Wasm(format!("not a loadable datum WASM plugin: {e:#}")))?;
        Ok(instance)
    }

    fn instantiate(&mut self) -> wasmtime::Result<Instance> {
        if let Some(i) = self.instance {
            return Ok(i);
        }
        // Instantiation runs start functions and data initialisation: time-limited too.
        self.arm_deadline();
        let i = self.linker.instantiate(&mut self.store, &self.module)?;
        // A reactor module's initialiser, as Extism runs it (Rust plugins have none).
        if let Ok(init) = i.get_typed_func::<(), ()>(&mut self.store, "_initialize") {
            init.call(&mut self.store, ())?;
        }
        self.instance = Some(i);
        Ok(i)
    }

    fn arm_deadline(&mut self) {
        let ticks = self.timeout_ms.div_ceil(TICK.as_millis() as u64).max(1) + 1;
        self.store.set_epoch_deadline(ticks);
    }

    fn call(&mut self, function: &str, input: &str) -> Result<String, CallFailure> {
        {
            let state = self.store.data_mut();
            state.kernel.reset(input.as_bytes());
            state.panic = None;
            state.limits.hit = false;
        }
        let outcome = self.instantiate().and_then(|instance| {
            let f = instance.get_typed_func::<(), i32>(&mut self.store, function)?;
            self.arm_deadline();
            f.call(&mut self.store, ())
        });
        let rc = match outcome {
            Ok(rc) => rc,
            Err(e) => return Err(self.failure(e)),
        };
        let state = self.store.data_mut();
        if rc != 0 {
            return Err(CallFailure::Trap(format!(
                "`{function}` returned the error code {rc}"
            )));
        }
        let output = match state.kernel.output {
            None | Some((_, 0)) => Vec::new(),
            Some((offset, len)) => state
                .kernel
                .bytes(offset, len)
                .map(<[u8]>::to_vec)
                .unwrap_or_default(),
        };
        String::from_utf8(output)
            .map_err(|_| CallFailure::BadReply(format!("`{function}` output is not UTF-8")))
    }

    /// What a failed call means. The instance and its store are dropped (its memory
    /// may be half-way through anything, and a store keeps every instance it made
    /// until it goes): the next call instantiates afresh in a new store.
    fn failure(&mut self, e: wasmtime::Error) -> CallFailure {
        let state = self.store.data_mut();
        let failure = if matches!(
            e.downcast_ref::<wasmtime::Trap>(),
            Some(wasmtime::Trap::Interrupt)
        ) {
            CallFailure::Timeout(self.timeout_ms)
        } else if state.limits.hit {
            CallFailure::OutOfMemory(self.memory_mb)
        } else if let Some(message) = state.panic.take() {
            CallFailure::Panic(message)
        } else {
            // The root cause names what happened (a wasm trap, or which ABI call was
            // refused); the outer layers are wasmtime's backtrace.
            let cause = e.root_cause().to_string();
            CallFailure::Trap(cause.lines().next().unwrap_or("trap").to_owned())
        };
        let services = state.services.clone();
        let bytes = state.limits.bytes;
        self.store = new_store(self.store.engine(), services, bytes);
        self.instance = None;
        failure
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::loader::Instance as _;

    /// A plugin in WAT speaking the Extism ABI as extism-pdk does: `invoke` answers
    /// `NAME:` followed by its input; the other exports misbehave on purpose.
    fn plugin(name: &str) -> String {
        let bytes: String = name.bytes().map(|b| format!("\\{b:02x}")).collect();
        let n = name.len() + 1;
        format!(
            r#"(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "load_u64" (func $load_u64 (param i64) (result i64)))
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{bytes}:")
  (func (export "invoke") (result i32)
    (local $out i64) (local $len i64) (local $i i64)
    (local.set $len (call $input_length))
    (local.set $out (call $alloc (i64.add (local.get $len) (i64.const {n}))))
    (block $done (loop $copy
      (br_if $done (i64.ge_u (local.get $i) (i64.const {n})))
      (call $store_u8 (i64.add (local.get $out) (local.get $i))
        (i32.load8_u (i32.wrap_i64 (local.get $i))))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $copy)))
    (local.set $i (i64.const 0))
    (block $done (loop $copy
      (br_if $done (i64.ge_u (local.get $i) (local.get $len)))
      (call $store_u8 (i64.add (local.get $out) (i64.add (local.get $i) (i64.const {n})))
        (call $input_load_u8 (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $copy)))
    (call $output_set (local.get $out) (i64.add (local.get $len) (i64.const {n})))
    (i32.const 0))
  (func (export "manifest") (result i32) (i32.const 0))
  (func (export "spin") (result i32) (loop $l (br $l)) (i32.const 0))
  (func (export "grow") (result i32) (drop (memory.grow (i32.const 4096))) (unreachable))
  (func (export "peek") (result i32) (drop (call $load_u64 (i64.const 0x7fffffffffff))) (i32.const 0))
  (func (export "hoard") (result i32) (drop (call $alloc (i64.const 0x7fffffffffff))) (unreachable))
)"#
        )
    }

    fn options(cache: &Path, timeout_ms: u64) -> LoadOptions {
        LoadOptions {
            limits: datum_plugin_api::Limits {
                timeout_ms,
                memory_mb: 16,
                ..Default::default()
            },
            wasm_cache: Some(cache.to_owned()),
            digest: None,
        }
    }

    fn load(path: &Path, cache: &Path) -> WasmInstance {
        WasmInstance::load(path, &options(cache, 5_000), crate::loader::no_services()).unwrap()
    }

    fn cached_file(cache: &Path) -> PathBuf {
        let mut files: Vec<PathBuf> = std::fs::read_dir(cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        files.remove(0)
    }

    #[test]
    fn a_module_is_compiled_once_then_mapped_and_a_replaced_file_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.wasm"), dir.path().join("b.wasm"));
        std::fs::write(&a, plugin("a")).unwrap();
        std::fs::write(&b, plugin("b")).unwrap();
        let (cache_a, cache_b) = (dir.path().join("cache-a"), dir.path().join("cache-b"));
        assert_eq!(load(&a, &cache_a).invoke("hi").unwrap(), "a:hi");
        let compiled = cached_file(&cache_a);
        let written = std::fs::metadata(&compiled).unwrap().modified().unwrap();
        // The second load maps the file: it is not compiled or written again.
        assert_eq!(load(&a, &cache_a).invoke("yo").unwrap(), "a:yo");
        assert_eq!(
            std::fs::metadata(&compiled).unwrap().modified().unwrap(),
            written
        );
        // Another module's precompiled code put in its place — valid for wasmtime, but
        // not the file datum wrote — is compiled over, never run.
        assert_eq!(load(&b, &cache_b).invoke("").unwrap(), "b:");
        std::fs::copy(cached_file(&cache_b), &compiled).unwrap();
        assert_eq!(load(&a, &cache_a).invoke("again").unwrap(), "a:again");
        assert_eq!(load(&a, &cache_a).invoke("!").unwrap(), "a:!");
    }

    #[test]
    fn an_import_datum_does_not_provide_is_named_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs.wasm");
        let wat = plugin("p").replacen(
            "(memory",
            r#"(import "extism:host/env" "log_info" (func (param i64))) (memory"#,
            1,
        );
        std::fs::write(&path, wat).unwrap();
        let err = WasmInstance::load(
            &path,
            &options(&dir.path().join("c"), 1_000),
            crate::loader::no_services(),
        )
        .err()
        .unwrap();
        assert!(
            err.to_string().contains("`extism:host/env::log_info`"),
            "{err}"
        );
        assert!(err.to_string().contains("host services"), "{err}");
    }

    #[test]
    fn limits_and_hostile_abi_calls_end_the_call_not_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.wasm");
        std::fs::write(&path, plugin("p")).unwrap();
        let cache = dir.path().join("cache");
        let mut p =
            WasmInstance::load(&path, &options(&cache, 100), crate::loader::no_services()).unwrap();
        let started = std::time::Instant::now();
        assert_eq!(p.call("spin", ""), Err(CallFailure::Timeout(100)));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(p.call("grow", ""), Err(CallFailure::OutOfMemory(16)));
        assert_eq!(p.call("hoard", ""), Err(CallFailure::OutOfMemory(16)));
        let peek = p.call("peek", "");
        assert!(
            matches!(&peek, Err(CallFailure::Trap(m)) if m.contains("outside the plugin's Extism memory")),
            "{peek:?}"
        );
        assert!(matches!(
            p.call("no-such-export", ""),
            Err(CallFailure::Trap(_))
        ));
        // After every failure the plugin answers again, from a fresh instance.
        assert_eq!(p.invoke("ok").unwrap(), "p:ok");
    }
}
