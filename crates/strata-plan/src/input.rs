//! Typed stage inputs: what goes into a stage digest, one variant per kind of input.
//!
//! Every input a frontend, the solver or the worker adds to a stage is a [`DigestInput`]; its
//! [`canonical`](DigestInput::canonical) encoding (the kind first, then each hashed field,
//! every field length-prefixed) is the only thing the digest sees of it, so two kinds can
//! never collide however their values are spelled. Stage records keep the inputs as they are
//! (their serde form), so a later build can say which input of a stage changed:
//! [`DigestInput::name`] is an input's identity within its stage, [`DigestInput::value`] what
//! `--explain` compares.
//!
//! Which kinds feed which kind of stage is one table, [`StageKind::feeds`]:
//!
//! | stage kind | stages | input kinds |
//! |---|---|---|
//! | [`From`](StageKind::From) | `from` | `base`, `cacheVersion`, `setting` (`project`, `mount`), `directive` (a Dockerfile base without PATH) |
//! | [`User`](StageKind::User) | `beforeInstall` ... `setup` | `instructions` or `ansibleTasks`, `cacheVersion`, `gitMask`, `setting` (`network`) |
//! | [`GitArchive`](StageKind::GitArchive) | `gitArchive` | `gitMapping` |
//! | [`GitCache`](StageKind::GitCache) | `gitCache` | `gitCache` (late) |
//! | [`GitLatestPatch`](StageKind::GitLatestPatch) | `gitLatestPatch` | `gitPatch` (late) |
//! | [`Imports`](StageKind::Imports) | `dependenciesBeforeInstall` ... | `import`, `dependency`, `importFiles` and `dependencyValue` (late) |
//! | [`DockerInstructions`](StageKind::DockerInstructions) | `dockerInstructions` | `directive` |
//! | [`ImageSpec`](StageKind::ImageSpec) | `imageSpec` | `setting` (`build.imageSpec`, `imageSpec`) |
//! | [`Instruction`](StageKind::Instruction) | a Dockerfile instruction (`3-run`), `labels`, `onbuild-clear` | `instructions`, `directive`, `buildArg`, `copySource`, `import`, `importFiles` (late), `setting` |

use serde::{Deserialize, Serialize};

/// What a stage is, for the table of the inputs that may feed it ([`StageKind::feeds`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StageKind {
    /// An image's first stage (the base).
    From,
    /// A stapel user stage (`beforeInstall`, `install`, `beforeSetup`, `setup`).
    User,
    /// werf's `gitArchive`.
    GitArchive,
    /// werf's `gitCache`.
    GitCache,
    /// werf's `gitLatestPatch`.
    GitLatestPatch,
    /// werf's `dependencies*` stages (imports and dependencies of one point).
    Imports,
    /// werf's `dockerInstructions`.
    DockerInstructions,
    /// werf's `imageSpec`.
    ImageSpec,
    /// One instruction of a Dockerfile stage (and the `labels`, `onbuild-clear` stages it
    /// adds).
    Instruction,
}

impl StageKind {
    /// The first of `inputs` whose kind [`StageKind::feeds`] does not list for this kind of
    /// stage (a frontend's or executor's bug), if any.
    pub fn first_unfed(self, inputs: &[DigestInput]) -> Option<&DigestInput> {
        let allowed = self.feeds();
        inputs.iter().find(|i| !allowed.contains(&i.kind()))
    }

    /// The one table of which input kinds may feed a stage of this kind.
    pub fn feeds(self) -> &'static [InputKind] {
        use InputKind as I;
        match self {
            StageKind::From => &[I::Base, I::CacheVersion, I::Setting, I::Directive],
            StageKind::User => &[
                I::Instructions,
                I::AnsibleTasks,
                I::CacheVersion,
                I::GitMask,
                I::Setting,
            ],
            StageKind::GitArchive => &[I::GitMapping],
            StageKind::GitCache => &[I::GitCache],
            StageKind::GitLatestPatch => &[I::GitPatch],
            StageKind::Imports => &[I::Import, I::Dependency, I::ImportFiles, I::DependencyValue],
            StageKind::DockerInstructions => &[I::Directive],
            StageKind::ImageSpec => &[I::Setting],
            StageKind::Instruction => &[
                I::Instructions,
                I::Directive,
                I::BuildArg,
                I::CopySource,
                I::Import,
                I::ImportFiles,
                I::Setting,
            ],
        }
    }
}

/// The kind of a [`DigestInput`], without its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InputKind {
    /// [`DigestInput::Instructions`].
    Instructions,
    /// [`DigestInput::AnsibleTasks`].
    AnsibleTasks,
    /// [`DigestInput::Directive`].
    Directive,
    /// [`DigestInput::CacheVersion`].
    CacheVersion,
    /// [`DigestInput::Base`].
    Base,
    /// [`DigestInput::GitMapping`].
    GitMapping,
    /// [`DigestInput::GitMask`].
    GitMask,
    /// [`DigestInput::GitPatch`].
    GitPatch,
    /// [`DigestInput::GitCache`].
    GitCache,
    /// [`DigestInput::Import`].
    Import,
    /// [`DigestInput::ImportFiles`].
    ImportFiles,
    /// [`DigestInput::Dependency`].
    Dependency,
    /// [`DigestInput::DependencyValue`].
    DependencyValue,
    /// [`DigestInput::BuildArg`].
    BuildArg,
    /// [`DigestInput::CopySource`].
    CopySource,
    /// [`DigestInput::Setting`].
    Setting,
}

/// A setting of a stage that changes what it produces, besides its instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Setting {
    /// werf's `project:` (on the first stage of every image).
    #[serde(rename = "project")]
    Project,
    /// werf's `mount:` kinds and targets (not host paths).
    #[serde(rename = "mount")]
    Mount,
    /// `none` for commands run without network.
    #[serde(rename = "network")]
    Network,
    /// `insecure` for `RUN --security=insecure`.
    #[serde(rename = "security")]
    Security,
    /// A Dockerfile `RUN`'s shell.
    #[serde(rename = "shell")]
    Shell,
    /// A Dockerfile `RUN`'s mounts.
    #[serde(rename = "mounts")]
    Mounts,
    /// The owner of the directories a `WORKDIR` makes.
    #[serde(rename = "owner")]
    Owner,
    /// A symbolic `--chmod` of `COPY`/`ADD`.
    #[serde(rename = "chmod")]
    Chmod,
    /// The meta document's `build.imageSpec`.
    #[serde(rename = "build.imageSpec")]
    GlobalImageSpec,
    /// An image's own `imageSpec`.
    #[serde(rename = "imageSpec")]
    ImageSpec,
}

impl Setting {
    /// The setting's name as the config and `--explain` write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Setting::Project => "project",
            Setting::Mount => "mount",
            Setting::Network => "network",
            Setting::Security => "security",
            Setting::Shell => "shell",
            Setting::Mounts => "mounts",
            Setting::Owner => "owner",
            Setting::Chmod => "chmod",
            Setting::GlobalImageSpec => "build.imageSpec",
            Setting::ImageSpec => "imageSpec",
        }
    }
}

/// The most files of a stageDependencies mask a stage record names ([`MaskFiles`]): enough
/// to say which files changed in a real project's source dir, small enough that a record
/// (also kept in registry annotations) stays a few kilobytes to a few hundred.
pub const MASK_FILES_RECORDED: usize = 1000;

/// The files a git mask matched, as recorded to explain a change; not hashed (the mask's
/// checksum covers them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskFiles {
    /// How many files matched.
    pub total: usize,
    /// Each matched file's path and `MODE:BLOBID`, sorted by path; empty when more than
    /// [`MASK_FILES_RECORDED`] matched.
    pub files: Vec<(String, String)>,
}

/// One input of a stage digest. Recorded with every built stage so that a later build can say
/// which input changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum DigestInput {
    /// What the stage runs: a stapel stage's rendered commands, a Dockerfile `RUN`'s command.
    Instructions {
        /// One entry per command.
        lines: Vec<String>,
    },
    /// What an ansible user stage runs: its tasks as werf hashes them, each as JSON with
    /// sorted keys (scalars as written), in order.
    AnsibleTasks {
        /// One entry per task of the stage.
        tasks: Vec<String>,
    },
    /// One docker directive: of `dockerInstructions`, or a Dockerfile instruction that
    /// changes the config (`ENV`, `LABEL`, `WORKDIR`, ...).
    Directive {
        /// The directive (`ENV`, `LABEL`, ...).
        directive: String,
        /// Its canonical value.
        value: String,
    },
    /// A cache version directive, by its config key (`cacheVersion`, `fromCacheVersion`,
    /// `shell.cacheVersion`, `installCacheVersion`, `build.cacheVersion`, ...).
    CacheVersion {
        /// The config key.
        key: String,
        /// Its value.
        value: String,
    },
    /// The base a `from` stage starts from, as resolved by the solver (reference and content
    /// digest, `scratch`, or another image's final stage digest).
    Base {
        /// The resolved base, for example `busybox:latest@sha256:...`.
        base: String,
    },
    /// The parameters of git mapping N that `gitArchive` depends on (not its commit: a new
    /// commit is a patch on top).
    GitMapping {
        /// The mapping (index into [`Image::git`](crate::Image::git)).
        mapping: usize,
        /// Its parameters as canonical JSON.
        params: String,
    },
    /// The checksum of the files a user stage's `stageDependencies` masks match in mapping N.
    GitMask {
        /// The mapping.
        mapping: usize,
        /// The user stage whose masks these are.
        stage: String,
        /// The masks as written.
        masks: Vec<String>,
        /// The checksum of the matched files' paths, modes and blob ids.
        checksum: String,
        /// The matched files, to say which changed; not hashed.
        #[serde(default)]
        files: MaskFiles,
    },
    /// The change of mapping N since the commit its parent stage recorded (late:
    /// `gitLatestPatch`).
    GitPatch {
        /// The mapping.
        mapping: usize,
        /// The identity of the change.
        identity: String,
    },
    /// werf's gitCache: the size of the git change since the parent's commits in whole MiB
    /// (late).
    GitCache {
        /// The size in MiB.
        size_mib: u64,
    },
    /// The parameters of the stage's N-th import (werf's `import:`, a `COPY --from`).
    Import {
        /// Its position among the stage's [`Op::Import`](crate::Op::Import) steps.
        index: usize,
        /// Its parameters as canonical JSON.
        params: String,
    },
    /// The checksum of the files the stage's N-th import copies (late, once the source exists).
    ImportFiles {
        /// Its position among the stage's imports.
        index: usize,
        /// The checksum.
        checksum: String,
    },
    /// One of werf's `dependencies`: the image and the variables it sets.
    Dependency {
        /// Its position among the stage's dependencies.
        index: usize,
        /// The image as written.
        image: String,
        /// `TYPE=NAME` per variable.
        imports: Vec<String>,
    },
    /// The value of a dependency variable (late, once the image exists).
    DependencyValue {
        /// The variable.
        name: String,
        /// Its value.
        value: String,
    },
    /// A Dockerfile build arg in scope of a `RUN`.
    BuildArg {
        /// The arg.
        name: String,
        /// Its value.
        value: String,
    },
    /// Files of the build context (or an `ADD <url>` download) a `COPY`/`ADD` puts into the
    /// image.
    CopySource {
        /// `copy`, `add`, `add-url[N]` or `add-git[N]`.
        what: String,
        /// Destination, owner and mode (and URL) as canonical JSON.
        params: String,
        /// The checksum of the sources' content and metadata.
        checksum: String,
    },
    /// Another setting of the stage.
    Setting {
        /// Which.
        name: Setting,
        /// Its canonical value.
        value: String,
    },
}

impl DigestInput {
    /// The kind of input, for [`StageKind::feeds`].
    pub fn kind(&self) -> InputKind {
        match self {
            DigestInput::Instructions { .. } => InputKind::Instructions,
            DigestInput::AnsibleTasks { .. } => InputKind::AnsibleTasks,
            DigestInput::Directive { .. } => InputKind::Directive,
            DigestInput::CacheVersion { .. } => InputKind::CacheVersion,
            DigestInput::Base { .. } => InputKind::Base,
            DigestInput::GitMapping { .. } => InputKind::GitMapping,
            DigestInput::GitMask { .. } => InputKind::GitMask,
            DigestInput::GitPatch { .. } => InputKind::GitPatch,
            DigestInput::GitCache { .. } => InputKind::GitCache,
            DigestInput::Import { .. } => InputKind::Import,
            DigestInput::ImportFiles { .. } => InputKind::ImportFiles,
            DigestInput::Dependency { .. } => InputKind::Dependency,
            DigestInput::DependencyValue { .. } => InputKind::DependencyValue,
            DigestInput::BuildArg { .. } => InputKind::BuildArg,
            DigestInput::CopySource { .. } => InputKind::CopySource,
            DigestInput::Setting { .. } => InputKind::Setting,
        }
    }

    /// The input's identity within its stage, as `--explain` names it: `base`,
    /// `instructions`, `installCacheVersion`, `docker.ENV`, `git[0].install`,
    /// `import[1].files`, ...
    pub fn name(&self) -> String {
        match self {
            DigestInput::Instructions { .. } => "instructions".into(),
            DigestInput::AnsibleTasks { .. } => "ansible.tasks".into(),
            DigestInput::Directive { directive, .. } => format!("docker.{directive}"),
            DigestInput::CacheVersion { key, .. } => key.clone(),
            DigestInput::Base { .. } => "base".into(),
            DigestInput::GitMapping { mapping, .. } => format!("git[{mapping}]"),
            DigestInput::GitMask { mapping, stage, .. } => format!("git[{mapping}].{stage}"),
            DigestInput::GitPatch { mapping, .. } => format!("git[{mapping}].patch"),
            DigestInput::GitCache { .. } => "gitCache.sizeMiB".into(),
            DigestInput::Import { index, .. } => format!("import[{index}]"),
            DigestInput::ImportFiles { index, .. } => format!("import[{index}].files"),
            DigestInput::Dependency { index, .. } => format!("dependency[{index}]"),
            DigestInput::DependencyValue { name, .. } => format!("dependency.{name}"),
            DigestInput::BuildArg { name, .. } => format!("arg.{name}"),
            DigestInput::CopySource { what, .. } => what.clone(),
            DigestInput::Setting { name, .. } => name.as_str().into(),
        }
    }

    /// The input's value as one string, for listings and for `--explain` to compare (the
    /// digest hashes [`canonical`](Self::canonical) instead).
    pub fn value(&self) -> String {
        let json = |v: &[String]| serde_json::to_string(v).expect("strings always serialize");
        match self {
            DigestInput::Instructions { lines } => json(lines),
            // werf's digest text of the tasks.
            DigestInput::AnsibleTasks { tasks } => tasks.join(":::"),
            DigestInput::Directive { value, .. }
            | DigestInput::CacheVersion { value, .. }
            | DigestInput::DependencyValue { value, .. }
            | DigestInput::BuildArg { value, .. }
            | DigestInput::Setting { value, .. } => value.clone(),
            DigestInput::Base { base } => base.clone(),
            DigestInput::GitMapping { params, .. } | DigestInput::Import { params, .. } => {
                params.clone()
            }
            DigestInput::GitMask {
                masks, checksum, ..
            } => format!("{checksum} {}", json(masks)),
            DigestInput::GitPatch { identity, .. } => identity.clone(),
            DigestInput::GitCache { size_mib } => size_mib.to_string(),
            DigestInput::ImportFiles { checksum, .. } => checksum.clone(),
            DigestInput::Dependency { image, imports, .. } => format!("{image} {}", json(imports)),
            DigestInput::CopySource {
                params, checksum, ..
            } => format!("{params} {checksum}"),
        }
    }

    /// The canonical encoding the stage digest hashes: the kind's tag, then every hashed
    /// field, each as its length (u64, little endian) and bytes; a list is its length and
    /// then its items, framed the same way. [`MaskFiles`] are left out.
    pub fn canonical(&self) -> Vec<u8> {
        let mut e = Encoder(Vec::new());
        match self {
            DigestInput::Instructions { lines } => e.tag("instructions").list(lines),
            DigestInput::AnsibleTasks { tasks } => e.tag("ansibleTasks").list(tasks),
            DigestInput::Directive { directive, value } => {
                e.tag("directive").str(directive).str(value)
            }
            DigestInput::CacheVersion { key, value } => e.tag("cacheVersion").str(key).str(value),
            DigestInput::Base { base } => e.tag("base").str(base),
            DigestInput::GitMapping { mapping, params } => {
                e.tag("gitMapping").num(*mapping as u64).str(params)
            }
            DigestInput::GitMask {
                mapping,
                stage,
                masks,
                checksum,
                files: _,
            } => e
                .tag("gitMask")
                .num(*mapping as u64)
                .str(stage)
                .list(masks)
                .str(checksum),
            DigestInput::GitPatch { mapping, identity } => {
                e.tag("gitPatch").num(*mapping as u64).str(identity)
            }
            DigestInput::GitCache { size_mib } => e.tag("gitCache").num(*size_mib),
            DigestInput::Import { index, params } => e.tag("import").num(*index as u64).str(params),
            DigestInput::ImportFiles { index, checksum } => {
                e.tag("importFiles").num(*index as u64).str(checksum)
            }
            DigestInput::Dependency {
                index,
                image,
                imports,
            } => e
                .tag("dependency")
                .num(*index as u64)
                .str(image)
                .list(imports),
            DigestInput::DependencyValue { name, value } => {
                e.tag("dependencyValue").str(name).str(value)
            }
            DigestInput::BuildArg { name, value } => e.tag("buildArg").str(name).str(value),
            DigestInput::CopySource {
                what,
                params,
                checksum,
            } => e.tag("copySource").str(what).str(params).str(checksum),
            DigestInput::Setting { name, value } => e.tag("setting").str(name.as_str()).str(value),
        };
        e.0
    }
}

/// Length-prefixed fields, for [`DigestInput::canonical`].
struct Encoder(Vec<u8>);

impl Encoder {
    fn tag(&mut self, tag: &str) -> &mut Self {
        self.str(tag)
    }

    fn str(&mut self, s: &str) -> &mut Self {
        self.num(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
        self
    }

    fn num(&mut self, n: u64) -> &mut Self {
        self.0.extend_from_slice(&n.to_le_bytes());
        self
    }

    fn list(&mut self, items: &[String]) -> &mut Self {
        self.num(items.len() as u64);
        for item in items {
            self.str(item);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_never_collide() {
        // Same strings, different kinds: different encodings.
        let a = DigestInput::BuildArg {
            name: "k".into(),
            value: "v".into(),
        };
        let b = DigestInput::DependencyValue {
            name: "k".into(),
            value: "v".into(),
        };
        assert_ne!(a.canonical(), b.canonical());
        let c = DigestInput::CacheVersion {
            key: "k".into(),
            value: "v".into(),
        };
        assert_ne!(a.canonical(), c.canonical());
    }

    #[test]
    fn list_boundaries_are_unambiguous() {
        let lines = |l: &[&str]| DigestInput::Instructions {
            lines: l.iter().map(|s| s.to_string()).collect(),
        };
        assert_ne!(
            lines(&["ab", "c"]).canonical(),
            lines(&["a", "bc"]).canonical()
        );
        assert_ne!(lines(&["a", ""]).canonical(), lines(&["a"]).canonical());
    }

    #[test]
    fn mask_files_are_not_hashed_but_kept() {
        let mask = |files: Vec<(String, String)>| DigestInput::GitMask {
            mapping: 0,
            stage: "install".into(),
            masks: vec!["src/**".into()],
            checksum: "abc".into(),
            files: MaskFiles {
                total: files.len(),
                files,
            },
        };
        let a = mask(vec![]);
        let b = mask(vec![("src/a".into(), "100644:1".into())]);
        assert_eq!(a.canonical(), b.canonical());
        let json = serde_json::to_string(&b).expect("serializes");
        assert_eq!(
            serde_json::from_str::<DigestInput>(&json).expect("reads back"),
            b
        );
    }

    #[test]
    fn the_serde_form_is_tagged_by_kind() {
        let s = DigestInput::Setting {
            name: Setting::GlobalImageSpec,
            value: "{}".into(),
        };
        assert_eq!(
            serde_json::to_value(&s).expect("serializes"),
            serde_json::json!({"kind": "setting", "name": "build.imageSpec", "value": "{}"})
        );
        // A record from before typed inputs is no input (callers treat it as unknown).
        assert!(
            serde_json::from_value::<DigestInput>(
                serde_json::json!({"name": "commands", "value": "[]"})
            )
            .is_err()
        );
    }
}
