//! Everything mounted inside the root, in order, and the switch into it.
//!
//! [`setup`] runs in the container's PID 1, inside the new mount namespace, and only talks to
//! the kernel through [`Syscall`]. The order is fixed and unit-tested:
//!
//! 1. `/` becomes recursively private, so no mount below propagates back to the host;
//! 2. the overlay root ([`crate::overlay`]);
//! 3. `/proc`, `/sys` (read-only), `/dev` (tmpfs with bound host devices, `pts`, `shm`);
//! 4. the spec's mounts, in order;
//! 5. runc's masks over `/proc` and `/sys` (after `/proc`, so they land on it), unless the
//!    spec is [`Security::Insecure`];
//! 6. `pivot_root` and the detach of the old root ([`pivot`]).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::overlay::{self, Layout};
use crate::spec::{ContainerSpec, Mount, MountKind, Network, Security, container_path};
use crate::sys::{MntFlags, MsFlags, OverlayOptions, Syscall};

/// What can go wrong while mounting the container's file systems.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A mount (or the file operation creating its mountpoint) failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done, e.g. `"mount proc on"`.
        op: String,
        /// The host path (under the root mountpoint) involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The overlay root could not be mounted.
    #[error(transparent)]
    Overlay(#[from] overlay::Error),
    /// A mount target is not a clean absolute path.
    #[error("{0}")]
    Target(String),
    /// A mount target is reached through a link (one a container left in an earlier mount).
    #[error(
        "mount target {target} is not reached from the container's root without a link ({path}): {source}"
    )]
    TargetLink {
        /// The container path of the target.
        target: String,
        /// The host path that could not be opened.
        path: PathBuf,
        /// The OS error (`ELOOP` for a link).
        source: io::Error,
    },
    /// A mount source could not be opened beneath its directory without a link on the way.
    #[error("open the mount source {path} beneath {root} without following a link: {source}")]
    Beneath {
        /// The host path of the source.
        path: PathBuf,
        /// The directory it must be reached in ([`Mount::beneath`]).
        root: PathBuf,
        /// The OS error (`ELOOP` for a link, `EXDEV` for a way out).
        source: io::Error,
    },
}

/// Host devices bound into the container's `/dev`.
pub const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Symlinks created in `/dev` (name, target).
pub const DEV_LINKS: [(&str, &str); 5] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

/// `/proc` files hidden behind `/dev/null` (runc's default `maskedPaths`).
pub const MASKED_FILES: [&str; 6] = [
    "proc/kcore",
    "proc/keys",
    "proc/timer_list",
    "proc/sched_debug",
    "proc/latency_stats",
    "proc/timer_stats",
];

/// Directories hidden behind an empty read-only tmpfs (the rest of runc's and containerd's
/// default `maskedPaths`).
pub const MASKED_DIRS: [&str; 5] = [
    "proc/acpi",
    "proc/asound",
    "proc/scsi",
    "sys/firmware",
    "sys/devices/virtual/powercap",
];

/// Paths remounted read-only (runc's default `readonlyPaths`).
pub const READONLY_PATHS: [&str; 5] = [
    "proc/bus",
    "proc/fs",
    "proc/irq",
    "proc/sys",
    "proc/sysrq-trigger",
];

struct Ctx<'a> {
    sys: &'a dyn Syscall,
    root: &'a Path,
}

impl Ctx<'_> {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<(), Error> {
        self.sys
            .mount(source, target, fstype, flags, data)
            .map_err(|source_err| Error::Io {
                op: match fstype {
                    Some(fs) => format!("mount {fs} on"),
                    None if flags.contains(MsFlags::MS_REMOUNT) => "remount".to_owned(),
                    None if flags.contains(MsFlags::MS_PRIVATE) => {
                        "make mounts private at".to_owned()
                    }
                    None => match source {
                        Some(s) => format!("bind {} to", s.display()),
                        None => "mount".to_owned(),
                    },
                },
                path: target.to_path_buf(),
                source: source_err,
            })
    }

    fn fs_op(&self, op: &str, path: &Path, result: io::Result<()>) -> Result<(), Error> {
        result.map_err(|source| Error::Io {
            op: op.to_owned(),
            path: path.to_path_buf(),
            source,
        })
    }

    /// Sets a bind's per-mount flags to `flags` (plus `MS_RDONLY` when `readonly`). A bind
    /// needs two calls: the flags of the first `MS_BIND` are ignored by the kernel, only a
    /// `MS_REMOUNT|MS_BIND` changes them (mount(2), "Creating a bind mount").
    fn remount_bind(&self, target: &Path, readonly: bool, flags: MsFlags) -> Result<(), Error> {
        let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags;
        if readonly {
            flags |= MsFlags::MS_RDONLY;
        }
        self.mount(None, target, None, flags, None)
    }

    /// The `index`th spec mount as an overlay, with short layer names (`l/m<index>/...`).
    fn overlay(
        &self,
        layout: &Layout,
        index: usize,
        target: &Path,
        options: &OverlayOptions,
    ) -> Result<(), Error> {
        let options = overlay::link_layers(self.sys, layout, &format!("m{index}"), options)?;
        self.sys
            .mount_overlay(target, &options)
            .map_err(|source| Error::Io {
                op: "mount overlay on".to_owned(),
                path: target.to_path_buf(),
                source,
            })
    }
}

/// Our mount namespace starts as a copy of the host's, with its shared peer groups; without
/// MS_PRIVATE every mount made in it would propagate to the host (mount_namespaces(7)).
fn make_private(ctx: &Ctx) -> Result<(), Error> {
    ctx.mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )
}

/// Makes the mount namespace private and puts a tmpfs of its own over the sandbox's `scratch`
/// dir, before the skeleton layer, the layer links and the root mountpoint are made there
/// ([`crate::overlay::build_skeleton`]): in memory, and gone with the namespace, instead of a
/// few dozen inodes made, synced and removed on the host's disk for every container.
pub fn scratch_in_memory(sys: &dyn Syscall, scratch: &Path) -> Result<(), Error> {
    let ctx = Ctx { sys, root: scratch };
    make_private(&ctx)?;
    ctx.mount(
        Some(Path::new("tmpfs")),
        scratch,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=700"),
    )
}

/// Mounts the root and everything in it (steps 1–5 of the module docs).
pub fn setup(sys: &dyn Syscall, layout: &Layout, spec: &ContainerSpec) -> Result<(), Error> {
    let ctx = Ctx {
        sys,
        root: &layout.rootfs,
    };
    make_private(&ctx)?;
    // Overlays get layer names relative to scratch (see `overlay`, "Short layer names").
    ctx.fs_op("chdir to", &layout.scratch, sys.chdir(&layout.scratch))?;
    overlay::mount_root(sys, layout, spec)?;
    // sysfs(5) shows the network namespace of the mounting process and may be mounted fresh
    // in a user namespace only by the owner of that network namespace: rootless with the
    // host's network it is the host's sysfs, bound.
    let bind_sys = spec.network == Network::Host && crate::rootless::active();
    mount_proc_sys(&ctx, spec.security, bind_sys)?;
    mount_dev(&ctx)?;
    let copies = layout.scratch.join("files");
    if spec
        .mounts
        .iter()
        .any(|m| matches!(m.kind, MountKind::Copy { .. }))
    {
        // The copies live on a tmpfs of their own, mounted outside the root: after the pivot
        // only the binds of its files remain, whose mount-table root is `/<n>`.
        ctx.fs_op("create dir", &copies, sys.create_dir_all(&copies))?;
        ctx.mount(
            Some(Path::new("tmpfs")),
            &copies,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("mode=755"),
        )?;
    }
    for (i, mount) in spec.mounts.iter().enumerate() {
        let rel = container_path(&mount.target).map_err(Error::Target)?;
        let target = ctx.root.join(&rel);
        // The fds of the sources opened beneath `mount.beneath`, dropped with this iteration:
        // the init holds none of them when the command starts.
        let mut fds = Vec::new();
        let source = source_path(sys, mount, &mount.source, &mut fds)?;
        let is_file = match mount.kind {
            MountKind::Bind { .. } => !source.is_dir(),
            MountKind::Copy { .. } => true,
            MountKind::Tmpfs | MountKind::Overlay { .. } => false,
        };
        check_target(sys, ctx.root, &rel, &mount.target)?;
        // The skeleton provides every target on the overlay; a target inside an earlier
        // tmpfs or bind mount does not exist yet and is created there (never in upper).
        if !sys.exists(&target) {
            let result = if is_file {
                match target.parent() {
                    Some(parent) => sys.create_dir_all(parent),
                    None => Ok(()),
                }
                .and_then(|()| sys.create_file(&target))
            } else {
                sys.create_dir_all(&target)
            };
            ctx.fs_op("create mountpoint", &target, result)?;
        }
        match &mount.kind {
            // A read-only directory: an overlay of it alone (with an empty second lower). Its
            // superblock is read-only, so no remount can make it writable (not even with
            // `security.insecure`), and the mount table shows `overlay` with a short name
            // instead of the host directory as a bind's root.
            MountKind::Bind { readonly: true } if !is_file => {
                let options = OverlayOptions {
                    lowers: vec![source.clone(), layout.empty.clone()],
                    upper: PathBuf::new(),
                    work: PathBuf::new(),
                };
                ctx.overlay(layout, i, &target, &options)?;
            }
            &MountKind::Bind { readonly } => {
                ctx.mount(
                    Some(&source),
                    &target,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )?;
                ctx.remount_bind(&target, readonly, MsFlags::MS_NODEV)?;
            }
            &MountKind::Copy { readonly } => {
                let copy = copies.join(i.to_string());
                ctx.fs_op(
                    "copy into the container",
                    &copy,
                    sys.copy_file(&mount.source, &copy),
                )?;
                ctx.mount(Some(&copy), &target, None, MsFlags::MS_BIND, None)?;
                ctx.remount_bind(&target, readonly, MsFlags::MS_NODEV | MsFlags::MS_NOSUID)?;
            }
            MountKind::Tmpfs => ctx.mount(
                Some(Path::new("tmpfs")),
                &target,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some("mode=1777"),
            )?,
            MountKind::Overlay {
                lowers,
                upper,
                work,
            } => {
                // The same fsopen/`lowerdir+` code as the root (see `LinuxSyscall`), so any
                // number of layers fits and the options are pinned the same way.
                let lowers = lowers
                    .iter()
                    .map(|l| source_path(sys, mount, l, &mut fds))
                    .collect::<Result<_, _>>()?;
                let options = OverlayOptions {
                    lowers,
                    upper: upper.clone(),
                    work: work.clone(),
                };
                ctx.overlay(layout, i, &target, &options)?;
            }
        }
    }
    match spec.security {
        Security::Sandbox => mask(&ctx),
        // As `--privileged`: no masked or read-only paths.
        Security::Insecure => Ok(()),
    }
}

/// Checks that the target `rel` (or, while it does not exist, its deepest existing ancestor)
/// is reached beneath `root` without a link. The skeleton keeps links off the overlay's way to
/// every target, but a target inside an earlier mount of the spec is inside what the user or a
/// container put there (a cache dir keeps a container's `ln -s /etc x`), and the init resolves
/// paths in the host's root until the pivot: following such a link would create the
/// mountpoint, or mount, on the host. Below the checked ancestor everything is created here.
fn check_target(sys: &dyn Syscall, root: &Path, rel: &Path, target: &str) -> Result<(), Error> {
    let mut at = rel;
    loop {
        match sys.open_beneath(root, at) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound && !at.as_os_str().is_empty() => {
                at = at.parent().unwrap_or(Path::new(""));
            }
            Err(source) => {
                return Err(Error::TargetLink {
                    target: target.to_owned(),
                    path: root.join(at),
                    source,
                });
            }
        }
    }
}

/// The path to mount `path` of `mount` from: `path` itself, or for a path beneath
/// [`Mount::beneath`] its fd opened there without a link on the way (kept in `fds`), named
/// `/proc/self/fd/N`. mount(2) and overlayfs follow that magic link to the opened file itself,
/// so a link swapped in for the path after the caller's check (or after this open) changes
/// nothing; only the init's own fds are reachable that way, and they are closed before the
/// command runs.
fn source_path(
    sys: &dyn Syscall,
    mount: &Mount,
    path: &Path,
    fds: &mut Vec<OwnedFd>,
) -> Result<PathBuf, Error> {
    let Some(root) = &mount.beneath else {
        return Ok(path.to_path_buf());
    };
    let Ok(rel) = path.strip_prefix(root) else {
        return Ok(path.to_path_buf());
    };
    let fd = sys
        .open_beneath(root, rel)
        .map_err(|source| Error::Beneath {
            path: path.to_path_buf(),
            root: root.clone(),
            source,
        })?;
    let named = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    fds.push(fd);
    Ok(named)
}

fn mount_proc_sys(ctx: &Ctx<'_>, security: Security, bind_sys: bool) -> Result<(), Error> {
    // proc(5) shows the PID namespace of the mounting process: this runs in PID 1 of the new
    // namespace, so the container sees only its own tree.
    ctx.mount(
        Some(Path::new("proc")),
        &ctx.root.join("proc"),
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )?;
    // Read-only as in runc's default spec; a fresh sysfs has an empty `fs/cgroup`, so no
    // cgroup hierarchy is reachable (no `release_agent`). Writable with `security.insecure`
    // (containerd's `WithWriteableSysfs` for privileged containers).
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let sys = ctx.root.join("sys");
    if bind_sys {
        // The host's sysfs and what is mounted below it (recursive: the kernel refuses a
        // bind that would uncover mounts locked in a user namespace); writes need the host's
        // permissions anyway, as it belongs to the host's user namespace. Read-only too
        // unless insecure, and the cgroup hierarchy hidden as a fresh sysfs has none.
        ctx.mount(
            Some(Path::new("/sys")),
            &sys,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
        ctx.remount_bind(&sys, security == Security::Sandbox, flags)?;
        let cgroup = sys.join("fs/cgroup");
        if ctx.sys.exists(&cgroup) {
            ctx.mount(
                Some(Path::new("tmpfs")),
                &cgroup,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | flags,
                Some("mode=755"),
            )?;
        }
        return Ok(());
    }
    if security == Security::Sandbox {
        flags |= MsFlags::MS_RDONLY;
    }
    ctx.mount(Some(Path::new("sysfs")), &sys, Some("sysfs"), flags, None)
}

fn mount_dev(ctx: &Ctx<'_>) -> Result<(), Error> {
    let dev = ctx.root.join("dev");
    // A tmpfs, not the host's devtmpfs: only the devices below exist. MS_NODEV: a node the
    // container makes here with mknod(2) (CAP_MKNOD, as in docker) cannot be opened, which
    // docker's device cgroup ensures there. The bound host nodes still work: a bind mount
    // has the flags of its source mount, the host's /dev. MS_NOSUID as in runc.
    ctx.mount(
        Some(Path::new("tmpfs")),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for name in DEVICES {
        let target = dev.join(name);
        ctx.fs_op("create device file", &target, ctx.sys.create_file(&target))?;
        // Binding the host node instead of mknod(2): works the same in a user namespace and
        // keeps the host's permissions on the node.
        ctx.mount(
            Some(&Path::new("/dev").join(name)),
            &target,
            None,
            MsFlags::MS_BIND,
            None,
        )?;
    }
    for (name, link) in DEV_LINKS {
        let path = dev.join(name);
        ctx.fs_op(
            "create symlink",
            &path,
            ctx.sys.symlink(Path::new(link), &path),
        )?;
    }
    let pts = dev.join("pts");
    ctx.fs_op("create dir", &pts, ctx.sys.create_dir_all(&pts))?;
    // newinstance: a private devpts, so container ptys are not the host's
    // (https://docs.kernel.org/filesystems/devpts.html); /dev/ptmx links to its ptmx.
    ctx.mount(
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=620"),
    )?;
    let shm = dev.join("shm");
    ctx.fs_op("create dir", &shm, ctx.sys.create_dir_all(&shm))?;
    ctx.mount(
        Some(Path::new("shm")),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    )
}

fn mask(ctx: &Ctx<'_>) -> Result<(), Error> {
    let null = ctx.root.join("dev/null");
    for rel in MASKED_FILES {
        let path = ctx.root.join(rel);
        if ctx.sys.exists(&path) {
            ctx.mount(Some(&null), &path, None, MsFlags::MS_BIND, None)?;
        }
    }
    for rel in MASKED_DIRS {
        let path = ctx.root.join(rel);
        if ctx.sys.exists(&path) {
            ctx.mount(
                Some(Path::new("tmpfs")),
                &path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None,
            )?;
        }
    }
    for rel in READONLY_PATHS {
        let path = ctx.root.join(rel);
        if ctx.sys.exists(&path) {
            ctx.mount(
                Some(&path),
                &path,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )?;
            // Keep /proc's own flags: a remount replaces all per-mount flags.
            ctx.remount_bind(
                &path,
                true,
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            )?;
        }
    }
    Ok(())
}

/// Makes `rootfs` the root of the mount namespace and drops the old root.
///
/// Uses `pivot_root(".", ".")` (pivot_root(2), NOTES): the old root is stacked on top of the
/// new one at `/`, so no `put_old` directory is needed in the image, and unmounting `.` with
/// `MNT_DETACH` removes it. Unlike `chroot(2)` the host tree is then unreachable.
pub fn pivot(sys: &dyn Syscall, rootfs: &Path) -> Result<(), Error> {
    let wrap = |op: &str, path: &Path, r: io::Result<()>| {
        r.map_err(|source| Error::Io {
            op: op.to_owned(),
            path: path.to_path_buf(),
            source,
        })
    };
    wrap("chdir to", rootfs, sys.chdir(rootfs))?;
    let dot = Path::new(".");
    wrap("pivot_root to", rootfs, sys.pivot_root(dot, dot))?;
    wrap(
        "detach old root",
        dot,
        sys.umount2(dot, MntFlags::MNT_DETACH),
    )?;
    wrap("chdir to", Path::new("/"), sys.chdir(Path::new("/")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Mount, Network, ProcessSpec};
    use crate::sys::{Call, FakeSyscall};

    fn spec(mounts: Vec<Mount>) -> ContainerSpec {
        ContainerSpec {
            lowers: vec!["/layers/a".into()],
            upper: "/s/upper".into(),
            work: "/s/work".into(),
            scratch: "/s".into(),
            process: ProcessSpec {
                args: vec!["true".into()],
                env: vec![],
                cwd: "/".into(),
                user: String::new(),
                terminal: false,
            },
            hostname: "h".into(),
            mounts,
            network: Network::None,
            security: Default::default(),
        }
    }

    fn resolv() -> Mount {
        Mount {
            target: "/etc/resolv.conf".into(),
            source: "/host/resolv.conf".into(),
            kind: MountKind::Bind { readonly: true },
            beneath: None,
        }
    }

    fn position(calls: &[Call], pred: impl Fn(&Call) -> bool) -> usize {
        calls
            .iter()
            .position(pred)
            .unwrap_or_else(|| panic!("call not found in {calls:#?}"))
    }

    fn mount_target(call: &Call) -> Option<&Path> {
        match call {
            Call::Mount { target, .. } => Some(target),
            Call::MountOverlay { target, .. } => Some(target),
            _ => None,
        }
    }

    #[test]
    fn mount_sequence() {
        let fake = FakeSyscall::new().with_missing("/s/rootfs/proc/timer_stats");
        let layout = Layout::new(Path::new("/s"));
        setup(&fake, &layout, &spec(vec![resolv()])).expect("setup");
        let calls = fake.calls();
        let targets: Vec<_> = calls.iter().filter_map(mount_target).collect();
        let root = Path::new("/s/rootfs");
        let mut expected: Vec<PathBuf> = vec!["/".into(), root.into()];
        expected.extend(["proc", "sys", "dev"].map(|p| root.join(p)));
        expected.extend(DEVICES.map(|d| root.join("dev").join(d)));
        expected.extend(["dev/pts", "dev/shm"].map(|p| root.join(p)));
        expected.extend([root.join("etc/resolv.conf"), root.join("etc/resolv.conf")]);
        expected.extend(MASKED_FILES[..5].iter().map(|p| root.join(p)));
        expected.extend(MASKED_DIRS.map(|p| root.join(p)));
        for p in READONLY_PATHS {
            expected.extend([root.join(p), root.join(p)]);
        }
        assert_eq!(targets, expected);

        // Propagation is private before anything is mounted.
        assert_eq!(
            calls[0],
            Call::Mount {
                source: None,
                target: "/".into(),
                fstype: None,
                flags: MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                data: None,
            }
        );
        // resolv.conf: bind, then a read-only remount of the bind.
        let bind = position(
            &calls,
            |c| matches!(c, Call::Mount { source: Some(s), .. } if s == Path::new("/host/resolv.conf")),
        );
        assert_eq!(
            calls[bind + 1],
            Call::Mount {
                source: None,
                target: root.join("etc/resolv.conf"),
                fstype: None,
                flags: MsFlags::MS_BIND
                    | MsFlags::MS_REMOUNT
                    | MsFlags::MS_RDONLY
                    | MsFlags::MS_NODEV,
                data: None,
            }
        );
        // Overlay layer names are relative to scratch, the working directory from here on.
        let chdir = position(&calls, |c| *c == Call::Chdir("/s".into()));
        let root_overlay = position(&calls, |c| matches!(c, Call::MountOverlay { .. }));
        assert!(chdir < root_overlay);
        // /dev is nodev: a node made there with mknod cannot be opened.
        let dev = position(&calls, |c| mount_target(c) == Some(&root.join("dev")));
        assert!(
            matches!(&calls[dev], Call::Mount { flags, .. } if flags.contains(MsFlags::MS_NODEV))
        );
        // /sys is read-only.
        let sys = position(&calls, |c| mount_target(c) == Some(&root.join("sys")));
        assert!(
            matches!(&calls[sys], Call::Mount { flags, .. } if flags.contains(MsFlags::MS_RDONLY))
        );
        // kcore is bound from the container's /dev/null, after /proc and /dev exist.
        let kcore = position(&calls, |c| {
            mount_target(c) == Some(&root.join("proc/kcore"))
        });
        assert!(
            matches!(&calls[kcore], Call::Mount { source: Some(s), .. } if s == &root.join("dev/null"))
        );
        // Mountpoints are never created on the overlay: only inside /dev's tmpfs.
        for call in &calls {
            if let Call::CreateFile(p) | Call::CreateDirAll(p) = call
                && p.starts_with(root)
            {
                assert!(p.starts_with(root.join("dev")), "{p:?}");
            }
        }
    }

    #[test]
    fn insecure_has_no_masks_and_a_writable_sys() {
        let fake = FakeSyscall::new();
        let layout = Layout::new(Path::new("/s"));
        let mut spec = spec(vec![]);
        spec.security = Security::Insecure;
        setup(&fake, &layout, &spec).expect("setup");
        let calls = fake.calls();
        let root = Path::new("/s/rootfs");
        let sys = position(&calls, |c| mount_target(c) == Some(&root.join("sys")));
        assert!(
            matches!(&calls[sys], Call::Mount { flags, .. } if !flags.contains(MsFlags::MS_RDONLY))
        );
        let masked = calls.iter().filter_map(mount_target).any(|t| {
            MASKED_FILES
                .iter()
                .chain(&MASKED_DIRS)
                .chain(&READONLY_PATHS)
                .any(|m| t == root.join(m))
        });
        assert!(!masked, "{calls:#?}");
    }

    #[test]
    fn rootless_host_network_binds_the_host_sys_read_only() {
        let fake = FakeSyscall::new();
        let root = Path::new("/s/rootfs");
        let ctx = Ctx { sys: &fake, root };
        mount_proc_sys(&ctx, Security::Sandbox, true).expect("mount");
        let calls = fake.calls();
        let sys = root.join("sys");
        let on_sys: Vec<_> = calls
            .iter()
            .filter_map(|c| match c {
                Call::Mount {
                    source,
                    target,
                    fstype,
                    flags,
                    ..
                } if target == &sys => Some((source.clone(), fstype.clone(), *flags)),
                _ => None,
            })
            .collect();
        let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        assert_eq!(
            on_sys,
            [
                (
                    Some(PathBuf::from("/sys")),
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC
                ),
                (
                    None,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | nosuid
                ),
            ]
        );
        // No cgroup hierarchy, as in a fresh sysfs.
        assert!(calls.iter().any(|c| matches!(c,
            Call::Mount { target, fstype: Some(fs), flags, .. }
                if target == &sys.join("fs/cgroup") && fs == "tmpfs"
                    && flags.contains(MsFlags::MS_RDONLY))));
    }

    #[test]
    fn read_only_dirs_are_overlays_and_copies_come_from_a_tmpfs() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let fake = FakeSyscall::new();
        let layout = Layout::new(Path::new("/s"));
        let mounts = vec![
            Mount {
                target: "/.strata/toolbox".into(),
                source: tmp.path().to_path_buf(),
                kind: MountKind::Bind { readonly: true },
                beneath: None,
            },
            Mount {
                target: "/etc/hosts".into(),
                source: "/host/hosts".into(),
                kind: MountKind::Copy { readonly: false },
                beneath: None,
            },
        ];
        setup(&fake, &layout, &spec(mounts)).expect("setup");
        let calls = fake.calls();
        let toolbox = Call::MountOverlay {
            target: "/s/rootfs/.strata/toolbox".into(),
            options: OverlayOptions {
                lowers: vec!["l/m0/0".into(), "l/m0/1".into()],
                upper: PathBuf::new(),
                work: PathBuf::new(),
            },
        };
        position(&calls, |c| *c == toolbox);
        position(&calls, |c| {
            *c == Call::Symlink {
                target: tmp.path().to_path_buf(),
                link: "/s/l/m0/0".into(),
            }
        });
        let tmpfs = position(&calls, |c| mount_target(c) == Some(Path::new("/s/files")));
        let copy = position(&calls, |c| {
            *c == Call::CopyFile {
                from: "/host/hosts".into(),
                to: "/s/files/1".into(),
            }
        });
        let bind = position(&calls, |c| {
            matches!(c, Call::Mount { source: Some(s), target, .. }
                if s == Path::new("/s/files/1") && target == Path::new("/s/rootfs/etc/hosts"))
        });
        assert!(tmpfs < copy && copy < bind);
        assert_eq!(
            calls[bind + 1],
            Call::Mount {
                source: None,
                target: "/s/rootfs/etc/hosts".into(),
                fstype: None,
                flags: MsFlags::MS_BIND
                    | MsFlags::MS_REMOUNT
                    | MsFlags::MS_NODEV
                    | MsFlags::MS_NOSUID,
                data: None,
            }
        );
    }

    #[test]
    fn target_inside_a_tmpfs_is_created_there() {
        let fake = FakeSyscall::new().with_missing("/s/rootfs/cache/x");
        let layout = Layout::new(Path::new("/s"));
        let mounts = vec![
            Mount {
                target: "/cache".into(),
                source: PathBuf::new(),
                kind: MountKind::Tmpfs,
                beneath: None,
            },
            Mount {
                target: "/cache/x".into(),
                source: "/".into(),
                kind: MountKind::Bind { readonly: false },
                beneath: None,
            },
        ];
        setup(&fake, &layout, &spec(mounts)).expect("setup");
        let calls = fake.calls();
        let tmpfs = position(&calls, |c| {
            mount_target(c) == Some(Path::new("/s/rootfs/cache"))
        });
        let mkdir = position(&calls, |c| {
            *c == Call::CreateDirAll("/s/rootfs/cache/x".into())
        });
        assert!(tmpfs < mkdir);
    }

    #[test]
    fn overlay_mount_uses_the_new_mount_api_at_its_target() {
        let fake = FakeSyscall::new();
        let layout = Layout::new(Path::new("/s"));
        let mounts = vec![Mount {
            target: "/debugroot".into(),
            source: PathBuf::new(),
            kind: MountKind::Overlay {
                lowers: vec!["/broken".into(), "/base".into()],
                upper: "/session/upper".into(),
                work: "/session/work".into(),
            },
            beneath: None,
        }];
        setup(&fake, &layout, &spec(mounts)).expect("setup");
        let calls = fake.calls();
        let expected = Call::MountOverlay {
            target: "/s/rootfs/debugroot".into(),
            options: OverlayOptions {
                lowers: vec!["l/m0/0".into(), "l/m0/1".into()],
                upper: "l/m0/u".into(),
                work: "l/m0/w".into(),
            },
        };
        for (link, target) in [("0", "/broken"), ("1", "/base"), ("u", "/session/upper")] {
            position(&calls, |c| {
                *c == Call::Symlink {
                    target: target.into(),
                    link: Path::new("/s/l/m0").join(link),
                }
            });
        }
        let at = position(&calls, |c| *c == expected);
        // After /dev, before the masks.
        let shm = position(&calls, |c| {
            mount_target(c) == Some(Path::new("/s/rootfs/dev/shm"))
        });
        let kcore = position(&calls, |c| {
            mount_target(c) == Some(Path::new("/s/rootfs/proc/kcore"))
        });
        assert!(shm < at && at < kcore);
    }

    #[test]
    fn sources_beneath_a_context_are_mounted_from_fds_opened_there() {
        let fake = FakeSyscall::new().with_failing("/ctx/swapped");
        let layout = Layout::new(Path::new("/s"));
        let context = |target: &str, source: &str, kind: MountKind| Mount {
            target: target.into(),
            source: source.into(),
            kind,
            beneath: Some("/ctx".into()),
        };
        let mounts = vec![
            context("/ro", "/ctx/data", MountKind::Bind { readonly: true }),
            context("/rw", "/ctx/data", MountKind::Bind { readonly: false }),
            context(
                "/hidden",
                "",
                MountKind::Overlay {
                    lowers: vec!["/store/whiteouts".into(), "/ctx".into()],
                    upper: PathBuf::new(),
                    work: PathBuf::new(),
                },
            ),
        ];
        setup(&fake, &layout, &spec(mounts)).expect("setup");
        let calls = fake.calls();
        let opened = |rel: &str| {
            position(&calls, |c| {
                *c == Call::OpenBeneath {
                    root: "/ctx".into(),
                    rel: rel.into(),
                }
            })
        };
        // Each use opens the source again, right before its own mount.
        let fd_path = |c: &Call| match c {
            Call::Symlink { target, .. }
            | Call::Mount {
                source: Some(target),
                ..
            } => target.starts_with("/proc/self/fd/"),
            _ => false,
        };
        let ro = opened("data");
        let layer = calls[ro..]
            .iter()
            .find(|c| matches!(c, Call::Symlink { link, .. } if link == Path::new("/s/l/m0/0")))
            .expect("the read-only bind's layer link");
        assert!(fd_path(layer), "{layer:?}");
        let rw = ro
            + 1
            + position(
                &calls[ro + 1..],
                |c| matches!(c, Call::OpenBeneath { rel, .. } if rel == Path::new("data")),
            );
        let bind = &calls[rw + 1..]
            .iter()
            .find(|c| mount_target(c) == Some(Path::new("/s/rootfs/rw")))
            .expect("the rw bind");
        assert!(fd_path(bind), "{bind:?}");
        // In an overlay only the lower beneath the context is opened there.
        let hidden = opened("");
        let links: Vec<_> = calls[hidden..]
            .iter()
            .filter_map(|c| match c {
                Call::Symlink { target, link } if link.starts_with("/s/l/m2") => Some(target),
                _ => None,
            })
            .collect();
        assert_eq!(links[0], Path::new("/store/whiteouts"));
        assert!(links[1].starts_with("/proc/self/fd/"), "{links:?}");
        // No source is ever mounted by its path under the context.
        for call in &calls {
            if let Call::Mount {
                source: Some(s), ..
            }
            | Call::Symlink { target: s, .. } = call
            {
                assert!(!s.starts_with("/ctx"), "{call:?}");
            }
        }

        // A link swapped in fails the setup, naming the source and the context.
        let fake = FakeSyscall::new().with_failing("/ctx/swapped");
        let mounts = vec![context(
            "/m",
            "/ctx/swapped",
            MountKind::Bind { readonly: false },
        )];
        let err = setup(&fake, &layout, &spec(mounts)).expect_err("a link");
        assert_eq!(
            err.to_string(),
            "open the mount source /ctx/swapped beneath /ctx without following a link: \
             Too many levels of symbolic links (os error 40)"
        );
        assert!(
            !fake
                .calls()
                .iter()
                .any(|c| mount_target(c) == Some(Path::new("/s/rootfs/m"))),
            "mounted after all"
        );
    }

    #[test]
    fn failing_mount_names_the_path() {
        let fake = FakeSyscall::new().with_failing("/s/rootfs/proc");
        let err = setup(&fake, &Layout::new(Path::new("/s")), &spec(vec![])).expect_err("fails");
        assert_eq!(
            err.to_string(),
            "mount proc on /s/rootfs/proc: Invalid argument (os error 22)"
        );
    }

    #[test]
    fn pivot_sequence() {
        let fake = FakeSyscall::new();
        pivot(&fake, Path::new("/s/rootfs")).expect("pivot");
        assert_eq!(
            fake.calls(),
            vec![
                Call::Chdir("/s/rootfs".into()),
                Call::PivotRoot {
                    new_root: ".".into(),
                    put_old: ".".into()
                },
                Call::Umount2 {
                    target: ".".into(),
                    flags: MntFlags::MNT_DETACH
                },
                Call::Chdir("/".into()),
            ]
        );
    }
}
