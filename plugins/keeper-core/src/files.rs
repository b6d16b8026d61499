//! File helpers shared by the Keeper's stores: writer locks, change stamps, bounded
//! reads and private folders that never take over an existing folder.

use std::io::Read;
use std::path::Path;

/// Take an exclusive lock on `path` (created owner-only if missing), waiting for
/// other holders; released when the returned file is dropped or the process dies.
pub fn lock_file(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path)?;
    file.lock()?;
    Ok(file)
}

/// What identifies the current version of a file (`None` when it is missing): an
/// atomic replace gives a new inode, an append a new size and time.
pub fn file_stamp(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(format!(
            "{}:{}:{}:{}.{}",
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec()
        ))
    }
    #[cfg(not(unix))]
    {
        Some(format!("{}:{:?}", meta.len(), meta.modified().ok()))
    }
}

/// Read a regular file whole, refusing more than `limit` bytes (whatever its
/// metadata says: a FIFO or device has no honest length).
pub fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    if !std::fs::metadata(path)?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is over the {limit}-byte limit", path.display()),
        ));
    }
    Ok(bytes)
}

/// Create `dir` (and its parents) with owner-only mode when missing. An existing
/// folder is left exactly as it is: changing its mode could take over a shared
/// folder (`/tmp`) — [`is_private_dir`] lets callers refuse such a folder instead.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Is `dir` a folder only its owner can enter (no group or other bits)?
pub fn is_private_dir(dir: &Path) -> std::io::Result<bool> {
    let meta = std::fs::metadata(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Ok(meta.is_dir() && meta.permissions().mode() & 0o077 == 0)
    }
    #[cfg(not(unix))]
    {
        Ok(meta.is_dir())
    }
}
