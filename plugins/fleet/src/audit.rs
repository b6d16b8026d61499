//! `datum workflow fleet-audit`: scan → classify → run every published FLUX vector
//! suite and program through flux-vm (`call:flux-vm`) → one markdown report in the
//! workshop's `reports/`, committed → optionally a summary bottle (`call:mib`).

use datum_plugin_api::FileArg;
use serde_json::{json, Map, Value};

use crate::error::FleetError;
use crate::scan::{self, Health};
use crate::Cx;

/// The outcome of one repository's FLUX files.
struct FluxRun {
    repo: String,
    /// `(file, passed, total)` per vector suite; `(file, ok)` per program.
    suites: Vec<(String, u64, u64)>,
    programs: Vec<(String, bool)>,
    problems: Vec<String>,
}

pub(crate) fn fleet_audit(cx: &Cx<'_>) -> Result<datum_plugin_api::Output, FleetError> {
    let say = |line: String| {
        if !cx.json() {
            // Progress as it happens; a closed stdout only loses the progress.
            let _ = cx.host.emit(&line);
        }
    };
    let mut chosen = cx.choose()?;
    let label = chosen.source().label();
    let listing = cx.list(&mut chosen)?;
    say(format!(
        "Step 1: Scan all repos ({} found in {label})",
        listing.repos.len()
    ));
    let now = cx.now()?;
    let report = scan::scan(label.clone(), &listing, now);
    let count = |h| report.counts.get(&h).copied().unwrap_or(0);
    say(format!(
        "Step 2: Classify health (green: {}, yellow: {}, red: {}, dead: {})",
        count(Health::Green),
        count(Health::Yellow),
        count(Health::Red),
        count(Health::Dead)
    ));
    let flux_repos: Vec<&crate::source::Repo> = listing
        .repos
        .iter()
        .filter(|r| r.has_flux && !r.archived)
        .collect();
    say(format!("Step 3: Run conformance on all FLUX runtimes ({} repositories publish vectors or programs)", flux_repos.len()));
    let mut runs = Vec::new();
    // A bar on a terminal (stderr, so piped output stays clean); nothing otherwise.
    let bar = if !cx.json() && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let bar = indicatif::ProgressBar::new(flux_repos.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template("  {bar:30} {pos}/{len} {msg}") {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    for repo in &flux_repos {
        bar.set_message(capability::shown(&repo.name));
        runs.push(run_flux(cx, chosen.source(), repo));
        bar.inc(1);
    }
    bar.finish_and_clear();
    say("Step 4: Generate cross-runtime compatibility report".into());
    let today = cx.today()?;
    let markdown = render(&label, &today, &report, &runs);
    let slug: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .take(6)
        .collect::<Vec<_>>()
        .join("-");
    // Never overwrite an earlier report of the same day: the next free name.
    let mut path = String::new();
    for n in 1..1000 {
        let candidate = if n == 1 {
            format!("reports/fleet-audit-{slug}-{today}.md")
        } else {
            format!("reports/fleet-audit-{slug}-{today}-{n}.md")
        };
        if cx.host.create_file(&candidate, &markdown)? {
            path = candidate;
            break;
        }
    }
    if path.is_empty() {
        return Err(FleetError::failed(
            "reports/ already holds 999 audits for today",
            "move some out of reports/",
        ));
    }
    let mut notified = None;
    if let Some(agent) = cx.arg("notify") {
        say(format!(
            "Step 5: Drop summary bottle to {}",
            capability::shown(agent)
        ));
        let mut args = Map::new();
        args.insert("agent".into(), json!(agent));
        args.insert(
            "subject".into(),
            json!(format!(
                "Fleet audit of {label}: {} repositories",
                report.repositories
            )),
        );
        args.insert("body".into(), json!(summary(&report, &runs, &path)));
        args.insert("type".into(), json!("deliverable"));
        let v = cx.host.call_plugin("mib", "bottle drop", args)?;
        notified = Some(v);
    }
    let step = if notified.is_some() { 6 } else { 5 };
    let committed = cx
        .host
        .git_commit("reports", &format!("fleet audit of {label} ({today})"))?;
    say(format!(
        "Step {step}: Commit report to the workshop ({path})"
    ));
    let data = json!({
        "source": label,
        "report_path": path,
        "committed": committed,
        "scan": report,
        "flux": runs.iter().map(|r| json!({
            "repo": r.repo,
            "suites": r.suites.iter().map(|(f, p, t)| json!({"file": f, "passed": p, "total": t})).collect::<Vec<_>>(),
            "programs": r.programs.iter().map(|(f, ok)| json!({"file": f, "ok": ok})).collect::<Vec<_>>(),
            "problems": r.problems,
        })).collect::<Vec<_>>(),
        "notified": notified,
    });
    Ok(datum_plugin_api::Output::new(data).with_text(format!("Report: {path}")))
}

fn run_flux(
    cx: &Cx<'_>,
    source: &mut dyn crate::source::Source,
    repo: &crate::source::Repo,
) -> FluxRun {
    let mut run = FluxRun {
        repo: capability::shown(&repo.name),
        suites: Vec::new(),
        programs: Vec::new(),
        problems: Vec::new(),
    };
    let files = match source.flux_files(repo) {
        Ok(f) => f,
        Err(e) => {
            run.problems.push(e.to_string());
            return run;
        }
    };
    let label = |path: &str| format!("{}/{path}", repo.name);
    let mut programs = Vec::new();
    for (path, text) in &files {
        if path.starts_with("vectors/") {
            let mut args = Map::new();
            args.insert(
                "vectors".into(),
                FileArg::to_value(&label(path), text.as_bytes()),
            );
            // Report, do not fail: a failing suite is a finding, not an error.
            args.insert("_report_only".into(), Value::Bool(true));
            match cx.host.call_plugin("flux-vm", "flux conformance", args) {
                Ok(v) => {
                    let (mut passed, mut total) = (0, 0);
                    for s in v["suites"].as_array().into_iter().flatten() {
                        passed += s["passed"].as_u64().unwrap_or(0);
                        total += s["total"].as_u64().unwrap_or(0);
                    }
                    run.suites.push((path.clone(), passed, total));
                }
                Err(e) => run
                    .problems
                    .push(format!("{path}: {}", capability::shown(&e.message))),
            }
        } else {
            programs.push((path.clone(), text.clone()));
        }
    }
    for (path, text) in programs {
        let mut args = Map::new();
        args.insert(
            "files".into(),
            Value::Array(vec![FileArg::to_value(&label(&path), text.as_bytes())]),
        );
        let ok = cx
            .host
            .call_plugin("flux-vm", "flux validate", args)
            .is_ok();
        run.programs.push((path, ok));
    }
    run
}

fn render(label: &str, today: &str, report: &scan::Report, runs: &[FluxRun]) -> String {
    let c = |h| report.counts.get(&h).copied().unwrap_or(0);
    let mut md = format!(
        "# Fleet audit: {label}\n\n{today} · {} repositories{}\n\n## Health\n\n| class | repositories |\n|---|---|\n| green | {} |\n| yellow | {} |\n| red | {} |\n| dead | {} |\n\nRules: dead = archived, empty or no push for {} days; red = no push for {} days, CAPABILITY.toml unreadable, or neither README nor LICENSE; yellow = no README, no LICENSE, no push for {} days, or CAPABILITY.toml warnings.\n\n",
        report.repositories,
        if report.complete { "" } else { " (INCOMPLETE: see warnings)" },
        c(Health::Green),
        c(Health::Yellow),
        c(Health::Red),
        c(Health::Dead),
        scan::DEAD_DAYS,
        scan::RED_DAYS,
        scan::YELLOW_DAYS,
    );
    let flagged: Vec<&scan::Judged> = report
        .repos
        .iter()
        .filter(|j| j.health != Health::Green)
        .collect();
    if !flagged.is_empty() {
        md.push_str("| repository | class | why |\n|---|---|---|\n");
        for j in flagged {
            md.push_str(&format!(
                "| {} | {} | {} |\n",
                cell(&j.repo),
                j.health.as_str(),
                cell(&j.reasons.join("; "))
            ));
        }
        md.push('\n');
    }
    md.push_str("## FLUX conformance (flux-vm)\n\n");
    if runs.is_empty() {
        md.push_str("No repository publishes FLUX vectors (`vectors/*.json`) or programs (`programs/*.flux`).\n\n");
    } else {
        md.push_str("| repository | file | result |\n|---|---|---|\n");
        for r in runs {
            for (file, passed, total) in &r.suites {
                let mark = if passed == total { "✅" } else { "❌" };
                md.push_str(&format!(
                    "| {} | {} | {mark} {passed}/{total} vectors pass |\n",
                    cell(&r.repo),
                    cell(file)
                ));
            }
            for (file, ok) in &r.programs {
                md.push_str(&format!(
                    "| {} | {} | {} |\n",
                    cell(&r.repo),
                    cell(file),
                    if *ok { "✅ valid" } else { "❌ invalid" }
                ));
            }
            for p in &r.problems {
                md.push_str(&format!("| {} | — | ⚠ {} |\n", cell(&r.repo), cell(p)));
            }
        }
        md.push('\n');
    }
    if !report.warnings.is_empty() {
        md.push_str("## Warnings\n\n");
        for w in &report.warnings {
            md.push_str(&format!("- {}\n", cell(w)));
        }
    }
    md
}

/// Text from other repositories inside a markdown table cell: one line, no pipes.
fn cell(s: &str) -> String {
    capability::shown(s)
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

fn summary(report: &scan::Report, runs: &[FluxRun], path: &str) -> String {
    let c = |h| report.counts.get(&h).copied().unwrap_or(0);
    let failing = runs
        .iter()
        .filter(|r| r.suites.iter().any(|(_, p, t)| p != t) || r.programs.iter().any(|(_, ok)| !ok))
        .count();
    format!(
        "Health: green {}, yellow {}, red {}, dead {}.\nFLUX: {} repositories audited, {failing} with failures.\nFull report: {path}\n",
        c(Health::Green),
        c(Health::Yellow),
        c(Health::Red),
        c(Health::Dead),
        runs.len()
    )
}
