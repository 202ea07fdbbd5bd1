//! `strata export IMAGE`: an OCI image layout tarball, or a docker-archive for `docker load`.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use anyhow::Context as _;
use strata_layer::Compression;
use strata_store::Store;

use crate::Context;
use crate::image::{self, StoredImage};
use crate::oci::{self, Descriptor, Index};
use strata_registry::ManifestFormat;

/// The tarball's layout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExportFormat {
    /// OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/...`).
    #[default]
    Oci,
    /// `docker save`'s format (`manifest.json`, uncompressed `<id>/layer.tar`).
    DockerArchive,
}

/// A container engine an image can be handed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// `docker load` (the daemon of `$DOCKER_HOST` or the default socket), fed a
    /// docker-archive: every docker since 1.x reads it, OCI archives only docker 25+.
    Docker,
    /// `podman load` (its storage as configured, `$CONTAINERS_STORAGE_CONF` included), fed an
    /// OCI archive.
    Podman,
}

impl std::str::FromStr for Engine {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Engine> {
        match s {
            "docker" => Ok(Engine::Docker),
            "podman" => Ok(Engine::Podman),
            other => anyhow::bail!("unknown engine `{other}`; expected `docker` or `podman`"),
        }
    }
}

/// Hands `image` to a running docker or podman through its `load`, streaming the archive
/// into its stdin; returns what the engine printed (`Loaded image: NAME`).
pub fn load_into(
    ctx: &Context,
    reference: &str,
    engine: Engine,
    compression: Compression,
) -> anyhow::Result<String> {
    let options = ExportOptions {
        format: match engine {
            Engine::Docker => ExportFormat::DockerArchive,
            Engine::Podman => ExportFormat::Oci,
        },
        names: Vec::new(),
        compression,
        compression_level: None,
        force_compression: true,
        docker_media_types: false,
        ..Default::default()
    };
    load_into_with(ctx, reference, engine, &options)
}

/// [`load_into`] with the archive's names and layers as `options` say (its format must be
/// the one the engine reads).
pub fn load_into_with(
    ctx: &Context,
    reference: &str,
    engine: Engine,
    options: &ExportOptions,
) -> anyhow::Result<String> {
    let program = match engine {
        Engine::Docker => "docker",
        Engine::Podman => "podman",
    };
    let mut child = std::process::Command::new(program)
        .arg("load")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("start `{program} load` (is {program} installed?)"))?;
    let mut stdin = child
        .stdin
        .take()
        .expect("stdin was piped because the command was set up so");
    let written = export_to(ctx, reference, options, Target::Tar(&mut stdin));
    drop(stdin);
    let out = child
        .wait_with_output()
        .with_context(|| format!("wait for `{program} load`"))?;
    if !out.status.success() {
        anyhow::bail!(
            "`{program} load` of {reference} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    // An engine that stopped reading shows as a broken pipe here, after its own message.
    written.with_context(|| format!("stream {reference} into `{program} load`"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Writes `image` to `out` in `format`; an OCI layout's layers are all in `compression`
/// (converted once and remembered), a docker-archive's are plain tars as `docker save` writes.
pub fn export(
    ctx: &Context,
    reference: &str,
    format: ExportFormat,
    compression: Compression,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let options = ExportOptions {
        format,
        names: Vec::new(),
        compression,
        compression_level: None,
        force_compression: true,
        docker_media_types: false,
        ..Default::default()
    };
    export_to(ctx, reference, &options, Target::Tar(out))
}

/// How [`export_to`] writes an image (docker's `-o type=oci|docker,...` options).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// The layout.
    pub format: ExportFormat,
    /// The names the archive gives the image (`name=`); none: the reference it was asked by.
    pub names: Vec<String>,
    /// The compression of an OCI layout's layers.
    pub compression: Compression,
    /// The level the converted layers are compressed at (`compression-level=`); none: the
    /// default one.
    pub compression_level: Option<u32>,
    /// Every layer in `compression` (`force-compression=true`); else only the layers strata
    /// made, the others (a pulled base's) kept as they are, as BuildKit's exporters do.
    pub force_compression: bool,
    /// An OCI layout's manifest with Docker's media types (`oci-mediatypes=false`).
    pub docker_media_types: bool,
    /// Added to the manifest's annotations (`annotation.KEY=VALUE`,
    /// `annotation-manifest.KEY=VALUE`).
    pub manifest_annotations: BTreeMap<String, String>,
    /// Added to the annotations of the manifest's entries in an OCI layout's `index.json`
    /// (`annotation-manifest-descriptor.KEY=VALUE`).
    pub descriptor_annotations: BTreeMap<String, String>,
    /// The time (unix seconds) the file times of the layers strata made are clamped to
    /// (`rewrite-timestamp=true` with `SOURCE_DATE_EPOCH`; see [`image::with_clamped_times`]).
    pub clamp_times_to: Option<i64>,
}

/// Where [`export_to`] writes: a tarball, or (an OCI layout only, `tar=false`) a directory.
pub enum Target<'a> {
    /// The layout as one tarball.
    Tar(&'a mut dyn Write),
    /// The layout's files in this directory (made if missing).
    Dir(&'a std::path::Path),
}

/// Writes the image `reference` names as `options` say into `target`.
pub fn export_to(
    ctx: &Context,
    reference: &str,
    options: &ExportOptions,
    target: Target<'_>,
) -> anyhow::Result<()> {
    let digest = image::resolve(&ctx.store, reference)?
        .with_context(|| format!("no image `{reference}` in the store (see `strata images`)"))?;
    let mut image = StoredImage::load(&ctx.store, &digest)?;
    if let Some(epoch) = options.clamp_times_to {
        let clamped = image::with_clamped_times(&ctx.store, &image, epoch)?;
        image = StoredImage::load(&ctx.store, &clamped)?;
    }
    let annotated = image::with_annotations(&ctx.store, &image, &options.manifest_annotations)?;
    image = StoredImage::load(&ctx.store, &annotated)?;
    if options.format == ExportFormat::Oci {
        let converted = image::with_compression_level(
            &ctx.store,
            &image,
            options.compression,
            options.compression_level,
            options.force_compression,
        )?;
        image = StoredImage::load(&ctx.store, &converted)?;
    }
    let names: Vec<String> = match options.names.as_slice() {
        [] => vec![image::normalize_reference(reference)],
        names => names
            .iter()
            .map(|n| image::normalize_reference(n))
            .collect(),
    };
    match target {
        Target::Tar(out) => {
            let mut tar = tar::Builder::new(out);
            let mut put = |path: &str, size: u64, data: &mut dyn Read| {
                append_stream(&mut tar, path, size, data)
            };
            match options.format {
                ExportFormat::Oci => write_oci(ctx, &image, &names, options, &mut put)?,
                ExportFormat::DockerArchive => write_docker(ctx, &image, &names, &mut put)?,
            }
            tar.into_inner()
                .context("finish the tarball")?
                .flush()
                .context("flush the tarball")?;
        }
        Target::Dir(dir) => {
            anyhow::ensure!(
                options.format == ExportFormat::Oci,
                "only an OCI layout is written as a directory"
            );
            let mut put = |path: &str, _: u64, data: &mut dyn Read| {
                let file = dir.join(path);
                if let Some(parent) = file.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("create {}", parent.display()))?;
                }
                let mut out = std::fs::File::create(&file)
                    .with_context(|| format!("create {}", file.display()))?;
                io::copy(data, &mut out).with_context(|| format!("write {}", file.display()))?;
                Ok(())
            };
            write_oci(ctx, &image, &names, options, &mut put)?;
        }
    }
    Ok(())
}

/// Puts one file of a layout (its path, size and content) where the layout goes.
type Put<'a> = dyn FnMut(&str, u64, &mut dyn Read) -> anyhow::Result<()> + 'a;

fn write_oci(
    ctx: &Context,
    image: &StoredImage,
    names: &[String],
    options: &ExportOptions,
    put: &mut Put<'_>,
) -> anyhow::Result<()> {
    put_bytes(put, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let stored = ctx.store.read_blob(&image.digest)?;
    // Docker's media types: the manifest rewritten (its config and layers are the same blobs).
    let (manifest, media_type) = match options.docker_media_types {
        true => (
            strata_registry::manifest::convert_image(&stored, ManifestFormat::DockerV2)
                .context("write the manifest with Docker's media types")?
                .unwrap_or(stored),
            strata_registry::manifest::DOCKER_MANIFEST,
        ),
        false => (stored, oci::OCI_MANIFEST),
    };
    let manifest_digest = strata_digest::Digest::of(&manifest);
    let index = Index {
        schema_version: 2,
        media_type: oci::OCI_INDEX.into(),
        manifests: names
            .iter()
            .map(|name| Descriptor {
                media_type: media_type.into(),
                digest: manifest_digest,
                size: manifest.len() as u64,
                platform: None,
                annotations: options
                    .descriptor_annotations
                    .clone()
                    .into_iter()
                    .chain(index_names(name))
                    .collect(),
                urls: Vec::new(),
            })
            .collect(),
    };
    put_bytes(put, "index.json", &serde_json::to_vec(&index)?)?;
    put_bytes(
        put,
        &format!("blobs/sha256/{}", manifest_digest.hex()),
        &manifest,
    )?;
    let mut blobs = vec![image.manifest.config.digest];
    blobs.extend(image.manifest.layers.iter().map(|l| l.digest));
    for digest in blobs {
        let size = ctx.store.blob_size(&digest)?;
        let mut reader = ctx.store.open_blob(&digest)?;
        put(&format!("blobs/sha256/{}", digest.hex()), size, &mut reader)?;
    }
    Ok(())
}

fn write_docker(
    ctx: &Context,
    image: &StoredImage,
    names: &[String],
    put: &mut Put<'_>,
) -> anyhow::Result<()> {
    let config_name = format!("{}.json", image.manifest.config.digest.hex());
    put_bytes(
        put,
        &config_name,
        &ctx.store.read_blob(&image.manifest.config.digest)?,
    )?;
    let mut layer_names = Vec::new();
    for layer in image.layer_records() {
        let path = format!("{}/layer.tar", layer.diff_id.hex());
        // A tar header needs the size first: a plain layer's is its size, a compressed one's
        // is counted, then the bytes are streamed.
        let size = if layer.is_plain() {
            layer.size
        } else {
            io::copy(&mut image::layer_tar(&ctx.store, &layer)?, &mut io::sink())
                .with_context(|| format!("decompress layer {}", layer.digest))?
        };
        put(&path, size, &mut image::layer_tar(&ctx.store, &layer)?)?;
        layer_names.push(path);
    }
    let manifest =
        serde_json::json!([{ "Config": config_name, "RepoTags": names, "Layers": layer_names }]);
    put_bytes(put, "manifest.json", &serde_json::to_vec(&manifest)?)?;
    let top = image
        .config
        .rootfs
        .diff_ids
        .last()
        .map(|d| d.hex())
        .unwrap_or_default();
    let mut repositories = serde_json::Map::new();
    for name in names {
        let (repo, tag) = name.rsplit_once(':').unwrap_or((name, "latest"));
        let tags = repositories
            .entry(repo.to_string())
            .or_insert_with(|| serde_json::json!({}));
        tags[tag] = serde_json::Value::String(top.to_string());
    }
    put_bytes(put, "repositories", &serde_json::to_vec(&repositories)?)?;
    Ok(())
}

/// The names an OCI layout's index gives the image, as BuildKit writes them: the tag as
/// `ref.name` (the OCI layout's own use: `umoci --image DIR:TAG`, `skopeo oci:DIR:TAG`), and the
/// fully qualified name under containerd's key, which `podman load`, `ctr import` and
/// `nerdctl load` name the image by.
fn index_names(name: &str) -> std::collections::BTreeMap<String, String> {
    let last = name.rsplit('/').next().unwrap_or(name);
    let tag = last.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
    let mut names =
        std::collections::BTreeMap::from([(oci::REF_NAME.to_string(), tag.to_string())]);
    if let Ok(reference) = name.parse::<strata_registry::Reference>() {
        names.insert(oci::CONTAINERD_NAME.to_string(), reference.to_string());
    }
    names
}

fn put_bytes(put: &mut Put<'_>, path: &str, mut bytes: &[u8]) -> anyhow::Result<()> {
    put(path, bytes.len() as u64, &mut bytes)
}

fn append_stream(
    tar: &mut tar::Builder<&mut dyn Write>,
    path: &str,
    size: u64,
    data: &mut dyn Read,
) -> anyhow::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, path, data.take(size))
        .with_context(|| format!("write {path} into the tarball"))?;
    Ok(())
}
