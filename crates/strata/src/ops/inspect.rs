//! `strata inspect IMAGE`: the image's manifest digest, id, config and stages as JSON.

use strata_store::Store;

use crate::Context;
use crate::image::{self, StoredImage};

/// The JSON description of an image: `{"reference", "manifest", "id", "config", "stages"}`;
/// the id is the config's digest (Docker's image id, werf's `ImageID`).
pub fn inspect(ctx: &Context, reference: &str) -> anyhow::Result<serde_json::Value> {
    let digest = image::resolve(&ctx.store, reference)?.ok_or_else(|| {
        anyhow::anyhow!("no image `{reference}` in the store (see `strata images`)")
    })?;
    let stored = StoredImage::load(&ctx.store, &digest)?;
    let mut stages = Vec::new();
    let mut next = image::named(&ctx.store, reference)?.and_then(|t| t.stage);
    while let Some(d) = next {
        let Some(record) = ctx.store.stage(&d)? else {
            break;
        };
        stages.push(serde_json::json!({
            "stage": record.stage,
            "digest": record.digest.hex(),
            "inputs": record.inputs,
            "meta": record.meta,
        }));
        next = record.parent;
    }
    stages.reverse();
    Ok(serde_json::json!({
        "reference": image::normalize_reference(reference),
        "manifest": digest.to_string(),
        "id": stored.manifest.config.digest.to_string(),
        "config": stored.config,
        "stages": stages,
    }))
}
