//! Services every plugin may use: the log, the clock, printing now, and moving the
//! agent's lifecycle forward.

use datum_plugin_api::{LogLevel, PluginError};
use serde_json::Value;

use super::{host_err, Caller};

/// One pause may not hold a call longer than this; watchers loop instead.
const MAX_SLEEP_MS: u64 = 60_000;

/// `log`: into the host's log, tagged with the plugin.
pub fn log(caller: &Caller, level: LogLevel, message: &str) -> Value {
    let plugin = &caller.plugin;
    match level {
        LogLevel::Error => tracing::error!(%plugin, "{message}"),
        LogLevel::Warn => tracing::warn!(%plugin, "{message}"),
        LogLevel::Debug => tracing::debug!(%plugin, "{message}"),
        LogLevel::Info => tracing::info!(%plugin, "{message}"),
    }
    Value::Null
}

/// `clock.now`: milliseconds since the Unix epoch.
pub fn now() -> Result<Value, PluginError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(host_err)?;
    Ok(Value::from(now.as_millis() as u64))
}

/// `clock.sleep`: at most a minute per call.
pub fn sleep(ms: u64) -> Value {
    std::thread::sleep(std::time::Duration::from_millis(ms.min(MAX_SLEEP_MS)));
    Value::Null
}

/// `emit`: one line on the user's terminal now.
pub fn emit(line: &str) -> Result<Value, PluginError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // A closed stdout (`| head`) fails the call, which ends a watch loop instead of
    // leaving it running with nowhere to print.
    writeln!(out, "{line}")
        .and_then(|_| out.flush())
        .map_err(|e| host_err(format!("cannot print: {e}")))?;
    Ok(Value::Null)
}

/// `agent.lifecycle`: forward only, recorded in agent.toml and committed.
pub fn lifecycle(caller: &Caller, to: &str) -> Result<Value, PluginError> {
    let to = crate::workshop::Lifecycle::parse(to).ok_or_else(|| {
        host_err(format!("`{}` is not a lifecycle state", to.escape_debug()))
            .with_hint("uninitialized, onboarded or active")
    })?;
    let ws = crate::workshop::Workshop::open(&caller.workshop)
        .map_err(|e| host_err(format!("{e:#}")))?;
    ws.advance_lifecycle(to)
        .map(|now| Value::from(now.as_str()))
        .map_err(|e| host_err(format!("{e:#}")))
}

#[cfg(test)]
mod tests {
    use super::super::tests::caller;
    use super::*;

    #[test]
    fn the_clock_is_plausible_and_a_pause_pauses() {
        let ms = now().unwrap().as_u64().unwrap();
        assert!(ms > 1_700_000_000_000, "{ms}");
        let start = std::time::Instant::now();
        sleep(5);
        assert!(start.elapsed() >= std::time::Duration::from_millis(5));
    }

    #[test]
    fn an_unknown_lifecycle_state_names_the_known_ones() {
        let (_dir, c) = caller(&[]);
        let e = lifecycle(&c, "retired").unwrap_err();
        assert_eq!(
            e.hint.as_deref(),
            Some("uninitialized, onboarded or active")
        );
    }
}
