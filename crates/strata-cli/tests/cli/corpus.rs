//! The corpus: werf.yaml files in the style of real projects (`tests/corpus/`), each built from
//! a fresh git repository and its `checks` verified in the built images.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Env, run_checks};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Builds one case and returns the failed checks.
fn check_case(env: &Env, case: &Path) -> Vec<String> {
    let name = case.file_name().unwrap().to_string_lossy().to_string();
    let dir = env.work.path().join(&name);
    copy_dir(case, &dir);
    for args in [
        &["init", "-q"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.email=c@c",
            "-c",
            "user.name=c",
            "commit",
            "-qm",
            "corpus",
        ],
    ] {
        assert!(
            Command::new("git")
                .arg("-C")
                .arg(&dir)
                .args(args)
                .status()
                .unwrap()
                .success()
        );
    }
    let out = env.build(&dir);
    if !out.status.success() {
        return vec![format!(
            "{name}: build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )];
    }
    let checks = std::fs::read_to_string(case.join("checks")).unwrap();
    run_checks(env, &name, &checks)
}

/// Builds the corpus config `name` in a store of its own and asserts its checks.
fn config_builds_and_checks_out(name: &str) {
    let env = Env::new();
    let failures = check_case(&env, &corpus().join(name));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// One test per config, so the harness builds them in parallel; [`CONFIGS`] must name every
/// corpus directory (`every_config_has_a_test` checks it).
macro_rules! config_tests {
    ($($test:ident: $name:literal,)*) => {
        /// The corpus directories with a test below.
        const CONFIGS: &[&str] = &[$($name),*];
        mod config {
            $(#[test] fn $test() { super::config_builds_and_checks_out($name) })*
        }
    };
}

config_tests! {
    deckhouse_style: "deckhouse-style",
    dependencies: "dependencies",
    fromimage_chain: "fromimage-chain",
    go_service: "go-service",
    mounts_cache: "mounts-cache",
    nameless_project: "nameless-project",
    node_frontend: "node-frontend",
    python_app: "python-app",
    templated_files: "templated-files",
    templated_multi: "templated-multi",
    werf_dockerfile_image: "werf-dockerfile-image",
    werf_docs_four_stages: "werf-docs-four-stages",
}

#[test]
fn every_config_has_a_test() {
    let mut cases: Vec<String> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("checks").is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "the corpus has at least 10 configs");
    assert_eq!(
        cases, CONFIGS,
        "tests/corpus and the config_tests! list in tests/cli/corpus.rs differ: add a line per new config"
    );
}
