//! The git side of a workshop (git2, no git binary needed).

use std::path::Path;

use anyhow::Context;
use git2::{IndexAddOption, Repository, Signature, StatusOptions};

/// Initialise a repository unless there is one. Returns whether it was created.
pub fn ensure_repository(root: &Path) -> anyhow::Result<bool> {
    if root.join(".git").symlink_metadata().is_ok() {
        if Repository::open(root).is_ok() {
            return Ok(false);
        }
        // Something is there but is not a repository: libgit2 repairs or explains.
        let mut options = git2::RepositoryInitOptions::new();
        options.external_template(false);
        Repository::init_opts(root, &options)
            .with_context(|| format!("cannot initialise git in {}", root.display()))?;
        return Ok(true);
    }
    init(&root.join(".git"))
        .with_context(|| format!("cannot initialise git in {}", root.display()))?;
    Ok(true)
}

/// A new, empty repository's `.git`, written directly: the layout git itself checks
/// for (`HEAD`, `objects/`, `refs/`) and the `[core]` settings `git init` writes on
/// Linux. libgit2's init does the same in about 1.3 ms — a third of a boot's own
/// work — because it rewrites its config file once per setting (lock, write, rename)
/// and probes the filesystem with scratch files; a workshop needs none of that.
/// Created with `create_dir`, so a `.git` that appears meanwhile is an error, not
/// something written over.
fn init(git: &Path) -> std::io::Result<()> {
    std::fs::create_dir(git)?;
    for dir in ["objects/info", "objects/pack", "refs/heads", "refs/tags"] {
        std::fs::create_dir_all(git.join(dir))?;
    }
    // The user's `init.defaultBranch`, as `git init` would use; git's own default
    // otherwise (and for a name git would refuse).
    let branch = git2::Config::open_default()
        .and_then(|c| c.get_string("init.defaultBranch"))
        .ok()
        .filter(|b| git2::Reference::is_valid_name(&format!("refs/heads/{b}")))
        .unwrap_or_else(|| "master".to_owned());
    std::fs::write(
        git.join("config"),
        "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n",
    )?;
    // HEAD last: until it exists, git does not take the folder for a repository.
    std::fs::write(git.join("HEAD"), format!("ref: refs/heads/{branch}\n"))
}

pub(super) fn signature(repo: &Repository) -> anyhow::Result<Signature<'static>> {
    // Use the user's identity when git has one; datum's own otherwise, so booting
    // never fails on a fresh machine without git config.
    match repo.signature() {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Ok(Signature::now("datum", "datum@localhost")?),
    }
}

/// Stage everything (respecting .gitignore) and commit if anything changed.
/// Returns the new commit id, or `None` when the tree was already committed.
pub fn commit_all(root: &Path, message: &str) -> anyhow::Result<Option<String>> {
    commit_paths(root, "*", message)
}

/// Commit the changes under one workshop folder only (other edits stay uncommitted).
/// Returns the new commit id, or `None` when the folder was already committed.
pub fn commit_path(root: &Path, folder: &str, message: &str) -> anyhow::Result<Option<String>> {
    commit_paths(root, folder, message)
}

/// Another process holding git's index or HEAD lock, or moving HEAD between our read
/// and our write, is a reason to try again, not to fail.
fn contended(e: &anyhow::Error) -> bool {
    e.downcast_ref::<git2::Error>().is_some_and(|g| {
        matches!(
            g.code(),
            git2::ErrorCode::Locked | git2::ErrorCode::Modified | git2::ErrorCode::Exists
        ) || g.message().contains(".lock")
            || g.message().contains("current tip is not the first parent")
            // A file another program was writing while we staged it.
            || g.message().contains("file changed before we could read it")
            || g.message().contains("failed to read file into stream")
    })
}

/// Run `f` holding the workshop's write lock (`.git/datum-write.lock`, an exclusive
/// `flock`): datum processes committing, or appending to a file a commit may be
/// staging, take turns instead of catching each other half-way. Git itself does not
/// know this lock; its own lock files are the reason `commit_paths` also retries.
pub fn with_write_lock<T>(root: &Path, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let git_dir = root.join(".git");
    if !git_dir.is_dir() {
        return f();
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(git_dir.join("datum-write.lock"))
        .context("cannot open the workshop's write lock")?;
    file.lock()
        .context("cannot take the workshop's write lock")?;
    let out = f();
    // Dropping the file releases the lock too; unlocking first keeps the hold short.
    let _ = file.unlock();
    out
}

fn commit_paths(root: &Path, pathspec: &str, message: &str) -> anyhow::Result<Option<String>> {
    with_write_lock(root, || commit_paths_retrying(root, pathspec, message))
}

fn commit_paths_retrying(
    root: &Path,
    pathspec: &str,
    message: &str,
) -> anyhow::Result<Option<String>> {
    // Bounded: 100 tries with a short, varying pause (several agents' tools commit to
    // one workshop at once, e.g. `datum journal add` from parallel scripts).
    let mut last = None;
    for attempt in 0..100u64 {
        match commit_paths_once(root, pathspec, message) {
            Err(e) if contended(&e) => {
                last = Some(e);
                let jitter = (u64::from(std::process::id()) + attempt * 7) % 23;
                std::thread::sleep(std::time::Duration::from_millis(5 + jitter));
            }
            other => return other,
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("the workshop's git history stayed locked")))
        .context("another process kept the workshop's git index locked; try again")
}

fn commit_paths_once(root: &Path, pathspec: &str, message: &str) -> anyhow::Result<Option<String>> {
    let repo = Repository::open(root)
        .with_context(|| format!("{} is not a git repository", root.display()))?;
    let mut index = repo.index()?;
    if index.is_empty() {
        return first_commit(&repo, &mut index, pathspec, message);
    }
    index.add_all([pathspec], IndexAddOption::DEFAULT, None)?;
    // `add_all` stages new and changed files; `update_all` stages removals.
    index.update_all([pathspec], None)?;
    index.write()?;
    let tree_id = index.write_tree()?;
    let parent = match repo.head() {
        Ok(head) => Some(head.peel_to_commit()?),
        Err(_) => None,
    };
    if parent.as_ref().is_some_and(|p| p.tree_id() == tree_id) {
        return Ok(None);
    }
    let tree = repo.find_tree(tree_id)?;
    let sig = signature(&repo)?;
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    // Not `.context()`: the git2 error stays downcastable for the retry above.
    let id = repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)?;
    Ok(Some(id.to_string()))
}

/// The commit of a new workshop (an empty index): every file is new, so its objects —
/// a blob per file, a tree per folder, the commit — are gathered in memory and written
/// as one pack instead of one loose file each. The pack is complete on disk before the
/// index or HEAD names anything in it; an empty index holds nothing for `update_all`.
fn first_commit(
    repo: &Repository,
    index: &mut git2::Index,
    pathspec: &str,
    message: &str,
) -> anyhow::Result<Option<String>> {
    let odb = repo.odb()?;
    // Above the loose and pack backends: new objects land here until written below.
    let mempack = odb.add_new_mempack_backend(1000)?;
    index.add_all([pathspec], IndexAddOption::DEFAULT, None)?;
    let tree_id = index.write_tree()?;
    let parent = match repo.head() {
        Ok(head) => Some(head.peel_to_commit()?),
        Err(_) => None,
    };
    if parent.as_ref().is_some_and(|p| p.tree_id() == tree_id) {
        // Only a lost index (HEAD already has this tree): every object exists, so
        // the mempack holds nothing to write.
        mempack.reset()?;
        index.write()?;
        return Ok(None);
    }
    let tree = repo.find_tree(tree_id)?;
    let sig = signature(repo)?;
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    let id = repo.commit(None, &sig, &sig, message, &tree, &parents)?;
    let mut pack = git2::Buf::new();
    mempack.dump(repo, &mut pack)?;
    mempack.reset()?;
    let mut writer = odb.packwriter()?;
    std::io::Write::write_all(&mut writer, &pack)?;
    writer.commit()?;
    index.write()?;
    // Move HEAD's branch only if it is still where we read it (another process may
    // have committed meanwhile: that is a retry, as in `repo.commit`).
    let head = repo.find_reference("HEAD")?;
    let branch = head.symbolic_target()?.unwrap_or("HEAD").to_owned();
    let subject = message.lines().next().unwrap_or_default();
    match &parent {
        Some(p) => {
            repo.reference_matching(&branch, id, true, p.id(), &format!("commit: {subject}"))?
        }
        None => repo.reference(&branch, id, false, &format!("commit (initial): {subject}"))?,
    };
    Ok(Some(id.to_string()))
}

/// True when the working tree has no uncommitted changes.
pub fn is_clean(root: &Path) -> anyhow::Result<bool> {
    let repo = Repository::open(root)?;
    let mut opts = StatusOptions::new();
    opts.include_untracked(true).recurse_untracked_dirs(true);
    let clean = repo.statuses(Some(&mut opts))?.is_empty();
    Ok(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_repository_is_the_one_libgit2_would_make() {
        let ours = tempfile::tempdir().unwrap();
        let theirs = tempfile::tempdir().unwrap();
        assert!(ensure_repository(ours.path()).unwrap());
        assert!(!ensure_repository(ours.path()).unwrap(), "only once");
        let mut options = git2::RepositoryInitOptions::new();
        options.external_template(false);
        let reference = Repository::init_opts(theirs.path(), &options).unwrap();
        let repo = Repository::open(ours.path()).unwrap();
        assert!(!repo.is_bare());
        assert!(repo.is_empty().unwrap());
        for key in ["core.bare", "core.filemode", "core.logallrefupdates"] {
            assert_eq!(
                repo.config().unwrap().get_bool(key).unwrap(),
                reference.config().unwrap().get_bool(key).unwrap(),
                "{key}"
            );
        }
        assert_eq!(
            repo.config()
                .unwrap()
                .get_i32("core.repositoryformatversion")
                .unwrap(),
            0
        );
        let unborn = |r: &Repository| -> String {
            let head = r.find_reference("HEAD").unwrap();
            String::from(head.symbolic_target().unwrap().unwrap())
        };
        assert_eq!(unborn(&repo), unborn(&reference));
        // And it takes a commit.
        std::fs::write(ours.path().join("a.md"), "x").unwrap();
        assert!(commit_all(ours.path(), "first").unwrap().is_some());
        assert!(is_clean(ours.path()).unwrap());
    }

    #[test]
    fn a_broken_git_folder_is_not_written_over() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(".git")).unwrap();
        std::fs::write(root.path().join(".git/keep"), "mine").unwrap();
        // libgit2 re-initialises around what is there; our own writer never runs.
        ensure_repository(root.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.path().join(".git/keep")).unwrap(),
            "mine"
        );
        assert!(Repository::open(root.path()).is_ok());
    }
}
