//! Failure records: a build step that failed where nobody could open the debugger (no
//! `--debugger`, or no terminal: CI) is kept, so that `strata debug FAILURE` opens the same
//! monitor later, on this machine or, pushed with `--repo`, on any other.
//!
//! # What a record is
//!
//! An OCI image in the store, so that the store, gc, push and pull treat it as any image:
//!
//! | part | holds |
//! |---|---|
//! | layers `0..base_layers` | the base state: the layers the step started from, by digest |
//! | the last layer, if any | the broken state: what the step wrote before failing, committed as a layer |
//! | config | the layers' diff ids, and the step's env, user and cwd |
//! | manifest annotation `dev.strata.failure.v1` | [`Record`] as JSON: image, stage, command, exit status, output tail, the source location with its text, the step's container ([`StepSpec`]) |
//!
//! The store indexes it with a [`FailureRecord`] (`failures/<id>.json`), written like a tag
//! after its blobs. With `--repo`, it is pushed to `REPO:failure-<id>`; its base layers are
//! the stages' and already there.
//!
//! # Never in a record
//!
//! Secrets: no secret mount and no secret variable is written down (the env is the stage's,
//! as the debugger's), cache mounts are kept by id only, and the values of the build's
//! `--secret`s and of the config's `secrets:` are masked wherever the record holds text
//! (command, output tail, env, scripts, argv, the source text). Values under 4 characters are
//! not masked.
//! What the step itself wrote into its files (the broken layer) is the user's, as in any layer.
//!
//! # Lifetime
//!
//! `strata gc` keeps the newest [`DEFAULT_KEEP`] records made within [`DEFAULT_WITHIN`]
//! (`--keep-failures N`, `--keep-failures-within D`), and with `--all` none; what a removed
//! record alone named goes with it.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use strata_digest::Digest;
use strata_plan::Plan;
use strata_registry::{ManifestFormat, PushOptions, Reference};
use strata_store::{FailureRecord, LayerRecord, is_failure_id};

use crate::Context;
use crate::image::{self, StoredImage};
use crate::oci::{self, ImageConfig};
use crate::worker::{FailedRun, StepSpec};

/// The manifest annotation holding a [`Record`].
pub const ANNOTATION: &str = "dev.strata.failure.v1";
/// The tag prefix of records pushed to a registry (`REPO:failure-<id>`).
pub const TAG_PREFIX: &str = "failure-";
/// Records `strata gc` keeps by default: the newest this many...
pub const DEFAULT_KEEP: usize = 10;
/// ... made within this long.
pub const DEFAULT_WITHIN: Duration = Duration::from_secs(7 * 86400);

/// What a failure record says of the failed step (the manifest annotation).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    /// The record's id (12 hex digits).
    pub id: String,
    /// When the step failed (milliseconds since the Unix epoch).
    pub created_millis: u64,
    /// The image being built.
    pub image: String,
    /// The stage.
    pub stage: String,
    /// The failed command as written (or, for file work, what failed).
    pub command: String,
    /// Its exit status.
    pub exit_code: i32,
    /// The last lines it printed.
    pub output_tail: Vec<String>,
    /// `--> file:line:col` and the snippet, rendered.
    pub location: Option<String>,
    /// The source around the step, rendered for the monitor's `list`.
    pub listing: Option<String>,
    /// Where the step is written and its text.
    pub source: Option<SourceText>,
    /// How many of the image's layers are the base state; a layer after them is the broken
    /// state.
    pub base_layers: usize,
    /// The step's container.
    pub step: StepSpec,
    /// The argv that reruns only the failed command.
    pub rerun_args: Vec<String>,
    /// The argv that reruns the whole step.
    pub step_args: Vec<String>,
}

impl Record {
    /// The store's index entry of this record, whose image is `manifest`.
    fn summary(&self, manifest: Digest, remote: Option<String>) -> FailureRecord {
        FailureRecord {
            id: self.id.clone(),
            manifest,
            created_millis: self.created_millis,
            image: self.image.clone(),
            stage: self.stage.clone(),
            step: self.command.lines().next().unwrap_or_default().to_string(),
            exit_code: self.exit_code,
            remote,
        }
    }
}

/// The source of a failed step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SourceText {
    /// `file:line:col`.
    pub location: String,
    /// The text of the step in the user's file.
    pub text: String,
}

/// What became of a failure that could be kept ([`crate::ops::build::Failed::record`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kept {
    /// Kept in the local store.
    Local {
        /// Its id.
        id: String,
    },
    /// Kept and pushed.
    Pushed {
        /// Its id.
        id: String,
        /// Where (`REPO:failure-<id>`).
        reference: String,
    },
    /// Kept, but the push failed.
    PushFailed {
        /// Its id.
        id: String,
        /// Why the push failed.
        error: String,
    },
    /// Not kept.
    Failed {
        /// Why.
        error: String,
    },
}

/// How to open the record, or why there is none, in a line or two.
impl std::fmt::Display for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kept::Local { id } => {
                write!(f, "failure kept as {id}: open it with `strata debug {id}`")
            }
            Kept::Pushed { reference, .. } => write!(
                f,
                "failure pushed to {reference}: open it anywhere with `strata debug {reference}`"
            ),
            Kept::PushFailed { id, error } => write!(
                f,
                "note: the failure record could not be pushed: {error}\n\
                 failure kept as {id}: open it with `strata debug {id}`"
            ),
            Kept::Failed { error } => write!(f, "note: the failure could not be kept: {error}"),
        }
    }
}

/// Keeps a failed step as a record: commits its broken upper as a layer, writes the image and
/// indexes it; with `repo`, pushes it there. `secrets` are the build's `--secret` files, whose
/// values are masked in the record's text.
pub(crate) fn keep(
    ctx: &Context,
    plan: &Plan,
    error: &strata_solver::Error,
    failed: FailedRun,
    repo: Option<&str>,
    compression: strata_layer::Compression,
    secrets: &[(String, std::path::PathBuf)],
) -> Kept {
    let written = (|| {
        let view = crate::ops::debug::failure_for(plan, error, &failed)
            .context("the failure left no step to keep")?;
        write(ctx, plan, error, failed, view, secrets)
    })();
    let (id, manifest, summary) = match written {
        Ok(w) => w,
        Err(e) => {
            return Kept::Failed {
                error: crate::error_line(&e),
            };
        }
    };
    let Some(repo) = repo else {
        return Kept::Local { id };
    };
    match push(ctx, &manifest, repo, &id, compression) {
        Ok(reference) => {
            let remote = FailureRecord {
                remote: Some(reference.clone()),
                ..summary
            };
            match ctx.store.put_failure(&remote) {
                Ok(()) => Kept::Pushed { id, reference },
                Err(e) => Kept::PushFailed {
                    id,
                    error: format!("pushed to {reference}, but not noted locally: {e}"),
                },
            }
        }
        Err(e) => Kept::PushFailed {
            id,
            error: crate::error_line(&e),
        },
    }
}

fn write(
    ctx: &Context,
    plan: &Plan,
    error: &strata_solver::Error,
    failed: FailedRun,
    view: strata_debug::Failure,
    secrets: &[(String, std::path::PathBuf)],
) -> anyhow::Result<(String, Digest, FailureRecord)> {
    let created_millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut layers: Vec<LayerRecord> = failed.base.clone();
    let base_layers = layers.len();
    let broken = crate::worker::commit_dir(&ctx.store, &failed.spec.upper, false)
        .context("commit the failed step's files as a layer")?;
    layers.extend(broken);
    let mask = Mask::of(plan, secrets);
    let mut step = failed.step_spec();
    step.process.env = step.process.env.iter().map(|e| mask.text(e)).collect();
    for text in step.scripts.values_mut() {
        *text = mask.text(text);
    }
    let id = Digest::of(
        format!(
            "{created_millis}\0{}\0{}\0{}\0{:?}",
            std::process::id(),
            view.image,
            view.stage,
            std::time::SystemTime::now()
        )
        .as_bytes(),
    )
    .hex()[..12]
        .to_string();
    let record = Record {
        id: id.clone(),
        created_millis,
        image: view.image,
        stage: view.stage,
        command: mask.text(&view.command),
        exit_code: view.exit_code,
        output_tail: view.output_tail.iter().map(|l| mask.text(l)).collect(),
        location: view.location.map(|l| mask.text(&l)),
        listing: view.listing.map(|l| mask.text(&l)),
        source: error.span().map(|span| SourceText {
            location: plan.sources.location(span),
            text: mask.text(plan.sources.text(span)),
        }),
        base_layers,
        step,
        rerun_args: view.rerun_args.iter().map(|a| mask.text(a)).collect(),
        step_args: view.step_args.iter().map(|a| mask.text(a)).collect(),
    };
    let mut config = ImageConfig::empty();
    config.created = Some(oci::build_time());
    config.rootfs.diff_ids = layers.iter().map(|l| l.diff_id).collect();
    config.config.env = record.step.process.env.clone();
    config.config.working_dir = record.step.process.cwd.clone();
    config.config.user = record.step.process.user.clone();
    let annotations = BTreeMap::from([(
        ANNOTATION.to_string(),
        serde_json::to_string(&record).context("serialize the failure record")?,
    )]);
    let written = image::write_image(&ctx.store, &config, &layers, &annotations)?;
    // Blobs and the broken layer's snapshot are durable before the record that names them.
    ctx.store.sync()?;
    let summary = record.summary(written.manifest, None);
    ctx.store.put_failure(&summary)?;
    Ok((id, written.manifest, summary))
}

/// Pushes the record image `manifest` to `REPO:failure-<id>`, its plain layers in
/// `compression` as the repository's stages have them, so that the base layers are mounted
/// from the stages (whose conversions the build's publisher made) and only the broken layer is
/// uploaded.
fn push(
    ctx: &Context,
    manifest: &Digest,
    repo: &str,
    id: &str,
    compression: strata_layer::Compression,
) -> anyhow::Result<String> {
    let repo: Reference = repo
        .parse()
        .with_context(|| format!("--repo `{repo}` is not a repository reference"))?;
    let to = repo.with_tag(&format!("{TAG_PREFIX}{id}"));
    let stored = crate::image::StoredImage::load(&ctx.store, manifest)?;
    let pushed = crate::image::with_plain_compressed(&ctx.store, &stored, compression)?;
    ctx.registry_client()?
        .push_with(
            &ctx.store,
            &pushed,
            &to,
            &PushOptions {
                format: ManifestFormat::Oci,
                mount_from: vec![repo.repository.clone()],
                ..PushOptions::default()
            },
        )
        .with_context(|| format!("push the failure record to {to}"))?;
    Ok(to.to_string())
}

/// The values of the build's secrets, to mask wherever a record holds text: the `--secret`
/// files and the config's secrets (werf's `secrets:`: files, variables and values) of every
/// stage.
struct Mask(Vec<String>);

impl Mask {
    /// The most bytes of a secret file read to mask its value.
    const MAX: u64 = 64 << 10;

    fn of(plan: &Plan, given: &[(String, std::path::PathBuf)]) -> Mask {
        use std::io::Read as _;
        use strata_plan::SecretSource;
        let read = |path: &std::path::Path| {
            let mut bytes = Vec::new();
            std::fs::File::open(path)
                .and_then(|f| f.take(Self::MAX).read_to_end(&mut bytes))
                .ok()
                .map(|_| String::from_utf8_lossy(&bytes).into_owned())
        };
        let configured = plan
            .images
            .iter()
            .flat_map(|i| &i.stages)
            .flat_map(|s| &s.options.secrets)
            .filter_map(|(_, source)| match source {
                SecretSource::File(path) => read(path),
                SecretSource::Env(var) => std::env::var(var).ok(),
                SecretSource::Value(value) => Some(value.clone()),
            });
        let values = given
            .iter()
            .filter_map(|(_, path)| read(path))
            .chain(configured);
        Mask::new(values)
    }

    fn new(secrets: impl Iterator<Item = String>) -> Mask {
        let mut values: Vec<String> = Vec::new();
        for value in secrets {
            // A value and its first line (a file ending in a newline is often echoed without
            // it); short values would mask ordinary words.
            for v in [value.as_str(), value.lines().next().unwrap_or_default()] {
                if v.trim().len() >= 4 && !values.iter().any(|known| known == v) {
                    values.push(v.to_string());
                }
            }
        }
        // Longest first, so that a value containing another is masked whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        Mask(values)
    }

    fn text(&self, text: &str) -> String {
        self.0
            .iter()
            .fold(text.to_string(), |t, secret| t.replace(secret, "****"))
    }
}

/// The failure records in the store, newest first (unreadable ones are skipped).
pub fn list(ctx: &Context) -> anyhow::Result<Vec<FailureRecord>> {
    Ok(ctx
        .store
        .failure_entries()?
        .into_iter()
        .filter_map(|(_, r)| r.ok())
        .collect())
}

/// A failure record opened for debugging: what it says and its image in the store.
pub struct Opened {
    /// The record.
    pub record: Record,
    /// Its image.
    pub image: StoredImage,
}

/// Opens `failure`: the id of a record in the store, or a registry reference of a pushed one
/// (`REPO:failure-<id>`), which is pulled into the store and indexed there.
pub fn open(ctx: &Context, failure: &str) -> anyhow::Result<Opened> {
    let local = match is_failure_id(failure) {
        true => ctx.store.failure(failure)?,
        false => None,
    };
    let (manifest, remote) = match local {
        Some(found) => (found.manifest, None),
        None if is_failure_id(failure) => anyhow::bail!(
            "no failure `{failure}` in the store (see `strata failures`); a record pushed with \
             --repo is opened by its reference, REPO:{TAG_PREFIX}ID"
        ),
        None => {
            let reference: Reference = failure.parse().with_context(|| {
                format!("`{failure}` is neither a failure id nor a registry reference")
            })?;
            let pulled = ctx
                .registry_client()?
                .pull(&reference, &ctx.store)
                .with_context(|| format!("pull the failure record {reference}"))?;
            (pulled.manifest, Some(reference.to_string()))
        }
    };
    let image = StoredImage::load(&ctx.store, &manifest)?;
    let record = read_record(&image).with_context(|| format!("`{failure}`"))?;
    if let Some(remote) = remote {
        // Indexed here too: listed, and kept by gc while it is debugged.
        ctx.store
            .put_failure(&record.summary(manifest, Some(remote)))?;
    }
    Ok(Opened { record, image })
}

/// The [`Record`] of a record image, checked against its layers.
fn read_record(image: &StoredImage) -> anyhow::Result<Record> {
    let text = image
        .manifest
        .annotations
        .get(ANNOTATION)
        .with_context(|| {
            format!(
                "image {} is not a failure record (no {ANNOTATION} annotation)",
                image.digest
            )
        })?;
    let record: Record = serde_json::from_str(text)
        .with_context(|| format!("the failure record of image {} is not valid", image.digest))?;
    let layers = image.manifest.layers.len();
    if record.base_layers > layers || layers - record.base_layers > 1 || !is_failure_id(&record.id)
    {
        anyhow::bail!(
            "the failure record of image {} does not fit its {layers} layers",
            image.digest
        );
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_masked_longest_first() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "s3cr3t-token\n").unwrap();
        std::fs::write(&b, "s3cr3t").unwrap();
        let mask = Mask::of(&Plan::default(), &[("a".into(), a), ("b".into(), b)]);
        assert_eq!(
            mask.text("TOKEN=s3cr3t-token and s3cr3t"),
            "TOKEN=**** and ****"
        );
        assert_eq!(Mask::of(&Plan::default(), &[]).text("plain"), "plain");
        // Too short to mask without masking ordinary words.
        assert_eq!(
            Mask::new(["abc".to_string()].into_iter()).text("abc"),
            "abc"
        );
    }
}
