use strata_digest::Digest;
use strata_git::{ChangeKind, FileMode, Source, changes};

use crate::util::{TestRepo, filter};

#[test]
fn kinds_sizes_and_identity() {
    let r = TestRepo::new();
    r.write("app/keep.txt", "same\n");
    r.write("app/old name.txt", "renamed content\n");
    r.write("app/gone.txt", "12345");
    r.write("app/run.sh", "#!/bin/sh\n");
    r.write("app/target.txt", "t\n");
    r.write("app/was-file", "plain\n");
    r.write("app/blob.bin", [0u8, 1, 2, 3]);
    r.write("app/my file.txt", "v1\n");
    r.write("other/ignored.txt", "1\n");
    let c1 = r.commit("one");

    r.git(&["mv", "app/old name.txt", "app/new name.txt"]);
    r.rm("app/gone.txt");
    r.chmod("app/run.sh", 0o755);
    r.rm("app/was-file");
    r.symlink("target.txt", "app/was-file");
    r.write("app/blob.bin", [0u8, 1, 2, 3, 4, 5, 6, 7, 255]);
    r.write("app/my file.txt", "version 2\n");
    r.write("app/added.txt", "0123456789");
    r.write("other/ignored.txt", "2\n");
    let c2 = r.commit("two");

    let repo = r.repo();
    let from = repo.snapshot(Source::Commit(c1)).expect("from");
    let to = repo.snapshot(Source::Commit(c2)).expect("to");
    let f = filter("/app", &[], &[]);
    let set = changes(&from, &to, &f).expect("changes");
    let got: Vec<(&str, ChangeKind)> = set
        .changes
        .iter()
        .map(|c| (c.path.as_str(), c.kind))
        .collect();
    assert_eq!(
        got,
        [
            ("added.txt", ChangeKind::Added),
            ("blob.bin", ChangeKind::Modified),
            ("gone.txt", ChangeKind::Deleted),
            ("my file.txt", ChangeKind::Modified),
            ("new name.txt", ChangeKind::Added),
            ("old name.txt", ChangeKind::Deleted),
            ("run.sh", ChangeKind::ModeChanged),
            ("was-file", ChangeKind::Modified),
        ]
    );
    let run = &set.changes[6];
    assert_eq!(run.old.as_ref().map(|o| o.mode), Some(FileMode::Regular));
    assert_eq!(run.new.as_ref().map(|n| n.mode), Some(FileMode::Executable));
    let link = &set.changes[7];
    assert_eq!(link.new.as_ref().map(|n| n.mode), Some(FileMode::Symlink));
    assert_eq!(link.repo_path, "app/was-file");

    // The new content is readable from `to` for applying the patch.
    let added = set.changes[0].new.as_ref().expect("new side");
    assert_eq!(to.read_file(added).expect("read"), b"0123456789");

    let again = changes(&from, &to, &f).expect("changes");
    assert_eq!(again.identity, set.identity);
    let none = changes(&to, &to, &f).expect("changes");
    assert!(none.is_empty());
    assert_eq!(none.identity, Digest::of(b""));
    assert_ne!(set.identity, none.identity);
    let reverse = changes(&to, &from, &f).expect("changes");
    assert_ne!(reverse.identity, set.identity);

    // Narrower mapping: only matching paths.
    let only = changes(&from, &to, &filter("/app", &["*.sh"], &[])).expect("changes");
    assert_eq!(only.changes.len(), 1);
    assert_ne!(only.identity, set.identity);
}

#[test]
fn commit_to_worktree() {
    let r = TestRepo::new();
    r.write("a.txt", "a\n");
    r.write("b.txt", "b\n");
    let c1 = r.commit("one");
    r.write("a.txt", "aa\n");
    r.write("c.txt", "new\n");
    r.rm("b.txt");
    let repo = r.repo();
    let from = repo.snapshot(Source::Commit(c1)).expect("from");
    let to = repo.snapshot(Source::Worktree).expect("worktree");
    let set = changes(&from, &to, &filter("/", &[], &[])).expect("changes");
    let got: Vec<(&str, ChangeKind)> = set
        .changes
        .iter()
        .map(|c| (c.path.as_str(), c.kind))
        .collect();
    assert_eq!(
        got,
        [
            ("a.txt", ChangeKind::Modified),
            ("b.txt", ChangeKind::Deleted),
            ("c.txt", ChangeKind::Added),
        ]
    );
}
