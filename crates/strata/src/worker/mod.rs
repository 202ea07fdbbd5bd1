//! The local worker: runs stages with the sandbox, turns their changes into layers and commits
//! them to the local store. It is the solver's [`Executor`].
//!
//! Building one stage:
//! 1. take the store lock of the stage digest, and re-check the cache (another strata process
//!    may have built it meanwhile);
//! 2. make sure the parent image's layers are unpacked as snapshots (the overlay lowers);
//! 3. run each step: `Run` in a fresh container on the parent's layers plus one upper dir,
//!    `Config` as a change to the image config;
//! 4. turn the upper dir into one layer (its tar hashed while streamed, no blob: the layer is
//!    plain until it leaves the machine, see `commit_dir`), move the upper dir itself into the
//!    snapshots (no unpack needed later), write config and manifest;
//! 5. publish the stage record last: before it exists, nothing of the stage counts. With
//!    `--repo`, the stage is then queued for the stage repository: [`crate::publish`] compresses
//!    and uploads it beside the build of the next stages.
//!
//! One job per file: `stage` runs the steps of a stage, `run` one container, `commit`
//! turns an upper dir into a layer, `spec` and `mounts` make the container spec (`mounts::resolve`
//! is a pure function), `env` and `secrets` what the commands see, `failure` the state kept
//! for the debugger (it travels in the error), `git_cache` the late inputs. Errors are
//! [`Error`], boxed into [`ExecError`] with their causes. A set `cancel` flag stops the build
//! before the next step, or kills the running step's container (see `run`).

mod commit;
mod env;
mod error;
mod failure;
mod git_cache;
mod mounts;
mod run;
mod secrets;
mod spec;
mod stage;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use strata_digest::Digest;
use strata_layer::Compression;
use strata_plan::{DigestInput, LateInputs, Op, Setting};
use strata_progress::Sink;
use strata_sandbox::{Network, Sandbox};
use strata_solver::{Built, ExecError, Executor, Location, ResolvedBase, StageJob, StageState};
use strata_store::{LocalStore, Store};

use crate::image;
use crate::toolbox;

pub(crate) use commit::commit_dir;
pub(crate) use env::split_env;
pub use error::Error;
pub use failure::{FailedRun, StepSpec};
pub use mounts::Error as MountError;

use error::{op, store};
pub(crate) use run::{CANCEL_POLL, RunDirs};
pub(crate) use spec::host_files;

/// Stage record metadata: bytes of the layer the stage itself added.
pub const META_LAYER_BYTES: &str = "layerBytes";
/// Stage record metadata: when it was built, in milliseconds since the Unix epoch (the
/// record's `created_unix` is in seconds, too coarse to order two builds of one stage).
pub const META_CREATED_MILLIS: &str = "createdMillis";
/// When a stage record was built, in milliseconds since the Unix epoch
/// ([`META_CREATED_MILLIS`]; records without it: their second).
pub fn created_millis(record: &strata_store::StageRecord) -> u128 {
    record
        .meta
        .get(META_CREATED_MILLIS)
        .and_then(|m| m.parse().ok())
        .unwrap_or(u128::from(record.created_unix) * 1000)
}

/// The PATH of images that set none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Settings of the local worker.
#[derive(Clone, Debug, Default)]
pub struct WorkerOptions {
    /// Compression of the layers of the stages published to the stage repository (`--repo`);
    /// layers are committed plain (see [`commit_dir`]) and compressed by the publisher.
    pub compression: Compression,
    /// Network of build containers.
    pub network: Network,
    /// Registries: base images to pull, the shared stage repository.
    pub remote: Option<crate::remote::RemoteOptions>,
    /// Secrets by id (`--secret id=ID,src=PATH`), for `RUN --mount=type=secret`.
    pub secrets: Vec<(String, PathBuf)>,
    /// The `security.insecure` entitlement: runs marked insecure (`RUN --security=insecure`)
    /// get all capabilities and no seccomp; without it such a run is refused.
    pub allow_insecure: bool,
    /// Extra `/etc/hosts` entries (name, address) of build containers (docker's --add-host).
    pub add_hosts: Vec<(String, std::net::IpAddr)>,
    /// Pull every base image from its registry once per build, even when the store has it
    /// (docker's `--pull`).
    pub pull: bool,
    /// Agent sockets by id (`--ssh ID=SOCKET`), for `RUN --mount=type=ssh`.
    pub ssh: Vec<(String, PathBuf)>,
}

/// Builds stages on this machine into the local store.
pub struct LocalWorker<'a> {
    store: &'a LocalStore,
    sandbox: &'a Sandbox,
    toolbox: PathBuf,
    options: WorkerOptions,
    remote: Option<crate::remote::Remote>,
    /// Publishes the stages built to the stage repository (`--repo`), beside the build.
    publisher: Option<crate::publish::Publisher>,
    tmp_dirs: crate::tmp_dirs::TmpDirs,
    /// The config's `project:`: a local tag another project built is not its base.
    project: Option<String>,
    /// The base references pulled by this build (with `pull`, each is pulled once).
    pulled: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// The step debugger, when the build is debugged (see [`Stops`]).
    stops: Option<&'a dyn Stops>,
}

/// Where a debugged build may pause inside a stage the worker builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// Before the stage's first step (for a stage script: before its first line).
    Stage,
    /// Before line `command` (from 1) of the stage script of step `step`.
    Line {
        /// The step of the script.
        step: usize,
        /// The line, an index into its commands.
        command: usize,
    },
}

/// The step debugger as the worker sees it: asked at every place a build may pause, it says
/// whether to, and pauses there with the state the next step would run on. A stage script
/// is then run in pieces between the lines it pauses before, each piece's shell (variables,
/// functions, directory) carried into the next (see `run::stage_segment`).
pub trait Stops: Sync {
    /// Whether the build pauses at `at` of `job`'s stage, and why; asked once per place, in
    /// build order, before the steps up to it run.
    fn hit(&self, job: &StageJob<'_>, at: At) -> Option<strata_debug::step::Reason>;
    /// Pauses at `at` with `spec` the state there (`lowers` the stage's base, `upper` what the
    /// stage wrote so far, the next step's process); an error ends the stage (the user
    /// stopped the build: [`ExecError::Cancelled`]).
    fn pause(
        &self,
        job: &StageJob<'_>,
        at: At,
        reason: strata_debug::step::Reason,
        spec: strata_sandbox::ContainerSpec,
    ) -> Result<(), ExecError>;
}

impl<'a> LocalWorker<'a> {
    /// A worker on `store`, running containers with `sandbox`.
    pub fn new(
        store: &'a LocalStore,
        sandbox: &'a Sandbox,
        options: WorkerOptions,
    ) -> anyhow::Result<Self> {
        let toolbox = toolbox::ensure(store)?;
        let remote = options.remote.as_ref().map(crate::remote::Remote::new);
        let publisher = options.remote.as_ref().and_then(|r| {
            let repository = r.repo.as_ref()?;
            Some(crate::publish::Publisher::new(
                &r.client,
                repository,
                store,
                options.compression,
            ))
        });
        Ok(LocalWorker {
            store,
            sandbox,
            toolbox,
            options,
            remote,
            publisher,
            tmp_dirs: Default::default(),
            project: None,
            pulled: Default::default(),
            stops: None,
        })
    }

    /// Pauses the stages this worker builds where `stops` says (the step debugger).
    pub fn set_stops(&mut self, stops: &'a dyn Stops) {
        self.stops = Some(stops);
    }

    /// Builds for the stapel config of `project` (werf's `project:`), see [`Executor::resolve_base`].
    pub fn set_project(&mut self, project: Option<String>) {
        self.project = project;
    }

    /// werf's name of stage `digest` of image `image` (its `ImageName`), `REPO:DIGEST-MILLIS`:
    /// the stage repository's name and tag when it holds the stage, else the project's local
    /// name (`PROJECT:DIGEST-MILLIS`; the image's name without a project) with the record's
    /// creation time ([`created_millis`]). A base image's "stage" has no record:
    /// `REPO:DIGEST`, as werf names a stage of no creation time.
    pub fn stage_name(&self, digest: &Digest, image: &str) -> anyhow::Result<String> {
        if let Some(remote) = &self.remote
            && let Some((repository, tag)) = remote.stage_tag(digest)?
        {
            return Ok(format!("{repository}:{tag}"));
        }
        let repository = self.project.as_deref().unwrap_or(image);
        Ok(match self.store.stage(digest)? {
            Some(record) => format!("{repository}:{}-{}", digest.hex(), created_millis(&record)),
            None => format!("{repository}:{}", digest.hex()),
        })
    }

    /// Makes an image this build refers to available in the local store (a stage found in the
    /// stage repository is pulled on first need).
    pub fn ensure_local(&self, manifest: &Digest) -> anyhow::Result<()> {
        match &self.remote {
            Some(remote) => remote.ensure_local(self.store, manifest),
            None => Ok(()),
        }
    }

    /// Waits until every stage this build queued for the stage repository is published (see
    /// [`crate::publish`]); a set `cancel` stops waiting.
    pub fn finish_publishing(
        &self,
        progress: &dyn Sink,
        cancel: &AtomicBool,
    ) -> Result<(), crate::publish::Error> {
        match &self.publisher {
            Some(publisher) => publisher.finish(progress, cancel),
            None => Ok(()),
        }
    }

    /// Holds a cached stage this build reuses, with its blobs and snapshots, so that a gc
    /// running beside the build leaves them; false if gc took part of it already (a miss).
    fn hold(&self, record: &strata_store::StageRecord) -> Result<bool, ExecError> {
        use strata_store::Held;
        let mut items = vec![
            Held::Stage(record.digest),
            Held::Blob(record.manifest),
            Held::Blob(record.config),
        ];
        for layer in &record.layers {
            items.extend([Held::Blob(layer.digest), Held::Snapshot(layer.diff_id)]);
        }
        let missing = self
            .store
            .protect(&items)
            .map_err(store("hold the cached stage"))?;
        // A snapshot is unpacked again from its blob when missing; a plain layer's blob may
        // never have been written, its snapshot is the content.
        let gone = |item: Held| missing.contains(&item);
        Ok(!gone(Held::Stage(record.digest))
            && !gone(Held::Blob(record.manifest))
            && !gone(Held::Blob(record.config))
            && record.layers.iter().all(|l| {
                !gone(Held::Blob(l.digest)) || (l.is_plain() && !gone(Held::Snapshot(l.diff_id)))
            }))
    }

    /// The record of the stage `digest` this build of `image` may reuse and where it is: the
    /// local store, else the stage repository.
    fn find(
        &self,
        image: &strata_plan::Image,
        digest: &Digest,
    ) -> Result<Option<(strata_store::StageRecord, Location)>, ExecError> {
        let found = match self
            .store
            .stage(digest)
            .map_err(store("look up the stage"))?
        {
            Some(r) if self.hold(&r)? => Some((r, Location::Local)),
            Some(_) => None,
            None => match &self.remote {
                Some(remote) => remote
                    .find(digest)
                    .map_err(op("look up the stage in the stage repository"))?
                    .map(|r| (r, Location::Remote)),
                None => None,
            },
        };
        Ok(found.filter(|(r, _)| crate::reuse::suitable(r, image)))
    }

    /// The parent and the dependencies of a job, available locally.
    pub(super) fn ensure_inputs_local(&self, job: &StageJob<'_>) -> Result<(), ExecError> {
        for manifest in job
            .parent_manifest
            .iter()
            .chain(job.dependencies.iter().map(|(_, s)| &s.manifest))
        {
            self.ensure_local(manifest)
                .map_err(op("make an image of this build local"))?;
        }
        Ok(())
    }
}

impl Executor for LocalWorker<'_> {
    fn resolve_base(&self, reference: &str) -> Result<ResolvedBase, ExecError> {
        let normalized = image::normalize_reference(reference);
        let other_project =
            crate::reuse::other_project(self.store, reference, self.project.as_deref())
                .map_err(op("read the base image's project label"))?;
        let pull = self.options.pull
            && self.remote.is_some()
            && !self
                .pulled
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(&normalized);
        if other_project.is_none()
            && !pull
            && let Some(manifest) = image::resolve(self.store, reference)
                .map_err(op("resolve the base image in the store"))?
        {
            return Ok(ResolvedBase {
                reference: normalized,
                manifest,
            });
        }
        let hint = match &other_project {
            Some(p) => format!(
                "the local `{normalized}` is project `{p}`'s image, which another project's \
                 `from:` never names (werf keeps projects apart); name an image of this config, \
                 or a registry's"
            ),
            None => {
                format!("or import a root file system with `strata import ROOTFS.tar {normalized}`")
            }
        };
        match &self.remote {
            Some(remote) => match remote.pull_base(self.store, reference, &normalized) {
                Ok(manifest) => {
                    self.pulled
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(normalized.clone());
                    Ok(ResolvedBase {
                        reference: normalized,
                        manifest,
                    })
                }
                Err(source) => Err(Error::BasePull {
                    reference: normalized,
                    hint,
                    source,
                }
                .into()),
            },
            None => Err(Error::BaseMissing {
                reference: normalized,
                hint,
            }
            .into()),
        }
    }

    fn lookup(
        &self,
        image: &strata_plan::Image,
        digest: &Digest,
    ) -> Result<Option<(StageState, Location)>, ExecError> {
        Ok(self.find(image, digest)?.map(|(r, at)| {
            let state = StageState {
                digest: r.digest,
                manifest: r.manifest,
                layer_bytes: r
                    .meta
                    .get(META_LAYER_BYTES)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            };
            (state, at)
        }))
    }

    fn late_inputs(
        &self,
        job: &StageJob<'_>,
        kind: &LateInputs,
    ) -> Result<Option<Vec<DigestInput>>, ExecError> {
        self.git_late_inputs(job, kind)
    }

    fn build(
        &self,
        job: &StageJob<'_>,
        progress: &dyn Sink,
        cancel: &AtomicBool,
    ) -> Result<Built, ExecError> {
        self.build_stage(job, progress, cancel)
    }
}

/// Adds what the worker's options change about what a stage's commands can see to the
/// stages' digest inputs: a stage whose commands run without network (`--network none`) is
/// not the stage built with the host's network. The input is the one a Dockerfile's
/// `RUN --network=none` already has, so both ways of asking for no network share a stage;
/// the default (the host's network) adds nothing, so existing digests stay as they were.
pub fn key_options(plan: &mut strata_plan::Plan, options: &WorkerOptions) {
    if options.network != Network::None {
        return;
    }
    for stage in plan.images.iter_mut().flat_map(|i| i.stages.iter_mut()) {
        let runs = stage.steps.iter().any(|s| matches!(s.op, Op::Run(_)));
        let keyed = stage.inputs.iter().any(|i| {
            matches!(
                i,
                DigestInput::Setting {
                    name: Setting::Network,
                    ..
                }
            )
        });
        if runs && !keyed {
            stage.inputs.push(DigestInput::Setting {
                name: Setting::Network,
                value: "none".into(),
            });
        }
    }
}
