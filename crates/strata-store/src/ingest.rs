//! Ingest transactions: how anything enters the store.
//!
//! Every write goes to `ingest/<random>/`, a directory this process holds with an exclusive
//! `flock(2)` on the directory itself for as long as the write is in progress. A blob commit is
//! (containerd `plugins/content/local/writer.go` `Commit`):
//!
//! 1. hash while writing ([`HashingWriter`]), flush;
//! 2. check the digest against the expected one (a mismatch commits nothing);
//! 3. check the file's size against the bytes written, `fsync` it;
//! 4. `chmod 0444` — before the rename, unlike containerd, so that a blob is never visible
//!    writable, not even between a rename and a crash;
//! 5. hold the blob in this process's lease (gc must not take it before a record names it);
//!    if it already exists, stop: that counts as success;
//! 6. `rename` into `blobs/sha256/<hex>` (two writers of the same blob replace identical bytes,
//!    atomically), then `fsync` the `blobs/sha256` directory;
//! 7. remove the now-empty ingest directory. Failing that is not an error: the entry is dead
//!    garbage that [`LocalStore::collect_garbage`] removes.
//!
//! Records (stage index entries, tags) use the same owned directories for their temp files.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use strata_digest::{Digest, HashingWriter};

use crate::fsutil::{self, io};
use crate::{Error, Held, LocalStore, gc};

/// An `ingest/<random>` directory held by this process; removed with its content on drop.
pub(crate) struct IngestDir {
    path: PathBuf,
    /// The directory itself, opened read-only and flocked exclusively: the proof of ownership
    /// that [`LocalStore::collect_garbage`] checks.
    _lock: File,
}

impl IngestDir {
    /// Creates and locks a fresh `ingest/<random>` directory.
    pub(crate) fn create(store: &LocalStore) -> Result<IngestDir, Error> {
        // Keep the collector from listing ingest/ between our mkdir and our flock.
        let _creating = gc::creation_guard(store)?;
        let parent = store.dir("ingest");
        let path = loop {
            let path = parent.join(fsutil::random_suffix());
            match fs::create_dir(&path) {
                Ok(()) => break path,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io("creation of ingest directory", &path)(e)),
            }
        };
        let lock = File::open(&path).map_err(io("open of ingest directory", &path))?;
        lock.lock()
            .map_err(io("flock of ingest directory", &path))?;
        Ok(IngestDir { path, _lock: lock })
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for IngestDir {
    fn drop(&mut self) {
        // Cleanup failures leave a dead entry behind, which collect_garbage removes; there is
        // nothing better to do with the error here. The lock is released after the removal,
        // when `_lock` drops.
        let _ = fsutil::remove_tree(&self.path);
    }
}

/// A blob being written: hashed while written; [`Ingest::commit`] fsyncs, checks the digest,
/// renames into `blobs/sha256/<hex>`, fsyncs the directory and leaves the blob read-only.
///
/// Dropping it without a commit removes the partial data. A process killed mid-write leaves an
/// unlocked `ingest/` entry that [`LocalStore::collect_garbage`] removes.
pub struct Ingest {
    store: LocalStore,
    blobs: PathBuf,
    data: PathBuf,
    writer: HashingWriter<BufWriter<File>>,
    // Last, so the data file is closed before the directory is removed.
    dir: IngestDir,
}

impl Ingest {
    pub(crate) fn new(store: &LocalStore) -> Result<Ingest, Error> {
        let dir = IngestDir::create(store)?;
        let data = dir.path().join("data");
        let file = File::create_new(&data).map_err(io("creation of ingest file", &data))?;
        Ok(Ingest {
            store: store.clone(),
            blobs: store.dir("blobs/sha256"),
            data,
            writer: HashingWriter::new(BufWriter::with_capacity(256 * 1024, file)),
            dir,
        })
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.writer.len()
    }

    /// Commits the blob and returns its digest. With `expected`, a mismatch is
    /// [`Error::DigestMismatch`] and nothing lands in `blobs/`. A blob that already exists
    /// counts as success.
    pub fn commit(self, expected: Option<&Digest>) -> Result<Digest, Error> {
        self.finish(expected, true)
    }

    /// [`Ingest::commit`] without the fsync of `blobs/` that makes the blob's name durable:
    /// for a caller that syncs the store ([`LocalStore::sync`]) before it publishes anything
    /// naming the blob. The data is durable before the name appears either way; a crash before
    /// that sync loses only the name, and the ingest dir left behind is gc's.
    pub fn commit_before_sync(self, expected: Option<&Digest>) -> Result<Digest, Error> {
        self.finish(expected, false)
    }

    fn finish(self, expected: Option<&Digest>, sync_name: bool) -> Result<Digest, Error> {
        let Ingest {
            store,
            blobs,
            data,
            writer,
            dir,
        } = self;
        let (buf, digest, size) = writer.finish();
        let file = buf
            .into_inner()
            .map_err(|e| io("flush of ingest file", &data)(e.into_error()))?;
        if let Some(expected) = expected
            && *expected != digest
        {
            return Err(Error::DigestMismatch {
                expected: *expected,
                actual: digest,
                size,
            });
        }
        let target = blobs.join(digest.hex());
        let on_disk = file
            .metadata()
            .map_err(io("stat of ingest file", &data))?
            .len();
        if on_disk != size {
            return Err(Error::Corrupt {
                path: data,
                detail: format!("{size} bytes were written but the file holds {on_disk}"),
            });
        }
        file.sync_all().map_err(io("fsync of ingest file", &data))?;
        file.set_permissions(fs::Permissions::from_mode(0o444))
            .map_err(io("chmod a-w of ingest file", &data))?;
        drop(file);
        {
            // Held before it is visible, and checked for under the same guard, so gc cannot
            // take it (or the copy already there) before our caller has recorded it.
            let _creating = gc::creation_guard(&store)?;
            store.hold(&[Held::Blob(digest)])?;
            if fs::symlink_metadata(&target).is_ok() {
                return Ok(digest);
            }
            fs::rename(&data, &target)
                .map_err(io("rename into blobs/sha256 of ingest file", &data))?;
        }
        if sync_name {
            fsutil::fsync_dir(&blobs)?;
        }
        drop(dir);
        Ok(digest)
    }
}

impl Write for Ingest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("data", &self.data)
            .field("written", &self.written())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    fn store() -> (tempfile::TempDir, LocalStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        (dir, store)
    }

    fn entries(dir: &Path) -> usize {
        fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn commit_publishes_read_only_blob_and_cleans_ingest() {
        let (_d, store) = store();
        let mut ing = store.ingest().unwrap();
        ing.write_all(b"hel").unwrap();
        ing.write_all(b"lo").unwrap();
        assert_eq!(ing.written(), 5);
        let d = ing.commit(None).unwrap();
        assert_eq!(d, Digest::of(b"hello"));
        let meta = fs::metadata(store.blob_path(&d)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o444);
        assert_eq!(entries(&store.dir("ingest")), 0);
    }

    #[test]
    fn mismatch_commits_nothing() {
        let (_d, store) = store();
        let mut ing = store.ingest().unwrap();
        ing.write_all(b"actual").unwrap();
        let err = ing.commit(Some(&Digest::of(b"expected"))).unwrap_err();
        assert!(
            matches!(err, Error::DigestMismatch { size: 6, .. }),
            "{err}"
        );
        assert_eq!(entries(&store.dir("blobs/sha256")), 0);
        assert_eq!(entries(&store.dir("ingest")), 0);
    }

    #[test]
    fn drop_removes_partial_data() {
        let (_d, store) = store();
        let mut ing = store.ingest().unwrap();
        ing.write_all(&[7u8; 1 << 20]).unwrap();
        drop(ing);
        assert_eq!(entries(&store.dir("ingest")), 0);
        assert_eq!(entries(&store.dir("blobs/sha256")), 0);
    }

    #[test]
    fn existing_blob_counts_as_success() {
        let (_d, store) = store();
        let d = store.write_blob(b"same").unwrap();
        let mut ing = store.ingest().unwrap();
        ing.write_all(b"same").unwrap();
        assert_eq!(ing.commit(Some(&d)).unwrap(), d);
        assert_eq!(entries(&store.dir("ingest")), 0);
    }
}
