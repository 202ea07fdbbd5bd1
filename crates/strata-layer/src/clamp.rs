//! A layer's file times clamped to a moment: BuildKit's `rewrite-timestamp=true` export
//! option (`util/converter`'s `rewriteTimestampInTarHeader`), which sets every modification,
//! access and change time later than `SOURCE_DATE_EPOCH` to it and leaves earlier ones.
//!
//! The tar is rewritten record by record (raw entries, no long-name or PAX merging), so
//! everything but the times stays byte for byte: the header's mtime, a GNU header's atime and
//! ctime, and the `mtime`, `atime` and `ctime` records of a PAX extended header (whose size
//! then changes). A PAX header over [`crate::bounded::MAX_PAX`] bytes is refused, as every
//! reader of this crate refuses it.

use std::io::{self, Read, Write};

use strata_digest::{Digest, HashingWriter};

/// Clamping a layer's times failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input tar could not be read.
    #[error("read the layer's tar: {0}")]
    Read(#[source] io::Error),
    /// The clamped tar could not be written.
    #[error("write the clamped tar: {0}")]
    Write(#[source] io::Error),
    /// A PAX extended header is larger than any this crate reads.
    #[error("a PAX header of {size} bytes is over the limit of {limit}", limit = crate::bounded::MAX_PAX)]
    PaxTooLarge {
        /// Its size.
        size: u64,
    },
}

/// Copies the tar `input` into `out` with every time after `epoch` (unix seconds) set to
/// `epoch`; returns `out`, the diff id (sha256) and the size of the tar written.
pub fn clamp_times<W: Write>(
    input: impl Read,
    epoch: u64,
    out: W,
) -> Result<(W, Digest, u64), Error> {
    let mut archive = tar::Archive::new(input);
    let mut builder = tar::Builder::new(HashingWriter::new(out));
    for entry in archive.entries().map_err(Error::Read)?.raw(true) {
        let mut entry = entry.map_err(Error::Read)?;
        let mut header = entry.header().clone();
        let kind = header.entry_type();
        if kind.is_pax_local_extensions() {
            let size = header.entry_size().map_err(Error::Read)?;
            if size > crate::bounded::MAX_PAX {
                return Err(Error::PaxTooLarge { size });
            }
            let mut records = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut records).map_err(Error::Read)?;
            let clamped = clamp_pax(&records, epoch);
            header.set_size(clamped.len() as u64);
            header.set_cksum();
            builder
                .append(&header, clamped.as_slice())
                .map_err(Error::Write)?;
            continue;
        }
        // Records that are no file (GNU long names, global PAX headers) keep their times.
        if !(kind.is_gnu_longname() || kind.is_gnu_longlink() || kind.is_pax_global_extensions()) {
            clamp_header(&mut header, epoch).map_err(Error::Read)?;
        }
        builder.append(&header, &mut entry).map_err(Error::Write)?;
    }
    let written = builder.into_inner().map_err(Error::Write)?;
    Ok(written.finish())
}

/// The header's mtime and (in a GNU header, where set) atime and ctime clamped to `epoch`.
fn clamp_header(header: &mut tar::Header, epoch: u64) -> io::Result<()> {
    if header.mtime()? > epoch {
        header.set_mtime(epoch);
    }
    // Empty fields (tar-rs and strata leave them so) are no time.
    if let Some(gnu) = header.as_gnu_mut() {
        if gnu.atime().is_ok_and(|t| t > epoch) {
            gnu.set_atime(epoch);
        }
        if gnu.ctime().is_ok_and(|t| t > epoch) {
            gnu.set_ctime(epoch);
        }
    }
    header.set_cksum();
    Ok(())
}

/// PAX records (`LEN KEY=VALUE\n` each) with their `mtime`, `atime` and `ctime` values after
/// `epoch` replaced by it; the others, and records that do not parse, as they are.
fn clamp_pax(records: &[u8], epoch: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len());
    let mut rest = records;
    while !rest.is_empty() {
        let Some(record) = next_record(rest) else {
            out.extend_from_slice(rest);
            break;
        };
        rest = &rest[record.len()..];
        match time_record(record) {
            Some((key, seconds)) if seconds > epoch as f64 => {
                out.extend_from_slice(&pax_record(key, &epoch.to_string()));
            }
            _ => out.extend_from_slice(record),
        }
    }
    out
}

/// The first record of `rest` (its length is its first field), if it is well formed.
fn next_record(rest: &[u8]) -> Option<&[u8]> {
    let space = rest.iter().position(|b| *b == b' ')?;
    let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
    (len > space && len <= rest.len() && rest[len - 1] == b'\n').then(|| &rest[..len])
}

/// The key and seconds of a time record (`mtime`, `atime`, `ctime`).
fn time_record(record: &[u8]) -> Option<(&str, f64)> {
    let text = std::str::from_utf8(record).ok()?;
    let (_, field) = text.split_once(' ')?;
    let (key, value) = field.strip_suffix('\n')?.split_once('=')?;
    matches!(key, "mtime" | "atime" | "ctime").then_some(())?;
    Some((key, value.parse().ok()?))
}

/// One PAX record, its length field counting itself.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut len = body.len();
    while (len.to_string().len() + body.len()) != len {
        len = len.to_string().len() + body.len();
    }
    format!("{len}{body}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(builder: &mut tar::Builder<Vec<u8>>, path: &str, mtime: u64) {
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, path, &b"hello"[..])
            .unwrap();
    }

    fn times(tar: &[u8]) -> Vec<(String, u64, Option<String>)> {
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let pax_mtime = e.pax_extensions().unwrap().and_then(|mut p| {
                    p.find_map(|r| {
                        let r = r.unwrap();
                        (r.key().unwrap() == "mtime").then(|| r.value().unwrap().to_string())
                    })
                });
                let path = e.path().unwrap().to_string_lossy().into_owned();
                (path, e.header().mtime().unwrap(), pax_mtime)
            })
            .collect()
    }

    #[test]
    fn later_times_are_clamped_and_earlier_ones_kept() {
        let mut builder = tar::Builder::new(Vec::new());
        file(&mut builder, "old", 100);
        file(&mut builder, "new", 5000);
        // A long name (a GNU record before the file) and PAX times with fractions.
        file(&mut builder, &"l".repeat(150), 6000);
        builder
            .append_pax_extensions([
                ("mtime", &b"7000.5"[..]),
                ("atime", &b"50"[..]),
                ("SCHILY.xattr.user.k", &b"v"[..]),
            ])
            .unwrap();
        file(&mut builder, "pax", 7000);
        let input = builder.into_inner().unwrap();

        let (out, diff_id, size) = clamp_times(input.as_slice(), 1000, Vec::new()).unwrap();
        assert_eq!(diff_id, Digest::of(&out));
        assert_eq!(size, out.len() as u64);
        assert_eq!(
            times(&out),
            [
                ("old".to_string(), 100, None),
                ("new".to_string(), 1000, None),
                ("l".repeat(150), 1000, None),
                ("pax".to_string(), 1000, Some("1000".to_string())),
            ]
        );
        // The other PAX records are kept.
        let mut archive = tar::Archive::new(out.as_slice());
        let mut pax = archive.entries().unwrap().nth(3).unwrap().unwrap();
        let records: Vec<(String, String)> = pax
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|r| {
                let r = r.unwrap();
                (r.key().unwrap().into(), r.value().unwrap().into())
            })
            .collect();
        assert_eq!(
            records,
            [
                ("mtime".into(), "1000".into()),
                ("atime".into(), "50".into()),
                ("SCHILY.xattr.user.k".into(), "v".into()),
            ]
        );
        let mut content = String::new();
        pax.read_to_string(&mut content).unwrap();
        assert_eq!(content, "hello");
    }

    #[test]
    fn a_tar_with_nothing_after_the_epoch_is_unchanged() {
        let mut builder = tar::Builder::new(Vec::new());
        file(&mut builder, "a", 10);
        file(&mut builder, "b", 20);
        let input = builder.into_inner().unwrap();
        let (out, diff_id, _) = clamp_times(input.as_slice(), 1000, Vec::new()).unwrap();
        assert_eq!(out, input);
        assert_eq!(diff_id, Digest::of(&input));
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        assert_eq!(pax_record("mtime", "1000"), b"14 mtime=1000\n");
        // 98 bytes of body and a two-digit length make 100: the length needs a third digit.
        let record = pax_record("a", &"x".repeat(94));
        assert_eq!(record.len(), 101);
        assert!(record.starts_with(b"101 a="));
    }
}
