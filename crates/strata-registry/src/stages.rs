//! The shared stage cache in a registry repository (werf's `--repo`).
//!
//! # Layout
//!
//! Each published stage is an image in one repository, tagged `<stage digest hex>-<unix ms>`.
//! Several tags for one stage digest mean several builders raced; the **oldest** (smallest
//! millis) whose manifest resolves and carries a valid record wins, for everyone.
//!
//! # How the stage record travels
//!
//! The pushed manifest is the stage's local manifest plus two annotations:
//!
//! | annotation               | value                                                    |
//! |--------------------------|----------------------------------------------------------|
//! | `io.strata.stage.record` | the [`StageRecord`] as JSON (inputs, meta, parent, names) |
//! | `io.strata.stage.manifest` | the local manifest's exact bytes, base64               |
//!
//! So the remote manifest digest ([`RemoteStage::manifest`]) differs from the local one
//! ([`StageRecord::manifest`]), but the local one can be restored byte for byte:
//! [`StageRepo::pull`] writes the original manifest back into the store, checked against
//! `record.manifest`, after checking that it names exactly the config and layers of the remote
//! manifest (which were verified by digest on the way in). An adopter therefore ends up with
//! the same local manifest digest, config and layers as the publisher, and never with the
//! annotation (and its build inputs) inside images it exports.
//!
//! # Publishing
//!
//! [`StageRepo::publish`] is optimistic, like werf: look; if someone published the stage,
//! return theirs. Otherwise push config, layers and the annotated manifest (by digest, not
//! yet tagged), then — holding a process-wide lock — look again, and only if still absent tag
//! it `<digest>-<now ms>`, with millis strictly increasing within the process and a tag that
//! does not exist yet. Finally look once more and return the winner.
//!
//! Within one process this makes concurrent publishers agree on one winner. Across machines
//! the registry offers no compare-and-set, so two publishers that tag within the same short
//! window may each see only their own tag in the final look; later `find`s from everyone
//! agree on the oldest tag. To store each stage once, every publisher then deletes the tags
//! younger than the winner it found: each lists after its own tag went up, so the last one to
//! list sees them all and leaves only the oldest. A manifest refused for a blob another
//! builder is still uploading (`MANIFEST_BLOB_UNKNOWN`) is pushed again, a bounded number of
//! times (`Client::push_with`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::Value;
use strata_digest::Digest;
use strata_store::{StageRecord, Store};

use crate::client::{self, Client, PushOptions, Pushed};
use crate::manifest::{self, Manifest, ManifestFormat};
use crate::reference::Reference;

/// Annotation holding the stage record JSON.
pub const RECORD_ANNOTATION: &str = "io.strata.stage.record";
/// Annotation holding the base64 bytes of the stage's local manifest.
pub const MANIFEST_ANNOTATION: &str = "io.strata.stage.manifest";

/// What can go wrong with the stage repository.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Talking to the registry failed.
    #[error("stage repository {repository}: {source}")]
    Registry {
        /// The stage repository.
        repository: String,
        /// Why.
        #[source]
        source: Box<client::Error>,
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
    /// A published stage is not what it claims.
    #[error("stage {tag} in {repository}: {reason}")]
    Invalid {
        /// Its tag.
        tag: String,
        /// The stage repository.
        repository: String,
        /// What is wrong.
        reason: String,
    },
    /// The local stage cannot be published.
    #[error("cannot publish stage {digest}: {reason}")]
    Unpublishable {
        /// The stage digest.
        digest: Digest,
        /// Why.
        reason: String,
    },
}

/// A stage published in the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteStage {
    /// Its tag, `<digest hex>-<unix ms>`.
    pub tag: String,
    /// The digest of the remote (annotated) manifest.
    pub manifest: Digest,
    /// The publisher's record; `record.manifest` is the publisher's local manifest digest.
    pub record: StageRecord,
}

/// What [`StageRepo::publish`] ended with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// The winning stage, ours or another builder's.
    pub stage: RemoteStage,
    /// True when the winner's record is ours (we won, or we had published it before); false
    /// means another builder won: adopt `stage` (pull it with [`StageRepo::pull`]) and drop
    /// ours.
    pub ours: bool,
    /// What our push did, if we pushed.
    pub pushed: Option<Pushed>,
}

/// A registry repository used as a shared stage cache.
#[derive(Clone, Debug)]
pub struct StageRepo {
    client: Client,
    repository: Reference,
}

/// Last millis handed out for a tag by this process, under the publishing lock.
static PUBLISH_LOCK: Mutex<u64> = Mutex::new(0);

impl StageRepo {
    /// The stage cache in `repository` (its tag and digest are ignored).
    pub fn new(client: Client, repository: &Reference) -> StageRepo {
        StageRepo {
            client,
            repository: Reference::repository(&repository.registry, &repository.repository),
        }
    }

    /// The repository (no tag).
    pub fn repository(&self) -> &Reference {
        &self.repository
    }

    /// The tag of stage `digest` published at `unix_millis`.
    pub fn tag_for(digest: &Digest, unix_millis: u64) -> String {
        format!("{}-{unix_millis}", digest.hex())
    }

    fn registry_err(&self) -> impl Fn(client::Error) -> Error + '_ {
        |source| Error::Registry {
            repository: self.repository.to_string(),
            source: Box::new(source),
        }
    }

    /// The published stage for `digest`: of its tags, the oldest that resolves to a manifest
    /// with a valid record for this digest. Tags that do not resolve or hold no valid record
    /// are passed over; registry failures are errors (never silently a newer winner).
    pub fn find(&self, digest: &Digest) -> Result<Option<RemoteStage>, Error> {
        for (_, tag) in self.candidates(digest)? {
            let reference = self.repository.with_tag(&tag);
            let Some(fetched) = self
                .client
                .fetch_manifest(&reference)
                .map_err(self.registry_err())?
            else {
                continue;
            };
            if let Ok((record, _)) = self.decode(&tag, &fetched.bytes, digest) {
                return Ok(Some(RemoteStage {
                    tag,
                    manifest: fetched.digest,
                    record,
                }));
            }
        }
        Ok(None)
    }

    /// The tags published for `digest`, oldest first, with their millis.
    fn candidates(&self, digest: &Digest) -> Result<Vec<(u64, String)>, Error> {
        let tags = self
            .client
            .tags(&self.repository.registry, &self.repository.repository)
            .map_err(self.registry_err())?;
        let prefix = format!("{}-", digest.hex());
        let mut candidates: Vec<(u64, String)> = tags
            .into_iter()
            .filter_map(|tag| {
                let millis = tag.strip_prefix(&prefix)?;
                if millis.is_empty() || !millis.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                Some((millis.parse().ok()?, tag))
            })
            .collect();
        candidates.sort();
        Ok(candidates)
    }

    /// Deletes the stages published for `winner`'s digest after it (younger tags: builders that
    /// lost the race), so that the stage is stored once. Best effort: a registry that refuses
    /// deletes keeps them, and `find` still agrees on the winner.
    fn remove_younger(&self, winner: &RemoteStage) {
        let Ok(candidates) = self.candidates(&winner.record.digest) else {
            return;
        };
        let Some(&(oldest, _)) = candidates.iter().find(|(_, t)| *t == winner.tag) else {
            return;
        };
        for (_, tag) in candidates.into_iter().filter(|(m, _)| *m > oldest) {
            let reference = self.repository.with_tag(&tag);
            if let Ok(Some(manifest)) = self.client.resolve(&reference)
                && manifest != winner.manifest
            {
                let _ = self.client.delete_manifest(&self.repository, &manifest);
            }
        }
    }

    /// Every published stage: the `<digest hex>-<unix ms>` tags whose manifest carries a valid
    /// record, oldest first. Other tags, and tags that no longer resolve, are left out.
    pub fn list(&self) -> Result<Vec<RemoteStage>, Error> {
        let tags = self
            .client
            .tags(&self.repository.registry, &self.repository.repository)
            .map_err(self.registry_err())?;
        let mut candidates: Vec<(u64, Digest, String)> = tags
            .into_iter()
            .filter_map(|tag| {
                let (hex, millis) = tag.split_once('-')?;
                let digest = Digest::from_hex(hex).ok()?;
                Some((millis.parse().ok()?, digest, tag))
            })
            .collect();
        candidates.sort();
        let mut out = Vec::new();
        for (_, digest, tag) in candidates {
            let reference = self.repository.with_tag(&tag);
            let Some(fetched) = self
                .client
                .fetch_manifest(&reference)
                .map_err(self.registry_err())?
            else {
                continue;
            };
            if let Ok((record, _)) = self.decode(&tag, &fetched.bytes, &digest) {
                out.push(RemoteStage {
                    tag,
                    manifest: fetched.digest,
                    record,
                });
            }
        }
        Ok(out)
    }

    /// Deletes a published stage: its manifest, and with it its tag. False when it was gone.
    pub fn delete(&self, stage: &RemoteStage) -> Result<bool, Error> {
        self.client
            .delete_manifest(&self.repository, &stage.manifest)
            .map_err(self.registry_err())
    }

    /// Reads and checks the annotations of a published stage manifest: returns the record and
    /// the original manifest bytes.
    fn decode(
        &self,
        tag: &str,
        bytes: &[u8],
        digest: &Digest,
    ) -> Result<(StageRecord, Vec<u8>), Error> {
        let invalid = |reason: String| Error::Invalid {
            tag: tag.to_string(),
            repository: self.repository.to_string(),
            reason,
        };
        let Manifest::Image(remote) =
            manifest::parse(bytes, None).map_err(|e| invalid(e.to_string()))?
        else {
            return Err(invalid("it is an index, not a stage image".into()));
        };
        let record_json = remote
            .annotations
            .get(RECORD_ANNOTATION)
            .ok_or_else(|| invalid(format!("no `{RECORD_ANNOTATION}` annotation")))?;
        let record: StageRecord = serde_json::from_str(record_json)
            .map_err(|e| invalid(format!("the stage record does not parse: {e}")))?;
        let original = remote
            .annotations
            .get(MANIFEST_ANNOTATION)
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .ok_or_else(|| invalid(format!("no valid `{MANIFEST_ANNOTATION}` annotation")))?;
        if record.digest != *digest {
            return Err(invalid(format!(
                "its record is for stage {}",
                record.digest
            )));
        }
        if Digest::of(&original) != record.manifest {
            return Err(invalid(
                "the embedded manifest does not match record.manifest".into(),
            ));
        }
        let Ok(Manifest::Image(local)) = manifest::parse(&original, None) else {
            return Err(invalid(
                "the embedded manifest is not an image manifest".into(),
            ));
        };
        let digests = |m: &manifest::ImageManifest| -> Vec<(Digest, u64)> {
            std::iter::once(&m.config)
                .chain(&m.layers)
                .map(|d| (d.digest, d.size))
                .collect()
        };
        let recorded: Vec<(Digest, u64)> = std::iter::once((record.config, remote.config.size))
            .chain(record.layers.iter().map(|l| (l.digest, l.size)))
            .collect();
        if digests(&local) != digests(&remote) || recorded != digests(&remote) {
            return Err(invalid(
                "the record, the embedded manifest and the manifest name different blobs".into(),
            ));
        }
        Ok((record, original))
    }

    /// Publishes a built stage (its manifest, config and layers must be in `store`), or returns
    /// the stage someone else published first. See the module docs for the protocol.
    pub fn publish(&self, store: &dyn Store, record: &StageRecord) -> Result<Published, Error> {
        self.publish_with(store, record, BTreeMap::new())
    }

    /// [`StageRepo::publish`] of a stage some of whose blobs are in the repository already:
    /// `streamed` (digest and size), uploaded while they were made
    /// ([`crate::Client::upload_streamed`]), are counted as uploaded, not asked for again.
    pub fn publish_with(
        &self,
        store: &dyn Store,
        record: &StageRecord,
        streamed: BTreeMap<Digest, u64>,
    ) -> Result<Published, Error> {
        if let Some(theirs) = self.find(&record.digest)? {
            return Ok(Published {
                ours: theirs.record == *record,
                stage: theirs,
                pushed: None,
            });
        }
        let unpublishable = |reason: String| Error::Unpublishable {
            digest: record.digest,
            reason,
        };
        let original = store
            .read_blob(&record.manifest)
            .map_err(|source| Error::Store {
                context: format!("reading manifest of stage {}", record.digest),
                source,
            })?;
        let annotated = annotate(&original, record).map_err(unpublishable)?;
        let local = store
            .write_blob(&annotated)
            .map_err(|source| Error::Store {
                context: format!("storing the annotated manifest of stage {}", record.digest),
                source,
            })?;
        // Everything but the tag: the expensive part, outside the lock.
        let pushed = self
            .client
            .push_with(
                store,
                &local,
                &self.repository.with_digest(local),
                &PushOptions {
                    format: ManifestFormat::Oci,
                    streamed,
                    ..PushOptions::default()
                },
            )
            .map_err(self.registry_err())?;
        let tag = {
            let mut last = PUBLISH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(theirs) = self.find(&record.digest)? {
                return Ok(Published {
                    ours: theirs.record == *record,
                    stage: theirs,
                    pushed: Some(pushed),
                });
            }
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let mut millis = now.max(*last + 1);
            // Bounded: skip millis whose tag exists (another process, same millisecond).
            for _ in 0..100 {
                let candidate = self
                    .repository
                    .with_tag(&Self::tag_for(&record.digest, millis));
                if self
                    .client
                    .resolve(&candidate)
                    .map_err(self.registry_err())?
                    .is_none()
                {
                    break;
                }
                millis += 1;
            }
            *last = millis;
            let tag = Self::tag_for(&record.digest, millis);
            // The same race as the push's: a blob of the manifest still settling after another
            // builder's upload of the same content.
            crate::client::retry_blob_race(|| {
                self.client
                    .put_manifest(&self.repository, &tag, &annotated, manifest::OCI_MANIFEST)
            })
            .map_err(self.registry_err())?;
            tag
        };
        let winner = self.find(&record.digest)?.ok_or_else(|| Error::Invalid {
            tag: tag.clone(),
            repository: self.repository.to_string(),
            reason: "the tag just pushed does not resolve; is something deleting tags?".into(),
        })?;
        // Our listing came after our tag, so the last publisher to list sees every tag: it
        // leaves only the winner, whoever it is.
        self.remove_younger(&winner);
        Ok(Published {
            ours: winner.record == *record,
            stage: winner,
            pushed: Some(pushed),
        })
    }

    /// Brings a found stage into `store`: the remote manifest and config always, the layers when
    /// `layers` is true, and the publisher's original manifest (so `record.manifest` exists
    /// locally). Returns the record. Publish it locally (`put_stage`) only after pulling with
    /// layers: before that its layer blobs are missing.
    pub fn pull(
        &self,
        stage: &RemoteStage,
        store: &dyn Store,
        layers: bool,
    ) -> Result<StageRecord, Error> {
        let reference = self.repository.with_digest(stage.manifest);
        let pulled = if layers {
            self.client.pull(&reference, store)
        } else {
            self.client.pull_manifest(&reference, store)
        }
        .map_err(self.registry_err())?;
        let remote = store
            .read_blob(&pulled.manifest)
            .map_err(|source| Error::Store {
                context: format!("reading the pulled manifest of stage {}", stage.tag),
                source,
            })?;
        let (record, original) = self.decode(&stage.tag, &remote, &stage.record.digest)?;
        let invalid = |reason: &str| Error::Invalid {
            tag: stage.tag.clone(),
            repository: self.repository.to_string(),
            reason: reason.to_string(),
        };
        if record != stage.record {
            return Err(invalid("its record changed since it was found"));
        }
        if pulled.layers != record.layers {
            return Err(invalid(
                "the record's layers (diff ids, media types) differ from the image's",
            ));
        }
        store.write_blob(&original).map_err(|source| Error::Store {
            context: format!("storing the original manifest of stage {}", stage.tag),
            source,
        })?;
        Ok(record)
    }
}

/// The manifest with the record and its own bytes added as annotations.
fn annotate(original: &[u8], record: &StageRecord) -> Result<Vec<u8>, String> {
    let Ok(Value::Object(mut tree)) = serde_json::from_slice::<Value>(original) else {
        return Err("its manifest is not a JSON object".into());
    };
    match manifest::parse(original, None) {
        Ok(Manifest::Image(m)) if m.media_type == manifest::OCI_MANIFEST => {}
        Ok(_) => return Err("its manifest is not an OCI image manifest".into()),
        Err(e) => return Err(e.to_string()),
    }
    let record_json = serde_json::to_string(record).map_err(|e| e.to_string())?;
    let annotations = tree
        .entry("annotations")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    let Some(annotations) = annotations.as_object_mut() else {
        return Err("its manifest's annotations are not an object".into());
    };
    annotations.insert(RECORD_ANNOTATION.into(), Value::String(record_json));
    annotations.insert(
        MANIFEST_ANNOTATION.into(),
        Value::String(base64::engine::general_purpose::STANDARD.encode(original)),
    );
    let bytes = serde_json::to_vec(&tree).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > manifest::MAX_MANIFEST {
        return Err(format!(
            "its annotated manifest would be {} bytes, over the {}-byte manifest limit",
            bytes.len(),
            manifest::MAX_MANIFEST
        ));
    }
    Ok(bytes)
}
