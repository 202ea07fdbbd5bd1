//! Integration tests for strata-layer. They run as root (mknod, chown, trusted xattrs,
//! overlay mounts in `unshare -m`); without root they fail saying so.

mod apply;
mod compression;
mod diff;
mod whiteouts;
mod write;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps, XattrFlags};
use strata_digest::Digest;

/// Fails loudly when not root: these tests need real mknod/chown/xattrs.
pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "strata-layer integration tests need root (mknod, chown, trusted.* xattrs, overlay mounts); run them as root"
    );
}

/// Everything a layer must preserve about one entry.
#[derive(Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub rdev: (u32, u32),
    pub target: Option<Vec<u8>>,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    pub data: Option<Digest>,
    /// The first path (in sorted walk order) sharing this inode, for hardlinks.
    pub link: Option<Vec<u8>>,
}

/// A full walk of `root` (root itself excluded, sockets skipped), keyed by relative path.
pub fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, Node> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<u8>> = BTreeMap::new();
    walk(root, Path::new(""), &mut out, &mut inodes);
    out
}

fn walk(
    root: &Path,
    rel: &Path,
    out: &mut BTreeMap<Vec<u8>, Node>,
    inodes: &mut BTreeMap<(u64, u64), Vec<u8>>,
) {
    let dir = root.join(rel);
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let child = rel.join(&name);
        let path = root.join(&child);
        let meta = std::fs::symlink_metadata(&path).expect("lstat");
        let ft = meta.file_type();
        if ft.is_socket() {
            continue;
        }
        let key = child.as_os_str().as_bytes().to_vec();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_file() {
            "file"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else {
            "fifo"
        };
        let whiteout = ft.is_char_device() && meta.rdev() == 0;
        let link = if !ft.is_dir() && !whiteout && meta.nlink() > 1 {
            match inodes.get(&(meta.dev(), meta.ino())) {
                Some(first) => Some(first.clone()),
                None => {
                    inodes.insert((meta.dev(), meta.ino()), key.clone());
                    None
                }
            }
        } else {
            None
        };
        let node = Node {
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: meta.mtime(),
            rdev: (
                rustix::fs::major(meta.rdev()),
                rustix::fs::minor(meta.rdev()),
            ),
            target: ft.is_symlink().then(|| {
                std::fs::read_link(&path)
                    .expect("readlink")
                    .as_os_str()
                    .as_bytes()
                    .to_vec()
            }),
            xattrs: xattrs(&path),
            data: ft.is_file().then(|| {
                let mut h =
                    strata_digest::HashingReader::new(std::fs::File::open(&path).expect("open"));
                std::io::copy(&mut h, &mut std::io::sink()).expect("read");
                h.finish().0
            }),
            link,
        };
        out.insert(key, node);
        if ft.is_dir() {
            walk(root, &child, out, inodes);
        }
    }
}

/// All xattrs of `path` (not following symlinks).
pub fn xattrs(path: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut names = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(path, &mut names[..]).expect("llistxattr");
    let mut out = BTreeMap::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let mut value = vec![0u8; 65536];
        let len = rustix::fs::lgetxattr(path, name, &mut value[..]).expect("lgetxattr");
        out.insert(name.to_vec(), value[..len].to_vec());
    }
    out
}

pub fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setxattr {name} on {}: {e}", path.display()));
}

pub fn mknod(path: &Path, ft: FileType, mode: u32, major: u32, minor: u32) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        ft,
        Mode::from_raw_mode(mode),
        rustix::fs::makedev(major, minor),
    )
    .unwrap_or_else(|e| panic!("mknod {}: {e}", path.display()));
}

pub fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).expect("lchown");
}

pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

pub fn set_mtime(path: &Path, secs: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .expect("utimensat");
}

/// A `security.capability` value (v2) granting CAP_NET_BIND_SERVICE, effective.
pub const CAP_NET_BIND_SERVICE: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, // VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
    0x00, 0x04, 0x00, 0x00, // permitted[0]: bit 10
    0x00, 0x00, 0x00, 0x00, // inheritable[0]
    0x00, 0x00, 0x00, 0x00, // permitted[1]
    0x00, 0x00, 0x00, 0x00, // inheritable[1]
];

/// Deterministic pseudo-random bytes (xorshift), for incompressible file data.
pub fn noise(buf: &mut [u8], seed: &mut u64) {
    for chunk in buf.chunks_mut(8) {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let bytes = seed.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// A tree with every kind of entry and attribute a layer must carry.
pub fn rich_tree(root: &Path) {
    require_root();
    let p = |s: &str| root.join(s);
    for d in [
        "bin",
        "data",
        "dev",
        "etc",
        "home/user",
        "tmp",
        "private",
        "run",
        "usr/lib",
    ] {
        std::fs::create_dir_all(p(d)).expect("mkdir");
    }
    chmod(&p("tmp"), 0o1777);
    chmod(&p("private"), 0o700);
    chown(&p("home/user"), 1000, 1000);

    std::fs::write(p("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").expect("write");
    set_xattr(&p("etc/passwd"), "user.comment", b"accounts");
    set_xattr(&p("etc"), "trusted.strata-test", b"dir xattr");
    set_xattr(&p("etc"), "user.dir", b"");

    std::fs::write(p("bin/su"), "#!/bin/true\n").expect("write");
    chmod(&p("bin/su"), 0o4755);
    std::fs::write(p("bin/wall"), "wall").expect("write");
    chown(&p("bin/wall"), 0, 5);
    chmod(&p("bin/wall"), 0o2755);
    std::fs::write(p("bin/ping"), "ping").expect("write");
    chmod(&p("bin/ping"), 0o755);
    set_xattr(&p("bin/ping"), "security.capability", &CAP_NET_BIND_SERVICE);

    std::fs::write(p("home/user/notes"), "private").expect("write");
    chown(&p("home/user/notes"), 1000, 1000);
    chmod(&p("home/user/notes"), 0o600);

    let mut big = vec![0u8; 3 * 1024 * 1024 + 123];
    noise(&mut big, &mut 0x9e3779b97f4a7c15);
    std::fs::write(p("data/big"), &big).expect("write");
    std::fs::write(p("data/empty"), "").expect("write");
    std::fs::write(p("data/h1"), "hard").expect("write");
    std::fs::hard_link(p("data/h1"), p("data/h2")).expect("link");
    std::fs::hard_link(p("data/h1"), p("etc/h3")).expect("link");

    std::os::unix::fs::symlink("/usr/share/zoneinfo/UTC", p("etc/localtime")).expect("symlink");
    std::os::unix::fs::symlink("usr/lib", p("lib")).expect("symlink");
    chown(&p("lib"), 12, 34);

    mknod(&p("dev/null"), FileType::CharacterDevice, 0o666, 1, 3);
    mknod(&p("dev/loop0"), FileType::BlockDevice, 0o660, 7, 0);
    chown(&p("dev/loop0"), 0, 6);
    mknod(&p("dev/fifo"), FileType::Fifo, 0o600, 0, 0);
    drop(std::os::unix::net::UnixListener::bind(p("run/sock")).expect("socket"));

    let long = root.join("d".repeat(120)).join("f".repeat(150));
    std::fs::create_dir_all(long.parent().expect("parent")).expect("mkdir");
    std::fs::write(&long, "long").expect("write");
    std::fs::write(root.join(OsStr::from_bytes(b"caf\xe9")), "latin-1 name").expect("write");

    stamp_mtimes(root);
}

/// Gives every entry under `root` a distinct known mtime (children before their dirs).
pub fn stamp_mtimes(root: &Path) {
    let mut paths = Vec::new();
    collect(root, &mut paths);
    // Deepest first, so setting a child's time never disturbs its (already set) parent.
    paths.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, path) in paths.iter().enumerate() {
        set_mtime(path, 1_600_000_000 + i as i64 * 3_600);
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read dir") {
        let path = e.expect("entry").path();
        let is_dir = std::fs::symlink_metadata(&path).expect("lstat").is_dir();
        out.push(path.clone());
        if is_dir {
            collect(&path, out);
        }
    }
}

/// Entry names of an uncompressed tar, via the tar crate.
pub fn tar_names(tar: &[u8]) -> Vec<String> {
    let mut ar = tar::Archive::new(tar);
    ar.entries()
        .expect("entries")
        .map(|e| String::from_utf8_lossy(&e.expect("entry").path_bytes()).into_owned())
        .collect()
}

/// The uncompressed tar of a (possibly compressed) blob, via the crate.
pub fn untar(blob: &[u8]) -> Vec<u8> {
    let mut r = strata_layer::decompressed(Box::new(std::io::Cursor::new(blob.to_vec())))
        .expect("decompressed");
    let mut out = Vec::new();
    r.read_to_end(&mut out).expect("read");
    out
}

/// Runs `sh -c script`, asserting success; returns stdout.
pub fn sh(script: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("spawn sh");
    assert!(
        out.status.success(),
        "`{script}` failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `script` in a new mount namespace (`unshare -m`), so overlay mounts vanish with it.
pub fn in_mount_ns(script: &str) -> String {
    require_root();
    sh(&format!(
        "unshare -m sh -ec '{}'",
        script.replace('\'', r"'\''")
    ))
}

/// Builds a real overlay upper under `base`: lower has `keep`, `gone`, `d/{old1,old2}`,
/// `sub/f`; through the overlay, `gone` is deleted, `d` is replaced (`rm -rf d && mkdir d`),
/// `sub/f` is modified and `new` is added. Returns (lower, upper).
pub fn real_overlay_upper(base: &Path) -> (PathBuf, PathBuf) {
    let (lower, upper, work, merged) = (
        base.join("lower"),
        base.join("upper"),
        base.join("work"),
        base.join("merged"),
    );
    for d in [&lower, &upper, &work, &merged] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    std::fs::create_dir_all(lower.join("d")).expect("mkdir");
    std::fs::create_dir_all(lower.join("sub")).expect("mkdir");
    for f in ["keep", "gone", "d/old1", "d/old2", "sub/f"] {
        std::fs::write(lower.join(f), f).expect("write");
    }
    in_mount_ns(&format!(
        "mount -t overlay overlay -o lowerdir={l},upperdir={u},workdir={w},redirect_dir=off,metacopy=off {m}
         rm {m}/gone
         rm -rf {m}/d && mkdir {m}/d && echo fresh > {m}/d/new
         echo changed > {m}/sub/f
         echo added > {m}/new",
        l = lower.display(),
        u = upper.display(),
        w = work.display(),
        m = merged.display(),
    ));
    (lower, upper)
}
