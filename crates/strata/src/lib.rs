//! strata's user operations, one function each, and the local worker that wires the sandbox,
//! the layer writer and the store into the solver's [`strata_solver::Executor`].
//!
//! | operation | function |
//! |---|---|
//! | `strata import SRC NAME` | [`ops::import::import`] |
//! | `strata build` | [`ops::build::build`] |
//! | `strata images` | [`ops::images::images`] |
//! | `strata inspect IMAGE` | [`ops::inspect::inspect`] |
//! | `strata run IMAGE -- CMD` | [`ops::run::run`] |
//! | `strata export IMAGE -o FILE` | [`ops::export::export`] |
//!
//! Every operation takes a [`Context`] (the store and how to start sandboxes), its options, and
//! where to write results; progress goes to a [`strata_progress::Sink`]. Nothing here parses
//! arguments or draws on a terminal.
#![deny(missing_docs)]

mod beneath;
mod context;
pub mod copy;
mod download;
pub mod files;
pub mod git;
pub mod image;
pub mod import;
pub mod oci;
pub mod ops;
pub mod owner;
pub mod remote;
pub mod toolbox;
mod workdir;
pub mod worker;

pub use context::{Context, Failure, default_store_root};

/// Now as unix seconds.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
