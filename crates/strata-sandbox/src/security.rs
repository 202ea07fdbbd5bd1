//! What the command may do: capabilities and the seccomp profile (BuildKit's defaults).
//!
//! A build step gets what a `docker run` or a BuildKit `RUN` gets from containerd's default
//! OCI spec, run by runc: the capability set of [`DEFAULT_CAPABILITIES`] and a seccomp
//! allow-list equivalent to moby's/containerd's default profile. More is only
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
//! The profile is written as data in `src/seccomp_profile.rs` (its allow-list and conditional
//! rules), read from moby's `profiles/seccomp/default_linux.go` for what it allows with
//! the default capability set on x86-64 (with the x86 and x32 ABIs, as docker's arch map):
//! the syscalls gated on capabilities the container does not have are simply absent, `ptrace`
//! and `process_vm_*` are allowed (moby allows them on kernels from 4.8), `io_uring_*` is
//! left out (moby dropped it from the default profile in 2023). Names the build's libseccomp
//! does not know (newer than its syscall table) are skipped, as runc does: they get the
//! default action. The build script has libseccomp compile it into a BPF program, embedded
//! here ([`PROGRAM`]) and loaded with seccomp(2) directly, as runc's libseccomp would load it.

use std::io;

use caps::{CapSet, Capability, CapsHashSet};

use crate::spec::Security;

/// What can go wrong while preparing or applying the confinement.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel refused the seccomp filter.
    #[error("seccomp: load the filter: {0}")]
    Seccomp(io::Error),
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

/// The default profile's BPF program (see the module docs), as libseccomp exported it: for
/// x86-64, x86 and x32; default action `EPERM`; `clone3` fails with `ENOSYS`, so the C
/// library falls back to `clone`, whose namespace flags are then checked; `socket` for every
/// family but `AF_VSOCK`; `personality` for a few values only.
pub const PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/seccomp.bpf"));

/// The confinement of one container's command, prepared before the command's fork.
pub struct Confinement {
    /// [`PROGRAM`] as instructions.
    program: Vec<libc::sock_filter>,
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
            Security::Sandbox => Ok(Some(Confinement {
                program: instructions(PROGRAM),
            })),
        }
    }

    /// Loads the filter, then cuts the capability sets (see the module docs for the order).
    /// Call it in the command's child, right before switching user and `execve`.
    pub fn apply(&self) -> Result<(), Error> {
        load(&self.program)?;
        drop_capabilities()
    }
}

/// BPF instructions from their exported form: 8 bytes each in the machine's byte order
/// (`struct sock_filter`: code, jt, jf, k).
fn instructions(bytes: &[u8]) -> Vec<libc::sock_filter> {
    bytes
        .chunks_exact(8)
        .map(|i| libc::sock_filter {
            code: u16::from_ne_bytes([i[0], i[1]]),
            jt: i[2],
            jf: i[3],
            k: u32::from_ne_bytes([i[4], i[5], i[6], i[7]]),
        })
        .collect()
}

/// Installs `program` as this thread's seccomp filter, without `no_new_privs` (which the
/// kernel then requires `CAP_SYS_ADMIN` for) and without flags: what libseccomp's
/// `seccomp_load` does for a filter with `NNP` off and no `TSYNC`.
fn load(program: &[libc::sock_filter]) -> Result<(), Error> {
    let len = u16::try_from(program.len()).map_err(|_| {
        Error::Seccomp(io::Error::other(format!(
            "a program of {} instructions is longer than the kernel takes",
            program.len()
        )))
    })?;
    let fprog = libc::sock_fprog {
        len,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `len` initialized instructions that outlive the call; the
    // kernel copies the program.
    let loaded = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const libc::sock_fprog,
        )
    };
    if loaded != 0 {
        return Err(Error::Seccomp(io::Error::last_os_error()));
    }
    Ok(())
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
#[path = "seccomp_profile.rs"]
mod seccomp_profile;

#[cfg(test)]
mod tests {
    use super::seccomp_profile::{ALLOWED, filter};
    use super::*;
    use libseccomp::ScmpSyscall;

    #[test]
    fn default_mask_is_dockers() {
        // CapBnd of `docker run --rm debian grep Cap /proc/self/status`.
        assert_eq!(default_capability_mask(), 0x0000_0000_a804_25fb);
    }

    /// What libseccomp exports of the profile's filter through `export` (to a file).
    fn exported(export: impl FnOnce(&libseccomp::ScmpFilterContext, &std::fs::File)) -> Vec<u8> {
        let filter = filter().unwrap_or_else(|e| panic!("{e}"));
        let mut file = tempfile::tempfile().expect("tempfile");
        export(&filter, &file);
        let mut bytes = Vec::new();
        std::io::Seek::rewind(&mut file).expect("rewind");
        std::io::Read::read_to_end(&mut file, &mut bytes).expect("read");
        bytes
    }

    #[test]
    fn the_embedded_program_is_the_profile_compiled() {
        let bpf = exported(|f, file| f.export_bpf(file).expect("export the filter as BPF"));
        assert_eq!(PROGRAM, bpf.as_slice());
        assert_eq!(instructions(PROGRAM).len() * 8, PROGRAM.len());
    }

    #[test]
    fn profile_builds_and_denies_what_docker_denies() {
        let pfc = exported(|f, file| f.export_pfc(file).expect("export the filter as text"));
        let text = String::from_utf8(pfc).expect("the text is UTF-8");
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
