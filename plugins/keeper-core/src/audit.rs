//! The audit log: one JSON line per decision, appended and synced before the answer
//! leaves the Keeper.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use serde::{Deserialize, Serialize};

use crate::policy::{Decision, Request};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub time: String,
    pub agent: String,
    pub key: String,
    pub purpose: String,
    pub destination: String,
    /// `granted` or `refused`.
    pub decision: String,
    pub reason: String,
}

/// Longest value recorded per field; the rest is replaced by a count of what was cut.
pub const MAX_FIELD: usize = 256;
/// The log is rotated (to `audit.jsonl.1`, replacing an older one) past this size.
pub const ROTATE_AT: u64 = 8 * 1024 * 1024;
/// Unauthenticated refusals are recorded at most this often (a burst of
/// [`UNAUTHENTICATED_BURST`], then [`UNAUTHENTICATED_PER_SEC`] a second); the rest are
/// refused without a line of their own and counted in the next line written.
pub const UNAUTHENTICATED_PER_SEC: f64 = 20.0;
pub const UNAUTHENTICATED_BURST: f64 = 100.0;

/// An append-only JSON-lines file, owner-only, shared by concurrent requests.
///
/// Writes are group-committed: a request queues its line, and whichever waiting
/// request finds no write in progress becomes the leader, writing every queued line
/// with one `write` and one `fsync` while the others wait. Each caller still returns
/// only once its own line is synced ("audited before answered"), but concurrent
/// requests share the sync instead of queueing for one each.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    rotate_at: u64,
    state: Mutex<State>,
    /// Signalled when a group write finishes.
    written: Condvar,
    /// Group writes (each one fsync) so far: benchmarks report lines per sync.
    syncs: std::sync::atomic::AtomicU64,
    /// The file, held only by the leader while it writes.
    io: Mutex<Io>,
}

#[derive(Debug)]
struct State {
    /// Token bucket for unauthenticated refusals.
    tokens: f64,
    refilled: std::time::Instant,
    /// Unauthenticated refusals not recorded since the last line.
    suppressed: u64,
    /// Lines queued and not yet handed to a leader.
    pending: Vec<u8>,
    /// Lines queued so far (the number of the last one).
    queued: u64,
    /// Lines whose write has finished (synced, or failed: see `failures`).
    settled: u64,
    /// A leader is writing.
    writing: bool,
    /// Recent group writes that failed: `(first, last)` line numbers and the error.
    failures: std::collections::VecDeque<(u64, u64, String)>,
}

#[derive(Debug)]
struct Io {
    file: std::fs::File,
    size: u64,
    /// A failed write may have left half a line: start the next write on a new line.
    torn: bool,
}

/// Failed group writes remembered for their waiters (they wake at once; this bounds
/// the memory, not correctness).
const FAILURES_KEPT: usize = 64;

/// `value` cut to [`MAX_FIELD`] bytes (at a character boundary) with what was cut counted.
fn capped(value: &str) -> String {
    if value.len() <= MAX_FIELD {
        return value.to_owned();
    }
    let mut end = MAX_FIELD;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[{} more bytes]", &value[..end], value.len() - end)
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

impl AuditLog {
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        AuditLog::open_rotating_at(path, ROTATE_AT)
    }

    /// [`AuditLog::open`] with another rotation size (tests, small devices).
    pub fn open_rotating_at(path: &Path, rotate_at: u64) -> std::io::Result<AuditLog> {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::create_private_dir(dir)?;
        }
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(AuditLog {
            path: path.to_owned(),
            rotate_at,
            state: Mutex::new(State {
                tokens: UNAUTHENTICATED_BURST,
                refilled: std::time::Instant::now(),
                suppressed: 0,
                pending: Vec::new(),
                queued: 0,
                settled: 0,
                writing: false,
                failures: std::collections::VecDeque::new(),
            }),
            written: Condvar::new(),
            syncs: std::sync::atomic::AtomicU64::new(0),
            io: Mutex::new(Io {
                file,
                size,
                torn: false,
            }),
        })
    }

    /// Write one group of lines (the leader, outside the queue lock): rotate first
    /// when the group would take the log past its size, then one write and one sync.
    fn write_group(&self, lines: &[u8]) -> std::io::Result<()> {
        let mut io = self
            .io
            .lock()
            .map_err(|_| std::io::Error::other("audit log lock poisoned"))?;
        if io.size > 0 && io.size + lines.len() as u64 > self.rotate_at {
            io.file.sync_all()?;
            std::fs::rename(&self.path, self.previous_path())?;
            io.file = open_append(&self.path)?;
            io.size = 0;
            io.torn = false;
        }
        if io.torn {
            io.file.write_all(b"\n")?;
            io.size += 1;
        }
        io.torn = true;
        io.file.write_all(lines)?;
        io.file.sync_data()?;
        self.syncs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        io.torn = false;
        io.size += lines.len() as u64;
        Ok(())
    }

    /// How many group writes (one fsync each) the log has made.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The rotated-out older log.
    pub fn previous_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".1");
        PathBuf::from(name)
    }

    /// May one more unauthenticated refusal be recorded now? When not, it is counted
    /// and the caller refuses without auditing it on its own line.
    pub fn admit_unauthenticated(&self) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let now = std::time::Instant::now();
        let elapsed = now.duration_since(state.refilled).as_secs_f64();
        state.tokens =
            (state.tokens + elapsed * UNAUTHENTICATED_PER_SEC).min(UNAUTHENTICATED_BURST);
        state.refilled = now;
        if state.tokens >= 1.0 {
            state.tokens -= 1.0;
            true
        } else {
            state.suppressed += 1;
            false
        }
    }

    /// Record a decision durably; callers answer only after this returns Ok (the
    /// line is synced, alone or in a group with concurrent ones). Fields are capped at
    /// [`MAX_FIELD`] bytes each.
    pub fn record(&self, request: &Request, decision: &Decision) -> std::io::Result<AuditEntry> {
        let poisoned = || std::io::Error::other("audit log lock poisoned");
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        let mut reason = capped(&decision.reason);
        if state.suppressed > 0 {
            reason.push_str(&format!(
                " (and {} unauthenticated requests refused without a line of their own: rate limit)",
                state.suppressed
            ));
        }
        let entry = AuditEntry {
            time: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            agent: capped(&request.agent),
            key: capped(&request.key),
            purpose: capped(&request.purpose),
            destination: capped(&request.destination),
            decision: if decision.allowed {
                "granted"
            } else {
                "refused"
            }
            .into(),
            reason,
        };
        let mut line = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        state.pending.extend_from_slice(&line);
        state.queued += 1;
        state.suppressed = 0;
        let mine = state.queued;
        loop {
            if state.settled >= mine {
                return match state
                    .failures
                    .iter()
                    .find(|(a, b, _)| (*a..=*b).contains(&mine))
                {
                    Some((_, _, e)) => Err(std::io::Error::other(format!(
                        "the audit log could not be written: {e}"
                    ))),
                    None => Ok(entry),
                };
            }
            if state.writing {
                state = self.written.wait(state).map_err(|_| poisoned())?;
                continue;
            }
            // Lead: take every queued line and write them as one group.
            state.writing = true;
            let group = std::mem::take(&mut state.pending);
            let (first, last) = (state.settled + 1, state.queued);
            drop(state);
            let outcome = self.write_group(&group);
            state = self.state.lock().map_err(|_| poisoned())?;
            state.writing = false;
            state.settled = last;
            if let Err(e) = outcome {
                state.failures.push_back((first, last, e.to_string()));
                if state.failures.len() > FAILURES_KEPT {
                    state.failures.pop_front();
                }
            }
            self.written.notify_all();
        }
    }

    /// Every entry in the current log (a torn last line from a crash is skipped).
    pub fn entries(&self) -> std::io::Result<Vec<AuditEntry>> {
        self.tail(usize::MAX)
    }

    /// The last `n` entries, oldest first, read from the end of the file (and the
    /// rotated one when the current is short) without loading a whole large log.
    pub fn tail(&self, n: usize) -> std::io::Result<Vec<AuditEntry>> {
        let mut out = tail_lines(&self.path, n)?;
        if out.len() < n {
            let mut older = match tail_lines(&self.previous_path(), n - out.len()) {
                Ok(o) => o,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(e),
            };
            older.append(&mut out);
            out = older;
        }
        Ok(out)
    }
}

/// The last `n` parseable lines of a JSON-lines file, reading backwards in blocks.
fn tail_lines(path: &Path, n: usize) -> std::io::Result<Vec<AuditEntry>> {
    use std::io::{Read, Seek, SeekFrom};
    const BLOCK: u64 = 64 * 1024;
    let mut file = std::fs::File::open(path)?;
    let mut pos = file.metadata()?.len();
    let mut out = Vec::new();
    // Bytes of a line that started before the block read last.
    let mut carry: Vec<u8> = Vec::new();
    while pos > 0 && out.len() < n {
        let start = pos.saturating_sub(BLOCK);
        let mut block = vec![0u8; (pos - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut block)?;
        block.extend_from_slice(&carry);
        let mut lines: Vec<&[u8]> = block.split(|b| *b == b'\n').collect();
        // The first piece may be the end of an earlier line: keep it for the next block.
        carry = if start > 0 {
            lines.remove(0).to_vec()
        } else {
            Vec::new()
        };
        for line in lines.into_iter().rev() {
            if out.len() >= n {
                break;
            }
            if let Ok(entry) = serde_json::from_slice::<AuditEntry>(line) {
                out.push(entry);
            }
        }
        pos = start;
        // A single line longer than the log could hold is dropped, not accumulated.
        if carry.len() as u64 > ROTATE_AT {
            carry.clear();
        }
    }
    out.reverse();
    Ok(out)
}
