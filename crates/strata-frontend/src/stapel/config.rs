//! The typed stapel config: what [`parse`](super::parse) makes of the YAML, with the span of
//! every key and value that later passes may need to point at.

use strata_plan::{Healthcheck, ImageName, Span};

/// A value and where it is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where the value is written.
    pub span: Span,
}

/// A value, the key it is written under and where both are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyed<T> {
    /// The value.
    pub value: T,
    /// Where the key is written.
    pub key: Span,
    /// Where the value is written.
    pub span: Span,
}

/// A whole config: the meta document and the image documents.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// `project:` of the meta document.
    pub project: Option<Spanned<String>>,
    /// `configVersion:` of the meta document (always 1 when set).
    pub config_version: Option<Spanned<u32>>,
    /// The image documents, in written order.
    pub images: Vec<ImageConfig>,
    /// `build.cacheVersion` of the meta document: a digest input of every image.
    pub cache_version: Option<Keyed<String>>,
    /// `build.imageSpec` of the meta document: applied to every image before its own.
    pub image_spec: Option<Keyed<strata_plan::ConfigChange>>,
    /// Image documents that did not parse, with their error: a build that needs one of them
    /// fails with it, a build of other images of the file goes ahead.
    pub broken: Vec<(ImageName, Box<strata_plan::Diagnostic>)>,
    /// Notes for the user about keys accepted but left to werf.
    pub notes: Vec<String>,
    /// The meta `cleanup:` (`strata cleanup`'s keep policies), when written.
    pub cleanup: Option<super::cleanup::Cleanup>,
}

/// One image document.
#[derive(Clone, Debug)]
pub struct ImageConfig {
    /// `image:`.
    pub name: ImageName,
    /// Where the name (the value of `image:`) is written.
    pub name_span: Span,
    /// `from:` or `fromImage:` (exactly one of them is written).
    pub from: Keyed<From>,
    /// Where the document starts.
    pub document: Span,
    /// `cacheVersion:` of the image.
    pub cache_version: Option<Keyed<String>>,
    /// `fromCacheVersion:`.
    pub from_cache_version: Option<Keyed<String>>,
    /// `final:` (default true).
    pub is_final: bool,
    /// `shell:`.
    pub shell: Shell,
    /// `ansible:`.
    pub ansible: Ansible,
    /// `docker:`.
    pub docker: Docker,
    /// `git:`.
    pub git: Vec<GitConfig>,
    /// `import:`.
    pub imports: Vec<ImportConfig>,
    /// `mount:`.
    pub mounts: Vec<MountConfig>,
    /// `dependencies:`.
    pub dependencies: Vec<DependencyConfig>,
    /// `dockerfile:` with `context:`, `target:`, `args:`: the image is a Dockerfile's target.
    pub dockerfile: Option<DockerfileImage>,
    /// Written as an `artifact:` document (werf's legacy form of `final: false`, without git
    /// patches and docker directives).
    pub is_artifact: bool,
    /// `disableGitAfterPatch: true`: no `gitCache` and `gitLatestPatch` stages.
    pub disable_git_after_patch: bool,
    /// `network: none`, where it is written: user stages run without network.
    pub no_network: Option<Span>,
    /// `fromLatest: true`: werf asks the registry for the base's digest on every build.
    pub from_latest: bool,
    /// `imageSpec:`, the change of the `imageSpec` stage.
    pub image_spec: Option<Keyed<strata_plan::ConfigChange>>,
    /// `secrets:`, in written order.
    pub secrets: Vec<SecretConfig>,
    /// `addHost:` entries (`NAME:IP`), in written order.
    pub add_hosts: Vec<(String, std::net::IpAddr)>,
}

/// One entry of `secrets:`.
#[derive(Clone, Debug)]
pub struct SecretConfig {
    /// The whole list item.
    pub span: Span,
    /// `id:`, or werf's default: the variable's name for `env`, the file name for `src`.
    pub id: String,
    /// `env:`, `src:` or `value:`.
    pub source: strata_plan::SecretSource,
}

/// What an image starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum From {
    /// `from: scratch`.
    Scratch,
    /// `from: REFERENCE`.
    Reference(String),
    /// `fromImage: NAME`.
    Image(String),
}

/// The four user stages, in build order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserStage {
    /// `beforeInstall`.
    BeforeInstall,
    /// `install`.
    Install,
    /// `beforeSetup`.
    BeforeSetup,
    /// `setup`.
    Setup,
}

impl UserStage {
    /// All user stages, in build order.
    pub const ALL: [UserStage; 4] = [
        UserStage::BeforeInstall,
        UserStage::Install,
        UserStage::BeforeSetup,
        UserStage::Setup,
    ];

    /// The stage name (and `shell:` key).
    pub fn name(self) -> &'static str {
        match self {
            UserStage::BeforeInstall => "beforeInstall",
            UserStage::Install => "install",
            UserStage::BeforeSetup => "beforeSetup",
            UserStage::Setup => "setup",
        }
    }

    /// The key of the stage's own cache version (`installCacheVersion`, ...).
    pub fn cache_version_key(self) -> &'static str {
        match self {
            UserStage::BeforeInstall => "beforeInstallCacheVersion",
            UserStage::Install => "installCacheVersion",
            UserStage::BeforeSetup => "beforeSetupCacheVersion",
            UserStage::Setup => "setupCacheVersion",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The `shell:` or `ansible:` section (werf's two kinds of assembly instructions): each user
/// stage's instructions, `T` being a shell command or an ansible task, and cache versions.
#[derive(Clone, Debug)]
pub struct Instructions<T> {
    /// Where the section's key (`shell:`, `ansible:`) is written, if it is.
    pub key: Option<Span>,
    /// `shell.cacheVersion` / `ansible.cacheVersion`: goes into every user stage.
    pub cache_version: Option<Keyed<String>>,
    /// Instructions and cache version of each user stage, indexed in [`UserStage::ALL`] order.
    pub stages: [StageInstructions<T>; 4],
}

impl<T> Default for Instructions<T> {
    fn default() -> Self {
        Instructions {
            key: None,
            cache_version: None,
            stages: std::array::from_fn(|_| StageInstructions::default()),
        }
    }
}

impl<T> Instructions<T> {
    /// The settings of one user stage.
    pub fn stage(&self, stage: UserStage) -> &StageInstructions<T> {
        &self.stages[stage.index()]
    }

    /// The settings of one user stage, to fill in.
    pub fn stage_mut(&mut self, stage: UserStage) -> &mut StageInstructions<T> {
        &mut self.stages[stage.index()]
    }

    /// Whether any stage has instructions.
    pub fn is_empty(&self) -> bool {
        self.stages.iter().all(|s| s.commands.is_empty())
    }
}

/// The `shell:` section.
pub type Shell = Instructions<String>;
/// The `ansible:` section.
pub type Ansible = Instructions<AnsibleTask>;
/// The commands and cache version of one stage of `shell:`.
pub type ShellStage = StageInstructions<String>;

/// The instructions and cache version of one user stage.
#[derive(Clone, Debug)]
pub struct StageInstructions<T> {
    /// Where the stage key (`install:`) is written, if it is.
    pub key: Option<Span>,
    /// The instructions, each with the span of its list item (or of the string value).
    pub commands: Vec<Spanned<T>>,
    /// `<stage>CacheVersion`.
    pub cache_version: Option<Keyed<String>>,
}

impl<T> Default for StageInstructions<T> {
    fn default() -> Self {
        StageInstructions {
            key: None,
            commands: Vec::new(),
            cache_version: None,
        }
    }
}

/// One task of `ansible:`, checked against werf's list of supported modules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnsibleTask {
    /// What the digest hashes (werf's form): the task as JSON with sorted keys, scalars as
    /// written.
    pub json: String,
    /// The task as a block-style YAML mapping for the playbook (strings double-quoted,
    /// numbers and booleans as written), without strata's tag.
    pub yaml: String,
}

/// The `docker:` section: directives of the `dockerInstructions` stage.
#[derive(Clone, Debug, Default)]
pub struct Docker {
    /// Where the `docker:` key is written.
    pub key: Option<Span>,
    /// `VOLUME`.
    pub volume: Option<Keyed<Vec<String>>>,
    /// `EXPOSE`.
    pub expose: Option<Keyed<Vec<String>>>,
    /// `ENV`, in written order.
    pub env: Option<Keyed<Vec<(String, String)>>>,
    /// `LABEL`, in written order.
    pub label: Option<Keyed<Vec<(String, String)>>>,
    /// `ENTRYPOINT` as an argv.
    pub entrypoint: Option<Keyed<Vec<String>>>,
    /// `CMD` as an argv.
    pub cmd: Option<Keyed<Vec<String>>>,
    /// `WORKDIR`.
    pub workdir: Option<Keyed<String>>,
    /// `USER`.
    pub user: Option<Keyed<String>>,
    /// `HEALTHCHECK`.
    pub healthcheck: Option<Keyed<Healthcheck>>,
}

impl Docker {
    /// Whether no directive is set.
    pub fn is_empty(&self) -> bool {
        self.volume.is_none()
            && self.expose.is_none()
            && self.env.is_none()
            && self.label.is_none()
            && self.entrypoint.is_none()
            && self.cmd.is_none()
            && self.workdir.is_none()
            && self.user.is_none()
            && self.healthcheck.is_none()
    }
}

/// Which ref of a remote repository a mapping follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GitRef {
    /// `branch:`.
    Branch,
    /// `tag:`.
    Tag,
    /// `commit:`.
    Commit,
}

/// One entry of `git:`.
#[derive(Clone, Debug)]
pub struct GitConfig {
    /// The whole list item.
    pub span: Span,
    /// `url:` of a remote repository (none: the repository holding the config).
    pub url: Option<Spanned<String>>,
    /// `branch:`, `tag:` or `commit:` of a remote.
    pub git_ref: Option<(GitRef, Spanned<String>)>,
    /// `add:` (default `/`).
    pub add: Option<Spanned<String>>,
    /// `to:`.
    pub to: Spanned<String>,
    /// `owner:`.
    pub owner: Option<Spanned<String>>,
    /// `group:`.
    pub group: Option<Spanned<String>>,
    /// `includePaths:`.
    pub include_paths: Vec<Spanned<String>>,
    /// `excludePaths:`.
    pub exclude_paths: Vec<Spanned<String>>,
    /// `stageDependencies:` per user stage (`install`, `beforeSetup`, `setup`).
    pub stage_dependencies: Vec<(UserStage, Vec<Spanned<String>>)>,
    /// `basicAuth:` of a remote.
    pub basic_auth: Option<BasicAuthConfig>,
}

/// `basicAuth:` of a git mapping: what the clone of its `url` authenticates with.
#[derive(Clone, Debug)]
pub struct BasicAuthConfig {
    /// Where `basicAuth` is written.
    pub key: Span,
    /// `username:`.
    pub username: Spanned<String>,
    /// `password:` with one of `env`, `src` and `value`.
    pub password: Spanned<strata_plan::SecretSource>,
}

/// When an import runs: `before`/`after` with `install` or `setup`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ImportPoint {
    /// `before: install` (stage `dependenciesBeforeInstall`).
    BeforeInstall,
    /// `after: install` (stage `dependenciesAfterInstall`).
    AfterInstall,
    /// `before: setup` (stage `dependenciesBeforeSetup`).
    BeforeSetup,
    /// `after: setup` (stage `dependenciesAfterSetup`).
    AfterSetup,
}

impl ImportPoint {
    /// All points, in build order.
    pub const ALL: [ImportPoint; 4] = [
        ImportPoint::BeforeInstall,
        ImportPoint::AfterInstall,
        ImportPoint::BeforeSetup,
        ImportPoint::AfterSetup,
    ];

    /// The stage that runs the imports of this point.
    pub fn stage_name(self) -> &'static str {
        match self {
            ImportPoint::BeforeInstall => "dependenciesBeforeInstall",
            ImportPoint::AfterInstall => "dependenciesAfterInstall",
            ImportPoint::BeforeSetup => "dependenciesBeforeSetup",
            ImportPoint::AfterSetup => "dependenciesAfterSetup",
        }
    }
}

/// One entry of `import:`.
#[derive(Clone, Debug)]
pub struct ImportConfig {
    /// The whole list item.
    pub span: Span,
    /// `image:` or `artifact:`: the image to copy from.
    pub image: Spanned<String>,
    /// `stage:`: the stage of that image to copy from (default: its last).
    pub stage: Option<Spanned<String>>,
    /// `add:`: the path in that image.
    pub add: Spanned<String>,
    /// `to:` (default: the same path as `add`).
    pub to: Option<Spanned<String>>,
    /// `includePaths:`.
    pub include_paths: Vec<Spanned<String>>,
    /// `excludePaths:`.
    pub exclude_paths: Vec<Spanned<String>>,
    /// `owner:`.
    pub owner: Option<Spanned<String>>,
    /// `group:`.
    pub group: Option<Spanned<String>>,
    /// `before:`/`after:`.
    pub point: Spanned<ImportPoint>,
}

/// One entry of `mount:`.
#[derive(Clone, Debug)]
pub struct MountConfig {
    /// The whole list item.
    pub span: Span,
    /// `from: tmp_dir | build_dir`, or `fromPath:` (a host path).
    pub source: Spanned<strata_plan::MountSource>,
    /// `to:`.
    pub to: Spanned<String>,
}

/// One entry of `dependencies:`: another image whose name, id, repo, tag or digest the build
/// gets as variables.
#[derive(Clone, Debug)]
pub struct DependencyConfig {
    /// The whole list item.
    pub span: Span,
    /// `image:`.
    pub image: Spanned<String>,
    /// `before:`/`after:` (`install` or `setup`); a stapel image's dependency has one, a
    /// Dockerfile image's none.
    pub point: Option<Spanned<ImportPoint>>,
    /// `imports:` with `targetEnv` (stapel images) as (`type`, `targetEnv`).
    pub imports: Vec<(Spanned<strata_plan::DependencyValue>, Spanned<String>)>,
    /// `imports:` with `targetBuildArg` (Dockerfile images) as (`type`, `targetBuildArg`).
    pub build_args: Vec<(Spanned<strata_plan::DependencyValue>, Spanned<String>)>,
}

/// An image built from a Dockerfile (werf's `dockerfile:` images).
#[derive(Clone, Debug)]
pub struct DockerfileImage {
    /// `dockerfile:`, relative to the context.
    pub dockerfile: Spanned<String>,
    /// `context:`, relative to the config's directory (default: it).
    pub context: Option<Spanned<String>>,
    /// `target:`.
    pub target: Option<Spanned<String>>,
    /// `args:`.
    pub args: Vec<(String, String)>,
}
