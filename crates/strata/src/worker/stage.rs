//! Building one stage: the loop over its steps, gathering file work (git, imports, COPY) into
//! the next container run, and writing the image and the stage record at the end.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use strata_plan::Op;
use strata_progress::{Event, Sink, StageId};
use strata_solver::{Built, ExecError, Executor as _, StageJob, StageState};
use strata_store::{LayerRecord, Scratch, StageRecord, Store};

use super::error::{self, store};
use super::failure::{SourceSide, with_base};
use super::run::RunDirs;
use super::{LocalWorker, META_CREATED_MILLIS, META_LAYER_BYTES};
use crate::files::{self, FileWork};
use crate::git;
use crate::image::{self, StoredImage};
use crate::oci::{self, ApplyChange as _, ImageConfig};

impl LocalWorker<'_> {
    /// Builds one stage (see the module docs of [`super`]). `cancel` is looked at before each
    /// step until the stage committed a layer and while a command runs (see
    /// [`LocalWorker::run_step`]); from its first commit on, the stage is finished and
    /// published, so the store never holds a layer no stage refers to.
    pub(super) fn build_stage(
        &self,
        job: &StageJob<'_>,
        progress: &dyn Sink,
        cancel: &AtomicBool,
    ) -> Result<Built, ExecError> {
        let id = StageId {
            image: job.image_name.to_string(),
            stage: job.stage.name.clone(),
        };
        let lock = self
            .store
            .lock(
                &format!("stage-{}", job.digest.hex()),
                &mut |what| {
                    progress.event(Event::Waiting {
                        what: format!("{}/{}: {what}", id.image, id.stage),
                    })
                },
                cancel,
            )
            .map_err(store("take the stage's lock"))?;
        // Cancelled while another build held it.
        let Some(_lock) = lock else {
            return Err(ExecError::Cancelled);
        };
        if !job.stage.options.no_cache
            && let Some((state, _)) = self.lookup(job.image, &job.digest)?
        {
            return Ok(Built {
                state,
                adopted: true,
                commit_millis: 0,
            });
        }
        let started = Instant::now();
        self.ensure_inputs_local(job)?;
        let parent = match &job.parent_manifest {
            Some(d) => {
                Some(StoredImage::load(self.store, d).map_err(error::op("load the parent image"))?)
            }
            None => None,
        };
        let mut config = parent
            .as_ref()
            .map(|p| p.config.clone())
            .unwrap_or_else(ImageConfig::empty);
        let mut layers = parent
            .as_ref()
            .map(|p| p.layer_records())
            .unwrap_or_default();
        let parent_layers = layers.len();
        let parent_record = match &job.parent_stage {
            Some(d) => self
                .store
                .stage(d)
                .map_err(store("read the parent stage's record"))?,
            None => None,
        };
        if job.stage.options.werf_labels {
            self.set_werf_labels(job, parent.as_ref(), parent_record.as_ref(), &mut config)?;
        }
        let mut commits = parent_record
            .map(|r| git::recorded_commits(&r.meta))
            .unwrap_or_default();
        if let Some(stops) = self.stops
            && let Some(reason) = stops.hit(job, super::At::Stage)
        {
            // The state before the stage: the parent's, nothing written yet.
            let dir = self
                .store
                .scratch("pause")
                .map_err(store("make the pause's directories"))?;
            let mut spec = self
                .state_spec(job, job.parent_manifest.as_ref(), Vec::new(), dir.path())
                .map_err(error::op("make the paused state's container"))?;
            // The first command's build args, as it will see them.
            if let Some(run) = job.stage.steps.iter().find_map(|s| match &s.op {
                Op::Run(run) => Some(run),
                _ => None,
            }) {
                super::env::with_args(&mut spec.process.env, &run.env);
            }
            stops.pause(job, super::At::Stage, reason, spec)?;
        }
        let mut new_layer_bytes = 0;
        let mut commit_millis = 0;
        // File work waits in a prepared run and lands in the upper dir of the next command step
        // (or of its own layer when no command follows).
        let mut pending: Option<PendingRun> = None;
        // One past the last step: file work not followed by a command runs on its own.
        for index in 0..=job.stage.steps.len() {
            if layers.len() == parent_layers && cancel.load(Ordering::Relaxed) {
                return Err(ExecError::Cancelled);
            }
            let (step, run) = match job.stage.steps.get(index).map(|s| &s.op) {
                Some(Op::Config(change)) => {
                    config.apply(change);
                    continue;
                }
                Some(Op::Run(run)) => (index, Some(run)),
                None if pending.is_none() => break,
                None => (index - 1, None),
                Some(op) => {
                    let lowers = self.lowers(&layers)?;
                    let p = match &mut pending {
                        Some(p) => p,
                        None => pending.insert(
                            self.pending_run()
                                .map_err(error::op("prepare the step's directories"))?,
                        ),
                    };
                    let name = format!("files-{index}.tar");
                    let dir = &p.dirs.control;
                    let work = match op {
                        Op::GitArchive { mapping } => {
                            let m = &job.image.git[*mapping];
                            commits.insert(git::commit_key(*mapping), m.commit.clone());
                            git::archive(m, &lowers, dir, &name).map(|w| vec![w])
                        }
                        Op::GitPatch { mapping } => {
                            let m = &job.image.git[*mapping];
                            let from = commits.insert(git::commit_key(*mapping), m.commit.clone());
                            match from {
                                Some(from) if from != m.commit => {
                                    git::patch(m, &from, &lowers, dir, &name)
                                }
                                _ => Ok(Vec::new()),
                            }
                        }
                        Op::Import(import) => crate::import::write(
                            self.store,
                            import,
                            job.dependencies,
                            &lowers,
                            dir,
                            &name,
                        )
                        .map(|w| vec![w]),
                        Op::CopyFiles(copy) => crate::copy::write(copy, &lowers, dir, &name),
                        Op::MissingSources(missing) => Err(anyhow::anyhow!("{}", missing.message)),
                        Op::MakeDir { path, owner: None } => {
                            Ok(vec![FileWork::MakeDir(path.clone())])
                        }
                        Op::MakeDir {
                            path,
                            owner: Some(user),
                        } => {
                            crate::workdir::write(path, user, &lowers, dir, &name).map(|w| vec![w])
                        }
                        Op::Run(_) | Op::Config(_) => unreachable!("matched by the outer arm"),
                    };
                    match work {
                        Ok(work) => p.prelude.extend(work.into_iter().map(|w| (index, w))),
                        Err(e) => {
                            let kept = pending.take().and_then(|p| {
                                let source = self.source_side(job, op, p.scratch.path());
                                self.keep_step_failure(job, p, lowers, &config, source)
                            });
                            return Err(with_base(
                                ExecError::Step {
                                    step: index,
                                    source: e.into(),
                                    kept,
                                },
                                &layers,
                            ));
                        }
                    }
                    continue;
                }
            };
            let lowers = self.lowers(&layers)?;
            let prepared = match pending.take() {
                Some(p) => self
                    .apply_files(job, p, lowers.clone(), &config)
                    .map_err(|e| with_base(e, &layers))?,
                None => self
                    .pending_run()
                    .map_err(error::op("prepare the step's directories"))?,
            };
            let (layer, millis) = match run {
                Some(run) => self
                    .run_step(
                        job, &id, step, run, prepared, &config, &lowers, progress, cancel,
                    )
                    .map_err(|e| with_base(e, &layers))?,
                // File work only: no container at all.
                None => self.commit_upper(&prepared.dirs, job.stage.options.always_layer)?,
            };
            new_layer_bytes += add_layer(layer, &mut config, &mut layers);
            commit_millis += millis;
        }
        let history = &job.stage.options;
        image::push_empty_history(&mut config, &history.history_before);
        let created_by = match history.created_by.as_str() {
            "" => format!("strata: {}/{}", id.image, id.stage),
            text => text.to_string(),
        };
        // A stage with no text and no layer (a Dockerfile's `from`) adds no history entry:
        // BuildKit's image history is the base's and one entry per instruction.
        if layers.len() > parent_layers || !history.created_by.is_empty() {
            image::push_stage_history(
                &mut config,
                &layers,
                parent_layers,
                &created_by,
                &format!("stage {}", job.digest.hex()),
            );
        }
        image::push_empty_history(&mut config, &history.history_after);
        let base_reference = match (&job.image.base, job.parent_stage) {
            (strata_plan::Base::Reference { reference, .. }, None) => Some(reference.as_str()),
            _ => None,
        };
        let annotations = image::base_annotations(parent.as_ref(), base_reference);
        let written = image::write_image(self.store, &config, &layers, &annotations)
            .map_err(error::op("write the stage's image"))?;
        let record = StageRecord {
            digest: job.digest,
            parent: job.parent_stage,
            manifest: written.manifest,
            config: written.config,
            layers,
            inputs: job
                .inputs
                .iter()
                .map(|i| serde_json::to_value(i).expect("a digest input serializes: no maps"))
                .collect(),
            image: id.image.clone(),
            stage: id.stage.clone(),
            created_unix: crate::unix_now(),
            build_millis: started.elapsed().as_millis() as u64,
            meta: {
                let mut meta = commits;
                meta.insert(META_LAYER_BYTES.to_string(), new_layer_bytes.to_string());
                meta.insert(
                    META_CREATED_MILLIS.to_string(),
                    crate::unix_millis().to_string(),
                );
                meta
            },
        };
        // Blobs and snapshots are durable before the record that makes them count.
        self.store.sync().map_err(store("sync the store"))?;
        let publisher = self
            .publisher
            .as_ref()
            .filter(|_| !job.stage.options.no_cache);
        if let Some(publisher) = publisher {
            publisher
                .note(&record.digest)
                .map_err(store("note the stage as to be published"))?;
        }
        let (record, adopted) = if job.stage.options.no_cache {
            (self.replace_record(record)?, false)
        } else {
            crate::reuse::publish(self.store, record, job.image)
                .map_err(error::op("publish the stage"))?
        };
        // A record another build of this store put first is published too: it may be one
        // without `--repo`, and publishing the same record twice keeps one copy.
        if let Some(publisher) = publisher {
            publisher.queue(record.clone(), format!("{}/{}", id.image, id.stage));
        }
        let state = StageState {
            digest: record.digest,
            manifest: record.manifest,
            layer_bytes: new_layer_bytes,
        };
        Ok(Built {
            state,
            adopted,
            commit_millis,
        })
    }

    /// Publishes `record` of a stage built with `no_cache` in place of the one its digest had:
    /// the build's stage lock is held, so nothing replaces it meanwhile.
    /// werf's service labels of a stapel stage (`pkg/build/build_phase.go`), set before its
    /// steps as werf sets them before the stage's own (an `imageSpec`'s removals see them):
    /// the stage it is built on (`werf.io/parent-stage-id`, `DIGEST-MILLIS`: the previous
    /// stage, or for an image's first stage on another image of the config that image's last)
    /// and, from the second stage on, that stage's image id (`werf.io/base-image-id`); the
    /// project's HEAD commit (`werf-project-repo-commit`) when the config is in a git
    /// repository; the last stage of each dependency the stage introduces
    /// (`werf-dependency-stage-id-SHA256 = DIGEST-MILLIS`).
    fn set_werf_labels(
        &self,
        job: &StageJob<'_>,
        parent: Option<&StoredImage>,
        parent_record: Option<&StageRecord>,
        config: &mut ImageConfig,
    ) -> Result<(), ExecError> {
        let labels = &mut config.config.labels;
        let base_stage = match (&job.image.base, parent_record) {
            (_, Some(record)) => Some(record.clone()),
            (strata_plan::Base::Image { index, .. }, None) => {
                match job.dependencies.iter().find(|(i, _)| i == index) {
                    Some((_, state)) => self
                        .store
                        .stage(&state.digest)
                        .map_err(store("read the base image's last stage record"))?,
                    None => None,
                }
            }
            _ => None,
        };
        if let Some(record) = base_stage {
            labels.insert(
                oci::WERF_PARENT_STAGE_LABEL.into(),
                format!("{}-{}", record.digest.hex(), super::created_millis(&record)),
            );
        }
        let first = job
            .image
            .stages
            .first()
            .is_some_and(|s| std::ptr::eq(s, job.stage));
        if let (false, Some(parent)) = (first, parent) {
            labels.insert(
                oci::WERF_BASE_IMAGE_ID_LABEL.into(),
                parent.manifest.config.digest.to_string(),
            );
        }
        let env = &job.stage.options.service_env;
        if let Some((_, hash)) = env.iter().find(|(k, _)| k == "WERF_COMMIT_HASH") {
            labels.insert(oci::WERF_REPO_COMMIT_LABEL.into(), hash.clone());
        }
        for index in &job.stage.options.dependency_labels {
            let Some((_, state)) = job.dependencies.iter().find(|(i, _)| i == index) else {
                continue;
            };
            let record = self
                .store
                .stage(&state.digest)
                .map_err(store("read a dependency's last stage record"))?;
            if let Some(record) = record {
                let id = format!("{}-{}", record.digest.hex(), super::created_millis(&record));
                labels.insert(
                    format!(
                        "{}{}",
                        oci::WERF_DEPENDENCY_LABEL_PREFIX,
                        strata_digest::Digest::of(id.as_bytes()).hex()
                    ),
                    id,
                );
            }
        }
        Ok(())
    }

    fn replace_record(&self, record: StageRecord) -> Result<StageRecord, ExecError> {
        let outcome = match self
            .store
            .stage(&record.digest)
            .map_err(store("read the stage's record"))?
        {
            Some(old) => self.store.replace_stage(&record, &old),
            None => self.store.put_stage(&record),
        }
        .map_err(store("replace the stage's record"))?;
        match outcome {
            strata_store::PutOutcome::Inserted => Ok(record),
            strata_store::PutOutcome::AlreadyExists(theirs) => Ok(theirs),
        }
    }

    pub(super) fn lowers(&self, layers: &[LayerRecord]) -> Result<Vec<PathBuf>, ExecError> {
        image::lowers(self.store, layers).map_err(error::op("unpack the parent's layers"))
    }

    /// A fresh scratch dir with the dirs of one container run.
    pub(super) fn pending_run(&self) -> anyhow::Result<PendingRun> {
        let scratch = self.store.scratch("run")?;
        let dirs = RunDirs::create(scratch.path())?;
        Ok(PendingRun {
            scratch,
            dirs,
            prelude: Vec::new(),
        })
    }

    /// Applies the file work of `prepared` (all of it but `ADD`'s archive scripts) from this
    /// process into its upper dir, on top of `lowers`; a failure is kept for introspection and
    /// names the step whose work failed.
    pub(super) fn apply_files(
        &self,
        job: &StageJob<'_>,
        prepared: PendingRun,
        lowers: Vec<PathBuf>,
        config: &ImageConfig,
    ) -> Result<PendingRun, ExecError> {
        let root = strata_sandbox::files::Root {
            lowers: lowers.clone(),
            upper: prepared.dirs.upper.clone(),
            work: prepared.dirs.work.clone(),
            scratch: prepared.dirs.sandbox.clone(),
        };
        match files::apply(&prepared.prelude, &prepared.dirs.control, &root) {
            Ok(()) => Ok(prepared),
            Err((step, e)) => {
                // Work not of one step (setting up the root) is the first step's.
                let step = step.or(prepared.prelude.first().map(|(i, _)| *i));
                let source = step.and_then(|i| {
                    self.source_side(job, &job.stage.steps[i].op, prepared.scratch.path())
                });
                let kept = self.keep_step_failure(job, prepared, lowers, config, source);
                Err(match step {
                    Some(step) => ExecError::Step {
                        step,
                        source: e.into(),
                        kept,
                    },
                    None => error::op("apply the step's files")(e),
                })
            }
        }
    }
}

/// Adds a step's layer, if it made one, to the stage's layers and config; returns its size.
fn add_layer(
    layer: Option<LayerRecord>,
    config: &mut ImageConfig,
    layers: &mut Vec<LayerRecord>,
) -> u64 {
    let Some(layer) = layer else { return 0 };
    let size = layer.size;
    config.rootfs.diff_ids.push(layer.diff_id);
    layers.push(layer);
    size
}

/// A container run being prepared: its dirs, and the file work (git, imports, COPY) that goes
/// into its upper dir before the step's commands.
impl LocalWorker<'_> {
    /// Where the files of the file step `op` were to come from, for the debugger of its
    /// failure, when that is there: the image imported from, the build context, or a copy of
    /// a git mapping's files made in `scratch`.
    fn source_side(&self, job: &StageJob<'_>, op: &Op, scratch: &Path) -> Option<SourceSide> {
        let (dirs, what, recheck) = match op {
            Op::Import(import) => (
                crate::import::source_layers(self.store, import, job.dependencies).ok()?,
                "the image copied from",
                Vec::new(),
            ),
            Op::MissingSources(missing) => (
                vec![missing.context.clone()],
                "the build context",
                crate::copy::recheck_args(&missing.paths),
            ),
            Op::GitArchive { mapping } | Op::GitPatch { mapping } => (
                vec![git::source_view(&job.image.git[*mapping], &scratch.join("git-source")).ok()?],
                "a copy of the git mapping's files at its commit",
                Vec::new(),
            ),
            _ => return None,
        };
        Some(SourceSide {
            dirs,
            what,
            recheck,
        })
    }
}

pub(super) struct PendingRun {
    pub(super) scratch: Scratch,
    pub(super) dirs: RunDirs,
    /// File work with the index of the step it comes from.
    pub(super) prelude: Vec<(usize, FileWork)>,
}
