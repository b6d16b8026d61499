//! Git-hosted registries: cloned once into the datum home, fetched on every open.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::RegistryError;

/// The git URL a registry spec names, if it names one: `git+URL`, or any URL ending in `.git`.
pub fn url_of(spec: &str) -> Option<String> {
    if let Some(url) = spec.strip_prefix("git+") {
        return Some(url.to_owned());
    }
    let looks_remote = spec.contains("://") || spec.starts_with("git@");
    (looks_remote && spec.trim_end_matches('/').ends_with(".git")).then(|| spec.to_owned())
}

fn err(url: &str, e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Git {
        url: url.to_owned(),
        message: e.to_string(),
    }
}

/// Clone `url` (first use) or fetch and fast-forward it, returning the checkout path.
pub fn sync(url: &str, clones: &Path) -> Result<PathBuf, RegistryError> {
    let key = hex::encode(Sha256::digest(url.as_bytes()));
    let path = clones.join(&key[..16]);
    if !path.join(".git").is_dir() {
        std::fs::create_dir_all(clones).map_err(|e| RegistryError::io(clones, e))?;
        // Clone into a temp folder and rename, so an interrupted clone leaves nothing half-made.
        let tmp = tempfile::tempdir_in(clones).map_err(|e| RegistryError::io(clones, e))?;
        git2::Repository::clone(url, tmp.path()).map_err(|e| err(url, e.message()))?;
        let tmp = tmp.keep();
        std::fs::rename(&tmp, &path).map_err(|e| RegistryError::io(&path, e))?;
        return Ok(path);
    }
    let repo = git2::Repository::open(&path).map_err(|e| err(url, e.message()))?;
    let head = repo.head().map_err(|e| err(url, e.message()))?;
    let branch = head
        .shorthand()
        .map_err(|_| err(url, "the clone's HEAD is not on a branch"))?
        .to_owned();
    let mut remote = repo
        .find_remote("origin")
        .map_err(|e| err(url, e.message()))?;
    remote
        .fetch(
            &[format!("+refs/heads/{branch}:refs/remotes/origin/{branch}")],
            None,
            None,
        )
        .map_err(|e| {
            err(
                url,
                format!("fetch failed ({}); is the registry reachable?", e.message()),
            )
        })?;
    let target = repo
        .refname_to_id(&format!("refs/remotes/origin/{branch}"))
        .map_err(|e| err(url, e.message()))?;
    let object = repo
        .find_object(target, None)
        .map_err(|e| err(url, e.message()))?;
    repo.reset(&object, git2::ResetType::Hard, None)
        .map_err(|e| err(url, e.message()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_that_name_git() {
        assert_eq!(
            url_of("git+file:///srv/reg"),
            Some("file:///srv/reg".into())
        );
        assert_eq!(
            url_of("https://example.org/reg.git"),
            Some("https://example.org/reg.git".into())
        );
        assert_eq!(url_of("./registry/dist"), None);
        assert_eq!(
            url_of("/srv/reg.git"),
            None,
            "a local folder stays a folder"
        );
    }
}
