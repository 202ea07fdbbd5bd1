//! Working-tree snapshots (werf's `--dev`).
//!
//! The listing is the index's tracked files that still exist on disk plus the untracked,
//! not ignored files a `gix` directory walk finds (`.gitignore`, `.git/info/exclude` and
//! `core.excludesFile` apply). A tracked file whose `lstat` matches its index entry and is
//! not racily clean keeps the index's blob id; every other file is hashed the way
//! `git hash-object` does, so ids are comparable with commits.

use std::io::Read;
use std::path::Path;

use gix::dir::entry::{Kind as DiskKind, Status as DirStatus};
use gix::dir::walk::EmissionMode;
use gix::index::entry::Mode as IndexMode;
use gix::index::fs::Metadata;

use crate::repo::Repository;
use crate::snapshot::{Entry, Origin, Snapshot};
use crate::{Error, FileMode, ObjectId};

impl<'r> Snapshot<'r> {
    pub(crate) fn of_worktree(repo: &'r Repository) -> Result<Snapshot<'r>, Error> {
        let root = repo
            .workdir()
            .ok_or_else(|| Error::NoWorktree {
                repo: repo.name.clone(),
            })?
            .to_path_buf();
        let fail = |what: &str| {
            let what = what.to_string();
            move |source| Error::Read {
                repo: repo.name.clone(),
                what,
                source,
            }
        };
        let index = repo.inner.index_or_empty().map_err(fail("the index"))?;
        let stat_options = repo
            .inner
            .stat_options()
            .map_err(fail("core.* stat options"))?;
        let index_time = index.timestamp();
        let mut entries = Vec::with_capacity(index.entries().len());
        let mut buf = vec![0u8; 64 * 1024];

        let mut last: Option<&gix::bstr::BStr> = None;
        for e in index.entries() {
            let path = e.path(&index);
            if e.mode.is_submodule() || e.mode.is_sparse() || last == Some(path) {
                continue; // conflict stages repeat the path
            }
            last = Some(path);
            let path = utf8(repo, path)?;
            let full = root.join(path);
            let meta = match Metadata::from_path_no_follow(&full) {
                Ok(m) => m,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) if err.raw_os_error() == Some(20) => continue, // ENOTDIR: parent replaced
                Err(source) => return Err(io("stat on worktree file", &full, source)),
            };
            let Some(mode) = disk_mode(&meta) else {
                continue; // replaced by a directory; its untracked content is walked below
            };
            let index_mode_matches = match mode {
                FileMode::Symlink => e.mode == IndexMode::SYMLINK,
                FileMode::Executable => e.mode == IndexMode::FILE_EXECUTABLE,
                FileMode::Regular => e.mode == IndexMode::FILE,
            };
            let unchanged = e.stage_raw() == 0
                && index_mode_matches
                && gix::index::entry::Stat::from_fs(&meta)
                    .is_ok_and(|s| s.matches(&e.stat, stat_options))
                && !e.stat.is_racy(index_time, stat_options);
            let oid = if unchanged {
                e.id
            } else {
                hash_file(repo, &full, mode, meta.len(), &mut buf)?
            };
            entries.push(Entry {
                path: path.to_string(),
                mode,
                oid,
                size: Some(meta.len()),
            });
        }

        let options = repo
            .inner
            .dirwalk_options()
            .map_err(fail("dirwalk options"))?
            .emit_tracked(false)
            .emit_untracked(EmissionMode::Matching)
            .emit_ignored(None)
            .recurse_repositories(false);
        let mut collect = gix::dir::walk::delegate::Collect::default();
        let no_interrupt = std::sync::atomic::AtomicBool::new(false);
        repo.inner
            .dirwalk(
                &index,
                std::iter::empty::<&gix::bstr::BStr>(),
                &no_interrupt,
                options,
                &mut collect,
            )
            .map_err(fail("the working tree (directory walk)"))?;
        for (e, _) in collect.unorded_entries {
            if e.status != DirStatus::Untracked
                || !matches!(e.disk_kind, Some(DiskKind::File | DiskKind::Symlink))
            {
                continue;
            }
            let path = utf8(repo, e.rela_path.as_ref())?;
            let full = root.join(path);
            let meta = Metadata::from_path_no_follow(&full)
                .map_err(|source| io("stat on worktree file", &full, source))?;
            let Some(mode) = disk_mode(&meta) else {
                continue;
            };
            let oid = hash_file(repo, &full, mode, meta.len(), &mut buf)?;
            entries.push(Entry {
                path: path.to_string(),
                mode,
                oid,
                size: Some(meta.len()),
            });
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        entries.dedup_by(|a, b| a.path == b.path);
        Ok(Snapshot {
            repo,
            origin: Origin::Worktree { root },
            entries,
        })
    }
}

fn disk_mode(meta: &Metadata) -> Option<FileMode> {
    if meta.is_symlink() {
        Some(FileMode::Symlink)
    } else if meta.is_file() {
        Some(if meta.is_executable() {
            FileMode::Executable
        } else {
            FileMode::Regular
        })
    } else {
        None
    }
}

fn utf8<'p>(repo: &Repository, path: &'p gix::bstr::BStr) -> Result<&'p str, Error> {
    std::str::from_utf8(path).map_err(|_| Error::NonUtf8Path {
        repo: repo.name.clone(),
        path: path.to_string(),
    })
}

pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The git blob id of a worktree file (of the link target for symlinks), streaming.
fn hash_file(
    repo: &Repository,
    path: &Path,
    mode: FileMode,
    len: u64,
    buf: &mut [u8],
) -> Result<ObjectId, Error> {
    hash_file_with(repo.inner.object_hash(), &repo.name, path, mode, len, buf)
}

/// [`hash_file`] without a [`Repository`], for threads that cannot share one.
pub(crate) fn hash_file_with(
    kind: gix::hash::Kind,
    repo: &str,
    path: &Path,
    mode: FileMode,
    len: u64,
    buf: &mut [u8],
) -> Result<ObjectId, Error> {
    let fail = |source| Error::Read {
        repo: repo.to_string(),
        what: format!("hash of {}", path.display()),
        source,
    };
    if mode.is_symlink() {
        let target = std::fs::read_link(path).map_err(|e| io("reading symlink", path, e))?;
        let bytes = target.into_os_string().into_encoded_bytes();
        return gix::objs::compute_hash(kind, gix::objs::Kind::Blob, &bytes).map_err(fail);
    }
    let mut file = std::fs::File::open(path).map_err(|e| io("opening worktree file", path, e))?;
    let mut hasher = gix::hash::hasher(kind);
    hasher.update(format!("blob {len}\0").as_bytes());
    let mut read = 0u64;
    loop {
        let n = file
            .read(buf)
            .map_err(|e| io("reading worktree file", path, e))?;
        if n == 0 {
            break;
        }
        read += n as u64;
        if read > len {
            break;
        }
        hasher.update(&buf[..n]);
    }
    if read != len {
        return Err(Error::FileChanged {
            path: path.to_path_buf(),
            expected: len,
            actual: read,
        });
    }
    hasher.try_finalize().map_err(fail)
}

impl Repository {
    /// The git blob id of a file anywhere on disk (of the link target for a symlink), as git
    /// would store it: lets a caller check that a file still has the content of some commit.
    pub fn hash_path(&self, path: &Path) -> Result<ObjectId, Error> {
        let meta =
            std::fs::symlink_metadata(path).map_err(|e| io("stat of a file to hash", path, e))?;
        let mode = if meta.file_type().is_symlink() {
            FileMode::Symlink
        } else {
            FileMode::Regular
        };
        let mut buf = vec![0u8; 64 * 1024];
        hash_file(self, path, mode, meta.len(), &mut buf)
    }
}
