//! werf projects as they are written: configs in the shapes of werf's own e2e fixtures, of
//! werf 1.2's integration suites and of public werf projects (`tests/fixtures/werf/<case>/`),
//! rewritten on busybox (no network, no packages), each built from a git repository made
//! here, through the history their own tests walk:
//!
//! - `state0/`: the first commit, built cold and checked against `checks0`;
//! - built again: nothing runs;
//! - `state1/`, `state2/`, ... (files written over the work tree, links as links;
//!   `stateN/DELETE` lists files removed, `stateN/GENERATE` files to write as `SIZE PATH`
//!   lines, see [`generated`]): one commit each, built and checked against
//!   `checksN`, then cached again;
//! - a fresh clone of the last commit elsewhere: nothing runs, the image is the same.
//!
//! The builds run with the variables of the case's `env` file and `HOME` at a copy of its
//! `home/` ([`Builds`]). A state's build is every image at once, after the builds the case's `builds` file lists
//! (one `strata build IMAGE...` a line, in order: werf's tests that build images one by one).
//! `ranN` says which stages the builds of state N ran ([`check_ran`]); `failsN` that they
//! fail, and with what ([`check_failure`]). Checks use the corpus
//! format ([`run_checks`]); what they expect is what werf's own tests assert.
//!
//! | case | shape of | what it proves |
//! |---|---|---|
//! | `e2e-complex` | e2e `build/complex` | every meta key, cache versions, mounts, git filters and owners, imports, docker directives (werf's inspect checks); a mapping change rebuilds from gitArchive in one tmp_dir, a dropped VOLUME goes |
//! | `import-system-dirs` | e2e `import/no_system_dirs` | `import: from:` of `/` leaves out `/proc`, `/sys`, `/dev`, `/run`, `/.werf`; a file imported onto a directory lands inside it |
//! | `git-ownership` | e2e `git_ownership` | a mapping's files and links take its owner (root without one) in either build order, files of the base keep theirs; state1's patch too, running gitLatestPatch and not install |
//! | `import-stale-dest` | e2e `import/stale_dest` | an import replaces a file of the same size and mtime |
//! | `import-symlink-dest` | e2e `import/symlink_dest` | an import onto `/bin -> usr/bin` lands in the real directory |
//! | `legacy-stage-script` | e2e `legacy-stage-script` | 256 imports in one stage; a command reading stdin gets nothing and eats no later command |
//! | `scratch` | e2e `scratch` | a stapel image `from: scratch` of one import, with werf's label |
//! | `network` | e2e `network/stapel*` | the default network and `network: host` reach out, `network: none` has only `lo` |
//! | `images-dependencies` | e2e `images_dependencies` | dependency name, id, repo and tag as `targetEnv` from the `after:` stage on, and as `targetBuildArg` (also `FROM ${ARG}`) |
//! | `git-add-renames` | integration `git/git_add_renames` | four commits: files, dirs and links mapped under other names (modes 644/755/777, links kept), removed, changed, renamed again |
//! | `git-patch-empty-dirs` | integration `git/cleanup_empty_directories_with_git_patch_apply` | a patch removing a directory's last file removes the directories it empties (odd names too), not those holding a user stage's files |
//! | `git-file-lifecycle` | integration `git/file_lifecycle` | files added with mode 0755/0644, modified, chmodded, deleted by patches; links added, retargeted, deleted; odd names |
//! | `git-stages` | integration `git/stages_test.go` (`git_stages`, `user_stages`) | a patch of 1 MiB goes into gitCache, less into gitLatestPatch, gitCache again after 1 MiB more; an artifact's gitArchive does not follow commits; a stageDependencies change rebuilds its stage and those after it |
//! | `imports-app` | legacy `imports/imports_app_1` | imports renamed, into existing directories (a file lands inside, directories merge); missing sources fail the build, named |
//! | `imports-include-exclude` | legacy `imports/imports_app_2` | includePaths, excludePaths and both at three points; a changed source is reimported everywhere |
//! | `import-metadata` | legacy `imports/import_metadata` | an artifact rebuilt with the same files leaves the importing image alone; changed files rebuild it from the import |
//! | `import-links-modes` | legacy `imports/imports_app_4`, `imports_app_5`, `import_app_symlinks` | links imported as links, modes kept, `stage:` of the source; a mode or link target change rebuilds the importer |
//! | `import-external` | legacy `imports/import_from_external`, `import_app_owner_group` | `from:` an image outside the config, `image:`/`from:` a config image, owner and group |
//! | `base-images` | legacy `base_image/from_anywhere`, `from_cache_version`, `from_image`, `from_artifact` | `from:` a config image, `fromImage:`, `fromArtifact:` chained, each building its from stage; a new `fromCacheVersion` rebuilds the from stages on it |
//! | `mounts` | legacy `mount/tmp_dir`, `build_dir`, `from_path` | a fresh tmp_dir each build, the build_dir the last build left, `fromPath: ./` the project directory; mount points empty in the image |
//! | `docker-instructions` | legacy `docker_instructions/base` | each docker directive alone, CMD/ENTRYPOINT as a string holding a JSON array (exec form), HEALTHCHECK `CMD true` as CMD-SHELL |
//! | `secrets` | legacy `secrets/build_with_secrets` | a variable, a project file, a value and a `~/` file as secrets of a Dockerfile and a stapel image, allowed by giterminism, in no layer |
//! | `go-service` | public Go services | stageDependencies on module files, `from:` a config image, `network: none`, `disableGitAfterPatch`, `fromPath`, `imageSpec`; a deleted package's directory goes |
//! | `node-frontend` | public Node frontends | install keyed on the lock file, setup on the sources, a `build_dir` mount, `dist/` imported with an owner; a source change reruns setup only |
//! | `django-app` | public Django apps | an `artifact:` building wheels keyed on requirements.txt, `excludePaths`, static files in setup; new requirements rerun the artifact and the app from install |
//! | `monorepo` | public monorepos | a base image, services from a `range`, an import and a dependency between images; a change to one service rebuilds that service only |

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Env, built_stages, git, run_checks};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/werf")
}

/// Copies `from` over `to` (links as links), except the `DELETE` list, whose files it removes
/// from `to`, and the `GENERATE` list, whose files it writes there ([`generated`]).
fn apply_state(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            // A link of the project is committed as a link (its target may not exist here).
            let _ = std::fs::remove_file(&target);
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else if kind.is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            apply_state(&entry.path(), &target);
        } else if entry.file_name() == "GENERATE" {
            for line in std::fs::read_to_string(entry.path()).unwrap().lines() {
                let (size, path) = line.split_once(' ').unwrap();
                std::fs::write(to.join(path), generated(path, size.parse().unwrap())).unwrap();
            }
        } else if entry.file_name() == "DELETE" && from.file_name() != Some("app-src".as_ref()) {
            for line in std::fs::read_to_string(entry.path()).unwrap().lines() {
                std::fs::remove_file(to.join(line)).unwrap();
            }
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The content `GENERATE` gives a file of `size` bytes at `path`: one line of letters and
/// digits (as werf's tests write random strings), byte `i` being `ALNUM[(7 i + path length) % 36]`.
fn generated(path: &str, size: usize) -> Vec<u8> {
    const ALNUM: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..size)
        .map(|i| ALNUM[(7 * i + path.len()) % 36])
        .collect()
}

/// How a case's builds run: on `env`'s store, with the variables of the case's `env` file
/// (`NAME=VALUE` lines) and, when the case has a `home/` directory, `HOME` at a copy of it.
struct Builds<'a> {
    env: &'a Env,
    vars: Vec<(String, String)>,
}

impl<'a> Builds<'a> {
    fn of_case(env: &'a Env, case: &Path) -> Builds<'a> {
        let text = std::fs::read_to_string(case.join("env")).unwrap_or_default();
        let mut vars: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if case.join("home").is_dir() {
            let name = case.file_name().unwrap().to_string_lossy();
            let home = env.work.path().join(format!("{name}-home"));
            std::fs::create_dir_all(&home).unwrap();
            apply_state(&case.join("home"), &home);
            vars.push(("HOME".into(), home.display().to_string()));
        }
        Builds { env, vars }
    }
}

/// A build of `images` (all when empty) in `dir`: the stages that ran, or the failure.
fn build_images(b: &Builds, dir: &Path, images: &[&str]) -> Result<Vec<String>, String> {
    // The build cache directories CI restores before a build (a `fromPath` mount's source).
    std::fs::create_dir_all(dir.join(".cache/build")).unwrap();
    let out = b
        .env
        .cmd()
        .envs(b.vars.iter().map(|(k, v)| (k, v)))
        .args(["build", "--progress", "plain"])
        .args(images)
        .current_dir(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if out.status.success() {
        Ok(built_stages(&stderr))
    } else {
        Err(stderr)
    }
}

/// A build of every image in `dir`.
fn build(b: &Builds, dir: &Path) -> Result<Vec<String>, String> {
    build_images(b, dir, &[])
}

/// Builds one state of a case: first the builds `builds` lists (one line, one `strata build`
/// of the images it names, in order), then every image. Returns the stages all of them ran.
fn build_state(b: &Builds, order: &str, dir: &Path) -> Result<Vec<String>, String> {
    let mut ran = Vec::new();
    for line in order.lines().filter(|l| !l.trim().is_empty()) {
        let images: Vec<&str> = line.split_whitespace().collect();
        ran.extend(build_images(b, dir, &images)?);
    }
    ran.extend(build(b, dir)?);
    Ok(ran)
}

/// Compares the stages a state's builds ran with its `ranN` file: `IMAGE/STAGE` must have
/// run, `!IMAGE/STAGE` must not have, and `!*` says nothing else ran (`#` starts a comment).
fn check_ran(case: &str, ran: &[String], expected: &str) -> Vec<String> {
    let words = expected
        .lines()
        .map(|l| l.split('#').next().unwrap())
        .flat_map(str::split_whitespace);
    let (mut wanted, mut only) = (Vec::new(), false);
    let mut failures = Vec::new();
    for word in words {
        match word.strip_prefix('!') {
            Some("*") => only = true,
            Some(stage) if ran.iter().any(|r| r == stage) => failures.push(format!(
                "{case}: {stage} ran (it must not); the builds ran {ran:?}"
            )),
            Some(_) => {}
            None => wanted.push(word),
        }
    }
    for stage in &wanted {
        if !ran.iter().any(|r| r == stage) {
            failures.push(format!(
                "{case}: {stage} did not run; the builds ran {ran:?}"
            ));
        }
    }
    if only {
        let extra: Vec<&String> = ran
            .iter()
            .filter(|r| !wanted.contains(&r.as_str()))
            .collect();
        if !extra.is_empty() {
            failures.push(format!("{case}: the builds also ran {extra:?}"));
        }
    }
    failures
}

/// Checks that the build of a state fails, its errors saying each line of its `failsN` file
/// (`#` lines aside), and that the store keeps nothing of it: a second build fails the same.
fn check_failure(case: &str, b: &Builds, dir: &Path, expected: &str) -> Vec<String> {
    let mut failures = Vec::new();
    for attempt in ["build", "second build"] {
        match build(b, dir) {
            Ok(ran) => failures.push(format!("{case}: the {attempt} succeeded, ran {ran:?}")),
            Err(stderr) => {
                for line in expected.lines().filter(|l| !l.starts_with('#')) {
                    if !stderr.contains(line) {
                        failures.push(format!(
                            "{case}: the {attempt} failed without `{line}`:\n{stderr}"
                        ));
                    }
                }
            }
        }
    }
    failures
}

/// Walks one case through its history, with the builds `order` lists before each full build
/// (see [`build_state`]), and returns what went wrong.
fn walk_case(env: &Env, case: &Path, order: &str) -> Vec<String> {
    let name = case.file_name().unwrap().to_string_lossy().to_string();
    let dir = env.work.path().join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    git(&dir, &["init", "-q", "-b", "main"]);
    let b = Builds::of_case(env, case);
    let mut failures = Vec::new();
    let states = (0..).take_while(|n| case.join(format!("state{n}")).is_dir());
    for n in states {
        let (state, checks, expected_ran) =
            (format!("state{n}"), format!("checks{n}"), format!("ran{n}"));
        apply_state(&case.join(&state), &dir);
        git(&dir, &["add", "-A"]);
        git(&dir, &["commit", "-q", "-m", &state]);
        if let Ok(expected) = std::fs::read_to_string(case.join(format!("fails{n}"))) {
            failures.extend(check_failure(
                &format!("{name} {state}"),
                &b,
                &dir,
                &expected,
            ));
            continue;
        }
        match build_state(&b, order, &dir) {
            Ok(ran) => {
                if let Ok(expected) = std::fs::read_to_string(case.join(&expected_ran)) {
                    failures.extend(check_ran(&format!("{name} {state}"), &ran, &expected));
                }
            }
            Err(e) => {
                failures.push(format!("{name} {state}: build failed:\n{e}"));
                return failures;
            }
        }
        let text = std::fs::read_to_string(case.join(&checks)).unwrap_or_default();
        failures.extend(run_checks(env, &format!("{name} {state}"), &text));
        match build(&b, &dir) {
            Ok(ran) if ran.is_empty() => {}
            Ok(ran) => failures.push(format!("{name} {state}: the cached build ran {ran:?}")),
            Err(e) => failures.push(format!("{name} {state}: the cached build failed:\n{e}")),
        }
    }
    // CI: a fresh clone of the same commit in another directory reuses every stage.
    let clone = env.work.path().join(format!("{name}-clone"));
    let out = Command::new("git")
        .arg("clone")
        .arg("-q")
        .arg(&dir)
        .arg(&clone)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    match build(&b, &clone) {
        Ok(ran) if ran.is_empty() => {}
        Ok(ran) => failures.push(format!("{name}: the fresh clone ran {ran:?}")),
        Err(e) => failures.push(format!("{name}: the fresh clone failed:\n{e}")),
    }
    failures
}

fn case(name: &str) {
    let order = std::fs::read_to_string(fixtures().join(name).join("builds")).unwrap_or_default();
    case_in_order(name, &order);
}

/// A case with its builds in `order` instead of its `builds` file.
fn case_in_order(name: &str, order: &str) {
    let env = Env::new();
    let failures = walk_case(&env, &fixtures().join(name), order);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// werf's e2e `build/complex` (stapel images): every key of the meta document (build,
/// deploy, cleanup, gitWorktree), every shell cache version, mounts, git filters and owners,
/// imports, all docker directives; its state1 changes the mapping and a file.
#[test]
fn werf_e2e_complex() {
    case("e2e-complex");
}

/// werf's e2e `import/no_system_dirs` with v2's `import: from:`, and a file imported onto a
/// directory.
#[test]
fn werf_e2e_import_system_dirs() {
    case("import-system-dirs");
}

/// A Go service as public werf projects write it: stageDependencies on the module files,
/// `from:` naming a config image, `network: none`, `disableGitAfterPatch`, a relative
/// `fromPath` allowed by giterminism, templates; its second commit deletes a package.
#[test]
fn go_service_project() {
    case("go-service");
}

/// werf's e2e `git_ownership`: two images with the same mapping, one with owner/group, built
/// one by one (the first writes the git archive both could share), then together; state1's
/// patch keeps the owners, and only gitLatestPatch runs.
#[test]
fn werf_e2e_git_ownership() {
    case("git-ownership");
}

/// werf's e2e `git_ownership` with the owned image built first.
#[test]
fn werf_e2e_git_ownership_owner_first() {
    case_in_order("git-ownership", "img-owned\nimg-default\n");
}

/// werf's e2e `import/stale_dest`: an import replaces a file of the same size and mtime.
#[test]
fn werf_e2e_import_stale_dest() {
    case("import-stale-dest");
}

/// werf's e2e `import/symlink_dest`: an import onto a relative link to a directory.
#[test]
fn werf_e2e_import_symlink_dest() {
    case("import-symlink-dest");
}

/// werf's e2e `legacy-stage-script`: 256 imports in one stage, and a command reading stdin.
#[test]
fn werf_e2e_legacy_stage_script() {
    case("legacy-stage-script");
}

/// werf's e2e `scratch`: a stapel image from scratch made of an import.
#[test]
fn werf_e2e_scratch() {
    case("scratch");
}

/// werf's e2e `network/stapel*`: the default network, `network: none` and `network: host`.
#[test]
fn werf_e2e_network() {
    case("network");
}

/// werf's e2e `images_dependencies` (state0): stapel and Dockerfile images as dependencies
/// of stapel (`targetEnv`) and Dockerfile (`targetBuildArg`) images.
#[test]
fn werf_e2e_images_dependencies() {
    case("images-dependencies");
}

/// werf 1.2's integration `git_add_renames`: four commits of mappings renamed, removed,
/// changed and renamed again.
#[test]
fn werf_integration_git_add_renames() {
    case("git-add-renames");
}

/// werf 1.2's integration `cleanup_empty_directories_with_git_patch_apply`: a patch removing a
/// directory's last file removes the directories it empties, not those a user stage filled.
#[test]
fn werf_integration_git_patch_empty_dirs() {
    case("git-patch-empty-dirs");
}

/// werf 1.2's integration `file_lifecycle`: files (odd names too) and links added, modified,
/// chmodded and deleted by patches over gitArchive.
#[test]
fn werf_integration_git_file_lifecycle() {
    case("git-file-lifecycle");
}

/// werf 1.2's integration `git/stages_test.go` (git_stages, user_stages): gitCache for a patch
/// of 1 MiB or more, gitLatestPatch below, an artifact that does not follow commits, and
/// stageDependencies rebuilding their stage.
#[test]
fn werf_integration_git_stages() {
    case("git-stages");
}

/// werf's legacy `imports_app_1`: renames, imports into and onto existing directories; the
/// first two commits import missing paths and fail naming them.
#[test]
fn werf_legacy_imports_app() {
    case("imports-app");
}

/// werf's legacy `imports_app_2`: includePaths, excludePaths and both, reimported after the
/// source changes.
#[test]
fn werf_legacy_imports_include_exclude() {
    case("imports-include-exclude");
}

/// werf's legacy `import_metadata`: imports cached by the source's checksum.
#[test]
fn werf_legacy_import_metadata() {
    case("import-metadata");
}

/// werf's legacy `imports_app_4`, `imports_app_5`, `import_app_symlinks`: links and modes of
/// imported files, `stage:` of the source, in the checksum.
#[test]
fn werf_legacy_import_links_modes() {
    case("import-links-modes");
}

/// werf's legacy `import_from_external`, `import_app_owner_group`: imports from an image
/// outside the config and from config images, with owner and group.
#[test]
fn werf_legacy_import_external() {
    case("import-external");
}

/// werf's legacy `base_image` fixtures: `from:` a config image, `fromImage:`, `fromArtifact:`
/// chained; `fromCacheVersion` rebuilding the from stages on it.
#[test]
fn werf_legacy_base_images() {
    case("base-images");
}

/// werf's legacy `mount` fixtures: tmp_dir per build, build_dir kept between builds,
/// `fromPath: ./` the project directory.
#[test]
fn werf_legacy_mounts() {
    case("mounts");
}

/// werf's legacy `docker_instructions`: each docker directive as werf writes it.
#[test]
fn werf_legacy_docker_instructions() {
    case("docker-instructions");
}

/// werf's legacy `build_with_secrets`: env, file, value and home-file secrets on a Dockerfile
/// and a stapel image.
#[test]
fn werf_legacy_secrets() {
    case("secrets");
}

/// A Node frontend as public werf projects write it.
#[test]
fn node_frontend_project() {
    case("node-frontend");
}

/// A Django app with an artifact building its wheels.
#[test]
fn django_app_project() {
    case("django-app");
}

/// A monorepo of several services sharing a base, with imports and dependencies.
#[test]
fn monorepo_project() {
    case("monorepo");
}

/// `strata build IMAGE` resolves the git mappings of that image and what it needs only: a
/// remote another image maps (unreachable here) is never cloned; building everything does
/// reach the remote and names it.
#[test]
fn building_one_image_leaves_other_images_remotes_alone() {
    let env = Env::new();
    let yaml = "project: partial\nconfigVersion: 1\n---\nimage: base\nfrom: busybox:latest\n\
                git:\n- add: /src\n  to: /src\n---\nimage: app\nfrom: base\nshell:\n  setup:\n  \
                - cat /src/a > /a\n---\nimage: docs\nfrom: busybox:latest\ngit:\n\
                - url: file:///nonexistent/strata-corpus/docs.git\n  add: /\n  to: /docs\n";
    let dir = env.project("partial", yaml);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/a"), "a\n").unwrap();
    git(&dir, &["init", "-q", "-b", "main"]);
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "one"]);
    let out = env
        .cmd()
        .args(["build", "--progress", "plain", "app"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(env.run_sh("app", "cat /a"), "a\n");
    let out = env.build(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("nonexistent/strata-corpus/docs.git"),
        "{stderr}"
    );
}

/// A key strata rejects stops only the builds that need its image: the others of the file
/// build (with a note), and a build that needs it fails at the key's line.
#[test]
fn a_rejected_key_stops_only_its_image() {
    let env = Env::new();
    let yaml = "project: partial\nconfigVersion: 1\n---\nimage: app\nfrom: busybox:latest\n\
                shell:\n  install:\n  - echo app > /app.txt\n---\nimage: provisioned\n\
                from: busybox:latest\nansible:\n  install:\n  - name: a task\n    template: {src: a, dest: b}\n\
                ---\nimage: on-top\nfromImage: provisioned\n";
    let dir = env.project("partial", yaml);
    let out = env
        .cmd()
        .args(["build", "--progress", "plain", "app"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("image `provisioned` is left out"),
        "{stderr}"
    );
    assert_eq!(env.run_sh("app", "cat /app.txt"), "app\n");
    for wanted in [&[][..], &["on-top"][..]] {
        let out = env
            .cmd()
            .args(["build", "--progress", "plain"])
            .args(wanted)
            .current_dir(&dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains("ansible module `template` is not supported"),
            "{stderr}"
        );
        assert!(stderr.contains("strata.yaml:15:5"), "{stderr}");
    }
}
