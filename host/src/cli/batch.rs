//! `datum batch`: many plugin calls in one process, for agents in hot loops.
//!
//! Reads JSON lines `{"command": "flux run", "args": {...}}` and writes one response
//! envelope per line (`{"ok": true, "data", "text"}` or `{"ok": false, "error"}`).
//! Each plugin is loaded once and reused, so a call costs microseconds, not a process.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use anyhow::Context as _;
use datum_plugin_api::Format;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::Context;
use crate::error::Problem;
use crate::runtime::{Runtime, RuntimeError, Session};

#[derive(Debug, clap::Args)]
pub struct BatchArgs {
    /// JSON-lines file of calls, or `-` for standard input.
    #[arg(default_value = "-")]
    pub input: String,
}

#[derive(Debug, Deserialize)]
struct Call {
    command: String,
    #[serde(default)]
    args: Map<String, Value>,
}

pub fn run(ctx: &Context, args: BatchArgs) -> anyhow::Result<()> {
    let runtime = Runtime::open(ctx.home()?, ctx.workshop()?)?;
    runtime.set_registry(ctx.registry.clone());
    let reader: Box<dyn BufRead> = if args.input == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(&args.input)
            .with_context(|| format!("cannot open {}", args.input))?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut sessions: HashMap<String, Session> = HashMap::new();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut ok, mut failed) = (0usize, 0usize);
    let mut reader = reader;
    let mut n = 0usize;
    loop {
        let line = match next_line(&mut reader, n + 1)? {
            Some(l) => l,
            None => break,
        };
        n += 1;
        if line.trim().is_empty() {
            continue;
        }
        let reply = match call_one(&runtime, &mut sessions, &line) {
            Ok(r) => r,
            Err(e) => error_reply(n, e),
        };
        if reply["ok"] == true {
            ok += 1
        } else {
            failed += 1
        }
        writeln!(out, "{reply}")?;
    }
    out.flush()?;
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} batch calls failed (see their replies)",
            ok + failed
        );
    }
    Ok(())
}

/// One call may not be longer than this (a FLUX program of megabytes still fits).
pub const MAX_LINE: u64 = 16 * 1024 * 1024;

/// The next input line, read at most [`MAX_LINE`] bytes at a time: an endless line
/// (`datum batch /dev/zero`) ends the batch with an error instead of eating memory.
fn next_line(reader: &mut dyn BufRead, number: usize) -> anyhow::Result<Option<String>> {
    use std::io::Read;
    let mut buf = Vec::new();
    let read = reader
        .take(MAX_LINE + 1)
        .read_until(b'\n', &mut buf)
        .context("cannot read the batch input")?;
    if read == 0 {
        return Ok(None);
    }
    if buf.len() as u64 > MAX_LINE {
        anyhow::bail!("batch line {number} is longer than {MAX_LINE} bytes; the batch stops here (send one JSON call per line)");
    }
    let text = String::from_utf8(buf)
        .map_err(|_| anyhow::anyhow!("batch line {number} is not UTF-8; the batch stops here"))?;
    Ok(Some(text.trim_end_matches(['\n', '\r']).to_owned()))
}

fn call_one(
    runtime: &Runtime,
    sessions: &mut HashMap<String, Session>,
    line: &str,
) -> Result<Value, RuntimeError> {
    let call: Call = serde_json::from_str(line).map_err(|e| {
        RuntimeError::Other(format!(
            "not a call `{{\"command\": …, \"args\": {{…}}}}`: {e}"
        ))
    })?;
    let words: Vec<&str> = call.command.split_whitespace().collect();
    let route = runtime.route(&words).ok_or_else(|| {
        RuntimeError::Other(format!(
            "no installed plugin provides `{}`; see `datum plugin search`",
            call.command
        ))
    })?;
    let name = route.plugin.locked.name.clone();
    let session = match sessions.entry(name.clone()) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => e.insert(runtime.session(&name)?),
    };
    let mut request = runtime.request(&route.command.path);
    request.args = call.args;
    request.format = Format::Json;
    let reply = session.invoke_raw(&request)?;
    let reply = serde_json::to_value(&reply).unwrap_or_else(
        |e| json!({"ok": false, "error": {"kind": "internal", "message": e.to_string()}}),
    );
    Ok(with_hint(reply, &name))
}

fn error_reply(line: usize, e: RuntimeError) -> Value {
    let mut problem = Problem::of(&anyhow::Error::new(e));
    problem.message = format!("line {line}: {}", problem.message);
    problem.to_json()
}

/// A plugin's own error reply, with the host's hint added when the plugin gave none:
/// every failed line carries a fix.
fn with_hint(mut reply: Value, plugin: &str) -> Value {
    if reply["ok"] == false && reply["error"].is_object() && !reply["error"]["hint"].is_string() {
        reply["error"]["hint"] = Value::from(format!(
            "`datum {plugin} --help` or `datum plugin info {plugin}` shows how it is used"
        ));
    }
    reply
}
