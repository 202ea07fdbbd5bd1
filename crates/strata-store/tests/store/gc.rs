use std::fs;
use std::io::Write;
use std::process::Command;

use strata_store::{Digest, Store};

use crate::support::{ChildProc, store};

fn count(dir: &std::path::Path) -> usize {
    fs::read_dir(dir).unwrap().count()
}

#[test]
fn leftovers_of_a_killed_process_are_collected() {
    let (_d, store) = store();
    let mut child = ChildProc::spawn("die_mid_write", store.root(), None);
    let scratch = std::path::PathBuf::from(child.expect("SCRATCH"));
    assert_eq!(child.expect("WRITING"), "100000");

    // While the child lives, nothing of it is garbage.
    assert_eq!(store.collect_garbage().unwrap().removed.len(), 0);
    assert!(scratch.join("upper/usr").is_dir());

    child.kill();
    assert!(
        scratch.is_dir(),
        "SIGKILL ran no cleanup, the scratch dir is still there"
    );
    assert_eq!(count(&store.root().join("ingest")), 1);

    let report = store.collect_garbage().unwrap();
    assert_eq!(report.removed.len(), 2, "{report:?}");
    assert_eq!(report.bytes, 100_000 + 10, "{report:?}");
    assert!(
        report.removed.iter().any(|r| r.path == scratch),
        "{report:?}"
    );
    assert!(!scratch.exists());
    assert_eq!(count(&store.root().join("ingest")), 0);
    assert_eq!(count(&store.root().join("tmp")), 0);
    assert_eq!(
        count(&store.root().join("blobs/sha256")),
        0,
        "a partial blob was published"
    );
    assert!(!store.has_blob(&Digest::of(&[1u8; 100_000])));

    assert_eq!(store.collect_garbage().unwrap().removed.len(), 0);
}

#[test]
fn a_live_process_scratch_is_not_collected() {
    let (_d, store) = store();
    let mut child = ChildProc::spawn("hold_scratch", store.root(), None);
    let scratch = std::path::PathBuf::from(child.expect("SCRATCH"));
    assert_eq!(store.collect_garbage().unwrap().removed.len(), 0);
    assert!(scratch.join("f").is_file());
    child.kill();
    let report = store.collect_garbage().unwrap();
    assert_eq!(
        report
            .removed
            .iter()
            .map(|r| r.path.clone())
            .collect::<Vec<_>>(),
        vec![scratch.clone()]
    );
    assert_eq!(report.bytes, 4);
}

#[test]
fn entries_made_by_a_dead_shell_are_collected_and_ours_are_not() {
    let (_d, store) = store();
    let mine = store.scratch("build").unwrap();
    fs::write(mine.path().join("keep-me"), b"x").unwrap();
    let mut ingest = store.ingest().unwrap();
    ingest.write_all(b"in progress").unwrap();
    ingest.flush().unwrap();

    // A process that made tmp/ and ingest/ entries (one with an overlay work dir owned by
    // root, mode 000) and exited without ever holding a lock.
    let status = Command::new("sh")
        .arg("-c")
        .arg(
            "set -e; cd \"$1\"; \
             mkdir -p tmp/build-dead/work/work/d tmp/build-dead/ro; \
             echo hello > tmp/build-dead/work/work/d/f; \
             chmod 000 tmp/build-dead/work/work; chmod 555 tmp/build-dead/ro; \
             : > tmp/build-dead.lock; \
             mkdir -p ingest/dead; printf abc > ingest/dead/data",
        )
        .arg("sh")
        .arg(store.root())
        .status()
        .unwrap();
    assert!(status.success());

    let report = store.collect_garbage().unwrap();
    assert_eq!(report.removed.len(), 2, "{report:?}");
    assert_eq!(report.bytes, 6 + 3, "{report:?}");
    assert!(!store.root().join("tmp/build-dead").exists());
    assert!(!store.root().join("tmp/build-dead.lock").exists());
    assert!(!store.root().join("ingest/dead").exists());

    assert!(mine.path().join("keep-me").is_file());
    ingest.write_all(b", still").unwrap();
    let d = ingest.commit(None).unwrap();
    assert_eq!(store.read_blob(&d).unwrap(), b"in progress, still");
}

#[test]
fn an_ingest_dropped_mid_way_leaves_no_blob() {
    let (_d, store) = store();
    let mut ingest = store.ingest().unwrap();
    ingest.write_all(&[9u8; 4096]).unwrap();
    assert_eq!(count(&store.root().join("ingest")), 1);
    drop(ingest);
    assert_eq!(count(&store.root().join("ingest")), 0);
    assert_eq!(count(&store.root().join("blobs/sha256")), 0);
    assert_eq!(store.collect_garbage().unwrap().removed.len(), 0);
}

#[test]
fn a_blob_a_live_process_wrote_survives_gc_until_it_dies() {
    let (_d, store) = store();
    let mut child = ChildProc::spawn("hold_blob", store.root(), None);
    let digest = strata_store::Digest::from_hex(&child.expect("BLOB")).unwrap();
    let keep_nothing = &mut |_: &strata_store::GcView| strata_store::Keep::default();
    let options = strata_store::GcOptions::default();
    let report = store.gc(&options, keep_nothing).unwrap();
    assert!(store.has_blob(&digest), "{report:?}");
    child.kill();
    let report = store.gc(&options, keep_nothing).unwrap();
    assert!(!store.has_blob(&digest));
    assert!(
        report
            .removed
            .iter()
            .any(|r| r.kind == strata_store::RemovedKind::Blob && r.path.ends_with(digest.hex())),
        "{report:?}"
    );
    // The dead process's lease file went too.
    assert_eq!(
        fs::read_dir(store.root().join("leases")).unwrap().count(),
        0
    );
}
