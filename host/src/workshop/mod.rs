//! The workshop: a git repository that is an agent's home (tools, journal, tasks,
//! config and the lock file of its plugins).

mod git;
mod lock;
mod staged;
pub mod sync;
mod template;

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::confined::{Folder, MAX_FILE};

pub use git::{commit_all, commit_path, is_clean, with_write_lock};
pub use lock::{Lock, LockError, LockedPlugin, LOCK_FILE};
pub use staged::Staged;

/// The marker that makes a folder a workshop.
pub const AGENT_FILE: &str = ".superagent/agent.toml";

/// Per-plugin key-value stores (`<plugin>.json`).
pub const KV_DIR: &str = ".superagent/kv";

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
    /// Where the agent is in its life: booted, onboarded, working. Only ever moves
    /// forward ([`Workshop::advance_lifecycle`]).
    #[serde(default)]
    pub lifecycle: Lifecycle,
}

/// `uninitialized → onboarded → active` (a step may be skipped, never undone).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    #[default]
    Uninitialized,
    Onboarded,
    Active,
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Uninitialized => "uninitialized",
            Lifecycle::Onboarded => "onboarded",
            Lifecycle::Active => "active",
        }
    }

    pub fn parse(s: &str) -> Option<Lifecycle> {
        match s {
            "uninitialized" => Some(Lifecycle::Uninitialized),
            "onboarded" => Some(Lifecycle::Onboarded),
            "active" => Some(Lifecycle::Active),
            _ => None,
        }
    }
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

/// How [`Workshop::record_lock_change`] records a change.
#[derive(Debug, Clone)]
pub struct LockChange {
    /// Journal entries, appended in one write.
    pub journal: Vec<String>,
    /// Trail entries, appended in one write.
    pub trail: Vec<String>,
    /// The commit message; `None` leaves the change uncommitted.
    pub commit: Option<String>,
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
        let folder = Folder::open(&root)?;
        let mut report = Created::default();
        // The template in one pass (no-clobber: what the folder already has is kept).
        let mut texts = Vec::new();
        for file in template::files() {
            if folder.exists(Path::new(file.path)) {
                report.kept.push(file.path.to_owned());
                continue;
            }
            // Quoted placeholders (`"{{role}}"` in agent.toml) become TOML strings written
            // by the serializer, so no quote or newline in a value can add keys.
            let mut text = file.contents.to_owned();
            for (key, value) in [("name", name), ("role", role), ("created", &created)] {
                let quoted = toml::Value::String(value.to_owned()).to_string();
                text = text
                    .replace(&format!("\"{{{{{key}}}}}\""), &quoted)
                    .replace(&format!("{{{{{key}}}}}"), value);
            }
            texts.push((file.path, text));
        }
        let batch: Vec<(&Path, &[u8])> = texts
            .iter()
            .map(|(path, text)| (Path::new(*path), text.as_bytes()))
            .collect();
        let outcome = folder.create_all(&batch).with_context(|| {
            format!("cannot write the workshop template into {}", root.display())
        })?;
        for ((path, _), created) in texts.iter().zip(outcome) {
            if created {
                report.written.push((*path).to_owned());
            } else {
                report.kept.push((*path).to_owned());
            }
        }
        report.new_repository = git::ensure_repository(&root)?;
        Ok((Workshop { root }, report))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The workshop opened as a capability: nothing the workshop holds (a link, a
    /// `..`) can make datum read or write outside it.
    pub fn folder(&self) -> anyhow::Result<Folder> {
        Folder::open(&self.root).with_context(|| format!("cannot open {}", self.root.display()))
    }

    /// A workshop file as text, bounded, never through a link that leaves the workshop.
    fn read_text(&self, rel: &str) -> std::io::Result<String> {
        let bytes = Folder::open(&self.root)?.read(Path::new(rel), MAX_FILE)?;
        String::from_utf8(bytes).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{rel} is not UTF-8"),
            )
        })
    }

    pub fn agent(&self) -> anyhow::Result<AgentFile> {
        let path = self.root.join(AGENT_FILE);
        let text = self
            .read_text(AGENT_FILE)
            .with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text).with_context(|| {
            format!(
                "{} is not valid agent config; restore it with `git -C {} checkout -- {AGENT_FILE}`",
                path.display(),
                self.root.display()
            )
        })
    }

    pub fn lock_path(&self) -> PathBuf {
        self.root.join(LOCK_FILE)
    }

    /// The lock, every field validated (a cloned workshop is untrusted input).
    pub fn lock(&self) -> anyhow::Result<Lock> {
        let label = self.lock_path().display().to_string();
        match self.read_text(LOCK_FILE) {
            Ok(text) => Ok(Lock::parse(&text, &label)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lock::empty()),
            Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read {label}"))),
        }
    }

    /// Record one change to the plugin set, always in this order: the lock saved, the
    /// journal line (what the agent learned or forgot), the trail line (the command
    /// that did it), then one commit of all of it (unless `commit` is `None`, when the
    /// caller commits several changes as one). Returns the commit.
    pub fn record_lock_change(
        &self,
        lock: &Lock,
        change: &LockChange,
    ) -> anyhow::Result<Option<String>> {
        self.save_lock(lock)?;
        self.journal_all(&change.journal)?;
        self.trail_all(&change.trail)?;
        match &change.commit {
            Some(message) => self.commit(message),
            None => Ok(None),
        }
    }

    pub fn save_lock(&self, lock: &Lock) -> anyhow::Result<()> {
        let text = lock.to_text()?;
        self.folder()?
            .write(Path::new(LOCK_FILE), text.as_bytes())
            .with_context(|| format!("cannot write {}", self.lock_path().display()))
    }

    /// Move the agent's lifecycle forward to `to` (never back), editing agent.toml in
    /// place (comments and other keys kept) and committing it. Returns the state after.
    pub fn advance_lifecycle(&self, to: Lifecycle) -> anyhow::Result<Lifecycle> {
        let current = self.agent()?.agent.lifecycle;
        if to <= current {
            return Ok(current);
        }
        let text = self.read_text(AGENT_FILE)?;
        let mut doc: toml_edit::DocumentMut = text
            .parse()
            .with_context(|| format!("{AGENT_FILE} is not valid TOML"))?;
        doc["agent"]["lifecycle"] = toml_edit::value(to.as_str());
        self.folder()?
            .write(Path::new(AGENT_FILE), doc.to_string().as_bytes())
            .with_context(|| format!("cannot write {AGENT_FILE}"))?;
        commit_path(
            &self.root,
            AGENT_FILE,
            &format!("lifecycle: {}", to.as_str()),
        )?;
        Ok(to)
    }

    /// Give the agent a role (onboarding). Edited in place like the lifecycle; the
    /// caller commits. Only before onboarding: an onboarded agent keeps its role.
    pub fn set_role(&self, role: &str) -> anyhow::Result<()> {
        let agent = self.agent()?.agent;
        if agent.role == role {
            return Ok(());
        }
        if agent.lifecycle != Lifecycle::Uninitialized {
            anyhow::bail!(
                "agent `{}` is already {} as a {}; a role is chosen once, at onboarding",
                agent.name,
                agent.lifecycle.as_str(),
                agent.role
            );
        }
        let text = self.read_text(AGENT_FILE)?;
        let mut doc: toml_edit::DocumentMut = text
            .parse()
            .with_context(|| format!("{AGENT_FILE} is not valid TOML"))?;
        doc["agent"]["role"] = toml_edit::value(role);
        self.folder()?
            .write(Path::new(AGENT_FILE), doc.to_string().as_bytes())
            .with_context(|| format!("cannot write {AGENT_FILE}"))
    }

    /// Append a dated entry to JOURNAL.md.
    pub fn journal(&self, entry: &str) -> anyhow::Result<()> {
        self.journal_all(std::slice::from_ref(&entry))
    }

    /// Several journal entries in one durable append (nothing when there are none).
    pub fn journal_all(&self, entries: &[impl AsRef<str>]) -> anyhow::Result<()> {
        self.append_entries("JOURNAL.md", "— ", entries)
    }

    /// Append a line to TRAIL.md (the history of changes to the workshop).
    pub fn trail(&self, entry: &str) -> anyhow::Result<()> {
        self.trail_all(std::slice::from_ref(&entry))
    }

    /// Several trail entries in one durable append (nothing when there are none).
    pub fn trail_all(&self, entries: &[impl AsRef<str>]) -> anyhow::Result<()> {
        self.append_entries("TRAIL.md", "", entries)
    }

    /// `- TIME SEP ENTRY` lines, one write and one sync for all of them.
    fn append_entries(
        &self,
        file: &str,
        separator: &str,
        entries: &[impl AsRef<str>],
    ) -> anyhow::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let when = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        let lines: Vec<String> = entries
            .iter()
            .map(|e| format!("- {when} {separator}{}", e.as_ref()))
            .collect();
        self.folder()?
            .append_line(Path::new(file), &lines.join("\n"))
            .with_context(|| format!("cannot append to {file}"))
    }

    /// Commit every change in the workshop.
    pub fn commit(&self, message: &str) -> anyhow::Result<Option<String>> {
        commit_all(&self.root, message)
    }

    /// Template paths that are missing (for `datum status`).
    pub fn missing_layout(&self) -> Vec<&'static str> {
        let Ok(folder) = Folder::open(&self.root) else {
            return template::files().map(|f| f.path).collect();
        };
        template::files()
            .filter(|f| !folder.exists(Path::new(f.path)))
            .map(|f| f.path)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_new_workshop_is_committed_as_one_pack_that_git_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let (ws, created) = Workshop::create(&dir.path().join("ada"), "ada", "researcher").unwrap();
        assert!(created.new_repository);
        let first = commit_all(ws.root(), "boot ada").unwrap().unwrap();
        let git = ws.root().join(".git/objects");
        let loose = std::fs::read_dir(&git)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().len() == 2)
            .count();
        assert_eq!(loose, 0, "no loose objects: the first commit is one pack");
        let repo = git2::Repository::open(ws.root()).unwrap();
        let head = repo.head().unwrap().peel_to_commit().unwrap();
        assert_eq!(head.id().to_string(), first);
        assert_eq!(head.message().unwrap(), "boot ada");
        assert!(head.parent_count() == 0);
        // Every file of the template is in the commit, readable from the pack.
        for file in template::files() {
            let entry = head.tree().unwrap().get_path(Path::new(file.path)).unwrap();
            let blob = repo.find_blob(entry.id()).unwrap();
            assert!(!blob.content().is_empty(), "{}", file.path);
        }
        assert!(
            is_clean(ws.root()).unwrap(),
            "index and HEAD agree with the files"
        );
        // HEAD's log records the commit as git would.
        let reflog = repo.reflog("HEAD").unwrap();
        assert_eq!(
            reflog.get(0).unwrap().message().unwrap(),
            Some("commit (initial): boot ada")
        );
        // Nothing new: no commit. Later commits build on it.
        assert_eq!(commit_all(ws.root(), "again").unwrap(), None);
        // A lost index is rebuilt without a commit (HEAD already has that tree).
        std::fs::remove_file(ws.root().join(".git/index")).unwrap();
        assert_eq!(commit_all(ws.root(), "index lost").unwrap(), None);
        assert!(is_clean(ws.root()).unwrap());
        ws.journal("a first entry").unwrap();
        let second = commit_all(ws.root(), "journal").unwrap().unwrap();
        let head = repo.head().unwrap().peel_to_commit().unwrap();
        assert_eq!(head.id().to_string(), second);
        assert_eq!(head.parent_id(0).unwrap().to_string(), first);
    }

    #[test]
    fn the_lifecycle_only_moves_forward_and_keeps_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (ws, _) = Workshop::create(&dir.path().join("ada"), "ada", "researcher").unwrap();
        crate::workshop::commit_all(ws.root(), "boot").unwrap();
        assert_eq!(
            ws.agent().unwrap().agent.lifecycle,
            Lifecycle::Uninitialized
        );
        assert_eq!(
            ws.advance_lifecycle(Lifecycle::Active).unwrap(),
            Lifecycle::Active
        );
        // Never back: asking for an earlier state changes nothing.
        assert_eq!(
            ws.advance_lifecycle(Lifecycle::Onboarded).unwrap(),
            Lifecycle::Active
        );
        let text = ws.read_text(AGENT_FILE).unwrap();
        assert!(text.contains("lifecycle = \"active\""), "{text}");
        assert!(
            text.contains("# uninitialized → onboarded → active"),
            "comments kept: {text}"
        );
        assert_eq!(ws.agent().unwrap().agent.role, "researcher");
        assert!(is_clean(ws.root()).unwrap(), "the change is committed");
    }
}
