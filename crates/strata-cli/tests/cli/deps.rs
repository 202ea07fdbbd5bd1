//! The workspace's dependency rules, read from `cargo metadata` and checked against the crate
//! table of docs/architecture.md, so the table stays the truth:
//!
//! - every workspace crate has a row in the table, and every row is a workspace crate;
//! - a crate depends (normal, build and dev dependencies alike) only on workspace crates whose
//!   row is above its own;
//! - `strata-cli` depends on `strata` and only on the few crates whose option and event types
//!   its arguments fill in ([`CLI_MAY_USE`]), never on build logic;
//! - every declared dependency is used, and a dev-dependency is not also a normal one.
//!
//! "Used" is a heuristic over the crate's sources (every `.rs` file under `src/`, `tests/`,
//! `benches/`, `examples/` and `build.rs`): the dependency's extern name (`resolve.nodes[].deps
//! [].name`, so renames and `[lib] name`s are right) must appear as a path (`name::`), in a
//! `use name` or as `extern crate name`. A normal dependency must be named under `src/` or in
//! `build.rs` (one only tests need belongs in `[dev-dependencies]`). What the heuristic cannot
//! see is a crate that is linked but never named (a `-sys` crate pulled in for its feature
//! flags): such a dependency goes into [`LINKED_ONLY`] with the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Workspace crates `strata-cli` may depend on besides `strata`: each provides option or event
/// types the command line builds or renders (`Sink` and `Event`, the plan's `Diagnostic`,
/// `SourceMap` and `Span` that errors carry, `DockerfileOptions` and `LoadOptions`, `Network`
/// and the sandbox's re-exec entry point, `ManifestFormat`).
const CLI_MAY_USE: &[&str] = &[
    "strata",
    "strata-progress",
    "strata-plan",
    "strata-frontend",
    "strata-sandbox",
    "strata-registry",
];

/// (crate, dependency, why) of dependencies that are linked but never named in the sources.
const LINKED_ONLY: &[(&str, &str, &str)] = &[];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists because this crate is in it")
}

/// The platform cargo builds for here, from `cargo -vV`'s `host:` line.
fn host_platform() -> String {
    let out = Command::new(env!("CARGO"))
        .arg("-vV")
        .output()
        .expect("run cargo -vV");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("cargo -vV names its host platform")
        .to_string()
}

/// `cargo metadata` of the workspace, offline (the lock file is there) and for this platform
/// only: a fresh machine has fetched only the packages its own builds need, never, say, the
/// Windows-only ones.
fn metadata() -> Value {
    let root = workspace_root();
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--offline", "--locked"])
        .args(["--filter-platform", &host_platform()])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// The crate names of the table under "## Crates" in docs/architecture.md, top first.
fn table_order() -> Vec<String> {
    let path = workspace_root().join("docs/architecture.md");
    let doc = std::fs::read_to_string(&path).expect("read docs/architecture.md");
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("Crates"))
        .expect("docs/architecture.md has a `## Crates` section");
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(name, _)| name.to_string()))
        .collect()
}

struct Package {
    name: String,
    dir: PathBuf,
    /// (extern name, package name, kinds: "normal", "dev", "build").
    deps: Vec<(String, String, BTreeSet<String>)>,
}

fn workspace_packages(meta: &Value) -> Vec<Package> {
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .expect("workspace_members is an array")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let packages: BTreeMap<&str, &Value> = meta["packages"]
        .as_array()
        .expect("packages is an array")
        .iter()
        .map(|p| (p["id"].as_str().expect("package id"), p))
        .collect();
    let nodes = meta["resolve"]["nodes"]
        .as_array()
        .expect("resolve.nodes is an array");
    nodes
        .iter()
        .filter(|n| members.contains(n["id"].as_str().expect("node id")))
        .map(|n| {
            let package = packages[n["id"].as_str().expect("node id")];
            let manifest = PathBuf::from(package["manifest_path"].as_str().expect("manifest"));
            let deps = n["deps"]
                .as_array()
                .expect("node deps")
                .iter()
                .map(|d| {
                    let dep_package = packages[d["pkg"].as_str().expect("dep pkg")];
                    let kinds = d["dep_kinds"]
                        .as_array()
                        .expect("dep_kinds")
                        .iter()
                        .map(|k| k["kind"].as_str().unwrap_or("normal").to_string())
                        .collect();
                    (
                        d["name"].as_str().expect("dep name").to_string(),
                        dep_package["name"].as_str().expect("name").to_string(),
                        kinds,
                    )
                })
                .collect();
            Package {
                name: package["name"].as_str().expect("name").to_string(),
                dir: manifest
                    .parent()
                    .expect("a manifest is in a dir")
                    .to_path_buf(),
                deps,
            }
        })
        .collect()
}

#[test]
fn crates_depend_only_on_crates_above_them() {
    let order = table_order();
    let meta = metadata();
    let packages = workspace_packages(&meta);
    let names: BTreeSet<&str> = packages.iter().map(|p| p.name.as_str()).collect();
    let rows: BTreeSet<&str> = order.iter().map(String::as_str).collect();
    assert_eq!(
        names, rows,
        "the workspace crates and the rows of the crate table in docs/architecture.md differ: \
         add a row for a new crate where its dependencies allow"
    );
    let rank = |name: &str| order.iter().position(|n| n == name);
    let mut wrong = Vec::new();
    for p in &packages {
        let own = rank(&p.name).expect("every crate has a row (checked above)");
        for (_, dep, kinds) in &p.deps {
            let Some(theirs) = rank(dep) else { continue };
            if theirs >= own {
                wrong.push(format!(
                    "{} depends on {dep} ({}), which is not above it in the table",
                    p.name,
                    kinds.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            if p.name == "strata-cli"
                && kinds.iter().any(|k| k != "dev")
                && !CLI_MAY_USE.contains(&dep.as_str())
            {
                wrong.push(format!(
                    "strata-cli depends on {dep}: the command line calls `strata::ops` and may \
                     only name the option and event types of {CLI_MAY_USE:?}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Every `.rs` file below `dir` (recursively).
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("read a source dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether `source` names the crate `name`: `name::`, `use name` or `extern crate name`, with
/// `name` not the tail of a longer identifier.
fn names_crate(source: &str, name: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    source.match_indices(name).any(|(at, _)| {
        let before = &source[..at];
        let after = &source[at + name.len()..];
        if before.chars().next_back().is_some_and(ident) || after.starts_with(ident) {
            return false;
        }
        let before = before.trim_end();
        after.trim_start().starts_with("::")
            || before.ends_with("use")
            || before.ends_with("extern crate")
    })
}

#[test]
fn declared_dependencies_are_used() {
    let meta = metadata();
    let mut unused = Vec::new();
    for p in workspace_packages(&meta) {
        let read = |dirs: &[&str]| -> String {
            let mut files = Vec::new();
            for d in dirs {
                let path = p.dir.join(d);
                if path.is_file() {
                    files.push(path);
                } else {
                    rust_files(&path, &mut files);
                }
            }
            files
                .iter()
                .map(|f| std::fs::read_to_string(f).expect("read a source file"))
                .collect()
        };
        let library = read(&["src", "build.rs"]);
        let everything = library.clone() + &read(&["tests", "benches", "examples"]);
        for (name, package, kinds) in &p.deps {
            if LINKED_ONLY
                .iter()
                .any(|(c, d, _)| *c == p.name && d == package)
            {
                continue;
            }
            // A build-dependency is the build script's, compiled apart from the tests' view
            // of the crate: being a dev-dependency too is no duplicate.
            if kinds.contains("normal") && kinds.contains("dev") {
                unused.push(format!(
                    "{}: {package} is both a dependency and a dev-dependency (tests see the \
                     normal one: remove it from [dev-dependencies])",
                    p.name
                ));
            }
            let normal = kinds.iter().any(|k| k != "dev");
            let sources = if normal { &library } else { &everything };
            if !names_crate(sources, name) {
                unused.push(format!(
                    "{}: {} {package} is never named in its {} (`{name}::`, `use {name}`)",
                    p.name,
                    if normal {
                        "dependency"
                    } else {
                        "dev-dependency"
                    },
                    if normal {
                        "src/ (a dependency only tests use belongs in [dev-dependencies])"
                    } else {
                        "sources"
                    },
                ));
            }
        }
    }
    assert!(
        unused.is_empty(),
        "unused dependencies:\n{}",
        unused.join("\n")
    );
}

#[test]
fn names_crate_heuristic() {
    assert!(names_crate("use serde::Deserialize;", "serde"));
    assert!(names_crate("#[derive(thiserror::Error)]", "thiserror"));
    assert!(names_crate("use tempfile;", "tempfile"));
    assert!(names_crate("x = tar ::Builder", "tar"));
    assert!(!names_crate("use serde_json::Value;", "serde"));
    assert!(!names_crate("my_tar::x", "tar"));
    assert!(!names_crate("// a tar file", "tar"));
}
