//! The audit log under hostile load: capped fields, rate-limited unauthenticated
//! failures, rotation by size, and a tail read that does not load the whole file.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use keeper_core::{AuditLog, Decision, Request};

fn ask(agent: &str, key: &str, purpose: &str) -> Request {
    Request {
        agent: agent.into(),
        key: key.into(),
        purpose: purpose.into(),
        destination: "localhost".into(),
    }
}

fn refused(reason: &str) -> Decision {
    Decision {
        allowed: false,
        reason: reason.into(),
        expires: None,
    }
}

#[test]
fn fields_are_capped_and_the_cut_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
    let huge = "é".repeat(1_000_000);
    let entry = log
        .record(&ask(&huge, &huge, &huge), &refused(&huge))
        .unwrap();
    for field in [&entry.agent, &entry.key, &entry.purpose, &entry.reason] {
        assert!(field.len() < 300, "{} bytes kept", field.len());
        assert!(field.contains("more bytes]"), "{field}");
    }
    let size = std::fs::metadata(dir.path().join("audit.jsonl"))
        .unwrap()
        .len();
    assert!(size < 2_000, "a 4 MB request made a {size}-byte line");
}

#[test]
fn unauthenticated_failures_beyond_the_burst_are_counted_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
    let admitted = (0..1_000).filter(|_| log.admit_unauthenticated()).count();
    // The burst, plus whatever refilled during the loop (20 a second).
    assert!((100..200).contains(&admitted), "{admitted} admitted");
    let entry = log.record(&ask("ada", "k", "p"), &refused("r")).unwrap();
    assert!(
        entry
            .reason
            .contains(&format!("{} unauthenticated", 1_000 - admitted)),
        "{}",
        entry.reason
    );
    // Counted once: the next line carries no old count.
    let next = log.record(&ask("ada", "k", "p"), &refused("r")).unwrap();
    assert_eq!(next.reason, "r");
}

#[test]
fn the_log_rotates_by_size_and_the_tail_reads_across_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open_rotating_at(&path, 4096).unwrap();
    for i in 0..100 {
        log.record(&ask("ada", &format!("key-{i}"), "p"), &refused("r"))
            .unwrap();
    }
    assert!(std::fs::metadata(&path).unwrap().len() <= 4096);
    assert!(log.previous_path().exists(), "no rotated file");
    let tail = log.tail(3).unwrap();
    let keys: Vec<&str> = tail.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["key-97", "key-98", "key-99"]);
    // Asking for more than the current file holds reaches into the rotated one, in order.
    let current = std::fs::read_to_string(&path).unwrap().lines().count();
    let more = log.tail(current + 2).unwrap();
    assert_eq!(more.len(), current + 2);
    let numbers: Vec<usize> = more
        .iter()
        .map(|e| e.key.trim_start_matches("key-").parse().unwrap())
        .collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
    assert_eq!(*numbers.last().unwrap(), 99);
}

#[test]
fn the_tail_of_a_large_log_is_read_from_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    // Lines longer than the 64 KiB read block, a torn line and garbage in between.
    let log = AuditLog::open_rotating_at(&path, u64::MAX).unwrap();
    for i in 0..50 {
        log.record(&ask("ada", &format!("key-{i}"), "p"), &refused("r"))
            .unwrap();
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    use std::io::Write;
    f.write_all(&vec![b'x'; 200_000]).unwrap();
    f.write_all(b"\n\xff\xfe not json\n").unwrap();
    drop(f);
    log.record(&ask("ada", "last", "p"), &refused("r")).unwrap();
    let tail = log.tail(2).unwrap();
    let keys: Vec<&str> = tail.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["key-49", "last"]);
}

/// Concurrent requests share syncs, yet each returns only once its own line is in the
/// file, and every line arrives exactly once.
#[test]
fn concurrent_records_are_group_committed_and_each_is_durable_on_return() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
    let (threads, each) = (6, 40);
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (log, path) = (&log, dir.path().join("audit.jsonl"));
            scope.spawn(move || {
                for i in 0..each {
                    let key = format!("k-{t}-{i}");
                    log.record(&ask("ada", &key, "p"), &refused("r")).unwrap();
                    // Returned: the line must already be in the file.
                    let text = std::fs::read_to_string(&path).unwrap();
                    assert!(
                        text.contains(&format!("\"{key}\"")),
                        "{key} returned before it was written"
                    );
                }
            });
        }
    });
    let entries = log.entries().unwrap();
    let keys: std::collections::BTreeSet<&str> = entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        (entries.len(), keys.len()),
        (threads * each, threads * each),
        "each line once"
    );
    assert!(log.syncs() >= 1 && log.syncs() <= (threads * each) as u64);
}
