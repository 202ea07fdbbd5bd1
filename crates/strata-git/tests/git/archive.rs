use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use strata_git::{Owner, Source};

use crate::util::{TestRepo, filter};

fn archive(r: &TestRepo, add: &str, to: &str, owner: Owner) -> (Vec<u8>, strata_git::ArchiveStats) {
    let repo = r.repo();
    let snap = repo.snapshot(Source::Commit(r.head())).expect("snapshot");
    let mut out = Vec::new();
    let stats = snap
        .write_archive(&filter(add, &[], &["skip"]), to, owner, &mut out)
        .expect("archive");
    (out, stats)
}

fn tar(args: &[&str], input: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("a.tar");
    std::fs::write(&file, input).expect("write tar");
    let out = Command::new("tar")
        .args(args)
        .arg("-f")
        .arg(&file)
        .output()
        .expect("tar runs");
    assert!(
        out.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

#[test]
fn round_trip_with_system_tar() {
    let r = TestRepo::new();
    r.write("src/main.rs", "fn main() {}\n");
    r.write("src/bin/run.sh", "#!/bin/sh\necho hi\n");
    r.chmod("src/bin/run.sh", 0o755);
    r.symlink("main.rs", "src/latest.rs");
    r.write("src/skip/x", "not archived\n");
    r.write("src/data.bin", [0u8, 159, 146, 150, 255]);
    let long = format!("src/{}/{}.txt", "d".repeat(80), "f".repeat(80));
    r.write(&long, "long\n");
    r.write("outside.txt", "no\n");
    r.commit("init");

    let (bytes, stats) = archive(
        &r,
        "/src",
        "/app",
        Owner {
            uid: 1000,
            gid: 1000,
        },
    );
    assert_eq!((stats.files, stats.symlinks), (4, 1));
    assert_eq!(stats.dirs, 3, "app, app/bin, app/ddd…");

    let listing = tar(&["-tv", "--numeric-owner"], &bytes);
    for line in listing.lines() {
        assert!(line.contains(" 1000/1000 "), "owner missing in {line}");
    }
    assert!(
        listing.lines().next().expect("first").ends_with(" app/"),
        "{listing}"
    );
    assert!(listing.contains("app/latest.rs -> main.rs"), "{listing}");
    assert!(
        !listing.contains("skip") && !listing.contains("outside"),
        "{listing}"
    );

    let out = tempfile::tempdir().expect("tmp");
    let file = out.path().join("a.tar");
    std::fs::write(&file, &bytes).expect("write");
    let st = Command::new("tar")
        .args(["-x", "--no-same-owner", "-f"])
        .arg(&file)
        .arg("-C")
        .arg(out.path())
        .status()
        .expect("tar");
    assert!(st.success());
    let app = out.path().join("app");
    assert_eq!(
        std::fs::read(app.join("main.rs")).expect("main"),
        b"fn main() {}\n"
    );
    assert_eq!(
        std::fs::read(app.join("data.bin")).expect("bin"),
        [0u8, 159, 146, 150, 255]
    );
    let mode = |p: &str| {
        std::fs::metadata(app.join(p))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("bin/run.sh"), 0o755);
    assert_eq!(mode("main.rs"), 0o644);
    assert_eq!(mode("bin"), 0o755);
    assert_eq!(
        std::fs::read_link(app.join("latest.rs"))
            .expect("link")
            .to_str(),
        Some("main.rs")
    );
    let long_rel = long.strip_prefix("src/").expect("prefix");
    assert_eq!(std::fs::read(app.join(long_rel)).expect("long"), b"long\n");
}

#[test]
fn default_owner_root_and_to_root() {
    let r = TestRepo::new();
    r.write("a/b.txt", "b\n");
    r.commit("init");
    let (bytes, stats) = archive(&r, "/", "/", Owner::default());
    assert_eq!(stats.dirs, 1);
    let listing = tar(&["-tv", "--numeric-owner"], &bytes);
    assert!(listing.lines().all(|l| l.contains(" 0/0 ")), "{listing}");
    let names = tar(&["-t"], &bytes);
    assert_eq!(names.lines().collect::<Vec<_>>(), ["a/", "a/b.txt"]);
}

#[test]
fn single_file_lands_at_to() {
    let r = TestRepo::new();
    r.write("Dockerfile", "FROM x\n");
    r.commit("init");
    let (bytes, _) = archive(&r, "/Dockerfile", "/app/Dockerfile", Owner::default());
    assert_eq!(tar(&["-t"], &bytes).trim(), "app/Dockerfile");
}

#[test]
fn worktree_archive_streams_files() {
    let r = TestRepo::new();
    r.write("a.txt", "committed\n");
    r.commit("init");
    r.write("a.txt", "edited in worktree\n");
    r.write("new.txt", "untracked\n");
    let repo = r.repo();
    let snap = repo.snapshot(Source::Worktree).expect("worktree");
    let mut out = Vec::new();
    let stats = snap
        .write_archive(&filter("/", &[], &[]), "/w", Owner::default(), &mut out)
        .expect("archive");
    assert_eq!(stats.files, 2);
    assert_eq!(stats.content_bytes, 19 + 10);
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("a.tar");
    std::fs::write(&file, &out).expect("write");
    let ok = Command::new("tar")
        .args(["-x", "-f"])
        .arg(&file)
        .arg("-C")
        .arg(dir.path())
        .status()
        .expect("tar");
    assert!(ok.success());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("w/a.txt")).expect("a"),
        "edited in worktree\n"
    );
}
