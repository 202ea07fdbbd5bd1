//! `strata push`.

use strata::ops::push::push;
use strata_registry::ManifestFormat;

/// Arguments of `strata push`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The local image.
    pub image: String,
    /// Where to push it (`registry.example.com/team/app:1.0`).
    pub reference: String,
    /// Manifest format: OCI, or Docker v2 schema 2 for old registries (gzip layers only).
    #[arg(long, default_value = "oci", value_parser = ["oci", "docker"])]
    pub format: String,
    /// Compression of the pushed layers; stored layers in another one are converted (once).
    #[arg(long, default_value = "gzip", value_parser = ["gzip", "zstd", "none"])]
    pub compression: String,
}

/// Pushes and prints the pushed manifest digest.
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    let format = if args.format == "docker" {
        ManifestFormat::DockerV2
    } else {
        ManifestFormat::Oci
    };
    let pushed = push(
        ctx,
        &args.image,
        &args.reference,
        format,
        args.compression.parse()?,
        Vec::new(),
    )?;
    eprintln!(
        "{} blob(s) uploaded ({} bytes), {} already there, {} mounted",
        pushed.uploaded, pushed.uploaded_bytes, pushed.existing, pushed.mounted
    );
    println!("{}@{}", args.reference, pushed.manifest);
    Ok(0)
}
