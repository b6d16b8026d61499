//! The git side of a workshop (git2, no git binary needed).

use std::path::Path;

use anyhow::Context;
use git2::{IndexAddOption, Repository, Signature, StatusOptions};

/// Initialise a repository unless there is one. Returns whether it was created.
pub fn ensure_repository(root: &Path) -> anyhow::Result<bool> {
    if Repository::open(root).is_ok() {
        return Ok(false);
    }
    Repository::init(root)
        .with_context(|| format!("cannot initialise git in {}", root.display()))?;
    Ok(true)
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

fn commit_paths(root: &Path, pathspec: &str, message: &str) -> anyhow::Result<Option<String>> {
    let repo = Repository::open(root)
        .with_context(|| format!("{} is not a git repository", root.display()))?;
    let mut index = repo.index()?;
    index.add_all([pathspec], IndexAddOption::DEFAULT, None)?;
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
    let id = repo
        .commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
        .context("cannot commit to the workshop's history")?;
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
