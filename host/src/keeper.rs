//! The host's side of the Keeper: the workshop's registration (`.superagent/keeper.json`,
//! owner-only and never committed) and what stands behind the `secret.get` host
//! service — a served Keeper over HTTP, or a standalone vault opened in process. A
//! Keeper that refuses or cannot be reached is an error: there is no fallback to
//! environment variables or anything else.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// How long datum waits for a Keeper before calling it unreachable.
pub const TIMEOUT: Duration = Duration::from_secs(3);
pub const CONFIG_FILE: &str = ".superagent/keeper.json";

/// How a workshop reaches its Keeper.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum KeeperConfig {
    /// A Keeper served over HTTP (`datum keeper serve`); the agent holds a token.
    Served {
        url: String,
        agent: String,
        token: String,
    },
    /// A vault on this machine, opened in process for each request (`datum boot
    /// --keeper-home DIR`). The master password comes from the file named by
    /// `DATUM_KEEPER_PASSWORD_FILE`, or a prompt on the terminal.
    Standalone { home: PathBuf, agent: String },
}

/// Names the file holding the standalone vault's master password.
pub const PASSWORD_FILE_ENV: &str = "DATUM_KEEPER_PASSWORD_FILE";

#[derive(Debug, thiserror::Error)]
pub enum KeeperError {
    #[error("the Keeper at {url} is unreachable (no answer within {} s): {message}; start it with `datum keeper serve` or check the URL", TIMEOUT.as_secs())]
    Unreachable { url: String, message: String },
    #[error("the Keeper refused: {0}")]
    Refused(String),
    #[error("the Keeper at {url} answered unexpectedly: {message}")]
    Protocol { url: String, message: String },
    #[error("this workshop is not registered with a Keeper; boot it with `datum boot --keeper URL` (served) or `--keeper-home DIR` (standalone)")]
    NotConfigured,
    #[error("the standalone Keeper at {home}: {message}")]
    Standalone { home: String, message: String },
    #[error("the Keeper registration {CONFIG_FILE} is unreadable: {0}; register again with `datum boot --keeper URL` or remove the file")]
    Corrupt(String),
    #[error("cannot read or save the Keeper registration: {0}")]
    Io(#[from] std::io::Error),
}

impl KeeperError {
    /// The fix for this failure.
    pub fn hint(&self) -> String {
        match self {
            KeeperError::Unreachable { .. } => {
                "start it with `datum keeper serve`, or check the URL in .superagent/keeper.toml"
                    .into()
            }
            KeeperError::Refused(_) => {
                "the Keeper's policy decides; ask its operator for a grant".into()
            }
            KeeperError::Protocol { .. } => {
                "check that the URL is a datum Keeper (`GET /v1/health`)".into()
            }
            KeeperError::NotConfigured => {
                "datum boot --keeper URL (served) or --keeper-home DIR (standalone)".into()
            }
            KeeperError::Standalone { home, .. } => format!("check the Keeper home {home}"),
            KeeperError::Corrupt(_) => {
                "register again with `datum boot --keeper URL`, or remove .superagent/keeper.toml"
                    .into()
            }
            KeeperError::Io(_) => "check the workshop's permissions".into(),
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(TIMEOUT))
        .build()
        .into()
}

fn base(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

fn unreachable(url: &str, e: impl std::fmt::Display) -> KeeperError {
    KeeperError::Unreachable {
        url: url.to_owned(),
        message: e.to_string(),
    }
}

fn read(
    url: &str,
    mut response: ureq::http::Response<ureq::Body>,
) -> Result<(u16, Value), KeeperError> {
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_json::<Value>()
        .map_err(|e| KeeperError::Protocol {
            url: url.to_owned(),
            message: format!("not JSON ({e})"),
        })?;
    Ok((status, body))
}

fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or("no reason given")
        .to_owned()
}

/// Check that a Keeper answers its health endpoint.
pub fn health(url: &str) -> Result<Value, KeeperError> {
    let response = agent()
        .get(format!("{}/v1/health", base(url)))
        .call()
        .map_err(|e| unreachable(url, e))?;
    match read(url, response)? {
        (200, body) if body["ok"] == true => Ok(body),
        (status, body) => Err(KeeperError::Protocol {
            url: url.to_owned(),
            message: format!("health answered {status}: {body}"),
        }),
    }
}

/// Register (or re-register, with the old token) an agent; returns its new token.
pub fn register(
    url: &str,
    name: &str,
    old_token: Option<&str>,
    enrolment: Option<&str>,
) -> Result<String, KeeperError> {
    let mut request = agent().post(format!("{}/v1/agents", base(url)));
    if let Some(t) = old_token {
        request = request.header("Authorization", &format!("Bearer {t}"));
    }
    let mut body = json!({ "name": name });
    if let Some(code) = enrolment {
        body["enrolment"] = json!(code);
    }
    let response = request.send_json(body).map_err(|e| unreachable(url, e))?;
    match read(url, response)? {
        (200, body) => {
            body["token"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| KeeperError::Protocol {
                    url: url.to_owned(),
                    message: "no token in the answer".into(),
                })
        }
        (_, body) => Err(KeeperError::Refused(message(&body))),
    }
}

/// Ask for a secret on the agent's behalf.
pub fn request_secret(
    config: &KeeperConfig,
    key: &str,
    purpose: &str,
    destination: &str,
) -> Result<String, KeeperError> {
    let (url, token) = match config {
        KeeperConfig::Served { url, token, .. } => (url, token),
        KeeperConfig::Standalone { home, agent } => {
            return standalone_secret(home, agent, key, purpose, destination)
        }
    };
    let response = agent()
        .post(format!("{}/v1/secrets/request", base(url)))
        .header("Authorization", &format!("Bearer {token}"))
        .send_json(json!({ "key": key, "purpose": purpose, "destination": destination }))
        .map_err(|e| unreachable(url, e))?;
    match read(url, response)? {
        (200, body) => match (body["encoding"].as_str(), body["value"].as_str()) {
            (Some("utf8"), Some(v)) => Ok(v.to_owned()),
            _ => Err(KeeperError::Protocol {
                url: url.to_owned(),
                message: "the secret is not text".into(),
            }),
        },
        (_, body) => Err(KeeperError::Refused(message(&body))),
    }
}

/// Check a standalone Keeper folder holds a readable, intact vault.
pub fn check_standalone(home: &Path) -> Result<(), KeeperError> {
    keeper_core::Vault::open(&home.join("vault.json"))
        .map(drop)
        .map_err(|e| KeeperError::Standalone {
            home: home.display().to_string(),
            message: e.to_string(),
        })
}

fn standalone_secret(
    home: &Path,
    agent: &str,
    key: &str,
    purpose: &str,
    destination: &str,
) -> Result<String, KeeperError> {
    let fail = |message: String| KeeperError::Standalone {
        home: home.display().to_string(),
        message,
    };
    let password = master_password().map_err(fail)?;
    let vault = keeper_core::Vault::open(&home.join("vault.json"))
        .and_then(|v| v.unlock(&password, keeper_core::MIN_ITERATIONS))
        .map_err(|e| fail(e.to_string()))?;
    let policy_path = home.join("policy.json");
    let policy = keeper_core::Policy::load(&policy_path).map_err(|e| fail(e.to_string()))?;
    let audit = keeper_core::AuditLog::open(&home.join("audit.jsonl"))
        .map_err(|e| fail(format!("cannot open the audit log: {e}")))?;
    match keeper_core::request_secret(
        &vault,
        &policy,
        &audit,
        Some(agent),
        key,
        purpose,
        destination,
    ) {
        Ok(granted) => {
            String::from_utf8(granted.value).map_err(|_| fail("the secret is not text".into()))
        }
        Err(keeper_core::Refusal::Internal(e)) => Err(fail(e)),
        Err(refusal) => Err(KeeperError::Refused(refusal.to_string())),
    }
}

/// The master password, wiped from memory when dropped.
fn master_password() -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
    use std::io::IsTerminal;
    use zeroize::Zeroizing;
    if let Some(path) = std::env::var_os(PASSWORD_FILE_ENV).filter(|p| !p.is_empty()) {
        let mut bytes = Zeroizing::new(
            crate::confined::read_file(Path::new(&path), 1024 * 1024).map_err(|e| {
                format!(
                    "cannot read {PASSWORD_FILE_ENV}={}: {e}",
                    Path::new(&path).display()
                )
            })?,
        );
        while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            bytes.pop();
        }
        return Ok(bytes);
    }
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password("Keeper master password: ")
            .map(|p| Zeroizing::new(p.into_bytes()))
            .map_err(|e| e.to_string());
    }
    Err(format!("the master password is needed: set {PASSWORD_FILE_ENV} to an owner-only file holding it, or run in a terminal"))
}

pub fn config_path(workshop: &Path) -> PathBuf {
    workshop.join(CONFIG_FILE)
}

pub fn load(workshop: &Path) -> Result<KeeperConfig, KeeperError> {
    let bytes = crate::confined::Folder::open(workshop)
        .and_then(|f| f.read(Path::new(CONFIG_FILE), 64 * 1024))
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => KeeperError::NotConfigured,
            _ => KeeperError::Io(e),
        })?;
    // A registration that exists but does not read is not "no Keeper": a plugin that
    // can do without secrets must not quietly run without them.
    serde_json::from_slice(&bytes).map_err(|e| KeeperError::Corrupt(e.to_string()))
}

/// Save the registration owner-only and keep it out of the workshop's git history.
pub fn save(workshop: &Path, config: &KeeperConfig) -> Result<(), KeeperError> {
    let folder = crate::confined::Folder::open(workshop)?;
    let text = serde_json::to_vec_pretty(config).map_err(std::io::Error::other)?;
    // Owner-only from the moment it exists: the token is never readable by others.
    folder.write_private(Path::new(CONFIG_FILE), &text)?;
    let current = folder
        .read(Path::new(".gitignore"), crate::confined::MAX_FILE)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let entry = format!("/{CONFIG_FILE}");
    if !current.lines().any(|l| l.trim() == entry) {
        folder.append_line(
            Path::new(".gitignore"),
            &format!("# the Keeper token is never committed\n{entry}"),
        )?;
    }
    Ok(())
}
