//! Registered agents and their tokens. Only SHA-256 hashes of tokens are stored, in
//! an owner-only file; comparisons take constant time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A bearer token as handed to an agent once (64 hex characters).
#[derive(Clone, PartialEq, Eq)]
pub struct Token(pub String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

impl Token {
    pub fn generate() -> std::io::Result<Token> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Token(hex::encode(bytes)))
    }

    pub fn hash(&self) -> String {
        hash_token(&self.0)
    }
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Equality that does not stop at the first differing byte.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgentRecord {
    pub token_sha256: String,
    pub registered: String,
}

/// A one-time enrolment code (only its hash is kept) for one agent name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Enrolment {
    pub code_sha256: String,
    /// Unix seconds after which the code no longer works.
    pub expires: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AgentsFile {
    agents: BTreeMap<String, AgentRecord>,
    #[serde(default)]
    enrolments: BTreeMap<String, Enrolment>,
}

/// The agents file (`agents.json` beside the vault). The CLI (`keeper enroll`) and a
/// running server both write it: every change is made under an exclusive lock on
/// the newest file, like the vault's.
#[derive(Debug)]
pub struct AgentRegistry {
    path: PathBuf,
    agents: BTreeMap<String, AgentRecord>,
    stamp: Option<String>,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Agent names: a-z first, then a-z, 0-9 and '-', at most 64 (as plugin names).
pub fn valid_agent_name(name: &str) -> bool {
    datum_plugin_api::valid_name(name) && !name.ends_with('-')
}

const MAX_AGENTS_FILE: u64 = 16 * 1024 * 1024;

fn read_file(path: &Path) -> std::io::Result<AgentsFile> {
    match keeper_core::read_bounded(path, MAX_AGENTS_FILE) {
        Ok(bytes) => serde_json::from_slice::<AgentsFile>(&bytes).map_err(std::io::Error::other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AgentsFile::default()),
        Err(e) => Err(e),
    }
}

fn write_file(path: &Path, file: &AgentsFile) -> std::io::Result<()> {
    let mut text = serde_json::to_vec_pretty(file).map_err(std::io::Error::other)?;
    text.push(b'\n');
    keeper_core::write_private(path, &text)
}

fn lock_path(path: &Path) -> PathBuf {
    path.with_extension("lock")
}

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error(
        "agent name `{0}` must be 1-64 characters of a-z, 0-9 and '-', starting with a letter"
    )]
    BadName(String),
    #[error("agent `{0}` is already registered; re-registering needs its current token or the admin token")]
    Taken(String),
    #[error("the policy grants agent `{0}` secrets, so registering it needs the admin token or a one-time enrolment code; the Keeper's operator runs `datum keeper enroll {0}`, then `datum boot --keeper URL --enrol CODE`")]
    NeedsEnrolment(String),
    #[error("cannot save the agent registry: {0}")]
    Io(#[from] std::io::Error),
}

impl AgentRegistry {
    pub fn load(path: &Path) -> std::io::Result<AgentRegistry> {
        let stamp = keeper_core::file_stamp(path);
        let agents = read_file(path)?.agents;
        Ok(AgentRegistry {
            path: path.to_owned(),
            agents,
            stamp,
        })
    }

    pub fn names(&self) -> Vec<String> {
        self.agents.keys().cloned().collect()
    }

    /// Read the file again if another process changed it.
    pub fn refresh(&mut self) -> std::io::Result<()> {
        if keeper_core::file_stamp(&self.path) != self.stamp {
            *self = AgentRegistry::load(&self.path)?;
        }
        Ok(())
    }

    /// The agent a bearer token belongs to.
    pub fn authenticate(&self, token: &str) -> Option<String> {
        let hash = hash_token(token);
        // Check every record so the time taken does not depend on which one matched.
        let mut found = None;
        for (name, record) in &self.agents {
            if constant_time_eq(&record.token_sha256, &hash) {
                found = Some(name.clone());
            }
        }
        found
    }

    /// A one-time code for registering `name` within `valid_secs` (replacing an
    /// earlier unused one).
    pub fn enroll(path: &Path, name: &str, valid_secs: u64) -> Result<Token, RegisterError> {
        if !valid_agent_name(name) {
            return Err(RegisterError::BadName(name.to_owned()));
        }
        let _lock = keeper_core::lock_file(&lock_path(path))?;
        let mut file = read_file(path)?;
        let code = Token::generate()?;
        file.enrolments.insert(
            name.to_owned(),
            Enrolment {
                code_sha256: code.hash(),
                expires: now_secs().saturating_add(valid_secs),
            },
        );
        write_file(path, &file)?;
        Ok(code)
    }

    /// Register `name`, or re-register it when `authorised` (its old token or admin).
    /// A `protected` name (one the policy grants secrets) that is new needs
    /// `authorised` or a valid enrolment code, which is used up.
    pub fn register(
        &mut self,
        name: &str,
        authorised: bool,
        protected: bool,
        enrolment: Option<&str>,
    ) -> Result<Token, RegisterError> {
        if !valid_agent_name(name) {
            return Err(RegisterError::BadName(name.to_owned()));
        }
        let _lock = keeper_core::lock_file(&lock_path(&self.path))?;
        let mut file = read_file(&self.path)?;
        if file.agents.contains_key(name) && !authorised {
            return Err(RegisterError::Taken(name.to_owned()));
        }
        if protected && !authorised {
            let valid = match (file.enrolments.get(name), enrolment) {
                (Some(e), Some(code)) => {
                    e.expires >= now_secs() && constant_time_eq(&e.code_sha256, &hash_token(code))
                }
                _ => false,
            };
            if !valid {
                return Err(RegisterError::NeedsEnrolment(name.to_owned()));
            }
            file.enrolments.remove(name);
        }
        let token = Token::generate()?;
        let record = AgentRecord {
            token_sha256: token.hash(),
            registered: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        };
        file.agents.insert(name.to_owned(), record);
        write_file(&self.path, &file)?;
        self.agents = file.agents;
        self.stamp = keeper_core::file_stamp(&self.path);
        Ok(token)
    }
}
