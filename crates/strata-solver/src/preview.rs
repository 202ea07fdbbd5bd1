//! Every stage's digest and where the cache has it, without building anything (`strata plan`).
//!
//! The digests are the walk's ([`crate::walk`]): the static prefix of each image from its
//! resolved base, then each later stage from its parent. A stage with late inputs needs its
//! parent (and, for imports, the images it copies from) in the cache to ask the executor for
//! them; when they are not there yet its digest, and every later one of the image, is known
//! only once the build gets there ([`PlannedStage::digest`] `None`).

use std::collections::HashMap;

use strata_digest::Digest;
use strata_plan::{Base, DigestInput, Plan};

use crate::executor::{Executor, Location, StageState};
use crate::walk::{self, Probe};
use crate::{Error, schedule};

/// One stage as a build would see it now.
#[derive(Clone, Debug)]
pub struct PlannedStage {
    /// The stage name.
    pub name: String,
    /// Its digest; `None` when it depends on late inputs of stages not built yet.
    pub digest: Option<Digest>,
    /// Its inputs, when the digest is known.
    pub inputs: Vec<DigestInput>,
    /// Where the cache has it, if anywhere.
    pub location: Option<Location>,
    /// The executor says the stage is empty and a build skips it (a `gitLatestPatch` with no
    /// change).
    pub skipped: bool,
}

/// One image's planned stages.
#[derive(Clone, Debug)]
pub struct PlannedImage {
    /// Index in [`Plan::images`].
    pub index: usize,
    /// Display name.
    pub name: String,
    /// Its stages in build order.
    pub stages: Vec<PlannedStage>,
}

/// What is known of an image once planned: its last stage's digest and, when cached, state.
type Known = (Option<Digest>, Option<StageState>);

/// The planned stages of the named images (all when none) and of what they depend on, in
/// dependency order.
pub fn preview(
    plan: &Plan,
    executor: &dyn Executor,
    images: &[String],
) -> Result<Vec<PlannedImage>, Error> {
    let mut todo = schedule::select(plan, images)?;
    let mut known: HashMap<usize, Known> = HashMap::new();
    let mut out = Vec::with_capacity(todo.len());
    while !todo.is_empty() {
        let next = todo
            .iter()
            .position(|&i| plan.needs(i).iter().all(|d| known.contains_key(d)))
            .expect("the frontends refuse dependency cycles");
        let index = todo.remove(next);
        let (image, last) = preview_image(plan, executor, index, &known)?;
        known.insert(index, last);
        out.push(image);
    }
    Ok(out)
}

fn preview_image(
    plan: &Plan,
    executor: &dyn Executor,
    index: usize,
    known: &HashMap<usize, Known>,
) -> Result<(PlannedImage, Known), Error> {
    let image = &plan.images[index];
    let name = image.name.to_string();
    let base_input = match &image.base {
        Base::Image { index: base, .. } => known[base].0.as_ref().map(walk::image_base),
        _ => Some(walk::resolve_base(image, executor, None)?.0),
    };
    let deps: Vec<(usize, StageState)> = plan
        .needs(index)
        .into_iter()
        .filter_map(|d| known[&d].1.clone().map(|s| (d, s)))
        .collect();
    let deps_cached = deps.len() == plan.needs(index).len();
    let prefix = match &base_input {
        Some(base) => walk::static_digests(image, base),
        None => Vec::new(),
    };
    let mut stages = Vec::with_capacity(image.stages.len());
    // The last stage that exists so far: its digest, and its state when cached.
    let mut parent: Option<(Digest, Option<StageState>)> = None;
    let mut unknown = base_input.is_none();
    for (i, stage) in image.stages.iter().enumerate() {
        let mut planned = PlannedStage {
            name: stage.name.clone(),
            digest: None,
            inputs: Vec::new(),
            location: None,
            skipped: false,
        };
        let key = match (prefix.get(i), &parent) {
            _ if unknown => None,
            (Some(key), _) => Some(key.clone()),
            // Late inputs read the parent's record and the imported images' files.
            (None, Some((digest, Some(state)))) if deps_cached => {
                let probe = Probe {
                    image,
                    name: &name,
                    stage,
                    parent_digest: Some(*digest),
                    parent_manifest: Some(state.manifest),
                    deps: &deps,
                };
                match probe.key(executor)? {
                    Some(key) => Some(key),
                    None => {
                        planned.skipped = true;
                        stages.push(planned);
                        continue;
                    }
                }
            }
            (None, _) => None,
        };
        let Some((digest, inputs)) = key else {
            unknown = true;
            stages.push(planned);
            continue;
        };
        let found = executor
            .lookup(image, &digest)
            .map_err(|e| walk::stage_error(&name, stage, e))?;
        let state = found.map(|(state, at)| {
            planned.location = Some(at);
            state
        });
        planned.digest = Some(digest);
        planned.inputs = inputs;
        parent = Some((digest, state));
        stages.push(planned);
    }
    let last = match parent {
        Some((digest, state)) if !unknown => (Some(digest), state),
        _ => (None, None),
    };
    Ok((
        PlannedImage {
            index,
            name,
            stages,
        },
        last,
    ))
}
