//! Integration tests for strata-git against real repositories made with the `git` CLI.
//! Modules mirror `src/`.

mod archive;
mod changes;
mod dirty;
mod mask;
mod remote;
mod repo;
mod snapshot;
mod util;
mod worktree;
