//! strata's local content-addressed store: no daemon, safe for many strata processes at once,
//! and crash-safe (a `SIGKILL` at any moment never leaves anything that looks complete but is
//! not — only garbage that [`LocalStore::collect_garbage`] removes).
//!
//! # What it owns
//!
//! Opaque bytes by digest ([`Store::write_blob`], streaming [`Ingest`] transactions), JSON
//! records (the stage index, [`StageRecord`], and named references, [`TagTarget`]), unpacked
//! directories keyed by a digest (snapshots), scratch directories of running builds, and
//! cross-process locks, leases ([`LocalStore::protect`]), checks ([`LocalStore::check`]) and
//! garbage collection ([`LocalStore::gc`]). It deliberately knows nothing about plans, OCI
//! media types, layers or registries: what the bytes mean is the caller's business, and so is
//! deciding which tagged images need which blobs (`strata::ops::gc` tells [`LocalStore::gc`]).
//!
//! # Layout
//!
//! | path under the root                 | what                                              |
//! |-------------------------------------|---------------------------------------------------|
//! | `blobs/sha256/<hex>`                | immutable blobs, mode `0444`                      |
//! | `ingest/<random>/data`              | in-progress writes (blobs, records), dir flocked  |
//! | `stages/<hex>.json`                 | stage index records, replaced only when unusable  |
//! | `tags/<escaped name>.json`          | named references, atomically replaced             |
//! | `converted/<hex>.<kind>.json`       | a blob's converted twin ([`Store::converted_layer`]) |
//! | `failures/<id>.json`                | failure records ([`LocalStore::put_failure`])     |
//! | `snapshots/<hex>/`                  | unpacked directories (the caller uses diff ids)   |
//! | `tmp/<purpose>-<random>/` + `.lock` | scratch dirs of running builds (`.kept`: kept)    |
//! | `locks/<escaped name>.lock`         | [`LocalStore::lock`] files holding holder info    |
//! | `quarantine/<dir>-<name>-<random>`  | corrupt entries moved aside ([`LocalStore::check`]) |
//! | `leases/<random>`                   | what a live process holds ([`LocalStore::protect`]) |
//!
//! # Crash safety and ownership
//!
//! Everything is first written somewhere no reader looks (`ingest/`, `tmp/`), made durable,
//! and then published with one atomic step: `rename(2)` for blobs, tags and snapshots,
//! `link(2)` (which fails if the target exists) for stage records. Every unpublished entry is
//! owned by a live process through an `flock(2)` on it (the `ingest/<random>` directory itself,
//! or `tmp/<name>.lock`); the kernel drops the lock when the process dies, however it dies, so
//! [`LocalStore::collect_garbage`] can tell garbage from work in progress without pids or
//! timeouts. Creating a new entry and listing entries for collection are serialised by a
//! shared/exclusive flock on `locks/.gc.lock`, so the collector never sees an entry in the
//! instant between its `mkdir` and its `flock`.
//!
//! # Ordering rule for callers
//!
//! The store publishes each item atomically, but it cannot know what refers to what. A record
//! must only be published after everything it names is committed: blobs (manifest, config,
//! layers; for a plain layer, [`LayerRecord::is_plain`], its snapshot) before
//! [`Store::put_stage`], and the stage record before a [`Store::set_tag`] that names it. Publishing in that order means a crash leaves unreferenced blobs (garbage), never a
//! record that points at nothing.
//!
//! # Errors
//!
//! The store's modules share one failure domain, so the crate has one [`Error`] (`store::Error`)
//! rather than one per file: callers branch on [`Error::BlobNotFound`], [`Error::DigestMismatch`]
//! and [`Error::Corrupt`], and every I/O failure names the operation and the path.
//!
//! # Example
//!
//! ```
//! use std::io::Write;
//! use strata_store::{Digest, LocalStore, Store, TagTarget};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = LocalStore::open(dir.path()).unwrap();
//!
//! // Small blobs in one call; AlreadyExists counts as success.
//! let config = store.write_blob(br#"{"architecture":"amd64"}"#).unwrap();
//! assert_eq!(store.read_blob(&config).unwrap(), br#"{"architecture":"amd64"}"#);
//!
//! // Large ones stream through an ingest transaction, hashed while written.
//! let mut ingest = store.ingest().unwrap();
//! ingest.write_all(b"layer bytes").unwrap();
//! let layer = ingest.commit(Some(&Digest::of(b"layer bytes"))).unwrap();
//! assert!(store.has_blob(&layer));
//!
//! let target = TagTarget { manifest: config, stage: None, updated_unix: 0 };
//! store.set_tag("registry.local:5000/team/app:v1", &target).unwrap();
//! assert_eq!(store.tag("registry.local:5000/team/app:v1").unwrap(), Some(target));
//! ```
#![deny(missing_docs)]

mod blobs;
mod check;
mod failures;
mod fsutil;
mod gc;
mod ingest;
mod lease;
mod lock;
mod refs;
mod snapshot;
pub mod testsuite;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use check::{CheckReport, EntryKind, Problem};
pub use failures::{FailureEntry, FailureRecord, is_failure_id};
pub use gc::{GarbageReport, GcOptions, GcView, Keep, Removed, RemovedKind};
pub use ingest::Ingest;
pub use lease::Held;
pub use lock::LockGuard;
pub use snapshot::Scratch;
pub use strata_digest::Digest;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system operation failed.
    #[error("{op} {} failed: {source}", path.display())]
    Io {
        /// What was being done, e.g. `rename of ingest file`.
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The blob is not in the store.
    #[error("blob {digest} not found (no file {})", path.display())]
    BlobNotFound {
        /// The blob asked for.
        digest: Digest,
        /// Where it would be.
        path: PathBuf,
    },
    /// Written content hashed to another digest than the one expected; nothing was committed.
    #[error(
        "digest mismatch: expected {expected}, got {actual} over {size} bytes; nothing was committed"
    )]
    DigestMismatch {
        /// The digest the caller expected.
        expected: Digest,
        /// The digest of what was written.
        actual: Digest,
        /// How many bytes were written.
        size: u64,
    },
    /// A stored file does not hold what its name promises (bad digest, truncated JSON, ...).
    #[error("{} is corrupt: {detail}; delete it and strata will rebuild or re-fetch it", path.display())]
    Corrupt {
        /// The corrupt file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// A name given to the store cannot be used.
    #[error("invalid {kind} `{name}`: {reason}")]
    InvalidName {
        /// What the name is for (`tag name`, `scratch purpose`, ...).
        kind: &'static str,
        /// The name as given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// [`LocalStore::commit_snapshot`] got a directory outside the store's `tmp/`.
    #[error(
        "{} is not inside {}; build snapshots in a dir from LocalStore::scratch so the final rename stays on one file system",
        path.display(),
        tmp.display()
    )]
    NotInTmp {
        /// The directory given.
        path: PathBuf,
        /// The store's `tmp/`.
        tmp: PathBuf,
    },
}

/// What a stage index entry holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageRecord {
    /// The stage digest (the cache key).
    pub digest: Digest,
    /// The parent stage's digest, if any.
    pub parent: Option<Digest>,
    /// Blob digest of the image manifest for this stage's result.
    pub manifest: Digest,
    /// Blob digest of its image config.
    pub config: Digest,
    /// All layers of the result, bottom to top.
    pub layers: Vec<LayerRecord>,
    /// The stage's digest inputs, for explaining cache misses later: opaque to the store,
    /// the plan's typed inputs as JSON (`{"kind": ..., ...}`; records written before typed
    /// inputs hold `{"name", "value"}` objects, which readers take as unknown).
    pub inputs: Vec<serde_json::Value>,
    /// Name of the image that built it.
    pub image: String,
    /// Stage name.
    pub stage: String,
    /// When it was built (seconds since the Unix epoch).
    pub created_unix: u64,
    /// How long the build took.
    pub build_millis: u64,
    /// Free-form metadata (git commit, ...); not part of any digest.
    pub meta: BTreeMap<String, String>,
}

/// One layer of a stage's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Digest of the layer blob as stored (possibly compressed).
    pub digest: Digest,
    /// Digest of the uncompressed tar (the snapshot id).
    pub diff_id: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
    /// Its OCI media type.
    pub media_type: String,
    /// Where the blob is served besides registries (foreign layers); carried into manifests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

impl LayerRecord {
    /// The uncompressed tar, named by its diff id. strata commits a step's layer this way and
    /// writes no blob for it: the snapshot `snapshots/<diff id>/` holds the content, and a
    /// compressed blob is made when the layer first leaves the machine (push, export). So a
    /// plain layer is there when its blob or its snapshot is.
    pub fn is_plain(&self) -> bool {
        self.digest == self.diff_id
    }
}

/// What a tag points at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagTarget {
    /// Blob digest of the image manifest.
    pub manifest: Digest,
    /// The stage that produced it, if built locally.
    pub stage: Option<Digest>,
    /// When the tag was last set (seconds since the Unix epoch).
    pub updated_unix: u64,
}

/// A tag as listed by [`LocalStore::tag_entries`]: its name and target, or why its file cannot
/// be read.
pub type TagEntry = Result<(String, TagTarget), Error>;

/// A stage record as listed by [`LocalStore::stage_entries`], or why its file cannot be read.
pub type StageEntry = Result<StageRecord, Error>;

/// A conversion as listed by [`LocalStore::conversion_entries`] (its source blob and the
/// converted layer), or why its file cannot be read.
pub type ConversionEntry = Result<(Digest, LayerRecord), Error>;

/// The result of [`Store::put_stage`].
#[allow(
    clippy::large_enum_variant,
    reason = "returned once per put_stage, and boxing would make callers' matches clumsier"
)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// Our record was published.
    Inserted,
    /// Another writer was first; this is its record, which stays.
    AlreadyExists(StageRecord),
}

/// The store interface. One local implementation now; a registry-backed one comes later.
///
/// Every implementation must pass [`testsuite::run`].
pub trait Store: Send + Sync {
    /// Whether the blob is present.
    fn has_blob(&self, digest: &Digest) -> bool;
    /// The blob's size in bytes.
    fn blob_size(&self, digest: &Digest) -> Result<u64, Error>;
    /// Streams a blob, verified on the way: the read that would complete a blob whose bytes do
    /// not hash to `digest` fails (`io::ErrorKind::InvalidData` holding [`Error::Corrupt`]), so
    /// nothing corrupt is ever used or sent whole.
    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn io::Read + Send>, Error>;
    /// Reads a small blob (JSON) whole and verifies its digest ([`Error::Corrupt`] if wrong).
    fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, Error>;
    /// Stores bytes and returns their digest; an existing blob counts as success.
    fn write_blob(&self, bytes: &[u8]) -> Result<Digest, Error>;
    /// Starts a streaming blob write.
    fn ingest(&self) -> Result<Ingest, Error>;
    /// The stage record for `digest`, if one was published.
    fn stage(&self, digest: &Digest) -> Result<Option<StageRecord>, Error>;
    /// Publishes a stage record atomically; never overwrites: the first writer wins.
    ///
    /// Publish only after every blob the record names is committed.
    fn put_stage(&self, record: &StageRecord) -> Result<PutOutcome, Error>;
    /// Atomically replaces the record of `record.digest` when it is still `replaced` (the
    /// caller judged it unusable, e.g. built at a git history the build cannot reach), else
    /// returns the record found; publishes `record` when there is none. Readers see the old
    /// record or the new one. Callers that may race hold the stage's [`LocalStore::lock`].
    fn replace_stage(
        &self,
        record: &StageRecord,
        replaced: &StageRecord,
    ) -> Result<PutOutcome, Error>;
    /// All stage records (order unspecified).
    fn stages(&self) -> Result<Vec<StageRecord>, Error>;
    /// The target of a tag, if set.
    fn tag(&self, name: &str) -> Result<Option<TagTarget>, Error>;
    /// Sets or atomically replaces a tag.
    fn set_tag(&self, name: &str, target: &TagTarget) -> Result<(), Error>;
    /// All tags, sorted by name.
    fn tags(&self) -> Result<Vec<(String, TagTarget)>, Error>;
    /// Removes a tag; false if it did not exist.
    fn remove_tag(&self, name: &str) -> Result<bool, Error>;
    /// The layer recorded as the `kind` conversion (e.g. `gzip`) of the layer blob `source`, if
    /// one was recorded. Its blob may have been removed since: check before use.
    fn converted_layer(&self, source: &Digest, kind: &str) -> Result<Option<LayerRecord>, Error>;
    /// Records `layer` (whose blob is committed) as the `kind` conversion of `source`.
    fn put_converted_layer(
        &self,
        source: &Digest,
        kind: &str,
        layer: &LayerRecord,
    ) -> Result<(), Error>;
}

/// The store on the local file system. Cheap to clone; holds no open files but this process's
/// lease (see [`LocalStore::protect`]), shared by all clones.
#[derive(Clone, Debug)]
pub struct LocalStore {
    root: PathBuf,
    lease: std::sync::Arc<std::sync::Mutex<Option<lease::LeaseFile>>>,
}

/// The mode of the store root: only its owner may enter it.
const ROOT_MODE: u32 = 0o700;

/// Sets the store root's mode to [`ROOT_MODE`] unless it already has it.
fn restrict_root(root: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(root).map_err(fsutil::io("stat of store root", root))?;
    if meta.permissions().mode() & 0o7777 != ROOT_MODE {
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(ROOT_MODE))
            .map_err(fsutil::io("restriction of store root to its owner", root))?;
    }
    Ok(())
}

/// The directories [`LocalStore::open`] makes sure exist, parents first.
const LAYOUT: [&str; 13] = [
    "blobs",
    "blobs/sha256",
    "ingest",
    "stages",
    "tags",
    "converted",
    "failures",
    "snapshots",
    "tmp",
    "locks",
    "quarantine",
    "leases",
    "unpublished",
];

impl LocalStore {
    /// Opens the store at `root`, creating it and its layout if missing, and checks that it is a
    /// directory this process can write. Cheap: a few `mkdir`s, no scans.
    pub fn open(root: &Path) -> Result<LocalStore, Error> {
        fsutil::create_dir_all(root, "creation of store root")?;
        // Canonical, so that commit_snapshot can compare paths and error messages are absolute.
        let root = root
            .canonicalize()
            .map_err(fsutil::io("resolution of store root", root))?;
        // access(2) reports EROFS for a read-only file system even for root.
        rustix::fs::access(&root, rustix::fs::Access::WRITE_OK).map_err(|e| Error::Io {
            op: "write-access check of store root",
            path: root.clone(),
            source: e.into(),
        })?;
        // Private to the owner, as docker's data dir: snapshots hold the images' setuid files
        // and device nodes, which other local users must not reach. Existing stores are
        // tightened too.
        restrict_root(&root)?;
        for dir in LAYOUT {
            fsutil::create_dir(&root.join(dir), "creation of store directory")?;
        }
        Ok(LocalStore {
            root,
            lease: Default::default(),
        })
    }

    /// The store's root directory (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// syncfs(2) on the store's file system: makes everything written so far durable in one
    /// call (cheaper than fsyncing every file of a snapshot).
    pub fn sync(&self) -> Result<(), Error> {
        fsutil::syncfs(&self.root)
    }

    /// [`Store::write_blob`] for a caller that syncs the store ([`LocalStore::sync`]) before
    /// it publishes anything naming the blob: see [`Ingest::commit_before_sync`].
    pub fn write_blob_before_sync(&self, bytes: &[u8]) -> Result<Digest, Error> {
        blobs::write_blob(self, bytes, false)
    }

    /// The directory kept between builds for a cache `key` (a Dockerfile's cache mount, werf's
    /// `build_dir`): `build_dir/<short hash of the key>`. Not created here; never collected.
    pub fn cache_dir(&self, key: &str) -> PathBuf {
        self.root
            .join("build_dir")
            .join(Digest::of(key.as_bytes()).short(16))
    }

    /// Where clones of remote git repositories are kept between builds (`git/`; a remote's
    /// clone is a directory below it named by strata-git). Not created here; never collected.
    pub fn git_cache_dir(&self) -> PathBuf {
        self.root.join("git")
    }

    /// Where `ADD <url>` downloads are remembered between builds (`downloads/`: a directory
    /// per URL with the validators of its last responses and their files, which the next
    /// build's conditional request reuses on `304 Not Modified`). Not created here; a cache
    /// no stage or image names: every use hashes a file against the digest its record names
    /// and downloads it again when it is missing or differs, so removing any of it costs a
    /// download, never a wrong file. gc removes a URL's directory its caller does not keep
    /// ([`Keep::downloads`], by the directory's time: its last use); `store check` does not
    /// read it.
    pub fn downloads_dir(&self) -> PathBuf {
        self.root.join("downloads")
    }

    /// The directory of the build context's pinned copies, kept between builds (the
    /// Dockerfile frontend's `Pins`); [`LocalStore::gc`] removes those no build links.
    pub fn pins_dir(&self) -> PathBuf {
        self.root.join("pins")
    }

    /// Every stage record file with its record or why it cannot be read: listings and checks
    /// go on past a corrupt record ([`Store::stages`] fails on the first).
    pub fn stage_entries(&self) -> Result<Vec<(PathBuf, StageEntry)>, Error> {
        refs::stage_entries(self)
    }

    /// Every tag file with its tag or why it cannot be read, sorted by name, unreadable ones
    /// last ([`Store::tags`] fails on the first).
    pub fn tag_entries(&self) -> Result<Vec<(PathBuf, TagEntry)>, Error> {
        refs::tag_entries(self)
    }

    /// Every layer conversion record: its source blob and the converted layer, or why it cannot
    /// be read.
    pub fn conversion_entries(&self) -> Result<Vec<(PathBuf, ConversionEntry)>, Error> {
        refs::conversion_entries(self)
    }

    /// Notes that stage `stage` is to be published to the stage repository `repository`
    /// (`unpublished/<stage hex>.<repository hash>`, durable), until
    /// [`LocalStore::published`]: a build that stops before it published its stages leaves the
    /// notes for the next build with that repository.
    pub fn note_unpublished(&self, stage: &Digest, repository: &str) -> Result<(), Error> {
        refs::note_unpublished(self, stage, repository)
    }

    /// The stages noted as still to be published to `repository`, oldest note first.
    pub fn unpublished(&self, repository: &str) -> Result<Vec<Digest>, Error> {
        refs::unpublished(self, repository)
    }

    /// Drops the note that `stage` is to be published to `repository`.
    pub fn published(&self, stage: &Digest, repository: &str) -> Result<(), Error> {
        refs::published(self, stage, repository)
    }

    pub(crate) fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

impl Store for LocalStore {
    fn has_blob(&self, digest: &Digest) -> bool {
        blobs::has_blob(self, digest)
    }
    fn blob_size(&self, digest: &Digest) -> Result<u64, Error> {
        blobs::blob_size(self, digest)
    }
    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn io::Read + Send>, Error> {
        blobs::open_blob(self, digest)
    }
    fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, Error> {
        blobs::read_blob(self, digest)
    }
    fn write_blob(&self, bytes: &[u8]) -> Result<Digest, Error> {
        blobs::write_blob(self, bytes, true)
    }
    fn ingest(&self) -> Result<Ingest, Error> {
        Ingest::new(self)
    }
    fn stage(&self, digest: &Digest) -> Result<Option<StageRecord>, Error> {
        refs::stage(self, digest)
    }
    fn put_stage(&self, record: &StageRecord) -> Result<PutOutcome, Error> {
        refs::put_stage(self, record)
    }
    fn replace_stage(
        &self,
        record: &StageRecord,
        replaced: &StageRecord,
    ) -> Result<PutOutcome, Error> {
        refs::replace_stage(self, record, replaced)
    }
    fn stages(&self) -> Result<Vec<StageRecord>, Error> {
        refs::stages(self)
    }
    fn tag(&self, name: &str) -> Result<Option<TagTarget>, Error> {
        refs::tag(self, name)
    }
    fn set_tag(&self, name: &str, target: &TagTarget) -> Result<(), Error> {
        refs::set_tag(self, name, target)
    }
    fn tags(&self) -> Result<Vec<(String, TagTarget)>, Error> {
        refs::tags(self)
    }
    fn converted_layer(&self, source: &Digest, kind: &str) -> Result<Option<LayerRecord>, Error> {
        refs::converted_layer(self, source, kind)
    }
    fn put_converted_layer(
        &self,
        source: &Digest,
        kind: &str,
        layer: &LayerRecord,
    ) -> Result<(), Error> {
        refs::put_converted_layer(self, source, kind, layer)
    }
    fn remove_tag(&self, name: &str) -> Result<bool, Error> {
        refs::remove_tag(self, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_layout_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("nested/store");
        let store = LocalStore::open(&root).unwrap();
        for d in LAYOUT {
            assert!(store.root().join(d).is_dir(), "{d}");
        }
        LocalStore::open(&root).unwrap();
        assert_eq!(store.root(), root.canonicalize().unwrap());
    }

    #[test]
    fn open_makes_and_keeps_the_root_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        LocalStore::open(&root).unwrap();
        assert_eq!(mode(&root), 0o700);
        // A store made by an older strata (or by hand) with a world-readable root.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        LocalStore::open(&root).unwrap();
        assert_eq!(mode(&root), 0o700);
    }

    #[test]
    fn open_refuses_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"").unwrap();
        let err = LocalStore::open(&file).unwrap_err().to_string();
        assert!(err.contains("store root") && err.contains("/f"), "{err}");
    }

    #[test]
    fn conformance() {
        let dir = tempfile::tempdir().unwrap();
        testsuite::run(&LocalStore::open(dir.path()).unwrap());
    }

    #[test]
    fn sync_works() {
        let dir = tempfile::tempdir().unwrap();
        LocalStore::open(dir.path()).unwrap().sync().unwrap();
    }
}
