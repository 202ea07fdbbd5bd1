//! The re-executed init helper and the container's PID 1 ([`init_main`]).
//!
//! # Process tree
//!
//! ```text
//! caller (multi-threaded)                 Sandbox::spawn: std::process::Command, nothing else
//!  └─ helper  (init_main, host PID ns)    reads the spec, unshare(2), forwards signals, reaps
//!      └─ init  (PID 1 of the new ns)     skeleton, mounts, pivot_root, user lookup, reaps
//!          └─ command (PID 2)             seccomp, capabilities, setgroups/setgid/setuid,
//!                                         chdir, execve
//! ```
//!
//! The caller forks nothing itself: after `fork()` a multi-threaded process may only call
//! async-signal-safe functions, so all real work happens in the freshly exec'd, single-
//! threaded helper. The helper needs to exist as a separate process because `unshare
//! (CLONE_NEWPID)` only applies to the caller's *children*.
//!
//! # Wire protocol
//!
//! * spec: JSON [`ContainerSpec`] on the fd named by [`SPEC_FD_ENV`]; the caller closes it.
//! * status: one JSON [`Report`] per line on the fd named by [`STATUS_FD_ENV`] (close-on-exec
//!   in the helper, so the command never holds it): `Started` once `execve` succeeded,
//!   `SetupFailed` with a message for anything that went wrong before, `Finished` with the
//!   command's real status (the exit code alone cannot tell `exit 137` from SIGKILL).
//! * console (optional): a unix socket on the fd named by [`CONSOLE_FD_ENV`]; init opens a pty
//!   on the container's devpts after pivot_root, makes its slave the command's stdio and
//!   sends the master over it (runc's console socket).
//! * the command's `execve` is confirmed through a close-on-exec pipe: EOF means it worked,
//!   bytes are the error message.
//!
//! # Lifetime
//!
//! The helper gets `PR_SET_PDEATHSIG(SIGKILL)` (set by the caller between fork and exec), and
//! so does init; when init exits the kernel kills everything else in its PID namespace
//! (pid_namespaces(7)). So the death of the caller takes the whole tree down.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::sys::signal::{SigHandler, SigSet, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use crate::security::{self, Confinement};
use crate::spec::{ContainerSpec, Network};
use crate::sys::{LinuxSyscall, Syscall};
use crate::user::Identity;
use crate::{namespaces, overlay, rootfs, user};

/// Env var naming the fd the helper reads the spec from.
pub const SPEC_FD_ENV: &str = "STRATA_SANDBOX_SPEC_FD";
/// Env var naming the fd the helper writes [`Report`]s to.
pub const STATUS_FD_ENV: &str = "STRATA_SANDBOX_STATUS_FD";
/// Env var naming the console socket (see [`crate::pty::send_console`]), when the container
/// is to open its own terminal.
pub const CONSOLE_FD_ENV: &str = "STRATA_SANDBOX_CONSOLE_FD";
/// Env var with the caller's pid, to detect a caller that died before `PR_SET_PDEATHSIG`.
pub const PARENT_ENV: &str = "STRATA_SANDBOX_PARENT";

/// What can go wrong inside the helper; turned into a [`Report::SetupFailed`] message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation of the helper itself failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The spec could not be decoded.
    #[error("decode container spec: {0}")]
    Spec(#[from] serde_json::Error),
    /// Entering the namespaces failed.
    #[error(transparent)]
    Namespaces(#[from] namespaces::Error),
    /// Building the skeleton or mounting the overlay failed.
    #[error(transparent)]
    Overlay(#[from] overlay::Error),
    /// A mount inside the root failed.
    #[error(transparent)]
    Rootfs(#[from] rootfs::Error),
    /// The user could not be resolved.
    #[error(transparent)]
    User(#[from] user::Error),
    /// The seccomp filter could not be built.
    #[error(transparent)]
    Security(#[from] security::Error),
    /// The console could not be opened or sent.
    #[error("console: {0}")]
    Console(#[from] crate::pty::Error),
    /// A string in the spec contains a NUL byte.
    #[error("{what} contains a NUL byte: {value:?}")]
    Nul {
        /// Which field.
        what: &'static str,
        /// The offending value.
        value: String,
    },
}

fn io_err(op: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io { op, source }
}

fn nix_err(op: &'static str) -> impl FnOnce(nix::Error) -> Error {
    move |e| Error::Io {
        op,
        source: io::Error::from_raw_os_error(e as i32),
    }
}

/// A message from the helper or init to the caller.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Report {
    /// The command was exec'd.
    Started,
    /// Something failed before the command ran.
    SetupFailed(String),
    /// The command could not be executed: not found (`code` 127) or not executable (126),
    /// the codes a shell exits with.
    ExecFailed {
        /// What failed, e.g. `exec "nope": executable file not found in $PATH`.
        message: String,
        /// 127 or 126.
        code: i32,
    },
    /// The command exited with this code.
    Exited(i32),
    /// The command was killed by this signal.
    Signaled(i32),
}

/// Writes one report as one line with one `write(2)` (atomic below `PIPE_BUF`).
fn report(status: &mut File, report: &Report) {
    if let Ok(mut line) = serde_json::to_vec(report) {
        line.push(b'\n');
        // Nobody to tell if the caller is gone.
        let _ = status.write_all(&line);
    }
}

/// Reads all reports until EOF (every writer closed).
pub(crate) fn read_reports(status: File) -> io::Result<Vec<Report>> {
    let mut reports = Vec::new();
    for line in BufReader::new(status).lines() {
        let line = line?;
        if let Ok(r) = serde_json::from_str(&line) {
            reports.push(r);
        }
    }
    Ok(reports)
}

/// The signals PID 1 forwards to the command (and the helper to PID 1).
const FORWARDED: [Signal; 4] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    for sig in FORWARDED {
        set.add(sig);
    }
    set
}

fn fd_from_env(name: &str) -> Option<OwnedFd> {
    let raw: i32 = std::env::var(name).ok()?.parse().ok()?;
    if raw < 3 {
        return None;
    }
    // SAFETY: the caller (Sandbox::spawn) passed this fd to us for exclusive use; we take
    // ownership exactly once.
    Some(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// The entry point of the init helper binary; never returns.
///
/// Call it first thing in `main` when the process was started as the sandbox's init (the
/// strata binary dispatches on `argv[1] == "__sandbox-init"` before starting any thread or
/// runtime). Started any other way it prints a message and exits with status 2.
pub fn init_main() -> ! {
    let (Some(spec_fd), Some(status_fd)) = (fd_from_env(SPEC_FD_ENV), fd_from_env(STATUS_FD_ENV))
    else {
        eprintln!("strata-sandbox-init: internal helper, started by strata_sandbox::Sandbox only");
        std::process::exit(2);
    };
    let mut status = File::from(status_fd);
    // The command must never hold the status pipe, or the caller would wait for it.
    let _ = rustix::io::fcntl_setfd(&status, rustix::io::FdFlags::CLOEXEC);
    let console = fd_from_env(CONSOLE_FD_ENV);
    if let Some(socket) = &console {
        let _ = rustix::io::fcntl_setfd(socket, rustix::io::FdFlags::CLOEXEC);
    }
    // PDEATHSIG was set between fork and exec; if the caller died before that, we were
    // re-parented and must not start a container nobody waits for.
    let parent: Option<i32> = std::env::var(PARENT_ENV).ok().and_then(|p| p.parse().ok());
    if parent != Some(nix::unistd::getppid().as_raw()) {
        std::process::exit(1);
    }
    let code = match helper(spec_fd, &mut status, console) {
        Ok(code) => code,
        Err(e) => {
            report(&mut status, &Report::SetupFailed(e.to_string()));
            1
        }
    };
    std::process::exit(code)
}

fn helper(spec_fd: OwnedFd, status: &mut File, console: Option<OwnedFd>) -> Result<i32, Error> {
    let mut json = Vec::new();
    File::from(spec_fd)
        .read_to_end(&mut json)
        .map_err(io_err("read container spec"))?;
    let spec: ContainerSpec = serde_json::from_slice(&json)?;

    // Block the signals we handle before forking, so none is lost between fork and sigwait;
    // init inherits the mask and handles the same set (sigwait(3)).
    let signals = handled_signals();
    signals.thread_block().map_err(nix_err("block signals"))?;

    namespaces::enter(&LinuxSyscall, spec.network)?;

    let (life_rd, life_wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| io_err("create lifeline pipe")(e.into()))?;
    // SAFETY: the helper is single-threaded (a fresh exec, no threads started), so the child
    // may run arbitrary code.
    let init = match unsafe { nix::unistd::fork() }.map_err(nix_err("fork init"))? {
        ForkResult::Child => {
            drop(life_wr);
            let code = pid1(&spec, status, life_rd, console);
            std::process::exit(code)
        }
        ForkResult::Parent { child } => child,
    };
    drop(life_rd);
    // Only init may hold the console socket: the caller sees its end when init is gone.
    drop(console);
    let code = supervise(init, &signals);
    // `life_wr` lives until here: its closing tells init we are gone.
    drop(life_wr);
    Ok(match code {
        Ok(ChildExit::Exited(c)) => c,
        Ok(ChildExit::Signaled(s)) => {
            // init never reported (it was killed): report for it.
            report(status, &Report::Signaled(s));
            128 + s
        }
        Err(e) => {
            report(status, &Report::SetupFailed(e.to_string()));
            1
        }
    })
}

enum ChildExit {
    Exited(i32),
    Signaled(i32),
}

/// Forwards [`FORWARDED`] signals to `child` and reaps every child until `child` is gone.
///
/// Reaping *every* child matters in PID 1: orphans of the namespace are re-parented to it
/// and would stay zombies otherwise.
fn supervise(child: Pid, signals: &SigSet) -> Result<ChildExit, Error> {
    loop {
        let sig = signals.wait().map_err(nix_err("sigwait"))?;
        if sig != Signal::SIGCHLD {
            // ESRCH just means the child is already gone; its SIGCHLD is pending.
            let _ = nix::sys::signal::kill(child, sig);
            continue;
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => {
                    return Ok(ChildExit::Exited(code));
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => {
                    return Ok(ChildExit::Signaled(sig as i32));
                }
                Ok(WaitStatus::StillAlive) => break,
                // An orphan (or a stopped/continued child): reaped, nothing else to do.
                Ok(_) => {}
                Err(nix::Error::EINTR) => {}
                Err(nix::Error::ECHILD) => {
                    return Err(Error::Io {
                        op: "wait for child",
                        source: io::Error::from_raw_os_error(libc::ECHILD),
                    });
                }
                Err(e) => return Err(nix_err("waitpid")(e)),
            }
        }
    }
}

extern "C" fn ignore_signal(_: libc::c_int) {}

/// PID 1 of the new PID namespace. Returns the exit code.
fn pid1(
    spec: &ContainerSpec,
    status: &mut File,
    lifeline: OwnedFd,
    console: Option<OwnedFd>,
) -> i32 {
    // Die with the helper (prctl(2), PR_SET_PDEATHSIG); the helper may already have died
    // before this call, which the lifeline pipe's hang-up reveals.
    if rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .is_err()
    {
        return 1;
    }
    let mut fds = [nix::poll::PollFd::new(
        lifeline.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    if nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).unwrap_or(0) > 0 {
        return 1;
    }
    // PID 1 only receives signals it has a handler for, even from the parent namespace
    // (pid_namespaces(7)); blocked signals are queued regardless, the handlers make sure.
    // Handlers reset to default on execve, so the command starts clean.
    for sig in FORWARDED {
        // SAFETY: the handler does nothing, so it is trivially async-signal-safe.
        let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::Handler(ignore_signal)) };
    }
    let prepared = match setup(spec) {
        Ok(p) => p,
        Err(e) => {
            report(status, &Report::SetupFailed(e.to_string()));
            return 1;
        }
    };
    if let Some(socket) = console
        && let Err(e) = open_console(&socket, &prepared.identity)
    {
        report(status, &Report::SetupFailed(e.to_string()));
        return 1;
    }
    let (err_rd, err_wr) = match rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            report(
                status,
                &Report::SetupFailed(format!("create exec pipe: {e}")),
            );
            return 1;
        }
    };
    // SAFETY: PID 1 is single-threaded.
    let child = match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            drop(err_rd);
            let (message, code) = exec_command(&prepared);
            let mut err_wr = File::from(err_wr);
            // The exit code a shell would give (0 for a failure before exec), then the text.
            let _ = err_wr.write_all(&[code]);
            let _ = err_wr.write_all(message.as_bytes());
            // SAFETY: _exit skips atexit handlers and stdio flushing that belong to PID 1.
            unsafe { libc::_exit(127) }
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => {
            report(status, &Report::SetupFailed(format!("fork command: {e}")));
            return 1;
        }
    };
    drop(err_wr);
    let mut failure = Vec::new();
    let _ = File::from(err_rd).read_to_end(&mut failure);
    if let Some((&code, message)) = failure.split_first() {
        let _ = waitpid(child, None);
        let message = String::from_utf8_lossy(message).into_owned();
        report(
            status,
            &match code {
                0 => Report::SetupFailed(message),
                code => Report::ExecFailed {
                    message,
                    code: code.into(),
                },
            },
        );
        return 1;
    }
    report(status, &Report::Started);
    let signals = handled_signals();
    match supervise(child, &signals) {
        Ok(ChildExit::Exited(code)) => {
            report(status, &Report::Exited(code));
            code
        }
        Ok(ChildExit::Signaled(sig)) => {
            report(status, &Report::Signaled(sig));
            128 + sig
        }
        Err(e) => {
            report(status, &Report::SetupFailed(e.to_string()));
            1
        }
    }
}

/// Opens a pty on the container's own devpts (after pivot_root `/dev/ptmx` is its
/// `pts/ptmx`), gives the slave to the command's user, makes it our stdio (the command
/// inherits it) and sends the master to the caller.
fn open_console(socket: &OwnedFd, identity: &Identity) -> Result<(), Error> {
    let pty = crate::pty::Pty::open()?;
    rustix::fs::fchown(
        &pty.slave,
        Some(rustix::fs::Uid::from_raw(identity.uid)),
        Some(rustix::fs::Gid::from_raw(identity.gid)),
    )
    .map_err(|e| io_err("chown the console")(e.into()))?;
    for target in 0..3 {
        // SAFETY: fds 0-2 are ours (the helper gave us /dev/null there); dup2 replaces them.
        let mut stdio = unsafe { OwnedFd::from_raw_fd(target) };
        let dup = rustix::io::dup2(&pty.slave, &mut stdio);
        std::mem::forget(stdio);
        dup.map_err(|e| io_err("make the console our stdio")(e.into()))?;
    }
    Ok(crate::pty::send_console(socket, &pty.master)?)
}

/// Everything the command's child needs, prepared before fork.
struct Prepared {
    argv: Vec<CString>,
    envp: Vec<CString>,
    /// Candidate paths for `argv[0]`, in `PATH` order (one entry when it contains a `/`).
    candidates: Vec<CString>,
    program: String,
    cwd: CString,
    identity: Identity,
    terminal: bool,
    /// Capabilities and seccomp to apply before the user switch; `None` when insecure.
    confinement: Option<Confinement>,
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn cstring(what: &'static str, value: &str) -> Result<CString, Error> {
    CString::new(value).map_err(|_| Error::Nul {
        what,
        value: value.to_owned(),
    })
}

/// The container's view of the world: runs in PID 1, after which only the command is left.
fn setup(spec: &ContainerSpec) -> Result<Prepared, Error> {
    let sys = LinuxSyscall;
    rootfs::scratch_in_memory(&sys, &spec.scratch)?;
    let layout = overlay::build_skeleton(spec)?;
    rootfs::setup(&sys, &layout, spec)?;
    rootfs::pivot(&sys, &layout.rootfs)?;
    sys.sethostname(&spec.hostname)
        .map_err(io_err("set hostname"))?;
    if spec.network == Network::None {
        sys.loopback_up().map_err(io_err("bring up lo"))?;
    }
    let identity = user::resolve(&spec.process.user)?;

    let program = spec.process.args.first().cloned().unwrap_or_default();
    let argv = spec
        .process
        .args
        .iter()
        .map(|a| cstring("argument", a))
        .collect::<Result<Vec<_>, _>>()?;
    let envp = spec
        .process
        .env
        .iter()
        .map(|e| cstring("environment variable", e))
        .collect::<Result<Vec<_>, _>>()?;
    let path_var = spec
        .process
        .env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let candidates = search_path(&program, path_var)
        .iter()
        .map(|p| cstring("program path", p))
        .collect::<Result<Vec<_>, _>>()?;
    let cwd = if spec.process.cwd.is_empty() {
        "/"
    } else {
        &spec.process.cwd
    };
    Ok(Prepared {
        argv,
        envp,
        candidates,
        program,
        cwd: cstring("cwd", cwd)?,
        identity,
        terminal: spec.process.terminal,
        // Compiled here, in PID 1: the command's child only loads it.
        confinement: Confinement::new(spec.security)?,
    })
}

/// The paths to try for `program`, like execvp(3) but with the container's `PATH`.
fn search_path(program: &str, path_var: &str) -> Vec<String> {
    if program.contains('/') {
        return vec![program.to_owned()];
    }
    path_var
        .split(':')
        .map(|dir| {
            let dir = if dir.is_empty() { "." } else { dir };
            format!("{}/{program}", dir.trim_end_matches('/'))
        })
        .collect()
}

/// In the command's child: drop to the user and exec. Returns only with an error message and
/// the exit code a shell gives for it: 127 when the program is not found, 126 when it cannot
/// be executed, 0 for a failure before exec.
fn exec_command(p: &Prepared) -> (String, u8) {
    match exec_or_fail(p) {
        Exec::Setup(message) => (message, 0),
        Exec::NotFound(message) => (message, 127),
        Exec::NotExecutable(message) => (message, 126),
    }
}

/// Why [`exec_or_fail`] returned.
enum Exec {
    Setup(String),
    NotFound(String),
    NotExecutable(String),
}

fn exec_or_fail(p: &Prepared) -> Exec {
    // The mask and ignored dispositions survive execve(2): undo ours (Rust ignores SIGPIPE,
    // we block the forwarded signals) so the command starts like from a shell.
    let _ = SigSet::all().thread_unblock();
    // SAFETY: restoring the default disposition is always sound.
    let _ = unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigDfl) };
    if p.terminal {
        // A new session, then stdin (the pty) as controlling terminal (tty_ioctl(4),
        // TIOCSCTTY), so ^C on the pty signals the command's foreground job.
        if let Err(e) = nix::unistd::setsid() {
            return Exec::Setup(format!("setsid: {e}"));
        }
        if let Err(e) = rustix::process::ioctl_tiocsctty(rustix::stdio::stdin()) {
            return Exec::Setup(format!(
                "terminal requested but stdin is not a terminal: {e}"
            ));
        }
    }
    // Seccomp, then the capability sets: the last steps before the user switch and execve
    // (see `security`, "Order").
    if let Some(confinement) = &p.confinement
        && let Err(e) = confinement.apply()
    {
        return Exec::Setup(e.to_string());
    }
    let groups: Vec<nix::unistd::Gid> = p
        .identity
        .groups
        .iter()
        .map(|g| nix::unistd::Gid::from_raw(*g))
        .collect();
    // Groups before gid before uid: after setuid(2) we could not change them any more.
    if let Err(e) = nix::unistd::setgroups(&groups) {
        return Exec::Setup(format!("setgroups {:?}: {e}", p.identity.groups));
    }
    if let Err(e) = nix::unistd::setgid(nix::unistd::Gid::from_raw(p.identity.gid)) {
        return Exec::Setup(format!("setgid {}: {e}", p.identity.gid));
    }
    if let Err(e) = nix::unistd::setuid(nix::unistd::Uid::from_raw(p.identity.uid)) {
        return Exec::Setup(format!("setuid {}: {e}", p.identity.uid));
    }
    // As the user, so permissions are checked as the command would see them.
    let cwd = p.cwd.to_string_lossy();
    match nix::unistd::chdir(p.cwd.as_c_str()) {
        Ok(()) => {}
        Err(nix::Error::ENOENT) => {
            return Exec::Setup(format!("cwd {cwd} does not exist in the container"));
        }
        Err(e) => return Exec::Setup(format!("chdir to cwd {cwd}: {e}")),
    }
    let mut denied = false;
    for candidate in &p.candidates {
        let err = match nix::unistd::execve(candidate, &p.argv, &p.envp) {
            Ok(never) => match never {},
            Err(e) => e,
        };
        match err {
            nix::Error::ENOENT | nix::Error::ENOTDIR => {}
            nix::Error::EACCES => denied = true,
            other => {
                return Exec::NotExecutable(format!(
                    "exec {:?} ({}): {other}",
                    p.program,
                    Path::new(&*candidate.to_string_lossy()).display()
                ));
            }
        }
    }
    if denied {
        Exec::NotExecutable(format!("exec {:?}: permission denied", p.program))
    } else if p.program.contains('/') {
        Exec::NotFound(format!("exec {:?}: no such file or directory", p.program))
    } else {
        Exec::NotFound(format!(
            "exec {:?}: executable file not found in $PATH",
            p.program
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_search_uses_the_container_path() {
        assert_eq!(
            search_path("sh", "/bin:/usr/bin/:"),
            vec!["/bin/sh", "/usr/bin/sh", "./sh"]
        );
        assert_eq!(search_path("./run.sh", "/bin"), vec!["./run.sh"]);
    }

    #[test]
    fn reports_round_trip_as_lines() {
        let tmp = tempfile::tempfile().expect("tempfile");
        let mut writer = tmp.try_clone().expect("clone");
        report(
            &mut writer,
            &Report::SetupFailed("cwd /x does not exist".into()),
        );
        report(&mut writer, &Report::Signaled(9));
        let mut reader = tmp;
        std::io::Seek::rewind(&mut reader).expect("rewind");
        assert_eq!(
            read_reports(reader).expect("read"),
            vec![
                Report::SetupFailed("cwd /x does not exist".into()),
                Report::Signaled(9)
            ]
        );
    }
}
