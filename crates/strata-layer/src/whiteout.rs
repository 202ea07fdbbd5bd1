//! Whiteout conventions, OCI and overlayfs, and the mapping between them.
//!
//! | meaning | OCI tar entry | overlayfs on disk |
//! |---|---|---|
//! | `dir/x` deleted | empty file `dir/.wh.x` | char device 0/0 `dir/x` |
//! | `dir` replaced whole | `dir/.wh..wh..opq` | xattr `trusted.overlay.opaque` = `y` on `dir` |
//!
//! overlayfs mounted in a user namespace (rootless strata) uses `userxattr`: the same xattrs
//! under `user.overlay.*`, since `trusted.*` needs `CAP_SYS_ADMIN` on the host (xattr(7)).
//! [`Xattrs::of_this_process`] says which namespace this process's overlays use; the writer,
//! the applier and every reader of opaque dirs go by it, so a rootless build's layers are a
//! root build's.
//!
//! Other names starting with `.wh..wh.` (aufs metadata such as `.wh..wh.plnk`) carry no
//! meaning for overlayfs and are skipped on unpack. Other `trusted.overlay.*` xattrs
//! (`origin`, `impure`, `nlink`; `user.overlay.*` in a user namespace) are overlayfs
//! bookkeeping and never enter a layer; a layer that carries them (in either namespace) has
//! them dropped on unpack, since they would steer the kernel.
//! `trusted.overlay.redirect` and `trusted.overlay.metacopy` in an upper dir mean the overlay
//! was mounted with `redirect_dir` or `metacopy`, whose upper dirs cannot be turned into a
//! layer without the lowers; writing refuses them.
//!
//! Newer kernels also know "xwhiteouts" (a regular file with `trusted.overlay.whiteout` in a
//! dir whose opaque xattr is `x`); only the value `y` means opaque here.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Prefix of an OCI whiteout file name.
pub const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Prefix of whiteout metadata names (aufs); only [`OPAQUE_MARKER`] has a meaning.
pub const META_PREFIX: &[u8] = b".wh..wh.";
/// The OCI opaque-dir marker file name.
pub const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// Prefixes of overlayfs-private xattrs, in both namespaces: a layer carrying either has them
/// dropped on unpack.
pub const OVERLAY_XATTR_PREFIXES: [&[u8]; 2] = [b"trusted.overlay.", b"user.overlay."];

/// Which xattr namespace overlayfs keeps its metadata in, for the overlays a process mounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Xattrs {
    /// `trusted.overlay.*`: a process of the host's user namespace (root).
    Trusted,
    /// `user.overlay.*` (`userxattr`): a process in any other user namespace.
    User,
}

impl Xattrs {
    /// The namespace for this process: [`Xattrs::User`] when its uid map is not the host's
    /// identity map of all 2³² ids (`/proc/self/uid_map`, user_namespaces(7)). Read once per
    /// process: a process that changes user namespace (`strata_sandbox::rootless::enter`)
    /// must do so before the first call, and a forked child keeps its parent's answer.
    pub fn of_this_process() -> Xattrs {
        static CURRENT: std::sync::OnceLock<Xattrs> = std::sync::OnceLock::new();
        *CURRENT.get_or_init(|| {
            let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
            let identity = map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"];
            if identity {
                Xattrs::Trusted
            } else {
                Xattrs::User
            }
        })
    }

    /// The prefix of its overlayfs-private xattrs.
    pub fn prefix(self) -> &'static [u8] {
        match self {
            Xattrs::Trusted => OVERLAY_XATTR_PREFIXES[0],
            Xattrs::User => OVERLAY_XATTR_PREFIXES[1],
        }
    }

    /// The xattr overlayfs sets on an opaque dir.
    pub fn opaque(self) -> &'static str {
        match self {
            Xattrs::Trusted => "trusted.overlay.opaque",
            Xattrs::User => "user.overlay.opaque",
        }
    }

    /// Overlay xattrs whose presence means the upper dir depends on its lowers.
    pub fn unsupported(self) -> [&'static str; 2] {
        match self {
            Xattrs::Trusted => ["trusted.overlay.redirect", "trusted.overlay.metacopy"],
            Xattrs::User => ["user.overlay.redirect", "user.overlay.metacopy"],
        }
    }
}

/// What an OCI tar entry's file name means.
#[derive(Debug, PartialEq, Eq)]
pub enum OciName<'a> {
    /// An ordinary name.
    Plain,
    /// `.wh.<name>`: `<name>` was deleted.
    Whiteout(&'a [u8]),
    /// `.wh..wh..opq`: the containing dir is opaque.
    Opaque,
    /// Another `.wh..wh.` name: ignored.
    Meta,
}

/// Classifies the last component of a tar entry path.
pub fn classify(name: &[u8]) -> OciName<'_> {
    if name == OPAQUE_MARKER {
        OciName::Opaque
    } else if name.starts_with(META_PREFIX) {
        OciName::Meta
    } else if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
        OciName::Whiteout(hidden)
    } else {
        OciName::Plain
    }
}

/// True when `meta` (from `lstat`) is an overlayfs whiteout: a char device 0/0.
pub fn is_overlay_whiteout(meta: &std::fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// True when the dir at `path` carries the opaque xattr (`trusted.overlay.opaque=y`, or
/// `user.overlay.opaque=y` in a user namespace: [`Xattrs::of_this_process`]).
pub fn is_overlay_opaque(path: &Path) -> io::Result<bool> {
    let mut value = [0u8; 8];
    match rustix::fs::lgetxattr(path, Xattrs::of_this_process().opaque(), &mut value[..]) {
        Ok(n) => Ok(is_opaque_value(&value[..n])),
        Err(e) if e == rustix::io::Errno::NODATA || e == rustix::io::Errno::NOTSUP => Ok(false),
        // Longer than 8 bytes: not `y`.
        Err(e) if e == rustix::io::Errno::RANGE => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// True for the opaque xattr value that means "opaque" (`y`; `x` marks xwhiteouts).
pub fn is_opaque_value(value: &[u8]) -> bool {
    value == b"y"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_names() {
        assert_eq!(classify(b"passwd"), OciName::Plain);
        assert_eq!(classify(b".wh.passwd"), OciName::Whiteout(b"passwd"));
        assert_eq!(classify(b".wh..wh..opq"), OciName::Opaque);
        assert_eq!(classify(b".wh..wh.plnk"), OciName::Meta);
        assert_eq!(classify(b".wh."), OciName::Whiteout(b""));
        assert_eq!(classify(b".whx"), OciName::Plain);
    }

    #[test]
    fn opaque_xattr_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(!is_overlay_opaque(dir.path()).expect("plain dir"));
        rustix::fs::setxattr(
            dir.path(),
            Xattrs::Trusted.opaque(),
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .expect("set trusted xattr (tests run as root)");
        assert!(is_overlay_opaque(dir.path()).expect("opaque dir"));
        rustix::fs::setxattr(
            dir.path(),
            Xattrs::Trusted.opaque(),
            b"x",
            rustix::fs::XattrFlags::empty(),
        )
        .expect("set");
        assert!(!is_overlay_opaque(dir.path()).expect("xwhiteout dir"));
    }
}
