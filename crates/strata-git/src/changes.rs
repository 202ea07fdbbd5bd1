//! What changed in a mapping between two snapshots (werf's git patch).
//!
//! Both listings are sorted, so the diff is one merge pass; it works for any pair of
//! snapshots (commit → commit, commit → worktree) because both carry git blob ids.
//!
//! - A path only in `to` is [`ChangeKind::Added`], only in `from` [`ChangeKind::Deleted`]
//!   (a rename is a delete plus an add).
//! - A different blob id, or a switch between file and symlink, is [`ChangeKind::Modified`].
//! - Same blob, `100644` ↔ `100755` only, is [`ChangeKind::ModeChanged`].
//!
//! **Identity** is the sha256 over, per change in path order,
//! `kind NUL path NUL old-mode NUL old-oid NUL new-mode NUL new-oid NUL` (absent sides are
//! empty strings; kinds are `A`, `M`, `D`, `T`). It names the patch exactly: the same ids give
//! the same patch text. No changes give the sha256 of the empty string.

use std::cmp::Ordering;

use strata_digest::{Digest, Hasher};

use crate::{Error, FileEntry, PathFilter, Snapshot};

/// How a file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// New in `to`.
    Added,
    /// Other content, or switched between file and symlink.
    Modified,
    /// Gone in `to`.
    Deleted,
    /// Same content, executable bit flipped.
    ModeChanged,
}

impl ChangeKind {
    fn tag(self) -> &'static [u8] {
        match self {
            ChangeKind::Added => b"A",
            ChangeKind::Modified => b"M",
            ChangeKind::Deleted => b"D",
            ChangeKind::ModeChanged => b"T",
        }
    }
}

/// One changed file of a mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Path relative to `add`.
    pub path: String,
    /// Path relative to the repository root.
    pub repo_path: String,
    /// What happened.
    pub kind: ChangeKind,
    /// The file in the `from` snapshot (absent for [`ChangeKind::Added`]).
    pub old: Option<FileEntry>,
    /// The file in the `to` snapshot (absent for [`ChangeKind::Deleted`]); read its content
    /// with `to.open_file(new)`.
    pub new: Option<FileEntry>,
}

/// The changes of a mapping between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSet {
    /// Changes sorted by path.
    pub changes: Vec<Change>,
    /// Digest naming the patch; see the module docs.
    pub identity: Digest,
}

impl ChangeSet {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Compares the mapping `filter` between `from` and `to`.
pub fn changes(from: &Snapshot, to: &Snapshot, filter: &PathFilter) -> Result<ChangeSet, Error> {
    let old = from.files(filter)?;
    let new = to.files(filter)?;
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    loop {
        let order = match (old.get(i), new.get(j)) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => a.path.cmp(&b.path),
        };
        match order {
            Ordering::Less => {
                out.push(change(ChangeKind::Deleted, Some(&old[i]), None));
                i += 1;
            }
            Ordering::Greater => {
                out.push(change(ChangeKind::Added, None, Some(&new[j])));
                j += 1;
            }
            Ordering::Equal => {
                let (a, b) = (&old[i], &new[j]);
                let kind = if a.oid != b.oid || a.mode.is_symlink() != b.mode.is_symlink() {
                    Some(ChangeKind::Modified)
                } else if a.mode != b.mode {
                    Some(ChangeKind::ModeChanged)
                } else {
                    None
                };
                if let Some(kind) = kind {
                    out.push(change(kind, Some(a), Some(b)));
                }
                i += 1;
                j += 1;
            }
        }
    }

    let mut h = Hasher::new();
    for c in &out {
        h.update(c.kind.tag());
        h.update(b"\0");
        h.update(c.path.as_bytes());
        h.update(b"\0");
        for side in [&c.old, &c.new] {
            match side {
                Some(f) => {
                    h.update(f.mode.as_octal().as_bytes());
                    h.update(b"\0");
                    h.update(f.oid.to_string().as_bytes());
                    h.update(b"\0");
                }
                None => h.update(b"\0\0"),
            }
        }
    }
    Ok(ChangeSet {
        changes: out,
        identity: h.finish(),
    })
}

fn change(kind: ChangeKind, old: Option<&FileEntry>, new: Option<&FileEntry>) -> Change {
    let any = new
        .or(old)
        .expect("a change has at least one side because it is built from one");
    Change {
        path: any.path.clone(),
        repo_path: any.repo_path.clone(),
        kind,
        old: old.cloned(),
        new: new.cloned(),
    }
}
