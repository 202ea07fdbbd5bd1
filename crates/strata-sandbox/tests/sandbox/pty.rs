//! Terminals: a container on a pty sees a terminal of the size set on the master.

use std::io::Read;

use strata_sandbox::pty::{Pty, WindowSize, set_window_size};
use strata_sandbox::{ExitStatus, Stdio};

use crate::{Fixture, sandbox, sh};

#[test]
fn terminal_container_sees_the_pty_and_its_size() {
    let fx = Fixture::busybox();
    let pty = Pty::open().expect("pty");
    set_window_size(
        &pty.master,
        WindowSize {
            rows: 41,
            cols: 123,
        },
    )
    .expect("winsize");
    let mut spec = sh(&fx, "[ -t 0 ] && echo is-a-tty; stty size");
    spec.process.terminal = true;
    let dup = || pty.slave.try_clone().expect("dup");
    let stdio = Stdio::Fds {
        stdin: dup(),
        stdout: dup(),
        stderr: dup(),
    };
    let container = sandbox().spawn(&spec, stdio).expect("spawn");
    drop(pty.slave);
    let mut master = std::fs::File::from(pty.master);
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        // Read until EIO: every slave fd (ours, the helper's, the command's) is closed.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    });
    assert_eq!(container.wait().expect("wait"), ExitStatus::Exited(0));
    let out = reader.join().expect("reader");
    assert_eq!(out, "is-a-tty\r\n41 123\r\n");
    fx.assert_no_host_mounts();
}

/// Env var that turns [`interactive_child`] into a `run_interactive` caller.
const INTERACTIVE: &str = "STRATA_SANDBOX_TEST_INTERACTIVE";

/// Not a test by itself: with [`INTERACTIVE`] set (and a pty as stdin and controlling
/// terminal) it runs a container interactively; the driver below plays the user.
#[test]
fn interactive_child() {
    if std::env::var_os(INTERACTIVE).is_none() {
        return;
    }
    let fx = Fixture::busybox();
    let spec = sh(
        &fx,
        "[ -t 0 ] && echo is-a-tty; tty; stat -c 'owner %u' $(tty); stty size; \
         while read x; do stty size; done",
    );
    let status = sandbox().run_interactive(&spec).expect("run_interactive");
    // ^C went to the container's shell as a byte, and killed it, not us.
    assert_eq!(status, ExitStatus::Signaled(2));
}

#[test]
fn run_interactive_forwards_bytes_resizes_and_ctrl_c() {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    crate::require_root();
    let pty = Pty::open().expect("pty");
    set_window_size(
        &pty.master,
        WindowSize {
            rows: 41,
            cols: 123,
        },
    )
    .expect("winsize");
    let slave = |_: ()| std::process::Stdio::from(pty.slave.try_clone().expect("dup"));
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("exe"));
    cmd.args([
        "--exact",
        "pty::interactive_child",
        "--nocapture",
        "--quiet",
    ])
    .env(INTERACTIVE, "1")
    .stdin(slave(()))
    .stdout(slave(()))
    .stderr(slave(()));
    // SAFETY: setsid and ioctl are async-signal-safe. The pty becomes the child's
    // controlling terminal, so a resize sends it SIGWINCH like a real terminal would.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::setsid()?;
            rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn interactive child");
    drop(cmd);
    drop(pty.slave);
    let mut writer = std::fs::File::from(pty.master.try_clone().expect("dup master"));
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let mut reader = std::fs::File::from(pty.master.try_clone().expect("dup master"));
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let mut wait_for = |needle: &str, poke: &mut dyn FnMut()| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !seen.contains(needle) {
            assert!(
                Instant::now() < deadline,
                "never saw {needle:?} in {seen:?}"
            );
            poke();
            if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(100)) {
                seen.push_str(&String::from_utf8_lossy(&chunk));
            }
        }
    };
    // The terminal is the container's own (its devpts), sized before the command started.
    wait_for(
        "is-a-tty\r\n/dev/pts/0\r\nowner 0\r\n41 123\r\n",
        &mut || {},
    );
    // The resize reaches the container's pty; poke with lines until its size reports it.
    set_window_size(
        &pty.master,
        WindowSize {
            rows: 50,
            cols: 100,
        },
    )
    .expect("resize");
    wait_for("50 100\r\n", &mut || {
        writer.write_all(b"\r").expect("write");
    });
    // ^C until the container's shell dies of it, as a user presses it again: busybox ash can
    // swallow a SIGINT that lands while it reaps the `stty` before it (the byte got through;
    // what the shell does with the signal is its own).
    // Pressed again only after 2 s with the child still there: a ^C after the container's
    // end would reach the child's own restored terminal.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut pressed: Option<Instant> = None;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait child") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "^C never ended the child: {seen}"
        );
        if pressed.is_none_or(|at| at.elapsed() >= Duration::from_secs(2)) {
            writer.write_all(b"\x03").expect("ctrl-c");
            pressed = Some(Instant::now());
        }
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(50)) {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    assert!(status.success(), "interactive child failed: {seen}");
    // The guard restored the terminal: canonical mode and echo are back.
    let modes = rustix::termios::tcgetattr(&pty.master)
        .expect("termios")
        .local_modes;
    use rustix::termios::LocalModes;
    assert!(modes.contains(LocalModes::ICANON | LocalModes::ECHO | LocalModes::ISIG));
}
