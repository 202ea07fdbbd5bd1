//! The walk over one image's stages: digests, the cache, late inputs, building, hooks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use strata_digest::Digest;
use strata_plan::{Base, DigestInput, Image, Plan, Stage};
use strata_progress::{Event, Sink, StageId};

use crate::executor::{ExecError, Executor, Hooks, Location, StageJob, StageState};
use crate::{CommandFailure, Error, ImageOutcome, StageOutcome, cache_key};

/// What every stage walk of a solve shares.
pub(crate) struct Walk<'a> {
    pub plan: &'a Plan,
    pub executor: &'a dyn Executor,
    pub hooks: &'a dyn Hooks,
    pub progress: &'a dyn Sink,
    pub cancel: &'a AtomicBool,
    /// Set when a stage fails, before the hooks see it: no new image starts.
    pub failed: &'a AtomicBool,
}

/// The base input of an image's `from` stage and the manifest it starts from.
pub(crate) fn resolve_base(
    image: &Image,
    executor: &dyn Executor,
    base_state: Option<&StageState>,
) -> Result<(String, Option<Digest>), Error> {
    Ok(match &image.base {
        Base::Scratch => ("scratch".to_string(), None),
        Base::Reference { reference, span } => {
            let resolved = executor
                .resolve_base(reference)
                .map_err(|source| Error::Base {
                    image: image.name.to_string(),
                    reference: reference.clone(),
                    span: *span,
                    source: Box::new(source),
                })?;
            (
                format!("{}@{}", resolved.reference, resolved.manifest),
                Some(resolved.manifest),
            )
        }
        Base::Image { .. } => {
            let state =
                base_state.expect("the scheduler builds a fromImage base before its dependents");
            (image_base(&state.digest), Some(state.manifest))
        }
    })
}

/// The `base` input of an image built on another image of the plan whose last stage is
/// `digest`.
pub(crate) fn image_base(digest: &Digest) -> String {
    format!("image@{digest}")
}

/// Digests of the leading stages whose inputs are all in the plan (up to the first stage with
/// late inputs), given the base input.
pub(crate) fn static_digests(image: &Image, base_input: &str) -> Vec<(Digest, Vec<DigestInput>)> {
    let mut out = Vec::new();
    let mut parent: Option<Digest> = None;
    for (i, stage) in image.stages.iter().enumerate() {
        if stage.late_inputs.is_some() {
            break;
        }
        let mut inputs = Vec::with_capacity(stage.inputs.len() + 1);
        if i == 0 {
            inputs.push(DigestInput::Base {
                base: base_input.to_string(),
            });
        }
        inputs.extend(stage.inputs.iter().cloned());
        check_kinds(stage, &inputs);
        let digest = cache_key::stage_digest(parent.as_ref(), &stage.name, &inputs);
        parent = Some(digest);
        out.push((digest, inputs));
    }
    out
}

/// A frontend or executor that feeds a stage an input of a kind its table entry
/// ([`strata_plan::StageKind::feeds`]) does not list has a bug; debug builds (the tests) stop.
fn check_kinds(stage: &Stage, inputs: &[DigestInput]) {
    if let Some(bad) = stage.kind.first_unfed(inputs) {
        debug_assert!(
            false,
            "stage {} ({:?}) has an input of kind {:?}: {}",
            stage.name,
            stage.kind,
            bad.kind(),
            bad.name()
        );
    }
}

/// A stage after an image's static prefix, with what its parent left.
pub(crate) struct Probe<'a> {
    pub image: &'a Image,
    pub name: &'a str,
    pub stage: &'a Stage,
    pub parent_digest: Option<Digest>,
    pub parent_manifest: Option<Digest>,
    pub deps: &'a [(usize, StageState)],
}

impl Probe<'_> {
    /// The stage's digest and inputs, asking the executor for its late inputs (the parent
    /// exists by now); `None` when the executor says the stage is empty and skipped.
    pub(crate) fn key(
        &self,
        executor: &dyn Executor,
    ) -> Result<Option<(Digest, Vec<DigestInput>)>, Error> {
        let mut inputs = Vec::new();
        if let Some(kind) = &self.stage.late_inputs {
            let job = StageJob {
                image: self.image,
                image_name: self.name,
                stage: self.stage,
                digest: Digest::of(b""),
                inputs: &[],
                parent_stage: self.parent_digest,
                parent_manifest: self.parent_manifest,
                dependencies: self.deps,
            };
            let late = executor
                .late_inputs(&job, kind)
                .map_err(|e| stage_error(self.name, self.stage, e))?;
            let Some(late) = late else {
                return Ok(None);
            };
            inputs = late;
        }
        inputs.splice(0..0, self.stage.inputs.iter().cloned());
        check_kinds(self.stage, &inputs);
        let digest =
            cache_key::stage_digest(self.parent_digest.as_ref(), &self.stage.name, &inputs);
        Ok(Some((digest, inputs)))
    }
}

impl Walk<'_> {
    /// Builds (or reuses) every stage of one image.
    pub(crate) fn image(
        &self,
        index: usize,
        deps: &[(usize, StageState)],
    ) -> Result<ImageOutcome, Error> {
        let image = &self.plan.images[index];
        let name = image.name.to_string();
        let base_state = match image.base {
            Base::Image { index: base, .. } => {
                deps.iter().find(|(i, _)| *i == base).map(|(_, s)| s)
            }
            _ => None,
        };
        let (base_input, base_manifest) = resolve_base(image, self.executor, base_state)?;
        let prefix = static_digests(image, &base_input);
        for (stage, (digest, _)) in image.stages.iter().zip(&prefix) {
            self.progress.event(Event::StageDigest {
                id: self.id(&name, stage),
                digest: digest.hex(),
            });
        }

        // The last cached stage of the static prefix: everything before it is implied.
        let mut start = 0;
        let mut state: Option<StageState> = None;
        let mut implied_from = None;
        for i in (0..prefix.len()).rev() {
            if let Some((found, at)) = self.lookup(image, &image.stages[i], &prefix[i].0)? {
                start = i + 1;
                state = Some(found);
                implied_from = Some(at);
                break;
            }
        }
        let mut stages = Vec::with_capacity(image.stages.len());
        let mut parent_digest = None;
        for (i, (digest, inputs)) in prefix.iter().enumerate().take(start) {
            let stage = &image.stages[i];
            self.progress.event(Event::StageCached {
                id: self.id(&name, stage),
                digest: digest.hex(),
            });
            stages.push(StageOutcome {
                name: stage.name.clone(),
                digest: *digest,
                cached: true,
                reused_from: implied_from,
                forced: false,
            });
            let wants = self.hooks.wants_stage(&name, &stage.name);
            let stops = self.hooks.wants_cached(&name, &stage.name);
            if wants || stops {
                let job = self.job(
                    image,
                    &name,
                    stage,
                    *digest,
                    inputs,
                    parent_digest,
                    None,
                    deps,
                );
                let found = if i + 1 == start {
                    state.clone()
                } else {
                    self.lookup(image, stage, digest)?.map(|(s, _)| s)
                };
                if let Some(found) = found {
                    if stops && !self.hooks.at_cached_stage(&job, &found) {
                        return Err(Error::Cancelled);
                    }
                    if wants {
                        self.hooks.after_stage(&job, &found);
                    }
                }
            }
            parent_digest = Some(*digest);
        }

        for i in start..image.stages.len() {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            let stage = &image.stages[i];
            let parent_manifest = match &state {
                Some(s) => Some(s.manifest),
                None if i == 0 => base_manifest,
                None => None,
            };
            let (digest, inputs) = match prefix.get(i) {
                Some((digest, inputs)) => (*digest, inputs.clone()),
                None => {
                    let probe = Probe {
                        image,
                        name: &name,
                        stage,
                        parent_digest,
                        parent_manifest,
                        deps,
                    };
                    let Some(key) = probe.key(self.executor)? else {
                        self.progress.event(Event::StageSkipped {
                            id: self.id(&name, stage),
                        });
                        continue;
                    };
                    key
                }
            };
            if i >= prefix.len() {
                self.progress.event(Event::StageDigest {
                    id: self.id(&name, stage),
                    digest: digest.hex(),
                });
            }
            let job = self.job(
                image,
                &name,
                stage,
                digest,
                &inputs,
                parent_digest,
                parent_manifest,
                deps,
            );
            let (built, reused_from, built_here) = if i >= prefix.len()
                && let Some((found, at)) = self.lookup(image, stage, &digest)?
            {
                self.progress.event(Event::StageCached {
                    id: self.id(&name, stage),
                    digest: digest.hex(),
                });
                (found, Some(at), false)
            } else {
                let (built, adopted) = self.build(&job)?;
                (built, adopted.then_some(Location::Local), true)
            };
            if reused_from.is_some()
                && !built_here
                && self.hooks.wants_cached(&name, &stage.name)
                && !self.hooks.at_cached_stage(&job, &built)
            {
                return Err(Error::Cancelled);
            }
            self.hooks.after_stage(&job, &built);
            stages.push(StageOutcome {
                name: stage.name.clone(),
                digest,
                cached: reused_from.is_some(),
                reused_from,
                forced: reused_from.is_none() && stage.options.no_cache,
            });
            parent_digest = Some(digest);
            state = Some(built);
        }
        let state = state.ok_or_else(|| Error::Stage {
            image: name.clone(),
            stage: String::new(),
            span: image.span,
            source: Box::new(ExecError::executor("the image has no stages")),
        })?;
        self.progress.event(Event::ImageDone {
            image: name.clone(),
            digest: state.digest.hex(),
        });
        Ok(ImageOutcome {
            index,
            name,
            stages,
            state,
        })
    }

    fn build(&self, job: &StageJob<'_>) -> Result<(StageState, bool), Error> {
        let id = self.id(job.image_name, job.stage);
        self.progress.event(Event::StageStarted {
            id: id.clone(),
            digest: job.digest.hex(),
        });
        let t = Instant::now();
        let built = match self.executor.build(job, self.progress, self.cancel) {
            Ok(built) => built,
            // A step that failed while the build was being cancelled (a tool killed by the
            // terminal's SIGINT, say) is the cancellation, not a failure to look into.
            Err(ExecError::Cancelled) => return Err(Error::Cancelled),
            Err(_) if self.cancel.load(Ordering::Relaxed) => return Err(Error::Cancelled),
            Err(e) => {
                self.progress.event(Event::StageFailed {
                    id,
                    message: e.to_string(),
                });
                let mut error = stage_error(job.image_name, job.stage, e);
                if let Error::CommandFailed(f) = &mut error {
                    f.digest = Some(job.digest);
                }
                self.failed.store(true, Ordering::Relaxed);
                self.hooks.on_failure(job, &error);
                return Err(error);
            }
        };
        if built.adopted {
            self.progress.event(Event::StageCached {
                id,
                digest: job.digest.hex(),
            });
        } else {
            self.progress.event(Event::StageBuilt {
                id,
                digest: job.digest.hex(),
                millis: t.elapsed().as_millis() as u64,
                commit_millis: built.commit_millis,
                layer_bytes: built.state.layer_bytes,
            });
        }
        Ok((built.state, built.adopted))
    }

    fn lookup(
        &self,
        image: &Image,
        stage: &Stage,
        digest: &Digest,
    ) -> Result<Option<(StageState, Location)>, Error> {
        if stage.options.no_cache {
            return Ok(None);
        }
        self.executor
            .lookup(image, digest)
            .map_err(|source| Error::Stage {
                image: image.name.to_string(),
                stage: stage.name.clone(),
                span: stage.span,
                source: Box::new(source),
            })
    }

    fn id(&self, image: &str, stage: &Stage) -> StageId {
        StageId {
            image: image.to_string(),
            stage: stage.name.clone(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn job<'a>(
        &self,
        image: &'a Image,
        image_name: &'a str,
        stage: &'a Stage,
        digest: Digest,
        inputs: &'a [DigestInput],
        parent_stage: Option<Digest>,
        parent_manifest: Option<Digest>,
        dependencies: &'a [(usize, StageState)],
    ) -> StageJob<'a> {
        StageJob {
            dependencies,
            image,
            image_name,
            stage,
            digest,
            inputs,
            parent_stage,
            parent_manifest,
        }
    }
}

/// A command as messages show it: its first line, at most 200 characters.
fn shorten(command: &str) -> String {
    let first = command.lines().next().unwrap_or_default();
    if first.chars().count() > 200 || first.len() < command.trim_end().len() {
        first.chars().take(200).chain("…".chars()).collect()
    } else {
        first.to_string()
    }
}

/// The solver error for an executor error of `stage`, pointing at the failing command's source.
pub(crate) fn stage_error(image: &str, stage: &Stage, e: ExecError) -> Error {
    match e {
        ExecError::CommandFailed {
            step,
            command,
            exit_code,
            output_tail,
            kept,
        } => {
            let step_ref = stage.steps.get(step);
            let cmd = step_ref.and_then(|s| match (&s.op, command) {
                (strata_plan::Op::Run(run), Some(c)) => run.commands.get(c),
                _ => None,
            });
            let is_run = step_ref.is_some_and(|s| matches!(s.op, strata_plan::Op::Run(_)));
            Error::CommandFailed(Box::new(CommandFailure {
                image: image.to_string(),
                stage: stage.name.clone(),
                command: match cmd {
                    Some(c) => shorten(&c.text),
                    // The step's script did not leave a usable index of its command.
                    None if is_run => "(one of the step's commands)".into(),
                    None => "(copying files into the image)".into(),
                },
                span: cmd
                    .and_then(|c| c.span)
                    .or(step_ref.and_then(|s| s.span))
                    .or(stage.span),
                exit_code,
                output_tail,
                digest: None,
                kept,
            }))
        }
        ExecError::Cancelled => Error::Cancelled,
        ExecError::Step { step, .. } => Error::Stage {
            image: image.to_string(),
            stage: stage.name.clone(),
            span: stage.steps.get(step).and_then(|s| s.span).or(stage.span),
            source: Box::new(e),
        },
        other => Error::Stage {
            image: image.to_string(),
            stage: stage.name.clone(),
            span: stage.span,
            source: Box::new(other),
        },
    }
}
