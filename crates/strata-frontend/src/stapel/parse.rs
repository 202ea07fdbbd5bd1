//! Pass 2: the YAML trees to the typed [`Config`], checking every key and type.
//!
//! Every key is accounted for: a known key is decoded, a key werf has but strata does not
//! implement yet is an error at that key ("`git` is not supported by strata yet"), and any other
//! key is an error with a "did you mean" hint. Nothing is silently ignored, because an ignored
//! key would silently change what gets built.
//!
//! One trait drives every mapping: each section (the meta document, `build`, an image
//! document, `shell`, `docker`, `imageSpec` and its `config` and `healthcheck`, a `git`
//! mapping and its `stageDependencies` and `basicAuth`, an `import`, `mount`, `secrets` or
//! `dependencies` entry and a dependency's `imports`) is a type implementing [`Section`]: it
//! declares its keys once (with werf's unsupported keys and the sub-sections whose keys users
//! misplace) and reads one entry at a time; [`read`] checks the mapping's keys and hands the
//! entries over. What an entry means across keys (one of `from`/`fromImage`, a Dockerfile
//! image takes no `shell`) is checked once the section is read.

use strata_plan::{Diagnostic, ImageName, Span};

use super::config::{Ansible, AnsibleTask};
use super::config::{
    BasicAuthConfig, Config, DependencyConfig, Docker, DockerfileImage, From, GitConfig, GitRef,
    ImageConfig, ImportConfig, ImportPoint, Instructions, Keyed, MountConfig, SecretConfig, Shell,
    Spanned, UserStage,
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
    "ansible",
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
    "secrets",
    "addHost",
    "ssh",
];
/// werf image keys strata does not implement yet.
const IMAGE_UNSUPPORTED: &[&str] = &[];
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
    "clearWerfLabels",
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
    "basicAuth",
];
/// Keys of a git mapping's `basicAuth:`.
const BASIC_AUTH_KEYS: &[&str] = &["username", "password"];
/// Keys of `basicAuth.password:` (werf reads `src`; its reference calls it `file`).
const PASSWORD_KEYS: &[&str] = &["env", "src", "file", "value"];
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
const DEPENDENCY_IMPORT_KEYS: &[&str] = &["type", "targetEnv", "targetBuildArg"];
/// Keys of a `secrets:` entry.
const SECRET_KEYS: &[&str] = &["id", "env", "src", "value"];
/// Keys of a `mount:` entry.
const MOUNT_KEYS: &[&str] = &["from", "fromPath", "to"];
/// Keys of `stageDependencies:` (beforeInstall runs before the sources are there).
const STAGE_DEPENDENCY_KEYS: &[&str] = &["install", "beforeSetup", "setup"];
/// Keys of `shell:` and `ansible:`.
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
    read(root, "", &mut Meta(config))
}

/// The meta document, read into the config.
struct Meta<'c>(&'c mut Config);

impl Section for Meta<'_> {
    const CONTEXT: &'static str = "the meta document";
    const KEYS: &'static [&'static str] = META_KEYS;
    const UNSUPPORTED: &'static [&'static str] = META_UNSUPPORTED;

    fn entry(&mut self, e: &Entry<'_>) -> Result<()> {
        let config = &mut *self.0;
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
            // The meta `build:`: `cacheVersion` for every image, the platform, `staged`.
            "build" if e.value.is_null() => {}
            "build" => read_value(e, "build", &mut Build(config))?,
            "cleanup" => config.cleanup = Some(super::cleanup::parse(e)?),
            name if META_IGNORED.contains(&name) => config.notes.push(format!(
                "`{name}` is for werf's deploy command; strata builds images only and \
                 leaves it to werf"
            )),
            _ => unreachable_key(e.key)?,
        }
        Ok(())
    }
}

/// The meta `build:`, read into the config.
struct Build<'c>(&'c mut Config);

impl Section for Build<'_> {
    const CONTEXT: &'static str = "`build`";
    const KEYS: &'static [&'static str] = BUILD_KEYS;

    fn entry(&mut self, b: &Entry<'_>) -> Result<()> {
        let config = &mut *self.0;
        match b.name {
            "imageSpec" => config.image_spec = Some(global_image_spec(b)?),
            "cacheVersion" => config.cache_version = version(b, "build.cacheVersion")?,
            "platform" => platform(b.value, "build.platform")?,
            // strata caches every Dockerfile instruction as its own stage: what `staged` asks.
            "staged" => {
                boolean(b.value, "build.staged")?;
            }
            _ => unreachable_key(b.key)?,
        }
        Ok(())
    }
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
    let mut doc = ImageDoc {
        is_final: true,
        ..ImageDoc::default()
    };
    read(root, "", &mut doc)?;
    let ImageDoc {
        name,
        from,
        cache_version,
        from_cache_version,
        is_final,
        shell,
        ansible,
        docker_section,
        git,
        imports,
        mounts,
        dependencies,
        is_artifact,
        disable_git_after_patch,
        image_spec_section,
        from_latest,
        network,
        secrets,
        add_hosts,
        ssh,
        dockerfile,
        context,
        target,
        args,
    } = doc;
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
            if !shell.is_empty() || !ansible.is_empty() || !git.is_empty() || !imports.is_empty() {
                return Err(Box::new(Diagnostic::new(
                    "an image built from a Dockerfile has no `shell`, `ansible`, `git` or `import`: the Dockerfile says how to build it",
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
            if let Some(key) = &ssh {
                return Err(Box::new(
                    Diagnostic::new(
                        "`ssh` goes with `dockerfile`: it forwards an agent to the Dockerfile's \
                         `RUN --mount=type=ssh`",
                        Some(*key),
                    )
                    .help("remove it; stapel user stages need no setting for that"),
                ));
            }
            if let Some(key) = context.as_ref().or(target.as_ref()).map(|k| k.span) {
                return Err(Box::new(Diagnostic::new(
                    "`context`, `target` and `args` go with `dockerfile`",
                    Some(key),
                )));
            }
            None
        }
    };
    check_dependencies(&dependencies, dockerfile.is_some())?;
    if let (Some(shell), Some(ansible)) = (shell.key, ansible.key) {
        let mut keys = [("shell", shell), ("ansible", ansible)];
        keys.sort_by_key(|(_, span)| span.start);
        let [(first, earlier), (second, later)] = keys;
        return Err(Box::new(
            Diagnostic::new(
                "an image takes `shell` or `ansible`, not both: they are werf's two kinds of \
                 assembly instructions",
                Some(later),
            )
            .note(earlier, format!("`{first}` is given here"))
            .help(format!(
                "write the instructions of `{second}` as `{first}` ones, or the other way round"
            )),
        ));
    }
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
        ansible,
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
        from_latest,
        secrets,
        add_hosts,
    })
}

/// What an image document says, key by key; [`image`] checks it as a whole.
#[derive(Default)]
struct ImageDoc {
    name: Option<(ImageName, Span)>,
    from: Option<Keyed<From>>,
    cache_version: Option<Keyed<String>>,
    from_cache_version: Option<Keyed<String>>,
    is_final: bool,
    shell: Shell,
    ansible: Ansible,
    docker_section: Docker,
    git: Vec<GitConfig>,
    imports: Vec<ImportConfig>,
    mounts: Vec<MountConfig>,
    dependencies: Vec<DependencyConfig>,
    is_artifact: bool,
    disable_git_after_patch: bool,
    image_spec_section: Option<Keyed<strata_plan::ConfigChange>>,
    from_latest: bool,
    network: Option<Span>,
    secrets: Vec<SecretConfig>,
    add_hosts: Vec<(String, std::net::IpAddr)>,
    ssh: Option<Span>,
    dockerfile: Option<Spanned<String>>,
    context: Option<Spanned<String>>,
    target: Option<Spanned<String>>,
    args: Vec<(String, String)>,
}

impl Section for ImageDoc {
    const CONTEXT: &'static str = "an image document";
    const KEYS: &'static [&'static str] = IMAGE_KEYS;
    const UNSUPPORTED: &'static [&'static str] = IMAGE_UNSUPPORTED;
    const NESTED: &'static [(&'static str, &'static [&'static str])] =
        &[("shell", SHELL_KEYS), ("docker", DOCKER_KEYS)];

    fn entry(&mut self, e: &Entry<'_>) -> Result<()> {
        match e.name {
            "artifact" => {
                let n = string(e.value, "artifact")?;
                if n.is_empty() {
                    return Err(Box::new(Diagnostic::new(
                        "an artifact needs a name",
                        Some(e.value.span),
                    )));
                }
                if self.name.is_some() {
                    return Err(Box::new(Diagnostic::new(
                        "a document is either an `image` or an `artifact`, not both",
                        Some(e.key.span),
                    )));
                }
                self.is_artifact = true;
                self.is_final = false;
                self.name = Some((ImageName::Named(n.to_string()), e.value.span));
            }
            "image" => {
                if self.is_artifact {
                    return Err(Box::new(Diagnostic::new(
                        "a document is either an `image` or an `artifact`, not both",
                        Some(e.key.span),
                    )));
                }
                self.name = Some(if e.value.is_null() {
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
                if let Some(other) = &self.from {
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
                self.from = Some(Keyed {
                    value,
                    key: e.key.span,
                    span: e.value.span,
                });
            }
            "cacheVersion" => self.cache_version = version(e, "cacheVersion")?,
            "fromCacheVersion" => self.from_cache_version = version(e, "fromCacheVersion")?,
            "final" => self.is_final = boolean(e.value, "final")?,
            "shell" => self.shell = instructions(e)?,
            "ansible" => self.ansible = instructions(e)?,
            "docker" => self.docker_section = docker_directives(e)?,
            "git" => self.git = git_mappings(e.value)?,
            "import" => self.imports = import_entries(e.value)?,
            "mount" => self.mounts = mount_entries(e.value)?,
            "dependencies" => self.dependencies = dependency_entries(e.value)?,
            "dockerfile" | "context" | "target" => {
                let v = Spanned {
                    value: scalar(e.value, e.name)?.to_string(),
                    span: e.value.span,
                };
                match e.name {
                    "dockerfile" => self.dockerfile = Some(project_relative(v, "dockerfile")?),
                    "context" => self.context = Some(project_relative(v, "context")?),
                    _ => self.target = Some(v),
                }
            }
            "args" => self.args = scalar_map(e.value, "args")?,
            "imageSpec" => self.image_spec_section = Some(image_spec(e, "imageSpec")?),
            "disableGitAfterPatch" => {
                self.disable_git_after_patch = boolean(e.value, "disableGitAfterPatch")?
            }
            "fromLatest" => self.from_latest = boolean(e.value, "fromLatest")?,
            "network" => {
                let text = scalar(e.value, "network")?;
                self.network = match text {
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
            "secrets" => self.secrets = secret_entries(e.value)?,
            "addHost" => self.add_hosts = host_entries(e.value)?,
            // The agent goes to the Dockerfile's `RUN --mount=type=ssh`, which the Dockerfile
            // frontend reports at its line if the Dockerfile has one.
            "ssh" => {
                scalar(e.value, "ssh")?;
                self.ssh = Some(e.key.span);
            }
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
        Ok(())
    }
}

/// `secrets:`: each entry one of `env`, `src` and `value`, with an `id` (werf's default: the
/// variable's name, the file's name; a `value` needs one), ids unique.
fn secret_entries(value: &Node) -> Result<Vec<SecretConfig>> {
    use strata_plan::SecretSource;
    let mut out: Vec<SecretConfig> = Vec::new();
    for item in list_items(value, "secrets")? {
        let mut fields = SecretEntry::default();
        read(item, "secrets", &mut fields)?;
        let SecretEntry { id, source } = fields;
        let source = source.ok_or_else(|| {
            Box::new(
                Diagnostic::new("a secret needs `env`, `src` or `value`", Some(item.span))
                    .help("for example `- env: NPM_TOKEN`"),
            )
        })?;
        let id = match (id, &source) {
            (Some(id), _) => id,
            (None, SecretSource::Env(var)) => var.clone(),
            (None, SecretSource::File(path)) => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            (None, SecretSource::Value(_)) => {
                return Err(Box::new(
                    Diagnostic::new("a secret with `value` needs an `id`", Some(item.span))
                        .help("add `id: NAME`: it is mounted at /run/secrets/NAME"),
                ));
            }
        };
        if let Some(first) = out.iter().find(|s| s.id == id) {
            return Err(Box::new(
                Diagnostic::new(format!("duplicated secret `{id}`"), Some(item.span))
                    .note(first.span, "first defined here")
                    .help("give each secret its own `id`"),
            ));
        }
        out.push(SecretConfig {
            span: item.span,
            id,
            source,
        });
    }
    Ok(out)
}

/// One `secrets:` entry, key by key.
#[derive(Default)]
struct SecretEntry {
    id: Option<String>,
    source: Option<strata_plan::SecretSource>,
}

impl Section for SecretEntry {
    const CONTEXT: &'static str = "a `secrets` entry";
    const KEYS: &'static [&'static str] = SECRET_KEYS;

    fn entry(&mut self, e: &Entry<'_>) -> Result<()> {
        use strata_plan::SecretSource;
        let path = format!("secrets.{}", e.name);
        let text = scalar(e.value, &path)?.to_string();
        let next = match e.name {
            "id" => {
                if text.is_empty() || text.contains('/') || text == "." || text == ".." {
                    return Err(Box::new(
                        Diagnostic::new(format!("`{text}` is not a secret id"), Some(e.value.span))
                            .help("the secret is mounted at /run/secrets/ID: use a file name"),
                    ));
                }
                self.id = Some(text);
                return Ok(());
            }
            "env" => SecretSource::Env(text),
            "src" => SecretSource::File(text.into()),
            "value" => SecretSource::Value(text),
            _ => {
                unreachable_key(e.key)?;
                return Ok(());
            }
        };
        if self.source.is_some() {
            return Err(Box::new(
                Diagnostic::new(
                    "a secret takes one of `env`, `src` and `value`",
                    Some(e.key.span),
                )
                .help("write each secret as its own list item"),
            ));
        }
        self.source = Some(next);
        Ok(())
    }
}

/// `addHost:` (one string or a list): `NAME:IP` as docker's `--add-host` (split at the first
/// `=`, else the first `:`, so an IPv6 address keeps its colons).
fn host_entries(value: &Node) -> Result<Vec<(String, std::net::IpAddr)>> {
    masks_of(value, "addHost")?
        .into_iter()
        .map(|entry| {
            let text = entry.value.as_str();
            let parsed = text
                .split_once('=')
                .or_else(|| text.split_once(':'))
                .filter(|(name, _)| !name.is_empty())
                .and_then(|(name, ip)| {
                    let ip = ip.trim_start_matches('[').trim_end_matches(']');
                    Some((name.to_string(), ip.parse().ok()?))
                });
            parsed.ok_or_else(|| {
                Box::new(
                    Diagnostic::new(
                        format!("`{text}` is not a host-to-IP mapping"),
                        Some(entry.span),
                    )
                    .help("write `NAME:IP`, for example `registry.local:10.0.0.5`"),
                )
            })
        })
        .collect()
}

/// werf's `imageSpec:` as the config change of the `imageSpec` stage.
fn image_spec(e: &Entry<'_>, path: &str) -> Result<Keyed<strata_plan::ConfigChange>> {
    let mut change = strata_plan::ConfigChange::default();
    if !e.value.is_null() {
        read_value(
            e,
            path,
            &mut ImageSpec {
                change: &mut change,
                path,
            },
        )?;
    }
    Ok(keyed(change, e))
}
/// The meta `build.imageSpec:`: werf takes only `author`, `clearHistory` and the config's
/// labels there (`rawImageSpecGlobal`), merged into each image's `imageSpec`.
fn global_image_spec(e: &Entry<'_>) -> Result<Keyed<strata_plan::ConfigChange>> {
    let spec = image_spec(e, "build.imageSpec")?;
    let mut rest = spec.value.clone();
    rest.author = None;
    rest.labels.clear();
    rest.remove.labels.clear();
    rest.remove.history = false;
    if rest != strata_plan::ConfigChange::default() {
        return Err(Box::new(
            Diagnostic::new(
                "the meta `build.imageSpec` takes only `author`, `clearHistory` and, in \
                 `config`, `labels`, `removeLabels`, `keepEssentialWerfLabels` and \
                 `clearWerfLabels`, as werf",
                Some(spec.key),
            )
            .help("set the others in each image's `imageSpec`"),
        ));
    }
    Ok(spec)
}

/// `imageSpec:`, read into its config change.
struct ImageSpec<'a> {
    change: &'a mut strata_plan::ConfigChange,
    path: &'a str,
}

impl Section for ImageSpec<'_> {
    const CONTEXT: &'static str = "`imageSpec`";
    const KEYS: &'static [&'static str] = IMAGE_SPEC_KEYS;
    const NESTED: &'static [(&'static str, &'static [&'static str])] =
        &[("config", IMAGE_SPEC_CONFIG_KEYS)];

    fn entry(&mut self, s: &Entry<'_>) -> Result<()> {
        let (change, path) = (&mut *self.change, self.path);
        match s.name {
            "author" => {
                change.author = Some(scalar(s.value, &format!("{path}.author"))?.to_string())
            }
            "clearHistory" => {
                change.remove.history = boolean(s.value, &format!("{path}.clearHistory"))?
            }
            "config" if s.value.is_null() => {}
            "config" => image_spec_config(s, &format!("{path}.config"), change)?,
            _ => unreachable_key(s.key)?,
        }
        Ok(())
    }
}

fn image_spec_config(
    e: &Entry<'_>,
    path: &str,
    change: &mut strata_plan::ConfigChange,
) -> Result<()> {
    let mut config = ImageSpecConfig {
        change,
        path,
        keep_werf_labels: false,
    };
    read_value(e, path, &mut config)?;
    let (change, keep_werf_labels) = (config.change, config.keep_werf_labels);
    if keep_werf_labels {
        change.remove.labels.retain(|l| l != "werf");
    }
    Ok(())
}
/// `imageSpec.config:`, read into the config change.
struct ImageSpecConfig<'a> {
    change: &'a mut strata_plan::ConfigChange,
    path: &'a str,
    keep_werf_labels: bool,
}

impl Section for ImageSpecConfig<'_> {
    const CONTEXT: &'static str = "`imageSpec.config`";
    const KEYS: &'static [&'static str] = IMAGE_SPEC_CONFIG_KEYS;

    fn entry(&mut self, c: &Entry<'_>) -> Result<()> {
        let (change, path) = (&mut *self.change, self.path);
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
            "keepEssentialWerfLabels" => self.keep_werf_labels = flag()?,
            "clearCmd" => change.remove.cmd = flag()?,
            "clearEntrypoint" => change.remove.entrypoint = flag()?,
            "clearUser" => change.remove.user = flag()?,
            "clearWorkingDir" => change.remove.workdir = flag()?,
            // werf reads it and does nothing with it ("TODO: remove in v3").
            "clearWerfLabels" => {
                flag()?;
            }
            "healthcheck" => change.healthcheck = Some(image_spec_healthcheck(c, &at)?),
            _ => unreachable_key(c.key)?,
        }
        Ok(())
    }
}

/// `healthcheck:` of `imageSpec.config`: `test` as Docker's, intervals in seconds.
fn image_spec_healthcheck(e: &Entry<'_>, path: &str) -> Result<strata_plan::Healthcheck> {
    let mut check = strata_plan::Healthcheck::default();
    read_value(
        e,
        path,
        &mut ImageSpecHealthcheck {
            check: &mut check,
            path,
        },
    )?;
    Ok(check)
}
/// `healthcheck:` of `imageSpec.config`, read into the check.
struct ImageSpecHealthcheck<'a> {
    check: &'a mut strata_plan::Healthcheck,
    path: &'a str,
}

impl Section for ImageSpecHealthcheck<'_> {
    const CONTEXT: &'static str = "`imageSpec.config.healthcheck`";
    const KEYS: &'static [&'static str] = HEALTHCHECK_KEYS;

    fn entry(&mut self, h: &Entry<'_>) -> Result<()> {
        let (check, path) = (&mut *self.check, self.path);
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
        Ok(())
    }
}

/// `import:`: files from other images.
fn import_entries(value: &Node) -> Result<Vec<ImportConfig>> {
    let items = list_items(value, "import")?;
    let mut out = Vec::new();
    for item in items {
        let mut fields = ImportEntry::default();
        read(item, "import", &mut fields)?;
        let ImportEntry {
            image,
            add,
            to,
            owner,
            group,
            point,
            stage,
            include_paths,
            exclude_paths,
        } = fields;
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

/// One `import:` entry, key by key.
#[derive(Default)]
struct ImportEntry {
    image: Option<Spanned<String>>,
    add: Option<Spanned<String>>,
    to: Option<Spanned<String>>,
    owner: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
    point: Option<Spanned<ImportPoint>>,
    stage: Option<Spanned<String>>,
    include_paths: Vec<Spanned<String>>,
    exclude_paths: Vec<Spanned<String>>,
}

impl Section for ImportEntry {
    const CONTEXT: &'static str = "an `import` entry";
    const KEYS: &'static [&'static str] = IMPORT_KEYS;

    fn entry(&mut self, e: &Entry<'_>) -> Result<()> {
        let path = format!("import.{}", e.name);
        match e.name {
            "from" | "image" | "artifact" => {
                if self.image.is_some() {
                    return Err(Box::new(Diagnostic::new(
                        "an import takes one of `from`, `image` and `artifact`",
                        Some(e.key.span),
                    )));
                }
                self.image = Some(spanned_scalar(e, &path)?);
            }
            "stage" => self.stage = Some(spanned_scalar(e, &path)?),
            "add" => self.add = Some(inside(absolute(spanned_scalar(e, &path)?, "add")?, "add")?),
            "to" => self.to = Some(inside(absolute(spanned_scalar(e, &path)?, "to")?, "to")?),
            "owner" => self.owner = Some(spanned_scalar(e, &path)?),
            "group" => self.group = Some(spanned_scalar(e, &path)?),
            "includePaths" => self.include_paths = masks(e.value, &path)?,
            "excludePaths" => self.exclude_paths = masks(e.value, &path)?,
            "before" | "after" => {
                if let Some(first) = &self.point {
                    let first: &Spanned<ImportPoint> = first;
                    return Err(Box::new(
                        Diagnostic::new(
                            "an import takes exactly one of `before` and `after`",
                            Some(e.key.span),
                        )
                        .note(first.span, "already given here"),
                    ));
                }
                self.point = Some(stage_point(e, &path)?);
            }
            _ => unreachable_key(e.key)?,
        }
        Ok(())
    }
}

/// `mount:`: directories mounted into build containers.
fn mount_entries(value: &Node) -> Result<Vec<MountConfig>> {
    let items = list_items(value, "mount")?;
    let mut out = Vec::new();
    for item in items {
        let mut fields = MountEntry::default();
        read(item, "mount", &mut fields)?;
        let MountEntry { source, to } = fields;
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

/// One `mount:` entry, key by key.
#[derive(Default)]
struct MountEntry {
    source: Option<Spanned<strata_plan::MountSource>>,
    to: Option<Spanned<String>>,
}

impl Section for MountEntry {
    const CONTEXT: &'static str = "a `mount` entry";
    const KEYS: &'static [&'static str] = MOUNT_KEYS;

    fn entry(&mut self, e: &Entry<'_>) -> Result<()> {
        let path = format!("mount.{}", e.name);
        let text = scalar(e.value, &path)?;
        if self.source.is_some() && e.name != "to" {
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
                            Diagnostic::new(
                                format!("unknown mount source `{other}`"),
                                Some(e.value.span),
                            )
                            .help(
                                "use `from: tmp_dir`, `from: build_dir` or `fromPath: /host/path`",
                            ),
                        ));
                    }
                };
                self.source = Some(Spanned {
                    value: kind,
                    span: e.value.span,
                });
            }
            // Absolute, relative to the project directory, or below `~` (werf's
            // "absolute or relative path"); the lowering resolves it.
            "fromPath" => {
                self.source = Some(Spanned {
                    value: strata_plan::MountSource::Host(text.into()),
                    span: e.value.span,
                });
            }
            "to" => {
                self.to = Some(absolute(
                    Spanned {
                        value: text.to_string(),
                        span: e.value.span,
                    },
                    "to",
                )?)
            }
            _ => unreachable_key(e.key)?,
        }
        Ok(())
    }
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
    let mut out = Vec::new();
    for item in items {
        let mut fields = GitEntry::default();
        read(item, "git", &mut fields)?;
        let GitEntry {
            url,
            git_ref,
            add,
            to,
            owner,
            group,
            include_paths,
            exclude_paths,
            stage_dependencies,
            basic_auth,
        } = fields;
        if let (Some(auth), None) = (&basic_auth, &url) {
            return Err(Box::new(
                Diagnostic::new(
                    "`basicAuth` authenticates the clone of a remote; this mapping has no `url`",
                    Some(auth.key),
                )
                .help("remove it, or add `url:`"),
            ));
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
            basic_auth,
        });
    }
    Ok(out)
}

/// `stageDependencies:` of a git mapping, read into its masks per user stage.
struct StageDependencies<'a>(&'a mut Vec<(UserStage, Vec<Spanned<String>>)>);

impl Section for StageDependencies<'_> {
    const CONTEXT: &'static str = "`stageDependencies`";
    const KEYS: &'static [&'static str] = STAGE_DEPENDENCY_KEYS;

    fn entry(&mut self, d: &Entry<'_>) -> Result<()> {
        let stage = UserStage::ALL
            .into_iter()
            .find(|s| s.name() == d.name)
            .expect("`entries` only lets user stage names through");
        self.0.push((
            stage,
            masks(d.value, &format!("git.stageDependencies.{}", d.name))?,
        ));
        Ok(())
    }
}

/// One `git:` mapping, key by key.
#[derive(Default)]
struct GitEntry {
    url: Option<Spanned<String>>,
    git_ref: Option<(GitRef, Spanned<String>)>,
    add: Option<Spanned<String>>,
    to: Option<Spanned<String>>,
    owner: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
    include_paths: Vec<Spanned<String>>,
    exclude_paths: Vec<Spanned<String>>,
    stage_dependencies: Vec<(UserStage, Vec<Spanned<String>>)>,
    basic_auth: Option<BasicAuthConfig>,
}

impl Section for GitEntry {
    const CONTEXT: &'static str = "a `git` mapping";
    const KEYS: &'static [&'static str] = GIT_KEYS;

    fn entry(&mut self, e: &Entry<'_>) -> Result<()> {
        let path = format!("git.{}", e.name);
        match e.name {
            "url" => self.url = Some(spanned_scalar(e, &path)?),
            "branch" | "tag" | "commit" => {
                let kind = match e.name {
                    "branch" => GitRef::Branch,
                    "tag" => GitRef::Tag,
                    _ => GitRef::Commit,
                };
                if let Some((_, first)) = &self.git_ref {
                    return Err(Box::new(
                        Diagnostic::new(
                            "a git mapping takes one of `branch`, `tag` and `commit`",
                            Some(e.key.span),
                        )
                        .note(first.span, "already given here"),
                    ));
                }
                self.git_ref = Some((kind, spanned_scalar(e, &path)?));
            }
            "add" => self.add = Some(inside(absolute(spanned_scalar(e, &path)?, "add")?, "add")?),
            "to" => self.to = Some(inside(absolute(spanned_scalar(e, &path)?, "to")?, "to")?),
            "owner" => self.owner = Some(spanned_scalar(e, &path)?),
            "group" => self.group = Some(spanned_scalar(e, &path)?),
            "includePaths" => self.include_paths = masks(e.value, &path)?,
            "excludePaths" => self.exclude_paths = masks(e.value, &path)?,
            "basicAuth" => self.basic_auth = Some(basic_auth_entry(e)?),
            "stageDependencies" => read_value(
                e,
                "git.stageDependencies",
                &mut StageDependencies(&mut self.stage_dependencies),
            )?,
            _ => unreachable_key(e.key)?,
        }
        Ok(())
    }
}

/// `basicAuth: {username, password: {env | src | value}}` of a git mapping.
fn basic_auth_entry(e: &Entry<'_>) -> Result<BasicAuthConfig> {
    let mut auth = BasicAuth::default();
    read_value(e, "git.basicAuth", &mut auth)?;
    let BasicAuth { username, password } = auth;
    let missing = |what: &str, help: &str| {
        Box::new(
            Diagnostic::new(format!("`basicAuth` needs {what}"), Some(e.value.span))
                .help(help.to_string()),
        )
    };
    Ok(BasicAuthConfig {
        key: e.key.span,
        username: username.ok_or_else(|| missing("`username`", "add `username: NAME`"))?,
        password: password.ok_or_else(|| {
            missing(
                "a `password`",
                "add `password: {env: VARIABLE}` (or `src: FILE`, `value: TEXT`)",
            )
        })?,
    })
}

/// `basicAuth:` of a git mapping, key by key.
#[derive(Default)]
struct BasicAuth {
    username: Option<Spanned<String>>,
    password: Option<Spanned<strata_plan::SecretSource>>,
}

impl Section for BasicAuth {
    const CONTEXT: &'static str = "`basicAuth`";
    const KEYS: &'static [&'static str] = BASIC_AUTH_KEYS;
    const NESTED: &'static [(&'static str, &'static [&'static str])] =
        &[("password", PASSWORD_KEYS)];

    fn entry(&mut self, a: &Entry<'_>) -> Result<()> {
        match a.name {
            "username" => {
                self.username = Some(Spanned {
                    value: scalar(a.value, "git.basicAuth.username")?.to_string(),
                    span: a.value.span,
                })
            }
            "password" => read_value(
                a,
                "git.basicAuth.password",
                &mut Password(&mut self.password),
            )?,
            _ => unreachable_key(a.key)?,
        }
        Ok(())
    }
}

/// `basicAuth.password:`, one of its sources.
struct Password<'a>(&'a mut Option<Spanned<strata_plan::SecretSource>>);

impl Section for Password<'_> {
    const CONTEXT: &'static str = "`basicAuth.password`";
    const KEYS: &'static [&'static str] = PASSWORD_KEYS;

    fn entry(&mut self, p: &Entry<'_>) -> Result<()> {
        use strata_plan::SecretSource;
        let text = scalar(p.value, &format!("git.basicAuth.password.{}", p.name))?;
        let source = match p.name {
            "env" => SecretSource::Env(text.to_string()),
            "src" | "file" => SecretSource::File(text.into()),
            "value" => SecretSource::Value(text.to_string()),
            _ => return unreachable_key(p.key),
        };
        if self.0.is_some() {
            return Err(Box::new(Diagnostic::new(
                "a password takes one of `env`, `src` and `value`",
                Some(p.key.span),
            )));
        }
        *self.0 = Some(Spanned {
            value: source,
            span: p.value.span,
        });
        Ok(())
    }
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

/// The two kinds of werf's assembly instructions, as their sections read them.
trait Instruction: Sized {
    /// The section's key.
    const NAME: &'static str;
    /// The section, as messages name it.
    const CONTEXT: &'static str;
    /// A user stage's value (at dotted `path`).
    fn read(value: &Node, path: &str) -> Result<Vec<Spanned<Self>>>;
}

impl Instruction for String {
    const NAME: &'static str = "shell";
    const CONTEXT: &'static str = "`shell`";
    fn read(value: &Node, path: &str) -> Result<Vec<Spanned<Self>>> {
        commands(value, path)
    }
}

impl Instruction for AnsibleTask {
    const NAME: &'static str = "ansible";
    const CONTEXT: &'static str = "`ansible`";
    fn read(value: &Node, path: &str) -> Result<Vec<Spanned<Self>>> {
        Ok(super::ansible::tasks(value, path)?
            .into_iter()
            .map(|(value, span)| Spanned { value, span })
            .collect())
    }
}

/// `shell:` or `ansible:`.
fn instructions<T: Instruction>(e: &Entry<'_>) -> Result<Instructions<T>> {
    let mut section = Instructions {
        key: Some(e.key.span),
        ..Instructions::default()
    };
    if e.value.is_null() {
        return Ok(section);
    }
    read_value(e, T::NAME, &mut InstructionsSection(&mut section))?;
    Ok(section)
}
/// `shell:` or `ansible:`, read into its settings.
struct InstructionsSection<'a, T>(&'a mut Instructions<T>);

impl<T: Instruction> Section for InstructionsSection<'_, T> {
    const CONTEXT: &'static str = T::CONTEXT;
    const KEYS: &'static [&'static str] = SHELL_KEYS;

    fn entry(&mut self, s: &Entry<'_>) -> Result<()> {
        let section = &mut *self.0;
        let path = format!("{}.{}", T::NAME, s.name);
        if s.name == "cacheVersion" {
            section.cache_version = version(s, &path)?;
            return Ok(());
        }
        let mut matched = false;
        for stage in UserStage::ALL {
            if s.name == stage.name() {
                let target = section.stage_mut(stage);
                target.key = Some(s.key.span);
                target.commands = T::read(s.value, &path)?;
                matched = true;
            } else if s.name == stage.cache_version_key() {
                section.stage_mut(stage).cache_version = version(s, &path)?;
                matched = true;
            }
        }
        if !matched {
            unreachable_key(s.key)?;
        }
        Ok(())
    }
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
    read_value(e, "docker", &mut DockerSection(&mut docker))?;
    Ok(docker)
}
/// `docker:`, read into the directives.
struct DockerSection<'a>(&'a mut Docker);

impl Section for DockerSection<'_> {
    const CONTEXT: &'static str = "`docker`";
    const KEYS: &'static [&'static str] = DOCKER_KEYS;

    fn entry(&mut self, d: &Entry<'_>) -> Result<()> {
        let docker = &mut *self.0;
        let path = format!("docker.{}", d.name);
        match d.name {
            "VOLUME" => docker.volume = Some(keyed(scalar_list(d.value, &path)?, d)),
            "EXPOSE" => docker.expose = Some(keyed(scalar_list(d.value, &path)?, d)),
            "ENV" => docker.env = Some(keyed(scalar_map(d.value, &path)?, d)),
            "LABEL" => docker.label = Some(keyed(scalar_map(d.value, &path)?, d)),
            "ENTRYPOINT" => docker.entrypoint = Some(keyed(argv(d.value, &path)?, d)),
            "CMD" => docker.cmd = Some(keyed(argv(d.value, &path)?, d)),
            "WORKDIR" => docker.workdir = Some(keyed(scalar(d.value, &path)?.to_string(), d)),
            // werf: "affects only docker-server backend"; strata writes values as given.
            "exactValues" => {
                boolean(d.value, &path)?;
            }
            "USER" => docker.user = Some(keyed(scalar(d.value, &path)?.to_string(), d)),
            "HEALTHCHECK" => {
                let text = string(d.value, &path)?;
                let check = docker::healthcheck(text).map_err(|m| {
                    Box::new(Diagnostic::new(m, Some(d.value.span)).help(
                        "write it as in a Dockerfile: `NONE` or \
                         `[--interval=30s] [--timeout=30s] [--start-period=0s] [--retries=3] \
                         CMD <command>`",
                    ))
                })?;
                docker.healthcheck = Some(keyed(check, d));
            }
            _ => unreachable_key(d.key)?,
        }
        Ok(())
    }
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
/// The string value of `e` with its span (`path` names it in the error).
fn spanned_scalar(e: &Entry<'_>, path: &str) -> Result<Spanned<String>> {
    Ok(Spanned {
        value: scalar(e.value, path)?.to_string(),
        span: e.value.span,
    })
}

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

/// A mapping of the config, read by [`read`]: the type that collects what the mapping says
/// declares its keys once (`KEYS`, in the order "valid keys are" lists them) and reads each
/// checked entry in [`Section::entry`]. The driver checks every key of the mapping first (a
/// string, unique, known: the errors users see, with their wording and spans), then hands the
/// entries over in written order.
pub(super) trait Section {
    /// How "unknown key ... in X" names the mapping (`` `shell` ``, "an image document").
    const CONTEXT: &'static str;
    /// The keys the mapping takes.
    const KEYS: &'static [&'static str];
    /// werf keys strata does not implement yet: an error at the key.
    const UNSUPPORTED: &'static [&'static str] = &[];
    /// Sub-sections whose keys users put here by mistake: `(section, its keys)`.
    const NESTED: &'static [(&'static str, &'static [&'static str])] = &[];

    /// Reads one entry, whose key is one of `KEYS`.
    fn entry(&mut self, e: &Entry<'_>) -> Result<()>;
}

/// Reads the mapping `node` (at dotted `path`, for messages; empty for a document) into
/// `section`.
pub(super) fn read<S: Section>(node: &Node, path: &str, section: &mut S) -> Result<()> {
    for e in entries::<S>(node, path)? {
        section.entry(&e)?;
    }
    Ok(())
}

/// [`read`] of the value of `e`, which must be a mapping.
pub(super) fn read_value<S: Section>(e: &Entry<'_>, path: &str, section: &mut S) -> Result<()> {
    match &e.value.kind {
        Kind::Map(_) => read(e.value, path, section),
        _ => Err(expected(e.value, "a mapping", path)),
    }
}

/// A checked `key: value` pair.
pub(super) struct Entry<'a> {
    pub(super) name: &'a str,
    pub(super) key: &'a Node,
    pub(super) value: &'a Node,
}

/// The pairs of a mapping, after checking that every key is a string, unique and known.
fn entries<'a, S: Section>(node: &'a Node, path: &str) -> Result<Vec<Entry<'a>>> {
    let Kind::Map(pairs) = &node.kind else {
        return Err(expected(node, "a mapping", path));
    };
    let mut out: Vec<Entry<'a>> = Vec::new();
    for (key, value) in pairs {
        let Some(name) = key.as_str() else {
            return Err(Box::new(Diagnostic::new(
                format!(
                    "expected a string key in {}, found {}",
                    S::CONTEXT,
                    key.type_name()
                ),
                Some(key.span),
            )));
        };
        if let Some(first) = out.iter().find(|e| e.name == name) {
            return Err(duplicate(name, S::CONTEXT, key.span, first.key.span));
        }
        if S::UNSUPPORTED.contains(&name) {
            return Err(Box::new(
                Diagnostic::new(
                    format!("`{name}` is not supported by strata yet"),
                    Some(key.span),
                )
                .label("not supported yet"),
            ));
        }
        if !S::KEYS.contains(&name) {
            let mut d = Diagnostic::new(
                format!("unknown key `{name}` in {}", S::CONTEXT),
                Some(key.span),
            );
            let nested = S::NESTED.iter().find_map(|(sub, keys)| {
                keys.iter()
                    .find(|k| k.eq_ignore_ascii_case(name))
                    .map(|k| (*sub, *k))
            });
            d = match (suggest(name, S::KEYS), nested) {
                (Some(s), _) => d.help(format!("did you mean `{s}`?")),
                (None, Some((sub, k))) => d.help(format!("`{k}` goes under `{sub}:`")),
                (None, None) => d.help(format!(
                    "valid keys are {}",
                    S::KEYS
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
    let mut out = Vec::new();
    for item in items {
        let mut fields = DependencyEntry::default();
        read(item, "dependencies", &mut fields)?;
        let DependencyEntry {
            image,
            at,
            imports,
            build_args,
        } = fields;
        let missing = |k: &str| {
            Box::new(Diagnostic::new(
                format!("a dependency needs `{k}`"),
                Some(item.span),
            ))
        };
        out.push(DependencyConfig {
            span: item.span,
            image: image.ok_or_else(|| missing("image"))?,
            point: at,
            imports,
            build_args,
        });
    }
    Ok(out)
}

/// One `dependencies:` entry, key by key.
#[derive(Default)]
struct DependencyEntry {
    image: Option<Spanned<String>>,
    at: Option<Spanned<ImportPoint>>,
    imports: Vec<(Spanned<strata_plan::DependencyValue>, Spanned<String>)>,
    build_args: Vec<(Spanned<strata_plan::DependencyValue>, Spanned<String>)>,
}

impl Section for DependencyEntry {
    const CONTEXT: &'static str = "a `dependencies` entry";
    const KEYS: &'static [&'static str] = DEPENDENCY_KEYS;

    fn entry(&mut self, e: &Entry<'_>) -> Result<()> {
        let path = format!("dependencies.{}", e.name);
        match e.name {
            "image" => {
                self.image = Some(Spanned {
                    value: scalar(e.value, &path)?.to_string(),
                    span: e.value.span,
                })
            }
            "before" | "after" => {
                if self.at.is_some() {
                    return Err(Box::new(Diagnostic::new(
                        "a dependency takes exactly one of `before` and `after`",
                        Some(e.key.span),
                    )));
                }
                self.at = Some(stage_point(e, &path)?);
            }
            "imports" => {
                let Kind::Seq(list) = &e.value.kind else {
                    return Err(expected(e.value, "a list of mappings", &path));
                };
                for imp in list {
                    let (kind, (target, build_arg)) = dependency_import(imp)?;
                    let (list, key) = if build_arg {
                        (&mut self.build_args, "targetBuildArg")
                    } else {
                        (&mut self.imports, "targetEnv")
                    };
                    if let Some((_, first)) = list
                        .iter()
                        .find(|(_, t): &&(_, Spanned<String>)| t.value == target.value)
                    {
                        return Err(Box::new(
                            Diagnostic::new(
                                format!(
                                    "each {key} of a dependency must be unique, `{}` is not",
                                    target.value
                                ),
                                Some(target.span),
                            )
                            .note(first.span, "first given here"),
                        ));
                    }
                    list.push((kind, target));
                }
            }
            _ => unreachable_key(e.key)?,
        }
        Ok(())
    }
}

/// werf's rules for the two kinds of image: a stapel image's dependency runs at a stage
/// (`before`/`after`) and sets variables (`targetEnv`); a Dockerfile image's sets build args
/// (`targetBuildArg`) of the whole build.
fn check_dependencies(dependencies: &[DependencyConfig], dockerfile: bool) -> Result<()> {
    for dep in dependencies {
        match (&dep.point, dockerfile) {
            (None, false) => {
                return Err(Box::new(Diagnostic::new(
                    "a dependency needs `before` or `after`",
                    Some(dep.span),
                )));
            }
            (Some(p), true) => {
                return Err(Box::new(
                    Diagnostic::new(
                        "a dependency of an image built from a Dockerfile takes no `before` or `after`",
                        Some(p.span),
                    )
                    .help("its build args are set for the whole Dockerfile: remove it"),
                ));
            }
            _ => {}
        }
        let wrong = match dockerfile {
            false => dep.build_args.first().map(|(_, t)| {
                (t.span, "`targetBuildArg` is for images built from a Dockerfile; a stapel image takes `targetEnv`")
            }),
            true => dep.imports.first().map(|(_, t)| {
                (t.span, "`targetEnv` is for stapel images; an image built from a Dockerfile takes `targetBuildArg`")
            }),
        };
        if let Some((span, message)) = wrong {
            return Err(Box::new(Diagnostic::new(message, Some(span))));
        }
    }
    Ok(())
}

/// A dependency import: the type, and the target with whether it is a build arg.
type DependencyImport = (
    Spanned<strata_plan::DependencyValue>,
    (Spanned<String>, bool),
);

/// One `{type, targetEnv}` (or `{type, targetBuildArg}`, then `true`) of a dependency.
fn dependency_import(imp: &Node) -> Result<DependencyImport> {
    let mut fields = DependencyImportEntry::default();
    read(imp, "dependencies.imports", &mut fields)?;
    let DependencyImportEntry { kind, target } = fields;
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

/// One entry of a dependency's `imports:`, key by key.
#[derive(Default)]
struct DependencyImportEntry {
    kind: Option<Spanned<strata_plan::DependencyValue>>,
    target: Option<(Spanned<String>, bool)>,
}

impl Section for DependencyImportEntry {
    const CONTEXT: &'static str = "a dependency's `imports` entry";
    const KEYS: &'static [&'static str] = DEPENDENCY_IMPORT_KEYS;

    fn entry(&mut self, f: &Entry<'_>) -> Result<()> {
        use strata_plan::DependencyValue as V;
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
                self.kind = Some(Spanned {
                    value: v,
                    span: f.value.span,
                });
            }
            "targetEnv" | "targetBuildArg" => {
                if self.target.is_some() {
                    return Err(Box::new(Diagnostic::new(
                        "a dependency import takes one of `targetEnv` and `targetBuildArg`",
                        Some(f.key.span),
                    )));
                }
                let value = Spanned {
                    value: text.to_string(),
                    span: f.value.span,
                };
                self.target = Some((value, f.name == "targetBuildArg"));
            }
            _ => unreachable_key(f.key)?,
        }
        Ok(())
    }
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
