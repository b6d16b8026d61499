//! Small helpers every command uses: files that may be missing, calls to plugins that
//! may not be installed, the date, and the journal (through `life`).

use datum_plugin_api::{ErrorKind, Host, PluginError};
use serde_json::{Map, Value};

/// A workshop file's text, or `None` when it is not there (the host names a missing
/// file by the system's "No such file" error).
pub fn read_opt(host: &Host<'_>, path: &str) -> Result<Option<String>, PluginError> {
    match host.read_file(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind != ErrorKind::PermissionDenied && e.message.contains("No such file") => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Whether a plugin call failed because the plugin is not installed.
pub fn not_installed(e: &PluginError) -> bool {
    e.message.contains("is not installed")
}

/// Call a plugin; `Ok(None)` when it is not installed (the caller says what it could
/// not do), an error for anything else.
pub fn call_opt(
    host: &Host<'_>,
    plugin: &str,
    command: &str,
    args: Map<String, Value>,
) -> Result<Option<Value>, PluginError> {
    match host.call_plugin(plugin, command, args) {
        Ok(v) => Ok(Some(v)),
        Err(e) if not_installed(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn args(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// Today as `YYYY-MM-DD` (UTC), from the host's clock.
pub fn today(host: &Host<'_>) -> Result<String, PluginError> {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(host.now_ms()?);
    Ok(humantime::format_rfc3339_seconds(t).to_string()[..10].to_owned())
}

/// Add a journal entry through `life` (which appends and commits it). Without `life`
/// the entry is skipped and `false` returned: the change itself is still committed.
pub fn journal(
    host: &Host<'_>,
    kind: &str,
    text: &str,
    tags: &[&str],
) -> Result<bool, PluginError> {
    let tags: Vec<Value> = tags.iter().map(|t| Value::from(*t)).collect();
    let a = args(&[
        ("kind", Value::from(kind)),
        ("text", Value::from(text)),
        ("tag", Value::Array(tags)),
    ]);
    Ok(call_opt(host, "life", "journal add", a)?.is_some())
}

/// The journal's entries (through `life`), oldest first; empty without `life`.
pub fn journal_entries(host: &Host<'_>) -> Result<Vec<Value>, PluginError> {
    Ok(call_opt(host, "life", "journal", Map::new())?
        .and_then(|v| v["entries"].as_array().cloned())
        .unwrap_or_default())
}

/// `★★★★☆` for 4.
pub fn stars(n: u8) -> String {
    let n = n.min(5) as usize;
    format!("{}{}", "★".repeat(n), "☆".repeat(5 - n))
}

/// Text from a registry or another agent, safe on one terminal line.
pub fn shown(s: &str) -> String {
    capability::shown(s)
}
