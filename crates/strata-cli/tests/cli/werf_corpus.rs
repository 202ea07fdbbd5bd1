//! werf projects as they are written: configs in the shapes of werf's own e2e fixtures and of
//! public werf projects (`tests/fixtures/werf/<case>/`), each built from a git repository made
//! here, through the history their own tests walk:
//!
//! - `state0/`: the first commit, built cold and checked against `checks0`;
//! - built again: nothing runs;
//! - `state1/` (files written over the work tree; `state1/DELETE` lists files removed): the
//!   second commit, built and checked against `checks1`, then cached again;
//! - a fresh clone of the same commit elsewhere: nothing runs, the image is the same.
//!
//! Checks use the corpus format ([`run_checks`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Env, built_stages, git, run_checks};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/werf")
}

/// Copies `from` over `to`, except the `DELETE` list, whose files it removes from `to`.
fn apply_state(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            apply_state(&entry.path(), &target);
        } else if entry.file_name() == "DELETE" && from.file_name() != Some("app-src".as_ref()) {
            for line in std::fs::read_to_string(entry.path()).unwrap().lines() {
                std::fs::remove_file(to.join(line)).unwrap();
            }
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A build in `dir`: the stages that ran, or the failure.
fn build(env: &Env, dir: &Path) -> Result<Vec<String>, String> {
    // The build cache directories CI restores before a build (a `fromPath` mount's source).
    std::fs::create_dir_all(dir.join(".cache/build")).unwrap();
    let out = env.build(dir);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if out.status.success() {
        Ok(built_stages(&stderr))
    } else {
        Err(stderr)
    }
}

/// Walks one case through its history and returns what went wrong.
fn walk_case(env: &Env, case: &Path) -> Vec<String> {
    let name = case.file_name().unwrap().to_string_lossy().to_string();
    let dir = env.work.path().join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    git(&dir, &["init", "-q", "-b", "main"]);
    let mut failures = Vec::new();
    let mut states = vec![("state0", "checks0")];
    if case.join("state1").is_dir() {
        states.push(("state1", "checks1"));
    }
    for (state, checks) in states {
        apply_state(&case.join(state), &dir);
        git(&dir, &["add", "-A"]);
        git(&dir, &["commit", "-q", "-m", state]);
        match build(env, &dir) {
            Ok(_) => {}
            Err(e) => {
                failures.push(format!("{name} {state}: build failed:\n{e}"));
                return failures;
            }
        }
        let text = std::fs::read_to_string(case.join(checks)).unwrap_or_default();
        failures.extend(run_checks(env, &format!("{name} {state}"), &text));
        match build(env, &dir) {
            Ok(ran) if ran.is_empty() => {}
            Ok(ran) => failures.push(format!("{name} {state}: the cached build ran {ran:?}")),
            Err(e) => failures.push(format!("{name} {state}: the cached build failed:\n{e}")),
        }
    }
    // CI: a fresh clone of the same commit in another directory reuses every stage.
    let clone = env.work.path().join(format!("{name}-clone"));
    let out = Command::new("git")
        .arg("clone")
        .arg("-q")
        .arg(&dir)
        .arg(&clone)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    match build(env, &clone) {
        Ok(ran) if ran.is_empty() => {}
        Ok(ran) => failures.push(format!("{name}: the fresh clone ran {ran:?}")),
        Err(e) => failures.push(format!("{name}: the fresh clone failed:\n{e}")),
    }
    failures
}

fn case(name: &str) {
    let env = Env::new();
    let failures = walk_case(&env, &fixtures().join(name));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// werf's e2e `build/complex` (stapel images): every key of the meta document (build,
/// deploy, cleanup, gitWorktree), every shell cache version, mounts, git filters and owners,
/// imports, all docker directives; its state1 changes the mapping and a file.
#[test]
fn werf_e2e_complex() {
    case("e2e-complex");
}

/// werf's e2e `import/no_system_dirs` with v2's `import: from:`, and a file imported onto a
/// directory.
#[test]
fn werf_e2e_import_system_dirs() {
    case("import-system-dirs");
}

/// A Go service as public werf projects write it: stageDependencies on the module files,
/// `from:` naming a config image, `network: none`, `disableGitAfterPatch`, a relative
/// `fromPath` allowed by giterminism, templates; its second commit deletes a package.
#[test]
fn go_service_project() {
    case("go-service");
}

/// `strata build IMAGE` resolves the git mappings of that image and what it needs only: a
/// remote another image maps (unreachable here) is never cloned; building everything does
/// reach the remote and names it.
#[test]
fn building_one_image_leaves_other_images_remotes_alone() {
    let env = Env::new();
    let yaml = "project: partial\nconfigVersion: 1\n---\nimage: base\nfrom: busybox:latest\n\
                git:\n- add: /src\n  to: /src\n---\nimage: app\nfrom: base\nshell:\n  setup:\n  \
                - cat /src/a > /a\n---\nimage: docs\nfrom: busybox:latest\ngit:\n\
                - url: file:///nonexistent/strata-corpus/docs.git\n  add: /\n  to: /docs\n";
    let dir = env.project("partial", yaml);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/a"), "a\n").unwrap();
    git(&dir, &["init", "-q", "-b", "main"]);
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "one"]);
    let out = env
        .cmd()
        .args(["build", "--progress", "plain", "app"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(env.run_sh("app", "cat /a"), "a\n");
    let out = env.build(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("nonexistent/strata-corpus/docs.git"),
        "{stderr}"
    );
}

/// A key strata rejects stops only the builds that need its image: the others of the file
/// build (with a note), and a build that needs it fails at the key's line.
#[test]
fn a_rejected_key_stops_only_its_image() {
    let env = Env::new();
    let yaml = "project: partial\nconfigVersion: 1\n---\nimage: app\nfrom: busybox:latest\n\
                shell:\n  install:\n  - echo app > /app.txt\n---\nimage: provisioned\n\
                from: busybox:latest\nansible:\n  install:\n  - name: a task\n    template: {src: a, dest: b}\n\
                ---\nimage: on-top\nfromImage: provisioned\n";
    let dir = env.project("partial", yaml);
    let out = env
        .cmd()
        .args(["build", "--progress", "plain", "app"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("image `provisioned` is left out"),
        "{stderr}"
    );
    assert_eq!(env.run_sh("app", "cat /app.txt"), "app\n");
    for wanted in [&[][..], &["on-top"][..]] {
        let out = env
            .cmd()
            .args(["build", "--progress", "plain"])
            .args(wanted)
            .current_dir(&dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains("ansible module `template` is not supported"),
            "{stderr}"
        );
        assert!(stderr.contains("strata.yaml:15:5"), "{stderr}");
    }
}
