//! Staged builds end to end: stages run, are cached, and rebuild exactly as werf's rules say.

use crate::support::Env;

const HELLO: &str = r#"
project: hello
configVersion: 1
---
image: hello
from: busybox:latest
shell:
  beforeInstall:
  - mkdir -p /app
  install:
  - echo "1.0.0" > /app/version
  beforeSetup:
  - echo "compiled" > /app/build.txt
  setup:
  - echo "configured" > /app/setup.txt
  {SETUP_CV}
docker:
  WORKDIR: /app
  ENV:
    APP_VERSION: "1.0.0"
  CMD: ["cat", "/app/version"]
"#;

fn hello(setup_cv: &str) -> String {
    HELLO.replace("{SETUP_CV}", setup_cv)
}

#[test]
fn builds_runs_and_reuses_every_stage() {
    let env = Env::new();
    let dir = env.project("hello", &hello(""));
    let built = env.build_ok(&dir);
    assert_eq!(
        built,
        [
            "hello/from",
            "hello/beforeInstall",
            "hello/install",
            "hello/beforeSetup",
            "hello/setup",
            "hello/dockerInstructions"
        ]
    );
    assert!(
        env.build_ok(&dir).is_empty(),
        "a second build must reuse every stage"
    );

    let out = env.strata(&["run", "hello"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1.0.0\n");
    assert_eq!(
        env.run_sh("hello", "cat build.txt setup.txt; echo $APP_VERSION; pwd"),
        "compiled\nconfigured\n1.0.0\n/app\n"
    );

    let images = env.strata(&["images", "--stages"]);
    let listing = String::from_utf8_lossy(&images.stdout);
    for (first, second) in [
        ("hello", "latest"),
        ("busybox", "latest"),
        ("beforeInstall", ""),
        ("dockerInstructions", ""),
    ] {
        assert!(
            listing.lines().any(|l| {
                let mut words = l.split_whitespace();
                words.next() == Some(first) && (second.is_empty() || words.next() == Some(second))
            }),
            "`strata images --stages` lacks {first} {second}:\n{listing}"
        );
    }
}

#[test]
fn rebuilds_from_the_first_changed_stage() {
    let env = Env::new();
    let dir = env.project("p", &hello(""));
    env.build_ok(&dir);

    // install commands changed: install and everything after it, not beforeInstall.
    std::fs::write(
        dir.join("strata.yaml"),
        hello("").replace("1.0.0\" >", "1.0.1\" >"),
    )
    .unwrap();
    assert_eq!(
        env.build_ok(&dir),
        [
            "hello/install",
            "hello/beforeSetup",
            "hello/setup",
            "hello/dockerInstructions"
        ]
    );
    assert_eq!(env.run_sh("hello", "cat /app/version"), "1.0.1\n");

    // setupCacheVersion: setup only (and the config stage chained after it).
    std::fs::write(
        dir.join("strata.yaml"),
        hello("setupCacheVersion: \"2\"").replace("1.0.0\" >", "1.0.1\" >"),
    )
    .unwrap();
    assert_eq!(
        env.build_ok(&dir),
        ["hello/setup", "hello/dockerInstructions"]
    );

    // shell.cacheVersion: every user stage.
    std::fs::write(
        dir.join("strata.yaml"),
        hello("setupCacheVersion: \"2\"\n  cacheVersion: \"x\"").replace("1.0.0\" >", "1.0.1\" >"),
    )
    .unwrap();
    assert_eq!(
        env.build_ok(&dir),
        [
            "hello/beforeInstall",
            "hello/install",
            "hello/beforeSetup",
            "hello/setup",
            "hello/dockerInstructions"
        ]
    );
}

#[test]
fn a_new_base_image_rebuilds_everything() {
    let env = Env::new();
    let dir = env.project("p", &hello(""));
    env.build_ok(&dir);
    env.reimport_busybox("new base\n");
    assert_eq!(env.build_ok(&dir).len(), 6);
    assert_eq!(env.run_sh("hello", "cat /etc/motd"), "new base\n");
}

#[test]
fn werf_four_stage_example() {
    // The example of "Dependency on changes in assembly instructions" in werf's stapel docs.
    let env = Env::new();
    let dir = env.work.path().join("werf");
    std::fs::create_dir_all(&dir).unwrap();
    let yaml = r#"project: demo
configVersion: 1
---
image: ~
from: busybox:latest
shell:
  beforeInstall:
  - echo "Commands on the Before Install stage"
  install:
  - echo "Commands on the Install stage"
  beforeSetup:
  - echo "Commands on the Before Setup stage"
  setup:
  - echo "Commands on the Setup stage"
"#;
    std::fs::write(dir.join("werf.yaml"), yaml).unwrap();
    let out = env.build(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for stage in ["beforeInstall", "install", "beforeSetup", "setup"] {
        assert!(
            stderr.contains(&format!("~/{stage} | + echo")),
            "the command is echoed:\n{stderr}"
        );
    }
    assert!(
        stderr.contains("~/install | Commands on the Install stage"),
        "{stderr}"
    );
    assert!(env.build_ok(&dir).is_empty());
    std::fs::write(
        dir.join("werf.yaml"),
        yaml.replace(
            "  - echo \"Commands on the Install stage\"\n",
            "  - echo \"Commands on the Install stage\"\n  - echo \"Installing ...\"\n",
        ),
    )
    .unwrap();
    assert_eq!(
        env.build_ok(&dir),
        ["~/install", "~/beforeSetup", "~/setup"]
    );
    // The nameless image is tagged with the project name.
    assert_eq!(env.run_sh("demo", "echo ok"), "ok\n");
}

#[test]
fn scratch_image_builds_with_the_toolbox_only() {
    let env = Env::empty();
    let dir = env.project(
        "s",
        r#"
image: tiny
from: scratch
shell:
  install:
  - mkdir -p /app && echo "from scratch" > /app/msg
  - '[[ -f /app/msg ]]'
"#,
    );
    assert_eq!(env.build_ok(&dir), ["tiny/from", "tiny/install"]);
    // The image holds only what the stage wrote: no toolbox, no mountpoints.
    let out = env.strata(&["export", "tiny", "-o", "tiny.tar"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = crate::export::layer_paths(&env.work.path().join("tiny.tar"));
    assert_eq!(listing, ["app/", "app/msg"]);
}

#[test]
fn independent_images_build_and_from_image_follows_its_base() {
    let env = Env::new();
    let dir = env.project(
        "multi",
        r#"
image: base
from: busybox:latest
shell:
  install:
  - echo base > /base.txt
---
image: child
fromImage: base
shell:
  install:
  - cat /base.txt > /child.txt
---
image: other
from: busybox:latest
shell:
  install:
  - echo other > /other.txt
"#,
    );
    let built = env.build_ok(&dir);
    let pos = |s: &str| {
        built
            .iter()
            .position(|b| b == s)
            .unwrap_or_else(|| panic!("{s} not built: {built:?}"))
    };
    assert!(pos("base/install") < pos("child/from"));
    assert_eq!(env.run_sh("child", "cat /child.txt"), "base\n");
    std::fs::write(
        dir.join("strata.yaml"),
        std::fs::read_to_string(dir.join("strata.yaml"))
            .unwrap()
            .replace("echo base", "echo base2"),
    )
    .unwrap();
    let mut rebuilt = env.build_ok(&dir);
    rebuilt.sort();
    assert_eq!(rebuilt, ["base/install", "child/from", "child/install"]);
}
