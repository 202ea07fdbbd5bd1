//! Opening repositories, resolving revisions, commit info.

use std::fmt;
use std::path::Path;

use crate::snapshot::Snapshot;
use crate::{Error, ObjectId};

/// A git repository opened for reading.
pub struct Repository {
    pub(crate) inner: gix::Repository,
    /// How errors name it: the worktree or git dir path, or the remote URL.
    pub(crate) name: String,
}

impl fmt::Debug for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repository")
            .field("name", &self.name)
            .finish()
    }
}

/// A revision to build from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rev {
    /// What `HEAD` points to.
    Head,
    /// `refs/heads/<name>`, falling back to `refs/remotes/origin/<name>`.
    Branch(String),
    /// `refs/tags/<name>`, peeled to its commit.
    Tag(String),
    /// A full or abbreviated (at least 4 digits) commit hash.
    Commit(String),
}

impl fmt::Display for Rev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rev::Head => f.write_str("HEAD"),
            Rev::Branch(b) => write!(f, "branch `{b}`"),
            Rev::Tag(t) => write!(f, "tag `{t}`"),
            Rev::Commit(c) => write!(f, "commit `{c}`"),
        }
    }
}

/// What a [`Snapshot`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The tree of this commit.
    Commit(ObjectId),
    /// The working tree: tracked files as they are on disk plus untracked, not ignored files
    /// (werf's `--dev`).
    Worktree,
}

/// A branch or tag, as `strata cleanup` weighs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitReference {
    /// The short name (`main`, `v1.0`).
    pub name: String,
    /// A tag (else a branch).
    pub tag: bool,
    /// The commit it points at.
    pub commit: ObjectId,
    /// When the tag was made or the branch last moved (its tip's committer time), seconds
    /// since the epoch.
    pub time_unix: i64,
}

/// When and what a commit is, for `WERF_COMMIT_*` and `.Commit` in templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// The full hex hash.
    pub hash: String,
    /// Committer time in seconds since the epoch.
    pub time_unix: i64,
    /// Committer time like Go's `time.Time.String()` for a zone without a name, as werf
    /// prints it: `2022-01-24 17:26:19 +0300 +0300` (the offset doubles as the zone name).
    pub time_human: String,
}

impl Repository {
    /// Opens the repository containing `path` (searching upwards).
    pub fn discover(path: &Path) -> Result<Repository, Error> {
        let inner = gix::discover(path).map_err(|source| Error::Discover {
            path: path.to_path_buf(),
            source,
        })?;
        let name = inner
            .workdir()
            .unwrap_or_else(|| inner.git_dir())
            .display()
            .to_string();
        Ok(Repository::wrap(inner, name))
    }

    pub(crate) fn wrap(mut inner: gix::Repository, name: String) -> Repository {
        // Trees are read once per snapshot; a modest cache helps blobs shared between
        // mappings and deltas of neighbouring objects.
        inner.object_cache_size_if_unset(16 * 1024 * 1024);
        Repository { inner, name }
    }

    /// How errors name this repository (a path or a URL).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The working tree root, `None` for bare repositories (remote caches).
    pub fn workdir(&self) -> Option<&Path> {
        self.inner.workdir()
    }

    /// Resolves `rev` to a commit id.
    pub fn resolve(&self, rev: &Rev) -> Result<ObjectId, Error> {
        let spec = match rev {
            Rev::Head => "HEAD^{commit}".to_string(),
            Rev::Branch(b) => {
                let local = format!("refs/heads/{b}");
                let found = self
                    .inner
                    .try_find_reference(local.as_str())
                    .ok()
                    .flatten()
                    .is_some();
                if found {
                    format!("{local}^{{commit}}")
                } else {
                    format!("refs/remotes/origin/{b}^{{commit}}")
                }
            }
            Rev::Tag(t) => format!("refs/tags/{t}^{{commit}}"),
            Rev::Commit(c) => {
                if c.len() < 4 || c.len() > 40 || !c.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(Error::InvalidRev {
                        repo: self.name.clone(),
                        rev: rev.to_string(),
                        reason: "expected 4 to 40 hex digits".into(),
                    });
                }
                format!("{c}^{{commit}}")
            }
        };
        self.inner
            .rev_parse_single(spec.as_str())
            .map(|id| id.detach())
            .map_err(|source| Error::Resolve {
                repo: self.name.clone(),
                rev: rev.to_string(),
                source,
            })
    }

    /// Hash and committer time of a commit.
    pub fn commit_info(&self, id: &ObjectId) -> Result<CommitInfo, Error> {
        let read = |source| Error::Read {
            repo: self.name.clone(),
            what: format!("commit {id}"),
            source,
        };
        let commit = self.inner.find_commit(*id).map_err(read)?;
        let time = commit.time().map_err(read)?;
        Ok(CommitInfo {
            hash: id.to_string(),
            time_unix: time.seconds,
            time_human: crate::time::go_time_string(time.seconds, time.offset),
        })
    }

    /// The branches and tags werf's cleanup looks at: branches of the `origin` remote (as
    /// werf, without the `origin/` prefix), or the local ones when there is no such remote; and
    /// tags. Each with the commit it points at and its time: the tagger's for an annotated
    /// tag, the tip commit's otherwise.
    pub fn cleanup_references(&self) -> Result<Vec<GitReference>, Error> {
        let read = |what: &str, source: gix::Error| Error::Read {
            repo: self.name.clone(),
            what: what.to_string(),
            source,
        };
        let platform = self
            .inner
            .references()
            .map_err(|e| read("the references", e))?;
        let mut remote = Vec::new();
        let mut local = Vec::new();
        let mut tags = Vec::new();
        for r in platform.all().map_err(|e| read("the references", e))? {
            let mut r = r.map_err(|e| read("a reference", gix::Error::from_error(e)))?;
            let full = r.name().as_bstr().to_string();
            let (list, name, is_tag) = if let Some(n) = full.strip_prefix("refs/remotes/origin/") {
                (&mut remote, n, false)
            } else if let Some(n) = full.strip_prefix("refs/heads/") {
                (&mut local, n, false)
            } else if let Some(n) = full.strip_prefix("refs/tags/") {
                (&mut tags, n, true)
            } else {
                continue;
            };
            if name == "HEAD" {
                continue;
            }
            let tagged = r
                .peel_to_id()
                .ok()
                .and_then(|id| id.object().ok())
                .and_then(|o| o.try_into_tag().ok())
                .and_then(|t| t.tagger().ok().flatten().and_then(|s| s.time().ok()))
                .map(|t| t.seconds);
            let Ok(commit) = r.peel_to_commit() else {
                continue;
            };
            let id = commit.id;
            let time = commit
                .time()
                .map_err(|e| read(&format!("commit {id}"), e))?
                .seconds;
            list.push(GitReference {
                name: name.to_string(),
                tag: is_tag,
                commit: id,
                time_unix: if is_tag { tagged.unwrap_or(time) } else { time },
            });
        }
        let mut out = if remote.is_empty() { local } else { remote };
        out.extend(tags);
        Ok(out)
    }

    /// `tip` and its ancestors, newest commit first, each with its committer time.
    pub fn history(&self, tip: &ObjectId) -> Result<Vec<(ObjectId, i64)>, Error> {
        let read = |source: gix::Error| Error::Read {
            repo: self.name.clone(),
            what: format!("the history of {tip}"),
            source,
        };
        let walk = self
            .inner
            .rev_walk([*tip])
            .sorting(gix::revision::walk::Sorting::ByCommitTime(
                Default::default(),
            ))
            .all()
            .map_err(read)?;
        let mut out = Vec::new();
        for info in walk {
            let info = info.map_err(read)?;
            out.push((info.id, info.commit_time.unwrap_or_default()));
        }
        Ok(out)
    }

    /// Whether the repository holds `id` as a commit (a shallow clone or a rewritten history
    /// may not hold a commit recorded elsewhere).
    pub fn has_commit(&self, id: &ObjectId) -> bool {
        self.inner.find_commit(*id).is_ok()
    }

    /// Whether `ancestor` is `of` or one of its ancestors (werf's `IsAncestor`). Both must be
    /// commits of this repository; a history that cannot be walked (a shallow clone) is an
    /// error.
    pub fn is_ancestor(&self, ancestor: &ObjectId, of: &ObjectId) -> Result<bool, Error> {
        if ancestor == of {
            return Ok(true);
        }
        let base = self
            .inner
            .merge_base(*ancestor, *of)
            .map_err(|source| Error::Read {
                repo: self.name.clone(),
                what: format!("the history between {ancestor} and {of}"),
                source,
            })?;
        Ok(base.is_some_and(|b| b.detach() == *ancestor))
    }

    /// Reads the tree of a commit, or walks the working tree, once.
    pub fn snapshot(&self, source: Source) -> Result<Snapshot<'_>, Error> {
        match source {
            Source::Commit(id) => Snapshot::of_commit(self, id),
            Source::Worktree => Snapshot::of_worktree(self),
        }
    }
}
