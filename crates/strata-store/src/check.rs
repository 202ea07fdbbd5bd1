//! Checking the store ([`LocalStore::check`]) and moving corrupt entries aside
//! ([`LocalStore::quarantine`]).
//!
//! What the store can verify on its own: every blob hashes to its name, every record (stage,
//! tag, conversion, failure) parses and is filed under its own name, and every stage record,
//! tag and failure record names blobs that are there and sound. Snapshots are directories whose meaning (the layer they
//! unpack) the store does not know; their check is the caller's (`strata::ops::check` compares
//! them with their layers) and uses [`LocalStore::quarantine`] too.
//!
//! Quarantine is a `rename(2)` into `quarantine/<dir>-<name>-<random>`: the entry leaves the
//! place every reader looks, atomically, and stays on disk for a human to look at. A stage
//! record or a tag that names a quarantined (or missing) blob goes too, so a build misses the
//! stage and rebuilds it instead of reusing what can no longer be exported, and an export of
//! the tag fails as "no such image" rather than half way. Records referring to a blob are
//! checked after all blobs, so the order in which things went bad does not matter.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use strata_digest::{Digest, Hasher};

use crate::fsutil::{self, io};
use crate::{Error, LocalStore, refs};

/// The kind of a checked entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A blob in `blobs/sha256/`.
    Blob,
    /// A stage record in `stages/`.
    Stage,
    /// A tag in `tags/`.
    Tag,
    /// A layer conversion record in `converted/`.
    Conversion,
    /// An unpacked snapshot in `snapshots/`.
    Snapshot,
    /// A failure record in `failures/`.
    Failure,
}

impl std::fmt::Display for EntryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EntryKind::Blob => "blob",
            EntryKind::Stage => "stage record",
            EntryKind::Tag => "tag",
            EntryKind::Conversion => "conversion record",
            EntryKind::Snapshot => "snapshot",
            EntryKind::Failure => "failure record",
        })
    }
}

/// One entry found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// What it is.
    pub kind: EntryKind,
    /// Where it was.
    pub path: PathBuf,
    /// What is wrong with it.
    pub detail: String,
    /// Where it was moved, when the check repaired.
    pub quarantined: Option<PathBuf>,
}

/// What [`LocalStore::check`] looked at and found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Blobs hashed.
    pub blobs: usize,
    /// Bytes hashed.
    pub blob_bytes: u64,
    /// Stage records read.
    pub stages: usize,
    /// Tags read.
    pub tags: usize,
    /// Conversion records read.
    pub conversions: usize,
    /// Failure records read.
    pub failures: usize,
    /// Everything found wrong, in the order found.
    pub problems: Vec<Problem>,
}

impl LocalStore {
    /// Verifies every blob, stage record, tag, conversion and failure record (see the module
    /// docs); with
    /// `repair`, moves each bad one into `quarantine/`. Entries that vanish meanwhile (a
    /// concurrent gc) are skipped; entries added meanwhile may or may not be looked at.
    pub fn check(&self, repair: bool) -> Result<CheckReport, Error> {
        let mut report = CheckReport::default();
        let mut bad_blobs = BTreeSet::new();
        let blob_dir = self.dir("blobs/sha256");
        for name in fsutil::list_names(&blob_dir, "listing for check of")? {
            let path = blob_dir.join(&name);
            let Ok(digest) = Digest::from_hex(&name) else {
                let detail = "not named by a sha256 digest".to_string();
                self.found(&mut report, EntryKind::Blob, path, detail, repair)?;
                continue;
            };
            let Some((actual, size)) = hash_file(&path)? else {
                continue;
            };
            report.blobs += 1;
            report.blob_bytes += size;
            if actual != digest {
                bad_blobs.insert(digest);
                let detail = format!("its {size} bytes hash to {actual}");
                self.found(&mut report, EntryKind::Blob, path, detail, repair)?;
            }
        }
        let unsound = |d: &Digest| -> Option<String> {
            if bad_blobs.contains(d) {
                Some(format!("it names the corrupt blob {d}"))
            } else if !crate::blobs::has_blob(self, d) {
                Some(format!("it names the blob {d}, which is not in the store"))
            } else {
                None
            }
        };
        for (path, record) in refs::stage_entries(self)? {
            report.stages += 1;
            let detail = match record {
                Err(e) => Some(corrupt_detail(e)),
                Ok(r) => std::iter::once(&r.manifest)
                    .chain(std::iter::once(&r.config))
                    .chain(
                        r.layers
                            .iter()
                            // A plain layer's content may be its snapshot alone.
                            .filter(|l| !(l.is_plain() && self.snapshot_path(&l.diff_id).is_dir()))
                            .map(|l| &l.digest),
                    )
                    .find_map(unsound),
            };
            if let Some(detail) = detail {
                self.found(&mut report, EntryKind::Stage, path, detail, repair)?;
            }
        }
        for (path, tag) in refs::tag_entries(self)? {
            report.tags += 1;
            let detail = match tag {
                Err(e) => Some(corrupt_detail(e)),
                Ok((_, target)) => unsound(&target.manifest),
            };
            if let Some(detail) = detail {
                self.found(&mut report, EntryKind::Tag, path, detail, repair)?;
            }
        }
        for (path, failure) in self.failure_entries()? {
            report.failures += 1;
            let detail = match failure {
                Err(e) => Some(corrupt_detail(e)),
                Ok(record) => unsound(&record.manifest),
            };
            if let Some(detail) = detail {
                self.found(&mut report, EntryKind::Failure, path, detail, repair)?;
            }
        }
        for (path, conversion) in refs::conversion_entries(self)? {
            report.conversions += 1;
            // A conversion whose blob is gone is allowed (callers check); a corrupt one is not.
            let detail = match conversion {
                Err(e) => Some(corrupt_detail(e)),
                Ok((_, layer)) if bad_blobs.contains(&layer.digest) => {
                    Some(format!("it names the corrupt blob {}", layer.digest))
                }
                Ok(_) => None,
            };
            if let Some(detail) = detail {
                self.found(&mut report, EntryKind::Conversion, path, detail, repair)?;
            }
        }
        Ok(report)
    }

    fn found(
        &self,
        report: &mut CheckReport,
        kind: EntryKind,
        path: PathBuf,
        detail: String,
        repair: bool,
    ) -> Result<(), Error> {
        let quarantined = if repair {
            self.quarantine(&path)?
        } else {
            None
        };
        report.problems.push(Problem {
            kind,
            path,
            detail,
            quarantined,
        });
        Ok(())
    }

    /// Moves a store entry (a blob, record or snapshot) into `quarantine/`, where no reader
    /// looks, and returns its new path; `None` if it was already gone.
    pub fn quarantine(&self, path: &Path) -> Result<Option<PathBuf>, Error> {
        let outside = || Error::InvalidName {
            kind: "entry to quarantine",
            name: path.display().to_string(),
            reason: "it is not an entry of the store",
        };
        let rel = path.strip_prefix(&self.root).map_err(|_| outside())?;
        let (Some(top), Some(name)) = (rel.iter().next(), rel.file_name()) else {
            return Err(outside());
        };
        let target = self.dir("quarantine").join(format!(
            "{}-{}-{}",
            top.to_string_lossy(),
            name.to_string_lossy(),
            fsutil::random_suffix()
        ));
        match fs::rename(path, &target) {
            Ok(()) => Ok(Some(target)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("move into quarantine/ of", path)(e)),
        }
    }

    /// The ids of all snapshots (`snapshots/<hex>/`).
    pub fn snapshots(&self) -> Result<Vec<Digest>, Error> {
        let names = fsutil::list_names(&self.dir("snapshots"), "listing of")?;
        Ok(names
            .iter()
            .filter_map(|n| Digest::from_hex(n).ok())
            .collect())
    }
}

/// The detail of a record's read error (the path is shown separately).
fn corrupt_detail(e: Error) -> String {
    match e {
        Error::Corrupt { detail, .. } => detail,
        other => other.to_string(),
    }
}

/// Hashes a file; `None` if it vanished.
fn hash_file(path: &Path) -> Result<Option<(Digest, u64)>, Error> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("open for check of blob", path)(e)),
    };
    let mut hasher = Hasher::new();
    let mut buf = vec![0; 256 * 1024];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io("read for check of blob", path)(e)),
        };
        hasher.update(&buf[..n]);
    }
    let size = hasher.len();
    Ok(Some((hasher.finish(), size)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Store, TagTarget};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_flipped_byte_is_found_and_quarantined_with_what_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let good = store.write_blob(b"good").unwrap();
        let bad = store.write_blob(b"layer").unwrap();
        let target = |manifest| TagTarget {
            manifest,
            stage: None,
            updated_unix: 0,
        };
        store.set_tag("ok", &target(good)).unwrap();
        store.set_tag("broken", &target(bad)).unwrap();
        let path = store.blob_path(&bad);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&path, b"lAyer").unwrap();

        let report = store.check(false).unwrap();
        assert_eq!((report.blobs, report.tags), (2, 2));
        let found: Vec<_> = report.problems.iter().map(|p| p.kind).collect();
        assert_eq!(found, [EntryKind::Blob, EntryKind::Tag], "{report:?}");
        assert!(report.problems[0].path == path && report.problems[0].quarantined.is_none());
        let mut read = String::new();
        let err = store
            .open_blob(&bad)
            .unwrap()
            .read_to_string(&mut read)
            .unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");

        let repaired = store.check(true).unwrap();
        assert!(repaired.problems.iter().all(|p| p.quarantined.is_some()));
        assert!(!store.has_blob(&bad) && store.tag("broken").unwrap().is_none());
        assert_eq!(store.tag("ok").unwrap(), Some(target(good)));
        assert_eq!(store.check(false).unwrap().problems, []);
        assert_eq!(fs::read_dir(store.dir("quarantine")).unwrap().count(), 2);
    }

    #[test]
    fn a_plain_layer_is_there_while_its_snapshot_is() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let diff_id = Digest::of(b"the layer's tar");
        let record = crate::StageRecord {
            digest: Digest::of(b"stage"),
            parent: None,
            manifest: store.write_blob(b"manifest").unwrap(),
            config: store.write_blob(b"config").unwrap(),
            layers: vec![crate::LayerRecord {
                digest: diff_id,
                diff_id,
                size: 15,
                media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                urls: Vec::new(),
            }],
            inputs: vec![],
            image: "app".into(),
            stage: "install".into(),
            created_unix: 1,
            build_millis: 2,
            meta: Default::default(),
        };
        store.put_stage(&record).unwrap();
        let scratch = store.scratch("snap").unwrap();
        let upper = scratch.path().join("fs");
        fs::create_dir(&upper).unwrap();
        store.commit_snapshot(&upper, &diff_id).unwrap();
        assert_eq!(store.check(false).unwrap().problems, []);

        // Without the snapshot nothing holds the layer: the record names nothing there.
        fs::remove_dir(store.snapshot_path(&diff_id)).unwrap();
        let report = store.check(false).unwrap();
        assert_eq!(report.problems.len(), 1, "{report:?}");
        assert_eq!(report.problems[0].kind, EntryKind::Stage);
        assert!(report.problems[0].detail.contains(&diff_id.to_string()));
    }
}
