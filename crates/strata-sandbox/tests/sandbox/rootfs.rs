//! The root file system: overlay, skeleton, /dev, /proc, masks, mounts.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, chown};

use std::path::Path;

use strata_sandbox::rootfs::{MASKED_DIRS, MASKED_FILES};
use strata_sandbox::{Mount, MountKind};

use crate::{Fixture, bind, run, run_ok, set_mode, sh};

#[test]
fn echo_via_piped_output() {
    let fx = Fixture::busybox();
    let out = run_ok(&fx, &fx.spec(&["echo", "hello", "world"]));
    assert_eq!(out, "hello world\n");
    // stderr is merged into the same pipe.
    let out = run_ok(&fx, &sh(&fx, "echo out; echo err >&2"));
    assert_eq!(out, "out\nerr\n");
}

#[test]
fn writes_land_in_upper_and_deletes_become_whiteouts() {
    let fx = Fixture::busybox();
    fs::create_dir(fx.lower.join("data")).expect("mkdir");
    fs::write(fx.lower.join("data/old"), "old").expect("write");
    run_ok(&fx, &sh(&fx, "echo new > /new && rm /data/old"));
    assert_eq!(
        fs::read_to_string(fx.upper().join("new")).expect("new"),
        "new\n"
    );
    let whiteout = fx
        .upper()
        .join("data/old")
        .symlink_metadata()
        .expect("whiteout");
    assert!(whiteout.file_type().is_char_device());
    assert_eq!(whiteout.rdev(), 0);
    assert_eq!(fx.upper_entries(), ["data", "data/old", "new"]);
}

#[test]
fn upper_never_contains_mountpoints() {
    let fx = Fixture::busybox();
    let host = fx.tmp.path().join("host");
    fs::create_dir_all(host.join("ro")).expect("mkdir");
    fs::write(host.join("ro/file"), "ro").expect("write");
    fs::write(host.join("hosts"), "127.0.0.1 localhost\n").expect("write");
    fs::write(host.join("resolv.conf"), "nameserver 192.0.2.53\n").expect("write");
    let mut spec = sh(
        &fx,
        "cat /etc/resolv.conf /etc/hosts /mnt/deep/ro/file >/dev/null && ls / /dev /tmp2 >/dev/null",
    );
    spec.mounts = vec![
        bind("/etc/resolv.conf", &host.join("resolv.conf"), true),
        bind("/etc/hosts", &host.join("hosts"), false),
        bind("/mnt/deep/ro", &host.join("ro"), true),
        Mount {
            target: "/tmp2".into(),
            source: "".into(),
            kind: MountKind::Tmpfs,
            beneath: None,
        },
    ];
    run_ok(&fx, &spec);
    assert_eq!(fx.upper_entries(), Vec::<String>::new());
}

#[test]
fn resolv_conf_is_the_bound_file_and_writes_bypass_upper() {
    let fx = Fixture::busybox();
    let resolv = fx.tmp.path().join("resolv.conf");
    fs::write(&resolv, "nameserver 192.0.2.53\n").expect("write");
    let mut spec = sh(
        &fx,
        "cat /etc/resolv.conf; echo 'search example' >> /etc/resolv.conf",
    );
    spec.mounts = vec![bind("/etc/resolv.conf", &resolv, false)];
    let out = run_ok(&fx, &spec);
    assert_eq!(out, "nameserver 192.0.2.53\n");
    assert_eq!(
        fs::read_to_string(&resolv).expect("read"),
        "nameserver 192.0.2.53\nsearch example\n"
    );
    assert_eq!(fx.upper_entries(), Vec::<String>::new());
    // The image's own file is untouched and visible again without the mount.
    let out = run_ok(&fx, &fx.spec(&["cat", "/etc/resolv.conf"]));
    assert_eq!(out, "nameserver 192.0.2.1\n");
}

#[test]
fn readonly_bind_is_readonly() {
    let fx = Fixture::busybox();
    let src = fx.tmp.path().join("src");
    fs::create_dir(&src).expect("mkdir");
    let mut spec = sh(&fx, "touch /src/x");
    spec.mounts = vec![bind("/src", &src, true)];
    let (status, out) = run(&fx, &spec).expect("runs");
    assert!(!status.success());
    assert!(out.contains("Read-only file system"), "{out}");
    spec.mounts = vec![bind("/src", &src, false)];
    run_ok(&fx, &spec);
    assert!(src.join("x").exists());
    assert_eq!(fx.upper_entries(), Vec::<String>::new());
}

#[test]
fn tmpfs_mount_is_writable_and_not_in_upper() {
    let fx = Fixture::busybox();
    let mut spec = sh(
        &fx,
        "echo x > /cache/f && cat /cache/f && stat -c %a /cache",
    );
    spec.mounts = vec![Mount {
        target: "/cache".into(),
        source: "".into(),
        kind: MountKind::Tmpfs,
        beneath: None,
    }];
    assert_eq!(run_ok(&fx, &spec), "x\n1777\n");
    assert_eq!(fx.upper_entries(), Vec::<String>::new());
}

#[test]
fn dev_has_only_the_listed_entries() {
    let fx = Fixture::busybox();
    let out = run_ok(&fx, &fx.spec(&["ls", "-1", "/dev"]));
    let mut entries: Vec<&str> = out.lines().collect();
    entries.sort_unstable();
    assert_eq!(
        entries,
        [
            "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout",
            "tty", "urandom", "zero"
        ]
    );
    let out = run_ok(
        &fx,
        &sh(
            &fx,
            "readlink /dev/fd; readlink /dev/ptmx; stat -c '%t:%T' /dev/null; echo x > /dev/null; head -c 4 /dev/zero | wc -c; ls /dev/pts",
        ),
    );
    assert_eq!(out, "/proc/self/fd\npts/ptmx\n1:3\n4\nptmx\n");
}

#[test]
fn proc_masks_apply() {
    let fx = Fixture::busybox();
    // This kernel may lack some of the paths (e.g. /proc/kcore without CONFIG_PROC_KCORE):
    // a path masked when it exists on the host, absent when it does not.
    let mut script = String::new();
    let mut expected = String::new();
    for rel in MASKED_FILES {
        script.push_str(&format!(
            "stat -c '%t:%T' /{rel} 2>/dev/null || echo absent; "
        ));
        let present = Path::new("/").join(rel).exists();
        expected.push_str(if present { "1:3\n" } else { "absent\n" });
    }
    for rel in MASKED_DIRS {
        script.push_str(&format!(
            "[ -e /{rel} ] && {{ ls -A /{rel} | wc -l; touch /{rel}/x 2>/dev/null || echo ro; }} || echo absent; "
        ));
        let present = Path::new("/").join(rel).exists();
        expected.push_str(if present { "0\nro\n" } else { "absent\n" });
    }
    script.push_str(
        "{ echo 1 > /proc/sys/kernel/domainname; } 2>/dev/null && echo writable || echo readonly; \
         wc -c < /proc/keys",
    );
    expected.push_str("readonly\n0\n");
    assert!(
        Path::new("/proc/keys").exists(),
        "the test needs one masked file on the host"
    );
    assert_eq!(run_ok(&fx, &sh(&fx, &script)), expected);
}

#[test]
fn copied_up_dir_keeps_the_image_attributes() {
    let fx = Fixture::busybox();
    let srv = fx.lower.join("srv");
    fs::create_dir(&srv).expect("mkdir");
    chown(&srv, Some(42), Some(43)).expect("chown");
    set_mode(&srv, 0o710);
    let host = fx.tmp.path().join("host");
    fs::create_dir(&host).expect("mkdir");
    // The mount forces /srv into the skeleton, the write copies it up from there.
    let mut spec = sh(&fx, "touch /srv/new; stat -c '%a %u %g' /srv");
    spec.mounts = vec![bind("/srv/mnt", &host, true)];
    assert_eq!(run_ok(&fx, &spec), "710 42 43\n");
    let up = fx
        .upper()
        .join("srv")
        .symlink_metadata()
        .expect("copied up");
    assert_eq!((up.mode() & 0o7777, up.uid(), up.gid()), (0o710, 42, 43));
    assert_eq!(fx.upper_entries(), ["srv", "srv/new"]);
}

#[test]
fn scratch_image_without_lowers_runs_a_bound_binary() {
    let fx = Fixture::busybox();
    let mut spec = fx.spec(&["/busybox", "echo", "from scratch"]);
    spec.lowers = vec![];
    spec.mounts = vec![bind("/busybox", &fx.lower.join("bin/busybox"), true)];
    assert_eq!(run_ok(&fx, &spec), "from scratch\n");
    assert_eq!(fx.upper_entries(), Vec::<String>::new());
}

#[test]
fn overlay_mount_writes_to_its_upper_and_leaves_lowers_alone() {
    let fx = Fixture::busybox();
    let dir = |name: &str| {
        let path = fx.tmp.path().join(name);
        fs::create_dir_all(&path).expect("mkdir");
        path
    };
    let (top, bottom, upper, work) = (
        dir("ov/top"),
        dir("ov/bottom"),
        dir("ov/upper"),
        dir("ov/work"),
    );
    fs::write(top.join("a"), "top a\n").expect("write");
    fs::write(bottom.join("a"), "bottom a\n").expect("write");
    fs::write(bottom.join("b"), "bottom b\n").expect("write");
    fs::write(bottom.join("gone"), "").expect("write");
    let mut spec = sh(
        &fx,
        "cat /debugroot/a /debugroot/b; echo new > /debugroot/new; rm /debugroot/gone; \
         echo more >> /debugroot/b; grep ' /debugroot ' /proc/self/mountinfo | sed 's/.* - //' | cut -d' ' -f1",
    );
    spec.mounts = vec![Mount {
        target: "/debugroot".into(),
        source: "".into(),
        kind: MountKind::Overlay {
            lowers: vec![top.clone(), bottom.clone()],
            upper: upper.clone(),
            work,
        },
        beneath: None,
    }];
    assert_eq!(run_ok(&fx, &spec), "top a\nbottom b\noverlay\n");
    // Writes went to the mount's upper, not to the lowers nor to the root's upper.
    assert_eq!(fs::read_to_string(upper.join("new")).expect("new"), "new\n");
    assert_eq!(
        fs::read_to_string(upper.join("b")).expect("b"),
        "bottom b\nmore\n"
    );
    assert!(
        upper
            .join("gone")
            .symlink_metadata()
            .expect("whiteout")
            .file_type()
            .is_char_device()
    );
    assert_eq!(
        fs::read_to_string(bottom.join("b")).expect("b"),
        "bottom b\n"
    );
    assert!(bottom.join("gone").exists());
    assert_eq!(fs::read_dir(&top).expect("top").count(), 1);
    // Only the skeleton held the mountpoint.
    assert_eq!(fx.upper_entries(), Vec::<String>::new());
}

#[test]
fn overlay_mount_with_a_missing_lower_is_a_spec_error() {
    let fx = Fixture::busybox();
    let mut spec = sh(&fx, "true");
    spec.mounts = vec![Mount {
        target: "/debugroot".into(),
        source: "".into(),
        kind: MountKind::Overlay {
            lowers: vec![fx.tmp.path().join("missing")],
            upper: fx.upper(),
            work: fx.tmp.path().join("work"),
        },
        beneath: None,
    }];
    let err = run(&fx, &spec).expect_err("spec error");
    assert!(err.to_string().contains("lower dir"), "{err}");
}
