//! The step's own mounts (werf's `mount`, a Dockerfile's `RUN --mount`): each mount kind
//! resolved to a sandbox [`Mount`].

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use strata_plan::{MountSource, Run};
use strata_sandbox::{Mount, MountKind};
use strata_solver::StageJob;

use super::LocalWorker;
use super::run::RunDirs;
use crate::image::StoredImage;

impl LocalWorker<'_> {
    /// The mounts of the stage's and the step's mount specs, in order.
    pub(super) fn step_mounts(
        &self,
        dirs: &RunDirs,
        run: Option<&Run>,
        job: &StageJob<'_>,
    ) -> anyhow::Result<Vec<Mount>> {
        let mut mounts = Vec::new();
        let step_mounts = run.map(|r| r.mounts.as_slice()).unwrap_or_default();
        for (i, m) in job
            .stage
            .options
            .mounts
            .iter()
            .chain(step_mounts)
            .enumerate()
        {
            let dir = |name: &str| -> anyhow::Result<PathBuf> {
                let d = dirs.mounts.join(format!("{name}-{i}"));
                fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
                Ok(d)
            };
            let (source, kind) = match &m.source {
                MountSource::TmpDir => (dir("tmp")?, MountKind::Bind { readonly: false }),
                MountSource::BuildDir | MountSource::Cache { .. } => {
                    // Kept between builds: per image and target path for werf's build_dir,
                    // per id for a Dockerfile's cache mounts.
                    let key = match &m.source {
                        MountSource::Cache { id } => format!("cache\0{id}"),
                        _ => format!("{}\0{}", job.image_name, m.to),
                    };
                    let d = self
                        .store
                        .root()
                        .join("build_dir")
                        .join(strata_digest::Digest::of(key.as_bytes()).short(16));
                    fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
                    (d, MountKind::Bind { readonly: false })
                }
                MountSource::Host(path) => {
                    if !path.exists() {
                        anyhow::bail!(
                            "mount fromPath {} does not exist on this machine",
                            path.display()
                        );
                    }
                    (path.clone(), MountKind::Bind { readonly: false })
                }
                MountSource::Tmpfs => (PathBuf::new(), MountKind::Tmpfs),
                MountSource::Secret { id, required, .. } => {
                    match self.options.secrets.iter().find(|(s, _)| s == id) {
                        // A secret read into a variable (`env=`) with no target mounts nothing.
                        Some(_) if m.to.is_empty() => continue,
                        Some((_, path)) => (path.clone(), MountKind::Bind { readonly: true }),
                        None if *required => anyhow::bail!(
                            "the secret `{id}` is required: pass it with --secret id={id},src=FILE"
                        ),
                        None => continue,
                    }
                }
                MountSource::Bind {
                    image: None, path, ..
                } if !reaches_without_links(m.context.as_deref(), path)? => {
                    anyhow::bail!(
                        "the bind mount's source {path} changed since the build was planned: a link is now in its way; build again"
                    )
                }
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
                        None => vec![whiteouts(&dir("hide")?, hide)?, PathBuf::from(path)],
                        Some(index) => {
                            let state = job
                                .dependencies
                                .iter()
                                .find(|(i, _)| i == index)
                                .map(|(_, s)| s)
                                .context("a bind mount's image was not built before this step")?;
                            self.ensure_local(&state.manifest)?;
                            let layers = StoredImage::load(self.store, &state.manifest)?
                                .lowers(self.store)?;
                            // Resolved inside that image, as if it were `/`: a link of the
                            // image (`/data -> /etc`) never reaches the host's files.
                            match strata_debug::lookup::find(&layers, path)
                                .with_context(|| format!("look up {path} in the mount's image"))?
                            {
                                Some(strata_debug::lookup::Found::Dir(dirs)) => dirs,
                                Some(strata_debug::lookup::Found::Other { host, meta })
                                    if meta.is_file() && !*readwrite =>
                                {
                                    vec![host]
                                }
                                _ => anyhow::bail!(
                                    "the bind mount's source {path} is not a directory or file of its image"
                                ),
                            }
                        }
                    };
                    // Read-only unless `rw`: then writes go to a throwaway upper.
                    let (upper, work) = if *readwrite {
                        (dir("bind-upper")?, dir("bind-work")?)
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
            mounts.push(Mount {
                target: m.to.clone(),
                source,
                kind,
                // A context source is opened beneath the context by the sandbox and mounted
                // from that fd: the check above cannot keep a link from being swapped in
                // before the mount.
                beneath: match &m.source {
                    MountSource::Bind { image: None, .. } => m.context.clone(),
                    _ => None,
                },
            });
        }
        Ok(mounts)
    }
}

/// Whether `path` (below `context`) is reached from `context` without following any link, as
/// the plan resolved it; true when the plan names no context. Only for a clear error before
/// the run: the sandbox opens the source the same way again and mounts from that fd
/// ([`Mount::beneath`]), which is what keeps a later swap out.
fn reaches_without_links(context: Option<&Path>, path: &str) -> anyhow::Result<bool> {
    let Some(context) = context else {
        return Ok(true);
    };
    let rel = Path::new(path)
        .strip_prefix(context)
        .with_context(|| format!("the bind mount's source {path} is not in the context"))?;
    match strata_sandbox::sys::open_beneath(context, rel) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::EXDEV)) => Ok(false),
        Err(e) => Err(e).with_context(|| format!("the bind mount's source {path}")),
    }
}

/// A directory of overlay whiteouts (character devices 0/0) at `paths`, to put on top of a
/// lower layer so the merged view hides them.
fn whiteouts(dir: &Path, paths: &[String]) -> anyhow::Result<PathBuf> {
    for p in paths {
        let at = dir.join(p);
        if let Some(parent) = at.parent() {
            fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
        }
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &at,
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .with_context(|| format!("create a whiteout at {}", at.display()))?;
    }
    Ok(dir.to_path_buf())
}
