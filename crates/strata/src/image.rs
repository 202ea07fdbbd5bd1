//! Images in the local store: reading manifests and configs, making sure every layer has an
//! unpacked snapshot to use as an overlay lower, and writing new images.

use std::path::PathBuf;

use anyhow::Context as _;
use strata_digest::Digest;
use strata_store::{LayerRecord, LocalStore, Store};

use crate::oci::{self, Descriptor, ImageConfig, Manifest};

/// An image read from the store.
#[derive(Clone, Debug)]
pub struct StoredImage {
    /// The manifest digest.
    pub digest: Digest,
    /// The manifest.
    pub manifest: Manifest,
    /// The config.
    pub config: ImageConfig,
}

impl StoredImage {
    /// Reads an image by manifest digest.
    pub fn load(store: &LocalStore, digest: &Digest) -> anyhow::Result<StoredImage> {
        let bytes = store
            .read_blob(digest)
            .with_context(|| format!("read manifest {digest}"))?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
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
/// [`strata_layer::merged::visible`]), and they need no unpacking.
pub fn lowers(store: &LocalStore, layers: &[LayerRecord]) -> anyhow::Result<Vec<PathBuf>> {
    let mut lowers = Vec::with_capacity(layers.len());
    for layer in layers.iter().rev() {
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
    if store.has_snapshot(&layer.diff_id) {
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

/// The blobs of an image just written.
#[derive(Clone, Copy, Debug)]
pub struct WrittenImage {
    /// The manifest digest.
    pub manifest: Digest,
    /// The config digest.
    pub config: Digest,
}

/// Writes config and manifest blobs for an image made of `layers` and `config`.
pub fn write_image(
    store: &LocalStore,
    config: &ImageConfig,
    layers: &[LayerRecord],
) -> anyhow::Result<WrittenImage> {
    let config_bytes = serde_json::to_vec(config).context("serialize image config")?;
    let config_digest = store.write_blob(&config_bytes)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: oci::MANIFEST.into(),
        config: Descriptor {
            media_type: oci::CONFIG.into(),
            digest: config_digest,
            size: config_bytes.len() as u64,
            annotations: Default::default(),
        },
        layers: layers
            .iter()
            .map(|l| Descriptor {
                media_type: l.media_type.clone(),
                digest: l.digest,
                size: l.size,
                annotations: Default::default(),
            })
            .collect(),
        annotations: Default::default(),
    };
    let bytes = serde_json::to_vec(&manifest).context("serialize image manifest")?;
    Ok(WrittenImage {
        manifest: store.write_blob(&bytes)?,
        config: config_digest,
    })
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
    Ok(store
        .tag(&normalize_reference(reference))?
        .map(|t| t.manifest))
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
