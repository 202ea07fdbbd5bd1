//! strata never follows a path a container, a build context or a config controls (issue #12):
//! real builds try each escape, and canary files outside the store must stay untouched.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Env, words};

const CANARY: &str = "host file, must stay as it is\n";

/// A host file outside the store and the project that no build may change or read.
fn canary(env: &Env, name: &str) -> PathBuf {
    let path = env.work.path().join(name);
    std::fs::write(&path, CANARY).unwrap();
    path
}

fn assert_untouched(path: &Path) {
    assert_eq!(
        std::fs::read_to_string(path).unwrap(),
        CANARY,
        "{} was changed",
        path.display()
    );
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Builds `dir` and gives up (failing the test) if the build has not ended in 60 s: a build
/// that hangs on a planted FIFO must fail the test, not the suite.
fn build_bounded(env: &Env, dir: &Path, args: &[&str]) -> Output {
    let mut child = env
        .cmd()
        .args(["build", "--progress", "plain"])
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the build hung");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn stapel(env: &Env, name: &str, install: &[String]) -> PathBuf {
    let mut yaml = "image: app\nfrom: busybox:latest\nshell:\n  install:\n".to_string();
    for line in install {
        yaml.push_str(&format!("  - {line}\n"));
    }
    env.project(name, &yaml)
}

#[test]
fn a_failed_command_cannot_redirect_the_rerun_script() {
    let env = Env::new();
    let target = canary(&env, "rerun-canary");
    let dir_target = env.work.path().join("rerun-dir");
    std::fs::create_dir(&dir_target).unwrap();
    let t = target.display();
    let d = dir_target.display();
    // The attack, and the same through the rerun dir itself: `|| true` so that the
    // step fails at `false` (the path on which strata writes the rerun script) either way.
    for attack in [
        format!("ln -sf {t} /.strata/run/rerun/script.sh || true; false"),
        format!("rm -rf /.strata/run/rerun || true; ln -s {d} /.strata/run/rerun || true; false"),
        format!(
            "ln -sf {t} /.strata/run/hosts || true; ln -sf {t} /.strata/run/script.sh || true; false"
        ),
    ] {
        let dir = stapel(&env, "rerun", &[attack.clone(), "echo never".into()]);
        let out = build_bounded(&env, &dir, &[]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{attack}: {err}");
        assert!(
            words(&err).contains("command exited with code 1"),
            "{attack}: {err}"
        );
        assert_untouched(&target);
        assert_eq!(
            std::fs::read_dir(&dir_target).unwrap().count(),
            0,
            "{attack}"
        );
    }
}

#[test]
fn the_command_index_is_read_without_following_the_container() {
    let env = Env::new();
    // A link to a host file holding a valid index, and a FIFO that blocks a reader forever.
    let target = env.work.path().join("index-canary");
    std::fs::write(&target, "1").unwrap();
    for (attack, what) in [
        (
            format!(
                "ln -sf {} /.strata/state/step || true; false",
                target.display()
            ),
            "link",
        ),
        (
            "rm -f /.strata/state/step; mkfifo /.strata/state/step; false".to_string(),
            "fifo",
        ),
        (
            "head -c 100000 /dev/zero > /.strata/state/step; false".to_string(),
            "large",
        ),
    ] {
        let dir = stapel(
            &env,
            "index",
            &[attack.clone(), "echo second-command".into()],
        );
        let out = build_bounded(&env, &dir, &[]);
        let err = words(&stderr(&out));
        assert!(!out.status.success(), "{what}: {err}");
        // Had strata followed the link, it would blame the second command (index 1).
        assert!(
            err.contains("command exited with code 1: (one of the step's commands)"),
            "{what}: {err}"
        );
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "1");
}

/// A Dockerfile project: `files` (path, content) and `links` (path, target) in its context.
fn context(
    env: &Env,
    name: &str,
    dockerfile: &str,
    files: &[(&str, &str)],
    links: &[(&str, &str)],
) -> PathBuf {
    let dir = env.work.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    for (path, content) in files {
        let at = dir.join(path);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::write(at, content).unwrap();
    }
    for (path, target) in links {
        std::os::unix::fs::symlink(target, dir.join(path)).unwrap();
    }
    dir
}

fn dockerfile_build(env: &Env, dir: &Path, tag: &str, extra: &[&str]) -> Output {
    let mut args = vec!["-f", "Dockerfile", ".", "-t", tag];
    args.extend_from_slice(extra);
    build_bounded(env, dir, &args)
}

/// A directory outside every context holding a canary file.
fn outside_dir(env: &Env, name: &str) -> PathBuf {
    let dir = env.work.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("canary"), CANARY).unwrap();
    dir
}

#[test]
fn bind_mount_sources_resolve_inside_the_context() {
    let env = Env::new();
    let outside = outside_dir(&env, "outside-bind");
    let o = outside.to_str().unwrap();
    // The issue's `hostetc -> /etc`, with a host dir of our own: resolved inside the context,
    // the link names `<context>/<outside path>`, which does not exist.
    let dir = context(
        &env,
        "bind-link",
        "FROM busybox:latest\nRUN --mount=type=bind,source=hostdir,target=/m cat /m/canary\n",
        &[],
        &[("hostdir", o)],
    );
    let out = dockerfile_build(&env, &dir, "bind-link", &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(!err.contains(CANARY.trim()), "{err}");
    assert!(
        words(&err).contains("the bind mount's source `hostdir` is not in the build context"),
        "{err}"
    );
    assert!(err.contains("Dockerfile:2"), "{err}");

    // A relative link that stays inside is followed there, like BuildKit.
    let dir = context(
        &env,
        "bind-inside",
        "FROM busybox:latest\nRUN --mount=type=bind,source=alias,target=/m cat /m/f\n",
        &[("real/f", "inside\n")],
        &[("alias", "real")],
    );
    let out = dockerfile_build(&env, &dir, "bind-inside", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("inside"), "{}", stderr(&out));
}

#[test]
fn dockerignore_applies_to_bind_mounts_through_links() {
    let env = Env::new();
    let dir = context(
        &env,
        "bind-ignore",
        "FROM busybox:latest\n\
         RUN --mount=type=bind,source=self,target=/m sh -c 'ls -a /m; ls /m/self/ > /dev/null; test ! -e /m/secret && test ! -e /m/self/secret && test ! -e /m/sub/key && echo hidden-ok'\n",
        &[
            (".dockerignore", "secret\nsub/key\n"),
            ("secret", "s3cret\n"),
            ("sub/key", "k3y\n"),
            ("visible", "v\n"),
        ],
        &[("self", ".")],
    );
    let out = dockerfile_build(&env, &dir, "bind-ignore", &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("hidden-ok"), "{err}");
    assert!(err.contains("visible"), "{err}");

    // An excluded source is not in BuildKit's context at all.
    let dir = context(
        &env,
        "bind-excluded",
        "FROM busybox:latest\nRUN --mount=type=bind,source=key,target=/m cat /m\n",
        &[(".dockerignore", "real\n"), ("real", "k3y\n")],
        &[("key", "real")],
    );
    let out = dockerfile_build(&env, &dir, "bind-excluded", &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(!err.contains("k3y"), "{err}");
    assert!(
        words(&err).contains("is excluded by .dockerignore"),
        "{err}"
    );
}

#[test]
fn from_binds_resolve_inside_that_stage() {
    let env = Env::new();
    let outside = outside_dir(&env, "outside-from");
    let dockerfile = format!(
        "FROM busybox:latest AS a\nRUN ln -s {o} /data && mkdir /real && echo in-image > /real/f && ln -s /real /good\n\
         FROM busybox:latest\nRUN --mount=type=bind,from=a,source=/good,target=/m cat /m/f\n\
         RUN --mount=type=bind,from=a,source=/data,target=/m cat /m/canary\n",
        o = outside.display()
    );
    let dir = context(&env, "bind-from", &dockerfile, &[], &[]);
    let out = dockerfile_build(&env, &dir, "bind-from", &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("in-image"),
        "a link inside the stage is followed there: {err}"
    );
    assert!(!err.contains(CANARY.trim()), "{err}");
    assert!(
        words(&err)
            .contains("the bind mount's source /data is not a directory or file of its image"),
        "{err}"
    );
}

/// Every regular file below `dir` (links not followed) whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in read.flatten() {
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() {
                let bytes = std::fs::read(e.path()).unwrap_or_default();
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(e.path());
                }
            }
        }
    }
    found
}

#[test]
fn a_context_file_swapped_for_a_link_while_copying_never_brings_the_host_file_in() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let env = Env::new();
    let secret = format!("host-secret-{}-bytes", std::process::id());
    let secret_file = env.work.path().join("race-secret");
    std::fs::write(&secret_file, &secret).unwrap();
    let dir = context(&env, "race", "", &[("f", "context bytes\n")], &[]);
    let stop = Arc::new(AtomicBool::new(false));
    // Stops the swapper however this test ends, so a failed assertion is reported as itself
    // and not as the swapper's error once the work dir is gone.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let _stop_guard = StopOnDrop(stop.clone());
    // Swaps the context's `f` between a file and a link to the host file, atomically
    // (rename), as fast as it can while the builds plan and copy it.
    let swapper = {
        let (dir, stop, secret_file) = (dir.clone(), stop.clone(), secret_file.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                std::fs::write(dir.join("f.file"), "context bytes\n").unwrap();
                std::fs::rename(dir.join("f.file"), dir.join("f")).unwrap();
                let _ = std::fs::remove_file(dir.join("f.link"));
                std::os::unix::fs::symlink(&secret_file, dir.join("f.link")).unwrap();
                std::fs::rename(dir.join("f.link"), dir.join("f")).unwrap();
                swaps += 1;
            }
            swaps
        })
    };
    let (mut built, mut refused) = (0, 0);
    for i in 0..24 {
        // A new destination each time: a new COPY key, so every build plans and copies.
        std::fs::write(
            dir.join("Dockerfile"),
            format!("FROM busybox:latest\nCOPY f /f{i}\n"),
        )
        .unwrap();
        let out = dockerfile_build(&env, &dir, &format!("race{i}"), &[]);
        let err = stderr(&out);
        assert!(!err.contains(&secret), "{err}");
        if out.status.success() {
            built += 1;
        } else {
            refused += 1;
            assert!(
                words(&err).contains("changed while the build was copying")
                    || words(&err).contains("cannot read the build context")
                    || words(&err).contains("which is not in the build context"),
                "{err}"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    assert!(swapper.join().unwrap() > 0);
    assert!(built > 0, "no build got through ({refused} refused)");
    // No layer snapshot (the uncompressed layers) holds the host file's bytes.
    let leaked = files_containing(&env.store.path().join("snapshots"), secret.as_bytes());
    assert!(leaked.is_empty(), "host file copied into {leaked:?}");
    assert_eq!(std::fs::read_to_string(&secret_file).unwrap(), secret);
}

/// An unprivileged user to try the store as: `nobody`, created if this machine lacks it.
fn unprivileged_user() -> String {
    let exists = std::process::Command::new("id")
        .args(["-u", "nobody"])
        .output()
        .unwrap();
    if !exists.status.success() {
        let made = std::process::Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "nobody",
            ])
            .status()
            .unwrap();
        assert!(made.success(), "useradd nobody failed");
    }
    "nobody".into()
}

/// Runs the shell command `script` as `user` (real and effective ids, no supplementary
/// groups). Through a shell: setpriv itself may open its program before it drops privileges.
fn as_user(user: &str, script: &str) -> Output {
    let ids = |flag: &str| {
        let out = std::process::Command::new("id")
            .args([flag, user])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    std::process::Command::new("setpriv")
        .arg(format!("--reuid={}", ids("-u")))
        .arg(format!("--regid={}", ids("-g")))
        .arg("--clear-groups")
        .args(["--", "/bin/sh", "-c", script])
        .output()
        .unwrap()
}

#[test]
fn the_store_is_out_of_other_users_reach() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let user = unprivileged_user();
    // A stage with a setuid copy of busybox, as images often have (su, passwd, ping).
    let dir = context(
        &env,
        "suid",
        "FROM busybox:latest\nRUN cp /bin/busybox /bin/suid-tool && chmod 4755 /bin/suid-tool\n",
        &[],
        &[],
    );
    let out = dockerfile_build(&env, &dir, "suid", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let store = env.store.path();
    let suid: Vec<PathBuf> = std::fs::read_dir(store.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path().join("bin/suid-tool"))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(suid.len(), 1, "one snapshot holds the setuid file");
    let mode = std::fs::metadata(&suid[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o4000, 0o4000, "the snapshot keeps the setuid bit");

    // A store made world-readable (by an older strata, or by hand) is tightened when opened.
    std::fs::set_permissions(store, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = env.strata(&["images"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mode = std::fs::metadata(store).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700);

    let suid = suid[0].to_str().unwrap();
    let busybox = format!("{}/bin/busybox", suid.trim_end_matches("/bin/suid-tool"));
    for args in [
        format!("ls {}", store.display()),
        format!("stat {suid}"),
        format!("{suid} id -u"),
        format!("cat {busybox}"),
    ] {
        let out = as_user(&user, &args);
        assert!(
            !out.status.success(),
            "{user} ran {args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            stderr(&out).contains("Permission denied"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

fn fs_project(env: &Env, name: &str, host: &Path, giterminism: Option<&str>) -> PathBuf {
    let dir = env.project(
        name,
        &format!(
            "image: app\nfrom: busybox:latest\nmount:\n- fromPath: {}\n  to: /host\nshell:\n  install:\n  - echo written-by-{name} > /host/written\n",
            host.display()
        ),
    );
    if let Some(g) = giterminism {
        std::fs::write(dir.join("werf-giterminism.yaml"), g).unwrap();
    }
    dir
}

#[test]
fn mount_from_path_needs_giterminism_allowance() {
    let env = Env::new();
    let host = outside_dir(&env, "from-path");
    let dir = fs_project(&env, "frompath", &host, None);
    let out = build_bounded(&env, &dir, &[]);
    let err = words(&stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "`mount: fromPath: {}` is not allowed by giterminism",
            host.display()
        )),
        "{err}"
    );
    assert!(err.contains("strata.yaml:4:13"), "{err}");
    assert!(
        err.contains("werf-giterminism.yaml") && err.contains("--loose-giterminism"),
        "{err}"
    );
    assert!(!host.join("written").exists(), "the build ran");
    assert!(env.stage_records().is_empty(), "the store changed");

    // A glob that does not match changes nothing; one that does lets the mount through.
    let not_it = "giterminismConfigVersion: 1\nconfig:\n  stapel:\n    mount:\n      allowFromPaths: [/var/cache/*]\n";
    let dir = fs_project(&env, "frompath-other", &host, Some(not_it));
    let out = build_bounded(&env, &dir, &[]);
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(!host.join("written").exists());

    let allowed = format!(
        "giterminismConfigVersion: 1\nconfig:\n  stapel:\n    mount:\n      allowFromPaths: [\"{}/**\", {}]\n",
        env.work.path().display(),
        host.display()
    );
    let dir = fs_project(&env, "frompath-allowed", &host, Some(&allowed));
    let out = build_bounded(&env, &dir, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(host.join("written")).unwrap(),
        "written-by-frompath-allowed\n"
    );

    // werf's loose mode, by flag and by variable.
    std::fs::remove_file(host.join("written")).unwrap();
    let dir = fs_project(&env, "frompath-loose", &host, None);
    let out = build_bounded(&env, &dir, &["--loose-giterminism"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(host.join("written").exists());
    std::fs::remove_file(host.join("written")).unwrap();
    let dir = fs_project(&env, "frompath-loose-env", &host, None);
    let out = env
        .cmd()
        .args(["build", "--progress", "plain"])
        .env("WERF_LOOSE_GITERMINISM", "true")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(host.join("written").exists());
    assert_untouched(&host.join("canary"));
}

#[test]
fn mount_build_dir_needs_giterminism_allowance() {
    let env = Env::new();
    let dir = env.project(
        "builddir",
        "image: app\nfrom: busybox:latest\nmount:\n- from: build_dir\n  to: /cache\nshell:\n  install:\n  - touch /cache/x\n",
    );
    let out = build_bounded(&env, &dir, &[]);
    let err = words(&stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`mount: from: build_dir` is not allowed by giterminism"),
        "{err}"
    );
    assert!(err.contains("strata.yaml:4:9"), "{err}");
    std::fs::write(
        dir.join("werf-giterminism.yaml"),
        "giterminismConfigVersion: 1\nconfig: {stapel: {mount: {allowBuildDir: true}}}\n",
    )
    .unwrap();
    let out = build_bounded(&env, &dir, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn paths_that_leave_the_repository_or_image_are_refused_at_their_line() {
    let env = Env::new();
    let cases = [
        (
            "git:\n- add: /../../x\n  to: /app\n",
            "`add` must not contain `..`, found `/../../x`",
            "strata.yaml:4:8",
        ),
        (
            "git:\n- add: /\n  to: /app\n  includePaths: [\"../../x/**\"]\n",
            "`includePaths` must not contain `..`",
            "strata.yaml:6:18",
        ),
        (
            "git:\n- add: /\n  to: /app\n  excludePaths: [src, ../y]\n",
            "`excludePaths` must not contain `..`",
            "strata.yaml:6:23",
        ),
        (
            "git:\n- add: /\n  to: /app\n  stageDependencies:\n    install: [\"a/../../b\"]\n",
            "`stageDependencies.install` must not contain `..`",
            "strata.yaml:7:15",
        ),
        (
            "import:\n- image: base\n  add: /../../../etc\n  to: /etc\n  after: install\n",
            "`add` must not contain `..`, found `/../../../etc`",
            "strata.yaml:5:8",
        ),
    ];
    for (section, message, at) in cases {
        let yaml = format!(
            "image: app\nfrom: busybox:latest\n{section}shell:\n  install:\n  - echo hi\n---\nimage: base\nfrom: busybox:latest\n"
        );
        let dir = env.project("dotdot", &yaml);
        let out = build_bounded(&env, &dir, &[]);
        let err = words(&stderr(&out));
        assert_eq!(out.status.code(), Some(1), "{section}: {err}");
        assert!(err.contains(message), "{section}: {err}");
        assert!(err.contains(at), "{section}: {err}");
        assert!(
            env.stage_records().is_empty(),
            "{section}: the store changed"
        );
    }
}

/// The digest `strata build` printed for stage `stage` ("IMAGE/STAGE: building HEX").
fn stage_digest(out: &Output, stage: &str) -> String {
    let err = stderr(out);
    err.lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{stage}: building "))
                .or_else(|| l.strip_prefix(&format!("{stage}: cached ")))
        })
        .unwrap_or_else(|| panic!("no {stage} in {err}"))
        .trim()
        .to_string()
}

#[test]
fn the_network_a_step_runs_with_is_part_of_its_key() {
    let env = Env::new();
    let plain = context(
        &env,
        "net-plain",
        "FROM busybox:latest\nRUN echo step\n",
        &[],
        &[],
    );
    let none = context(
        &env,
        "net-none",
        "FROM busybox:latest\nRUN --network=none echo step\n",
        &[],
        &[],
    );
    let host = dockerfile_build(&env, &plain, "net", &[]);
    assert!(host.status.success(), "{}", stderr(&host));
    let off = dockerfile_build(&env, &none, "net", &[]);
    assert!(off.status.success(), "{}", stderr(&off));
    let cli_off = dockerfile_build(&env, &plain, "net", &["--network", "none"]);
    assert!(cli_off.status.success(), "{}", stderr(&cli_off));
    let (host, off, cli_off) = (
        stage_digest(&host, "net/1-run"),
        stage_digest(&off, "net/1-run"),
        stage_digest(&cli_off, "net/1-run"),
    );
    assert_ne!(
        host, off,
        "RUN --network=none shares the host-network step's key"
    );
    assert_ne!(
        host, cli_off,
        "--network none shares the host-network step's key"
    );
    // Both ways of running without network are the same step.
    assert_eq!(off, cli_off);
}

#[test]
fn a_bind_source_swapped_for_a_link_after_planning_is_refused() {
    let env = Env::new();
    let outside = outside_dir(&env, "outside-swap");
    // Step 1 tells the test it runs (the build is planned) through a cache mount, and waits
    // until the test has swapped the context's `data` for a link; step 2 binds `data`.
    let dir = context(
        &env,
        "bind-swap",
        "FROM busybox:latest\n\
         RUN --mount=type=cache,id=gate,target=/gate sh -c 'touch /gate/planned; i=0; until [ -e /gate/swapped ]; do i=$((i+1)); [ $i -lt 1200 ] || exit 3; sleep 0.05; done'\n\
         RUN --mount=type=bind,source=data,target=/m cat /m/canary\n",
        &[("data/canary", "context file\n")],
        &[],
    );
    let mut child = env
        .cmd()
        .args([
            "build",
            "--progress",
            "plain",
            "-f",
            "Dockerfile",
            ".",
            "-t",
            "swap",
        ])
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let gate = || -> Option<PathBuf> {
        std::fs::read_dir(env.store.path().join("build_dir"))
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join("planned").exists())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let gate = loop {
        if let Some(g) = gate() {
            break g;
        }
        assert!(Instant::now() < deadline, "step 1 never ran");
        assert!(child.try_wait().unwrap().is_none(), "the build ended early");
        std::thread::sleep(Duration::from_millis(20));
    };
    std::fs::rename(dir.join("data"), dir.join("data.old")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("data")).unwrap();
    std::fs::write(gate.join("swapped"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        !err.contains(CANARY.trim()),
        "the host dir was mounted: {err}"
    );
    assert!(
        words(&err).contains("changed since the build was planned"),
        "{err}"
    );
}

#[test]
fn a_bind_source_swapped_for_a_link_in_a_tight_loop_never_mounts_the_host_dir() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let env = Env::new();
    let outside = outside_dir(&env, "outside-race");
    let dir = context(
        &env,
        "bind-race",
        "",
        &[("data/canary", "context file\n")],
        &[("alt", outside.to_str().unwrap())],
    );
    let stop = Arc::new(AtomicBool::new(false));
    // Exchanges the context's `data` dir and the link `alt` to the host dir (renameat2
    // RENAME_EXCHANGE, atomic) as fast as it can while the builds plan, check and mount it.
    let swapper = {
        let (dir, stop) = (dir.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                rustix::fs::renameat_with(
                    rustix::fs::CWD,
                    dir.join("data"),
                    rustix::fs::CWD,
                    dir.join("alt"),
                    rustix::fs::RenameFlags::EXCHANGE,
                )
                .unwrap();
                swaps += 1;
            }
            swaps
        })
    };
    let (mut built, mut refused) = (0, 0);
    // Without the sandbox opening the source beneath the context, one of the first dozen
    // builds here mounts the host dir.
    for i in 0..40 {
        // A new command each time, so every build runs it; a read-only bind (an overlay of
        // the dir) and a writable one (an overlay with a throwaway upper) in turn.
        let rw = if i % 2 == 0 { "" } else { ",rw" };
        std::fs::write(
            dir.join("Dockerfile"),
            format!(
                "FROM busybox:latest\nRUN --mount=type=bind,source=data,target=/m{rw} cat /m/canary; echo run {i}\n"
            ),
        )
        .unwrap();
        let out = dockerfile_build(&env, &dir, &format!("race{i}"), &[]);
        let (err, std_out) = (stderr(&out), String::from_utf8_lossy(&out.stdout));
        assert!(
            !err.contains(CANARY.trim()) && !std_out.contains(CANARY.trim()),
            "build {i} mounted the host dir: {err}"
        );
        if out.status.success() {
            assert!(err.contains("context file"), "{err}");
            built += 1;
        } else {
            refused += 1;
            let w = words(&err);
            assert!(
                w.contains("is not in the build context")
                    || w.contains("changed since the build was planned")
                    || w.contains("without following a link"),
                "{err}"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    assert!(swapper.join().unwrap() > 0);
    assert_untouched(&outside.join("canary"));
    // Most builds are refused (at planning or at the run); with the swapping over, the same
    // bind works, so the refusals were the links'.
    if dir.join("data").is_symlink() {
        std::fs::rename(dir.join("data"), dir.join("link")).unwrap();
        std::fs::rename(dir.join("alt"), dir.join("data")).unwrap();
    }
    let out = dockerfile_build(&env, &dir, "race-after", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("context file") || built > 0,
        "{} ({refused} refused)",
        stderr(&out)
    );
}

#[test]
fn a_link_left_in_a_cache_mount_never_puts_a_later_mountpoint_on_the_host() {
    let env = Env::new();
    let outside = outside_dir(&env, "outside-cache-link");
    let o = outside.to_str().unwrap();
    // Step 1 leaves a link to a host dir in the cache; step 2 mounts a tmpfs below it. The
    // sandbox's init resolves paths in the host's root until its pivot.
    let dir = context(
        &env,
        "cache-link",
        &format!(
            "FROM busybox:latest\n\
             RUN --mount=type=cache,id=c,target=/c ln -s {o} /c/x\n\
             RUN --mount=type=cache,id=c,target=/c --mount=type=tmpfs,target=/c/x/y true\n"
        ),
        &[],
        &[],
    );
    let out = dockerfile_build(&env, &dir, "cache-link", &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        words(&err).contains(
            "mount target /c/x/y is not reached from the container's root without a link"
        ),
        "{err}"
    );
    let created: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(created, ["canary"], "a mountpoint was made on the host");
    assert_untouched(&outside.join("canary"));
}
