//! werf.yaml keys real projects use, each built as werf documents it: `secrets`, `addHost`,
//! `dependencies` into a Dockerfile's build args, `imageSpec.clearHistory`, git `basicAuth`
//! and imports from images outside the config.

use std::path::Path;
use std::process::Output;

use crate::support::{Env, GitServer, built_stages, git};

/// A project in a git repository with one commit, its config as `werf.yaml`.
fn project(env: &Env, name: &str, yaml: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = env.work.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("werf.yaml"), yaml).unwrap();
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    git(&dir, &["init", "-q", "-b", "main"]);
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "first"]);
    dir
}

fn build(env: &Env, dir: &Path, vars: &[(&str, &str)]) -> Output {
    build_with(env, dir, vars, &[])
}

/// `strata build` with variables `vars` and more arguments `args`.
fn build_with(env: &Env, dir: &Path, vars: &[(&str, &str)], args: &[&str]) -> Output {
    env.cmd()
        .args(["build", "--progress", "plain"])
        .args(args)
        .envs(vars.iter().copied())
        .current_dir(dir)
        .output()
        .unwrap()
}

fn build_ok(env: &Env, dir: &Path, vars: &[(&str, &str)]) -> Vec<String> {
    succeeded(&build(env, dir, vars))
}

/// The stages a successful build built (failing on a failed one).
fn succeeded(out: &Output) -> Vec<String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "build failed:\n{stderr}");
    built_stages(&stderr)
}

/// The giterminism config that allows [`SECRETS`]' secrets.
const SECRETS_ALLOWED: (&str, &str) = (
    "werf-giterminism.yaml",
    "giterminismConfigVersion: 1\nconfig:\n  secrets:\n    allowEnvVariables: [STRATA_TEST_TOKEN]\n    \
     allowFiles: [creds.txt]\n    allowValueIds: [plain]\n",
);

const SECRETS: &str = r#"project: secrets
configVersion: 1
---
image: app
from: busybox:latest
secrets:
- env: STRATA_TEST_TOKEN
- id: creds
  src: creds.txt
- id: plain
  value: plain-value
shell:
  install:
  - test "$(cat /run/secrets/STRATA_TEST_TOKEN)" = tok-1 || test "$(cat /run/secrets/STRATA_TEST_TOKEN)" = tok-2
  - cat /run/secrets/creds /run/secrets/plain | wc -c > /secret-sizes
"#;

#[test]
fn secrets_are_mounted_in_user_stages_and_are_in_no_layer_or_digest() {
    let env = Env::new();
    let dir = project(
        &env,
        "p",
        SECRETS,
        &[("creds.txt", "user:pw\n"), SECRETS_ALLOWED],
    );
    let built = build_ok(&env, &dir, &[("STRATA_TEST_TOKEN", "tok-1")]);
    assert!(built.contains(&"app/install".to_string()), "{built:?}");
    // "user:pw\n" and "plain-value": 8 + 11 bytes were there during the stage.
    assert_eq!(env.run_sh("app", "cat /secret-sizes").trim(), "19");
    // Nothing of them is left in the image.
    assert_eq!(
        env.run_sh("app", "ls -A /run/secrets 2>/dev/null | wc -l")
            .trim(),
        "0"
    );
    // Another value of a secret is no reason to rebuild: the secret is not in the digest.
    let again = build_ok(&env, &dir, &[("STRATA_TEST_TOKEN", "tok-2")]);
    assert!(again.is_empty(), "rebuilt: {again:?}");
}

#[test]
fn a_secret_whose_variable_is_not_set_fails_the_stage_naming_it() {
    let env = Env::new();
    let dir = project(
        &env,
        "p",
        SECRETS,
        &[("creds.txt", "user:pw\n"), SECRETS_ALLOWED],
    );
    let out = build(&env, &dir, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "built without the secret:\n{stderr}");
    assert!(
        stderr.contains("the secret `STRATA_TEST_TOKEN` is read from the variable `STRATA_TEST_TOKEN`, which is not set"),
        "{stderr}"
    );
}

/// werf's giterminism: each kind of secret needs its allowance (a variable, a file, a value's
/// id), or the loose mode; the refusal points at the entry and the store is unchanged.
#[test]
fn secrets_are_refused_unless_giterminism_allows_them() {
    let env = Env::new();
    let dir = project(&env, "p", SECRETS, &[("creds.txt", "user:pw\n")]);
    let vars = [("STRATA_TEST_TOKEN", "tok-1")];
    let stderr = String::from_utf8_lossy(&build(&env, &dir, &vars).stderr).to_string();
    assert!(
        stderr.contains("the secret `STRATA_TEST_TOKEN` is not allowed by giterminism"),
        "{stderr}"
    );
    assert!(stderr.contains("werf.yaml:7:3"), "{stderr}");
    assert!(
        stderr.contains("allowEnvVariables: [STRATA_TEST_TOKEN]"),
        "{stderr}"
    );
    let before = crate::support::store_listing(env.store.path());
    // Each allowance in turn lets the build reach the next secret.
    let steps = [
        (
            "allowEnvVariables: [STRATA_TEST_TOKEN]",
            "the secret `creds`",
            "werf.yaml:8:3",
        ),
        (
            "allowFiles: [\"./*.txt\"]",
            "the secret `plain`",
            "werf.yaml:10:3",
        ),
    ];
    let mut allowed = String::new();
    for (allow, refused, at) in steps {
        allowed.push_str(&format!("    {allow}\n"));
        let text = format!("giterminismConfigVersion: 1\nconfig:\n  secrets:\n{allowed}");
        std::fs::write(dir.join("werf-giterminism.yaml"), text).unwrap();
        let stderr = String::from_utf8_lossy(&build(&env, &dir, &vars).stderr).to_string();
        assert!(stderr.contains(refused), "{stderr}");
        assert!(stderr.contains(at), "{stderr}");
    }
    assert_eq!(crate::support::store_listing(env.store.path()), before);
    let out = env
        .cmd()
        .args(["build", "--progress", "plain", "--loose-giterminism"])
        .envs(vars)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn secrets_errors_point_at_the_entry() {
    let env = Env::new();
    let yaml = "project: s\nconfigVersion: 1\n---\nimage: app\nfrom: busybox:latest\nsecrets:\n\
                - env: A\n- id: A\n  value: x\n";
    let dir = project(&env, "dup", yaml, &[]);
    let stderr = String::from_utf8_lossy(&build(&env, &dir, &[]).stderr).to_string();
    assert!(stderr.contains("duplicated secret `A`"), "{stderr}");
    assert!(stderr.contains("werf.yaml:8:3"), "{stderr}");
    let yaml = "project: s\nconfigVersion: 1\n---\nimage: app\nfrom: busybox:latest\nsecrets:\n\
                - value: x\n";
    let dir = project(&env, "noid", yaml, &[]);
    let stderr = String::from_utf8_lossy(&build(&env, &dir, &[]).stderr).to_string();
    assert!(
        stderr.contains("a secret with `value` needs an `id`"),
        "{stderr}"
    );
    assert!(stderr.contains("werf.yaml:7:3"), "{stderr}");
}

#[test]
fn add_host_entries_are_in_the_build_containers_hosts_only() {
    let env = Env::new();
    let yaml = "project: h\nconfigVersion: 1\n---\nimage: app\nfrom: busybox:latest\n\
                addHost:\n- registry.local:10.1.2.3\n- v6.local:fd00::1\nshell:\n  install:\n  \
                - grep -E 'registry.local|v6.local' /etc/hosts > /seen\n";
    let dir = project(&env, "p", yaml, &[]);
    build_ok(&env, &dir, &[]);
    assert_eq!(
        crate::support::words(&env.run_sh("app", "cat /seen")),
        "10.1.2.3 registry.local fd00::1 v6.local"
    );
    assert_eq!(
        env.run_sh("app", "grep -c registry.local /etc/hosts || true")
            .trim(),
        "0"
    );
}

#[test]
fn a_dockerfile_images_dependencies_are_its_build_args_and_from_builds_on_them() {
    let env = Env::new();
    let yaml = r#"project: deps
configVersion: 1
---
image: base
from: busybox:latest
shell:
  install:
  - echo from-base > /base.txt
---
image: app
dockerfile: Dockerfile
dependencies:
- image: base
  imports:
  - type: ImageName
    targetBuildArg: BASE_IMAGE
  - type: ImageTag
    targetBuildArg: BASE_TAG
  - type: ImageRepo
    targetBuildArg: BASE_REPO
"#;
    let dockerfile = "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nARG BASE_IMAGE\nARG BASE_TAG\nARG BASE_REPO\n\
                      RUN echo \"$BASE_IMAGE $BASE_REPO $BASE_TAG $(cat /base.txt)\" > /args.txt\n";
    let dir = project(&env, "p", yaml, &[("Dockerfile", dockerfile)]);
    build_ok(&env, &dir, &[]);
    // werf's values: the name of base's last stage, PROJECT:DIGEST-MILLIS, split at the `:`;
    // an image name `strata run` and `strata inspect` resolve.
    let args = env.run_sh("app", "cat /args.txt");
    let words: Vec<&str> = args.split_whitespace().collect();
    let stage = env.last_stage("base");
    let (repo, tag) = words[0].split_once(':').unwrap();
    assert_eq!(
        (repo, words[1], tag, words[2]),
        ("deps", "deps", words[2], tag)
    );
    let (digest, millis) = tag.split_once('-').unwrap();
    assert_eq!(digest, stage);
    assert_eq!(millis.len(), 13, "{millis}");
    assert_eq!(words[3], "from-base");
    assert_eq!(env.run_sh(words[0], "cat /base.txt"), "from-base\n");
    assert_eq!(
        inspected(&env, words[0], "id"),
        inspected(&env, "base", "id")
    );
    // Built again unchanged: the same values, nothing rebuilds.
    assert_eq!(build_ok(&env, &dir, &[]), Vec::<String>::new());
    assert_eq!(env.run_sh("app", "cat /args.txt"), args);
    // A rebuilt dependency rebuilds the image built on it.
    std::fs::write(
        dir.join("werf.yaml"),
        yaml.replace("echo from-base", "echo changed-base"),
    )
    .unwrap();
    let built = build_ok(&env, &dir, &[]);
    assert!(built.iter().any(|s| s.starts_with("app/")), "{built:?}");
    let changed = env.run_sh("app", "cat /args.txt");
    assert_ne!(changed, args);
    assert!(changed.trim().ends_with(" changed-base"), "{changed}");
}

/// `strata inspect IMAGE`'s field (`id`, `manifest`).
fn inspected(env: &Env, image: &str, field: &str) -> String {
    env.inspect(image)[field].as_str().unwrap().to_string()
}

/// werf's `ImageID` and `ImageDigest` as a Dockerfile image's build args: the plan is made once
/// the dependency is built, so the args are its id and manifest digest; the steps using them
/// rebuild when the dependency's change changes them, the steps before the `ARG` never, and
/// nothing when the dependency stays.
#[test]
fn a_dockerfile_image_takes_its_dependencies_id_and_digest_as_build_args() {
    let env = Env::new();
    let yaml = r#"project: ids
configVersion: 1
---
image: base
from: busybox:latest
shell:
  install:
  - echo one > /base.txt
---
image: other
from: busybox:latest
shell:
  install:
  - echo other > /other.txt
---
image: app
dockerfile: Dockerfile
dependencies:
- image: base
  imports:
  - type: ImageID
    targetBuildArg: BASE_ID
  - type: ImageDigest
    targetBuildArg: BASE_DIGEST
"#;
    let dockerfile = "FROM busybox:latest\nRUN echo before > /before.txt\nARG BASE_ID\nARG BASE_DIGEST\n\
                      RUN echo \"$BASE_ID $BASE_DIGEST\" > /ids.txt\n";
    let dir = project(&env, "p", yaml, &[("Dockerfile", dockerfile)]);
    // Building another image alone waits for nothing: base stays unbuilt.
    let alone = succeeded(&build_with(&env, &dir, &[], &["other"]));
    assert!(alone.iter().all(|s| s.starts_with("other/")), "{alone:?}");
    let cold = build_ok(&env, &dir, &[]);
    assert_eq!(
        cold.iter().filter(|s| s.starts_with("app/")).count(),
        2,
        "{cold:?}"
    );
    let ids = |env: &Env| {
        format!(
            "{} {}",
            inspected(env, "base", "id"),
            inspected(env, "base", "manifest")
        )
    };
    let first = ids(&env);
    assert!(
        first.starts_with("sha256:") && first.contains(" sha256:"),
        "{first}"
    );
    assert_eq!(env.run_sh("app", "cat /ids.txt").trim(), first);
    // Nothing changed: nothing rebuilds, the dependency's values are the same.
    assert_eq!(build_ok(&env, &dir, &[]), Vec::<String>::new());
    // A change to an image app does not depend on leaves app alone.
    let other = yaml.replace("echo other", "echo other2");
    assert!(cold.iter().all(|s| !s.starts_with("other/")), "{cold:?}");
    std::fs::write(dir.join("werf.yaml"), &other).unwrap();
    let built = build_ok(&env, &dir, &[]);
    assert!(built.iter().all(|s| s.starts_with("other/")), "{built:?}");
    // A changed dependency: new id and digest, the step using them runs again, the one
    // before the ARG stays.
    std::fs::write(dir.join("werf.yaml"), other.replace("echo one", "echo two")).unwrap();
    let built = build_ok(&env, &dir, &[]);
    let app: Vec<&String> = built.iter().filter(|s| s.starts_with("app/")).collect();
    assert_eq!(app.len(), 1, "{built:?}");
    let second = ids(&env);
    assert_ne!(first, second);
    assert_eq!(env.run_sh("app", "cat /ids.txt").trim(), second);
    assert_eq!(env.run_sh("app", "cat /before.txt").trim(), "before");
}

/// With `--repo`, werf's ImageName of a dependency is its stage in the stage repository
/// (`REPO:DIGEST-MILLIS`, the tag there): another machine pulls and runs it by that name, and
/// its build of the same config reuses every stage, the values being the same.
#[test]
fn with_a_stage_repository_a_dependencys_name_is_its_stage_there() {
    let registry = crate::registry::Registry::start();
    let repo = format!("{}/stages", registry.host());
    let yaml = r#"project: repo-deps
configVersion: 1
---
image: base
from: busybox:latest
shell:
  install:
  - echo from-base > /base.txt
---
image: app
from: busybox:latest
dependencies:
- image: base
  after: install
  imports:
  - type: ImageName
    targetEnv: BASE_NAME
  - type: ImageRepo
    targetEnv: BASE_REPO
  - type: ImageTag
    targetEnv: BASE_TAG
shell:
  setup:
  - echo "$BASE_NAME $BASE_REPO $BASE_TAG" > /deps
---
image: df
dockerfile: Dockerfile
dependencies:
- image: base
  imports:
  - type: ImageName
    targetBuildArg: BASE_IMAGE
"#;
    let dockerfile = "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN cat /base.txt > /seen.txt\n";
    let env = Env::new();
    let dir = project(&env, "p", yaml, &[("Dockerfile", dockerfile)]);
    succeeded(&build_with(&env, &dir, &[], &["--repo", &repo]));
    let deps = env.run_sh("app", "cat /deps");
    let words: Vec<&str> = deps.split_whitespace().collect();
    assert_eq!(words[0], format!("{}:{}", words[1], words[2]));
    assert_eq!(words[1], repo);
    let (digest, millis) = words[2].split_once('-').unwrap();
    assert_eq!(digest, env.last_stage("base"));
    assert_eq!(millis.len(), 13, "{millis}");
    assert_eq!(env.run_sh("df", "cat /seen.txt"), "from-base\n");

    // Another machine: the name is a reference to the stage repository.
    let other = Env::new();
    let pulled = other.strata(&["pull", words[0]]);
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    assert_eq!(other.run_sh(words[0], "cat /base.txt"), "from-base\n");
    // Its build of the project reuses every stage: the values are the repository's.
    let dir = project(&other, "p", yaml, &[("Dockerfile", dockerfile)]);
    let out = build_with(&other, &dir, &[], &["--repo", &repo]);
    assert_eq!(succeeded(&out), Vec::<String>::new());
    assert_eq!(other.run_sh("app", "cat /deps"), deps);
}

/// werf's service labels: each stapel stage names the stage it is built on
/// (`werf.io/parent-stage-id`, that stage's `DIGEST-MILLIS`: an image's first stage on
/// `fromImage` names the base's last stage), that stage's image id (`werf.io/base-image-id`),
/// the project's commit and a dependency's last stage; the meta `removeLabels` applies before the image's `imageSpec`
/// labels are set and never removes werf's essential labels.
#[test]
fn stapel_stages_carry_werfs_service_labels() {
    let env = Env::new();
    let yaml = r#"project: labels
configVersion: 1
---
image: base
from: busybox:latest
shell:
  install:
  - echo base > /b
---
image: app
fromImage: base
dependencies:
- image: base
  after: install
  imports:
  - type: ImageTag
    targetEnv: BASE_TAG
shell:
  install:
  - echo i > /i
  setup:
  - echo s > /s
imageSpec:
  config:
    labels:
      keep-me: "yes"
      "%image%.io/of": "%project%/%image%"
"#;
    let dir = project(&env, "p", yaml, &[]);
    build_ok(&env, &dir, &[]);
    let head = String::from_utf8(
        std::process::Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(&dir)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let stage_id = |s: &serde_json::Value| {
        format!(
            "{}-{}",
            s["digest"].as_str().unwrap(),
            s["meta"]["createdMillis"].as_str().unwrap()
        )
    };
    let labels = |reference: &str| env.inspect(reference)["config"]["config"]["Labels"].clone();
    let app = env.inspect("app");
    let stages = app["stages"].as_array().unwrap().clone();
    let names: Vec<&str> = stages
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "from",
            "install",
            "dependenciesAfterInstall",
            "setup",
            "imageSpec"
        ]
    );
    let last = labels("app");
    let setup = stage_id(&stages[3]);
    // The dependency's last stage, under the sha256 of its id.
    let base_last = stage_id(
        env.inspect("base")["stages"]
            .as_array()
            .unwrap()
            .last()
            .unwrap(),
    );
    let key = format!(
        "werf-dependency-stage-id-{}",
        strata_digest::Digest::of(base_last.as_bytes()).hex()
    );
    assert_eq!(last[key.as_str()], base_last.as_str(), "{last}");
    assert_eq!(last["werf.io/parent-stage-id"], setup.as_str());
    assert_eq!(last["werf"], "labels");
    assert_eq!(last["werf-project-repo-commit"], head.trim());
    assert_eq!(last["keep-me"], "yes");
    // werf's label templates.
    assert_eq!(last["app.io/of"], "labels/app");
    // The base image id is the image of the stage named, by its werf name.
    let setup_id = env.inspect(&format!("labels:{setup}"))["id"].clone();
    assert!(
        setup_id.as_str().unwrap().starts_with("sha256:"),
        "{setup_id}"
    );
    assert_eq!(last["werf.io/base-image-id"], setup_id);
    // The first stage is built on the base's last stage; it sets no base image id of its own
    // (the base's is inherited, as werf's labels are).
    let from = labels(&format!("labels:{}", stage_id(&stages[0])));
    let base_stages = env.inspect("base")["stages"].as_array().unwrap().clone();
    assert_eq!(
        from["werf.io/parent-stage-id"],
        stage_id(base_stages.last().unwrap()).as_str()
    );
    assert_eq!(
        from["werf.io/base-image-id"],
        labels("base")["werf.io/base-image-id"]
    );

    // The meta removals come before the image's labels, and keep werf's essential ones.
    let meta = yaml.replace(
        "configVersion: 1\n",
        "configVersion: 1\nbuild:\n  imageSpec:\n    config:\n      removeLabels: [\"/keep.*/\", \"/werf.*/\"]\n",
    );
    std::fs::write(dir.join("werf.yaml"), meta).unwrap();
    git(&dir, &["commit", "-qam", "meta"]);
    // base gains an imageSpec stage, which app is built on.
    let built = build_ok(&env, &dir, &[]);
    assert_eq!(
        built,
        [
            "base/imageSpec",
            "app/from",
            "app/install",
            "app/dependenciesAfterInstall",
            "app/setup",
            "app/imageSpec"
        ]
    );
    let last = labels("app");
    assert_eq!(last["keep-me"], "yes");
    assert!(last.get("werf.io/base-image-id").is_none(), "{last}");
    for essential in [
        "werf",
        "werf.io/parent-stage-id",
        "werf-project-repo-commit",
    ] {
        assert!(last.get(essential).is_some(), "{essential}: {last}");
    }
}

#[test]
fn dependency_keys_follow_the_kind_of_image() {
    let env = Env::new();
    let base = "project: d\nconfigVersion: 1\n---\nimage: base\nfrom: busybox:latest\n---\n";
    let cases = [
        (
            "image: app\nfrom: busybox:latest\ndependencies:\n- image: base\n  after: install\n  imports:\n  - type: ImageName\n    targetBuildArg: X\n",
            "`targetBuildArg` is for images built from a Dockerfile; a stapel image takes `targetEnv`",
        ),
        (
            "image: app\ndockerfile: Dockerfile\ndependencies:\n- image: base\n  imports:\n  - type: ImageName\n    targetEnv: X\n",
            "`targetEnv` is for stapel images; an image built from a Dockerfile takes `targetBuildArg`",
        ),
        (
            "image: app\ndockerfile: Dockerfile\ndependencies:\n- image: base\n  before: install\n",
            "a dependency of an image built from a Dockerfile takes no `before` or `after`",
        ),
    ];
    for (i, (image, expected)) in cases.iter().enumerate() {
        let dir = project(
            &env,
            &format!("case{i}"),
            &format!("{base}{image}"),
            &[("Dockerfile", "FROM busybox:latest\n")],
        );
        let out = build(&env, &dir, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} built");
        assert!(stderr.contains(expected), "case {i}: {stderr}");
    }
}

fn history(env: &Env, image: &str) -> Vec<String> {
    let out = env.strata(&["inspect", image]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    value["config"]["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|e| e["created_by"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A `/REGEX/` removal of `imageSpec` that is no regular expression fails at the imageSpec's
/// line, before anything is built.
#[test]
fn a_bad_image_spec_regex_is_refused_at_its_image_spec() {
    let env = Env::new();
    let yaml = "project: s\nconfigVersion: 1\n---\nimage: app\nfrom: busybox:latest\n\
                imageSpec:\n  config:\n    removeEnv: [\"/(unclosed/\"]\n";
    let dir = project(&env, "p", yaml, &[]);
    let before = crate::support::store_listing(env.store.path());
    let out = build(&env, &dir, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("`/(unclosed/` in `imageSpec` is not a regular expression"),
        "{stderr}"
    );
    assert!(stderr.contains("werf.yaml:6:1"), "{stderr}");
    assert_eq!(crate::support::store_listing(env.store.path()), before);
}

#[test]
fn image_spec_clear_history_leaves_the_image_without_history() {
    let env = Env::new();
    let yaml = "project: h\nconfigVersion: 1\n---\nimage: kept\nfrom: busybox:latest\n\
                shell:\n  install:\n  - echo k > /a\nimageSpec:\n  author: me\n---\n\
                image: cleared\nfrom: busybox:latest\nshell:\n  install:\n  - echo a > /a\n\
                imageSpec:\n  clearHistory: true\n  config:\n    clearWerfLabels: true\n";
    let dir = project(&env, "p", yaml, &[]);
    build_ok(&env, &dir, &[]);
    let kept = history(&env, "kept");
    assert!(
        kept.iter()
            .any(|h| h == "strata: kept/install: echo k > /a"),
        "{kept:?}"
    );
    assert_eq!(history(&env, "cleared"), Vec::<String>::new());
    // The files are all there.
    assert_eq!(env.run_sh("cleared", "cat /a").trim(), "a");
}

#[test]
fn an_import_from_an_image_outside_the_config_copies_from_that_image() {
    let env = Env::new();
    let tar = crate::support::busybox_tar().to_str().unwrap();
    let out = env.strata(&["import", tar, "tools/box:1.0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = "project: ext\nconfigVersion: 1\n---\nimage: app\nfrom: busybox:latest\nimport:\n\
                - from: tools/box:1.0\n  add: /bin\n  to: /opt/box\n  includePaths: [busybox]\n  \
                after: install\nshell:\n  install:\n  - echo i > /i\n";
    let dir = project(&env, "p", yaml, &[]);
    let built = build_ok(&env, &dir, &[]);
    assert!(
        built.contains(&"app/dependenciesAfterInstall".to_string()),
        "{built:?}"
    );
    assert_eq!(
        env.run_sh("app", "cmp /opt/box/busybox /bin/busybox && ls /opt/box")
            .trim(),
        "busybox"
    );
    // A stage of an image outside the config is no such thing.
    let yaml = yaml.replace("  after: install", "  stage: install\n  after: install");
    let dir = project(&env, "stage", &yaml, &[]);
    let stderr = String::from_utf8_lossy(&build(&env, &dir, &[]).stderr).to_string();
    assert!(
        stderr.contains("`tools/box:1.0` is an image outside the config: it has no stages"),
        "{stderr}"
    );
}

#[test]
fn git_basic_auth_gives_the_clone_its_credentials_and_shows_them_nowhere() {
    let env = Env::new();
    let root = env.work.path().join("server");
    let repos = root.join("repos");
    std::fs::create_dir_all(&repos).unwrap();
    let source = root.join("lib");
    std::fs::create_dir_all(&source).unwrap();
    git(&source, &["init", "-q", "-b", "main"]);
    std::fs::write(source.join("lib.txt"), "from the remote\n").unwrap();
    git(&source, &["add", "-A"]);
    git(&source, &["commit", "-q", "-m", "lib"]);
    git(
        &root,
        &[
            "clone",
            "-q",
            "--bare",
            "lib",
            repos.join("lib.git").to_str().unwrap(),
        ],
    );
    let server = GitServer::start(&root, &repos, Some("alice:s3cret-pw"));
    let yaml = format!(
        "project: auth\nconfigVersion: 1\n---\nimage: app\nfrom: busybox:latest\ngit:\n\
         - url: {}/lib.git\n  branch: main\n  add: /\n  to: /lib\n  basicAuth:\n    \
         username: alice\n    password:\n      env: STRATA_TEST_GIT_PASSWORD\n",
        server.url
    );
    let dir = project(&env, "p", &yaml, &[]);
    // Without the password, git is refused (and asks no terminal).
    let out = build(&env, &dir, &[("STRATA_TEST_GIT_PASSWORD", "wrong-pw")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "cloned with a wrong password");
    assert!(stderr.contains("werf.yaml:7:8"), "{stderr}");
    assert!(!stderr.contains("wrong-pw"), "{stderr}");
    let out = build(&env, &dir, &[("STRATA_TEST_GIT_PASSWORD", "s3cret-pw")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("s3cret-pw"), "{stderr}");
    assert_eq!(
        env.run_sh("app", "cat /lib/lib.txt").trim(),
        "from the remote"
    );
    // The password is in no stage record and no clone's config.
    for record in env.stage_records() {
        assert!(!record.to_string().contains("s3cret-pw"), "{record}");
    }
    let clones = env.store.path().join("git");
    for entry in std::fs::read_dir(&clones).unwrap() {
        let config = std::fs::read_to_string(entry.unwrap().path().join("config")).unwrap();
        assert!(
            !config.contains("s3cret-pw") && !config.contains("alice"),
            "{config}"
        );
    }
    // A variable that is not set is an error at the password.
    let out = build(&env, &dir, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("the variable `STRATA_TEST_GIT_PASSWORD` is not set"),
        "{stderr}"
    );
}
