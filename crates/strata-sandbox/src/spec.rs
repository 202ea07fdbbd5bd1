//! The container description the caller hands to [`Sandbox::spawn`](crate::Sandbox::spawn).
//!
//! These types cross a process boundary: the caller serialises them as JSON into a pipe and the
//! re-executed init helper reads them back (see [`crate::process`]). [`ContainerSpec::validate`]
//! catches the mistakes that can be found without entering the namespaces, so they come back
//! from `spawn` instead of from inside the container.

use std::path::{Component, Path, PathBuf};

/// Everything needed to run one process tree in a fresh root.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ContainerSpec {
    /// Read-only layer directories, topmost first; may be empty (a `FROM scratch` image).
    pub lowers: Vec<PathBuf>,
    /// The writable layer directory; must exist. After the run it holds exactly what the
    /// process changed (overlayfs whiteouts included) and never a mountpoint.
    pub upper: PathBuf,
    /// The overlay work directory: must exist, be empty and be on the same file system as `upper`.
    pub work: PathBuf,
    /// A private directory the sandbox may use (the root mountpoint and the skeleton layer).
    pub scratch: PathBuf,
    /// The command to run.
    pub process: ProcessSpec,
    /// The host name inside the container's UTS namespace (set as given, even when empty).
    pub hostname: String,
    /// Extra mounts, applied in order after `/proc`, `/sys` and `/dev`.
    pub mounts: Vec<Mount>,
    /// Whether the container shares the host network.
    pub network: Network,
    /// Capabilities, seccomp and masks: BuildKit's defaults unless the build was granted
    /// `security.insecure` for this step.
    #[serde(default)]
    pub security: Security,
}

/// How much the container's command may do (BuildKit's `RUN --security`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Security {
    /// containerd's default spec: the default capability set, the default seccomp profile,
    /// runc's masked and read-only paths, `/sys` read-only (see [`crate::security`]).
    #[default]
    Sandbox,
    /// The `security.insecure` entitlement (`docker run --privileged`): every capability, no
    /// seccomp, no masked or read-only paths, `/sys` writable. The mounts stay as they are:
    /// `nodev`, read-only binds as read-only overlays.
    Insecure,
}

/// The command, its environment and identity.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ProcessSpec {
    /// `argv`; `args[0]` is looked up in the container's `PATH` unless it contains a `/`.
    pub args: Vec<String>,
    /// The complete environment as `KEY=value`; nothing from the host is added.
    pub env: Vec<String>,
    /// The absolute working directory inside the container; it must exist (`""` means `/`).
    pub cwd: String,
    /// `""`, `root`, `uid`, `uid:gid`, `name` or `name:group`; names are resolved from the
    /// container's `/etc/passwd` and `/etc/group`.
    pub user: String,
    /// The stdio fds are a terminal: the command becomes a session leader with stdin as its
    /// controlling terminal.
    pub terminal: bool,
}

/// One extra mount.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mount {
    /// Absolute path inside the container.
    pub target: String,
    /// Host path to bind (ignored for [`MountKind::Tmpfs`] and [`MountKind::Overlay`]).
    pub source: PathBuf,
    /// What to mount.
    pub kind: MountKind,
    /// A directory the user or a container controls (the build context) that `source` or
    /// an overlay's lowers lie in. The init opens each such path beneath it with no link on
    /// the way (see [`Syscall::open_beneath`](crate::sys::Syscall::open_beneath)) and mounts
    /// from that fd, so a link swapped in after the caller checked the path fails the run
    /// instead of mounting what the link leads to. Paths outside it are mounted by path.
    #[serde(default)]
    pub beneath: Option<PathBuf>,
}

/// The kind of an extra mount.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MountKind {
    /// A recursive bind of `source`; `readonly` remounts the top mount read-only.
    Bind {
        /// Remount the bind read-only.
        readonly: bool,
    },
    /// An empty tmpfs (`mode=1777,nosuid,nodev`).
    Tmpfs,
    /// A private copy of a small host file (at most [`COPY_LIMIT`] bytes, e.g. a generated
    /// `/etc/hosts`), served from a tmpfs of the container: writes stay in the container and
    /// its mount table does not name the host file.
    Copy {
        /// Remount the copy read-only.
        readonly: bool,
    },
    /// An overlay of host directories, mounted like the root (new mount API, one
    /// `lowerdir+` per layer, `redirect_dir`/`index`/`metacopy` off), e.g. a failed step's
    /// root file system inside a debugger image.
    ///
    /// The caller must make sure no other mounted overlay uses `upper` (as upper or lower)
    /// or any of `lowers` as its upper while this container runs.
    Overlay {
        /// Read-only layer directories, topmost first; at least one.
        lowers: Vec<PathBuf>,
        /// The writable layer directory; must exist. An empty path mounts the overlay
        /// read-only, with no upper and no work dir.
        upper: PathBuf,
        /// The work dir for `upper`: empty (or a previous work dir of the same upper), on the
        /// same file system as `upper`, and not the root's work dir.
        work: PathBuf,
    },
}

/// The largest file a [`MountKind::Copy`] takes (the copies live in memory).
pub const COPY_LIMIT: u64 = 16 << 20;

/// Network isolation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Network {
    /// Share the host's network namespace.
    #[default]
    Host,
    /// A new network namespace with only `lo`, brought up.
    None,
}

impl ContainerSpec {
    /// Checks what can be checked on the host, before any namespace exists.
    ///
    /// Returns a lower-case message naming the offending field or path.
    pub fn validate(&self) -> Result<(), String> {
        if self.process.args.is_empty() {
            return Err("process.args is empty; give at least the program to run".into());
        }
        for (what, dir) in [
            ("upper", &self.upper),
            ("work", &self.work),
            ("scratch", &self.scratch),
        ] {
            if !dir.is_absolute() {
                return Err(format!("{what} dir {} must be absolute", dir.display()));
            }
            if !dir.is_dir() {
                return Err(format!("{what} dir {} does not exist", dir.display()));
            }
        }
        for lower in &self.lowers {
            if !lower.is_absolute() || !lower.is_dir() {
                return Err(format!(
                    "lower dir {} does not exist or is not absolute",
                    lower.display()
                ));
            }
        }
        let cwd = self.process.cwd.as_str();
        if !cwd.is_empty() && !cwd.starts_with('/') {
            return Err(format!("cwd {cwd:?} must be an absolute path"));
        }
        for mount in &self.mounts {
            container_path(&mount.target)?;
            if let Some(root) = &mount.beneath
                && matches!(mount.kind, MountKind::Bind { .. })
                && !mount.source.starts_with(root)
            {
                return Err(format!(
                    "mount source {} for {} is not beneath {}",
                    mount.source.display(),
                    mount.target,
                    root.display()
                ));
            }
            match &mount.kind {
                MountKind::Copy { .. } => match mount.source.metadata() {
                    Ok(m) if m.is_file() && m.len() <= COPY_LIMIT => {}
                    _ => {
                        return Err(format!(
                            "mount source {} for {} is not a file of at most {COPY_LIMIT} bytes",
                            mount.source.display(),
                            mount.target
                        ));
                    }
                },
                MountKind::Bind { .. } if !mount.source.exists() => {
                    return Err(format!(
                        "mount source {} for {} does not exist",
                        mount.source.display(),
                        mount.target
                    ));
                }
                MountKind::Overlay {
                    lowers,
                    upper,
                    work,
                } => validate_overlay(&mount.target, lowers, upper, work)?,
                MountKind::Bind { .. } | MountKind::Tmpfs => {}
            }
        }
        Ok(())
    }
}

fn validate_overlay(
    target: &str,
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
) -> Result<(), String> {
    if lowers.is_empty() {
        return Err(format!(
            "overlay mount {target} has no lower dirs; give at least one"
        ));
    }
    let dirs = lowers.iter().map(|l| ("lower", l.as_path())).chain(
        [("upper", upper), ("work", work)]
            .into_iter()
            .filter(|_| !upper.as_os_str().is_empty()),
    );
    for (what, dir) in dirs {
        if !dir.is_absolute() || !dir.is_dir() {
            return Err(format!(
                "overlay mount {target}: {what} dir {} does not exist or is not absolute",
                dir.display()
            ));
        }
    }
    Ok(())
}

/// Turns an absolute container path into a relative one without `.`/`..` components, so it
/// can be joined under the root (or skeleton) directory without escaping it.
pub(crate) fn container_path(target: &str) -> Result<PathBuf, String> {
    let path = Path::new(target);
    if !path.is_absolute() {
        return Err(format!("mount target {target:?} must be an absolute path"));
    }
    let mut rel = PathBuf::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => rel.push(name),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(format!("mount target {target:?} must not contain `..`"));
            }
        }
    }
    if rel.as_os_str().is_empty() {
        return Err(format!("mount target {target:?} must not be `/`"));
    }
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_path_is_relative_and_clean() {
        assert_eq!(
            container_path("/etc/./resolv.conf"),
            Ok(PathBuf::from("etc/resolv.conf"))
        );
        assert!(container_path("etc").is_err());
        assert!(container_path("/a/../b").is_err());
        assert!(container_path("/").is_err());
    }

    #[test]
    fn overlay_mount_dirs_must_exist() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let overlay = |lowers: Vec<PathBuf>, upper: PathBuf| Mount {
            target: "/debugroot".into(),
            source: PathBuf::new(),
            kind: MountKind::Overlay {
                lowers,
                upper,
                work: dir.clone(),
            },
            beneath: None,
        };
        let mut spec = ContainerSpec {
            lowers: vec![],
            upper: dir.clone(),
            work: dir.clone(),
            scratch: dir.clone(),
            process: ProcessSpec {
                args: vec!["true".into()],
                env: vec![],
                cwd: "/".into(),
                user: String::new(),
                terminal: false,
            },
            hostname: String::new(),
            mounts: vec![overlay(vec![dir.clone()], dir.clone())],
            network: Network::None,
            security: Default::default(),
        };
        assert_eq!(spec.validate(), Ok(()));
        spec.mounts = vec![overlay(vec![], dir.clone())];
        let err = spec.validate().expect_err("no lowers");
        assert!(err.contains("no lower dirs"), "{err}");
        spec.mounts = vec![overlay(vec![dir.clone()], dir.join("missing"))];
        let err = spec.validate().expect_err("missing upper");
        assert!(err.contains("upper dir"), "{err}");
    }
}
