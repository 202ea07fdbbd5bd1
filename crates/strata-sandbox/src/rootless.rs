//! Running as an ordinary user: a user namespace mapped with the user's subordinate ids.
//!
//! [`enter`] is called by the binary before it opens the store, while it is still
//! single-threaded. For root it does nothing. For anyone else it forks:
//!
//! * the **child** moves into a new user namespace and a new mount namespace owned by it
//!   (`unshare(CLONE_NEWUSER | CLONE_NEWNS)`; a mount namespace created later would belong to
//!   the host's user namespace, where we may not mount), waits until its ids are mapped and
//!   returns: from then on it is uid 0 with every capability *inside* the namespace, and runs
//!   the command as root would (builds, `run`, the debugger);
//! * the **parent** maps the child's ids with the set-uid helpers `newuidmap`/`newgidmap`
//!   (the `uidmap` package) — uid 0 inside is the user, 1..=N the ranges `/etc/subuid` (and
//!   `/etc/subgid`) give the user, in file order, as rootlesskit and buildah map them — then
//!   forwards the signals other processes send it and exits with the child's status.
//!
//! So an image's file owned by uid 1000 is owned by a subordinate id on the host and shows as
//! 1000 to strata, which writes 1000 into the layer: layers and digests are those of a root
//! build. Ids outside the mapped ranges (above 65536 with the usual range) cannot be created.
//!
//! What a user namespace changes in the sandbox (BuildKit rootless has the same limits):
//! overlayfs needs `userxattr` (whiteout metadata in `user.overlay.*`, see
//! `strata_layer::whiteout::Xattrs`); a fresh sysfs needs a network namespace of our own, so
//! with the host network `/sys` is the host's, bound read-only (its cgroup hierarchy hidden
//! under an empty tmpfs, as a fresh sysfs has none); device nodes cannot be made
//! (`mknod` in a step fails with `EPERM`, and device nodes in a base layer are skipped on
//! unpack, as containerd and moby do in a user namespace); the namespace, which the kernel
//! starts with a full bounding set, gets the user's bounding set back, so containers have the
//! capabilities a root strata started with that set would give them.
//!
//! Signals: a terminal's SIGINT reaches both processes (one process group); only the child
//! acts on it. A signal another process sends the parent (`kill`, a CI runner's SIGTERM) is
//! passed to the child, so cancelling a rootless build works as a root one. The child dies
//! with the parent (`PR_SET_PDEATHSIG`).

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};

use caps::{CapSet, CapsHashSet};
use nix::sched::CloneFlags;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, Uid};

/// The files of subordinate ranges.
pub const SUBUID: &str = "/etc/subuid";
/// See [`SUBUID`].
pub const SUBGID: &str = "/etc/subgid";

/// Why strata cannot run as this user.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user has no range in `/etc/subuid` or `/etc/subgid`.
    #[error(
        "rootless: no subordinate {kind} range for user {user} in {file}; strata maps the image's \
         users onto one: add ranges to {SUBUID} and {SUBGID} (as root: `usermod \
         --add-subuids 100000-165535 --add-subgids 100000-165535 {user}`), install the uidmap \
         package (newuidmap, newgidmap), or run strata as root"
    )]
    NoRange {
        /// `uid` or `gid`.
        kind: &'static str,
        /// The user's name (or uid when it has none).
        user: String,
        /// `/etc/subuid` or `/etc/subgid`.
        file: &'static str,
    },
    /// A ranges file exists but cannot be read.
    #[error("rootless: read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// `newuidmap` or `newgidmap` is not installed.
    #[error(
        "rootless: {tool} not found in PATH, /usr/bin or /bin; install the uidmap package \
         (it maps the subordinate ids of {SUBUID} and {SUBGID}), or run strata as root"
    )]
    MissingTool {
        /// The helper's name.
        tool: &'static str,
    },
    /// The helper refused to map the ids.
    #[error("rootless: {tool} {args}: {message}; check the user's ranges in {SUBUID} and {SUBGID}")]
    Map {
        /// The helper's name.
        tool: &'static str,
        /// Its arguments.
        args: String,
        /// Its exit status and what it printed.
        message: String,
    },
    /// The kernel refused the user namespace.
    #[error(
        "rootless: user namespaces are off for unprivileged users (unshare(CLONE_NEWUSER): \
         {source}); enable them (sysctl user.max_user_namespaces > 0, and \
         kernel.unprivileged_userns_clone=1 or kernel.apparmor_restrict_unprivileged_userns=0 \
         where the kernel has them), or run strata as root"
    )]
    Unshare {
        /// The OS error.
        source: nix::Error,
    },
    /// The process already runs threads, so it cannot fork safely.
    #[error("rootless: enter() called with {0} threads running; call it first thing in main")]
    Threads(usize),
    /// The bounding set could not be read or cut.
    #[error("rootless: {what}: {source}")]
    Caps {
        /// What was being done.
        what: String,
        /// The caps crate's error.
        source: caps::errors::CapsError,
    },
    /// A process call (fork, pipe, wait) failed.
    #[error("rootless: {op}: {source}")]
    Os {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: nix::Error,
    },
}

fn os(op: &'static str) -> impl FnOnce(nix::Error) -> Error {
    move |source| Error::Os { op, source }
}

/// True when this process runs in a user namespace other than the host's (as after
/// [`enter`]): its uid map is not the identity of all 2³² ids.
pub fn active() -> bool {
    strata_layer::whiteout::Xattrs::of_this_process() == strata_layer::whiteout::Xattrs::User
}

/// One line of `/etc/subuid`: `count` ids from `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// The first host id.
    pub start: u32,
    /// How many.
    pub count: u32,
}

/// The ranges of `user` (by name or numeric id) in the text of a subuid/subgid file, in
/// file order. Lines that do not parse are skipped, as shadow's `newuidmap` does.
pub fn ranges(text: &str, name: Option<&str>, id: u32) -> Vec<Range> {
    let id = id.to_string();
    text.lines()
        .filter_map(|line| {
            let mut f = line.trim().split(':');
            let owner = f.next()?;
            let start = f.next()?.parse().ok()?;
            let count = f.next()?.parse().ok()?;
            (Some(owner) == name || owner == id).then_some(Range { start, count })
        })
        .filter(|r| r.count > 0)
        .collect()
}

/// The arguments of `newuidmap PID ...` after the pid: `0 ID 1`, then each range mapped from
/// inside id 1 on.
pub fn map_args(id: u32, ranges: &[Range]) -> Vec<String> {
    let mut args = vec!["0".to_owned(), id.to_string(), "1".to_owned()];
    let mut inside: u64 = 1;
    for r in ranges {
        args.extend([inside.to_string(), r.start.to_string(), r.count.to_string()]);
        inside += u64::from(r.count);
    }
    args
}

fn read_ranges(
    file: &'static str,
    kind: &'static str,
    name: Option<&str>,
    id: u32,
) -> Result<Vec<Range>, Error> {
    let text = match fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(Error::Read {
                path: file.into(),
                source,
            });
        }
    };
    let found = ranges(&text, name, id);
    if found.is_empty() {
        return Err(Error::NoRange {
            kind,
            user: name.map_or_else(|| id.to_string(), str::to_owned),
            file,
        });
    }
    Ok(found)
}

/// `tool` in `PATH`, else in the directories Debian installs it to.
fn find_tool(tool: &'static str) -> Result<PathBuf, Error> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
        .ok_or(Error::MissingTool { tool })
}

/// The pid of the child the parent forwards signals to (0: none yet).
static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler. Only a signal a
    // process sent (si_code <= 0: SI_USER, SI_QUEUE, SI_TKILL) is forwarded; one the
    // terminal generated (SI_KERNEL) reached the child too, as it is in our process group.
    // kill(2) is async-signal-safe.
    unsafe {
        if (*info).si_code <= 0 {
            let child = CHILD.load(Ordering::SeqCst);
            if child > 0 {
                libc::kill(child, signal);
            }
        }
    }
}

/// Runs the rest of the process as root of a user namespace mapped with the user's
/// subordinate ids (see the module docs); does nothing for root.
///
/// Returns in the child only; the parent exits with the child's status. Call it while the
/// process is single-threaded.
pub fn enter() -> Result<(), Error> {
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let threads = fs::read_dir("/proc/self/task").map_or(1, |d| d.count());
    if threads > 1 {
        return Err(Error::Threads(threads));
    }
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    let name = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name);
    let uid_args = map_args(
        uid.as_raw(),
        &read_ranges(SUBUID, "uid", name.as_deref(), uid.as_raw())?,
    );
    let gid_args = map_args(
        gid.as_raw(),
        &read_ranges(SUBGID, "gid", name.as_deref(), uid.as_raw())?,
    );
    let tools = [
        ("newuidmap", find_tool("newuidmap")?, uid_args),
        ("newgidmap", find_tool("newgidmap")?, gid_args),
    ];
    let bounding = caps::read(None, CapSet::Bounding).map_err(|source| Error::Caps {
        what: "read the bounding set".into(),
        source,
    })?;
    // Close-on-exec: newuidmap must not hold them.
    let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(os("create pipe"));
    let (ready_rd, ready_wr) = pipe()?;
    let (go_rd, go_wr) = pipe()?;
    let parent = nix::unistd::getpid();
    // SAFETY: the process is single-threaded (checked above), so the child may run anything.
    match unsafe { nix::unistd::fork() }.map_err(os("fork"))? {
        ForkResult::Child => {
            drop((ready_rd, go_wr));
            child(parent, ready_wr, go_rd, &bounding)
        }
        ForkResult::Parent { child } => {
            drop((ready_wr, go_rd));
            let code = match map(child, ready_rd, go_wr, &tools) {
                Ok(()) => wait(child),
                Err(e) => {
                    let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
                    let _ = waitpid(child, None);
                    return Err(e);
                }
            };
            std::process::exit(code)
        }
    }
}

fn child(parent: Pid, ready: OwnedFd, go: OwnedFd, bounding: &CapsHashSet) -> Result<(), Error> {
    // Die with the parent (prctl(2) PR_SET_PDEATHSIG); if it died before this line we were
    // re-parented and nobody would wait for us.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(os("set the parent-death signal"))?;
    if nix::unistd::getppid() != parent {
        std::process::exit(1);
    }
    // user_namespaces(7): the new mount namespace is owned by the new user namespace, so we
    // may mount in it (and unshare further mount namespaces from it).
    nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
        .map_err(|source| Error::Unshare { source })?;
    nix::unistd::write(&ready, b"u").map_err(os("tell the parent"))?;
    let mut byte = [0u8; 1];
    // EOF: the parent failed to map us and reports why.
    if nix::unistd::read(&go, &mut byte).map_err(os("wait for the id map"))? == 0 {
        std::process::exit(1);
    }
    debug_assert!(Uid::effective().is_root());
    // A new user namespace starts with a full bounding set (user_namespaces(7)); keep the
    // user's, so containers get what a root strata started with it would give them.
    for cap in caps::runtime::thread_all_supported()
        .into_iter()
        .filter(|cap| !bounding.contains(cap))
    {
        caps::drop(None, CapSet::Bounding, cap).map_err(|source| Error::Caps {
            what: format!("drop {cap} from the bounding set"),
            source,
        })?;
    }
    Ok(())
}

fn map(
    child: Pid,
    ready: OwnedFd,
    go: OwnedFd,
    tools: &[(&'static str, PathBuf, Vec<String>)],
) -> Result<(), Error> {
    let mut byte = [0u8; 1];
    if nix::unistd::read(&ready, &mut byte).map_err(os("wait for the child"))? == 0 {
        // The child failed before unsharing and printed why; exit with its status.
        std::process::exit(wait(child));
    }
    for &(tool, ref path, ref args) in tools {
        let pid = child.to_string();
        let shown = format!("{pid} {}", args.join(" "));
        let out = Command::new(path)
            .arg(&pid)
            .args(args)
            .output()
            .map_err(|e| Error::Map {
                tool,
                args: shown.clone(),
                message: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(Error::Map {
                tool,
                args: shown,
                message: format!(
                    "{} ({})",
                    String::from_utf8_lossy(&out.stderr).trim(),
                    out.status
                ),
            });
        }
    }
    nix::unistd::write(&go, b"g").map_err(os("tell the child"))?;
    Ok(())
}

/// Forwards signals to `child` until it exits; returns its status as a shell would.
fn wait(child: Pid) -> i32 {
    CHILD.store(child.as_raw(), Ordering::SeqCst);
    let action = SigAction::new(
        SigHandler::SigAction(forward),
        SaFlags::SA_SIGINFO | SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        // SAFETY: `forward` only does async-signal-safe work.
        let _ = unsafe { sigaction(signal, &action) };
    }
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, signal, _)) => return 128 + signal as i32,
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(_) => return 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_by_name_or_id_in_file_order() {
        let text = "alice:100000:65536\n# comment\nbob:200000:10\n1000:300000:5\nbad line\n\
                    bob:400000:0\n";
        assert_eq!(
            ranges(text, Some("bob"), 1000),
            [
                Range {
                    start: 200000,
                    count: 10
                },
                Range {
                    start: 300000,
                    count: 5
                }
            ]
        );
        assert!(ranges(text, Some("carol"), 1001).is_empty());
    }

    #[test]
    fn map_args_put_the_user_at_zero_and_ranges_after() {
        let r = [
            Range {
                start: 200000,
                count: 10,
            },
            Range {
                start: 300000,
                count: 5,
            },
        ];
        assert_eq!(
            map_args(1000, &r).join(" "),
            "0 1000 1 1 200000 10 11 300000 5"
        );
    }
}
