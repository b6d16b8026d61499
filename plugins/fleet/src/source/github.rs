//! A GitHub organisation (or any GitHub-compatible API: Enterprise, a test server),
//! through octocrab.
//!
//! **With a token** one GraphQL query lists 100 repositories with everything the
//! commands need — pushedAt, archived, description, topics, license, the names at the
//! root, and `HEAD:CAPABILITY.toml`'s blob id — so a 1,000-repository organisation costs
//! 10 requests, not 1,001. Capability files are cached by blob id: the first listing
//! of an organisation asks for their text inline; later ones ask only for ids and
//! fetch the text of the changed blobs, 100 to a query, a few queries at a time.
//!
//! **Without a token** GitHub refuses GraphQL, so the REST API is used: a page of
//! repositories per request, then each repository's root listing (answered from its
//! ETag with `304 Not Modified`, which GitHub does not count against the limit) and
//! the capability blob when its id is new. At 60 requests an hour that covers a small
//! organisation; a larger one comes back partial, with the time to retry.
//!
//! Both paths honour GitHub's limits: a secondary limit (`retry-after`) is waited out
//! when it is short and stops the scan when it is long; a spent primary limit
//! (`x-ratelimit-remaining: 0`) stops the scan. A stopped scan is not an error: the
//! listing says how many repositories are missing and when the limit resets.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use octocrab::Octocrab;
use serde_json::{json, Value};

use super::{Blob, Listing, Repo, Source, MAX_CAPABILITY_BYTES};
use crate::error::FleetError;
use crate::source::git::RootFacts;

pub const DEFAULT_API: &str = "https://api.github.com";
/// No answer body larger than this is read (a page of 100 repositories with their
/// capability files inline stays far below it).
const MAX_BODY: usize = 64 * 1024 * 1024;
/// The longest `retry-after` waited out before the scan stops and says when to retry.
const MAX_WAIT: Duration = Duration::from_secs(120);
/// How many times one request is retried (secondary limits, 5xx) before giving up.
const MAX_RETRIES: u32 = 4;
/// Blob queries in flight at once: GitHub asks integrators not to hammer it.
const CONCURRENCY: usize = 4;
/// Page size: GitHub's maximum for both APIs.
const PAGE: usize = 100;
/// A safety bound on pages (100,000 repositories).
const MAX_PAGES: usize = 1_000;

const PAGE_QUERY: &str = r#"query($org: String!, $after: String, $text: Boolean!) {
  organization(login: $org) {
    repositories(first: 100, after: $after, orderBy: {field: NAME, direction: ASC}) {
      totalCount
      pageInfo { hasNextPage endCursor }
      nodes {
        name url description pushedAt isArchived
        licenseInfo { spdxId }
        repositoryTopics(first: 20) { nodes { topic { name } } }
        root: object(expression: "HEAD:") { ... on Tree { entries { name type } } }
        capability: object(expression: "HEAD:CAPABILITY.toml") {
          ... on Blob { id oid byteSize isBinary text @include(if: $text) }
        }
      }
    }
  }
}"#;

const BLOBS_QUERY: &str = r#"query($ids: [ID!]!) {
  nodes(ids: $ids) { ... on Blob { id oid byteSize isBinary text } }
}"#;

const FLUX_QUERY: &str = r#"query($owner: String!, $name: String!) {
  repository(owner: $owner, name: $name) {
    vectors: object(expression: "HEAD:vectors") { ... on Tree { entries { name type mode object { ... on Blob { byteSize isBinary text } } } } }
    programs: object(expression: "HEAD:programs") { ... on Tree { entries { name type mode object { ... on Blob { byteSize isBinary text } } } } }
  }
}"#;

const FILE_QUERY: &str = r#"query($owner: String!, $name: String!, $expression: String!) {
  repository(owner: $owner, name: $name) {
    object(expression: $expression) { ... on Blob { byteSize isBinary text } }
  }
}"#;

/// Capability texts by blob id, carried between listings (the plugin keeps it in its
/// key-value store).
pub type BlobCache = BTreeMap<String, String>;

pub struct GitHub {
    pub org: String,
    pub api_url: String,
    token: Option<String>,
    pub cache: BlobCache,
    /// REST root listings' ETags and what they said, by repository.
    pub etags: BTreeMap<String, (String, Value)>,
}

/// Why a request stopped the scan instead of answering.
enum Stop {
    /// A rate limit: the message says how long.
    Limited(String),
    /// 404: for a repository's contents, an empty repository.
    NotFound(FleetError),
    Fatal(FleetError),
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl GitHub {
    pub fn new(org: &str, api_url: &str, token: Option<String>) -> Result<GitHub, FleetError> {
        if org.is_empty()
            || org.len() > 39
            || !org.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(FleetError::invalid(
                format!(
                    "`{}` is not a GitHub organisation name",
                    capability::shown(org)
                ),
                "organisation names are letters, digits and '-', at most 39 characters",
            ));
        }
        Ok(GitHub {
            org: org.to_owned(),
            api_url: api_url.trim_end_matches('/').to_owned(),
            token,
            cache: BlobCache::new(),
            etags: BTreeMap::new(),
        })
    }

    pub fn authenticated(&self) -> bool {
        self.token.is_some()
    }

    fn client(&self) -> Result<(Octocrab, String), FleetError> {
        let bad = |reason: String| {
            FleetError::invalid(
                format!("`{}` is not an API URL: {reason}", self.api_url),
                "pass --api-url https://HOST/api/v3 (GitHub Enterprise) or leave it out for github.com",
            )
        };
        let uri: http::Uri = self.api_url.parse().map_err(|e| bad(format!("{e}")))?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(bad("it needs a scheme and a host".into()));
        };
        if scheme != "https" && scheme != "http" {
            return Err(bad("only http and https are spoken".into()));
        }
        // octocrab prefixes a base path to every request, but GitHub Enterprise serves
        // REST under /api/v3 and GraphQL under /api/graphql: give it the bare host and
        // build the paths here.
        let origin = format!("{scheme}://{authority}");
        let prefix = uri.path().trim_end_matches('/').to_owned();
        let mut builder = Octocrab::builder()
            .base_uri(origin.as_str())
            .map_err(|e| bad(e.to_string()))?
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(60)));
        if let Some(token) = &self.token {
            builder = builder.personal_token(token.clone());
        }
        let client = builder.build().map_err(|e| {
            FleetError::failed(
                format!("cannot set up the HTTP client: {e}"),
                "this machine may lack CA certificates (Debian: apt install ca-certificates)",
            )
        })?;
        Ok((client, prefix))
    }

    fn graphql_path(prefix: &str) -> String {
        match prefix.strip_suffix("/v3") {
            Some(api) => format!("{api}/graphql"),
            None => format!("{prefix}/graphql"),
        }
    }

    fn what(&self) -> String {
        format!("the GitHub API at {}", self.api_url)
    }

    /// Send one request, waiting out short secondary limits and retrying server
    /// errors; a long or primary limit is a [`Stop::Limited`].
    async fn send(
        &self,
        client: &Octocrab,
        method: Method,
        path: &str,
        body: Option<&Value>,
        etag: Option<&str>,
        requests: &mut u64,
    ) -> Result<Answer, Stop> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut builder = http::Request::builder()
                .method(method.clone())
                .uri(path)
                .header(http::header::ACCEPT, "application/vnd.github+json")
                .header(http::header::USER_AGENT, "datum-fleet");
            if let Some(tag) = etag {
                builder = builder.header(http::header::IF_NONE_MATCH, tag);
            }
            let request = client.build_request(builder, body).map_err(|e| {
                Stop::Fatal(FleetError::failed(
                    format!("cannot build a request: {e}"),
                    "report this as a datum bug",
                ))
            })?;
            *requests += 1;
            let response = match client.execute(request).await {
                Ok(r) => r,
                Err(e) => {
                    return Err(Stop::Fatal(FleetError::Unreachable {
                        what: self.what(),
                        reason: one_line(&error_chain(&e)),
                        hint: "check the network and --api-url; datum never shows an unreachable fleet as an empty one".into(),
                    }))
                }
            };
            let (parts, body) = response.into_parts();
            let bytes = http_body_util::Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map_err(|e| {
                    Stop::Fatal(FleetError::Protocol {
                        what: self.what(),
                        reason: format!(
                            "the answer could not be read (over {MAX_BODY} bytes?): {e}"
                        ),
                    })
                })?
                .to_bytes();
            let status = parts.status;
            let headers = parts.headers;
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).map_err(|e| {
                    Stop::Fatal(FleetError::Protocol {
                        what: self.what(),
                        reason: format!("HTTP {status} with a body that is not JSON: {e}"),
                    })
                })?
            };
            if status.is_success() || status == StatusCode::NOT_MODIFIED {
                return Ok(Answer {
                    status,
                    headers,
                    body,
                });
            }
            let message = body["message"]
                .as_str()
                .map(capability::shown)
                .unwrap_or_default();
            if status == StatusCode::UNAUTHORIZED {
                return Err(Stop::Fatal(FleetError::Refused {
                    what: self.what(),
                    reason: format!("HTTP 401 {message}: the token was not accepted"),
                    hint: "store a valid token in the Keeper as `github-token` (a fine-grained token with read access to the organisation's repositories)".into(),
                }));
            }
            let limited =
                status == StatusCode::FORBIDDEN || status == StatusCode::TOO_MANY_REQUESTS;
            if limited {
                if let Some(wait) = retry_after(&headers) {
                    if wait <= MAX_WAIT && attempt <= MAX_RETRIES {
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    return Err(Stop::Limited(format!(
                        "GitHub's secondary rate limit asks to wait {} s; retry after that",
                        wait.as_secs()
                    )));
                }
                if header_u64(&headers, "x-ratelimit-remaining") == Some(0) {
                    return Err(Stop::Limited(primary_reset(&headers)));
                }
                return Err(Stop::Fatal(FleetError::Refused {
                    what: self.what(),
                    reason: format!("HTTP {status} {message}"),
                    hint: "the token may lack read access to this organisation".into(),
                }));
            }
            if status.is_server_error() && attempt <= MAX_RETRIES {
                tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
                continue;
            }
            if status == StatusCode::NOT_FOUND {
                return Err(Stop::NotFound(FleetError::Refused {
                    what: self.what(),
                    reason: format!("HTTP 404 for {path} {message}"),
                    hint: format!("check the organisation name `{}` and --api-url", self.org),
                }));
            }
            return Err(Stop::Fatal(FleetError::Refused {
                what: self.what(),
                reason: format!("HTTP {status} {message}"),
                hint: "try again later; if it persists, check --api-url".into(),
            }));
        }
    }

    async fn list_graphql(
        &mut self,
        client: &Octocrab,
        prefix: &str,
    ) -> Result<Listing, FleetError> {
        let mut listing = Listing::default();
        let path = Self::graphql_path(prefix);
        // With nothing cached, asking for the texts inline is cheapest; once some are
        // cached, ask only for ids and fetch what changed.
        let inline = self.cache.is_empty();
        let mut after: Option<String> = None;
        let mut node_ids: BTreeMap<String, String> = BTreeMap::new();
        for _ in 0..MAX_PAGES {
            let body = json!({
                "query": PAGE_QUERY,
                "variables": { "org": self.org, "after": after, "text": inline },
            });
            let sent = self
                .send(
                    client,
                    Method::POST,
                    &path,
                    Some(&body),
                    None,
                    &mut listing.requests,
                )
                .await;
            let Some(answer) = page_answer(sent, &mut listing)? else {
                break;
            };
            if let Some(errors) = answer.body["errors"].as_array().filter(|e| !e.is_empty()) {
                let first = &errors[0];
                let kind = first["type"].as_str().unwrap_or_default();
                let message = first["message"]
                    .as_str()
                    .map(capability::shown)
                    .unwrap_or_default();
                if kind == "RATE_LIMITED" {
                    listing.incomplete = Some(primary_reset(&answer.headers));
                    break;
                }
                if answer.body["data"]["organization"].is_null() {
                    return Err(FleetError::Refused {
                        what: self.what(),
                        reason: format!("{kind} {message}"),
                        hint: format!(
                            "check that the organisation `{}` exists and the token can read it",
                            self.org
                        ),
                    });
                }
                listing.warnings.push(format!("GitHub reported: {message}"));
            }
            let repos = &answer.body["data"]["organization"]["repositories"];
            if !repos.is_object() {
                return Err(FleetError::Protocol {
                    what: self.what(),
                    reason: "the answer has no data.organization.repositories".into(),
                });
            }
            listing.total = repos["totalCount"].as_u64().map(|n| n as usize);
            for node in repos["nodes"].as_array().into_iter().flatten().take(PAGE) {
                let Some(repo) = repo_from_graphql(node, &mut listing.warnings) else {
                    continue;
                };
                let mut repo = repo;
                if let Some(blob) = &mut repo.capability {
                    if let Some(text) = node["capability"]["text"].as_str() {
                        if blob.size <= MAX_CAPABILITY_BYTES {
                            blob.text = Some(text.to_owned());
                            listing.downloads += 1;
                        }
                    } else if let Some(text) = self.cache.get(&blob.oid) {
                        blob.text = Some(text.clone());
                    } else if blob.size <= MAX_CAPABILITY_BYTES
                        && node["capability"]["isBinary"] != true
                    {
                        if let Some(id) = node["capability"]["id"].as_str() {
                            node_ids.insert(blob.oid.clone(), id.to_owned());
                        }
                    }
                }
                listing.repos.push(repo);
            }
            let info = &repos["pageInfo"];
            match (info["hasNextPage"].as_bool(), info["endCursor"].as_str()) {
                (Some(true), Some(cursor)) => after = Some(cursor.to_owned()),
                _ => break,
            }
        }
        // The texts of new or changed capability files, 100 to a query.
        let wanted: Vec<(String, String)> = node_ids.into_iter().collect();
        let queries: Vec<Value> = wanted
            .chunks(PAGE)
            .map(|chunk| {
                let ids: Vec<&str> = chunk.iter().map(|(_, id)| id.as_str()).collect();
                json!({ "query": BLOBS_QUERY, "variables": { "ids": ids } })
            })
            .collect();
        let this = &*self;
        let path = path.as_str();
        let answers: Vec<(u64, Result<Answer, Stop>)> = stream::iter(queries.iter())
            .map(|q| async move {
                let mut n = 0;
                let a = this
                    .send(client, Method::POST, path, Some(q), None, &mut n)
                    .await;
                (n, a)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut texts: BTreeMap<String, String> = BTreeMap::new();
        for (n, answer) in answers {
            listing.requests += n;
            match answer {
                Ok(a) => {
                    for node in a.body["data"]["nodes"].as_array().into_iter().flatten() {
                        if let (Some(oid), Some(text)) =
                            (node["oid"].as_str(), node["text"].as_str())
                        {
                            if text.len() as u64 <= MAX_CAPABILITY_BYTES {
                                texts.insert(oid.to_owned(), text.to_owned());
                                listing.downloads += 1;
                            }
                        }
                    }
                }
                Err(Stop::Limited(why)) => listing.incomplete = Some(why),
                Err(Stop::Fatal(e) | Stop::NotFound(e)) => listing
                    .warnings
                    .push(format!("capability files not fetched: {e}")),
            }
        }
        for repo in &mut listing.repos {
            if let Some(blob) = &mut repo.capability {
                if blob.text.is_none() {
                    blob.text = texts.get(&blob.oid).cloned();
                }
            }
        }
        Ok(listing)
    }

    async fn list_rest(&mut self, client: &Octocrab, prefix: &str) -> Result<Listing, FleetError> {
        let mut listing = Listing::default();
        let mut page = 1;
        'pages: while page <= MAX_PAGES {
            let path = format!(
                "{prefix}/orgs/{}/repos?per_page={PAGE}&page={page}&sort=full_name",
                self.org
            );
            let sent = self
                .send(
                    client,
                    Method::GET,
                    &path,
                    None,
                    None,
                    &mut listing.requests,
                )
                .await;
            let Some(answer) = page_answer(sent, &mut listing)? else {
                break;
            };
            let Some(items) = answer.body.as_array() else {
                return Err(FleetError::Protocol {
                    what: self.what(),
                    reason: "the repository list is not a JSON array".into(),
                });
            };
            for item in items.iter().take(PAGE) {
                let Some(mut repo) = repo_from_rest(item, &mut listing.warnings) else {
                    continue;
                };
                // The root listing says which files are there and the capability
                // file's blob id; its ETag makes an unchanged repository cost nothing
                // against the limit.
                let root_path = format!("{prefix}/repos/{}/{}/contents/", self.org, repo.name);
                let cached = self.etags.get(&repo.name).cloned();
                let root = match self
                    .send(
                        client,
                        Method::GET,
                        &root_path,
                        None,
                        cached.as_ref().map(|(t, _)| t.as_str()),
                        &mut listing.requests,
                    )
                    .await
                {
                    Ok(a) if a.status == StatusCode::NOT_MODIFIED => {
                        cached.map(|(_, v)| v).unwrap_or(Value::Null)
                    }
                    Ok(a) => {
                        if let Some(tag) = a
                            .headers
                            .get(http::header::ETAG)
                            .and_then(|v| v.to_str().ok())
                        {
                            self.etags
                                .insert(repo.name.clone(), (tag.to_owned(), a.body.clone()));
                        }
                        a.body
                    }
                    // An empty repository has no contents: 404.
                    Err(Stop::NotFound(_)) => Value::Null,
                    Err(Stop::Limited(why)) => {
                        listing.incomplete = Some(why);
                        break 'pages;
                    }
                    Err(Stop::Fatal(e)) => {
                        listing.incomplete = Some(e.to_string());
                        break 'pages;
                    }
                };
                apply_root(
                    &mut repo,
                    root.as_array().map(|a| {
                        a.iter()
                            .filter_map(|e| {
                                Some((
                                    e["name"].as_str()?,
                                    e["type"].as_str() == Some("dir"),
                                    e["sha"].as_str(),
                                    e["size"].as_u64(),
                                ))
                            })
                            .collect::<Vec<_>>()
                    }),
                );
                if let Some(blob) = &mut repo.capability {
                    if let Some(text) = self.cache.get(&blob.oid) {
                        blob.text = Some(text.clone());
                    } else if blob.size <= MAX_CAPABILITY_BYTES {
                        let blob_path = format!(
                            "{prefix}/repos/{}/{}/git/blobs/{}",
                            self.org, repo.name, blob.oid
                        );
                        match self
                            .send(
                                client,
                                Method::GET,
                                &blob_path,
                                None,
                                None,
                                &mut listing.requests,
                            )
                            .await
                        {
                            Ok(a) => {
                                blob.text = decode_blob(&a.body);
                                if blob.text.is_some() {
                                    listing.downloads += 1;
                                }
                            }
                            Err(Stop::Limited(why)) => {
                                listing.incomplete = Some(why);
                                listing.repos.push(repo);
                                break 'pages;
                            }
                            Err(Stop::Fatal(e) | Stop::NotFound(e)) => listing
                                .warnings
                                .push(format!("{}: capability file not fetched: {e}", repo.name)),
                        }
                    }
                }
                listing.repos.push(repo);
            }
            if items.len() < PAGE {
                break;
            }
            page += 1;
        }
        if listing.incomplete.is_none() {
            listing.total = Some(listing.repos.len());
        }
        Ok(listing)
    }

    /// Remember the texts of this listing's capability files (and only those: the
    /// cache never outgrows the organisation).
    pub fn remember(&mut self, listing: &Listing) {
        let mut cache = BlobCache::new();
        for repo in &listing.repos {
            if let Some(Blob {
                oid,
                text: Some(text),
                ..
            }) = &repo.capability
            {
                cache.insert(oid.clone(), text.clone());
            }
        }
        // A partial listing keeps what it did not reach.
        if listing.incomplete.is_some() {
            for (k, v) in std::mem::take(&mut self.cache) {
                cache.entry(k).or_insert(v);
            }
        }
        self.cache = cache;
        let names: std::collections::BTreeSet<&str> =
            listing.repos.iter().map(|r| r.name.as_str()).collect();
        if listing.incomplete.is_none() {
            self.etags.retain(|k, _| names.contains(k.as_str()));
        }
    }
}

impl GitHub {
    /// Make `scan`'s changes (topics, LICENSE files) through the REST API; one result
    /// a change, in order. Needs a token with write access.
    pub fn apply(
        &self,
        changes: &[crate::scan::Change],
        year: &str,
    ) -> Result<Vec<Result<(), String>>, FleetError> {
        use crate::scan::Change;
        if !self.authenticated() {
            return Err(FleetError::invalid(
                "changing repositories needs a GitHub token, and no Keeper is configured",
                "register this workshop with a Keeper holding `github-token` (`datum boot --keeper URL`)",
            ));
        }
        let runtime = runtime()?;
        runtime.block_on(async {
            let (client, prefix) = self.client()?;
            let mut requests = 0;
            let mut licenses: BTreeMap<String, Result<String, String>> = BTreeMap::new();
            let mut out = Vec::new();
            for change in changes {
                let result = match change {
                    Change::Topics { repo, topics, .. } => {
                        let path = format!("{prefix}/repos/{}/{repo}/topics", self.org);
                        self.send(&client, Method::PUT, &path, Some(&json!({ "names": topics })), None, &mut requests)
                            .await
                            .map(drop)
                            .map_err(stop_message)
                    }
                    Change::License { repo, spdx } => {
                        if !licenses.contains_key(spdx) {
                            let path = format!("{prefix}/licenses/{spdx}");
                            let body = self
                                .send(&client, Method::GET, &path, None, None, &mut requests)
                                .await
                                .map_err(stop_message)
                                .and_then(|a| a.body["body"].as_str().map(str::to_owned).ok_or_else(|| format!("GitHub has no text for the licence {spdx}")));
                            licenses.insert(spdx.clone(), body);
                        }
                        match licenses.get(spdx).cloned().unwrap_or_else(|| Err("no licence text".into())) {
                            Err(e) => Err(e),
                            Ok(text) => {
                                let text = text.replace("[year]", year).replace("[fullname]", &self.org);
                                let path = format!("{prefix}/repos/{}/{repo}/contents/LICENSE", self.org);
                                let body = json!({
                                    "message": format!("Add the {spdx} licence (datum fleet scan --apply-license)"),
                                    "content": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, text.as_bytes()),
                                });
                                self.send(&client, Method::PUT, &path, Some(&body), None, &mut requests)
                                    .await
                                    .map(drop)
                                    .map_err(stop_message)
                            }
                        }
                    }
                };
                out.push(result);
            }
            Ok(out)
        })
    }
}

fn stop_message(stop: Stop) -> String {
    match stop {
        Stop::Limited(why) => why,
        Stop::Fatal(e) | Stop::NotFound(e) => e.to_string(),
    }
}

impl GitHub {
    /// One GraphQL query about one repository (`what` names it in the error): the
    /// answer's `data.repository`. GraphQL needs a token, so without one this is an
    /// error naming the Keeper key.
    fn repository_query(
        &mut self,
        repo: &Repo,
        what: &str,
        query: &str,
        mut variables: Value,
    ) -> Result<Value, FleetError> {
        if !self.authenticated() {
            return Err(FleetError::invalid(
                format!(
                    "reading {}'s {what} needs GitHub's GraphQL API, which needs a token",
                    repo.name
                ),
                "register this workshop with a Keeper holding `github-token`",
            ));
        }
        variables["owner"] = json!(self.org);
        variables["name"] = json!(repo.name);
        let runtime = runtime()?;
        runtime.block_on(async {
            let (client, prefix) = self.client()?;
            let body = json!({ "query": query, "variables": variables });
            let mut n = 0;
            let answer = self
                .send(
                    &client,
                    Method::POST,
                    &Self::graphql_path(&prefix),
                    Some(&body),
                    None,
                    &mut n,
                )
                .await
                .map_err(|s| match s {
                    Stop::Limited(why) => FleetError::failed(why, "retry after the limit resets"),
                    Stop::Fatal(e) | Stop::NotFound(e) => e,
                })?;
            Ok(answer.body["data"]["repository"].clone())
        })
    }
}

impl Source for GitHub {
    fn flux_files(&mut self, repo: &Repo) -> Result<Vec<(String, String)>, FleetError> {
        let repository = self.repository_query(repo, "FLUX files", FLUX_QUERY, json!({}))?;
        let mut out = Vec::new();
        for folder in ["vectors", "programs"] {
            let entries = repository[folder]["entries"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for e in entries.iter().take(10_000) {
                let Some(name) = e["name"].as_str() else {
                    continue;
                };
                let regular = e["type"] == "blob"
                    && e["mode"].as_u64().is_none_or(|m| m & 0o170000 == 0o100000);
                if out.len() >= super::MAX_FLUX_FILES
                    || !regular
                    || !super::is_flux_file(folder, name)
                    || !plausible_name(name)
                {
                    continue;
                }
                if let Some(text) = e["object"]["text"]
                    .as_str()
                    .filter(|t| t.len() as u64 <= MAX_CAPABILITY_BYTES)
                {
                    out.push((format!("{folder}/{name}"), text.to_owned()));
                }
            }
        }
        Ok(out)
    }

    fn root_file(&mut self, repo: &Repo, name: &str) -> Result<Option<String>, FleetError> {
        let repository = self.repository_query(
            repo,
            name,
            FILE_QUERY,
            json!({ "expression": format!("HEAD:{name}") }),
        )?;
        let object = &repository["object"];
        if object["isBinary"] == true {
            return Ok(None);
        }
        Ok(object["text"]
            .as_str()
            .filter(|t| t.len() as u64 <= MAX_CAPABILITY_BYTES)
            .map(str::to_owned))
    }

    fn label(&self) -> String {
        if self.api_url == DEFAULT_API {
            format!("github:{}", self.org)
        } else {
            format!("github:{} at {}", self.org, self.api_url)
        }
    }

    fn list(&mut self) -> Result<Listing, FleetError> {
        let runtime = runtime()?;
        runtime.block_on(async {
            let (client, prefix) = self.client()?;
            let mut listing = if self.authenticated() {
                self.list_graphql(&client, &prefix).await?
            } else {
                self.list_rest(&client, &prefix).await?
            };
            if let (Some(why), Some(total)) = (&listing.incomplete, listing.total) {
                let missing = total.saturating_sub(listing.repos.len());
                listing.warnings.push(format!(
                    "the scan stopped after {} of {total} repositories ({missing} missing): {why}",
                    listing.repos.len()
                ));
            } else if let Some(why) = &listing.incomplete {
                listing.warnings.push(format!(
                    "the scan stopped after {} repositories (more may exist): {why}",
                    listing.repos.len()
                ));
            }
            Ok(listing)
        })
    }
}

/// A page's answer, or `None` when a limit (or, after the first page, an error) ends
/// the listing early — recorded in `listing.incomplete`. An error before anything was
/// listed is the command's error.
fn page_answer(
    sent: Result<Answer, Stop>,
    listing: &mut Listing,
) -> Result<Option<Answer>, FleetError> {
    match sent {
        Ok(a) => Ok(Some(a)),
        Err(Stop::Limited(why)) => {
            listing.incomplete = Some(why);
            Ok(None)
        }
        Err(Stop::Fatal(e) | Stop::NotFound(e)) if listing.repos.is_empty() => Err(e),
        Err(Stop::Fatal(e) | Stop::NotFound(e)) => {
            listing.incomplete = Some(e.to_string());
            Ok(None)
        }
    }
}

/// One async runtime a call: the plugin's entry points are synchronous.
fn runtime() -> Result<tokio::runtime::Runtime, FleetError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            FleetError::failed(
                format!("cannot start the async runtime: {e}"),
                "the machine may be out of threads or memory",
            )
        })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn one_line(s: &str) -> String {
    capability::shown(&s.replace('\n', " "))
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    header_u64(headers, "retry-after").map(Duration::from_secs)
}

/// "the primary rate limit is spent; it resets at … (in N min)".
fn primary_reset(headers: &HeaderMap) -> String {
    match header_u64(headers, "x-ratelimit-reset") {
        Some(reset) => {
            let at = std::time::UNIX_EPOCH + Duration::from_secs(reset);
            let wait = at
                .duration_since(std::time::SystemTime::now())
                .map(|d| d.as_secs().div_ceil(60))
                .unwrap_or(0);
            format!(
                "GitHub's rate limit is spent; it resets at {} (in {wait} min): run the command again then",
                humantime::format_rfc3339_seconds(at)
            )
        }
        None => "GitHub's rate limit is spent; run the command again later".into(),
    }
}

fn rfc3339(v: &Value) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(v.as_str()?).ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs() as i64)
}

fn text(v: &Value) -> Option<String> {
    v.as_str()
        .filter(|s| !s.is_empty())
        .map(|s| s.chars().take(1024).collect())
}

/// A repository name GitHub could have given: anything else is skipped with a warning
/// (names become REST paths and cache keys).
fn plausible_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn repo_from_graphql(node: &Value, warnings: &mut Vec<String>) -> Option<Repo> {
    let name = node["name"].as_str().unwrap_or_default();
    if !plausible_name(name) {
        warnings.push(format!(
            "skipped a repository named `{}`: not a GitHub repository name",
            capability::shown(name)
        ));
        return None;
    }
    let mut repo = Repo {
        name: name.to_owned(),
        url: node["url"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .take(1024)
            .collect(),
        description: text(&node["description"]),
        pushed_at: rfc3339(&node["pushedAt"]),
        archived: node["isArchived"] == true,
        topics: node["repositoryTopics"]["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| text(&t["topic"]["name"]))
            .take(20)
            .collect(),
        license: text(&node["licenseInfo"]["spdxId"]),
        ..Repo::default()
    };
    apply_root(
        &mut repo,
        node["root"]["entries"].as_array().map(|entries| {
            entries
                .iter()
                .filter_map(|e| {
                    Some((
                        e["name"].as_str()?,
                        e["type"].as_str() == Some("tree"),
                        None,
                        None,
                    ))
                })
                .collect()
        }),
    );
    let cap = &node["capability"];
    if let (Some(oid), Some(size)) = (cap["oid"].as_str(), cap["byteSize"].as_u64()) {
        repo.capability = Some(Blob {
            oid: oid.to_owned(),
            text: None,
            size,
        });
    }
    Some(repo)
}

fn repo_from_rest(item: &Value, warnings: &mut Vec<String>) -> Option<Repo> {
    let name = item["name"].as_str().unwrap_or_default();
    if !plausible_name(name) {
        warnings.push(format!(
            "skipped a repository named `{}`: not a GitHub repository name",
            capability::shown(name)
        ));
        return None;
    }
    Some(Repo {
        name: name.to_owned(),
        url: item["html_url"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .take(1024)
            .collect(),
        description: text(&item["description"]),
        pushed_at: rfc3339(&item["pushed_at"]),
        archived: item["archived"] == true,
        topics: item["topics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(text)
            .take(20)
            .collect(),
        license: text(&item["license"]["spdx_id"]),
        ..Repo::default()
    })
}

/// Root entries `(name, is_dir, blob id, size)`: README/LICENSE/FLUX facts by the rules
/// the git source uses, and (REST) the capability file's blob id.
/// A root entry: name, whether it is a folder, blob id and size (REST only).
type RootEntry<'a> = (&'a str, bool, Option<&'a str>, Option<u64>);

fn apply_root(repo: &mut Repo, entries: Option<Vec<RootEntry<'_>>>) {
    let Some(entries) = entries else { return };
    let facts = RootFacts::from_entries(entries.iter().map(|(n, d, _, _)| (*n, *d)));
    repo.has_readme = facts.has_readme;
    repo.has_flux = facts.has_flux;
    if repo.license.is_none() && facts.has_license {
        repo.license = Some("other".into());
    }
    if let Some((_, false, Some(oid), Some(size))) = entries
        .iter()
        .find(|(n, _, _, _)| *n == capability::FILE_NAME)
    {
        repo.capability = Some(Blob {
            oid: (*oid).to_owned(),
            text: None,
            size: *size,
        });
    }
}

/// A REST blob (`{content, encoding: "base64"}`) as text; `None` if it is not UTF-8.
fn decode_blob(v: &Value) -> Option<String> {
    let content = v["content"].as_str()?;
    if v["encoding"].as_str() != Some("base64") {
        return None;
    }
    use base64::Engine as _;
    let clean: String = content.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(clean)
        .ok()?;
    if bytes.len() as u64 > MAX_CAPABILITY_BYTES {
        return None;
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enterprise_graphql_lives_beside_v3() {
        assert_eq!(GitHub::graphql_path("/api/v3"), "/api/graphql");
        assert_eq!(GitHub::graphql_path(""), "/graphql");
    }

    #[test]
    fn hostile_names_are_not_repositories() {
        for bad in ["", "..", "a/b", "a\u{1b}[2J", "x y"] {
            assert!(!plausible_name(bad), "{bad:?}");
        }
        assert!(plausible_name("flux-vm.rs_2"));
    }
}
