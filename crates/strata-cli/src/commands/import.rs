//! `strata import`.

use std::path::PathBuf;

use strata::ops::import::import;

/// Arguments of `strata import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A root file system: a tarball (plain, gzip or zstd) or a directory; or an image
    /// archive (`docker save` tarball, OCI layout), which is loaded with its config.
    pub source: PathBuf,
    /// The name to give the image (`busybox:latest`).
    pub name: String,
    /// Layer compression.
    #[arg(long, default_value = "zstd", value_parser = ["zstd", "gzip", "none"])]
    pub compression: String,
}

/// Imports and prints the reference and digest.
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    let report = import(ctx, &args.source, &args.name, args.compression.parse()?)?;
    println!("{} {}", report.reference, report.manifest);
    Ok(0)
}
