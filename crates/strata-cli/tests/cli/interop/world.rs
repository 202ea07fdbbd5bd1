//! The world the interop suite runs in, made once per test process and torn down at its exit:
//! a `docker-registry` served over TLS with a CA made by openssl and htpasswd auth, a dockerd
//! (with its own containerd) in its own directories, podman/buildah storage, and a busybox base
//! image imported into docker and pushed to the registry.
//!
//! Teardown: an `atexit` handler stops dockerd (SIGTERM, waited for: it unmounts its overlays
//! and stops its containerd) and the registry, then removes the directory. The pids and the
//! directory are also written to a pid file of this test process (`PID_DIR/strata-interop.
//! <pid>.pids`), so a run that crashed before its `atexit` is cleaned up by the next one, and
//! suites running at the same time leave each other alone.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Where the processes and directory of running suites are recorded.
const PID_DIR: &str = "/tmp";

/// This process's pid file.
fn pid_file() -> PathBuf {
    Path::new(PID_DIR).join(format!("strata-interop.{}.pids", std::process::id()))
}
/// The registry user.
pub const USER: &str = "alice";
/// Its password.
pub const PASSWORD: &str = "s3cret-interop";

/// The shared fixture.
pub struct World {
    /// Everything lives under here.
    pub root: PathBuf,
    /// `127.0.0.1:PORT` of the TLS registry.
    pub registry: String,
    /// The registry's storage directory (blobs can be corrupted on disk).
    pub registry_storage: PathBuf,
    /// The CA that signed the registry's certificate.
    pub ca: PathBuf,
    /// A certs.d root holding `<registry>/ca.crt`.
    pub certs_d: PathBuf,
    /// `DOCKER_CONFIG` holding the registry login.
    pub docker_config: PathBuf,
    /// dockerd's socket.
    pub docker_sock: PathBuf,
    /// containerd's socket (dockerd's own).
    pub containerd_sock: PathBuf,
    /// podman/buildah storage and runtime dirs.
    pub containers_root: PathBuf,
}

static WORLD: OnceLock<World> = OnceLock::new();
static CHILDREN: Mutex<Vec<Child>> = Mutex::new(Vec::new());

/// The world, started on first use.
pub fn world() -> &'static World {
    WORLD.get_or_init(World::start)
}

unsafe extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
}

extern "C" fn teardown() {
    let mut children = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    // Children in start order: dockerd last, so stop it first and wait for it.
    while let Some(mut child) = children.pop() {
        stop(&mut child);
    }
    if let Some(world) = WORLD.get() {
        unmount_under(&world.root);
        let _ = fs::remove_dir_all(&world.root);
    }
    let _ = fs::remove_file(pid_file());
}

/// SIGTERM, up to 30 s to exit, then SIGKILL.
fn stop(child: &mut Child) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("a child pid is positive");
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Stops what crashed earlier runs left: the pid files of test processes that are gone list
/// `pid` lines, then `dir PATH`; only processes whose command line names that run's directory
/// are stopped.
fn reap_stale() {
    let Ok(entries) = fs::read_dir(PID_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(owner) = name
            .strip_prefix("strata-interop.")
            .and_then(|n| n.strip_suffix(".pids"))
        else {
            continue;
        };
        if Path::new(&format!("/proc/{owner}")).exists() {
            continue;
        }
        reap(&entry.path());
    }
}

fn reap(pid_file: &Path) {
    let Ok(text) = fs::read_to_string(pid_file) else {
        return;
    };
    let dir = text
        .lines()
        .find_map(|l| l.strip_prefix("dir "))
        .map(PathBuf::from);
    let Some(dir) = dir else {
        let _ = fs::remove_file(pid_file);
        return;
    };
    for pid in text.lines().filter_map(|l| l.parse::<i32>().ok()) {
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(dir.to_str().unwrap_or("\0")) {
            let pid = rustix::process::Pid::from_raw(pid).expect("pids are positive");
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(30);
            while Path::new(&format!("/proc/{}", pid.as_raw_nonzero())).exists()
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    unmount_under(&dir);
    let _ = fs::remove_dir_all(&dir);
    let _ = fs::remove_file(pid_file);
}

/// Detaches every mount under `dir`, deepest first: dockerd leaves its network namespace
/// mounted at `EXEC_ROOT/netns/default` when it stops (and a hard-killed one its overlays),
/// and `remove_dir_all` cannot cross a mount.
fn unmount_under(dir: &Path) {
    let prefix = format!("{}/", dir.display());
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut targets: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .filter(|t| t.starts_with(&prefix))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for t in targets {
        let _ = rustix::mount::unmount(t, rustix::mount::UnmountFlags::DETACH);
    }
}

/// Runs a command and returns its stdout; panics with its stderr when it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e} (run scripts/install-deps.sh)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// Waits (bounded) until `ready` holds, failing with `what` and the log.
pub fn wait_for(what: &str, log: &Path, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} did not come up in 60 s; log:\n{}",
            fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn spawn(cmd: &mut Command, log: &Path) -> u32 {
    let file = fs::File::create(log).expect("create a log file");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("dup the log file"))
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e} (run scripts/install-deps.sh)"));
    let pid = child.id();
    CHILDREN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(child);
    pid
}

impl World {
    fn start() -> World {
        assert!(
            rustix::process::geteuid().is_root(),
            "the interop suite runs dockerd, podman and buildah: run it as root"
        );
        reap_stale();
        let root = tempfile::Builder::new()
            .prefix("strata-interop-")
            .tempdir()
            .expect("tempdir")
            .keep();
        // SAFETY: atexit with a plain extern "C" fn that only uses statics.
        let registered = unsafe { atexit(teardown) };
        assert_eq!(registered, 0, "atexit failed");
        let tls = root.join("tls");
        fs::create_dir_all(&tls).expect("mkdir tls");
        let openssl = |args: &[&str]| {
            run(Command::new("openssl").args(args).current_dir(&tls));
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=strata interop CA",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        fs::write(
            tls.join("ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .expect("write ext");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext",
        ]);
        let htpasswd = run(Command::new("htpasswd").args(["-Bbn", USER, PASSWORD]));
        fs::write(tls.join("htpasswd"), htpasswd).expect("write htpasswd");

        let port = free_port();
        let registry = format!("127.0.0.1:{port}");
        let registry_storage = root.join("registry");
        fs::write(
            root.join("registry.yml"),
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {registry}\n  tls:\n    certificate: {}\n    key: {}\n\
                 auth:\n  htpasswd:\n    realm: strata-interop\n    path: {}\n",
                registry_storage.display(),
                tls.join("server.crt").display(),
                tls.join("server.key").display(),
                tls.join("htpasswd").display(),
            ),
        )
        .expect("write registry.yml");
        let registry_pid = spawn(
            Command::new("docker-registry")
                .arg("serve")
                .arg(root.join("registry.yml")),
            &root.join("registry.log"),
        );
        let certs_d = root.join("certs.d");
        fs::create_dir_all(certs_d.join(&registry)).expect("mkdir certs.d");
        fs::copy(tls.join("ca.crt"), certs_d.join(&registry).join("ca.crt")).expect("copy ca");

        let docker_sock = root.join("docker.sock");
        let exec_root = root.join("docker-exec");
        let dockerd_pid = spawn(
            Command::new("dockerd")
                .args(["--iptables=false", "--ip-masq=false", "--bridge=none"])
                .arg("--data-root")
                .arg(root.join("docker-data"))
                .arg("--exec-root")
                .arg(&exec_root)
                .arg("-H")
                .arg(format!("unix://{}", docker_sock.display()))
                .arg("--pidfile")
                .arg(root.join("docker.pid")),
            &root.join("dockerd.log"),
        );
        fs::write(
            pid_file(),
            format!("{registry_pid}\n{dockerd_pid}\ndir {}\n", root.display()),
        )
        .expect("write the pid file");
        let world = World {
            registry: registry.clone(),
            registry_storage,
            ca: tls.join("ca.crt"),
            certs_d,
            docker_config: root.join("docker-config"),
            docker_sock,
            containerd_sock: exec_root.join("containerd/containerd.sock"),
            containers_root: root.join("containers"),
            root,
        };
        for dir in ["xdg", "tmp"] {
            fs::create_dir_all(world.containers_root.join(dir)).expect("mkdir containers dirs");
        }
        wait_for("docker-registry", &world.root.join("registry.log"), || {
            Command::new("curl")
                .args(["-sf", "-o", "/dev/null", "--cacert"])
                .arg(&world.ca)
                .args(["-u", &format!("{USER}:{PASSWORD}")])
                .arg(format!("https://{registry}/v2/"))
                .status()
                .is_ok_and(|s| s.success())
        });
        wait_for("dockerd", &world.root.join("dockerd.log"), || {
            world
                .docker()
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
        run(world
            .docker()
            .args(["login", "-u", USER, "-p", PASSWORD, &registry]));
        world.push_base();
        world
    }

    /// A `docker` client command on this daemon and docker config.
    pub fn docker(&self) -> Command {
        let mut cmd = Command::new("/usr/bin/docker");
        cmd.arg("-H")
            .arg(format!("unix://{}", self.docker_sock.display()))
            .env("DOCKER_CONFIG", &self.docker_config);
        cmd
    }

    /// `podman` (or `buildah`) on the suite's storage: vfs, runc, cgroupfs.
    fn containers_tool(&self, tool: &str) -> Command {
        let mut cmd = Command::new(tool);
        cmd.arg("--root")
            .arg(self.containers_root.join("storage"))
            .arg("--runroot")
            .arg(self.containers_root.join("run"))
            .args(["--storage-driver", "vfs"])
            .env("XDG_RUNTIME_DIR", self.containers_root.join("xdg"))
            .env("TMPDIR", self.containers_root.join("tmp"));
        if tool == "podman" {
            cmd.args([
                "--runtime",
                "runc",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ]);
        }
        cmd
    }

    /// A podman command (see [`World::containers_tool`]).
    pub fn podman(&self) -> Command {
        self.containers_tool("podman")
    }

    /// A buildah command (see [`World::containers_tool`]).
    pub fn buildah(&self) -> Command {
        self.containers_tool("buildah")
    }

    /// The flags podman, buildah and skopeo need to reach the registry: its CA and the login.
    pub fn registry_flags(&self, prefix: &str) -> Vec<String> {
        vec![
            format!("--{prefix}cert-dir"),
            self.certs_d.join(&self.registry).display().to_string(),
            format!("--{prefix}creds"),
            format!("{USER}:{PASSWORD}"),
        ]
    }

    /// Limits podman and buildah containers get explicitly: their defaults (the hard limits)
    /// cannot be set inside this machine's container (runc: `setting rlimit ... not permitted`).
    pub const ULIMITS: [&str; 4] = [
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
    ];

    /// `REGISTRY/base/busybox:1`: the busybox rootfs imported into docker and pushed.
    pub fn base(&self) -> String {
        format!("{}/base/busybox:1", self.registry)
    }

    fn push_base(&self) {
        run(self
            .docker()
            .arg("import")
            .arg(crate::support::busybox_tar())
            .arg(self.base()));
        run(self.docker().args(["push", &self.base()]));
    }

    /// The environment strata needs to reach the registry: the CA through `certs.d`, the login
    /// through the docker config.
    pub fn strata_env(&self, cmd: &mut Command) {
        cmd.env("STRATA_CERTS_D", &self.certs_d)
            .env("DOCKER_CONFIG", &self.docker_config)
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("SSL_CERT_FILE")
            .env("XDG_RUNTIME_DIR", self.root.join("no-xdg"));
    }
}
