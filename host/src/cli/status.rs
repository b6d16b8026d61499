//! `datum status`: who the agent is, whether its workshop is healthy, what it can do.

use serde_json::json;

use super::output::table;
use super::Context;
use crate::runtime::Runtime;
use crate::workshop::is_clean;

pub fn run(ctx: &Context) -> anyhow::Result<()> {
    let workshop = ctx.workshop()?;
    let agent = workshop.agent()?;
    let home = ctx.home()?;
    let runtime = Runtime::open(home, workshop.clone())?;
    let missing = workshop.missing_layout();
    let clean = is_clean(workshop.root()).unwrap_or(false);
    let plugins: Vec<_> = runtime
        .installed()
        .iter()
        .map(|p| {
            json!({
                "name": p.locked.name,
                "version": p.locked.version.to_string(),
                "kind": p.locked.kind,
                "grants": p.locked.grants,
                "commands": p.manifest.commands.iter().map(|c| c.path.clone()).collect::<Vec<_>>(),
                "available": true,
            })
        })
        .chain(runtime.skipped.iter().map(|(p, why)| {
            json!({
                "name": p.name,
                "version": p.version.to_string(),
                "kind": p.kind,
                "grants": p.grants,
                "available": false,
                "problem": why,
            })
        }))
        .collect();
    let healthy = missing.is_empty() && runtime.skipped.is_empty();
    let data = json!({
        "agent": { "name": agent.agent.name, "role": agent.agent.role, "created": agent.agent.created, "lifecycle": agent.agent.lifecycle },
        "workshop": {
            "path": workshop.root(),
            "healthy": healthy,
            "git_clean": clean,
            "missing": missing,
        },
        "plugins": plugins,
    });
    ctx.reporter.emit(&data, || {
        let mut s = format!(
            "agent     {} ({}, {})\nworkshop  {}\nhealth    {}{}\n",
            agent.agent.name,
            agent.agent.role,
            agent.agent.lifecycle.as_str(),
            workshop.root().display(),
            if healthy { "ok" } else { "needs attention" },
            if clean { "" } else { " (uncommitted changes)" }
        );
        for m in &missing {
            s.push_str(&format!("  missing {m} (run `datum boot` to restore it)\n"));
        }
        let rows = plugins
            .iter()
            .map(|p| {
                vec![
                    p["name"].as_str().unwrap_or_default().to_owned(),
                    p["version"].as_str().unwrap_or_default().to_owned(),
                    p["kind"].as_str().unwrap_or_default().to_owned(),
                    p["problem"]
                        .as_str()
                        .map(|w| format!("unavailable: {w}"))
                        .unwrap_or_else(|| {
                            p["commands"]
                                .as_array()
                                .map(|c| {
                                    c.iter()
                                        .filter_map(|x| x.as_str())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                })
                                .unwrap_or_default()
                        }),
                ]
            })
            .collect();
        if plugins.is_empty() {
            s.push_str("plugins   none (install one with `datum plugin install flux-vm`)\n");
        } else {
            s.push('\n');
            s.push_str(&table(&["plugin", "version", "kind", "commands"], rows));
        }
        s
    })?;
    if !healthy {
        // The report said what is wrong; the exit code says it to scripts.
        return Err(super::Reported("the workshop needs attention".into()).into());
    }
    Ok(())
}
