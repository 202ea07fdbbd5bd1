//! File work on a container's root from the calling process, without a container.
//!
//! Copying files into an image (a Dockerfile's `COPY`, `WORKDIR`, git archives) needs the
//! container's *root* — the overlay of the lowers and the upper dir, so that a parent that is a
//! symlink in the image resolves inside the image and the upper dir records exactly the
//! writes — but none of its *process*: no PID/UTS/IPC/network namespaces, no `/proc` or
//! `/dev`, no init, no exec of a shell. Starting all that costs more than a small copy (BuildKit
//! runs its file operations in-process for the same reason).
//!
//! [`with_root`] runs a closure on a short-lived thread that enters a private mount namespace
//! (`unshare(CLONE_NEWNS)`, which implies `CLONE_FS` and, unlike `CLONE_VM`-sharing flags, is
//! allowed for one thread of a multi-threaded process), mounts the overlay there, `chroot`s into
//! it and unmounts it again before returning. Mount table, root and working directory change
//! for that thread only; nothing reaches the host's mount table, and if the process dies the
//! namespace dies with the thread.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::sys::{CloneFlags, LinuxSyscall, MntFlags, MsFlags, OverlayOptions, Syscall};

/// The root to work on: the dirs of [`crate::ContainerSpec`] that make the overlay.
#[derive(Clone, Debug)]
pub struct Root {
    /// Lower layers, topmost first; may be empty.
    pub lowers: Vec<PathBuf>,
    /// The upper dir, which receives every change.
    pub upper: PathBuf,
    /// The overlay's work dir (empty, on the same file system as `upper`).
    pub work: PathBuf,
    /// A private dir for the mountpoint (and the empty lower of a root without lowers).
    pub scratch: PathBuf,
}

/// What can go wrong while entering or leaving the root; the closure's own result is
/// returned as is.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {error}")]
pub struct Error {
    /// What was being done, e.g. `"mount overlay on"`.
    pub op: &'static str,
    /// The path it was done to.
    pub path: PathBuf,
    /// The OS error (not a `source`: the message already says it).
    pub error: io::Error,
}

/// Runs `work` with `root` mounted as `/` (see the module docs); returns what `work` returned.
/// Paths `work` opens resolve inside the root, so it must open host files before it is called.
pub fn with_root<R: Send>(root: &Root, work: impl FnOnce() -> R + Send) -> Result<R, Error> {
    with_root_on(&LinuxSyscall, root, work)
}

fn with_root_on<R: Send>(
    sys: &(dyn Syscall + Sync),
    root: &Root,
    work: impl FnOnce() -> R + Send,
) -> Result<R, Error> {
    let target = root.scratch.join("files-root");
    let empty = root.scratch.join("files-empty");
    let err = |op, path: &Path| {
        let path = path.to_path_buf();
        move |error| Error { op, path, error }
    };
    for dir in [&target, &empty] {
        std::fs::create_dir_all(dir).map_err(err("create", dir))?;
    }
    let mut lowers = root.lowers.clone();
    if lowers.is_empty() {
        // overlayfs needs at least one lower.
        lowers.push(empty);
    }
    let options = OverlayOptions {
        lowers,
        upper: root.upper.clone(),
        work: root.work.clone(),
    };
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| -> Result<R, Error> {
            sys.unshare(CloneFlags::CLONE_NEWNS)
                .map_err(err("unshare the mount namespace for", &target))?;
            // A private copy: the overlay must not propagate to the host's shared mounts.
            sys.mount(
                None,
                Path::new("/"),
                None,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None,
            )
            .map_err(err("make private", Path::new("/")))?;
            // The root of the new namespace, to come back to before unmounting (the mount is
            // out of reach from inside it); opened after unshare, or it would lead back into
            // the old namespace's tree, where the overlay is not mounted.
            let host_root = File::open("/").map_err(err("open", Path::new("/")))?;
            sys.mount_overlay(&target, &options)
                .map_err(err("mount overlay on", &target))?;
            // Left and unmounted on every way out of the closure, a panic included, so the
            // caller may read and move the upper dir as soon as this thread is joined (a
            // namespace dying with its thread is torn down after the join returns).
            let mounted = Mounted {
                sys,
                target: &target,
                host_root,
                left: false,
            };
            let value = sys
                .chroot(&target)
                .and_then(|()| sys.chdir(Path::new("/")))
                .map_err(err("enter", &target))
                .map(|()| work());
            let left = mounted.leave();
            let value = value?;
            left?;
            Ok(value)
        });
        match thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// The overlay mounted at `target` and (maybe) entered: [`Mounted::leave`] or drop goes back to
/// `host_root` and unmounts.
struct Mounted<'a> {
    sys: &'a (dyn Syscall + Sync),
    target: &'a Path,
    host_root: File,
    left: bool,
}

impl Mounted<'_> {
    fn leave(mut self) -> Result<(), Error> {
        self.left = true;
        self.leave_and_unmount()
    }

    fn leave_and_unmount(&self) -> Result<(), Error> {
        let path = self.target.to_path_buf();
        self.sys
            .fchdir(self.host_root.as_fd())
            .and_then(|()| self.sys.chroot(Path::new(".")))
            .map_err(|error| Error {
                op: "leave",
                path: path.clone(),
                error,
            })?;
        // Nothing but this thread used the mount; should something still hold it, detach it
        // rather than leave it behind.
        self.sys
            .umount2(self.target, MntFlags::empty())
            .or_else(|_| self.sys.umount2(self.target, MntFlags::MNT_DETACH))
            .map_err(|error| Error {
                op: "unmount",
                path,
                error,
            })
    }
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        if !self.left {
            // The closure panicked; the panic is what gets reported.
            let _ = self.leave_and_unmount();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{Call, FakeSyscall};

    fn root(dir: &Path, lowers: Vec<PathBuf>) -> Root {
        Root {
            lowers,
            upper: dir.join("upper"),
            work: dir.join("work"),
            scratch: dir.join("scratch"),
        }
    }

    #[test]
    fn enters_a_private_overlay_and_leaves_it_unmounted() {
        let dir = tempfile::tempdir().unwrap();
        let root = root(dir.path(), Vec::new());
        let sys = FakeSyscall::new();
        let value = with_root_on(&sys, &root, || 7).unwrap();
        assert_eq!(value, 7);
        let target = root.scratch.join("files-root");
        assert_eq!(
            sys.calls(),
            vec![
                Call::Unshare(CloneFlags::CLONE_NEWNS),
                Call::Mount {
                    source: None,
                    target: "/".into(),
                    fstype: None,
                    flags: MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                    data: None,
                },
                Call::MountOverlay {
                    target: target.clone(),
                    options: OverlayOptions {
                        lowers: vec![root.scratch.join("files-empty")],
                        upper: root.upper.clone(),
                        work: root.work.clone(),
                    },
                },
                Call::Chroot(target.clone()),
                Call::Chdir("/".into()),
                Call::Fchdir,
                Call::Chroot(".".into()),
                Call::Umount2 {
                    target,
                    flags: MntFlags::empty(),
                },
            ]
        );
    }

    #[test]
    fn a_failed_mount_skips_the_work() {
        let dir = tempfile::tempdir().unwrap();
        let root = root(dir.path(), vec![dir.path().join("lower")]);
        let sys = FakeSyscall::new().with_failing(root.scratch.join("files-root"));
        let mut ran = false;
        let err = with_root_on(&sys, &root, || ran = true).unwrap_err();
        assert!(!ran);
        assert_eq!(err.op, "mount overlay on");
        assert!(!sys.calls().iter().any(|c| matches!(c, Call::Chroot(_))));
    }

    #[test]
    fn a_panicking_closure_still_leaves_and_unmounts() {
        let dir = tempfile::tempdir().unwrap();
        let root = root(dir.path(), vec![dir.path().join("lower")]);
        let sys = FakeSyscall::new();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            with_root_on(&sys, &root, || panic!("the closure failed"))
        }));
        assert!(result.is_err());
        let calls = sys.calls();
        assert_eq!(
            calls[calls.len() - 3..],
            [
                Call::Fchdir,
                Call::Chroot(".".into()),
                Call::Umount2 {
                    target: root.scratch.join("files-root"),
                    flags: MntFlags::empty(),
                },
            ]
        );
    }
}
