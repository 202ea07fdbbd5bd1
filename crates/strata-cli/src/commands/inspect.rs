//! `strata inspect`.

use strata::ops::inspect::inspect;

/// Arguments of `strata inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image.
    pub image: String,
}

/// Prints the image's manifest digest, config and stages (with their recorded inputs) as JSON.
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    let value = inspect(ctx, &args.image)?;
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(0)
}
