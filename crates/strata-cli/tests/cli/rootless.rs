//! strata run by an ordinary user: builds, `run`, the store under `$XDG_DATA_HOME`, the errors
//! for a user without subordinate ids and with user namespaces off, owners outside the range,
//! device nodes, the outer process's death, layers equal to a root build's, and a rerun of a
//! representative part of the end-to-end suites as that user.
//!
//! The users are made here (useradd, `/etc/subuid`, `/etc/subgid`); strata runs as them through
//! `setpriv`, with everything else as in the root tests. With [`RERUN_ENV`] set, every
//! [`Env`] of the other suites does the same (`support.rs`), which is how [`RERUN`] runs them a
//! second time.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::support::{Env, words};

/// Set (to anything) in a test process whose `Env`s run strata as [`USER`].
pub const RERUN_ENV: &str = "STRATA_TEST_ROOTLESS";

/// The user rootless strata runs as, with a subordinate range of 65536 ids from [`SUBIDS`].
pub const USER: &str = "strata-rootless";
/// The first subordinate id of [`USER`] (far above the ranges useradd hands out).
pub const SUBIDS: u32 = 3_000_000;
/// A user without subordinate ids.
const NOSUB: &str = "strata-nosub";

/// The tests [`the_end_to_end_suites_pass_again_as_an_unprivileged_user`] reruns: both
/// frontends, `run`, the container's view and confinement, introspection and the debugger
/// (pipes and a PTY), cancelling by signal, ansible stages. Left out as they cannot pass
/// rootless: a step's `mknod` of a device (`security_container::escapes_fail_and_the_host_is_untouched`), `-v`
/// of a root-only host dir (`run_flags::env_workdir_user_volumes_and_network`).
const RERUN: &[&str] = &[
    "build::builds_runs_and_reuses_every_stage",
    "build::rebuilds_from_the_first_changed_stage",
    "build::werf_four_stage_example",
    "build::scratch_image_builds_with_the_toolbox_only",
    "container::stage_environment_and_isolation",
    "container::network_none_leaves_only_loopback",
    "container::layers_keep_modes_owners_links_and_deletions",
    "dockerfile::case::copy_chown",
    "dockerfile::case::copy_from_stage",
    "dockerfile::case::mount_cache",
    "dockerfile::case::user_by_name",
    "dockerfile::case::workdir_user",
    "dockerfile::case::heredoc_run",
    "debug::debugger_shows_the_failure_and_works_on_its_state_without_touching_the_cache",
    "debug::introspect_error_and_before_error_open_shells_in_those_states",
    "debug::debugger_shell_over_a_real_terminal",
    "debug::introspect_stage_pauses_one_image_while_others_build",
    "dockerfile::case::network_none",
    "dockerfile::case::mount_bind",
    "dockerfile::case::run_security_insecure",
    "run_flags::t_gives_a_terminal_and_it_an_interactive_session",
    "security_container::a_run_step_has_the_default_capabilities_and_seccomp",
    "cancel::sigint_and_sigterm_cancel_a_stapel_build_cleanly",
    "ansible::a_playbook_builds_on_busybox_with_live_output",
    "ansible::a_failed_task_lands_in_the_debugger_and_rerun_runs_it_again",
    "debug_copy::a_copy_of_a_path_missing_from_the_context_fails_at_its_step_and_opens_the_debugger",
    "ansible::become_user_works_without_sudo_in_the_image",
];

/// A user of this machine that tests run strata as.
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The lines of `file` (`/etc/subuid`) that are not `name`'s, plus `line` when given.
fn set_subids(file: &str, name: &str, line: Option<String>) {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.split(':').next() != Some(name))
        .map(str::to_owned)
        .collect();
    lines.extend(line);
    let new = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    if new != text {
        std::fs::write(file, new).unwrap();
    }
}

impl User {
    /// Makes user `name` unless it exists, with 65536 subordinate ids from `subids` (or none),
    /// serialized across test processes (of any checkout) by a lock file.
    pub fn ensure(name: &str, subids: Option<u32>) -> User {
        let lock =
            std::fs::File::create(std::env::temp_dir().join("strata-test-users.lock")).unwrap();
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
        let exists = Command::new("id")
            .arg(name)
            .output()
            .unwrap()
            .status
            .success();
        if !exists {
            run(Command::new("useradd")
                .args(["--create-home", "--shell", "/bin/sh", "--user-group"])
                .arg(name));
        }
        // useradd may have allocated ranges itself (SUB_UID_MIN in login.defs): ours replace them.
        let line = subids.map(|start| format!("{name}:{start}:65536"));
        set_subids("/etc/subuid", name, line.clone());
        set_subids("/etc/subgid", name, line);
        let id = |flag: &str| {
            run(Command::new("id").arg(flag).arg(name))
                .trim()
                .parse()
                .unwrap()
        };
        let home = run(Command::new("getent").args(["passwd", name]));
        User {
            name: name.to_owned(),
            uid: id("-u"),
            gid: id("-g"),
            home: PathBuf::from(home.trim().split(':').nth(5).unwrap()),
        }
    }

    /// The rootless user of these tests.
    pub fn rootless() -> &'static User {
        static USER_: OnceLock<User> = OnceLock::new();
        USER_.get_or_init(|| User::ensure(USER, Some(SUBIDS)))
    }

    /// `strata` run as this user (`setpriv`: the environment stays, groups are cleared), with
    /// the user's own `HOME` and no `XDG_*` dirs of root's.
    pub fn strata(&self) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .args(["--clear-groups", "--"])
            .arg(assert_cmd::cargo::cargo_bin("strata"))
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("XDG_CONFIG_HOME");
        cmd
    }

    /// [`User::strata`] on `env`'s store, in its work dir, as `Env::cmd` (CI progress).
    pub fn strata_on(&self, env: &Env) -> Command {
        let mut cmd = self.strata();
        cmd.env("STRATA_STORE", env.store.path())
            .env("CI", "1")
            .current_dir(env.work.path());
        cmd
    }

    /// Gives `path` to this user (the test's temporary dirs are made by root).
    pub fn own(&self, path: &Path) {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid)).unwrap();
    }
}

/// The user every `Env` of this process runs strata as, when [`RERUN_ENV`] is set.
pub fn rerun_user() -> Option<&'static User> {
    std::env::var_os(RERUN_ENV).map(|_| User::rootless())
}

/// A fresh, empty store and work dir of `user`'s.
fn user_store(user: &User) -> Env {
    let env = Env::empty();
    user.own(env.store.path());
    user.own(env.work.path());
    env
}

/// A fresh store of `user`'s with `busybox:latest` imported by it.
fn user_env(user: &User) -> Env {
    let env = user_store(user);
    let out = user
        .strata_on(&env)
        .arg("import")
        .arg(crate::support::busybox_tar())
        .arg("busybox:latest")
        .output()
        .unwrap();
    assert!(out.status.success(), "import: {}", text(&out.stderr));
    env
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn builds_and_runs_as_the_user_with_the_store_in_xdg_data_home() {
    let user = User::rootless();
    let env = Env::empty();
    let data = env.work.path().join("data");
    std::fs::create_dir(&data).unwrap();
    user.own(env.work.path());
    user.own(&data);
    let strata = |args: &[&str], dir: &Path| {
        let out = user
            .strata()
            .env_remove("STRATA_STORE")
            .env("XDG_DATA_HOME", &data)
            .env("CI", "1")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };
    // Runs strata in `dir` (the work dir when `None`), asserts success, returns stdout.
    let ok = |args: &[&str], dir: Option<&Path>| {
        let (ok, out, err) = strata(args, dir.unwrap_or(env.work.path()));
        assert!(ok, "strata {args:?}: {err}");
        out
    };
    let tar = crate::support::busybox_tar().to_str().unwrap();
    ok(&["import", tar, "busybox:latest"], None);
    let store = data.join("strata");
    assert_eq!(
        std::fs::metadata(store.join("blobs")).unwrap().uid(),
        user.uid,
        "the store is the user's, under $XDG_DATA_HOME/strata"
    );

    let dir = env.project(
        "owners",
        "image: app\nfrom: busybox:latest\nshell:\n  install:\n  - mkdir /data && echo hi > /data/f && chown 1000:1000 /data/f && chown 65534:65534 /data\n",
    );
    ok(&["build", "--progress", "plain"], Some(&dir));
    // Inside, the ids are the image's; on the host they are the user's subordinate ids.
    let script = "id -u; stat -c '%u:%g %n' /data /data/f";
    assert_eq!(
        ok(&["run", "app", "sh", "-c", script], None),
        "0\n65534:65534 /data\n1000:1000 /data/f\n"
    );
    let upper = std::fs::read_dir(store.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path().join("data/f"))
        .find(|p| p.exists())
        .expect("a snapshot holds the step's file");
    let meta = std::fs::metadata(&upper).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (SUBIDS + 999, SUBIDS + 999));

    // The Dockerfile frontend, USER and COPY --chown.
    let df = env.work.path().join("df");
    std::fs::create_dir(&df).unwrap();
    std::fs::write(df.join("f.txt"), "copied\n").unwrap();
    std::fs::write(
        df.join("Dockerfile"),
        "FROM busybox:latest\nCOPY --chown=app:app f.txt /home/app/\nUSER app\nRUN id -u > /tmp/me\n",
    )
    .unwrap();
    ok(&["build", "-t", "df", "."], Some(&df));
    let script = "cat /tmp/me; stat -c %U /home/app/f.txt";
    assert_eq!(ok(&["run", "df", "sh", "-c", script], None), "1000\napp\n");

    // With the host network /sys is the host's, read-only and without cgroups; with none a
    // fresh one.
    let script = "ls /sys/fs/cgroup | wc -l; touch /sys/x 2>&1; ls -d /sys/class";
    let expected = "0\ntouch: /sys/x: Read-only file system\n/sys/class\n";
    assert_eq!(ok(&["run", "app", "sh", "-c", script], None), expected);
    let none = ok(
        &["run", "--network", "none", "app", "sh", "-c", script],
        None,
    );
    assert_eq!(none, expected);

    // Device nodes cannot be made in a user namespace (as with BuildKit rootless).
    let (ok, _, err) = strata(
        &["run", "app", "mknod", "/tmp/null", "c", "1", "3"],
        env.work.path(),
    );
    assert!(!ok);
    assert!(err.contains("Operation not permitted"), "{err}");
}

#[test]
fn a_user_without_subordinate_ids_is_told_what_to_configure() {
    let user = User::ensure(NOSUB, None);
    let env = user_store(&user);
    let out = user.strata_on(&env).args(["images"]).output().unwrap();
    assert!(!out.status.success());
    let err = words(&text(&out.stderr));
    for needle in [
        "no subordinate uid range for user strata-nosub in /etc/subuid",
        "add ranges to /etc/subuid and /etc/subgid",
        "usermod --add-subuids 100000-165535 --add-subgids 100000-165535 strata-nosub",
        "uidmap package",
        "or run strata as root",
    ] {
        assert!(err.contains(needle), "{needle:?} in: {err}");
    }
    // Commands that need no store still work.
    let out = user.strata().arg("version").output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// A tarball in `env`'s work dir with the entries `(path, type, uid)` (3 bytes of data each
/// regular file; char devices are 1:3).
fn tarball(env: &Env, name: &str, entries: &[(&str, tar::EntryType, u64)]) -> PathBuf {
    let path = env.work.path().join(name);
    let mut builder = tar::Builder::new(std::fs::File::create(&path).unwrap());
    for &(entry, kind, uid) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_uid(uid);
        header.set_gid(uid);
        let data: &[u8] = if kind == tar::EntryType::Regular {
            b"far"
        } else {
            header.set_device_major(1).unwrap();
            header.set_device_minor(3).unwrap();
            b""
        };
        header.set_size(data.len() as u64);
        builder.append_data(&mut header, entry, data).unwrap();
    }
    builder.into_inner().unwrap();
    path
}

#[test]
fn device_nodes_of_a_base_are_skipped_and_the_store_checks_clean() {
    let user = User::rootless();
    let env = user_store(user);
    let tar = tarball(
        &env,
        "dev.tar",
        &[
            ("etc/f", tar::EntryType::Regular, 0),
            ("disk", tar::EntryType::Char, 0),
        ],
    );
    let strata = |args: &[&str]| {
        let out = user.strata_on(&env).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    strata(&["import", tar.to_str().unwrap(), "dev:latest"]);
    // The rest of the layer is there, and the check finds the snapshot whole.
    let toolbox_cat = "/.strata/toolbox/bin/cat";
    assert_eq!(strata(&["run", "dev", toolbox_cat, "/etc/f"]), "far");
    assert!(strata(&["store", "check"]).contains("all good"));
}

#[test]
fn an_owner_outside_the_subordinate_range_is_named() {
    let user = User::rootless();
    let env = user_store(user);
    let tarball = tarball(
        &env,
        "far.tar",
        &[("etc/far", tar::EntryType::Regular, 70000)],
    );
    let out = user
        .strata_on(&env)
        .arg("import")
        .arg(&tarball)
        .arg("far:latest")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = words(&text(&out.stderr));
    assert!(
        err.contains("tar entry `etc/far` is owned by 70000:70000, which this rootless user namespace does not map")
            && err.contains("/etc/subuid and /etc/subgid"),
        "{err}"
    );
}

/// Starts `cmd` and returns once it printed its first line, `ready`.
fn spawn_until_ready(cmd: &mut Command) -> std::process::Child {
    use std::io::BufRead;
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n", "{cmd:?}");
    child
}

#[test]
fn user_namespaces_turned_off_are_named_with_what_to_enable() {
    let user = User::rootless();
    let env = user_store(user);
    // A user namespace of our own whose limit of nested ones is 0 (user_namespaces(7): the
    // `user.max_user_namespaces` of every ancestor applies), so nothing on the host changes.
    let mut holder = spawn_until_ready(Command::new("unshare").args([
        "--user",
        "--",
        "sh",
        "-c",
        "echo ready; exec sleep 600",
    ]));
    let pid = holder.id();
    for map in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{pid}/{map}"), "0 0 65536\n").unwrap();
    }
    let strata = user.strata_on(&env);
    let mut inside = Command::new("nsenter");
    inside
        .args(["--user", "--target", &pid.to_string(), "sh", "-c"])
        .arg("echo 0 > /proc/sys/user/max_user_namespaces && exec \"$@\"")
        .arg("sh")
        .arg(strata.get_program())
        .args(strata.get_args())
        .current_dir(env.work.path())
        .arg("images");
    for (key, value) in strata.get_envs() {
        match value {
            Some(value) => inside.env(key, value),
            None => inside.env_remove(key),
        };
    }
    let out = inside.output().unwrap();
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(!out.status.success());
    let err = words(&text(&out.stderr));
    for needle in [
        "rootless: user namespaces are off for unprivileged users (unshare(CLONE_NEWUSER):",
        "sysctl user.max_user_namespaces > 0",
        "or run strata as root",
    ] {
        assert!(err.contains(needle), "{needle:?} in: {err}");
    }
}

/// Every entry of the layers of `image` (exported as an OCI layout): path → type, mode,
/// owner, content digest or link target. Times are left out (the builds ran at other times).
fn layer_entries(env: &Env, strata: &mut Command, image: &str) -> Vec<BTreeMap<String, String>> {
    let out_dir = env
        .work
        .path()
        .join(format!("oci-{}", rand::random::<u32>()));
    let out = strata
        .args(["export", image, "--format", "oci", "-o", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "export: {}", text(&out.stderr));
    tar::Archive::new(&out.stdout[..]).unpack(&out_dir).unwrap();
    let blob = |digest: &str| out_dir.join("blobs/sha256").join(&digest[7..]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("index.json")).unwrap()).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let mut layers = Vec::new();
    for layer in manifest["layers"].as_array().unwrap() {
        let file = std::fs::File::open(blob(layer["digest"].as_str().unwrap())).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut entries = BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let h = entry.header().clone();
            let mut xattrs = Vec::new();
            if let Some(ext) = entry.pax_extensions().unwrap() {
                for e in ext {
                    let e = e.unwrap();
                    xattrs.push(format!("{}={:?}", e.key().unwrap(), e.value_bytes()));
                }
            }
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            let what = format!(
                "{:?} {:o} {}:{} {} {:?} {}",
                h.entry_type(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                strata_digest::Digest::of(&data),
                h.link_name().unwrap(),
                xattrs.join(",")
            );
            entries.insert(path, what);
        }
        layers.push(entries);
    }
    layers
}

#[test]
fn root_and_rootless_builds_give_the_same_layers_file_by_file() {
    let user = User::rootless();
    let config = r#"image: app
from: busybox:latest
shell:
  beforeInstall:
  - mkdir -p /etc/conf.d /srv && echo a > /etc/conf.d/a && echo b > /etc/conf.d/b
  - echo keep > /srv/keep && echo gone > /srv/gone
  install:
  - rm /srv/gone /bin/vi
  - rm -rf /etc/conf.d && mkdir /etc/conf.d && echo new > /etc/conf.d/c
  - mkdir -p /home/app/d && echo secret > /home/app/d/s && chmod 600 /home/app/d/s
  - chown -R 1000:1000 /home/app && echo o > /srv/own && chown 65534:65534 /srv/own
  - cp /bin/busybox /usr-su && chmod 4755 /usr-su && ln -s ../home/app/d /link && ln /srv/keep /srv/hard
  - mkfifo /fifo && chmod 0640 /fifo
---
image: df
dockerfile: Dockerfile
"#;
    let dockerfile = "FROM busybox:latest\n\
        COPY --chown=1000:1000 ctx /opt/ctx\n\
        COPY --chmod=700 ctx/run.sh /usr/local/bin/\n\
        RUN rm -rf /home && mkdir /home && echo h > /home/new\n";
    // The same project in both work dirs: the config, the Dockerfile and its context.
    let project = |env: &Env| {
        let dir = env.project("same", config);
        std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
        std::fs::create_dir_all(dir.join("ctx/sub")).unwrap();
        std::fs::write(dir.join("ctx/run.sh"), "#!/bin/sh\necho run\n").unwrap();
        std::fs::write(dir.join("ctx/sub/data"), "data\n").unwrap();
        std::os::unix::fs::symlink("sub/data", dir.join("ctx/link")).unwrap();
        dir
    };
    let root = Env::new();
    root.build_ok(&project(&root));
    let rootless = user_env(user);
    let as_user = || user.strata_on(&rootless);
    let dir2 = project(&rootless);
    let out = as_user()
        .args(["build", "--progress", "plain"])
        .current_dir(&dir2)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Same inputs, same stage digests.
    let digests = |env: &Env| {
        let mut d: Vec<String> = env
            .stage_records()
            .iter()
            .map(|r| r["digest"].to_string())
            .collect();
        d.sort();
        d
    };
    assert_eq!(digests(&root), digests(&rootless));

    let mut all = BTreeMap::new();
    for image in ["app", "df"] {
        let a = layer_entries(&root, &mut root.cmd(), image);
        let b = layer_entries(&rootless, &mut as_user(), image);
        assert_eq!(a.len(), b.len(), "{image}: layer count");
        for (i, (a, b)) in a.iter().zip(&b).enumerate() {
            for path in a.keys().chain(b.keys()) {
                assert_eq!(a.get(path), b.get(path), "{image}: layer {i}, {path}");
            }
        }
        // Every layer of both images, by path, to check the cases below are in them.
        for layer in a {
            for (path, what) in layer {
                all.insert(path.trim_start_matches("./").to_owned(), what);
            }
        }
    }
    // The differences that matter are there: whiteouts, opaque dirs, owners, modes, links.
    for (path, what) in [
        ("srv/.wh.gone", "Regular 0 0:0"),
        ("bin/.wh.vi", "Regular 0 0:0"),
        ("etc/conf.d/.wh..wh..opq", "Regular 0 0:0"),
        ("home/app/d/s", "Regular 600 1000:1000"),
        ("srv/own", "Regular 644 65534:65534"),
        ("srv/keep", "Link 644 0:0"),
        ("usr-su", "Regular 4755 0:0"),
        ("fifo", "Fifo 640 0:0"),
        ("opt/ctx/sub/data", "Regular 644 1000:1000"),
        ("opt/ctx/link", "Symlink 777 1000:1000"),
        ("usr/local/bin/run.sh", "Regular 700 0:0"),
        ("home/.wh..wh..opq", "Regular 0 0:0"),
    ] {
        let found = all.get(path);
        assert!(
            found.is_some_and(|w| w.starts_with(what)),
            "{path}: {found:?} in {all:#?}"
        );
    }
}

#[test]
fn killing_the_outer_process_ends_the_namespace_and_its_container() {
    let user = User::rootless();
    let env = user_env(user);
    let mut child = spawn_until_ready(user.strata_on(&env).args([
        "run",
        "busybox",
        "sh",
        "-c",
        "echo ready; exec sleep 600",
    ]));
    // The outer process's one child is strata in the namespace; below it the container.
    let pid = child.id();
    let inner: u32 = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap()
        .trim()
        .parse()
        .expect("one child");
    let descendants = |pid: u32| -> Vec<u32> {
        let mut all = vec![pid];
        let mut i = 0;
        while i < all.len() {
            let p = all[i];
            let children =
                std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
            all.extend(
                children
                    .split_whitespace()
                    .map(|c| c.parse::<u32>().unwrap()),
            );
            i += 1;
        }
        all
    };
    let tree = descendants(inner);
    assert!(
        tree.len() > 2,
        "strata, the sandbox's helper and init: {tree:?}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while tree
        .iter()
        .any(|p| Path::new(&format!("/proc/{p}")).exists())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "still alive: {tree:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn the_end_to_end_suites_pass_again_as_an_unprivileged_user() {
    User::rootless();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(RERUN)
        .args(["--exact", "--test-threads", "2"])
        .env(RERUN_ENV, "1")
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    // Every name matched a test: none was skipped by a rename.
    assert!(
        stdout.contains(&format!("test result: ok. {} passed", RERUN.len())),
        "{stdout}"
    );
}
