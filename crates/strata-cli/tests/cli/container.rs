//! The build container: exact environment, isolation, and what its changes become.

use std::time::Duration;

use crate::support::Env;

#[test]
fn stage_environment_and_isolation() {
    let env = Env::new();
    // Every check is a command: the build only succeeds when all of them hold inside.
    let dir = env.project(
        "iso",
        r#"
image: iso
from: busybox:latest
docker:
  ENV:
    NOT_IN_BUILD: "1"
shell:
  install:
  - test "$(id -u):$(id -g)" = "0:0"
  - test "$PWD" = /
  - test "$LANG" = C.UTF-8 && test "$LC_ALL" = C.UTF-8
  - case "$PATH" in *:/.strata/toolbox/bin) ;; *) echo "bad PATH $PATH"; exit 1;; esac
  - test -z "$NOT_IN_BUILD"
  - test -z "$CARGO_HOME$RUSTUP_HOME$STRATA_STORE"
  - test ! -e /work && test ! -e /root/.cargo && test ! -e /usr/lib/x86_64-linux-gnu
  - test "$(ls /dev | sort | tr '\n' ' ')" = "console fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero " || test "$(ls /dev | sort | tr '\n' ' ')" = "fd full null ptmx pts random shm stderr stdin stdout tty urandom zero "
  - test ! -s /proc/kcore
  - echo x > /etc/resolv.conf.probe && test -s /etc/resolv.conf
  - touch /.strata/toolbox/x 2>/dev/null && exit 1 || true
  - test "$(cat /proc/1/cmdline | tr '\0' ' ')" != "$(cat /proc/self/cmdline | tr '\0' ' ')"
  - test "$(hostname)" != "$(cat /.strata/host-name 2>/dev/null)"
"#,
    );
    let out = env.build(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The build's mountpoints (/.strata/run) never reach the image, the stage's own file does;
    // `strata run` mounts only the toolbox.
    assert_eq!(
        env.run_sh("iso", "ls -a /.strata; cat /etc/resolv.conf.probe"),
        ".\n..\ntoolbox\nx\n"
    );
}

#[test]
fn network_none_leaves_only_loopback() {
    let env = Env::new();
    let dir = env.project(
        "net",
        "image: n\nfrom: busybox:latest\nshell:\n  install:\n  - 'test \"$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d \" \")\" = lo'\n",
    );
    let out = env
        .cmd()
        .args(["build", "--progress", "plain", "--network", "none"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn layers_keep_modes_owners_links_and_deletions() {
    let env = Env::new();
    let dir = env.project(
        "attrs",
        r#"
image: attrs
from: busybox:latest
shell:
  beforeInstall:
  - mkdir -p /data/gone /data/keep && echo a > /data/gone/a && echo k > /data/keep/k
  install:
  - echo secret > /data/suid && chown 1000:65534 /data/suid && chmod 4750 /data/suid
  - ln -s ../data/suid /data/link && ln /data/suid /data/hard
  - mkfifo /data/fifo && touch -d "2001-02-03 04:05:06" /data/old
  - rm -rf /data/gone && rm /etc/group && rm -rf /data/keep && mkdir /data/keep && echo n > /data/keep/new
  - mkdir -p "/data/with space" && echo s > "/data/with space/f"
"#,
    );
    env.build_ok(&dir);
    let out = env.run_sh(
        "attrs",
        "cd /data; stat -c '%n %a %u:%g %h %F' suid hard link fifo; readlink link; date -r old +%Y; \
         ls gone 2>&1; ls /etc/group 2>&1; ls keep; cat 'with space/f'",
    );
    assert_eq!(
        out,
        "suid 4750 1000:65534 2 regular file\nhard 4750 1000:65534 2 regular file\nlink 777 0:0 1 symbolic link\n\
         fifo 644 0:0 1 fifo\n../data/suid\n2001\nls: gone: No such file or directory\n\
         ls: /etc/group: No such file or directory\nnew\ns\n"
    );
}

#[test]
fn json_progress_is_one_event_per_line() {
    let env = Env::new();
    let dir = env.project(
        "j",
        "image: j\nfrom: busybox:latest\nshell:\n  install:\n  - echo hi\n",
    );
    let out = env
        .cmd()
        .args(["build", "--progress", "json"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"build_started"));
    assert_eq!(kinds.last(), Some(&"build_finished"));
    let built = events
        .iter()
        .find(|e| e["event"] == "stage_built" && e["stage"] == "install")
        .unwrap();
    assert_eq!(built["image"], "j");
    assert_eq!(built["digest"].as_str().unwrap().len(), 64);
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "log" && e["line"] == "hi")
    );
}

#[test]
fn run_it_is_interactive_on_a_terminal() {
    let env = Env::new();
    let dir = env.project(
        "tty",
        "image: t\nfrom: busybox:latest\nshell:\n  install:\n  - echo ready > /ready\n",
    );
    env.build_ok(&dir);
    let mut cmd = env.cmd();
    // The toolbox bash: busybox ash queries the cursor position and would eat typed input.
    cmd.args([
        "run",
        "-it",
        "-e",
        "PS1=in> ",
        "t",
        "--",
        "/.strata/toolbox/bin/bash",
        "--norc",
        "--noprofile",
        "-i",
    ]);
    let mut session = rexpect::session::spawn_command(cmd, Some(20_000)).unwrap();
    session.exp_string("in> ").unwrap();
    session
        .send_line("cat /ready; [ -t 0 ] && echo is-a-tty")
        .unwrap();
    session.exp_string("ready").unwrap();
    session.exp_string("is-a-tty").unwrap();
    // Ctrl-C reaches the process in the container, not strata.
    session.send_line("sleep 30").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    session.send_control('c').unwrap();
    session.exp_string("in> ").unwrap();
    session.send_line("echo status-$?").unwrap();
    session.exp_string("status-130").unwrap();
    session.send_line("exit 4").unwrap();
    session.exp_eof().unwrap();
    let status = session.process().wait().unwrap();
    assert!(
        matches!(status, rexpect::process::WaitStatus::Exited(_, 4)),
        "{status:?}"
    );
}
