//! The Keeper service: agents never hold secrets; they ask the Keeper, which
//! authenticates them, decides by policy (fail closed), audits every request, and hands
//! out values for a purpose.
//!
//! This crate holds the HTTP service ([`server`]) and the agent registry; the vault,
//! policy and audit log are `keeper-core`. The `datum keeper …` plugin commands build
//! on both.

pub mod agents;
mod plugin;
pub mod server;

pub use agents::{AgentRegistry, Token};
pub use server::{bind, Keeper, Options, ServeError, COMPAT_TTL, DEFAULT_ADDR};

datum_plugin_api::export_plugin!(plugin::KeeperPlugin);
