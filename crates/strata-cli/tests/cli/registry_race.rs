//! Eight builders with their own stores racing on one stage repository (`--repo`, a real
//! `docker-registry` on 127.0.0.1): every build succeeds, every stage is stored there once, and
//! every builder's image is right.

use std::collections::BTreeMap;
use std::process::Stdio;

use crate::registry::Registry;
use crate::support::Env;

const APP: &str = "image: app\nfrom: busybox:latest\nshell:\n  beforeInstall:\n  - echo zero > /zero\n  install:\n  - head -c 200000 /dev/zero > /one\n  setup:\n  - echo two > /two\ndocker:\n  CMD: [\"cat\", \"/two\"]\n";

#[test]
fn eight_builders_racing_on_one_registry_all_succeed_and_store_each_stage_once() {
    let registry = Registry::start();
    let repo = format!("{}/stages", registry.host());
    let builders: Vec<Env> = (0..8).map(|_| Env::new()).collect();
    let children: Vec<_> = builders
        .iter()
        .map(|env| {
            env.cmd()
                .args(["build", "--progress", "plain", "--repo", &repo])
                .current_dir(env.project("app", APP))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "builder {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut per_stage: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for tag in registry.tags("stages") {
        let digest = tag.split('-').next().unwrap().to_string();
        per_stage.entry(digest).or_default().push(tag);
    }
    // from, beforeInstall, install, setup, dockerInstructions.
    assert_eq!(per_stage.len(), 5, "{per_stage:?}");
    assert!(
        per_stage.values().all(|tags| tags.len() == 1),
        "a stage stored more than once: {per_stage:?}"
    );
    for env in &builders {
        assert_eq!(
            env.run_sh("app", "cat /zero /two; wc -c < /one"),
            "zero\ntwo\n200000\n"
        );
    }
    // A ninth builder reuses everything.
    let late = Env::new();
    let out = late
        .cmd()
        .args(["build", "--progress", "plain", "--repo", &repo])
        .current_dir(late.project("app", APP))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(crate::support::built_stages(&stderr).is_empty(), "{stderr}");
}
