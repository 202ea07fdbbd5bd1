//! OCI layers for strata: overlayfs upper dirs to tar layers, and layers back to dirs.
//!
//! This crate owns the conversion between two ways of describing a filesystem change:
//!
//! | | overlayfs form (on disk) | OCI form (in the tar) |
//! |---|---|---|
//! | `x` was deleted | char device 0/0 named `x` | empty regular file `.wh.x` |
//! | `d` replaced whole | dir `d` with xattr `trusted.overlay.opaque=y` | `d/` then `d/.wh..wh..opq` |
//!
//! - [`write_layer`] walks a directory (an overlay upper dir, or a plain rootfs) in sorted
//!   order and streams a tar through a compressor into the caller's writer, returning the
//!   diff id (sha256 of the *uncompressed* tar). Memory does not grow with layer size.
//! - [`unpack_layer`] reads a gzip, zstd or plain tar (detected from the magic bytes) and
//!   writes it into an empty dir in overlay form, ready to be an overlayfs lower dir. The
//!   input is treated as hostile: every path is resolved with `openat2(RESOLVE_IN_ROOT)`, so
//!   nothing is written outside the target, not even through symlinks the layer creates.
//!   [`apply::apply_tar`] is the same applier for plain tars (the file work's staged tars,
//!   applied over a stage's root in [`apply::Mode::Files`]).
//! - [`decompressed`] gives the raw tar of a stored layer (docker-archive export).
//! - [`changes`] lists what an upper dir changed relative to its lowers (for the debugger).
//!
//! What it deliberately does not do: mount anything, create namespaces, know about plans or
//! the network, or store blobs. The compressed bytes go to a `&mut dyn Write` (the store's
//! ingest, which hashes and commits them); this crate only reports the diff id and sizes.
//!
//! # Pipeline of [`write_layer`]
//!
//! 1. walk `dir` depth first, names sorted bytewise; skip sockets and the root itself;
//! 2. per entry: `lstat`, `llistxattr` (never `trusted.overlay.*`), PAX xattr record, tar
//!    header (numeric uid/gid, mode incl. setuid/setgid/sticky, mtime in whole seconds);
//! 3. file data is copied in 1 MiB reads into a 1 MiB `BufWriter`;
//! 4. the uncompressed bytes are hashed (diff id), then compressed (zstd level 3 with 2
//!    workers by default, gzip level 6, or none) into `out`.
//!
//! # Example
//!
//! ```
//! use strata_layer::{Compression, unpack_layer, write_layer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let src = tempfile::tempdir()?;
//! std::fs::create_dir(src.path().join("etc"))?;
//! std::fs::write(src.path().join("etc/motd"), "hello\n")?;
//!
//! let mut blob = Vec::new();
//! let written = write_layer(src.path(), Compression::Zstd, &mut blob)?;
//! assert_eq!(written.entries, 2); // `etc/` and `etc/motd`
//!
//! let dst = tempfile::tempdir()?;
//! let unpacked = unpack_layer(&mut blob.as_slice(), dst.path())?;
//! assert_eq!(unpacked.diff_id, written.diff_id);
//! assert_eq!(std::fs::read_to_string(dst.path().join("etc/motd"))?, "hello\n");
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod apply;
pub mod bounded;
pub mod clamp;
pub mod compression;
pub mod diff;
mod gzip;
pub mod merged;
pub mod whiteout;
pub mod write;

use std::path::{Path, PathBuf};

pub use compression::{Compression, decompressed};
pub use diff::{Change, ChangeKind, changes};
pub use strata_digest::Digest;

/// What writing or unpacking a layer produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerStats {
    /// sha256 of the uncompressed tar stream: the `rootfs.diff_ids` entry of an image config.
    pub diff_id: Digest,
    /// Bytes of the uncompressed tar stream.
    pub uncompressed_size: u64,
    /// Bytes of the compressed stream written (by [`write_layer`]) or consumed (by
    /// [`unpack_layer`]). Equals `uncompressed_size` for [`Compression::None`].
    pub compressed_size: u64,
    /// Number of tar entries (PAX and GNU long-name records are not counted; whiteout and
    /// opaque marker entries are).
    pub entries: u64,
}

/// Any error from this crate; each variant wraps one module's error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing a layer failed.
    #[error(transparent)]
    Write(#[from] write::Error),
    /// Unpacking a layer failed.
    #[error(transparent)]
    Apply(#[from] apply::Error),
    /// Listing changes failed.
    #[error(transparent)]
    Diff(#[from] diff::Error),
    /// Choosing or running a (de)compressor failed.
    #[error(transparent)]
    Compression(#[from] compression::Error),
    /// Reading a directory failed.
    #[error("{op} {path} failed: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Writes `dir` as a layer into `out` (compressed as asked). Returns the diff id and counts.
///
/// `dir` is an overlayfs upper dir (whiteouts and opaque dirs become `.wh.` entries) or a
/// plain rootfs. The caller must make sure nothing writes into `dir` meanwhile (unmount the
/// overlay first), and that the overlay was mounted with `redirect_dir=off,metacopy=off`:
/// upper dirs using those features are refused with an error.
pub fn write_layer(
    dir: &Path,
    compression: Compression,
    out: &mut (dyn std::io::Write + Send),
) -> Result<LayerStats, Error> {
    Ok(write::write_layer(dir, compression, out)?)
}

/// True when `dir` has no entries (an empty upper: the step changed nothing, so no layer is made).
pub fn is_empty_dir(dir: &Path) -> Result<bool, Error> {
    let mut entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        op: "read dir",
        path: dir.to_path_buf(),
        source,
    })?;
    match entries.next() {
        None => Ok(true),
        Some(Ok(_)) => Ok(false),
        Some(Err(source)) => Err(Error::Io {
            op: "read dir",
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Unpacks a (possibly compressed) layer into `target` (an existing, empty dir) in overlay form.
///
/// The returned diff id is computed over the whole decompressed stream; the caller must
/// compare it with the expected one (and discard `target` on mismatch).
pub fn unpack_layer(layer: &mut dyn std::io::Read, target: &Path) -> Result<LayerStats, Error> {
    Ok(apply::unpack_layer(layer, target)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_dir_detection() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(is_empty_dir(dir.path()).expect("read"));
        std::fs::write(dir.path().join(".hidden"), "").expect("write");
        assert!(!is_empty_dir(dir.path()).expect("read"));
        let err = is_empty_dir(&dir.path().join("missing")).expect_err("missing dir");
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
