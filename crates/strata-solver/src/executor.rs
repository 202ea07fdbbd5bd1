//! The interface between the solver and whatever runs stages.

use std::any::Any;
use std::fmt;
use std::sync::atomic::AtomicBool;

use strata_digest::Digest;
use strata_plan::{DigestInput, Image, LateInputs, Stage};
use strata_progress::Sink;

/// The result of a stage (or of a base image) as the executor knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageState {
    /// The stage digest (for a base image: its manifest digest).
    pub digest: Digest,
    /// The manifest of the image as of this stage.
    pub manifest: Digest,
    /// Size of the stage's own layer (0 when it made none).
    pub layer_bytes: u64,
}

/// Where a cached stage is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// In the local store.
    Local,
    /// In the stage repository (`--repo`) only.
    Remote,
}

/// A base image resolved by reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedBase {
    /// The reference, normalized (`busybox` → `busybox:latest`).
    pub reference: String,
    /// Its manifest digest: the base's identity in the `from` stage digest.
    pub manifest: Digest,
}

/// Everything needed to build one stage.
#[derive(Debug)]
pub struct StageJob<'a> {
    /// The image being built.
    pub image: &'a Image,
    /// Its display name.
    pub image_name: &'a str,
    /// The stage.
    pub stage: &'a Stage,
    /// The stage's digest: the key its result is stored under.
    pub digest: Digest,
    /// Every digest input, including the ones the solver resolved (the base).
    pub inputs: &'a [DigestInput],
    /// The previous stage's digest (none for `from`).
    pub parent_stage: Option<Digest>,
    /// The manifest the stage starts from (none: an empty root file system).
    pub parent_manifest: Option<Digest>,
    /// The finished images this image depends on (its base, the images it imports from), by
    /// index into the plan's images.
    pub dependencies: &'a [(usize, StageState)],
}

/// An executor's own error, its type and causes kept for whoever renders it (the CLI); the
/// solver only carries it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What an executor kept of a failed step so a debugger can look inside (its own type: for
/// the local worker the container spec and the scratch dirs it ran in). The solver only carries
/// it from the failure to the caller; dropping it releases that state.
pub struct Kept(Box<dyn Any + Send + Sync>);

impl Kept {
    /// Keeps `state`.
    pub fn new<T: Any + Send + Sync>(state: T) -> Kept {
        Kept(Box::new(state))
    }

    /// The state, when it is a `T`.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }

    /// The state itself, when it is a `T`.
    pub fn downcast<T: Any>(self) -> Result<Box<T>, Kept> {
        self.0.downcast().map_err(Kept)
    }
}

impl fmt::Debug for Kept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kept(..)")
    }
}

/// Why an executor could not build a stage.
///
/// [`ExecError::Step`] and [`ExecError::Executor`] are transparent: their text is their
/// cause's and [`Error::source`](std::error::Error::source) goes on with the cause's own
/// causes, so a chain printed cause by cause says each thing once.
#[derive(Debug)]
pub enum ExecError {
    /// A command of a step exited non-zero.
    CommandFailed {
        /// Index of the step in the stage.
        step: usize,
        /// Index of the failing command in the step, when known.
        command: Option<usize>,
        /// The exit code (128+N for signal N).
        exit_code: i32,
        /// The last lines of output.
        output_tail: Vec<String>,
        /// The failed run, for a debugger.
        kept: Option<Kept>,
    },
    /// A step that is not a command failed (git content, file operations).
    Step {
        /// Index of the step in the stage.
        step: usize,
        /// What went wrong.
        source: BoxError,
        /// The state the step started from, for a debugger.
        kept: Option<Kept>,
    },
    /// The build was cancelled.
    Cancelled,
    /// The executor failed otherwise (the store, a registry, the sandbox).
    Executor(BoxError),
}

impl ExecError {
    /// An executor error of any error type.
    pub fn executor(e: impl Into<BoxError>) -> ExecError {
        ExecError::Executor(e.into())
    }

    /// What the executor kept of the failed step, if anything.
    pub fn kept(&self) -> Option<&Kept> {
        match self {
            ExecError::CommandFailed { kept, .. } | ExecError::Step { kept, .. } => kept.as_ref(),
            _ => None,
        }
    }

    /// Takes what the executor kept of the failed step.
    pub fn take_kept(&mut self) -> Option<Kept> {
        match self {
            ExecError::CommandFailed { kept, .. } | ExecError::Step { kept, .. } => kept.take(),
            _ => None,
        }
    }
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecError::CommandFailed { exit_code, .. } => {
                write!(f, "command exited with code {exit_code}")
            }
            ExecError::Step { source, .. } | ExecError::Executor(source) => {
                fmt::Display::fmt(source, f)
            }
            ExecError::Cancelled => f.write_str("cancelled"),
        }
    }
}

impl std::error::Error for ExecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExecError::Step { source, .. } | ExecError::Executor(source) => source.source(),
            _ => None,
        }
    }
}

/// What [`Executor::build`] produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Built {
    /// The stage's state.
    pub state: StageState,
    /// True when another builder committed the stage while this one waited for it, so nothing ran.
    pub adopted: bool,
    /// Milliseconds spent making and committing layers.
    pub commit_millis: u64,
}

/// Runs stages and knows the cache. The solver sees nothing else of Linux, stores or layers.
pub trait Executor: Sync {
    /// Resolves a base image reference.
    fn resolve_base(&self, reference: &str) -> Result<ResolvedBase, ExecError>;
    /// The state of a stage of `image` already built and where it is, if the cache has one
    /// this build can use (a stage recorded at a git history the image's mappings cannot
    /// reach is not one). Nothing is fetched: a stage of the stage repository is pulled when
    /// a build needs its files.
    fn lookup(
        &self,
        image: &Image,
        digest: &Digest,
    ) -> Result<Option<(StageState, Location)>, ExecError>;
    /// The inputs of a stage with [`LateInputs`], now that its parent exists (`job.inputs` is
    /// empty and `job.digest` unset until then). `None` means the stage is empty and skipped.
    fn late_inputs(
        &self,
        job: &StageJob<'_>,
        kind: &LateInputs,
    ) -> Result<Option<Vec<DigestInput>>, ExecError>;
    /// Builds a stage on top of its parent and commits it under `job.digest`.
    fn build(
        &self,
        job: &StageJob<'_>,
        progress: &dyn Sink,
        cancel: &AtomicBool,
    ) -> Result<Built, ExecError>;
}

/// Observers of a build that may stop to let the user look inside (introspection, debugger).
/// They run on the image's own thread, so other images keep building meanwhile.
pub trait Hooks: Sync {
    /// Whether [`Hooks::after_stage`] wants this stage; lets the solver skip looking up cached
    /// stages nobody asked about.
    fn wants_stage(&self, _image: &str, _stage: &str) -> bool {
        false
    }
    /// A stage is built or reused; `state` is its result.
    fn after_stage(&self, _job: &StageJob<'_>, _state: &StageState) {}
    /// A stage failed with `error` (what the solve's failure will be); called on the image's
    /// thread before the failure ends the image, while the images already building go on.
    fn on_failure(&self, _job: &StageJob<'_>, _error: &crate::Error) {}
    /// Whether [`Hooks::at_cached_stage`] wants this stage when it is cached; lets the solver
    /// skip looking up cached stages nobody stops at.
    fn wants_cached(&self, _image: &str, _stage: &str) -> bool {
        false
    }
    /// A stage is reused from the cache (`state` is its result), before [`Hooks::after_stage`]:
    /// a step debugger may pause there. `false` stops the build (the user chose to), which
    /// ends as cancelled.
    fn at_cached_stage(&self, _job: &StageJob<'_>, _state: &StageState) -> bool {
        true
    }
}

/// Hooks that do nothing.
#[derive(Debug, Default)]
pub struct NoHooks;

impl Hooks for NoHooks {}
