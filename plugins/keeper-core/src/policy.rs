//! Who may read which secret, for which destination. Fail closed: anything the policy
//! does not explicitly allow is refused, and every refusal says why.

use serde::{Deserialize, Serialize};

/// The policy file (JSON or TOML-shaped JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Destinations any agent may name (besides its own list). Default: loopback only.
    #[serde(default = "internal")]
    pub allowed_destinations: Vec<String>,
    /// Destinations no one may name, whatever else says.
    #[serde(default)]
    pub blocked_destinations: Vec<String>,
    #[serde(default)]
    pub grants: Vec<Grant>,
}

fn internal() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
}

/// One agent's access.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub agent: String,
    /// Secret names or prefixes ending in `*` (`db/*`).
    pub keys: Vec<String>,
    /// Extra destinations for this agent.
    #[serde(default)]
    pub destinations: Vec<String>,
    /// Unix seconds after which the grant no longer applies.
    #[serde(default)]
    pub expires: Option<u64>,
}

/// What is being asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub agent: String,
    pub key: String,
    pub purpose: String,
    pub destination: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

impl Decision {
    fn refuse(reason: impl Into<String>) -> Decision {
        Decision {
            allowed: false,
            reason: reason.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("the Keeper policy is invalid: {0}")]
    Invalid(String),
}

/// `pattern` matches `name` exactly, or as a prefix when it ends in `*`; a leading
/// `*.` matches any subdomain (for destinations).
fn matches(pattern: &str, name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let pattern = pattern.to_ascii_lowercase();
    if let Some(suffix) = pattern.strip_prefix("*.") {
        return name.ends_with(&format!(".{suffix}"));
    }
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == pattern,
    }
}

impl Policy {
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        serde_json::from_str(text).map_err(|e| PolicyError::Invalid(e.to_string()))
    }

    /// Decide a request at time `now` (Unix seconds).
    pub fn decide(&self, request: &Request, now: u64) -> Decision {
        if request.purpose.trim().is_empty() {
            return Decision::refuse("a purpose is required");
        }
        let destination = request.destination.trim();
        if destination.is_empty() {
            return Decision::refuse("a destination is required");
        }
        if self
            .blocked_destinations
            .iter()
            .any(|p| matches(p, destination))
        {
            return Decision::refuse(format!("destination `{destination}` is blocked"));
        }
        let grants: Vec<&Grant> = self
            .grants
            .iter()
            .filter(|g| g.agent == request.agent)
            .collect();
        if grants.is_empty() {
            return Decision::refuse(format!("agent `{}` has no grants", request.agent));
        }
        let live: Vec<&&Grant> = grants
            .iter()
            .filter(|g| g.expires.is_none_or(|e| now < e))
            .collect();
        if live.is_empty() {
            return Decision::refuse(format!("agent `{}`'s grants have expired", request.agent));
        }
        let Some(grant) = live
            .iter()
            .find(|g| g.keys.iter().any(|k| matches(k, &request.key)))
        else {
            return Decision::refuse(format!(
                "agent `{}` may not read `{}`",
                request.agent, request.key
            ));
        };
        let allowed = self
            .allowed_destinations
            .iter()
            .chain(grant.destinations.iter())
            .any(|p| matches(p, destination));
        if !allowed {
            return Decision::refuse(format!(
                "destination `{destination}` is not allowed for `{}`",
                request.agent
            ));
        }
        Decision {
            allowed: true,
            reason: "granted by policy".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(agent: &str, key: &str, destination: &str) -> Request {
        Request {
            agent: agent.into(),
            key: key.into(),
            purpose: "deploy".into(),
            destination: destination.into(),
        }
    }

    fn policy() -> Policy {
        Policy::parse(
            r#"{"blocked_destinations": ["*.evil.example"],
                "grants": [
                  {"agent": "ada", "keys": ["github-token", "db/*"], "destinations": ["api.github.com"]},
                  {"agent": "old", "keys": ["*"], "expires": 100}
                ]}"#,
        )
        .unwrap()
    }

    #[test]
    fn explicit_grants_allow() {
        let p = policy();
        assert!(
            p.decide(&ask("ada", "github-token", "api.github.com"), 0)
                .allowed
        );
        assert!(
            p.decide(&ask("ada", "db/main", "127.0.0.1"), 0).allowed,
            "internal destinations by default"
        );
    }

    #[test]
    fn everything_else_is_refused_with_a_reason() {
        let p = policy();
        for (req, why) in [
            (ask("eve", "github-token", "localhost"), "no grants"),
            (ask("ada", "aws-key", "localhost"), "may not read"),
            (ask("ada", "github-token", "example.org"), "not allowed"),
            (ask("ada", "github-token", "x.evil.example"), "blocked"),
            (ask("old", "anything", "localhost"), "expired"),
        ] {
            let d = p.decide(&req, 200);
            assert!(!d.allowed, "{req:?}");
            assert!(d.reason.contains(why), "{req:?}: {}", d.reason);
        }
        let mut no_purpose = ask("ada", "github-token", "localhost");
        no_purpose.purpose = " ".into();
        assert!(!p.decide(&no_purpose, 0).allowed);
    }

    #[test]
    fn an_empty_policy_refuses_everything() {
        assert!(
            !Policy::default()
                .decide(&ask("ada", "k", "localhost"), 0)
                .allowed
        );
        assert!(
            Policy::parse(r#"{"grants": [{"agent": "a"}]}"#).is_err(),
            "a grant needs keys"
        );
    }
}
