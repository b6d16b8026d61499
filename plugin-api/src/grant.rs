//! One grant: a [`PermissionKind`] and, for all kinds but `kv`, a scope. The manifest's
//! permissions, the lock's grants, `datum plugin grant` and every host service check
//! go through this one type, so a scope is parsed and confined in one place.
//!
//! ```
//! use datum_plugin_api::{Grant, PermissionKind};
//!
//! let g: Grant = "fs-write:journal".parse().unwrap();
//! assert!(g.allows(PermissionKind::FsWrite, Some("journal/2026-11-28.md")));
//! assert!(!g.allows(PermissionKind::FsWrite, Some("journalx/a.md")));
//! assert_eq!(g.to_string(), "fs-write:journal");
//! assert!("git:../elsewhere".parse::<Grant>().is_err());
//! ```
//!
//! Since API 1.6.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::manifest::{valid_name, ManifestError, PermissionKind};

/// A permission as granted: `kv`, `fs-read:PATH`, `fs-write:PATH`, `git:PATH`,
/// `call:PLUGIN`, `install:PLUGIN` (either may be `*`), `secrets:PATTERN` (`db/*`).
///
/// Path scopes are workshop-relative and confined: no `..`, no absolute path, no
/// backslash or drive; `.` is the whole workshop. Serialized as its string form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Grant {
    kind: PermissionKind,
    scope: Option<String>,
}

impl Grant {
    /// Check and build a grant from its parts.
    pub fn new(kind: PermissionKind, scope: Option<&str>) -> Result<Self, ManifestError> {
        let shown = || match scope {
            Some(s) => format!("{kind}:{s}"),
            None => kind.to_string(),
        };
        let scope = match (kind, scope) {
            (PermissionKind::Kv, None) => None,
            (PermissionKind::Kv, Some(_)) => {
                return Err(ManifestError::Invalid(format!(
                    "`{}` takes no scope: a plugin's key-value store is its own; write `kv`",
                    shown()
                )))
            }
            (_, None) | (_, Some("")) => {
                return Err(ManifestError::Invalid(format!(
                    "`{}` needs a scope: `{kind}:{}`",
                    shown(),
                    kind.scope_shape()
                )))
            }
            (PermissionKind::FsRead | PermissionKind::FsWrite | PermissionKind::Git, Some(s)) => {
                Some(confined_path(s).ok_or_else(|| {
                    ManifestError::Invalid(format!(
                        "`{}`: `{s}` must be a path inside the workshop (relative, no `..`, `/` between names), or `.` for all of it",
                        shown()
                    ))
                })?)
            }
            (PermissionKind::Call | PermissionKind::Install, Some(s)) => {
                if s != "*" && !valid_name(s) {
                    return Err(ManifestError::Invalid(format!(
                        "`{}`: `{s}` must be a plugin name or `*`",
                        shown()
                    )));
                }
                Some(s.to_owned())
            }
            (PermissionKind::Secrets, Some(s)) => {
                let body = s.strip_suffix('*').unwrap_or(s);
                if body.contains('*') || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
                    return Err(ManifestError::Invalid(format!(
                        "`{}`: a secrets pattern is a key or a prefix ending in one `*` (`db/*`)",
                        shown()
                    )));
                }
                Some(s.to_owned())
            }
        };
        Ok(Grant { kind, scope })
    }

    pub fn kind(&self) -> PermissionKind {
        self.kind
    }

    /// The scope as written after the colon (`None` for `kv`). Path scopes are in
    /// their cleaned form (`journal`, not `./journal/`).
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// For path kinds: the granted folder (or file) inside the workshop, `""` for the
    /// whole workshop.
    pub fn path_scope(&self) -> Option<&str> {
        match self.kind {
            PermissionKind::FsRead | PermissionKind::FsWrite | PermissionKind::Git => {
                self.scope.as_deref().map(|s| if s == "." { "" } else { s })
            }
            _ => None,
        }
    }

    /// Does this grant allow `kind` on `target` (a workshop path for file and git
    /// kinds, a plugin name for `call`/`install`, a key for `secrets`)? A path target
    /// must already be confined (the host cleans it before asking).
    pub fn allows(&self, kind: PermissionKind, target: Option<&str>) -> bool {
        if self.kind != kind {
            return false;
        }
        match (kind, self.scope.as_deref(), target) {
            (PermissionKind::Kv, _, _) => true,
            (PermissionKind::Secrets, Some(scope), Some(key)) => match scope.strip_suffix('*') {
                Some(prefix) => key.starts_with(prefix),
                None => scope == key,
            },
            (PermissionKind::Call | PermissionKind::Install, Some(scope), Some(t)) => {
                scope == "*" || scope == t
            }
            (
                PermissionKind::FsRead | PermissionKind::FsWrite | PermissionKind::Git,
                Some(_),
                Some(path),
            ) => {
                let scope = self.path_scope().unwrap_or_default();
                // A target that is not itself a confined path is never allowed, even
                // under `.`: a grant cannot be stretched by the string it is asked about.
                let Some(path) = confined_path(path) else {
                    return false;
                };
                scope.is_empty() || path == scope || path.starts_with(&format!("{scope}/"))
            }
            _ => false,
        }
    }
}

/// `a/./b/` → `a/b`; `.` or `./` → `.`; `None` for anything that could leave the
/// workshop or means different things on different systems (`..`, a leading `/`, a
/// backslash, a drive letter, a NUL or other control character). Written over the
/// string, not `std::path`, so that the answer is the same on every target, WASM too.
fn confined_path(s: &str) -> Option<String> {
    if s.chars().any(|c| c == '\\' || c.is_control()) || s.starts_with('/') {
        return None;
    }
    let mut parts = Vec::new();
    for part in s.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p if p.len() >= 2 && p.as_bytes()[1] == b':' => return None,
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        // Only `.` (or `./`) names the whole workshop; an empty scope is not a grant.
        return (!s.is_empty()).then(|| ".".to_owned());
    }
    Some(parts.join("/"))
}

/// Grants sort as their strings do, so a lock lists them in the order a person reads
/// (and the order locks written before this type had).
impl Ord for Grant {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.to_string().cmp(&other.to_string())
    }
}

impl PartialOrd for Grant {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.scope {
            Some(scope) => write!(f, "{}:{scope}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl std::str::FromStr for Grant {
    type Err = ManifestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, scope) = match s.split_once(':') {
            Some((k, scope)) => (k, Some(scope)),
            None => (s, None),
        };
        Grant::new(kind.parse()?, scope)
    }
}

impl Serialize for Grant {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Grant {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(s: &str) -> Grant {
        s.parse().unwrap()
    }

    #[test]
    fn grants_match_by_kind_and_scope() {
        use PermissionKind::*;
        assert!(g("kv").allows(Kv, None));
        assert!(g("fs-read:journal").allows(FsRead, Some("journal/a.md")));
        assert!(g("fs-read:journal/").allows(FsRead, Some("journal/a.md")));
        assert!(g("fs-read:./journal").allows(FsRead, Some("journal")));
        assert!(!g("fs-read:journal").allows(FsRead, Some("journalx/a.md")));
        assert!(!g("fs-read:journal").allows(FsWrite, Some("journal/a.md")));
        assert!(g("git:.").allows(Git, Some("tools/x")));
        assert!(!g("git:tools").allows(Git, Some("tools/../etc")));
        assert!(!g("git:.").allows(Git, Some("../outside")));
        assert!(g("call:flux-vm").allows(Call, Some("flux-vm")));
        assert!(!g("call:flux-vm").allows(Call, Some("keeper")));
        assert!(g("call:*").allows(Call, Some("keeper")));
        assert!(g("install:*").allows(Install, Some("fleet")));
        assert!(!g("install:fleet").allows(Install, Some("keeper")));
        assert!(!g("call:*").allows(Install, Some("keeper")));
        assert!(g("secrets:db/*").allows(Secrets, Some("db/password")));
        assert!(!g("secrets:db/*").allows(Secrets, Some("dbx")));
        assert!(g("secrets:token").allows(Secrets, Some("token")));
        assert!(!g("secrets:token").allows(Secrets, Some("token2")));
    }

    #[test]
    fn scopes_that_could_leave_the_workshop_are_refused_for_every_path_kind() {
        for kind in ["fs-read", "fs-write", "git"] {
            for scope in [
                "../x",
                "a/../../b",
                "/etc",
                "a\\..\\b",
                "C:/x",
                "a/\u{0}b",
                "",
                "..",
            ] {
                let text = format!("{kind}:{scope}");
                assert!(text.parse::<Grant>().is_err(), "{text:?} was accepted");
            }
        }
        assert_eq!(
            g("git:./message-in-a-bottle/").to_string(),
            "git:message-in-a-bottle"
        );
        assert_eq!(g("fs-write:.").to_string(), "fs-write:.");
    }

    #[test]
    fn malformed_grants_say_what_shape_they_need() {
        for (text, wanted) in [
            ("fs-read", "fs-read:PATH"),
            ("call", "call:PLUGIN"),
            ("kv:x", "takes no scope"),
            ("net:example.org", "unknown permission kind"),
            ("call:Flux", "plugin name"),
            ("secrets:a*b*", "one `*`"),
        ] {
            let e = text.parse::<Grant>().unwrap_err().to_string();
            assert!(e.contains(wanted), "{text}: {e}");
        }
    }

    #[test]
    fn grants_sort_as_their_strings() {
        let mut grants = [
            g("kv"),
            g("secrets:db/*"),
            g("fs-write:notes"),
            g("fs-read:notes"),
        ];
        grants.sort();
        let shown: Vec<String> = grants.iter().map(Grant::to_string).collect();
        assert_eq!(
            shown,
            ["fs-read:notes", "fs-write:notes", "kv", "secrets:db/*"]
        );
    }

    #[test]
    fn a_grant_is_its_string_on_the_wire() {
        let grants: Vec<Grant> = serde_json::from_str(r#"["kv","call:*"]"#).unwrap();
        assert_eq!(
            serde_json::to_string(&grants).unwrap(),
            r#"["kv","call:*"]"#
        );
        assert!(serde_json::from_str::<Grant>(r#""fs-read:../x""#).is_err());
    }
}
