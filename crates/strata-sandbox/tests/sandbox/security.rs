//! Confinement: capabilities, seccomp, masks, mounts that stay as they are, device nodes that
//! cannot be opened, a mount table without host paths. Each attack runs for real.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use strata_sandbox::security::default_capability_mask;
use strata_sandbox::{Mount, MountKind, Security};

use super::*;

/// Compiles `probe.c` statically into the fixture's `/bin/probe`.
fn with_probe(fx: &Fixture) {
    let out = fx.lower.join("bin/probe");
    let gcc = Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(&out)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/sandbox/probe.c"
        ))
        .output()
        .expect("gcc runs (install-deps installs gcc and libc6-dev)");
    assert!(
        gcc.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&gcc.stderr)
    );
}

/// The `Cap*`, `Seccomp` and `NoNewPrivs` lines of the command's `/proc/self/status`.
fn status_of(fx: &Fixture, spec: &ContainerSpec) -> Vec<(String, String)> {
    let out = run_ok(fx, spec);
    out.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

const STATUS_SCRIPT: &str = "grep -E '^(Cap|Seccomp|NoNewPrivs)' /proc/self/status";

fn expected_status(eff: u64, bnd: u64, seccomp: &str) -> Vec<(String, String)> {
    [
        ("CapInh", 0),
        ("CapPrm", eff),
        ("CapEff", eff),
        ("CapBnd", bnd),
        ("CapAmb", 0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), format!("{v:016x}")))
    .chain([
        ("NoNewPrivs".to_owned(), "0".to_owned()),
        ("Seccomp".to_owned(), seccomp.to_owned()),
        (
            "Seccomp_filters".to_owned(),
            if seccomp == "2" { "1" } else { "0" }.to_owned(),
        ),
    ])
    .collect()
}

fn sorted(mut v: Vec<(String, String)>) -> Vec<(String, String)> {
    v.sort();
    v
}

#[test]
fn root_gets_the_default_capabilities_and_seccomp() {
    let fx = Fixture::busybox();
    let mask = default_capability_mask();
    assert_eq!(mask, 0xa80425fb);
    let status = status_of(&fx, &sh(&fx, STATUS_SCRIPT));
    assert_eq!(sorted(status), sorted(expected_status(mask, mask, "2")));
}

#[test]
fn a_user_gets_execve_semantics_under_the_default_bounding_set() {
    let fx = Fixture::busybox();
    let mut spec = sh(&fx, STATUS_SCRIPT);
    spec.process.user = "builder".into();
    let status = status_of(&fx, &spec);
    assert_eq!(
        sorted(status),
        sorted(expected_status(0, default_capability_mask(), "2"))
    );
}

/// The capability bounding set of this test process (what an insecure container inherits).
fn own_bounding_set() -> u64 {
    let status = fs::read_to_string("/proc/self/status").expect("own status");
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .expect("CapBnd line");
    u64::from_str_radix(line.trim(), 16).expect("hex")
}

#[test]
fn insecure_keeps_every_capability_and_no_seccomp() {
    let fx = Fixture::busybox();
    let mut spec = sh(&fx, STATUS_SCRIPT);
    spec.security = Security::Insecure;
    let all = own_bounding_set();
    assert_ne!(all, default_capability_mask(), "the tests run as full root");
    let status = status_of(&fx, &spec);
    assert_eq!(sorted(status), sorted(expected_status(all, all, "0")));
}

#[test]
fn the_profile_denies_what_dockers_denies() {
    let fx = Fixture::busybox();
    with_probe(&fx);
    let out = run_ok(&fx, &fx.spec(&["probe", "syscalls"]));
    let expected = "\
clone3=ENOSYS
unshare=EPERM
unshare_user=EPERM
mount=EPERM
umount2=EPERM
pivot_root=EPERM
personality_addr_no_randomize=EPERM
socket_vsock=EPERM
keyctl=EPERM
add_key=EPERM
bpf=EPERM
perf_event_open=EPERM
kexec_load=EPERM
init_module=EPERM
setns=EPERM
iopl=EPERM
getpid=ok
socket_inet=ok
personality_query=ok
";
    assert_eq!(out, expected);
    // Nested namespaces through the C library's clone fallback fail too.
    let (status, out) = run(&fx, &sh(&fx, "unshare -m -p -f true")).expect("runs");
    assert!(!status.success(), "unshare worked: {out}");
}

#[test]
fn open_by_handle_at_cannot_reach_the_host_root() {
    let fx = Fixture::busybox();
    with_probe(&fx);
    let hosts = fx.tmp.path().join("hosts");
    fs::write(&hosts, "127.0.0.1 localhost\n").expect("hosts");
    let mut spec = fx.spec(&["probe", "handle", "/etc/hosts"]);
    spec.mounts = vec![bind("/etc/hosts", &hosts, false)];
    assert_eq!(run_ok(&fx, &spec), "handle=EPERM\n");
}

#[test]
fn the_command_cannot_trace_its_init() {
    let fx = Fixture::busybox();
    with_probe(&fx);
    assert_eq!(
        run_ok(&fx, &fx.spec(&["probe", "ptrace", "1"])),
        "ptrace=EPERM\n"
    );
    // Nor reach into it through /proc (ptrace access mode checks).
    let script = "for f in /proc/1/fd/0 /proc/1/cwd /proc/1/root /proc/1/exe; do \
                    readlink $f >/dev/null 2>&1 && echo followed $f; done; \
                  cat /proc/1/environ >/dev/null 2>&1 && echo read environ; echo done";
    assert_eq!(run_ok(&fx, &sh(&fx, script)), "done\n");
}

/// Set for [`tiocsti_helper`] by the test that runs it.
const TIOCSTI_HELPER: &str = "STRATA_SANDBOX_TIOCSTI_HELPER";

/// A command whose stdio is the caller's terminal (`Stdio::Inherit`, as `strata run` and the
/// debugger's shell with scripted input) must not push input into it: the caller's shell
/// would read and run it after the build (TIOCSTI; moby never hands a container the
/// caller's terminal). The helper runs in a session whose controlling terminal is a pty of
/// this test.
#[test]
fn the_command_cannot_push_input_into_the_callers_terminal() {
    require_root();
    let pty = strata_sandbox::pty::Pty::open().expect("pty");
    let slave = || std::process::Stdio::from(pty.slave.try_clone().expect("dup"));
    // setsid -c: a new session with stdin, the pty, as its controlling terminal.
    let mut helper = Command::new("setsid")
        .args(["-w", "-c"])
        .arg(std::env::current_exe().expect("test binary"))
        .args(["--exact", "security::tiocsti_helper", "--ignored"])
        .args(["--nocapture", "--test-threads=1"])
        .env(TIOCSTI_HELPER, "1")
        .stdin(slave())
        .stdout(slave())
        .stderr(slave())
        .spawn()
        .expect("setsid (util-linux) runs");
    drop(pty.slave);
    let mut master = fs::File::from(pty.master);
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        // EIO once the helper side is closed.
        let _ = std::io::Read::read_to_end(&mut master, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    });
    let status = helper.wait().expect("helper ends");
    let out = reader.join().expect("reader");
    assert!(status.success(), "{out}");
    assert!(out.contains("tiocsti=EPERM"), "{out}");
}

#[test]
#[ignore = "run by the_command_cannot_push_input_into_the_callers_terminal"]
fn tiocsti_helper() {
    assert!(
        std::env::var_os(TIOCSTI_HELPER).is_some(),
        "runs only under the_command_cannot_push_input_into_the_callers_terminal"
    );
    let fx = Fixture::busybox();
    with_probe(&fx);
    let status = sandbox()
        .spawn(&fx.spec(&["probe", "tiocsti"]), Stdio::Inherit)
        .expect("spawn")
        .wait()
        .expect("wait");
    assert_eq!(status, ExitStatus::Exited(0));
}

fn toolbox_fixture(fx: &Fixture) -> std::path::PathBuf {
    let tool = fx.tmp.path().join("toolbox");
    fs::create_dir(&tool).expect("toolbox");
    fs::write(tool.join("bash"), "the toolbox's bash\n").expect("bash");
    tool
}

#[test]
fn mounts_cannot_be_remounted_or_made() {
    let fx = Fixture::busybox();
    let tool = toolbox_fixture(&fx);
    let script = "\
        for m in /sys /proc/sys /.strata/toolbox; do \
          mount -o remount,rw $m 2>/dev/null && echo remounted $m; \
          mount -o remount,rw,bind $m 2>/dev/null && echo bind-remounted $m; \
        done; \
        echo x 2>/dev/null > /.strata/toolbox/bash && echo wrote toolbox; \
        echo 1 2>/dev/null > /proc/sys/kernel/panic && echo wrote sysctl; \
        echo h 2>/dev/null > /proc/sysrq-trigger && echo wrote sysrq; \
        echo x 2>/dev/null > /sys/kernel/uevent_helper && echo wrote sysfs; \
        mkdir -p /tmp/cg; mount -t cgroup -o memory cgroup /tmp/cg 2>/dev/null && echo cgroup v1; \
        mount -t cgroup2 none /tmp/cg 2>/dev/null && echo cgroup v2; \
        ls -A /sys/fs/cgroup; \
        umount /proc/kcore 2>/dev/null && echo unmasked; \
        echo done";
    let mut spec = sh(&fx, script);
    spec.mounts = vec![bind("/.strata/toolbox", &tool, true)];
    assert_eq!(run_ok(&fx, &spec), "done\n");
    assert_eq!(
        fs::read_to_string(tool.join("bash")).expect("read"),
        "the toolbox's bash\n"
    );
}

#[test]
fn even_an_insecure_step_cannot_write_the_toolbox() {
    let fx = Fixture::busybox();
    let tool = toolbox_fixture(&fx);
    let mut spec = sh(
        &fx,
        "mount -o remount,rw,bind /.strata/toolbox; mount -o remount,rw /.strata/toolbox; \
         echo x > /.strata/toolbox/bash && echo wrote; \
         mount -o remount,rw /sys && echo sys writable; echo done",
    );
    spec.security = Security::Insecure;
    spec.mounts = vec![bind("/.strata/toolbox", &tool, true)];
    let out = run_ok(&fx, &spec);
    assert!(!out.contains("wrote"), "{out}");
    assert!(
        out.contains("sys writable"),
        "insecure has CAP_SYS_ADMIN: {out}"
    );
    assert_eq!(
        fs::read_to_string(tool.join("bash")).expect("read"),
        "the toolbox's bash\n"
    );
}

/// The major and minor number of the host's root file system's device.
fn host_disk() -> (u64, u64) {
    let dev = fs::metadata("/").expect("stat /").dev();
    (rustix::fs::major(dev).into(), rustix::fs::minor(dev).into())
}

#[test]
fn device_nodes_land_in_the_layer_but_cannot_be_opened() {
    let fx = Fixture::busybox();
    let (major, minor) = host_disk();
    let cache = fx.tmp.path().join("cache");
    fs::create_dir(&cache).expect("cache");
    let script = format!(
        "for d in / /dev/ /tmp/ /cache/; do \
           mknod ${{d}}disk b {major} {minor} || echo mknod failed in $d; \
           head -c1 ${{d}}disk >/dev/null 2>&1 && echo read the disk through $d; \
           rm -f /dev/disk /tmp/disk /cache/disk; \
         done; \
         mknod /null c 1 3; echo x 2>/dev/null > /null && echo wrote a char device; \
         echo done"
    );
    let mut spec = sh(&fx, &script);
    spec.mounts = vec![
        Mount {
            target: "/tmp".into(),
            source: PathBuf::new(),
            kind: MountKind::Tmpfs,
            beneath: None,
        },
        bind("/cache", &cache, false),
    ];
    assert_eq!(run_ok(&fx, &spec), "done\n");
    // The node is part of the step's result, as in BuildKit's layers.
    let node = fs::symlink_metadata(fx.upper().join("disk")).expect("node in upper");
    assert!(node.file_type().is_block_device());
    assert_eq!(node.rdev(), fs::metadata("/").expect("stat").dev());
}

#[test]
fn the_mount_table_names_no_host_path() {
    let fx = Fixture::busybox();
    let tool = toolbox_fixture(&fx);
    let hosts = fx.tmp.path().join("hosts");
    fs::write(&hosts, "127.0.0.1 localhost\n").expect("hosts");
    let [lower2, upper2, work2] = ["l2", "u2", "w2"].map(|d| {
        let p = fx.tmp.path().join(d);
        fs::create_dir(&p).expect("mkdir");
        p
    });
    let mut spec = sh(
        &fx,
        "cat /proc/mounts /proc/self/mountinfo; echo 127.0.0.2 extra >> /etc/hosts; \
         cat /etc/hosts",
    );
    spec.mounts = vec![
        bind("/.strata/toolbox", &tool, true),
        Mount {
            target: "/etc/hosts".into(),
            source: hosts.clone(),
            kind: MountKind::Copy { readonly: false },
            beneath: None,
        },
        Mount {
            target: "/debugroot".into(),
            source: PathBuf::new(),
            kind: MountKind::Overlay {
                lowers: vec![lower2, fx.lower.clone()],
                upper: upper2,
                work: work2,
            },
            beneath: None,
        },
    ];
    let out = run_ok(&fx, &spec);
    // Its name, not its path: a bind's root field is relative to its file system's root.
    let tmp = fx
        .tmp
        .path()
        .file_name()
        .expect("a name")
        .to_string_lossy()
        .to_string();
    assert!(!out.contains(&tmp), "{out}");
    assert!(!out.contains("/tmp/"), "{out}");
    assert!(
        out.contains("lowerdir+=l/root/0,lowerdir+=l/root/1,upperdir=l/root/u"),
        "{out}"
    );
    assert!(
        out.contains("127.0.0.1 localhost\n127.0.0.2 extra\n"),
        "{out}"
    );
    // The copy took the write, the host file did not.
    assert_eq!(
        fs::read_to_string(&hosts).expect("hosts"),
        "127.0.0.1 localhost\n"
    );
    assert!(Path::new(&hosts).is_file());
}

/// A link a container left in a writable mount (a cache dir kept between builds) must not
/// send the next run's mountpoints out of the root: the init runs in the host's root until
/// the pivot, so following it would create the mountpoint on the host.
#[test]
fn a_link_inside_a_mount_never_places_a_later_mountpoint_on_the_host() {
    let fx = Fixture::busybox();
    let host = fx.tmp.path().join("host-dir");
    fs::create_dir(&host).expect("mkdir");
    let cache = fx.tmp.path().join("cache");
    fs::create_dir(&cache).expect("mkdir");
    // What `ln -s <host dir> /c/x` in an earlier run leaves in the cache.
    std::os::unix::fs::symlink(&host, cache.join("x")).expect("symlink");
    let file = fx.tmp.path().join("file");
    fs::write(&file, "f").expect("write");
    for nested in [
        Mount {
            target: "/c/x/y".into(),
            source: "".into(),
            kind: MountKind::Tmpfs,
            beneath: None,
        },
        bind("/c/x/f", &file, false),
        bind("/c/x", &file, false),
    ] {
        let target = nested.target.clone();
        let mut spec = sh(&fx, "true");
        spec.mounts = vec![bind("/c", &cache, false), nested];
        let err = run(&fx, &spec).expect_err("a link in the way");
        assert!(
            err.to_string().contains(&format!("mount target {target}"))
                && err.to_string().contains("link"),
            "{err}"
        );
        let created: Vec<_> = fs::read_dir(&host).expect("read_dir").flatten().collect();
        assert!(
            created.is_empty(),
            "{target} created {created:?} on the host"
        );
        assert!(cache.join("x").is_symlink());
    }
}

/// Sources beneath a directory the user controls are mounted from fds opened there: dirs
/// read-only and writable and a file work, and a link in the way fails the run.
#[test]
fn sources_beneath_a_context_are_mounted_without_links() {
    let fx = Fixture::busybox();
    let context = fx.tmp.path().join("context");
    fs::create_dir_all(context.join("dir")).expect("mkdir");
    fs::write(context.join("dir/f"), "in dir\n").expect("write");
    fs::write(context.join("file"), "a file\n").expect("write");
    let host = fx.tmp.path().join("host");
    fs::create_dir(&host).expect("mkdir");
    fs::write(host.join("f"), "host\n").expect("write");
    std::os::unix::fs::symlink(&host, context.join("link")).expect("symlink");
    let beneath = |target: &str, rel: &str, readonly: bool| Mount {
        beneath: Some(context.clone()),
        ..bind(target, &context.join(rel), readonly)
    };
    let mut spec = sh(&fx, "cat /ro/f /file; echo w > /rw/new");
    spec.mounts = vec![
        beneath("/ro", "dir", true),
        beneath("/rw", "dir", false),
        beneath("/file", "file", true),
    ];
    assert_eq!(run_ok(&fx, &spec), "in dir\na file\n");
    assert_eq!(
        fs::read_to_string(context.join("dir/new")).expect("written"),
        "w\n"
    );
    for readonly in [true, false] {
        let mut spec = sh(&fx, "cat /m/f");
        spec.mounts = vec![beneath("/m", "link", readonly)];
        let err = run(&fx, &spec).expect_err("a link").to_string();
        assert!(
            err.contains("without following a link") && err.contains("link"),
            "{err}"
        );
    }
}
