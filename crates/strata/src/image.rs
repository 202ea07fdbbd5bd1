//! Images in the local store: reading manifests and configs, making sure every layer has an
//! unpacked snapshot to use as an overlay lower, and writing new images.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use strata_digest::Digest;
use strata_store::{LayerRecord, LocalStore, Store, TagTarget};

use crate::oci::{self, Descriptor, ImageConfig, ImageManifest};

/// An image read from the store.
#[derive(Clone, Debug)]
pub struct StoredImage {
    /// The manifest digest.
    pub digest: Digest,
    /// The manifest.
    pub manifest: ImageManifest,
    /// The config.
    pub config: ImageConfig,
}

impl StoredImage {
    /// Reads an image by manifest digest.
    pub fn load(store: &LocalStore, digest: &Digest) -> anyhow::Result<StoredImage> {
        let bytes = store
            .read_blob(digest)
            .with_context(|| format!("read manifest {digest}"))?;
        let manifest: ImageManifest = serde_json::from_slice(&bytes)
            .with_context(|| format!("manifest {digest} is not valid JSON"))?;
        let bytes = store
            .read_blob(&manifest.config.digest)
            .with_context(|| format!("read config of {digest}"))?;
        let config: ImageConfig = serde_json::from_slice(&bytes)
            .with_context(|| format!("config of {digest} is not valid JSON"))?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            anyhow::bail!(
                "image {digest} is inconsistent: {} layers but {} diff ids",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            );
        }
        Ok(StoredImage {
            digest: *digest,
            manifest,
            config,
        })
    }

    /// The layers with their diff ids, bottom first.
    pub fn layer_records(&self) -> Vec<LayerRecord> {
        self.manifest
            .layers
            .iter()
            .zip(&self.config.rootfs.diff_ids)
            .map(|(d, diff_id)| LayerRecord {
                digest: d.digest,
                diff_id: *diff_id,
                size: d.size,
                media_type: d.media_type.clone(),
                urls: d.urls.clone(),
            })
            .collect()
    }

    /// Overlay lower dirs for this image, topmost first, unpacking layers that have no snapshot.
    pub fn lowers(&self, store: &LocalStore) -> anyhow::Result<Vec<PathBuf>> {
        lowers(store, &self.layer_records())
    }
}

/// Overlay lower dirs of `layers` (bottom first), topmost first, unpacking layers that have no
/// snapshot. The stack ends at the first layer whose root is opaque (a root-level
/// `.wh..wh..opq`): overlayfs would not hide the layers below it (see
/// [`strata_layer::merged::visible`]), and they need no unpacking. A layer that is there
/// again higher up (the empty layers of two `RUN`s, two `COPY`s of one file) is left out
/// below: overlayfs refuses one dir twice, and the higher one already shows all it holds.
pub fn lowers(store: &LocalStore, layers: &[LayerRecord]) -> anyhow::Result<Vec<PathBuf>> {
    let mut lowers = Vec::with_capacity(layers.len());
    let mut seen = std::collections::HashSet::new();
    for layer in layers.iter().rev() {
        if !seen.insert(layer.diff_id) {
            continue;
        }
        let snapshot = ensure_snapshot(store, layer)?;
        let opaque = strata_layer::whiteout::is_overlay_opaque(&snapshot)
            .with_context(|| format!("read the opaque xattr of {}", snapshot.display()))?;
        lowers.push(snapshot);
        if opaque {
            break;
        }
    }
    Ok(lowers)
}

/// The snapshot dir of a layer, unpacking the blob first if there is none.
pub fn ensure_snapshot(store: &LocalStore, layer: &LayerRecord) -> anyhow::Result<PathBuf> {
    // Held first, so a gc beside us leaves it (or what we unpack) while this process uses it.
    let held = strata_store::Held::Snapshot(layer.diff_id);
    if store.protect(&[held])?.is_empty() {
        return Ok(store.snapshot_path(&layer.diff_id));
    }
    let scratch = store.scratch("unpack")?;
    let target = scratch.path().join("fs");
    std::fs::create_dir(&target).with_context(|| format!("create {}", target.display()))?;
    let mut blob = store
        .open_blob(&layer.digest)
        .with_context(|| format!("open layer {}", layer.digest))?;
    let stats = strata_layer::unpack_layer(&mut blob, &target)
        .with_context(|| format!("unpack layer {}", layer.digest))?;
    stats
        .diff_id
        .verify(&layer.diff_id)
        .with_context(|| format!("layer {} does not match its diff id", layer.digest))?;
    Ok(store.commit_snapshot(&target, &layer.diff_id)?)
}

/// The manifest of `image` with every layer in `to`: the image itself when all its layers are
/// (or cannot be converted: foreign layers, unknown media types), else a manifest written to
/// the store whose layers were converted, the config unchanged (diff ids do not change).
/// Each conversion is remembered in the store, so the next push or export reuses it.
pub fn with_compression(
    store: &LocalStore,
    image: &StoredImage,
    to: strata_layer::Compression,
) -> anyhow::Result<Digest> {
    with_compression_made_by(store, image, to, &mut in_the_store_only)
}

/// Makes a layer conversion's new blob, writing each of its bytes into the writer it is given
/// too, and returns the converted layer (remembered in the store, as every conversion).
pub type MakeLayer<'a> =
    dyn FnMut(&mut (dyn std::io::Write + Send)) -> anyhow::Result<LayerRecord> + 'a;

/// What runs each new conversion: it calls the [`MakeLayer`] it is given with the writer the
/// blob's bytes go to beside the store.
pub type MadeBy<'a> = dyn FnMut(&mut MakeLayer) -> anyhow::Result<LayerRecord> + 'a;

/// The [`MadeBy`] of a conversion kept in the store alone.
fn in_the_store_only(make: &mut MakeLayer) -> anyhow::Result<LayerRecord> {
    make(&mut std::io::sink())
}

/// [`with_compression`], where `made_by` runs every conversion that is new (none remembered)
/// and decides where its bytes go beside the store: a push uploads them as they come.
pub fn with_compression_made_by(
    store: &LocalStore,
    image: &StoredImage,
    to: strata_layer::Compression,
    made_by: &mut MadeBy,
) -> anyhow::Result<Digest> {
    convert_image(store, image, to, None, Layers::All, made_by)
}

/// [`with_compression`] (every layer, `all`) or [`with_plain_compressed`] (strata's own),
/// the converted layers compressed at `level` (gzip 0-9, zstd 1-22; none: the default): an
/// export's `compression-level=`. A layer already in `to` is kept as it is.
pub fn with_compression_level(
    store: &LocalStore,
    image: &StoredImage,
    to: strata_layer::Compression,
    level: Option<u32>,
    all: bool,
) -> anyhow::Result<Digest> {
    let which = if all { Layers::All } else { Layers::Plain };
    convert_image(store, image, to, level, which, &mut in_the_store_only)
}

/// The manifest of `image` with its plain layers ([`LayerRecord::is_plain`]) in `to` and the
/// others as they are, as [`with_compression`] makes it: what a stage published to the stage
/// repository holds (any compression serves there, so a base image's layers go as pulled).
pub fn with_plain_compressed(
    store: &LocalStore,
    image: &StoredImage,
    to: strata_layer::Compression,
) -> anyhow::Result<Digest> {
    with_plain_compressed_made_by(store, image, to, &mut in_the_store_only)
}

/// [`with_plain_compressed`], where `made_by` runs every conversion that is new, as for
/// [`with_compression_made_by`]: a stage's publish uploads them as they come.
pub fn with_plain_compressed_made_by(
    store: &LocalStore,
    image: &StoredImage,
    to: strata_layer::Compression,
    made_by: &mut MadeBy,
) -> anyhow::Result<Digest> {
    convert_image(store, image, to, None, Layers::Plain, made_by)
}

/// Which layers [`convert_image`] converts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layers {
    All,
    Plain,
}

fn convert_image(
    store: &LocalStore,
    image: &StoredImage,
    to: strata_layer::Compression,
    level: Option<u32>,
    which: Layers,
    made_by: &mut MadeBy,
) -> anyhow::Result<Digest> {
    let mut manifest = image.manifest.clone();
    let mut changed = false;
    for (descriptor, layer) in manifest.layers.iter_mut().zip(image.layer_records()) {
        let foreign = strata_registry::manifest::is_nondistributable(&descriptor.media_type);
        let Some(from) = strata_layer::Compression::from_media_type(&descriptor.media_type) else {
            continue;
        };
        if foreign || (which == Layers::Plain && !layer.is_plain()) {
            continue;
        }
        if from == to {
            // A plain layer leaves as it is, but as a blob.
            if layer.is_plain() {
                materialize(store, &layer)
                    .with_context(|| format!("write layer {} of {}", layer.digest, image.digest))?;
            }
            continue;
        }
        let converted = convert_layer(store, &layer, to, level, made_by).with_context(|| {
            format!("convert layer {} of {} to {to}", layer.digest, image.digest)
        })?;
        descriptor.media_type = converted.media_type;
        descriptor.digest = converted.digest;
        descriptor.size = converted.size;
        changed = true;
    }
    if !changed {
        return Ok(image.digest);
    }
    let bytes = serde_json::to_vec(&manifest).context("serialize the converted manifest")?;
    Ok(store.write_blob(&bytes)?)
}

/// The layer `layer` in `to` (at `level`, else the default one), found from an earlier
/// conversion or converted now by `made_by`.
fn convert_layer(
    store: &LocalStore,
    layer: &LayerRecord,
    to: strata_layer::Compression,
    level: Option<u32>,
    made_by: &mut MadeBy,
) -> anyhow::Result<LayerRecord> {
    let kind = match level {
        Some(level) => format!("{to}-{level}"),
        None => to.to_string(),
    };
    if let Some(done) = store.converted_layer(&layer.digest, &kind)?
        && store.has_blob(&done.digest)
    {
        return Ok(done);
    }
    // At a level of its own, a layer is recompressed from its blob (a snapshot-only one's
    // written first).
    if level.is_some() && snapshot_only(store, layer) {
        materialize(store, layer)?;
    }
    made_by(&mut |also| make_converted(store, layer, to, level, &kind, also))
}

/// Converts `layer` to `to` (at `level`) into a new blob of the store, each of its bytes
/// written to `also` too, and remembers the conversion as `kind`.
fn make_converted(
    store: &LocalStore,
    layer: &LayerRecord,
    to: strata_layer::Compression,
    level: Option<u32>,
    kind: &str,
    also: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<LayerRecord> {
    let mut ingest = store.ingest()?;
    let mut out = Tee {
        ingest: &mut ingest,
        also,
    };
    let diff_id = if snapshot_only(store, layer) {
        strata_layer::write_layer(&held_snapshot(store, layer)?, to, &mut out)?.diff_id
    } else {
        strata_layer::compression::recompress(store.open_blob(&layer.digest)?, to, level, out)?.1
    };
    // A blob (or snapshot) that does not hold the recorded tar is never handed out under a new
    // name.
    diff_id.verify(&layer.diff_id).with_context(|| {
        format!(
            "layer {} is corrupt: it does not match its diff id",
            layer.digest
        )
    })?;
    let size = ingest.written();
    let digest = ingest.commit(None)?;
    let converted = LayerRecord {
        digest,
        diff_id: layer.diff_id,
        size,
        media_type: to.media_type().to_string(),
        // A re-compressed layer is a new blob that only strata has: nowhere else serves it.
        urls: Vec::new(),
    };
    store.put_converted_layer(&layer.digest, kind, &converted)?;
    Ok(converted)
}

/// Writes into a store ingest and, byte for byte, into `also`.
struct Tee<'a> {
    ingest: &'a mut strata_store::Ingest,
    also: &'a mut (dyn std::io::Write + Send),
}

impl std::io::Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.ingest.write(buf)?;
        self.also.write_all(&buf[..n])?;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.ingest.flush()?;
        self.also.flush()
    }
}

/// The manifest of `image` with the file times of the layers strata made (its plain layers,
/// [`LayerRecord::is_plain`]: a pulled base's are kept as pulled, as BuildKit keeps its base
/// image's) clamped to `epoch` (unix seconds), BuildKit's `rewrite-timestamp=true`; the
/// config's and history's creation times after it are clamped too, as BuildKit's exporter
/// clamps them to its epoch. The rewritten layers are plain blobs (a later conversion
/// compresses them); `image` itself when nothing changes.
pub fn with_clamped_times(
    store: &LocalStore,
    image: &StoredImage,
    epoch: i64,
) -> anyhow::Result<Digest> {
    clamp_times(store, image, epoch, true)
}

/// The manifest of `image` with only its config's and history's creation times clamped to
/// `epoch`, as [`with_clamped_times`] clamps them: what BuildKit's exporter does with a
/// build's `SOURCE_DATE_EPOCH` build argument without `rewrite-timestamp` (the layers stay
/// as built). `image` itself when nothing changes.
pub fn with_clamped_config_times(
    store: &LocalStore,
    image: &StoredImage,
    epoch: i64,
) -> anyhow::Result<Digest> {
    clamp_times(store, image, epoch, false)
}

fn clamp_times(
    store: &LocalStore,
    image: &StoredImage,
    epoch: i64,
    layers_too: bool,
) -> anyhow::Result<Digest> {
    let seconds = u64::try_from(epoch).unwrap_or(0);
    let mut manifest = image.manifest.clone();
    let mut config = image.config.clone();
    for (n, layer) in image.layer_records().iter().enumerate() {
        if !layers_too || !layer.is_plain() {
            continue;
        }
        let tar = layer_tar(store, layer)?;
        let (ingest, diff_id, size) =
            strata_layer::clamp::clamp_times(tar, seconds, store.ingest()?)
                .with_context(|| format!("clamp the file times of layer {}", layer.digest))?;
        if diff_id == layer.diff_id {
            continue;
        }
        let digest = ingest.commit(Some(&diff_id))?;
        let descriptor = &mut manifest.layers[n];
        descriptor.digest = digest;
        descriptor.size = size;
        config.rootfs.diff_ids[n] = diff_id;
    }
    let epoch_time = time::OffsetDateTime::from_unix_timestamp(epoch)
        .context("SOURCE_DATE_EPOCH is out of range")?;
    let clamp = |created: &mut Option<String>| {
        let later = created
            .as_deref()
            .and_then(|c| {
                time::OffsetDateTime::parse(c, &time::format_description::well_known::Rfc3339).ok()
            })
            .is_none_or(|c| c > epoch_time);
        if later {
            *created = Some(
                epoch_time
                    .format(&time::format_description::well_known::Rfc3339)
                    .expect("formatting a UTC time as RFC 3339 cannot fail"),
            );
        }
    };
    clamp(&mut config.created);
    for entry in &mut config.history {
        clamp(&mut entry.created);
    }
    if config == image.config {
        return Ok(image.digest);
    }
    let config_bytes = serde_json::to_vec(&config).context("serialize the clamped config")?;
    manifest.config.digest = store.write_blob(&config_bytes)?;
    manifest.config.size = config_bytes.len() as u64;
    if let Some(created) = &config.created
        && manifest.annotations.contains_key(oci::CREATED)
    {
        manifest
            .annotations
            .insert(oci::CREATED.to_string(), created.clone());
    }
    let bytes = serde_json::to_vec(&manifest).context("serialize the clamped manifest")?;
    Ok(store.write_blob(&bytes)?)
}

/// The manifest of `image` with `annotations` added (over its own of the same keys): the
/// `annotation.KEY=VALUE` options of an export. `image` itself when there are none.
pub fn with_annotations(
    store: &LocalStore,
    image: &StoredImage,
    annotations: &BTreeMap<String, String>,
) -> anyhow::Result<Digest> {
    if annotations.is_empty() {
        return Ok(image.digest);
    }
    let mut manifest = image.manifest.clone();
    manifest.annotations.extend(annotations.clone());
    let bytes = serde_json::to_vec(&manifest).context("serialize the annotated manifest")?;
    Ok(store.write_blob(&bytes)?)
}

/// Whether `layer` is plain and has no blob: its snapshot is its only copy.
fn snapshot_only(store: &LocalStore, layer: &LayerRecord) -> bool {
    layer.is_plain() && !store.has_blob(&layer.digest)
}

/// The snapshot of `layer`, held so that a gc beside us leaves it while we read it.
fn held_snapshot(store: &LocalStore, layer: &LayerRecord) -> anyhow::Result<PathBuf> {
    if !store
        .protect(&[strata_store::Held::Snapshot(layer.diff_id)])?
        .is_empty()
    {
        anyhow::bail!(
            "layer {} has neither a blob nor a snapshot in the store; build the image again",
            layer.diff_id
        );
    }
    Ok(store.snapshot_path(&layer.diff_id))
}

/// Writes the blob of a plain layer ([`LayerRecord::is_plain`]) from its snapshot, unless it
/// is there.
fn materialize(store: &LocalStore, layer: &LayerRecord) -> anyhow::Result<()> {
    if store
        .protect(&[strata_store::Held::Blob(layer.digest)])?
        .is_empty()
    {
        return Ok(());
    }
    let mut ingest = store.ingest()?;
    strata_layer::write_layer(
        &held_snapshot(store, layer)?,
        strata_layer::Compression::None,
        &mut ingest,
    )?;
    // A snapshot that no longer hashes to its layer is never handed out under its name.
    ingest
        .commit(Some(&layer.diff_id))
        .with_context(|| format!("the snapshot of layer {} is corrupt", layer.diff_id))?;
    Ok(())
}

/// The uncompressed tar of `layer`: its blob decompressed, or for a plain layer without one
/// its snapshot written as a tar on a thread of its own, checked against the layer: the read
/// that completes its size (where a consumer that knows the size stops) or ends the stream
/// fails if the tar is longer, shorter, or hashes to another diff id.
pub fn layer_tar(
    store: &LocalStore,
    layer: &LayerRecord,
) -> anyhow::Result<Box<dyn std::io::Read + Send>> {
    if !snapshot_only(store, layer) {
        return Ok(strata_layer::decompressed(store.open_blob(&layer.digest)?)?);
    }
    let snapshot = held_snapshot(store, layer)?;
    let (reader, mut writer) = std::io::pipe().context("make a pipe for a layer's tar")?;
    let writing = std::thread::spawn(move || {
        strata_layer::write_layer(&snapshot, strata_layer::Compression::None, &mut writer)
    });
    Ok(Box::new(SnapshotTar {
        reader,
        writing: Some(writing),
        diff_id: layer.diff_id,
        size: layer.size,
        read: 0,
    }))
}

/// A plain layer's tar read from the thread writing it ([`layer_tar`]).
struct SnapshotTar {
    reader: std::io::PipeReader,
    writing: Option<std::thread::JoinHandle<Result<strata_layer::LayerStats, strata_layer::Error>>>,
    diff_id: Digest,
    size: u64,
    read: u64,
}

impl SnapshotTar {
    fn corrupt(&self, detail: String) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "the snapshot of layer {} is corrupt: {detail}",
                self.diff_id
            ),
        )
    }

    /// Waits for the writer (it has written everything) and checks the diff id.
    fn finish(&mut self) -> std::io::Result<()> {
        let Some(writing) = self.writing.take() else {
            return Ok(());
        };
        let written = writing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            .map_err(std::io::Error::other)?;
        if written.diff_id != self.diff_id {
            return Err(self.corrupt(format!("its tar hashes to {}", written.diff_id)));
        }
        Ok(())
    }
}

impl std::io::Read for SnapshotTar {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.reader.read(buf)?;
        self.read += n as u64;
        if n > 0 && self.read < self.size {
            return Ok(n);
        }
        if self.read != self.size {
            let detail = format!("its tar has {} bytes, not {}", self.read, self.size);
            return Err(self.corrupt(detail));
        }
        if n > 0 && self.writing.is_some() {
            // The last byte: the stream must end here.
            let mut probe = [0u8; 1];
            if self.reader.read(&mut probe)? > 0 {
                return Err(self.corrupt(format!("its tar is longer than {} bytes", self.size)));
            }
        }
        self.finish()?;
        Ok(n)
    }
}

/// The blobs of an image just written.
#[derive(Clone, Copy, Debug)]
pub struct WrittenImage {
    /// The manifest digest.
    pub manifest: Digest,
    /// The config digest.
    pub config: Digest,
}

/// Stamps a stage's image as created now (or at `$SOURCE_DATE_EPOCH`: see
/// [`oci::build_time`]) and appends the history of the stage, which made the layers
/// `layers[made_from..]`: one entry per layer, as the image spec pairs non-empty entries with
/// layers (docker refuses to pull an image where they disagree), or one `empty_layer` entry
/// when it made none.
pub fn push_stage_history(
    config: &mut ImageConfig,
    layers: &[LayerRecord],
    made_from: usize,
    created_by: &str,
    comment: &str,
) {
    let made = layers.len().saturating_sub(made_from);
    let created = Some(oci::build_time());
    config.created.clone_from(&created);
    for n in 0..made.max(1) {
        config.history.push(oci::History {
            created: created.clone(),
            created_by: created_by.to_string(),
            comment: if made > 1 {
                format!("{comment}, layer {} of {made}", n + 1)
            } else {
                comment.to_string()
            },
            empty_layer: made == 0,
        });
    }
}

/// Adds history entries without a layer (instructions that made no stage), stamped now.
pub fn push_empty_history(config: &mut ImageConfig, created_by: &[String]) {
    for text in created_by {
        config.history.push(oci::History {
            created: Some(oci::build_time()),
            created_by: text.clone(),
            comment: String::new(),
            empty_layer: true,
        });
    }
}

/// Writes config and manifest blobs for an image made of `layers` and `config`; the manifest
/// carries `annotations` and the config's creation time, if it has one, as
/// `org.opencontainers.image.created`. The caller syncs the store before it publishes a
/// record or tag naming the image (see [`LocalStore::write_blob_before_sync`]), as every
/// caller publishes only after its one sync of everything it wrote.
pub fn write_image(
    store: &LocalStore,
    config: &ImageConfig,
    layers: &[LayerRecord],
    annotations: &BTreeMap<String, String>,
) -> anyhow::Result<WrittenImage> {
    let config_bytes = serde_json::to_vec(config).context("serialize image config")?;
    let config_digest = store.write_blob_before_sync(&config_bytes)?;
    let manifest = write_manifest(
        store,
        config_digest,
        config_bytes.len() as u64,
        layers,
        config.created.as_deref(),
        annotations,
    )?;
    Ok(WrittenImage {
        manifest,
        config: config_digest,
    })
}

/// Writes an OCI manifest of the config blob `config` (`config_size` bytes) and `layers`, with
/// `annotations` and the creation time; the caller syncs the store before it publishes it, as
/// for [`write_image`].
pub fn write_manifest(
    store: &LocalStore,
    config: Digest,
    config_size: u64,
    layers: &[LayerRecord],
    created: Option<&str>,
    annotations: &BTreeMap<String, String>,
) -> anyhow::Result<Digest> {
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: oci::OCI_MANIFEST.into(),
        config: Descriptor {
            media_type: oci::OCI_CONFIG.into(),
            digest: config,
            size: config_size,
            platform: None,
            annotations: Default::default(),
            urls: Vec::new(),
        },
        layers: layers
            .iter()
            .map(|l| Descriptor {
                // An OCI manifest names its layers with OCI types, also those of a Docker base.
                media_type: strata_registry::manifest::oci_layer_type(&l.media_type).to_string(),
                digest: l.digest,
                size: l.size,
                platform: None,
                annotations: Default::default(),
                urls: l.urls.clone(),
            })
            .collect(),
        annotations: annotations
            .clone()
            .into_iter()
            .chain(created.map(|c| (oci::CREATED.to_string(), c.to_string())))
            .collect(),
    };
    let bytes = serde_json::to_vec(&manifest).context("serialize image manifest")?;
    Ok(store.write_blob_before_sync(&bytes)?)
}

/// The base-image annotations of an image made from `parent` (`org.opencontainers.image.base.name`
/// and `.base.digest`, as buildah and podman set them; BuildKit sets none): on a registry or
/// local image named `reference`, that name fully qualified and the digest of its manifest;
/// otherwise (a later stage, an image built on another image of the plan) the parent's, so
/// they reach the image's last stage.
pub fn base_annotations(
    parent: Option<&StoredImage>,
    reference: Option<&str>,
) -> BTreeMap<String, String> {
    match (parent, reference) {
        (Some(parent), Some(reference)) => {
            let name = reference
                .parse::<strata_registry::Reference>()
                .map(|r| r.to_string())
                .unwrap_or_else(|_| reference.to_string());
            BTreeMap::from([
                (oci::BASE_NAME.to_string(), name),
                (oci::BASE_DIGEST.to_string(), parent.digest.to_string()),
            ])
        }
        (Some(parent), None) => parent
            .manifest
            .annotations
            .iter()
            .filter(|(k, _)| *k == oci::BASE_NAME || *k == oci::BASE_DIGEST)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        (None, _) => BTreeMap::new(),
    }
}

/// Normalizes a local image reference: a name without tag or digest gets `:latest`.
pub fn normalize_reference(reference: &str) -> String {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if last.contains(':') || last.contains('@') {
        reference.to_string()
    } else {
        format!("{reference}:latest")
    }
}

/// The manifest digest a reference names in the store.
pub fn resolve(store: &LocalStore, reference: &str) -> anyhow::Result<Option<Digest>> {
    if let Some(hex) = reference.strip_prefix("sha256:") {
        let digest: Digest = format!("sha256:{hex}").parse()?;
        return Ok(store.has_blob(&digest).then_some(digest));
    }
    Ok(named(store, reference)?.map(|t| t.manifest))
}

/// What a name means in the store: its tag (`busybox` is `busybox:latest`), else the stage a
/// werf stage name names — `REPO:DIGEST-MILLIS` or `REPO:DIGEST`, werf's `ImageName` of a
/// dependency ([`crate::worker::LocalWorker::stage_name`]) — when the store has that stage,
/// whatever the repository and millis (a stage pulled from the repository keeps its
/// publisher's creation time).
pub fn named(store: &LocalStore, reference: &str) -> anyhow::Result<Option<TagTarget>> {
    if let Some(target) = store.tag(&normalize_reference(reference))? {
        return Ok(Some(target));
    }
    let last = reference.rfind('/').map_or(0, |i| i + 1);
    let Some(colon) = reference[last..].rfind(':') else {
        return Ok(None);
    };
    let tag = &reference[last + colon + 1..];
    let hex = match tag.split_once('-') {
        Some((hex, millis)) if !millis.is_empty() && millis.bytes().all(|b| b.is_ascii_digit()) => {
            hex
        }
        Some(_) => return Ok(None),
        None => tag,
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let digest: Digest = format!("sha256:{}", hex.to_ascii_lowercase()).parse()?;
    Ok(store.stage(&digest)?.map(|record| TagTarget {
        manifest: record.manifest,
        stage: Some(record.digest),
        updated_unix: record.created_unix,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain tar layer of `(path, content)` files, in `store`.
    fn stored_layer(store: &LocalStore, files: &[(&str, &[u8])]) -> LayerRecord {
        let mut b = tar::Builder::new(Vec::new());
        for (path, content) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            b.append_data(&mut h, path, *content).expect("append");
        }
        let tar = b.into_inner().expect("tar");
        LayerRecord {
            digest: store.write_blob(&tar).expect("write blob"),
            diff_id: Digest::of(&tar),
            size: tar.len() as u64,
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            urls: Vec::new(),
        }
    }

    #[test]
    fn a_root_opaque_layer_ends_the_lower_stack() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path()).expect("store");
        let bottom = stored_layer(&store, &[("a", b"a")]);
        let middle = stored_layer(&store, &[(".wh..wh..opq", b""), ("b", b"b")]);
        let top = stored_layer(&store, &[("c", b"c")]);
        let stack = lowers(&store, &[bottom.clone(), middle.clone(), top.clone()]).expect("lowers");
        assert_eq!(
            stack,
            [
                store.snapshot_path(&top.diff_id),
                store.snapshot_path(&middle.diff_id)
            ],
            "the layer below the root-opaque one must not be mounted"
        );
        assert!(!store.has_snapshot(&bottom.diff_id), "nor unpacked");
        let stack = lowers(&store, &[bottom, top]).expect("lowers");
        assert_eq!(stack.len(), 2);
    }

    /// Overlayfs refuses one dir twice among its lowers: a layer repeated higher up (the
    /// empty layers of two `RUN`s) is mounted once, at its highest place.
    #[test]
    fn a_repeated_layer_is_one_lower() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path()).expect("store");
        let empty = stored_layer(&store, &[]);
        let file = stored_layer(&store, &[("f", b"f")]);
        let stack = lowers(&store, &[empty.clone(), file.clone(), empty.clone()]).expect("lowers");
        assert_eq!(
            stack,
            [
                store.snapshot_path(&empty.diff_id),
                store.snapshot_path(&file.diff_id)
            ]
        );
    }

    #[test]
    fn references_get_latest_unless_tagged() {
        assert_eq!(normalize_reference("busybox"), "busybox:latest");
        assert_eq!(normalize_reference("busybox:1.36"), "busybox:1.36");
        assert_eq!(
            normalize_reference("127.0.0.1:5000/a/b"),
            "127.0.0.1:5000/a/b:latest"
        );
        assert_eq!(normalize_reference("h/a@sha256:00"), "h/a@sha256:00");
    }
}
