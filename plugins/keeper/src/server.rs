//! The Keeper's HTTP API (axum on tokio), loopback-only unless told otherwise.
//!
//! | method & path | who | what |
//! |---|---|---|
//! | `GET /v1/health` | anyone | `{ok, secrets, agents}` |
//! | `POST /v1/agents` `{name, enrolment?}` | anyone (a new name no grant mentions); an enrolment code (a new name the policy grants); its own token or admin (taken name) | `{name, token}` |
//! | `POST /v1/secrets/request` `{key, purpose, destination}` | an agent token | `{key, value, encoding}` or a refusal |
//! | `GET /v1/admin/secrets` | admin | secret names |
//! | `PUT /v1/admin/secrets/{key}` `{value}` | admin | add or replace |
//! | `DELETE /v1/admin/secrets/{key}` | admin | remove |
//! | `GET /v1/admin/audit` | admin | the audit log |
//! | `GET /v1/admin/agents` | admin | registered agents |
//!
//! Every secret request — granted, refused, or unauthenticated — is written to the audit
//! log (and synced) before the answer leaves.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use keeper_core::{AuditLog, Policy, Refusal, Vault};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::agents::{constant_time_eq, hash_token, AgentRegistry, RegisterError};

/// `GET /v1/admin/audit` answers with at most this many of the newest entries.
const AUDIT_PAGE: usize = 10_000;

/// The default address: loopback only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7742";

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("refusing to listen on {0}: it is not a loopback address. The Keeper serves secrets; expose it beyond this machine only on purpose, with --allow-remote")]
    NotLoopback(SocketAddr),
    #[error("`{0}` is not an address like 127.0.0.1:7742")]
    BadAddress(String),
    #[error("cannot listen on {addr}: {source} (is another Keeper running? pick another port with --listen)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Open the listening socket, refusing non-loopback addresses unless allowed.
pub fn bind(addr: &str, allow_remote: bool) -> Result<std::net::TcpListener, ServeError> {
    let addr: SocketAddr = addr
        .parse()
        .map_err(|_| ServeError::BadAddress(addr.to_owned()))?;
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(ServeError::NotLoopback(addr));
    }
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| ServeError::Bind { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| ServeError::Bind { addr, source })?;
    Ok(listener)
}

/// The running service's state.
pub struct Keeper {
    vault: RwLock<Vault>,
    policy: RwLock<Policy>,
    agents: Mutex<AgentRegistry>,
    audit: AuditLog,
    admin_token_sha256: String,
}

impl std::fmt::Debug for Keeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keeper").finish_non_exhaustive()
    }
}

fn status_of(r: &Refusal) -> StatusCode {
    match r {
        Refusal::Unauthenticated => StatusCode::UNAUTHORIZED,
        Refusal::Denied(_) => StatusCode::FORBIDDEN,
        Refusal::NotFound(_) => StatusCode::NOT_FOUND,
        Refusal::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        Refusal::RateLimited => StatusCode::TOO_MANY_REQUESTS,
    }
}

fn message_of(r: &Refusal) -> String {
    match r {
        Refusal::Unauthenticated => {
            "missing or unknown token; register with POST /v1/agents and send `Authorization: Bearer TOKEN`".into()
        }
        other => other.to_string(),
    }
}

fn error(status: StatusCode, kind: &str, message: String) -> Response {
    (
        status,
        Json(json!({ "ok": false, "error": { "kind": kind, "message": message } })),
    )
        .into_response()
}

fn refusal(r: &Refusal) -> Response {
    let kind = match r {
        Refusal::Unauthenticated => "unauthenticated",
        Refusal::Denied(_) => "refused",
        Refusal::NotFound(_) => "not-found",
        Refusal::Internal(_) => "internal",
        Refusal::RateLimited => "rate-limited",
    };
    error(status_of(r), kind, message_of(r))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

#[derive(Debug, Deserialize)]
pub struct SecretRequest {
    pub key: String,
    #[serde(default)]
    pub purpose: String,
    #[serde(default)]
    pub destination: String,
}

impl Keeper {
    pub fn new(
        vault: Vault,
        policy: Policy,
        agents: AgentRegistry,
        audit: AuditLog,
        admin_token_sha256: String,
    ) -> Arc<Keeper> {
        Arc::new(Keeper {
            vault: RwLock::new(vault),
            policy: RwLock::new(policy),
            agents: Mutex::new(agents),
            audit,
            admin_token_sha256,
        })
    }

    fn is_admin(&self, token: Option<&str>) -> bool {
        token.is_some_and(|t| constant_time_eq(&hash_token(t), &self.admin_token_sha256))
    }

    fn agent_of(&self, token: Option<&str>) -> Option<String> {
        let token = token?;
        let mut agents = self.agents.lock().ok()?;
        // Registrations written by another process (or re-registrations) count at once.
        let _ = agents.refresh();
        agents.authenticate(token)
    }

    /// Pick up secrets written by another process (`datum keeper add-secret` while
    /// the server runs) before reading.
    fn refresh_vault(&self) -> Result<(), Refusal> {
        let stale = self.vault.read().map(|v| v.is_stale()).unwrap_or(false);
        if stale {
            let mut vault = self
                .vault
                .write()
                .map_err(|_| Refusal::Internal("vault lock poisoned".into()))?;
            vault
                .refresh()
                .map_err(|e| Refusal::Internal(e.to_string()))?;
        }
        Ok(())
    }

    /// Decide, audit, and only then answer. The in-process path and the HTTP handler
    /// both come through here, so neither can skip a step.
    pub fn request_secret(
        &self,
        token: Option<&str>,
        ask: &SecretRequest,
    ) -> Result<Vec<u8>, Refusal> {
        let agent = self.agent_of(token);
        self.refresh_vault()?;
        let vault = self
            .vault
            .read()
            .map_err(|_| Refusal::Internal("vault lock poisoned".into()))?;
        let policy = self
            .policy
            .read()
            .map_err(|_| Refusal::Internal("policy lock poisoned".into()))?;
        keeper_core::request_secret(
            &vault,
            &policy,
            &self.audit,
            agent.as_deref(),
            &ask.key,
            &ask.purpose,
            &ask.destination,
        )
    }

    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/v1/health", get(health))
            .route("/v1/agents", post(register))
            .route("/v1/secrets/request", post(request_secret))
            .route("/v1/admin/secrets", get(list_secrets))
            .route(
                "/v1/admin/secrets/{key}",
                put(put_secret).delete(delete_secret),
            )
            .route("/v1/admin/audit", get(audit))
            .route("/v1/admin/agents", get(list_agents))
            .with_state(self)
    }

    /// Serve on its own thread and runtime (tests, benchmarks, embedding hosts).
    pub fn serve_in_background(
        self: Arc<Self>,
        listener: std::net::TcpListener,
    ) -> std::thread::JoinHandle<std::io::Result<()>> {
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(self.serve(listener))
        })
    }

    /// Serve on an already bound listener until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: std::net::TcpListener) -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        axum::serve(listener, self.router()).await
    }
}

async fn health(State(k): State<Arc<Keeper>>) -> Response {
    let secrets = k.vault.read().map(|v| v.names().len()).unwrap_or(0);
    let agents = k.agents.lock().map(|a| a.names().len()).unwrap_or(0);
    Json(json!({ "ok": true, "service": "datum-keeper", "secrets": secrets, "agents": agents }))
        .into_response()
}

#[derive(Debug, Deserialize)]
struct RegisterBody {
    name: String,
    /// A one-time code from `datum keeper enroll NAME`.
    #[serde(default)]
    enrolment: Option<String>,
}

async fn register(
    State(k): State<Arc<Keeper>>,
    headers: HeaderMap,
    Json(body): Json<RegisterBody>,
) -> Response {
    let token = bearer(&headers);
    let authorised = k.is_admin(token) || k.agent_of(token).as_deref() == Some(body.name.as_str());
    // A name the policy grants secrets to cannot be claimed by whoever asks first.
    let protected = k
        .policy
        .read()
        .map(|p| p.grants.iter().any(|g| g.agent == body.name))
        .unwrap_or(true);
    let Ok(mut agents) = k.agents.lock() else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "agent registry lock poisoned".into(),
        );
    };
    match agents.register(&body.name, authorised, protected, body.enrolment.as_deref()) {
        Ok(token) => {
            Json(json!({ "ok": true, "name": body.name, "token": token.0 })).into_response()
        }
        Err(e @ RegisterError::BadName(_)) => {
            error(StatusCode::BAD_REQUEST, "invalid", e.to_string())
        }
        Err(e @ RegisterError::Taken(_)) => error(StatusCode::CONFLICT, "taken", e.to_string()),
        Err(e @ RegisterError::NeedsEnrolment(_)) => {
            error(StatusCode::FORBIDDEN, "needs-enrolment", e.to_string())
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

async fn request_secret(
    State(k): State<Arc<Keeper>>,
    headers: HeaderMap,
    Json(ask): Json<SecretRequest>,
) -> Response {
    match k.request_secret(bearer(&headers), &ask) {
        Ok(value) => {
            let (encoding, value) = match String::from_utf8(value) {
                Ok(text) => ("utf8", text),
                Err(e) => ("hex", hex::encode(e.into_bytes())),
            };
            Json(json!({ "ok": true, "key": ask.key, "encoding": encoding, "value": value }))
                .into_response()
        }
        Err(r) => refusal(&r),
    }
}

fn admin_only(k: &Keeper, headers: &HeaderMap) -> Option<Response> {
    (!k.is_admin(bearer(headers))).then(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "this endpoint needs the admin token".into(),
        )
    })
}

/// The admin check and the vault's write lock, which every admin write needs.
fn admin_vault<'a>(
    k: &'a Keeper,
    headers: &HeaderMap,
) -> Result<std::sync::RwLockWriteGuard<'a, Vault>, Box<Response>> {
    if let Some(denied) = admin_only(k, headers) {
        return Err(Box::new(denied));
    }
    k.vault.write().map_err(|_| {
        Box::new(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "vault lock poisoned".into(),
        ))
    })
}

async fn list_secrets(State(k): State<Arc<Keeper>>, headers: HeaderMap) -> Response {
    if let Some(denied) = admin_only(&k, &headers) {
        return denied;
    }
    if let Err(r) = k.refresh_vault() {
        return refusal(&r);
    }
    let names = k.vault.read().map(|v| v.names()).unwrap_or_default();
    Json(json!({ "ok": true, "secrets": names })).into_response()
}

#[derive(Debug, Deserialize)]
struct PutBody {
    value: String,
}

async fn put_secret(
    State(k): State<Arc<Keeper>>,
    headers: HeaderMap,
    Path(key): Path<String>,
    Json(body): Json<PutBody>,
) -> Response {
    let mut vault = match admin_vault(&k, &headers) {
        Ok(v) => v,
        Err(response) => return *response,
    };
    match vault.put(&key, body.value.as_bytes()) {
        Ok(()) => Json(json!({ "ok": true, "key": key })).into_response(),
        Err(e @ keeper_core::VaultError::BadName(_)) => {
            error(StatusCode::BAD_REQUEST, "invalid", e.to_string())
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

async fn delete_secret(
    State(k): State<Arc<Keeper>>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Response {
    let mut vault = match admin_vault(&k, &headers) {
        Ok(v) => v,
        Err(response) => return *response,
    };
    match vault.remove(&key) {
        Ok(true) => Json(json!({ "ok": true, "removed": key })).into_response(),
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no secret named `{key}`"),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

async fn audit(State(k): State<Arc<Keeper>>, headers: HeaderMap) -> Response {
    if let Some(denied) = admin_only(&k, &headers) {
        return denied;
    }
    match k.audit.tail(AUDIT_PAGE) {
        Ok(entries) => Json(json!({ "ok": true, "entries": entries })).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

async fn list_agents(State(k): State<Arc<Keeper>>, headers: HeaderMap) -> Response {
    if let Some(denied) = admin_only(&k, &headers) {
        return denied;
    }
    let names: Vec<Value> = k
        .agents
        .lock()
        .map(|a| a.names())
        .unwrap_or_default()
        .into_iter()
        .map(Value::from)
        .collect();
    Json(json!({ "ok": true, "agents": names })).into_response()
}
