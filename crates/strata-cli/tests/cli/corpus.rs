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

#[test]
fn every_corpus_config_builds_and_checks_out() {
    let env = Env::new();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("checks").is_file())
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "the corpus has at least 10 configs");
    let failures: Vec<String> = cases.iter().flat_map(|c| check_case(&env, c)).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
