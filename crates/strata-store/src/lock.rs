//! Cross-process locks: `locks/<escaped name>.lock`, held with an exclusive `flock(2)`.
//!
//! flock rather than `fcntl` record locks because flock locks belong to the open file
//! description: two threads of one process that open the file separately exclude each other,
//! and closing an unrelated descriptor of the same file does not drop the lock
//! (<https://man7.org/linux/man-pages/man2/flock.2.html>). The kernel releases the lock when the
//! holder dies, however it dies, so there are no stale locks to break.
//!
//! The holder writes who it is into the file (pid, program, since when), so that a waiter can
//! tell the user what it waits for and for how long it has been held (containerd `locks.go`).
//! Lock files are never deleted: deleting a lock file races with a process that has it open and
//! is about to lock it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fsutil::{self, io};
use crate::{Error, LocalStore};

/// Who holds a lock, as written into the lock file.
#[derive(Serialize, Deserialize)]
struct Holder {
    pid: u32,
    program: String,
    since_unix_ms: u64,
}

/// An exclusive lock from [`LocalStore::lock`]; released on drop (or when the process dies).
#[derive(Debug)]
pub struct LockGuard {
    path: PathBuf,
    _file: File,
}

impl LockGuard {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl LocalStore {
    /// Takes the exclusive cross-process lock `locks/<name>.lock` (any name; it is escaped).
    ///
    /// If another process or thread holds it, calls `on_wait` once with a description of the
    /// holder (pid, program and for how long it has been held) and waits until it is free, or
    /// until `cancel` is set: then `Ok(None)`, holding nothing.
    pub fn lock(
        &self,
        name: &str,
        on_wait: &mut dyn FnMut(&str),
        cancel: &AtomicBool,
    ) -> Result<Option<LockGuard>, Error> {
        let stem = fsutil::name_stem("lock name", name)?;
        let path = self.dir("locks").join(format!("{stem}.lock"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("open of lock file", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                on_wait(&describe_holder(&path, name));
                if !wait_for(&file, cancel).map_err(io("flock of lock file", &path))? {
                    return Ok(None);
                }
            }
            Err(TryLockError::Error(e)) => return Err(io("flock of lock file", &path)(e)),
        }
        let holder = Holder {
            pid: std::process::id(),
            program: program_name(),
            since_unix_ms: fsutil::now_unix_millis(),
        };
        let json = serde_json::to_vec(&holder)
            .expect("serializing the lock holder cannot fail because it is plain data");
        file.set_len(0)
            .and_then(|()| file.write_all_at(&json, 0))
            .map_err(io("write of holder info into lock file", &path))?;
        Ok(Some(LockGuard { path, _file: file }))
    }
}

/// How often a waiter tries the lock again and looks at its cancel flag.
const POLL: Duration = Duration::from_millis(50);

/// Waits for the flock of `file`; false when `cancel` was set first. A blocking `flock`
/// cannot be used: it has no timeout, the signal that sets `cancel` may be delivered to any
/// thread, and with `SA_RESTART` (signal-hook's handlers) the kernel restarts the call.
fn wait_for(file: &File, cancel: &AtomicBool) -> io::Result<bool> {
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Ok(false);
        }
        match file.try_lock() {
            Ok(()) => return Ok(true),
            Err(TryLockError::WouldBlock) => std::thread::sleep(POLL),
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
}

fn program_name() -> String {
    std::env::args_os()
        .next()
        .map(|a| {
            Path::new(&a)
                .file_name()
                .unwrap_or(&a)
                .to_string_lossy()
                .into_owned()
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The message for a waiter, from the holder info in the lock file.
fn describe_holder(path: &Path, name: &str) -> String {
    let holder = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Holder>(&b).ok());
    match holder {
        Some(h) => {
            let held_ms = fsutil::now_unix_millis().saturating_sub(h.since_unix_ms);
            format!(
                "waiting for lock `{name}` ({}): held by pid {} ({}) for {:.1}s",
                path.display(),
                h.pid,
                h.program,
                held_ms as f64 / 1000.0
            )
        }
        None => format!(
            "waiting for lock `{name}` ({}): held by a process that has not recorded itself yet",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static NO: AtomicBool = AtomicBool::new(false);
    use std::sync::mpsc;

    #[test]
    fn second_locker_waits_and_is_told_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let first = store
            .lock("image:busybox/latest", &mut |m| panic!("waited: {m}"), &NO)
            .unwrap()
            .unwrap();
        assert!(first.path().starts_with(store.dir("locks")));

        let (tx, rx) = mpsc::channel();
        let s2 = store.clone();
        let waiter = std::thread::spawn(move || {
            let mut msgs = Vec::new();
            let g = s2
                .lock(
                    "image:busybox/latest",
                    &mut |m| msgs.push(m.to_string()),
                    &NO,
                )
                .unwrap()
                .unwrap();
            tx.send(()).unwrap();
            drop(g);
            msgs
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "did not block"
        );
        drop(first);
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let msgs = waiter.join().unwrap();
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        let pid = format!("pid {}", std::process::id());
        assert!(
            msgs[0].contains(&pid) && msgs[0].contains("held by"),
            "{}",
            msgs[0]
        );
    }

    #[test]
    fn different_names_do_not_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let _a = store.lock("a", &mut |m| panic!("{m}"), &NO).unwrap();
        let _b = store.lock("b", &mut |m| panic!("{m}"), &NO).unwrap();
        assert!(store.lock("", &mut |_| {}, &NO).is_err());
    }

    #[test]
    fn a_waiter_gives_up_when_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let _held = store.lock("x", &mut |m| panic!("{m}"), &NO).unwrap();
        let cancel = std::sync::Arc::new(AtomicBool::new(false));
        let (waiting, waits) = mpsc::channel();
        let (done, result) = mpsc::channel();
        let (s2, c2) = (store.clone(), cancel.clone());
        std::thread::spawn(move || {
            let got = s2.lock("x", &mut |_| waiting.send(()).unwrap(), &c2);
            done.send(got.unwrap().is_none()).unwrap();
        });
        // It waits (it said so), then the flag is set: it returns without the lock.
        waits.recv().unwrap();
        cancel.store(true, Ordering::Relaxed);
        let gave_up = result
            .recv_timeout(Duration::from_secs(10))
            .expect("the waiter did not return once cancelled");
        assert!(gave_up, "got a lock that is still held");
    }
}
