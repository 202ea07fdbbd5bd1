//! `load` and `load_str`: discovery, explicit files, and the plan's context and sources.

use std::path::{Path, PathBuf};

use strata_frontend::{Error, LoadOptions, load, load_str};

const CONFIG: &str = "image: app\nfrom: alpine:3.20\n";

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("writing a config");
}

fn image_name(dir: &Path) -> String {
    let plan = load(dir, &LoadOptions::default()).expect("a valid config");
    plan.images[0].name.to_string()
}

#[test]
fn discovery_prefers_strata_then_yaml_extension() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let dir = tmp.path();
    write(dir, "werf.yml", "image: werf-yml\nfrom: a\n");
    assert_eq!(image_name(dir), "werf-yml");
    write(dir, "werf.yaml", "image: werf-yaml\nfrom: a\n");
    assert_eq!(image_name(dir), "werf-yaml");
    write(dir, "strata.yml", "image: strata-yml\nfrom: a\n");
    assert_eq!(image_name(dir), "strata-yml");
    write(dir, "strata.yaml", "image: strata-yaml\nfrom: a\n");
    assert_eq!(image_name(dir), "strata-yaml");
}

#[test]
fn plan_records_context_and_source() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    write(tmp.path(), "werf.yaml", CONFIG);
    let plan = load(tmp.path(), &LoadOptions::default()).expect("a valid config");
    assert_eq!(plan.context_dir, tmp.path());
    let file = plan.sources.file(strata_plan::FileId(0));
    assert_eq!(file.path, tmp.path().join("werf.yaml"));
    assert_eq!(file.text, CONFIG);
    assert_eq!(
        file.name,
        tmp.path().join("werf.yaml").display().to_string()
    );
}

#[test]
fn no_config_is_an_error() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let err = load(tmp.path(), &LoadOptions::default()).expect_err("no config");
    assert!(matches!(err, Error::NoConfig { .. }));
    assert_eq!(
        err.to_string(),
        format!("no strata.yaml or werf.yaml in {}", tmp.path().display())
    );
}

#[test]
fn explicit_config_is_relative_to_the_dir() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    write(tmp.path(), "strata.yaml", "image: default\nfrom: a\n");
    write(tmp.path(), "other.yaml", "image: other\nfrom: a\n");
    let options = LoadOptions {
        config: Some(PathBuf::from("other.yaml")),
        ..LoadOptions::default()
    };
    let plan = load(tmp.path(), &options).expect("a valid config");
    assert_eq!(plan.images[0].name.to_string(), "other");
}

#[test]
fn unreadable_config_names_the_path() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let options = LoadOptions {
        config: Some(PathBuf::from("missing.yaml")),
        ..LoadOptions::default()
    };
    let err = load(tmp.path(), &options).expect_err("a missing file");
    let Error::Read { path, .. } = &err else {
        panic!("expected a read error, got {err:?}");
    };
    assert_eq!(path, &tmp.path().join("missing.yaml"));
    assert!(err.to_string().starts_with("cannot read "), "{err}");
}

#[test]
fn load_str_names_the_file_as_told() {
    let err = load_str(
        Path::new("/src"),
        PathBuf::from("/dev/stdin"),
        "<stdin>",
        "image: a\nfrom: [b]\n",
        &LoadOptions::default(),
    )
    .expect_err("a wrong type");
    assert_eq!(
        err.to_string(),
        "error: expected a string for `from`, found a list\n --> <stdin>:2:7\n  |\n2 | from: [b]\n  |       ^^^"
    );
}

#[test]
fn errors_point_at_line_and_column() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    write(tmp.path(), "strata.yaml", "image: a\nfrom: b\nfinal: 1\n");
    let err = load(tmp.path(), &LoadOptions::default()).expect_err("a wrong type");
    assert!(err.to_string().contains("strata.yaml:3:8"), "{err}");
}
