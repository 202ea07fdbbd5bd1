//! Reading and writing blobs in `blobs/sha256/<hex>`.
//!
//! Blobs are immutable and read-only once committed (see [`crate::Ingest`]), so reads need no
//! locks. [`read_blob`] verifies the digest because small JSON blobs are read whole anyway and
//! a corrupt manifest must not be trusted; [`open_blob`] streams without verifying, since layers
//! are large and their consumer usually hashes them on the way (diff ids) anyway.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::PathBuf;

use strata_digest::Digest;

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
    match File::open(&path) {
        Ok(f) => Ok(Box::new(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(not_found(digest, path)),
        Err(e) => Err(io("open of blob", &path)(e)),
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

pub(crate) fn write_blob(store: &LocalStore, bytes: &[u8]) -> Result<Digest, Error> {
    let digest = Digest::of(bytes);
    if has_blob(store, &digest) {
        return Ok(digest);
    }
    let mut ingest = Ingest::new(store)?;
    ingest.write_all(bytes).map_err(io(
        "write of ingest file for blob",
        &store.blob_path(&digest),
    ))?;
    ingest.commit(Some(&digest))
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
