//! The conformance suite every [`Store`] implementation runs (containerd's `ContentSuite`).
//!
//! Call [`run`] from the implementation's tests; each check is also public, to run alone. The
//! checks panic with a message on failure. They use fresh random content and names, so they can
//! run against a store that already holds data, and concurrently with each other.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let store = strata_store::LocalStore::open(dir.path()).unwrap();
//! strata_store::testsuite::run(&store);
//! ```

use std::collections::BTreeMap;
use std::io::{Read, Write};

use strata_digest::Digest;

use crate::{Error, LayerRecord, PutOutcome, StageRecord, Store, TagTarget, fsutil};

/// Runs every check against `store`.
pub fn run(store: &dyn Store) {
    blob_round_trip(store);
    write_blob_is_idempotent(store);
    missing_blob(store);
    ingest_streams(store);
    ingest_mismatch_leaves_nothing(store);
    ingest_dropped_leaves_nothing(store);
    concurrent_blob_writers(store);
    put_stage_first_writer_wins(store);
    concurrent_put_stage(store);
    replace_stage_only_replaces_what_it_names(store);
    stages_lists_records(store);
    tags_round_trip_and_replace(store);
    conversions_round_trip(store);
}

fn ok<T>(r: Result<T, Error>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

fn unique(label: &str) -> Vec<u8> {
    format!("strata-store testsuite {label} {}", fsutil::random_suffix()).into_bytes()
}

/// A stage record for `digest`, distinguishable by `writer`.
fn record(digest: Digest, writer: &str) -> StageRecord {
    let manifest = Digest::of(b"manifest");
    StageRecord {
        digest,
        parent: Some(Digest::of(b"parent")),
        manifest,
        config: Digest::of(b"config"),
        layers: vec![LayerRecord {
            digest: Digest::of(b"layer"),
            diff_id: Digest::of(b"diff"),
            size: 42,
            media_type: "application/vnd.oci.image.layer.v1.tar+zstd".into(),
            urls: Vec::new(),
        }],
        inputs: vec![serde_json::json!({"kind": "instructions", "lines": ["make"]})],
        image: "app".into(),
        stage: "install".into(),
        created_unix: 1_700_000_000,
        build_millis: 1234,
        meta: BTreeMap::from([("writer".to_string(), writer.to_string())]),
    }
}

/// write_blob, then has/size/read/open give the bytes back.
pub fn blob_round_trip(store: &dyn Store) {
    let bytes = unique("round trip");
    let d = ok(store.write_blob(&bytes), "write_blob");
    assert_eq!(
        d,
        Digest::of(&bytes),
        "write_blob returned the wrong digest"
    );
    assert!(store.has_blob(&d), "has_blob after write_blob");
    assert_eq!(ok(store.blob_size(&d), "blob_size"), bytes.len() as u64);
    assert_eq!(ok(store.read_blob(&d), "read_blob"), bytes);
    let mut streamed = Vec::new();
    ok(store.open_blob(&d), "open_blob")
        .read_to_end(&mut streamed)
        .expect("reading an opened blob should work because it was just written");
    assert_eq!(streamed, bytes, "open_blob gave other bytes");
}

/// Writing a blob that exists is a success with the same digest.
pub fn write_blob_is_idempotent(store: &dyn Store) {
    let bytes = unique("idempotent");
    let a = ok(store.write_blob(&bytes), "first write_blob");
    let b = ok(store.write_blob(&bytes), "second write_blob");
    assert_eq!(a, b);
    assert_eq!(ok(store.read_blob(&a), "read_blob"), bytes);
}

/// A missing blob is reported as [`Error::BlobNotFound`].
pub fn missing_blob(store: &dyn Store) {
    let d = Digest::of(&unique("missing"));
    assert!(!store.has_blob(&d));
    for (what, r) in [
        ("read_blob", store.read_blob(&d).map(drop)),
        ("blob_size", store.blob_size(&d).map(drop)),
        ("open_blob", store.open_blob(&d).map(drop)),
    ] {
        assert!(
            matches!(r, Err(Error::BlobNotFound { digest, .. }) if digest == d),
            "{what} of a missing blob: {r:?}"
        );
    }
}

/// Streaming writes in pieces commit the digest of the whole.
pub fn ingest_streams(store: &dyn Store) {
    let head = unique("ingest");
    let body = vec![0xabu8; 300 * 1024];
    let mut ing = ok(store.ingest(), "ingest");
    ing.write_all(&head).expect("ingest write should work");
    ing.write_all(&body).expect("ingest write should work");
    assert_eq!(ing.written(), (head.len() + body.len()) as u64);
    let mut whole = head.clone();
    whole.extend_from_slice(&body);
    let expected = Digest::of(&whole);
    let d = ok(ing.commit(Some(&expected)), "commit");
    assert_eq!(d, expected);
    assert_eq!(ok(store.blob_size(&d), "blob_size"), whole.len() as u64);
}

/// A commit with the wrong expected digest fails and publishes nothing.
pub fn ingest_mismatch_leaves_nothing(store: &dyn Store) {
    let bytes = unique("mismatch");
    let wrong = Digest::of(&unique("wrong"));
    let mut ing = ok(store.ingest(), "ingest");
    ing.write_all(&bytes).expect("ingest write should work");
    match ing.commit(Some(&wrong)) {
        Err(Error::DigestMismatch {
            expected, actual, ..
        }) => {
            assert_eq!(expected, wrong);
            assert_eq!(actual, Digest::of(&bytes));
        }
        other => panic!("commit with a wrong digest: {other:?}"),
    }
    assert!(
        !store.has_blob(&Digest::of(&bytes)),
        "mismatched data was published"
    );
    assert!(
        !store.has_blob(&wrong),
        "mismatched data was published under the expected name"
    );
}

/// An ingest dropped without commit publishes nothing.
pub fn ingest_dropped_leaves_nothing(store: &dyn Store) {
    let bytes = unique("dropped");
    let mut ing = ok(store.ingest(), "ingest");
    ing.write_all(&bytes).expect("ingest write should work");
    drop(ing);
    assert!(!store.has_blob(&Digest::of(&bytes)));
}

/// Several threads writing the same blob at once all succeed, with the same bytes stored.
pub fn concurrent_blob_writers(store: &dyn Store) {
    let mut bytes = unique("concurrent");
    bytes.extend(std::iter::repeat_n(7u8, 512 * 1024));
    let expected = Digest::of(&bytes);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let bytes = &bytes;
                s.spawn(move || {
                    if i % 2 == 0 {
                        ok(store.write_blob(bytes), "concurrent write_blob")
                    } else {
                        let mut ing = ok(store.ingest(), "concurrent ingest");
                        for chunk in bytes.chunks(64 * 1024) {
                            ing.write_all(chunk).expect("ingest write should work");
                        }
                        ok(ing.commit(Some(&expected)), "concurrent commit")
                    }
                })
            })
            .collect();
        for h in handles {
            let d = h.join().expect("a writer thread panicked");
            assert_eq!(d, expected);
        }
    });
    assert_eq!(ok(store.read_blob(&expected), "read_blob"), bytes);
}

/// The first put_stage wins; later ones get the first record back and change nothing.
pub fn put_stage_first_writer_wins(store: &dyn Store) {
    let d = Digest::of(&unique("stage"));
    assert_eq!(ok(store.stage(&d), "stage of a missing record"), None);
    let first = record(d, "first");
    assert_eq!(
        ok(store.put_stage(&first), "put_stage"),
        PutOutcome::Inserted
    );
    let second = record(d, "second");
    assert_eq!(
        ok(store.put_stage(&second), "second put_stage"),
        PutOutcome::AlreadyExists(first.clone())
    );
    assert_eq!(ok(store.stage(&d), "stage"), Some(first));
}

/// replace_stage swaps the record it names, refuses to swap any other, and inserts when none.
pub fn replace_stage_only_replaces_what_it_names(store: &dyn Store) {
    let d = Digest::of(&unique("replaced stage"));
    let first = record(d, "first");
    assert_eq!(
        ok(
            store.replace_stage(&first, &record(d, "none")),
            "replace_stage of nothing"
        ),
        PutOutcome::Inserted
    );
    let second = record(d, "second");
    assert_eq!(
        ok(store.replace_stage(&second, &first), "replace_stage"),
        PutOutcome::Inserted
    );
    assert_eq!(ok(store.stage(&d), "stage"), Some(second.clone()));
    // A stale view (the caller saw `first`, someone replaced it since) changes nothing.
    assert_eq!(
        ok(
            store.replace_stage(&record(d, "third"), &first),
            "stale replace_stage"
        ),
        PutOutcome::AlreadyExists(second.clone())
    );
    assert_eq!(ok(store.stage(&d), "stage"), Some(second));
}

/// Threads racing put_stage on one digest: exactly one gets Inserted, and its record stays.
pub fn concurrent_put_stage(store: &dyn Store) {
    let d = Digest::of(&unique("racing stage"));
    let barrier = std::sync::Barrier::new(8);
    let outcomes: Vec<(String, PutOutcome)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let barrier = &barrier;
                s.spawn(move || {
                    let writer = format!("thread {i}");
                    let rec = record(d, &writer);
                    barrier.wait();
                    (writer, ok(store.put_stage(&rec), "racing put_stage"))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a put_stage thread panicked"))
            .collect()
    });
    let winners: Vec<_> = outcomes
        .iter()
        .filter(|(_, o)| *o == PutOutcome::Inserted)
        .map(|(w, _)| w.clone())
        .collect();
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let stored = ok(store.stage(&d), "stage").expect("the winner's record should be stored");
    assert_eq!(stored, record(d, &winners[0]));
    for (_, o) in &outcomes {
        if let PutOutcome::AlreadyExists(r) = o {
            assert_eq!(*r, stored, "a loser saw another record than the stored one");
        }
    }
}

/// stages() includes published records.
pub fn stages_lists_records(store: &dyn Store) {
    let digests: Vec<_> = (0..3)
        .map(|i| Digest::of(&unique(&format!("list {i}"))))
        .collect();
    for d in &digests {
        ok(store.put_stage(&record(*d, "list")), "put_stage");
    }
    let all = ok(store.stages(), "stages");
    for d in &digests {
        assert!(all.iter().any(|r| r.digest == *d), "stages() misses {d}");
    }
}

/// Tags with `/`, `:` and `@` round-trip, are replaced by set_tag, listed and removed.
pub fn tags_round_trip_and_replace(store: &dyn Store) {
    let n = fsutil::random_suffix();
    let names = [
        format!("hello-{n}"),
        format!("busybox-{n}:latest"),
        format!("registry.local:5000/team/app-{n}:v1"),
        format!(
            "registry.local:5000/team/app-{n}@sha256:{}",
            Digest::of(b"x").hex()
        ),
    ];
    let target = |i: u64| TagTarget {
        manifest: Digest::of(&i.to_le_bytes()),
        stage: i.is_multiple_of(2).then(|| Digest::of(b"stage")),
        updated_unix: i,
    };
    for name in &names {
        assert_eq!(ok(store.tag(name), "tag of a missing name"), None, "{name}");
        ok(store.set_tag(name, &target(1)), "set_tag");
        assert_eq!(ok(store.tag(name), "tag"), Some(target(1)), "{name}");
        ok(store.set_tag(name, &target(2)), "replacing set_tag");
        assert_eq!(ok(store.tag(name), "tag"), Some(target(2)), "{name}");
    }
    let listed = ok(store.tags(), "tags");
    for name in &names {
        assert!(
            listed.iter().any(|(n, t)| n == name && *t == target(2)),
            "tags() misses {name}: {listed:?}"
        );
    }
    for name in &names {
        assert!(ok(store.remove_tag(name), "remove_tag"), "{name}");
        assert!(!ok(store.remove_tag(name), "second remove_tag"), "{name}");
        assert_eq!(ok(store.tag(name), "tag after removal"), None);
    }
}

/// A layer conversion is absent until recorded, then read back per kind.
pub fn conversions_round_trip(store: &dyn Store) {
    let source = Digest::of(&unique("conversion source"));
    let layer = |kind: &str| LayerRecord {
        digest: Digest::of(kind.as_bytes()),
        diff_id: Digest::of(b"diff"),
        size: 7,
        media_type: format!("application/vnd.oci.image.layer.v1.tar+{kind}"),
        urls: Vec::new(),
    };
    assert_eq!(ok(store.converted_layer(&source, "gzip"), "missing"), None);
    ok(
        store.put_converted_layer(&source, "gzip", &layer("gzip")),
        "put gzip",
    );
    ok(
        store.put_converted_layer(&source, "zstd", &layer("zstd")),
        "put zstd",
    );
    assert_eq!(
        ok(store.converted_layer(&source, "gzip"), "gzip"),
        Some(layer("gzip"))
    );
    assert_eq!(
        ok(store.converted_layer(&source, "zstd"), "zstd"),
        Some(layer("zstd"))
    );
    ok(
        store.put_converted_layer(&source, "gzip", &layer("gzip")),
        "put again",
    );
}
