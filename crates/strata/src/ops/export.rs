//! `strata export IMAGE`: an OCI image layout tarball, or a docker-archive for `docker load`.

use std::io::{self, Read, Write};

use anyhow::Context as _;
use strata_layer::Compression;
use strata_store::Store;

use crate::Context;
use crate::image::{self, StoredImage};
use crate::oci::{self, Descriptor, Index};

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
    let (program, format) = match engine {
        Engine::Docker => ("docker", ExportFormat::DockerArchive),
        Engine::Podman => ("podman", ExportFormat::Oci),
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
    let written = export(ctx, reference, format, compression, &mut stdin);
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
    let digest = image::resolve(&ctx.store, reference)?
        .with_context(|| format!("no image `{reference}` in the store (see `strata images`)"))?;
    let mut image = StoredImage::load(&ctx.store, &digest)?;
    if format == ExportFormat::Oci {
        let converted = image::with_compression(&ctx.store, &image, compression)?;
        image = StoredImage::load(&ctx.store, &converted)?;
    }
    let name = image::normalize_reference(reference);
    let mut tar = tar::Builder::new(out);
    match format {
        ExportFormat::Oci => write_oci(ctx, &image, &name, &mut tar)?,
        ExportFormat::DockerArchive => write_docker(ctx, &image, &name, &mut tar)?,
    }
    tar.into_inner()
        .context("finish the tarball")?
        .flush()
        .context("flush the tarball")?;
    Ok(())
}

fn write_oci(
    ctx: &Context,
    image: &StoredImage,
    name: &str,
    tar: &mut tar::Builder<&mut dyn Write>,
) -> anyhow::Result<()> {
    append(tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let manifest_size = ctx.store.blob_size(&image.digest)?;
    let index = Index {
        schema_version: 2,
        media_type: oci::OCI_INDEX.into(),
        manifests: vec![Descriptor {
            media_type: oci::OCI_MANIFEST.into(),
            digest: image.digest,
            size: manifest_size,
            platform: None,
            annotations: index_names(name),
            urls: Vec::new(),
        }],
    };
    append(tar, "index.json", &serde_json::to_vec(&index)?)?;
    let mut blobs = vec![image.digest, image.manifest.config.digest];
    blobs.extend(image.manifest.layers.iter().map(|l| l.digest));
    for digest in blobs {
        let size = ctx.store.blob_size(&digest)?;
        let reader = ctx.store.open_blob(&digest)?;
        append_stream(tar, &format!("blobs/sha256/{}", digest.hex()), size, reader)?;
    }
    Ok(())
}

fn write_docker(
    ctx: &Context,
    image: &StoredImage,
    name: &str,
    tar: &mut tar::Builder<&mut dyn Write>,
) -> anyhow::Result<()> {
    let config_name = format!("{}.json", image.manifest.config.digest.hex());
    append(
        tar,
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
        append_stream(tar, &path, size, image::layer_tar(&ctx.store, &layer)?)?;
        layer_names.push(path);
    }
    let manifest =
        serde_json::json!([{ "Config": config_name, "RepoTags": [name], "Layers": layer_names }]);
    append(tar, "manifest.json", &serde_json::to_vec(&manifest)?)?;
    let (repo, tag) = name.rsplit_once(':').unwrap_or((name, "latest"));
    let top = image
        .config
        .rootfs
        .diff_ids
        .last()
        .map(|d| d.hex())
        .unwrap_or_default();
    append(
        tar,
        "repositories",
        &serde_json::to_vec(&serde_json::json!({ repo: { tag: top } }))?,
    )?;
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

fn append(tar: &mut tar::Builder<&mut dyn Write>, path: &str, bytes: &[u8]) -> anyhow::Result<()> {
    append_stream(tar, path, bytes.len() as u64, bytes)
}

fn append_stream(
    tar: &mut tar::Builder<&mut dyn Write>,
    path: &str,
    size: u64,
    data: impl Read,
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
