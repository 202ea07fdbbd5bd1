use strata_git::{FileMode, PathFilter, Source, dirty_files};

use crate::util::{TestRepo, filter, paths};

#[test]
fn worktree_snapshot_includes_untracked_not_ignored() {
    let r = TestRepo::new();
    r.write(".gitignore", "*.log\nbuild/\n");
    r.write("src/a.rs", "a\n");
    r.write("src/gone.rs", "g\n");
    r.commit("init");
    r.write("src/a.rs", "changed\n");
    r.rm("src/gone.rs");
    r.write("src/new.rs", "new\n");
    r.write("src/debug.log", "ignored\n");
    r.write("build/out.o", "ignored\n");
    r.write("tool.sh", "#!/bin/sh\n");
    r.chmod("tool.sh", 0o755);
    r.symlink("src/a.rs", "alias");

    let repo = r.repo();
    let snap = repo.snapshot(Source::Worktree).expect("worktree");
    assert_eq!(snap.source(), Source::Worktree);
    let files = snap.files(&PathFilter::all()).expect("files");
    assert_eq!(
        paths(&files),
        [".gitignore", "alias", "src/a.rs", "src/new.rs", "tool.sh"]
    );
    for f in &files {
        let hashed = if f.mode == FileMode::Symlink {
            // git hash-object follows symlinks; hash the target text instead.
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "printf %s \"$(readlink '{}')\" | git hash-object --stdin",
                    f.repo_path
                ))
                .current_dir(r.path())
                .output()
                .expect("sh");
            String::from_utf8(out.stdout)
                .expect("utf8")
                .trim()
                .to_string()
        } else {
            r.git(&["hash-object", &f.repo_path])
        };
        assert_eq!(f.oid.to_string(), hashed, "{}", f.path);
        assert!(f.size.is_some());
    }
    let modes: Vec<FileMode> = files.iter().map(|f| f.mode).collect();
    assert_eq!(
        modes,
        [
            FileMode::Regular,
            FileMode::Symlink,
            FileMode::Regular,
            FileMode::Regular,
            FileMode::Executable
        ]
    );
    let mut s = String::new();
    std::io::Read::read_to_string(&mut snap.open_file(&files[3]).expect("open"), &mut s)
        .expect("read");
    assert_eq!(s, "new\n");
}

#[test]
fn racy_same_size_edit_is_seen() {
    let r = TestRepo::new();
    r.write("a.txt", "aaaa");
    r.commit("init");
    // Same size, same second as the index write: only a racy-git check catches it.
    r.write("a.txt", "bbbb");
    let repo = r.repo();
    let files = repo
        .snapshot(Source::Worktree)
        .expect("worktree")
        .files(&PathFilter::all())
        .expect("files");
    assert_eq!(files[0].oid.to_string(), r.git(&["hash-object", "a.txt"]));
}

#[test]
fn dirty_files_within_mapping() {
    let r = TestRepo::new();
    r.write(".gitignore", "*.tmp\n");
    r.write("app/a.txt", "a\n");
    r.write("app/b.txt", "b\n");
    r.write("app/c.txt", "c\n");
    r.write("docs/x.md", "x\n");
    r.commit("init");
    let f = filter("/app", &[], &[]);
    assert!(dirty_files(&r.repo(), &f).expect("clean").is_empty());

    r.write("app/a.txt", "edited\n");
    r.rm("app/b.txt");
    r.write("app/new file.txt", "n\n");
    r.write("app/scratch.tmp", "ignored\n");
    r.chmod("app/c.txt", 0o755);
    r.write("docs/x.md", "outside the mapping\n");
    let dirty = dirty_files(&r.repo(), &f).expect("dirty");
    assert_eq!(
        dirty,
        ["app/a.txt", "app/b.txt", "app/c.txt", "app/new file.txt"]
    );

    // Staged but not committed is still ignored by a commit build.
    r.git(&["add", "-A"]);
    let dirty = dirty_files(&r.repo(), &filter("/", &["docs"], &[])).expect("dirty");
    assert_eq!(dirty, ["docs/x.md"]);
}
