//! Pulling: manifest (through an index if needed), config, layers.
//!
//! Order and guarantees:
//!
//! 1. `GET` the manifest (at most [`MAX_MANIFEST`] bytes, hashed; a digest reference must
//!    match). An index is resolved to the client's platform and that manifest fetched by digest.
//! 2. The config, then each layer the store lacks, stream from the socket into a store
//!    [`strata_store::Ingest`] and are committed with their expected digest: a wrong byte
//!    commits nothing. A body is read at most to its descriptor's size plus one byte, so a
//!    registry cannot make strata write more than the manifest declares; a body cut short is
//!    retried from the start.
//! 3. The manifest bytes (and the index's) are written last, verbatim, so the store never holds
//!    a pulled manifest whose blobs failed.

use std::io::{Read, Write};

use strata_digest::Digest;
use strata_store::{LayerRecord, Store};

use super::http::{self, Request};
use super::{Client, Error, Pulled};
use crate::manifest::{self, Descriptor, MAX_MANIFEST, Manifest};
use crate::reference::Reference;

/// A manifest as fetched.
pub(crate) struct Fetched {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
    pub digest: Digest,
}

impl Client {
    /// `GET`s the manifest `reference` names; `None` on 404.
    pub(crate) fn fetch_manifest(&self, reference: &Reference) -> Result<Option<Fetched>, Error> {
        let http = self.http();
        let url = http.url(
            &reference.registry,
            &reference.repository,
            &format!("manifests/{}", reference.manifest_key()),
        );
        let op = format!("GET manifest {reference}");
        let fetched = http.retry(|| {
            let response = http.send(
                &Request::new(
                    "GET",
                    &reference.registry,
                    Some(&reference.repository),
                    url.clone(),
                    op.clone(),
                )
                .header("accept", manifest::ACCEPT),
            )?;
            match response.status().as_u16() {
                200 => {}
                404 => return Ok(None),
                _ => {
                    return Err(http::status_error(op.clone(), url.clone(), response));
                }
            }
            let content_type = http::header(&response, "content-type").map(String::from);
            let bytes = http::read_limited(response, MAX_MANIFEST, &op)?;
            Ok(Some((bytes, content_type)))
        })?;
        let Some((bytes, content_type)) = fetched else {
            return Ok(None);
        };
        let digest = Digest::of(&bytes);
        if let Some(expected) = reference.digest
            && expected != digest
        {
            return Err(Error::DigestMismatch {
                what: "manifest".into(),
                reference: reference.to_string(),
                expected,
                actual: digest,
            });
        }
        Ok(Some(Fetched {
            bytes,
            content_type,
            digest,
        }))
    }

    /// Pulls an image into the store: resolves a multi-platform index to
    /// [`super::Options::platform`], downloads the config and the layers the store lacks
    /// (each verified against its digest while written; transient failures retried), and
    /// stores the manifest bytes verbatim. OCI and Docker v2 schema 2 both.
    pub fn pull(&self, reference: &Reference, store: &dyn Store) -> Result<Pulled, Error> {
        self.pull_with(reference, store, true)
    }

    /// Like [`Client::pull`] but brings only the manifest and config, not the layers. The
    /// returned [`Pulled::layers`] are complete, but their blobs may be missing from the store:
    /// do not publish a stage record for such an image before pulling the layers too.
    pub fn pull_manifest(&self, reference: &Reference, store: &dyn Store) -> Result<Pulled, Error> {
        self.pull_with(reference, store, false)
    }

    fn pull_with(
        &self,
        reference: &Reference,
        store: &dyn Store,
        layers: bool,
    ) -> Result<Pulled, Error> {
        let not_found = || Error::NotFound {
            what: format!("manifest {}", reference.manifest_key()),
            reference: format!("{}/{}", reference.registry, reference.repository),
        };
        let bad = |what: &str| {
            let reference = reference.to_string();
            let what = what.to_string();
            move |source| Error::Manifest {
                what,
                reference,
                source,
            }
        };
        let top = self.fetch_manifest(reference)?.ok_or_else(not_found)?;
        let (index, image) = match manifest::parse(&top.bytes, top.content_type.as_deref())
            .map_err(bad("manifest"))?
        {
            Manifest::Image(image) => (None, (top, image)),
            Manifest::Index(list) => {
                let platform = &self.inner.platform;
                let entry = manifest::select(&list, platform).ok_or_else(|| Error::NoPlatform {
                    reference: reference.to_string(),
                    platform: platform.clone(),
                    available: list
                        .manifests
                        .iter()
                        .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
                let child_ref = reference.with_digest(entry.digest);
                let child = self
                    .fetch_manifest(&child_ref)?
                    .ok_or_else(|| Error::NotFound {
                        what: format!("manifest {} (listed for {platform})", entry.digest),
                        reference: reference.to_string(),
                    })?;
                match manifest::parse(&child.bytes, child.content_type.as_deref())
                    .map_err(bad("platform manifest"))?
                {
                    Manifest::Image(image) => (Some(top), (child, image)),
                    Manifest::Index(_) => {
                        return Err(Error::Protocol {
                            what: format!("pull of {reference}"),
                            reason: format!(
                                "the index entry for {platform} is another index; nested indexes are not supported"
                            ),
                        });
                    }
                }
            }
        };
        let (fetched, image) = image;
        let mut downloaded = 0;
        let mut downloaded_bytes = 0;
        if let Some(n) = self.fetch_blob(reference, &image.config, store, Some(MAX_MANIFEST))? {
            downloaded += 1;
            downloaded_bytes += n;
        }
        let config = store
            .read_blob(&image.config.digest)
            .map_err(|source| Error::Store {
                context: format!("reading config {} of {reference}", image.config.digest),
                source,
            })?;
        let diff_ids = manifest::diff_ids(&config).map_err(bad("image config"))?;
        if diff_ids.len() != image.layers.len() {
            return Err(Error::Protocol {
                what: format!("pull of {reference}"),
                reason: format!(
                    "the manifest lists {} layers but the config has {} diff ids",
                    image.layers.len(),
                    diff_ids.len()
                ),
            });
        }
        if layers {
            for layer in &image.layers {
                if let Some(n) = self.fetch_blob(reference, layer, store, None)? {
                    downloaded += 1;
                    downloaded_bytes += n;
                }
            }
        }
        let write = |bytes: &[u8], what: &str| {
            store.write_blob(bytes).map_err(|source| Error::Store {
                context: format!("storing {what} of {reference}"),
                source,
            })
        };
        let manifest = write(&fetched.bytes, "manifest")?;
        let index = match &index {
            Some(index) => Some(write(&index.bytes, "index")?),
            None => None,
        };
        for d in std::iter::once(&image.config).chain(&image.layers) {
            self.remember(&reference.registry, d.digest, &reference.repository);
        }
        Ok(Pulled {
            manifest,
            media_type: image.media_type,
            index,
            config: image.config.digest,
            layers: image
                .layers
                .iter()
                .zip(diff_ids)
                .map(|(d, diff_id)| LayerRecord {
                    digest: d.digest,
                    diff_id,
                    size: d.size,
                    media_type: d.media_type.clone(),
                    urls: d.urls.clone(),
                })
                .collect(),
            downloaded,
            downloaded_bytes,
        })
    }

    /// Streams one blob into the store unless it is there already; returns the bytes
    /// downloaded, or `None` if the store had it.
    pub(crate) fn fetch_blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        store: &dyn Store,
        limit: Option<u64>,
    ) -> Result<Option<u64>, Error> {
        let digest = descriptor.digest;
        if store.has_blob(&digest) {
            return Ok(None);
        }
        let source = format!("{}/{}", reference.registry, reference.repository);
        let size = descriptor.size;
        if let Some(limit) = limit
            && size > limit
        {
            return Err(Error::Protocol {
                what: format!("blob {digest} of {reference}"),
                reason: format!("its declared size {size} exceeds the {limit}-byte limit"),
            });
        }
        let http = self.http();
        let url = http.url(
            &reference.registry,
            &reference.repository,
            &format!("blobs/{digest}"),
        );
        let op = format!("GET blob {digest}");
        let fetched = http.retry(|| {
            let response = http.send(&Request::new(
                "GET",
                &reference.registry,
                Some(&reference.repository),
                url.clone(),
                op.clone(),
            ))?;
            match response.status().as_u16() {
                200 => {}
                404 => {
                    return Err(Error::NotFound {
                        what: format!("blob {digest}"),
                        reference: source.clone(),
                    });
                }
                _ => {
                    return Err(http::status_error(op.clone(), url.clone(), response));
                }
            }
            ingest_body(store, response, digest, size, &source)
        });
        match fetched {
            Err(Error::NotFound { .. }) if !descriptor.urls.is_empty() => {
                self.fetch_foreign(reference, descriptor, store).map(Some)
            }
            other => other.map(Some),
        }
    }

    /// Fetches a foreign layer the registry does not hold from the `urls` of its descriptor,
    /// in order, without the registry's credentials (those URLs are other parties' servers).
    fn fetch_foreign(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        store: &dyn Store,
    ) -> Result<u64, Error> {
        let digest = descriptor.digest;
        let mut failures = Vec::new();
        for url in &descriptor.urls {
            let attempt = (|| {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(Error::Protocol {
                        what: format!("foreign layer {digest}"),
                        reason: format!("`{url}` is not an http(s) URL"),
                    });
                }
                let response = self
                    .http()
                    .get_plain(url, format!("GET foreign layer {digest}"))?;
                match response.status().as_u16() {
                    200 => ingest_body(store, response, digest, descriptor.size, url),
                    _ => Err(http::status_error(
                        format!("GET foreign layer {digest}"),
                        url.clone(),
                        response,
                    )),
                }
            })();
            match attempt {
                Ok(n) => return Ok(n),
                // A wrong blob is not worth another URL's try of a different one: report it.
                Err(e @ Error::DigestMismatch { .. }) => return Err(e),
                Err(e) => failures.push(e.to_string()),
            }
        }
        Err(Error::Foreign {
            digest,
            reference: reference.to_string(),
            tried: failures.join("; "),
        })
    }
}

/// Streams a blob body into the store, committed only if it is exactly `size` bytes with
/// `digest`; `source` names where it came from in errors.
fn ingest_body(
    store: &dyn Store,
    response: http::Response,
    digest: Digest,
    size: u64,
    source: &str,
) -> Result<u64, Error> {
    let source = source.to_string();
    let store_err =
        |context: String| move |source: strata_store::Error| Error::Store { context, source };
    let mut ingest = store
        .ingest()
        .map_err(store_err(format!("starting ingest of blob {digest}")))?;
    // Never more than size + 1 bytes: one more tells "too long" from "exact".
    let mut body = response
        .into_body()
        .into_reader()
        .take(size.saturating_add(1));
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // The connection broke: whatever arrived is dropped with the ingest.
            Err(_) => {
                return Err(Error::Truncated {
                    digest,
                    reference: source.clone(),
                    got,
                    expected: size,
                });
            }
        };
        got += n as u64;
        if got > size {
            return Err(Error::Oversized {
                digest,
                reference: source.clone(),
                size,
            });
        }
        ingest
            .write_all(&buf[..n])
            .map_err(|source| Error::IngestWrite { digest, source })?;
    }
    if got < size {
        return Err(Error::Truncated {
            digest,
            reference: source.clone(),
            got,
            expected: size,
        });
    }
    match ingest.commit(Some(&digest)) {
        Ok(_) => Ok(got),
        Err(strata_store::Error::DigestMismatch { actual, .. }) => Err(Error::DigestMismatch {
            what: format!("blob {digest}"),
            reference: source.clone(),
            expected: digest,
            actual,
        }),
        Err(source) => Err(Error::Store {
            context: format!("committing blob {digest}"),
            source,
        }),
    }
}
