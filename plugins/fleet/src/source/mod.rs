//! Where a fleet's repositories come from. Every source answers the same question —
//! "which repositories are there, and what is in their CAPABILITY.toml?" — so the
//! commands above never know whether the fleet lives on GitHub or in plain git.

pub mod git;
pub mod github;

use serde::Serialize;

use crate::error::FleetError;

/// The most a CAPABILITY.toml may weigh before it is not downloaded (the capability
/// crate refuses larger files too).
pub const MAX_CAPABILITY_BYTES: u64 = capability::MAX_BYTES as u64;

/// One repository as a source sees it. Text fields come from the remote: they are
/// hostile and are only ever shown through [`capability::shown`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Repo {
    pub name: String,
    pub url: String,
    pub description: Option<String>,
    /// Seconds since the Unix epoch of the last push (GitHub) or the HEAD commit (git).
    pub pushed_at: Option<i64>,
    pub archived: bool,
    pub topics: Vec<String>,
    /// SPDX id where the host knows it; `"other"` when a LICENSE file exists but is not
    /// recognised.
    pub license: Option<String>,
    pub has_readme: bool,
    /// Whether the repository publishes FLUX conformance vectors or programs
    /// (a `vectors/` or `programs/` folder at the root).
    pub has_flux: bool,
    pub capability: Option<Blob>,
}

/// A file's content-addressed identity and, once fetched, its text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Blob {
    /// The git blob id: the same file gives the same oid on GitHub and in plain git.
    pub oid: String,
    /// `None` when the file was too large or not text: it is reported, never read.
    #[serde(skip)]
    pub text: Option<String>,
    pub size: u64,
}

/// What one listing found, and what it cost.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Listing {
    pub repos: Vec<Repo>,
    /// How many repositories the source says there are (so a partial listing can say
    /// how many are missing).
    pub total: Option<usize>,
    /// Set when a limit or an error stopped the listing early.
    pub incomplete: Option<String>,
    pub warnings: Vec<String>,
    /// HTTP requests made (GitHub) or repositories opened (git).
    pub requests: u64,
    /// Capability files whose text was transferred (not answered from the cache).
    pub downloads: u64,
}

/// A fleet source. Implementations: [`github::GitHub`] and [`git::GitFleet`].
pub trait Source {
    /// One line naming the source for messages (`github:acme`, `git:/srv/fleet`).
    fn label(&self) -> String;
    /// List every repository with its capability file. Errors are for "could not list
    /// at all" (unreachable, refused); a listing cut short is `Ok` with `incomplete`.
    fn list(&mut self) -> Result<Listing, FleetError>;
    /// The FLUX files a repository publishes (`vectors/*.json`, `programs/*.flux` at its
    /// root), as `(path, text)`, at most [`MAX_FLUX_FILES`] of at most
    /// [`MAX_CAPABILITY_BYTES`] each.
    fn flux_files(&mut self, repo: &Repo) -> Result<Vec<(String, String)>, FleetError>;
    /// A regular text file at the root of a repository's default branch (e.g. the
    /// agent's `datum.lock`), at most [`MAX_CAPABILITY_BYTES`]; `None` when it has none.
    fn root_file(&mut self, repo: &Repo, name: &str) -> Result<Option<String>, FleetError>;
}

/// The most FLUX files taken from one repository.
pub const MAX_FLUX_FILES: usize = 64;

/// Whether a file in `vectors/` or `programs/` is one the audit runs.
pub fn is_flux_file(folder: &str, name: &str) -> bool {
    match folder {
        "vectors" => name.ends_with(".json") && !name.contains("expected-failures"),
        "programs" => name.ends_with(".flux"),
        _ => false,
    }
}

/// Two sources listed as one (a git source with both a folder and URLs).
pub struct Both<A, B>(pub A, pub B);

impl<A: Source, B: Source> Source for Both<A, B> {
    fn label(&self) -> String {
        format!("{} + {}", self.0.label(), self.1.label())
    }

    fn list(&mut self) -> Result<Listing, FleetError> {
        let mut a = self.0.list()?;
        let b = self.1.list()?;
        a.repos.extend(b.repos);
        a.total = a.total.zip(b.total).map(|(x, y)| x + y);
        a.incomplete = a.incomplete.or(b.incomplete);
        a.warnings.extend(b.warnings);
        a.requests += b.requests;
        a.downloads += b.downloads;
        Ok(a)
    }

    fn flux_files(&mut self, repo: &Repo) -> Result<Vec<(String, String)>, FleetError> {
        match self.0.flux_files(repo) {
            Ok(files) if !files.is_empty() => Ok(files),
            _ => self.1.flux_files(repo),
        }
    }

    fn root_file(&mut self, repo: &Repo, name: &str) -> Result<Option<String>, FleetError> {
        match self.0.root_file(repo, name) {
            Ok(Some(text)) => Ok(Some(text)),
            _ => self.1.root_file(repo, name),
        }
    }
}
