//! The gitArchive stage content: a mapping's files as a tar stream placed under `to`.
//!
//! Entries, in path order: the `to` directory itself (unless `to` is `/` or `add` is a single
//! file), then each file preceded by any parent directory not yet written. Directories are
//! `0755`, files `0644`/`0755`, symlinks `0777` with their target; every entry gets the
//! caller's numeric owner and the snapshot's [`mtime`](Snapshot::mtime). Ancestors of `to`
//! (`usr`, `usr/src` for `/usr/src/app`) are not written: the extractor creates them as it
//! does for any missing parent. Long names and link targets use GNU extensions.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use crate::{Error, FileEntry, FileMode, PathFilter, Snapshot};

/// Numeric owner of archive entries (werf's `owner`/`group`, resolved by the caller).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owner {
    /// User id; 0 by default.
    pub uid: u64,
    /// Group id; 0 by default.
    pub gid: u64,
}

/// What an archive contained.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveStats {
    /// Regular and executable files.
    pub files: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Directories.
    pub dirs: u64,
    /// Bytes of file content (not counting tar headers and padding).
    pub content_bytes: u64,
}

impl Snapshot<'_> {
    /// Writes the files of `filter`'s mapping as a tar stream into `out`, under the image path
    /// `to`. Blobs are read one at a time; see the module docs for the entry layout.
    pub fn write_archive(
        &self,
        filter: &PathFilter,
        to: &str,
        owner: Owner,
        out: &mut dyn Write,
    ) -> Result<ArchiveStats, Error> {
        let files = self.files(filter)?;
        self.write_entries(&files, to, owner, out)
    }

    /// Writes `files` (entries of this snapshot, as [`Snapshot::files`] or a [`ChangeSet`]
    /// gives them) as a tar stream under the image path `to`, with the same layout as
    /// [`Snapshot::write_archive`]: how a patch carries its new and changed files.
    ///
    /// [`ChangeSet`]: crate::ChangeSet
    pub fn write_entries(
        &self,
        files: &[FileEntry],
        to: &str,
        owner: Owner,
        out: &mut dyn Write,
    ) -> Result<ArchiveStats, Error> {
        let base = to.trim_matches('/');
        let mut tar = tar::Builder::new(out);
        let mut stats = ArchiveStats::default();
        let mut dirs: HashSet<String> = HashSet::new();
        let mtime = self.mtime();

        let single_file = files.len() == 1 && files[0].path.is_empty();
        if !base.is_empty() && !single_file {
            write_dir(&mut tar, base, owner, mtime, &mut stats)?;
            dirs.insert(base.to_string());
        }
        for file in files {
            let name = match (base.is_empty(), file.path.is_empty()) {
                (_, true) => base.to_string(),
                (true, false) => file.path.clone(),
                (false, false) => format!("{base}/{}", file.path),
            };
            if name.is_empty() {
                return Err(Error::Archive {
                    path: file.repo_path.clone(),
                    source: io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "a single-file `add` needs a file path in `to`, not `/`",
                    ),
                });
            }
            // Parent directories below `to`, outermost first.
            let rel_start = if base.is_empty() { 0 } else { base.len() + 1 };
            for (i, b) in name.bytes().enumerate().skip(rel_start) {
                if b == b'/' && dirs.insert(name[..i].to_string()) {
                    write_dir(&mut tar, &name[..i], owner, mtime, &mut stats)?;
                }
            }
            self.write_file(&mut tar, &name, file, owner, mtime, &mut stats)?;
        }
        tar.finish().map_err(|source| Error::Archive {
            path: "(end of archive)".into(),
            source,
        })?;
        Ok(stats)
    }

    fn write_file(
        &self,
        tar: &mut tar::Builder<&mut dyn Write>,
        name: &str,
        file: &FileEntry,
        owner: Owner,
        mtime: u64,
        stats: &mut ArchiveStats,
    ) -> Result<(), Error> {
        let archive_err = |source| Error::Archive {
            path: name.to_string(),
            source,
        };
        let mut header = header(owner, mtime, file.mode.permissions());
        if file.mode == FileMode::Symlink {
            let target = self.read_file(file)?;
            let target = String::from_utf8(target).map_err(|_| Error::NonUtf8Path {
                repo: self.repo.name.clone(),
                path: format!("target of symlink {}", file.repo_path),
            })?;
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            tar.append_link(&mut header, name, &target)
                .map_err(archive_err)?;
            stats.symlinks += 1;
            return Ok(());
        }
        header.set_entry_type(tar::EntryType::Regular);
        match file.size {
            // Worktree file: stream it, and make sure it still has the size we listed.
            Some(size) => {
                let reader = self.open_file(file)?;
                let mut exact = Exact {
                    inner: reader,
                    left: size,
                };
                header.set_size(size);
                tar.append_data(&mut header, name, &mut exact)
                    .map_err(archive_err)?;
                let mut probe = [0u8; 1];
                let grew = exact.inner.read(&mut probe).unwrap_or(0) > 0;
                if exact.left != 0 || grew {
                    return Err(Error::FileChanged {
                        path: PathBuf::from(&file.repo_path),
                        expected: size,
                        actual: size - exact.left + u64::from(grew),
                    });
                }
                stats.content_bytes += size;
            }
            // Commit blob: one object in memory at a time.
            None => {
                let data = self.read_file(file)?;
                header.set_size(data.len() as u64);
                tar.append_data(&mut header, name, data.as_slice())
                    .map_err(archive_err)?;
                stats.content_bytes += data.len() as u64;
            }
        }
        stats.files += 1;
        Ok(())
    }
}

fn header(owner: Owner, mtime: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(mode);
    h.set_uid(owner.uid);
    h.set_gid(owner.gid);
    h.set_mtime(mtime);
    h
}

fn write_dir(
    tar: &mut tar::Builder<&mut dyn Write>,
    path: &str,
    owner: Owner,
    mtime: u64,
    stats: &mut ArchiveStats,
) -> Result<(), Error> {
    let mut h = header(owner, mtime, 0o755);
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    let name = format!("{path}/");
    tar.append_data(&mut h, &name, io::empty())
        .map_err(|source| Error::Archive { path: name, source })?;
    stats.dirs += 1;
    Ok(())
}

/// Reads at most `left` bytes and counts down, so a grown file cannot corrupt the stream.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if max == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}
