//! The debugger monitor's process, log and rollback commands, typed on real terminals:
//! `ps`, `attach`, `kill` and the detach keys, `log`, `rollback`, on both frontends.

use rexpect::session::PtySession;

use crate::debug::{FAILING, ends_with_status, exit_monitor};
use crate::feeds::allow_build_dir;
use crate::source_race::{GATE, gate_reached_by};
use crate::stepdebug::dockerfile_dir;
use crate::support::Env;

/// Docker's detach keys: Ctrl-p Ctrl-q.
const DETACH: &str = "\x10\x11";

/// Types `keys` (no newline, so flushed by hand: the session buffers by line).
fn type_keys(s: &mut PtySession, keys: &str) {
    s.send(keys).unwrap();
    s.flush().unwrap();
}

/// Starts `cmd` (a `strata build --debugger`) on a real terminal with `TERM=xterm-test` and
/// waits for the monitor's prompt.
fn on_a_terminal(mut cmd: std::process::Command) -> PtySession {
    cmd.env("TERM", "xterm-test");
    let mut session = rexpect::session::spawn_command(cmd, Some(60_000)).unwrap();
    // After what failed and the hint: the build's own output comes before.
    session.exp_string("`help` lists every command").unwrap();
    session.exp_string("(strata) ").unwrap();
    session
}

fn stapel_debugger(env: &Env, dir: &std::path::Path) -> PtySession {
    let mut cmd = env.cmd();
    cmd.args(["build", "--progress", "plain", "--debugger"])
        .current_dir(dir);
    on_a_terminal(cmd)
}

/// The debugger on a build of `dockerfile` in project `name`, with `args`.
fn dockerfile_debugger(env: &Env, name: &str, dockerfile: &str, args: &[&str]) -> PtySession {
    let dir = dockerfile_dir(env, name, dockerfile);
    let mut cmd = env.cmd();
    cmd.args(["build", "--progress", "plain", "--debugger"])
        .args(args)
        .arg(dir);
    on_a_terminal(cmd)
}

/// Sets the window size of the test's terminal (as a user resizing it).
fn resize(session: &PtySession, rows: u16, cols: u16) {
    let master = session.process().get_file_handle().unwrap();
    rustix::termios::tcsetwinsize(
        &master,
        rustix::termios::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )
    .unwrap();
}

/// Types `ps` until its listing shows `text` (a process ends on its own time), and returns
/// the listing.
fn ps_until(s: &mut PtySession, text: &str) -> String {
    for _ in 0..200 {
        s.send_line("ps").unwrap();
        s.exp_string("COMMAND").unwrap();
        let listing = s.exp_string("(strata) ").unwrap();
        if listing.contains(text) {
            return listing;
        }
    }
    panic!("`ps` never showed {text}");
}

#[test]
fn processes_detach_and_attach_and_are_listed_and_killed() {
    let env = Env::new();
    let dir = env.project("ps", FAILING);
    let mut s = stapel_debugger(&env, &dir);
    s.send_line("help").unwrap();
    for command in [
        "rollback",
        "ps ",
        "attach ID",
        "kill ID",
        "log [-f] [IMAGE[/STAGE]]",
    ] {
        s.exp_string(command).unwrap();
    }
    s.exp_string("Ctrl-p Ctrl-q in a shell or exec on a terminal leaves it running")
        .unwrap();
    s.exp_string("(strata) ").unwrap();
    s.send_line("ps").unwrap();
    s.exp_string("no processes").unwrap();
    s.exp_string("(strata) ").unwrap();
    // A shell left running keeps its shell state.
    s.send_line("shell").unwrap();
    s.exp_string("Ctrl-p Ctrl-q leaves it running").unwrap();
    s.exp_string("(app/install: failed state) ").unwrap();
    s.send_line("KEPT=kept-$((6*7)); cd /app").unwrap();
    s.exp_string("/app # ").unwrap();
    type_keys(&mut s, DETACH);
    s.exp_string(
        "detached: process 1 (`/bin/sh`) runs on in the failed state; `attach 1` comes back",
    )
    .unwrap();
    s.exp_string("(strata) ").unwrap();
    // Its state's changes are its own while it runs: another container there must wait.
    s.send_line("exec ls").unwrap();
    s.exp_string("process 1 (`/bin/sh`) still runs in the failed state")
        .unwrap();
    s.exp_string("(strata) ").unwrap();
    // An exec in the base state, left running too.
    s.send_line("exec --base sh -c 'echo reading-$((6*7)); read x; echo got-$x'")
        .unwrap();
    s.exp_string("reading-42").unwrap();
    type_keys(&mut s, DETACH);
    s.exp_string("detached: process 2").unwrap();
    s.exp_string("(strata) ").unwrap();
    s.send_line("ps").unwrap();
    s.exp_string("ID  IMAGE/STAGE  STATE         STATUS   COMMAND")
        .unwrap();
    s.exp_string("1   app/install  failed state  running  /bin/sh")
        .unwrap();
    s.exp_string(
        "2   app/install  base state    running  sh -c echo reading-$((6*7)); read x; echo got-$x",
    )
    .unwrap();
    s.exp_string("(strata) ").unwrap();
    // attach gives it the terminal again: our input, its output.
    s.send_line("attach 2").unwrap();
    // Typed before it has the terminal, input could be read by the monitor's line editor.
    s.exp_string("attached to process 2").unwrap();
    s.exp_string("detaches again").unwrap();
    s.send_line("hello").unwrap();
    s.exp_string("got-hello").unwrap();
    s.exp_string("(strata) ").unwrap();
    // The window it gets is the terminal's as it is now.
    resize(&s, 37, 91);
    s.send_line("attach 1").unwrap();
    s.exp_string("detaches again").unwrap();
    s.send_line("echo $KEPT in $(pwd) size-$(stty size | tr ' ' x)")
        .unwrap();
    s.exp_string("kept-42 in /app size-37x91").unwrap();
    // And follows the terminal while attached.
    resize(&s, 41, 99);
    s.send_line("echo resized-$(stty size | tr ' ' x)").unwrap();
    s.exp_string("resized-41x99").unwrap();
    s.send_line("sleep 300").unwrap();
    type_keys(&mut s, DETACH);
    s.exp_string("detached: process 1").unwrap();
    s.exp_string("(strata) ").unwrap();
    s.send_line("kill 1").unwrap();
    s.exp_string("process 1 (`/bin/sh`) killed: exit code 137 (killed by signal 9)")
        .unwrap();
    s.exp_string("(strata) ").unwrap();
    s.send_line("attach 1").unwrap();
    s.exp_string("there is no process 1; `ps` lists them")
        .unwrap();
    s.exp_string("(strata) ").unwrap();
    // One that ends while detached is listed with its status.
    s.send_line("exec sh -c 'echo ready-$((6*7)); read x; echo done-$x; exit 3'")
        .unwrap();
    // Typed once it runs: before, the terminal is not raw yet and takes Ctrl-q for itself.
    s.exp_string("ready-42").unwrap();
    type_keys(&mut s, &format!("now\r{DETACH}"));
    s.exp_string("process 3").unwrap();
    let listing = ps_until(&mut s, "exited, exit code 3");
    assert!(
        listing.contains("3   app/install  failed state  exited, exit code 3"),
        "{listing}"
    );
    s.send_line("kill 3").unwrap();
    s.exp_string("process 3 (`sh -c echo ready-$((6*7)); read x; echo done-$x; exit 3`) had exited: exit code 3")
        .unwrap();
    // Ctrl-C at the prompt and Up-arrow history still work with processes about.
    s.exp_string("(strata) ").unwrap();
    s.send_line("exec --base sh -c 'echo up-$((6*7)); sleep 300'")
        .unwrap();
    s.exp_string("up-42").unwrap();
    type_keys(&mut s, DETACH);
    s.exp_string("detached: process 4").unwrap();
    s.exp_string("(strata) ").unwrap();
    s.send_control('c').unwrap();
    s.exp_string("`exit` leaves the debugger").unwrap();
    s.exp_string("(strata) ").unwrap();
    s.send_line("exec sh -c 'echo hist-$((6*7))'").unwrap();
    s.exp_string("hist-42").unwrap();
    s.exp_string("(strata) ").unwrap();
    type_keys(&mut s, "\x1b[A\r");
    s.exp_string("hist-42").unwrap();
    s.exp_string("(strata) ").unwrap();
    // A program that cannot start is not left behind.
    s.send_line("exec nope").unwrap();
    s.exp_string("executable file not found").unwrap();
    s.exp_string("(strata) ").unwrap();
    s.send_line("ps").unwrap();
    s.exp_string("COMMAND").unwrap();
    let listing = s.exp_string("(strata) ").unwrap();
    assert!(listing.contains("running  sh -c echo up-"), "{listing}");
    assert!(!listing.contains("nope"), "{listing}");
    // Leaving ends what is left running, and says so.
    s.send_line("exit").unwrap();
    s.exp_string("leaving the debugger: ended process 4 (`sh -c echo up-$((6*7)); sleep 300`)")
        .unwrap();
    ends_with_status(&mut s, 1);
}

#[test]
fn a_stapel_rollback_runs_the_stage_again_and_log_shows_the_builds_output() {
    let env = Env::new();
    let dir = env.project(
        "rollback",
        "image: app\nfrom: busybox:latest\nshell:\n  install:\n  - mkdir -p /app && echo partial > /app/partial && echo app-says-$((6*7))\n  - echo failing; false\n\
         ---\nimage: web\nfrom: busybox:latest\nshell:\n  install:\n  - echo web-says-$((6*7))\n",
    );
    let mut s = stapel_debugger(&env, &dir);
    // The monitor opens as `app` fails: `web` may still build, until the log says it ended.
    s.send_line("log -f web").unwrap();
    s.exp_string("no image is building any more").unwrap();
    s.exp_string("(strata) ").unwrap();
    // What the build printed, every image's, as the plain progress shows it.
    s.send_line("log").unwrap();
    s.exp_string("app/install | app-says-42").unwrap();
    s.exp_string("(strata) ").unwrap();
    s.send_line("log web").unwrap();
    let web = s.exp_string("(strata) ").unwrap();
    assert!(web.contains("web/install | web-says-42"), "{web}");
    assert!(!web.contains("app-says"), "{web}");
    s.send_line("log -f app/install").unwrap();
    s.exp_string("app/install | app-says-42").unwrap();
    s.exp_string("no image is building any more: no more output will come")
        .unwrap();
    s.exp_string("(strata) ").unwrap();
    // A session change and a process, both gone with the rollback.
    s.send_line("exec touch /session-change").unwrap();
    s.exp_string("(strata) ").unwrap();
    s.send_line("exec --base sh -c 'echo up-$((6*7)); sleep 300'")
        .unwrap();
    s.exp_string("up-42").unwrap();
    type_keys(&mut s, DETACH);
    s.exp_string("detached: process 2").unwrap();
    s.exp_string("(strata) ").unwrap();
    s.send_line("rollback").unwrap();
    s.exp_string("they ran in the states the rollback drops: ended process 2")
        .unwrap();
    s.exp_string("running the step again from its start in a fresh base state")
        .unwrap();
    // The stage's script from its first line: its output again.
    s.exp_string("app-says-42").unwrap();
    s.exp_string("the step failed again, exit code 1: the monitor is on the state it left now")
        .unwrap();
    s.exp_string("(strata) ").unwrap();
    s.send_line("exec sh -c 'ls /session-change; cat /app/partial'")
        .unwrap();
    s.exp_string("No such file or directory").unwrap();
    s.exp_string("partial").unwrap();
    s.exp_string("(strata) ").unwrap();
    s.send_line("diff").unwrap();
    s.exp_string("A /app/partial").unwrap();
    s.exp_string("(strata) ").unwrap();
    s.send_line("info").unwrap();
    s.exp_string("error: command failed with exit code 1 in image `app`, stage `install`")
        .unwrap();
    s.exp_string("| app-says-42").unwrap();
    s.exp_string("(strata) ").unwrap();
    s.send_line("shell").unwrap();
    s.exp_string("(app/install: failed state) / # ").unwrap();
    s.send_line("exit").unwrap();
    s.exp_string("(strata) ").unwrap();
    // A reload's build has a log of its own.
    let yaml = std::fs::read_to_string(dir.join("strata.yaml")).unwrap();
    std::fs::write(
        dir.join("strata.yaml"),
        yaml.replace("app-says-", "app-again-"),
    )
    .unwrap();
    s.send_line("reload").unwrap();
    s.exp_string("`help` lists every command").unwrap();
    s.exp_string("(strata) ").unwrap();
    s.send_line("log app").unwrap();
    let log = s.exp_string("(strata) ").unwrap();
    assert!(log.contains("app/install | app-again-42"), "{log}");
    assert!(!log.contains("app-says-42"), "{log}");
    s.send_line("info").unwrap();
    exit_monitor(&mut s, 1);
}

#[test]
fn a_dockerfile_rollback_that_succeeds_says_so_and_stays_on_the_result() {
    let env = Env::new();
    // Fails once: the cache mount the runs share remembers the first.
    let dockerfile = "FROM busybox:latest\nRUN --mount=type=cache,id=roll,target=/c \
         if [ -f /c/seen ]; then echo second > /result; echo run-two; \
         else touch /c/seen; echo run-one; false; fi\n";
    let mut s = dockerfile_debugger(&env, "dfroll", dockerfile, &[]);
    s.send_line("log").unwrap();
    s.exp_string("dfroll/1-run | run-one").unwrap();
    s.exp_string("(strata) ").unwrap();
    s.send_line("rollback").unwrap();
    s.exp_string("run-two").unwrap();
    s.exp_string("the step succeeded this time").unwrap();
    s.exp_string("a cache mount the runs share").unwrap();
    s.exp_string("(strata) ").unwrap();
    s.send_line("exec cat /result").unwrap();
    s.exp_string("second").unwrap();
    s.exp_string("(strata) ").unwrap();
    s.send_line("info").unwrap();
    s.exp_string(
        "the step succeeded when `rollback` ran it again, in image `dfroll`, stage `1-run`",
    )
    .unwrap();
    s.exp_string("(strata) ").unwrap();
    // The shell names the state: the step's new result.
    s.send_line("shell").unwrap();
    s.exp_string("(dfroll/1-run: passed state) / # ").unwrap();
    s.send_line("exit").unwrap();
    s.exp_string("(strata) ").unwrap();
    s.send_line("shell --base").unwrap();
    s.exp_string("(dfroll/1-run: base state) / # ").unwrap();
    s.send_line("exit").unwrap();
    exit_monitor(&mut s, 1);
}

#[test]
fn the_shells_name_image_stage_and_state_in_a_debugger_image_too() {
    let env = Env::new();
    let dockerfile = "FROM busybox:latest\nRUN echo broken > /broken; false\n";
    let image = ["--debugger-image", "busybox:latest"];
    let mut s = dockerfile_debugger(&env, "dfimage", dockerfile, &image);
    s.send_line("shell").unwrap();
    s.exp_string("(dfimage/1-run: failed state in the debugger image) /debugroot # ")
        .unwrap();
    s.send_line("cat /debugroot/broken").unwrap();
    s.exp_string("broken").unwrap();
    type_keys(&mut s, DETACH);
    s.exp_string("detached: process 1").unwrap();
    s.exp_string("(strata) ").unwrap();
    s.send_line("shell --base").unwrap();
    s.exp_string("(dfimage/1-run: base state in the debugger image) /debugroot # ")
        .unwrap();
    type_keys(&mut s, DETACH);
    s.exp_string("(strata) ").unwrap();
    s.send_line("ps").unwrap();
    s.exp_string("1   dfimage/1-run  failed state in the debugger image  running  /bin/sh")
        .unwrap();
    s.exp_string("2   dfimage/1-run  base state in the debugger image    running  /bin/sh")
        .unwrap();
    s.exp_string("(strata) ").unwrap();
    s.send_line("exit").unwrap();
    s.exp_string("leaving the debugger: ended process 1 (`/bin/sh`), 2 (`/bin/sh`)")
        .unwrap();
    s.exp_eof().unwrap();
}

/// A project of two images: `a` fails at once; `b` waits at a gate the test opens, then
/// prints in two stages, the second waiting for the test again (`/gate/again`) before it ends;
/// and its build with the debugger on a terminal, at the monitor's prompt.
fn failing_beside_a_held_image(env: &Env, name: &str) -> PtySession {
    let again = GATE
        .replace("touch /gate/planned; ", "")
        .replace("/gate/open", "/gate/again");
    let dir = env.project(
        name,
        &format!(
            "image: a\nfrom: busybox:latest\nshell:\n  install:\n  - echo a-fails; false\n\
             ---\nimage: b\nfrom: busybox:latest\nmount:\n- from: build_dir\n  to: /gate\n\
             shell:\n  install:\n  - sh -c '{GATE}'\n  - echo b-past-the-gate-$((6*7))\n  \
             setup:\n  - echo b-setup-$((6*7))\n  - sh -c '{again}'\n"
        ),
    );
    allow_build_dir(&dir);
    let mut cmd = env.cmd();
    cmd.args([
        "build",
        "--progress",
        "plain",
        "--debugger",
        "--parallel",
        "2",
    ])
    .current_dir(&dir);
    on_a_terminal(cmd)
}

#[test]
fn the_monitor_opens_at_the_first_failure_while_other_images_build() {
    let env = Env::new();
    // The monitor on `a` opens before the gate lets `b` go on.
    let mut s = failing_beside_a_held_image(&env, "live");
    let gate = gate_reached_by(&env, || None);
    s.send_line("info").unwrap();
    s.exp_string("image `a`, stage `install`").unwrap();
    s.exp_string("(strata) ").unwrap();
    s.send_line("log -f b").unwrap();
    s.exp_string("following the build's output; Ctrl-C comes back")
        .unwrap();
    std::fs::write(gate.join("open"), "").unwrap();
    let followed = s.exp_string("b/setup | b-setup-42").unwrap();
    assert!(
        followed.contains("b/install | b-past-the-gate-42"),
        "{followed}"
    );
    // `b`'s install stage is built by now, and its progress is held while the monitor is open.
    assert!(!followed.contains("b/install: built"), "{followed}");
    type_keys(&mut s, "\x03");
    s.exp_string("^C").unwrap();
    s.exp_string("(strata) ").unwrap();
    // Followed again, the log ends when `b` does.
    s.send_line("log -f b").unwrap();
    s.exp_string("following the build's output; Ctrl-C comes back")
        .unwrap();
    std::fs::write(gate.join("again"), "").unwrap();
    s.exp_string("no image is building any more: the end of the build's output")
        .unwrap();
    s.exp_string("(strata) ").unwrap();
    s.send_line("exit").unwrap();
    // Then what `b` did, and its end: the build goes on, and ends with `a`'s failure.
    s.exp_string("debugger on a/install: done").unwrap();
    s.exp_string("b/install: built").unwrap();
    s.exp_string("b: done").unwrap();
    ends_with_status(&mut s, 1);
}

#[test]
fn reload_in_the_monitor_stops_the_images_still_building_and_builds_again() {
    let env = Env::new();
    let mut s = failing_beside_a_held_image(&env, "reload");
    let gate = gate_reached_by(&env, || None);
    // `b` is held at its gate: only stopping it ends the solve, for the build to start again.
    s.send_line("reload").unwrap();
    let again = s.exp_string("`help` lists every command").unwrap();
    assert!(!again.contains("build cancelled"), "{again}");
    s.exp_string("(strata) ").unwrap();
    std::fs::write(gate.join("open"), "").unwrap();
    std::fs::write(gate.join("again"), "").unwrap();
    s.send_line("exit").unwrap();
    s.exp_string("b: done").unwrap();
    ends_with_status(&mut s, 1);
}
