//! Collecting what killed processes left behind: unowned `ingest/` and `tmp/` entries.
//!
//! Ownership is an flock, which the kernel drops when the owner dies, so an entry whose lock
//! can be taken is garbage and one whose lock is held is never touched. Two details make that
//! exact rather than heuristic:
//!
//! - Creators take a *shared* flock on `locks/.gc.lock` from before they create an entry until
//!   they hold its lock; the collector takes it *exclusively* while it lists entries and claims
//!   the dead ones (by taking their locks). So it never sees an entry that exists but is not
//!   locked yet. The exclusive lock is released before the (possibly slow) removal.
//! - Claimed entries are removed while the collector holds their locks, so a second collector
//!   running at the same time skips them.
//!
//! Blobs, stage records, tags and snapshots are never collected here: which of them are still
//! wanted is a reachability question for the caller (`strata::ops::prune`).

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use crate::fsutil::{self, io};
use crate::{Error, LocalStore};

/// What [`LocalStore::collect_garbage`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GarbageReport {
    /// How many entries (ingest dirs, scratch dirs, stray files) were removed.
    pub entries: usize,
    /// Bytes of regular files removed.
    pub bytes: u64,
    /// The entries removed.
    pub removed: Vec<PathBuf>,
}

/// Options for [`LocalStore::collect_garbage_with`].
#[derive(Clone, Debug, Default)]
pub struct GcOptions {
    /// Also remove scratch dirs kept with [`crate::Scratch::keep`] whose owner has released
    /// them (default: leave them, a debugger may want them).
    pub kept_scratch: bool,
}

fn gc_lock_path(store: &LocalStore) -> PathBuf {
    // User lock names are escaped and never start with `.`, so this cannot collide.
    store.dir("locks").join(".gc.lock")
}

fn open_gc_lock(path: &Path) -> Result<File, Error> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io("open of gc lock file", path))
}

/// Held (shared) while a new owned entry is created and locked.
pub(crate) fn creation_guard(store: &LocalStore) -> Result<File, Error> {
    let path = gc_lock_path(store);
    let file = open_gc_lock(&path)?;
    retry_eintr(|| file.lock_shared()).map_err(io("shared flock of gc lock file", &path))?;
    Ok(file)
}

fn retry_eintr(mut f: impl FnMut() -> io::Result<()>) -> io::Result<()> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// A dead entry claimed for removal: its paths, removed in order, and its lock (if it has one),
/// held until the removal is done.
struct Claimed {
    paths: Vec<PathBuf>,
    _lock: Option<File>,
}

/// Opens `path` and tries to take its flock: `Ok(Some(file))` if we got it (the owner is dead),
/// `Ok(None)` if it is held or `path` vanished meanwhile.
fn try_claim_lock(path: &Path, op: &'static str) -> Result<Option<File>, Error> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(op, path)(e)),
    };
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(io(op, path)(e)),
    }
}

fn list_names(dir: &Path) -> Result<BTreeSet<String>, Error> {
    let mut names = BTreeSet::new();
    for entry in fs::read_dir(dir).map_err(io("listing for gc of", dir))? {
        let entry = entry.map_err(io("listing for gc of", dir))?;
        // Everything the store creates has a UTF-8 name; anything else is a stray entry,
        // left for a human rather than guessed about.
        if let Ok(name) = entry.file_name().into_string() {
            names.insert(name);
        }
    }
    Ok(names)
}

fn claim_ingest(store: &LocalStore, claimed: &mut Vec<Claimed>) -> Result<(), Error> {
    let dir = store.dir("ingest");
    for name in list_names(&dir)? {
        let path = dir.join(&name);
        // Only directories are owned entries; a stray file has no owner and is garbage.
        let is_dir = fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        let lock = if is_dir {
            match try_claim_lock(&path, "flock for gc of ingest dir")? {
                Some(lock) => Some(lock),
                None => continue,
            }
        } else {
            None
        };
        claimed.push(Claimed {
            paths: vec![path],
            _lock: lock,
        });
    }
    Ok(())
}

fn claim_tmp(
    store: &LocalStore,
    options: &GcOptions,
    claimed: &mut Vec<Claimed>,
) -> Result<(), Error> {
    let dir = store.dir("tmp");
    let names = list_names(&dir)?;
    for name in &names {
        if let Some(base) = name.strip_suffix(".lock") {
            if !names.contains(base)
                && let Some(lock) = try_claim_lock(&dir.join(name), "flock for gc of")?
            {
                // A lock file whose dir is gone: its owner died while dropping the Scratch.
                claimed.push(Claimed {
                    paths: vec![dir.join(name)],
                    _lock: Some(lock),
                });
            }
            continue;
        }
        if let Some(base) = name.strip_suffix(".kept") {
            if !names.contains(base) {
                claimed.push(Claimed {
                    paths: vec![dir.join(name)],
                    _lock: None,
                });
            }
            continue;
        }
        let lock_name = format!("{name}.lock");
        let kept_name = format!("{name}.kept");
        let kept = names.contains(&kept_name);
        if kept && !options.kept_scratch {
            continue;
        }
        let mut paths = vec![dir.join(name)];
        if kept {
            paths.push(dir.join(&kept_name));
        }
        let lock = if names.contains(&lock_name) {
            match try_claim_lock(&dir.join(&lock_name), "flock for gc of")? {
                Some(lock) => {
                    paths.push(dir.join(&lock_name));
                    Some(lock)
                }
                None => continue,
            }
        } else {
            // No lock file: a Scratch creates its lock file before its dir and removes it after,
            // so nobody owns this (it was made by something else, or kept and released).
            None
        };
        claimed.push(Claimed { paths, _lock: lock });
    }
    Ok(())
}

impl LocalStore {
    /// Removes garbage a killed process left: `ingest/*` and `tmp/*` entries whose owner lock is
    /// not held. Never touches anything a live process holds, nor scratch dirs marked kept.
    /// Returns what it removed.
    pub fn collect_garbage(&self) -> Result<GarbageReport, Error> {
        self.collect_garbage_with(&GcOptions::default())
    }

    /// [`LocalStore::collect_garbage`] with options.
    pub fn collect_garbage_with(&self, options: &GcOptions) -> Result<GarbageReport, Error> {
        let mut claimed = Vec::new();
        {
            let path = gc_lock_path(self);
            let guard = open_gc_lock(&path)?;
            retry_eintr(|| guard.lock()).map_err(io("exclusive flock of gc lock file", &path))?;
            claim_ingest(self, &mut claimed)?;
            claim_tmp(self, options, &mut claimed)?;
        }
        let mut report = GarbageReport::default();
        for c in claimed {
            for p in &c.paths {
                report.bytes += fsutil::remove_tree(p)?;
            }
            report.entries += 1;
            report.removed.extend(c.paths.into_iter().next());
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use std::io::Write;

    fn store() -> (tempfile::TempDir, LocalStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn live_entries_are_left_alone() {
        let (_d, store) = store();
        let mut ing = store.ingest().unwrap();
        ing.write_all(b"partial").unwrap();
        ing.flush().unwrap();
        let s = store.scratch("build").unwrap();
        fs::write(s.path().join("f"), b"x").unwrap();
        assert_eq!(store.collect_garbage().unwrap(), GarbageReport::default());
        assert!(s.path().join("f").exists());
        ing.write_all(b" more").unwrap();
        let d = ing.commit(None).unwrap();
        assert_eq!(store.read_blob(&d).unwrap(), b"partial more");
    }

    #[test]
    fn unlocked_entries_are_collected() {
        let (_d, store) = store();
        let dead_ingest = store.dir("ingest/deadbeef");
        fs::create_dir(&dead_ingest).unwrap();
        fs::write(dead_ingest.join("data"), b"12345").unwrap();
        let dead_tmp = store.dir("tmp/build-0000");
        fs::create_dir_all(dead_tmp.join("a")).unwrap();
        fs::write(dead_tmp.join("a/f"), b"123").unwrap();
        fs::write(store.dir("tmp/build-0000.lock"), b"").unwrap();
        fs::write(store.dir("tmp/orphan-1.lock"), b"").unwrap();
        let r = store.collect_garbage().unwrap();
        assert_eq!((r.entries, r.bytes), (3, 8), "{r:?}");
        assert_eq!(fs::read_dir(store.dir("ingest")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(store.dir("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn kept_scratch_survives_unless_asked() {
        let (_d, store) = store();
        let p = store.scratch("debug").unwrap().into_path();
        assert_eq!(store.collect_garbage().unwrap().entries, 0);
        assert!(p.is_dir());
        let r = store
            .collect_garbage_with(&GcOptions { kept_scratch: true })
            .unwrap();
        assert_eq!(r.removed, vec![p.clone()]);
        assert_eq!(fs::read_dir(store.dir("tmp")).unwrap().count(), 0);
    }
}
