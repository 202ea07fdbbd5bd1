//! `strata plan`, `strata build --explain` and `strata explain`: each kind of stage input
//! changed in turn, in both frontends, and the explanation names exactly that input (the stages
//! before it reused, the stages after it rebuilt for their parent); the plan's digests are the
//! ones the following build records.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use crate::support::{Env, git};

/// The stapel project: an artifact imported after `install`, a git mapping whose `*.c` files
/// `install` depends on, and the values the tests change.
fn config(tool: &str, install: &str, version: &str) -> String {
    format!(
        r#"project: why
configVersion: 1
---
image: tool
from: busybox:latest
final: false
shell:
  install:
  - mkdir -p /out && echo {tool} > /out/tool
---
image: app
from: busybox:latest
git:
- add: /src
  to: /app
  stageDependencies:
    install:
    - "*.c"
import:
- image: tool
  add: /out
  to: /opt/tool
  after: install
shell:
  install:
  - {install}
  installCacheVersion: "{version}"
  setup:
  - echo setup
"#
    )
}

/// A repository holding `config(..)` and two source files, committed.
fn project(env: &Env) -> std::path::PathBuf {
    let dir = env.project("why", &config("t1", "echo one", "1"));
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/main.c"), "int main;\n").unwrap();
    std::fs::write(dir.join("src/README"), "v1\n").unwrap();
    git(&dir, &["init", "-q", "-b", "main"]);
    commit(&dir);
    dir
}

fn commit(dir: &Path) {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "--allow-empty", "-m", "change"]);
}

/// `strata ARGS... MORE...` run in `dir`, asserting success.
fn ok_in(env: &Env, dir: &Path, args: &[&str], more: &[&str]) -> Output {
    let out = env
        .cmd()
        .args(args)
        .args(more)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "strata {args:?} {more:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `strata build --explain` in `dir` (plain progress), asserting success.
fn build_explained(env: &Env, dir: &Path, args: &[&str]) -> BTreeMap<String, String> {
    let out = ok_in(
        env,
        dir,
        &["build", "--progress", "plain", "--explain"],
        args,
    );
    explanations(&out)
}

/// The explanation of each stage in a build's stderr: `image/stage` → what follows the
/// digest (`built: ...` or `reused (local)`), with its indented detail lines.
fn explanations(out: &Output) -> BTreeMap<String, String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut found = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in stderr.lines() {
        if let (Some(detail), Some(key)) = (line.strip_prefix("    "), &last) {
            let entry: &mut String = found.get_mut(key).unwrap();
            entry.push('\n');
            entry.push_str(detail);
            continue;
        }
        last = None;
        let Some((head, rest)) = line.split_once(": ") else {
            continue;
        };
        let Some((stage, digest)) = head.split_once(' ') else {
            continue;
        };
        if digest.len() == 12 && digest.chars().all(|c| c.is_ascii_hexdigit()) {
            found.insert(stage.to_string(), rest.to_string());
            last = Some(stage.to_string());
        }
    }
    assert!(!found.is_empty(), "no explanation in:\n{stderr}");
    found
}

/// Asserts the stages of `image` that were built and why: `changed` names the one stage whose
/// own input changed and what its explanation starts with; the stages before it are reused
/// and every built one after it is rebuilt for its parent.
fn assert_only(explained: &BTreeMap<String, String>, image: &str, changed: &str, reason: &str) {
    let ours: Vec<(&String, &String)> = explained
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{image}/")))
        .collect();
    let stage = format!("{image}/{changed}");
    let why = explained
        .get(&stage)
        .unwrap_or_else(|| panic!("{stage} not explained: {explained:#?}"));
    assert!(
        why.starts_with(reason),
        "{stage}: {why:?} does not start with {reason:?}"
    );
    for (k, v) in ours {
        assert!(
            *k == stage || v.starts_with("reused (") || v == "built: the stage before it changed",
            "{k} was built for another reason: {v:?} (only {stage} changed)\n{explained:#?}"
        );
    }
}

#[test]
fn stapel_explanations_name_exactly_the_changed_input() {
    let env = Env::new();
    let dir = project(&env);
    let first = build_explained(&env, &dir, &[]);
    assert_eq!(
        first["app/install"],
        "built: the image had no such stage before"
    );

    // Nothing changed: everything reused, from the local store.
    let again = build_explained(&env, &dir, &[]);
    assert!(again.values().all(|v| v == "reused (local)"), "{again:#?}");

    // Writes files of the repository, commits and builds with --explain.
    let change = |files: &[(&str, &str)]| {
        for (path, text) in files {
            std::fs::write(dir.join(path), text).unwrap();
        }
        commit(&dir);
        build_explained(&env, &dir, &[])
    };

    // A cache version.
    let e = change(&[("strata.yaml", &config("t1", "echo one", "2"))]);
    assert_only(
        &e,
        "app",
        "install",
        r#"built: installCacheVersion changed: "1" → "2""#,
    );
    assert!(e["tool/install"].starts_with("reused"), "{e:#?}");

    // The instructions: a line diff.
    let e = change(&[("strata.yaml", &config("t1", "echo two", "2"))]);
    assert_only(
        &e,
        "app",
        "install",
        "built: instructions changed:\n- echo one\n+ echo two",
    );

    // A file under a stageDependencies mask: named, and only it.
    let e = change(&[
        ("src/main.c", "int main(void);\n"),
        ("src/util.c", "int util;\n"),
    ]);
    assert_only(
        &e,
        "app",
        "install",
        "built: git[0].install changed: files under *.c changed:\nM main.c\nA util.c",
    );

    // A file outside every mask: only the patch stage is built (its input is late: the
    // change since the commit its parent recorded), first new, then changed.
    let e = change(&[("src/README", "v2\n")]);
    assert_only(
        &e,
        "app",
        "gitLatestPatch",
        "built: the image had no such stage before",
    );
    let e = change(&[("src/README", "v3\n")]);
    assert_only(&e, "app", "gitLatestPatch", "built: git[0].patch changed: ");

    // The imported files: the artifact rebuilt, and the import stage names its checksum.
    let e = change(&[("strata.yaml", &config("t2", "echo two", "2"))]);
    assert!(
        e["tool/install"].starts_with("built: instructions changed:"),
        "{e:#?}"
    );
    assert_only(
        &e,
        "app",
        "dependenciesAfterInstall",
        "built: import[0].files changed:",
    );

    // `strata explain` says the same of the image's current stages, as JSON too.
    let out = env.strata(&["explain", "app", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let deps = json
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "dependenciesAfterInstall")
        .unwrap_or_else(|| panic!("{json:#}"));
    assert_eq!(deps["reason"]["kind"], "changed", "{json:#}");
    assert_eq!(deps["reason"]["input"], "import[0].files", "{json:#}");
}

#[test]
fn a_new_base_is_named() {
    let env = Env::new();
    let dir = env.project(
        "base",
        "image: app\nfrom: busybox:latest\nshell:\n  install:\n  - echo hi\n",
    );
    build_explained(&env, &dir, &[]);
    env.reimport_busybox("new base\n");
    let e = build_explained(&env, &dir, &[]);
    assert_only(&e, "app", "from", r#"built: base changed: ""#);
    assert!(e["app/from"].contains("busybox"), "{e:#?}");
}

/// A Dockerfile whose `RUN` sees a build arg and whose `COPY` reads a context file.
/// The arg comes last: every later `RUN` sees it, and so has it as an input too.
const DOCKERFILE: &str =
    "FROM busybox:latest\nCOPY a.txt /a.txt\nRUN cat /a.txt\nARG V\nRUN echo $V > /v\n";

#[test]
fn dockerfile_explanations_name_exactly_the_changed_input() {
    let env = Env::new();
    let dir = env.work.path().join("df");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(dir.join("a.txt"), "one\n").unwrap();
    let build = |args: &[&str]| {
        let mut all = vec!["-t", "df", "--build-arg"];
        all.extend(args);
        all.push(".");
        build_explained(&env, &dir, &all)
    };
    let first = build(&["V=1"]);
    // The target is named by its tag.
    let image = first
        .keys()
        .find_map(|k| k.strip_suffix("/4-run"))
        .unwrap_or_else(|| panic!("{first:#?}"))
        .to_string();

    // A build arg.
    let e = build(&["V=2"]);
    assert_only(&e, &image, "4-run", r#"built: arg.V changed: "1" → "2""#);

    // A COPY source.
    std::fs::write(dir.join("a.txt"), "two\n").unwrap();
    let e = build(&["V=2"]);
    assert_only(&e, &image, "1-copy", "built: copy changed:");

    // The instruction itself.
    std::fs::write(
        dir.join("Dockerfile"),
        DOCKERFILE.replace("echo $V", "echo v=$V"),
    )
    .unwrap();
    let e = build(&["V=2"]);
    assert_only(
        &e,
        &image,
        "4-run",
        "built: instructions changed:\n- echo $V > /v\n+ echo v=$V > /v",
    );

    // JSON progress stays JSON: the explanation is one event of the stream.
    let out = ok_in(
        &env,
        &dir,
        &["build", "--progress", "json", "--explain", "-t", "df"],
        &["--build-arg", "V=2", "."],
    );
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let explained = events
        .iter()
        .find(|e| e["event"] == "explain")
        .unwrap_or_else(|| panic!("{events:#?}"));
    let stages = explained["stages"].as_array().unwrap();
    assert!(!stages.is_empty());
    assert!(
        stages
            .iter()
            .all(|s| s["built"] == false && s["reusedFrom"] == "local"),
        "{explained:#}"
    );

    // docker's --no-cache: built on request, whatever the cache has.
    let e = build(&["V=2", "--no-cache"]);
    assert!(
        e.values().all(|v| v == "built: --no-cache asked for it"),
        "{e:#?}"
    );
}

/// The digests `strata plan --json` shows, by `image/stage` (`None`: not known yet), and
/// where each is cached.
fn planned(env: &Env, dir: &Path, args: &[&str]) -> BTreeMap<String, (Option<String>, String)> {
    let out = ok_in(env, dir, &["plan", "--json"], args);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut found = BTreeMap::new();
    for image in json.as_array().unwrap() {
        for stage in image["stages"].as_array().unwrap() {
            found.insert(
                format!(
                    "{}/{}",
                    image["image"].as_str().unwrap(),
                    stage["stage"].as_str().unwrap()
                ),
                (
                    stage["digest"].as_str().map(str::to_string),
                    stage["cached"].as_str().unwrap().to_string(),
                ),
            );
        }
    }
    found
}

/// The digests of the stage records in the store (images with the same leading stages share
/// them).
fn recorded(env: &Env) -> std::collections::BTreeSet<String> {
    env.stage_records()
        .iter()
        .map(|r| {
            r["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:")
                .to_string()
        })
        .collect()
}

/// Every digest the plan knows is one the following build records, and the plan after the
/// build finds each of its stages in the store.
fn assert_plan_matches_build(env: &Env, dir: &Path, args: &[&str]) {
    let before = planned(env, dir, args);
    ok_in(env, dir, &["build", "--progress", "plain"], args);
    let records = recorded(env);
    for (stage, (digest, _)) in &before {
        if let Some(digest) = digest {
            assert!(
                records.contains(digest),
                "{stage}: {before:#?}\n{records:#?}"
            );
        }
    }
    let after = planned(env, dir, args);
    for (stage, (digest, cached)) in &after {
        if cached == "skipped" {
            continue;
        }
        assert_eq!(cached, "local", "{stage} after the build: {after:#?}");
        let digest = digest.as_ref().expect("a cached stage has a digest");
        assert!(records.contains(digest), "{stage}: {after:#?}");
    }
}

#[test]
fn plan_digests_are_the_ones_the_build_records() {
    let env = Env::new();
    let dir = project(&env);
    let fresh = planned(&env, &dir, &[]);
    // Before anything is built: the stages are known up to the first late input, none cached.
    assert!(
        fresh.values().all(|(_, cached)| cached == "-"),
        "{fresh:#?}"
    );
    assert!(fresh["app/install"].0.is_some(), "{fresh:#?}");
    assert!(fresh["tool/install"].0.is_some(), "{fresh:#?}");
    // Its import checksum needs `tool` built; everything after it waits for that too.
    assert!(
        fresh["app/dependenciesAfterInstall"].0.is_none(),
        "{fresh:#?}"
    );
    assert!(fresh["app/setup"].0.is_none(), "{fresh:#?}");
    assert_plan_matches_build(&env, &dir, &[]);
    // A new commit: the patch stage's late input comes from the recorded parent.
    std::fs::write(dir.join("src/README"), "v2\n").unwrap();
    commit(&dir);
    let next = planned(&env, &dir, &[]);
    assert!(next["app/gitLatestPatch"].0.is_some(), "{next:#?}");
    assert_eq!(next["app/gitLatestPatch"].1, "-", "{next:#?}");
    assert_plan_matches_build(&env, &dir, &[]);

    // A Dockerfile, with a build arg and --network none (both in digests).
    let df = env.work.path().join("df");
    std::fs::create_dir_all(&df).unwrap();
    std::fs::write(df.join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(df.join("a.txt"), "one\n").unwrap();
    let args = ["-t", "df", "--build-arg", "V=3", "--network", "none", "."];
    assert_plan_matches_build(&env, &df, &args);

    // The table.
    let out = ok_in(&env, &dir, &["plan"], &[]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("IMAGE"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("app ") && l.contains("setup") && l.ends_with("local")),
        "{table}"
    );
}

#[test]
fn records_from_before_typed_inputs_are_a_clean_miss() {
    let env = Env::new();
    let yaml = |v: &str| {
        format!(
            "image: old\nfrom: busybox:latest\nshell:\n  install:\n  - echo hi\n  installCacheVersion: \"{v}\"\n"
        )
    };
    let dir = env.project("old", &yaml("1"));
    build_explained(&env, &dir, &[]);
    // What strata wrote before inputs were typed: `{name, value}` pairs.
    for entry in std::fs::read_dir(env.store.path().join("stages")).unwrap() {
        let path = entry.unwrap().path();
        let mut record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        record["inputs"] = serde_json::json!([{"name": "commands", "value": "[\"echo hi\"]"}]);
        std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
    }
    for args in [
        &["inspect", "old"][..],
        &["images", "--stages"],
        &["explain", "old"],
    ] {
        let out = env.strata(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::write(dir.join("strata.yaml"), yaml("2")).unwrap();
    let e = build_explained(&env, &dir, &[]);
    assert_eq!(
        e["old/install"],
        "built: the stage it had before was recorded by an older strata (nothing to compare)",
        "{e:#?}"
    );
}

#[test]
fn plan_and_explain_name_the_stage_repository() {
    let registry = crate::registry::Registry::start();
    let repo = format!("{}/stages", registry.host());
    let yaml = "image: app\nfrom: busybox:latest\nshell:\n  install:\n  - echo one\n  setup:\n  - echo two\n";
    let publisher = Env::new();
    let dir = publisher.project("app", yaml);
    build_explained(&publisher, &dir, &["--repo", &repo]);

    // Another builder, with an empty store of its own: every stage is in the repository.
    let other = Env::new();
    let dir = other.project("app", yaml);
    let plan = planned(&other, &dir, &["--repo", &repo]);
    assert!(
        plan.values().all(|(d, at)| d.is_some() && at == "repo"),
        "{plan:#?}"
    );
    let e = build_explained(&other, &dir, &["--repo", &repo]);
    assert!(e.values().all(|v| v == "reused (--repo)"), "{e:#?}");
    let plan = planned(&other, &dir, &["--repo", &repo]);
    assert!(plan.values().any(|(_, at)| at == "local"), "{plan:#?}");
}

#[test]
fn copy_from_names_the_imported_files() {
    let env = Env::new();
    let dir = env.work.path().join("from");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox:latest AS build\nARG V\nRUN echo $V > /out\nFROM busybox:latest\nCOPY --from=build /out /out\n",
    )
    .unwrap();
    let build = |v: &str| {
        build_explained(
            &env,
            &dir,
            &["-t", "from", "--build-arg", &format!("V={v}"), "."],
        )
    };
    build("1");
    let e = build("2");
    assert_only(&e, "build", "2-run", r#"built: arg.V changed: "1" → "2""#);
    let image = e
        .keys()
        .find_map(|k| k.strip_suffix("/1-copy"))
        .unwrap_or_else(|| panic!("{e:#?}"))
        .to_string();
    assert_only(&e, &image, "1-copy", "built: import[0].files changed: ");
}

#[test]
fn a_dependency_names_the_value_that_changed() {
    let env = Env::new();
    let yaml = |v: &str| {
        format!(
            "image: backend\nfrom: busybox:latest\nshell:\n  install:\n  - echo {v} > /v\n---\nimage: frontend\nfrom: busybox:latest\ndependencies:\n- image: backend\n  before: setup\n  imports:\n  - type: ImageDigest\n    targetEnv: BACKEND_DIGEST\nshell:\n  setup:\n  - echo \"$BACKEND_DIGEST\" > /deps\n"
        )
    };
    let dir = env.project("deps", &yaml("1"));
    build_explained(&env, &dir, &[]);
    std::fs::write(dir.join("strata.yaml"), yaml("2")).unwrap();
    let e = build_explained(&env, &dir, &[]);
    assert_only(&e, "backend", "install", "built: instructions changed:");
    assert_only(
        &e,
        "frontend",
        "dependenciesBeforeSetup",
        "built: dependency.BACKEND_DIGEST changed: \"sha256:",
    );
}
