//! The trusted tier: abi_stable shared libraries loaded into the host process.
//!
//! Native plugins run with the host's privileges, so memory cannot be capped; the
//! time limit is enforced by running each call on a watchdog thread (a runaway call
//! is abandoned and reported, and the CLI exits normally).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use abi_stable::library::{lib_header_from_path, LibraryError};
use abi_stable::std_types::{RStr, RString};
use datum_plugin_api::abi::native::{HostCallbacks, PluginModuleRef};

use super::{CallFailure, LoadError, LoadOptions, Services};

pub struct NativeInstance {
    module: PluginModuleRef,
    services: Services,
    timeout: Duration,
    worker: Option<Worker>,
}

impl NativeInstance {
    pub fn load(path: &Path, options: &LoadOptions, services: Services) -> Result<Self, LoadError> {
        // dlopen searches the system library path for a name without a slash
        // (`rand.so`): only ever hand it the absolute path of the file meant.
        let path = &std::fs::canonicalize(path).map_err(|source| LoadError::Io {
            path: path.to_owned(),
            source,
        })?;
        let header = lib_header_from_path(path).map_err(|e| LoadError::Native(summarise(&e)))?;
        let module = header
            .init_root_module::<PluginModuleRef>()
            .map_err(|e| LoadError::Native(summarise(&e)))?;
        Ok(NativeInstance {
            module,
            services,
            timeout: Duration::from_millis(options.limits.timeout_ms),
            worker: None,
        })
    }
}

/// abi_stable's errors can be pages of layout dump; keep the line a user can act on.
fn summarise(e: &LibraryError) -> String {
    match e {
        LibraryError::OpenError { .. } | LibraryError::GetSymbolError { .. } => {
            format!("not a loadable datum native plugin ({e})")
        }
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => format!(
            "built against datum-plugin-api {actual_version}, but this datum uses {expected_version}; install a build for this API"
        ),
        LibraryError::AbiInstability(_) => {
            "its plugin ABI layout differs from this datum's (built with an incompatible datum-plugin-api); rebuild it against this API".to_owned()
        }
        other => {
            let text = other.to_string();
            text.lines().next().unwrap_or("unknown load error").to_owned()
        }
    }
}

/// Called by the plugin for every host service. `ctx` is the worker's `Services` box.
extern "C" fn service_trampoline(ctx: *const (), request: RStr<'_>) -> RString {
    // SAFETY: `ctx` points at the `Services` boxed by the worker thread running this
    // call; the worker outlives the call, and the box is only read here.
    let services = unsafe { &*(ctx as *const Services) };
    match catch_unwind(AssertUnwindSafe(|| services(request.as_str()))) {
        Ok(reply) => reply.into(),
        Err(_) => RString::from(
            r#"{"ok":false,"error":{"kind":"host-service","message":"the host service panicked"}}"#,
        ),
    }
}

/// The module reference is a pointer to a leaked, immutable static in a library that
/// is never unloaded, so sharing it with the worker thread is sound.
#[derive(Clone, Copy)]
struct SendModule(PluginModuleRef);
// SAFETY: see above; the referenced prefix struct holds only function pointers.
unsafe impl Send for SendModule {}

struct SendCallbacks(HostCallbacks);
// SAFETY: `ctx` points at a `Services` (Send + Sync) owned by the worker, which outlives every call.
unsafe impl Send for SendCallbacks {}

type Job = Box<dyn FnOnce(PluginModuleRef, HostCallbacks) -> RString + Send>;

/// One long-lived thread per loaded plugin runs its calls, so a call costs a channel
/// round trip rather than a thread start. A call that overruns its time limit leaves
/// the worker stuck; it is abandoned (never joined) and the next call starts a new one.
struct Worker {
    jobs: mpsc::Sender<Job>,
    replies: mpsc::Receiver<std::thread::Result<String>>,
}

impl Worker {
    fn start(module: PluginModuleRef, services: Services) -> Option<Worker> {
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let (reply_tx, reply_rx) = mpsc::channel();
        let module = SendModule(module);
        std::thread::Builder::new()
            .name("datum-native-plugin".into())
            .spawn(move || {
                let module = module;
                // The worker owns the services for its whole life; the plugin only ever
                // sees a pointer to them while a call it made is running.
                let services: Box<Services> = Box::new(services);
                let callbacks = SendCallbacks(HostCallbacks {
                    ctx: &*services as *const Services as *const (),
                    call: service_trampoline,
                });
                while let Ok(job) = job_rx.recv() {
                    // The plugin catches its own panics; this guards the glue.
                    let reply = catch_unwind(AssertUnwindSafe(|| job(module.0, callbacks.0)));
                    if reply_tx.send(reply.map(RString::into_string)).is_err() {
                        break;
                    }
                }
            })
            .ok()?;
        Some(Worker {
            jobs: job_tx,
            replies: reply_rx,
        })
    }
}

impl NativeInstance {
    fn call(&mut self, job: Job) -> Result<String, CallFailure> {
        let worker = match self.worker.take() {
            Some(w) => w,
            None => Worker::start(self.module, self.services.clone()).ok_or_else(|| {
                CallFailure::Trap("could not start the plugin's worker thread".into())
            })?,
        };
        if worker.jobs.send(job).is_err() {
            return Err(CallFailure::Trap("the plugin's worker thread died".into()));
        }
        match worker.replies.recv_timeout(self.timeout) {
            Ok(Ok(reply)) => {
                self.worker = Some(worker);
                Ok(reply)
            }
            Ok(Err(_)) => Err(CallFailure::Panic("panic in the native call glue".into())),
            // The stuck worker is dropped here without joining; it keeps its services alive.
            Err(mpsc::RecvTimeoutError::Timeout) => {
                Err(CallFailure::Timeout(self.timeout.as_millis() as u64))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(CallFailure::Trap("the plugin's worker thread died".into()))
            }
        }
    }
}

impl super::Instance for NativeInstance {
    fn describe(&mut self) -> Result<String, CallFailure> {
        self.call(Box::new(|module, _| (module.describe())()))
    }

    fn invoke(&mut self, request: &str) -> Result<String, CallFailure> {
        let request = request.to_owned();
        self.call(Box::new(move |module, callbacks| {
            (module.invoke())(callbacks, RStr::from_str(&request))
        }))
    }
}
