//! The container's root: an overlay of a generated skeleton, the image layers and the upper dir.
//!
//! # Why a skeleton layer
//!
//! The upper dir becomes an image layer, so it must only ever hold what the process wrote.
//! Every mountpoint the container needs (`/proc`, `/dev`, `/sys` and the target of every
//! [`Mount`](crate::Mount)) has to exist before anything is mounted on it; creating it through
//! the merged view would put it in the upper dir. Instead [`build_skeleton`] writes those
//! paths into `scratch/skeleton`, which becomes the *topmost lower*: the mountpoints exist,
//! nothing is created in the merged view, and the upper dir stays clean.
//!
//! A skeleton directory shadows the attributes of the same directory in the image (overlayfs
//! takes a merged directory's attributes from its topmost layer, and copies them up from
//! there). So each skeleton directory gets the mode, owner and times of the first lower
//! that has that path as a real directory, and `/etc` keeps the image's attributes even
//! after the process creates a file in it.
//!
//! Side effects worth knowing:
//! * every parent of a mount target is a real directory in the merged view, even where an
//!   image has a symlink (e.g. `/var/run -> /run`); mount targets therefore never follow an
//!   image symlink;
//! * a bind of a file onto a path where the image has a symlink (`/etc/resolv.conf ->
//!   ../run/...`) works: the skeleton's empty file hides the symlink while mounted.
//!
//! # Short layer names
//!
//! overlayfs shows its options as given in `/proc/mounts` and `/proc/self/mountinfo`, which
//! the container can read. So no overlay is given a host path: [`link_layers`] makes symlinks
//! `scratch/l/<mount>/<n>` to the layer dirs (docker's overlay2 driver shortens its option
//! strings with `l/` links the same way), and the overlay gets the relative names, resolved
//! from `scratch` as the mounting process's working directory. The container then sees
//! `lowerdir=l/root/0:l/root/1,upperdir=l/root/u,...`.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown};
use std::path::{Path, PathBuf};

use crate::spec::{ContainerSpec, MountKind, container_path};
use crate::sys::{OverlayOptions, Syscall};

/// What can go wrong while building or mounting the root.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-system operation on the host failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done, e.g. `"create skeleton dir"`.
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A mount target is below another mount target that is a file.
    #[error("mount target {target} is below {file}, which is a file mount")]
    Conflict {
        /// The container path that cannot be created.
        target: String,
        /// The container path of the file in the way.
        file: PathBuf,
    },
    /// A mount target is not a clean absolute path.
    #[error("{0}")]
    Target(String),
    /// The overlay mount itself failed.
    #[error("mount overlay on {target}: {source}")]
    Mount {
        /// The root mountpoint.
        target: PathBuf,
        /// The error, with the kernel's fs-context log when there was one.
        source: io::Error,
    },
}

/// Where the sandbox puts things inside the caller's scratch dir.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The mountpoint of the container's root (`scratch/rootfs`).
    pub rootfs: PathBuf,
    /// The generated topmost lower (`scratch/skeleton`).
    pub skeleton: PathBuf,
    /// The working directory overlays are mounted from (`scratch`): their layer names are
    /// relative to it.
    pub scratch: PathBuf,
    /// The short names of overlay layers (`scratch/l`, see the module docs).
    pub links: PathBuf,
    /// An empty directory: the second lower of a read-only overlay of a single directory
    /// (overlayfs needs two lowers when it has no upper).
    pub empty: PathBuf,
}

impl Layout {
    /// The layout for a scratch dir.
    pub fn new(scratch: &Path) -> Layout {
        Layout {
            rootfs: scratch.join("rootfs"),
            skeleton: scratch.join("skeleton"),
            scratch: scratch.to_path_buf(),
            links: scratch.join("l"),
            empty: scratch.join("empty"),
        }
    }
}

/// The mountpoints every container has, besides the spec's mounts.
pub const BASE_DIRS: [&str; 3] = ["proc", "dev", "sys"];

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// (Re)creates `scratch/skeleton` and `scratch/rootfs` for `spec`.
///
/// Plain host file operations, no privileges needed beyond owning the scratch dir (copying an
/// owner other than our own needs root).
pub fn build_skeleton(spec: &ContainerSpec) -> Result<Layout, Error> {
    let layout = Layout::new(&spec.scratch);
    for old in [&layout.skeleton, &layout.links] {
        match fs::remove_dir_all(old) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove old skeleton", old)(e)),
        }
    }
    fs::create_dir_all(&layout.skeleton).map_err(io_err("create skeleton", &layout.skeleton))?;
    fs::create_dir_all(&layout.rootfs).map_err(io_err("create rootfs dir", &layout.rootfs))?;
    fs::create_dir_all(&layout.links).map_err(io_err("create layer links", &layout.links))?;
    fs::create_dir_all(&layout.empty).map_err(io_err("create empty lower", &layout.empty))?;

    // (relative path, is a file) for every mountpoint.
    let mut leaves: Vec<(PathBuf, bool)> = BASE_DIRS
        .iter()
        .map(|d| (PathBuf::from(d), false))
        .collect();
    for mount in &spec.mounts {
        let rel = container_path(&mount.target).map_err(Error::Target)?;
        let is_file = match mount.kind {
            MountKind::Tmpfs | MountKind::Overlay { .. } => false,
            MountKind::Copy { .. } => true,
            MountKind::Bind { .. } => !mount.source.is_dir(),
        };
        leaves.push((rel, is_file));
    }

    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    dirs.insert(PathBuf::new());
    for (rel, is_file) in &leaves {
        let mut prefix = PathBuf::new();
        let parts: Vec<_> = rel.components().collect();
        for (i, part) in parts.iter().enumerate() {
            prefix.push(part);
            let path = layout.skeleton.join(&prefix);
            let last = i + 1 == parts.len();
            let existing = path.symlink_metadata().ok();
            match existing {
                Some(m) if m.is_dir() => {
                    if last && *is_file {
                        // A file bind where another mount needs a directory: the kernel
                        // would refuse the bind anyway; say so now.
                        return Err(Error::Conflict {
                            target: format!("/{}", rel.display()),
                            file: prefix.clone(),
                        });
                    }
                }
                Some(_) => {
                    if !(last && *is_file) {
                        return Err(Error::Conflict {
                            target: format!("/{}", rel.display()),
                            file: prefix.clone(),
                        });
                    }
                }
                None if last && *is_file => {
                    fs::File::create(&path).map_err(io_err("create skeleton file", &path))?;
                    fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
                        .map_err(io_err("chmod skeleton file", &path))?;
                }
                None => {
                    fs::create_dir(&path).map_err(io_err("create skeleton dir", &path))?;
                    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                        .map_err(io_err("chmod skeleton dir", &path))?;
                }
            }
            if !(last && *is_file) {
                dirs.insert(prefix.clone());
            }
        }
    }

    // Deepest first: setting a child's attributes must not be undone by later work in it,
    // and a directory's mtime is only final once all its entries exist.
    let mut ordered: Vec<&PathBuf> = dirs.iter().collect();
    ordered.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for rel in ordered {
        if let Some(meta) = first_lower_dir(&spec.lowers, rel)? {
            copy_attributes(&layout.skeleton.join(rel), &meta)?;
        }
    }
    Ok(layout)
}

/// The metadata of `rel` in the first lower that has it, if that is a real directory.
///
/// Walks component by component without following symlinks, so an image symlink never makes
/// us read a host path. A whiteout, file or symlink at (or above) `rel` in a higher layer
/// hides the lower ones: then the answer is `None` (the skeleton keeps its defaults).
fn first_lower_dir(lowers: &[PathBuf], rel: &Path) -> Result<Option<fs::Metadata>, Error> {
    'lowers: for lower in lowers {
        let mut path = lower.clone();
        let meta = path
            .symlink_metadata()
            .map_err(io_err("stat lower", lower))?;
        let mut meta = meta;
        for part in rel.components() {
            path.push(part);
            match path.symlink_metadata() {
                Ok(m) if m.is_dir() => meta = m,
                Ok(_) => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue 'lowers,
                Err(e) => return Err(io_err("stat lower path", &path)(e)),
            }
        }
        return Ok(Some(meta));
    }
    Ok(None)
}

fn copy_attributes(path: &Path, meta: &fs::Metadata) -> Result<(), Error> {
    // Owner first: chown(2) clears set-id bits, so the mode goes after it.
    lchown(path, Some(meta.uid()), Some(meta.gid())).map_err(io_err("chown skeleton", path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(io_err("chmod skeleton", path))?;
    let times = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: meta.atime(),
            tv_nsec: meta.atime_nsec() as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec() as _,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| io_err("set times on skeleton", path)(e.into()))?;
    Ok(())
}

/// Replaces the dirs of `options` by short names relative to [`Layout::scratch`]: symlinks
/// `l/<name>/<n>` (lowers, topmost first), `l/<name>/u` and `l/<name>/w` (see the module docs).
/// The caller mounts with `scratch` as its working directory.
pub fn link_layers(
    sys: &dyn Syscall,
    layout: &Layout,
    name: &str,
    options: &OverlayOptions,
) -> Result<OverlayOptions, Error> {
    let dir = layout.links.join(name);
    sys.create_dir_all(&dir)
        .map_err(io_err("create layer links", &dir))?;
    let link = |short: String, target: &Path| -> Result<PathBuf, Error> {
        if target.as_os_str().is_empty() {
            return Ok(PathBuf::new());
        }
        let path = dir.join(&short);
        sys.symlink(target, &path)
            .map_err(io_err("create layer link", &path))?;
        Ok(Path::new("l").join(name).join(short))
    };
    let lowers = options
        .lowers
        .iter()
        .enumerate()
        .map(|(i, lower)| link(i.to_string(), lower))
        .collect::<Result<_, _>>()?;
    Ok(OverlayOptions {
        lowers,
        upper: link("u".into(), &options.upper)?,
        work: link("w".into(), &options.work)?,
    })
}

/// Mounts the overlay root: skeleton on top, then the spec's lowers, then the upper dir, with
/// short layer names (the caller's working directory is `layout.scratch`).
pub fn mount_root(sys: &dyn Syscall, layout: &Layout, spec: &ContainerSpec) -> Result<(), Error> {
    let mut lowers = Vec::with_capacity(spec.lowers.len() + 1);
    lowers.push(layout.skeleton.clone());
    lowers.extend(spec.lowers.iter().cloned());
    let options = OverlayOptions {
        lowers,
        upper: spec.upper.clone(),
        work: spec.work.clone(),
    };
    let options = link_layers(sys, layout, "root", &options)?;
    sys.mount_overlay(&layout.rootfs, &options)
        .map_err(|source| Error::Mount {
            target: layout.rootfs.clone(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Mount, Network, ProcessSpec};
    use std::os::unix::fs::symlink;

    fn spec(dir: &Path, lowers: Vec<PathBuf>, mounts: Vec<Mount>) -> ContainerSpec {
        let scratch = dir.join("scratch");
        fs::create_dir_all(&scratch).expect("scratch because the tempdir is writable");
        ContainerSpec {
            lowers,
            upper: dir.join("upper"),
            work: dir.join("work"),
            scratch,
            process: ProcessSpec {
                args: vec!["true".into()],
                env: vec![],
                cwd: "/".into(),
                user: String::new(),
                terminal: false,
            },
            hostname: "h".into(),
            mounts,
            network: Network::Host,
            security: Default::default(),
        }
    }

    fn mkdirp(path: &Path, mode: u32) {
        fs::create_dir_all(path).expect("mkdir in tempdir");
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod in tempdir");
    }

    fn bind(target: &str, source: &Path) -> Mount {
        Mount {
            target: target.into(),
            source: source.to_path_buf(),
            kind: MountKind::Bind { readonly: true },
            beneath: None,
        }
    }

    #[test]
    fn skeleton_has_every_mountpoint_with_lower_attributes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let lower = tmp.path().join("lower");
        mkdirp(&lower.join("etc"), 0o750);
        symlink("../run/resolv.conf", lower.join("etc/resolv.conf")).expect("symlink");
        let old = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 1_000_000,
                tv_nsec: 0,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: 1_000_000,
                tv_nsec: 7,
            },
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            lower.join("etc"),
            &old,
            rustix::fs::AtFlags::empty(),
        )
        .expect("utimensat");
        let resolv = tmp.path().join("resolv.conf");
        fs::write(&resolv, "nameserver 1.1.1.1\n").expect("write");
        let cache = tmp.path().join("cache");
        mkdirp(&cache, 0o755);
        let spec = spec(
            tmp.path(),
            vec![lower.clone()],
            vec![
                bind("/etc/resolv.conf", &resolv),
                bind("/var/cache/x", &cache),
                Mount {
                    target: "/tmp".into(),
                    source: PathBuf::new(),
                    kind: MountKind::Tmpfs,
                    beneath: None,
                },
            ],
        );
        let layout = build_skeleton(&spec).expect("skeleton");
        let sk = &layout.skeleton;
        for dir in ["proc", "dev", "sys", "var/cache/x", "tmp"] {
            assert!(sk.join(dir).is_dir(), "{dir}");
        }
        let file = sk.join("etc/resolv.conf").symlink_metadata().expect("stat");
        assert!(file.is_file());
        assert_eq!(file.len(), 0);
        let etc = sk.join("etc").symlink_metadata().expect("stat etc");
        assert_eq!(etc.mode() & 0o7777, 0o750);
        assert_eq!((etc.mtime(), etc.mtime_nsec()), (1_000_000, 7));
        assert!(layout.rootfs.is_dir());
        // Rebuilding starts from scratch.
        let again = build_skeleton(&spec).expect("skeleton again");
        assert_eq!(again, layout);
    }

    #[test]
    fn lower_symlink_and_whiteout_hide_deeper_layers() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let top = tmp.path().join("top");
        let bottom = tmp.path().join("bottom");
        mkdirp(&top.join("var"), 0o755);
        symlink("/", top.join("var/run")).expect("symlink");
        mkdirp(&bottom.join("var/run"), 0o700);
        assert!(
            first_lower_dir(&[top.clone(), bottom.clone()], Path::new("var/run"))
                .expect("lookup")
                .is_none()
        );
        assert!(
            first_lower_dir(&[top.clone(), bottom.clone()], Path::new("var/run/x"))
                .expect("lookup")
                .is_none()
        );
        let found = first_lower_dir(&[tmp.path().join("none"), bottom], Path::new("var/run"));
        assert!(found.is_err(), "a missing lower dir is an error");
    }

    #[test]
    fn file_mount_in_the_way_is_a_conflict() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("f");
        fs::write(&file, "").expect("write");
        let spec = spec(
            tmp.path(),
            vec![],
            vec![bind("/a", &file), bind("/a/b", tmp.path())],
        );
        let err = build_skeleton(&spec).expect_err("conflict");
        assert!(matches!(err, Error::Conflict { .. }), "{err}");
    }

    #[test]
    fn overlay_puts_skeleton_on_top() {
        let sys = crate::sys::LinuxSyscall;
        let fake = crate::sys::FakeSyscall::new();
        let tmp = tempfile::tempdir().expect("tempdir");
        let (l1, l2) = (tmp.path().join("l1"), tmp.path().join("l2"));
        for l in [&l1, &l2] {
            mkdirp(l, 0o755);
        }
        let spec = spec(tmp.path(), vec![l1.clone(), l2.clone()], vec![]);
        let layout = build_skeleton(&spec).expect("skeleton");
        // The links for real, the mount recorded.
        let linked = link_layers(
            &sys,
            &layout,
            "root",
            &OverlayOptions {
                lowers: vec![layout.skeleton.clone(), l1.clone(), l2.clone()],
                upper: spec.upper.clone(),
                work: spec.work.clone(),
            },
        )
        .expect("links");
        mount_root(&fake, &layout, &spec).expect("mount");
        let calls = fake.calls();
        let crate::sys::Call::MountOverlay { target, options } = &calls[calls.len() - 1] else {
            panic!("{calls:?}");
        };
        assert_eq!(target, &layout.rootfs);
        // Short names relative to scratch, linked to the real dirs: no host path in the
        // options the container can read.
        assert_eq!(
            options.lowers,
            ["l/root/0", "l/root/1", "l/root/2"].map(PathBuf::from)
        );
        assert_eq!(options.upper, PathBuf::from("l/root/u"));
        assert_eq!(options, &linked);
        let resolved: Vec<PathBuf> = options
            .lowers
            .iter()
            .chain([&options.upper, &options.work])
            .map(|l| fs::read_link(layout.scratch.join(l)).expect("a link"))
            .collect();
        assert_eq!(
            resolved,
            vec![
                layout.skeleton.clone(),
                l1,
                l2,
                spec.upper.clone(),
                spec.work.clone()
            ]
        );
    }
}
