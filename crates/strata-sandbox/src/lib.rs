//! Runs one process tree in a prepared root: a minimal OCI-style runtime for a builder.
//!
//! # What it owns
//!
//! * **Namespaces**: new mount, PID, UTS and IPC namespaces, plus network for
//!   [`Network::None`] (only `lo`, up). Mount propagation is private: nothing leaks to the
//!   host's mount table.
//! * **The root**: an overlay of the image layers ([`ContainerSpec::lowers`], topmost first)
//!   and an upper dir, mounted with the new mount API. A generated *skeleton* lower holds
//!   every mountpoint, so **the upper dir never contains a mountpoint** — after a run it holds
//!   exactly what the process changed, ready to become a layer (see [`overlay`]).
//! * **Inside**: `/proc`, read-only `/sys`, a tmpfs `/dev` with only `null zero full random
//!   urandom tty`, `pts` (new instance), `shm` and the usual symlinks; the spec's bind and
//!   tmpfs and overlay mounts; runc's masks; then `pivot_root` (see [`rootfs`]).
//! * **The process**: host name, user (`uid[:gid]` or names from the image's `/etc/passwd`),
//!   supplementary groups, cwd, exactly the given environment, `PATH` lookup with the
//!   container's `PATH`. Our own PID 1 reaps zombies, forwards SIGTERM/SIGINT/SIGHUP/SIGQUIT
//!   and exits with the command's status; the whole tree dies with the caller.
//! * **Terminals**: [`pty`] (pairs, window size, raw mode), [`Sandbox::run_interactive`],
//!   and [`Sandbox::spawn_console`] for a caller that copies the console itself.
//! * **Confinement** ([`security`]): BuildKit's defaults unless [`Security::Insecure`] —
//!   containerd's default capability set, a seccomp profile equivalent to docker's (x86-64/x86/x32,
//!   compiled to BPF by libseccomp when the crate is built), runc's masked and read-only paths, `/sys` read-only without cgroups;
//!   every overlay, `/dev` and every bind `nodev` (device nodes can be made, not opened);
//!   read-only directories as read-only overlays (not remountable); no host path in the
//!   container's mount table (short overlay layer names, [`MountKind::Copy`] for small files).
//!
//! # What it does not do
//!
//! No user namespace of its own (the command runs as strata's own root, confined by
//! capabilities and seccomp, so files written into the upper dir get the ids the process used;
//! run by an ordinary user, strata first enters one for the whole process: [`rootless`]), no
//! cgroups (no resource
//! limits, no device cgroup: `nodev` stands in for it), no AppArmor/SELinux; no image, digest or
//! cache knowledge: it gets directories and returns an [`ExitStatus`]. Turning the upper dir
//! into a layer is `strata-layer`'s job. The host directory of a writable directory bind still
//! shows in `/proc/self/mountinfo` (a bind's root field is its path in the host file system).
//!
//! # How it runs
//!
//! The caller is multi-threaded, so [`Sandbox::spawn`] only starts a helper process
//! (`Sandbox::new(init)`), which must call [`init_main`] first thing; all real work happens
//! there and in its children ([`process`] has the process tree and the wire protocol). Every
//! setup call to the kernel goes through [`sys::Syscall`], whose [`sys::FakeSyscall`] lets unit
//! tests check the mount sequence without root.
//!
//! Errors before the command runs come back as [`Error::Setup`] with a message such as
//! `cwd /nope does not exist in the container`, a program that cannot be executed as
//! [`Error::Exec`] (`exec "nope": executable file not found in $PATH`, with the shell's exit
//! code for it: 127 or 126); a command that fails is an `Ok` with a non-zero [`ExitStatus`].
//!
//! # Pitfalls for callers
//!
//! * Before `spawn`: `upper`, `work`, `scratch` and every lower must exist (absolute paths);
//!   `work` must be empty or a previous work dir of the same upper, on the same file system;
//!   `scratch` must be private to this container (the skeleton is rebuilt there on every run
//!   and left behind; the caller deletes it). Bind sources must exist.
//! * The helper command must call [`init_main`] before starting any thread or runtime.
//! * The container is tied to the **thread** that called [`Sandbox::spawn`]
//!   (`PR_SET_PDEATHSIG` fires when the forking thread exits): spawn and wait on one thread
//!   that lives until [`Container::wait`] returns (not a pool thread that may retire).
//! * With [`Stdio::Piped`], read [`Container::take_output`] to EOF before `wait`, or read it
//!   on another thread; EOF arrives when the whole tree has exited.
//! * `spawn` returns before the container is set up; setup errors come from
//!   [`Container::wait`] or [`Container::wait_started`]. Spec errors found on the host come
//!   from `spawn`. Both are [`Error::Setup`].
//! * A bind mount of a file is a bind of that inode: tools that replace the file by rename
//!   (e.g. `sed -i /etc/hosts`) fail with `EBUSY`, as in Docker.
//! * Dropping a [`Container`] without waiting kills and reaps it.
//!
//! # Example
//!
//! ```no_run
//! use std::io::Read;
//! use strata_sandbox::{ContainerSpec, Network, ProcessSpec, Sandbox, Security, Stdio};
//!
//! // In `main`, before anything else:
//! // if std::env::args().nth(1).as_deref() == Some("__sandbox-init") {
//! //     strata_sandbox::init_main();
//! // }
//! let sandbox = Sandbox::new(vec!["/proc/self/exe".into(), "__sandbox-init".into()]);
//! let spec = ContainerSpec {
//!     lowers: vec!["/var/lib/strata/layers/base".into()],
//!     upper: "/var/lib/strata/run/1/upper".into(),
//!     work: "/var/lib/strata/run/1/work".into(),
//!     scratch: "/var/lib/strata/run/1/scratch".into(),
//!     process: ProcessSpec {
//!         args: vec!["sh".into(), "-c".into(), "echo hello".into()],
//!         env: vec!["PATH=/usr/bin:/bin".into()],
//!         cwd: "/".into(),
//!         user: "0:0".into(),
//!         terminal: false,
//!     },
//!     hostname: "build".into(),
//!     mounts: vec![],
//!     network: Network::None,
//!     security: Security::Sandbox,
//! };
//! let mut container = sandbox.spawn(&spec, Stdio::Piped)?;
//! let mut output = String::new();
//! container.take_output().expect("piped").read_to_string(&mut output)?;
//! let status = container.wait()?;
//! assert!(status.success());
//! assert_eq!(output, "hello\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod container;
pub mod files;
pub mod namespaces;
pub mod overlay;
pub mod process;
pub mod pty;
pub mod rootfs;
pub mod rootless;
pub mod security;
mod spec;
pub mod sys;
pub mod user;

pub use container::{Attach, Container, Error, ExitStatus, Sandbox, Stdio};
pub use process::init_main;
pub use spec::{COPY_LIMIT, ContainerSpec, Mount, MountKind, Network, ProcessSpec, Security};
