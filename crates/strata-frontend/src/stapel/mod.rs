//! The stapel frontend: a werf.yaml-compatible config to the images of a [`Plan`].
//!
//! Three passes, each in its own module, as in BuildKit's Dockerfile frontend:
//!
//! 1. `yaml`: the text to span-carrying YAML trees (one per `---` document), with byte spans
//!    for every key and value and mappings kept as ordered lists so duplicates can be reported
//!    at both places;
//! 2. `parse`: the trees to the typed [`Config`], checking every key and type (unknown keys get
//!    a "did you mean", werf keys strata lacks are "not supported by strata yet");
//! 3. `lower`: the [`Config`] to [`Image`]s, checking the images against each other (duplicate
//!    names, unknown `fromImage`, `fromImage` cycles).
//!
//! # Stages and their digest inputs
//!
//! The lowering defines the cache behaviour, so it follows werf's stapel builder exactly. Each
//! image gets these stages in this order; a user stage without commands and a `docker:` without
//! directives are left out (the next stage builds on the previous one that exists). The solver
//! hashes, per stage, the parent stage's digest, the stage name and the inputs below (and adds
//! the resolved base to `from` itself).
//!
//! | stage | digest inputs, in order | steps |
//! |---|---|---|
//! | `from` | `project` (werf's `project:`, when set; on the first stage of every image, Dockerfile images too), `build.cacheVersion`, `cacheVersion`, `fromCacheVersion` (each only if set), `mount` | none |
//! | `beforeInstall` | `instructions` (or `ansible.tasks`), `shell.cacheVersion` (or `ansible.cacheVersion`), `beforeInstallCacheVersion` | one `Run` |
//! | `dependencies*` | `import[N]` (parameters), `dependency[N]`; late: `import[N].files` (checksum of the copied files), `dependency.NAME` (values) | one `Import` per import |
//! | `gitArchive` | `git[N]`: each mapping's parameters (not its commit) | one `GitArchive` per mapping |
//! | `install` | `instructions`, `shell.cacheVersion`, `installCacheVersion`, `git[N].install` (the `stageDependencies` checksum, with the matched files recorded) | a `GitPatch` per mapping, one `Run` |
//! | `beforeSetup` | `instructions`, `shell.cacheVersion`, `beforeSetupCacheVersion`, `git[N].beforeSetup` | the same |
//! | `setup` | `instructions`, `shell.cacheVersion`, `setupCacheVersion`, `git[N].setup` | the same |
//! | `gitCache`, `gitLatestPatch` | late: `gitCache.sizeMiB`, `git[N].patch` | a `GitPatch` per mapping |
//! | `dockerInstructions` | `docker.VOLUME`, `EXPOSE`, `ENV`, `LABEL`, `ENTRYPOINT`, `CMD`, `WORKDIR`, `USER`, `HEALTHCHECK` (each only if set) | one `Config` |
//! | `imageSpec` | `build.imageSpec`, `imageSpec` | one `Config` each |
//!
//! Each input is a typed [`DigestInput`](strata_plan::DigestInput) of the kind
//! [`StageKind::feeds`](strata_plan::StageKind::feeds) allows for the stage.
//!
//! - `instructions` are the command strings exactly as written (a block scalar keeps its newlines).
//! - `ansible.tasks` (an image with `ansible:` instead of `shell:`; one of the two) are the
//!   stage's tasks as werf hashes them: each task as JSON with sorted keys, numbers and
//!   booleans as written. Each task must use exactly one module of werf's supported list
//!   (`block`/`rescue`/`always` hold such tasks), else it is an error at its line. The `Run`
//!   is [`RunShell::Ansible`](strata_plan::RunShell::Ansible): one command per task, its text
//!   the task as block YAML for the playbook.
//! - Cache versions are strings; a number or boolean is kept as written (`installCacheVersion:
//!   2` is `"2"`), and null (`~` or nothing) means unset.
//! - A `Run` runs all commands of the stage as one toolbox script, as `0:0` in `/`; each
//!   command keeps the span of its list item, the step the span of its stage key.
//! - A `docker.*` input's value is canonical JSON: a string, a list of strings, an object in
//!   written order (`ENV`, `LABEL`) or, for `HEALTHCHECK`,
//!   `{"test":[..],"interval":ns,"timeout":ns,"startPeriod":ns,"retries":n}`. `CMD` and
//!   `ENTRYPOINT` strings become an argv first: a JSON array of strings is taken as is, any
//!   other string becomes `["/bin/sh","-c",string]`.
//!
//! Neither digest inputs nor in any layer: `secrets:` (mounted at `/run/secrets/ID` in every
//! user stage and offered to a Dockerfile image's `RUN --mount=type=secret`, read when the
//! stage runs), `addHost:` (entries of the build containers' `/etc/hosts`) and a remote's
//! `basicAuth` (given to its clone). A Dockerfile image's `dependencies` are build args of its
//! Dockerfile (name, repo and tag: known when it is planned). An `import` from a tagged or
//! digested reference outside the config copies from that image. `ssh:` (Dockerfile images
//! only) is accepted: the agent it names would serve `RUN --mount=type=ssh`, which the
//! Dockerfile frontend reports as unsupported at its line.
//!
//! The meta `deploy` and `gitWorktree`
//! are werf's deploy-side settings: accepted with a note. The meta `cleanup` (keep policies)
//! is parsed into [`Cleanup`] for `strata cleanup`.
//!
//! [`Plan`]: strata_plan::Plan
//! [`Image`]: strata_plan::Image

mod ansible;
mod cleanup;
mod config;
mod docker;
mod git;
pub mod giterminism;
mod lower;
mod parse;
mod yaml;

use strata_plan::{Diagnostic, FileId, Image};

/// The crate-level entry points, also reachable as `stapel::load` (the stapel frontend is the
/// only one so far).
pub use crate::{Error, LoadOptions, load, load_str};

pub use ansible::SUPPORTED_MODULES as ANSIBLE_MODULES;
pub use cleanup::{Cleanup, KeepPolicy, Limit, NameMatch, RefKind, References, default_policies};
pub use config::{
    Ansible, AnsibleTask, Config, Docker, From, GitConfig, GitRef, ImageConfig, Instructions,
    Keyed, Shell, ShellStage, Spanned, StageInstructions, UserStage,
};
pub use git::GitOptions;

/// Parses the text of a config file (registered as `file` in the caller's source map) into the
/// typed [`Config`].
///
/// # Errors
/// The first problem found: malformed YAML, an unknown or unsupported key, a wrong type.
pub fn parse(file: FileId, text: &str) -> Result<Config, Box<Diagnostic>> {
    let docs = yaml::parse(file, text)?;
    parse::config(&docs)
}

/// Lowers a [`Config`] to images, in config order, resolving its git mappings against the
/// repositories (the one holding `dir`, or remotes); `file_name` names the file in messages
/// that have no better place to point at. Returns the images, notes for the user, and the
/// images waiting for values of images not yet built ([`strata_plan::Plan::waiting`]).
///
/// # Errors
/// No images, duplicate image names, an unknown `fromImage` or a `fromImage` cycle, a git
/// mapping that cannot be resolved or has a bad mask.
pub fn lower(
    config: &Config,
    file_name: &str,
    dir: &std::path::Path,
    options: &crate::LoadOptions<'_>,
    sources: &mut strata_plan::SourceMap,
) -> Result<Lowered, Box<Diagnostic>> {
    let git = &options.git;
    check_broken(config, &git.images)?;
    let (pruned, left_out) = without_broken(config);
    let config = &pruned;
    let state = git::resolve(config, dir, git)?;
    let mut images = lower::images(config, file_name, &state)?;
    set_created_by(&mut images);
    let mut waiting = fill_dependency_values(&mut images, &options.built);
    waiting.extend(lower::dockerfile_images(
        config,
        dir,
        options,
        &mut images,
        sources,
    )?);
    for (image, own) in images.iter_mut().zip(&config.images) {
        let project = config.project.as_ref().map_or("", |p| p.value.as_str());
        let names = (project, own.name.to_string());
        let spec = lower::image_spec_stage(
            config.image_spec.as_ref(),
            own.image_spec.as_ref(),
            (names.0, &names.1),
        )?;
        if let Some(mut stage) = spec {
            // The stage makes no history but its own entry; it runs no command. After
            // `clearHistory` it makes none: werf's image then has an empty history.
            let clears = stage
                .steps
                .iter()
                .any(|s| matches!(&s.op, strata_plan::Op::Config(c) if c.remove.history));
            if !clears {
                stage.options.created_by = format!("strata: {}/imageSpec", image.name);
            }
            stage.options.werf_labels = own.dockerfile.is_none();
            image.stages.push(stage);
        }
    }
    if let Some(project) = &config.project {
        let input = strata_plan::DigestInput::Setting {
            name: strata_plan::Setting::Project,
            value: project.value.clone(),
        };
        key_first_stages(&mut images, &input);
        label_project(&mut images, &project.value);
    }
    if let Some(version) = &config.cache_version {
        let input = strata_plan::DigestInput::CacheVersion {
            key: "build.cacheVersion".into(),
            value: version.value.clone(),
        };
        key_first_stages(&mut images, &input);
    }
    resolve_host_paths(&mut images, dir);
    let mut notes = config.notes.clone();
    notes.extend(left_out);
    notes.extend(config.images.iter().filter(|i| i.from_latest).map(|i| {
        format!(
            "image `{}`: `fromLatest` takes the base from the local store when it is there, as \
             every strata build does; `strata pull` refreshes it",
            i.name
        )
    }));
    notes.extend(state.notes);
    Ok((images, notes, waiting))
}

/// Sets the values of the stapel images' `dependencies` variables from `built` (by image
/// name); returns the images waiting for values `built` lacks, which get placeholders
/// ([`strata_plan::Plan::waiting`]).
fn fill_dependency_values(
    images: &mut [Image],
    built: &std::collections::BTreeMap<String, strata_plan::ImageValues>,
) -> Vec<(usize, Vec<usize>)> {
    let names: Vec<String> = images.iter().map(|i| i.name.to_string()).collect();
    let mut waiting = Vec::new();
    for (index, image) in images.iter_mut().enumerate() {
        let mut awaited = Vec::new();
        let envs = image
            .stages
            .iter_mut()
            .flat_map(|s| s.options.dependency_env.iter_mut());
        for env in envs {
            let values = lower::image_values(&names[env.image], env.image, built, &mut awaited);
            env.value = values.value(env.kind);
        }
        if !awaited.is_empty() {
            waiting.push((index, awaited));
        }
    }
    waiting
}

/// What [`lower`] returns: the images, the notes, [`strata_plan::Plan::waiting`].
pub type Lowered = (Vec<Image>, Vec<String>, Vec<(usize, Vec<usize>)>);

/// werf labels every image it builds with its project (`werf: PROJECT`, the label werf's
/// cleanup and host tools select a project's images by); set on each image's first stage, so
/// every later stage and the image carry it. werf's per-stage labels (the parent stage, the
/// project's HEAD commit) are set by the worker ([`strata_plan::StageOptions::werf_labels`]).
fn label_project(images: &mut [Image], project: &str) {
    for stage in images.iter_mut().filter_map(|i| i.stages.first_mut()) {
        stage.steps.push(strata_plan::Step {
            op: strata_plan::Op::Config(strata_plan::ConfigChange {
                labels: vec![("werf".into(), project.to_string())],
                ..Default::default()
            }),
            span: stage.span,
        });
    }
}

/// werf's `fromPath` and secret `src` may be relative (to the project directory) or start
/// with `~` (the builder's home); giterminism matched `fromPath` as written, the mount and the
/// secret take the host path.
fn resolve_host_paths(images: &mut [Image], dir: &std::path::Path) {
    use strata_plan::{MountSource, SecretSource};
    for options in images
        .iter_mut()
        .flat_map(|i| i.stages.iter_mut())
        .map(|s| &mut s.options)
    {
        for mount in &mut options.mounts {
            if let MountSource::Host(path) = &mut mount.source {
                *path = host_path(path, dir);
            }
        }
        for (_, source) in &mut options.secrets {
            if let SecretSource::File(path) = source {
                *path = host_path(path, dir);
            }
        }
    }
}

/// A path of the build machine as werf's configs write them: below `~` (the builder's home),
/// relative to the project directory `dir`, or absolute.
pub(crate) fn host_path(path: &std::path::Path, dir: &std::path::Path) -> std::path::PathBuf {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    match (path.strip_prefix("~"), home) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ if path.is_relative() => {
            let joined = dir.join(path);
            std::path::absolute(&joined).unwrap_or(joined)
        }
        _ => path.to_path_buf(),
    }
}

/// The error of the first image document that did not parse and that a build of `wanted`
/// (empty: all) needs, as itself or as the base, import or dependency of a needed image.
fn check_broken(config: &Config, wanted: &[String]) -> Result<(), Box<Diagnostic>> {
    use config::From;
    let Some((_, first)) = config.broken.first() else {
        return Ok(());
    };
    if wanted.is_empty() {
        return Err(first.clone());
    }
    let mut todo: Vec<&str> = wanted.iter().map(String::as_str).collect();
    let mut seen = std::collections::HashSet::new();
    while let Some(name) = todo.pop() {
        if !seen.insert(name) {
            continue;
        }
        if let Some((_, error)) = config.broken.iter().find(|(n, _)| n.matches(name)) {
            return Err(error.clone());
        }
        let Some(image) = config.images.iter().find(|i| i.name.matches(name)) else {
            continue;
        };
        if let From::Image(n) | From::Reference(n) = &image.from.value {
            todo.push(n);
        }
        todo.extend(image.imports.iter().map(|m| m.image.value.as_str()));
        todo.extend(image.dependencies.iter().map(|d| d.image.value.as_str()));
    }
    Ok(())
}

/// `config` without the images that did not parse and those that need one of them (none of
/// which the build needs, [`check_broken`] made sure), and a note for each left out.
fn without_broken(config: &Config) -> (Config, Vec<String>) {
    use config::From;
    let mut notes: Vec<String> = config
        .broken
        .iter()
        .map(|(name, error)| {
            format!(
                "image `{name}` is left out: {} (`strata build {name}` shows where)",
                error.message
            )
        })
        .collect();
    let mut out = config.clone();
    loop {
        let gone = |name: &str| {
            config.broken.iter().any(|(n, _)| n.matches(name))
                || (config.images.iter().any(|i| i.name.matches(name))
                    && !out.images.iter().any(|i| i.name.matches(name)))
        };
        let position = out.images.iter().position(|image| {
            let base = match &image.from.value {
                From::Image(n) | From::Reference(n) => Some(n.as_str()),
                From::Scratch => None,
            };
            base.into_iter()
                .chain(image.imports.iter().map(|m| m.image.value.as_str()))
                .chain(image.dependencies.iter().map(|d| d.image.value.as_str()))
                .find(|n| gone(n))
                .is_some()
        });
        let Some(i) = position else { break };
        let image = out.images.remove(i);
        notes.push(format!(
            "image `{}` is left out: it needs an image that is",
            image.name
        ));
    }
    (out, notes)
}

/// Adds `input` to the digest inputs of each image's first stage, so that every stage of
/// every image depends on it. `project`: stages are kept per project, as werf keeps one stages
/// storage per `project:`, so two projects with the same images and git mappings never share
/// a stage (whose files would be the other repository's). `build.cacheVersion`: werf's global
/// cache version.
fn key_first_stages(images: &mut [Image], input: &strata_plan::DigestInput) {
    for stage in images.iter_mut().filter_map(|i| i.stages.first_mut()) {
        let at = stage
            .inputs
            .iter()
            .take_while(|i| {
                matches!(
                    i,
                    strata_plan::DigestInput::Setting {
                        name: strata_plan::Setting::Project,
                        ..
                    }
                )
            })
            .count();
        stage.inputs.insert(at, input.clone());
    }
}

/// The history text of each stapel stage: `strata: <image>/<stage>`, then the stage's user
/// commands when it has any (`strata: app/install: apt-get update; make`). werf's own images
/// carry what the container runtime's commit wrote; this names the stage instead.
fn set_created_by(images: &mut [Image]) {
    for image in images {
        let name = image.name.to_string();
        for stage in &mut image.stages {
            let commands = stage.inputs.iter().find_map(|i| match i {
                strata_plan::DigestInput::Instructions { lines } => Some(lines.join("; ")),
                strata_plan::DigestInput::AnsibleTasks { tasks } => Some(tasks.join("; ")),
                _ => None,
            });
            stage.options.created_by = match commands {
                Some(c) => format!("strata: {name}/{}: {c}", stage.name),
                None => format!("strata: {name}/{}", stage.name),
            };
        }
    }
}
