//! The one path every secret takes out of the Keeper, served or standalone: decide by
//! policy, look the value up, write the audit entry (synced), and only then answer.

use crate::audit::AuditLog;
use crate::policy::{Decision, Policy, Request};
use crate::vault::Vault;

/// Why a request was not answered with a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No (known) agent identity.
    Unauthenticated,
    /// The policy said no; the reason says why.
    Denied(String),
    /// Allowed, but there is no such secret.
    NotFound(String),
    /// The Keeper itself failed (audit log, vault).
    Internal(String),
    /// Too many unauthenticated requests: refused, counted in the audit log.
    RateLimited,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Unauthenticated => f.write_str("missing or unknown agent identity"),
            Refusal::Denied(r) => write!(f, "refused: {r}"),
            Refusal::NotFound(k) => write!(f, "no secret named `{k}`"),
            Refusal::Internal(e) => write!(f, "the Keeper failed: {e}"),
            Refusal::RateLimited => {
                f.write_str("too many unauthenticated requests; slow down and send a valid token")
            }
        }
    }
}

/// A granted request: the value, and when the grant that allowed it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub value: Vec<u8>,
    /// Unix seconds; `None` when the grant does not expire.
    pub expires: Option<u64>,
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Decide, read, audit, answer. `agent` is `None` when the caller could not be identified.
pub fn request_secret(
    vault: &Vault,
    policy: &Policy,
    audit: &AuditLog,
    agent: Option<&str>,
    key: &str,
    purpose: &str,
    destination: &str,
) -> Result<Granted, Refusal> {
    // Unauthenticated failures cannot flood the log: past the rate limit they are
    // refused and only counted.
    if agent.is_none() && !audit.admit_unauthenticated() {
        return Err(Refusal::RateLimited);
    }
    let request = Request {
        agent: agent.unwrap_or("(unauthenticated)").to_owned(),
        key: key.to_owned(),
        purpose: purpose.to_owned(),
        destination: destination.to_owned(),
    };
    let decision = match agent {
        None => Decision::refuse("missing or unknown token"),
        Some(_) => policy.decide(&request, now_secs()),
    };
    // Look the value up before auditing a grant, so a grant of a missing key is
    // recorded as what it is.
    let expires = decision.expires;
    let value = if !decision.allowed {
        Err(if agent.is_none() {
            Refusal::Unauthenticated
        } else {
            Refusal::Denied(decision.reason.clone())
        })
    } else {
        match vault.get(key) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(Refusal::NotFound(key.to_owned())),
            Err(e) => Err(Refusal::Internal(e.to_string())),
        }
    };
    let recorded = match &value {
        Err(Refusal::NotFound(_) | Refusal::Internal(_)) => Decision::refuse(
            value
                .as_ref()
                .err()
                .map(ToString::to_string)
                .unwrap_or_default(),
        ),
        _ => decision,
    };
    audit
        .record(&request, &recorded)
        .map_err(|e| Refusal::Internal(format!("cannot write the audit log: {e}")))?;
    value.map(|value| Granted { value, expires })
}
