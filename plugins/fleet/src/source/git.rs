//! A fleet of plain git repositories: a folder holding them (bare or not), or a list
//! of git URLs (`file://`, local paths; whatever this git2 build speaks). The offline
//! and self-hosted fleet: the same answers as the GitHub source for the same
//! repositories, read from each repository's HEAD commit.

use std::path::{Path, PathBuf};

use git2::{ObjectType, Repository};
use sha2::Digest;

use super::{Blob, Listing, Repo, Source, MAX_CAPABILITY_BYTES};
use crate::error::FleetError;

/// More entries than this at a repository's root are not looked at (a hostile tree can
/// hold millions); the files the rules look for sort early enough in any real one.
const MAX_ROOT_ENTRIES: usize = 10_000;
/// Where a mirror keeps the remote's HEAD.
const MIRROR_HEAD: &str = "refs/remotes/origin/HEAD";
/// More repositories than this in one folder are not opened.
const MAX_REPOS: usize = 100_000;

/// What the root of a repository holds, by the rules both sources share.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RootFacts {
    pub has_readme: bool,
    pub has_license: bool,
    pub has_flux: bool,
}

impl RootFacts {
    /// Judge root entry names: `README*`, `LICENSE*`/`COPYING*` (any case) files, and a
    /// `vectors/` or `programs/` folder.
    pub fn from_entries<'a>(entries: impl Iterator<Item = (&'a str, bool)>) -> RootFacts {
        let mut facts = RootFacts::default();
        for (name, is_dir) in entries.take(MAX_ROOT_ENTRIES) {
            let upper = name.to_ascii_uppercase();
            if !is_dir && upper.starts_with("README") {
                facts.has_readme = true;
            }
            if !is_dir && (upper.starts_with("LICENSE") || upper.starts_with("COPYING")) {
                facts.has_license = true;
            }
            if is_dir && (name == "vectors" || name == "programs") {
                facts.has_flux = true;
            }
        }
        facts
    }
}

pub enum Where {
    /// Every repository directly inside this folder.
    Folder(PathBuf),
    /// These repositories, cloned (bare) into `cache` and fetched on every listing.
    Urls { urls: Vec<String>, cache: PathBuf },
}

pub struct GitFleet {
    pub place: Where,
}

impl GitFleet {
    pub fn folder(path: impl Into<PathBuf>) -> Self {
        GitFleet {
            place: Where::Folder(path.into()),
        }
    }

    pub fn urls(urls: Vec<String>, cache: impl Into<PathBuf>) -> Self {
        GitFleet {
            place: Where::Urls {
                urls,
                cache: cache.into(),
            },
        }
    }
}

/// A repository's name from its folder or URL: the last path segment without `.git`.
pub fn repo_name(path_or_url: &str) -> String {
    let trimmed = path_or_url.trim_end_matches('/');
    let last = trimmed.rsplit(['/', '\\', ':']).next().unwrap_or(trimmed);
    last.strip_suffix(".git").unwrap_or(last).to_owned()
}

/// The bare mirror of `url` in `cache`, cloned on first use and fetched after.
pub fn mirror(url: &str, cache: &Path) -> Result<Repository, FleetError> {
    let digest = hex::encode(sha2::Sha256::digest(url.as_bytes()));
    let dir = cache.join(format!(
        "{}-{}.git",
        safe_segment(&repo_name(url)),
        &digest[..16]
    ));
    let unreachable = |e: git2::Error| {
        FleetError::Unreachable {
        what: format!("git repository {url}"),
        reason: e.message().to_owned(),
        hint: "check the URL or path, and that the remote is up; `datum fleet sources` lists what is configured".into(),
    }
    };
    let repo = match Repository::open_bare(&dir) {
        Ok(repo) => repo,
        Err(_) => {
            std::fs::create_dir_all(cache).map_err(|e| {
                FleetError::failed(
                    format!("cannot create the fleet cache {}: {e}", cache.display()),
                    "check the workshop's permissions",
                )
            })?;
            let _ = std::fs::remove_dir_all(&dir);
            Repository::init_bare(&dir)?
        }
    };
    {
        let mut remote = repo.remote_anonymous(url).map_err(unreachable)?;
        remote
            .fetch(
                &[
                    "+refs/heads/*:refs/heads/*",
                    "+HEAD:refs/remotes/origin/HEAD",
                ],
                None,
                None,
            )
            .map_err(unreachable)?;
    }
    Ok(repo)
}

/// A name made safe to be one path segment (URLs are hostile).
fn safe_segment(name: &str) -> String {
    let s: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .take(40)
        .collect();
    if s.is_empty() {
        "repo".into()
    } else {
        s
    }
}

/// Read one repository's facts from its HEAD commit (or, in a mirror, the fetched HEAD).
/// `head` is the reference to read: `HEAD` in a folder's repositories, the fetched
/// `refs/remotes/origin/HEAD` in a mirror.
pub fn read_repo(repo: &Repository, head: &str, name: &str, url: &str) -> Result<Repo, FleetError> {
    let mut out = Repo {
        name: name.to_owned(),
        url: url.to_owned(),
        description: description(repo),
        ..Repo::default()
    };
    let commit = match repo
        .find_reference(head)
        .and_then(|r| r.resolve())
        .and_then(|r| r.peel_to_commit())
    {
        Ok(c) => c,
        // An empty repository: nothing pushed yet.
        Err(_) => return Ok(out),
    };
    out.pushed_at = Some(commit.time().seconds());
    let tree = commit.tree()?;
    let names: Vec<(String, bool)> = tree
        .iter()
        .take(MAX_ROOT_ENTRIES)
        .filter_map(|e| {
            let name = e.name().ok()?.to_owned();
            Some((name, e.kind() == Some(ObjectType::Tree)))
        })
        .collect();
    let facts = RootFacts::from_entries(names.iter().map(|(n, d)| (n.as_str(), *d)));
    out.has_readme = facts.has_readme;
    out.has_flux = facts.has_flux;
    out.license = facts.has_license.then(|| "other".to_owned());
    if let Some(entry) = tree.get_name(capability::FILE_NAME) {
        // Only a regular file counts: a link or submodule named CAPABILITY.toml is not read.
        if entry.kind() == Some(ObjectType::Blob) && entry.filemode() & 0o170000 == 0o100000 {
            let odb = repo.odb()?;
            let (size, _) = odb.read_header(entry.id())?;
            let size = size as u64;
            let text = if size <= MAX_CAPABILITY_BYTES {
                let blob = repo.find_blob(entry.id())?;
                std::str::from_utf8(blob.content()).ok().map(str::to_owned)
            } else {
                None
            };
            out.capability = Some(Blob {
                oid: entry.id().to_string(),
                text,
                size,
            });
        }
    }
    Ok(out)
}

/// A bare repository's `description` file, unless it is git's placeholder.
fn description(repo: &Repository) -> Option<String> {
    let path = repo.path().join("description");
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if !meta.is_file() || meta.len() > 4096 {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty() && !text.starts_with("Unnamed repository")).then(|| text.to_owned())
}

/// The FLUX files under `vectors/` and `programs/` at a commit's root.
pub fn flux_files_at(repo: &Repository, head: &str) -> Result<Vec<(String, String)>, FleetError> {
    let mut out = Vec::new();
    let Ok(commit) = repo
        .find_reference(head)
        .and_then(|r| r.resolve())
        .and_then(|r| r.peel_to_commit())
    else {
        return Ok(out);
    };
    let tree = commit.tree()?;
    let odb = repo.odb()?;
    for folder in ["vectors", "programs"] {
        let Some(entry) = tree
            .get_name(folder)
            .filter(|e| e.kind() == Some(ObjectType::Tree))
        else {
            continue;
        };
        let sub = repo.find_tree(entry.id())?;
        for e in sub.iter().take(MAX_ROOT_ENTRIES) {
            let Ok(name) = e.name() else { continue };
            if out.len() >= super::MAX_FLUX_FILES
                || e.filemode() & 0o170000 != 0o100000
                || !super::is_flux_file(folder, name)
            {
                continue;
            }
            let (size, _) = odb.read_header(e.id())?;
            if size as u64 > MAX_CAPABILITY_BYTES {
                continue;
            }
            let blob = repo.find_blob(e.id())?;
            if let Ok(text) = std::str::from_utf8(blob.content()) {
                out.push((format!("{folder}/{name}"), text.to_owned()));
            }
        }
    }
    Ok(out)
}

/// A regular file at the root of `head`'s tree, as text, bounded.
pub fn root_file_at(
    repo: &Repository,
    head: &str,
    name: &str,
) -> Result<Option<String>, FleetError> {
    let Ok(commit) = repo
        .find_reference(head)
        .and_then(|r| r.resolve())
        .and_then(|r| r.peel_to_commit())
    else {
        return Ok(None);
    };
    let tree = commit.tree()?;
    let Some(entry) = tree.get_name(name) else {
        return Ok(None);
    };
    // Only a regular file: a link in another agent's repository is never followed.
    if entry.kind() != Some(ObjectType::Blob) || entry.filemode() & 0o170000 != 0o100000 {
        return Ok(None);
    }
    let (size, _) = repo.odb()?.read_header(entry.id())?;
    if size as u64 > MAX_CAPABILITY_BYTES {
        return Ok(None);
    }
    let blob = repo.find_blob(entry.id())?;
    Ok(std::str::from_utf8(blob.content()).ok().map(str::to_owned))
}

impl Source for GitFleet {
    fn root_file(&mut self, repo: &Repo, name: &str) -> Result<Option<String>, FleetError> {
        match &self.place {
            Where::Folder(_) => root_file_at(&Repository::open(&repo.url)?, "HEAD", name),
            Where::Urls { cache, .. } => {
                root_file_at(&mirror(&repo.url, cache)?, MIRROR_HEAD, name)
            }
        }
    }

    fn flux_files(&mut self, repo: &Repo) -> Result<Vec<(String, String)>, FleetError> {
        match &self.place {
            Where::Folder(_) => {
                let r = Repository::open(&repo.url)?;
                flux_files_at(&r, "HEAD")
            }
            Where::Urls { cache, .. } => {
                let r = mirror(&repo.url, cache)?;
                flux_files_at(&r, MIRROR_HEAD)
            }
        }
    }

    fn label(&self) -> String {
        match &self.place {
            Where::Folder(p) => format!("git:{}", p.display()),
            Where::Urls { urls, .. } => format!("git:{} repositories", urls.len()),
        }
    }

    fn list(&mut self) -> Result<Listing, FleetError> {
        let mut listing = Listing::default();
        match &self.place {
            Where::Folder(root) => {
                let entries = std::fs::read_dir(root).map_err(|e| FleetError::Unreachable {
                    what: format!("the fleet folder {}", root.display()),
                    reason: e.to_string(),
                    hint: "check the path given to `datum fleet add-source git --path`".into(),
                })?;
                let mut dirs: Vec<PathBuf> = entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .take(MAX_REPOS)
                    .collect();
                dirs.sort();
                for dir in dirs {
                    let Ok(repo) = Repository::open(&dir) else {
                        continue;
                    };
                    listing.requests += 1;
                    let dir_name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
                    let name = repo_name(dir_name.as_deref().unwrap_or_default());
                    match read_repo(&repo, "HEAD", &name, &dir.display().to_string()) {
                        Ok(r) => listing.repos.push(r),
                        Err(e) => listing
                            .warnings
                            .push(format!("{}: cannot read: {e}", capability::shown(&name))),
                    }
                }
            }
            Where::Urls { urls, cache } => {
                for url in urls {
                    listing.requests += 1;
                    let repo = mirror(url, cache)?;
                    let name = repo_name(url);
                    listing
                        .repos
                        .push(read_repo(&repo, MIRROR_HEAD, &name, url)?);
                }
            }
        }
        listing.total = Some(listing.repos.len());
        // A folder scan reads every file afresh; count what was transferred.
        listing.downloads = listing
            .repos
            .iter()
            .filter(|r| r.capability.as_ref().is_some_and(|b| b.text.is_some()))
            .count() as u64;
        Ok(listing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_last_segment() {
        assert_eq!(repo_name("/srv/fleet/ada.git"), "ada");
        assert_eq!(repo_name("file:///srv/fleet/bob/"), "bob");
        assert_eq!(repo_name("git@host:org/cy.git"), "cy");
    }

    #[test]
    fn root_rules() {
        let f = RootFacts::from_entries(
            [("readme.rst", false), ("COPYING", false), ("vectors", true)].into_iter(),
        );
        assert_eq!(
            f,
            RootFacts {
                has_readme: true,
                has_license: true,
                has_flux: true
            }
        );
        // A folder called README is not a README; a file called vectors is not vectors.
        let f = RootFacts::from_entries([("README", true), ("vectors", false)].into_iter());
        assert_eq!(f, RootFacts::default());
    }
}
