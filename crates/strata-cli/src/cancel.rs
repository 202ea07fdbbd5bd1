//! Ctrl-C and SIGTERM cancel a build: the first sets the flag the solver and the worker look
//! at (a running step's container is killed, its dirs released, nothing of the stage is
//! committed, and the build ends with exit status 130); a second one while cancelling ends
//! the process at once with the same status (what it leaves in the store's `tmp/` the next
//! build's garbage collection removes).
//!
//! SIGTERM exits 130 too, not 143: the status says "the build was cancelled", whichever
//! signal asked for it.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context as _;
use signal_hook::consts::{SIGINT, SIGTERM};

/// The exit status of a cancelled build.
pub const EXIT_CANCELLED: i32 = 130;

/// Installs the handlers; returns the flag they set.
pub fn on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag as it was before this signal set it.
        signal_hook::flag::register_conditional_shutdown(signal, EXIT_CANCELLED, flag.clone())
            .context("install the signal handlers")?;
        signal_hook::flag::register(signal, flag.clone()).context("install the signal handlers")?;
    }
    Ok(flag)
}
