//! Git mappings end to end, on real repositories made in the tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::Env;

/// A git work tree holding the config, with helpers to commit.
struct Repo {
    dir: PathBuf,
}

impl Repo {
    fn new(env: &Env, yaml: &str) -> Repo {
        let dir = env.project("repo", yaml);
        let repo = Repo { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.email", "test@example.com"]);
        repo.git(&["config", "user.name", "test"]);
        repo
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
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

    fn write(&self, path: &str, content: &[u8]) {
        let p = self.dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    fn path(&self) -> &Path {
        &self.dir
    }
}

const SEED: &str = r#"image: app
from: busybox:latest
git:
- add: /src
  to: /app
  stageDependencies:
    beforeSetup:
    - "*.c"
shell:
  install:
  - echo "install stage"
  beforeSetup:
  - echo "beforeSetup stage"; cat /app/main.c > /built.txt
  setup:
  - echo "setup stage"
"#;

#[test]
fn commits_rebuild_only_what_their_masks_say() {
    let env = Env::new();
    let repo = Repo::new(&env, SEED);
    repo.write("src/main.c", b"int main;\n");
    repo.write("src/README", b"v1\n");
    repo.commit("one");
    assert_eq!(
        env.build_ok(repo.path()),
        [
            "app/from",
            "app/gitArchive",
            "app/install",
            "app/beforeSetup",
            "app/setup"
        ]
    );
    assert_eq!(
        env.run_sh("app", "cat /app/main.c /app/README /built.txt"),
        "int main;\nv1\nint main;\n"
    );

    // A commit outside the masks: no user stage runs; gitLatestPatch brings the change.
    repo.write("src/README", b"v2\n");
    repo.commit("readme");
    assert_eq!(env.build_ok(repo.path()), ["app/gitLatestPatch"]);
    assert_eq!(env.run_sh("app", "cat /app/README"), "v2\n");
    assert!(env.build_ok(repo.path()).is_empty());

    // A commit matching beforeSetup's mask: beforeSetup and setup rebuild, and beforeSetup
    // already sees the new file (the patch is applied at its start, once).
    repo.write("src/main.c", b"int main(void);\n");
    repo.commit("main");
    let out = env.build(repo.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        crate::support::built_stages(&stderr),
        ["app/beforeSetup", "app/setup"]
    );
    assert_eq!(
        env.run_sh("app", "cat /app/main.c /built.txt /app/README"),
        "int main(void);\nint main(void);\nv2\n"
    );
}

#[test]
fn every_kind_of_change_arrives() {
    let env = Env::new();
    let repo = Repo::new(
        &env,
        "image: app\nfrom: busybox:latest\ngit:\n- add: /\n  to: /app\n  excludePaths: [strata.yaml]\n",
    );
    repo.write("keep.txt", b"keep\n");
    repo.write("old name.txt", b"spaces\n");
    repo.write("gone.txt", b"gone\n");
    repo.write("script.sh", b"#!/bin/sh\necho hi\n");
    repo.write("bin.dat", &[0u8, 159, 146, 150, 0, 255]);
    repo.write("docs/index.md", b"index\n");
    repo.commit("one");
    env.build_ok(repo.path());
    assert_eq!(
        env.run_sh("app", "cd /app && ls | sort | tr '\\n' ,"),
        "bin.dat,docs,gone.txt,keep.txt,old name.txt,script.sh,"
    );

    repo.git(&["mv", "old name.txt", "new name.txt"]);
    std::fs::remove_file(repo.path().join("gone.txt")).unwrap();
    std::fs::set_permissions(
        repo.path().join("script.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::symlink("keep.txt", repo.path().join("link")).unwrap();
    repo.write("bin.dat", &[1u8, 2, 0, 255, 254]);
    repo.write("dir with space/file.txt", b"nested\n");
    // A directory that becomes a file.
    std::fs::remove_dir_all(repo.path().join("docs")).unwrap();
    repo.write("docs", b"now a file\n");
    repo.commit("two");
    assert_eq!(env.build_ok(repo.path()), ["app/gitLatestPatch"]);
    let out = env.run_sh(
        "app",
        "cd /app && ls | sort | tr '\\n' ,; echo; stat -c %a script.sh; readlink link; cat link 'new name.txt' 'dir with space/file.txt' docs; od -An -tu1 bin.dat | tr -s ' '",
    );
    assert_eq!(
        out,
        "bin.dat,dir with space,docs,keep.txt,link,new name.txt,script.sh,\n755\nkeep.txt\nkeep\nspaces\nnested\nnow a file\n 1 2 0 255 254\n"
    );
}

#[test]
fn a_large_change_lands_in_git_cache() {
    let env = Env::new();
    let repo = Repo::new(
        &env,
        "image: app\nfrom: busybox:latest\ngit:\n- add: /data\n  to: /data\n",
    );
    repo.write("data/small", b"s\n");
    repo.commit("one");
    env.build_ok(repo.path());
    // Bytes that do not compress: werf measures the patch, whose binary delta is deflated.
    let mut x = 2_463_534_242u32;
    let big: Vec<u8> = (0..(1u32 << 20) + 4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    repo.write("data/big.bin", &big);
    repo.commit("big");
    assert_eq!(env.build_ok(repo.path()), ["app/gitCache"]);
    assert_eq!(
        env.run_sh("app", "wc -c < /data/big.bin").trim(),
        ((1u32 << 20) + 4096).to_string()
    );
    // A small change afterwards goes to gitLatestPatch on top of gitCache.
    repo.write("data/small", b"s2\n");
    repo.commit("small");
    assert_eq!(env.build_ok(repo.path()), ["app/gitLatestPatch"]);
}

#[test]
fn a_user_command_that_changed_a_patched_file_is_an_error() {
    let env = Env::new();
    let yaml = "image: app\nfrom: busybox:latest\ngit:\n- add: /src\n  to: /app\n  stageDependencies:\n    setup: [\"conf\"]\nshell:\n  install:\n  - echo local >> /app/shared.txt\n  setup:\n  - cat /app/conf\n";
    let repo = Repo::new(&env, yaml);
    repo.write("src/shared.txt", b"from git\n");
    repo.write("src/conf", b"1\n");
    repo.commit("one");
    env.build_ok(repo.path());
    repo.write("src/shared.txt", b"from git, changed\n");
    repo.write("src/conf", b"2\n");
    repo.commit("two");
    let out = env.build(repo.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("`/app/shared.txt` was modified by a user stage"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--> strata.yaml:4:3"),
        "points at the mapping:\n{stderr}"
    );
}

#[test]
fn service_variables_are_set_and_in_no_digest() {
    let env = Env::new();
    let yaml = "image: app\nfrom: busybox:latest\nshell:\n  install:\n  - echo \"$WERF_COMMIT_HASH $STRATA_COMMIT_HASH\" > /commit; test -n \"$WERF_COMMIT_TIME_UNIX$WERF_COMMIT_TIME_HUMAN\"\n";
    let repo = Repo::new(&env, yaml);
    let first = repo.commit("one");
    env.build_ok(repo.path());
    assert_eq!(
        env.run_sh("app", "cat /commit"),
        format!("{first} {first}\n")
    );
    repo.write("unrelated.txt", b"x\n");
    repo.commit("two");
    assert!(
        env.build_ok(repo.path()).is_empty(),
        "a new commit that changes nothing else reuses every stage"
    );
}

#[test]
fn dirty_files_are_named_and_dev_builds_them() {
    let env = Env::new();
    let repo = Repo::new(
        &env,
        "image: app\nfrom: busybox:latest\ngit:\n- add: /src\n  to: /app\n",
    );
    repo.write("src/a.txt", b"committed\n");
    repo.commit("one");
    repo.write("src/a.txt", b"edited\n");
    repo.write("src/new.txt", b"untracked\n");
    repo.write(".gitignore", b"src/ignored.txt\n");
    repo.write("src/ignored.txt", b"ignored\n");
    let out = env.build(repo.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("uncommitted changes ignored in: src/a.txt, src/new.txt"),
        "{stderr}"
    );
    assert_eq!(
        env.run_sh("app", "cat /app/a.txt; ls /app"),
        "committed\na.txt\n"
    );

    let out = env
        .cmd()
        .args(["build", "--progress", "plain", "--dev"])
        .current_dir(repo.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        env.run_sh("app", "cat /app/a.txt; ls /app"),
        "edited\na.txt\nnew.txt\n"
    );
    // The user's index and HEAD are untouched.
    assert_eq!(
        repo.git(&["status", "--porcelain"]),
        "M src/a.txt\n?? .gitignore\n?? src/new.txt".trim_start()
    );
}

#[test]
fn owner_group_and_remote_repositories() {
    let env = Env::new();
    // A bare remote with a branch and a tag, reached through file://.
    let remote = Repo::new(&env, "unused: true\n");
    remote.write("lib/x.txt", b"on main\n");
    remote.commit("main");
    remote.git(&["tag", "v1"]);
    remote.git(&["checkout", "-q", "-b", "feature"]);
    remote.write("lib/x.txt", b"on feature\n");
    remote.commit("feature");
    let url = format!("file://{}", remote.path().display());
    let dir = env.project(
        "consumer",
        &format!(
            "image: app\nfrom: busybox:latest\ngit:\n- url: {url}\n  branch: feature\n  add: /lib\n  to: /feature\n  owner: app\n  group: 65534\n- url: {url}\n  tag: v1\n  add: /lib\n  to: /tagged\n"
        ),
    );
    env.build_ok(&dir);
    assert_eq!(
        env.run_sh(
            "app",
            "cat /feature/x.txt /tagged/x.txt; stat -c '%u:%g' /feature/x.txt /tagged/x.txt"
        ),
        "on feature\non main\n1000:65534\n0:0\n"
    );
}

#[test]
fn bad_masks_and_overlapping_mappings_point_at_the_config() {
    let env = Env::new();
    let repo = Repo::new(
        &env,
        "image: a\nfrom: busybox:latest\ngit:\n- add: /\n  to: /app\n  includePaths: [\"src/[a-\"]\n",
    );
    repo.commit("one");
    let out = env.build(repo.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("invalid mask `src/[a-`"), "{stderr}");
    assert!(stderr.contains("--> strata.yaml:6:"), "{stderr}");

    std::fs::write(
        repo.path().join("strata.yaml"),
        "image: a\nfrom: busybox:latest\ngit:\n- add: /a\n  to: /app\n- add: /b\n  to: /app/sub\n",
    )
    .unwrap();
    repo.commit("two");
    let out = env.build(repo.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("git mappings overlap: `to: /app` and `to: /app/sub`"),
        "{stderr}"
    );
    assert!(stderr.contains("--> strata.yaml:7:7"), "{stderr}");
    assert!(
        stderr.contains("--> strata.yaml:5:7"),
        "the other mapping is shown too:\n{stderr}"
    );
}
