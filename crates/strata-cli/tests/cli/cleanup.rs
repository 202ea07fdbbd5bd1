//! `strata cleanup --repo`: werf's keep policies applied to a stage repository, against a real
//! `docker-registry` on 127.0.0.1 and a real git history.

use crate::registry::Registry;
use crate::support::{Env, built_stages, git};

const APP: &str = "project: p\nconfigVersion: 1\ncleanup:\n  keepPolicies:\n  - references: {branch: main}\n    imagesPerReference: {last: 1}\n  disableBuiltWithinLastNHoursPolicy: true\n---\nimage: app\nfrom: busybox:latest\ngit:\n- add: /src\n  to: /app\n  stageDependencies:\n    install: ['*']\nshell:\n  install:\n  - cat /app/a > /copy\n";

#[test]
fn cleanup_keeps_the_last_version_of_a_branch_and_a_dry_run_deletes_nothing() {
    let registry = Registry::start();
    let repo = format!("{}/p/stages", registry.host());
    let env = Env::new();
    let dir = env.project("app", APP);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    git(&dir, &["init", "-q", "-b", "main"]);
    let build = |what: &str| {
        std::fs::write(dir.join("src/a"), what).unwrap();
        git(&dir, &["add", "-A"]);
        git(&dir, &["commit", "-q", "-m", what]);
        let out = env
            .cmd()
            .args(["build", "--progress", "plain", "--repo", &repo])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    build("one");
    let first = registry.tags("p/stages");
    build("two");
    let all = registry.tags("p/stages");
    assert!(
        all.len() > first.len(),
        "the second commit added stages: {all:?}"
    );

    let dry = env.strata(&[
        "cleanup",
        "--repo",
        &repo,
        "--dir",
        dir.to_str().unwrap(),
        "--dry-run",
    ]);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let listed: Vec<String> = String::from_utf8_lossy(&dry.stdout)
        .lines()
        .filter_map(|l| {
            l.strip_prefix("would remove ")?
                .split_whitespace()
                .next()
                .map(str::to_string)
        })
        .collect();
    assert!(
        !listed.is_empty(),
        "the first commit's version goes: {}",
        String::from_utf8_lossy(&dry.stdout)
    );
    for tag in &listed {
        assert!(
            first.contains(tag),
            "only stages of the first build go, not {tag}"
        );
    }
    assert_eq!(
        registry.tags("p/stages").len(),
        all.len(),
        "a dry run deletes nothing"
    );

    let out = env.strata(&["cleanup", "--repo", &repo, "--dir", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = registry.tags("p/stages");
    assert_eq!(
        left.len(),
        all.len() - listed.len(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(listed.iter().all(|t| !left.contains(t)));

    // What is left is the whole of the kept version: a fresh builder reuses every stage.
    let fresh = Env::new();
    let out = fresh
        .cmd()
        .args(["build", "--progress", "plain", "--repo", &repo])
        .current_dir(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(built_stages(&stderr), Vec::<String>::new(), "{stderr}");

    // A second cleanup has nothing left to remove.
    let again = env.strata(&[
        "cleanup",
        "--repo",
        &repo,
        "--dir",
        dir.to_str().unwrap(),
        "--dry-run",
    ]);
    assert!(again.status.success());
    assert_eq!(String::from_utf8_lossy(&again.stdout), "");
}
