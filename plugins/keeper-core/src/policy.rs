//! Who may read which secret, for which destination. Fail closed: anything the policy
//! does not explicitly allow is refused, and every refusal says why.

use std::path::{Path, PathBuf};

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
    /// When the grant that allowed the request ends (Unix seconds), if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
}

impl Decision {
    pub fn refuse(reason: impl Into<String>) -> Decision {
        Decision {
            allowed: false,
            reason: reason.into(),
            expires: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("the Keeper policy is invalid: {0}")]
    Invalid(String),
    #[error("cannot read or write the Keeper policy {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `pattern` matches `name` ignoring ASCII case, where each `*` stands for any run of
/// characters: `db/*` (a prefix), `*.evil.example` (any subdomain), `*pastebin*` (any
/// name containing it, URLs included).
///
/// Written here rather than taken from a glob crate: file-glob crates give `*` and `/`
/// path meanings (and `?`, `[...]`) that secret names and destinations must not have.
pub fn matches(pattern: &str, name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let pattern = pattern.to_ascii_lowercase();
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let middle: Vec<&str> = parts.collect();
    let Some((last, middle)) = middle.split_last() else {
        // No `*`: the whole name must be the pattern.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Destinations a new policy blocks for everyone: paste sites, chat services and
/// webhooks, where a secret would be published rather than used.
pub const DEFAULT_BLOCKED: [&str; 5] = [
    "*pastebin*",
    "*discord*",
    "*slack*",
    "*telegram*",
    "*webhook*",
];

/// The policy file is refused past this size (it is read on every change).
pub const MAX_POLICY_BYTES: u64 = 1024 * 1024;

impl Policy {
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        serde_json::from_str(text).map_err(|e| PolicyError::Invalid(e.to_string()))
    }

    /// What `keeper init` writes: loopback destinations only, the paste and chat
    /// services blocked, and no grants (so everything is refused).
    pub fn starter() -> Policy {
        Policy {
            allowed_destinations: internal(),
            blocked_destinations: DEFAULT_BLOCKED.iter().map(|d| (*d).to_owned()).collect(),
            grants: Vec::new(),
        }
    }

    /// Read a policy file (at most [`MAX_POLICY_BYTES`]).
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let bytes = crate::read_bounded(path, MAX_POLICY_BYTES).map_err(|e| PolicyError::Io {
            path: path.to_owned(),
            source: e,
        })?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| PolicyError::Invalid(format!("{} is not UTF-8", path.display())))?;
        Policy::parse(text)
    }

    /// Change the policy file under its writer lock: re-read the newest version,
    /// apply `change`, write it back atomically (owner-only). Concurrent editors lose
    /// nothing, and a running Keeper sees either the old or the new file, never half.
    pub fn edit<T>(path: &Path, change: impl FnOnce(&mut Policy) -> T) -> Result<T, PolicyError> {
        let io = |source| PolicyError::Io {
            path: path.to_owned(),
            source,
        };
        let _lock = crate::lock_file(&path.with_extension("lock")).map_err(io)?;
        let mut policy = Policy::load(path)?;
        let out = change(&mut policy);
        let text =
            serde_json::to_vec_pretty(&policy).map_err(|e| PolicyError::Invalid(e.to_string()))?;
        crate::write_private(path, &text).map_err(io)?;
        Ok(out)
    }

    /// Let `agent` read secrets matching `pattern` (for `destinations` besides the
    /// common ones, until `expires`). A grant with the same destinations and expiry is
    /// extended rather than repeated. Returns false when it was already there.
    pub fn grant(
        &mut self,
        agent: &str,
        pattern: &str,
        destinations: &[String],
        expires: Option<u64>,
    ) -> bool {
        let mut wanted: Vec<String> = destinations.to_vec();
        wanted.sort();
        wanted.dedup();
        let same = |g: &Grant| {
            let mut d = g.destinations.clone();
            d.sort();
            d.dedup();
            g.agent == agent && d == wanted && g.expires == expires
        };
        if let Some(g) = self.grants.iter_mut().find(|g| same(g)) {
            if g.keys.iter().any(|k| k == pattern) {
                return false;
            }
            g.keys.push(pattern.to_owned());
            return true;
        }
        self.grants.push(Grant {
            agent: agent.to_owned(),
            keys: vec![pattern.to_owned()],
            destinations: wanted,
            expires,
        });
        true
    }

    /// Take `pattern` away from `agent` (only from grants naming `destination`, when
    /// given); grants left with no keys go. Returns how many grants changed.
    pub fn revoke(&mut self, agent: &str, pattern: &str, destination: Option<&str>) -> usize {
        let mut changed = 0;
        for g in self.grants.iter_mut().filter(|g| g.agent == agent) {
            if destination.is_some_and(|d| !g.destinations.iter().any(|x| x == d)) {
                continue;
            }
            let before = g.keys.len();
            g.keys.retain(|k| k != pattern);
            if g.keys.len() != before {
                changed += 1;
            }
        }
        self.grants.retain(|g| !g.keys.is_empty());
        changed
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
            expires: grant.expires,
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
    fn patterns_match_like_a_shell_star_and_nothing_more() {
        for (pattern, name, want) in [
            ("github-token", "github-token", true),
            ("github-token", "github-token2", false),
            ("db/*", "db/main", true),
            ("db/*", "dbx", false),
            ("*.evil.example", "x.evil.example", true),
            ("*.evil.example", "evil.example", false),
            ("*pastebin*", "pastebin.com", true),
            ("*pastebin*", "https://api.PasteBin.example/upload", true),
            ("*slack*", "hooks.slack.com", true),
            ("*slack*", "slac.k", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "a-c-b", false),
            ("ab*ba", "aba", false),
            ("*", "", true),
            ("", "x", false),
        ] {
            assert_eq!(matches(pattern, name), want, "{pattern} ~ {name}");
        }
    }

    #[test]
    fn a_new_policy_blocks_paste_and_chat_services_even_for_granted_agents() {
        let mut p = Policy::starter();
        assert!(p.grant("ada", "github-token", &["*".to_owned()], None));
        for blocked in [
            "pastebin.com",
            "discord.com",
            "hooks.slack.com",
            "api.telegram.org",
            "https://example.org/webhook/1",
        ] {
            let d = p.decide(&ask("ada", "github-token", blocked), 0);
            assert!(!d.allowed, "{blocked}");
            assert!(d.reason.contains("blocked"), "{blocked}: {}", d.reason);
        }
        assert!(
            p.decide(&ask("ada", "github-token", "api.github.com"), 0)
                .allowed
        );
    }

    #[test]
    fn grant_and_revoke_edit_the_policy_without_repeating_or_leaving_husks() {
        let mut p = Policy::starter();
        let gh = ["api.github.com".to_owned()];
        assert!(p.grant("ada", "github-token", &gh, None));
        assert!(
            p.grant("ada", "db/*", &gh, None),
            "same scope: one grant, two keys"
        );
        assert!(!p.grant("ada", "db/*", &gh, None), "already there");
        assert!(
            p.grant("ada", "ci/*", &[], Some(100)),
            "another scope: another grant"
        );
        assert_eq!(p.grants.len(), 2);
        assert_eq!(p.grants[0].keys, ["github-token", "db/*"]);
        let d = p.decide(&ask("ada", "ci/x", "localhost"), 10);
        assert_eq!((d.allowed, d.expires), (true, Some(100)));

        assert_eq!(p.revoke("ada", "db/*", Some("elsewhere")), 0);
        assert_eq!(p.revoke("ada", "db/*", None), 1);
        assert!(!p.decide(&ask("ada", "db/main", "localhost"), 0).allowed);
        assert_eq!(p.revoke("ada", "ci/*", None), 1);
        assert_eq!(p.grants.len(), 1, "an emptied grant goes");
        assert_eq!(p.revoke("bob", "github-token", None), 0);
    }

    #[test]
    fn edits_go_through_the_file_and_keep_it_valid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.json");
        crate::write_private(&path, &serde_json::to_vec(&Policy::starter()).unwrap()).unwrap();
        Policy::edit(&path, |p| p.grant("ada", "k", &[], None)).unwrap();
        Policy::edit(&path, |p| p.grant("bob", "k", &[], None)).unwrap();
        let back = Policy::load(&path).unwrap();
        assert_eq!(back.grants.len(), 2);
        assert_eq!(back.blocked_destinations.len(), DEFAULT_BLOCKED.len());

        std::fs::write(&path, "{ not json").unwrap();
        assert!(matches!(
            Policy::edit(&path, |p| p.grant("eve", "k", &[], None)),
            Err(PolicyError::Invalid(_))
        ));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{ not json",
            "a broken file is left for its owner to mend"
        );
        assert!(matches!(
            Policy::load(&dir.path().join("missing.json")),
            Err(PolicyError::Io { .. })
        ));
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
