use strata_git::{PathFilter, Rev, Source, changes, dirty_files};

use crate::util::{TestRepo, filter};

fn dirty(r: &TestRepo, f: &PathFilter) -> Vec<String> {
    let repo = r.repo();
    let one = dirty_files(&repo, f).expect("dirty files");
    // The walk is shared out to threads; any number must give the same answer.
    for n in [1, 4] {
        let again = repo
            .dirty_check(f)
            .expect("check")
            .threads(n)
            .run()
            .expect("dirty files");
        assert_eq!(again, one, "{n} threads");
    }
    // The slow definition: a whole worktree snapshot diffed against HEAD.
    let head = repo.resolve(&Rev::Head).expect("HEAD");
    let committed = repo.snapshot(Source::Commit(head)).expect("commit");
    let worktree = repo.snapshot(Source::Worktree).expect("worktree");
    let slow: Vec<String> = changes(&committed, &worktree, f)
        .expect("changes")
        .changes
        .into_iter()
        .map(|c| c.repo_path)
        .collect();
    assert_eq!(one, slow, "fast and slow dirty checks disagree");
    one
}

fn sample() -> TestRepo {
    let r = TestRepo::new();
    r.write(".gitignore", "*.log\nbuild/\n");
    r.write("app/a.txt", "a\n");
    r.write("app/b.txt", "b\n");
    r.write("app/sub/c.txt", "c\n");
    r.write("app/sub/deep/d.txt", "d\n");
    r.write("app.txt", "sibling of add\n");
    r.write("docs/x.md", "x\n");
    r.commit("init");
    r
}

#[test]
fn clean_tree_is_not_dirty() {
    let r = sample();
    assert!(dirty(&r, &PathFilter::all()).is_empty());
    assert!(dirty(&r, &filter("/app", &[], &[])).is_empty());
    assert!(dirty(&r, &filter("/app/a.txt", &[], &[])).is_empty());
    assert!(dirty(&r, &filter("/missing", &[], &[])).is_empty());
}

#[test]
fn racy_same_size_edit_is_dirty() {
    let r = TestRepo::new();
    r.write("a.txt", "aaaa");
    r.commit("init");
    // Same size and (usually) the same second as the index write: the stat data can match
    // the index exactly, and only the racy-git rule makes the file be hashed.
    r.write("a.txt", "bbbb");
    assert_eq!(dirty(&r, &PathFilter::all()), ["a.txt"]);
}

#[test]
fn touched_but_same_content_is_clean() {
    let r = sample();
    r.write("app/a.txt", "a\n");
    r.write("app/sub/c.txt", "c\n");
    assert!(dirty(&r, &PathFilter::all()).is_empty());
}

#[test]
fn ignored_and_nested_repositories_are_not_untracked() {
    let r = sample();
    r.write("app/debug.log", "ignored by pattern\n");
    r.write("app/build/out.o", "ignored directory\n");
    r.write("app/sub/new.txt", "untracked\n");
    r.write("app/fresh/dir/n.txt", "untracked in a new directory\n");
    r.write("app/sub/.gitignore", "local.txt\n");
    r.write("app/sub/local.txt", "ignored by a nested .gitignore\n");
    r.write("app/nested/file.txt", "in another repository\n");
    crate::util::git_in(&r.path().join("app/nested"), &["init", "-q"], &[]);
    assert_eq!(
        dirty(&r, &filter("/app", &[], &[])),
        [
            "app/fresh/dir/n.txt",
            "app/sub/.gitignore",
            "app/sub/new.txt"
        ]
    );
}

#[test]
fn staged_changes_are_dirty_unless_undone() {
    let r = sample();
    r.write("app/a.txt", "staged\n");
    r.write("app/staged-new.txt", "new\n");
    r.write("app/gone-after-add.txt", "added then removed\n");
    r.git(&["add", "-A"]);
    r.rm("app/gone-after-add.txt");
    // Staged, then put back on disk: the work tree equals HEAD again.
    r.write("app/b.txt", "staged b\n");
    r.git(&["add", "app/b.txt"]);
    r.write("app/b.txt", "b\n");
    // Removed from the index only: the file on disk still has HEAD's content.
    r.git(&["rm", "-q", "--cached", "app/sub/c.txt"]);
    r.git(&["rm", "-q", "--cached", "docs/x.md"]);
    r.write(".git/info/exclude", "x.md\n");
    assert_eq!(
        dirty(&r, &PathFilter::all()),
        ["app/a.txt", "app/staged-new.txt", "docs/x.md"]
    );
}

#[test]
fn deletions_and_type_changes() {
    let r = sample();
    r.rm("app/a.txt");
    std::fs::remove_dir_all(r.path().join("app/sub/deep")).expect("rm -r");
    // A file replaced by a directory: the file is deleted, the new content untracked.
    r.rm("app/b.txt");
    r.write("app/b.txt/inner.txt", "now a directory\n");
    r.chmod("docs/x.md", 0o755);
    assert_eq!(
        dirty(&r, &PathFilter::all()),
        [
            "app/a.txt",
            "app/b.txt",
            "app/b.txt/inner.txt",
            "app/sub/deep/d.txt",
            "docs/x.md"
        ]
    );
}

#[test]
fn only_the_mapping_counts() {
    let r = sample();
    r.write("app.txt", "sibling changed\n");
    r.write("docs/x.md", "outside\n");
    r.write("docs/new.md", "outside\n");
    r.rm("app/b.txt");
    r.write("app/sub/c.txt", "excluded\n");
    r.write("app/sub/new.txt", "excluded\n");
    r.write("app/a.txt", "in\n");
    assert_eq!(
        dirty(&r, &filter("/app", &[], &["sub"])),
        ["app/a.txt", "app/b.txt"]
    );
    assert_eq!(
        dirty(&r, &filter("/app", &["*.txt"], &[])),
        ["app/a.txt", "app/b.txt"]
    );
    assert_eq!(dirty(&r, &filter("/app.txt", &[], &[])), ["app.txt"]);
    assert_eq!(dirty(&r, &filter("/app/a.txt", &[], &[])), ["app/a.txt"]);
    assert!(dirty(&r, &filter("/app/sub/deep", &[], &[])).is_empty());
    // `add` naming a file that is now untracked content of the mapping's own path.
    r.write("app/sub/deep/new.txt", "new\n");
    assert_eq!(
        dirty(&r, &filter("/app/sub/deep", &[], &[])),
        ["app/sub/deep/new.txt"]
    );
}

#[test]
fn dirty_check_runs_on_another_thread() {
    let r = sample();
    r.write("app/a.txt", "edited\n");
    let repo = r.repo();
    let check = repo.dirty_check(&filter("/app", &[], &[])).expect("check");
    let dirty = std::thread::spawn(move || check.run())
        .join()
        .expect("thread")
        .expect("dirty");
    assert_eq!(dirty, ["app/a.txt"]);
}
