//! `strata push IMAGE REF`, `strata login` and `strata logout`.

use std::collections::BTreeMap;

use anyhow::Context as _;
use strata_layer::Compression;
use strata_registry::{ManifestFormat, PushOptions, Pushed, Reference};

use crate::Context;
use crate::image;

/// Pushes a local image to a registry reference with every layer in `compression` (converted
/// once and remembered: see [`image::with_compression`]); blobs the registry has are not
/// uploaded again, blobs in `mount_from` repositories of the same registry are mounted.
///
/// A layer compressed for the first time goes up as it is compressed (the bytes written to the
/// store are streamed to the registry too), so the push costs the longer of the two, not their
/// sum; when that upload fails, the layer is uploaded again from the store.
pub fn push(
    ctx: &Context,
    image: &str,
    to: &str,
    format: ManifestFormat,
    compression: Compression,
    mount_from: Vec<String>,
) -> anyhow::Result<Pushed> {
    let digest = image::resolve(&ctx.store, image)?
        .with_context(|| format!("no image `{image}` in the store (see `strata images`)"))?;
    let stored = image::StoredImage::load(&ctx.store, &digest)
        .with_context(|| format!("read image `{image}`"))?;
    let reference: Reference = to
        .parse()
        .with_context(|| format!("`{to}` is not an image reference"))?;
    let client = ctx.registry_client()?;
    let mut streamed = BTreeMap::new();
    let digest = image::with_compression_made_by(
        &ctx.store,
        &stored,
        compression,
        &mut uploading(&client, &reference, &mut streamed),
    )?;
    client
        .push_with(
            &ctx.store,
            &digest,
            &reference,
            &PushOptions {
                format,
                mount_from,
                streamed,
            },
        )
        .with_context(|| format!("push {image} to {reference}"))
}

/// Runs each new layer conversion it is given inside an upload of its blob to `to`'s
/// repository ([`strata_registry::Client::upload_streamed`]), noting in `streamed` each one
/// that got there; one that did not is left to the push's upload from the store.
pub(crate) fn uploading<'a>(
    client: &'a strata_registry::Client,
    to: &'a Reference,
    streamed: &'a mut BTreeMap<strata_store::Digest, u64>,
) -> impl FnMut(&mut image::MakeLayer) -> anyhow::Result<strata_store::LayerRecord> + 'a {
    move |make| {
        let upload = client.upload_streamed(to, |body| {
            let layer = make(body)?;
            let (digest, size) = (layer.digest, layer.size);
            anyhow::Ok((layer, digest, size))
        })?;
        if upload.upload.is_ok() {
            streamed.insert(upload.digest, upload.size);
        }
        Ok(upload.made)
    }
}

/// Checks credentials against a registry and stores them in the Docker config.
pub fn login(ctx: &Context, registry: &str, username: &str, password: &str) -> anyhow::Result<()> {
    strata_registry::login(
        registry,
        username,
        password,
        ctx.registry.docker_config.as_deref(),
    )
    .with_context(|| format!("log in to {registry}"))?;
    Ok(())
}

/// Removes the credentials `login` stored for `registry` (the Docker config); false when
/// there were none.
pub fn logout(registry: &str) -> anyhow::Result<bool> {
    strata_registry::logout(registry, None).with_context(|| format!("log out of {registry}"))
}
