//! Reading a hostile tar with bounded memory: every tar strata reads goes through [`archive`]
//! and [`entries`].
//!
//! The `tar` crate folds GNU long name/link records (`L`, `K`) and PAX extended headers (`x`)
//! into the entry they describe by reading their whole data into a `Vec`, whatever size the
//! header claims: a 1 MB gzip layer holding a 1 GiB long name made an import take 6.8 GB.
//! [`Guard`] sits between the (decompressed) stream and the `tar` crate and follows the
//! archive's structure as the bytes go by: when it sees the header of such a record whose size
//! is over its limit, the read of that header fails, before any of the record's data is read.
//! It keeps every other behaviour of the `tar` crate (PAX `size`/`uid`/`gid`, GNU sparse
//! files), so it follows the same positions: a header, the GNU sparse extension blocks, then the
//! data rounded up to 512 bytes, whose size a preceding PAX `size` record overrides; the first
//! all-zero header ends the archive and the guard lets the rest through.
//!
//! | what | limit | why |
//! |---|---|---|
//! | entry path, link target (however stored) | 4096 bytes | `PATH_MAX` |
//! | a GNU long name or long link record | 4096 bytes + NUL | same |
//! | a PAX record set (`x` or `g`) | 1 MiB | far above any real one (xattrs included) |
//! | an xattr name / value in a PAX record | 255 / 65536 bytes | `XATTR_NAME_MAX`, `XATTR_SIZE_MAX` |
//!
//! Entry data itself is never held whole (the appliers copy it in 1 MiB pieces), so it has no
//! limit here.

use std::io::{self, Read};

/// Longest entry path or link target (`PATH_MAX`).
pub const MAX_PATH: u64 = 4096;
/// Largest PAX extended header (`x` or `g`) data.
pub const MAX_PAX: u64 = 1 << 20;
/// Longest xattr name (`XATTR_NAME_MAX`).
pub const MAX_XATTR_NAME: u64 = 255;
/// Largest xattr value (`XATTR_SIZE_MAX`).
pub const MAX_XATTR_VALUE: u64 = 65536;

const BLOCK: u64 = 512;
/// The PAX record key prefix of an xattr.
pub(crate) const PAX_XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";

/// A limit that an archive broke, or a read error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A record's header claims more bytes than its limit (found before reading them).
    #[error(
        "tar header #{header} at byte {offset}: {what} of {size} bytes is over the limit of {limit} bytes"
    )]
    Record {
        /// 1-based number of the header in the archive (extension headers count).
        header: u64,
        /// Offset of the header in the uncompressed stream.
        offset: u64,
        /// What the record is (`GNU long name`, `PAX extended header`, ...).
        what: &'static str,
        /// Its claimed size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A field of an entry (as the `tar` crate assembled it) is over its limit.
    #[error("tar entry `{entry}`: {what} of {size} bytes is over the limit of {limit} bytes")]
    Field {
        /// The entry path (its first 200 bytes, lossily decoded).
        entry: String,
        /// What is too long (`path`, `link target`, `xattr value`, ...).
        what: &'static str,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Reading the archive failed.
    #[error("reading the tar failed: {source}")]
    Read {
        /// The I/O or format error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The limit error a [`Guard`] put into `e`, or `e` itself as [`Error::Read`].
    pub fn from_io(e: io::Error) -> Error {
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            match e.into_inner().map(|inner| inner.downcast::<Error>()) {
                Some(Ok(limit)) => return *limit,
                Some(Err(other)) => {
                    return Error::Read {
                        source: io::Error::new(io::ErrorKind::InvalidData, other),
                    };
                }
                None => unreachable!("checked get_ref above"),
            }
        }
        Error::Read { source: e }
    }
}

/// Where the guard is in the archive's structure.
#[derive(Debug)]
enum State {
    /// Collecting a 512-byte header.
    Header,
    /// Collecting a GNU sparse extension block.
    SparseExt,
    /// Passing `left` bytes of data (and padding); a PAX record set is kept for its `size`.
    Data { left: u64, pax: Option<Vec<u8>> },
    /// After the end-of-archive block (or a header the `tar` crate will reject): bytes go
    /// through unexamined.
    Through,
}

/// A reader that fails when the tar read through it has a record over its limit; see the
/// module docs.
pub struct Guard<R> {
    inner: R,
    state: State,
    block: [u8; 512],
    filled: usize,
    /// Offset in the stream of the byte after the last one examined.
    offset: u64,
    /// Headers seen.
    headers: u64,
    /// The data size a PAX `size` record sets for the next file header.
    pax_size: Option<u64>,
    /// Data size of the sparse entry whose extension blocks are being read.
    sparse_data: u64,
}

/// A `tar` archive of `reader` with the [`Guard`] in place.
pub fn archive<R: Read>(reader: R) -> tar::Archive<Guard<R>> {
    tar::Archive::new(Guard {
        inner: reader,
        state: State::Header,
        block: [0; 512],
        filled: 0,
        offset: 0,
        headers: 0,
        pax_size: None,
        sparse_data: 0,
    })
}

/// The entries of `archive`, each checked with [`check`].
pub fn entries<R: Read>(archive: &mut tar::Archive<Guard<R>>) -> Result<Entries<'_, R>, Error> {
    Ok(Entries {
        inner: archive.entries().map_err(Error::from_io)?,
    })
}

/// Iterator of [`entries`].
pub struct Entries<'a, R: Read> {
    inner: tar::Entries<'a, Guard<R>>,
}

impl<'a, R: Read> Iterator for Entries<'a, R> {
    type Item = Result<tar::Entry<'a, Guard<R>>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(
            self.inner
                .next()?
                .map_err(Error::from_io)
                .and_then(|mut e| {
                    check(&mut e)?;
                    Ok(e)
                }),
        )
    }
}

/// Checks the path, link target and PAX xattrs of an entry against their limits.
pub fn check<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<(), Error> {
    let path = entry.path_bytes();
    let field = |what, size: usize, limit| {
        if size as u64 > limit {
            let shown = &path[..path.len().min(200)];
            Err(Error::Field {
                entry: String::from_utf8_lossy(shown).into_owned(),
                what,
                size: size as u64,
                limit,
            })
        } else {
            Ok(())
        }
    };
    field("path", path.len(), MAX_PATH)?;
    if let Some(link) = entry.link_name_bytes() {
        field("link target", link.len(), MAX_PATH)?;
    }
    let path = path.into_owned();
    let field = |what, size: usize, limit| {
        if size as u64 > limit {
            Err(Error::Field {
                entry: String::from_utf8_lossy(&path[..path.len().min(200)]).into_owned(),
                what,
                size: size as u64,
                limit,
            })
        } else {
            Ok(())
        }
    };
    if let Some(exts) = entry
        .pax_extensions()
        .map_err(|source| Error::Read { source })?
    {
        for ext in exts.flatten() {
            if let Some(name) = ext.key_bytes().strip_prefix(PAX_XATTR_PREFIX) {
                field("xattr name", name.len(), MAX_XATTR_NAME)?;
                field("xattr value", ext.value_bytes().len(), MAX_XATTR_VALUE)?;
            }
        }
    }
    Ok(())
}

impl<R: Read> Guard<R> {
    fn fail(&mut self, what: &'static str, size: u64, limit: u64) -> io::Error {
        let err = Error::Record {
            header: self.headers,
            offset: self.offset - BLOCK,
            what,
            size,
            limit,
        };
        self.state = State::Through;
        io::Error::new(io::ErrorKind::InvalidData, err)
    }

    /// Takes a complete header block.
    fn header(&mut self) -> io::Result<()> {
        let block = self.block;
        if block.iter().all(|&b| b == 0) {
            self.state = State::Through;
            return Ok(());
        }
        self.headers += 1;
        let header = tar::Header::from_byte_slice(&block);
        let sum = block[..148]
            .iter()
            .chain(&block[156..])
            .fold(8 * 32, |a, &b| a + u32::from(b));
        let (Ok(cksum), Ok(size)) = (header.cksum(), header.entry_size()) else {
            // The `tar` crate fails on this header itself.
            self.state = State::Through;
            return Ok(());
        };
        if cksum != sum {
            self.state = State::Through;
            return Ok(());
        }
        let kind = header.entry_type();
        let recognized = header.as_gnu().is_some() || header.as_ustar().is_some();
        let limit = if kind.is_gnu_longname() {
            Some(("GNU long name", MAX_PATH + 1))
        } else if kind.is_gnu_longlink() {
            Some(("GNU long link target", MAX_PATH + 1))
        } else if kind.is_pax_local_extensions() {
            Some(("PAX extended header", MAX_PAX))
        } else if kind.is_pax_global_extensions() {
            Some(("PAX global header", MAX_PAX))
        } else {
            None
        };
        if let Some((what, limit)) = limit {
            if size > limit {
                return Err(self.fail(what, size, limit));
            }
            let keep = kind.is_pax_local_extensions() && recognized;
            self.state = State::Data {
                left: padded(size)?,
                pax: keep.then(|| Vec::with_capacity(size as usize)),
            };
            return Ok(());
        }
        // A file header: a PAX `size` record overrides the header's.
        let size = self.pax_size.take().unwrap_or(size);
        if kind.is_gnu_sparse() && header.as_gnu().is_some_and(|g| g.is_extended()) {
            self.sparse_data = size;
            self.state = State::SparseExt;
        } else {
            self.state = State::Data {
                left: padded(size)?,
                pax: None,
            };
        }
        Ok(())
    }

    /// Takes a complete GNU sparse extension block.
    fn sparse_ext(&mut self) -> io::Result<()> {
        let mut ext = tar::GnuExtSparseHeader::new();
        ext.as_mut_bytes().copy_from_slice(&self.block);
        if !ext.is_extended() {
            self.state = State::Data {
                left: padded(self.sparse_data)?,
                pax: None,
            };
        }
        Ok(())
    }

    /// Follows the structure over `bytes`, which were just read.
    fn examine(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Through => {
                    self.offset += bytes.len() as u64;
                    return Ok(());
                }
                State::Header | State::SparseExt => {
                    let n = (512 - self.filled).min(bytes.len());
                    self.block[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
                    self.filled += n;
                    self.offset += n as u64;
                    bytes = &bytes[n..];
                    if self.filled == 512 {
                        self.filled = 0;
                        if matches!(self.state, State::Header) {
                            self.header()?;
                        } else {
                            self.sparse_ext()?;
                        }
                    }
                }
                State::Data { left, pax } => {
                    let n = (*left).min(bytes.len() as u64) as usize;
                    if let Some(pax) = pax {
                        pax.extend_from_slice(&bytes[..n]);
                    }
                    *left -= n as u64;
                    self.offset += n as u64;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        if let Some(pax) = pax.take() {
                            self.pax_size = pax_size(&pax);
                        }
                        self.state = State::Header;
                    }
                }
            }
        }
        Ok(())
    }
}

/// `size` rounded up to whole blocks.
fn padded(size: u64) -> io::Result<u64> {
    size.checked_add(BLOCK - 1)
        .map(|s| s & !(BLOCK - 1))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "tar entry size overflow"))
}

/// The `size` record of a PAX record set, read as the `tar` crate reads it: the first `size`
/// key, none if a record before it or its value does not parse.
fn pax_size(records: &[u8]) -> Option<u64> {
    for ext in tar::PaxExtensions::new(records) {
        let ext = ext.ok()?;
        if ext.key() == Ok("size") {
            return ext.value().ok()?.parse().ok();
        }
    }
    None
}

impl<R: Read> Read for Guard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // A header is examined whole before the reader gets past it: reads stop at its end.
        let want = match self.state {
            State::Header | State::SparseExt => buf.len().min(512 - self.filled),
            _ => buf.len(),
        };
        let n = self.inner.read(&mut buf[..want])?;
        self.examine(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_path("././@LongLink").expect("short path");
        h.set_mode(0o644);
        h.set_cksum();
        h
    }

    /// A stream that claims an endless record after `prefix` and fails the test if more than
    /// `budget` bytes of it are read.
    struct Endless {
        prefix: Vec<u8>,
        at: usize,
        budget: u64,
    }

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.at < self.prefix.len() {
                let n = (self.prefix.len() - self.at).min(buf.len());
                buf[..n].copy_from_slice(&self.prefix[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            assert!(self.budget >= buf.len() as u64, "read past the header");
            self.budget -= buf.len() as u64;
            buf.fill(b'a');
            Ok(buf.len())
        }
    }

    fn first_error(prefix: Vec<u8>) -> Error {
        let mut ar = archive(Endless {
            prefix,
            at: 0,
            budget: 0,
        });
        let mut it = entries(&mut ar).expect("entries");
        match it.next() {
            Some(Err(e)) => e,
            Some(Ok(e)) => panic!("an entry: {:?}", e.path_bytes()),
            None => panic!("no entry"),
        }
    }

    #[test]
    fn huge_records_fail_before_their_data_is_read() {
        for (kind, what) in [
            (tar::EntryType::GNULongName, "GNU long name"),
            (tar::EntryType::GNULongLink, "GNU long link target"),
            (tar::EntryType::XHeader, "PAX extended header"),
        ] {
            let h = header(kind, 1 << 30);
            let err = first_error(h.as_bytes().to_vec());
            assert!(
                matches!(err, Error::Record { header: 1, offset: 0, size, .. } if size == 1 << 30),
                "{err:?}"
            );
            assert!(err.to_string().contains(what), "{err}");
        }
    }

    #[test]
    fn records_at_the_limit_pass_and_fields_are_checked() {
        // A long name of exactly MAX_PATH bytes (plus its NUL) is fine; one byte more is
        // refused at its record.
        for (len, ok) in [(MAX_PATH as usize, true), (MAX_PATH as usize + 1, false)] {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_size(0);
            h.set_mode(0o644);
            b.append_data(&mut h, "a".repeat(len), &[][..])
                .expect("append");
            let tar = b.into_inner().expect("finish");
            let mut ar = archive(tar.as_slice());
            let got: Result<Vec<_>, _> = entries(&mut ar)
                .expect("entries")
                .map(|e| e.map(|e| e.path_bytes().len()))
                .collect();
            match (ok, got) {
                (true, Ok(lens)) => assert_eq!(lens, [len]),
                (false, Err(Error::Record { size, .. })) => assert_eq!(size, len as u64 + 1),
                (ok, got) => panic!("len {len}, ok {ok}: {got:?}"),
            }
        }
    }

    #[test]
    fn pax_size_and_xattrs_follow_the_tar_crate() {
        // A PAX `size` record overrides the header; the guard must land on the next header.
        let mut records = Vec::new();
        for (k, v) in [("size", "5"), ("SCHILY.xattr.user.a", "v")] {
            let rec = format!(" {k}={v}\n");
            let mut len = rec.len() + 1;
            if (len.to_string() + &rec).len() != len {
                len += 1;
            }
            records.extend_from_slice(format!("{len}{rec}").as_bytes());
        }
        let mut tar = Vec::new();
        let mut x = header(tar::EntryType::XHeader, records.len() as u64);
        x.set_cksum();
        tar.extend_from_slice(x.as_bytes());
        tar.extend_from_slice(&records);
        tar.resize(tar.len().next_multiple_of(512), 0);
        let mut f = tar::Header::new_gnu();
        f.set_path("f").expect("path");
        f.set_size(0);
        f.set_mode(0o644);
        f.set_cksum();
        tar.extend_from_slice(f.as_bytes());
        tar.extend_from_slice(b"hello");
        tar.resize(tar.len().next_multiple_of(512), 0);
        // A second entry after the overridden data, then a huge long name: found only if the
        // guard followed the PAX size.
        tar.extend_from_slice(header(tar::EntryType::GNULongName, 1 << 20).as_bytes());
        let mut ar = archive(tar.as_slice());
        let mut it = entries(&mut ar).expect("entries");
        let mut first = it.next().expect("one entry").expect("valid entry");
        let mut data = String::new();
        first.read_to_string(&mut data).expect("read");
        assert_eq!(data, "hello");
        drop(first);
        let Some(Err(err)) = it.next() else {
            panic!("no error for a huge long name")
        };
        assert!(matches!(err, Error::Record { header: 3, .. }), "{err:?}");

        // An xattr value over XATTR_SIZE_MAX.
        let mut b = tar::Builder::new(Vec::new());
        let value = "v".repeat(MAX_XATTR_VALUE as usize + 1);
        b.append_pax_extensions([("SCHILY.xattr.user.big", value.as_bytes())])
            .expect("pax");
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o644);
        b.append_data(&mut h, "x", &[][..]).expect("append");
        let tar = b.into_inner().expect("finish");
        let mut ar = archive(tar.as_slice());
        let Some(Err(err)) = entries(&mut ar).expect("entries").next() else {
            panic!("no error for a huge xattr value")
        };
        assert!(
            matches!(&err, Error::Field { what: "xattr value", entry, .. } if entry == "x"),
            "{err:?}"
        );
    }
}
