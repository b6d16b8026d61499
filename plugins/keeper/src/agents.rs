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

#[derive(Debug, Default, Serialize, Deserialize)]
struct AgentsFile {
    agents: BTreeMap<String, AgentRecord>,
}

/// The agents file (`agents.json` beside the vault).
#[derive(Debug)]
pub struct AgentRegistry {
    path: PathBuf,
    agents: BTreeMap<String, AgentRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("agent name `{0}` must be 1-64 characters of a-z, 0-9 and '-'")]
    BadName(String),
    #[error("agent `{0}` is already registered; re-registering needs its current token or the admin token")]
    Taken(String),
    #[error("cannot save the agent registry: {0}")]
    Io(#[from] std::io::Error),
}

impl AgentRegistry {
    pub fn load(path: &Path) -> std::io::Result<AgentRegistry> {
        let agents = match std::fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice::<AgentsFile>(&bytes)
                    .map_err(std::io::Error::other)?
                    .agents
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(AgentRegistry {
            path: path.to_owned(),
            agents,
        })
    }

    pub fn names(&self) -> Vec<String> {
        self.agents.keys().cloned().collect()
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

    /// Register `name`, or re-register it when `authorised` (its old token or admin).
    pub fn register(&mut self, name: &str, authorised: bool) -> Result<Token, RegisterError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            return Err(RegisterError::BadName(name.to_owned()));
        }
        if self.agents.contains_key(name) && !authorised {
            return Err(RegisterError::Taken(name.to_owned()));
        }
        let token = Token::generate()?;
        let record = AgentRecord {
            token_sha256: token.hash(),
            registered: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        };
        let previous = self.agents.insert(name.to_owned(), record);
        if let Err(e) = self.save() {
            // Nothing changes unless it is saved.
            match previous {
                Some(p) => self.agents.insert(name.to_owned(), p),
                None => self.agents.remove(name),
            };
            return Err(e.into());
        }
        Ok(token)
    }

    fn save(&self) -> std::io::Result<()> {
        let file = AgentsFile {
            agents: self.agents.clone(),
        };
        let mut text = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
        text.push(b'\n');
        keeper_core::write_private(&self.path, &text)
    }
}
