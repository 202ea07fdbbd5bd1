//! A stage's file work — git archives and patches, imports, `COPY`, `WORKDIR` — prepared on the
//! host and applied from the strata process on the stage's root (see [`strata_sandbox::files`])
//! into the upper dir of the step that follows, before its container starts; when no command
//! follows, no container starts at all. One implementation, whatever comes next, so a `COPY`
//! gives the same files before a `RUN` as at the end of an image. Staged tars are unpacked by
//! strata's one tar applier, [`strata_layer::apply`] in [`strata_layer::apply::Mode::Files`]
//! (`ADD`'s archives by its [`strata_layer::apply::extract_archive`]).

use std::fs::File;
use std::io;
use std::path::Path;

use anyhow::Context as _;
use rustix::fs::Mode;

/// One piece of file work; tars are staged in the run's control dir.
#[derive(Debug)]
pub enum FileWork {
    /// Unpack the tar `name` over the root, keeping the owners, modes and times recorded in it.
    Unpack(String),
    /// `mkdir -p` of the path.
    MakeDir(String),
    /// Remove these files (links themselves, not their targets); missing ones are fine.
    Remove(Vec<String>),
    /// Remove these directories, deepest first, where they are empty (a git patch that
    /// deleted a directory's last file); non-empty or missing ones stay as they are.
    RemoveEmptyDirs(Vec<String>),
    /// Extract the staged (decompressed) archive `archive` into the directory `into`, which
    /// is its root (`ADD` of an archive).
    Extract {
        /// The staged tar's name.
        archive: String,
        /// The destination directory, absolute, there already.
        into: String,
    },
}

/// Does every item of `work` (each with the index of the step it comes from) on `root`,
/// reading staged tars from `control`; an error names the step whose work failed, if one did
/// (rather than entering or leaving the root).
pub(crate) fn apply(
    work: &[(usize, FileWork)],
    control: &Path,
    root: &strata_sandbox::files::Root,
) -> Result<(), (Option<usize>, anyhow::Error)> {
    if work.is_empty() {
        return Ok(());
    }
    // Host files are opened before entering the root, where their paths do not resolve.
    let mut archives = Vec::new();
    for (step, w) in work {
        if let FileWork::Unpack(name) | FileWork::Extract { archive: name, .. } = w {
            let path = control.join(name);
            let file = File::open(&path)
                .with_context(|| format!("open {}", path.display()))
                .map_err(|e| (Some(*step), e))?;
            archives.push(file);
        }
    }
    strata_sandbox::files::with_root(root, move || apply_inside(work, archives))
        .map_err(|e| (None, e.into()))?
}

fn apply_inside(
    work: &[(usize, FileWork)],
    archives: Vec<File>,
) -> Result<(), (Option<usize>, anyhow::Error)> {
    // Created parents and WORKDIRs get 0755 whatever the umask strata runs with, so layers do
    // not depend on the caller's shell; the thread has its own umask (its own fs context).
    rustix::process::umask(Mode::from_raw_mode(0o022));
    let mut archives = archives.into_iter();
    for (step, w) in work {
        let done = match w {
            FileWork::Unpack(_) => {
                let file = archives.next().expect("one open tar per Unpack");
                // The thread's root is the stage's: resolved in it, links stay in the image.
                strata_layer::apply::apply_tar(
                    file,
                    Path::new("/"),
                    strata_layer::apply::Mode::Files,
                )
                .map(drop)
                .context("unpack the staged tar")
            }
            FileWork::Extract { into, .. } => {
                let file = archives.next().expect("one open archive per Extract");
                strata_layer::apply::extract_archive(file, Path::new(into))
                    .map(drop)
                    .with_context(|| format!("extract the archive into {into}"))
            }
            FileWork::MakeDir(path) => {
                std::fs::create_dir_all(path).with_context(|| format!("mkdir -p {path}"))
            }
            FileWork::Remove(paths) => remove(paths),
            FileWork::RemoveEmptyDirs(dirs) => remove_empty_dirs(dirs),
        };
        done.map_err(|e| (Some(*step), e))?;
    }
    Ok(())
}

fn remove(paths: &[String]) -> anyhow::Result<()> {
    for path in paths {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("remove {path}"));
            }
            _ => {}
        }
    }
    Ok(())
}

fn remove_empty_dirs(dirs: &[String]) -> anyhow::Result<()> {
    let mut dirs: Vec<&String> = dirs.iter().collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    for dir in dirs {
        match std::fs::remove_dir(dir) {
            // Something else lives there (a user stage's file), or a link or file does.
            Err(e)
                if !matches!(
                    e.kind(),
                    io::ErrorKind::NotFound
                        | io::ErrorKind::DirectoryNotEmpty
                        | io::ErrorKind::NotADirectory
                ) =>
            {
                return Err(e).with_context(|| format!("remove the emptied directory {dir}"));
            }
            _ => {}
        }
    }
    Ok(())
}
