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
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Mount {
    /// Absolute path inside the container.
    pub target: String,
    /// Host path to bind (ignored for [`MountKind::Tmpfs`]).
    pub source: PathBuf,
    /// What to mount.
    pub kind: MountKind,
}

/// The kind of an extra mount.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum MountKind {
    /// A recursive bind of `source`; `readonly` remounts the top mount read-only.
    Bind {
        /// Remount the bind read-only.
        readonly: bool,
    },
    /// An empty tmpfs (`mode=1777,nosuid,nodev`).
    Tmpfs,
}

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
            if let MountKind::Bind { .. } = mount.kind
                && !mount.source.exists()
            {
                return Err(format!(
                    "mount source {} for {} does not exist",
                    mount.source.display(),
                    mount.target
                ));
            }
        }
        Ok(())
    }
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
}
