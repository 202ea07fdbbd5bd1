//! What the command may do: capabilities and the seccomp profile (BuildKit's defaults).
//!
//! A build step gets what a `docker run` or a BuildKit `RUN` gets from containerd's default
//! OCI spec, run by runc: the capability set of [`DEFAULT_CAPABILITIES`] and a seccomp
//! allow-list equivalent to moby's/containerd's default profile ([`filter`]). More is only
//! given for [`Security::Insecure`] (BuildKit's `security.insecure` entitlement, like
//! `docker run --privileged`): all capabilities and no seccomp.
//!
//! # Order, as runc's without `no_new_privs`
//!
//! [`Confinement::apply`] runs in the command's child, last before `setgroups`/`setgid`/
//! `setuid` and `execve`:
//!
//! 1. the seccomp filter is loaded while we still hold `CAP_SYS_ADMIN` (without
//!    `no_new_privs` the kernel requires it, seccomp(2) `SECCOMP_SET_MODE_FILTER`); every call
//!    after it (`capset`, `prctl`, `setgroups`, `setuid`, `chdir`, `execve`) is allowed by
//!    the profile;
//! 2. the bounding set is cut to the default set (`PR_CAPBSET_DROP` needs `CAP_SETPCAP`,
//!    still held), the ambient set cleared, the inheritable set emptied (as docker does since
//!    CVE-2022-24769), effective and permitted set to the default set;
//! 3. the caller then switches user: for a non-root user `setuid(2)` clears permitted and
//!    effective (no `PR_SET_KEEPCAPS`), so a `USER` gets what `execve(2)` gives a non-root
//!    user (nothing, unless a file has capabilities or is set-uid) and only the bounding set
//!    shows the default set, exactly like docker's spec for non-root users.
//!
//! `no_new_privs` stays off, as in docker's and BuildKit's default: set-uid programs in an
//! image (`su`, `sudo`, `ping` with file capabilities) work as they do there, and they cannot
//! gain anything beyond the bounding set anyway.
//!
//! The profile is written here as data ([`ALLOWED`] and the conditional rules in
//! [`filter`]), read from moby's `profiles/seccomp/default_linux.go` for what it allows with
//! the default capability set on x86-64 (with the x86 and x32 ABIs, as docker's arch map):
//! the syscalls gated on capabilities the container does not have are simply absent, `ptrace`
//! and `process_vm_*` are allowed (moby allows them on kernels from 4.8), `io_uring_*` is
//! left out (moby dropped it from the default profile in 2023). Names this libseccomp does not
//! know (newer than its syscall table) are skipped, as runc does: they get the default action.

use std::io;

use caps::{CapSet, Capability, CapsHashSet};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};

use crate::spec::Security;

/// What can go wrong while preparing or applying the confinement.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// libseccomp refused to build or load the filter.
    #[error("seccomp: {what}: {source}")]
    Seccomp {
        /// What was being done, e.g. `"load the filter"`.
        what: String,
        /// libseccomp's error.
        source: libseccomp::error::SeccompError,
    },
    /// A capability set could not be changed.
    #[error("capabilities: {what}: {source}")]
    Caps {
        /// What was being done, e.g. `"drop CAP_SYS_ADMIN from the bounding set"`.
        what: String,
        /// The caps crate's error (it carries the OS error text).
        source: caps::errors::CapsError,
    },
}

/// The capabilities of containerd's default spec (`oci.defaultUnixCaps`), docker's too.
pub const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// The capability mask of [`DEFAULT_CAPABILITIES`] as `/proc/self/status` prints it
/// (`CapBnd: 00000000a80425fb`).
pub fn default_capability_mask() -> u64 {
    DEFAULT_CAPABILITIES
        .iter()
        .fold(0, |mask, cap| mask | cap.bitmask())
}

/// Syscalls allowed whatever their arguments (x86-64, x86 and x32 names; the profile's
/// unconditional allow-list plus `chroot`, which moby allows with `CAP_SYS_CHROOT`, and
/// `ptrace`/`process_vm_readv`/`process_vm_writev`, allowed on kernels from 4.8).
pub const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "arch_prctl",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "chroot",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "modify_ldt",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "mseal",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "process_vm_readv",
    "process_vm_writev",
    "pselect6",
    "pselect6_time64",
    "ptrace",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "uretprobe",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// `personality(2)` values the profile allows: `PER_LINUX`, `PER_LINUX32`, `UNAME26`,
/// `PER_LINUX32|UNAME26` and the query `0xffffffff`; not `ADDR_NO_RANDOMIZE` and friends.
pub const PERSONALITIES: [u64; 5] = [0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

/// The `clone(2)` flags that create namespaces; a `clone` with any of them is denied.
pub const NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

fn seccomp_err(what: impl Into<String>) -> impl FnOnce(libseccomp::error::SeccompError) -> Error {
    let what = what.into();
    move |source| Error::Seccomp { what, source }
}

/// The default profile as a libseccomp filter for x86-64, x86 and x32 (not loaded).
///
/// Default action `EPERM`; `clone3` fails with `ENOSYS`, so the C library falls back to
/// `clone`, whose namespace flags are then checked (`clone3` passes its flags in memory a
/// filter cannot read); `socket` for every family but `AF_VSOCK`; `personality` for
/// [`PERSONALITIES`]. `mount`, `umount2`, `pivot_root`, `unshare`, `setns`, `open_by_handle_at`,
/// `kexec_*`, `*_module`, `bpf`, `perf_event_open`, `keyctl`/`add_key`/`request_key`, `kcmp`,
/// `pidfd_getfd` and everything else not listed get `EPERM`.
pub fn filter() -> Result<ScmpFilterContext, Error> {
    let mut filter = ScmpFilterContext::new(ScmpAction::Errno(libc::EPERM))
        .map_err(seccomp_err("create the filter"))?;
    for arch in [ScmpArch::X86, ScmpArch::X32] {
        filter
            .add_arch(arch)
            .map_err(seccomp_err(format!("add architecture {arch:?}")))?;
    }
    // Without no_new_privs, as runc with `noNewPrivileges: false`: libseccomp sets it by
    // default when loading.
    filter
        .set_ctl_nnp(false)
        .map_err(seccomp_err("keep no_new_privs off"))?;
    let known = |name: &str| ScmpSyscall::from_name(name).ok();
    for syscall in ALLOWED.iter().filter_map(|name| known(name)) {
        filter
            .add_rule(ScmpAction::Allow, syscall)
            .map_err(seccomp_err(format!("allow {syscall}")))?;
    }
    let conditional: [(&str, ScmpArgCompare); 2] = [
        (
            "clone",
            ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(NAMESPACE_FLAGS), 0),
        ),
        (
            "socket",
            ScmpArgCompare::new(0, ScmpCompareOp::NotEqual, libc::AF_VSOCK as u64),
        ),
    ];
    let personalities = PERSONALITIES.map(|p| {
        (
            "personality",
            ScmpArgCompare::new(0, ScmpCompareOp::Equal, p),
        )
    });
    for (name, compare) in conditional.into_iter().chain(personalities) {
        let syscall =
            ScmpSyscall::from_name(name).map_err(seccomp_err(format!("resolve {name}")))?;
        filter
            .add_rule_conditional(ScmpAction::Allow, syscall, &[compare])
            .map_err(seccomp_err(format!("allow {name} with {compare:?}")))?;
    }
    let clone3 = ScmpSyscall::from_name("clone3").map_err(seccomp_err("resolve clone3"))?;
    filter
        .add_rule(ScmpAction::Errno(libc::ENOSYS), clone3)
        .map_err(seccomp_err("clone3 to ENOSYS"))?;
    Ok(filter)
}

/// The confinement of one container's command, prepared before the command's fork.
pub struct Confinement {
    filter: ScmpFilterContext,
}

impl std::fmt::Debug for Confinement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Confinement(default capabilities, default seccomp profile)")
    }
}

impl Confinement {
    /// The confinement for `security`: `None` for [`Security::Insecure`].
    pub fn new(security: Security) -> Result<Option<Confinement>, Error> {
        match security {
            Security::Insecure => Ok(None),
            Security::Sandbox => Ok(Some(Confinement { filter: filter()? })),
        }
    }

    /// Loads the filter, then cuts the capability sets (see the module docs for the order).
    /// Call it in the command's child, right before switching user and `execve`.
    pub fn apply(&self) -> Result<(), Error> {
        self.filter.load().map_err(seccomp_err("load the filter"))?;
        drop_capabilities()
    }
}

fn caps_err(what: impl Into<String>) -> impl FnOnce(caps::errors::CapsError) -> Error {
    let what = what.into();
    move |source| Error::Caps { what, source }
}

/// Bounding set first (dropping needs `CAP_SETPCAP`, kept in the default set anyway), then
/// ambient and inheritable, then effective before permitted (`capset(2)` requires the
/// effective set to stay within the permitted one).
fn drop_capabilities() -> Result<(), Error> {
    // Only what the bounding set still allows (and we hold): `execve` gives root no more
    // (capabilities(7)), and a rootless strata's user namespace keeps the bounding set the
    // user had (a CI runner may have cut it), as may a root strata's.
    let permitted =
        caps::read(None, CapSet::Permitted).map_err(caps_err("read the permitted set"))?;
    let bounding = caps::read(None, CapSet::Bounding).map_err(caps_err("read the bounding set"))?;
    let keep: CapsHashSet = DEFAULT_CAPABILITIES
        .into_iter()
        .filter(|cap| permitted.contains(cap) && bounding.contains(cap))
        .collect();
    // Only the capabilities this kernel knows: PR_CAPBSET_DROP of an unknown one is EINVAL.
    for cap in caps::runtime::thread_all_supported()
        .into_iter()
        .filter(|cap| !keep.contains(cap))
    {
        caps::drop(None, CapSet::Bounding, cap)
            .map_err(caps_err(format!("drop {cap} from the bounding set")))?;
    }
    caps::clear(None, CapSet::Ambient).map_err(caps_err("clear the ambient set"))?;
    caps::clear(None, CapSet::Inheritable).map_err(caps_err("clear the inheritable set"))?;
    caps::set(None, CapSet::Effective, &keep).map_err(caps_err("set the effective set"))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(caps_err("set the permitted set"))?;
    Ok(())
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::other(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mask_is_dockers() {
        // CapBnd of `docker run --rm debian grep Cap /proc/self/status`.
        assert_eq!(default_capability_mask(), 0x0000_0000_a804_25fb);
    }

    #[test]
    fn profile_builds_and_denies_what_docker_denies() {
        let filter = filter().expect("the profile compiles with this libseccomp");
        let mut pfc = tempfile::tempfile().expect("tempfile");
        filter.export_pfc(&pfc).expect("export the filter as text");
        let mut text = String::new();
        std::io::Seek::rewind(&mut pfc).expect("rewind");
        std::io::Read::read_to_string(&mut pfc, &mut text).expect("read");
        for denied in [
            "mount",
            "umount2",
            "pivot_root",
            "open_by_handle_at",
            "unshare",
            "setns",
            "kexec_load",
            "init_module",
            "finit_module",
            "delete_module",
            "bpf",
            "perf_event_open",
            "keyctl",
            "add_key",
            "request_key",
        ] {
            assert!(
                !ALLOWED.contains(&denied),
                "{denied} must not be in the allow-list"
            );
        }
        for allowed in ["read", "execve", "ptrace", "chroot", "clone", "socket"] {
            let nr = ScmpSyscall::from_name(allowed).expect("known syscall");
            assert!(
                text.contains(&format!("if ($syscall == {})", i32::from(nr))),
                "{allowed} ({nr}) has a rule:\n{text}"
            );
        }
        assert!(text.contains("action ERRNO(38)"), "clone3 gets ENOSYS");
        assert!(
            text.contains("# default action\n  action ERRNO(1);"),
            "default EPERM:\n{text}"
        );
        for arch in ["x86_64", "x86", "x32"] {
            assert!(
                text.contains(&format!("# filter for arch {arch} (")),
                "{arch}"
            );
        }
    }
}
