//! `strata pull REF`: an image from a registry into the store, tagged as named and unpacked,
//! as `docker pull` leaves it. Credentials come from `strata login` (the Docker config) or
//! podman's auth files, as for every registry access.

use strata_digest::Digest;
use strata_store::Store;

use crate::Context;
use crate::image::{self, StoredImage};
use crate::remote::{Remote, RemoteOptions};

/// What a pull did.
#[derive(Clone, Debug)]
pub struct Pulled {
    /// The local tag set (`busybox:latest`, `127.0.0.1:5000/team/app:v1`).
    pub tag: String,
    /// The manifest digest.
    pub manifest: Digest,
    /// Whether the tag named another image (or nothing) before.
    pub changed: bool,
}

/// Pulls `reference` (the manifest for this machine's platform when it names an index),
/// tags it locally as `reference` normalized, the name a build's `from:` resolves, and
/// unpacks its layers.
pub fn pull(ctx: &Context, reference: &str) -> anyhow::Result<Pulled> {
    let tag = image::normalize_reference(reference);
    let before = ctx.store.tag(&tag)?.map(|t| t.manifest);
    let remote = Remote::new(&RemoteOptions {
        client: ctx.registry_client()?,
        repo: None,
    });
    let manifest = remote
        .pull_base(&ctx.store, reference, &tag)
        .map_err(|e| e.context(format!("pull {reference}")))?;
    StoredImage::load(&ctx.store, &manifest)?.lowers(&ctx.store)?;
    Ok(Pulled {
        tag,
        manifest,
        changed: before != Some(manifest),
    })
}
