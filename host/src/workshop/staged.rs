//! A new workshop built out of sight and moved into place whole.
//!
//! `datum boot` of a folder that does not exist yet writes the workshop into a hidden
//! staging folder beside it (`.NAME.datum-boot-PID-N`), with the per-write syncs
//! deferred ([`crate::confined::defer_syncs`]); [`Staged::finish`] then makes the whole
//! staging folder durable with one `syncfs`, renames it to its name (never over
//! anything: `RENAME_NOREPLACE`) and syncs the parent. A crash before the rename leaves
//! no workshop at all — not a half-written one — and the next boot of the same name
//! sweeps the leftover away; after it, every file is durable, git's objects included
//! (libgit2 never syncs them itself).
//!
//! The cost: one flush instead of one per file and folder (about thirty for a workshop
//! with the default plugins), but `syncfs` flushes whatever else is waiting to be
//! written on that filesystem too, so a boot next to a process writing gigabytes waits
//! for them.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rustix::fs::{RenameFlags, CWD};
use rustix::io::Errno;

/// The staging folder of a workshop being booted; removed on drop unless finished.
#[derive(Debug)]
pub struct Staged {
    target: PathBuf,
    path: PathBuf,
    finished: bool,
}

const MARK: &str = ".datum-boot-";

impl Staged {
    /// Start building the workshop `target`, which must not exist: `None` when it
    /// does (boot then works in place), or when it names no folder of its own (`.`).
    pub fn begin(target: &Path) -> anyhow::Result<Option<Staged>> {
        if target.symlink_metadata().is_ok() {
            return Ok(None);
        }
        let target = std::path::absolute(target)
            .with_context(|| format!("cannot resolve {}", target.display()))?;
        let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
            return Ok(None);
        };
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        let parent = std::fs::canonicalize(parent)
            .with_context(|| format!("cannot resolve {}", parent.display()))?;
        let prefix = format!(".{}{MARK}", name.to_string_lossy());
        sweep(&parent, &prefix);
        for n in 0..16u32 {
            let path = parent.join(format!("{prefix}{}-{n}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    crate::confined::defer_syncs(&path);
                    return Ok(Some(Staged {
                        target: parent.join(name),
                        path,
                        finished: false,
                    }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", path.display()))
                }
            }
        }
        bail!(
            "cannot find a free staging name beside {}; remove the `{prefix}*` folders there",
            target.display()
        )
    }

    /// Where the workshop is being built.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Make everything durable, then move the workshop to its name. Returns its path.
    pub fn finish(mut self) -> anyhow::Result<PathBuf> {
        let dir = std::fs::File::open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        rustix::fs::syncfs(&dir).with_context(|| format!("cannot sync {}", self.path.display()))?;
        rename_noreplace(&self.path, &self.target).map_err(|e| {
            if e == Errno::EXIST || e == Errno::NOTEMPTY {
                anyhow::anyhow!(
                    "{} appeared while it was being booted (another `datum boot`?); boot it again to use what is there",
                    self.target.display()
                )
            } else {
                anyhow::Error::new(std::io::Error::from(e)).context(format!(
                    "cannot move the new workshop into {}",
                    self.target.display()
                ))
            }
        })?;
        self.finished = true;
        crate::confined::resume_syncs(&self.path);
        if let Some(parent) = self.target.parent() {
            crate::fsutil::sync_dir(parent)
                .with_context(|| format!("cannot sync {}", parent.display()))?;
        }
        Ok(self.target.clone())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.finished {
            crate::confined::resume_syncs(&self.path);
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Remove staging folders for the same name left by boots that crashed (their
/// process is gone); a live one is another boot at work and is left alone.
fn sweep(parent: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let alive = Path::new("/proc").join(pid.to_string()).exists();
        if !alive && entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// rename(2) that fails instead of replacing: an empty folder someone made at the
/// target meanwhile is theirs, not ours to replace. Filesystems without the flag
/// (EINVAL) get a plain rename, which still never replaces a non-empty folder.
fn rename_noreplace(from: &Path, to: &Path) -> Result<(), Errno> {
    match rustix::fs::renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Err(Errno::INVAL | Errno::NOSYS) => rustix::fs::rename(from, to),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_workshop_appears_whole_and_an_abandoned_one_never_does() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("new/agent");
        let staged = Staged::begin(&target)
            .unwrap()
            .expect("a new folder is staged");
        assert!(!target.exists(), "nothing at the name while it is built");
        std::fs::write(staged.path().join("a.md"), "x").unwrap();
        let moved = staged.finish().unwrap();
        assert_eq!(std::fs::read_to_string(moved.join("a.md")).unwrap(), "x");
        let left: Vec<_> = std::fs::read_dir(tmp.path().join("new")).unwrap().collect();
        assert_eq!(left.len(), 1, "no staging folder is left behind");

        let other = tmp.path().join("new/other");
        let staged = Staged::begin(&other).unwrap().unwrap();
        std::fs::write(staged.path().join("b.md"), "y").unwrap();
        drop(staged); // a failed boot
        assert!(!other.exists());
        assert_eq!(
            std::fs::read_dir(tmp.path().join("new")).unwrap().count(),
            1
        );
    }

    #[test]
    fn an_existing_folder_is_booted_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(Staged::begin(tmp.path()).unwrap().is_none());
    }

    #[test]
    fn a_folder_made_meanwhile_is_never_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("agent");
        let staged = Staged::begin(&target).unwrap().unwrap();
        std::fs::create_dir(&target).unwrap(); // someone else's, empty
        let err = staged.finish().unwrap_err();
        assert!(
            err.to_string()
                .contains("appeared while it was being booted"),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            1,
            "staging removed"
        );
    }

    #[test]
    fn a_crashed_boots_leftover_is_swept_and_a_live_ones_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        // No process has pid 4 000 000 000 (Linux caps pids at 2^22).
        let dead = tmp.path().join(format!(".agent{MARK}4000000000-0"));
        let live = tmp
            .path()
            .join(format!(".agent{MARK}{}-9", std::process::id()));
        std::fs::create_dir_all(dead.join("context")).unwrap();
        std::fs::create_dir(&live).unwrap();
        let staged = Staged::begin(&tmp.path().join("agent")).unwrap().unwrap();
        assert!(!dead.exists());
        assert!(live.exists());
        drop(staged);
    }

    #[test]
    fn a_link_dressed_as_a_leftover_is_never_followed() {
        // Hostile: a cloned or shared folder holding a symbolic link with a staging
        // name that points at something of value. The sweep removes real folders only.
        let tmp = tempfile::tempdir().unwrap();
        let precious = tmp.path().join("precious");
        std::fs::create_dir(&precious).unwrap();
        std::fs::write(precious.join("keep.md"), "mine").unwrap();
        let bait = tmp.path().join(format!(".agent{MARK}4000000000-0"));
        std::os::unix::fs::symlink(&precious, &bait).unwrap();
        drop(Staged::begin(&tmp.path().join("agent")).unwrap());
        assert_eq!(
            std::fs::read_to_string(precious.join("keep.md")).unwrap(),
            "mine"
        );
        assert!(bait.symlink_metadata().is_ok(), "not ours to remove");
    }

    #[test]
    fn writes_beneath_a_staged_folder_defer_their_syncs_and_others_do_not() {
        let tmp = tempfile::tempdir().unwrap();
        let staged = Staged::begin(&tmp.path().join("agent")).unwrap().unwrap();
        let inside = crate::confined::Folder::open(staged.path()).unwrap();
        let outside = crate::confined::Folder::open(tmp.path()).unwrap();
        assert!(inside.defers_syncs());
        assert!(inside.sub(Path::new("a/b"), true).unwrap().defers_syncs());
        assert!(!outside.defers_syncs());
        let path = staged.path().to_owned();
        drop(staged);
        std::fs::create_dir(&path).unwrap();
        assert!(
            !crate::confined::Folder::open(&path).unwrap().defers_syncs(),
            "an abandoned staging folder's path syncs again"
        );
    }
}
