//! The debugger's own directories, inside the scratch dir the caller hands over.
//!
//! ```text
//! scratch/
//!   broken/{upper,work}  the session's changes on top of the failed state (shell, exec, rerun)
//!   base/{upper,work}    the session's changes on top of the base state (`shell --base`)
//!   tool/{upper,work}    the debugger image's own root changes (`--debugger-image`)
//!   base-tool/{upper,work}  the same for its shells on the base state
//!   fresh/{upper,work}   `rerun --base`, `rollback`: created for one run, removed after it
//!   rolled/upper         the result of the last `rollback` (fresh/ moved here): the failed
//!                        state's upper from then on, only ever a lower
//!   run/main/            the sandbox's private dir (skeleton, root mountpoint)
//!   run/pN/              the same for process N (`ps`), which runs beside the others
//! ```
//!
//! Every upper has its own work dir next to it, so both are on the same file system and no
//! work dir is ever shared by two uppers. The session never mounts an upper twice at once
//! (a process left running holds its uppers; see `Session`). [`Scratch`] removes everything it created when dropped; the scratch
//! dir itself belongs to the caller and stays.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What can go wrong with the debugger's directories.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done, e.g. `"empty session upper dir"`.
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The scratch dir handed over is unusable.
    #[error("scratch dir {0} does not exist; the caller creates it before the session")]
    Missing(PathBuf),
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// An overlay upper dir with its work dir.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    /// The upper dir.
    pub upper: PathBuf,
    /// Its work dir (same file system).
    pub work: PathBuf,
}

/// Which session upper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Changes on top of the failed state.
    Broken,
    /// Changes on top of the base state.
    Base,
    /// The debugger image's root changes.
    Tool,
    /// The debugger image's root changes in its shells on the base state.
    BaseTool,
    /// A one-off fresh upper (`rerun --base`).
    Fresh,
}

impl Slot {
    fn dir(self) -> &'static str {
        match self {
            Slot::Broken => "broken",
            Slot::Base => "base",
            Slot::Tool => "tool",
            Slot::BaseTool => "base-tool",
            Slot::Fresh => "fresh",
        }
    }
}

/// The session's directories; see the module docs.
#[derive(Debug)]
pub struct Scratch {
    root: PathBuf,
}

impl Scratch {
    /// Takes over the existing dir `root` (made absolute: the sandbox needs absolute paths).
    pub fn new(root: &Path) -> Result<Scratch, Error> {
        let root = std::path::absolute(root).map_err(io_err("resolve scratch dir", root))?;
        if !root.is_dir() {
            return Err(Error::Missing(root));
        }
        Ok(Scratch { root })
    }

    /// The sandbox's private dir, created if needed.
    pub fn container(&self) -> Result<PathBuf, Error> {
        self.run_dir("main")
    }

    /// The sandbox's private dir of process `id`, created if needed.
    pub fn process_dir(&self, id: usize) -> Result<PathBuf, Error> {
        self.run_dir(&format!("p{id}"))
    }

    fn run_dir(&self, name: &str) -> Result<PathBuf, Error> {
        let dir = self.root.join("run").join(name);
        fs::create_dir_all(&dir).map_err(io_err("create sandbox scratch dir", &dir))?;
        Ok(dir)
    }

    /// Keeps the [`Slot::Fresh`] upper as `rolled/upper` (replacing the one kept before) and
    /// returns its path; the fresh slot starts empty again.
    pub fn keep_fresh(&self) -> Result<PathBuf, Error> {
        let rolled = self.root.join("rolled");
        remove(&rolled)?;
        let fresh = self.root.join(Slot::Fresh.dir());
        fs::rename(&fresh, &rolled).map_err(io_err("keep the rollback's upper dir", &fresh))?;
        Ok(rolled.join("upper"))
    }

    /// The upper/work pair of `slot`, created (empty) if needed.
    pub fn pair(&self, slot: Slot) -> Result<Pair, Error> {
        let base = self.root.join(slot.dir());
        let pair = Pair {
            upper: base.join("upper"),
            work: base.join("work"),
        };
        for dir in [&pair.upper, &pair.work] {
            fs::create_dir_all(dir).map_err(io_err("create session dir", dir))?;
        }
        Ok(pair)
    }

    /// Removes the dirs of `slot` (its changes are gone; the next [`Scratch::pair`] starts
    /// empty).
    pub fn drop_slot(&self, slot: Slot) -> Result<(), Error> {
        remove(&self.root.join(slot.dir()))
    }

    /// Removes everything this session created.
    pub fn clear(&self) -> Result<(), Error> {
        let entries = fs::read_dir(&self.root).map_err(io_err("list scratch dir", &self.root))?;
        for entry in entries {
            let entry = entry.map_err(io_err("list scratch dir", &self.root))?;
            remove(&entry.path())?;
        }
        Ok(())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Nothing is mounted any more (every container is waited for), so this only fails
        // on a broken file system; the caller's own cleanup of the dir will say so.
        let _ = self.clear();
    }
}

fn remove(path: &Path) -> Result<(), Error> {
    let meta = match path.symlink_metadata() {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("stat", path)(e)),
    };
    let result = if meta.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove session dir", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_separate_and_dropping_empties_them() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let scratch = Scratch::new(tmp.path()).expect("scratch");
        let broken = scratch.pair(Slot::Broken).expect("broken");
        let base = scratch.pair(Slot::Base).expect("base");
        assert_ne!(broken.upper, base.upper);
        assert_eq!(broken.upper.parent(), broken.work.parent());
        fs::write(broken.upper.join("f"), "x").expect("write");
        scratch.drop_slot(Slot::Broken).expect("drop");
        let again = scratch.pair(Slot::Broken).expect("again");
        assert_eq!(fs::read_dir(&again.upper).expect("list").count(), 0);
        assert!(base.upper.is_dir(), "other slots stay");
        scratch.container().expect("run dir");
        let fresh = scratch.pair(Slot::Fresh).expect("fresh");
        fs::write(fresh.upper.join("made"), "x").expect("write");
        let kept = scratch.keep_fresh().expect("keep");
        assert!(kept.join("made").is_file());
        let again = scratch.pair(Slot::Fresh).expect("fresh again");
        assert_eq!(fs::read_dir(&again.upper).expect("list").count(), 0);
        scratch.keep_fresh().expect("keep again");
        assert_eq!(fs::read_dir(&kept).expect("list").count(), 0, "replaced");
        drop(scratch);
        assert_eq!(fs::read_dir(tmp.path()).expect("list").count(), 0);
    }

    #[test]
    fn missing_scratch_is_an_error() {
        let err = Scratch::new(Path::new("/nonexistent/strata-debug")).expect_err("missing");
        assert!(err.to_string().contains("caller creates it"), "{err}");
    }
}
