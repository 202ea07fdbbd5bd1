//! The toolbox: a static bash and static core utilities mounted read-only at
//! `/.strata/toolbox` in every container, so stage scripts run even in images without a shell.
//!
//! It is assembled once per store from the host's `bash-static` and `busybox-static` binaries
//! (or taken as is from `STRATA_TOOLBOX=DIR`, a directory with `bin/bash`), and keyed by the
//! identity of those binaries so an upgrade of either yields a fresh toolbox.

use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use strata_digest::Hasher;
use strata_store::LocalStore;

/// Where the toolbox appears inside containers.
pub const MOUNT_POINT: &str = "/.strata/toolbox";
/// The bash that runs stage scripts, inside containers.
pub const BASH: &str = "/.strata/toolbox/bin/bash";

/// `s` as one single-quoted word for the toolbox bash.
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

const BASH_CANDIDATES: &[&str] = &["/usr/bin/bash-static", "/bin/bash-static"];
const BUSYBOX_CANDIDATES: &[&str] = &["/usr/bin/busybox", "/bin/busybox"];

/// The toolbox directory to mount, creating it in the store on first use.
pub fn ensure(store: &LocalStore) -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("STRATA_TOOLBOX") {
        let dir = PathBuf::from(dir);
        if !dir.join("bin/bash").exists() {
            bail!("STRATA_TOOLBOX={} has no bin/bash", dir.display());
        }
        return Ok(dir);
    }
    let bash = find(BASH_CANDIDATES, "bash-static")?;
    let busybox = find(BUSYBOX_CANDIDATES, "busybox-static")?;
    let mut key = Hasher::new();
    for path in [&bash, &busybox] {
        let m = fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
        key.update(
            format!(
                "{}:{}:{}:{}:{};",
                path.display(),
                m.dev(),
                m.ino(),
                m.size(),
                m.mtime()
            )
            .as_bytes(),
        );
    }
    let dir = store.root().join("toolbox").join(key.finish().short(16));
    if dir.join("bin/bash").exists() {
        return Ok(dir);
    }
    let scratch = store.scratch("toolbox")?;
    let staged = scratch.path().join("toolbox");
    let bin = staged.join("bin");
    fs::create_dir_all(&bin).with_context(|| format!("create {}", bin.display()))?;
    for (src, name) in [(&bash, "bash"), (&busybox, "busybox")] {
        if !is_static_elf(src)? {
            bail!(
                "{} is dynamically linked, so it cannot run inside images; install the static build \
                 (apt-get install bash-static busybox-static)",
                src.display()
            );
        }
        fs::copy(src, bin.join(name))
            .with_context(|| format!("copy {} into the toolbox", src.display()))?;
    }
    let list = Command::new(&busybox)
        .arg("--list")
        .output()
        .context("run busybox --list")?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet.contains('/') || bin.join(applet).exists() {
            continue;
        }
        symlink("busybox", bin.join(applet))
            .with_context(|| format!("link toolbox applet {applet}"))?;
    }
    fs::create_dir_all(
        dir.parent()
            .expect("the toolbox dir has a parent because it is under the store root"),
    )?;
    match fs::rename(&staged, &dir) {
        Ok(()) => Ok(dir),
        // Another strata process assembled the same toolbox first.
        Err(_) if dir.join("bin/bash").exists() => Ok(dir),
        Err(e) => Err(e).with_context(|| format!("move the toolbox into {}", dir.display())),
    }
}

fn find(candidates: &[&str], package: &str) -> anyhow::Result<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.exists()).with_context(|| {
        format!("the toolbox needs {package} (looked for {}); install it with apt-get install {package}", candidates.join(", "))
    })
}

/// True when an ELF file has no program interpreter (`PT_INTERP`), i.e. runs without a loader.
fn is_static_elf(path: &Path) -> anyhow::Result<bool> {
    let bytes = fs::read(path).with_context(|| format!("read {}", path.display()))?;
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 {
        bail!("{} is not a 64-bit ELF executable", path.display());
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let u64_at =
        |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().expect("8 bytes")) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        if at + 4 > bytes.len() {
            break;
        }
        const PT_INTERP: u32 = 3;
        if u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_static_from_dynamic() {
        assert!(!is_static_elf(Path::new("/bin/ls")).unwrap());
        let bb = BUSYBOX_CANDIDATES
            .iter()
            .find(|p| Path::new(p).exists())
            .expect("busybox-static is installed by scripts/setup.sh");
        assert!(is_static_elf(Path::new(bb)).unwrap());
    }
}
