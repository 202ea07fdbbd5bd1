//! Exported images load in real tools.

use std::os::unix::fs::FileTypeExt as _;
use std::path::Path;
use std::process::Command;

use crate::support::Env;

/// Unpacks an OCI layout tarball into a fresh directory next to it.
fn unpack(tarball: &Path) -> std::path::PathBuf {
    let dir = tarball.with_extension("d");
    std::fs::create_dir_all(&dir).unwrap();
    assert!(
        Command::new("tar")
            .arg("-xf")
            .arg(tarball)
            .arg("-C")
            .arg(&dir)
            .status()
            .unwrap()
            .success()
    );
    dir
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(dir: &Path, digest: &serde_json::Value) -> std::path::PathBuf {
    dir.join("blobs/sha256")
        .join(digest.as_str().unwrap().strip_prefix("sha256:").unwrap())
}

/// The sorted paths inside every layer of an OCI layout tarball's single image, in layer order.
pub fn layer_paths(tarball: &Path) -> Vec<String> {
    let dir = unpack(tarball);
    let index = json(&dir.join("index.json"));
    let manifest = json(&blob(&dir, &index["manifests"][0]["digest"]));
    let mut out = Vec::new();
    for layer in manifest["layers"].as_array().unwrap() {
        // GNU tar reads gzip, zstd and plain tars alike (by their first bytes).
        let listing = Command::new("tar")
            .arg("-tf")
            .arg(blob(&dir, &layer["digest"]))
            .output()
            .unwrap();
        assert!(listing.status.success());
        let mut paths: Vec<String> = String::from_utf8(listing.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        paths.sort();
        out.extend(paths);
    }
    out
}

const APP: &str = r#"
image: app
from: busybox:latest
shell:
  install:
  - mkdir -p /app && echo v1 > /app/version && rm /etc/group
docker:
  ENV:
    MODE: prod
  LABEL:
    org.example.team: core
  EXPOSE: ["8080"]
  USER: app
  WORKDIR: /app
  ENTRYPOINT: ["/bin/sh", "-c"]
  CMD: cat /app/version
"#;

#[test]
fn oci_archive_is_read_by_skopeo() {
    let env = Env::new();
    let dir = env.project("app", APP);
    env.build_ok(&dir);
    let out = env.strata(&["export", "app", "-o", "app.tar"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tarball = env.work.path().join("app.tar");

    let inspect = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}", tarball.display()))
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(info["Layers"].as_array().unwrap().len(), 2, "{info}");
    assert_eq!(info["Labels"]["org.example.team"], "core");
    assert!(
        info["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "MODE=prod"),
        "{info}"
    );

    let config = Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("oci-archive:{}", tarball.display()))
        .output()
        .unwrap();
    assert!(config.status.success());
    let config: serde_json::Value = serde_json::from_slice(&config.stdout).unwrap();
    let c = &config["config"];
    assert_eq!(c["User"], "app");
    assert_eq!(c["WorkingDir"], "/app");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(
        c["Cmd"],
        serde_json::json!(["/bin/sh", "-c", "cat /app/version"])
    );
    assert!(c["ExposedPorts"]["8080/tcp"].is_object());

    // skopeo copy re-reads and verifies every blob against its digest.
    let copy = env.work.path().join("copy");
    let out = Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci-archive:{}", tarball.display()))
        .arg(format!("dir:{}", copy.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The stage layer records the deletion of /etc/group as a whiteout.
    let paths = layer_paths(&tarball);
    assert!(paths.contains(&"etc/.wh.group".to_string()), "{paths:?}");
    assert!(paths.contains(&"app/version".to_string()));
}

#[test]
fn docker_archive_has_the_layout_docker_load_expects() {
    let env = Env::new();
    let dir = env.project("app", APP);
    env.build_ok(&dir);
    let out = env.strata(&[
        "export",
        "app",
        "--format",
        "docker-archive",
        "-o",
        "app-docker.tar",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = unpack(&env.work.path().join("app-docker.tar"));
    let manifest = json(&dir.join("manifest.json"));
    let entry = &manifest[0];
    assert_eq!(entry["RepoTags"], serde_json::json!(["app:latest"]));
    let config = json(&dir.join(entry["Config"].as_str().unwrap()));
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let layers = entry["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), diff_ids.len());
    for (layer, diff_id) in layers.iter().zip(diff_ids) {
        let path = dir.join(layer.as_str().unwrap());
        // Layers are plain tarballs whose sha256 is the diff id: what docker load verifies.
        let sum = Command::new("sha256sum").arg(&path).output().unwrap();
        let hex = String::from_utf8(sum.stdout)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        assert_eq!(format!("sha256:{hex}"), diff_id.as_str().unwrap());
        assert!(
            Command::new("tar")
                .arg("-tf")
                .arg(&path)
                .output()
                .unwrap()
                .status
                .success()
        );
    }
    assert!(dir.join("repositories").exists());
}

#[test]
fn gzip_layers_are_selectable() {
    let env = Env::new();
    let dir = env.project(
        "gz",
        "image: gz\nfrom: busybox:latest\nshell:\n  install:\n  - echo gz > /gz\n",
    );
    let out = env
        .cmd()
        .args(["build", "--progress", "plain", "--compression", "gzip"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        env.strata(&["export", "gz", "-o", "gz.tar"])
            .status
            .success()
    );
    let dir = unpack(&env.work.path().join("gz.tar"));
    let index = json(&dir.join("index.json"));
    let manifest = json(&blob(&dir, &index["manifests"][0]["digest"]));
    let layers = manifest["layers"].as_array().unwrap();
    // Every layer is gzip: the stage's own as built, the imported (zstd) base converted.
    for layer in layers {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
    }
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(blob(&dir, &layers[1]["digest"]))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listing.stdout), "gz\n");
}

/// The entry names of a tarball given as bytes.
fn tar_names(bytes: &[u8]) -> Vec<String> {
    let mut tar = Command::new("tar")
        .arg("-tf")
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    tar.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = tar.wait_with_output().unwrap();
    assert!(out.status.success(), "not a tarball");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn export_streams_to_stdout_and_writes_through_what_is_not_a_file() {
    let env = Env::new();
    // `-o -`: the tarball on stdout.
    let out = env.strata(&["export", "busybox", "-o", "-"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tar_names(&out.stdout).contains(&"index.json".to_string()));
    // `-o /proc/self/fd/1`, what /dev/stdout links to (a symlink to the pipe): written
    // through. (Not /dev/stdout itself: a regression would replace the machine's.)
    let out = env.strata(&["export", "busybox", "-o", "/proc/self/fd/1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tar_names(&out.stdout).contains(&"oci-layout".to_string()));
    // A symlink of the user's: its target is written, the link stays a link.
    let work = env.work.path();
    std::fs::write(work.join("target.tar"), b"old").unwrap();
    std::os::unix::fs::symlink("target.tar", work.join("link.tar")).unwrap();
    let out = env.strata(&["export", "busybox", "-o", "link.tar"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::symlink_metadata(work.join("link.tar"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        tar_names(&std::fs::read(work.join("target.tar")).unwrap())
            .contains(&"index.json".to_string())
    );
    // A FIFO: read by another process while strata writes.
    let fifo = work.join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let reader = Command::new("cat")
        .arg(&fifo)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read the reader's output while strata writes, or both wait on full pipes.
    let reader = std::thread::spawn(move || reader.wait_with_output().unwrap());
    let out = env.strata(&["export", "busybox", "-o", fifo.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = reader.join().unwrap();
    assert!(tar_names(&read.stdout).contains(&"index.json".to_string()));
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
}

/// The layer digest (and its diff id) of the single-layer `busybox` image of `env`.
fn busybox_layer(env: &Env) -> (String, String) {
    let inspect: serde_json::Value =
        serde_json::from_slice(&env.strata(&["inspect", "busybox"]).stdout).unwrap();
    let manifest = json(&blob(env.store.path(), &inspect["manifest"]));
    (
        manifest["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string(),
        inspect["config"]["rootfs"]["diff_ids"][0]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

/// The layer digest in the OCI export of `busybox`.
fn exported_layer(env: &Env, name: &str) -> String {
    exported_layers(env, "busybox", name)[0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_recorded_conversion_is_reused_not_made_again() {
    let env = Env::new();
    let (zstd_layer, diff_id) = busybox_layer(&env);
    // A gzip twin strata would not make itself (level 1, no name): if the export uses it, the
    // export took the recorded conversion instead of converting again.
    let store = env.store.path();
    let twin = Command::new("sh")
        .arg("-c")
        .arg("zstd -dc \"$1\" | gzip -1 -n")
        .arg("sh")
        .arg(blob(store, &serde_json::Value::from(zstd_layer.clone())))
        .output()
        .unwrap();
    assert!(twin.status.success());
    let digest = strata_digest::Digest::of(&twin.stdout);
    std::fs::write(store.join("blobs/sha256").join(digest.hex()), &twin.stdout).unwrap();
    let record = serde_json::json!({
        "source": zstd_layer,
        "kind": "gzip",
        "layer": {
            "digest": digest.to_string(),
            "diff_id": diff_id,
            "size": twin.stdout.len(),
            "media_type": "application/vnd.oci.image.layer.v1.tar+gzip",
        },
    });
    let converted = env.store.path().join("converted");
    std::fs::write(
        converted.join(format!(
            "{}.gzip.json",
            zstd_layer.strip_prefix("sha256:").unwrap()
        )),
        serde_json::to_vec(&record).unwrap(),
    )
    .unwrap();
    assert_eq!(exported_layer(&env, "reused.tar"), digest.to_string());
    // Without the record strata makes its own gzip, which is another blob.
    let fresh = Env::new();
    let made = exported_layer(&fresh, "made.tar");
    assert_ne!(made, digest.to_string());
    assert!(
        std::fs::read_dir(fresh.store.path().join("converted"))
            .unwrap()
            .count()
            == 1,
        "the conversion is recorded"
    );
}

/// The layer digests in the OCI export `name` of `image`.
fn exported_layers(env: &Env, image: &str, name: &str) -> Vec<serde_json::Value> {
    let out = env.strata(&["export", image, "-o", name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = unpack(&env.work.path().join(name));
    let index = json(&dir.join("index.json"));
    let manifest = json(&blob(&dir, &index["manifests"][0]["digest"]));
    manifest["layers"].as_array().unwrap().clone()
}

#[test]
fn a_built_layer_is_compressed_when_it_first_leaves_and_only_once() {
    use std::os::unix::fs::MetadataExt as _;
    let env = Env::new();
    let dir = env.project(
        "lazy",
        "image: lazy\nfrom: busybox:latest\nshell:\n  install:\n  - echo lazy > /lazy\n",
    );
    env.build_ok(&dir);
    let store = env.store.path();
    let inspect: serde_json::Value =
        serde_json::from_slice(&env.strata(&["inspect", "lazy"]).stdout).unwrap();
    let manifest = json(&blob(store, &inspect["manifest"]));
    let own = &manifest["layers"][1];
    let diff_id = &inspect["config"]["rootfs"]["diff_ids"][1];
    assert_eq!(own["digest"], *diff_id, "the built layer is recorded plain");
    assert_eq!(own["mediaType"], "application/vnd.oci.image.layer.v1.tar");
    assert!(
        !blob(store, diff_id).exists(),
        "a build writes no layer blob, compressed or not"
    );
    let converted = store.join("converted");
    assert_eq!(std::fs::read_dir(&converted).unwrap().count(), 0);

    // The first export compresses it (gzip, the default) and remembers that.
    let first = exported_layers(&env, "lazy", "first.tar");
    assert_eq!(
        first[1]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert!(blob(store, &first[1]["digest"]).exists());
    let record = converted.join(format!(
        "{}.gzip.json",
        diff_id.as_str().unwrap().strip_prefix("sha256:").unwrap()
    ));
    let made = std::fs::metadata(&record).unwrap().ino();
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(blob(&env.work.path().join("first.d"), &first[1]["digest"]))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listing.stdout), "lazy\n");

    // The second costs nothing: the same blob, the record as it was.
    let second = exported_layers(&env, "lazy", "second.tar");
    assert_eq!(first, second);
    assert_eq!(std::fs::metadata(&record).unwrap().ino(), made);

    // A check and a gc are happy with a layer that is a snapshot and a conversion.
    for args in [&["store", "check"][..], &["gc"], &["store", "check"]] {
        let out = env.strata(args);
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    crate::support::assert_store_consistent(store);
    assert_eq!(exported_layers(&env, "lazy", "third.tar"), first);
    assert_eq!(env.run_sh("lazy", "cat /lazy"), "lazy\n");
}
