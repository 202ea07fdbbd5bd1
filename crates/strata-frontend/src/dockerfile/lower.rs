//! Lowering a parsed Dockerfile to the plan: each Dockerfile stage becomes a plan image, each
//! instruction that changes something a cached plan stage.
//!
//! | instruction | plan stage | digest inputs (their [`DigestInput`] kinds) |
//! |---|---|---|
//! | `FROM` | `from` | the base (resolved by the solver); `docker.ENV` for a base without PATH |
//! | `RUN` | `N-run`, one `Run` | the command (`instructions`), the shell, one `buildArg` per build arg in scope, the mounts' kinds and targets, `--network`, `--security=insecure` (`setting`s) |
//! | `COPY`/`ADD` from the context | `N-copy`/`N-add`, one `CopyFiles` | `copySource`: a checksum of exactly the files copied (paths, modes, contents, after `.dockerignore`), `--chown`, `--chmod`, the destination; a symbolic `--chmod` (`setting`) |
//! | `ADD <url>` | `N-add`, one `CopyFiles` per URL | `copySource` `add-url[N]`: the URL, destination, owner, mode and the download's checksum |
//! | `ADD <git repository>` | `N-add`, one `CopyFiles` per repository, from its checkout ([`Fetch`]) | `copySource` `add-git[N]`: destination, owner, mode and the checkout's files' checksum (with `--keep-git-dir`: the worktree's and the commit) |
//! | `COPY --from` | `N-copy`, one `Import` | `import[N]`: the source and destination (and `--exclude`, a symbolic `--chmod` when given); late: `importFiles`, a checksum of the copied files |
//! | `WORKDIR` | `N-workdir`, `MakeDir` + `Config` | the path (`directive`), the owner (`setting`) |
//! | `ENV`, `LABEL`, `USER`, `EXPOSE`, `VOLUME`, `CMD`, `ENTRYPOINT`, `HEALTHCHECK`, `STOPSIGNAL`, `ONBUILD`, `MAINTAINER`, `SHELL` | `N-keyword`, one `Config` | the directive's value (`directive`) |
//!
//! A stage starts from its base's ENV, WORKDIR, USER and SHELL ([`BaseConfig`], read from the
//! base image's config by the caller, or from the earlier stage), as BuildKit's conversion
//! does. `ARG` changes how later instructions are read and makes no stage of its
//! own: a build arg reaches the digest of every `RUN` that sees it. Stages the target does not
//! need are not built ([`Plan::default_images`]). Secrets never enter the plan: only their ids.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use strata_plan::{
    Base, Command, ConfigChange, CopyEntry, CopyFiles, Diagnostic, DigestInput, Healthcheck, Image,
    ImageName, Import, LateInputs, MissingSources, MountSource, Op, Plan, Run, RunMount, RunShell,
    Setting, SourceMap, Span, Stage, StageKind, StageOptions, Step,
};

use super::chmod::Chmod;
use super::context_files::{self, Snapshot, SnapshotDirs};
use super::git_ref::GitRef;
use super::ignore::{DockerIgnore, ExcludeError};
use super::{CommandLine, Dockerfile, Instruction, MountType, Network, Security, Source, Word};

type Result<T> = std::result::Result<T, Box<Diagnostic>>;

/// The PATH BuildKit sets for images that have none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to build from a Dockerfile.
#[derive(Clone, Debug, Default)]
pub struct DockerfileOptions {
    /// The build context.
    pub context: PathBuf,
    /// The stage to build (default: the last).
    pub target: Option<String>,
    /// `--build-arg` values.
    pub build_args: Vec<(String, String)>,
    /// The name the target image is tagged with.
    pub tag: String,
    /// The `security.insecure` entitlement was granted (`strata build --allow
    /// security.insecure`): `RUN --security=insecure` may be used.
    pub allow_insecure: bool,
    /// The run settings of the images `FROM` names (by the reference as written, after
    /// expansion; see [`base_references`]): a stage starts from its base's ENV, WORKDIR,
    /// USER and SHELL, as BuildKit's does (it reads the base's config while it converts the
    /// Dockerfile). A reference missing here starts from an empty config.
    pub base_configs: BTreeMap<String, BaseConfig>,
    /// Labels set on the target image (docker's `--label`), after its own.
    pub labels: Vec<(String, String)>,
    /// Downloads `ADD <url>` sources and checks out `ADD <git repository>` ones; none: such
    /// an `ADD` is an error.
    pub fetcher: Option<Fetcher>,
    /// Where the lowering pins the context files a `COPY`/`ADD` copies
    /// ([`super::context_files::Snapshot`]): the plan's checksum and the layer are both of that
    /// copy. None: such a `COPY` is an error.
    pub snapshot: Option<SnapshotDirs>,
    /// Build every stage again (docker's `--no-cache`).
    pub no_cache: bool,
    /// Build these stages (by name) again, and the stages built on them or copying from them
    /// (docker's `--no-cache-filter`).
    pub no_cache_filter: Vec<String>,
    /// Named contexts (docker's `--build-context NAME=...`): what a `FROM NAME`, `COPY
    /// --from=NAME` or `RUN --mount=from=NAME` that names no earlier stage means.
    pub build_contexts: BTreeMap<String, NamedContext>,
}

/// What a named build context is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamedContext {
    /// A directory of this machine (`NAME=DIR`), for `COPY --from`.
    Dir(PathBuf),
    /// An image (`NAME=docker-image://REF`; a manifest digest `sha256:HEX` is one in the
    /// store).
    Image(String),
    /// The image of an OCI layout directory (`NAME=oci-layout://DIR[@DIGEST]`: the one it
    /// holds, or the one of that manifest digest), which the caller loads into its store
    /// and names as an [`NamedContext::Image`] of its digest before converting.
    OciLayout {
        /// The layout directory.
        dir: PathBuf,
        /// The manifest digest after `@`, if given.
        digest: Option<String>,
    },
    /// A file over HTTP (`NAME=https://HOST/PATH`, no git repository), which the caller
    /// downloads, as BuildKit's `llb.HTTP(url, Filename("context"))`, into a directory of its
    /// own as the one file `context` (mode 0600), and names as a [`NamedContext::Dir`].
    Url(String),
    /// A git repository (`NAME=https://HOST/REPO.git#REF:SUBDIR`, `git://…`, `ssh://…`,
    /// `user@host:path`), which the caller checks out (its `SUBDIR`, no `.git`) and names as a
    /// [`NamedContext::Dir`].
    Git(super::GitRef),
}

impl std::str::FromStr for NamedContext {
    type Err = String;

    /// buildx's forms: `docker-image://REF`, `oci-layout://DIR[@DIGEST]`, a git repository,
    /// an `http(s)://` URL, or a directory. `target:NAME` is refused as `docker buildx build`
    /// refuses it: it names a target of a bake file, which only `docker buildx bake` builds
    /// (buildx's `validateTargetLinks` finds no such target in a build of one).
    fn from_str(s: &str) -> std::result::Result<NamedContext, String> {
        if let Some(target) = s.strip_prefix("target:") {
            return Err(format!(
                "`target:{target}` names a target of a bake file, which only `docker buildx bake` links; `docker buildx build` refuses it too (failed to find target {target}). To build on a stage of this Dockerfile, name the stage itself in FROM, COPY --from or RUN --mount=from"
            ));
        }
        if let Some(git) = super::GitRef::parse(s)? {
            return Ok(NamedContext::Git(git));
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            return Ok(NamedContext::Url(s.to_string()));
        }
        if let Some(reference) = s.strip_prefix("docker-image://") {
            return Ok(NamedContext::Image(reference.to_string()));
        }
        if let Some(layout) = s.strip_prefix("oci-layout://") {
            let (dir, digest) = match layout.rsplit_once('@') {
                Some((dir, digest)) => (dir, Some(digest.to_string())),
                None => (layout, None),
            };
            return std::fs::canonicalize(dir)
                .map(|dir| NamedContext::OciLayout { dir, digest })
                .map_err(|e| format!("the OCI layout {dir}: {e}"));
        }
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(format!(
                "strata has no `{scheme}://` contexts; give a directory, docker-image://REF, oci-layout://DIR, an http(s) URL or a git repository"
            ));
        }
        std::fs::canonicalize(s)
            .map(NamedContext::Dir)
            .map_err(|e| format!("the directory {s}: {e}"))
    }
}

/// What the lowering fetches from the network for `ADD` (it does no network I/O itself): each
/// answer is a directory of the build that the plan copies from. Errors are messages for the
/// user.
pub trait Fetch: Send + Sync {
    /// Downloads the file of an `ADD <url>` (with its `--checksum`, `sha256:HEX`, verified)
    /// and returns the directory it was saved in and its name there, with BuildKit's
    /// attributes: the name from `Content-Disposition` or the URL, the mtime of
    /// `Last-Modified` when the server sends one.
    fn download(
        &self,
        url: &str,
        checksum: Option<&str>,
    ) -> std::result::Result<(PathBuf, String), String>;

    /// Checks out the commit `reference` names (a branch, tag or commit; empty: the remote's
    /// default branch) of the repository `remote` into a new directory, files 0644 or 0755,
    /// with its `.git` only when `keep_git_dir`, and returns it with the commit's full hash.
    fn checkout(
        &self,
        remote: &str,
        reference: &str,
        keep_git_dir: bool,
    ) -> std::result::Result<(PathBuf, String), String>;
}

/// One source of an `ADD`, by its kind.
enum AddSource {
    /// Files of the build context, or a heredoc.
    Local(Source),
    /// A git repository.
    Git(GitRef, Span),
    /// An http(s) download.
    Url(String, Span),
}

/// The [`Fetch`] of a build.
#[derive(Clone)]
pub struct Fetcher(pub std::sync::Arc<dyn Fetch>);

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fetcher")
    }
}

/// What a stage inherits from the config of its base image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BaseConfig {
    /// `Env`, in order.
    pub env: Vec<(String, String)>,
    /// `WorkingDir` (empty: `/`).
    pub workdir: String,
    /// `User`.
    pub user: String,
    /// `Shell` (empty: `/bin/sh -c`).
    pub shell: Vec<String>,
    /// The build args in scope at the end of an earlier stage, in declaration order, with the
    /// values its instructions saw: a stage built `FROM` it inherits them (BuildKit's
    /// `dispatchState.init`). Images have none.
    pub args: Vec<(String, String)>,
    /// An image's `OnBuild` triggers, as its config keeps them (each an instruction's text
    /// after `ONBUILD`): a stage built `FROM` the image runs them first, as BuildKit does.
    pub onbuild: Vec<String>,
}

/// How the caller reads the config of an image a Dockerfile's stage is built `FROM` while the
/// Dockerfile is converted (BuildKit reads it then too): from its store, pulling it first if
/// need be.
pub trait ResolveBase: std::fmt::Debug {
    /// The run settings of the image `reference` (as written, after expansion), or `None`
    /// when it cannot be resolved: the build reports that when, and only if, a stage the
    /// target needs is built on it.
    fn base_config(&self, reference: &str) -> Option<BaseConfig>;
}

/// `options` with the configs `bases` resolves for the images the stages of `dockerfile` are
/// built `FROM` ([`base_references`]) added to its [`DockerfileOptions::base_configs`].
///
/// # Errors
/// As [`base_references`].
pub fn with_base_configs(
    dockerfile: &Dockerfile,
    options: &DockerfileOptions,
    bases: &dyn ResolveBase,
) -> Result<DockerfileOptions> {
    let mut options = options.clone();
    for reference in base_references(dockerfile, &options)? {
        if let Some(config) = bases.base_config(&reference) {
            options.base_configs.insert(reference, config);
        }
    }
    Ok(options)
}

/// The `ONBUILD` triggers of the images in `options.base_configs`, parsed as the instructions
/// of a Dockerfile of their own that `sources` gets (named `ONBUILD of REFERENCE`, so an error
/// in a trigger points at its text), by reference.
fn image_triggers(
    options: &DockerfileOptions,
    sources: &mut SourceMap,
) -> Result<BTreeMap<String, Vec<Instruction>>> {
    let mut out = BTreeMap::new();
    for (reference, config) in &options.base_configs {
        if config.onbuild.is_empty() {
            continue;
        }
        let name = format!("ONBUILD of {reference}");
        let mut text = format!("# the ONBUILD triggers of the image {reference}\nFROM scratch\n");
        for trigger in &config.onbuild {
            text.push_str(trigger);
            text.push('\n');
        }
        let file = sources.add(PathBuf::from(&name), name, text.clone());
        let mut parsed = super::parse(file, &text)?;
        if let Some(extra) = parsed.stages.get(1) {
            return Err(Box::new(Diagnostic::new(
                format!("the image {reference} has an ONBUILD trigger that is a FROM"),
                Some(extra.from.span),
            )));
        }
        let instructions = parsed.stages.pop().map(|s| s.instructions);
        out.insert(reference.clone(), instructions.unwrap_or_default());
    }
    Ok(out)
}

/// The image references the stages of `dockerfile` are built `FROM` (neither `scratch` nor
/// earlier stages), for the caller to resolve into [`DockerfileOptions::base_configs`].
pub fn base_references(
    dockerfile: &Dockerfile,
    options: &DockerfileOptions,
) -> Result<Vec<String>> {
    let lowering = Lowering::new(dockerfile, options)?;
    let mut out = Vec::new();
    for (index, stage) in dockerfile.stages.iter().enumerate() {
        let text = stage
            .from
            .image
            .expand(lowering.escape, &|n| lowering.global_args.get(n).cloned())?;
        let earlier = !lowering.replaced(&text)
            && dockerfile.stages[..index].iter().any(|s| {
                s.name
                    .as_ref()
                    .is_some_and(|n| n.value.eq_ignore_ascii_case(&text))
            });
        let text = lowering.named_image(&text);
        if !text.eq_ignore_ascii_case("scratch") && !earlier && !out.contains(&text) {
            out.push(text);
        }
    }
    Ok(out)
}

/// Lowers `dockerfile` (whose text is in `sources`) to a plan.
pub fn lower(
    dockerfile: &Dockerfile,
    sources: SourceMap,
    options: &DockerfileOptions,
) -> std::result::Result<Plan, (Box<Diagnostic>, SourceMap)> {
    let mut sources = sources;
    let lowered = Lowering::new(dockerfile, options).and_then(|mut l| {
        l.image_triggers = image_triggers(options, &mut sources)?;
        let (images, default_images) = l.stages(dockerfile)?;
        if let Some(snapshot) = l.snapshot.into_inner() {
            snapshot.finish().map_err(|e| {
                Box::new(Diagnostic::new(
                    format!("cannot pin the build context's files: {e}"),
                    None,
                ))
            })?;
        }
        Ok((images, default_images, l.run_args, l.copy_paths))
    });
    match lowered {
        Ok((mut images, default_images, run_args, copy_paths)) => Ok(Plan {
            project: None,
            context_dir: options.context.clone(),
            images: {
                let named = super::history::Named {
                    run_args: &run_args,
                    copy_paths: &copy_paths,
                };
                super::history::set_created_by(&mut images, dockerfile, &sources, &named);
                images
            },
            notes: dockerfile
                .warnings
                .iter()
                .map(|w| w.render_warning(&sources))
                .collect(),
            sources,
            default_images,
            waiting: Vec::new(),
        }),
        Err(e) => Err((e, sources)),
    }
}

struct Lowering<'a> {
    options: &'a DockerfileOptions,
    escape: char,
    ignore: DockerIgnore,
    /// Global `ARG`s (before the first `FROM`) with their values.
    global_args: BTreeMap<String, String>,
    images: Vec<Image>,
    /// Per Dockerfile stage: its image index and the settings it ends with (for `FROM stage`).
    stage_images: Vec<(usize, BaseConfig)>,
    /// External images named by `COPY --from`, by reference.
    external: BTreeMap<String, usize>,
    /// The pinned copies of the context files copied so far, made on the first `COPY`.
    snapshot: RefCell<Option<Snapshot>>,
    /// Per `RUN` (by its span): the build args its history entry names, see
    /// [`Scope::declared`].
    run_args: std::collections::HashMap<Span, Vec<(String, String)>>,
    /// Per `COPY`/`ADD` without heredocs (by its span): its sources and destination expanded,
    /// as its history entry names them.
    copy_paths: std::collections::HashMap<Span, Vec<String>>,
    /// The `ONBUILD` triggers of the `FROM` images ([`BaseConfig::onbuild`]), parsed, by
    /// reference.
    image_triggers: BTreeMap<String, Vec<Instruction>>,
}

/// What an instruction sees while its stage is lowered.
#[derive(Default)]
struct Scope {
    env: BTreeMap<String, String>,
    /// The ENV in the config's order (the scope's map is for lookups).
    env_order: Vec<String>,
    /// The build args in declaration order (one declared again keeps its place).
    args: Vec<String>,
    /// Every `ARG` name this stage declared, in order, repeats included: what BuildKit's
    /// history names for a `RUN` (`|2 A=x B=`), with the values the command sees.
    declared: Vec<String>,
    /// What words and commands see: ENV and ARG values, the one set last winning, as in
    /// BuildKit's state, to which both add (an ARG after an ENV of its name overrides it for
    /// the stage's instructions, not in the config).
    vars: BTreeMap<String, String>,
    shell: Vec<String>,
    workdir: String,
    /// The config's `USER` (WORKDIR creates its directories as this user).
    user: String,
    /// `CMD` set in this stage (an `ENTRYPOINT` after it keeps it, BuildKit's rule).
    cmd: Option<Vec<String>>,
}

impl Scope {
    /// A stage's scope from what its base image's config holds.
    fn from_base(base: &BaseConfig) -> Scope {
        let mut scope = Scope {
            shell: if base.shell.is_empty() {
                vec!["/bin/sh".into(), "-c".into()]
            } else {
                base.shell.clone()
            },
            workdir: if base.workdir.is_empty() {
                "/".into()
            } else {
                base.workdir.clone()
            },
            user: base.user.clone(),
            ..Scope::default()
        };
        scope.set_env(&base.env);
        for (k, v) in &base.args {
            scope.set_arg(k, v);
        }
        scope
    }

    fn set_env(&mut self, pairs: &[(String, String)]) {
        for (k, v) in pairs {
            if self.env.insert(k.clone(), v.clone()).is_none() {
                self.env_order.push(k.clone());
            }
            self.vars.insert(k.clone(), v.clone());
        }
    }

    fn set_arg(&mut self, name: &str, value: &str) {
        if !self.args.iter().any(|a| a == name) {
            self.args.push(name.to_string());
        }
        self.vars.insert(name.to_string(), value.to_string());
    }

    /// The build args with the values the stage's commands see, in declaration order.
    fn arg_values(&self) -> Vec<(String, String)> {
        self.args
            .iter()
            .map(|k| (k.clone(), self.vars[k].clone()))
            .collect()
    }

    /// What a stage built `FROM` this one inherits.
    fn as_base(&self) -> BaseConfig {
        BaseConfig {
            env: self
                .env_order
                .iter()
                .map(|k| (k.clone(), self.env[k].clone()))
                .collect(),
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            shell: self.shell.clone(),
            args: self.arg_values(),
            // A stage's own triggers are read from its instructions.
            onbuild: Vec::new(),
        }
    }

    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }
}

impl<'a> Lowering<'a> {
    fn new(dockerfile: &Dockerfile, options: &'a DockerfileOptions) -> Result<Lowering<'a>> {
        let ignore_path = options.context.join(".dockerignore");
        let ignore = match std::fs::read_to_string(&ignore_path) {
            Ok(text) => DockerIgnore::parse(&text).map_err(|e| {
                Box::new(Diagnostic::new(
                    format!("{}: {e}", ignore_path.display()),
                    None,
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                DockerIgnore::parse("").expect("an empty .dockerignore parses")
            }
            Err(e) => {
                return Err(Box::new(Diagnostic::new(
                    format!("cannot read {}: {e}", ignore_path.display()),
                    None,
                )));
            }
        };
        let build_args: BTreeMap<&str, &str> = options
            .build_args
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut global_args = BTreeMap::new();
        let host = super::Platform::host();
        for (k, v) in super::platform_args(&host, &host) {
            global_args.insert(k.to_string(), v);
        }
        for arg in &dockerfile.global_args {
            for decl in &arg.args {
                let name = decl.name.text.clone();
                let value = match (build_args.get(name.as_str()), &decl.default) {
                    (Some(v), _) => Some(v.to_string()),
                    (None, Some(d)) => Some(d.expand(dockerfile.directives.escape, &|n| {
                        global_args.get(n).cloned()
                    })?),
                    (None, None) => None,
                };
                if let Some(v) = value {
                    global_args.insert(name, v);
                }
            }
        }
        Ok(Lowering {
            options,
            escape: dockerfile.directives.escape,
            ignore,
            global_args,
            images: Vec::new(),
            stage_images: Vec::new(),
            external: BTreeMap::new(),
            snapshot: RefCell::new(None),
            run_args: Default::default(),
            copy_paths: Default::default(),
            image_triggers: BTreeMap::new(),
        })
    }

    fn stages(&mut self, dockerfile: &Dockerfile) -> Result<(Vec<Image>, Vec<String>)> {
        if dockerfile.stages.is_empty() {
            return Err(Box::new(Diagnostic::new(
                "the Dockerfile has no FROM",
                None,
            )));
        }
        let target = match &self.options.target {
            Some(t) => dockerfile
                .stages
                .iter()
                .position(|s| {
                    s.name
                        .as_ref()
                        .is_some_and(|n| n.value.eq_ignore_ascii_case(t))
                })
                .ok_or_else(|| {
                    let names: Vec<String> = dockerfile
                        .stages
                        .iter()
                        .filter_map(|s| s.name.as_ref().map(|n| n.value.clone()))
                        .collect();
                    Box::new(Diagnostic::new(
                        format!(
                            "--target {t}: no stage of that name; stages are: {}",
                            names.join(", ")
                        ),
                        None,
                    ))
                })?,
            None => dockerfile.stages.len() - 1,
        };
        for (index, stage) in dockerfile.stages.iter().enumerate() {
            let name = if index == target {
                self.options.tag.clone()
            } else {
                stage
                    .name
                    .as_ref()
                    .map(|n| n.value.clone())
                    .unwrap_or_else(|| format!("stage-{index}"))
            };
            self.stage(dockerfile, index, stage, name, index == target)?;
        }
        Ok((
            std::mem::take(&mut self.images),
            vec![self.options.tag.clone()],
        ))
    }

    /// Whether a named context of the stage name `text` replaces that stage
    /// (`--build-context NAME=...`), as BuildKit's does.
    fn replaced(&self, text: &str) -> bool {
        self.options
            .build_contexts
            .keys()
            .any(|name| name.eq_ignore_ascii_case(text))
    }

    /// The image a `FROM`/`--from` word names: an earlier stage (by name or index) or an
    /// image reference (an external image for `--from`).
    fn stage_ref(&self, dockerfile: &Dockerfile, text: &str, before: usize) -> Option<usize> {
        if let Ok(i) = text.parse::<usize>() {
            return (i < before).then(|| self.stage_images[i].0);
        }
        if self.replaced(text) {
            return None;
        }
        dockerfile.stages[..before]
            .iter()
            .position(|s| {
                s.name
                    .as_ref()
                    .is_some_and(|n| n.value.eq_ignore_ascii_case(text))
            })
            .map(|i| self.stage_images[i].0)
    }

    fn stage(
        &mut self,
        dockerfile: &Dockerfile,
        index: usize,
        stage: &super::Stage,
        name: String,
        is_final: bool,
    ) -> Result<()> {
        let global = self.global_args.clone();
        let from_text = stage
            .from
            .image
            .expand(self.escape, &|n| global.get(n).cloned())?;
        if let Some(platform) = &stage.from.platform {
            let p = platform.expand(self.escape, &|n| global.get(n).cloned())?;
            if p != super::Platform::host().to_string() {
                return Err(Box::new(
                    Diagnostic::new(
                        format!(
                            "--platform={p}: strata builds for this machine only ({})",
                            super::Platform::host()
                        ),
                        Some(platform.span),
                    )
                    .help("remove --platform, or build on a machine of that platform"),
                ));
            }
        }
        let earlier_stage = self.stage_ref(dockerfile, &from_text, index).is_some();
        if !earlier_stage
            && let Some(NamedContext::Dir(dir)) = self.options.build_contexts.get(&from_text)
        {
            return Err(Box::new(
                Diagnostic::new(
                    format!(
                        "FROM {from_text}: the build context `{from_text}` is the directory {}; strata builds FROM images only",
                        dir.display()
                    ),
                    Some(stage.from.image.span),
                )
                .help("COPY --from a directory context, or name an image (docker-image://REF)"),
            ));
        }
        let from_text = if earlier_stage {
            from_text
        } else {
            self.named_image(&from_text)
        };
        let mut scope = Scope::from_base(&BaseConfig::default());
        let scratch = from_text.eq_ignore_ascii_case("scratch");
        // A base that sets no PATH (scratch, an image made by `docker import`) gets the default.
        let mut without_path = scratch;
        // The ONBUILD triggers of an earlier stage built on: BuildKit runs them first and
        // leaves them out of this stage's config.
        let mut triggers = Vec::new();
        let base = if scratch {
            Base::Scratch
        } else if let Some(image) = self.stage_ref(dockerfile, &from_text, index) {
            if let Some(p) = self.stage_images.iter().position(|(i, _)| *i == image) {
                scope = Scope::from_base(&self.stage_images[p].1);
                triggers = dockerfile.stages[p]
                    .instructions
                    .iter()
                    .filter_map(|i| match i {
                        Instruction::Onbuild(o) => Some((*o.trigger).clone()),
                        _ => None,
                    })
                    .collect();
            }
            Base::Image {
                index: image,
                span: Some(stage.from.image.span),
            }
        } else {
            if let Some(config) = self.options.base_configs.get(&from_text) {
                scope = Scope::from_base(config);
                without_path = !config.env.iter().any(|(name, _)| name == "PATH");
            }
            // The image's triggers: run first, and gone from this stage's config.
            if let Some(image_triggers) = self.image_triggers.get(&from_text) {
                triggers = image_triggers.clone();
            }
            Base::Reference {
                reference: from_text,
                span: Some(stage.from.image.span),
            }
        };
        // BuildKit gives a stage whose base sets no PATH the default PATH, in its config and
        // so in its RUN commands.
        let (inputs, steps) = if without_path {
            let env = vec![("PATH".to_string(), DEFAULT_PATH.to_string())];
            scope.set_env(&env);
            // BuildKit's empty image (`FROM scratch`) has the working directory `/` too.
            let workdir = scratch.then(|| "/".to_string());
            let change = ConfigChange {
                env: env.clone(),
                workdir: workdir.clone(),
                ..Default::default()
            };
            (
                vec![DigestInput::Directive {
                    directive: "ENV".into(),
                    value: json(&(&env, &workdir)),
                }],
                vec![Step {
                    op: Op::Config(change),
                    span: Some(stage.from.span),
                }],
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let mut stages = vec![Stage {
            name: "from".into(),
            kind: StageKind::From,
            inputs,
            steps,
            options: StageOptions::default(),
            late_inputs: None,
            span: Some(stage.from.span),
        }];
        if !triggers.is_empty() {
            stages.push(Stage {
                name: "onbuild-clear".into(),
                kind: StageKind::Instruction,
                inputs: vec![DigestInput::Directive {
                    directive: "ONBUILD".into(),
                    value: "clear".into(),
                }],
                steps: vec![Step {
                    op: Op::Config(ConfigChange {
                        remove: Box::new(strata_plan::ConfigRemoval {
                            onbuild: true,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    span: Some(stage.from.span),
                }],
                options: StageOptions::default(),
                late_inputs: None,
                span: None,
            });
        }
        let mut dependencies = Vec::new();
        let named = triggers
            .iter()
            .enumerate()
            .map(|(n, i)| (format!("onbuild-{}", n + 1), i))
            .chain(
                stage
                    .instructions
                    .iter()
                    .enumerate()
                    .map(|(n, i)| (format!("{}", n + 1), i)),
            );
        for (number, instruction) in named {
            let stage_name = format!("{number}-{}", instruction.keyword().to_lowercase());
            if let Some(lowered) = self.instruction(
                dockerfile,
                index,
                instruction,
                &mut scope,
                &mut dependencies,
            )? {
                let (inputs, steps, late) = lowered;
                stages.push(Stage {
                    name: stage_name,
                    kind: StageKind::Instruction,
                    inputs,
                    steps,
                    options: StageOptions::default(),
                    late_inputs: late.then_some(LateInputs::Imports),
                    span: Some(instruction.span()),
                });
            }
        }
        if is_final && !self.options.labels.is_empty() {
            // docker's --label: on the target's config, as BuildKit's exporter sets them.
            let labels = self.options.labels.clone();
            stages.push(Stage {
                name: "labels".into(),
                kind: StageKind::Instruction,
                inputs: vec![DigestInput::Directive {
                    directive: "LABEL".into(),
                    value: json(&labels),
                }],
                steps: vec![Step {
                    op: Op::Config(ConfigChange {
                        labels,
                        ..Default::default()
                    }),
                    span: None,
                }],
                options: StageOptions::default(),
                late_inputs: None,
                span: None,
            });
        }
        dependencies.sort_unstable();
        dependencies.dedup();
        // A stage built again makes what is built on it or copies from it stale too.
        let fresh_image = |i: &usize| {
            self.images[*i]
                .stages
                .first()
                .is_some_and(|s| s.options.no_cache)
        };
        let fresh = self.options.no_cache
            || stage.name.as_ref().is_some_and(|n| {
                self.options
                    .no_cache_filter
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(&n.value))
            })
            || matches!(&base, Base::Image { index, .. } if fresh_image(index))
            || dependencies.iter().any(fresh_image);
        for s in &mut stages {
            s.options.no_cache = fresh;
        }
        let image_index = self.images.len();
        self.images.push(Image {
            name: ImageName::Named(name),
            base,
            stages,
            is_final,
            git: Vec::new(),
            dependencies,
            span: Some(stage.span),
        });
        self.stage_images.push((image_index, scope.as_base()));
        Ok(())
    }

    fn expand(&self, word: &Word, scope: &Scope) -> Result<String> {
        word.expand(self.escape, &|n| scope.var(n))
    }

    #[allow(clippy::type_complexity)]
    fn instruction(
        &mut self,
        dockerfile: &Dockerfile,
        index: usize,
        instruction: &Instruction,
        scope: &mut Scope,
        dependencies: &mut Vec<usize>,
    ) -> Result<Option<(Vec<DigestInput>, Vec<Step>, bool)>> {
        let span = Some(instruction.span());
        let docker = |directive: &str, value: String| DigestInput::Directive {
            directive: directive.into(),
            value,
        };
        let config = |change: ConfigChange| {
            vec![Step {
                op: Op::Config(change),
                span,
            }]
        };
        Ok(Some(match instruction {
            Instruction::Arg(arg) => {
                for decl in &arg.args {
                    let name = decl.name.text.clone();
                    let given = self
                        .options
                        .build_args
                        .iter()
                        .find(|(k, _)| *k == name)
                        .map(|(_, v)| v.clone());
                    let value = match (given, &decl.default) {
                        (Some(v), _) => Some(v),
                        (None, Some(d)) => Some(self.expand(d, scope)?),
                        (None, None) => self.global_args.get(&name).cloned(),
                    };
                    scope.declared.push(name.clone());
                    if let Some(v) = value {
                        scope.set_arg(&name, &v);
                    }
                }
                return Ok(None);
            }
            Instruction::Shell(shell) => {
                scope.shell = shell.argv.iter().map(|w| w.text.clone()).collect();
                // BuildKit records it in the config (`Shell`), for the image's children.
                (
                    vec![docker("SHELL", json(&scope.shell))],
                    config(ConfigChange {
                        shell: Some(scope.shell.clone()),
                        ..Default::default()
                    }),
                    false,
                )
            }
            Instruction::Env(env) => {
                let mut pairs = Vec::new();
                // Every value of one ENV sees the variables as they were before it.
                for kv in &env.vars {
                    pairs.push((self.expand(&kv.key, scope)?, self.expand(&kv.value, scope)?));
                }
                scope.set_env(&pairs);
                (
                    vec![docker("ENV", json(&pairs))],
                    config(ConfigChange {
                        env: pairs,
                        ..Default::default()
                    }),
                    false,
                )
            }
            Instruction::Label(label) => {
                let mut pairs = Vec::new();
                for kv in &label.labels {
                    pairs.push((self.expand(&kv.key, scope)?, self.expand(&kv.value, scope)?));
                }
                (
                    vec![docker("LABEL", json(&pairs))],
                    config(ConfigChange {
                        labels: pairs,
                        ..Default::default()
                    }),
                    false,
                )
            }
            // BuildKit sets the image's author (dispatchMaintainer), no label.
            Instruction::Maintainer(m) => (
                vec![docker("MAINTAINER", m.name.text.clone())],
                config(ConfigChange {
                    author: Some(m.name.text.clone()),
                    ..Default::default()
                }),
                false,
            ),
            Instruction::User(user) => {
                let u = self.expand(&user.user, scope)?;
                scope.user = u.clone();
                (
                    vec![docker("USER", u.clone())],
                    config(ConfigChange {
                        user: Some(u),
                        ..Default::default()
                    }),
                    false,
                )
            }
            Instruction::Expose(expose) => {
                let ports = expose
                    .ports
                    .iter()
                    .map(|p| self.expand(p, scope))
                    .collect::<Result<Vec<_>>>()?;
                (
                    vec![docker("EXPOSE", json(&ports))],
                    config(ConfigChange {
                        expose: ports,
                        ..Default::default()
                    }),
                    false,
                )
            }
            Instruction::Volume(volume) => {
                let paths = volume
                    .paths
                    .iter()
                    .map(|p| self.expand(p, scope))
                    .collect::<Result<Vec<_>>>()?;
                (
                    vec![docker("VOLUME", json(&paths))],
                    config(ConfigChange {
                        volumes: paths,
                        ..Default::default()
                    }),
                    false,
                )
            }
            Instruction::StopSignal(s) => {
                let sig = self.expand(&s.signal, scope)?;
                (
                    vec![docker("STOPSIGNAL", sig.clone())],
                    config(ConfigChange {
                        stop_signal: Some(sig),
                        ..Default::default()
                    }),
                    false,
                )
            }
            Instruction::Onbuild(o) => (
                vec![docker("ONBUILD", o.expression.clone())],
                config(ConfigChange {
                    onbuild: vec![o.expression.clone()],
                    ..Default::default()
                }),
                false,
            ),
            Instruction::Cmd(cmd) => {
                let argv = self.argv(&cmd.command, scope);
                scope.cmd = Some(argv.clone());
                (
                    vec![docker("CMD", json(&argv))],
                    config(ConfigChange {
                        cmd: Some(argv),
                        args_escaped: true,
                        ..Default::default()
                    }),
                    false,
                )
            }
            Instruction::Entrypoint(e) => {
                let argv = self.argv(&e.command, scope);
                (
                    vec![docker("ENTRYPOINT", json(&argv))],
                    config(ConfigChange {
                        entrypoint: Some(argv),
                        cmd: scope.cmd.clone(),
                        ..Default::default()
                    }),
                    false,
                )
            }
            Instruction::Healthcheck(h) => {
                let check = Healthcheck {
                    test: match &h.test {
                        None => vec!["NONE".into()],
                        Some(CommandLine::Exec(words)) => std::iter::once("CMD".to_string())
                            .chain(words.iter().map(|w| w.text.clone()))
                            .collect(),
                        Some(CommandLine::Shell(w)) => vec!["CMD-SHELL".into(), w.text.clone()],
                    },
                    interval: h.interval.as_ref().map_or(0, |d| d.value.as_nanos() as u64),
                    timeout: h.timeout.as_ref().map_or(0, |d| d.value.as_nanos() as u64),
                    start_period: h
                        .start_period
                        .as_ref()
                        .map_or(0, |d| d.value.as_nanos() as u64),
                    retries: h.retries.as_ref().map_or(0, |r| r.value),
                };
                (
                    vec![docker("HEALTHCHECK", format!("{check:?}"))],
                    config(ConfigChange {
                        healthcheck: Some(check),
                        ..Default::default()
                    }),
                    false,
                )
            }
            Instruction::Workdir(w) => {
                let path = absolute(&scope.workdir, &self.expand(&w.path, scope)?);
                scope.workdir = path.clone();
                // BuildKit creates it as the config's user (root: no owner to set).
                let owner = match scope.user.as_str() {
                    "" | "root" | "0" | "root:root" | "0:0" => None,
                    user => Some(user.to_string()),
                };
                let mut inputs = vec![docker("WORKDIR", path.clone())];
                if let Some(user) = &owner {
                    inputs.push(DigestInput::Setting {
                        name: Setting::Owner,
                        value: user.clone(),
                    });
                }
                let steps = vec![
                    Step {
                        op: Op::MakeDir {
                            path: path.clone(),
                            owner,
                        },
                        span,
                    },
                    Step {
                        op: Op::Config(ConfigChange {
                            workdir: Some(path.clone()),
                            ..Default::default()
                        }),
                        span,
                    },
                ];
                (inputs, steps, false)
            }
            Instruction::Run(run) => self.run(dockerfile, index, run, scope, dependencies)?,
            Instruction::Copy(copy) => {
                self.record_paths(copy.span, &copy.sources, &copy.dest, scope)?;
                let from = match &copy.from {
                    Some(f) => Some(self.expand(f, scope)?),
                    None => None,
                };
                let chown = copy
                    .chown
                    .as_ref()
                    .map(|c| self.expand(c, scope))
                    .transpose()?;
                let chmod = copy.chmod.as_ref().map(mode).transpose()?;
                match from {
                    Some(from) => self.copy_from(
                        dockerfile,
                        index,
                        copy,
                        &from,
                        chown,
                        chmod.as_ref(),
                        scope,
                        dependencies,
                    )?,
                    None => {
                        let lowered = self.copy_context(
                            &copy.sources,
                            &copy.dest,
                            chown,
                            chmod.as_ref().and_then(Chmod::octal),
                            false,
                            copy.parents,
                            &copy.exclude,
                            scope,
                            "copy",
                        )?;
                        symbolic_chmod(lowered, chmod.as_ref(), &copy.dest)?
                    }
                }
            }
            Instruction::Add(add) => {
                self.record_paths(add.span, &add.sources, &add.dest, scope)?;
                let chown = add
                    .chown
                    .as_ref()
                    .map(|c| self.expand(c, scope))
                    .transpose()?;
                let chmod = add.chmod.as_ref().map(mode).transpose()?;
                let checksum = add
                    .checksum
                    .as_ref()
                    .map(|c| self.expand(c, scope))
                    .transpose()?;
                // Each source is a download, a repository or context files, copied in the
                // order written (a heredoc after the paths, as BuildKit's dispatchCopy copies
                // `SourceContents` last): one step per run of sources of one kind.
                let mut sources = Vec::new();
                for source in &add.sources {
                    let Source::Path(w) = source else {
                        sources.push(AddSource::Local(source.clone()));
                        continue;
                    };
                    let text = self.expand(w, scope)?;
                    let span = Some(w.span);
                    sources.push(if let Some(repo) = GitRef::parse(&text)
                        .map_err(|e| Box::new(Diagnostic::new(format!("ADD {e}"), span)))?
                    {
                        AddSource::Git(repo, w.span)
                    } else if text.starts_with("http://") || text.starts_with("https://") {
                        AddSource::Url(text, w.span)
                    } else if let Some((scheme, _)) = text.split_once("://") {
                        return Err(Box::new(
                            Diagnostic::new(
                                format!("ADD of `{text}`: strata does not ADD `{scheme}://` URLs"),
                                span,
                            )
                            .help("ADD takes http(s) URLs, git repositories and files of the build context"),
                        ));
                    } else {
                        AddSource::Local(source.clone())
                    });
                }
                let kind = |s: &AddSource| std::mem::discriminant(s);
                let mixed = sources.iter().any(|s| kind(s) != kind(&sources[0]));
                if mixed && !self.expand(&add.dest, scope)?.ends_with('/') {
                    return Err(Box::new(Diagnostic::new(
                        "when using ADD with more than one source file, the destination must be a directory and end with a /",
                        Some(add.dest.span),
                    )));
                }
                if let Some(c) = &add.checksum
                    && (add.sources.len() > 1 || matches!(sources[0], AddSource::Local(_)))
                {
                    return Err(Box::new(Diagnostic::new(
                        "--checksum is for ADD of a single URL or git repository",
                        Some(c.span),
                    )));
                }
                if mixed {
                    sources.sort_by_key(|s| matches!(s, AddSource::Local(Source::Heredoc(_))));
                }
                let (mut inputs, mut steps) = (Vec::new(), Vec::new());
                let mut first = 0;
                for run in sources.chunk_by(|a, b| kind(a) == kind(b)) {
                    let lowered = match &run[0] {
                        AddSource::Local(_) => {
                            let local: Vec<Source> = run
                                .iter()
                                .filter_map(|s| match s {
                                    AddSource::Local(l) => Some(l.clone()),
                                    _ => None,
                                })
                                .collect();
                            let what = if mixed {
                                format!("add[{first}]")
                            } else {
                                "add".into()
                            };
                            let lowered = self.copy_context(
                                &local,
                                &add.dest,
                                chown.clone(),
                                chmod.as_ref().and_then(Chmod::octal),
                                true,
                                false,
                                &add.exclude,
                                scope,
                                &what,
                            )?;
                            // A symbolic --chmod reads the modes of the pinned copies...
                            symbolic_chmod(lowered, chmod.as_ref(), &add.dest)?
                        }
                        AddSource::Git(..) => {
                            let repos: Vec<(GitRef, Span)> = run
                                .iter()
                                .filter_map(|s| match s {
                                    AddSource::Git(r, span) => Some((r.clone(), *span)),
                                    _ => None,
                                })
                                .collect();
                            let lowered = self.add_git(
                                &repos,
                                first,
                                add,
                                checksum.clone(),
                                chown.clone(),
                                chmod.as_ref(),
                                scope,
                            )?;
                            // ...and checkouts...
                            symbolic_chmod(lowered, chmod.as_ref(), &add.dest)?
                        }
                        AddSource::Url(..) => {
                            let urls: Vec<(String, Span)> = run
                                .iter()
                                .filter_map(|s| match s {
                                    AddSource::Url(u, span) => Some((u.clone(), *span)),
                                    _ => None,
                                })
                                .collect();
                            // ...a download's is 0600 before it changes it.
                            let octal = chmod.as_ref().map(|c| c.apply(0o600, false));
                            self.add_urls(
                                &urls,
                                first,
                                &add.dest,
                                checksum.clone(),
                                chown.clone(),
                                octal,
                                scope,
                            )?
                        }
                    };
                    first += run.len();
                    inputs.extend(lowered.0);
                    steps.extend(lowered.1);
                }
                (inputs, steps, false)
            }
        }))
    }

    /// Records the expanded paths of a `COPY`/`ADD` for its history entry (BuildKit names
    /// them expanded); one with a heredoc keeps the text as written.
    fn record_paths(
        &mut self,
        span: Span,
        sources: &[Source],
        dest: &Word,
        scope: &Scope,
    ) -> Result<()> {
        let mut paths = Vec::new();
        for source in sources {
            let Source::Path(w) = source else {
                return Ok(());
            };
            paths.push(self.expand(w, scope)?);
        }
        paths.push(self.expand(dest, scope)?);
        self.copy_paths.insert(span, paths);
        Ok(())
    }

    /// `ADD <git repository>...`: each checked out now (at the commit its ref names when
    /// the Dockerfile is converted, as BuildKit resolves it) and its content (or its
    /// `SUBDIR`'s) copied into the destination directory, every entry of the checkout an entry
    /// of the copy, as BuildKit's `llb.Copy(git, "/", dest)`. Keyed by the files, like a
    /// context copy, so a new commit that changes nothing copied is reused.
    #[allow(clippy::too_many_arguments)]
    fn add_git(
        &self,
        repos: &[(GitRef, Span)],
        first: usize,
        add: &super::Add,
        checksum: Option<String>,
        chown: Option<String>,
        chmod: Option<&Chmod>,
        scope: &Scope,
    ) -> Result<(Vec<DigestInput>, Vec<Step>, bool)> {
        let dest = self.expand(&add.dest, scope)?;
        let dest_abs = absolute(&scope.workdir, &dest);
        let exclude = self.exclude(&add.exclude)?;
        let mut inputs = Vec::new();
        let mut steps = Vec::new();
        for (repo, span) in repos {
            let fail = |message: String| Box::new(Diagnostic::new(message, Some(*span)));
            let fetcher = self.options.fetcher.as_ref().ok_or_else(|| {
                fail(format!(
                    "ADD of `{}`: this build cannot clone repositories",
                    repo.remote
                ))
            })?;
            // The query form's `keep-git-dir` and `checksum` may repeat the flags, not
            // contradict them (BuildKit's dispatchCopy).
            if add.keep_git_dir && repo.keep_git_dir == Some(false) {
                return Err(fail(format!(
                    "ADD {}: --keep-git-dir and `keep-git-dir=false` are inconsistent",
                    repo.remote
                )));
            }
            let keep_git_dir = add.keep_git_dir || repo.keep_git_dir == Some(true);
            let checksum = match (&checksum, &repo.checksum) {
                (Some(flag), Some(query)) if flag != query => {
                    return Err(fail(format!(
                        "ADD {}: checksum mismatch: --checksum={flag} but `checksum={query}`",
                        repo.remote
                    )));
                }
                (flag, query) => flag.as_ref().or(query.as_ref()),
            };
            let (root, commit) = (fetcher.0)
                .checkout(&repo.remote, &repo.reference, keep_git_dir)
                .map_err(|e| fail(format!("ADD {}: {e}", repo.remote)))?;
            // BuildKit's git --checksum: the commit's hash, or the start of it.
            if let Some(expected) = checksum
                && (expected.is_empty() || !commit.starts_with(expected.as_str()))
            {
                return Err(fail(format!(
                    "ADD {}: the commit is {commit}, not {expected} as --checksum says",
                    repo.remote
                )));
            }
            let from = Path::new(&repo.subdir);
            if !root.join(from).is_dir() {
                return Err(fail(format!(
                    "ADD {}: the repository has no directory `{}` at {commit}",
                    repo.remote, repo.subdir
                )));
            }
            let unreadable = |e: &dyn std::fmt::Display| {
                fail(format!(
                    "ADD {}: cannot read the checkout: {e}",
                    repo.remote
                ))
            };
            let entries = tree(&root, from, &dest_abs, &exclude, None)
                .map_err(|e| unreadable(&e))?
                .into_iter()
                .enumerate()
                .map(|(i, (rel, target))| CopyEntry {
                    source: root.join(rel),
                    inline: None,
                    target,
                    contents_only: i == 0,
                    mode: None,
                    hardlink: None,
                })
                .collect::<Vec<_>>();
            let sum = self::checksum(&root, &entries).map_err(|e| unreadable(&e))?;
            // A kept `.git` differs between two checkouts of one commit (its index and logs
            // hold times): it is keyed by the commit, as BuildKit keys its git source.
            let key = if keep_git_dir {
                let worktree: Vec<CopyEntry> = entries
                    .iter()
                    .filter(|e| {
                        !e.source
                            .strip_prefix(&root)
                            .is_ok_and(|r| r.starts_with(".git"))
                    })
                    .cloned()
                    .collect();
                let files = self::checksum(&root, &worktree).map_err(|e| unreadable(&e))?;
                format!("{files} .git of {} at {commit}", repo.remote)
            } else {
                sum.clone()
            };
            inputs.push(DigestInput::CopySource {
                what: format!("add-git[{}]", first + steps.len()),
                params: json(&[
                    dest_abs.clone(),
                    format!("{chown:?}"),
                    format!("{:?}", chmod.and_then(Chmod::octal)),
                ]),
                checksum: key,
            });
            steps.push(Step {
                op: Op::CopyFiles(CopyFiles {
                    root,
                    entries,
                    checksum: sum,
                    chown: chown.clone(),
                    chmod: chmod.and_then(Chmod::octal),
                    unpack: false,
                }),
                span: Some(*span),
            });
        }
        Ok((inputs, steps, false))
    }

    /// `ADD <url>...`: each file downloaded now (BuildKit's build has the network too) and
    /// copied like a context file; keyed by its content, as BuildKit's http source is.
    #[allow(clippy::too_many_arguments)]
    fn add_urls(
        &self,
        urls: &[(String, Span)],
        first: usize,
        dest_word: &Word,
        checksum: Option<String>,
        chown: Option<String>,
        chmod: Option<u32>,
        scope: &Scope,
    ) -> Result<(Vec<DigestInput>, Vec<Step>, bool)> {
        let dest = self.expand(dest_word, scope)?;
        let dest_abs = absolute(&scope.workdir, &dest);
        let into_dir = is_dir_reference(&dest) || urls.len() > 1;
        let mut inputs = Vec::new();
        let mut steps = Vec::new();
        for (url, span) in urls {
            let fetcher = self.options.fetcher.as_ref().ok_or_else(|| {
                Box::new(Diagnostic::new(
                    format!("ADD of `{url}`: this build cannot download"),
                    Some(*span),
                ))
            })?;
            let (root, name) = (fetcher.0)
                .download(url, checksum.as_deref())
                .map_err(|e| Box::new(Diagnostic::new(format!("ADD {url}: {e}"), Some(*span))))?;
            let target = if into_dir {
                format!("{}/{name}", dest_abs.trim_end_matches('/'))
            } else {
                dest_abs.clone()
            };
            let entries = vec![CopyEntry {
                source: root.join(&name),
                inline: None,
                target: target.clone(),
                contents_only: false,
                mode: None,
                hardlink: None,
            }];
            let sum = self::checksum(&root, &entries).map_err(|e| {
                Box::new(Diagnostic::new(
                    format!("ADD {url}: cannot read the download: {e}"),
                    Some(*span),
                ))
            })?;
            inputs.push(DigestInput::CopySource {
                what: format!("add-url[{}]", first + steps.len()),
                params: json(&[
                    url.clone(),
                    target,
                    format!("{chown:?}"),
                    format!("{chmod:?}"),
                ]),
                checksum: sum.clone(),
            });
            steps.push(Step {
                op: Op::CopyFiles(CopyFiles {
                    root,
                    entries,
                    checksum: sum,
                    chown: chown.clone(),
                    // BuildKit: a downloaded file is 0600 unless --chmod says otherwise.
                    chmod: Some(chmod.unwrap_or(0o600)),
                    unpack: false,
                }),
                span: Some(*span),
            });
        }
        Ok((inputs, steps, false))
    }

    /// `CMD`/`ENTRYPOINT` argv: exec form as is, shell form through the stage's shell.
    fn argv(&self, command: &CommandLine, scope: &Scope) -> Vec<String> {
        match command {
            CommandLine::Exec(words) => words.iter().map(|w| w.text.clone()).collect(),
            CommandLine::Shell(w) => scope
                .shell
                .iter()
                .cloned()
                .chain(std::iter::once(w.text.clone()))
                .collect(),
        }
    }

    fn run(
        &mut self,
        dockerfile: &Dockerfile,
        index: usize,
        run: &super::Run,
        scope: &Scope,
        dependencies: &mut Vec<usize>,
    ) -> Result<(Vec<DigestInput>, Vec<Step>, bool)> {
        let named = scope
            .declared
            .iter()
            .map(|k| (k.clone(), scope.var(k).unwrap_or_default()))
            .collect();
        self.run_args.insert(run.span, named);
        let (text, shell) = match &run.command {
            CommandLine::Exec(words) => {
                let argv: Vec<String> = words.iter().map(|w| w.text.clone()).collect();
                (json(&argv), RunShell::Exec)
            }
            // `RUN <<EOF` alone: the body is the script.
            CommandLine::Shell(w)
                if run.heredocs.len() == 1
                    && w.text.trim().starts_with("<<")
                    && !w.text.trim().contains(char::is_whitespace) =>
            {
                let heredoc = &run.heredocs[0];
                let body = heredoc.body();
                // A body starting with `#!` runs with that interpreter (it reads the script
                // from stdin and skips the `#!` line as a comment).
                let text = match body.strip_prefix("#!").and_then(|b| b.lines().next()) {
                    Some(interpreter) => {
                        let marker = format!("STRATA_{}", heredoc.name);
                        format!(
                            "{} /dev/stdin <<'{marker}'\n{body}{}{marker}",
                            interpreter.trim(),
                            if body.ends_with('\n') { "" } else { "\n" }
                        )
                    }
                    None => body,
                };
                (text, RunShell::Argv(scope.shell.clone()))
            }
            CommandLine::Shell(w) => {
                let mut text = w.text.clone();
                for heredoc in &run.heredocs {
                    let mut body = heredoc.body();
                    if !body.ends_with('\n') {
                        body.push('\n');
                    }
                    text = format!("{text}\n{body}{}", heredoc.name);
                }
                (text, RunShell::Argv(scope.shell.clone()))
            }
        };
        let mut mounts = Vec::new();
        let (mut ssh_mounts, mut ssh_env) = (0, None);
        for m in &run.mounts {
            let written_target = m
                .target
                .as_ref()
                .map(|w| self.expand(w, scope))
                .transpose()?;
            let target = |_: &super::Mount| -> Result<String> {
                Ok(absolute(
                    &scope.workdir,
                    written_target.as_deref().unwrap_or_default(),
                ))
            };
            let source = match m.kind {
                MountType::Cache => {
                    let id = match &m.id {
                        Some(id) => self.expand(id, scope)?,
                        None => target(m)?,
                    };
                    MountSource::Cache { id }
                }
                MountType::Tmpfs => MountSource::Tmpfs,
                MountType::Secret => {
                    let id = match &m.id {
                        Some(id) => self.expand(id, scope)?,
                        None => m
                            .target
                            .as_ref()
                            .map(|t| t.text.rsplit('/').next().unwrap_or_default().to_string())
                            .unwrap_or_default(),
                    };
                    let env = m.env.as_ref().map(|e| self.expand(e, scope)).transpose()?;
                    MountSource::Secret {
                        id,
                        required: m.required,
                        env,
                    }
                }
                MountType::Bind => {
                    let path = m
                        .source
                        .as_ref()
                        .map(|s| self.expand(s, scope))
                        .transpose()?
                        .unwrap_or_else(|| ".".into());
                    let image = match &m.from {
                        Some(f) => {
                            let from = self.expand(f, scope)?;
                            if self.stage_ref(dockerfile, &from, index).is_none()
                                && let Some(NamedContext::Dir(_)) =
                                    self.options.build_contexts.get(&from)
                            {
                                return Err(Box::new(Diagnostic::new(
                                    format!("--mount from={from}: strata mounts images and stages only, not directory contexts"),
                                    Some(f.span),
                                ).help("COPY --from the directory context instead")));
                            }
                            let i = self.image_for(dockerfile, index, &from);
                            dependencies.push(i);
                            Some(i)
                        }
                        None => None,
                    };
                    let path = match image {
                        Some(_) => path,
                        None => {
                            let span = m.source.as_ref().map(|s| s.span);
                            let rel = self.context_path(&path, span, true)?;
                            // BuildKit's context holds no excluded file: nothing to mount.
                            let rel_str = rel.to_string_lossy();
                            if !rel_str.is_empty() && self.ignore.is_excluded(&rel_str) {
                                return Err(Box::new(Diagnostic::new(
                                    format!(
                                        "the bind mount's source `{path}` is excluded by .dockerignore"
                                    ),
                                    span,
                                )));
                            }
                            if !self.exists(&rel, span)? {
                                return Err(Box::new(
                                    Diagnostic::new(
                                        format!("the bind mount's source `{path}` is not in the build context"),
                                        span,
                                    )
                                    .help("links in the context resolve inside it, as if it were `/`"),
                                ));
                            }
                            self.options
                                .context
                                .join(rel)
                                .to_string_lossy()
                                .into_owned()
                        }
                    };
                    let hide = match image {
                        Some(_) => Vec::new(),
                        None => self.ignored_below(Path::new(&path), Some(m.span))?,
                    };
                    MountSource::Bind {
                        image,
                        path,
                        readwrite: !m.readonly,
                        hide,
                    }
                }
                MountType::Ssh => MountSource::Ssh {
                    id: match &m.id {
                        Some(id) => self.expand(id, scope)?,
                        None => "default".into(),
                    },
                    required: m.required,
                },
            };
            let to = match (&source, &m.target) {
                (MountSource::Secret { env: Some(_), .. }, None) => String::new(),
                (MountSource::Secret { id, .. }, None) => format!("/run/secrets/{id}"),
                // BuildKit's numbering: the n-th ssh mount of the step.
                (MountSource::Ssh { .. }, None) => format!("/run/buildkit/ssh_agent.{ssh_mounts}"),
                _ => target(m)?,
            };
            if matches!(source, MountSource::Ssh { .. }) {
                // The step's first agent is the one ssh clients find (BuildKit sets it so).
                if ssh_mounts == 0 {
                    ssh_env = Some(to.clone());
                }
                ssh_mounts += 1;
            }
            let context = matches!(source, MountSource::Bind { image: None, .. })
                .then(|| self.options.context.clone());
            mounts.push(RunMount {
                to,
                source,
                context,
            });
        }
        // Build args reach the command as variables, and its digest.
        // Every build arg in scope, with the value the command sees (BuildKit lists them so in
        // the history, and they override the config's ENV for the command).
        let mut env = scope.arg_values();
        if let Some(socket) = ssh_env
            && !scope.env.contains_key("SSH_AUTH_SOCK")
        {
            env.push(("SSH_AUTH_SOCK".into(), socket));
        }
        let no_network = matches!(run.network.as_ref().map(|n| n.value), Some(Network::None));
        let insecure = match &run.security {
            Some(s) if s.value == Security::Insecure && !self.options.allow_insecure => {
                return Err(Box::new(
                    Diagnostic::new(
                        "security.insecure is not allowed: `RUN --security=insecure` needs the \
                         entitlement",
                        Some(s.span),
                    )
                    .label("all capabilities and no seccomp for this step")
                    .help(
                        "grant it with `strata build -f Dockerfile --allow security.insecure` \
                         (the Dockerfiles of a strata.yaml always stay confined)",
                    ),
                ));
            }
            Some(s) => s.value == Security::Insecure,
            None => false,
        };
        let mut inputs = vec![DigestInput::Instructions {
            lines: vec![text.clone()],
        }];
        inputs.push(DigestInput::Setting {
            name: Setting::Shell,
            value: json(&scope.shell),
        });
        inputs.extend(env.iter().map(|(name, value)| DigestInput::BuildArg {
            name: name.clone(),
            value: value.clone(),
        }));
        if !mounts.is_empty() {
            let described: Vec<String> = mounts
                .iter()
                .map(|m| format!("{:?}@{}", m.source, m.to))
                .collect();
            inputs.push(DigestInput::Setting {
                name: Setting::Mounts,
                value: json(&described),
            });
        }
        if no_network {
            inputs.push(DigestInput::Setting {
                name: Setting::Network,
                value: "none".into(),
            });
        }
        // What the step may do changes what it produces: an insecure run is another step.
        if insecure {
            inputs.push(DigestInput::Setting {
                name: Setting::Security,
                value: "insecure".into(),
            });
        }
        let step = Step {
            op: Op::Run(Run {
                commands: vec![Command {
                    text,
                    span: Some(run.span),
                }],
                shell,
                user: None,
                workdir: None,
                env,
                mounts,
                no_network,
                insecure,
            }),
            span: Some(run.span),
        };
        Ok((inputs, vec![step], false))
    }

    /// `text`, or the image of the named context `text` is (`--build-context
    /// NAME=docker-image://REF`).
    fn named_image(&self, text: &str) -> String {
        match self.options.build_contexts.get(text) {
            Some(NamedContext::Image(reference)) => reference.clone(),
            _ => text.to_string(),
        }
    }

    /// A `--from` value: an earlier stage, else an external image (added to the plan once).
    fn image_for(&mut self, dockerfile: &Dockerfile, before: usize, text: &str) -> usize {
        if let Some(i) = self.stage_ref(dockerfile, text, before) {
            return i;
        }
        let text = &self.named_image(text);
        if let Some(i) = self.external.get(text) {
            return *i;
        }
        let i = self.images.len();
        self.images.push(Image::external(text));
        self.external.insert(text.to_string(), i);
        i
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_from(
        &mut self,
        dockerfile: &Dockerfile,
        index: usize,
        copy: &super::Copy,
        from: &str,
        chown: Option<String>,
        chmod_flag: Option<&Chmod>,
        scope: &Scope,
        dependencies: &mut Vec<usize>,
    ) -> Result<(Vec<DigestInput>, Vec<Step>, bool)> {
        let chmod = chmod_flag.and_then(Chmod::octal);
        if self.stage_ref(dockerfile, from, index).is_none()
            && let Some(NamedContext::Dir(dir)) = self.options.build_contexts.get(from)
        {
            // A directory context is copied from as the build context is.
            let options = DockerfileOptions {
                context: dir.clone(),
                ..self.options.clone()
            };
            let lowered = Lowering::new(dockerfile, &options)?.copy_context(
                &copy.sources,
                &copy.dest,
                chown,
                chmod,
                false,
                copy.parents,
                &copy.exclude,
                scope,
                "copy",
            )?;
            return match &copy.chmod {
                Some(word) => symbolic_chmod(lowered, chmod_flag, word),
                None => Ok(lowered),
            };
        }
        // A symbolic mode is applied by the worker to each entry the source image has.
        let symbolic_mode = match (chmod_flag, &copy.chmod) {
            (Some(Chmod::Symbolic(_)), Some(word)) => Some(word.text.clone()),
            _ => None,
        };
        // `--exclude` patterns, checked here (the worker matches them against the source
        // image's entries).
        self.exclude(&copy.exclude)?;
        let exclude: Vec<String> = copy.exclude.iter().map(|w| w.text.clone()).collect();
        let image = self.image_for(dockerfile, index, from);
        dependencies.push(image);
        let dest = self.expand(&copy.dest, scope)?;
        let dest_abs = absolute(&scope.workdir, &dest);
        let many = copy.sources.len() > 1;
        let (owner, group) = split_owner(chown.as_deref());
        let mut inputs = Vec::new();
        let mut steps = Vec::new();
        for source in &copy.sources {
            let Source::Path(word) = source else {
                return Err(Box::new(Diagnostic::new(
                    "a heredoc cannot be copied --from another stage",
                    Some(copy.span),
                )));
            };
            let text = self.expand(word, scope)?;
            // Wildcards are matched by the worker, in the source image's files.
            // `--parents`: what is copied from is the path before the first `/./` (else `/`),
            // the rest is matched below it (BuildKit's dispatchCopy).
            let (add, parents_pattern) = match copy.parents {
                true => {
                    let (root, pattern) = parents_split(&text);
                    self.include_pattern(&pattern, word.span)?;
                    (absolute("/", root), Some(pattern))
                }
                false => (absolute("/", &text), None),
            };
            // A trailing `/` tells the import that the destination is a directory: a file
            // lands inside it, a directory's content fills it (only the source image knows
            // which the source is).
            let to = if is_dir_reference(&dest) || many || copy.parents {
                format!("{}/", dest_abs.trim_end_matches('/'))
            } else {
                dest_abs.clone()
            };
            let mut params = vec![
                from.to_string(),
                add.clone(),
                to.clone(),
                format!("{chown:?}"),
                format!("{chmod:?}"),
                "dest-parents".to_string(),
            ];
            if let Some(symbolic) = &symbolic_mode {
                params.push(format!("chmod {symbolic}"));
            }
            if !exclude.is_empty() {
                params.push(format!("exclude {exclude:?}"));
            }
            if let Some(pattern) = &parents_pattern {
                params.push(format!("parents {pattern}"));
            }
            inputs.push(DigestInput::Import {
                index: steps.len(),
                params: json(&params),
            });
            steps.push(Step {
                op: Op::Import(Import {
                    image,
                    stage: None,
                    add,
                    to,
                    include: Vec::new(),
                    exclude: Vec::new(),
                    owner: owner.clone(),
                    group: group.clone(),
                    mode: chmod,
                    dest_parents: true,
                    symbolic_mode: symbolic_mode.clone(),
                    exclude_patterns: exclude.clone(),
                    parents_pattern,
                }),
                span: Some(copy.span),
            });
        }
        Ok((inputs, steps, true))
    }

    /// A path in the context, relative to it, checked to stay inside it. Symlinks among its
    /// parent directories are resolved inside the context (as BuildKit does: a link to `/etc`
    /// means the context's `etc`), never on the host; the last component is followed the same
    /// way when `follow_last` (a bind mount's source: the mount must not follow it on the host),
    /// else not (COPY copies a link as a link).
    fn context_path(&self, rel: &str, span: Option<Span>, follow_last: bool) -> Result<PathBuf> {
        let outside = || {
            Box::new(
                Diagnostic::new(format!("`{rel}` is outside the build context"), span)
                    .help("only files inside the context directory can be copied"),
            )
        };
        let mut pending: Vec<String> = rel.split('/').rev().map(str::to_string).collect();
        let mut out = PathBuf::new();
        let mut links = 0;
        while let Some(part) = pending.pop() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    if !out.pop() {
                        return Err(outside());
                    }
                    continue;
                }
                _ => {}
            }
            out.push(&part);
            if !follow_last && pending.iter().all(|p| p.is_empty() || p == ".") {
                break;
            }
            let host = self.options.context.join(&out);
            if let Ok(target) = std::fs::read_link(&host) {
                links += 1;
                if links > 40 {
                    return Err(Box::new(Diagnostic::new(
                        format!("too many symlinks in `{rel}`"),
                        span,
                    )));
                }
                out.pop();
                let target = target.to_string_lossy().to_string();
                if target.starts_with('/') {
                    out = PathBuf::new();
                }
                pending.extend(target.split('/').rev().map(str::to_string));
            }
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_context(
        &self,
        sources: &[Source],
        dest_word: &Word,
        chown: Option<String>,
        chmod: Option<u32>,
        add: bool,
        parents: bool,
        exclude: &[Word],
        scope: &Scope,
        what: &str,
    ) -> Result<(Vec<DigestInput>, Vec<Step>, bool)> {
        let dest = self.expand(dest_word, scope)?;
        let exclude = self.exclude(exclude)?;
        let dest_abs = absolute(&scope.workdir, &dest);
        let into_dir = is_dir_reference(&dest) || sources.len() > 1;
        let mut entries = Vec::new();
        let mut archives = Vec::new();
        let mut missing = Vec::new();
        for source in sources {
            match source {
                Source::Heredoc(h) => {
                    let target = if into_dir || dest.ends_with('/') {
                        format!("{}/{}", dest_abs.trim_end_matches('/'), h.name)
                    } else {
                        dest_abs.clone()
                    };
                    let body = if h.expand {
                        super::expand_heredoc(&h.body(), &|n| scope.var(n))
                            .map_err(|e| Box::new(Diagnostic::new(e.to_string(), Some(h.span))))?
                    } else {
                        h.body()
                    };
                    entries.push(CopyEntry {
                        source: PathBuf::new(),
                        inline: Some(body),
                        target,
                        contents_only: false,
                        mode: None,
                        hardlink: None,
                    });
                }
                Source::Path(word) => {
                    let text = self.expand(word, scope)?;
                    if parents {
                        self.parents_source(
                            &text,
                            word.span,
                            &dest_abs,
                            &exclude,
                            &mut entries,
                            &mut missing,
                        )?;
                        continue;
                    }
                    let matches = match self.matching(&text, word.span)? {
                        Matches::Found(paths) => paths,
                        Matches::Missing(rel, why) => {
                            missing.push((rel, why, word.span));
                            continue;
                        }
                    };
                    let multiple = into_dir || matches.len() > 1 || text.contains(['*', '?', '[']);
                    for rel in matches {
                        let host = self.options.context.join(&rel);
                        let meta = std::fs::symlink_metadata(&host).map_err(|e| {
                            Box::new(Diagnostic::new(
                                format!(
                                    "cannot read `{}` in the build context: {e}",
                                    rel.display()
                                ),
                                Some(word.span),
                            ))
                        })?;
                        let name = rel
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        // BuildKit follows a link named as a source, inside the context as if
                        // it were `/`; the copy keeps the link's name.
                        let (rel, meta) = if meta.file_type().is_symlink()
                            && !text.contains(['*', '?', '['])
                        {
                            let resolved =
                                self.context_path(&rel.to_string_lossy(), Some(word.span), true)?;
                            let host = self.options.context.join(&resolved);
                            let meta = std::fs::symlink_metadata(&host).map_err(|e| {
                                Box::new(Diagnostic::new(
                                    format!(
                                        "`{}` links to `{}`, which is not in the build context: {e}",
                                        rel.display(),
                                        resolved.display()
                                    ),
                                    Some(word.span),
                                ))
                            })?;
                            (resolved, meta)
                        } else {
                            (rel, meta)
                        };
                        // BuildKit extracts a file whose content is an archive, whatever
                        // its name (`isArchivePath`), and copies any other as it is.
                        let pinned = if add && meta.is_file() {
                            Some(self.pin(&rel, word.span)?)
                        } else {
                            None
                        };
                        if let Some(source) = pinned.filter(|p| sniff_archive(p)) {
                            archives.push(CopyEntry {
                                source,
                                inline: None,
                                target: dest_abs.clone(),
                                contents_only: false,
                                mode: None,
                                hardlink: None,
                            });
                            continue;
                        }
                        if meta.is_dir() {
                            self.walk_dir(&rel, &dest_abs, &exclude, word.span, &mut entries)?;
                        } else {
                            let target = if multiple || dest.ends_with('/') {
                                format!("{}/{name}", dest_abs.trim_end_matches('/'))
                            } else {
                                dest_abs.clone()
                            };
                            entries.push(CopyEntry {
                                source: self.pin(&rel, word.span)?,
                                inline: None,
                                target,
                                contents_only: false,
                                mode: None,
                                hardlink: None,
                            });
                        }
                    }
                }
            }
        }
        if let Some(&(_, _, span)) = missing.first() {
            return Ok(self.missing_sources(missing, span, &dest_abs, what));
        }
        // Both checksums are of the pinned copies, which the worker copies from.
        let root = &self.snapshot_root(dest_word.span)?;
        let (files_sum, archives_sum) = checksum(root, &entries)
            .and_then(|a| checksum(root, &archives).map(|b| (a, b)))
            .map_err(|e| {
                Box::new(Diagnostic::new(
                    format!("cannot read the build context: {e}"),
                    Some(dest_word.span),
                ))
            })?;
        let checksum = format!("{files_sum}{archives_sum}");
        let inputs = vec![DigestInput::CopySource {
            what: what.into(),
            params: json(&[dest_abs.clone(), format!("{chown:?}"), format!("{chmod:?}")]),
            checksum,
        }];
        let mut steps = Vec::new();
        if !entries.is_empty() {
            steps.push(Step {
                op: Op::CopyFiles(CopyFiles {
                    root: root.clone(),
                    entries,
                    checksum: files_sum,
                    chown: chown.clone(),
                    chmod,
                    unpack: false,
                }),
                span: Some(dest_word.span),
            });
        }
        if !archives.is_empty() {
            steps.push(Step {
                op: Op::CopyFiles(CopyFiles {
                    root: root.clone(),
                    entries: archives,
                    checksum: archives_sum,
                    chown,
                    chmod,
                    unpack: true,
                }),
                span: Some(dest_word.span),
            });
        }
        Ok((inputs, steps, false))
    }

    /// The stage of a COPY/ADD whose `missing` sources (relative to it, why, where) the context
    /// lacks: one step that fails when it runs, at the first missing source (`span`). Its
    /// digest input names what was missing, so no stage that copied files is taken for it.
    fn missing_sources(
        &self,
        missing: Vec<(String, String, Span)>,
        span: Span,
        dest_abs: &str,
        what: &str,
    ) -> (Vec<DigestInput>, Vec<Step>, bool) {
        let (paths, why): (Vec<String>, Vec<String>) = missing
            .into_iter()
            .map(|(text, why, _)| (text, why))
            .unzip();
        let inputs = vec![DigestInput::CopySource {
            what: what.into(),
            params: json(&[dest_abs.to_string()]),
            checksum: format!("missing {}", json(&paths)),
        }];
        let step = Step {
            op: Op::MissingSources(MissingSources {
                message: format!(
                    "{} (the context is {})",
                    why.join("; "),
                    self.options.context.display()
                ),
                context: self.options.context.clone(),
                paths,
            }),
            span: Some(span),
        };
        (inputs, vec![step], false)
    }

    /// The `--exclude` patterns of a COPY/ADD, as BuildKit's copy reads them
    /// ([`DockerIgnore::exclude_patterns`]): as written, without expanding variables
    /// (BuildKit expands none in them, moby/buildkit#6072).
    fn exclude(&self, words: &[Word]) -> Result<DockerIgnore> {
        let patterns: Vec<String> = words.iter().map(|w| w.text.clone()).collect();
        DockerIgnore::exclude_patterns(&patterns).map_err(|e| {
            let at = match &e {
                ExcludeError::BadPattern(p) => words.iter().find(|w| w.text.trim() == p),
                ExcludeError::LoneExclamation => words.iter().find(|w| w.text.trim() == "!"),
            };
            Box::new(Diagnostic::new(
                format!("--exclude: {e}"),
                at.or(words.first()).map(|w| w.span),
            ))
        })
    }

    /// The context paths a COPY source names: the path itself, or what a wildcard matches;
    /// never anything `.dockerignore` excludes. A source the context lacks is
    /// [`Matches::Missing`]: the step fails when it runs, not the plan.
    fn matching(&self, text: &str, span: Span) -> Result<Matches> {
        let rel = self.context_path(text, Some(span), false)?;
        let rel_str = rel.to_string_lossy().to_string();
        if !text.contains(['*', '?', '[']) {
            if rel_str.is_empty() {
                return Ok(Matches::Found(vec![rel]));
            }
            if self.ignore.is_excluded(&rel_str) {
                return Ok(Matches::Missing(
                    rel_str,
                    format!("`{text}` is not in the build context (.dockerignore excludes it)"),
                ));
            }
            if !self.exists(&rel, Some(span))? {
                return Ok(Matches::Missing(
                    rel_str,
                    format!("`{text}` is not in the build context"),
                ));
            }
            return Ok(Matches::Found(vec![rel]));
        }
        let glob = globset::GlobBuilder::new(&rel_str)
            .literal_separator(true)
            .build()
            .map_err(|e| {
                Box::new(Diagnostic::new(
                    format!("bad wildcard `{text}`: {e}"),
                    Some(span),
                ))
            })?
            .compile_matcher();
        let mut out = Vec::new();
        context_files::walk(&self.options.context, Path::new(""), &mut |p, is_dir| {
            let s = p.to_string_lossy();
            if self.ignore.is_excluded(&s) {
                return is_dir && self.ignore.may_include_below(&s);
            }
            if glob.is_match(p) {
                out.push(p.to_path_buf());
            }
            is_dir
        })
        .map_err(|e| context_error(&e, Some(span)))?;
        out.sort();
        if out.is_empty() {
            return Ok(Matches::Missing(
                rel_str,
                format!("`{text}` matches no file in the build context"),
            ));
        }
        Ok(Matches::Found(out))
    }

    /// What `.dockerignore` excludes below `dir` (an absolute path in the context), relative to
    /// it: the topmost excluded entries, for hiding them from a bind mount of the context.
    fn ignored_below(&self, dir: &Path, span: Option<Span>) -> Result<Vec<String>> {
        let Ok(rel) = dir.strip_prefix(&self.options.context) else {
            return Ok(Vec::new());
        };
        let is_dir = std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir());
        if !is_dir {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        context_files::walk(&self.options.context, rel, &mut |p, is_dir| {
            let s = p.to_string_lossy();
            if self.ignore.is_excluded(&s) && !(is_dir && self.ignore.may_include_below(&s)) {
                let inner = p.strip_prefix(rel).unwrap_or(p);
                out.push(inner.to_string_lossy().into_owned());
                return false;
            }
            is_dir
        })
        .map_err(|e| context_error(&e, span))?;
        out.sort();
        Ok(out)
    }

    /// Every entry of a context directory (its content lands at `target`), minus what
    /// `.dockerignore` and `COPY --exclude` exclude, each pinned into the snapshot. The
    /// directory itself is not copied, only made when missing (`COPY dir/ /dest/`).
    fn walk_dir(
        &self,
        rel: &Path,
        target: &str,
        exclude: &DockerIgnore,
        span: Span,
        entries: &mut Vec<CopyEntry>,
    ) -> Result<()> {
        let found = tree(
            &self.options.context,
            rel,
            target,
            exclude,
            Some(&self.ignore),
        )
        .map_err(|e| context_error(&e, Some(span)))?;
        self.take(found, span, true, entries)
    }

    /// Pins the context entries `found` (each with the image path it lands at), parents
    /// before their children, and adds them to `entries`; a file with more than one link
    /// becomes a hardlink to its first entry. With `contents_only` the first entry, a
    /// directory, is only made when missing, not copied.
    fn take(
        &self,
        found: Vec<(PathBuf, String)>,
        span: Span,
        contents_only: bool,
        entries: &mut Vec<CopyEntry>,
    ) -> Result<()> {
        // The first entry of each file with more than one link, by (device, inode).
        let mut inodes = std::collections::HashMap::new();
        for (i, (rel, target)) in found.into_iter().enumerate() {
            let path = self.options.context.join(&rel);
            let meta = std::fs::symlink_metadata(&path).map_err(|source| {
                context_error(&context_files::ContextError { path, source }, Some(span))
            })?;
            let linked = meta.is_file() && meta.nlink() > 1;
            let hardlink = match linked {
                true => inodes.get(&(meta.dev(), meta.ino())).copied(),
                false => None,
            };
            if linked && hardlink.is_none() {
                inodes.insert((meta.dev(), meta.ino()), entries.len());
            }
            entries.push(CopyEntry {
                source: self.pin(&rel, span)?,
                inline: None,
                target,
                contents_only: contents_only && i == 0,
                mode: None,
                hardlink,
            });
        }
        Ok(())
    }

    /// A `COPY --parents` source of the context, as BuildKit's dispatchCopy turns it into a
    /// copy: what is copied from is the path before its first `/./` (links followed; with
    /// wildcards, each directory they match), else the context's root; the rest is an include
    /// pattern (moby's `patternmatcher`, as `--exclude`) matched below it, and so are the
    /// `--exclude` patterns. What they take lands at its path below that root under `dest`,
    /// with the directories above it copied too (their own metadata, fsutil's
    /// `createParentDirs`) and the destination made when missing. Only a source without
    /// wildcards must exist (`RequiredPaths`); one whose wildcards match nothing copies
    /// nothing else.
    #[allow(clippy::too_many_arguments)]
    fn parents_source(
        &self,
        text: &str,
        span: Span,
        dest: &str,
        exclude: &DockerIgnore,
        entries: &mut Vec<CopyEntry>,
        missing: &mut Vec<(String, String, Span)>,
    ) -> Result<()> {
        let (root, pattern) = parents_split(text);
        let include = self.include_pattern(&pattern, span)?;
        if !has_wildcards(text)
            && let Matches::Missing(rel, why) = self.matching(text, span)?
        {
            missing.push((rel, why, span));
            return Ok(());
        }
        let roots = match self.matching(root, span)? {
            Matches::Found(found) => found,
            Matches::Missing(..) if has_wildcards(root) => Vec::new(),
            Matches::Missing(rel, why) => {
                missing.push((rel, why, span));
                return Ok(());
            }
        };
        // The include pattern's components before its first wildcard: no path that leaves
        // them can match, so the walk need not enter it.
        let fixed: Vec<&str> = pattern
            .split('/')
            .take_while(|part| !part.contains(['*', '?', '[', '\\']))
            .collect();
        let top = dest.trim_end_matches('/');
        for root in roots {
            let root = self.context_path(&root.to_string_lossy(), Some(span), true)?;
            let host = self.options.context.join(&root);
            if !host.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                // A file the root's wildcards matched is copied itself (the copy's
                // source, which no pattern matches).
                let name = root.file_name().unwrap_or_default().to_string_lossy();
                let target = format!("{top}/{name}");
                self.take(vec![(root.clone(), target)], span, false, entries)?;
                continue;
            }
            // The root's content is copied: the destination is only made when missing.
            let mut found = vec![(root.clone(), dest.to_string())];
            let mut taken = std::collections::HashSet::new();
            context_files::walk(&self.options.context, &root, &mut |p, is_dir| {
                let s = p.to_string_lossy();
                if self.ignore.is_excluded(&s) {
                    return is_dir && self.ignore.may_include_below(&s);
                }
                let below = p.strip_prefix(&root).unwrap_or(p);
                let below_str = below.to_string_lossy();
                if exclude.is_excluded(&below_str) {
                    return is_dir && exclude.may_include_below(&below_str);
                }
                if include.is_excluded(&below_str) {
                    let mut above: Vec<&Path> = below
                        .ancestors()
                        .skip(1)
                        .filter(|a| !a.as_os_str().is_empty())
                        .collect();
                    above.reverse();
                    for dir in above.into_iter().chain([below]) {
                        if taken.insert(dir.to_path_buf()) {
                            found.push((root.join(dir), format!("{top}/{}", dir.display())));
                        }
                    }
                    return is_dir;
                }
                is_dir
                    && below
                        .iter()
                        .zip(&fixed)
                        .all(|(part, fixed)| part.to_str() == Some(fixed))
            })
            .map_err(|e| context_error(&e, Some(span)))?;
            self.take(found, span, true, entries)?;
        }
        Ok(())
    }

    /// The include pattern of a `COPY --parents` source, read as BuildKit's copy reads its
    /// `IncludePatterns` (`patternmatcher.New`, like `--exclude`'s).
    fn include_pattern(&self, pattern: &str, span: Span) -> Result<DockerIgnore> {
        DockerIgnore::exclude_patterns(&[pattern.to_string()]).map_err(|e| {
            Box::new(Diagnostic::new(
                format!("bad wildcard `{pattern}`: {e}"),
                Some(span),
            ))
        })
    }

    /// Whether the context has an entry at `rel` (a link counts, it is not followed); an error
    /// other than its absence names the path.
    fn exists(&self, rel: &Path, span: Option<Span>) -> Result<bool> {
        let path = self.options.context.join(rel);
        match std::fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(false)
            }
            Err(source) => Err(context_error(
                &context_files::ContextError { path, source },
                span,
            )),
        }
    }

    /// Pins the context entry `rel` (see [`context_files::Snapshot`]) and returns the path of
    /// its copy.
    fn pin(&self, rel: &Path, span: Span) -> Result<PathBuf> {
        let mut snapshot = self.snapshot(span)?;
        snapshot
            .take(rel)
            .map_err(|e| context_error(&e, Some(span)))
    }

    /// The snapshot's directory (the root of the plan's `CopyFiles`).
    fn snapshot_root(&self, span: Span) -> Result<PathBuf> {
        Ok(self.snapshot(span)?.root().to_path_buf())
    }

    /// The build's snapshot, made on first use.
    fn snapshot(&self, span: Span) -> Result<std::cell::RefMut<'_, Snapshot>> {
        let mut cell = self.snapshot.borrow_mut();
        if cell.is_none() {
            let dirs = self.options.snapshot.as_ref().ok_or_else(|| {
                Box::new(Diagnostic::new(
                    "this build gives the Dockerfile no directory to pin the context's files in, so it cannot copy from the context",
                    Some(span),
                ))
            })?;
            let made = Snapshot::new(&self.options.context, dirs)
                .map_err(|e| context_error(&e, Some(span)))?;
            *cell = Some(made);
        }
        Ok(std::cell::RefMut::map(cell, |c| {
            c.as_mut().expect("made above when missing")
        }))
    }
}

/// The directory `rel` of `root` and every entry below it that neither `ignore` (paths
/// relative to `root`) nor `exclude` (relative to `rel`: `COPY --exclude`) leaves out, each
/// with the image path it lands at below `target`; parents before their children.
fn tree(
    root: &Path,
    rel: &Path,
    target: &str,
    exclude: &DockerIgnore,
    ignore: Option<&DockerIgnore>,
) -> std::result::Result<Vec<(PathBuf, String)>, context_files::ContextError> {
    let mut found = vec![(rel.to_path_buf(), target.to_string())];
    let top = target.trim_end_matches('/');
    context_files::walk(root, rel, &mut |p, is_dir| {
        let s = p.to_string_lossy();
        if ignore.is_some_and(|i| i.is_excluded(&s) && !(is_dir && i.may_include_below(&s))) {
            return false;
        }
        let below = p.strip_prefix(rel).unwrap_or(p);
        let below_str = below.to_string_lossy();
        if exclude.is_excluded(&below_str) && !(is_dir && exclude.may_include_below(&below_str)) {
            return false;
        }
        found.push((p.to_path_buf(), format!("{top}/{below_str}")));
        is_dir
    })?;
    Ok(found)
}

/// A context read error at the instruction that needed it.
fn context_error(e: &context_files::ContextError, span: Option<Span>) -> Box<Diagnostic> {
    Box::new(Diagnostic::new(
        format!("cannot read the build context: {e}"),
        span,
    ))
}

/// A sha256 over the copied entries: targets, types, modes and contents, read beneath the
/// context `root` exactly as the worker reads them for the layer.
fn checksum(root: &Path, entries: &[CopyEntry]) -> std::io::Result<String> {
    let context = super::context_files::ContextRoot::open(root)?;
    let mut h = super::context_files::CopyChecksum::default();
    for e in entries {
        if let Some(inline) = &e.inline {
            h.inline(&e.target, inline);
            continue;
        }
        if let Some(file) = e.hardlink {
            h.hardlink(&e.target, file);
            continue;
        }
        let entry = context.entry(&e.source)?;
        h.start(&e.target, &entry);
        if let super::context_files::ContextEntry::File(mut file, _) = entry {
            std::io::copy(&mut file, h.content())?;
        }
        h.end();
    }
    Ok(h.finish())
}

/// A `COPY --parents` source split as BuildKit's dispatchCopy splits it: the path it is
/// copied from (before the first `/./`, else the root) and the include pattern below it
/// (cleaned, relative).
fn parents_split(text: &str) -> (&str, String) {
    let (root, pattern) = text.split_once("/./").unwrap_or(("/", text));
    let pattern = absolute("/", pattern).trim_start_matches('/').to_string();
    (if root.is_empty() { "/" } else { root }, pattern)
}

/// Whether a source has wildcards: `*`, `?` or `[` not escaped by a `\` (BuildKit's
/// `containsWildcards`).
fn has_wildcards(text: &str) -> bool {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// What a COPY source names in the build context.
enum Matches {
    /// These paths, relative to the context.
    Found(Vec<PathBuf>),
    /// Nothing: the path (or wildcard) relative to the context, and why, in the user's terms.
    Missing(String, String),
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("strings always serialize")
}

/// `path` made absolute against `cwd`, normalized lexically (`..` never leaves `/`).
pub fn absolute(cwd: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{path}", cwd.trim_end_matches('/'))
    };
    let mut parts: Vec<&str> = Vec::new();
    for p in joined.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut out = format!("/{}", parts.join("/"));
    if path.ends_with('/') && out != "/" {
        out.push('/');
    }
    out
}

/// `--chmod=0755` or `--chmod=u+x,go-w`.
fn mode(word: &Word) -> Result<Chmod> {
    word.text
        .parse()
        .map_err(|e| Box::new(Diagnostic::new(format!("--chmod: {e}"), Some(word.span))))
}

/// A context copy with a symbolic `--chmod` applied: the plan carries one mode per copy, so
/// its entries are split into one copy per mode they end with (a link keeps its own); the
/// mode is part of the key. An octal or no `--chmod` leaves `lowered` as it is.
fn symbolic_chmod(
    lowered: (Vec<DigestInput>, Vec<Step>, bool),
    chmod: Option<&Chmod>,
    word: &Word,
) -> Result<(Vec<DigestInput>, Vec<Step>, bool)> {
    let Some(chmod @ Chmod::Symbolic(_)) = chmod else {
        return Ok(lowered);
    };
    let (mut inputs, steps, late) = lowered;
    inputs.push(DigestInput::Setting {
        name: Setting::Chmod,
        value: word.text.clone(),
    });
    let unreadable = |e: std::io::Error| {
        Box::new(Diagnostic::new(
            format!("cannot read the build context: {e}"),
            Some(word.span),
        ))
    };
    let mut out = Vec::new();
    for step in steps {
        let Op::CopyFiles(copy) = &step.op else {
            out.push(step);
            continue;
        };
        if copy.unpack {
            out.push(step);
            continue;
        }
        let mut entries = Vec::new();
        for entry in &copy.entries {
            let mode = match &entry.inline {
                Some(_) => Some(chmod.apply(0o644, false)),
                None => {
                    let meta = std::fs::symlink_metadata(&entry.source).map_err(unreadable)?;
                    (!meta.file_type().is_symlink()).then(|| {
                        chmod.apply(
                            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()),
                            meta.is_dir(),
                        )
                    })
                }
            };
            entries.push(CopyEntry {
                mode,
                ..entry.clone()
            });
        }
        out.push(Step {
            op: Op::CopyFiles(CopyFiles {
                entries,
                chmod: None,
                ..copy.clone()
            }),
            span: step.span,
        });
    }
    Ok((inputs, out, late))
}

fn split_owner(chown: Option<&str>) -> (Option<String>, Option<String>) {
    match chown {
        None => (None, None),
        Some(c) => match c.split_once(':') {
            Some((u, g)) => (Some(u.to_string()), Some(g.to_string())),
            None => (Some(c.to_string()), None),
        },
    }
}

/// Whether a destination as written names a directory: `dir/`, `.`, `..`, `dir/.`.
fn is_dir_reference(dest: &str) -> bool {
    dest.ends_with('/')
        || dest == "."
        || dest == ".."
        || dest.ends_with("/.")
        || dest.ends_with("/..")
}

/// Whether the pinned copy of a file `ADD` names holds an archive (an unreadable one is taken
/// as no archive: copying it then names the error).
fn sniff_archive(path: &Path) -> bool {
    std::fs::File::open(path).is_ok_and(|mut f| strata_layer::compression::is_archive(&mut f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_like_docker() {
        assert_eq!(absolute("/app", "src"), "/app/src");
        assert_eq!(absolute("/app", "/etc/x"), "/etc/x");
        assert_eq!(absolute("/app", "../x/"), "/x/");
        assert_eq!(absolute("/", "."), "/");
        assert_eq!(
            split_owner(Some("1:2")),
            (Some("1".into()), Some("2".into()))
        );
    }
}
