//! Copies that fail at their step, on real PTYs: a source missing from the build context, a
//! `COPY --from` image or stage and a stapel `import:` lacking the path. The build fails at
//! that step (the steps before it are built and cached) and the debugger, introspection and
//! failure records open on it with the source side at `/.strata/source`; with two failing
//! images each gets its debugger.

use rexpect::process::WaitStatus;
use rexpect::session::PtySession;

use crate::debug::{debugger_on_a_terminal, exit_monitor};
use crate::support::Env;

const MISSING: &str = "FROM busybox:latest\nRUN mkdir /landing && echo landing-side > /landing/mark\n\
                       COPY present.txt nothere /landing/\n";

/// A Dockerfile project `name` with `dockerfile` and a `present.txt` in its context.
fn dockerfile_project(env: &Env, name: &str, dockerfile: &str) -> std::path::PathBuf {
    let dir = env.work.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(dir.join("present.txt"), "context-side\n").unwrap();
    dir
}

/// The `image/stage` names of the stage records in the store.
fn recorded_stages(env: &Env) -> Vec<String> {
    env.stage_records()
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["image"].as_str().unwrap(),
                r["stage"].as_str().unwrap()
            )
        })
        .collect()
}

/// Waits for the end of `session` and checks its exit status.
fn exits_with(session: &mut PtySession, code: i32) {
    session.exp_eof().unwrap();
    let status = session.process().wait().unwrap();
    assert!(
        matches!(status, WaitStatus::Exited(_, c) if c == code),
        "{status:?}"
    );
}

/// Types `line` at the monitor, waits for each of `expected` in turn, then for the prompt.
fn typed(s: &mut PtySession, line: &str, expected: &[&str]) {
    s.send_line(line).unwrap();
    for text in expected {
        s.exp_string(text).unwrap();
    }
    s.exp_string("(strata) ").unwrap();
}

/// Opens `shell`, waits for its prompt (ending in `prompt`), types `line`, waits for each of
/// `expected` and leaves the shell.
fn in_shell(s: &mut PtySession, prompt: &str, line: &str, expected: &[&str]) {
    s.send_line("shell").unwrap();
    s.exp_string(prompt).unwrap();
    s.send_line(line).unwrap();
    for text in expected {
        s.exp_string(text).unwrap();
    }
    typed(s, "exit", &[]);
}

/// `strata build --progress plain DIR`: its exit code and stderr.
fn plain_build(env: &Env, dir: &std::path::Path) -> (Option<i32>, String) {
    let out = env
        .cmd()
        .args(["build", "--progress", "plain"])
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The id a failed build's last line names (`failure kept as ID: ...`).
fn kept_id(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("failure kept as "))
        .and_then(|rest| rest.split_once(':'))
        .map(|(id, _)| id.to_string())
        .unwrap_or_else(|| panic!("no failure kept:\n{stderr}"))
}

#[test]
fn a_copy_of_a_path_missing_from_the_context_fails_at_its_step_and_opens_the_debugger() {
    let env = Env::new();
    let dir = dockerfile_project(&env, "ctxcopy", MISSING);
    // Without a debugger: the step fails when it runs, at the missing source, after the
    // steps before it, which are built and recorded.
    let (code, stderr) = plain_build(&env, &dir);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("ctxcopy/1-run: built in"), "{stderr}");
    assert!(
        stderr.contains("`nothere` is not in the build context"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "/ctxcopy/Dockerfile:3:18\n  |\n3 | COPY present.txt nothere /landing/\n  |                  ^^^^^^^\n"
        ),
        "{stderr}"
    );
    let stages = recorded_stages(&env);
    assert!(stages.contains(&"ctxcopy/1-run".to_string()), "{stages:?}");
    assert!(!stages.iter().any(|s| s.ends_with("/2-copy")), "{stages:?}");
    // Again: the steps before it are cached, and the store gains no stage.
    let (code, stderr) = plain_build(&env, &dir);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("ctxcopy/1-run: cached"), "{stderr}");
    assert_eq!(recorded_stages(&env).len(), stages.len());

    let mut s = debugger_on_a_terminal(&env, &["."], &dir);
    // `info`: what is missing and where; `list`: the line.
    typed(
        &mut s,
        "info",
        &[
            "`nothere` is not in the build context",
            "--> Dockerfile:3:18",
            "the build context is at /.strata/source (read-only)",
        ],
    );
    typed(
        &mut s,
        "list",
        &["> 3 | COPY present.txt nothere /landing/"],
    );
    // `shell`: the state the files were to land in, the context beside it, read-only.
    in_shell(
        &mut s,
        "(ctxcopy/2-copy: failed state) / # ",
        "cat /landing/mark /.strata/source/present.txt; touch /.strata/source/new",
        &["landing-side", "context-side", "Read-only file system"],
    );
    // `rerun` looks for the sources again in the context as it is now.
    typed(
        &mut s,
        "rerun",
        &["`nothere` is still not in the build context"],
    );
    std::fs::write(dir.join("nothere"), "now-there\n").unwrap();
    typed(&mut s, "rerun", &["`nothere` is in the build context now"]);
    // A reload whose Dockerfile does not parse says where and stays on the failure.
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox:latest\nFROBNICATE x\n",
    )
    .unwrap();
    typed(
        &mut s,
        "reload",
        &[
            "Dockerfile:2:1",
            "the config does not load",
            "ctxcopy/2-copy",
        ],
    );
    typed(&mut s, "exec cat /landing/mark", &["landing-side"]);
    // Fixed, the reload builds: the file is copied.
    std::fs::write(dir.join("Dockerfile"), MISSING).unwrap();
    s.send_line("reload").unwrap();
    exits_with(&mut s, 0);
    assert!(recorded_stages(&env).contains(&"ctxcopy/2-copy".to_string()));
}

#[test]
fn introspection_and_failure_records_open_on_a_missing_context_source() {
    let env = Env::new();
    let dir = dockerfile_project(&env, "ctxintro", MISSING);
    for flag in ["--introspect-error", "--introspect-before-error"] {
        let mut cmd = env.cmd();
        cmd.args(["build", "--progress", "plain", flag, "."])
            .current_dir(&dir);
        let mut s = rexpect::session::spawn_command(cmd, Some(60_000)).unwrap();
        s.exp_string("ctxintro/2-copy").unwrap();
        s.exp_string("/ # ").unwrap();
        s.send_line("cat /landing/mark /.strata/source/present.txt; echo END-$((6*7))")
            .unwrap();
        let text = s.exp_string("END-42").unwrap();
        assert!(text.contains("landing-side"), "{flag}: {text}");
        assert!(text.contains("context-side"), "{flag}: {text}");
        s.send_line("exit").unwrap();
        s.exp_string("`nothere` is not in the build context")
            .unwrap();
        exits_with(&mut s, 1);
    }
    // The failure record reopens it: the failure, its line, the landing state; the context
    // is not in the record, and the monitor says so.
    let (_, stderr) = plain_build(&env, &dir);
    let mut cmd = env.cmd();
    cmd.args(["debug", &kept_id(&stderr)]);
    let mut s = rexpect::session::spawn_command(cmd, Some(60_000)).unwrap();
    s.exp_string("not in the record, so not mounted here: the build context at /.strata/source")
        .unwrap();
    s.exp_string("`nothere` is not in the build context")
        .unwrap();
    s.exp_string("/ctxintro/Dockerfile:3:18").unwrap();
    s.exp_string("(strata) ").unwrap();
    in_shell(
        &mut s,
        "failed state) / # ",
        "cat /landing/mark",
        &["landing-side"],
    );
    typed(&mut s, "rerun", &["the build context is not here"]);
    s.send_line("exit").unwrap();
    exits_with(&mut s, 0);
}

/// `rerun` of a failure with nothing to rerun says so in the user's terms.
fn nothing_to_rerun(s: &mut PtySession) {
    s.send_line("rerun").unwrap();
    let text = s.exp_string("(strata) ").unwrap();
    assert!(
        text.contains("no command to rerun: the step failed before any command ran"),
        "{text}"
    );
    assert!(!text.contains("rerun_args"), "{text}");
}

#[test]
fn a_copy_from_a_stage_that_lacks_the_path_shows_the_stage_beside_the_landing_state() {
    let env = Env::new();
    let dir = dockerfile_project(
        &env,
        "fromstage",
        "FROM busybox:latest AS src\nRUN echo source-side > /made\n\
         FROM busybox:latest\nRUN echo landing-side > /mark\nCOPY --from=src /nope /x\n",
    );
    let mut s = debugger_on_a_terminal(&env, &["."], &dir);
    typed(
        &mut s,
        "info",
        &[
            "`/nope` does not exist in image `src`",
            "--> Dockerfile:5:1",
            "the image copied from is at /.strata/source (read-only)",
        ],
    );
    in_shell(
        &mut s,
        "failed state) / # ",
        "cat /mark /.strata/source/made",
        &["landing-side", "source-side"],
    );
    // The image does not change under the debugger: nothing to rerun.
    nothing_to_rerun(&mut s);
    s.send_line("exit").unwrap();
    exits_with(&mut s, 1);
}

const IMPORT: &str = "image: src\nfrom: busybox:latest\nshell:\n  install:\n  - mkdir -p /out && echo source-side > /out/made\n\
                      ---\nimage: app\nfrom: busybox:latest\nimport:\n- image: src\n  add: /nope\n  to: /landing\n  before: install\n\
                      shell:\n  beforeInstall:\n  - echo landing-side > /mark\n  install:\n  - echo hi\n";

#[test]
fn a_stapel_import_of_a_missing_path_opens_the_debugger_with_the_source_image() {
    let env = Env::new();
    let dir = env.project("import", IMPORT);
    let mut s = debugger_on_a_terminal(&env, &[], &dir);
    typed(
        &mut s,
        "info",
        &[
            "`/nope` does not exist in image `src`",
            "--> strata.yaml:10:3",
            "the image copied from is at /.strata/source (read-only)",
        ],
    );
    in_shell(
        &mut s,
        "failed state) / # ",
        "cat /mark /.strata/source/out/made",
        &["landing-side", "source-side"],
    );
    nothing_to_rerun(&mut s);
    // A reload whose config does not parse says where and stays on the failure.
    std::fs::write(dir.join("strata.yaml"), "image: app\nfrom: [busybox\n").unwrap();
    typed(
        &mut s,
        "reload",
        &["strata.yaml:2", "the config does not load"],
    );
    s.send_line("exec cat /mark").unwrap();
    s.exp_string("landing-side").unwrap();
    exit_monitor(&mut s, 1);
}

#[test]
fn with_two_failing_images_each_gets_its_debugger() {
    let env = Env::new();
    let dir = env.project(
        "twofail",
        "image: one\nfrom: busybox:latest\nshell:\n  install:\n  - echo one > /which; false\n\
         ---\nimage: two\nfrom: busybox:latest\nshell:\n  install:\n  - echo two > /which; false\n",
    );
    let mut s = debugger_on_a_terminal(&env, &[], &dir);
    // One image's monitor, then, on `exit`, the other's; each on its own failed state.
    let which = "exec sh -c 'cat /which; echo END-$((6*7))'";
    s.send_line(which).unwrap();
    let first = s.exp_string("END-42").unwrap();
    let (first, second) = if first.contains("one\r\n") {
        ("one", "two")
    } else {
        ("two", "one")
    };
    s.exp_string("(strata) ").unwrap();
    s.send_line("exit").unwrap();
    s.exp_string(&format!(
        "image `{second}` failed too, in stage `install`: its debugger"
    ))
    .unwrap();
    s.exp_string(&format!("{second}/install (strata) "))
        .unwrap();
    s.send_line(which).unwrap();
    let text = s.exp_string("END-42").unwrap();
    assert!(text.contains(&format!("{second}\r\n")), "{text}");
    s.exp_string("(strata) ").unwrap();
    s.send_line("exit").unwrap();
    // The build ends with the first failure, and says the other one failed too.
    s.exp_string(&format!("also failed: image `{second}`, stage `install`"))
        .unwrap();
    s.exp_string(&format!("error: image `{first}`, stage `install`"))
        .unwrap();
    exits_with(&mut s, 1);
}

#[test]
fn a_git_mapping_that_fails_at_build_time_shows_a_copy_of_its_files() {
    let env = Env::new();
    // The owner is looked up in the image (when the step runs); a `to:` under a file fails
    // when the files are put in place: both at the step, with the mapping's files beside it.
    for (mapping, landing, source) in [
        (
            "  to: /app\n  owner: nosuchuser\n",
            "/etc/passwd",
            "/.strata/source/app/f",
        ),
        (
            "  to: /bin/busybox/app\n",
            "/bin/busybox",
            "/.strata/source/bin/busybox/app/f",
        ),
    ] {
        let dir = env.project(
            "gitfail",
            &format!("image: app\nfrom: busybox:latest\ngit:\n- add: /src\n{mapping}"),
        );
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(dir.join("src/f"), "git-side\n").unwrap();
        if !dir.join(".git").exists() {
            crate::support::git(&dir, &["init", "-q"]);
        }
        crate::support::git(&dir, &["add", "-A"]);
        crate::support::git(&dir, &["commit", "-qm", "mapping", "--allow-empty"]);
        let mut s = debugger_on_a_terminal(&env, &[], &dir);
        typed(
            &mut s,
            "info",
            &[
                "--> strata.yaml:4:3",
                "a copy of the git mapping's files at its commit is at /.strata/source (read-only)",
            ],
        );
        in_shell(
            &mut s,
            "(app/gitArchive: failed state) / # ",
            &format!("ls {landing} && cat {source}"),
            &["git-side"],
        );
        s.send_line("exit").unwrap();
        exits_with(&mut s, 1);
    }
}
