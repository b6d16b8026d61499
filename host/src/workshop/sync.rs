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

use crate::fsutil::atomic_write;

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
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        fetch(&mut git_remote, &branch, &tracking)?;
        let theirs = repo.refname_to_id(&tracking).ok();
        let mut report = SyncReport {
            branch: branch.clone(),
            remote: remote_label.clone(),
            ..SyncReport::default()
        };
        let local = files_on_disk(&repo, &root.join(folder))?;
        let remote_files = match theirs {
            Some(id) => files_in_tree(&repo, &repo.find_commit(id)?.tree()?, folder)?,
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
                atomic_write(&root.join(folder).join(path), blob.content())
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
/// Dot files (temp files of writes in flight) are skipped.
fn files_on_disk(repo: &Repository, dir: &Path) -> anyhow::Result<BTreeMap<String, Oid>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(dir.to_owned(), String::new())];
    while let Some((path, prefix)) = stack.pop() {
        let entries = match std::fs::read_dir(&path) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", path.display())),
        };
        for entry in entries {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let rel = format!("{prefix}{name}");
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push((entry.path(), format!("{rel}/")));
            } else if kind.is_file() {
                let bytes = std::fs::read(entry.path())?;
                out.insert(rel, repo.blob(&bytes)?);
            }
        }
    }
    Ok(out)
}

fn files_in_tree(
    repo: &Repository,
    tree: &Tree<'_>,
    folder: &str,
) -> anyhow::Result<BTreeMap<String, Oid>> {
    let mut out = BTreeMap::new();
    let Ok(entry) = tree.get_path(Path::new(folder)) else {
        return Ok(out);
    };
    let sub = repo.find_tree(entry.id())?;
    let mut failure = None;
    sub.walk(git2::TreeWalkMode::PreOrder, |prefix, e| {
        if e.kind() == Some(ObjectType::Blob) {
            match e.name() {
                Ok(name) => {
                    out.insert(format!("{prefix}{name}"), e.id());
                }
                Err(_) => failure = Some(format!("non-UTF-8 name under {prefix}")),
            }
        }
        git2::TreeWalkResult::Ok
    })?;
    match failure {
        Some(f) => bail!("the remote's {folder} holds {f}"),
        None => Ok(out),
    }
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
