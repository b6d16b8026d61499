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
    let parent = match repo.head() {
        Ok(head) => Some(head.peel_to_commit()?),
        Err(_) => None,
    };
    let odb = repo.odb()?;
    let memory = git2::Odb::new()?;
    let mempack = match parent {
        // Above the loose and pack backends: new objects land here until written below.
        Some(_) => odb.add_new_mempack_backend(1000)?,
        // A new repository has no objects at all, so the whole commit is made against
        // memory alone: libgit2 re-reads the pack folder for every object it does not
        // find (has another process packed it meanwhile?), once per file written.
        None => {
            let mempack = memory.add_new_mempack_backend(1)?;
            repo.set_odb(&memory)?;
            mempack
        }
    };
    if pathspec != "*" || !add_plain_files(repo, index)? {
        index.add_all([pathspec], IndexAddOption::DEFAULT, None)?;
    }
    let tree_id = index.write_tree()?;
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
    repo.set_odb(&odb)?;
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

/// Stage every file of a working tree into an empty index the quick way — the files
/// git's status lists as new, each read once and added as it is — when that is exactly
/// what `git add` would do: no attributes and no line-ending conversion can apply, and
/// every file is a regular one. Returns `false`, having staged nothing, otherwise.
///
/// Why: `add_all` looks up each file's attributes (filters, diff driver) one path at a
/// time, and libgit2 resolves each lookup's folder with `realpath` — about 1 000 system
/// calls for a new workshop, the largest part of a boot's kernel time.
fn add_plain_files(repo: &Repository, index: &mut git2::Index) -> anyhow::Result<bool> {
    let Some(root) = repo.workdir() else {
        return Ok(false);
    };
    if attributes_may_apply(repo)? {
        return Ok(false);
    }
    let mut options = StatusOptions::new();
    options
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        .exclude_submodules(true);
    let statuses = repo.statuses(Some(&mut options))?;
    let mut paths = Vec::with_capacity(statuses.len());
    for entry in statuses.iter() {
        let Ok(path) = entry.path() else {
            return Ok(false); // not UTF-8: git's own way
        };
        let name = path.rsplit('/').next().unwrap_or(path);
        if entry.status() != git2::Status::WT_NEW || name == ".gitattributes" {
            return Ok(false);
        }
        paths.push(path.to_owned());
    }
    // Every file is checked before any is staged: a link or anything else sends the
    // whole commit the slow way.
    let folder = crate::confined::Folder::open(root)?;
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let meta = std::fs::symlink_metadata(root.join(&path))?;
        if !meta.is_file() {
            return Ok(false);
        }
        files.push((path, meta));
    }
    let filemode = repo.config()?.get_bool("core.filemode").unwrap_or(true);
    for (path, meta) in files {
        use std::os::unix::fs::MetadataExt;
        // Read beneath the workshop, bounded: never through a link swapped in since.
        let bytes = folder.read(Path::new(&path), crate::confined::MAX_FILE)?;
        let executable = filemode && meta.mode() & 0o111 != 0;
        let time = |secs: i64, nanos: i64| git2::IndexTime::new(secs as i32, nanos as u32);
        let entry = git2::IndexEntry {
            ctime: time(meta.ctime(), meta.ctime_nsec()),
            mtime: time(meta.mtime(), meta.mtime_nsec()),
            // The index keeps 32 bits of each, as git does.
            dev: meta.dev() as u32,
            ino: meta.ino() as u32,
            mode: if executable { 0o100755 } else { 0o100644 },
            uid: meta.uid(),
            gid: meta.gid(),
            file_size: bytes.len() as u32,
            id: git2::Oid::ZERO_SHA1,
            flags: 0,
            flags_extended: 0,
            path: path.into_bytes(),
        };
        index.add_frombuffer(&entry, &bytes)?;
    }
    Ok(true)
}

/// Could any attribute or line-ending setting change what `git add` stores? Looks where
/// git looks: the repository's own attribute files (`.gitattributes` files are checked
/// by the caller), the user's and the system's, and `core.autocrlf`/`core.eol`.
fn attributes_may_apply(repo: &Repository) -> anyhow::Result<bool> {
    let config = repo.config()?;
    let set = |key: &str| config.get_string(key).ok();
    if set("core.attributesFile").is_some() || set("core.eol").is_some() {
        return Ok(true);
    }
    if set("core.autocrlf").is_some_and(|v| !v.eq_ignore_ascii_case("false")) {
        return Ok(true);
    }
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")));
    let mut files = vec![
        repo.path().join("info/attributes"),
        Path::new("/etc/gitattributes").to_owned(),
    ];
    files.extend(xdg.map(|d| d.join("git/attributes")));
    Ok(files.iter().any(|f| f.symlink_metadata().is_ok()))
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

    /// A working tree with the things a first commit meets: nested folders, an empty
    /// file, an executable, an ignored file and an ignored folder.
    fn worktree() -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b/c")).unwrap();
        std::fs::create_dir_all(root.join("cache")).unwrap();
        std::fs::write(root.join(".gitignore"), "*.log\ncache/\n").unwrap();
        std::fs::write(root.join("README.md"), "# hi\n").unwrap();
        std::fs::write(root.join("a/empty"), "").unwrap();
        std::fs::write(root.join("a/b/c/deep.toml"), "x = 1\r\n").unwrap();
        std::fs::write(root.join("a/run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            root.join("a/run.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(root.join("a/noise.log"), "ignored").unwrap();
        std::fs::write(root.join("cache/blob"), "ignored").unwrap();
        dir
    }

    /// The tree `git add --all` would stage in `root` (libgit2's own way).
    fn tree_the_slow_way(root: &Path) -> git2::Oid {
        let repo = Repository::init(root).unwrap();
        let mut index = repo.index().unwrap();
        index.add_all(["*"], IndexAddOption::DEFAULT, None).unwrap();
        index.write_tree().unwrap()
    }

    #[test]
    fn the_quick_first_commit_stages_exactly_what_git_add_would() {
        let quick = worktree();
        let slow = worktree();
        ensure_repository(quick.path()).unwrap();
        let repo = Repository::open(quick.path()).unwrap();
        let mut index = repo.index().unwrap();
        assert!(
            add_plain_files(&repo, &mut index).unwrap(),
            "plain files take the quick way"
        );
        assert_eq!(index.write_tree().unwrap(), tree_the_slow_way(slow.path()));
        // And through the whole commit: a clean tree afterwards, for git too.
        assert!(commit_all(quick.path(), "first").unwrap().is_some());
        assert!(is_clean(quick.path()).unwrap());
        let entry = repo
            .index()
            .unwrap()
            .get_path(Path::new("a/run.sh"), 0)
            .unwrap();
        assert_eq!(entry.mode, 0o100755);
    }

    #[test]
    fn attributes_or_links_send_the_first_commit_the_slow_way() {
        // `* text` makes git store CRLF line ends as LF: the quick way would not.
        let dir = worktree();
        std::fs::write(dir.path().join(".gitattributes"), "* text\n").unwrap();
        ensure_repository(dir.path()).unwrap();
        let repo = Repository::open(dir.path()).unwrap();
        assert!(!add_plain_files(&repo, &mut repo.index().unwrap()).unwrap());
        commit_all(dir.path(), "first").unwrap();
        let tree = repo.head().unwrap().peel_to_tree().unwrap();
        let blob = tree
            .get_path(Path::new("a/b/c/deep.toml"))
            .unwrap()
            .to_object(&repo)
            .unwrap();
        assert_eq!(blob.as_blob().unwrap().content(), b"x = 1\n");

        // A link is stored as a link, not as what it points to.
        let dir = worktree();
        std::os::unix::fs::symlink("README.md", dir.path().join("link")).unwrap();
        ensure_repository(dir.path()).unwrap();
        let repo = Repository::open(dir.path()).unwrap();
        assert!(!add_plain_files(&repo, &mut repo.index().unwrap()).unwrap());
        commit_all(dir.path(), "first").unwrap();
        let tree = repo.head().unwrap().peel_to_tree().unwrap();
        assert_eq!(
            tree.get_path(Path::new("link")).unwrap().filemode(),
            0o120000
        );
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
