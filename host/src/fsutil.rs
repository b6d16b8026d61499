//! Crash-safe file writes: everything a crash could tear goes through here.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

/// Write `contents` to `path` atomically: temp file in the same folder, fsync, rename,
/// fsync the folder. A reader sees the old file or the new one, never a torn mix.
pub fn atomic_write(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let (dir, tmp) = synced_temp(path, contents)?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir);
    Ok(())
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
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(contents)?;
    tmp.as_file().sync_all()?;
    Ok((dir, tmp))
}

/// A rename or link is only durable once the directory entry is.
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Create `path` with `contents` atomically and only if nothing exists there: the
/// file appears complete or not at all, and an existing file is never replaced.
/// Returns `false` when the name was taken (by anyone, even concurrently).
pub fn atomic_create(path: &Path, contents: &[u8]) -> std::io::Result<bool> {
    let (dir, tmp) = synced_temp(path, contents)?;
    match tmp.persist_noclobber(path) {
        Ok(_) => {}
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(e.error),
    }
    sync_dir(dir);
    Ok(true)
}

/// Append a line durably (journal, trail): open, append, fsync.
pub fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(line.as_bytes())?;
    if !line.ends_with('\n') {
        f.write_all(b"\n")?;
    }
    f.sync_data()
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
    fn atomic_create_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("inbox/one.md");
        assert!(atomic_create(&p, b"first").unwrap());
        assert!(!atomic_create(&p, b"second").unwrap());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "first");
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
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
