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
//! With `--compat` ([`Options::compat`]) the Python prototype's endpoints are served
//! beside these, through the very same gate (token, policy, destination rules, audit):
//!
//! | method & path | who | what |
//! |---|---|---|
//! | `GET /api/health` | anyone | `{status: "ok", …}` |
//! | `POST /api/request` `{agent, key, purpose, destination}` | an agent token whose agent is `agent` | `{approved, value, ttl}` |
//!
//! Every secret request — granted, refused, or unauthenticated — is written to the audit
//! log (and synced) before the answer leaves. A policy file ([`Options::policy_file`])
//! is re-read when it changes, so `datum keeper grant|revoke` and hand edits take effect
//! on the next request; a policy that no longer parses refuses everything until mended.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use keeper_core::{AuditLog, Decision, Granted, Policy, Refusal, Vault};
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

/// A compat answer caches the value for at most this many seconds (less when the
/// grant ends sooner): a revoke reaches prototype agents within this time.
pub const COMPAT_TTL: u64 = 300;

/// How a Keeper serves, beyond its stores.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Serve the prototype's `/api/…` endpoints beside `/v1` (off by default).
    pub compat: bool,
    /// Re-read the policy from this file whenever it changes.
    pub policy_file: Option<PathBuf>,
}

/// The running service's state.
pub struct Keeper {
    vault: RwLock<Vault>,
    policy: RwLock<LivePolicy>,
    agents: Mutex<AgentRegistry>,
    audit: AuditLog,
    admin_token_sha256: String,
    options: Options,
}

/// The policy in force and the version of the file it came from.
struct LivePolicy {
    /// `Err` holds why the newest file does not parse: then everything is refused.
    policy: Result<Policy, String>,
    stamp: Option<String>,
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

#[derive(Debug, Default, Deserialize)]
pub struct SecretRequest {
    pub key: String,
    #[serde(default)]
    pub purpose: String,
    #[serde(default)]
    pub destination: String,
}

/// The prototype's request. `agent` must be the token's own agent: naming another is
/// refused (and audited), never a way to borrow its grants.
#[derive(Debug, Deserialize)]
struct CompatRequest {
    agent: String,
    key: String,
    #[serde(default)]
    purpose: String,
    /// The prototype sent none; datum's destination rules still apply, so a request
    /// without one is refused exactly as on `/v1`.
    #[serde(default)]
    destination: String,
}

impl Keeper {
    pub fn new(
        vault: Vault,
        policy: Policy,
        agents: AgentRegistry,
        audit: AuditLog,
        admin_token_sha256: String,
    ) -> Arc<Keeper> {
        Keeper::with_options(
            vault,
            policy,
            agents,
            audit,
            admin_token_sha256,
            Options::default(),
        )
    }

    /// A Keeper that may also serve the compat endpoints and follow a policy file.
    pub fn with_options(
        vault: Vault,
        policy: Policy,
        agents: AgentRegistry,
        audit: AuditLog,
        admin_token_sha256: String,
        options: Options,
    ) -> Arc<Keeper> {
        Arc::new(Keeper {
            vault: RwLock::new(vault),
            policy: RwLock::new(LivePolicy {
                policy: Ok(policy),
                // No stamp yet: a watched file is re-read on the first request, so a
                // change made between the caller's read and now is not missed.
                stamp: None,
            }),
            agents: Mutex::new(agents),
            audit,
            admin_token_sha256,
            options,
        })
    }

    /// Re-read the policy file when it changed since it was last read.
    fn refresh_policy(&self) {
        let Some(path) = &self.options.policy_file else {
            return;
        };
        let stamp = keeper_core::file_stamp(path);
        let current = self
            .policy
            .read()
            .map(|p| p.stamp == stamp)
            .unwrap_or(false);
        if current {
            return;
        }
        let Ok(mut live) = self.policy.write() else {
            return;
        };
        let policy = Policy::load(path).map_err(|e| e.to_string());
        match &policy {
            Ok(_) => eprintln!("keeper: policy reloaded from {}", path.display()),
            Err(e) => eprintln!("keeper: {e}; every request is refused until it is mended"),
        }
        *live = LivePolicy { policy, stamp };
    }

    /// Does any grant name `agent`? (True when the policy cannot be read: fail closed.)
    fn is_granted_name(&self, agent: &str) -> bool {
        self.refresh_policy();
        self.policy
            .read()
            .ok()
            .and_then(|p| {
                p.policy
                    .as_ref()
                    .ok()
                    .map(|p| p.grants.iter().any(|g| g.agent == agent))
            })
            .unwrap_or(true)
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

    /// Decide, audit, and only then answer. The in-process path and every HTTP
    /// handler (`/v1` and compat) come through here, so none can skip a step.
    pub fn request_secret(
        &self,
        token: Option<&str>,
        ask: &SecretRequest,
    ) -> Result<Granted, Refusal> {
        self.request_secret_as(token, None, ask)
    }

    /// [`Keeper::request_secret`] for a caller that also names itself (`claimed`): a
    /// name that is not the token's agent is refused and audited.
    fn request_secret_as(
        &self,
        token: Option<&str>,
        claimed: Option<&str>,
        ask: &SecretRequest,
    ) -> Result<Granted, Refusal> {
        let agent = self.agent_of(token);
        self.refresh_vault()?;
        self.refresh_policy();
        let refuse = |agent: &str, reason: String| {
            let request = keeper_core::Request {
                agent: agent.to_owned(),
                key: ask.key.clone(),
                purpose: ask.purpose.clone(),
                destination: ask.destination.clone(),
            };
            self.audit
                .record(&request, &Decision::refuse(reason.clone()))
                .map_err(|e| Refusal::Internal(format!("cannot write the audit log: {e}")))?;
            Err(Refusal::Denied(reason))
        };
        if let (Some(agent), Some(claimed)) = (agent.as_deref(), claimed) {
            if agent != claimed {
                return refuse(
                    agent,
                    format!("the token belongs to `{agent}`, but the request names `{claimed}`"),
                );
            }
        }
        let vault = self
            .vault
            .read()
            .map_err(|_| Refusal::Internal("vault lock poisoned".into()))?;
        let live = self
            .policy
            .read()
            .map_err(|_| Refusal::Internal("policy lock poisoned".into()))?;
        let refuse_all = Policy::default();
        let policy = match (&live.policy, agent.as_deref()) {
            (Ok(policy), _) => policy,
            // Unauthenticated callers are refused as such whatever the policy says.
            (Err(_), None) => &refuse_all,
            (Err(e), Some(agent)) => {
                return refuse(agent, format!("the policy file is invalid ({e})"));
            }
        };
        keeper_core::request_secret(
            &vault,
            policy,
            &self.audit,
            agent.as_deref(),
            &ask.key,
            &ask.purpose,
            &ask.destination,
        )
    }

    pub fn router(self: Arc<Self>) -> Router {
        let router = if self.options.compat {
            Router::new()
                .route("/api/health", get(compat_health))
                .route("/api/request", post(compat_request))
        } else {
            Router::new()
        };
        router
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
    let protected = k.is_granted_name(&body.name);
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
    let token = bearer(&headers).map(str::to_owned);
    let (ask, answer) = decide(k, token, None, ask).await;
    match answer {
        Ok(granted) => {
            let (encoding, value) = encoded(granted.value);
            Json(json!({ "ok": true, "key": ask.key, "encoding": encoding, "value": value }))
                .into_response()
        }
        Err(r) => refusal(&r),
    }
}

/// Run the gate on a blocking thread: the audit write waits for its (group) fsync,
/// which must not hold one of the few async workers — and many requests waiting at
/// once is what lets them share a sync.
async fn decide(
    k: Arc<Keeper>,
    token: Option<String>,
    claimed: Option<String>,
    ask: SecretRequest,
) -> (SecretRequest, Result<Granted, Refusal>) {
    let outcome = tokio::task::spawn_blocking(move || {
        let answer = k.request_secret_as(token.as_deref(), claimed.as_deref(), &ask);
        (ask, answer)
    })
    .await;
    match outcome {
        Ok(done) => done,
        Err(e) => (
            SecretRequest::default(),
            Err(Refusal::Internal(format!("the request failed: {e}"))),
        ),
    }
}

/// A value as text when it is UTF-8, else as hex.
fn encoded(value: Vec<u8>) -> (&'static str, String) {
    match String::from_utf8(value) {
        Ok(text) => ("utf8", text),
        Err(e) => ("hex", hex::encode(e.into_bytes())),
    }
}

async fn compat_health(State(k): State<Arc<Keeper>>) -> Response {
    let secrets = k.vault.read().map(|v| v.names().len()).unwrap_or(0);
    Json(json!({ "status": "ok", "ok": true, "service": "datum-keeper", "compat": true, "secrets": secrets }))
        .into_response()
}

/// `{agent, key, purpose}` → `{approved, value, ttl}`; a refusal has the same HTTP
/// status as on `/v1`, `approved: false`, no value, and the reason.
async fn compat_request(
    State(k): State<Arc<Keeper>>,
    headers: HeaderMap,
    Json(ask): Json<CompatRequest>,
) -> Response {
    let request = SecretRequest {
        key: ask.key,
        purpose: ask.purpose,
        destination: ask.destination,
    };
    let token = bearer(&headers).map(str::to_owned);
    let (request, answer) = decide(k, token, Some(ask.agent), request).await;
    match answer {
        Ok(granted) => {
            let now = keeper_core::now_secs();
            let ttl = granted
                .expires
                .map_or(COMPAT_TTL, |e| e.saturating_sub(now).min(COMPAT_TTL));
            let (encoding, value) = encoded(granted.value);
            Json(json!({ "approved": true, "value": value, "ttl": ttl, "key": request.key, "encoding": encoding }))
                .into_response()
        }
        Err(r) => (
            status_of(&r),
            Json(json!({ "approved": false, "value": null, "ttl": 0, "reason": message_of(&r) })),
        )
            .into_response(),
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
