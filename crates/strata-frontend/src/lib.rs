//! Frontends of strata: user config files to a [`Plan`].
//!
//! This crate owns the translation from what users write to the build plan, and nothing else:
//! it knows no store, sandbox, registry or cache state. Today it has one frontend, [`stapel`],
//! for werf.yaml-compatible configs (`strata.yaml` or `werf.yaml`); a Dockerfile frontend will
//! sit beside it and produce the same [`Plan`].
//!
//! Every error about the user's config is an [`Error::Config`] whose `Display` names the file,
//! line and column and shows the snippet ([`Diagnostic::render`](strata_plan::Diagnostic::render),
//! the one renderer of diagnostics), and every step of the plan keeps the span of the
//! source that produced it.
//!
//! ```
//! use std::path::{Path, PathBuf};
//! use strata_plan::{Base, DigestInput};
//!
//! let text = "\
//! image: app
//! from: alpine:3.20
//! shell:
//!   install:
//!   - apk add curl
//!   installCacheVersion: 2
//! ";
//! let dir = Path::new("/src/app");
//! let plan = strata_frontend::load_str(dir, dir.join("strata.yaml"), "strata.yaml", text, &Default::default())?;
//! let image = &plan.images[0];
//! assert!(matches!(&image.base, Base::Reference { reference, .. } if reference == "alpine:3.20"));
//! let names: Vec<_> = image.stages.iter().map(|s| s.name.as_str()).collect();
//! assert_eq!(names, ["from", "install"]);
//! assert_eq!(
//!     image.stages[1].inputs[1],
//!     DigestInput::CacheVersion { key: "installCacheVersion".into(), value: "2".into() }
//! );
//!
//! // Mistakes point at the user's file.
//! let err = strata_frontend::load_str(dir, PathBuf::from("x"), "strata.yaml", "image: a\nform: b\n", &Default::default())
//!     .unwrap_err();
//! assert!(err.to_string().starts_with("error: unknown key `form` in an image document\n --> strata.yaml:2:1"));
//! # Ok::<(), strata_frontend::Error>(())
//! ```
#![deny(missing_docs)]

pub mod dockerfile;
pub mod stapel;
pub use strata_template as template;

use std::path::{Path, PathBuf};

use strata_plan::{Diagnostic, Plan, SourceMap};

/// The file names [`load`] looks for, in order of preference.
pub const CONFIG_NAMES: [&str; 4] = ["strata.yaml", "strata.yml", "werf.yaml", "werf.yml"];

/// How to find the config.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions<'a> {
    /// An explicit config file (relative paths are taken relative to the directory); `None`
    /// looks for one of [`CONFIG_NAMES`].
    pub config: Option<PathBuf>,
    /// How git mappings are resolved (`--dev`, the clone cache).
    pub git: stapel::GitOptions,
    /// `.Env` of templates: werf's `--env`, the deployment environment's name.
    pub env: String,
    /// werf's loose giterminism (`--loose-giterminism`): `mount: fromPath` and `build_dir`
    /// need no allowance in `werf-giterminism.yaml`.
    pub loose_giterminism: bool,
    /// Where the `dockerfile:` images' context files are pinned
    /// ([`dockerfile::DockerfileOptions::snapshot`]).
    pub snapshot: Option<dockerfile::context_files::SnapshotDirs>,
    /// How the `dockerfile:` images read the configs of the images their stages are built
    /// `FROM` (as [`load_dockerfile`]'s `bases`); without it their stages start from an empty
    /// config.
    pub dockerfile_bases: Option<&'a dyn dockerfile::ResolveBase>,
    /// The images of the config already built, by name: the `ImageID` and `ImageDigest` the
    /// `dockerfile:` images' `targetBuildArg`s take. An image whose value is missing is
    /// planned with a placeholder and listed in [`strata_plan::Plan::waiting`].
    pub built: std::collections::BTreeMap<String, strata_plan::ImageValues>,
}

/// The errors of loading a config.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// None of [`CONFIG_NAMES`] exists in the directory.
    #[error("no strata.yaml or werf.yaml in {dir}")]
    NoConfig {
        /// The directory searched.
        dir: PathBuf,
    },
    /// The config file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A problem in the user's config; Display renders the message plus a source snippet.
    #[error("{}", .diagnostic.render(.sources))]
    Config {
        /// What is wrong and where.
        diagnostic: Box<Diagnostic>,
        /// The files the diagnostic points into.
        sources: Box<SourceMap>,
    },
}

/// Finds the config in `dir`: strata.yaml, strata.yml, werf.yaml, werf.yml (first that exists,
/// in that order), parses it and lowers it to a Plan (plan.context_dir = dir, plan.sources
/// holds the file).
///
/// Messages name the file by its path joined to `dir` (so `load(Path::new("."), ..)` says
/// `strata.yaml:3:5`).
///
/// # Errors
/// [`Error::NoConfig`] when there is no config, [`Error::Read`] when it cannot be read and
/// [`Error::Config`] for any problem in it.
pub fn load(dir: &Path, options: &LoadOptions<'_>) -> Result<Plan, Error> {
    let path = config_path(dir, options)?;
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })?;
    let name = display_name(&path);
    load_str(dir, path, &name, &text, options)
}

/// The same from text (for tests and `-f -`): `name` is how messages name the file.
///
/// # Errors
/// [`Error::Config`] for any problem in the text.
pub fn load_str(
    dir: &Path,
    path: PathBuf,
    name: &str,
    text: &str,
    options: &LoadOptions<'_>,
) -> Result<Plan, Error> {
    let mut sources = SourceMap::default();
    let file = sources.add(path.clone(), name.to_string(), text.to_string());
    // A templated config is rendered first; the YAML parsed is the rendered text, and its
    // errors are mapped back to the template (or partial) that produced the text.
    let mut rendered = None;
    let (parse_file, parse_text) = if text.contains("{{") {
        let mut ctx = template::Context::with_process_env(dir, head_commit(dir));
        ctx.env_name = options.env.clone();
        let r = match template::render(name, text, &ctx) {
            Ok(r) => r,
            Err(e) => {
                let id = if e.path == path {
                    file
                } else {
                    let partial = std::fs::read_to_string(&e.path).unwrap_or_default();
                    sources.add(e.path.clone(), e.file.clone(), partial)
                };
                let span = e.offset.map(|o| strata_plan::Span::new(id, o, o));
                let diagnostic =
                    Box::new(Diagnostic::new(e.message, span).label("in this template"));
                return Err(Error::Config {
                    diagnostic,
                    sources: Box::new(sources),
                });
            }
        };
        let mut ids = vec![file];
        for partial in &r.sources[1..] {
            ids.push(sources.add(
                partial.path.clone(),
                partial.name.clone(),
                partial.text.clone(),
            ));
        }
        let id = sources.add(path.clone(), format!("{name} (rendered)"), r.text.clone());
        let text = r.text.clone();
        rendered = Some((r, ids, id));
        (id, text)
    } else {
        (file, text.to_string())
    };
    let result = stapel::parse(parse_file, &parse_text).and_then(|config| {
        let giterminism = stapel::giterminism::load(dir, options.loose_giterminism, &mut sources)?;
        stapel::giterminism::check_mounts(&config, &giterminism)?;
        stapel::giterminism::check_secrets(&config, &giterminism, dir)?;
        let lowered = stapel::lower(&config, name, dir, options, &mut sources)?;
        Ok((config.project.map(|p| p.value), lowered))
    });
    let result = result.map_err(|mut d| {
        if let Some((r, ids, id)) = &rendered {
            let map = |span: strata_plan::Span| match r
                .map_span(span.start as usize, span.end as usize)
            {
                Some((src, a, b)) if span.file == *id => strata_plan::Span::new(ids[src], a, b),
                _ => span,
            };
            d.span = d.span.map(map);
            for (span, _) in &mut d.notes {
                *span = map(*span);
            }
        }
        d
    });
    match result {
        Ok((project, (images, notes, waiting))) => Ok(Plan {
            project,
            context_dir: dir.to_path_buf(),
            images,
            sources,
            notes,
            default_images: Vec::new(),
            waiting,
        }),
        Err(diagnostic) => Err(Error::Config {
            diagnostic,
            sources: Box::new(sources),
        }),
    }
}

/// The config in `dir` as it is after Go template rendering (what `load` parses).
///
/// # Errors
/// [`Error::NoConfig`], [`Error::Read`], or [`Error::Config`] for a template error.
pub fn render_config(dir: &Path, options: &LoadOptions<'_>) -> Result<String, Error> {
    let path = config_path(dir, options)?;
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })?;
    let name = display_name(&path);
    let mut ctx = template::Context::with_process_env(dir, head_commit(dir));
    ctx.env_name = options.env.clone();
    template::render(&name, &text, &ctx)
        .map(|r| r.text)
        .map_err(|e| {
            let mut sources = SourceMap::default();
            let id = sources.add(
                e.path.clone(),
                e.file.clone(),
                std::fs::read_to_string(&e.path).unwrap_or_default(),
            );
            let span = e.offset.map(|o| strata_plan::Span::new(id, o, o));
            Error::Config {
                diagnostic: Box::new(Diagnostic::new(e.message, span)),
                sources: Box::new(sources),
            }
        })
}

/// The config file `load` reads.
fn config_path(dir: &Path, options: &LoadOptions<'_>) -> Result<PathBuf, Error> {
    match &options.config {
        Some(path) => Ok(dir.join(path)),
        None => CONFIG_NAMES
            .iter()
            .map(|name| dir.join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| Error::NoConfig {
                dir: dir.to_path_buf(),
            }),
    }
}

/// The HEAD commit of the repository holding `dir`, for `.Commit` in templates.
fn head_commit(dir: &Path) -> Option<template::Commit> {
    let repo = strata_git::Repository::discover(dir).ok()?;
    let head = repo.resolve(&strata_git::Rev::Head).ok()?;
    let info = repo.commit_info(&head).ok()?;
    Some(template::Commit {
        hash: info.hash,
        date_human: info.time_human,
        date_unix: info.time_unix,
    })
}

/// Loads a Dockerfile as a plan: its stages become images, the target (default: the last
/// stage) is tagged `options.tag`. `bases` reads the configs of the images its stages are
/// built `FROM` ([`dockerfile::with_base_configs`]).
///
/// # Errors
/// [`Error::Read`] when the file cannot be read, [`Error::Config`] for any problem in it.
pub fn load_dockerfile(
    path: &Path,
    options: &dockerfile::DockerfileOptions,
    bases: Option<&dyn dockerfile::ResolveBase>,
) -> Result<Plan, Error> {
    let (parsed, sources) = parse_dockerfile(path)?;
    let options = match bases {
        Some(bases) => match dockerfile::with_base_configs(&parsed, options, bases) {
            Ok(options) => options,
            Err(diagnostic) => {
                return Err(Error::Config {
                    diagnostic,
                    sources: Box::new(sources),
                });
            }
        },
        None => options.clone(),
    };
    dockerfile::lower(&parsed, sources, &options).map_err(|(diagnostic, sources)| Error::Config {
        diagnostic,
        sources: Box::new(sources),
    })
}

fn parse_dockerfile(path: &Path) -> Result<(dockerfile::Dockerfile, SourceMap), Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut sources = SourceMap::default();
    let file = sources.add(path.to_path_buf(), display_name(path), text.clone());
    match dockerfile::parse(file, &text) {
        Ok(p) => Ok((p, sources)),
        Err(diagnostic) => Err(Error::Config {
            diagnostic,
            sources: Box::new(sources),
        }),
    }
}

/// `path` for messages, without a leading `./`.
fn display_name(path: &Path) -> String {
    path.strip_prefix(".")
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}
