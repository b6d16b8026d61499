//! The workshop: a git repository that is an agent's home (tools, journal, tasks,
//! config and the lock file of its plugins).

mod git;
pub mod sync;
mod template;

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::fsutil::{append_line, atomic_write};
use crate::store::{Lock, LOCK_FILE};

pub use git::{commit_all, is_clean};

/// The marker that makes a folder a workshop.
pub const AGENT_FILE: &str = ".superagent/agent.toml";

#[derive(Debug, Clone)]
pub struct Workshop {
    root: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentFile {
    pub agent: AgentSection,
    #[serde(default)]
    pub plugins: PluginsSection,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentSection {
    pub name: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub created: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PluginsSection {
    #[serde(default)]
    pub default: Vec<String>,
}

/// What `create` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Created {
    /// Workshop-relative paths written from the template.
    pub written: Vec<String>,
    /// Template paths left alone because the workshop already had them.
    pub kept: Vec<String>,
    pub new_repository: bool,
}

impl Workshop {
    /// Find the workshop: `--workshop`, then `DATUM_WORKSHOP`, then the current
    /// directory and its parents (as git finds its repository).
    pub fn discover(explicit: Option<&Path>) -> anyhow::Result<Workshop> {
        if let Some(dir) = explicit {
            return Workshop::open(dir).with_context(|| format!("--workshop {}", dir.display()));
        }
        if let Some(dir) = std::env::var_os("DATUM_WORKSHOP").filter(|d| !d.is_empty()) {
            let dir = PathBuf::from(dir);
            return Workshop::open(&dir)
                .with_context(|| format!("DATUM_WORKSHOP={}", dir.display()));
        }
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        for dir in cwd.ancestors() {
            if dir.join(AGENT_FILE).is_file() {
                return Ok(Workshop {
                    root: dir.to_owned(),
                });
            }
        }
        anyhow::bail!(
            "no workshop here: {} and its parents have no {AGENT_FILE}. Create one with `datum boot`, or point at one with --workshop DIR or DATUM_WORKSHOP",
            cwd.display()
        )
    }

    pub fn open(dir: &Path) -> anyhow::Result<Workshop> {
        if !dir.join(AGENT_FILE).is_file() {
            anyhow::bail!(
                "{} is not a workshop (no {AGENT_FILE}); create it with `datum boot --workshop {}`",
                dir.display(),
                dir.display()
            );
        }
        let root = std::fs::canonicalize(dir)
            .with_context(|| format!("cannot resolve {}", dir.display()))?;
        Ok(Workshop { root })
    }

    /// Lay out the workshop from the template without overwriting anything, and make
    /// sure it is a git repository.
    pub fn create(dir: &Path, name: &str, role: &str) -> anyhow::Result<(Workshop, Created)> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let root = std::fs::canonicalize(dir)?;
        let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let mut report = Created::default();
        for file in template::files() {
            let dest = root.join(file.path);
            if dest.exists() {
                report.kept.push(file.path.to_owned());
                continue;
            }
            let text = file
                .contents
                .replace("{{name}}", name)
                .replace("{{role}}", role)
                .replace("{{created}}", &created);
            atomic_write(&dest, text.as_bytes())
                .with_context(|| format!("cannot write {}", dest.display()))?;
            report.written.push(file.path.to_owned());
        }
        report.new_repository = git::ensure_repository(&root)?;
        Ok((Workshop { root }, report))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn agent(&self) -> anyhow::Result<AgentFile> {
        let path = self.root.join(AGENT_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("{} is not valid agent config", path.display()))
    }

    pub fn lock_path(&self) -> PathBuf {
        self.root.join(LOCK_FILE)
    }

    pub fn lock(&self) -> anyhow::Result<Lock> {
        Ok(Lock::load(&self.lock_path())?)
    }

    pub fn save_lock(&self, lock: &Lock) -> anyhow::Result<()> {
        Ok(lock.save(&self.lock_path())?)
    }

    /// Per-plugin key-value store file.
    pub fn kv_path(&self, plugin: &str) -> PathBuf {
        self.root
            .join(".superagent/kv")
            .join(format!("{plugin}.json"))
    }

    /// Append a dated entry to JOURNAL.md.
    pub fn journal(&self, entry: &str) -> anyhow::Result<()> {
        let when = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        append_line(
            &self.root.join("JOURNAL.md"),
            &format!("- {when} — {entry}"),
        )
        .context("cannot append to JOURNAL.md")
    }

    /// Append a line to TRAIL.md (the history of changes to the workshop).
    pub fn trail(&self, entry: &str) -> anyhow::Result<()> {
        let when = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        append_line(&self.root.join("TRAIL.md"), &format!("- {when} {entry}"))
            .context("cannot append to TRAIL.md")
    }

    /// Commit every change in the workshop.
    pub fn commit(&self, message: &str) -> anyhow::Result<Option<String>> {
        commit_all(&self.root, message)
    }

    /// Template paths that are missing (for `datum status`).
    pub fn missing_layout(&self) -> Vec<&'static str> {
        template::files()
            .filter(|f| !self.root.join(f.path).exists())
            .map(|f| f.path)
            .collect()
    }
}
