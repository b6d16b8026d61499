//! The mib plugin: Message-in-a-Bottle between agents, and the I2I bridge over it.
//!
//! Bottles are markdown files in `message-in-a-bottle/for-{agent}/` of a workshop,
//! reached only through the host's granted file services, and travel between
//! workshops through git (`bottle sync`). See `bottle.rs` for the format, and
//! `prototype.rs` for the Python prototype's, which is read too (and written with
//! `--compat`).

pub mod bottle;
pub mod i2i;
mod mailbox;
pub mod prototype;

use datum_plugin_api::{export_plugin, Host, Output, Plugin, PluginError, Request};

pub struct Mib;

impl Plugin for Mib {
    const MANIFEST: &'static str = include_str!("../datum-plugin.toml");

    fn invoke(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
        let mail = mailbox::Mailbox::new(request, host)?;
        match request.command.as_str() {
            "bottle drop" => mail.drop_bottle(),
            "bottle broadcast" => mail.broadcast(),
            "bottle check" => mail.check(),
            "bottle read" => mail.read(),
            "bottle watch" => mail.watch(),
            "bottle history" => mail.history(),
            "bottle sync" => mail.sync(),
            "fleet send" => mail.fleet_send(),
            "fleet receive" => mail.fleet_receive(),
            "bottle format" => mail.format(),
            other => Err(PluginError::unknown_command("mib", other)),
        }
    }
}

export_plugin!(Mib);
