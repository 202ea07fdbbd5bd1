//! Registries: bases pulled from one, images pushed to one, and one stage cache shared by
//! builders with separate stores (`--repo`), against a real `docker-registry` on 127.0.0.1.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Env, built_stages};

/// A throwaway registry on a free loopback port; killed on drop.
pub(crate) struct Registry {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Registry {
    pub(crate) fn start() -> Registry {
        Registry::start_with(None, false)
    }

    /// A registry that serves what it has but refuses every write (maintenance read-only mode).
    pub(crate) fn read_only() -> Registry {
        Registry::start_with(None, true)
    }

    /// Restarts a [`Registry::read_only`] registry taking writes, its contents and port kept.
    pub(crate) fn make_writable(&mut self) {
        std::fs::remove_file(self.dir.path().join("read-only")).unwrap();
        self.kill();
        self.restart();
    }

    /// A registry that wants `user` and `password` (htpasswd Basic auth).
    pub(crate) fn with_htpasswd(user: &str, password: &str) -> Registry {
        Registry::start_with(Some((user, password)), false)
    }

    fn start_with(htpasswd: Option<(&str, &str)>, read_only: bool) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("strata-registry-")
            .tempdir()
            .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if let Some((user, password)) = htpasswd {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd is installed by scripts/install-deps.sh (apache2-utils)");
            std::fs::write(dir.path().join("htpasswd"), out.stdout).unwrap();
        }
        if read_only {
            std::fs::write(dir.path().join("read-only"), b"").unwrap();
        }
        let mut registry = Registry {
            dir,
            port,
            child: None,
        };
        registry.restart();
        registry
    }

    fn restart(&mut self) {
        let config = self.dir.path().join("config.yml");
        let htpasswd = self.dir.path().join("htpasswd");
        let auth = match htpasswd.exists() {
            true => format!(
                "auth:\n  htpasswd:\n    realm: strata-test\n    path: {}\n",
                htpasswd.display()
            ),
            false => String::new(),
        };
        let maintenance = match self.dir.path().join("read-only").exists() {
            true => "  maintenance:\n    readonly:\n      enabled: true\n",
            false => "",
        };
        std::fs::write(
            &config,
            format!(
                "{auth}version: 0.1\nstorage:\n{maintenance}  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{}\nvalidation:\n  manifests:\n    urls:\n      allow:\n        - '^http://127\\.0\\.0\\.1:'\n",
                self.dir.path().join("data").display(),
                self.port
            ),
        )
        .unwrap();
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("registry.log"))
            .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("docker-registry is installed by scripts/install-deps.sh");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Bytes the registry holds of the unfinished uploads to `repository`.
    fn uploading(&self, repository: &str) -> u64 {
        let uploads = self
            .dir
            .path()
            .join("data/docker/registry/v2/repositories")
            .join(repository)
            .join("_uploads");
        let Ok(entries) = std::fs::read_dir(uploads) else {
            return 0;
        };
        entries
            .flatten()
            .filter_map(|e| std::fs::metadata(e.path().join("data")).ok())
            .map(|m| m.len())
            .sum()
    }

    /// How many streamed uploads (`PATCH` of an upload session, accepted) went to
    /// `repository`, from the registry's access log.
    fn streamed_uploads(&self, repository: &str) -> usize {
        let log = std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default();
        let uri = format!("http.request.uri=\"/v2/{repository}/blobs/uploads/");
        log.lines()
            .filter(|l| {
                l.contains("http.request.method=PATCH")
                    && l.contains(&uri)
                    && l.contains("http.response.status=202")
            })
            .count()
    }

    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub(crate) fn tags(&self, repository: &str) -> Vec<String> {
        let out = Command::new("curl")
            .arg("-sf")
            .arg(format!("http://{}/v2/{repository}/tags/list", self.host()))
            .output();
        let Ok(out) = out else { return Vec::new() };
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        value["tags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .map(|s| s.as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

const APP: &str = "image: app\nfrom: busybox:latest\nshell:\n  install:\n  - echo one > /one\n  setup:\n  - echo two > /two\ndocker:\n  CMD: [\"cat\", \"/one\", \"/two\"]\n";

#[test]
fn pushed_images_serve_as_bases_elsewhere() {
    let registry = Registry::start();
    let a = Env::new();
    let dir = a.project("app", APP);
    a.build_ok(&dir);
    // Nothing is compressed before the push: the built layers are plain, and the base's
    // (zstd) is not converted yet. The push makes each layer's gzip once.
    let conversions = || {
        std::fs::read_dir(a.store.path().join("converted"))
            .unwrap()
            .count()
    };
    assert_eq!(conversions(), 0);
    let reference = format!("{}/team/app:1", registry.host());
    let out = a.strata(&["push", "app", &reference]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(conversions(), 3, "the base's layer and the two built ones");
    // The three layers went up as they were compressed; with the config, four uploads.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("4 blob(s) uploaded"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(registry.streamed_uploads("team/app"), 3);
    // A second push uploads nothing.
    let again = a.strata(&["push", "app", &reference]);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("0 blob(s) uploaded"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let b = Env::empty();
    let dir = b.project(
        "child",
        &format!(
            "image: child\nfrom: {reference}\nshell:\n  install:\n  - cat /one /two > /both\n"
        ),
    );
    b.build_ok(&dir);
    assert_eq!(b.run_sh("child", "cat /both"), "one\ntwo\n");

    // A reference the registry lacks fails with the reference and the reason.
    let dir = b.project(
        "missing",
        &format!("image: m\nfrom: {}/team/nope:1\n", registry.host()),
    );
    let out = b.build(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("team/nope:1") && stderr.contains("pulling it failed"),
        "{stderr}"
    );
}

#[test]
fn a_repo_stage_built_on_plain_local_stages_is_published_whole() {
    let registry = Registry::start();
    let repo = format!("{}/stages", registry.host());
    let a = Env::new();
    // Built without --repo first: its layers are plain, snapshots without blobs.
    a.build_ok(&a.project("app", APP));
    // A --repo build reuses those stages and builds a new last one on them.
    let changed = APP.replace("echo two", "echo three");
    let dir = a.project("app", &changed);
    let build = |env: &Env, dir: &PathBuf| {
        env.cmd()
            .args(["build", "--progress", "plain", "--repo", &repo])
            .current_dir(dir)
            .output()
            .unwrap()
    };
    let out = build(&a, &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        built_stages(&stderr).contains(&"app/setup".to_string()),
        "{stderr}"
    );
    // The two plain layers (install's, setup's) went up as they were compressed.
    assert_eq!(registry.streamed_uploads("stages"), 2);
    // An empty store takes the image from the repository whole, building nothing.
    let c = Env::new();
    let out = build(&c, &c.project("app", &changed));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(built_stages(&stderr), Vec::<String>::new());
    let run = c.strata(&["run", "app"]);
    assert_eq!(String::from_utf8_lossy(&run.stdout), "one\nthree\n");
}

#[test]
fn builders_share_one_stage_cache_through_the_registry() {
    let registry = Registry::start();
    let repo = format!("{}/stages", registry.host());
    let (a, b) = (Env::new(), Env::new());
    let (dir_a, dir_b) = (a.project("app", APP), b.project("app", APP));
    // Two builders with their own stores, at the same time, against one repository.
    let spawn = |env: &Env, dir: &PathBuf| {
        env.cmd()
            .args(["build", "--progress", "plain", "--repo", &repo])
            .current_dir(dir)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (ca, cb) = (spawn(&a, &dir_a), spawn(&b, &dir_b));
    let (oa, ob) = (
        ca.wait_with_output().unwrap(),
        cb.wait_with_output().unwrap(),
    );
    assert!(
        oa.status.success(),
        "{}",
        String::from_utf8_lossy(&oa.stderr)
    );
    assert!(
        ob.status.success(),
        "{}",
        String::from_utf8_lossy(&ob.stderr)
    );
    // Every stage is in the registry once.
    let tags = registry.tags("stages");
    let mut digests: Vec<&str> = tags.iter().map(|t| t.split('-').next().unwrap()).collect();
    let all = digests.len();
    digests.sort();
    digests.dedup();
    assert_eq!(all, digests.len(), "a stage published twice: {tags:?}");
    assert_eq!(
        digests.len(),
        4,
        "from, install, setup, dockerInstructions: {tags:?}"
    );

    // A third builder with an empty store runs nothing and gets a working image.
    let c = Env::new();
    let dir_c = c.project("app", APP);
    let out = c
        .cmd()
        .args(["build", "--progress", "plain", "--repo", &repo])
        .current_dir(&dir_c)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        built_stages(&String::from_utf8_lossy(&out.stderr)),
        Vec::<String>::new()
    );
    let run = c.strata(&["run", "app"]);
    assert_eq!(String::from_utf8_lossy(&run.stdout), "one\ntwo\n");
}

/// Five stages, one with a 20 MB layer of random bytes: its compression and upload take a
/// while, beside the build of the stages after it.
const STAGES: &str = "image: app\nfrom: busybox:latest\nshell:\n  beforeInstall:\n  - head -c 20000000 /dev/urandom > /big\n  install:\n  - echo one > /one\n  beforeSetup:\n  - echo two > /two\n  setup:\n  - echo three > /three\ndocker:\n  CMD: [\"cat\", \"/one\", \"/two\", \"/three\"]\n";

/// The manifest the registry serves for `reference` (`repository:tag`).
fn registry_manifest(registry: &Registry, repository: &str, tag: &str) -> serde_json::Value {
    let out = Command::new("curl")
        .arg("-sf")
        .arg("-H")
        .arg("Accept: application/vnd.oci.image.manifest.v1+json")
        .arg(format!(
            "http://{}/v2/{repository}/manifests/{tag}",
            registry.host()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "no manifest for {repository}:{tag}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A `--repo` build of `dir` by `env`: whether it succeeded, and its stderr.
fn repo_build(env: &Env, dir: &Path, repo: &str) -> (bool, String) {
    let out = env
        .cmd()
        .args(["build", "--progress", "plain", "--repo", repo])
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_repo_build_ends_with_every_stage_it_built_published() {
    let registry = Registry::start();
    let repo = format!("{}/stages", registry.host());
    let a = Env::new();
    let (ok, stderr) = repo_build(&a, &a.project("app", STAGES), &repo);
    assert!(ok, "{stderr}");
    let built = built_stages(&stderr);
    assert!(built.contains(&"app/beforeInstall".to_string()), "{stderr}");
    // When the build has returned, each stage it built is in the repository, once.
    let tags = registry.tags("stages");
    let mut digests: Vec<&str> = tags.iter().map(|t| t.split('-').next().unwrap()).collect();
    digests.sort();
    digests.dedup();
    assert_eq!(digests.len(), tags.len(), "{tags:?}");
    assert_eq!(tags.len(), built.len(), "{tags:?} for {built:?}");
    // Their layers went compressed (zstd, the --repo default) though the build committed them
    // plain: the base's as imported, the built ones converted by the publisher.
    for tag in &tags {
        let manifest = registry_manifest(&registry, "stages", tag);
        for layer in manifest["layers"].as_array().unwrap() {
            assert_eq!(
                layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd",
                "{tag}: {manifest}"
            );
        }
    }
    // Another machine takes everything from the repository and builds nothing.
    let b = Env::new();
    let (ok, stderr) = repo_build(&b, &b.project("app", STAGES), &repo);
    assert!(ok, "{stderr}");
    assert_eq!(built_stages(&stderr), Vec::<String>::new(), "{stderr}");
    let run = b.strata(&["run", "app"]);
    assert_eq!(String::from_utf8_lossy(&run.stdout), "one\ntwo\nthree\n");
    assert_eq!(b.run_sh("app", "wc -c < /big"), "20000000\n");
}

#[test]
fn a_stage_that_cannot_be_published_fails_the_build_and_is_named() {
    let mut registry = Registry::read_only();
    let repo = format!("{}/stages", registry.host());
    let env = Env::new();
    let dir = env.project("app", APP);
    let (ok, stderr) = repo_build(&env, &dir, &repo);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains(&format!("not published to the stage repository {repo}")),
        "{stderr}"
    );
    for stage in ["app/install", "app/setup"] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&format!("stage {stage} ("))),
            "{stage} is not named: {stderr}"
        );
    }
    assert!(registry.tags("stages").is_empty());
    // The stages were built and kept: a build without the repository runs nothing.
    assert_eq!(env.build_ok(&dir), Vec::<String>::new());
    assert_eq!(
        String::from_utf8_lossy(&env.strata(&["run", "app"]).stdout),
        "one\ntwo\n"
    );
    // The next build with the repository, once it takes writes, runs nothing and publishes
    // what the failed one could not: an empty store then builds nothing either.
    registry.make_writable();
    let (ok, stderr) = repo_build(&env, &dir, &repo);
    assert!(ok, "{stderr}");
    assert_eq!(built_stages(&stderr), Vec::<String>::new(), "{stderr}");
    // from, install, setup, dockerInstructions.
    assert_eq!(registry.tags("stages").len(), 4, "{stderr}");
    let other = Env::new();
    let (ok, stderr) = repo_build(&other, &other.project("app", APP), &repo);
    assert!(ok, "{stderr}");
    assert_eq!(built_stages(&stderr), Vec::<String>::new(), "{stderr}");
}

#[test]
fn a_push_cut_by_a_dying_registry_completes_on_rerun() {
    let mut registry = Registry::start();
    let env = Env::new();
    let dir = env.project(
        "big",
        "image: big\nfrom: busybox:latest\nshell:\n  install:\n  - head -c 60000000 /dev/urandom > /blob\n",
    );
    env.build_ok(&dir);
    let reference = format!("{}/team/big:1", registry.host());
    let push = env
        .cmd()
        .args(["push", "big", &reference])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Killed once the layer's upload is under way (its bytes are arriving in the registry's
    // upload area), not after a guessed delay.
    let deadline = Instant::now() + Duration::from_secs(60);
    while registry.uploading("team/big") < 1 << 20 {
        assert!(
            Instant::now() < deadline,
            "the push never started uploading the layer"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    registry.kill();
    let out = push.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a push whose registry died mid-upload succeeded:\n{stderr}"
    );
    assert!(
        stderr.contains("push big to"),
        "a clear error naming the push:\n{stderr}"
    );
    registry.restart();
    let out = env.strata(&["push", "big", &reference]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b = Env::empty();
    let dir = b.project(
        "pull",
        &format!("image: p\nfrom: {reference}\nshell:\n  install:\n  - wc -c < /blob > /size\n"),
    );
    b.build_ok(&dir);
    assert_eq!(b.run_sh("p", "cat /size").trim(), "60000000");
}

/// A one-file HTTP server on 127.0.0.1 that answers every request with `body` and records
/// whether any request carried an `Authorization` header.
struct BlobServer {
    port: u16,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl BlobServer {
    fn start(body: Vec<u8>) -> BlobServer {
        use std::io::{BufRead, BufReader, Write};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(&stream);
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                seen.lock().unwrap().push(head);
                let mut out = &stream;
                let _ = write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = out.write_all(&body);
            }
        });
        BlobServer { port, requests }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/layer.tar.gz", self.port)
    }

    fn saw_authorization(&self) -> bool {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .any(|h| h.to_ascii_lowercase().contains("\nauthorization:"))
    }
}

/// Uploads `bytes` as a blob of `repository` with curl (POST, then PUT with the digest).
fn upload_blob(registry: &Registry, repository: &str, bytes: &[u8]) -> String {
    let digest = strata_digest::Digest::of(bytes).to_string();
    let out = Command::new("curl")
        .args(["-sf", "-X", "POST", "-D", "-", "-o", "/dev/null"])
        .arg(format!(
            "http://{}/v2/{repository}/blobs/uploads/",
            registry.host()
        ))
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&out.stdout).to_string();
    let location = headers
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or(l.strip_prefix("location: "))
        })
        .unwrap_or_else(|| panic!("no upload location: {headers}"))
        .trim()
        .to_string();
    let location = if location.starts_with("http") {
        location
    } else {
        format!("http://{}{location}", registry.host())
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let mut put = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/octet-stream",
        ])
        .arg("--data-binary")
        .arg("@-")
        .arg(format!("{location}{sep}digest={digest}"))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    put.stdin.take().unwrap().write_all(bytes).unwrap();
    assert!(put.wait().unwrap().success(), "blob upload failed");
    digest
}

/// Pushes to `registry` an image whose only layer is foreign: its descriptor has `url`, and
/// the registry has no blob of it. Returns the reference and the layer digest.
fn push_foreign_image(registry: &Registry, url_of: impl Fn(&[u8]) -> String) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("foreign.txt"), "from elsewhere\n").unwrap();
    let tar = Command::new("tar")
        .args(["-cf", "-", "-C"])
        .arg(dir.path())
        .arg("foreign.txt")
        .output()
        .unwrap()
        .stdout;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let blob = gz.finish().unwrap();
    let layer = strata_digest::Digest::of(&blob).to_string();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [strata_digest::Digest::of(&tar).to_string()]}
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config_digest = upload_blob(registry, "base/foreign", &config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                    "digest": layer, "size": blob.len(), "urls": [url_of(&blob)]}]
    });
    let out = Command::new("curl")
        .args(["-sS", "--fail-with-body", "-X", "PUT", "-H"])
        .arg("Content-Type: application/vnd.oci.image.manifest.v1+json")
        .arg("--data-binary")
        .arg(serde_json::to_string(&manifest).unwrap())
        .arg(format!(
            "http://{}/v2/base/foreign/manifests/1",
            registry.host()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "manifest push: {} {}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    (format!("{}/base/foreign:1", registry.host()), layer)
}

fn registry_has_blob(registry: &Registry, repository: &str, digest: &str) -> bool {
    Command::new("curl")
        .args(["-sf", "-I"])
        .arg(format!(
            "http://{}/v2/{repository}/blobs/{digest}",
            registry.host()
        ))
        .status()
        .unwrap()
        .success()
}

#[test]
fn foreign_layers_come_from_their_urls_and_are_not_pushed() {
    let registry = Registry::start();
    let server = std::sync::OnceLock::new();
    let (base, layer) = push_foreign_image(&registry, |blob| {
        server
            .get_or_init(|| BlobServer::start(blob.to_vec()))
            .url()
    });
    let server = server.get().unwrap();
    assert!(!registry_has_blob(&registry, "base/foreign", &layer));

    let env = Env::empty();
    let dir = env.project(
        "child",
        &format!("image: child\nfrom: {base}\ndocker:\n  ENV:\n    MODE: prod\n"),
    );
    env.build_ok(&dir);
    assert!(
        !server.requests.lock().unwrap().is_empty(),
        "the url was not used"
    );
    assert!(
        !server.saw_authorization(),
        "registry credentials went to the url"
    );

    let pushed = format!("{}/team/child:1", registry.host());
    let out = env.strata(&["push", "child", &pushed]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!registry_has_blob(&registry, "team/child", &layer));
    let manifest = Command::new("curl")
        .args([
            "-sf",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
        ])
        .arg(format!(
            "http://{}/v2/team/child/manifests/1",
            registry.host()
        ))
        .output()
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&manifest.stdout).unwrap();
    assert_eq!(manifest["layers"][0]["digest"], layer.as_str());
    assert_eq!(manifest["layers"][0]["urls"][0], server.url().as_str());
}

#[test]
fn a_foreign_layer_with_wrong_bytes_is_refused() {
    let registry = Registry::start();
    // As long as the layer, so only its digest tells it is wrong.
    let server = std::sync::OnceLock::new();
    let (base, layer) = push_foreign_image(&registry, |blob| {
        server
            .get_or_init(|| BlobServer::start(vec![b'x'; blob.len()]))
            .url()
    });
    let server = server.get().unwrap();
    let env = Env::empty();
    let before = crate::support::store_listing(env.store.path());
    let dir = env.project("child", &format!("image: child\nfrom: {base}\n"));
    let out = env.build(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&layer) && stderr.contains(&server.url()) && stderr.contains("digest"),
        "{stderr}"
    );
    // Nothing but blobs arrived (the config, pulled before the layers, is unreferenced
    // garbage for gc), and not the wrong layer bytes under any name.
    let after = crate::support::store_listing(env.store.path());
    let added: Vec<_> = after.iter().filter(|e| !before.contains(e)).collect();
    let hex = layer.trim_start_matches("sha256:");
    assert!(
        added.len() <= 2
            && added
                .iter()
                .all(|(p, _)| p.starts_with("blobs/") && !p.contains(hex)),
        "{added:?}"
    );
}
