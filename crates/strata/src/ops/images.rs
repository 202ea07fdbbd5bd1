//! `strata images`, `rmi` and `tag`: the tagged images, the stages they are made of, and
//! naming them the way docker does (a tag, or an image id: the config digest or a prefix of it).

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::Context as _;
use strata_digest::Digest;
use strata_store::{LayerRecord, LocalStore, Store, TagTarget};

use crate::Context;
use crate::image::{self, StoredImage};

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
    /// The image id as docker shows it: the config digest (`None` when the image is broken).
    pub id: Option<Digest>,
    /// Total compressed size of its layers (what a push or pull moves); a plain layer, not
    /// compressed before it leaves the machine, counts its tar size.
    pub size: u64,
    /// Bytes of file content its layers unpack to (docker's SIZE).
    pub unpacked_size: u64,
    /// When the image was made, from its config (unix seconds), if it says.
    pub created_unix: Option<i64>,
    /// When the tag was last moved (unix seconds).
    pub updated_unix: u64,
    /// Its stages, first to last (empty for imported images).
    pub stages: Vec<StageRow>,
    /// Why the stage chain could not be read to its end, if it could not (the image itself
    /// is usable).
    pub stages_broken: Option<String>,
    /// Why its manifest, config or a layer cannot be read, if it cannot: the image is listed
    /// anyway so that it can be seen and removed (`strata rmi`), and no other image is affected.
    pub broken: Option<String>,
}

/// Lists the tagged images, sorted by name; `filter` keeps those of one repository
/// (`busybox`) or one tag (`busybox:1.36`), as `docker images REPOSITORY[:TAG]`. Whatever is
/// corrupt (a tag file, a stage record, a manifest) marks its own row broken and no other: a
/// tag file that cannot be read is listed under its file name.
pub fn images(ctx: &Context, filter: Option<&str>) -> anyhow::Result<Vec<ImageRow>> {
    let mut rows = Vec::new();
    let mut sizes = UnpackedSizes::default();
    for (path, tag) in ctx.store.tag_entries()? {
        let (name, target) = match tag {
            Ok(tag) => tag,
            Err(e) => {
                let name = path
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into());
                if filter.is_none_or(|f| matches_filter(&name, f)) {
                    rows.push(ImageRow {
                        name,
                        manifest: Digest::of(b""),
                        id: None,
                        size: 0,
                        unpacked_size: 0,
                        created_unix: None,
                        updated_unix: 0,
                        stages: Vec::new(),
                        stages_broken: None,
                        broken: Some(format!(
                            "{e} (`strata store check --repair` moves it aside)"
                        )),
                    });
                }
                continue;
            }
        };
        if filter.is_some_and(|f| !matches_filter(&name, f)) {
            continue;
        }
        let (stages, stages_broken) = stage_chain(&ctx.store, target.stage);
        // Every image is read (two small blobs), so one whose manifest or config rotted is
        // shown as broken rather than found by the next build.
        let loaded = StoredImage::load(&ctx.store, &target.manifest).and_then(|image| {
            let unpacked = image
                .layer_records()
                .iter()
                .map(|l| sizes.of(&ctx.store, l))
                .sum::<anyhow::Result<u64>>()?;
            Ok((image, unpacked))
        });
        let row = ImageRow {
            name,
            manifest: target.manifest,
            id: None,
            size: 0,
            unpacked_size: 0,
            created_unix: None,
            updated_unix: target.updated_unix,
            stages,
            stages_broken,
            broken: None,
        };
        rows.push(match loaded {
            Ok((image, unpacked_size)) => ImageRow {
                id: Some(image.manifest.config.digest),
                size: image.manifest.layers.iter().map(|l| l.size).sum(),
                unpacked_size,
                created_unix: created_unix(image.config.created.as_deref()),
                ..row
            },
            Err(e) => ImageRow {
                broken: Some(crate::error_line(&e)),
                ..row
            },
        });
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}

/// Whether the tag `name` is in the repository or is the tag `filter` names.
fn matches_filter(name: &str, filter: &str) -> bool {
    let (repository, _) = split_tag(name);
    name == filter || repository == filter
}

/// A tag's repository and tag (`None` for a digest reference such as `a/b@sha256:…`).
pub fn split_tag(name: &str) -> (&str, Option<&str>) {
    if let Some((repository, _)) = name.split_once('@') {
        return (repository, None);
    }
    let last = name.rfind('/').map_or(0, |i| i + 1);
    match name[last..].rfind(':') {
        Some(i) => (&name[..last + i], Some(&name[last + i + 1..])),
        None => (name, None),
    }
}

/// The stages of a tag's image, first to last, and why the chain stops early, if it does.
fn stage_chain(store: &LocalStore, last: Option<Digest>) -> (Vec<StageRow>, Option<String>) {
    let mut stages = Vec::new();
    let mut next = last;
    let mut broken = None;
    while let Some(digest) = next {
        let record = match store.stage(&digest) {
            Ok(Some(record)) => record,
            Ok(None) => break,
            Err(e) => {
                broken = Some(crate::error_chain(&e));
                break;
            }
        };
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
    (stages, broken)
}

/// An RFC 3339 time as unix seconds.
pub(crate) fn created_unix(created: Option<&str>) -> Option<i64> {
    let parsed =
        time::OffsetDateTime::parse(created?, &time::format_description::well_known::Rfc3339);
    parsed.ok().map(|t| t.unix_timestamp())
}

/// Bytes of file content layers unpack to, docker's layer size (regular files, each hard
/// link once), remembered by diff id for one listing. A layer with a snapshot is measured
/// there; one without (not unpacked yet) by reading its tar.
#[derive(Default)]
pub(crate) struct UnpackedSizes(HashMap<Digest, u64>);

impl UnpackedSizes {
    /// The unpacked size of `layer`.
    pub(crate) fn of(&mut self, store: &LocalStore, layer: &LayerRecord) -> anyhow::Result<u64> {
        if let Some(size) = self.0.get(&layer.diff_id) {
            return Ok(*size);
        }
        let size = if store.has_snapshot(&layer.diff_id) {
            let dir = store.snapshot_path(&layer.diff_id);
            tree_size(&dir).with_context(|| format!("measure snapshot {}", dir.display()))?
        } else {
            tar_size(store, layer).with_context(|| format!("measure layer {}", layer.digest))?
        };
        self.0.insert(layer.diff_id, size);
        Ok(size)
    }
}

/// Sum of the sizes of the regular files under `dir`, each inode once.
fn tree_size(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    let mut seen = HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() && (meta.nlink() == 1 || seen.insert((meta.dev(), meta.ino())))
            {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

/// Sum of the sizes of the regular file entries of a layer blob's tar.
fn tar_size(store: &LocalStore, layer: &LayerRecord) -> anyhow::Result<u64> {
    let stream = crate::image::layer_tar(store, layer)?;
    let mut archive = tar::Archive::new(stream);
    let mut total = 0;
    for entry in archive.entries()? {
        let entry = entry?;
        if entry.header().entry_type().is_file() {
            total += entry.size();
        }
    }
    Ok(total)
}

/// An image a user named, with every tag it has.
#[derive(Clone, Debug)]
pub struct Named {
    /// Its manifest digest.
    pub manifest: Digest,
    /// The tags naming it: the one given, or all of the image's when named by id.
    pub tags: Vec<(String, TagTarget)>,
    /// Whether it was named by id (or digest) rather than by a tag.
    pub by_id: bool,
}

/// Finds the image `reference` names, as docker does: a tag (`busybox` is `busybox:latest`),
/// else an image id (the config digest, with or without `sha256:`) or an unambiguous prefix
/// of one, else a manifest digest. Images named by id are the tagged ones.
pub fn lookup(ctx: &Context, reference: &str) -> anyhow::Result<Option<Named>> {
    let tag = image::normalize_reference(reference);
    if let Some(target) = image::named(&ctx.store, reference)? {
        return Ok(Some(Named {
            manifest: target.manifest,
            tags: vec![(tag, target)],
            by_id: false,
        }));
    }
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    if hex.is_empty()
        || hex.len() > 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Ok(None);
    }
    let tags = ctx.store.tags()?;
    // Image id first, as docker; a manifest digest only in full.
    let mut by_config: HashMap<Digest, Vec<(String, TagTarget)>> = HashMap::new();
    let mut by_manifest: Vec<(String, TagTarget)> = Vec::new();
    for (name, target) in tags {
        if target.manifest.hex() == hex {
            by_manifest.push((name.clone(), target.clone()));
        }
        // A broken image has no readable id; it is still removable by name.
        let Ok(manifest) = StoredImage::load(&ctx.store, &target.manifest) else {
            continue;
        };
        let id = manifest.manifest.config.digest;
        if id.hex().starts_with(hex) {
            by_config.entry(id).or_default().push((name, target));
        }
    }
    if by_config.len() > 1 {
        let mut ids: Vec<String> = by_config.keys().map(|d| d.short(12)).collect();
        ids.sort();
        anyhow::bail!(
            "image id prefix `{reference}` is ambiguous: it matches images {}",
            ids.join(", ")
        );
    }
    let tags = match by_config.into_values().next() {
        Some(tags) => tags,
        None if !by_manifest.is_empty() => by_manifest,
        None => return Ok(None),
    };
    Ok(Some(Named {
        manifest: tags[0].1.manifest,
        tags,
        by_id: true,
    }))
}

/// The error for a reference that names no image.
fn not_found(reference: &str) -> String {
    format!(
        "no image `{}` in the store (see `strata images`)",
        image::normalize_reference(reference)
    )
}

/// What [`remove`] did.
#[derive(Clone, Debug, Default)]
pub struct Removed {
    /// The tags removed, in order.
    pub untagged: Vec<String>,
    /// One message per name that removed nothing.
    pub failed: Vec<String>,
}

/// Removes images as `docker rmi` does: a name removes that tag; an id removes the image's
/// one tag, or with `force` all its tags (without, an image with several tags is refused, as
/// docker refuses one "referenced in multiple repositories"). Every name is tried; those that
/// remove nothing are in [`Removed::failed`]. An image that cannot be read is removed by name
/// like any other. Blobs, snapshots and stages stay until the store is collected.
pub fn remove(ctx: &Context, names: &[String], force: bool) -> anyhow::Result<Removed> {
    let mut removed = Removed::default();
    for name in names {
        let named = match lookup(ctx, name) {
            Ok(Some(named)) => named,
            Ok(None) => {
                removed.failed.push(not_found(name));
                continue;
            }
            Err(e) => {
                removed.failed.push(crate::error_line(&e));
                continue;
            }
        };
        if named.by_id && named.tags.len() > 1 && !force {
            let tags: Vec<&str> = named.tags.iter().map(|(t, _)| t.as_str()).collect();
            removed.failed.push(format!(
                "`{name}` is the image of several tags ({}): remove them by name, or all with -f",
                tags.join(", ")
            ));
            continue;
        }
        for (tag, _) in named.tags {
            if ctx.store.remove_tag(&tag)? {
                removed.untagged.push(tag);
            }
        }
    }
    Ok(removed)
}

/// Makes the tag `target` name the image `source` names (a tag or an id), as `docker tag`.
/// Returns the tag set, normalized (`app` is `app:latest`).
pub fn tag(ctx: &Context, source: &str, target: &str) -> anyhow::Result<String> {
    let named = lookup(ctx, source)?.ok_or_else(|| anyhow::anyhow!(not_found(source)))?;
    let (_, from) = &named.tags[0];
    name_manifest(ctx, named.manifest, from.stage, target)
}

/// Tags the manifest `manifest` (made by the stage `stage`, if built here) as `target`;
/// returns the name as stored.
pub fn name_manifest(
    ctx: &Context,
    manifest: strata_digest::Digest,
    stage: Option<strata_digest::Digest>,
    target: &str,
) -> anyhow::Result<String> {
    let parsed: strata_registry::Reference = target
        .parse()
        .with_context(|| format!("`{target}` is not a valid image name"))?;
    if parsed.digest.is_some() {
        anyhow::bail!("`{target}` holds a digest: a tag names an image by name and tag only");
    }
    let name = image::normalize_reference(target);
    ctx.store.set_tag(
        &name,
        &TagTarget {
            manifest,
            stage,
            updated_unix: crate::unix_now(),
        },
    )?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_into_repository_and_tag() {
        assert_eq!(split_tag("busybox:latest"), ("busybox", Some("latest")));
        assert_eq!(
            split_tag("127.0.0.1:5000/team/app:v1"),
            ("127.0.0.1:5000/team/app", Some("v1"))
        );
        assert_eq!(
            split_tag("127.0.0.1:5000/team/app"),
            ("127.0.0.1:5000/team/app", None)
        );
        assert_eq!(split_tag("h/a@sha256:00"), ("h/a", None));
        assert!(matches_filter(
            "127.0.0.1:5000/team/app:v1",
            "127.0.0.1:5000/team/app"
        ));
        assert!(matches_filter("busybox:1", "busybox:1"));
        assert!(!matches_filter("busybox:1", "busybox:2"));
        assert!(!matches_filter("busybox2:1", "busybox"));
    }

    #[test]
    fn created_times_parse_as_rfc3339() {
        assert_eq!(created_unix(Some("1970-01-01T00:01:40Z")), Some(100));
        assert_eq!(created_unix(Some("yesterday")), None);
        assert_eq!(created_unix(None), None);
    }
}
