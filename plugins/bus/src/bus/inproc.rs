//! The in-process bus: a bounded, append-only history in `.superagent/bus.json`.
//!
//! Each message is one JSON line appended under an exclusive file lock (so concurrent
//! `datum` processes never interleave or reuse a sequence number). Only when the file
//! grows past [`COMPACT_BYTES`] is it rewritten — atomically, keeping the newest
//! [`KEEP`] messages — so publishing never rewrites the whole history. Subscribers
//! follow the file by sequence number, which survives compaction.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::{subject_matches, BusError, Envelope};

/// Most messages kept by compaction.
pub const KEEP: usize = 1000;
/// File size that triggers compaction.
pub const COMPACT_BYTES: u64 = 4 * 1024 * 1024;
/// Largest message the in-process log accepts (keeps the tail read bounded).
pub const MAX_MESSAGE: usize = 64 * 1024;
/// How often a follower looks for new lines.
const POLL: Duration = Duration::from_millis(20);

pub struct InProc {
    log: PathBuf,
    lock: PathBuf,
    agent: String,
}

impl InProc {
    pub fn open(workshop: &Path, agent: &str) -> Result<InProc, BusError> {
        let dir = workshop.join(".superagent");
        std::fs::create_dir_all(&dir)
            .map_err(BusError::io(format!("cannot create {}", dir.display())))?;
        Ok(InProc {
            log: dir.join("bus.json"),
            lock: dir.join("bus.lock"),
            agent: agent.to_owned(),
        })
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Hold the bus's lock for the duration of `f`.
    fn locked<T>(&self, f: impl FnOnce() -> Result<T, BusError>) -> Result<T, BusError> {
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .map_err(BusError::io(format!("cannot open {}", self.lock.display())))?;
        lock.lock()
            .map_err(BusError::io(format!("cannot lock {}", self.lock.display())))?;
        let out = f();
        // Closing the file releases the lock; unlocking first just makes it prompt.
        let _ = lock.unlock();
        out
    }

    pub fn publish(&mut self, subject: &str, payload: Value) -> Result<Envelope, BusError> {
        let mut env = [Envelope::new(subject, &self.agent, payload)];
        self.append(&mut env)?;
        let [env] = env;
        Ok(env)
    }

    /// Append messages as they are (sender, time and `via` kept), numbering them in
    /// order: one lock, one write and one sync for the whole batch (group commit). All
    /// or nothing: a message over [`MAX_MESSAGE`] fails the batch before anything is
    /// written.
    pub fn append(&mut self, batch: &mut [Envelope]) -> Result<(), BusError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.locked(|| {
            let first = last_seq(&self.log)? + 1;
            let mut text = String::new();
            for (i, env) in batch.iter_mut().enumerate() {
                env.seq = first + i as u64;
                let line = serde_json::to_string(&*env)
                    .map_err(|e| BusError::Invalid(format!("cannot encode the message: {e}")))?;
                if line.len() > MAX_MESSAGE {
                    return Err(BusError::TooBig { bytes: line.len() });
                }
                text.push_str(&line);
                text.push('\n');
            }
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .map_err(BusError::io(format!("cannot open {}", self.log.display())))?;
            f.write_all(text.as_bytes())
                .and_then(|_| f.sync_data())
                .map_err(BusError::io(format!(
                    "cannot append to {}",
                    self.log.display()
                )))?;
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            if size > COMPACT_BYTES {
                compact(&self.log)?;
            }
            Ok(())
        })
    }

    /// Refuse a message too big for the log before it joins a group write.
    pub fn check_size(env: &Envelope) -> Result<(), BusError> {
        let bytes = serde_json::to_string(env).map_or(usize::MAX, |l| l.len());
        if bytes > MAX_MESSAGE {
            return Err(BusError::TooBig { bytes });
        }
        Ok(())
    }

    /// The newest `limit` messages matching `pattern`, oldest first.
    pub fn history(&self, pattern: &str, limit: usize) -> Result<Vec<Envelope>, BusError> {
        let all = read_all(&self.log)?;
        let matching: Vec<Envelope> = all
            .into_iter()
            .filter(|e| subject_matches(pattern, &e.subject))
            .collect();
        let skip = matching.len().saturating_sub(limit);
        Ok(matching.into_iter().skip(skip).collect())
    }

    /// Follow new messages matching `pattern` from now on.
    pub fn follow(&self, pattern: &str) -> Result<Follower, BusError> {
        let after = self.locked(|| last_seq(&self.log))?;
        Ok(Follower {
            log: self.log.clone(),
            pattern: pattern.to_owned(),
            after,
            offset: 0,
            pending: std::collections::VecDeque::new(),
        })
    }
}

/// Most messages one group write takes.
const GROUP_MAX: usize = 1024;

/// A message waiting for the group writer, and who to tell once it is in the log.
type Queued = (
    Envelope,
    tokio::sync::oneshot::Sender<Result<Envelope, String>>,
);

/// Group commit for many publishers in one process: each publish waits until its
/// message is synced to the log, but messages that queue up while a write is in
/// flight go together in the next one — one lock, one write, one fsync for the group.
/// Nothing is acknowledged before it is durable, so a crash after `publish` returned
/// loses nothing.
#[derive(Clone)]
pub struct GroupCommit {
    tx: tokio::sync::mpsc::Sender<Queued>,
}

impl GroupCommit {
    /// Start the writer (a thread of its own: the writes block on fsync).
    pub fn start(mut inproc: InProc) -> GroupCommit {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Queued>(GROUP_MAX * 4);
        std::thread::spawn(move || {
            while let Some(first) = rx.blocking_recv() {
                let mut queued = vec![first];
                while queued.len() < GROUP_MAX {
                    match rx.try_recv() {
                        Ok(q) => queued.push(q),
                        Err(_) => break,
                    }
                }
                let (mut group, acks): (Vec<Envelope>, Vec<_>) = queued.into_iter().unzip();
                match inproc.append(&mut group) {
                    Ok(()) => {
                        for (env, ack) in group.into_iter().zip(acks) {
                            let _ = ack.send(Ok(env));
                        }
                    }
                    Err(e) => {
                        for ack in acks {
                            let _ = ack.send(Err(e.to_string()));
                        }
                    }
                }
            }
        });
        GroupCommit { tx }
    }

    /// Append `env` (numbered by the log) and return it once it is synced. A message
    /// over [`MAX_MESSAGE`] is refused here, so it cannot fail anyone else's group.
    pub async fn publish(&self, env: Envelope) -> Result<Envelope, BusError> {
        InProc::check_size(&env)?;
        let (ack, done) = tokio::sync::oneshot::channel();
        let gone = || BusError::Invalid("the in-process bus writer has stopped".into());
        self.tx.send((env, ack)).await.map_err(|_| gone())?;
        done.await.map_err(|_| gone())?.map_err(BusError::Invalid)
    }
}

/// Messages published after the follower was made, in order.
pub struct Follower {
    log: PathBuf,
    pattern: String,
    /// Highest sequence number already delivered (or skipped).
    after: u64,
    /// Where the last read stopped; reset when the file is compacted (shrinks).
    offset: u64,
    pending: std::collections::VecDeque<Envelope>,
}

impl Follower {
    pub async fn next(&mut self) -> Result<Option<Envelope>, BusError> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Ok(Some(e));
            }
            self.poll()?;
            if self.pending.is_empty() {
                tokio::time::sleep(POLL).await;
            }
        }
    }

    fn poll(&mut self) -> Result<(), BusError> {
        let mut f = match File::open(&self.log) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(BusError::io(format!("cannot read {}", self.log.display()))(
                    e,
                ))
            }
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            self.offset = 0; // compacted: read again from the start, skipping by seq
        }
        if len == self.offset {
            return Ok(());
        }
        f.seek(SeekFrom::Start(self.offset))
            .map_err(BusError::io("cannot seek the bus log"))?;
        let mut reader = BufReader::new(f);
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader
                .read_line(&mut line)
                .map_err(BusError::io("cannot read the bus log"))?;
            if n == 0 || !line.ends_with('\n') {
                break; // a line still being written: read it next time
            }
            self.offset += n as u64;
            if let Ok(env) = serde_json::from_str::<Envelope>(&line) {
                if env.seq > self.after {
                    self.after = env.seq;
                    if subject_matches(&self.pattern, &env.subject) {
                        self.pending.push_back(env);
                    }
                }
            }
        }
        Ok(())
    }
}

/// The sequence number of the last complete line (0 for an empty or missing log).
fn last_seq(log: &Path) -> Result<u64, BusError> {
    let mut f = match File::open(log) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(BusError::io(format!("cannot read {}", log.display()))(e)),
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    // A line is at most MAX_MESSAGE bytes, so the last one lies in this tail.
    let start = len.saturating_sub(2 * MAX_MESSAGE as u64 + 2);
    f.seek(SeekFrom::Start(start))
        .map_err(BusError::io("cannot seek the bus log"))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail)
        .map_err(BusError::io("cannot read the bus log"))?;
    let text = String::from_utf8_lossy(&tail);
    Ok(text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Envelope>(l).ok())
        .map_or(0, |e| e.seq))
}

fn read_all(log: &Path) -> Result<Vec<Envelope>, BusError> {
    let f = match File::open(log) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(BusError::io(format!("cannot read {}", log.display()))(e)),
    };
    let mut out = Vec::new();
    let mut reader = BufReader::new(f);
    let mut line = Vec::new();
    let cap = 2 * MAX_MESSAGE as u64 + 2;
    loop {
        line.clear();
        let n = (&mut reader)
            .take(cap)
            .read_until(b'\n', &mut line)
            .map_err(BusError::io("cannot read the bus log"))?;
        if n == 0 {
            break;
        }
        if n as u64 == cap && line.last() != Some(&b'\n') {
            // Longer than any message can be: skip to the end of that line.
            loop {
                line.clear();
                let m = (&mut reader)
                    .take(cap)
                    .read_until(b'\n', &mut line)
                    .map_err(BusError::io("cannot read the bus log"))?;
                if m == 0 || line.last() == Some(&b'\n') {
                    break;
                }
            }
            continue;
        }
        // A torn last line (a crash mid-append), bytes that are not UTF-8 or not an
        // envelope are skipped, never fatal: the rest of the history still reads.
        if let Ok(env) = serde_json::from_slice::<Envelope>(&line) {
            out.push(env);
        }
    }
    Ok(out)
}

/// Rewrite the log with its newest messages — at most [`KEEP`] and at most half of
/// [`COMPACT_BYTES`], so the next compaction is many appends away (called under the lock).
fn compact(log: &Path) -> Result<(), BusError> {
    let all = read_all(log)?;
    let mut kept = Vec::new();
    let mut bytes = 0u64;
    for env in all.iter().rev().take(KEEP) {
        let Ok(line) = serde_json::to_string(env) else {
            continue;
        };
        bytes += line.len() as u64 + 1;
        if bytes > COMPACT_BYTES / 2 && !kept.is_empty() {
            break;
        }
        kept.push(line);
    }
    let mut text = String::new();
    for line in kept.iter().rev() {
        text.push_str(line);
        text.push('\n');
    }
    let dir = log.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(".bus.json.compact");
    let mut f = File::create(&tmp).map_err(BusError::io("cannot write the compacted bus log"))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(BusError::io("cannot write the compacted bus log"))?;
    std::fs::rename(&tmp, log).map_err(BusError::io("cannot replace the bus log"))?;
    // The rename is durable once the folder is.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(BusError::io("cannot sync the bus log's folder"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_survives_reopening_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut bus = InProc::open(dir.path(), "alice").unwrap();
        let big = "x".repeat(5000);
        let n = (COMPACT_BYTES / 5000) as usize + 200;
        for i in 0..n {
            bus.publish("agent.bob", serde_json::json!({"i": i, "pad": big}))
                .unwrap();
        }
        let size = std::fs::metadata(bus.log_path()).unwrap().len();
        assert!(size <= COMPACT_BYTES + 6000, "log is {size} bytes");
        let reopened = InProc::open(dir.path(), "alice").unwrap();
        let all = reopened.history(">", usize::MAX).unwrap();
        assert!(!all.is_empty() && all.len() <= KEEP, "{} kept", all.len());
        let last = all.last().unwrap();
        assert_eq!(last.payload["i"], n - 1);
        assert_eq!(last.seq, n as u64, "sequence numbers survive compaction");
    }

    #[test]
    fn a_batch_is_numbered_in_order_and_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut bus = InProc::open(dir.path(), "alice").unwrap();
        bus.publish("a", serde_json::json!(0)).unwrap();
        let mut batch: Vec<Envelope> = (1..=3)
            .map(|i| Envelope::new("a", "carol", serde_json::json!(i)))
            .collect();
        batch[1].via = Some("tcp://127.0.0.1:7743".into());
        bus.append(&mut batch).unwrap();
        let all = bus.history(">", 10).unwrap();
        let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
        assert_eq!(all[2].from, "carol", "the sender is kept");
        assert_eq!(all[2].via.as_deref(), Some("tcp://127.0.0.1:7743"));

        let mut too_big = vec![
            Envelope::new("a", "carol", serde_json::json!("fine")),
            Envelope::new("a", "carol", serde_json::json!("x".repeat(MAX_MESSAGE))),
        ];
        assert!(matches!(
            InProc::check_size(&too_big[1]),
            Err(BusError::TooBig { .. })
        ));
        assert!(bus.append(&mut too_big).is_err());
        assert_eq!(
            bus.history(">", 10).unwrap().len(),
            4,
            "nothing of a failed batch"
        );
    }

    /// Many concurrent publishers: each gets its message back numbered and already in
    /// the log; every message is there once, numbered without gaps.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn group_commit_numbers_every_message_once_and_returns_only_when_logged() {
        let dir = tempfile::tempdir().unwrap();
        let group = GroupCommit::start(InProc::open(dir.path(), "w").unwrap());
        let log = dir.path().join(".superagent/bus.json");
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let (group, log) = (group.clone(), log.clone());
                tokio::spawn(async move {
                    for i in 0..25 {
                        let env = Envelope::new("g", "w", serde_json::json!([t, i]));
                        let back = group.publish(env).await.unwrap();
                        let text = std::fs::read_to_string(&log).unwrap();
                        assert!(
                            text.contains(&format!("\"seq\":{}", back.seq)),
                            "seq {} returned before it was in the log",
                            back.seq
                        );
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let all = InProc::open(dir.path(), "r")
            .unwrap()
            .history(">", 1000)
            .unwrap();
        let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=400).collect::<Vec<u64>>());
        let big = Envelope::new("g", "w", serde_json::json!("x".repeat(MAX_MESSAGE)));
        assert!(
            group.publish(big).await.is_err(),
            "refused before it joins a group"
        );
    }

    #[tokio::test]
    async fn a_follower_sees_only_new_matching_messages() {
        let dir = tempfile::tempdir().unwrap();
        let mut bus = InProc::open(dir.path(), "alice").unwrap();
        bus.publish("agent.bob", serde_json::json!("old")).unwrap();
        let mut follower = bus.follow("agent.*").unwrap();
        bus.publish("fleet.x", serde_json::json!("other")).unwrap();
        bus.publish("agent.bob", serde_json::json!("new")).unwrap();
        let got = follower.next().await.unwrap().unwrap();
        assert_eq!(got.payload, "new");
        assert_eq!(got.from, "alice");
    }
}
