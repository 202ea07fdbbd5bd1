use strata_git::{Error, Repository, Rev};

use crate::util::{TestRepo, git_in};

#[test]
fn commit_info_matches_werf_format() {
    let r = TestRepo::new();
    r.write("a", "a");
    r.git(&["add", "-A"]);
    git_in(
        r.path(),
        &["commit", "-q", "-m", "dated"],
        &[
            ("GIT_COMMITTER_DATE", "1643034379 +0300"),
            ("GIT_AUTHOR_DATE", "1000000000 +0000"),
        ],
    );
    let repo = r.repo();
    let head = repo.resolve(&Rev::Head).expect("head");
    let info = repo.commit_info(&head).expect("info");
    assert_eq!(info.hash, r.git(&["rev-parse", "HEAD"]));
    assert_eq!(info.time_unix, 1_643_034_379);
    assert_eq!(info.time_human, "2022-01-24 17:26:19 +0300 +0300");
}

#[test]
fn resolves_branches_tags_and_commits() {
    let r = TestRepo::new();
    r.write("a", "1");
    let c1 = r.commit("one");
    r.git(&["tag", "-a", "v1", "-m", "annotated"]);
    r.git(&["tag", "light"]);
    r.git(&["branch", "old"]);
    r.write("a", "2");
    let c2 = r.commit("two");

    let sub = r.path().join("deep/dir");
    std::fs::create_dir_all(&sub).expect("mkdir");
    let repo = Repository::discover(&sub).expect("discover from a subdirectory");
    assert_eq!(
        repo.workdir().map(|p| p.canonicalize().expect("c")),
        Some(r.path().canonicalize().expect("c"))
    );

    assert_eq!(repo.resolve(&Rev::Head).expect("head"), c2);
    assert_eq!(repo.resolve(&Rev::Branch("main".into())).expect("main"), c2);
    assert_eq!(repo.resolve(&Rev::Branch("old".into())).expect("old"), c1);
    assert_eq!(
        repo.resolve(&Rev::Tag("v1".into()))
            .expect("annotated tag peels"),
        c1
    );
    assert_eq!(repo.resolve(&Rev::Tag("light".into())).expect("light"), c1);
    let short = &c1.to_string()[..8];
    assert_eq!(
        repo.resolve(&Rev::Commit(short.into())).expect("prefix"),
        c1
    );
    assert_eq!(
        repo.resolve(&Rev::Commit(c2.to_string())).expect("full"),
        c2
    );

    let e = repo
        .resolve(&Rev::Branch("nope".into()))
        .expect_err("missing branch");
    assert!(matches!(e, Error::Resolve { .. }), "{e:?}");
    assert!(e.to_string().contains("branch `nope`"), "{e}");
    let e = repo
        .resolve(&Rev::Commit("main".into()))
        .expect_err("not hex");
    assert!(matches!(e, Error::InvalidRev { .. }), "{e:?}");
    let e = repo
        .resolve(&Rev::Commit("0".repeat(40)))
        .expect_err("unknown commit");
    assert!(e.to_string().contains(&"0".repeat(40)), "{e}");
}

#[test]
fn discover_failure_names_the_path() {
    let dir = tempfile::tempdir().expect("tmp");
    let missing = dir.path().join("no/such/dir");
    let e = Repository::discover(&missing).expect_err("nothing there");
    assert!(matches!(e, Error::Discover { .. }), "{e:?}");
    assert!(
        e.to_string().contains(&missing.display().to_string()),
        "{e}"
    );
}
