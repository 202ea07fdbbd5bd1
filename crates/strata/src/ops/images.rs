//! `strata images`: the tagged images and the stages they are made of.

use strata_digest::Digest;
use strata_store::Store;

use crate::Context;

/// One stage of a listed image.
#[derive(Clone, Debug)]
pub struct StageRow {
    /// Stage name.
    pub stage: String,
    /// Stage digest.
    pub digest: Digest,
    /// Bytes of the stage's own layer.
    pub layer_bytes: u64,
    /// When it was built (unix seconds).
    pub created_unix: u64,
}

/// One listed image.
#[derive(Clone, Debug)]
pub struct ImageRow {
    /// The tag.
    pub name: String,
    /// The manifest digest.
    pub manifest: Digest,
    /// Total compressed size of its layers.
    pub size: u64,
    /// When the tag was last moved (unix seconds).
    pub updated_unix: u64,
    /// Its stages, first to last (empty for imported images).
    pub stages: Vec<StageRow>,
}

/// Lists the tagged images, sorted by name.
pub fn images(ctx: &Context) -> anyhow::Result<Vec<ImageRow>> {
    let mut rows = Vec::new();
    for (name, target) in ctx.store.tags()? {
        let mut stages = Vec::new();
        let mut next = target.stage;
        let mut size = None;
        while let Some(digest) = next {
            let Some(record) = ctx.store.stage(&digest)? else {
                break;
            };
            size.get_or_insert_with(|| record.layers.iter().map(|l| l.size).sum::<u64>());
            stages.push(StageRow {
                stage: record.stage.clone(),
                digest,
                layer_bytes: record
                    .meta
                    .get(crate::worker::META_LAYER_BYTES)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                created_unix: record.created_unix,
            });
            next = record.parent;
        }
        stages.reverse();
        let size = match size {
            Some(s) => s,
            None => crate::image::StoredImage::load(&ctx.store, &target.manifest)?
                .manifest
                .layers
                .iter()
                .map(|l| l.size)
                .sum(),
        };
        rows.push(ImageRow {
            name,
            manifest: target.manifest,
            size,
            updated_unix: target.updated_unix,
            stages,
        });
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}
