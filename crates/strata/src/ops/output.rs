//! Where a Dockerfile build's result goes besides the store (docker's `-o/--output`): the
//! target's file system as a directory or a tarball, or the image as an OCI or docker archive.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use strata_layer::Compression;

use super::export::{self, ExportFormat, ExportOptions};
use crate::Context;
use crate::image::{self, StoredImage};

/// One `-o type=...,dest=...[,OPTION=VALUE...]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// `type=local,dest=DIR` (and `-o DIR`): the file system, into a directory; with
    /// `platform-split=true`, into `DIR/OS_ARCH` (BuildKit's split of a multi-platform build,
    /// of this machine's one platform here).
    Local(PathBuf),
    /// `type=tar,dest=FILE`: the file system as one tarball.
    Tar(Destination),
    /// `type=oci` or `type=docker`: the image as an archive (without `dest`, `type=docker`
    /// is loaded into docker).
    Archive {
        /// The layout, its names, layers and annotations.
        options: ExportOptions,
        /// Where it goes; `None`: `docker load`.
        dest: Option<ArchiveDest>,
        /// `rewrite-timestamp=true`: the file times of the layers strata made clamped to
        /// `SOURCE_DATE_EPOCH` (none: exported as built).
        rewrite_timestamp: bool,
    },
    /// `type=image,name=REF[,push=true]`, `type=registry,name=REF`: the image tagged `REF`
    /// in the store, and pushed there when `push`.
    Image {
        /// The names (`name=a,b` in quotes, or repeated).
        names: Vec<String>,
        /// `push=true` (`type=registry`).
        push: bool,
        /// The compression of the pushed layers (`compression=`); none: the build's.
        compression: Option<Compression>,
        /// `oci-mediatypes=true`: OCI media types in the pushed manifest (else Docker's, as
        /// BuildKit's image exporter, unless the layers are zstd, which only OCI names).
        oci_media_types: bool,
        /// `store=false`: the names are not tagged in the store, only pushed (BuildKit's
        /// image exporter then leaves its image store alone).
        store: bool,
        /// `unpack=true`: every layer of the image is unpacked into the store's snapshots
        /// now (BuildKit's unpack into containerd's snapshotter), not when first run.
        unpack: bool,
        /// Added to the manifest's annotations (`annotation.KEY=VALUE`).
        manifest_annotations: BTreeMap<String, String>,
        /// `rewrite-timestamp=true`, as for [`Output::Archive`].
        rewrite_timestamp: bool,
    },
    /// `type=cacheonly`: the build runs and fills the cache; nothing is exported.
    CacheOnly,
}

/// Where an archive is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArchiveDest {
    /// A tarball (`dest=FILE` or `dest=-`).
    Tar(Destination),
    /// An OCI layout directory (`tar=false,dest=DIR`).
    Dir(PathBuf),
}

/// Where a tarball is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// `dest=-`.
    Stdout,
    /// A file.
    File(PathBuf),
}

/// The options each `type=` takes besides `type`, `dest` and (for the exporters that write a
/// manifest, [`takes_annotations`]) `annotation*`. `buildinfo` and `buildinfo-attrs` are
/// BuildKit's removed build information (v0.12): its exporters take and ignore them now.
const OPTIONS: &[(&str, &[&str])] = &[
    ("local", &["platform-split"]),
    ("tar", &["platform-split"]),
    (
        "oci",
        &[
            "name",
            "tar",
            "compression",
            "compression-level",
            "force-compression",
            "oci-mediatypes",
            "rewrite-timestamp",
            "buildinfo",
            "buildinfo-attrs",
        ],
    ),
    (
        "docker",
        &[
            "name",
            "oci-mediatypes",
            "rewrite-timestamp",
            "buildinfo",
            "buildinfo-attrs",
        ],
    ),
    (
        "image",
        &[
            "name",
            "push",
            "store",
            "unpack",
            "compression",
            "force-compression",
            "oci-mediatypes",
            "rewrite-timestamp",
            "buildinfo",
            "buildinfo-attrs",
        ],
    ),
    (
        "registry",
        &[
            "name",
            "push",
            "store",
            "unpack",
            "compression",
            "force-compression",
            "oci-mediatypes",
            "rewrite-timestamp",
            "buildinfo",
            "buildinfo-attrs",
        ],
    ),
    ("cacheonly", &[]),
];

/// Whether the exporter `kind` writes an image manifest, so takes `annotation*` options (the
/// docker archive's `manifest.json` has no place for them: it is refused there by name).
fn takes_annotations(kind: &str) -> bool {
    matches!(kind, "oci" | "docker" | "image" | "registry")
}

/// Where BuildKit puts an `annotation-TYPE.KEY` (`exptypes.AnnotationKey`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AnnotationPlace {
    /// `annotation.KEY`, `annotation-manifest.KEY`: the image manifest.
    Manifest,
    /// `annotation-manifest-descriptor.KEY`: the manifest's descriptor (in an index).
    ManifestDescriptor,
    /// `annotation-index.KEY`, `annotation-index-descriptor.KEY`: a multi-platform image's
    /// index, which strata (one platform, no attestations) never writes.
    Index,
}

/// An `annotation[-TYPE][[PLATFORM]].KEY` option, read as BuildKit's
/// `exptypes.ParseAnnotationKey` (`^annotation(?:-([a-z-]+))?(?:\[([A-Za-z0-9_/-]+)\])?\.(\S+)$`):
/// `None` when `option` is no annotation (then it is an option like any other), else its
/// place and key, or why it is refused.
fn annotation(option: &str) -> Option<Result<(AnnotationPlace, String), String>> {
    let rest = option.strip_prefix("annotation")?;
    let (kind, rest) = match rest.strip_prefix('-') {
        Some(rest) => {
            let end = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c == '-'))
                .unwrap_or(rest.len());
            (Some(&rest[..end]), &rest[end..])
        }
        None => (None, rest),
    };
    let (platform, rest) = match rest.strip_prefix('[') {
        Some(rest) => {
            let (platform, rest) = rest.split_once(']')?;
            let valid = !platform.is_empty()
                && platform
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_/-".contains(c));
            if !valid {
                return None;
            }
            (Some(platform), rest)
        }
        None => (None, rest),
    };
    let key = rest.strip_prefix('.')?;
    if key.is_empty() || key.chars().any(char::is_whitespace) || kind == Some("") {
        return None;
    }
    let place = match kind {
        None | Some("manifest") => AnnotationPlace::Manifest,
        Some("manifest-descriptor") => AnnotationPlace::ManifestDescriptor,
        Some("index" | "index-descriptor") => AnnotationPlace::Index,
        Some(other) => {
            return Some(Err(format!(
                "unrecognized annotation type `{other}` (BuildKit's are manifest, manifest-descriptor, index and index-descriptor)"
            )));
        }
    };
    if let Some(platform) = platform {
        let host = format!("linux/{}", strata_registry::oci::host_architecture());
        if platform != host {
            return Some(Err(format!(
                "the build has no platform {platform}: strata builds this machine's ({host}), whose manifest `annotation[{host}].KEY` names"
            )));
        }
    }
    Some(Ok((place, key.to_string())))
}

/// The fields of buildx's CSV: split at commas outside double quotes, the quotes removed.
fn fields(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            c => out.last_mut().expect("one field at least").push(c),
        }
    }
    out
}

impl std::str::FromStr for Output {
    type Err = anyhow::Error;

    /// buildx's syntax: `type=T,dest=D,KEY=VALUE...` (`-` for stdout; a value with commas in
    /// double quotes), a bare `DIR` for `type=local`, a bare `-` for `type=tar` on stdout.
    fn from_str(s: &str) -> anyhow::Result<Output> {
        if s == "-" {
            return Ok(Output::Tar(Destination::Stdout));
        }
        if !s.contains('=') {
            return Ok(Output::Local(PathBuf::from(s)));
        }
        let mut kind = None;
        let mut dest = None;
        let mut values: Vec<(String, String)> = Vec::new();
        let mut annotations: Vec<(AnnotationPlace, String, String)> = Vec::new();
        for field in fields(s) {
            let Some((key, value)) = field.split_once('=') else {
                anyhow::bail!("-o {s}: `{field}` is no KEY=VALUE");
            };
            match key {
                "type" => kind = Some(value.to_string()),
                "dest" => dest = Some(value.to_string()),
                _ => match annotation(key) {
                    Some(Ok((place, name))) => annotations.push((place, name, value.to_string())),
                    Some(Err(why)) => anyhow::bail!("-o {s}: {key}: {why}"),
                    None => values.push((key.to_string(), value.to_string())),
                },
            }
        }
        let kind = kind.with_context(|| {
            format!("-o {s}: no type= (local, tar, oci, docker, image, registry or cacheonly)")
        })?;
        let Some((_, allowed)) = OPTIONS.iter().find(|(k, _)| *k == kind) else {
            anyhow::bail!(
                "-o {s}: strata has no `{kind}` exporter; expected local, tar, oci, docker, image, registry or cacheonly"
            );
        };
        let unknown = values
            .iter()
            .map(|(k, _)| k.as_str())
            .find(|k| !allowed.contains(k))
            .or_else(|| {
                (!takes_annotations(&kind) && !annotations.is_empty()).then_some("annotation.*")
            });
        if let Some(key) = unknown {
            let dest = match kind.as_str() {
                "cacheonly" => "nothing",
                _ => "dest",
            };
            anyhow::bail!(
                "-o {s}: type={kind} has no option `{key}`; it takes {dest}{}{}",
                allowed.iter().map(|a| format!(", {a}")).collect::<String>(),
                match takes_annotations(&kind) {
                    true => ", annotation.KEY",
                    false => "",
                }
            );
        }
        if annotations
            .iter()
            .any(|(place, ..)| *place == AnnotationPlace::Index)
        {
            anyhow::bail!(
                "-o {s}: index annotations not supported for single platform export (BuildKit's words): strata builds one platform and writes no image index; use annotation.KEY or annotation-manifest-descriptor.KEY"
            );
        }
        let placed = |place: AnnotationPlace| -> BTreeMap<String, String> {
            annotations
                .iter()
                .filter(|(p, ..)| *p == place)
                .map(|(_, k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let manifest_annotations = placed(AnnotationPlace::Manifest);
        let descriptor_annotations = placed(AnnotationPlace::ManifestDescriptor);
        let get = |key: &str| {
            values
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let flag = |key: &str, default: bool| -> anyhow::Result<bool> {
            match get(key) {
                None => Ok(default),
                Some("true") | Some("") => Ok(true),
                Some("false") => Ok(false),
                Some(v) => anyhow::bail!("-o {s}: {key}={v}: expected true or false"),
            }
        };
        let names: Vec<String> = values
            .iter()
            .filter(|(k, _)| k == "name")
            .flat_map(|(_, v)| v.split(','))
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect();
        let compression = match get("compression") {
            None => None,
            Some("uncompressed") => Some(Compression::None),
            Some("gzip") => Some(Compression::Gzip),
            Some("zstd") => Some(Compression::Zstd),
            Some("estargz") => anyhow::bail!(
                "-o {s}: strata writes no eStargz layers; use compression=gzip, zstd or uncompressed"
            ),
            Some(v) => {
                anyhow::bail!("-o {s}: compression={v}: expected gzip, zstd or uncompressed")
            }
        };
        let level = match get("compression-level") {
            None => None,
            Some(v) => {
                let top = match compression {
                    Some(Compression::Zstd) => 22,
                    _ => 9,
                };
                Some(v.parse::<u32>().ok().filter(|l| *l <= top).with_context(|| {
                    format!("-o {s}: compression-level={v}: expected a number from 0 to {top} (gzip 0-9, zstd 0-22)")
                })?)
            }
        };
        let destination = |d: &str| match d {
            "-" => Destination::Stdout,
            d => Destination::File(PathBuf::from(d)),
        };
        let needs_dest = || {
            dest.as_deref().with_context(|| {
                format!("-o {s}: this output needs dest=PATH (or dest=- for stdout)")
            })
        };
        let split = flag("platform-split", false)?;
        let platform = |dir: PathBuf| match split {
            true => dir.join(format!(
                "{}_{}",
                std::env::consts::OS,
                strata_registry::oci::host_architecture()
            )),
            false => dir,
        };
        let rewrite_timestamp = flag("rewrite-timestamp", false)?;
        Ok(match kind.as_str() {
            "cacheonly" => {
                anyhow::ensure!(
                    dest.is_none(),
                    "-o {s}: type=cacheonly exports nothing, so it has no dest"
                );
                Output::CacheOnly
            }
            "local" => match needs_dest()? {
                "-" => {
                    anyhow::bail!("-o {s}: type=local writes a directory; use type=tar for stdout")
                }
                d => Output::Local(platform(PathBuf::from(d))),
            },
            "tar" => {
                anyhow::ensure!(
                    !split,
                    "-o {s}: platform-split=true with type=tar puts each platform in a directory of the tarball; strata builds one platform, use platform-split=false"
                );
                Output::Tar(destination(needs_dest()?))
            }
            "oci" | "docker" => {
                let format = match kind.as_str() {
                    "oci" => ExportFormat::Oci,
                    _ => ExportFormat::DockerArchive,
                };
                let oci_media_types = flag("oci-mediatypes", format == ExportFormat::Oci)?;
                if format == ExportFormat::DockerArchive && oci_media_types {
                    anyhow::bail!(
                        "-o {s}: type=docker writes docker save's format, whose manifest.json names no media types; use type=oci for OCI media types"
                    );
                }
                if format == ExportFormat::DockerArchive && !annotations.is_empty() {
                    anyhow::bail!(
                        "-o {s}: type=docker writes docker save's format, which has no image manifest to carry annotations; use type=oci"
                    );
                }
                if !oci_media_types {
                    refuse_docker_annotations(s, &manifest_annotations, &descriptor_annotations)?;
                }
                let dest = match (flag("tar", true)?, dest.as_deref()) {
                    (true, None) if format == ExportFormat::DockerArchive => None,
                    (true, _) => Some(ArchiveDest::Tar(destination(needs_dest()?))),
                    (false, Some("-")) | (false, None) => anyhow::bail!(
                        "-o {s}: tar=false writes an OCI layout directory: give dest=DIR"
                    ),
                    (false, Some(d)) => Some(ArchiveDest::Dir(PathBuf::from(d))),
                };
                Output::Archive {
                    options: ExportOptions {
                        format,
                        names,
                        compression: compression.unwrap_or(Compression::Gzip),
                        compression_level: level,
                        force_compression: flag("force-compression", false)?,
                        docker_media_types: !oci_media_types,
                        manifest_annotations,
                        descriptor_annotations,
                        clamp_times_to: None,
                    },
                    dest,
                    rewrite_timestamp,
                }
            }
            _ => {
                anyhow::ensure!(
                    !names.is_empty(),
                    "-o {s}: type={kind} needs name=REFERENCE (the image's name, pushed to its registry)"
                );
                anyhow::ensure!(
                    dest.is_none(),
                    "-o {s}: type={kind} has no dest (it names the image with name=)"
                );
                let push = flag("push", kind == "registry")?;
                let oci_media_types =
                    flag("oci-mediatypes", compression == Some(Compression::Zstd))?;
                if !descriptor_annotations.is_empty() {
                    match oci_media_types {
                        false => {
                            refuse_docker_annotations(s, &BTreeMap::new(), &descriptor_annotations)?
                        }
                        true => anyhow::bail!(
                            "-o {s}: type={kind} tags and pushes the manifest itself: strata's store and a registry keep no descriptor of it to carry annotation-manifest-descriptor; use annotation.KEY (or type=oci, whose index.json has the descriptor)"
                        ),
                    }
                }
                if push && !oci_media_types {
                    refuse_docker_annotations(s, &manifest_annotations, &BTreeMap::new())?;
                }
                Output::Image {
                    names,
                    push,
                    compression,
                    oci_media_types,
                    store: flag("store", true)?,
                    unpack: flag("unpack", false)?,
                    manifest_annotations,
                    rewrite_timestamp,
                }
            }
        })
    }
}

/// Refuses annotations a manifest with Docker's media types would lose: BuildKit refuses
/// descriptor annotations there ("cannot export annotations with oci-mediatypes=false"), and
/// strata writes Docker's manifest without the OCI-only fields, annotations among them.
fn refuse_docker_annotations(
    s: &str,
    manifest: &BTreeMap<String, String>,
    descriptor: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    if let Some(key) = descriptor.keys().next() {
        anyhow::bail!(
            "-o {s}: annotation-manifest-descriptor.{key}: cannot export annotations with \"oci-mediatypes=false\" (BuildKit's words): add oci-mediatypes=true"
        );
    }
    if let Some(key) = manifest.keys().next() {
        anyhow::bail!(
            "-o {s}: annotation.{key}: Docker's manifest (oci-mediatypes=false) has no annotations, strata writes it without them: add oci-mediatypes=true"
        );
    }
    Ok(())
}

/// The time `rewrite-timestamp=true` clamps to: the build argument `SOURCE_DATE_EPOCH`, else
/// the variable, as buildx passes the variable as the build argument when none is given; a
/// value that is not a number of seconds is none, as BuildKit's `epoch.ParseBuildArgs` drops it.
pub fn source_date_epoch(build_args: &[(String, String)]) -> Option<i64> {
    build_args
        .iter()
        .rev()
        .find(|(name, _)| name == "SOURCE_DATE_EPOCH")
        .map(|(_, value)| value.clone())
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Writes the image tagged `reference` to `output`; `compression` is the build's for pushes,
/// `epoch` the build's [`source_date_epoch`]. What the user should know (a
/// `rewrite-timestamp=true` without an epoch) goes to `progress`.
pub fn write(
    ctx: &Context,
    reference: &str,
    output: &Output,
    compression: Compression,
    epoch: Option<i64>,
    progress: &dyn strata_progress::Sink,
) -> anyhow::Result<()> {
    // BuildKit's exporter exports the layers as they are then (and logs a warning).
    let clamp_to = |rewrite: bool| match (rewrite, epoch) {
        (true, None) => {
            progress.event(strata_progress::Event::Note {
                message: format!(
                    "{reference}: rewrite-timestamp=true, but no SOURCE_DATE_EPOCH (build argument or variable): the layers keep their file times"
                ),
            });
            None
        }
        (true, epoch) => epoch,
        (false, _) => None,
    };
    match output {
        Output::CacheOnly => Ok(()),
        Output::Local(dir) => {
            // The tarball is the one `type=tar` writes, so both give the same tree.
            let scratch = ctx.store.scratch("output")?;
            let tar_path = scratch.path().join("rootfs.tar");
            let mut file = std::fs::File::create(&tar_path)
                .with_context(|| format!("create {}", tar_path.display()))?;
            rootfs_tar(ctx, reference, &mut file)?;
            drop(file);
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            let tar = std::fs::File::open(&tar_path)
                .with_context(|| format!("open {}", tar_path.display()))?;
            strata_layer::apply::apply_tar(tar, dir, strata_layer::apply::Mode::Files)
                .with_context(|| format!("-o: write the file system into {}", dir.display()))?;
            Ok(())
        }
        Output::Tar(dest) => to(dest, |out| rootfs_tar(ctx, reference, out)),
        Output::Archive {
            options,
            dest,
            rewrite_timestamp,
        } => {
            let options = ExportOptions {
                clamp_times_to: clamp_to(*rewrite_timestamp),
                ..options.clone()
            };
            match dest {
                Some(ArchiveDest::Tar(dest)) => to(dest, |out| {
                    export::export_to(ctx, reference, &options, export::Target::Tar(out))
                }),
                Some(ArchiveDest::Dir(dir)) => {
                    export::export_to(ctx, reference, &options, export::Target::Dir(dir))
                        .with_context(|| format!("-o: write the OCI layout {}", dir.display()))
                }
                None => export::load_into_with(ctx, reference, export::Engine::Docker, &options)
                    .map(drop),
            }
        }
        Output::Image {
            names,
            push,
            compression: pushed,
            oci_media_types,
            store,
            unpack,
            manifest_annotations,
            rewrite_timestamp,
        } => {
            let named = image::named(&ctx.store, reference)?
                .with_context(|| format!("no image `{reference}` in the store"))?;
            let mut digest = named.manifest;
            if let Some(epoch) = clamp_to(*rewrite_timestamp) {
                let built = StoredImage::load(&ctx.store, &digest)?;
                digest = image::with_clamped_times(&ctx.store, &built, epoch)?;
            }
            let exported = StoredImage::load(&ctx.store, &digest)?;
            digest = image::with_annotations(&ctx.store, &exported, manifest_annotations)?;
            if *store && *unpack {
                for layer in StoredImage::load(&ctx.store, &digest)?.layer_records() {
                    image::ensure_snapshot(&ctx.store, &layer)?;
                }
            }
            for name in names {
                if *store {
                    super::images::name_manifest(ctx, digest, named.stage, name)?;
                }
                if *push {
                    let format = match oci_media_types {
                        true => strata_registry::ManifestFormat::Oci,
                        false => strata_registry::ManifestFormat::DockerV2,
                    };
                    super::push::push(
                        ctx,
                        &digest.to_string(),
                        name,
                        format,
                        pushed.unwrap_or(compression),
                        Vec::new(),
                    )?;
                }
            }
            Ok(())
        }
    }
}

fn to(
    dest: &Destination,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    match dest {
        Destination::Stdout => write(&mut std::io::stdout().lock()),
        Destination::File(path) => {
            let mut file = std::io::BufWriter::new(
                std::fs::File::create(path)
                    .with_context(|| format!("-o: create {}", path.display()))?,
            );
            write(&mut file)?;
            file.flush()
                .with_context(|| format!("-o: write {}", path.display()))
        }
    }
}

/// The merged file system of the image as one plain tarball, entries in path order with their
/// owners, modes and times (BuildKit's `type=tar`).
fn rootfs_tar(ctx: &Context, reference: &str, out: &mut dyn Write) -> anyhow::Result<()> {
    let digest = image::resolve(&ctx.store, reference)?
        .with_context(|| format!("no image `{reference}` in the store"))?;
    let lowers = StoredImage::load(&ctx.store, &digest)?.lowers(&ctx.store)?;
    let entries =
        strata_layer::merged::walk(&lowers, "/").context("read the image's file system")?;
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    tar.mode(tar::HeaderMode::Complete);
    for entry in entries.iter().filter(|e| !e.path.is_empty()) {
        tar.append_path_with_name(&entry.source, Path::new(&entry.path))
            .with_context(|| format!("add /{} to the tarball", entry.path))?;
    }
    tar.into_inner()
        .context("finish the tarball")?
        .flush()
        .context("flush the tarball")
}
