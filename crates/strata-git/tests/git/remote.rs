use strata_git::{Error, Repository, Rev, Source, remote};

use crate::util::{TestRepo, filter, paths};

#[test]
fn file_url_branch_tag_commit_and_refetch() {
    let origin = TestRepo::new();
    origin.write("a.txt", "1\n");
    let c1 = origin.commit("one");
    origin.git(&["tag", "-a", "v1", "-m", "v1"]);
    origin.git(&["branch", "feature"]);
    origin.write("b.txt", "2\n");
    let c2 = origin.commit("two");

    let cache = tempfile::tempdir().expect("cache");
    let url = format!("file://{}", origin.path().display());
    let repo = Repository::open_remote(&url, cache.path(), None).expect("clone");
    assert_eq!(repo.name(), url);
    assert!(repo.workdir().is_none());
    assert!(remote::cache_path(&url, cache.path()).join("HEAD").exists());
    assert_eq!(repo.resolve(&Rev::Head).expect("head"), c2);
    assert_eq!(repo.resolve(&Rev::Branch("main".into())).expect("main"), c2);
    assert_eq!(
        repo.resolve(&Rev::Branch("feature".into()))
            .expect("feature"),
        c1
    );
    assert_eq!(repo.resolve(&Rev::Tag("v1".into())).expect("tag"), c1);
    assert_eq!(
        repo.resolve(&Rev::Commit(c1.to_string())).expect("commit"),
        c1
    );
    let snap = repo.snapshot(Source::Commit(c2)).expect("snapshot");
    assert_eq!(
        paths(&snap.files(&filter("/", &[], &[])).expect("files")),
        ["a.txt", "b.txt"]
    );
    let e = repo
        .resolve(&Rev::Branch("nope".into()))
        .expect_err("missing");
    assert!(
        e.to_string().contains(&url) && e.to_string().contains("nope"),
        "{e}"
    );
    drop(snap);
    drop(repo);

    origin.write("c.txt", "3\n");
    let c3 = origin.commit("three");
    let repo = Repository::open_remote(&url, cache.path(), None).expect("fetch");
    assert_eq!(repo.resolve(&Rev::Branch("main".into())).expect("main"), c3);
    let entries = std::fs::read_dir(cache.path()).expect("ls").count();
    assert_eq!(entries, 1, "no temporary clones left behind");
}

#[test]
fn plain_local_path_works() {
    let origin = TestRepo::new();
    origin.write("a.txt", "1\n");
    let c1 = origin.commit("one");
    let cache = tempfile::tempdir().expect("cache");
    let url = origin.path().display().to_string();
    let repo = Repository::open_remote(&url, cache.path(), None).expect("clone");
    assert_eq!(repo.resolve(&Rev::Head).expect("head"), c1);
}

#[test]
fn bad_url_names_the_url() {
    let cache = tempfile::tempdir().expect("cache");
    let url = "file:///nonexistent/strata-git-test-repo";
    let e = Repository::open_remote(url, cache.path(), None).expect_err("no such repo");
    assert!(
        matches!(e, Error::Remote(remote::Error::Git { .. })),
        "{e:?}"
    );
    assert!(e.to_string().contains(url), "{e}");
    assert_eq!(std::fs::read_dir(cache.path()).expect("ls").count(), 0);
}
