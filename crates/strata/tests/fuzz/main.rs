//! Bounded fuzzing of every parser strata runs on user or network input, on the stable
//! toolchain and in the normal test suite: config templates, YAML configs, Dockerfiles,
//! `.dockerignore` and git masks, and layer tars.
//!
//! Each target has a structure-aware proptest generator that builds inputs from the real
//! shapes of its language (actions and pipelines, instructions with flags and heredocs, tar
//! headers with mutated fields), including unclosed and hostile pieces, and one property: the
//! parser ends with a result or an error, never a panic or a hang. Every case runs on its own
//! thread with the stack of a main thread under a watchdog ([`bounded`]) that fails the case
//! when it takes more than [`WATCHDOG`]: a bound, not a timing.
//!
//! `STRATA_FUZZ_CASES` sets the cases per target (default [`DEFAULT_CASES`], a few seconds in
//! all); docs/fuzzing.md records longer runs and what they found.

mod config;
mod dockerfile;
mod masks;
mod tar;
mod template;

use std::sync::mpsc;
use std::time::Duration;

use proptest::test_runner::Config;

/// Cases per target unless `STRATA_FUZZ_CASES` says otherwise.
const DEFAULT_CASES: u32 = 48;

/// How long one case may take before it counts as a hang.
const WATCHDOG: Duration = Duration::from_secs(20);

/// The stack each case runs with: what the CLI's main thread has.
const STACK: usize = 8 << 20;

/// The proptest configuration of every target.
pub fn config() -> Config {
    let cases = std::env::var("STRATA_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    Config {
        cases,
        // No regression files written into the source tree; findings become named tests.
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    }
}

/// Runs `f` on a fresh thread with [`STACK`]; panics (failing the case) if it panics or
/// takes longer than [`WATCHDOG`]. `input` is shown in the failure.
pub fn bounded<T: Send + 'static>(input: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || {
            let out = f();
            let _ = tx.send(());
            out
        })
        .expect("spawn a fuzz case thread");
    match rx.recv_timeout(WATCHDOG) {
        // Finished (or panicked, which drops the sender).
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Ok(out) => out,
            Err(_) => panic!("the case panicked on input {input:?}"),
        },
        // The thread is left spinning; the test fails with the input.
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("the case did not end within {WATCHDOG:?} on input {input:?}")
        }
    }
}
