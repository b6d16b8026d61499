//! The audit log: one JSON line per decision, appended and synced before the answer
//! leaves the Keeper.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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

/// An append-only JSON-lines file, owner-only, shared by concurrent requests.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl AuditLog {
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(path)?;
        Ok(AuditLog {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }

    /// Record a decision durably; callers answer only after this returns Ok.
    pub fn record(&self, request: &Request, decision: &Decision) -> std::io::Result<AuditEntry> {
        let entry = AuditEntry {
            time: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            agent: request.agent.clone(),
            key: request.key.clone(),
            purpose: request.purpose.clone(),
            destination: request.destination.clone(),
            decision: if decision.allowed {
                "granted"
            } else {
                "refused"
            }
            .into(),
            reason: decision.reason.clone(),
        };
        let mut line = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut file = self
            .file
            .lock()
            .map_err(|_| std::io::Error::other("audit log lock poisoned"))?;
        file.write_all(&line)?;
        file.sync_data()?;
        Ok(entry)
    }

    /// Every entry so far (a torn last line from a crash is skipped).
    pub fn entries(&self) -> std::io::Result<Vec<AuditEntry>> {
        let text = std::fs::read_to_string(&self.path)?;
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }
}
