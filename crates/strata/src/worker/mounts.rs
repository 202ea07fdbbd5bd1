//! The step's own mounts (werf's `mount`, a Dockerfile's `RUN --mount`): each mount spec
//! resolved to a sandbox [`Mount`].
//!
//! Three phases, so the mapping itself is a pure function with unit tests:
//! 1. [`LocalWorker::mount_facts`] looks at the world: host paths exist, context sources are
//!    reached without a link, the images of `--mount=from=` are local and the path found in
//!    them;
//! 2. [`resolve`] maps the specs and those facts to the mounts, the directories they need and
//!    the whiteout layers to make — no I/O;
//! 3. [`prepare`] creates those directories and whiteouts.

use std::fs;
use std::path::{Path, PathBuf};

use strata_plan::{MountSource, Run, RunMount};
use strata_sandbox::{Mount, MountKind};
use strata_solver::StageJob;

use super::LocalWorker;
use super::run::RunDirs;
use super::secrets;
use crate::image::StoredImage;

/// Why a step's mounts could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// werf's `tmp_dir` could not be made.
    #[error("make the tmp_dir of the image build")]
    TmpDir(#[source] strata_store::Error),
    /// A werf `fromPath` that is not on this machine.
    #[error("mount fromPath {} does not exist on this machine", .0.display())]
    HostPathMissing(PathBuf),
    /// A required secret that was not passed.
    #[error("the secret `{0}` is required: pass it with --secret id={0},src=FILE")]
    SecretMissing(String),
    /// A config secret (werf's `secrets: - env:`) whose variable is not set.
    #[error("the secret `{id}` is read from the variable `{var}`, which is not set")]
    SecretEnvMissing {
        /// The secret id.
        id: String,
        /// The variable.
        var: String,
    },
    /// A config secret (werf's `secrets: - src:`) whose file is not there.
    #[error("the secret `{id}` is read from {}, which is not a file", .path.display())]
    SecretFileMissing {
        /// The secret id.
        id: String,
        /// The file.
        path: PathBuf,
    },
    /// A required ssh agent that was not passed.
    #[error("the ssh agent `{0}` is required: pass it with --ssh {0}=SOCKET (or --ssh default)")]
    SshMissing(String),
    /// A link appeared in a context source's path after planning.
    #[error(
        "the bind mount's source {0} changed since the build was planned: a link is now in its way; build again"
    )]
    LinkInTheWay(String),
    /// A context source outside the context.
    #[error("the bind mount's source {0} is not in the context")]
    NotInContext(String),
    /// A context source that could not be opened.
    #[error("the bind mount's source {path}")]
    OpenSource {
        /// The source.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `--mount=from=` names an image not built yet.
    #[error("a bind mount's image was not built before this step")]
    ImageNotBuilt,
    /// The image of `--mount=from=` could not be made local or read.
    #[error("the bind mount's image")]
    Image(#[source] anyhow::Error),
    /// Looking the source up inside the image failed.
    #[error("look up {path} in the mount's image")]
    Lookup {
        /// The source.
        path: String,
        /// Why.
        #[source]
        source: strata_debug::lookup::Error,
    },
    /// The source is not a directory (nor, read-only, a file) of its image.
    #[error("the bind mount's source {0} is not a directory or file of its image")]
    NotInImage(String),
    /// A directory of a mount could not be created.
    #[error("create {}", .path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A whiteout could not be made.
    #[error("create a whiteout at {}", .path.display())]
    Whiteout {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// What [`resolve`] needs to know of the world.
pub(super) struct Inputs<'a> {
    /// The image being built: werf's `build_dir` is kept per image and target.
    pub image_name: &'a str,
    /// The run's dir for tmp dirs, bind uppers and whiteout layers.
    pub run_dir: &'a Path,
    /// The store's directory kept between builds for a cache key.
    pub cache_dir: &'a dyn Fn(&str) -> PathBuf,
    /// werf's `tmp_dir` of this image build (one dir shared by the image's stages), made on
    /// first use.
    pub tmp_dir: &'a dyn Fn() -> Result<PathBuf, strata_store::Error>,
    /// Secrets by id.
    pub secrets: &'a [(String, PathBuf)],
    /// Ssh agent sockets by id.
    pub ssh: &'a [(String, PathBuf)],
    /// Per spec (same index): the layers (topmost first) or the file an image bind's source
    /// is, found by [`LocalWorker::mount_facts`].
    pub image_sources: &'a [Option<Vec<PathBuf>>],
}

/// The mounts of a step and what must exist on the host before they can be made.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Resolved {
    /// In spec order.
    pub mounts: Vec<Mount>,
    /// Directories to create.
    pub dirs: Vec<PathBuf>,
    /// Whiteout layers: a dir and the paths to hide in it.
    pub whiteouts: Vec<(PathBuf, Vec<String>)>,
}

/// Maps mount specs to mounts (see the module docs); does no I/O.
pub(super) fn resolve(specs: &[&RunMount], inputs: &Inputs<'_>) -> Result<Resolved, Error> {
    let mut out = Resolved::default();
    for (i, m) in specs.iter().enumerate() {
        let mut dir = |name: &str| -> PathBuf {
            let d = inputs.run_dir.join(format!("{name}-{i}"));
            out.dirs.push(d.clone());
            d
        };
        let (source, kind) = match &m.source {
            MountSource::TmpDir => (
                (inputs.tmp_dir)().map_err(Error::TmpDir)?,
                MountKind::Bind { readonly: false },
            ),
            MountSource::BuildDir | MountSource::Cache { .. } => {
                // Kept between builds: per image and target path for werf's build_dir,
                // per id for a Dockerfile's cache mounts.
                let key = match &m.source {
                    MountSource::Cache { id } => format!("cache\0{id}"),
                    _ => format!("{}\0{}", inputs.image_name, m.to),
                };
                let d = (inputs.cache_dir)(&key);
                out.dirs.push(d.clone());
                (d, MountKind::Bind { readonly: false })
            }
            MountSource::Host(path) => (path.clone(), MountKind::Bind { readonly: false }),
            MountSource::Tmpfs => (PathBuf::new(), MountKind::Tmpfs),
            MountSource::Secret { id, required, .. } => {
                match secrets::find(inputs.secrets, id) {
                    // A secret read into a variable (`env=`) with no target mounts nothing.
                    Some(_) if m.to.is_empty() => continue,
                    Some(path) => (path.to_path_buf(), MountKind::Bind { readonly: true }),
                    None if *required => return Err(Error::SecretMissing(id.clone())),
                    None => continue,
                }
            }
            MountSource::Ssh { id, required } => match secrets::find(inputs.ssh, id) {
                Some(socket) => (socket.to_path_buf(), MountKind::Bind { readonly: true }),
                None if *required => return Err(Error::SshMissing(id.clone())),
                None => continue,
            },
            MountSource::Bind {
                image: None,
                path,
                readwrite: false,
                hide,
            } if hide.is_empty() => (PathBuf::from(path), MountKind::Bind { readonly: true }),
            MountSource::Bind {
                image,
                path,
                hide,
                readwrite,
            } => {
                // Seen through an overlay with a throwaway upper: the step may write, and
                // neither the context nor the image changes.
                let lowers = match image {
                    // A layer of whiteouts on top hides what .dockerignore excludes.
                    None => {
                        let hidden = dir("hide");
                        out.whiteouts.push((hidden.clone(), hide.clone()));
                        vec![hidden, PathBuf::from(path)]
                    }
                    Some(_) => inputs
                        .image_sources
                        .get(i)
                        .cloned()
                        .flatten()
                        .ok_or(Error::ImageNotBuilt)?,
                };
                // Read-only unless `rw`: then writes go to a throwaway upper.
                let (upper, work) = if *readwrite {
                    (dir("bind-upper"), dir("bind-work"))
                } else {
                    (PathBuf::new(), PathBuf::new())
                };
                match (&lowers[..], readwrite) {
                    // overlayfs needs two layers when it has no upper: bind the one there is.
                    ([one], false) => (one.clone(), MountKind::Bind { readonly: true }),
                    _ => (
                        PathBuf::new(),
                        MountKind::Overlay {
                            lowers,
                            upper,
                            work,
                        },
                    ),
                }
            }
        };
        out.mounts.push(Mount {
            target: m.to.clone(),
            source,
            kind,
            // A context source is opened beneath the context by the sandbox and mounted from
            // that fd: the check in `mount_facts` cannot keep a link from being swapped in
            // before the mount.
            beneath: match &m.source {
                MountSource::Bind { image: None, .. } => m.context.clone(),
                _ => None,
            },
        });
    }
    Ok(out)
}

/// Creates what [`resolve`] said the mounts need.
pub(super) fn prepare(resolved: &Resolved) -> Result<(), Error> {
    for d in &resolved.dirs {
        fs::create_dir_all(d).map_err(|source| Error::CreateDir {
            path: d.clone(),
            source,
        })?;
    }
    for (dir, paths) in &resolved.whiteouts {
        whiteouts(dir, paths)?;
    }
    Ok(())
}

impl LocalWorker<'_> {
    /// The mounts of the stage's and the step's mount specs, in order, ready to be mounted.
    pub(super) fn step_mounts(
        &self,
        dirs: &RunDirs,
        run: Option<&Run>,
        job: &StageJob<'_>,
    ) -> Result<Vec<Mount>, Error> {
        let step_mounts = run.map(|r| r.mounts.as_slice()).unwrap_or_default();
        let specs: Vec<&RunMount> = job.stage.options.mounts.iter().chain(step_mounts).collect();
        let image_sources = self.mount_facts(&specs, job)?;
        let secrets = secrets::for_stage(
            &job.stage.options.secrets,
            &self.options.secrets,
            &dirs.mounts,
        )?;
        let resolved = resolve(
            &specs,
            &Inputs {
                image_name: job.image_name,
                run_dir: &dirs.mounts,
                cache_dir: &|key| self.store.cache_dir(key),
                tmp_dir: &|| self.tmp_dirs.dir(self.store, job.image_name),
                secrets: &secrets,
                ssh: &self.options.ssh,
                image_sources: &image_sources,
            },
        )?;
        prepare(&resolved)?;
        Ok(resolved.mounts)
    }

    /// The mounts of a failure record's mount specs on this machine, made in `run_dir`: only
    /// those a record keeps ([`super::failure::recordable`], checked again here, as a record
    /// pulled from a registry is not to be trusted), with no secrets, agents or binds.
    pub(super) fn recorded_mounts(
        &self,
        specs: &[RunMount],
        image_name: &str,
        run_dir: &Path,
    ) -> Result<Vec<Mount>, Error> {
        let specs: Vec<&RunMount> = specs
            .iter()
            .filter(|m| super::failure::recordable(m))
            .collect();
        let resolved = resolve(
            &specs,
            &Inputs {
                image_name,
                run_dir,
                cache_dir: &|key| self.store.cache_dir(key),
                tmp_dir: &|| self.tmp_dirs.dir(self.store, image_name),
                secrets: &[],
                ssh: &[],
                image_sources: &[],
            },
        )?;
        prepare(&resolved)?;
        Ok(resolved.mounts)
    }

    /// Checks the sources [`resolve`] takes as given and finds the sources of image binds.
    fn mount_facts(
        &self,
        specs: &[&RunMount],
        job: &StageJob<'_>,
    ) -> Result<Vec<Option<Vec<PathBuf>>>, Error> {
        let mut image_sources = Vec::new();
        for m in specs {
            let found = match &m.source {
                MountSource::Host(path) if !path.exists() => {
                    return Err(Error::HostPathMissing(path.clone()));
                }
                MountSource::Bind {
                    image: None, path, ..
                } if !reaches_without_links(m.context.as_deref(), path)? => {
                    return Err(Error::LinkInTheWay(path.clone()));
                }
                MountSource::Bind {
                    image: Some(index),
                    path,
                    readwrite,
                    ..
                } => Some(self.image_source(job, *index, path, *readwrite)?),
                _ => None,
            };
            image_sources.push(found);
        }
        Ok(image_sources)
    }

    /// The layers (or, read-only, the file) that `path` of the plan's image `index` is.
    fn image_source(
        &self,
        job: &StageJob<'_>,
        index: usize,
        path: &str,
        readwrite: bool,
    ) -> Result<Vec<PathBuf>, Error> {
        let state = job
            .dependencies
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, s)| s)
            .ok_or(Error::ImageNotBuilt)?;
        self.ensure_local(&state.manifest).map_err(Error::Image)?;
        let layers = StoredImage::load(self.store, &state.manifest)
            .and_then(|image| image.lowers(self.store))
            .map_err(Error::Image)?;
        // Resolved inside that image, as if it were `/`: a link of the image (`/data -> /etc`)
        // never reaches the host's files.
        match strata_debug::lookup::find(&layers, path).map_err(|source| Error::Lookup {
            path: path.to_string(),
            source,
        })? {
            Some(strata_debug::lookup::Found::Dir(dirs)) => Ok(dirs),
            Some(strata_debug::lookup::Found::Other { host, meta })
                if meta.is_file() && !readwrite =>
            {
                Ok(vec![host])
            }
            _ => Err(Error::NotInImage(path.to_string())),
        }
    }
}

/// Whether `path` (below `context`) is reached from `context` without following any link, as
/// the plan resolved it; true when the plan names no context. Only for a clear error before
/// the run: the sandbox opens the source the same way again and mounts from that fd
/// ([`Mount::beneath`]), which is what keeps a later swap out.
fn reaches_without_links(context: Option<&Path>, path: &str) -> Result<bool, Error> {
    let Some(context) = context else {
        return Ok(true);
    };
    let rel = Path::new(path)
        .strip_prefix(context)
        .map_err(|_| Error::NotInContext(path.to_string()))?;
    match strata_sandbox::sys::open_beneath(context, rel) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::EXDEV)) => Ok(false),
        Err(source) => Err(Error::OpenSource {
            path: path.to_string(),
            source,
        }),
    }
}

/// A directory of overlay whiteouts (character devices 0/0) at `paths`, to put on top of a
/// lower layer so the merged view hides them.
fn whiteouts(dir: &Path, paths: &[String]) -> Result<(), Error> {
    for p in paths {
        let at = dir.join(p);
        if let Some(parent) = at.parent() {
            fs::create_dir_all(parent).map_err(|source| Error::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &at,
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .map_err(|e| Error::Whiteout {
            path: at.clone(),
            source: e.into(),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(to: &str, source: MountSource) -> RunMount {
        RunMount {
            to: to.into(),
            source,
            context: None,
        }
    }

    fn cache(key: &str) -> PathBuf {
        PathBuf::from("/store/cache").join(key.replace('\0', "|"))
    }

    fn inputs<'a>(
        secrets: &'a [(String, PathBuf)],
        image_sources: &'a [Option<Vec<PathBuf>>],
    ) -> Inputs<'a> {
        Inputs {
            image_name: "app",
            run_dir: Path::new("/run"),
            cache_dir: &cache,
            tmp_dir: &|| Ok(PathBuf::from("/store/tmp_dir-app")),
            secrets,
            ssh: &[],
            image_sources,
        }
    }

    fn bind(path: &str, image: Option<usize>, readwrite: bool, hide: &[&str]) -> MountSource {
        MountSource::Bind {
            image,
            path: path.into(),
            readwrite,
            hide: hide.iter().map(|h| h.to_string()).collect(),
        }
    }

    #[test]
    fn tmp_build_dir_cache_and_tmpfs() {
        let specs = [
            spec("/tmp", MountSource::TmpDir),
            spec("/build", MountSource::BuildDir),
            spec("/cache", MountSource::Cache { id: "go".into() }),
            spec("/t", MountSource::Tmpfs),
        ];
        let refs: Vec<&RunMount> = specs.iter().collect();
        let r = resolve(&refs, &inputs(&[], &[])).expect("resolves");
        let rw = MountKind::Bind { readonly: false };
        let sources: Vec<(&str, &Path, &MountKind)> = r
            .mounts
            .iter()
            .map(|m| (m.target.as_str(), m.source.as_path(), &m.kind))
            .collect();
        assert_eq!(
            sources,
            [
                ("/tmp", Path::new("/store/tmp_dir-app"), &rw),
                ("/build", Path::new("/store/cache/app|/build"), &rw),
                ("/cache", Path::new("/store/cache/cache|go"), &rw),
                ("/t", Path::new(""), &MountKind::Tmpfs),
            ]
        );
        assert_eq!(
            r.dirs,
            [
                PathBuf::from("/store/cache/app|/build"),
                PathBuf::from("/store/cache/cache|go"),
            ]
        );
    }

    #[test]
    fn secrets_mount_read_only_skip_env_only_and_require() {
        let secrets = [("tok".to_string(), PathBuf::from("/host/tok"))];
        let secret = |id: &str, required| MountSource::Secret {
            id: id.into(),
            required,
            env: None,
        };
        let specs = [
            spec("/run/secrets/tok", secret("tok", false)),
            spec("", secret("tok", false)),
            spec("/x", secret("absent", false)),
        ];
        let refs: Vec<&RunMount> = specs.iter().collect();
        let r = resolve(&refs, &inputs(&secrets, &[])).expect("resolves");
        assert_eq!(r.mounts.len(), 1);
        assert_eq!(r.mounts[0].source, PathBuf::from("/host/tok"));
        assert_eq!(r.mounts[0].kind, MountKind::Bind { readonly: true });
        let required = [spec("/x", secret("absent", true))];
        let err = resolve(&[&required[0]], &inputs(&secrets, &[])).expect_err("required");
        assert_eq!(
            err.to_string(),
            "the secret `absent` is required: pass it with --secret id=absent,src=FILE"
        );
    }

    #[test]
    fn context_binds_plain_hidden_and_writable() {
        let mut plain = spec("/src", bind("/ctx/src", None, false, &[]));
        plain.context = Some(PathBuf::from("/ctx"));
        let hidden = spec("/h", bind("/ctx/h", None, false, &["secret.txt"]));
        let writable = spec("/w", bind("/ctx/w", None, true, &[]));
        let r = resolve(&[&plain, &hidden, &writable], &inputs(&[], &[])).expect("resolves");
        assert_eq!(r.mounts[0].kind, MountKind::Bind { readonly: true });
        assert_eq!(r.mounts[0].beneath, Some(PathBuf::from("/ctx")));
        assert_eq!(
            r.mounts[1].kind,
            MountKind::Overlay {
                lowers: vec![PathBuf::from("/run/hide-1"), PathBuf::from("/ctx/h")],
                upper: PathBuf::new(),
                work: PathBuf::new(),
            }
        );
        assert_eq!(
            r.whiteouts,
            [
                (PathBuf::from("/run/hide-1"), vec!["secret.txt".to_string()]),
                // An empty layer, so the overlay has its two lowers.
                (PathBuf::from("/run/hide-2"), Vec::new()),
            ]
        );
        assert_eq!(
            r.mounts[2].kind,
            MountKind::Overlay {
                lowers: vec![PathBuf::from("/run/hide-2"), PathBuf::from("/ctx/w")],
                upper: PathBuf::from("/run/bind-upper-2"),
                work: PathBuf::from("/run/bind-work-2"),
            }
        );
    }

    #[test]
    fn image_binds_use_the_found_layers() {
        let one = spec("/one", bind("/etc", Some(0), false, &[]));
        let two = spec("/two", bind("/usr", Some(0), false, &[]));
        let sources = [
            Some(vec![PathBuf::from("/l/1")]),
            Some(vec![PathBuf::from("/l/2"), PathBuf::from("/l/1")]),
        ];
        let r = resolve(&[&one, &two], &inputs(&[], &sources)).expect("resolves");
        assert_eq!(r.mounts[0].source, PathBuf::from("/l/1"));
        assert_eq!(r.mounts[0].kind, MountKind::Bind { readonly: true });
        assert!(
            matches!(&r.mounts[1].kind, MountKind::Overlay { lowers, .. } if lowers.len() == 2)
        );
        assert_eq!(r.mounts[1].beneath, None);
        let err = resolve(&[&one], &inputs(&[], &[])).expect_err("not found");
        assert!(matches!(err, Error::ImageNotBuilt));
    }
}
