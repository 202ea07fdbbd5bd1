//! `strata store check [--repair]` on real stores: a flipped byte in a layer (the snapshot of a
//! built layer, which has no blob until it leaves the machine) is named by the check, refused by
//! export and push, quarantined by `--repair` and healed by the next build; `strata images`
//! lists whatever is corrupt.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::registry::Registry;
use crate::support::Env;

const APP: &str = "image: app\nfrom: busybox:latest\nshell:\n  install:\n  - echo one > /one\n  setup:\n  - echo two > /two\n";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The snapshot of the top layer of the image `name` (a built layer: plain, no blob).
fn top_layer(env: &Env, name: &str) -> PathBuf {
    let out = env.strata(&["inspect", name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let inspect: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let manifest = blob(env.store.path(), inspect["manifest"].as_str().unwrap());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    let digest = layers.last().unwrap()["digest"].as_str().unwrap();
    assert!(
        !blob(env.store.path(), digest).exists(),
        "a built layer has no blob"
    );
    env.store
        .path()
        .join("snapshots")
        .join(digest.strip_prefix("sha256:").unwrap())
}

fn blob(store: &Path, digest: &str) -> PathBuf {
    store
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

fn flip_a_byte(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_flipped_byte_is_named_refused_quarantined_and_rebuilt() {
    let registry = Registry::start();
    let env = Env::new();
    let dir = env.project("app", APP);
    env.build_ok(&dir);
    let clean = env.strata(&["store", "check"]);
    assert!(
        clean.status.success(),
        "{}{}",
        text(&clean.stdout),
        text(&clean.stderr)
    );
    assert!(
        text(&clean.stdout).contains("all good"),
        "{}",
        text(&clean.stdout)
    );

    let layer = top_layer(&env, "app");
    let hex = layer.file_name().unwrap().to_str().unwrap().to_string();
    flip_a_byte(&layer.join("two"));

    let found = env.strata(&["store", "check"]);
    let stdout = text(&found.stdout);
    assert_eq!(found.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("bad snapshot {}", layer.display())),
        "{stdout}"
    );

    let tarball = env.work.path().join("app.tar");
    for format in ["oci", "docker-archive"] {
        let export = env.strata(&[
            "export",
            "app",
            "--format",
            format,
            "-o",
            tarball.to_str().unwrap(),
        ]);
        let stderr = text(&export.stderr);
        assert!(
            !export.status.success(),
            "{format}: exported a corrupt layer"
        );
        assert!(
            stderr.contains("corrupt") && stderr.contains(&hex),
            "{format}: {stderr}"
        );
        assert!(!tarball.exists(), "{format}: a half tarball was left");
    }
    let reference = format!("{}/team/app:1", registry.host());
    let push = env.strata(&["push", "app", &reference]);
    let stderr = text(&push.stderr);
    assert!(!push.status.success(), "pushed a corrupt layer");
    assert!(
        stderr.contains("corrupt") && stderr.contains(&hex),
        "{stderr}"
    );
    assert!(
        registry.tags("team/app").is_empty(),
        "the registry got the image"
    );

    let repair = env.strata(&["store", "check", "--repair"]);
    let stdout = text(&repair.stdout);
    assert!(repair.status.success(), "{stdout}{}", text(&repair.stderr));
    assert!(stdout.contains("quarantined to"), "{stdout}");
    assert!(!layer.exists());
    let quarantine: Vec<_> = std::fs::read_dir(env.store.path().join("quarantine"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        quarantine
            .iter()
            .any(|n| n.starts_with(&format!("snapshots-{hex}-"))),
        "{quarantine:?}"
    );
    let after = env.strata(&["store", "check"]);
    assert!(after.status.success(), "{}", text(&after.stdout));

    // The build misses the stages that held the corrupt layer and makes them again.
    let rebuilt = env.build_ok(&dir);
    assert!(rebuilt.contains(&"app/setup".to_string()), "{rebuilt:?}");
    let export = env.strata(&["export", "app", "-o", tarball.to_str().unwrap()]);
    assert!(export.status.success(), "{}", text(&export.stderr));
    let push = env.strata(&["push", "app", &reference]);
    assert!(push.status.success(), "{}", text(&push.stderr));
    assert_eq!(env.run_sh("app", "cat /one /two"), "one\ntwo\n");
    let check = env.strata(&["store", "check"]);
    assert!(check.status.success(), "{}", text(&check.stdout));
}

#[test]
fn images_lists_everything_whatever_is_corrupt() {
    let env = Env::new();
    let dir = env.project("app", APP);
    env.build_ok(&dir);
    let stages = env.store.path().join("stages");
    let record = std::fs::read_dir(&stages)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| std::fs::read_to_string(p).unwrap().contains("\"setup\""))
        .unwrap();
    std::fs::set_permissions(&record, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&record, b"{\"digest\": trunc").unwrap();
    let tag = env.store.path().join("tags/broken.json");
    std::fs::write(&tag, b"not json").unwrap();

    let out = env.strata(&["images"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(name))
            .map(str::to_string)
    };
    assert!(
        line("busybox ").is_some_and(|l| !l.contains("broken")),
        "{stdout}"
    );
    // The image itself is whole (its manifest and layers read); its stage chain is not.
    assert!(
        line("app ").is_some_and(|l| !l.contains("broken")),
        "{stdout}"
    );
    let with_stages = env.strata(&["images", "--stages"]);
    assert!(
        text(&with_stages.stdout).contains("(stages after this unreadable:"),
        "{}",
        text(&with_stages.stdout)
    );
    assert!(
        line("broken.json").is_some_and(|l| l.contains("broken")),
        "{stdout}"
    );

    let check = env.strata(&["store", "check", "--repair"]);
    let stdout = text(&check.stdout);
    assert!(
        stdout.contains(&format!("bad stage record {}", record.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("bad tag {}", tag.display())),
        "{stdout}"
    );
    // The stage is built again, and listing is whole again.
    assert_eq!(env.build_ok(&dir), ["app/setup"]);
    let out = env.strata(&["images"]);
    assert!(
        !text(&out.stdout).contains("broken"),
        "{}",
        text(&out.stdout)
    );
}
