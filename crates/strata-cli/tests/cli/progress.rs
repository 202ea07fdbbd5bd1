//! How a build reports: `NO_COLOR` turns the live view's colors off, `--progress json` keeps
//! stderr JSON only (the failure included), and a failed build's summary counts the stages it
//! built and reused before failing.

use std::path::Path;
use std::process::Output;

use crate::support::{Env, built_stages};

const FAILS_AT_SETUP: &str = "image: app\nfrom: busybox:latest\nshell:\n  install:\n  - echo ok > /ok\n  setup:\n  - exit 3\n";

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn build(env: &Env, dir: &Path, args: &[&str], no_color: bool) -> Output {
    let mut cmd = env.cmd();
    cmd.arg("build").args(args).current_dir(dir);
    if no_color {
        cmd.env("NO_COLOR", "1");
    } else {
        cmd.env_remove("NO_COLOR");
    }
    cmd.output().unwrap()
}

/// `strata build --progress tty` in `dir` on a real pty (the live view is drawn only on a
/// terminal); all it printed.
fn build_on_a_terminal(env: &Env, dir: &Path, no_color: bool) -> String {
    let mut cmd = env.cmd();
    cmd.args(["build", "--progress", "tty"]).current_dir(dir);
    if no_color {
        cmd.env("NO_COLOR", "1");
    } else {
        cmd.env_remove("NO_COLOR");
    }
    let mut session = rexpect::session::spawn_command(cmd, Some(120_000)).unwrap();
    let text = session.exp_eof().unwrap();
    match session.process().wait().unwrap() {
        rexpect::process::WaitStatus::Exited(_, 0) => text,
        other => panic!("{other:?}: {text}"),
    }
}

#[test]
fn no_color_turns_the_live_views_colors_off() {
    let env = Env::new();
    let dir = env.project(
        "app",
        "image: app\nfrom: busybox:latest\nshell:\n  install:\n  - echo hi\n",
    );
    // SGR sequences (`ESC [ ... m`); cursor movement (`ESC [ n F`, `ESC [ J`) is not color.
    let sgr = |text: &str| {
        text.split('\x1b').skip(1).any(|s| {
            s.starts_with('[')
                && s[1..]
                    .trim_start_matches(|c: char| c.is_ascii_digit() || c == ';')
                    .starts_with('m')
        })
    };
    let colored = build_on_a_terminal(&env, &dir, false);
    assert!(
        sgr(&colored),
        "the live view colors without NO_COLOR: {colored:?}"
    );
    std::fs::write(
        dir.join("strata.yaml"),
        "image: app\nfrom: busybox:latest\nshell:\n  install:\n  - echo again\n",
    )
    .unwrap();
    let plain = build_on_a_terminal(&env, &dir, true);
    assert!(!sgr(&plain), "{plain:?}");
    assert!(plain.contains("app") && plain.contains("built"), "{plain}");
}

/// Every stderr line as JSON, failing on any line that is not.
fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    stderr(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect()
}

fn count(events: &[serde_json::Value], kind: &str) -> u64 {
    events.iter().filter(|e| e["event"] == kind).count() as u64
}

#[test]
fn json_progress_is_alone_on_stderr_failures_included() {
    let env = Env::new();
    let dir = env.project("app", FAILS_AT_SETUP);
    let out = build(&env, &dir, &["--progress", "json"], false);
    assert_eq!(out.status.code(), Some(3), "the command's own status");
    let events = json_lines(&out);
    let error = events.last().expect("events");
    assert_eq!(error["event"], "error", "{error}");
    assert_eq!(error["exit_code"], 3);
    assert!(
        error["report"].as_str().unwrap().contains("strata.yaml:"),
        "{error}"
    );
    // The summary event counts what happened before the failure.
    let finished = events
        .iter()
        .find(|e| e["event"] == "build_finished")
        .expect("build_finished");
    assert_eq!(finished["ok"], false);
    assert_eq!(finished["built"], count(&events, "stage_built"));
    assert_eq!(finished["cached"], count(&events, "stage_cached"));
    assert!(count(&events, "stage_built") >= 1, "install was built");

    // A config error is an event too.
    std::fs::write(dir.join("strata.yaml"), "image: app\nfrom: [\n").unwrap();
    let out = build(&env, &dir, &["--progress", "json"], false);
    assert_eq!(out.status.code(), Some(1));
    let events = json_lines(&out);
    assert_eq!(events.last().unwrap()["event"], "error");
    // And a build that works is JSON from start to end.
    std::fs::write(
        dir.join("strata.yaml"),
        "image: app\nfrom: busybox:latest\n",
    )
    .unwrap();
    let out = build(&env, &dir, &["--progress", "json"], false);
    assert!(out.status.success());
    let events = json_lines(&out);
    assert_eq!(events.last().unwrap()["event"], "build_finished");
}

/// `(built, reused)` from a plain build's summary line.
fn summary(stderr: &str) -> (usize, usize) {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("build failed in "))
        .unwrap_or_else(|| panic!("no summary:\n{stderr}"));
    let numbers: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    // `build failed in 1.23s: N stage(s) built, M reused`
    (numbers[numbers.len() - 2], numbers[numbers.len() - 1])
}

#[test]
fn a_failed_builds_summary_counts_what_it_built_and_reused() {
    let env = Env::new();
    let dir = env.project("app", FAILS_AT_SETUP);
    let first = build(&env, &dir, &["--progress", "plain"], false);
    assert!(!first.status.success());
    let text = stderr(&first);
    let built = built_stages(&text);
    assert!(built.contains(&"app/install".to_string()), "{text}");
    let cached = text.lines().filter(|l| l.contains(": cached ")).count();
    assert_eq!(summary(&text), (built.len(), cached), "{text}");
    // Again: what was built is reused, nothing new is built before the failure.
    let second = build(&env, &dir, &["--progress", "plain"], false);
    let text = stderr(&second);
    assert_eq!(summary(&text), (0, built.len() + cached), "{text}");
}
