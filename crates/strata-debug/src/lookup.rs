//! "Does this state have `/bin/sh`?", answered on the host without starting a container.
//!
//! A state is a stack of overlay layers (topmost first). [`resolve`] walks a container path
//! through the merged view the way overlayfs and the kernel's path walk would: a whiteout
//! hides a name in every layer below it, an opaque dir hides the lower dirs' content, a
//! non-dir hides everything below it, and symlinks are followed *inside the state* (an
//! absolute target restarts at the state's root, never at the host's), at most 40 times like
//! `ELOOP`. Mounts of the spec are not consulted: a program provided only by a bind mount is
//! not found.

use std::ffi::OsString;
use std::fs::Metadata;
use std::io;
use std::path::{Component, Path, PathBuf};

use strata_layer::whiteout;

/// What can go wrong while looking at the layers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a layer failed for another reason than the path not being there.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The host path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// Symlinks followed before giving up (the kernel's `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// What a name is in one merged directory.
enum Entry {
    Missing,
    /// A directory, with the layers (indices) that contribute to it.
    Dir(Vec<usize>),
    /// Anything else, as found in its topmost layer.
    Other {
        host: PathBuf,
        meta: Metadata,
    },
}

/// What a path names in a merged state, symlinks followed inside it.
#[derive(Debug)]
pub enum Found {
    /// A directory: the layers' dirs that make up its merged content, topmost first.
    Dir(Vec<PathBuf>),
    /// Anything else, as found in its topmost layer.
    Other {
        /// Where it is on the host.
        host: PathBuf,
        /// Its metadata (not following a link: the path resolved to this entry).
        meta: Metadata,
    },
}

/// The metadata of the file `path` (absolute, in the container) names in the merged `layers`,
/// following symlinks; `None` when it does not resolve.
pub fn resolve(layers: &[PathBuf], path: &str) -> Result<Option<Metadata>, Error> {
    Ok(match find(layers, path)? {
        Some(Found::Dir(dirs)) => {
            let host = &dirs[0];
            Some(host.symlink_metadata().map_err(io_err("stat", host))?)
        }
        Some(Found::Other { meta, .. }) => Some(meta),
        None => None,
    })
}

/// What `path` (absolute, in the container) names in the merged `layers`, following symlinks
/// inside the state; `None` when it does not resolve. Nothing outside the layers is ever
/// looked at, so the result is safe to bind into a container.
pub fn find(layers: &[PathBuf], path: &str) -> Result<Option<Found>, Error> {
    let mut todo: Vec<OsString> = components(Path::new(path));
    todo.reverse();
    // The resolved directory so far (relative to the root) and its contributing layers.
    let mut dir = PathBuf::new();
    let mut active: Vec<usize> = (0..layers.len()).collect();
    let mut links = 0;
    while let Some(name) = todo.pop() {
        if name == ".." {
            // Re-walk the parent from the root: its layers are not remembered.
            let mut parent = components(&dir);
            parent.pop();
            parent.reverse();
            todo.extend(parent);
            dir = PathBuf::new();
            active = (0..layers.len()).collect();
            continue;
        }
        let rel = dir.join(&name);
        match entry(layers, &active, &rel)? {
            Entry::Missing => return Ok(None),
            Entry::Dir(found) if todo.is_empty() => {
                return Ok(Some(Found::Dir(
                    found.iter().map(|&i| layers[i].join(&rel)).collect(),
                )));
            }
            Entry::Dir(found) => {
                dir = rel;
                active = found;
            }
            Entry::Other { host, meta } if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Ok(None);
                }
                let target = std::fs::read_link(&host).map_err(io_err("read link", &host))?;
                let mut next = components(&target);
                next.reverse();
                todo.extend(next);
                if target.is_absolute() {
                    dir = PathBuf::new();
                    active = (0..layers.len()).collect();
                }
            }
            Entry::Other { host, meta } if todo.is_empty() => {
                return Ok(Some(Found::Other { host, meta }));
            }
            // A file in the middle of the path: ENOTDIR.
            Entry::Other { .. } => return Ok(None),
        }
    }
    // The path was `/` (or walked back to it): every layer's root, down to an opaque one.
    let mut dirs = Vec::new();
    for layer in layers {
        dirs.push(layer.clone());
        if whiteout::is_overlay_opaque(layer).map_err(io_err("read xattrs of", layer))? {
            break;
        }
    }
    Ok((!dirs.is_empty()).then_some(Found::Dir(dirs)))
}

/// Whether `path` resolves to a regular file with an execute bit in the merged `layers`.
pub fn is_executable(layers: &[PathBuf], path: &str) -> Result<bool, Error> {
    use std::os::unix::fs::PermissionsExt;
    Ok(resolve(layers, path)?.is_some_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The names of a path, without `/` and `.`; `..` is kept.
fn components(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_owned()),
            Component::ParentDir => Some("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// Looks `rel` up in the `active` layers of its parent directory (overlayfs lookup).
fn entry(layers: &[PathBuf], active: &[usize], rel: &Path) -> Result<Entry, Error> {
    let mut dirs = Vec::new();
    for &i in active {
        let host = layers[i].join(rel);
        let meta = match host.symlink_metadata() {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            // A file where a parent should be (only possible below a lower dir that is
            // merged with a non-dir in another layer, which overlayfs hides anyway).
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) => {
                continue;
            }
            Err(e) => return Err(io_err("stat", &host)(e)),
        };
        if whiteout::is_overlay_whiteout(&meta) {
            break;
        }
        if !meta.is_dir() {
            if dirs.is_empty() {
                return Ok(Entry::Other { host, meta });
            }
            // A non-dir below a dir is hidden by it, and hides everything below itself.
            break;
        }
        dirs.push(i);
        if whiteout::is_overlay_opaque(&host).map_err(io_err("read xattrs of", &host))? {
            break;
        }
    }
    Ok(if dirs.is_empty() {
        Entry::Missing
    } else {
        Entry::Dir(dirs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn exe(path: &Path) {
        fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        fs::write(path, "#!").expect("write");
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    fn whiteout(path: &Path) {
        fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .expect("mknod whiteout (needs root)");
    }

    #[test]
    fn follows_symlinks_inside_the_state() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (top, bottom) = (tmp.path().join("top"), tmp.path().join("bottom"));
        exe(&bottom.join("usr/bin/busybox"));
        fs::create_dir_all(&top).expect("mkdir");
        // Merged /usr: /bin -> usr/bin in the upper layer, the shell as a relative link.
        symlink("usr/bin", top.join("bin")).expect("symlink");
        symlink("busybox", bottom.join("usr/bin/sh")).expect("symlink");
        let layers = vec![top.clone(), bottom.clone()];
        assert!(is_executable(&layers, "/bin/sh").expect("lookup"));
        assert!(is_executable(&layers, "/usr/bin/../bin/sh").expect("lookup"));
        assert!(!is_executable(&layers, "/bin/bash").expect("lookup"));
        // An absolute link resolves in the state, not on the host.
        symlink("/usr/bin/busybox", top.join("abs")).expect("symlink");
        assert!(is_executable(&layers, "/abs").expect("lookup"));
        symlink("/bin/true-on-the-host-only", top.join("host")).expect("symlink");
        assert!(!is_executable(&layers, "/host").expect("lookup"));
        // A loop ends.
        symlink("loop", top.join("loop")).expect("symlink");
        assert!(!is_executable(&layers, "/loop").expect("lookup"));
        assert!(resolve(&layers, "/").expect("root").is_some());
    }

    #[test]
    fn whiteouts_opaque_dirs_and_files_hide_lower_layers() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (top, bottom) = (tmp.path().join("top"), tmp.path().join("bottom"));
        exe(&bottom.join("bin/sh"));
        exe(&bottom.join("opt/tool"));
        exe(&bottom.join("srv/x"));
        whiteout(&top.join("bin/sh"));
        fs::create_dir_all(top.join("opt")).expect("mkdir");
        xattr_opaque(&top.join("opt"));
        fs::write(top.join("srv"), "a file").expect("write");
        let layers = vec![top.clone(), bottom.clone()];
        assert!(!is_executable(&layers, "/bin/sh").expect("lookup"));
        assert!(!is_executable(&layers, "/opt/tool").expect("lookup"));
        assert!(!is_executable(&layers, "/srv/x").expect("lookup"));
        assert!(is_executable(&[bottom], "/bin/sh").expect("lookup"));
    }

    fn xattr_opaque(path: &Path) {
        rustix::fs::setxattr(
            path,
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .expect("setxattr (needs root)");
    }
}
