//! The process: status, signals, namespaces, identity, environment, errors, lifetime.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::process::Command;
use std::time::{Duration, Instant};

use strata_sandbox::{Error, ExitStatus, Network, Stdio};

use crate::{Fixture, PATH, require_root, run, run_ok, sandbox, sh};

#[test]
fn exit_codes_and_signals_propagate() {
    let fx = Fixture::busybox();
    let (status, _) = run(&fx, &sh(&fx, "exit 7")).expect("runs");
    assert_eq!(status, ExitStatus::Exited(7));
    let (status, _) = run(&fx, &sh(&fx, "kill -9 $$")).expect("runs");
    assert_eq!(status, ExitStatus::Signaled(9));
    assert_eq!(status.code(), 137);
    // A real `exit 137` is not mistaken for a signal.
    let (status, _) = run(&fx, &sh(&fx, "exit 137")).expect("runs");
    assert_eq!(status, ExitStatus::Exited(137));
}

#[test]
fn command_is_pid_2_in_a_fresh_pid_namespace() {
    let fx = Fixture::busybox();
    let out = run_ok(&fx, &sh(&fx, "echo $$; ps -o pid,comm"));
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("2"));
    let pids: Vec<u32> = lines
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    // PID 1 (our init), the shell, ps: nothing from the host.
    assert!(pids.contains(&1) && pids.contains(&2), "{out}");
    assert!(pids.len() <= 4, "{out}");
}

#[test]
fn hostname_is_set() {
    let fx = Fixture::busybox();
    assert_eq!(run_ok(&fx, &fx.spec(&["hostname"])), "sbx-test\n");
}

#[test]
fn network_none_has_only_loopback_up() {
    let fx = Fixture::busybox();
    let mut spec = sh(
        &fx,
        "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; ip link show lo",
    );
    spec.network = Network::None;
    let out = run_ok(&fx, &spec);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("lo"));
    let rest: String = lines.collect();
    assert!(rest.contains(",UP"), "{out}");
}

#[test]
fn user_switching() {
    let fx = Fixture::busybox();
    let mut spec = sh(&fx, "id -u; id -g");
    spec.process.user = "1000:1000".into();
    assert_eq!(run_ok(&fx, &spec), "1000\n1000\n");
    spec.process.user = "builder".into();
    spec.process.args = vec!["sh".into(), "-c".into(), "id -u; id -g; id -G".into()];
    assert_eq!(run_ok(&fx, &spec), "1234\n2345\n2345 3456\n");
    spec.process.user = "builder:root".into();
    assert_eq!(run_ok(&fx, &spec), "1234\n0\n0 3456\n");
    spec.process.user = "".into();
    assert_eq!(run_ok(&fx, &spec), "0\n0\n0\n");
    spec.process.user = "nobody-here".into();
    let err = run(&fx, &spec).expect_err("unknown user");
    assert!(
        matches!(&err, Error::Setup(m) if m.contains("nobody-here")),
        "{err}"
    );
}

#[test]
fn cwd_is_used_and_a_missing_cwd_is_a_setup_error() {
    let fx = Fixture::busybox();
    let mut spec = fx.spec(&["pwd"]);
    spec.process.cwd = "/etc".into();
    assert_eq!(run_ok(&fx, &spec), "/etc\n");
    spec.process.cwd = "/does/not/exist".into();
    let err = run(&fx, &spec).expect_err("missing cwd");
    let Error::Setup(message) = &err else {
        panic!("{err:?}")
    };
    assert!(message.contains("/does/not/exist"), "{message}");
    assert_eq!(fx.upper_entries(), Vec::<String>::new());
}

#[test]
fn missing_or_unexecutable_program_is_an_exec_error() {
    let fx = Fixture::busybox();
    let err = run(&fx, &fx.spec(&["no-such-program"])).expect_err("missing");
    assert_eq!(
        err.to_string(),
        "container setup failed: exec \"no-such-program\": executable file not found in $PATH"
    );
    let err = run(&fx, &fx.spec(&["/bin/nope"])).expect_err("missing");
    assert!(
        matches!(&err, Error::Exec { message, code: 127 } if message.contains("no such file")),
        "{err}"
    );
    // PATH comes from the container's env, not ours.
    let mut spec = fx.spec(&["echo", "x"]);
    spec.process.env = vec!["PATH=/nowhere".into()];
    assert!(matches!(
        run(&fx, &spec),
        Err(Error::Exec { code: 127, .. })
    ));
    // A file that is not executable: 126, as a shell.
    let err = run(&fx, &fx.spec(&["/etc/passwd"])).expect_err("not executable");
    assert!(
        matches!(&err, Error::Exec { message, code: 126 } if message.contains("permission denied")),
        "{err}"
    );
}

#[test]
fn bad_mount_is_a_setup_error() {
    let fx = Fixture::busybox();
    let mut spec = fx.spec(&["true"]);
    spec.mounts = vec![crate::bind("relative", fx.tmp.path(), false)];
    let err = run(&fx, &spec).expect_err("bad target");
    assert!(
        matches!(&err, Error::Setup(m) if m.contains("relative")),
        "{err}"
    );
    let mut spec = fx.spec(&["true"]);
    spec.lowers = vec![fx.tmp.path().join("missing-layer")];
    assert!(matches!(run(&fx, &spec), Err(Error::Setup(_))));
}

#[test]
fn env_is_exactly_the_spec_env() {
    let fx = Fixture::busybox();
    let mut spec = fx.spec(&["env"]);
    spec.process.env = vec![PATH.into(), "A=1".into(), "EMPTY=".into()];
    assert_eq!(run_ok(&fx, &spec), format!("{PATH}\nA=1\nEMPTY=\n"));
}

#[test]
fn sigterm_is_forwarded_to_the_command() {
    let fx = Fixture::busybox();
    let spec = sh(
        &fx,
        "trap 'echo got-term; exit 3' TERM; echo ready; while true; do sleep 0.05; done",
    );
    let mut container = sandbox().spawn(&spec, Stdio::Piped).expect("spawn");
    container.wait_started().expect("started");
    let mut output = BufReader::new(container.take_output().expect("output"));
    let mut line = String::new();
    output.read_line(&mut line).expect("read");
    assert_eq!(line, "ready\n");
    container
        .signal(nix::sys::signal::Signal::SIGTERM)
        .expect("signal");
    let mut rest = String::new();
    output.read_to_string(&mut rest).expect("read");
    assert_eq!(rest, "got-term\n");
    assert_eq!(container.wait().expect("wait"), ExitStatus::Exited(3));
    fx.assert_no_host_mounts();
}

#[test]
fn kill_ends_the_container() {
    let fx = Fixture::busybox();
    let mut container = sandbox()
        .spawn(&fx.spec(&["sleep", "1000"]), Stdio::Null)
        .expect("spawn");
    container.wait_started().expect("started");
    container.kill().expect("kill");
    assert_eq!(container.wait().expect("wait"), ExitStatus::Signaled(9));
}

#[test]
fn orphans_are_reaped() {
    let fx = Fixture::busybox();
    // The background sleep is re-parented to PID 1 and must not stay a zombie while the
    // shell's last command looks at the process table.
    let out = run_ok(
        &fx,
        &sh(
            &fx,
            "(sleep 0.01 &) ; sleep 0.3; ps -o stat | grep -c Z || true",
        ),
    );
    assert_eq!(out, "0\n");
}

/// Env var that turns [`caller_death_child`] into the container-starting victim process.
const ORPHAN_TAG: &str = "STRATA_SANDBOX_TEST_ORPHAN_TAG";

fn processes_with_argv(argv: &[&str]) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .collect();
        if args.len() == argv.len() && args.iter().zip(argv).all(|(a, b)| *a == b.as_bytes()) {
            found.push(pid);
        }
    }
    found
}

fn poll_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Not a test by itself: with [`ORPHAN_TAG`] set it starts a long container and blocks
/// until killed by [`killing_the_caller_kills_the_container`].
#[test]
fn caller_death_child() {
    let Ok(tag) = std::env::var(ORPHAN_TAG) else {
        return;
    };
    let fx = Fixture::busybox();
    let _container = sandbox()
        .spawn(&fx.spec(&["sleep", &tag]), Stdio::Null)
        .expect("spawn");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn killing_the_caller_kills_the_container() {
    require_root();
    let tag = format!("4{:08}", std::process::id());
    let mut caller = Command::new(std::env::current_exe().expect("current exe"))
        .args(["--exact", "process::caller_death_child", "--nocapture"])
        .env(ORPHAN_TAG, &tag)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn caller");
    let argv = ["sleep", tag.as_str()];
    poll_until("the container's sleep runs", || {
        !processes_with_argv(&argv).is_empty()
    });
    caller.kill().expect("SIGKILL the caller");
    caller.wait().expect("reap the caller");
    poll_until("the container's sleep is gone", || {
        processes_with_argv(&argv).is_empty()
    });
}
