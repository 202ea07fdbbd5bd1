//! Leases: what a live process has written or is using, which gc must never remove
//! (containerd's leases, without a daemon).
//!
//! Each process that writes to or reads from the store gets one lease file,
//! `leases/<random>`, on first need, held with an exclusive `flock(2)` until the last clone of
//! its [`LocalStore`] drops or the process dies (the kernel drops the lock, however it dies).
//! The file lists one held item a line. Every blob an [`crate::Ingest`] commits, every snapshot
//! [`LocalStore::commit_snapshot`] publishes and every stage record [`crate::Store::put_stage`]
//! publishes is held before it becomes visible, and a build holds what it reuses with
//! [`LocalStore::protect`] — so a layer committed before its stage record, or a cached stage a
//! build is stacking on, is never collected from under it.
//!
//! Holding and publishing happen under the shared `locks/.gc.lock` that gc takes exclusively
//! while it decides and moves things out, so gc either ran before (and the item, absent or
//! unheld then, is written or checked afterwards) or sees the item held.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

use strata_digest::Digest;

use crate::fsutil::{self, io};
use crate::{Error, LocalStore, gc};

/// Something a live process holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Held {
    /// A blob.
    Blob(Digest),
    /// A snapshot (by its id, the layer's diff id).
    Snapshot(Digest),
    /// A stage record.
    Stage(Digest),
}

impl Held {
    fn line(&self) -> String {
        match self {
            Held::Blob(d) => format!("blob {}\n", d.hex()),
            Held::Snapshot(d) => format!("snapshot {}\n", d.hex()),
            Held::Stage(d) => format!("stage {}\n", d.hex()),
        }
    }

    fn parse(line: &str) -> Option<Held> {
        let (kind, hex) = line.split_once(' ')?;
        let digest = Digest::from_hex(hex).ok()?;
        match kind {
            "blob" => Some(Held::Blob(digest)),
            "snapshot" => Some(Held::Snapshot(digest)),
            "stage" => Some(Held::Stage(digest)),
            _ => None,
        }
    }
}

/// This process's lease file; removed (and so released) when the store's last clone drops.
#[derive(Debug)]
pub(crate) struct LeaseFile {
    path: PathBuf,
    file: File,
    written: BTreeSet<Held>,
}

impl Drop for LeaseFile {
    fn drop(&mut self) {
        // Removed while still locked, so gc never takes a half-removed lease for a dead one
        // that it must clean; failing that, gc removes the unlocked file later.
        let _ = fs::remove_file(&self.path);
    }
}

impl LocalStore {
    /// Holds `items` for this process (see the module docs) and returns those of them that
    /// are not in the store (anymore): a caller that found them a moment ago must treat those
    /// as gone. A held snapshot that does not exist yet is protected once it is published.
    pub fn protect(&self, items: &[Held]) -> Result<Vec<Held>, Error> {
        let _creating = gc::creation_guard(self)?;
        self.hold(items)?;
        Ok(items
            .iter()
            .filter(|item| !self.exists(item))
            .copied()
            .collect())
    }

    fn exists(&self, item: &Held) -> bool {
        match item {
            Held::Blob(d) => crate::blobs::has_blob(self, d),
            Held::Snapshot(d) => self.has_snapshot(d),
            Held::Stage(d) => self
                .dir("stages")
                .join(format!("{}.json", d.hex()))
                .is_file(),
        }
    }

    /// Adds `items` to this process's lease. The caller holds the creation guard.
    pub(crate) fn hold(&self, items: &[Held]) -> Result<(), Error> {
        let mut lease = self
            .lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if lease.is_none() {
            *lease = Some(create_lease(self)?);
        }
        let lease = lease.as_mut().expect("created just above");
        let mut lines = String::new();
        for item in items {
            if lease.written.insert(*item) {
                lines.push_str(&item.line());
            }
        }
        if lines.is_empty() {
            return Ok(());
        }
        // No fsync: a lease only matters while its process lives.
        lease
            .file
            .write_all(lines.as_bytes())
            .map_err(io("write of lease file", &lease.path))
    }
}

fn create_lease(store: &LocalStore) -> Result<LeaseFile, Error> {
    let dir = store.dir("leases");
    loop {
        let path = dir.join(fsutil::random_suffix());
        let file = match OpenOptions::new().append(true).create_new(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io("creation of lease file", &path)(e)),
        };
        file.lock().map_err(io("flock of lease file", &path))?;
        return Ok(LeaseFile {
            path,
            file,
            written: BTreeSet::new(),
        });
    }
}

/// What the live leases hold; removes the lease files of dead processes. The caller holds the
/// gc lock exclusively.
pub(crate) fn live(store: &LocalStore) -> Result<BTreeSet<Held>, Error> {
    let dir = store.dir("leases");
    let mut held = BTreeSet::new();
    for name in fsutil::list_names(&dir, "listing for gc of")? {
        let path = dir.join(&name);
        match gc::try_claim_lock(&path, "flock for gc of lease file")? {
            Some(_dead) => fsutil::remove_tree(&path).map(drop)?,
            None => {
                let text = match fs::read_to_string(&path) {
                    Ok(t) => t,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io("read of lease file", &path)(e)),
                };
                held.extend(text.lines().filter_map(Held::parse));
            }
        }
    }
    Ok(held)
}
