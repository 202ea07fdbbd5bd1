//! `strata store check [--repair]`: the store's own check ([`LocalStore::check`]: blobs hashed,
//! records parsed, the blobs they name present) plus what only strata knows: each tag's image
//! (manifest and config readable, every layer blob there) and each snapshot compared with the
//! layer it unpacks.
//!
//! A snapshot is compared entry by entry with its layer's tar (the last entry of a path wins,
//! as on unpack): a regular file must be one with the same size and sha256, a directory a
//! directory, a symlink one with the same target, a whiteout an overlay whiteout (char device
//! 0/0). A plain layer's snapshot (no blob: [`LayerRecord::is_plain`]) is written as a tar
//! again, which must hash to the diff id. A snapshot whose compressed layer blob is not in the
//! store cannot be compared and is left alone: it is still usable as an overlay lower, and gc
//! removes it once nothing names it. A bad
//! snapshot is quarantined like a bad blob; the next build unpacks it again from its layer.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use strata_digest::{Digest, HashingReader};
use strata_store::{CheckReport, EntryKind, LayerRecord, LocalStore, Problem, Store};

use crate::Context;
use crate::image::StoredImage;

/// What `strata store check` found.
#[derive(Debug)]
pub struct Checked {
    /// The store's own check, with the snapshot problems appended.
    pub report: CheckReport,
    /// Snapshots compared with their layers.
    pub snapshots: usize,
}

/// Checks the whole store; with `repair`, quarantines what is bad (see the module docs).
pub fn check(ctx: &Context, repair: bool) -> anyhow::Result<Checked> {
    let store = &ctx.store;
    let layers = layer_blobs(store)?;
    // Plain layers' snapshots first: one quarantined is a layer gone, which the store's check
    // then finds in the records naming it (and quarantines them too).
    let mut snapshot_problems = Vec::new();
    let mut snapshots = 0;
    for id in store.snapshots()? {
        if layers.get(&id) != Some(&id) || store.has_blob(&id) {
            continue;
        }
        snapshots += 1;
        let path = store.snapshot_path(&id);
        if let Some(detail) = plain_problem(&id, &path)? {
            snapshot_problems.push(snapshot_problem(store, path, detail, repair)?);
        }
    }
    let mut report = store.check(repair)?;
    for (path, tag) in store.tag_entries()? {
        let Ok((name, target)) = tag else { continue };
        let Some(detail) = image_problem(store, &target.manifest) else {
            continue;
        };
        let quarantined = if repair {
            store.quarantine(&path)?
        } else {
            None
        };
        report.problems.push(Problem {
            kind: EntryKind::Tag,
            path,
            detail: format!("image `{name}`: {detail}"),
            quarantined,
        });
    }
    // A snapshot is compared with a sound blob only (a corrupt one is reported already).
    let bad: BTreeSet<PathBuf> = report
        .problems
        .iter()
        .filter(|p| p.kind == EntryKind::Blob)
        .map(|p| p.path.clone())
        .collect();
    for id in store.snapshots()? {
        let Some(blob) = layers
            .get(&id)
            .filter(|b| store.has_blob(b) && !bad.contains(&store.blob_path(b)))
        else {
            continue;
        };
        snapshots += 1;
        let path = store.snapshot_path(&id);
        if let Some(detail) = compare(store, blob, &path)? {
            snapshot_problems.push(snapshot_problem(store, path, detail, repair)?);
        }
    }
    report.problems.extend(snapshot_problems);
    Ok(Checked { report, snapshots })
}

/// A bad snapshot, quarantined with `repair`.
fn snapshot_problem(
    store: &LocalStore,
    path: PathBuf,
    detail: String,
    repair: bool,
) -> anyhow::Result<Problem> {
    let quarantined = if repair {
        store.quarantine(&path)?
    } else {
        None
    };
    Ok(Problem {
        kind: EntryKind::Snapshot,
        path,
        detail,
        quarantined,
    })
}

/// Why the image `manifest` cannot be used, if it cannot: its manifest or config unreadable, or
/// a layer blob missing (foreign layers, served from their URLs, aside).
fn image_problem(store: &LocalStore, manifest: &Digest) -> Option<String> {
    match StoredImage::load(store, manifest) {
        Err(e) => Some(crate::error_line(&e)),
        Ok(image) => image
            .layer_records()
            .iter()
            .find(|l| l.urls.is_empty() && !has_layer(store, l))
            .map(|l| format!("its layer {} is not in the store", l.digest)),
    }
}

/// Whether the content of `layer` is in the store: its blob, or a plain layer's snapshot.
fn has_layer(store: &LocalStore, layer: &LayerRecord) -> bool {
    store.has_blob(&layer.digest)
        || (layer.is_plain() && store.snapshot_path(&layer.diff_id).is_dir())
}

/// The layer blob of every diff id named by a readable stage record or tagged image.
fn layer_blobs(store: &LocalStore) -> anyhow::Result<BTreeMap<Digest, Digest>> {
    let mut layers = BTreeMap::new();
    for (_, record) in store.stage_entries()? {
        for layer in record.iter().flat_map(|r| &r.layers) {
            layers.insert(layer.diff_id, layer.digest);
        }
    }
    for (_, tag) in store.tag_entries()? {
        let Ok((_, target)) = tag else { continue };
        if let Ok(image) = StoredImage::load(store, &target.manifest) {
            for layer in image.layer_records() {
                layers.insert(layer.diff_id, layer.digest);
            }
        }
    }
    Ok(layers)
}

/// Why the snapshot `dir` of the plain layer `id` is not that layer, if it is not.
fn plain_problem(id: &Digest, dir: &Path) -> anyhow::Result<Option<String>> {
    let written = strata_layer::write_layer(dir, strata_layer::Compression::None, &mut io::sink())
        .with_context(|| format!("write {} as a tar", dir.display()))?;
    Ok((written.diff_id != *id).then(|| {
        format!(
            "it is corrupt: its tar hashes to {}, not to its layer's diff id (it has no other copy)",
            written.diff_id
        )
    }))
}

/// What a path of a layer must be in its snapshot.
enum Expected {
    File {
        size: u64,
        digest: Digest,
    },
    Dir,
    Symlink(PathBuf),
    Whiteout,
    /// Hard links, devices, fifos: present, of whatever kind.
    Present,
}

/// Why the snapshot `dir` does not hold what the layer blob `blob` does; `None` if it does.
fn compare(store: &LocalStore, blob: &Digest, dir: &Path) -> anyhow::Result<Option<String>> {
    let reader = store.open_blob(blob)?;
    let tar = strata_layer::decompressed(reader)?;
    let mut archive = strata_layer::bounded::archive(tar);
    let mut expected = BTreeMap::new();
    let mut opaque = BTreeSet::new();
    let read = |e: io::Error| anyhow::Error::new(e).context(format!("read layer {blob}"));
    for entry in strata_layer::bounded::entries(&mut archive)? {
        let mut entry = entry?;
        let Some(path) = normalize(&entry.path_bytes()) else {
            continue;
        };
        let (parent, name) = match path.iter().rposition(|&b| b == b'/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => (&path[..0], &path[..]),
        };
        use strata_layer::whiteout::{OciName, classify};
        let joined = |n: &[u8]| {
            let mut p = parent.to_vec();
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(n);
            p
        };
        let want = match classify(name) {
            OciName::Opaque => {
                opaque.insert(parent.to_vec());
                continue;
            }
            OciName::Meta => continue,
            OciName::Whiteout(hidden) => {
                expected.insert(joined(hidden), Expected::Whiteout);
                continue;
            }
            OciName::Plain => match entry.header().entry_type() {
                // The applier takes a "regular file" named `x/` for a directory.
                tar::EntryType::Regular if entry.path_bytes().ends_with(b"/") => Expected::Dir,
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let mut hashing = HashingReader::new(&mut entry);
                    io::copy(&mut hashing, &mut io::sink()).map_err(read)?;
                    let (digest, size) = hashing.finish();
                    Expected::File { size, digest }
                }
                tar::EntryType::Directory => Expected::Dir,
                // A rootless applier cannot make device nodes and skips them
                // (strata_layer::apply, "In a user namespace").
                tar::EntryType::Char | tar::EntryType::Block
                    if strata_layer::whiteout::Xattrs::of_this_process()
                        == strata_layer::whiteout::Xattrs::User =>
                {
                    continue;
                }
                tar::EntryType::Symlink => {
                    let target = entry.link_name().map_err(read)?.unwrap_or_default();
                    Expected::Symlink(target.into_owned())
                }
                _ => Expected::Present,
            },
        };
        expected.insert(path, want);
    }
    let shown = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
    for (raw, want) in &expected {
        let path = shown(raw);
        let on_disk = dir.join(std::ffi::OsStr::from_bytes(raw));
        let meta = match std::fs::symlink_metadata(&on_disk) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Some(format!("`/{path}` of layer {blob} is missing")));
            }
            Err(e) => return Err(e).with_context(|| format!("stat {}", on_disk.display())),
        };
        let wrong = match want {
            Expected::File { size, digest } => {
                !meta.is_file() || meta.len() != *size || hash(&on_disk)? != *digest
            }
            Expected::Dir => !meta.is_dir(),
            Expected::Symlink(target) => {
                !meta.file_type().is_symlink()
                    || std::fs::read_link(&on_disk)
                        .with_context(|| format!("read link {}", on_disk.display()))?
                        .as_os_str()
                        .as_bytes()
                        != target.as_os_str().as_bytes()
            }
            Expected::Whiteout => !strata_layer::whiteout::is_overlay_whiteout(&meta),
            Expected::Present => false,
        };
        if wrong {
            return Ok(Some(format!(
                "`/{path}` differs from layer {blob}'s (type, size or content)"
            )));
        }
    }
    for raw in opaque {
        let path = shown(&raw);
        let on_disk = dir.join(std::ffi::OsStr::from_bytes(&raw));
        if !strata_layer::whiteout::is_overlay_opaque(&on_disk)
            .with_context(|| format!("read the opaque xattr of {}", on_disk.display()))?
        {
            return Ok(Some(format!("`/{path}` of layer {blob} is not opaque")));
        }
    }
    Ok(None)
}

/// A tar path without `./`, leading or doubled `/`; `None` for the root or a path with `..`.
fn normalize(raw: &[u8]) -> Option<Vec<u8>> {
    let parts: Vec<&[u8]> = raw
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    if parts.is_empty() || parts.contains(&&b".."[..]) {
        return None;
    }
    Some(parts.join(&b'/'))
}

fn hash(path: &Path) -> anyhow::Result<Digest> {
    let file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut hashing = HashingReader::new(file);
    io::copy(&mut hashing, &mut io::sink()).with_context(|| format!("read {}", path.display()))?;
    Ok(hashing.finish().0)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn tar_paths_are_normalized() {
        assert_eq!(
            normalize(b"./etc//passwd").as_deref(),
            Some(&b"etc/passwd"[..])
        );
        assert_eq!(normalize(b"./"), None);
        assert_eq!(normalize(b"a/../b"), None);
    }
}
