//! A stage's file work — git archives and patches, imports, `COPY`, `WORKDIR` — prepared on the
//! host and then either run as script lines at the start of the next command's container, or,
//! when no command follows, applied from the strata process on the stage's root (see
//! [`strata_sandbox::files`]): a `COPY` stage then costs no container start.

use std::fs::File;
use std::io;
use std::path::Path;

use anyhow::Context as _;

use crate::toolbox::{MOUNT_POINT, shell_quote};

/// One piece of file work; tars are staged in the run's control dir.
#[derive(Clone, Debug)]
pub enum FileWork {
    /// Unpack the tar `name` over the root, keeping the owners, modes and times recorded in it.
    Unpack(String),
    /// `mkdir -p` of the path.
    MakeDir(String),
    /// Remove these files (links themselves, not their targets); missing ones are fine.
    Remove(Vec<String>),
    /// Lines only a shell in the container can run.
    Script(String),
}

/// The script lines that do `work` in a container where the control dir is `dir_inside`.
pub(crate) fn script(work: &[FileWork], dir_inside: &str) -> String {
    let mut s = String::new();
    for w in work {
        match w {
            FileWork::Unpack(name) => s.push_str(&format!(
                "{MOUNT_POINT}/bin/tar -xpf {dir_inside}/{name} -C /\n"
            )),
            FileWork::MakeDir(path) => s.push_str(&format!(
                "{MOUNT_POINT}/bin/mkdir -p {}\n",
                shell_quote(path)
            )),
            FileWork::Remove(paths) => {
                let quoted: Vec<String> = paths.iter().map(|p| shell_quote(p)).collect();
                s.push_str(&format!(
                    "{MOUNT_POINT}/bin/rm -f -- {}\n",
                    quoted.join(" ")
                ));
            }
            FileWork::Script(lines) => s.push_str(lines),
        }
    }
    s
}

/// Whether [`apply`] can do all of `work` without a shell.
pub(crate) fn in_process(work: &[FileWork]) -> bool {
    !work.iter().any(|w| matches!(w, FileWork::Script(_)))
}

/// Does `work` (which [`in_process`] accepted) on `root`, reading staged tars from `control`.
pub(crate) fn apply(
    work: &[FileWork],
    control: &Path,
    root: &strata_sandbox::files::Root,
) -> anyhow::Result<()> {
    // Host files are opened before entering the root, where their paths do not resolve.
    let mut archives = Vec::new();
    for w in work {
        if let FileWork::Unpack(name) = w {
            let path = control.join(name);
            archives.push(File::open(&path).with_context(|| format!("open {}", path.display()))?);
        }
    }
    strata_sandbox::files::with_root(root, move || apply_inside(work, archives))?
}

fn apply_inside(work: &[FileWork], archives: Vec<File>) -> anyhow::Result<()> {
    let mut archives = archives.into_iter();
    for w in work {
        match w {
            FileWork::Unpack(_) => {
                let file = archives.next().expect("one open archive per Unpack");
                let mut archive = tar::Archive::new(io::BufReader::with_capacity(1 << 20, file));
                // As `tar -xp` run as root: owners, modes (setuid included) and times as
                // recorded, existing files replaced.
                archive.set_preserve_permissions(true);
                archive.set_preserve_ownerships(true);
                archive.set_preserve_mtime(true);
                archive.set_overwrite(true);
                archive.unpack("/")?;
            }
            FileWork::MakeDir(path) => {
                std::fs::create_dir_all(path).with_context(|| format!("mkdir -p {path}"))?
            }
            FileWork::Remove(paths) => {
                for path in paths {
                    match std::fs::remove_file(path) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => {
                            return Err(e).with_context(|| format!("remove {path}"));
                        }
                        _ => {}
                    }
                }
            }
            FileWork::Script(_) => unreachable!("in_process rejected work with script lines"),
        }
    }
    Ok(())
}
