//! Syncing one workshop folder of append-only files (bottles) through a git remote.
//!
//! Agents' workshops are separate repositories with unrelated histories, so the folder
//! travels on its own branch (`sync/<folder>`) whose tree holds only that folder.
//! Files in it are never edited after creation, so a sync is a union: every file on
//! either side ends up on both, nothing is overwritten, and syncing again changes
//! nothing. A file present on both sides with different bytes is a conflict: the
//! local copy is kept and the path reported.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use git2::{FetchOptions, ObjectType, Oid, PushOptions, RemoteCallbacks, Repository, Tree};
use serde::Serialize;

use crate::confined::{EntryKind, Folder};

/// A synced file may not be larger than this (bottles are a few KiB).
pub const MAX_SYNCED_FILE: u64 = 4 * 1024 * 1024;
/// Nor may a remote's folder hold more files than this, or nest deeper.
pub const MAX_SYNCED_FILES: usize = 100_000;
pub const MAX_SYNCED_DEPTH: usize = 8;

/// What one sync did.
#[derive(Debug, Default, Serialize)]
pub struct SyncReport {
    pub branch: String,
    pub remote: String,
    /// Files that arrived from the remote into the working tree.
    pub received: Vec<String>,
    /// Files the remote did not have before this sync.
    pub sent: Vec<String>,
    /// Same path, different bytes on each side (local kept).
    pub conflicts: Vec<String>,
    pub pushed: bool,
}

/// Push retries when another agent pushed between our fetch and our push.
const ATTEMPTS: usize = 4;

pub fn sync_folder(
    root: &Path,
    folder: &str,
    remote: Option<&str>,
    message: &str,
) -> anyhow::Result<SyncReport> {
    let repo = Repository::open(root)
        .with_context(|| format!("{} is not a git repository", root.display()))?;
    let branch = format!("sync/{}", folder.trim_matches('/').replace('/', "-"));
    let (mut git_remote, remote_label) = open_remote(&repo, remote.unwrap_or("origin"))?;
    let tracking = format!("refs/datum/{branch}");
    // Everything below writes only through this handle: beneath the synced folder,
    // never through a link or `..` out of it.
    let dir = Folder::open(root)?
        .sub(Path::new(folder), true)
        .with_context(|| format!("cannot open {folder}"))?;
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        fetch(&mut git_remote, &branch, &tracking)?;
        let theirs = repo.refname_to_id(&tracking).ok();
        let mut report = SyncReport {
            branch: branch.clone(),
            remote: remote_label.clone(),
            ..SyncReport::default()
        };
        let local = files_on_disk(&repo, &dir)?;
        // The whole remote tree is checked before anything is written: one bad name
        // and nothing at all arrives.
        let remote_files = match theirs {
            Some(id) => files_in_tree(&repo, &repo.find_commit(id)?.tree()?, folder)
                .with_context(|| format!("refusing the remote {remote_label}'s {folder}"))?,
            None => BTreeMap::new(),
        };
        let mut union = remote_files.clone();
        for (path, oid) in &local {
            match remote_files.get(path) {
                None => report.sent.push(path.clone()),
                Some(theirs) if theirs != oid => report.conflicts.push(path.clone()),
                Some(_) => {}
            }
            union.insert(path.clone(), *oid);
        }
        for (path, oid) in &remote_files {
            if !local.contains_key(path) {
                let blob = repo.find_blob(*oid)?;
                dir.create(Path::new(path), blob.content())
                    .with_context(|| format!("cannot write {folder}/{path}"))?;
                report.received.push(path.clone());
            }
        }
        // Arrivals join the workshop's own history too, so its tree stays clean.
        super::git::commit_path(root, folder, message)?;
        if report.sent.is_empty() && theirs.is_some() {
            return Ok(report); // the remote already has everything we have
        }
        let tree = build_tree(&repo, folder, &union)?;
        let local_ref = format!("refs/heads/{branch}");
        let mut parents = Vec::new();
        if let Ok(id) = repo.refname_to_id(&local_ref) {
            parents.push(repo.find_commit(id)?);
        }
        if let Some(id) = theirs {
            if !parents.iter().any(|p| p.id() == id) {
                parents.push(repo.find_commit(id)?);
            }
        }
        let sig = super::git::signature(&repo)?;
        let parent_refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
        let commit = repo.commit(None, &sig, &sig, message, &tree, &parent_refs)?;
        repo.reference(&local_ref, commit, true, "datum sync")?;
        match push(&mut git_remote, &branch) {
            Ok(()) => {
                report.pushed = true;
                return Ok(report);
            }
            // Someone pushed first: fetch their files and try again.
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("push kept being rejected")))
        .with_context(|| format!("cannot push {branch} to {remote_label} after {ATTEMPTS} tries"))
}

fn open_remote<'r>(repo: &'r Repository, name: &str) -> anyhow::Result<(git2::Remote<'r>, String)> {
    if let Ok(r) = repo.find_remote(name) {
        let label = r.url().unwrap_or(name).to_owned();
        return Ok((r, label));
    }
    let looks_like_location = name.contains('/') || name.contains(':') || Path::new(name).exists();
    if !looks_like_location {
        bail!("the workshop has no git remote `{name}`; pass --remote PATH_OR_URL or run `git remote add {name} URL`");
    }
    // Not a URL (`scheme://…`, `host:path`): a folder, which must exist.
    let is_url =
        name.contains("://") || name.split_once(':').is_some_and(|(h, _)| !h.contains('/'));
    if !is_url && !Path::new(name).exists() {
        bail!("there is no git repository at {name}; create one with `git init --bare {name}`, or pass another --remote");
    }
    let r = repo
        .remote_anonymous(name)
        .with_context(|| format!("`{name}` is not a usable git remote"))?;
    Ok((r, name.to_owned()))
}

fn fetch(remote: &mut git2::Remote<'_>, branch: &str, tracking: &str) -> anyhow::Result<()> {
    let refspec = format!("+refs/heads/{branch}:{tracking}");
    let mut options = FetchOptions::new();
    options.download_tags(git2::AutotagOption::None);
    match remote.fetch(&[refspec.as_str()], Some(&mut options), None) {
        Ok(()) => Ok(()),
        // A remote without the branch yet is an empty mailbox, not an error.
        Err(e) if e.message().contains("couldn't find remote ref") => Ok(()),
        Err(e) => Err(e)
            .with_context(|| format!("cannot fetch from {}", remote.url().unwrap_or("the remote"))),
    }
}

fn push(remote: &mut git2::Remote<'_>, branch: &str) -> anyhow::Result<()> {
    let refspec = format!("refs/heads/{branch}:refs/heads/{branch}");
    let rejected = std::cell::RefCell::new(None);
    let mut callbacks = RemoteCallbacks::new();
    callbacks.push_update_reference(|_, status| {
        if let Some(s) = status {
            *rejected.borrow_mut() = Some(s.to_owned());
        }
        Ok(())
    });
    let mut options = PushOptions::new();
    options.remote_callbacks(callbacks);
    remote
        .push(&[refspec.as_str()], Some(&mut options))
        .with_context(|| format!("cannot push to {}", remote.url().unwrap_or("the remote")))?;
    drop(options);
    match rejected.into_inner() {
        Some(why) => bail!("the remote rejected the push: {why}"),
        None => Ok(()),
    }
}

/// Files under `dir` (relative, `/`-separated) hashed as blobs into the repository.
/// Dot files (temp files of writes in flight) and links are skipped.
fn files_on_disk(repo: &Repository, dir: &Folder) -> anyhow::Result<BTreeMap<String, Oid>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![String::new()];
    while let Some(prefix) = stack.pop() {
        for entry in dir.list(Path::new(&prefix))? {
            if entry.name.starts_with('.') {
                continue;
            }
            let rel = format!("{prefix}{}", entry.name);
            match entry.kind {
                EntryKind::Dir => stack.push(format!("{rel}/")),
                EntryKind::File => {
                    let bytes = dir
                        .read(Path::new(&rel), MAX_SYNCED_FILE)
                        .with_context(|| format!("cannot read {rel}"))?;
                    out.insert(rel, repo.blob(&bytes)?);
                }
                EntryKind::Other => {}
            }
        }
    }
    Ok(out)
}

/// Why a name from a remote tree is refused, if it is. Names become paths on this
/// machine, so only plain names pass: not empty, `.` or `..`, no `/`, `\`, NUL or
/// control characters, no leading dot (which also rules out `.git` and its NTFS
/// aliases such as `.GIT` or `.git.`), and no 8.3 short name of `.git` (`git~1`).
pub fn unsafe_tree_name(name: &[u8]) -> Option<&'static str> {
    if name.is_empty() {
        return Some("an empty name");
    }
    if name.starts_with(b".") {
        return Some("a name starting with `.` (`..`, `.git` and hidden files are refused)");
    }
    if name
        .iter()
        .any(|&b| b == b'/' || b == b'\\' || b == 0 || b < 0x20 || b == 0x7f)
    {
        return Some("a name holding `/`, `\\`, NUL or a control character");
    }
    let Ok(text) = std::str::from_utf8(name) else {
        return Some("a name that is not UTF-8");
    };
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("git~") {
        return Some("a short name of `.git`");
    }
    if lower.ends_with(['.', ' ']) {
        return Some("a name ending in `.` or a space (an alias on Windows file systems)");
    }
    None
}

/// The files of `folder` in a remote's tree, every name checked by
/// [`unsafe_tree_name`]; only regular files (modes 100644/100755) and folders are
/// accepted: links and submodules are refused, as are trees too large or too deep.
pub fn files_in_tree(
    repo: &Repository,
    tree: &Tree<'_>,
    folder: &str,
) -> anyhow::Result<BTreeMap<String, Oid>> {
    let mut out = BTreeMap::new();
    let Ok(entry) = tree.get_path(Path::new(folder)) else {
        return Ok(out);
    };
    if entry.kind() != Some(ObjectType::Tree) {
        bail!("the remote's {folder} is not a folder");
    }
    let odb = repo.odb()?;
    let mut stack = vec![(repo.find_tree(entry.id())?, String::new(), 0usize)];
    while let Some((sub, prefix, depth)) = stack.pop() {
        for e in sub.iter() {
            let shown = String::from_utf8_lossy(e.name_bytes())
                .escape_debug()
                .to_string();
            if let Some(why) = unsafe_tree_name(e.name_bytes()) {
                bail!("the remote's {folder} holds `{prefix}{shown}`: {why}");
            }
            let name = e.name().unwrap_or_default();
            let path = format!("{prefix}{name}");
            match (e.kind(), e.filemode()) {
                (Some(ObjectType::Tree), 0o040000) => {
                    if depth + 1 >= MAX_SYNCED_DEPTH {
                        bail!("the remote's {folder} nests deeper than {MAX_SYNCED_DEPTH} folders at `{path}`");
                    }
                    stack.push((repo.find_tree(e.id())?, format!("{path}/"), depth + 1));
                }
                (Some(ObjectType::Blob), 0o100644 | 0o100755) => {
                    let (size, _) = odb.read_header(e.id())?;
                    if size as u64 > MAX_SYNCED_FILE {
                        bail!("the remote's {folder}/{path} is {size} bytes, over the {MAX_SYNCED_FILE}-byte limit");
                    }
                    out.insert(path, e.id());
                    if out.len() > MAX_SYNCED_FILES {
                        bail!("the remote's {folder} holds more than {MAX_SYNCED_FILES} files");
                    }
                }
                (_, mode) => {
                    bail!("the remote's {folder} holds `{prefix}{shown}` with mode {mode:o}: only plain files and folders are synced (no links or submodules)");
                }
            }
        }
    }
    Ok(out)
}

/// A commit tree holding `files` under `folder`.
fn build_tree<'r>(
    repo: &'r Repository,
    folder: &str,
    files: &BTreeMap<String, Oid>,
) -> anyhow::Result<Tree<'r>> {
    let mut full = BTreeMap::new();
    for (path, oid) in files {
        full.insert(format!("{}/{path}", folder.trim_matches('/')), *oid);
    }
    let id = write_level(repo, &full, "")?;
    Ok(repo.find_tree(id)?)
}

/// Write the tree for the paths starting with `prefix`, recursively.
fn write_level(
    repo: &Repository,
    files: &BTreeMap<String, Oid>,
    prefix: &str,
) -> anyhow::Result<Oid> {
    let mut builder = repo.treebuilder(None)?;
    let mut subdirs = std::collections::BTreeSet::new();
    for (path, oid) in files.range(prefix.to_owned()..) {
        let Some(rest) = path.strip_prefix(prefix) else {
            break;
        };
        match rest.split_once('/') {
            Some((dir, _)) => {
                subdirs.insert(dir.to_owned());
            }
            None => {
                builder.insert(rest, *oid, 0o100644)?;
            }
        }
    }
    for dir in subdirs {
        let id = write_level(repo, files, &format!("{prefix}{dir}/"))?;
        builder.insert(&dir, id, 0o040000)?;
    }
    Ok(builder.write()?)
}
