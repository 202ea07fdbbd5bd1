//! `strata load ARCHIVE` (and `strata import` of one): images from a `docker save` tarball or
//! an OCI image layout (a tarball, as `strata export`, `podman save --format oci-archive`,
//! `skopeo copy oci-archive:` and BuildKit's OCI exporter write, or a directory), with their
//! configs, layers and names.
//!
//! A tarball is read once, front to back (it may be a pipe): every blob streams into a store
//! ingest and is committed under its digest (an OCI layout's blob whose content does not hash
//! to its file name is refused), the small JSON files are kept in memory (at most
//! [`MAX_JSON`] bytes each). The images are put together at the end, and tagged only when every
//! blob they need is there.
//!
//! Names: the `--name`/`NAME` given, else an OCI index entry's `io.containerd.image.name`
//! (else its `org.opencontainers.image.ref.name` when that is a full reference), else a docker
//! archive's `RepoTags`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use strata_digest::Digest;
use strata_registry::manifest::{self as rmanifest, Manifest as Parsed, Platform};
use strata_store::{LayerRecord, LocalStore, Store, TagTarget};

use crate::Context;
use crate::image::{self, StoredImage};
use crate::oci;

/// The largest JSON file of an archive read (index, manifest, config).
pub const MAX_JSON: u64 = rmanifest::MAX_MANIFEST;

/// One image loaded.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The tag it got.
    pub reference: String,
    /// Its manifest digest.
    pub manifest: Digest,
}

/// The kind of image archive at a path, if it is one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveKind {
    /// An OCI image layout (`oci-layout` + `index.json`).
    Oci,
    /// `docker save`'s format (`manifest.json`).
    DockerSave,
}

/// What `path` holds: an OCI layout directory, or a tarball (plain or compressed) whose
/// top level has `oci-layout`/`index.json` or `manifest.json`. `None` for anything else (a root
/// file system).
pub fn archive_kind(path: &Path) -> anyhow::Result<Option<ArchiveKind>> {
    if path.is_dir() {
        return Ok(path
            .join("oci-layout")
            .is_file()
            .then_some(ArchiveKind::Oci));
    }
    let mut kind = None;
    // Bounded: a hostile tarball must not make the sniffing allocate what its headers claim.
    let mut tar = strata_layer::bounded::archive(open(path)?);
    for entry in strata_layer::bounded::entries(&mut tar)
        .with_context(|| format!("read {}", path.display()))?
    {
        // A root file system tarball may be anything; only a clean archive counts.
        let Ok(entry) = entry else { return Ok(None) };
        let Ok(name) = entry.path() else { continue };
        let name = normal(&name);
        let first = name.split('/').next().unwrap_or("");
        if matches!(first, "etc" | "bin" | "usr" | "lib" | "sbin" | "var") {
            // A path of a root file system: it is one.
            return Ok(None);
        }
        match name.as_str() {
            "oci-layout" => return Ok(Some(ArchiveKind::Oci)),
            "manifest.json" => kind = Some(ArchiveKind::DockerSave),
            "index.json" => kind = kind.or(Some(ArchiveKind::Oci)),
            _ => {}
        }
    }
    Ok(kind)
}

fn open(path: &Path) -> anyhow::Result<Box<dyn Read + Send>> {
    let file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    strata_layer::decompressed(Box::new(file)).with_context(|| format!("read {}", path.display()))
}

/// An archive path without `./` and trailing `/`.
fn normal(path: &Path) -> String {
    let s = path.to_string_lossy();
    s.trim_start_matches("./").trim_end_matches('/').to_string()
}

/// What one pass over the archive collected.
#[derive(Default)]
struct Contents {
    /// Small JSON files by path.
    json: BTreeMap<String, Vec<u8>>,
    /// Every other file, by path: the blob it became.
    blobs: BTreeMap<String, (Digest, u64)>,
}

/// The images of the archive at `source` (their blobs now in the store, nothing tagged): each
/// manifest digest with the names the archive gives it.
fn read_images(ctx: &Context, source: &Path) -> anyhow::Result<Vec<(Digest, Vec<String>)>> {
    let kind = archive_kind(source)?.with_context(|| {
        format!(
            "{} is neither a docker-save tarball nor an OCI image layout",
            source.display()
        )
    })?;
    let contents = if source.is_dir() {
        read_dir(&ctx.store, source)?
    } else {
        read_tar(&ctx.store, source)?
    };
    let found = match kind {
        ArchiveKind::Oci => oci_images(&ctx.store, &contents)?,
        ArchiveKind::DockerSave => docker_images(&ctx.store, &contents)?,
    };
    if found.is_empty() {
        bail!("{} holds no image", source.display());
    }
    Ok(found)
}

/// The image of the OCI layout `dir` (`--build-context NAME=oci-layout://DIR[@DIGEST]`),
/// read into the store untagged: the one it holds, or the one whose manifest is `digest`.
pub fn layout_image(ctx: &Context, dir: &Path, digest: Option<&str>) -> anyhow::Result<Digest> {
    if archive_kind(dir)? != Some(ArchiveKind::Oci) || !dir.is_dir() {
        bail!("{} is not an OCI image layout directory", dir.display());
    }
    let found = read_images(ctx, dir)?;
    let manifest = match digest {
        Some(d) => {
            let wanted: Digest = d
                .parse()
                .with_context(|| format!("oci-layout://{}@{d}: not a digest", dir.display()))?;
            found
                .iter()
                .find(|(m, _)| *m == wanted)
                .map(|(m, _)| *m)
                .with_context(|| format!("{} has no image {d}", dir.display()))?
        }
        None if found.len() == 1 => found[0].0,
        None => bail!(
            "{} holds {} images; name one: oci-layout://{}@sha256:...",
            dir.display(),
            found.len(),
            dir.display()
        ),
    };
    StoredImage::load(&ctx.store, &manifest)
        .with_context(|| format!("image {manifest} of {}", dir.display()))?;
    ctx.store.sync()?;
    Ok(manifest)
}

/// Loads the images of the archive at `source`; `name` (if given) names the only image.
pub fn load(ctx: &Context, source: &Path, name: Option<&str>) -> anyhow::Result<Vec<Loaded>> {
    let found = read_images(ctx, source)?;
    if name.is_some() && found.len() > 1 {
        bail!(
            "{} holds {} images; load it without a name to give each its own",
            source.display(),
            found.len()
        );
    }
    let mut loaded = Vec::new();
    for (manifest, names) in found {
        // Refuse what a build could not use before anything is tagged.
        StoredImage::load(&ctx.store, &manifest)
            .with_context(|| format!("image {manifest} of {}", source.display()))?;
        let names = match name {
            Some(n) => vec![n.to_string()],
            None if names.is_empty() => bail!(
                "image {manifest} of {} has no name; give it one: `strata load {} NAME`",
                source.display(),
                source.display()
            ),
            None => names,
        };
        ctx.store.sync()?;
        for n in names {
            let reference = image::normalize_reference(&n);
            ctx.store.set_tag(
                &reference,
                &TagTarget {
                    manifest,
                    stage: None,
                    updated_unix: crate::unix_now(),
                },
            )?;
            loaded.push(Loaded {
                reference,
                manifest,
            });
        }
    }
    Ok(loaded)
}

fn read_tar(store: &LocalStore, source: &Path) -> anyhow::Result<Contents> {
    let mut contents = Contents::default();
    let mut tar = strata_layer::bounded::archive(open(source)?);
    for entry in strata_layer::bounded::entries(&mut tar)
        .with_context(|| format!("read {}", source.display()))?
    {
        let mut entry = entry.with_context(|| format!("read {}", source.display()))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = normal(
            &entry
                .path()
                .with_context(|| format!("read {}", source.display()))?,
        );
        add(store, &mut contents, &path, entry.size(), &mut entry)
            .with_context(|| format!("{path} of {}", source.display()))?;
    }
    Ok(contents)
}

fn read_dir(store: &LocalStore, source: &Path) -> anyhow::Result<Contents> {
    let mut contents = Contents::default();
    let mut stack: Vec<PathBuf> = vec![source.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("list {}", dir.display()))? {
            let path = entry
                .with_context(|| format!("list {}", dir.display()))?
                .path();
            let meta = std::fs::symlink_metadata(&path)
                .with_context(|| format!("stat {}", path.display()))?;
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let rel = normal(path.strip_prefix(source).expect("walked from the source"));
                let mut file =
                    File::open(&path).with_context(|| format!("open {}", path.display()))?;
                add(store, &mut contents, &rel, meta.len(), &mut file)
                    .with_context(|| format!("{}", path.display()))?;
            }
        }
    }
    Ok(contents)
}

/// Keeps a JSON file in memory, streams anything else into the store; a file named
/// `blobs/sha256/<hex>` must hash to that digest.
fn add(
    store: &LocalStore,
    contents: &mut Contents,
    path: &str,
    size: u64,
    data: &mut dyn Read,
) -> anyhow::Result<()> {
    let named = path
        .strip_prefix("blobs/sha256/")
        .and_then(|hex| Digest::from_hex(hex).ok());
    if path.ends_with(".json") || path == "oci-layout" || path == "repositories" {
        if size > MAX_JSON {
            bail!("{size} bytes, more than the {MAX_JSON}-byte limit for metadata");
        }
        let mut bytes = Vec::with_capacity(size as usize);
        data.take(MAX_JSON)
            .read_to_end(&mut bytes)
            .context("read")?;
        contents.json.insert(path.to_string(), bytes);
        return Ok(());
    }
    let mut ingest = store.ingest()?;
    io::copy(&mut data.take(size), &mut ingest).context("copy into the store")?;
    ingest.flush().context("copy into the store")?;
    let written = ingest.written();
    let digest = ingest
        .commit(named.as_ref())
        .context("the content does not match its name")?;
    contents.blobs.insert(path.to_string(), (digest, written));
    Ok(())
}

/// The (manifest, names) of an OCI layout's index; nested indexes resolved to this machine's
/// platform.
fn oci_images(
    store: &LocalStore,
    contents: &Contents,
) -> anyhow::Result<Vec<(Digest, Vec<String>)>> {
    let index = contents
        .json
        .get("index.json")
        .context("the OCI layout has no index.json")?;
    let Parsed::Index(index) = rmanifest::parse(index, None).context("index.json")? else {
        bail!("index.json is an image manifest, not an index");
    };
    let mut out = Vec::new();
    for entry in &index.manifests {
        let annotations = &entry.annotations;
        let names: Vec<String> = annotations
            .get(oci::CONTAINERD_NAME)
            .or_else(|| annotations.get(oci::REF_NAME).filter(|r| r.contains('/')))
            .map(|n| familiar(n).to_string())
            .into_iter()
            .collect();
        let bytes = store
            .read_blob(&entry.digest)
            .with_context(|| format!("manifest {} listed in index.json", entry.digest))?;
        let manifest = match rmanifest::parse(&bytes, Some(&entry.media_type))
            .with_context(|| format!("manifest {}", entry.digest))?
        {
            Parsed::Image(_) => entry.digest,
            Parsed::Index(inner) => {
                let platform = Platform::host();
                rmanifest::select(&inner, &platform)
                    .map(|d| d.digest)
                    .with_context(|| {
                        format!(
                            "index {} has no image for {platform}; it has {}",
                            entry.digest,
                            inner
                                .manifests
                                .iter()
                                .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })?
            }
        };
        out.push((manifest, names));
    }
    Ok(out)
}

/// A Docker Hub name as strata (and docker) spell it: `docker.io/library/busybox:1` is
/// `busybox:1`, the name a `FROM busybox:1` looks up.
fn familiar(name: &str) -> &str {
    name.strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name)
}

/// `docker save`'s `manifest.json`.
#[derive(serde::Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(
        rename = "RepoTags",
        default,
        deserialize_with = "rmanifest::null_default"
    )]
    repo_tags: Vec<String>,
    #[serde(
        rename = "Layers",
        default,
        deserialize_with = "rmanifest::null_default"
    )]
    layers: Vec<String>,
}

/// Writes an OCI manifest for each image of a docker archive: its config as it is, its layers
/// as the blobs they became (plain tars, whose digest is their diff id, or compressed ones).
fn docker_images(
    store: &LocalStore,
    contents: &Contents,
) -> anyhow::Result<Vec<(Digest, Vec<String>)>> {
    let entries: Vec<DockerEntry> = serde_json::from_slice(
        contents
            .json
            .get("manifest.json")
            .context("the docker archive has no manifest.json")?,
    )
    .context("manifest.json is not a docker-save manifest")?;
    let mut out = Vec::new();
    for entry in entries {
        // Docker 25 writes the config under blobs/sha256/ too.
        let config_bytes = match contents.json.get(&entry.config) {
            Some(bytes) => bytes.clone(),
            None => {
                let (digest, _) = contents.blobs.get(&entry.config).with_context(|| {
                    format!("manifest.json names {}, which is missing", entry.config)
                })?;
                store.read_blob(digest)?
            }
        };
        let diff_ids = rmanifest::diff_ids(&config_bytes)
            .with_context(|| format!("config {}", entry.config))?;
        if diff_ids.len() != entry.layers.len() {
            bail!(
                "manifest.json lists {} layers for {} but its config has {} diff ids",
                entry.layers.len(),
                entry.config,
                diff_ids.len()
            );
        }
        let mut layers = Vec::new();
        for (path, diff_id) in entry.layers.iter().zip(diff_ids) {
            let (digest, size) = contents
                .blobs
                .get(path)
                .with_context(|| format!("manifest.json names layer {path}, which is missing"))?;
            let mut magic = [0u8; 4];
            let n = store
                .open_blob(digest)?
                .read(&mut magic)
                .context("read a layer")?;
            let compression = strata_layer::Compression::detect(&magic[..n]);
            layers.push(LayerRecord {
                digest: *digest,
                diff_id,
                size: *size,
                media_type: compression.media_type().to_string(),
                urls: Vec::new(),
            });
        }
        let config = store.write_blob(&config_bytes)?;
        let manifest = image::write_manifest(
            store,
            config,
            config_bytes.len() as u64,
            &layers,
            None,
            &Default::default(),
        )?;
        out.push((manifest, entry.repo_tags));
    }
    Ok(out)
}
