//! `bootcamp assign | progress | list | curricula` (and `datum onboard`, which the host
//! routes here after it has booted the workshop).

use datum_plugin_api::{Host, Output, PluginError, Request};
use serde_json::{json, Map, Value};

use crate::checks::{Evidence, State};
use crate::curriculum::{folder, page, Curricula, Role, FIRST_RECIPE};
use crate::util::{args, call_opt, journal, read_opt, shown};

const RECIPE: &str = "recipes/bootcamp-first-recipe.md";

pub fn role<'c>(curricula: &'c Curricula, name: &str) -> Result<&'c Role, PluginError> {
    curricula.role(name).ok_or_else(|| {
        PluginError::invalid_args(format!(
            "there is no bootcamp curriculum for role `{}`",
            shown(name)
        ))
        .with_hint(format!("roles: {}", curricula.role_names().join(", ")))
    })
}

/// Steps 4 and 5 of onboarding: the role's bootcamp, then the first task.
pub fn assign(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
    let curricula = Curricula::shipped();
    let agent = &request.agent.name;
    let role = role(&curricula, &request.agent.role)?;
    let plan = curricula.plan(role);
    // Onboarding again (a re-run of `datum onboard`) keeps the bootcamp and does not
    // take a second task.
    let again = read_opt(host, "bootcamp/CURRICULUM.md")?.is_some();
    let mut written = Vec::new();
    for (n, exercise) in &plan {
        let path = format!("{}/TASK.md", folder(*n, exercise));
        // An exercise page the agent already has (a re-run) is left alone.
        if host.create_file(&path, &page(*n, exercise, agent))? {
            written.push(path);
        }
    }
    let mut overview = format!(
        "# Bootcamp — {agent} ({})\n\nThe {} curriculum: an agent who {}.\nProgress is checked from this workshop's evidence: `datum onboard --progress {agent}`.\n\n",
        role.name, role.name, role.summary
    );
    for (n, e) in &plan {
        overview.push_str(&format!("{n}. [{}]({:02}-{}/TASK.md)\n", e.title, n, e.id));
    }
    host.write_file("bootcamp/CURRICULUM.md", &overview)?;
    host.create_file(RECIPE, FIRST_RECIPE)?;
    host.git_commit(
        "bootcamp",
        &format!("bootcamp: {} curriculum for {agent}", role.name),
    )?;
    host.git_commit("recipes", "recipes: the bootcamp's first recipe")?;

    // Step 5: the first task — the fleet's board when one is configured, else the
    // workshop's own TASKBOARD.md.
    let mut notes = Vec::new();
    let first = if again {
        notes.push(
            "already onboarded: no new first task (see `datum fleet tasks mine` or TASKBOARD.md)"
                .into(),
        );
        None
    } else {
        first_task(host, &mut notes)?
    };
    journal(
        host,
        "NOTE",
        &format!(
            "Onboarded as {}: {} bootcamp exercises in bootcamp/{}",
            role.name,
            plan.len(),
            first
                .as_ref()
                .map(|t| format!("; first task: {}", t["title"].as_str().unwrap_or_default()))
                .unwrap_or_default()
        ),
        &["onboarding"],
    )?;
    let lifecycle = host.advance_lifecycle("onboarded")?;

    let mut text = format!(
        "Onboarding {agent} ({})\n  4. bootcamp: {} exercises in bootcamp/ ({} new)\n",
        role.name,
        plan.len(),
        written.len()
    );
    for (n, e) in &plan {
        text.push_str(&format!("       {n}. {}\n", e.title));
    }
    match &first {
        Some(t) => text.push_str(&format!(
            "  5. first task: {} ({})\n",
            shown(t["title"].as_str().unwrap_or_default()),
            t["from"].as_str().unwrap_or_default()
        )),
        None if again => text.push_str("  5. first task: taken at the first onboarding\n"),
        None => text.push_str("  5. first task: none open (add one to TASKBOARD.md)\n"),
    }
    text.push_str(&format!(
        "lifecycle: {lifecycle}\nnext: datum onboard --progress {agent}"
    ));
    for n in &notes {
        text.push_str(&format!("\nnote: {n}"));
    }
    Ok(Output::new(json!({
        "agent": agent,
        "role": role.name,
        "exercises": plan.iter().map(|(n, e)| json!({"n": n, "id": e.id, "title": e.title, "folder": folder(*n, e)})).collect::<Vec<_>>(),
        "written": written,
        "first_task": first,
        "lifecycle": lifecycle,
        "notes": notes,
    }))
    .with_text(text))
}

fn first_task(host: &Host<'_>, notes: &mut Vec<String>) -> Result<Option<Value>, PluginError> {
    match call_opt(host, "fleet", "fleet tasks list", Map::new()) {
        Ok(Some(listing)) => {
            let open = listing["tasks"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["state"] == "open");
            if let Some(t) = open {
                let id = t["id"].as_str().unwrap_or_default().to_owned();
                match host.call_plugin(
                    "fleet",
                    "fleet tasks claim",
                    args(&[("id", Value::from(id.clone()))]),
                ) {
                    Ok(_) => {
                        return Ok(Some(json!({
                            "id": id,
                            "title": format!("{id} {}", t["title"].as_str().unwrap_or_default()),
                            "from": "claimed on the fleet task board",
                        })))
                    }
                    Err(e) => notes.push(format!("could not claim {id}: {}", e.message)),
                }
            }
        }
        Ok(None) => {}
        // No board configured, or it cannot be reached: the local board still counts.
        Err(e) => notes.push(format!(
            "fleet task board: {}",
            e.message.lines().next().unwrap_or_default()
        )),
    }
    let board = read_opt(host, "TASKBOARD.md")?.unwrap_or_default();
    Ok(board
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("- [ ] "))
        .map(|t| json!({ "id": null, "title": t.trim(), "from": "TASKBOARD.md" })))
}

/// One exercise of a curriculum, judged now.
pub struct Row {
    pub n: usize,
    pub id: String,
    pub title: String,
    pub verdict: crate::checks::Verdict,
}

/// Re-run every check of the agent's curriculum against the evidence: the rows and
/// how many are done.
pub fn progress_of(host: &Host<'_>, role_name: &str) -> Result<(Vec<Row>, usize), PluginError> {
    let curricula = Curricula::shipped();
    let role = role(&curricula, role_name)?;
    let mut evidence = Evidence::new(host);
    let mut rows = Vec::new();
    let mut done = 0;
    for (n, exercise) in curricula.plan(role) {
        let verdict = evidence.judge(n, exercise)?;
        done += usize::from(verdict.state == State::Done);
        rows.push(Row {
            n,
            id: exercise.id.clone(),
            title: exercise.title.clone(),
            verdict,
        });
    }
    Ok((rows, done))
}

pub fn progress(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
    let me = &request.agent.name;
    if let Some(other) = request
        .arg_str("agent")
        .filter(|a| !a.is_empty() && a != me)
    {
        return Err(PluginError::invalid_args(format!(
            "`{}` is not this workshop's agent ({me}); progress is computed from an agent's own workshop",
            shown(other)
        ))
        .with_hint(format!("datum onboard --progress {} --workshop DIR_OF_THAT_AGENT", shown(other))));
    }
    let (rows, done) = progress_of(host, &request.agent.role)?;
    let mut text = format!("Bootcamp Progress: {me} ({})\n", request.agent.role);
    for r in &rows {
        text.push_str(&format!(
            "{} Exercise {}: {}\n",
            r.verdict.state.mark(),
            r.n,
            r.title
        ));
    }
    match rows.iter().find(|r| r.verdict.state != State::Done) {
        Some(r) => text.push_str(&format!("next: exercise {} — {}", r.n, r.verdict.detail)),
        None => text.push_str(&format!(
            "bootcamp complete: {done}/{} exercises",
            rows.len()
        )),
    }
    Ok(Output::new(json!({
        "agent": me,
        "role": request.agent.role,
        "done": done,
        "total": rows.len(),
        "exercises": rows.iter().map(|r| json!({"n": r.n, "id": r.id, "title": r.title, "state": r.verdict.state, "detail": r.verdict.detail})).collect::<Vec<_>>(),
    }))
    .with_text(text))
}

/// Participants: this agent (with its bootcamp computed now) and the fleet's agents.
pub fn list(request: &Request, host: &Host<'_>) -> Result<Output, PluginError> {
    let mut rows = Vec::new();
    let me = &request.agent;
    let (progress, note) = match progress_of(host, &me.role) {
        Ok((r, done)) => (Some(format!("{done}/{}", r.len())), None),
        Err(e) => (None, Some(e.message)),
    };
    rows.push(
        json!({"agent": me.name, "role": me.role, "where": "this workshop", "bootcamp": progress}),
    );
    let mut notes: Vec<String> = note.into_iter().collect();
    match call_opt(host, "fleet", "fleet discover", Map::new()) {
        Ok(Some(found)) => {
            for a in found["agents"].as_array().into_iter().flatten() {
                let name = a["name"].as_str().unwrap_or_default();
                if name == me.name {
                    continue;
                }
                rows.push(json!({
                    "agent": shown(name),
                    "role": a["role"].as_str().map(shown),
                    "where": "fleet",
                    "bootcamp": Value::Null,
                }));
            }
        }
        Ok(None) => notes.push("fleet is not installed: only this workshop is listed".into()),
        Err(e) => notes.push(format!(
            "fleet: {}",
            e.message.lines().next().unwrap_or_default()
        )),
    }
    let mut text = format!("Participants ({}):\n", rows.len());
    for r in &rows {
        text.push_str(&format!(
            "  {:<20} {:<14} {:<14} {}\n",
            r["agent"].as_str().unwrap_or_default(),
            r["role"].as_str().unwrap_or("-"),
            r["where"].as_str().unwrap_or_default(),
            r["bootcamp"]
                .as_str()
                .map(|b| format!("bootcamp {b}"))
                .unwrap_or_default()
        ));
    }
    for n in &notes {
        text.push_str(&format!("note: {n}\n"));
    }
    Ok(Output::new(json!({ "participants": rows, "notes": notes }))
        .with_text(text.trim_end().to_owned()))
}

pub fn curricula() -> Result<Output, PluginError> {
    let c = Curricula::shipped();
    let mut text = String::new();
    for r in &c.roles {
        text.push_str(&format!(
            "{} — {}\n  abilities: {}\n",
            r.name,
            r.summary,
            r.abilities.join(", ")
        ));
        for (n, e) in c.plan(r) {
            text.push_str(&format!("  {n}. {}\n", e.title));
        }
    }
    Ok(Output::new(json!({
        "roles": c.roles.iter().map(|r| json!({
            "name": r.name, "summary": r.summary, "abilities": r.abilities,
            "exercises": c.plan(r).iter().map(|(n, e)| json!({"n": n, "id": e.id, "title": e.title, "check": e.check})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    }))
    .with_text(text.trim_end().to_owned()))
}
