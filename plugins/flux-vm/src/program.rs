//! Turning what the user named (a file, hex, or an example) into code and a profile.

use datum_plugin_api::{FileArg, PluginError, Request};
use flux_core::Profile;

use crate::examples;

/// A program ready to run or inspect.
pub struct Program {
    /// What the user called it (path, example name, or `--bytecode`).
    pub name: String,
    pub profile: Profile,
    pub code: Vec<u8>,
}

pub fn profile_arg(request: &Request) -> Result<Option<Profile>, PluginError> {
    request
        .arg_str("profile")
        .map(|p| {
            p.parse::<Profile>()
                .map_err(|e| PluginError::invalid_args(format!("--profile: {e}")))
        })
        .transpose()
}

/// Load a program from hex text (a FLUX header wins over `--profile`).
pub fn from_hex(name: &str, hex: &str, profile: Option<Profile>) -> Result<Program, PluginError> {
    let bytes = flux_core::hex::decode(hex).map_err(|e| {
        PluginError::invalid_args(format!("{name} is not valid hex: {e}"))
            .with_hint("write the program as pairs of hex digits, e.g. 550500000055070000001000")
    })?;
    from_bytes(name, &bytes, profile)
}

fn from_bytes(name: &str, bytes: &[u8], profile: Option<Profile>) -> Result<Program, PluginError> {
    // A header names the profile; headerless code runs in the one asked for, stack by default.
    let has_header = bytes.len() >= flux_core::HEADER_LEN && bytes[..4] == *b"FLUX";
    let explicit = if has_header {
        profile
    } else {
        Some(profile.unwrap_or_default())
    };
    let (profile, code) = flux_core::parse_image(bytes, explicit)
        .map_err(|e| PluginError::invalid_args(format!("{name}: {e}")))?;
    Ok(Program {
        name: name.to_owned(),
        profile,
        code: code.to_vec(),
    })
}

fn assemble(name: &str, source: &str) -> Result<Program, PluginError> {
    let code = flux_core::asm::assemble(source).map_err(|e| {
        PluginError::invalid_args(format!("{name}: {e}"))
            .with_hint("see FLUX.md §13.2 for the assembly syntax")
    })?;
    Ok(Program {
        name: name.to_owned(),
        profile: Profile::Stack,
        code,
    })
}

/// A `.flux` file is assembled; anything else is a binary image (a FLUX header names
/// its profile); a word that is not a file may name a shipped example.
pub fn from_file(file: &FileArg, profile: Option<Profile>) -> Result<Program, PluginError> {
    if !file.exists {
        let example = examples::find(&file.path).ok_or_else(|| {
            let names: Vec<&str> = examples::EXAMPLES.iter().map(|e| e.name).collect();
            PluginError::invalid_args(format!("`{}` is neither a file nor an example", file.path))
                .with_hint(format!("examples: {}", names.join(", ")))
        })?;
        return assemble(example.name, example.source);
    }
    if file.path.ends_with(".flux") || file.path.ends_with(".fasm") {
        return assemble(&file.path, &file.text());
    }
    if file.path.ends_with(".hex") {
        return from_hex(&file.path, &file.text(), profile);
    }
    from_bytes(&file.path, &file.bytes, profile)
}

/// The program of `run`/`disasm`: a positional file/example, or `--bytecode`.
pub fn from_request(request: &Request, file_arg: &str) -> Result<Program, PluginError> {
    let profile = profile_arg(request)?;
    match (request.arg_file(file_arg)?, request.arg_str("bytecode")) {
        (Some(_), Some(_)) => Err(PluginError::invalid_args(
            "give a program file or --bytecode, not both",
        )),
        (Some(file), None) => from_file(&file, profile),
        (None, Some(hex)) => from_hex("--bytecode", hex, profile),
        (None, None) => Err(PluginError::invalid_args("no program given").with_hint(
            "pass a .flux/.bin file, an example name (`datum flux examples`), or --bytecode HEX",
        )),
    }
}
