//! `strata import SRC NAME`: a root file system (a tarball, possibly compressed, or a
//! directory) becomes a one-layer base image in the store.

use std::fs::File;
use std::path::Path;

use anyhow::Context as _;
use strata_digest::Digest;
use strata_layer::Compression;
use strata_store::{LayerRecord, Store, TagTarget};

use crate::Context;
use crate::image::{self, normalize_reference};
use crate::oci::{History, ImageConfig};
use crate::worker::DEFAULT_PATH;

/// What an import produced.
#[derive(Clone, Debug)]
pub struct ImportReport {
    /// The tag.
    pub reference: String,
    /// The image's manifest digest.
    pub manifest: Digest,
    /// Compressed size of its layer.
    pub size: u64,
}

/// Imports `source` as the image `name`: a root file system, or an image archive (docker-save
/// tarball, OCI layout), which is loaded with its config ([`super::load`]).
pub fn import(
    ctx: &Context,
    source: &Path,
    name: &str,
    compression: Compression,
) -> anyhow::Result<ImportReport> {
    let store = &ctx.store;
    if super::load::archive_kind(source)?.is_some() {
        let loaded = super::load::load(ctx, source, Some(name))?;
        let first = loaded
            .first()
            .context("a load with a name tags one image")?;
        let size = image::StoredImage::load(store, &first.manifest)?
            .manifest
            .layers
            .iter()
            .map(|l| l.size)
            .sum();
        return Ok(ImportReport {
            reference: first.reference.clone(),
            manifest: first.manifest,
            size,
        });
    }
    let meta =
        std::fs::metadata(source).with_context(|| format!("cannot read {}", source.display()))?;
    let scratch = store.scratch("import")?;
    let root = scratch.path().join("fs");
    std::fs::create_dir(&root).with_context(|| format!("create {}", root.display()))?;
    // Unpacking first (safely: a tarball is untrusted input) gives one canonical form for both
    // kinds of source; the directory then is both the layer's content and its snapshot.
    let layer_dir = if meta.is_dir() {
        source.to_path_buf()
    } else {
        let mut file = File::open(source).with_context(|| format!("open {}", source.display()))?;
        strata_layer::unpack_layer(&mut file, &root)
            .with_context(|| format!("unpack {}", source.display()))?;
        root.clone()
    };
    let mut ingest = store.ingest()?;
    let stats = strata_layer::write_layer(&layer_dir, compression, &mut ingest)
        .with_context(|| format!("write a layer of {}", layer_dir.display()))?;
    let size = ingest.written();
    let digest = ingest.commit(None)?;
    let layer = LayerRecord {
        digest,
        diff_id: stats.diff_id,
        size,
        media_type: compression.media_type().into(),
        urls: Vec::new(),
    };
    if meta.is_dir() {
        image::ensure_snapshot(store, &layer)?;
    } else {
        store.commit_snapshot(&root, &stats.diff_id)?;
    }
    // No timestamps: the same root file system imported on two machines is the same image,
    // so their stage digests (which include the base's digest) agree and they share a cache.
    let mut config = ImageConfig::empty();
    config.set_env("PATH", DEFAULT_PATH);
    config.rootfs.diff_ids.push(stats.diff_id);
    config.history.push(History {
        created_by: "strata import".to_string(),
        ..History::default()
    });
    let written = image::write_image(store, &config, &[layer], &Default::default())?;
    let reference = normalize_reference(name);
    store.sync()?;
    let updated_unix = crate::unix_now();
    store.set_tag(
        &reference,
        &TagTarget {
            manifest: written.manifest,
            stage: None,
            updated_unix,
        },
    )?;
    Ok(ImportReport {
        reference,
        manifest: written.manifest,
        size,
    })
}
