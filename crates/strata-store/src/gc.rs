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
//! [`LocalStore::gc`] also collects blobs, snapshots, stage records and conversion records, by
//! mark and sweep under the exclusive lock: the caller (`strata::ops::gc`, which knows what a
//! manifest names) says what to keep ([`Keep`]); the store adds what kept records name and what
//! live processes hold in their leases (see `lease.rs`), and moves everything else into a
//! scratch dir before deleting it. Tags are never collected; failure records go when the
//! caller does not keep them ([`Keep::failures`]), and what they name goes with them unless
//! something else keeps it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::fsutil::{self, io};
use strata_digest::Digest;

use crate::lease::{self, Held};
use crate::{ConversionEntry, Error, FailureEntry, LocalStore, StageEntry, TagEntry, refs};

/// What [`LocalStore::collect_garbage`] and [`LocalStore::gc`] removed (or, in a dry run,
/// would remove).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GarbageReport {
    /// The entries, in the order removed.
    pub removed: Vec<Removed>,
    /// Bytes of regular files removed, in all.
    pub bytes: u64,
}

/// One entry removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removed {
    /// What it was.
    pub kind: RemovedKind,
    /// Where it was.
    pub path: PathBuf,
    /// Bytes of regular files in it.
    pub bytes: u64,
}

/// The kinds of entries gc removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemovedKind {
    /// What a killed process left in `ingest/` or `tmp/`.
    Partial,
    /// A blob nothing kept names.
    Blob,
    /// A snapshot nothing kept names.
    Snapshot,
    /// A stage record the keep policy let go.
    Stage,
    /// A failure record the keep policy let go.
    Failure,
    /// A layer conversion record whose blobs went.
    Conversion,
    /// An entry of `quarantine/` ([`GcOptions::quarantine`]).
    Quarantined,
    /// A pinned copy of a context file no build links ([`LocalStore::pins_dir`]).
    Pin,
    /// A URL's remembered downloads the policy let go ([`LocalStore::downloads_dir`]).
    Download,
}

impl std::fmt::Display for RemovedKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RemovedKind::Partial => "partial",
            RemovedKind::Blob => "blob",
            RemovedKind::Snapshot => "snapshot",
            RemovedKind::Stage => "stage",
            RemovedKind::Failure => "failure",
            RemovedKind::Conversion => "conversion",
            RemovedKind::Quarantined => "quarantined",
            RemovedKind::Pin => "pin",
            RemovedKind::Download => "download",
        })
    }
}

/// Options for [`LocalStore::collect_garbage_with`] and [`LocalStore::gc`].
#[derive(Clone, Debug, Default)]
pub struct GcOptions {
    /// Also remove scratch dirs kept with [`crate::Scratch::keep`] whose owner has released
    /// them (default: leave them, a debugger may want them).
    pub kept_scratch: bool,
    /// Also empty `quarantine/` (default: leave it for a human to look at).
    pub quarantine: bool,
    /// Only say what would go.
    pub dry_run: bool,
}

/// What [`LocalStore::gc`] shows its caller, read while gc holds off every writer: the caller
/// decides from it what to keep ([`Keep`]).
#[derive(Debug)]
pub struct GcView {
    /// Every stage record, or why it cannot be read.
    pub stages: Vec<(PathBuf, StageEntry)>,
    /// Every tag, or why it cannot be read.
    pub tags: Vec<(PathBuf, TagEntry)>,
    /// Every failure record, newest first, or why it cannot be read.
    pub failures: Vec<(PathBuf, FailureEntry)>,
    /// Every blob with its size.
    pub blobs: BTreeMap<Digest, u64>,
    /// Every snapshot id.
    pub snapshots: BTreeSet<Digest>,
    /// The plain layers ([`crate::LayerRecord::is_plain`]) that the stage records name and whose
    /// only copy is their snapshot, with the bytes of their tar: what they hold in the store
    /// besides the blobs.
    pub plain: BTreeMap<Digest, u64>,
    /// The conversions of each source blob (or plain layer), by digest: kept with their source.
    pub conversions: BTreeMap<Digest, BTreeSet<Digest>>,
    /// The remembered downloads of each URL ([`LocalStore::downloads_dir`]), by the name of
    /// their directory, with when a build last used them (their directory's time).
    pub downloads: BTreeMap<String, std::time::SystemTime>,
}

impl GcView {
    /// The bytes the store holds for the blobs and plain layers `digests` and for their
    /// conversions, each counted once.
    pub fn bytes<'a>(&self, digests: impl IntoIterator<Item = &'a Digest>) -> u64 {
        let mut counted = BTreeSet::new();
        for digest in digests {
            counted.insert(*digest);
            counted.extend(self.conversions.get(digest).into_iter().flatten().copied());
        }
        counted
            .iter()
            .filter_map(|d| self.blobs.get(d).or_else(|| self.plain.get(d)))
            .sum()
    }
}

/// The plain layers of `stages` without a blob among `blobs` whose snapshot is in `snapshots`,
/// with the bytes of their tar.
fn plain_layers(
    stages: &[(PathBuf, StageEntry)],
    blobs: &BTreeMap<Digest, u64>,
    snapshots: &BTreeSet<Digest>,
) -> BTreeMap<Digest, u64> {
    stages
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .flat_map(|r| &r.layers)
        .filter(|l| {
            l.is_plain() && !blobs.contains_key(&l.digest) && snapshots.contains(&l.diff_id)
        })
        .map(|l| (l.digest, l.size))
        .collect()
}

/// What the caller of [`LocalStore::gc`] keeps. Besides these, gc always keeps what live
/// processes hold ([`LocalStore::protect`]), tags, records it cannot read, and everything a kept
/// stage record names (its manifest, config and layer blobs and the layers' snapshots); a
/// conversion record stays while both its blobs do.
#[derive(Clone, Debug, Default)]
pub struct Keep {
    /// Stage records to keep (by stage digest).
    pub stages: BTreeSet<Digest>,
    /// Blobs to keep besides those of kept records (tagged images' manifests, configs, layers).
    pub blobs: BTreeSet<Digest>,
    /// Snapshots to keep besides those of kept records.
    pub snapshots: BTreeSet<Digest>,
    /// Failure records to keep (by id); the caller adds what they name to `blobs` and
    /// `snapshots`. An unreadable one is always kept.
    pub failures: BTreeSet<String>,
    /// Remembered downloads to keep (names of [`GcView::downloads`]).
    pub downloads: BTreeSet<String>,
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
pub(crate) fn try_claim_lock(path: &Path, op: &'static str) -> Result<Option<File>, Error> {
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

fn claim_ingest(store: &LocalStore, claimed: &mut Vec<Claimed>) -> Result<(), Error> {
    let dir = store.dir("ingest");
    for name in fsutil::list_names(&dir, "listing for gc of")? {
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
    let names = fsutil::list_names(&dir, "listing for gc of")?;
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
            let _gc = exclusive(self)?;
            claim_ingest(self, &mut claimed)?;
            claim_tmp(self, options, &mut claimed)?;
        }
        remove_claimed(claimed, options.dry_run)
    }

    /// Full garbage collection: what [`LocalStore::collect_garbage_with`] removes, and every
    /// blob, snapshot and stage record that neither `decide` keeps ([`Keep`]) nor a live
    /// process holds. Writers wait while `decide` runs and the doomed entries are moved into a
    /// scratch dir (records first, so a crash never leaves a record naming a removed blob);
    /// they are deleted after the writers go on.
    pub fn gc(
        &self,
        options: &GcOptions,
        decide: &mut dyn FnMut(&GcView) -> Keep,
    ) -> Result<GarbageReport, Error> {
        // Made before the exclusive lock: creating it takes the shared one.
        let trash = if options.dry_run {
            None
        } else {
            Some(self.scratch("gc")?)
        };
        let mut claimed = Vec::new();
        let mut doomed = Vec::new();
        {
            let _gc = exclusive(self)?;
            claim_ingest(self, &mut claimed)?;
            claim_tmp(self, options, &mut claimed)?;
            // Listed before the leases are read: anything published after the listing was
            // held before it was published.
            let conversions = refs::conversion_entries(self)?;
            let view = self.view(&conversions)?;
            let held = lease::live(self)?;
            let mut keep = decide(&view);
            for (_, record) in &view.stages {
                let Ok(r) = record else { continue };
                if keep.stages.contains(&r.digest) || held.contains(&Held::Stage(r.digest)) {
                    keep.stages.insert(r.digest);
                    keep.blobs.extend([r.manifest, r.config]);
                    keep.blobs.extend(r.layers.iter().map(|l| l.digest));
                    keep.snapshots.extend(r.layers.iter().map(|l| l.diff_id));
                }
            }
            for held in &held {
                match held {
                    Held::Blob(d) => keep.blobs.insert(*d),
                    Held::Snapshot(d) => keep.snapshots.insert(*d),
                    Held::Stage(_) => false,
                };
            }
            for (path, record) in &view.stages {
                if let Ok(r) = record
                    && !keep.stages.contains(&r.digest)
                {
                    doomed.push((RemovedKind::Stage, path.clone()));
                }
            }
            for (path, failure) in &view.failures {
                if let Ok(f) = failure
                    && !keep.failures.contains(&f.id)
                {
                    doomed.push((RemovedKind::Failure, path.clone()));
                }
            }
            // A kept layer keeps its conversions (a later push or export reuses them).
            for (path, conversion) in &conversions {
                let Ok((source, layer)) = conversion else {
                    continue;
                };
                if keep.blobs.contains(source) && view.blobs.contains_key(&layer.digest) {
                    keep.blobs.insert(layer.digest);
                } else {
                    doomed.push((RemovedKind::Conversion, path.clone()));
                }
            }
            for digest in view.blobs.keys().filter(|d| !keep.blobs.contains(d)) {
                doomed.push((RemovedKind::Blob, self.blob_path(digest)));
            }
            for id in view
                .snapshots
                .iter()
                .filter(|d| !keep.snapshots.contains(d))
            {
                doomed.push((RemovedKind::Snapshot, self.snapshot_path(id)));
            }
            for pin in unused_pins(&self.pins_dir())? {
                doomed.push((RemovedKind::Pin, pin));
            }
            for name in view
                .downloads
                .keys()
                .filter(|n| !keep.downloads.contains(*n))
            {
                doomed.push((RemovedKind::Download, self.downloads_dir().join(name)));
            }
            if options.quarantine {
                let dir = self.dir("quarantine");
                for name in fsutil::list_names(&dir, "listing for gc of")? {
                    doomed.push((RemovedKind::Quarantined, dir.join(name)));
                }
            }
            if let Some(trash) = &trash {
                for (i, (_, path)) in doomed.iter().enumerate() {
                    let to = trash.path().join(i.to_string());
                    fs::rename(path, &to).map_err(io("move out for gc of", path))?;
                }
            }
        }
        let mut report = remove_claimed(claimed, options.dry_run)?;
        for (i, (kind, path)) in doomed.into_iter().enumerate() {
            let bytes = match &trash {
                None => fsutil::tree_bytes(&path)?,
                Some(trash) => fsutil::remove_tree(&trash.path().join(i.to_string()))?,
            };
            report.bytes += bytes;
            report.removed.push(Removed { kind, path, bytes });
        }
        Ok(report)
    }

    /// Bytes the store holds of images: every blob, and every plain layer whose only copy is
    /// its snapshot (the size of its tar): what gc's size policies measure, and every build
    /// asks. Measured with one `stat` per blob (the stage records are read only when some
    /// snapshot has no blob), then kept in `usage.json` for as long as `blobs/`, `snapshots/`
    /// and `stages/` keep their modification times: blobs never change once named, so only
    /// a new or removed entry changes the sum, and that changes its directory's time.
    pub fn stored_bytes(&self) -> Result<u64, Error> {
        let seen = UsageKey::of(self)?;
        let kept = self.dir(USAGE);
        if let Some(usage) = fs::read(&kept)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Usage>(&bytes).ok())
            .filter(|usage| usage.key == seen)
        {
            return Ok(usage.bytes);
        }
        let bytes = self.measure_stored_bytes()?;
        if !seen.racy() {
            // A cache: written atomically, not synced; a lost or unreadable one is measured again.
            let usage =
                serde_json::to_vec(&Usage { key: seen, bytes }).expect("a usage record serializes");
            let temp = self
                .dir("tmp")
                .join(format!("{USAGE}-{}", fsutil::random_suffix()));
            if fs::write(&temp, usage).is_ok() && fs::rename(&temp, &kept).is_err() {
                let _ = fs::remove_file(&temp);
            }
        }
        Ok(bytes)
    }

    fn measure_stored_bytes(&self) -> Result<u64, Error> {
        let blobs = blob_sizes(self)?;
        let snapshots: BTreeSet<Digest> = self.snapshots()?.into_iter().collect();
        let blob_bytes: u64 = blobs.values().sum();
        if snapshots.iter().all(|s| blobs.contains_key(s)) {
            return Ok(blob_bytes);
        }
        let stages = refs::stage_entries(self)?;
        let plain: u64 = plain_layers(&stages, &blobs, &snapshots).values().sum();
        Ok(blob_bytes + plain)
    }

    /// What [`LocalStore::gc`] shows its caller; `conversions` are the store's conversion
    /// records.
    fn view(&self, conversions: &[(PathBuf, ConversionEntry)]) -> Result<GcView, Error> {
        let blobs = blob_sizes(self)?;
        let snapshots = self.snapshots()?.into_iter().collect();
        let stages = refs::stage_entries(self)?;
        let mut converted: BTreeMap<Digest, BTreeSet<Digest>> = BTreeMap::new();
        for (source, layer) in conversions.iter().filter_map(|(_, c)| c.as_ref().ok()) {
            converted.entry(*source).or_default().insert(layer.digest);
        }
        Ok(GcView {
            plain: plain_layers(&stages, &blobs, &snapshots),
            blobs,
            snapshots,
            stages,
            tags: refs::tag_entries(self)?,
            failures: self.failure_entries()?,
            conversions: converted,
            downloads: downloads(&self.downloads_dir())?,
        })
    }
}

/// The directories of remembered downloads under `dir`, with their times.
fn downloads(dir: &Path) -> Result<BTreeMap<String, std::time::SystemTime>, Error> {
    let mut found = BTreeMap::new();
    if !dir.exists() {
        return Ok(found);
    }
    for name in fsutil::list_names(dir, "listing for gc of")? {
        let path = dir.join(&name);
        let meta = fs::symlink_metadata(&path).map_err(io("stat for gc of", &path))?;
        let used = meta.modified().map_err(io("mtime for gc of", &path))?;
        found.insert(name, used);
    }
    Ok(found)
}

/// Takes `locks/.gc.lock` exclusively: no entry is created or held until it drops.
fn exclusive(store: &LocalStore) -> Result<File, Error> {
    let path = gc_lock_path(store);
    let guard = open_gc_lock(&path)?;
    retry_eintr(|| guard.lock()).map_err(io("exclusive flock of gc lock file", &path))?;
    Ok(guard)
}

/// The store's file where [`LocalStore::stored_bytes`] keeps its last measurement.
const USAGE: &str = "usage.json";

/// [`LocalStore::stored_bytes`]'s last measurement and what it was made of.
#[derive(serde::Serialize, serde::Deserialize)]
struct Usage {
    key: UsageKey,
    bytes: u64,
}

/// The modification times (seconds, nanoseconds) of `blobs/sha256`, `snapshots/` and
/// `stages/`.
#[derive(Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct UsageKey([(i64, i64); 3]);

/// How recent (in nanoseconds) a directory's time may be for a measurement to be kept: the
/// kernel stamps times from a clock that ticks every few milliseconds, so an entry added in
/// the same tick as the measurement, after it, would leave the time as it was. (A stale
/// measurement would only move an automatic gc by a build; gc itself marks and sweeps.)
const RACY_NANOS: i128 = 100_000_000;

impl UsageKey {
    fn of(store: &LocalStore) -> Result<UsageKey, Error> {
        let time = |dir: &str| {
            let path = store.dir(dir);
            fs::symlink_metadata(&path)
                .map(|m| (m.mtime(), m.mtime_nsec()))
                .map_err(io("stat of", &path))
        };
        Ok(UsageKey([
            time("blobs/sha256")?,
            time("snapshots")?,
            time("stages")?,
        ]))
    }

    /// Whether a directory changed too recently for a measurement to be trusted later.
    fn racy(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(i128::MAX, |d| d.as_nanos() as i128);
        self.0.iter().any(|&(secs, nanos)| {
            now - (i128::from(secs) * 1_000_000_000 + i128::from(nanos)) < RACY_NANOS
        })
    }
}

fn blob_sizes(store: &LocalStore) -> Result<BTreeMap<Digest, u64>, Error> {
    let dir = store.dir("blobs/sha256");
    let mut sizes = BTreeMap::new();
    for name in fsutil::list_names(&dir, "listing for gc of")? {
        let Ok(digest) = Digest::from_hex(&name) else {
            continue;
        };
        if let Ok(meta) = fs::symlink_metadata(dir.join(&name)) {
            sizes.insert(digest, meta.len());
        }
    }
    Ok(sizes)
}

/// Removes (in a dry run: measures) the claimed entries, while their locks are still held.
/// The pins of context files (see [`LocalStore::pins_dir`]) no build links to (link count
/// 1). A `.new-` file is a pin being made, or one a killed build left: taken only once no build
/// can still be making it.
fn unused_pins(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut unused = Vec::new();
    if !dir.exists() {
        return Ok(unused);
    }
    for name in fsutil::list_names(dir, "listing for gc of")? {
        let path = dir.join(&name);
        let meta = fs::symlink_metadata(&path).map_err(io("stat for gc of", &path))?;
        let age = meta.modified().ok().and_then(|t| t.elapsed().ok());
        let being_made = name.starts_with(".new-")
            && age.is_none_or(|age| age < std::time::Duration::from_secs(3600));
        if meta.nlink() == 1 && !being_made {
            unused.push(path);
        }
    }
    Ok(unused)
}

fn remove_claimed(claimed: Vec<Claimed>, dry_run: bool) -> Result<GarbageReport, Error> {
    let mut report = GarbageReport::default();
    for c in claimed {
        let mut bytes = 0;
        for p in &c.paths {
            bytes += if dry_run {
                fsutil::tree_bytes(p)?
            } else {
                fsutil::remove_tree(p)?
            };
        }
        report.bytes += bytes;
        report.removed.push(Removed {
            kind: RemovedKind::Partial,
            path: c.paths[0].clone(),
            bytes,
        });
    }
    Ok(report)
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

    /// Sets the times of the directories stored_bytes keys on an hour back, as if nothing had
    /// changed in them for that long.
    fn age_usage_dirs(store: &LocalStore) {
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for dir in ["blobs/sha256", "snapshots", "stages"] {
            File::open(store.dir(dir))
                .unwrap()
                .set_times(fs::FileTimes::new().set_modified(hour_ago))
                .unwrap();
        }
    }

    #[test]
    fn stored_bytes_are_kept_until_a_directory_changes() {
        let (_dir, store) = store();
        store.write_blob(b"0123456789").unwrap();
        age_usage_dirs(&store);
        assert_eq!(store.stored_bytes().unwrap(), 10);
        // Kept: a doctored record under the same times is believed.
        let kept = store.dir(USAGE);
        let usage: Usage = serde_json::from_slice(&fs::read(&kept).unwrap()).unwrap();
        let doctored = Usage { bytes: 77, ..usage };
        fs::write(&kept, serde_json::to_vec(&doctored).unwrap()).unwrap();
        assert_eq!(store.stored_bytes().unwrap(), 77);
        // A new blob changes blobs/'s time: measured again.
        store.write_blob(b"abc").unwrap();
        assert_eq!(store.stored_bytes().unwrap(), 13);
        // Not kept while that time is recent (here: ahead of the clock, as recent as it gets).
        fs::remove_file(&kept).unwrap();
        let ahead = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        File::open(store.dir("blobs/sha256"))
            .unwrap()
            .set_times(fs::FileTimes::new().set_modified(ahead))
            .unwrap();
        assert_eq!(store.stored_bytes().unwrap(), 13);
        assert!(
            !kept.exists(),
            "a measurement of just-changed directories is not kept"
        );
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
        assert_eq!((r.removed.len(), r.bytes), (3, 8), "{r:?}");
        assert_eq!(fs::read_dir(store.dir("ingest")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(store.dir("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn kept_scratch_survives_unless_asked() {
        let (_d, store) = store();
        let p = store.scratch("debug").unwrap().into_path();
        assert_eq!(store.collect_garbage().unwrap().removed, []);
        assert!(p.is_dir());
        let r = store
            .collect_garbage_with(&GcOptions {
                kept_scratch: true,
                ..GcOptions::default()
            })
            .unwrap();
        let paths: Vec<_> = r.removed.iter().map(|r| r.path.clone()).collect();
        assert_eq!(paths, vec![p.clone()]);
        assert_eq!(fs::read_dir(store.dir("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn pins_no_build_links_are_collected_and_linked_ones_kept() {
        let (_d, store) = store();
        let pins = store.pins_dir();
        fs::create_dir(&pins).unwrap();
        fs::write(pins.join("unused"), b"1234").unwrap();
        fs::write(pins.join("linked"), b"12").unwrap();
        let build = store.scratch("sources").unwrap();
        fs::hard_link(pins.join("linked"), build.path().join("f")).unwrap();
        // A pin a build is making right now.
        fs::write(pins.join(".new-abc"), b"1").unwrap();
        let r = store
            .gc(&GcOptions::default(), &mut |_| Keep::default())
            .unwrap();
        let pinned: Vec<_> = r
            .removed
            .iter()
            .filter(|r| r.kind == RemovedKind::Pin)
            .collect();
        assert_eq!(pinned.len(), 1, "{r:?}");
        assert_eq!(
            (pinned[0].path.file_name().unwrap(), pinned[0].bytes),
            ("unused".as_ref(), 4)
        );
        assert!(pins.join("linked").exists() && pins.join(".new-abc").exists());
    }
}
