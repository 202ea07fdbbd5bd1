//! `strata tag`.

use strata::ops::images::tag;

/// Arguments of `strata tag`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image: a tag or an image id.
    pub source: String,
    /// The new name, `[REGISTRY/]REPOSITORY[:TAG]` (`:latest` when no tag is given).
    pub target: String,
}

/// Names the image with a new tag (replacing what the tag named before), as `docker tag`.
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    tag(ctx, &args.source, &args.target)?;
    Ok(0)
}
