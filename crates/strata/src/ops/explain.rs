//! `strata build --explain` and `strata explain IMAGE`: why each stage was built — the first
//! input that differs from the stage of that name the same image had before
//! ([`strata_solver::miss_reason`]) — or, for a stage a build reused, where it came from.
//!
//! "Before" is the newest other record of the image's stage that is not newer than the one
//! explained (by the millisecond of its build, [`crate::worker::META_CREATED_MILLIS`]); the stage records keep their typed inputs (and, for git masks, the files each
//! matched) for this. A record written before inputs were typed is [`MissReason::Unreadable`].

use std::collections::HashMap;

use strata_digest::Digest;
use strata_store::{StageRecord, Store};

pub use strata_solver::{Change, Location, MissReason};

use crate::Context;
use crate::ops::build::BuildReport;
use crate::worker::created_millis;

/// One stage and why it is there.
#[derive(Clone, Debug)]
pub struct Explained {
    /// The image's name.
    pub image: String,
    /// The stage's name.
    pub stage: String,
    /// Its digest.
    pub digest: Digest,
    /// Built (and why) or reused (from where).
    pub outcome: Outcome,
}

/// What happened to a stage.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Built, for this reason.
    Built(MissReason),
    /// Reused from the cache.
    Reused(Location),
}

/// The stages of a finished build, image by image.
pub fn build(ctx: &Context, report: &BuildReport) -> anyhow::Result<Vec<Explained>> {
    let records = Records::load(ctx)?;
    let mut out = Vec::new();
    for image in &report.images {
        for stage in &image.stages {
            let outcome = match (stage.cached, stage.reused_from) {
                (true, from) => Outcome::Reused(from.unwrap_or(Location::Local)),
                (false, _) if stage.forced => Outcome::Built(MissReason::Forced),
                (false, _) => Outcome::Built(match ctx.store.stage(&stage.digest)? {
                    Some(record) => records.reason(&record),
                    None => MissReason::Unreadable,
                }),
            };
            out.push(Explained {
                image: image.name.clone(),
                stage: stage.name.clone(),
                digest: stage.digest,
                outcome,
            });
        }
    }
    Ok(out)
}

/// The stages of the image `reference` names, each with why it was built when it was.
pub fn image(ctx: &Context, reference: &str) -> anyhow::Result<Vec<Explained>> {
    let tag = ctx
        .store
        .tag(&crate::image::normalize_reference(reference))?
        .ok_or_else(|| {
            anyhow::anyhow!("no image `{reference}` in the store (see `strata images`)")
        })?;
    let records = Records::load(ctx)?;
    let mut out = Vec::new();
    let mut next = tag.stage;
    // A chain is as long as an image has stages; the bound keeps a corrupt cycle finite.
    for _ in 0..1000 {
        let Some(digest) = next else { break };
        let Some(record) = ctx.store.stage(&digest)? else {
            break;
        };
        out.push(Explained {
            image: record.image.clone(),
            stage: record.stage.clone(),
            digest,
            outcome: Outcome::Built(records.reason(&record)),
        });
        next = record.parent;
    }
    out.reverse();
    Ok(out)
}

/// The store's readable stage records by image and stage name.
struct Records(HashMap<(String, String), Vec<StageRecord>>);

impl Records {
    fn load(ctx: &Context) -> anyhow::Result<Records> {
        let mut by_stage: HashMap<(String, String), Vec<StageRecord>> = HashMap::new();
        // An unreadable record is `strata store check`'s business, not a reason to fail here.
        for (_, entry) in ctx.store.stage_entries()? {
            if let Ok(record) = entry {
                by_stage
                    .entry((record.image.clone(), record.stage.clone()))
                    .or_default()
                    .push(record);
            }
        }
        Ok(Records(by_stage))
    }

    /// Why `record` was built: its first difference from the newest other record of its
    /// image's stage that is not newer.
    fn reason(&self, record: &StageRecord) -> MissReason {
        let before = self
            .0
            .get(&(record.image.clone(), record.stage.clone()))
            .into_iter()
            .flatten()
            .filter(|r| r.digest != record.digest && created_millis(r) <= created_millis(record))
            .max_by_key(|r| created_millis(r));
        let Some(before) = before else {
            return MissReason::New;
        };
        match (
            crate::reuse::recorded_inputs(before),
            crate::reuse::recorded_inputs(record),
        ) {
            (Some(old), Some(new)) => {
                strata_solver::miss_reason(&old, &new, before.parent != record.parent)
            }
            _ => MissReason::Unreadable,
        }
    }
}
