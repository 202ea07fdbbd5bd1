//! Trust, credentials and bad registry content, against the suite's TLS registry: where the CA
//! and the login come from, what a base strata cannot read does to the store, and what a
//! corrupted or truncated blob does.

use std::fs;
use std::process::Command;

use super::world::{PASSWORD, USER, run, world};
use super::{Producer, Strata};
use crate::support::{leftovers, store_listing};

/// A Dockerfile on the BuildKit image: what every test here tries to build.
fn from_base() -> String {
    format!(
        "FROM {}\nRUN cat /producer\n",
        Producer::DockerBuildkit.image()
    )
}

/// Builds [`from_base`] with `env` changes; returns (success, stderr).
fn try_build(s: &Strata, env: &[(&str, &std::path::Path)]) -> (bool, String) {
    fs::write(s.work().join("Dockerfile"), from_base()).expect("write Dockerfile");
    let mut cmd = s.cmd();
    cmd.args([
        "build",
        "--progress",
        "plain",
        "-f",
        "Dockerfile",
        "-t",
        "x",
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run strata");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ssl_cert_file_trusts_the_registry_and_its_absence_is_explained() {
    let w = world();
    // An empty certificate directory for the registry: HTTPS, but no CA from there.
    let certs_d = w.root.join("certs.d-empty");
    fs::create_dir_all(certs_d.join(&w.registry)).expect("mkdir");
    let s = Strata::new();
    let (ok, stderr) = try_build(&s, &[("STRATA_CERTS_D", &certs_d)]);
    assert!(!ok, "built without trusting the registry's CA");
    assert!(
        stderr.contains("UnknownIssuer") && stderr.contains("certs.d/HOST:PORT/ca.crt"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("UnknownIssuer").count(),
        1,
        "the cause is said once: {stderr}"
    );
    assert!(
        !stderr.contains("attempts"),
        "a refused certificate is not retried: {stderr}"
    );
    let (ok, stderr) = try_build(
        &s,
        &[("STRATA_CERTS_D", &certs_d), ("SSL_CERT_FILE", &w.ca)],
    );
    assert!(ok, "{stderr}");
}

#[test]
fn plain_http_to_the_tls_registry_says_how_to_give_its_ca() {
    let w = world();
    let s = Strata::new();
    let (ok, stderr) = try_build(&s, &[("STRATA_CERTS_D", &w.root.join("no-certs"))]);
    assert!(!ok);
    assert!(
        stderr.contains("speaks HTTPS") && stderr.contains("ca.crt"),
        "{stderr}"
    );
}

#[test]
fn podman_auth_file_gives_strata_the_login() {
    let w = world();
    let auth = w.root.join("auth/podman-auth.json");
    fs::create_dir_all(auth.parent().expect("parent")).expect("mkdir");
    run(w
        .podman()
        .args(["login", "--authfile"])
        .arg(&auth)
        .arg("--cert-dir")
        .arg(w.certs_d.join(&w.registry))
        .args(["-u", USER, "-p", PASSWORD, &w.registry]));
    let no_docker_login = w.root.join("auth/empty-docker-config");
    fs::create_dir_all(&no_docker_login).expect("mkdir");
    let s = Strata::new();
    let (ok, stderr) = try_build(&s, &[("DOCKER_CONFIG", &no_docker_login)]);
    assert!(!ok, "pulled without credentials");
    assert!(
        stderr.contains("wants credentials") && stderr.contains("strata login"),
        "{stderr}"
    );
    let (ok, stderr) = try_build(
        &s,
        &[
            ("DOCKER_CONFIG", &no_docker_login),
            ("REGISTRY_AUTH_FILE", &auth),
        ],
    );
    assert!(ok, "{stderr}");
}

/// An OCI layout whose config strata cannot read (`architecture` is a number) but whose
/// manifest is fine, copied into the registry by skopeo.
fn unreadable_base() -> String {
    let w = world();
    let layout = w.root.join("layouts/unreadable");
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).expect("mkdir");
    let blob = |bytes: &[u8]| {
        let digest = strata_digest::Digest::of(bytes);
        fs::write(blobs.join(digest.hex()), bytes).expect("write blob");
        (digest, bytes.len())
    };
    let (config, config_size) =
        blob(br#"{"architecture":5,"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_size}}},"layers":[]}}"#
    );
    let (manifest, manifest_size) = blob(manifest.as_bytes());
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("write");
    fs::write(
        layout.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{manifest}","size":{manifest_size},"annotations":{{"org.opencontainers.image.ref.name":"1"}}}}]}}"#
        ),
    )
    .expect("write index.json");
    let to = format!("{}/src/unreadable:1", w.registry);
    run(Command::new("skopeo")
        .arg("copy")
        .args(w.registry_flags("dest-"))
        .arg(format!("oci:{}:1", layout.display()))
        .arg(format!("docker://{to}")));
    to
}

#[test]
fn unreadable_base_fails_its_build_only_and_is_not_tagged() {
    let base = unreadable_base();
    let s = Strata::new();
    super::strata_image(&s, "good");
    fs::write(s.work().join("Dockerfile"), format!("FROM {base}\n")).expect("write");
    let out = s.output(&["build", "-f", "Dockerfile", "-t", "on-unreadable"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot use base `{base}`"))
            && stderr.contains("cannot read it")
            && stderr.contains("integer `5`"),
        "{stderr}"
    );
    let images = s.ok(&["images"]);
    assert!(!images.contains("src/unreadable"), "{images}");
    assert_eq!(
        s.ok(&["run", "good", "--", "cat", "/strata"]),
        super::STRATA_OUTPUT
    );
}

#[test]
fn image_whose_config_rotted_is_listed_as_broken_and_can_be_removed() {
    let s = Strata::new();
    super::strata_image(&s, "good");
    s.build_dockerfile(
        &format!(
            "FROM {}\nRUN echo rotten > /rotten\n",
            Producer::DockerBuildkit.image()
        ),
        "rotten",
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&s.ok(&["inspect", "rotten"])).expect("inspect JSON");
    let manifest = inspect["manifest"].as_str().expect("manifest digest");
    let blobs = s.env.store.path().join("blobs/sha256");
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs::read(blobs.join(manifest.strip_prefix("sha256:").expect("sha256"))).expect("read"),
    )
    .expect("manifest JSON");
    let config = manifest["config"]["digest"]
        .as_str()
        .expect("config digest");
    fs::write(
        blobs.join(config.strip_prefix("sha256:").expect("sha256")),
        b"{rotten",
    )
    .expect("overwrite the config blob");
    let images = s.ok(&["images"]);
    let line = images
        .lines()
        .find(|l| l.starts_with("rotten "))
        .unwrap_or_else(|| panic!("the rotten image is not listed:\n{images}"));
    assert!(
        line.contains("broken") && line.contains("strata rmi"),
        "{line}"
    );
    let good = images
        .lines()
        .find(|l| l.starts_with("good "))
        .unwrap_or_else(|| panic!("the good image is not listed:\n{images}"));
    assert!(!good.contains("broken"), "{good}");
    s.ok(&["rmi", "rotten"]);
    assert!(!s.ok(&["images"]).contains("rotten"));
    let out = s.output(&["rmi", "rotten"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no image `rotten:latest`"));
}

/// Pushes an image with a layer nobody else has and damages that layer's file in the
/// registry's storage with `damage`; a fresh store then builds on it.
fn damaged_layer(name: &str, damage: impl FnOnce(&std::path::Path)) -> (Strata, String, String) {
    let w = world();
    let s = Strata::new();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    s.build_dockerfile(
        &format!(
            "FROM {}\nRUN echo {name}-{nanos} > /unique\n",
            Producer::DockerBuildkit.image()
        ),
        "unique",
    );
    let to = format!("{}/out/{name}:1", w.registry);
    s.ok(&["push", "unique", &to]);
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .args(w.registry_flags(""))
        .arg(format!("docker://{to}")));
    let manifest: serde_json::Value = serde_json::from_str(&raw).expect("manifest JSON");
    let layer = manifest["layers"]
        .as_array()
        .and_then(|l| l.last())
        .and_then(|l| l["digest"].as_str())
        .expect("a layer digest")
        .to_string();
    let hex = layer.strip_prefix("sha256:").expect("sha256");
    damage(
        &w.registry_storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data"),
    );
    (Strata::new(), to, layer)
}

/// The build on a damaged image fails naming the blob and the registry, and leaves the store
/// without any tag, record or blob of it.
fn assert_refused(s: &Strata, image: &str, layer: &str, expected: &str) {
    let before = store_listing(s.env.store.path());
    fs::write(s.work().join("Dockerfile"), format!("FROM {image}\n")).expect("write");
    let out = s.output(&["build", "-f", "Dockerfile", "-t", "on-damaged"]);
    assert!(!out.status.success(), "built on a damaged layer");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(layer) && stderr.contains(expected) && stderr.contains(&world().registry),
        "{stderr}"
    );
    let after = store_listing(s.env.store.path());
    let new: Vec<_> = after.iter().filter(|e| !before.contains(e)).collect();
    let hex = layer.strip_prefix("sha256:").expect("sha256");
    assert!(
        new.iter()
            .all(|(path, _)| path.starts_with("blobs/") && !path.contains(hex)),
        "the failed pull left more than unreferenced blobs: {new:?}"
    );
    assert!(s.ok(&["images"]).lines().count() <= 1, "a tag was left");
    assert_eq!(leftovers(s.env.store.path()), Vec::<String>::new());
}

#[test]
fn corrupted_registry_blob_is_refused() {
    let (s, image, layer) = damaged_layer("corrupted", |data| {
        let mut bytes = fs::read(data).expect("read blob");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        fs::write(data, bytes).expect("write blob");
    });
    assert_refused(&s, &image, &layer, "does not match its digest");
}

#[test]
fn truncated_registry_blob_is_refused() {
    let (s, image, layer) = damaged_layer("truncated", |data| {
        let len = fs::metadata(data).expect("stat blob").len();
        fs::OpenOptions::new()
            .write(true)
            .open(data)
            .and_then(|f| f.set_len(len / 2))
            .expect("truncate blob");
    });
    assert_refused(&s, &image, &layer, "body ended");
}

#[test]
fn oci_layout_with_a_blob_that_is_not_its_name_is_refused() {
    let file = super::exported("tampered", &[]);
    let w = world();
    let dir = w.root.join("layouts/tampered");
    fs::create_dir_all(&dir).expect("mkdir");
    run(Command::new("tar")
        .arg("-xf")
        .arg(&file)
        .arg("-C")
        .arg(&dir));
    // Damage the largest blob (a layer) in place.
    let blobs = dir.join("blobs/sha256");
    let layer = fs::read_dir(&blobs)
        .expect("list blobs")
        .map(|e| e.expect("entry").path())
        .max_by_key(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("a blob");
    let mut bytes = fs::read(&layer).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&layer, bytes).expect("write");
    let s = Strata::new();
    let out = s.output(&["load", dir.to_str().expect("utf-8")]);
    assert!(!out.status.success(), "loaded a tampered layout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name = layer
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        stderr.contains(&name) && stderr.contains("does not match"),
        "{stderr}"
    );
    assert!(s.ok(&["images"]).lines().count() <= 1, "a tag was left");
    assert_eq!(leftovers(s.env.store.path()), Vec::<String>::new());
}

/// A second registry, on the suite's CA, that wants a client certificate signed by that CA.
struct MutualTls {
    child: std::process::Child,
    registry: String,
    dir: std::path::PathBuf,
}

impl Drop for MutualTls {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl MutualTls {
    fn start() -> MutualTls {
        let w = world();
        let dir = w.root.join("mtls");
        fs::create_dir_all(&dir).expect("mkdir");
        let tls = w.ca.parent().expect("the CA's dir");
        let openssl = |args: &[&str]| {
            run(Command::new("openssl").args(args).current_dir(&dir));
        };
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
            "-subj",
            "/CN=strata client",
        ]);
        fs::write(dir.join("ext"), "extendedKeyUsage=clientAuth\n").expect("write");
        let ca = tls.join("ca.crt");
        let ca_key = tls.join("ca.key");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            ca.to_str().expect("utf-8"),
            "-CAkey",
            ca_key.to_str().expect("utf-8"),
            "-CAcreateserial",
            "-out",
            "client.cert",
            "-days",
            "2",
            "-extfile",
            "ext",
        ]);
        let registry = format!("127.0.0.1:{}", super::world::free_port());
        fs::write(
            dir.join("registry.yml"),
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: {registry}\n  tls:\n    certificate: {}\n    key: {}\n    \
                 clientcas:\n      - {}\n",
                dir.join("storage").display(),
                tls.join("server.crt").display(),
                tls.join("server.key").display(),
                ca.display(),
            ),
        )
        .expect("write registry.yml");
        let log = fs::File::create(dir.join("registry.log")).expect("log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("registry.yml"))
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let started = MutualTls {
            child,
            registry: registry.clone(),
            dir: dir.clone(),
        };
        super::world::wait_for("the mutual-TLS registry", &dir.join("registry.log"), || {
            Command::new("curl")
                .args(["-sf", "-o", "/dev/null", "--cacert"])
                .arg(&ca)
                .arg("--cert")
                .arg(dir.join("client.cert"))
                .arg("--key")
                .arg(dir.join("client.key"))
                .arg(format!("https://{registry}/v2/"))
                .status()
                .is_ok_and(|s| s.success())
        });
        started
    }

    /// A certs.d root for this registry: its CA, and the client pair when `client`.
    fn certs_d(&self, client: bool) -> std::path::PathBuf {
        let root = self.dir.join(if client {
            "certs.d-client"
        } else {
            "certs.d-ca-only"
        });
        let dir = root.join(&self.registry);
        fs::create_dir_all(&dir).expect("mkdir");
        fs::copy(&world().ca, dir.join("ca.crt")).expect("copy CA");
        if client {
            for f in ["client.cert", "client.key"] {
                fs::copy(self.dir.join(f), dir.join(f)).expect("copy client pair");
            }
        }
        root
    }
}

#[test]
fn client_certificate_from_certs_d_opens_a_mutual_tls_registry() {
    let mtls = MutualTls::start();
    let s = Strata::new();
    super::strata_image(&s, "mtls");
    let to = format!("{}/out/mtls:1", mtls.registry);
    let without = s
        .cmd()
        .env("STRATA_CERTS_D", mtls.certs_d(false))
        .args(["push", "mtls", &to])
        .output()
        .expect("run strata");
    assert!(
        !without.status.success(),
        "pushed without a client certificate"
    );
    let with = s
        .cmd()
        .env("STRATA_CERTS_D", mtls.certs_d(true))
        .args(["push", "mtls", &to])
        .output()
        .expect("run strata");
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
}
