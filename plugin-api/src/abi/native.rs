//! The native (abi_stable) tier: a root module with two functions.
//!
//! `describe() -> RString` and `invoke(host, request) -> RString`, both JSON. Everything
//! else — manifest, envelope, host services — travels as JSON text, so the layout
//! abi_stable checks at load is tiny and changes only with a major API version.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

use abi_stable::library::{LibHeader as AbiLibHeader, RootModule};
use abi_stable::sabi_types::VersionStrings;
use abi_stable::{declare_root_module_statics, package_version_strings, StableAbi};

pub use abi_stable::library::RootModuleResult;
pub use abi_stable::prefix_type::PrefixTypeTrait;
pub use abi_stable::std_types::{RStr, RString};
pub type LibHeader = AbiLibHeader;

use super::{dispatch, panic_message};
use crate::{ErrorKind, Host, Plugin, PluginError, Response};

/// The host's side of the service channel: an opaque context and one function.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct HostCallbacks {
    pub ctx: *const (),
    pub call: extern "C" fn(ctx: *const (), request: RStr<'_>) -> RString,
}

/// The root module every native plugin exports.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    pub describe: extern "C" fn() -> RString,
    #[sabi(last_prefix_field)]
    pub invoke: extern "C" fn(host: HostCallbacks, request: RStr<'_>) -> RString,
}

impl RootModule for PluginModuleRef {
    declare_root_module_statics! {PluginModuleRef}
    const BASE_NAME: &'static str = "datum_plugin";
    const NAME: &'static str = "datum_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// Build the module from the macro-generated entry points.
pub fn module(
    describe: extern "C" fn() -> RString,
    invoke: extern "C" fn(HostCallbacks, RStr<'_>) -> RString,
) -> PluginModuleRef {
    PluginModule { describe, invoke }.leak_into_prefix()
}

/// The static the host's loader looks up.
pub const fn lib_header(constructor: extern "C" fn() -> RootModuleResult) -> LibHeader {
    // SAFETY: `constructor` is the macro-generated function that returns
    // `call_root_module_loader(<fn returning PluginModuleRef>)`, so the erased prefix
    // it produces really is a `PluginModuleRef`, as `from_constructor` requires.
    unsafe {
        LibHeader::from_constructor::<PluginModuleRef>(
            constructor,
            abi_stable::library::CheckTypeLayout::Yes,
        )
    }
}

pub fn call_root_module_loader(f: fn() -> PluginModuleRef) -> RootModuleResult {
    abi_stable::library::__call_root_module_loader(f)
}

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replace the default hook (this cdylib has its own copy of std, so this affects only
/// the plugin) with one that records the message and location for the error reply
/// instead of printing over the host's output.
fn quiet_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let message = format!("{}{location}", panic_message(info.payload()));
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(message));
        }));
    });
}

fn panic_reply(payload: &(dyn std::any::Any + Send)) -> RString {
    let message = LAST_PANIC
        .with(|p| p.borrow_mut().take())
        .unwrap_or_else(|| panic_message(payload));
    let err = PluginError::new(ErrorKind::Panic, format!("plugin panicked: {message}")).with_hint(
        "this is a bug in the plugin; report it to its author or install another version",
    );
    Response::from(Err(err)).to_json().into()
}

pub fn describe<P: Plugin>(meta: super::CargoMeta) -> RString {
    quiet_panics();
    match catch_unwind(|| super::describe::<P>(meta)) {
        Ok(s) => s.into(),
        Err(payload) => panic_reply(&*payload),
    }
}

pub fn invoke<P: Plugin>(host: HostCallbacks, request: RStr<'_>) -> RString {
    quiet_panics();
    let transport =
        move |req: &str| -> String { (host.call)(host.ctx, RStr::from_str(req)).into_string() };
    let host = Host::new(&transport);
    match catch_unwind(AssertUnwindSafe(|| dispatch::<P>(request.as_str(), &host))) {
        Ok(s) => s.into(),
        Err(payload) => panic_reply(&*payload),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn export_name_matches_abi_stable() {
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            super::super::ROOT_MODULE_SYMBOL
        );
    }
}
