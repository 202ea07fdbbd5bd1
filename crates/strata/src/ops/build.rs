//! `strata build`: load the config, solve it on the local worker, tag the final images.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{SystemTime, UNIX_EPOCH};

use strata_digest::Digest;
use strata_frontend::stapel::{GitOptions, LoadOptions};
use strata_plan::{ImageName, Plan};
use strata_progress::Sink;
use strata_solver::{SolveOptions, StageOutcome};
use strata_store::{Store, TagTarget};

use crate::image::normalize_reference;
use crate::worker::{LocalWorker, WorkerOptions};
use crate::{Context, Failure};

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
/// A failure is returned as a [`Failure`] whose report points at the user's config.
pub fn build(
    ctx: &Context,
    options: &BuildOptions,
    progress: &dyn Sink,
    cancel: &AtomicBool,
) -> anyhow::Result<BuildReport> {
    let plan = strata_frontend::stapel::load(
        &options.dir,
        &LoadOptions {
            config: options.config.clone(),
            git: GitOptions {
                dev: options.dev,
                cache: Some(ctx.store.root().join("git")),
            },
        },
    )
    .map_err(|e| Failure {
        report: format!("error: {e}"),
        exit_code: 1,
    })?;
    build_plan(ctx, &plan, options, progress, cancel)
}

/// Builds an already loaded plan.
pub fn build_plan(
    ctx: &Context,
    plan: &Plan,
    options: &BuildOptions,
    progress: &dyn Sink,
    cancel: &AtomicBool,
) -> anyhow::Result<BuildReport> {
    for note in &plan.notes {
        progress.event(strata_progress::Event::Note {
            message: format!("note: {note}"),
        });
    }
    // A killed earlier build may have left scratch dirs and partial blobs; they are unreachable.
    ctx.store.collect_garbage()?;
    let worker = LocalWorker::new(&ctx.store, &ctx.sandbox, options.worker.clone())?;
    let solve_options = SolveOptions {
        images: options.images.clone(),
        parallel: options.parallel,
    };
    let solution = strata_solver::solve(
        plan,
        &worker,
        &solve_options,
        &strata_solver::NoHooks,
        progress,
        cancel,
    )
    .map_err(|e| Failure {
        report: e.render(&plan.sources),
        exit_code: e.exit_code(),
    })?;
    let mut images = Vec::new();
    let mut outcomes = solution.images;
    outcomes.sort_by_key(|o| o.index);
    for outcome in outcomes {
        let image = &plan.images[outcome.index];
        let tag = image.is_final.then(|| tag_name(plan, &image.name));
        if let Some(tag) = &tag {
            let current = ctx.store.tag(tag)?;
            if current.as_ref().map(|t| (t.manifest, t.stage))
                != Some((outcome.state.manifest, Some(outcome.state.digest)))
            {
                let updated_unix = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                ctx.store.set_tag(
                    tag,
                    &TagTarget {
                        manifest: outcome.state.manifest,
                        stage: Some(outcome.state.digest),
                        updated_unix,
                    },
                )?;
            }
        }
        images.push(BuiltImage {
            name: outcome.name,
            tag,
            manifest: outcome.state.manifest,
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
