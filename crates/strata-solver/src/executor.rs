//! The interface between the solver and whatever runs stages.

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

/// Why an executor could not build a stage.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// A command of a step exited non-zero.
    #[error("command exited with code {exit_code}")]
    CommandFailed {
        /// Index of the step in the stage.
        step: usize,
        /// Index of the failing command in the step, when known.
        command: Option<usize>,
        /// The exit code (128+N for signal N).
        exit_code: i32,
        /// The last lines of output.
        output_tail: Vec<String>,
    },
    /// A step that is not a command failed (git content, file operations).
    #[error("{message}")]
    Step {
        /// Index of the step in the stage.
        step: usize,
        /// What went wrong.
        message: String,
    },
    /// The build was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// Anything else, with its message chain.
    #[error("{0}")]
    Other(String),
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
    /// The state of a stage of `image` already built, if the cache has one this build can use
    /// (a stage recorded at a git history the image's mappings cannot reach is not one).
    fn lookup(&self, image: &Image, digest: &Digest) -> Result<Option<StageState>, ExecError>;
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
    /// A stage failed; called before the failure ends the image.
    fn on_failure(&self, _job: &StageJob<'_>, _error: &ExecError) {}
}

/// Hooks that do nothing.
#[derive(Debug, Default)]
pub struct NoHooks;

impl Hooks for NoHooks {}
