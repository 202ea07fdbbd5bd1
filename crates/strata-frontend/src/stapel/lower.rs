//! Pass 3: the typed [`Config`] to the images of a [`Plan`](strata_plan::Plan).
//!
//! This pass defines the cache behaviour of a stapel image, so it follows werf exactly; the
//! table in the [module docs](super) lists every stage and its digest inputs.

use strata_plan::Diagnostic;
use strata_plan::{
    Base, Command, ConfigChange, DependencyEnv, DigestInput, Healthcheck, Image, ImageName, Import,
    LateInputs, MountSource, Op, Run, RunMount, RunShell, Setting, Stage, StageKind, StageOptions,
    Step,
};

use super::config::{Config, Docker, From, ImageConfig, ImportPoint, Keyed, Spanned, UserStage};
use super::git::{GitState, Resolved};
use super::parse::suggest;

type Result<T> = std::result::Result<T, Box<Diagnostic>>;

/// The user all user-stage commands run as (werf runs assembly instructions as root).
const RUN_USER: &str = "0:0";
/// The working directory of user-stage commands.
const RUN_WORKDIR: &str = "/";

/// Checks the images against each other and lowers them, in config order.
pub(crate) fn images(config: &Config, file_name: &str, git: &GitState) -> Result<Vec<Image>> {
    if config.images.is_empty() {
        return Err(Box::new(
            Diagnostic::new(format!("no images in {file_name}"), None)
                .help("add an image document, for example `image: app` with `from: alpine:3.20`"),
        ));
    }
    check_names(config)?;
    let parents = resolve_parents(config)?;
    check_cycles(config, &parents)?;
    let (imports, external) = resolve_imports(config)?;
    check_dependency_cycles(config, &parents, &imports)?;
    let mut images = config
        .images
        .iter()
        .zip(&parents)
        .zip(&imports)
        .enumerate()
        .map(|(i, ((image, parent), imports))| {
            let resolved = git.images.get(i).map(Vec::as_slice).unwrap_or_default();
            lower_image(image, *parent, imports, resolved, &git.service_env)
        })
        .collect::<Result<Vec<_>>>()?;
    images.extend(external.iter().map(|r| Image::external(r)));
    Ok(images)
}

/// The image index of each import and each dependency of each image (imports first), and the
/// images outside the config that imports copy from (werf v2: `from: nginx:1.25`, a reference
/// with a tag or digest), numbered after the config's images in first-use order.
fn resolve_imports(config: &Config) -> Result<(Vec<Vec<usize>>, Vec<String>)> {
    let known = || {
        let names: Vec<String> = config
            .images
            .iter()
            .map(|o| format!("`{}`", o.name))
            .collect();
        format!("the images of this config are {}", names.join(", "))
    };
    let mut external: Vec<String> = Vec::new();
    let mut out = Vec::with_capacity(config.images.len());
    for image in &config.images {
        let imports = image.imports.iter().map(|i| (&i.image, i.stage.as_ref()));
        let dependencies = image.dependencies.iter().map(|d| (&d.image, None));
        let mut indices = Vec::new();
        for (k, (wanted, stage)) in imports.chain(dependencies).enumerate() {
            if let Some(i) = config
                .images
                .iter()
                .position(|o| o.name.matches(&wanted.value))
            {
                indices.push(i);
                continue;
            }
            let is_import = k < image.imports.len();
            if !(is_import && tagged_or_digested(&wanted.value)) {
                return Err(Box::new(
                    Diagnostic::new(
                        format!("unknown image `{}`", wanted.value),
                        Some(wanted.span),
                    )
                    .help(known()),
                ));
            }
            if let Some(stage) = stage {
                return Err(Box::new(
                    Diagnostic::new(
                        format!(
                            "`{}` is an image outside the config: it has no stages",
                            wanted.value
                        ),
                        Some(stage.span),
                    )
                    .help("remove `stage`: the import copies from the image itself"),
                ));
            }
            let at = match external.iter().position(|e| *e == wanted.value) {
                Some(at) => at,
                None => {
                    external.push(wanted.value.clone());
                    external.len() - 1
                }
            };
            indices.push(config.images.len() + at);
        }
        out.push(indices);
    }
    Ok((out, external))
}

/// Whether `reference` names a tag or a digest (`nginx:1.25`, `nginx@sha256:...`,
/// `host:5000/app:1`), as werf's `hasTagOrDigest` decides that an import is external.
fn tagged_or_digested(reference: &str) -> bool {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    reference.contains('@') || last.contains(':')
}

/// Imports (with `fromImage` bases) that come back to an image cannot be built in any order.
fn check_dependency_cycles(
    config: &Config,
    parents: &[Option<usize>],
    imports: &[Vec<usize>],
) -> Result<()> {
    // Images outside the config (numbered after it) import nothing: no cycle passes them.
    let edges = |i: usize| {
        imports[i]
            .iter()
            .copied()
            .filter(|&j| j < config.images.len())
            .chain(parents[i])
            .collect::<Vec<_>>()
    };
    // Depth-first search with colours: 1 = on the current path, 2 = done.
    fn visit(
        i: usize,
        edges: &dyn Fn(usize) -> Vec<usize>,
        colour: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        colour[i] = 1;
        path.push(i);
        for next in edges(i) {
            if colour[next] == 1 {
                let pos = path.iter().position(|&p| p == next).unwrap_or(0);
                return Some(path[pos..].to_vec());
            }
            if colour[next] == 0
                && let Some(cycle) = visit(next, edges, colour, path)
            {
                return Some(cycle);
            }
        }
        path.pop();
        colour[i] = 2;
        None
    }
    let mut colour = vec![0u8; config.images.len()];
    for start in 0..config.images.len() {
        if colour[start] != 0 {
            continue;
        }
        if let Some(cycle) = visit(start, &edges, &mut colour, &mut Vec::new()) {
            let names: Vec<String> = cycle
                .iter()
                .chain(cycle.first())
                .map(|&i| config.images[i].name.to_string())
                .collect();
            let first = &config.images[cycle[0]];
            let span = first
                .imports
                .first()
                .map_or(first.from.span, |i| i.image.span);
            return Err(Box::new(
                Diagnostic::new(
                    format!(
                        "images depend on each other in a cycle: `{}`",
                        names.join(" -> ")
                    ),
                    Some(span),
                )
                .help("an image cannot import from an image that needs it first"),
            ));
        }
    }
    Ok(())
}

/// Replaces each `dockerfile:` image by its Dockerfile's target and appends the Dockerfile's
/// other stages (named `IMAGE-STAGE`), renumbering the plan indices inside them. Returns the
/// images planned with placeholders for values of images not in `load.built`, with those
/// images ([`strata_plan::Plan::waiting`]).
pub(crate) fn dockerfile_images(
    config: &Config,
    dir: &std::path::Path,
    load: &crate::LoadOptions<'_>,
    images: &mut Vec<Image>,
    sources: &mut strata_plan::SourceMap,
) -> Result<Vec<(usize, Vec<usize>)>> {
    let (snapshot, bases) = (load.snapshot.as_ref(), load.dockerfile_bases);
    let mut waiting = Vec::new();
    for (slot, image) in config.images.iter().enumerate() {
        let Some(d) = &image.dockerfile else { continue };
        let context = dir.join(d.context.as_ref().map_or(".", |c| c.value.as_str()));
        // A link in the repository (`backend -> /etc`) must not make the build machine's
        // files the context, nor its Dockerfile.
        in_project(dir, &context, "context", d.context.as_ref().map(|c| c.span))?;
        let path = context.join(&d.dockerfile.value);
        in_project(dir, &path, "dockerfile", Some(d.dockerfile.span))?;
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Box::new(Diagnostic::new(
                format!("cannot read the Dockerfile {}: {e}", path.display()),
                Some(d.dockerfile.span),
            ))
        })?;
        let file = sources.add(
            path.clone(),
            path.strip_prefix(dir)
                .unwrap_or(&path)
                .display()
                .to_string(),
            text.clone(),
        );
        let parsed = crate::dockerfile::parse(file, &text)?;
        let DependencyArgs {
            args: dependency_args,
            bases: dependency_bases,
            images: dependency_images,
            awaited,
        } = dependency_build_args(config, image, &load.built);
        if !awaited.is_empty() {
            waiting.push((slot, awaited));
        }
        let mut build_args = d.args.clone();
        build_args.extend(dependency_args);
        let options = crate::dockerfile::DockerfileOptions {
            context: context.clone(),
            target: d.target.as_ref().map(|t| t.value.clone()),
            build_args,
            tag: image.name.to_string(),
            // A config's steps stay confined, its Dockerfiles' included (werf has no
            // entitlements).
            allow_insecure: false,
            snapshot: snapshot.cloned(),
            ..Default::default()
        };
        // Its stages start from their bases' configs, as `strata build -f`'s.
        let options = match bases {
            Some(bases) => crate::dockerfile::with_base_configs(&parsed, &options, bases)?,
            None => options,
        };
        let plan = match crate::dockerfile::lower(&parsed, std::mem::take(sources), &options) {
            Ok(plan) => plan,
            Err((diagnostic, back)) => {
                *sources = back;
                return Err(diagnostic);
            }
        };
        *sources = plan.sources;
        let target = plan
            .images
            .iter()
            .position(|i| i.is_final)
            .unwrap_or(plan.images.len() - 1);
        let offset = images.len();
        let mut map = Vec::with_capacity(plan.images.len());
        let mut next = offset;
        for k in 0..plan.images.len() {
            if k == target {
                map.push(slot);
            } else {
                map.push(next);
                next += 1;
            }
        }
        for (k, mut sub) in plan.images.into_iter().enumerate() {
            renumber(&mut sub, &map);
            // `FROM ${ARG}` of a dependency's ImageName builds on that image of the config.
            if let Base::Reference { reference, span } = &sub.base
                && let Some((_, index)) = dependency_bases.iter().find(|(r, _)| r == reference)
            {
                sub.base = Base::Image {
                    index: *index,
                    span: *span,
                };
            }
            // The image's secrets and hosts are the whole Dockerfile build's, as werf passes
            // them to `docker build`.
            for stage in &mut sub.stages {
                stage.options.secrets = secret_sources(image);
                stage.options.add_hosts = image.add_hosts.clone();
            }
            if k == target {
                sub.name = image.name.clone();
                sub.is_final = image.is_final;
                // werf builds a Dockerfile image after its dependencies, whatever it takes.
                sub.dependencies.extend(&dependency_images);
                sub.dependencies.sort_unstable();
                sub.dependencies.dedup();
                images[slot] = sub;
            } else {
                sub.name = ImageName::Named(format!("{}-{}", image.name, sub.name));
                sub.is_final = false;
                images.push(sub);
            }
        }
    }
    Ok(waiting)
}

/// What a Dockerfile image's `dependencies` give its plan.
struct DependencyArgs {
    /// The build args (`targetBuildArg`, value).
    args: Vec<(String, String)>,
    /// Each dependency's name with the index of its image: a `FROM` of it is that image.
    /// Its `NAME:latest` is too, as strata names the images of a config.
    bases: Vec<(String, usize)>,
    /// The dependencies' images.
    images: Vec<usize>,
    /// Those not in `built`: their args hold placeholders.
    awaited: Vec<usize>,
}

/// The values of image `index` of the config: those `built` has, or placeholders (then the
/// image is pushed onto `awaited`).
pub(crate) fn image_values(
    name: &str,
    index: usize,
    built: &std::collections::BTreeMap<String, strata_plan::ImageValues>,
    awaited: &mut Vec<usize>,
) -> strata_plan::ImageValues {
    match built.get(name) {
        Some(values) => values.clone(),
        None => {
            if !awaited.contains(&index) {
                awaited.push(index);
            }
            strata_plan::ImageValues::placeholder(name)
        }
    }
}

/// A Dockerfile image's `dependencies` as build args (`targetBuildArg` = the value), with the
/// values of images already built taken from `built`.
fn dependency_build_args(
    config: &Config,
    image: &ImageConfig,
    built: &std::collections::BTreeMap<String, strata_plan::ImageValues>,
) -> DependencyArgs {
    let mut out = DependencyArgs {
        args: Vec::new(),
        bases: Vec::new(),
        images: Vec::new(),
        awaited: Vec::new(),
    };
    for dep in &image.dependencies {
        let Some(index) = config
            .images
            .iter()
            .position(|o| o.name.matches(&dep.image.value))
        else {
            continue;
        };
        let name = config.images[index].name.to_string();
        let values = image_values(&name, index, built, &mut out.awaited);
        for (kind, arg) in &dep.build_args {
            out.args.push((arg.value.clone(), values.value(kind.value)));
        }
        out.images.push(index);
        out.bases.push((values.name, index));
        out.bases.push((format!("{name}:latest"), index));
    }
    out
}

/// Rewrites every image index inside `image` through `map`.
fn renumber(image: &mut Image, map: &[usize]) {
    if let Base::Image { index, .. } = &mut image.base {
        *index = map[*index];
    }
    for d in &mut image.dependencies {
        *d = map[*d];
    }
    for stage in &mut image.stages {
        for step in &mut stage.steps {
            match &mut step.op {
                Op::Import(import) => import.image = map[import.image],
                Op::Run(run) => {
                    for m in &mut run.mounts {
                        if let MountSource::Bind { image: Some(i), .. } = &mut m.source {
                            *i = map[*i];
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// Two images with one name, or two nameless images, are an error at the second.
fn check_names(config: &Config) -> Result<()> {
    for (i, image) in config.images.iter().enumerate() {
        let Some(first) = config.images[..i].iter().find(|o| o.name == image.name) else {
            continue;
        };
        let message = match &image.name {
            ImageName::Named(n) => format!("image `{n}` is defined twice"),
            ImageName::Nameless => "more than one nameless image (`image: ~`)".to_string(),
        };
        return Err(Box::new(
            Diagnostic::new(message, Some(image.name_span))
                .note(first.name_span, "first defined here")
                .help("give each image its own name"),
        ));
    }
    Ok(())
}

/// The index of each image's `fromImage` base.
fn resolve_parents(config: &Config) -> Result<Vec<Option<usize>>> {
    config
        .images
        .iter()
        .enumerate()
        .map(|(this, image)| {
            let name = match &image.from.value {
                From::Image(name) => name,
                // werf v2: a `from` naming an image of this config builds on that image
                // (`updateDependencies` in werf's pkg/config/werf.go), else it is external;
                // `image: alpine` with `from: alpine` means the registry's.
                From::Reference(r) => {
                    return Ok(config
                        .images
                        .iter()
                        .position(|o| o.name.matches(r))
                        .filter(|i| *i != this));
                }
                From::Scratch => return Ok(None),
            };
            if let Some(i) = config.images.iter().position(|o| o.name.matches(name)) {
                return Ok(Some(i));
            }
            let known: Vec<String> = config.images.iter().map(|o| o.name.to_string()).collect();
            let known_refs: Vec<&str> = known.iter().map(String::as_str).collect();
            let list = known
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let help = match suggest(name, &known_refs) {
                Some(s) => format!("did you mean `{s}`? the images of this config are {list}"),
                None => format!("the images of this config are {list}"),
            };
            Err(Box::new(
                Diagnostic::new(
                    format!("unknown image `{name}` in `fromImage`"),
                    Some(image.from.span),
                )
                .help(help),
            ))
        })
        .collect()
}

/// A `fromImage` chain that comes back to an image is an error at the cycle's first image.
fn check_cycles(config: &Config, parents: &[Option<usize>]) -> Result<()> {
    for start in 0..parents.len() {
        let mut path = vec![start];
        let mut at = start;
        while let Some(next) = parents[at] {
            if let Some(pos) = path.iter().position(|&p| p == next) {
                let mut cycle = path[pos..].to_vec();
                // Start the cycle at the image written first.
                let first = cycle
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, i)| **i)
                    .map_or(0, |(k, _)| k);
                cycle.rotate_left(first);
                return Err(cycle_error(config, &cycle));
            }
            path.push(next);
            at = next;
        }
    }
    Ok(())
}

fn cycle_error(config: &Config, cycle: &[usize]) -> Box<Diagnostic> {
    let name = |i: usize| config.images[i].name.to_string();
    let shown = cycle
        .iter()
        .chain(cycle.first())
        .map(|&i| name(i))
        .collect::<Vec<_>>()
        .join(" -> ");
    let first = &config.images[cycle[0]];
    let mut d = Diagnostic::new(
        format!("`fromImage` forms a cycle: `{shown}`"),
        Some(first.from.span),
    )
    .label(format!(
        "`{}` is based on `{}`",
        name(cycle[0]),
        name(cycle[1 % cycle.len()])
    ));
    for (k, &i) in cycle.iter().enumerate().skip(1) {
        let base = cycle[(k + 1) % cycle.len()];
        d = d.note(
            config.images[i].from.span,
            format!("`{}` is based on `{}` here", name(i), name(base)),
        );
    }
    Box::new(d.help("an image cannot be built on itself; break the chain"))
}

fn lower_image(
    image: &ImageConfig,
    parent: Option<usize>,
    import_images: &[usize],
    git: &[Resolved],
    service_env: &[(String, String)],
) -> Result<Image> {
    let base = match (&image.from.value, parent) {
        (From::Scratch, _) => Base::Scratch,
        (From::Reference(_), Some(index)) => Base::Image {
            index,
            span: Some(image.from.span),
        },
        (From::Reference(r), None) => Base::Reference {
            reference: r.clone(),
            span: Some(image.from.span),
        },
        (From::Image(_), _) => Base::Image {
            index: parent.expect("resolve_parents gives every `fromImage` an index or fails"),
            span: Some(image.from.span),
        },
    };
    if image.is_artifact
        && let Some(key) = image.docker.key
    {
        return Err(Box::new(
            Diagnostic::new("an artifact has no `docker:` directives", Some(key))
                .help("artifacts only feed other images through `import`"),
        ));
    }
    // werf's stage order: from, beforeInstall, dependenciesBeforeInstall, gitArchive, install,
    // dependenciesAfterInstall, beforeSetup, dependenciesBeforeSetup, setup,
    // dependenciesAfterSetup, gitCache, gitLatestPatch, dockerInstructions.
    let mut stages = vec![from_stage(image)];
    for stage in UserStage::ALL {
        match stage {
            UserStage::Install => {
                stages.extend(imports_stage(
                    image,
                    import_images,
                    ImportPoint::BeforeInstall,
                ));
                if !git.is_empty() {
                    stages.push(git_archive_stage(image, git));
                }
            }
            UserStage::BeforeSetup => {
                stages.extend(imports_stage(
                    image,
                    import_images,
                    ImportPoint::AfterInstall,
                ));
            }
            UserStage::Setup => {
                stages.extend(imports_stage(
                    image,
                    import_images,
                    ImportPoint::BeforeSetup,
                ));
            }
            UserStage::BeforeInstall => {}
        }
        stages.extend(user_stage(image, stage, git));
    }
    stages.extend(imports_stage(image, import_images, ImportPoint::AfterSetup));
    if !git.is_empty() && !image.is_artifact && !image.disable_git_after_patch {
        let cache = (StageKind::GitCache, LateInputs::GitCache);
        stages.push(git_late_stage("gitCache", cache, git, image));
        let patch = (StageKind::GitLatestPatch, LateInputs::GitLatestPatch);
        stages.push(git_late_stage("gitLatestPatch", patch, git, image));
    }
    stages.extend(docker_stage(&image.docker));
    let mounts: Vec<RunMount> = image
        .mounts
        .iter()
        .map(|m| RunMount {
            to: m.to.value.clone(),
            source: m.source.value.clone(),
            context: None,
        })
        .collect();
    // A dependency's variables are set from its stage on.
    let mut dependency_env = Vec::new();
    for stage in &mut stages {
        let own = std::mem::take(&mut stage.options.dependency_env);
        stage.options.dependency_labels = own.iter().map(|d| d.image).collect();
        stage.options.dependency_labels.dedup();
        dependency_env.extend(own);
        stage.options.service_env = service_env.to_vec();
        stage.options.mounts = mounts.clone();
        stage.options.dependency_env = dependency_env.clone();
        stage.options.add_hosts = image.add_hosts.clone();
        stage.options.werf_labels = true;
    }
    let mut dependencies = import_images.to_vec();
    dependencies.sort_unstable();
    dependencies.dedup();
    Ok(Image {
        name: image.name.clone(),
        base,
        stages,
        is_final: image.is_final,
        git: git.iter().map(|r| r.mapping.clone()).collect(),
        dependencies,
        span: Some(image.name_span),
    })
}

/// A `dependencies*` stage: the imports and dependencies of one point. Its inputs are their
/// parameters and (late, once the source images exist) a checksum of the imported files and
/// the dependencies' values.
fn imports_stage(image: &ImageConfig, sources: &[usize], point: ImportPoint) -> Option<Stage> {
    let (import_images, dependency_images) = sources.split_at(image.imports.len());
    let mut inputs = Vec::new();
    let mut steps = Vec::new();
    for (import, &source) in image.imports.iter().zip(import_images) {
        if import.point.value != point {
            continue;
        }
        let op = Import {
            image: source,
            stage: import.stage.as_ref().map(|s| s.value.clone()),
            add: import.add.value.clone(),
            to: import.to.as_ref().unwrap_or(&import.add).value.clone(),
            include: import
                .include_paths
                .iter()
                .map(|m| m.value.clone())
                .collect(),
            exclude: import
                .exclude_paths
                .iter()
                .map(|m| m.value.clone())
                .collect(),
            owner: import.owner.as_ref().map(|o| o.value.clone()),
            group: import.group.as_ref().map(|g| g.value.clone()),
            mode: None,
            dest_parents: false,
            symbolic_mode: None,
            exclude_patterns: Vec::new(),
            parents_pattern: None,
        };
        inputs.push(DigestInput::Import {
            index: steps.len(),
            params: serde_json::json!({
                "image": import.image.value, "stage": op.stage, "add": op.add, "to": op.to, "include": op.include,
                "exclude": op.exclude, "owner": op.owner, "group": op.group,
            })
            .to_string(),
        });
        steps.push(Step {
            op: Op::Import(op),
            span: Some(import.span),
        });
    }
    let mut dependency_env = Vec::new();
    let dependencies = image
        .dependencies
        .iter()
        .zip(dependency_images)
        .filter(|(dep, _)| dep.point.as_ref().map(|p| p.value) == Some(point));
    for (index, (dep, &source)) in dependencies.enumerate() {
        inputs.push(DigestInput::Dependency {
            index,
            image: dep.image.value.clone(),
            imports: dep
                .imports
                .iter()
                .map(|(t, e)| format!("{:?}={}", t.value, e.value))
                .collect(),
        });
        // The values are set once the plan is made with the dependency built
        // ([`super::fill_dependency_values`]).
        dependency_env.extend(dep.imports.iter().map(|(t, e)| DependencyEnv {
            name: e.value.clone(),
            image: source,
            kind: t.value,
            value: String::new(),
        }));
    }
    if inputs.is_empty() {
        return None;
    }
    let span = steps
        .first()
        .and_then(|s| s.span)
        .or(image.dependencies.first().map(|d| d.span));
    Some(Stage {
        name: point.stage_name().into(),
        kind: StageKind::Imports,
        inputs,
        span,
        steps,
        options: StageOptions {
            dependency_env,
            ..StageOptions::default()
        },
        late_inputs: Some(LateInputs::Imports),
    })
}

/// `gitArchive`: every mapping's files as of its commit; its digest has the mappings'
/// parameters only, so a new commit does not rebuild it (the change is applied later).
fn git_archive_stage(image: &ImageConfig, git: &[Resolved]) -> Stage {
    let inputs = git
        .iter()
        .zip(&image.git)
        .enumerate()
        .map(|(mapping, (r, config))| DigestInput::GitMapping {
            mapping,
            params: super::git::params(&r.mapping, config),
        })
        .collect();
    let steps = (0..git.len())
        .map(|mapping| Step {
            op: Op::GitArchive { mapping },
            span: git[mapping].mapping.span,
        })
        .collect();
    Stage {
        name: "gitArchive".into(),
        kind: StageKind::GitArchive,
        inputs,
        steps,
        options: StageOptions::default(),
        late_inputs: None,
        span: image.git.first().map(|g| g.span),
    }
}

/// `gitCache` / `gitLatestPatch`: the change since the commit the previous stage recorded;
/// their inputs are known only once that stage exists.
fn git_late_stage(
    name: &str,
    (kind, late): (StageKind, LateInputs),
    git: &[Resolved],
    image: &ImageConfig,
) -> Stage {
    Stage {
        name: name.into(),
        kind,
        inputs: Vec::new(),
        steps: git_patches(git),
        options: StageOptions::default(),
        late_inputs: Some(late),
        span: image.git.first().map(|g| g.span),
    }
}

fn git_patches(git: &[Resolved]) -> Vec<Step> {
    (0..git.len())
        .map(|mapping| Step {
            op: Op::GitPatch { mapping },
            span: git[mapping].mapping.span,
        })
        .collect()
}

fn cache_version(key: &str, value: &Option<Keyed<String>>) -> Option<DigestInput> {
    value.as_ref().map(|v| DigestInput::CacheVersion {
        key: key.to_string(),
        value: v.value.clone(),
    })
}

/// `from`: the base (added by the solver), `cacheVersion`, `fromCacheVersion` and the mounts.
fn from_stage(image: &ImageConfig) -> Stage {
    let mounts = (!image.mounts.is_empty()).then(|| DigestInput::Setting {
        name: Setting::Mount,
        value: serde_json::Value::Array(
            image
                .mounts
                .iter()
                .map(|m| {
                    let from = match &m.source.value {
                        MountSource::TmpDir => "tmp_dir".to_string(),
                        MountSource::BuildDir => "build_dir".to_string(),
                        MountSource::Host(p) => format!("fromPath:{}", p.display()),
                        other => format!("{other:?}"),
                    };
                    serde_json::json!({ "from": from, "to": m.to.value })
                })
                .collect(),
        )
        .to_string(),
    });
    let inputs = [
        cache_version("cacheVersion", &image.cache_version),
        cache_version("fromCacheVersion", &image.from_cache_version),
        mounts,
    ];
    Stage {
        name: "from".into(),
        kind: StageKind::From,
        inputs: inputs.into_iter().flatten().collect(),
        steps: Vec::new(),
        options: StageOptions::default(),
        late_inputs: None,
        span: Some(image.from.key),
    }
}

/// A user stage: its commands (or ansible tasks), `shell.cacheVersion` (`ansible.cacheVersion`),
/// `<stage>CacheVersion` and, after `gitArchive`, the checksum of the git files its
/// `stageDependencies` masks match; `None` without commands. After `gitArchive` it first
/// brings the git files up to date.
fn user_stage(image: &ImageConfig, stage: UserStage, git: &[Resolved]) -> Option<Stage> {
    let (section, key, span, instructions, commands, shell) = if image.ansible.is_empty() {
        let settings = image.shell.stage(stage);
        let lines = settings.commands.iter().map(|c| c.value.clone()).collect();
        (
            &image.shell.cache_version,
            &settings.cache_version,
            settings.key,
            DigestInput::Instructions { lines },
            run_commands(&settings.commands, |c| c),
            RunShell::ToolboxScript,
        )
    } else {
        let settings = image.ansible.stage(stage);
        let tasks = settings
            .commands
            .iter()
            .map(|t| t.value.json.clone())
            .collect();
        (
            &image.ansible.cache_version,
            &settings.cache_version,
            settings.key,
            DigestInput::AnsibleTasks { tasks },
            run_commands(&settings.commands, |t| &t.yaml),
            RunShell::Ansible,
        )
    };
    if commands.is_empty() {
        return None;
    }
    let kind = if shell == RunShell::Ansible {
        "ansible"
    } else {
        "shell"
    };
    let mut inputs = vec![instructions];
    inputs.extend(cache_version(&format!("{kind}.cacheVersion"), section));
    inputs.extend(cache_version(stage.cache_version_key(), key));
    let after_archive = stage != UserStage::BeforeInstall;
    if after_archive {
        for (i, (resolved, config)) in git.iter().zip(&image.git).enumerate() {
            if let Some((_, masks)) = config.stage_dependencies.iter().find(|(s, _)| *s == stage) {
                inputs.push(super::git::mask_input(
                    i,
                    stage.name(),
                    &resolved.files,
                    masks,
                ));
            }
        }
    }
    let mut steps = if after_archive {
        git_patches(git)
    } else {
        Vec::new()
    };
    let run = Run {
        commands,
        shell,
        user: Some(RUN_USER.into()),
        workdir: Some(RUN_WORKDIR.into()),
        env: Vec::new(),
        // werf mounts each of the image's secrets at /run/secrets/ID for every user stage.
        mounts: image
            .secrets
            .iter()
            .map(|secret| RunMount {
                to: format!("/run/secrets/{}", secret.id),
                source: MountSource::Secret {
                    id: secret.id.clone(),
                    required: true,
                    env: None,
                },
                context: None,
            })
            .collect(),
        no_network: image.no_network.is_some(),
        insecure: false,
    };
    if image.no_network.is_some() {
        // The input a Dockerfile's `RUN --network=none` and `--network none` have too.
        inputs.push(DigestInput::Setting {
            name: Setting::Network,
            value: "none".into(),
        });
    }
    steps.push(Step {
        op: Op::Run(run),
        span,
    });
    Some(Stage {
        name: stage.name().into(),
        kind: StageKind::User,
        inputs,
        steps,
        options: StageOptions {
            secrets: secret_sources(image),
            ..StageOptions::default()
        },
        late_inputs: None,
        span,
    })
}

/// The commands of a `Run`: each instruction's text (`text` of it), at its list item.
fn run_commands<T>(items: &[Spanned<T>], text: impl Fn(&T) -> &String) -> Vec<Command> {
    items
        .iter()
        .map(|c| Command {
            text: text(&c.value).clone(),
            span: Some(c.span),
        })
        .collect()
}

/// The image's `secrets:` as the stage options offer them to its secret mounts.
fn secret_sources(image: &ImageConfig) -> Vec<(String, strata_plan::SecretSource)> {
    image
        .secrets
        .iter()
        .map(|s| (s.id.clone(), s.source.clone()))
        .collect()
}

/// `dockerInstructions`: one input per directive, in werf's fixed order, and one config change.
fn docker_stage(docker: &Docker) -> Option<Stage> {
    if docker.is_empty() {
        return None;
    }
    let mut inputs = Vec::new();
    let mut add = |directive: &str, value: Option<String>| {
        if let Some(value) = value {
            inputs.push(DigestInput::Directive {
                directive: directive.into(),
                value,
            });
        }
    };
    let v = |k: &Option<Keyed<Vec<String>>>| k.as_ref().map(|k| json_list(&k.value));
    let m = |k: &Option<Keyed<Vec<(String, String)>>>| k.as_ref().map(|k| json_map(&k.value));
    let s = |k: &Option<Keyed<String>>| k.as_ref().map(|k| json_string(&k.value));
    add("VOLUME", v(&docker.volume));
    add("EXPOSE", v(&docker.expose));
    add("ENV", m(&docker.env));
    add("LABEL", m(&docker.label));
    add("ENTRYPOINT", v(&docker.entrypoint));
    add("CMD", v(&docker.cmd));
    add("WORKDIR", s(&docker.workdir));
    add("USER", s(&docker.user));
    add(
        "HEALTHCHECK",
        docker
            .healthcheck
            .as_ref()
            .map(|h| json_healthcheck(&h.value)),
    );
    let change = ConfigChange {
        env: value(&docker.env).unwrap_or_default(),
        labels: value(&docker.label).unwrap_or_default(),
        expose: value(&docker.expose).unwrap_or_default(),
        volumes: value(&docker.volume).unwrap_or_default(),
        workdir: value(&docker.workdir),
        user: value(&docker.user),
        entrypoint: value(&docker.entrypoint),
        cmd: value(&docker.cmd),
        // werf's `docker.CMD` leaves it, as `docker commit --change` does on Linux.
        args_escaped: false,
        healthcheck: docker.healthcheck.as_ref().map(|h| h.value.clone()),
        stop_signal: None,
        onbuild: Vec::new(),
        shell: None,
        author: None,
        remove: Default::default(),
        image_spec: false,
    };
    Some(Stage {
        name: "dockerInstructions".into(),
        kind: StageKind::DockerInstructions,
        inputs,
        steps: vec![Step {
            op: Op::Config(change),
            span: docker.key,
        }],
        options: StageOptions::default(),
        late_inputs: None,
        span: docker.key,
    })
}

fn value<T: Clone>(k: &Option<Keyed<T>>) -> Option<T> {
    k.as_ref().map(|k| k.value.clone())
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serializes")
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).expect("a list of strings always serializes")
}

/// A JSON object in written order (serde_json's map would sort the keys).
fn json_map(pairs: &[(String, String)]) -> String {
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}:{}", json_string(k), json_string(v)))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn json_healthcheck(h: &Healthcheck) -> String {
    format!(
        r#"{{"test":{},"interval":{},"timeout":{},"startPeriod":{},"retries":{}}}"#,
        json_list(&h.test),
        h.interval,
        h.timeout,
        h.start_period,
        h.retries
    )
}

/// Fails when `path` (below the project `dir`) resolves, links followed, to outside it.
fn in_project(
    dir: &std::path::Path,
    path: &std::path::Path,
    key: &str,
    span: Option<strata_plan::Span>,
) -> Result<()> {
    if let (Ok(real), Ok(project)) = (path.canonicalize(), dir.canonicalize())
        && !real.starts_with(&project)
    {
        return Err(Box::new(
            Diagnostic::new(
                format!(
                    "the {key} `{}` leads out of the project directory (to {})",
                    path.strip_prefix(dir).unwrap_or(path).display(),
                    real.display()
                ),
                span,
            )
            .help(format!("point `{key}` at a path inside the project")),
        ));
    }
    Ok(())
}

/// werf's `imageSpec` stage, last of an image: the image's own `imageSpec` with the meta
/// `build.imageSpec` merged into it as werf merges them (its author and labels win, the
/// removals of both come first), one config change with werf's semantics
/// ([`ConfigChange::image_spec`]); labels' `%project%` and `%image%` are the names given. The
/// digest input is each change as JSON. `None` without either; an error for a `/REGEX/`
/// removal that is no regular expression.
pub(crate) fn image_spec_stage(
    global: Option<&Keyed<ConfigChange>>,
    own: Option<&Keyed<ConfigChange>>,
    (project, image): (&str, &str),
) -> Result<Option<Stage>> {
    // werf's label templates (`%project%`, `%image%` in keys and values), in the digest as
    // expanded: two images' labels differ.
    let expand = |text: &str| text.replace("%project%", project).replace("%image%", image);
    let specs: Vec<(Setting, Keyed<ConfigChange>)> = [
        (Setting::ImageSpec, own),
        (Setting::GlobalImageSpec, global),
    ]
    .into_iter()
    .filter_map(|(key, spec)| spec.map(|s| (key, s.clone())))
    .map(|(key, mut spec)| {
        spec.value.image_spec = true;
        for (k, v) in &mut spec.value.labels {
            (*k, *v) = (expand(k), expand(v));
        }
        (key, spec)
    })
    .collect();
    for (_, spec) in &specs {
        let remove = &spec.value.remove;
        for pattern in remove.env.iter().chain(&remove.labels) {
            if let Some(expr) = pattern.strip_prefix('/').and_then(|p| p.strip_suffix('/')) {
                regex::Regex::new(&format!("^(?:{expr})$")).map_err(|e| {
                    Box::new(Diagnostic::new(
                        format!("`{pattern}` in `imageSpec` is not a regular expression: {e}"),
                        Some(spec.key),
                    ))
                })?;
            }
        }
    }
    let span = specs.last().map(|(_, s)| s.key);
    if specs.is_empty() {
        return Ok(None);
    }
    // One change, as werf merges the meta's into the image's (`mergeImageSpec`): the removals
    // of both come before the labels of either are set.
    let mut merged = specs[0].1.value.clone();
    if let [_, (_, meta)] = specs.as_slice() {
        let meta = &meta.value;
        if meta.author.is_some() {
            merged.author.clone_from(&meta.author);
        }
        merged.remove.history |= meta.remove.history;
        for (k, v) in &meta.labels {
            match merged.labels.iter_mut().find(|(key, _)| key == k) {
                Some(label) => label.1.clone_from(v),
                None => merged.labels.push((k.clone(), v.clone())),
            }
        }
        for pattern in &meta.remove.labels {
            if !merged.remove.labels.contains(pattern) {
                merged.remove.labels.push(pattern.clone());
            }
        }
    }
    Ok(Some(Stage {
        name: "imageSpec".into(),
        kind: StageKind::ImageSpec,
        inputs: specs
            .iter()
            .map(|(name, spec)| DigestInput::Setting {
                name: *name,
                value: serde_json::to_string(&spec.value)
                    .expect("a config change serializes: its maps have string keys"),
            })
            .collect(),
        steps: vec![Step {
            op: Op::Config(merged),
            span,
        }],
        options: StageOptions::default(),
        late_inputs: None,
        span,
    }))
}
