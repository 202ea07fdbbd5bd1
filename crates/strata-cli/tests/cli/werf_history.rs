//! Cached git stages meet other histories: a rewritten history (amend + gc), two projects with
//! the same mappings, a shallow fresh clone of the same commit, a `--dev` build's commit seen
//! from another checkout. werf reuses a stage only where its recorded commit is an ancestor of
//! the current one and rebuilds otherwise; none of these may fail the build, and the image
//! always holds the current commit's files. And how far a new commit is from a cached stage:
//! werf's gitCache threshold measures the patch werf would write.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Env, git};

/// A repository holding `strata.yaml` (with `project` and the mapping below) and `src/`.
fn repo(env: &Env, name: &str, project: &str, files: &[(&str, &str)]) -> PathBuf {
    let yaml = format!(
        "project: {project}\nconfigVersion: 1\n---\nimage: app\nfrom: busybox:latest\ngit:\n\
         - add: /src\n  to: /app\n  stageDependencies:\n    install: [\"*.conf\"]\n\
         shell:\n  install:\n  - cat /app/app.conf > /installed.txt\n"
    );
    let dir = env.project(name, &yaml);
    git(&dir, &["init", "-q", "-b", "main"]);
    write_commit(&dir, files, "first");
    dir
}

fn write_commit(dir: &Path, files: &[(&str, &str)], message: &str) -> String {
    for (path, text) in files {
        let p = dir.join("src").join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "--allow-empty", "-m", message]);
    git(dir, &["rev-parse", "HEAD"])
}

fn build(env: &Env, dir: &Path, args: &[&str]) -> Vec<String> {
    let out = env
        .cmd()
        .args(["build", "--progress", "plain"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "build in {} failed:\n{stderr}",
        dir.display()
    );
    crate::support::built_stages(&stderr)
}

fn files(env: &Env) -> String {
    env.run_sh(
        "app",
        "cat /installed.txt; cd /app && for f in $(ls | sort); do echo \"$f: $(cat $f)\"; done",
    )
}

#[test]
fn an_amended_commit_after_gc_rebuilds_instead_of_failing() {
    let env = Env::new();
    let dir = repo(
        &env,
        "amend",
        "amend",
        &[("app.conf", "one\n"), ("a.txt", "a1\n")],
    );
    build(&env, &dir, &[]);
    // A commit the store's stages record, then rewritten away and collected.
    write_commit(&dir, &[("a.txt", "a2\n")], "second");
    build(&env, &dir, &[]);
    std::fs::write(dir.join("src/a.txt"), "a3\n").unwrap();
    git(&dir, &["commit", "-qa", "--amend", "-m", "second, amended"]);
    git(&dir, &["reflog", "expire", "--expire=now", "--all"]);
    git(&dir, &["gc", "-q", "--prune=now"]);
    // gitLatestPatch's recorded parent is still an ancestor: only it rebuilds.
    assert_eq!(build(&env, &dir, &[]), ["app/gitLatestPatch"]);
    assert_eq!(files(&env), "one\na.txt: a3\napp.conf: one\n");

    // Amending the root commit itself: no stage's commit is in the history any more.
    git(&dir, &["reset", "-q", "--hard", "HEAD~1"]);
    std::fs::write(dir.join("src/a.txt"), "root\n").unwrap();
    git(&dir, &["commit", "-qa", "--amend", "-m", "new root"]);
    git(&dir, &["reflog", "expire", "--expire=now", "--all"]);
    git(&dir, &["gc", "-q", "--prune=now"]);
    assert_eq!(build(&env, &dir, &[]), ["app/gitArchive", "app/install"]);
    assert_eq!(files(&env), "one\na.txt: root\napp.conf: one\n");
    assert!(
        build(&env, &dir, &[]).is_empty(),
        "the rebuilt stages are reused"
    );
}

#[test]
fn two_projects_with_the_same_mappings_keep_their_own_stages() {
    let env = Env::new();
    let first = repo(&env, "first", "first", &[("app.conf", "first\n")]);
    let second = repo(&env, "second", "second", &[("app.conf", "second\n")]);
    build(&env, &first, &[]);
    assert_eq!(files(&env), "first\napp.conf: first\n");
    // Same config, same mapping: its own stages, its own files.
    assert_eq!(
        build(&env, &second, &[]),
        ["app/from", "app/gitArchive", "app/install"]
    );
    assert_eq!(files(&env), "second\napp.conf: second\n");
    write_commit(&first, &[("app.conf", "first 2\n")], "two");
    build(&env, &first, &[]);
    assert_eq!(files(&env), "first 2\napp.conf: first 2\n");

    // A copy of a project under the same name with its own history (a fork rewritten): the
    // stages of the other history are not an ancestor of this one and are rebuilt.
    let fork = repo(&env, "fork", "first", &[("app.conf", "fork\n")]);
    assert_eq!(build(&env, &fork, &[]), ["app/gitArchive", "app/install"]);
    assert_eq!(files(&env), "fork\napp.conf: fork\n");
    // And back: the original's history rebuilds over the fork's, never fails.
    build(&env, &first, &[]);
    assert_eq!(files(&env), "first 2\napp.conf: first 2\n");
}

#[test]
fn a_fresh_shallow_clone_and_another_checkouts_dev_commit_build() {
    let env = Env::new();
    let origin = repo(
        &env,
        "origin",
        "ci",
        &[("app.conf", "one\n"), ("a.txt", "a1\n")],
    );
    build(&env, &origin, &[]);
    write_commit(&origin, &[("a.txt", "a2\n")], "two");
    // A `--dev` build records a commit strata made of the work tree, only in this checkout.
    std::fs::write(origin.join("src/a.txt"), "dev\n").unwrap();
    build(&env, &origin, &["--dev"]);
    assert_eq!(files(&env), "one\na.txt: dev\napp.conf: one\n");
    git(&origin, &["checkout", "-q", "--", "src/a.txt"]);

    // CI: a fresh clone of the same commit, depth 1: the stages' first commit is not in it.
    let clone = env.work.path().join("clone");
    let url = format!("file://{}", origin.display());
    let out = Command::new("git")
        .args(["clone", "-q", "--depth", "1", &url])
        .arg(&clone)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    build(&env, &clone, &[]);
    assert_eq!(files(&env), "one\na.txt: a2\napp.conf: one\n");
    assert!(build(&env, &clone, &[]).is_empty());
    // And the original checkout again.
    build(&env, &origin, &[]);
    assert_eq!(files(&env), "one\na.txt: a2\napp.conf: one\n");
}

#[test]
fn a_from_short_name_never_picks_another_projects_image() {
    let env = Env::new();
    let other = env.project(
        "other",
        "project: other\nconfigVersion: 1\n---\nimage: base\nfrom: busybox:latest\nshell:\n  install:\n  - echo other > /who\n",
    );
    build(&env, &other, &[]);
    // `from: base` here is a registry's `base`, not the other project's local one.
    let mine = env.project(
        "mine",
        "project: mine\nconfigVersion: 1\n---\nimage: app\nfrom: base\n",
    );
    let out = env.build(&mine);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("project `other`'s image"), "{stderr}");
    // The same project's own image, by its short name, still is one.
    let again = env.project(
        "again",
        "project: other\nconfigVersion: 1\n---\nimage: app\nfrom: base\nshell:\n  install:\n  - cat /who > /saw\n",
    );
    build(&env, &again, &[]);
    assert_eq!(env.run_sh("app", "cat /saw"), "other\n");
}

/// werf's 1 MiB gitCache threshold is the size of its patch (the whole file as context, `+`
/// on every line, binary files as compressed deltas), not of the changed content: 1,000,000
/// bytes of new text lines make a patch over 1 MiB, 2 MiB of zeros (a binary file) one of a few
/// KiB.
#[test]
fn the_git_cache_threshold_is_werfs_patch_size() {
    let env = Env::new();
    let text = "123456789\n".repeat(100_000);
    let zeros = "\0".repeat(2 << 20);
    for (name, file, cached) in [("text", &text, true), ("binary", &zeros, false)] {
        let dir = repo(&env, name, name, &[("app.conf", "one\n")]);
        build(&env, &dir, &[]);
        write_commit(&dir, &[("big", file)], "big");
        let built = build(&env, &dir, &[]);
        assert_eq!(
            built.contains(&"app/gitCache".to_string()),
            cached,
            "{name}: {built:?}"
        );
        assert_eq!(
            built.contains(&"app/gitLatestPatch".to_string()),
            !cached,
            "{name}: {built:?}"
        );
        let size = env.run_sh("app", "wc -c < /app/big");
        assert_eq!(size.trim().parse::<usize>().unwrap(), file.len(), "{name}");
    }
}
