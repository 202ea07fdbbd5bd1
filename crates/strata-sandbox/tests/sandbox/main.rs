//! Integration tests on the real kernel. They need root (CI runs them as root) and fail with
//! a message saying so otherwise. Modules mirror `src/`.

mod process;
mod pty;
mod rootfs;
mod security;

use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use strata_sandbox::{
    Container, ContainerSpec, Error, ExitStatus, Mount, MountKind, Network, ProcessSpec, Sandbox,
    Security, Stdio,
};

pub const PATH: &str = "PATH=/usr/local/bin:/usr/bin:/bin";

/// A busybox root file system in a temp dir, plus upper/work/scratch dirs.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub lower: PathBuf,
}

pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the strata-sandbox integration tests need root (namespaces, mounts); run them as root"
    );
}

impl Fixture {
    pub fn busybox() -> Fixture {
        require_root();
        let tmp = tempfile::tempdir().expect("tempdir");
        let lower = tmp.path().join("lower");
        let bin = lower.join("bin");
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
        let etc = lower.join("etc");
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
        fs::write(etc.join("resolv.conf"), "nameserver 192.0.2.1\n").expect("resolv");
        for dir in ["upper", "work", "scratch"] {
            fs::create_dir(tmp.path().join(dir)).expect("mkdir");
        }
        Fixture { tmp, lower }
    }

    pub fn upper(&self) -> PathBuf {
        self.tmp.path().join("upper")
    }

    pub fn spec(&self, args: &[&str]) -> ContainerSpec {
        ContainerSpec {
            lowers: vec![self.lower.clone()],
            upper: self.upper(),
            work: self.tmp.path().join("work"),
            scratch: self.tmp.path().join("scratch"),
            process: ProcessSpec {
                args: args.iter().map(|a| a.to_string()).collect(),
                env: vec![PATH.into(), "HOME=/root".into()],
                cwd: "/".into(),
                user: "0:0".into(),
                terminal: false,
            },
            hostname: "sbx-test".into(),
            mounts: vec![],
            network: Network::Host,
            security: Security::Sandbox,
        }
    }

    /// Names of the entries of the upper dir (recursively, relative).
    pub fn upper_entries(&self) -> Vec<String> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for entry in fs::read_dir(dir).expect("read_dir") {
                let path = entry.expect("entry").path();
                let rel = path.strip_prefix(root).expect("prefix");
                out.push(rel.display().to_string());
                if path.symlink_metadata().expect("stat").is_dir() {
                    walk(root, &path, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.upper(), &self.upper(), &mut out);
        out.sort();
        out
    }

    /// Asserts the host mount table has no trace of this fixture.
    pub fn assert_no_host_mounts(&self) {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let needle = self.tmp.path().to_string_lossy().to_string();
        for line in mountinfo.lines() {
            assert!(!line.contains(&needle), "leaked mount: {line}");
        }
    }
}

pub fn sandbox() -> Sandbox {
    Sandbox::new(vec![env!("CARGO_BIN_EXE_strata-sandbox-init").into()])
}

/// Runs with piped output; returns status and merged output, and checks the host mounts.
pub fn run(fx: &Fixture, spec: &ContainerSpec) -> Result<(ExitStatus, String), Error> {
    let result = (|| {
        let mut container: Container = sandbox().spawn(spec, Stdio::Piped)?;
        let mut output = String::new();
        container
            .take_output()
            .expect("piped output")
            .read_to_string(&mut output)
            .expect("read output");
        let status = container.wait()?;
        Ok((status, output))
    })();
    fx.assert_no_host_mounts();
    result
}

/// Runs and expects success; returns the output.
pub fn run_ok(fx: &Fixture, spec: &ContainerSpec) -> String {
    let (status, output) = run(fx, spec).expect("container runs");
    assert_eq!(status, ExitStatus::Exited(0), "output: {output}");
    output
}

pub fn sh(fx: &Fixture, script: &str) -> ContainerSpec {
    fx.spec(&["sh", "-c", script])
}

pub fn bind(target: &str, source: &Path, readonly: bool) -> Mount {
    Mount {
        target: target.into(),
        source: source.to_path_buf(),
        kind: MountKind::Bind { readonly },
        beneath: None,
    }
}

pub fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}
