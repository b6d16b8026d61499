//! `datum completions SHELL` and `datum man`: the command line described for shells and
//! for `man`, host verbs plus the commands of the current workshop's plugins.

use std::io::Write as _;

use clap::{Arg, ArgAction, CommandFactory};
use datum_plugin_api::{ArgType, CommandSpec};

use super::{Cli, Context};

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// The full command tree: clap's host verbs, then every plugin command the workshop
/// (if any) has installed, nested by its words (`flux run` under `flux`).
fn command_tree(ctx: &Context) -> clap::Command {
    let mut root = Cli::command();
    let plugins = ctx
        .workshop()
        .ok()
        .and_then(|w| crate::runtime::Runtime::open(ctx.home().ok()?, w).ok())
        .map(|r| r.installed())
        .unwrap_or_default();
    for plugin in plugins {
        for spec in &plugin.manifest.commands {
            root = add(root, &spec.path.split(' ').collect::<Vec<_>>(), spec);
        }
    }
    root
}

/// Insert `spec` at `words` below `parent`, creating the intermediate commands.
fn add(parent: clap::Command, words: &[&str], spec: &CommandSpec) -> clap::Command {
    let Some((first, rest)) = words.split_first() else {
        return parent;
    };
    let name = first.to_string();
    let existing = parent.find_subcommand(&name).cloned();
    let mut child = existing.unwrap_or_else(|| clap::Command::new(name.clone()));
    if rest.is_empty() {
        child = child.about(spec.summary.clone());
        for a in &spec.args {
            let mut arg = Arg::new(a.name.clone()).help(a.help.clone());
            arg = if a.positional {
                arg
            } else {
                arg.long(a.name.clone())
            };
            arg = match a.ty {
                ArgType::Bool => arg.action(ArgAction::SetTrue),
                ArgType::Path | ArgType::File => arg.value_hint(clap::ValueHint::FilePath),
                _ => arg,
            };
            if a.multiple && a.ty != ArgType::Bool {
                arg = arg.action(ArgAction::Append);
            }
            child = child.arg(arg);
        }
    } else {
        child = add(child, rest, spec);
    }
    if parent.find_subcommand(&name).is_some() {
        parent.mut_subcommand(name, |_| child)
    } else {
        parent.subcommand(child)
    }
}

pub fn completions(ctx: &Context, args: CompletionsArgs) -> anyhow::Result<()> {
    let mut tree = command_tree(ctx);
    let mut text = Vec::new();
    clap_complete::generate(args.shell, &mut tree, "datum", &mut text);
    print(&text)
}

pub fn man(ctx: &Context) -> anyhow::Result<()> {
    let mut text = Vec::new();
    clap_mangen::Man::new(command_tree(ctx)).render(&mut text)?;
    print(&text)
}

/// Write to stdout; a reader that stopped early (`| head`) is not an error.
fn print(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
