//! A killed build never leaves a stage that looks complete but is not, and concurrent builds on
//! one store both succeed.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{Env, assert_store_consistent, built_stages};

const HEAVY: &str = r#"
image: heavy
from: busybox:latest
shell:
  beforeInstall:
  - echo start
  install:
  - mkdir -p /data && i=0; while [ $i -lt 200 ]; do head -c 200000 /dev/urandom > /data/f$i; i=$((i+1)); done
  - echo "{MARK}"
  setup:
  - echo done > /done
"#;

#[test]
fn sigkill_at_any_moment_leaves_a_consistent_store() {
    let env = Env::new();
    let dir = env.project("heavy", &HEAVY.replace("{MARK}", "1"));
    // Kill at a spread of moments: during container runs, layer writes, commits.
    for delay_ms in [150, 400, 700, 1000, 1400, 1900] {
        let mut child = env
            .cmd()
            .args(["build", "--progress", "plain"])
            .current_dir(&dir)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        assert_store_consistent(env.store.path());
    }
    // The next build completes and the result is right.
    env.build_ok(&dir);
    assert_store_consistent(env.store.path());
    assert_eq!(
        env.run_sh("heavy", "ls /data | wc -l; cat /done"),
        "200\ndone\n"
    );
}

#[test]
fn a_killed_container_is_not_committed() {
    let env = Env::new();
    let dir = env.project(
        "slow",
        "image: s\nfrom: busybox:latest\nshell:\n  install:\n  - echo started\n  - sleep 30\n",
    );
    let mut child = env
        .cmd()
        .args(["build", "--progress", "plain"])
        .current_dir(&dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in BufReader::new(stderr).lines() {
        if line.unwrap().contains("s/install | started") {
            break;
        }
        assert!(Instant::now() < deadline, "the stage never started");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(env.stage_records().iter().all(|r| r["stage"] != "install"));
    // No container survives its builder.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sleeping_containers() > 0 {
        assert!(
            Instant::now() < deadline,
            "the container outlived the killed build"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(
        dir.join("strata.yaml"),
        "image: s\nfrom: busybox:latest\nshell:\n  install:\n  - echo started\n",
    )
    .unwrap();
    assert_eq!(env.build_ok(&dir), ["s/install"]);
}

fn sleeping_containers() -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|c| c == b"sleep\x0030\x00")
        .count()
}

#[test]
fn two_builds_on_one_store_both_succeed() {
    let env = Env::new();
    let dir = env.project("race", &HEAVY.replace("{MARK}", "race"));
    let a = env
        .cmd()
        .args(["build", "--progress", "plain"])
        .current_dir(&dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let b = env
        .cmd()
        .args(["build", "--progress", "plain"])
        .current_dir(&dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    // Each stage ran once in total: the second builder waited and reused the first one's.
    let mut ran = built_stages(&String::from_utf8_lossy(&a.stderr));
    ran.extend(built_stages(&String::from_utf8_lossy(&b.stderr)));
    let user_stages: Vec<_> = ran.iter().filter(|s| !s.ends_with("/from")).collect();
    assert_eq!(user_stages.len(), 3, "{ran:?}");
    let mut stages: Vec<_> = env
        .stage_records()
        .iter()
        .map(|r| r["stage"].as_str().unwrap().to_string())
        .collect();
    stages.sort();
    assert_eq!(stages, ["beforeInstall", "from", "install", "setup"]);
    assert_store_consistent(env.store.path());
}
