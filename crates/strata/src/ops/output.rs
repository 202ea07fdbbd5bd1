//! Where a Dockerfile build's result goes besides the store (docker's `-o/--output`): the
//! target's file system as a directory or a tarball, or the image as an OCI or docker archive.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use strata_layer::Compression;

use super::export::{self, ExportFormat};
use crate::Context;
use crate::image::{self, StoredImage};

/// One `-o type=...,dest=...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// `type=local,dest=DIR` (and `-o DIR`): the file system, into a directory.
    Local(PathBuf),
    /// `type=tar,dest=FILE`: the file system as one tarball.
    Tar(Destination),
    /// `type=oci,dest=FILE`: an OCI image layout tarball.
    Oci(Destination),
    /// `type=docker,dest=FILE`: `docker save`'s format; without `dest`, loaded into docker.
    Docker(Option<Destination>),
}

/// Where a tarball is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// `dest=-`.
    Stdout,
    /// A file.
    File(PathBuf),
}

impl std::str::FromStr for Output {
    type Err = anyhow::Error;

    /// buildx's syntax: `type=T,dest=D` (`-` for stdout), a bare `DIR` for `type=local`, a
    /// bare `-` for `type=tar` on stdout.
    fn from_str(s: &str) -> anyhow::Result<Output> {
        if s == "-" {
            return Ok(Output::Tar(Destination::Stdout));
        }
        if !s.contains('=') {
            return Ok(Output::Local(PathBuf::from(s)));
        }
        let (mut kind, mut dest) = (None, None);
        for part in s.split(',') {
            match part.split_once('=') {
                Some(("type", v)) => kind = Some(v),
                Some(("dest", v)) => dest = Some(v),
                _ => anyhow::bail!(
                    "-o {s}: expected type=local|tar|oci|docker,dest=PATH (strata has no other exporter options)"
                ),
            }
        }
        let destination = |d: &str| match d {
            "-" => Destination::Stdout,
            d => Destination::File(PathBuf::from(d)),
        };
        let needs_dest = || {
            dest.with_context(|| {
                format!("-o {s}: this output needs dest=PATH (or dest=- for stdout)")
            })
        };
        Ok(match kind {
            Some("local") => match needs_dest()? {
                "-" => {
                    anyhow::bail!("-o {s}: type=local writes a directory; use type=tar for stdout")
                }
                d => Output::Local(PathBuf::from(d)),
            },
            Some("tar") => Output::Tar(destination(needs_dest()?)),
            Some("oci") => Output::Oci(destination(needs_dest()?)),
            Some("docker") => Output::Docker(dest.map(destination)),
            Some(other) => anyhow::bail!(
                "-o {s}: strata has no `{other}` exporter; expected local, tar, oci or docker"
            ),
            None => anyhow::bail!("-o {s}: no type= (local, tar, oci or docker)"),
        })
    }
}

/// Writes the image tagged `reference` to `output`; layers of an OCI archive are in
/// `compression`.
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
        Output::Oci(dest) => to(dest, |out| {
            export::export(ctx, reference, ExportFormat::Oci, compression, out)
        }),
        Output::Docker(Some(dest)) => to(dest, |out| {
            export::export(
                ctx,
                reference,
                ExportFormat::DockerArchive,
                compression,
                out,
            )
        }),
        Output::Docker(None) => {
            export::load_into(ctx, reference, export::Engine::Docker, compression).map(drop)
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
