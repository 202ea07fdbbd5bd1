//! Interop with the real tools: images made by docker (BuildKit and the legacy builder),
//! buildah, podman and skopeo (Docker v2 schema 2 and OCI; gzip, zstd and plain layers) are
//! pushed to a TLS registry with htpasswd auth, strata builds on each (stapel config and
//! Dockerfile), and strata's results go back into each tool (pull, load, run, unpack).
//! One test per combination; see [`world`] for the shared daemons.

mod buildkit;
mod trust;
mod world;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::support::Env;
use world::{World, run, world};

/// The tools that make base images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Producer {
    DockerBuildkit,
    DockerLegacy,
    Buildah,
    Podman,
    SkopeoV2s2,
    SkopeoOciGzip,
    SkopeoOciZstd,
    SkopeoOciPlain,
}

impl Producer {
    const ALL: [Producer; 8] = [
        Producer::DockerBuildkit,
        Producer::DockerLegacy,
        Producer::Buildah,
        Producer::Podman,
        Producer::SkopeoV2s2,
        Producer::SkopeoOciGzip,
        Producer::SkopeoOciZstd,
        Producer::SkopeoOciPlain,
    ];

    fn name(self) -> &'static str {
        match self {
            Producer::DockerBuildkit => "docker-buildkit",
            Producer::DockerLegacy => "docker-legacy",
            Producer::Buildah => "buildah",
            Producer::Podman => "podman",
            Producer::SkopeoV2s2 => "skopeo-v2s2",
            Producer::SkopeoOciGzip => "skopeo-oci-gzip",
            Producer::SkopeoOciZstd => "skopeo-oci-zstd",
            Producer::SkopeoOciPlain => "skopeo-oci-plain",
        }
    }

    /// What `/producer` holds in its image (skopeo copies docker's BuildKit image).
    fn marker(self) -> &'static str {
        match self {
            Producer::SkopeoV2s2
            | Producer::SkopeoOciGzip
            | Producer::SkopeoOciZstd
            | Producer::SkopeoOciPlain => Producer::DockerBuildkit.name(),
            other => other.name(),
        }
    }

    /// The image this producer made, in the registry (made on first use).
    fn image(self) -> &'static str {
        static MADE: [OnceLock<String>; 8] = [const { OnceLock::new() }; 8];
        let index = Producer::ALL
            .iter()
            .position(|p| *p == self)
            .expect("every producer is in ALL");
        MADE[index].get_or_init(|| self.make())
    }

    fn make(self) -> String {
        let w = world();
        let to = format!("{}/src/{}:1", w.registry, self.name());
        let source = |p: Producer| format!("docker://{}", p.image());
        let skopeo = |extra: &[&str]| {
            let mut cmd = Command::new("skopeo");
            cmd.arg("copy")
                .args(w.registry_flags("src-"))
                .args(w.registry_flags("dest-"))
                .args(extra)
                .arg(source(Producer::DockerBuildkit))
                .arg(format!("docker://{to}"));
            run(&mut cmd);
        };
        match self {
            Producer::DockerBuildkit | Producer::DockerLegacy => {
                let ctx = context(w, self.name());
                run(w
                    .docker()
                    .env(
                        "DOCKER_BUILDKIT",
                        if self == Producer::DockerBuildkit {
                            "1"
                        } else {
                            "0"
                        },
                    )
                    // The daemon has no bridge: build steps share the host's network.
                    .args(["build", "--network", "host", "-t", &to])
                    .arg(&ctx));
                run(w.docker().args(["push", &to]));
            }
            Producer::Buildah | Producer::Podman => {
                let ctx = context(w, self.name());
                let mut cmd = if self == Producer::Buildah {
                    let mut c = w.buildah();
                    c.args(["bud", "--isolation", "chroot", "--runtime", "runc"]);
                    c
                } else {
                    let mut c = w.podman();
                    c.arg("build");
                    c
                };
                run(cmd
                    .args(["--network", "host"])
                    .args(World::ULIMITS)
                    .args(w.registry_flags(""))
                    .args(["-t", &to])
                    .arg(&ctx));
                let mut push = if self == Producer::Buildah {
                    w.buildah()
                } else {
                    w.podman()
                };
                run(push
                    .arg("push")
                    .args(w.registry_flags(""))
                    .arg(&to)
                    .arg(format!("docker://{to}")));
            }
            Producer::SkopeoV2s2 => skopeo(&["--format", "v2s2"]),
            Producer::SkopeoOciGzip => skopeo(&["--format", "oci", "--dest-compress"]),
            Producer::SkopeoOciZstd => skopeo(&[
                "--format",
                "oci",
                "--dest-compress",
                "--dest-compress-format",
                "zstd",
            ]),
            Producer::SkopeoOciPlain => skopeo(&["--format", "oci", "--dest-decompress"]),
        }
        to
    }
}

/// A build context whose Dockerfile marks the image as made by `name`.
fn context(w: &World, name: &str) -> std::path::PathBuf {
    let dir = w.root.join("contexts").join(name);
    fs::create_dir_all(&dir).expect("mkdir context");
    fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {}\nRUN echo {name} > /producer && mkdir -p /data && echo one > /data/f\n\
             ENV PRODUCER={name}\nLABEL made.by={name}\nVOLUME /data\n",
            w.base()
        ),
    )
    .expect("write Dockerfile");
    dir
}

/// A strata store and work dir whose strata commands reach the registry.
struct Strata {
    env: Env,
}

impl Strata {
    fn new() -> Strata {
        Strata { env: Env::empty() }
    }

    fn cmd(&self) -> Command {
        let mut cmd = self.env.cmd();
        world().strata_env(&mut cmd);
        cmd
    }

    fn ok(&self, args: &[&str]) -> String {
        run(self.cmd().args(args))
    }

    fn output(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run strata")
    }

    fn work(&self) -> &Path {
        self.env.work.path()
    }

    /// Builds `Dockerfile` text as `tag`.
    fn build_dockerfile(&self, dockerfile: &str, tag: &str) {
        fs::write(self.work().join("Dockerfile"), dockerfile).expect("write Dockerfile");
        self.ok(&[
            "build",
            "--progress",
            "plain",
            "-f",
            "Dockerfile",
            "-t",
            tag,
        ]);
    }
}

/// strata builds a Dockerfile on the producer's image and sees its files and config.
fn dockerfile_on(producer: Producer) {
    let base = producer.image();
    let s = Strata::new();
    s.build_dockerfile(
        &format!("FROM {base}\nRUN cat /producer /data/f > /seen && echo \"$PRODUCER\" >> /seen\n"),
        "on-base",
    );
    let seen = s.ok(&["run", "on-base", "--", "cat", "/seen"]);
    assert_eq!(
        seen,
        format!("{}\none\n{}\n", producer.marker(), producer.marker()),
        "{}",
        producer.name()
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&s.ok(&["inspect", "on-base"])).expect("inspect JSON");
    assert_eq!(
        inspect["config"]["config"]["Labels"]["made.by"],
        producer.marker()
    );
    assert!(
        inspect["config"]["config"]["Volumes"]
            .get("/data")
            .is_some(),
        "{inspect}"
    );
    // The base is listed like any image.
    let images = s.ok(&["images"]);
    assert!(
        images.contains(&format!("src/{}", producer.name())),
        "{images}"
    );
}

/// strata builds a stapel config on the producer's image.
fn stapel_on(producer: Producer) {
    let base = producer.image();
    let s = Strata::new();
    let dir = s.env.project(
        "p",
        &format!(
            "project: interop\nconfigVersion: 1\n---\nimage: app\nfrom: {base}\nshell:\n  install:\n  - cat /producer > /seen\n"
        ),
    );
    run(s
        .cmd()
        .args(["build", "--progress", "plain"])
        .current_dir(&dir));
    let seen = s.ok(&["run", "app", "--", "cat", "/seen"]);
    assert_eq!(seen, format!("{}\n", producer.marker()));
    // The producer's history, then one entry per stapel stage naming it and its commands.
    let inspect: serde_json::Value =
        serde_json::from_str(&s.ok(&["inspect", "app"])).expect("inspect JSON");
    let history: Vec<&str> = inspect["config"]["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["created_by"].as_str().unwrap_or(""))
        .collect();
    assert!(
        history.contains(&"strata: app/install: cat /producer > /seen"),
        "{history:?}"
    );
}

macro_rules! on_producers {
    ($($name:ident: $producer:expr;)*) => {
        mod dockerfile_on {
            $(#[test] fn $name() { super::dockerfile_on($producer) })*
        }
        mod stapel_on {
            $(#[test] fn $name() { super::stapel_on($producer) })*
        }
    };
}

on_producers! {
    docker_buildkit: super::Producer::DockerBuildkit;
    docker_legacy: super::Producer::DockerLegacy;
    buildah: super::Producer::Buildah;
    podman: super::Producer::Podman;
    skopeo_v2s2: super::Producer::SkopeoV2s2;
    skopeo_oci_gzip: super::Producer::SkopeoOciGzip;
    skopeo_oci_zstd: super::Producer::SkopeoOciZstd;
    skopeo_oci_plain: super::Producer::SkopeoOciPlain;
}

/// A strata image with a layer of its own on the docker-built base, built with the default
/// (zstd) stored layers, and the marker file it holds.
fn strata_image(s: &Strata, tag: &str) {
    s.build_dockerfile(
        &format!(
            "FROM {}\nRUN echo made-by-strata > /strata && cat /producer >> /strata\nCMD [\"cat\", \"/strata\"]\n",
            Producer::DockerBuildkit.image()
        ),
        tag,
    );
}

const STRATA_OUTPUT: &str = "made-by-strata\ndocker-buildkit\n";

/// Pushes a fresh strata image to the registry under `name` with `extra` push flags.
fn pushed(name: &str, extra: &[&str]) -> String {
    let s = Strata::new();
    strata_image(&s, "out");
    let to = format!("{}/out/{name}:1", world().registry);
    let mut args = vec!["push", "out", &to];
    args.extend(extra);
    s.ok(&args);
    to
}

#[test]
fn docker_pulls_and_runs_strata_push() {
    let w = world();
    let image = pushed("docker-pull", &[]);
    run(w.docker().args(["pull", &image]));
    let out = run(w
        .docker()
        .args(["run", "--rm", "--network", "none", &image]));
    assert_eq!(out, STRATA_OUTPUT);
}

#[test]
fn podman_pulls_and_runs_strata_push() {
    let w = world();
    let image = pushed("podman-pull", &[]);
    run(w
        .podman()
        .arg("pull")
        .args(w.registry_flags(""))
        .arg(&image));
    let out = run(w
        .podman()
        .args(["run", "--rm", "--network", "none"])
        .args(World::ULIMITS)
        .arg(&image));
    assert_eq!(out, STRATA_OUTPUT);
}

#[test]
fn podman_pulls_and_runs_strata_zstd_push() {
    let w = world();
    let image = pushed("podman-zstd", &["--compression", "zstd"]);
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .args(w.registry_flags(""))
        .arg(format!("docker://{image}")));
    assert!(raw.contains("tar+zstd"), "{raw}");
    run(w
        .podman()
        .arg("pull")
        .args(w.registry_flags(""))
        .arg(&image));
    let out = run(w
        .podman()
        .args(["run", "--rm", "--network", "none"])
        .args(World::ULIMITS)
        .arg(&image));
    assert_eq!(out, STRATA_OUTPUT);
}

#[test]
fn buildah_builds_on_strata_push() {
    let w = world();
    let image = pushed("buildah-from", &[]);
    let ctx = w.root.join("contexts/on-strata");
    fs::create_dir_all(&ctx).expect("mkdir");
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {image}\nRUN cat /strata > /again\n"),
    )
    .expect("write");
    run(w
        .buildah()
        .args([
            "bud",
            "--isolation",
            "chroot",
            "--runtime",
            "runc",
            "--network",
            "host",
        ])
        .args(World::ULIMITS)
        .args(w.registry_flags(""))
        .args(["-t", "on-strata"])
        .arg(&ctx));
    let out = run(w
        .podman()
        .args(["run", "--rm", "--network", "none"])
        .args(World::ULIMITS)
        .args(["on-strata", "cat", "/again"]));
    assert_eq!(out, STRATA_OUTPUT);
}

#[test]
fn skopeo_copies_strata_push_to_oci_and_umoci_unpacks_it() {
    let w = world();
    let image = pushed("skopeo-copy", &[]);
    let layout = w.root.join("layouts/skopeo-copy");
    fs::create_dir_all(layout.parent().expect("parent")).expect("mkdir");
    run(Command::new("skopeo")
        .arg("copy")
        .args(w.registry_flags("src-"))
        .arg(format!("docker://{image}"))
        .arg(format!("oci:{}:copied", layout.display())));
    let bundle = w.root.join("bundles/skopeo-copy");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:copied", layout.display()))
        .arg(&bundle));
    assert_eq!(
        fs::read_to_string(bundle.join("rootfs/strata")).expect("read"),
        STRATA_OUTPUT
    );
}

/// `strata export` of a fresh strata image into `file` with `args`.
fn exported(name: &str, args: &[&str]) -> std::path::PathBuf {
    let s = Strata::new();
    strata_image(&s, name);
    let file = world().root.join("exports").join(format!("{name}.tar"));
    fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    let mut all = vec!["export", name, "-o", file.to_str().expect("utf-8 path")];
    all.extend(args);
    s.ok(&all);
    file
}

#[test]
fn umoci_unpacks_strata_export() {
    let w = world();
    let file = exported("umoci", &[]);
    let layout = w.root.join("layouts/umoci");
    fs::create_dir_all(&layout).expect("mkdir");
    run(Command::new("tar")
        .arg("-xf")
        .arg(&file)
        .arg("-C")
        .arg(&layout));
    let bundle = w.root.join("bundles/umoci");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle));
    assert_eq!(
        fs::read_to_string(bundle.join("rootfs/strata")).expect("read"),
        STRATA_OUTPUT
    );
}

#[test]
fn docker_loads_strata_docker_archive() {
    let w = world();
    let file = exported("docker-load", &["--format", "docker-archive"]);
    let loaded = run(w.docker().arg("load").arg("-i").arg(&file));
    assert!(
        loaded.contains("Loaded image: docker-load:latest"),
        "{loaded}"
    );
    let out = run(w
        .docker()
        .args(["run", "--rm", "--network", "none", "docker-load:latest"]));
    assert_eq!(out, STRATA_OUTPUT);
}

/// `strata build -o type=docker` with `name=`: into docker itself (no `dest`: `docker load`,
/// every name loaded) and as a file `docker load -i` reads.
#[test]
fn docker_loads_build_outputs_by_their_names() {
    let w = world();
    let s = Strata::new();
    let ctx = w.root.join("contexts/docker-output");
    fs::create_dir_all(&ctx).expect("mkdir");
    fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY f /f\n").expect("write");
    fs::write(ctx.join("f"), "from an -o output\n").expect("write");
    let file = w.root.join("exports/docker-output.tar");
    fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    let mut cmd = s.cmd();
    cmd.env("DOCKER_HOST", format!("unix://{}", w.docker_sock.display()))
        .arg("build")
        .arg("-t")
        .arg("docker-output")
        .arg("-o")
        .arg("type=docker,\"name=strata-o/first:1,strata-o/second:2\"")
        .arg("-o")
        .arg(format!(
            "type=docker,dest={},name=strata-o/third:3",
            file.display()
        ))
        .arg(&ctx);
    run(&mut cmd);
    run(w.docker().arg("load").arg("-i").arg(&file));
    let tags = run(w
        .docker()
        .args(["image", "inspect", "--format", "{{json .RepoTags}}"])
        .args(["strata-o/first:1", "strata-o/second:2", "strata-o/third:3"]));
    assert_eq!(
        tags.lines().collect::<Vec<_>>(),
        [
            r#"["strata-o/first:1","strata-o/second:2","strata-o/third:3"]"#,
            r#"["strata-o/first:1","strata-o/second:2","strata-o/third:3"]"#,
            r#"["strata-o/first:1","strata-o/second:2","strata-o/third:3"]"#,
        ],
        "one image, named three ways"
    );
}

#[test]
fn podman_loads_strata_oci_export() {
    let w = world();
    let file = exported("podman-load", &[]);
    let loaded = run(w.podman().arg("load").arg("-i").arg(&file));
    let name = "docker.io/library/podman-load:latest";
    assert!(
        loaded.contains(&format!("Loaded image: {name}")),
        "{loaded}"
    );
    let out = run(w
        .podman()
        .args(["run", "--rm", "--network", "none"])
        .args(World::ULIMITS)
        .arg(name));
    assert_eq!(out, STRATA_OUTPUT);
}

#[test]
fn containerd_imports_strata_oci_export() {
    let w = world();
    let file = exported("ctr-import", &[]);
    let ctr = || {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(&w.containerd_sock)
            .args(["--namespace", "strata-interop"]);
        c
    };
    run(ctr()
        .args(["images", "import", "--all-platforms"])
        .arg(&file));
    let list = run(ctr().args(["images", "ls", "-q"]));
    assert!(
        list.lines()
            .any(|l| l == "docker.io/library/ctr-import:latest"),
        "{list}"
    );
    let check = run(ctr().args(["images", "check"]));
    assert!(check.contains("complete"), "{check}");
}

#[test]
fn docker_shows_strata_metadata_and_source_date_epoch_fixes_it() {
    let w = world();
    let s = Strata::new();
    fs::write(
        s.work().join("Dockerfile"),
        format!(
            "FROM {}\nRUN echo a > /a\nENV X=1\nRUN echo b > /b\n",
            Producer::DockerBuildkit.image()
        ),
    )
    .expect("write");
    let build = || {
        run(s.cmd().env("SOURCE_DATE_EPOCH", "1700000000").args([
            "build",
            "--progress",
            "plain",
            "-f",
            "Dockerfile",
            "-t",
            "meta",
        ]));
    };
    build();
    let to = format!("{}/out/meta:1", w.registry);
    s.ok(&["push", "meta", &to]);
    run(w.docker().args(["pull", &to]));
    let created = run(w.docker().args(["inspect", "-f", "{{.Created}}", &to]));
    assert_eq!(created.trim(), "2023-11-14T22:13:20Z");
    let history =
        run(w
            .docker()
            .args(["history", "--no-trunc", "--format", "{{.CreatedBy}}", &to]));
    assert!(
        history.contains("RUN /bin/sh -c echo b > /b # buildkit"),
        "{history}"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&s.ok(&["inspect", "meta"])).expect("inspect JSON");
    let history = inspect["config"]["history"].as_array().expect("history");
    let non_empty = history
        .iter()
        .filter(|h| h["empty_layer"] != serde_json::Value::Bool(true))
        .count();
    let layers = inspect["config"]["rootfs"]["diff_ids"]
        .as_array()
        .expect("diff ids")
        .len();
    assert_eq!(
        non_empty, layers,
        "one history entry per layer: {history:?}"
    );
    // Built again from scratch at the same epoch: the same config.
    let config = inspect["config"].clone();
    s.ok(&["rmi", "meta"]);
    let stages = s.env.store.path().join("stages");
    fs::remove_dir_all(&stages).expect("drop the stage cache");
    fs::create_dir(&stages).expect("mkdir stages");
    build();
    let again: serde_json::Value =
        serde_json::from_str(&s.ok(&["inspect", "meta"])).expect("inspect JSON");
    assert_eq!(again["config"]["created"], "2023-11-14T22:13:20Z");
    assert_eq!(
        again["config"]["history"], config["history"],
        "history differs between two builds at one epoch"
    );
}

/// The image history strata writes for a Dockerfile is the one BuildKit writes: the same
/// `created_by` per instruction (docs/architecture.md names what still differs).
#[test]
fn dockerfile_history_is_buildkits() {
    let w = world();
    let dockerfile = format!(
        "FROM {}\nARG V=1\nENV A=b C=d\nWORKDIR /app\nCOPY f /f\nRUN echo hi > /x\n\
         RUN echo $V\nRUN [\"sh\", \"-c\", \"true\"]\nLABEL k=v\nUSER root\n\
         EXPOSE 80\nVOLUME /data\nSHELL [\"/bin/sh\", \"-ec\"]\nENTRYPOINT [\"sh\"]\n\
         CMD echo done\nARG LAST=1\n",
        w.base()
    );
    let ctx = w.root.join("contexts").join("history");
    fs::create_dir_all(&ctx).expect("mkdir context");
    fs::write(ctx.join("Dockerfile"), &dockerfile).expect("write Dockerfile");
    fs::write(ctx.join("f"), "f\n").expect("write f");
    let theirs = format!("{}/history/docker:1", w.registry);
    run(w
        .docker()
        .env("DOCKER_BUILDKIT", "1")
        .args(["build", "--network", "host", "-t", &theirs])
        .arg(&ctx));
    let s = Strata::new();
    fs::write(s.work().join("f"), "f\n").expect("write f");
    s.build_dockerfile(&dockerfile, "history");
    let ours = format!("{}/history/strata:1", w.registry);
    s.ok(&["push", "history", &ours]);
    run(w.docker().args(["pull", &ours]));
    let created_by = |image: &str| -> Vec<String> {
        run(w
            .docker()
            .args(["history", "--no-trunc", "--format", "{{.CreatedBy}}", image]))
        .lines()
        .map(str::to_string)
        .collect()
    };
    assert_eq!(created_by(&ours), created_by(&theirs));
}

/// The manifest of `image` in the suite's registry, as skopeo reads it.
fn raw_manifest(image: &str) -> serde_json::Value {
    let w = world();
    let raw = run(Command::new("skopeo")
        .arg("inspect")
        .arg("--raw")
        .args(w.registry_flags(""))
        .arg(format!("docker://{image}")));
    serde_json::from_str(&raw).expect("manifest JSON")
}

/// Images built on a registry image carry `org.opencontainers.image.base.name` and
/// `.base.digest` naming it (as buildah and podman set them), through later stages and a
/// `FROM` of an earlier stage; an image from scratch carries none.
#[test]
fn pushed_images_name_their_base() {
    let w = world();
    let base = w.base();
    let digest = run(Command::new("skopeo")
        .args(["inspect", "--format", "{{.Digest}}"])
        .args(w.registry_flags(""))
        .arg(format!("docker://{base}")));
    let s = Strata::new();
    let cases = [
        (
            "on-base",
            format!("FROM {base}\nRUN echo a > /a\nENV A=1\n"),
        ),
        (
            "on-stage",
            format!("FROM {base} AS one\nRUN echo a > /a\nFROM one\nRUN echo b > /b\n"),
        ),
        ("scratch", "FROM scratch\nENV A=1\n".to_string()),
    ];
    for (tag, dockerfile) in &cases {
        s.build_dockerfile(dockerfile, tag);
        let to = format!("{}/based/{tag}:1", w.registry);
        s.ok(&["push", tag, &to]);
        let annotations = raw_manifest(&to)["annotations"].clone();
        let name = &annotations["org.opencontainers.image.base.name"];
        let base_digest = &annotations["org.opencontainers.image.base.digest"];
        if *tag == "scratch" {
            assert!(name.is_null() && base_digest.is_null(), "{annotations}");
        } else {
            assert_eq!(name, &serde_json::json!(base), "{tag}: {annotations}");
            assert_eq!(
                base_digest,
                &serde_json::json!(digest.trim()),
                "{tag}: {annotations}"
            );
        }
    }
}

/// strata loads an archive a tool wrote and runs the image under the name it records.
fn strata_loads(archive: &Path, name: &str) {
    let s = Strata::new();
    let out = s.ok(&["load", archive.to_str().expect("utf-8 path")]);
    assert!(out.starts_with(&format!("{name} sha256:")), "{out}");
    assert_eq!(
        s.ok(&["run", name, "--", "cat", "/producer"]),
        "docker-buildkit\n"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&s.ok(&["inspect", name])).expect("inspect JSON");
    assert_eq!(
        inspect["config"]["config"]["Labels"]["made.by"],
        "docker-buildkit"
    );
}

#[test]
fn strata_loads_docker_save() {
    let w = world();
    let image = Producer::DockerBuildkit.image();
    run(w.docker().args(["pull", image]));
    let file = w.root.join("exports/docker-save.tar");
    fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    run(w.docker().args(["save", "-o"]).arg(&file).arg(image));
    strata_loads(&file, image);
}

#[test]
fn strata_loads_podman_oci_archive() {
    let w = world();
    let image = Producer::DockerBuildkit.image();
    run(w.podman().arg("pull").args(w.registry_flags("")).arg(image));
    let file = w.root.join("exports/podman-save.tar");
    fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    run(w
        .podman()
        .args(["save", "--format", "oci-archive", "-o"])
        .arg(&file)
        .arg(image));
    // podman records the full name as the index entry's ref.name.
    strata_loads(&file, image);
}

#[test]
fn strata_loads_skopeo_oci_dir_and_its_own_export() {
    let w = world();
    let layout = w.root.join("layouts/for-strata");
    fs::create_dir_all(&layout).expect("mkdir");
    run(Command::new("skopeo")
        .arg("copy")
        .args(w.registry_flags("src-"))
        .arg(format!("docker://{}", Producer::DockerBuildkit.image()))
        .arg(format!("oci:{}:1", layout.display())));
    let s = Strata::new();
    s.ok(&["import", layout.to_str().expect("utf-8"), "from-skopeo"]);
    assert_eq!(
        s.ok(&["run", "from-skopeo", "--", "cat", "/producer"]),
        "docker-buildkit\n"
    );
    let file = exported("round-trip", &[]);
    strata_loads(&file, "round-trip:latest");
}

#[test]
fn export_load_hands_the_image_to_docker() {
    let w = world();
    let s = Strata::new();
    strata_image(&s, "handed-to-docker");
    let out = run(s
        .cmd()
        .env("DOCKER_HOST", format!("unix://{}", w.docker_sock.display()))
        .args(["export", "handed-to-docker", "--load"]));
    assert!(out.contains("handed-to-docker:latest"), "{out}");
    let out = run(w.docker().args([
        "run",
        "--rm",
        "--network",
        "none",
        "handed-to-docker:latest",
    ]));
    assert_eq!(out, STRATA_OUTPUT);
}

#[test]
fn build_load_hands_the_image_to_podman() {
    let w = world();
    let s = Strata::new();
    let conf = w.root.join("podman-storage.conf");
    fs::write(
        &conf,
        format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            w.containers_root.join("storage").display(),
            w.containers_root.join("run").display()
        ),
    )
    .expect("write storage.conf");
    fs::write(
        s.work().join("Dockerfile"),
        format!(
            "FROM {}\nRUN echo made-by-strata > /strata && cat /producer >> /strata\nCMD [\"cat\", \"/strata\"]\n",
            Producer::DockerBuildkit.image()
        ),
    )
    .expect("write");
    run(s
        .cmd()
        .env("CONTAINERS_STORAGE_CONF", &conf)
        .env("XDG_RUNTIME_DIR", w.containers_root.join("xdg"))
        .env("TMPDIR", w.containers_root.join("tmp"))
        .args([
            "build",
            "--progress",
            "plain",
            "-f",
            "Dockerfile",
            "-t",
            "handed-to-podman",
        ])
        .args(["--load", "podman"]));
    let out = run(w
        .podman()
        .args(["run", "--rm", "--network", "none"])
        .args(World::ULIMITS)
        .arg("docker.io/library/handed-to-podman:latest"));
    assert_eq!(out, STRATA_OUTPUT);
}

/// Pushes an image index made by buildah: the `(image, arch)` entries, under `name`.
fn index_of(name: &str, entries: &[(&str, &str)]) -> String {
    let w = world();
    run(w.buildah().args(["manifest", "create", name]));
    for (image, arch) in entries {
        run(w
            .buildah()
            .args(["manifest", "add", "--os", "linux", "--arch", arch])
            .args(w.registry_flags(""))
            .arg(name)
            .arg(format!("docker://{image}")));
    }
    let to = format!("{}/src/{name}:1", w.registry);
    run(w
        .buildah()
        .args(["manifest", "push", "--all"])
        .args(w.registry_flags(""))
        .arg(name)
        .arg(format!("docker://{to}")));
    to
}

#[test]
fn strata_picks_linux_amd64_from_a_buildah_index_and_names_what_an_index_has() {
    let index = index_of(
        "multi-arch",
        &[
            (Producer::Buildah.image(), "arm64"),
            (Producer::DockerBuildkit.image(), "amd64"),
        ],
    );
    let s = Strata::new();
    s.build_dockerfile(
        &format!("FROM {index}\nRUN cat /producer > /seen\n"),
        "on-index",
    );
    assert_eq!(
        s.ok(&["run", "on-index", "--", "cat", "/seen"]),
        "docker-buildkit\n"
    );
    let arm = index_of("arm-only", &[(Producer::Buildah.image(), "arm64")]);
    fs::write(s.work().join("Dockerfile"), format!("FROM {arm}\n")).expect("write");
    let out = s.output(&["build", "-f", "Dockerfile", "-t", "on-arm"]);
    assert!(!out.status.success(), "built an arm64-only image here");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("linux/amd64") && stderr.contains("linux/arm64"),
        "{stderr}"
    );
}
