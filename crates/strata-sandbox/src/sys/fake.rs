//! A recording [`Syscall`] for unit tests: nothing touches the kernel.

use std::collections::HashSet;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{CloneFlags, MntFlags, MsFlags, OverlayOptions, Syscall};

/// One recorded call, with its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // the fields mirror the Syscall arguments one to one
pub enum Call {
    Unshare(CloneFlags),
    Mount {
        source: Option<PathBuf>,
        target: PathBuf,
        fstype: Option<String>,
        flags: MsFlags,
        data: Option<String>,
    },
    MountOverlay {
        target: PathBuf,
        options: OverlayOptions,
    },
    Umount2 {
        target: PathBuf,
        flags: MntFlags,
    },
    PivotRoot {
        new_root: PathBuf,
        put_old: PathBuf,
    },
    Chdir(PathBuf),
    Fchdir,
    Chroot(PathBuf),
    Sethostname(String),
    LoopbackUp,
    CreateDirAll(PathBuf),
    CreateFile(PathBuf),
    CopyFile {
        from: PathBuf,
        to: PathBuf,
    },
    Symlink {
        target: PathBuf,
        link: PathBuf,
    },
    OpenBeneath {
        root: PathBuf,
        rel: PathBuf,
    },
}

/// Records every call; every path exists unless marked missing; a call on a path marked
/// failing returns `EINVAL`.
#[derive(Debug, Default)]
pub struct FakeSyscall {
    calls: Mutex<Vec<Call>>,
    missing: HashSet<PathBuf>,
    failing: HashSet<PathBuf>,
}

impl FakeSyscall {
    /// A fake on which every path exists and every call succeeds.
    pub fn new() -> FakeSyscall {
        FakeSyscall::default()
    }

    /// Makes [`Syscall::exists`] return false for `path`.
    pub fn with_missing(mut self, path: impl Into<PathBuf>) -> FakeSyscall {
        self.missing.insert(path.into());
        self
    }

    /// Makes mount calls whose target is `path` fail with `EINVAL`.
    pub fn with_failing(mut self, path: impl Into<PathBuf>) -> FakeSyscall {
        self.failing.insert(path.into());
        self
    }

    /// The calls so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Call>> {
        // A poisoned lock only means another test thread panicked; the record is still usable.
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record(&self, call: Call, target: Option<&Path>) -> io::Result<()> {
        self.lock().push(call);
        match target {
            Some(t) if self.failing.contains(t) => Err(io::Error::from_raw_os_error(libc::EINVAL)),
            _ => Ok(()),
        }
    }
}

impl Syscall for FakeSyscall {
    fn unshare(&self, flags: CloneFlags) -> io::Result<()> {
        self.record(Call::Unshare(flags), None)
    }

    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        let call = Call::Mount {
            source: source.map(Path::to_path_buf),
            target: target.to_path_buf(),
            fstype: fstype.map(str::to_owned),
            flags,
            data: data.map(str::to_owned),
        };
        self.record(call, Some(target))
    }

    fn mount_overlay(&self, target: &Path, options: &OverlayOptions) -> io::Result<()> {
        let call = Call::MountOverlay {
            target: target.to_path_buf(),
            options: options.clone(),
        };
        self.record(call, Some(target))
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> io::Result<()> {
        let call = Call::Umount2 {
            target: target.to_path_buf(),
            flags,
        };
        self.record(call, Some(target))
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
        let call = Call::PivotRoot {
            new_root: new_root.to_path_buf(),
            put_old: put_old.to_path_buf(),
        };
        self.record(call, None)
    }

    fn chdir(&self, path: &Path) -> io::Result<()> {
        self.record(Call::Chdir(path.to_path_buf()), None)
    }

    fn fchdir(&self, _dir: BorrowedFd<'_>) -> io::Result<()> {
        self.record(Call::Fchdir, None)
    }

    fn chroot(&self, path: &Path) -> io::Result<()> {
        self.record(Call::Chroot(path.to_path_buf()), Some(path))
    }

    fn sethostname(&self, name: &str) -> io::Result<()> {
        self.record(Call::Sethostname(name.to_owned()), None)
    }

    fn loopback_up(&self) -> io::Result<()> {
        self.record(Call::LoopbackUp, None)
    }

    fn exists(&self, path: &Path) -> bool {
        !self.missing.contains(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.record(Call::CreateDirAll(path.to_path_buf()), None)
    }

    fn create_file(&self, path: &Path) -> io::Result<()> {
        self.record(Call::CreateFile(path.to_path_buf()), None)
    }

    fn copy_file(&self, from: &Path, to: &Path) -> io::Result<()> {
        let call = Call::CopyFile {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
        };
        self.record(call, None)
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        let call = Call::Symlink {
            target: target.to_path_buf(),
            link: link.to_path_buf(),
        };
        self.record(call, None)
    }

    /// Records the call and fails with `ELOOP` for a path marked failing (`root/rel`);
    /// otherwise returns an `O_PATH` fd of `/` (a directory), the only kernel call of the
    /// fake, because the caller needs a real fd number to name.
    fn open_beneath(&self, root: &Path, rel: &Path) -> io::Result<OwnedFd> {
        let call = Call::OpenBeneath {
            root: root.to_path_buf(),
            rel: rel.to_path_buf(),
        };
        self.lock().push(call);
        if self.failing.contains(&root.join(rel)) {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        Ok(rustix::fs::open(
            "/",
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?)
    }
}
