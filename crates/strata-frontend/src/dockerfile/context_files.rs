//! The build context, read the one safe way: the walker that lists it, the pinned
//! [`Snapshot`] of the files a plan copies, and the reader both the plan (the `COPY`
//! checksum) and the worker (the bytes that go into the layer) use.
//!
//! Every entry is opened with `openat2` relative to the context directory with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` ([openat2(2)](https://man7.org/linux/man-pages/man2/openat2.2.html)):
//! the plan resolved the context's own links already, so a link anywhere on the way now
//! means the context changed under the build (a file swapped for a link to a host file), and
//! the open fails instead of reading outside. A link that *is* the entry is read as a link.
//!
//! The pin: the lowering copies each context entry a `COPY`/`ADD` names into a [`Snapshot`]
//! (a directory of the build the caller owns), once, and then hashes the *copy*; the plan's
//! [`strata_plan::CopyFiles`] names the copy, and the worker makes the layer from it. A file
//! edited after planning therefore never reaches the layer: the digest and the layer are of
//! the same bytes. [`CopyChecksum`] is computed the same way on both sides, so the worker can
//! still check that nothing touched the snapshot.
//!
//! A file's copy is a hard link to a [`Pins`] entry when the build has a pin store: a copy of
//! that content, mode and time made by an earlier build and kept in the store, named by them.
//! Its name is the hash of the bytes, so the link holds exactly what was read and hashed, and
//! a build whose context did not change creates no file: on ext4 every file created and
//! removed again was the largest part of a fully cached build's time.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{File, FileTimes, Metadata};
use std::io::{self, Seek, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// The build context, opened once.
pub struct ContextRoot {
    fd: OwnedFd,
    path: PathBuf,
}

/// One entry of the context, opened.
pub enum ContextEntry {
    /// A regular file, open for reading.
    File(File, Metadata),
    /// A directory.
    Dir(Metadata),
    /// A symlink and its target (copied as a link, never followed).
    Link(PathBuf, Metadata),
}

impl ContextEntry {
    /// The entry's metadata (of the link itself for a link).
    pub fn metadata(&self) -> &Metadata {
        match self {
            ContextEntry::File(_, m) | ContextEntry::Dir(m) | ContextEntry::Link(_, m) => m,
        }
    }
}

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_SYMLINKS);

impl ContextRoot {
    /// Opens the context directory `path`.
    pub fn open(path: &Path) -> io::Result<ContextRoot> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(ContextRoot {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Opens `source` (a path below the context, as the plan names it) without following any
    /// link on the way; anything but a file, directory or link is refused.
    pub fn entry(&self, source: &Path) -> io::Result<ContextEntry> {
        let rel = source.strip_prefix(&self.path).map_err(|_| {
            io::Error::other(format!("{} is not in the build context", source.display()))
        })?;
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        // A link swapped for a file between the two opens below is opened again, a few times,
        // then named as a context that keeps changing.
        for _ in 0..SWAP_RETRIES {
            if let Some(entry) = self.try_entry(rel, source)? {
                return Ok(entry);
            }
        }
        Err(io::Error::other(format!(
            "{} changed while the build was copying it (a link and a file in turns); build again once it is stable",
            source.display()
        )))
    }

    /// One attempt of [`ContextRoot::entry`]: `None` when the entry read as a link is no
    /// longer one.
    fn try_entry(&self, rel: &Path, source: &Path) -> io::Result<Option<ContextEntry>> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        match rustix::fs::openat2(
            &self.fd,
            rel,
            flags | OFlags::NOCTTY,
            Mode::empty(),
            RESOLVE,
        ) {
            Ok(fd) => {
                let file = File::from(fd);
                let meta = file.metadata()?;
                if meta.is_file() {
                    Ok(Some(ContextEntry::File(file, meta)))
                } else if meta.is_dir() {
                    Ok(Some(ContextEntry::Dir(meta)))
                } else {
                    Err(io::Error::other(format!(
                        "{} is not a regular file, directory or symlink",
                        source.display()
                    )))
                }
            }
            // The entry itself may be a link (its parents may not): read it as one.
            Err(rustix::io::Errno::LOOP) => {
                let fd = rustix::fs::openat2(
                    &self.fd,
                    rel,
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                    RESOLVE,
                )
                .map_err(|e| with_path(e.into(), source))?;
                let target = match rustix::fs::readlinkat(&fd, "", Vec::new()) {
                    Ok(target) => target,
                    // readlinkat of an empty path on anything but a link (swapped in since
                    // the first open) is ENOENT.
                    Err(rustix::io::Errno::NOENT) => return Ok(None),
                    Err(e) => return Err(with_path(e.into(), source)),
                };
                let meta = File::from(fd).metadata()?;
                let target: std::ffi::OsString =
                    std::os::unix::ffi::OsStringExt::from_vec(target.into_bytes());
                Ok(Some(ContextEntry::Link(PathBuf::from(target), meta)))
            }
            Err(e) => Err(with_path(e.into(), source)),
        }
    }
}

/// An I/O error while reading the context, naming the path it happened at.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct ContextError {
    /// The file or directory.
    pub path: PathBuf,
    /// What went wrong.
    #[source]
    pub source: io::Error,
}

impl ContextError {
    fn at(path: &Path) -> impl FnOnce(io::Error) -> ContextError + '_ {
        move |source| ContextError {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The one walker of the context: calls `visit(rel, is_dir)` for every entry below
/// `context/from` (`rel` relative to `context`), each directory's entries in name order, and
/// goes into a directory when `visit` returns true. Links are entries, never followed. Any
/// error reading a directory or an entry's type ends the walk, naming that path.
pub fn walk(
    context: &Path,
    from: &Path,
    visit: &mut dyn FnMut(&Path, bool) -> bool,
) -> Result<(), ContextError> {
    let mut stack = vec![from.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let host = context.join(&dir);
        let mut names = std::fs::read_dir(&host)
            .and_then(|read| read.collect::<io::Result<Vec<_>>>())
            .map_err(ContextError::at(&host))?;
        names.sort_by_key(|e| e.file_name());
        for entry in names {
            let rel = dir.join(entry.file_name());
            let is_dir = entry
                .file_type()
                .map_err(ContextError::at(&entry.path()))?
                .is_dir();
            if visit(&rel, is_dir) && is_dir {
                stack.push(rel);
            }
        }
    }
    Ok(())
}

/// Pinned copies of the context entries a plan copies (see the module docs): a directory
/// mirroring the context's paths, each entry copied once with its mode and modification time,
/// read beneath the context and written beneath the snapshot, links never followed on either
/// side.
pub struct Snapshot {
    context: ContextRoot,
    dir: PathBuf,
    fd: OwnedFd,
    pins: Option<Pins>,
    taken: HashSet<PathBuf>,
    /// The directory of the snapshot the last entry was written into (relative, and opened):
    /// entries come directory by directory, so the next one is most often written there too.
    last_parent: Option<(PathBuf, OwnedFd)>,
    /// Directories taken and their times, set by [`Snapshot::finish`] once nothing is created
    /// in them any more.
    dir_times: Vec<(PathBuf, SystemTime)>,
}

impl Snapshot {
    /// A snapshot of the context `context` in a new directory below `dirs.build`, which the
    /// caller keeps (and removes) for as long as the plan is used; its files are links to
    /// `dirs.pins` when given.
    pub fn new(context: &Path, dirs: &SnapshotDirs) -> Result<Snapshot, ContextError> {
        let parent = &dirs.build;
        let pins = match &dirs.pins {
            Some(dir) => Some(Pins::open(dir).map_err(ContextError::at(dir))?),
            None => None,
        };
        let dir = tempfile::Builder::new()
            .prefix("context-")
            .disable_cleanup(true)
            .tempdir_in(parent)
            .map_err(ContextError::at(parent))?
            .path()
            .to_path_buf();
        let fd = rustix::fs::open(
            &dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ContextError::at(&dir)(e.into()))?;
        Ok(Snapshot {
            context: ContextRoot::open(context).map_err(ContextError::at(context))?,
            dir,
            fd,
            pins,
            taken: HashSet::new(),
            last_parent: None,
            dir_times: Vec::new(),
        })
    }

    /// The snapshot's directory: what [`strata_plan::CopyFiles::root`] names.
    pub fn root(&self) -> &Path {
        &self.dir
    }

    /// Copies the context entry `rel` (relative to the context) into the snapshot, unless it
    /// is there already, and returns the copy's path.
    pub fn take(&mut self, rel: &Path) -> Result<PathBuf, ContextError> {
        let copy = self.dir.join(rel);
        if self.taken.contains(rel) {
            return Ok(copy);
        }
        let source = self.context.path.join(rel);
        let entry = self
            .context
            .entry(&source)
            .map_err(ContextError::at(&source))?;
        self.write(rel, entry).map_err(ContextError::at(&copy))?;
        self.taken.insert(rel.to_path_buf());
        Ok(copy)
    }

    fn write(&mut self, rel: &Path, entry: ContextEntry) -> io::Result<()> {
        let meta = entry.metadata();
        let mode = meta.mode() & 0o7777;
        let mtime = meta.modified()?;
        let link_time = rustix::fs::Timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec() as _,
        };
        let Some(name) = rel.file_name() else {
            // The context itself (`COPY . /`): the snapshot's root takes its mode.
            let root = self.open_dir(Path::new("."))?;
            root.set_permissions(std::fs::Permissions::from_mode(mode))?;
            self.dir_times.push((PathBuf::new(), mtime));
            return Ok(());
        };
        let parent = self.parent(rel)?;
        let written = self.write_in(&parent, rel, name, entry, (mode, mtime, link_time));
        self.last_parent = Some((parent_of(rel).to_path_buf(), parent));
        written
    }

    /// Writes `entry` as `name` in the snapshot's directory `parent` (that of `rel`), with
    /// its mode and times.
    fn write_in(
        &mut self,
        parent: &OwnedFd,
        rel: &Path,
        name: &OsStr,
        entry: ContextEntry,
        (mode, mtime, link_time): (u32, SystemTime, rustix::fs::Timespec),
    ) -> io::Result<()> {
        match entry {
            ContextEntry::File(mut source, meta) => {
                if let Some(pins) = &self.pins {
                    match pins.link(&mut source, &meta, parent, name) {
                        // The store's pins on another file system than its scratch dirs.
                        Err(e)
                            if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) =>
                        {
                            source.rewind()?;
                        }
                        linked => return linked,
                    }
                }
                let fd = rustix::fs::openat(
                    parent,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )?;
                let mut copy = File::from(fd);
                io::copy(&mut source, &mut copy)?;
                copy.set_permissions(std::fs::Permissions::from_mode(mode))?;
                copy.set_times(FileTimes::new().set_modified(mtime))?;
            }
            ContextEntry::Dir(_) => {
                // It may be there as the parent of an entry taken before.
                match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                self.open_dir(rel)?
                    .set_permissions(std::fs::Permissions::from_mode(mode))?;
                self.dir_times.push((rel.to_path_buf(), mtime));
            }
            ContextEntry::Link(target, _) => {
                rustix::fs::symlinkat(&target, parent, name)?;
                let times = rustix::fs::Timestamps {
                    last_access: link_time,
                    last_modification: link_time,
                };
                rustix::fs::utimensat(parent, name, &times, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)?;
            }
        }
        Ok(())
    }

    /// The directory of the snapshot that holds `rel`, made as needed (mode 0755, as the
    /// parents of a copied entry have in the image); never through a link. The last one
    /// written into is reused.
    fn parent(&mut self, rel: &Path) -> io::Result<OwnedFd> {
        if let Some((dir, fd)) = self.last_parent.take()
            && dir == parent_of(rel)
        {
            return Ok(fd);
        }
        let mut fd = rustix::fs::openat(
            &self.fd,
            ".",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        for part in rel.parent().into_iter().flat_map(Path::components) {
            let Component::Normal(part) = part else {
                return Err(io::Error::other("not a plain relative path"));
            };
            match rustix::fs::mkdirat(&fd, part, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            fd = rustix::fs::openat2(
                &fd,
                part,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                RESOLVE,
            )?;
        }
        Ok(fd)
    }

    /// A directory of the snapshot, opened for changing its attributes.
    fn open_dir(&self, rel: &Path) -> io::Result<File> {
        let fd = rustix::fs::openat2(
            &self.fd,
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        )?;
        Ok(File::from(fd))
    }

    /// Gives the directories taken their modification times, now that nothing is created in
    /// them any more.
    pub fn finish(self) -> Result<(), ContextError> {
        for (rel, mtime) in &self.dir_times {
            let path = self.dir.join(rel);
            let rel = if rel.as_os_str().is_empty() {
                Path::new(".")
            } else {
                rel
            };
            self.open_dir(rel)
                .and_then(|dir| dir.set_times(FileTimes::new().set_modified(*mtime)))
                .map_err(ContextError::at(&path))?;
        }
        Ok(())
    }
}

/// The directory `rel` is in (empty for a top-level entry).
fn parent_of(rel: &Path) -> &Path {
    rel.parent().unwrap_or(Path::new(""))
}

/// Where a [`Snapshot`] is made.
#[derive(Clone, Debug)]
pub struct SnapshotDirs {
    /// A directory of this build, kept while the plan is used: the snapshot's tree goes below.
    pub build: PathBuf,
    /// The store's [`Pins`] directory, kept between builds; none: every file is copied.
    pub pins: Option<PathBuf>,
}

/// Copies of context files kept between builds, each named by its content's SHA-256, mode
/// and modification time, so that a snapshot's file is a hard link to one (see the module
/// docs). Only strata writes here, and an entry is never changed once named. A pin no
/// snapshot links to (link count 1) is garbage: the store's gc removes it.
pub struct Pins {
    dir: PathBuf,
    fd: OwnedFd,
}

/// How often [`Pins::link`] makes a pin again that a concurrent gc removed before it was linked.
const PIN_RETRIES: usize = 4;

impl Pins {
    /// The pins in `dir`, made when missing.
    pub fn open(dir: &Path) -> io::Result<Pins> {
        std::fs::create_dir_all(dir)?;
        let fd = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Pins {
            dir: dir.to_path_buf(),
            fd,
        })
    }

    /// Links a pin of `source`'s bytes (with `meta`'s mode and time) as `name` in `parent`,
    /// making the pin when there is none.
    fn link(
        &self,
        source: &mut File,
        meta: &Metadata,
        parent: &OwnedFd,
        name: &OsStr,
    ) -> io::Result<()> {
        let mut hasher = strata_digest::HashingWriter::new(io::sink());
        io::copy(source, &mut hasher)?;
        let (_, digest, len) = hasher.finish();
        let mut key = pin_name(&digest, len, meta);
        for _ in 0..PIN_RETRIES {
            // A pin cut short by a crash (its size not what its name says) is made again.
            let whole = rustix::fs::statat(&self.fd, &key, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| st.st_size as u64 == len);
            if whole {
                match rustix::fs::linkat(&self.fd, &key, parent, name, rustix::fs::AtFlags::empty())
                {
                    Ok(()) => return Ok(()),
                    // Removed by a gc since: made again below.
                    Err(rustix::io::Errno::NOENT) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            key = self.make(source, meta)?;
        }
        Err(io::Error::other(format!(
            "{}: a pin kept disappearing while this build linked it (a gc running beside it); build again",
            self.dir.join(&key).display()
        )))
    }

    /// Copies `source` (from its start) into a new pin with `meta`'s mode and time and
    /// returns its name: of the bytes copied, which are what the snapshot then holds even if
    /// the context file changed since it was first read.
    fn make(&self, source: &mut File, meta: &Metadata) -> io::Result<String> {
        source.rewind()?;
        let mut temp = tempfile::Builder::new()
            .prefix(".new-")
            .tempfile_in(&self.dir)?;
        let mut hasher = strata_digest::HashingWriter::new(temp.as_file_mut());
        io::copy(source, &mut hasher)?;
        let (_, digest, len) = hasher.finish();
        let file = temp.as_file();
        file.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        file.set_times(FileTimes::new().set_modified(meta.modified()?))?;
        let key = pin_name(&digest, len, meta);
        temp.persist(self.dir.join(&key)).map_err(|e| e.error)?;
        Ok(key)
    }
}

/// A pin's name: its content's hash and size, mode, and modification time.
fn pin_name(digest: &strata_digest::Digest, len: u64, meta: &Metadata) -> String {
    format!(
        "{}-{len}-{:o}-{}.{:09}",
        digest.hex(),
        meta.mode() & 0o7777,
        meta.mtime(),
        meta.mtime_nsec()
    )
}

/// How often [`ContextRoot::entry`] opens an entry again that turned from a link into a file.
const SWAP_RETRIES: usize = 8;

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// The checksum of copied entries (the `COPY` digest input): per entry its target, mode and
/// link target or content.
pub struct CopyChecksum(strata_digest::HashingWriter<io::Sink>);

impl Default for CopyChecksum {
    fn default() -> Self {
        CopyChecksum(strata_digest::HashingWriter::new(io::sink()))
    }
}

impl CopyChecksum {
    /// Adds a file written inline (a heredoc).
    pub fn inline(&mut self, target: &str, text: &str) {
        self.bytes(target.as_bytes());
        self.bytes(&[0]);
        self.bytes(text.as_bytes());
    }

    /// Adds an entry at `target` that is a hardlink of the entry at index `of` of the copy.
    pub fn hardlink(&mut self, target: &str, of: usize) {
        self.bytes(target.as_bytes());
        self.bytes(format!("\0hardlink of {of}\0").as_bytes());
    }

    /// Starts an entry at `target`; a file's content follows through [`CopyChecksum::content`]
    /// (a link's target is added here), then [`CopyChecksum::end`].
    pub fn start(&mut self, target: &str, entry: &ContextEntry) {
        self.bytes(target.as_bytes());
        self.bytes(&[0]);
        self.bytes(format!("{:o}", entry.metadata().mode()).as_bytes());
        if let ContextEntry::Link(link, _) = entry {
            self.bytes(link.as_os_str().as_encoded_bytes());
        }
    }

    /// Where a file's content goes.
    pub fn content(&mut self) -> &mut impl Write {
        &mut self.0
    }

    /// Ends an entry.
    pub fn end(&mut self) {
        self.bytes(&[0]);
    }

    /// The checksum, as hex.
    pub fn finish(self) -> String {
        self.0.finish().1.hex()
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.0
            .write_all(bytes)
            .expect("writing to a hasher of io::sink never fails");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// Snapshot dirs without pins: every file copied.
    fn copies_in(parent: &Path) -> SnapshotDirs {
        SnapshotDirs {
            build: parent.to_path_buf(),
            pins: None,
        }
    }

    fn mtime(path: &Path) -> SystemTime {
        std::fs::symlink_metadata(path).unwrap().modified().unwrap()
    }

    #[test]
    fn a_snapshot_copies_entries_with_their_mode_and_time_and_keeps_links_as_links() {
        let context = tempfile::tempdir().unwrap();
        let c = context.path();
        std::fs::create_dir_all(c.join("d/e")).unwrap();
        std::fs::write(c.join("d/e/f"), "bytes").unwrap();
        std::fs::set_permissions(c.join("d/e/f"), std::fs::Permissions::from_mode(0o4751)).unwrap();
        std::fs::set_permissions(c.join("d"), std::fs::Permissions::from_mode(0o750)).unwrap();
        symlink("/etc/passwd", c.join("l")).unwrap();
        let parent = tempfile::tempdir().unwrap();
        let mut snapshot = Snapshot::new(c, &copies_in(parent.path())).unwrap();
        let file = snapshot.take(Path::new("d/e/f")).unwrap();
        let dir = snapshot.take(Path::new("d")).unwrap();
        let link = snapshot.take(Path::new("l")).unwrap();
        let root = snapshot.root().to_path_buf();
        snapshot.finish().unwrap();
        // The source changes after the snapshot: the copy does not.
        std::fs::write(c.join("d/e/f"), "other").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "bytes");
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().mode();
        assert_eq!(mode(&file), 0o104751);
        assert_eq!(mode(&dir), 0o40750);
        assert_eq!(mtime(&dir), mtime(&c.join("d")));
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("/etc/passwd"));
        assert_eq!(mtime(&link), mtime(&c.join("l")));
        assert_eq!(file, root.join("d/e/f"));
    }

    #[test]
    fn snapshot_files_are_links_to_pins_made_once_per_content() {
        let context = tempfile::tempdir().unwrap();
        let c = context.path();
        std::fs::write(c.join("f"), "bytes").unwrap();
        std::fs::set_permissions(c.join("f"), std::fs::Permissions::from_mode(0o751)).unwrap();
        let store = tempfile::tempdir().unwrap();
        let dirs = SnapshotDirs {
            build: store.path().join("tmp"),
            pins: Some(store.path().join("pins")),
        };
        std::fs::create_dir(&dirs.build).unwrap();
        let pins = dirs.pins.clone().unwrap();
        let pin_count = || std::fs::read_dir(&pins).unwrap().count();

        let mut first = Snapshot::new(c, &dirs).unwrap();
        let copy = first.take(Path::new("f")).unwrap();
        assert_eq!(pin_count(), 1);
        let meta = std::fs::metadata(&copy).unwrap();
        assert_eq!((meta.nlink(), meta.mode() & 0o7777), (2, 0o751));
        assert_eq!(meta.modified().unwrap(), mtime(&c.join("f")));
        // Another build of the same file links the same pin: no file is made.
        let mut second = Snapshot::new(c, &dirs).unwrap();
        let again = second.take(Path::new("f")).unwrap();
        assert_eq!(pin_count(), 1);
        assert_eq!(std::fs::metadata(&again).unwrap().ino(), meta.ino());
        let links = |path: &Path| std::fs::metadata(path).unwrap().nlink();
        assert_eq!(links(&copy), 3, "both link it");

        // Edited in place after the snapshots: their copies keep what was read.
        std::fs::write(c.join("f"), "other bytes").unwrap();
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), "bytes");
        let mut third = Snapshot::new(c, &dirs).unwrap();
        let edited = third.take(Path::new("f")).unwrap();
        assert_eq!(std::fs::read_to_string(&edited).unwrap(), "other bytes");
        assert_eq!(pin_count(), 2);

        // A pin removed (by a gc: no snapshot linked it) is made again.
        for path in [&copy, &again] {
            std::fs::remove_file(path).unwrap();
        }
        let unused: Vec<_> = std::fs::read_dir(&pins)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| links(p) == 1)
            .collect();
        assert_eq!(unused.len(), 1);
        std::fs::remove_file(&unused[0]).unwrap();
        let mut fourth = Snapshot::new(c, &dirs).unwrap();
        std::fs::write(c.join("f"), "bytes").unwrap();
        File::options()
            .write(true)
            .open(c.join("f"))
            .and_then(|f| f.set_times(FileTimes::new().set_modified(meta.modified().unwrap())))
            .unwrap();
        let back = fourth.take(Path::new("f")).unwrap();
        assert_eq!(std::fs::read_to_string(&back).unwrap(), "bytes");
        drop((first, second, third, fourth));
    }

    #[test]
    fn a_snapshot_never_writes_through_a_link_it_copied() {
        let context = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let c = context.path();
        symlink(outside.path(), c.join("a")).unwrap();
        let parent = tempfile::tempdir().unwrap();
        let mut snapshot = Snapshot::new(c, &copies_in(parent.path())).unwrap();
        snapshot.take(Path::new("a")).unwrap();
        // The context changes: `a` is a directory now, and a file below it is copied.
        std::fs::remove_file(c.join("a")).unwrap();
        std::fs::create_dir(c.join("a")).unwrap();
        std::fs::write(c.join("a/f"), "x").unwrap();
        let err = snapshot.take(Path::new("a/f")).unwrap_err();
        assert!(
            err.path.starts_with(snapshot.root()),
            "the error names the copy: {err}"
        );
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn the_walker_names_the_path_it_cannot_read() {
        let context = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(context.path().join("d/sub")).unwrap();
        std::fs::write(context.path().join("d/x"), "").unwrap();
        let mut seen = Vec::new();
        walk(context.path(), Path::new(""), &mut |p, is_dir| {
            seen.push((p.to_path_buf(), is_dir));
            true
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                (PathBuf::from("d"), true),
                (PathBuf::from("d/sub"), true),
                (PathBuf::from("d/x"), false),
            ]
        );
        let err = walk(context.path(), Path::new("gone"), &mut |_, _| true).unwrap_err();
        assert_eq!(err.path, context.path().join("gone"));
        assert!(err.to_string().contains("gone"), "{err}");
    }
}
