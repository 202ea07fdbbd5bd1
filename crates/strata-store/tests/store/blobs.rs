use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use strata_store::{Digest, Error, Store};

use crate::support::store;

#[test]
fn blobs_are_read_only_after_commit() {
    let (_d, store) = store();
    let small = store.write_blob(b"small").unwrap();
    let mut ingest = store.ingest().unwrap();
    ingest.write_all(&vec![3u8; 1 << 20]).unwrap();
    let big = ingest.commit(None).unwrap();
    for d in [small, big] {
        let mode = std::fs::metadata(store.blob_path(&d))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o222, 0, "blob {d} is writable: {mode:o}");
    }
}

#[test]
fn corrupted_blob_is_detected() {
    let (_d, store) = store();
    let d = store.write_blob(br#"{"schemaVersion":2}"#).unwrap();
    let path = store.blob_path(&d);
    // Bit rot, or someone editing the store by hand (root ignores the read-only mode).
    std::fs::write(&path, br#"{"schemaVersion":3}"#).unwrap();
    match store.read_blob(&d) {
        Err(Error::Corrupt { path: p, detail }) => {
            assert_eq!(p, path);
            assert!(
                detail.contains(&Digest::of(br#"{"schemaVersion":3}"#).to_string()),
                "{detail}"
            );
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Truncation too.
    std::fs::write(&path, b"").unwrap();
    assert!(matches!(store.read_blob(&d), Err(Error::Corrupt { .. })));
}
