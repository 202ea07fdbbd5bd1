//! Tar → directory, treating the tar as hostile: the one tar applier of strata.
//!
//! Two callers, two [`Mode`]s, one set of protections (below):
//! - [`Mode::Layer`]: an OCI layer into an empty snapshot dir, in overlay form (whiteouts
//!   become 0/0 char devices and opaque xattrs); an entry replaces whatever is at its path.
//! - [`Mode::Files`]: a tar strata staged (git archives and patches, imports, `COPY`,
//!   `WORKDIR`) over a stage's root, as `tar -xp` run as root does: names are plain (a file
//!   named `.wh.x` is a file), and an existing directory — also through a symlink, as `/bin`
//!   is in a merged-/usr image — takes the entry's owner, mode and times and keeps its
//!   content, while a directory entry where a file (or a link to no directory) is fails.
//!   [`extract_archive`] applies an archive `ADD` extracts the same way into its destination,
//!   which is the root for its entries (moby's `chrootarchive.Untar`, as BuildKit's `ADD`
//!   does), and which an entry for the archive's root (`./`) leaves as it is.
//!
//! # Containment
//!
//! Every entry path is normalized first: empty and `.` components are dropped (so `./etc/x`
//! and `/etc/x` both mean `etc/x`), and a `..` component rejects the whole layer with an
//! error naming the entry. The parent dir is then opened with
//! `openat2(target_fd, parent, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`
//! ([openat2(2)](https://man7.org/linux/man-pages/man2/openat2.2.html)): symlinks the layer
//! created earlier are followed as if `target` were `/`, like a chroot, so `link -> /`
//! followed by `link/evil` writes `target/evil`. Missing parents are created one component
//! at a time (mode 0755), each resolved the same way. The last component is never followed:
//! it is created with `mkdirat`/`symlinkat`/`linkat`/`mknodat`/`openat(O_CREAT|O_EXCL|
//! O_NOFOLLOW)` relative to the parent fd, after unlinking whatever non-dir was there (an
//! existing dir is kept for a dir entry, removed if empty otherwise, else an error).
//! Hardlink targets resolve the same way, must exist, and must not be dirs.
//!
//! # Metadata
//!
//! Order per entry: data → `chown` (which clears setuid bits and `security.capability`) →
//! `chmod` → xattrs → times. Dir mtimes are set after the whole stream, since creating
//! children changes them. `trusted.overlay.*` and `user.overlay.*` xattrs from the layer are
//! dropped: only `.wh..wh..opq` may make a dir opaque (written in the namespace this process's
//! overlays read, [`whiteout::Xattrs`]). Times are whole seconds unless a PAX `mtime` record
//! gives more; atime is set to mtime.
//!
//! # In a user namespace
//!
//! Rootless strata cannot make device nodes (the kernel allows only whiteouts there): a char
//! or block device entry is skipped, as containerd's and moby's appliers do in a user
//! namespace. The layer's diff id is unchanged; the snapshot lacks the node. Owners must fall
//! in the namespace's id map (the user's `/etc/subuid` and `/etc/subgid` ranges):
//! [`Error::Unmapped`] otherwise.
//!
//! # Digest
//!
//! The diff id is the sha256 of the whole decompressed stream, including the end-of-archive
//! blocks and anything after them (the stream is drained after the last entry).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode as FileMode, OFlags, ResolveFlags, Timespec, Timestamps};
use rustix::io::Errno;
use strata_digest::HashingReader;

use crate::LayerStats;
use crate::bounded;
use crate::compression::Decoder;
use crate::whiteout::{self, OciName};

/// Errors from unpacking a layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The target dir could not be opened.
    #[error("opening the unpack target {path} failed: {source}")]
    Target {
        /// The target dir.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Reading or decompressing the layer stream failed (a truncated or corrupt blob).
    #[error("reading the layer stream failed{}: {source}", .entry.as_ref().map(|e| format!(" at entry `{e}`")).unwrap_or_default())]
    Read {
        /// The entry being read, if any.
        entry: Option<String>,
        /// The underlying error.
        source: io::Error,
    },
    /// Setting up the decompressor failed.
    #[error(transparent)]
    Compression(#[from] crate::compression::Error),
    /// The layer has a record or field over its limit (see [`crate::bounded`]).
    #[error("refusing the layer: {source}")]
    Limit {
        /// Which limit, where.
        #[source]
        source: crate::bounded::Error,
    },
    /// The entry would escape the target or is otherwise refused.
    #[error("refusing tar entry `{entry}`: {reason}")]
    Unsafe {
        /// The entry path as written in the tar.
        entry: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A parent of the entry is a file (or a link to one), so the entry cannot be created.
    #[error("tar entry `{entry}` cannot be created: {path} is not a directory")]
    NotADirectory {
        /// The entry path as written in the tar.
        entry: String,
        /// The parent in the target that is not a directory.
        path: PathBuf,
    },
    /// The entry has a tar type this crate does not unpack.
    #[error("tar entry `{entry}` has unsupported tar type `{}`", *.kind as char)]
    Unsupported {
        /// The entry path as written in the tar.
        entry: String,
        /// The tar type flag.
        kind: u8,
    },
    /// In a user namespace, the entry's owner is outside the ids it maps.
    #[error(
        "tar entry `{entry}` is owned by {uid}:{gid}, which this rootless user namespace does \
         not map; give the user a subordinate range that covers it in /etc/subuid and \
         /etc/subgid, or run strata as root"
    )]
    Unmapped {
        /// The entry path as written in the tar.
        entry: String,
        /// Its owner.
        uid: u32,
        /// Its group.
        gid: u32,
    },
    /// Creating the entry or setting its metadata failed.
    #[error("tar entry `{entry}`: {op} {path} failed: {source}")]
    Io {
        /// The entry path as written in the tar.
        entry: String,
        /// What was being done (`mkdirat`, `chown`, ...).
        op: &'static str,
        /// The file in the target.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

impl From<bounded::Error> for Error {
    fn from(e: bounded::Error) -> Error {
        match e {
            bounded::Error::Read { source } => Error::Read {
                entry: None,
                source,
            },
            limit => Error::Limit { source: limit },
        }
    }
}

/// Size of data copies and of the decompressed-stream buffer.
const BUF_SIZE: usize = 1 << 20;

/// Counts the compressed bytes consumed.
struct CountingReader<'a> {
    inner: &'a mut dyn Read,
    count: u64,
}

impl Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// What an entry does to what it finds; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// An OCI layer into an empty dir, in overlay form.
    Layer,
    /// Files over a root, as `tar -xp`: plain names, existing directories kept through links.
    Files,
}

impl Unpacker {
    fn new(target: &Path, mode: Mode) -> Result<Unpacker, Error> {
        let root = rustix::fs::open(
            target,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            FileMode::empty(),
        )
        .map_err(|e| Error::Target {
            path: target.to_path_buf(),
            source: e.into(),
        })?;
        Ok(Unpacker {
            target: target.to_path_buf(),
            mode,
            res: Resolver { root, cached: None },
            dirs: Vec::new(),
            buf: Vec::new(),
            entries: 0,
            keep_root: false,
        })
    }

    /// Applies every entry of the tar `stream` (read through [`bounded`]).
    fn apply_all(&mut self, stream: impl Read) -> Result<(), Error> {
        let mut archive = bounded::archive(stream);
        for entry in bounded::entries(&mut archive).map_err(Error::from)? {
            self.entry(&mut entry.map_err(Error::from)?)?;
        }
        Ok(())
    }
}

/// See [`crate::unpack_layer`].
pub fn unpack_layer(layer: &mut dyn Read, target: &Path) -> Result<LayerStats, Error> {
    let mut unpacker = Unpacker::new(target, Mode::Layer)?;
    let mut counting = CountingReader {
        inner: layer,
        count: 0,
    };
    let (_, decoder) = Decoder::new(&mut counting)?;
    let mut stream = BufReader::with_capacity(BUF_SIZE, HashingReader::new(decoder));
    unpacker.apply_all(&mut stream)?;
    // Hash everything after the end-of-archive blocks too, and let the decoder check its
    // trailer (gzip CRC, zstd checksum).
    io::copy(&mut stream, &mut io::sink()).map_err(|source| Error::Read {
        entry: None,
        source,
    })?;
    let (diff_id, uncompressed_size) = stream.into_inner().finish();
    unpacker.finish()?;
    Ok(LayerStats {
        diff_id,
        uncompressed_size,
        compressed_size: counting.count,
        entries: unpacker.entries,
    })
}

/// Applies the plain tar `tar` to the existing dir `target` in `mode`; returns the number of
/// entries. Directory times are set after the last entry.
pub fn apply_tar(tar: impl Read, target: &Path, mode: Mode) -> Result<u64, Error> {
    let mut unpacker = Unpacker::new(target, mode)?;
    unpacker.apply_all(BufReader::with_capacity(BUF_SIZE, tar))?;
    unpacker.finish()?;
    Ok(unpacker.entries)
}

/// Extracts the plain tar `tar` of an archive into the existing dir `target` as
/// [`Mode::Files`] does, `target` being the root its links resolve in; an entry for the root
/// itself changes nothing (see the module docs). Returns the number of entries.
pub fn extract_archive(tar: impl Read, target: &Path) -> Result<u64, Error> {
    let mut unpacker = Unpacker::new(target, Mode::Files)?;
    unpacker.keep_root = true;
    unpacker.apply_all(BufReader::with_capacity(BUF_SIZE, tar))?;
    unpacker.finish()?;
    Ok(unpacker.entries)
}

/// `entry` normalized: no empty or `.` components, no leading `/`; `None` if it has `..`.
pub(crate) fn normalize(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len());
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return None,
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    Some(out)
}

/// Splits a normalized path into (parent, last component).
fn split_last(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&[], rel),
    }
}

/// Opens dirs inside the target with chroot-like symlink resolution.
struct Resolver {
    root: OwnedFd,
    /// The last parent dir opened: entries mostly come grouped by dir. It can never go
    /// stale: only an entry whose parent is the cached dir's parent can remove it, and
    /// resolving that parent replaces the cache first.
    cached: Option<(Vec<u8>, OwnedFd)>,
}

fn os(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

impl Resolver {
    /// Opens the existing dir `rel` (normalized, non-empty), symlinks resolved in the root.
    fn lookup(&self, rel: &[u8], flags: OFlags) -> Result<OwnedFd, Errno> {
        rustix::fs::openat2(
            &self.root,
            os(rel),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | flags,
            FileMode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
    }

    /// The dir `rel`, created (with its missing parents, mode 0755) if needed.
    fn dir(&mut self, rel: &[u8]) -> Result<BorrowedFd<'_>, Errno> {
        if rel.is_empty() {
            return Ok(self.root.as_fd());
        }
        let hit = matches!(&self.cached, Some((key, _)) if key == rel);
        if !hit {
            let fd = match self.lookup(rel, OFlags::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => self.mkdir_p(rel)?,
                Err(e) => return Err(e),
            };
            self.cached = Some((rel.to_vec(), fd));
        }
        match &self.cached {
            Some((_, fd)) => Ok(fd.as_fd()),
            None => Err(Errno::NOENT), // filled just above
        }
    }

    fn mkdir_p(&self, rel: &[u8]) -> Result<OwnedFd, Errno> {
        let mut cur: Option<OwnedFd> = None;
        let mut end = 0;
        for comp in rel.split(|&b| b == b'/') {
            end += comp.len();
            let prefix = &rel[..end];
            end += 1;
            match self.lookup(prefix, OFlags::empty()) {
                Ok(fd) => cur = Some(fd),
                Err(Errno::NOENT) => {
                    let parent = cur.as_ref().map_or(self.root.as_fd(), |fd| fd.as_fd());
                    match rustix::fs::mkdirat(parent, os(comp), FileMode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e),
                    }
                    let fd = self.lookup(prefix, OFlags::empty())?;
                    // mkdirat's mode went through the umask.
                    rustix::fs::fchmod(&fd, FileMode::from_raw_mode(0o755))?;
                    cur = Some(fd);
                }
                Err(e) => return Err(e),
            }
        }
        cur.ok_or(Errno::INVAL)
    }
}

/// The parent dir of an entry (created if missing); a parent that is not a directory is named.
fn open_parent<'r>(
    res: &'r mut Resolver,
    parent: &[u8],
    ctx: &Ctx<'_>,
) -> Result<BorrowedFd<'r>, Error> {
    // Asked twice so that the error branch may look again (the second call hits the cache).
    if let Err(e) = res.dir(parent) {
        if e == Errno::NOTDIR {
            let mut end = 0;
            for comp in parent.split(|&b| b == b'/') {
                end += comp.len();
                if let Err(Errno::NOTDIR) = res.lookup(&parent[..end], OFlags::empty()) {
                    return Err(Error::NotADirectory {
                        entry: ctx.entry.to_string(),
                        path: ctx.target.join(os(&parent[..end])),
                    });
                }
                end += 1;
            }
        }
        return Err(ctx.io("open parent dir")(e));
    }
    res.dir(parent).map_err(ctx.io("open parent dir"))
}

/// Metadata of one tar entry.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    times: Timestamps,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

struct Unpacker {
    target: PathBuf,
    mode: Mode,
    res: Resolver,
    /// Dirs whose mtime is set at the end: (normalized path, times).
    dirs: Vec<(Vec<u8>, Timestamps)>,
    buf: Vec<u8>,
    entries: u64,
    /// The root is kept as it is: an entry for it is skipped ([`extract_archive`]).
    keep_root: bool,
}

/// Context for errors about one entry.
struct Ctx<'a> {
    entry: &'a str,
    target: &'a Path,
    rel: &'a [u8],
}

impl Ctx<'_> {
    fn io(&self, op: &'static str) -> impl FnOnce(Errno) -> Error + '_ {
        move |e| self.io_err(op, e.into())
    }
    fn io_err(&self, op: &'static str, source: io::Error) -> Error {
        Error::Io {
            entry: self.entry.to_string(),
            op,
            path: self.target.join(os(self.rel)),
            source,
        }
    }
    /// `chown` to the entry's owner failed: `EINVAL` in a user namespace means an id it
    /// does not map (chown(2)).
    fn chown(&self, meta: &Meta) -> impl FnOnce(Errno) -> Error + '_ {
        let (uid, gid) = (meta.uid, meta.gid);
        move |e| match e {
            Errno::INVAL if whiteout::Xattrs::of_this_process() == whiteout::Xattrs::User => {
                Error::Unmapped {
                    entry: self.entry.to_string(),
                    uid,
                    gid,
                }
            }
            e => self.io_err("chown", e.into()),
        }
    }
    fn refuse(&self, reason: &'static str) -> Error {
        Error::Unsafe {
            entry: self.entry.to_string(),
            reason,
        }
    }
}

fn read_err(entry: &str) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Read {
        entry: Some(entry.to_string()),
        source,
    }
}

fn owner(uid: u32, gid: u32) -> (Option<rustix::fs::Uid>, Option<rustix::fs::Gid>) {
    (
        Some(rustix::fs::Uid::from_raw_unchecked(uid)),
        Some(rustix::fs::Gid::from_raw_unchecked(gid)),
    )
}

impl Unpacker {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), Error> {
        self.entries += 1;
        let raw = entry.path_bytes().into_owned();
        let name_str = String::from_utf8_lossy(&raw).into_owned();
        let entry_name = name_str.as_str();
        let Some(rel) = normalize(&raw) else {
            return Err(Error::Unsafe {
                entry: name_str,
                reason: "the path has a `..` component",
            });
        };
        let ctx = Ctx {
            entry: entry_name,
            target: &self.target,
            rel: &rel,
        };
        let meta = read_meta(entry, entry_name)?;
        let kind = entry.header().entry_type();
        let is_dir = kind == tar::EntryType::Directory
            || (kind == tar::EntryType::Regular && raw.ends_with(b"/"));

        if rel.is_empty() {
            if !is_dir {
                return Err(ctx.refuse("only a directory may have an empty path"));
            }
            if self.keep_root {
                return Ok(());
            }
            let root = self.res.root.as_fd();
            apply_fd_meta(root, &meta, &ctx)?;
            self.dirs.push((rel, meta.times));
            return Ok(());
        }
        let (parent, name) = split_last(&rel);

        // Whiteout names mean something in layers only; staged files keep their names.
        let class = match self.mode {
            Mode::Layer => whiteout::classify(name),
            Mode::Files => OciName::Plain,
        };
        match class {
            OciName::Plain => {}
            OciName::Meta => return Ok(()),
            OciName::Opaque => {
                let dir = open_parent(&mut self.res, parent, &ctx)?;
                rustix::fs::fsetxattr(
                    dir,
                    whiteout::Xattrs::of_this_process().opaque(),
                    b"y",
                    rustix::fs::XattrFlags::empty(),
                )
                .map_err(ctx.io("set opaque xattr on"))?;
                return Ok(());
            }
            OciName::Whiteout(hidden) => {
                if hidden.is_empty() || hidden == b"." || hidden == b".." {
                    return Err(ctx.refuse("whiteout of an invalid name"));
                }
                let dir = open_parent(&mut self.res, parent, &ctx)?;
                clear_slot(dir, hidden, false, &ctx)?;
                rustix::fs::mknodat(
                    dir,
                    os(hidden),
                    FileType::CharacterDevice,
                    FileMode::empty(),
                    0,
                )
                .map_err(ctx.io("mknod whiteout"))?;
                return Ok(());
            }
        }

        if is_dir {
            if self.mode == Mode::Files {
                // An existing dir, also through a link (resolved in the root), is the dir the
                // entry describes.
                match self.res.lookup(&rel, OFlags::empty()) {
                    Ok(fd) => {
                        apply_fd_meta(fd.as_fd(), &meta, &ctx)?;
                        self.dirs.push((rel.clone(), meta.times));
                        return Ok(());
                    }
                    Err(Errno::NOENT) => {}
                    Err(Errno::NOTDIR) => {
                        // A parent that is not a directory is named by its own error.
                        open_parent(&mut self.res, parent, &ctx)?;
                        return Err(
                            ctx.refuse("the image has a file, or a link to no directory, there")
                        );
                    }
                    Err(e) => return Err(ctx.io("open dir")(e)),
                }
            }
            let dir = open_parent(&mut self.res, parent, &ctx)?;
            let kept = match self.mode {
                Mode::Layer => clear_slot(dir, name, true, &ctx)?,
                // Nothing resolves there (checked above): a link left is one to nowhere.
                Mode::Files => match rustix::fs::statat(dir, os(name), AtFlags::SYMLINK_NOFOLLOW) {
                    Err(Errno::NOENT) => false,
                    Ok(_) => {
                        return Err(
                            ctx.refuse("the image has a file, or a link to no directory, there")
                        );
                    }
                    Err(e) => return Err(ctx.io("stat")(e)),
                },
            };
            if !kept {
                rustix::fs::mkdirat(dir, os(name), FileMode::from_raw_mode(0o700))
                    .map_err(ctx.io("mkdir"))?;
            }
            let fd = rustix::fs::openat(
                dir,
                os(name),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                FileMode::empty(),
            )
            .map_err(ctx.io("open dir"))?;
            apply_fd_meta(fd.as_fd(), &meta, &ctx)?;
            self.dirs.push((rel.clone(), meta.times));
            return Ok(());
        }

        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let dir = open_parent(&mut self.res, parent, &ctx)?;
                clear_slot(dir, name, false, &ctx)?;
                let fd = rustix::fs::openat(
                    dir,
                    os(name),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    FileMode::from_raw_mode(0o600),
                )
                .map_err(ctx.io("create file"))?;
                let mut file = File::from(fd);
                // Grown to the largest file yet (up to BUF_SIZE), so that unpacking small
                // files does not zero and fault in a MiB.
                let want = usize::try_from(entry.size()).map_or(BUF_SIZE, |n| n.clamp(1, BUF_SIZE));
                if self.buf.len() < want {
                    self.buf.resize(want, 0);
                }
                loop {
                    let n = match entry.read(&mut self.buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(read_err(entry_name)(e)),
                    };
                    file.write_all(&self.buf[..n])
                        .map_err(|e| ctx.io_err("write", e))?;
                }
                apply_fd_meta(file.as_fd(), &meta, &ctx)?;
                rustix::fs::futimens(&file, &meta.times).map_err(ctx.io("set times on"))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| ctx.refuse("symlink without a target"))?
                    .into_owned();
                let dir = open_parent(&mut self.res, parent, &ctx)?;
                clear_slot(dir, name, false, &ctx)?;
                rustix::fs::symlinkat(os(&target), dir, os(name)).map_err(ctx.io("symlink"))?;
                apply_at_meta(dir, name, &meta, false, &ctx)?;
            }
            tar::EntryType::Link => {
                let link = entry
                    .link_name_bytes()
                    .ok_or_else(|| ctx.refuse("hardlink without a target"))?
                    .into_owned();
                let link = normalize(&link)
                    .ok_or_else(|| ctx.refuse("the hardlink target has a `..` component"))?;
                if link == rel {
                    return Ok(());
                }
                let (tparent, tname) = split_last(&link);
                if tname.is_empty() {
                    return Err(ctx.refuse("the hardlink target is the root directory"));
                }
                let tdir = if tparent.is_empty() {
                    self.res
                        .root
                        .try_clone()
                        .map_err(|e| ctx.io_err("dup root fd", e))?
                } else {
                    self.res
                        .lookup(tparent, OFlags::empty())
                        .map_err(|e| match e {
                            Errno::NOENT | Errno::NOTDIR => {
                                ctx.refuse("the hardlink target does not exist in the layer")
                            }
                            e => ctx.io_err("open hardlink target dir", e.into()),
                        })?
                };
                let st = rustix::fs::statat(&tdir, os(tname), AtFlags::SYMLINK_NOFOLLOW).map_err(
                    |e| match e {
                        Errno::NOENT => {
                            ctx.refuse("the hardlink target does not exist in the layer")
                        }
                        e => ctx.io_err("stat hardlink target", e.into()),
                    },
                )?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    return Err(ctx.refuse("the hardlink target is a directory"));
                }
                let dir = open_parent(&mut self.res, parent, &ctx)?;
                clear_slot(dir, name, false, &ctx)?;
                rustix::fs::linkat(&tdir, os(tname), dir, os(name), AtFlags::empty())
                    .map_err(ctx.io("link"))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (ft, dev) = match kind {
                    tar::EntryType::Fifo => (FileType::Fifo, 0),
                    _ => {
                        let h = entry.header();
                        let major = h.device_major().map_err(read_err(entry_name))?;
                        let minor = h.device_minor().map_err(read_err(entry_name))?;
                        let dev = rustix::fs::makedev(major.unwrap_or(0), minor.unwrap_or(0));
                        let ft = if kind == tar::EntryType::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (ft, dev)
                    }
                };
                let dir = open_parent(&mut self.res, parent, &ctx)?;
                clear_slot(dir, name, false, &ctx)?;
                match rustix::fs::mknodat(dir, os(name), ft, FileMode::empty(), dev) {
                    // See "In a user namespace" in the module docs.
                    Err(Errno::PERM)
                        if ft != FileType::Fifo
                            && whiteout::Xattrs::of_this_process() == whiteout::Xattrs::User =>
                    {
                        return Ok(());
                    }
                    result => result.map_err(ctx.io("mknod"))?,
                }
                apply_at_meta(dir, name, &meta, true, &ctx)?;
            }
            tar::EntryType::XGlobalHeader => {}
            other => {
                return Err(Error::Unsupported {
                    entry: name_str.clone(),
                    kind: other.as_byte(),
                });
            }
        }
        Ok(())
    }

    /// Sets the deferred dir times.
    fn finish(&mut self) -> Result<(), Error> {
        for (rel, times) in std::mem::take(&mut self.dirs) {
            let fd = if rel.is_empty() {
                self.res.root.try_clone().map_err(|source| Error::Target {
                    path: self.target.clone(),
                    source,
                })?
            } else {
                // A staged dir may be an image's dir through a link (see `Mode::Files`).
                let follow = match self.mode {
                    Mode::Layer => OFlags::NOFOLLOW,
                    Mode::Files => OFlags::empty(),
                };
                match self.res.lookup(&rel, follow) {
                    Ok(fd) => fd,
                    // Replaced by a later entry: its times were set then.
                    Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                    Err(e) => {
                        let entry = String::from_utf8_lossy(&rel).into_owned();
                        let ctx = Ctx {
                            entry: &entry,
                            target: &self.target,
                            rel: &rel,
                        };
                        return Err(ctx.io("open dir")(e));
                    }
                }
            };
            rustix::fs::futimens(&fd, &times).map_err(|e| Error::Io {
                entry: String::from_utf8_lossy(&rel).into_owned(),
                op: "set times on",
                path: self.target.join(os(&rel)),
                source: e.into(),
            })?;
        }
        Ok(())
    }
}

/// Reads mode, owner, times and xattrs of an entry (PAX records included).
fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Meta, Error> {
    let mut xattrs = Vec::new();
    let mut pax_mtime = None;
    if let Some(exts) = entry.pax_extensions().map_err(read_err(name))? {
        for ext in exts {
            let ext = ext.map_err(read_err(name))?;
            let key = ext.key_bytes();
            if let Some(xattr) = key.strip_prefix(bounded::PAX_XATTR_PREFIX) {
                let overlay = whiteout::OVERLAY_XATTR_PREFIXES
                    .iter()
                    .any(|p| xattr.starts_with(p));
                if !overlay && !xattr.is_empty() {
                    xattrs.push((xattr.to_vec(), ext.value_bytes().to_vec()));
                }
            } else if key == b"mtime" {
                pax_mtime = parse_pax_time(ext.value_bytes());
            }
        }
    }
    let h = entry.header();
    let mode = h.mode().map_err(read_err(name))? & 0o7777;
    let uid = h.uid().map_err(read_err(name))?;
    let gid = h.gid().map_err(read_err(name))?;
    let (uid, gid) = match (u32::try_from(uid), u32::try_from(gid)) {
        (Ok(u), Ok(g)) if u != u32::MAX && g != u32::MAX => (u, g),
        _ => {
            return Err(Error::Unsafe {
                entry: name.to_string(),
                reason: "uid or gid out of range",
            });
        }
    };
    let mtime = match pax_mtime {
        Some(t) => t,
        None => Timespec {
            tv_sec: i64::try_from(h.mtime().map_err(read_err(name))?).unwrap_or(i64::MAX),
            tv_nsec: 0,
        },
    };
    Ok(Meta {
        mode,
        uid,
        gid,
        times: Timestamps {
            last_access: mtime,
            last_modification: mtime,
        },
        xattrs,
    })
}

/// Parses a PAX time (`1700000000.123456789`, possibly negative).
fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nsec: i64 = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    // A negative time with a fraction counts down from the whole second.
    let (tv_sec, tv_nsec) = if secs < 0 || s.starts_with('-') {
        if nsec == 0 {
            (secs, 0)
        } else {
            (secs - 1, 1_000_000_000 - nsec)
        }
    } else {
        (secs, nsec)
    };
    Some(Timespec {
        tv_sec,
        tv_nsec: tv_nsec as _,
    })
}

/// Makes room for a new entry `name` in `dir`. Returns true when an existing dir was kept
/// (only if `keep_dir`). A dir in the way of a non-dir is removed if empty, else refused.
fn clear_slot(
    dir: BorrowedFd<'_>,
    name: &[u8],
    keep_dir: bool,
    ctx: &Ctx<'_>,
) -> Result<bool, Error> {
    let st = match rustix::fs::statat(dir, os(name), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(false),
        Err(e) => return Err(ctx.io("stat")(e)),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        if keep_dir {
            return Ok(true);
        }
        return match rustix::fs::unlinkat(dir, os(name), AtFlags::REMOVEDIR) {
            Ok(()) => Ok(false),
            Err(Errno::NOTEMPTY | Errno::EXIST) => {
                Err(ctx.refuse("it would replace a non-empty directory"))
            }
            Err(e) => Err(ctx.io("rmdir")(e)),
        };
    }
    rustix::fs::unlinkat(dir, os(name), AtFlags::empty()).map_err(ctx.io("unlink"))?;
    Ok(false)
}

/// Owner, mode and xattrs through an fd (dirs, regular files).
fn apply_fd_meta(fd: BorrowedFd<'_>, meta: &Meta, ctx: &Ctx<'_>) -> Result<(), Error> {
    let (uid, gid) = owner(meta.uid, meta.gid);
    rustix::fs::fchown(fd, uid, gid).map_err(ctx.chown(meta))?;
    rustix::fs::fchmod(fd, FileMode::from_raw_mode(meta.mode)).map_err(ctx.io("chmod"))?;
    for (name, value) in &meta.xattrs {
        rustix::fs::fsetxattr(fd, os(name), value, rustix::fs::XattrFlags::empty())
            .map_err(ctx.io("setxattr"))?;
    }
    Ok(())
}

/// Owner, mode (unless a symlink), xattrs and times of `dir/name`, never following it.
fn apply_at_meta(
    dir: BorrowedFd<'_>,
    name: &[u8],
    meta: &Meta,
    chmod: bool,
    ctx: &Ctx<'_>,
) -> Result<(), Error> {
    let (uid, gid) = owner(meta.uid, meta.gid);
    rustix::fs::chownat(dir, os(name), uid, gid, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(ctx.chown(meta))?;
    if chmod {
        // fchmodat cannot refuse to follow on Linux; `name` was just created by us as a
        // device node or FIFO, which is not a symlink.
        rustix::fs::chmodat(
            dir,
            os(name),
            FileMode::from_raw_mode(meta.mode),
            AtFlags::empty(),
        )
        .map_err(ctx.io("chmod"))?;
    }
    if !meta.xattrs.is_empty() {
        // No fd can carry xattrs for a symlink or device node, so go through our own dir
        // fd's /proc entry; the last component is not followed (lsetxattr).
        let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
        path.extend_from_slice(name);
        for (xname, value) in &meta.xattrs {
            rustix::fs::lsetxattr(os(&path), os(xname), value, rustix::fs::XattrFlags::empty())
                .map_err(ctx.io("setxattr"))?;
        }
    }
    rustix::fs::utimensat(dir, os(name), &meta.times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(ctx.io("set times on"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_paths() {
        let n = |s: &str| normalize(s.as_bytes()).map(|v| String::from_utf8(v).expect("utf8"));
        assert_eq!(n("./etc/x").as_deref(), Some("etc/x"));
        assert_eq!(n("/etc//x/").as_deref(), Some("etc/x"));
        assert_eq!(n("./").as_deref(), Some(""));
        assert_eq!(n("a/./b").as_deref(), Some("a/b"));
        assert_eq!(n("../evil"), None);
        assert_eq!(n("a/../../evil"), None);
        assert_eq!(n("a/.."), None);
        assert_eq!(n("..a/b..").as_deref(), Some("..a/b.."));
    }

    #[test]
    fn splits_last_component() {
        assert_eq!(split_last(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split_last(b"c"), (&b""[..], &b"c"[..]));
    }

    #[test]
    fn parses_pax_times() {
        let t = parse_pax_time(b"1700000000.5").expect("time");
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 500_000_000));
        let t = parse_pax_time(b"42").expect("time");
        assert_eq!((t.tv_sec, t.tv_nsec), (42, 0));
        let t = parse_pax_time(b"-1.25").expect("time");
        assert_eq!((t.tv_sec, t.tv_nsec), (-2, 750_000_000));
        assert!(parse_pax_time(b"x").is_none());
    }

    #[test]
    fn missing_parents_are_created_0755() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        ar.append_data(&mut h, "a/b/c", &b"hi"[..]).expect("append");
        let blob = ar.into_inner().expect("finish");
        unpack_layer(&mut blob.as_slice(), dir.path()).expect("unpack");
        let meta = std::fs::metadata(dir.path().join("a/b")).expect("stat");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
        assert_eq!(
            std::fs::read(dir.path().join("a/b/c")).expect("read"),
            b"hi"
        );
    }
}
