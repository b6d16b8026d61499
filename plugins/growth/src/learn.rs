//! `learn --ability X [--from AGENT] [--full]`, `learn --list`, and
//! `workflow learn --from AGENT --abilities a,b`: find what provides an ability (the
//! registry's plugins, the fleet's agents), install it through the host, prove it by
//! its own golden examples (and, for FLUX runtimes, the conformance vectors), and
//! record it with the confidence that evidence earns.

use capability::{stars_for, Capability, Source};
use datum_plugin_api::{Host, Output, PluginError, Request};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::profile;
use crate::util::{args, call_opt, journal, shown, stars, today};

/// What datum itself can do, without any plugin.
pub const HOST_ABILITIES: &[&str] = &["plugin-management", "workshop-audit", "onboarding"];

/// The evidence for an installed plugin: its examples and, for a FLUX runtime, the
/// conformance run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Proof {
    pub plugin: String,
    pub version: String,
    pub passed: usize,
    pub total: usize,
    pub failures: Vec<String>,
    pub conformance: Option<(u64, u64)>,
}

impl Proof {
    /// The share of checks passed; 0.5 ("claimed, not shown") with no checks at all.
    pub fn confidence(&self) -> f64 {
        if self.total == 0 {
            0.5
        } else {
            let c = self.passed as f64 / self.total as f64;
            (c * 100.0).round() / 100.0
        }
    }

    pub fn summary(&self) -> String {
        let mut s = format!("{}/{} checks", self.passed, self.total);
        if let Some((p, t)) = self.conformance {
            s.push_str(&format!(", conformance {p}/{t}"));
        }
        s
    }
}

/// Run an installed plugin's self-checks.
pub fn prove(host: &Host<'_>, plugin: &Value) -> Result<Proof, PluginError> {
    let name = plugin["name"].as_str().unwrap_or_default();
    let report = host.prove_plugin(name)?;
    let mut proof = Proof {
        plugin: name.to_owned(),
        version: plugin["version"].as_str().unwrap_or_default().to_owned(),
        passed: report["passed"].as_u64().unwrap_or(0) as usize,
        total: report["total"].as_u64().unwrap_or(0) as usize,
        failures: report["examples"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["passed"] != true)
            .map(|e| {
                format!(
                    "`{}` printed `{}`, not `{}`",
                    shown(e["run"].as_str().unwrap_or_default()),
                    shown(
                        e["got"]
                            .as_str()
                            .unwrap_or_default()
                            .lines()
                            .next()
                            .unwrap_or_default()
                    ),
                    shown(
                        e["expected"]
                            .as_str()
                            .unwrap_or_default()
                            .lines()
                            .next()
                            .unwrap_or_default()
                    )
                )
            })
            .collect(),
        conformance: None,
    };
    let runs_flux = plugin["commands"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c == "flux conformance"));
    if runs_flux {
        let run = host.call_plugin(name, "flux conformance", Map::new())?;
        let sum = |k: &str| -> u64 {
            run["suites"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| s[k].as_u64().unwrap_or(0))
                .sum()
        };
        proof.conformance = Some((sum("passed"), sum("total")));
        proof.total += 1;
        if run["ok"] == true {
            proof.passed += 1;
        } else {
            proof
                .failures
                .push("the conformance vectors fail: datum flux conformance".into());
        }
    }
    Ok(proof)
}

fn installed(host: &Host<'_>, name: &str) -> Result<Option<Value>, PluginError> {
    Ok(host.plugins()?.into_iter().find(|p| p["name"] == name))
}

fn valid_ability(a: &str) -> Result<(), PluginError> {
    // Ability names follow the plugin-name rule (a-z, 0-9, '-'; never a path).
    let ok = datum_plugin_api::valid_name(a);
    if ok {
        Ok(())
    } else {
        Err(
            PluginError::invalid_args(format!("`{}` is not an ability name", shown(a)))
                .with_hint("abilities are a-z, 0-9 and '-', e.g. flux-execution"),
        )
    }
}

/// Where an ability will come from.
struct Choice {
    plugin: String,
    spec: String,
    sha256: Option<String>,
    /// `None`: a registry plugin, whose source (`plugin:NAME@VERSION`) is known once the
    /// install says which version it took.
    source: Option<Source>,
}

/// The plugin in `agent`'s datum.lock that provides `ability`, pinned exactly.
fn from_agent(host: &Host<'_>, agent: &str, ability: &str) -> Result<Choice, PluginError> {
    let lock = call_opt(
        host,
        "fleet",
        "fleet lock",
        args(&[("agent", Value::from(agent))]),
    )?
    .ok_or_else(|| {
        PluginError::failed(format!(
            "learning from {} needs the fleet plugin",
            shown(agent)
        ))
        .with_hint("datum plugin install fleet, then configure the fleet (datum fleet add-source)")
    })?;
    let pins = lock["plugins"].as_array().cloned().unwrap_or_default();
    for pin in &pins {
        let (Some(name), Some(version)) = (pin["name"].as_str(), pin["version"].as_str()) else {
            continue;
        };
        let Ok(info) = host.plugin_info(name) else {
            continue;
        };
        let provides = info["versions"].as_array().into_iter().flatten().any(|v| {
            v["version"] == version
                && v["provides"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|p| p == ability))
        });
        if provides {
            return Ok(Choice {
                plugin: name.to_owned(),
                spec: format!("{name}@={version}"),
                sha256: pin["sha256"].as_str().map(str::to_owned),
                source: Some(Source::Transfer {
                    agent: agent.to_owned(),
                }),
            });
        }
    }
    let names: Vec<String> = pins
        .iter()
        .filter_map(|p| {
            p["name"].as_str().map(|n| {
                format!(
                    "{} {}",
                    shown(n),
                    shown(p["version"].as_str().unwrap_or("?"))
                )
            })
        })
        .collect();
    Err(PluginError::failed(format!(
        "{}'s datum.lock pins no plugin (in this registry) that provides {ability}; it pins: {}",
        shown(agent),
        if names.is_empty() {
            "nothing".into()
        } else {
            names.join(", ")
        }
    ))
    .with_hint(format!(
        "datum learn --ability {ability} (from the registry)"
    )))
}

/// Learn one ability; returns the JSON record and the text lines.
fn learn_one(
    request: &Request,
    host: &Host<'_>,
    ability: &str,
    from: Option<&str>,
    full: bool,
) -> Result<(Value, Vec<String>), PluginError> {
    valid_ability(ability)?;
    let mut lines = vec![format!(
        "Scanning the registry and the fleet for {ability} expertise..."
    )];
    let mut notes = Vec::new();
    let offered = host.plugins_providing(ability)?;
    for p in &offered {
        lines.push(format!(
            "  Found: plugin {} {} in the registry",
            shown(p["name"].as_str().unwrap_or_default()),
            shown(p["version"].as_str().unwrap_or_default())
        ));
    }
    let claims: Vec<Value> = match call_opt(
        host,
        "fleet",
        "fleet who",
        args(&[("ability", Value::from(ability))]),
    ) {
        Ok(v) => v
            .and_then(|v| v["agents"].as_array().cloned())
            .unwrap_or_default(),
        Err(e) => {
            notes.push(format!(
                "fleet: {}",
                e.message.lines().next().unwrap_or_default()
            ));
            Vec::new()
        }
    };
    for a in &claims {
        lines.push(format!(
            "  Found: agent {} (confidence: {:.2})",
            shown(a["agent"].as_str().unwrap_or_default()),
            a["confidence"].as_f64().unwrap_or(0.0)
        ));
    }
    let mine = host.plugins()?;
    let choice = match from {
        Some(agent) => from_agent(host, agent, ability)?,
        None => {
            let mut best: Vec<&Value> = offered.iter().collect();
            // An installed provider first, then one with a sandboxed build, then by name.
            best.sort_by_key(|p| {
                let name = p["name"].as_str().unwrap_or_default();
                (
                    !mine.iter().any(|m| m["name"] == name),
                    !p["kinds"]
                        .as_array()
                        .is_some_and(|k| k.iter().any(|k| k == "wasm32-unknown-unknown")),
                    name.to_owned(),
                )
            });
            match best.first() {
                Some(p) => {
                    let name = p["name"].as_str().unwrap_or_default().to_owned();
                    // Learning from a plugin already here proves what is installed; it
                    // is not an upgrade (`improve auto` does those, with a rollback).
                    let spec = match mine.iter().find(|m| m["name"] == name.as_str()) {
                        Some(m) => format!("{name}@={}", m["version"].as_str().unwrap_or("*")),
                        None => name.clone(),
                    };
                    Choice {
                        spec,
                        plugin: name,
                        sha256: None,
                        source: None,
                    }
                }
                None => {
                    let agent = claims.first().and_then(|a| a["agent"].as_str()).ok_or_else(|| {
                        PluginError::failed(format!("nothing provides {ability}: no plugin in the registry, no agent in the fleet"))
                            .with_hint(format!("datum plugin search {ability}"))
                    })?;
                    from_agent(host, agent, ability)?
                }
            }
        }
    };
    let installed_now = host.install_plugin(
        &choice.spec,
        &format!("learn {ability}"),
        &datum_plugin_api::InstallRequest {
            sha256: choice.sha256.as_deref(),
            ..Default::default()
        },
    )?;
    let version = installed_now["version"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    lines.push(format!(
        "  {} {} {} ({})",
        if installed_now["changed"] == true {
            "Installed"
        } else {
            "Using installed"
        },
        choice.plugin,
        version,
        installed_now["kind"].as_str().unwrap_or_default()
    ));
    let source = choice.source.unwrap_or_else(|| Source::Plugin {
        name: choice.plugin.clone(),
        version: version.clone(),
    });
    let plugin = installed(host, &choice.plugin)?.ok_or_else(|| {
        PluginError::failed(format!("{} was installed but is not loaded", choice.plugin))
    })?;
    let proof = prove(host, &plugin)?;
    lines.push(format!("  Proof: {}", proof.summary()));
    for f in &proof.failures {
        lines.push(format!("    failed: {f}"));
    }
    let date = today(host)?;
    let cap = Capability {
        confidence: proof.confidence(),
        stars: stars_for(proof.confidence()),
        learned: Some(date.clone()),
        source: source.clone(),
    };
    let mut knowledge = None;
    if full {
        let (path, round_lines) = study(host, ability, &plugin, &proof, &date)?;
        lines.extend(round_lines);
        knowledge = Some(path);
    }
    let committed = profile::save_abilities(
        request,
        host,
        &[(ability.to_owned(), cap.clone())],
        &format!("learned {ability}"),
    )?;
    journal(
        host,
        "LEARNED",
        &format!(
            "{ability} from {source} — {} ({})",
            stars(cap.stars),
            proof.summary()
        ),
        &[ability],
    )?;
    lines.push(match &source {
        Source::Transfer { agent } => format!(
            "Transfer complete. {ability} ability added to {} ({} from {agent})",
            profile::FILE,
            stars(cap.stars)
        ),
        _ => format!(
            "Learned {ability} {} — added to {}",
            stars(cap.stars),
            profile::FILE
        ),
    });
    for n in notes {
        lines.push(format!("note: {n}"));
    }
    Ok((
        json!({
            "ability": ability,
            "plugin": choice.plugin,
            "version": version,
            "installed": installed_now["changed"],
            "source": source.to_string(),
            "confidence": cap.confidence,
            "stars": cap.stars,
            "learned": date,
            "proof": proof,
            "candidates": { "registry": offered.iter().map(|p| json!({"name": p["name"], "version": p["version"]})).collect::<Vec<_>>(), "fleet": claims },
            "knowledge": knowledge,
            "committed": committed,
        }),
        lines,
    ))
}

/// `--full`: the three rounds, each in the journal and in `knowledge/ABILITY.md`.
fn study(
    host: &Host<'_>,
    ability: &str,
    plugin: &Value,
    proof: &Proof,
    date: &str,
) -> Result<(String, Vec<String>), PluginError> {
    let name = plugin["name"].as_str().unwrap_or_default();
    let version = plugin["version"].as_str().unwrap_or_default();
    let info = host.plugin_info(name)?;
    let this = info["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["version"] == version)
        .cloned()
        .unwrap_or(Value::Null);
    let mut lines = Vec::new();
    let mut doc = format!("# {ability}\n\nLearned {date} from {name} {version}.\n\n");

    // Round 1: the docs the registry carries, read before any code ran.
    let readme = info["readme"].as_str().unwrap_or_default();
    let mut r1 = format!(
        "{} — {}\n",
        name,
        shown(this["description"].as_str().unwrap_or_default())
    );
    let intro: Vec<String> = readme
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.starts_with('#') && !p.starts_with("```"))
        .take(2)
        .map(|p| p.lines().map(shown).collect::<Vec<_>>().join(" "))
        .collect();
    for p in &intro {
        r1.push_str(&format!("\n{p}\n"));
    }
    r1.push_str("\nCommands:\n");
    for c in this["commands"].as_array().into_iter().flatten() {
        r1.push_str(&format!(
            "- `datum {}` — {}\n",
            shown(c["path"].as_str().unwrap_or_default()),
            shown(c["summary"].as_str().unwrap_or_default())
        ));
    }
    lines.push(format!(
        "Round 1: Foundations — reading {name}'s README from the registry ({} lines)...",
        readme.lines().count()
    ));

    // Round 2: what its own checks said.
    let mut r2 = format!("Self-checks: {}.\n", proof.summary());
    if proof.total == 0 {
        r2.push_str("Its manifest ships no golden examples, so nothing could be checked: the ability is claimed, not shown (confidence 0.5).\n");
    } else if proof.failures.is_empty() {
        r2.push_str("Every check passed.\n");
    } else {
        for f in &proof.failures {
            r2.push_str(&format!("- failed: {f}\n"));
        }
    }
    lines.push(format!(
        "Round 2: Critique — running its self-checks ({})...",
        proof.summary()
    ));

    // Round 3: what it may touch and whom it talks to.
    let mut r3 = String::from("Grants:\n");
    let mut calls = Vec::new();
    let mut services = std::collections::BTreeSet::new();
    for p in this["permissions"].as_array().into_iter().flatten() {
        let grant = p["grant"].as_str().unwrap_or_default();
        r3.push_str(&format!(
            "- `{}` — {}\n",
            shown(grant),
            shown(p["reason"].as_str().unwrap_or_default())
        ));
        let (kind, scope) = grant.split_once(':').unwrap_or((grant, ""));
        services.insert(match kind {
            "fs-read" | "fs-write" => "workshop files",
            "git" => "git history",
            "call" => "other plugins",
            "secrets" => "the Keeper",
            "kv" => "its key-value store",
            "install" => "plugin installs",
            _ => "other",
        });
        if kind == "call" {
            calls.push(shown(scope));
        }
    }
    r3.push_str(&format!(
        "\nHost services: {}.\nPlugins it calls: {}.\nRequires: {}.\n",
        services.into_iter().collect::<Vec<_>>().join(", "),
        if calls.is_empty() {
            "none".into()
        } else {
            calls.join(", ")
        },
        this["requires"]
            .as_object()
            .filter(|m| !m.is_empty())
            .map_or("nothing".into(), |m| {
                m.iter()
                    .map(|(k, v)| format!("{} {}", shown(k), shown(v.as_str().unwrap_or(""))))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
    ));
    lines.push(format!(
        "Round 3: Architecture — reading its grants and the plugins it calls ({})...",
        if calls.is_empty() {
            "none".into()
        } else {
            calls.join(", ")
        }
    ));

    for (i, (title, body)) in [
        ("Foundations", &r1),
        ("Critique", &r2),
        ("Architecture", &r3),
    ]
    .iter()
    .enumerate()
    {
        doc.push_str(&format!("## Round {}: {title}\n\n{body}\n", i + 1));
        journal(
            host,
            "STUDY",
            &format!("{ability} round {}: {title}\n{body}", i + 1),
            &[ability, &format!("round-{}", i + 1)],
        )?;
    }
    let path = format!("knowledge/{ability}.md");
    host.write_file(&path, &doc)?;
    host.git_commit("knowledge", &format!("knowledge: {ability} (three rounds)"))?;
    Ok((path, lines))
}

pub fn learn(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
    if request.arg_bool("list") {
        return list(request, host);
    }
    let ability = request.arg_str("ability").ok_or_else(|| {
        PluginError::invalid_args("name the ability: datum learn --ability NAME")
            .with_hint("or datum learn --list for what this agent has")
    })?;
    let (data, lines) = learn_one(
        request,
        host,
        ability,
        request.arg_str("from"),
        request.arg_bool("full"),
    )?;
    Ok(Output::new(data).with_text(lines.join("\n")))
}

pub fn workflow(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
    let from = request.require_str("from")?;
    let wanted: Vec<String> = request
        .arg_strs("abilities")
        .iter()
        .flat_map(|a| a.split(','))
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .collect();
    if wanted.is_empty() {
        return Err(PluginError::invalid_args(
            "name the abilities: --abilities a,b",
        ));
    }
    let mut records = Vec::new();
    let mut text = Vec::new();
    for (i, ability) in wanted.iter().enumerate() {
        text.push(format!(
            "Step {}: learn {ability} from {}",
            i + 1,
            shown(from)
        ));
        let (data, lines) = learn_one(request, host, ability, Some(from), false)?;
        text.extend(lines.into_iter().map(|l| format!("  {l}")));
        records.push(data);
    }
    text.push(format!(
        "{} shares {} plugin version(s) with {} now (pinned from its datum.lock)",
        request.agent.name,
        records.len(),
        shown(from)
    ));
    Ok(Output::new(json!({ "from": from, "learned": records })).with_text(text.join("\n")))
}

fn list(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
    let profile = profile::profile(request, host)?;
    let mut rows = Vec::new();
    let mut text = String::new();
    for (name, cap) in &profile.capabilities {
        let stars_n = if cap.stars == 0 {
            stars_for(cap.confidence)
        } else {
            cap.stars
        };
        let when = match (&cap.source, &cap.learned) {
            (Source::Intrinsic, _) => "(intrinsic)".to_owned(),
            (s, Some(d)) => format!("(learned {d}, {s})"),
            (s, None) => format!("({s})"),
        };
        text.push_str(&format!("{name} {} {when}\n", stars(stars_n)));
        rows.push(json!({"ability": name, "stars": stars_n, "confidence": cap.confidence, "learned": cap.learned, "source": cap.source.to_string()}));
    }
    for a in HOST_ABILITIES {
        text.push_str(&format!("{a} {} (intrinsic: datum itself)\n", stars(5)));
        rows.push(json!({"ability": a, "stars": 5, "confidence": 1.0, "learned": null, "source": "intrinsic", "host": true}));
    }
    Ok(Output::new(json!({ "abilities": rows })).with_text(text.trim_end().to_owned()))
}
