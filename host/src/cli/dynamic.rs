//! Commands contributed by plugins: `datum <command path> …` is matched against the
//! installed manifests, its arguments parsed by a clap command built from the
//! manifest, and the call routed to the plugin.

use anyhow::Context as _;
use clap::{Arg, ArgAction};
use datum_plugin_api::{ArgSpec, ArgType, CommandSpec, Format as WireFormat};
use serde_json::{Map, Value};

use super::output::{print_line, Format};
use super::Context;
use crate::error::Category;
use crate::runtime::Runtime;

/// Host flags accepted after a plugin command too (clap hands them over unparsed).
pub struct HostFlags {
    pub workshop: Option<std::path::PathBuf>,
    /// Where a plugin that installs through the host (`datum learn`) installs from.
    pub registry: Option<String>,
    pub format: Option<Format>,
    pub rest: Vec<String>,
}

/// Take `--workshop`/`--format` out of a plugin command's arguments; `main` applies
/// them before anything runs, so errors come out in the format asked for.
pub fn split_host_flags(args: Vec<String>) -> anyhow::Result<HostFlags> {
    let mut flags = HostFlags {
        workshop: None,
        registry: None,
        format: None,
        rest: Vec::new(),
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        // After `--` everything is the plugin's, even words that look like host flags.
        if a == "--" {
            flags.rest.push(a);
            flags.rest.extend(it);
            break;
        }
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_owned(), Some(v.to_owned())),
            _ => (a.clone(), None),
        };
        match key.as_str() {
            "--workshop" | "--format" | "--registry" => {
                let value = match inline {
                    Some(v) => v,
                    None => it.next().ok_or_else(|| {
                        usage(format!("{key} needs a value"), format!("{key} VALUE"))
                    })?,
                };
                if key == "--workshop" {
                    flags.workshop = Some(value.into());
                } else if key == "--registry" {
                    flags.registry = Some(value);
                } else {
                    flags.format = Some(match value.as_str() {
                        "json" => Format::Json,
                        "text" => Format::Text,
                        other => {
                            return Err(usage(
                                format!("--format must be `text` or `json`, not `{other}`"),
                                "--format json",
                            ))
                        }
                    });
                }
            }
            _ => flags.rest.push(a),
        }
    }
    Ok(flags)
}

/// Run a plugin command (host flags already split off by `main`).
pub fn run(ctx: &Context, args: Vec<String>) -> anyhow::Result<()> {
    let words: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .take_while(|a| !a.starts_with('-'))
        .collect();
    let workshop = ctx.workshop()?;
    let runtime = Runtime::open(ctx.home()?, workshop)?;
    runtime.set_registry(ctx.registry.clone());
    let Some(route) = runtime.route(&words) else {
        // `datum flux` alone: list the commands under that prefix, like a command group.
        let under: Vec<(String, String)> = runtime
            .commands()
            .into_iter()
            .filter(|(_, c)| {
                !words.is_empty() && c.words().take(words.len()).eq(words.iter().copied())
            })
            .map(|(_, c)| (c.path.clone(), c.summary.clone()))
            .collect();
        if !under.is_empty() {
            let mut text = format!("`datum {}` needs a command:\n", words.join(" "));
            for (path, summary) in &under {
                text.push_str(&format!("  datum {path:<22} {summary}\n"));
            }
            return Err(usage(text, "add --help to any of them for its arguments"));
        }
        let available: Vec<String> = runtime
            .commands()
            .into_iter()
            .map(|(_, c)| format!("`datum {}`", c.path))
            .collect();
        let first = words.first().copied().unwrap_or_default();
        if !runtime.skipped.is_empty() {
            let why: Vec<String> = runtime
                .skipped
                .iter()
                .map(|(p, why)| format!("{} {}: {why}", p.name, p.version))
                .collect();
            return Err(crate::error::fail(
                "unknown-command",
                Category::NotFound,
                format!(
                    "unknown command `{}`: datum.lock pins plugins that cannot run here ({})",
                    words.join(" "),
                    why.join("; ")
                ),
                "`datum plugin install --locked` fetches them again",
            ));
        }
        return Err(crate::error::fail(
            "unknown-command",
            Category::NotFound,
            format!(
                "unknown command `{}`. {}",
                words.join(" "),
                if available.is_empty() {
                    "No plugin commands are installed.".to_owned()
                } else {
                    format!("Installed plugin commands: {}.", available.join(", "))
                }
            ),
            format!("find a plugin that provides it: datum plugin search {first}"),
        ));
    };
    let rest = &args[route.words..];
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let args = match parse_args(&route.command, rest, &cwd)? {
        Parsed::Args(a) => a,
        Parsed::Help(text) => {
            print!("{text}");
            return Ok(());
        }
    };
    let mut request = runtime.request(&route.command.path);
    request.args = args;
    request.format = match ctx.reporter.format {
        Format::Json => WireFormat::Json,
        Format::Text => WireFormat::Text,
    };
    // Long calls (a conformance run, a big program) get a spinner on a terminal.
    let spinner = ctx
        .reporter
        .spinner(&format!("datum {}", route.command.path));
    let output = runtime.invoke(&route.plugin.locked.name, request);
    spinner.finish_and_clear();
    let output = output?;
    match ctx.reporter.format {
        Format::Json => print_line(&serde_json::to_string_pretty(&output.data)?)?,
        Format::Text => match output.text {
            Some(t) => print_line(t.trim_end())?,
            None => print_line(&serde_json::to_string_pretty(&output.data)?)?,
        },
    }
    Ok(())
}

/// A plugin command's arguments as the plugin receives them (or what came of them), or
/// the help asked for.
pub enum Parsed<T = Map<String, Value>> {
    Args(T),
    Help(String),
}

/// Parse `rest` (the words after the command path) against the command's manifest
/// arguments; relative paths are taken from `cwd`. Shared by the command line and by
/// golden examples run in a scratch workshop.
pub fn parse_args(
    spec: &CommandSpec,
    rest: &[String],
    cwd: &std::path::Path,
) -> anyhow::Result<Parsed> {
    let command = clap_command(spec);
    let matches = command.try_get_matches_from(
        std::iter::once(format!("datum {}", spec.path)).chain(rest.iter().cloned()),
    );
    match matches {
        Ok(m) => Ok(Parsed::Args(collect_args(spec, &m, cwd)?)),
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            Ok(Parsed::Help(e.to_string()))
        }
        Err(e) => Err(usage(
            e.render().to_string().trim_end(),
            format!("datum {} --help", spec.path),
        )),
    }
}

fn clap_command(spec: &CommandSpec) -> clap::Command {
    let mut cmd = clap::Command::new(spec.path.clone())
        .about(spec.summary.clone())
        .no_binary_name(false)
        .disable_version_flag(true);
    if !spec.examples.is_empty() {
        let examples: Vec<String> = spec
            .examples
            .iter()
            .map(|e| format!("  {}\n      {}", e.run, e.output))
            .collect();
        cmd = cmd.after_help(format!("Examples:\n{}", examples.join("\n")));
    }
    for a in &spec.args {
        cmd = cmd.arg(clap_arg(a));
    }
    cmd
}

fn clap_arg(spec: &ArgSpec) -> Arg {
    let mut arg = Arg::new(spec.name.clone()).help(spec.help.clone());
    if !spec.positional {
        arg = arg.long(spec.name.clone());
    }
    arg = match spec.ty {
        ArgType::Bool => arg.action(ArgAction::SetTrue),
        _ if spec.multiple => arg.action(ArgAction::Append),
        _ => arg.action(ArgAction::Set),
    };
    // `--stack -8`, `--offset -3`: a negative number is a value, not a flag.
    if spec.ty != ArgType::Bool {
        arg = arg.allow_negative_numbers(true);
    }
    match spec.ty {
        ArgType::Int => arg = arg.value_parser(clap::value_parser!(i64)).value_name("N"),
        ArgType::Path | ArgType::File => arg = arg.value_name("FILE"),
        ArgType::String | ArgType::Text => arg = arg.value_name(spec.name.to_uppercase()),
        ArgType::Bool => {}
    }
    if spec.required && spec.ty != ArgType::Bool {
        arg = arg.required(true);
    }
    if let Some(d) = &spec.default {
        arg = arg.default_value(d.clone());
    }
    arg
}

fn collect_args(
    spec: &CommandSpec,
    m: &clap::ArgMatches,
    cwd: &std::path::Path,
) -> anyhow::Result<Map<String, Value>> {
    let mut out = Map::new();
    for a in &spec.args {
        let value = match a.ty {
            ArgType::Bool => Some(Value::Bool(m.get_flag(&a.name))),
            ArgType::Int => {
                let mut vals: Vec<Value> = m
                    .get_many::<i64>(&a.name)
                    .into_iter()
                    .flatten()
                    .map(|v| Value::from(*v))
                    .collect();
                if a.multiple {
                    Some(Value::Array(vals))
                } else {
                    vals.pop()
                }
            }
            ArgType::String | ArgType::Text | ArgType::Path | ArgType::File => {
                let mut vals = Vec::new();
                for v in m.get_many::<String>(&a.name).into_iter().flatten() {
                    vals.push(match a.ty {
                        ArgType::Path => Value::String(absolute(v, cwd)),
                        ArgType::File => read_file_arg(&a.name, v, cwd)?,
                        ArgType::Text if v == "-" => Value::String(read_stdin_arg(&a.name)?),
                        _ => Value::String(v.clone()),
                    });
                }
                if a.multiple {
                    Some(Value::Array(vals))
                } else {
                    vals.pop()
                }
            }
        };
        if let Some(v) = value {
            out.insert(a.name.clone(), v);
        }
    }
    Ok(out)
}

/// Read standard input for a `type = "text"` argument given as `-`.
fn read_stdin_arg(name: &str) -> anyhow::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::io::stdin()
        .take(MAX_FILE_ARG + 1)
        .read_to_string(&mut text)
        .with_context(|| {
            format!("cannot read `{name}` from standard input (it must be UTF-8 text)")
        })?;
    if text.len() as u64 > MAX_FILE_ARG {
        anyhow::bail!(
            "`{name}` on standard input is over {MAX_FILE_ARG} bytes; send a smaller text"
        );
    }
    Ok(text)
}

/// Files larger than this are refused rather than copied into a plugin call.
const MAX_FILE_ARG: u64 = 16 * 1024 * 1024;

/// Read a file the user named for a `type = "file"` argument.
fn read_file_arg(name: &str, path: &str, cwd: &std::path::Path) -> anyhow::Result<Value> {
    let abs = absolute(path, cwd);
    // Bounded by reading, not by trusting the length metadata claims (a FIFO or
    // /dev/zero has none); only regular files are read.
    match crate::confined::read_file(std::path::Path::new(&abs), MAX_FILE_ARG) {
        Ok(bytes) => Ok(datum_plugin_api::FileArg::to_value(&abs, &bytes)),
        // Not a file: the plugin may know the word (e.g. an example's name).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(datum_plugin_api::FileArg::missing(path))
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => anyhow::bail!(
            "--{name} {path} is over {MAX_FILE_ARG} bytes, the limit for files passed to plugins"
        ),
        Err(e) => Err(e).with_context(|| format!("--{name} {path}: cannot read it")),
    }
}

/// Paths are resolved against the caller's directory, since the plugin has none.
fn absolute(p: &str, cwd: &std::path::Path) -> String {
    let path = std::path::Path::new(p);
    let abs = if path.is_absolute() {
        path.to_owned()
    } else {
        cwd.join(path)
    };
    abs.display().to_string()
}

/// A command line the command cannot use (exit code 2, like clap's own errors).
fn usage(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    crate::error::fail("usage", Category::Usage, message, hint)
}
