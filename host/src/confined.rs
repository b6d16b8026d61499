//! Folders opened as capabilities, and bounded reads.
//!
//! A [`Folder`] is a `cap_std::fs::Dir`: every path given to it is resolved beneath
//! it by the operating system's `openat` family, component by component, so neither
//! `..` nor a symbolic link (however deep) can lead out of it — the mechanism
//! wasmtime's WASI preopens use. Host services open the *granted* folder this way,
//! not the workshop, so a link from one granted folder into another is refused too.
//!
//! Every read is bounded: at most `limit + 1` bytes are read, whatever the file's
//! metadata claims (a FIFO or `/dev/zero` has no honest length), and only regular
//! files are read where a file is expected.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};

/// What a workshop file or a plugin's file may weigh when read whole.
pub const MAX_FILE: u64 = 16 * 1024 * 1024;

/// A folder opened as a capability.
#[derive(Debug)]
pub struct Folder {
    dir: Dir,
    /// For messages only.
    label: PathBuf,
    /// Beneath a folder whose syncs are deferred (see [`defer_syncs`]).
    deferred: bool,
}

/// Folders nothing else can see yet — a new workshop is built beside its final place
/// and renamed in (`workshop::Staged`) — whose writes skip their own syncs, because
/// the whole folder is made durable once before it appears. Every other folder syncs
/// each write. Canonical paths; a `Folder` opened beneath one of them defers.
static DEFERRED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Defer the syncs of writes beneath `root` (canonical) until [`resume_syncs`]; the
/// caller makes `root` durable as a whole (`syncfs`) before anyone may rely on it.
pub(crate) fn defer_syncs(root: &Path) {
    if let Ok(mut d) = DEFERRED.lock() {
        d.push(root.to_owned());
    }
}

/// Writes beneath `root` sync each write again.
pub(crate) fn resume_syncs(root: &Path) {
    if let Ok(mut d) = DEFERRED.lock() {
        d.retain(|p| p != root);
    }
}

fn is_deferred(path: &Path) -> bool {
    // A poisoned lock cannot tell: syncing is the safe answer.
    DEFERRED
        .lock()
        .is_ok_and(|d| d.iter().any(|root| path.starts_with(root)))
}

/// One entry of [`Folder::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub kind: EntryKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    /// Symbolic links, sockets, devices: listed, never followed or read.
    Other,
}

fn invalid(kind: std::io::ErrorKind, message: String) -> std::io::Error {
    std::io::Error::new(kind, message)
}

/// `rel` as a relative path of plain components (no root, no `..`), or an error.
fn relative(rel: &Path) -> std::io::Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => {
                return Err(invalid(
                    std::io::ErrorKind::PermissionDenied,
                    format!("`{}` leaves its folder", rel.display()),
                ))
            }
        }
    }
    Ok(out)
}

/// cap-std reports an escape as a bare PermissionDenied; say what happened.
fn explain(label: &Path, rel: &Path, e: std::io::Error) -> std::io::Error {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        invalid(
            e.kind(),
            format!(
                "`{}` leads outside {} (through `..` or a symbolic link); datum never follows a path out of its folder",
                rel.display(),
                label.display()
            ),
        )
    } else {
        e
    }
}

impl Folder {
    /// Open an existing folder (the one ambient step; everything after is beneath it).
    pub fn open(path: &Path) -> std::io::Result<Folder> {
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority())?;
        Ok(Folder {
            dir,
            label: path.to_owned(),
            deferred: is_deferred(path),
        })
    }

    pub fn label(&self) -> &Path {
        &self.label
    }

    #[cfg(test)]
    pub(crate) fn defers_syncs(&self) -> bool {
        self.deferred
    }

    /// A folder beneath this one, created first when `create` is set.
    pub fn sub(&self, rel: &Path, create: bool) -> std::io::Result<Folder> {
        let rel = relative(rel)?;
        if rel.as_os_str().is_empty() {
            return Ok(Folder {
                dir: self.dir.try_clone()?,
                label: self.label.clone(),
                deferred: self.deferred,
            });
        }
        if create {
            if let Err(e) = self.dir.create_dir_all(&rel) {
                // A link out of the folder makes mkdir say "exists"; opening it says
                // what is really wrong.
                if let Err(open) = self.dir.open_dir(&rel) {
                    return Err(explain(&self.label, &rel, open));
                }
                return Err(explain(&self.label, &rel, e));
            }
        }
        let dir = self
            .dir
            .open_dir(&rel)
            .map_err(|e| explain(&self.label, &rel, e))?;
        Ok(Folder {
            dir,
            label: self.label.join(rel),
            deferred: self.deferred,
        })
    }

    /// The folder holding `rel` (created when `create`), and `rel`'s last component.
    fn parent_of(&self, rel: &Path, create: bool) -> std::io::Result<(Folder, PathBuf)> {
        let (parent, name) = split(rel)?;
        Ok((self.sub(&parent, create)?, name))
    }

    /// Read a regular file whole, refusing anything over `limit` bytes.
    pub fn read(&self, rel: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
        let rel = relative(rel)?;
        let what = self.label.join(&rel);
        // Checked before opening: opening a FIFO for reading would block.
        let meta = self
            .dir
            .metadata(&rel)
            .map_err(|e| explain(&self.label, &rel, e))?;
        if !meta.is_file() {
            return Err(not_regular(&what));
        }
        let file = self
            .dir
            .open(&rel)
            .map_err(|e| explain(&self.label, &rel, e))?;
        read_limited(file.into_std(), &what, limit)
    }

    /// Replace (or create) a file atomically: a temp file beside it, fsync, rename,
    /// fsync the folder. The rename replaces a link itself, never what it points to.
    pub fn write(&self, rel: &Path, contents: &[u8]) -> std::io::Result<()> {
        self.write_mode(rel, contents, 0o666)
    }

    /// [`Folder::write`] for tokens and keys: the file is owner-only (0600) from the
    /// moment it exists.
    pub fn write_private(&self, rel: &Path, contents: &[u8]) -> std::io::Result<()> {
        self.write_mode(rel, contents, 0o600)
    }

    /// `mode` is filtered by the umask, as for any new file.
    fn write_mode(&self, rel: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
        let (parent, name) = self.parent_of(rel, true)?;
        let tmp = parent.temp_file(&name, contents, mode)?;
        let renamed = parent.dir.rename(&tmp, &parent.dir, &name);
        if renamed.is_err() {
            let _ = parent.dir.remove_file(&tmp);
        }
        renamed.map_err(|e| explain(&self.label, rel, e))?;
        parent.sync()
    }

    /// Create a file only if its name is free, atomically (complete or absent).
    /// `false` when the name was taken, even concurrently.
    pub fn create(&self, rel: &Path, contents: &[u8]) -> std::io::Result<bool> {
        let (parent, name) = self.parent_of(rel, true)?;
        let tmp = parent.temp_file(&name, contents, 0o666)?;
        // A hard link fails if the name exists: no-clobber without a race.
        let linked = parent.dir.hard_link(&tmp, &parent.dir, &name);
        let _ = parent.dir.remove_file(&tmp);
        match linked {
            Ok(()) => {
                parent.sync()?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(explain(&self.label, rel, e)),
        }
    }

    /// [`Folder::create`] for many files in one pass: every file is written under a
    /// temporary name, then all are synced back to back, then each is linked into place
    /// if its name is free, then each folder (and each folder above it, up to this one)
    /// is synced once, not once per file. Each file is still complete or absent after a
    /// crash; the answer says, per file, whether it was created (`false`: the name was
    /// taken, which is not an error). In a folder whose syncs are deferred, see
    /// [`Folder::create_all_in_place`].
    pub fn create_all(&self, files: &[(&Path, &[u8])]) -> std::io::Result<Vec<bool>> {
        if self.deferred {
            return self.create_all_in_place(files);
        }
        struct Pending {
            /// Index into `parents`.
            parent: usize,
            name: PathBuf,
            tmp: PathBuf,
            file: std::fs::File,
        }
        let mut parents: Vec<(PathBuf, Folder)> = Vec::new();
        let cleanup = |parents: &[(PathBuf, Folder)], pending: &[Pending]| {
            for p in pending {
                let _ = parents[p.parent].1.dir.remove_file(&p.tmp);
            }
        };
        let mut pending: Vec<Pending> = Vec::with_capacity(files.len());
        for (rel, contents) in files {
            let written = split(rel).and_then(|(parent_rel, name)| {
                let parent = self.sub_once(&mut parents, parent_rel)?;
                let (tmp, file) = parents[parent]
                    .1
                    .temp_file_unsynced(&name, contents, 0o666)?;
                Ok(Pending {
                    parent,
                    name,
                    tmp,
                    file,
                })
            });
            match written {
                Ok(p) => pending.push(p),
                Err(e) => {
                    cleanup(&parents, &pending);
                    return Err(explain(&self.label, rel, e));
                }
            }
        }
        if let Err(e) = pending.iter().try_for_each(|p| self.sync_file(&p.file)) {
            cleanup(&parents, &pending);
            return Err(e);
        }
        let mut created = Vec::with_capacity(pending.len());
        let mut failure = None;
        for p in &pending {
            let (parent_rel, parent) = &parents[p.parent];
            if failure.is_none() {
                match parent.dir.hard_link(&p.tmp, &parent.dir, &p.name) {
                    Ok(()) => created.push(true),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => created.push(false),
                    Err(e) => failure = Some(explain(&self.label, &parent_rel.join(&p.name), e)),
                }
            }
            let _ = parent.dir.remove_file(&p.tmp);
        }
        // Each folder that got a name, and the folders above it up to this one (any
        // of them may have been made for these files), synced once each.
        let mut synced: Vec<&Path> = Vec::new();
        for (parent_rel, _) in &parents {
            for folder in parent_rel.ancestors() {
                if synced.contains(&folder) {
                    continue;
                }
                let done = match parents.iter().find(|(p, _)| p == folder) {
                    Some((_, open)) => open.sync(),
                    None => self.sub(folder, false).and_then(|f| f.sync()),
                };
                if let Err(e) = done {
                    failure.get_or_insert(e);
                }
                synced.push(folder);
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(created),
        }
    }

    /// [`Folder::create_all`] in a folder nobody sees until it is complete (and that a
    /// crash discards): each file is written at its own name, still never over one
    /// that exists, without the temporary name and the link.
    fn create_all_in_place(&self, files: &[(&Path, &[u8])]) -> std::io::Result<Vec<bool>> {
        let mut parents: Vec<(PathBuf, Folder)> = Vec::new();
        let mut created = Vec::with_capacity(files.len());
        for (rel, contents) in files {
            let (parent_rel, name) = split(rel)?;
            let parent = self
                .sub_once(&mut parents, parent_rel)
                .map_err(|e| explain(&self.label, rel, e))?;
            let parent = &parents[parent].1;
            let mut options = OpenOptions::new();
            options.write(true).create_new(true).mode(0o666);
            let mut file = match parent.dir.open_with(&name, &options) {
                Ok(f) => f.into_std(),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    created.push(false);
                    continue;
                }
                Err(e) => return Err(explain(&self.label, rel, e)),
            };
            if let Err(e) = file.write_all(contents) {
                let _ = parent.dir.remove_file(&name);
                return Err(e);
            }
            created.push(true);
        }
        Ok(created)
    }

    /// The folder `rel` beneath this one (created if needed) as an index into `opened`,
    /// opened only the first time it is asked for: a batch of files opens each of
    /// their folders once, however many files it gets.
    fn sub_once(
        &self,
        opened: &mut Vec<(PathBuf, Folder)>,
        rel: PathBuf,
    ) -> std::io::Result<usize> {
        if let Some(i) = opened.iter().position(|(p, _)| *p == rel) {
            return Ok(i);
        }
        let folder = self.sub(&rel, true)?;
        opened.push((rel, folder));
        Ok(opened.len() - 1)
    }

    /// Append a line durably (journal, trail), creating the file if needed.
    pub fn append_line(&self, rel: &Path, line: &str) -> std::io::Result<()> {
        let (parent, name) = self.parent_of(rel, true)?;
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        let file = parent
            .dir
            .open_with(&name, &options)
            .map_err(|e| explain(&self.label, rel, e))?;
        let mut file = file.into_std();
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(not_regular(&self.label.join(rel)));
        }
        // One write: with O_APPEND, concurrent appenders' lines never interleave.
        let mut bytes = line.as_bytes().to_vec();
        if !line.ends_with('\n') {
            bytes.push(b'\n');
        }
        file.write_all(&bytes)?;
        if !self.deferred {
            file.sync_data()?;
        }
        // An empty file may be one this call created: its name is durable only once
        // its folder is.
        if meta.len() == 0 {
            parent.sync()?;
        }
        Ok(())
    }

    /// Entries of a folder beneath this one, sorted by name; a missing folder is empty.
    /// Names that are not UTF-8 are left out (nothing could name them back).
    pub fn list(&self, rel: &Path) -> std::io::Result<Vec<Entry>> {
        let sub = match self.sub(rel, false) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in sub.dir.entries()? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let t = entry.file_type()?;
            let kind = if t.is_dir() {
                EntryKind::Dir
            } else if t.is_file() {
                EntryKind::File
            } else {
                EntryKind::Other
            };
            out.push(Entry { name, kind });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Remove a file beneath this folder.
    pub fn remove_file(&self, rel: &Path) -> std::io::Result<()> {
        let rel = relative(rel)?;
        self.dir
            .remove_file(&rel)
            .map_err(|e| explain(&self.label, &rel, e))
    }

    /// Does `rel` exist beneath this folder (without following a final link)?
    pub fn exists(&self, rel: &Path) -> bool {
        relative(rel).is_ok_and(|r| self.dir.symlink_metadata(r).is_ok())
    }

    /// A fresh dot-file (skipped by listings of bottles and by git-synced folders)
    /// holding `contents`, synced.
    fn temp_file(&self, name: &Path, contents: &[u8], mode: u32) -> std::io::Result<PathBuf> {
        let (tmp, file) = self.temp_file_unsynced(name, contents, mode)?;
        if let Err(e) = self.sync_file(&file) {
            let _ = self.dir.remove_file(&tmp);
            return Err(e);
        }
        Ok(tmp)
    }

    /// [`Folder::temp_file`] before its sync: the caller syncs the returned file.
    fn temp_file_unsynced(
        &self,
        name: &Path,
        contents: &[u8],
        mode: u32,
    ) -> std::io::Result<(PathBuf, std::fs::File)> {
        let stem = name.to_string_lossy();
        for attempt in 0..16u32 {
            let tmp = PathBuf::from(format!(".{stem}.tmp-{}-{attempt}", unique()));
            let mut options = OpenOptions::new();
            options.write(true).create_new(true).mode(mode);
            let file = match self.dir.open_with(&tmp, &options) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            };
            let mut file = file.into_std();
            if let Err(e) = file.write_all(contents) {
                let _ = self.dir.remove_file(&tmp);
                return Err(e);
            }
            return Ok((tmp, file));
        }
        Err(std::io::Error::other(
            "could not find a free temporary name",
        ))
    }

    /// A file's contents and size, durably (unless deferred).
    fn sync_file(&self, file: &std::fs::File) -> std::io::Result<()> {
        if self.deferred {
            return Ok(());
        }
        file.sync_all()
    }

    /// A rename or link is only durable once the directory entry is. cap-std holds a
    /// folder as an `O_PATH` descriptor, which cannot be synced (fsync says EBADF), so
    /// the folder is opened once more, for reading, to sync it.
    fn sync(&self) -> std::io::Result<()> {
        if self.deferred {
            return Ok(());
        }
        let mut options = OpenOptions::new();
        options.read(true);
        crate::fsutil::sync_opened_dir(&self.dir.open_with(".", &options)?.into_std())
    }
}

/// `rel` as its folder (empty for this one) and its last component.
fn split(rel: &Path) -> std::io::Result<(PathBuf, PathBuf)> {
    let rel = relative(rel)?;
    let name = rel.file_name().map(PathBuf::from).ok_or_else(|| {
        invalid(
            std::io::ErrorKind::InvalidInput,
            format!("`{}` names no file", rel.display()),
        )
    })?;
    let parent = rel.parent().map(PathBuf::from).unwrap_or_default();
    Ok((parent, name))
}

/// Process id and a clock reading: unique enough for a temp name that is created
/// with `create_new` (a collision only means another try).
fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{nanos:x}", std::process::id())
}

fn not_regular(path: &Path) -> std::io::Error {
    invalid(
        std::io::ErrorKind::InvalidInput,
        format!(
            "{} is not a regular file (a FIFO, device or folder); name a file",
            path.display()
        ),
    )
}

/// Read an opened file whole: regular files only, at most `limit` bytes.
fn read_limited(file: std::fs::File, what: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    if !file.metadata()?.is_file() {
        return Err(not_regular(what));
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(invalid(
            std::io::ErrorKind::InvalidData,
            format!("{} is over the {limit}-byte limit", what.display()),
        ));
    }
    Ok(bytes)
}

/// Read a file the user or a registry named (ambient path), bounded by `limit` and
/// refusing anything but a regular file. Opening a FIFO would block, so the type is
/// checked before opening, and again on the opened handle (the path could change).
pub fn read_file(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(not_regular(path));
    }
    read_limited(std::fs::File::open(path)?, path, limit)
}

/// Like [`read_file`], as UTF-8 text.
pub fn read_text(path: &Path, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read_file(path, limit)?).map_err(|_| {
        invalid(
            std::io::ErrorKind::InvalidData,
            format!("{} is not UTF-8 text", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_out_of_the_folder_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("out")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("s.md"))
            .unwrap();
        let f = Folder::open(root.path()).unwrap();
        assert!(f.read(Path::new("s.md"), 10).is_err());
        assert!(f.write(Path::new("out/new"), b"x").is_err());
        assert!(f.create(Path::new("out/new2"), b"x").is_err());
        assert!(f.append_line(Path::new("out/log"), "x").is_err());
        assert!(f.sub(Path::new("out"), false).is_err());
        assert!(f.read(Path::new("../x"), 10).is_err());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_folder_can_be_synced() {
        // cap-std holds folders as O_PATH descriptors, and fsync on one fails (EBADF):
        // once, that failure was ignored and no rename or link was ever made durable.
        let root = tempfile::tempdir().unwrap();
        let f = Folder::open(root.path()).unwrap();
        f.sync().unwrap();
        f.sub(Path::new("a/b"), true).unwrap().sync().unwrap();
    }

    #[test]
    fn writes_are_atomic_and_creates_never_clobber() {
        let root = tempfile::tempdir().unwrap();
        let f = Folder::open(root.path()).unwrap();
        f.write(Path::new("a/b.txt"), b"one").unwrap();
        f.write(Path::new("a/b.txt"), b"two").unwrap();
        assert_eq!(f.read(Path::new("a/b.txt"), 3).unwrap(), b"two");
        assert!(f.read(Path::new("a/b.txt"), 2).is_err(), "over the limit");
        assert!(f.create(Path::new("a/c"), b"1").unwrap());
        assert!(!f.create(Path::new("a/c"), b"2").unwrap());
        assert_eq!(f.read(Path::new("a/c"), 9).unwrap(), b"1");
        let names: Vec<String> = f
            .list(Path::new("a"))
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["b.txt", "c"], "no temp files left");
    }

    /// A batch of three into `f`, one over a file that exists: two are created, in new
    /// folders too, and the existing one is kept.
    fn creates_the_new_and_keeps_the_existing(f: &Folder) {
        f.write(Path::new("docs/kept.md"), b"mine").unwrap();
        let created = f
            .create_all(&[
                (Path::new("top.txt"), b"1"),
                (Path::new("docs/kept.md"), b"template"),
                (Path::new("docs/deep/new.md"), b"3"),
            ])
            .unwrap();
        assert_eq!(created, [true, false, true]);
        assert_eq!(f.read(Path::new("top.txt"), 9).unwrap(), b"1");
        assert_eq!(f.read(Path::new("docs/kept.md"), 9).unwrap(), b"mine");
        assert_eq!(f.read(Path::new("docs/deep/new.md"), 9).unwrap(), b"3");
    }

    #[test]
    fn create_all_writes_in_one_pass_and_never_clobbers() {
        let root = tempfile::tempdir().unwrap();
        let f = Folder::open(root.path()).unwrap();
        creates_the_new_and_keeps_the_existing(&f);
        for dir in ["", "docs", "docs/deep"] {
            let names: Vec<String> = f
                .list(Path::new(dir))
                .unwrap()
                .into_iter()
                .map(|e| e.name)
                .filter(|n| n.starts_with('.'))
                .collect();
            assert!(names.is_empty(), "temp files left in `{dir}`: {names:?}");
        }
        // A link out of the folder fails the batch, and nothing is left half-made.
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("out")).unwrap();
        assert!(f
            .create_all(&[(Path::new("fine.txt"), b"x"), (Path::new("out/x"), b"x")])
            .is_err());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        assert!(
            !f.exists(Path::new("fine.txt")),
            "nothing linked on failure"
        );
        let leftovers = f
            .list(Path::new(""))
            .unwrap()
            .into_iter()
            .filter(|e| e.name.starts_with(".fine"))
            .count();
        assert_eq!(leftovers, 0, "the temp file of fine.txt is removed");
    }

    #[test]
    fn create_all_in_a_deferred_folder_writes_in_place_and_still_never_clobbers() {
        let root = tempfile::tempdir().unwrap();
        let canonical = std::fs::canonicalize(root.path()).unwrap();
        defer_syncs(&canonical);
        let f = Folder::open(&canonical).unwrap();
        resume_syncs(&canonical);
        assert!(f.defers_syncs());
        creates_the_new_and_keeps_the_existing(&f);
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("out")).unwrap();
        assert!(f.create_all(&[(Path::new("out/x"), b"x")]).is_err());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn special_files_are_not_read() {
        assert!(read_file(Path::new("/dev/zero"), 10).is_err());
        let root = tempfile::tempdir().unwrap();
        let big = root.path().join("big");
        std::fs::write(&big, vec![0u8; 11]).unwrap();
        assert!(read_file(&big, 10).is_err());
        assert_eq!(read_file(&big, 11).unwrap().len(), 11);
    }
}
