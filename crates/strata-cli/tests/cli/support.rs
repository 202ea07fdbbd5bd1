//! Test fixtures: a fresh store with a busybox base image, projects written on the fly, and
//! helpers to read what a build printed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use assert_cmd::cargo::CommandCargoExt;
use tempfile::TempDir;

/// The busybox root file system tarball, made from busybox-static once per target dir (test
/// processes share it: each writes its own file and renames it into place, so a reader never
/// sees half a tarball and nothing is left in /tmp).
pub fn busybox_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let tar = Path::new(env!("CARGO_TARGET_TMPDIR")).join("busybox.tar");
        if tar.exists() {
            return tar;
        }
        let partial = tar.with_extension(format!("tar.{}", std::process::id()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-rootfs.sh");
        let status = Command::new("bash")
            .arg(script)
            .arg(&partial)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "scripts/busybox-rootfs.sh failed (is busybox-static installed?)"
        );
        std::fs::rename(&partial, &tar).expect("rename the busybox tarball into place");
        tar
    })
}

/// A store and a work directory, removed at the end of the test.
pub struct Env {
    pub store: TempDir,
    pub work: TempDir,
}

impl Env {
    /// A fresh store with `busybox:latest` imported.
    pub fn new() -> Env {
        let env = Env::empty();
        let out = env.strata(&["import", busybox_tar().to_str().unwrap(), "busybox:latest"]);
        assert!(
            out.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(user) = crate::rootless::rerun_user() {
            use std::os::unix::fs::MetadataExt;
            let blobs = std::fs::metadata(env.store.path().join("blobs")).unwrap();
            assert_eq!(
                blobs.uid(),
                user.uid,
                "the rerun's strata runs as {}",
                user.name
            );
        }
        env
    }

    /// Imports busybox again as `busybox:latest`, with `motd` as its `/etc/motd`: a different
    /// root file system under the same name.
    pub fn reimport_busybox(&self, motd: &str) {
        let rootfs = self.work.path().join("rootfs");
        std::fs::create_dir(&rootfs).unwrap();
        let status = Command::new("tar")
            .args(["-xf", busybox_tar().to_str().unwrap(), "-C"])
            .arg(&rootfs)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::write(rootfs.join("etc/motd"), motd).unwrap();
        let out = self.strata(&["import", rootfs.to_str().unwrap(), "busybox:latest"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A fresh, empty store.
    pub fn empty() -> Env {
        assert!(
            rustix::process::geteuid().is_root(),
            "these tests create namespaces and mount overlayfs: run them as root"
        );
        let env = Env {
            store: tempfile::Builder::new()
                .prefix("strata-store-")
                .tempdir()
                .unwrap(),
            work: tempfile::Builder::new()
                .prefix("strata-work-")
                .tempdir()
                .unwrap(),
        };
        if let Some(user) = crate::rootless::rerun_user() {
            user.own(env.store.path());
            user.own(env.work.path());
        }
        env
    }

    /// A `strata` command on this store, run in the work dir, as in CI (plain progress); as
    /// the rootless tests' user when this process reruns suites rootless (`rootless.rs`).
    pub fn cmd(&self) -> Command {
        let mut cmd = match crate::rootless::rerun_user() {
            Some(user) => user.strata(),
            None => Command::cargo_bin("strata").unwrap(),
        };
        cmd.env("STRATA_STORE", self.store.path())
            .env("CI", "1")
            .current_dir(self.work.path());
        cmd
    }

    /// Runs strata with `args` and returns its output.
    pub fn strata(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Writes `strata.yaml` of project `name` and returns its directory.
    pub fn project(&self, name: &str, yaml: &str) -> PathBuf {
        let dir = self.work.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("strata.yaml"), yaml).unwrap();
        dir
    }

    /// Builds the project in `dir` (plain progress) and returns the output.
    pub fn build(&self, dir: &Path) -> Output {
        self.cmd()
            .args(["build", "--progress", "plain"])
            .current_dir(dir)
            .output()
            .unwrap()
    }

    /// Builds and asserts success; returns the `image/stage` names that ran.
    pub fn build_ok(&self, dir: &Path) -> Vec<String> {
        let out = self.build(dir);
        assert!(
            out.status.success(),
            "build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        built_stages(&String::from_utf8_lossy(&out.stderr))
    }

    /// The stage records in the store, as JSON.
    pub fn stage_records(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.store.path().join("stages")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                out.push(serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap());
            }
        }
        out
    }

    /// Every stage record as (`image/stage`, digest), sorted.
    pub fn stage_digests(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .stage_records()
            .iter()
            .map(|r| {
                let image = r["image"].as_str().unwrap();
                let stage = r["stage"].as_str().unwrap();
                (
                    format!("{image}/{stage}"),
                    r["digest"].as_str().unwrap().into(),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// `strata inspect IMAGE` (`Null` when it fails).
    pub fn inspect(&self, image: &str) -> serde_json::Value {
        let out = self.strata(&["inspect", image]);
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    /// The digest (hex) of image `image`'s last stage, `<no such image>` without one.
    pub fn last_stage(&self, image: &str) -> String {
        self.inspect(image)["stages"]
            .as_array()
            .and_then(|s| s.last())
            .and_then(|s| s["digest"].as_str())
            .unwrap_or("<no such image>")
            .to_string()
    }

    /// Runs `sh -c script` in image `image` and returns stdout (asserting success).
    pub fn run_sh(&self, image: &str, script: &str) -> String {
        let out = self.strata(&["run", image, "--", "sh", "-c", script]);
        assert!(
            out.status.success(),
            "run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// Runs `cmd` and returns its stdout, asserting it succeeded (its stderr in the message).
pub fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Whitespace-normalized text: runs of blanks and newlines become one space.
pub fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Evaluates a `checks` file (the corpus format) against built images and returns the failed
/// checks, each prefixed with `case`.
///
/// One check per line: `IMAGE | COMMAND => EXPECTED` runs `sh -c COMMAND` in `IMAGE` (as
/// `run --entrypoint sh`) and compares its stdout and stderr; `IMAGE | @/json/pointer =>
/// EXPECTED` compares a field of the image config (`strata inspect`, `.config`) as compact
/// JSON (`<missing>` when absent). Both sides are compared after [`words`]; in EXPECTED,
/// `{id:IMAGE}` stands for that image's id (`strata inspect`, `.id`), `{stage:IMAGE}` for its
/// last stage's digest (hex), and a JSON value `"<present>"` for any value that is there.
/// Blank lines and lines starting with `#` are skipped.
pub fn run_checks(env: &Env, case: &str, checks: &str) -> Vec<String> {
    let mut failures = Vec::new();
    for line in checks
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let parsed = line.split_once(" | ").and_then(|(image, rest)| {
            let (probe, expected) = rest.rsplit_once(" => ")?;
            Some((image, probe, expected))
        });
        let Some((image, probe, expected)) = parsed else {
            failures.push(format!("{case}: malformed check `{line}`"));
            continue;
        };
        let actual = if let Some(pointer) = probe.strip_prefix('@') {
            let out = env.strata(&["inspect", image]);
            let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            value["config"]
                .pointer(pointer)
                .map(|v| v.to_string())
                .unwrap_or_else(|| "<missing>".into())
        } else {
            let out = env.strata(&["run", "--entrypoint", "sh", image, "--", "-c", probe]);
            String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
        };
        let expected = with_image_ids(env, expected);
        let actual = present_where_expected(&expected, &actual);
        if words(&actual) != words(&expected) {
            failures.push(format!(
                "{case}: {image} | {probe}\n  expected: {expected}\n  actual:   {}",
                words(&actual)
            ));
        }
    }
    failures
}

/// `actual` with each value `expected` gives as `"<present>"` (a JSON object's member, or
/// the whole value) replaced by that word when it is there: values the check only requires
/// to exist (a commit, a stage's time).
fn present_where_expected(expected: &str, actual: &str) -> String {
    const PRESENT: &str = "\"<present>\"";
    if !expected.contains(PRESENT) {
        return actual.to_string();
    }
    if expected.trim() == PRESENT {
        return match actual.trim() {
            "<missing>" => actual.to_string(),
            _ => PRESENT.to_string(),
        };
    }
    let (Ok(serde_json::Value::Object(want)), Ok(serde_json::Value::Object(mut got))) = (
        serde_json::from_str::<serde_json::Value>(expected),
        serde_json::from_str::<serde_json::Value>(actual),
    ) else {
        return actual.to_string();
    };
    for (key, value) in &want {
        if value == "<present>"
            && let Some(v) = got.get_mut(key)
        {
            *v = value.clone();
        }
    }
    serde_json::Value::Object(got).to_string()
}

/// `text` with each `{id:IMAGE}` replaced by that image's id and each `{stage:IMAGE}` by the
/// digest (hex) of its last stage.
fn with_image_ids(env: &Env, text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = ["{id:", "{stage:"]
        .iter()
        .filter_map(|p| rest.find(p).map(|i| (i, *p)))
        .min()
    {
        let (i, prefix) = start;
        let Some((image, tail)) = rest[i + prefix.len()..].split_once('}') else {
            break;
        };
        let found = match prefix {
            "{id:" => env.inspect(image)["id"]
                .as_str()
                .unwrap_or("<no such image>")
                .to_string(),
            _ => env.last_stage(image),
        };
        out.push_str(&rest[..i]);
        out.push_str(&found);
        rest = tail;
    }
    out + rest
}

/// The `image/stage` names a plain-progress build reported as built, in order.
pub fn built_stages(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.split_once(": built in ").map(|(s, _)| s.to_string()))
        .collect()
}

/// Checks that every stage record in the store is complete: its manifest, config and layer
/// blobs exist with the right digests, and every layer has a snapshot or a blob to unpack.
pub fn assert_store_consistent(store: &Path) {
    let blob = |digest: &str| {
        store
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap())
    };
    let verify = |digest: &str| {
        let bytes =
            std::fs::read(blob(digest)).unwrap_or_else(|e| panic!("blob {digest} missing: {e}"));
        assert_eq!(
            strata_digest::Digest::of(&bytes).to_string(),
            digest,
            "blob {digest} is corrupt"
        );
    };
    for entry in std::fs::read_dir(store.join("stages")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{} is not a complete record: {e}", path.display()));
        verify(record["manifest"].as_str().unwrap());
        verify(record["config"].as_str().unwrap());
        for layer in record["layers"].as_array().unwrap() {
            let digest = layer["digest"].as_str().unwrap();
            // A plain layer (named by its diff id) may be its snapshot alone.
            let snapshot = store
                .join("snapshots")
                .join(digest.strip_prefix("sha256:").unwrap());
            if !(layer["diff_id"] == layer["digest"] && snapshot.is_dir()) {
                verify(digest);
            }
        }
    }
}

/// Every file under the store's content directories with its size, for before/after comparisons.
pub fn store_listing(store: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for sub in ["blobs", "stages", "tags", "snapshots"] {
        let root = store.join(sub);
        if !root.exists() {
            continue;
        }
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                let meta = entry.metadata().unwrap();
                let rel = entry
                    .path()
                    .strip_prefix(store)
                    .unwrap()
                    .display()
                    .to_string();
                if meta.is_dir() {
                    stack.push(entry.path());
                }
                out.push((rel, if meta.is_file() { meta.len() } else { 0 }));
            }
        }
    }
    out.sort();
    out
}

/// Entries left in the store's scratch and ingest directories (lock files aside).
pub fn leftovers(store: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["tmp", "ingest"] {
        if let Ok(entries) = std::fs::read_dir(store.join(sub)) {
            for e in entries {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                if !name.ends_with(".lock") {
                    out.push(format!("{sub}/{name}"));
                }
            }
        }
    }
    out
}

/// Runs `git ARGS` in `dir` with a committer of its own (tests make their repositories);
/// fails the test when git fails. Returns its stdout, trimmed.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A git server on 127.0.0.1 serving the bare repositories in `repos` at `URL/NAME.git`:
/// busybox's httpd (the toolbox's busybox-static) running git's own `git http-backend` as a
/// CGI program, behind HTTP basic authentication when `auth` (`USER:PASSWORD`) is given.
/// Stopped (by its pid) when dropped.
pub struct GitServer {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT/cgi-bin/git`.
    pub url: String,
}

impl GitServer {
    pub fn start(root: &Path, repos: &Path, auth: Option<&str>) -> GitServer {
        let www = root.join("www");
        std::fs::create_dir_all(www.join("cgi-bin")).unwrap();
        let cgi = www.join("cgi-bin/git");
        std::fs::write(
            &cgi,
            format!(
                "#!/bin/sh\nexport GIT_PROJECT_ROOT={} GIT_HTTP_EXPORT_ALL=1\n\
                 exec /usr/lib/git-core/git-http-backend\n",
                repos.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&cgi, std::fs::Permissions::from_mode(0o755)).unwrap();
        let conf = root.join("httpd.conf");
        let rule = auth.map(|a| format!("/cgi-bin:{a}\n")).unwrap_or_default();
        std::fs::write(&conf, rule).unwrap();
        // A free port: bound and released; busybox binds it right after.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("busybox")
            .args(["httpd", "-f", "-p", &format!("127.0.0.1:{port}")])
            .arg("-h")
            .arg(&www)
            .arg("-c")
            .arg(&conf)
            .spawn()
            .expect("busybox httpd (busybox-static)");
        // Ready once it accepts connections.
        let ready = (0..200).any(|_| {
            let up = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            if !up {
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            up
        });
        assert!(ready, "busybox httpd did not start");
        GitServer {
            child,
            url: format!("http://127.0.0.1:{port}/cgi-bin/git"),
        }
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
