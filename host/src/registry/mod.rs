//! Registries: static indexes of plugins (one file per plugin, every version, one
//! artifact per target), read from a local folder, a git repository, or a web server.
//!
//! Layout of a registry root:
//! ```text
//! registry.json                 {name, default_plugins, trusted}
//! snapshot.json                 {registry, version, files: {path: sha256}} (publish writes it)
//! index/<name>.json             {name, versions: [{version, manifest, yanked, artifacts}]}
//! artifacts/<name>/<version>/…  the files the index points at
//! ```

mod git;
mod http;
mod index;
mod publish;
pub mod signing;
mod snapshot;
pub mod trust;

use std::path::{Path, PathBuf};

use datum_plugin_api::valid_name;
use semver::{Version, VersionReq};

pub use index::{Artifact, IndexFile, IndexVersion, RegistryConfig, MAX_README};
pub use publish::publish;
pub use snapshot::{refresh as refresh_snapshot, Snapshot};

use crate::paths::Home;

use crate::loader::Kind;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry `{0}` does not exist or is not a folder")]
    Missing(String),
    #[error("`{0}` is not a datum registry: it has no registry.json")]
    NotARegistry(String),
    #[error("could not read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is malformed: {message}")]
    Malformed { path: PathBuf, message: String },
    #[error("no plugin named `{name}` in registry `{registry}`; try `datum plugin search {name}`")]
    NotFound { name: String, registry: String },
    #[error("`{name}` has no version matching `{req}` (available: {available}); ask for one of those, e.g. `datum plugin install {name}@{newest}`")]
    NoMatchingVersion {
        name: String,
        req: String,
        available: String,
        newest: String,
    },
    #[error(
        "{name} {version} needs datum-plugin-api {required}, but this datum provides {have}; {fix}"
    )]
    ApiIncompatible {
        name: String,
        version: String,
        required: String,
        have: String,
        fix: String,
    },
    #[error("{name} {version} has no {kind} artifact for target {target} (it has: {available}); install with `--kind {alternative}`")]
    NoArtifact {
        name: String,
        version: String,
        kind: Kind,
        target: String,
        available: String,
        alternative: Kind,
    },
    #[error("git registry {url}: {message}")]
    Git { url: String, message: String },
    #[error("HTTP registry {url}: {message}")]
    Http { url: String, message: String },
    #[error("{path}: {message}")]
    Signature { path: PathBuf, message: String },
    #[error("`{0}` is not a valid plugin name (a-z, 0-9 and '-', starting with a letter)")]
    BadName(String),
}

impl RegistryError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        RegistryError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Where a registry lives. Parsed here and nowhere else: from what a user types
/// (`--registry`: a folder, `git+URL`, a URL ending in `.git`, an `http(s)://` URL)
/// and from the `source` a lock entry records (`dir:/abs/path`, `git:URL`, `http:URL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Dir(PathBuf),
    Git(String),
    Http(String),
}

impl Source {
    /// What a user typed. A folder must exist (it is recorded by its absolute path).
    pub fn from_spec(spec: &str) -> Result<Source, RegistryError> {
        if let Some(url) = git::url_of(spec) {
            return Ok(Source::Git(url));
        }
        if let Some(url) = http::url_of(spec) {
            return Ok(Source::Http(url));
        }
        std::fs::canonicalize(spec)
            .map(Source::Dir)
            .map_err(|_| RegistryError::Missing(spec.to_owned()))
    }

    /// A lock entry's `source`; `None` when it is none of the three forms.
    pub fn from_id(id: &str) -> Option<Source> {
        let (scheme, rest) = id.split_once(':')?;
        if rest.is_empty() || rest.chars().any(char::is_control) {
            return None;
        }
        match scheme {
            "dir" => Some(Source::Dir(PathBuf::from(rest))),
            "git" => Some(Source::Git(rest.to_owned())),
            "http" => http::url_of(rest).map(Source::Http),
            _ => None,
        }
    }

    /// How the lock records it.
    pub fn id(&self) -> String {
        match self {
            Source::Dir(root) => format!("dir:{}", root.display()),
            Source::Git(url) => format!("git:{url}"),
            Source::Http(url) => format!("http:{url}"),
        }
    }
}

/// An opened registry, readable as a local folder.
#[derive(Debug, Clone)]
pub struct Registry {
    /// How the lock file names this source: `dir:/abs/path`, `git:URL` or `http:URL`.
    pub source_id: String,
    root: PathBuf,
    pub config: RegistryConfig,
    /// For a registry on the web: where artifacts are downloaded from.
    remote: Option<std::sync::Arc<http::Remote>>,
    /// The signed snapshot `trust::check` verified: every index file read is checked
    /// against it.
    verified: Option<std::sync::Arc<Snapshot>>,
}

/// A version picked for installation.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub version: IndexVersion,
    pub kind: Kind,
    pub artifact: Artifact,
}

impl Registry {
    /// Open a registry from a spec: a folder path, `git+URL`, a URL ending in `.git`, or
    /// an `http(s)://` URL. Git registries are cloned (or fetched) and web ones mirrored
    /// into the datum home first.
    pub fn open(spec: &str, home: &Home) -> Result<Registry, RegistryError> {
        Registry::open_at(&Source::from_spec(spec)?, home)
    }

    /// Open the registry a lock entry came from (its `source`).
    pub fn open_source(source_id: &str, home: &Home) -> Result<Registry, RegistryError> {
        let source = Source::from_id(source_id).ok_or_else(|| RegistryError::Malformed {
            path: PathBuf::from(crate::workshop::LOCK_FILE),
            message: format!("unknown registry source `{}`", source_id.escape_debug()),
        })?;
        Registry::open_at(&source, home)
    }

    fn open_at(source: &Source, home: &Home) -> Result<Registry, RegistryError> {
        match source {
            Source::Git(url) => {
                let root = git::sync(url, &home.git_registries())?;
                Registry::open_dir(&root, source.id())
            }
            Source::Http(url) => {
                let remote = http::Remote::sync(url, &home.http_registries())?;
                let mut registry = Registry::open_dir(&remote.root, source.id())?;
                registry.remote = Some(std::sync::Arc::new(remote));
                Ok(registry)
            }
            Source::Dir(root) => Registry::open_dir(root, source.id()),
        }
    }

    fn open_dir(root: &Path, source_id: String) -> Result<Registry, RegistryError> {
        if !root.is_dir() {
            return Err(RegistryError::Missing(root.display().to_string()));
        }
        let config_path = root.join("registry.json");
        if !config_path.is_file() {
            return Err(RegistryError::NotARegistry(root.display().to_string()));
        }
        let config = read_json(&config_path)?;
        Ok(Registry {
            source_id,
            root: root.to_owned(),
            config,
            remote: None,
            verified: None,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// This registry, reading only index files whose sha256 the verified `snapshot`
    /// lists.
    pub fn with_snapshot(&self, snapshot: Snapshot) -> Registry {
        Registry {
            verified: Some(std::sync::Arc::new(snapshot)),
            ..self.clone()
        }
    }

    /// Every plugin name in the index, sorted.
    pub fn names(&self) -> Result<Vec<String>, RegistryError> {
        let dir = self.root.join("index");
        let mut names = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
            Err(e) => return Err(RegistryError::io(&dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| RegistryError::io(&dir, e))?;
            let file = entry.file_name();
            if let Some(name) = file.to_str().and_then(|f| f.strip_suffix(".json")) {
                if valid_name(name) {
                    names.push(name.to_owned());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// The index file of one plugin.
    pub fn index(&self, name: &str) -> Result<IndexFile, RegistryError> {
        if !valid_name(name) {
            return Err(RegistryError::BadName(name.to_owned()));
        }
        let path = self.root.join("index").join(format!("{name}.json"));
        if !path.is_file() {
            return Err(RegistryError::NotFound {
                name: name.to_owned(),
                registry: self.source_id.clone(),
            });
        }
        let file: IndexFile = match &self.verified {
            None => read_json(&path)?,
            Some(snap) => {
                let rel = format!("index/{name}.json");
                let bytes = crate::confined::read_file(&path, crate::confined::MAX_FILE)
                    .map_err(|e| RegistryError::io(&path, e))?;
                if snap.files.get(&rel).map(String::as_str)
                    != Some(snapshot::sha256_hex(&bytes).as_str())
                {
                    return Err(RegistryError::Signature {
                        path,
                        message: format!(
                            "{rel} is not the file the signed snapshot lists (changed after signing, or not signed at all); nothing was installed"
                        ),
                    });
                }
                serde_json::from_slice(&bytes).map_err(|e| RegistryError::Malformed {
                    path: path.clone(),
                    message: e.to_string(),
                })?
            }
        };
        if file.name != name {
            return Err(RegistryError::Malformed {
                path,
                message: format!("names plugin `{}`", file.name.escape_debug()),
            });
        }
        for v in &file.versions {
            for (target, a) in &v.artifacts {
                if !crate::store::is_sha256(&a.sha256) {
                    return Err(RegistryError::Malformed {
                        path,
                        message: format!(
                            "{name} {} ({target}) has sha256 `{}`, not 64 lowercase hex digits; republish it with `datum registry publish`",
                            v.version,
                            a.sha256.escape_debug()
                        ),
                    });
                }
            }
        }
        Ok(file)
    }

    /// Pick the newest non-yanked version matching `req` whose API requirement this host
    /// meets and which has an artifact of `kind` for this machine.
    pub fn resolve(
        &self,
        name: &str,
        req: &VersionReq,
        kind: Kind,
        api: &Version,
    ) -> Result<Resolved, RegistryError> {
        let index = self.index(name)?;
        let mut matching: Vec<&IndexVersion> = index
            .versions
            .iter()
            .filter(|v| req.matches(&v.version) && !v.yanked)
            .collect();
        matching.sort_by(|a, b| b.version.cmp(&a.version));
        let Some(newest) = matching.first() else {
            let mut all: Vec<&Version> = index
                .versions
                .iter()
                .filter(|v| !v.yanked)
                .map(|v| &v.version)
                .collect();
            all.sort();
            return Err(RegistryError::NoMatchingVersion {
                name: name.to_owned(),
                req: req.to_string(),
                available: all
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                newest: all
                    .last()
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "…".into()),
            });
        };
        let Some(chosen) = matching.iter().find(|v| v.manifest.api.matches(api)) else {
            let compatible = index
                .versions
                .iter()
                .filter(|v| v.manifest.api.matches(api) && !v.yanked)
                .max_by(|a, b| a.version.cmp(&b.version));
            let fix = match compatible {
                Some(v) => format!("install a compatible version with `datum plugin install {name}@={}`, or upgrade datum", v.version),
                None => "upgrade datum to a release that provides that API".to_owned(),
            };
            return Err(RegistryError::ApiIncompatible {
                name: name.to_owned(),
                version: newest.version.to_string(),
                required: newest.manifest.api.to_string(),
                have: api.to_string(),
                fix,
            });
        };
        let target = kind.target();
        let artifact = chosen.artifacts.get(target).cloned().ok_or_else(|| {
            let other = kind.other();
            RegistryError::NoArtifact {
                name: name.to_owned(),
                version: chosen.version.to_string(),
                kind,
                target: target.to_owned(),
                available: chosen
                    .artifacts
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                alternative: other,
            }
        })?;
        Ok(Resolved {
            version: (*chosen).clone(),
            kind,
            artifact,
        })
    }

    /// The local file of an artifact, confined to the registry root (for a registry on
    /// the web, downloaded and checked against the index's sha256 first).
    pub fn artifact_path(&self, artifact: &Artifact) -> Result<PathBuf, RegistryError> {
        if let Some(remote) = &self.remote {
            return remote.artifact(&artifact.path, &artifact.sha256);
        }
        let rel = crate::fsutil::confined_relative(&artifact.path).ok_or_else(|| {
            RegistryError::Malformed {
                path: self.root.join("index"),
                message: format!("artifact path `{}` escapes the registry", artifact.path),
            }
        })?;
        Ok(self.root.join(rel))
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, RegistryError> {
    let text = crate::confined::read_text(path, crate::confined::MAX_FILE)
        .map_err(|e| RegistryError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| RegistryError::Malformed {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// The registry a command uses: `spec` (`--registry`), then `DATUM_REGISTRY`, then the
/// bundled one. Plugins that install through the host get the same one.
pub fn open_configured(spec: Option<&str>, home: &Home) -> anyhow::Result<Registry> {
    let spec = spec.map(str::to_owned).or_else(|| {
        std::env::var("DATUM_REGISTRY")
            .ok()
            .filter(|s| !s.is_empty())
    });
    match spec {
        Some(spec) => Ok(Registry::open(&spec, home)?),
        None => {
            let bundled = bundled_registry();
            Registry::open(&bundled.display().to_string(), home).map_err(|e| {
                anyhow::anyhow!(
                    "{e}\nthe bundled registry is built from this repository by `scripts/build-registry`; run it, or pass --registry"
                )
            })
        }
    }
}

/// The registry built next to the binary (`scripts/build-registry` writes `registry/dist`).
pub fn bundled_registry() -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let beside = dir.join("../share/datum/registry");
            if beside.join("registry.json").is_file() {
                return beside;
            }
        }
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../registry/dist"))
}
