//! The datum host as a library: the `datum` binary is a thin shell over this, and
//! tests and embedders drive it directly.

pub mod cli;
pub mod fsutil;
pub mod install;
pub mod loader;
pub mod paths;
pub mod registry;
pub mod runtime;
pub mod store;
pub mod workshop;
