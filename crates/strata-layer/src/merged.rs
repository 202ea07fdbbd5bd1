//! Looking a path up through a stack of overlay layer dirs, as the mounted overlay would show
//! it, without mounting anything.

use std::io;
use std::path::{Path, PathBuf};

use crate::whiteout::{is_overlay_opaque, is_overlay_whiteout};

/// Where `path` (relative to the root, `/`-separated, leading `/` ignored) is found in `lowers`
/// (topmost first), honouring whiteouts and opaque directories; `None` when the merged view has
/// no such entry. Symlinks are not followed, in the path's last component or its parents: a
/// parent that is not a directory in the merged view hides the path.
pub fn lookup(lowers: &[PathBuf], path: &str) -> io::Result<Option<PathBuf>> {
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
}
