use strata_digest::Digest;
use strata_git::{FileMode, MaskSet, PathFilter, Rev, Source};

use crate::util::{TestRepo, filter, head_files, masks, paths};

fn sample() -> TestRepo {
    let r = TestRepo::new();
    r.write("src/a.rs", "a\n");
    r.write("src/b.txt", "b\n");
    r.write("src/sub/c.rs", "c\n");
    r.write("src/sub/tmp/x.rs", "x\n");
    r.write("src-other/z.rs", "z\n");
    r.write("src.txt", "s\n");
    r.write("README.md", "readme\n");
    r.write("bin/run.sh", "#!/bin/sh\n");
    r.chmod("bin/run.sh", 0o755);
    r.symlink("README.md", "link");
    r.write("dir with space/file name.txt", "spaces\n");
    r.commit("init");
    r
}

#[test]
fn whole_repo_listing_equals_ls_tree() {
    let r = sample();
    let files = head_files(&r, &PathFilter::all());
    let ls = r.git(&["ls-tree", "-r", "HEAD"]);
    let expected: Vec<String> = ls
        .lines()
        .map(|l| {
            let (meta, path) = l.split_once('\t').expect("tab");
            let mut it = meta.split(' ');
            let mode = it.next().expect("mode");
            let oid = it.nth(1).expect("oid");
            format!("{mode} {oid} {}", path.trim_matches('"'))
        })
        .collect();
    let got: Vec<String> = files
        .iter()
        .map(|f| format!("{} {} {}", f.mode, f.oid, f.path))
        .collect();
    assert_eq!(got, expected);
    assert!(
        files
            .iter()
            .all(|f| f.path == f.repo_path && f.size.is_none())
    );
    let run = files
        .iter()
        .find(|f| f.path == "bin/run.sh")
        .expect("run.sh");
    assert_eq!(run.mode, FileMode::Executable);
    let link = files.iter().find(|f| f.path == "link").expect("link");
    assert_eq!(link.mode, FileMode::Symlink);
}

#[test]
fn add_include_exclude() {
    let r = sample();
    let files = head_files(&r, &filter("/src", &["*.rs", "sub"], &["sub/tmp"]));
    assert_eq!(paths(&files), ["a.rs", "sub/c.rs"]);
    assert_eq!(files[1].repo_path, "src/sub/c.rs");
    assert_eq!(files[1].oid, r.blob("HEAD:src/sub/c.rs"));

    // `add` as a prefix of siblings (`src-other`, `src.txt`) takes only the directory.
    let files = head_files(&r, &filter("src/", &[], &[]));
    assert_eq!(paths(&files), ["a.rs", "b.txt", "sub/c.rs", "sub/tmp/x.rs"]);

    let files = head_files(&r, &filter("/", &[], &["src", "**/*.rs"]));
    assert_eq!(
        paths(&files),
        [
            "README.md",
            "bin/run.sh",
            "dir with space/file name.txt",
            "link",
            "src.txt"
        ]
    );

    // `add` naming one file: a single entry with an empty relative path.
    let files = head_files(&r, &filter("/README.md", &[], &[]));
    assert_eq!(paths(&files), [""]);
    assert_eq!(files[0].repo_path, "README.md");

    assert!(head_files(&r, &filter("/missing", &[], &[])).is_empty());
}

#[test]
fn submodules_are_skipped() {
    let r = sample();
    let head = r.head().to_string();
    r.git(&[
        "update-index",
        "--add",
        "--cacheinfo",
        &format!("160000,{head},vendor/lib"),
    ]);
    r.git(&["commit", "-q", "-m", "gitlink"]);
    assert!(r.git(&["ls-tree", "-r", "HEAD"]).contains("160000"));
    let files = head_files(&r, &PathFilter::all());
    assert!(files.iter().all(|f| !f.path.starts_with("vendor")));
}

#[test]
fn open_file_and_sizes() {
    let r = sample();
    let repo = r.repo();
    let snap = repo.snapshot(Source::Commit(r.head())).expect("snapshot");
    assert_eq!(snap.source(), Source::Commit(r.head()));
    let files = snap
        .files(&filter("/", &["README.md", "link"], &[]))
        .expect("files");
    assert_eq!(snap.read_file(&files[0]).expect("read"), b"readme\n");
    assert_eq!(snap.size_of(&files[0]).expect("size"), 7);
    let mut s = String::new();
    snap.open_file(&files[1])
        .expect("open")
        .read_to_string(&mut s)
        .expect("read");
    assert_eq!(s, "README.md");
}

use std::io::Read as _;

#[test]
fn checksum_follows_matched_files_only() {
    let r = TestRepo::new();
    r.write("app/package.json", "{}\n");
    r.write("app/lib/x.js", "x\n");
    r.write("app/other.txt", "o\n");
    r.commit("init");
    let f = filter("/app", &[], &[]);
    let install = MaskSet::new(&masks(&["package.json", "lib"])).expect("masks");
    let sum = |r: &TestRepo| install.checksum(&head_files(r, &f));
    let base = sum(&r);

    r.write("app/other.txt", "changed\n");
    r.commit("unmatched");
    assert_eq!(sum(&r), base, "unmatched change must not move the checksum");

    let mut seen = vec![base];
    let mut step = |name: &str, r: &TestRepo| {
        let now = sum(r);
        assert!(!seen.contains(&now), "{name}: checksum should be new");
        seen.push(now);
    };
    r.write("app/package.json", "{\"a\":1}\n");
    r.commit("content");
    step("content", &r);
    r.chmod("app/package.json", 0o755);
    r.commit("mode");
    step("mode", &r);
    r.write("app/lib/deep/y.js", "y\n");
    r.commit("add");
    step("add under matched dir", &r);
    r.rm("app/lib/x.js");
    r.commit("delete");
    step("delete", &r);

    // Nothing matched: the sha256 of the empty string, as documented.
    let none = MaskSet::new(&masks(&["*.go"])).expect("masks");
    assert_eq!(none.checksum(&head_files(&r, &f)), Digest::of(b""));
    assert_eq!(
        MaskSet::new(&[])
            .expect("empty")
            .checksum(&head_files(&r, &f)),
        Digest::of(b"")
    );
}

#[test]
fn clean_worktree_checksum_equals_head() {
    let r = sample();
    let repo = r.repo();
    let head = repo.resolve(&Rev::Head).expect("head");
    let committed = repo.snapshot(Source::Commit(head)).expect("commit");
    let worktree = repo.snapshot(Source::Worktree).expect("worktree");
    let f = PathFilter::all();
    let all = MaskSet::new(&masks(&["**"])).expect("masks");
    let a = committed.files(&f).expect("files");
    let b = worktree.files(&f).expect("files");
    assert_eq!(all.checksum(&a), all.checksum(&b));
    assert_eq!(committed.len(), worktree.len());
}

#[test]
fn single_file_mapping_masks_match_its_name() {
    let r = TestRepo::new();
    r.write("package.json", "{}\n");
    r.write("empty", "");
    r.commit("init");
    let files = head_files(&r, &filter("/package.json", &[], &[]));
    let by_name = MaskSet::new(&masks(&["package.json"])).expect("masks");
    let other = MaskSet::new(&masks(&["*.lock"])).expect("masks");
    assert_ne!(by_name.checksum(&files), Digest::of(b""));
    assert_eq!(other.checksum(&files), Digest::of(b""));

    let repo = r.repo();
    assert_eq!(repo.read_blob(&files[0].oid).expect("blob"), b"{}\n");
    let empty = head_files(&r, &filter("/empty", &[], &[]));
    assert_eq!(repo.read_blob(&empty[0].oid).expect("empty blob"), b"");
}
