//! A stage's file work — git archives and patches, imports, `COPY`, `WORKDIR` — prepared on the
//! host and applied from the strata process on the stage's root (see [`strata_sandbox::files`])
//! into the upper dir of the step that follows, before its container starts; when no command
//! follows, no container starts at all. One implementation, whatever comes next, so a `COPY`
//! gives the same files before a `RUN` as at the end of an image.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, bail};
use rustix::fs::{AtFlags, CWD, FileType, Gid, Mode, Timespec, Timestamps, Uid};
use tar::EntryType;

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
    /// Lines only a shell in the container can run (`ADD`'s compressed archives, which the
    /// toolbox's tar decompresses); they run after the rest of the work, at the start of the
    /// step's container.
    Script(String),
}

/// The script lines of `work` (its [`FileWork::Script`] items) for the container.
pub(crate) fn script<'a>(work: impl IntoIterator<Item = &'a FileWork>) -> String {
    work.into_iter()
        .filter_map(|w| match w {
            FileWork::Script(lines) => Some(lines.as_str()),
            _ => None,
        })
        .collect()
}

/// Does every item of `work` (each with the index of the step it comes from) but the script
/// lines on `root`, reading staged tars from `control`; an error names the step whose work
/// failed, if one did (rather than entering or leaving the root).
pub(crate) fn apply(
    work: &[(usize, FileWork)],
    control: &Path,
    root: &strata_sandbox::files::Root,
) -> Result<(), (Option<usize>, anyhow::Error)> {
    if work.iter().all(|(_, w)| matches!(w, FileWork::Script(_))) {
        return Ok(());
    }
    // Script lines run after this work, in the container; only an `ADD` of an archive makes
    // them, as a stage of its own, so nothing in-process ever has to follow them.
    debug_assert!(
        work.iter()
            .skip_while(|(_, w)| !matches!(w, FileWork::Script(_)))
            .all(|(_, w)| matches!(w, FileWork::Script(_))),
        "file work after script lines would run before them"
    );
    // Host files are opened before entering the root, where their paths do not resolve.
    let mut archives = Vec::new();
    for (step, w) in work {
        if let FileWork::Unpack(name) = w {
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
                let file = archives.next().expect("one open archive per Unpack");
                unpack(io::BufReader::with_capacity(1 << 20, file))
            }
            FileWork::MakeDir(path) => {
                std::fs::create_dir_all(path).with_context(|| format!("mkdir -p {path}"))
            }
            FileWork::Remove(paths) => remove(paths),
            FileWork::RemoveEmptyDirs(dirs) => remove_empty_dirs(dirs),
            FileWork::Script(_) => Ok(()),
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

/// Unpacks a tar over `/` (the stage's root) as `tar -xp` run as root does: owners, modes
/// (setuid included) and modification times as recorded, existing files and links replaced,
/// missing parents created. An existing directory — also through a symlink, as `/bin` is in a
/// merged-/usr image — takes the entry's owner and mode and keeps its content; a directory
/// where a file or link entry goes is an error. Directory times are set after their content,
/// so they are as recorded too. Extended attributes are not applied.
fn unpack(reader: impl Read) -> anyhow::Result<()> {
    let mut archive = strata_layer::bounded::archive(reader);
    let mut dir_times = Vec::new();
    for entry in strata_layer::bounded::entries(&mut archive).context("read the staged tar")? {
        let mut entry = entry.context("read the staged tar")?;
        let path = root_path(&entry.path().context("read an entry path")?)?;
        let header = entry.header();
        let kind = header.entry_type();
        let uid = header.uid()? as u32;
        let gid = header.gid()? as u32;
        let mode = header.mode()? & 0o7777;
        let mtime = header.mtime()? as i64;
        let chown = |path: &Path, follow: bool| -> anyhow::Result<()> {
            let flags = if follow {
                AtFlags::empty()
            } else {
                AtFlags::SYMLINK_NOFOLLOW
            };
            rustix::fs::chownat(
                CWD,
                path,
                Some(Uid::from_raw(uid)),
                Some(Gid::from_raw(gid)),
                flags,
            )
            .with_context(|| format!("chown {}", path.display()))
        };
        let chmod = |path: &Path| -> anyhow::Result<()> {
            rustix::fs::chmod(path, Mode::from_raw_mode(mode))
                .with_context(|| format!("chmod {}", path.display()))
        };
        match kind {
            EntryType::Directory => {
                create_parents(&path)?;
                match std::fs::create_dir(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => bail!(
                        "cannot create directory {}: the image has a file, or a link to no directory, there",
                        path.display()
                    ),
                    Err(e) => {
                        return Err(e)
                            .with_context(|| format!("create directory {}", path.display()));
                    }
                }
                chown(&path, true)?;
                chmod(&path)?;
                dir_times.push((path, mtime));
                continue;
            }
            EntryType::Regular | EntryType::Continuous => {
                make_room(&path)?;
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .with_context(|| format!("create {}", path.display()))?;
                io::copy(&mut entry, &mut file)
                    .with_context(|| format!("write {}", path.display()))?;
                chown(&path, false)?;
                chmod(&path)?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()?
                    .with_context(|| format!("symlink {} has no target", path.display()))?;
                make_room(&path)?;
                std::os::unix::fs::symlink(&target, &path)
                    .with_context(|| format!("create symlink {}", path.display()))?;
                chown(&path, false)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name()?
                    .with_context(|| format!("hard link {} has no target", path.display()))?;
                let target = root_path(&target)?;
                make_room(&path)?;
                std::fs::hard_link(&target, &path)
                    .with_context(|| format!("link {} to {}", path.display(), target.display()))?;
                continue;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let file_type = match kind {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let dev = rustix::fs::makedev(
                    header.device_major()?.unwrap_or(0),
                    header.device_minor()?.unwrap_or(0),
                );
                make_room(&path)?;
                rustix::fs::mknodat(CWD, &path, file_type, Mode::from_raw_mode(mode), dev)
                    .with_context(|| format!("create {}", path.display()))?;
                chown(&path, false)?;
                chmod(&path)?;
            }
            // Long names and PAX records are folded into the entries they describe.
            EntryType::GNULongName
            | EntryType::GNULongLink
            | EntryType::XHeader
            | EntryType::XGlobalHeader => continue,
            other => bail!("{}: unsupported tar entry type {other:?}", path.display()),
        }
        set_mtime(&path, mtime, false)?;
    }
    // Through a symlink too: the directory is what the entry describes (as chown and chmod).
    for (path, mtime) in dir_times.iter().rev() {
        set_mtime(path, *mtime, true)?;
    }
    Ok(())
}

/// `/` joined with a tar entry path; `..` is refused (our tars never hold it).
fn root_path(entry: &Path) -> anyhow::Result<PathBuf> {
    let mut path = PathBuf::from("/");
    for component in entry.components() {
        match component {
            Component::Normal(name) => path.push(name),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                bail!("tar entry {} leaves the root", entry.display())
            }
        }
    }
    Ok(path)
}

/// Creates the missing parents of `path` and removes what is at `path` unless it is a
/// directory (which a non-directory entry cannot replace).
fn make_room(path: &Path) -> anyhow::Result<()> {
    create_parents(path)?;
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("lstat {}", path.display())),
        // An empty directory is replaced, as tar does (a git change that turns `docs/` into a
        // file removes the files first); one with content is not.
        Ok(meta) if meta.is_dir() => std::fs::remove_dir(path).with_context(|| {
            format!(
                "{} is a directory with content; a file or link cannot replace it",
                path.display()
            )
        }),
        Ok(_) => std::fs::remove_file(path).with_context(|| format!("replace {}", path.display())),
    }
}

/// `mkdir -p` of the parent of `path`; a file in the way is named.
fn create_parents(path: &Path) -> anyhow::Result<()> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    let Err(e) = std::fs::create_dir_all(parent) else {
        return Ok(());
    };
    if let Some(file) = parent
        .ancestors()
        .find(|a| a.symlink_metadata().is_ok() && !a.is_dir())
    {
        bail!(
            "cannot create {}: {} is not a directory",
            path.display(),
            file.display()
        );
    }
    Err(e).with_context(|| format!("create directory {}", parent.display()))
}

/// Sets the access and modification times of `path`, following a final symlink if `follow`.
fn set_mtime(path: &Path, mtime: i64, follow: bool) -> anyhow::Result<()> {
    let time = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: time,
        last_modification: time,
    };
    let flags = if follow {
        AtFlags::empty()
    } else {
        AtFlags::SYMLINK_NOFOLLOW
    };
    rustix::fs::utimensat(CWD, path, &times, flags)
        .with_context(|| format!("set the times of {}", path.display()))
}
