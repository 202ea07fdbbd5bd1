//! Introspection shells: `strata_debug::shell` on a state, through a real pty.

use std::fs;

use crate::{Fixture, assert_no_host_mounts};

/// A whiteout (char device 0/0) at `path`.
fn whiteout(path: &std::path::Path) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .expect("mknod whiteout");
}

#[test]
fn state_without_sh_gets_the_toolbox_bash_and_changes_are_discarded() {
    let fx = Fixture::failed();
    // A stage result whose layer deleted /bin/sh.
    let stage = fx.tmp.path().join("layers/no-sh");
    whiteout(&stage.join("bin/sh"));
    let mut spec = fx.failure.spec.clone();
    spec.upper = stage;
    let before = fx.state_snapshot();
    let stage_before = crate::snapshot(&spec.upper);
    let json = fx.tmp.path().join("spec.json");
    fs::write(&json, serde_json::to_vec(&spec).expect("json")).expect("write");
    let scratch = fx.scratch("shell");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_strata-debug-monitor"));
    cmd.arg("shell").arg(&json).arg(&scratch);
    let mut p = rexpect::session::spawn_command(cmd, Some(30_000)).expect("spawn in a pty");
    // Type only at the prompt: raw mode is set with TCSAFLUSH, which drops typeahead.
    p.exp_string("bash-").expect("the toolbox bash's prompt");
    p.exp_string("# ").expect("as root");
    p.send_line("echo bash-$((40+2))-${BASH_VERSINFO[0]}; ls /bin/sh; echo $PATH; id -u; pwd")
        .expect("send");
    p.exp_regex(r"bash-42-\d+").expect("the toolbox bash");
    p.exp_string("No such file")
        .expect("no /bin/sh in the state");
    p.exp_string("/usr/local/bin:/usr/bin:/bin:/.strata/toolbox/bin\r\n")
        .expect("toolbox at PATH's end");
    p.exp_string("0\r\n/srv/app\r\n")
        .expect("user and cwd of the state");
    p.send_line("echo gone > /srv/app/file; cat /partial; exit 7")
        .expect("send");
    p.exp_string("partial")
        .expect("the stage's upper is part of the state");
    let status = p.process_mut().wait().expect("wait");
    assert!(
        matches!(status, rexpect::process::WaitStatus::Exited(_, 7)),
        "{status:?}"
    );
    assert_no_host_mounts(fx.tmp.path());
    assert_eq!(
        fs::read_dir(&scratch).expect("scratch").count(),
        0,
        "changes discarded"
    );
    assert_eq!(crate::snapshot(&spec.upper), stage_before);
    fx.assert_left_nothing(&scratch, &before);
}
