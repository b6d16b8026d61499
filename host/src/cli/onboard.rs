//! `datum onboard`: the original plan's five steps. The host does what only it may —
//! the agent's configuration, Keeper registration and the workshop from the template
//! (that is `boot`) — and hands the rest (the role's bootcamp, the first task) to the
//! plugin that provides `bootcamp assign` (`growth`, installed by default). Progress
//! and the participant list are that plugin's too.

use std::path::PathBuf;

use anyhow::Context as _;
use datum_plugin_api::Format as WireFormat;
use serde_json::{json, Map, Value};

use super::boot::{self, BootArgs};
use super::output::Format;
use super::Context;
use crate::loader::Kind;
use crate::runtime::Runtime;

#[derive(Debug, clap::Args)]
pub struct OnboardArgs {
    /// The new agent's name.
    #[arg(long, value_name = "NAME", required_unless_present_any = ["progress", "list"])]
    pub agent: Option<String>,
    /// Its role, which picks the bootcamp curriculum (generalist, researcher,
    /// quartermaster, engineer; `datum bootcamp curricula` lists them).
    #[arg(long, required_unless_present_any = ["progress", "list"])]
    pub role: Option<String>,
    /// Register the agent with the Keeper at URL.
    #[arg(long, value_name = "URL")]
    pub keeper: Option<String>,
    /// A one-time enrolment code from the Keeper's operator.
    #[arg(long, value_name = "CODE", requires = "keeper")]
    pub enrol: Option<String>,
    /// Which build of the default plugins to install.
    #[arg(long, value_enum, default_value_t = Kind::Wasm)]
    pub kind: Kind,
    /// Show an agent's bootcamp progress, computed from the workshop's evidence.
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "", conflicts_with_all = ["agent", "role", "list"])]
    pub progress: Option<String>,
    /// List the participants known here and in the fleet.
    #[arg(long, conflicts_with_all = ["agent", "role"])]
    pub list: bool,
}

pub fn run(ctx: &Context, args: OnboardArgs) -> anyhow::Result<()> {
    if let Some(name) = &args.progress {
        let mut a = Map::new();
        if !name.is_empty() {
            a.insert("agent".into(), Value::from(name.clone()));
        }
        return delegate(ctx, &["bootcamp", "progress"], a);
    }
    if args.list {
        return delegate(ctx, &["bootcamp", "list"], Map::new());
    }
    let (Some(agent), Some(role)) = (args.agent, args.role) else {
        anyhow::bail!("name the agent and its role: datum onboard --agent NAME --role ROLE");
    };
    if !datum_plugin_api::valid_name(&role) {
        anyhow::bail!("role `{role}` must be a-z, 0-9 and '-' (e.g. researcher)");
    }
    let dir = match &ctx.workshop {
        Some(d) => d.clone(),
        None => match std::env::var_os("DATUM_WORKSHOP").filter(|d| !d.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => std::env::current_dir().context("cannot read the current directory")?,
        },
    };
    // Step 1 for a workshop booted earlier: the role is set at onboarding (once).
    if dir.join(crate::workshop::AGENT_FILE).is_file() {
        let ws = crate::workshop::Workshop::open(&dir)?;
        let current = ws.agent()?.agent;
        if current.name != agent {
            anyhow::bail!(
                "{} is the workshop of agent `{}`; onboard `{agent}` in a new folder (--workshop DIR)",
                dir.display(),
                current.name
            );
        }
        ws.set_role(&role)?;
    }
    // Steps 1-3: configuration, Keeper registration, the workshop from the template.
    let (booted, boot_text) = boot::boot(
        &Context {
            workshop: Some(dir.clone()),
            registry: ctx.registry.clone(),
            reporter: super::Reporter::new(Format::Json),
        },
        BootArgs {
            name: Some(agent),
            role,
            kind: args.kind,
            no_plugins: false,
            allow_unsigned: false,
            keeper: args.keeper,
            enrol: args.enrol,
            keeper_home: None,
        },
    )?;
    // Steps 4-5: the bootcamp and the first task.
    let scoped = Context {
        workshop: Some(dir),
        registry: ctx.registry.clone(),
        reporter: super::Reporter::new(ctx.reporter.format),
    };
    let (assigned, text) = call(&scoped, &["bootcamp", "assign"], Map::new())?;
    let data = json!({ "boot": booted, "onboarding": assigned });
    ctx.reporter
        .emit(&data, || format!("{}\n\n{}", boot_text.trim_end(), text))
}

/// Run a plugin command by its words and print what it returns.
fn delegate(ctx: &Context, words: &[&str], args: Map<String, Value>) -> anyhow::Result<()> {
    let (data, text) = call(ctx, words, args)?;
    ctx.reporter.emit(&data, || text)
}

fn call(
    ctx: &Context,
    words: &[&str],
    args: Map<String, Value>,
) -> anyhow::Result<(Value, String)> {
    let runtime = Runtime::open(ctx.home()?, ctx.workshop()?)?;
    runtime.set_registry(ctx.registry.clone());
    let route = runtime
        .route(words)
        .filter(|r| r.words == words.len())
        .with_context(|| {
            format!(
                "onboarding needs a plugin providing `datum {}`; install it with `datum plugin install growth`",
                words.join(" ")
            )
        })?;
    let mut request = runtime.request(&route.command.path);
    request.args = args;
    request.format = match ctx.reporter.format {
        Format::Json => WireFormat::Json,
        Format::Text => WireFormat::Text,
    };
    let out = runtime.invoke(&route.plugin.locked.name, request)?;
    let text = match out.text {
        Some(t) => t.trim_end().to_owned(),
        None => serde_json::to_string_pretty(&out.data)?,
    };
    Ok((out.data, text))
}
