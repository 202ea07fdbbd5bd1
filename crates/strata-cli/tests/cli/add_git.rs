//! `ADD <git repository>` as BuildKit's dockerfile frontend (1.6 and later) does it, against
//! git's own `git http-backend` on 127.0.0.1: Debian's BuildKit (20.10) predates it (it
//! downloads such a URL as a file), so the behaviour is checked directly, not side by side.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{Env, GitServer, git, words};

/// The served repositories: `sub.git` (one file) and `lib.git`, whose `main` has two commits
/// (the first tagged `v1`), a `dev` branch from the first, a submodule `vendor/sub` (an
/// absolute URL to `sub.git`), an executable and a symlink. Returns the server and the two
/// commits of `main`.
fn served(root: &Path) -> (GitServer, String, String) {
    let repos = root.join("repos");
    std::fs::create_dir_all(&repos).unwrap();
    let server = GitServer::start(root, &repos, None);
    let sub = root.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    git(&sub, &["init", "-q", "-b", "main"]);
    std::fs::write(sub.join("sub.txt"), "from the submodule\n").unwrap();
    git(&sub, &["add", "-A"]);
    git(&sub, &["commit", "-q", "-m", "sub"]);
    git(root, &["clone", "-q", "--bare", "sub", "repos/sub.git"]);

    let lib = root.join("lib");
    std::fs::create_dir_all(lib.join("src")).unwrap();
    std::fs::create_dir_all(lib.join("bin")).unwrap();
    git(&lib, &["init", "-q", "-b", "main"]);
    std::fs::write(lib.join("README.md"), "lib\n").unwrap();
    std::fs::write(lib.join("src/a.txt"), "one\n").unwrap();
    std::fs::write(lib.join("bin/run.sh"), "#!/bin/sh\necho run\n").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(
        lib.join("bin/run.sh"),
        std::fs::Permissions::from_mode(0o775),
    )
    .unwrap();
    std::os::unix::fs::symlink("src/a.txt", lib.join("link")).unwrap();
    git(&lib, &["add", "-A"]);
    git(&lib, &["commit", "-q", "-m", "one"]);
    git(&lib, &["tag", "v1"]);
    let first = git(&lib, &["rev-parse", "HEAD"]);
    git(&lib, &["branch", "dev"]);
    git(&lib, &["checkout", "-q", "dev"]);
    std::fs::write(lib.join("src/dev.txt"), "on dev\n").unwrap();
    git(&lib, &["add", "-A"]);
    git(&lib, &["commit", "-q", "-m", "dev"]);
    git(&lib, &["checkout", "-q", "main"]);
    std::fs::write(lib.join("src/a.txt"), "two\n").unwrap();
    git(
        &lib,
        &[
            "submodule",
            "add",
            "-q",
            &format!("{}/sub.git", server.url),
            "vendor/sub",
        ],
    );
    git(&lib, &["add", "-A"]);
    git(&lib, &["commit", "-q", "-m", "two"]);
    let second = git(&lib, &["rev-parse", "HEAD"]);
    git(root, &["clone", "-q", "--bare", "lib", "repos/lib.git"]);
    (server, first, second)
}

/// Writes `dockerfile` into a fresh context `name` and builds it as `name`.
fn build(env: &Env, name: &str, dockerfile: &str) -> (Output, PathBuf) {
    let dir = env.work.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    let out = env
        .cmd()
        .current_dir(&dir)
        .args(["build", "-t", name, "--progress", "plain", "."])
        .output()
        .unwrap();
    (out, dir)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The forms BuildKit documents: the default branch, `#TAG`, `#BRANCH:SUBDIR`, a commit,
/// with context files in one ADD,
/// `--keep-git-dir`, `--checksum` (the commit), `--chown`/`--chmod` (symbolic too) and
/// `--exclude` over the checkout; submodules are checked out, no `.git` is left otherwise;
/// files are 0644/0755 and root's. The same commits again are reused; a new commit on the
/// branch is seen by the next build.
#[test]
fn add_git_checks_out_refs_subdirs_and_submodules() {
    let env = Env::new();
    let root = env.work.path().join("server");
    let (server, first, second) = served(&root);
    let lib = format!("{}/lib.git", server.url);
    let dockerfile = format!(
        "FROM busybox:latest\n\
         ADD {lib} /default/\n\
         ADD {lib}#v1 /tagged\n\
         ADD {lib}#dev:src /sub\n\
         ADD --keep-git-dir {lib}#main /kept\n\
         ADD --chown=7:8 --chmod=go-rwx --exclude=*.md {lib}#{short} /modes\n\
         ADD --checksum={second} {lib}#main /summed\n\
         ADD Dockerfile {lib}#v1 /mixed/\n",
        short = &first[..10]
    );
    let (out, dir) = build(&env, "addgit", &dockerfile);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        words(&env.run_sh(
            "addgit",
            "cd /default && find . | sort && cat src/a.txt vendor/sub/sub.txt && readlink link"
        )),
        words(
            ". ./.gitmodules ./README.md ./bin ./bin/run.sh ./link ./src ./src/a.txt ./vendor \
             ./vendor/sub ./vendor/sub/sub.txt two from the submodule src/a.txt"
        )
    );
    assert_eq!(
        words(&env.run_sh(
            "addgit",
            "stat -c '%n %a %u:%g' /default/README.md /default/bin/run.sh /default/src"
        )),
        words("/default/README.md 644 0:0 /default/bin/run.sh 755 0:0 /default/src 755 0:0")
    );
    assert_eq!(
        words(&env.run_sh(
            "addgit",
            "cat /tagged/src/a.txt; ls /tagged; ls /sub; cat /summed/src/a.txt; ls /mixed"
        )),
        words("one README.md bin link src a.txt dev.txt two Dockerfile README.md bin link src")
    );
    // --keep-git-dir: the repository itself, at the commit, its origin the remote.
    assert_eq!(
        words(&env.run_sh(
            "addgit",
            &format!("cat /kept/.git/HEAD; grep -c 'url = {lib}$' /kept/.git/config")
        )),
        words(&format!("{second} 1"))
    );
    assert_eq!(
        words(&env.run_sh(
            "addgit",
            "cd /modes && find . -name '*.md' | wc -l; stat -c '%n %a %u:%g' bin/run.sh src/a.txt src"
        )),
        words("0 bin/run.sh 700 7:8 src/a.txt 600 7:8 src 700 7:8")
    );

    // The same commits again: every step is reused (a kept .git is keyed by its commit).
    let (out, _) = build(&env, "addgit", &dockerfile);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stderr(&out);
    let built: Vec<&str> = log.lines().filter(|l| l.contains(" built in ")).collect();
    assert!(built.is_empty(), "rebuilt: {built:#?}");

    // A new commit on main: the next build checks it out again.
    let source = root.join("lib");
    std::fs::write(source.join("src/a.txt"), "three\n").unwrap();
    git(&source, &["commit", "-q", "-am", "three"]);
    git(
        &source,
        &[
            "push",
            "-q",
            root.join("repos/lib.git").to_str().unwrap(),
            "main",
        ],
    );
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM busybox:latest\nADD {lib} /default/\n"),
    )
    .unwrap();
    let out = env
        .cmd()
        .current_dir(&dir)
        .args(["build", "-t", "addgit", "--progress", "plain", "."])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.run_sh("addgit", "cat /default/src/a.txt"), "three\n");
}

/// What cannot be checked out fails the build at the source, naming it: a ref the remote
/// lacks, a subdirectory it lacks, a `--checksum` that is not the commit's, a repository that
/// is not there; several kinds of source into a destination without its `/`.
#[test]
fn add_git_failures_name_the_source() {
    let env = Env::new();
    let root = env.work.path().join("server");
    let (server, _, second) = served(&root);
    let lib = format!("{}/lib.git", server.url);
    for (name, line, expected) in [
        (
            "noref",
            format!("ADD {lib}#nope /x"),
            "the repository has no branch, tag or commit `nope`".to_string(),
        ),
        (
            "nosubdir",
            format!("ADD {lib}#main:missing /x"),
            format!("the repository has no directory `missing` at {second}"),
        ),
        (
            "badsum",
            format!("ADD --checksum=0123abc {lib}#main /x"),
            format!("the commit is {second}, not 0123abc as --checksum says"),
        ),
        (
            "norepo",
            format!("ADD {}/absent.git /x", server.url),
            format!("ADD {}/absent.git", server.url),
        ),
        (
            "mixednoslash",
            format!("ADD Dockerfile {lib} /x"),
            "the destination must be a directory and end with a /".to_string(),
        ),
        (
            "escape",
            format!("ADD {lib}#main:../.. /x"),
            "the subdirectory `../..` leaves the repository".to_string(),
        ),
    ] {
        fails_at_its_line(&env, name, &line, &expected);
    }
}

/// One `ADD` of several kinds of source copies them in the order written, as BuildKit's
/// dispatchCopy does (heredocs after the paths): where a download (busybox's httpd serving a
/// static file), a checkout and a context file write one path, the last written wins.
#[test]
fn add_copies_its_sources_in_the_order_written() {
    let env = Env::new();
    let root = env.work.path().join("server");
    let (server, _, _) = served(&root);
    let lib = format!("{}/lib.git", server.url);
    let site = server.url.trim_end_matches("/cgi-bin/git");
    std::fs::write(root.join("www/README.md"), "from the url\n").unwrap();
    let url = format!("{site}/README.md");
    let dir = env.work.path().join("order");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("README.md"), "from the context\n").unwrap();
    let dockerfile = format!(
        "FROM busybox:latest\n\
         ADD {url} README.md {lib}#v1 /git/\n\
         ADD {lib}#v1 README.md {url} /url/\n\
         ADD {url} {lib}#v1 README.md /context/\n\
         ADD README.md {url} /url2/\n\
         ADD {lib}#v1 README.md /context2/\n\
         ADD <<README.md {url} /heredoc/\nfrom the heredoc\nREADME.md\n"
    );
    let (out, _) = build(&env, "order", &dockerfile);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        env.run_sh(
            "order",
            "for d in git url context url2 context2 heredoc; do echo \"$d: $(cat /$d/README.md)\"; done"
        ),
        "git: lib\nurl: from the url\ncontext: from the context\nurl2: from the url\n\
         context2: from the context\nheredoc: from the heredoc\n"
    );
    // Each copy keeps its own kind's attributes: the download 0600, the checkout's 0644.
    assert_eq!(
        words(&env.run_sh(
            "order",
            "stat -c '%n %a' /url/README.md /git/README.md /url/src/a.txt"
        )),
        words("/url/README.md 600 /git/README.md 644 /url/src/a.txt 644")
    );
}

/// The query form of newer frontends (`dfgitutil`): `?ref=`, `?tag=`, `?branch=`,
/// `?subdir=`, `?commit=` (the ref when none is given), `?keep-git-dir`; what contradicts
/// itself or the flags, or names an unknown key, fails at the source.
#[test]
fn add_git_query_form() {
    let env = Env::new();
    let root = env.work.path().join("server");
    let (server, first, second) = served(&root);
    let lib = format!("{}/lib.git", server.url);
    let dockerfile = format!(
        "FROM busybox:latest\n\
         ADD {lib}?ref=v1&subdir=src /q-ref/\n\
         ADD {lib}?branch=dev&subdir=/src/ /q-branch\n\
         ADD {lib}?tag=v1 /q-tag/\n\
         ADD {lib}?commit={first} /q-commit/\n\
         ADD {lib}?keep-git-dir=true&ref=main /q-kept/\n\
         ADD --checksum={second} {lib}?ref=main&checksum={second} /q-sum/\n"
    );
    let (out, _) = build(&env, "addquery", &dockerfile);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        words(&env.run_sh(
            "addquery",
            "ls /q-ref; cat /q-ref/a.txt; ls /q-branch; cat /q-tag/src/a.txt /q-commit/src/a.txt \
             /q-kept/.git/HEAD /q-sum/src/a.txt; ls -a /q-sum"
        )),
        words(&format!(
            "a.txt one a.txt dev.txt one one {second} two . .. .gitmodules README.md bin link src vendor"
        ))
    );
    for (name, line, expected) in [
        (
            "qunknown",
            format!("ADD {lib}?depth=1 /x/"),
            "unexpected query `depth`".to_string(),
        ),
        (
            "qconflict",
            format!("ADD {lib}?ref=v1#dev /x/"),
            "the refs conflict: `dev` and `v1`".to_string(),
        ),
        (
            "qnotag",
            format!("ADD {lib}?tag=dev /x/"),
            "the repository has no tag `dev`".to_string(),
        ),
        (
            "qsum",
            format!("ADD {lib}?ref=main&checksum=0123abc /x/"),
            format!("the commit is {second}, not 0123abc"),
        ),
        (
            "qmismatch",
            format!("ADD --checksum={second} {lib}?checksum={first} /x/"),
            "checksum mismatch".to_string(),
        ),
        (
            "qkeep",
            format!("ADD --keep-git-dir {lib}?keep-git-dir=false /x/"),
            "inconsistent".to_string(),
        ),
        (
            "qsubmodules",
            format!("ADD {lib}?submodules=false /x/"),
            "always checks out a repository's submodules".to_string(),
        ),
    ] {
        fails_at_its_line(&env, name, &line, &expected);
    }
}

/// The build of `FROM busybox` then `line` (named `name`) fails with `expected`, naming the
/// Dockerfile's line 2.
fn fails_at_its_line(env: &Env, name: &str, line: &str, expected: &str) {
    let (out, _) = build(env, name, &format!("FROM busybox:latest\n{line}\n"));
    let stderr = stderr(&out);
    assert!(!out.status.success(), "{name}: built:\n{stderr}");
    assert!(stderr.contains(expected), "{name}: {expected}:\n{stderr}");
    assert!(stderr.contains("Dockerfile:2"), "{name}:\n{stderr}");
}
