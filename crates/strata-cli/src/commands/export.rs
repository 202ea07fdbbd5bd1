//! `strata export`.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use strata::ops::export::{ExportFormat, export, load_into};

/// Arguments of `strata export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image.
    pub image: String,
    /// The tarball to write; `-` for stdout. A device, FIFO or symlink is written through,
    /// never replaced.
    #[arg(long, short = 'o', required_unless_present = "load")]
    pub output: Option<PathBuf>,
    /// Hand the image to a running docker (`docker load`, its `DOCKER_HOST`) or podman instead.
    #[arg(long, value_name = "ENGINE", num_args = 0..=1, default_missing_value = "docker",
          value_parser = ["docker", "podman"], conflicts_with = "output")]
    pub load: Option<String>,
    /// The tarball's layout.
    #[arg(long, default_value = "oci", value_parser = ["oci", "docker-archive"])]
    pub format: String,
    /// Compression of an OCI layout's layers; stored layers in another one are converted
    /// (once). A docker-archive holds plain tars.
    #[arg(long, default_value = "gzip", value_parser = ["gzip", "zstd", "none"])]
    pub compression: String,
}

/// Writes the tarball: to stdout, through an existing non-regular file, or next to its
/// destination and then renamed into place (so a failed export leaves no half file).
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    let format = if args.format == "oci" {
        ExportFormat::Oci
    } else {
        ExportFormat::DockerArchive
    };
    let compression = args.compression.parse()?;
    let Some(output) = args.output else {
        let engine = args.load.as_deref().unwrap_or("docker").parse()?;
        println!("{}", load_into(ctx, &args.image, engine, compression)?);
        return Ok(0);
    };
    let write = |out: &mut dyn Write| -> anyhow::Result<()> {
        let mut out = BufWriter::with_capacity(1 << 20, out);
        export(ctx, &args.image, format, compression, &mut out)?;
        out.flush().context("flush the tarball")
    };
    if output.as_os_str() == "-" {
        return write(&mut std::io::stdout().lock()).map(|()| 0);
    }
    let through = std::fs::symlink_metadata(&output)
        .map(|m| !m.file_type().is_file())
        .unwrap_or(false);
    if through {
        // /dev/stdout, a FIFO, a symlink to wherever: open what is there, as a shell would.
        let mut file = OpenOptions::new()
            .write(true)
            .open(&output)
            .with_context(|| format!("open {} for writing", output.display()))?;
        return write(&mut file).map(|()| 0);
    }
    let partial = output.with_extension("partial");
    let mut file =
        File::create(&partial).with_context(|| format!("create {}", partial.display()))?;
    match write(&mut file) {
        Ok(()) => std::fs::rename(&partial, &output)
            .with_context(|| format!("write {}", output.display()))?,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    }
    Ok(0)
}
