//! One read of a commit's tree or of the working tree, shared by every mapping.
//!
//! A commit snapshot walks the tree depth-first exactly once, reading one tree object per
//! directory and never a blob; that is the same work as `git ls-tree -r`. Mappings then take
//! their range of the sorted listing with a binary search on `add`.

use std::io::{Cursor, Read};
use std::path::PathBuf;

use gix::objs::FindExt;
use gix::objs::tree::EntryKind;

use crate::repo::{Repository, Source};
use crate::{Error, FileEntry, FileMode, ObjectId, PathFilter};

/// One file of the whole repository, with its repo-relative path.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) path: String,
    pub(crate) mode: FileMode,
    pub(crate) oid: ObjectId,
    pub(crate) size: Option<u64>,
}

#[derive(Debug)]
pub(crate) enum Origin {
    Commit { id: ObjectId, time: i64 },
    Worktree { root: PathBuf },
}

/// The files of a commit or of the working tree, read once. See [`Repository::snapshot`].
#[derive(Debug)]
pub struct Snapshot<'r> {
    pub(crate) repo: &'r Repository,
    pub(crate) origin: Origin,
    /// Every file, sorted by path bytes.
    pub(crate) entries: Vec<Entry>,
}

impl<'r> Snapshot<'r> {
    pub(crate) fn of_commit(repo: &'r Repository, id: ObjectId) -> Result<Snapshot<'r>, Error> {
        let read = |what: String| {
            move |source| Error::Read {
                repo: repo.name.clone(),
                what,
                source,
            }
        };
        let commit = repo
            .inner
            .find_commit(id)
            .map_err(read(format!("commit {id}")))?;
        let tree = commit
            .tree_id()
            .map_err(read(format!("tree of commit {id}")))?
            .detach();
        let time = commit.time().map_err(read(format!("commit {id}")))?.seconds;
        let mut walk = TreeWalk {
            repo,
            bufs: Vec::new(),
            path: String::new(),
            out: Vec::new(),
        };
        walk.tree(tree, 0)?;
        let mut entries = walk.out;
        // Depth-first in git's tree order is already byte order of full paths; make sure.
        if !entries.is_sorted_by(|a, b| a.path < b.path) {
            entries.sort_by(|a, b| a.path.cmp(&b.path));
        }
        Ok(Snapshot {
            repo,
            origin: Origin::Commit { id, time },
            entries,
        })
    }

    /// What was read.
    pub fn source(&self) -> Source {
        match self.origin {
            Origin::Commit { id, .. } => Source::Commit(id),
            Origin::Worktree { .. } => Source::Worktree,
        }
    }

    /// The repository this snapshot was read from.
    pub fn repository(&self) -> &'r Repository {
        self.repo
    }

    /// The modification time archive entries get: the commit's committer time, or 0 for
    /// worktree snapshots (so identical content gives identical archives).
    pub fn mtime(&self) -> u64 {
        match self.origin {
            Origin::Commit { time, .. } => u64::try_from(time).unwrap_or(0),
            Origin::Worktree { .. } => 0,
        }
    }

    /// Number of files in the whole repository snapshot.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the snapshot has no files.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The mapping's files, sorted by path, paths relative to `add`.
    pub fn files(&self, filter: &PathFilter) -> Result<Vec<FileEntry>, Error> {
        Ok(self
            .mapping(filter)
            .map(|(rel, e)| FileEntry {
                path: rel.to_string(),
                repo_path: e.path.clone(),
                mode: e.mode,
                oid: e.oid,
                size: e.size,
            })
            .collect())
    }

    /// The entries under `filter.add()` that pass the filter, with their relative paths.
    pub(crate) fn mapping<'s>(
        &'s self,
        filter: &'s PathFilter,
    ) -> impl Iterator<Item = (&'s str, &'s Entry)> + 's {
        let add = filter.add();
        let (exact, range) = if add.is_empty() {
            (None, 0..self.entries.len())
        } else {
            // `add` as a file, then everything under `add/`: in byte order `add/…` is one
            // run between `add/` and `add0` ('0' follows '/').
            let lo = format!("{add}/");
            let hi = format!("{add}0");
            let start = self.entries.partition_point(|e| e.path < lo);
            let end = self.entries.partition_point(|e| e.path < hi);
            let exact = self
                .entries
                .binary_search_by(|e| e.path.as_str().cmp(add))
                .ok()
                .map(|i| &self.entries[i]);
            (exact, start..end)
        };
        let mut matcher = filter.matcher();
        exact
            .into_iter()
            .chain(&self.entries[range])
            .filter_map(move |e| {
                let rel = filter.relative(&e.path)?;
                matcher.matches(rel).then_some((rel, e))
            })
    }

    /// The content of `entry` (the link target for symlinks). A commit blob is read into
    /// memory whole (git objects are compressed, one blob at a time); worktree files stream.
    pub fn open_file(&self, entry: &FileEntry) -> Result<Box<dyn Read + '_>, Error> {
        match &self.origin {
            Origin::Commit { .. } => Ok(Box::new(Cursor::new(
                self.read_blob(&entry.oid, &entry.repo_path)?,
            ))),
            Origin::Worktree { root } => {
                let path = root.join(&entry.repo_path);
                if entry.mode.is_symlink() {
                    let target = std::fs::read_link(&path).map_err(|source| Error::Io {
                        op: "reading symlink",
                        path: path.clone(),
                        source,
                    })?;
                    Ok(Box::new(Cursor::new(
                        target.into_os_string().into_encoded_bytes(),
                    )))
                } else {
                    let f = std::fs::File::open(&path).map_err(|source| Error::Io {
                        op: "opening worktree file",
                        path,
                        source,
                    })?;
                    Ok(Box::new(f))
                }
            }
        }
    }

    /// The whole content of `entry`; for small files.
    pub fn read_file(&self, entry: &FileEntry) -> Result<Vec<u8>, Error> {
        if let Origin::Commit { .. } = self.origin {
            return self.read_blob(&entry.oid, &entry.repo_path);
        }
        let mut buf = Vec::new();
        self.open_file(entry)?
            .read_to_end(&mut buf)
            .map_err(|source| Error::Io {
                op: "reading worktree file",
                path: PathBuf::from(&entry.repo_path),
                source,
            })?;
        Ok(buf)
    }

    /// The content size of `entry`: from the listing for worktree files, from the object
    /// header (no decompression of the content) for commits.
    pub fn size_of(&self, entry: &FileEntry) -> Result<u64, Error> {
        if let Some(size) = entry.size {
            return Ok(size);
        }
        self.repo
            .inner
            .find_header(entry.oid)
            .map(|h| h.size())
            .map_err(|source| Error::Read {
                repo: self.repo.name.clone(),
                what: format!("header of blob {} ({})", entry.oid, entry.repo_path),
                source,
            })
    }

    pub(crate) fn read_blob(&self, oid: &ObjectId, path: &str) -> Result<Vec<u8>, Error> {
        self.repo.read_blob_for(oid, path)
    }
}

impl Repository {
    /// The content of the blob `id`, read into memory whole (git stores objects
    /// compressed, and packed ones cannot be streamed).
    pub fn read_blob(&self, id: &ObjectId) -> Result<Vec<u8>, Error> {
        self.read_blob_for(id, "by id")
    }

    fn read_blob_for(&self, oid: &ObjectId, path: &str) -> Result<Vec<u8>, Error> {
        self.inner
            .find_blob(*oid)
            .map(|mut blob| blob.take_data())
            .map_err(|source| Error::Read {
                repo: self.name.clone(),
                what: format!("blob {oid} ({path})"),
                source,
            })
    }
}

struct TreeWalk<'a> {
    repo: &'a Repository,
    /// One object buffer per depth, reused across siblings.
    bufs: Vec<Vec<u8>>,
    /// The current directory with a trailing `/` (empty at the root).
    path: String,
    out: Vec<Entry>,
}

impl TreeWalk<'_> {
    fn tree(&mut self, id: ObjectId, depth: usize) -> Result<(), Error> {
        if self.bufs.len() <= depth {
            self.bufs.push(Vec::new());
        }
        let mut buf = std::mem::take(&mut self.bufs[depth]);
        let result = self.tree_in(id, depth, &mut buf);
        self.bufs[depth] = buf;
        result
    }

    fn tree_in(&mut self, id: ObjectId, depth: usize, buf: &mut Vec<u8>) -> Result<(), Error> {
        let repo = self.repo;
        let dir = self.path.clone();
        let read = |source| Error::Read {
            repo: repo.name.clone(),
            what: format!("tree {id} ({})", if dir.is_empty() { "/" } else { &dir }),
            source,
        };
        let iter = repo.inner.objects.find_tree_iter(&id, buf).map_err(read)?;
        for entry in iter {
            let entry = entry.map_err(read)?;
            let name = std::str::from_utf8(entry.filename).map_err(|_| Error::NonUtf8Path {
                repo: repo.name.clone(),
                path: format!("{}{}", self.path, entry.filename),
            })?;
            let mode = match entry.mode.kind() {
                EntryKind::Tree => {
                    let len = self.path.len();
                    self.path.push_str(name);
                    self.path.push('/');
                    let sub = entry.oid.to_owned();
                    self.tree(sub, depth + 1)?;
                    self.path.truncate(len);
                    continue;
                }
                EntryKind::Blob => FileMode::Regular,
                EntryKind::BlobExecutable => FileMode::Executable,
                EntryKind::Link => FileMode::Symlink,
                EntryKind::Commit => continue,
            };
            let mut path = String::with_capacity(self.path.len() + name.len());
            path.push_str(&self.path);
            path.push_str(name);
            self.out.push(Entry {
                path,
                mode,
                oid: entry.oid.to_owned(),
                size: None,
            });
        }
        Ok(())
    }
}
