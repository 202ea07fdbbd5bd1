//! The corpus: werf.yaml files in the style of real projects (`tests/corpus/`), each built from
//! a fresh git repository and its `checks` verified in the built images.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::Env;

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

fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
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
    let mut failures = Vec::new();
    let checks = std::fs::read_to_string(case.join("checks")).unwrap();
    for line in checks
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let parsed = line.split_once(" | ").and_then(|(image, rest)| {
            let (probe, expected) = rest.rsplit_once(" => ")?;
            Some((image, probe, expected))
        });
        let Some((image, probe, expected)) = parsed else {
            failures.push(format!("{name}: malformed check `{line}`"));
            continue;
        };
        let actual = if let Some(pointer) = probe.strip_prefix('@') {
            let out = env.strata(&["inspect", image]);
            let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            value["config"]
                .pointer(pointer)
                .map(|v| v.to_string())
                .unwrap_or_else(|| "<missing>".into())
        } else {
            let out = env.strata(&["run", "--entrypoint", "sh", image, "--", "-c", probe]);
            String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
        };
        if words(&actual) != words(expected) {
            failures.push(format!(
                "{name}: {image} | {probe}\n  expected: {expected}\n  actual:   {}",
                words(&actual)
            ));
        }
    }
    failures
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
