//! `strata plan`: every stage's digest and whether the cache has it (locally or in the stage
//! repository), for the build the same options would run, without running anything.
//!
//! The plan is loaded as `ops::build` loads it (the same worker options, so `--network` and
//! build args give the same digests) and walked by [`strata_solver::preview`]; nothing is
//! built, no base is pulled that is local, and no layer is fetched.

use std::sync::atomic::AtomicBool;

pub use strata_solver::{Location, PlannedImage, PlannedStage};

use crate::Context;
use crate::ops::build::{self, BuildOptions, Failed};

/// The planned stages of the images `options` names (the plan's default ones when none) and
/// of the images they depend on, in dependency order.
pub fn plan(
    ctx: &Context,
    options: &BuildOptions,
    cancel: &AtomicBool,
) -> anyhow::Result<Vec<PlannedImage>> {
    let built = Default::default();
    let build::Loaded { plan, worker, .. } = &build::load(ctx, options, &built, cancel)?;
    let images = if options.images.is_empty() {
        plan.default_images.clone()
    } else {
        options.images.clone()
    };
    let mut planned = strata_solver::preview(plan, worker, &images).map_err(|error| {
        anyhow::Error::from(Failed {
            error,
            sources: plan.sources.clone(),
            record: None,
        })
    })?;
    // An image waiting for another's ImageID or ImageDigest is planned with a placeholder:
    // its digests are known once the build has built that image.
    for image in planned
        .iter_mut()
        .filter(|p| plan.waiting.iter().any(|(w, _)| *w == p.index))
    {
        for stage in &mut image.stages {
            stage.digest = None;
            stage.inputs.clear();
            stage.location = None;
        }
    }
    Ok(planned)
}
