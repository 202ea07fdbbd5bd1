//! Where a Dockerfile build's result goes besides the store (docker's `-o/--output`): the
//! target's file system as a directory or a tarball, or the image as an OCI or docker archive.

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
        /// The layout, its names and layers.
        options: ExportOptions,
        /// Where it goes; `None`: `docker load`.
        dest: Option<ArchiveDest>,
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
    },
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

/// The options each `type=` takes besides `type` and `dest`.
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
        ],
    ),
    ("docker", &["name", "oci-mediatypes"]),
    (
        "image",
        &[
            "name",
            "push",
            "compression",
            "force-compression",
            "oci-mediatypes",
        ],
    ),
    (
        "registry",
        &[
            "name",
            "push",
            "compression",
            "force-compression",
            "oci-mediatypes",
        ],
    ),
];

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
        for field in fields(s) {
            let Some((key, value)) = field.split_once('=') else {
                anyhow::bail!("-o {s}: `{field}` is no KEY=VALUE");
            };
            match key {
                "type" => kind = Some(value.to_string()),
                "dest" => dest = Some(value.to_string()),
                _ => values.push((key.to_string(), value.to_string())),
            }
        }
        let kind = kind.with_context(|| {
            format!("-o {s}: no type= (local, tar, oci, docker, image or registry)")
        })?;
        let Some((_, allowed)) = OPTIONS.iter().find(|(k, _)| *k == kind) else {
            anyhow::bail!(
                "-o {s}: strata has no `{kind}` exporter; expected local, tar, oci, docker, image or registry"
            );
        };
        if let Some((key, _)) = values.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            anyhow::bail!(
                "-o {s}: type={kind} has no option `{key}`; it takes dest{}",
                allowed.iter().map(|a| format!(", {a}")).collect::<String>()
            );
        }
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
        Ok(match kind.as_str() {
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
                    },
                    dest,
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
                Output::Image {
                    names,
                    push: flag("push", kind == "registry")?,
                    compression,
                    oci_media_types: flag(
                        "oci-mediatypes",
                        compression == Some(Compression::Zstd),
                    )?,
                }
            }
        })
    }
}

/// Writes the image tagged `reference` to `output`; `compression` is the build's for pushes.
pub fn write(
    ctx: &Context,
    reference: &str,
    output: &Output,
    compression: Compression,
) -> anyhow::Result<()> {
    match output {
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
            dest: Some(ArchiveDest::Tar(dest)),
        } => to(dest, |out| {
            export::export_to(ctx, reference, options, export::Target::Tar(out))
        }),
        Output::Archive {
            options,
            dest: Some(ArchiveDest::Dir(dir)),
        } => export::export_to(ctx, reference, options, export::Target::Dir(dir))
            .with_context(|| format!("-o: write the OCI layout {}", dir.display())),
        Output::Archive {
            options,
            dest: None,
        } => export::load_into_with(ctx, reference, export::Engine::Docker, options).map(drop),
        Output::Image {
            names,
            push,
            compression: pushed,
            oci_media_types,
        } => {
            for name in names {
                super::images::tag(ctx, reference, name)?;
                if *push {
                    let format = match oci_media_types {
                        true => strata_registry::ManifestFormat::Oci,
                        false => strata_registry::ManifestFormat::DockerV2,
                    };
                    super::push::push(
                        ctx,
                        name,
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
