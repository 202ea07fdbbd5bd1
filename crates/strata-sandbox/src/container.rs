//! The caller's side: starting the init helper and waiting for the container.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use crate::process::{self, CONSOLE_FD_ENV, PARENT_ENV, Report, SPEC_FD_ENV, STATUS_FD_ENV};
use crate::pty::{self, RawModeGuard, WinchWatcher};
use crate::spec::ContainerSpec;

/// Errors of [`Sandbox`] and [`Container`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Something failed before the user's command started (bad spec, mount, cwd, user,
    /// missing program). The message says what, in lower case.
    #[error("container setup failed: {0}")]
    Setup(String),
    /// The command could not be executed: its program is missing (`code` 127) or is not
    /// executable (126); `code` is what a shell (and docker) exits with then.
    #[error("container setup failed: {message}")]
    Exec {
        /// What failed, e.g. `exec "nope": executable file not found in $PATH`.
        message: String,
        /// 127 or 126.
        code: i32,
    },
    /// The init helper could not be started.
    #[error("start sandbox init helper {program:?}: {source}")]
    Spawn {
        /// The program of [`Sandbox::new`]'s command.
        program: OsString,
        /// The OS error.
        source: io::Error,
    },
    /// An I/O operation on the caller's side failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done, e.g. `"wait for sandbox init helper"`.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// A terminal operation of [`Sandbox::run_interactive`] failed.
    #[error(transparent)]
    Pty(#[from] pty::Error),
}

fn io_err(op: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io { op, source }
}

/// How the container's stdio is connected.
#[derive(Debug)]
pub enum Stdio {
    /// The caller's own stdin, stdout and stderr.
    Inherit,
    /// `/dev/null` for all three.
    Null,
    /// stdin `/dev/null`; stdout and stderr merged into one pipe, read it through
    /// [`Container::take_output`].
    Piped,
    /// A console: the container opens a pty on its own devpts as the command's stdio and
    /// sends the master over this socket (the second end of [`pty::console_socket_pair`]);
    /// the helper itself gets `/dev/null`.
    Console(OwnedFd),
    /// Explicit fds (e.g. a pty slave three times).
    Fds {
        /// The container's fd 0.
        stdin: OwnedFd,
        /// The container's fd 1.
        stdout: OwnedFd,
        /// The container's fd 2.
        stderr: OwnedFd,
    },
}

/// How the command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// `exit(code)`.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

impl ExitStatus {
    /// Exited with 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }

    /// The shell's view: the exit code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled(sig) => 128 + sig,
        }
    }
}

/// Starts containers through a re-executed init helper.
#[derive(Clone, Debug)]
pub struct Sandbox {
    init: Vec<OsString>,
}

impl Sandbox {
    /// `init` is the command that starts a process calling [`crate::init_main`], e.g.
    /// `["/proc/self/exe", "__sandbox-init"]` for a binary that dispatches on that argument.
    pub fn new(init: Vec<OsString>) -> Sandbox {
        Sandbox { init }
    }

    /// Starts the container and returns without waiting for it.
    ///
    /// Spec errors found on the host come back here as [`Error::Setup`]; errors inside the
    /// container (mounts, cwd, user, exec) come back from [`Container::wait`] (or
    /// [`Container::wait_started`]).
    ///
    /// The container dies with the *thread* calling `spawn` (PR_SET_PDEATHSIG follows the
    /// forking thread): call `spawn` and `wait` from the same, long-lived thread.
    pub fn spawn(&self, spec: &ContainerSpec, stdio: Stdio) -> Result<Container, Error> {
        spec.validate().map_err(Error::Setup)?;
        let Some((program, args)) = self.init.split_first() else {
            return Err(Error::Setup("the sandbox init command is empty".into()));
        };
        let json = serde_json::to_vec(spec)
            .map_err(|e| Error::Setup(format!("encode container spec: {e}")))?;
        let pipe = || {
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .map_err(|e| io_err("create pipe")(e.into()))
        };
        let (spec_rd, spec_wr) = pipe()?;
        let (status_rd, status_wr) = pipe()?;

        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .env(SPEC_FD_ENV, spec_rd.as_raw_fd().to_string())
            .env(STATUS_FD_ENV, status_wr.as_raw_fd().to_string())
            .env(PARENT_ENV, std::process::id().to_string());
        let mut output = None;
        let mut console = None;
        match stdio {
            Stdio::Inherit => {
                cmd.stdin(std::process::Stdio::inherit())
                    .stdout(std::process::Stdio::inherit())
                    .stderr(std::process::Stdio::inherit());
            }
            Stdio::Null => {
                cmd.stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
            }
            Stdio::Console(socket) => {
                cmd.stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .env(CONSOLE_FD_ENV, socket.as_raw_fd().to_string());
                console = Some(socket);
            }
            Stdio::Piped => {
                let (rd, wr) = pipe()?;
                let wr2 = wr.try_clone().map_err(io_err("dup output pipe"))?;
                cmd.stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::from(wr))
                    .stderr(std::process::Stdio::from(wr2));
                output = Some(File::from(rd));
            }
            Stdio::Fds {
                stdin,
                stdout,
                stderr,
            } => {
                cmd.stdin(std::process::Stdio::from(stdin))
                    .stdout(std::process::Stdio::from(stdout))
                    .stderr(std::process::Stdio::from(stderr));
            }
        }
        let handed = [
            Some(spec_rd.as_raw_fd()),
            Some(status_wr.as_raw_fd()),
            console.as_ref().map(|socket| socket.as_raw_fd()),
        ];
        // SAFETY: runs between fork and exec in the child of a possibly multi-threaded
        // process: only async-signal-safe syscalls (fcntl, prctl, setsid), no allocation.
        unsafe {
            cmd.pre_exec(move || {
                // Hand the pipe ends (and the console socket) to the helper: clear
                // close-on-exec in the child only.
                for raw in handed.into_iter().flatten() {
                    rustix::io::fcntl_setfd(
                        BorrowedFd::borrow_raw(raw),
                        rustix::io::FdFlags::empty(),
                    )?;
                }
                // Tie the helper's life to ours (prctl(2) PR_SET_PDEATHSIG; survives execve
                // for non-set-id binaries). The helper re-checks getppid() for the race.
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))?;
                // Its own session and process group: terminal signals of the caller's tty do
                // not reach the container, and kill() can target the group.
                rustix::process::setsid()?;
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            program: program.clone(),
            source,
        })?;
        // Close our copies of the child's ends (the output pipe's write end lives in `cmd`):
        // EOF on the read ends must only depend on the container.
        drop(cmd);
        drop(spec_rd);
        drop(status_wr);
        drop(console);
        // EPIPE means the helper died early; `wait` reports how.
        let _ = File::from(spec_wr).write_all(&json);
        Ok(Container {
            child: Some(child),
            output,
            status: Some(File::from(status_rd)),
            reports: Vec::new(),
        })
    }

    /// Starts the container on a console of its own (a pty on its devpts, `spec.process.
    /// terminal` forced on) sized `size`, and returns it with the pty's master: `None` when
    /// setup failed before the console existed ([`Container::wait`] says why). Nothing copies
    /// the master: the caller reads the command's output from it and writes its input.
    pub fn spawn_console(
        &self,
        spec: &ContainerSpec,
        size: Option<pty::WindowSize>,
    ) -> Result<(Container, Option<OwnedFd>), Error> {
        let mut spec = spec.clone();
        spec.process.terminal = true;
        let (socket, container_end) = pty::console_socket_pair()?;
        let container = self.spawn(&spec, Stdio::Console(container_end))?;
        let master = (|| {
            let Some(master) = pty::receive_console(&socket)? else {
                return Ok(None);
            };
            if let Some(size) = size {
                pty::set_window_size(&master, size)?;
            }
            pty::acknowledge_console(&socket)?;
            Ok(Some(master))
        })();
        match master {
            Ok(master) => Ok((container, master)),
            Err(e) => {
                let _ = container.kill();
                let _ = container.wait();
                Err(e)
            }
        }
    }

    /// Runs interactively; see the crate docs. Returns the command's exit status.
    ///
    /// With a terminal on stdin: allocates a pty (`spec.process.terminal` is forced on), puts
    /// our terminal in raw mode, copies bytes both ways, forwards window size changes
    /// (SIGWINCH → TIOCSWINSZ) and restores the terminal afterwards, also on error. Ctrl-C
    /// thus reaches the container's foreground process, not us. Without a terminal the
    /// container inherits our stdio. That is [`Sandbox::run_attached`] with our stdin, and a
    /// pty when stdin is a terminal.
    pub fn run_interactive(&self, spec: &ContainerSpec) -> Result<ExitStatus, Error> {
        let tty = rustix::termios::isatty(rustix::stdio::stdin());
        self.run_attached(spec, Attach { stdin: true, tty })
    }

    /// Runs the container attached as `docker run` is with `-i` and `-t` ([`Attach`]):
    /// without `stdin` it reads `/dev/null`; with `tty` it gets a pty whose output we copy to
    /// our stdout, forwarding window size changes when our stdin is a terminal, and with
    /// `stdin` too our input (our terminal in raw mode meanwhile, restored afterwards).
    pub fn run_attached(&self, spec: &ContainerSpec, attach: Attach) -> Result<ExitStatus, Error> {
        let stdin = rustix::stdio::stdin();
        let dup = |fd: BorrowedFd<'_>| fd.try_clone_to_owned().map_err(io_err("dup stdio"));
        if !attach.tty {
            if attach.stdin {
                return self.spawn(spec, Stdio::Inherit)?.wait();
            }
            let null = File::open("/dev/null").map_err(io_err("open /dev/null"))?;
            let stdio = Stdio::Fds {
                stdin: null.into(),
                stdout: dup(rustix::stdio::stdout())?,
                stderr: dup(rustix::stdio::stderr())?,
            };
            return self.spawn(spec, stdio)?.wait();
        }
        let terminal = rustix::termios::isatty(stdin);
        let size = terminal.then(|| pty::window_size(stdin).ok()).flatten();
        let (container, master) = self.spawn_console(spec, size)?;
        let copied = (|| {
            let Some(master) = master else {
                // Setup failed before the console existed: wait() reports why.
                return Ok(());
            };
            let winch = WinchWatcher::install()?;
            // What the user typed while the container started stays queued for it (the
            // guard switches without flushing, see `RawModeGuard::new`).
            let _raw = match attach.stdin && terminal {
                true => Some(RawModeGuard::new(stdin)?),
                false => None,
            };
            copy_pty(&master, &winch, attach.stdin)
        })();
        match copied {
            Ok(()) => container.wait(),
            Err(e) => {
                let _ = container.kill();
                let _ = container.wait();
                Err(e)
            }
        }
    }
}

/// How [`Sandbox::run_attached`] connects the caller to the container, as `docker run -i`
/// and `-t`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attach {
    /// Give the container our stdin (without it, the container reads `/dev/null`).
    pub stdin: bool,
    /// Give the container a pty as its stdio; its output comes to our stdout.
    pub tty: bool,
}

/// Shovels bytes between our stdin (when `forward_stdin`)/stdout and the pty master until the
/// container side is closed (read on the master fails with EIO once no slave fd is open).
fn copy_pty(master: &OwnedFd, winch: &WinchWatcher, forward_stdin: bool) -> Result<(), Error> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let stdin = rustix::stdio::stdin();
    let stdout = rustix::stdio::stdout();
    let mut stdin_open = forward_stdin;
    let mut buf = [0u8; 8192];
    loop {
        let mut fds = vec![
            PollFd::new(master.as_fd(), PollFlags::POLLIN),
            PollFd::new(winch.fd(), PollFlags::POLLIN),
        ];
        if stdin_open {
            fds.push(PollFd::new(stdin, PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(e) => {
                return Err(io_err("poll terminal")(io::Error::from_raw_os_error(
                    e as i32,
                )));
            }
        }
        let ready = |fd: &PollFd<'_>| {
            fd.revents().is_some_and(|r| {
                r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            })
        };
        let (master_ready, winch_ready) = (ready(&fds[0]), ready(&fds[1]));
        let stdin_ready = stdin_open && ready(&fds[2]);
        drop(fds);
        if winch_ready {
            winch.drain();
            if let Ok(size) = pty::window_size(stdin) {
                pty::set_window_size(master, size)?;
            }
        }
        if master_ready {
            match rustix::io::read(master, &mut buf) {
                Ok(0) | Err(rustix::io::Errno::IO) => return Ok(()),
                Ok(n) => write_all(stdout, &buf[..n]).map_err(io_err("write to terminal"))?,
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                Err(e) => return Err(io_err("read from pty")(e.into())),
            }
        }
        if stdin_ready {
            match rustix::io::read(stdin, &mut buf) {
                Ok(0) => stdin_open = false,
                Ok(n) => write_all(master.as_fd(), &buf[..n]).map_err(io_err("write to pty"))?,
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                Err(e) => return Err(io_err("read from terminal")(e.into())),
            }
        }
    }
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A running container. Dropping it without [`Container::wait`] kills and reaps it.
#[derive(Debug)]
pub struct Container {
    child: Option<Child>,
    output: Option<File>,
    status: Option<File>,
    reports: Vec<Report>,
}

impl Container {
    /// The merged stdout/stderr pipe of [`Stdio::Piped`] (once). Read it to EOF before
    /// [`Container::wait`], or the command may block on a full pipe; an output never taken
    /// is drained and discarded by `wait`.
    pub fn take_output(&mut self) -> Option<File> {
        self.output.take()
    }

    /// The host pid of the init helper (the container's outermost process).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGKILLs the whole tree: the helper's process group (helper and PID 1); the kernel
    /// then kills everything else in the PID namespace.
    pub fn kill(&self) -> Result<(), Error> {
        let Some(child) = &self.child else {
            return Ok(());
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        // The helper is our unreaped child, so its pid (= its process group id) cannot have
        // been reused.
        for result in [
            nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL),
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL),
        ] {
            match result {
                Ok(()) | Err(nix::Error::ESRCH) => {}
                Err(e) => {
                    return Err(io_err("kill container")(io::Error::from_raw_os_error(
                        e as i32,
                    )));
                }
            }
        }
        Ok(())
    }

    /// Sends `signal` to the command (through the helper and PID 1), e.g. SIGTERM for a
    /// graceful stop. Only SIGTERM, SIGINT, SIGHUP and SIGQUIT are forwarded.
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> Result<(), Error> {
        let Some(child) = &self.child else {
            return Ok(());
        };
        match nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal) {
            Ok(()) | Err(nix::Error::ESRCH) => Ok(()),
            Err(e) => Err(io_err("signal container")(io::Error::from_raw_os_error(
                e as i32,
            ))),
        }
    }

    /// Blocks until the command was exec'd; returns [`Error::Setup`] if setup failed.
    /// Returns at once if it already ended.
    pub fn wait_started(&mut self) -> Result<(), Error> {
        let Some(status) = &mut self.status else {
            return self.setup_error().map_or(Ok(()), Err);
        };
        // Read byte-wise up to each newline so no later report is consumed by a buffer.
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            match status.read(&mut byte) {
                Ok(0) => {
                    self.status = None;
                    break;
                }
                Ok(_) if byte[0] == b'\n' => {
                    let report: Option<Report> = serde_json::from_slice(&line).ok();
                    line.clear();
                    // Any report settles whether the command started.
                    if let Some(report) = report {
                        self.reports.push(report);
                        break;
                    }
                }
                Ok(_) => line.push(byte[0]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err("read sandbox status")(e)),
            }
        }
        self.setup_error().map_or(Ok(()), Err)
    }

    fn setup_error(&self) -> Option<Error> {
        self.reports.iter().find_map(|r| match r {
            Report::SetupFailed(msg) => Some(Error::Setup(msg.clone())),
            Report::ExecFailed { message, code } => Some(Error::Exec {
                message: message.clone(),
                code: *code,
            }),
            _ => None,
        })
    }

    /// Waits for the container to end and returns the command's status, or
    /// [`Error::Setup`] if the command never started.
    pub fn wait(mut self) -> Result<ExitStatus, Error> {
        self.finish()
    }

    fn finish(&mut self) -> Result<ExitStatus, Error> {
        if let Some(mut output) = self.output.take() {
            let _ = io::copy(&mut output, &mut io::sink());
        }
        if let Some(status) = self.status.take() {
            let reports = process::read_reports(status).map_err(io_err("read sandbox status"))?;
            self.reports.extend(reports);
        }
        let Some(mut child) = self.child.take() else {
            return Err(Error::Setup("the container was already waited for".into()));
        };
        let helper = child
            .wait()
            .map_err(io_err("wait for sandbox init helper"))?;
        if let Some(err) = self.setup_error() {
            return Err(err);
        }
        for report in self.reports.iter().rev() {
            match report {
                Report::Exited(code) => return Ok(ExitStatus::Exited(*code)),
                Report::Signaled(sig) => return Ok(ExitStatus::Signaled(*sig)),
                _ => {}
            }
        }
        use std::os::unix::process::ExitStatusExt;
        match (helper.signal(), helper.code()) {
            // Killed (Container::kill, or the OOM killer): the tree went with it.
            (Some(sig), _) => Ok(ExitStatus::Signaled(sig)),
            (None, code) => Err(Error::Setup(format!(
                "the sandbox init helper exited with status {} without reporting; \
                 does the init command call strata_sandbox::init_main()?",
                code.unwrap_or(-1)
            ))),
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.kill();
            self.output = None;
            let _ = self.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_codes() {
        assert!(ExitStatus::Exited(0).success());
        assert!(!ExitStatus::Signaled(9).success());
        assert_eq!(ExitStatus::Signaled(9).code(), 137);
        assert_eq!(ExitStatus::Exited(7).code(), 7);
    }

    #[test]
    fn a_helper_that_does_not_report_is_a_setup_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = |n: &str| {
            let p = tmp.path().join(n);
            std::fs::create_dir(&p).expect("mkdir");
            p
        };
        let spec = ContainerSpec {
            lowers: vec![],
            upper: dir("upper"),
            work: dir("work"),
            scratch: dir("scratch"),
            process: crate::ProcessSpec {
                args: vec!["true".into()],
                env: vec![],
                cwd: "/".into(),
                user: String::new(),
                terminal: false,
            },
            hostname: String::new(),
            mounts: vec![],
            network: crate::Network::Host,
            security: Default::default(),
        };
        let sandbox = Sandbox::new(vec!["/bin/true".into()]);
        let err = sandbox
            .spawn(&spec, Stdio::Null)
            .expect("spawn")
            .wait()
            .expect_err("no report");
        assert!(matches!(err, Error::Setup(_)), "{err}");
        let empty = Sandbox::new(vec![]).spawn(&spec, Stdio::Null);
        assert!(matches!(empty, Err(Error::Setup(_))));
    }
}
