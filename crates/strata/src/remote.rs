//! Registries in a build: base images pulled on first use, and the shared stage cache
//! (`--repo`) where stages found are used without running and stages built are published.
//!
//! A stage found in the repository is only pulled when something needs its files (a later
//! stage, an import, a shell, the final image): until then its record alone answers the
//! solver. Stages built are published beside the build by [`crate::publish`].

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::Context as _;
use strata_digest::Digest;
use strata_registry::stages::{RemoteStage, StageRepo};
use strata_registry::{Client, Reference};
use strata_store::{LocalStore, PutOutcome, StageRecord, Store, TagTarget};

/// Registry access of a build.
#[derive(Clone, Debug)]
pub struct RemoteOptions {
    /// The client (credentials, plain-HTTP hosts).
    pub client: Client,
    /// The stage repository (`--repo`), if any.
    pub repo: Option<Reference>,
}

/// The remote side of a worker.
pub(crate) struct Remote {
    client: Client,
    stages: Option<StageRepo>,
    /// Stages found in the repository but not pulled yet, by local manifest digest.
    found: Mutex<HashMap<Digest, RemoteStage>>,
}

impl Remote {
    pub(crate) fn new(options: &RemoteOptions) -> Remote {
        Remote {
            client: options.client.clone(),
            stages: options
                .repo
                .as_ref()
                .map(|r| StageRepo::new(options.client.clone(), r)),
            found: Mutex::new(HashMap::new()),
        }
    }

    /// Pulls a base image the store lacks and tags it locally as `tag`.
    pub(crate) fn pull_base(
        &self,
        store: &LocalStore,
        reference: &str,
        tag: &str,
    ) -> anyhow::Result<Digest> {
        let parsed: Reference = reference
            .parse()
            .with_context(|| format!("`{reference}` is not an image reference"))?;
        // The caller names the base; the registry error names the request and URL once.
        let pulled = self
            .client
            .pull(&parsed, store)
            .map_err(|e| anyhow::anyhow!(crate::error_line(&e.into())))?;
        // Tag only what the build can use: an image whose config strata cannot read is left
        // untagged (its blobs are garbage), so it breaks nothing else in the store.
        crate::image::StoredImage::load(store, &pulled.manifest).map_err(|e| {
            anyhow::anyhow!(
                "it was pulled, but strata cannot read it: {}",
                crate::error_line(&e)
            )
        })?;
        let updated_unix = crate::unix_now();
        store.set_tag(
            tag,
            &TagTarget {
                manifest: pulled.manifest,
                stage: None,
                updated_unix,
            },
        )?;
        Ok(pulled.manifest)
    }

    /// The record of a stage published in the repository, remembered for a later pull.
    pub(crate) fn find(&self, digest: &Digest) -> anyhow::Result<Option<StageRecord>> {
        let Some(stages) = &self.stages else {
            return Ok(None);
        };
        let Some(remote) = stages
            .find(digest)
            .with_context(|| format!("look up stage {} in the repository", digest.short(12)))?
        else {
            return Ok(None);
        };
        let record = remote.record.clone();
        self.found
            .lock()
            .expect("no thread panics holding the found map")
            .insert(record.manifest, remote);
        Ok(Some(record))
    }

    /// The stage repository's name and the tag of stage `digest` there; `None` without a
    /// stage repository or when it lacks the stage.
    pub(crate) fn stage_tag(&self, digest: &Digest) -> anyhow::Result<Option<(String, String)>> {
        let Some(stages) = &self.stages else {
            return Ok(None);
        };
        let found = stages
            .find(digest)
            .with_context(|| format!("look up stage {} in the repository", digest.short(12)))?;
        Ok(found.map(|remote| (stages.repository().to_string(), remote.tag)))
    }

    /// Makes an image the build refers to available locally, pulling a stage found in the
    /// repository (layers and all) and recording it in the store.
    pub(crate) fn ensure_local(&self, store: &LocalStore, manifest: &Digest) -> anyhow::Result<()> {
        if store.has_blob(manifest) {
            return Ok(());
        }
        let remote = self
            .found
            .lock()
            .expect("no thread panics holding the found map")
            .get(manifest)
            .cloned();
        let (Some(remote), Some(stages)) = (remote, &self.stages) else {
            return Ok(());
        };
        let record = stages
            .pull(&remote, store, true)
            .with_context(|| format!("pull stage {}", remote.tag))?;
        store.put_stage(&record)?;
        Ok(())
    }
}

/// Records `record` locally; when another build recorded the same digest first, theirs wins
/// (the `bool` says so) because images may already refer to its manifest.
pub(crate) fn local_put(
    store: &LocalStore,
    record: StageRecord,
) -> Result<(StageRecord, bool), strata_store::Error> {
    Ok(match store.put_stage(&record)? {
        PutOutcome::Inserted => (record, false),
        PutOutcome::AlreadyExists(theirs) => (theirs, true),
    })
}
