//! Reading the files of a build context the one safe way, for the plan (the `COPY` checksum)
//! and for the worker (the bytes that go into the layer) alike.
//!
//! Every entry is opened with `openat2` relative to the context directory with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` ([openat2(2)](https://man7.org/linux/man-pages/man2/openat2.2.html)):
//! the plan resolved the context's own links already, so a link anywhere on the way now
//! means the context changed under the build (a file swapped for a link to a host file), and
//! the open fails instead of reading outside. A link that *is* the entry is read as a link.
//! [`CopyChecksum`] hashes what was read; the worker compares its sum with the plan's, so the
//! digest and the layer come from the same bytes or the build fails.

use std::fs::{File, Metadata};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// The build context, opened once.
pub struct ContextRoot {
    fd: OwnedFd,
    path: PathBuf,
}

/// One entry of the context, opened.
pub enum ContextEntry {
    /// A regular file, open for reading.
    File(File, Metadata),
    /// A directory.
    Dir(Metadata),
    /// A symlink and its target (copied as a link, never followed).
    Link(PathBuf, Metadata),
}

impl ContextEntry {
    /// The entry's metadata (of the link itself for a link).
    pub fn metadata(&self) -> &Metadata {
        match self {
            ContextEntry::File(_, m) | ContextEntry::Dir(m) | ContextEntry::Link(_, m) => m,
        }
    }
}

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_SYMLINKS);

impl ContextRoot {
    /// Opens the context directory `path`.
    pub fn open(path: &Path) -> io::Result<ContextRoot> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(ContextRoot {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Opens `source` (a path below the context, as the plan names it) without following any
    /// link on the way; anything but a file, directory or link is refused.
    pub fn entry(&self, source: &Path) -> io::Result<ContextEntry> {
        let rel = source.strip_prefix(&self.path).map_err(|_| {
            io::Error::other(format!("{} is not in the build context", source.display()))
        })?;
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        // A link swapped for a file between the two opens below is opened again, a few times,
        // then named as a context that keeps changing.
        for _ in 0..SWAP_RETRIES {
            if let Some(entry) = self.try_entry(rel, source)? {
                return Ok(entry);
            }
        }
        Err(io::Error::other(format!(
            "{} changed while the build was copying it (a link and a file in turns); build again once it is stable",
            source.display()
        )))
    }

    /// One attempt of [`ContextRoot::entry`]: `None` when the entry read as a link is no
    /// longer one.
    fn try_entry(&self, rel: &Path, source: &Path) -> io::Result<Option<ContextEntry>> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        match rustix::fs::openat2(
            &self.fd,
            rel,
            flags | OFlags::NOCTTY,
            Mode::empty(),
            RESOLVE,
        ) {
            Ok(fd) => {
                let file = File::from(fd);
                let meta = file.metadata()?;
                if meta.is_file() {
                    Ok(Some(ContextEntry::File(file, meta)))
                } else if meta.is_dir() {
                    Ok(Some(ContextEntry::Dir(meta)))
                } else {
                    Err(io::Error::other(format!(
                        "{} is not a regular file, directory or symlink",
                        source.display()
                    )))
                }
            }
            // The entry itself may be a link (its parents may not): read it as one.
            Err(rustix::io::Errno::LOOP) => {
                let fd = rustix::fs::openat2(
                    &self.fd,
                    rel,
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                    RESOLVE,
                )
                .map_err(|e| with_path(e.into(), source))?;
                let target = match rustix::fs::readlinkat(&fd, "", Vec::new()) {
                    Ok(target) => target,
                    // readlinkat of an empty path on anything but a link (swapped in since
                    // the first open) is ENOENT.
                    Err(rustix::io::Errno::NOENT) => return Ok(None),
                    Err(e) => return Err(with_path(e.into(), source)),
                };
                let meta = File::from(fd).metadata()?;
                let target: std::ffi::OsString =
                    std::os::unix::ffi::OsStringExt::from_vec(target.into_bytes());
                Ok(Some(ContextEntry::Link(PathBuf::from(target), meta)))
            }
            Err(e) => Err(with_path(e.into(), source)),
        }
    }
}

/// How often [`ContextRoot::entry`] opens an entry again that turned from a link into a file.
const SWAP_RETRIES: usize = 8;

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// The checksum of copied entries (the `COPY` digest input): per entry its target, mode and
/// link target or content.
pub struct CopyChecksum(strata_digest::HashingWriter<io::Sink>);

impl Default for CopyChecksum {
    fn default() -> Self {
        CopyChecksum(strata_digest::HashingWriter::new(io::sink()))
    }
}

impl CopyChecksum {
    /// Adds a file written inline (a heredoc).
    pub fn inline(&mut self, target: &str, text: &str) {
        self.bytes(target.as_bytes());
        self.bytes(&[0]);
        self.bytes(text.as_bytes());
    }

    /// Starts an entry at `target`; a file's content follows through [`CopyChecksum::content`]
    /// (a link's target is added here), then [`CopyChecksum::end`].
    pub fn start(&mut self, target: &str, entry: &ContextEntry) {
        self.bytes(target.as_bytes());
        self.bytes(&[0]);
        self.bytes(format!("{:o}", entry.metadata().mode()).as_bytes());
        if let ContextEntry::Link(link, _) = entry {
            self.bytes(link.as_os_str().as_encoded_bytes());
        }
    }

    /// Where a file's content goes.
    pub fn content(&mut self) -> &mut impl Write {
        &mut self.0
    }

    /// Ends an entry.
    pub fn end(&mut self) {
        self.bytes(&[0]);
    }

    /// The checksum, as hex.
    pub fn finish(self) -> String {
        self.0.finish().1.hex()
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.0
            .write_all(bytes)
            .expect("writing to a hasher of io::sink never fails");
    }
}
