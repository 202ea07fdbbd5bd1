//! Registries: bases pulled from one, images pushed to one, and one stage cache shared by
//! builders with separate stores (`--repo`), against a real `docker-registry` on 127.0.0.1.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Env, built_stages};

/// A throwaway registry on a free loopback port; killed on drop.
struct Registry {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("strata-registry-")
            .tempdir()
            .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
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
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{}\n",
                self.dir.path().join("data").display(),
                self.port
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
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

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn tags(&self, repository: &str) -> Vec<String> {
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
    let reference = format!("{}/team/app:1", registry.host());
    let out = a.strata(&["push", "app", &reference]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
