//! strata never follows a path a container, a build context or a config controls (issue #12):
//! real builds try each escape, and canary files outside the store must stay untouched.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Env, words};

const CANARY: &str = "host file, must stay as it is\n";

/// A host file outside the store and the project that no build may change or read.
fn canary(env: &Env, name: &str) -> PathBuf {
    let path = env.work.path().join(name);
    std::fs::write(&path, CANARY).unwrap();
    path
}

fn assert_untouched(path: &Path) {
    assert_eq!(
        std::fs::read_to_string(path).unwrap(),
        CANARY,
        "{} was changed",
        path.display()
    );
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Builds `dir` and gives up (failing the test) if the build has not ended in 60 s: a build
/// that hangs on a planted FIFO must fail the test, not the suite.
fn build_bounded(env: &Env, dir: &Path, args: &[&str]) -> Output {
    let mut child = env
        .cmd()
        .args(["build", "--progress", "plain"])
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the build hung");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn stapel(env: &Env, name: &str, install: &[String]) -> PathBuf {
    let mut yaml = "image: app\nfrom: busybox:latest\nshell:\n  install:\n".to_string();
    for line in install {
        yaml.push_str(&format!("  - {line}\n"));
    }
    env.project(name, &yaml)
}

#[test]
fn a_failed_command_cannot_redirect_the_rerun_script() {
    let env = Env::new();
    let target = canary(&env, "rerun-canary");
    let dir_target = env.work.path().join("rerun-dir");
    std::fs::create_dir(&dir_target).unwrap();
    let t = target.display();
    let d = dir_target.display();
    // The attack, and the same through the rerun dir itself: `|| true` so that the
    // step fails at `false` (the path on which strata writes the rerun script) either way.
    for attack in [
        format!("ln -sf {t} /.strata/run/rerun/script.sh || true; false"),
        format!("rm -rf /.strata/run/rerun || true; ln -s {d} /.strata/run/rerun || true; false"),
        format!(
            "ln -sf {t} /.strata/run/hosts || true; ln -sf {t} /.strata/run/script.sh || true; false"
        ),
    ] {
        let dir = stapel(&env, "rerun", &[attack.clone(), "echo never".into()]);
        let out = build_bounded(&env, &dir, &[]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{attack}: {err}");
        assert!(
            words(&err).contains("command exited with code 1"),
            "{attack}: {err}"
        );
        assert_untouched(&target);
        assert_eq!(
            std::fs::read_dir(&dir_target).unwrap().count(),
            0,
            "{attack}"
        );
    }
}

#[test]
fn the_command_index_is_read_without_following_the_container() {
    let env = Env::new();
    // A link to a host file holding a valid index, and a FIFO that blocks a reader forever.
    let target = env.work.path().join("index-canary");
    std::fs::write(&target, "1").unwrap();
    for (attack, what) in [
        (
            format!(
                "ln -sf {} /.strata/state/step || true; false",
                target.display()
            ),
            "link",
        ),
        (
            "rm -f /.strata/state/step; mkfifo /.strata/state/step; false".to_string(),
            "fifo",
        ),
        (
            "head -c 100000 /dev/zero > /.strata/state/step; false".to_string(),
            "large",
        ),
    ] {
        let dir = stapel(
            &env,
            "index",
            &[attack.clone(), "echo second-command".into()],
        );
        let out = build_bounded(&env, &dir, &[]);
        let err = words(&stderr(&out));
        assert!(!out.status.success(), "{what}: {err}");
        // Had strata followed the link, it would blame the second command (index 1).
        assert!(
            err.contains("command exited with code 1: (one of the step's commands)"),
            "{what}: {err}"
        );
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "1");
}
