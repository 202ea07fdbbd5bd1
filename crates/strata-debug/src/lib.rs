//! The build debugger: a monitor over a failed step, and introspection shells into any state.
//!
//! # What it owns
//!
//! When a command of a build step fails, the engine keeps the failed run's directories and
//! hands over a [`Failure`]: the exact [`ContainerSpec`] the command ran with (base layers,
//! the *broken* upper dir holding what the step wrote before failing, env, mounts, user, cwd,
//! host name, network) plus what to show. [`Session::monitor`] then:
//!
//! 1. prints what failed (image, stage, command, exit code, the source snippet, the output's
//!    tail), then
//! 2. reads commands at the `IMAGE/STAGE (strata) ` prompt (see [`command::HELP`]; on a
//!    terminal with line editing and history, and Ctrl-C never ends the session): `shell`, `rerun`,
//!    `exec`, `diff`, `env`, `list`, `info`, `reset`, `reload`, `exit`; with `--base` the
//!    same in the state before the step (the buildkit#1472 design: switch between the broken
//!    and the initial state, restore and try again);
//! 3. returns [`Outcome::Reload`] (the engine re-reads config and sources and builds again
//!    with the same settings) or [`Outcome::Exit`]. Where the sources are not there (a
//!    failure record opened later, elsewhere), the engine says why with
//!    [`Session::refuse_reload`] and `reload` prints that instead.
//!
//! [`step`] holds the step debugger's breakpoints: where a build pauses *before* a step
//! (`break`, `next`, `continue`, buildg's commands), cached steps included; at a pause the
//! engine opens the same monitor with [`Session::paused`], the paused state in place of the
//! failed one.
//!
//! [`shell`] is the introspection side (werf's `--introspect-stage`): an interactive shell in
//! any state, changes discarded.
//!
//! # What it does not do
//!
//! It never changes a plan, a layer or the build cache: every container it starts writes
//! into its own session upper dirs under the caller's scratch dir ([`scratch`] has the
//! layout), and the failed upper and the base layers are only ever overlay *lower* layers.
//! [`Session`] removes its dirs when dropped. It does not build, resolve images or render
//! source snippets (the engine passes [`Failure::location`] and [`Failure::listing`]
//! rendered; [`listing()`] renders the latter from the plan's source map). Mounts are passed through as the build had
//! them: a read-write cache mount is read-write here too.
//!
//! # Identical environment
//!
//! `exec` and `rerun` run with the failed command's spec unchanged except for the argv and
//! the root's layers: same env, user, cwd, host name, mounts and network. The engine makes
//! that spec the one the failed command started with: a Dockerfile `RUN`'s env with its
//! `ARG`s and `secret,env=` variables, and for a stage script the env and directory the
//! script recorded before the failed line (after the `cd`s and `export`s of the lines
//! before it; shell variables that were not exported are not carried). `shell` differs
//! only in appending the toolbox's `bin` to `PATH` when it is not there yet, and in falling
//! back to the toolbox's bash when the state has no `/bin/sh` (see [`shell()`]). On a
//! terminal, `shell` and `exec` get a pty and the user's input, and the user's `TERM` when
//! the step set none (it ran without a terminal).
//!
//! # Example
//!
//! ```no_run
//! use std::io::{BufReader, Write};
//! use strata_debug::{Failure, Outcome, Session};
//! use strata_sandbox::Sandbox;
//!
//! # fn failed_step() -> Failure { unimplemented!() }
//! let sandbox = Sandbox::new(vec!["/proc/self/exe".into(), "__sandbox-init".into()]);
//! let failure: Failure = failed_step(); // from the engine
//! let scratch = tempfile_dir_for_the_session();
//! let mut session = Session::new(&sandbox, failure, scratch)?;
//! let stdin = std::io::stdin();
//! let mut input = BufReader::new(stdin.lock());
//! let mut out = std::io::stdout();
//! match session.monitor(&mut input, &mut out)? {
//!     Outcome::Reload => { /* drop the session, build again with the same settings */ }
//!     Outcome::Exit => {}
//!     // Only a paused build's monitor (`Session::paused`) ends with these.
//!     Outcome::Next | Outcome::Continue => {}
//! }
//! out.flush()?;
//! # fn tempfile_dir_for_the_session() -> std::path::PathBuf { unimplemented!() }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod command;
mod listing;
pub mod lookup;
pub mod scratch;
mod session;
mod shell;
pub mod step;

use std::io;
use std::path::PathBuf;

use strata_sandbox::ContainerSpec;

pub use listing::listing;
pub use session::{DEBUGROOT, Outcome, SOURCE, Session};
pub use shell::{DEFAULT_PATH, TOOLBOX, TOOLBOX_BASH, shell};

/// The exact environment of a failed step, preserved by the engine.
///
/// The engine must keep every directory it names (the spec's upper and lowers, bind mount
/// sources, the toolbox) until the session is dropped, and must not mount `spec.upper`
/// anywhere meanwhile: the debugger uses it as a read-only lower layer.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    /// The image being built.
    pub image: String,
    /// The stage of the step.
    pub stage: String,
    /// The failing command's text, as the user wrote it.
    pub command: String,
    /// Its exit code (128 + N for signal N).
    pub exit_code: i32,
    /// The last lines of its output.
    pub output_tail: Vec<String>,
    /// The rendered `--> strata.yaml:14:5` plus snippet, if the step has a source span.
    pub location: Option<String>,
    /// The rendered source around the failing command, for `list`.
    pub listing: Option<String>,
    /// The spec the failed command ran with: `lowers` = the base state (topmost first),
    /// `upper` = the broken upper dir; env, mounts, user, cwd, host name and network exactly
    /// as in the build. `work`, `scratch` and `process.args` are not used.
    pub spec: ContainerSpec,
    /// The argv that reruns only the failing command in that environment.
    pub rerun_args: Vec<String>,
    /// The argv that reruns the whole step from its start (`rerun --base`).
    pub step_args: Vec<String>,
    /// What the spec mounts read-only at [`SOURCE`] for a step that failed copying files
    /// (`the image copied from`, `the build context`), if anything.
    #[serde(default)]
    pub source_side: Option<String>,
}

/// Errors of [`Session`] and [`shell`].
///
/// In the monitor only [`Error::Terminal`] ends the session; every other error is printed
/// and the monitor carries on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the monitor's input or writing its output failed.
    #[error("{op}: {source}")]
    Terminal {
        /// What was being done, e.g. `"write monitor output"`.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// A container could not be started or waited for.
    #[error("{what}: {source}")]
    Sandbox {
        /// What was being run, e.g. "run `ls /` in the failed state".
        what: String,
        /// The sandbox's error.
        source: strata_sandbox::Error,
    },
    /// Reading a container's output failed (the container is killed).
    #[error("{what}: read the output: {source}")]
    ContainerOutput {
        /// What was being run.
        what: String,
        /// The OS error.
        source: io::Error,
    },
    /// A directory of the failed step is gone.
    #[error(
        "the failed step's {what} dir {} does not exist; the engine must keep it until the \
         debugger session ends",
        path.display()
    )]
    StateGone {
        /// `"upper"` or `"lower"`.
        what: &'static str,
        /// The missing dir.
        path: PathBuf,
    },
    /// `reload` where the sources are not there.
    #[error("reload is not possible here: {0}")]
    NoReload(String),
    /// The failure carries no argv for a rerun: the step failed in its file work (git,
    /// copies, imports), before any command ran.
    #[error(
        "no command to rerun: the step failed before any command ran ({0}); look at the state with `shell` or `exec`, fix the config and `reload`"
    )]
    NoArgs(&'static str),
    /// Neither the state nor the toolbox has a shell.
    #[error(
        "this state has no /bin/sh and no toolbox is mounted at {}; run programs with \
         `exec`, or debug with a debugger image",
        TOOLBOX
    )]
    NoShell,
    /// Listing what the failed step changed failed.
    #[error("list what the failed step changed in {}: {source}", upper.display())]
    Changes {
        /// The broken upper dir.
        upper: PathBuf,
        /// The layer crate's error.
        source: strata_layer::Error,
    },
    /// The session's directories.
    #[error(transparent)]
    Scratch(#[from] scratch::Error),
    /// Looking for the shell in the layers.
    #[error(transparent)]
    Lookup(#[from] lookup::Error),
    /// A command of a paused build where the build failed.
    #[error("the build is not paused: `next`, `continue` and breakpoints work at a pause")]
    NotPaused,
    /// `rerun` or `reload` where the build is paused.
    #[error(
        "the build is paused before the step, nothing failed: `next` runs it, `continue` goes on"
    )]
    Paused,
    /// `clear` of a key that is no breakpoint.
    #[error("there is no breakpoint {0}; `breakpoints` lists them")]
    NoBreakpoint(usize),
}
