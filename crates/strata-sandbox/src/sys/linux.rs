//! The real [`Syscall`]: thin wrappers over nix/rustix with the reasons for each call.

use std::fs;
use std::io::{self, Read};
use std::os::fd::BorrowedFd;
use std::os::unix::fs::symlink;
use std::path::Path;

use rustix::fd::{AsFd, OwnedFd};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags};

use super::{CloneFlags, MntFlags, MsFlags, OverlayOptions, Syscall};

/// Performs the calls on the running kernel.
#[derive(Clone, Copy, Debug, Default)]
pub struct LinuxSyscall;

fn errno(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

impl Syscall for LinuxSyscall {
    fn unshare(&self, flags: CloneFlags) -> io::Result<()> {
        // unshare(2): https://man7.org/linux/man-pages/man2/unshare.2.html
        // CLONE_NEWPID only affects children created afterwards; the caller must fork to get
        // a PID 1. nix's wrapper is the plain syscall (rustix 1.1 marks its own `unshare`
        // deprecated because it can break the thread library's assumptions; we are single-
        // threaded here).
        nix::sched::unshare(flags).map_err(errno)
    }

    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        // mount(2): https://man7.org/linux/man-pages/man2/mount.2.html
        nix::mount::mount(source, target, fstype, flags, data).map_err(errno)
    }

    fn mount_overlay(&self, target: &Path, options: &OverlayOptions) -> io::Result<()> {
        // The new mount API (fsopen(2), fsconfig(2), fsmount(2), move_mount(2)) sets every
        // option separately, so there is no single option string and no 4 KiB page limit on
        // the number of layers. `lowerdir+` (Linux 6.8, Documentation/filesystems/overlayfs.rst
        // "lowerdir+") appends one layer per call; the first appended is the topmost.
        // A volatile overlay leaves `work/incompat/volatile` behind, and overlayfs refuses to
        // mount an upper dir with that marker again (it cannot know whether the system crashed
        // meanwhile). Our remounts of a run's upper dir (file work, then the container; a
        // debugger shell) come from the same boot, so the upper dir is intact: drop the marker.
        if !options.upper.as_os_str().is_empty() && !options.work.as_os_str().is_empty() {
            match fs::remove_dir_all(options.work.join("work/incompat/volatile")) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
        let configure = || -> io::Result<()> {
            for lower in &options.lowers {
                rustix::mount::fsconfig_set_string(&fs, "lowerdir+", lower.as_path())?;
            }
            // Without an upper dir the overlay is read-only (overlayfs.rst "Multiple lower
            // layers": a mount with only lower layers).
            if !options.upper.as_os_str().is_empty() {
                rustix::mount::fsconfig_set_string(&fs, "upperdir", options.upper.as_path())?;
                rustix::mount::fsconfig_set_string(&fs, "workdir", options.work.as_path())?;
            }
            // The layer writer turns the upper dir into a tar layer and cannot express
            // redirects, metacopy-only files or the index; pin them off whatever the module
            // defaults are.
            // In a user namespace overlayfs cannot use `trusted.*` xattrs (they need
            // CAP_SYS_ADMIN on the host) and refuses to mount without `userxattr`: whiteout
            // metadata then lives in `user.overlay.*`, which strata-layer reads and writes by
            // the same test (`Xattrs::of_this_process`). With `userxattr` the kernel takes
            // only `redirect_dir=nofollow` (neither created nor followed, what `off` means
            // without `redirect_always_follow`; overlayfs.rst "Redirect dir").
            let rootless = crate::rootless::active();
            if rootless {
                rustix::mount::fsconfig_set_flag(&fs, "userxattr")?;
            }
            let redirect = if rootless { "nofollow" } else { "off" };
            rustix::mount::fsconfig_set_string(&fs, "redirect_dir", redirect)?;
            rustix::mount::fsconfig_set_string(&fs, "index", "off")?;
            rustix::mount::fsconfig_set_string(&fs, "metacopy", "off")?;
            // `volatile`: no sync of the upper file system when the overlay is unmounted (or
            // synced). A container's exit would otherwise wait for every byte the step wrote to
            // reach the disk (seconds for a large step), which the store then does once for
            // the layer anyway: durability is its job, at commit. The upper dir of a run is
            // scratch until committed, so a crash never needs it back.
            if !options.upper.as_os_str().is_empty() {
                rustix::mount::fsconfig_set_flag(&fs, "volatile")?;
            }
            rustix::mount::fsconfig_create(&fs)?;
            Ok(())
        };
        if let Err(e) = configure() {
            return Err(with_fs_log(e, &fs));
        }
        // nodev: a device node the container makes (mknod needs only CAP_MKNOD, which it has
        // as in docker) lands in the layer but cannot be opened here; docker's device cgroup
        // denies the same open. Without an upper the superblock is read-only already; the
        // mount says so too.
        let mut attrs = MountAttrFlags::MOUNT_ATTR_NODEV;
        if options.upper.as_os_str().is_empty() {
            attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY;
        }
        let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)?;
        // MOVE_MOUNT_F_EMPTY_PATH: the source is the detached mount `mnt` itself.
        rustix::mount::move_mount(
            mnt.as_fd(),
            "",
            rustix::fs::CWD,
            target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )?;
        Ok(())
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> io::Result<()> {
        // umount2(2): https://man7.org/linux/man-pages/man2/umount2.2.html
        nix::mount::umount2(target, flags).map_err(errno)
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
        // pivot_root(2): https://man7.org/linux/man-pages/man2/pivot_root.2.html
        nix::unistd::pivot_root(new_root, put_old).map_err(errno)
    }

    fn chdir(&self, path: &Path) -> io::Result<()> {
        nix::unistd::chdir(path).map_err(errno)
    }

    fn fchdir(&self, dir: BorrowedFd<'_>) -> io::Result<()> {
        Ok(rustix::process::fchdir(dir)?)
    }

    fn chroot(&self, path: &Path) -> io::Result<()> {
        // chroot(2) changes the root of the caller's fs context, which is the thread's own
        // after unshare(CLONE_FS) (implied by CLONE_NEWNS).
        Ok(rustix::process::chroot(path)?)
    }

    fn sethostname(&self, name: &str) -> io::Result<()> {
        // sethostname(2) changes the UTS namespace of the caller only.
        nix::unistd::sethostname(name).map_err(errno)
    }

    fn loopback_up(&self) -> io::Result<()> {
        // A new network namespace has `lo` down; SIOCSIFFLAGS on any socket of the namespace
        // sets it up (netdevice(7): https://man7.org/linux/man-pages/man7/netdevice.7.html).
        // SAFETY: plain socket/ioctl calls on a zeroed `ifreq` we own; the fd is wrapped
        // in an OwnedFd immediately so it is closed on every path.
        unsafe {
            let raw = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            if raw < 0 {
                return Err(io::Error::last_os_error());
            }
            let sock: OwnedFd = rustix::fd::FromRawFd::from_raw_fd(raw);
            let mut req: libc::ifreq = std::mem::zeroed();
            for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
                *dst = *src as libc::c_char;
            }
            use rustix::fd::AsRawFd;
            if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
                return Err(io::Error::last_os_error());
            }
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        path.symlink_metadata().is_ok()
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn create_file(&self, path: &Path) -> io::Result<()> {
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map(drop)
    }

    fn copy_file(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::copy(from, to).map(drop)
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        symlink(target, link)
    }

    fn open_beneath(&self, root: &Path, rel: &Path) -> io::Result<OwnedFd> {
        open_beneath(root, rel)
    }
}

/// [`Syscall::open_beneath`] on the running kernel, for callers outside the init too (the
/// worker checks a context source with it before the run).
pub fn open_beneath(root: &Path, rel: &Path) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    // openat2(2): https://man7.org/linux/man-pages/man2/openat2.2.html. `root` itself is the
    // caller's choice (the build context as given) and may be reached through links.
    let dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    Ok(rustix::fs::openat2(
        &dir,
        rel,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )?)
}

/// Appends the messages the kernel queued on the fs context (`read(2)` on an `fsopen` fd
/// returns lines like `e overlayfs: failed to resolve '/x': -2`) to a failed `fsconfig`.
fn with_fs_log(err: io::Error, fs: &OwnedFd) -> io::Error {
    let mut log = String::new();
    let mut file = fs::File::from(match fs.try_clone() {
        Ok(fd) => fd,
        Err(_) => return err,
    });
    let mut buf = [0u8; 1024];
    // Each read returns one message and fails with ENODATA when the log is empty.
    for _ in 0..16 {
        match file.read(&mut buf) {
            Ok(n) if n > 0 => {
                if !log.is_empty() {
                    log.push_str("; ");
                }
                log.push_str(String::from_utf8_lossy(&buf[..n]).trim());
            }
            _ => break,
        }
    }
    if log.is_empty() {
        err
    } else {
        io::Error::new(err.kind(), format!("{err} (kernel: {log})"))
    }
}
