//! Build containers are confined as BuildKit's (issue #12): real builds through the `strata`
//! binary print their capabilities and seccomp state, run the classic container escapes, and
//! must fail or be contained while the host (canary files outside the store, the store's
//! toolbox) stays as it was. `RUN --security=insecure` is an explicit, named opt-in.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{Env, built_stages};

/// `CapBnd` of `docker run debian grep Cap /proc/self/status`: CHOWN, DAC_OVERRIDE, FSETID,
/// FOWNER, MKNOD, NET_RAW, SETGID, SETUID, SETFCAP, SETPCAP, NET_BIND_SERVICE, SYS_CHROOT,
/// KILL, AUDIT_WRITE.
const DEFAULT_CAPS: &str = "00000000a80425fb";

const STATUS: &str = "grep -E '^(Cap|Seccomp|NoNewPrivs)' /proc/self/status";

/// The status lines as a map (`CapEff` → `00000000a80425fb`).
fn status_map(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

fn expected(eff: &str, bnd: &str, seccomp: &str) -> BTreeMap<String, String> {
    let filters = if seccomp == "2" { "1" } else { "0" };
    [
        ("CapInh", "0000000000000000"),
        ("CapPrm", eff),
        ("CapEff", eff),
        ("CapBnd", bnd),
        ("CapAmb", "0000000000000000"),
        ("NoNewPrivs", "0"),
        ("Seccomp", seccomp),
        ("Seccomp_filters", filters),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// This test process's bounding set: what an insecure step keeps.
fn full_caps() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status_map(&status)["CapBnd"].clone()
}

/// A Dockerfile context in the work dir.
fn context(env: &Env, name: &str, dockerfile: &str) -> PathBuf {
    let dir = env.work.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    dir
}

fn build(env: &Env, dir: &Path, tag: &str, extra: &[&str]) -> Output {
    let mut args = vec!["build", "--progress", "plain", "-f"];
    let file = dir.join("Dockerfile");
    args.push(file.to_str().unwrap());
    args.extend(["-t", tag]);
    args.extend(extra);
    args.push(dir.to_str().unwrap());
    env.strata(&args)
}

fn build_ok(env: &Env, dir: &Path, tag: &str, extra: &[&str]) -> String {
    let out = build(env, dir, tag, extra);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "build failed:\n{stderr}");
    stderr
}

fn cat(env: &Env, image: &str, file: &str) -> String {
    env.run_sh(image, &format!("cat {file}"))
}

#[test]
fn a_run_step_has_the_default_capabilities_and_seccomp() {
    let env = Env::new();
    let dir = context(
        &env,
        "status",
        &format!(
            "FROM busybox:latest\n\
             RUN {STATUS} > /root-status\n\
             RUN --security=insecure {STATUS} > /insecure-status\n\
             USER 1234\n\
             RUN {STATUS} > /tmp/user-status\n"
        ),
    );
    let stderr = build_ok(&env, &dir, "status", &["--allow", "security.insecure"]);
    let default = expected(DEFAULT_CAPS, DEFAULT_CAPS, "2");
    assert_eq!(status_map(&cat(&env, "status", "/root-status")), default);
    let all = full_caps();
    assert_ne!(all, DEFAULT_CAPS, "the tests run as full root");
    assert_eq!(
        status_map(&cat(&env, "status", "/insecure-status")),
        expected(&all, &all, "0")
    );
    // A USER gets what execve gives a non-root user: nothing but the bounding set.
    assert_eq!(
        status_map(&cat(&env, "status", "/tmp/user-status")),
        expected("0000000000000000", DEFAULT_CAPS, "2")
    );
    // The output names the step that ran insecure, and only that one.
    let named: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("security.insecure"))
        .collect();
    assert_eq!(named.len(), 1, "{stderr}");
    assert!(
        named[0].contains("all capabilities and no seccomp")
            && named[0].contains("/insecure-status"),
        "{stderr}"
    );
    // `strata run` is confined the same way (as root: the image's USER is 1234).
    let out = env.strata(&["run", "busybox:latest", "--", "sh", "-c", STATUS]);
    assert!(out.status.success());
    assert_eq!(status_map(&String::from_utf8_lossy(&out.stdout)), default);
}

#[test]
fn stapel_steps_are_confined() {
    let env = Env::new();
    let dir = env.project(
        "stapel",
        &format!(
            "project: stapel\nconfigVersion: 1\n---\nimage: app\nfrom: busybox:latest\n\
             shell:\n  install:\n  - \"{STATUS} > /status\"\n"
        ),
    );
    env.build_ok(&dir);
    assert_eq!(
        status_map(&cat(&env, "app", "/status")),
        expected(DEFAULT_CAPS, DEFAULT_CAPS, "2")
    );
}

#[test]
fn insecure_needs_the_entitlement_and_is_in_the_cache_key() {
    let env = Env::new();
    let dir = context(
        &env,
        "insecure",
        "FROM busybox:latest\nRUN echo confined > /mode\n",
    );
    build_ok(&env, &dir, "insecure", &[]);
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox:latest\nRUN --security=insecure echo confined > /mode\n",
    )
    .unwrap();
    // Without the grant: an error at that line, and nothing built.
    let out = build(&env, &dir, "insecure", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("security.insecure is not allowed")
            && stderr.contains("Dockerfile:2")
            && stderr.contains("--allow security.insecure"),
        "{stderr}"
    );
    // With it the same command is another step: not taken from the cache.
    let stderr = build_ok(&env, &dir, "insecure", &["--allow", "security.insecure"]);
    assert_eq!(built_stages(&stderr).len(), 1, "{stderr}");
    assert!(
        stderr.contains("security.insecure: all capabilities"),
        "the step ran: {stderr}"
    );
    // The grant alone changes nothing for confined steps: the first Dockerfile is cached.
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox:latest\nRUN echo confined > /mode\n",
    )
    .unwrap();
    let stderr = build_ok(&env, &dir, "insecure", &["--allow", "security.insecure"]);
    assert!(built_stages(&stderr).is_empty(), "{stderr}");
    assert!(!stderr.contains("security.insecure:"), "{stderr}");
}

/// Compiles the sandbox tests' attack program statically into `dir/probe`.
fn probe(dir: &Path) {
    let source =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../strata-sandbox/tests/sandbox/probe.c");
    let gcc = Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(dir.join("probe"))
        .arg(source)
        .output()
        .expect("gcc runs (install-deps installs gcc and libc6-dev)");
    assert!(
        gcc.status.success(),
        "{}",
        String::from_utf8_lossy(&gcc.stderr)
    );
}

/// Every regular file under `dir` with its size, mode and mtime.
fn listing(dir: &Path) -> Vec<(PathBuf, u64, u32, i64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let m = std::fs::symlink_metadata(&path).unwrap();
            if m.is_dir() {
                stack.push(path.clone());
            }
            out.push((path, m.size(), m.mode(), m.mtime()));
        }
    }
    out.sort();
    out
}

/// The attacks of issue #12: the probe prints what each syscall returned, the shell lines print
/// only if an attack worked. PID 1 is strata's own init (`/proc/self/exe __sandbox-init`, so
/// its `comm` is `exe`): the one strata process the step can see, and it cannot trace it.
const ATTACKS: &str = r#"
set +e
/probe handle /etc/hosts
/probe handle /etc/resolv.conf
/probe handle /cache
/probe syscalls
echo pid 1 is $(cat /proc/1/comm)
/probe ptrace 1
mount -o remount,rw,bind /proc/sys 2>/dev/null && echo remounted /proc/sys
echo strata-attack 2>/dev/null > /proc/sys/kernel/hostname && echo wrote a sysctl
mount -o remount,rw /.strata/toolbox 2>/dev/null && echo remounted the toolbox
mount -o remount,rw,bind /.strata/toolbox 2>/dev/null && echo bind-remounted the toolbox
echo evil 2>/dev/null > /.strata/toolbox/bin/bash && echo replaced the toolbox bash
mount -o remount,rw /sys 2>/dev/null && echo remounted /sys
mknod /disk b $DISK && head -c1 /disk > /dev/null 2>&1 && echo read the host disk
ls -l /disk | cut -c1
echo h 2>/dev/null > /proc/sysrq-trigger && echo wrote sysrq-trigger
mkdir -p /tmp/cg && mount -t cgroup -o memory cgroup /tmp/cg 2>/dev/null && echo mounted cgroup v1
mount -t cgroup2 none /tmp/cg 2>/dev/null && echo mounted cgroup2
test -e /sys/fs/cgroup/release_agent && echo release_agent visible
unshare -m -p -f true 2>/dev/null && echo nested namespaces
for f in /proc/1/fd/0 /proc/1/cwd /proc/1/root /proc/1/exe; do
  readlink $f > /dev/null 2>&1 && echo followed $f of the sandbox init
done
cat /proc/1/environ > /dev/null 2>&1 && echo read the environment of the sandbox init
ls -d /proc/[0-9]* | wc -l | awk '$1 > 6 { print "sees", $1, "processes" }'
cat /proc/mounts /proc/self/mountinfo > /mounts
echo contained
"#;

#[test]
fn escapes_fail_and_the_host_is_untouched() {
    let env = Env::new();
    let canary_dir = tempfile::tempdir().unwrap();
    let canary = canary_dir.path().join("canary");
    std::fs::write(&canary, "host file\n").unwrap();
    let dir = context(
        &env,
        "attack",
        "FROM busybox:latest\nCOPY probe attacks.sh /\nARG DISK\n\
         RUN --mount=type=cache,target=/cache sh /attacks.sh > /result 2>&1\n",
    );
    probe(&dir);
    std::fs::write(dir.join("attacks.sh"), ATTACKS).unwrap();
    // The host's root disk, as `mknod` wants it.
    let dev = std::fs::metadata("/").unwrap().dev();
    let disk = format!("{} {}", rustix::fs::major(dev), rustix::fs::minor(dev));
    // The toolbox exists once a first build ran; record it and the canary.
    build_ok(
        &env,
        &context(&env, "warm", "FROM busybox:latest\nRUN true\n"),
        "warm",
        &[],
    );
    let toolbox = env.store.path().join("toolbox");
    let before = (listing(&toolbox), std::fs::read(&canary).unwrap());

    build_ok(
        &env,
        &dir,
        "attack",
        &["--build-arg", &format!("DISK={disk}")],
    );
    let result = cat(&env, "attack", "/result");
    let expected = "\
handle=EPERM
handle=EPERM
handle=EPERM
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
pid 1 is exe
ptrace=EPERM
b
contained
";
    assert_eq!(result, expected);
    // The device node is in the image, as BuildKit keeps it in the layer.
    assert_eq!(env.run_sh("attack", "ls -l /disk | cut -c1"), "b\n");
    // The mount table names no store path: not the overlay layers, not the toolbox, not
    // the control dir, not the copied hosts/resolv.conf (a cache mount's bind still does).
    let mounts = cat(&env, "attack", "/mounts");
    // Its name, not its path: a bind's root field is relative to its file system's root.
    let store = env
        .store
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    for line in mounts.lines() {
        let hidden = [
            " / ",
            " /.strata/toolbox ",
            " /.strata/run ",
            " /etc/hosts ",
            " /etc/resolv.conf ",
        ];
        if hidden.iter().any(|h| line.contains(h)) {
            assert!(!line.contains(&store), "{line}");
        }
    }
    assert!(mounts.contains("lowerdir+=l/root/0"), "{mounts}");
    let after = (listing(&toolbox), std::fs::read(&canary).unwrap());
    assert_eq!(before, after, "the toolbox and the canary must not change");
}
