//! The worker's errors. They reach the solver boxed in [`ExecError::Executor`] (or, for a
//! step, [`ExecError::Step`]) with their type and causes, and the CLI renders them.

use std::path::PathBuf;

use strata_solver::ExecError;

use super::mounts;

/// Why the local worker could not build a stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A store operation failed.
    #[error("{op}")]
    Store {
        /// What the worker was doing.
        op: &'static str,
        /// Why it failed.
        #[source]
        source: strata_store::Error,
    },
    /// Turning a step's upper dir into a layer failed.
    #[error("{op}")]
    Layer {
        /// What the worker was doing.
        op: &'static str,
        /// Why it failed.
        #[source]
        source: strata_layer::Error,
    },
    /// The sandbox could not run a step's container.
    #[error("{op}")]
    Sandbox {
        /// What the worker was doing.
        op: &'static str,
        /// Why it failed.
        #[source]
        source: strata_sandbox::Error,
    },
    /// The step's mounts could not be set up.
    #[error(transparent)]
    Mounts(#[from] mounts::Error),
    /// A secret's file could not be read.
    #[error("read secret {id} from {}", .path.display())]
    Secret {
        /// The secret id.
        id: String,
        /// Its file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A base image that is not in the store, with no registry to pull it from.
    #[error("`{reference}` is not in the local store; {hint}")]
    BaseMissing {
        /// The reference, normalized.
        reference: String,
        /// How to get it.
        hint: String,
    },
    /// A base image that is not in the store and could not be pulled.
    #[error(
        "`{reference}` is not in the local store and pulling it failed; check the reference and the registry, {hint}"
    )]
    BasePull {
        /// The reference, normalized.
        reference: String,
        /// How else to get it.
        hint: String,
        /// Why the pull failed.
        #[source]
        source: anyhow::Error,
    },
    /// A step of the worker done by this crate's image, git, remote and file modules, which
    /// return `anyhow` errors (their causes kept).
    #[error("{op}")]
    Op {
        /// What the worker was doing.
        op: &'static str,
        /// Why it failed.
        #[source]
        source: anyhow::Error,
    },
}

impl From<Error> for ExecError {
    fn from(e: Error) -> ExecError {
        ExecError::executor(e)
    }
}

/// `map_err` for a store error while doing `op`.
pub(super) fn store(op: &'static str) -> impl FnOnce(strata_store::Error) -> ExecError {
    move |source| Error::Store { op, source }.into()
}

/// `map_err` for a layer error while doing `op`.
pub(super) fn layer(op: &'static str) -> impl FnOnce(strata_layer::Error) -> ExecError {
    move |source| Error::Layer { op, source }.into()
}

/// `map_err` for a sandbox error while doing `op`.
pub(super) fn sandbox(op: &'static str) -> impl FnOnce(strata_sandbox::Error) -> ExecError {
    move |source| Error::Sandbox { op, source }.into()
}

/// `map_err` for an error of one of this crate's modules while doing `op`.
pub(super) fn op<E: Into<anyhow::Error>>(op: &'static str) -> impl FnOnce(E) -> ExecError {
    move |source| {
        Error::Op {
            op,
            source: source.into(),
        }
        .into()
    }
}
