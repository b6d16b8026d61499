//! The `datum` command line: host verbs, plus every command an installed plugin
//! contributes (routed by [`dynamic`]).

mod audit;
mod batch;
mod boot;
pub(crate) mod dynamic;
mod onboard;
mod output;
mod plugin;
mod registry_cmd;
mod shell;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use output::{Format, Reporter};

use crate::paths::Home;
use crate::registry::Registry;

#[derive(Debug, Parser)]
#[command(
    name = "datum",
    version,
    about = "Turn a folder into a working agent; gain abilities by installing plugins.",
    after_help = "Plugins add commands (e.g. `datum flux run`); `datum plugin list` shows what is installed."
)]
pub struct Cli {
    /// The workshop to act on (default: DATUM_WORKSHOP, then the current directory and its parents).
    #[arg(long, global = true, value_name = "DIR")]
    pub workshop: Option<PathBuf>,

    /// Output for humans (text) or for programs (json: one JSON document on stdout).
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Registry to use: a folder, `git+URL`, a URL ending in .git, or an http(s):// URL (default: DATUM_REGISTRY, then the bundled one).
    #[arg(long, global = true, value_name = "SPEC")]
    pub registry: Option<String>,

    /// Trust only the CA certificates in this PEM file for https registries (a private CA; also DATUM_CA_FILE).
    #[arg(long, global = true, value_name = "FILE", env = "DATUM_CA_FILE")]
    pub ca_file: Option<PathBuf>,

    /// Log host services and plugin messages to stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create (or re-check) a workshop and install its default plugins.
    Boot(boot::BootArgs),
    /// Show the agent, the workshop's health and its installed plugins.
    Status,
    /// Check the workshop: layout, git, plugins (hashes, updates, grants), records.
    Audit(audit::AuditArgs),
    /// Onboard an agent: configuration, Keeper, workshop, bootcamp, first task
    /// (`--progress NAME` shows its bootcamp, `--list` the participants).
    Onboard(onboard::OnboardArgs),
    /// Find, install and manage plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Run many plugin calls (JSON lines in, JSON lines out) with each plugin loaded once.
    Batch(batch::BatchArgs),
    /// Maintain a folder registry (used by scripts/build-registry).
    #[command(subcommand)]
    Registry(registry_cmd::RegistryCommand),
    /// Shell completions: host verbs and the current workshop's plugin commands
    /// (e.g. `datum completions bash > ~/.local/share/bash-completion/completions/datum`).
    Completions(shell::CompletionsArgs),
    /// The manual page (roff), with the current workshop's plugin commands.
    Man,
    /// A command provided by an installed plugin.
    #[command(external_subcommand)]
    External(Vec<String>),
}

/// A failure the command has already shown in full (e.g. `status` printing "needs
/// attention"): the process exits non-zero and prints nothing more.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Reported(pub String);

/// Everything commands share.
pub struct Context {
    pub workshop: Option<PathBuf>,
    pub registry: Option<String>,
    pub reporter: Reporter,
}

impl Context {
    pub fn home(&self) -> anyhow::Result<Home> {
        Home::from_env()
    }

    pub fn workshop(&self) -> anyhow::Result<crate::workshop::Workshop> {
        crate::workshop::Workshop::discover(self.workshop.as_deref())
    }

    /// `--registry`, then `DATUM_REGISTRY`, then the bundled registry.
    pub fn open_registry(&self, home: &Home) -> anyhow::Result<Registry> {
        crate::registry::open_configured(self.registry.as_deref(), home)
    }
}

pub use crate::registry::bundled_registry;

/// Parse the command line, run, and return the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    if let Some(ca) = &cli.ca_file {
        // Read where registries are opened (deep in install, runtime and services);
        // set once here, before any thread starts.
        std::env::set_var("DATUM_CA_FILE", ca);
    }
    let mut ctx = Context {
        workshop: cli.workshop,
        registry: cli.registry,
        reporter: Reporter::new(cli.format),
    };
    // clap hands a plugin command's arguments over unparsed: pick out the host flags
    // first, so every error below is rendered in the format asked for.
    let command = match cli.command {
        Command::External(args) => match dynamic::split_host_flags(args) {
            Ok(flags) => {
                ctx.workshop = flags.workshop.or(ctx.workshop);
                ctx.registry = flags.registry.or(ctx.registry);
                ctx.reporter = Reporter::new(flags.format.unwrap_or(cli.format));
                Command::External(flags.rest)
            }
            Err(e) => return ctx.reporter.error(&e),
        },
        other => other,
    };
    let result = match command {
        Command::Boot(args) => boot::run(&ctx, args),
        Command::Status => status::run(&ctx),
        Command::Audit(args) => audit::run(&ctx, args),
        Command::Onboard(args) => onboard::run(&ctx, args),
        Command::Plugin(cmd) => plugin::run(&ctx, cmd),
        Command::Registry(cmd) => registry_cmd::run(&ctx, cmd),
        Command::Batch(args) => batch::run(&ctx, args),
        Command::Completions(args) => shell::completions(&ctx, args),
        Command::Man => shell::man(&ctx),
        Command::External(args) => dynamic::run(&ctx, args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<Reported>() => ExitCode::FAILURE,
        Err(e) => ctx.reporter.error(&e),
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn,extism=off,wasmtime=off,cranelift=off",
        1 => "info,extism=warn,wasmtime=warn,cranelift=warn",
        _ => "debug,extism=info,wasmtime=info,cranelift=warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("DATUM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour codes only for a terminal, never into a log file or a pipe.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
