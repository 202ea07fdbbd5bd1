//! Hostile layers given to `strata import`: records that claim huge sizes fail at their header,
//! with a small peak memory, and leave the store as it was.

use std::io::Write;
use std::path::Path;

use crate::support::{Env, leftovers, store_listing};

const GIB: u64 = 1 << 30;

/// Raw deflate of `data` from a fresh compressor, ending byte-aligned (full flush) unless
/// `last`: such pieces concatenate into one valid deflate stream.
fn deflate_piece(data: &[u8], last: bool) -> Vec<u8> {
    let mut c = flate2::Compress::new(flate2::Compression::best(), false);
    let mut out = Vec::with_capacity(data.len() / 100 + 1024);
    let flush = if last {
        flate2::FlushCompress::Finish
    } else {
        flate2::FlushCompress::Full
    };
    c.compress_vec(data, &mut out, flush).unwrap();
    assert_eq!(c.total_in(), data.len() as u64, "output buffer too small");
    out
}

/// A gzip file of `header` (one tar header block), then `size` zero bytes (the record's data),
/// then the end-of-archive blocks: the exact attack, about 1 MB for a 1 GiB record. Made from
/// one compressed MiB of zeros repeated, so writing it takes no time.
fn gzip_layer(path: &Path, header: &tar::Header, size: u64) {
    const MIB: usize = 1 << 20;
    assert_eq!(size % MIB as u64, 0);
    let zeros = vec![0u8; MIB];
    let mut crc = crc32fast::Hasher::new();
    crc.update(header.as_bytes());
    let mut zero_crc = crc32fast::Hasher::new();
    zero_crc.update(&zeros);
    let end = [0u8; 1024];
    let mut end_crc = crc32fast::Hasher::new();
    end_crc.update(&end);

    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    // gzip header: magic, deflate, no flags, no mtime, no extra flags, unix.
    f.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]).unwrap();
    f.write_all(&deflate_piece(header.as_bytes(), false))
        .unwrap();
    let piece = deflate_piece(&zeros, false);
    for _ in 0..size / MIB as u64 {
        f.write_all(&piece).unwrap();
        crc.combine(&zero_crc);
    }
    f.write_all(&deflate_piece(&end, true)).unwrap();
    crc.combine(&end_crc);
    let total = 512 + size + end.len() as u64;
    f.write_all(&crc.finalize().to_le_bytes()).unwrap();
    f.write_all(&(total as u32).to_le_bytes()).unwrap();
    f.flush().unwrap();
}

fn record_header(kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_path("././@LongLink").unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    h
}

/// Runs `strata import layer hostile:latest`: see [`peak`].
fn import_peak(env: &Env, layer: &Path) -> (std::process::ExitStatus, String, i64) {
    peak(env, &["import", layer.to_str().unwrap(), "hostile:latest"])
}

/// Runs strata with `args`; its exit status, stderr and peak RSS in KiB. Measured by GNU
/// time, a small process that forks strata: a child forked from this test process would
/// start with the test's own resident pages as its high-water mark (`ru_maxrss` survives
/// exec), which under a parallel run is hundreds of MiB.
fn peak(env: &Env, args: &[&str]) -> (std::process::ExitStatus, String, i64) {
    let strata = env.cmd();
    let report = env.work.path().join("peak-rss");
    let mut cmd = std::process::Command::new("/usr/bin/time");
    cmd.args(["-f", "%M", "-o"])
        .arg(&report)
        .arg(strata.get_program())
        .args(strata.get_args())
        .args(args);
    for (key, value) in strata.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    if let Some(dir) = strata.get_current_dir() {
        cmd.current_dir(dir);
    }
    let out = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let report = std::fs::read_to_string(&report).unwrap();
    // A command that fails makes time write "Command exited with non-zero status N" first.
    let peak_kib = report
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("GNU time's report: {report:?}"));
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        peak_kib,
    )
}

/// An empty store with its layout made (by listing its images).
fn store() -> Env {
    let env = Env::empty();
    assert!(env.strata(&["images"]).status.success());
    env
}

#[test]
fn huge_tar_records_fail_at_their_header_with_little_memory() {
    let env = store();
    let before = store_listing(env.store.path());
    for (kind, what) in [
        (tar::EntryType::GNULongName, "GNU long name"),
        (tar::EntryType::GNULongLink, "GNU long link target"),
        (tar::EntryType::XHeader, "PAX extended header"),
    ] {
        let layer = env.work.path().join("layer.tar.gz");
        gzip_layer(&layer, &record_header(kind, GIB), GIB);
        let compressed = std::fs::metadata(&layer).unwrap().len();
        assert!(
            compressed < 4 << 20,
            "the attack is small: {compressed} bytes"
        );
        let (status, stderr, peak_kib) = import_peak(&env, &layer);
        assert!(!status.success(), "{what}: import succeeded: {stderr}");
        assert!(
            stderr.contains(layer.to_str().unwrap())
                && stderr.contains(&format!(
                    "tar header #1 at byte 0: {what} of 1073741824 bytes is over the limit"
                )),
            "{what}: {stderr}"
        );
        assert!(
            peak_kib < 200 * 1024,
            "{what}: peak RSS {peak_kib} KiB (over 200 MiB)"
        );
        assert_eq!(store_listing(env.store.path()), before, "{what}");
        assert_eq!(leftovers(env.store.path()), Vec::<String>::new(), "{what}");
    }
}

#[test]
fn long_names_and_pax_paths_over_path_max_are_refused_by_name() {
    let env = store();
    let before = store_listing(env.store.path());
    // A PAX `path` record well inside the PAX limit, but over PATH_MAX.
    let mut b = tar::Builder::new(Vec::new());
    let long = format!("dir/{}", "n".repeat(5000));
    b.append_pax_extensions([("path", long.as_bytes())])
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_path("short").unwrap();
    h.set_size(0);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
    let layer = env.work.path().join("pax-path.tar");
    std::fs::write(&layer, b.into_inner().unwrap()).unwrap();
    let (status, stderr, _) = import_peak(&env, &layer);
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("tar entry `dir/nnnn") && stderr.contains("path of 5004 bytes"),
        "{stderr}"
    );
    assert_eq!(store_listing(env.store.path()), before);
}

#[test]
fn a_huge_record_in_an_image_archive_fails_strata_load_with_little_memory() {
    // The archive is sniffed before it is read: a record over its limit makes it no archive.
    let env = store();
    let before = store_listing(env.store.path());
    let archive = env.work.path().join("image.tar.gz");
    gzip_layer(
        &archive,
        &record_header(tar::EntryType::GNULongName, GIB),
        GIB,
    );
    let (status, stderr, peak_kib) = peak(&env, &["load", archive.to_str().unwrap()]);
    assert!(!status.success(), "load succeeded: {stderr}");
    assert!(
        stderr.contains("is neither a docker-save tarball nor an OCI image layout"),
        "{stderr}"
    );
    assert!(
        peak_kib < 200 * 1024,
        "peak RSS {peak_kib} KiB (over 200 MiB)"
    );
    assert_eq!(store_listing(env.store.path()), before);
}
