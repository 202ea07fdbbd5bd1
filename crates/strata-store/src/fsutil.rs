//! Small file-system helpers shared by the store's modules: error context, directory fsync,
//! syncfs, removal of trees we may not have write permission in, and file-name escaping.

use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Error;

/// A `map_err` adapter that adds the operation and the path to an I/O error.
pub(crate) fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// `mkdir`, where an existing directory is fine.
pub(crate) fn create_dir(path: &Path, op: &'static str) -> Result<(), Error> {
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(io(op, path)(e)),
    }
}

/// `mkdir -p`.
pub(crate) fn create_dir_all(path: &Path, op: &'static str) -> Result<(), Error> {
    fs::create_dir_all(path).map_err(io(op, path))
}

/// fsync(2) on a directory, so that a rename or link into it survives a power loss.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io("fsync of directory", dir))
}

/// syncfs(2) on the file system holding `path`
/// (<https://man7.org/linux/man-pages/man2/sync.2.html>).
pub(crate) fn syncfs(path: &Path) -> Result<(), Error> {
    let dir = File::open(path).map_err(io("open for syncfs of", path))?;
    rustix::fs::syncfs(&dir).map_err(|e| io("syncfs of the file system holding", path)(e.into()))
}

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub(crate) fn now_unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// 16 random hex digits for temporary names.
pub(crate) fn random_suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Removes `path` and everything below it without following symlinks, and returns the bytes of
/// the regular files removed. Copes with what builds leave behind: directories without write or
/// search permission (an overlay `work/work` has mode 000, images ship read-only dirs) get
/// `u+rwx` before their entries are removed. A missing `path` removes nothing.
///
/// Below `path` everything goes through directory fds (`openat`/`unlinkat` with `O_NOFOLLOW`,
/// the chmod through the fd itself): the trees removed are scratch dirs whose content a
/// container wrote, and a directory swapped for a symlink while the removal runs must not send
/// the chmod or the unlink to the host's files.
pub(crate) fn remove_tree(path: &Path) -> Result<u64, Error> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io("stat before removal of", path)(e)),
    };
    if !meta.is_dir() {
        fs::remove_file(path).map_err(io("removal of", path))?;
        return Ok(if meta.is_file() { meta.len() } else { 0 });
    }
    let bytes = match open_dir(rustix::fs::CWD, path, path)? {
        Some(dir) => remove_below(&dir, path)?,
        None => 0,
    };
    match fs::remove_dir(path) {
        Ok(()) => Ok(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(bytes),
        Err(e) => Err(io("removal of directory", path)(e)),
    }
}

/// Opens the directory `name` (relative to `parent`) for listing without following a link,
/// after giving it `u+rwx` if it lacks it; `None` if it is gone.
fn open_dir<Fd: std::os::fd::AsFd, P: rustix::path::Arg>(
    parent: Fd,
    name: P,
    shown: &Path,
) -> Result<Option<std::os::fd::OwnedFd>, Error> {
    use rustix::fs::{Mode, OFlags};
    let err = |op: &'static str| move |e: rustix::io::Errno| io(op, shown)(e.into());
    let handle = match rustix::fs::openat(
        &parent,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(err("open for removal of")(e)),
    };
    let mode = rustix::fs::fstat(&handle)
        .map_err(err("stat before removal of"))?
        .st_mode;
    if mode & 0o700 != 0o700 {
        // An O_PATH fd cannot be fchmod'ed; its /proc/self/fd link names exactly that directory.
        let by_fd = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&handle));
        rustix::fs::chmod(by_fd.as_str(), Mode::from_raw_mode((mode & 0o7777) | 0o700))
            .map_err(err("chmod u+rwx before removal of"))?;
    }
    rustix::fs::openat(
        &handle,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map(Some)
    .map_err(err("listing for removal of"))
}

/// Removes every entry of the open directory `dir` (shown as `shown` in errors).
fn remove_below(dir: &std::os::fd::OwnedFd, shown: &Path) -> Result<u64, Error> {
    use rustix::fs::{AtFlags, FileType};
    let err = |op: &'static str| move |e: rustix::io::Errno| io(op, shown)(e.into());
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir).map_err(err("listing for removal of"))? {
        let entry = entry.map_err(err("listing for removal of"))?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    let mut bytes = 0;
    for name in names {
        let child = shown.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
        let stat = match rustix::fs::statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => return Err(io("stat before removal of", &child)(e.into())),
        };
        let kind = FileType::from_raw_mode(stat.st_mode);
        let flags = if kind == FileType::Directory {
            if let Some(sub) = open_dir(dir, name.as_c_str(), &child)? {
                bytes += remove_below(&sub, &child)?;
            }
            AtFlags::REMOVEDIR
        } else {
            if kind == FileType::RegularFile {
                bytes += stat.st_size as u64;
            }
            AtFlags::empty()
        };
        match rustix::fs::unlinkat(dir, name.as_c_str(), flags) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(io("removal of", &child)(e.into())),
        }
    }
    Ok(bytes)
}

/// Escapes an arbitrary name into one file-name component, reversibly: ASCII letters, digits,
/// `_`, `-` and (not leading) `.` stay; every other byte becomes `%XX`. So `busybox:latest`
/// becomes `busybox%3Alatest`, and no result is empty, hidden, `.` or `..`.
pub(crate) fn escape_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The file-name stem used for a user-chosen name, or an error if the name cannot be stored.
/// Long names hash instead (`~<hex>`); callers that need the name back store it in the file.
pub(crate) fn name_stem(kind: &'static str, name: &str) -> Result<String, Error> {
    if name.is_empty() {
        return Err(Error::InvalidName {
            kind,
            name: name.into(),
            reason: "it is empty",
        });
    }
    let escaped = escape_name(name);
    // 255 bytes is the usual NAME_MAX; leave room for ".json"/".lock".
    if escaped.len() <= 200 {
        Ok(escaped)
    } else {
        Ok(format!(
            "~{}",
            strata_digest::Digest::of(name.as_bytes()).hex()
        ))
    }
}

/// The UTF-8 names in `dir`. Everything the store creates has a UTF-8 name; anything else is a
/// stray entry, left for a human rather than guessed about.
pub(crate) fn list_names(
    dir: &Path,
    op: &'static str,
) -> Result<std::collections::BTreeSet<String>, Error> {
    let mut names = std::collections::BTreeSet::new();
    for entry in fs::read_dir(dir).map_err(io(op, dir))? {
        let entry = entry.map_err(io(op, dir))?;
        if let Ok(name) = entry.file_name().into_string() {
            names.insert(name);
        }
    }
    Ok(names)
}

/// Bytes of the regular files at or below `path`, without following symlinks; 0 if it is gone.
pub(crate) fn tree_bytes(path: &Path) -> Result<u64, Error> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io("stat for size of", path)(e)),
    };
    if !meta.is_dir() {
        return Ok(if meta.is_file() { meta.len() } else { 0 });
    }
    let mut bytes = 0;
    for entry in fs::read_dir(path).map_err(io("listing for size of", path))? {
        let entry = entry.map_err(io("listing for size of", path))?;
        bytes += tree_bytes(&entry.path())?;
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The inverse of [`escape_name`], to prove it is reversible.
    fn unescape_name(s: &str) -> Option<String> {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).ok()
    }

    #[test]
    fn escape_round_trips() {
        for name in [
            "hello",
            "busybox:latest",
            "registry.local:5000/team/app:v1",
            "a@sha256:00",
            ".hidden",
            "..",
            "100%",
            "ünïcode/ßtuff",
            "sp ace\nnl",
        ] {
            let e = escape_name(name);
            assert!(
                !e.contains('/') && !e.starts_with('.') && !e.is_empty(),
                "{e}"
            );
            assert_eq!(unescape_name(&e).as_deref(), Some(name), "{e}");
        }
        assert_eq!(escape_name("busybox:latest"), "busybox%3Alatest");
        assert_eq!(unescape_name("bad%4"), None);
        assert_eq!(unescape_name("bad%zz"), None);
    }

    #[test]
    fn long_names_hash() {
        let long = "x/".repeat(150);
        let stem = name_stem("tag name", &long).unwrap();
        assert!(stem.starts_with('~') && stem.len() == 65);
        assert!(name_stem("tag name", "").is_err());
    }

    #[test]
    fn remove_tree_copes_with_locked_dirs_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), b"keep").unwrap();

        let t = dir.path().join("t");
        fs::create_dir_all(t.join("work/work/deep")).unwrap();
        fs::write(t.join("work/work/deep/f"), b"12345").unwrap();
        fs::write(t.join("ro-file"), b"abc").unwrap();
        fs::set_permissions(t.join("ro-file"), fs::Permissions::from_mode(0o444)).unwrap();
        std::os::unix::fs::symlink(&outside, t.join("link")).unwrap();
        fs::set_permissions(t.join("work/work/deep"), fs::Permissions::from_mode(0o555)).unwrap();
        fs::set_permissions(t.join("work/work"), fs::Permissions::from_mode(0o000)).unwrap();

        assert_eq!(remove_tree(&t).unwrap(), 8);
        assert!(!t.exists());
        assert!(outside.join("keep").exists(), "followed a symlink");
        assert_eq!(remove_tree(&t).unwrap(), 0);
    }
}
