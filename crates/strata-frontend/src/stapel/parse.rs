//! Pass 2: the YAML trees to the typed [`Config`], checking every key and type.
//!
//! Every key is accounted for: a known key is decoded, a key werf has but strata does not
//! implement yet is an error at that key ("`git` is not supported by strata yet"), and any other
//! key is an error with a "did you mean" hint. Nothing is silently ignored, because an ignored
//! key would silently change what gets built.

use strata_plan::{Diagnostic, ImageName, Span};

use super::config::{
    Config, DependencyConfig, Docker, DockerfileImage, From, GitConfig, GitRef, ImageConfig,
    ImportConfig, ImportPoint, Keyed, MountConfig, Shell, Spanned, UserStage,
};
use super::docker;
use super::yaml::{Document, Kind, Node};

type Result<T> = std::result::Result<T, Box<Diagnostic>>;

/// Keys of the meta document.
const META_KEYS: &[&str] = &[
    "project",
    "configVersion",
    "build",
    "deploy",
    "cleanup",
    "gitWorktree",
];
/// werf meta keys strata does not implement yet.
const META_UNSUPPORTED: &[&str] = &[];
/// Meta keys of werf's deploy command and of how werf treats the project's own clone: nothing
/// in them changes what an image holds, so they are accepted and left to werf.
const META_IGNORED: &[&str] = &["deploy", "gitWorktree"];
/// Keys of the meta `build:`.
const BUILD_KEYS: &[&str] = &["cacheVersion", "platform", "staged", "imageSpec"];
/// Keys of an image document.
const IMAGE_KEYS: &[&str] = &[
    "image",
    "from",
    "fromImage",
    "fromCacheVersion",
    "cacheVersion",
    "final",
    "shell",
    "docker",
    "git",
    "import",
    "mount",
    "artifact",
    "dependencies",
    "dockerfile",
    "context",
    "target",
    "args",
    "fromArtifact",
    "fromLatest",
    "disableGitAfterPatch",
    "network",
    "platform",
    "staged",
    "contextAddFiles",
    "imageSpec",
];
/// werf image keys strata does not implement yet.
const IMAGE_UNSUPPORTED: &[&str] = &["ansible", "addHost", "ssh", "secrets"];
/// Keys of `imageSpec:`.
const IMAGE_SPEC_KEYS: &[&str] = &["author", "clearHistory", "config"];
/// Keys of `imageSpec.config:`.
const IMAGE_SPEC_CONFIG_KEYS: &[&str] = &[
    "cmd",
    "entrypoint",
    "env",
    "expose",
    "healthcheck",
    "labels",
    "stopSignal",
    "user",
    "volumes",
    "workingDir",
    "removeEnv",
    "removeLabels",
    "removeVolumes",
    "keepEssentialWerfLabels",
    "clearCmd",
    "clearEntrypoint",
    "clearUser",
    "clearWorkingDir",
];
/// Keys of `imageSpec.config.healthcheck:`.
const HEALTHCHECK_KEYS: &[&str] = &["test", "interval", "timeout", "startPeriod", "retries"];
/// Keys of a `git:` entry.
const GIT_KEYS: &[&str] = &[
    "add",
    "to",
    "url",
    "branch",
    "tag",
    "commit",
    "owner",
    "group",
    "includePaths",
    "excludePaths",
    "stageDependencies",
];
/// Keys of an `import:` entry.
const IMPORT_KEYS: &[&str] = &[
    "from",
    "image",
    "stage",
    "artifact",
    "add",
    "to",
    "includePaths",
    "excludePaths",
    "owner",
    "group",
    "before",
    "after",
];
/// Keys of a `dependencies:` entry.
const DEPENDENCY_KEYS: &[&str] = &["image", "before", "after", "imports"];
/// Keys of an entry of a dependency's `imports:`.
const DEPENDENCY_IMPORT_KEYS: &[&str] = &["type", "targetEnv"];
/// Keys of a `mount:` entry.
const MOUNT_KEYS: &[&str] = &["from", "fromPath", "to"];
/// Keys of `stageDependencies:` (beforeInstall runs before the sources are there).
const STAGE_DEPENDENCY_KEYS: &[&str] = &["install", "beforeSetup", "setup"];
/// Keys of `shell:`.
const SHELL_KEYS: &[&str] = &[
    "beforeInstall",
    "install",
    "beforeSetup",
    "setup",
    "cacheVersion",
    "beforeInstallCacheVersion",
    "installCacheVersion",
    "beforeSetupCacheVersion",
    "setupCacheVersion",
];
/// Keys of `docker:`.
const DOCKER_KEYS: &[&str] = &[
    "exactValues",
    "VOLUME",
    "EXPOSE",
    "ENV",
    "LABEL",
    "ENTRYPOINT",
    "CMD",
    "WORKDIR",
    "USER",
    "HEALTHCHECK",
];

/// Turns the documents of one file into a [`Config`].
pub(crate) fn config(docs: &[Document]) -> Result<Config> {
    let mut config = Config::default();
    let mut meta_seen: Option<Span> = None;
    let mut first = true;
    for doc in docs {
        let Some(root) = doc.root.as_ref().filter(|r| !r.is_null()) else {
            continue;
        };
        let Kind::Map(pairs) = &root.kind else {
            return Err(Box::new(
                Diagnostic::new(
                    format!(
                        "expected a mapping of keys for a document, found {}",
                        root.type_name()
                    ),
                    Some(root.span),
                )
                .help("an image document looks like `image: app` and `from: alpine:3.20`"),
            ));
        };
        let has = |k: &str| pairs.iter().any(|(key, _)| key.as_str() == Some(k));
        if has("image") || has("artifact") {
            // A document with an error stops only builds that need its image (see
            // `Config::broken`); the others build.
            match image(root, doc.start) {
                Ok(image) => config.images.push(image),
                Err(error) => {
                    let name = pairs
                        .iter()
                        .find(|(k, _)| matches!(k.as_str(), Some("image" | "artifact")))
                        .map(|(_, v)| match v.as_str() {
                            Some(n) if !v.is_null() => ImageName::Named(n.to_string()),
                            _ => ImageName::Nameless,
                        })
                        .unwrap_or(ImageName::Nameless);
                    config.broken.push((name, error));
                }
            }
        } else if META_KEYS.iter().chain(META_UNSUPPORTED).any(|k| has(k)) {
            let at = pairs.first().map_or(root.span, |(k, _)| k.span);
            if let Some(earlier) = meta_seen {
                return Err(Box::new(
                    Diagnostic::new("more than one meta document", Some(at))
                        .note(earlier, "the first meta document is here"),
                ));
            }
            if !first {
                return Err(Box::new(
                    Diagnostic::new(
                        "the meta document (`project:`) must be the first document",
                        Some(at),
                    )
                    .help("move it to the top of the file"),
                ));
            }
            meta_seen = Some(at);
            meta(root, &mut config)?;
        } else {
            let at = pairs.first().map_or(root.span, |(k, _)| k.span);
            return Err(Box::new(
                Diagnostic::new("this document has no `image:` key", Some(at)).help(
                    "start an image document with `image: NAME` (or `image: ~` for the \
                     nameless image); the meta document has `project:`",
                ),
            ));
        }
        first = false;
    }
    Ok(config)
}

fn meta(root: &Node, config: &mut Config) -> Result<()> {
    let section = Section {
        path: "",
        context: "the meta document",
        valid: META_KEYS,
        unsupported: META_UNSUPPORTED,
        nested: &[],
    };
    for e in entries(root, &section)? {
        match e.name {
            "project" => {
                let name = string(e.value, "project")?;
                config.project = Some(Spanned {
                    value: name.to_string(),
                    span: e.value.span,
                });
            }
            "configVersion" => {
                let version = e
                    .value
                    .as_scalar_text()
                    .ok_or_else(|| expected(e.value, "`1`", "configVersion"))?;
                if version != "1" {
                    return Err(Box::new(
                        Diagnostic::new(
                            format!("unsupported `configVersion: {version}`"),
                            Some(e.value.span),
                        )
                        .label("only version 1 is supported")
                        .help("write `configVersion: 1`"),
                    ));
                }
                config.config_version = Some(Spanned {
                    value: 1,
                    span: e.value.span,
                });
            }
            "build" => build_section(&e, config)?,
            "cleanup" => config.cleanup = Some(super::cleanup::parse(&e)?),
            name if META_IGNORED.contains(&name) => config.notes.push(format!(
                "`{name}` is for werf's deploy command; strata builds images only and \
                 leaves it to werf"
            )),
            _ => unreachable_key(e.key)?,
        }
    }
    Ok(())
}

/// The meta `build:`: `cacheVersion` for every image, the platform, `staged`.
fn build_section(e: &Entry<'_>, config: &mut Config) -> Result<()> {
    if e.value.is_null() {
        return Ok(());
    }
    let section = Section {
        path: "build",
        context: "`build`",
        valid: BUILD_KEYS,
        unsupported: &[],
        nested: &[],
    };
    for b in entries_of(e, &section)? {
        match b.name {
            "imageSpec" => config.image_spec = Some(image_spec(&b, "build.imageSpec")?),
            "cacheVersion" => config.cache_version = version(&b, "build.cacheVersion")?,
            "platform" => platform(b.value, "build.platform")?,
            // strata caches every Dockerfile instruction as its own stage: what `staged` asks.
            "staged" => {
                boolean(b.value, "build.staged")?;
            }
            _ => unreachable_key(b.key)?,
        }
    }
    Ok(())
}

/// `platform:` (a list, or one string): strata builds for the machine it runs on, so the
/// list may only name that platform.
fn platform(value: &Node, path: &str) -> Result<()> {
    let host = host_platform();
    for p in masks_of(value, path)? {
        if p.value != host && !(host == "linux/amd64" && p.value == "linux/amd64/v1") {
            return Err(Box::new(
                Diagnostic::new(
                    format!(
                        "strata builds for this machine's platform only ({host}), not `{}`",
                        p.value
                    ),
                    Some(p.span),
                )
                .help(format!(
                    "remove `{}`, or build it on a {} machine",
                    p.value, p.value
                )),
            ));
        }
    }
    Ok(())
}

/// The OCI platform of this machine, as werf writes platforms.
fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    format!("linux/{arch}")
}

fn image(root: &Node, document: Span) -> Result<ImageConfig> {
    let section = Section {
        path: "",
        context: "an image document",
        valid: IMAGE_KEYS,
        unsupported: IMAGE_UNSUPPORTED,
        nested: &[("shell", SHELL_KEYS), ("docker", DOCKER_KEYS)],
    };
    let mut name = None;
    let mut from: Option<Keyed<From>> = None;
    let mut cache_version = None;
    let mut from_cache_version = None;
    let mut is_final = true;
    let mut shell = Shell::default();
    let mut docker_section = Docker::default();
    let mut git = Vec::new();
    let mut imports = Vec::new();
    let mut mounts = Vec::new();
    let mut dependencies = Vec::new();
    let mut is_artifact = false;
    let mut disable_git_after_patch = false;
    let mut image_spec_section = None;
    let mut network = None;
    let (mut dockerfile, mut context, mut target, mut args) = (None, None, None, Vec::new());
    for e in entries(root, &section)? {
        match e.name {
            "artifact" => {
                let n = string(e.value, "artifact")?;
                if n.is_empty() {
                    return Err(Box::new(Diagnostic::new(
                        "an artifact needs a name",
                        Some(e.value.span),
                    )));
                }
                if name.is_some() {
                    return Err(Box::new(Diagnostic::new(
                        "a document is either an `image` or an `artifact`, not both",
                        Some(e.key.span),
                    )));
                }
                is_artifact = true;
                is_final = false;
                name = Some((ImageName::Named(n.to_string()), e.value.span));
            }
            "image" => {
                if is_artifact {
                    return Err(Box::new(Diagnostic::new(
                        "a document is either an `image` or an `artifact`, not both",
                        Some(e.key.span),
                    )));
                }
                name = Some(if e.value.is_null() {
                    // `image:` with nothing after it: point at the key.
                    let span = if e.value.span.start == e.value.span.end {
                        e.key.span
                    } else {
                        e.value.span
                    };
                    (ImageName::Nameless, span)
                } else {
                    let n = string(e.value, "image")?;
                    if n.is_empty() || n == "~" {
                        return Err(Box::new(
                            Diagnostic::new("an image name cannot be empty", Some(e.value.span))
                                .help("write `image: ~` (unquoted) for the nameless image"),
                        ));
                    }
                    (ImageName::Named(n.to_string()), e.value.span)
                });
            }
            "from" | "fromImage" | "fromArtifact" => {
                let text = string(e.value, e.name)?;
                if let Some(other) = &from {
                    let first = if matches!(other.value, From::Image(_)) {
                        "fromImage"
                    } else {
                        "from"
                    };
                    return Err(Box::new(
                        Diagnostic::new(
                            "an image takes one of `from`, `fromImage` and `fromArtifact`",
                            Some(e.key.span),
                        )
                        .note(other.key, format!("`{first}` is already given here"))
                        .help("remove one of them"),
                    ));
                }
                if text.is_empty() || text.contains(char::is_whitespace) {
                    let what = if e.name == "from" {
                        "an image reference like `alpine:3.20` or `scratch`"
                    } else {
                        "the name of another image of this config"
                    };
                    return Err(Box::new(Diagnostic::new(
                        format!("`{}` must be {what}", e.name),
                        Some(e.value.span),
                    )));
                }
                let value = match (e.name, text) {
                    ("fromImage" | "fromArtifact", n) => From::Image(n.to_string()),
                    (_, "scratch") => From::Scratch,
                    (_, r) => From::Reference(r.to_string()),
                };
                from = Some(Keyed {
                    value,
                    key: e.key.span,
                    span: e.value.span,
                });
            }
            "cacheVersion" => cache_version = version(&e, "cacheVersion")?,
            "fromCacheVersion" => from_cache_version = version(&e, "fromCacheVersion")?,
            "final" => is_final = boolean(e.value, "final")?,
            "shell" => shell = shell_section(&e)?,
            "docker" => docker_section = docker_directives(&e)?,
            "git" => git = git_mappings(e.value)?,
            "import" => imports = import_entries(e.value)?,
            "mount" => mounts = mount_entries(e.value)?,
            "dependencies" => dependencies = dependency_entries(e.value)?,
            "dockerfile" | "context" | "target" => {
                let v = Spanned {
                    value: scalar(e.value, e.name)?.to_string(),
                    span: e.value.span,
                };
                match e.name {
                    "dockerfile" => dockerfile = Some(project_relative(v, "dockerfile")?),
                    "context" => context = Some(project_relative(v, "context")?),
                    _ => target = Some(v),
                }
            }
            "args" => args = scalar_map(e.value, "args")?,
            "imageSpec" => image_spec_section = Some(image_spec(&e, "imageSpec")?),
            "disableGitAfterPatch" => {
                disable_git_after_patch = boolean(e.value, "disableGitAfterPatch")?
            }
            // strata resolves the base by its reference on every build already (a moved tag
            // is a new base digest, and so a rebuild): what `fromLatest` asks of werf.
            "fromLatest" => {
                boolean(e.value, "fromLatest")?;
            }
            "network" => {
                let text = scalar(e.value, "network")?;
                network = match text {
                    "" | "default" | "host" => None,
                    "none" => Some(e.value.span),
                    other => {
                        return Err(Box::new(
                            Diagnostic::new(
                                format!("unknown network `{other}`"),
                                Some(e.value.span),
                            )
                            .help("use `default`, `host` or `none`"),
                        ));
                    }
                };
            }
            "platform" => platform(e.value, "platform")?,
            // strata caches every Dockerfile instruction as its own stage: what `staged` asks.
            "staged" => {
                boolean(e.value, "staged")?;
            }
            // The context is read from the work tree, untracked files included, so the files
            // `contextAddFiles` names are in it already.
            "contextAddFiles" => {
                masks(e.value, "contextAddFiles")?;
            }
            _ => unreachable_key(e.key)?,
        }
    }
    let (name, name_span) = name.ok_or_else(|| {
        // `artifact:` documents are rejected by `entries`, so `image:` is always there.
        Box::new(Diagnostic::new(
            "this document has no `image:` key",
            Some(document),
        ))
    })?;
    let dockerfile = match dockerfile {
        Some(dockerfile) => {
            if let Some(f) = &from {
                return Err(Box::new(
                    Diagnostic::new("an image built from a Dockerfile takes its base from the Dockerfile's FROM", Some(f.key))
                        .help("remove `from`/`fromImage`, or remove `dockerfile`"),
                ));
            }
            if shell.stages.iter().any(|s| !s.commands.is_empty())
                || !git.is_empty()
                || !imports.is_empty()
            {
                return Err(Box::new(Diagnostic::new(
                    "an image built from a Dockerfile has no `shell`, `git` or `import`: the Dockerfile says how to build it",
                    Some(dockerfile.span),
                )));
            }
            Some(DockerfileImage {
                dockerfile,
                context,
                target,
                args,
            })
        }
        None => {
            if let Some(key) = context.as_ref().or(target.as_ref()).map(|k| k.span) {
                return Err(Box::new(Diagnostic::new(
                    "`context`, `target` and `args` go with `dockerfile`",
                    Some(key),
                )));
            }
            None
        }
    };
    let from = match (from, &dockerfile) {
        (Some(from), _) => from,
        // The Dockerfile names its base; `from` is only a placeholder here.
        (None, Some(d)) => Keyed {
            value: From::Scratch,
            key: d.dockerfile.span,
            span: d.dockerfile.span,
        },
        (None, None) => {
            return Err(Box::new(
                Diagnostic::new(
                    format!("image `{name}` needs `from` or `fromImage`"),
                    Some(name_span),
                )
                .help("add `from: IMAGE` (for example `from: alpine:3.20`) or `fromImage: OTHER`"),
            ));
        }
    };
    Ok(ImageConfig {
        name,
        name_span,
        from,
        document,
        cache_version,
        from_cache_version,
        is_final,
        shell,
        docker: docker_section,
        git,
        imports,
        mounts,
        dependencies,
        is_artifact,
        dockerfile,
        disable_git_after_patch,
        no_network: network,
        image_spec: image_spec_section,
    })
}

/// werf's `imageSpec:` as the config change of the `imageSpec` stage.
fn image_spec(e: &Entry<'_>, path: &str) -> Result<Keyed<strata_plan::ConfigChange>> {
    let mut change = strata_plan::ConfigChange::default();
    let section = Section {
        path,
        context: "`imageSpec`",
        valid: IMAGE_SPEC_KEYS,
        unsupported: &["clearHistory"],
        nested: &[("config", IMAGE_SPEC_CONFIG_KEYS)],
    };
    if !e.value.is_null() {
        for s in entries_of(e, &section)? {
            match s.name {
                "author" => {
                    change.author = Some(scalar(s.value, &format!("{path}.author"))?.to_string())
                }
                "config" if s.value.is_null() => {}
                "config" => image_spec_config(&s, &format!("{path}.config"), &mut change)?,
                _ => unreachable_key(s.key)?,
            }
        }
    }
    Ok(keyed(change, e))
}

fn image_spec_config(
    e: &Entry<'_>,
    path: &str,
    change: &mut strata_plan::ConfigChange,
) -> Result<()> {
    let section = Section {
        path,
        context: "`imageSpec.config`",
        valid: IMAGE_SPEC_CONFIG_KEYS,
        unsupported: &[],
        nested: &[],
    };
    let mut keep_werf_labels = false;
    for c in entries_of(e, &section)? {
        let at = format!("{path}.{}", c.name);
        let text = || -> Result<String> { Ok(scalar(c.value, &at)?.to_string()) };
        let flag = || boolean(c.value, &at);
        match c.name {
            "cmd" => change.cmd = Some(argv(c.value, &at)?),
            "entrypoint" => change.entrypoint = Some(argv(c.value, &at)?),
            "env" => change.env = scalar_map(c.value, &at)?,
            "labels" => change.labels = scalar_map(c.value, &at)?,
            "expose" => change.expose = scalar_list(c.value, &at)?,
            "volumes" => change.volumes = scalar_list(c.value, &at)?,
            "stopSignal" => change.stop_signal = Some(text()?),
            "user" => change.user = Some(text()?),
            "workingDir" => change.workdir = Some(text()?),
            "removeEnv" => change.remove.env = scalar_list(c.value, &at)?,
            "removeLabels" => change.remove.labels = scalar_list(c.value, &at)?,
            "removeVolumes" => change.remove.volumes = scalar_list(c.value, &at)?,
            "keepEssentialWerfLabels" => keep_werf_labels = flag()?,
            "clearCmd" => change.remove.cmd = flag()?,
            "clearEntrypoint" => change.remove.entrypoint = flag()?,
            "clearUser" => change.remove.user = flag()?,
            "clearWorkingDir" => change.remove.workdir = flag()?,
            "healthcheck" => change.healthcheck = Some(image_spec_healthcheck(&c, &at)?),
            _ => unreachable_key(c.key)?,
        }
    }
    if keep_werf_labels {
        change.remove.labels.retain(|l| l != "werf");
    }
    Ok(())
}

/// `healthcheck:` of `imageSpec.config`: `test` as Docker's, intervals in seconds.
fn image_spec_healthcheck(e: &Entry<'_>, path: &str) -> Result<strata_plan::Healthcheck> {
    let section = Section {
        path,
        context: "`imageSpec.config.healthcheck`",
        valid: HEALTHCHECK_KEYS,
        unsupported: &[],
        nested: &[],
    };
    let mut check = strata_plan::Healthcheck::default();
    for h in entries_of(e, &section)? {
        let at = format!("{path}.{}", h.name);
        let number = || -> Result<u64> {
            scalar(h.value, &at)?
                .parse()
                .map_err(|_| expected(h.value, "a whole number", &at))
        };
        match h.name {
            "test" => check.test = scalar_list(h.value, &at)?,
            "interval" => check.interval = number()? * 1_000_000_000,
            "timeout" => check.timeout = number()? * 1_000_000_000,
            "startPeriod" => check.start_period = number()? * 1_000_000_000,
            "retries" => {
                check.retries = u32::try_from(number()?)
                    .map_err(|_| expected(h.value, "a small number", &at))?
            }
            _ => unreachable_key(h.key)?,
        }
    }
    Ok(check)
}

/// `import:`: files from other images.
fn import_entries(value: &Node) -> Result<Vec<ImportConfig>> {
    let items = list_items(value, "import")?;
    let section = Section {
        path: "import",
        context: "an `import` entry",
        valid: IMPORT_KEYS,
        unsupported: &[],
        nested: &[],
    };
    let mut out = Vec::new();
    for item in items {
        let (mut image, mut add, mut to, mut owner, mut group, mut point) =
            (None, None, None, None, None, None);
        let mut stage = None;
        let (mut include_paths, mut exclude_paths) = (Vec::new(), Vec::new());
        for e in entries(item, &section)? {
            let path = format!("import.{}", e.name);
            let spanned = |e: &Entry<'_>| -> Result<Spanned<String>> {
                Ok(Spanned {
                    value: scalar(e.value, &path)?.to_string(),
                    span: e.value.span,
                })
            };
            match e.name {
                "from" | "image" | "artifact" => {
                    if image.is_some() {
                        return Err(Box::new(Diagnostic::new(
                            "an import takes one of `from`, `image` and `artifact`",
                            Some(e.key.span),
                        )));
                    }
                    image = Some(spanned(&e)?);
                }
                "stage" => stage = Some(spanned(&e)?),
                "add" => add = Some(inside(absolute(spanned(&e)?, "add")?, "add")?),
                "to" => to = Some(inside(absolute(spanned(&e)?, "to")?, "to")?),
                "owner" => owner = Some(spanned(&e)?),
                "group" => group = Some(spanned(&e)?),
                "includePaths" => include_paths = masks(e.value, &path)?,
                "excludePaths" => exclude_paths = masks(e.value, &path)?,
                "before" | "after" => {
                    if let Some(first) = &point {
                        let first: &Spanned<ImportPoint> = first;
                        return Err(Box::new(
                            Diagnostic::new(
                                "an import takes exactly one of `before` and `after`",
                                Some(e.key.span),
                            )
                            .note(first.span, "already given here"),
                        ));
                    }
                    point = Some(stage_point(&e, &path)?);
                }
                _ => unreachable_key(e.key)?,
            }
        }
        let missing = |what: &str, help: &str| {
            Box::new(
                Diagnostic::new(format!("an import needs `{what}`"), Some(item.span))
                    .help(help.to_string()),
            )
        };
        let image =
            image.ok_or_else(|| missing("image", "add `image: NAME` (or `artifact: NAME`)"))?;
        let add = add.ok_or_else(|| missing("add", "add `add: /path/in/that/image`"))?;
        let point = point.ok_or_else(|| {
            missing(
                "before` or `after",
                "add `after: install` (or before/after install/setup)",
            )
        })?;
        if add.value.trim_end_matches('/').is_empty() && include_paths.is_empty() {
            return Err(Box::new(
                Diagnostic::new("importing `/` would copy a whole image", Some(add.span))
                    .help("import a directory, or list what to take in `includePaths`"),
            ));
        }
        out.push(ImportConfig {
            stage,
            span: item.span,
            image,
            add,
            to,
            include_paths,
            exclude_paths,
            owner,
            group,
            point,
        });
    }
    Ok(out)
}

/// `mount:`: directories mounted into build containers.
fn mount_entries(value: &Node) -> Result<Vec<MountConfig>> {
    let items = list_items(value, "mount")?;
    let section = Section {
        path: "mount",
        context: "a `mount` entry",
        valid: MOUNT_KEYS,
        unsupported: &[],
        nested: &[],
    };
    let mut out = Vec::new();
    for item in items {
        let (mut source, mut to) = (None, None);
        for e in entries(item, &section)? {
            let path = format!("mount.{}", e.name);
            let text = scalar(e.value, &path)?;
            if source.is_some() && e.name != "to" {
                return Err(Box::new(Diagnostic::new(
                    "a mount takes one of `from` and `fromPath`",
                    Some(e.key.span),
                )));
            }
            match e.name {
                "from" => {
                    let kind = match text {
                        "tmp_dir" => strata_plan::MountSource::TmpDir,
                        "build_dir" => strata_plan::MountSource::BuildDir,
                        other => {
                            return Err(Box::new(
                                Diagnostic::new(format!("unknown mount source `{other}`"), Some(e.value.span))
                                    .help("use `from: tmp_dir`, `from: build_dir` or `fromPath: /host/path`"),
                            ));
                        }
                    };
                    source = Some(Spanned {
                        value: kind,
                        span: e.value.span,
                    });
                }
                // Absolute, relative to the project directory, or below `~` (werf's
                // "absolute or relative path"); the lowering resolves it.
                "fromPath" => {
                    source = Some(Spanned {
                        value: strata_plan::MountSource::Host(text.into()),
                        span: e.value.span,
                    });
                }
                "to" => {
                    to = Some(absolute(
                        Spanned {
                            value: text.to_string(),
                            span: e.value.span,
                        },
                        "to",
                    )?)
                }
                _ => unreachable_key(e.key)?,
            }
        }
        let source = source.ok_or_else(|| {
            Box::new(Diagnostic::new(
                "a mount needs `from` or `fromPath`",
                Some(item.span),
            ))
        })?;
        let to =
            to.ok_or_else(|| Box::new(Diagnostic::new("a mount needs `to`", Some(item.span))))?;
        out.push(MountConfig {
            span: item.span,
            source,
            to,
        });
    }
    Ok(out)
}

/// The items of a list of mappings (none for null).
fn list_items<'a>(value: &'a Node, path: &str) -> Result<&'a [Node]> {
    match &value.kind {
        _ if value.is_null() => Ok(&[]),
        Kind::Seq(items) => Ok(items),
        _ => Err(expected(value, "a list of mappings", path)),
    }
}

/// `git:`: a list of mappings.
fn git_mappings(value: &Node) -> Result<Vec<GitConfig>> {
    let items = list_items(value, "git")?;
    let section = Section {
        path: "git",
        context: "a `git` mapping",
        valid: GIT_KEYS,
        unsupported: &["basicAuth"],
        nested: &[],
    };
    let mut out = Vec::new();
    for item in items {
        let mut url = None;
        let mut git_ref: Option<(GitRef, Spanned<String>)> = None;
        let (mut add, mut to, mut owner, mut group) = (None, None, None, None);
        let (mut include_paths, mut exclude_paths) = (Vec::new(), Vec::new());
        let mut stage_dependencies = Vec::new();
        for e in entries(item, &section)? {
            let path = format!("git.{}", e.name);
            let spanned = |e: &Entry<'_>| -> Result<Spanned<String>> {
                Ok(Spanned {
                    value: scalar(e.value, &path)?.to_string(),
                    span: e.value.span,
                })
            };
            match e.name {
                "url" => url = Some(spanned(&e)?),
                "branch" | "tag" | "commit" => {
                    let kind = match e.name {
                        "branch" => GitRef::Branch,
                        "tag" => GitRef::Tag,
                        _ => GitRef::Commit,
                    };
                    if let Some((_, first)) = &git_ref {
                        return Err(Box::new(
                            Diagnostic::new(
                                "a git mapping takes one of `branch`, `tag` and `commit`",
                                Some(e.key.span),
                            )
                            .note(first.span, "already given here"),
                        ));
                    }
                    git_ref = Some((kind, spanned(&e)?));
                }
                "add" => add = Some(inside(absolute(spanned(&e)?, "add")?, "add")?),
                "to" => to = Some(inside(absolute(spanned(&e)?, "to")?, "to")?),
                "owner" => owner = Some(spanned(&e)?),
                "group" => group = Some(spanned(&e)?),
                "includePaths" => include_paths = masks(e.value, &path)?,
                "excludePaths" => exclude_paths = masks(e.value, &path)?,
                "stageDependencies" => {
                    let deps = Section {
                        path: "git.stageDependencies",
                        context: "`stageDependencies`",
                        valid: STAGE_DEPENDENCY_KEYS,
                        unsupported: &[],
                        nested: &[],
                    };
                    for d in entries_of(&e, &deps)? {
                        let stage = UserStage::ALL
                            .into_iter()
                            .find(|s| s.name() == d.name)
                            .expect("`entries` only lets user stage names through");
                        stage_dependencies.push((
                            stage,
                            masks(d.value, &format!("git.stageDependencies.{}", d.name))?,
                        ));
                    }
                }
                _ => unreachable_key(e.key)?,
            }
        }
        if let (Some((_, r)), None) = (&git_ref, &url) {
            return Err(Box::new(
                Diagnostic::new(
                    "`branch`, `tag` and `commit` select a remote's ref; this mapping has no `url`",
                    Some(r.span),
                )
                .help("remove it to use the repository holding the config, or add `url:`"),
            ));
        }
        let to = to.ok_or_else(|| {
            Box::new(
                Diagnostic::new(
                    "a git mapping needs `to:`, the path in the image to put the files at",
                    Some(item.span),
                )
                .help("add for example `to: /app`"),
            )
        })?;
        out.push(GitConfig {
            span: item.span,
            url,
            git_ref,
            add,
            to,
            owner,
            group,
            include_paths,
            exclude_paths,
            stage_dependencies,
        });
    }
    Ok(out)
}

/// `add`/`to` must be absolute paths.
fn absolute(value: Spanned<String>, key: &str) -> Result<Spanned<String>> {
    if !value.value.starts_with('/') {
        return Err(Box::new(
            Diagnostic::new(
                format!("`{key}` must be an absolute path, found `{}`", value.value),
                Some(value.span),
            )
            .help(format!("write `/{}`", value.value)),
        ));
    }
    Ok(value)
}

/// `value` if no component of it is `..`: git and import paths name entries of a repository's
/// tree or of an image, where `..` has no meaning, and resolving it on the host would leave
/// the repository or the image's snapshot (`add: /../../etc`).
fn inside(value: Spanned<String>, key: &str) -> Result<Spanned<String>> {
    if value.value.split('/').any(|part| part == "..") {
        return Err(Box::new(
            Diagnostic::new(
                format!("`{key}` must not contain `..`, found `{}`", value.value),
                Some(value.span),
            )
            .help("paths here are inside the repository or the image; write the path without `..`"),
        ));
    }
    Ok(value)
}

/// `value` if it is a relative path that stays in the project directory (werf's `context`
/// and `dockerfile` are relative to it): an absolute path or a `..` would build from the
/// build machine's files.
fn project_relative(value: Spanned<String>, key: &str) -> Result<Spanned<String>> {
    if value.value.starts_with('/') {
        return Err(Box::new(
            Diagnostic::new(
                format!(
                    "`{key}` must be relative to the project directory, found `{}`",
                    value.value
                ),
                Some(value.span),
            )
            .help("write the path inside the project, relative to the config's directory"),
        ));
    }
    inside(value, key)
}

/// A list of masks (a single string is taken as a one-item list, as werf does); none may
/// contain `..` (see [`inside`]).
fn masks(value: &Node, path: &str) -> Result<Vec<Spanned<String>>> {
    let key = path.split_once('.').map_or(path, |(_, key)| key);
    masks_of(value, path)?
        .into_iter()
        .map(|m| inside(m, key))
        .collect()
}

fn masks_of(value: &Node, path: &str) -> Result<Vec<Spanned<String>>> {
    match &value.kind {
        _ if value.is_null() => Ok(Vec::new()),
        Kind::Seq(items) => items
            .iter()
            .map(|item| {
                Ok(Spanned {
                    value: scalar(item, path)?.to_string(),
                    span: item.span,
                })
            })
            .collect(),
        _ => Ok(vec![Spanned {
            value: scalar(value, path)?.to_string(),
            span: value.span,
        }]),
    }
}

fn shell_section(e: &Entry<'_>) -> Result<Shell> {
    let mut shell = Shell::default();
    if e.value.is_null() {
        return Ok(shell);
    }
    let section = Section {
        path: "shell",
        context: "`shell`",
        valid: SHELL_KEYS,
        unsupported: &[],
        nested: &[],
    };
    for s in entries_of(e, &section)? {
        let path = format!("shell.{}", s.name);
        if s.name == "cacheVersion" {
            shell.cache_version = version(&s, &path)?;
            continue;
        }
        let mut matched = false;
        for stage in UserStage::ALL {
            if s.name == stage.name() {
                let target = shell.stage_mut(stage);
                target.key = Some(s.key.span);
                target.commands = commands(s.value, &path)?;
                matched = true;
            } else if s.name == stage.cache_version_key() {
                shell.stage_mut(stage).cache_version = version(&s, &path)?;
                matched = true;
            }
        }
        if !matched {
            unreachable_key(s.key)?;
        }
    }
    Ok(shell)
}

/// A user stage's value: a string (one command) or a list of strings.
fn commands(value: &Node, path: &str) -> Result<Vec<Spanned<String>>> {
    match &value.kind {
        _ if value.is_null() => Ok(Vec::new()),
        Kind::Seq(items) => items
            .iter()
            .map(|item| match item.as_str() {
                Some(text) => Ok(Spanned {
                    value: text.to_string(),
                    span: item.span,
                }),
                None => {
                    let mut d = Diagnostic::new(
                        format!(
                            "expected a string for each command of `{path}`, found {}",
                            item.type_name()
                        ),
                        Some(item.span),
                    );
                    d = match &item.kind {
                        Kind::Map(_) => d.help(
                            "a command containing `: ` reads as a mapping in YAML; quote the \
                             whole command",
                        ),
                        Kind::Seq(_) => d.help("commands cannot be nested lists"),
                        _ => d.help("quote the command to make it a string"),
                    };
                    Err(Box::new(d))
                }
            })
            .collect(),
        _ => match value.as_str() {
            Some(text) => Ok(vec![Spanned {
                value: text.to_string(),
                span: value.span,
            }]),
            None => Err(expected(value, "a string or a list of strings", path)),
        },
    }
}

fn docker_directives(e: &Entry<'_>) -> Result<Docker> {
    let mut docker = Docker {
        key: Some(e.key.span),
        ..Docker::default()
    };
    if e.value.is_null() {
        return Ok(docker);
    }
    let section = Section {
        path: "docker",
        context: "`docker`",
        valid: DOCKER_KEYS,
        unsupported: &[],
        nested: &[],
    };
    for d in entries_of(e, &section)? {
        let path = format!("docker.{}", d.name);
        match d.name {
            "VOLUME" => docker.volume = Some(keyed(scalar_list(d.value, &path)?, &d)),
            "EXPOSE" => docker.expose = Some(keyed(scalar_list(d.value, &path)?, &d)),
            "ENV" => docker.env = Some(keyed(scalar_map(d.value, &path)?, &d)),
            "LABEL" => docker.label = Some(keyed(scalar_map(d.value, &path)?, &d)),
            "ENTRYPOINT" => docker.entrypoint = Some(keyed(argv(d.value, &path)?, &d)),
            "CMD" => docker.cmd = Some(keyed(argv(d.value, &path)?, &d)),
            "WORKDIR" => docker.workdir = Some(keyed(scalar(d.value, &path)?.to_string(), &d)),
            // werf: "affects only docker-server backend"; strata writes values as given.
            "exactValues" => {
                boolean(d.value, &path)?;
            }
            "USER" => docker.user = Some(keyed(scalar(d.value, &path)?.to_string(), &d)),
            "HEALTHCHECK" => {
                let text = string(d.value, &path)?;
                let check = docker::healthcheck(text).map_err(|m| {
                    Box::new(Diagnostic::new(m, Some(d.value.span)).help(
                        "write it as in a Dockerfile: `NONE` or \
                         `[--interval=30s] [--timeout=30s] [--start-period=0s] [--retries=3] \
                         CMD <command>`",
                    ))
                })?;
                docker.healthcheck = Some(keyed(check, &d));
            }
            _ => unreachable_key(d.key)?,
        }
    }
    Ok(docker)
}

fn keyed<T>(value: T, e: &Entry<'_>) -> Keyed<T> {
    Keyed {
        value,
        key: e.key.span,
        span: e.value.span,
    }
}

/// `CMD`/`ENTRYPOINT`: a list is the argv; a string is a JSON array or a shell command.
fn argv(value: &Node, path: &str) -> Result<Vec<String>> {
    match &value.kind {
        Kind::Seq(_) => scalar_list(value, path),
        _ => match value.as_str() {
            Some(s) => Ok(docker::command_form(s)),
            None => Err(expected(value, "a string or a list of strings", path)),
        },
    }
}

fn scalar_list(value: &Node, path: &str) -> Result<Vec<String>> {
    let Kind::Seq(items) = &value.kind else {
        return Err(expected(value, "a list of strings", path));
    };
    items
        .iter()
        .map(|item| {
            item.as_scalar_text().map(str::to_string).ok_or_else(|| {
                Box::new(Diagnostic::new(
                    format!(
                        "expected a string for each item of `{path}`, found {}",
                        item.type_name()
                    ),
                    Some(item.span),
                ))
            })
        })
        .collect()
}

fn scalar_map(value: &Node, path: &str) -> Result<Vec<(String, String)>> {
    let Kind::Map(pairs) = &value.kind else {
        return Err(expected(value, "a mapping of names to values", path));
    };
    let mut seen: Vec<(&str, Span)> = Vec::new();
    let mut out = Vec::new();
    for (k, v) in pairs {
        let Some(name) = k.as_scalar_text() else {
            return Err(expected(k, "a string name", path));
        };
        if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
            return Err(duplicate(name, &format!("`{path}`"), k.span, *first));
        }
        seen.push((name, k.span));
        let text = scalar(v, &format!("{path}.{name}"))?;
        out.push((name.to_string(), text.to_string()));
    }
    Ok(out)
}

/// A cache version: a string, or a number or boolean kept as written; null means unset.
fn version(e: &Entry<'_>, path: &str) -> Result<Option<Keyed<String>>> {
    if e.value.is_null() {
        return Ok(None);
    }
    Ok(Some(Keyed {
        value: scalar(e.value, path)?.to_string(),
        key: e.key.span,
        span: e.value.span,
    }))
}

fn string<'a>(value: &'a Node, path: &str) -> Result<&'a str> {
    value
        .as_str()
        .ok_or_else(|| expected(value, "a string", path))
}

/// A string, number or boolean, as written.
fn scalar<'a>(value: &'a Node, path: &str) -> Result<&'a str> {
    value
        .as_scalar_text()
        .ok_or_else(|| expected(value, "a string", path))
}

pub(super) fn boolean(value: &Node, path: &str) -> Result<bool> {
    match (&value.kind, value.type_name()) {
        (Kind::Scalar { text, .. }, "a boolean") => Ok(text.eq_ignore_ascii_case("true")),
        _ => Err(expected(value, "`true` or `false`", path)),
    }
}

pub(super) fn expected(value: &Node, what: &str, path: &str) -> Box<Diagnostic> {
    Box::new(Diagnostic::new(
        format!("expected {what} for `{path}`, found {}", value.type_name()),
        Some(value.span),
    ))
}

/// A key written twice in one mapping; `within` names the mapping ("`shell`").
fn duplicate(name: &str, within: &str, at: Span, first: Span) -> Box<Diagnostic> {
    Box::new(
        Diagnostic::new(format!("duplicate key `{name}` in {within}"), Some(at))
            .note(first, "first defined here"),
    )
}

/// A key `entries` accepted but the caller did not handle: a bug, reported without panicking.
pub(super) fn unreachable_key(key: &Node) -> Result<()> {
    Err(Box::new(Diagnostic::new(
        format!(
            "internal error: key `{}` is accepted but not handled",
            key.as_str().unwrap_or("?")
        ),
        Some(key.span),
    )))
}

/// The keys a mapping may hold.
pub(super) struct Section<'a> {
    /// Dotted path of the mapping for messages (`shell`), empty for a document.
    pub(super) path: &'a str,
    /// How "unknown key ... in X" names the mapping.
    pub(super) context: &'a str,
    pub(super) valid: &'a [&'a str],
    pub(super) unsupported: &'a [&'a str],
    /// Sub-sections whose keys users put here by mistake: `(section, its keys)`.
    pub(super) nested: &'a [(&'a str, &'a [&'a str])],
}

/// A checked `key: value` pair.
pub(super) struct Entry<'a> {
    pub(super) name: &'a str,
    pub(super) key: &'a Node,
    pub(super) value: &'a Node,
}

pub(super) fn entries_of<'a>(e: &Entry<'a>, section: &Section<'_>) -> Result<Vec<Entry<'a>>> {
    match &e.value.kind {
        Kind::Map(_) => entries(e.value, section),
        _ => Err(expected(e.value, "a mapping", section.path)),
    }
}

/// The pairs of a mapping, after checking that every key is a string, unique and known.
pub(super) fn entries<'a>(node: &'a Node, section: &Section<'_>) -> Result<Vec<Entry<'a>>> {
    let Kind::Map(pairs) = &node.kind else {
        return Err(expected(node, "a mapping", section.path));
    };
    let mut out: Vec<Entry<'a>> = Vec::new();
    for (key, value) in pairs {
        let Some(name) = key.as_str() else {
            return Err(Box::new(Diagnostic::new(
                format!(
                    "expected a string key in {}, found {}",
                    section.context,
                    key.type_name()
                ),
                Some(key.span),
            )));
        };
        if let Some(first) = out.iter().find(|e| e.name == name) {
            return Err(duplicate(name, section.context, key.span, first.key.span));
        }
        if section.unsupported.contains(&name) {
            return Err(Box::new(
                Diagnostic::new(
                    format!("`{name}` is not supported by strata yet"),
                    Some(key.span),
                )
                .label("not supported yet"),
            ));
        }
        if !section.valid.contains(&name) {
            let mut d = Diagnostic::new(
                format!("unknown key `{name}` in {}", section.context),
                Some(key.span),
            );
            let nested = section.nested.iter().find_map(|(sub, keys)| {
                keys.iter()
                    .find(|k| k.eq_ignore_ascii_case(name))
                    .map(|k| (*sub, *k))
            });
            d = match (suggest(name, section.valid), nested) {
                (Some(s), _) => d.help(format!("did you mean `{s}`?")),
                (None, Some((sub, k))) => d.help(format!("`{k}` goes under `{sub}:`")),
                (None, None) => d.help(format!(
                    "valid keys are {}",
                    section
                        .valid
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
            return Err(Box::new(d));
        }
        out.push(Entry { name, key, value });
    }
    Ok(out)
}

/// The closest valid key within edit distance 2 (or differing only in case).
pub(crate) fn suggest<'a>(name: &str, valid: &[&'a str]) -> Option<&'a str> {
    if let Some(k) = valid.iter().find(|k| k.eq_ignore_ascii_case(name)) {
        return Some(k);
    }
    valid
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// `before: install` and friends, shared by `import` and `dependencies`.
fn stage_point(e: &Entry<'_>, path: &str) -> Result<Spanned<ImportPoint>> {
    let stage = scalar(e.value, path)?;
    let value = match (e.name, stage) {
        ("before", "install") => ImportPoint::BeforeInstall,
        ("after", "install") => ImportPoint::AfterInstall,
        ("before", "setup") => ImportPoint::BeforeSetup,
        ("after", "setup") => ImportPoint::AfterSetup,
        _ => {
            return Err(Box::new(
                Diagnostic::new(
                    format!("`{}: {stage}` is not a stage to run at", e.name),
                    Some(e.value.span),
                )
                .help("write `install` or `setup`"),
            ));
        }
    };
    Ok(Spanned {
        value,
        span: e.value.span,
    })
}

/// `dependencies:`: other images' names and digests as build variables.
fn dependency_entries(value: &Node) -> Result<Vec<DependencyConfig>> {
    let items = list_items(value, "dependencies")?;
    let section = Section {
        path: "dependencies",
        context: "a `dependencies` entry",
        valid: DEPENDENCY_KEYS,
        unsupported: &[],
        nested: &[],
    };
    let import_section = Section {
        path: "dependencies.imports",
        context: "a dependency's `imports` entry",
        valid: DEPENDENCY_IMPORT_KEYS,
        unsupported: &["targetBuildArg"],
        nested: &[],
    };
    let mut out = Vec::new();
    for item in items {
        let (mut image, mut at, mut imports) = (None, None, Vec::new());
        for e in entries(item, &section)? {
            let path = format!("dependencies.{}", e.name);
            match e.name {
                "image" => {
                    image = Some(Spanned {
                        value: scalar(e.value, &path)?.to_string(),
                        span: e.value.span,
                    })
                }
                "before" | "after" => {
                    if at.is_some() {
                        return Err(Box::new(Diagnostic::new(
                            "a dependency takes exactly one of `before` and `after`",
                            Some(e.key.span),
                        )));
                    }
                    at = Some(stage_point(&e, &path)?);
                }
                "imports" => {
                    let Kind::Seq(list) = &e.value.kind else {
                        return Err(expected(e.value, "a list of mappings", &path));
                    };
                    for imp in list {
                        imports.push(dependency_import(imp, &import_section)?);
                    }
                }
                _ => unreachable_key(e.key)?,
            }
        }
        let missing = |k: &str| {
            Box::new(Diagnostic::new(
                format!("a dependency needs `{k}`"),
                Some(item.span),
            ))
        };
        out.push(DependencyConfig {
            span: item.span,
            image: image.ok_or_else(|| missing("image"))?,
            point: at.ok_or_else(|| missing("before` or `after"))?,
            imports,
        });
    }
    Ok(out)
}

/// One `{type, targetEnv}` of a dependency.
fn dependency_import(
    imp: &Node,
    section: &Section<'_>,
) -> Result<(Spanned<strata_plan::DependencyValue>, Spanned<String>)> {
    use strata_plan::DependencyValue as V;
    let (mut kind, mut target) = (None, None);
    for f in entries(imp, section)? {
        let path = format!("dependencies.imports.{}", f.name);
        let text = scalar(f.value, &path)?;
        match f.name {
            "type" => {
                let v = match text {
                    "ImageName" => V::ImageName,
                    "ImageRepo" => V::ImageRepo,
                    "ImageTag" => V::ImageTag,
                    "ImageID" => V::ImageId,
                    "ImageDigest" => V::ImageDigest,
                    other => {
                        return Err(Box::new(
                            Diagnostic::new(
                                format!("unknown dependency type `{other}`"),
                                Some(f.value.span),
                            )
                            .help("use ImageName, ImageRepo, ImageTag, ImageID or ImageDigest"),
                        ));
                    }
                };
                kind = Some(Spanned {
                    value: v,
                    span: f.value.span,
                });
            }
            "targetEnv" => {
                target = Some(Spanned {
                    value: text.to_string(),
                    span: f.value.span,
                })
            }
            _ => unreachable_key(f.key)?,
        }
    }
    let missing = |k: &str| {
        Box::new(Diagnostic::new(
            format!("a dependency import needs `{k}`"),
            Some(imp.span),
        ))
    };
    Ok((
        kind.ok_or_else(|| missing("type"))?,
        target.ok_or_else(|| missing("targetEnv"))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("instal", "install"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("setpu", "setup"), 2);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("instal", SHELL_KEYS), Some("install"));
        assert_eq!(suggest("env", DOCKER_KEYS), Some("ENV"));
        assert_eq!(suggest("frm", IMAGE_KEYS), Some("from"));
        assert_eq!(suggest("something", SHELL_KEYS), None);
    }
}
