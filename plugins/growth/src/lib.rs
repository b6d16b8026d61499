//! The growth plugin: what makes an agent grow.
//!
//! - `bootcamp assign|progress|list|curricula` — the role's bootcamp, judged by machine
//!   checks against the workshop's evidence (`datum onboard` routes here);
//! - `learn` / `workflow learn` — find what provides an ability, install it through the
//!   host, prove it by its own examples, record it in CAPABILITY.toml;
//! - `career` — the record computed from git, TRAIL, the journal and bottles;
//! - `improve audit|suggest|auto` — gaps, ranked actions, and changes kept only when
//!   the checks after them are at least as good as before.

pub mod bootcamp;
pub mod career;
pub mod checks;
pub mod curriculum;
pub mod improve;
pub mod learn;
pub mod profile;
pub mod tool;
pub mod util;

use datum_plugin_api::{export_plugin, Host, Output, Plugin, PluginError, Request};

pub struct Growth;

impl Plugin for Growth {
    const MANIFEST: &'static str = include_str!("../datum-plugin.toml");

    fn invoke(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
        match request.command.as_str() {
            "bootcamp assign" => bootcamp::assign(request, host),
            "bootcamp progress" => bootcamp::progress(request, host),
            "bootcamp list" => bootcamp::list(request, host),
            "bootcamp curricula" => bootcamp::curricula(),
            "learn" => learn::learn(request, host),
            "workflow learn" => learn::workflow(request, host),
            "career" => career::career(request, host),
            "career add" => career::add(request, host),
            "career export" => career::export(request, host),
            "improve audit" => improve::audit(request, host),
            "improve suggest" => improve::suggest(request, host),
            "improve auto" => improve::auto(request, host),
            other => Err(PluginError::unknown_command("growth", other)),
        }
    }
}

export_plugin!(Growth);
