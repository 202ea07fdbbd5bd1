//! Errors of a solve, with the user's source attached.

use strata_plan::{SourceMap, Span};

use crate::ExecError;

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
    /// The failed stage's digest (the executor may keep its state under it for debugging).
    pub digest: Option<strata_digest::Digest>,
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
        source: ExecError,
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
        source: ExecError,
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

    /// The full report: what failed, where in the user's files, and the output tail.
    pub fn render(&self, sources: &SourceMap) -> String {
        let mut out = format!("error: {self}\n");
        let span = match self {
            Error::Base { span, .. } | Error::Stage { span, .. } => *span,
            Error::CommandFailed(f) => f.span,
            _ => None,
        };
        if let Some(span) = span {
            out.push_str(&sources.snippet(span, ""));
        }
        if let Error::CommandFailed(f) = self
            && !f.output_tail.is_empty()
        {
            out.push_str("last output lines:\n");
            for line in &f.output_tail {
                out.push_str("  ");
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}
