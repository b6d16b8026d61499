//! Task boards shared through git: every board is a TASKBOARD.md at the root of a
//! fleet repository, mirrored (bare) into the workshop's cache.
//!
//! A change is a compare-and-swap on the remote's branch: fetch, read the board at the
//! tip, check the task, write one commit on top of that tip, and move the remote branch
//! only if it still points at that tip. When another agent got there first the swap
//! fails, and the whole thing starts again from the new tip — so of two agents claiming
//! one task at the same moment exactly one wins, and the other is told who has it.
//!
//! For a remote on this machine (a path or `file://`), libgit2's push would move the
//! branch without comparing it to the tip that was read, so the swap is done here:
//! the new objects are written into the remote's object database (content-addressed:
//! writing one twice is harmless) and the branch is moved with
//! `reference_matching`, which checks the old value under git's own ref lock. For a
//! network remote, git's non-fast-forward rejection is the swap.

use std::path::{Path, PathBuf};

use git2::{Oid, Repository, Signature};
use sha2::Digest;

use crate::board::{Board, State, Task};
use crate::error::FleetError;

pub const BOARD_FILE: &str = "TASKBOARD.md";
const REPORTS: &str = "reports";
/// Swaps attempted before giving up (each lost one means someone else's change landed).
const ATTEMPTS: usize = 30;
/// Boards and reports larger than this are refused.
const MAX_BOARD: usize = 4 * 1024 * 1024;
const TIP: &str = "refs/datum/board";

pub struct BoardRepo {
    pub name: String,
    pub remote: String,
    mirror: Repository,
}

/// What a change did.
#[derive(Debug, serde::Serialize)]
pub struct Changed {
    pub board: String,
    pub task: Task,
    pub commit: String,
    /// Swaps lost to other agents before this one landed.
    pub retries: usize,
}

/// Whether a remote string names a repository on this machine.
fn local_path(remote: &str) -> Option<PathBuf> {
    if let Some(p) = remote.strip_prefix("file://") {
        return Some(PathBuf::from(p));
    }
    if remote.contains("://")
        || (remote.contains(':') && !remote.starts_with('/') && !remote.starts_with('.'))
    {
        return None;
    }
    Some(PathBuf::from(remote))
}

fn unreachable(remote: &str, e: &git2::Error) -> FleetError {
    FleetError::Unreachable {
        what: format!("the task board at {remote}"),
        reason: e.message().to_owned(),
        hint: "check the board's remote in .superagent/fleet.toml (`datum fleet add-board NAME REMOTE`)".into(),
    }
}

impl BoardRepo {
    /// Open (creating on first use) the board's mirror under `cache`.
    pub fn open(name: &str, remote: &str, cache: &Path) -> Result<BoardRepo, FleetError> {
        let digest = hex::encode(sha2::Sha256::digest(remote.as_bytes()));
        let dir = cache.join(format!("{name}-{}.git", &digest[..12]));
        let mirror = match Repository::open_bare(&dir) {
            Ok(r) => r,
            Err(_) => {
                std::fs::create_dir_all(cache).map_err(|e| {
                    FleetError::failed(
                        format!("cannot create {}: {e}", cache.display()),
                        "check the workshop's permissions",
                    )
                })?;
                let _ = std::fs::remove_dir_all(&dir);
                Repository::init_bare(&dir)?
            }
        };
        Ok(BoardRepo {
            name: name.to_owned(),
            remote: remote.to_owned(),
            mirror,
        })
    }

    /// Fetch the remote's default branch; returns its name and tip.
    pub fn fetch(&self) -> Result<(String, Option<Oid>), FleetError> {
        let mut remote = self
            .mirror
            .remote_anonymous(&self.remote)
            .map_err(|e| unreachable(&self.remote, &e))?;
        remote
            .connect(git2::Direction::Fetch)
            .map_err(|e| unreachable(&self.remote, &e))?;
        let branch = remote
            .default_branch()
            .ok()
            .and_then(|b| b.as_str().ok().map(str::to_owned))
            .unwrap_or_else(|| "refs/heads/main".to_owned());
        remote
            .disconnect()
            .map_err(|e| unreachable(&self.remote, &e))?;
        if !branch.starts_with("refs/heads/") || branch.contains("..") {
            return Err(FleetError::Protocol {
                what: format!("the task board at {}", self.remote),
                reason: "its default branch is not a branch".into(),
            });
        }
        remote
            .fetch(&[format!("+{branch}:{TIP}")], None, None)
            .map_err(|e| unreachable(&self.remote, &e))?;
        let tip = self.mirror.refname_to_id(TIP).ok();
        Ok((branch, tip))
    }

    /// The board at a commit (an empty board when the repository has none yet).
    pub fn board_at(&self, tip: Option<Oid>) -> Result<Board, FleetError> {
        let Some(tip) = tip else {
            return Ok(Board::empty());
        };
        let tree = self.mirror.find_commit(tip)?.tree()?;
        let Some(entry) = tree.get_name(BOARD_FILE) else {
            return Err(FleetError::failed(
                format!(
                    "the repository {} has no {BOARD_FILE} at its root",
                    self.remote
                ),
                "check the board's remote, or add a TASKBOARD.md to that repository",
            ));
        };
        if entry.filemode() & 0o170000 != 0o100000 {
            return Err(FleetError::failed(
                format!("{BOARD_FILE} in {} is not a regular file", self.remote),
                "a board is a plain markdown file",
            ));
        }
        let (size, _) = self.mirror.odb()?.read_header(entry.id())?;
        if size > MAX_BOARD {
            return Err(FleetError::failed(
                format!(
                    "{BOARD_FILE} in {} is {size} bytes, over the {MAX_BOARD}-byte limit",
                    self.remote
                ),
                "trim the board",
            ));
        }
        let blob = self.mirror.find_blob(entry.id())?;
        let text = std::str::from_utf8(blob.content()).map_err(|_| {
            FleetError::failed(
                format!("{BOARD_FILE} in {} is not UTF-8 text", self.remote),
                "fix the board's encoding",
            )
        })?;
        Board::parse(text)
            .map_err(|e| FleetError::failed(format!("{} ({})", e, self.remote), "trim the board"))
    }

    /// Apply `change` to the task `id` and publish it, retrying from the new tip each
    /// time another agent's change lands first. `change` sees the task as it is now
    /// and returns its new form, or an error refusing (e.g. "claimed by bob").
    pub fn change(
        &self,
        id: &str,
        agent: &str,
        message: &str,
        report: Option<(&str, &[u8])>,
        change: impl Fn(&Task) -> Result<Option<Task>, FleetError>,
    ) -> Result<Changed, FleetError> {
        for retries in 0..ATTEMPTS {
            let (branch, tip) = self.fetch()?;
            let tip_id = tip.ok_or_else(|| {
                FleetError::failed(
                    format!("the board {} is an empty repository", self.remote),
                    "commit a TASKBOARD.md to it first",
                )
            })?;
            let mut board = self.board_at(tip)?;
            let task = board.task(id).cloned().ok_or_else(|| {
                FleetError::invalid(
                    format!(
                        "there is no task {} on the board `{}`",
                        capability::shown(id),
                        self.name
                    ),
                    "`datum fleet tasks list` shows the tasks",
                )
            })?;
            let Some(new) = change(&task)? else {
                // Nothing to do (already so): report the task as it stands.
                return Ok(Changed {
                    board: self.name.clone(),
                    task,
                    commit: tip_id.to_string(),
                    retries,
                });
            };
            board.set(&new);
            let commit = self.commit_on(tip_id, &board.text(), report, agent, message)?;
            if self.publish(&branch, tip_id, commit)? {
                return Ok(Changed {
                    board: self.name.clone(),
                    task: new,
                    commit: commit.to_string(),
                    retries,
                });
            }
            // Lost the swap: someone else's change landed. Start again from theirs, with
            // a short pause that differs between agents so the next round settles.
            std::thread::sleep(std::time::Duration::from_millis(
                10 + (std::process::id() as u64 % 17) * 3,
            ));
        }
        Err(FleetError::failed(
            format!(
                "the board `{}` kept changing under this agent ({ATTEMPTS} attempts)",
                self.name
            ),
            "try again in a moment",
        ))
    }

    fn commit_on(
        &self,
        parent: Oid,
        board: &str,
        report: Option<(&str, &[u8])>,
        agent: &str,
        message: &str,
    ) -> Result<Oid, FleetError> {
        let repo = &self.mirror;
        let parent = repo.find_commit(parent)?;
        let old = parent.tree()?;
        let mut root = repo.treebuilder(Some(&old))?;
        root.insert(BOARD_FILE, repo.blob(board.as_bytes())?, 0o100644)?;
        if let Some((name, bytes)) = report {
            let existing = old
                .get_name(REPORTS)
                .filter(|e| e.kind() == Some(git2::ObjectType::Tree));
            let sub_tree = match existing {
                Some(e) => Some(repo.find_tree(e.id())?),
                None => None,
            };
            let mut sub = repo.treebuilder(sub_tree.as_ref())?;
            sub.insert(name, repo.blob(bytes)?, 0o100644)?;
            root.insert(REPORTS, sub.write()?, 0o040000)?;
        }
        let tree = repo.find_tree(root.write()?)?;
        let sig = Signature::now(agent, &format!("{agent}@datum.invalid"))?;
        Ok(repo.commit(None, &sig, &sig, message, &tree, &[&parent])?)
    }

    /// Move the remote branch from `old` to `new`; `false` when it no longer points at
    /// `old` (another change landed first).
    fn publish(&self, branch: &str, old: Oid, new: Oid) -> Result<bool, FleetError> {
        match local_path(&self.remote) {
            Some(path) => {
                let target = Repository::open_bare(&path)
                    .or_else(|_| Repository::open(&path))
                    .map_err(|e| unreachable(&self.remote, &e))?;
                copy_missing(&self.mirror, &target, new)?;
                let moved = target
                    .reference_matching(branch, new, true, old, "datum fleet tasks")
                    .map(drop);
                match moved {
                    Ok(()) => Ok(true),
                    // Moved under us, or locked by the agent moving it right now.
                    Err(e)
                        if matches!(
                            e.code(),
                            git2::ErrorCode::Modified
                                | git2::ErrorCode::Locked
                                | git2::ErrorCode::Exists
                        ) =>
                    {
                        Ok(false)
                    }
                    Err(e) if e.class() == git2::ErrorClass::Reference => Ok(false),
                    Err(e) => Err(e.into()),
                }
            }
            None => {
                let mut remote = self
                    .mirror
                    .remote_anonymous(&self.remote)
                    .map_err(|e| unreachable(&self.remote, &e))?;
                let rejected = std::cell::Cell::new(false);
                let mut callbacks = git2::RemoteCallbacks::new();
                callbacks.push_update_reference(|_, status| {
                    if status.is_some() {
                        rejected.set(true);
                    }
                    Ok(())
                });
                let mut opts = git2::PushOptions::new();
                opts.remote_callbacks(callbacks);
                self.mirror
                    .reference("refs/datum/outgoing", new, true, "datum fleet tasks")?;
                match remote.push(&[format!("refs/datum/outgoing:{branch}")], Some(&mut opts)) {
                    Ok(()) => Ok(!rejected.get()),
                    Err(e) if e.code() == git2::ErrorCode::NotFastForward => Ok(false),
                    Err(e) => Err(unreachable(&self.remote, &e)),
                }
            }
        }
    }
}

/// Write into `to` every object reachable from `commit` that it lacks. The parent
/// commit came from `to`, so this stops at the first tree it already has.
fn copy_missing(from: &Repository, to: &Repository, commit: Oid) -> Result<(), FleetError> {
    let src = from.odb()?;
    let dst = to.odb()?;
    let mut stack = vec![commit];
    while let Some(id) = stack.pop() {
        if dst.exists(id) {
            continue;
        }
        let obj = src.read(id)?;
        match obj.kind() {
            git2::ObjectType::Commit => {
                let c = from.find_commit(id)?;
                stack.push(c.tree_id());
            }
            git2::ObjectType::Tree => {
                let t = from.find_tree(id)?;
                // A submodule entry names a commit in another repository: not ours to copy.
                stack.extend(
                    t.iter()
                        .filter(|e| e.filemode() != 0o160000)
                        .map(|e| e.id()),
                );
            }
            _ => {}
        }
        // Objects are written before the commit that names them is visible (the ref
        // moves last), so a crash here leaves only unreferenced objects.
        dst.write(obj.kind(), obj.data())?;
    }
    Ok(())
}

/// Claim: open → claimed by `agent` today; claimed by `agent` already → nothing to do;
/// claimed by someone else or done → refused, naming who has it.
pub fn claim(task: &Task, agent: &str, today: &str) -> Result<Option<Task>, FleetError> {
    match &task.state {
        State::Open => {
            let mut t = task.clone();
            t.state = State::Claimed {
                by: agent.to_owned(),
                since: Some(today.to_owned()),
            };
            Ok(Some(t))
        }
        State::Claimed { by, .. } if by == agent => Ok(None),
        State::Claimed { by, since } => Err(FleetError::failed(
            format!(
                "{} is already claimed by {}{}",
                task.id,
                capability::shown(by),
                since
                    .as_deref()
                    .map(|s| format!(" (since {})", capability::shown(s)))
                    .unwrap_or_default()
            ),
            "pick another task (`datum fleet tasks list`), or ask them to release it",
        )),
        State::Done { by, .. } => Err(FleetError::failed(
            format!(
                "{} is already done{}",
                task.id,
                by.as_deref()
                    .map(|b| format!(" by {}", capability::shown(b)))
                    .unwrap_or_default()
            ),
            "pick an open task (`datum fleet tasks list`)",
        )),
    }
}

/// Release: only the agent holding a task may hand it back.
pub fn release(task: &Task, agent: &str) -> Result<Option<Task>, FleetError> {
    match &task.state {
        State::Claimed { by, .. } if by == agent => {
            let mut t = task.clone();
            t.state = State::Open;
            Ok(Some(t))
        }
        State::Open => Ok(None),
        _ => Err(FleetError::failed(
            format!(
                "{} is not yours to release (it is {})",
                task.id,
                task.state_words()
            ),
            "only the agent that claimed a task releases it",
        )),
    }
}

/// Complete: the holder marks it done, with the report committed beside the board.
pub fn complete(
    task: &Task,
    agent: &str,
    today: &str,
    report: &str,
) -> Result<Option<Task>, FleetError> {
    match &task.state {
        State::Claimed { by, .. } if by == agent => {
            let mut t = task.clone();
            t.state = State::Done {
                by: Some(agent.to_owned()),
                on: Some(today.to_owned()),
                report: Some(report.to_owned()),
            };
            Ok(Some(t))
        }
        State::Done { .. } => Err(FleetError::failed(
            format!("{} is already done", task.id),
            "nothing to do",
        )),
        _ => Err(FleetError::failed(
            format!(
                "{} is {}, not claimed by {agent}",
                task.id,
                task.state_words()
            ),
            format!("claim it first: `datum fleet tasks claim {}`", task.id),
        )),
    }
}
