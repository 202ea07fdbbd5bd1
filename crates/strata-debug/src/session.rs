//! The monitor over one failed step, or over a build paused at a breakpoint.
//!
//! # States
//!
//! | state | root layers (topmost first) | writes go to |
//! |---|---|---|
//! | failed (default) | broken upper, base lowers | `scratch/broken/upper` |
//! | base (`--base`) | base lowers | `scratch/base/upper` |
//! | fresh (`rerun --base`) | base lowers | `scratch/fresh/upper`, removed after the run |
//!
//! Session changes persist across `shell`, `exec` and `rerun` until `reset`. The broken upper
//! can be a lower because nothing mounts it as an upper any more: the failed run's container
//! is gone before the engine builds the [`Failure`]. Containers run one after another, on the
//! calling thread (the sandbox ties a container to the thread that spawned it), so no session
//! upper is ever mounted twice.
//!
//! # Paused builds
//!
//! [`Session::paused`] makes the same monitor the one of a build paused before a step (see
//! [`crate::step`]): the "failed" state is then the *paused* state (what the stage wrote so
//! far over its base, or a cached stage's result), `--base` still the state before the stage;
//! `next`, `continue`, `break`, `breakpoints` and `clear` work, `rerun` and `reload` do not.
//!
//! # Debugger image
//!
//! With [`Session::with_debugger_image`], `shell` starts in that image's root instead (its
//! own throwaway upper, `scratch/tool`), with the state's root file system mounted read-write
//! at [`DEBUGROOT`] (an overlay mount of the same layers and session upper) and the step's
//! mounts below it (`/cache` at `/debugroot/cache`); the toolbox is also at its usual place.
//! The shell runs as root in `/debugroot`, with the step's env but the image's default
//! `PATH`. Mountpoints the step's mounts need and the state lacks are created in the session
//! upper, like any other session change.

use std::io::{self, BufRead, Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;

use strata_layer::ChangeKind;
use strata_sandbox::{ContainerSpec, ExitStatus, Mount, MountKind, ProcessSpec, Sandbox, Stdio};

use crate::command::{self, Command, HELP};
use crate::scratch::{Scratch, Slot};
use crate::shell::{self, DEFAULT_PATH};
use crate::step::Breakpoints;
use crate::{Error, Failure};

/// Where a debugger image sees the failed step's root file system.
pub const DEBUGROOT: &str = "/debugroot";

/// Where the engine mounts, read-only, the source side of a failed copy (the image of a
/// `COPY --from` or werf `import:`, the build context, a git mapping's files); the monitor
/// names it ([`crate::Failure::source_side`]).
pub const SOURCE: &str = "/.strata/source";

/// How the monitor ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `exit`, `quit` or end of input: stop.
    Exit,
    /// `reload`: re-read the configuration and sources and build again with the same settings.
    Reload,
    /// At a pause, `next`: run one step and pause again.
    Next,
    /// At a pause, `continue`: run until the next breakpoint.
    Continue,
}

/// Which state a command runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Failed,
    Base,
}

impl State {
    fn of(base: bool) -> State {
        if base { State::Base } else { State::Failed }
    }

    fn slot(self) -> Slot {
        match self {
            State::Failed => Slot::Broken,
            State::Base => Slot::Base,
        }
    }

    fn name(self) -> &'static str {
        match self {
            State::Failed => "failed",
            State::Base => "base",
        }
    }
}

/// A debugger session over one [`Failure`]; see the module docs.
///
/// Dropping it removes everything it created in the scratch dir. It holds no mount and no
/// process between commands.
#[derive(Debug)]
pub struct Session<'a> {
    sandbox: &'a Sandbox,
    failure: Failure,
    scratch: Scratch,
    debugger: Option<Vec<PathBuf>>,
    /// Why `reload` cannot work here, if it cannot.
    no_reload: Option<String>,
    /// The build is paused, not failed: the breakpoints and why it paused.
    pause: Option<(&'a Breakpoints, String)>,
}

fn output_err(source: io::Error) -> Error {
    Error::Terminal {
        op: "write monitor output",
        source,
    }
}

impl<'a> Session<'a> {
    /// Starts a session. `scratch` must exist and be private to the session; the session
    /// owns its content (and removes it when dropped). The failure's upper and lower dirs
    /// must exist.
    pub fn new(sandbox: &'a Sandbox, failure: Failure, scratch: PathBuf) -> Result<Self, Error> {
        let spec = &failure.spec;
        let dirs = std::iter::once(("upper", &spec.upper))
            .chain(spec.lowers.iter().map(|lower| ("lower", lower)));
        for (what, path) in dirs {
            if !path.is_dir() {
                return Err(Error::StateGone {
                    what,
                    path: path.clone(),
                });
            }
        }
        Ok(Session {
            sandbox,
            scratch: Scratch::new(&scratch)?,
            failure,
            debugger: None,
            no_reload: None,
            pause: None,
        })
    }

    /// Makes `shell` run in a debugger image (its layers, topmost first) with the failed
    /// step's root at [`DEBUGROOT`]; see the module docs.
    pub fn with_debugger_image(mut self, lowers: Vec<PathBuf>) -> Self {
        self.debugger = Some(lowers);
        self
    }

    /// Makes `reload` fail with `reason` instead of ending the session: the sources are not
    /// there (a failure record debugged later, elsewhere).
    pub fn refuse_reload(mut self, reason: String) -> Self {
        self.no_reload = Some(reason);
        self
    }

    /// Makes this the monitor of a build paused before the step `failure` describes (its
    /// `spec` the paused state, `command` what runs next), `why` it paused; `break`,
    /// `breakpoints` and `clear` work on `breakpoints`. See the module docs.
    pub fn paused(mut self, breakpoints: &'a Breakpoints, why: String) -> Self {
        self.pause = Some((breakpoints, why));
        self
    }

    /// The name of a state in messages and prompts.
    fn state_name(&self, state: State) -> &'static str {
        match (state, &self.pause) {
            (State::Failed, Some(_)) => "paused",
            (state, _) => state.name(),
        }
    }

    /// The failure this session debugs.
    pub fn failure(&self) -> &Failure {
        &self.failure
    }

    /// The monitor loop.
    ///
    /// Prints what failed first (image, stage, command, exit code, location snippet, output
    /// tail), then reads commands with the prompt `IMAGE/STAGE (strata) ` until `exit`,
    /// `reload` or the end of input. With a terminal on stdin the user types at a line editor
    /// (rustyline: editing, history; Ctrl-C clears the line, Ctrl-D leaves) and `input` is not
    /// read; without one, commands come line by line from `input` (scriptable; each command
    /// is echoed after the prompt). `shell` (and on a terminal `exec`) use the process's own
    /// stdio (see [`Sandbox::run_interactive`]); everything else goes to `out`. A failing
    /// command prints `error: ...` and the loop goes on; only I/O errors on the terminal,
    /// `input` or `out` end it.
    pub fn monitor(
        &mut self,
        input: &mut dyn BufRead,
        out: &mut dyn Write,
    ) -> Result<Outcome, Error> {
        self.print_failure(out)?;
        let hint = match self.pause {
            Some(_) => {
                "`next` runs the step, `continue` goes on, `shell` looks around; `help` lists \
                 every command"
            }
            None => "`shell` opens a shell where the command failed; `help` lists every command",
        };
        writeln!(out, "{hint}").map_err(output_err)?;
        let prompt = format!("{}/{} (strata) ", self.failure.image, self.failure.stage);
        // On a terminal: line editing and history, and Ctrl-C only clears the line.
        let mut editor = match rustix::termios::isatty(rustix::stdio::stdin()) {
            true => Some(
                rustyline::DefaultEditor::new()
                    .map_err(|e| terminal_err("set up line editing", e))?,
            ),
            false => None,
        };
        loop {
            let line = match &mut editor {
                Some(editor) => {
                    out.flush().map_err(output_err)?;
                    match editor.readline(&prompt) {
                        Ok(line) => {
                            editor
                                .add_history_entry(line.as_str())
                                .map_err(|e| terminal_err("keep the monitor's history", e))?;
                            line
                        }
                        Err(rustyline::error::ReadlineError::Interrupted) => {
                            writeln!(out, "(Ctrl-C; `exit` leaves the debugger)")
                                .map_err(output_err)?;
                            continue;
                        }
                        Err(rustyline::error::ReadlineError::Eof) => return Ok(Outcome::Exit),
                        Err(e) => return Err(terminal_err("read monitor input", e)),
                    }
                }
                None => {
                    write!(out, "{prompt}").map_err(output_err)?;
                    out.flush().map_err(output_err)?;
                    let mut line = String::new();
                    let n = input
                        .read_line(&mut line)
                        .map_err(|source| Error::Terminal {
                            op: "read monitor input",
                            source,
                        })?;
                    if n == 0 {
                        writeln!(out).map_err(output_err)?;
                        return Ok(Outcome::Exit);
                    }
                    // Scripted input is not echoed by a terminal: show what runs.
                    writeln!(out, "{}", line.trim_end()).map_err(output_err)?;
                    line
                }
            };
            let command = match command::parse(&line) {
                Ok(Some(command)) => command,
                Ok(None) => continue,
                Err(e) => {
                    writeln!(out, "{e}").map_err(output_err)?;
                    continue;
                }
            };
            match self.run(command, out) {
                Ok(Some(outcome)) => return Ok(outcome),
                Ok(None) => {}
                Err(e @ Error::Terminal { .. }) => return Err(e),
                Err(e) => writeln!(out, "error: {e}").map_err(output_err)?,
            }
        }
    }

    fn run(&mut self, command: Command, out: &mut dyn Write) -> Result<Option<Outcome>, Error> {
        match command {
            Command::Help => {
                writeln!(out, "commands:").map_err(output_err)?;
                for (usage, text) in HELP {
                    writeln!(out, "  {usage:<22}{text}").map_err(output_err)?;
                }
            }
            Command::Info => self.print_failure(out)?,
            Command::Next
            | Command::Continue
            | Command::Break(_)
            | Command::Breakpoints
            | Command::Clear(_)
                if self.pause.is_none() =>
            {
                return Err(Error::NotPaused);
            }
            Command::Rerun { .. } | Command::Reload if self.pause.is_some() => {
                return Err(Error::Paused);
            }
            Command::Next => return Ok(Some(Outcome::Next)),
            Command::Continue => return Ok(Some(Outcome::Continue)),
            Command::Break(spec) => {
                let key = self.breakpoints().add(spec.clone());
                writeln!(out, "breakpoint {key}: {spec}").map_err(output_err)?;
            }
            Command::Breakpoints => {
                let list = self.breakpoints().list();
                if list.is_empty() {
                    writeln!(out, "no breakpoints").map_err(output_err)?;
                }
                for (key, spec) in list {
                    writeln!(out, "{key} {spec}").map_err(output_err)?;
                }
            }
            Command::Clear(key) => {
                if !self.breakpoints().clear(key) {
                    return Err(Error::NoBreakpoint(key));
                }
                writeln!(out, "cleared breakpoint {key}").map_err(output_err)?;
            }
            Command::Shell { base } => self.shell(State::of(base), out)?,
            Command::Rerun { base: false } => {
                if self.failure.rerun_args.is_empty() {
                    return Err(Error::NoArgs("in its file work"));
                }
                let process = self.process(self.failure.rerun_args.clone());
                let spec = self.state_spec(State::Failed, process)?;
                let status = self.run_piped(&spec, "rerun the failed command", out)?;
                print_status(out, status)?;
            }
            Command::Rerun { base: true } => {
                if self.failure.step_args.is_empty() {
                    return Err(Error::NoArgs(
                        "in its file work, so there is no step to run either",
                    ));
                }
                self.scratch.drop_slot(Slot::Fresh)?;
                let pair = self.scratch.pair(Slot::Fresh)?;
                let spec = ContainerSpec {
                    lowers: self.failure.spec.lowers.clone(),
                    upper: pair.upper,
                    work: pair.work,
                    scratch: self.scratch.container()?,
                    process: self.process(self.failure.step_args.clone()),
                    ..self.failure.spec.clone()
                };
                let status = self.run_piped(&spec, "rerun the step in a fresh base state", out);
                self.scratch.drop_slot(Slot::Fresh)?;
                print_status(out, status?)?;
            }
            Command::Exec { base, argv } => {
                let what = format!(
                    "run `{}` in the {} state",
                    argv.join(" "),
                    self.state_name(State::of(base))
                );
                let spec = self.state_spec(State::of(base), self.process(argv))?;
                // On a terminal the program gets one and our input, as `docker exec -it`;
                // scripted input stays the monitor's.
                let status = if rustix::termios::isatty(rustix::stdio::stdin()) {
                    out.flush().map_err(output_err)?;
                    self.run_interactive(spec, &what)?
                } else {
                    self.run_piped(&spec, &what, out)?
                };
                if !status.success() {
                    print_status(out, status)?;
                }
            }
            Command::Diff => {
                let changes = self.changes()?;
                if changes.is_empty() {
                    let text = match self.pause {
                        Some(_) => "the stage changed no file so far",
                        None => "the failed step changed no file",
                    };
                    writeln!(out, "{text}").map_err(output_err)?;
                }
                for change in changes {
                    let kind = match change.kind {
                        ChangeKind::Added => 'A',
                        ChangeKind::Modified => 'M',
                        ChangeKind::Deleted => 'D',
                    };
                    writeln!(out, "{kind} {}", change.path).map_err(output_err)?;
                }
            }
            Command::Env => {
                for var in &self.failure.spec.process.env {
                    writeln!(out, "{var}").map_err(output_err)?;
                }
            }
            Command::List => match &self.failure.listing {
                Some(listing) => write_block(out, listing)?,
                None => writeln!(out, "no source listing for this step").map_err(output_err)?,
            },
            Command::Reset => {
                for slot in [Slot::Broken, Slot::Base, Slot::Tool] {
                    self.scratch.drop_slot(slot)?;
                }
                writeln!(
                    out,
                    "dropped this session's changes: back to the state the failed command left"
                )
                .map_err(output_err)?;
            }
            Command::Reload => match &self.no_reload {
                Some(reason) => return Err(Error::NoReload(reason.clone())),
                None => return Ok(Some(Outcome::Reload)),
            },
            Command::Exit => return Ok(Some(Outcome::Exit)),
        }
        Ok(None)
    }

    /// What the step changed (the failed or paused state against the base), as `diff`
    /// shows it.
    pub fn changes(&self) -> Result<Vec<strata_layer::Change>, Error> {
        let spec = &self.failure.spec;
        strata_layer::changes(&spec.upper, &spec.lowers).map_err(|source| Error::Changes {
            upper: spec.upper.clone(),
            source,
        })
    }

    /// Runs `argv` in the failed (or paused) state as `exec` does, its output collected (an
    /// editor's `evaluate`); session changes persist as `exec`'s.
    pub fn exec_output(&self, argv: Vec<String>) -> Result<(ExitStatus, Vec<u8>), Error> {
        let what = format!(
            "run `{}` in the {} state",
            argv.join(" "),
            self.state_name(State::Failed)
        );
        let spec = self.state_spec(State::Failed, self.process(argv))?;
        let mut output = Vec::new();
        let status = self.run_piped(&spec, &what, &mut output)?;
        Ok((status, output))
    }

    /// The breakpoints of a paused build.
    fn breakpoints(&self) -> &'a Breakpoints {
        self.pause.as_ref().expect("only commands of a pause ask").0
    }

    fn print_failure(&self, out: &mut dyn Write) -> Result<(), Error> {
        let f = &self.failure;
        if let Some((_, why)) = &self.pause {
            writeln!(
                out,
                "paused ({why}) in image `{}`, stage `{}`\n  next: {}",
                f.image, f.stage, f.command
            )
            .map_err(output_err)?;
            if let Some(location) = &f.location {
                write_block(out, location)?;
            }
            return Ok(());
        }
        writeln!(
            out,
            "error: command failed with exit code {} in image `{}`, stage `{}`\n  command: {}",
            f.exit_code, f.image, f.stage, f.command
        )
        .map_err(output_err)?;
        if let Some(location) = &f.location {
            write_block(out, location)?;
        }
        if let Some(what) = &f.source_side
            && f.spec.mounts.iter().any(|m| m.target == SOURCE)
        {
            writeln!(out, "  {what} is at {SOURCE} (read-only)").map_err(output_err)?;
        }
        if f.output_tail.is_empty() {
            writeln!(out, "  (no output)").map_err(output_err)?;
        } else {
            writeln!(out, "  last output:").map_err(output_err)?;
            for line in &f.output_tail {
                writeln!(out, "  | {line}").map_err(output_err)?;
            }
        }
        Ok(())
    }

    /// The failed command's process with another argv.
    fn process(&self, args: Vec<String>) -> ProcessSpec {
        ProcessSpec {
            args,
            terminal: false,
            ..self.failure.spec.process.clone()
        }
    }

    /// The state's layers, without the session upper.
    fn lowers(&self, state: State) -> Vec<PathBuf> {
        let spec = &self.failure.spec;
        match state {
            State::Failed => std::iter::once(spec.upper.clone())
                .chain(spec.lowers.iter().cloned())
                .collect(),
            State::Base => spec.lowers.clone(),
        }
    }

    /// The failed command's spec in `state` (with its session upper) running `process`.
    fn state_spec(&self, state: State, process: ProcessSpec) -> Result<ContainerSpec, Error> {
        let pair = self.scratch.pair(state.slot())?;
        Ok(ContainerSpec {
            lowers: self.lowers(state),
            upper: pair.upper,
            work: pair.work,
            scratch: self.scratch.container()?,
            process,
            ..self.failure.spec.clone()
        })
    }

    fn shell(&self, state: State, out: &mut dyn Write) -> Result<(), Error> {
        let spec = match &self.debugger {
            Some(image) => self.debugger_spec(image, state)?,
            None => {
                let pair = self.scratch.pair(state.slot())?;
                let layers: Vec<PathBuf> = std::iter::once(pair.upper)
                    .chain(self.lowers(state))
                    .collect();
                let process = shell::process(&self.failure.spec, &layers)?;
                self.state_spec(state, process)?
            }
        };
        let mut spec = spec;
        let program = spec.process.args.join(" ");
        // The shell's prompt says where it is: `(app/install: failed state) /app # `.
        let short = match &self.debugger {
            Some(_) => format!("{} state in the debugger image", self.state_name(state)),
            None => format!("{} state", self.state_name(state)),
        };
        spec.process.env.retain(|e| !e.starts_with("PS1="));
        spec.process.env.push(format!(
            "PS1=({}/{}: {short}) \\w \\$ ",
            self.failure.image, self.failure.stage
        ));
        let place = match &self.debugger {
            Some(_) => format!(
                "the debugger image, the {} state at {DEBUGROOT}",
                self.state_name(state)
            ),
            None => format!("the {} state", self.state_name(state)),
        };
        writeln!(
            out,
            "{program} in {place}; changes stay until `reset`; `exit` comes back here"
        )
        .map_err(output_err)?;
        out.flush().map_err(output_err)?;
        let status = self.run_interactive(spec, &format!("run {program} in {place}"))?;
        if !status.success() {
            print_status(out, status)?;
        }
        Ok(())
    }

    /// Runs `spec` on our stdio ([`Sandbox::run_interactive`]); on a terminal with the user's
    /// `TERM` when the step set none (the step ran without a terminal, so had no `TERM`).
    fn run_interactive(&self, mut spec: ContainerSpec, what: &str) -> Result<ExitStatus, Error> {
        if rustix::termios::isatty(rustix::stdio::stdin())
            && !spec.process.env.iter().any(|e| e.starts_with("TERM="))
            && let Ok(term) = std::env::var("TERM")
        {
            spec.process.env.push(format!("TERM={term}"));
        }
        self.sandbox
            .run_interactive(&spec)
            .map_err(|source| Error::Sandbox {
                what: what.to_owned(),
                source,
            })
    }

    fn debugger_spec(&self, image: &[PathBuf], state: State) -> Result<ContainerSpec, Error> {
        let step = &self.failure.spec;
        let tool = self.scratch.pair(Slot::Tool)?;
        let session = self.scratch.pair(state.slot())?;
        let mut mounts = vec![Mount {
            target: DEBUGROOT.into(),
            source: PathBuf::new(),
            kind: MountKind::Overlay {
                lowers: self.lowers(state),
                upper: session.upper,
                work: session.work,
            },
            beneath: None,
        }];
        for mount in &step.mounts {
            mounts.push(Mount {
                target: format!("{DEBUGROOT}{}", mount.target),
                ..mount.clone()
            });
        }
        // The toolbox at its usual place too, for the shell fallback and PATH.
        mounts.extend(
            step.mounts
                .iter()
                .filter(|m| m.target.trim_end_matches('/') == shell::TOOLBOX)
                .cloned(),
        );
        let mut env: Vec<String> = step
            .process
            .env
            .iter()
            .filter(|e| !e.starts_with("PATH="))
            .cloned()
            .collect();
        env.push(format!("PATH={DEFAULT_PATH}"));
        let mut spec = ContainerSpec {
            lowers: image.to_vec(),
            upper: tool.upper.clone(),
            work: tool.work,
            scratch: self.scratch.container()?,
            process: ProcessSpec {
                args: vec![],
                env,
                cwd: DEBUGROOT.into(),
                user: "0:0".into(),
                terminal: false,
            },
            hostname: step.hostname.clone(),
            mounts,
            network: step.network,
            security: step.security,
        };
        let layers: Vec<PathBuf> = std::iter::once(tool.upper)
            .chain(image.iter().cloned())
            .collect();
        spec.process = shell::process(&spec, &layers)?;
        Ok(spec)
    }

    /// Runs `spec` with its output copied to `out` as it comes.
    fn run_piped(
        &self,
        spec: &ContainerSpec,
        what: &str,
        out: &mut dyn Write,
    ) -> Result<ExitStatus, Error> {
        let sandbox_err = |source| Error::Sandbox {
            what: what.to_owned(),
            source,
        };
        let mut container = self
            .sandbox
            .spawn(spec, Stdio::Piped)
            .map_err(sandbox_err)?;
        // On a terminal, Ctrl-C stops this container instead of signalling us (which would
        // end the session): our terminal sends it as a byte meanwhile.
        let quiet = QuietTerminal::new();
        let mut watch_input = quiet.is_some();
        if let Some(mut output) = container.take_output() {
            use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
            let stdin = rustix::stdio::stdin();
            let mut buf = [0u8; 8192];
            loop {
                let mut fds = vec![PollFd::new(output.as_fd(), PollFlags::POLLIN)];
                if watch_input {
                    fds.push(PollFd::new(stdin, PollFlags::POLLIN));
                }
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) | Err(nix::Error::EINTR) => {}
                    Err(e) => {
                        return Err(Error::ContainerOutput {
                            what: what.to_owned(),
                            source: io::Error::from_raw_os_error(e as i32),
                        });
                    }
                }
                let typed = fds.get(1).and_then(|fd| fd.revents()).is_some_and(|r| {
                    r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
                });
                drop(fds);
                if typed {
                    // What else is typed is dropped: the command reads no input, as in the build.
                    let n = rustix::io::read(stdin, &mut buf).unwrap_or(0);
                    watch_input = n > 0;
                    if buf[..n].contains(&CTRL_C) {
                        container.kill().map_err(sandbox_err)?;
                        writeln!(out, "^C: stopped").map_err(output_err)?;
                    }
                    continue;
                }
                match output.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        out.write_all(&buf[..n]).map_err(output_err)?;
                        out.flush().map_err(output_err)?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(source) => {
                        return Err(Error::ContainerOutput {
                            what: what.to_owned(),
                            source,
                        });
                    }
                }
            }
        }
        drop(quiet);
        // Dropping the container on an early return above kills and reaps it.
        container.wait().map_err(sandbox_err)
    }
}

/// The byte a terminal sends for Ctrl-C (with `ISIG` off).
const CTRL_C: u8 = 0x03;

/// Our terminal without signals from Ctrl-C, echo and line buffering, while a container's
/// piped output is shown; restored when dropped. `None` when stdin is no terminal.
struct QuietTerminal {
    original: rustix::termios::Termios,
}

impl QuietTerminal {
    fn new() -> Option<QuietTerminal> {
        use rustix::termios::{LocalModes, OptionalActions, SpecialCodeIndex};
        let stdin = rustix::stdio::stdin();
        if !rustix::termios::isatty(stdin) {
            return None;
        }
        let original = rustix::termios::tcgetattr(stdin).ok()?;
        let mut quiet = original.clone();
        quiet.local_modes -= LocalModes::ISIG | LocalModes::ICANON | LocalModes::ECHO;
        quiet.special_codes[SpecialCodeIndex::VMIN] = 1;
        quiet.special_codes[SpecialCodeIndex::VTIME] = 0;
        rustix::termios::tcsetattr(stdin, OptionalActions::Now, &quiet).ok()?;
        Some(QuietTerminal { original })
    }
}

impl Drop for QuietTerminal {
    fn drop(&mut self) {
        // Nothing sensible to do if the terminal is gone.
        let _ = rustix::termios::tcsetattr(
            rustix::stdio::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.original,
        );
    }
}

fn terminal_err(op: &'static str, e: rustyline::error::ReadlineError) -> Error {
    Error::Terminal {
        op,
        source: match e {
            rustyline::error::ReadlineError::Io(e) => e,
            e => io::Error::other(e),
        },
    }
}

fn print_status(out: &mut dyn Write, status: ExitStatus) -> Result<(), Error> {
    match status {
        ExitStatus::Exited(code) => writeln!(out, "exit code {code}"),
        ExitStatus::Signaled(sig) => {
            writeln!(out, "exit code {} (killed by signal {sig})", status.code())
        }
    }
    .map_err(output_err)
}

/// Writes `text`, ending it with a newline if it has none.
fn write_block(out: &mut dyn Write, text: &str) -> Result<(), Error> {
    out.write_all(text.as_bytes()).map_err(output_err)?;
    if !text.ends_with('\n') {
        writeln!(out).map_err(output_err)?;
    }
    Ok(())
}
