//! The strata build plan: the one intermediate form between frontends and the solver.
//!
//! A frontend (the stapel config, a Dockerfile) turns user files into a [`Plan`]: a list of
//! [`Image`]s, each an ordered list of [`Stage`]s, each a list of [`Step`]s. Every step keeps the
//! [`Span`] of the user's source that produced it, so errors, introspection and the debugger
//! point back at `strata.yaml:14:5`.
//!
//! What goes into a stage's cache digest is explicit: [`Stage::inputs`] holds the typed
//! [`DigestInput`]s (one variant per kind; [`StageKind::feeds`] is the table of which kinds
//! feed which stage), and nothing else about the stage changes its digest. Data that must not
//! change the digest (service variables such as the commit hash, mounts' host paths) lives in
//! [`StageOptions`].
//!
//! This crate knows no frontend syntax and nothing about execution or caches.
//!
//! ```
//! use strata_plan::{DigestInput, Stage, StageKind, StageOptions};
//! let stage = Stage {
//!     name: "install".into(),
//!     kind: StageKind::User,
//!     inputs: vec![DigestInput::Instructions { lines: vec!["make".into()] }],
//!     steps: vec![],
//!     options: StageOptions::default(),
//!     late_inputs: None,
//!     span: None,
//! };
//! assert_eq!(stage.inputs[0].name(), "instructions");
//! assert_eq!(stage.kind.first_unfed(&stage.inputs), None);
//! ```
#![deny(missing_docs)]

mod input;
mod source_map;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use input::{DigestInput, InputKind, MASK_FILES_RECORDED, MaskFiles, Setting, StageKind};
pub use source_map::{Diagnostic, FileId, LineCol, SourceFile, SourceMap, Span};

/// Everything to build, as the frontend understood it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Plan {
    /// The project name (`project:` of the meta document), if any.
    pub project: Option<String>,
    /// The directory holding the config (the build context).
    pub context_dir: PathBuf,
    /// The images, in config order. [`Base::Image`] refers to them by index.
    pub images: Vec<Image>,
    /// The user files the plan came from.
    pub sources: SourceMap,
    /// The images built when the user names none (empty: all); a Dockerfile's target.
    pub default_images: Vec<String>,
    /// Things the user should know about how the plan was made (for example uncommitted
    /// changes that the build leaves out).
    pub notes: Vec<String>,
    /// Images planned before the values they take from other images were known (werf's
    /// `dependencies`: `targetEnv`, `targetBuildArg`), each with the images whose values it
    /// waits for: their plans hold placeholders, and a build builds the awaited images first
    /// and makes the plan again with the values ([`Plan::ready`], [`ImageValues`]).
    #[serde(default)]
    pub waiting: Vec<(usize, Vec<usize>)>,
}

impl Plan {
    /// The index of the image with this name (`~` or an empty string for the nameless image).
    pub fn image_index(&self, name: &str) -> Option<usize> {
        self.images.iter().position(|i| i.name.matches(name))
    }

    /// The images `index` needs built first: its `fromImage` base and the images it imports
    /// from.
    pub fn needs(&self, index: usize) -> Vec<usize> {
        let image = &self.images[index];
        let mut deps = image.dependencies.clone();
        if let Base::Image { index: base, .. } = image.base {
            deps.push(base);
        }
        deps
    }

    /// The images `roots` need built first, themselves included (all images when `roots` is
    /// empty).
    pub fn closure(&self, roots: &[usize]) -> std::collections::BTreeSet<usize> {
        let mut seen = std::collections::BTreeSet::new();
        let mut stack = match roots {
            [] => (0..self.images.len()).collect(),
            _ => roots.to_vec(),
        };
        while let Some(i) = stack.pop() {
            if seen.insert(i) {
                stack.extend(self.needs(i));
            }
        }
        seen
    }

    /// The waiting images among `images` ([`Plan::waiting`]).
    pub fn waiting_among(&self, images: &std::collections::BTreeSet<usize>) -> Vec<usize> {
        self.waiting
            .iter()
            .map(|(w, _)| *w)
            .filter(|w| images.contains(w))
            .collect()
    }

    /// The images a build of `roots` (all when empty) waits for that can be built now:
    /// awaited by a waiting image `roots` need, and neither they nor anything they need waits
    /// itself. Empty when nothing waits.
    pub fn ready(&self, roots: &[usize]) -> Vec<usize> {
        let wanted = self.closure(roots);
        let mut ready: Vec<usize> = self
            .waiting
            .iter()
            .filter(|(w, _)| wanted.contains(w))
            .flat_map(|(_, awaited)| awaited.iter().copied())
            .filter(|&i| self.waiting_among(&self.closure(&[i])).is_empty())
            .collect();
        ready.sort_unstable();
        ready.dedup();
        ready
    }
}

/// What werf's `dependencies` give of an image once it is built ([`DependencyValue`]); a plan
/// waiting for them holds [`ImageValues::placeholder`]'s ([`Plan::waiting`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageValues {
    /// The name of its last stage, werf's `ImageName`: `REPO:DIGEST-MILLIS`.
    pub name: String,
    /// Its config digest (Docker's image id, werf's `ImageID`).
    pub id: String,
    /// Its manifest digest (werf's `ImageDigest`).
    pub digest: String,
}

impl ImageValues {
    /// The values of image `name` before it is built: a name no stage has and a digest no
    /// image has, so a plan using them is made as it will be with the real ones.
    pub fn placeholder(name: &str) -> ImageValues {
        let zeros = format!("sha256:{}", "0".repeat(64));
        ImageValues {
            name: format!("{name}:not-built-yet"),
            id: zeros.clone(),
            digest: zeros,
        }
    }

    /// The value of `kind`; the repository and tag split the name at its last `:` after the
    /// last `/`, as werf's `ParseRepositoryAndTag`.
    pub fn value(&self, kind: DependencyValue) -> String {
        let last = self.name.rfind('/').map_or(0, |i| i + 1);
        let (repo, tag) = match self.name[last..].rfind(':') {
            Some(i) => (&self.name[..last + i], &self.name[last + i + 1..]),
            None => (self.name.as_str(), "latest"),
        };
        match kind {
            DependencyValue::ImageName => self.name.clone(),
            DependencyValue::ImageRepo => repo.to_string(),
            DependencyValue::ImageTag => tag.to_string(),
            DependencyValue::ImageId => self.id.clone(),
            DependencyValue::ImageDigest => self.digest.clone(),
        }
    }
}

/// An image's name: `image: NAME`, or `image: ~` for the nameless image of a config.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ImageName {
    /// A named image.
    Named(String),
    /// The one nameless image (`image: ~`).
    Nameless,
}

impl ImageName {
    /// Whether `name` designates this image (`~` and `""` designate the nameless one).
    pub fn matches(&self, name: &str) -> bool {
        match self {
            ImageName::Named(n) => n == name,
            ImageName::Nameless => name == "~" || name.is_empty(),
        }
    }
}

impl std::fmt::Display for ImageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageName::Named(n) => f.write_str(n),
            ImageName::Nameless => f.write_str("~"),
        }
    }
}

/// One image: a base and a chain of stages on top of it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Image {
    /// Its name.
    pub name: ImageName,
    /// What the first stage starts from.
    pub base: Base,
    /// The non-empty stages, in build order; each builds on the one before.
    pub stages: Vec<Stage>,
    /// False for images only used to feed others (`final: false`, artifacts): not tagged.
    pub is_final: bool,
    /// Git content mapped into the image; [`Op::GitArchive`] and [`Op::GitPatch`] refer to these
    /// by index.
    pub git: Vec<GitMapping>,
    /// Other images (indexes into [`Plan::images`]) that must be built before this one, besides
    /// its base: the images it imports files from.
    pub dependencies: Vec<usize>,
    /// The image's document or `image:` key.
    pub span: Option<Span>,
}

impl Image {
    /// An image of neither frontend's writing: `reference` itself (resolved like any base),
    /// with no stages of its own, built only to feed others (an import or `COPY --from` of an
    /// image outside the config or Dockerfile).
    pub fn external(reference: &str) -> Image {
        Image {
            name: ImageName::Named(reference.to_string()),
            base: Base::Reference {
                reference: reference.to_string(),
                span: None,
            },
            stages: vec![Stage {
                name: "from".into(),
                kind: StageKind::From,
                inputs: Vec::new(),
                steps: Vec::new(),
                options: StageOptions::default(),
                late_inputs: None,
                span: None,
            }],
            is_final: false,
            git: Vec::new(),
            dependencies: Vec::new(),
            span: None,
        }
    }
}

/// Files of a git repository mapped into an image, pinned to the commit to build from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitMapping {
    /// The repository on this machine (a work tree, or the local cache of a remote).
    pub repo: PathBuf,
    /// The remote's URL, for remote mappings (for messages and the digest).
    pub url: Option<String>,
    /// The commit to build from (full hex). With `--dev` it is a commit strata made of the
    /// work tree, so every build is pinned to exact content.
    pub commit: String,
    /// The repository path mapped (`/` for all of it).
    pub add: String,
    /// Where it lands in the image.
    pub to: String,
    /// Masks of paths to take, relative to `add` (none = all).
    pub include: Vec<String>,
    /// Masks of paths to leave out, relative to `add`.
    pub exclude: Vec<String>,
    /// Owner of the files (a name or id, resolved in the image), if set.
    pub owner: Option<String>,
    /// Group of the files, if set.
    pub group: Option<String>,
    /// Where the mapping is written.
    pub span: Option<Span>,
}

/// What an image starts from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Base {
    /// An empty root file system.
    Scratch,
    /// An image known to the store (or, later, a registry) by reference.
    Reference {
        /// The reference as written, for example `busybox:latest`.
        reference: String,
        /// Where it is written.
        span: Option<Span>,
    },
    /// The result of another image of this plan.
    Image {
        /// Index into [`Plan::images`].
        index: usize,
        /// Where it is written.
        span: Option<Span>,
    },
}

/// One cached unit of work: its digest covers the parent's digest, its name and its inputs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Stage {
    /// The stage name users see and introspect (`from`, `install`, `dockerInstructions`, ...).
    pub name: String,
    /// What kind of stage it is: which kinds of inputs may feed it.
    pub kind: StageKind,
    /// Everything that goes into the digest besides the parent digest and the name.
    pub inputs: Vec<DigestInput>,
    /// What to do, in order.
    pub steps: Vec<Step>,
    /// How to do it, where that must not change the digest.
    pub options: StageOptions,
    /// Inputs known only once the parent stage exists; the executor supplies them then (and may
    /// decide the stage is empty and skipped).
    pub late_inputs: Option<LateInputs>,
    /// Where the stage is defined.
    pub span: Option<Span>,
}

/// Kinds of inputs that depend on what the parent stage recorded rather than on the config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LateInputs {
    /// werf's gitCache: present only when the git change since the parent's commit is 1 MiB or
    /// more; its input is that size in whole MiB.
    GitCache,
    /// werf's gitLatestPatch: the identity of the git change since the parent's commit; skipped
    /// when nothing changed.
    GitLatestPatch,
    /// werf's dependencies* stages: a checksum of the content and metadata of the files the
    /// stage's [`Op::Import`]s copy, so only a change to those files rebuilds it.
    Imports,
}

/// Settings of a stage that must not change its digest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageOptions {
    /// Service variables set in the build container (`WERF_COMMIT_HASH`, ...), not in the
    /// image config and not in any digest.
    pub service_env: Vec<(String, String)>,
    /// Directories mounted into the build containers (their kinds and targets are in the
    /// `from` digest; host paths are not).
    pub mounts: Vec<RunMount>,
    /// Variables naming other images of the plan (werf's `dependencies`), set in the build
    /// containers of this stage; their values are inputs of the `dependencies*` stage that
    /// introduces them.
    pub dependency_env: Vec<DependencyEnv>,
    /// What the image history says made this stage's layer (`created_by`): the instruction
    /// as BuildKit writes it (`RUN /bin/sh -c make # buildkit`) or the stapel stage;
    /// empty = `strata: image/stage`.
    #[serde(default)]
    pub created_by: String,
    /// History entries without a layer written before this stage's own: instructions that
    /// make no stage (a Dockerfile's `ARG`, `SHELL`) right before it.
    #[serde(default)]
    pub history_before: Vec<String>,
    /// The same for such instructions after the image's last stage.
    #[serde(default)]
    pub history_after: Vec<String>,
    /// The stage makes a layer even when its steps change no file (the empty tar), as
    /// BuildKit's `RUN` and `WORKDIR` do: their history entries always have a layer.
    #[serde(default)]
    pub always_layer: bool,
    /// Secrets of the config (werf's `secrets:`) by id, offered to this stage's secret mounts
    /// before those given on the command line; read when the stage runs, never in a layer or
    /// a digest.
    #[serde(default)]
    pub secrets: Vec<(String, SecretSource)>,
    /// Extra `/etc/hosts` entries of the build containers (werf's `addHost`, `NAME:IP`),
    /// after the host's and those of the command line.
    #[serde(default)]
    pub add_hosts: Vec<(String, std::net::IpAddr)>,
    /// Built again even when a stage of its digest exists, whose record it then replaces
    /// (docker's `--no-cache`, `--no-cache-filter`): later builds reuse the fresh result.
    #[serde(default)]
    pub no_cache: bool,
    /// A werf stapel stage: its image gets werf's service labels of the stage it is built on
    /// and of the project's commit, set before its steps (as werf sets them).
    #[serde(default)]
    pub werf_labels: bool,
    /// The images whose werf `dependencies` this stage introduces (indexes into
    /// [`Plan::images`]): each gets werf's `werf-dependency-stage-id-*` label of its last stage.
    #[serde(default)]
    pub dependency_labels: Vec<usize>,
}

/// Where a [`StageOptions::secrets`] secret comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecretSource {
    /// The value of this variable of the build's environment.
    Env(String),
    /// The content of this file of the build machine.
    File(PathBuf),
    /// This value, as written in the config.
    Value(String),
}

/// One variable of werf's `dependencies` `imports`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencyEnv {
    /// The variable's name (`targetEnv`).
    pub name: String,
    /// The image it describes (index into [`Plan::images`]).
    pub image: usize,
    /// What about the image.
    pub kind: DependencyValue,
    /// Its value ([`ImageValues::value`]; a placeholder while the plan waits for the image).
    pub value: String,
}

/// What a [`DependencyEnv`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DependencyValue {
    /// The name of the image's last stage (`project:DIGEST-MILLIS`).
    ImageName,
    /// Its repository (`project`, or the stage repository).
    ImageRepo,
    /// Its tag (`DIGEST-MILLIS`).
    ImageTag,
    /// Its config digest (Docker's image id).
    ImageId,
    /// Its manifest digest.
    ImageDigest,
}

/// One operation of a stage, with the source that produced it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Step {
    /// What to do.
    pub op: Op,
    /// Where it is written.
    pub span: Option<Span>,
}

/// The operations a stage can perform.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Op {
    /// Run commands in a container on the parent's file system; the changes become a layer.
    Run(Run),
    /// Change the image config (env, labels, entrypoint, ...); no layer.
    Config(ConfigChange),
    /// Put the files of git mapping N (an index into [`Image::git`]) into the image as of its
    /// commit, and record that commit on the stage.
    GitArchive {
        /// The mapping.
        mapping: usize,
    },
    /// Bring git mapping N from the commit recorded on the parent stage to its commit (nothing
    /// when they are the same), and record it on the stage.
    GitPatch {
        /// The mapping.
        mapping: usize,
    },
    /// Copy files from the result of another image of the plan.
    Import(Import),
    /// Copy files from the build context (a Dockerfile's `COPY`/`ADD`).
    CopyFiles(CopyFiles),
    /// A `COPY`/`ADD` of sources the build context lacks: the step fails when it runs, as
    /// under BuildKit (the steps before it build and are cached).
    MissingSources(MissingSources),
    /// Create a directory if it is missing (a Dockerfile's `WORKDIR`).
    MakeDir {
        /// The absolute path.
        path: String,
        /// The user (`USER[:GROUP]`) the directories it creates belong to; root when none.
        owner: Option<String>,
    },
}

/// Files of the build context put into the image, resolved by the frontend: what each source
/// is and where it lands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyFiles {
    /// The pinned copy of the context files (a directory of the build that the frontend
    /// copied them into when it made the plan, or the download dir of `ADD <url>`): every
    /// entry's source is below it, and is read beneath it. Never the context itself.
    pub root: PathBuf,
    /// Paths below `root` and the image paths they land at; a directory brings its content.
    pub entries: Vec<CopyEntry>,
    /// The checksum of the entries' copies below `root` (the digest input); what the worker
    /// copies must still have it.
    pub checksum: String,
    /// Owner (`user`, `user:group`, ids) resolved in the image; `None` = root.
    pub chown: Option<String>,
    /// Mode for every copied file and directory.
    pub chmod: Option<u32>,
    /// Unpack archives (`ADD` of a local tarball) into the destination instead of copying.
    pub unpack: bool,
}

/// The sources of a `COPY`/`ADD` that are not in the build context ([`Op::MissingSources`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingSources {
    /// What is missing, in the user's terms (`` `app.conf` is not in the build context ``).
    pub message: String,
    /// The build context (the debugger shows it read-only).
    pub context: PathBuf,
    /// The sources looked for, relative to the context (wildcards kept).
    pub paths: Vec<String>,
}

/// One source of a [`CopyFiles`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyEntry {
    /// The copy of the file, directory or symlink of the context, below
    /// [`CopyFiles::root`] (never followed out of it).
    pub source: PathBuf,
    /// The content of a file written inline (a `COPY <<EOF` heredoc); `source` is unused then.
    pub inline: Option<String>,
    /// Its absolute path in the image (for a directory: the directory its content fills).
    pub target: String,
    /// A directory source whose content fills `target` (BuildKit copies a directory's
    /// content, not the directory): `target` is made like any missing parent (0755, the
    /// copy's owner) and left as it is when the image has it; its own mode is not copied.
    #[serde(default)]
    pub contents_only: bool,
    /// This entry's mode, over [`CopyFiles::chmod`] (a symbolic `--chmod` gives each entry
    /// its own).
    #[serde(default)]
    pub mode: Option<u32>,
    /// A hardlink of the file of [`CopyFiles::entries`] at this index: an earlier file of the
    /// same source directory sharing its inode in the context (BuildKit's copy keeps the
    /// hardlinks among the files one source copies); `source` is not read then.
    #[serde(default)]
    pub hardlink: Option<usize>,
}

/// Files copied from another image (werf's `import:`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Import {
    /// The image to copy from (index into [`Plan::images`]).
    pub image: usize,
    /// The stage of that image to copy from (`None`: its last stage).
    pub stage: Option<String>,
    /// The path in that image.
    pub add: String,
    /// Where the files land in this image.
    pub to: String,
    /// Masks of paths to take, relative to `add` (none = all).
    pub include: Vec<String>,
    /// Masks of paths to leave out, relative to `add`.
    pub exclude: Vec<String>,
    /// Owner of the copied files (name or id, resolved in this image), if set.
    pub owner: Option<String>,
    /// Group of the copied files, if set.
    pub group: Option<String>,
    /// Mode for every copied file and directory (`COPY --chmod`), if set.
    pub mode: Option<u32>,
    /// Make the missing parents of `to` as BuildKit's copy does (`CreateDestPath`: 0755, the
    /// import's owner, the build's time) — a Dockerfile's `COPY --from`; werf's `import:`
    /// leaves them to the unpacking tar (root's), and its destination directory takes the
    /// source directory's metadata, as rsync of `add/` does.
    #[serde(default)]
    pub dest_parents: bool,
    /// A symbolic `--chmod` (`u+x,go-w`), applied to each copied entry's own mode (links
    /// keep theirs); only the worker sees the source's entries.
    #[serde(default)]
    pub symbolic_mode: Option<String>,
    /// A Dockerfile's `COPY --from --exclude` patterns, as written: moby's `patternmatcher`
    /// patterns (`!` exceptions, `{}` literal) relative to `add`, never matching `add`
    /// itself (BuildKit's copy matches the paths below its source).
    #[serde(default)]
    pub exclude_patterns: Vec<String>,
    /// A Dockerfile's `COPY --from --parents`: the source's part after its first `/./` (all
    /// of it when it has none, `add` then being `/`), an include pattern (moby's
    /// `patternmatcher`, relative to `add`, as `exclude_patterns`). What it takes lands at its
    /// path below `add` under `to`, the directories above it with their own metadata
    /// (BuildKit's copy with `IncludePatterns`).
    #[serde(default)]
    pub parents_pattern: Option<String>,
}

/// A directory mounted into a stage's build containers, never part of the image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMount {
    /// The path in the container.
    pub to: String,
    /// What is mounted there.
    pub source: MountSource,
    /// The build context a [`MountSource::Bind`] of the context lies in: the worker checks
    /// again, right before the run, that its path reaches the source without a link (the plan
    /// resolved the context's links). Not a digest input.
    pub context: Option<PathBuf>,
}

/// The source of a [`RunMount`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountSource {
    /// A cache directory kept between builds, shared by every step with the same id
    /// (`RUN --mount=type=cache`).
    Cache {
        /// The cache id.
        id: String,
    },
    /// An empty tmpfs (`RUN --mount=type=tmpfs`).
    Tmpfs,
    /// A secret given on the command line, by id (`RUN --mount=type=secret`); never in a
    /// layer or a digest.
    Secret {
        /// The secret id.
        id: String,
        /// Whether a missing secret is an error.
        required: bool,
        /// Set this variable to the secret instead of (or with a target, besides) mounting it.
        env: Option<String>,
    },
    /// An ssh agent's socket given on the command line, by id (`RUN --mount=type=ssh`); the
    /// host's socket path is in no digest.
    Ssh {
        /// The agent's id (`default` unless `id=`).
        id: String,
        /// Whether a missing agent is an error.
        required: bool,
    },
    /// A path of the build context, or of another image of the plan (`RUN
    /// --mount=type=bind`).
    Bind {
        /// An image of the plan to take the path from (`None`: the build context).
        image: Option<usize>,
        /// The path, relative to the context or absolute in the image.
        path: String,
        /// Whether the step may write to it (writes are thrown away).
        readwrite: bool,
        /// Paths below `path` the step must not see (what `.dockerignore` excludes).
        hide: Vec<String>,
    },
    /// A fresh empty directory for each build (werf's `tmp_dir`).
    TmpDir,
    /// A directory kept between builds of this image (werf's `build_dir`).
    BuildDir,
    /// A host path (werf's `fromPath`).
    Host(PathBuf),
}

/// Commands to run in the build container.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Run {
    /// The commands, in order.
    pub commands: Vec<Command>,
    /// How they are run.
    pub shell: RunShell,
    /// The user to run as; `None` takes the image config's user.
    pub user: Option<String>,
    /// The working directory; `None` takes the image config's.
    pub workdir: Option<String>,
    /// Variables set for these commands only (a Dockerfile's build args in scope).
    pub env: Vec<(String, String)>,
    /// Mounts for these commands only (`RUN --mount`).
    pub mounts: Vec<RunMount>,
    /// No network for these commands (`RUN --network=none`), whatever the build's setting.
    pub no_network: bool,
    /// All capabilities and no seccomp (`RUN --security=insecure`); the executor refuses it
    /// unless the build was granted the `security.insecure` entitlement.
    #[serde(default)]
    pub insecure: bool,
}

/// One command and where it is written.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Command {
    /// The command text.
    pub text: String,
    /// Its place in the user's file.
    pub span: Option<Span>,
}

/// How the commands of a [`Run`] are executed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunShell {
    /// werf's way: all commands in one script run by the toolbox bash with `set -e`, each
    /// command echoed before it runs.
    ToolboxScript,
    /// One command run as `argv... <command>` (a Dockerfile's shell form).
    Argv(Vec<String>),
    /// The command is an argv already (a Dockerfile's exec form); its text is a JSON array.
    Exec,
    /// werf's ansible stage: each command is one task (a YAML mapping, as the playbook writes
    /// it), all run as one playbook by the ansible toolbox's `ansible-playbook`.
    Ansible,
}

/// A change to the image config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigChange {
    /// Variables to set, in order.
    pub env: Vec<(String, String)>,
    /// Labels to set.
    pub labels: Vec<(String, String)>,
    /// Ports to expose (`80`, `53/udp`).
    pub expose: Vec<String>,
    /// Volumes to declare.
    pub volumes: Vec<String>,
    /// The working directory.
    pub workdir: Option<String>,
    /// The user.
    pub user: Option<String>,
    /// The entrypoint (replaces the parent's).
    pub entrypoint: Option<Vec<String>>,
    /// The command (replaces the parent's).
    pub cmd: Option<Vec<String>>,
    /// Set Docker's `ArgsEscaped` (a Dockerfile's `CMD`, as BuildKit's `dispatchCmd` sets it
    /// for every `CMD`); left out of the encoding when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub args_escaped: bool,
    /// The health check.
    pub healthcheck: Option<Healthcheck>,
    /// The stop signal.
    pub stop_signal: Option<String>,
    /// Triggers for images built on this one (`ONBUILD`).
    pub onbuild: Vec<String>,
    /// The shell of shell-form commands (Docker's `Shell`, a Dockerfile's `SHELL`).
    #[serde(default)]
    pub shell: Option<Vec<String>>,
    /// The image's author (a Dockerfile's `MAINTAINER`).
    #[serde(default)]
    pub author: Option<String>,
    /// What to take out of the config first (werf's `imageSpec` `remove*` and `clear*`);
    /// boxed, as most changes remove nothing and [`Op`] stays small.
    #[serde(default, skip_serializing_if = "ConfigRemoval::is_none")]
    pub remove: Box<ConfigRemoval>,
    /// werf's `imageSpec` semantics (`pkg/build/stage/image_spec.go`): removals of variables
    /// and labels also take `/REGEX/` patterns (matching the whole name) and never remove
    /// the `werf` label, `env` values expand `$VAR` and `${VAR}` against the variables the
    /// image had, and `expose` replaces the exposed ports, keys as written. Left out of the
    /// encoding when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub image_spec: bool,
}

/// Parts of the image config a [`ConfigChange`] removes before it sets anything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRemoval {
    /// Variables to unset.
    pub env: Vec<String>,
    /// Labels to remove.
    pub labels: Vec<String>,
    /// Volumes to remove.
    pub volumes: Vec<String>,
    /// Unset the command.
    pub cmd: bool,
    /// Unset the entrypoint.
    pub entrypoint: bool,
    /// Unset the user.
    pub user: bool,
    /// Unset the working directory.
    pub workdir: bool,
    /// Drop the image's history (werf's `imageSpec.clearHistory`); left out of the encoding
    /// when false, so the digests of changes without it stay what they were.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub history: bool,
    /// Drop the `ONBUILD` triggers (a Dockerfile stage ran its base stage's).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub onbuild: bool,
}

impl ConfigRemoval {
    /// Whether `removal` removes nothing (serde's `skip_serializing_if` passes the box).
    #[allow(
        clippy::borrowed_box,
        reason = "the signature serde's skip_serializing_if needs"
    )]
    pub fn is_none(removal: &Box<ConfigRemoval>) -> bool {
        **removal == ConfigRemoval::default()
    }
}

/// A container health check, as Docker's image config holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", args...]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    /// Nanoseconds between checks (0 = default).
    pub interval: u64,
    /// Nanoseconds before a check is considered hung (0 = default).
    pub timeout: u64,
    /// Nanoseconds of start-up grace (0 = default).
    pub start_period: u64,
    /// Failures before unhealthy (0 = default).
    pub retries: u32,
}
