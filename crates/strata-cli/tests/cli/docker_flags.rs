//! docker's `build` flags on a Dockerfile build: `--no-cache(-filter)`, `--secret env=`,
//! `--ssh` (a real ssh-agent, asked through the socket from inside the build), `-o` in every
//! form, `--progress rawjson|tty`, `--pull` (against a real registry), `--build-context`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::Env;

/// A context directory `name` with `dockerfile`.
fn context(env: &Env, name: &str, dockerfile: &str) -> PathBuf {
    let dir = env.work.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    dir
}

/// `strata build --progress plain ARGS... DIR`, asserting success.
fn build(env: &Env, dir: &Path, args: &[&str]) -> Output {
    let out = env
        .cmd()
        .args(["build", "--progress", "plain"])
        .args(args)
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "build {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A fresh random line written by a step: a step run again writes another one.
const STAMP: &str = "cat /proc/sys/kernel/random/uuid";

#[test]
fn no_cache_rebuilds_and_its_result_is_reused_after() {
    let env = Env::new();
    let dir = context(
        &env,
        "nc",
        &format!(
            "FROM busybox:latest AS a\nRUN {STAMP} > /a\nFROM busybox:latest AS b\nRUN {STAMP} > /b\n\
             FROM b\nCOPY --from=a /a /a\n"
        ),
    );
    let stamps = |env: &Env| env.run_sh("nc", "cat /a /b");
    build(&env, &dir, &["-t", "nc"]);
    let first = stamps(&env);
    build(&env, &dir, &["-t", "nc"]);
    assert_eq!(stamps(&env), first, "a plain rebuild reuses every step");

    build(&env, &dir, &["-t", "nc", "--no-cache"]);
    let fresh = stamps(&env);
    let (a0, b0) = first.split_once('\n').unwrap();
    let (a1, b1) = fresh.split_once('\n').unwrap();
    assert!(
        a0 != a1 && b0 != b1,
        "--no-cache ran every step again: {first} / {fresh}"
    );
    build(&env, &dir, &["-t", "nc"]);
    assert_eq!(
        stamps(&env),
        fresh,
        "the steps --no-cache ran replace the cached ones"
    );

    // Only stage b (and the target built on it) again; a stays.
    build(&env, &dir, &["-t", "nc", "--no-cache-filter", "b"]);
    let filtered = stamps(&env);
    let (a2, b2) = filtered.split_once('\n').unwrap();
    assert_eq!(a2, a1, "stage a is not in the filter");
    assert_ne!(b2, b1, "stage b is");

    // A stapel config has no stages of that kind: the flag is refused there.
    let project = env.project("stapel", "image: s\nfrom: busybox:latest\n");
    let out = env
        .cmd()
        .current_dir(&project)
        .args(["build", "--no-cache"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("are for Dockerfile builds"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn secrets_from_variables_and_files() {
    let env = Env::new();
    let dir = context(
        &env,
        "sec",
        "FROM busybox:latest\n\
         RUN --mount=type=secret,id=tok --mount=type=secret,id=ENVTOK --mount=type=secret,id=f \
         cat /run/secrets/tok /run/secrets/ENVTOK /run/secrets/f > /got\n",
    );
    std::fs::write(dir.join("file.txt"), "from a file\n").unwrap();
    let out = env
        .cmd()
        .env("MY_TOKEN", "from a variable\n")
        .env("ENVTOK", "from its own name\n")
        .args(["build", "--progress", "plain", "-t", "sec"])
        .args(["--secret", "id=tok,env=MY_TOKEN", "--secret", "id=ENVTOK"])
        .arg("--secret")
        .arg(format!("id=f,src={}", dir.join("file.txt").display()))
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        env.run_sh("sec", "cat /got"),
        "from a variable\nfrom its own name\nfrom a file\n"
    );
    let out = env
        .cmd()
        .env_remove("NOPE")
        .args(["build", "-t", "sec", "--secret", "id=x,env=NOPE"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--secret id=x,env=NOPE") && stderr.contains("NOPE is not set"),
        "{stderr}"
    );
}

/// A running `ssh-agent` holding one new key; killed on drop.
struct Agent {
    dir: tempfile::TempDir,
    pid: String,
}

impl Agent {
    fn start() -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let out = Command::new("ssh-agent")
            .arg("-a")
            .arg(&socket)
            .output()
            .expect("ssh-agent (openssh-client) is installed");
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        let pid = text
            .split("SSH_AGENT_PID=")
            .nth(1)
            .and_then(|s| s.split(';').next())
            .unwrap()
            .to_string();
        let agent = Agent { dir, pid };
        let key = agent.dir.path().join("key");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "strata-test", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(status.success());
        let status = Command::new("ssh-add")
            .arg(&key)
            .env("SSH_AUTH_SOCK", agent.socket())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        agent
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    /// What `ssh-add -l` says on this machine.
    fn listing(&self) -> String {
        let out = Command::new("ssh-add")
            .arg("-l")
            .env("SSH_AUTH_SOCK", self.socket())
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(&self.pid).status();
    }
}

/// Copies the host's `ssh-add` and the libraries it loads into `root`, at their own paths.
fn copy_ssh_add(root: &Path) {
    let ldd = Command::new("ldd")
        .arg("/usr/bin/ssh-add")
        .output()
        .unwrap();
    let mut files = vec![PathBuf::from("/usr/bin/ssh-add")];
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            files.push(PathBuf::from(p));
        }
    }
    for file in files {
        let to = root.join(file.strip_prefix("/").unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&file, &to).unwrap();
    }
}

#[test]
fn ssh_forwards_the_agent_to_run_mount_ssh() {
    let env = Env::new();
    let agent = Agent::start();
    let dir = context(
        &env,
        "ssh",
        "FROM busybox:latest\nCOPY root/ /\n\
         RUN --mount=type=ssh echo $SSH_AUTH_SOCK > /sock && ssh-add -l > /keys\n\
         RUN --mount=type=ssh,id=other,target=/agent SSH_AUTH_SOCK=/agent ssh-add -l > /other\n",
    );
    copy_ssh_add(&dir.join("root"));
    let listing = agent.listing();
    assert!(listing.contains("strata-test"), "{listing}");
    let out = env
        .cmd()
        .env("SSH_AUTH_SOCK", agent.socket())
        .args(["build", "--progress", "plain", "-t", "ssh"])
        .args(["--ssh", "default"])
        .arg("--ssh")
        .arg(format!("other={}", agent.socket().display()))
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        env.run_sh("ssh", "cat /sock /keys /other"),
        format!("/run/buildkit/ssh_agent.0\n{listing}{listing}")
    );

    // Without --ssh a required agent fails the step, naming it; a file is no agent.
    let required = context(
        &env,
        "ssh-required",
        "FROM busybox:latest\nRUN --mount=type=ssh,required=true true\n",
    );
    let out = env
        .cmd()
        .args(["build", "-t", "req"])
        .arg(&required)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the ssh agent `default` is required"),
        "{stderr}"
    );
    let out = env
        .cmd()
        .args(["build", "-t", "req", "--ssh"])
        .arg(format!("default={}", required.join("Dockerfile").display()))
        .arg(&required)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not an agent's socket"), "{stderr}");
}

#[test]
fn outputs_write_the_file_system_and_the_image() {
    let env = Env::new();
    let dir = context(
        &env,
        "out",
        "FROM busybox:latest\nRUN mkdir /made && echo hello > /made/file && chown 1000:1000 /made/file \
         && ln -s file /made/link\n",
    );
    let tree = env.work.path().join("tree");
    let short = env.work.path().join("short");
    let files = env.work.path().join("fs.tar");
    let oci = env.work.path().join("oci.tar");
    let docker = env.work.path().join("docker.tar");
    build(
        &env,
        &dir,
        &[
            "-t",
            "out",
            "-o",
            &format!("type=local,dest={}", tree.display()),
            "-o",
            short.to_str().unwrap(),
            "--output",
            &format!("type=tar,dest={}", files.display()),
            "-o",
            &format!("type=oci,dest={}", oci.display()),
            "-o",
            &format!("type=docker,dest={}", docker.display()),
        ],
    );
    for root in [&tree, &short] {
        let file = root.join("made/file");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "hello\n");
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 1000);
        assert_eq!(
            std::fs::read_link(root.join("made/link")).unwrap(),
            Path::new("file")
        );
        assert!(root.join("bin/busybox").is_file(), "the base's files too");
    }
    let list = |tar: &Path| {
        let out = Command::new("tar").arg("-tvf").arg(tar).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let listing = list(&files);
    assert!(
        listing
            .lines()
            .any(|l| l.contains("1000/1000") && l.ends_with("made/file")),
        "{listing}"
    );
    assert!(listing.contains("made/link -> file"), "{listing}");
    assert!(list(&oci).contains("index.json"));
    assert!(list(&docker).contains("manifest.json"));

    // A bad output names itself.
    let out = env
        .cmd()
        .args(["build", "-t", "out", "-o", "type=exotic,dest=x"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no `exotic` exporter"), "{stderr}");
}

/// `-o` exporter options as docker users pass them, each result read by the tool that reads
/// it: skopeo and umoci for OCI layouts, tar for a docker archive, the registry (skopeo
/// again) for pushes.
#[test]
fn output_options_name_compress_and_push() {
    let registry = crate::registry::Registry::start();
    let env = Env::new();
    let dir = context(
        &env,
        "opts",
        "FROM busybox:latest\nRUN mkdir /made && echo hello > /made/file\n",
    );
    let work = env.work.path();
    let zstd = work.join("zstd.tar");
    let layout = work.join("layout");
    let docker_types = work.join("docker-types.tar");
    let named = work.join("named.tar");
    let split = work.join("split");
    let fast = work.join("fast.tar");
    let best = work.join("best.tar");
    let pushed = format!("{}/team/opts:1", registry.host());
    let pushed_oci = format!("{}/team/opts:oci", registry.host());
    build(
        &env,
        &dir,
        &[
            "-t",
            "opts",
            "-o",
            &format!(
                "type=oci,dest={},name=example.com/team/app:v1,compression=zstd,force-compression=true",
                zstd.display()
            ),
            "-o",
            &format!(
                "type=oci,tar=false,dest={},compression=uncompressed,force-compression=true",
                layout.display()
            ),
            "-o",
            &format!(
                "type=oci,dest={},oci-mediatypes=false,force-compression=true",
                docker_types.display()
            ),
            "-o",
            &format!(
                "type=oci,dest={},compression-level=1,force-compression=true",
                fast.display()
            ),
            "-o",
            &format!(
                "type=oci,dest={},compression-level=9,force-compression=true",
                best.display()
            ),
            "-o",
            &format!(
                "type=docker,dest={},\"name=first:1,second:2\"",
                named.display()
            ),
            "-o",
            &format!("type=local,dest={},platform-split=true", split.display()),
            "-o",
            &format!("type=registry,name={pushed}"),
            "-o",
            &format!("type=image,name={pushed_oci},push=true,oci-mediatypes=true"),
            "-o",
            "type=image,name=local/opts:kept",
        ],
    );
    let run = crate::support::stdout_of;
    let unpack = |tar: &Path| {
        let to = tar.with_extension("d");
        std::fs::create_dir_all(&to).unwrap();
        run(Command::new("tar").arg("-xf").arg(tar).arg("-C").arg(&to));
        to
    };
    let raw = |layout: &Path, tag: &str| {
        run(Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}:{tag}", layout.display())))
    };
    // name= names the image (its tag for skopeo, the full name for containerd); every layer,
    // the base's too, in zstd.
    let zstd_layout = unpack(&zstd);
    let manifest = raw(&zstd_layout, "v1");
    assert_eq!(manifest.matches("tar+zstd").count(), 2, "{manifest}");
    let index = std::fs::read_to_string(zstd_layout.join("index.json")).unwrap();
    assert!(index.contains("example.com/team/app:v1"), "{index}");
    // tar=false: a layout directory umoci unpacks, its layers uncompressed.
    let manifest = raw(&layout, "latest");
    assert_eq!(
        manifest.matches("image.layer.v1.tar\"").count(),
        2,
        "{manifest}"
    );
    let bundle = work.join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle));
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/made/file")).unwrap(),
        "hello\n"
    );
    // oci-mediatypes=false: Docker's manifest in the layout (which skopeo's layout reader
    // skips, reading only OCI descriptors: read as JSON).
    let docker_layout = unpack(&docker_types);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(docker_layout.join("index.json")).unwrap()).unwrap();
    let entry = &index["manifests"][0];
    assert_eq!(
        entry["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let digest = entry["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap();
    let manifest =
        std::fs::read_to_string(docker_layout.join("blobs/sha256").join(digest)).unwrap();
    assert!(
        manifest.contains("application/vnd.docker.container.image.v1+json")
            && manifest.contains("application/vnd.docker.image.rootfs.diff.tar.gzip"),
        "{manifest}"
    );
    // compression-level: the same gzip layers at two levels are other blobs, each read back
    // as the same tars (skopeo checks every layer's digest as it copies).
    let layers = |layout: &Path| {
        let manifest: serde_json::Value = serde_json::from_str(&raw(layout, "latest")).unwrap();
        let digests: Vec<String> = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect();
        digests
    };
    let (fast, best) = (unpack(&fast), unpack(&best));
    let (fast_layers, best_layers) = (layers(&fast), layers(&best));
    assert_eq!(fast_layers.len(), 2);
    assert!(
        fast_layers.iter().all(|d| !best_layers.contains(d)),
        "{fast_layers:?} {best_layers:?}"
    );
    for layout in [&fast, &best] {
        let copied = layout.with_extension("copy");
        run(Command::new("skopeo")
            .arg("copy")
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("oci:{}:latest", copied.display())));
    }
    // name= of a docker archive: every name in its RepoTags.
    let listed = std::fs::read_to_string(unpack(&named).join("manifest.json")).unwrap();
    assert!(
        listed.contains("\"RepoTags\":[\"first:1\",\"second:2\"]"),
        "{listed}"
    );
    // platform-split: the file system under OS_ARCH.
    let platform = format!("linux_{}", strata_registry::oci::host_architecture());
    assert_eq!(
        std::fs::read_to_string(split.join(platform).join("made/file")).unwrap(),
        "hello\n"
    );
    // type=registry pushes with Docker's media types, type=image,push=true,oci-mediatypes=true
    // with OCI's; type=image without push names the image in the store.
    let remote = |image: &str| {
        run(Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{image}")))
    };
    assert!(
        remote(&pushed).contains("application/vnd.docker.distribution.manifest.v2+json"),
        "{}",
        remote(&pushed)
    );
    assert!(
        remote(&pushed_oci).contains("application/vnd.oci.image.manifest.v1+json"),
        "{}",
        remote(&pushed_oci)
    );
    assert_eq!(env.run_sh("local/opts:kept", "cat /made/file"), "hello\n");

    // Options that are not there, or not for this exporter, are refused by name.
    for (output, says) in [
        (
            "type=oci,dest=x,colour=blue",
            "type=oci has no option `colour`",
        ),
        (
            "type=docker,dest=x,compression=zstd",
            "type=docker has no option `compression`",
        ),
        ("type=registry", "needs name=REFERENCE"),
        ("type=oci,tar=false", "give dest=DIR"),
        ("type=oci,dest=x,compression=lz4", "compression=lz4"),
        ("type=oci,dest=x,compression-level=10", "from 0 to 9"),
        ("type=cacheonly,dest=x", "type=cacheonly exports nothing"),
        (
            "type=cacheonly,compression=gzip",
            "type=cacheonly has no option `compression`",
        ),
        (
            "type=local,dest=x,annotation.a=b",
            "type=local has no option `annotation.*`",
        ),
        (
            "type=docker,dest=x,annotation.a=b",
            "no image manifest to carry annotations",
        ),
        (
            "type=oci,dest=x,annotation-index.a=b",
            "index annotations not supported for single platform export",
        ),
        (
            "type=oci,dest=x,annotation-index-descriptor.a=b",
            "index annotations not supported",
        ),
        (
            "type=oci,dest=x,annotation[windows/amd64].a=b",
            "the build has no platform windows/amd64",
        ),
        (
            "type=oci,dest=x,annotation-layer.a=b",
            "unrecognized annotation type `layer`",
        ),
        (
            "type=oci,dest=x,oci-mediatypes=false,annotation-manifest-descriptor.a=b",
            "cannot export annotations with \"oci-mediatypes=false\"",
        ),
        (
            "type=oci,dest=x,oci-mediatypes=false,annotation.a=b",
            "add oci-mediatypes=true",
        ),
        (
            "type=registry,name=r/x:1,annotation.a=b",
            "add oci-mediatypes=true",
        ),
        (
            "type=image,name=r/x:1,oci-mediatypes=true,annotation-manifest-descriptor.a=b",
            "keep no descriptor",
        ),
        (
            "type=oci,dest=x,rewrite-timestamp=maybe",
            "expected true or false",
        ),
    ] {
        let out = env
            .cmd()
            .args(["build", "-t", "opts", "-o", output])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{output} was taken");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{output}: {stderr}");
    }
}

/// The mtimes of a layer blob's entries (gzip or plain), by path.
fn layer_mtimes(blob: &Path) -> Vec<(String, u64)> {
    let bytes = std::fs::read(blob).unwrap();
    let tar: Box<dyn std::io::Read> = match bytes.starts_with(&[0x1f, 0x8b]) {
        true => Box::new(flate2::read::GzDecoder::new(bytes.as_slice())),
        false => Box::new(bytes.as_slice()),
    };
    let mut archive = tar::Archive::new(tar);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            (path, e.header().mtime().unwrap())
        })
        .collect()
}

/// `-o` annotations land where BuildKit puts them (the manifest, its descriptor in
/// `index.json`), `rewrite-timestamp=true` clamps the times of the layers strata made (and the
/// config's) to `SOURCE_DATE_EPOCH`, `store=false` pushes without tagging, `buildinfo` is
/// taken and ignored, `type=cacheonly` writes nothing and leaves a cache the next build
/// reuses; each read back by skopeo, umoci and the files themselves.
#[test]
fn output_annotations_timestamps_store_and_cacheonly() {
    const EPOCH: u64 = 1_000_000_000;
    let registry = crate::registry::Registry::start();
    let env = Env::new();
    let dir = context(
        &env,
        "ann",
        &format!("FROM busybox:latest\nRUN mkdir /made && {STAMP} > /made/file\n"),
    );
    let work = env.work.path();
    let layout = work.join("layout");
    let plain = work.join("plain");
    let docker = work.join("docker.tar");
    let platform = format!("linux/{}", strata_registry::oci::host_architecture());
    let pushed = format!("{}/team/ann:1", registry.host());
    build(
        &env,
        &dir,
        &[
            "-t",
            "ann",
            "--build-arg",
            &format!("SOURCE_DATE_EPOCH={EPOCH}"),
            "-o",
            &format!(
                "type=oci,tar=false,dest={},force-compression=true,rewrite-timestamp=true,buildinfo=true,buildinfo-attrs=true,\
                 annotation.org.example.title=app,annotation-manifest.org.example.kind=manifest,\
                 annotation[{platform}].org.example.platform=host,\
                 annotation-manifest-descriptor.org.example.descriptor=index-entry",
                layout.display()
            ),
            "-o",
            &format!(
                "type=oci,tar=false,dest={},force-compression=true",
                plain.display()
            ),
            "-o",
            &format!(
                "type=docker,dest={},rewrite-timestamp=true",
                docker.display()
            ),
            "-o",
            "type=image,name=local/ann:kept,unpack=true,annotation.org.example.title=stored",
            "-o",
            &format!(
                "type=image,name={pushed},push=true,store=false,oci-mediatypes=true,annotation.org.example.title=pushed"
            ),
        ],
    );
    let json = |path: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let blob = |layout: &Path, digest: &serde_json::Value| {
        let hex = digest.as_str().unwrap().strip_prefix("sha256:").unwrap();
        layout.join("blobs/sha256").join(hex)
    };
    // The manifest carries annotation.*, annotation-manifest.* and the host platform's;
    // index.json's entry the descriptor's, beside the names.
    let index = json(&layout.join("index.json"));
    let entry = &index["manifests"][0];
    assert_eq!(
        entry["annotations"]["org.example.descriptor"],
        "index-entry"
    );
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        "latest"
    );
    let manifest = json(&blob(&layout, &entry["digest"]));
    let annotations = &manifest["annotations"];
    assert_eq!(annotations["org.example.title"], "app", "{manifest}");
    assert_eq!(annotations["org.example.kind"], "manifest");
    assert_eq!(annotations["org.example.platform"], "host");
    assert!(manifest.get("org.example.descriptor").is_none());
    // The layer strata made has no time after the epoch, the made directory (written now)
    // has the epoch; the base's layer is kept as imported. The config's times are the epoch.
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    let made = layer_mtimes(&blob(&layout, &layers[1]["digest"]));
    assert!(made.iter().all(|(_, t)| *t <= EPOCH), "{made:?}");
    assert!(made.contains(&("made/".into(), EPOCH)), "{made:?}");
    let plain_index = json(&plain.join("index.json"));
    let plain_manifest = json(&blob(&plain, &plain_index["manifests"][0]["digest"]));
    assert_eq!(
        plain_manifest["layers"][0], layers[0],
        "the base layer is the same blob"
    );
    let unclamped = layer_mtimes(&blob(&plain, &plain_manifest["layers"][1]["digest"]));
    assert!(unclamped.iter().any(|(_, t)| *t > EPOCH), "{unclamped:?}");
    assert!(
        plain_manifest
            .get("annotations")
            .is_none_or(|a| a.get("org.example.title").is_none())
    );
    let config = json(&blob(&layout, &manifest["config"]["digest"]));
    assert_eq!(config["created"], "2001-09-09T01:46:40Z");
    assert!(
        config["history"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["created"] == "2001-09-09T01:46:40Z"),
        "{config}"
    );
    // umoci checks every layer against the config's diff ids as it unpacks (gzip: the base
    // is kept as imported, zstd, without force-compression).
    let bundle = work.join("bundle");
    crate::support::stdout_of(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:latest", layout.display()))
            .arg(&bundle),
    );
    use std::os::unix::fs::MetadataExt;
    let file = std::fs::metadata(bundle.join("rootfs/made/file")).unwrap();
    assert_eq!(file.mtime() as u64, EPOCH);
    // The docker archive's layer of the build is clamped too.
    let unpacked = work.join("docker.d");
    std::fs::create_dir_all(&unpacked).unwrap();
    crate::support::stdout_of(
        Command::new("tar")
            .arg("-xf")
            .arg(&docker)
            .arg("-C")
            .arg(&unpacked),
    );
    let listed = json(&unpacked.join("manifest.json"));
    let top = listed[0]["Layers"].as_array().unwrap().last().unwrap();
    let made = layer_mtimes(&unpacked.join(top.as_str().unwrap()));
    assert!(made.contains(&("made/".into(), EPOCH)), "{made:?}");
    // type=image: the stored image carries its annotation (read back from an export of it);
    // store=false pushed its own without tagging it here.
    let stored = work.join("stored");
    let exported = work.join("stored.tar");
    let out = env.strata(&["export", "local/ann:kept", "-o", exported.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::create_dir_all(&stored).unwrap();
    crate::support::stdout_of(
        Command::new("tar")
            .arg("-xf")
            .arg(&exported)
            .arg("-C")
            .arg(&stored),
    );
    let stored_index = json(&stored.join("index.json"));
    let stored_manifest = json(&blob(&stored, &stored_index["manifests"][0]["digest"]));
    assert_eq!(
        stored_manifest["annotations"]["org.example.title"],
        "stored"
    );
    assert_eq!(env.run_sh("local/ann:kept", "ls /made"), "file\n");
    let remote: serde_json::Value = serde_json::from_str(&crate::support::stdout_of(
        Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{pushed}")),
    ))
    .unwrap();
    assert_eq!(remote["annotations"]["org.example.title"], "pushed");
    let images = String::from_utf8_lossy(&env.strata(&["images"]).stdout).into_owned();
    assert!(images.contains("local/ann"), "{images}");
    assert!(
        !images.contains("team/ann"),
        "store=false tagged nothing: {images}"
    );

    // type=cacheonly: every step cached, nothing written, the target's file unchanged.
    let before = crate::support::stdout_of(Command::new("ls").arg("-A").arg(work));
    let out = build(&env, &dir, &["-t", "ann", "-o", "type=cacheonly"]);
    assert_eq!(
        crate::support::built_stages(&String::from_utf8_lossy(&out.stderr)),
        Vec::<String>::new()
    );
    assert_eq!(
        crate::support::stdout_of(Command::new("ls").arg("-A").arg(work)),
        before
    );
    // A step it builds is cached for the next build.
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM busybox:latest\nRUN {STAMP} > /new\n"),
    )
    .unwrap();
    let out = build(&env, &dir, &["-t", "cached", "-o", "type=cacheonly"]);
    assert_eq!(
        crate::support::built_stages(&String::from_utf8_lossy(&out.stderr)).len(),
        1
    );
    let out = build(&env, &dir, &["-t", "cached"]);
    assert!(crate::support::built_stages(&String::from_utf8_lossy(&out.stderr)).is_empty());
    crate::support::assert_store_consistent(env.store.path());

    // A bake target is no context of docker buildx build.
    let out = env
        .cmd()
        .args(["build", "--build-context", "base=target:base"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("docker buildx bake"), "{stderr}");
}

#[test]
fn progress_rawjson_tty_auto_and_quiet_without_a_terminal() {
    let env = Env::new();
    let dir = context(&env, "prog", "FROM busybox:latest\nRUN echo hi\n");
    let progress = |mode: &str, more: &[&str]| {
        let out = env
            .cmd()
            .args(["build", "-t", "prog", "--progress", mode])
            .args(more)
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).unwrap()
    };
    let stderr = progress("rawjson", &[]);
    for line in stderr.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    assert!(stderr.contains("\"build_finished\""), "{stderr}");
    // No terminal: `tty` falls back to plain lines (no cursor movement).
    let stderr = progress("tty", &["--no-cache"]);
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
    assert!(stderr.contains("hi"), "{stderr}");
    // `auto` without a terminal: plain lines too; `quiet`: nothing at all.
    let stderr = progress("auto", &["--no-cache"]);
    assert!(
        !stderr.contains('\x1b') && stderr.contains("hi"),
        "{stderr:?}"
    );
    assert_eq!(progress("quiet", &["--no-cache"]), "");
}

#[test]
fn pull_takes_the_registrys_newer_base() {
    let registry = crate::registry::Registry::start();
    let base = format!("{}/team/base:1", registry.host());
    // The publisher pushes version one, then two, under one tag.
    let publisher = Env::new();
    let push = |version: &str| {
        let dir = context(
            &publisher,
            &format!("base{version}"),
            &format!("FROM busybox:latest\nRUN echo {version} > /version\n"),
        );
        build(&publisher, &dir, &["-t", "base"]);
        let out = publisher.strata(&["push", "base", &base]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    push("one");
    let user = Env::empty();
    let dir = context(
        &user,
        "app",
        &format!("FROM {base}\nRUN cp /version /seen\n"),
    );
    build(&user, &dir, &["-t", "app"]);
    assert_eq!(user.run_sh("app", "cat /seen"), "one\n");
    push("two");
    build(&user, &dir, &["-t", "app"]);
    assert_eq!(
        user.run_sh("app", "cat /seen"),
        "one\n",
        "without --pull the stored base is used"
    );
    build(&user, &dir, &["-t", "app", "--pull"]);
    assert_eq!(
        user.run_sh("app", "cat /seen"),
        "two\n",
        "--pull fetched the new base"
    );
}

/// `--build-context NAME=URL`: a file over HTTP is the one file `context` (mode 0600, as
/// BuildKit's http source), a git repository (`URL.git#REF:SUBDIR`) its checkout; both served
/// on 127.0.0.1 by busybox's httpd (static files, and git's `git http-backend`).
#[test]
fn build_contexts_of_urls_and_repositories() {
    let env = Env::new();
    let root = env.work.path().join("served");
    let repos = root.join("repos");
    std::fs::create_dir_all(&repos).unwrap();
    let server = crate::support::GitServer::start(&root, &repos, None);
    let base = server.url.trim_end_matches("/cgi-bin/git").to_string();
    std::fs::write(root.join("www/notes.txt"), "served over http\n").unwrap();
    let repo = root.join("tools");
    std::fs::create_dir_all(repo.join("bin")).unwrap();
    crate::support::git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("bin/tool"), "v1\n").unwrap();
    std::fs::write(repo.join("README"), "tools\n").unwrap();
    crate::support::git(&repo, &["add", "-A"]);
    crate::support::git(&repo, &["commit", "-q", "-m", "one"]);
    crate::support::git(&repo, &["tag", "v1"]);
    std::fs::write(repo.join("bin/tool"), "v2\n").unwrap();
    crate::support::git(&repo, &["commit", "-q", "-am", "two"]);
    crate::support::git(
        &root,
        &["clone", "-q", "--bare", "tools", "repos/tools.git"],
    );
    let dir = context(
        &env,
        "urls",
        "FROM busybox:latest\n\
         COPY --from=notes context /notes.txt\n\
         COPY --from=tools . /tools/\n\
         COPY --from=bin tool /bin-v1\n",
    );
    build(
        &env,
        &dir,
        &[
            "-t",
            "urls",
            "--build-context",
            &format!("notes={base}/notes.txt"),
            "--build-context",
            &format!("tools={}/tools.git", server.url),
            "--build-context",
            &format!("bin={}/tools.git#v1:bin", server.url),
        ],
    );
    assert_eq!(
        env.run_sh(
            "urls",
            "stat -c %a /notes.txt; cat /notes.txt /tools/bin/tool /bin-v1; ls -a /tools"
        ),
        "600\nserved over http\nv2\nv1\n.\n..\nREADME\nbin\n"
    );
}

#[test]
fn build_contexts_name_directories_and_images() {
    let env = Env::new();
    let dir = context(
        &env,
        "bc",
        "FROM base\nCOPY --from=extra hello.txt sub/ /from-extra/\nCOPY --from=img /bin/busybox /bb\n",
    );
    let extra = env.work.path().join("extra");
    std::fs::create_dir_all(extra.join("sub")).unwrap();
    std::fs::write(extra.join("hello.txt"), "hello from extra\n").unwrap();
    std::fs::write(extra.join("sub/deep.txt"), "deep\n").unwrap();
    build(
        &env,
        &dir,
        &[
            "-t",
            "bc",
            "--build-context",
            "base=docker-image://busybox:latest",
            "--build-context",
            "img=docker-image://busybox:latest",
            "--build-context",
            &format!("extra={}", extra.display()),
        ],
    );
    assert_eq!(
        env.run_sh(
            "bc",
            "cat /from-extra/hello.txt /from-extra/deep.txt && cmp /bb /bin/busybox && echo same"
        ),
        "hello from extra\ndeep\nsame\n"
    );
    // A changed file of the named directory rebuilds the COPY that reads it.
    std::fs::write(extra.join("hello.txt"), "changed\n").unwrap();
    build(
        &env,
        &dir,
        &[
            "-t",
            "bc",
            "--build-context",
            "base=docker-image://busybox:latest",
            "--build-context",
            "img=docker-image://busybox:latest",
            "--build-context",
            &format!("extra={}", extra.display()),
        ],
    );
    assert_eq!(env.run_sh("bc", "cat /from-extra/hello.txt"), "changed\n");

    // FROM a directory context is refused, naming it.
    let out = env
        .cmd()
        .args(["build", "-t", "bc", "--build-context"])
        .arg(format!("base={}", extra.display()))
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("FROM base") && stderr.contains("FROM images only"),
        "{stderr}"
    );
}

/// A Dockerfile a strata.yaml names (`dockerfile:`) reads the configs of the images its
/// stages are built `FROM`, as `strata build -f` does: their ENV, WORKDIR and USER, and their
/// ONBUILD triggers, which run first.
#[test]
fn a_config_dockerfile_starts_from_its_base_images_config() {
    let env = Env::new();
    let base = context(
        &env,
        "base",
        "FROM busybox:latest\nENV GREETING=hi\nWORKDIR /srv\nUSER 1000\n\
         ONBUILD RUN echo triggered > /tmp/onbuild\n",
    );
    build(&env, &base, &["-t", "with-config"]);
    let dir = env.project(
        "cfg",
        "project: cfg\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\n",
    );
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM with-config\nENV PATH_SEEN=$GREETING-there\n\
         RUN { pwd; id -u; echo \"$PATH_SEEN\"; cat /tmp/onbuild; } > /tmp/seen\n",
    )
    .unwrap();
    env.build_ok(&dir);
    assert_eq!(
        env.run_sh("app", "cat /tmp/seen"),
        "/srv\n1000\nhi-there\ntriggered\n"
    );
}

/// A named context replaces the stage of its name, as BuildKit's: `FROM` and `COPY --from`
/// that name read the context, and the stage is not built.
#[test]
fn a_build_context_replaces_the_stage_of_its_name() {
    let env = Env::new();
    let dir = context(
        &env,
        "replace",
        "FROM busybox:latest AS base\nRUN echo from-the-stage > /stage.txt\n\
         FROM busybox:latest AS files\nRUN echo stage > /f.txt\n\
         FROM base\nCOPY --from=files /f.txt /copied.txt\n",
    );
    let files = env.work.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("f.txt"), "from the directory\n").unwrap();
    let out = build(
        &env,
        &dir,
        &[
            "-t",
            "replace",
            "--build-context",
            "base=docker-image://busybox:latest",
            "--build-context",
            &format!("files={}", files.display()),
        ],
    );
    assert_eq!(
        env.run_sh("replace", "test ! -e /stage.txt && cat /copied.txt"),
        "from the directory\n"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("from-the-stage"),
        "the stage ran:\n{stderr}"
    );
}

/// `--build-context NAME=oci-layout://DIR[@DIGEST]`: the image of an OCI layout directory
/// (here one `strata export` wrote) is what `FROM NAME` and `COPY --from=NAME` read.
#[test]
fn a_build_context_names_an_oci_layout() {
    let env = Env::new();
    let source = context(
        &env,
        "layout-src",
        "FROM busybox:latest\nRUN echo from-the-layout > /layout.txt\n",
    );
    build(&env, &source, &["-t", "layout-src"]);
    let tarball = env.work.path().join("layout.tar");
    let export = env.strata(&["export", "layout-src", "-o", tarball.to_str().unwrap()]);
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let layout = env.work.path().join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    let untar = Command::new("tar")
        .arg("-xf")
        .arg(&tarball)
        .arg("-C")
        .arg(&layout)
        .status()
        .unwrap();
    assert!(untar.success());
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = context(
        &env,
        "layout-use",
        "FROM lay\nCOPY --from=copied /layout.txt /copied.txt\n",
    );
    build(
        &env,
        &dir,
        &[
            "-t",
            "layout-use",
            "--build-context",
            &format!("lay=oci-layout://{}", layout.display()),
            "--build-context",
            &format!("copied=oci-layout://{}@{digest}", layout.display()),
        ],
    );
    assert_eq!(
        env.run_sh("layout-use", "cat /layout.txt /copied.txt"),
        "from-the-layout\nfrom-the-layout\n"
    );
    // A digest the layout does not hold is named.
    let out = env
        .cmd()
        .args(["build", "-t", "x", "--build-context"])
        .arg(format!(
            "lay=oci-layout://{}@sha256:{}",
            layout.display(),
            "0".repeat(64)
        ))
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("has no image sha256:000"), "{stderr}");
}

/// A `SOURCE_DATE_EPOCH` build argument clamps the image's config and history creation times
/// to it, as BuildKit's exporter does, but neither its layers' file times (that is
/// `rewrite-timestamp=true`) nor the cache: the same build without it reuses the stage and is
/// stamped as built.
#[test]
fn a_source_date_epoch_build_argument_clamps_the_config_times() {
    const EPOCH: u64 = 1_000_000_000;
    let env = Env::new();
    let dir = context(
        &env,
        "epoch",
        &format!("FROM busybox:latest\nRUN mkdir /made && {STAMP} > /made/file\n"),
    );
    let export = |name: &str, extra: &[&str]| {
        let layout = env.work.path().join(name);
        let output = format!("type=oci,tar=false,dest={}", layout.display());
        let mut args = vec!["-t", "epoch", "-o", &output];
        args.extend_from_slice(extra);
        build(&env, &dir, &args);
        let json = |path: PathBuf| -> serde_json::Value {
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
        };
        let blob = |digest: &serde_json::Value| {
            let hex = digest.as_str().unwrap().strip_prefix("sha256:").unwrap();
            layout.join("blobs/sha256").join(hex)
        };
        let index = json(layout.join("index.json"));
        let manifest = json(blob(&index["manifests"][0]["digest"]));
        let config = json(blob(&manifest["config"]["digest"]));
        let made = blob(&manifest["layers"][1]["digest"]);
        (
            config,
            manifest["layers"][1]["digest"].clone(),
            layer_mtimes(&made),
        )
    };
    let arg = format!("SOURCE_DATE_EPOCH={EPOCH}");
    let (clamped, clamped_layer, clamped_times) = export("clamped", &["--build-arg", &arg]);
    assert_eq!(clamped["created"], "2001-09-09T01:46:40Z", "{clamped}");
    let history = clamped["history"].as_array().unwrap();
    assert!(
        history
            .iter()
            .all(|h| h["created"] == "2001-09-09T01:46:40Z"),
        "{clamped}"
    );
    assert!(
        clamped_times.iter().any(|(_, t)| *t > EPOCH),
        "the layer keeps its times: {clamped_times:?}"
    );
    let (built, built_layer, _) = export("built", &[]);
    assert_eq!(built_layer, clamped_layer, "the stage is reused");
    assert_ne!(built["created"], "2001-09-09T01:46:40Z", "{built}");
    assert_eq!(built["rootfs"], clamped["rootfs"]);
}
