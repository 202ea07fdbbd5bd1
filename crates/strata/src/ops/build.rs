//! `strata build`: load the config, solve it on the local worker, tag the final images.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use anyhow::Context as _;
use strata_digest::Digest;
use strata_frontend::stapel::{GitOptions, LoadOptions};
use strata_plan::{ImageName, ImageValues, Plan};
use strata_progress::Sink;
use strata_solver::{SolveOptions, StageOutcome};
use strata_store::{Store, TagTarget};

use crate::Context;
use crate::image::normalize_reference;
use crate::ops::debug::{self, DebugIo, DebugOptions, DebuggerChoice};
use crate::ops::failures;
use crate::ops::step;
use crate::worker::{FailedRun, LocalWorker, WorkerOptions};
use strata_debug::step::Breakpoints;

/// What to build and how.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// The directory holding the config.
    pub dir: PathBuf,
    /// An explicit config file.
    pub config: Option<PathBuf>,
    /// Images to build (with their bases); empty = all.
    pub images: Vec<String>,
    /// Images built at once.
    pub parallel: usize,
    /// Worker settings.
    pub worker: WorkerOptions,
    /// Build git mappings from the work tree (uncommitted and untracked files included).
    pub dev: bool,
    /// werf's loose giterminism: host mounts need no werf-giterminism.yaml.
    pub loose_giterminism: bool,
    /// Do not look for uncommitted changes to report.
    pub no_dirty_check: bool,
    /// The deployment environment's name, `.Env` in templates (werf's `--env`).
    pub env: String,
    /// Introspection and the debugger.
    pub debug: DebugOptions,
    /// The shared stage repository (`--repo`).
    pub repo: Option<String>,
    /// Registry references to push the final images to once built (`{image}` is replaced by
    /// the image's name).
    pub push: Vec<String>,
    /// Compression of every pushed layer (stored layers in another one are converted).
    pub push_compression: strata_layer::Compression,
    /// Hand the final images to this engine once built (`--load`).
    pub load: Option<super::export::Engine>,
    /// Names the Dockerfile's target is tagged with besides its own (docker's further `-t`).
    pub more_tags: Vec<String>,
    /// Build this Dockerfile instead of a stapel config.
    pub dockerfile: Option<(PathBuf, strata_frontend::dockerfile::DockerfileOptions)>,
    /// Where the final image goes besides the store (docker's `-o`).
    pub outputs: Vec<super::output::Output>,
}

/// One image of a finished build.
#[derive(Clone, Debug)]
pub struct BuiltImage {
    /// The image name in the config.
    pub name: String,
    /// The tag it got in the store (none for non-final images).
    pub tag: Option<String>,
    /// Its manifest digest.
    pub manifest: Digest,
    /// Its stages.
    pub stages: Vec<StageOutcome>,
}

/// What a build did.
#[derive(Clone, Debug)]
pub struct BuildReport {
    /// The images, in config order.
    pub images: Vec<BuiltImage>,
}

/// Builds the config in `options.dir`.
///
/// A failure of the plan is the frontend's error (its diagnostic points at the user's file);
/// a failure of a stage is a [`Failed`] with the sources its span points into. With
/// `options.debug.debugger`, a failure opens the debugger on `io` as it happens, while the
/// other images build ([`debug::FailureMonitor`]); its `reload` stops them, re-reads the
/// config and builds again with the same settings. With `options.debug.keep_failures`, a
/// failed step is then kept as a failure record ([`failures`]), pushed with `options.repo`.
/// With `options.debug.breaks`, the build pauses at them in the monitor on `io` (see
/// [`super::step`]).
pub fn build(
    ctx: &Context,
    options: &BuildOptions,
    progress: &dyn Sink,
    cancel: &AtomicBool,
    io: Option<DebugIo<'_>>,
) -> anyhow::Result<BuildReport> {
    let io = Mutex::new(io);
    let monitor = step::Monitor { io: &io, progress };
    let breakpoints = Breakpoints::new(options.debug.breaks.iter().cloned(), false);
    let stepping = step::steps(&options.debug.breaks).then_some(&breakpoints);
    build_with(ctx, options, progress, cancel, &io, &monitor, stepping)
}

/// [`build`], pausing at `breakpoints` (when given) on `frontend`; a failure opens the
/// monitor on `io` as [`build`]'s does.
pub fn build_with(
    ctx: &Context,
    options: &BuildOptions,
    progress: &dyn Sink,
    cancel: &AtomicBool,
    io: &Mutex<Option<DebugIo<'_>>>,
    frontend: &dyn step::Frontend,
    breakpoints: Option<&Breakpoints>,
) -> anyhow::Result<BuildReport> {
    // What the build prints, kept for the monitor's `log`.
    let log = strata_debug::BuildLog::new().context("keep the build's output")?;
    let recording = debug::Recording::new(progress, &log);
    let progress: &dyn Sink = &recording;
    let none = Breakpoints::default();
    let stepping = breakpoints.is_some();
    let breakpoints = breakpoints.unwrap_or(&none);
    let stepper = step::Stepper::new(breakpoints, frontend, &ctx.sandbox, &ctx.store, &log);
    let debugger = options.debug.debugger || breakpoints.on_fail();
    // The failure the monitor was on when the user chose `reload`, kept until the config
    // loads again: a config that no longer loads sends them back to it.
    let mut last: Option<LastFailure> = None;
    // The values of the images the plan waits for (`Plan::waiting`), once built.
    let mut built = BTreeMap::new();
    let rounds = Rounds::new(progress);
    // The images the earlier rounds built (or reused), as they did.
    let mut earlier: Vec<strata_solver::ImageOutcome> = Vec::new();
    loop {
        let loaded = match load(ctx, options, &built, cancel) {
            Ok(loaded) => loaded,
            Err(e) if cancel.load(std::sync::atomic::Ordering::Relaxed) => return Err(e),
            Err(e) => match (
                last.take(),
                io.lock().unwrap_or_else(|e| e.into_inner()).as_mut(),
            ) {
                (Some(failure), Some(io)) => {
                    writeln!(
                        io.output,
                        "reload: {e:#}\nthe config does not load; back in the failure before the \
                         reload, in a new session (the last one's changes are gone): fix the \
                         config and `reload` again"
                    )
                    .context("write the debugger's output")?;
                    let image = options.debug.debugger_image.as_deref();
                    match debug::monitor(
                        ctx,
                        failure.view.clone(),
                        image,
                        None,
                        Some(&log),
                        io,
                        progress,
                    )? {
                        DebuggerChoice::Reload => {
                            last = Some(failure);
                            built.clear();
                            earlier.clear();
                            rounds.reset();
                            continue;
                        }
                        DebuggerChoice::Exit => {
                            return Err(failure.end(ctx, options));
                        }
                    }
                }
                _ => return Err(e),
            },
        };
        // The config loads: the failure before the reload (its dirs) is let go.
        drop(last.take());
        let Loaded {
            plan,
            mut worker,
            _scratch,
        } = loaded;
        debug::check_targets(&plan, &options.debug.introspect)?;
        step::check(&plan, &options.debug.breaks)?;
        let stepper = stepping.then(|| {
            stepper.set_sources(&plan.sources);
            worker.set_stops(&stepper);
            &stepper
        });
        // A plan waiting for values of images builds those first and is made again.
        let roots: Vec<usize> = options
            .images
            .iter()
            .filter_map(|name| plan.image_index(name))
            .collect();
        let waits = !plan.waiting_among(&plan.closure(&roots)).is_empty();
        // A failure opens its monitor as it happens, while the other images build.
        let has_io = io.lock().unwrap_or_else(|e| e.into_inner()).is_some();
        let failure = (debugger && has_io).then(|| {
            let image = options.debug.debugger_image.as_deref();
            debug::FailureMonitor::new(ctx, &plan, io, &recording, image)
        });
        let debugging = Debugging {
            stepper,
            failure: failure.as_ref(),
        };
        let result = match !waits {
            true => build_plan(ctx, &plan, &worker, options, &rounds, cancel, debugging).map(Some),
            false => {
                rounds.set_earlier(true);
                let awaited = build_awaited(
                    ctx, &plan, &roots, &worker, options, &rounds, cancel, debugging,
                );
                rounds.set_earlier(false);
                awaited.and_then(|(values, outcomes)| {
                    // A round that learns nothing new would be followed by the same one.
                    if values.keys().all(|name| built.contains_key(name)) {
                        return Err(BuildError::Other(anyhow::anyhow!(
                            "the plan still waits for images it built: {}",
                            values.keys().cloned().collect::<Vec<_>>().join(", ")
                        )));
                    }
                    built.extend(values);
                    earlier.extend(outcomes);
                    Ok(None)
                })
            }
        };
        let reload = failure
            .map(debug::FailureMonitor::end)
            .transpose()?
            .flatten();
        let failures = match result {
            Ok(None) => continue,
            Ok(Some(mut report)) => {
                // What the earlier rounds did to their images, not the reuse of this one.
                for image in &mut report.images {
                    if let Some(outcome) = earlier.iter().find(|o| o.name == image.name) {
                        image.stages = outcome.stages.clone();
                    }
                }
                tag_more(ctx, &report, &options.more_tags)?;
                push_images(ctx, &report, options, progress)?;
                load_images(ctx, &report, options, progress)?;
                write_outputs(ctx, &report, options, progress)?;
                return Ok(report);
            }
            Err(BuildError::Solve(failures)) => *failures,
            Err(BuildError::Other(error)) => return Err(error),
        };
        // The build's failure first, then the other images' that failed meanwhile, each with
        // its state: released here unless a record wants it (the error itself outlives the
        // build). Their monitors opened as they failed.
        let mut failures: Vec<(strata_solver::Error, Option<Box<FailedRun>>)> =
            std::iter::once(failures.first)
                .chain(failures.others)
                .map(|mut error| {
                    let failed = error
                        .take_kept()
                        .and_then(|k| k.downcast::<FailedRun>().ok());
                    (error, failed)
                })
                .collect();
        // The failure the monitor chose `reload` on (the other images were stopped).
        let reloaded = reload.and_then(|view| {
            let index = failures.iter().position(|(error, failed)| {
                failed
                    .as_ref()
                    .and_then(|kept| debug::failure_for(&plan, error, kept))
                    .is_some_and(|v| v.image == view.image && v.stage == view.stage)
            })?;
            Some((index, view))
        });
        if let Some((index, view)) = reloaded {
            built.clear();
            earlier.clear();
            rounds.reset();
            let (error, failed) = failures.swap_remove(index);
            last = Some(LastFailure {
                view,
                plan,
                error,
                failed,
            });
            continue;
        }
        let mut failures = failures.into_iter();
        let (error, failed) = failures.next().expect("a failed solve has a first failure");
        for (other, failed) in failures {
            let what = format!("also failed: {}", crate::error_chain(&other));
            let message = match keep(ctx, options, &plan, &other, failed) {
                Some(kept) => format!("{what}\n{kept}"),
                None => what,
            };
            progress.event(strata_progress::Event::Note { message });
        }
        return Err(LastFailure::end_of(ctx, options, &plan, error, failed));
    }
}

/// A failed build the debugger showed: what ending the build with it needs.
struct LastFailure {
    /// What the monitor showed.
    view: strata_debug::Failure,
    plan: Plan,
    error: strata_solver::Error,
    failed: Option<Box<FailedRun>>,
}

impl LastFailure {
    fn end(self, ctx: &Context, options: &BuildOptions) -> anyhow::Error {
        Self::end_of(ctx, options, &self.plan, self.error, self.failed)
    }

    /// The build's error for a failure, with its failure record when one is to be kept.
    fn end_of(
        ctx: &Context,
        options: &BuildOptions,
        plan: &Plan,
        error: strata_solver::Error,
        failed: Option<Box<FailedRun>>,
    ) -> anyhow::Error {
        let record = keep(ctx, options, plan, &error, failed);
        Failed {
            error,
            sources: plan.sources.clone(),
            record,
        }
        .into()
    }
}

/// The failure record of a failed step, when the build keeps them.
fn keep(
    ctx: &Context,
    options: &BuildOptions,
    plan: &Plan,
    error: &strata_solver::Error,
    failed: Option<Box<FailedRun>>,
) -> Option<failures::Kept> {
    match failed {
        Some(failed) if options.debug.keep_failures => Some(failures::keep(
            ctx,
            plan,
            error,
            *failed,
            options.repo.as_deref(),
            options.worker.compression,
            &options.worker.secrets,
        )),
        _ => None,
    }
}

/// A loaded plan and the worker to build it on.
pub(crate) struct Loaded<'a> {
    /// The plan, digested as `worker` builds.
    pub plan: Plan,
    /// The local worker (with its stage repository, `--repo`).
    pub worker: LocalWorker<'a>,
    /// `ADD <url>` downloads (copied from here: numbered dirs) and the context files a
    /// Dockerfile copies (a `context-` dir), pinned when the plan was made (the layer is made
    /// of these copies, never of the context as it is later): kept while the plan is used.
    /// One dir for both: a scratch dir is a lock file and a directory made and removed on
    /// every build, cached or not.
    _scratch: strata_store::Scratch,
}

/// The plan of the config or Dockerfile of `options` and the worker a build of it runs on;
/// `built` has the values of images already built that the plan may wait for
/// ([`Plan::waiting`]).
pub(crate) fn load<'a>(
    ctx: &'a Context,
    options: &BuildOptions,
    built: &BTreeMap<String, ImageValues>,
    cancel: &AtomicBool,
) -> anyhow::Result<Loaded<'a>> {
    let mut worker = worker(ctx, options)?;
    let sources = ctx.store.scratch("sources")?;
    let plan = load_plan(ctx, options, &mut worker, (sources.path(), built), cancel)?;
    Ok(Loaded {
        plan,
        worker,
        _scratch: sources,
    })
}

/// The local worker a build with `options` runs on (with its stage repository, `--repo`).
fn worker<'a>(ctx: &'a Context, options: &BuildOptions) -> anyhow::Result<LocalWorker<'a>> {
    let mut worker_options = options.worker.clone();
    worker_options.remote = Some(crate::remote::RemoteOptions {
        client: ctx.registry_client()?,
        repo: match &options.repo {
            Some(r) => Some(
                r.parse()
                    .with_context(|| format!("--repo `{r}` is not a repository reference"))?,
            ),
            None => None,
        },
    });
    LocalWorker::new(&ctx.store, &ctx.sandbox, worker_options)
}

/// The plan of the config or Dockerfile of `options`, as a build of it on `worker` digests
/// it; `ADD <url>` downloads and the pinned context files go to the dir `sources`.
fn load_plan(
    ctx: &Context,
    options: &BuildOptions,
    worker: &mut LocalWorker<'_>,
    (sources, built): (&std::path::Path, &BTreeMap<String, ImageValues>),
    cancel: &AtomicBool,
) -> anyhow::Result<Plan> {
    let bases = Bases {
        ctx,
        worker: &*worker,
    };
    let loaded = match &options.dockerfile {
        Some((path, df)) => {
            let mut df = df.clone();
            // An OCI layout's image is read into the store and named by its digest; a URL's
            // file and a repository's checkout become directories of the build.
            for (name, named) in df.build_contexts.iter_mut() {
                use strata_frontend::dockerfile::NamedContext;
                let resolved = match named {
                    NamedContext::OciLayout { dir, digest } => {
                        let manifest = super::load::layout_image(ctx, dir, digest.as_deref())?;
                        NamedContext::Image(manifest.to_string())
                    }
                    NamedContext::Url(url) => NamedContext::Dir(
                        downloaded_context(sources, &ctx.store.downloads_dir(), url)
                            .with_context(|| format!("--build-context {name}={url}"))?,
                    ),
                    NamedContext::Git(git) => {
                        let (dir, commit) = crate::download::checkout(
                            sources,
                            &ctx.store.git_cache_dir(),
                            &git.remote,
                            &git.reference,
                            git.keep_git_dir.unwrap_or(false),
                        )
                        .with_context(|| format!("--build-context {name}={}", git.remote))?;
                        if let Some(expected) = &git.checksum
                            && !commit.starts_with(expected.as_str())
                        {
                            anyhow::bail!(
                                "--build-context {name}={}: the commit is {commit}, not {expected} as `checksum=` says",
                                git.remote
                            );
                        }
                        NamedContext::Dir(dir.join(&git.subdir))
                    }
                    NamedContext::Dir(_) | NamedContext::Image(_) => continue,
                };
                *named = resolved;
            }
            df.fetcher = Some(strata_frontend::dockerfile::Fetcher(std::sync::Arc::new(
                Downloads {
                    dir: sources.to_path_buf(),
                    git_cache: ctx.store.git_cache_dir(),
                    remembered: ctx.store.downloads_dir(),
                },
            )));
            df.snapshot = Some(snapshot_dirs(ctx, sources));
            strata_frontend::load_dockerfile(path, &df, Some(&bases))
        }
        None => strata_frontend::stapel::load(
            &options.dir,
            &LoadOptions {
                config: options.config.clone(),
                git: GitOptions {
                    dev: options.dev,
                    cache: Some(ctx.store.git_cache_dir()),
                    no_dirty_check: options.no_dirty_check,
                    images: options.images.clone(),
                },
                env: options.env.clone(),
                loose_giterminism: options.loose_giterminism,
                snapshot: Some(snapshot_dirs(ctx, sources)),
                dockerfile_bases: Some(&bases),
                built: built.clone(),
            },
        ),
    };
    let mut plan = match loaded {
        Ok(plan) => plan,
        // A `git` the terminal's Ctrl-C killed while the config was loaded.
        Err(_) if cancel.load(std::sync::atomic::Ordering::Relaxed) => {
            return Err(Failed {
                error: strata_solver::Error::Cancelled,
                sources: strata_plan::SourceMap::default(),
                record: None,
            }
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    worker.set_project(plan.project.clone());
    crate::worker::key_options(&mut plan, &options.worker);
    Ok(plan)
}

/// Where a Dockerfile's context files are pinned: below the build's scratch dir `sources`, as
/// links to the store's pins.
fn snapshot_dirs(
    ctx: &Context,
    sources: &std::path::Path,
) -> strata_frontend::dockerfile::context_files::SnapshotDirs {
    strata_frontend::dockerfile::context_files::SnapshotDirs {
        build: sources.to_path_buf(),
        pins: Some(ctx.store.pins_dir()),
    }
}

/// Downloads the file of `--build-context NAME=URL` into a directory of its own under
/// `downloads`, as the one file `context` with mode 0600 (BuildKit's http source); revalidated
/// against what the store's `remembered` downloads keep of the URL.
fn downloaded_context(
    downloads: &std::path::Path,
    remembered: &std::path::Path,
    url: &str,
) -> anyhow::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let (dir, name) = crate::download::fetch(downloads, url, None, Some(remembered))?;
    let file = dir.join("context");
    std::fs::rename(dir.join(&name), &file)
        .with_context(|| format!("rename the download {name} to {}", file.display()))?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod {}", file.display()))?;
    Ok(dir)
}

/// Reads the configs of the images a Dockerfile's stages are built `FROM` (pulled when
/// missing), so its ENV, WORKDIR, USER, SHELL and ONBUILD are what later instructions see, as
/// in BuildKit; for `strata build -f` and a config's `dockerfile:` images alike.
struct Bases<'a> {
    ctx: &'a Context,
    worker: &'a LocalWorker<'a>,
}

impl std::fmt::Debug for Bases<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the store's base images")
    }
}

impl strata_frontend::dockerfile::ResolveBase for Bases<'_> {
    fn base_config(&self, reference: &str) -> Option<strata_frontend::dockerfile::BaseConfig> {
        use strata_solver::Executor as _;
        let base = self.worker.resolve_base(reference).ok()?;
        let image = crate::image::StoredImage::load(&self.ctx.store, &base.manifest).ok()?;
        let run = &image.config.config;
        Some(strata_frontend::dockerfile::BaseConfig {
            env: crate::worker::split_env(&run.env),
            workdir: run.working_dir.clone(),
            user: run.user.clone(),
            shell: run.shell.clone().unwrap_or_default(),
            args: Vec::new(),
            onbuild: run.onbuild.clone(),
        })
    }
}

/// Where a Dockerfile build's `ADD` sources go: downloads and checkouts into `dir` (a
/// scratch dir of the build), remote repositories cached in the store's `git_cache`, the
/// responses of URLs and their files in its `remembered` downloads.
struct Downloads {
    dir: std::path::PathBuf,
    git_cache: std::path::PathBuf,
    remembered: std::path::PathBuf,
}

impl strata_frontend::dockerfile::Fetch for Downloads {
    fn download(
        &self,
        url: &str,
        checksum: Option<&str>,
    ) -> Result<(std::path::PathBuf, String), String> {
        crate::download::fetch(&self.dir, url, checksum, Some(&self.remembered))
            .map_err(|e| format!("{e:#}"))
    }

    fn checkout(
        &self,
        remote: &str,
        reference: &str,
        keep_git_dir: bool,
    ) -> Result<(std::path::PathBuf, String), String> {
        crate::download::checkout(&self.dir, &self.git_cache, remote, reference, keep_git_dir)
            .map_err(|e| format!("{e:#}"))
    }
}

/// Builds an already loaded plan on `worker`, opening the introspection shells `options` asks
/// for, and tags the final images.
fn build_plan(
    ctx: &Context,
    plan: &Plan,
    worker: &LocalWorker<'_>,
    options: &BuildOptions,
    progress: &dyn Sink,
    cancel: &AtomicBool,
    debugging: Debugging<'_, '_>,
) -> Result<BuildReport, BuildError> {
    for note in &plan.notes {
        progress.event(strata_progress::Event::Note {
            message: format!("note: {note}"),
        });
    }
    // A killed earlier build may have left scratch dirs and partial blobs; they are unreachable.
    // A store over its size limit also loses its oldest cache (see ops::gc).
    let collected = ctx
        .store
        .collect_garbage()
        .map_err(anyhow::Error::from)
        .and_then(|_| crate::ops::gc::auto(ctx, ctx.gc));
    let note = match collected {
        Ok(None) => None,
        Ok(Some((limit, report))) => Some(format!(
            "note: the store passed its gc limit of {limit} bytes of images (--gc-max-bytes): \
             gc removed {} entries, {} bytes",
            report.removed.len(),
            report.bytes
        )),
        Err(e) => Some(format!(
            "note: garbage collection failed: {}",
            crate::error_line(&e)
        )),
    };
    if let Some(message) = note {
        progress.event(strata_progress::Event::Note { message });
    }
    let images = if options.images.is_empty() {
        plan.default_images.clone()
    } else {
        options.images.clone()
    };
    let solution = solve(
        ctx, plan, worker, options, images, progress, cancel, debugging,
    )?;
    for outcome in &solution.images {
        if plan.images[outcome.index].is_final {
            worker
                .ensure_local(&outcome.state.manifest)
                .map_err(BuildError::Other)?;
        }
    }
    let epoch = super::output::source_date_epoch(dockerfile_build_args(options));
    tag_images(ctx, plan, solution, epoch).map_err(BuildError::Other)
}

/// The `--build-arg`s of a Dockerfile build (a stapel build has none).
fn dockerfile_build_args(options: &BuildOptions) -> &[(String, String)] {
    options
        .dockerfile
        .as_ref()
        .map(|(_, dockerfile)| dockerfile.build_args.as_slice())
        .unwrap_or_default()
}

/// Builds the images a build of `roots` waits for ([`Plan::ready`]) and returns their values by name,
/// for the plan to be made again with them, and what the build did.
#[allow(clippy::too_many_arguments)]
fn build_awaited(
    ctx: &Context,
    plan: &Plan,
    roots: &[usize],
    worker: &LocalWorker<'_>,
    options: &BuildOptions,
    progress: &dyn Sink,
    cancel: &AtomicBool,
    debugging: Debugging<'_, '_>,
) -> Result<
    (
        BTreeMap<String, ImageValues>,
        Vec<strata_solver::ImageOutcome>,
    ),
    BuildError,
> {
    let ready = plan.ready(roots);
    let names: Vec<String> = ready
        .iter()
        .map(|&i| plan.images[i].name.to_string())
        .collect();
    if names.is_empty() {
        return Err(BuildError::Other(anyhow::anyhow!(
            "the images of the config wait for each other's ImageID or ImageDigest in a cycle"
        )));
    }
    let solution = solve(
        ctx, plan, worker, options, names, progress, cancel, debugging,
    )?;
    let mut values = BTreeMap::new();
    for outcome in solution.images.iter().filter(|o| ready.contains(&o.index)) {
        let manifest = &outcome.state.manifest;
        let id = worker
            .ensure_local(manifest)
            .and_then(|()| crate::image::StoredImage::load(&ctx.store, manifest))
            .map_err(BuildError::Other)?
            .manifest
            .config
            .digest;
        let name = worker
            .stage_name(&outcome.state.digest, &outcome.name)
            .map_err(BuildError::Other)?;
        values.insert(
            outcome.name.clone(),
            ImageValues {
                name,
                id: id.to_string(),
                digest: manifest.to_string(),
            },
        );
    }
    Ok((values, solution.images))
}

/// The progress of a build made in rounds (the images a plan waits for, [`build_awaited`],
/// then the whole plan again) as one build: a later round's events of the images an earlier
/// round completed (found in the cache now) are left out, and only the last round's end is
/// passed on, with the earlier rounds' counts and time added.
struct Rounds<'a> {
    inner: &'a dyn Sink,
    state: Mutex<RoundsState>,
}

#[derive(Default)]
struct RoundsState {
    /// The round under way is an earlier one: its end is held back.
    earlier: bool,
    /// Images completed by the earlier rounds, and those of the round under way.
    done: std::collections::BTreeSet<String>,
    this_round: Vec<String>,
    /// The earlier rounds' stages built and reused, and time; reuses left out of this round.
    built: usize,
    cached: usize,
    millis: u64,
    left_out: usize,
}

impl<'a> Rounds<'a> {
    fn new(inner: &'a dyn Sink) -> Rounds<'a> {
        Rounds {
            inner,
            state: Mutex::default(),
        }
    }

    /// Forgets the rounds so far: the config is loaded again from scratch.
    fn reset(&self) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = RoundsState::default();
    }

    /// Whether the round about to start is an earlier one.
    fn set_earlier(&self, earlier: bool) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).earlier = earlier;
    }
}

impl Sink for Rounds<'_> {
    fn event(&self, event: strata_progress::Event) {
        use strata_progress::Event as E;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let event = match event {
            E::StageDigest { ref id, .. } if state.done.contains(&id.image) => return,
            E::StageCached { ref id, .. } if state.done.contains(&id.image) => {
                state.left_out += 1;
                return;
            }
            E::ImageDone { ref image, .. } if state.done.contains(image) => return,
            E::ImageDone { ref image, .. } => {
                state.this_round.push(image.clone());
                event
            }
            E::BuildFinished {
                built,
                cached,
                millis,
                ok,
            } => {
                let finished = std::mem::take(&mut state.this_round);
                state.done.extend(finished);
                if state.earlier && ok {
                    state.built += built;
                    state.cached += cached;
                    state.millis += millis;
                    return;
                }
                let left_out = std::mem::take(&mut state.left_out);
                E::BuildFinished {
                    built: built + state.built,
                    cached: cached.saturating_sub(left_out) + state.cached,
                    millis: millis + state.millis,
                    ok,
                }
            }
            event => event,
        };
        drop(state);
        self.inner.event(event);
    }
}

/// Solves `images` of `plan` on `worker` (with the introspection `options` asks for) and
/// waits until the stages it built are in the stage repository too.
#[allow(clippy::too_many_arguments)]
fn solve(
    ctx: &Context,
    plan: &Plan,
    worker: &LocalWorker<'_>,
    options: &BuildOptions,
    images: Vec<String>,
    progress: &dyn Sink,
    cancel: &AtomicBool,
    debugging: Debugging<'_, '_>,
) -> Result<strata_solver::Solution, BuildError> {
    let solve_options = SolveOptions {
        images,
        // Paused, the whole build is: one image at a time.
        parallel: match debugging.stepper {
            Some(_) => 1,
            None => options.parallel,
        },
    };
    let hooks = debug::Introspection {
        worker,
        store: &ctx.store,
        sandbox: &ctx.sandbox,
        options: &options.debug,
        progress,
        terminal: Mutex::new(()),
        stepper: debugging.stepper,
        failure: debugging.failure,
    };
    let solve_and_publish = |cancel: &AtomicBool| {
        let solved = strata_solver::solve(plan, worker, &solve_options, &hooks, progress, cancel);
        // The build ends when the stages it built are in the stage repository too.
        (solved, worker.finish_publishing(progress, cancel))
    };
    let (solved, published) = match debugging.failure {
        // The monitor's `reload` stops the solve with its own flag; a Ctrl-C sets it too.
        Some(failure) => forwarding(cancel, failure.stop(), || solve_and_publish(failure.stop())),
        None => solve_and_publish(cancel),
    };
    match (solved, published) {
        (Ok(_), Err(crate::publish::Error::Cancelled)) => Err(BuildError::Solve(Box::new(
            strata_solver::Error::Cancelled.into(),
        ))),
        (Ok(_), Err(failed)) => Err(BuildError::Other(failed.into())),
        (Ok(solution), Ok(())) => Ok(solution),
        (Err(e), published) => {
            if let Err(failed @ crate::publish::Error::Failed { .. }) = published {
                progress.event(strata_progress::Event::Note {
                    message: format!("note: {failed}"),
                });
            }
            Err(BuildError::Solve(Box::new(e)))
        }
    }
}

/// Runs `work` while a thread sets `to` as soon as `from` is set (as often as a running step
/// looks at its cancel flag).
fn forwarding<T>(from: &AtomicBool, to: &AtomicBool, work: impl FnOnce() -> T) -> T {
    use std::sync::atomic::Ordering;
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let forwarder = s.spawn(|| {
            while !done.load(Ordering::Acquire) {
                if from.load(Ordering::Relaxed) {
                    to.store(true, Ordering::Relaxed);
                    return;
                }
                std::thread::park_timeout(crate::worker::CANCEL_POLL);
            }
        });
        let out = work();
        done.store(true, Ordering::Release);
        forwarder.thread().unpark();
        out
    })
}

/// The debuggers a solve runs inside: the step debugger (`--break`), the monitor a failure
/// opens (`--debugger` on a terminal).
#[derive(Clone, Copy)]
struct Debugging<'a, 'io> {
    stepper: Option<&'a step::Stepper<'a>>,
    failure: Option<&'a debug::FailureMonitor<'a, 'io>>,
}

/// Tags the final image with each of `names` too.
fn tag_more(ctx: &Context, report: &BuildReport, names: &[String]) -> anyhow::Result<()> {
    let Some(image) = report.images.iter().find(|i| i.tag.is_some()) else {
        return Ok(());
    };
    let stage = image.stages.last().map(|s| s.digest);
    for name in names {
        ctx.store.set_tag(
            &normalize_reference(name),
            &TagTarget {
                manifest: image.manifest,
                stage,
                updated_unix: crate::unix_now(),
            },
        )?;
    }
    Ok(())
}

/// Pushes the final images to every `--push` reference.
fn push_images(
    ctx: &Context,
    report: &BuildReport,
    options: &BuildOptions,
    progress: &dyn Sink,
) -> anyhow::Result<()> {
    let finals: Vec<&BuiltImage> = report.images.iter().filter(|i| i.tag.is_some()).collect();
    for template in &options.push {
        if !template.contains("{image}") && finals.len() > 1 {
            anyhow::bail!(
                "--push {template}: the config has {} final images; put `{{image}}` in the reference",
                finals.len()
            );
        }
        for image in &finals {
            let to = template.replace("{image}", &image.name.replace('~', "image"));
            let mount_from = options
                .repo
                .as_deref()
                .and_then(|r| r.parse::<strata_registry::Reference>().ok())
                .map(|r| vec![r.repository])
                .unwrap_or_default();
            let pushed = super::push::push(
                ctx,
                &format!("{}", image.manifest),
                &to,
                strata_registry::ManifestFormat::Oci,
                options.push_compression,
                mount_from,
            )?;
            progress.event(strata_progress::Event::Note {
                message: format!(
                    "pushed {} to {to} ({}, {} blob(s) uploaded, {} already there, {} mounted)",
                    image.name, pushed.manifest, pushed.uploaded, pushed.existing, pushed.mounted
                ),
            });
        }
    }
    Ok(())
}

/// Hands the final images to `--load`'s engine.
fn load_images(
    ctx: &Context,
    report: &BuildReport,
    options: &BuildOptions,
    progress: &dyn Sink,
) -> anyhow::Result<()> {
    let Some(engine) = options.load else {
        return Ok(());
    };
    for image in report.images.iter().filter(|i| i.tag.is_some()) {
        let tag = image.tag.as_deref().expect("filtered on a tag");
        let said = super::export::load_into(ctx, tag, engine, options.push_compression)?;
        progress.event(strata_progress::Event::Note {
            message: format!("{}: {said}", image.name),
        });
    }
    Ok(())
}

/// Writes the final image to every `-o` output.
fn write_outputs(
    ctx: &Context,
    report: &BuildReport,
    options: &BuildOptions,
    progress: &dyn Sink,
) -> anyhow::Result<()> {
    let epoch = super::output::source_date_epoch(dockerfile_build_args(options));
    for output in &options.outputs {
        for image in report.images.iter().filter(|i| i.tag.is_some()) {
            let tag = image.tag.as_deref().expect("filtered on a tag");
            super::output::write(ctx, tag, output, options.push_compression, epoch, progress)?;
        }
    }
    Ok(())
}

/// A build that failed in the solver, with the sources its spans point into: the CLI renders
/// it (the message and its causes, the snippet at [`strata_solver::Error::span`], the output
/// tail) and exits with [`Failed::exit_code`]. Its text and causes are the solver error's.
#[derive(Debug)]
pub struct Failed {
    /// What failed.
    pub error: strata_solver::Error,
    /// The user's files the plan was made from.
    pub sources: strata_plan::SourceMap,
    /// The failure record kept of the failed step, if one was to be kept
    /// ([`DebugOptions::keep_failures`]).
    pub record: Option<failures::Kept>,
}

impl Failed {
    /// The exit code a command line should end with: a failed command's own, 130 when the
    /// build was cancelled, else 1.
    pub fn exit_code(&self) -> i32 {
        self.error.exit_code()
    }
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for Failed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}

/// Why [`build_plan`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Stages could not be built (the errors point at the user's config).
    #[error("{}", .0.first)]
    Solve(Box<strata_solver::Failures>),
    /// Something after the build (tagging) failed.
    #[error(transparent)]
    Other(anyhow::Error),
}

/// Points each final image's tag at its last stage: at its image, or with `epoch` (a
/// Dockerfile build's `SOURCE_DATE_EPOCH` build argument) at that image with its config's and
/// history's creation times clamped to it, as BuildKit's exporter clamps them (the stage
/// itself, and so the cache, keeps its times).
fn tag_images(
    ctx: &Context,
    plan: &Plan,
    solution: strata_solver::Solution,
    epoch: Option<i64>,
) -> anyhow::Result<BuildReport> {
    let mut images = Vec::new();
    let mut outcomes = solution.images;
    outcomes.sort_by_key(|o| o.index);
    for outcome in outcomes {
        let image = &plan.images[outcome.index];
        let tag = image.is_final.then(|| tag_name(plan, &image.name));
        let manifest = match (epoch, &tag) {
            (Some(epoch), Some(_)) => {
                let built = crate::image::StoredImage::load(&ctx.store, &outcome.state.manifest)?;
                crate::image::with_clamped_config_times(&ctx.store, &built, epoch)?
            }
            _ => outcome.state.manifest,
        };
        if let Some(tag) = &tag {
            let current = ctx.store.tag(tag)?;
            if current.as_ref().map(|t| (t.manifest, t.stage))
                != Some((manifest, Some(outcome.state.digest)))
            {
                let updated_unix = crate::unix_now();
                ctx.store.set_tag(
                    tag,
                    &TagTarget {
                        manifest,
                        stage: Some(outcome.state.digest),
                        updated_unix,
                    },
                )?;
            }
        }
        images.push(BuiltImage {
            name: outcome.name,
            tag,
            manifest,
            stages: outcome.stages,
        });
    }
    Ok(BuildReport { images })
}

/// The local tag of a built image: its name, or for the nameless image the project name (else
/// the config directory's name), with `:latest`.
pub fn tag_name(plan: &Plan, name: &ImageName) -> String {
    let base = match name {
        ImageName::Named(n) => n.clone(),
        ImageName::Nameless => plan.project.clone().unwrap_or_else(|| {
            plan.context_dir
                .canonicalize()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "image".into())
        }),
    };
    normalize_reference(&base)
}
