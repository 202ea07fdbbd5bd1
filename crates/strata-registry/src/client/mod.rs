//! The registry client: [`Client::pull`], [`Client::push`], [`Client::resolve`],
//! [`Client::tags`].
//!
//! It speaks the distribution spec itself over a blocking HTTP client (`ureq` with rustls).
//! `oci-client` 0.18 can stream blobs too (`push_blob_stream`, `pull_blob_stream`), but it is
//! async (tokio + reqwest) while every caller here is synchronous, and what matters most —
//! hashing into the store's [`strata_store::Ingest`] while downloading, bounded retries that
//! start a blob over, the size bound from the descriptor, cross-repository mounts from
//! repositories we know, and error messages naming the blob and reference — would sit on top
//! of it anyway. The protocol is small: see `http.rs` for authentication and retries,
//! `pull.rs` and `push.rs` for the two transfers.

mod http;
mod pull;
mod push;
pub(crate) use push::retry_blob_race;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use strata_digest::Digest;
use strata_store::LayerRecord;

use crate::auth::{self, Credential};
use crate::manifest::{self, ManifestFormat, Platform};
use crate::reference::Reference;
use http::{Request, Transport};

pub use push::{PushOptions, Streamed};

/// What can go wrong talking to a registry. Every variant names what was being done and to
/// which reference, blob or URL.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection failed or broke (refused, reset, timed out, ...). Transient, unless the
    /// TLS certificate was refused.
    #[error("{op} ({url}) failed: {source}{}", if is_certificate_error(source) { CERTIFICATE_HINT } else { "" })]
    Transport {
        /// What was being done.
        op: String,
        /// The URL.
        url: String,
        /// The HTTP client's error.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The registry answered with an unexpected status. Transient for 408, 429 and 5xx.
    #[error("{op} ({url}): the registry answered {status}{detail}")]
    Status {
        /// What was being done.
        op: String,
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The registry's error message, if any (`: CODE: message`).
        detail: String,
    },
    /// Authentication failed or is missing.
    #[error("{op} ({url}): {detail}; run `strata login {registry}` or check the docker config")]
    Unauthorized {
        /// What was being done.
        op: String,
        /// The URL.
        url: String,
        /// The registry.
        registry: String,
        /// What the registry said.
        detail: String,
    },
    /// A manifest or blob does not exist in the registry.
    #[error("{what} not found in {reference}")]
    NotFound {
        /// The manifest or blob.
        what: String,
        /// Where it was looked for.
        reference: String,
    },
    /// A foreign layer the registry lacks could not be fetched from any of its `urls`.
    #[error(
        "foreign layer {digest} of {reference} is not in the registry and none of its URLs served it: {tried}"
    )]
    Foreign {
        /// The layer.
        digest: Digest,
        /// The image.
        reference: String,
        /// Each URL tried and why it failed.
        tried: String,
    },
    /// A blob body ended before its declared size. Transient.
    #[error("blob {digest} from {reference}: the body ended after {got} of {expected} bytes")]
    Truncated {
        /// The blob.
        digest: Digest,
        /// Where it came from.
        reference: String,
        /// Bytes received.
        got: u64,
        /// Bytes declared by the manifest.
        expected: u64,
    },
    /// A blob body was longer than its descriptor declares; nothing was stored.
    #[error(
        "blob {digest} from {reference}: the registry sent more than the {size} bytes the manifest declares; nothing was stored"
    )]
    Oversized {
        /// The blob.
        digest: Digest,
        /// Where it came from.
        reference: String,
        /// The declared size.
        size: u64,
    },
    /// Content did not hash to the digest that names it; nothing was stored.
    #[error(
        "{what} from {reference} does not match its digest: expected {expected}, got {actual}; nothing was stored"
    )]
    DigestMismatch {
        /// `blob …`, `manifest …`.
        what: String,
        /// Where it came from.
        reference: String,
        /// The digest it should have.
        expected: Digest,
        /// The digest it has.
        actual: Digest,
    },
    /// The local store failed.
    #[error("{context}: {source}")]
    Store {
        /// What was being done.
        context: String,
        /// The store's error.
        #[source]
        source: strata_store::Error,
    },
    /// Writing a downloaded blob into its store ingest transaction failed (disk full, ...).
    #[error("writing blob {digest} into a store ingest transaction failed: {source}")]
    IngestWrite {
        /// The blob.
        digest: Digest,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A manifest, index or config is unusable.
    #[error("{what} of {reference}: {source}")]
    Manifest {
        /// Which document.
        what: String,
        /// Whose.
        reference: String,
        /// What is wrong.
        #[source]
        source: manifest::Error,
    },
    /// An index has no manifest for the wanted platform.
    #[error("{reference} has no image for {platform}; it has: {available}")]
    NoPlatform {
        /// The reference pulled.
        reference: String,
        /// The platform wanted.
        platform: Platform,
        /// The platforms it has.
        available: String,
    },
    /// Credentials could not be read.
    #[error("credentials for {registry}: {source}")]
    Credentials {
        /// The registry.
        registry: String,
        /// Why.
        #[source]
        source: auth::Error,
    },
    /// The registry broke the protocol (missing header, bad JSON, ...).
    #[error("{what}: {reason}")]
    Protocol {
        /// What was being done.
        what: String,
        /// What was wrong.
        reason: String,
    },
    /// An operation kept failing transiently.
    #[error("{source} (gave up after {attempts} attempts)")]
    GaveUp {
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        #[source]
        source: Box<Error>,
    },
    /// The TLS trust settings of a registry cannot be used.
    #[error("TLS settings for {registry}: {source}")]
    Tls {
        /// The registry.
        registry: String,
        /// What is wrong.
        #[source]
        source: crate::tls::Error,
    },
    /// The reference cannot be used for this operation.
    #[error("{reference}: {reason}")]
    BadReference {
        /// The reference.
        reference: String,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// Whether trying again may help (connection trouble, 408/429/5xx, a body cut short).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport { source, .. } => {
                !matches!(
                    **source,
                    ureq::Error::BadUri(_) | ureq::Error::Http(_) | ureq::Error::HostNotFound
                ) && !is_certificate_error(source)
                    // A local blob that failed its digest check on the way out stays corrupt.
                    && !matches!(&**source, ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::InvalidData)
            }
            Error::Status { status, .. } => matches!(status, 408 | 429 | 500..=599),
            Error::Truncated { .. } => true,
            _ => false,
        }
    }

    /// Whether a manifest was refused for naming a blob the registry does not have (yet):
    /// `MANIFEST_BLOB_UNKNOWN`, or `DIGEST_INVALID` for a blob it cannot verify. Seen when
    /// another builder's upload of the same blob completes while ours was skipped; pushing the
    /// blobs again and retrying the manifest resolves it.
    pub fn is_blob_race(&self) -> bool {
        match self {
            Error::Status { status, detail, .. } => {
                *status == 400
                    && ["MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN", "DIGEST_INVALID"]
                        .iter()
                        .any(|code| detail.contains(code))
            }
            Error::GaveUp { source, .. } => source.is_blob_race(),
            _ => false,
        }
    }

    /// Whether the failure is a digest mismatch (possibly after retries).
    pub fn is_digest_mismatch(&self) -> bool {
        match self {
            Error::DigestMismatch { .. } => true,
            Error::GaveUp { source, .. } => source.is_digest_mismatch(),
            _ => false,
        }
    }
}

/// What to do when a registry's certificate is not trusted.
const CERTIFICATE_HINT: &str = "; the registry's TLS certificate is not trusted: put the CA that signed it in /etc/containers/certs.d/HOST:PORT/ca.crt (or /etc/docker/certs.d/..., or a directory named by STRATA_CERTS_D), or name a CA bundle with SSL_CERT_FILE";

/// Whether a transport failure is the TLS certificate being refused (retrying cannot help).
fn is_certificate_error(error: &ureq::Error) -> bool {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.contains("certificate") || text.contains("UnknownIssuer")
}

/// Client configuration.
#[derive(Clone, Debug)]
pub struct Options {
    /// Registries (`host` or `host:port`) spoken to over plain HTTP. Loopback hosts
    /// (`127.0.0.0/8`, `localhost`, `::1`) always are.
    pub insecure: Vec<String>,
    /// The Docker config with credentials; default `$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`.
    pub docker_config: Option<PathBuf>,
    /// How many times a transiently failing request is tried again.
    pub retries: u32,
    /// The platform picked from multi-platform indexes.
    pub platform: Platform,
    /// Roots of per-registry certificate directories (`<root>/<host:port>/{*.crt, *.cert,
    /// *.key}`); default [`crate::tls::default_certs_dirs`].
    pub certs_dirs: Vec<PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            insecure: Vec::new(),
            docker_config: None,
            retries: 3,
            platform: Platform::host(),
            certs_dirs: crate::tls::default_certs_dirs(),
        }
    }
}

/// What [`Client::pull`] brought into the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pulled {
    /// The image manifest's digest (stored verbatim).
    pub manifest: Digest,
    /// Its media type (OCI or Docker).
    pub media_type: String,
    /// The index it was picked from, if the reference named one (also stored verbatim).
    pub index: Option<Digest>,
    /// The config blob.
    pub config: Digest,
    /// The layers, bottom first, with diff ids from the config.
    pub layers: Vec<LayerRecord>,
    /// Blobs downloaded (ones the store already had are not counted).
    pub downloaded: usize,
    /// Bytes downloaded in those blobs.
    pub downloaded_bytes: u64,
}

/// What [`Client::push`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// The digest of the manifest (or index) in the registry; differs from the local one when
    /// the format was converted (the converted bytes are then also written to the store).
    pub manifest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Bytes in those blobs.
    pub uploaded_bytes: u64,
    /// Blobs the repository already had.
    pub existing: usize,
    /// Blobs mounted from another repository of the same registry.
    pub mounted: usize,
    /// Manifests put (children of an index, then the top one).
    pub manifests: usize,
}

/// A registry client. Cheap to clone; clones share the token cache and the list of known blob
/// locations (used for cross-repository mounts).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: Transport,
    platform: Platform,
    /// Repositories where a blob is known to exist, by `(registry, digest)`: candidates for
    /// cross-repository mounts. Filled by pulls and pushes of this client.
    locations: Mutex<HashMap<(String, Digest), Vec<String>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("platform", &self.inner.platform)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Makes a client. Nothing is contacted yet.
    pub fn new(options: Options) -> Result<Client, Error> {
        Ok(Client {
            inner: Arc::new(Inner {
                http: Transport::new(
                    options.insecure,
                    options.docker_config,
                    options.retries,
                    options.certs_dirs,
                ),
                platform: options.platform,
                locations: Mutex::new(HashMap::new()),
            }),
        })
    }

    fn http(&self) -> &Transport {
        &self.inner.http
    }

    fn remember(&self, registry: &str, digest: Digest, repository: &str) {
        let mut map = self
            .inner
            .locations
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let repos = map.entry((registry.to_string(), digest)).or_default();
        if !repos.iter().any(|r| r == repository) {
            repos.insert(0, repository.to_string());
            repos.truncate(4);
        }
    }

    fn known_locations(&self, registry: &str, digest: Digest) -> Vec<String> {
        let map = self
            .inner
            .locations
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.get(&(registry.to_string(), digest))
            .cloned()
            .unwrap_or_default()
    }

    /// The digest of the manifest (or index) `reference` names, or `None` if the registry
    /// does not have it.
    pub fn resolve(&self, reference: &Reference) -> Result<Option<Digest>, Error> {
        let http = self.http();
        let key = reference.manifest_key();
        let url = http.url(
            &reference.registry,
            &reference.repository,
            &format!("manifests/{key}"),
        );
        let found = http.retry(|| {
            let response = http.send(
                &Request::new(
                    "HEAD",
                    &reference.registry,
                    Some(&reference.repository),
                    url.clone(),
                    format!("HEAD manifest {reference}"),
                )
                .header("accept", manifest::ACCEPT),
            )?;
            match response.status().as_u16() {
                200 => Ok(http::header(&response, "docker-content-digest")
                    .and_then(|d| d.parse::<Digest>().ok())
                    .map(Some)),
                404 => Ok(Some(None)),
                status => Err(Error::Status {
                    op: format!("HEAD manifest {reference}"),
                    url: url.clone(),
                    status,
                    detail: String::new(),
                }),
            }
        })?;
        match found {
            Some(d) => Ok(d),
            // No Docker-Content-Digest header: hash the manifest itself.
            None => Ok(self
                .fetch_manifest(reference)?
                .map(|fetched| fetched.digest)),
        }
    }

    /// Deletes the manifest `digest` from `reference`'s repository (and so every tag pointing
    /// at it). `Ok(false)` when the registry does not allow deletes or has no such manifest.
    pub fn delete_manifest(&self, reference: &Reference, digest: &Digest) -> Result<bool, Error> {
        let http = self.http();
        let url = http.url(
            &reference.registry,
            &reference.repository,
            &format!("manifests/{digest}"),
        );
        let op = format!(
            "DELETE manifest {digest} of {}/{}",
            reference.registry, reference.repository
        );
        let response = http.send(&Request::new(
            "DELETE",
            &reference.registry,
            Some(&reference.repository),
            url.clone(),
            op.clone(),
        ))?;
        match response.status().as_u16() {
            200..=299 => Ok(true),
            404 | 405 => Ok(false),
            status => Err(Error::Status {
                op,
                url,
                status,
                detail: String::new(),
            }),
        }
    }

    /// All tags of a repository (every page); empty if the repository does not exist.
    pub fn tags(&self, registry: &str, repository: &str) -> Result<Vec<String>, Error> {
        #[derive(serde::Deserialize)]
        struct List {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let http = self.http();
        let mut url = http.url(registry, repository, "tags/list?n=1000");
        let mut tags = Vec::new();
        // Bounded: at most 10,000 pages of up to 4 MiB each.
        for _ in 0..10_000 {
            let op = format!("listing tags of {registry}/{repository}");
            let (page, next) = http.retry(|| {
                let response = http.send(&Request::new(
                    "GET",
                    registry,
                    Some(repository),
                    url.clone(),
                    op.clone(),
                ))?;
                match response.status().as_u16() {
                    200 => {}
                    404 => return Ok((Vec::new(), None)),
                    _ => {
                        return Err(http::status_error(op.clone(), url.clone(), response));
                    }
                }
                let next = http::header(&response, "link").and_then(next_link);
                let body = http::read_limited(response, manifest::MAX_MANIFEST, &op)?;
                let list: List = serde_json::from_slice(&body).map_err(|e| Error::Protocol {
                    what: op.clone(),
                    reason: format!("the response is not a tag list: {e}"),
                })?;
                Ok((list.tags.unwrap_or_default(), next))
            })?;
            tags.extend(page);
            match next {
                Some(next) if next.starts_with('/') => {
                    url = format!("{}{next}", http.base(registry));
                }
                Some(next) => url = next,
                None => return Ok(tags),
            }
        }
        Err(Error::Protocol {
            what: format!("listing tags of {registry}/{repository}"),
            reason: "more than 10,000 pages".into(),
        })
    }

    /// `GET /v2/` with `credential`: used by [`crate::login`].
    pub(crate) fn check_credentials(
        &self,
        registry: &str,
        credential: &Credential,
    ) -> Result<(), Error> {
        let mut http = Transport::new(Vec::new(), None, 0, self.http().trust.dirs().to_vec());
        http.credential_override = Some(credential.clone());
        // Same scheme rules as this client.
        let url = format!("{}/v2/", self.http().base(registry));
        let op = format!("login check against {registry}");
        let response = http.send(&Request::new(
            "GET",
            registry,
            None,
            url.clone(),
            op.clone(),
        ))?;
        match response.status().as_u16() {
            200 => Ok(()),
            _ => Err(http::status_error(op, url, response)),
        }
    }

    /// Pushes with default [`PushOptions`] in `format`: see [`Client::push_with`].
    pub fn push(
        &self,
        store: &dyn strata_store::Store,
        manifest: &Digest,
        to: &Reference,
        format: ManifestFormat,
    ) -> Result<Pushed, Error> {
        self.push_with(
            store,
            manifest,
            to,
            &PushOptions {
                format,
                ..PushOptions::default()
            },
        )
    }
}

/// The URL in a `Link: <url>; rel="next"` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_link_header() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=x&n=2>; rel="next""#),
            Some("/v2/a/tags/list?last=x&n=2".into())
        );
        assert_eq!(next_link(r#"<http://x/y>; rel="prev""#), None);
    }

    #[test]
    fn transient_classification() {
        let status = |status| Error::Status {
            op: "x".into(),
            url: "u".into(),
            status,
            detail: String::new(),
        };
        assert!(status(503).is_transient());
        assert!(status(429).is_transient());
        assert!(!status(404).is_transient());
        assert!(!status(400).is_transient());
        let mismatch = Error::DigestMismatch {
            what: "blob".into(),
            reference: "r".into(),
            expected: Digest::of(b"a"),
            actual: Digest::of(b"b"),
        };
        assert!(!mismatch.is_transient());
        assert!(mismatch.is_digest_mismatch());
    }
}
