//! Crash-safe file writes to paths datum chose itself (the store, registries, caches).
//! Workshop files, whose folders a cloned workshop controls, go through
//! [`crate::confined::Folder`] instead.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

/// Write `contents` to `path` atomically: temp file in the same folder, fsync, rename,
/// fsync the folder. A reader sees the old file or the new one, never a torn mix.
pub fn atomic_write(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let (dir, tmp) = synced_temp(path, contents)?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// A temp file beside `path` (its folder created if needed) holding `contents`, synced.
fn synced_temp<'p>(
    path: &'p Path,
    contents: &[u8],
) -> std::io::Result<(&'p Path, tempfile::NamedTempFile)> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    // Ordinary files get ordinary modes (0666 less the umask, as any tool's would);
    // only secrets and tokens are written owner-only, elsewhere.
    let mut tmp = tempfile::Builder::new()
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)?;
    tmp.write_all(contents)?;
    tmp.as_file().sync_all()?;
    Ok((dir, tmp))
}

/// A rename or link is only durable once the directory entry is: sync folder `dir`.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    sync_opened_dir(&std::fs::File::open(dir)?)
}

/// Sync a folder opened for reading. A filesystem that cannot sync folders at all
/// (EINVAL) has nothing more to give; any other failure is an error.
pub fn sync_opened_dir(dir: &std::fs::File) -> std::io::Result<()> {
    match dir.sync_all() {
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(()),
        other => other,
    }
}

/// A path that came from a plugin or user, checked to stay inside a root: relative,
/// no `..`, no root or prefix components. Returns the cleaned relative path.
pub fn confined_relative(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b.txt");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        assert_eq!(
            std::fs::read_dir(p.parent().unwrap()).unwrap().count(),
            1,
            "no temp files left"
        );
    }

    #[test]
    fn escaping_paths_are_refused() {
        assert_eq!(
            confined_relative("notes/./a.md"),
            Some(PathBuf::from("notes/a.md"))
        );
        assert_eq!(confined_relative("../etc/passwd"), None);
        assert_eq!(confined_relative("/etc/passwd"), None);
        assert_eq!(confined_relative("notes/../../x"), None);
        assert_eq!(confined_relative(""), None);
    }
}
