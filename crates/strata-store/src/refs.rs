//! JSON records: the stage index (`stages/<hex>.json`), tags (`tags/<escaped>.json`) and layer
//! conversions (`converted/<hex>.<kind>.json`: the same layer in another compression).
//!
//! Both are small files read whole with one `read(2)` — [`stage`] and [`tag`] sit on the hot
//! path of a fully cached rebuild. Both are written to a temp file in an owned `ingest/` entry
//! and fsynced first, then published:
//!
//! - a stage record with `link(2)`, which fails when the target exists, so the first writer wins
//!   and nobody ever sees a half-written record; the one exception is [`replace_stage`], with
//!   `rename(2)`, for a record its caller found unusable (a stage whose git history does not
//!   fit the build's), so readers see the old record or the new one;
//! - a tag with `rename(2)`, which atomically replaces the previous target.
//!
//! Tag names (`registry.local:5000/team/app:v1`) are escaped into one file name
//! (`registry.local%3A5000%2Fteam%2Fapp%3Av1.json`), or hashed when too long; the file also holds
//! the name, so [`tags`] never has to reverse the mapping.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use strata_digest::Digest;

use crate::fsutil::{self, io};
use crate::ingest::IngestDir;
use crate::{
    ConversionEntry, Error, LayerRecord, LocalStore, PutOutcome, StageEntry, StageRecord, TagEntry,
    TagTarget,
};

/// What a tag file holds: the name too, since long names are stored under a hash.
#[derive(Serialize, Deserialize)]
struct TagFile {
    name: String,
    target: TagTarget,
}

fn stage_path(store: &LocalStore, digest: &Digest) -> PathBuf {
    store.dir("stages").join(format!("{}.json", digest.hex()))
}

fn tag_path(store: &LocalStore, name: &str) -> Result<PathBuf, Error> {
    let stem = fsutil::name_stem("tag name", name)?;
    Ok(store.dir("tags").join(format!("{stem}.json")))
}

/// Reads a whole small file; `None` if it does not exist.
pub(crate) fn read_optional(path: &Path, op: &'static str) -> Result<Option<Vec<u8>>, Error> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(op, path)(e)),
    }
}

pub(crate) fn parse<T: for<'de> Deserialize<'de>>(
    path: &Path,
    bytes: &[u8],
    what: &str,
) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        detail: format!("not a valid {what} ({e})"),
    })
}

/// Writes `bytes` to a new file and makes it durable before anyone can see it.
pub(crate) fn write_durable(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let mut file = File::create_new(path).map_err(io("creation of temp record", path))?;
    file.write_all(bytes)
        .map_err(io("write of temp record", path))?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io("chmod of temp record", path))?;
    file.sync_all().map_err(io("fsync of temp record", path))
}

fn read_stage_file(path: &Path, digest: &Digest) -> Result<Option<StageRecord>, Error> {
    let Some(bytes) = read_optional(path, "read of stage record")? else {
        return Ok(None);
    };
    let record: StageRecord = parse(path, &bytes, "stage record")?;
    if record.digest != *digest {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            detail: format!("it holds the record of stage {}", record.digest),
        });
    }
    Ok(Some(record))
}

pub(crate) fn stage(store: &LocalStore, digest: &Digest) -> Result<Option<StageRecord>, Error> {
    read_stage_file(&stage_path(store, digest), digest)
}

pub(crate) fn put_stage(store: &LocalStore, record: &StageRecord) -> Result<PutOutcome, Error> {
    let target = stage_path(store, &record.digest);
    if let Some(existing) = read_stage_file(&target, &record.digest)? {
        return Ok(PutOutcome::AlreadyExists(existing));
    }
    let json = serde_json::to_vec_pretty(record)
        .expect("serializing a StageRecord cannot fail because all its map keys are strings");
    // Held before it is published, so gc cannot take it before the build tags its image.
    store.protect(&[crate::Held::Stage(record.digest)])?;
    let tmp = IngestDir::create(store)?;
    let file = tmp.path().join("stage.json");
    // Records never change once published: read-only like blobs.
    write_durable(&file, &json, 0o444)?;
    // A record can vanish between a failed link and our read (a concurrent prune); try again.
    for _ in 0..3 {
        match fs::hard_link(&file, &target) {
            Ok(()) => {
                fsutil::fsync_dir(&store.dir("stages"))?;
                return Ok(PutOutcome::Inserted);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if let Some(existing) = read_stage_file(&target, &record.digest)? {
                    return Ok(PutOutcome::AlreadyExists(existing));
                }
            }
            Err(e) => return Err(io("link into stages/ of temp record", &file)(e)),
        }
    }
    Err(io("link into stages/ of temp record", &file)(
        io::Error::other("the existing record kept disappearing; is a prune running?"),
    ))
}

pub(crate) fn replace_stage(
    store: &LocalStore,
    record: &StageRecord,
    replaced: &StageRecord,
) -> Result<PutOutcome, Error> {
    let target = stage_path(store, &record.digest);
    match read_stage_file(&target, &record.digest)? {
        Some(current) if current == *replaced => {}
        Some(current) => return Ok(PutOutcome::AlreadyExists(current)),
        None => return put_stage(store, record),
    }
    let json = serde_json::to_vec_pretty(record)
        .expect("serializing a StageRecord cannot fail because all its map keys are strings");
    let tmp = IngestDir::create(store)?;
    let file = tmp.path().join("stage.json");
    write_durable(&file, &json, 0o444)?;
    fs::rename(&file, &target).map_err(io("rename into stages/ of temp record", &file))?;
    fsutil::fsync_dir(&store.dir("stages"))?;
    Ok(PutOutcome::Inserted)
}

/// Every file in `stages/` named like a record, with its record or why it cannot be read.
pub(crate) fn stage_entries(store: &LocalStore) -> Result<Vec<(PathBuf, StageEntry)>, Error> {
    let dir = store.dir("stages");
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).map_err(io("listing of", &dir))? {
        let entry = entry.map_err(io("listing of", &dir))?;
        let name = entry.file_name();
        let Some(digest) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|hex| Digest::from_hex(hex).ok())
        else {
            continue;
        };
        let path = entry.path();
        // A record removed since the listing (gc) is simply gone.
        match read_stage_file(&path, &digest) {
            Ok(Some(record)) => out.push((path, Ok(record))),
            Ok(None) => {}
            Err(e) => out.push((path, Err(e))),
        }
    }
    Ok(out)
}

pub(crate) fn stages(store: &LocalStore) -> Result<Vec<StageRecord>, Error> {
    stage_entries(store)?.into_iter().map(|(_, r)| r).collect()
}

pub(crate) fn tag(store: &LocalStore, name: &str) -> Result<Option<TagTarget>, Error> {
    let path = tag_path(store, name)?;
    let Some(bytes) = read_optional(&path, "read of tag")? else {
        return Ok(None);
    };
    let file: TagFile = parse(&path, &bytes, "tag file")?;
    if file.name != name {
        return Err(Error::Corrupt {
            path,
            detail: format!("it holds tag `{}`, not `{name}`", file.name),
        });
    }
    Ok(Some(file.target))
}

pub(crate) fn set_tag(store: &LocalStore, name: &str, target: &TagTarget) -> Result<(), Error> {
    let path = tag_path(store, name)?;
    let json = serde_json::to_vec_pretty(&TagFile {
        name: name.to_string(),
        target: target.clone(),
    })
    .expect("serializing a tag cannot fail because it has no maps with non-string keys");
    let tmp = IngestDir::create(store)?;
    let file = tmp.path().join("tag.json");
    write_durable(&file, &json, 0o644)?;
    fs::rename(&file, &path).map_err(io("rename into tags/ of temp tag", &file))?;
    fsutil::fsync_dir(&store.dir("tags"))
}

/// Every file in `tags/`, with its tag or why it cannot be read, sorted by tag name (the
/// unreadable ones last, by path).
pub(crate) fn tag_entries(store: &LocalStore) -> Result<Vec<(PathBuf, TagEntry)>, Error> {
    let dir = store.dir("tags");
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).map_err(io("listing of", &dir))? {
        let entry = entry.map_err(io("listing of", &dir))?;
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        // A tag removed since the listing is simply gone.
        match read_optional(&path, "read of tag") {
            Ok(Some(bytes)) => {
                let tag = parse::<TagFile>(&path, &bytes, "tag file").map(|f| (f.name, f.target));
                out.push((path, tag));
            }
            Ok(None) => {}
            Err(e) => out.push((path, Err(e))),
        }
    }
    out.sort_by(|a, b| match (&a.1, &b.1) {
        (Ok(x), Ok(y)) => x.0.cmp(&y.0),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.0.cmp(&b.0),
    });
    Ok(out)
}

pub(crate) fn tags(store: &LocalStore) -> Result<Vec<(String, TagTarget)>, Error> {
    tag_entries(store)?.into_iter().map(|(_, t)| t).collect()
}

pub(crate) fn remove_tag(store: &LocalStore, name: &str) -> Result<bool, Error> {
    remove_record(store, "tags", &tag_path(store, name)?, "removal of tag")
}

/// Removes the record file `path` of the store's dir `dir` (durably); false if it was not there.
pub(crate) fn remove_record(
    store: &LocalStore,
    dir: &str,
    path: &Path,
    op: &'static str,
) -> Result<bool, Error> {
    match fs::remove_file(path) {
        Ok(()) => {
            fsutil::fsync_dir(&store.dir(dir))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(op, path)(e)),
    }
}

fn converted_path(store: &LocalStore, source: &Digest, kind: &str) -> Result<PathBuf, Error> {
    let stem = fsutil::name_stem("conversion kind", kind)?;
    Ok(store
        .dir("converted")
        .join(format!("{}.{stem}.json", source.hex())))
}

/// What a conversion file holds: the source too, so a file under the wrong name is caught.
#[derive(Serialize, Deserialize)]
struct ConvertedFile {
    source: Digest,
    kind: String,
    layer: LayerRecord,
}

pub(crate) fn converted_layer(
    store: &LocalStore,
    source: &Digest,
    kind: &str,
) -> Result<Option<LayerRecord>, Error> {
    let path = converted_path(store, source, kind)?;
    let Some(bytes) = read_optional(&path, "read of layer conversion")? else {
        return Ok(None);
    };
    let file: ConvertedFile = parse(&path, &bytes, "layer conversion record")?;
    if file.source != *source || file.kind != kind {
        return Err(Error::Corrupt {
            path,
            detail: format!("it records the {} conversion of {}", file.kind, file.source),
        });
    }
    Ok(Some(file.layer))
}

/// Every conversion record: the source blob, its conversion, or why the file cannot be read.
pub(crate) fn conversion_entries(
    store: &LocalStore,
) -> Result<Vec<(PathBuf, ConversionEntry)>, Error> {
    let dir = store.dir("converted");
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).map_err(io("listing of", &dir))? {
        let entry = entry.map_err(io("listing of", &dir))?;
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        match read_optional(&path, "read of layer conversion") {
            Ok(Some(bytes)) => {
                let file = parse::<ConvertedFile>(&path, &bytes, "layer conversion record");
                out.push((path, file.map(|f| (f.source, f.layer))));
            }
            Ok(None) => {}
            Err(e) => out.push((path, Err(e))),
        }
    }
    Ok(out)
}

pub(crate) fn put_converted_layer(
    store: &LocalStore,
    source: &Digest,
    kind: &str,
    layer: &LayerRecord,
) -> Result<(), Error> {
    let path = converted_path(store, source, kind)?;
    let json = serde_json::to_vec_pretty(&ConvertedFile {
        source: *source,
        kind: kind.to_string(),
        layer: layer.clone(),
    })
    .expect("serializing a conversion record cannot fail because it has no maps");
    let tmp = IngestDir::create(store)?;
    let file = tmp.path().join("converted.json");
    write_durable(&file, &json, 0o444)?;
    // Any complete record is right (two converters made equivalent blobs): replacing is fine.
    fs::rename(&file, &path).map_err(io("rename into converted/ of temp record", &file))?;
    fsutil::fsync_dir(&store.dir("converted"))
}

fn unpublished_path(store: &LocalStore, stage: &Digest, repository: &str) -> PathBuf {
    store.dir("unpublished").join(format!(
        "{}.{}",
        stage.hex(),
        Digest::of(repository.as_bytes()).short(16)
    ))
}

pub(crate) fn note_unpublished(
    store: &LocalStore,
    stage: &Digest,
    repository: &str,
) -> Result<(), Error> {
    let path = unpublished_path(store, stage, repository);
    let tmp = IngestDir::create(store)?;
    let file = tmp.path().join("unpublished");
    write_durable(&file, repository.as_bytes(), 0o444)?;
    fs::rename(&file, &path).map_err(io("rename into unpublished/ of temp note", &file))?;
    fsutil::fsync_dir(&store.dir("unpublished"))
}

pub(crate) fn unpublished(store: &LocalStore, repository: &str) -> Result<Vec<Digest>, Error> {
    let dir = store.dir("unpublished");
    let mut noted = Vec::new();
    for name in fsutil::list_names(&dir, "listing of")? {
        let Some(stage) = name
            .split_once('.')
            .and_then(|(hex, _)| Digest::from_hex(hex).ok())
        else {
            continue;
        };
        let path = dir.join(&name);
        if unpublished_path(store, &stage, repository) != path {
            continue;
        }
        // A note removed meanwhile (published by another build) is not there any more.
        if let Ok(meta) = fs::metadata(&path) {
            noted.push((meta.modified().ok(), stage));
        }
    }
    noted.sort();
    Ok(noted.into_iter().map(|(_, stage)| stage).collect())
}

pub(crate) fn published(store: &LocalStore, stage: &Digest, repository: &str) -> Result<(), Error> {
    let path = unpublished_path(store, stage, repository);
    remove_record(store, "unpublished", &path, "removal of unpublished note").map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use std::collections::BTreeMap;

    fn record(digest: Digest) -> StageRecord {
        StageRecord {
            digest,
            parent: None,
            manifest: Digest::of(b"m"),
            config: Digest::of(b"c"),
            layers: vec![],
            inputs: vec![],
            image: "app".into(),
            stage: "install".into(),
            created_unix: 1,
            build_millis: 2,
            meta: BTreeMap::new(),
        }
    }

    #[test]
    fn truncated_stage_record_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let d = Digest::of(b"stage");
        assert_eq!(store.put_stage(&record(d)).unwrap(), PutOutcome::Inserted);
        let path = stage_path(&store, &d);
        let full = fs::read(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&path, &full[..full.len() / 2]).unwrap();
        let err = store.stage(&d).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { path: p, .. } if *p == path),
            "{err}"
        );
        assert!(err.to_string().contains(&d.hex()), "{err}");
        assert!(store.stages().is_err());
    }

    #[test]
    fn record_under_wrong_name_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        store.put_stage(&record(a)).unwrap();
        fs::copy(stage_path(&store, &a), stage_path(&store, &b)).unwrap();
        assert!(matches!(store.stage(&b), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn stage_records_are_read_only_and_temp_files_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let d = Digest::of(b"x");
        store.put_stage(&record(d)).unwrap();
        let mode = fs::metadata(stage_path(&store, &d))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o444);
        assert_eq!(fs::read_dir(store.dir("ingest")).unwrap().count(), 0);
        store
            .set_tag(
                "t",
                &TagTarget {
                    manifest: d,
                    stage: None,
                    updated_unix: 0,
                },
            )
            .unwrap();
        assert_eq!(fs::read_dir(store.dir("ingest")).unwrap().count(), 0);
    }

    #[test]
    fn tag_files_are_escaped_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let t = TagTarget {
            manifest: Digest::of(b"m"),
            stage: None,
            updated_unix: 3,
        };
        store
            .set_tag("registry.local:5000/team/app:v1", &t)
            .unwrap();
        assert!(
            store
                .dir("tags/registry.local%3A5000%2Fteam%2Fapp%3Av1.json")
                .is_file()
        );
        let long = format!("registry.local/{}:v1", "x".repeat(300));
        store.set_tag(&long, &t).unwrap();
        assert_eq!(store.tag(&long).unwrap(), Some(t.clone()));
        let names: Vec<_> = store.tags().unwrap().into_iter().map(|(n, _)| n).collect();
        // Sorted by name: `/` sorts before `:`.
        assert_eq!(
            names,
            vec![long, "registry.local:5000/team/app:v1".to_string()]
        );
        assert!(matches!(store.tag(""), Err(Error::InvalidName { .. })));
    }
}
