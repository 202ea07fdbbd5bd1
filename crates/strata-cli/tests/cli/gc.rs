//! `strata gc` (alias `prune`) on real stores: what killed builds leave and what no tag or kept
//! stage needs goes, the dry run lists it without removing it, keep policies keep what they say,
//! the automatic run starts past its size, and a running build's work is never collected.

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;

use crate::support::{Env, assert_store_consistent, leftovers, store_listing};

const APP: &str = "image: app\nfrom: busybox:latest\nshell:\n  install:\n  - echo one > /one\n  setup:\n  - echo two > /two\n";
const OTHER: &str =
    "image: other\nfrom: busybox:latest\nshell:\n  install:\n  - echo other > /other\n";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn gc(env: &Env, args: &[&str]) -> String {
    let out = env.strata(&[&["gc"], args].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// What a killed build leaves: a partial ingest, a finished layer blob no record names, a
/// snapshot without a record, a scratch dir.
fn leave_orphans(store: &Path) -> Vec<String> {
    let ingest = store.join("ingest/0000dead");
    std::fs::create_dir_all(&ingest).unwrap();
    std::fs::write(ingest.join("data"), vec![1u8; 5000]).unwrap();
    let blob = b"a layer whose stage record was never written";
    let hex = strata_digest::Digest::of(blob).hex();
    std::fs::write(store.join("blobs/sha256").join(&hex), blob).unwrap();
    let snapshot = store
        .join("snapshots")
        .join(strata_digest::Digest::of(b"s").hex());
    std::fs::create_dir_all(snapshot.join("etc")).unwrap();
    std::fs::write(snapshot.join("etc/file"), vec![2u8; 3000]).unwrap();
    let scratch = store.join("tmp/build-0000dead");
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::write(scratch.join("f"), b"x").unwrap();
    vec![
        ingest.display().to_string(),
        store.join("blobs/sha256").join(hex).display().to_string(),
        snapshot.display().to_string(),
        scratch.display().to_string(),
    ]
}

#[test]
fn gc_removes_what_killed_builds_left_and_a_dry_run_only_lists_it() {
    let env = Env::new();
    let dir = env.project("app", APP);
    env.build_ok(&dir);
    let clean = store_listing(env.store.path());
    let orphans = leave_orphans(env.store.path());

    let dry = gc(&env, &["--dry-run"]);
    for orphan in &orphans {
        assert!(
            dry.lines()
                .any(|l| l.starts_with("would remove") && l.ends_with(orphan.as_str())),
            "{orphan}: {dry}"
        );
    }
    assert!(dry.contains("4 entries, would free"), "{dry}");
    assert_ne!(
        store_listing(env.store.path()),
        clean,
        "the dry run removed something"
    );

    let real = gc(&env, &[]);
    assert!(real.contains("4 entries, freed"), "{real}");
    assert_eq!(store_listing(env.store.path()), clean);
    assert!(leftovers(env.store.path()).is_empty());
    assert_eq!(gc(&env, &[]), "0 entries, freed 0 B\n");
    // Nothing the image or its cache needs went.
    assert!(env.build_ok(&dir).is_empty());
    assert_eq!(env.run_sh("app", "cat /one /two"), "one\ntwo\n");
    assert_store_consistent(env.store.path());
}

#[test]
fn keep_policies_keep_what_they_say() {
    let env = Env::new();
    let (app, other) = (env.project("app", APP), env.project("other", OTHER));
    env.build_ok(&app);
    env.build_ok(&other);
    let rmi = env.strata(&["rmi", "other"]);
    assert!(rmi.status.success(), "{}", text(&rmi.stderr));
    let records = env.stage_records().len();

    // Untagged stages are cache: kept by default and when built within the period.
    gc(&env, &[]);
    gc(&env, &["--keep-within", "1h"]);
    gc(&env, &["--keep-bytes", "10GB"]);
    assert_eq!(env.stage_records().len(), records);
    let dry = gc(&env, &["prune", "--all", "--dry-run"][1..]);
    assert!(dry.contains("would remove stage"), "{dry}");
    assert_eq!(env.stage_records().len(), records);

    // `prune` is `gc`; --all keeps only what tags need.
    let out = env.strata(&["prune", "--all"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let left: Vec<String> = env
        .stage_digests()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert!(left.iter().all(|s| s.starts_with("app/")), "{left:?}");
    assert!(!left.is_empty());
    assert!(
        env.build_ok(&app).is_empty(),
        "the tagged image's stages were kept"
    );
    assert!(
        !env.build_ok(&other).is_empty(),
        "the untagged stages were removed"
    );
    assert_store_consistent(env.store.path());

    // --keep-bytes 0 keeps nothing untagged either.
    env.strata(&["rmi", "other"]);
    gc(&env, &["--keep-bytes", "0"]);
    assert!(env.stage_records().iter().all(|r| r["image"] == "app"));

    for bad in [["--keep-within", "7"], ["--keep-bytes", "lots"]] {
        let out = env.strata(&[&["gc"], &bad[..]].concat());
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains(&format!(
                "invalid {}",
                if bad[0] == "--keep-within" {
                    "duration"
                } else {
                    "size"
                }
            )),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn builds_collect_garbage_once_the_store_passes_its_limit() {
    let env = Env::new();
    let (app, other) = (env.project("app", APP), env.project("other", OTHER));
    env.build_ok(&other);
    env.strata(&["rmi", "other"]);
    // Under the limit nothing happens.
    let out = env
        .cmd()
        .args(["build", "--progress", "plain", "--gc-max-bytes", "10GB"])
        .current_dir(&app)
        .output()
        .unwrap();
    assert!(
        out.status.success() && !text(&out.stderr).contains("gc limit"),
        "{}",
        text(&out.stderr)
    );
    let other_install = |env: &Env| {
        env.stage_records()
            .iter()
            .any(|r| r["image"] == "other" && r["stage"] == "install")
    };
    assert!(other_install(&env));
    // Past it (set through the environment), the oldest untagged cache goes.
    let out = env
        .cmd()
        .env("STRATA_GC_MAX_BYTES", "1")
        .args(["build", "--progress", "plain"])
        .current_dir(&app)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("passed its gc limit of 1 bytes"),
        "{stderr}"
    );
    // (The `from` stage both images share stays: app's tag needs it.)
    assert!(!other_install(&env));
    assert_eq!(env.run_sh("app", "cat /one /two"), "one\ntwo\n");
}

/// Bytes of the store's blobs.
fn blob_bytes(store: &Path) -> u64 {
    std::fs::read_dir(store.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn plain_layers_count_toward_the_size_limits() {
    let env = Env::new();
    let big = "image: big\nfrom: busybox:latest\nshell:\n  install:\n  - head -c 3000000 /dev/urandom > /big\n";
    let (app, big) = (env.project("app", APP), env.project("big", big));
    env.build_ok(&app);
    env.build_ok(&big);
    env.strata(&["rmi", "big"]);
    let big_install = |env: &Env| {
        env.stage_records()
            .iter()
            .any(|r| r["image"] == "big" && r["stage"] == "install")
    };
    // The 3 MB layer is plain: its snapshot is its only copy, no blob holds it.
    let blobs = blob_bytes(env.store.path());
    assert!(blobs < 3_000_000, "{blobs}");
    // Blobs alone are within 1 MB more, the store with the plain layer is not: gc keeping that
    // many bytes drops the untagged stage.
    let limit = (blobs + 1_000_000).to_string();
    gc(&env, &["--keep-bytes", &limit]);
    assert!(!big_install(&env));
    assert_eq!(env.run_sh("app", "cat /one /two"), "one\ntwo\n");
    assert_store_consistent(env.store.path());
    // The same for the automatic run at the start of a build.
    env.build_ok(&big);
    env.strata(&["rmi", "big"]);
    assert!(big_install(&env));
    let limit = (blob_bytes(env.store.path()) + 1_000_000).to_string();
    let out = env
        .cmd()
        .args(["build", "--progress", "plain", "--gc-max-bytes", &limit])
        .current_dir(&app)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("passed its gc limit"), "{stderr}");
    assert!(!big_install(&env));
    assert_store_consistent(env.store.path());
}

#[test]
fn gc_beside_a_running_build_leaves_its_work() {
    let env = Env::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // The build commits two stages, then waits in the third for the test to let it go.
    let yaml = format!(
        "image: slow\nfrom: busybox:latest\nshell:\n  beforeInstall:\n  - head -c 300000 /dev/urandom > /first\n  install:\n  - head -c 300000 /dev/urandom > /second\n  setup:\n  - nc 127.0.0.1 {port} </dev/null\n  - echo done > /done\n"
    );
    let dir = env.project("slow", &yaml);
    let mut build = env
        .cmd()
        .args(["build", "--progress", "plain"])
        .current_dir(&dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (stream, _) = listener.accept().unwrap();
    // Its committed stages are untagged so far, and --all keeps no untagged stage: only the
    // build's lease keeps them.
    let before = env.stage_records().len();
    assert!(before >= 2, "beforeInstall and install are committed");
    for _ in 0..3 {
        gc(&env, &["--all"]);
    }
    assert_eq!(env.stage_records().len(), before);
    assert_store_consistent(env.store.path());
    drop(stream);
    let mut stderr = String::new();
    build
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(build.wait().unwrap().success(), "{stderr}");
    assert_eq!(
        env.run_sh("slow", "wc -c < /first; wc -c < /second; cat /done"),
        "300000\n300000\ndone\n"
    );
    // Once the build is gone, its lease is too, and everything left is needed by the tag.
    let after = gc(&env, &["--all"]);
    assert!(!after.contains("removed stage"), "{after}");
    assert!(
        std::fs::read_dir(env.store.path().join("leases"))
            .unwrap()
            .next()
            .is_none()
    );
    let check = env.strata(&["store", "check"]);
    assert!(check.status.success(), "{}", text(&check.stdout));
}
