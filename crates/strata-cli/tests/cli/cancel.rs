//! Ctrl-C (SIGINT) and SIGTERM cancel a build cleanly, for both frontends: exit status 130,
//! no process of the build's containers left, no mount left, the store as before, and the
//! next build succeeds.
//!
//! "The store as before" means: [`store_listing`] (every file under `blobs/`, `stages/`,
//! `tags/` and `snapshots/`, with its size) equal to the listing before the cancelled build,
//! and [`leftovers`] (the entries of `tmp/` and `ingest/` but their lock files: what garbage
//! collection would remove) empty. A first build makes every stage before the long one, so a
//! cancelled build is always in the long stage or before it, and must add nothing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::Rng as _;

use crate::support::{Env, leftovers, store_listing};

/// The stapel config: a fast stage, then one that runs for seconds. `{MARK}` names the
/// long command's process (its `$0`), so it can be found in /proc.
const STAPEL: &str = r#"image: app
from: busybox:latest
shell:
  beforeInstall:
  - echo fast > /fast
  install:
  - echo begin-{MARK}
  - sh -c 'for i in 1 2 3 4 5 6; do echo tick $i; sleep 1; done' {MARK}
  - echo done > /done
"#;

/// The Dockerfile: the same shape.
const DOCKERFILE: &str = "FROM busybox:latest\nRUN echo fast > /fast\n";
const DOCKERFILE_LONG: &str = "RUN echo begin-{MARK} && sh -c 'for i in 1 2 3 4 5 6; do echo tick $i; sleep 1; done' {MARK} && echo done > /done\n";

/// When the signal is sent.
#[derive(Clone, Copy, Debug)]
enum Moment {
    /// After the build's first line of output, plus a random delay: planning, the cached
    /// stages, or the long one.
    Early,
    /// Right when the long command printed its first line.
    Begun,
    /// A random delay after that, while it runs.
    Running,
}

#[derive(Clone, Copy, Debug)]
enum Frontend {
    Stapel,
    Dockerfile,
}

#[test]
fn sigint_and_sigterm_cancel_a_stapel_build_cleanly() {
    cancels_cleanly(Frontend::Stapel);
}

#[test]
fn sigint_and_sigterm_cancel_a_dockerfile_build_cleanly() {
    cancels_cleanly(Frontend::Dockerfile);
}

fn cancels_cleanly(frontend: Frontend) {
    let env = Env::new();
    let mark = format!("strata-cancel-{}-{frontend:?}", std::process::id());
    let dir = env.work.path().join("project");
    std::fs::create_dir_all(&dir).unwrap();
    // The first build: every stage before the long one.
    write_project(&dir, frontend, &mark, false);
    let out = build(&env, &dir, frontend).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    write_project(&dir, frontend, &mark, true);
    let before = store_listing(env.store.path());
    let mut rng = rand::rng();
    let runs = [
        (Moment::Early, libc::SIGINT),
        (Moment::Begun, libc::SIGINT),
        (Moment::Running, libc::SIGINT),
        (Moment::Running, libc::SIGTERM),
        (Moment::Early, libc::SIGTERM),
    ];
    for (moment, signal) in runs {
        let delay = match moment {
            Moment::Early => Duration::from_millis(rng.random_range(0..600)),
            Moment::Begun => Duration::ZERO,
            Moment::Running => Duration::from_millis(rng.random_range(100..2500)),
        };
        let what = format!("{frontend:?}, signal {signal} at {moment:?} + {delay:?}");
        let mut child = build(&env, &dir, frontend)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let lines = output_lines(&mut child);
        let begun = format!("| begin-{mark}");
        let mut seen = Vec::new();
        wait_for(&lines, &mut seen, &what, |line| match moment {
            Moment::Early => true,
            Moment::Begun | Moment::Running => line.ends_with(&begun),
        });
        std::thread::sleep(delay);
        // SAFETY: kill(2) on our own unreaped child: its pid cannot have been reused.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let status = wait_with_deadline(&mut child, &what);
        seen.extend(lines.iter());
        let stderr = seen.join("\n");
        assert_eq!(status.code(), Some(130), "{what}: exit status:\n{stderr}");
        assert!(stderr.contains("build cancelled"), "{what}:\n{stderr}");
        assert_eq!(
            processes_with(&mark),
            0,
            "{what}: a container process is left"
        );
        assert_eq!(
            mounts_under(&[env.store.path(), env.work.path()]),
            Vec::<String>::new(),
            "{what}: mounts left"
        );
        assert_eq!(
            store_listing(env.store.path()),
            before,
            "{what}: the store changed:\n{stderr}"
        );
        assert_eq!(
            leftovers(env.store.path()),
            Vec::<String>::new(),
            "{what}: temporary files left"
        );
    }
    // The next build runs the long stage to its end.
    let out = build(&env, &dir, frontend).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("tick 6"), "the long step ran:\n{stderr}");
}

fn write_project(dir: &Path, frontend: Frontend, mark: &str, long: bool) {
    match frontend {
        Frontend::Stapel => {
            let yaml = STAPEL.replace("{MARK}", mark);
            let yaml = if long {
                yaml
            } else {
                // Only the fast stage: the long one is left out, the fast one's digest is the
                // same.
                yaml.split("  install:").next().unwrap().to_string()
            };
            std::fs::write(dir.join("strata.yaml"), yaml).unwrap();
        }
        Frontend::Dockerfile => {
            let mut text = DOCKERFILE.to_string();
            if long {
                text.push_str(&DOCKERFILE_LONG.replace("{MARK}", mark));
            }
            std::fs::write(dir.join("Dockerfile"), text).unwrap();
        }
    }
}

fn build(env: &Env, dir: &Path, frontend: Frontend) -> std::process::Command {
    let mut cmd = env.cmd();
    cmd.current_dir(dir);
    match frontend {
        Frontend::Stapel => cmd.args(["build", "--progress", "plain"]),
        Frontend::Dockerfile => cmd.args([
            "build",
            "-f",
            "Dockerfile",
            ".",
            "-t",
            "cancel",
            "--progress",
            "plain",
        ]),
    };
    cmd
}

/// The child's stderr, line by line, read on a thread of its own.
fn output_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().unwrap();
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

/// Waits for the first output line for which `wanted` holds.
fn wait_for(
    lines: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    what: &str,
    wanted: impl Fn(&str) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = wanted(&line);
                seen.push(line);
                if found {
                    return;
                }
            }
            Err(_) => panic!("{what}: the build never got there:\n{}", seen.join("\n")),
        }
    }
}

fn wait_with_deadline(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}: the build did not end after the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Processes whose command line holds `mark`.
fn processes_with(mark: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|c| c.windows(mark.len()).any(|w| w == mark.as_bytes()))
        .count()
}

/// Mount points (and overlay options) of this mount namespace that name a path under `roots`.
fn mounts_under(roots: &[&Path]) -> Vec<String> {
    let roots: Vec<PathBuf> = roots.iter().map(|r| r.canonicalize().unwrap()).collect();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| {
            roots
                .iter()
                .any(|r| l.contains(r.to_str().expect("temp paths are UTF-8")))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn sigint_ends_a_wait_for_another_builds_stage_lock() {
    use crate::source_race::{GATE, gate_reached};
    let env = Env::new();
    let dir = env.work.path().join("locked");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM busybox:latest\nRUN --mount=type=cache,id=gate,target=/gate sh -c '{GATE}'\n"
        ),
    )
    .unwrap();
    // The first build holds the RUN stage's lock while its gate is shut.
    let mut first = build(&env, &dir, Frontend::Dockerfile)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let gate = gate_reached(&env, &mut first);
    // The second build of the same stage waits for that lock, and stops waiting when told to.
    let mut second = build(&env, &dir, Frontend::Dockerfile)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = output_lines(&mut second);
    let mut seen = Vec::new();
    let what = "the second build";
    wait_for(&lines, &mut seen, what, |line| {
        line.contains("waiting: ") && line.contains("lock")
    });
    // SAFETY: kill(2) on our own unreaped child: its pid cannot have been reused.
    assert_eq!(unsafe { libc::kill(second.id() as i32, libc::SIGINT) }, 0);
    let status = wait_with_deadline(&mut second, what);
    seen.extend(lines.iter());
    let stderr = seen.join("\n");
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("build cancelled"), "{stderr}");
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first build ended with the second"
    );
    std::fs::write(gate.join("open"), "").unwrap();
    let status = wait_with_deadline(&mut first, "the first build");
    assert!(status.success(), "the first build failed: {status}");
}
