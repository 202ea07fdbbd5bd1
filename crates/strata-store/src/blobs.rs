//! Reading and writing blobs in `blobs/sha256/<hex>`.
//!
//! Blobs are immutable and read-only once committed (see [`crate::Ingest`]), so reads need no
//! locks. Every read verifies the digest, so a blob whose bytes rotted on disk is never used or
//! sent anywhere: [`read_blob`] hashes the whole (small, JSON) blob before returning it, and
//! [`open_blob`] streams through a [`VerifyingReader`], which hashes on the way and fails the
//! read that would hand over the blob's last bytes if they do not add up to its digest. A
//! consumer that stops at the blob's size (an HTTP upload with a `Content-Length`) therefore
//! still sees the error before it has everything.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::PathBuf;

use strata_digest::{Digest, Hasher};

use crate::fsutil::io;
use crate::{Error, Ingest, LocalStore};

fn not_found(digest: &Digest, path: PathBuf) -> Error {
    Error::BlobNotFound {
        digest: *digest,
        path,
    }
}

pub(crate) fn has_blob(store: &LocalStore, digest: &Digest) -> bool {
    fs::symlink_metadata(store.blob_path(digest)).is_ok_and(|m| m.is_file())
}

pub(crate) fn blob_size(store: &LocalStore, digest: &Digest) -> Result<u64, Error> {
    let path = store.blob_path(digest);
    match fs::metadata(&path) {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(not_found(digest, path)),
        Err(e) => Err(io("stat of blob", &path)(e)),
    }
}

pub(crate) fn open_blob(
    store: &LocalStore,
    digest: &Digest,
) -> Result<Box<dyn Read + Send>, Error> {
    let path = store.blob_path(digest);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found(digest, path)),
        Err(e) => return Err(io("open of blob", &path)(e)),
    };
    let size = file.metadata().map_err(io("stat of blob", &path))?.len();
    Ok(Box::new(VerifyingReader {
        file,
        path,
        expected: *digest,
        size,
        hasher: Hasher::new(),
        state: Verified::Pending,
    }))
}

/// Streams a blob file and checks its digest once `size` bytes (the file's size when opened)
/// have been read, or at end of file: the read that completes the blob fails instead if the
/// bytes hash to another digest, and so does every later one.
struct VerifyingReader {
    file: File,
    path: PathBuf,
    expected: Digest,
    size: u64,
    hasher: Hasher,
    state: Verified,
}

enum Verified {
    Pending,
    Good,
    Bad(Digest, u64),
}

impl VerifyingReader {
    fn corrupt(&self, actual: &Digest, read: u64) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            Error::Corrupt {
                path: self.path.clone(),
                detail: format!(
                    "its {read} bytes hash to {actual}, not {}; it is not used or sent \
                     (`strata store check --repair` moves it aside)",
                    self.expected
                ),
            },
        )
    }
}

impl Read for VerifyingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.state {
            Verified::Good => return self.file.read(buf),
            Verified::Bad(actual, read) => return Err(self.corrupt(&actual, read)),
            Verified::Pending => {}
        }
        let n = self.file.read(buf)?;
        self.hasher.update(&buf[..n]);
        let read = self.hasher.len();
        if n == 0 || read >= self.size {
            let actual = std::mem::take(&mut self.hasher).finish();
            if actual != self.expected {
                self.state = Verified::Bad(actual, read);
                return Err(self.corrupt(&actual, read));
            }
            self.state = Verified::Good;
        }
        Ok(n)
    }
}

pub(crate) fn read_blob(store: &LocalStore, digest: &Digest) -> Result<Vec<u8>, Error> {
    let path = store.blob_path(digest);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found(digest, path)),
        Err(e) => return Err(io("read of blob", &path)(e)),
    };
    let actual = Digest::of(&bytes);
    if actual != *digest {
        return Err(Error::Corrupt {
            path,
            detail: format!("its {} bytes hash to {actual}", bytes.len()),
        });
    }
    Ok(bytes)
}

pub(crate) fn write_blob(
    store: &LocalStore,
    bytes: &[u8],
    sync_name: bool,
) -> Result<Digest, Error> {
    let digest = Digest::of(bytes);
    // Held (so gc leaves it to our caller) and found, or written afresh.
    if store.protect(&[crate::Held::Blob(digest)])?.is_empty() {
        return Ok(digest);
    }
    let mut ingest = Ingest::new(store)?;
    ingest.write_all(bytes).map_err(io(
        "write of ingest file for blob",
        &store.blob_path(&digest),
    ))?;
    if sync_name {
        ingest.commit(Some(&digest))
    } else {
        ingest.commit_before_sync(Some(&digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn corrupt_blob_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let d = store.write_blob(b"{\"a\":1}").unwrap();
        let path = store.blob_path(&d);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&path, b"{\"a\":2}").unwrap();
        match store.read_blob(&d) {
            Err(Error::Corrupt { path: p, .. }) => assert_eq!(p, path),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn missing_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let d = Digest::of(b"nope");
        assert!(!store.has_blob(&d));
        assert!(matches!(
            store.blob_size(&d),
            Err(Error::BlobNotFound { .. })
        ));
        assert!(matches!(
            store.read_blob(&d),
            Err(Error::BlobNotFound { .. })
        ));
        assert!(matches!(
            store.open_blob(&d),
            Err(Error::BlobNotFound { .. })
        ));
    }
}
