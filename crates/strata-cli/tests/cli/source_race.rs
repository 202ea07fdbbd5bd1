//! The source race (#16): a file edited between planning and running never yields a layer
//! that disagrees with its digest. The build is held between the two by a gate, a first step
//! that says it runs (the plan is made) through a cache mount and waits until the test has
//! edited the sources; then the step that copies them runs. Afterwards each content must go
//! with its own digest: the edited content builds a new stage holding it, and the original
//! content again finds the raced build's stage, which must hold the original.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Env, built_stages, git};

/// The gate's commands: `planned` says the build runs, `open` lets it go on (within a minute,
/// else the step fails rather than hang the test).
pub(crate) const GATE: &str = "touch /gate/planned; i=0; until [ -e /gate/open ]; do i=$((i+1)); [ $i -lt 1200 ] || exit 3; sleep 0.05; done";

/// Waits until the gate of the build `child` is reached and returns its directory (the cache
/// mount's directory in the store).
pub(crate) fn gate_reached(env: &Env, child: &mut Child) -> PathBuf {
    gate_reached_by(env, || child.try_wait().unwrap().map(|s| s.to_string()))
}

/// [`gate_reached`] for a build whose end `ended` tells (how it ended, once it has).
pub(crate) fn gate_reached_by(env: &Env, mut ended: impl FnMut() -> Option<String>) -> PathBuf {
    let find = || -> Option<PathBuf> {
        std::fs::read_dir(env.store.path().join("build_dir"))
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join("planned").exists())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(gate) = find() {
            return gate;
        }
        assert!(Instant::now() < deadline, "the gate step never ran");
        if let Some(status) = ended() {
            panic!("the build ended ({status}) before its gate step");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn spawn(env: &Env, dir: &Path, args: &[&str]) -> Child {
    env.cmd()
        .args(["build", "--progress", "plain"])
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Builds `args` in `dir`, editing the sources with `edit` while the gate holds the build.
fn raced_build(env: &Env, dir: &Path, args: &[&str], edit: impl FnOnce()) -> Output {
    let mut child = spawn(env, dir, args);
    let gate = gate_reached(env, &mut child);
    edit();
    std::fs::write(gate.join("open"), "").unwrap();
    child.wait_with_output().unwrap()
}

fn build(env: &Env, dir: &Path, args: &[&str]) -> Output {
    env.cmd()
        .args(["build", "--progress", "plain"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn cat(env: &Env, image: &str, paths: &str) -> String {
    env.run_sh(image, &format!("cat {paths}"))
}

#[test]
fn a_context_file_edited_after_planning_never_reaches_a_copy_layer() {
    let env = Env::new();
    let dir = env.work.path().join("race");
    std::fs::create_dir_all(dir.join("dir")).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM busybox:latest\n\
             RUN --mount=type=cache,id=gate,target=/gate sh -c '{GATE}'\n\
             COPY f /f\n\
             COPY dir /dir\n"
        ),
    )
    .unwrap();
    let write = |f: &str, g: &str| {
        std::fs::write(dir.join("f"), f).unwrap();
        std::fs::write(dir.join("dir/g"), g).unwrap();
    };
    write("planned f\n", "planned g\n");
    let args = ["-f", "Dockerfile", ".", "-t", "race"];
    let out = raced_build(&env, &dir, &args, || {
        write("edited f, longer than before\n", "edited g\n");
    });
    assert!(out.status.success(), "{}", stderr(&out));
    // The layer holds what the plan hashed.
    assert_eq!(cat(&env, "race", "/f /dir/g"), "planned f\nplanned g\n");

    // The edited files are other inputs: new COPY stages, holding the edited content.
    let out = build(&env, &dir, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let built = built_stages(&stderr(&out));
    assert!(
        built.iter().any(|s| s.ends_with("-copy")),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        cat(&env, "race", "/f /dir/g"),
        "edited f, longer than before\nedited g\n"
    );

    // The planned content again: the raced build's stages are found by their digest, and
    // they hold that content.
    write("planned f\n", "planned g\n");
    let out = build(&env, &dir, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(built_stages(&stderr(&out)), Vec::<String>::new());
    assert_eq!(cat(&env, "race", "/f /dir/g"), "planned f\nplanned g\n");
}

/// A stapel config in a git work tree built with `--dev` (uncommitted changes included): the
/// gate runs in `beforeInstall`, before the git archive is made, and `install` depends on the
/// mapped files.
const STAPEL: &str = "project: race\nconfigVersion: 1\n---\nimage: app\nfrom: busybox:latest\ngit:\n- add: /src\n  to: /app\n  stageDependencies:\n    install:\n    - \"**/*\"\nmount:\n- from: build_dir\n  to: /gate\nshell:\n  beforeInstall:\n  - sh -c '{GATE}'\n  install:\n  - cat /app/f > /installed\n";

/// What `git show REV` prints in `dir`.
fn git_show(dir: &Path, rev: &str) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["show", rev])
        .output()
        .unwrap();
    assert!(out.status.success(), "git show {rev}: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_work_tree_file_edited_after_planning_never_reaches_a_dev_build() {
    let env = Env::new();
    let dir = env.project("repo", &STAPEL.replace("{GATE}", GATE));
    std::fs::write(
        dir.join("werf-giterminism.yaml"),
        "giterminismConfigVersion: 1\nconfig: {stapel: {mount: {allowBuildDir: true}}}\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    git(&dir, &["init", "-q", "-b", "main"]);
    git(&dir, &["config", "user.email", "test@example.com"]);
    git(&dir, &["config", "user.name", "test"]);
    std::fs::write(dir.join("src/f"), "committed\n").unwrap();
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "seed"]);
    // Dirty: the --dev build plans this uncommitted content.
    std::fs::write(dir.join("src/f"), "planned\n").unwrap();
    let out = raced_build(&env, &dir, &["--dev"], || {
        std::fs::write(dir.join("src/f"), "edited, longer than before\n").unwrap();
    });
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(cat(&env, "app", "/app/f /installed"), "planned\nplanned\n");
    // Every stage records the commit its git files are at (the one whose tree the install
    // checksum was taken from): it holds the planned content too.
    let commits: Vec<String> = env
        .stage_records()
        .iter()
        .filter_map(|r| r["meta"]["git[0].commit"].as_str().map(str::to_string))
        .collect();
    assert!(!commits.is_empty(), "no stage recorded a commit");
    for commit in commits {
        assert_eq!(git_show(&dir, &format!("{commit}:src/f")), "planned\n");
    }

    // The edited work tree: install depends on it, so it runs again, on the edited file.
    let out = build(&env, &dir, &["--dev"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        built_stages(&stderr(&out)).contains(&"app/install".to_string()),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        cat(&env, "app", "/app/f /installed"),
        "edited, longer than before\nedited, longer than before\n"
    );
}
