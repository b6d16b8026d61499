//! A local GitHub-compatible server for fleet tests and benchmarks: the GraphQL queries
//! the fleet plugin sends (a page of an organisation's repositories, blobs by node id,
//! a repository's FLUX folders) and the REST endpoints it uses (organisation
//! repositories, root contents with ETags, git blobs, topics, licences, contents),
//! answered from repositories held in memory — or read from real git repositories, so
//! a test can check that GitHub and plain git give the same fleet.
//!
//! Faults on demand: secondary rate limits (`403` + `retry-after`), a spent primary
//! limit, a required token. Every request is counted.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde_json::{json, Value};

/// One repository as the fixture serves it.
#[derive(Debug, Clone, Default)]
pub struct FixtureRepo {
    pub name: String,
    pub description: Option<String>,
    /// Unix seconds of the last push; `None` for an empty repository.
    pub pushed_at: Option<i64>,
    pub archived: bool,
    pub topics: Vec<String>,
    pub license: Option<String>,
    /// Files at HEAD by path (`README.md`, `vectors/x.json`).
    pub files: BTreeMap<String, Vec<u8>>,
}

impl FixtureRepo {
    pub fn new(name: &str, pushed_at: i64) -> FixtureRepo {
        FixtureRepo {
            name: name.into(),
            pushed_at: Some(pushed_at),
            ..FixtureRepo::default()
        }
    }

    pub fn file(mut self, path: &str, contents: &str) -> FixtureRepo {
        self.files.insert(path.into(), contents.as_bytes().to_vec());
        self
    }

    /// Read a repository's HEAD as GitHub would show it: the HEAD commit's time as the
    /// last push, its files, a bare repository's `description`.
    pub fn from_git(path: &Path) -> FixtureRepo {
        let repo = git2::Repository::open(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        let name = name.strip_suffix(".git").unwrap_or(&name).to_owned();
        let description = std::fs::read_to_string(repo.path().join("description"))
            .ok()
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty() && !d.starts_with("Unnamed repository"));
        let mut out = FixtureRepo {
            name,
            description,
            ..FixtureRepo::default()
        };
        let Ok(commit) = repo.head().and_then(|h| h.peel_to_commit()) else {
            return out;
        };
        out.pushed_at = Some(commit.time().seconds());
        commit
            .tree()
            .unwrap()
            .walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
                if entry.kind() == Some(git2::ObjectType::Blob) {
                    let blob = repo.find_blob(entry.id()).unwrap();
                    out.files.insert(
                        format!("{dir}{}", entry.name().unwrap()),
                        blob.content().to_vec(),
                    );
                }
                git2::TreeWalkResult::Ok
            })
            .unwrap();
        out
    }

    fn oid(bytes: &[u8]) -> String {
        git2::Oid::hash_object(git2::ObjectType::Blob, bytes)
            .unwrap()
            .to_string()
    }

    /// `(name, is_dir)` at the root.
    fn root(&self) -> Vec<(String, bool)> {
        let mut seen = BTreeMap::new();
        for path in self.files.keys() {
            match path.split_once('/') {
                Some((dir, _)) => seen.insert(dir.to_owned(), true),
                None => seen.insert(path.clone(), false),
            };
        }
        seen.into_iter().collect()
    }
}

/// What the fixture has been asked, and faults to inject.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub graphql: AtomicU64,
    pub rest: AtomicU64,
    /// Capability-file texts sent (inline in a page, by node id, or as a REST blob).
    pub capability_texts: AtomicU64,
    pub not_modified: AtomicU64,
    /// Answer this many next requests with a secondary rate limit (`retry-after: 1`).
    pub secondary_limits: AtomicU64,
    /// After this many more requests, the primary limit is spent (0 = never).
    pub primary_after: AtomicU64,
}

struct Shared {
    org: String,
    repos: Vec<FixtureRepo>,
    token: Option<String>,
    counters: Arc<Counters>,
    /// Changes made through the REST API: `(repo, what)`.
    writes: Mutex<Vec<(String, Value)>>,
}

pub struct GitHubFixture {
    pub url: String,
    pub counters: Arc<Counters>,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GitHubFixture {
    /// Serve `repos` as the organisation `org`; with `token`, every request must carry it.
    pub fn start(org: &str, repos: Vec<FixtureRepo>, token: Option<&str>) -> GitHubFixture {
        let counters = Arc::new(Counters::default());
        let mut repos = repos;
        repos.sort_by(|a, b| a.name.cmp(&b.name));
        let shared = Arc::new(Shared {
            org: org.to_owned(),
            repos,
            token: token.map(str::to_owned),
            counters: counters.clone(),
            writes: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/graphql", post(graphql))
            .route("/api/graphql", post(graphql))
            .route("/orgs/{org}/repos", get(org_repos))
            .route("/repos/{org}/{repo}/contents/", get(root_contents))
            .route("/repos/{org}/{repo}/contents/LICENSE", put(put_license))
            .route("/repos/{org}/{repo}/git/blobs/{sha}", get(blob))
            .route("/repos/{org}/{repo}/topics", put(put_topics))
            .route("/licenses/{spdx}", get(license))
            .with_state(shared.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        GitHubFixture {
            url,
            counters,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::SeqCst)
    }

    pub fn capability_texts(&self) -> u64 {
        self.counters.capability_texts.load(Ordering::SeqCst)
    }

    pub fn reset_counts(&self) {
        for c in [
            &self.counters.requests,
            &self.counters.graphql,
            &self.counters.rest,
            &self.counters.capability_texts,
            &self.counters.not_modified,
        ] {
            c.store(0, Ordering::SeqCst);
        }
    }

    /// Changes made through the REST API, in order.
    pub fn writes(&self) -> Vec<(String, Value)> {
        self.shared.writes.lock().unwrap().clone()
    }
}

impl Drop for GitHubFixture {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(
            json!({ "message": message, "documentation_url": "https://docs.github.com/rest" }),
        ),
    )
        .into_response()
}

/// Count the request and apply the auth rule and injected faults: `Some` is the
/// refusal to send instead of an answer.
fn gate(s: &Shared, headers: &HeaderMap) -> Option<Response> {
    let c = &s.counters;
    c.requests.fetch_add(1, Ordering::SeqCst);
    if let Some(token) = &s.token {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if auth.is_empty() {
            return Some(error(StatusCode::UNAUTHORIZED, "Requires authentication"));
        }
        if auth != format!("Bearer {token}") {
            return Some(error(StatusCode::UNAUTHORIZED, "Bad credentials"));
        }
    }
    if c.secondary_limits.load(Ordering::SeqCst) > 0 {
        c.secondary_limits.fetch_sub(1, Ordering::SeqCst);
        let mut r = error(StatusCode::FORBIDDEN, "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.");
        r.headers_mut().insert("retry-after", "1".parse().unwrap());
        return Some(r);
    }
    let left = c.primary_after.load(Ordering::SeqCst);
    if left == 1 {
        let reset = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 1800;
        let mut r = error(StatusCode::FORBIDDEN, "API rate limit exceeded");
        r.headers_mut()
            .insert("x-ratelimit-remaining", "0".parse().unwrap());
        r.headers_mut()
            .insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
        return Some(r);
    }
    if left > 1 {
        c.primary_after.fetch_sub(1, Ordering::SeqCst);
    }
    None
}

fn rfc3339(secs: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64),
    )
    .to_string()
}

fn blob_json(s: &Shared, bytes: &[u8], with_text: bool, is_capability: bool) -> Value {
    let oid = FixtureRepo::oid(bytes);
    let text = std::str::from_utf8(bytes).ok();
    let mut v = json!({ "id": format!("B_{oid}"), "oid": oid, "byteSize": bytes.len(), "isBinary": text.is_none() });
    if with_text {
        v["text"] = json!(text);
        if is_capability {
            s.counters.capability_texts.fetch_add(1, Ordering::SeqCst);
        }
    }
    v
}

fn repo_node(s: &Shared, base: &str, r: &FixtureRepo, with_text: bool) -> Value {
    let root = r.root();
    json!({
        "name": r.name,
        "url": format!("{base}/{}/{}", s.org, r.name),
        "description": r.description,
        "pushedAt": r.pushed_at.map(rfc3339),
        "isArchived": r.archived,
        "licenseInfo": r.license.as_ref().map(|l| json!({ "spdxId": l })),
        "repositoryTopics": { "nodes": r.topics.iter().map(|t| json!({ "topic": { "name": t } })).collect::<Vec<_>>() },
        "root": if root.is_empty() { Value::Null } else {
            json!({ "entries": root.iter().map(|(n, d)| json!({ "name": n, "type": if *d { "tree" } else { "blob" } })).collect::<Vec<_>>() })
        },
        "capability": r.files.get("CAPABILITY.toml").map(|b| blob_json(s, b, with_text, true)),
    })
}

async fn graphql(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = gate(&s, &headers) {
        return r;
    }
    s.counters.graphql.fetch_add(1, Ordering::SeqCst);
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "Problems parsing JSON");
    };
    if !headers.contains_key("authorization") {
        // github.com refuses GraphQL without a token, whatever the query.
        return error(
            StatusCode::UNAUTHORIZED,
            "This endpoint requires you to be authenticated.",
        );
    }
    let query = req["query"].as_str().unwrap_or_default();
    let vars = &req["variables"];
    let base = "https://github.example";
    if query.contains("repositories(") {
        if vars["org"] != json!(s.org) {
            return axum::Json(json!({ "data": { "organization": null }, "errors": [{ "type": "NOT_FOUND", "message": format!("Could not resolve to an Organization with the login of '{}'.", vars["org"].as_str().unwrap_or_default()) }] })).into_response();
        }
        let start: usize = vars["after"]
            .as_str()
            .and_then(|c| c.strip_prefix("cursor:"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let with_text = vars["text"] == true;
        let page: Vec<Value> = s
            .repos
            .iter()
            .skip(start)
            .take(100)
            .map(|r| repo_node(&s, base, r, with_text))
            .collect();
        let end = (start + page.len()).min(s.repos.len());
        return axum::Json(json!({ "data": { "organization": { "repositories": {
            "totalCount": s.repos.len(),
            "pageInfo": { "hasNextPage": end < s.repos.len(), "endCursor": format!("cursor:{end}") },
            "nodes": page,
        } } } }))
        .into_response();
    }
    if query.contains("nodes(ids:") {
        let ids: Vec<&str> = vars["ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let nodes: Vec<Value> = ids
            .iter()
            .map(|id| {
                s.repos
                    .iter()
                    .filter_map(|r| r.files.get("CAPABILITY.toml"))
                    .find(|b| format!("B_{}", FixtureRepo::oid(b)) == *id)
                    .map(|b| blob_json(&s, b, true, true))
                    .unwrap_or(Value::Null)
            })
            .collect();
        return axum::Json(json!({ "data": { "nodes": nodes } })).into_response();
    }
    if query.contains("repository(owner:") {
        let Some(r) = s.repos.iter().find(|r| vars["name"] == json!(r.name)) else {
            return axum::Json(json!({ "data": { "repository": null } })).into_response();
        };
        let folder = |dir: &str| {
            let entries: Vec<Value> = r
                .files
                .iter()
                .filter_map(|(p, b)| {
                    let name = p.strip_prefix(&format!("{dir}/"))?;
                    (!name.contains('/')).then(|| json!({ "name": name, "type": "blob", "mode": 33188, "object": blob_json(&s, b, true, false) }))
                })
                .collect();
            if entries.is_empty() {
                Value::Null
            } else {
                json!({ "entries": entries })
            }
        };
        return axum::Json(json!({ "data": { "repository": { "vectors": folder("vectors"), "programs": folder("programs") } } })).into_response();
    }
    axum::Json(json!({ "errors": [{ "message": "the fixture does not know this query" }] }))
        .into_response()
}

fn find<'a>(s: &'a Shared, org: &str, repo: &str) -> Option<&'a FixtureRepo> {
    (org == s.org)
        .then(|| s.repos.iter().find(|r| r.name == repo))
        .flatten()
}

async fn org_repos(
    State(s): State<Arc<Shared>>,
    UrlPath(org): UrlPath<String>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = gate(&s, &headers) {
        return r;
    }
    s.counters.rest.fetch_add(1, Ordering::SeqCst);
    if org != s.org {
        return error(StatusCode::NOT_FOUND, "Not Found");
    }
    let per: usize = q
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(30)
        .min(100);
    let page: usize = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let items: Vec<Value> = s
        .repos
        .iter()
        .skip((page - 1) * per)
        .take(per)
        .map(|r| {
            json!({
                "name": r.name,
                "html_url": format!("https://github.example/{}/{}", s.org, r.name),
                "description": r.description,
                "pushed_at": r.pushed_at.map(rfc3339),
                "archived": r.archived,
                "topics": r.topics,
                "license": r.license.as_ref().map(|l| json!({ "spdx_id": l })),
            })
        })
        .collect();
    axum::Json(Value::Array(items)).into_response()
}

async fn root_contents(
    State(s): State<Arc<Shared>>,
    UrlPath((org, repo)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = gate(&s, &headers) {
        return r;
    }
    s.counters.rest.fetch_add(1, Ordering::SeqCst);
    let Some(r) = find(&s, &org, &repo) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    if r.files.is_empty() {
        return error(StatusCode::NOT_FOUND, "This repository is empty.");
    }
    let entries: Vec<Value> = r
        .root()
        .iter()
        .map(|(n, d)| {
            let (sha, size) = match r.files.get(n) {
                Some(b) if !d => (FixtureRepo::oid(b), b.len()),
                _ => ("0".repeat(40), 0),
            };
            json!({ "name": n, "path": n, "type": if *d { "dir" } else { "file" }, "sha": sha, "size": size })
        })
        .collect();
    let body = Value::Array(entries).to_string();
    let etag = format!("\"{}\"", FixtureRepo::oid(body.as_bytes()));
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        s.counters.not_modified.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::NOT_MODIFIED, [("etag", etag)]).into_response();
    }
    (
        StatusCode::OK,
        [
            ("etag", etag),
            ("content-type", "application/json".to_owned()),
        ],
        body,
    )
        .into_response()
}

/// GitHub wraps its base64 at 60 characters; so does the fixture.
fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    let flat = base64::engine::general_purpose::STANDARD.encode(bytes);
    let lines: Vec<&str> = flat
        .as_bytes()
        .chunks(60)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    lines.join("\n")
}

async fn blob(
    State(s): State<Arc<Shared>>,
    UrlPath((org, repo, sha)): UrlPath<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = gate(&s, &headers) {
        return r;
    }
    s.counters.rest.fetch_add(1, Ordering::SeqCst);
    let Some(r) = find(&s, &org, &repo) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let Some((path, b)) = r.files.iter().find(|(_, b)| FixtureRepo::oid(b) == sha) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    if path == "CAPABILITY.toml" {
        s.counters.capability_texts.fetch_add(1, Ordering::SeqCst);
    }
    axum::Json(json!({ "sha": sha, "size": b.len(), "encoding": "base64", "content": base64(b) }))
        .into_response()
}

/// A write through the REST API: recorded as `(repo, what(body))`.
fn record_write(
    s: &Shared,
    headers: &HeaderMap,
    org: &str,
    repo: String,
    what: Value,
) -> Option<Response> {
    if let Some(r) = gate(s, headers) {
        return Some(r);
    }
    if find(s, org, &repo).is_none() {
        return Some(error(StatusCode::NOT_FOUND, "Not Found"));
    }
    s.writes.lock().unwrap().push((repo, what));
    None
}

async fn put_topics(
    State(s): State<Arc<Shared>>,
    UrlPath((org, repo)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    record_write(&s, &headers, &org, repo, json!({ "topics": v["names"] }))
        .unwrap_or_else(|| axum::Json(json!({ "names": v["names"] })).into_response())
}

async fn put_license(
    State(s): State<Arc<Shared>>,
    UrlPath((org, repo)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let what = json!({ "license": v["content"], "message": v["message"] });
    record_write(&s, &headers, &org, repo, what).unwrap_or_else(|| {
        (
            StatusCode::CREATED,
            axum::Json(json!({ "content": { "name": "LICENSE" } })),
        )
            .into_response()
    })
}

async fn license(
    State(s): State<Arc<Shared>>,
    UrlPath(spdx): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = gate(&s, &headers) {
        return r;
    }
    if spdx != "MIT" {
        return error(StatusCode::NOT_FOUND, "Not Found");
    }
    axum::Json(json!({ "spdx_id": "MIT", "body": "MIT License\n\nCopyright (c) [year] [fullname]\n\nPermission is hereby granted…\n" })).into_response()
}

/// The repositories [`plain_git_fleet`] makes, as folder names.
pub const FLEET: [&str; 6] = ["oracle1", "datum", "jetson", "broken", "notes", "empty.git"];

/// A plain-git fleet in `dir`: three agents (oracle1, datum reporting to it, jetson
/// idle for 120 days), one broken CAPABILITY.toml (line 3), one repository without
/// one, and an empty bare repository. Commit times are relative to `now`.
pub fn plain_git_fleet(dir: &Path, now: i64) {
    const DAY: i64 = 86_400;
    let repos: [(&str, Option<&str>, i64); 5] = [
        ("oracle1", Some("[agent]\nname = \"oracle1\"\nemoji = \"🔮\"\nrole = \"lighthouse\"\ntitle = \"Managing Director\"\n[capabilities]\narchitecture = { confidence = 0.95 }\ntesting = { confidence = 0.90 }\n"), 2),
        ("datum", Some("[agent]\nname = \"datum\"\nemoji = \"🔵\"\nrole = \"quartermaster\"\n[capabilities]\ntesting = { confidence = 0.97, stars = 5 }\n[[links]]\nto = \"oracle1\"\nkind = \"reports-to\"\n"), 10),
        ("jetson", Some("[agent]\nname = \"jetson\"\nemoji = \"🟢\"\nrole = \"edge\"\n[capabilities]\ncuda = { confidence = 0.8 }\n[[links]]\nto = \"oracle1\"\nkind = \"reports-to\"\n[[links]]\nto = \"datum\"\nkind = \"peer\"\n"), 120),
        ("broken", Some("[agent]\nname = \"broken\"\n[capabilities\n"), 1),
        ("notes", None, 3),
    ];
    for (name, cap, age_days) in repos {
        let mut files = vec![("README.md".to_owned(), format!("# {name}\n"))];
        if let Some(c) = cap {
            files.push(("CAPABILITY.toml".to_owned(), c.to_owned()));
        }
        commit_files(&dir.join(name), &files, now - age_days * DAY);
    }
    git2::Repository::init_bare(dir.join("empty.git")).unwrap();
}

/// A repository at `path` (created if need be) with one more commit holding `files`,
/// committed at `time` (Unix seconds).
pub fn commit_files(path: &Path, files: &[(String, String)], time: i64) {
    let repo = git2::Repository::open(path)
        .or_else(|_| git2::Repository::init(path))
        .unwrap();
    for (rel, text) in files {
        let full = path.join(rel);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }
    let mut index = repo.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::new(
        "fixture",
        "fixture@example.invalid",
        &git2::Time::new(time, 0),
    )
    .unwrap();
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, "fixture", &tree, &parents)
        .unwrap();
}
