//! `datum audit`: a workshop's health as findings, each with a severity, an id, what is
//! wrong and the command that fixes it. Exit non-zero when any finding is an error.
//!
//! It checks what only the host can vouch for — the layout against the template, git
//! cleanliness, every locked artifact against the store (a plugin the runtime refused
//! to load is an error), compatible updates in the registry, grants wider than their
//! manifest asks — and the agent's own records: CAPABILITY.toml, the journal's age,
//! unread bottles (through mib, when installed).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;
use serde_json::{json, Value};

use super::Context;
use crate::runtime::Runtime;
use crate::workshop::is_clean;

/// A journal untouched for longer than this is worth a note.
const STALE_JOURNAL_DAYS: u64 = 14;

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// The workshop to audit (default: the current one).
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// Also write the report as markdown to this file.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub id: String,
    pub message: String,
    pub fix: String,
}

impl Severity {
    fn label(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Warning => "WARN",
            Severity::Info => "INFO",
        }
    }
}

fn finding(severity: Severity, id: &str, message: String, fix: String) -> Finding {
    Finding {
        severity,
        id: id.to_owned(),
        message,
        fix,
    }
}

pub fn run(ctx: &Context, args: AuditArgs) -> anyhow::Result<()> {
    let workshop = match &args.path {
        Some(p) => crate::workshop::Workshop::open(p)
            .with_context(|| format!("{} is not a workshop", p.display()))?,
        None => ctx.workshop()?,
    };
    let home = ctx.home()?;
    let runtime = Runtime::open(home.clone(), workshop.clone())?;
    let mut findings = Vec::new();

    for m in workshop.missing_layout() {
        findings.push(finding(
            Severity::Warning,
            "layout-missing",
            format!("{m} is missing from the workshop"),
            "datum boot (restores the template's files, keeping yours)".into(),
        ));
    }
    match is_clean(workshop.root()) {
        Ok(true) => {}
        Ok(false) => findings.push(finding(
            Severity::Warning,
            "git-uncommitted",
            "the workshop has uncommitted changes".into(),
            format!(
                "git -C {} status, then commit or discard them",
                workshop.root().display()
            ),
        )),
        Err(e) => findings.push(finding(
            Severity::Error,
            "git-unreadable",
            format!("the workshop's git history cannot be read: {e}"),
            "check the .git folder (git fsck)".into(),
        )),
    }
    for (p, why) in &runtime.skipped {
        findings.push(finding(
            Severity::Error,
            "plugin-unavailable",
            format!("{} {} cannot be loaded: {why}", p.name, p.version),
            format!("datum plugin install {} --force", p.name),
        ));
    }
    // Every locked artifact against the store: re-hashed unless unchanged since it
    // last passed (the store's own check, the one loading uses).
    let store = crate::store::Store::new(home.store());
    for p in runtime.installed() {
        if let Err(e) = store.verified_artifact(&p.locked.sha256, p.locked.kind) {
            findings.push(finding(
                Severity::Error,
                "plugin-unavailable",
                format!("{} {}: {e}", p.locked.name, p.locked.version),
                format!("datum plugin install {} --force", p.locked.name),
            ));
        }
    }
    for p in runtime.installed() {
        let asked: Vec<datum_plugin_api::Grant> = p
            .manifest
            .permissions
            .iter()
            .filter_map(|p| p.as_grant().ok())
            .collect();
        for g in p.locked.grants.iter().filter(|g| !asked.contains(g)) {
            findings.push(finding(
                Severity::Warning,
                "grant-wider",
                format!(
                    "{} holds `{g}`, which its manifest does not ask for",
                    p.locked.name
                ),
                format!("datum plugin revoke {} {g}", p.locked.name),
            ));
        }
    }
    match ctx.open_registry(&home) {
        Ok(registry) => {
            for p in runtime.installed() {
                let Ok(req) = semver::VersionReq::parse(&format!("^{}", p.locked.version)) else {
                    continue;
                };
                if let Ok(newest) = registry.resolve(
                    &p.locked.name,
                    &req,
                    p.locked.kind,
                    &crate::loader::api_version(),
                ) {
                    if newest.version.version > p.locked.version {
                        findings.push(finding(
                            Severity::Info,
                            "plugin-update",
                            format!(
                                "{} {} → {} is available (compatible)",
                                p.locked.name, p.locked.version, newest.version.version
                            ),
                            format!("datum plugin update {}", p.locked.name),
                        ));
                    }
                }
            }
        }
        Err(e) => findings.push(finding(
            Severity::Info,
            "registry-unreachable",
            format!("updates were not checked: {e:#}"),
            "pass --registry SPEC, or check the registry".into(),
        )),
    }
    capability_findings(workshop.root(), &mut findings);
    journal_findings(workshop.root(), &mut findings);
    if runtime.installed().iter().any(|p| p.locked.name == "mib") {
        let request = runtime.request("bottle check");
        if let Ok(out) = runtime.invoke("mib", request) {
            let unread = out.data["unread"].as_u64().unwrap_or(0);
            if unread > 0 {
                findings.push(finding(
                    Severity::Info,
                    "bottles-unread",
                    format!("{unread} unread bottle(s)"),
                    "datum bottle check".into(),
                ));
            }
        }
    }

    findings.sort_by(|a, b| a.severity.cmp(&b.severity).then(a.id.cmp(&b.id)));
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    let (errors, warnings, infos) = (
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info),
    );
    let data = json!({
        "title": "Workshop Audit",
        "workshop": workshop.root(),
        "findings": findings,
        "summary": { "errors": errors, "warnings": warnings, "info": infos, "plugins": runtime.installed().len() + runtime.skipped.len(), "ok": errors == 0 },
    });
    if let Some(path) = &args.markdown {
        std::fs::write(path, markdown(&data, &findings))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    ctx.reporter.emit(&data, || {
        let mut s = format!("Workshop Audit — {}\n", workshop.root().display());
        if findings.is_empty() {
            s.push_str("all clear\n");
        }
        for f in &findings {
            s.push_str(&format!(
                "  [{}] {} — {}\n      fix: {}\n",
                f.severity.label(),
                f.id,
                f.message,
                f.fix
            ));
        }
        s.push_str(&format!(
            "{errors} error(s), {warnings} warning(s), {infos} note(s)"
        ));
        s
    })?;
    if errors > 0 {
        return Err(super::Reported(format!("the audit found {errors} error(s)")).into());
    }
    Ok(())
}

fn capability_findings(root: &Path, findings: &mut Vec<Finding>) {
    let text = crate::confined::Folder::open(root).and_then(|f| {
        f.read(
            Path::new(capability::FILE_NAME),
            capability::MAX_BYTES as u64,
        )
    });
    match text {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => findings.push(finding(
            Severity::Warning,
            "capability-missing",
            format!(
                "{} is missing: other agents cannot see what this one can do",
                capability::FILE_NAME
            ),
            "datum boot (writes one from the installed plugins)".into(),
        )),
        Err(e) => findings.push(finding(
            Severity::Error,
            "capability-unreadable",
            format!("{} cannot be read: {e}", capability::FILE_NAME),
            format!("fix or remove {}", capability::FILE_NAME),
        )),
        Ok(bytes) => match std::str::from_utf8(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|t| capability::CapabilityFile::parse(t).map_err(|e| e.to_string()))
        {
            Err(e) => findings.push(finding(
                Severity::Error,
                "capability-invalid",
                e,
                format!(
                    "fix {} (its schema: plugins/capability/schema.json)",
                    capability::FILE_NAME
                ),
            )),
            Ok(file) => {
                for w in file.profile().1 {
                    findings.push(finding(
                        Severity::Warning,
                        "capability-warning",
                        w.to_string(),
                        format!("fix {}", capability::FILE_NAME),
                    ));
                }
            }
        },
    }
}

fn journal_findings(root: &Path, findings: &mut Vec<Finding>) {
    let Ok(bytes) = crate::confined::Folder::open(root)
        .and_then(|f| f.read(Path::new("JOURNAL.md"), crate::confined::MAX_FILE))
    else {
        return;
    };
    let text = String::from_utf8_lossy(&bytes);
    let last = text
        .lines()
        .filter_map(|l| l.strip_prefix("- ")?.split_once(' ').map(|(w, _)| w))
        .filter_map(|w| humantime::parse_rfc3339_weak(w).ok())
        .max();
    let age = last
        .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
        .map(|d| d.as_secs() / 86_400);
    match age {
        None => findings.push(finding(
            Severity::Info,
            "journal-empty",
            "the journal has no entries".into(),
            "datum journal add NOTE \"…\"".into(),
        )),
        Some(d) if d > STALE_JOURNAL_DAYS => findings.push(finding(
            Severity::Info,
            "journal-stale",
            format!("the journal's last entry is {d} days old"),
            "datum journal add NOTE \"…\"".into(),
        )),
        _ => {}
    }
}

fn markdown(data: &Value, findings: &[Finding]) -> String {
    let mut md = format!(
        "# Workshop Audit\n\n{}\n\n",
        data["workshop"].as_str().unwrap_or_default()
    );
    if findings.is_empty() {
        md.push_str("All clear.\n");
    } else {
        md.push_str("| severity | id | finding | fix |\n|---|---|---|---|\n");
        for f in findings {
            let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
            md.push_str(&format!(
                "| {} | {} | {} | `{}` |\n",
                f.severity.label(),
                f.id,
                cell(&f.message),
                cell(&f.fix)
            ));
        }
    }
    md.push_str(&format!("\n{}\n", data["summary"]));
    md
}
