//! The host's side of the Keeper: the workshop's registration (`.superagent/keeper.json`,
//! owner-only and never committed) and the HTTP calls behind the `secret.get` host
//! service. A Keeper that refuses or cannot be reached is an error — there is no
//! fallback to environment variables or anything else.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// How long datum waits for a Keeper before calling it unreachable.
pub const TIMEOUT: Duration = Duration::from_secs(3);
pub const CONFIG_FILE: &str = ".superagent/keeper.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeeperConfig {
    pub url: String,
    pub agent: String,
    pub token: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KeeperError {
    #[error("the Keeper at {url} is unreachable (no answer within {} s): {message}; start it with `datum keeper serve` or check the URL", TIMEOUT.as_secs())]
    Unreachable { url: String, message: String },
    #[error("the Keeper refused: {0}")]
    Refused(String),
    #[error("the Keeper at {url} answered unexpectedly: {message}")]
    Protocol { url: String, message: String },
    #[error(
        "this workshop is not registered with a Keeper; boot it with `datum boot --keeper URL`"
    )]
    NotConfigured,
    #[error("cannot save the Keeper registration: {0}")]
    Io(#[from] std::io::Error),
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
pub fn register(url: &str, name: &str, old_token: Option<&str>) -> Result<String, KeeperError> {
    let mut request = agent().post(format!("{}/v1/agents", base(url)));
    if let Some(t) = old_token {
        request = request.header("Authorization", &format!("Bearer {t}"));
    }
    let response = request
        .send_json(json!({ "name": name }))
        .map_err(|e| unreachable(url, e))?;
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
    let url = &config.url;
    let response = agent()
        .post(format!("{}/v1/secrets/request", base(url)))
        .header("Authorization", &format!("Bearer {}", config.token))
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

pub fn config_path(workshop: &Path) -> PathBuf {
    workshop.join(CONFIG_FILE)
}

pub fn load(workshop: &Path) -> Result<KeeperConfig, KeeperError> {
    let bytes = std::fs::read(config_path(workshop)).map_err(|_| KeeperError::NotConfigured)?;
    serde_json::from_slice(&bytes).map_err(|_| KeeperError::NotConfigured)
}

/// Save the registration owner-only and keep it out of the workshop's git history.
pub fn save(workshop: &Path, config: &KeeperConfig) -> Result<(), KeeperError> {
    let path = config_path(workshop);
    let text = serde_json::to_vec_pretty(config).map_err(std::io::Error::other)?;
    crate::fsutil::atomic_write(&path, &text)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    let ignore = workshop.join(".gitignore");
    let current = std::fs::read_to_string(&ignore).unwrap_or_default();
    let entry = format!("/{CONFIG_FILE}");
    if !current.lines().any(|l| l.trim() == entry) {
        crate::fsutil::append_line(
            &ignore,
            &format!("# the Keeper token is never committed\n{entry}"),
        )?;
    }
    Ok(())
}
