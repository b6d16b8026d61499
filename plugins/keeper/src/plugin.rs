//! `datum keeper …`: the Keeper as a native plugin. Passwords and values come from a
//! file, a prompt, or stdin — never from the command line, where other users and shell
//! history could see them.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use datum_plugin_api::{Host, Output, Plugin, PluginError, Request};
use keeper_core::{AuditLog, Kdf, Policy, Vault};
use serde_json::json;
use zeroize::Zeroizing;

use crate::agents::{AgentRegistry, Token};
use crate::server::{bind, Keeper, DEFAULT_ADDR};

pub struct KeeperPlugin;

impl Plugin for KeeperPlugin {
    const MANIFEST: &'static str = include_str!("../datum-plugin.toml");

    fn invoke(request: &Request, _host: &Host<'_>) -> Result<Output, PluginError> {
        let home = Home::from(request)?;
        match request.command.as_str() {
            "keeper init" => init(&home, request),
            "keeper add-secret" => add_secret(&home, request),
            "keeper list" => list(&home),
            "keeper remove" => remove(&home, request),
            "keeper rotate-password" => rotate(&home, request),
            "keeper audit" => audit(&home, request),
            "keeper agents" => agents(&home),
            "keeper enroll" => enroll(&home, request),
            "keeper serve" => serve(&home, request),
            "keeper grant" => grant(&home, request),
            "keeper revoke" => revoke(&home, request),
            other => Err(PluginError::unknown_command("keeper", other)),
        }
    }
}

/// The Keeper's folder and the files in it.
struct Home(PathBuf);

impl Home {
    fn from(request: &Request) -> Result<Home, PluginError> {
        if let Some(h) = request.arg_str("home") {
            return Ok(Home(h.into()));
        }
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        env("DATUM_KEEPER_HOME")
            .or_else(|| env("DATUM_HOME").map(|h| h.join("keeper")))
            .or_else(|| env("HOME").map(|h| h.join(".local/share/datum/keeper")))
            .map(Home)
            .ok_or_else(|| {
                PluginError::invalid_args("cannot tell where the Keeper lives")
                    .with_hint("pass --home DIR or set DATUM_KEEPER_HOME")
            })
    }

    fn vault(&self) -> PathBuf {
        self.0.join("vault.json")
    }
    fn policy(&self) -> PathBuf {
        self.0.join("policy.json")
    }
    fn agents(&self) -> PathBuf {
        self.0.join("agents.json")
    }
    fn audit(&self) -> PathBuf {
        self.0.join("audit.jsonl")
    }
    fn config(&self) -> PathBuf {
        self.0.join("keeper.json")
    }
}

/// Password and value files larger than this are refused (they are not secrets).
const MAX_SECRET_FILE: u64 = 1024 * 1024;

fn failed(e: impl std::fmt::Display) -> PluginError {
    PluginError::failed(e.to_string())
}

/// Lines of stdin, read once, for when it is not a terminal (piped secrets arrive in
/// the order the command asks for them).
struct Input {
    lines: Option<std::vec::IntoIter<String>>,
}

impl Input {
    fn new() -> Input {
        Input { lines: None }
    }

    /// A secret from a file, a prompt or stdin; wiped from memory when dropped.
    fn secret(
        &mut self,
        file: Option<&str>,
        what: &str,
    ) -> Result<Zeroizing<Vec<u8>>, PluginError> {
        if let Some(f) = file {
            let mut bytes = Zeroizing::new(
                keeper_core::read_bounded(Path::new(f), MAX_SECRET_FILE).map_err(|e| {
                    PluginError::invalid_args(format!("cannot read {what} from {f}: {e}"))
                })?,
            );
            while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                bytes.pop();
            }
            return Ok(bytes);
        }
        if std::io::stdin().is_terminal() {
            return rpassword::prompt_password(format!("{what}: "))
                .map(|p| Zeroizing::new(p.into_bytes()))
                .map_err(failed);
        }
        let lines = self.lines.get_or_insert_with(|| {
            std::io::stdin()
                .lock()
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
                .into_iter()
        });
        lines.next().map(|l| Zeroizing::new(l.into_bytes())).ok_or_else(|| {
            PluginError::invalid_args(format!("no {what} given"))
                .with_hint("pipe it on stdin (one per line), use a --…-file option, or run in a terminal to be prompted")
        })
    }
}

fn unlock(home: &Home, request: &Request, input: &mut Input) -> Result<Vault, PluginError> {
    let locked = Vault::open(&home.vault()).map_err(failed)?;
    let password = input.secret(request.arg_str("password-file"), "master password")?;
    locked
        .unlock(&password, keeper_core::MIN_ITERATIONS)
        .map_err(failed)
}

fn init(home: &Home, request: &Request) -> Result<Output, PluginError> {
    // Only a folder datum creates, or one already private, becomes the Keeper's: an
    // existing shared folder (`--home /tmp`) is refused, never re-moded.
    if home.0.exists() {
        let private = keeper_core::is_private_dir(&home.0).map_err(failed)?;
        if !private && !request.arg_bool("force") {
            return Err(PluginError::invalid_args(format!(
                "{} exists and other users can enter it; the Keeper keeps secrets only in a private folder",
                home.0.display()
            ))
            .with_hint("name a new folder with --home (datum creates it owner-only), or pass --force to make this one owner-only"));
        }
        if !private {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&home.0, std::fs::Permissions::from_mode(0o700))
                    .map_err(failed)?;
            }
        }
    } else {
        keeper_core::create_private_dir(&home.0).map_err(failed)?;
    }
    let mut input = Input::new();
    let password = input.secret(request.arg_str("password-file"), "new master password")?;
    if password.len() < 8 {
        return Err(PluginError::invalid_args(
            "the master password must be at least 8 bytes",
        ));
    }
    Vault::create(&home.vault(), &password, Kdf::default()).map_err(failed)?;
    if !home.policy().exists() {
        let policy = serde_json::to_vec_pretty(&Policy::starter()).map_err(failed)?;
        keeper_core::write_private(&home.policy(), &policy).map_err(failed)?;
    }
    let admin = Token::generate().map_err(failed)?;
    let config = json!({ "admin_token_sha256": admin.hash() });
    keeper_core::write_private(&home.config(), config.to_string().as_bytes()).map_err(failed)?;
    let text = format!(
        "created the Keeper in {}\nadmin token (shown once; keep it safe): {}\nthe policy ({}) refuses everything until you grant: datum keeper grant AGENT KEY-PATTERN",
        home.0.display(),
        admin.0,
        home.policy().display()
    );
    Ok(Output::new(json!({ "home": home.0, "admin_token": admin.0 })).with_text(text))
}

fn add_secret(home: &Home, request: &Request) -> Result<Output, PluginError> {
    let name = request.require_str("name")?;
    let mut input = Input::new();
    let mut vault = unlock(home, request, &mut input)?;
    let value = input.secret(request.arg_str("value-file"), &format!("value of {name}"))?;
    vault.put(name, &value).map_err(failed)?;
    Ok(Output::new(json!({ "added": name })).with_text(format!("stored {name}")))
}

fn list(home: &Home) -> Result<Output, PluginError> {
    // Names are not secret and are readable without the password; the checksum still
    // catches a tampered file.
    let locked = Vault::open(&home.vault()).map_err(failed)?;
    let names = locked.names();
    let text = if names.is_empty() {
        "the vault holds no secrets".to_owned()
    } else {
        names.join("\n")
    };
    Ok(Output::new(json!({ "secrets": names })).with_text(text))
}

fn remove(home: &Home, request: &Request) -> Result<Output, PluginError> {
    let name = request.require_str("name")?;
    let mut vault = unlock(home, request, &mut Input::new())?;
    if !vault.remove(name).map_err(failed)? {
        return Err(PluginError::failed(format!("no secret named `{name}`"))
            .with_hint("see `datum keeper list`"));
    }
    Ok(Output::new(json!({ "removed": name })).with_text(format!("removed {name}")))
}

fn rotate(home: &Home, request: &Request) -> Result<Output, PluginError> {
    let mut input = Input::new();
    let mut vault = unlock(home, request, &mut input)?;
    let new = input.secret(request.arg_str("new-password-file"), "new master password")?;
    if new.len() < 8 {
        return Err(PluginError::invalid_args(
            "the master password must be at least 8 bytes",
        ));
    }
    vault
        .rotate_password(&new, Kdf::default())
        .map_err(failed)?;
    Ok(Output::new(json!({ "rotated": true }))
        .with_text("the vault is now sealed under the new password"))
}

fn audit(home: &Home, request: &Request) -> Result<Output, PluginError> {
    let log = AuditLog::open(&home.audit()).map_err(failed)?;
    // The tail is read from the end of the file: a huge log costs no more than a small one.
    let limit = match request.arg_i64("limit") {
        Some(n) => usize::try_from(n).unwrap_or(0),
        None => DEFAULT_AUDIT_LIMIT,
    };
    let entries = log.tail(limit).map_err(failed)?;
    // Fields come from anyone who could reach the port: shown, never obeyed.
    let text = entries
        .iter()
        .map(|e| {
            format!(
                "{} {:<8} {:<12} {:<20} {:<16} {} ({})",
                one_line(&e.time),
                one_line(&e.decision),
                one_line(&e.agent),
                one_line(&e.key),
                one_line(&e.destination),
                one_line(&e.purpose),
                one_line(&e.reason)
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    Ok(
        Output::new(json!({ "entries": entries })).with_text(if text.is_empty() {
            "no requests yet".into()
        } else {
            text
        }),
    )
}

/// `keeper audit` without --limit shows this many of the newest entries.
const DEFAULT_AUDIT_LIMIT: usize = 1000;

/// Text from the wire made safe for a terminal line: every control character
/// (ESC, newline, …) and bidirectional override is shown as `\u{..}`.
fn one_line(text: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}') {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// `keeper enroll NAME`: a one-time code with which agent NAME may register (once,
/// within a day) although the policy grants that name secrets.
fn enroll(home: &Home, request: &Request) -> Result<Output, PluginError> {
    let name = request.require_str("name")?;
    let hours = request
        .arg_i64("valid-hours")
        .unwrap_or(24)
        .clamp(1, 24 * 30) as u64;
    let code = AgentRegistry::enroll(&home.agents(), name, hours * 3600).map_err(|e| match e {
        crate::agents::RegisterError::BadName(_) => PluginError::invalid_args(e.to_string())
            .with_hint("agent names are like `ada` or `build-bot-2`"),
        other => failed(other),
    })?;
    let text = format!(
        "enrolment code for {name} (shown once; valid {hours} h, for one registration):\n{}\nuse it with: datum boot --keeper URL --enrol CODE",
        code.0
    );
    Ok(Output::new(json!({ "agent": name, "code": code.0, "valid_hours": hours })).with_text(text))
}

fn agents(home: &Home) -> Result<Output, PluginError> {
    let registry = AgentRegistry::load(&home.agents()).map_err(failed)?;
    let names = registry.names();
    let text = if names.is_empty() {
        "no agents registered".to_owned()
    } else {
        names.join("\n")
    };
    Ok(Output::new(json!({ "agents": names })).with_text(text))
}

fn read_config(path: &Path) -> Result<String, PluginError> {
    let text = std::fs::read_to_string(path).map_err(|_| {
        PluginError::failed(format!("{} is missing", path.display()))
            .with_hint("run `datum keeper init` first")
    })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(failed)?;
    v["admin_token_sha256"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| failed("keeper.json has no admin token hash"))
}

/// `keeper grant AGENT KEY-PATTERN [--destination D]… [--expires WHEN]`: edit the
/// policy file under its lock; a running server picks the change up on its next request.
fn grant(home: &Home, request: &Request) -> Result<Output, PluginError> {
    let agent = request.require_str("agent")?;
    let pattern = request.require_str("key")?;
    check_policy_words(agent, pattern)?;
    let destinations = request.arg_strs("destination");
    if let Some(bad) = destinations
        .iter()
        .find(|d| d.trim().is_empty() || d.chars().any(char::is_control))
    {
        return Err(
            PluginError::invalid_args(format!("`{bad}` is not a destination"))
                .with_hint("name a host (api.github.com) or a pattern (*.example.org)"),
        );
    }
    let expires = request
        .arg_str("expires")
        .map(|w| parse_expiry(w, keeper_core::now_secs()))
        .transpose()?;
    let (added, grants, blocked) = Policy::edit(&home.policy(), |p| {
        let added = p.grant(agent, pattern, &destinations, expires);
        let mine: Vec<_> = p
            .grants
            .iter()
            .filter(|g| g.agent == agent)
            .cloned()
            .collect();
        let blocked: Vec<String> = p
            .blocked_destinations
            .iter()
            .filter(|b| destinations.iter().any(|d| keeper_core::matches(b, d)))
            .cloned()
            .collect();
        (added, mine, blocked)
    })
    .map_err(policy_failed)?;
    let mut text = if added {
        format!("{agent} may now read `{pattern}`")
    } else {
        format!("{agent} could already read `{pattern}`")
    };
    if !destinations.is_empty() {
        text.push_str(&format!(" for {}", destinations.join(", ")));
    }
    if let Some(e) = expires {
        text.push_str(&format!(
            " until {}",
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(e)
            )
        ));
    }
    for b in &blocked {
        text.push_str(&format!(
            "\nnote: blocked_destinations has `{b}`, which still refuses that destination"
        ));
    }
    Ok(Output::new(json!({ "agent": agent, "key": pattern, "added": added, "grants": grants, "still_blocked": blocked }))
        .with_text(text))
}

/// `keeper revoke AGENT KEY-PATTERN [--destination D]`: take a pattern away.
fn revoke(home: &Home, request: &Request) -> Result<Output, PluginError> {
    let agent = request.require_str("agent")?;
    let pattern = request.require_str("key")?;
    let destination = request.arg_str("destination");
    let changed = Policy::edit(&home.policy(), |p| p.revoke(agent, pattern, destination))
        .map_err(policy_failed)?;
    if changed == 0 {
        return Err(PluginError::failed(format!(
            "{agent} has no grant of `{pattern}`{}",
            destination.map(|d| format!(" for {d}")).unwrap_or_default()
        ))
        .with_hint(format!("the grants are in {}", home.policy().display())));
    }
    Ok(
        Output::new(json!({ "agent": agent, "key": pattern, "revoked": changed })).with_text(
            format!("{agent} may no longer read `{pattern}` ({changed} grant(s) changed)"),
        ),
    )
}

fn policy_failed(e: keeper_core::PolicyError) -> PluginError {
    let hint = match &e {
        keeper_core::PolicyError::Io { .. } => "run `datum keeper init` first, or pass --home",
        keeper_core::PolicyError::Invalid(_) => "mend policy.json by hand (it is left as it was)",
    };
    PluginError::failed(e.to_string()).with_hint(hint)
}

/// Agent names and key patterns go into a file other tools read: no control
/// characters, nothing empty.
fn check_policy_words(agent: &str, pattern: &str) -> Result<(), PluginError> {
    for (what, word) in [("agent", agent), ("key pattern", pattern)] {
        if word.trim().is_empty() || word.chars().any(char::is_control) || word.len() > 256 {
            return Err(
                PluginError::invalid_args(format!("`{word}` is not a valid {what}")).with_hint(
                    "agents are names like `ada`; key patterns are names or prefixes like `db/*`",
                ),
            );
        }
    }
    Ok(())
}

/// `--expires`: Unix seconds, a date (`2026-12-31`, midnight UTC), an RFC 3339 time,
/// or a duration from now (`30d`, `12h`).
fn parse_expiry(when: &str, now: u64) -> Result<u64, PluginError> {
    let when = when.trim();
    if let Ok(secs) = when.parse::<u64>() {
        return Ok(secs);
    }
    let at = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    if let Ok(d) = humantime::parse_duration(when) {
        return Ok(now.saturating_add(d.as_secs()));
    }
    let stamp = if when.len() == 10 {
        format!("{when}T00:00:00Z")
    } else {
        when.to_owned()
    };
    match humantime::parse_rfc3339_weak(&stamp) {
        Ok(t) if at(t) > now => Ok(at(t)),
        Ok(_) => Err(
            PluginError::invalid_args(format!("`{when}` is in the past"))
                .with_hint("give a later date, or a duration from now such as 30d"),
        ),
        Err(_) => Err(
            PluginError::invalid_args(format!("`{when}` is not a time")).with_hint(
                "use a date (2026-12-31), an RFC 3339 time, Unix seconds, or a duration (30d, 12h)",
            ),
        ),
    }
}

fn serve(home: &Home, request: &Request) -> Result<Output, PluginError> {
    let admin_hash = read_config(&home.config())?;
    let policy = Policy::load(&home.policy()).map_err(policy_failed)?;
    let addr = request.arg_str("listen").unwrap_or(DEFAULT_ADDR);
    let allow_remote = request.arg_bool("allow-remote");
    let listener = bind(addr, allow_remote).map_err(failed)?;
    let vault = unlock(home, request, &mut Input::new())?;
    let agents = AgentRegistry::load(&home.agents()).map_err(failed)?;
    let audit = AuditLog::open(&home.audit()).map_err(failed)?;
    let compat = request.arg_bool("compat");
    let options = crate::server::Options {
        compat,
        policy_file: Some(home.policy()),
    };
    let keeper = Keeper::with_options(vault, policy, agents, audit, admin_hash, options);
    let local = listener.local_addr().map_err(failed)?;
    if !local.ip().is_loopback() {
        eprintln!("warning: the Keeper is listening on {local}, reachable from other machines");
    }
    eprintln!("Keeper listening on http://{local} (Ctrl-C stops it)");
    if compat {
        eprintln!("also serving the prototype's endpoints: GET /api/health, POST /api/request");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(failed)?;
    runtime.block_on(async move {
        tokio::select! {
            served = keeper.serve(listener) => served.map_err(failed),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })?;
    Ok(
        Output::new(json!({ "stopped": true, "address": local.to_string() }))
            .with_text("Keeper stopped"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_read_in_every_form_an_operator_types() {
        let now = 1_800_000_000;
        assert_eq!(parse_expiry("1900000000", now).unwrap(), 1_900_000_000);
        assert_eq!(parse_expiry("30d", now).unwrap(), now + 30 * 86_400);
        assert_eq!(parse_expiry("12h", now).unwrap(), now + 12 * 3_600);
        assert_eq!(parse_expiry("2027-12-31", now).unwrap(), 1_830_211_200);
        assert_eq!(
            parse_expiry("2027-12-31T12:00:00Z", now).unwrap(),
            1_830_254_400
        );
        assert!(parse_expiry("2020-01-01", now).is_err(), "the past");
        assert!(parse_expiry("tomorrow-ish", now).is_err());
    }
}
