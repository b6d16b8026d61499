//! `improve audit | suggest | auto`: what the agent lacks against its role and the
//! fleet, what to do about it, and doing the safe part — keeping a change only when
//! the checks after it are at least as good as before.

use std::collections::BTreeMap;

use capability::{stars_for, Capability, Source};
use datum_plugin_api::{Host, InstallRequest, Output, PluginError, Request};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::curriculum::Curricula;
use crate::learn::{prove, Proof};
use crate::profile;
use crate::util::{call_opt, journal, shown, today};

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub severity: &'static str,
    pub id: String,
    pub message: String,
    pub fix: String,
    /// What doing `fix` is expected to change.
    pub effect: String,
}

/// Everything the audit looks at, gathered once.
struct Survey {
    proofs: BTreeMap<String, Proof>,
    /// name → (current, newest compatible) where they differ.
    updates: BTreeMap<String, (String, String)>,
    missing: Vec<(String, bool)>,
    findings: Vec<Finding>,
    notes: Vec<String>,
}

fn checks_total(proofs: &BTreeMap<String, Proof>) -> (usize, usize) {
    proofs
        .values()
        .fold((0, 0), |(p, t), x| (p + x.passed, t + x.total))
}

fn survey(request: &Request, host: &Host<'_>, with_bootcamp: bool) -> Result<Survey, PluginError> {
    let plugins = host.plugins()?;
    let mut s = Survey {
        proofs: BTreeMap::new(),
        updates: BTreeMap::new(),
        missing: Vec::new(),
        findings: Vec::new(),
        notes: Vec::new(),
    };
    for p in &plugins {
        let name = p["name"].as_str().unwrap_or_default().to_owned();
        match prove(host, p) {
            Ok(proof) => {
                if proof.passed < proof.total {
                    s.findings.push(Finding {
                        severity: "MEDIUM",
                        id: "failing-self-check".into(),
                        message: format!(
                            "{name} {}: {} — {}",
                            proof.version,
                            proof.summary(),
                            proof.failures.first().cloned().unwrap_or_default()
                        ),
                        fix: format!("datum plugin update {name}"),
                        effect: format!(
                            "self-checks of {name}: {}/{} → {}/{} if a fixed version exists",
                            proof.passed, proof.total, proof.total, proof.total
                        ),
                    });
                }
                s.proofs.insert(name.clone(), proof);
            }
            Err(e) => s.notes.push(format!("cannot prove {name}: {}", e.message)),
        }
        match host.plugin_info(&name) {
            Ok(info) => {
                let current = info["current"].as_str().unwrap_or_default().to_owned();
                if let Some(compatible) = info["compatible"].as_str().filter(|c| *c != current) {
                    s.findings.push(Finding {
                        severity: "LOW",
                        id: "plugin-update".into(),
                        message: format!(
                            "{name} {current} → {compatible} is available (compatible)"
                        ),
                        fix: "datum improve auto".into(),
                        effect: format!(
                            "{name} {compatible}, kept only if its self-checks stay as good"
                        ),
                    });
                    s.updates
                        .insert(name.clone(), (current.clone(), compatible.to_owned()));
                }
                if let Some(newest) = info["newest"].as_str() {
                    if Some(newest) != info["compatible"].as_str() && newest != current {
                        s.findings.push(Finding {
                            severity: "INFO",
                            id: "plugin-major".into(),
                            message: format!(
                                "{name} {newest} is out (not compatible with {current})"
                            ),
                            fix: format!("datum plugin install {name}@^{newest} --force"),
                            effect: "a new major version: read its notes first".into(),
                        });
                    }
                }
            }
            Err(e) => s.notes.push(format!(
                "{name}: {}",
                e.message.lines().next().unwrap_or_default()
            )),
        }
    }
    // Abilities the role's curriculum expects.
    let curricula = Curricula::shipped();
    let profile = profile::profile(request, host)?;
    let have: std::collections::BTreeSet<String> = plugins
        .iter()
        .flat_map(|p| p["provides"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_owned))
        .chain(profile.capabilities.keys().cloned())
        .collect();
    match curricula.role(&request.agent.role) {
        Some(role) => {
            for ability in role.abilities.iter().filter(|a| !have.contains(*a)) {
                let offered = !host.plugins_providing(ability)?.is_empty();
                s.findings.push(Finding {
                    severity: if offered { "MEDIUM" } else { "LOW" },
                    id: "missing-ability".into(),
                    message: format!(
                        "No {ability} — the {} curriculum expects it{}",
                        role.name,
                        if offered {
                            ""
                        } else {
                            " (nothing in the registry provides it)"
                        }
                    ),
                    fix: format!("datum learn --ability {ability}"),
                    effect: format!("+1 ability the {} curriculum expects", role.name),
                });
                s.missing.push((ability.clone(), offered));
            }
        }
        None => s.notes.push(format!(
            "no curriculum for role `{}`",
            shown(&request.agent.role)
        )),
    }
    let unproven: Vec<&str> = profile
        .capabilities
        .iter()
        .filter(|(_, c)| c.confidence < 0.6)
        .map(|(n, _)| n.as_str())
        .collect();
    if !unproven.is_empty() {
        s.findings.push(Finding {
            severity: "INFO",
            id: "unproven-ability".into(),
            message: format!(
                "{} abilities are claimed but unproven (confidence below 0.6): {}",
                unproven.len(),
                unproven.join(", ")
            ),
            fix: format!("datum learn --ability {}", unproven[0]),
            effect: "a confidence measured by its checks".into(),
        });
    }
    if with_bootcamp {
        match crate::bootcamp::progress_of(host, &request.agent.role) {
            Ok((rows, done)) if done < rows.len() => {
                if let Some(r) = rows
                    .iter()
                    .find(|r| r.verdict.state != crate::checks::State::Done)
                {
                    let (n, title, v) = (r.n, &r.title, &r.verdict);
                    s.findings.push(Finding {
                        severity: "LOW",
                        id: "bootcamp".into(),
                        message: format!(
                            "bootcamp {done}/{} — next: exercise {n}, {title}",
                            rows.len()
                        ),
                        fix: format!("datum onboard --progress {}", request.agent.name),
                        effect: format!(
                            "bootcamp {done}/{} → {}/{} ({})",
                            rows.len(),
                            done + 1,
                            rows.len(),
                            v.detail
                        ),
                    });
                }
            }
            Ok(_) => {}
            Err(e) => s.notes.push(format!("bootcamp: {}", e.message)),
        }
    }
    // How the agent compares with the fleet, where there is one.
    match call_opt(host, "fleet", "fleet discover", Map::new()) {
        Ok(Some(found)) => {
            let others: Vec<u64> = found["agents"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["name"] != request.agent.name.as_str())
                .map(|a| a["capability_count"].as_u64().unwrap_or(0))
                .collect();
            if !others.is_empty() {
                let avg = others.iter().sum::<u64>() as f64 / others.len() as f64;
                s.findings.push(Finding {
                    severity: "INFO",
                    id: "fleet-comparison".into(),
                    message: format!(
                        "{} abilities, fleet average is {avg:.1} ({} agents)",
                        profile.capabilities.len(),
                        others.len()
                    ),
                    fix: "datum fleet who --ability NAME".into(),
                    effect: "see who to learn from".into(),
                });
            }
        }
        Ok(None) => {}
        Err(e) => s.notes.push(format!(
            "fleet: {}",
            e.message.lines().next().unwrap_or_default()
        )),
    }
    let rank = |f: &Finding| match f.severity {
        "MEDIUM" => 0,
        "LOW" => 1,
        _ => 2,
    };
    s.findings.sort_by_key(rank);
    Ok(s)
}

pub fn audit(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
    let s = survey(request, host, true)?;
    let (p, t) = checks_total(&s.proofs);
    let mut text = String::from("Gap Analysis:\n");
    if s.findings.is_empty() {
        text.push_str("  no gaps\n");
    }
    for f in &s.findings {
        text.push_str(&format!("  [{}] {}\n", f.severity, f.message));
    }
    text.push_str(&format!(
        "Self-checks: {p}/{t} across {} plugins",
        s.proofs.len()
    ));
    for n in &s.notes {
        text.push_str(&format!("\nnote: {n}"));
    }
    Ok(Output::new(json!({
        "title": "Gap Analysis",
        "findings": s.findings,
        "self_checks": { "passed": p, "total": t },
        "notes": s.notes,
    }))
    .with_text(text))
}

pub fn suggest(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
    let s = survey(request, host, true)?;
    let actions: Vec<Value> = s
        .findings
        .iter()
        .filter(|f| f.id != "fleet-comparison")
        .enumerate()
        .map(|(i, f)| json!({ "rank": i + 1, "severity": f.severity, "action": f.message, "command": f.fix, "effect": f.effect }))
        .collect();
    let mut text = String::new();
    if actions.is_empty() {
        text.push_str("Nothing to suggest: no gaps found.");
    }
    for a in &actions {
        text.push_str(&format!(
            "{}. {} — `{}` ({})\n",
            a["rank"],
            a["action"].as_str().unwrap_or_default(),
            a["command"].as_str().unwrap_or_default(),
            a["effect"].as_str().unwrap_or_default()
        ));
    }
    Ok(
        Output::new(json!({ "suggestions": actions, "notes": s.notes }))
            .with_text(text.trim_end().to_owned()),
    )
}

/// Better or as good: no check lost, no new failure.
fn as_good(after: &Proof, before: &Proof) -> bool {
    after.passed >= before.passed && after.total - after.passed <= before.total - before.passed
}

const REJECTED: &str = "rejected";

pub fn auto(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
    let dry_run = request.arg_bool("dry-run");
    let consent = request.arg_bool("yes");
    let s = survey(request, host, false)?;
    let before = checks_total(&s.proofs);
    // Versions rolled back before are not tried again (until a newer one appears).
    let mut rejected: Map<String, Value> = host
        .kv_get(REJECTED)?
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    let rejected_before = rejected.clone();
    let mut plan = Vec::new();
    for (name, (from, to)) in &s.updates {
        if rejected.get(name).and_then(Value::as_str) == Some(to.as_str()) {
            continue;
        }
        plan.push(("update", name.clone(), from.clone(), to.clone()));
    }
    let mut held_back = Vec::new();
    for (ability, offered) in &s.missing {
        if !offered {
            continue;
        }
        if consent {
            plan.push(("learn", ability.clone(), String::new(), String::new()));
        } else {
            held_back.push(ability.clone());
        }
    }
    let mut lines = vec![format!("Self-checks before: {}/{}", before.0, before.1)];
    if dry_run {
        for (what, name, from, to) in &plan {
            lines.push(match *what {
                "update" => format!(
                    "  would update {name} {from} → {to} (kept only if its checks stay as good)"
                ),
                _ => format!("  would learn {name}"),
            });
        }
        if plan.is_empty() {
            lines.push("  nothing to do".into());
        }
        for a in &held_back {
            lines.push(format!(
                "  {a}: installs a new plugin (new permissions): pass --yes to allow"
            ));
        }
        lines.push("dry run: nothing changed".into());
        return Ok(Output::new(json!({ "dry_run": true, "plan": plan.iter().map(|(w, n, f, t)| json!({"action": w, "name": n, "from": f, "to": t})).collect::<Vec<_>>(), "held_back": held_back })).with_text(lines.join("\n")));
    }

    let mut kept = Vec::new();
    let mut rolled_back = Vec::new();
    let mut proofs = s.proofs.clone();
    let quiet = InstallRequest {
        no_commit: true,
        ..Default::default()
    };
    for (what, name, from, to) in &plan {
        match *what {
            "update" => {
                let Some(old) = proofs.get(name).cloned() else {
                    continue;
                };
                host.install_plugin(
                    &format!("{name}@={to}"),
                    "improve auto: compatible update",
                    &quiet,
                )?;
                let plugin = host
                    .plugins()?
                    .into_iter()
                    .find(|p| p["name"] == name.as_str());
                let after = match &plugin {
                    Some(p) => prove(host, p)?,
                    None => Proof::default(),
                };
                if plugin.is_some() && as_good(&after, &old) {
                    lines.push(format!(
                        "  updated {name} {from} → {to} ({} → {})",
                        old.summary(),
                        after.summary()
                    ));
                    kept.push(json!({"action": "update", "name": name, "from": from, "to": to, "before": old.summary(), "after": after.summary()}));
                    proofs.insert(name.clone(), after);
                    rejected.remove(name);
                } else {
                    host.install_plugin(
                        &format!("{name}@={from}"),
                        "improve auto: roll back a failed update",
                        &quiet,
                    )?;
                    lines.push(format!(
                        "  rolled back {name} {to} → {from}: its checks got worse ({} → {}{})",
                        old.summary(),
                        after.summary(),
                        after
                            .failures
                            .first()
                            .map(|f| format!("; {f}"))
                            .unwrap_or_default()
                    ));
                    rolled_back.push(json!({"action": "update", "name": name, "from": from, "to": to, "before": old.summary(), "after": after.summary()}));
                    rejected.insert(name.clone(), Value::from(to.clone()));
                }
            }
            _ => {
                let offered = host.plugins_providing(name)?;
                let Some(p) = offered
                    .first()
                    .and_then(|p| p["name"].as_str())
                    .map(str::to_owned)
                else {
                    continue;
                };
                let done =
                    host.install_plugin(&p, &format!("improve auto: learn {name}"), &quiet)?;
                let plugin = host
                    .plugins()?
                    .into_iter()
                    .find(|x| x["name"] == p.as_str());
                let after = match &plugin {
                    Some(x) => prove(host, x)?,
                    None => Proof::default(),
                };
                if plugin.is_some() && after.passed == after.total {
                    lines.push(format!(
                        "  learned {name}: {p} {} ({})",
                        done["version"].as_str().unwrap_or_default(),
                        after.summary()
                    ));
                    kept.push(json!({"action": "learn", "name": name, "plugin": p, "after": after.summary()}));
                    proofs.insert(p, after);
                } else {
                    if done["changed"] == true && done["previous"].is_null() {
                        host.remove_plugin(&p)?;
                    }
                    lines.push(format!(
                        "  did not keep {p} for {name}: {}",
                        after.summary()
                    ));
                    rolled_back.push(json!({"action": "learn", "name": name, "plugin": p, "after": after.summary()}));
                }
            }
        }
    }
    if rejected != rejected_before {
        host.kv_set(REJECTED, Value::Object(rejected))?;
    }

    // Re-run self-checks into CAPABILITY.toml: abilities from a plugin carry its version
    // and the confidence its checks earn now.
    let date = today(host)?;
    let profile = profile::profile(request, host)?;
    let installed = host.plugins()?;
    let mut changed_caps = Vec::new();
    for p in &installed {
        let name = p["name"].as_str().unwrap_or_default();
        let Some(proof) = proofs.get(name) else {
            continue;
        };
        for ability in p["provides"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let source = Source::Plugin {
                name: name.to_owned(),
                version: proof.version.clone(),
            };
            let Some(current) = profile.capabilities.get(ability) else {
                continue;
            };
            // Intrinsic claims (boot) become measured ones only through `learn`.
            if matches!(current.source, Source::Intrinsic)
                && !kept.iter().any(|k| k["plugin"] == name)
            {
                continue;
            }
            let confidence = proof.confidence();
            if current.source == source && (current.confidence - confidence).abs() < 1e-9 {
                continue;
            }
            changed_caps.push((
                ability.to_owned(),
                Capability {
                    confidence,
                    stars: stars_for(confidence),
                    learned: Some(date.clone()),
                    source,
                },
            ));
        }
    }
    for k in kept.iter().filter(|k| k["action"] == "learn") {
        let (ability, p) = (
            k["name"].as_str().unwrap_or_default(),
            k["plugin"].as_str().unwrap_or_default(),
        );
        if let Some(proof) = proofs.get(p) {
            changed_caps.push((
                ability.to_owned(),
                Capability {
                    confidence: proof.confidence(),
                    stars: stars_for(proof.confidence()),
                    learned: Some(date.clone()),
                    source: Source::Plugin {
                        name: p.to_owned(),
                        version: proof.version.clone(),
                    },
                },
            ));
        }
    }
    if !changed_caps.is_empty() {
        let mut file = profile::load(request, host)?;
        for (n, c) in &changed_caps {
            file.set_capability(n, c);
        }
        host.write_file(profile::FILE, &file.to_string())?;
    }
    let after = checks_total(&proofs);
    let changed = !kept.is_empty() || !rolled_back.is_empty() || !changed_caps.is_empty();
    let mut commit = false;
    if changed {
        let what: Vec<String> = kept
            .iter()
            .map(|k| match k["action"].as_str() {
                Some("update") => format!(
                    "update {} {} → {}",
                    k["name"].as_str().unwrap_or_default(),
                    k["from"].as_str().unwrap_or_default(),
                    k["to"].as_str().unwrap_or_default()
                ),
                _ => format!("learn {}", k["name"].as_str().unwrap_or_default()),
            })
            .chain(rolled_back.iter().map(|r| {
                format!(
                    "rolled back {} {}",
                    r["name"].as_str().unwrap_or_default(),
                    r["to"].as_str().unwrap_or_default()
                )
            }))
            .chain(
                (!changed_caps.is_empty()).then(|| match changed_caps.len() {
                    1 => "re-proved 1 ability".to_owned(),
                    n => format!("re-proved {n} abilities"),
                }),
            )
            .collect();
        let message = format!(
            "feat: auto-improve: {}\n\nself-checks {}/{} → {}/{}; kept {}, rolled back {}",
            what.join(", "),
            before.0,
            before.1,
            after.0,
            after.1,
            kept.len(),
            rolled_back.len()
        );
        commit = host.git_commit(".", &message)?;
        journal(
            host,
            "IMPROVE",
            &format!(
                "auto-improve: {} (self-checks {}/{} → {}/{})",
                what.join(", "),
                before.0,
                before.1,
                after.0,
                after.1
            ),
            &["improve"],
        )?;
        lines.push(format!("Self-checks after: {}/{}", after.0, after.1));
        lines.push(format!(
            "Committed: feat: auto-improve: {}",
            what.join(", ")
        ));
    } else {
        lines.push("Nothing to improve: every safe change is made and the checks hold.".into());
    }
    for a in &held_back {
        lines.push(format!(
            "  {a}: installs a new plugin (new permissions): pass --yes to allow"
        ));
    }
    Ok(Output::new(json!({
        "before": { "passed": before.0, "total": before.1 },
        "after": { "passed": after.0, "total": after.1 },
        "kept": kept,
        "rolled_back": rolled_back,
        "abilities": changed_caps.iter().map(|(n, c)| json!({"ability": n, "confidence": c.confidence, "source": c.source.to_string()})).collect::<Vec<_>>(),
        "held_back": held_back,
        "committed": commit,
        "notes": s.notes,
    }))
    .with_text(lines.join("\n")))
}
