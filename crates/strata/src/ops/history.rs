//! `strata history IMAGE`: an image's history entries with the size of the layer each made,
//! as `docker history` shows them.

use crate::Context;
use crate::image::StoredImage;
use crate::ops::images::{UnpackedSizes, created_unix, lookup};

/// One history entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// When (unix seconds), if the entry says.
    pub created_unix: Option<i64>,
    /// The entry's time as recorded (RFC 3339).
    pub created: Option<String>,
    /// What made it (`RUN /bin/sh -c make`, `strata: app/install: make`).
    pub created_by: String,
    /// Its comment.
    pub comment: String,
    /// Bytes of file content of the layer it made (0 when it made none).
    pub size: u64,
    /// Whether it made no layer.
    pub empty_layer: bool,
}

/// An image's history.
#[derive(Clone, Debug)]
pub struct History {
    /// The image id (config digest).
    pub id: strata_digest::Digest,
    /// The entries, newest first (as docker lists them).
    pub entries: Vec<Entry>,
}

/// The history of the image `reference` names (a tag or an id). Entries that made a layer are
/// paired with the layers in order, as the image spec pairs them; an image without history
/// (a root file system imported by hand) gets one nameless entry per layer.
pub fn history(ctx: &Context, reference: &str) -> anyhow::Result<History> {
    let named = lookup(ctx, reference)?.ok_or_else(|| {
        anyhow::anyhow!("no image `{reference}` in the store (see `strata images`)")
    })?;
    let image = StoredImage::load(&ctx.store, &named.manifest)?;
    let mut sizes = UnpackedSizes::default();
    let mut layers = image.layer_records().into_iter();
    let mut entries = Vec::new();
    for h in &image.config.history {
        let layer = if h.empty_layer { None } else { layers.next() };
        let size = match layer {
            Some(layer) => sizes.of(&ctx.store, &layer)?,
            None => 0,
        };
        entries.push(Entry {
            created_unix: created_unix(h.created.as_deref()),
            created: h.created.clone(),
            created_by: h.created_by.clone(),
            comment: h.comment.clone(),
            size,
            empty_layer: h.empty_layer,
        });
    }
    // Layers no entry describes (a config without history).
    for layer in layers {
        entries.push(Entry {
            created_unix: None,
            created: None,
            created_by: String::new(),
            comment: String::new(),
            size: sizes.of(&ctx.store, &layer)?,
            empty_layer: false,
        });
    }
    entries.reverse();
    Ok(History {
        id: image.manifest.config.digest,
        entries,
    })
}
