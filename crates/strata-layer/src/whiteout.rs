//! Whiteout conventions, OCI and overlayfs, and the mapping between them.
//!
//! | meaning | OCI tar entry | overlayfs on disk |
//! |---|---|---|
//! | `dir/x` deleted | empty file `dir/.wh.x` | char device 0/0 `dir/x` |
//! | `dir` replaced whole | `dir/.wh..wh..opq` | xattr `trusted.overlay.opaque` = `y` on `dir` |
//!
//! Other names starting with `.wh..wh.` (aufs metadata such as `.wh..wh.plnk`) carry no
//! meaning for overlayfs and are skipped on unpack. Other `trusted.overlay.*` xattrs
//! (`origin`, `impure`, `nlink`) are overlayfs bookkeeping and never enter a layer; a layer
//! that carries them has them dropped on unpack, since they would steer the kernel.
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
/// The xattr overlayfs sets on an opaque dir.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// Prefix of every overlayfs-private xattr.
pub const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";
/// Overlay xattrs whose presence means the upper dir depends on its lowers.
pub const OVERLAY_UNSUPPORTED_XATTRS: [&str; 2] =
    ["trusted.overlay.redirect", "trusted.overlay.metacopy"];

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

/// True when the dir at `path` carries `trusted.overlay.opaque=y`.
pub fn is_overlay_opaque(path: &Path) -> io::Result<bool> {
    let mut value = [0u8; 8];
    match rustix::fs::lgetxattr(path, OVERLAY_OPAQUE_XATTR, &mut value[..]) {
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
            OVERLAY_OPAQUE_XATTR,
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .expect("set trusted xattr (tests run as root)");
        assert!(is_overlay_opaque(dir.path()).expect("opaque dir"));
        rustix::fs::setxattr(
            dir.path(),
            OVERLAY_OPAQUE_XATTR,
            b"x",
            rustix::fs::XattrFlags::empty(),
        )
        .expect("set");
        assert!(!is_overlay_opaque(dir.path()).expect("xwhiteout dir"));
    }
}
