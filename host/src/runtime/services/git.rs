//! The workshop's git history, for the folders a `git:` grant covers: commit, sync
//! through a remote, read the log.

use datum_plugin_api::{ErrorKind, PluginError};
use serde_json::{json, Value};

use super::{host_err, Caller};

/// `git.sync`: commit the folder, then pull from and push to `remote` (`origin`).
/// Git may only write beneath the granted folder; `sync_folder` opens it as a
/// capability and refuses every remote name that could leave it.
pub fn sync(
    caller: &Caller,
    rel: &str,
    remote: Option<&str>,
    message: &str,
) -> Result<Value, PluginError> {
    crate::workshop::sync::sync_folder(&caller.workshop, rel, remote, message)
        .map(|report| serde_json::to_value(report).unwrap_or(Value::Null))
        .map_err(|e| {
            PluginError::new(ErrorKind::HostService, format!("{e:#}")).with_hint(
                "check the remote with `git -C WORKSHOP remote -v`, or pass --remote PATH_OR_URL",
            )
        })
}

/// `git.commit`: `.` commits the whole workshop (API 1.5; needs `git:.`).
pub fn commit(caller: &Caller, rel: &str, message: &str) -> Result<Value, PluginError> {
    let commit = if rel == "." {
        crate::workshop::Workshop::open(&caller.workshop).and_then(|w| w.commit(message))
    } else {
        crate::workshop::commit_path(&caller.workshop, rel, message)
    };
    commit
        .map(|id| json!({ "committed": id.is_some(), "commit": id }))
        .map_err(|e| {
            PluginError::new(ErrorKind::HostService, format!("{e:#}"))
                .with_hint("check that the workshop is a git repository (`datum status`)")
        })
}

/// `git.log`: commits touching `rel` ("." = all), newest first.
pub fn log(root: &std::path::Path, rel: &str, limit: u64) -> Result<Value, PluginError> {
    let limit = limit.min(10_000) as usize;
    let fail = |e: git2::Error| {
        host_err(format!(
            "cannot read the workshop's history: {}",
            e.message()
        ))
        .with_hint("check that the workshop is a git repository (`datum status`)")
    };
    let repo = git2::Repository::open(root).map_err(fail)?;
    let mut walk = repo.revwalk().map_err(fail)?;
    if walk.push_head().is_err() {
        // No commit yet.
        return Ok(json!({ "total": 0, "commits": [] }));
    }
    let whole = rel == "." || rel.is_empty();
    let path = std::path::Path::new(rel);
    let mut total = 0usize;
    let mut commits = Vec::new();
    for oid in walk {
        let oid = oid.map_err(fail)?;
        let commit = repo.find_commit(oid).map_err(fail)?;
        if !whole && !touches(&commit, path).map_err(fail)? {
            continue;
        }
        total += 1;
        if commits.len() < limit {
            let when = std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(commit.time().seconds().max(0) as u64);
            commits.push(json!({
                "id": oid.to_string(),
                "when": humantime::format_rfc3339_seconds(when).to_string(),
                "subject": commit.summary().unwrap_or_default(),
            }));
        }
    }
    Ok(json!({ "total": total, "commits": commits }))
}

/// Whether `commit` changed anything under `path` compared with its first parent.
fn touches(commit: &git2::Commit<'_>, path: &std::path::Path) -> Result<bool, git2::Error> {
    let tree = commit.tree()?;
    let entry = |t: &git2::Tree<'_>| t.get_path(path).ok().map(|e| e.id());
    let now = entry(&tree);
    let before = match commit.parent(0) {
        Ok(p) => entry(&p.tree()?),
        Err(_) => None,
    };
    Ok(now != before)
}

#[cfg(test)]
mod tests {
    use super::super::tests::caller;
    use super::*;

    #[test]
    fn a_folder_commit_and_its_log() {
        let (dir, c) = caller(&["git:notes"]);
        git2::Repository::init(dir.path()).unwrap();
        assert_eq!(log(dir.path(), ".", 10).unwrap()["total"], 0);
        std::fs::create_dir_all(dir.path().join("notes")).unwrap();
        std::fs::write(dir.path().join("notes/a.md"), "a").unwrap();
        std::fs::write(dir.path().join("other.md"), "b").unwrap();
        let made = commit(&c, "notes", "notes: a").unwrap();
        assert_eq!(made["committed"], true, "{made}");
        let history = log(dir.path(), "notes", 10).unwrap();
        assert_eq!(history["total"], 1);
        assert_eq!(history["commits"][0]["subject"], "notes: a");
        assert_eq!(
            log(dir.path(), "other.md", 10).unwrap()["total"],
            0,
            "only notes/ was committed"
        );
    }
}
