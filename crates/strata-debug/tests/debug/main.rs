//! Integration tests on the real kernel: real states built with the sandbox, real overlay
//! mounts, real ptys. They need root (CI runs them as root) and fail with a message saying so
//! otherwise. Modules mirror `src/`.

mod session;
mod shell;

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use strata_debug::{Failure, Outcome, Session};
use strata_sandbox::{
    ContainerSpec, ExitStatus, Mount, MountKind, Network, ProcessSpec, Sandbox, Security, Stdio,
};

/// The failing command of the default fixture.
pub const FAILING: &str = "echo partial > /partial; rm /etc/motd; exit 3";

/// The whole step of the default fixture: reports whether it starts from a clean state.
pub const STEP: &str = "if [ -e /partial ]; then echo state=dirty; else echo state=clean; fi; \
                        [ -e /etc/motd ] && echo motd=present; \
                        echo partial > /partial; rm /etc/motd; exit 3";

pub const LISTING: &str = "--> strata.yaml:4:9\n  3 |     run:\n> 4 |       - echo partial\n";

pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the strata-debug integration tests need root (namespaces, overlay mounts); run them as root"
    );
}

pub fn sandbox() -> Sandbox {
    Sandbox::new(vec![
        env!("CARGO_BIN_EXE_strata-debug-monitor").into(),
        "__sandbox-init".into(),
    ])
}

/// A busybox root file system at `dir`: static busybox, applet symlinks, passwd and group.
pub fn busybox_rootfs(dir: &Path) {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).expect("mkdir bin");
    fs::copy("/usr/bin/busybox", bin.join("busybox")).expect("copy busybox");
    let list = Command::new("/usr/bin/busybox")
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            symlink("busybox", bin.join(applet)).expect("applet symlink");
        }
    }
    let etc = dir.join("etc");
    fs::create_dir_all(&etc).expect("mkdir etc");
    fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/sh\nbuilder:x:1234:2345::/home/builder:/bin/sh\n",
    )
    .expect("passwd");
    fs::write(
        etc.join("group"),
        "root:x:0:\nbuilders:x:2345:\nextra:x:3456:builder\n",
    )
    .expect("group");
    for d in ["root", "srv/app", "home/builder"] {
        fs::create_dir_all(dir.join(d)).expect("mkdir");
    }
    rustix::fs::chown(
        dir.join("home/builder"),
        Some(rustix::fs::Uid::from_raw(1234)),
        Some(rustix::fs::Gid::from_raw(2345)),
    )
    .expect("chown home");
}

/// A toolbox as the engine mounts it: `bin/bash` (static) and busybox with its applets.
pub fn toolbox(dir: &Path) {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).expect("mkdir toolbox");
    fs::copy("/usr/bin/bash-static", bin.join("bash")).expect("copy bash-static");
    fs::copy("/usr/bin/busybox", bin.join("busybox")).expect("copy busybox");
    for applet in ["ls", "cat", "env", "id", "vi"] {
        symlink("busybox", bin.join(applet)).expect("applet symlink");
    }
}

/// Options of the failed step a fixture builds.
pub struct Step {
    pub user: &'static str,
    pub cwd: &'static str,
    pub script: String,
}

impl Default for Step {
    fn default() -> Step {
        Step {
            user: "0:0",
            cwd: "/srv/app",
            script: FAILING.into(),
        }
    }
}

/// A failed step, produced for real: base layer, toolbox, mounts, the broken upper.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub base: PathBuf,
    pub toolbox: PathBuf,
    pub cache: PathBuf,
    pub failure: Failure,
    /// The failed run's merged output.
    pub output: String,
}

impl Fixture {
    pub fn failed() -> Fixture {
        Fixture::with_step(Step::default())
    }

    pub fn with_step(step: Step) -> Fixture {
        require_root();
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = |name: &str| {
            let path = tmp.path().join(name);
            fs::create_dir_all(&path).expect("mkdir");
            path
        };
        let base = dir("layers/base");
        busybox_rootfs(&base);
        fs::write(base.join("etc/motd"), "welcome\n").expect("motd");
        let toolbox_dir = dir("toolbox");
        toolbox(&toolbox_dir);
        let cache = dir("cache");
        fs::write(cache.join("cached"), "from the cache\n").expect("cache file");
        let spec = ContainerSpec {
            lowers: vec![base.clone()],
            upper: dir("failed/upper"),
            work: dir("failed/work"),
            scratch: dir("failed/scratch"),
            process: ProcessSpec {
                args: vec!["sh".into(), "-c".into(), step.script.clone()],
                env: vec![
                    "PATH=/usr/local/bin:/usr/bin:/bin".into(),
                    "HOME=/root".into(),
                    "STEP=build".into(),
                    "WITH_SPACE=a b".into(),
                ],
                cwd: step.cwd.into(),
                user: step.user.into(),
                terminal: false,
            },
            hostname: "strata-build".into(),
            mounts: vec![
                Mount {
                    target: "/.strata/toolbox".into(),
                    source: toolbox_dir.clone(),
                    kind: MountKind::Bind { readonly: true },
                    beneath: None,
                },
                Mount {
                    target: "/cache".into(),
                    source: cache.clone(),
                    kind: MountKind::Bind { readonly: false },
                    beneath: None,
                },
                Mount {
                    target: "/tmp".into(),
                    source: PathBuf::new(),
                    kind: MountKind::Tmpfs,
                    beneath: None,
                },
            ],
            network: Network::None,
            security: Security::Sandbox,
        };
        let (status, output) = run_piped(&spec);
        assert_eq!(
            status,
            ExitStatus::Exited(3),
            "the step must fail: {output}"
        );
        let failure = Failure {
            image: "app".into(),
            stage: "build".into(),
            command: step.script.clone(),
            exit_code: status.code(),
            output_tail: output.lines().map(str::to_owned).collect(),
            location: Some(
                "--> strata.yaml:4:9\n  |\n4 |       - echo partial\n  |         ^^^^^^^^^^^^ exited with 3\n"
                    .into(),
            ),
            listing: Some(LISTING.into()),
            rerun_args: vec!["sh".into(), "-c".into(), step.script.clone()],
            step_args: vec!["sh".into(), "-c".into(), STEP.into()],
            source_side: None,
            spec,
        };
        // The failed run's scratch is the engine's; the debugger never needs it.
        fs::remove_dir_all(tmp.path().join("failed/scratch")).expect("rm scratch");
        Fixture {
            tmp,
            base,
            toolbox: toolbox_dir,
            cache,
            failure,
            output,
        }
    }

    /// A new, empty, private scratch dir for a session.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let path = self.tmp.path().join("scratch").join(name);
        fs::create_dir_all(&path).expect("mkdir scratch");
        path
    }

    /// Runs a scripted monitor and checks what every session must leave behind: no mount,
    /// an empty scratch dir, the failed upper and the base untouched.
    pub fn monitor(&self, script: &str) -> (Outcome, String) {
        self.monitor_failure(self.failure.clone(), script)
    }

    pub fn monitor_failure(&self, failure: Failure, script: &str) -> (Outcome, String) {
        let before = self.state_snapshot();
        let scratch = self.scratch("session");
        let sandbox = sandbox();
        let mut session = Session::new(&sandbox, failure, scratch.clone()).expect("session");
        let mut input = script.as_bytes();
        let mut out = Vec::new();
        let outcome = session.monitor(&mut input, &mut out).expect("monitor");
        drop(session);
        let out = String::from_utf8(out).expect("utf-8 output");
        self.assert_left_nothing(&scratch, &before);
        (outcome, out)
    }

    /// The failed upper and the base layer, for before/after comparisons.
    pub fn state_snapshot(&self) -> Vec<String> {
        let mut all = snapshot(&self.failure.spec.upper);
        all.extend(snapshot(&self.base));
        all
    }

    pub fn assert_left_nothing(&self, scratch: &Path, before: &[String]) {
        assert_no_host_mounts(self.tmp.path());
        assert_eq!(
            fs::read_dir(scratch).expect("scratch").count(),
            0,
            "the session left files in its scratch dir"
        );
        assert_eq!(
            self.state_snapshot(),
            before,
            "the failed upper or the base layer changed"
        );
    }

    /// Writes the failure as JSON for the monitor binary.
    pub fn failure_json(&self, failure: &Failure) -> PathBuf {
        let path = self.tmp.path().join("failure.json");
        fs::write(&path, serde_json::to_vec(failure).expect("json")).expect("write json");
        path
    }
}

/// Runs a spec with piped output on this thread.
pub fn run_piped(spec: &ContainerSpec) -> (ExitStatus, String) {
    let mut container = sandbox().spawn(spec, Stdio::Piped).expect("spawn");
    let mut output = String::new();
    container
        .take_output()
        .expect("piped")
        .read_to_string(&mut output)
        .expect("read output");
    (container.wait().expect("wait"), output)
}

/// Asserts the host's mount table has no trace of `dir`.
pub fn assert_no_host_mounts(dir: &Path) {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let needle = dir.to_string_lossy().to_string();
    for line in mountinfo.lines() {
        assert!(!line.contains(&needle), "leaked mount: {line}");
    }
}

/// Every entry below `root` with type, mode, owner, size, times (not atime), device,
/// link target, opaque flag and a hash of the content.
pub fn snapshot(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let meta = path.symlink_metadata().expect("lstat");
            let mut hasher = DefaultHasher::new();
            if meta.is_file() {
                fs::read(&path).expect("read").hash(&mut hasher);
            } else if meta.file_type().is_symlink() {
                fs::read_link(&path).expect("readlink").hash(&mut hasher);
            }
            let opaque =
                meta.is_dir() && strata_layer::whiteout::is_overlay_opaque(&path).expect("xattr");
            out.push(format!(
                "{} mode={:o} {}:{} size={} mtime={}.{} ctime={}.{} rdev={} opaque={opaque} hash={:x}",
                path.strip_prefix(root).expect("prefix").display(),
                meta.mode(),
                meta.uid(),
                meta.gid(),
                meta.size(),
                meta.mtime(),
                meta.mtime_nsec(),
                meta.ctime(),
                meta.ctime_nsec(),
                meta.rdev(),
                hasher.finish(),
            ));
            if meta.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

/// The output after each `IMAGE/STAGE (strata) ` prompt, in order, without the echoed
/// command line; index 0 is what came before the first prompt. (The prompt starts a line:
/// the `IMAGE/STAGE ` after a part's last newline is the next prompt's.)
pub fn sections(output: &str, script: &str) -> Vec<String> {
    let mut parts: Vec<String> = output.split("(strata) ").map(str::to_owned).collect();
    let last = parts.len() - 1;
    for part in &mut parts[..last] {
        part.truncate(part.rfind('\n').map_or(0, |at| at + 1));
    }
    for (part, command) in parts.iter_mut().skip(1).zip(script.lines()) {
        if let Some(rest) = part.strip_prefix(&format!("{command}\n")) {
            *part = rest.to_owned();
        }
    }
    parts
}
