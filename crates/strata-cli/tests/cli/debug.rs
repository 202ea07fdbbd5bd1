//! Introspection and the debugger, driven through pipes and real PTYs.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;

use rexpect::session::PtySession;

use crate::support::{Env, leftovers};

pub(crate) const FAILING: &str = r#"image: app
from: busybox:latest
shell:
  beforeInstall:
  - mkdir -p /app && echo base > /app/base
  install:
  - echo partial > /app/partial && rm /app/base
  - env | sort > /app/env.txt; echo "user=$(id -u) cwd=$(pwd) host=$(hostname)"; false
"#;

/// The overlays mounted beneath `store` (where every container root of its builds is
/// mounted): other tests' builds run beside this one, so a count over all mounts would see theirs.
fn overlay_mounts(store: &std::path::Path) -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(" overlay "))
        .filter(|l| {
            l.split(' ')
                .nth(4)
                .is_some_and(|point| std::path::Path::new(point).starts_with(store))
        })
        .count()
}

fn debugger(env: &Env, dir: &std::path::Path, script: &str) -> std::process::Output {
    let mut cmd = env.cmd();
    cmd.args(["build", "--progress", "plain", "--debugger"])
        .current_dir(dir);
    with_input(cmd, script)
}

/// Runs `cmd` with `script` as its stdin (the monitor's commands, one per line).
pub(crate) fn with_input(mut cmd: std::process::Command, script: &str) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn debugger_shows_the_failure_and_works_on_its_state_without_touching_the_cache() {
    let env = Env::new();
    let dir = env.project("dbg", FAILING);
    let mounts = overlay_mounts(env.store.path());
    let script = "diff\nexec cat /app/partial\nexec sh -c 'echo scribble > /app/partial'\nexec cat /app/partial\nreset\nexec cat /app/partial\nexec ls /app/base\nexec --base ls /app\nrerun\nlist\nexec sh -c 'env | sort'\nexec cat /app/env.txt\nexit\n";
    let out = debugger(&env, &dir, script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the build ends with the failure's status:\n{stdout}\n{stderr}"
    );
    // What failed, and where.
    assert!(stdout.contains("image `app`, stage `install`"), "{stdout}");
    assert!(stdout.contains("--> strata.yaml:8:5"), "{stdout}");
    // diff against the state before the step.
    assert!(
        stdout.contains("A /app/partial") && stdout.contains("D /app/base"),
        "{stdout}"
    );
    // exec sees the broken state; changes persist until reset.
    let after = |cmd: &str| {
        stdout
            .split(&format!("(strata) {cmd}\n"))
            .nth(1)
            .map(|s| s.lines().next().unwrap_or("").to_string())
    };
    assert_eq!(after("exec cat /app/partial").as_deref(), Some("partial"));
    assert!(
        stdout.contains("(strata) exec cat /app/partial\nscribble\n"),
        "{stdout}"
    );
    assert!(stdout.contains("(strata) reset\n"), "{stdout}");
    assert!(
        stdout.contains("(strata) exec --base ls /app\nbase\n"),
        "the base state is before the step:\n{stdout}"
    );
    assert!(
        stdout.contains("exit code 1"),
        "rerun reports the command's exit code:\n{stdout}"
    );
    // The debugger's environment is the failed step's, exactly.
    let probe = stdout
        .split("(strata) exec sh -c 'env | sort'\n")
        .nth(1)
        .unwrap();
    let (live, recorded) = probe
        .split_once("(strata) exec cat /app/env.txt\n")
        .unwrap();
    let recorded = recorded.split("(strata)").next().unwrap();
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("SHLVL=") && !l.starts_with("_=") && !l.starts_with("PWD="))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(live), strip(recorded));
    // Nothing of the failed stage or the debugger reached the store, no mount leaked.
    assert!(env.stage_records().iter().all(|r| r["stage"] != "install"));
    assert_eq!(leftovers(env.store.path()), Vec::<String>::new());
    assert_eq!(overlay_mounts(env.store.path()), mounts);
}

#[test]
fn reload_rebuilds_after_the_user_fixes_the_config() {
    let env = Env::new();
    let dir = env.project("reload", "image: app\nfrom: busybox:latest\nshell:\n  install:\n  - echo first\n  setup:\n  - test -f /fixed\n");
    let mut child = env
        .cmd()
        .args(["build", "--progress", "plain", "--debugger"])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    // Wait for the monitor, then fix the config as a user would, then reload.
    let mut seen = String::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with("(strata) ") {
        assert_eq!(
            stdout.read(&mut byte).unwrap(),
            1,
            "the monitor never prompted:\n{seen}"
        );
        seen.push(byte[0] as char);
    }
    std::fs::write(dir.join("strata.yaml"), "image: app\nfrom: busybox:latest\nshell:\n  install:\n  - echo first\n  setup:\n  - touch /fixed\n").unwrap();
    stdin.write_all(b"reload\n").unwrap();
    drop(stdin);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{seen}{rest}\n{stderr}");
    // The reload reused the cached install stage and built only setup.
    let second = stderr.rsplit("debugger on app/setup: done").next().unwrap();
    assert!(second.contains("app/install: cached"), "{second}");
    assert!(second.contains("app/setup: built"), "{second}");
}

#[test]
fn introspect_error_and_before_error_open_shells_in_those_states() {
    let env = Env::new();
    let dir = env.project("intro", FAILING);
    for (flag, probe, expected) in [
        (
            "--introspect-error",
            "cat /app/partial; ls /app/base 2>&1 | head -1",
            "partial\nls: /app/base: No such file or directory\n",
        ),
        (
            "--introspect-before-error",
            "ls /app; ls /app/partial 2>&1 | head -1",
            "base\nls: /app/partial: No such file or directory\n",
        ),
    ] {
        let mut child = env
            .cmd()
            .args(["build", "--progress", "plain", flag])
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{probe}\nexit 0\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{flag}: the build still reports the failure"
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            expected,
            "{flag}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(env.stage_records().iter().all(|r| r["stage"] != "install"));
}

#[test]
fn introspect_stage_pauses_one_image_while_others_build() {
    let env = Env::new();
    let dir = env.project(
        "par",
        "image: a\nfrom: busybox:latest\nshell:\n  install:\n  - echo a > /a\n---\nimage: b\nfrom: busybox:latest\nshell:\n  install:\n  - echo b > /b\n  setup:\n  - echo more\n",
    );
    let mut child = env
        .cmd()
        .args([
            "build",
            "--progress",
            "plain",
            "--introspect-stage",
            "a/install",
        ])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    // a's shell waits for input (nothing is typed until here), and b builds to the end
    // meanwhile: b does not wait for the shell. (Which of the two comes first is the
    // scheduler's: both share the `from` stage's lock.)
    let mut log = String::new();
    while !(log.contains("\nb: done") && log.contains("a/install: interactive")) {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "b never finished while a's shell was open:\n{log}"
        );
        log.push_str(&line);
    }
    stdin.write_all(b"cat /a\nexit\n").unwrap();
    drop(stdin);
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{log}{rest}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\n");
}

#[test]
fn unknown_introspection_targets_list_the_valid_ones() {
    let env = Env::new();
    let dir = env.project(
        "bad",
        "image: a\nfrom: busybox:latest\nshell:\n  install:\n  - echo a\n",
    );
    let out = env
        .cmd()
        .args(["build", "--introspect-stage", "nope/install"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no image `nope`; images are: a"));
    let out = env
        .cmd()
        .args(["build", "--introspect-stage", "a/setup"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no stage `setup` here; stages are: from, install")
    );
}

#[test]
fn debugger_shell_over_a_real_terminal() {
    let env = Env::new();
    let dir = env.project("pty", FAILING);
    let mut cmd = env.cmd();
    cmd.args(["build", "--progress", "plain", "--debugger"])
        .current_dir(&dir);
    let mut session = rexpect::session::spawn_command(cmd, Some(30_000)).unwrap();
    session.exp_string("(strata) ").unwrap();
    session.send_line("shell").unwrap();
    // Typed before the shell's prompt, input could be lost.
    session.exp_string("failed state) ").unwrap();
    session
        .send_line("cat /app/partial; [ -t 0 ] && echo tty-yes; echo on-$(tty)")
        .unwrap();
    session.exp_string("partial").unwrap();
    session.exp_string("tty-yes").unwrap();
    // The terminal is the container's own: `tty` names it in the container's /dev/pts.
    session.exp_string("on-/dev/pts/0").unwrap();
    // Ctrl-C goes to the process in the container, not to strata.
    session.send_line("echo sleeping; sleep 30").unwrap();
    session.exp_string("sleeping\r\n").unwrap();
    session.send_control('c').unwrap();
    session.send_line("echo alive-after-ctrl-c").unwrap();
    session.exp_string("alive-after-ctrl-c").unwrap();
    session.send_line("exit").unwrap();
    // `exec` gets a terminal of its own too.
    session.exp_string("(strata) ").unwrap();
    session
        .send_line("exec sh -c 'echo exec-on-$(tty)'")
        .unwrap();
    session.exp_string("exec-on-/dev/pts/0").unwrap();
    exit_monitor(&mut session, 1);
}

/// Leaves the shell's monitor prompt with `exit` and checks that strata ended with `code`.
pub(crate) fn exit_monitor(session: &mut rexpect::session::PtySession, code: i32) {
    session.exp_string("(strata) ").unwrap();
    session.send_line("exit").unwrap();
    ends_with_status(session, code);
}

/// Waits for the end of the build on `session` and checks it exits with `code`.
pub(crate) fn ends_with_status(session: &mut rexpect::session::PtySession, code: i32) {
    session.exp_eof().unwrap();
    let status = session.process().wait().unwrap();
    assert!(
        matches!(status, rexpect::process::WaitStatus::Exited(_, c) if c == code),
        "{status:?}"
    );
}

#[test]
fn a_failed_file_operation_lands_in_the_debugger_too() {
    let env = Env::new();
    let dir = env.project(
        "fileop",
        "image: app\nfrom: busybox:latest\ngit:\n- add: /src\n  to: /app\n  owner: nosuchuser\n",
    );
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/f"), "f\n").unwrap();
    for args in [
        &["init", "-q"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.email=a@b",
            "-c",
            "user.name=a",
            "commit",
            "-qm",
            "one",
        ],
    ] {
        assert!(
            std::process::Command::new("git")
                .arg("-C")
                .arg(&dir)
                .args(args)
                .status()
                .unwrap()
                .success()
        );
    }
    let out = debugger(&env, &dir, "exec ls /etc/passwd\nrerun\nexit\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout.contains("owner `nosuchuser` is not in the image's /etc/passwd"),
        "{stdout}"
    );
    assert!(
        stdout.contains("--> strata.yaml:4:3"),
        "points at the mapping:\n{stdout}"
    );
    // A shell there sees the state where the files would have gone.
    assert!(
        stdout.contains("(strata) exec ls /etc/passwd\n/etc/passwd\n"),
        "{stdout}"
    );
    // No command ran, so none can be rerun: said in the user's terms.
    assert!(
        stdout.contains(
            "(strata) rerun\nerror: no command to rerun: the step failed before any command ran"
        ),
        "{stdout}"
    );
}

/// Starts `strata build --debugger` on a real terminal (with `TERM=xterm-test`) and waits for
/// the monitor's prompt.
pub(crate) fn debugger_on_a_terminal(
    env: &Env,
    args: &[&str],
    dir: &std::path::Path,
) -> PtySession {
    let mut cmd = env.cmd();
    cmd.args(["build", "--progress", "plain", "--debugger"])
        .args(args)
        .current_dir(dir)
        .env("TERM", "xterm-test");
    let mut session = rexpect::session::spawn_command(cmd, Some(60_000)).unwrap();
    session.exp_string("(strata) ").unwrap();
    session
}

/// Types `line` (which must end its output by printing `END-42`, typed as `END-$((6*7))` so
/// the echo does not match) and returns the output's `NAME=value` lines, sorted.
fn typed_env(session: &mut PtySession, line: &str) -> Vec<String> {
    typed_env_until(session, line, "END-42")
}

/// [`typed_env`] with the output ending at `end`.
fn typed_env_until(session: &mut PtySession, line: &str, end: &str) -> Vec<String> {
    session.send_line(line).unwrap();
    let text = session.exp_string(end).unwrap();
    let mut vars: Vec<String> = text
        .replace('\r', "")
        .lines()
        .filter(|l| {
            l.split_once('=').is_some_and(|(name, _)| {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        })
        .map(str::to_owned)
        .collect();
    vars.sort();
    vars
}

/// `vars` without the variables named in `names`.
fn without(vars: &[String], names: &[&str]) -> Vec<String> {
    vars.iter()
        .filter(|v| !names.iter().any(|n| v.starts_with(&format!("{n}="))))
        .cloned()
        .collect()
}

fn var<'a>(vars: &'a [String], name: &str) -> Option<&'a str> {
    vars.iter()
        .find_map(|v| v.strip_prefix(name)?.strip_prefix('='))
}

/// What a shell sets per process, not part of a step's environment.
const PER_PROCESS: [&str; 2] = ["_", "SHLVL"];

#[test]
fn a_stapel_debugger_starts_where_the_failed_line_started() {
    let env = Env::new();
    let dir = env.project(
        "fidelity",
        "image: app\nfrom: busybox:latest\nshell:\n  install:\n  - mkdir -p /app && cd /app && export GREETING=hi\n  - echo \"$GREETING from $(pwd)\"; env | sort > /step-env.txt; false\n",
    );
    let mut s = debugger_on_a_terminal(&env, &[], &dir);
    // rerun: the line again after the `cd` and `export` of the line before, and no locale
    // warning the build did not print.
    s.send_line("rerun").unwrap();
    let rerun = s.exp_string("(strata) ").unwrap();
    assert!(rerun.contains("hi from /app"), "{rerun}");
    assert!(!rerun.contains("setlocale"), "{rerun}");
    let step = typed_env(&mut s, "exec sh -c 'cat /step-env.txt; echo END-$((6*7))'");
    let step = without(&step, &PER_PROCESS);
    assert_eq!(var(&step, "GREETING"), Some("hi"), "{step:?}");
    assert_eq!(var(&step, "PWD"), Some("/app"), "{step:?}");
    s.exp_string("(strata) ").unwrap();
    // exec: the same environment, variable for variable, with the user's TERM on a terminal.
    let exec = typed_env(&mut s, "exec sh -c 'env | sort; echo END-$((6*7))'");
    assert_eq!(var(&exec, "TERM"), Some("xterm-test"), "{exec:?}");
    assert_eq!(without(&exec, &["_", "SHLVL", "TERM"]), step);
    s.exp_string("(strata) ").unwrap();
    // The monitor's `env` lists it too.
    let listed = typed_env_until(&mut s, "env", "(strata) ");
    assert_eq!(listed, step);
    // shell: the same, and the toolbox on PATH once (a stage script's PATH has it).
    s.send_line("shell").unwrap();
    // Its prompt says where it is; typed before it, input could be lost.
    s.exp_string(": failed state) /app # ").unwrap();
    let shell = typed_env(&mut s, "env | sort; echo END-$((6*7))");
    assert_eq!(without(&shell, &["_", "SHLVL", "TERM", "PS1"]), step);
    let path = var(&shell, "PATH").unwrap();
    assert_eq!(path.matches("/.strata/toolbox/bin").count(), 1, "{path}");
    s.send_line("exit").unwrap();
    exit_monitor(&mut s, 1);
}

#[test]
fn a_dockerfile_debugger_has_the_steps_args_and_secret_variables() {
    let env = Env::new();
    let dir = env.work.path().join("dfenv");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox:latest\nARG VERSION=7\n\
         RUN --mount=type=secret,id=tok,env=TOKEN \
         env | sort > /step-env.txt; echo \"version=$VERSION token=$TOKEN\"; false\n",
    )
    .unwrap();
    let mut cmd = env.cmd();
    cmd.args(["build", "--progress", "plain", "--debugger"])
        .args(["--secret", "id=tok,env=MY_TOKEN"])
        .arg(&dir)
        .env("MY_TOKEN", "s3cret")
        .env("TERM", "xterm-test");
    let mut s = rexpect::session::spawn_command(cmd, Some(60_000)).unwrap();
    s.exp_string("(strata) ").unwrap();
    s.send_line("rerun").unwrap();
    let rerun = s.exp_string("(strata) ").unwrap();
    assert!(rerun.contains("version=7 token=s3cret"), "{rerun}");
    let step = typed_env(&mut s, "exec sh -c 'cat /step-env.txt; echo END-$((6*7))'");
    let step = without(&step, &PER_PROCESS);
    assert_eq!(var(&step, "VERSION"), Some("7"), "{step:?}");
    s.exp_string("(strata) ").unwrap();
    let exec = typed_env(&mut s, "exec sh -c 'env | sort; echo END-$((6*7))'");
    assert_eq!(without(&exec, &["_", "SHLVL", "TERM"]), step);
    s.exp_string("(strata) ").unwrap();
    // `env` lists the step's variables; `sh -c` added PWD itself.
    let listed = typed_env_until(&mut s, "env", "(strata) ");
    assert_eq!(listed, without(&step, &["PWD"]));
    // shell: the same but for the toolbox at PATH's end (a RUN's PATH is the image's).
    s.send_line("shell").unwrap();
    s.exp_string("(dfenv/2-run: failed state) / # ").unwrap();
    let shell = typed_env(&mut s, "env | sort; echo END-$((6*7))");
    assert_eq!(
        without(&shell, &["_", "SHLVL", "TERM", "PATH", "PS1"]),
        without(&step, &["PATH"])
    );
    assert_eq!(
        var(&shell, "PATH").map(str::to_owned),
        var(&step, "PATH").map(|p| format!("{p}:/.strata/toolbox/bin"))
    );
    s.send_line("exit").unwrap();
    exit_monitor(&mut s, 1);
}

#[test]
fn the_monitor_survives_ctrl_c_edits_lines_and_stays_after_a_reload_that_does_not_load() {
    let env = Env::new();
    let failing = "image: app\nfrom: busybox:latest\nshell:\n  install:\n  - echo first\n  setup:\n  - test -f /fixed || { if [ -f /slow ]; then echo sleeping-$((6*7)); sleep 30; fi; false; }\n";
    let dir = env.project("monitor", failing);
    let mut s = debugger_on_a_terminal(&env, &[], &dir);
    // The prompt names image and stage (the first prompt was `app/setup (strata) `).
    // Ctrl-C at the prompt clears the line and the session goes on.
    s.send_control('c').unwrap();
    s.exp_string("`exit` leaves the debugger").unwrap();
    s.exp_string("app/setup (strata) ").unwrap();
    // History: Up brings the last command back.
    s.send_line("exec sh -c 'echo hist-$((6*7))'").unwrap();
    s.exp_string("hist-42").unwrap();
    s.exp_string("(strata) ").unwrap();
    s.send("\x1b[A").unwrap();
    s.send_line("").unwrap();
    s.exp_string("hist-42").unwrap();
    s.exp_string("(strata) ").unwrap();
    // Ctrl-C during a rerun stops the rerun, not the session.
    s.send_line("exec touch /slow").unwrap();
    s.exp_string("(strata) ").unwrap();
    s.send_line("rerun").unwrap();
    s.exp_string("sleeping-42").unwrap();
    s.send_control('c').unwrap();
    s.exp_string("^C: stopped").unwrap();
    s.exp_string("(strata) ").unwrap();
    // Ctrl-C during exec goes to the program (it has the terminal).
    s.send_line("exec sh -c 'echo waiting-$((6*7)); sleep 30'")
        .unwrap();
    s.exp_string("waiting-42").unwrap();
    s.send_control('c').unwrap();
    s.exp_string("exit code 130").unwrap();
    s.exp_string("(strata) ").unwrap();
    // The shell's prompt says where it is.
    s.send_line("shell").unwrap();
    s.exp_string("(app/setup: failed state) / # ").unwrap();
    s.send_line("exit").unwrap();
    s.exp_string("(strata) ").unwrap();
    // A reload whose config does not load shows why and stays.
    std::fs::write(dir.join("strata.yaml"), "image: app\nfrom: [busybox\n").unwrap();
    s.send_line("reload").unwrap();
    s.exp_string("the config does not load").unwrap();
    s.exp_string("error: command failed with exit code 1 in image `app`, stage `setup`")
        .unwrap();
    s.exp_string("app/setup (strata) ").unwrap();
    s.send_line("exec sh -c 'echo still-$((6*7))'").unwrap();
    s.exp_string("still-42").unwrap();
    s.exp_string("(strata) ").unwrap();
    // Fixed, the reload builds.
    std::fs::write(dir.join("strata.yaml"), failing.replace("test -f", "touch")).unwrap();
    s.send_line("reload").unwrap();
    s.exp_eof().unwrap();
    let status = s.process().wait().unwrap();
    assert!(
        matches!(status, rexpect::process::WaitStatus::Exited(_, 0)),
        "{status:?}"
    );
}

#[test]
fn a_copy_from_an_image_that_lacks_the_path_opens_the_debugger_and_names_the_image() {
    let env = Env::new();
    let dir = env.work.path().join("copyfrom");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox:latest\nRUN mkdir /landing && echo here > /landing/mark\n\
         COPY --from=busybox:latest /nope /landing/\n",
    )
    .unwrap();
    let mut cmd = env.cmd();
    cmd.args(["build", "--progress", "plain", "--debugger"])
        .arg(&dir);
    let out = with_input(
        cmd,
        "exec cat /landing/mark\nexec ls /.strata/source/bin/busybox\nexit\n",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let message = "`/nope` does not exist in image `busybox:latest`, the image imported from";
    assert!(stderr.contains(message), "{stderr}");
    // The monitor opened on the state the files were to land in.
    assert!(stdout.contains(message), "{stdout}");
    assert!(stdout.contains("Dockerfile:3:1"), "{stdout}");
    assert!(
        stdout.contains("(strata) exec cat /landing/mark\nhere\n"),
        "{stdout}"
    );
    // The image copied from is there to look at, read-only.
    assert!(
        stdout.contains("the image copied from is at /.strata/source (read-only)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "(strata) exec ls /.strata/source/bin/busybox\n/.strata/source/bin/busybox\n"
        ),
        "{stdout}"
    );
    // From a stage of several layers too (an overlay of them).
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox:latest AS src\nRUN echo a > /a\nRUN echo b > /b\n\
         FROM busybox:latest\nCOPY --from=src /nope /x\n",
    )
    .unwrap();
    let mut cmd = env.cmd();
    cmd.args(["build", "--progress", "plain", "--debugger"])
        .arg(&dir);
    let out = with_input(cmd, "exec cat /.strata/source/a /.strata/source/b\nexit\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("image `src`"), "{stdout}");
    assert!(
        stdout.contains("(strata) exec cat /.strata/source/a /.strata/source/b\na\nb\n"),
        "{stdout}"
    );
}
