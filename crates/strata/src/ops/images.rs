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
    /// Why its manifest or config cannot be read, if it cannot: the image is listed anyway so
    /// that it can be seen and removed (`strata rmi`), and no other image is affected.
    pub broken: Option<String>,
}

/// Lists the tagged images, sorted by name. Whatever is corrupt (a tag file, a stage record, a
/// manifest) marks its own row broken and no other: a tag file that cannot be read is listed
/// under its file name.
pub fn images(ctx: &Context) -> anyhow::Result<Vec<ImageRow>> {
    let mut rows = Vec::new();
    for (path, tag) in ctx.store.tag_entries()? {
        let (name, target) = match tag {
            Ok(tag) => tag,
            Err(e) => {
                rows.push(ImageRow {
                    name: path
                        .file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into()),
                    manifest: Digest::of(b""),
                    size: 0,
                    updated_unix: 0,
                    stages: Vec::new(),
                    broken: Some(format!(
                        "{e} (`strata store check --repair` moves it aside)"
                    )),
                });
                continue;
            }
        };
        let mut stages = Vec::new();
        let mut next = target.stage;
        let mut size = None;
        let mut chain_broken = None;
        while let Some(digest) = next {
            let record = match ctx.store.stage(&digest) {
                Ok(Some(record)) => record,
                Ok(None) => break,
                Err(e) => {
                    chain_broken = Some(e.to_string());
                    break;
                }
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
        // Every image is read (two small blobs), so one whose manifest or config rotted is
        // shown as broken rather than found by the next build.
        let loaded = crate::image::StoredImage::load(&ctx.store, &target.manifest).map(|image| {
            size.unwrap_or_else(|| image.manifest.layers.iter().map(|l| l.size).sum())
        });
        let (size, broken) = match loaded {
            Ok(size) => (size, chain_broken),
            Err(e) => (0, Some(format!("{e:#}"))),
        };
        rows.push(ImageRow {
            name,
            manifest: target.manifest,
            size,
            updated_unix: target.updated_unix,
            stages,
            broken,
        });
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}

/// Removes the tags `names` (normalized as `strata images` shows them). Blobs stay until the
/// store is pruned; an image that cannot be read is removed like any other. Fails naming every
/// tag that does not exist, after removing those that do.
pub fn remove(ctx: &Context, names: &[String]) -> anyhow::Result<Vec<String>> {
    let mut removed = Vec::new();
    let mut missing = Vec::new();
    for name in names {
        let tag = crate::image::normalize_reference(name);
        if ctx.store.remove_tag(&tag)? {
            removed.push(tag);
        } else {
            missing.push(tag);
        }
    }
    if !missing.is_empty() {
        anyhow::bail!(
            "no image {} in the store (see `strata images`)",
            missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(removed)
}
