//! werf's giterminism for what a config may reach on the build machine: `mount: fromPath`
//! (a host directory), `mount: from: build_dir` (a directory kept between builds) and
//! `secrets:` (a variable, a file or a value of the build machine) are refused unless
//! `werf-giterminism.yaml` next to the config allows them, as werf does:
//!
//! ```yaml
//! giterminismConfigVersion: 1
//! config:
//!   stapel:
//!     mount:
//!       allowBuildDir: true
//!       allowFromPaths: [/var/cache/apt, "/opt/**"]
//!   secrets:
//!     allowEnvVariables: [NPM_TOKEN]
//!     allowFiles: [./secret.txt, "~/.npmrc"]
//!     allowValueIds: [plain]
//! ```
//!
//! or the build runs in werf's loose mode (`--loose-giterminism`, `WERF_LOOSE_GITERMINISM`),
//! which allows everything. `allowFromPaths` are globs matched against the whole `fromPath`
//! (`*` stays within one path component, `**` crosses them); `allowFiles` too, both sides
//! taken as paths of the build machine (`~/` the home, relative to the project directory).
//! A secret is allowed by what it reads: its variable, its file, or (`value:`) its id. The
//! other giterminism rules of werf (uncommitted files, environment variables in templates)
//! are not enforced by strata, so their keys are accepted and ignored.

use std::path::{Component, Path};

use strata_plan::{Diagnostic, MountSource, SecretSource, SourceMap, Span};

use super::config::Config;
use super::yaml::{self, Kind, Node};

/// The giterminism config's file name, in the project directory.
pub const FILE_NAME: &str = "werf-giterminism.yaml";

/// What the project's giterminism config (and the loose mode) allow.
#[derive(Debug, Default)]
pub struct Giterminism {
    loose: bool,
    allow_build_dir: bool,
    allow_from_paths: Vec<globset::GlobMatcher>,
    allow_secret_envs: Vec<String>,
    allow_secret_files: Vec<globset::GlobMatcher>,
    allow_secret_values: Vec<String>,
}

type Result<T> = std::result::Result<T, Box<Diagnostic>>;

/// Reads `werf-giterminism.yaml` in `dir`, if there is one (registered in `sources`, so its
/// errors point into it); `loose` is werf's `--loose-giterminism`.
pub fn load(dir: &Path, loose: bool, sources: &mut SourceMap) -> Result<Giterminism> {
    let mut out = Giterminism {
        loose,
        ..Giterminism::default()
    };
    let path = dir.join(FILE_NAME);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(out);
    };
    let file = sources.add(path, FILE_NAME.to_string(), text.clone());
    let docs = yaml::parse(file, &text)?;
    let Some(root) = docs.into_iter().next().and_then(|d| d.root) else {
        return Ok(out);
    };
    let bad = |node: &Node, what: &str| {
        Box::new(Diagnostic::new(
            format!(
                "`{what}` must be {}, found {}",
                expected(what),
                node.type_name()
            ),
            Some(node.span),
        ))
    };
    let mut version = None;
    for (key, value) in map(&root, "the giterminism config")? {
        match key.as_str() {
            Some("giterminismConfigVersion") => version = Some(value.span),
            Some("config") => {
                if let Some(secrets) = get(value, "config", "secrets")? {
                    load_secrets(secrets, dir, &mut out)?;
                }
                let Some(stapel) = get(value, "config", "stapel")? else {
                    continue;
                };
                let Some(mount) = get(stapel, "config.stapel", "mount")? else {
                    continue;
                };
                for (key, value) in map(mount, "config.stapel.mount")? {
                    match key.as_str() {
                        Some("allowBuildDir") => match value.as_scalar_text() {
                            Some("true") => out.allow_build_dir = true,
                            Some("false") => out.allow_build_dir = false,
                            _ => return Err(bad(value, "allowBuildDir")),
                        },
                        Some("allowFromPaths") => {
                            let Kind::Seq(items) = &value.kind else {
                                return Err(bad(value, "allowFromPaths"));
                            };
                            for item in items {
                                let glob =
                                    item.as_str().ok_or_else(|| bad(item, "allowFromPaths"))?;
                                out.allow_from_paths.push(matcher(glob, item)?);
                            }
                        }
                        _ => {
                            return Err(Box::new(
                                Diagnostic::new(
                                    "unknown key in `config.stapel.mount`",
                                    Some(key.span),
                                )
                                .help("werf knows `allowBuildDir` and `allowFromPaths` here"),
                            ));
                        }
                    }
                }
            }
            // werf's other rules (cli, helm, includes): not enforced by strata.
            _ => {}
        }
    }
    if version.is_none() {
        // The first key: the whole mapping would quote the whole file.
        let at = match &root.kind {
            Kind::Map(entries) if !entries.is_empty() => entries[0].0.span,
            _ => root.span,
        };
        return Err(Box::new(
            Diagnostic::new(
                "the giterminism config needs `giterminismConfigVersion: 1`",
                Some(at),
            )
            .help("add `giterminismConfigVersion: 1` as werf requires"),
        ));
    }
    Ok(out)
}

fn expected(what: &str) -> &'static str {
    match what {
        "allowBuildDir" => "a boolean",
        "allowEnvVariables" | "allowValueIds" => "a list of strings",
        _ => "a list of glob strings",
    }
}

/// A glob of the giterminism config (`item` its node, for errors).
fn matcher(glob: &str, item: &Node) -> Result<globset::GlobMatcher> {
    Ok(globset::GlobBuilder::new(glob)
        .literal_separator(true)
        .build()
        .map_err(|e| {
            Box::new(Diagnostic::new(
                format!("bad glob `{glob}`: {e}"),
                Some(item.span),
            ))
        })?
        .compile_matcher())
}

/// `config.secrets`: the variables, files (globs, as host paths of the project `dir`) and
/// value ids the config's secrets may use.
fn load_secrets(secrets: &Node, dir: &Path, out: &mut Giterminism) -> Result<()> {
    for (key, value) in map(secrets, "config.secrets")? {
        let what = key.as_str().unwrap_or_default();
        let items = match (&value.kind, what) {
            (Kind::Seq(items), "allowEnvVariables" | "allowFiles" | "allowValueIds") => items,
            (_, "allowEnvVariables" | "allowFiles" | "allowValueIds") => {
                return Err(Box::new(Diagnostic::new(
                    format!(
                        "`{what}` must be {}, found {}",
                        expected(what),
                        value.type_name()
                    ),
                    Some(value.span),
                )));
            }
            _ => {
                return Err(Box::new(
                    Diagnostic::new("unknown key in `config.secrets`", Some(key.span)).help(
                        "werf knows `allowEnvVariables`, `allowFiles` and `allowValueIds` here",
                    ),
                ));
            }
        };
        for item in items {
            let text = item.as_str().ok_or_else(|| {
                Box::new(Diagnostic::new(
                    format!(
                        "`{what}` must be {}, found {}",
                        expected(what),
                        item.type_name()
                    ),
                    Some(item.span),
                ))
            })?;
            match what {
                "allowEnvVariables" => out.allow_secret_envs.push(text.to_string()),
                "allowValueIds" => out.allow_secret_values.push(text.to_string()),
                _ => {
                    let path = super::host_path(Path::new(text), dir);
                    out.allow_secret_files
                        .push(matcher(&path.to_string_lossy(), item)?);
                }
            }
        }
    }
    Ok(())
}

fn map<'a>(node: &'a Node, what: &str) -> Result<&'a [(Node, Node)]> {
    match &node.kind {
        Kind::Map(entries) => Ok(entries),
        _ if node.is_null() => Ok(&[]),
        _ => Err(Box::new(Diagnostic::new(
            format!("{what} must be a mapping, found {}", node.type_name()),
            Some(node.span),
        ))),
    }
}

fn get<'a>(node: &'a Node, what: &str, key: &str) -> Result<Option<&'a Node>> {
    Ok(map(node, what)?
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v))
}

/// Refuses every `mount` of `config` the giterminism config does not allow, at its line.
pub fn check_mounts(config: &Config, giterminism: &Giterminism) -> Result<()> {
    if giterminism.loose {
        return Ok(());
    }
    for image in &config.images {
        for mount in &image.mounts {
            match &mount.source.value {
                MountSource::BuildDir if !giterminism.allow_build_dir => {
                    return Err(refused(
                        "`mount: from: build_dir` is not allowed by giterminism",
                        mount.source.span,
                        "config: {stapel: {mount: {allowBuildDir: true}}}",
                    ));
                }
                // The globs match the path as written: `/var/cache/../../etc` matches
                // `/var/cache/**` and mounts /etc, so a path with `..` is never allowed.
                MountSource::Host(path) if path.components().any(|c| c == Component::ParentDir) => {
                    return Err(Box::new(
                        Diagnostic::new(
                            format!(
                                "`mount: fromPath: {}` has `..`, which giterminism cannot match against allowFromPaths",
                                path.display()
                            ),
                            Some(mount.source.span),
                        )
                        .help("write the path without `..`"),
                    ));
                }
                MountSource::Host(path)
                    if !giterminism
                        .allow_from_paths
                        .iter()
                        .any(|g| g.is_match(path)) =>
                {
                    return Err(refused(
                        &format!(
                            "`mount: fromPath: {}` is not allowed by giterminism: it mounts a directory of the build machine",
                            path.display()
                        ),
                        mount.source.span,
                        &format!(
                            "config: {{stapel: {{mount: {{allowFromPaths: [{}]}}}}}}",
                            path.display()
                        ),
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Refuses every secret of `config` the giterminism config does not allow, at its entry;
/// `dir` is the project directory (`src:` paths are relative to it).
pub fn check_secrets(config: &Config, giterminism: &Giterminism, dir: &Path) -> Result<()> {
    if giterminism.loose {
        return Ok(());
    }
    for secret in config.images.iter().flat_map(|i| &i.secrets) {
        let (allowed, allow) = match &secret.source {
            SecretSource::Env(name) => (
                giterminism.allow_secret_envs.contains(name),
                format!("allowEnvVariables: [{name}]"),
            ),
            SecretSource::File(path) => {
                let host = super::host_path(path, dir);
                (
                    giterminism
                        .allow_secret_files
                        .iter()
                        .any(|g| g.is_match(&host)),
                    format!("allowFiles: [{}]", path.display()),
                )
            }
            SecretSource::Value(_) => (
                giterminism.allow_secret_values.contains(&secret.id),
                format!("allowValueIds: [{}]", secret.id),
            ),
        };
        if !allowed {
            return Err(refused(
                &format!("the secret `{}` is not allowed by giterminism", secret.id),
                secret.span,
                &format!("config: {{secrets: {{{allow}}}}}"),
            ));
        }
    }
    Ok(())
}

fn refused(message: &str, span: Span, allow: &str) -> Box<Diagnostic> {
    Box::new(Diagnostic::new(message, Some(span)).help(format!(
        "allow it in {FILE_NAME} next to the config (`giterminismConfigVersion: 1` and `{allow}`), or build with --loose-giterminism (WERF_LOOSE_GITERMINISM=1)"
    )))
}
