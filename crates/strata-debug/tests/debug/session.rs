//! The monitor: scripted sessions over a real failed step, and a PTY-driven one.

use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use strata_debug::{Error, Outcome, Session};

use crate::{Fixture, LISTING, Step, assert_no_host_mounts, busybox_rootfs, sandbox, sections};

#[test]
fn scripted_session_inspects_reruns_and_resets() {
    let fx = Fixture::failed();
    let script = "\
help
diff
exec cat /partial
exec sh -c 'echo x > /new'
exec ls /new
reset
exec ls /new
rerun
rerun --base
env
list
frobnicate
exec --base cat /partial
exec cat /cache/cached
exec nope
";
    let (outcome, out) = fx.monitor(script);
    assert_eq!(outcome, Outcome::Exit, "EOF exits");
    let s = sections(&out, script);
    assert_eq!(s.len(), script.lines().count() + 2, "{out}");

    // What failed comes first.
    let summary = &s[0];
    for needle in [
        "error: command failed with exit code 3 in image `app`, stage `build`",
        "command: echo partial > /partial; rm /etc/motd; exit 3",
        "--> strata.yaml:4:9",
        "^^^^^^^^^^^^ exited with 3",
        "`help` lists every command",
    ] {
        assert!(summary.contains(needle), "{needle:?} not in {summary}");
    }
    assert_eq!(fx.output, "", "the failing step prints nothing");
    assert!(summary.contains("(no output)"), "{summary}");

    let help = &s[1];
    for command in [
        "shell [--base]",
        "rerun [--base]",
        "exec [--base] CMD...",
        "diff",
        "env",
        "list",
        "reset",
        "reload",
        "exit, quit",
        "help",
    ] {
        assert!(help.contains(command), "{command} not in {help}");
    }
    assert_eq!(s[2], "M /etc\nD /etc/motd\nA /partial\n");
    assert_eq!(s[3], "partial\n");
    assert_eq!(s[4], "");
    assert_eq!(s[5], "/new\n");
    assert!(
        s[6].starts_with("dropped this session's changes"),
        "{}",
        s[6]
    );
    assert_eq!(s[7], "ls: /new: No such file or directory\nexit code 1\n");
    // The failed command again, in the failed state: /etc/motd is already gone.
    assert_eq!(
        s[8],
        "rm: can't remove '/etc/motd': No such file or directory\nexit code 3\n"
    );
    // The whole step from a clean base.
    assert_eq!(s[9], "state=clean\nmotd=present\nexit code 3\n");
    let env: String = fx
        .failure
        .spec
        .process
        .env
        .iter()
        .map(|e| format!("{e}\n"))
        .collect();
    assert_eq!(s[10], env);
    assert_eq!(s[11], LISTING);
    assert_eq!(
        s[12],
        "unknown command `frobnicate`; type `help` for the list of commands\n"
    );
    assert_eq!(
        s[13],
        "cat: can't open '/partial': No such file or directory\nexit code 1\n"
    );
    assert_eq!(s[14], "from the cache\n");
    assert!(
        s[15].starts_with("error: run `nope` in the failed state: container setup failed")
            && s[15].contains("executable file not found"),
        "{}",
        s[15]
    );
    assert_eq!(s[16], "\n", "EOF ends the line");
}

#[test]
fn session_changes_persist_until_reset_and_base_is_separate() {
    let fx = Fixture::failed();
    let script = "\
exec sh -c 'echo one > /srv/app/kept'
rerun
exec cat /srv/app/kept
exec --base sh -c 'echo base > /basefile; ls /srv/app'
exec ls /basefile
exec --base cat /basefile
reset
exec --base cat /basefile
quit
exec cat /never
";
    let (outcome, out) = fx.monitor(script);
    assert_eq!(outcome, Outcome::Exit);
    let s = sections(&out, script);
    assert_eq!(s[3], "one\n", "a rerun keeps earlier session changes");
    assert_eq!(
        s[4], "",
        "the base state has neither the step's nor the session's files"
    );
    assert_eq!(
        s[5],
        "ls: /basefile: No such file or directory\nexit code 1\n"
    );
    assert_eq!(s[6], "base\n");
    assert_eq!(
        s[8],
        "cat: can't open '/basefile': No such file or directory\nexit code 1\n"
    );
    assert_eq!(s.len(), 10, "nothing is read after quit: {out}");
}

#[test]
fn reload_returns_reload() {
    let fx = Fixture::failed();
    let (outcome, out) = fx.monitor("env\nreload\nexit\n");
    assert_eq!(outcome, Outcome::Reload);
    assert!(!out.contains("exit\n(strata)"), "{out}");
}

#[test]
fn same_environment_as_the_failed_step() {
    let probe = "env | sort; id; pwd; hostname; umask; \
                 cut -d\" \" -f5 /proc/self/mountinfo | sort; \
                 ls /cache; [ -t 0 ] && echo tty || echo no-tty";
    let fx = Fixture::with_step(Step {
        user: "builder",
        cwd: "/home/builder",
        script: format!("{probe}; exit 3"),
    });
    assert!(
        fx.output
            .contains("uid=1234(builder) gid=2345(builders) groups=3456(extra)\n"),
        "{}",
        fx.output
    );
    assert!(fx.output.contains("/.strata/toolbox\n"), "{}", fx.output);
    let script = format!("exec sh -c '{probe}'\nrerun\n");
    let (_, out) = fx.monitor(&script);
    let s = sections(&out, &script);
    assert_eq!(s[1], fx.output, "exec sees what the failed step saw");
    assert_eq!(s[2], format!("{}exit code 3\n", fx.output), "so does rerun");
    // Everything the step printed is in the summary's tail.
    for line in fx.output.lines() {
        assert!(
            s[0].contains(&format!("  | {line}\n")),
            "{line} not in {}",
            s[0]
        );
    }
}

#[test]
fn missing_failed_upper_is_explained() {
    let fx = Fixture::failed();
    let mut failure = fx.failure.clone();
    failure.spec.upper = fx.tmp.path().join("gone");
    let sandbox = sandbox();
    let err = Session::new(&sandbox, failure, fx.scratch("s")).expect_err("upper is gone");
    assert!(
        matches!(err, Error::StateGone { what: "upper", .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("must keep it until the debugger session ends"),
        "{err}"
    );
}

#[test]
fn failure_without_argv_cannot_rerun() {
    let fx = Fixture::failed();
    let mut failure = fx.failure.clone();
    failure.rerun_args.clear();
    let (_, out) = fx.monitor_failure(failure, "rerun\n");
    assert!(
        out.contains("error: no command to rerun: the step failed before any command ran"),
        "{out}"
    );
}

/// Drives the monitor binary through a real pty, like a user at a terminal.
fn spawn_monitor(
    fx: &Fixture,
    extra: &[&std::path::Path],
) -> (rexpect::session::PtySession, std::path::PathBuf) {
    let json = fx.failure_json(&fx.failure);
    let scratch = fx.scratch("pty");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_strata-debug-monitor"));
    cmd.arg("monitor").arg(&json).arg(&scratch).args(extra);
    let p = rexpect::session::spawn_command(cmd, Some(30_000)).expect("spawn monitor in a pty");
    (p, scratch)
}

#[test]
fn shell_through_a_pty_and_back_to_the_monitor() {
    let fx = Fixture::failed();
    let before = fx.state_snapshot();
    let (mut p, scratch) = spawn_monitor(&fx, &[]);
    p.exp_string("(strata) ").expect("prompt");
    p.send_line("shell").expect("send");
    p.exp_string("/bin/sh in the failed state")
        .expect("shell intro");
    // The computed output never appears in the echo of what was typed.
    p.send_line("cat /partial; echo hello-$((6*7)); pwd; echo x > /from-shell")
        .expect("send");
    p.exp_string("partial").expect("the broken state");
    p.exp_string("hello-42").expect("output");
    p.exp_string("/srv/app").expect("cwd");
    p.send_line("exit").expect("send");
    p.exp_string("(strata) ").expect("back at the monitor");
    p.send_line("exec cat /from-shell").expect("send");
    p.exp_string("x\r\n").expect("shell changes persist");
    p.exp_string("(strata) ").expect("prompt");
    p.send_line("shell --base").expect("send");
    p.exp_string("in the base state").expect("intro");
    p.exp_string("# ").expect("shell prompt");
    p.send_line("[ -e /partial ] || echo no-partial-$((1+1)); cat /etc/motd")
        .expect("send");
    p.exp_string("no-partial-2").expect("clean base");
    p.exp_string("welcome").expect("motd is back");
    p.send_line("exit 4").expect("send");
    p.exp_string("exit code 4").expect("shell status");
    p.exp_string("(strata) ").expect("prompt");
    p.send_line("quit").expect("send");
    p.exp_string("outcome: exit").expect("outcome");
    p.exp_eof().expect("eof");
    std::thread::sleep(Duration::from_millis(50));
    fx.assert_left_nothing(&scratch, &before);
}

#[test]
fn debugger_image_sees_the_failed_root_at_debugroot() {
    let fx = Fixture::failed();
    let before = fx.state_snapshot();
    let image = fx.tmp.path().join("layers/debugger");
    busybox_rootfs(&image);
    fs::write(image.join("i-am-the-debugger"), "debugger-image\n").expect("marker");
    fs::remove_file(image.join("bin/sh")).expect("rm sh");
    symlink("/bin/busybox", image.join("bin/sh")).expect("absolute sh link");
    let (mut p, scratch) = spawn_monitor(&fx, &[&image]);
    p.exp_string("(strata) ").expect("prompt");
    p.send_line("shell").expect("send");
    p.exp_string("the failed state at /debugroot")
        .expect("intro");
    p.send_line("cat /i-am-the-debugger /debugroot/partial /debugroot/cache/cached; pwd; echo dbg-$((2*3)) > /debugroot/from-debugger; echo $PATH").expect("send");
    p.exp_string("debugger-image\r\npartial\r\nfrom the cache\r\n/debugroot\r\n")
        .expect("image, failed root and mounts");
    p.exp_string(":/.strata/toolbox/bin")
        .expect("toolbox at PATH's end");
    p.send_line("exit").expect("send");
    p.exp_string("(strata) ").expect("back");
    p.send_line("exec cat /from-debugger").expect("send");
    p.exp_string("dbg-6")
        .expect("debugroot writes are session changes");
    p.exp_string("(strata) ").expect("prompt");
    p.send_line("reset").expect("send");
    p.exp_string("(strata) ").expect("prompt");
    p.send_line("exec ls /from-debugger").expect("send");
    p.exp_string("exit code 1").expect("reset dropped them");
    p.exp_string("(strata) ").expect("prompt");
    p.send_line("reload").expect("send");
    p.exp_string("outcome: reload").expect("outcome");
    p.exp_eof().expect("eof");
    assert_no_host_mounts(fx.tmp.path());
    fx.assert_left_nothing(&scratch, &before);
}

#[test]
fn a_shell_left_running_is_ended_with_the_session_and_leaves_nothing() {
    let fx = Fixture::failed();
    let before = fx.state_snapshot();
    let (mut p, scratch) = spawn_monitor(&fx, &[]);
    p.exp_string("(strata) ").expect("prompt");
    p.send_line("shell").expect("send");
    p.exp_string("Ctrl-p Ctrl-q leaves it running")
        .expect("intro");
    p.exp_string("# ").expect("shell prompt");
    p.send_line("echo x > /left-running; echo wrote-$((6*7))")
        .expect("send");
    p.exp_string("wrote-42").expect("output");
    p.send("\x10\x11").expect("detach keys");
    p.flush().expect("flush");
    p.exp_string("detached: process 1").expect("detached");
    p.exp_string("(strata) ").expect("prompt");
    // A base-state container beside it, and the session's mounts are its own while it runs.
    p.send_line("exec --base sh -c 'echo beside-$((6*7))'")
        .expect("send");
    p.exp_string("beside-42").expect("a second container");
    p.exp_string("(strata) ").expect("prompt");
    p.send_line("rerun").expect("send");
    p.exp_string("process 1 (`/bin/sh`) still runs in the failed state")
        .expect("the failed state's changes are in use");
    p.exp_string("(strata) ").expect("prompt");
    p.send_line("quit").expect("send");
    p.exp_string("leaving the debugger: ended process 1 (`/bin/sh`)")
        .expect("said");
    p.exp_string("outcome: exit").expect("outcome");
    p.exp_eof().expect("eof");
    assert_no_host_mounts(fx.tmp.path());
    fx.assert_left_nothing(&scratch, &before);
}

#[test]
fn log_follows_a_running_build_until_ctrl_c_and_its_end() {
    let fx = Fixture::failed();
    let fifo = fx.tmp.path().join("build-log");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.expect("run mkfifo").success());
    let (mut p, _scratch) = spawn_monitor(&fx, &[Path::new("--build-log"), &fifo]);
    p.exp_string("(strata) ").expect("prompt");
    // The build writes as it goes (opening blocks until the monitor's side reads).
    let mut build = fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .expect("open the build's end");
    p.send_line("log -f web").expect("send");
    p.exp_string("the build printed nothing for `web`")
        .expect("nothing so far");
    p.exp_string("following the build's output; Ctrl-C comes back")
        .expect("following");
    writeln!(build, "web/setup first line").expect("write");
    p.exp_string("web/setup | first line").expect("a new line");
    writeln!(build, "app/install not web's").expect("write");
    writeln!(build, "web/setup second-{}", 6 * 7).expect("write");
    p.exp_string("web/setup | second-42").expect("a new line");
    p.send_control('c').expect("ctrl-c");
    p.exp_string("^C").expect("back");
    p.exp_string("(strata) ").expect("prompt");
    p.send_line("log").expect("send");
    p.exp_string("app/install | not web's")
        .expect("every image's");
    p.exp_string("(strata) ").expect("prompt");
    p.send_line("log -f app").expect("send");
    p.exp_string("following").expect("following");
    drop(build);
    p.exp_string("no image is building any more: the end of the build's output")
        .expect("the build's end ends following");
    p.exp_string("(strata) ").expect("prompt");
    p.send_line("quit").expect("send");
    p.exp_eof().expect("eof");
}

#[test]
fn rollback_runs_the_step_again_and_the_monitor_stays_on_its_result() {
    let fx = Fixture::failed();
    let script = "\
exec sh -c 'echo session > /session-change'
rollback
exec ls /session-change
exec cat /partial
diff
info
ps
attach 1
log
";
    let (outcome, out) = fx.monitor(script);
    assert_eq!(outcome, Outcome::Exit, "{out}");
    let s = sections(&out, script);
    let rollback = &s[2];
    // The step from its start, in a clean base state: the session's change is gone.
    assert!(
        rollback.contains("dropped this session's changes"),
        "{rollback}"
    );
    assert!(rollback.contains("state=clean"), "{rollback}");
    assert!(rollback.contains("motd=present"), "{rollback}");
    assert!(
        rollback.contains(
            "the step failed again, exit code 3: the monitor is on the state it left now"
        ),
        "{rollback}"
    );
    assert!(s[3].contains("exit code 1"), "no session change: {}", s[3]);
    assert!(s[4].contains("partial"), "{}", s[4]);
    assert!(
        s[5].contains("A /partial") && s[5].contains("D /etc/motd"),
        "{}",
        s[5]
    );
    // `info` shows the new run's output.
    assert!(s[6].contains("| state=clean"), "{}", s[6]);
    // Without a terminal nothing is left running, and this monitor has no build's output.
    assert!(s[7].contains("no processes"), "{}", s[7]);
    assert!(s[8].contains("`attach` needs a terminal"), "{}", s[8]);
    assert!(s[9].contains("the build's output is not here"), "{}", s[9]);
}
