//! Writing layers: round trips, whiteouts, real overlay uppers, system tools, memory.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use strata_layer::{Compression, unpack_layer, write_layer};

use crate::*;

#[test]
fn round_trip_preserves_every_attribute() {
    let src = tempfile::tempdir().expect("tempdir");
    rich_tree(src.path());
    let expected = snapshot(src.path());
    // Spot-check the fixture itself, so an empty snapshot can't pass.
    assert_eq!(expected[&b"bin/su"[..]].mode, 0o4755);
    assert_eq!(
        expected[&b"etc/h3"[..]].link.as_deref(),
        Some(&b"data/h1"[..])
    );
    assert!(!expected.contains_key(&b"run/sock"[..]));

    for compression in [Compression::Zstd, Compression::Gzip, Compression::None] {
        let mut blob = Vec::new();
        let written = write_layer(src.path(), compression, &mut blob).expect("write layer");
        assert_eq!(written.compressed_size, blob.len() as u64);
        assert_eq!(Compression::detect(&blob), compression);

        let dst = tempfile::tempdir().expect("tempdir");
        let unpacked = unpack_layer(&mut blob.as_slice(), dst.path()).expect("unpack layer");
        assert_eq!(unpacked.diff_id, written.diff_id, "{compression}");
        assert_eq!(unpacked.uncompressed_size, written.uncompressed_size);
        assert_eq!(unpacked.compressed_size, written.compressed_size);
        assert_eq!(unpacked.entries, written.entries);

        let got = snapshot(dst.path());
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{compression}: entry sets differ"
        );
        for (path, node) in &expected {
            assert_eq!(
                &got[path],
                node,
                "{compression}: {} differs",
                String::from_utf8_lossy(path)
            );
        }
    }
}

#[test]
fn tar_layout_hardlinks_and_pax_xattrs() {
    let src = tempfile::tempdir().expect("tempdir");
    rich_tree(src.path());
    let mut blob = Vec::new();
    write_layer(src.path(), Compression::None, &mut blob).expect("write");
    let mut ar = tar::Archive::new(blob.as_slice());
    let mut seen = Vec::new();
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        let path = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        assert!(!path.starts_with('/') && !path.starts_with("./"), "{path}");
        let kind = e.header().entry_type();
        let link = e
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned());
        let mut pax = Vec::new();
        if let Some(exts) = e.pax_extensions().expect("pax") {
            for ext in exts {
                pax.push(
                    ext.expect("pax record")
                        .key()
                        .expect("utf8 key")
                        .to_string(),
                );
            }
        }
        seen.push((path, kind, link, pax));
    }
    let find = |p: &str| {
        seen.iter().find(|s| s.0 == p).unwrap_or_else(|| {
            panic!(
                "{p} missing from {:?}",
                seen.iter().map(|s| &s.0).collect::<Vec<_>>()
            )
        })
    };
    assert_eq!(find("data/h1").1, tar::EntryType::Regular);
    assert_eq!(find("data/h2").1, tar::EntryType::Link);
    assert_eq!(find("data/h2").2.as_deref(), Some("data/h1"));
    assert_eq!(find("etc/h3").2.as_deref(), Some("data/h1"));
    assert_eq!(find("etc/").1, tar::EntryType::Directory);
    assert!(
        find("etc/")
            .3
            .contains(&"SCHILY.xattr.trusted.strata-test".to_string())
    );
    assert!(
        find("bin/ping")
            .3
            .contains(&"SCHILY.xattr.security.capability".to_string())
    );
    assert_eq!(find("dev/null").1, tar::EntryType::Char);
    assert_eq!(find("dev/fifo").1, tar::EntryType::Fifo);
    assert!(seen.iter().all(|s| !s.0.contains("sock")));
    // Sorted, depth first.
    let names: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    let pos = |p: &str| names.iter().position(|n| *n == p).expect("present");
    assert!(pos("bin/") < pos("bin/ping") && pos("bin/ping") < pos("bin/su"));
    assert!(pos("usr/lib/") > pos("tmp/"));
}

/// A hand-made upper dir: whiteout char device, opaque dir, overlay bookkeeping xattrs.
fn synthetic_upper(root: &Path) {
    require_root();
    mknod(
        &root.join("gone"),
        rustix::fs::FileType::CharacterDevice,
        0,
        0,
        0,
    );
    std::fs::create_dir_all(root.join("opq/inner")).expect("mkdir");
    set_xattr(&root.join("opq"), "trusted.overlay.opaque", b"y");
    std::fs::write(root.join("opq/inner/f"), "f").expect("write");
    std::fs::create_dir(root.join("xdir")).expect("mkdir");
    // "x" marks a dir holding xwhiteouts, not an opaque one.
    set_xattr(&root.join("xdir"), "trusted.overlay.opaque", b"x");
    std::fs::write(root.join("kept"), "k").expect("write");
    set_xattr(&root.join("kept"), "trusted.overlay.origin", b"\x00\xfb");
    set_xattr(&root.join("kept"), "user.real", b"1");
    std::fs::create_dir(root.join("sub")).expect("mkdir");
    mknod(
        &root.join("sub/rm"),
        rustix::fs::FileType::CharacterDevice,
        0,
        0,
        0,
    );
    set_xattr(&root.join("sub"), "trusted.overlay.impure", b"y");
}

#[test]
fn whiteouts_and_opaque_dirs_round_trip() {
    let src = tempfile::tempdir().expect("tempdir");
    synthetic_upper(src.path());
    let mut blob = Vec::new();
    let stats = write_layer(src.path(), Compression::Zstd, &mut blob).expect("write");
    let tar = untar(&blob);
    assert_eq!(
        tar_names(&tar),
        [
            ".wh.gone",
            "kept",
            "opq/",
            "opq/.wh..wh..opq",
            "opq/inner/",
            "opq/inner/f",
            "sub/",
            "sub/.wh.rm",
            "xdir/",
        ]
    );
    assert_eq!(stats.entries, 9);
    assert!(
        !tar.windows(b"trusted.overlay".len())
            .any(|w| w == b"trusted.overlay"),
        "overlay xattrs leaked into the layer"
    );

    // The system tar agrees on the listing.
    let dir = tempfile::tempdir().expect("tempdir");
    let tar_path = dir.path().join("layer.tar");
    std::fs::write(&tar_path, &tar).expect("write");
    let listing = sh(&format!("tar -tf {}", tar_path.display()));
    assert!(listing.lines().any(|l| l == ".wh.gone"), "{listing}");
    assert!(
        listing.lines().any(|l| l == "opq/.wh..wh..opq"),
        "{listing}"
    );

    let dst = tempfile::tempdir().expect("tempdir");
    unpack_layer(&mut blob.as_slice(), dst.path()).expect("unpack");
    let mut expected = snapshot(src.path());
    for node in expected.values_mut() {
        node.xattrs
            .retain(|k, _| !k.starts_with(b"trusted.overlay.") || k == b"trusted.overlay.opaque");
    }
    // "x" is not opaque, so it is not carried.
    expected.get_mut(&b"xdir"[..]).expect("xdir").xattrs.clear();
    // Whiteouts are written with mode 0, owner 0, mtime 0: compare kinds and rdev only.
    let got = snapshot(dst.path());
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (path, want) in &expected {
        let have = &got[path];
        if want.kind == "char" {
            assert_eq!((have.kind, have.rdev), ("char", (0, 0)));
            continue;
        }
        assert_eq!(have.kind, want.kind);
        assert_eq!(
            have.xattrs,
            want.xattrs,
            "{}",
            String::from_utf8_lossy(path)
        );
        assert_eq!(have.data, want.data);
    }
}

#[test]
fn real_overlay_upper_converts() {
    let base = tempfile::tempdir().expect("tempdir");
    let (lower, upper) = real_overlay_upper(base.path());
    let mut blob = Vec::new();
    write_layer(&upper, Compression::Zstd, &mut blob).expect("write");
    let names = tar_names(&untar(&blob));
    for want in [
        ".wh.gone",
        "d/",
        "d/.wh..wh..opq",
        "d/new",
        "new",
        "sub/",
        "sub/f",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    assert!(!names.iter().any(|n| n.contains("old")), "{names:?}");

    // Unpack it as a lower again and mount: the merged view must match what the step saw.
    let unpacked = base.path().join("unpacked");
    std::fs::create_dir(&unpacked).expect("mkdir");
    unpack_layer(&mut blob.as_slice(), &unpacked).expect("unpack");
    let merged = base.path().join("merged2");
    std::fs::create_dir(&merged).expect("mkdir");
    let listing = in_mount_ns(&format!(
        "mount -t overlay overlay -o lowerdir={u}:{l} {m}
         cd {m} && find . | sort && cat sub/f d/new",
        u = unpacked.display(),
        l = lower.display(),
        m = merged.display(),
    ));
    assert_eq!(
        listing,
        ".\n./d\n./d/new\n./keep\n./new\n./sub\n./sub/f\nchanged\nfresh\n"
    );
}

#[test]
fn diff_id_and_streams_agree_with_system_tools() {
    let src = tempfile::tempdir().expect("tempdir");
    rich_tree(src.path());
    let out = tempfile::tempdir().expect("tempdir");
    for (compression, decompress) in [
        (Compression::Zstd, "zstd -dc"),
        (Compression::Gzip, "gzip -dc"),
        (Compression::None, "cat"),
    ] {
        let path = out.path().join(format!("layer.{compression}"));
        let mut file = std::fs::File::create(&path).expect("create");
        let stats = write_layer(src.path(), compression, &mut file).expect("write");
        file.flush().expect("flush");
        let sum = sh(&format!("{decompress} {} | sha256sum", path.display()));
        assert_eq!(
            sum.split_whitespace().next(),
            Some(stats.diff_id.hex().as_str()),
            "{compression}"
        );
        let size = sh(&format!("{decompress} {} | wc -c", path.display()));
        assert_eq!(size.trim(), stats.uncompressed_size.to_string());
        let listing = sh(&format!("{decompress} {} | tar -tvf -", path.display()));
        assert!(listing.contains("data/h2 link to data/h1"), "{listing}");
        assert!(listing.contains("bin/su"), "{listing}");
        // The system tar extracts it too.
        let x = out.path().join(format!("x-{compression}"));
        std::fs::create_dir(&x).expect("mkdir");
        sh(&format!(
            "{decompress} {} | tar --xattrs --xattrs-include='*' -xpf - -C {}",
            path.display(),
            x.display()
        ));
        assert_eq!(std::fs::read(x.join("etc/h3")).expect("read"), b"hard");
        assert_eq!(
            xattrs(&x.join("etc/passwd"))
                .get(&b"user.comment"[..])
                .map(Vec::as_slice),
            Some(&b"accounts"[..])
        );
    }
}

#[test]
fn upper_with_redirect_is_refused() {
    let src = tempfile::tempdir().expect("tempdir");
    require_root();
    std::fs::create_dir(src.path().join("moved")).expect("mkdir");
    set_xattr(
        &src.path().join("moved"),
        "trusted.overlay.redirect",
        b"/orig",
    );
    let err = write_layer(src.path(), Compression::None, &mut std::io::sink())
        .expect_err("redirect dirs cannot be layers");
    let msg = err.to_string();
    assert!(
        msg.contains("redirect_dir=off") && msg.contains("moved"),
        "{msg}"
    );
}

const RSS_ENV: &str = "STRATA_LAYER_RSS_DIR";
const RSS_LIMIT_KB: u64 = 64 * 1024;

fn vm_hwm_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM line")
}

/// Builds ~200 MB: incompressible and zero-filled big files plus many small ones.
fn big_tree(root: &Path) {
    let mut seed = 42u64;
    let mut chunk = vec![0u8; 1 << 20];
    for (name, random) in [("a.bin", true), ("b.bin", true), ("zeros.bin", false)] {
        let mut f = std::fs::File::create(root.join(name)).expect("create");
        for _ in 0..64 {
            if random {
                noise(&mut chunk, &mut seed);
            } else {
                chunk.fill(0);
            }
            f.write_all(&chunk).expect("write");
        }
    }
    for d in 0..20 {
        let dir = root.join(format!("many/{d:02}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for i in 0..100 {
            noise(&mut chunk[..4096], &mut seed);
            std::fs::write(dir.join(format!("{i:03}")), &chunk[..(i * 97) % 4096]).expect("write");
        }
    }
}

/// Runs in a child process (see `streaming_memory_is_bounded`): writes and unpacks the tree
/// named by the env var, and fails if the peak RSS grew by more than the limit.
#[test]
#[ignore = "helper: run in a child process by streaming_memory_is_bounded"]
fn rss_child() {
    let dir = std::path::PathBuf::from(std::env::var_os(RSS_ENV).expect("run by the parent"));
    let src = dir.join("src");
    let layer = dir.join("layer.zst");
    let before = vm_hwm_kb();
    let mut file = std::fs::File::create(&layer).expect("create");
    let stats = write_layer(&src, Compression::Zstd, &mut file).expect("write");
    drop(file);
    let after_write = vm_hwm_kb();
    let target = dir.join("unpacked");
    std::fs::create_dir(&target).expect("mkdir");
    let mut file = std::fs::File::open(&layer).expect("open");
    let unpacked = unpack_layer(&mut file, &target).expect("unpack");
    assert_eq!(unpacked.diff_id, stats.diff_id);
    let after_unpack = vm_hwm_kb();
    println!(
        "RSS uncompressed={} before={before}kB after_write={after_write}kB after_unpack={after_unpack}kB",
        stats.uncompressed_size
    );
    assert!(
        stats.uncompressed_size > 190_000_000,
        "{}",
        stats.uncompressed_size
    );
    assert!(
        after_write - before < RSS_LIMIT_KB,
        "write_layer grew peak RSS by {} kB",
        after_write - before
    );
    assert!(
        after_unpack - before < RSS_LIMIT_KB,
        "unpack_layer grew peak RSS by {} kB",
        after_unpack - before
    );
}

#[test]
fn streaming_memory_is_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    big_tree(&src);
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "write::rss_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(RSS_ENV, dir.path())
        .output()
        .expect("spawn child test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("RSS uncompressed="),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.contains("RSS "))
        .unwrap_or_default();
    println!("{line}");
}

/// File data that ends exactly where one of the writer's 1 MiB pipeline chunks ends (and just
/// before and after) must go through whole: the next header then starts a new chunk.
#[test]
fn data_ending_on_a_chunk_boundary() {
    const MIB: usize = 1 << 20;
    let src = tempfile::tempdir().expect("tempdir");
    // The first entry's 512-byte header plus `a`'s data fills the first chunk exactly; the
    // later files end on, just before and just after later boundaries.
    let sizes = [MIB - 512, MIB - 1024, MIB, MIB + 512, 3 * MIB - 512, 7];
    for (i, size) in sizes.iter().enumerate() {
        let data: Vec<u8> = (0..*size).map(|j| (i * 31 + j * 7) as u8).collect();
        std::fs::write(
            src.path().join(format!("{}", (b'a' + i as u8) as char)),
            data,
        )
        .expect("write file");
    }
    let expected = snapshot(src.path());
    for compression in [Compression::None, Compression::Zstd] {
        let mut blob = Vec::new();
        let written = write_layer(src.path(), compression, &mut blob).expect("write layer");
        assert_eq!(written.entries, sizes.len() as u64);
        if compression == Compression::None {
            assert_eq!(strata_digest::Digest::of(&blob), written.diff_id);
        }
        let dst = tempfile::tempdir().expect("tempdir");
        let unpacked = unpack_layer(&mut blob.as_slice(), dst.path()).expect("unpack layer");
        assert_eq!(unpacked.diff_id, written.diff_id, "{compression}");
        assert_eq!(snapshot(dst.path()), expected, "{compression}");
    }
}
