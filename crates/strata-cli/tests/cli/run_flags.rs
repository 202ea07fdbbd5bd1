//! `strata run` as `docker run --rm`: the command after the image without `--`, `-i`/`-t`
//! (over real pipes and a real pty), `-e`, `-v`, `-w`, `-u`, `--network`, docker's exit
//! codes, and nothing of the container left afterwards.

use std::io::Write;
use std::process::{Output, Stdio};

use crate::support::{Env, leftovers};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs strata with `args`, `input` on its stdin.
fn with_stdin(env: &Env, args: &[&str], input: &[u8]) -> Output {
    let mut child = env
        .cmd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Without -i (and with a refused -it) strata never reads its stdin and may have exited
    // before the write: the pipe is then closed, which is what those cases assert.
    if let Err(err) = child.stdin.take().unwrap().write_all(input) {
        assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{err}");
    }
    child.wait_with_output().unwrap()
}

#[test]
fn the_command_follows_the_image_and_its_options_are_its_own() {
    let env = Env::new();
    let out = env.strata(&["run", "busybox", "ls", "-d", "/etc"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "/etc\n");
    // A strata option after the image is the command's.
    let out = env.strata(&["run", "busybox", "echo", "-e", "A=1", "-w"]);
    assert_eq!(text(&out.stdout), "A=1 -w\n");
    // `--` still works.
    let out = env.strata(&["run", "busybox", "--", "echo", "dashes"]);
    assert_eq!(text(&out.stdout), "dashes\n");
    let help = env.strata(&["run", "--help"]);
    assert!(
        text(&help.stdout).contains("removed when the command exits"),
        "{}",
        text(&help.stdout)
    );
}

#[test]
fn env_workdir_user_volumes_and_network() {
    let env = Env::new();
    let out = env
        .cmd()
        .env("FROM_STRATA", "passed")
        .env_remove("NOT_SET_ANYWHERE")
        .args([
            "run",
            "-e",
            "A=1",
            "-e",
            "FROM_STRATA",
            "-e",
            "NOT_SET_ANYWHERE",
            "-e",
            "EMPTY=",
            "busybox",
            "sh",
            "-c",
            "echo $A $FROM_STRATA ${NOT_SET_ANYWHERE-unset} ${EMPTY-unset}x",
        ])
        .output()
        .unwrap();
    assert_eq!(
        text(&out.stdout),
        "1 passed unset x\n",
        "{}",
        text(&out.stderr)
    );

    let out = env.strata(&[
        "run",
        "-w",
        "/made/here",
        "-u",
        "1000:1000",
        "busybox",
        "sh",
        "-c",
        "pwd; id -u; id -g; stat -c %u /made/here",
    ]);
    assert_eq!(
        text(&out.stdout),
        "/made/here\n1000\n1000\n0\n",
        "{}",
        text(&out.stderr)
    );
    let out = env.strata(&["run", "-w", "relative", "busybox", "pwd"]);
    assert!(!out.status.success() && text(&out.stderr).contains("absolute"));

    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("in"), "from host\n").unwrap();
    let volume = format!("{}:/data", host.path().display());
    let out = env.strata(&[
        "run",
        "-v",
        &volume,
        "busybox",
        "sh",
        "-c",
        "cat /data/in; echo back > /data/out",
    ]);
    assert_eq!(text(&out.stdout), "from host\n", "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(host.path().join("out")).unwrap(),
        "back\n"
    );
    let out = env.strata(&[
        "run",
        "-v",
        &format!("{volume}:ro"),
        "busybox",
        "sh",
        "-c",
        "echo x > /data/ro",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("Read-only"),
        "{}",
        text(&out.stderr)
    );
    assert!(!host.path().join("ro").exists());
    let out = env.strata(&["run", "-v", "/no/such/dir:/data", "busybox", "true"]);
    assert!(!out.status.success() && text(&out.stderr).contains("does not exist"));

    let only_lo = env.strata(&[
        "run",
        "--network",
        "none",
        "busybox",
        "ls",
        "/sys/class/net",
    ]);
    assert_eq!(text(&only_lo.stdout), "lo\n");
    let host_net = env.strata(&[
        "run",
        "--network",
        "host",
        "busybox",
        "ls",
        "/sys/class/net",
    ]);
    let host_links = std::fs::read_dir("/sys/class/net").unwrap().count();
    assert_eq!(text(&host_net.stdout).lines().count(), host_links);
}

#[test]
fn exit_codes_are_dockers_and_the_container_is_removed() {
    let env = Env::new();
    let out = env.strata(&["run", "busybox", "no-such-program"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(
        text(&out.stderr).contains("executable file not found"),
        "{}",
        text(&out.stderr)
    );
    let out = env.strata(&["run", "busybox", "/etc/passwd"]);
    assert_eq!(out.status.code(), Some(126));
    assert!(
        text(&out.stderr).contains("permission denied"),
        "{}",
        text(&out.stderr)
    );
    let out = env.strata(&["run", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));

    // What the container wrote is gone with it.
    let out = env.strata(&["run", "busybox", "touch", "/left-behind"]);
    assert!(out.status.success());
    let out = env.strata(&["run", "busybox", "ls", "/left-behind"]);
    assert!(!out.status.success());
    assert_eq!(leftovers(env.store.path()), Vec::<String>::new());
}

#[test]
fn stdin_reaches_the_command_only_with_i() {
    let env = Env::new();
    let out = with_stdin(&env, &["run", "busybox", "cat"], b"piped\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
    let out = with_stdin(&env, &["run", "-i", "busybox", "cat"], b"piped\n");
    assert_eq!(text(&out.stdout), "piped\n");
    // -it wants a terminal, as docker's "the input device is not a TTY".
    let out = with_stdin(&env, &["run", "-it", "busybox", "cat"], b"piped\n");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not a TTY"),
        "{}",
        text(&out.stderr)
    );
}

/// `strata run ARGS` in a real pty.
fn spawn(env: &Env, args: &[&str]) -> rexpect::session::PtySession {
    let mut cmd = env.cmd();
    cmd.args(args);
    rexpect::session::spawn_command(cmd, Some(30_000)).unwrap()
}

fn exit_code(session: &mut rexpect::session::PtySession) -> i32 {
    match session.process().wait().unwrap() {
        rexpect::process::WaitStatus::Exited(_, code) => code,
        other => panic!("{other:?}"),
    }
}

#[test]
fn t_gives_a_terminal_and_it_an_interactive_session() {
    let env = Env::new();
    // On a terminal but without -t or -i: stdin is not the terminal.
    let mut plain = spawn(
        &env,
        &["run", "busybox", "sh", "-c", "[ -t 0 ] || echo no-tty"],
    );
    plain.exp_string("no-tty").unwrap();
    plain.exp_eof().unwrap();
    assert_eq!(exit_code(&mut plain), 0);
    // -t: a pty of its own, its output through ours.
    let mut tty = spawn(
        &env,
        &[
            "run",
            "-t",
            "busybox",
            "sh",
            "-c",
            "[ -t 0 ] && [ -t 1 ] && echo pty",
        ],
    );
    tty.exp_string("pty").unwrap();
    tty.exp_eof().unwrap();
    assert_eq!(exit_code(&mut tty), 0);

    // -it: a shell that reads our keys; Ctrl-C reaches the command in the container.
    let mut shell = spawn(&env, &["run", "-it", "busybox", "sh"]);
    shell.exp_string("# ").unwrap();
    // Quotes split the words so the echo of the typed line does not match the output.
    shell
        .send_line("[ -t 0 ] && echo tty-y''es; echo sle''eping; sleep 30")
        .unwrap();
    shell.exp_string("tty-yes").unwrap();
    shell.exp_string("sleeping").unwrap();
    shell.send_control('c').unwrap();
    shell.send_line("echo ali''ve").unwrap();
    shell.exp_string("alive").unwrap();
    shell.send_line("exit 3").unwrap();
    shell.exp_eof().unwrap();
    assert_eq!(exit_code(&mut shell), 3);
}
