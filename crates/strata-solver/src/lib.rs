//! The solver: walks a [`Plan`], computes stage digests, reuses what the cache has and runs the
//! rest on an [`Executor`].
//!
//! 1. Images form a graph through `fromImage`; an image starts when its base image is done, and
//!    up to [`SolveOptions::parallel`] images run at once.
//! 2. For one image, every stage digest is computed up front (see [`cache_key`]): a digest
//!    depends only on inputs, never on outputs, so it is known before anything runs.
//! 3. The last stage found in the cache decides where building starts: stages before it are
//!    reused without even being looked up, which makes a fully cached rebuild one lookup per
//!    image.
//! 4. The remaining stages run in order on the executor; a failure stops the build and carries
//!    the user's source location.
//!
//! The solver knows no frontend syntax, no Linux and no store: only [`Plan`] and [`Executor`].
//!
//! ```
//! use strata_solver::cache_key::stage_digest;
//! let a = stage_digest(None, "from", &[]);
//! assert_ne!(a, stage_digest(Some(&a), "install", &[]));
//! ```
#![deny(missing_docs)]

pub mod cache_key;
mod error;
mod executor;
mod schedule;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use strata_digest::Digest;
use strata_plan::{Base, DigestInput, Image, Plan};
use strata_progress::{Event, Sink, StageId};

pub use error::Error;
pub use executor::{Built, ExecError, Executor, ResolvedBase, StageJob, StageState};

/// How to solve.
#[derive(Clone, Debug)]
pub struct SolveOptions {
    /// Images to build (with what they depend on); empty means all.
    pub images: Vec<String>,
    /// How many images may build at once.
    pub parallel: usize,
}

impl Default for SolveOptions {
    fn default() -> Self {
        SolveOptions {
            images: Vec::new(),
            parallel: 4,
        }
    }
}

/// The outcome of one stage.
#[derive(Clone, Debug)]
pub struct StageOutcome {
    /// The stage name.
    pub name: String,
    /// Its digest.
    pub digest: Digest,
    /// Whether it was reused from the cache.
    pub cached: bool,
}

/// The outcome of one image.
#[derive(Clone, Debug)]
pub struct ImageOutcome {
    /// Index in [`Plan::images`].
    pub index: usize,
    /// Display name.
    pub name: String,
    /// Its stages in order.
    pub stages: Vec<StageOutcome>,
    /// The state of its last stage.
    pub state: StageState,
}

/// What a build produced.
#[derive(Clone, Debug, Default)]
pub struct Solution {
    /// Every image built (or reused), in completion order.
    pub images: Vec<ImageOutcome>,
}

impl Solution {
    /// Stages that ran.
    pub fn built(&self) -> usize {
        self.images
            .iter()
            .flat_map(|i| &i.stages)
            .filter(|s| !s.cached)
            .count()
    }

    /// Stages reused from the cache.
    pub fn cached(&self) -> usize {
        self.images
            .iter()
            .flat_map(|i| &i.stages)
            .filter(|s| s.cached)
            .count()
    }
}

/// Builds the plan's images (or the selected ones and their dependencies).
pub fn solve(
    plan: &Plan,
    executor: &dyn Executor,
    options: &SolveOptions,
    progress: &dyn Sink,
    cancel: &AtomicBool,
) -> Result<Solution, Error> {
    let started = Instant::now();
    let wanted = schedule::select(plan, &options.images)?;
    progress.event(Event::BuildStarted {
        images: wanted
            .iter()
            .map(|&i| {
                let image = &plan.images[i];
                (
                    image.name.to_string(),
                    image.stages.iter().map(|s| s.name.clone()).collect(),
                )
            })
            .collect(),
    });
    let result = schedule::run(
        plan,
        &wanted,
        options.parallel.max(1),
        cancel,
        |index, deps| build_image(plan, index, deps, executor, progress, cancel),
    );
    let (built, cached, ok) = match &result {
        Ok(images) => {
            let s = Solution {
                images: images.clone(),
            };
            (s.built(), s.cached(), true)
        }
        Err(_) => (0, 0, false),
    };
    progress.event(Event::BuildFinished {
        built,
        cached,
        millis: started.elapsed().as_millis() as u64,
        ok,
    });
    result.map(|images| Solution { images })
}

/// Computes every stage digest of an image without building anything.
///
/// `base_state` is the state of a `fromImage` base (ignored for other bases).
pub fn image_digests(
    image: &Image,
    executor: &dyn Executor,
    base_state: Option<&StageState>,
) -> Result<Vec<(Digest, Vec<DigestInput>)>, Error> {
    let name = image.name.to_string();
    let base_input = match &image.base {
        Base::Scratch => "scratch".to_string(),
        Base::Reference { reference, span } => {
            let resolved = executor
                .resolve_base(reference)
                .map_err(|source| Error::Base {
                    image: name.clone(),
                    reference: reference.clone(),
                    span: *span,
                    source,
                })?;
            format!("{}@{}", resolved.reference, resolved.manifest)
        }
        Base::Image { .. } => {
            let state =
                base_state.expect("the scheduler builds a fromImage base before its dependents");
            format!("image@{}", state.digest)
        }
    };
    let mut out = Vec::with_capacity(image.stages.len());
    let mut parent: Option<Digest> = None;
    for (i, stage) in image.stages.iter().enumerate() {
        let mut inputs = Vec::with_capacity(stage.inputs.len() + 1);
        if i == 0 {
            inputs.push(DigestInput::Base {
                base: base_input.clone(),
            });
        }
        inputs.extend(stage.inputs.iter().cloned());
        let digest = cache_key::stage_digest(parent.as_ref(), &stage.name, &inputs);
        parent = Some(digest);
        out.push((digest, inputs));
    }
    Ok(out)
}

fn build_image(
    plan: &Plan,
    index: usize,
    deps: &[(usize, StageState)],
    executor: &dyn Executor,
    progress: &dyn Sink,
    cancel: &AtomicBool,
) -> Result<ImageOutcome, Error> {
    let image = &plan.images[index];
    let name = image.name.to_string();
    let base_state = match image.base {
        Base::Image { index: base, .. } => deps.iter().find(|(i, _)| *i == base).map(|(_, s)| s),
        _ => None,
    };
    let base_manifest = match &image.base {
        Base::Scratch => None,
        Base::Reference { reference, .. } => {
            // image_digests resolved it already; resolving again is a cheap tag read.
            executor.resolve_base(reference).ok().map(|b| b.manifest)
        }
        Base::Image { .. } => base_state.map(|s| s.manifest),
    };
    let digests = image_digests(image, executor, base_state)?;
    let id = |stage: &str| StageId {
        image: name.clone(),
        stage: stage.to_string(),
    };
    for (stage, (digest, _)) in image.stages.iter().zip(&digests) {
        progress.event(Event::StageDigest {
            id: id(&stage.name),
            digest: digest.hex(),
        });
    }

    // The last cached stage: everything before it is implied by its digest.
    let mut start = 0;
    let mut state: Option<StageState> = None;
    for i in (0..digests.len()).rev() {
        let found = executor
            .lookup(&digests[i].0)
            .map_err(|source| Error::Stage {
                image: name.clone(),
                stage: image.stages[i].name.clone(),
                span: image.stages[i].span,
                source,
            })?;
        if let Some(found) = found {
            start = i + 1;
            state = Some(found);
            break;
        }
    }
    let mut stages = Vec::with_capacity(digests.len());
    for (stage, (digest, _)) in image.stages.iter().zip(&digests).take(start) {
        progress.event(Event::StageCached {
            id: id(&stage.name),
            digest: digest.hex(),
        });
        stages.push(StageOutcome {
            name: stage.name.clone(),
            digest: *digest,
            cached: true,
        });
    }
    for i in start..digests.len() {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let stage = &image.stages[i];
        let (digest, inputs) = &digests[i];
        progress.event(Event::StageStarted {
            id: id(&stage.name),
            digest: digest.hex(),
        });
        let t = Instant::now();
        let job = StageJob {
            image,
            image_name: &name,
            stage,
            digest: *digest,
            inputs,
            parent_stage: if i == 0 { None } else { Some(digests[i - 1].0) },
            parent_manifest: state.as_ref().map(|s| s.manifest).or(if i == 0 {
                base_manifest
            } else {
                None
            }),
        };
        let built = executor.build(&job, progress, cancel).map_err(|e| {
            progress.event(Event::StageFailed {
                id: id(&stage.name),
                message: e.to_string(),
            });
            stage_error(&name, stage, e)
        })?;
        if built.adopted {
            progress.event(Event::StageCached {
                id: id(&stage.name),
                digest: digest.hex(),
            });
        } else {
            progress.event(Event::StageBuilt {
                id: id(&stage.name),
                digest: digest.hex(),
                millis: t.elapsed().as_millis() as u64,
                commit_millis: built.commit_millis,
                layer_bytes: built.state.layer_bytes,
            });
        }
        stages.push(StageOutcome {
            name: stage.name.clone(),
            digest: *digest,
            cached: built.adopted,
        });
        state = Some(built.state);
    }
    let state = state.ok_or_else(|| Error::Stage {
        image: name.clone(),
        stage: String::new(),
        span: image.span,
        source: ExecError::Other("the image has no stages".into()),
    })?;
    progress.event(Event::ImageDone {
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

fn stage_error(image: &str, stage: &strata_plan::Stage, e: ExecError) -> Error {
    match e {
        ExecError::CommandFailed {
            step,
            command,
            exit_code,
            output_tail,
        } => {
            let step_ref = stage.steps.get(step);
            let cmd = step_ref.and_then(|s| match (&s.op, command) {
                (strata_plan::Op::Run(run), Some(c)) => run.commands.get(c),
                _ => None,
            });
            Error::CommandFailed {
                image: image.to_string(),
                stage: stage.name.clone(),
                command: cmd.map(|c| c.text.clone()).unwrap_or_default(),
                span: cmd
                    .and_then(|c| c.span)
                    .or(step_ref.and_then(|s| s.span))
                    .or(stage.span),
                exit_code,
                output_tail,
            }
        }
        ExecError::Cancelled => Error::Cancelled,
        other => Error::Stage {
            image: image.to_string(),
            stage: stage.name.clone(),
            span: stage.span,
            source: other,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use strata_plan::{ImageName, Stage, StageOptions};
    use strata_progress::Discard;

    use super::*;

    /// An in-memory executor: records which stages ran.
    #[derive(Default)]
    struct Memory {
        built: Mutex<HashMap<Digest, StageState>>,
        ran: Mutex<Vec<String>>,
    }

    impl Executor for Memory {
        fn resolve_base(&self, reference: &str) -> Result<ResolvedBase, ExecError> {
            Ok(ResolvedBase {
                reference: reference.into(),
                manifest: Digest::of(reference.as_bytes()),
            })
        }
        fn lookup(&self, digest: &Digest) -> Result<Option<StageState>, ExecError> {
            Ok(self.built.lock().unwrap().get(digest).cloned())
        }
        fn build(
            &self,
            job: &StageJob<'_>,
            _: &dyn Sink,
            _: &AtomicBool,
        ) -> Result<Built, ExecError> {
            self.ran
                .lock()
                .unwrap()
                .push(format!("{}/{}", job.image_name, job.stage.name));
            let state = StageState {
                digest: job.digest,
                manifest: job.digest,
                layer_bytes: 0,
            };
            self.built.lock().unwrap().insert(job.digest, state.clone());
            Ok(Built {
                state,
                adopted: false,
                commit_millis: 0,
            })
        }
    }

    fn stage(name: &str, commands: &[&str]) -> Stage {
        Stage {
            name: name.into(),
            inputs: if commands.is_empty() {
                vec![]
            } else {
                vec![DigestInput::Commands {
                    commands: commands.iter().map(|c| c.to_string()).collect(),
                }]
            },
            steps: vec![],
            options: StageOptions::default(),
            span: None,
        }
    }

    fn image(name: &str, base: Base, install: &str) -> Image {
        Image {
            name: ImageName::Named(name.into()),
            base,
            stages: vec![
                stage("from", &[]),
                stage("install", &[install]),
                stage("setup", &["s"]),
            ],
            is_final: true,
            span: None,
        }
    }

    fn build(plan: &Plan, exec: &Memory) -> Vec<String> {
        exec.ran.lock().unwrap().clear();
        solve(
            plan,
            exec,
            &SolveOptions::default(),
            &Discard,
            &AtomicBool::new(false),
        )
        .unwrap();
        let mut ran = exec.ran.lock().unwrap().clone();
        ran.sort();
        ran
    }

    #[test]
    fn rebuilds_from_the_first_changed_stage() {
        let exec = Memory::default();
        let base = || Base::Reference {
            reference: "busybox:latest".into(),
            span: None,
        };
        let mut plan = Plan {
            images: vec![image("a", base(), "i1")],
            ..Plan::default()
        };
        assert_eq!(build(&plan, &exec), ["a/from", "a/install", "a/setup"]);
        assert!(build(&plan, &exec).is_empty());
        plan.images[0] = image("a", base(), "i2");
        assert_eq!(build(&plan, &exec), ["a/install", "a/setup"]);
    }

    #[test]
    fn from_image_builds_after_its_base_and_follows_its_changes() {
        let exec = Memory::default();
        let base = Base::Reference {
            reference: "busybox:latest".into(),
            span: None,
        };
        let mut plan = Plan {
            images: vec![
                image(
                    "child",
                    Base::Image {
                        index: 1,
                        span: None,
                    },
                    "c",
                ),
                image("parent", base, "p1"),
            ],
            ..Plan::default()
        };
        build(&plan, &exec);
        let order = exec.ran.lock().unwrap().clone();
        let pos = |s: &str| order.iter().position(|x| x == s).unwrap();
        assert!(pos("parent/setup") < pos("child/from"));
        plan.images[1].stages[1] = stage("install", &["p2"]);
        assert_eq!(
            build(&plan, &exec),
            [
                "child/from",
                "child/install",
                "child/setup",
                "parent/install",
                "parent/setup"
            ]
        );
    }

    #[test]
    fn selecting_an_image_builds_its_bases_only() {
        let exec = Memory::default();
        let base = || Base::Reference {
            reference: "busybox:latest".into(),
            span: None,
        };
        let plan = Plan {
            images: vec![
                image("a", base(), "a"),
                image(
                    "b",
                    Base::Image {
                        index: 0,
                        span: None,
                    },
                    "b",
                ),
                image("c", base(), "c"),
            ],
            ..Plan::default()
        };
        let options = SolveOptions {
            images: vec!["b".into()],
            parallel: 2,
        };
        solve(&plan, &exec, &options, &Discard, &AtomicBool::new(false)).unwrap();
        assert!(
            exec.ran
                .lock()
                .unwrap()
                .iter()
                .all(|s| !s.starts_with("c/"))
        );
        let err = solve(
            &plan,
            &exec,
            &SolveOptions {
                images: vec!["zz".into()],
                parallel: 1,
            },
            &Discard,
            &AtomicBool::new(false),
        );
        assert!(matches!(err, Err(Error::UnknownImage { .. })));
    }
}
