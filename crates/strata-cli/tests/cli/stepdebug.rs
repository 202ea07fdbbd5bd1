//! The step debugger: `--break`, `next`, `continue` and breakpoints set at a pause, on real
//! terminals; a debugged build commits what a plain one does.

use std::path::Path;

use rexpect::session::PtySession;

use crate::support::Env;

/// Line 8 is the install stage's second line; line 9 defines a function the last line uses.
const STAGES: &str = r#"image: app
from: busybox:latest
shell:
  beforeInstall:
  - mkdir -p /app && echo base > /app/base
  install:
  - X=unexported; cd /app; export Y=exp
  - echo "$X $Y $(pwd)" > /app/one
  - f() { echo fn-$1; }; f a > /app/two
  - f b > /app/three; echo "$X" > /app/four
  setup:
  - echo set > /app/setup
"#;

const DOCKERFILE: &str = "FROM busybox:latest\n\
ARG GREETING=hi\n\
RUN mkdir /w && echo one > /w/one\n\
ENV COLOR=blue\n\
RUN echo \"$GREETING $COLOR\" > /w/two\n\
COPY Dockerfile /w/df\n";

/// `strata build --progress plain ARGS` on a real terminal, in `dir`.
fn on_a_terminal(env: &Env, dir: &Path, args: &[&str]) -> PtySession {
    let mut cmd = env.cmd();
    cmd.args(["build", "--progress", "plain"])
        .args(args)
        .current_dir(dir)
        .env("TERM", "xterm-test");
    rexpect::session::spawn_command(cmd, Some(60_000)).unwrap()
}

/// Types `line` at the monitor and returns what it printed up to the next prompt.
fn typed(s: &mut PtySession, line: &str) -> String {
    s.send_line(line).unwrap();
    s.exp_string("(strata) ").unwrap().replace('\r', "")
}

/// Waits for the build to end and returns its exit code.
fn exit_code(s: &mut PtySession) -> i32 {
    let rest = s.exp_eof().unwrap();
    match s.process().wait().unwrap() {
        rexpect::process::WaitStatus::Exited(_, code) => code,
        other => panic!("the build did not exit: {other:?}\n{rest}"),
    }
}

/// The digest of every stage record, by `image/stage`, and the built image's files (names,
/// modes, owners, sizes, contents): what a debugged build must commit like a plain one.
pub(crate) fn committed(env: &Env, image: &str, dirs: &str) -> (Vec<(String, String)>, String) {
    let stages = env.stage_digests();
    let files = env.run_sh(
        image,
        &format!(
            "find {dirs} | sort | while read -r f; do stat -c '%n %a %u:%g %s' \"$f\"; \
             [ -f \"$f\" ] && md5sum \"$f\"; done"
        ),
    );
    (stages, files)
}

/// A directory `name` holding `dockerfile` as its Dockerfile.
pub(crate) fn dockerfile_dir(env: &Env, name: &str, dockerfile: &str) -> std::path::PathBuf {
    let dir = env.work.path().join(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    dir
}

/// `strata build ARGS` in `dir`, which must succeed.
pub(crate) fn build_in(env: &Env, dir: &Path, args: &[&str]) {
    let out = env
        .cmd()
        .arg("build")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
}

#[test]
fn a_stage_script_pauses_at_a_line_steps_line_by_line_and_commits_what_a_plain_build_does() {
    let env = Env::new();
    let dir = env.project("lines", STAGES);
    let mut s = on_a_terminal(&env, &dir, &["--break", "strata.yaml:8"]);
    let paused = s.exp_string("(strata) ").unwrap();
    assert!(
        paused.contains("paused (breakpoint 1: strata.yaml:8) in image `app`, stage `install`"),
        "{paused}"
    );
    assert!(paused.contains("--> strata.yaml:8:5"), "{paused}");
    // Before the line: the first line ran, this one did not.
    let out = typed(&mut s, "exec ls /app");
    assert!(out.contains("base") && !out.contains("one"), "{out}");
    let out = typed(&mut s, "list");
    assert!(out.contains(">  8 |   - echo \"$X $Y $(pwd)\""), "{out}");
    assert!(out.contains("   7 |   - X=unexported"), "{out}");
    let out = typed(&mut s, "diff");
    assert!(out.contains("the stage changed no file so far"), "{out}");
    // `next` runs one line, in the shell the lines before it left.
    let out = typed(&mut s, "next");
    assert!(out.contains("paused (step)"), "{out}");
    assert!(
        out.contains("next: f() { echo fn-$1; }; f a > /app/two"),
        "{out}"
    );
    let out = typed(&mut s, "exec cat /app/one");
    assert!(out.contains("unexported exp /app"), "{out}");
    let out = typed(&mut s, "env");
    assert!(out.contains("PWD=/app") && out.contains("Y=exp"), "{out}");
    // A shell in the paused state: its writes are the session's, not the layer's.
    s.send_line("shell").unwrap();
    s.exp_string("(app/install: paused state) /app # ").unwrap();
    s.send_line("cat one; echo scribble > /app/scribble")
        .unwrap();
    s.exp_string("unexported exp /app").unwrap();
    s.send_line("exit").unwrap();
    s.exp_string("(strata) ").unwrap();
    // Breakpoints set, listed and cleared at a pause.
    let out = typed(&mut s, "break app/setup");
    assert!(out.contains("breakpoint 2: app/setup"), "{out}");
    let out = typed(&mut s, "bp");
    assert!(out.contains("1 strata.yaml:8\n2 app/setup"), "{out}");
    let out = typed(&mut s, "clear 1");
    assert!(out.contains("cleared breakpoint 1"), "{out}");
    let out = typed(&mut s, "clear 1");
    assert!(out.contains("there is no breakpoint 1"), "{out}");
    let out = typed(&mut s, "rerun");
    assert!(out.contains("nothing failed"), "{out}");
    let out = typed(&mut s, "continue");
    assert!(
        out.contains("paused (breakpoint 2: app/setup) in image `app`, stage `setup`"),
        "{out}"
    );
    // The last lines ran in one piece after the pause, with the function and the variable.
    let out = typed(&mut s, "exec cat /app/three /app/four");
    assert!(out.contains("fn-b\nunexported"), "{out}");
    s.send_line("c").unwrap();
    assert_eq!(exit_code(&mut s), 0);

    // The same stages, the same files as a plain build's in another store; and here, a plain
    // build reuses every stage.
    let debugged = committed(&env, "app", "/app");
    assert!(!debugged.1.contains("scribble"), "{}", debugged.1);
    let plain = Env::new();
    let plain_dir = plain.project("lines", STAGES);
    plain.build_ok(&plain_dir);
    assert_eq!(debugged, committed(&plain, "app", "/app"));
    let out = env.build(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("0 stage(s) built, 4 reused"), "{stderr}");
}

#[test]
fn a_breakpoint_on_a_cached_stage_pauses_on_its_result_without_rebuilding_it() {
    let env = Env::new();
    let dir = env.project("cached", STAGES);
    env.build_ok(&dir);
    let mut s = on_a_terminal(&env, &dir, &["--break", "strata.yaml:9"]);
    let paused = s.exp_string("(strata) ").unwrap();
    assert!(
        paused.contains("stage `install`") && paused.contains("the stage is cached"),
        "{paused}"
    );
    // The cached result is there to look at, its own layer against the state before it.
    let out = typed(&mut s, "exec cat /app/one /app/three");
    assert!(out.contains("unexported exp /app\nfn-b"), "{out}");
    let out = typed(&mut s, "diff");
    assert!(out.contains("A /app/three"), "{out}");
    let out = typed(&mut s, "exec --base ls /app");
    assert!(out.contains("base") && !out.contains("three"), "{out}");
    // `next` goes on to the next stage, cached too, without running install again.
    let out = typed(&mut s, "next");
    assert!(out.contains("stage `setup`"), "{out}");
    let out = typed(&mut s, "exec cat /app/setup");
    assert!(out.contains("set"), "{out}");
    s.send_line("continue").unwrap();
    let rest = s.exp_eof().unwrap();
    assert!(rest.contains("0 stage(s) built, 4 reused"), "{rest}");

    // `exit` at a pause stops the build there.
    let mut s = on_a_terminal(&env, &dir, &["--break", "all"]);
    let paused = s.exp_string("(strata) ").unwrap();
    assert!(paused.contains("stage `from`"), "{paused}");
    s.send_line("exit").unwrap();
    assert_eq!(exit_code(&mut s), 130);
}

#[test]
fn a_dockerfile_pauses_before_an_instruction_and_steps_through_the_next_ones() {
    let env = Env::new();
    let dir = dockerfile_dir(&env, "df", DOCKERFILE);
    let args = ["--break", "Dockerfile:3", "-t", "df", "."];
    let mut s = on_a_terminal(&env, &dir, &args);
    let paused = s.exp_string("(strata) ").unwrap();
    assert!(paused.contains("next: RUN mkdir /w"), "{paused}");
    // The instruction's build args are in its environment.
    let out = typed(&mut s, "env");
    assert!(out.contains("GREETING=hi"), "{out}");
    let out = typed(&mut s, "exec ls /w");
    assert!(out.contains("No such file"), "{out}");
    let out = typed(&mut s, "n");
    assert!(
        out.contains("paused (step)") && out.contains("next: ENV COLOR=blue"),
        "{out}"
    );
    let out = typed(&mut s, "exec cat /w/one");
    assert!(out.contains("one"), "{out}");
    let out = typed(&mut s, "n");
    assert!(out.contains("--> Dockerfile:5:1"), "{out}");
    s.send_line("c").unwrap();
    assert_eq!(exit_code(&mut s), 0);
    let debugged = committed(&env, "df", "/w");
    let plain = Env::new();
    let plain_dir = dockerfile_dir(&plain, "df", DOCKERFILE);
    build_in(&plain, &plain_dir, &["-t", "df", "."]);
    assert_eq!(debugged, committed(&plain, "df", "/w"));

    // Cached: the instruction's result.
    let mut s = on_a_terminal(&env, &dir, &["--break", "Dockerfile:5", "-t", "df", "."]);
    let paused = s.exp_string("(strata) ").unwrap();
    assert!(paused.contains("the stage is cached"), "{paused}");
    let out = typed(&mut s, "exec cat /w/two");
    assert!(out.contains("hi blue"), "{out}");
    s.send_line("continue").unwrap();
    assert_eq!(exit_code(&mut s), 0);
}

#[test]
fn breakpoints_the_build_cannot_reach_are_refused_before_anything_runs() {
    let env = Env::new();
    let dir = env.project("bad", STAGES);
    for (spec, expected) in [
        (
            "app/nosuch",
            "--break app/nosuch: no such stage; stages are: app/from",
        ),
        (
            "other.yaml:3",
            "the build has no steps written in `other.yaml`",
        ),
        (
            "strata.yaml:3",
            "no step is written on line 3 of `strata.yaml`; steps start on lines",
        ),
        (
            "strata.yaml:x",
            "is not a breakpoint: write IMAGE/STAGE, STAGE, FILE:LINE",
        ),
    ] {
        let out = env
            .cmd()
            .args(["build", "--break", spec])
            .current_dir(&dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{spec}: {stderr}");
        assert!(stderr.contains(expected), "{spec}: {stderr}");
    }
    assert!(env.stage_records().is_empty(), "nothing was built");
}
