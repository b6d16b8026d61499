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
use datum_plugin_api::__private::native::{HostCallbacks, PluginModuleRef};

use super::{CallFailure, LoadError, LoadOptions, Services};

pub struct NativeInstance {
    module: PluginModuleRef,
    services: Services,
    timeout: Duration,
}

impl NativeInstance {
    pub fn load(path: &Path, options: &LoadOptions, services: Services) -> Result<Self, LoadError> {
        let header = lib_header_from_path(path).map_err(|e| LoadError::Native(summarise(&e)))?;
        let module = header
            .init_root_module::<PluginModuleRef>()
            .map_err(|e| LoadError::Native(summarise(&e)))?;
        Ok(NativeInstance {
            module,
            services,
            timeout: Duration::from_millis(options.limits.timeout_ms),
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

/// Called by the plugin for every host service. `ctx` is the `Services` box that
/// `invoke` created for this call.
extern "C" fn service_trampoline(ctx: *const (), request: RStr<'_>) -> RString {
    // SAFETY: `ctx` points at the `Services` boxed in `invoke`, which stays alive until
    // the call returns (or is leaked on timeout), and is only read here.
    let services = unsafe { &*(ctx as *const Services) };
    match catch_unwind(AssertUnwindSafe(|| services(request.as_str()))) {
        Ok(reply) => reply.into(),
        Err(_) => RString::from(
            r#"{"ok":false,"error":{"kind":"host-service","message":"the host service panicked"}}"#,
        ),
    }
}

/// The module reference is a pointer to a leaked, immutable static in a library that
/// is never unloaded, so sharing it with the watchdog thread is sound.
struct SendModule(PluginModuleRef);
// SAFETY: see above; the referenced prefix struct holds only function pointers.
unsafe impl Send for SendModule {}

impl NativeInstance {
    fn call(
        &mut self,
        f: impl FnOnce(PluginModuleRef, HostCallbacks) -> RString + Send + 'static,
    ) -> Result<String, CallFailure> {
        let ctx: &'static Services = Box::leak(Box::new(self.services.clone()));
        let callbacks = HostCallbacks {
            ctx: ctx as *const Services as *const (),
            call: service_trampoline,
        };
        let module = SendModule(self.module);
        let (tx, rx) = mpsc::channel();
        let callbacks = SendCallbacks(callbacks);
        let spawned = std::thread::Builder::new()
            .name("datum-native-plugin".into())
            .spawn(move || {
                let module = module;
                let callbacks = callbacks;
                // The plugin catches its own panics; this guards the glue.
                let reply = catch_unwind(AssertUnwindSafe(|| f(module.0, callbacks.0)));
                let _ = tx.send(reply.map(RString::into_string));
            });
        if spawned.is_err() {
            return Err(CallFailure::Trap(
                "could not start the plugin call thread".into(),
            ));
        }
        let outcome = match rx.recv_timeout(self.timeout) {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(CallFailure::Panic("panic in the native call glue".into())),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // The thread keeps running; `ctx` stays leaked so it never dangles.
                return Err(CallFailure::Timeout(self.timeout.as_millis() as u64));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(CallFailure::Trap("the plugin call thread died".into()))
            }
        };
        // SAFETY: the call finished, so the plugin no longer holds `ctx`; reclaim it.
        drop(unsafe { Box::from_raw(ctx as *const Services as *mut Services) });
        outcome
    }
}

struct SendCallbacks(HostCallbacks);
// SAFETY: `ctx` points at a `Services` (Send + Sync) that outlives the call.
unsafe impl Send for SendCallbacks {}

impl super::Instance for NativeInstance {
    fn describe(&mut self) -> Result<String, CallFailure> {
        self.call(|module, _| (module.describe())())
    }

    fn invoke(&mut self, request: &str) -> Result<String, CallFailure> {
        let request = request.to_owned();
        self.call(move |module, callbacks| (module.invoke())(callbacks, RStr::from_str(&request)))
    }
}
