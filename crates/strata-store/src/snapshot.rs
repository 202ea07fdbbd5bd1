//! Snapshots (`snapshots/<hex>/`, unpacked directories keyed by a digest) and scratch
//! directories (`tmp/<purpose>-<random>/`) of running builds.
//!
//! A snapshot is built in a scratch directory and published with one `rename(2)`, so a reader
//! either sees the complete tree or nothing. Before the rename the whole file system is synced
//! with one `syncfs(2)`, which is far cheaper than fsyncing every file of a large tree and makes
//! sure a power loss cannot leave a published snapshot with empty files.
//!
//! A scratch directory `tmp/X/` is owned through an flock on `tmp/X.lock`, taken before the
//! directory exists and released after it is gone (or marked kept with `tmp/X.kept`), so
//! [`LocalStore::collect_garbage`] can tell a dead build's leftovers from a live one's.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, RenameFlags};
use strata_digest::Digest;

use crate::fsutil::{self, io};
use crate::{Error, Held, LocalStore, gc};

impl LocalStore {
    /// Where a snapshot lives (whether or not it exists).
    pub fn snapshot_path(&self, id: &Digest) -> PathBuf {
        self.root.join("snapshots").join(id.hex())
    }

    /// Whether the snapshot exists.
    pub fn has_snapshot(&self, id: &Digest) -> bool {
        fs::symlink_metadata(self.snapshot_path(id)).is_ok_and(|m| m.is_dir())
    }

    /// Atomically moves a fully written directory (which must be inside this store's `tmp/`, so
    /// on the same file system) to `snapshots/<hex>` and returns the new path. If the snapshot
    /// already exists, `dir` is deleted and that counts as success.
    ///
    /// Syncs the file system first (see the module docs), so call it once per finished tree,
    /// and the rename after.
    pub fn commit_snapshot(&self, dir: &Path, id: &Digest) -> Result<PathBuf, Error> {
        self.move_snapshot(dir, id, true)
    }

    /// [`LocalStore::commit_snapshot`] for a caller that has just synced the file system
    /// (every file of `dir` written before that [`LocalStore::sync`]) and syncs it again before
    /// anything that names the snapshot is published (a stage record): no sync here, since on
    /// a virtual disk each one is a device flush, and a build step's commit already pays two.
    pub fn publish_synced_snapshot(&self, dir: &Path, id: &Digest) -> Result<PathBuf, Error> {
        self.move_snapshot(dir, id, false)
    }

    fn move_snapshot(&self, dir: &Path, id: &Digest, sync: bool) -> Result<PathBuf, Error> {
        let tmp = self.dir("tmp");
        let real = dir
            .canonicalize()
            .map_err(io("resolution of snapshot source", dir))?;
        if !real.starts_with(&tmp) || real == tmp || !real.is_dir() {
            return Err(Error::NotInTmp {
                path: dir.to_path_buf(),
                tmp,
            });
        }
        let target = self.snapshot_path(id);
        if self.protect(&[Held::Snapshot(*id)])?.is_empty() {
            fsutil::remove_tree(&real)?;
            return Ok(target);
        }
        if sync {
            self.sync()?;
        }
        // Held (just above) before it becomes visible, so gc leaves it whenever it runs.
        // RENAME_NOREPLACE, so an existing (even empty) snapshot is never replaced
        // (https://man7.org/linux/man-pages/man2/rename.2.html); plain rename where the file
        // system lacks it, which still refuses a non-empty target.
        let renamed =
            match rustix::fs::renameat_with(CWD, &real, CWD, &target, RenameFlags::NOREPLACE) {
                Err(rustix::io::Errno::INVAL) => fs::rename(&real, &target),
                other => other.map_err(io::Error::from),
            };
        match renamed {
            Ok(()) => {
                if sync {
                    fsutil::fsync_dir(&self.dir("snapshots"))?;
                }
                Ok(target)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty
                ) =>
            {
                fsutil::remove_tree(&real)?;
                Ok(target)
            }
            Err(e) => Err(io("rename into snapshots/ of directory", &real)(e)),
        }
    }

    /// A new scratch directory `tmp/<purpose>-<random>/`, held by this process and removed
    /// recursively when the [`Scratch`] drops. `purpose` is 1 to 64 of `[A-Za-z0-9_-]`.
    pub fn scratch(&self, purpose: &str) -> Result<Scratch, Error> {
        if purpose.is_empty()
            || purpose.len() > 64
            || !purpose
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(Error::InvalidName {
                kind: "scratch purpose",
                name: purpose.into(),
                reason: "use 1 to 64 ASCII letters, digits, `_` or `-`",
            });
        }
        let tmp = self.dir("tmp");
        // Keep the collector from listing tmp/ between our lock file and our directory.
        let _creating = gc::creation_guard(self)?;
        let (name, lock_path, lock) = loop {
            let name = format!("{purpose}-{}", fsutil::random_suffix());
            let lock_path = tmp.join(format!("{name}.lock"));
            match File::create_new(&lock_path) {
                Ok(f) => break (name, lock_path, f),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io("creation of scratch lock file", &lock_path)(e)),
            }
        };
        let path = tmp.join(&name);
        let made = lock
            .lock()
            .map_err(io("flock of scratch lock file", &lock_path))
            .and_then(|()| fs::create_dir(&path).map_err(io("creation of scratch dir", &path)));
        if let Err(e) = made {
            let _ = fs::remove_file(&lock_path);
            return Err(e);
        }
        Ok(Scratch {
            path,
            lock_path,
            _lock: lock,
            keep: false,
        })
    }
}

/// A scratch directory of a running build (see [`LocalStore::scratch`]).
///
/// Removed recursively on drop, coping with overlay work dirs (mode 000) and read-only trees,
/// never following symlinks. After [`Scratch::keep`] it stays on disk, marked `tmp/X.kept`,
/// and [`LocalStore::collect_garbage`] leaves it alone (see [`crate::GcOptions::kept_scratch`]).
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
    lock_path: PathBuf,
    _lock: File,
    keep: bool,
}

impl Scratch {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leave the directory on disk when this drops (for a debugger, say).
    pub fn keep(&mut self) {
        self.keep = true;
    }

    /// Releases the directory, keeping it on disk, and returns its path.
    pub fn into_path(mut self) -> PathBuf {
        self.keep = true;
        self.path.clone()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Failures here leave an unlocked entry, which collect_garbage removes; the lock is
        // released last (when `_lock` drops), after the entry is gone or marked kept.
        if self.keep {
            let mut marker = self.path.clone().into_os_string();
            marker.push(".kept");
            let _ = File::create(marker);
        } else {
            let _ = fsutil::remove_tree(&self.path);
        }
        let _ = fs::remove_file(&self.lock_path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, LocalStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn scratch_is_removed_on_drop_even_with_locked_dirs() {
        use std::os::unix::fs::PermissionsExt;
        let (_d, store) = store();
        let s = store.scratch("build").unwrap();
        let p = s.path().to_path_buf();
        assert!(
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("build-")
        );
        fs::create_dir_all(p.join("work/work")).unwrap();
        fs::set_permissions(p.join("work/work"), fs::Permissions::from_mode(0o000)).unwrap();
        fs::set_permissions(p.join("work"), fs::Permissions::from_mode(0o555)).unwrap();
        drop(s);
        assert!(!p.exists());
        assert_eq!(fs::read_dir(store.dir("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn kept_scratch_stays() {
        let (_d, store) = store();
        let p = store.scratch("debug").unwrap().into_path();
        assert!(p.is_dir());
        let mut marker = p.clone().into_os_string();
        marker.push(".kept");
        assert!(Path::new(&marker).exists());
    }

    #[test]
    fn bad_purposes() {
        let (_d, store) = store();
        for p in ["", "a/b", "x.lock", &"a".repeat(65)] {
            assert!(
                matches!(store.scratch(p), Err(Error::InvalidName { .. })),
                "{p}"
            );
        }
    }

    #[test]
    fn commit_snapshot_moves_and_dedups() {
        let (_d, store) = store();
        let id = Digest::of(b"diff");
        assert!(!store.has_snapshot(&id));
        let s = store.scratch("snap").unwrap();
        let tree = s.path().join("tree");
        fs::create_dir_all(tree.join("etc")).unwrap();
        fs::write(tree.join("etc/hosts"), b"x").unwrap();
        let at = store.commit_snapshot(&tree, &id).unwrap();
        assert_eq!(at, store.snapshot_path(&id));
        assert!(store.has_snapshot(&id) && at.join("etc/hosts").is_file() && !tree.exists());

        let tree2 = s.path().join("tree2");
        fs::create_dir_all(&tree2).unwrap();
        fs::write(tree2.join("other"), b"y").unwrap();
        assert_eq!(store.commit_snapshot(&tree2, &id).unwrap(), at);
        assert!(!tree2.exists() && !at.join("other").exists());
    }

    #[test]
    fn commit_snapshot_refuses_outside_tmp() {
        let (d, store) = store();
        let outside = d.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let err = store
            .commit_snapshot(&outside, &Digest::of(b"x"))
            .unwrap_err();
        assert!(matches!(err, Error::NotInTmp { .. }), "{err}");
        let err = store
            .commit_snapshot(&store.dir("tmp"), &Digest::of(b"x"))
            .unwrap_err();
        assert!(matches!(err, Error::NotInTmp { .. }), "{err}");
    }
}
