//! The one door to the kernel for container setup (STYLE rule 6).
//!
//! Everything the init process does to build the container's world — `unshare`, `mount`, the
//! overlay mount, `pivot_root`, `umount2`, `chdir`, `sethostname`, and the few file creations
//! inside freshly mounted file systems — goes through [`Syscall`]. [`LinuxSyscall`] performs
//! the calls; [`FakeSyscall`] records them, so unit tests assert the exact mount sequence
//! without root (youki's `syscall/{syscall,linux,test}.rs`).
//!
//! Identity switching and `execve` in the command's child are not behind the trait: they run
//! after the last mount and are covered by the integration tests instead.

mod fake;
mod linux;

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

pub use fake::{Call, FakeSyscall};
pub use linux::{LinuxSyscall, open_beneath};
pub use nix::mount::{MntFlags, MsFlags};
pub use nix::sched::CloneFlags;

/// The options of an overlay mount, passed one by one through the new mount API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverlayOptions {
    /// Lower layers, topmost first (each one becomes a `lowerdir+` parameter).
    pub lowers: Vec<PathBuf>,
    /// `upperdir`.
    pub upper: PathBuf,
    /// `workdir`.
    pub work: PathBuf,
}

/// The kernel calls used to set up a container.
pub trait Syscall {
    /// `unshare(2)`: move the calling process into new namespaces.
    fn unshare(&self, flags: CloneFlags) -> io::Result<()>;
    /// `mount(2)` with the classic API.
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()>;
    /// Mounts an overlay on `target` with the new mount API (`fsopen`/`fsconfig`/`fsmount`/
    /// `move_mount`), with `redirect_dir`, `index` and `metacopy` off, `nodev` (read-only too
    /// without an upper). Relative layer paths resolve from the working directory and are
    /// shown as given in the mount table.
    fn mount_overlay(&self, target: &Path, options: &OverlayOptions) -> io::Result<()>;
    /// `umount2(2)`.
    fn umount2(&self, target: &Path, flags: MntFlags) -> io::Result<()>;
    /// `pivot_root(2)`.
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()>;
    /// `chdir(2)`.
    fn chdir(&self, path: &Path) -> io::Result<()>;
    /// `fchdir(2)`: makes the open directory `dir` the working directory.
    fn fchdir(&self, dir: BorrowedFd<'_>) -> io::Result<()>;
    /// `chroot(2)`: changes the root of the calling thread's fs context.
    fn chroot(&self, path: &Path) -> io::Result<()>;
    /// `sethostname(2)` in the current UTS namespace.
    fn sethostname(&self, name: &str) -> io::Result<()>;
    /// Sets the `IFF_UP` flag of the loopback interface of the current network namespace.
    fn loopback_up(&self) -> io::Result<()>;
    /// Whether `path` exists (without following a final symlink).
    fn exists(&self, path: &Path) -> bool;
    /// `mkdir -p` (mode 0755).
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates an empty regular file to bind a file onto (the `mknod` of runc).
    fn create_file(&self, path: &Path) -> io::Result<()>;
    /// Copies the host file `from` to `to` (contents and permission bits).
    fn copy_file(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// `symlink(2)`: creates `link` pointing at `target`.
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    /// Opens `rel` beneath the directory `root` as an `O_PATH` fd, following no link on the
    /// way (`openat2` with `RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS`); an
    /// empty `rel` is `root` itself. A link gives `ELOOP`, a way out `EXDEV`.
    fn open_beneath(&self, root: &Path, rel: &Path) -> io::Result<OwnedFd>;
}
