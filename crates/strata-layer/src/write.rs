//! Directory → OCI tar layer, streaming.
//!
//! The walk is depth first with the names of each dir sorted bytewise, so the same tree
//! always gives the same bytes. Entry paths are relative (`etc/passwd`, dirs `etc/`), the
//! root itself is not emitted. Headers are GNU format as the `tar` crate writes them: long
//! names and link targets use GNU `L`/`K` records, xattrs use PAX `SCHILY.xattr.*` records.
//!
//! | on disk | in the tar |
//! |---|---|
//! | regular file | `0` entry with its data (hardlinked files: first one `0`, the others `1` links to it, keyed by (dev, ino)) |
//! | dir | `5` entry; if opaque also `dir/.wh..wh..opq` (mode 0, uid/gid 0, mtime 0) |
//! | symlink, char/block device, FIFO | `2`, `3`/`4`, `6` entries |
//! | char device 0/0 `x` (overlay whiteout) | empty file `.wh.x` (mode 0, uid/gid 0, mtime 0) |
//! | socket | skipped |
//!
//! Whiteouts are never treated as hardlinks: overlayfs shares one inode between all the
//! whiteouts it creates, so their link count says nothing.
//!
//! Streaming: file data is read 1 MiB at a time and passed in 1 MiB chunks through a pipeline
//! of three threads (walk, diff id + compression, output; see [`write_layer`]), with at most a
//! few chunks in flight between them; the only state kept per entry is the hardlink table (one path per inode with
//! more than one link) and one sorted name list per open directory level.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};

use strata_digest::{Digest, HashingWriter};

use crate::LayerStats;
use crate::compression::{Compression, Encoder};
use crate::whiteout;

/// Errors from writing a layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the source tree failed.
    #[error("{op} {path} failed: {source}")]
    Io {
        /// What was being done (`lstat`, `read dir`, `open`, ...).
        op: &'static str,
        /// The file it was done to.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Writing the layer stream (hashing, compressing or the caller's writer) failed.
    #[error("writing the layer stream failed at {path}: {source}")]
    Output {
        /// The entry being written, or the source dir when finishing.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A file shrank while it was being copied; the layer would be corrupt.
    #[error(
        "{path} changed while being written into the layer (expected {expected} bytes, read {read}); is something still writing into the directory?"
    )]
    FileChanged {
        /// The file.
        path: PathBuf,
        /// The size from `lstat`.
        expected: u64,
        /// The bytes that could be read.
        read: u64,
    },
    /// The upper dir uses an overlayfs feature that makes it depend on its lowers.
    #[error(
        "{path} has the overlayfs xattr `{xattr}`; mount the overlay with `redirect_dir=off,metacopy=off` so the upper dir is self-contained"
    )]
    OverlayFeature {
        /// The entry carrying the xattr.
        path: PathBuf,
        /// The xattr name.
        xattr: String,
    },
    /// An xattr name that is not UTF-8 cannot be a PAX record key.
    #[error("{path} has an xattr whose name is not UTF-8 ({name:?}); remove it or rename it")]
    XattrName {
        /// The file.
        path: PathBuf,
        /// The name, lossily decoded.
        name: String,
    },
}

/// Size of file reads and of the chunks passed between the pipeline's threads.
const BUF_SIZE: usize = 1 << 20;
/// Chunks in flight between two pipeline stages (so at most a few MiB are buffered).
const CHUNKS_IN_FLIGHT: usize = 4;
/// Linux's XATTR_LIST_MAX and XATTR_SIZE_MAX.
const XATTR_MAX: usize = 64 * 1024;

/// A buffer passed between pipeline stages, reused: `len` bytes of `data` are filled. `data`
/// grows to at most `BUF_SIZE` as bytes come and is never zeroed again once grown, so a small
/// layer touches (and the kernel faults in) only the pages it fills, not a MiB per chunk.
struct Chunk {
    data: Vec<u8>,
    len: usize,
}

impl Chunk {
    fn new() -> Chunk {
        Chunk {
            data: Vec::new(),
            len: 0,
        }
    }

    /// The chunk's bytes from `start` to `end` (at most `BUF_SIZE`), grown (zeroed) as needed.
    fn span(&mut self, start: usize, end: usize) -> &mut [u8] {
        if self.data.len() < end {
            self.data.reserve_exact(BUF_SIZE - self.data.len());
            self.data.resize(end, 0);
        }
        &mut self.data[start..end]
    }
}

/// The writing end of a pipeline stage: bytes are gathered into `BUF_SIZE` chunks and handed to
/// the next stage's thread; used chunks come back through `free`, so a pipeline reuses a few
/// buffers instead of allocating one per MiB.
struct ChunkSender {
    chunk: Chunk,
    full: SyncSender<Chunk>,
    free: Receiver<Chunk>,
}

/// The reading end of a pipeline stage; see [`ChunkReceiver::drain`].
struct ChunkReceiver {
    full: Receiver<Chunk>,
    free: Sender<Chunk>,
}

fn chunk_pipe() -> (ChunkSender, ChunkReceiver) {
    let (full_tx, full_rx) = mpsc::sync_channel(CHUNKS_IN_FLIGHT);
    let (free_tx, free_rx) = mpsc::channel();
    let sender = ChunkSender {
        chunk: Chunk::new(),
        full: full_tx,
        free: free_rx,
    };
    let receiver = ChunkReceiver {
        full: full_rx,
        free: free_tx,
    };
    (sender, receiver)
}

impl ChunkSender {
    fn send(&mut self) -> io::Result<()> {
        let next = self.free.try_recv().unwrap_or_else(|_| Chunk::new());
        let chunk = std::mem::replace(&mut self.chunk, next);
        // The next stage only hangs up when it failed; its own error is the one reported.
        self.full
            .send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the next layer stage stopped"))
    }

    /// Reads at most `max` bytes of `file` straight into the chunk (no copy through a
    /// separate buffer); returns how many, 0 at the end of the file.
    fn read_from(&mut self, file: &mut File, max: usize) -> io::Result<usize> {
        if self.chunk.len == BUF_SIZE {
            self.send()?;
        }
        let start = self.chunk.len;
        let end = BUF_SIZE.min(start.saturating_add(max));
        let n = file.read(self.chunk.span(start, end))?;
        self.chunk.len += n;
        Ok(n)
    }
}

impl Write for ChunkSender {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A chunk is sent when the next byte does not fit, never after filling it: `read_from`
        // fills chunks too, and an `Ok(0)` here would be a write error.
        if self.chunk.len == BUF_SIZE {
            self.send()?;
        }
        let start = self.chunk.len;
        let n = buf.len().min(BUF_SIZE - start);
        self.chunk.span(start, start + n).copy_from_slice(&buf[..n]);
        self.chunk.len += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.chunk.len == 0 {
            return Ok(());
        }
        self.send()
    }
}

impl ChunkReceiver {
    /// Writes every chunk into `out` until the sender is dropped, then flushes `out`.
    fn drain(self, out: &mut dyn Write) -> io::Result<()> {
        for mut chunk in self.full {
            out.write_all(&chunk.data[..chunk.len])?;
            chunk.len = 0;
            // The sender may be gone already; then the chunk is simply freed.
            let _ = self.free.send(chunk);
        }
        out.flush()
    }
}

/// See [`crate::write_layer`].
///
/// Three threads, so that the two SHA-256 passes and the compression do not queue behind the
/// file reads on one core: this one walks `dir` and frames the tar stream; the second hashes
/// it (the diff id) and feeds the compressor (whose own workers compress); the third writes the
/// compressed stream into `out` (the store's ingest, which hashes it again for the blob digest).
pub fn write_layer(
    dir: &Path,
    compression: Compression,
    out: &mut (dyn Write + Send),
) -> Result<LayerStats, Error> {
    let output = |source| Error::Output {
        path: dir.to_path_buf(),
        source,
    };
    std::thread::scope(|scope| {
        let (tar_sender, tar_receiver) = chunk_pipe();
        let (packed_sender, packed_receiver) = chunk_pipe();
        let writing = scope.spawn(move || -> io::Result<u64> {
            let mut counting = CountingWriter {
                inner: out,
                count: 0,
            };
            packed_receiver.drain(&mut counting)?;
            Ok(counting.count)
        });
        let compressing = scope.spawn(move || -> io::Result<(Digest, u64)> {
            let mut hashing = HashingWriter::new(Encoder::new(compression, packed_sender)?);
            tar_receiver.drain(&mut hashing)?;
            let (encoder, diff_id, uncompressed_size) = hashing.finish();
            // Flushing sends the last chunk; dropping the sender then ends the writer's loop.
            encoder.finish()?.flush()?;
            Ok((diff_id, uncompressed_size))
        });
        let walked = walk(dir, tar_sender);
        let compressed = join(compressing);
        let written = join(writing);
        // A later stage's failure makes the earlier ones fail with a broken pipe: report the
        // first failure downstream, unless the walk failed on its own.
        let entries = match walked {
            Err(e) if !matches!(&e, Error::Output { source, .. } if source.kind() == io::ErrorKind::BrokenPipe) =>
            {
                return Err(e);
            }
            walked => walked,
        };
        let compressed_size = written.map_err(output)?;
        let (diff_id, uncompressed_size) = compressed.map_err(output)?;
        Ok(LayerStats {
            diff_id,
            uncompressed_size,
            compressed_size,
            entries: entries?,
        })
    })
}

/// Counts the compressed bytes going to the caller.
struct CountingWriter<'o> {
    inner: &'o mut (dyn Write + Send),
    count: u64,
}

impl Write for CountingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn join<T>(thread: std::thread::ScopedJoinHandle<'_, T>) -> T {
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Walks `dir` into a tar stream sent to `sink`; returns the number of entries.
fn walk(dir: &Path, sink: ChunkSender) -> Result<u64, Error> {
    let mut walker = Walker {
        builder: tar::Builder::new(sink),
        abs: dir.to_path_buf(),
        rel: Vec::new(),
        scratch: Vec::new(),
        links: HashMap::new(),
        xattr_names: vec![0u8; XATTR_MAX],
        xattr_value: vec![0u8; XATTR_MAX],
        xattrs: Vec::new(),
        entries: 0,
    };
    walker.walk()?;
    let entries = walker.entries;
    let output = |source| Error::Output {
        path: dir.to_path_buf(),
        source,
    };
    // Writes the tar trailer; the sender is flushed and then dropped, which ends the stream.
    walker
        .builder
        .into_inner()
        .map_err(output)?
        .flush()
        .map_err(output)?;
    Ok(entries)
}

/// One directory level of the walk.
struct Frame {
    /// Sorted child names.
    names: Vec<OsString>,
    next: usize,
    /// Length of `Walker::rel` before this dir's name was pushed; `None` for the root.
    rel_len: Option<usize>,
}

struct Walker {
    builder: tar::Builder<ChunkSender>,
    /// Absolute path of the current entry.
    abs: PathBuf,
    /// Tar path of the current entry (no trailing slash).
    rel: Vec<u8>,
    /// Scratch space for derived tar paths (`dir/`, `.wh.` names).
    scratch: Vec<u8>,
    /// (dev, ino) → tar path of the first occurrence, for inodes with nlink > 1.
    links: HashMap<(u64, u64), Vec<u8>>,
    xattr_names: Vec<u8>,
    xattr_value: Vec<u8>,
    /// PAX keys and values of the current entry.
    xattrs: Vec<(String, Vec<u8>)>,
    entries: u64,
}

fn as_path(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

impl Walker {
    fn walk(&mut self) -> Result<(), Error> {
        let names = self.list_dir()?;
        let mut stack = vec![Frame {
            names,
            next: 0,
            rel_len: None,
        }];
        while let Some(frame) = stack.last_mut() {
            if frame.next == frame.names.len() {
                if let Some(len) = frame.rel_len {
                    self.abs.pop();
                    self.rel.truncate(len);
                }
                stack.pop();
                continue;
            }
            let name = std::mem::take(&mut frame.names[frame.next]);
            frame.next += 1;
            let rel_len = self.rel.len();
            self.abs.push(&name);
            if !self.rel.is_empty() {
                self.rel.push(b'/');
            }
            self.rel.extend_from_slice(name.as_bytes());
            if let Some(names) = self.entry(name.as_bytes())? {
                stack.push(Frame {
                    names,
                    next: 0,
                    rel_len: Some(rel_len),
                });
            } else {
                self.abs.pop();
                self.rel.truncate(rel_len);
            }
        }
        Ok(())
    }

    fn io(&self, op: &'static str) -> impl FnOnce(io::Error) -> Error + '_ {
        move |source| Error::Io {
            op,
            path: self.abs.clone(),
            source,
        }
    }

    fn output(&self) -> impl FnOnce(io::Error) -> Error + '_ {
        move |source| Error::Output {
            path: self.abs.clone(),
            source,
        }
    }

    /// The sorted names in the dir at `self.abs`.
    fn list_dir(&self) -> Result<Vec<OsString>, Error> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.abs).map_err(self.io("read dir"))? {
            names.push(entry.map_err(self.io("read dir"))?.file_name());
        }
        names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        Ok(names)
    }

    /// Emits the entry at `self.abs`; returns its children when it is a dir to descend into.
    fn entry(&mut self, name: &[u8]) -> Result<Option<Vec<OsString>>, Error> {
        let meta = std::fs::symlink_metadata(&self.abs).map_err(self.io("lstat"))?;
        let ft = meta.file_type();
        if ft.is_socket() {
            return Ok(None);
        }
        if whiteout::is_overlay_whiteout(&meta) {
            self.scratch.clear();
            self.scratch
                .extend_from_slice(&self.rel[..self.rel.len() - name.len()]);
            self.scratch.extend_from_slice(whiteout::WHITEOUT_PREFIX);
            self.scratch.extend_from_slice(name);
            self.empty_marker()?;
            return Ok(None);
        }
        let opaque = self.read_xattrs()?;

        let mut header = tar::Header::new_gnu();
        header.set_mode(meta.mode() & 0o7777);
        header.set_uid(u64::from(meta.uid()));
        header.set_gid(u64::from(meta.gid()));
        header.set_mtime(meta.mtime().max(0) as u64);
        header.set_size(0);

        if !self.xattrs.is_empty() {
            let records = self.xattrs.iter().map(|(k, v)| (k.as_str(), v.as_slice()));
            self.builder
                .append_pax_extensions(records)
                .map_err(self.output())?;
        }
        self.entries += 1;

        if ft.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            self.scratch.clear();
            self.scratch.extend_from_slice(&self.rel);
            self.scratch.push(b'/');
            self.builder
                .append_data(&mut header, as_path(&self.scratch), io::empty())
                .map_err(self.output())?;
            if opaque {
                self.scratch.extend_from_slice(whiteout::OPAQUE_MARKER);
                self.empty_marker()?;
            }
            return Ok(Some(self.list_dir()?));
        }

        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key) {
                header.set_entry_type(tar::EntryType::Link);
                self.builder
                    .append_link(&mut header, as_path(&self.rel), as_path(first))
                    .map_err(self.output())?;
                return Ok(None);
            }
            self.links.insert(key, self.rel.clone());
        }

        if ft.is_file() {
            let size = meta.len();
            let file = File::open(&self.abs).map_err(self.io("open"))?;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(size);
            // Header only: the data is copied below with big reads, not through the tar
            // crate's 8 KiB `io::copy`.
            self.builder
                .append_data(&mut header, as_path(&self.rel), io::empty())
                .map_err(self.output())?;
            self.copy_data(file, size)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&self.abs).map_err(self.io("readlink"))?;
            header.set_entry_type(tar::EntryType::Symlink);
            self.builder
                .append_link(&mut header, as_path(&self.rel), &target)
                .map_err(self.output())?;
        } else {
            let kind = if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else {
                tar::EntryType::Fifo
            };
            header.set_entry_type(kind);
            if kind != tar::EntryType::Fifo {
                let rdev = meta.rdev();
                header
                    .set_device_major(rustix::fs::major(rdev))
                    .map_err(self.output())?;
                header
                    .set_device_minor(rustix::fs::minor(rdev))
                    .map_err(self.output())?;
            }
            self.builder
                .append_data(&mut header, as_path(&self.rel), io::empty())
                .map_err(self.output())?;
        }
        Ok(None)
    }

    /// Emits an empty regular file (whiteout or opaque marker) named `self.scratch`.
    fn empty_marker(&mut self) -> Result<(), Error> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(0);
        self.entries += 1;
        self.builder
            .append_data(&mut header, as_path(&self.scratch), io::empty())
            .map_err(self.output())
    }

    /// Copies exactly `size` bytes of `file` plus the tar padding into the stream.
    fn copy_data(&mut self, mut file: File, size: u64) -> Result<(), Error> {
        let mut left = size;
        while left > 0 {
            let want = left.min(BUF_SIZE as u64) as usize;
            let n = match self.builder.get_mut().read_from(&mut file, want) {
                Ok(0) => {
                    return Err(Error::FileChanged {
                        path: self.abs.clone(),
                        expected: size,
                        read: size - left,
                    });
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                    return Err(self.output()(e));
                }
                Err(source) => {
                    return Err(Error::Io {
                        op: "read",
                        path: self.abs.clone(),
                        source,
                    });
                }
            };
            left -= n as u64;
        }
        let rem = (size % 512) as usize;
        if rem != 0 {
            self.builder
                .get_mut()
                .write_all(&[0u8; 512][..512 - rem])
                .map_err(self.output())?;
        }
        Ok(())
    }

    /// Fills `self.xattrs` with the PAX records for `self.abs`; returns whether the entry
    /// is an opaque overlay dir.
    fn read_xattrs(&mut self) -> Result<bool, Error> {
        self.xattrs.clear();
        let len = match rustix::fs::llistxattr(&self.abs, &mut self.xattr_names[..]) {
            Ok(len) => len,
            Err(e) if e == rustix::io::Errno::NOTSUP => return Ok(false),
            Err(e) => return Err(self.io("llistxattr")(e.into())),
        };
        let mut opaque = false;
        let names = std::mem::take(&mut self.xattr_names);
        let result = (|| {
            for name in names[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
                // Only the namespace our overlays use is overlayfs's; in the other one an
                // xattr is the process's own (a root step may set `user.overlay.x`).
                let overlay = whiteout::Xattrs::of_this_process();
                if name.starts_with(overlay.prefix()) {
                    if let Some(bad) = overlay.unsupported().iter().find(|x| x.as_bytes() == name) {
                        return Err(Error::OverlayFeature {
                            path: self.abs.clone(),
                            xattr: (*bad).to_string(),
                        });
                    }
                    if name == overlay.opaque().as_bytes() {
                        opaque =
                            whiteout::is_overlay_opaque(&self.abs).map_err(self.io("lgetxattr"))?;
                    }
                    continue;
                }
                let Ok(name_str) = std::str::from_utf8(name) else {
                    return Err(Error::XattrName {
                        path: self.abs.clone(),
                        name: String::from_utf8_lossy(name).into_owned(),
                    });
                };
                let n = match rustix::fs::lgetxattr(&self.abs, name, &mut self.xattr_value[..]) {
                    Ok(n) => n,
                    // Removed between list and get.
                    Err(e) if e == rustix::io::Errno::NODATA => continue,
                    Err(e) => return Err(self.io("lgetxattr")(e.into())),
                };
                self.xattrs.push((
                    format!("SCHILY.xattr.{name_str}"),
                    self.xattr_value[..n].to_vec(),
                ));
            }
            Ok(())
        })();
        self.xattr_names = names;
        result?;
        // `llistxattr` order is filesystem-defined; sort for reproducible bytes.
        self.xattrs.sort_unstable();
        Ok(opaque)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(blob: &[u8]) -> Vec<String> {
        let mut ar = tar::Archive::new(blob);
        ar.entries()
            .expect("entries")
            .map(|e| String::from_utf8_lossy(&e.expect("entry").path_bytes()).into_owned())
            .collect()
    }

    #[test]
    fn sorted_relative_paths_and_dir_slashes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path();
        std::fs::create_dir_all(p.join("b/c")).expect("mkdir");
        std::fs::write(p.join("a-b"), "x").expect("write");
        std::fs::write(p.join("b/c/f"), "y").expect("write");
        std::fs::create_dir(p.join("a")).expect("mkdir");
        let mut blob = Vec::new();
        let stats = write_layer(p, Compression::None, &mut blob).expect("write");
        assert_eq!(names(&blob), ["a/", "a-b", "b/", "b/c/", "b/c/f"]);
        assert_eq!(stats.entries, 5);
        assert_eq!(stats.uncompressed_size, blob.len() as u64);
        assert_eq!(stats.compressed_size, blob.len() as u64);
        assert_eq!(stats.diff_id, strata_digest::Digest::of(&blob));
    }

    #[test]
    fn same_tree_same_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        for i in 0..20 {
            std::fs::write(dir.path().join(format!("f{i}")), format!("{i}")).expect("write");
        }
        let mut a = Vec::new();
        let mut b = Vec::new();
        write_layer(dir.path(), Compression::Zstd, &mut a).expect("write");
        write_layer(dir.path(), Compression::Zstd, &mut b).expect("write");
        assert!(a == b);
    }

    #[test]
    fn long_names_survive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let long = "d".repeat(120);
        std::fs::create_dir(dir.path().join(&long)).expect("mkdir");
        std::fs::write(dir.path().join(&long).join("f".repeat(200)), "x").expect("write");
        std::os::unix::fs::symlink("t".repeat(150), dir.path().join("l")).expect("symlink");
        let mut blob = Vec::new();
        write_layer(dir.path(), Compression::None, &mut blob).expect("write");
        let mut ar = tar::Archive::new(blob.as_slice());
        let mut seen = Vec::new();
        for e in ar.entries().expect("entries") {
            let e = e.expect("entry");
            let link = e.link_name_bytes().map(|l| l.into_owned());
            seen.push((e.path_bytes().into_owned(), link));
        }
        assert_eq!(seen[0].0, format!("{long}/").into_bytes());
        assert_eq!(
            seen[1].0,
            format!("{long}/{}", "f".repeat(200)).into_bytes()
        );
        assert_eq!(seen[2].1, Some("t".repeat(150).into_bytes()));
    }

    #[test]
    fn missing_dir_names_the_path() {
        let err = write_layer(
            Path::new("/nonexistent/upper"),
            Compression::None,
            &mut io::sink(),
        )
        .expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/upper"), "{err}");
    }
}
