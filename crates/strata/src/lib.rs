//! strata's user operations, one function each, and the local worker that wires the sandbox,
//! the layer writer and the store into the solver's [`strata_solver::Executor`].
//!
//! | operation | function |
//! |---|---|
//! | `strata import SRC NAME` | [`ops::import::import`] |
//! | `strata build` | [`ops::build::build`] |
//! | `strata images` | [`ops::images::images`] |
//! | `strata gc` (`prune`) | [`ops::gc::gc`] |
//! | `strata store check` | [`ops::check::check`] |
//! | `strata inspect IMAGE` | [`ops::inspect::inspect`] |
//! | `strata rmi IMAGE...`, `strata tag SRC DST` | [`ops::images::remove`], [`ops::images::tag`] |
//! | `strata history IMAGE` | [`ops::history::history`] |
//! | `strata pull REF` | [`ops::pull::pull`] |
//! | `strata run IMAGE [CMD...]` | [`ops::run::run`] |
//! | `strata export IMAGE -o FILE` | [`ops::export::export`] |
//!
//! Every operation takes a [`Context`] (the store and how to start sandboxes), its options, and
//! where to write results; progress goes to a [`strata_progress::Sink`]. Nothing here parses
//! arguments or draws on a terminal.
#![deny(missing_docs)]

pub mod ansible;
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
pub mod publish;
pub mod remote;
mod reuse;
mod tmp_dirs;
pub mod toolbox;
mod workdir;
pub mod worker;

pub use context::{Context, default_store_root};

/// Now as unix seconds.
pub(crate) fn unix_now() -> u64 {
    (unix_millis() / 1000) as u64
}

/// Milliseconds since the Unix epoch (0 on a clock before it).
pub(crate) fn unix_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// An error and its causes on one line, `outer: cause: cause`, leaving out each cause whose
/// text the line already holds: many messages embed their cause (`... failed: {source}`), so
/// `{:#}` would say the same thing two or three times.
pub fn error_line(err: &anyhow::Error) -> String {
    error_chain(err.as_ref())
}

/// [`error_line`] of any error.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    for cause in std::iter::successors(Some(err), |e| e.source()) {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_line_says_each_cause_once() {
        let io = std::io::Error::other("connection refused");
        let err = anyhow::Error::new(io)
            .context("GET manifest (http://h/v2/) failed: connection refused")
            .context("pull h/a:1");
        assert_eq!(
            super::error_line(&err),
            "pull h/a:1: GET manifest (http://h/v2/) failed: connection refused"
        );
    }
}
