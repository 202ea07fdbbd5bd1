//! The kill -9 campaign: builds of both frontends killed with SIGKILL at 50 random moments
//! (delays from a seeded RNG, spread over one build's duration), after which `strata store
//! check` finds nothing wrong, `strata gc --all` brings the store back to the size of a store
//! that only ever saw clean builds, and the next builds succeed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::support::{Env, assert_store_consistent, leftovers};

const STAPEL: &str = "image: kapp\nfrom: busybox:latest\nshell:\n  beforeInstall:\n  - echo {{ env \"ROUND\" }} > /round\n  install:\n  - head -c 400000 /dev/urandom > /noise; i=0; while [ $i -lt 50 ]; do echo $i > /f$i; i=$((i+1)); done\n  setup:\n  - rm /f1 && echo set > /setup\n";
const DOCKERFILE: &str = "FROM busybox:latest\nARG ROUND\nRUN echo df-$ROUND > /round\nRUN head -c 400000 /dev/urandom > /noise\nCOPY file /file\nRUN rm /noise && echo done > /done\n";

/// The two projects in `env`'s work dir: (stapel dir, Dockerfile dir).
fn projects(env: &Env) -> (PathBuf, PathBuf) {
    let stapel = env.project("kapp", STAPEL);
    let docker = env.work.path().join("kdf");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(docker.join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(docker.join("file"), b"context file\n").unwrap();
    (stapel, docker)
}

/// A build of round `round` of the stapel (`dockerfile == false`) or the Dockerfile project.
fn build(env: &Env, dirs: &(PathBuf, PathBuf), dockerfile: bool, round: &str) -> Command {
    let mut cmd = env.cmd();
    cmd.args(["build", "--progress", "plain"])
        .env("ROUND", round);
    if dockerfile {
        let arg = format!("ROUND={round}");
        cmd.args(["-f", "Dockerfile", ".", "-t", "kdf", "--build-arg", &arg])
            .current_dir(&dirs.1);
    } else {
        cmd.current_dir(&dirs.0);
    }
    cmd
}

fn build_ok(env: &Env, dirs: &(PathBuf, PathBuf), dockerfile: bool, round: &str) {
    let out = build(env, dirs, dockerfile, round).output().unwrap();
    assert!(
        out.status.success(),
        "round {round}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn strata_ok(env: &Env, args: &[&str]) -> String {
    let out = env.strata(args);
    assert!(
        out.status.success(),
        "strata {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Bytes of regular files and entry counts of a store's content directories.
fn footprint(store: &Path) -> (u64, Vec<(String, usize)>) {
    fn bytes(path: &Path) -> u64 {
        let meta = std::fs::symlink_metadata(path).unwrap();
        if meta.is_dir() {
            std::fs::read_dir(path)
                .unwrap()
                .map(|e| bytes(&e.unwrap().path()))
                .sum()
        } else if meta.is_file() {
            meta.len()
        } else {
            0
        }
    }
    let counts = [
        "blobs/sha256",
        "stages",
        "tags",
        "snapshots",
        "converted",
        "quarantine",
        "ingest",
        "leases",
    ]
    .iter()
    .map(|d| {
        (
            d.to_string(),
            std::fs::read_dir(store.join(d)).unwrap().count(),
        )
    })
    .collect();
    (bytes(store), counts)
}

#[test]
fn sigkill_at_fifty_random_moments_of_both_frontends_leaves_a_store_gc_makes_clean() {
    // The reference: a store that only ever saw clean builds of the final round.
    let reference = Env::new();
    let dirs = projects(&reference);
    let started = Instant::now();
    build_ok(&reference, &dirs, false, "final");
    let stapel_time = started.elapsed();
    let started = Instant::now();
    build_ok(&reference, &dirs, true, "final");
    let dockerfile_time = started.elapsed();
    strata_ok(&reference, &["gc", "--all"]);
    let (clean_bytes, clean_counts) = footprint(reference.store.path());

    let seed: u64 = std::env::var("STRATA_KILL9_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(17);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let env = Env::new();
    let dirs = projects(&env);
    // Until 50 kills landed in running builds (a build that finished before its moment counts
    // as a clean build among the others).
    let (mut killed_running, mut round) = (0, 0);
    while killed_running < 50 {
        assert!(
            round < 200,
            "seed {seed}: builds kept finishing before their moment"
        );
        let dockerfile = round % 2 == 1;
        let span = if dockerfile {
            dockerfile_time
        } else {
            stapel_time
        };
        // Several rounds share a ROUND, so some kills land in builds partly cached.
        let name = (round / 3).to_string();
        let mut child = build(&env, &dirs, dockerfile, &name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay = rng.random_range(0..span.as_millis().max(1) as u64);
        std::thread::sleep(Duration::from_millis(delay));
        if child.try_wait().unwrap().is_none() {
            killed_running += 1;
        }
        // Child::kill is SIGKILL.
        child.kill().unwrap();
        child.wait().unwrap();
        assert_store_consistent(env.store.path());
        round += 1;
    }
    eprintln!("seed {seed}: 50 of {round} builds were killed while running");

    build_ok(&env, &dirs, false, "final");
    build_ok(&env, &dirs, true, "final");
    let check = strata_ok(&env, &["store", "check"]);
    assert!(check.contains("all good"), "seed {seed}: {check}");
    strata_ok(&env, &["gc", "--all"]);
    assert!(leftovers(env.store.path()).is_empty(), "seed {seed}");
    let (bytes, counts) = footprint(env.store.path());
    // Every layer of the two projects differs in content (the Dockerfile's /round says `df-`),
    // so no two builds of the clean store can share a blob by chance: the counts are exact.
    assert_eq!(
        counts, clean_counts,
        "seed {seed}: after the campaign and gc, then after clean builds"
    );
    // Layers hold random bytes and build times, so the sizes are equal up to a little.
    let diff = bytes.abs_diff(clean_bytes);
    assert!(
        diff * 100 <= clean_bytes,
        "seed {seed}: {bytes} bytes after the campaign and gc, {clean_bytes} after clean builds"
    );
    assert_eq!(
        env.run_sh("kapp", "cat /round /setup; [ -e /f1 ] || echo gone"),
        "final\nset\ngone\n"
    );
    assert_eq!(
        env.run_sh("kdf", "cat /round /file /done"),
        "df-final\ncontext file\ndone\n"
    );
}
