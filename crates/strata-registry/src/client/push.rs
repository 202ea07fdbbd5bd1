//! Pushing: blobs the registry lacks, then manifests (an index's children before the index).
//!
//! For each blob: `HEAD` it in the target repository (present: skip); else try a
//! cross-repository mount (`POST …/blobs/uploads/?mount=<digest>&from=<repo>`) from each
//! candidate repository of the same registry (`PushOptions::mount_from`, then repositories this
//! client saw the blob in); else start an upload session and `PUT` the blob monolithically, its
//! body streamed from the store file with an exact `Content-Length`. A failed upload starts
//! over with a new session. Manifests go last, so the registry never has a manifest whose
//! blobs are missing.
//!
//! A blob not made yet (a layer compressed for this push) can go up while it is made
//! ([`Client::upload_streamed`]): one streamed `PATCH` of the bytes as they come, then the
//! `PUT ?digest=` once they end; the push then counts it as uploaded
//! ([`PushOptions::streamed`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;

use strata_digest::Digest;
use strata_store::Store;

use super::http::{self, Body, Request};
use super::{Client, Error, Pushed};
use crate::manifest::{self, MAX_MANIFEST, Manifest, ManifestFormat};
use crate::reference::Reference;

/// How many more times a push whose manifest lost a race with another builder's blob upload
/// is tried (after 100, 200, 400, 800 ms).
const BLOB_RACE_RETRIES: u32 = 4;

/// Runs `attempt` again, a bounded number of times with growing pauses, while the registry
/// refuses a manifest for a blob another builder's upload of the same content is still
/// completing ([`Error::is_blob_race`]).
pub(crate) fn retry_blob_race<T>(
    mut attempt: impl FnMut() -> Result<T, Error>,
) -> Result<T, Error> {
    let mut retries = 0;
    loop {
        match attempt() {
            Err(e) if e.is_blob_race() && retries < BLOB_RACE_RETRIES => {
                std::thread::sleep(std::time::Duration::from_millis(100 << retries));
                retries += 1;
            }
            result => return result,
        }
    }
}

/// How to push.
#[derive(Clone, Debug, Default)]
pub struct PushOptions {
    /// Media types of the pushed manifests.
    pub format: ManifestFormat,
    /// Repositories of the target registry to try mounting missing blobs from (e.g. the
    /// stage repository when publishing a final image).
    pub mount_from: Vec<String>,
    /// Blobs [`Client::upload_streamed`] put in the target repository during this push, with
    /// their sizes: counted as uploaded, not asked for again.
    pub streamed: BTreeMap<Digest, u64>,
}

/// A blob [`Client::upload_streamed`] made: what its producer returned, the blob's digest and
/// size, and whether it reached the registry.
#[derive(Debug)]
pub struct Streamed<T> {
    /// What the producer returned beside the digest and size.
    pub made: T,
    /// The blob's digest, as its producer returned it.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Why the upload failed, if it did: the producer ran to its end all the same, so the
    /// blob is wherever it wrote it, and a push uploads it from there.
    pub upload: Result<(), Error>,
}

/// The writer [`Client::upload_streamed`] hands its producer: the upload's pipe until a write
/// to it fails (the upload ended early), then nothing; it never fails.
struct UploadPipe {
    pipe: Option<std::io::PipeWriter>,
}

impl Write for UploadPipe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(pipe) = &mut self.pipe
            && pipe.write_all(buf).is_err()
        {
            self.pipe = None;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum BlobOutcome {
    Existing,
    Mounted,
    Uploaded(u64),
}

impl Client {
    /// Pushes the image (or index) whose manifest is the blob `manifest` of `store` to `to`:
    /// blobs the registry already has are not uploaded (a `HEAD`, or a mount from another
    /// repository of the same registry), then the manifest goes under `to`'s tag, or its
    /// digest (which must then match the pushed bytes), or, with neither, the pushed bytes'
    /// digest. Children of an index are pushed by digest first.
    ///
    /// With a format conversion the pushed manifest is new JSON with a new digest
    /// ([`Pushed::manifest`]); it is written to the store too.
    pub fn push_with(
        &self,
        store: &dyn Store,
        manifest: &Digest,
        to: &Reference,
        options: &PushOptions,
    ) -> Result<Pushed, Error> {
        // Builders racing on one repository: a manifest can be refused for a blob that another
        // builder's upload is still completing (see Error::is_blob_race). Each attempt checks
        // every blob again (uploading what is missing) before the manifest.
        retry_blob_race(|| {
            let mut stats = Pushed {
                manifest: *manifest,
                media_type: String::new(),
                uploaded: 0,
                uploaded_bytes: 0,
                existing: 0,
                mounted: 0,
                manifests: 0,
            };
            let (digest, media_type, _) =
                self.push_manifest(store, manifest, to, options, &mut stats, true)?;
            stats.manifest = digest;
            stats.media_type = media_type;
            Ok(stats)
        })
    }

    fn push_manifest(
        &self,
        store: &dyn Store,
        local: &Digest,
        to: &Reference,
        options: &PushOptions,
        stats: &mut Pushed,
        top: bool,
    ) -> Result<manifest::Pushed, Error> {
        let store_err = |context: String| move |source| Error::Store { context, source };
        let size = store
            .blob_size(local)
            .map_err(store_err(format!("manifest {local} to push to {to}")))?;
        if size > MAX_MANIFEST {
            return Err(Error::Manifest {
                what: format!("local manifest {local}"),
                reference: to.to_string(),
                source: manifest::Error::TooLarge {
                    what: "manifest",
                    size,
                },
            });
        }
        let bytes = store
            .read_blob(local)
            .map_err(store_err(format!("manifest {local} to push to {to}")))?;
        let bad = |source| Error::Manifest {
            what: format!("local manifest {local}"),
            reference: to.to_string(),
            source,
        };
        let (converted, media_type) = match manifest::parse(&bytes, None).map_err(bad)? {
            Manifest::Image(image) => {
                let converted = manifest::convert_image(&bytes, options.format).map_err(bad)?;
                // A non-distributable layer with `urls` stays where they point (the OCI spec's
                // rule; its descriptor goes out as it is): registries are not to carry it.
                let distributable = image
                    .layers
                    .iter()
                    .filter(|d| d.urls.is_empty() || !manifest::is_nondistributable(&d.media_type));
                for d in std::iter::once(&image.config).chain(distributable) {
                    self.ensure_blob(store, to, d.digest, d.size, options, stats)?;
                }
                let media_type = match converted {
                    Some(_) => manifest::manifest_type(options.format).to_string(),
                    None => image.media_type,
                };
                (converted, media_type)
            }
            Manifest::Index(index) => {
                if !top {
                    return Err(Error::BadReference {
                        reference: to.to_string(),
                        reason: format!(
                            "manifest {local} is an index inside an index; nested indexes are not supported"
                        ),
                    });
                }
                let mut children = BTreeMap::new();
                for d in &index.manifests {
                    let pushed = self.push_manifest(store, &d.digest, to, options, stats, false)?;
                    children.insert(d.digest, pushed);
                }
                let converted =
                    manifest::convert_index(&bytes, options.format, &children).map_err(bad)?;
                let media_type = match converted {
                    Some(_) => manifest::index_type(options.format).to_string(),
                    None => index.media_type,
                };
                (converted, media_type)
            }
        };
        let bytes = match converted {
            Some(converted) => {
                store.write_blob(&converted).map_err(store_err(format!(
                    "storing the converted manifest of {local}"
                )))?;
                converted
            }
            None => bytes,
        };
        let digest = Digest::of(&bytes);
        let key = if top {
            match (&to.tag, &to.digest) {
                (_, Some(d)) if *d != digest => {
                    return Err(Error::BadReference {
                        reference: to.to_string(),
                        reason: format!(
                            "the pushed manifest's digest is {digest}; push by tag, or by that digest"
                        ),
                    });
                }
                (Some(tag), _) => tag.clone(),
                _ => digest.to_string(),
            }
        } else {
            digest.to_string()
        };
        self.put_manifest(to, &key, &bytes, &media_type)?;
        stats.manifests += 1;
        Ok((digest, media_type, bytes.len() as u64))
    }

    pub(crate) fn put_manifest(
        &self,
        to: &Reference,
        key: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<(), Error> {
        let http = self.http();
        let url = http.url(&to.registry, &to.repository, &format!("manifests/{key}"));
        let op = format!("PUT manifest {}/{}:{key}", to.registry, to.repository);
        http.retry(|| {
            let response = http.send(
                &Request::new(
                    "PUT",
                    &to.registry,
                    Some(&to.repository),
                    url.clone(),
                    op.clone(),
                )
                .header("content-type", media_type)
                .body(Body::Bytes(bytes)),
            )?;
            match response.status().as_u16() {
                200 | 201 => Ok(()),
                _ => Err(http::status_error(op.clone(), url.clone(), response)),
            }
        })
    }

    /// Makes sure the target repository has the blob; counts what it did in `stats`.
    fn ensure_blob(
        &self,
        store: &dyn Store,
        to: &Reference,
        digest: Digest,
        declared: u64,
        options: &PushOptions,
        stats: &mut Pushed,
    ) -> Result<(), Error> {
        let size = store.blob_size(&digest).map_err(|source| Error::Store {
            context: format!("blob {digest} to push to {to}"),
            source,
        })?;
        if size != declared {
            return Err(Error::Protocol {
                what: format!("push of blob {digest} to {to}"),
                reason: format!(
                    "the manifest declares {declared} bytes but the local blob has {size}"
                ),
            });
        }
        if options.streamed.get(&digest) == Some(&size) {
            stats.uploaded += 1;
            stats.uploaded_bytes += size;
            self.remember(&to.registry, digest, &to.repository);
            return Ok(());
        }
        let mut candidates: Vec<String> = options.mount_from.clone();
        candidates.extend(self.known_locations(&to.registry, digest));
        let mut seen = std::collections::BTreeSet::new();
        candidates.retain(|r| *r != to.repository && seen.insert(r.clone()));
        candidates.truncate(4);
        let outcome = self
            .http()
            .retry(|| self.blob_attempt(store, to, digest, size, &candidates))?;
        match outcome {
            BlobOutcome::Existing => stats.existing += 1,
            BlobOutcome::Mounted => stats.mounted += 1,
            BlobOutcome::Uploaded(n) => {
                stats.uploaded += 1;
                stats.uploaded_bytes += n;
            }
        }
        self.remember(&to.registry, digest, &to.repository);
        Ok(())
    }

    fn blob_attempt(
        &self,
        store: &dyn Store,
        to: &Reference,
        digest: Digest,
        size: u64,
        candidates: &[String],
    ) -> Result<BlobOutcome, Error> {
        let http = self.http();
        let request = |method, url: String, op: String, also_pull, body| Request {
            also_pull,
            ..Request::new(method, &to.registry, Some(&to.repository), url, op).body(body)
        };
        let head_url = http.url(&to.registry, &to.repository, &format!("blobs/{digest}"));
        let op = format!("HEAD blob {digest} in {}/{}", to.registry, to.repository);
        let response = http.send(&request(
            "HEAD",
            head_url.clone(),
            op.clone(),
            None,
            Body::Empty,
        ))?;
        match response.status().as_u16() {
            200 => return Ok(BlobOutcome::Existing),
            404 => {}
            _ => return Err(http::status_error(op, head_url, response)),
        }
        let mut location = None;
        for from in candidates {
            let url = http.url(
                &to.registry,
                &to.repository,
                &format!(
                    "blobs/uploads/?mount={}&from={}",
                    http::encode(&digest.to_string()),
                    http::encode(from)
                ),
            );
            let op = format!("mount of blob {digest} from {from} into {}", to.repository);
            let response = http.send(&request(
                "POST",
                url.clone(),
                op.clone(),
                Some(from),
                Body::Empty,
            ))?;
            match response.status().as_u16() {
                201 => return Ok(BlobOutcome::Mounted),
                // Not mountable; the registry opened an upload session instead.
                202 => {
                    location = Some(self.location(to, &response, &op)?);
                    break;
                }
                s if (500..600).contains(&s) || s == 429 => {
                    return Err(http::status_error(op, url, response));
                }
                // Refused (no access to `from`, ...): try the next candidate, then upload.
                _ => {}
            }
        }
        let location = match location {
            Some(l) => l,
            None => self.open_upload(to, &format!("blob {digest}"))?,
        };
        let body = Body::Blob {
            store,
            digest,
            size,
        };
        self.complete_upload(to, &location, digest, size, body)?;
        Ok(BlobOutcome::Uploaded(size))
    }

    /// Uploads a blob to `to`'s repository while `produce` makes it: an upload session is
    /// opened, what `produce` writes goes out in one streamed `PATCH` as it comes, and once
    /// `produce` returns (with the blob's digest and size) a `PUT ?digest=` completes it
    /// (the registry checks the digest). The writer `produce` gets never fails: when the
    /// upload does (a refused session, a dropped connection) its bytes are dropped and the
    /// failure is returned beside the digest, so the caller keeps the blob it made and pushes
    /// it the usual way. When `produce` fails the session is cancelled and its error returned.
    pub fn upload_streamed<T, E>(
        &self,
        to: &Reference,
        produce: impl FnOnce(&mut (dyn Write + Send)) -> Result<(T, Digest, u64), E>,
    ) -> Result<Streamed<T>, E> {
        let session = self.open_upload(to, "a new blob").and_then(|location| {
            let (reader, writer) = std::io::pipe().map_err(|e| Error::Protocol {
                what: format!("streamed upload to {}/{}", to.registry, to.repository),
                reason: format!("making a pipe: {e}"),
            })?;
            Ok((location, reader, writer))
        });
        let (location, reader, writer) = match session {
            Ok(session) => session,
            Err(e) => {
                let (made, digest, size) = produce(&mut std::io::sink())?;
                return Ok(Streamed {
                    made,
                    digest,
                    size,
                    upload: Err(e),
                });
            }
        };
        let stream = Mutex::new(Some(reader));
        let http = self.http();
        std::thread::scope(|scope| {
            let patching = scope.spawn(|| {
                let op = format!(
                    "streamed upload of a blob to {}/{}",
                    to.registry, to.repository
                );
                let patch = Request::new(
                    "PATCH",
                    &to.registry,
                    Some(&to.repository),
                    location.clone(),
                    op.clone(),
                )
                .header("content-type", "application/octet-stream")
                .body(Body::Stream(&stream));
                let response = http.send(&patch)?;
                match response.status().as_u16() {
                    202 => self.location(to, &response, &op),
                    _ => Err(http::status_error(op, location.clone(), response)),
                }
            });
            let mut pipe = UploadPipe { pipe: Some(writer) };
            let produced = produce(&mut pipe);
            // The end of the body: the PATCH completes.
            drop(pipe);
            let patched = patching
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            let (made, digest, size) = match produced {
                Ok(blob) => blob,
                Err(e) => {
                    self.cancel_upload(to, patched.as_deref().unwrap_or(&location));
                    return Err(e);
                }
            };
            let upload = patched.and_then(|location| {
                self.complete_upload(to, &location, digest, size, Body::Empty)
            });
            Ok(Streamed {
                made,
                digest,
                size,
                upload,
            })
        })
    }

    /// Opens an upload session in `to`'s repository (`POST …/blobs/uploads/`) for `what`; the
    /// session's absolute URL.
    fn open_upload(&self, to: &Reference, what: &str) -> Result<String, Error> {
        let http = self.http();
        let url = http.url(&to.registry, &to.repository, "blobs/uploads/");
        let op = format!(
            "start of upload of {what} to {}/{}",
            to.registry, to.repository
        );
        let response = http.send(&Request::new(
            "POST",
            &to.registry,
            Some(&to.repository),
            url.clone(),
            op.clone(),
        ))?;
        match response.status().as_u16() {
            202 => self.location(to, &response, &op),
            _ => Err(http::status_error(op, url, response)),
        }
    }

    /// Completes the upload session at `location` with `body` (the whole blob, or nothing
    /// after a `PATCH` sent it): `PUT ?digest=`, which the registry checks.
    fn complete_upload(
        &self,
        to: &Reference,
        location: &str,
        digest: Digest,
        size: u64,
        body: Body<'_>,
    ) -> Result<(), Error> {
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!(
            "{location}{sep}digest={}",
            http::encode(&digest.to_string())
        );
        let op = format!(
            "upload of blob {digest} ({size} bytes) to {}/{}",
            to.registry, to.repository
        );
        let put = Request::new(
            "PUT",
            &to.registry,
            Some(&to.repository),
            url.clone(),
            op.clone(),
        )
        .header("content-type", "application/octet-stream")
        .body(body);
        let response = self.http().send(&put)?;
        match response.status().as_u16() {
            201 | 204 => Ok(()),
            _ => Err(http::status_error(op, url, response)),
        }
    }

    /// Cancels the upload session at `location` (`DELETE`), as far as the registry lets it:
    /// a session left open expires on its own.
    fn cancel_upload(&self, to: &Reference, location: &str) {
        let op = format!("cancel of an upload to {}/{}", to.registry, to.repository);
        let delete = Request::new(
            "DELETE",
            &to.registry,
            Some(&to.repository),
            location.to_string(),
            op,
        );
        let _ = self.http().send(&delete);
    }

    /// The absolute upload URL from a `Location` header.
    fn location(
        &self,
        to: &Reference,
        response: &http::Response,
        op: &str,
    ) -> Result<String, Error> {
        let location = http::header(response, "location").ok_or_else(|| Error::Protocol {
            what: op.to_string(),
            reason: "the registry opened an upload session without a Location header".into(),
        })?;
        if location.starts_with("http://") || location.starts_with("https://") {
            Ok(location.to_string())
        } else if location.starts_with('/') {
            Ok(format!("{}{location}", self.http().base(&to.registry)))
        } else {
            Err(Error::Protocol {
                what: op.to_string(),
                reason: format!("unusable upload Location `{location}`"),
            })
        }
    }
}
