//! What an overlay upper dir changed, for humans (the debugger's "what did this step do").
//!
//! Each non-root entry of the upper dir is reported once:
//!
//! | upper entry | lowers | reported |
//! |---|---|---|
//! | whiteout (char device 0/0) `x` | — | `Deleted x` |
//! | anything else at `p` | `p` visible in the merged lowers | `Modified p` |
//! | anything else at `p` | not visible | `Added p` |
//! | opaque dir `d` | names visible under `d` in the lowers, absent from the upper `d` | `Deleted d/name` (one level) |
//!
//! Entries below an opaque dir are always `Added`: the lowers are hidden there. Dirs that
//! overlayfs only copied up to hold a changed child show as `Modified`, as `docker diff`
//! shows them. "Visible in the lowers" follows overlayfs lookup rules: `lowers` are given
//! topmost first, a whiteout hides the name in all lowers below it, an opaque dir hides the
//! lowers' content below it, and a non-dir hides everything below it.
//!
//! Paths are reported absolute (`/etc/passwd`), sorted bytewise. This never reads file
//! contents: a file copied up without a change still counts as `Modified`.

use std::collections::{BTreeSet, HashSet};
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::whiteout;

/// Errors from listing changes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the upper or a lower dir failed.
    #[error("{op} {path} failed: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file it was done to.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// What happened to a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// The path did not exist in the lowers.
    Added,
    /// The path existed in the lowers and the upper has a new version (or a copied-up dir).
    Modified,
    /// The path existed in the lowers and was removed.
    Deleted,
}

/// One changed path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Change {
    /// Absolute path inside the image (`/etc/passwd`), lossily decoded if not UTF-8.
    pub path: String,
    /// What happened to it.
    pub kind: ChangeKind,
}

/// Lists what `upper` changed on top of `lowers` (topmost first). See the module docs.
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>, crate::Error> {
    let lowers = crate::merged::visible(lowers).map_err(|source| Error::Io {
        op: "read the opaque xattr of the layer roots",
        path: lowers.first().cloned().unwrap_or_default(),
        source,
    })?;
    let mut out = Vec::new();
    walk(upper, lowers, Path::new(""), true, &mut out)?;
    out.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    Ok(out)
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn display(rel: &Path) -> String {
    format!("/{}", rel.to_string_lossy())
}

/// Sorted names in `dir`.
fn list(dir: &Path) -> Result<Vec<OsString>, Error> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err("read dir", dir))? {
        names.push(entry.map_err(io_err("read dir", dir))?.file_name());
    }
    names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// Walks the upper dir `upper/rel`; `lower_visible` is false below an opaque upper dir.
fn walk(
    upper: &Path,
    lowers: &[PathBuf],
    rel: &Path,
    lower_visible: bool,
    out: &mut Vec<Change>,
) -> Result<(), Error> {
    let dir = upper.join(rel);
    for name in list(&dir)? {
        let child_rel = rel.join(&name);
        let path = dir.join(&name);
        let meta = std::fs::symlink_metadata(&path).map_err(io_err("lstat", &path))?;
        if whiteout::is_overlay_whiteout(&meta) {
            out.push(Change {
                path: display(&child_rel),
                kind: ChangeKind::Deleted,
            });
            continue;
        }
        let lower = if lower_visible {
            lookup(lowers, &child_rel)?
        } else {
            Lower::Missing
        };
        out.push(Change {
            path: display(&child_rel),
            kind: if matches!(lower, Lower::Missing) {
                ChangeKind::Added
            } else {
                ChangeKind::Modified
            },
        });
        if !meta.is_dir() {
            continue;
        }
        let opaque = whiteout::is_overlay_opaque(&path).map_err(io_err("lgetxattr", &path))?;
        if opaque && let Lower::Dir(active) = &lower {
            let upper_names: HashSet<OsString> = list(&path)?.into_iter().collect();
            for hidden in merged_names(lowers, &child_rel, active)? {
                if !upper_names.contains(&hidden) {
                    out.push(Change {
                        path: display(&child_rel.join(hidden)),
                        kind: ChangeKind::Deleted,
                    });
                }
            }
        }
        let below_visible = !opaque && matches!(lower, Lower::Dir(_));
        walk(upper, lowers, &child_rel, below_visible, out)?;
    }
    Ok(())
}

/// A path as seen through the merged lowers.
enum Lower {
    Missing,
    NonDir,
    /// A dir, merged from these lowers (indices, topmost first).
    Dir(Vec<usize>),
}

/// Resolves `rel` through the lowers the way overlayfs lookup does.
fn lookup(lowers: &[PathBuf], rel: &Path) -> Result<Lower, Error> {
    let mut state = Lower::Dir((0..lowers.len()).collect());
    let mut prefix = PathBuf::new();
    for comp in rel.iter() {
        let Lower::Dir(active) = state else {
            return Ok(Lower::Missing);
        };
        prefix.push(comp);
        let mut next = Vec::new();
        let mut non_dir = false;
        for idx in active {
            let path = lowers[idx].join(&prefix);
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("lstat", &path)(e)),
            };
            if whiteout::is_overlay_whiteout(&meta) {
                break;
            }
            if meta.is_dir() {
                next.push(idx);
                if whiteout::is_overlay_opaque(&path).map_err(io_err("lgetxattr", &path))? {
                    break;
                }
            } else {
                // A non-dir is what you see if nothing above it was a dir; either way it
                // hides every layer below.
                non_dir = next.is_empty();
                break;
            }
        }
        state = if non_dir {
            Lower::NonDir
        } else if next.is_empty() {
            Lower::Missing
        } else {
            Lower::Dir(next)
        };
    }
    Ok(state)
}

/// The names visible in the merged lower dir `rel` (made of the `active` lowers).
fn merged_names(
    lowers: &[PathBuf],
    rel: &Path,
    active: &[usize],
) -> Result<BTreeSet<OsString>, Error> {
    let mut decided = HashSet::new();
    let mut visible = BTreeSet::new();
    for &idx in active {
        let dir = lowers[idx].join(rel);
        for name in list(&dir)? {
            if !decided.insert(name.clone()) {
                continue;
            }
            let path = dir.join(&name);
            let meta = std::fs::symlink_metadata(&path).map_err(io_err("lstat", &path))?;
            if !whiteout::is_overlay_whiteout(&meta) {
                visible.insert(name);
            }
        }
    }
    Ok(visible)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whiteout(path: &Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .expect("mknod whiteout (tests run as root)");
    }

    fn opaque(path: &Path) {
        rustix::fs::setxattr(
            path,
            whiteout::Xattrs::of_this_process().opaque(),
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .expect("set opaque");
    }

    fn kinds(list: &[Change]) -> Vec<(&str, ChangeKind)> {
        list.iter().map(|c| (c.path.as_str(), c.kind)).collect()
    }

    #[test]
    fn added_modified_deleted_through_two_lowers() {
        let t = tempfile::tempdir().expect("tempdir");
        let (l1, l2, up) = (
            t.path().join("l1"),
            t.path().join("l2"),
            t.path().join("up"),
        );
        // l2 (bottom): etc/{a,b}, var/x, gone
        std::fs::create_dir_all(l2.join("etc")).expect("mkdir");
        std::fs::create_dir_all(l2.join("var")).expect("mkdir");
        for f in ["etc/a", "etc/b", "var/x", "gone"] {
            std::fs::write(l2.join(f), "").expect("write");
        }
        // l1 (top): deletes etc/b, makes var opaque with var/y
        std::fs::create_dir_all(l1.join("etc")).expect("mkdir");
        whiteout(&l1.join("etc/b"));
        std::fs::create_dir_all(l1.join("var")).expect("mkdir");
        opaque(&l1.join("var"));
        std::fs::write(l1.join("var/y"), "").expect("write");
        // upper: etc/a modified, etc/b re-added, var/x added (hidden below), var/y deleted,
        // new/ added, gone deleted; opq/ replaces etc-like dir content.
        std::fs::create_dir_all(up.join("etc")).expect("mkdir");
        std::fs::write(up.join("etc/a"), "1").expect("write");
        std::fs::write(up.join("etc/b"), "1").expect("write");
        std::fs::create_dir_all(up.join("var")).expect("mkdir");
        std::fs::write(up.join("var/x"), "").expect("write");
        whiteout(&up.join("var/y"));
        std::fs::create_dir_all(up.join("new/sub")).expect("mkdir");
        whiteout(&up.join("gone"));

        let got = changes(&up, &[l1.clone(), l2.clone()]).expect("changes");
        assert_eq!(
            kinds(&got),
            [
                ("/etc", ChangeKind::Modified),
                ("/etc/a", ChangeKind::Modified),
                ("/etc/b", ChangeKind::Added),
                ("/gone", ChangeKind::Deleted),
                ("/new", ChangeKind::Added),
                ("/new/sub", ChangeKind::Added),
                ("/var", ChangeKind::Modified),
                ("/var/x", ChangeKind::Added),
                ("/var/y", ChangeKind::Deleted),
            ]
        );
    }

    #[test]
    fn opaque_upper_dir_reports_hidden_children() {
        let t = tempfile::tempdir().expect("tempdir");
        let (low, up) = (t.path().join("low"), t.path().join("up"));
        std::fs::create_dir_all(low.join("d")).expect("mkdir");
        std::fs::write(low.join("d/old"), "").expect("write");
        std::fs::write(low.join("d/kept-name"), "").expect("write");
        std::fs::write(low.join("f"), "").expect("write");
        std::fs::create_dir_all(up.join("d")).expect("mkdir");
        opaque(&up.join("d"));
        std::fs::write(up.join("d/kept-name"), "").expect("write");
        // A dir replacing a lower file: its children cannot exist below.
        std::fs::create_dir_all(up.join("f/g")).expect("mkdir");
        let got = changes(&up, std::slice::from_ref(&low)).expect("changes");
        assert_eq!(
            kinds(&got),
            [
                ("/d", ChangeKind::Modified),
                ("/d/kept-name", ChangeKind::Added),
                ("/d/old", ChangeKind::Deleted),
                ("/f", ChangeKind::Modified),
                ("/f/g", ChangeKind::Added),
            ]
        );
        assert!(changes(&t.path().join("missing"), &[]).is_err());
    }
}
