//! The agent's CAPABILITY.toml: read it (or start one), change it in place, commit.

use capability::{Agent, Capability, CapabilityFile, Profile};
use datum_plugin_api::{Host, PluginError, Request};

use crate::util::read_opt;

pub const FILE: &str = capability::FILE_NAME;

/// The agent's file, or a new one naming the agent when there is none. A broken file
/// is an error: it is the agent's public profile, never overwritten blindly.
pub fn load(request: &Request, host: &Host<'_>) -> Result<CapabilityFile, PluginError> {
    match read_opt(host, FILE)? {
        Some(text) => CapabilityFile::parse(&text).map_err(|e| {
            PluginError::failed(format!("{FILE}: {e}"))
                .with_hint("fix it by hand (`datum audit` shows where), then run this again")
        }),
        None => Ok(CapabilityFile::new(
            &Agent {
                name: request.agent.name.clone(),
                role: Some(request.agent.role.clone()).filter(|r| !r.is_empty()),
                ..Agent::default()
            },
            &[],
        )),
    }
}

pub fn profile(request: &Request, host: &Host<'_>) -> Result<Profile, PluginError> {
    Ok(load(request, host)?.profile().0)
}

/// Set abilities and commit the file; returns whether a commit was made.
pub fn save_abilities(
    request: &Request,
    host: &Host<'_>,
    abilities: &[(String, Capability)],
    message: &str,
) -> Result<bool, PluginError> {
    let mut file = load(request, host)?;
    for (name, cap) in abilities {
        file.set_capability(name, cap);
    }
    host.write_file(FILE, &file.to_string())?;
    host.git_commit(FILE, message)
}
