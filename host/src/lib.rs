//! The datum host as a library: the `datum` binary is a thin shell over this, and
//! tests and embedders drive it directly.

// `RuntimeError` is large by design (see runtime/error.rs); every fn returning it would
// otherwise need the same allow.
#![allow(clippy::result_large_err)]

pub mod author;
pub mod cli;
pub mod confined;
pub mod error;
pub mod fsutil;
pub mod install;
pub mod keeper;
pub mod loader;
pub mod paths;
pub mod prove;
pub mod registry;
pub mod runtime;
pub mod store;
pub mod workshop;
