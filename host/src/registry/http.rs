//! HTTP(S) registries: a folder registry served by any static web server
//! (`--registry https://host/path/`). Opening one mirrors `registry.json`,
//! `snapshot.json` and every index file the snapshot lists into the datum home — each
//! index file checked against the snapshot's sha256 before it is kept — then reads the
//! mirror as a folder. Artifacts are fetched when installed and checked against the
//! index's sha256 before they are moved into place. ETags make an unchanged file a
//! `304`, not a download. TLS is rustls with the webpki roots, plus the certificates in
//! `DATUM_CA_FILE` (`--ca-file`) for a private CA. Every answer is size-capped and
//! time-limited: the server is not trusted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::snapshot::{self, Snapshot};
use super::RegistryError;
use crate::fsutil::atomic_write;

/// Index files, registry.json and snapshot.json are small.
const MAX_META: u64 = 16 * 1024 * 1024;
/// The largest artifact datum downloads.
const MAX_ARTIFACT: u64 = 512 * 1024 * 1024;

/// `http://…` or `https://…` (a `.git` URL is a git registry, handled before this).
pub fn url_of(spec: &str) -> Option<String> {
    let lower = spec.to_ascii_lowercase();
    (lower.starts_with("http://") || lower.starts_with("https://"))
        .then(|| format!("{}/", spec.trim_end_matches('/')))
}

/// A registry on the web and its mirror.
#[derive(Debug)]
pub struct Remote {
    base: String,
    agent: ureq::Agent,
    /// The mirror: the registry's files at their relative paths, plus `.etags.json`.
    pub root: PathBuf,
}

fn err(url: &str, message: impl Into<String>) -> RegistryError {
    RegistryError::Http {
        url: url.to_owned(),
        message: message.into(),
    }
}

impl Remote {
    fn agent(url: &str) -> Result<ureq::Agent, RegistryError> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(path) = std::env::var_os("DATUM_CA_FILE").filter(|p| !p.is_empty()) {
            let pem = std::fs::read(&path).map_err(|e| {
                err(
                    url,
                    format!("DATUM_CA_FILE {}: {e}", Path::new(&path).display()),
                )
            })?;
            let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(err(
                    url,
                    format!(
                        "DATUM_CA_FILE {} holds no PEM certificate",
                        Path::new(&path).display()
                    ),
                ));
            }
            // The private CA in addition to the public roots would need a custom
            // verifier; a private registry names its CA, and only that CA is trusted.
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)));
        }
        Ok(ureq::Agent::config_builder()
            .tls_config(tls.build())
            .timeout_global(Some(Duration::from_secs(120)))
            .timeout_connect(Some(Duration::from_secs(15)))
            .http_status_as_error(false)
            .max_redirects(5)
            .build()
            .new_agent())
    }

    /// Mirror the registry at `base` into `cache/<hash of the URL>`.
    pub fn sync(base: &str, cache: &Path) -> Result<Remote, RegistryError> {
        let root = cache.join(&snapshot::sha256_hex(base.as_bytes())[..16]);
        std::fs::create_dir_all(root.join("index")).map_err(|e| RegistryError::io(&root, e))?;
        let remote = Remote {
            base: base.to_owned(),
            agent: Remote::agent(base)?,
            root,
        };
        let mut etags = remote.etags();
        remote.fetch("registry.json", MAX_META, &mut etags)?;
        let snap_bytes = remote.fetch(snapshot::FILE, MAX_META, &mut etags).map_err(|e| {
            err(
                base,
                format!("{e}; a registry served over HTTP needs snapshot.json (republish it with `datum registry publish`)"),
            )
        })?;
        let snap: Snapshot = serde_json::from_slice(&snap_bytes)
            .map_err(|e| err(base, format!("snapshot.json is malformed: {e}")))?;
        // The signature and the key beside it, when the registry is signed (a 404 means
        // unsigned: no stale copy may make it look signed).
        for rel in [
            super::signing::SIG_FILE,
            super::signing::PUB_FILE,
            super::signing::ROTATION_FILE,
            super::signing::ROTATION_OLD_SIG,
            super::signing::ROTATION_NEW_SIG,
        ] {
            if remote.fetch_optional(rel, 64 * 1024, &mut etags)?.is_none() {
                let _ = std::fs::remove_file(remote.root.join(rel));
            }
        }
        let wanted: BTreeMap<&str, &str> = snap
            .index_files()
            .map(|(_, path, sha)| (path, sha))
            .collect();
        for (path, sha) in &wanted {
            let local = remote.root.join(path);
            let cached = std::fs::read(&local).ok();
            if cached.is_some_and(|b| snapshot::sha256_hex(&b) == *sha) {
                continue;
            }
            let bytes = remote.fetch(path, MAX_META, &mut etags)?;
            if snapshot::sha256_hex(&bytes) != *sha {
                let _ = std::fs::remove_file(&local);
                return Err(err(
                    base,
                    format!("{path} does not match the sha256 snapshot.json gives it; the registry is being updated or was tampered with — try again, and tell its owner if it persists"),
                ));
            }
        }
        // Plugins the registry no longer lists leave the mirror.
        if let Ok(entries) = std::fs::read_dir(remote.root.join("index")) {
            for entry in entries.flatten() {
                let rel = format!("index/{}", entry.file_name().to_string_lossy());
                if !wanted.contains_key(rel.as_str()) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        remote.save_etags(&etags);
        Ok(remote)
    }

    fn etags(&self) -> BTreeMap<String, String> {
        std::fs::read(self.root.join(".etags.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save_etags(&self, etags: &BTreeMap<String, String>) {
        if let Ok(text) = serde_json::to_vec_pretty(etags) {
            let _ = atomic_write(&self.root.join(".etags.json"), &text);
        }
    }

    /// GET `rel` into the mirror (a `304` keeps the mirrored copy); its bytes.
    fn fetch(
        &self,
        rel: &str,
        max: u64,
        etags: &mut BTreeMap<String, String>,
    ) -> Result<Vec<u8>, RegistryError> {
        self.fetch_optional(rel, max, etags)?.ok_or_else(|| {
            err(
                &format!("{}{rel}", self.base),
                "the server answered HTTP 404; check that the URL is the registry's folder (the one holding registry.json)",
            )
        })
    }

    /// Like [`Remote::fetch`], with a 404 as `None` (files a registry may lack).
    fn fetch_optional(
        &self,
        rel: &str,
        max: u64,
        etags: &mut BTreeMap<String, String>,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let rel_path = crate::fsutil::confined_relative(rel)
            .ok_or_else(|| err(&self.base, format!("`{rel}` escapes the registry")))?;
        let local = self.root.join(rel_path);
        let url = format!("{}{rel}", self.base);
        let mut request = self.agent.get(&url);
        if let Some(tag) = etags.get(rel).filter(|_| local.is_file()) {
            request = request.header("If-None-Match", tag);
        }
        let mut response = request.call().map_err(|e| err(&url, e.to_string()))?;
        match response.status().as_u16() {
            304 => std::fs::read(&local)
                .map(Some)
                .map_err(|e| RegistryError::io(&local, e)),
            200 => {
                let bytes = response
                    .body_mut()
                    .with_config()
                    .limit(max)
                    .read_to_vec()
                    .map_err(|e| err(&url, format!("{e} (the limit is {max} bytes)")))?;
                atomic_write(&local, &bytes).map_err(|e| RegistryError::io(&local, e))?;
                match response.headers().get("etag").and_then(|v| v.to_str().ok()) {
                    Some(tag) => etags.insert(rel.to_owned(), tag.to_owned()),
                    None => etags.remove(rel),
                };
                Ok(Some(bytes))
            }
            404 => Ok(None),
            code => Err(err(
                &url,
                format!("the server answered HTTP {code}; check that the server is up and serves the registry's folder"),
            )),
        }
    }

    /// The artifact at `rel`, in the mirror, with the sha256 the index gives it
    /// (downloaded when missing or different; a wrong download is not kept).
    pub fn artifact(&self, rel: &str, sha256: &str) -> Result<PathBuf, RegistryError> {
        let rel_path = crate::fsutil::confined_relative(rel).ok_or_else(|| {
            err(
                &self.base,
                format!("artifact path `{rel}` escapes the registry"),
            )
        })?;
        let local = self.root.join(rel_path);
        if std::fs::read(&local).is_ok_and(|b| snapshot::sha256_hex(&b) == sha256) {
            return Ok(local);
        }
        let mut etags = BTreeMap::new(); // artifacts are checked by hash, not ETag
        let bytes = self.fetch(rel, MAX_ARTIFACT, &mut etags)?;
        if snapshot::sha256_hex(&bytes) != sha256 {
            let _ = std::fs::remove_file(&local);
            return Err(err(
                &format!("{}{rel}", self.base),
                "the download does not match the sha256 in the index; nothing was installed",
            ));
        }
        Ok(local)
    }
}
