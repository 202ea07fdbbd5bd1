//! Unpacking layers: hostile input, rootfs tarballs, whiteout conversion, corrupt streams.

use std::path::{Path, PathBuf};

use strata_layer::apply::Mode;
use strata_layer::{Compression, unpack_layer, write_layer};
use tar::EntryType;

use crate::*;

/// Builds tars byte by byte, so names the tar crate would refuse (`..`, `/`) can be written.
#[derive(Default)]
struct RawTar(Vec<u8>);

impl RawTar {
    fn add(
        &mut self,
        name: &str,
        kind: EntryType,
        link: &str,
        data: &[u8],
        mode: u32,
    ) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        if matches!(kind, EntryType::Char | EntryType::Block) {
            h.set_device_major(1).expect("major");
            h.set_device_minor(3).expect("minor");
        }
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }
    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.add(name, EntryType::Regular, "", data, 0o644)
    }
    fn dir(&mut self, name: &str) -> &mut Self {
        self.add(name, EntryType::Directory, "", b"", 0o755)
    }
    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.add(name, EntryType::Symlink, target, b"", 0o777)
    }
    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.add(name, EntryType::Link, target, b"", 0o644)
    }
    fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.0);
        out.resize(out.len() + 1024, 0);
        out
    }
}

/// A sandbox: `base/target` is unpacked into; `base/outside` is a file that must survive.
struct Sandbox {
    _dir: tempfile::TempDir,
    base: PathBuf,
    target: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        require_root();
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path().to_path_buf();
        let target = base.join("a/b/target");
        std::fs::create_dir_all(&target).expect("mkdir");
        std::fs::write(base.join("outside"), "precious").expect("write");
        Sandbox {
            _dir: dir,
            base,
            target,
        }
    }
    fn unpack(&self, tar: &[u8]) -> Result<strata_layer::LayerStats, strata_layer::Error> {
        unpack_layer(&mut &tar[..], &self.target)
    }
    /// Everything under `base` outside the target: must be just what `new` made.
    fn assert_outside_untouched(&self) {
        let mut found = Vec::new();
        list(&self.base, &self.target, &mut found);
        found.sort();
        assert_eq!(found, ["a", "a/b", "outside"].map(|s| self.base.join(s)));
        assert_eq!(
            std::fs::read(self.base.join("outside")).expect("read"),
            b"precious"
        );
    }
}

fn list(dir: &Path, skip: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read dir") {
        let p = e.expect("entry").path();
        if p == skip {
            continue;
        }
        out.push(p.clone());
        if std::fs::symlink_metadata(&p).expect("lstat").is_dir() {
            list(&p, skip, out);
        }
    }
}

fn refused(sb: &Sandbox, tar: &[u8], entry: &str, why: &str) {
    let err = sb.unpack(tar).expect_err("hostile layer must be refused");
    let msg = err.to_string();
    assert!(msg.contains(entry) && msg.contains(why), "{msg}");
    sb.assert_outside_untouched();
}

#[test]
fn dotdot_paths_are_refused() {
    let sb = Sandbox::new();
    refused(
        &sb,
        &RawTar::default().file("../evil", b"x").finish(),
        "../evil",
        "`..`",
    );
    refused(
        &sb,
        &RawTar::default().file("a/../../evil", b"x").finish(),
        "a/../../evil",
        "`..`",
    );
    refused(
        &sb,
        &RawTar::default()
            .dir("ok/")
            .file("ok/../../../../outside", b"x")
            .finish(),
        "ok/../../../../outside",
        "`..`",
    );
}

#[test]
fn writes_through_symlinks_stay_inside() {
    let sb = Sandbox::new();
    let unique = format!("strata-evil-{}", std::process::id());
    let tar = RawTar::default()
        .symlink("root", "/")
        .file(&format!("root/{unique}"), b"in root")
        .symlink("up", "../../../")
        .file("up/outside", b"overwritten?")
        .dir("up/newdir/")
        .symlink("abs", &sb.base.join("outside").display().to_string())
        .file("abs", b"replaces the symlink, not its target")
        .dir("etc/")
        .symlink("hostetc", "/etc")
        .file("hostetc/passwd-strata", b"fake")
        .finish();
    sb.unpack(&tar)
        .expect("symlinks are followed inside the root");
    assert!(
        !Path::new("/").join(&unique).exists(),
        "wrote into the host root"
    );
    assert!(
        !Path::new("/etc/passwd-strata").exists(),
        "wrote into the host /etc"
    );
    sb.assert_outside_untouched();
    let t = &sb.target;
    assert_eq!(std::fs::read(t.join(&unique)).expect("read"), b"in root");
    assert_eq!(
        std::fs::read(t.join("outside")).expect("read"),
        b"overwritten?"
    );
    assert!(t.join("newdir").is_dir());
    assert!(
        std::fs::symlink_metadata(t.join("abs"))
            .expect("lstat")
            .is_file()
    );
    assert_eq!(
        std::fs::read(t.join("etc/passwd-strata")).expect("read"),
        b"fake"
    );
    // The symlinks themselves are kept verbatim.
    assert_eq!(
        std::fs::read_link(t.join("up")).expect("readlink"),
        Path::new("../../../")
    );

    // A parent that is a dangling symlink is an error, not a dir created somewhere.
    let sb = Sandbox::new();
    refused(
        &sb,
        &RawTar::default()
            .symlink("dangling", "/nonexistent-strata")
            .file("dangling/x", b"x")
            .finish(),
        "dangling/x",
        "open parent dir",
    );
    assert!(!Path::new("/nonexistent-strata").exists());
}

#[test]
fn hardlinks_must_stay_inside_and_not_be_dirs() {
    let sb = Sandbox::new();
    refused(
        &sb,
        &RawTar::default().hardlink("hl", "../outside").finish(),
        "hl",
        "`..`",
    );
    assert!(!sb.target.join("hl").exists());

    let sb = Sandbox::new();
    refused(
        &sb,
        &RawTar::default().dir("d/").hardlink("x", "d").finish(),
        "x",
        "is a directory",
    );

    // Through a symlink to the host's /etc: resolved in the root, where nothing exists.
    let sb = Sandbox::new();
    refused(
        &sb,
        &RawTar::default()
            .symlink("hostetc", "/etc")
            .hardlink("pw", "hostetc/passwd")
            .finish(),
        "pw",
        "does not exist in the layer",
    );

    // Through a symlink to a file outside: the symlink itself is linked, not its target.
    let sb = Sandbox::new();
    let outside = sb.base.join("outside").display().to_string();
    sb.unpack(
        &RawTar::default()
            .symlink("s", &outside)
            .hardlink("h", "s")
            .finish(),
    )
    .expect("hardlink to a symlink");
    let meta = std::fs::symlink_metadata(sb.target.join("h")).expect("lstat");
    assert!(meta.file_type().is_symlink());
    sb.assert_outside_untouched();
}

#[test]
fn absolute_and_dot_paths_land_in_the_target() {
    let sb = Sandbox::new();
    let tar = RawTar::default()
        .file("/etc/x", b"abs")
        .file("./etc/y", b"dot")
        .file("//usr///bin/z", b"slashes")
        .add("dev/null", EntryType::Char, "", b"", 0o666)
        .finish();
    let stats = sb.unpack(&tar).expect("unpack");
    assert_eq!(stats.entries, 4);
    assert_eq!(
        std::fs::read(sb.target.join("etc/x")).expect("read"),
        b"abs"
    );
    assert_eq!(
        std::fs::read(sb.target.join("etc/y")).expect("read"),
        b"dot"
    );
    assert_eq!(
        std::fs::read(sb.target.join("usr/bin/z")).expect("read"),
        b"slashes"
    );
    assert!(sb.target.join("dev/null").exists());
    sb.assert_outside_untouched();
}

#[test]
fn replacing_a_non_empty_dir_is_refused() {
    let sb = Sandbox::new();
    let tar = RawTar::default()
        .file("d/f", b"x")
        .file("d", b"file now")
        .finish();
    refused(&sb, &tar, "d", "non-empty directory");
}

#[test]
fn whiteouts_become_overlay_form() {
    let sb = Sandbox::new();
    let mut pax = tar::Builder::new(Vec::new());
    // A hostile layer trying to set overlay xattrs itself: they are dropped.
    pax.append_pax_extensions([
        ("SCHILY.xattr.trusted.overlay.redirect", &b"/etc"[..]),
        ("SCHILY.xattr.user.kept", &b"1"[..]),
    ])
    .expect("pax");
    let mut tar = pax.into_inner().expect("tar");
    tar.truncate(tar.len() - 1024); // drop the end-of-archive blocks
    tar.extend(
        RawTar::default()
            .dir("d/")
            .file(".wh.gone", b"")
            .file("d/.wh..wh..opq", b"")
            .file("d/.wh..wh.plnk", b"")
            .file("sub/.wh.x", b"")
            .finish(),
    );
    let stats = sb.unpack(&tar).expect("unpack");
    assert_eq!(stats.entries, 5);
    let t = &sb.target;
    let gone = std::fs::symlink_metadata(t.join("gone")).expect("whiteout");
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    assert!(gone.file_type().is_char_device() && gone.rdev() == 0);
    assert!(
        std::fs::symlink_metadata(t.join("sub/x"))
            .expect("whiteout")
            .file_type()
            .is_char_device()
    );
    let d = xattrs(&t.join("d"));
    assert_eq!(
        d.get(&b"trusted.overlay.opaque"[..]).map(Vec::as_slice),
        Some(&b"y"[..])
    );
    assert_eq!(d.get(&b"user.kept"[..]).map(Vec::as_slice), Some(&b"1"[..]));
    assert!(!d.contains_key(&b"trusted.overlay.redirect"[..]));
    // Nothing named .wh.* is left on disk.
    assert_eq!(
        sh(&format!(
            "cd {} && find . -name '.wh.*' | wc -l",
            t.display()
        ))
        .trim(),
        "0"
    );
}

#[test]
fn plain_rootfs_tarballs_unpack() {
    let src = tempfile::tempdir().expect("tempdir");
    rich_tree(src.path());
    chmod(src.path(), 0o751);
    let expected = snapshot(src.path());
    let out = tempfile::tempdir().expect("tempdir");
    for (flag, ext) in [("-z", "tgz"), ("--zstd", "tzst"), ("", "tar")] {
        let tarball = out.path().join(format!("rootfs.{ext}"));
        sh(&format!(
            "tar --xattrs --xattrs-include='*' --numeric-owner -C {} {flag} -cf {} .",
            src.path().display(),
            tarball.display()
        ));
        let listing = sh(&format!("tar {flag} -tf {} | head -3", tarball.display()));
        assert!(listing.starts_with("./"), "{listing}");
        let dst = out.path().join(format!("dst-{ext}"));
        std::fs::create_dir(&dst).expect("mkdir");
        let mut file = std::fs::File::open(&tarball).expect("open");
        let stats = unpack_layer(&mut file, &dst).expect("unpack rootfs tarball");
        let sum = sh(&format!(
            "{} {} | sha256sum",
            if flag.is_empty() {
                "cat"
            } else if ext == "tgz" {
                "gzip -dc"
            } else {
                "zstd -dc"
            },
            tarball.display()
        ));
        assert_eq!(
            sum.split_whitespace().next(),
            Some(stats.diff_id.hex().as_str())
        );
        let got = snapshot(&dst);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>()
        );
        for (path, want) in &expected {
            assert_eq!(&got[path], want, "{ext}: {}", String::from_utf8_lossy(path));
        }
        // The `./` entry carries the root's mode onto the target.
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&dst).expect("stat").permissions().mode() & 0o7777,
            0o751
        );
    }
}

#[test]
fn corrupt_streams_fail() {
    let src = tempfile::tempdir().expect("tempdir");
    std::fs::write(src.path().join("f"), vec![7u8; 100_000]).expect("write");
    for compression in [Compression::Zstd, Compression::Gzip] {
        let mut blob = Vec::new();
        write_layer(src.path(), compression, &mut blob).expect("write");
        blob.truncate(blob.len() / 2);
        let dst = tempfile::tempdir().expect("tempdir");
        let err = unpack_layer(&mut blob.as_slice(), dst.path()).expect_err("truncated");
        assert!(
            err.to_string().contains("reading the layer stream failed"),
            "{err}"
        );
    }
    let dst = tempfile::tempdir().expect("tempdir");
    let err = unpack_layer(&mut &[1u8; 700][..], dst.path()).expect_err("garbage");
    assert!(err.to_string().contains("layer stream"), "{err}");
    let err = unpack_layer(&mut &b""[..], &dst.path().join("missing")).expect_err("no target");
    assert!(err.to_string().contains("missing"), "{err}");
}

/// `apply_tar` in [`Mode::Files`] over the sandbox's target, as the file work applies staged
/// tars over a stage's root.
fn apply_files(sb: &Sandbox, tar: &[u8]) -> Result<u64, strata_layer::apply::Error> {
    strata_layer::apply::apply_tar(tar, &sb.target, Mode::Files)
}

#[test]
fn files_mode_merges_into_dirs_through_links_and_keeps_names() {
    let sb = Sandbox::new();
    let t = &sb.target;
    std::fs::create_dir_all(t.join("usr/bin")).expect("mkdir");
    std::fs::write(t.join("usr/bin/old"), "old").expect("write");
    std::os::unix::fs::symlink("usr/bin", t.join("bin")).expect("symlink");
    std::fs::write(t.join("x"), "kept").expect("write");
    let tar = RawTar::default()
        .add("bin/", EntryType::Directory, "", b"", 0o750)
        .file("bin/new", b"new")
        .file(".wh.x", b"a file of that name")
        .finish();
    apply_files(&sb, &tar).expect("apply");
    // The image's link stays; the dir it names takes the entry's mode and times and keeps
    // its content.
    assert_eq!(
        std::fs::read_link(t.join("bin")).expect("still a link"),
        Path::new("usr/bin")
    );
    let meta = std::fs::metadata(t.join("usr/bin")).expect("stat");
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(meta.permissions().mode() & 0o7777, 0o750);
    assert_eq!(meta.mtime(), 1_700_000_000);
    assert_eq!(std::fs::read(t.join("usr/bin/old")).expect("read"), b"old");
    assert_eq!(std::fs::read(t.join("usr/bin/new")).expect("read"), b"new");
    // No whiteouts in file work: `.wh.x` is a file and `x` is untouched.
    assert_eq!(
        std::fs::read(t.join(".wh.x")).expect("read"),
        b"a file of that name"
    );
    assert_eq!(std::fs::read(t.join("x")).expect("read"), b"kept");

    // The same tar as a layer: the link is replaced by a dir, `.wh.x` hides `x`.
    let layer = Sandbox::new();
    std::os::unix::fs::symlink("usr/bin", layer.target.join("bin")).expect("symlink");
    layer.unpack(&tar).expect("unpack");
    assert!(
        std::fs::symlink_metadata(layer.target.join("bin"))
            .expect("lstat")
            .is_dir()
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(layer.target.join("x"))
            .expect("lstat")
            .file_type()
            .is_char_device()
    );
}

#[test]
fn files_mode_refuses_a_dir_where_a_file_is() {
    let sb = Sandbox::new();
    std::fs::write(sb.target.join("f"), "file").expect("write");
    std::os::unix::fs::symlink("nowhere", sb.target.join("dangling")).expect("symlink");
    for name in ["f/", "dangling/"] {
        let err = apply_files(&sb, &RawTar::default().dir(name).finish())
            .expect_err("a dir over a file")
            .to_string();
        assert!(
            err.contains(name.trim_end_matches('/'))
                && err.contains("a file, or a link to no directory"),
            "{err}"
        );
    }
    let err = apply_files(&sb, &RawTar::default().file("f/under", b"x").finish())
        .expect_err("a file under a file")
        .to_string();
    let named = format!("{} is not a directory", sb.target.join("f").display());
    assert!(err.contains("f/under") && err.contains(&named), "{err}");
    assert_eq!(std::fs::read(sb.target.join("f")).expect("read"), b"file");
    // An empty dir may become a file (a git change turning `docs/` into a file); one with
    // content may not.
    std::fs::create_dir_all(sb.target.join("empty")).expect("mkdir");
    std::fs::create_dir_all(sb.target.join("full/x")).expect("mkdir");
    apply_files(
        &sb,
        &RawTar::default().file("empty", b"now a file").finish(),
    )
    .expect("apply");
    assert_eq!(
        std::fs::read(sb.target.join("empty")).expect("read"),
        b"now a file"
    );
    let err = apply_files(&sb, &RawTar::default().file("full", b"x").finish())
        .expect_err("a file over a dir with content")
        .to_string();
    assert!(err.contains("non-empty directory"), "{err}");
}

/// What the file work's applier did not check before it was this one: the image's absolute
/// and `..` links resolve inside the target even outside a chroot, owners out of range are
/// refused, xattrs are applied but never overlay ones.
#[test]
fn files_mode_has_the_layer_protections() {
    let sb = Sandbox::new();
    let t = &sb.target;
    std::os::unix::fs::symlink("/", t.join("abs")).expect("symlink");
    std::os::unix::fs::symlink("../../..", t.join("up")).expect("symlink");
    let tar = RawTar::default()
        .file("abs/in-root", b"1")
        .file("up/outside", b"overwritten?")
        .finish();
    apply_files(&sb, &tar).expect("apply");
    assert_eq!(std::fs::read(t.join("in-root")).expect("read"), b"1");
    assert_eq!(
        std::fs::read(t.join("outside")).expect("read"),
        b"overwritten?"
    );
    sb.assert_outside_untouched();

    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(0);
    h.set_mode(0o644);
    h.set_uid(u64::from(u32::MAX));
    h.set_gid(0);
    h.set_mtime(0);
    b.append_data(&mut h, "bad-owner", &b""[..])
        .expect("append");
    let err = apply_files(&sb, &b.into_inner().expect("tar"))
        .expect_err("uid out of range")
        .to_string();
    assert!(
        err.contains("bad-owner") && err.contains("uid or gid out of range"),
        "{err}"
    );

    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([
        ("SCHILY.xattr.user.note", &b"kept"[..]),
        ("SCHILY.xattr.trusted.overlay.opaque", &b"y"[..]),
    ])
    .expect("pax");
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(EntryType::Directory);
    h.set_size(0);
    h.set_mode(0o755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    b.append_data(&mut h, "d/", &b""[..]).expect("append");
    apply_files(&sb, &b.into_inner().expect("tar")).expect("apply");
    let attrs = xattrs(&t.join("d"));
    assert_eq!(
        attrs.get(&b"user.note"[..]).map(Vec::as_slice),
        Some(&b"kept"[..])
    );
    assert!(
        !attrs.contains_key(&b"trusted.overlay.opaque"[..]),
        "{attrs:?}"
    );
}

/// An `ADD` archive: its `./` entry leaves the destination as it is, its links keep their
/// owner and time, its directories their times (set after their content), and its links
/// resolve with the destination as the root.
#[test]
fn an_archive_is_extracted_into_its_destination_as_its_root() {
    let sb = Sandbox::new();
    std::fs::set_permissions(
        &sb.target,
        std::os::unix::fs::PermissionsExt::from_mode(0o751),
    )
    .expect("chmod");
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |name: &str, kind: EntryType, link: &str, data: &[u8], owner: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(if kind == EntryType::Directory {
            0o700
        } else {
            0o644
        });
        h.set_uid(owner);
        h.set_gid(owner + 1);
        h.set_mtime(1_500_000_000);
        h.set_size(data.len() as u64);
        match kind {
            EntryType::Symlink => tar.append_link(&mut h, name, link).expect("link"),
            _ => tar.append_data(&mut h, name, data).expect("entry"),
        }
    };
    add("./", EntryType::Directory, "", b"", 1);
    add("./d/", EntryType::Directory, "", b"", 3);
    add("./d/f", EntryType::Regular, "", b"x", 3);
    add("./l", EntryType::Symlink, "/d", b"", 5);
    add("./l/through", EntryType::Regular, "", b"y", 0);
    let tar = tar.into_inner().expect("tar");
    strata_layer::apply::extract_archive(&tar[..], &sb.target).expect("extract");
    let meta = |p: &str| std::fs::symlink_metadata(sb.target.join(p)).expect("lstat");
    use std::os::unix::fs::MetadataExt;
    let root = meta("");
    assert_eq!(
        (root.mode() & 0o7777, root.uid()),
        (0o751, 0),
        "./ changed nothing"
    );
    assert_eq!((meta("d").uid(), meta("d").mtime()), (3, 1_500_000_000));
    assert_eq!(
        (meta("l").uid(), meta("l").gid(), meta("l").mtime()),
        (5, 6, 1_500_000_000)
    );
    assert_eq!(
        std::fs::read(sb.target.join("d/through")).expect("read"),
        b"y"
    );
    sb.assert_outside_untouched();
}
