//! One HTTP exchange with a registry, with authentication and bounded retries.
//!
//! Authentication follows the distribution spec: a request goes out with whatever
//! `Authorization` this client already holds for the repository (or registry); a `401` carries a
//! `WWW-Authenticate` challenge, which is answered once — Basic with the configured credentials,
//! or Bearer by fetching a token from the challenge's realm for the challenge's scope plus the
//! scope the request needs — and the request is sent again. Request bodies are therefore
//! replayable: a blob body is reopened from the store for every send, never buffered. The one
//! exception is a [`Body::Stream`] (a blob uploaded while it is made), which goes once, after a
//! request of the same scope has answered any challenge.
//!
//! Retries: [`Transport::retry`] runs a whole operation again after a transient failure
//! (connection refused or reset, timeouts, `408`/`429`/`5xx`, a body cut short), sleeping
//! 100 ms, 200 ms, 400 ms … (capped at 2 s) between attempts, at most `Options::retries` times.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use strata_digest::Digest;
use strata_store::Store;
use ureq::http;

use super::Error;
use crate::auth::{self, Challenge, Credential};
use crate::tls::Trust;

/// A request body.
pub(crate) enum Body<'a> {
    /// No body.
    Empty,
    /// Small bytes (a manifest).
    Bytes(&'a [u8]),
    /// A blob streamed from the store; reopened for every send.
    Blob {
        store: &'a dyn Store,
        digest: Digest,
        size: u64,
    },
    /// Bytes as another thread makes them, of a length known only at their end: sent once, in
    /// chunked transfer encoding (a second send, after a challenge, fails).
    Stream(&'a Mutex<Option<std::io::PipeReader>>),
}

/// One request, described so that it can be sent again.
pub(crate) struct Request<'a> {
    pub method: &'static str,
    pub registry: &'a str,
    /// The repository whose scope the request needs (`None` for `/v2/` itself).
    pub repository: Option<&'a str>,
    /// Full URL (from [`Transport::url`] or a `Location` header).
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body<'a>,
    /// Another repository the token must allow pulling from (cross-repository mounts).
    pub also_pull: Option<&'a str>,
    /// What is being done, for error messages (`GET manifest`, `upload of blob …`).
    pub op: String,
}

impl<'a> Request<'a> {
    /// A request without headers or body; `op` names it in errors.
    pub fn new(
        method: &'static str,
        registry: &'a str,
        repository: Option<&'a str>,
        url: String,
        op: String,
    ) -> Request<'a> {
        Request {
            method,
            registry,
            repository,
            url,
            headers: Vec::new(),
            body: Body::Empty,
            also_pull: None,
            op,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Request<'a> {
        self.headers.push((name, value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: Body<'a>) -> Request<'a> {
        self.body = body;
        self
    }

    fn write(&self) -> bool {
        !matches!(self.method, "GET" | "HEAD")
    }
}

pub(crate) type Response = http::Response<ureq::Body>;

/// The HTTP side of a client.
pub(crate) struct Transport {
    /// One agent (connection pool, TLS trust) per registry, made on first use: each registry
    /// may have its own CAs and client certificate ([`crate::tls`]).
    agents: Mutex<HashMap<String, ureq::Agent>>,
    pub(crate) trust: Trust,
    insecure: Vec<String>,
    docker_config: Option<PathBuf>,
    retries: u32,
    /// Credentials to use instead of the config's (login checks them before saving).
    pub(crate) credential_override: Option<Credential>,
    /// `Authorization` values by `registry` (Basic) or `registry/repository` (Bearer).
    /// A cache of tokens; nothing else is shared between calls.
    auth: Mutex<HashMap<String, String>>,
}

const LOOPBACK: [&str; 3] = ["127.0.0.1", "localhost", "::1"];

impl Transport {
    pub(crate) fn new(
        insecure: Vec<String>,
        docker_config: Option<PathBuf>,
        retries: u32,
        certs_dirs: Vec<PathBuf>,
    ) -> Self {
        Transport {
            agents: Mutex::new(HashMap::new()),
            trust: Trust::new(certs_dirs),
            insecure,
            docker_config,
            retries,
            credential_override: None,
            auth: Mutex::new(HashMap::new()),
        }
    }

    /// The agent for requests to `registry` (and its token realm).
    fn agent(&self, registry: &str) -> Result<ureq::Agent, Error> {
        let mut agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(agent) = agents.get(registry) {
            return Ok(agent.clone());
        }
        let tls = self.trust.config(registry).map_err(|source| Error::Tls {
            registry: registry.to_string(),
            source,
        })?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(5)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(600)))
            .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .build()
            .new_agent();
        agents.insert(registry.to_string(), agent.clone());
        Ok(agent)
    }

    /// `http://` for loopback and `insecure` hosts, unless a certificate directory names the
    /// registry; `https://` otherwise; Docker Hub's API host.
    pub(crate) fn base(&self, registry: &str) -> String {
        let host = crate::reference::host_of(registry);
        let plain = (LOOPBACK.contains(&host)
            || host.starts_with("127.")
            || self.insecure.iter().any(|i| i == registry || i == host))
            && !self.trust.has_dir(registry);
        let api = if registry == crate::reference::DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            registry
        };
        format!("{}://{api}", if plain { "http" } else { "https" })
    }

    /// `base/v2/<repository>/<path>`.
    pub(crate) fn url(&self, registry: &str, repository: &str, path: &str) -> String {
        format!("{}/v2/{repository}/{path}", self.base(registry))
    }

    /// Runs `f` again after transient failures, at most `retries` more times.
    pub(crate) fn retry<T>(&self, mut f: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {
        let mut attempt = 0u32;
        loop {
            match f() {
                Err(e) if e.is_transient() && attempt < self.retries => {
                    let millis = 100u64.saturating_mul(1 << attempt.min(5)).min(2000);
                    std::thread::sleep(Duration::from_millis(millis));
                    attempt += 1;
                }
                Err(e) if attempt > 0 => {
                    return Err(Error::GaveUp {
                        attempts: attempt + 1,
                        source: Box::new(e),
                    });
                }
                other => return other,
            }
        }
    }

    fn cached_auth(&self, req: &Request) -> Option<String> {
        let cache = self.auth.lock().unwrap_or_else(|e| e.into_inner());
        req.repository
            .and_then(|r| cache.get(&format!("{}/{r}", req.registry)))
            .or_else(|| cache.get(req.registry))
            .cloned()
    }

    fn credential(&self, registry: &str) -> Result<Option<Credential>, Error> {
        if let Some(c) = &self.credential_override {
            return Ok(Some(c.clone()));
        }
        for path in auth::credential_files(self.docker_config.as_deref()) {
            let found = auth::credential(&path, registry).map_err(|source| Error::Credentials {
                registry: registry.to_string(),
                source,
            })?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Sends the request once (plus once more after answering an auth challenge).
    pub(crate) fn send(&self, req: &Request) -> Result<Response, Error> {
        let mut authorization = self.cached_auth(req);
        let mut answered = false;
        loop {
            let response = self.send_raw(req, authorization.as_deref())?;
            if response.status() != 401 {
                return Ok(response);
            }
            if answered {
                return Err(self.unauthorized(req, response, authorization.is_some()));
            }
            answered = true;
            let challenge = response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .and_then(auth::parse_challenge);
            let credential = self.credential(req.registry)?;
            let (key, value) = match challenge {
                Some(Challenge::Basic) => {
                    match credential.as_ref().and_then(|c| c.basic_header()) {
                        Some(header) => (req.registry.to_string(), header),
                        None => return Err(self.unauthorized(req, response, false)),
                    }
                }
                Some(Challenge::Bearer {
                    realm,
                    service,
                    scope,
                }) => {
                    let token = self.token(req, &realm, service.as_deref(), scope, credential)?;
                    let key = match req.repository {
                        Some(r) => format!("{}/{r}", req.registry),
                        None => req.registry.to_string(),
                    };
                    (key, format!("Bearer {token}"))
                }
                None => return Err(self.unauthorized(req, response, authorization.is_some())),
            };
            self.auth
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, value.clone());
            authorization = Some(value);
        }
    }

    fn unauthorized(&self, req: &Request, response: Response, sent: bool) -> Error {
        Error::Unauthorized {
            op: req.op.clone(),
            url: req.url.clone(),
            registry: req.registry.to_string(),
            detail: format!(
                "{}{}",
                if sent {
                    "the registry refused the credentials"
                } else {
                    "the registry wants credentials and none are configured"
                },
                error_detail(response)
            ),
        }
    }

    /// A `GET` of `url` on a server that is not a registry: no credentials, no token dance
    /// (foreign layers are served by other parties, who must not see registry secrets).
    /// The host's TLS settings ([`crate::tls`]) apply as for a registry of that name.
    pub(crate) fn get_plain(&self, url: &str, op: String) -> Result<Response, Error> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| Error::Transport {
                op: op.clone(),
                url: url.to_string(),
                source: Box::new(ureq::Error::Http(e.into())),
            })?;
        let host = uri.authority().map_or("", |a| a.as_str());
        self.send_raw(&Request::new("GET", host, None, url.to_string(), op), None)
    }

    fn send_raw(&self, req: &Request, authorization: Option<&str>) -> Result<Response, Error> {
        let transport = |source: ureq::Error| Error::Transport {
            op: req.op.clone(),
            url: req.url.clone(),
            source: Box::new(source),
        };
        let agent = self.agent(req.registry)?;
        let mut builder = http::Request::builder().method(req.method).uri(&req.url);
        for (name, value) in &req.headers {
            builder = builder.header(*name, value);
        }
        if let Some(a) = authorization {
            builder = builder.header("authorization", a);
        }
        let build = |b: http::request::Builder, len: u64| {
            b.header("content-length", len.to_string())
                .body(())
                .map_err(|e| transport(ureq::Error::Http(e)))
        };
        match &req.body {
            Body::Empty if req.write() => {
                let request = build(builder, 0)?;
                agent.run(request).map_err(transport)
            }
            Body::Empty => {
                let request = builder
                    .body(())
                    .map_err(|e| transport(ureq::Error::Http(e)))?;
                agent.run(request).map_err(transport)
            }
            Body::Bytes(bytes) => {
                let (parts, ()) = build(builder, bytes.len() as u64)?.into_parts();
                agent
                    .run(http::Request::from_parts(parts, *bytes))
                    .map_err(transport)
            }
            Body::Blob {
                store,
                digest,
                size,
            } => {
                let reader = store.open_blob(digest).map_err(|source| Error::Store {
                    context: format!("opening blob {digest} for upload"),
                    source,
                })?;
                // Never more than the declared size, so Content-Length holds.
                let mut reader = reader.take(*size);
                let (parts, ()) = build(builder, *size)?.into_parts();
                let body = ureq::SendBody::from_reader(&mut reader);
                agent
                    .run(http::Request::from_parts(parts, body))
                    .map_err(transport)
            }
            Body::Stream(stream) => {
                let mut reader = stream
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .ok_or_else(|| Error::Protocol {
                        what: req.op.clone(),
                        reason: "the registry asked again for a streamed body, which went once"
                            .into(),
                    })?;
                let request = builder
                    .body(())
                    .map_err(|e| transport(ureq::Error::Http(e)))?;
                let (parts, ()) = request.into_parts();
                let body = ureq::SendBody::from_reader(&mut reader);
                agent
                    .run(http::Request::from_parts(parts, body))
                    .map_err(transport)
            }
        }
    }

    fn token(
        &self,
        req: &Request,
        realm: &str,
        service: Option<&str>,
        challenge_scope: Option<String>,
        credential: Option<Credential>,
    ) -> Result<String, Error> {
        let protocol = |reason: String| Error::Protocol {
            what: format!("token for {} from {realm}", req.registry),
            reason,
        };
        if !(realm.starts_with("https://") || realm.starts_with("http://")) {
            return Err(protocol("the realm is not an http(s) URL".into()));
        }
        let mut scopes: Vec<String> = challenge_scope.into_iter().collect();
        if let Some(r) = req.repository {
            let actions = if req.write() { "pull,push" } else { "pull" };
            scopes.push(format!("repository:{r}:{actions}"));
        }
        if let Some(r) = req.also_pull {
            scopes.push(format!("repository:{r}:pull"));
        }
        scopes.sort();
        scopes.dedup();
        let mut query = Vec::new();
        if let Some(s) = service {
            query.push(format!("service={}", encode(s)));
        }
        for s in &scopes {
            query.push(format!("scope={}", encode(s)));
        }
        let transport = |source: ureq::Error| Error::Transport {
            op: format!("token request for {}", req.registry),
            url: realm.to_string(),
            source: Box::new(source),
        };
        let response = match &credential {
            Some(Credential::IdentityToken(refresh)) => {
                query.push("grant_type=refresh_token".into());
                query.push("client_id=strata".into());
                query.push(format!("refresh_token={}", encode(refresh)));
                let form = query.join("&");
                let request = http::Request::builder()
                    .method("POST")
                    .uri(realm)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("content-length", form.len().to_string())
                    .body(form)
                    .map_err(|e| transport(ureq::Error::Http(e)))?;
                self.agent(req.registry)?.run(request).map_err(transport)?
            }
            other => {
                let sep = if realm.contains('?') { '&' } else { '?' };
                let url = format!("{realm}{sep}{}", query.join("&"));
                let mut builder = http::Request::builder().method("GET").uri(&url);
                if let Some(basic) = other.as_ref().and_then(|c| c.basic_header()) {
                    builder = builder.header("authorization", basic);
                }
                let request = builder
                    .body(())
                    .map_err(|e| transport(ureq::Error::Http(e)))?;
                self.agent(req.registry)?.run(request).map_err(transport)?
            }
        };
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Err(Error::Unauthorized {
                op: req.op.clone(),
                url: realm.to_string(),
                registry: req.registry.to_string(),
                detail: format!(
                    "the token server refused the credentials{}",
                    error_detail(response)
                ),
            });
        }
        if status != 200 {
            return Err(Error::Status {
                op: format!("token request for {}", req.registry),
                url: realm.to_string(),
                status,
                detail: error_detail(response),
            });
        }
        let body = read_limited(response, 1 << 20, &format!("token from {realm}"))?;
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let token: Token = serde_json::from_slice(&body)
            .map_err(|e| protocol(format!("the response is not token JSON: {e}")))?;
        token
            .token
            .or(token.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| protocol("the response has no `token`".into()))
    }
}

/// Reads a small body whole, refusing more than `limit` bytes. A body cut short is
/// [`Error::Truncated`]-like transient ([`Error::Transport`]).
pub(crate) fn read_limited(response: Response, limit: u64, what: &str) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let mut reader = response.into_body().into_reader().take(limit + 1);
    reader
        .read_to_end(&mut out)
        .map_err(|source| Error::Transport {
            op: format!("reading {what}"),
            url: String::new(),
            source: Box::new(ureq::Error::Io(source)),
        })?;
    if out.len() as u64 > limit {
        return Err(Error::Protocol {
            what: what.to_string(),
            reason: format!("the response is larger than the {limit}-byte limit"),
        });
    }
    Ok(out)
}

/// The registry's error message (`{"errors":[{"code","message"}]}`), as `": CODE: message"`,
/// or the first line of a non-JSON body; empty if there is none.
/// The error for an unexpected `response` to `op` on `url`: its status and what the
/// registry said.
pub(crate) fn status_error(
    op: impl Into<String>,
    url: impl Into<String>,
    response: Response,
) -> Error {
    Error::Status {
        op: op.into(),
        url: url.into(),
        status: response.status().as_u16(),
        detail: error_detail(response),
    }
}

pub(crate) fn error_detail(response: Response) -> String {
    let Ok(body) = read_limited(response, 64 << 10, "error body") else {
        return String::new();
    };
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(&body) {
        let parts: Vec<String> = e
            .errors
            .iter()
            .map(|i| format!("{}: {}", i.code, i.message))
            .collect();
        if !parts.is_empty() {
            return format!(": {}", parts.join("; "));
        }
    }
    let text = String::from_utf8_lossy(&body);
    if text.contains("HTTP request to an HTTPS server") {
        return ": the registry speaks HTTPS; strata uses plain HTTP for loopback and \
                --insecure-registry hosts unless the registry has a certificate directory: put its \
                CA in /etc/containers/certs.d/HOST:PORT/ca.crt (or a directory named by \
                STRATA_CERTS_D)"
            .into();
    }
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        String::new()
    } else {
        format!(": {}", line.chars().take(200).collect::<String>())
    }
}

/// A response header as a string.
pub(crate) fn header<'r>(response: &'r Response, name: &str) -> Option<&'r str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_by_host() {
        let certs = tempfile::tempdir().unwrap();
        std::fs::create_dir(certs.path().join("127.0.0.1:5443")).unwrap();
        let t = Transport::new(
            vec!["reg.lan".into(), "other:5000".into()],
            None,
            0,
            vec![certs.path().to_path_buf()],
        );
        assert_eq!(t.base("127.0.0.1:5443"), "https://127.0.0.1:5443");
        assert_eq!(t.base("127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(t.base("localhost"), "http://localhost");
        assert_eq!(t.base("[::1]:5000"), "http://[::1]:5000");
        assert_eq!(t.base("reg.lan:443"), "http://reg.lan:443");
        assert_eq!(t.base("other:5000"), "http://other:5000");
        assert_eq!(t.base("other:6000"), "https://other:6000");
        assert_eq!(t.base("ghcr.io"), "https://ghcr.io");
        assert_eq!(t.base("docker.io"), "https://registry-1.docker.io");
    }

    #[test]
    fn encodes_query_values() {
        assert_eq!(
            encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
