//! `strata export`.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use anyhow::Context as _;
use strata::ops::export::{ExportFormat, export};

/// Arguments of `strata export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image.
    pub image: String,
    /// The tarball to write.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// The tarball's layout.
    #[arg(long, default_value = "oci", value_parser = ["oci", "docker-archive"])]
    pub format: String,
    /// Compression of an OCI layout's layers; stored layers in another one are converted
    /// (once). A docker-archive holds plain tars.
    #[arg(long, default_value = "gzip", value_parser = ["gzip", "zstd", "none"])]
    pub compression: String,
}

/// Writes the tarball next to its destination, then renames it into place.
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    let format = if args.format == "oci" {
        ExportFormat::Oci
    } else {
        ExportFormat::DockerArchive
    };
    let partial = args.output.with_extension("partial");
    let file = File::create(&partial).with_context(|| format!("create {}", partial.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let result = export(
        ctx,
        &args.image,
        format,
        args.compression.parse()?,
        &mut out,
    );
    drop(out);
    match result {
        Ok(()) => std::fs::rename(&partial, &args.output)
            .with_context(|| format!("write {}", args.output.display()))?,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    }
    Ok(0)
}
