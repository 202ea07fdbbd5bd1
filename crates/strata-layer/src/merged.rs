//! Looking a path up through a stack of overlay layer dirs, as the mounted overlay would show
//! it, without mounting anything.

use std::io;
use std::path::{Path, PathBuf};

use crate::whiteout::{is_overlay_opaque, is_overlay_whiteout};

/// The layers of `lowers` (topmost first) that make up the merged view: all of them down to
/// and including the first whose root is opaque (a layer with a root-level `.wh..wh..opq`,
/// which replaces the whole file system). overlayfs ignores the opaque xattr on a lower
/// layer's root, so a stack is cut here before it is mounted; [`lookup`], [`walk`] and
/// [`crate::changes`] cut it themselves.
pub fn visible(lowers: &[PathBuf]) -> io::Result<&[PathBuf]> {
    for (i, lower) in lowers.iter().enumerate() {
        let opaque = is_overlay_opaque(lower)
            .map_err(|e| io::Error::new(e.kind(), format!("lgetxattr {}: {e}", lower.display())))?;
        if opaque {
            return Ok(&lowers[..=i]);
        }
    }
    Ok(lowers)
}

/// Where `path` (relative to the root, `/`-separated, leading `/` ignored) is found in `lowers`
/// (topmost first), honouring whiteouts and opaque directories; `None` when the merged view has
/// no such entry. Symlinks are not followed, in the path's last component or its parents: a
/// parent that is not a directory in the merged view hides the path.
pub fn lookup(lowers: &[PathBuf], path: &str) -> io::Result<Option<PathBuf>> {
    let lowers = visible(lowers)?;
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        return Ok(lowers.first().cloned());
    }
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    'layers: for lower in lowers {
        let mut dir = lower.to_path_buf();
        let mut opaque_above = false;
        for (i, part) in parts.iter().enumerate() {
            dir.push(part);
            let meta = match std::fs::symlink_metadata(&dir) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if opaque_above {
                        return Ok(None);
                    }
                    continue 'layers;
                }
                Err(e) => return Err(e),
            };
            if is_overlay_whiteout(&meta) {
                return Ok(None);
            }
            let last = i + 1 == parts.len();
            if last {
                return Ok(Some(dir));
            }
            if !meta.is_dir() {
                return Ok(None);
            }
            opaque_above |= is_overlay_opaque(&dir)?;
        }
    }
    Ok(None)
}

/// One entry of a merged tree.
#[derive(Debug)]
pub struct MergedEntry {
    /// Path relative to the walked root (`""` when the root itself is a file), `/`-separated.
    pub path: String,
    /// Where the entry's content and metadata are on disk (in its topmost layer).
    pub source: PathBuf,
    /// Its metadata (not following symlinks).
    pub meta: std::fs::Metadata,
}

/// Every entry at and below `root` in the merged view of `lowers` (topmost first), sorted by
/// path, directories before their content: whiteouts hide, opaque directories stop the merge
/// with layers below. An absent root gives nothing.
pub fn walk(lowers: &[PathBuf], root: &str) -> io::Result<Vec<MergedEntry>> {
    let lowers = visible(lowers)?;
    let mut out = Vec::new();
    let Some(top) = lookup(lowers, root)? else {
        return Ok(out);
    };
    let meta = std::fs::symlink_metadata(&top)?;
    if !meta.is_dir() {
        out.push(MergedEntry {
            path: String::new(),
            source: top,
            meta,
        });
        return Ok(out);
    }
    let rel = root.trim_matches('/');
    // The layers in which the root is (part of) the merged directory.
    let layers = dir_layers(lowers, rel)?;
    walk_dir(&layers, "", &mut out)?;
    Ok(out)
}

/// The dirs that make up the merged directory `rel`, topmost first: from the topmost layer
/// that has it as a directory down to (and including) the first opaque one.
fn dir_layers(lowers: &[PathBuf], rel: &str) -> io::Result<Vec<PathBuf>> {
    let mut layers = Vec::new();
    for (i, lower) in lowers.iter().enumerate() {
        let dir = if rel.is_empty() {
            lower.clone()
        } else {
            lower.join(rel)
        };
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {
                // A directory deeper in this layer only counts if the path is visible here.
                if lookup(&lowers[i..], rel)?.as_deref() != Some(dir.as_path()) {
                    break;
                }
                let opaque = is_overlay_opaque(&dir)?;
                layers.push(dir);
                if opaque {
                    break;
                }
            }
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(layers)
}

fn walk_dir(layers: &[PathBuf], prefix: &str, out: &mut Vec<MergedEntry>) -> io::Result<()> {
    let mut names: std::collections::BTreeMap<std::ffi::OsString, usize> = Default::default();
    let mut hidden = std::collections::BTreeSet::new();
    for (i, dir) in layers.iter().enumerate() {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if names.contains_key(&name) || hidden.contains(&name) {
                continue;
            }
            let meta = entry.metadata()?;
            if is_overlay_whiteout(&meta) {
                hidden.insert(name);
            } else {
                names.insert(name, i);
            }
        }
    }
    for (name, i) in names {
        let name_str = name.to_string_lossy();
        let path = if prefix.is_empty() {
            name_str.to_string()
        } else {
            format!("{prefix}/{name_str}")
        };
        let source = layers[i].join(&name);
        let meta = std::fs::symlink_metadata(&source)?;
        let is_dir = meta.is_dir();
        out.push(MergedEntry {
            path: path.clone(),
            source: source.clone(),
            meta,
        });
        if is_dir {
            // The directory merges with same-named directories of the layers below its own,
            // unless it is opaque or something else (a file, a whiteout) sits above them.
            let mut below = vec![source.clone()];
            if !is_overlay_opaque(&source)? {
                for dir in &layers[i + 1..] {
                    let candidate = dir.join(&name);
                    match std::fs::symlink_metadata(&candidate) {
                        Ok(m) if m.is_dir() => {
                            let opaque = is_overlay_opaque(&candidate)?;
                            below.push(candidate);
                            if opaque {
                                break;
                            }
                        }
                        Ok(_) => break,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
            walk_dir(&below, &path, out)?;
        }
    }
    Ok(())
}

/// Reads a file of the merged view, if it exists there and is a regular file.
pub fn read(lowers: &[PathBuf], path: &str) -> io::Result<Option<Vec<u8>>> {
    match lookup(lowers, path)? {
        Some(p) if Path::new(&p).symlink_metadata()?.is_file() => std::fs::read(p).map(Some),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(root: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = root.join(name);
        for (path, content) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn whiteout(path: &Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
    }

    #[test]
    fn topmost_wins_and_whiteouts_and_opaque_dirs_hide() {
        let tmp = tempfile::tempdir().unwrap();
        let bottom = layer(
            tmp.path(),
            "bottom",
            &[("etc/passwd", "old"), ("etc/group", "g"), ("d/x", "x")],
        );
        let top = layer(tmp.path(), "top", &[("etc/passwd", "new")]);
        whiteout(&top.join("etc/group"));
        std::fs::create_dir_all(top.join("d")).unwrap();
        rustix::fs::setxattr(
            top.join("d"),
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        let lowers = vec![top.clone(), bottom.clone()];
        assert_eq!(read(&lowers, "/etc/passwd").unwrap().unwrap(), b"new");
        assert_eq!(lookup(&lowers, "etc/group").unwrap(), None);
        assert_eq!(
            lookup(&lowers, "d/x").unwrap(),
            None,
            "an opaque dir hides what is below it"
        );
        assert_eq!(read(&[bottom], "d/x").unwrap().unwrap(), b"x");
        assert_eq!(lookup(&lowers, "nope/x").unwrap(), None);
    }

    #[test]
    fn walk_merges_layers_like_overlayfs() {
        let tmp = tempfile::tempdir().unwrap();
        let bottom = layer(
            tmp.path(),
            "bottom",
            &[
                ("app/a", "a0"),
                ("app/b", "b0"),
                ("app/sub/x", "x0"),
                ("app/op/old", "o"),
            ],
        );
        let top = layer(
            tmp.path(),
            "top",
            &[("app/a", "a1"), ("app/c", "c1"), ("app/op/new", "n")],
        );
        whiteout(&top.join("app/b"));
        rustix::fs::setxattr(
            top.join("app/op"),
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        let entries = walk(&[top.clone(), bottom], "/app").unwrap();
        let paths: Vec<_> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a", "c", "op", "op/new", "sub", "sub/x"]);
        assert_eq!(std::fs::read(&entries[0].source).unwrap(), b"a1");
        let file = walk(&[top], "app/a").unwrap();
        assert_eq!(file.len(), 1);
        assert_eq!(file[0].path, "");
    }
}
