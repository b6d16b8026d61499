//! The flux-vm plugin: FLUX bytecode execution for an agent, over `flux-core`.

use datum_plugin_api::{export_plugin, ErrorKind, Host, Output, Plugin, PluginError, Request};
use serde_json::json;

pub struct FluxVm;

impl Plugin for FluxVm {
    const MANIFEST: &'static str = include_str!("../datum-plugin.toml");

    fn invoke(request: &Request, _host: &Host<'_>) -> Result<Output, PluginError> {
        match request.command.as_str() {
            "flux run" => run(request),
            other => Err(PluginError::new(
                ErrorKind::UnknownCommand,
                format!("flux-vm has no command `{other}`"),
            )
            .with_hint("run `datum flux --help` to list the commands")),
        }
    }
}

fn run(request: &Request) -> Result<Output, PluginError> {
    let text = request.require_str("bytecode")?;
    let code = flux_core::hex::decode(text).map_err(|e| {
        PluginError::invalid_args(format!("--bytecode is not valid hex: {e}"))
            .with_hint("write the program as pairs of hex digits, e.g. 550500000055070000001000")
    })?;
    let mut config = flux_core::Config::default();
    if let Some(n) = request.arg_i64("max-steps") {
        config.max_steps = u64::try_from(n).map_err(|_| {
            PluginError::invalid_args(format!("--max-steps must be zero or more, got {n}"))
        })?;
    }
    let result = flux_core::run(&code, &config);
    let stack = format!(
        "[{}]",
        result
            .stack
            .iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let text = match result.error {
        Some(trap) => format!("trap {trap} after {} steps", result.steps),
        None => stack,
    };
    let data = json!({
        "stack": result.stack,
        "flags": result.flags,
        "status": result.status,
        "error": result.error,
        "steps": result.steps,
    });
    Ok(Output::new(data).with_text(text))
}

export_plugin!(FluxVm);

#[cfg(test)]
mod tests {
    use super::*;

    fn call(request: Request) -> Result<Output, PluginError> {
        let no_services = |_: &str| unreachable!("flux run uses no host services");
        FluxVm::invoke(&request, &Host::new(&no_services))
    }

    #[test]
    fn the_manifest_example_holds() {
        let out = call(Request::new("flux run").with_arg("bytecode", "550500000055070000001000"))
            .unwrap();
        assert_eq!(out.text.as_deref(), Some("[12]"));
        assert_eq!(out.data["stack"], json!([12]));
        assert_eq!(out.data["status"], "halted");
    }

    #[test]
    fn traps_are_results_not_errors() {
        let out = call(Request::new("flux run").with_arg("bytecode", "10")).unwrap();
        assert_eq!(out.data["error"], "STACK_UNDERFLOW");
        assert_eq!(out.data["status"], "trap");
    }

    #[test]
    fn bad_hex_is_an_argument_error_with_a_hint() {
        let err = call(Request::new("flux run").with_arg("bytecode", "zz")).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidArgs);
        assert!(err.hint.is_some());
    }
}
