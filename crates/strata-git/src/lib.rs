//! Reading git repositories for strata's git mappings (werf's `git:` directive).
//!
//! This crate owns everything strata reads from git:
//!
//! 1. [`Repository`]: discovering a local repository or cloning/fetching a remote one into a
//!    cache ([`Repository::open_remote`]), resolving [`Rev`]s, and [`CommitInfo`].
//! 2. [`Snapshot`]: **one** read of a commit's tree (or one walk of the working tree in dev
//!    mode) shared by every mapping. [`Snapshot::files`] lists a mapping's files through a
//!    [`PathFilter`] (`add` + `includePaths` − `excludePaths`) with git object ids; file
//!    contents of commits are never hashed.
//! 3. [`MaskSet::checksum`]: the `stageDependencies` digest, computed from a listing.
//! 4. [`Snapshot::write_archive`]: the gitArchive tar stream, one blob in memory at a time.
//! 5. [`changes()`]: what changed in a mapping between two snapshots, its patch size and
//!    identity digest (gitCache / gitLatestPatch).
//! 6. [`dirty_files()`]: uncommitted changes that a commit build ignores; [`DirtyCheck`] runs
//!    it on another thread.
//!
//! It deliberately does **not** plan stages, compute stage digests, store anything, or touch
//! containers: the build engine combines these pieces. It never writes to the repositories it
//! reads (remote caches aside).
//!
//! Design decisions:
//! - Listings are sorted by path (byte order) and keep repo paths as UTF-8 `String`s; a
//!   non-UTF-8 path is an [`Error::NonUtf8Path`] rather than a lossy rename.
//! - Worktree snapshots use git blob ids too: unchanged tracked files take the index's id
//!   (stat cache, like `git status`), others are hashed the git way (`blob <len>\0…`), so
//!   checksums of a clean worktree equal those of its `HEAD`. Clean/smudge filters
//!   (`core.autocrlf`, LFS) are not applied.
//! - Submodules (gitlinks) are skipped everywhere.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let git = |args: &[&str]| std::process::Command::new("git").args(args).current_dir(dir.path()).output();
//! # git(&["init", "-q"])?;
//! # std::fs::create_dir(dir.path().join("src"))?;
//! # std::fs::write(dir.path().join("src/main.rs"), "fn main() {}\n")?;
//! # git(&["add", "."])?;
//! # git(&["-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qm", "init"])?;
//! use strata_git::{MaskSet, PathFilter, Repository, Rev, Source};
//!
//! let repo = Repository::discover(dir.path())?;
//! let head = repo.resolve(&Rev::Head)?;
//! let snapshot = repo.snapshot(Source::Commit(head))?;
//! let filter = PathFilter::new("/src", &[], &[])?;
//! let files = snapshot.files(&filter)?;
//! assert_eq!(files[0].path, "main.rs");
//! let install = MaskSet::new(&["*.rs".to_string()])?.checksum(&files);
//! assert_ne!(install, MaskSet::new(&[])?.checksum(&files));
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod archive;
mod changes;
mod dirty;
mod mask;
pub mod remote;
mod repo;
mod snapshot;
mod time;
mod worktree;

use std::fmt;
use std::path::PathBuf;

pub use archive::{ArchiveStats, Owner};
pub use changes::{Change, ChangeKind, ChangeSet, changes};
pub use dirty::{DirtyCheck, dirty_files};
pub use gix::ObjectId;
pub use mask::{Error as MaskError, FilterMatcher, MaskList, MaskSet, Matcher, PathFilter};
pub use repo::{CommitInfo, GitReference, Repository, Rev, Source};
pub use snapshot::Snapshot;

/// Errors from reading repositories, snapshots and archives.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No repository at or above the path.
    #[error("no git repository found at or above {path}")]
    Discover {
        /// Where the search started.
        path: PathBuf,
        /// Why gix gave up.
        #[source]
        source: gix::Error,
    },
    /// A revision could not be resolved to a commit.
    #[error("cannot resolve {rev} in {repo}")]
    Resolve {
        /// The repository (path or URL).
        repo: String,
        /// The revision, as in `branch \`main\``.
        rev: String,
        /// Why.
        #[source]
        source: gix::Error,
    },
    /// A revision that is not well-formed, like a commit that is not hex.
    #[error("invalid {rev} for {repo}: {reason}")]
    InvalidRev {
        /// The repository (path or URL).
        repo: String,
        /// The revision.
        rev: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading a git object or the index failed.
    #[error("cannot read {what} in {repo}")]
    Read {
        /// The repository (path or URL).
        repo: String,
        /// What was being read, e.g. `tree of commit 1a2b…` or `blob 3c4d… (src/a.rs)`.
        what: String,
        /// Why.
        #[source]
        source: gix::Error,
    },
    /// A path in a tree or worktree is not UTF-8.
    #[error("path `{path}` in {repo} is not valid UTF-8; rename it or exclude it")]
    NonUtf8Path {
        /// The repository.
        repo: String,
        /// The path, lossily decoded.
        path: String,
    },
    /// A worktree operation on a repository without one.
    #[error("{repo} has no working tree (it is bare)")]
    NoWorktree {
        /// The repository.
        repo: String,
    },
    /// A filesystem operation failed.
    #[error("{op} {path} failed")]
    Io {
        /// The operation, like `reading worktree file`.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A worktree file changed size while it was being read.
    #[error(
        "{path} changed while being read (expected {expected} bytes, got {actual}); retry the build"
    )]
    FileChanged {
        /// The file.
        path: PathBuf,
        /// Size when listed.
        expected: u64,
        /// Bytes actually read.
        actual: u64,
    },
    /// Writing the archive stream failed.
    #[error("writing archive entry {path} failed")]
    Archive {
        /// The entry path inside the archive.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Cloning or fetching a remote repository failed.
    #[error(transparent)]
    Remote(#[from] remote::Error),
}

/// The kind of a file in git, which fixes its mode in an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileMode {
    /// A regular file, `100644` in git, `0644` in the image.
    Regular,
    /// An executable file, `100755` in git, `0755` in the image.
    Executable,
    /// A symbolic link, `120000` in git; its content is the target.
    Symlink,
}

impl FileMode {
    /// The git tree mode, like `100644`.
    pub fn as_octal(self) -> &'static str {
        match self {
            FileMode::Regular => "100644",
            FileMode::Executable => "100755",
            FileMode::Symlink => "120000",
        }
    }

    /// The permission bits in an image: `0o644`, `0o755`, or `0o777` for symlinks.
    pub fn permissions(self) -> u32 {
        match self {
            FileMode::Regular => 0o644,
            FileMode::Executable => 0o755,
            FileMode::Symlink => 0o777,
        }
    }

    /// True for [`FileMode::Symlink`].
    pub fn is_symlink(self) -> bool {
        self == FileMode::Symlink
    }
}

impl fmt::Display for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_octal())
    }
}

/// One file of a mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path relative to the mapping's `add`, `/`-separated; `""` when `add` is the file itself.
    pub path: String,
    /// Path relative to the repository root.
    pub repo_path: String,
    /// Regular, executable or symlink.
    pub mode: FileMode,
    /// The git blob id of the content (of the link target for symlinks).
    pub oid: ObjectId,
    /// Content size in bytes when known without reading the object: always for worktree
    /// snapshots, never for commits (see [`Snapshot::size_of`]).
    pub size: Option<u64>,
}
