//! Images that feed images: artifacts, imports, `final: false`, and mounts.

use crate::support::Env;

const FEED: &str = r#"artifact: builder
from: busybox:latest
shell:
  install:
  - mkdir -p /out/bin /out/doc && printf '#!/bin/sh\necho tool {V}\n' > /out/bin/tool && chmod 755 /out/bin/tool
  - echo doc > /out/doc/README && echo {NOISE} > /noise
---
image: base
final: false
from: busybox:latest
shell:
  install:
  - echo shared > /shared
---
image: app
fromImage: base
mount:
- from: build_dir
  to: /cache
- from: tmp_dir
  to: /scratch
import:
- artifact: builder
  add: /out
  to: /opt/tool
  excludePaths: [doc]
  owner: app
  group: 65534
  after: install
shell:
  install:
  - echo "$(cat /cache/count 2>/dev/null)x" > /cache/count; echo t > /scratch/t
  setup:
  - /opt/tool/bin/tool > /tool-output
"#;

fn feed(version: &str, noise: &str) -> String {
    FEED.replace("{V}", version).replace("{NOISE}", noise)
}

/// The feed mounts a `build_dir`, which werf's giterminism allows only when told to.
pub(crate) fn allow_build_dir(dir: &std::path::Path) {
    std::fs::write(
        dir.join("werf-giterminism.yaml"),
        "giterminismConfigVersion: 1\nconfig: {stapel: {mount: {allowBuildDir: true}}}\n",
    )
    .unwrap();
}

#[test]
fn imports_copy_exactly_the_selected_files_and_follow_only_them() {
    let env = Env::new();
    let dir = env.project("feed", &feed("1", "a"));
    allow_build_dir(&dir);
    env.build_ok(&dir);
    assert_eq!(
        env.run_sh(
            "app",
            "cat /tool-output /shared; ls /opt/tool; stat -c '%u:%g %a' /opt/tool/bin/tool"
        ),
        "tool 1\nshared\nbin\n1000:65534 755\n"
    );
    // Neither the artifact nor the non-final image gets a tag of its own.
    let images = String::from_utf8_lossy(&env.strata(&["images"]).stdout).to_string();
    let repositories: Vec<&str> = images
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        repositories.contains(&"app")
            && !repositories.contains(&"builder")
            && !repositories.contains(&"base"),
        "{images}"
    );

    // A change to the artifact outside the imported files rebuilds the artifact only.
    std::fs::write(dir.join("strata.yaml"), feed("1", "b")).unwrap();
    assert_eq!(env.build_ok(&dir), ["builder/install"]);
    // A change to an imported file rebuilds the importer from its dependencies stage on.
    std::fs::write(dir.join("strata.yaml"), feed("2", "b")).unwrap();
    assert_eq!(
        env.build_ok(&dir),
        [
            "builder/install",
            "app/dependenciesAfterInstall",
            "app/setup"
        ]
    );
    assert_eq!(env.run_sh("app", "cat /tool-output"), "tool 2\n");
}

#[test]
fn mounts_are_never_committed_and_build_dir_persists() {
    let env = Env::new();
    let dir = env.project("feed", &feed("1", "a"));
    allow_build_dir(&dir);
    env.build_ok(&dir);
    assert_eq!(
        env.run_sh(
            "app",
            "ls -d /cache /scratch 2>&1 | wc -l; ls /cache 2>&1 | head -1"
        ),
        "2\nls: /cache: No such file or directory\n"
    );
    // build_dir keeps its content between builds: force install to run again.
    std::fs::write(
        dir.join("strata.yaml"),
        feed("1", "a").replace(
            "echo t > /scratch/t",
            "echo t > /scratch/t; cat /cache/count",
        ),
    )
    .unwrap();
    let out = env.build(&dir);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("app/install | xx"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn import_errors_point_at_the_config() {
    let env = Env::new();
    let dir = env.project(
        "bad",
        "image: a\nfrom: busybox:latest\nimport:\n- image: b\n  add: /nonexistent\n  after: install\n---\nimage: b\nfrom: busybox:latest\n",
    );
    let out = env.build(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("`/nonexistent` does not exist in image `b`, the image imported from"),
        "{stderr}"
    );
    assert!(stderr.contains("--> strata.yaml:4:3"), "{stderr}");
}

#[test]
fn dependencies_pass_other_images_into_the_build() {
    let env = Env::new();
    let yaml = |v: &str| {
        format!(
            "image: backend\nfrom: busybox:latest\nshell:\n  install:\n  - echo {v} > /v\n---\nimage: frontend\nfrom: busybox:latest\ndependencies:\n- image: backend\n  before: setup\n  imports:\n  - type: ImageName\n    targetEnv: BACKEND_NAME\n  - type: ImageDigest\n    targetEnv: BACKEND_DIGEST\nshell:\n  install:\n  - echo \"install sees '$BACKEND_NAME'\"\n  setup:\n  - echo \"$BACKEND_NAME $BACKEND_DIGEST\" > /deps\n"
        )
    };
    let dir = env.project("deps", &yaml("1"));
    let out = env.build(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("install sees ''"),
        "variables are set from the dependency's stage on:\n{stderr}"
    );
    let deps = env.run_sh("frontend", "cat /deps");
    let (name, digest) = deps.trim().split_once(' ').unwrap();
    // werf's ImageName: the name of the dependency's last stage, usable as an image name.
    let stage = env.last_stage("backend");
    assert!(name.starts_with(&format!("backend:{stage}-")), "{name}");
    assert_eq!(env.run_sh(name, "cat /v"), "1\n");
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{deps}"
    );
    // A new backend changes its digest: the frontend rebuilds from its dependencies stage on.
    std::fs::write(dir.join("strata.yaml"), yaml("2")).unwrap();
    assert_eq!(
        env.build_ok(&dir),
        [
            "backend/install",
            "frontend/dependenciesBeforeSetup",
            "frontend/setup"
        ]
    );
    assert_ne!(env.run_sh("frontend", "cat /deps"), deps);
}

#[test]
fn an_import_can_take_a_stage_of_the_source_image() {
    let env = Env::new();
    let dir = env.project(
        "stage",
        "image: src\nfrom: busybox:latest\nshell:\n  install:\n  - mkdir -p /out && echo from-install > /out/f\n  setup:\n  - echo from-setup > /out/f\n---\nimage: app\nfrom: busybox:latest\nimport:\n- image: src\n  stage: install\n  add: /out\n  after: install\n- image: src\n  add: /out\n  to: /last\n  after: install\n",
    );
    env.build_ok(&dir);
    assert_eq!(
        env.run_sh("app", "cat /out/f /last/f"),
        "from-install\nfrom-setup\n"
    );
}

#[test]
fn twenty_images_build_in_parallel_within_the_bound() {
    let env = Env::new();
    let shared = env.work.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let mut yaml = String::new();
    for i in 0..20 {
        yaml.push_str(&format!(
            "---\nimage: img{i}\nfrom: busybox:latest\nmount:\n- fromPath: {}\n  to: /shared\nshell:\n  install:\n  - touch /shared/running-{i}; ls /shared | grep -c running >> /shared/counts; sleep 0.4; rm /shared/running-{i}\n",
            shared.display()
        ));
    }
    let dir = env.project("twenty", &yaml);
    let out = env
        .cmd()
        .args([
            "build",
            "--progress",
            "plain",
            "--parallel",
            "4",
            "--loose-giterminism",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts: Vec<usize> = std::fs::read_to_string(shared.join("counts"))
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(counts.len(), 20);
    let max = *counts.iter().max().unwrap();
    assert!(max <= 4, "at most 4 images at once, saw {max}: {counts:?}");
    assert!(
        max >= 2,
        "independent images build in parallel, saw {counts:?}"
    );
}
