//! OCI whiteouts at every depth, in layers made by GNU tar with docker's exact names, unpacked
//! and stacked: the mounted overlay and `merged::walk` both show what the OCI image spec's
//! "Whiteouts" section says; hostile whiteout names never reach outside the target.

use std::path::{Path, PathBuf};

use strata_layer::{merged, unpack_layer};

use crate::*;

/// A layer tar made by `tar` from `files` (paths ending in `/` are dirs; others files with
/// their own path as content; `name -> target` a symlink), names in the archive as given.
fn gnu_tar_layer(base: &Path, name: &str, files: &[&str]) -> Vec<u8> {
    let dir = base.join(format!("{name}-src"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    for f in files {
        if let Some((link, target)) = f.split_once(" -> ") {
            std::os::unix::fs::symlink(target, dir.join(link)).expect("symlink");
        } else if let Some(d) = f.strip_suffix('/') {
            std::fs::create_dir_all(dir.join(d)).expect("mkdir");
        } else {
            let p = dir.join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            // Whiteout files are empty, as docker writes them.
            let content = if f.rsplit('/').next().is_some_and(|n| n.starts_with(".wh.")) {
                String::new()
            } else {
                f.to_string()
            };
            std::fs::write(p, content).expect("write");
        }
    }
    let tar = base.join(format!("{name}.tar"));
    sh(&format!(
        "cd {} && tar --format=gnu --numeric-owner --sort=name --blocking-factor=1 -cf {} .",
        dir.display(),
        tar.display()
    ));
    std::fs::read(tar).expect("read tar")
}

/// Unpacks `tar` into `base/name` (a snapshot dir).
fn snapshot_of(base: &Path, name: &str, tar: &[u8]) -> PathBuf {
    let dir = base.join(name);
    std::fs::create_dir(&dir).expect("mkdir");
    unpack_layer(&mut &tar[..], &dir).expect("unpack");
    dir
}

/// The merged tree of `lowers` (topmost first) as mounted by overlayfs (after
/// `merged::visible` cuts the stack), one `path` or `path/` per line, sorted.
fn mounted_tree(base: &Path, lowers: &[PathBuf]) -> Vec<String> {
    let shown = merged::visible(lowers).expect("visible");
    let m = base.join("mnt");
    std::fs::create_dir_all(&m).expect("mkdir");
    let lowerdir: Vec<String> = shown.iter().map(|p| p.display().to_string()).collect();
    // One lower needs a second for a read-only overlay; an empty dir changes nothing.
    let empty = base.join("empty-lower");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let out = in_mount_ns(&format!(
        "mount -t overlay overlay -o lowerdir={}:{} {m}
         cd {m} && find . -mindepth 1 \\( -type d -printf '%P/\\n' \\) -o -printf '%P\\n' | sort",
        lowerdir.join(":"),
        empty.display(),
        m = m.display(),
    ));
    out.lines().map(str::to_string).collect()
}

fn walked_tree(lowers: &[PathBuf]) -> Vec<String> {
    let mut out: Vec<String> = merged::walk(lowers, "/")
        .expect("walk")
        .into_iter()
        .map(|e| {
            if e.meta.is_dir() {
                format!("{}/", e.path)
            } else {
                e.path
            }
        })
        .collect();
    out.sort();
    out
}

#[test]
fn whiteouts_and_opaque_dirs_at_every_depth() {
    require_root();
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path();
    let l1 = gnu_tar_layer(
        base,
        "l1",
        &[
            "a",
            "b",
            "d/x",
            "d/y",
            "e/deep/z",
            "e/deep/kept",
            "e/f",
            "keep/k",
        ],
    );
    // Root-level whiteout, opaque dir one level down, whiteout two levels down.
    let l2 = gnu_tar_layer(
        base,
        "l2",
        &[
            ".wh.a",
            "d/.wh..wh..opq",
            "d/new",
            "e/deep/.wh.z",
            "e/deep/w",
        ],
    );
    // A root-level opaque marker: the whole file system below is replaced.
    let l3 = gnu_tar_layer(base, "l3", &[".wh..wh..opq", "c", "keep/k3"]);
    assert!(
        tar_names(&l3).iter().any(|n| n == "./.wh..wh..opq"),
        "{:?}",
        tar_names(&l3)
    );
    let s1 = snapshot_of(base, "s1", &l1);
    let s2 = snapshot_of(base, "s2", &l2);
    let s3 = snapshot_of(base, "s3", &l3);

    let two = vec![s2.clone(), s1.clone()];
    let expected_two = [
        "b",
        "d/",
        "d/new",
        "e/",
        "e/deep/",
        "e/deep/kept",
        "e/deep/w",
        "e/f",
        "keep/",
        "keep/k",
    ];
    assert_eq!(mounted_tree(base, &two), expected_two);
    assert_eq!(walked_tree(&two), expected_two);

    let three = vec![s3, s2, s1];
    let expected_three = ["c", "keep/", "keep/k3"];
    assert_eq!(mounted_tree(base, &three), expected_three);
    assert_eq!(walked_tree(&three), expected_three);
    assert_eq!(merged::lookup(&three, "a").expect("lookup"), None);
    assert_eq!(merged::lookup(&three, "keep/k").expect("lookup"), None);
    assert!(merged::lookup(&three, "keep/k3").expect("lookup").is_some());
}

/// The header of an empty regular file named `name` exactly (no normalization).
fn empty_entry(name: &str) -> [u8; 512] {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_size(0);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    *h.as_bytes()
}

#[test]
fn hostile_whiteout_names_stay_inside() {
    require_root();
    let tmp = tempfile::tempdir().expect("tempdir");
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    std::fs::write(outside.join("victim"), "v").expect("write");
    let before = snapshot(&outside);

    // Refused outright, naming the entry.
    for (name, reason) in [
        (".wh..", "whiteout of an invalid name"),
        ("d/.wh.", "whiteout of an invalid name"),
        ("../.wh.victim", "`..`"),
        ("d/../../.wh.victim", "`..`"),
    ] {
        let mut tar = empty_entry(name).to_vec();
        tar.extend_from_slice(&[0; 1024]);
        let target = tmp.path().join(format!("t{}", name.len()));
        std::fs::create_dir_all(&target).expect("mkdir");
        let err = unpack_layer(&mut &tar[..], &target).expect_err(name);
        let msg = err.to_string();
        assert!(msg.contains(name) && msg.contains(reason), "{name}: {msg}");
    }

    // Whiteouts and an opaque marker through symlinks to the outside dir: resolved inside
    // the target, as if it were `/`, where the layer made the same path with a `victim`.
    let abs = outside.display().to_string();
    let rel = abs.trim_start_matches('/');
    let victim = format!("{rel}/victim");
    let layer = gnu_tar_layer(
        tmp.path(),
        "evil",
        &[
            &format!("abs -> {abs}"),
            "up -> ../../../../..",
            "rel -> .",
            &victim,
        ],
    );
    let mut tar = layer[..layer.len() - 1024].to_vec(); // drop the end-of-archive blocks
    let up = format!("up/{rel}/.wh.victim");
    for name in [
        "abs/.wh.victim",
        "abs/.wh..wh..opq",
        up.as_str(),
        "rel/../.wh.victim",
    ] {
        tar.extend_from_slice(&empty_entry(name));
    }
    tar.extend_from_slice(&[0; 1024]);
    let target = tmp.path().join("target");
    std::fs::create_dir(&target).expect("mkdir");
    // `rel/../` is a `..` component: the layer is refused there, after the others applied.
    let err = unpack_layer(&mut &tar[..], &target).expect_err("`..`");
    assert!(err.to_string().contains("rel/../.wh.victim"), "{err}");
    assert_eq!(snapshot(&outside), before, "the outside dir was touched");
    assert!(xattrs(&outside).is_empty());
    // They landed inside: `<target><abs>/victim` is a whiteout, its dir opaque.
    let inside = target.join(rel);
    let meta = std::fs::symlink_metadata(inside.join("victim")).expect("whiteout inside");
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    assert!(meta.file_type().is_char_device() && meta.rdev() == 0);
    assert_eq!(
        xattrs(&inside)
            .get(&b"trusted.overlay.opaque"[..])
            .map(Vec::as_slice),
        Some(&b"y"[..])
    );
}
