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
//!    the user's source location. No image starts after it; images already building then
//!    finish, and their failures come with it ([`Failures`]). [`Hooks::on_failure`] sees a
//!    failure in the failed image's thread before it ends the image, while the others build.
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
pub mod miss;
mod preview;
mod schedule;
mod walk;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use strata_digest::Digest;
use strata_plan::{DigestInput, Image, Plan};
use strata_progress::{Event, Sink};

pub use error::{CommandFailure, Error, Failures};
pub use executor::{
    BoxError, Built, ExecError, Executor, Hooks, Kept, Location, NoHooks, ResolvedBase, StageJob,
    StageState,
};
pub use miss::{Change, MissReason, miss_reason};
pub use preview::{PlannedImage, PlannedStage, preview};

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
    /// Where a reused stage was found (for stages before the last one found, which are not
    /// looked up: where the stage that implies them was).
    pub reused_from: Option<Location>,
    /// Built although the cache may have it, because the plan says so
    /// ([`strata_plan::StageOptions::no_cache`]).
    pub forced: bool,
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
    hooks: &dyn Hooks,
    progress: &dyn Sink,
    cancel: &AtomicBool,
) -> Result<Solution, Failures> {
    let started = Instant::now();
    let wanted = schedule::select(plan, &options.images)?;
    // Counted as they happen, so that a failed build's summary says what it did.
    let progress = &Counting {
        inner: progress,
        built: AtomicUsize::new(0),
        cached: AtomicUsize::new(0),
    };
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
    let failed = AtomicBool::new(false);
    let result = schedule::run(
        plan,
        &wanted,
        options.parallel.max(1),
        cancel,
        &failed,
        |index, deps| {
            let walk = walk::Walk {
                plan,
                executor,
                hooks,
                progress,
                cancel,
                failed: &failed,
            };
            walk.image(index, deps)
        },
    );
    progress.event(Event::BuildFinished {
        built: progress.built.load(Ordering::Relaxed),
        cached: progress.cached.load(Ordering::Relaxed),
        millis: started.elapsed().as_millis() as u64,
        ok: result.is_ok(),
    });
    result.map(|images| Solution { images })
}

/// Passes events on, counting the stages built and reused: one `StageBuilt` or `StageCached`
/// per stage outcome, so on success the counts are [`Solution::built`] and
/// [`Solution::cached`], and on failure they count what was done before it.
struct Counting<'a> {
    inner: &'a dyn Sink,
    built: AtomicUsize,
    cached: AtomicUsize,
}

impl Sink for Counting<'_> {
    fn event(&self, event: Event) {
        match &event {
            Event::StageBuilt { .. } => self.built.fetch_add(1, Ordering::Relaxed),
            Event::StageCached { .. } => self.cached.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        self.inner.event(event);
    }
}

/// Computes the digests of an image's leading stages without building anything (stages whose
/// inputs depend on cached results are left out). `base_state` is the state of a `fromImage`
/// base (ignored for other bases).
pub fn image_digests(
    image: &Image,
    executor: &dyn Executor,
    base_state: Option<&StageState>,
) -> Result<Vec<(Digest, Vec<DigestInput>)>, Error> {
    let (base_input, _) = walk::resolve_base(image, executor, base_state)?;
    Ok(walk::static_digests(image, &base_input))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use strata_plan::{Base, ImageName, Stage, StageKind, StageOptions};
    use strata_progress::Discard;

    use super::*;

    /// An in-memory executor: records which stages ran.
    #[derive(Default)]
    struct Memory {
        built: Mutex<HashMap<Digest, StageState>>,
        ran: Mutex<Vec<String>>,
        late: Mutex<Option<String>>,
        /// Fail every `install` stage, once as many as this waits for are running.
        failing: Option<std::sync::Barrier>,
    }

    impl Executor for Memory {
        fn resolve_base(&self, reference: &str) -> Result<ResolvedBase, ExecError> {
            Ok(ResolvedBase {
                reference: reference.into(),
                manifest: Digest::of(reference.as_bytes()),
            })
        }
        fn lookup(
            &self,
            _: &strata_plan::Image,
            digest: &Digest,
        ) -> Result<Option<(StageState, Location)>, ExecError> {
            Ok(self
                .built
                .lock()
                .unwrap()
                .get(digest)
                .cloned()
                .map(|s| (s, Location::Local)))
        }
        fn late_inputs(
            &self,
            _: &StageJob<'_>,
            _: &strata_plan::LateInputs,
        ) -> Result<Option<Vec<DigestInput>>, ExecError> {
            Ok(self.late.lock().unwrap().clone().map(|v| {
                vec![DigestInput::GitPatch {
                    mapping: 0,
                    identity: v,
                }]
            }))
        }
        fn build(
            &self,
            job: &StageJob<'_>,
            _: &dyn Sink,
            _: &AtomicBool,
        ) -> Result<Built, ExecError> {
            if let Some(running) = &self.failing
                && job.stage.name == "install"
            {
                running.wait();
                return Err(ExecError::executor(format!("{} fails", job.image_name)));
            }
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
            kind: if commands.is_empty() {
                StageKind::From
            } else {
                StageKind::User
            },
            inputs: if commands.is_empty() {
                vec![]
            } else {
                vec![DigestInput::Instructions {
                    lines: commands.iter().map(|c| c.to_string()).collect(),
                }]
            },
            steps: vec![],
            options: StageOptions::default(),
            late_inputs: None,
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
            git: Vec::new(),
            dependencies: Vec::new(),
            span: None,
        }
    }

    /// Solves `plan` on `exec` with `options` and no hooks.
    fn solve_with(
        plan: &Plan,
        exec: &Memory,
        options: &SolveOptions,
    ) -> Result<Solution, Failures> {
        solve(
            plan,
            exec,
            options,
            &NoHooks,
            &Discard,
            &AtomicBool::new(false),
        )
    }

    fn build(plan: &Plan, exec: &Memory) -> Vec<String> {
        exec.ran.lock().unwrap().clear();
        solve_with(plan, exec, &SolveOptions::default()).unwrap();
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
        solve_with(&plan, &exec, &options).unwrap();
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
            &NoHooks,
            &Discard,
            &AtomicBool::new(false),
        );
        assert!(matches!(
            err,
            Err(Failures {
                first: Error::UnknownImage { .. },
                ..
            })
        ));
    }

    #[test]
    fn late_stages_are_skipped_or_keyed_by_what_the_executor_reports() {
        let exec = Memory::default();
        let base = Base::Reference {
            reference: "busybox:latest".into(),
            span: None,
        };
        let mut img = image("a", base, "i");
        let mut patch = stage("gitLatestPatch", &[]);
        patch.kind = StageKind::GitLatestPatch;
        patch.late_inputs = Some(strata_plan::LateInputs::GitLatestPatch);
        img.stages.push(patch);
        img.stages.push(stage("dockerInstructions", &["d"]));
        let plan = Plan {
            images: vec![img],
            ..Plan::default()
        };
        assert_eq!(
            build(&plan, &exec),
            ["a/dockerInstructions", "a/from", "a/install", "a/setup"]
        );
        assert!(build(&plan, &exec).is_empty());
        *exec.late.lock().unwrap() = Some("p1".into());
        assert_eq!(
            build(&plan, &exec),
            ["a/dockerInstructions", "a/gitLatestPatch"]
        );
        assert!(build(&plan, &exec).is_empty());
        *exec.late.lock().unwrap() = Some("p2".into());
        assert_eq!(
            build(&plan, &exec),
            ["a/dockerInstructions", "a/gitLatestPatch"]
        );
    }

    #[test]
    fn hooks_see_wanted_stages_even_when_cached() {
        #[derive(Default)]
        struct Seen(Mutex<Vec<String>>);
        impl Hooks for Seen {
            fn wants_stage(&self, _: &str, stage: &str) -> bool {
                stage == "install"
            }
            fn after_stage(&self, job: &StageJob<'_>, state: &StageState) {
                assert_eq!(job.digest, state.digest);
                self.0.lock().unwrap().push(job.stage.name.clone());
            }
        }
        let exec = Memory::default();
        let base = Base::Reference {
            reference: "busybox:latest".into(),
            span: None,
        };
        let plan = Plan {
            images: vec![image("a", base, "i")],
            ..Plan::default()
        };
        build(&plan, &exec);
        let seen = Seen::default();
        solve(
            &plan,
            &exec,
            &SolveOptions::default(),
            &seen,
            &Discard,
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(*seen.0.lock().unwrap(), ["install"]);
    }

    #[test]
    fn a_failed_solve_keeps_the_failures_of_the_images_still_building() {
        let base = || Base::Reference {
            reference: "busybox".into(),
            span: None,
        };
        let plan = Plan {
            images: vec![image("a", base(), "i"), image("b", base(), "i")],
            ..Plan::default()
        };
        let exec = Memory {
            failing: Some(std::sync::Barrier::new(2)),
            ..Memory::default()
        };
        let options = SolveOptions {
            images: Vec::new(),
            parallel: 2,
        };
        let failures = solve_with(&plan, &exec, &options).unwrap_err();
        let mut failed: Vec<String> = std::iter::once(&failures.first)
            .chain(&failures.others)
            .map(|e| e.to_string())
            .collect();
        failed.sort();
        assert_eq!(
            failed,
            [
                "image `a`, stage `install`: a fails",
                "image `b`, stage `install`: b fails"
            ]
        );
    }
}
