//! Golden manifest examples: every `[[commands.examples]]` a plugin ships is a claim
//! ("this command prints this"). `prove` checks the claims by running each example in
//! a fresh scratch workshop — the agent's own plugin set and grants, the real loaders —
//! so proving an ability never writes to the agent's workshop (a `journal add` example
//! must not add to the agent's journal). Used by `plugin.prove` (`datum learn`,
//! `datum improve`).

use std::path::Path;

use serde::Serialize;

use crate::cli::dynamic::{parse_args, Parsed};
use crate::paths::Home;
use crate::runtime::{Installed, Runtime};
use crate::workshop::Lock;
use crate::workshop::Workshop;

/// The agent of every scratch workshop: manifest examples are written as `alice`.
pub const SCRATCH_AGENT: &str = "alice";

#[derive(Debug, Clone, Serialize)]
pub struct ExampleRun {
    pub command: String,
    pub run: String,
    pub expected: String,
    pub got: String,
    pub passed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Proof {
    pub plugin: String,
    pub version: String,
    pub kind: String,
    pub examples: Vec<ExampleRun>,
    pub passed: usize,
    pub total: usize,
    /// Examples that only illustrate (`golden = false`, no output, a shell pipe).
    pub skipped: usize,
}

/// Run `plugin`'s golden examples in a scratch workshop holding `lock` (the agent's
/// plugin set, so a command that calls another plugin finds it).
pub fn prove(home: &Home, lock: &Lock, plugin: &Installed) -> anyhow::Result<Proof> {
    let scratch = tempfile::Builder::new().prefix("datum-prove-").tempdir()?;
    let (workshop, _) = Workshop::create(scratch.path(), SCRATCH_AGENT, "generalist")?;
    workshop.save_lock(lock)?;
    workshop.commit("scratch workshop for golden examples")?;
    let runtime = Runtime::open(home.clone(), workshop)?;
    let mut proof = Proof {
        plugin: plugin.locked.name.clone(),
        version: plugin.locked.version.to_string(),
        kind: plugin.locked.kind.to_string(),
        examples: Vec::new(),
        passed: 0,
        total: 0,
        skipped: 0,
    };
    for command in &plugin.manifest.commands {
        for example in &command.examples {
            let Some(words) = golden_words(example) else {
                proof.skipped += 1;
                continue;
            };
            let got = run_example(&runtime, plugin, &words, scratch.path())
                .unwrap_or_else(|e| format!("error: {e:#}"));
            let passed = same_text(&got, &example.output);
            proof.total += 1;
            proof.passed += usize::from(passed);
            proof.examples.push(ExampleRun {
                command: command.path.clone(),
                run: example.run.clone(),
                expected: example.output.clone(),
                got,
                passed,
            });
        }
    }
    Ok(proof)
}

/// The words after `datum` of an example that is a golden test, or `None` for an
/// illustration: `golden = false`, no output, not a `datum` line, or shell syntax.
pub(crate) fn golden_words(example: &datum_plugin_api::Example) -> Option<Vec<String>> {
    if !example.golden || example.output.trim().is_empty() {
        return None;
    }
    let words = shlex::split(&example.run)?;
    let shell = ["|", ">", ">>", "<", "&&", ";", "||"];
    if words.first().map(String::as_str) != Some("datum")
        || words.iter().any(|w| shell.contains(&w.as_str()))
    {
        return None;
    }
    Some(words[1..].to_vec())
}

pub(crate) fn run_example(
    runtime: &Runtime,
    plugin: &Installed,
    words: &[String],
    cwd: &Path,
) -> anyhow::Result<String> {
    let out = match invoke_example(runtime, plugin, words, cwd, datum_plugin_api::Format::Text)? {
        Parsed::Help(h) => return Ok(h),
        Parsed::Args(out) => out,
    };
    Ok(match out.text {
        Some(t) => t.trim_end().to_owned(),
        None => serde_json::to_string_pretty(&out.data)?,
    })
}

/// Run an example's command line in `format`: the plugin's output, or the help text it
/// asked for (`Parsed::Help`).
pub(crate) fn invoke_example(
    runtime: &Runtime,
    plugin: &Installed,
    words: &[String],
    cwd: &Path,
    format: datum_plugin_api::Format,
) -> anyhow::Result<Parsed<datum_plugin_api::Output>> {
    let plain: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .take_while(|w| !w.starts_with('-'))
        .collect();
    let (spec, used) = plugin
        .manifest
        .match_command(&plain)
        .ok_or_else(|| anyhow::anyhow!("`{}` is not one of its commands", plain.join(" ")))?;
    let args = match parse_args(spec, &words[used..], cwd)? {
        Parsed::Args(a) => a,
        Parsed::Help(h) => return Ok(Parsed::Help(h)),
    };
    let mut request = runtime.request(&spec.path);
    request.args = args;
    request.format = format;
    Ok(Parsed::Args(runtime.invoke(&plugin.locked.name, request)?))
}

/// Equal line by line, ignoring trailing spaces and surrounding blank lines.
fn same_text(got: &str, expected: &str) -> bool {
    let lines =
        |s: &str| -> Vec<String> { s.trim().lines().map(|l| l.trim_end().to_owned()).collect() };
    lines(got) == lines(expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(run: &str, output: &str, golden: bool) -> datum_plugin_api::Example {
        datum_plugin_api::Example {
            run: run.into(),
            output: output.into(),
            golden,
        }
    }

    #[test]
    fn only_plain_datum_lines_with_output_are_golden() {
        assert_eq!(
            golden_words(&example("datum flux run 'a b' --stack 3", "[3]", true)),
            Some(vec![
                "flux".into(),
                "run".into(),
                "a b".into(),
                "--stack".into(),
                "3".into()
            ])
        );
        assert_eq!(
            golden_words(&example("datum gpu list", "0 llvmpipe", false)),
            None
        );
        assert_eq!(golden_words(&example("datum flux run x", "", true)), None);
        assert_eq!(
            golden_words(&example("datum fleet topology --as dot | dot", "x", true)),
            None
        );
        assert_eq!(golden_words(&example("cargo test", "ok", true)), None);
        assert_eq!(golden_words(&example("datum 'unclosed", "ok", true)), None);
    }

    #[test]
    fn outputs_compare_by_line_without_trailing_space() {
        assert!(same_text("[55]  \n", "[55]"));
        assert!(same_text("a\nb", "\na \nb\n"));
        assert!(!same_text("[54]", "[55]"));
        assert!(!same_text("a\nb", "a b"));
    }
}
