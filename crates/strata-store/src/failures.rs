//! Failure records (`failures/<id>.json`): a build step that failed where nobody could open a
//! debugger, kept so that `strata debug ID` can open one later.
//!
//! A record names one manifest blob (the caller's image of the failed state: what it holds is
//! the caller's business, as for tags) and a summary to list. It is written like a tag: a
//! durable temp file in an owned `ingest/` entry, then `rename(2)`, so a reader sees the whole
//! record or none. Callers publish the blobs first (see the crate's ordering rule). gc removes
//! records the caller's policy lets go ([`crate::Keep::failures`]), before the blobs they name.

use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use strata_digest::Digest;

use crate::fsutil::{self, io};
use crate::ingest::IngestDir;
use crate::refs::{parse, read_optional, remove_record, write_durable};
use crate::{Error, LocalStore};

/// What a failure record holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// The record's id: lower-case hex, 12 characters.
    pub id: String,
    /// The manifest blob of the failed state.
    pub manifest: Digest,
    /// When the step failed (milliseconds since the Unix epoch: records of one second are
    /// still in order).
    pub created_millis: u64,
    /// The image being built.
    pub image: String,
    /// The stage of the step.
    pub stage: String,
    /// The failed step (its command as written).
    pub step: String,
    /// The step's exit status.
    pub exit_code: i32,
    /// The registry reference the record was pushed to, if any.
    pub remote: Option<String>,
}

/// A failure record as listed by [`LocalStore::failure_entries`], or why its file cannot be read.
pub type FailureEntry = Result<FailureRecord, Error>;

/// Whether `id` is a record id: 12 lower-case hex digits (so it is a file name as it is).
pub fn is_failure_id(id: &str) -> bool {
    id.len() == 12
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn failure_path(store: &LocalStore, id: &str) -> Result<PathBuf, Error> {
    if !is_failure_id(id) {
        return Err(Error::InvalidName {
            kind: "failure id",
            name: id.into(),
            reason: "it is not 12 lower-case hex digits",
        });
    }
    Ok(store.dir("failures").join(format!("{id}.json")))
}

fn read_failure_file(path: &std::path::Path, id: &str) -> Result<Option<FailureRecord>, Error> {
    let Some(bytes) = read_optional(path, "read of failure record")? else {
        return Ok(None);
    };
    let record: FailureRecord = parse(path, &bytes, "failure record")?;
    if record.id != id {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            detail: format!("it holds failure record `{}`", record.id),
        });
    }
    Ok(Some(record))
}

impl LocalStore {
    /// Publishes a failure record (replacing one of the same id). Its blobs must be
    /// committed already.
    pub fn put_failure(&self, record: &FailureRecord) -> Result<(), Error> {
        let path = failure_path(self, &record.id)?;
        let json = serde_json::to_vec_pretty(record)
            .expect("serializing a FailureRecord cannot fail because it has no maps");
        let tmp = IngestDir::create(self)?;
        let file = tmp.path().join("failure.json");
        write_durable(&file, &json, 0o644)?;
        fs::rename(&file, &path).map_err(io("rename into failures/ of temp record", &file))?;
        fsutil::fsync_dir(&self.dir("failures"))
    }

    /// The failure record `id`, if there is one.
    pub fn failure(&self, id: &str) -> Result<Option<FailureRecord>, Error> {
        read_failure_file(&failure_path(self, id)?, id)
    }

    /// Every failure record file with its record or why it cannot be read, newest first
    /// (unreadable ones last, by path).
    pub fn failure_entries(&self) -> Result<Vec<(PathBuf, FailureEntry)>, Error> {
        let dir = self.dir("failures");
        let mut out = Vec::new();
        for name in fsutil::list_names(&dir, "listing of")? {
            let Some(id) = name.strip_suffix(".json").filter(|id| is_failure_id(id)) else {
                continue;
            };
            let path = dir.join(&name);
            // A record removed since the listing (gc) is simply gone.
            match read_failure_file(&path, id) {
                Ok(Some(record)) => out.push((path, Ok(record))),
                Ok(None) => {}
                Err(e) => out.push((path, Err(e))),
            }
        }
        out.sort_by(|a, b| match (&a.1, &b.1) {
            (Ok(x), Ok(y)) => (y.created_millis, &y.id).cmp(&(x.created_millis, &x.id)),
            (Ok(_), Err(_)) => std::cmp::Ordering::Less,
            (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
            (Err(_), Err(_)) => a.0.cmp(&b.0),
        });
        Ok(out)
    }

    /// Removes the failure record `id` (not its blobs: gc takes those); false if there was none.
    pub fn remove_failure(&self, id: &str) -> Result<bool, Error> {
        let path = failure_path(self, id)?;
        remove_record(self, "failures", &path, "removal of failure record")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, created_millis: u64) -> FailureRecord {
        FailureRecord {
            id: id.into(),
            manifest: Digest::of(id.as_bytes()),
            created_millis,
            image: "app".into(),
            stage: "install".into(),
            step: "false".into(),
            exit_code: 1,
            remote: None,
        }
    }

    #[test]
    fn records_round_trip_newest_first_and_go_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        store.put_failure(&record("00000000000a", 10)).unwrap();
        store.put_failure(&record("00000000000b", 20)).unwrap();
        let ids: Vec<String> = store
            .failure_entries()
            .unwrap()
            .into_iter()
            .map(|(_, r)| r.unwrap().id)
            .collect();
        assert_eq!(ids, ["00000000000b", "00000000000a"]);
        assert_eq!(
            store.failure("00000000000a").unwrap(),
            Some(record("00000000000a", 10))
        );
        assert!(store.remove_failure("00000000000a").unwrap());
        assert!(!store.remove_failure("00000000000a").unwrap());
        assert_eq!(store.failure("00000000000a").unwrap(), None);
        // Nothing half-written is left behind.
        assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0);
    }

    #[test]
    fn ids_are_checked_before_they_become_paths() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        for bad in ["", "../../etc/x", "00000000000A", "0000000000000"] {
            assert!(
                matches!(store.failure(bad), Err(Error::InvalidName { .. })),
                "{bad}"
            );
        }
    }
}
