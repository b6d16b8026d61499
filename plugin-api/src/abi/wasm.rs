//! The WASM (Extism) tier: `manifest` and `invoke` exports and one host import.

use super::{dispatch, panic_message, CargoMeta};
use crate::Plugin;

// The import's name is the function's name: it must stay `datum_host`
// ([`super::WASM_HOST_IMPORT`], which the host registers).
#[extism_pdk::host_fn]
extern "ExtismHost" {
    /// The single host-service entry point (see [`crate::Host`]).
    fn datum_host(request: String) -> String;
}

fn transport(request: &str) -> String {
    // SAFETY: `datum_host` is an Extism import the host always registers; the PDK's
    // generated wrapper handles the memory hand-off.
    match unsafe { datum_host(request.to_owned()) } {
        Ok(reply) => reply,
        Err(e) => crate::Response::from(Err(crate::PluginError::new(
            crate::ErrorKind::HostService,
            format!("host service call failed: {e}"),
        )))
        .to_json(),
    }
}

/// wasm32-unknown-unknown aborts on panic, so the message is sent to the host before
/// the trap; the host attaches it to the typed error it reports.
fn report_panics() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let message = format!("{}{location}", panic_message(info.payload()));
            let req = serde_json::json!({"service": "panic", "args": {"message": message}});
            transport(&req.to_string());
        }));
    });
}

fn finish(reply: String) -> i32 {
    match extism_pdk::output(reply) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

pub fn manifest<P: Plugin>(meta: fn() -> CargoMeta) -> i32 {
    report_panics();
    finish(super::describe::<P>(meta()))
}

pub fn invoke<P: Plugin>(_meta: fn() -> CargoMeta) -> i32 {
    report_panics();
    let input = extism_pdk::input_bytes();
    let request = String::from_utf8_lossy(&input);
    let host = crate::Host::new(&transport);
    finish(dispatch::<P>(&request, &host))
}
