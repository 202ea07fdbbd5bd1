//! Helpers: a fresh store, and child processes running this test binary's `support::child`
//! in a role, talking over stdout lines prefixed with `@@ `.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use strata_store::{Digest, LocalStore, StageRecord, Store};

pub fn store() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(&dir.path().join("store")).unwrap();
    (dir, store)
}

/// The record children and threads race to publish.
pub fn record(i: usize, writer: &str) -> StageRecord {
    StageRecord {
        digest: Digest::of(format!("race {i}").as_bytes()),
        parent: None,
        manifest: Digest::of(b"manifest"),
        config: Digest::of(b"config"),
        layers: vec![],
        inputs: vec![],
        image: "app".into(),
        stage: format!("stage {i}"),
        created_unix: 0,
        build_millis: 0,
        meta: BTreeMap::from([("writer".to_string(), writer.to_string())]),
    }
}

/// A child process, killed (SIGKILL) when dropped.
pub struct ChildProc {
    pub child: Child,
    out: BufReader<ChildStdout>,
}

impl ChildProc {
    pub fn spawn(role: &str, root: &Path, go: Option<&Path>) -> ChildProc {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "support::child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("STRATA_STORE_CHILD", role)
        .env("STRATA_STORE_ROOT", root)
        .stdout(Stdio::piped())
        .stdin(Stdio::null());
        if let Some(go) = go {
            cmd.env("STRATA_STORE_GO", go);
        }
        let mut child = cmd.spawn().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        ChildProc { child, out }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The rest of the next `@@ <key> ` line.
    pub fn expect(&mut self, key: &str) -> String {
        let prefix = format!("@@ {key}");
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.out.read_line(&mut line).unwrap();
            assert!(n > 0, "child exited before printing `{prefix}`");
            // libtest may have printed `test support::child ... ` on the same line.
            if let Some(at) = line.find(&prefix) {
                return line[at + prefix.len()..].trim().to_string();
            }
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn say(key: &str, value: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "@@ {key} {value}").unwrap();
    out.flush().unwrap();
}

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no go file {}",
            path.display()
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

pub const RACE_ROUNDS: usize = 40;

/// Not a test: the body of the child processes the other tests spawn.
#[test]
#[ignore = "run by other tests in a child process"]
fn child() {
    let Ok(role) = std::env::var("STRATA_STORE_CHILD") else {
        return;
    };
    let root = PathBuf::from(std::env::var_os("STRATA_STORE_ROOT").unwrap());
    let store = LocalStore::open(&root).unwrap();
    let pid = std::process::id();
    match role.as_str() {
        "put_stage" => {
            wait_for(Path::new(&std::env::var_os("STRATA_STORE_GO").unwrap()));
            for i in 0..RACE_ROUNDS {
                let outcome = match store.put_stage(&record(i, &format!("pid {pid}"))).unwrap() {
                    strata_store::PutOutcome::Inserted => "inserted",
                    strata_store::PutOutcome::AlreadyExists(_) => "exists",
                };
                say("OUTCOME", format!("{i} {outcome}"));
            }
            say("DONE", "");
        }
        "hold_lock" => {
            let _guard = store
                .lock(
                    "shared",
                    &mut |m| panic!("child waited: {m}"),
                    &std::sync::atomic::AtomicBool::new(false),
                )
                .unwrap();
            say("LOCKED", pid);
            sleep_forever();
        }
        "hold_scratch" => {
            let scratch = store.scratch("live").unwrap();
            std::fs::write(scratch.path().join("f"), b"live").unwrap();
            say("SCRATCH", scratch.path().display());
            sleep_forever();
        }
        "hold_blob" => {
            // A build between committing a layer and publishing its stage record.
            let digest = store.write_blob(b"a layer no record names yet").unwrap();
            say("BLOB", digest.hex());
            sleep_forever();
        }
        "die_mid_write" => {
            // A build in progress: a scratch dir with an overlay work dir and a read-only
            // tree, and a half-written blob. The parent SIGKILLs us; nothing is cleaned up.
            let scratch = store.scratch("build").unwrap();
            let p = scratch.path();
            std::fs::create_dir_all(p.join("work/work/x")).unwrap();
            std::fs::write(p.join("work/work/x/f"), b"0123456789").unwrap();
            std::fs::set_permissions(p.join("work/work"), std::fs::Permissions::from_mode(0o000))
                .unwrap();
            std::fs::create_dir_all(p.join("upper/usr")).unwrap();
            std::fs::set_permissions(p.join("upper"), std::fs::Permissions::from_mode(0o555))
                .unwrap();
            let mut ingest = store.ingest().unwrap();
            ingest.write_all(&[1u8; 100_000]).unwrap();
            ingest.flush().unwrap();
            say("SCRATCH", p.display());
            say("WRITING", ingest.written());
            sleep_forever();
        }
        other => panic!("unknown child role {other}"),
    }
}
