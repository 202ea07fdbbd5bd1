//! Opening files in directories a container can write (its control and state dirs, uppers,
//! scratch) without letting the container steer strata: every open is `openat2` relative to
//! the directory with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`
//! ([openat2(2)](https://man7.org/linux/man-pages/man2/openat2.2.html)), so a symlink the
//! container planted (`ln -s /etc/shadow /.strata/state/step`) fails the open instead of
//! sending strata's host-root write or read elsewhere. Opens are non-blocking and only regular
//! files count, so a FIFO planted in place of a file cannot hang the build either.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// Why a file beneath a directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The open or a read/write failed (a symlink on the way gives `ELOOP`/`EXDEV`).
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Something other than a regular file was there.
    #[error("{path} is not a regular file")]
    NotRegular {
        /// The file.
        path: PathBuf,
    },
    /// The file holds more than the caller accepts.
    #[error("{path} is larger than {max} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The bound.
        max: usize,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Opens `rel` (relative, no symlinks anywhere in it) beneath `dir`, and checks it is a
/// regular file.
fn open(dir: &Path, rel: &str, flags: OFlags, mode: Mode) -> Result<OwnedFd, Error> {
    let path = dir.join(rel);
    let dirfd = rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io("open directory", dir)(e.into()))?;
    let fd = rustix::fs::openat2(
        &dirfd,
        rel,
        flags | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        mode,
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| io("open", &path)(e.into()))?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| io("stat", &path)(e.into()))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(Error::NotRegular { path });
    }
    Ok(fd)
}

/// Writes `bytes` to `rel` beneath `dir` (created or truncated, mode 0644).
pub(crate) fn write(dir: &Path, rel: &str, bytes: &[u8]) -> Result<(), Error> {
    let fd = open(
        dir,
        rel,
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC,
        Mode::from_raw_mode(0o644),
    )?;
    std::fs::File::from(fd)
        .write_all(bytes)
        .map_err(io("write", &dir.join(rel)))
}

/// The content of `rel` beneath `dir`, at most `max` bytes; `None` when it does not exist.
pub(crate) fn read(dir: &Path, rel: &str, max: usize) -> Result<Option<Vec<u8>>, Error> {
    let fd = match open(dir, rel, OFlags::RDONLY, Mode::empty()) {
        Ok(fd) => fd,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    std::fs::File::from(fd)
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(io("read", &dir.join(rel)))?;
    if out.len() > max {
        return Err(Error::TooLarge {
            path: dir.join(rel),
            max,
        });
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planted_links_and_fifos_are_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("control");
        std::fs::create_dir(&dir).expect("mkdir");
        let canary = tmp.path().join("canary");
        std::fs::write(&canary, "host file").expect("canary");
        std::os::unix::fs::symlink(&canary, dir.join("link")).expect("link");
        std::os::unix::fs::symlink(tmp.path(), dir.join("up")).expect("dir link");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join("fifo"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .expect("fifo");

        assert!(write(&dir, "link", b"x").is_err());
        assert!(write(&dir, "up/canary", b"x").is_err());
        assert!(write(&dir, "../canary", b"x").is_err());
        assert!(read(&dir, "link", 10).is_err());
        assert!(matches!(
            read(&dir, "fifo", 10),
            Err(Error::NotRegular { .. })
        ));
        assert!(write(&dir, "fifo", b"x").is_err());
        assert_eq!(
            std::fs::read_to_string(&canary).expect("canary"),
            "host file"
        );

        write(&dir, "ok", b"12345").expect("plain write");
        assert_eq!(read(&dir, "ok", 5).expect("read"), Some(b"12345".to_vec()));
        assert!(matches!(read(&dir, "ok", 4), Err(Error::TooLarge { .. })));
        assert_eq!(read(&dir, "missing", 4).expect("missing"), None);
    }
}
