//! Errors of a solve, with the user's source attached.

use strata_plan::Span;

use crate::{ExecError, Kept};

/// A command that exited non-zero, with where it is written and what it printed last.
#[derive(Debug)]
pub struct CommandFailure {
    /// The image.
    pub image: String,
    /// The stage.
    pub stage: String,
    /// The command text.
    pub command: String,
    /// Where the command is written.
    pub span: Option<Span>,
    /// Its exit code.
    pub exit_code: i32,
    /// The last lines of its output.
    pub output_tail: Vec<String>,
    /// The failed stage's digest.
    pub digest: Option<strata_digest::Digest>,
    /// What the executor kept of the failed run, for a debugger.
    pub kept: Option<Kept>,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The base of an image could not be resolved.
    #[error("image `{image}`: cannot use base `{reference}`: {source}")]
    Base {
        /// The image.
        image: String,
        /// The base reference.
        reference: String,
        /// Where it is written.
        span: Option<Span>,
        /// Why.
        source: Box<ExecError>,
    },
    /// A command of a stage failed.
    #[error(
        "image `{}`, stage `{}`: command exited with code {}: {}",
        .0.image,
        .0.stage,
        .0.exit_code,
        .0.command
    )]
    CommandFailed(Box<CommandFailure>),
    /// A stage failed for another reason.
    #[error("image `{image}`, stage `{stage}`: {source}")]
    Stage {
        /// The image.
        image: String,
        /// The stage.
        stage: String,
        /// Where the stage is written.
        span: Option<Span>,
        /// Why.
        source: Box<ExecError>,
    },
    /// An image name given to select images is not in the plan.
    #[error("no image `{name}` in the config; images are: {known}")]
    UnknownImage {
        /// The name asked for.
        name: String,
        /// The names there are.
        known: String,
    },
    /// The build was cancelled.
    #[error("build cancelled")]
    Cancelled,
}

impl Error {
    /// The exit code a command-line front end should end with.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::CommandFailed(f) if f.exit_code != 0 => f.exit_code,
            Error::Cancelled => 130,
            _ => 1,
        }
    }

    /// Where in the user's files the failure is written.
    pub fn span(&self) -> Option<Span> {
        match self {
            Error::Base { span, .. } | Error::Stage { span, .. } => *span,
            Error::CommandFailed(f) => f.span,
            _ => None,
        }
    }

    /// The last lines a failed command printed (empty for other failures).
    pub fn output_tail(&self) -> &[String] {
        match self {
            Error::CommandFailed(f) => &f.output_tail,
            _ => &[],
        }
    }

    /// What the executor kept of the failed step (see [`Kept`]).
    pub fn kept(&self) -> Option<&Kept> {
        match self {
            Error::CommandFailed(f) => f.kept.as_ref(),
            Error::Stage { source, .. } => source.kept(),
            _ => None,
        }
    }

    /// Takes what the executor kept of the failed step (see [`Kept`]).
    pub fn take_kept(&mut self) -> Option<Kept> {
        match self {
            Error::CommandFailed(f) => f.kept.take(),
            Error::Stage { source, .. } => source.take_kept(),
            _ => None,
        }
    }
}

/// How a solve failed: the failure that ended it and those of the images that were still
/// building then and failed too (in the order they failed), each with what the executor kept
/// of it, so that every failed image can be looked into.
#[derive(Debug)]
pub struct Failures {
    /// The first failure: the build's.
    pub first: Error,
    /// The other images' failures.
    pub others: Vec<Error>,
}

impl From<Error> for Failures {
    fn from(first: Error) -> Failures {
        Failures {
            first,
            others: Vec::new(),
        }
    }
}
